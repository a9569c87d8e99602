"""gemmlowp's fixed-point primitives (SRDHM, RDBPOT, ...) and TFLite's
``MultiplyByQuantizedMultiplier`` (both builds, and the int64-input overload), element-wise on
int arrays with the C semantics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...core.arrays import as_int_array, to_int64
from ...core.deprecation import renamed_keyword
from ...core.errors import ConfigError
from ...core.inttype import IntType
from ...regs.registers import RegisterFile
from .common import INT32_MAX, INT64_MAX, INT64_MIN, bits_arg, check_param_shape, check_range, check_registers, int_arg
from .kernels import TFLITE_CHAIN, run_tflite

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
    b_ = bits_arg(bits)
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
    b_ = bits_arg(bits)
    xx = to_int64(IntType(b_).check(as_int_array(x, "x"), "x"), "x")
    e = int_arg(exponent, "exponent")
    check_param_shape("rounding_divide_by_pot", "exponent", e.shape, "x", xx.shape)
    check_range(e, 0, b_ - 1, "exponent", "the RDBPOT exponent range")
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
    b_ = bits_arg(bits)
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
    b_ = bits_arg(bits)
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
    q = int_arg(quantized_multiplier, "quantized_multiplier")
    s = int_arg(shift, "shift")
    check_param_shape(op, "quantized_multiplier", q.shape, "x", xshape)
    check_param_shape(op, "shift", s.shape, "x", xshape)
    check_range(q, 0, INT32_MAX, "quantized_multiplier", "the TFLite multiplier range")
    check_range(s, lo_shift, hi_shift, "shift", "the supported shift range")
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
    regs = RegisterFile(op, dict(TFLITE_CHAIN.defaults(), **check_registers(op, widths, TFLITE_CHAIN.names)),
                        overflow=overflow)
    xx = to_int64(IntType(32).check(as_int_array(x, "x"), "x"), "x")
    q, s = _mbqm_args(op, xx.shape, quantized_multiplier, shift, -31, 30)
    return run_tflite(regs, xx, q, s, bool(single_rounding), INT64_MIN, INT64_MAX, 0, None)


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
    check_range(xx, -(2**47), 2**47 - 1, "x", "the int64-overload input range")
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
