"""matmul against the Python-int oracle, and its named edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
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
from intsim.oracles.gemm import matmul as gemm_oracle
from intsim.testing.strategies import int_types, interesting_values

POLICIES = ["wrap", "saturate", "raise"]


@st.composite
def gemm_cases(draw, max_dim=5, max_k=9):
    a, b = draw(int_types(1, 32)), draw(int_types(1, 32))
    # acc width somewhere between "always overflows" and "never overflows"
    acc_bits = draw(st.integers(1, 64))
    overflow = draw(st.sampled_from(POLICIES))
    k_chunk = draw(st.integers(1, 4))
    chunk_bits = draw(st.one_of(st.none(), st.integers(1, 64)))
    chunk_overflow = draw(st.sampled_from([None, *POLICIES])) if chunk_bits is not None else None
    dp = Datapath(a=a, b=b, acc_bits=acc_bits, overflow=overflow, k_chunk=k_chunk,
                  chunk_bits=chunk_bits, chunk_overflow=chunk_overflow)
    M, K, N = draw(st.integers(0, max_dim)), draw(st.integers(0, max_k)), draw(st.integers(0, max_dim))
    A = np.array(draw(st.lists(st.lists(interesting_values(a), min_size=K, max_size=K), min_size=M, max_size=M)),
                 dtype=np.int64).reshape(M, K)
    B = np.array(draw(st.lists(st.lists(interesting_values(b), min_size=N, max_size=N), min_size=K, max_size=K)),
                 dtype=np.int64).reshape(K, N)
    bias = None
    if draw(st.booleans()):
        bias = np.array(draw(st.lists(interesting_values(dp.acc), min_size=N, max_size=N)), dtype=np.int64)
    return dp, A, B, bias


def check_against_oracle(dp, A, B, bias):
    vals, flags, firstk, event = gemm_oracle(
        A.tolist(), B.tolist(), dp.acc_bits, dp.overflow, dp.k_chunk, dp.chunk_bits,
        dp.chunk_overflow, None if bias is None else bias.tolist(), n=B.shape[1])
    if event is not None:
        with pytest.raises(AccumulatorOverflow) as ei:
            matmul(A, B, dp, bias=bias)
        i, j, k, value, stage = event
        assert ei.value.index == (i, j)
        assert ei.value.k == k
        assert ei.value.value == value
        assert ei.value.bits == (dp.chunk_bits if stage == 1 else dp.acc_bits)
        return
    r = matmul(A, B, dp, bias=bias)
    M, N = A.shape[0], B.shape[1]
    assert r.values.shape == (M, N) and r.values.dtype == np.int64
    assert r.values.tolist() == vals
    assert r.overflow.tolist() == flags
    assert r.first_overflow_k.tolist() == firstk


@settings(max_examples=800)
@given(gemm_cases())
def test_matmul_matches_oracle(case):
    check_against_oracle(*case)


@given(gemm_cases(max_dim=3, max_k=40))
def test_matmul_long_k_matches_oracle(case):
    check_against_oracle(*case)


@st.composite
def narrow_acc_cases(draw):
    """Small operands and accumulators near the edge: many outputs overflow, many do not."""
    bits = draw(st.integers(2, 8))
    a = IntType(bits, draw(st.booleans()))
    b = IntType(bits, draw(st.booleans()))
    K = draw(st.integers(1, 24))
    acc_bits = draw(st.integers(bits + 1, 2 * bits + 5))
    dp = Datapath(a=a, b=b, acc_bits=acc_bits, overflow=draw(st.sampled_from(POLICIES)),
                  k_chunk=draw(st.integers(1, 3)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = rng.integers(a.min, a.max + 1, size=(draw(st.integers(1, 6)), K))
    B = rng.integers(b.min, b.max + 1, size=(K, draw(st.integers(1, 6))))
    return dp, A, B, None


@given(narrow_acc_cases())
def test_matmul_near_overflow_matches_oracle(case):
    check_against_oracle(*case)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["wrap", "saturate"]))
def test_large_matrix_mixed_paths(seed, policy):
    """A matrix where a few outputs overflow: proof path and scan path in one call."""
    rng = np.random.default_rng(seed)
    M, K, N = 12, 64, 10
    A = rng.integers(-8, 8, (M, K))
    B = rng.integers(-8, 8, (K, N))
    A[3] = 7
    B[:, 4] = 7
    dp = Datapath(a=IntType(4), b=IntType(4), acc_bits=12, overflow=policy)
    check_against_oracle(dp, A, B, None)


# ---- named edge cases ----------------------------------------------------------------------


def test_most_negative_times_most_negative():
    for bits in (2, 4, 8, 16, 32):
        t = IntType(bits)
        A = np.array([[t.min]])
        B = np.array([[t.min]])
        r = matmul(A, B, Datapath(a=t, b=t, acc_bits=64))
        assert int(r.values[0, 0]) == t.min * t.min
    # int8: -128 * -128 = 16384 does not fit a 15-bit register
    with pytest.raises(AccumulatorOverflow):
        matmul([[-128]], [[-128]], Datapath(acc_bits=15))
    r = matmul([[-128]], [[-128]], Datapath(acc_bits=15, overflow="saturate"))
    assert int(r.values[0, 0]) == 2**14 - 1 and r.first_overflow_k[0, 0] == 0


def test_k_zero_gives_bias_or_zero():
    r = matmul(np.zeros((3, 0), np.int8), np.zeros((0, 2), np.int8))
    assert r.values.shape == (3, 2) and not r.values.any() and not r.overflow.any()
    r = matmul(np.zeros((3, 0), np.int8), np.zeros((0, 2), np.int8), bias=[5, -7])
    assert r.values.tolist() == [[5, -7]] * 3
    assert r.first_overflow_k.tolist() == [[-1, -1]] * 3


def test_one_by_one():
    r = matmul([[3]], [[-4]])
    assert r.values.tolist() == [[-12]]
    assert r.ops["mac", (8, 8, 32)] == 1


@pytest.mark.parametrize("shape_a,shape_b", [((0, 4), (4, 3)), ((2, 4), (4, 0)), ((0, 0), (0, 0))])
def test_empty_m_or_n(shape_a, shape_b):
    r = matmul(np.zeros(shape_a, np.int64), np.zeros(shape_b, np.int64))
    assert r.values.shape == (shape_a[0], shape_b[1])
    assert r.ops.total("mac") == 0


def test_acc64_partial_sums_near_2_63():
    t = IntType(32)
    K = 4
    A = np.full((1, K), t.min)
    B = np.full((K, 1), t.min)  # each product 2**62: the 2nd add reaches 2**63
    for policy in ("wrap", "saturate"):
        dp = Datapath(a=t, b=t, acc_bits=64, overflow=policy)
        check_against_oracle(dp, A, B, None)
    with pytest.raises(AccumulatorOverflow) as ei:
        matmul(A, B, Datapath(a=t, b=t, acc_bits=64))
    assert ei.value.k == 1 and ei.value.value == 2**63
    # sums that come back: +2**62 +2**62 -2**62 ... stays representable only in order
    A = np.array([[t.min, t.min, t.min, t.max]])
    B = np.array([[t.min], [t.min], [-(2**31) + 1], [1]])
    check_against_oracle(Datapath(a=t, b=t, acc_bits=64, overflow="saturate"), A, B, None)
    check_against_oracle(Datapath(a=t, b=t, acc_bits=64, overflow="wrap"), A, B, None)


def test_32bit_operands_at_extremes():
    for signed_a in (True, False):
        for signed_b in (True, False):
            a, b = IntType(32, signed_a), IntType(32, signed_b)
            vals_a = [a.min, a.max, 0, a.max - 1]
            vals_b = [b.max, b.min, b.max, 1]
            A = np.array([vals_a, vals_a[::-1]], dtype=np.int64)
            B = np.array([vals_b, vals_b[::-1]], dtype=np.int64).T.copy()
            for policy in POLICIES:
                for kc in (1, 2, 4):
                    check_against_oracle(Datapath(a=a, b=b, acc_bits=64, overflow=policy, k_chunk=kc),
                                         A, B, None)


def test_uint64_and_int64_arrays():
    dp = Datapath(a=IntType(8, signed=False), b=IntType(8))
    A = np.array([[255, 0, 1]], dtype=np.uint64)
    B = np.array([[1], [2], [-128]], dtype=np.int64)
    assert matmul(A, B, dp).values.tolist() == [[255 - 128]]
    with pytest.raises(OperandRangeError) as ei:
        matmul(np.array([[256, 0, 2**63]], dtype=np.uint64), B, dp)
    assert ei.value.count == 2 and ei.value.index == (0, 0) and ei.value.value == 256
    with pytest.raises(OperandRangeError) as ei:
        matmul(A, np.array([[1], [2], [-129]], dtype=np.int64), dp)
    assert ei.value.index == (2, 0) and ei.value.value == -129 and "B" in str(ei.value)


def test_vpmaddubsw_pairwise_saturation():
    """u8 x s8 pairs saturate to int16 before the 32-bit add (x86 without VNNI)."""
    dp = Datapath(a=IntType(8, signed=False), b=IntType(8), acc_bits=32, overflow="wrap",
                  k_chunk=2, chunk_bits=16, chunk_overflow="saturate")
    A = np.array([[255, 255, 255, 255]])
    B = np.array([[127], [127], [-128], [-128]])
    r = matmul(A, B, dp)
    assert r.values.tolist() == [[32767 - 32768]]  # exact would be 64770 - 65280 = -510
    assert r.overflow[0, 0] and r.first_overflow_k[0, 0] == 1
    assert r.ops["mul", (8, 8)] == 4 and r.ops["add", (32,)] == 2 and r.ops["add", (16,)] == 2


def test_bias_range_and_shape():
    with pytest.raises(OperandRangeError, match="accumulator"):
        matmul([[1]], [[1]], Datapath(acc_bits=8), bias=[200])
    with pytest.raises(ShapeError, match=r"\(2,\)"):
        matmul([[1]], [[1, 2]], bias=[1])


def test_float_and_shape_errors():
    with pytest.raises(DTypeError, match="float"):
        matmul(np.ones((2, 2)), np.ones((2, 2), np.int8))
    with pytest.raises(DTypeError, match="bool"):
        matmul(np.ones((2, 2), bool), np.ones((2, 2), np.int8))
    with pytest.raises(ShapeError, match=r"2x3.*4x2"):
        matmul(np.ones((2, 3), np.int8), np.ones((4, 2), np.int8))
    with pytest.raises(ShapeError, match="2-D"):
        matmul(np.ones(3, np.int8), np.ones((3, 2), np.int8))


def test_config_errors():
    with pytest.raises(ConfigError, match="1 to 32"):
        Datapath(a=IntType(33))
    with pytest.raises(ConfigError, match="acc_bits"):
        Datapath(acc_bits=65)
    with pytest.raises(ConfigError, match="wrap, saturate, raise"):
        Datapath(overflow="clip-ish")
    with pytest.raises(ConfigError):
        Datapath(k_chunk=0)
    with pytest.raises(ConfigError, match="chunk_bits"):
        Datapath(chunk_overflow="wrap")
    assert Datapath(a="uint4", overflow="SAT").a == IntType(4, False)


def test_raise_message_names_output_and_step():
    A = np.array([[1, 1], [100, 100]])
    B = np.array([[100], [100]])
    with pytest.raises(AccumulatorOverflow, match=r"output \(1, 0\), k step 1: 20000"):
        matmul(A, B, Datapath(acc_bits=15))


def test_ops_counts_exact():
    dp = Datapath()
    ops = gemm_ops(2, 3, 4, dp)
    assert ops["mac", (8, 8, 32)] == 24
    assert ops["read", (8,)] == 2 * 3 + 3 * 4 and ops["write", (32,)] == 8
    dp2 = Datapath(k_chunk=2)
    ops2 = gemm_ops(2, 5, 4, dp2)
    assert ops2["mul", (8, 8)] == 40
    assert ops2["add", (32,)] == 8 * 3 and ops2["add", (dp2.tree_bits(),)] == 8 * 2


def test_trace_output_matches_final_register():
    rng = np.random.default_rng(1)
    A = rng.integers(-8, 8, (3, 10))
    B = rng.integers(-8, 8, (10, 2))
    dp = Datapath(a=IntType(4), b=IntType(4), acc_bits=8, overflow="saturate", k_chunk=3)
    r = matmul(A, B, dp)
    tr = trace_output(A, B, dp, 2, 1)
    assert len(tr) == 4 and tr[-1] == int(r.values[2, 1])


@given(st.integers(0, 2**32 - 1))
def test_exact_paths_agree_with_int64(seed):
    """The BLAS paths (float32, blocked float32, float64) equal int64 arithmetic."""
    rng = np.random.default_rng(seed)
    for bits, K in ((8, 300), (8, 2000), (16, 700), (24, 40)):
        t = IntType(bits)
        A = rng.integers(t.min, t.max + 1, (7, K))
        B = rng.integers(t.min, t.max + 1, (K, 5))
        r = matmul(A, B, Datapath(a=t, b=t, acc_bits=64))
        assert np.array_equal(r.values, A @ B)
    assume(True)


@given(st.integers(0, 2**32 - 1), st.sampled_from(POLICIES), st.integers(0, 2))
def test_sparse_and_dense_suspects(seed, policy, layout):
    """Outputs in doubt scattered (gathered per row), in a block (dense) or everywhere."""
    rng = np.random.default_rng(seed)
    M, K, N = 24, 20, 18
    A = rng.integers(-3, 4, (M, K))
    B = rng.integers(-3, 4, (K, N))
    if layout == 0:  # a few scattered heavy outputs
        for _ in range(4):
            i, j = rng.integers(0, M), rng.integers(0, N)
            A[i] = 7
            B[:, j] = rng.choice([-8, 7])
    elif layout == 1:  # a heavy block
        A[:6] = 7
        B[:, :5] = -8
    bias = rng.integers(-200, 200, N)
    dp = Datapath(a=IntType(4), b=IntType(4), acc_bits=10, overflow=policy)
    check_against_oracle(dp, A, B, bias)
