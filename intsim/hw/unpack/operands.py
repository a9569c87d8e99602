"""IM-Unpack of one operand and of an operand pair, without the GEMMs.

The argument checks and small helpers shared by the package, :func:`in_range` and
:func:`entry_levels`, the internal form of one unpacked operand (row, col, both or plan),
the exact ``plan`` solver (:func:`plan_levels`; the method is described in
:mod:`intsim.hw.unpack`) and the unpacking of a pair ``A @ B`` (:class:`UnpackedPair`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import Any

import numpy as np

from ...core.arrays import as_int_array, as_int_matrix, short_repr, to_int64
from ...core.errors import ConfigError, OperandRangeError, ShapeError
from .kernels import (
    D_HI,
    D_LO,
    D_SHIFT,
    D_TRANSPOSED,
    k_both,
    k_cover_graph,
    k_cover_solve,
    k_in_range,
    k_levels,
    k_levels_into,
    k_plan_build,
)

#: Unpacking strategies accepted by :func:`unpack` and :func:`unpack_matmul`.
STRATEGIES: tuple[str, ...] = ("row", "col", "both", "plan")


# ---------------------------------------------------------------------------------------------
# validation and small helpers
# ---------------------------------------------------------------------------------------------

def check_bits(bits: Any, name: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer from 2 to 63, got {short_repr(bits)}")
    b = int(bits)
    if b == 1:
        raise ConfigError(f"{name} = 1 is not allowed: with base s = 2**0 = 1 no negative entry ever comes "
                          "into range (-1 // 1 == -1), so unpacking would never end; use bits >= 2")
    if not 2 <= b <= 63:
        raise ConfigError(f"{name} must be from 2 to 63, got {b}")
    return b


def check_strategy(strategy: Any, name: str) -> str:
    if not isinstance(strategy, str) or strategy.strip().lower() not in STRATEGIES:
        raise ConfigError(f"{name} must be one of {', '.join(STRATEGIES)}, got {short_repr(strategy)}")
    return strategy.strip().lower()


def matrix64(x: Any, name: str) -> np.ndarray:
    """An int64 2-D copy-free view where possible; refuses floats and values beyond int64."""
    return to_int64(as_int_matrix(x, name), name)


def value_range(bits: int, admit_min: bool) -> tuple[int, int]:
    if not isinstance(admit_min, (bool, np.bool_)):
        raise ConfigError(f"admit_min must be True or False, got {short_repr(admit_min)}")
    s = 1 << (bits - 1)
    return (-s if admit_min else -s + 1), s - 1


def digits(sb: int, lo: int, hi: int, transposed: bool = False) -> np.ndarray:
    """The digit parameter vector ``dg`` of the unpacking kernels (indices ``D_*``)."""
    dg = np.empty(4, np.int64)
    dg[D_SHIFT], dg[D_LO], dg[D_HI], dg[D_TRANSPOSED] = sb, lo, hi, int(transposed)
    return dg


def shifts_from_scales(scales: Any, n: int, name: str) -> np.ndarray:
    if scales is None:
        return np.zeros(n, np.int64)
    arr = to_int64(as_int_array(scales, name), name)
    if arr.shape != (n,):
        raise ShapeError(f"{name} must have shape ({n},) (one scale per inner index), got {arr.shape}")
    if arr.size and (int(arr.min()) < 1 or np.any(arr & (arr - 1))):
        bad = int(np.flatnonzero((arr < 1) | ((arr & (arr - 1)) != 0))[0])
        raise ConfigError(f"{name} must be positive powers of two (unpack scales), entry {bad} is {int(arr[bad])}")
    out = np.zeros(n, np.int64)
    v = arr.copy()
    while np.any(v > 1):
        big = v > 1
        out[big] += 1
        v[big] >>= 1
    return out


def scales_from_shifts(shifts: np.ndarray, what: str) -> np.ndarray:
    if shifts.size and int(shifts.max()) >= 63:
        raise OperandRangeError(f"{what}: a scale of 2**{int(shifts.max())} does not fit int64; "
                                "use the .shifts attribute (scale = 2**shift)",
                                count=int(np.count_nonzero(shifts >= 63)), value=1 << int(shifts.max()))
    return np.left_shift(np.int64(1), shifts)


def check_operands(A: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
    A64 = matrix64(A, "A")
    B64 = matrix64(B, "B")
    if A64.shape[1] != B64.shape[0]:
        raise ShapeError(f"inner dimensions differ: A is {A64.shape[0]}x{A64.shape[1]} (M x K) but B is "
                         f"{B64.shape[0]}x{B64.shape[1]} (K x N)")
    return A64, B64


def pair_bits(bits: Any) -> tuple[int, int]:
    if isinstance(bits, (tuple, list)):
        if len(bits) != 2:
            raise ConfigError(f"bits must be an int or a pair (bits_a, bits_b), got {short_repr(bits)}")
        return check_bits(bits[0], "bits_a"), check_bits(bits[1], "bits_b")
    b = check_bits(bits)
    return b, b


def in_range(x: Any, bits: int, admit_min: bool = False) -> np.ndarray:
    """Elementwise: does the integer ``x`` fit ``bits``-bit unpacking (``|x| < 2**(bits-1)``)?

    With ``admit_min`` the value ``-2**(bits-1)`` fits too.

    >>> in_range(np.array([-8, -7, 7, 8]), 4).tolist()
    [False, True, True, False]
    >>> in_range(np.array([-8, -7, 7, 8]), 4, admit_min=True).tolist()
    [True, True, True, False]
    """
    b = check_bits(bits)
    arr = to_int64(as_int_array(x, "x"), "x")
    lo, hi = value_range(b, admit_min)
    return (arr >= lo) & (arr <= hi)


def entry_levels(x: Any, bits: int, admit_min: bool = False) -> np.ndarray:
    """Number of floor digits each entry needs at ``bits`` bits (int64, same shape).

    ``L(x)`` is the smallest ``L >= 1`` with ``floor(x / s**(L-1))`` in range. Row
    unpacking gives row i ``max_k L(A[i, k])`` copies. Negative values can need one
    more digit than positive ones.

    >>> entry_levels(np.array([7, 8, -8, 63, -57, -100]), 4).tolist()
    [1, 2, 2, 2, 3, 3]
    """
    b = check_bits(bits)
    arr = to_int64(as_int_array(x, "x"), "x")
    lo, hi = value_range(b, admit_min)
    flat = np.ascontiguousarray(arr.reshape(1, -1))
    return k_levels(flat, digits(b - 1, lo, hi)).reshape(arr.shape)


# ---------------------------------------------------------------------------------------------
# one operand: the internal form
# ---------------------------------------------------------------------------------------------

@dataclass
class _Side:
    """One operand unpacked against its partner, laid out like the operand.

    ``mat`` int64: A's own lines are its rows, B's its columns. ``own_src``/``own_shift``:
    source own line and shift of each own line of ``mat``; ``inner_src`` (None: the
    identity) and ``inner_shift``: source inner line (an index into the input's inner
    lines) and total shift of each inner line. ``mat`` may be the input itself when
    nothing was split; it is never modified in place afterwards.
    """

    mat: np.ndarray
    own_src: np.ndarray
    own_shift: np.ndarray
    inner_src: np.ndarray | None
    inner_shift: np.ndarray


def _all_in_range(X: np.ndarray, lo: int, hi: int) -> bool:
    if X.size == 0:
        return True
    if X.ndim == 2 and X.dtype == np.int64:
        return bool(k_in_range(X, lo, hi))  # one pass, stops at the first entry outside
    return int(X.min()) >= lo and int(X.max()) <= hi


def split_levels(X: np.ndarray, axis: int, sb: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level-synchronous splitting of the lines along ``axis`` (0: rows, 1: columns).

    Each pass takes the newest block; every line of it holding an out-of-range entry
    keeps its low digits and its high digits go, in line order, to a new block. Returns
    (matrix, source line, shift) with the blocks in order; the input itself (not a
    copy) when no line needs splitting.
    """
    n_lines = X.shape[axis]
    src0 = np.arange(n_lines, dtype=np.int64)
    if _all_in_range(X, lo, hi):
        return X, src0, np.zeros(n_lines, np.int64)
    cur = X.copy()
    blocks, srcs, shs = [cur], [src0], [np.zeros(n_lines, np.int64)]
    mask = (1 << sb) - 1
    while cur.size:
        bad = np.flatnonzero(((cur < lo) | (cur > hi)).any(axis=1 - axis))
        if bad.size == 0:
            break
        if axis == 0:
            sel = cur[bad]
            high = sel >> sb
            cur[bad] = sel & mask
        else:
            sel = cur[:, bad]
            high = sel >> sb
            cur[:, bad] = sel & mask
        blocks.append(high)
        srcs.append(srcs[-1][bad])
        shs.append(shs[-1][bad] + sb)
        cur = high
    return np.concatenate(blocks, axis=axis), np.concatenate(srcs), np.concatenate(shs)


def _copy_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layout of copies: originals first, then level-1 copies in index order, then level 2...

    Returns (pos (n, max count) with -1 where absent, src (total,), level (total,)).
    """
    n = counts.size
    top = int(counts.max()) if n else 1
    pos = np.full((n, max(top, 1)), -1, np.int64)
    srcs, levels = [], []
    nxt = 0
    for lev in range(top):
        idx = np.flatnonzero(counts > lev)
        pos[idx, lev] = nxt + np.arange(idx.size)
        nxt += idx.size
        srcs.append(idx)
        levels.append(np.full(idx.size, lev, np.int64))
    if not srcs:
        return pos, np.zeros(0, np.int64), np.zeros(0, np.int64)
    return pos, np.concatenate(srcs).astype(np.int64), np.concatenate(levels)


def unpack_operand(X: np.ndarray, own_axis: int, strategy: str, inner_shift: np.ndarray, sb: int, lo: int,
                    hi: int, counts: tuple[np.ndarray, np.ndarray] | None = None, dtype: Any = np.int64) -> _Side:
    """Unpack X (int64; own lines along ``own_axis``) with a strategy; ``counts`` = (a, c) for plan (whose
    digit matrix is built in ``dtype``, an integer dtype that holds every digit)."""
    n_own = X.shape[own_axis]
    own_id, own_zero = np.arange(n_own, dtype=np.int64), np.zeros(n_own, np.int64)
    if strategy == "row":
        mat, src, sh = split_levels(X, own_axis, sb, lo, hi)
        return _Side(mat, src, sh, None, inner_shift)
    if strategy == "col":
        mat, src, sh = split_levels(X, 1 - own_axis, sb, lo, hi)
        if mat is X:
            return _Side(X, own_id, own_zero, None, inner_shift)
        return _Side(mat, own_id, own_zero, src, inner_shift[src] + sh)
    if strategy == "both":
        if _all_in_range(X, lo, hi):
            return _Side(X, own_id, own_zero, None, inner_shift)
        Xo = X if own_axis == 0 else X.T
        mat_o, osrc, osh, isrc, ish = k_both(Xo, own_zero, np.ascontiguousarray(inner_shift), digits(sb, lo, hi))
        return _Side(mat_o if own_axis == 0 else mat_o.T, osrc, osh, isrc, ish)
    a, c = counts
    if int(a.max(initial=1)) == 1 and int(c.max(initial=1)) == 1:
        return _Side(X, own_id, own_zero, None, inner_shift)
    rpos, osrc, rlev = _copy_positions(a)
    cpos, isrc, clev = _copy_positions(c)
    shape = (int(a.sum()), int(c.sum()))
    mat = np.zeros(shape if own_axis == 0 else shape[::-1], dtype)
    k_plan_build(X, a, c, rpos, cpos, digits(sb, lo, hi, own_axis == 1), mat)
    return _Side(mat, osrc, rlev * sb, isrc, inner_shift[isrc] + clev * sb)


def plan_levels(L: np.ndarray, w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digit copies per own line (a) and per inner line (c) minimizing (w @ a) * (v @ c)
    subject to a[i] + c[k] - 1 >= L[i, k] (a, c >= 1). Exact; see the module docs."""
    m, n = L.shape
    a = np.ones(m, np.int64)
    c = np.ones(n, np.int64)
    if m == 0 or n == 0:
        return a, c
    ell = L - 1
    tr_all = ell.max(axis=1)
    tc_all = ell.max(axis=0)
    rows = np.flatnonzero(tr_all)
    cols = np.flatnonzero(tc_all)
    if rows.size == 0:
        return a, c
    sub = ell[np.ix_(rows, cols)].astype(np.int64)  # L may be of a narrow dtype
    tr, tc = tr_all[rows].astype(np.int64), tc_all[cols].astype(np.int64)
    ws, vs = w[rows], v[cols]
    W, V = int(w.sum()), int(v.sum())

    def point(al: np.ndarray, ga: np.ndarray) -> tuple[int, int]:
        return int(ws @ al), int(vs @ ga)

    # Best-first search over the lower-left convex hull of achievable (X, Y) = (extra row
    # work, extra inner work) pairs, from the pure-column end (X = 0) to the pure-row end
    # (Y = 0). f = (W + X) * (V + Y) is minimized at a hull vertex (f is concave along
    # each hull edge). Each vertex P is optimal for a direction n (n . p >= n . P for
    # every achievable p); the hull points between vertices P1 and P2 lie above both
    # supporting lines, so f there is at least f(Q) at the lines' intersection Q (f is
    # increasing and concave along each line). Segments with f(Q) >= best are pruned;
    # the others are split by the min-cut for the direction of the chord P1 P2.
    def f_of(x: Fraction | int, y: Fraction | int) -> Fraction | int:
        return (W + x) * (V + y)

    left = (np.zeros(rows.size, np.int64), tc.copy())
    right = (tr.copy(), np.zeros(cols.size, np.int64))
    pl, pr = point(*left), point(*right)
    best_f, best = min((f_of(*pl), pl, left), (f_of(*pr), pr, right), key=lambda t: (t[0], t[1]))[0::2]
    heap: list = []
    tick = 0

    def push(p1: tuple, n1: tuple[int, int], p2: tuple, n2: tuple[int, int]) -> None:
        nonlocal tick
        (x1, y1), (x2, y2) = p1, p2
        if x2 <= x1 or y1 <= y2:
            return
        # intersection of n1 . p = n1 . p1 and n2 . p = n2 . p2 (exact)
        det = n1[0] * n2[1] - n1[1] * n2[0]
        c1, c2 = n1[0] * x1 + n1[1] * y1, n2[0] * x2 + n2[1] * y2
        if det == 0:
            return  # parallel supporting lines: the chord is a hull edge
        qx = Fraction(c1 * n2[1] - n1[1] * c2, det)
        qy = Fraction(n1[0] * c2 - c1 * n2[0], det)
        lb = f_of(qx, qy)
        if lb < best_f:
            heapq.heappush(heap, (lb, tick, p1, n1, p2, n2))
            tick += 1

    graph = k_cover_graph(sub, tr, tc)
    push(pl, (1, 0), pr, (0, 1))
    while heap:
        lb, _, p1, n1, p2, n2 = heapq.heappop(heap)
        if lb >= best_f:
            break
        (x1, y1), (x2, y2) = p1, p2
        g = gcd(y1 - y2, x2 - x1)
        cx, cy = (y1 - y2) // g, (x2 - x1) // g
        al, ga = k_cover_solve(graph, tr, tc, ws * cx, vs * cy)
        p = point(al, ga)
        if cx * p[0] + cy * p[1] >= cx * x1 + cy * y1:
            continue  # nothing strictly below the chord: P1 P2 is a hull edge
        fp = f_of(*p)
        if fp < best_f:
            best_f, best = fp, (al, ga)
        push(p1, n1, p, (cx, cy))
        push(p, (cx, cy), p2, n2)
    a[rows] += best[0]
    c[cols] += best[1]
    return a, c


# ---------------------------------------------------------------------------------------------
# the pair: A then B
# ---------------------------------------------------------------------------------------------

@dataclass
class UnpackedPair:
    """Both operands of a product ``A @ B`` (A: M x K, B: K x N) unpacked into low-bit
    digits, with the maps that reassemble the product (:func:`unpack_operands`): output
    ``(r, c)`` of ``A @ B`` is the sum, over every unpacked row ``i`` with ``a_src[i] = r``,
    column ``j`` with ``b_src[j] = c`` and inner line ``k``, of::

        (a[i, k] * b[k, j]) << (a_shift[i] + b_shift[j] + inner_shift[k])

    Attributes: ``a`` (M' x K'') and ``b`` (K'' x N') int64 digit matrices within the
    unpack bit-widths; ``a_src``/``a_shift`` (M') the original row of each unpacked row and its
    shift; ``b_src``/``b_shift`` (N') the same for the columns of ``b``; ``inner_shift`` (K'')
    the shift of each inner line.
    """

    a: np.ndarray
    b: np.ndarray
    a_src: np.ndarray
    a_shift: np.ndarray
    b_src: np.ndarray
    b_shift: np.ndarray
    inner_shift: np.ndarray


def _levels8(X: np.ndarray, sb: int, lo: int, hi: int) -> np.ndarray:
    """:func:`k_levels` of X as int8 (an int64 entry has at most 64 digits)."""
    out = np.empty(X.shape, np.int8)
    k_levels_into(X, digits(sb, lo, hi), out)
    return out


def joint_plan(LA: np.ndarray, LBt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plans for A (a, c) and for B^T (f, e) when both operands use ``plan``.

    A is planned first (inner weights 1), then B^T with A's inner copies as weights;
    then each plan is recomputed given the other while the total work
    ``sum(a) * (c @ e) * sum(f)`` falls (at most 4 rounds).
    """
    M, K = LA.shape
    N = LBt.shape[0]
    ones_m, ones_n = np.ones(M, np.int64), np.ones(N, np.int64)
    a, c = plan_levels(LA, ones_m, np.ones(K, np.int64))
    f, e = plan_levels(LBt, ones_n, c)
    best = (int(a.sum()) * int(c @ e) * int(f.sum()), a, c, f, e)
    for _ in range(4):
        a2, c2 = plan_levels(LA, ones_m, best[4])
        if np.array_equal(c2, best[2]):
            break  # A's plan is unchanged, so B's would be too
        f2, e2 = plan_levels(LBt, ones_n, c2)
        work = int(a2.sum()) * int(c2 @ e2) * int(f2.sum())
        if work >= best[0]:
            break
        best = (work, a2, c2, f2, e2)
    return best[1], best[2], best[3], best[4]


def unpack_pair(A: np.ndarray, B: np.ndarray, strategy_a: str, strategy_b: str, bits_a: int, bits_b: int,
                admit_min: bool, dtype_a: Any = np.int64, dtype_b: Any = np.int64) -> UnpackedPair:
    """Unpack A (M x K) against B, then B (its columns are its own lines) against the unpacked A.
    The digit matrices are of dtype_a and dtype_b (int64 by default; a narrower integer dtype that
    holds every digit is taken before the lines are gathered, which then moves fewer bytes)."""
    (lo_a, hi_a), (lo_b, hi_b) = value_range(bits_a, admit_min), value_range(bits_b, admit_min)
    sa, sbb = bits_a - 1, bits_b - 1
    M, K = A.shape
    N = B.shape[1]
    zeros_k = np.zeros(K, np.int64)
    ones_m, ones_k, ones_n = np.ones(M, np.int64), np.ones(K, np.int64), np.ones(N, np.int64)
    plan_a, plan_b = strategy_a == "plan", strategy_b == "plan"
    # An operand whose entries are all in range has one digit everywhere: its plan is one copy of
    # every line (what plan_levels and joint_plan return for such levels), so its levels are not formed.
    in_b = _all_in_range(B, lo_b, hi_b)
    LBt = None if not plan_b or in_b else _levels8(B, sbb, lo_b, hi_b).T
    f_cnt = e_cnt = counts_a = None
    if plan_a:
        LA = None if _all_in_range(A, lo_a, hi_a) else _levels8(A, sa, lo_a, hi_a)
        if LA is None:
            a_cnt, c_cnt = ones_m, ones_k
        elif plan_b and LBt is not None:
            a_cnt, c_cnt, f_cnt, e_cnt = joint_plan(LA, LBt)
        else:
            a_cnt, c_cnt = plan_levels(LA, ones_m, ones_k)
        counts_a = (a_cnt, c_cnt)
    sideA = unpack_operand(A, 0, strategy_a, zeros_k, sa, lo_a, hi_a, counts_a, dtype_a)
    ksrc = sideA.inner_src  # A's inner lines -> B's rows (None: one each)
    if plan_b:
        if e_cnt is None:
            if LBt is None:
                f_cnt, e_cnt = ones_n, ones_k
            else:
                mult = np.bincount(ksrc, minlength=K).astype(np.int64) if ksrc is not None else ones_k
                f_cnt, e_cnt = plan_levels(LBt, ones_n, mult)
        # Plan B on its K original inner lines; each inner line of A then gets e[k] B copies.
        sideBo = unpack_operand(B, 1, "plan", zeros_k, sbb, lo_b, hi_b, (f_cnt, e_cnt), dtype_b)
        cpos = _copy_positions(e_cnt)[0]
        kk = ksrc if ksrc is not None else np.arange(K, dtype=np.int64)
        e_of = e_cnt[kk]
        slots = [np.flatnonzero(e_of > q) for q in range(int(e_of.max()) if e_of.size else 0)]
        src = np.concatenate(slots) if slots else np.zeros(0, np.int64)
        lev = np.concatenate([np.full(t.size, q, np.int64) for q, t in enumerate(slots)]) if slots else src
        rows_b = cpos[kk[src], lev]
        mat_b = sideBo.mat.astype(dtype_b, copy=False)
        if not np.array_equal(rows_b, np.arange(mat_b.shape[0])):
            mat_b = mat_b[rows_b]
        sideB = _Side(mat_b, sideBo.own_src, sideBo.own_shift, src, sideA.inner_shift[src] + lev * sbb)
    else:
        Bn = B.astype(dtype_b) if in_b else B  # in range: B is its own unpacking, narrowed before the gather
        B1 = Bn if ksrc is None else Bn[ksrc]  # B's rows duplicated for A's inner copies
        sideB = unpack_operand(B1, 1, strategy_b, sideA.inner_shift, sbb, lo_b, hi_b)
    mat_a = sideA.mat.astype(dtype_a, copy=False)
    A2 = mat_a if sideB.inner_src is None else mat_a[:, sideB.inner_src]
    B2 = sideB.mat.astype(dtype_b, copy=False)
    if np.dtype(dtype_b).itemsize < 8:  # narrowed for a GEMM: row-major, as the GEMM engines read it
        A2, B2 = np.ascontiguousarray(A2), np.ascontiguousarray(B2)
    return UnpackedPair(A2, B2, sideA.own_src, sideA.own_shift, sideB.own_src, sideB.own_shift, sideB.inner_shift)
