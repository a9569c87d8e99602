"""IM-Unpack: the reference semantics (worked examples), Python-int oracles of the
three published algorithms, exactness of unpack_matmul for every strategy pair, the
work-minimizing plan, overflow reporting, op counts, errors and the report."""

from __future__ import annotations

import argparse
import csv
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import intsim.hw.unpack as U
import intsim.hw.unpack.matmul as unpack_matmul_module
import intsim.hw.unpack.stats as unpack_stats_module
from intsim import (
    AccumulatorOverflow,
    ConfigError,
    Datapath,
    DTypeError,
    IntType,
    OperandRangeError,
    ShapeError,
)
from intsim.hw.unpack import (
    STRATEGIES,
    compare_strategies,
    entry_levels,
    in_range,
    unpack,
    unpack_both,
    unpack_cols,
    unpack_matmul,
    unpack_plan,
    unpack_rows,
    unpack_stats,
)
from intsim.hw.unpack.operands import plan_levels
from intsim.oracles.unpack import unpack_both as both_oracle
from intsim.oracles.unpack import unpack_matmul as unpack_matmul_oracle
from intsim.oracles.unpack import unpack_rows as rows_oracle

PAIRS = list(itertools.product(STRATEGIES, STRATEGIES))


# ---------------------------------------------------------------------------------------------
# oracle adapters (the oracles are intsim.oracles.unpack)
# ---------------------------------------------------------------------------------------------

def exact_product(A: np.ndarray, B: np.ndarray) -> list[list[int]]:
    return unpack_matmul_oracle(lists(A), lists(B), B.shape[1])


def scales_of(shifts: np.ndarray) -> list[int]:
    return [1 << int(v) for v in shifts]


def lists(x: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in x]


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------

@st.composite
def int_matrices(draw, max_dim: int = 4, max_bits: int = 20, rows: int | None = None, cols: int | None = None):
    """Uniform, heavy-tailed (small bulk, rare big hitters, negatives favoured) or zero matrices."""
    m = draw(st.integers(0, max_dim)) if rows is None else rows
    n = draw(st.integers(0, max_dim)) if cols is None else cols
    mag = draw(st.integers(0, max_bits))
    kind = draw(st.sampled_from(["uniform", "heavy", "heavy", "zero"]))
    if kind == "zero":
        return np.zeros((m, n), np.int64)
    lo, hi = max(-(2**63), -(2**mag)), min(2**63 - 1, 2**mag)
    if kind == "uniform":
        el = st.integers(lo, hi)
    else:
        big = st.one_of(st.integers(lo, -1), st.integers(lo, hi), st.sampled_from([lo, hi, lo + 1, hi - 1]))
        el = st.one_of(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3), big)
    vals = draw(st.lists(st.lists(el, min_size=n, max_size=n), min_size=m, max_size=m))
    return np.array(vals, dtype=np.int64).reshape(m, n)


@st.composite
def gemm_operands(draw, max_dim: int = 4, max_bits: int = 20):
    K = draw(st.integers(0, max_dim))
    A = draw(int_matrices(max_dim=max_dim, max_bits=max_bits, cols=K))
    B = draw(int_matrices(max_dim=max_dim, max_bits=max_bits, rows=K))
    return A, B


# ---------------------------------------------------------------------------------------------
# worked examples of the reference semantics
# ---------------------------------------------------------------------------------------------

def test_minus_100_at_b4_gives_digits_4_3_minus2():
    r = unpack_rows(np.array([[-100]]), 4)
    assert r.matrix.ravel().tolist() == [4, 3, -2]
    assert r.index.tolist() == [0, 0, 0]
    assert r.scales.tolist() == [1, 8, 64]
    assert sum(d * s for d, s in zip(r.matrix.ravel().tolist(), r.scales.tolist(), strict=True)) == -100


def test_whole_line_split_turns_minus3_into_5_and_minus1():
    r = unpack_rows(np.array([[-3, 9], [1, 2]]), 4)
    assert lists(r.matrix) == [[5, 1], [1, 2], [-1, 1]]
    assert r.index.tolist() == [0, 1, 0]
    assert r.scales.tolist() == [1, 1, 8]


def test_range_boundary_at_b4():
    assert unpack_rows(np.array([[7, -7]]), 4).matrix.tolist() == [[7, -7]]
    assert unpack_rows(np.array([[8]]), 4).matrix.ravel().tolist() == [0, 1]
    assert unpack_rows(np.array([[-8]]), 4).matrix.ravel().tolist() == [0, -1]
    assert in_range(np.array([-8, -7, 7, 8]), 4).tolist() == [False, True, True, False]
    assert in_range(np.array([-8, -9]), 4, admit_min=True).tolist() == [True, False]
    # with the two's-complement minimum admitted, -8 is one digit
    assert unpack_rows(np.array([[-8]]), 4, admit_min=True).matrix.tolist() == [[-8]]


# The table of digits L+/L- for the largest magnitude M.
LEVEL_TABLE = {
    7: {2: (3, 4), 3: (2, 2), 4: (1, 1), 5: (1, 1), 8: (1, 1)},
    15: {2: (4, 5), 3: (2, 3), 4: (2, 2), 5: (1, 1), 8: (1, 1)},
    31: {2: (5, 6), 3: (3, 3), 4: (2, 2), 5: (2, 2), 8: (1, 1)},
    127: {2: (7, 8), 3: (4, 4), 4: (3, 3), 5: (2, 2), 8: (1, 1)},
    128: {2: (8, 8), 3: (4, 4), 4: (3, 3), 5: (2, 2), 8: (2, 2)},
    255: {2: (8, 9), 3: (4, 5), 4: (3, 3), 5: (2, 3), 8: (2, 2)},
    1023: {2: (10, 11), 3: (5, 6), 4: (4, 4), 5: (3, 3), 8: (2, 2)},
    32767: {2: (15, 16), 3: (8, 8), 4: (5, 6), 5: (4, 4), 8: (3, 3)},
}


@pytest.mark.parametrize("M", sorted(LEVEL_TABLE))
def test_level_table_of_the_design_note(M):
    for b, (lp, lm) in LEVEL_TABLE[M].items():
        assert entry_levels(np.array([M, -M]), b).tolist() == [lp, lm], (M, b)
        # row unpacking of a single entry gives exactly that many rows
        assert unpack_rows(np.array([[M]]), b).matrix.shape[0] == lp
        assert unpack_rows(np.array([[-M]]), b).matrix.shape[0] == lm


def test_negatives_57_to_63_need_three_digits_at_b4():
    assert entry_levels(np.arange(57, 64), 4).tolist() == [2] * 7
    assert entry_levels(-np.arange(57, 64), 4).tolist() == [3] * 7


@given(st.integers(-(2**63), 2**63 - 1), st.integers(2, 12), st.booleans())
def test_entry_levels_match_the_closed_forms(x, b, admit):
    s = 1 << (b - 1)
    M = abs(x)
    if x >= 0:
        want = 1 if M < s else next(k for k in range(1, 70) if M <= s**k - 1)
    elif admit:  # two's complement: x fits k*(b-1)+1 bits
        want = next(k for k in range(1, 70) if M <= s**k)
    else:
        want = 1 if M <= s - 1 else 1 + next(k for k in range(1, 70) if M <= (s - 1) * s**k)
    assert int(entry_levels(np.array([x]), b, admit_min=admit)[0]) == want


def test_unpack_cols_duplicates_b_rows_and_extends_scales():
    A = np.array([[9, 1], [-100, 2]])
    B = np.array([[1, 2, 3], [4, 5, 6]])
    r = unpack_cols(A, B, 4, scales=np.array([1, 8]))
    assert lists(r.a) == [[1, 1, 1, 0], [4, 2, 3, -2]]
    assert lists(r.b) == [[1, 2, 3], [4, 5, 6], [1, 2, 3], [1, 2, 3]]
    assert r.index.tolist() == [0, 1, 0, 0]
    assert r.scales.tolist() == [1, 8, 8, 64]
    want = A @ np.diag([1, 8]) @ B
    assert (r.a @ np.diag(r.scales) @ r.b == want).all()


def test_both_ties_go_to_the_row():
    r = unpack_both(np.array([[8, 0], [0, 0]]), np.eye(2, dtype=np.int64), 4)
    assert lists(r.a) == [[0, 0], [0, 0], [1, 0]]
    assert r.index.tolist() == [0, 1, 0]
    assert r.row_scales.tolist() == [1, 1, 8]
    assert r.scales.tolist() == [1, 1]


def test_both_splits_a_column_with_strictly_more():
    r = unpack_both(np.array([[8], [8]]), np.array([[5]]), 4)
    assert lists(r.a) == [[0, 1], [0, 1]]
    assert lists(r.b) == [[5], [5]]
    assert r.scales.tolist() == [1, 8]
    assert r.index.tolist() == [0, 1]


def test_both_row_ties_go_to_the_lowest_index():
    r = unpack_both(np.array([[8, 0], [0, 8]]), np.eye(2, dtype=np.int64), 4)
    assert lists(r.a) == [[0, 0], [0, 0], [1, 0], [0, 1]]
    assert r.index.tolist() == [0, 1, 0, 1]


def test_both_column_ties_go_to_the_lowest_index():
    r = unpack_both(np.full((3, 2), 8), np.eye(2, dtype=np.int64), 4)
    assert lists(r.a) == [[0, 0, 1, 1]] * 3
    assert r.inner_index.tolist() == [0, 1, 0, 1]
    assert r.scales.tolist() == [1, 1, 8, 8]


# ---------------------------------------------------------------------------------------------
# bit-exact agreement with the oracles
# ---------------------------------------------------------------------------------------------

@given(int_matrices(max_bits=63), st.integers(2, 8), st.booleans())
def test_unpack_rows_matches_the_reference(A, b, admit):
    mat, idx, sc = rows_oracle(lists(A), b, admit)
    r = unpack_rows(A, b, admit_min=admit)
    assert lists(r.matrix) == mat and r.index.tolist() == idx and scales_of(r.shifts) == sc
    assert r.matrix.shape[1] == A.shape[1]


@given(gemm_operands(max_bits=63), st.integers(2, 8), st.booleans())
def test_unpack_cols_matches_the_reference(AB, b, admit):
    A, B = AB
    mat_t, idx, sc = rows_oracle(lists(A.T), b, admit)
    r = unpack_cols(A, B, b, admit_min=admit)
    assert r.a.shape == (A.shape[0], len(idx))
    assert lists(r.a.T) == mat_t and r.index.tolist() == idx and scales_of(r.shifts) == sc
    assert lists(r.b) == [lists(B)[i] for i in idx]


@given(gemm_operands(max_bits=40), st.integers(2, 8), st.booleans())
def test_unpack_both_matches_the_reference(AB, b, admit):
    A, B = AB
    Au, Be, p_idx, p_sc, sc = both_oracle(lists(A), lists(B), b, admit)
    r = unpack_both(A, B, b, admit_min=admit)
    assert r.a.shape[0] == len(Au) and lists(r.a) == Au
    assert r.index.tolist() == p_idx and scales_of(r.row_shifts) == p_sc and scales_of(r.shifts) == sc
    assert lists(r.b) == Be


def test_both_grows_its_buffers_past_their_spare_lines():
    """40-bit entries at 2 bits need about 40 splits of a row or column each: more new lines than
    UnpackBoth's buffers keep spare (16 for small matrices), so they grow; the result is the oracle's."""
    A = np.array([[2**40 - 3, -(2**39) + 5, 7], [1, 2**38 + 1, -(2**40)]], np.int64)
    B = np.array([[3, -1], [2**20, 5], [-7, 2**30]], np.int64)
    Au, Be, p_idx, p_sc, sc = both_oracle(lists(A), lists(B), 2, False)
    r = unpack_both(A, B, 2)
    assert len(Au) > 16 + A.shape[0] or len(sc) > 16 + A.shape[1]
    assert lists(r.a) == Au and lists(r.b) == Be and r.index.tolist() == p_idx
    assert scales_of(r.row_shifts) == p_sc and scales_of(r.shifts) == sc


@given(gemm_operands(max_bits=16), st.integers(2, 8), st.sampled_from(STRATEGIES), st.booleans())
def test_single_operand_unpacking_is_exact_and_in_range(AB, b, strategy, admit):
    A, B = AB
    r = unpack(A, B, b, strategy, admit_min=admit)
    assert in_range(r.a, b, admit_min=admit).all()
    M, N = A.shape[0], B.shape[1]
    got = [[0] * N for _ in range(M)]
    for p in range(r.a.shape[0]):
        for q in range(r.a.shape[1]):
            w = int(r.a[p, q]) << (int(r.row_shifts[p]) + int(r.shifts[q]))
            for j in range(N):
                got[int(r.index[p])][j] += w * int(r.b[q, j])
    assert got == exact_product(A, B)


# ---------------------------------------------------------------------------------------------
# unpack_matmul: exact for every strategy pair
# ---------------------------------------------------------------------------------------------

@settings(max_examples=100)
@given(gemm_operands(max_bits=14), st.integers(2, 8), st.booleans())
def test_unpack_matmul_is_exact_for_every_strategy_pair(AB, b, admit):
    A, B = AB
    dp = Datapath(IntType(b), IntType(b), acc_bits=32, overflow="raise")
    want = exact_product(A, B)
    for sa, sb in PAIRS:
        r = unpack_matmul(A, B, dp, sa, sb, admit_min=admit)
        assert r.values.dtype == np.int64 and lists(r.values) == want, (sa, sb)
        assert r.n_overflow == 0
        st_ = unpack_stats(A, B, sa, sb, b, admit_min=admit)
        assert (st_.unpacked_shape, st_.n_gemms) == (r.unpacked_shape, r.n_gemms), (sa, sb)
        m2, k2, n2 = r.unpacked_shape
        assert r.ops.total("mac") == m2 * k2 * n2
        assert sum(g.shape[1] for g in r.gemms) == k2


@given(gemm_operands(max_dim=8, max_bits=14), st.integers(2, 8), st.booleans())
def test_unpack_operands_reassemble_the_product(AB, b, admit):
    # the streams unpack_matmul multiplies, reassembled here in Python ints by their maps
    A, B = AB
    dp = Datapath(IntType(b), IntType(b), acc_bits=32)
    lo, hi = -(1 << (b - 1)) + (0 if admit else 1), (1 << (b - 1)) - 1
    for sa, sb in PAIRS:
        p = U.unpack_operands(A, B, dp, sa, sb, admit_min=admit)
        assert all(lo <= v <= hi for v in p.a.reshape(-1).tolist() + p.b.reshape(-1).tolist()), (sa, sb)
        got = [[0] * B.shape[1] for _ in range(A.shape[0])]
        for i, row in enumerate(p.a.tolist()):
            for j, col in enumerate(p.b.T.tolist()):
                s = sum(x * y << int(t) for x, y, t in zip(row, col, p.inner_shift.tolist(), strict=True))
                got[int(p.a_src[i])][int(p.b_src[j])] += s << int(p.a_shift[i] + p.b_shift[j])
        assert got == exact_product(A, B), (sa, sb)
        assert p.a.shape[0] * p.a.shape[1] * p.b.shape[1] == \
            unpack_matmul(A, B, dp, sa, sb, admit_min=admit).ops.total("mac")
    with pytest.raises(ConfigError):
        U.unpack_operands(A, B, Datapath(IntType(b, signed=False), IntType(b)))


@given(gemm_operands(max_dim=8, max_bits=12), st.integers(2, 8), st.booleans())
def test_closed_form_stats_equal_the_materialized_unpacking(AB, b, admit):
    A, B = AB
    table = compare_strategies(A, B, b, admit_min=admit)
    for s in STRATEGIES:
        built = unpack_stats_module._pair_stats(A, B, s, s, b, b, admit)  # builds the unpacked matrices
        assert (table[s].unpacked_shape, table[s].n_gemms) == (built.unpacked_shape, built.n_gemms), s


def test_unpack_matmul_different_operand_widths():
    rng = np.random.default_rng(1)
    A = rng.integers(-3000, 3000, (5, 7))
    B = rng.integers(-40, 40, (7, 3))
    dp = Datapath(IntType(4), IntType(6), acc_bits=24)
    for sa, sb in PAIRS:
        r = unpack_matmul(A, B, dp, sa, sb)
        assert (r.bits_a, r.bits_b) == (4, 6)
        assert lists(r.values) == exact_product(A, B)


@pytest.mark.parametrize("b", [2, 8])
def test_int64_extremes_and_products_beyond_int64(b):
    A = np.array([[-(2**63), 2**63 - 1], [0, -1]], dtype=np.int64)
    B = np.array([[-1, 1], [-(2**63), 2**63 - 1]], dtype=np.int64)
    dp = Datapath(IntType(b), IntType(b), acc_bits=64)
    for sa, sb in [("row", "row"), ("col", "col"), ("plan", "plan"), ("both", "row")]:
        r = unpack_matmul(A, B, dp, sa, sb)
        assert r.is_wide  # 2**63 * ... does not fit int64
        assert r.values.tolist() == exact_product(A, B)
    small = unpack_matmul(np.array([[-(2**63)]]), np.array([[1]]), dp)
    assert small.values.dtype == np.int64 and int(small.values[0, 0]) == -(2**63)


def test_python_int_fallback_gives_the_same_int64_result(monkeypatch):
    rng = np.random.default_rng(2)
    A = rng.integers(-(2**20), 2**20, (6, 5))
    B = rng.integers(-(2**20), 2**20, (5, 4))
    dp = Datapath(IntType(4), IntType(4), acc_bits=32)
    fast = unpack_matmul(A, B, dp, "both", "plan")
    monkeypatch.setattr(unpack_matmul_module, "k_reassemble", lambda *a: False)  # as if the int64 path overflowed
    slow = unpack_matmul(A, B, dp, "both", "plan")
    assert slow.values.dtype == np.int64
    assert (slow.values == fast.values).all() and lists(fast.values) == exact_product(A, B)


def test_scales_property_refuses_two_to_the_63():
    r = unpack_rows(np.array([[-(2**63)]]), 2)
    assert int(r.shifts.max()) == 63
    with pytest.raises(OperandRangeError, match="2\\*\\*63"):
        _ = r.scales


# ---------------------------------------------------------------------------------------------
# the plan strategy
# ---------------------------------------------------------------------------------------------

@given(st.integers(1, 3), st.integers(1, 3), st.data())
def test_plan_levels_is_the_exact_minimum(m, n, data):
    L = np.array(data.draw(st.lists(st.integers(1, 4), min_size=m * n, max_size=m * n))).reshape(m, n)
    w = np.array(data.draw(st.lists(st.integers(1, 3), min_size=m, max_size=m)), dtype=np.int64)
    v = np.array(data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)), dtype=np.int64)
    a, c = plan_levels(L.astype(np.int64), w, v)
    assert (a[:, None] + c[None, :] - 1 >= L).all()
    Ls, ws, vs = L.tolist(), w.tolist(), v.tolist()
    best = None
    for aa in itertools.product(range(1, 5), repeat=m):  # for each a, the smallest feasible c is best
        cc = [max(1, *(Ls[i][k] - aa[i] + 1 for i in range(m))) for k in range(n)]
        work = sum(x * y for x, y in zip(ws, aa, strict=True)) * sum(x * y for x, y in zip(vs, cc, strict=True))
        best = work if best is None else min(best, work)
    assert int(w @ a) * int(v @ c) == best


@given(gemm_operands(max_dim=6, max_bits=24), st.integers(2, 8), st.booleans())
def test_plan_never_does_more_work_than_row_col_or_greedy_on_one_operand(AB, b, admit):
    A, B = AB
    work = {s: unpack(A, B, b, s, admit_min=admit).a.size for s in STRATEGIES}
    assert work["plan"] <= min(work["row"], work["col"], work["both"])


def test_plan_example_splits_one_column_instead_of_three_rows():
    A = np.array([[100, 1, 1]] * 3)
    r = unpack_plan(A, np.eye(3, dtype=np.int64), 4)
    assert r.a.shape == (3, 5)
    assert unpack_rows(A, 4).matrix.shape == (9, 3)
    assert r.scales.tolist() == [1, 1, 1, 8, 64]


def test_admitting_the_minimum_never_costs_more_for_row_and_col():
    rng = np.random.default_rng(3)
    for _ in range(20):
        A = rng.integers(-40, 41, (6, 5))
        B = rng.integers(-40, 41, (5, 4))
        for b in (3, 4, 5, 6):
            on = compare_strategies(A, B, b, ("row", "col"), admit_min=True)
            off = compare_strategies(A, B, b, ("row", "col"))
            assert all(on[s].work <= off[s].work for s in ("row", "col"))
    # -8 at b = 4: one digit instead of two
    assert unpack_stats(np.array([[-8]]), np.array([[1]]), "row", "row", 4, admit_min=True).ratio == 1.0
    assert unpack_stats(np.array([[-8]]), np.array([[1]]), "row", "row", 4).ratio == 2.0


# ---------------------------------------------------------------------------------------------
# overflow, op counts
# ---------------------------------------------------------------------------------------------

def test_low_bit_overflow_is_reported_not_hidden():
    A = np.array([[7] * 8, [1] * 8])
    B = np.array([[7, 0]] * 8)
    dp = Datapath(IntType(4), IntType(4), acc_bits=8, overflow="wrap")  # 8 * 49 = 392 > 127
    r = unpack_matmul(A, B, dp)
    assert r.overflow.tolist() == [[True, False], [False, False]]
    assert r.n_overflow == 1 and r.gemms[0].n_overflow == 1
    assert r.gemms[0].first_overflow == (0, 0, 2)  # 3 * 49 = 147 first leaves int8 at k = 2
    assert int(r.values[0, 0]) != 392 and int(r.values[1, 0]) == 56
    with pytest.raises(AccumulatorOverflow, match="low-bit GEMM with inner shift 0") as exc:
        unpack_matmul(A, B, Datapath(IntType(4), IntType(4), acc_bits=8, overflow="raise"))
    assert exc.value.index == (0, 0) and exc.value.k == 2


def test_overflow_maps_to_the_original_output():
    A = np.array([[100, 0], [0, 0]])  # row 0 unpacked into 3 rows at b = 4
    B = np.array([[7, 0], [0, 0]])
    dp = Datapath(IntType(4), IntType(4), acc_bits=5, overflow="saturate")  # 4 * 7 = 28 > 15
    r = unpack_matmul(A, B, dp, "row", "row")
    assert r.overflow.tolist() == [[True, False], [False, False]]


def test_reassembly_op_counts():
    A = np.array([[100, 1], [2, 3]])
    B = np.array([[1, 2], [3, 40]])
    dp = Datapath(IntType(4), IntType(4), acc_bits=16)
    r = unpack_matmul(A, B, dp, "row", "col")
    Mp, Kp, Np = r.unpacked_shape
    assert (Mp, Kp, Np) == (4, 3, 2)
    terms = r.n_gemms * Mp * Np
    assert r.ops["add", (64,)] == terms - 4
    # total shift 0 only for shift-0 rows in the shift-0 GEMM (all columns have shift 0)
    assert r.ops["shift", (64,)] == terms - 2 * Np
    assert r.ops["mac", (4, 4, 16)] == Mp * Kp * Np
    assert r.unpack_ratio == Mp * Kp * Np / 8
    assert (r.row_factor, r.inner_factor, r.col_factor) == (2.0, 1.5, 1.0)


def test_empty_gemms():
    dp = Datapath(IntType(4), IntType(4), acc_bits=16)
    r = unpack_matmul(np.zeros((3, 0), np.int64), np.zeros((0, 2), np.int64), dp)
    assert r.values.shape == (3, 2) and not r.values.any() and r.n_gemms == 0 and r.unpack_ratio == 1.0
    r = unpack_matmul(np.zeros((0, 4), np.int64), np.full((4, 2), 100), dp, "plan", "both")
    assert r.values.shape == (0, 2)


def test_zero_matrix_is_not_unpacked():
    z = np.zeros((4, 5), np.int64)
    r = unpack_matmul(z, np.zeros((5, 3), np.int64), Datapath(IntType(2), IntType(2)), "both", "plan")
    assert r.unpack_ratio == 1.0 and r.n_gemms == 1 and not r.values.any()


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def test_bad_input_gets_clear_errors():
    dp = Datapath(IntType(4), IntType(4))
    with pytest.raises(DTypeError, match="A: got a float64"):
        unpack_matmul(np.ones((2, 2)), np.ones((2, 2), np.int64), dp)
    with pytest.raises(ConfigError, match="never end"):
        unpack_rows(np.array([[1]]), 1)
    with pytest.raises(ConfigError, match="from 2 to 63"):
        unpack_rows(np.array([[1]]), 0)
    with pytest.raises(OperandRangeError, match="cannot be represented in int64"):
        unpack_matmul([[2**64, 1]], np.array([[1], [1]]), dp)
    with pytest.raises(OperandRangeError, match="exceed int64"):
        unpack_matmul([[2**63]], np.array([[1]]), dp)
    with pytest.raises(OperandRangeError, match="exceed int64"):
        unpack_rows(np.array([[2**63]], dtype=np.uint64), 4)
    with pytest.raises(ShapeError, match="inner dimensions differ"):
        unpack_matmul(np.ones((2, 3), np.int64), np.ones((2, 2), np.int64), dp)
    with pytest.raises(ConfigError, match="strategy_a"):
        unpack_matmul(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64), dp, "diagonal")
    with pytest.raises(ConfigError, match="signed"):
        unpack_matmul(np.ones((1, 1), np.int64), np.ones((1, 1), np.int64), Datapath(IntType(8, signed=False)))
    with pytest.raises(ConfigError, match="exceed the datapath"):
        unpack_matmul(np.ones((1, 1), np.int64), np.ones((1, 1), np.int64), dp, bits=6)
    with pytest.raises(ConfigError, match="powers of two"):
        unpack_cols(np.ones((1, 2), np.int64), np.ones((2, 1), np.int64), 4, scales=np.array([1, 3]))
    with pytest.raises(ShapeError, match="2-D"):
        unpack_rows(np.ones(3, np.int64), 4)


# ---------------------------------------------------------------------------------------------
# real operands and the report
# ---------------------------------------------------------------------------------------------

def _minilm_or_skip():
    try:
        from intsim_reference.minilm import capture_gemm_operands
        from intsim_reference.sentences import SENTENCES

        return capture_gemm_operands([SENTENCES[0]])
    except Exception as exc:  # the model package is optional
        pytest.skip(f"MiniLM not available: {exc}")


def test_real_minilm_gemms_are_exact():
    from intsim.quant.quantizers import quantize_rtn

    ops = _minilm_or_skip()
    picked = [o for o in ops if o.layer == 0 and o.name in ("q_proj", "ffn_down")]
    picked.append(next(o for o in ops if o.name == "scores"))
    for o in picked:
        qa = quantize_rtn(o.a, 15, 0.95).values
        qb = quantize_rtn(o.b, 15, 0.95).values
        want = qa @ qb  # small integers: exact in int64
        for b in (4, 6):
            dp = Datapath(IntType(b), IntType(b), acc_bits=32)
            for s in STRATEGIES:
                r = unpack_matmul(qa, qb, dp, s, s)
                assert (r.values == want).all(), (o.name, b, s)
                assert r.unpack_ratio >= 1.0


def _fake_ops():
    from intsim_reference.minilm import GemmOperands

    rng = np.random.default_rng(5)
    out = []
    for layer in range(2):
        a = rng.standard_t(3, (6, 16))
        a[:, 3] *= 20  # an outlier feature column
        out.append(GemmOperands(layer, "q_proj", a, rng.standard_normal((16, 8))))
        for s in range(2):
            for h in range(12):
                out.append(GemmOperands(layer, "scores", rng.standard_normal((3 + s, 4)),
                                        rng.standard_normal((4, 3 + s)), s, h))
    return out


def test_report_is_complete_consistent_and_deterministic(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import intsim_reference.minilm
    from intsim.apps.reports import unpack as report

    ops = _fake_ops()
    monkeypatch.setattr(intsim_reference.minilm, "capture_gemm_operands", lambda sentences, max_len=64: ops)
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    outs = []
    for name in ("r1", "r2"):
        args = parser.parse_args(["--out", str(tmp_path / name), "--sentences", "2", "--bits", "3-4,8", "--quiet"])
        assert report.run(args) == 0
        outs.append(tmp_path / name)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == [".intsim-output.json", "README.md", "accuracy.csv", "aggregate.csv", "gemms.csv",
                     "ratio_vs_bits.png"]
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    rows = list(csv.DictReader((outs[0] / "gemms.csv").open()))
    assert len(rows) == 2 * 2 * 3 * len(STRATEGIES)
    # q_proj of layer 0 at b = 4, plan: the ratio is unpack_stats on the same quantized operands
    from intsim.quant.quantizers import quantize_rtn

    qa = quantize_rtn(ops[0].a, 15, 0.95).values
    qb = quantize_rtn(ops[0].b, 15, 0.95).values
    want = unpack_stats(qa, qb, "plan", "plan", 4)
    row = next(r for r in rows if r["layer"] == "0" and r["gemm"] == "q_proj" and r["bits"] == "4"
               and r["strategy"] == "plan")
    assert int(row["unpacked_macs"]) == want.work and row["unpack_ratio"] == f"{want.ratio:.4f}"
    heads = next(r for r in rows if r["gemm"] == "scores")
    assert heads["gemms"] == "24"
    text = (outs[0] / "README.md").read_text()
    assert "## Model aggregate" in text and "LLM.int8()" in text
    with pytest.raises(ConfigError, match="already exists"):
        report.run(parser.parse_args(["--out", str(outs[0]), "--quiet"]))
    with pytest.raises(ConfigError, match="--bits"):
        report.run(parser.parse_args(["--out", str(tmp_path / "x"), "--bits", "1-3", "--quiet"]))
