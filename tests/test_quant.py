"""Quantizers: percentile RTN (per tensor, row, column) and dynamic per-token dyadic
quantization, against oracles with exact rationals."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim import ConfigError, DTypeError, OperandRangeError, ShapeError
from intsim.core.dyadic import Dyadic
from intsim.oracles.quant import percentile_alpha as alpha_oracle
from intsim.oracles.quant import quantize_per_token_step as step_oracle
from intsim.oracles.rounding import round_fraction
from intsim.quant.quantizers import alpha_ratio, percentile_alpha, quantize_per_token, quantize_rtn

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=True)


@st.composite
def real_matrices(draw, max_dim: int = 6, min_dim: int = 1):
    m = draw(st.integers(min_dim, max_dim))
    n = draw(st.integers(min_dim, max_dim))
    kind = draw(st.sampled_from(["any", "grid", "zeros", "sparse"]))
    if kind == "zeros":
        return np.zeros((m, n))
    el = finite if kind == "any" else st.integers(-40, 40).map(lambda v: v / 4)
    vals = np.array(draw(st.lists(st.lists(el, min_size=n, max_size=n), min_size=m, max_size=m)), dtype=np.float64)
    if kind == "sparse":
        keep = np.array(draw(st.lists(st.booleans(), min_size=m * n, max_size=m * n))).reshape(m, n)
        vals = np.where(keep & (np.arange(m * n).reshape(m, n) % 7 == 0), vals, 0.0)
    return vals


def groups_of(x: np.ndarray, granularity: str) -> list[list[float]]:
    if granularity == "tensor":
        return [x.ravel().tolist()]
    if granularity == "row":
        return x.tolist()
    return x.T.tolist()


@given(real_matrices(), st.sampled_from([1.0, 0.95, 0.99, 0.5]), st.sampled_from(["tensor", "row", "col"]),
       st.sampled_from([3, 15, 255, 254]))
def test_quantize_rtn_matches_the_oracle(x, p, gran, D):
    groups = groups_of(x, gran)
    alphas = [max(alpha_oracle(g, p), 1e-20) for g in groups]
    if any(abs(v * (0.5 * D) / a) >= 2**63 for g, a in zip(groups, alphas, strict=True) for v in g):
        with pytest.raises(OperandRangeError, match="does not fit int64"):
            quantize_rtn(x, D, p, gran)  # alpha clamped to 1e-20 next to a large entry
        return
    q = quantize_rtn(x, D, p, gran)
    assert np.asarray(q.alpha).ravel().tolist() == alphas
    for gi, g in enumerate(groups):
        scale = (0.5 * D) / alphas[gi]
        want = [round(v * scale) for v in g]  # Python round of a float: ties to even, exact
        if gran == "tensor":
            got = q.values.ravel().tolist()
        elif gran == "row":
            got = q.values[gi].tolist()
        else:
            got = q.values[:, gi].tolist()
        assert got == want
    assert np.allclose(q.dequantize() * q.scale, q.values)


def test_percentile_alpha_is_the_kth_largest():
    x = np.arange(100.0)
    assert float(percentile_alpha(x, 0.95)) == 95.0  # k = int(100 * 0.05) = 5
    assert float(percentile_alpha(x, 1.0)) == 99.0
    assert float(percentile_alpha(-x, 0.95)) == 95.0
    rows = percentile_alpha(np.array([[1.0, -5.0, 2.0], [0.5, 0.25, 0.0]]), 1.0, "row")
    assert rows.shape == (2, 1) and rows.ravel().tolist() == [5.0, 0.5]
    cols = percentile_alpha(np.array([[1.0, -5.0], [3.0, 0.0]]), 1.0, "col")
    assert cols.shape == (1, 2) and cols.ravel().tolist() == [3.0, 5.0]


def test_the_alpha_entry_rounds_just_out_of_range():
    # D = 2**b - 1: the alpha-defining entry lands on D/2 = 7.5 and rounds (half to even) to 8
    q = quantize_rtn(np.array([2.0, -2.0, 1.0, 0.2]), 15)
    assert q.values.tolist() == [8, -8, 4, 1]
    assert float(q.scale) == 3.75


def test_half_to_even_and_other_roundings():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 4.0])  # scale 0.5*8/4 = 1: the values themselves
    assert quantize_rtn(x, 8).values.tolist() == [0, 2, 2, 0, -2, 4]
    assert quantize_rtn(x, 8, rounding="half_away").values.tolist() == [1, 2, 3, -1, -3, 4]


def test_all_zero_tiny_and_mostly_zero_tensors():
    z = quantize_rtn(np.zeros((3, 4)), 15, 0.95)
    assert not z.values.any() and float(z.alpha) == 1e-20
    zr = quantize_rtn(np.zeros((2, 3)), 15, 0.95, "row")
    assert not zr.values.any() and zr.alpha.ravel().tolist() == [1e-20, 1e-20]
    # fewer than 1/(1-p) = 20 entries: k = 0 in the reference (it fails); intsim uses max|x|
    tiny = quantize_rtn(np.array([1.0, -3.0, 2.0]), 15, 0.95)
    assert float(tiny.alpha) == 3.0 and tiny.values.tolist() == [2, -8, 5]
    # 95% zeros: the k-th largest is 0; alpha is taken over the non-zero entries
    x = np.zeros(100)
    x[:3] = [1.0, 2.0, 4.0]
    mz = quantize_rtn(x, 15, 0.95)
    assert float(mz.alpha) == 4.0 and mz.values[:3].tolist() == [2, 4, 8]
    # tiny magnitudes are clamped like the reference (alpha >= 1e-20) and quantize to zeros
    assert not quantize_rtn(np.full(4, 1e-30), 15).values.any()


def test_quantizer_errors():
    with pytest.raises(OperandRangeError, match=r"NaN or Inf; first at index \(1, 0\)"):
        quantize_rtn(np.array([[0.0, 1.0], [np.nan, 2.0]]), 15)
    with pytest.raises(OperandRangeError, match="NaN or Inf"):
        quantize_per_token(np.array([[np.inf]]))
    with pytest.raises(DTypeError):
        quantize_rtn(np.array([True, False]), 15)
    with pytest.raises(DTypeError):
        quantize_rtn(np.array([1 + 2j]), 15)
    with pytest.raises(DTypeError):
        quantize_rtn(np.array(["a"]), 15)
    with pytest.raises(ConfigError, match="levels"):
        quantize_rtn(np.ones(3), 0)
    with pytest.raises(ConfigError, match="percentile"):
        quantize_rtn(np.ones(3), 15, 0.0)
    with pytest.raises(ConfigError, match="granularity"):
        quantize_rtn(np.ones((2, 2)), 15, 1.0, "channel")
    with pytest.raises(ShapeError, match="2-D"):
        quantize_rtn(np.ones(3), 15, 1.0, "row")
    with pytest.raises(OperandRangeError, match="2\\*\\*53"):
        quantize_rtn(np.array([2**60], dtype=np.int64), 15)
    with pytest.raises(ConfigError, match="scale_bits"):
        quantize_per_token(np.ones((2, 2)), scale_bits=0)
    with pytest.raises(ConfigError, match="more scale_bits"):
        quantize_per_token(np.array([[1e9]]), bits=8, scale_bits=4)


def test_integer_input_is_accepted_exactly():
    q = quantize_rtn(np.array([[3, -6]], dtype=np.int16), 14)
    assert q.values.tolist() == [[4, -7]]


def test_alpha_ratio():
    assert alpha_ratio(np.arange(100.0)) == 99.0 / 95.0
    assert alpha_ratio(np.zeros(10)) == 1.0
    x = np.ones(1000)
    x[0] = 50.0
    assert alpha_ratio(x) == 50.0


# ---------------------------------------------------------------------------------------------
# dynamic per-token quantization
# ---------------------------------------------------------------------------------------------

@st.composite
def token_matrices(draw):
    m = draw(st.integers(1, 4))
    n = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["any", "ties", "zero_row"]))
    if kind == "ties":  # values on the quantization grid and its half-steps
        vals = draw(st.lists(st.lists(st.integers(-30, 30), min_size=n, max_size=n), min_size=m, max_size=m))
        scale = draw(st.sampled_from([1.0, 0.375, 1 / 7, 3.0e-5]))
        x = np.array(vals, dtype=np.float64) * (scale / 2)
    else:
        x = np.array(draw(st.lists(st.lists(finite, min_size=n, max_size=n), min_size=m, max_size=m)))
    if kind == "zero_row":
        x[0] = 0.0
    return x


@given(token_matrices(), st.sampled_from([4, 8]), st.sampled_from([8, 12]),
       st.sampled_from(["half_even", "half_away", "floor", "ceil", "trunc"]))
def test_per_token_quantization_matches_the_oracle(x, bits, scale_bits, rounding):
    r = quantize_per_token(x, bits, scale_bits=scale_bits, rounding=rounding)
    qmax = 2 ** (bits - 1) - 1
    assert np.abs(r.values).max(initial=0) <= qmax
    for i, row in enumerate(x.tolist()):
        amax = max(abs(v) for v in row)
        if amax == 0:
            assert (int(r.m[i]), int(r.k[i])) == (0, 0) and not r.values[i].any()
            continue
        m, k = step_oracle(amax, qmax, scale_bits, 62)
        assert (int(r.m[i]), int(r.k[i])) == (m, k)
        assert Fraction(m, 2**k) >= Fraction(amax) / qmax
        want = [round_fraction(Fraction(v) * 2**k / m, rounding) for v in row]
        assert r.values[i].tolist() == want
    steps = r.steps()
    assert all(isinstance(s, Dyadic) for s in steps) and len(steps) == x.shape[0]


def test_per_token_example_and_dequantization():
    r = quantize_per_token(np.array([[1.0, -0.5], [0.0, 0.0]]), bits=4)
    assert r.values.tolist() == [[7, -3], [0, 0]]
    assert (r.m.tolist(), r.k.tolist()) == ([147, 0], [10, 0])
    x = np.random.default_rng(0).standard_normal((5, 16))
    r8 = quantize_per_token(x)
    step = r8.m / 2.0 ** r8.k
    assert np.all(np.abs(r8.dequantize() - x) <= step[:, None] / 2 + 1e-12)
    assert np.all(r8.m >= 128) and np.all(r8.m <= 255)  # normalized 8-bit mantissas


def test_per_token_exact_ties():
    # step 1/2**4 exactly (amax = 7/16 at 4 bits: m/2**k = 7/112 -> m = 7 * 2**k / 112)
    x = np.array([[7 / 16, 1.5 / 16, 2.5 / 16, -2.5 / 16]])
    r = quantize_per_token(x, bits=4, scale_bits=8)
    assert r.m[0] / 2.0 ** r.k[0] == 1 / 16
    assert r.values.tolist() == [[7, 2, 2, -2]]
    assert quantize_per_token(x, bits=4, rounding="half_away").values.tolist() == [[7, 2, 3, -3]]
