"""TFLite / TFLite Micro / XNNPACK integer activations (:mod:`intsim.ops.tflite_act`): against the
Python-int oracles of :mod:`intsim.oracles.tflite_act` (hypothesis), and bit for bit against the
real runtimes: ai-edge-litert's TFLite interpreter with each op resolver (``tests/tflite_models.py``
builds the one-operator models) and the tflite-micro interpreter. The runtime tests skip when the
package is absent."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from intsim.core.errors import ConfigError, DTypeError, OperandRangeError, RegisterOverflow
from intsim.ops import tflite_act as T
from intsim.ops.gemmlowp import QuantOpResult
from intsim.oracles import tflite_act as O
from intsim.testing.strategies import interesting_values

EXACT, LIBC = O.Libm("exact"), O.Libm("c")
X8 = np.arange(-128, 128, dtype=np.int8)
X16 = np.arange(-32768, 32768).astype(np.int16)

# input scales of the runtime tests: decimal, 1/127-style, tiny and large ones, and (found by searching
# with the oracles) scales where the 8-bit variants disagree on some entry
INT8_SCALES = [0.1, 0.05, 1 / 127, 0.0123, 0.003, 0.3, 1.7]
LOGISTIC_SPLIT = [6.236369609832764, 2.0381641387939453, 0.43648800253868103]  # lut|xnnpack, lut|reference, lut|xnnpack
TANH_SPLIT = [0.019533732905983925, 0.035170745104551315]  # lut vs xnnpack (tanhf lands on a tie)
# int16: 2**-12 (logistic's and tanh's power-of-two path), 2**-11 (tanh's second), 2**-12 * 1.0004
# (CheckedLog2 calls it a power of two), 2**-13 (a power of two off the path) and general scales
INT16_SCALES = [2.0**-12, 2.0**-11, 2.0**-12 * 1.0004, 2.0**-13, 1e-3, 3.1e-4, 0.05, 7.7e-6]


def f32(v: float) -> float:
    return float(np.float32(v))


def oracle_int8(fn: str, variant: str, s: float, zp: int, os_: float, ozp: int, libm: O.Libm = EXACT) -> np.ndarray:
    if variant == "lut":
        return np.array([O.lut_int8(fn, v, s, zp, os_, ozp, libm) for v in range(-128, 128)])
    if variant == "xnnpack":
        return np.array([O.xnnpack_int8(fn, v, s, zp, os_, ozp, libm) for v in range(-128, 128)])
    return np.array([O.reference_int8(fn, v, s, zp) for v in range(-128, 128)])


OUT8 = {"logistic": (1 / 256, -128), "tanh": (1 / 128, 0)}

# ------------------------------------------------------------------------------------------------
# gemmlowp logistic / tanh against the oracle
# ------------------------------------------------------------------------------------------------


@st.composite
def raw_case(draw, fn):
    w = draw(st.sampled_from([16, 32]))
    k = draw(st.integers(0, w - (3 if fn == "logistic" else 4)))
    vals = draw(st.lists(interesting_values(f"int{w}"), min_size=1, max_size=12))
    return w, k, vals


@given(raw_case("logistic"))
@example((32, 4, [0, 1, -1, 2**31 - 1, -(2**31), 1 << 27, -(1 << 27)]))
@example((16, 3, [0, 1, -1, 32767, -32768, 4096, -4096]))
def test_gemmlowp_logistic_matches_oracle(case):
    w, k, vals = case
    got = T.gemmlowp_logistic(np.array(vals), k, raw_bits=w, taps=True)
    assert got.values.tolist() == [O.logistic(v, k, w) for v in vals]
    assert got.scale == 2.0 ** -(w - 1) and got.ops.total() > 0 and set(got.taps) == {"exp", "output"}


@given(raw_case("tanh"))
@example((32, 4, [0, 1, -1, 2**31 - 1, -(2**31), 1 << 27, -(1 << 27)]))
@example((16, 3, [0, 1, -1, 32767, -32768, 4096, -4096]))
def test_gemmlowp_tanh_matches_oracle(case):
    w, k, vals = case
    got = T.gemmlowp_tanh(np.array(vals), k, raw_bits=w)
    assert got.values.tolist() == [O.tanh(v, k, w) for v in vals]


def test_gemmlowp_accuracy_and_symmetry():
    a = np.linspace(-(2**31) + 1, 2**31 - 1, 20001).astype(np.int64)
    x = a / 2.0**27
    lg = T.gemmlowp_logistic(a, 4).values / 2.0**31
    th = T.gemmlowp_tanh(a, 4).values / 2.0**31
    assert np.max(np.abs(lg - 1 / (1 + np.exp(-x)))) < 2e-7
    assert np.max(np.abs(th - np.tanh(x))) < 2e-7
    assert (T.gemmlowp_tanh(-a, 4).values == -T.gemmlowp_tanh(a, 4).values).all()
    a16 = np.arange(-32767, 32768)
    lg16 = T.gemmlowp_logistic(a16, 3, raw_bits=16).values / 2.0**15
    assert np.max(np.abs(lg16 - 1 / (1 + np.exp(-a16 / 4096)))) < 4e-4


def test_gemmlowp_argument_errors():
    with pytest.raises(ConfigError, match="raw_bits"):
        T.gemmlowp_logistic([0], 4, raw_bits=8)
    with pytest.raises(ConfigError, match="integer_bits"):
        T.gemmlowp_logistic([0], 30)
    with pytest.raises(ConfigError, match="integer_bits"):
        T.gemmlowp_tanh([0], 13, raw_bits=16)
    with pytest.raises(OperandRangeError):
        T.gemmlowp_tanh([1 << 15], 3, raw_bits=16)
    with pytest.raises(DTypeError):
        T.gemmlowp_logistic([0.5], 4)


# ------------------------------------------------------------------------------------------------
# 8-bit LOGISTIC / TANH against the oracle
# ------------------------------------------------------------------------------------------------


@st.composite
def int8_case(draw):
    fn = draw(st.sampled_from(["logistic", "tanh"]))
    variant = draw(st.sampled_from(T.INT8_VARIANTS))
    s = f32(draw(st.floats(2.0**-12, 16.0)))
    zp = draw(st.integers(-128, 127))
    os_, ozp = OUT8[fn]
    if fn == "tanh" and variant != "reference" and draw(st.booleans()):
        os_, ozp = f32(draw(st.floats(2.0**-9, 1.0))), draw(st.integers(-128, 127))
    xs = draw(st.lists(interesting_values("int8"), min_size=1, max_size=6))
    return fn, variant, s, zp, os_, ozp, xs, draw(st.sampled_from(T.LIBMS))


@given(int8_case())
@example(("logistic", "xnnpack", LOGISTIC_SPLIT[0], 0, 1 / 256, -128, [-1, 0, 1], "exact"))
@example(("logistic", "reference", LOGISTIC_SPLIT[1], 0, 1 / 256, -128, [-3, 3], "exact"))
@example(("tanh", "lut", TANH_SPLIT[0], 0, 1 / 128, 0, [1, -1], "exact"))
@example(("tanh", "lut", TANH_SPLIT[0], 0, 1 / 128, 0, [1, -1], "c"))
def test_int8_entries_match_oracle(case):
    fn, variant, s, zp, os_, ozp, xs, libm = case
    f = T.logistic_int8 if fn == "logistic" else T.tanh_int8
    got = f(np.array(xs), s, zp, variant=variant, output_scale=os_, output_zero_point=ozp, libm=libm)
    ref = {"lut": O.lut_int8, "xnnpack": O.xnnpack_int8}
    L = EXACT if libm == "exact" else LIBC
    want = [ref[variant](fn, v, s, zp, os_, ozp, L) if variant in ref else O.reference_int8(fn, v, s, zp)
            for v in xs]
    assert got.values.tolist() == want
    assert isinstance(got, QuantOpResult) and got.scale == os_ and got.zero_point == ozp


@pytest.mark.parametrize("fn", ["logistic", "tanh"])
def test_int8_tables_match_oracle_both_libms(fn):
    for s in (0.05, LOGISTIC_SPLIT[0], TANH_SPLIT[0], 0.37):
        for variant in T.INT8_VARIANTS:
            for libm, L in (("exact", EXACT), ("c", LIBC)):
                got = T.int8_activation_lut(fn, s, 3, variant=variant, libm=libm)
                assert (got == oracle_int8(fn, variant, s, 3, *OUT8[fn], L)).all(), (fn, s, variant, libm)


def test_int8_variants_differ_where_a_float_lands_on_a_tie():
    # tanhf(0.035170745f) is 4.5 / 128 exactly (correctly rounded): roundf goes away, nearbyint to even
    for libm in T.LIBMS:
        lut = T.int8_activation_lut("tanh", TANH_SPLIT[1], variant="lut", libm=libm)
        xnn = T.int8_activation_lut("tanh", TANH_SPLIT[1], variant="xnnpack", libm=libm)
        assert lut[129] == 5 and xnn[129] == 4
    # tanh(0.019533733f) is 0.64 ulp below 2.5 / 128: the exact tanhf rounds below the tie; the C
    # library's gives the tie itself where it is not correctly rounded there (glibc 2.36)
    exact = T.int8_activation_lut("tanh", TANH_SPLIT[0], variant="lut", libm="exact")
    assert exact[129] == 2
    c = T.int8_activation_lut("tanh", TANH_SPLIT[0], variant="lut", libm="c")
    assert c[129] == (3 if LIBC.tanhf(TANH_SPLIT[0]) == 2.5 / 128 else 2)
    lg = {v: T.logistic_int8(np.array([-3]), LOGISTIC_SPLIT[1], variant=v).values[0] for v in T.INT8_VARIANTS}
    assert lg == {"lut": -127, "xnnpack": -127, "reference": -128}


def test_int8_argument_errors():
    with pytest.raises(ConfigError, match="unknown variant"):
        T.logistic_int8([0], 0.1, variant="fast")
    with pytest.raises(ConfigError, match="1/256"):
        T.logistic_int8([0], 0.1, output_scale=1 / 128)
    with pytest.raises(ConfigError, match="fixed"):
        T.tanh_int8([0], 0.1, variant="reference", output_zero_point=3)
    with pytest.raises(ConfigError, match="int8"):
        T.tanh_int8([0], 0.1, in_type="int16")
    with pytest.raises(ConfigError, match="zero_point"):
        T.tanh_int8([0], 0.1, 200)
    for bad in (0.0, -0.1, math.inf, math.nan, 1e-50, "0.1"):
        with pytest.raises(ConfigError):
            T.tanh_int8([0], bad)
    with pytest.raises(ConfigError, match="2\\*\\*-28"):
        T.logistic_int8([0], 2.0**-30, variant="reference")
    with pytest.raises(OperandRangeError):
        T.logistic_int8([128], 0.1)
    with pytest.raises(DTypeError):
        T.logistic_int8(np.array([0.0]), 0.1)
    with pytest.raises(ConfigError, match="libm"):
        T.tanh_int8([0], 0.1, libm="glibc")


# ------------------------------------------------------------------------------------------------
# int16 LOGISTIC / TANH against the oracle
# ------------------------------------------------------------------------------------------------


@given(st.sampled_from(["logistic", "tanh"]), st.sampled_from(T.INT16_VARIANTS),
       st.one_of(st.sampled_from(INT16_SCALES), st.floats(2.0**-20, 4.0)),
       st.lists(interesting_values("int16"), min_size=1, max_size=8))
def test_int16_matches_oracle(fn, variant, s, xs):
    s = f32(s)
    f = T.logistic_int16 if fn == "logistic" else T.tanh_int16
    got = f(np.array(xs), s, variant=variant, taps=True, libm="exact")
    mult, shift = O.int16_params(fn, s, EXACT)
    assert T.int16_activation_params(fn, s, libm="exact") == (mult, shift)
    if variant == "optimized" and mult == 0:
        want = [O.optimized_int16(fn, v, shift) for v in xs]
    else:
        want = [O.reference_int16(fn, v, mult, shift) for v in xs]
    assert got.values.tolist() == want
    assert got.scale == 2.0**-15 and got.zero_point == 0 and "output" in got.taps


def test_int16_params_paths():
    assert T.int16_activation_params("logistic", 2.0**-12) == (0, 0)
    assert T.int16_activation_params("logistic", 2.0**-11) == (24576, 12)  # not logistic's power of two
    assert T.int16_activation_params("tanh", 2.0**-11) == (0, 1)
    assert T.int16_activation_params("tanh", 2.0**-12 * 1.0004) == (0, 0)  # within CheckedLog2's 1e-3
    assert T.int16_activation_params("tanh", 2.0**-12 * 1.01) == (24821, 13)
    for s in (2.0**-12, 2.0**-12 * 1.0006, 2.0**-12 * 0.9994, 0.3, 1.5e-5):
        for fn in ("logistic", "tanh"):
            assert T.int16_activation_params(fn, s, libm="c") == T.int16_activation_params(fn, s, libm="exact")


def test_sigmoid_table_is_sigmoid_and_monotone():
    t = np.array(T.SIGMOID_TABLE_UINT16)
    assert len(t) == 256 and t[0] == 32768 and t[-1] == 65535 and (np.diff(t) >= 0).all()
    exact = 65536 / (1 + np.exp(-np.arange(256) / 24))
    assert np.max(np.abs(t - exact)) <= 2


def test_int16_overflow_policy():
    x = np.array([-32768, -1, 0, 1, 32767])
    with pytest.raises(RegisterOverflow, match="scaled_input") as ei:
        T.logistic_int16(x, 8.0)
    assert ei.value.step == "scaled_input" and ei.value.bits == 32
    r = T.logistic_int16(x, 8.0, overflow="wrap")
    mult, shift = T.int16_activation_params("logistic", 8.0)
    wrapped = [O.wrap(v * mult, 32) for v in x.tolist()]  # shift 0: what the compiled C computes
    assert r.overflowed and r.events[0].step == "scaled_input"
    assert r.values.tolist() == [O.reference_int16("logistic", v, 1, 0) for v in wrapped]
    with pytest.raises(ConfigError, match="overflow"):
        T.tanh_int16(x, 0.01, overflow="saturate")


def test_int16_argument_errors():
    with pytest.raises(ConfigError, match="unknown variant"):
        T.tanh_int16([0], 2.0**-12, variant="lut")
    with pytest.raises(OperandRangeError):
        T.tanh_int16([40000], 2.0**-12)
    with pytest.raises(ConfigError, match="int16"):
        T.logistic_int16([0], 2.0**-12, in_type="int8")


# ------------------------------------------------------------------------------------------------
# int16 SOFTMAX against the oracle
# ------------------------------------------------------------------------------------------------


@functools.cache
def oracle_tables(variant: str, libm: str = "exact") -> tuple[list[int], list[int]]:
    return O.softmax_int16_tables(variant, EXACT if libm == "exact" else LIBC)


@pytest.mark.parametrize("variant", T.SOFTMAX_INT16_VARIANTS)
def test_softmax_tables_match_oracle_both_libms(variant):
    for libm in ("exact", "c"):
        e, r = T.softmax_int16_luts(variant, libm=libm)
        oe, orr = oracle_tables(variant, libm)
        assert e.tolist() == oe and r.tolist() == orr
    e1, r1 = T.softmax_int16_luts("tflite")
    e2, r2 = T.softmax_int16_luts("tflm")
    assert (e1 == e2).all() and np.flatnonzero(r1 != r2).tolist() == [160, 294]


@st.composite
def softmax_case(draw):
    variant = draw(st.sampled_from(T.SOFTMAX_INT16_VARIANTS))
    s = f32(draw(st.one_of(st.sampled_from([0.01, 1e-3, 2.0**-12, 3e-4, 0.1]), st.floats(2.0**-16, 2.0))))
    beta = f32(draw(st.one_of(st.just(1.0), st.floats(0.05, 3.0))))
    rows = draw(st.integers(1, 3))
    depth = draw(st.integers(1, 9))
    kind = draw(st.sampled_from(["any", "equal", "ties", "extremes"]))
    vals = st.integers(-32768, 32767) if kind != "ties" else st.sampled_from([-32768, -7, 0, 5, 32767])
    x = np.array(draw(st.lists(st.lists(vals, min_size=depth, max_size=depth), min_size=rows, max_size=rows)))
    if kind == "equal":
        x[:] = x[:, :1]
    elif kind == "extremes":
        x[:, ::2] = 32767
        x[:, 1::2] = -32768
    return variant, s, beta, x


@given(softmax_case())
@example(("tflite", 0.01, 1.0, np.array([[0, 100, 200], [5, 5, 5]])))
@example(("tflm", 3e-4, 0.7, np.array([[-12029, -17081, 19116, 24673, -27572, -28930]])))
def test_softmax_int16_matches_oracle(case):
    variant, s, beta, x = case
    mult, shift = O.softmax_int16_params(s, beta, variant)
    e, r = oracle_tables(variant)
    try:
        got = T.softmax_int16(x, s, beta=beta, variant=variant, taps=True, libm="exact")
    except RegisterOverflow:  # the left shift of some difference leaves int32 (C: undefined)
        assert any((int(v) - int(row.max())) << max(shift, 0) < -(2**31) for row in x for v in row)
        return
    assert got.values.tolist() == [O.softmax_int16(row.tolist(), mult, shift, e, r) for row in x]
    assert set(got.taps) == {"row_max", "exp", "sum", "reciprocal", "output"} and got.ops.total() > 0


def test_softmax_overflow_policy_and_shapes():
    x = np.array([[0, -1, -5, -16384, -32768, 32767, 100, 30000]])
    with pytest.raises(RegisterOverflow, match="scaled_diff"):
        T.softmax_int16(x, 10.0)
    got = T.softmax_int16(x, 10.0, overflow="wrap")
    assert got.values.tolist() == [[1, 1, 8191, 8191, 8191, 8191, 1, 1]]  # what TFLite computes (wraps)
    assert got.events[0].step == "scaled_diff"
    x3 = np.random.default_rng(0).integers(-300, 300, (2, 3, 5))
    assert T.softmax_int16(x3, 0.01).values.shape == (2, 3, 5)
    with pytest.raises(ConfigError, match="last axis"):
        T.softmax_int16(np.zeros((2, 0), dtype=np.int16), 0.01)
    with pytest.raises(ConfigError, match="axis"):
        T.softmax_int16(np.int16(3), 0.01)
    with pytest.raises(ConfigError, match="beta"):
        T.softmax_int16(x, 0.01, beta=0.0)
    e0 = int(T.softmax_int16(np.zeros((1, 1), dtype=np.int16), 0.01, taps=True).taps["exp"][0, 0])  # exp(0)
    n = (2**31 - 1) // e0  # the most maxima the int32 sum holds
    got = T.softmax_int16(np.zeros((1, n), dtype=np.int16), 0.01, libm="exact").values
    assert got[0].tolist() == O.softmax_int16([0] * n, *O.softmax_int16_params(0.01, 1.0, "tflite"),
                                              *oracle_tables("tflite"))
    with pytest.raises(RegisterOverflow, match="sum"):
        T.softmax_int16(np.zeros((1, n + 1), dtype=np.int16), 0.01)


def test_registry_form_runs_every_variant_and_old_keyword():
    x = np.array([[3, -1, 0, 7], [-5, 2, 9, -8]])
    for spec in T.OPS:
        for variant in spec.variants:
            r = spec.fn(x, 0.05, variant=variant)
            assert r.values.shape == x.shape and r.ops.total() > 0
        with pytest.warns(DeprecationWarning, match="variant="):
            old = spec.fn(x, 0.05, profile=spec.variants[-1])
        assert (old.values == spec.fn(x, 0.05, variant=spec.variants[-1]).values).all()


# ------------------------------------------------------------------------------------------------
# the real runtimes
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tm():
    pytest.importorskip("ai_edge_litert")
    import tflite_models

    return tflite_models


@pytest.fixture(scope="module")
def tflm():
    """The tflite-micro interpreter as ``run(model, x)``, or None when the package is absent (the tests
    then check the TFLite resolvers alone)."""
    try:
        from tflite_micro import runtime
    except ImportError:
        return None

    def run(model: bytes, x: np.ndarray) -> np.ndarray:
        it = runtime.Interpreter.from_bytes(model, arena_size=1 << 20)
        it.set_input(x, 0)
        it.invoke()
        return it.get_output(0)

    return run


INT8_CASES = [(s, zp) for s in INT8_SCALES for zp in (0, -128, 37)]


@pytest.mark.parametrize("fn", ["logistic", "tanh"])
def test_int8_against_tflite_every_input(tm, fn):
    """Every int8 input at 7 scales x 3 zero points plus the split scales: ``lut`` against
    BUILTIN_REF and BUILTIN_WITHOUT_DEFAULT_DELEGATES, ``xnnpack`` against BUILTIN."""
    os_, ozp = OUT8[fn]
    cases = INT8_CASES + [(s, 0) for s in (LOGISTIC_SPLIT if fn == "logistic" else TANH_SPLIT)]
    if fn == "tanh":
        cases += [(0.02, 5, 0.01, -3), (0.3, -20, 1 / 64, 10)]
    else:  # TFLite fixes logistic's output scale at 1/256, not its zero point
        cases += [(0.1, 10, 1 / 256, -100), (LOGISTIC_SPLIT[2], 0, 1 / 256, 0)]
    split = 0
    for case in cases:
        s, zp = case[:2]
        o_s, o_zp = case[2:] if len(case) == 4 else (os_, ozp)
        model = tm.one_op_model(fn, np.int8, (256,), s, zp, o_s, o_zp)
        f = T.logistic_int8 if fn == "logistic" else T.tanh_int8
        lut = f(X8, s, zp, variant="lut", output_scale=o_s, output_zero_point=o_zp).values
        xnn = f(X8, s, zp, variant="xnnpack", output_scale=o_s, output_zero_point=o_zp).values
        assert (tm.run(model, X8, "ref") == lut).all(), case
        assert (tm.run(model, X8, "nodelegate") == lut).all(), case
        assert (tm.run(model, X8, "builtin") == xnn).all(), case
        split += int((lut != xnn).any())
    assert split >= 2  # the split scales tell the two kernels apart


@pytest.mark.parametrize("fn", ["logistic", "tanh"])
def test_int8_reference_against_tflite_micro(tm, tflm, fn):
    """``reference`` (reference_integer_ops, fixed point) against TFLite Micro on every input."""
    if tflm is None:
        pytest.skip("tflite-micro is not installed")
    os_, ozp = OUT8[fn]
    f = T.logistic_int8 if fn == "logistic" else T.tanh_int8
    for s, zp in INT8_CASES + [(LOGISTIC_SPLIT[1], 0)]:
        model = tm.one_op_model(fn, np.int8, (256,), s, zp, os_, ozp)
        assert (tflm(model, X8) == f(X8, s, zp, variant="reference").values).all(), (s, zp)
    if fn == "logistic":  # where the fixed point differs from the table, TFLite Micro follows it
        model = tm.one_op_model(fn, np.int8, (256,), LOGISTIC_SPLIT[1], 0, os_, ozp)
        assert (tflm(model, X8) != f(X8, LOGISTIC_SPLIT[1], variant="lut").values).sum() == 1


@pytest.mark.parametrize("fn", ["logistic", "tanh"])
def test_int16_against_tflite_every_input(tm, tflm, fn):
    """All 65536 inputs at 8 scales: ``reference`` against BUILTIN_REF and TFLite Micro,
    ``optimized`` against BUILTIN (gemmlowp int16 on the power-of-two path)."""
    f = T.logistic_int16 if fn == "logistic" else T.tanh_int16
    pot = 0
    for s in INT16_SCALES:
        model = tm.one_op_model(fn, np.int16, (65536,), s, 0, 2.0**-15, 0)
        ref = f(X16, s, variant="reference").values
        opt = f(X16, s, variant="optimized").values
        assert (tm.run(model, X16, "ref") == ref).all(), s
        assert (tm.run(model, X16, "builtin") == opt).all(), s
        assert tflm is None or (tflm(model, X16) == ref).all(), s
        pot += int((ref != opt).any())
    assert pot == (2 if fn == "logistic" else 3)


def test_int16_overflow_wraps_like_tflite(tm):
    x = np.array([-32768, -20000, -1, 0, 1, 20000, 32767], dtype=np.int16)
    model = tm.one_op_model("logistic", np.int16, x.shape, 8.0, 0, 2.0**-15, 0)
    assert (tm.run(model, x, "ref") == T.logistic_int16(x, 8.0, overflow="wrap").values).all()


def softmax_rows(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(-32768, 32768, (48, 13))
    x[0] = 5  # all equal
    x[1, :4] = 32767  # ties at the max
    x[2] = -32768
    x[3, ::2], x[3, 1::2] = 32767, -32768  # extremes
    x[4] = rng.integers(-40, 40, 13)  # small differences
    x[5] = np.arange(13) * 5000 - 32768
    return x.astype(np.int16)


SOFTMAX_CASES = [(0.01, 1.0), (1e-3, 1.0), (3e-4, 0.7), (0.1, 1.0), (2.0**-12, 1.0), (0.05, 2.5), (1e-5, 1.0),
                 (0.002, 0.3)]


def test_softmax_int16_against_tflite(tm, tflm):
    """Random rows and rows with ties / all equal / extremes at 8 (scale, beta): ``tflite``
    against BUILTIN_REF and BUILTIN, ``tflm`` against TFLite Micro; then rows where the two
    variants differ (searched with intsim), each runtime following its own."""
    for i, (s, beta) in enumerate(SOFTMAX_CASES):
        x = softmax_rows(i)
        model = tm.one_op_model("softmax", np.int16, x.shape, s, 0, 2.0**-15, 0, beta=beta)
        want = T.softmax_int16(x, s, beta=beta).values
        assert (tm.run(model, x, "ref") == want).all(), (s, beta)
        assert (tm.run(model, x, "builtin") == want).all(), (s, beta)
        assert tflm is None or (tflm(model, x) == T.softmax_int16(x, s, beta=beta, variant="tflm").values).all()
    rng = np.random.default_rng(7)
    found = 0
    for s, beta in ((3e-4, 0.7), (1e-3, 1.3)):
        x = rng.integers(-32768, 32768, (20000, 6))
        a = T.softmax_int16(x, s, beta=beta).values
        b = T.softmax_int16(x, s, beta=beta, variant="tflm").values
        rows = x[(a != b).any(axis=1)].astype(np.int16)
        found += len(rows)
        if not len(rows):
            continue
        model = tm.one_op_model("softmax", np.int16, rows.shape, s, 0, 2.0**-15, 0, beta=beta)
        assert (tm.run(model, rows, "ref") == T.softmax_int16(rows, s, beta=beta).values).all()
        assert tflm is None or (tflm(model, rows) == T.softmax_int16(rows, s, beta=beta, variant="tflm").values).all()
    assert found >= 10


def test_softmax_int16_overflow_wraps_like_tflite(tm):
    x = np.array([[0, -1, -5, -16384, -32768, 32767, 100, 30000]], dtype=np.int16)
    model = tm.one_op_model("softmax", np.int16, x.shape, 10.0, 0, 2.0**-15, 0)
    assert (tm.run(model, x, "ref") == T.softmax_int16(x, 10.0, overflow="wrap").values).all()


# ------------------------------------------------------------------------------------------------
# accuracy against the float64 references (reference/nonlinear.py)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.02, 0.0625, 0.1])
def test_int8_activations_are_within_one_output_step_of_float64(scale):
    from intsim_reference.nonlinear import sigmoid, tanh

    x = np.arange(-128, 128, dtype=np.int8)
    real = x.astype(np.float64) * scale
    for variant in T.INT8_VARIANTS:
        lg = T.logistic_int8(x, scale, variant=variant)
        th = T.tanh_int8(x, scale, variant=variant)
        assert np.abs((lg.values + 128) / 256 - sigmoid(real)).max() <= 1 / 256
        assert np.abs(th.values / 128 - tanh(real)).max() <= 1 / 128


@pytest.mark.parametrize("scale", [2.0**-12, 1 / 3000])
def test_int16_activations_and_softmax_are_close_to_float64(scale):
    from intsim_reference.nonlinear import sigmoid, softmax, tanh

    x = np.arange(-32768, 32768, 7, dtype=np.int16)
    real = x.astype(np.float64) * scale
    for variant in T.INT16_VARIANTS:
        assert np.abs(T.logistic_int16(x, scale, variant=variant).values / 32768 - sigmoid(real)).max() < 4e-4
        assert np.abs(T.tanh_int16(x, scale, variant=variant).values / 32768 - tanh(real)).max() < 8e-4
    rows = np.random.default_rng(0).integers(-3000, 3000, size=(16, 40)).astype(np.int16)
    got = T.softmax_int16(rows, scale).values / 32768
    assert np.abs(got - softmax(rows.astype(np.float64) * scale)).max() < 2e-3
