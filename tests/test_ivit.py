"""I-ViT operators (PyTorch and TVM parameter sets, corrected variants) against literal
Python-int oracles, the published kernels' Shiftmax vectors, accuracy figures and registers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim.core.errors import ConfigError, DTypeError, OperandRangeError, RegisterOverflow
from intsim.core.inttype import IntType
from intsim.ops import ivit
from intsim.oracles.ivit import layernorm as ln_oracle
from intsim.oracles.ivit import shift_exp as sexp_oracle
from intsim.oracles.ivit import shiftgelu as shiftgelu_oracle
from intsim.oracles.ivit import shiftmax as shiftmax_oracle
from intsim.oracles.rounding import c_div as tdiv

I31 = 2**31 - 1

int8_rows = st.integers(1, 3).flatmap(lambda R: st.integers(1, 12).flatmap(
    lambda N: st.lists(st.lists(st.integers(-128, 127), min_size=N, max_size=N), min_size=R, max_size=R)))


# ---------------------------------------------------------------------------------------------
# the published kernels' vectors
# ---------------------------------------------------------------------------------------------
def test_shiftmax_note_vectors():
    x = np.array([[10, 20, 30, 40, 50]])
    pt = ivit.shiftmax(x, 0.1)
    tv = ivit.shiftmax(x, 0.1, variant="tvm")
    assert pt.values.tolist() == [[1, 4, 11, 31, 78]] and pt.scale == 1 / 128
    assert tv.values.tolist() == [[2, 5, 13, 31, 75]] and tv.scale == 1 / 128
    assert (ivit.x0_int(0.1), ivit.x0_int(0.1, "tvm")) == (-10, -11)
    # the released ViT models use IntSoftmax(16): scale 2**-15
    r16 = ivit.shiftmax(x, 0.1, out_bit=16)
    assert r16.values.tolist() == [shiftmax_oracle([10, 20, 30, 40, 50], 0.1, "pytorch", 16)]
    assert r16.scale == 2.0**-15


# ---------------------------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------------------------
@given(st.lists(st.integers(-3000, 0), min_size=1, max_size=20), st.floats(0.02, 1.5),
       st.sampled_from(["pytorch", "tvm"]))
def test_shift_exp_oracle(x, S, variant):
    r = ivit.shift_exp(np.array(x), S, variant=variant)
    n = 16 if variant == "tvm" else 15
    assert r.values.tolist() == [sexp_oracle(v, S, n, variant == "tvm") for v in x]
    assert r.scale == S / 2**n


def test_shift_exp_lut_path():
    x = np.arange(-2047, 1).reshape(2, -1)
    for variant in ("pytorch", "tvm"):
        n = 16 if variant == "tvm" else 15
        r = ivit.shift_exp(x, 0.07, variant=variant)
        assert r.values.reshape(-1).tolist() == [sexp_oracle(int(v), 0.07, n, variant == "tvm")
                                                 for v in x.reshape(-1)]


@given(int8_rows, st.floats(0.03, 0.5), st.sampled_from(["pytorch", "tvm", "corrected"]))
def test_shiftmax_oracle(x, S, variant):
    r = ivit.shiftmax(np.array(x), S, variant=variant)
    assert r.values.tolist() == [shiftmax_oracle(row, S, variant) for row in x]


def test_shiftmax_table_path():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(16, 197))
    for variant in ("pytorch", "tvm", "corrected"):
        r = ivit.shiftmax(x, 10 / 127, variant=variant)
        assert r.values.tolist() == [shiftmax_oracle(list(map(int, row)), 10 / 127, variant) for row in x]


@given(int8_rows, st.floats(0.01, 0.2), st.sampled_from(["pytorch", "tvm", "corrected"]))
def test_shiftgelu_oracle(x, S, variant):
    # keep the row maximum >= 0 for the published variants (see test_shiftgelu_negative_max)
    x = [row if variant == "corrected" else [*row[:-1], min(abs(row[-1]), 127)] for row in x]
    r = ivit.shiftgelu(np.array(x), S, variant=variant)
    assert r.values.tolist() == [shiftgelu_oracle(row, S, variant) for row in x]
    assert r.scale == S / 128


@given(st.integers(1, 3).flatmap(lambda R: st.integers(1, 10).flatmap(
    lambda N: st.lists(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=N, max_size=N), min_size=R,
                       max_size=R))), st.sampled_from(["pytorch", "tvm", "corrected"]))
def test_layernorm_oracle(x, variant):
    w = {"var": 64, "y_sq": 64, "sqrt_iter": 64, "prod": 64, "sum": 64} if variant == "tvm" else None
    r = ivit.layernorm(np.array(x), 0.05, variant=variant, widths=w)
    assert r.values.tolist() == [ln_oracle(row, variant) for row in x]


# ---------------------------------------------------------------------------------------------
# quirks, corrections, accuracy
# ---------------------------------------------------------------------------------------------
def _gelu(x):
    from intsim_reference.nonlinear import gelu_erf
    return gelu_erf(x)


def test_layernorm_sqrt_quirk_small_variance():
    x = np.array([[-1, 1, -1, 1, 0, 0, 0, 0]])  # var = 4: the 10-step sqrt gives 64, not 2
    pub = ivit.layernorm(x, 0.1, taps=True)
    assert pub.taps["std"].tolist() == [64]
    cor = ivit.layernorm(x, 0.1, variant="corrected")
    ref = (x - x.mean()) / x.std()
    assert np.abs(cor.dequantize() - ref).max() < 1e-6
    assert np.abs(pub.dequantize() - ref).max() > 1.0


def test_layernorm_tvm_var_wraps():
    # the 16-bit residual: sum(y**2) exceeds the TVM kernel's uint32 accumulator
    x = np.array([[-32000, 32000, -32000, 32000, -32000, 32000]])  # sum(y**2) = 6.1e9
    with pytest.raises(RegisterOverflow) as ei:
        ivit.layernorm(x, 0.01, variant="tvm")
    assert ei.value.step == "var" and ei.value.op == "ivit.layernorm"
    assert ivit.layernorm(x, 0.01).values.tolist() == [ln_oracle(list(map(int, x[0])))]


def test_shiftmax_tvm_long_row_wraps():
    x = np.zeros((1, 3000), dtype=np.int64)  # 3000 * 11 * 2**16 > 2**31
    with pytest.raises(RegisterOverflow) as ei:
        ivit.shiftmax(x, 0.1, variant="tvm")
    assert ei.value.step == "sum"
    # overflow="wrap" reproduces the TVM kernel's int32 arithmetic exactly
    r = ivit.shiftmax(x, 0.1, variant="tvm", overflow="wrap")
    s = IntType(32).wrap(3000 * 11 * 2**16)
    assert r.values[0, 0] == IntType(32).wrap(tdiv(I31, s) * 11 * 2**16) >> 24
    assert [e.step for e in r.registers.events] == ["sum"]
    c = ivit.shiftmax(np.zeros((1, 5000), dtype=np.int64), 0.1, variant="corrected")
    assert c.values.tolist() == [shiftmax_oracle([0] * 5000, 0.1, "corrected")]


def test_shiftgelu_negative_max():
    # a negative row maximum makes -max positive: the published em overflows (beyond int64)
    x = np.array([[-2000, -2500]])
    for pol in ("raise", "record"):
        with pytest.raises(RegisterOverflow) as ei:
            ivit.shiftgelu(x, 0.01, variant="pytorch", in_type="int16", overflow=pol)
        assert ei.value.step.startswith("max_") and ei.value.value is None and "beyond" in str(ei.value)
    r = ivit.shiftgelu(x, 0.01, variant="corrected", in_type="int16")
    assert r.values.tolist() == [shiftgelu_oracle([-2000, -2500], 0.01, "corrected")]


def test_shiftmax_accuracy():
    rng = np.random.default_rng(11)
    S = 10 / 127
    x = np.clip(np.round(rng.normal(0, 3, size=(64, 197)) / S), -128, 127).astype(np.int64)
    p = np.exp(x * S - (x * S).max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    err = np.abs(ivit.shiftmax(x, S).dequantize() - p)
    assert err.max() < 0.05 and err.mean() < 1.5e-3  # the note: 0.048, 8.8e-4
    xe = np.arange(-127, 1)
    assert np.abs(ivit.shift_exp(xe, S).dequantize() - np.exp(xe * S)).max() < 0.1  # the note: <= 0.097


def test_shiftgelu_accuracy():
    x = np.arange(-127, 128)[None, :]
    S = 4 / 127
    pub = np.abs(ivit.shiftgelu(x, S).dequantize() - _gelu(x * S)).max()
    assert 0.2 < pub < 0.27  # the note: 0.25
    x = np.arange(-400, 401)[None, :]
    pub = np.abs(ivit.shiftgelu(x, 0.01, in_type="int16").dequantize() - _gelu(x * 0.01)).max()
    cor = np.abs(ivit.shiftgelu(x, 0.01, variant="corrected", in_type="int16").dequantize()
                 - _gelu(x * 0.01)).max()
    assert pub > 0.6 and cor < 0.1  # the note: 0.73 published


def test_taps_and_counts():
    x = np.array([[10, 20, 30, 40, 50], [0, 0, 0, 1, 2]])
    r = ivit.shiftmax(x, 0.1, taps=True)
    assert r.taps["exp"][0].tolist() == [sexp_oracle(v - 50, 0.1, 15, False) for v in [10, 20, 30, 40, 50]]
    assert r.taps["sum"].shape == (2,) and r.taps["out"].tolist() == r.values.tolist()
    assert r.ops.total("div") == 10 + 2
    assert ivit.shiftmax(np.zeros((4, 5), dtype=np.int64), 0.1).ops == r.ops * 2
    g = ivit.shiftgelu(x, 0.1)
    assert g.ops.total("div") == 10 + 2 + 10  # per element and per row shift-exp, sigmoid reciprocal


def test_bad_inputs():
    x = np.array([[1, 2, 3]])
    with pytest.raises(DTypeError):
        ivit.shiftmax(np.array([[1.5, 2.0]]), 0.1)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigError):
            ivit.shiftmax(x, bad)
    with pytest.raises(OperandRangeError):
        ivit.shiftmax(np.array([[1, 300]]), 0.1)  # int8 by default
    with pytest.raises(ConfigError, match="8 bits"):
        ivit.shiftmax(x, 0.1, variant="tvm", out_bit=16)
    with pytest.raises(ConfigError):
        ivit.layernorm(x, 0.1, variant="published")
    with pytest.raises(ConfigError):
        ivit.shiftgelu(x, 0.1, widths={"exp16": 16})


def _taps_off_and_on(fn, *args, **kw) -> list:
    """The values and events (or the error) of ``fn`` with taps off (the unrecorded kernels) and
    on (the recorded chain); a test asserts the two are equal."""
    res = []
    for taps in (False, True):
        try:
            r = fn(*args, taps=taps, **kw)
            res.append((r.values.tolist(), [(e.step, e.count, e.index, e.value) for e in r.registers.events]))
        except RegisterOverflow as e:
            res.append((e.step, e.value, str(e)))
    return res


@given(int8_rows, st.sampled_from([0.1, 0.05, 10 / 127]), st.sampled_from(["pytorch", "tvm", "corrected"]),
       st.sampled_from(["raise", "wrap", "saturate", "record"]),
       st.sampled_from([None, {"sum": 20}, {"x_sub": 7}, {"prod": 22}, {"out": 5}, {"log2e": 8}]))
def test_fast_and_checked_paths_agree(x, S, variant, overflow, widths):
    x = np.array(x)
    outs = _taps_off_and_on(ivit.shiftmax, x, S, variant=variant, widths=widths, overflow=overflow)
    assert outs[0] == outs[1]
    if variant != "corrected":
        w = None if widths is None or "log2e" not in widths else widths
        res = _taps_off_and_on(ivit.shift_exp, -np.abs(x), S, variant=variant, widths=w, overflow=overflow)
        assert res[0] == res[1]
    res = _taps_off_and_on(ivit.layernorm, x * 200, S, variant=variant, overflow=overflow,
                           widths={"prod": 40} if widths is not None else None)
    assert res[0] == res[1]


@given(st.integers(0, 2**32 - 1), st.integers(257, 700), st.sampled_from([0.01, 0.05, 4 / 127]),
       st.sampled_from(["pytorch", "tvm", "corrected"]), st.sampled_from(["raise", "wrap", "saturate", "record"]),
       st.sampled_from([None, {"prod": 30}, {"out": 10}, {"sig": 5}, {"sum": 20}, {"x_sub": 7}]),
       st.integers(-128, 127), st.integers(0, 255))
def test_shiftgelu_row_table_matches_the_recorded_chain(seed, N, S, variant, overflow, widths, lo, width):
    """Rows of int8 longer than 256 values take the per-row sigmoid table unrecorded; the values,
    events and errors must be those of the recorded chain (taps on), and of the oracle."""
    rng = np.random.default_rng(seed)
    hi = min(lo + width, 127)
    x = rng.integers(lo, hi + 1, (2, N)).astype(np.int8)
    if variant != "corrected":
        x[:, -1] = max(hi, 0)  # the published variants want a row maximum >= 0 (see test_shiftgelu_negative_max)
    res = _taps_off_and_on(ivit.shiftgelu, x, S, variant=variant, widths=widths, overflow=overflow)
    assert res[0] == res[1]
    if widths is None:
        assert res[0][0] == [shiftgelu_oracle(list(map(int, row)), S, variant) for row in x]


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([0.02, 10 / 127, 0.3]),
       st.sampled_from(["pytorch", "tvm", "corrected"]), st.sampled_from(["raise", "wrap", "saturate", "record"]),
       st.sampled_from([None, {"sum": 20}, {"sum": 24}, {"prod": 22}, {"out": 5}, {"x_sub": 7}]))
def test_shiftmax_table_path_matches_the_recorded_chain(seed, R, S, variant, overflow, widths):
    """Inputs of 1024 elements or more read the shift-exp table unrecorded, with the sum proven
    from the table's bounds; values, events and errors must be those of the recorded chain."""
    rng = np.random.default_rng(seed)
    x = np.clip(np.rint(rng.normal(0, 3, (R, 1024)) / S), -128, 127).astype(np.int8)
    res = _taps_off_and_on(ivit.shiftmax, x, S, variant=variant, widths=widths, overflow=overflow)
    assert res[0] == res[1]
    if widths is None:
        assert res[0][0] == [shiftmax_oracle(list(map(int, row)), S, variant) for row in x]
