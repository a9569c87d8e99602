"""intsim: a bit-exact emulator of integer machine-learning hardware.

>>> import numpy as np, intsim
>>> r = intsim.matmul(np.array([[1, -2]]), np.array([[3], [4]]))
>>> int(r.values[0, 0]), r.n_overflow
(-5, 0)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# _jitcache first: it installs the numba cache locators every kernel module below relies on
from .core import jitcache as _jitcache  # noqa: F401
from .core.dyadic import Dyadic, ibert_frexp, quantize_multiplier
from .core.errors import (
    AccumulatorOverflow,
    AccuracyWarning,
    ConfigError,
    DTypeError,
    FileFormatError,
    IntsimError,
    ModelNotInstalledError,
    OperandRangeError,
    RegisterOverflow,
    ShapeError,
    WeightsMismatchError,
)
from .core.inttype import IntType
from .core.opcounts import OP_KINDS, OpCounts
from .core.rounding import ROUNDING_MODES, div_round, round_float, rounding_mode, shift_right
from .hw.datapath import OVERFLOW_POLICIES, Datapath, overflow_policy
from .hw.gemm import GemmResult, gemm_ops, matmul, trace_output
from .hw.intdot import available_engines as gemm_engines_available
from .hw.intdot import gemm_engine
from .hw.unpack import (
    STRATEGIES,
    UnpackedPair,
    UnpackResult,
    compare_strategies,
    unpack_matmul,
    unpack_operands,
    unpack_stats,
)
from .ops import gemmlowp, ibert, illm, ivit, tflite_act
from .ops.isqrt import isqrt, isqrt_op
from .quant.llmint8 import LLMInt8Result, llm_int8_matmul
from .quant.quantizers import quantize_per_token, quantize_rtn
from .quant.requant import (
    REQUANT_MODES,
    multiply_by_quantized_multiplier,
    quantize_linear,
    requantize,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

try:
    __version__ = version("intsim")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.1.0"

__all__ = [
    "__version__",
    "AccumulatorOverflow", "AccuracyWarning", "ConfigError", "DTypeError", "FileFormatError", "IntsimError",
    "ModelNotInstalledError", "OperandRangeError", "RegisterOverflow", "ShapeError", "WeightsMismatchError",
    "IntType", "ROUNDING_MODES", "rounding_mode", "shift_right", "div_round", "round_float",
    "Datapath", "OVERFLOW_POLICIES", "overflow_policy",
    "GemmResult", "matmul", "gemm_ops", "trace_output", "gemm_engine", "gemm_engines_available",
    "OpCounts", "OP_KINDS",
    "unpack_matmul", "UnpackResult", "unpack_operands", "UnpackedPair", "unpack_stats", "compare_strategies",
    "STRATEGIES",
    "quantize_rtn", "quantize_per_token", "llm_int8_matmul", "LLMInt8Result",
    "Dyadic", "quantize_multiplier", "ibert_frexp", "REQUANT_MODES", "requantize", "quantize_linear",
    "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot", "multiply_by_quantized_multiplier",
    "gemmlowp", "ibert", "ivit", "illm", "isqrt", "isqrt_op", "tflite_act",
]
