"""Requantization: integer accumulators to narrow integers, as real back-ends do it.

One entry point, :func:`requantize`, with the back-end chosen by ``mode``:

================  ==================================================================================
``mode``          exact semantics (``x`` an integer, ``s`` the scale, ``zp`` the output zero point)
================  ==================================================================================
``dyadic``        ``sat(round(x * m / 2**k) + zp)``, exact integer arithmetic, any rounding mode
                  (default ``half_even``); ``s`` a :class:`~intsim.core.dyadic.Dyadic` (a float scale is
                  converted with ``Dyadic.from_float(s, bits=31)``)
``tflite_double`` TFLite ``MultiplyByQuantizedMultiplier``, double-rounding build (the default build):
                  ``RDBPOT(SRDHM(x * 2**max(shift, 0), q), max(-shift, 0))``: SRDHM rounds ties toward
                  +inf, RDBPOT ties away from zero; then ``+ zp`` and saturation
``tflite_single`` ``TFLITE_SINGLE_ROUNDING`` build: ``(x * q + 2**(30 - shift)) >> (31 - shift)``
                  (one rounding, ties toward +inf); then ``+ zp`` and saturation
``onnx_ref``      ONNX reference evaluator (``QLinearMatMul``/``QuantizeLinear``): ``float64(x) *
                  float64(s)`` (one IEEE rounding), ``np.rint`` (ties to even), ``+ zp``, saturation
``ort_fp32``      onnxruntime/MLAS: ``float32(x)`` (rounds to nearest-even above 2**24) times
                  ``float32(s)`` in float32 (one IEEE rounding), round half to even, ``+ zp``, saturation
``gemmini_fp32``  Gemmini ``ACC_SCALE``: HardFloat int->fp32, fp32 multiply, fp32->int, all round
                  to nearest even, saturating; bit-identical arithmetic to ``ort_fp32``; no zero point
================  ==================================================================================

TFLite modes take the scale as a float (converted with
:func:`~intsim.core.dyadic.quantize_multiplier`, single-rounding saturation included for
``tflite_single``) or as a Dyadic (normalized exactly with
:meth:`~intsim.core.dyadic.Dyadic.to_tflite`). With ``in_type`` wider than 32 bits they use
TFLite's int64-input overload (:func:`multiply_by_quantized_multiplier_int64`).

``tosa_rescale`` is deliberately absent: the design note does not give the exact
TOSA 1.0 ``apply_scale_32`` pseudocode, and intsim does not guess bit-exact semantics.

**Order of rounding and saturation.** ONNX and TFLite round, then add the zero point,
then saturate (``order="round_then_saturate"``, the default). qonnx ``IntQuant`` and
TVM Relay QNN clamp the real value first (``order="clamp_then_round"``): ``v = x * s``
(as the mode computes it: exact rational in ``dyadic``, the float32/float64 product in the
float modes) is clamped to ``[lo, hi] = [out.min - zp, out.max - zp]``, then rounded, then
``zp`` is added. The bounds are exact integers in every mode (the float modes compare in
the integer domain after rounding, never against a bound rounded to float32, which would
move it inward past 2**24). With integer bounds the two orders give identical results in
every rounding mode except ``jam`` (which turns the clamped bound ``min`` into
``min | 1``), because every other mode is monotone and leaves integers unchanged; the
option exists so a model states which one its hardware has.

**Exactness.** ``dyadic``: when every product ``x * m`` fits int64 the product is exact and
the rounding is exact integer arithmetic (a numba kernel). Otherwise the product register
(declared 64 bits by default) overflows: ``overflow="raise"`` raises
:class:`~intsim.core.errors.RegisterOverflow`, ``"wrap"`` / ``"saturate"`` model a 64-bit
product register, and ``"record"`` computes the exact 128-bit product with a numba kernel
(proof in :func:`_mul_u64_128`) and rounds it exactly. The float modes are exact emulations
because numba's float32/float64 arithmetic *is* the IEEE arithmetic the runtimes use.

Each back-end's chain is written once, as a numba function run over blocks of elements (on the
cores from 2**21 elements): unrecorded first and, in a block where a register overflowed, again
recorded (events, policies and taps from the same arithmetic). The dyadic chain rounds by bias-and-shift where
that cannot wrap (``|x| * |m| + 2**k`` fits int64), ``round(p / 2**k) = (p + b) >> k`` with
``b`` = 0 (floor), ``2**k - 1`` (ceil), ``2**(k-1)`` (half up), ``2**(k-1) - 1`` (half down),
the sign-dependent choice between those for trunc/away/half_away/half_zero, and a step back at
exact ties for half_even/half_odd; otherwise from the floor and the class of the remainder.
The TFLite chains reproduce the C expressions in int64. ``taps=False`` (the default) skips
the taps.

>>> import numpy as np
>>> from intsim.quant.requant import requantize
>>> from intsim.core.dyadic import Dyadic
>>> r = requantize(np.array([-300, -5, 5, 300]), Dyadic(1, 1))   # x / 2, ties to even, int8
>>> r.values.tolist(), r.scale
([-128, -2, 2, 127], 1.0)
>>> requantize(np.array([-99996]), 0.375, mode="tflite_double", out="int32").values.tolist()
[-37499]
>>> requantize(np.array([-99996]), 0.375, mode="tflite_single", out="int32").values.tolist()
[-37498]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numba
import numpy as np

from ..core.arrays import as_int_array, to_int64
from ..core.deprecation import renamed_keyword
from ..core.dyadic import Dyadic, check_scale, quantize_multiplier
from ..core.errors import ConfigError, OperandRangeError, RegisterOverflow, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.rounding import (
    AWAY,
    CEIL,
    FLOOR,
    HALF_AWAY,
    HALF_DOWN,
    HALF_EVEN,
    HALF_ODD,
    HALF_UP,
    HALF_ZERO,
    JAM,
    JAM_UNBIASED,
    ROUNDING_CODE,
    TRUNC,
    rounding_mode,
    shift_right,
)
from ..regs.chain import Chain, Step
from ..regs.opresult import OpResult
from ..regs.prims import step
from ..regs.registers import RegisterEvent, RegisterFile
from ..regs.runtime import Plan

__all__ = [
    "REQUANT_MODES",
    "REQUANT_ORDERS",
    "requantize",
    "mul_shift_round",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "saturating_rounding_multiply_by_pot",
    "rounding_half_sum",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_int64",
    "onnx_multiplier",
]

REQUANT_MODES: tuple[str, ...] = ("dyadic", "tflite_double", "tflite_single", "onnx_ref", "ort_fp32", "gemmini_fp32")
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


def _int_type(t: Any, name: str) -> IntType:
    if isinstance(t, IntType):
        return t
    if isinstance(t, str):
        return IntType.parse(t)
    raise ConfigError(f"{name} must be an IntType or a name such as 'int8', got {t!r}")


def _int_arg(v: Any, name: str) -> np.ndarray:
    """An integer scalar or array argument (shift amounts, multipliers) as int64."""
    return to_int64(as_int_array(v, name), name)


def _check_range(arr: np.ndarray, lo: int, hi: int, name: str, what: str) -> None:
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


def _shape_str(shape: tuple) -> str:
    return str(tuple(int(n) for n in shape))


def _check_param_shape(op: str, name: str, pshape: tuple, xname: str, xshape: tuple) -> None:
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
    msg = (f"{op}: {name} has shape {_shape_str(pshape)}, which does not broadcast to {xname}'s shape "
           f"{_shape_str(xshape)}")
    if result is not None:
        msg += f" (the result would have shape {_shape_str(result)} instead of {xname}'s shape)"
    else:
        for i in range(1, min(len(pshape), len(xshape)) + 1):
            if pshape[-i] not in (1, xshape[-i]):
                axis = len(xshape) - i
                msg += f": along {xname}'s axis {axis} (length {xshape[-i]}) {name} has length {pshape[-i]}"
                if i == 1:
                    msg += f" (a per-channel {name} needs {xshape[-1]} entries, one per entry of {xname}'s last axis)"
                break
    raise ShapeError(msg)


def _check_registers(op: str, registers: Any, valid: tuple[str, ...]) -> dict:
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


def _bits_arg(bits: Any) -> int:
    if bits not in (16, 32):
        raise ConfigError(f"gemmlowp fixed-point primitives exist for 16- and 32-bit raw types; got bits={bits!r}")
    return int(bits)


# ------------------------------------------------------------------------------------------------
# gemmlowp primitives
# ------------------------------------------------------------------------------------------------


def saturating_rounding_doubling_high_mul(a: Any, b: Any, bits: int = 32) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` (ARM ``VQRDMULH``) on ``bits``-bit raws.

    Exact semantics for 32 bits: ``floor((a*b + 2**30) / 2**31)`` (round half toward +inf
    of ``a*b / 2**31``), except ``a == b == INT32_MIN``, the only case that does not fit,
    which saturates to ``INT32_MAX``. gemmlowp writes this with a sign-dependent nudge
    (``2**30`` or ``1 - 2**30``) and C truncating division; the two forms are equal (the
    tests check it against that literal form). 16 bits: the same with ``2**14`` and ``2**15``.

    ``a`` and ``b`` broadcast; values outside the ``bits``-bit signed range raise
    OperandRangeError; floats raise DTypeError. Returns int64. The product of two int32
    values fits int64, so numpy computes it exactly.

    >>> saturating_rounding_doubling_high_mul([-2**31, -2**31, 2**31 - 1], [-2**31, 2**31 - 1, 2**31 - 1]).tolist()
    [2147483647, -2147483647, 2147483646]
    """
    b_ = _bits_arg(bits)
    t = IntType(b_)
    aa = to_int64(t.check(as_int_array(a, "a"), "a"), "a")
    bb = to_int64(t.check(as_int_array(b, "b"), "b"), "b")
    prod = aa * bb
    res = (prod + (1 << (b_ - 2))) >> (b_ - 1)
    return np.where((aa == t.min) & (bb == t.min), np.int64(t.max), res)


def rounding_divide_by_pot(x: Any, exponent: Any, bits: int = 32) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero.

    Literal semantics: ``mask = 2**e - 1; rem = x & mask; thr = (mask >> 1) + (x < 0);
    (x >> e) + (rem > thr)``, which equals C ``std::round(x / 2**e)``. ``0 <= exponent
    <= bits - 1``, a scalar or an array that broadcasts to ``x``'s shape (ShapeError
    otherwise: the result always has ``x``'s shape); ``x`` must fit the ``bits``-bit signed
    type. Returns int64 (a 0-d array for a scalar ``x``).

    >>> rounding_divide_by_pot([-5, 5, -1, -2**31, 2**31 - 1], [1, 1, 1, 31, 31]).tolist()
    [-3, 3, -1, -1, 1]
    """
    b_ = _bits_arg(bits)
    xx = to_int64(IntType(b_).check(as_int_array(x, "x"), "x"), "x")
    e = _int_arg(exponent, "exponent")
    _check_param_shape("rounding_divide_by_pot", "exponent", e.shape, "x", xx.shape)
    _check_range(e, 0, b_ - 1, "exponent", "the RDBPOT exponent range")
    mask = (np.int64(1) << e) - 1
    rem = xx & mask
    thr = (mask >> 1) + (xx < 0)
    return np.asarray((xx >> e) + (rem > thr), dtype=np.int64)  # a 0-d array (not a numpy scalar) for scalar x


def saturating_rounding_multiply_by_pot(x: Any, exponent: int, bits: int = 32) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>``: ``x * 2**exponent``.

    ``exponent > 0``: a left shift that saturates to the type's min/max when
    ``|x| > 2**(bits-1-exponent) - 1``; ``exponent == 0``: ``x``; ``exponent < 0``:
    :func:`rounding_divide_by_pot` by ``-exponent``. ``Rescale<dst>`` of a Q``src`` value
    is this with ``exponent = src - dst``.

    >>> saturating_rounding_multiply_by_pot([2**29, -2**29, 3], 2).tolist()
    [2147483647, -2147483648, 12]
    """
    b_ = _bits_arg(bits)
    t = IntType(b_)
    if isinstance(exponent, bool) or not isinstance(exponent, (int, np.integer)):
        raise ConfigError(f"exponent must be an integer, got {exponent!r}")
    e = int(exponent)
    if not -(b_ - 1) <= e <= b_ - 2:
        raise ConfigError(f"exponent must be in [{-(b_ - 1)}, {b_ - 2}] for {b_}-bit values, got {e}")
    if e < 0:
        return rounding_divide_by_pot(x, -e, b_)
    xx = to_int64(t.check(as_int_array(x, "x"), "x"), "x")
    if e == 0:
        return xx
    thr = (1 << (b_ - 1 - e)) - 1
    res = xx << e
    res = np.where(xx > thr, np.int64(t.max), res)
    return np.where(xx < -thr, np.int64(t.min), res)


def rounding_half_sum(a: Any, b: Any, bits: int = 32) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum``: ``(a + b) / 2`` rounded half away from zero
    (``(a + b + sign) / 2`` in int64 with C truncation, ``sign = +1`` if ``a + b >= 0``).

    >>> rounding_half_sum([1, -1, 3], [0, 0, 4]).tolist()
    [1, -1, 4]
    """
    b_ = _bits_arg(bits)
    t = IntType(b_)
    aa = to_int64(t.check(as_int_array(a, "a"), "a"), "a")
    bb = to_int64(t.check(as_int_array(b, "b"), "b"), "b")
    s = aa + bb
    num = s + np.where(s >= 0, 1, -1)
    # C truncating division by 2 of num
    return np.where(num >= 0, num >> 1, -((-num) >> 1))


# ------------------------------------------------------------------------------------------------
# TFLite MultiplyByQuantizedMultiplier
# ------------------------------------------------------------------------------------------------


def _mbqm_args(op: str, xshape: tuple, quantized_multiplier: Any, shift: Any, lo_shift: int,
               hi_shift: int) -> tuple[np.ndarray, np.ndarray]:
    q = _int_arg(quantized_multiplier, "quantized_multiplier")
    s = _int_arg(shift, "shift")
    _check_param_shape(op, "quantized_multiplier", q.shape, "x", xshape)
    _check_param_shape(op, "shift", s.shape, "x", xshape)
    _check_range(q, 0, INT32_MAX, "quantized_multiplier", "the TFLite multiplier range")
    _check_range(s, lo_shift, hi_shift, "shift", "the supported shift range")
    return q, s


@renamed_keyword("registers", "widths")
def multiply_by_quantized_multiplier(
    x: Any, quantized_multiplier: Any, shift: Any, *, single_rounding: bool = False,
    overflow: str = "raise", widths: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, int32 q, int shift)``: ``x * q * 2**(shift-31)``.

    * double rounding (default build)::

          left = max(shift, 0); right = max(-shift, 0)
          RDBPOT(SRDHM(x * 2**left, q), right)

      ``x * 2**left`` is a plain multiply into a 32-bit register (register
      ``shifted_input``; C would overflow silently, intsim applies ``overflow``).
    * single rounding (``TFLITE_SINGLE_ROUNDING``)::

          (int64(x) * q + 2**(30 - shift)) >> (31 - shift)     # ties toward +inf

      whose result must fit int32 (register ``result``).

    ``x`` int32, ``0 <= q <= 2**31 - 1``, ``-31 <= shift <= 30``. ``q`` and ``shift`` are
    scalars or arrays that broadcast to ``x``'s shape (per-channel multipliers along the
    trailing axes work; any other shape is a ShapeError). ``widths`` overrides the widths
    of ``shifted_input`` and ``result`` (32 bits); any other name is a ConfigError (the old
    keyword ``registers=`` still works, with a DeprecationWarning). Returns int64 values of the
    int32 result, of ``x``'s shape. A ``shifted_input`` value that is not an int32 (the register
    declared wider, or kept under ``record``) raises OperandRangeError at the SRDHM.

    >>> multiply_by_quantized_multiplier([-99996, 5], 1610612736, -1).tolist()
    [-37499, 2]
    >>> multiply_by_quantized_multiplier([-99996, 5], 1610612736, -1, single_rounding=True).tolist()
    [-37498, 2]
    """
    op = "multiply_by_quantized_multiplier"
    regs = RegisterFile(op, dict(TFLITE_CHAIN.defaults(), **_check_registers(op, widths, TFLITE_CHAIN.names)),
                        overflow=overflow)
    xx = to_int64(IntType(32).check(as_int_array(x, "x"), "x"), "x")
    q, s = _mbqm_args(op, xx.shape, quantized_multiplier, shift, -31, 30)
    return _run_tflite(regs, xx, q, s, bool(single_rounding), INT64_MIN, INT64_MAX, 0, None)


def multiply_by_quantized_multiplier_int64(
    x: Any, quantized_multiplier: Any, shift: Any, *, overflow: str = "raise",
    _regs: RegisterFile | None = None, _taps: dict | None = None,
) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int64 x, int32 q, int shift)`` (16x8 kernels).

    The multiplier is first reduced to 16 bits, then one rounding (ties toward +inf)::

        red = (q + 2**15) >> 16 if q < 0x7FFF0000 else 0x7FFF
        (x * red + 2**(14 - shift)) >> (15 - shift)

    ``-2**47 <= x < 2**47``, ``0 <= q <= 2**31 - 1``, ``-31 <= shift <= 14``; ``q`` and
    ``shift`` broadcast to ``x``'s shape (else ShapeError). The result must fit int32
    (register ``result``). Returns int64 of ``x``'s shape.

    >>> multiply_by_quantized_multiplier_int64([2**40, -3], 1073741824, -10).tolist()   # x * 2**-11
    [536870912, 0]
    """
    regs = _regs or RegisterFile("multiply_by_quantized_multiplier_int64", {"result": 32}, overflow=overflow)
    xx = to_int64(as_int_array(x, "x"), "x")
    _check_range(xx, -(2**47), 2**47 - 1, "x", "the int64-overload input range")
    q, s = _mbqm_args("multiply_by_quantized_multiplier_int64", xx.shape, quantized_multiplier, shift, -31, 14)
    red = np.where(q < 0x7FFF0000, (q + (1 << 15)) >> 16, np.int64(0x7FFF))
    total = 15 - s
    prod = xx * red
    res = (prod + (np.int64(1) << (total - 1))) >> total
    if _taps is not None:
        _taps["reduced_multiplier"] = np.asarray(red)
        _taps["product"] = prod
        _taps["rounded"] = res
    return regs.check("result", res)


# ------------------------------------------------------------------------------------------------
# exact x * m / 2**k with rounding, including products beyond int64 (numba)
# ------------------------------------------------------------------------------------------------

_M32 = np.uint64(0xFFFFFFFF)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U32 = np.uint64(32)


@numba.njit(cache=True, forceinline=True)
def _abs_u64(v):  # pragma: no cover - numba
    if v < 0:
        return np.uint64(-(v + 1)) + _U1
    return np.uint64(v)


@numba.njit(cache=True, forceinline=True)
def _mul_u64_128(a, b):  # pragma: no cover - numba
    """Full 128-bit product of two uint64 values as (hi, lo).

    Proof of exactness: with a = ah*2**32 + al and b = bh*2**32 + bl (all limbs < 2**32),
    every partial product is at most (2**32-1)**2 = 2**64 - 2**33 + 1, and each sum below
    adds at most two values < 2**32 to one such product, staying <= 2**64 - 1: no uint64
    operation wraps except ``t << 32``, which is meant to keep only t's low 32 bits.
    a*b = ah*bh*2**64 + (ah*bl + al*bh)*2**32 + al*bl, and the carries (``>> 32``) move
    exactly the bits above 2**32 of each column into the next.
    """
    al = a & _M32
    ah = a >> _U32
    bl = b & _M32
    bh = b >> _U32
    t = al * bl
    w0 = t & _M32
    c = t >> _U32
    t = ah * bl + c
    w1 = t & _M32
    w2 = t >> _U32
    t = al * bh + w1
    c = t >> _U32
    hi = ah * bh + w2 + c
    lo = (t << _U32) + w0
    return hi, lo


@numba.njit(cache=True, forceinline=True)
def _round_code(fl, cls, mode):  # pragma: no cover - numba
    """Round v = fl + frac (fl = floor v) where cls codes frac: 0 zero, 1 below 1/2, 2 a tie,
    3 above 1/2; ``mode`` is a :data:`~intsim.core.rounding.ROUNDING_CODE`. Mirrors
    intsim.core.rounding._round_int."""
    if mode == JAM:
        return fl | 1
    if cls == 0 or mode == FLOOR:
        return fl
    if mode == CEIL:
        return fl + 1
    if mode == TRUNC:
        return fl + 1 if fl < 0 else fl
    if mode == AWAY:
        return fl if fl < 0 else fl + 1
    if mode == JAM_UNBIASED:
        return fl | 1
    if cls == 1:
        return fl
    if cls == 3:
        return fl + 1
    if mode == HALF_EVEN:
        return fl + (fl & 1)
    if mode == HALF_ODD:
        return fl + 1 - (fl & 1)
    if mode == HALF_AWAY:
        return fl if fl < 0 else fl + 1
    if mode == HALF_UP:
        return fl + 1
    if mode == HALF_DOWN:
        return fl
    return fl + 1 if fl < 0 else fl  # half_zero


@numba.njit(cache=True)
def _wide_kernel(x, m, k, mode, res, huge, wide):  # pragma: no cover - numba
    """For flat int64 x, m, k: res = round(x*m / 2**k) (exact, 128-bit product), huge = the
    result's magnitude may reach 2**61 (res not set), wide = the product does not fit int64."""
    two61 = np.uint64(1) << np.uint64(61)
    two63 = np.uint64(1) << np.uint64(63)
    for i in range(x.size):
        xi = x[i]
        mi = m[i]
        ki = k[i]
        neg = (xi < 0) != (mi < 0)
        hi, lo = _mul_u64_128(_abs_u64(xi), _abs_u64(mi))
        if hi == _U0 and lo == _U0:
            neg = False
        # does the signed product fit int64? (-2**63 does, +2**63 does not)
        if neg:
            wide[i] = hi != _U0 or lo > two63
        else:
            wide[i] = hi != _U0 or lo >= two63
        # magnitude quotient Q (qh, ql) and the class of the remainder
        qh = _U0
        ql = _U0
        cls = 0
        if ki == 0:
            qh = hi
            ql = lo
        elif ki < 64:
            s = np.uint64(ki)
            ql = (lo >> s) | (hi << (np.uint64(64) - s))
            qh = hi >> s
            rem = lo & ((_U1 << s) - _U1)
            half = _U1 << (s - _U1)
            if rem == _U0:
                cls = 0
            elif rem < half:
                cls = 1
            elif rem == half:
                cls = 2
            else:
                cls = 3
        elif ki == 64:
            ql = hi
            if lo == _U0:
                cls = 0
            elif lo < two63:
                cls = 1
            elif lo == two63:
                cls = 2
            else:
                cls = 3
        elif ki < 128:
            s = np.uint64(ki - 64)
            ql = hi >> s
            remh = hi & ((_U1 << s) - _U1)
            halfh = _U1 << (s - _U1)
            if remh == _U0 and lo == _U0:
                cls = 0
            elif remh < halfh:
                cls = 1
            elif remh == halfh and lo == _U0:
                cls = 2
            else:
                cls = 3
        else:
            cls = 0 if (hi == _U0 and lo == _U0) else 1
        if qh != _U0 or ql >= two61:
            huge[i] = True
            res[i] = 0
            continue
        q = np.int64(ql)
        if not neg:
            fl = q
        elif cls == 0:
            fl = -q
        else:
            fl = -q - 1
            cls = 4 - cls
        res[i] = _round_code(fl, cls, mode)


def _round_python(x: int, m: int, k: int, mode: str) -> int:
    """round(x*m / 2**k) with Python ints (for the rare results beyond 2**61)."""
    return int(shift_right(int(x) * int(m), int(k), mode))


def mul_shift_round(x: Any, m: Any, k: Any, rounding: str = "half_even") -> np.ndarray:
    """Exact ``round(x * m / 2**k)`` under a named rounding mode, as int64.

    ``x``, ``m`` and ``k >= 0`` are integer scalars or arrays; ``m`` and ``k`` broadcast to
    ``x``'s shape (else ShapeError), so the result has ``x``'s shape. The product is exact at
    any size (int64 when it fits, else the 128-bit numba kernel); a result that does not fit
    int64 raises OperandRangeError.

    >>> mul_shift_round([-3, 3, 2**62], [1, 1, 2**31 - 1], [1, 1, 40], "half_away").tolist()
    [-2, 2, 9007199250546688]
    """
    mode = rounding_mode(rounding)
    xx = to_int64(as_int_array(x, "x"), "x")
    mm = to_int64(as_int_array(m, "m"), "m")
    kk = _int_arg(k, "k")
    _check_param_shape("mul_shift_round", "m", mm.shape, "x", xx.shape)
    _check_param_shape("mul_shift_round", "k", kk.shape, "x", xx.shape)
    if kk.size and int(kk.min()) < 0:
        raise ConfigError(f"k (shift) must be >= 0, got {int(kk.min())}")
    res, _ = _mul_shift_round_exact(xx, mm, kk, mode)
    return res


def _abs_max(a: np.ndarray) -> int:
    return max(abs(int(a.min())), abs(int(a.max()))) if a.size else 0


def _mul_shift_round_exact(xx: np.ndarray, mm: np.ndarray, kk: np.ndarray, mode: str,
                           product_fits: bool | None = None,
                           clip: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """round(x*m/2**k) exactly; returns (int64 values, product-does-not-fit-int64 mask or None).

    Results beyond int64 raise OperandRangeError, unless ``clip = (lo, hi)`` (int64 bounds) is
    given: then those results are clipped to it exactly (values inside int64 are left alone)."""
    if product_fits is None:
        product_fits = _abs_max(xx) * _abs_max(mm) <= INT64_MAX
    if product_fits:
        return np.asarray(shift_right(xx * mm, kk, mode), dtype=np.int64), None
    xb, mb, kb = np.broadcast_arrays(xx, mm, np.minimum(kk, 200))
    shape = xb.shape
    xf, mf, kf = (np.array(a, dtype=np.int64, copy=True).reshape(-1) for a in (xb, mb, kb))
    res = np.empty(xf.size, dtype=np.int64)
    huge = np.zeros(xf.size, dtype=np.bool_)
    wide = np.zeros(xf.size, dtype=np.bool_)
    _wide_kernel(xf, mf, kf, ROUNDING_CODE[mode], res, huge, wide)
    for i in np.flatnonzero(huge):
        v = _round_python(int(xf[i]), int(mf[i]), int(kf[i]), mode)
        if clip is not None:
            v = min(max(v, clip[0]), clip[1])
        if not INT64_MIN <= v <= INT64_MAX:
            idx = tuple(int(j) for j in np.unravel_index(int(i), shape))
            raise OperandRangeError(f"round(x*m/2**k) at index {idx} is {v}, beyond int64", count=1,
                                    index=idx, value=v)
        res[i] = v
    return res.reshape(shape), wide.reshape(shape)


# ------------------------------------------------------------------------------------------------
# the chains of requantize, written once (numba). Each runs over blocks of elements (on the cores for
# large inputs, see _parallel); a block runs unrecorded and, where a value left its register, again
# recorded (regs.prims.step).
# The block bodies are separate @njit functions (see the comment above intsim.ops.ibert._k_iexp_block).
# ------------------------------------------------------------------------------------------------
#: the registers each chain declares, with their default widths (the names ``widths=`` accepts)
DYADIC_CHAIN = Chain("requantize", [Step("product", "e", INT64)])
TFLITE_CHAIN = Chain("requantize", [Step("shifted_input", "e", INT32), Step("result", "e", INT32)])
(PRODUCT,) = DYADIC_CHAIN.ids("product")
SHIFTED_INPUT, RESULT = TFLITE_CHAIN.ids("shifted_input", "result")
#: the kernels' parameter vector
RP_LO, RP_HI, RP_ZP, RP_ROUNDING, RP_CLAMP_FIRST, RP_BIAS, RP_SINGLE, RP_USE32 = range(8)
_BLOCK = 16384  #: elements per parallel block (rounded to whole rows of the per-channel parameters)


_PARALLEL = 1 << 21  #: elements from which the blocks run over the cores


def _block(period: int) -> int:
    return period * max(1, _BLOCK // period)


def _parallel(n: int) -> bool:
    """Whether a kernel runs its blocks over the cores. Below ``_PARALLEL`` elements one thread is
    as fast (the kernels are memory bound, about 1 ns an element) and avoids waking the worker
    threads, which on a loaded machine can cost milliseconds per call."""
    return n >= _PARALLEL


def _plan(chain: Chain, regs: RegisterFile, R: int, N: int) -> Plan:
    """``chain.plan`` (no taps: requantize taps its own values) for registers of up to 64 bits,
    unsigned 64 included: every value is an int64, so such a register's upper bound is INT64_MAX
    and only negative values leave it (its wrap keeps the bits, as RegisterFile.check does)."""
    u64 = [s for s, name in enumerate(chain.names) if regs.type_of(name).max > INT64_MAX]
    if not u64:
        return chain.plan(regs, R, N, False)
    held = {name: INT64 if s in u64 else regs.type_of(name) for s, name in enumerate(chain.names)}
    plan = chain.plan(RegisterFile(regs.op, held, overflow=regs.overflow), R, N, False)
    plan.regs = regs  # the events name the declared registers
    for s in u64:
        plan.cf[s, :4] = (0, INT64_MAX, 64, 0)
    return plan


@numba.njit(cache=True, forceinline=True)
def _rdbpot1(x, e):  # pragma: no cover - numba
    mask = (np.int64(1) << e) - np.int64(1)
    thr = (mask >> np.int64(1)) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if (x & mask) > thr else np.int64(0))


@numba.njit(cache=True, forceinline=True)
def _shift_round(p, kk, mode):  # pragma: no cover - numba
    """round(p / 2**kk) for 0 <= kk <= 62 by bias-and-shift, when ``|p| + 2**kk`` fits int64;
    branch-free once ``mode`` is a constant: the bias is what must be added before the floor
    shift for each rule, and the two tie-parity modes then step back from an odd/even result at
    an exact tie."""
    one = np.int64(1)
    if kk == 0:
        return p | one if mode == JAM else p
    d = one << kk
    half = d >> one
    neg = one if p < 0 else np.int64(0)
    if mode == FLOOR:
        return p >> kk
    if mode == CEIL:
        return (p + d - one) >> kk
    if mode == TRUNC:
        return (p + neg * (d - one)) >> kk
    if mode == AWAY:
        return (p + (one - neg) * (d - one)) >> kk
    if mode == HALF_EVEN:
        q = (p + half) >> kk
        tie = one if (p & (d - one)) == half else np.int64(0)
        return q - (tie & q)
    if mode == HALF_ODD:
        q = (p + half) >> kk
        tie = one if (p & (d - one)) == half else np.int64(0)
        return q - (tie & (one - (q & one)))
    if mode == HALF_AWAY:
        return (p + half - neg) >> kk
    if mode == HALF_UP:
        return (p + half) >> kk
    if mode == HALF_DOWN:
        return (p + half - one) >> kk
    if mode == HALF_ZERO:
        return (p + half - (one - neg)) >> kk
    if mode == JAM:
        return (p >> kk) | one
    return (p >> kk) | (one if (p & (d - one)) != 0 else np.int64(0))  # jam_unbiased


@numba.njit(cache=True, forceinline=True)
def _floor_ceil(p, k):  # pragma: no cover - numba
    """(floor, ceil) of p / 2**k for any int64 p and k >= 0."""
    if k < 63:
        fl = p >> k
        return fl, fl + (np.int64(1) if (p & ((np.int64(1) << k) - np.int64(1))) != 0 else np.int64(0))
    fl = p >> np.int64(63)
    exact = p == 0 or (k == 63 and p == INT64_MIN)
    return fl, fl + (np.int64(0) if exact else np.int64(1))


@numba.njit(cache=True, forceinline=True)
def _round_exact(p, k, mode):  # pragma: no cover - numba
    """round(p / 2**k) for any int64 p and k >= 0, exactly (the rule of
    :func:`intsim.core.rounding.shift_right`): the floor and the class of the remainder."""
    if k == 0:
        return p | np.int64(1) if mode == JAM else p
    if k < 63:
        d = np.int64(1) << k
        r = p & (d - np.int64(1))
        rest = d - r
        return _round_code(p >> k, 0 if r == 0 else (1 if r < rest else (2 if r == rest else 3)), mode)
    half = np.int64(1) << np.int64(62)
    if p >= 0:  # floor 0, fraction p / 2**k < 1/2 unless k == 63 and p >= 2**62
        cls = 0 if p == 0 else (1 if k > 63 or p < half else (2 if p == half else 3))
        return _round_code(np.int64(0), cls, mode)
    # floor -1, fraction 1 - |p| / 2**k (|p| <= 2**63)
    if k == 63:
        if p == INT64_MIN:
            cls = 0
        else:
            cls = 3 if -p < half else (2 if -p == half else 1)
    elif k == 64:
        cls = 2 if p == INT64_MIN else 3
    else:
        cls = 3
    return _round_code(np.int64(-1), cls, mode)


@numba.njit(cache=True, forceinline=True)
def _dyadic_chain(cf, st, tp, i, j, xv, m, k, mode, lo, hi, zp, ctr, bias, rec, ok):  # pragma: no cover - numba
    """One element of the dyadic requantization: the product register, round(p / 2**k), the
    clamp (clamp-then-round) or the saturation, + zp. Returns (out, product, rounded, ok).
    Unrecorded, ``bias`` (|x| |m| + 2**k fits int64, k <= 62) allows the bias-and-shift
    rounding; recorded, the product may be any int64 after its policy."""
    p, ok = step(cf, st, tp, False, i, j, PRODUCT, xv * m, rec, ok)
    if bias and not rec:
        r = _shift_round(p, k, mode)
    else:
        r = _round_exact(p, k, mode)
    v = r
    if ctr:  # the real value is below lo iff its floor is, above hi iff its ceiling is
        fl, ce = _floor_ceil(p, k)
        if fl < lo:
            v = lo | np.int64(1) if mode == JAM else lo
        elif ce > hi:
            v = hi | np.int64(1) if mode == JAM else hi
    return min(max(v, lo), hi) + zp, p, r, ok


@numba.njit(cache=True, forceinline=True)
def _dyadic_elem(cf, st, tp, i, j, xv, m, k, mode, lo, hi, zp, os, ts, ton, ctr, bias, rec):  # pragma: no cover
    v, p, r, ok = _dyadic_chain(cf, st, tp, i, j, xv, m, k, mode, lo, hi, zp, ctr, bias, rec, True)
    os[j] = v
    if ton:
        ts[0, j] = p
        ts[1, j] = r
    return ok


@numba.njit(cache=True, forceinline=True)
def _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, ton, ctr, bias, rec):  # pragma: no cover - numba
    lo = kp[RP_LO]
    hi = kp[RP_HI]
    zp = kp[RP_ZP]
    good = True
    C = m.shape[0]
    if C == 1:  # per tensor: the parameters are loop invariants (the loop vectorizes)
        m0 = m[0]
        k0 = k[0]
        for j in range(xs.shape[0]):
            good &= _dyadic_elem(cf, st, tp, i, j, np.int64(xs[j]), m0, k0, mode, lo, hi, zp, os, ts, ton, ctr, bias,
                                 rec)
        return good
    for row in range(xs.shape[0] // C):
        for c in range(C):
            j = row * C + c
            good &= _dyadic_elem(cf, st, tp, i, j, np.int64(xs[j]), m[c], k[c], mode, lo, hi, zp, os, ts, ton, ctr,
                                 bias, rec)
    return good


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _dyadic_block(i, cf, st, tp, x, m, k, kp, out, tq, ton, check, B):  # pragma: no cover - numba
    p0 = i * B
    p1 = min(p0 + B, x.shape[0])
    xs = x[p0:p1]
    os = out[p0:p1]
    ts = tq[:, p0:p1]
    mode = kp[RP_ROUNDING]
    ctr = kp[RP_CLAMP_FIRST] != 0
    bias = kp[RP_BIAS] != 0
    if bias and not (check or ton or ctr):
        # the common case: the common modes get a loop with the mode a constant (vectorizable)
        if mode == HALF_EVEN:
            _dyadic_loop(cf, st, tp, i, xs, m, k, HALF_EVEN, kp, os, ts, False, False, True, False)
        elif mode == HALF_UP:
            _dyadic_loop(cf, st, tp, i, xs, m, k, HALF_UP, kp, os, ts, False, False, True, False)
        elif mode == HALF_AWAY:
            _dyadic_loop(cf, st, tp, i, xs, m, k, HALF_AWAY, kp, os, ts, False, False, True, False)
        elif mode == FLOOR:
            _dyadic_loop(cf, st, tp, i, xs, m, k, FLOOR, kp, os, ts, False, False, True, False)
        elif mode == TRUNC:
            _dyadic_loop(cf, st, tp, i, xs, m, k, TRUNC, kp, os, ts, False, False, True, False)
        else:
            _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, False, False, True, False)
    elif not _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, ton, ctr, bias, False):
        _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, ton, ctr, bias, True)


@numba.njit(cache=True, parallel=True)
def _dyadic_fast(cf, st, tp, x, m, k, kp, out, tq, ton, check, B, par):  # pragma: no cover - numba
    """The dyadic requantization of flat x with per-channel m, k (period m.size), every product
    fitting int64 (the caller checks); ``check`` when the product register is not 64-bit; the
    blocks over the cores when ``par`` (see :func:`_parallel`), else in this thread."""
    if par:
        for i in numba.prange(st.shape[0]):
            _dyadic_block(np.int64(i), cf, st, tp, x, m, k, kp, out, tq, ton, check, B)
    else:
        for i in range(st.shape[0]):
            _dyadic_block(np.int64(i), cf, st, tp, x, m, k, kp, out, tq, ton, check, B)


@numba.njit(cache=True, forceinline=True)
def _int32_step(cf, st, tp, i, j, s, v, check, rec, ok):  # pragma: no cover - numba
    """``step`` into register s. Unrecorded with the register at its default width, int32
    (``check`` False), the range test has constant bounds, which LLVM keeps out of the loop (it
    cannot hoist the loads from ``cf``, which the output array might alias). Returns (value, ok)."""
    if rec or check:
        return step(cf, st, tp, False, i, j, s, v, rec, ok)
    return v, ok & (v >= INT32_MIN) & (v <= INT32_MAX)


@numba.njit(cache=True, forceinline=True)
def _tflite_chain(cf, st, tp, i, j, xv, q, s, single, check, rec, ok):  # pragma: no cover - numba
    """MultiplyByQuantizedMultiplier of one int32 x: returns (result, three taps, whether the
    SRDHM operand is an int32, ok). Single rounding taps (product, rounded), double rounding
    (shifted_input, srdhm, rounded). ``check``: a register is not at its default width."""
    if single:
        total = np.int64(31) - s
        prod = xv * q  # |x q| < 2**62
        r0 = (prod + (np.int64(1) << (total - np.int64(1)))) >> total
        r, ok = _int32_step(cf, st, tp, i, j, RESULT, r0, check, rec, ok)
        return r, prod, r0, r0, True, ok
    sh, ok = _int32_step(cf, st, tp, i, j, SHIFTED_INPUT, xv << max(s, np.int64(0)), check, rec, ok)
    fits = (sh >= INT32_MIN) & (sh <= INT32_MAX)
    hm = (sh * q + np.int64(1 << 30)) >> np.int64(31)  # SRDHM; MIN*MIN cannot occur: q >= 0
    r = _rdbpot1(hm, max(-s, np.int64(0)))
    return r, sh, hm, r, fits, ok & fits


@numba.njit(cache=True, forceinline=True)
def _tflite_elem(cf, st, tp, oe, i, j, xv, q, s, lo, hi, zp, os, ts, single, ton, check, rec):  # pragma: no cover
    r, t0, t1, t2, fits, ok = _tflite_chain(cf, st, tp, i, j, xv, q, s, single, check, rec, True)
    os[j] = min(max(r, lo), hi) + zp
    if ton:
        ts[0, j] = t0
        ts[1, j] = t1
        ts[2, j] = t2
    if rec and not fits:  # the SRDHM operand is not an int32 (an error, raised afterwards)
        if oe[i, 0] == 0:
            oe[i, 1] = j
            oe[i, 2] = t0
        oe[i, 0] += 1
    return ok


@numba.njit(cache=True, forceinline=True)
def _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, ton, check, rec):  # pragma: no cover - numba
    lo = kp[RP_LO]
    hi = kp[RP_HI]
    zp = kp[RP_ZP]
    good = True
    C = q.shape[0]
    if C == 1:  # per tensor: the parameters are loop invariants (the loop vectorizes)
        q0 = q[0]
        s0 = s[0]
        for j in range(xs.shape[0]):
            good &= _tflite_elem(cf, st, tp, oe, i, j, np.int64(xs[j]), q0, s0, lo, hi, zp, os, ts, single, ton, check,
                                 rec)
        return good
    for row in range(xs.shape[0] // C):
        for c in range(C):
            j = row * C + c
            good &= _tflite_elem(cf, st, tp, oe, i, j, np.int64(xs[j]), q[c], s[c], lo, hi, zp, os, ts, single, ton,
                                 check, rec)
    return good


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _tflite_block(i, cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B):  # pragma: no cover - numba
    p0 = i * B
    p1 = min(p0 + B, x.shape[0])
    xs = x[p0:p1]
    os = out[p0:p1]
    ts = tq[:, p0:p1]
    single = kp[RP_SINGLE] != 0
    if ton:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, True, check, False)
    elif check:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, False, True, False)
    elif single:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, True, False, False, False)
    else:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, False, False, False, False)
    if not good:
        _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, ton, check, True)


@numba.njit(cache=True, parallel=True)
def _k_tflite(cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B, par):  # pragma: no cover - numba
    """TFLite MultiplyByQuantizedMultiplier of flat int32 x, per-channel q, s (period q.size),
    then clip to [lo, hi] + zp; ``check`` when a register is not int32; the blocks over the
    cores when ``par``, else in this thread."""
    if par:
        for i in numba.prange(st.shape[0]):
            _tflite_block(np.int64(i), cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B)
    else:
        for i in range(st.shape[0]):
            _tflite_block(np.int64(i), cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B)


@numba.njit(cache=True, forceinline=True)
def _float_one(xi, s64, s32, use32, flo, fhi):  # pragma: no cover - numba
    """clip(rint(v), lo, hi) for v = x*s in float32 (use32) or float64, and v (in its type; 0 in
    the other). ``rint`` of a float is an integer-valued float of the same precision, exactly
    representable in float64; ``flo``, ``fhi`` are the integer bounds, exact in float64
    (|bound| < 2**53), so the comparisons and the conversion to int64 are exact. A product that
    overflows is +-inf (never NaN: x and s are finite), which the clip maps to ``fhi`` / ``flo``
    before the conversion: it saturates."""
    if use32:
        v32 = np.float32(xi) * s32
        v64 = np.float64(0)
        v = np.float64(np.rint(v32))
    else:
        v32 = np.float32(0)
        v64 = np.float64(xi) * s64
        v = np.rint(v64)
    return np.int64(min(max(v, flo), fhi)), v32, v64


@numba.njit(cache=True, forceinline=True)
def _float_elem(j, xv, s64, s32, flo, fhi, zp, os, t32, t64, use32, ton):  # pragma: no cover - numba
    v, v32, v64 = _float_one(xv, s64, s32, use32, flo, fhi)
    os[j] = v + zp
    if ton:
        if use32:
            t32[j] = v32
        else:
            t64[j] = v64


@numba.njit(cache=True, forceinline=True)
def _float_loop(xs, s64, s32, kp, os, t32, t64, use32, ton):  # pragma: no cover - numba
    flo = np.float64(kp[RP_LO])
    fhi = np.float64(kp[RP_HI])
    zp = kp[RP_ZP]
    C = s64.shape[0]
    if C == 1:  # per tensor: the scale is a loop invariant (the loop vectorizes)
        a64 = s64[0]
        a32 = s32[0]
        for j in range(xs.shape[0]):
            _float_elem(j, xs[j], a64, a32, flo, fhi, zp, os, t32, t64, use32, ton)
        return
    for row in range(xs.shape[0] // C):
        for c in range(C):
            j = row * C + c
            _float_elem(j, xs[j], s64[c], s32[c], flo, fhi, zp, os, t32, t64, use32, ton)


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _float_block(i, x, s64, s32, kp, out, t32, t64, ton, B):  # pragma: no cover - numba
    p0 = i * B
    p1 = min(p0 + B, x.shape[0])
    xs = x[p0:p1]
    os = out[p0:p1]
    if ton:
        _float_loop(xs, s64, s32, kp, os, t32[p0:p1], t64[p0:p1], kp[RP_USE32] != 0, True)
    elif kp[RP_USE32]:
        _float_loop(xs, s64, s32, kp, os, t32, t64, True, False)
    else:
        _float_loop(xs, s64, s32, kp, os, t32, t64, False, False)


@numba.njit(cache=True, parallel=True)
def _k_float(x, s64, s32, kp, out, t32, t64, ton, B, nblocks, par):  # pragma: no cover - numba
    """The float back-ends: float32 (use32) or float64 scaling, rint (ties to even), exact
    saturation to the integer bounds [lo, hi] (both orders: see :func:`_run_float`); the blocks
    over the cores when ``par``, else in this thread."""
    if par:
        for i in numba.prange(nblocks):
            _float_block(np.int64(i), x, s64, s32, kp, out, t32, t64, ton, B)
    else:
        for i in range(nblocks):
            _float_block(np.int64(i), x, s64, s32, kp, out, t32, t64, ton, B)


def _kernel_input(xa: np.ndarray) -> np.ndarray:
    """The flat input for a kernel, as int32 or int64 (two compiled variants only)."""
    flat = xa.reshape(-1)
    if flat.dtype in (np.int32, np.int64):
        return flat
    return flat.astype(np.int32 if flat.dtype.itemsize <= 2 else np.int64)  # (u)int8/16 -> int32; uint32 -> int64


def _per_channel(xshape: tuple, *params: np.ndarray) -> list[np.ndarray]:
    """Parameters that broadcast to ``xshape`` as flat int64/float arrays of one common period:
    1 (per tensor), ``xshape[-1]`` (along the last axis) or, for any other broadcast, the size of
    x (then expanded to x's shape)."""
    if all(p.size == 1 for p in params):
        return [np.ascontiguousarray(p.reshape(1)) for p in params]
    c = xshape[-1] if xshape else 1
    if all(p.size == 1 or (p.ndim <= len(xshape) and p.shape[-1] == c and p.size == c) for p in params):
        # (np.full / reshape: the same arrays as broadcast_to(p.reshape(-1), (c,)), without its cost)
        return [np.full(c, p.reshape(-1)[0], dtype=p.dtype) if p.size == 1 else np.ascontiguousarray(p.reshape(-1))
                for p in params]
    return [np.ascontiguousarray(np.broadcast_to(p, xshape).reshape(-1)) for p in params]


def _run_dyadic(regs: RegisterFile, xx: np.ndarray, m: np.ndarray, k: np.ndarray, rmode: str, lo: int, hi: int,
                zp: int, ctr: bool, taps: dict | None, xmax: int | None = None) -> np.ndarray:
    """``sat(round(x*m / 2**k) + zp)`` (or clamp-then-round) through the product register, for
    products that fit int64 (the caller checks); taps ``product`` and ``rounded`` into ``taps``.
    ``xmax`` is ``max |x|`` when the caller has it (a pass over x saved)."""
    mv, kv = _per_channel(xx.shape, m, k)
    n = int(xx.size)
    kmax = int(kv.max())
    if xmax is None:
        xmax = _abs_max(xx)
    bias = kmax <= 62 and xmax * _abs_max(mv) + (1 << kmax) <= INT64_MAX  # p + bias fits int64
    B = _block(mv.size)
    plan = _plan(DYADIC_CHAIN, regs, -(-n // B), B)
    kp = np.array([lo, hi, zp, ROUNDING_CODE[rmode], ctr, bias, 0, 0], dtype=np.int64)
    out = np.empty(xx.shape, dtype=np.int64)
    tq = np.empty((2, n if taps is not None else 0), dtype=np.int64)
    if n:
        _dyadic_fast(*plan.args()[:3], _kernel_input(xx), mv, kv, kp, out.reshape(-1), tq, taps is not None,
                     regs.type_of("product") != INT64, B, _parallel(n))
    plan.finish(xx.shape, "flat")
    if taps is not None:
        taps["product"] = tq[0].reshape(xx.shape)
        taps["rounded"] = tq[1].reshape(xx.shape)
    return out


def _run_tflite(regs: RegisterFile, xx: np.ndarray, q: np.ndarray, s: np.ndarray, single: bool, lo: int, hi: int,
                zp: int, taps: dict | None) -> np.ndarray:
    """MultiplyByQuantizedMultiplier of int32 ``xx`` (the caller checks), then
    ``min(max(., lo), hi) + zp``; taps into ``taps``. An SRDHM operand that is not an int32 (a
    ``shifted_input`` register declared wider, or overflowed under ``record``) raises
    OperandRangeError, as gemmlowp's SRDHM takes int32 operands."""
    qv, sv = _per_channel(xx.shape, q, s)
    n = int(xx.size)
    B = _block(qv.size)
    nb = -(-n // B)
    plan = _plan(TFLITE_CHAIN, regs, nb, B)
    oe = np.zeros((nb, 3), dtype=np.int64)
    kp = np.array([lo, hi, zp, 0, 0, 0, single, 0], dtype=np.int64)
    out = np.empty(xx.shape, dtype=np.int64)
    tq = np.empty((3, n if taps is not None else 0), dtype=np.int64)
    if n:
        check = any(regs.type_of(name) != INT32 for name in TFLITE_CHAIN.names)
        _k_tflite(*plan.args()[:3], oe, _kernel_input(xx), qv, sv, kp, out.reshape(-1), tq, taps is not None, check,
                  B, _parallel(n))
    plan.finish(xx.shape, "flat")
    if oe[:, 0].any():
        i0 = int(np.flatnonzero(oe[:, 0])[0])
        idx = tuple(int(v) for v in np.unravel_index(i0 * B + int(oe[i0, 1]), xx.shape))
        count, value = int(oe[:, 0].sum()), int(oe[i0, 2])
        raise OperandRangeError(f"a: {count} of {n} entries are outside int32 [{INT32_MIN}, {INT32_MAX}]; "
                                f"first at index {idx}: {value}", count=count, index=idx, value=value)
    if taps is not None:
        names = ("product", "rounded") if single else ("shifted_input", "srdhm", "rounded")
        for t, name in enumerate(names):
            taps[name] = tq[t].reshape(xx.shape)
    return out


_NO_TAPS32 = np.empty(0, dtype=np.float32)  #: the float kernels' tap arrays without taps (never written)
_NO_TAPS64 = np.empty(0, dtype=np.float64)


def _run_float(xx: np.ndarray, sarr: np.ndarray, use32: bool, lo: int, hi: int, zp: int,
               taps: dict | None) -> np.ndarray:
    """The float back-ends: ``v = x*s`` in float64 (onnx_ref) or float32 (one IEEE rounding),
    then ``clip(rint(v), lo, hi) + zp`` with the exact integer bounds ``lo``, ``hi`` (|bound| <= 2**53).

    Both orders compute that value. Clamp-then-round is ``rint(clip(v, lo, hi))`` with the
    clamp done on the real value ``v`` against the exact integers ``lo``, ``hi``; since ``rint``
    (ties to even) is monotone and leaves integers unchanged, ``v > hi`` implies ``rint(v) >=
    hi`` and ``v < lo`` implies ``rint(v) <= lo``, so it equals ``clip(rint(v), lo, hi)``. (The
    bounds are never converted to the working float type: once ``|hi| > 2**24``, ``float32(hi)``
    can round inward, below ``hi``, and a clamp against it would cut off valid results, e.g.
    ``float32(2**31 + 99) == 2**31``.) Taps: ``scaled_bits``, the bit pattern of ``v`` in its
    type, and ``rounded``, the saturated value ``clip(rint(v), lo, hi)`` (before the zero point
    is added), in both orders.

    A product that overflows the working type is ``+-inf`` and saturates like any other value
    beyond the bounds (``rounded`` = ``hi`` or ``lo``; ``scaled_bits`` holds the inf pattern).
    """
    (sv,) = _per_channel(xx.shape, sarr)
    n = int(xx.size)
    with np.errstate(over="ignore"):  # (onnx_ref does not use the float32 copy)
        s32 = sv.astype(np.float32)
    ton = taps is not None
    t32 = np.empty(n, dtype=np.float32) if ton and use32 else _NO_TAPS32
    t64 = np.empty(n, dtype=np.float64) if ton and not use32 else _NO_TAPS64
    kp = np.array([lo, hi, zp, 0, 0, 0, 0, use32], dtype=np.int64)
    out = np.empty(xx.shape, dtype=np.int64)
    B = _block(sv.size)
    if n:
        _k_float(_kernel_input(xx), sv.astype(np.float64), s32, kp, out.reshape(-1), t32, t64, ton, B,
                 -(-n // B), _parallel(n))
    if ton:
        bits = t32.view(np.int32).astype(np.int64) if use32 else t64.view(np.int64)
        taps["scaled_bits"] = bits.reshape(xx.shape)
        taps["rounded"] = out - zp
    return out


# ------------------------------------------------------------------------------------------------
# requantize
# ------------------------------------------------------------------------------------------------


def onnx_multiplier(a_scale: float, b_scale: float, y_scale: float) -> float:
    """The multiplier the ONNX reference ``QLinearMatMul`` uses: ``a_scale * b_scale / y_scale``
    computed in float32 (the scales are float32 tensors), returned as a Python float.

    >>> onnx_multiplier(0.1, 0.2, 0.3) == float(__import__("numpy").float32(0.1) * __import__("numpy").float32(0.2)
    ...                                          / __import__("numpy").float32(0.3))
    True
    """
    a, b, y = (np.float32(check_scale(v, n)) for v, n in ((a_scale, "a_scale"), (b_scale, "b_scale"),
                                                            (y_scale, "y_scale")))
    with np.errstate(over="raise", under="ignore"):
        return float(np.float32(np.float32(a * b) / y))


def _check_float32_scale(mode: str, sarr: np.ndarray) -> None:
    """ConfigError unless every scale is finite in float32 (the float32 back-ends take float32
    scales: a float64 scale beyond float32's range would be an infinite scale there)."""
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(sarr.astype(np.float32))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        where = f" at index {tuple(int(j) for j in np.unravel_index(i, sarr.shape))}" if sarr.ndim else ""
        raise ConfigError(f"{mode}: scale{where} ({float(sarr.reshape(-1)[i])!r}) rounds to infinity in float32 "
                          f"(largest float32: {float(np.finfo(np.float32).max)!r}); {mode} takes float32 scales")


def _scales_array(scale: Any, allow_negative: bool) -> np.ndarray:
    """A float scale, an array-like of them, or Dyadic(s), as a checked float64 array."""
    if isinstance(scale, Dyadic):
        arr = np.asarray(scale.value)
    elif isinstance(scale, (list, tuple)) and scale and all(isinstance(s, Dyadic) for s in scale):
        arr = np.asarray([s.value for s in scale])
    else:
        if isinstance(scale, (bool, np.bool_, str, bytes)):
            raise ConfigError(f"scale must be a real number, an array of them or a Dyadic, got {scale!r}")
        try:
            arr = np.asarray(scale)
        except (TypeError, ValueError):
            raise ConfigError(f"scale must be a real number, an array of them or a Dyadic, got {scale!r}") from None
        if arr.dtype.kind not in "iuf":
            raise ConfigError(f"scale must be a real number, an array of them or a Dyadic, got {scale!r}")
        arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ConfigError("scale is empty")
    flat = arr.reshape(-1)
    for what, bad in (("NaN", np.isnan(flat)), ("infinite", np.isinf(flat)), ("zero", flat == 0),
                      ("negative", (flat < 0) & (not allow_negative))):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            hint = " (pass allow_negative=True if intended)" if what == "negative" else ""
            where = f" at index {tuple(int(j) for j in np.unravel_index(i, arr.shape))}" if arr.ndim else ""
            raise ConfigError(f"scale{where} is {what} ({flat[i]!r}); a finite positive scale is required{hint}")
    return arr


def _dyadics(scale: Any, allow_negative: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    """(m, k) int64 arrays and the output-scale description for the dyadic mode."""
    if isinstance(scale, Dyadic):
        ds = [scale]
        shape: tuple = ()
    elif isinstance(scale, (list, tuple)) and scale and all(isinstance(s, Dyadic) for s in scale):
        ds = list(scale)
        shape = (len(ds),)
    else:
        arr = _scales_array(scale, allow_negative)
        ds = [Dyadic.from_float(float(s), bits=31) for s in arr.reshape(-1)]
        shape = arr.shape
    for d in ds:
        if d.m == 0:
            raise ConfigError(f"scale {d} is zero")
        if d.m < 0 and not allow_negative:
            raise ConfigError(f"scale {d} is negative; pass allow_negative=True if intended")
        if not INT64_MIN < d.m <= INT64_MAX:
            raise ConfigError(f"scale {d}: the mantissa does not fit int64")
    m = np.array([d.m for d in ds], dtype=np.int64).reshape(shape)
    k = np.array([d.k for d in ds], dtype=np.int64).reshape(shape)
    return m, k, (ds[0] if not shape else ds)


def _clamp_bounds(out: IntType, zp: int) -> tuple[int, int]:
    """Bounds on the rounded value r so that sat(r + zp) == clip(r, lo, hi) + zp, clipped to int64.

    The clipping to int64 changes a bound only for 64-bit outputs with a zero point, and only
    matters where r itself can leave int64 (the exact 128-bit products of ``overflow="record"``):
    :func:`_exact_beyond_int64` redoes those entries with Python ints."""
    return max(out.min - zp, INT64_MIN), min(out.max - zp, INT64_MAX)


def _exact_beyond_int64(r: np.ndarray, xa: np.ndarray, m: np.ndarray, k: np.ndarray, mode: str, order: str,
                        out: IntType, zp: int, lo: int, hi: int) -> np.ndarray:
    """``r + zp``, except that entries of ``r`` at (or, for jam, next to) an int64-clipped bound are
    recomputed exactly with Python ints: the exact rounded value ``R`` of ``x*m / 2**k`` may lie
    beyond int64 there (between ``out.min - zp`` and ``INT64_MIN``, say), where ``r`` holds the
    int64 limit instead. Returns ``sat_out(R + zp)`` (round_then_saturate) or, for
    clamp_then_round, ``R`` = the rounding of ``x*m / 2**k`` clamped to the exact integer bounds
    ``[out.min - zp, out.max - zp]``, plus ``zp``, saturated (only jam can step off a bound)."""
    r = np.asarray(r, dtype=np.int64)
    values = np.array(r + zp, dtype=np.int64)
    lo_x, hi_x = out.min - zp, out.max - zp
    sel = np.zeros(r.shape, dtype=bool)
    if lo_x < lo:
        sel |= r <= lo + 1
    if hi_x > hi:
        sel |= r >= hi - 1
    if not sel.any():
        return values
    xb, mb, kb = np.broadcast_arrays(xa, m, k)
    for i in np.flatnonzero(sel):
        idx = np.unravel_index(int(i), r.shape)
        p, kk = int(xb[idx]) * int(mb[idx]), int(kb[idx])
        if order == "clamp_then_round" and p >> kk < lo_x:  # floor(v) < lo iff v < lo (lo an integer)
            v = _round_bound(lo_x, mode)
        elif order == "clamp_then_round" and -((-p) >> kk) > hi_x:  # ceil(v) > hi iff v > hi
            v = _round_bound(hi_x, mode)
        else:
            v = int(shift_right(p, kk, mode))
        values[idx] = min(max(v + zp, out.min), out.max)
    return values


@renamed_keyword("registers", "widths")
def requantize(
    x: Any,
    scale: Any,
    rounding: str | None = None,
    out: IntType | str = INT8,
    *,
    mode: str = "dyadic",
    in_type: IntType | str = INT32,
    zero_point: int = 0,
    order: str = "round_then_saturate",
    allow_negative: bool = False,
    overflow: str = "raise",
    widths: Mapping[str, Any] | None = None,
    taps: bool = False,
) -> OpResult:
    """Requantize integers ``x`` (real value ``x * s_in``) to ``out`` by the scale ``s``.

    The result is ``sat_out(round(x * s) + zero_point)``, with the rounding and arithmetic of
    the back-end ``mode`` (see the module table): ``dyadic`` (exact, any ``rounding``;
    default ``half_even``), ``tflite_double``, ``tflite_single``, ``onnx_ref``, ``ort_fp32``,
    ``gemmini_fp32``. Only ``dyadic`` takes a ``rounding``; the other back-ends fix theirs
    and refuse a different one.

    **Float overflow** (float modes). When the float product ``x * s`` overflows the working
    type (float32, or float64 in ``onnx_ref``) it is ``+inf`` or ``-inf`` (never NaN: ``x``
    and ``s`` are finite), and it saturates like any other value beyond the output range:
    ``+inf`` gives ``out.max``, ``-inf`` gives ``out.min``, in both orders, with or without
    taps (no error, no register event). That is the specified ``saturate(round(x / y_scale) +
    y_zero_point)`` of ONNX ``QuantizeLinear``, and what the runtimes do: onnxruntime's MLAS
    clamps the float value to the output range (as floats, so inf is clamped) before the
    float->int conversion, and Gemmini's HardFloat fp32->int conversion saturates. It is also
    continuous: the largest finite products already saturate (every output here has at most
    53 bits), so an error just past the overflow threshold would have no counterpart just
    below it. (The ONNX Python reference evaluator computes ``np.rint(v).astype(np.int32)``,
    which numpy leaves undefined for ``|v| >= 2**31``, inf included; intsim follows the
    specified saturation there too, as it does for finite values beyond int32.) The taps show
    an overflowed product as the inf bit pattern in ``scaled_bits``. A scale that itself
    overflows float32 is refused (ConfigError) by the float32 modes, in both paths.

    Parameters
    ----------
    x:
        integer array (int64 or narrower); every entry must fit ``in_type`` (default int32),
        else OperandRangeError. Float arrays raise DTypeError.
    scale:
        a :class:`~intsim.core.dyadic.Dyadic`, a list of Dyadics, a float or an array of floats.
        Its shape must broadcast *to* ``x``'s shape: a scalar, per-channel along ``x``'s
        trailing axes (e.g. ``(C,)`` for ``x`` of shape ``(..., C)``, ``(R, 1)`` for
        ``(R, C)``), or ``x``'s own shape; any other shape (one that does not broadcast, or
        that would enlarge the result beyond ``x.shape``) raises ShapeError naming both
        shapes. Zero, negative (unless ``allow_negative``), NaN or Inf scales raise ConfigError,
        and so do scales beyond float32's range in ``ort_fp32`` and ``gemmini_fp32``.
    out:
        output type (``IntType`` or a name such as ``"int8"``); saturation target.
    zero_point:
        an integer scalar in ``out``'s range, added after rounding, before saturation.
    order:
        ``round_then_saturate`` (ONNX, TFLite): ``sat_out(round(v) + zp)`` with ``v = x*s`` as
        the mode computes it. ``clamp_then_round`` (qonnx, TVM): ``round(clip(v, lo, hi)) + zp``
        where ``lo = out.min - zp`` and ``hi = out.max - zp`` are exact integers (compared
        with ``v`` exactly, in every mode: never rounded to the float working type).
    overflow, widths:
        policy and width overrides for the intermediate registers: ``product`` (64 bits) in
        ``dyadic``; ``shifted_input`` and ``result`` (32 bits) in the TFLite modes; the float
        modes have none. A name the mode does not declare raises ConfigError listing the
        valid names. (``registers=`` is the old name of ``widths=``; it still works, with a
        DeprecationWarning.)
    taps:
        also return the intermediate registers as taps (default False: the fused kernels
        write only the values).

    Returns
    -------
    OpResult with int64 ``values`` of ``x``'s shape (a 0-d int64 array for a scalar ``x``, in
    both paths, like the other intsim operators; taps likewise), ``scale`` = the output step
    (``1.0``: the caller's output scale is ``s_in / s``; requantize itself only maps
    integers), op counts per element and taps (``product``, ``rounded``, ... depending on the mode; float modes tap
    the float32/float64 bit patterns of the scaled value as ``scaled_bits``).

    >>> import numpy as np
    >>> requantize(np.array([5, -5, 7]), 0.5, "half_away").values.tolist()
    [3, -3, 4]
    >>> requantize(np.array([2**24 + 1]), 1.0, mode="ort_fp32", out="int32").values.tolist()   # fp32 rounds
    [16777216]
    >>> requantize(np.array([2**24 + 1]), 1.0, mode="onnx_ref", out="int32").values.tolist()
    [16777217]
    >>> requantize(np.array([2**30]), 4.0, mode="ort_fp32", out="int32", zero_point=-100,   # exact bound 2**31 + 99
    ...            order="clamp_then_round").values.tolist()
    [2147483647]
    >>> requantize(np.array([2**62, -2**62]), 1e300, mode="onnx_ref", in_type="int64").values.tolist()  # +-inf
    [127, -128]
    """
    if mode not in REQUANT_MODES:
        raise ConfigError(f"unknown requantization mode {mode!r}; valid: {', '.join(REQUANT_MODES)} "
                          "(tosa_rescale is not provided: its exact semantics are not specified in intsim's notes)")
    if order not in REQUANT_ORDERS:
        raise ConfigError(f"unknown order {order!r}; valid: {', '.join(REQUANT_ORDERS)}")
    out_t = _int_type(out, "out")
    in_t = _int_type(in_type, "in_type")
    if out_t.bits == 64 and not out_t.signed:
        raise ConfigError("out=uint64 is not supported (results are held in int64)")
    if isinstance(zero_point, bool) or not isinstance(zero_point, (int, np.integer)):
        raise ConfigError(f"zero_point must be an integer, got {zero_point!r}")
    zp = int(zero_point)
    if not out_t.contains(zp):
        raise ConfigError(f"zero_point {zp} is outside the output type {out_t.name} [{out_t.min}, {out_t.max}]")
    xa = _checked_input(x, in_t)
    n = int(xa.size)
    taps_d: dict[str, np.ndarray] = {}
    ops = OpCounts()
    lo, hi = _clamp_bounds(out_t, zp)
    tapd = taps_d if taps else None
    ctr = order == "clamp_then_round"
    if mode == "dyadic":
        rmode = rounding_mode(rounding if rounding is not None else "half_even")
        regs = RegisterFile("requantize", dict(DYADIC_CHAIN.defaults(), **_check_registers(
            f"requantize(mode={mode!r})", widths, DYADIC_CHAIN.names)), overflow=overflow)
        m, k, _ = _dyadics(scale, allow_negative)
        _check_param_shape("requantize", "scale", m.shape, "x", xa.shape)
        xmax, mmax = _abs_max(xa), _abs_max(m)
        if xmax * mmax <= INT64_MAX:  # every product fits int64
            values = _run_dyadic(regs, xa, m, k, rmode, lo, hi, zp, ctr, tapd, xmax)
        else:
            values = _requant_dyadic_wide(to_int64(xa, "x"), m, k, rmode, lo, hi, zp, ctr, regs, tapd)
            if regs.overflow == "record" and (out_t.min - zp < lo or out_t.max - zp > hi):
                values = _exact_beyond_int64(values - zp, xa, m, k, rmode, order, out_t, zp, lo, hi)
        mbits = max(1, int(mmax).bit_length() + 1)
        prod_bits = min(128, in_t.bits + mbits)
        ops.add("mul", (in_t.bits, mbits), n).add("shift", (prod_bits,), n)
    elif mode in ("tflite_double", "tflite_single"):
        if rounding is not None and rounding_mode(rounding) != ("half_up" if mode == "tflite_single" else "half_away"):
            raise ConfigError(f"mode {mode!r} fixes its own rounding; do not pass rounding={rounding!r}")
        single = mode == "tflite_single"
        w = _check_registers(f"requantize(mode={mode!r})", widths, TFLITE_CHAIN.names)
        q, s = _tflite_params(scale, single)
        _check_param_shape("requantize", "scale", q.shape, "x", xa.shape)
        regs = RegisterFile("requantize", dict(TFLITE_CHAIN.defaults(), **w), overflow=overflow)
        if in_t.bits > 32:
            if in_t.bits > 48:
                raise ConfigError(f"TFLite's int64-input MultiplyByQuantizedMultiplier takes |x| < 2**47; "
                                  f"in_type {in_t.name} is too wide")
            r = multiply_by_quantized_multiplier_int64(to_int64(xa, "x"), q, s, _regs=regs, _taps=taps_d)
            values = np.clip(r, lo, hi) + zp  # already an integer: both orders coincide
            ops.add("mul", (48, 16), n).add("add", (64,), n).add("shift", (64,), n)
        else:
            if not in_t.signed and in_t.bits == 32:
                INT32.check(xa, "x")  # uint32 values above INT32_MAX are not int32 inputs
            values = _run_tflite(regs, xa, q, s, single, lo, hi, zp, tapd)  # both orders coincide
            if single:
                ops.add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n)
            else:
                ops.add("shift", (32,), n)                                   # x << left
                ops.add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n)  # SRDHM
                ops.add("shift", (32,), n).add("compare", (32,), n).add("add", (32,), n)  # RDBPOT
    else:
        if rounding is not None and rounding_mode(rounding) != "half_even":
            raise ConfigError(f"mode {mode!r} rounds half to even; do not pass rounding={rounding!r}")
        if mode == "gemmini_fp32" and zp != 0:
            raise ConfigError("gemmini_fp32 has no output zero point (Gemmini scales and saturates only)")
        if out_t.bits > 53:
            raise ConfigError(f"float back-ends cannot produce exact {out_t.name} results; use at most 53 bits")
        use32 = mode != "onnx_ref"
        if use32 and in_t.bits > 53:
            raise ConfigError(f"{mode}: inputs wider than 53 bits are not supported (in_type {in_t.name})")
        regs = RegisterFile("requantize", _check_registers(f"requantize(mode={mode!r})", widths, ()),
                            overflow=overflow)
        sarr = _scales_array(scale, allow_negative)
        _check_param_shape("requantize", "scale", sarr.shape, "x", xa.shape)
        if use32:
            _check_float32_scale(mode, sarr)
        values = _run_float(xa, sarr, use32, lo, hi, zp, tapd)
        w = 24 if use32 else 53
        ops.add("mul", (w, w), n).add("shift", (32 if w == 24 else 64,), 2 * n)  # multiply; int->float, rint
    if zp:
        ops.add("add", (out_t.bits,), n)
    ops.add("compare", (out_t.bits,), 2 * n)
    # int64 arrays in every path: a scalar x gives 0-d arrays (never numpy scalars), as the other
    # intsim operators return for scalar input
    values = np.asarray(values, dtype=np.int64)
    if taps:
        taps_d = {name: np.asarray(t) for name, t in taps_d.items()}
        taps_d["output"] = values
    return OpResult(values=values, scale=1.0, ops=ops, registers=regs, taps=taps_d if taps else {})


def _checked_input(x: Any, in_t: IntType) -> np.ndarray:
    """``x`` as an integer array whose entries fit ``in_t`` (no copy; no scan when its dtype's
    whole range fits ``in_t``)."""
    arr = as_int_array(x, "x")
    if arr.dtype == np.uint64:
        arr = to_int64(arr, "x")
    info = np.iinfo(arr.dtype)
    if info.min < in_t.min or info.max > in_t.max:
        in_t.check(arr, "x")
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return arr


def _tflite_params(scale: Any, single: bool) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(scale, Dyadic) or (isinstance(scale, (list, tuple)) and scale
                                     and all(isinstance(s, Dyadic) for s in scale)):
        ds = [scale] if isinstance(scale, Dyadic) else list(scale)
        pairs = []
        for d in ds:
            if d.m <= 0:
                raise ConfigError(f"scale {d} must be positive for the TFLite back-ends")
            qq, ss = d.to_tflite()
            if not -31 <= ss <= 30:
                raise ConfigError(f"scale {d} gives TFLite shift {ss}, outside [-31, 30]")
            pairs.append((qq, ss))
        shape: tuple = () if isinstance(scale, Dyadic) else (len(ds),)
    else:
        arr = _scales_array(scale, allow_negative=False)
        pairs = [quantize_multiplier(float(s), single_rounding=single) for s in arr.reshape(-1)]
        for s_, (qq, ss) in zip(arr.reshape(-1), pairs, strict=True):
            if qq == 0:
                raise ConfigError(f"scale {float(s_)} is below 2**-32: TFLite flushes it to a zero multiplier")
            if ss > 30:
                raise ConfigError(f"scale {float(s_)} needs a left shift of {ss} (> 30)")
        shape = arr.shape
    q = np.array([p[0] for p in pairs], dtype=np.int64).reshape(shape)
    s = np.array([p[1] for p in pairs], dtype=np.int64).reshape(shape)
    return q, s


def _product_overflow(regs: RegisterFile, xb: np.ndarray, mb: np.ndarray, bad: np.ndarray) -> None:
    """Record (and under ``raise``, raise) products ``x*m`` that do not fit the product register."""
    t = regs.type_of("product")
    first = int(np.flatnonzero(bad.reshape(-1))[0])
    idx = tuple(int(i) for i in np.unravel_index(first, bad.shape))
    value = int(xb[idx]) * int(mb[idx])
    count = int(np.count_nonzero(bad))
    regs.events.append(RegisterEvent(regs.op, "product", t.bits, t.signed, count, idx, value, regs.overflow))
    if regs.overflow == "raise":
        raise RegisterOverflow(
            f"{regs.op}: register 'product' ({t.name}) overflowed: {count} value(s) outside [{t.min}, {t.max}]; "
            f"first at index {idx}: {value} (overflow='record' keeps the exact product)",
            op=regs.op, step="product", value=value, bits=t.bits)


def _requant_dyadic_wide(xx: np.ndarray, m: np.ndarray, k: np.ndarray, mode: str, lo: int, hi: int, zp: int,
                         ctr: bool, regs: RegisterFile, taps: dict | None) -> np.ndarray:
    """The dyadic requantization when some ``|x| |m|`` exceeds int64 (``values``, zero point
    added): where no product does, as :func:`_run_dyadic`; else the product register overflows
    (an event; raised under ``raise``): ``wrap``/``saturate`` give the 64-bit register's
    product, ``record`` the exact result of the (wider than declared) product."""
    xb, mb, kb = np.broadcast_arrays(xx, m, k)
    r, wide = _mul_shift_round_exact(xx, m, k, mode, product_fits=False, clip=(lo, hi))
    one = np.ones(1, dtype=np.int64)
    if not wide.any():
        return _run_dyadic(regs, xb * mb, one, kb, mode, lo, hi, zp, ctr, taps)
    t = regs.type_of("product")
    low = (xb.astype(np.uint64) * mb.astype(np.uint64)).astype(np.int64)  # the product mod 2**64
    exact_low = np.where(wide, 0, low)  # exact where the product fits int64
    bad = wide | ~np.asarray(t.contains(exact_low))
    _product_overflow(regs, xb, mb, bad)  # raises under "raise"
    if regs.overflow in ("wrap", "saturate"):
        if regs.overflow == "wrap":
            prod = np.asarray(t.wrap(low), dtype=np.int64)
        else:
            neg = (xb < 0) != (mb < 0)
            sat = np.where(neg, np.int64(t.min), np.int64(t.max))
            prod = np.where(wide, sat, np.asarray(t.saturate(exact_low), dtype=np.int64))
        # the products after the register's policy (its event is recorded): round and saturate them
        return _run_dyadic(RegisterFile("requantize", {"product": 64}), prod, one, kb, mode, lo, hi, zp, ctr, taps)
    # record: the exact result of the (wider than declared) product
    if ctr:
        wider = (max(lo - 1, INT64_MIN), min(hi + 1, INT64_MAX))
        fl, _ = _mul_shift_round_exact(xx, m, k, "floor", product_fits=False, clip=wider)
        ce, _ = _mul_shift_round_exact(xx, m, k, "ceil", product_fits=False, clip=wider)
        r = np.where(fl < lo, _round_bound(lo, mode), np.where(ce > hi, _round_bound(hi, mode), r))
        if mode == "jam":
            r = np.clip(r, lo, hi)  # jam can move an exact bound by one
    else:
        if taps is not None:
            taps["rounded"] = r
        r = np.clip(r, lo, hi)
    return r + zp


def _round_bound(b: int, mode: str) -> int:
    """The rounding of an (exact) integer bound: the bound itself, except ``jam`` (``b | 1``)."""
    return b | 1 if mode == "jam" else b
