"""Requantization and the TFLite / gemmlowp multiplier helpers in literal C semantics on Python ints:
the specifications of :mod:`intsim.quant.requant` and :func:`intsim.core.dyadic.quantize_multiplier`.

Sources: gemmlowp ``fixedpoint/fixedpoint.h`` (``SaturatingRoundingDoublingHighMul``,
``RoundingDivideByPOT``), TFLite ``kernels/internal/common.h`` (``MultiplyByQuantizedMultiplier``,
both builds) and ``kernels/internal/quantization_util.cc`` (``QuantizeMultiplier``), ONNX
``QuantizeLinear`` / onnxruntime MLAS for the float back-ends. An ``out`` argument is anything with
the ``min`` and ``max`` of the output range, such as :class:`intsim.core.inttype.IntType`.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from .rounding import c_div, float32, round_fraction, round_to_float

if TYPE_CHECKING:
    from intsim.core.inttype import IntType


def saturating_rounding_doubling_high_mul(a: int, b: int, bits: int = 32) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` for ``bits``-wide ints: the high half of
    ``2 * a * b``, rounded half toward +inf via the nudge ``2**(bits-2)`` (``1 - 2**(bits-2)``
    for a negative product) and C's truncating division by ``2**(bits-1)``; the one overflowing
    case ``a == b == min`` saturates to ``max``.

    >>> saturating_rounding_doubling_high_mul(-2**31, -2**31), saturating_rounding_doubling_high_mul(1 << 15, 1 << 15)
    (2147483647, 1)
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if a == b == lo:
        return hi
    ab = a * b
    nudge = (1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2))
    return c_div(ab + nudge, 1 << (bits - 1))


def rounding_divide_by_pot(x: int, e: int) -> int:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**e`` rounded half away from zero (``std::round``).

    >>> [rounding_divide_by_pot(x, 1) for x in (-5, -3, 3, 5)]
    [-3, -2, 2, 3]
    """
    return round_fraction(Fraction(x, 1 << e), "half_away")


def multiply_by_quantized_multiplier(x: int, q: int, shift: int) -> int:
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, int32 q, int shift)``, default (double
    rounding) build: ``RDBPOT(SRDHM(x * 2**max(shift, 0), q), max(-shift, 0))``.

    >>> multiply_by_quantized_multiplier(-99996, 1610612736, -1)
    -37499
    """
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x * (1 << left), q), right)


def multiply_by_quantized_multiplier_single_rounding(x: int, q: int, shift: int) -> int:
    """TFLite ``MultiplyByQuantizedMultiplier`` in the ``TFLITE_SINGLE_ROUNDING`` build:
    ``(x * q + 2**(30 - shift)) >> (31 - shift)``, one rounding, ties toward +inf.

    >>> multiply_by_quantized_multiplier_single_rounding(-99996, 1610612736, -1)
    -37498
    """
    return (x * q + (1 << (30 - shift))) >> (31 - shift)


def quantize_multiplier(scale: float, single: bool = False) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier`` (``quantization_util.cc``): ``(q, shift)`` with
    ``scale ~ q * 2**(shift - 31)``; ``f, shift = frexp(scale)``, ``q = round_half_away(f * 2**31)``
    (``Decimal`` ``ROUND_HALF_UP``); ``q == 2**31`` renormalizes to ``(2**30, shift + 1)``, ``shift < -31``
    flushes to ``(0, 0)``, and with ``single`` (``TFLITE_SINGLE_ROUNDING``) ``shift > 30`` saturates
    to ``(2**31 - 1, 30)``.

    >>> quantize_multiplier(0.375), quantize_multiplier(2.0**-40)
    ((1610612736, -1), (0, 0))
    """
    f, shift = math.frexp(scale)
    q = int(Decimal(f * 2**31).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if single and shift > 30:
        return 2**31 - 1, 30
    return q, shift


def requantize(x: int, m: int, k: int, mode: str, out: IntType, zp: int = 0, order: str = "rts") -> int:
    """:func:`intsim.quant.requant.requantize` with ``mode="dyadic"`` and scale ``m / 2**k``, exactly:
    ``sat_out(round(x * m / 2**k) + zp)`` under the rounding ``mode`` (:func:`round_fraction`).
    ``order="ctr"`` (``clamp_then_round``) first clamps the exact value to
    ``[out.min - zp, out.max - zp]``, then rounds, adds ``zp`` and saturates (only ``jam`` can
    step off a bound).

    >>> from intsim.core.inttype import IntType
    >>> requantize(-1000, 1, 0, "jam", IntType(8)), requantize(-1000, 1, 0, "jam", IntType(8), order="ctr")
    (-128, -127)
    """
    v = Fraction(x * m, 1 << k)
    if order == "ctr":
        lo, hi = out.min - zp, out.max - zp
        v = min(max(v, Fraction(lo)), Fraction(hi))
        return min(max(round_fraction(v, mode) + zp, out.min), out.max)  # (jam can step off a bound)
    r = round_fraction(v, mode) + zp
    return min(max(r, out.min), out.max)


def requantize_float(x: int, scale: float, mant: int, out: IntType, zp: int = 0) -> int:
    """:func:`intsim.quant.requant.requantize` in the float back-ends: ``mant = 24`` for ``ort_fp32``
    and ``gemmini_fp32`` (``float32(x) * float32(scale)``), 53 for ``onnx_ref`` (float64), each
    conversion and the product rounded to nearest even (:func:`round_to_float`, normal range),
    then rounded half to even, ``+ zp`` and saturated to ``out``.

    >>> from intsim.core.inttype import IntType
    >>> requantize_float(2**24 + 1, 1.0, 24, IntType(32)), requantize_float(2**24 + 1, 1.0, 53, IntType(32))
    (16777216, 16777217)
    """
    s = Fraction(float32(scale)) if mant == 24 else Fraction(scale)
    xf = round_to_float(Fraction(x), mant)
    v = round_to_float(xf * s, mant)
    return min(max(round_fraction(v, "half_even") + zp, out.min), out.max)


def requantize_float_div(x: int, scale: float, mant: int, out: IntType, zp: int = 0) -> int:
    """The dividing float back-ends (ONNX ``QuantizeLinear``): ``mant = 24`` for ``ort_div``
    (``float32(x) / float32(scale)``), 53 for ``onnx_refeval_div`` (``float64(x) /
    float64(float32(scale))``): the conversion of ``x`` and the quotient rounded to nearest even
    (:func:`round_to_float`, normal range), then rounded half to even, ``+ zp``, saturated.

    >>> from intsim.core.inttype import IntType
    >>> requantize_float_div(75, 30.0, 24, IntType(8)), requantize_float_div(-75, 30.0, 53, IntType(8), zp=1)
    (2, -1)
    """
    s = Fraction(float32(scale))
    xf = round_to_float(Fraction(x), mant)
    v = round_to_float(xf / s, mant)
    return min(max(round_fraction(v, "half_even") + zp, out.min), out.max)


def requantize_float_zp_first(x: int, scale: float, out: IntType, zp: int = 0) -> int:
    """``onnx_refeval``, the ONNX reference evaluator's ``QLinearMatMul`` arithmetic:
    ``v = fl64(fl64(x) * scale)``, then ``fl64(v + zp)`` (the zero point added in float64, before
    rounding), rounded half to even, saturated to ``out``.

    >>> from intsim.core.inttype import IntType
    >>> [requantize_float_zp_first(x, 0.5, IntType(8), zp=1) for x in (1, 3, 5)]
    [2, 2, 4]
    """
    xf = round_to_float(Fraction(x), 53)
    v = round_to_float(xf * Fraction(scale), 53)
    w = round_to_float(v + zp, 53)
    return min(max(round_fraction(w, "half_even"), out.min), out.max)
