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

**Exactness.** ``dyadic``: when every product ``x * m`` fits int64 the computation is
numpy int64 (the product is exact, then :func:`intsim.core.rounding.shift_right` rounds
exactly). Otherwise the product register (declared 64 bits by default) overflows:
``overflow="raise"`` raises :class:`~intsim.core.errors.RegisterOverflow`, ``"wrap"`` /
``"saturate"`` model a 64-bit product register, and ``"record"`` computes the exact
128-bit product with a numba kernel (proof in :func:`_mul_u64_128`) and rounds it
exactly. The float modes are exact emulations because numpy's float32/float64
arithmetic *is* the IEEE arithmetic the runtimes use.

With ``taps=False`` the common cases run as one fused numba loop per call (per-tensor or
last-axis scales, default register widths). The dyadic loop rounds by bias-and-shift,
``round(p / 2**k) = (p + b) >> k`` with ``b`` = 0 (floor), ``2**k - 1`` (ceil), ``2**(k-1)``
(half up), ``2**(k-1) - 1`` (half down), the sign-dependent choice between those for
trunc/away/half_away/half_zero, and a step back at exact ties for half_even/half_odd;
it is taken only when ``|x| * |m| + 2**k`` fits int64, so no intermediate wraps. The TFLite
loops reproduce the C expressions in int64 and fall back to the checked path if an int32
register would overflow. The tests compare the fused and reference paths on random inputs
for every mode.

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
from ..core.dyadic import Dyadic, check_scale, quantize_multiplier
from ..core.errors import ConfigError, OperandRangeError, RegisterOverflow, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.rounding import ROUNDING_MODES, rounding_mode, shift_right
from ..regs.opresult import OpResult
from ..regs.registers import RegisterEvent, RegisterFile

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
#: the intermediate registers each requantize mode declares (the names ``registers=`` accepts)
_MODE_REGISTERS: dict[str, tuple[str, ...]] = {
    "dyadic": ("product",), "tflite_double": ("shifted_input", "result"),
    "tflite_single": ("shifted_input", "result"), "onnx_ref": (), "ort_fp32": (), "gemmini_fp32": (),
}

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_MODE_CODE = {name: i for i, name in enumerate(ROUNDING_MODES)}
INT8 = IntType(8)
INT32 = IntType(32)


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


def multiply_by_quantized_multiplier(
    x: Any, quantized_multiplier: Any, shift: Any, *, single_rounding: bool = False,
    overflow: str = "raise", registers: Mapping[str, Any] | None = None,
    _regs: RegisterFile | None = None, _taps: dict | None = None,
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
    trailing axes work; any other shape is a ShapeError). ``registers`` overrides the widths
    of ``shifted_input`` and ``result`` (32 bits); any other name is a ConfigError. Returns
    int64 values of the int32 result, of ``x``'s shape.

    >>> multiply_by_quantized_multiplier([-99996, 5], 1610612736, -1).tolist()
    [-37499, 2]
    >>> multiply_by_quantized_multiplier([-99996, 5], 1610612736, -1, single_rounding=True).tolist()
    [-37498, 2]
    """
    op = "multiply_by_quantized_multiplier"
    widths = _check_registers(op, registers, ("shifted_input", "result"))
    regs = _regs or RegisterFile(op, dict({"shifted_input": 32, "result": 32}, **widths), overflow=overflow)
    xx = to_int64(IntType(32).check(as_int_array(x, "x"), "x"), "x")
    q, s = _mbqm_args(op, xx.shape, quantized_multiplier, shift, -31, 30)
    if single_rounding:
        total = 31 - s
        prod = xx * q  # |x*q| < 2**62
        res = (prod + (np.int64(1) << (total - 1))) >> total
        if _taps is not None:
            _taps["product"] = prod
            _taps["rounded"] = res
        return regs.check("result", res)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = regs.check("shifted_input", xx * (np.int64(1) << left))
    hm = saturating_rounding_doubling_high_mul(shifted, q)
    res = rounding_divide_by_pot(hm, right)
    if _taps is not None:
        _taps["shifted_input"] = shifted
        _taps["srdhm"] = hm
        _taps["rounded"] = res
    return res


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


@numba.njit(cache=True, inline="always")
def _abs_u64(v):  # pragma: no cover - numba
    if v < 0:
        return np.uint64(-(v + 1)) + _U1
    return np.uint64(v)


@numba.njit(cache=True, inline="always")
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


@numba.njit(cache=True, inline="always")
def _round_code(fl, cls, mode):  # pragma: no cover - numba
    """Round v = fl + frac (fl = floor v) where cls codes frac: 0 zero, 1 below 1/2, 2 a tie,
    3 above 1/2; ``mode`` is the index in ROUNDING_MODES. Mirrors intsim.core.rounding._round_int."""
    if mode == 10:  # jam
        return fl | 1
    if cls == 0 or mode == 0:
        return fl
    if mode == 1:  # ceil
        return fl + 1
    if mode == 2:  # trunc
        return fl + 1 if fl < 0 else fl
    if mode == 3:  # away
        return fl if fl < 0 else fl + 1
    if mode == 11:  # jam_unbiased
        return fl | 1
    if cls == 1:
        return fl
    if cls == 3:
        return fl + 1
    if mode == 4:  # half_even
        return fl + (fl & 1)
    if mode == 5:  # half_odd
        return fl + 1 - (fl & 1)
    if mode == 6:  # half_away
        return fl if fl < 0 else fl + 1
    if mode == 7:  # half_up
        return fl + 1
    if mode == 8:  # half_down
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
    _wide_kernel(xf, mf, kf, _MODE_CODE[mode], res, huge, wide)
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
# fused single-pass kernels for requantize(..., taps=False) (same results as the numpy paths)
# ------------------------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _rdbpot1(x, e):  # pragma: no cover - numba
    mask = (np.int64(1) << e) - np.int64(1)
    thr = (mask >> np.int64(1)) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if (x & mask) > thr else np.int64(0))


@numba.njit(cache=True, inline="always")
def _shift_round(p, kk, mode):  # pragma: no cover - numba
    """round(p / 2**kk) for 0 <= kk <= 62 by bias-and-shift, branch-free once ``mode`` is a
    constant: the bias is what must be added before the floor shift for each rule, and the
    two tie-parity modes then step back from an odd/even result at an exact tie."""
    one = np.int64(1)
    if kk == 0:
        return p | one if mode == 10 else p
    d = one << kk
    half = d >> one
    neg = one if p < 0 else np.int64(0)
    if mode == 0:  # floor
        return p >> kk
    if mode == 1:  # ceil
        return (p + d - one) >> kk
    if mode == 2:  # trunc
        return (p + neg * (d - one)) >> kk
    if mode == 3:  # away
        return (p + (one - neg) * (d - one)) >> kk
    if mode == 4:  # half_even
        q = (p + half) >> kk
        tie = one if (p & (d - one)) == half else np.int64(0)
        return q - (tie & q)
    if mode == 5:  # half_odd
        q = (p + half) >> kk
        tie = one if (p & (d - one)) == half else np.int64(0)
        return q - (tie & (one - (q & one)))
    if mode == 6:  # half_away
        return (p + half - neg) >> kk
    if mode == 7:  # half_up
        return (p + half) >> kk
    if mode == 8:  # half_down
        return (p + half - one) >> kk
    if mode == 9:  # half_zero
        return (p + half - (one - neg)) >> kk
    if mode == 10:  # jam
        return (p >> kk) | one
    return (p >> kk) | (one if (p & (d - one)) != 0 else np.int64(0))  # jam_unbiased


@numba.njit(cache=True, inline="always")
def _dyadic_loop(x, m, k, mode, lo, hi, zp, out):  # pragma: no cover - numba
    C = m.size
    if C == 1:
        m0 = m[0]
        k0 = k[0]
        for i in range(x.size):
            out[i] = min(max(_shift_round(np.int64(x[i]) * m0, k0, mode), lo), hi) + zp
    else:
        for r in range(x.size // C):
            for j in range(C):
                i = r * C + j
                out[i] = min(max(_shift_round(np.int64(x[i]) * m[j], k[j], mode), lo), hi) + zp


@numba.njit(cache=True)
def _dyadic_fast(x, m, k, mode, lo, hi, ctr, zp, out):  # pragma: no cover - numba
    """out = clip(round(x*m / 2**k)) + zp for int x, per-channel m, k (period C = m.size);
    every product fits int64 and 0 <= k <= 62 (the caller checks). The common rounding modes
    get their own loop with the mode as a constant, so LLVM can vectorize it."""
    if ctr:
        C = m.size
        for r in range(x.size // C):
            for j in range(C):
                i = r * C + j
                p = np.int64(x[i]) * m[j]
                kk = k[j]
                v = _shift_round(p, kk, mode)
                q = p >> kk
                if q < lo:
                    v = lo | 1 if mode == 10 else lo
                elif q + (np.int64(1) if (p & ((np.int64(1) << kk) - np.int64(1))) != 0 else np.int64(0)) > hi:
                    v = hi | 1 if mode == 10 else hi
                out[i] = min(max(v, lo), hi) + zp
    elif mode == 4:  # the common modes get a loop with the mode as a constant (vectorizable)
        _dyadic_loop(x, m, k, 4, lo, hi, zp, out)
    elif mode == 7:
        _dyadic_loop(x, m, k, 7, lo, hi, zp, out)
    elif mode == 6:
        _dyadic_loop(x, m, k, 6, lo, hi, zp, out)
    elif mode == 0:
        _dyadic_loop(x, m, k, 0, lo, hi, zp, out)
    elif mode == 2:
        _dyadic_loop(x, m, k, 2, lo, hi, zp, out)
    else:
        _dyadic_loop(x, m, k, mode, lo, hi, zp, out)


@numba.njit(cache=True, inline="always")
def _tflite_one(xi, q, ss, single):  # pragma: no cover - numba
    """(value, 1 if an int32 register overflowed else 0) of MultiplyByQuantizedMultiplier."""
    if single:
        total = np.int64(31) - ss
        v = (xi * q + (np.int64(1) << (total - np.int64(1)))) >> total
        return v, (np.int64(1) if v < INT32_MIN or v > INT32_MAX else np.int64(0))
    sh = xi << max(ss, np.int64(0))
    hm = (sh * q + np.int64(1 << 30)) >> np.int64(31)  # SRDHM; MIN*MIN cannot occur: q >= 0
    return _rdbpot1(hm, max(-ss, np.int64(0))), (np.int64(1) if sh < INT32_MIN or sh > INT32_MAX else np.int64(0))


@numba.njit(cache=True)
def _tflite_fast(x, q, s, single, lo, hi, zp, out):  # pragma: no cover - numba
    """TFLite MultiplyByQuantizedMultiplier then clip + zp; returns how many int32 registers
    (shifted input or result) overflowed (the caller then reruns the checked numpy path)."""
    C = q.size
    bad = np.int64(0)
    if C == 1:
        q0 = q[0]
        s0 = s[0]
        if single:
            for i in range(x.size):
                v, b = _tflite_one(np.int64(x[i]), q0, s0, True)
                bad += b
                out[i] = min(max(v, lo), hi) + zp
        else:
            for i in range(x.size):
                v, b = _tflite_one(np.int64(x[i]), q0, s0, False)
                bad += b
                out[i] = min(max(v, lo), hi) + zp
        return bad
    for r in range(x.size // C):
        for j in range(C):
            i = r * C + j
            v, b = _tflite_one(np.int64(x[i]), q[j], s[j], single)
            bad += b
            out[i] = min(max(v, lo), hi) + zp
    return bad


@numba.njit(cache=True, inline="always")
def _float_one(xi, s64, s32, use32, flo, fhi):  # pragma: no cover - numba
    """clip(rint(v), lo, hi) for v = x*s in float32 (use32) or float64. ``rint`` of a float is
    an integer-valued float of the same precision, exactly representable in float64; ``flo``,
    ``fhi`` are the integer bounds, exact in float64 (|bound| < 2**53), so the comparisons and
    the conversion to int64 are exact. A product that overflows is +-inf (never NaN: x and s
    are finite), which the clip maps to ``fhi`` / ``flo`` before the conversion: it saturates,
    as in the numpy path."""
    if use32:
        v = np.float64(np.rint(np.float32(xi) * s32))
    else:
        v = np.rint(np.float64(xi) * s64)
    return np.int64(min(max(v, flo), fhi))


@numba.njit(cache=True)
def _float_fast(x, s64, s32, use32, lo, hi, zp, out):  # pragma: no cover - numba
    """Float back-ends in one pass: float32 (use32) or float64 scaling, rint (ties to even),
    exact saturation to the integer bounds [lo, hi] (both orders: see _requant_float)."""
    C = s64.size
    flo = np.float64(lo)
    fhi = np.float64(hi)
    if C == 1:
        a64 = s64[0]
        a32 = s32[0]
        if use32:
            for i in range(x.size):
                out[i] = _float_one(x[i], a64, a32, True, flo, fhi) + zp
        else:
            for i in range(x.size):
                out[i] = _float_one(x[i], a64, a32, False, flo, fhi) + zp
        return
    if use32:
        for r in range(x.size // C):
            for j in range(C):
                i = r * C + j
                out[i] = _float_one(x[i], s64[j], s32[j], True, flo, fhi) + zp
    else:
        for r in range(x.size // C):
            for j in range(C):
                i = r * C + j
                out[i] = _float_one(x[i], s64[j], s32[j], False, flo, fhi) + zp


def _kernel_input(xa: np.ndarray) -> np.ndarray:
    """The flat input for a fused kernel, as int32 or int64 (two compiled variants only)."""
    flat = xa.reshape(-1)
    if flat.dtype in (np.int32, np.int64):
        return flat
    return flat.astype(np.int32 if flat.dtype.itemsize <= 2 else np.int64)  # (u)int8/16 -> int32; uint32 -> int64


def _channel_vector(arr: np.ndarray, xshape: tuple) -> np.ndarray | None:
    """A per-tensor or last-axis parameter as a flat array of period 1 or xshape[-1]; None if it
    broadcasts any other way (the numpy path handles those)."""
    if arr.size == 1:
        return arr.reshape(1)
    if xshape and arr.ndim <= len(xshape) and arr.shape[-1] == xshape[-1] and arr.size == xshape[-1]:
        return np.ascontiguousarray(arr.reshape(-1))
    return None


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
    registers: Mapping[str, Any] | None = None,
    taps: bool = True,
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
    overflow, registers:
        policy and width overrides for the intermediate registers: ``product`` (64 bits) in
        ``dyadic``; ``shifted_input`` and ``result`` (32 bits) in the TFLite modes; the float
        modes have none. A name the mode does not declare raises ConfigError listing the
        valid names.
    taps:
        return the intermediate registers as taps (default). ``taps=False`` runs a fused
        single-pass numba kernel where one applies (per-tensor or last-axis scales, default
        register widths, no register event): same values, several times faster.

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
    values = None

    if mode == "dyadic":
        rmode = rounding_mode(rounding if rounding is not None else "half_even")
        widths = _check_registers(f"requantize(mode={mode!r})", registers, _MODE_REGISTERS[mode])
        regs = RegisterFile("requantize", dict({"product": 64}, **widths), overflow=overflow)
        m, k, _ = _dyadics(scale, allow_negative)
        _check_param_shape("requantize", "scale", m.shape, "x", xa.shape)
        if not taps and regs.type_of("product") == IntType(64) and k.size and int(k.max()) <= 62 \
                and _abs_max(xa) * _abs_max(m) + (1 << int(k.max())) <= INT64_MAX:  # p + bias fits int64
            mv, kv = _channel_vector(m, xa.shape), _channel_vector(k, xa.shape)
            if mv is not None and kv is not None:
                size = max(mv.size, kv.size)
                mv, kv = np.broadcast_to(mv, (size,)).copy(), np.broadcast_to(kv, (size,)).copy()
                out = np.empty(xa.shape, dtype=np.int64)
                _dyadic_fast(_kernel_input(xa), mv, kv, _MODE_CODE[rmode], lo, hi, order == "clamp_then_round", zp,
                             out.reshape(-1))
                values = out
        if values is None:
            r = _requant_dyadic(to_int64(xa, "x"), m, k, rmode, lo, hi, order, regs, taps_d)
            if order == "clamp_then_round" and rmode == "jam":
                r = np.clip(r, lo, hi)  # jam can move an exact bound by one
            if regs.overflow == "record" and (out_t.min - zp < lo or out_t.max - zp > hi):
                values = _exact_beyond_int64(r, xa, m, k, rmode, order, out_t, zp, lo, hi)
        mbits = max(1, int(_abs_max(m)).bit_length() + 1)
        prod_bits = min(128, in_t.bits + mbits)
        ops.add("mul", (in_t.bits, mbits), n).add("shift", (prod_bits,), n)
    elif mode in ("tflite_double", "tflite_single"):
        if rounding is not None and rounding_mode(rounding) != ("half_up" if mode == "tflite_single" else "half_away"):
            raise ConfigError(f"mode {mode!r} fixes its own rounding; do not pass rounding={rounding!r}")
        single = mode == "tflite_single"
        widths = _check_registers(f"requantize(mode={mode!r})", registers, _MODE_REGISTERS[mode])
        q, s = _tflite_params(scale, single)
        _check_param_shape("requantize", "scale", q.shape, "x", xa.shape)
        regs = RegisterFile("requantize", dict({"shifted_input": 32, "result": 32}, **widths), overflow=overflow)
        if in_t.bits > 32:
            if in_t.bits > 48:
                raise ConfigError(f"TFLite's int64-input MultiplyByQuantizedMultiplier takes |x| < 2**47; "
                                  f"in_type {in_t.name} is too wide")
            r = multiply_by_quantized_multiplier_int64(to_int64(xa, "x"), q, s, _regs=regs, _taps=taps_d)
            ops.add("mul", (48, 16), n).add("add", (64,), n).add("shift", (64,), n)
        else:
            default_regs = regs.type_of("shifted_input") == IntType(32) and regs.type_of("result") == IntType(32)
            qv, sv = _channel_vector(q, xa.shape), _channel_vector(s, xa.shape)
            if not taps and default_regs and qv is not None and sv is not None:
                size = max(qv.size, sv.size)
                out = np.empty(xa.shape, dtype=np.int64)
                bad = _tflite_fast(_kernel_input(xa), np.broadcast_to(qv, (size,)).copy(),
                                   np.broadcast_to(sv, (size,)).copy(), single, lo, hi, zp, out.reshape(-1))
                if bad == 0:
                    values = out
            if values is None:
                r = multiply_by_quantized_multiplier(to_int64(xa, "x"), q, s, single_rounding=single, _regs=regs,
                                                     _taps=taps_d)
            if single:
                ops.add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n)
            else:
                ops.add("shift", (32,), n)                                   # x << left
                ops.add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n)  # SRDHM
                ops.add("shift", (32,), n).add("compare", (32,), n).add("add", (32,), n)  # RDBPOT
        if values is None:
            r = np.clip(r, lo, hi)  # already an integer: both orders coincide
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
        regs = RegisterFile("requantize", _check_registers(f"requantize(mode={mode!r})", registers,
                                                           _MODE_REGISTERS[mode]), overflow=overflow)
        sarr = _scales_array(scale, allow_negative)
        _check_param_shape("requantize", "scale", sarr.shape, "x", xa.shape)
        if use32:
            _check_float32_scale(mode, sarr)
        sv = _channel_vector(sarr, xa.shape)
        if not taps and sv is not None:
            out = np.empty(xa.shape, dtype=np.int64)
            with np.errstate(over="ignore"):  # (onnx_ref does not use the float32 copy)
                s32 = sv.astype(np.float32)
            _float_fast(_kernel_input(xa), sv.astype(np.float64), s32, use32, lo, hi, zp, out.reshape(-1))
            values = out
        else:
            r = _requant_float(to_int64(xa, "x"), sarr, mode, lo, hi, taps_d)
        w = 24 if use32 else 53
        ops.add("mul", (w, w), n).add("shift", (32 if w == 24 else 64,), 2 * n)  # multiply; int->float, rint
    if zp:
        ops.add("add", (out_t.bits,), n)
    ops.add("compare", (out_t.bits,), 2 * n)
    if values is None:
        values = r + zp
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


def _requant_dyadic(xx: np.ndarray, m: np.ndarray, k: np.ndarray, mode: str, lo: int, hi: int, order: str,
                    regs: RegisterFile, taps: dict) -> np.ndarray:
    """clip(round(x*m / 2**k), lo, hi) (or clamp-then-round), through the product register."""
    if _abs_max(xx) * _abs_max(m) <= INT64_MAX:
        # every product is exact in int64; the register applies any narrower declared width
        return _round_and_clip(regs.check("product", xx * m), k, mode, lo, hi, order, taps)
    xb, mb, kb = np.broadcast_arrays(xx, m, k)
    r, wide = _mul_shift_round_exact(xx, m, k, mode, product_fits=False, clip=(lo, hi))
    if not wide.any():
        return _round_and_clip(regs.check("product", xb * mb), kb, mode, lo, hi, order, taps)
    t = regs.type_of("product")
    low = (xb.astype(np.uint64) * mb.astype(np.uint64)).astype(np.int64)  # the product mod 2**64
    exact_low = np.where(wide, 0, low)  # exact where the product fits int64
    bad = wide | ~np.asarray(t.contains(exact_low))
    _product_overflow(regs, xb, mb, bad)  # raises under "raise"
    if regs.overflow == "wrap":
        return _round_and_clip(np.asarray(t.wrap(low), dtype=np.int64), kb, mode, lo, hi, order, taps)
    if regs.overflow == "saturate":
        neg = (xb < 0) != (mb < 0)
        sat = np.where(neg, np.int64(t.min), np.int64(t.max))
        prod = np.where(wide, sat, np.asarray(t.saturate(exact_low), dtype=np.int64))
        return _round_and_clip(prod, kb, mode, lo, hi, order, taps)
    # record: the exact result of the (wider than declared) product
    if order == "clamp_then_round":
        wider = (max(lo - 1, INT64_MIN), min(hi + 1, INT64_MAX))
        fl, _ = _mul_shift_round_exact(xx, m, k, "floor", product_fits=False, clip=wider)
        ce, _ = _mul_shift_round_exact(xx, m, k, "ceil", product_fits=False, clip=wider)
        return np.where(fl < lo, _round_bound(lo, mode), np.where(ce > hi, _round_bound(hi, mode), r))
    taps["rounded"] = r
    return np.clip(r, lo, hi)


def _round_and_clip(prod: np.ndarray, k: Any, mode: str, lo: int, hi: int, order: str, taps: dict) -> np.ndarray:
    """From an int64 product: round(prod / 2**k), then clip to [lo, hi]; or, for clamp-then-round,
    clamp the real value first (below lo iff floor < lo, above hi iff ceil > hi), then round."""
    taps["product"] = prod
    r = np.asarray(shift_right(prod, k, mode), dtype=np.int64)
    taps["rounded"] = r
    if order == "clamp_then_round":
        fl = np.asarray(shift_right(prod, k, "floor"), dtype=np.int64)
        ce = np.asarray(shift_right(prod, k, "ceil"), dtype=np.int64)
        return np.where(fl < lo, _round_bound(lo, mode), np.where(ce > hi, _round_bound(hi, mode), r))
    return np.clip(r, lo, hi)


def _round_bound(b: int, mode: str) -> int:
    """The rounding of an (exact) integer bound: the bound itself, except ``jam`` (``b | 1``)."""
    return b | 1 if mode == "jam" else b


def _requant_float(xx: np.ndarray, sarr: np.ndarray, mode: str, lo: int, hi: int, taps: dict) -> np.ndarray:
    """The float back-ends: ``v = x*s`` in float64 (onnx_ref) or float32 (one IEEE rounding),
    then ``clip(rint(v), lo, hi)`` with the exact integer bounds ``lo``, ``hi`` (|bound| <= 2**53).

    Both orders compute that value. Clamp-then-round is ``rint(clip(v, lo, hi))`` with the
    clamp done on the real value ``v`` against the exact integers ``lo``, ``hi``; since ``rint``
    (ties to even) is monotone and leaves integers unchanged, ``v > hi`` implies ``rint(v) >=
    hi`` and ``v < lo`` implies ``rint(v) <= lo``, so it equals ``clip(rint(v), lo, hi)``. (The
    bounds are never converted to the working float type: once ``|hi| > 2**24``, ``float32(hi)``
    can round inward, below ``hi``, and a clamp against it would cut off valid results, e.g.
    ``float32(2**31 + 99) == 2**31``.) The ``rounded`` tap is that saturated value
    ``clip(rint(v), lo, hi)`` (before the zero point is added), in both orders.

    A product that overflows the working type is ``+-inf`` and saturates like any other value
    beyond the bounds (``rounded`` = ``hi`` or ``lo``; ``scaled_bits`` holds the inf pattern),
    exactly as the fused kernel :func:`_float_fast` does.
    """
    with np.errstate(over="ignore"):  # an overflowing product is +-inf, which saturates (see requantize)
        if mode == "onnx_ref":
            v = np.asarray(xx.astype(np.float64) * sarr.astype(np.float64))
            taps["scaled_bits"] = v.view(np.int64)
        else:
            v = np.asarray(xx.astype(np.float32) * sarr.astype(np.float32))
            taps["scaled_bits"] = v.view(np.int32).astype(np.int64)
    # rint in the working precision (exact integer values, exact in float64; +-inf stays +-inf),
    # then saturation against the integer bounds, compared in the integer domain (int64, exact).
    # The clip to +-2**53 (beyond every bound) maps +-inf to a finite value first; the product of
    # a finite x and a finite scale is never NaN.
    r = np.clip(np.rint(v).astype(np.float64), -(2.0**53), 2.0**53).astype(np.int64)
    out = np.clip(r, lo, hi)
    taps["rounded"] = out
    return out

