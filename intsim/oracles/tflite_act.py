"""TFLite / gemmlowp integer activations on Python ints and exact rationals, line by line: the
specifications of :mod:`intsim.ops.tflite_act`.

Sources (read for their semantics, not copied):

* gemmlowp ``fixedpoint/fixedpoint.h`` (16e8662c3491): ``logistic``, ``tanh`` and their helpers
  for 16- and 32-bit raws (``+``, ``-`` and unary ``-`` wrap in the raw width; ``*`` is SRDHM;
  the constants are the int32 ones rescaled by ``RescaleConstantInitializer``, i.e.
  ``RoundingDivideByPOT(c, 32 - bits)``; ``AddSaturatingIf16Bit`` saturates in 16 bits);
* TFLite (LiteRT f67457790c9c) ``kernels/activations.cc`` (Prepare and Eval of LOGISTIC, TANH,
  SOFTMAX), ``kernels/internal/common.h`` (``LUTPopulateInt8``, ``LUTPopulateInt16``,
  ``LUTLookup``, ``sigmoid_table_uint16``), ``kernels/internal/reference/integer_ops/logistic.h``
  and ``tanh.h``, ``kernels/internal/reference/softmax.h`` (``SoftmaxInt16``),
  ``kernels/internal/optimized/optimized_ops.h`` (int16 ``Logistic`` / ``Tanh``),
  ``kernels/internal/quantization_util.cc`` (``CheckedLog2``, ``CalculateInputRadius``);
* TFLite Micro (90b983c2b3f1) ``micro/kernels/logistic_common.cc``, ``tanh.cc``,
  ``softmax_common.cc`` (its Prepare steps);
* XNNPACK (75db3c093b6d) ``src/reference/unary-elementwise.cc``, ``src/xnnpack/reference-utils.h``
  (the LUT its TFLite delegate builds for 8-bit LOGISTIC / TANH).

Float steps follow the C types: :func:`f32` rounds every float (``float``) operation's exact
result to float32 (a float64 product, sum or quotient of two float32 values rounded to float32
is the IEEE float32 result: 53 >= 2 * 24 + 2); the transcendental functions come from a
:class:`Libm`: ``Libm("exact")`` (correctly rounded, from ``decimal`` at high precision) or
``Libm("c")`` (the C library's ``expf``, ``tanhf``, ``logf`` and ``exp`` through ``ctypes``, the
functions the TFLite binary calls).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from decimal import Context, Decimal
from fractions import Fraction

from ..core.tflite_tables import SIGMOID_TABLE_UINT16
from .requant import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from .rounding import c_div, float32, round_f32, round_f64, round_fraction

# ------------------------------------------------------------------------------------------------
# gemmlowp fixed point, any raw width (16 or 32)
# ------------------------------------------------------------------------------------------------


def wrap(v: int, bits: int) -> int:
    """``v`` modulo ``2**bits`` as a signed ``bits``-wide integer (C's conversion back to the raw type).

    >>> wrap(2**31, 32), wrap(32768, 16)
    (-2147483648, -32768)
    """
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


#: ``SaturatingRoundingDoublingHighMul`` at ``bits`` bits and ``RoundingDivideByPOT``, as the
#: requantization oracles define them
srdhm = saturating_rounding_doubling_high_mul
rdbpot = rounding_divide_by_pot


def srmpot(x: int, e: int, bits: int) -> int:
    """``SaturatingRoundingMultiplyByPOT<e>`` (``Rescale``): ``x * 2**e`` saturated to ``bits`` bits
    (``e > 0``), :func:`rdbpot` by ``-e`` (``e < 0``).

    >>> srmpot(1 << 14, 1, 16), srmpot(-3, 2, 16), srmpot(-3, -1, 16)
    (32767, -12, -2)
    """
    if e <= 0:
        return rdbpot(x, -e)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return min(max(x << e, lo), hi)


def rounding_half_sum(a: int, b: int) -> int:
    """``RoundingHalfSum``: ``(a + b + sign) / 2`` in C division, ``sign = 1`` if ``a + b >= 0`` else -1."""
    s = a + b
    return c_div(s + (1 if s >= 0 else -1), 2)


def constant(c32: int, bits: int) -> int:
    """A gemmlowp constant given as an int32 raw, for ``bits``-bit raws: ``RDBPOT(c32, 32 - bits)``.

    >>> constant(1895147668, 16), constant(1 << 30, 16)
    (28918, 16384)
    """
    return rdbpot(c32, 32 - bits)


EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def exp_on_interval(a: int, bits: int) -> int:
    """``exp_on_interval_between_negative_one_quarter_and_0_excl`` (Q0 in and out)."""
    w = bits
    c = constant(1895147668, w)
    x = wrap(a + (1 << (w - 4)), w)
    x2 = srdhm(x, x, w)
    x3 = srdhm(x2, x, w)
    x4 = srdhm(x2, x2, w)
    t = wrap(rdbpot(x4, 2) + x3, w)
    t = rdbpot(wrap(srdhm(t, constant(715827883, w), w) + x2, w), 1)
    y = c + srdhm(c, wrap(x + t, w), w)
    if w == 16:  # AddSaturatingIf16Bit
        return min(max(y, -(1 << 15)), (1 << 15) - 1)
    return wrap(y, w)


def exp_on_negative_values(a: int, k: int, bits: int) -> int:
    """``exp_on_negative_values`` of a Q\\ *k* raw ``a <= 0``: Q0 result.

    >>> exp_on_negative_values(-(1 << 26), 5, 32), exp_on_negative_values(-(1 << 12), 3, 16)
    (790015308, 12055)
    """
    w = bits
    frac = w - 1 - k
    quarter = 1 << (frac - 2)
    am = wrap((a & (quarter - 1)) - quarter, w)
    r = exp_on_interval(srmpot(am, k, w), w)
    rem = wrap(am - a, w)
    for e, c in zip(range(-2, 5), EXP_BARREL, strict=True):
        if k > e and rem & (1 << (frac + e)):
            r = srdhm(r, constant(c, w), w)
    if k > 5 and a < constant(-(1 << (36 - k)), w):
        r = 0
    return (1 << (w - 1)) - 1 if a == 0 else r


def _newton_reciprocal(h: int, bits: int) -> int:
    """The Q2 seed ``48/17 - 32/17 h`` and three Newton-Raphson steps of ``x = 1 / h``."""
    w = bits
    x = wrap(constant(1515870810, w) + srdhm(h, constant(-1010580540, w), w), w)
    one = 1 << (w - 3)
    for _ in range(3):
        err = wrap(one - srdhm(h, x, w), w)
        x = wrap(x + srmpot(srdhm(x, err, w), 2, w), w)
    return x


def one_over_one_plus_x_for_x_in_0_1(a: int, bits: int) -> int:
    """``1 / (1 + a)`` for a Q0 raw ``a`` in [0, max]: Q0 result.

    >>> one_over_one_plus_x_for_x_in_0_1(0, 16), one_over_one_plus_x_for_x_in_0_1(32767, 16)
    (32767, 16380)
    """
    h = rounding_half_sum(a, (1 << (bits - 1)) - 1)
    return srmpot(_newton_reciprocal(h, bits), 1, bits)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int, bits: int) -> int:
    """``(1 - a) / (1 + a)`` for a Q0 raw ``a`` in [0, max]: Q0 result."""
    h = rounding_half_sum(a, (1 << (bits - 1)) - 1)
    x = _newton_reciprocal(h, bits)
    return srmpot(wrap(x - (1 << (bits - 3)), bits), 2, bits)


def logistic(a: int, k: int, bits: int) -> int:
    """gemmlowp ``logistic`` of a Q\\ *k* raw: Q0 raw of ``1 / (1 + exp(-a))``.

    >>> logistic(0, 4, 32), logistic(1 << 27, 4, 32), logistic(-(1 << 12), 3, 16)
    (1073741824, 1569936226, 8815)
    """
    w = bits
    hi = (1 << (w - 1)) - 1
    pos = a > 0
    ab = a if pos else wrap(-a, w)
    rp = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap(-ab, w), k, w), w)
    if a == 0:
        return constant(1 << 30, w)
    return rp if pos else wrap(hi - rp, w)


def tanh(a: int, k: int, bits: int) -> int:
    """gemmlowp ``tanh`` of a Q\\ *k* raw: Q0 raw (``exp_on_negative_values`` in Q\\ *k+1*).

    >>> tanh(0, 4, 32), tanh(1 << 27, 4, 32), tanh(-(1 << 12), 3, 16)
    (0, 1635510876, -24964)
    """
    w = bits
    neg = a < 0
    n = a if neg else wrap(-a, w)
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, k + 1, w), w)
    if a == 0:
        return 0
    return wrap(-t, w) if neg else t


# ------------------------------------------------------------------------------------------------
# float steps
# ------------------------------------------------------------------------------------------------


def f32(x: float) -> float:
    """``x`` rounded to float32 (inf beyond the range, as a C float operation overflows)."""
    try:
        return float32(x)
    except OverflowError:
        return math.copysign(math.inf, x)


_CTX = Context(prec=130)


def _exp_exact(x: float) -> Fraction:
    return Fraction(_CTX.exp(Decimal(x)))


def _tanh_exact(x: float) -> Fraction:
    if x == 0:
        return Fraction(0)
    if abs(x) > 60:
        return Fraction(1 if x > 0 else -1) * (1 - 2 * Fraction(_CTX.exp(Decimal(-2 * abs(x)))))
    e = _CTX.exp(Decimal(2 * x) if abs(x) < 1e300 else Decimal(x) * 2)
    return Fraction(_CTX.divide(_CTX.subtract(e, 1), _CTX.add(e, 1)))


class Libm:
    """The transcendental functions of the float steps: ``"exact"`` (correctly rounded) or ``"c"``
    (the C library's, through ctypes)."""

    def __init__(self, kind: str = "exact") -> None:
        self.kind = kind
        if kind == "c":
            lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
            self._f = {}
            for name in ("expf", "tanhf", "logf"):
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
                self._f[name] = fn
            fn = lib.exp
            fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double]
            self._f["exp"] = fn
        elif kind != "exact":
            raise ValueError(kind)

    def expf(self, x: float) -> float:
        if self.kind == "c":
            return self._f["expf"](x)
        return round_f32(_exp_exact(x)) if x > -200 else 0.0

    def tanhf(self, x: float) -> float:
        if self.kind == "c":
            return self._f["tanhf"](x)
        return round_f32(_tanh_exact(x))

    def logf(self, x: float) -> float:
        if self.kind == "c":
            return self._f["logf"](x)
        return round_f32(Fraction(_CTX.ln(Decimal(x))))

    def exp(self, x: float) -> float:
        if self.kind == "c":
            return self._f["exp"](x)
        return round_f64(_exp_exact(x)) if x > -800 else 0.0


def roundf(x: float) -> float:
    """C ``round``/``roundf``: half away from zero (exact on any float)."""
    return float(round_fraction(Fraction(x), "half_away"))


def nearbyint(x: float) -> float:
    """C ``nearbyint`` in the default rounding mode: half to even."""
    return float(round_fraction(Fraction(x), "half_even"))


# ------------------------------------------------------------------------------------------------
# TFLite 8-bit LOGISTIC / TANH
# ------------------------------------------------------------------------------------------------


def lut_int8(fn: str, x: int, in_scale: float, in_zp: int, out_scale: float, out_zp: int, libm: Libm) -> int:
    """TFLite ``LUTPopulateInt8`` entry for the int8 input ``x`` (``fn``: ``logistic`` or ``tanh``;
    scales as the float32 the tensor holds)::

        dq = float(in_scale) * float(x - in_zp)                        # float32 ops
        logistic: t = 1.0f / (1.0f + expf(-dq));   tanh: t = tanhf(dq)
        q = int(roundf(t * (1 / out_scale)) + out_zp), clamped to int8
    """
    s = f32(in_scale)
    dq = f32(s * f32(x - in_zp))
    t = f32(1.0 / f32(1.0 + libm.expf(-dq))) if fn == "logistic" else libm.tanhf(dq)
    inv = f32(1.0 / f32(out_scale))
    q = int(f32(roundf(f32(t * inv)) + out_zp))
    return min(max(q, -128), 127)


def xnnpack_int8(fn: str, x: int, in_scale: float, in_zp: int, out_scale: float, out_zp: int, libm: Libm) -> int:
    """The XNNPACK delegate's int8 LUT entry (its reference unary kernel run on the 256 inputs)::

        dq = (float(x) - float(in_zp)) * in_scale                      # float32 ops
        logistic: 1 if dq > 100, 0 if dq < -100, else float(e / (1 + e)), e = exp(double(dq))
        tanh: tanhf(dq)
        q = nearbyint(t * (1.0f / out_scale) + float(out_zp)), clamped to int8
    """
    dq = f32(f32(float(x) - float(in_zp)) * f32(in_scale))
    if fn == "logistic":
        if dq > 100:
            t = 1.0
        elif dq < -100:
            t = 0.0
        else:
            e = libm.exp(dq)
            t = f32(e / (1 + e))
    else:
        t = libm.tanhf(dq)
    inv = f32(1.0 / f32(out_scale))
    q = nearbyint(f32(f32(t * inv) + float(out_zp)))
    return int(min(max(q, -128.0), 127.0))


def frexp_multiplier(real: float) -> tuple[int, int]:
    """``q = frexp(real, &shift)``, ``round_half_away(q * 2**31)`` (TFLite Micro's Prepare)."""
    q, shift = math.frexp(real)
    return int(round_fraction(Fraction(q) * (1 << 31), "half_away")), shift


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """``CalculateInputRadius``: ``floor((2**ib - 1) * 2**(total - ib) / 2**left_shift)``."""
    return math.floor(Fraction(((1 << integer_bits) - 1) << (total_bits - integer_bits), 1 << left_shift))


def reference_int8(fn: str, x: int, in_scale: float, in_zp: int) -> int:
    """``reference_integer_ops::Logistic`` / ``Tanh`` on int8 with TFLite Micro's parameters::

        (mult, shift) = frexp_multiplier(float(in_scale) * 2**27); radius = input_radius(4, shift)
        d = x - in_zp; saturate to -128 / 127 when d <= -radius / d >= radius, else
        q4 = MultiplyByQuantizedMultiplier(d, mult, shift)             # Q4.27
        logistic: RDBPOT(logistic(q4), 23) - 128;  tanh: RDBPOT(tanh(q4), 24), clamped to int8
    """
    mult, shift = frexp_multiplier(f32(in_scale) * 2.0**27)
    radius = input_radius(4, shift)
    d = x - in_zp
    if d <= -radius:
        return -128
    if d >= radius:
        return 127
    q4 = multiply_by_quantized_multiplier(d, mult, shift)
    if fn == "logistic":
        return min(max(rdbpot(logistic(q4, 4, 32), 23) - 128, -128), 127)
    return min(max(rdbpot(tanh(q4, 4, 32), 24), -128), 127)


# ------------------------------------------------------------------------------------------------
# TFLite int16 LOGISTIC / TANH
# ------------------------------------------------------------------------------------------------

def checked_log2(x: float, libm: Libm) -> tuple[bool, int]:
    """``CheckedLog2(float x)``: ``(|log2 - round(log2)| < 1e-3, round(log2))`` in float32 with
    ``logf``."""
    lg = f32(libm.logf(f32(x)) * f32(1.0 / libm.logf(2.0)))
    r = roundf(lg)
    return abs(f32(lg - r)) < f32(1e-3), int(r)


def int16_params(fn: str, in_scale: float, libm: Libm) -> tuple[int, int]:
    """``(input_multiplier, input_left_shift)`` of TFLite's int16 LOGISTIC / TANH Prepare: 0 and
    ``12 + log2(scale)`` for a power-of-two scale with that shift 0 (tanh: 0 or 1), else the
    multiplier ``scale * 3 * 4096`` doubled while ``<= 32767 / 2`` and the shift ``<= 30``, truncated."""
    pot, lg = checked_log2(in_scale, libm)
    shift = 12 + lg
    if pot and (shift == 0 or (fn == "tanh" and shift == 1)):
        return 0, shift
    m = f32(in_scale) * 4096.0 * 3.0
    shift = 0
    while m <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        m *= 2.0
    return int(m), shift


def reference_int16(fn: str, x: int, mult: int, shift: int) -> int:
    """``reference_integer_ops::Logistic`` / ``Tanh`` on int16: interpolation in
    :data:`SIGMOID_TABLE_UINT16` (``tanh(x) = 2 sigmoid(2x) - 1``)."""
    if mult == 0:
        mult, shift = 3 << shift, 0
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    v = (x * mult + rnd) >> shift
    av = abs(v)
    t = SIGMOID_TABLE_UINT16
    if fn == "logistic":
        uh = av >> 9
        res = 0x7FFF << 10 if uh >= 255 else (t[uh] << 9) + (av & 0x1FF) * (t[uh + 1] - t[uh])
        res = res + (1 << 9) if v >= 0 else (1 << 25) - res + (1 << 9) - 1
        return wrap((res & 0xFFFFFFFF) >> 10, 16)
    uh = av >> 8
    res = 0xFFFF << 8 if uh >= 255 else (t[uh] << 8) + (av & 0xFF) * (t[uh + 1] - t[uh])
    res = res - (1 << 23) + (1 << 7) if v >= 0 else -res + (1 << 23) + (1 << 7) - 1
    return wrap(res >> 8, 16)


def optimized_int16(fn: str, x: int, shift: int) -> int:
    """``optimized_ops::Logistic`` / ``Tanh`` on int16 (the power-of-two path of TFLite's
    optimized kernels): gemmlowp on 16-bit raws, input Q3.12 (tanh with shift 1: the input
    ``SaturatingRoundingMultiplyByPOT<1>`` first)."""
    if fn == "logistic":
        return logistic(x, 3, 16)
    return tanh(srmpot(x, shift, 16) if shift else x, 3, 16)


# ------------------------------------------------------------------------------------------------
# TFLite int16 SOFTMAX
# ------------------------------------------------------------------------------------------------


def lut_populate_int16(transform, in_scale: float, in_zp: int, out_scale: float, out_zp: int,
                       rnd) -> list[int]:
    """``LUTPopulateInt16``: 512 samples with a midpoint bias, and the end point. Every float
    operation goes through ``rnd`` (identity for FloatT = double, :func:`f32` for float)."""
    input_min = rnd(in_scale * rnd(-32768 - in_zp))
    input_max = rnd(in_scale * rnd(32767 - in_zp))
    output_min = rnd(out_scale * rnd(-32768 - out_zp))
    output_max = rnd(out_scale * rnd(32767 - out_zp))
    step = rnd(rnd(input_max - input_min) / 512)
    half = rnd(step / 2)
    inv = rnd(65536.0 / rnd(output_max - output_min))
    out = []
    for i in range(512):
        v = transform(rnd(input_min + rnd(i * step)))
        vm = transform(rnd(rnd(input_min + rnd(i * step)) + half))
        vn = transform(rnd(input_min + rnd((i + 1) * step)))
        sample = roundf(rnd(v * inv))
        interp = roundf(rnd(rnd(rnd(vn * inv) + roundf(rnd(v * inv))) / 2))
        mid = roundf(rnd(vm * inv))
        bias = roundf(rnd(rnd(interp - mid) / 2))
        out.append(int(min(max(rnd(sample - bias), -32768.0), 32767.0)))
    out.append(int(min(max(roundf(rnd(transform(input_max) * inv)), -32768.0), 32767.0)))
    return out


def softmax_int16_tables(variant: str, libm: Libm) -> tuple[list[int], list[int]]:
    """The exp and 1/(1+x) tables of the int16 softmax: ``tflite`` (double, ``exp``) or ``tflm``
    (float, ``expf``)."""
    rng = 65535
    if variant == "tflite":
        e = lut_populate_int16(libm.exp, 10.0 / rng, 32767, 2.0 / rng, 0, lambda v: v)
        r = lut_populate_int16(lambda v: 1.0 / (1.0 + v), 1.0 / rng, -32768, 2.0 / rng, 0, lambda v: v)
    else:
        e = lut_populate_int16(libm.expf, f32(10.0 / rng), 32767, f32(2.0 / rng), 0, f32)
        r = lut_populate_int16(lambda v: f32(1.0 / f32(1.0 + v)), f32(1.0 / rng), -32768, f32(2.0 / rng), 0, f32)
    return e, r


def lut_lookup_int16(v: int, lut: list[int]) -> int:
    """``LUTLookup(int16)``: base ``lut[256 + (v >> 7)]`` plus the rounded interpolation
    ``(slope * (v & 127) + 64) >> 7`` (slope and result as int16)."""
    i = 256 + (v >> 7)
    slope = wrap(lut[i + 1] - lut[i], 16)
    return wrap(lut[i] + ((slope * (v & 0x7F) + 64) >> 7), 16)


def softmax_int16_params(in_scale: float, beta: float, variant: str) -> tuple[int, int]:
    """``QuantizeMultiplier(scale * beta / (10 / 65535))``; TFLite multiplies the float32 scale and
    beta in float32, TFLite Micro in double."""
    sb = f32(f32(in_scale) * f32(beta)) if variant == "tflite" else f32(in_scale) * f32(beta)
    return quantize_multiplier(sb / (10.0 / 65535.0))


def softmax_int16(row: list[int], mult: int, shift: int, exp_lut: list[int], recip_lut: list[int]) -> list[int]:
    """``reference_ops::SoftmaxInt16`` on one row (Q0.15 output, zero point 0)."""
    mx = max(row)
    exps = []
    for v in row:
        sd = multiply_by_quantized_multiplier(v - mx, mult, shift)
        exps.append(lut_lookup_int16(min(max(sd + 32767, -32768), 32767), exp_lut))
    total = sum(exps)
    assert 0 < total < 2**31
    hp = 32 - total.bit_length()  # CountLeadingZeros(uint32)
    shifted = ((total << (hp - 1)) + (1 << 13)) >> 14
    sym = min(max(shifted - ((1 << 15) + (1 << 16)), -32768), 32767)
    recip = lut_lookup_int16(sym, recip_lut)
    rs = 31 - hp
    return [min(max((e * recip + (1 << (rs - 1))) >> rs, 0), 32767) for e in exps]
