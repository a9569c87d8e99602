"""I-LLM operators (intsim's documented construction) against literal Python-int oracles,
float64 accuracy, register overflow detection and bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim.core.dyadic import Dyadic
from intsim.core.errors import ConfigError, DTypeError, OperandRangeError, RegisterOverflow, ShapeError
from intsim.ops import illm
from intsim.oracles.illm import clipped_softmax as csoftmax_oracle
from intsim.oracles.illm import di_exp as diexp_oracle
from intsim.oracles.illm import di_norm as norm_oracle
from intsim.oracles.illm import dyadic_ratio as ratio_oracle
from intsim.oracles.illm import dynamic_requant as dynq_oracle
from intsim.oracles.illm import row_dyadic as dyadic_oracle
from intsim.oracles.illm import swiglu as swiglu_oracle
from intsim.oracles.rounding import round_half_even as rne


def rows_of(lo: int, hi: int, max_rows: int = 3, max_n: int = 12):
    return st.integers(1, max_rows).flatmap(lambda R: st.integers(1, max_n).flatmap(
        lambda N: st.lists(st.lists(st.integers(lo, hi), min_size=N, max_size=N), min_size=R, max_size=R)))


row_scales = st.floats(1e-3, 0.5)


# ---------------------------------------------------------------------------------------------
# scales
# ---------------------------------------------------------------------------------------------
@given(st.floats(1e-6, 100.0))
def test_row_dyadic_matches_oracle(s):
    m, k = illm.row_dyadic(s, (1,))
    assert (int(m[0]), int(k[0])) == dyadic_oracle(s)


def test_row_dyadic_forms():
    m, k = illm.row_dyadic(np.array([0.1, 0.2, 0.1]), (3,))
    assert m.tolist() == [205, 205, 205] and k.tolist() == [11, 10, 11]
    m, k = illm.row_dyadic(Dyadic(3, 5), (2,))
    assert m.tolist() == [3, 3] and k.tolist() == [5, 5]
    m, k = illm.row_dyadic((np.array([7, 9]), 4), (2,))
    assert m.tolist() == [7, 9] and k.tolist() == [4, 4]
    for bad in (0.0, -1.0, float("nan"), np.array([0.1, -0.1])):
        with pytest.raises(ConfigError):
            illm.row_dyadic(bad, (2,))
    with pytest.raises(ShapeError):
        illm.row_dyadic(np.array([0.1, 0.2, 0.3]), (2,))
    with pytest.raises(DTypeError):
        illm.row_dyadic((np.array([1.5]), 3), (1,))


# ---------------------------------------------------------------------------------------------
# operators against the oracles
# ---------------------------------------------------------------------------------------------
@given(rows_of(-(2**15), 0), row_scales, st.sampled_from([15, 12, 20]))
def test_di_exp_oracle(x, s, F):
    r = illm.di_exp(np.array(x), s, out_frac_bits=F)
    m, k = dyadic_oracle(s)
    assert r.values.tolist() == [[diexp_oracle(v, m, k, F) for v in row] for row in x]
    assert r.scale == 2.0**-F


def test_di_exp_per_row_scales_and_terms():
    x = np.array([[0, -5, -50], [0, -5, -50]])
    terms = ((0, 1), (1, 1), (4, -1), (8, 1))
    r = illm.di_exp(x, (np.array([205, 150]), np.array([11, 9])), log2e_shifts=terms)
    assert r.values.tolist() == [[diexp_oracle(v, m, k, 15, terms) for v in row]
                                 for row, (m, k) in zip(x.tolist(), [(205, 11), (150, 9)], strict=True)]
    with pytest.raises(OperandRangeError, match="<= 0"):
        illm.di_exp(np.array([[0, 3]]), 0.1)


@given(rows_of(-(2**15), 2**15), row_scales, st.sampled_from([15.0, 5.5]), st.sampled_from([8, None]))
def test_clipped_softmax_oracle(x, s, clip, in_bits):
    r = illm.clipped_softmax(np.array(x), s, clip=clip, in_bits=in_bits)
    assert r.values.tolist() == [csoftmax_oracle(row, s, clip, in_bits) for row in x]
    assert r.scale == 1 / 65535


def test_clipping_merges_the_tail():
    s = 0.1
    x = np.array([[0, -200, -300, -100000, 10]])  # everything below max - 15 is clipped to -15
    r = illm.clipped_softmax(x, s, taps=True)
    # 0.1 is the 8-bit dyadic 205 / 2**11, so the threshold is floor(15 * 2**11 / 205) = 149 steps
    assert r.taps["x_clipped"][0, 1:4].tolist() == [-149, -149, -149]
    assert len(set(r.values[0, 1:4].tolist())) == 1
    assert r.values.tolist() == [csoftmax_oracle([0, -200, -300, -100000, 10], s)]


@given(rows_of(-(2**15), 2**15 - 1, max_n=16), st.sampled_from(["rms", "layer"]), st.sampled_from([16, 8, 20]))
def test_di_norm_oracle(x, mode, F):
    r = illm.di_norm(np.array(x), 0.05, mode=mode, out_frac_bits=F)
    assert r.values.tolist() == [norm_oracle(row, mode, F) for row in x]
    assert r.scale == 2.0**-F


def test_di_norm_eps_and_affine():
    x = np.array([[1, -1, 2, 0]])
    s = 0.25
    r = illm.rmsnorm(x, s, eps=1e-2)
    eps_int = rne(Fraction(1e-2) * 4 / Fraction(s) ** 2)
    assert r.values.tolist() == [norm_oracle([1, -1, 2, 0], "rms", eps_int=eps_int)]
    g, b = np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.0, 0.5, 0.0, 1.0])
    ln = illm.layernorm(x, s, g, b)
    bias = [round(float(bb / gg) * 2**16) for bb, gg in zip(b, g, strict=True)]
    assert ln.values.tolist() == [[o + bb for o, bb in zip(norm_oracle([1, -1, 2, 0], "layer"), bias, strict=True)]]
    assert np.allclose(ln.scale, g * 2.0**-16)
    with pytest.raises(ConfigError):
        illm.di_norm(x, s, beta=b, mode="rms")


@given(rows_of(-128, 127), row_scales, st.data())
def test_swiglu_oracle(g, s, data):
    u = [[data.draw(st.integers(-128, 127)) for _ in row] for row in g]
    r = illm.swiglu(np.array(g), s, np.array(u), 0.03)
    m, k = dyadic_oracle(s)
    assert r.values.tolist() == [[swiglu_oracle(a, b, m, k) for a, b in zip(rg, ru, strict=True)]
                                 for rg, ru in zip(g, u, strict=True)]


@given(rows_of(-(2**31), 2**31 - 1), st.sampled_from([8, 4, 16]), st.booleans(),
       st.sampled_from(["half_even", "half_up", "half_away", "floor", "trunc"]))
def test_dynamic_requant_oracle(x, bits, symmetric, rounding):
    r = illm.dynamic_requant(np.array(x), 0.01, bits=bits, symmetric=symmetric, rounding=rounding)
    assert r.values.tolist() == [dynq_oracle(row, bits, symmetric, rounding) for row in x]
    lo = [min(row) for row in x]
    rg = [(max(row) - min(row)) or 1 for row in x] if not symmetric else [max(abs(v) for v in row) or 1 for row in x]
    qm = 2 ** (bits - 1) - 1 if symmetric else 2**bits - 1
    assert np.allclose(r.scale[:, 0], [0.01 * v / qm for v in rg])
    if not symmetric:
        assert r.offset[:, 0].tolist() == lo and r.row_range[:, 0].tolist() == rg
        # exact up to half a step (one step for floor/trunc)
        err = np.abs(r.dequantize() - np.array(x) * 0.01)
        assert np.all(err <= r.scale * (1.0 if rounding in ("floor", "trunc") else 0.5) * (1 + 1e-9))


# ---------------------------------------------------------------------------------------------
# accuracy against float64
# ---------------------------------------------------------------------------------------------
def test_clipped_softmax_accuracy():
    rng = np.random.default_rng(2)
    s = 0.02
    x = np.round(rng.normal(0, 3, size=(64, 256)) / s).astype(np.int64)
    p = np.exp(x * s - (x * s).max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    err = np.abs(illm.clipped_softmax(x, s).dequantize() - p)
    assert err.max() < 0.02 and err.mean() < 5e-4


def test_norm_accuracy():
    rng = np.random.default_rng(4)
    xf = rng.normal(0.3, 2.0, size=(16, 384))
    s = 2.0**-10
    x = np.round(xf / s).astype(np.int64)
    xs = x * s
    rms = xs / np.sqrt((xs**2).mean(-1, keepdims=True))
    ln = (xs - xs.mean(-1, keepdims=True)) / xs.std(-1, keepdims=True)
    assert np.abs(illm.rmsnorm(x, s).dequantize() - rms).max() < 2e-4
    assert np.abs(illm.layernorm(x, s).dequantize() - ln).max() < 0.55 / 2048 + 2e-5  # the integer mean: 0.5 / sigma


def test_swiglu_accuracy():
    g = np.arange(-127, 128)[None, :]
    u = np.full_like(g, 100)
    s = 6 / 127
    out = illm.swiglu(g, s, u, 0.01).dequantize()
    gf = g * s
    ref = gf / (1 + np.exp(-gf)) * (u * 0.01)
    assert np.abs(out - ref).max() < 0.12  # |silu| error of the 1.4375 / linear-fraction exponent


# ---------------------------------------------------------------------------------------------
# registers and bad input
# ---------------------------------------------------------------------------------------------
def test_long_row_sum_overflow():
    x = np.zeros((1, 70000), dtype=np.int64)
    with pytest.raises(RegisterOverflow) as ei:
        illm.clipped_softmax(x, 0.1)
    assert ei.value.step == "sum" and ei.value.op == "illm.clipped_softmax"
    r = illm.clipped_softmax(x[:, :60000], 0.1)
    assert r.values[0, 0] == rne(Fraction(65535, 60000))
    w = illm.clipped_softmax(x, 0.1, widths={"sum": 64})
    assert w.values[0, 0] == rne(Fraction(65535, 70000))


def test_norm_small_variance_and_zero_rows():
    x = np.array([[0, 0, 0, 0], [5, 5, 5, 6]])
    r = illm.layernorm(x, 0.1)
    assert r.values.tolist() == [norm_oracle([0, 0, 0, 0], "layer"), norm_oracle([5, 5, 5, 6], "layer")]


def test_taps_counts_policies():
    x = np.array([[10, 20, 30, 40, 50]])
    r = illm.clipped_softmax(x, 0.1, taps=True)
    assert r.values.tolist() == illm.clipped_softmax(x, 0.1).values.tolist()
    m, k = dyadic_oracle(0.1)
    assert (r.taps["z_scale_m"][0], r.taps["z_scale_k"][0]) == ratio_oracle(m * 40, 255, k, 8)
    assert r.ops.total("div") == 5 + 1 + 5
    d = illm.dynamic_requant(np.array([[-100, 0, 155], [3, 3, 3]]), 0.5, taps=True)
    assert d.values.tolist() == [[0, 100, 255], [0, 0, 0]]
    assert d.taps["scale_m"].shape == (2,)
    sat = illm.swiglu(np.array([[100, -100]]), 0.05, np.array([[127, 127]]), 0.05, widths={"out": 24},
                      overflow="saturate")
    assert sat.values.tolist()[0][0] == 2**23 - 1 and sat.registers.events[0].step == "out"


def test_bad_inputs():
    x = np.array([[1, 2, 3]])
    with pytest.raises(DTypeError):
        illm.clipped_softmax(x.astype(np.float32), 0.1)
    for bad in (0.0, -0.5, float("nan")):
        with pytest.raises(ConfigError):
            illm.clipped_softmax(x, bad)
        with pytest.raises(ConfigError):
            illm.dynamic_requant(x, bad)
    with pytest.raises(ConfigError):
        illm.clipped_softmax(x, 0.1, clip=0)
    with pytest.raises(OperandRangeError):
        illm.swiglu(np.array([[300]]), 0.1, np.array([[1]]), 0.1)
    with pytest.raises(ShapeError):
        illm.swiglu(np.array([[1, 2]]), 0.1, np.array([[1]]), 0.1)
    with pytest.raises(ConfigError):
        illm.swiglu(x, 0.1, x, 0.1, in_type="int32")
    with pytest.raises(ConfigError):
        illm.di_norm(x, 0.1, mode="batch")
    with pytest.raises(ConfigError):
        illm.dynamic_requant(x, 0.1, rounding="jam")


@given(rows_of(-3000, 3000, max_n=24), st.sampled_from([0.1, 0.02, 0.5]),
       st.sampled_from(["raise", "wrap", "saturate", "record"]),
       st.sampled_from([None, {"sum": 17}, {"z": 6}, {"x_sub": 11}, {"exp": 12}, {"out": 12}, {"prod": 24},
                        {"silu": 14}, {"abs": 5}, {"denom": 16}]))
def test_fast_and_checked_paths_agree(x, s, overflow, widths):
    x = np.array(x)

    def both(fn, *args, w=None):
        res = []
        for taps in (False, True):
            try:
                r = fn(*args, widths=w, overflow=overflow, taps=taps)
                res.append((r.values.tolist(), [(e.step, e.count, e.index, e.value) for e in r.registers.events]))
            except RegisterOverflow as e:
                res.append((e.step, e.value, str(e)))
        assert res[0] == res[1]

    only_swiglu = ("silu", "abs", "denom")
    both(illm.clipped_softmax, x, s, w={k: v for k, v in (widths or {}).items() if k not in only_swiglu} or None)
    both(illm.di_exp, x - x.max(), s, w={k: v for k, v in (widths or {}).items() if k == "exp"} or None)
    both(illm.dynamic_requant, x, s, w={k: v for k, v in (widths or {}).items() if k in ("out", "prod")} or None)
    g = np.clip(x // 24, -128, 127)
    both(illm.swiglu, g, s, g[:, ::-1].copy(), 0.1,
         w={k: v for k, v in (widths or {}).items() if k in ("exp", "out", *only_swiglu)} or None)
    both(illm.rmsnorm, x, s, w={k: v for k, v in (widths or {}).items() if k in ("prod",)} or None)


def test_narrow_dtypes_are_widened():
    g = np.array([[-128, 127, -1, 0]], dtype=np.int8)
    u = np.array([[-128, -128, 127, 5]], dtype=np.int8)
    m, k = dyadic_oracle(0.05)
    r = illm.swiglu(g, 0.05, u, 0.05)
    assert r.values.tolist() == [[swiglu_oracle(int(a), int(b), m, k) for a, b in zip(g[0], u[0], strict=True)]]
    x = np.array([[-(2**31), 2**31 - 1, 0]], dtype=np.int32)
    d = illm.dynamic_requant(x, 1.0, symmetric=True)
    assert d.values.tolist() == [dynq_oracle([-(2**31), 2**31 - 1, 0], 8, True, "half_even")]
    d = illm.dynamic_requant(x, 1.0, symmetric=True)
    assert d.values.tolist() == [dynq_oracle([-(2**31), 2**31 - 1, 0], 8, True, "half_even")]


def test_di_norm_wide_output_fractions():
    """Beyond 16 output fraction bits the factor's numerator 2**(F + 16 + g) passes 2**63 for small
    variances (g grows as the variance shrinks); the quotient itself fits and must be exact."""
    for x in ([[1]], [[2]], [[3, -1]], [[2, 2, 2, 3]], [[-32768, 32767, 5]]):
        for mode in ("rms", "layer"):
            for F in (17, 20):
                r = illm.di_norm(np.array(x), 0.05, mode=mode, out_frac_bits=F)
                assert r.values.tolist() == [norm_oracle(row, mode, F) for row in x], (x, mode, F)
