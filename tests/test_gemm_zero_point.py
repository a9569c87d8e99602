"""Zero points in matmul (ONNX MatMulInteger) and the x86 VPMADDUBSW datapath, against the Python-int oracles
(intsim.oracles.gemm) and, where it is installed, ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intsim import (
    AccumulatorOverflow,
    ConfigError,
    Datapath,
    DTypeError,
    IntType,
    OperandRangeError,
    ShapeError,
    gemm_ops,
    matmul,
    trace_output,
)
from intsim.hw import intdot
from intsim.hw.intdot import gemm_engine
from intsim.oracles.gemm import matmul as gemm_oracle
from intsim.oracles.gemm import mlas_u8s8_avx2, tree_overflow_counts
from intsim.testing.strategies import int_types, interesting_values

POLICIES = ["wrap", "saturate", "raise"]
U8, S8, U4, S4 = IntType(8, False), IntType(8), IntType(4, False), IntType(4)


# ---- strategies ------------------------------------------------------------------------------

@st.composite
def zero_point(draw, t: IntType, n: int):
    """None, a scalar (int, 0-d or 1-element array) or one per row / column, in ``t``."""
    kind = draw(st.sampled_from(["none", "int", "0d", "1", "vector"]))
    if kind == "none":
        return None
    if kind == "vector":
        return np.array(draw(st.lists(interesting_values(t), min_size=n, max_size=n)), dtype=np.int64)
    v = draw(interesting_values(t))
    return v if kind == "int" else np.array(v) if kind == "0d" else np.array([v])


@st.composite
def zp_cases(draw, types=None, max_dim=5, max_k=11):
    if types is None:
        a = draw(st.one_of(st.sampled_from([U8, S8, U4, S4]), int_types(1, 32)))
        b = draw(st.one_of(st.sampled_from([U8, S8, U4, S4]), int_types(1, 32)))
    else:
        a, b = draw(st.sampled_from(types)), draw(st.sampled_from(types))
    overflow = draw(st.sampled_from(POLICIES))
    k_chunk = draw(st.integers(1, 3))
    chunk_bits = draw(st.one_of(st.none(), st.integers(1, 40)))
    chunk_overflow = draw(st.sampled_from([None, *POLICIES])) if chunk_bits is not None else None
    # accumulator from "always overflows" to "never overflows" for the shifted products
    acc_bits = draw(st.integers(1, 64))
    dp = Datapath(a=a, b=b, acc_bits=acc_bits, overflow=overflow, k_chunk=k_chunk, chunk_bits=chunk_bits,
                  chunk_overflow=chunk_overflow, zero_points=draw(st.sampled_from(["operands", "correction"])))
    M, K, N = draw(st.integers(0, max_dim)), draw(st.integers(0, max_k)), draw(st.integers(0, max_dim))
    A = np.array(draw(st.lists(st.lists(interesting_values(a), min_size=K, max_size=K), min_size=M, max_size=M)),
                 dtype=np.int64).reshape(M, K)
    B = np.array(draw(st.lists(st.lists(interesting_values(b), min_size=N, max_size=N), min_size=K, max_size=K)),
                 dtype=np.int64).reshape(K, N)
    bias = None
    if draw(st.booleans()):
        bias = np.array(draw(st.lists(interesting_values(dp.acc), min_size=N, max_size=N)), dtype=np.int64)
    return dp, A, B, bias, draw(zero_point(a, M)), draw(zero_point(b, N))


def _zp_arg(zp):
    """A zero point as the oracle takes it: None, an int or a list."""
    if zp is None or isinstance(zp, int):
        return zp
    return np.asarray(zp).reshape(-1).tolist()


def check_against_oracle(dp, A, B, bias, azp, bzp):
    """matmul with zero points equals the oracle: values, flags, first k, tree counts, events, or the raise."""
    N = B.shape[1]
    kw = dict(a_zero_point=_zp_arg(azp), b_zero_point=_zp_arg(bzp), zero_points=dp.zero_points)
    vals, flags, firstk, event = gemm_oracle(
        A.tolist(), B.tolist(), dp.acc_bits, dp.overflow, dp.k_chunk, dp.chunk_bits, dp.chunk_overflow,
        None if bias is None else bias.tolist(), n=N, **kw)
    if event is not None:
        with pytest.raises(AccumulatorOverflow) as ei:
            matmul(A, B, dp, bias=bias, a_zero_point=azp, b_zero_point=bzp)
        i, j, k, value, stage = event
        assert (ei.value.index, ei.value.k, ei.value.value) == ((i, j), k, value)
        assert ei.value.bits == (dp.chunk_bits if stage == 1 else dp.acc_bits)
        return None
    r = matmul(A, B, dp, bias=bias, a_zero_point=azp, b_zero_point=bzp)
    assert r.values.shape == (A.shape[0], N) and r.values.dtype == np.int64
    assert r.values.tolist() == vals
    assert r.overflow.tolist() == flags
    assert r.first_overflow_k.tolist() == firstk
    counts = tree_overflow_counts(A.tolist(), B.tolist(), dp.k_chunk, dp.chunk_bits, n=N, **kw)
    assert r.tree_overflow_count.tolist() == counts and r.n_tree_overflows == sum(map(sum, counts))
    # the events agree with the flags: tree outputs are those with a tree count, acc the rest
    steps = {e.step: e for e in r.events}
    tree_out = np.array(counts, dtype=np.int64).reshape(r.values.shape) > 0
    assert ("tree" in steps) == bool(tree_out.any())
    if tree_out.any():
        assert steps["tree"].count == int(tree_out.sum())
    assert r.overflowed == bool(r.overflow.any())
    return r


# ---- zero points against the oracle ------------------------------------------------------------

@settings(max_examples=600)
@given(zp_cases())
def test_zero_points_match_oracle(case):
    check_against_oracle(*case)


@given(zp_cases(types=[U8, S8, U4, S4], max_dim=3, max_k=37))
def test_zero_points_long_k_match_oracle(case):
    check_against_oracle(*case)


@st.composite
def near_overflow_cases(draw):
    """8- and 4-bit operands with zero points and an accumulator near the edge of the shifted sums."""
    a, b = draw(st.sampled_from([U8, S8, U4, S4])), draw(st.sampled_from([U8, S8, U4, S4]))
    K = draw(st.integers(1, 24))
    M, N = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    acc_bits = draw(st.integers(a.bits + 2, a.bits + b.bits + 7))
    dp = Datapath(a=a, b=b, acc_bits=acc_bits, overflow=draw(st.sampled_from(POLICIES)),
                  k_chunk=draw(st.integers(1, 3)), zero_points=draw(st.sampled_from(["operands", "correction"])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.integers(a.min, a.max + 1, size=(M, K))
    B = rng.integers(b.min, b.max + 1, size=(K, N))
    azp = rng.integers(a.min, a.max + 1, size=M) if draw(st.booleans()) else int(rng.integers(a.min, a.max + 1))
    bzp = rng.integers(b.min, b.max + 1, size=N) if draw(st.booleans()) else int(rng.integers(b.min, b.max + 1))
    return dp, A, B, None, azp, bzp


@given(near_overflow_cases())
def test_zero_points_near_overflow_match_oracle(case):
    check_against_oracle(*case)


@st.composite
def correction_cases(draw):
    """zero_points="correction" where the raw products stay small and the correction add is what overflows
    (or a product add, for the raise order): small operands, zero points near the extremes."""
    a, b = draw(st.sampled_from([U8, S8, U4, S4])), draw(st.sampled_from([U8, S8, U4, S4]))
    M, K, N = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.integers(max(a.min, -2), 3, (M, K))
    B = rng.integers(max(b.min, -2), 3, (K, N))
    azp = rng.choice([a.min, a.max, a.max - 1], M) if draw(st.booleans()) else int(rng.choice([a.min, a.max]))
    bzp = rng.choice([b.min, b.max, b.min + 1], N) if draw(st.booleans()) else int(rng.choice([b.min, b.max]))
    need = max(1, int(np.abs((A - np.reshape(azp, (-1, 1))) @ (B - np.asarray(bzp))).max())).bit_length() + 1
    acc_bits = draw(st.integers(max(2, need - 3), need + 1))
    dp = Datapath(a=a, b=b, acc_bits=acc_bits, overflow=draw(st.sampled_from(POLICIES)),
                  k_chunk=draw(st.integers(1, 2)), zero_points="correction")
    bias = rng.integers(dp.acc.min, dp.acc.max + 1, N) if draw(st.booleans()) else None
    return dp, A, B, bias, azp, bzp


@given(correction_cases())
def test_correction_add_matches_oracle(case):
    check_against_oracle(*case)


@pytest.mark.parametrize("engine", ["float"] + [pytest.param(e, marks=pytest.mark.skipif(
    e not in intdot.cpu_engines(), reason=f"this CPU lacks {e}")) for e in intdot.ENGINES])
@given(seed=st.integers(0, 2**32 - 1), per_row=st.booleans(), per_col=st.booleans(), use_bias=st.booleans())
@settings(max_examples=20)
def test_zero_points_large_on_every_engine(engine, seed, per_row, per_col, use_bias):
    """Big enough for the integer engines: the engine on the raw operands plus the int64 correction
    (or the shifted operands on the float paths) gives the exact (A - a_zp) @ (B - b_zp)."""
    rng = np.random.default_rng(seed)
    a, b = (U8, S8) if seed % 3 else (S8, U8) if seed % 2 else (U8, U8)
    M, K, N = 33, 300, 40
    A = rng.integers(a.min, a.max + 1, (M, K)).astype(a.dtype)
    B = rng.integers(b.min, b.max + 1, (K, N)).astype(b.dtype)
    azp = rng.integers(a.min, a.max + 1, M) if per_row else int(rng.integers(a.min, a.max + 1))
    bzp = rng.integers(b.min, b.max + 1, N) if per_col else int(rng.integers(b.min, b.max + 1))
    bias = rng.integers(-2**20, 2**20, N) if use_bias else None
    want = (A.astype(np.int64) - np.reshape(azp, (-1, 1))) @ (B.astype(np.int64) - np.asarray(bzp)) + \
        (0 if bias is None else bias)
    dp = Datapath(a=a, b=b, acc_bits=32, overflow="wrap")
    with gemm_engine(engine):
        r = matmul(A, B, dp, bias=bias, a_zero_point=azp, b_zero_point=bzp)
    assert np.array_equal(r.values, want) and not r.overflowed
    assert r.method == engine if engine != "float" else r.method.endswith("blas")


def test_no_zero_point_is_todays_gemm():
    """None (the default) is the GEMM without zero points bit for bit, same method and ops; zero points of
    value 0 give the same values and flags (only the op counts show the subtractors)."""
    rng = np.random.default_rng(5)
    A = rng.integers(0, 256, (40, 900)).astype(np.uint8)
    B = rng.integers(-128, 128, (900, 30)).astype(np.int8)
    for dp in (Datapath(a=U8, b=S8, acc_bits=32, overflow="wrap"), Datapath(a=U8, b=S8, acc_bits=24, overflow="wrap"),
               Datapath.vpmaddubsw()):
        r0 = matmul(A, B, dp)
        r1 = matmul(A, B, dp, a_zero_point=None, b_zero_point=None)
        r2 = matmul(A, B, dp, a_zero_point=0, b_zero_point=np.zeros(30, np.int8))
        for r in (r1, r2):
            assert np.array_equal(r.values, r0.values) and np.array_equal(r.overflow, r0.overflow)
            assert np.array_equal(r.first_overflow_k, r0.first_overflow_k) and r.events == r0.events
            assert np.array_equal(r.tree_overflow_count, r0.tree_overflow_count)
        assert r1.method == r0.method and r1.ops == r0.ops and r1.n_scanned == r0.n_scanned
    assert Datapath(a=U8, b=S8).zero_points == "operands"
    assert Datapath(a=U8, b=S8).describe() == "uint8 x int8 -> acc32 (raise), k_chunk=1"


# ---- named cases -------------------------------------------------------------------------------

def test_onnx_matmulinteger_example():
    """The example of the ONNX MatMulInteger specification (onnx/defs/math/defs.cc)."""
    A = np.array([[11, 7, 3], [10, 6, 2], [9, 5, 1], [8, 4, 0]], np.uint8)
    B = np.array([[1, 4], [2, 5], [3, 6]], np.uint8)
    want = [[-38, -83], [-44, -98], [-50, -113], [-56, -128]]
    for scheme in ("operands", "correction"):
        dp = Datapath(a=U8, b=U8, acc_bits=32, overflow="wrap", zero_points=scheme)
        assert matmul(A, B, dp, a_zero_point=np.array(12, np.uint8), b_zero_point=0).values.tolist() == want


def test_per_row_and_per_column_zero_points():
    A = np.array([[10, 20], [30, 40]])
    B = np.array([[1, 2], [3, 4]])
    r = matmul(A, B, Datapath(a=U8, b=S8), a_zero_point=[10, 30], b_zero_point=[1, -2])
    assert r.values.tolist() == [[0 * 0 + 10 * 2, 0 * 4 + 10 * 6], [0 + 10 * 2, 0 + 10 * 6]]


def test_shift_widens_the_operands_by_one_bit():
    """uint8 255 - 0 and int8 -128 - 127: the multipliers see 9-bit values; a 17-bit accumulator holds
    (-255) * 255 = -65025 only as a 17-bit signed value, a 16-bit one overflows."""
    A, B = [[0]], [[127]]
    r = matmul(A, B, Datapath(a=U8, b=S8, acc_bits=17), a_zero_point=255, b_zero_point=-128)
    assert r.values.tolist() == [[-255 * 255]]
    with pytest.raises(AccumulatorOverflow) as ei:
        matmul(A, B, Datapath(a=U8, b=S8, acc_bits=16), a_zero_point=255, b_zero_point=-128)
    assert ei.value.value == -65025 and ei.value.k == 0
    ops = matmul(A, B, Datapath(a=U8, b=S8, acc_bits=17), a_zero_point=255, b_zero_point=-128).ops
    assert ops["mac", (9, 9, 17)] == 1 and ops["add", (9,)] == 2 and ops["read", (8,)] == 4


def test_correction_add_overflow_is_reported_at_k_equals_K():
    """zero_points="correction": the raw products fit, the correction add does not."""
    A, B = [[0, 0]], [[0], [0]]
    dp = Datapath(a=U8, b=U8, acc_bits=16, overflow="saturate", zero_points="correction")
    r = matmul(A, B, dp, a_zero_point=255, b_zero_point=255)  # 2 * 255 * 255 = 130050
    assert r.values.tolist() == [[32767]] and r.first_overflow_k.tolist() == [[2]]
    assert [(e.step, e.value, e.index) for e in r.events] == [("acc", 130050, (0, 0))]
    with pytest.raises(AccumulatorOverflow, match="zero-point correction add") as ei:
        matmul(A, B, Datapath(a=U8, b=U8, acc_bits=16, zero_points="correction"), a_zero_point=255,
               b_zero_point=255)
    assert ei.value.k == 2 and ei.value.value == 130050 and ei.value.index == (0, 0)
    wrap = matmul(A, B, Datapath(a=U8, b=U8, acc_bits=16, overflow="wrap", zero_points="correction"),
                  a_zero_point=255, b_zero_point=255)
    assert wrap.values.tolist() == [[130050 - 2 * 65536]]
    # the shifted scheme overflows at the first add already
    r2 = matmul(A, B, Datapath(a=U8, b=U8, acc_bits=16, overflow="saturate"), a_zero_point=255, b_zero_point=255)
    assert r2.first_overflow_k.tolist() == [[0]] and r2.values.tolist() == [[32767]]


def test_correction_scheme_with_32_bit_operands_is_exact():
    """Corrections beyond int64 (32-bit operands and zero points) are formed in Python ints."""
    t = IntType(32, False)
    A = np.array([[t.max, 0, t.max]])
    B = np.array([[t.max], [t.max], [1]])
    for scheme in ("operands", "correction"):
        dp = Datapath(a=t, b=t, acc_bits=64, overflow="wrap", zero_points=scheme)
        check_against_oracle(dp, A, B, None, 0, t.max)
        check_against_oracle(dp, A, B, None, t.max, t.max)
        check_against_oracle(Datapath(a=t, b=t, acc_bits=64, overflow="saturate", zero_points=scheme),
                             A, B, None, t.max, 1)


def test_trace_output_with_zero_points():
    rng = np.random.default_rng(3)
    A = rng.integers(0, 256, (3, 9))
    B = rng.integers(-128, 128, (9, 2))
    for dp in (Datapath(a=U8, b=S8, acc_bits=20, overflow="saturate", k_chunk=2),
               Datapath(a=U8, b=S8, acc_bits=20, overflow="wrap", zero_points="correction"), Datapath.vpmaddubsw()):
        r = matmul(A, B, dp, a_zero_point=[3, 200, 0], b_zero_point=-7)
        for i in range(3):
            for j in range(2):
                tr = trace_output(A, B, dp, i, j, a_zero_point=[3, 200, 0], b_zero_point=-7)
                assert tr[-1] == int(r.values[i, j])
                assert len(tr) == -(-9 // dp.k_chunk) + (dp.zero_points == "correction")


def test_gemm_ops_with_zero_points():
    ops = gemm_ops(2, 3, 4, Datapath(a=U8, b=S8), a_zero_points=1, b_zero_points=4)
    assert ops["mac", (9, 9, 32)] == 24 and ops["add", (9,)] == 6 + 12
    assert ops["read", (8,)] == (6 + 1) + (12 + 4)
    cops = gemm_ops(2, 3, 4, Datapath(a=U8, b=S8, zero_points="correction"), a_zero_points=1, b_zero_points=4)
    assert cops["mac", (8, 8, 32)] == 24
    assert cops["add", (32,)] == 12 + (6 + 2) + 8  # column sums, row sums and the K a_zp fold, correction adds
    assert cops["mac", (8, 32, 32)] == 16  # a_zp * colsum and b_zp * rowsum per output
    assert gemm_ops(2, 3, 4, Datapath()) == gemm_ops(2, 3, 4, Datapath(), a_zero_points=0, b_zero_points=0)
    with pytest.raises(ConfigError, match="a_zero_points"):
        gemm_ops(2, 3, 4, Datapath(), a_zero_points=-1)


# ---- typed errors ------------------------------------------------------------------------------

def test_zero_point_errors():
    A, B = np.zeros((2, 3), np.uint8), np.zeros((3, 4), np.int8)
    dp = Datapath(a=U8, b=S8)
    with pytest.raises(OperandRangeError, match=r"a_zero_point.*uint8") as ei:
        matmul(A, B, dp, a_zero_point=256)
    assert ei.value.value == 256
    with pytest.raises(OperandRangeError, match="a_zero_point"):
        matmul(A, B, dp, a_zero_point=[-1, 0])
    with pytest.raises(OperandRangeError, match="b_zero_point") as ei:
        matmul(A, B, dp, b_zero_point=[0, 0, 128, 0])
    assert ei.value.index == (2,) and ei.value.value == 128
    with pytest.raises(ShapeError, match=r"\(2,\).*row of A"):
        matmul(A, B, dp, a_zero_point=[1, 2, 3])
    with pytest.raises(ShapeError, match=r"\(4,\).*column of B"):
        matmul(A, B, dp, b_zero_point=np.zeros((1, 4), np.int8))
    with pytest.raises(DTypeError):
        matmul(A, B, dp, a_zero_point=1.0)
    with pytest.raises(DTypeError):
        matmul(A, B, dp, b_zero_point=True)
    with pytest.raises(DTypeError):
        matmul(A, B, dp, b_zero_point=np.zeros(4, bool))
    with pytest.raises(ShapeError):
        trace_output(A, B, dp, 0, 0, a_zero_point=[1, 2, 3])
    with pytest.raises(ConfigError, match="zero_points must be one of operands, correction"):
        Datapath(zero_points="before")


# ---- VPMADDUBSW --------------------------------------------------------------------------------

def test_vpmaddubsw_datapath():
    dp = Datapath.vpmaddubsw()
    assert (dp.a, dp.b, dp.acc_bits, dp.overflow, dp.k_chunk, dp.chunk_bits, dp.chunk_policy, dp.zero_points) == \
        (U8, S8, 32, "wrap", 2, 16, "saturate", "correction")
    assert Datapath.vpmaddubsw("raise").overflow == "raise"


def test_vpmaddubsw_known_pairs():
    dp = Datapath.vpmaddubsw()
    # 255 * 127 * 2 = 64770 saturates to 32767; 255 * -128 * 2 = -65280 to -32768
    r = matmul([[255, 255]], [[127], [127]], dp)
    assert r.values.tolist() == [[32767]] and r.tree_overflow_count.tolist() == [[1]]
    assert r.first_overflow_k.tolist() == [[1]] and r.events[0].value == 64770 and r.events[0].step == "tree"
    r = matmul([[255, 255]], [[-128], [-128]], dp)
    assert r.values.tolist() == [[-32768]] and r.n_tree_overflows == 1 and r.events[0].value == -65280
    # both in one row: -1 instead of the exact -510; the pairs are (0, 1), (2, 3)
    r = matmul([[255, 255, 255, 255]], [[127], [127], [-128], [-128]], dp)
    assert r.values.tolist() == [[-1]] and r.n_tree_overflows == 2
    # pairs (0, 1) and (2, 3), not (1, 2): here no pair saturates
    r = matmul([[0, 255, 255, 0]], [[127], [127], [127], [127]], dp)
    assert r.values.tolist() == [[2 * 255 * 127]] and r.n_tree_overflows == 0
    # K odd: the last product is alone (padded with a zero), 255 * 127 fits int16
    r = matmul([[255, 255, 255]], [[127], [127], [127]], dp)
    assert r.values.tolist() == [[32767 + 255 * 127]] and r.tree_overflow_count.tolist() == [[1]]
    # the zero points are applied after the saturation: 32767 - 1 * (127 + 127) - 0
    r = matmul([[255, 255]], [[127], [127]], dp, a_zero_point=1)
    assert r.values.tolist() == [[32767 - 254]] and r.n_tree_overflows == 1
    # while the shifted scheme would not saturate: 254 * 127 * 2 = 64516 still does; 200 - 73 = 127 does not
    exact = Datapath(a=U8, b=S8, acc_bits=32, overflow="wrap", k_chunk=2, chunk_bits=16, chunk_overflow="saturate")
    assert matmul([[200, 200]], [[127], [127]], exact, a_zero_point=73).n_tree_overflows == 0
    assert matmul([[200, 200]], [[127], [127]], dp, a_zero_point=73).n_tree_overflows == 1


@st.composite
def mlas_cases(draw):
    M, N = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    K = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 127, 128, 129, 131, 260]))
    heavy = draw(st.booleans())  # values near the extremes: many saturated pairs
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.integers(180 if heavy else 0, 256, (M, K))
    B = rng.choice([-128, -127, 126, 127], (K, N)) if heavy else rng.integers(-128, 128, (K, N))
    azp = draw(interesting_values(U8))
    bzp = draw(st.one_of(interesting_values(S8), st.lists(interesting_values(S8), min_size=N, max_size=N)))
    return A, B, azp, bzp


@settings(max_examples=150)
@given(mlas_cases())
def test_vpmaddubsw_matches_mlas_instruction_model(case):
    """The datapath equals the instruction-by-instruction model of MLAS's AVX2 kernel (K slices of 128,
    accumulators starting at the row/column-sum corrections, pairs saturated, int32 wrap), value and
    number of saturated words per output."""
    A, B, azp, bzp = case
    vals, sats = mlas_u8s8_avx2(A.tolist(), B.tolist(), azp, bzp, n=B.shape[1])
    r = matmul(A, B, Datapath.vpmaddubsw(), a_zero_point=azp, b_zero_point=bzp)
    assert r.values.tolist() == vals
    assert r.tree_overflow_count.tolist() == sats
    check_against_oracle(Datapath.vpmaddubsw(), A, B, None, azp, bzp)


@settings(max_examples=100)
@given(mlas_cases())
def test_vpmaddubsw_differs_from_exact_exactly_where_pairs_saturate(case):
    """The VPMADDUBSW result minus the exact result is, modulo 2**32, the sum over the output's pairs of
    (saturated - exact pair sum), which the oracle gives: they differ exactly where that is nonzero."""
    A, B, azp, bzp = case
    M, K, N = A.shape[0], A.shape[1], B.shape[1]
    exact = matmul(A, B, Datapath(a=U8, b=S8, acc_bits=32, overflow="wrap"), a_zero_point=azp, b_zero_point=bzp)
    model = matmul(A, B, Datapath.vpmaddubsw(), a_zero_point=azp, b_zero_point=bzp)
    err = np.zeros((M, N), np.int64)
    for i in range(M):
        for j in range(N):
            for k in range(0, K, 2):
                p = sum(int(A[i, kk]) * int(B[kk, j]) for kk in range(k, min(k + 2, K)))
                err[i, j] += max(-32768, min(32767, p)) - p
    diff = (model.values - exact.values) % 2**32
    assert np.array_equal(diff, err % 2**32)
    assert np.array_equal(model.values != exact.values, err % 2**32 != 0)
    assert not ((err != 0) & (model.tree_overflow_count == 0)).any()  # a difference needs a saturated pair
    assert model.n_tree_overflows == sum(map(sum, mlas_u8s8_avx2(A.tolist(), B.tolist(), azp, bzp, n=N)[1]))


def test_vpmaddubsw_large_matrix():
    """A MiniLM-sized u8 x s8 GEMM: every output scanned, counts from the block count."""
    rng = np.random.default_rng(11)
    M, K, N = 16, 384, 24
    A = rng.integers(0, 256, (M, K)).astype(np.uint8)
    B = rng.integers(-128, 128, (K, N)).astype(np.int8)
    r = matmul(A, B, Datapath.vpmaddubsw(), a_zero_point=120, b_zero_point=-3)
    vals, sats = mlas_u8s8_avx2(A.tolist(), B.tolist(), 120, -3)
    assert r.values.tolist() == vals and r.tree_overflow_count.tolist() == sats and r.n_tree_overflows > 0


# ---- ONNX Runtime ------------------------------------------------------------------------------

def _ort_matmulinteger(A, B, azp, bzp, b_initializer):
    """ONNX Runtime's MatMulInteger (CPU) of A and B with the given zero points (None: absent)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    ttype = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}
    inputs = [helper.make_tensor_value_info("A", ttype[A.dtype], list(A.shape))]
    inits = []
    feeds = {"A": A}
    names = ["A", "B"]
    if b_initializer:
        inits.append(numpy_helper.from_array(B, "B"))
    else:
        inputs.append(helper.make_tensor_value_info("B", ttype[B.dtype], list(B.shape)))
        feeds["B"] = B
    for name, zp, dtype in (("a_zero_point", azp, A.dtype), ("b_zero_point", bzp, B.dtype)):
        if zp is None:
            names.append("")
            continue
        arr = np.asarray(zp).astype(dtype)
        inits.append(numpy_helper.from_array(arr, name))
        names.append(name)
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node("MatMulInteger", names, ["Y"])
    out = helper.make_tensor_value_info("Y", TensorProto.INT32, [A.shape[0], B.shape[1]])
    g = helper.make_graph([node], "g", inputs, [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("types", [(U8, S8), (U8, U8), (S8, S8)])
@pytest.mark.parametrize("b_initializer", [False, True])
@pytest.mark.parametrize("shape", [(1, 7, 5), (6, 33, 17), (9, 300, 20)])
def test_matmulinteger_against_onnxruntime(types, b_initializer, shape):
    """ONNX Runtime's MatMulInteger with zero points (per tensor; B per column) bit for bit, through
    intsim.matmul on the exact int32 datapath (ONNX Runtime on this CPU takes an exact kernel: AMX, VNNI or
    the int16 U8U8 kernel; results fit int32)."""
    a, b = types
    M, K, N = shape
    rng = np.random.default_rng(M * K * N + a.bits + b.signed)
    A = rng.integers(a.min, a.max + 1, (M, K)).astype(a.dtype)
    B = rng.integers(b.min, b.max + 1, (K, N)).astype(b.dtype)
    dp = Datapath(a=a, b=b, acc_bits=32, overflow="wrap")
    for azp, bzp in ((None, None), (int(rng.integers(a.min, a.max + 1)), None),
                     (None, int(rng.integers(b.min, b.max + 1))),
                     (int(rng.integers(a.min, a.max + 1)), int(rng.integers(b.min, b.max + 1))),
                     (int(rng.integers(a.min, a.max + 1)), rng.integers(b.min, b.max + 1, N)),
                     (a.max, np.full(N, b.min)), (a.min, np.full(N, b.max))):
        got = _ort_matmulinteger(A, B, azp, bzp, b_initializer)
        want = matmul(A, B, dp, a_zero_point=azp, b_zero_point=bzp)
        assert got.dtype == np.int32 and np.array_equal(got.astype(np.int64), want.values), (azp, bzp)
        assert not want.overflowed


def test_onnxruntime_refuses_per_row_a_zero_point():
    """ONNX allows a per-row a_zero_point; ONNX Runtime's CPU kernel does not (IsScalarOr1ElementVector,
    onnxruntime/core/providers/cpu/quantization/matmul_integer.cc). intsim computes it."""
    rng = np.random.default_rng(2)
    A = rng.integers(0, 256, (3, 8)).astype(np.uint8)
    B = rng.integers(-128, 128, (8, 4)).astype(np.int8)
    azp = np.array([1, 2, 3], np.uint8)
    with pytest.raises(Exception, match="zero point"):
        _ort_matmulinteger(A, B, azp, None, False)
    want = (A.astype(np.int64) - azp[:, None]) @ B
    assert np.array_equal(matmul(A, B, Datapath(a=U8, b=S8, acc_bits=32, overflow="wrap"),
                                 a_zero_point=azp).values, want)
