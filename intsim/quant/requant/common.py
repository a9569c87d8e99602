"""The constants and argument checks the requantization modules share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...core.arrays import as_int_array, to_int64
from ...core.errors import ConfigError, OperandRangeError, ShapeError
from ...core.inttype import IntType
from ...regs.registers import RegisterFile

REQUANT_MODES: tuple[str, ...] = ("dyadic", "tflite_double", "tflite_single", "onnx_ref", "ort_fp32", "gemmini_fp32",
                                  "onnx_refeval", "ort_div", "onnx_refeval_div")
#: the modes whose ``scale`` is a divisor (``x / scale``, as ONNX ``QuantizeLinear``'s ``y_scale``)
DIVIDING_MODES: tuple[str, ...] = ("ort_div", "onnx_refeval_div")
REQUANT_ORDERS: tuple[str, ...] = ("round_then_saturate", "clamp_then_round")
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT8 = IntType(8)
INT32 = IntType(32)
INT64 = IntType(64)



# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def int_type(t: Any, name: str) -> IntType:
    if isinstance(t, IntType):
        return t
    if isinstance(t, str):
        return IntType.parse(t)
    raise ConfigError(f"{name} must be an IntType or a name such as 'int8', got {t!r}")


def int_arg(v: Any, name: str) -> np.ndarray:
    """An integer scalar or array argument (shift amounts, multipliers) as int64."""
    return to_int64(as_int_array(v, name), name)


def check_range(arr: np.ndarray, lo: int, hi: int, name: str, what: str) -> None:
    if arr.size == 0:
        return
    amin, amax = int(arr.min()), int(arr.max())
    if amin >= lo and amax <= hi:
        return
    bad = (arr < lo) | (arr > hi)
    flat = np.flatnonzero(bad.reshape(-1))
    idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), arr.shape))
    value = int(arr[idx]) if arr.ndim else int(arr)
    raise OperandRangeError(f"{name}: {flat.size} entries outside {what} [{lo}, {hi}]; first at index {idx}: "
                            f"{value}", count=int(flat.size), index=idx, value=value)


def shape_str(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def check_param_shape(op: str, name: str, pshape: tuple, xname: str, xshape: tuple) -> None:
    """Raise ShapeError unless a parameter of shape ``pshape`` broadcasts *to* ``xshape``, that is,
    unless the broadcast result has exactly the shape of the operand ``xname`` (a parameter may
    be a scalar, per-channel along x's trailing axes, or of x's own shape; it never enlarges x)."""
    pshape, xshape = tuple(pshape), tuple(xshape)
    try:
        result = np.broadcast_shapes(pshape, xshape)
    except ValueError:
        result = None
    if result == xshape:
        return
    msg = (f"{op}: {name} has shape {shape_str(pshape)}, which does not broadcast to {xname}'s shape "
           f"{shape_str(xshape)}")
    if result is not None:
        msg += f" (the result would have shape {shape_str(result)} instead of {xname}'s shape)"
    else:
        for i in range(1, min(len(pshape), len(xshape)) + 1):
            if pshape[-i] not in (1, xshape[-i]):
                axis = len(xshape) - i
                msg += f": along {xname}'s axis {axis} (length {xshape[-i]}) {name} has length {pshape[-i]}"
                if i == 1:
                    msg += f" (a per-channel {name} needs {xshape[-1]} entries, one per entry of {xname}'s last axis)"
                break
    raise ShapeError(msg)


def check_registers(op: str, registers: Any, valid: tuple[str, ...]) -> dict:
    """``registers`` (None or a mapping of register name -> width) as a dict whose names are all
    in ``valid`` and whose widths are valid (1 to 64 bits, an IntType or a type name); else
    ConfigError naming ``op``, the register and the valid names or widths."""
    if registers is None:
        return {}
    if not isinstance(registers, Mapping):
        raise ConfigError(f"{op}: registers must be a mapping of register name -> width, got {registers!r}")
    unknown = [k for k in registers if k not in valid]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        if valid:
            raise ConfigError(f"{op}: unknown register name(s) {names} in registers=; valid: {', '.join(valid)}")
        raise ConfigError(f"{op} has no intermediate integer registers, so registers= must be empty; got {names}")
    RegisterFile(op, registers)  # checks each width, naming op and the register in the error
    return dict(registers)


def bits_arg(bits: Any) -> int:
    if bits not in (16, 32):
        raise ConfigError(f"gemmlowp fixed-point primitives exist for 16- and 32-bit raw types; got bits={bits!r}")
    return int(bits)
