"""requantize: exact clamp bounds in every mode and order, float overflow, scalar inputs, and the
argument checks (shapes, register names and widths).

The oracles use Python's unbounded ints and ``fractions.Fraction``. For the float back-ends
the scaled value is what the runtime's float arithmetic produces: the float32 (or float64)
product of the float32 (float64) input and scale, computed with numpy float scalars and
cross-checked against an exact round-to-nearest-even of the rational product; everything
after it (rounding half to even, the zero point, clamping / saturation) is done on exact
integers and Fractions, so a bound that drifts in float arithmetic shows up as a mismatch.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim import ROUNDING_MODES, IntType
from intsim.core.dyadic import Dyadic, quantize_multiplier
from intsim.core.errors import ConfigError, IntsimError, ShapeError
from intsim.oracles.requant import multiply_by_quantized_multiplier as mbqm_double
from intsim.oracles.requant import multiply_by_quantized_multiplier_single_rounding as mbqm_single
from intsim.oracles.rounding import round_fraction, round_to_float
from intsim.quant.requant import (
    REQUANT_MODES,
    REQUANT_ORDERS,
    mul_shift_round,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    requantize,
    rounding_divide_by_pot,
)
from intsim.regs.registers import RegisterFile

FLOAT_MODES = ("onnx_ref", "ort_fp32", "gemmini_fp32")
CTR = "clamp_then_round"


# ------------------------------------------------------------------------------------------------
# oracles
# ------------------------------------------------------------------------------------------------


def float_scaled(x: int, scale: float, mode: str) -> Fraction:
    """The scaled value ``x * s`` exactly as the mode's float arithmetic produces it."""
    if mode == "onnx_ref":
        mant = 53
        got = np.float64(x) * np.float64(scale)  # Python int -> float64: correctly rounded
        s = Fraction(float(np.float64(scale)))
    else:
        mant = 24
        assert abs(x) <= 2**53, "the float32 modes take at most 53-bit inputs"
        got = np.float32(float(x)) * np.float32(scale)  # x exact in float64, so one rounding to float32
        s = Fraction(float(np.float32(scale)))
    v = Fraction(float(got))
    # independent model of the same IEEE arithmetic: int -> float, then the product, both rounded
    # to nearest even at ``mant`` significand bits (normal range: scales here keep it there)
    assert v == round_to_float(round_to_float(Fraction(x), mant) * s, mant)
    return v


def finish(v: Fraction, rounding: str, out: IntType, zp: int, order: str) -> int:
    """Round, add the zero point and saturate (or clamp, round, add) with exact integers."""
    if order == CTR:
        lo, hi = out.min - zp, out.max - zp
        r = round_fraction(min(max(v, Fraction(lo)), Fraction(hi)), rounding) + zp
        return min(max(r, out.min), out.max)  # (only jam can step off a bound)
    return min(max(round_fraction(v, rounding) + zp, out.min), out.max)


def float_oracle(x: int, scale: float, mode: str, out: IntType, zp: int, order: str) -> int:
    return finish(float_scaled(x, scale, mode), "half_even", out, zp, order)


# ------------------------------------------------------------------------------------------------
# strategies: output types with zero points near both ends, inputs at the edges, ties
# ------------------------------------------------------------------------------------------------

OUTS = ["int8", "uint8", "int16", "int25", "int32", "uint32", "int53"]
# zero points drawn besides those near the ends and near 0: the usual int8/uint8 ones
USUAL_ZPS = {"int8": [0, -128, 127, -1], "uint8": [128, 0, 255, 1]}
TIE_SCALES = [0.5, 0.25, 2.0**-10, 1.0, 2.0, 4.0, 3.0, 1.5, 0.1, 1.0 / 3.0, 0.75]


@st.composite
def zero_points(draw, out: IntType, mode: str) -> int:
    """Zero points at and near both ends of ``out`` and near 0 (offsets up to 2**10, so that
    the clamp bounds ``out.max - zp`` / ``out.min - zp`` fall on every residue modulo the
    float32 spacing above 2**24), anywhere in range, and the usual int8/uint8 ones."""
    if mode == "gemmini_fp32":
        return 0
    off = st.one_of(st.integers(0, 3), st.integers(0, 2**10))
    near = st.one_of(off.map(lambda d: out.min + d), off.map(lambda d: out.max - d), st.integers(-300, 300),
                     st.integers(out.min, out.max))
    usual = USUAL_ZPS.get(out.name)
    zp = draw(st.one_of(near, st.sampled_from(usual)) if usual else near)
    return min(max(zp, out.min), out.max)


def edge_candidates(in_t: IntType, out: IntType, zp: int, scale: float) -> list[int]:
    """Inputs at the ends of ``in_t``, around 2**24 (float32's last exact integer), and whose
    scaled value lands on, next to or half-way around the clamp bounds ``out.min - zp`` and
    ``out.max - zp``."""
    c = [in_t.min, in_t.min + 1, in_t.max, in_t.max - 1, 0, 1, -1, 2, -2, 3, -3]
    c += [sg * (2**24 + d) for sg in (1, -1) for d in (-2, -1, 0, 1, 2, 3)]
    for b in (out.min - zp, out.max - zp):
        q = Fraction(b) / Fraction(scale)
        base = q.numerator // q.denominator
        c += [base + d for d in range(-3, 4)]
    return sorted({v for v in c if in_t.min <= v <= in_t.max})


@st.composite
def inputs(draw, in_t: IntType, out: IntType, zp: int, scale: float) -> list[int]:
    cands = edge_candidates(in_t, out, zp, scale)
    one = st.one_of(st.sampled_from(cands), st.sampled_from(cands), st.integers(in_t.min, in_t.max),
                    st.integers(-(2**12), 2**12).map(lambda v: 2 * v + 1))  # odd: ties at scale 2**-j
    return draw(st.lists(one.filter(lambda v: in_t.min <= v <= in_t.max), min_size=1, max_size=12))


scales = st.one_of(st.sampled_from(TIE_SCALES), st.floats(1e-6, 1e4, allow_nan=False, allow_infinity=False))


def reaching_scales(in_t: IntType, out: IntType, zp: int) -> st.SearchStrategy[float]:
    """Scales with which the largest inputs land just beyond a clamp bound (or far beyond it)."""
    b = max(abs(out.min - zp), abs(out.max - zp), 1)
    return st.floats(1.0, 8.0).map(lambda f: float(b) / in_t.max * f)


# ------------------------------------------------------------------------------------------------
# float back-ends against the exact oracle
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", FLOAT_MODES)
@pytest.mark.parametrize("order", REQUANT_ORDERS)
@given(st.sampled_from(OUTS), st.sampled_from(["int25", "int32", "int53", "int64"]), st.booleans(), st.data())
def test_float_modes_match_exact_oracle(mode, order, out_name, in_name, per_channel, data):
    out, in_t = IntType.parse(out_name), IntType.parse(in_name)
    if in_t.bits > 53 and mode != "onnx_ref":
        in_t = IntType(53)  # the float32 modes take at most 53-bit inputs
    zp = data.draw(zero_points(out, mode), label="zero_point")
    scale = data.draw(st.one_of(scales, reaching_scales(in_t, out, zp)), label="scale")
    xs = data.draw(inputs(in_t, out, zp, scale), label="x")
    if per_channel:
        ch = [data.draw(scales, label="channel scale") for _ in xs[1:]]
        sc = np.array([scale, *ch])
        x = np.array([xs, xs[::-1]], dtype=np.int64)
        want = [[float_oracle(v, float(s), mode, out, zp, order) for v, s in zip(row, sc, strict=True)]
                for row in x.tolist()]
    else:
        sc = scale
        x = np.array(xs, dtype=np.int64)
        want = [float_oracle(v, scale, mode, out, zp, order) for v in xs]
    for taps in (True, False):  # the numpy path and the fused kernel
        r = requantize(x, sc, out=out, mode=mode, in_type=in_t, zero_point=zp, order=order, taps=taps)
        assert r.values.tolist() == want, (taps, xs, scale, zp)
        assert r.values.shape == x.shape


@pytest.mark.parametrize("taps", [True, False])
def test_float_clamp_then_round_examples(taps):
    """Bounds beyond 2**24 that float32 would round inward (high and low side, int32 and int25)."""
    kw = dict(mode="ort_fp32", order=CTR, taps=taps)
    assert requantize(np.array([2**30]), 4.0, out="int32", zero_point=-100, **kw).values.tolist() == [2**31 - 1]
    assert requantize(np.array([-(2**30)]), 4.0, out="int32", zero_point=100, **kw).values.tolist() == [-(2**31)]
    assert requantize(np.array([16777215]), 2.0, in_type="int25", out="int25", zero_point=-2,
                      **kw).values.tolist() == [16777215]
    assert requantize(np.array([-16777216]), 2.0, in_type="int25", out="int25", zero_point=1,
                      **kw).values.tolist() == [-16777216]  # bound -2**24 - 1: float32 rounds it to -2**24


@pytest.mark.parametrize("mode", FLOAT_MODES)
@pytest.mark.parametrize("order", REQUANT_ORDERS)
@pytest.mark.parametrize("out_name", ["int8", "uint8", "int25", "int32", "uint32", "int53"])
@pytest.mark.parametrize("taps", [True, False])
def test_float_saturation_reaches_the_type_limits_exactly(mode, order, out_name, taps):
    """Far beyond either bound the result is exactly out.min / out.max, for zero points at both
    ends of the type, and the value just inside a bound is kept exactly."""
    out = IntType.parse(out_name)
    in_t = IntType(53)
    # besides the ends: zero points whose bounds float32 rounds inward (int32: 2**31 - 1 + 100,
    # -2**31 - 100; int25: 2**24 + 1, -2**24 - 1)
    zps = [0] if mode == "gemmini_fp32" else sorted(
        z for z in {out.min, out.min + 1, out.max - 1, out.max, 0, -100, 100, -2, -1, 1, 2} if out.contains(z))
    for zp in zps:
        # |x * 4| >= 2**54 - 4 lies beyond every bound (|out.min - zp|, |out.max - zp| < 2**53)
        big = np.array([in_t.min, in_t.max, in_t.min + 1, in_t.max - 1], dtype=np.int64)
        r = requantize(big, 4.0, out=out, mode=mode, in_type=in_t, zero_point=zp, order=order, taps=taps)
        assert r.values.tolist() == [out.min, out.max] * 2, zp
        # scale 1.0, inputs on the bounds and one step inside (exact when float32 can hold them)
        lo, hi = out.min - zp, out.max - zp
        edge = [v for v in (lo, lo + 1, hi - 1, hi) if in_t.contains(v)]
        r = requantize(np.array(edge, dtype=np.int64), 1.0, out=out, mode=mode, in_type=in_t, zero_point=zp,
                       order=order, taps=taps)
        assert r.values.tolist() == [float_oracle(v, 1.0, mode, out, zp, order) for v in edge], zp


# ------------------------------------------------------------------------------------------------
# the integer back-ends with zero points near the ends of wide types
# ------------------------------------------------------------------------------------------------


@given(st.sampled_from(REQUANT_ORDERS), st.sampled_from(ROUNDING_MODES), st.sampled_from(OUTS[:6]),
       st.integers(1, 2**31 - 1), st.integers(0, 40), st.booleans(), st.data())
def test_dyadic_edges_match_exact_oracle(order, rounding, out_name, m, k, taps, data):
    out, in_t = IntType.parse(out_name), IntType(32)
    zp = data.draw(zero_points(out, "dyadic"), label="zero_point")
    xs = data.draw(inputs(in_t, out, zp, m / 2**k), label="x")
    r = requantize(np.array(xs), Dyadic(m, k), rounding, out, zero_point=zp, order=order, taps=taps)
    assert r.values.tolist() == [finish(Fraction(x * m, 2**k), rounding, out, zp, order) for x in xs]


I64 = IntType(64)


@given(st.sampled_from(REQUANT_ORDERS), st.sampled_from(ROUNDING_MODES),
       st.lists(st.one_of(st.sampled_from([I64.min, I64.min + 1, I64.max, I64.max - 1, -(2**62) - 1, 2**62, 0]),
                          st.integers(I64.min, I64.max)), min_size=1, max_size=8),
       st.one_of(st.sampled_from([1, 2, 3, 2**31 - 1]), st.integers(1, 2**62)), st.integers(0, 70), st.data())
def test_dyadic_int64_output_with_zero_point_is_exact(order, rounding, xs, m, k, data):
    """out=int64 with a zero point: a bound out.min - zp (or out.max - zp) lies beyond int64, and
    with overflow="record" the exact rounded value can lie between it and the int64 limit."""
    zp = data.draw(zero_points(I64, "dyadic"), label="zero_point")
    for taps in (True, False):
        r = requantize(np.array(xs, dtype=np.int64), Dyadic(m, k), rounding, I64, in_type=I64, zero_point=zp,
                       order=order, overflow="record", taps=taps)
        assert r.values.tolist() == [finish(Fraction(x * m, 2**k), rounding, I64, zp, order) for x in xs]


def test_dyadic_int64_output_examples():
    x = np.array([-(2**62) - 1, 2**62], dtype=np.int64)  # x * 2 = -2**63 - 2 and 2**63
    for order in REQUANT_ORDERS:
        r = requantize(x, Dyadic(2, 0), out="int64", in_type="int64", zero_point=5, order=order, overflow="record")
        assert r.values.tolist() == [-(2**63) + 3, 2**63 - 1]
        r = requantize(x, Dyadic(2, 0), out="int64", in_type="int64", zero_point=-5, order=order, overflow="record")
        assert r.values.tolist() == [-(2**63), 2**63 - 5]
        r = requantize(x.reshape(2, 1), Dyadic(2, 0), out="int64", in_type="int64", zero_point=5, order=order,
                       overflow="record")
        assert r.values.tolist() == [[-(2**63) + 3], [2**63 - 1]]
        r = requantize(x[0], Dyadic(2, 0), out="int64", in_type="int64", zero_point=5, order=order, overflow="record")
        assert r.values.shape == () and int(r.values) == -(2**63) + 3


@given(st.sampled_from(["tflite_double", "tflite_single"]), st.sampled_from(REQUANT_ORDERS),
       st.sampled_from(OUTS[:6]), st.one_of(st.sampled_from([0.5, 0.25, 0.75]), st.floats(1e-6, 0.99)),
       st.booleans(), st.data())
def test_tflite_edges_match_c_oracle(mode, order, out_name, scale, taps, data):
    out, in_t = IntType.parse(out_name), IntType(32)
    zp = data.draw(zero_points(out, mode), label="zero_point")
    xs = data.draw(inputs(in_t, out, zp, scale), label="x")
    single = mode == "tflite_single"
    q, s = quantize_multiplier(scale, single_rounding=single)
    r = requantize(np.array(xs), scale, out=out, mode=mode, zero_point=zp, order=order, taps=taps)
    f = mbqm_single if single else mbqm_double
    assert r.values.tolist() == [min(max(f(x, q, s) + zp, out.min), out.max) for x in xs]


# ------------------------------------------------------------------------------------------------
# parameter shapes
# ------------------------------------------------------------------------------------------------


def _scale_of_shape(mode: str, shape: tuple) -> object:
    if mode == "dyadic" and len(shape) == 1:
        return [Dyadic(1, 1)] * shape[0]  # a list of Dyadics is a per-channel scale of shape (n,)
    return np.full(shape, 0.5)


@pytest.mark.parametrize("mode", REQUANT_MODES)
@pytest.mark.parametrize("taps", [True, False])
@pytest.mark.parametrize("sshape, xshape", [((3, 1), (4,)), ((1, 4), (4,)), ((3,), (2, 4)), ((3,), (4,)),
                                            ((2, 4), (4,)), ((2,), ()), ((4, 1), (2, 4))])
def test_scale_shape_that_does_not_broadcast_to_x_is_a_shape_error(mode, taps, sshape, xshape):
    x = np.ones(xshape, dtype=np.int32)
    with pytest.raises(ShapeError) as ei:
        requantize(x, _scale_of_shape(mode, sshape), mode=mode, taps=taps)
    msg = str(ei.value)
    assert "requantize" in msg and "scale" in msg
    assert str(sshape) in msg and str(xshape) in msg


@pytest.mark.parametrize("mode", REQUANT_MODES)
@pytest.mark.parametrize("taps", [True, False])
def test_scale_shapes_that_broadcast_to_x_keep_x_shape(mode, taps):
    rng = np.random.default_rng(7)
    x = rng.integers(-1000, 1000, (2, 3, 4)).astype(np.int32)
    s4 = np.array([0.5, 0.25, 0.125, 0.75])
    s31 = np.array([[0.5], [0.25], [0.125]])
    for sc in (0.5, s4, s4.reshape(1, 4), s4.reshape(1, 1, 4), s31, np.full(x.shape, 0.5)):
        r = requantize(x, sc, mode=mode, out="int16", taps=taps)
        assert r.values.shape == x.shape
        full = np.broadcast_to(sc, x.shape)
        want = [int(requantize(np.array([v]), float(s), mode=mode, out="int16").values[0])
                for v, s in zip(x.reshape(-1).tolist(), full.reshape(-1).tolist(), strict=True)]
        assert r.values.reshape(-1).tolist() == want


def test_gemmlowp_style_parameters_must_broadcast_to_x():
    x = np.arange(4)
    cases = [
        (lambda: multiply_by_quantized_multiplier(x, np.full((3, 1), 2**30), -1), "quantized_multiplier", (3, 1)),
        (lambda: multiply_by_quantized_multiplier(x, 2**30, np.zeros((2, 4), np.int64)), "shift", (2, 4)),
        (lambda: multiply_by_quantized_multiplier_int64(x, [2**30] * 3, 0), "quantized_multiplier", (3,)),
        (lambda: mul_shift_round(x, [1, 2, 3], 1), "m", (3,)),
        (lambda: mul_shift_round(x, 3, np.ones((1, 4), np.int64)), "k", (1, 4)),
        (lambda: rounding_divide_by_pot(x, np.ones((5, 1), np.int64)), "exponent", (5, 1)),
    ]
    for call, name, shape in cases:
        with pytest.raises(ShapeError) as ei:
            call()
        msg = str(ei.value)
        assert name in msg and str(shape) in msg and "(4,)" in msg, msg
    # broadcasting to x's shape still works: per-channel along the last axis and per-row
    x2 = np.array([[10, 20], [30, 40]])
    assert multiply_by_quantized_multiplier(x2, [2**30, 2**30], [-1, 0]).tolist() == [[3, 10], [8, 20]]
    assert mul_shift_round(x2, [[1], [3]], 2).tolist() == [[2, 5], [22, 30]]
    assert rounding_divide_by_pot(x2, [1, 2]).tolist() == [[5, 5], [15, 10]]


# ------------------------------------------------------------------------------------------------
# register names
# ------------------------------------------------------------------------------------------------

VALID_REGISTERS = {"dyadic": ["product"], "tflite_double": ["shifted_input", "result"],
                   "tflite_single": ["shifted_input", "result"], "onnx_ref": [], "ort_fp32": [], "gemmini_fp32": [],
                   "onnx_refeval": [], "ort_div": [], "onnx_refeval_div": []}


@pytest.mark.parametrize("mode", REQUANT_MODES)
def test_unknown_register_names_are_config_errors(mode):
    with pytest.raises(ConfigError) as ei:
        requantize([1], 0.5, mode=mode, widths={"nope": 8})
    msg = str(ei.value)
    assert "nope" in msg and mode in msg
    assert all(name in msg for name in VALID_REGISTERS[mode])
    # a register another mode declares is not one of this mode's
    foreign = {"product"} if mode != "dyadic" else {"shifted_input"}
    with pytest.raises(ConfigError):
        requantize([1], 0.5, mode=mode, widths=dict.fromkeys(foreign, 64))
    want = requantize([3], 0.5, mode=mode, out="int32").values.tolist()
    for name in VALID_REGISTERS[mode]:  # the declared names are accepted
        assert requantize([3], 0.5, mode=mode, out="int32", widths={name: 64}).values.tolist() == want
    with pytest.raises(ConfigError):
        requantize([1], 0.5, mode=mode, widths=[("product", 64)])


def test_mbqm_unknown_register_names_are_config_errors():
    with pytest.raises(ConfigError) as ei:
        multiply_by_quantized_multiplier([1], 2**30, -1, widths={"nope": 8})
    msg = str(ei.value)
    assert "multiply_by_quantized_multiplier" in msg and "nope" in msg
    assert "shifted_input" in msg and "result" in msg
    assert multiply_by_quantized_multiplier([3], 2**30, 0, widths={"result": 64}).tolist() == [2]


# ------------------------------------------------------------------------------------------------
# float overflow: an infinite product saturates, identically with and without taps
# ------------------------------------------------------------------------------------------------

FLT_MAX = float(np.finfo(np.float32).max)
DBL_MAX = float(np.finfo(np.float64).max)


def run_both_paths(x, scale, **kw) -> list:
    """The outcome of requantize with taps (numpy path) and without (fused kernel): the values as
    a list, or the type of the error raised."""
    outcomes = []
    for taps in (True, False):
        try:
            r = requantize(x, scale, taps=taps, **kw)
        except IntsimError as e:
            outcomes.append(type(e))
        else:
            assert r.values.shape == np.shape(x)
            outcomes.append(r.values.tolist())
    return outcomes


def overflow_oracle(x: int, scale: float, mode: str, out: IntType, zp: int) -> int:
    """Result for a product far beyond every bound (or infinite): out.max or out.min by its sign;
    zp for x == 0. Checks (with exact Fractions) that the product really is beyond every bound."""
    if x == 0:
        return zp
    if mode == "onnx_ref":
        xf, sf = Fraction(float(np.float64(x))), Fraction(float(np.float64(scale)))
    else:
        xf, sf = Fraction(float(np.float32(float(x)))), Fraction(float(np.float32(scale)))
    assert abs(xf * sf) > 2**60  # |out.min - zp|, |out.max - zp| < 2**54
    return out.max if xf * sf > 0 else out.min


@st.composite
def overflow_cases(draw, mode: str) -> tuple[IntType, int, float, list[int]]:
    """(in_type, reference input, scale, inputs): scales that put |x_ref * s| at, just beside and
    around the largest finite float32 (float64 for onnx_ref), the inputs around x_ref, its negation,
    zero and anywhere in the input type."""
    in_t = IntType(64) if mode == "onnx_ref" else IntType(53)
    x_ref = draw(st.one_of(st.sampled_from([in_t.max, in_t.min + 1, 2**24, 2**24 + 2, 2**31 - 1, 1000, 3, 1]),
                           st.integers(1, in_t.max)))
    ftype = np.float64 if mode == "onnx_ref" else np.float32
    fmax = DBL_MAX if mode == "onnx_ref" else FLT_MAX
    t = ftype(fmax / float(ftype(float(x_ref))))  # |x_ref * t| ~ the largest finite value
    steps = draw(st.integers(-3, 3))
    near = t
    for _ in range(abs(steps)):
        if steps > 0 and near == ftype(fmax):
            break  # (float32 scales beyond FLT_MAX come from the other branch, in float64)
        near = np.nextafter(near, ftype(np.inf) if steps > 0 else ftype(0))
    scale = draw(st.one_of(st.just(float(near)), st.floats(0.25, 4.0).map(lambda f: min(float(t) * f, DBL_MAX))))
    if draw(st.booleans()):
        scale = -scale
    extra = draw(st.lists(st.integers(in_t.min, in_t.max), max_size=4))
    xs = [x_ref, -x_ref, x_ref - 1, x_ref + 1, 0, 1, -1, *extra]
    return in_t, x_ref, scale, [v for v in xs if in_t.contains(v)]


@pytest.mark.parametrize("mode", FLOAT_MODES)
@pytest.mark.parametrize("order", REQUANT_ORDERS)
@given(st.sampled_from(OUTS), st.booleans(), st.data())
def test_float_overflow_saturates_in_both_paths(mode, order, out_name, per_channel, data):
    """Products around the float32/float64 overflow threshold: both paths agree, and equal the
    saturated result (+inf -> out.max, -inf -> out.min) or, for a scale float32 cannot hold,
    the same ConfigError."""
    out = IntType.parse(out_name)
    in_t, x_ref, scale, xs = data.draw(overflow_cases(mode), label="case")
    zp = data.draw(zero_points(out, mode), label="zero_point")
    x = np.array(xs, dtype=np.int64)
    sc = np.full(x.shape, scale) if per_channel else scale  # per-channel: the fused kernel's other loop
    got = run_both_paths(x, sc, out=out, mode=mode, in_type=in_t, zero_point=zp, order=order,
                         allow_negative=True)
    assert got[0] == got[1], (xs, scale)
    with np.errstate(over="ignore"):
        scale_fits_float32 = bool(np.isfinite(np.float32(scale)))
    if mode != "onnx_ref" and not scale_fits_float32:
        assert got[0] is ConfigError  # the float32 modes take float32 scales
    else:
        assert got[0] == [overflow_oracle(v, scale, mode, out, zp) for v in xs], (xs, scale)


@pytest.mark.parametrize("taps", [True, False])
@pytest.mark.parametrize("order", REQUANT_ORDERS)
def test_float_overflow_examples(taps, order):
    """Exactly at the float32 threshold (finite) and one step past it (inf); float64 likewise."""
    kw = dict(order=order, taps=taps, out="int32")
    s = float(np.float32(FLT_MAX / 2**24))  # exact: FLT_MAX = (2**24 - 1) * 2**104
    assert np.float32(2**24) * np.float32(s) == np.float32(FLT_MAX)
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(2**24 + 2) * np.float32(s))
    for mode in ("ort_fp32", "gemmini_fp32"):
        x = np.array([2**24, 2**24 + 2, -(2**24) - 2, 0, 4503599627370495], dtype=np.int64)
        r = requantize(x, s, mode=mode, in_type="int53", **kw)
        assert r.values.tolist() == [2**31 - 1, 2**31 - 1, -(2**31), 0, 2**31 - 1]
    x = np.array([2**62, -(2**62), 1, 0], dtype=np.int64)
    with np.errstate(over="ignore"):
        assert np.isinf(np.float64(2**62) * np.float64(1e300))
    r = requantize(x, 1e300, mode="onnx_ref", in_type="int64", zero_point=-7, **kw)
    assert r.values.tolist() == [2**31 - 1, -(2**31), 2**31 - 1, -7]
    r = requantize(x, -1e300, mode="onnx_ref", in_type="int64", allow_negative=True, **kw)
    assert r.values.tolist() == [-(2**31), 2**31 - 1, -(2**31), 0]
    if taps:  # the numpy path shows the infinite product in its taps
        assert r.taps["scaled_bits"][0] == np.float64(-np.inf).view(np.int64)


@pytest.mark.parametrize("mode", ["ort_fp32", "gemmini_fp32"])
def test_scale_beyond_float32_is_a_config_error_in_both_paths(mode):
    x = np.array([0, 1, 2], dtype=np.int64)
    for scale in (1e39, [1.0, 2.0, 1e39], float(np.nextafter(np.float64(FLT_MAX) * 1.0000001, np.inf))):
        assert run_both_paths(x, scale, mode=mode, out="int32") == [ConfigError, ConfigError]
        with pytest.raises(ConfigError, match="float32"):
            requantize(x, scale, mode=mode, out="int32", taps=False)
    # the largest float32 itself is a valid float32 scale
    assert run_both_paths(x, FLT_MAX, mode=mode, out="int8") == [[0, 127, 127]] * 2


# ------------------------------------------------------------------------------------------------
# scalar x: a 0-d int64 array in every mode and path
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", REQUANT_MODES)
@pytest.mark.parametrize("order", REQUANT_ORDERS)
def test_scalar_input_gives_a_0d_int64_array_in_both_paths(mode, order):
    from intsim.ops.ibert import gelu

    convention = type(gelu(5, 0.1).values)  # what the other intsim operators return for scalar input
    assert convention is np.ndarray
    for x in (5, -7, np.int32(300), np.int64(-300), np.array(9), np.uint8(200)):
        want = requantize(np.array([x]), 0.375, mode=mode, order=order).values.tolist()[0]
        for taps in (True, False):
            r = requantize(x, 0.375, mode=mode, order=order, taps=taps)
            assert type(r.values) is convention, (x, taps, type(r.values))
            assert r.values.ndim == 0 and r.values.dtype == np.int64
            assert r.values.tolist() == want
            for name, t in r.taps.items():
                assert type(t) is np.ndarray and t.ndim == 0, (name, type(t))


def test_scalar_input_fallback_paths_give_0d_arrays():
    """Scalar inputs on the paths the fused kernels hand back to numpy (an int32 register that
    overflows in TFLite mode, a 128-bit product in dyadic mode)."""
    r = requantize(2**30, 4.0 - 2**-20, mode="tflite_double", out="int32", overflow="saturate", taps=False)
    assert type(r.values) is np.ndarray and r.values.ndim == 0
    r = requantize(np.int64(2**62), Dyadic(2**31 - 1, 3), in_type="int64", out="int64", overflow="record",
                   taps=False)
    assert type(r.values) is np.ndarray and r.values.ndim == 0 and r.values.tolist() == 2**63 - 1
    for v in (rounding_divide_by_pot(5, 1), multiply_by_quantized_multiplier(5, 2**30, 0),
              multiply_by_quantized_multiplier(5, 2**30, 0, single_rounding=True),
              multiply_by_quantized_multiplier_int64(5, 2**30, 0), mul_shift_round(5, 1, 1)):
        assert type(v) is np.ndarray and v.ndim == 0 and v.dtype == np.int64, type(v)


# ------------------------------------------------------------------------------------------------
# register widths
# ------------------------------------------------------------------------------------------------

BAD_WIDTHS = [99, 0, 65, -1, True, 2.5, None, "int99", "bogus", np.int64(70)]


def _assert_width_message(msg: str, op: str, register: str, width: object) -> None:
    assert op in msg, msg
    assert repr(register) in msg, msg
    assert "1 to 64" in msg, msg
    shown = str(int(width)) if isinstance(width, np.integer) else repr(width)
    assert shown in msg, msg


@pytest.mark.parametrize("mode, register", [("dyadic", "product"), ("tflite_double", "shifted_input"),
                                            ("tflite_double", "result"), ("tflite_single", "result")])
@pytest.mark.parametrize("width", BAD_WIDTHS)
@pytest.mark.parametrize("taps", [True, False])
def test_bad_register_width_names_operator_register_and_range(mode, register, width, taps):
    with pytest.raises(ConfigError) as ei:
        requantize([1], 0.5, mode=mode, widths={register: width}, taps=taps)
    _assert_width_message(str(ei.value), f"requantize(mode={mode!r})", register, width)


@pytest.mark.parametrize("width", BAD_WIDTHS)
def test_bad_register_width_in_registerfile_and_its_callers(width):
    from intsim.ops.gemmlowp import exp_on_negative_values
    from intsim.ops.ibert import i_exp

    cases = [
        (lambda: RegisterFile("my_op", {"acc": width}), "my_op", "acc"),
        (lambda: multiply_by_quantized_multiplier([1], 2**30, 0, widths={"shifted_input": width}),
         "multiply_by_quantized_multiplier", "shifted_input"),
        (lambda: i_exp(np.array([-5]), 0.1, widths={"poly": width}), "i_exp", "poly"),
        (lambda: exp_on_negative_values(np.array([-5]), 5, widths={"poly_a": width}), "exp_on_negative_values",
         "poly_a"),
    ]
    for call, op, register in cases:
        with pytest.raises(ConfigError) as ei:
            call()
        _assert_width_message(str(ei.value), op, register, width)


def test_registerfile_width_checks_elsewhere():
    with pytest.raises(ConfigError) as ei:
        RegisterFile("my_op", {}, default_bits=0)
    assert "my_op" in str(ei.value) and "default_bits" in str(ei.value) and "1 to 64" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        RegisterFile("my_op", {}).check("acc", np.array([1]), bits=80)
    assert "my_op" in str(ei.value) and "'acc'" in str(ei.value) and "80" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        RegisterFile("my_op", 5)
    assert "my_op" in str(ei.value)
    # valid widths are unchanged: bits, IntType, type names, numpy integers, pairs
    regs = RegisterFile("my_op", [("a", 8), ("b", IntType(12, signed=False)), ("c", "uint4"), ("d", np.int32(64))],
                        default_bits="int16")
    assert [regs.type_of(k).name for k in "abcde"] == ["int8", "uint12", "uint4", "int64", "int16"]


@pytest.mark.parametrize("mode", ["tflite_double", "tflite_single"])
@pytest.mark.parametrize("taps", [True, False])
def test_tflite_refuses_an_input_beyond_int32_on_every_path(mode, taps):
    """TFLite's requantization takes an int32 accumulator: a uint32 input above 2**31 - 1 is an
    operand out of range on the fast path as on the recorded one (never a silently wrapped result)."""
    from intsim.core.errors import OperandRangeError

    x = np.array([3, 2**31 + 5, 7], np.uint32)
    with pytest.raises(OperandRangeError, match="outside int32"):
        requantize(x, 0.3, mode=mode, in_type="uint32", taps=taps)


def test_the_old_registers_keyword_still_sets_the_widths():
    from intsim.core.errors import RegisterOverflow
    from intsim.ops.gemmlowp import exp_on_negative_values

    with pytest.warns(DeprecationWarning, match="widths="):
        old = requantize([1000], Dyadic(1000, 0), out="int32", registers={"product": 64})
    new = requantize([1000], Dyadic(1000, 0), out="int32", widths={"product": 64})
    assert old.values.tolist() == new.values.tolist()
    with pytest.warns(DeprecationWarning, match="widths="), pytest.raises(RegisterOverflow):
        exp_on_negative_values(np.array([-(1 << 20)]), 5, registers={"poly_out": 16})
