"""Dyadic conversions and requantization back-ends against Python-int / Fraction oracles."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from intsim import ROUNDING_MODES, IntType
from intsim.core.dyadic import (
    Dyadic,
    check_scale,
    ibert_dyadic,
    ibert_frexp,
    ibert_scale_ratio,
    quantize_multiplier,
    quantize_multiplier_greater_than_one,
    quantize_multiplier_smaller_than_one,
    tflite_dyadic,
)
from intsim.core.errors import ConfigError, DTypeError, OperandRangeError, RegisterOverflow
from intsim.oracles.requant import multiply_by_quantized_multiplier as mbqm_double
from intsim.oracles.requant import multiply_by_quantized_multiplier_single_rounding as mbqm_single
from intsim.oracles.requant import quantize_multiplier as qm_oracle
from intsim.oracles.requant import requantize as requant_oracle
from intsim.oracles.requant import requantize_float as fp_oracle
from intsim.oracles.requant import rounding_divide_by_pot as rdbpot_round
from intsim.oracles.requant import saturating_rounding_doubling_high_mul as srdhm_c
from intsim.oracles.rounding import c_div, round_fraction
from intsim.quant.requant import (
    REQUANT_MODES,
    mul_shift_round,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    onnx_multiplier,
    requantize,
    rounding_divide_by_pot,
    rounding_half_sum,
    saturating_rounding_doubling_high_mul,
    saturating_rounding_multiply_by_pot,
)
from intsim.testing.strategies import interesting_values

I32 = interesting_values(IntType(32))  # edges, 0, +-1 and half-range values weighted, then uniform
I16 = interesting_values(IntType(16))
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ------------------------------------------------------------------------------------------------
# gemmlowp primitives
# ------------------------------------------------------------------------------------------------


def test_srdhm_edge_values_from_note():
    a = [INT32_MIN, INT32_MIN, INT32_MAX]
    b = [INT32_MIN, INT32_MAX, INT32_MAX]
    assert saturating_rounding_doubling_high_mul(a, b).tolist() == [INT32_MAX, -2147483647, 2147483646]


def test_srdhm_ties_round_half_up():
    # a*b / 2**31 = +-0.5 and +-1.5 exactly
    h = 1 << 15
    a = [h, -h, 3 * h, -3 * h]
    b = [h, h, h, h]
    assert saturating_rounding_doubling_high_mul(a, b).tolist() == [1, 0, 2, -1]


@given(I32, I32)
@example(INT32_MIN, INT32_MIN)
@example(INT32_MIN, INT32_MAX)
@example(-(1 << 15), 1 << 15)
def test_srdhm_matches_c_definition(a, b):
    got = int(saturating_rounding_doubling_high_mul(a, b))
    assert got == srdhm_c(a, b)
    if not a == b == INT32_MIN:
        assert got == round_fraction(Fraction(a * b, 1 << 31), "half_up")


@given(I16, I16)
@example(-(2**15), -(2**15))
def test_srdhm_int16(a, b):
    assert int(saturating_rounding_doubling_high_mul(a, b, bits=16)) == srdhm_c(a, b, 16)


def test_srdhm_refuses_out_of_range_and_floats():
    with pytest.raises(OperandRangeError):
        saturating_rounding_doubling_high_mul([2**31], [1])
    with pytest.raises(DTypeError):
        saturating_rounding_doubling_high_mul(np.array([1.0]), [1])
    with pytest.raises(ConfigError):
        saturating_rounding_doubling_high_mul([1], [1], bits=8)


def test_rdbpot_examples_from_note():
    got = rounding_divide_by_pot([-5, 5, -1, INT32_MIN, INT32_MAX], [1, 1, 1, 31, 31]).tolist()
    assert got == [-3, 3, -1, -1, 1]


@given(I32, st.integers(0, 31))
@example(INT32_MIN, 31)
@example(INT32_MAX, 31)
@example(-3, 1)
def test_rdbpot_is_round_half_away(x, e):
    assert int(rounding_divide_by_pot(x, e)) == rdbpot_round(x, e)


@given(I16, st.integers(0, 15))
def test_rdbpot_int16(x, e):
    assert int(rounding_divide_by_pot(x, e, bits=16)) == rdbpot_round(x, e)


def test_rdbpot_refuses_bad_exponent():
    with pytest.raises(OperandRangeError):
        rounding_divide_by_pot([1], 32)
    with pytest.raises(OperandRangeError):
        rounding_divide_by_pot([1], -1)


@given(I32, st.integers(-31, 30))
def test_srmpot(x, e):
    got = int(saturating_rounding_multiply_by_pot(x, e))
    if e >= 0:
        assert got == min(max(x * (1 << e), INT32_MIN), INT32_MAX)
    else:
        assert got == rdbpot_round(x, -e)


@given(I32, I32)
def test_rounding_half_sum(a, b):
    s = a + b
    assert int(rounding_half_sum(a, b)) == c_div(s + (1 if s >= 0 else -1), 2)
    assert int(rounding_half_sum(a, b)) == round_fraction(Fraction(s, 2), "half_away")


# ------------------------------------------------------------------------------------------------
# TFLite multipliers
# ------------------------------------------------------------------------------------------------


positive_floats = st.floats(min_value=2.0**-40, max_value=2.0**40, allow_nan=False, allow_infinity=False)


@given(positive_floats, st.booleans())
@example(1.0 - 2.0**-40, False)
@example(2.0**-33, False)
@example(2.0**35, True)
def test_quantize_multiplier_matches_tflite(scale, single):
    q, s = quantize_multiplier(scale, single_rounding=single)
    assert (q, s) == qm_oracle(scale, single)
    assert q == 0 or 2**30 <= q < 2**31
    if q and not (single and s == 30 and scale >= 2**30):
        # |error| at most half a unit of the 31-bit mantissa
        assert abs(Fraction(q) * Fraction(2) ** (s - 31) - Fraction(scale)) <= Fraction(2) ** (s - 32)


def test_quantize_multiplier_special_cases():
    assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)  # renormalized
    assert quantize_multiplier(2.0**-33) == (0, 0)  # flushed to zero
    assert quantize_multiplier(2.0**40, single_rounding=True) == (2**31 - 1, 30)  # saturated
    assert quantize_multiplier(2.0**40) == (2**30, 41)
    assert quantize_multiplier_greater_than_one(0.1 * 2**26) == (1717986918, 23)
    assert quantize_multiplier_smaller_than_one(0.375) == (1610612736, -1)
    with pytest.raises(ConfigError):
        quantize_multiplier_greater_than_one(0.5)
    with pytest.raises(ConfigError):
        quantize_multiplier_smaller_than_one(1.5)
    assert tflite_dyadic(0.375).fraction == Fraction(3, 8)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), "0.5", True, None])
def test_scale_conversions_refuse_bad_scales(bad):
    with pytest.raises(ConfigError):
        quantize_multiplier(bad)
    with pytest.raises(ConfigError):
        ibert_frexp(bad)


@given(st.floats(min_value=2.0**-60, max_value=2.0**30, allow_nan=False), st.booleans())
@example(1.0 - 2.0**-40, False)
def test_ibert_frexp_matches_decimal(scale, negative):
    s = -scale if negative else scale
    f, x = math.frexp(s)
    m_ref = int(Decimal(f * 2**31).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert ibert_frexp(s, allow_negative=True) == (m_ref, 31 - x)
    d = ibert_dyadic(s, allow_negative=True)
    assert (d.m, d.k) == (m_ref, 31 - x)


def test_ibert_keeps_unnormalized_mantissa_and_large_shift():
    assert ibert_frexp(1.0 - 2.0**-40) == (2**31, 31)
    m, e = ibert_frexp(1e-7)
    assert e > 31
    assert ibert_scale_ratio(0.1, 0.2) == 0.1 / float(np.float32(0.2))
    assert ibert_scale_ratio(0.1, 0.2, "hawq") == float(np.float32(0.1)) / float(np.float32(0.2))
    with pytest.raises(ConfigError):
        ibert_scale_ratio(0.1, 0.2, "tvm")


def test_dyadic_conversions():
    d = Dyadic.from_float(0.1, bits=8)
    assert (d.m, d.k) == (205, 11)
    assert Dyadic.from_float(-0.75, bits=4) == Dyadic(-12, 4)
    assert Dyadic.at_shift(0.1, 16) == Dyadic(6554, 16)
    assert Dyadic(1 << 31, 32).to_tflite() == (1 << 30, 0)
    assert Dyadic(3, 3).to_tflite() == (3 << 29, -1)
    with pytest.raises(ConfigError):
        Dyadic(-1, 1).to_tflite()
    with pytest.raises(ConfigError):
        Dyadic((1 << 32) + 1, 40).to_tflite()
    with pytest.raises(ConfigError):
        Dyadic(1, -1)
    with pytest.raises(ConfigError):
        Dyadic.from_float(float("nan"))
    with pytest.raises(ConfigError):
        check_scale(float("nan"))


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(1, 40),
       st.sampled_from(ROUNDING_MODES))
def test_dyadic_from_float_is_correctly_rounded(x, bits, mode):
    assume(x != 0)
    if abs(round_fraction(Fraction(x), mode)) >= 2**bits:  # does not fit even at k = 0
        with pytest.raises(ConfigError):
            Dyadic.from_float(x, bits=bits, rounding=mode)
        return
    d = Dyadic.from_float(x, bits=bits, rounding=mode)
    assert abs(d.m) < 2**bits
    assert d.m == round_fraction(Fraction(x) * 2**d.k, mode)


@given(st.integers(1, 2**31 - 1), st.integers(-31, 30))
def test_tflite_dyadic_round_trip(q, shift):
    d = Dyadic.from_tflite(q, shift)
    assert d.fraction == Fraction(q) * Fraction(2) ** (shift - 31)
    q2, s2 = d.to_tflite()
    assert Fraction(q2) * Fraction(2) ** (s2 - 31) == d.fraction
    assert 2**30 <= q2 < 2**31


# ------------------------------------------------------------------------------------------------
# MultiplyByQuantizedMultiplier
# ------------------------------------------------------------------------------------------------


def test_mbqm_note_vectors_and_disagreement_rate():
    q, s = quantize_multiplier(0.375)
    assert (q, s) == (1610612736, -1)
    x = np.arange(-100_000, 100_001)
    d = multiply_by_quantized_multiplier(x, q, s)
    single = multiply_by_quantized_multiplier(x, q, s, single_rounding=True)
    assert int(d[x == -99996][0]) == -37499 and int(single[x == -99996][0]) == -37498
    rate = float(np.mean(d != single))
    assert abs(rate - 0.25) < 0.005  # the note: 25 % of inputs disagree


@given(I32, st.integers(0, 2**31 - 1), st.integers(-31, 30))
@example(INT32_MIN, 2**31 - 1, 0)
@example(-3, 2**30, -1)
def test_mbqm_double_matches_c(x, q, shift):
    left = max(shift, 0)
    assume(INT32_MIN <= x * (1 << left) <= INT32_MAX)
    assert int(multiply_by_quantized_multiplier(x, q, shift)) == mbqm_double(x, q, shift)


@given(I32, st.integers(0, 2**31 - 1), st.integers(-31, 30))
def test_mbqm_single_matches_c(x, q, shift):
    ref = mbqm_single(x, q, shift)
    assume(INT32_MIN <= ref <= INT32_MAX)
    assert int(multiply_by_quantized_multiplier(x, q, shift, single_rounding=True)) == ref
    # and it is exactly round-half-up of x * q * 2**(shift-31)
    assert ref == round_fraction(Fraction(x * q) * Fraction(2) ** (shift - 31), "half_up")


def test_mbqm_negative_ties():
    # x * 0.25 with x = 2 * odd: SRDHM is exact, the tie is rounded by RDBPOT (away from zero)
    # in the double path and toward +inf in the single path
    x = np.array([-10, -6, -2, 2, 6, 10])
    assert multiply_by_quantized_multiplier(x, 1 << 30, -1).tolist() == [-3, -2, -1, 1, 2, 3]
    assert multiply_by_quantized_multiplier(x, 1 << 30, -1, single_rounding=True).tolist() == [-2, -1, 0, 1, 2, 3]
    # x * 0.5 with x odd: the tie falls in SRDHM, which rounds toward +inf in both paths
    x = np.array([-5, -3, -1, 1, 3, 5])
    assert multiply_by_quantized_multiplier(x, 1 << 30, 0).tolist() == [-2, -1, 0, 1, 2, 3]


def test_mbqm_left_shift_register_overflows():
    with pytest.raises(RegisterOverflow) as ei:
        multiply_by_quantized_multiplier([2**30], 2**30, 2)
    assert ei.value.step == "shifted_input" and ei.value.value == 2**32
    # with wrap, C's silent wrap-around is reproduced: 2**32 wraps to 0
    assert multiply_by_quantized_multiplier([2**30], 2**30, 2, overflow="wrap").tolist() == [0]
    with pytest.raises(OperandRangeError):
        multiply_by_quantized_multiplier([1], 2**31, 0)
    with pytest.raises(OperandRangeError):
        multiply_by_quantized_multiplier([1], 2**30, 31)


@given(st.integers(-(2**47), 2**47 - 1), st.integers(0, 2**31 - 1), st.integers(-31, 14))
@example(2**47 - 1, 2**31 - 1, -31)
@example(5, 0x7FFF0000, 0)
def test_mbqm_int64_matches_c(x, q, shift):
    red = (q + (1 << 15)) >> 16 if q < 0x7FFF0000 else 0x7FFF
    ref = (x * red + (1 << (14 - shift))) >> (15 - shift)
    if INT32_MIN <= ref <= INT32_MAX:
        assert int(multiply_by_quantized_multiplier_int64(x, q, shift)) == ref
    else:
        with pytest.raises(RegisterOverflow):
            multiply_by_quantized_multiplier_int64(x, q, shift)


def test_mbqm_int64_refuses_wide_input():
    with pytest.raises(OperandRangeError):
        multiply_by_quantized_multiplier_int64([2**47], 2**30, 0)


# ------------------------------------------------------------------------------------------------
# requantize: dyadic
# ------------------------------------------------------------------------------------------------


out_types = st.sampled_from([IntType(8), IntType(8, signed=False), IntType(4), IntType(16), IntType(32),
                             IntType(2), IntType(64)])


@given(st.lists(I32, min_size=1, max_size=20), st.integers(1, 2**31 - 1), st.integers(0, 70),
       st.sampled_from(ROUNDING_MODES), out_types, st.data())
def test_requantize_dyadic_every_mode(xs, m, k, mode, out, data):
    zp = data.draw(st.integers(max(out.min, -100), min(out.max, 100)))
    r = requantize(np.array(xs), Dyadic(m, k), mode, out, zero_point=zp)
    assert r.values.tolist() == [requant_oracle(x, m, k, mode, out, zp) for x in xs]
    assert r.values.dtype == np.int64
    assert all(out.min <= v <= out.max for v in r.values.tolist())


@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=10), st.integers(1, 2**20),
       st.integers(0, 30), st.sampled_from(ROUNDING_MODES), out_types)
def test_clamp_then_round_equals_round_then_saturate_except_jam(xs, m, k, mode, out):
    a = requantize(np.array(xs), Dyadic(m, k), mode, out, order="clamp_then_round").values.tolist()
    assert a == [requant_oracle(x, m, k, mode, out, 0, "ctr") for x in xs]
    b = requantize(np.array(xs), Dyadic(m, k), mode, out).values.tolist()
    if mode != "jam":
        assert a == b


def test_jam_differs_between_orders():
    d = Dyadic(1, 0)
    assert requantize([-1000], d, "jam").values.tolist() == [-128]
    assert requantize([-1000], d, "jam", order="clamp_then_round").values.tolist() == [-127]


def test_negative_ties_every_mode():
    x = np.array([-5, -3, -1, 1, 3, 5])
    d = Dyadic(1, 1)
    expect = {
        "half_even": [-2, -2, 0, 0, 2, 2], "half_away": [-3, -2, -1, 1, 2, 3], "half_up": [-2, -1, 0, 1, 2, 3],
        "half_down": [-3, -2, -1, 0, 1, 2], "half_zero": [-2, -1, 0, 0, 1, 2], "half_odd": [-3, -1, -1, 1, 1, 3],
        "floor": [-3, -2, -1, 0, 1, 2], "ceil": [-2, -1, 0, 1, 2, 3], "trunc": [-2, -1, 0, 0, 1, 2],
        "away": [-3, -2, -1, 1, 2, 3],
    }
    for mode, want in expect.items():
        assert requantize(x, d, mode).values.tolist() == want, mode


def test_per_channel_scales_broadcast():
    x = np.array([[10, 10], [-10, -10]])
    r = requantize(x, [Dyadic(1, 1), Dyadic(3, 2)], "half_even")
    assert r.values.tolist() == [[5, 8], [-5, -8]]
    r2 = requantize(x, np.array([0.5, 0.75]), "half_even")
    assert r2.values.tolist() == r.values.tolist()


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=8),
       st.integers(-(2**62), 2**62), st.integers(0, 140), st.sampled_from(ROUNDING_MODES))
@example([-(2**63)], -(2**62), 0, "half_even")
@example([-(2**63), 2**63 - 1], 2**62, 64, "half_up")
@example([3, -(2**63)], 2**31 - 1, 127, "ceil")
def test_mul_shift_round_wide(xs, m, k, mode):
    want = [round_fraction(Fraction(x * m, 1 << k), mode) for x in xs]
    if all(-(2**63) <= w < 2**63 for w in want):
        assert mul_shift_round(np.array(xs, dtype=np.int64), m, k, mode).tolist() == want
    else:
        with pytest.raises(OperandRangeError):
            mul_shift_round(np.array(xs, dtype=np.int64), m, k, mode)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=8), st.integers(1, 2**31 - 1),
       st.integers(0, 100), st.sampled_from(ROUNDING_MODES))
@example([2**62, -(2**63)], 2**31 - 1, 31, "half_even")
def test_requantize_wide_products_record_is_exact(xs, m, k, mode):
    out = IntType(32)
    r = requantize(np.array(xs, dtype=np.int64), Dyadic(m, k), mode, out, in_type="int64", overflow="record")
    assert r.values.tolist() == [requant_oracle(x, m, k, mode, out) for x in xs]
    wide = [not -(2**63) <= x * m < 2**63 for x in xs]
    assert bool(r.registers.events) == any(wide)


def test_requantize_product_register_policies():
    x = np.array([2**40, 3])
    d = Dyadic(2**30, 40)
    with pytest.raises(RegisterOverflow) as ei:
        requantize(x, d, out="int32", in_type="int64")
    assert ei.value.op == "requantize" and ei.value.step == "product" and ei.value.value == 2**70
    wrapped = requantize(x, d, out="int32", in_type="int64", overflow="wrap").values.tolist()
    assert wrapped == [0, 0]  # 2**70 mod 2**64 == 0; 3 * 2**30 / 2**40 rounds to 0
    sat = requantize(x, d, out="int32", in_type="int64", overflow="saturate").values.tolist()
    assert sat == [round_fraction(Fraction(2**63 - 1, 2**40), "half_even"), 0]
    # a narrower declared product register
    with pytest.raises(RegisterOverflow):
        requantize([1000], Dyadic(1000, 0), out="int32", widths={"product": 16})


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=6), st.integers(1, 2**31 - 1),
       st.integers(0, 80))
def test_requantize_wrap_models_64_bit_product(xs, m, k):
    out = IntType(32)
    r = requantize(np.array(xs, dtype=np.int64), Dyadic(m, k), "floor", out, in_type="int64", overflow="wrap")
    want = []
    for x in xs:
        p = (x * m) & (2**64 - 1)
        p = p - 2**64 if p >= 2**63 else p
        want.append(min(max(p >> k, out.min), out.max))
    assert r.values.tolist() == want


def test_requantize_result_fields():
    r = requantize(np.array([[1, 2], [3, 4]], dtype=np.int32), Dyadic(1, 1), taps=True)
    assert r.values.shape == (2, 2)
    assert r.ops["mul", (32, 2)] == 4
    assert set(r.taps) >= {"product", "rounded", "output"}
    assert r.registers is not None and not r.registers.events


# ------------------------------------------------------------------------------------------------
# requantize: TFLite modes
# ------------------------------------------------------------------------------------------------


@given(st.lists(I32, min_size=1, max_size=10), st.floats(min_value=1e-6, max_value=0.99), st.integers(-20, 20))
def test_requantize_tflite_modes(xs, scale, zp):
    q, s = quantize_multiplier(scale)
    r = requantize(np.array(xs), scale, mode="tflite_double", zero_point=zp)
    assert r.values.tolist() == [min(max(mbqm_double(x, q, s) + zp, -128), 127) for x in xs]
    qs, ss = quantize_multiplier(scale, single_rounding=True)
    r = requantize(np.array(xs), scale, mode="tflite_single", zero_point=zp)
    assert r.values.tolist() == [min(max(mbqm_single(x, qs, ss) + zp, -128), 127) for x in xs]


def test_requantize_tflite_accepts_dyadic_and_int64_inputs():
    d = tflite_dyadic(0.375)
    assert requantize([-99996], d, mode="tflite_double", out="int32").values.tolist() == [-37499]
    r = requantize(np.array([2**40]), 2.0**-20, mode="tflite_single", out="int32", in_type=IntType(48))
    assert r.values.tolist() == [2**20]
    with pytest.raises(ConfigError):
        requantize([1], 0.5, "half_even", mode="tflite_double")
    with pytest.raises(ConfigError):
        requantize([1], 2.0**-40, mode="tflite_double")  # flushed multiplier


# ------------------------------------------------------------------------------------------------
# requantize: float back-ends
# ------------------------------------------------------------------------------------------------


scales = st.floats(min_value=1e-6, max_value=100.0, allow_nan=False)


@given(st.lists(I32, min_size=1, max_size=10), scales, st.integers(-10, 10))
@example([2**24 + 1, 2**31 - 1, INT32_MIN], 1.0, 0)
def test_ort_fp32_and_gemmini_are_float32_exact(xs, scale, zp):
    out = IntType(32)
    r = requantize(np.array(xs), scale, mode="ort_fp32", out=out, zero_point=zp)
    assert r.values.tolist() == [fp_oracle(x, scale, 24, out, zp) for x in xs]
    g = requantize(np.array(xs), scale, mode="gemmini_fp32", out=out)
    assert g.values.tolist() == [fp_oracle(x, scale, 24, out) for x in xs]


@given(st.lists(I32, min_size=1, max_size=10), scales, out_types)
def test_onnx_ref_is_float64_exact(xs, scale, out):
    if out.bits > 53:
        out = IntType(32)
    r = requantize(np.array(xs), scale, mode="onnx_ref", out=out)
    assert r.values.tolist() == [fp_oracle(x, scale, 53, out) for x in xs]


def test_float_back_ends_differ_near_ties():
    # x * 0.1f: float32 and float64 products round differently next to a .5 tie
    x = np.arange(1, 200_001, dtype=np.int64) * 5
    s = float(np.float32(0.1))
    a = requantize(x, s, mode="ort_fp32", out="int32").values
    b = requantize(x, s, mode="onnx_ref", out="int32").values
    assert np.any(a != b)
    assert np.max(np.abs(a - b)) == 1
    # int32 -> float32 rounds above 2**24 (the note's Gemmini pitfall)
    big = np.array([2**24 + 1, 2**24 + 3])
    assert requantize(big, 1.0, mode="gemmini_fp32", out="int32").values.tolist() == [2**24, 2**24 + 4]


def test_onnx_multiplier_is_float32():
    a, b, y = (np.float32(v) for v in (0.1, 0.2, 0.3))
    assert onnx_multiplier(0.1, 0.2, 0.3) == float(np.float32(np.float32(a * b) / y))


def test_float_modes_refuse_rounding_and_gemmini_zero_point():
    with pytest.raises(ConfigError):
        requantize([1], 0.5, "half_up", mode="ort_fp32")
    with pytest.raises(ConfigError):
        requantize([1], 0.5, mode="gemmini_fp32", zero_point=3)
    assert requantize([1], 0.5, "half_even", mode="onnx_ref").values.tolist() == [0]


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", REQUANT_MODES)
def test_bad_inputs_raise_typed_errors(mode):
    with pytest.raises(DTypeError):
        requantize(np.array([1.0, 2.0]), 0.5, mode=mode)
    for bad in (0.0, -0.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            requantize([1], bad, mode=mode)
    with pytest.raises(OperandRangeError) as ei:
        requantize(np.array([0, 200]), 0.5, mode=mode, in_type="int8")
    assert ei.value.index == (1,) and ei.value.value == 200
    with pytest.raises(ConfigError):
        requantize([1], 0.5, mode=mode, out="int9x")
    with pytest.raises(ConfigError):
        requantize([1], 0.5, mode=mode, zero_point=300)
    with pytest.raises(ConfigError):
        requantize([1], 0.5, mode=mode, order="sideways")


def test_unknown_mode_mentions_tosa():
    with pytest.raises(ConfigError, match="tosa_rescale"):
        requantize([1], 0.5, mode="tosa_rescale")
    with pytest.raises(ConfigError):
        requantize([1], 0.5, "nearest")
    with pytest.raises(ConfigError):
        requantize([1], Dyadic(0, 3))
    with pytest.raises(ConfigError):
        requantize([1], Dyadic(-1, 3))
    assert requantize([4], Dyadic(-1, 1), allow_negative=True).values.tolist() == [-2]


# ------------------------------------------------------------------------------------------------
# the fused kernels (taps=False) give the same values as the reference numpy paths
# ------------------------------------------------------------------------------------------------


@given(st.lists(I32, min_size=1, max_size=24), st.sampled_from(REQUANT_MODES), st.sampled_from(ROUNDING_MODES),
       st.sampled_from(["round_then_saturate", "clamp_then_round"]), st.booleans(), st.integers(-3, 3),
       st.sampled_from(["int8", "uint8", "int16", "int32"]), st.data())
def test_fused_kernels_match_numpy_paths(xs, mode, rmode, order, per_channel, zp, out, data):
    out_t = IntType.parse(out)
    if not out_t.signed:
        zp = abs(zp)
    if mode == "gemmini_fp32":
        zp = 0
    x = np.array(xs * 2, dtype=np.int32).reshape(2, len(xs))
    if per_channel:
        scale = np.array([data.draw(st.floats(1e-4, 4.0)) for _ in xs])
    else:
        scale = data.draw(st.floats(1e-4, 4.0))
    rounding = rmode if mode == "dyadic" else None
    try:
        a = requantize(x, scale, rounding, out_t, mode=mode, zero_point=zp, order=order, taps=True)
    except RegisterOverflow as exc:  # e.g. TFLite's x << left_shift leaving int32: both paths must say so
        with pytest.raises(RegisterOverflow) as ei:
            requantize(x, scale, rounding, out_t, mode=mode, zero_point=zp, order=order, taps=False)
        assert (ei.value.step, ei.value.value) == (exc.step, exc.value)
        return
    b = requantize(x, scale, rounding, out_t, mode=mode, zero_point=zp, order=order, taps=False)
    assert np.array_equal(a.values, b.values) and b.values.dtype == np.int64 and b.taps == {}
    assert a.ops == b.ops


def test_fused_tflite_falls_back_on_register_overflow():
    with pytest.raises(RegisterOverflow):
        requantize(np.array([2**30]), 4.0, mode="tflite_double", out="int32", taps=False)
    w = requantize(np.array([2**30]), 4.0, mode="tflite_double", out="int32", taps=False, overflow="wrap")
    assert w.values.tolist() == [0] and w.registers.events[0].step == "shifted_input"
