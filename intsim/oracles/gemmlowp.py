"""gemmlowp / TFLite fixed-point non-linear operators on Python ints, line by line: the
specifications of :mod:`intsim.ops.gemmlowp`.

Sources: gemmlowp ``fixedpoint/fixedpoint.h`` (16e8662c3491) for the int32 primitives,
``exp_on_interval_between_negative_one_quarter_and_0_excl``, ``exp_on_negative_values`` and
``one_over_one_plus_x_for_x_in_0_1``; TFLite ``kernels/internal/reference/softmax.h``,
``kernels/internal/common.h`` (``GetInvSqrtQuantizedMultiplierExp``) and
``kernels/internal/quantization_util.cc`` (``PreprocessSoftmaxScaling``) from tflite-micro
(90b983c2b3f1). A raw int32 in Q\\ *m*.\\ *n* (``n = 31 - m``) has the real value ``raw / 2**n``;
gemmlowp's ``+``, ``-`` and ``&`` wrap in int32 (:func:`wrap32`), ``*`` is SRDHM.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from .rounding import float32

if TYPE_CHECKING:
    from intsim.core.inttype import IntType

MIN32, MAX32 = -(2**31), 2**31 - 1

#: exp(-2**j) in Q0.31 for j = -2 .. 4: the barrel-shifter multipliers of ``exp_on_negative_values``.
EXP_BARREL_CONSTANTS: tuple[int, ...] = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def wrap32(v: int) -> int:
    """``v`` as a wrapping int32 (two's complement modulo 2**32).

    >>> wrap32(2**31), wrap32(-(2**31) - 1)
    (-2147483648, 2147483647)
    """
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """``SaturatingRoundingDoublingHighMul`` on int32: ``(a * b + nudge) / 2**31`` in C (truncating)
    division, ``nudge = 2**30`` (``1 - 2**30`` for a negative product); ``MIN32 * MIN32`` saturates.

    >>> saturating_rounding_doubling_high_mul(MIN32, MIN32), saturating_rounding_doubling_high_mul(MIN32, MAX32)
    (2147483647, -2147483647)
    """
    if a == b == MIN32:
        return MAX32
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)
    return q if ab + nudge >= 0 else -q


def rounding_divide_by_pot(x: int, e: int) -> int:
    """``RoundingDivideByPOT``: ``(x >> e) + (remainder > threshold)`` with ``mask = 2**e - 1``,
    ``remainder = x & mask``, ``threshold = (mask >> 1) + (x < 0)``: ties away from zero.

    >>> [rounding_divide_by_pot(x, 1) for x in (-5, 5, -1)], rounding_divide_by_pot(MIN32, 31)
    ([-3, 3, -1], -1)
    """
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def saturating_rounding_multiply_by_pot(x: int, e: int) -> int:
    """``SaturatingRoundingMultiplyByPOT<e>``: ``x * 2**e`` saturated to int32 for ``e > 0``,
    :func:`rounding_divide_by_pot` by ``-e`` otherwise.

    >>> saturating_rounding_multiply_by_pot(1 << 30, 1), saturating_rounding_multiply_by_pot(-3, -1)
    (2147483647, -2)
    """
    if e <= 0:
        return rounding_divide_by_pot(x, -e)
    thr = (1 << (31 - e)) - 1
    return MAX32 if x > thr else MIN32 if x < -thr else x << e


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """exp(a) for Q0.31 ``a`` in [-1/4, 0): exp(-1/8) times the 4th-order Taylor polynomial of
    exp around -1/8 (``x = a + 1/8``; constants exp(-1/8) = 1895147668, 1/3 = 715827883 in Q0.31).

    >>> exp_on_interval_between_negative_one_quarter_and_0_excl(-(1 << 29))  # exp(-1/4)
    1672462419
    """
    srdhm = saturating_rounding_doubling_high_mul
    rdbpot = rounding_divide_by_pot
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    t = wrap32(rdbpot(x4, 2) + x3)
    t = rdbpot(wrap32(srdhm(t, 715827883) + x2), 1)
    return wrap32(1895147668 + srdhm(1895147668, wrap32(x + t)))


def exp_on_negative_values(a: int, k: int) -> int:
    """exp(a) for ``a <= 0`` in Q\\ *k*.(31-k), result Q0.31: the interval function on
    ``(a mod 1/4) - 1/4``, then one multiplication by exp(-2**j) (:data:`EXP_BARREL_CONSTANTS`)
    for each set bit j of the remainder (j = -2 .. 4, those the format has); 0 below -32 when
    ``k > 5``; ``a == 0`` gives MAX32.

    >>> exp_on_negative_values(-(1 << 26), 5), exp_on_negative_values(0, 5)  # exp(-1), exp(0)
    (790015308, 2147483647)
    """
    srdhm = saturating_rounding_doubling_high_mul
    frac = 31 - k
    quarter = 1 << (frac - 2)
    am = wrap32((a & (quarter - 1)) - quarter)
    r = exp_on_interval_between_negative_one_quarter_and_0_excl(saturating_rounding_multiply_by_pot(am, k))
    rem = wrap32(am - a)
    for e, c in zip(range(-2, 5), EXP_BARREL_CONSTANTS, strict=True):
        if k > e and rem & (1 << (frac + e)):
            r = srdhm(r, c)
    if k > 5 and a < -(1 << (36 - k)):
        r = 0
    return MAX32 if a == 0 else r


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """1 / (1 + x) for Q0.31 ``x`` in [0, 1], result Q0.31: ``h = (1 + x) / 2`` by
    ``RoundingHalfSum``, the seed 48/17 - 32/17 h (Q2.29) and three Newton-Raphson steps.

    >>> one_over_one_plus_x_for_x_in_0_1(0), one_over_one_plus_x_for_x_in_0_1(MAX32)
    (2147483647, 1073741820)
    """
    srdhm = saturating_rounding_doubling_high_mul
    s = a + MAX32
    h = (s + 1) // 2  # RoundingHalfSum with a positive sum
    x = wrap32(1515870810 + srdhm(h, -1010580540))
    for _ in range(3):
        om = wrap32((1 << 29) - srdhm(h, x))
        x = wrap32(x + saturating_rounding_multiply_by_pot(srdhm(x, om), 2))
    return saturating_rounding_multiply_by_pot(x, 1)


def get_inv_sqrt_quantized_multiplier_exp(inp: int, reverse_shift: int = -1) -> tuple[int, int]:
    """TFLite ``GetInvSqrtQuantizedMultiplierExp`` (``common.h``): ``(multiplier, shift)`` with
    ``1 / sqrt(inp) ~ multiplier * 2**(shift * reverse_shift - 31)``; ``inp <= 1`` gives
    ``(MAX32, 0)``. Normalizes ``inp`` by powers of four, then five Newton steps on
    ``x = x * (3 - inp * x**2) / 2`` in Q3.28 and a final multiplication by sqrt(2)/2.

    >>> get_inv_sqrt_quantized_multiplier_exp(4), get_inv_sqrt_quantized_multiplier_exp(1)
    ((1073741828, 0), (2147483647, 0))
    """
    srdhm = saturating_rounding_doubling_high_mul
    srmpot = saturating_rounding_multiply_by_pot
    if inp <= 1:
        return MAX32, 0
    shift = 11
    while inp >= 1 << 29:
        inp //= 4
        shift += 1
    clz = 32 - inp.bit_length()
    pairs = (clz - 1) // 2 - 1
    shift -= pairs
    inp <<= 2 * pairs
    half = rounding_divide_by_pot(inp >> 1, 1)
    x = 1 << 28
    for _ in range(5):
        x3 = srmpot(srdhm(srdhm(x, x), x), 6)
        x = srmpot(wrap32(srdhm((1 << 28) + (1 << 27), x) - srdhm(half, x3)), 3)
    x = srdhm(x, 1518500250)
    if shift < 0:
        x = wrap32(x << -shift)
        shift = 0
    return x, shift * reverse_shift


def softmax_params(scale: float, beta: float = 1.0, single: bool = False, f32: bool = True) -> tuple[int, int, int]:
    """TFLite ``PreprocessSoftmaxScaling`` with 5 integer bits, and the softmax's ``diff_min``:
    ``(input_multiplier, input_left_shift, diff_min)``. ``real = min(beta * scale * 2**26,
    2**31 - 1)`` (``2**30 - 1`` with ``single``, the ``TFLITE_SINGLE_ROUNDING`` build), from
    float32 ``scale`` and ``beta`` when ``f32`` (the kernel's params), quantized as
    ``QuantizeMultiplierGreaterThanOne``; ``diff_min = -floor(31 * 2**26 / 2**shift)``
    (``CalculateInputRadius(5, shift)``).

    >>> softmax_params(0.1)
    (1717986944, 23, -248)
    """
    if f32:
        scale, beta = float32(scale), float32(beta)
    real = min(beta * scale * 2.0**26, float((1 << 30) - 1 if single else (1 << 31) - 1))
    f, shift = math.frexp(real)
    q = int(Decimal(f * 2**31).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if q == 2**31:
        q, shift = q // 2, shift + 1
    return q, shift, -math.floor(31 * 2.0**26 / 2.0**shift)


def softmax_int8(row: list[int], scale: float, out: IntType, single: bool = False, beta: float = 1.0) -> list[int]:
    """TFLite's int8/uint8 ``reference_ops::Softmax`` (``softmax.h``) on one row: differences to the
    row max below ``diff_min`` give the output minimum; the others are scaled into Q5.26
    (SRDHM, or the single-rounding expression with ``single``), exponentiated
    (:func:`exp_on_negative_values`, Q0.31), summed in Q12.19 with int32 wrap-around, and
    multiplied by the reciprocal of the sum (:func:`one_over_one_plus_x_for_x_in_0_1` on the
    normalized sum), shifted by ``num_bits_over_unit + 31 - out.bits`` and offset by ``out.min``,
    saturated to ``out`` (int8, uint8 or int16).

    >>> from intsim.core.inttype import IntType
    >>> softmax_int8([10, 20, 30, 40, 50], 0.1, IntType(8))
    [-125, -120, -106, -68, 35]
    """
    srdhm = saturating_rounding_doubling_high_mul
    rdbpot = rounding_divide_by_pot
    q, lshift, diff_min = softmax_params(scale, beta, single)
    mx = max(row)
    exps = []
    total = 0
    for v in row:
        d = v - mx
        if d < diff_min:
            exps.append(None)
            continue
        if single:
            s = (d * q + (1 << (30 - lshift))) >> (31 - lshift)
        else:
            s = srdhm(d * (1 << lshift), q)
        e = exp_on_negative_values(s, 5)
        exps.append(e)
        total = wrap32(total + rdbpot(e, 12))
    u = total & 0xFFFFFFFF
    hp = 32 - u.bit_length()
    nbou = 12 - hp
    recip = one_over_one_plus_x_for_x_in_0_1(wrap32((u << hp) - (1 << 31)))
    expo = nbou + 31 - out.bits
    assert 0 <= expo <= 31
    lo = out.min
    return [lo if e is None else min(max(rdbpot(srdhm(recip, e), expo) + lo, lo), out.max) for e in exps]
