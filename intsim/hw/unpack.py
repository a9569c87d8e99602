"""IM-Unpack: exact GEMMs of large-integer matrices on a low-bit datapath.

IM-Unpack (Zeng, Sankaralingam, Singh, ICML 2024) rewrites ``A @ B`` whose entries
do not all fit a b-bit multiplier as a larger GEMM whose entries all do, with the
exact same result. intsim follows the official PyTorch reference bit for bit
(``vsingh-group/im-unpack``, ``unpack.py``; see ``shared/design/imunpack.md``):

* base ``s = 2**(b-1)``; an entry is **in range** iff ``|x| < s`` (``b >= 2``).
  With ``admit_min=True`` the value ``-s`` is in range too, as it is for a real
  two's-complement b-bit multiplier (range ``[-s, s-1]``).
* **floor digits**: an out-of-range line is replaced by its low digits
  ``x mod s`` (in ``[0, s)``) and its high digits ``floor(x / s)`` go to a new line
  whose scale is the old line's times ``s``. A split replaces the **whole line**,
  in-range entries included (``-3`` at b = 4 becomes ``5`` and ``-1``). So ``-100``
  at b = 4 gives digits ``4, 3, -2`` with scales ``1, 8, 64``.
* Scales are powers of two, ``s**level``; intsim keeps them as int64 *shifts*
  (``scale = 2**shift``), so no scale can overflow.

Conventions: our GEMM is ``A (M x K) @ B (K x N)``. A's own lines are its rows (they
become output rows), its inner lines its columns. B is unpacked the same way with
the roles swapped: its own lines are its columns (output columns), its inner lines
its rows. Strategies, per operand:

``row``
    level-synchronous: every own line with an out-of-range entry is split, all in
    one pass, the new lines appended in index order; repeat on the newest block.
``col``
    the same over the inner lines; the partner's matching inner lines are duplicated.
``both``
    the paper's greedy: each step splits the single line (own or inner) with the
    most out-of-range entries; ties go to the own line (the row of A), then to the
    lowest index.
``plan``
    intsim's strategy, aimed at the GEMM work itself. It chooses how many digit
    copies each own line (``a_i``) and each inner line (``c_k``) gets, minimizing the
    work ``(sum a) * (sum c)`` (weighted by the partner's multiplicities) subject to
    every entry fitting: an entry needing ``L`` floor digits fits a block of
    ``a_i x c_k`` slots iff ``L <= a_i + c_k - 1``. The row, col and greedy results
    all satisfy that constraint, so the plan's work for one operand is never larger
    than theirs. The minimum is exact: the product is minimized at a vertex of the
    convex hull of achievable (own work, inner work) pairs; each vertex is the
    optimum of a weighted vertex cover of a bipartite graph (a min-cut); the hull
    is searched best first, a stretch between two known vertices being dropped when
    a lower bound of the product over it cannot beat the best vertex found.
    Entry ``x`` writes its own minimal floor-digit string into its block (digit j on
    row copy ``min(j, a_i - 1)`` and inner copy ``j - min(j, a_i - 1)``, zeros
    elsewhere). When both operands use ``plan``, the two plans are refined in turn
    (each minimizing the total work given the other) while the total work falls.

:func:`unpack_matmul` unpacks A then B (B against the already unpacked A, as the
reference's ``check_unpack_correct.py`` does), runs one low-bit GEMM per distinct
inner shift through :func:`intsim.matmul` on the given datapath, and reassembles
with exact shifts and adds.

>>> import numpy as np
>>> from intsim.hw.unpack import unpack_rows
>>> r = unpack_rows(np.array([[-100]]), 4)
>>> r.matrix.ravel().tolist(), r.index.tolist(), r.scales.tolist()
([4, 3, -2], [0, 0, 0], [1, 8, 64])
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd
from typing import Any

import numpy as np
from numba import njit

from ..core.arrays import as_int_array, as_int_matrix, short_repr, to_int64
from ..core.errors import AccumulatorOverflow, ConfigError, OperandRangeError, ShapeError
from ..core.opcounts import OpCounts
from ..regs.registers import RegisterEvent
from .datapath import Datapath, as_datapath
from .gemm import GemmResult, matmul, register_of

__all__ = [
    "STRATEGIES",
    "RowUnpack",
    "ColUnpack",
    "BothUnpack",
    "LowBitGemm",
    "UnpackResult",
    "UnpackedPair",
    "unpack_operands",
    "UnpackStats",
    "in_range",
    "entry_levels",
    "unpack_rows",
    "unpack_cols",
    "unpack_both",
    "unpack_plan",
    "unpack",
    "unpack_stats",
    "compare_strategies",
    "unpack_matmul",
    "REASSEMBLY_BITS",
]

#: Unpacking strategies accepted by :func:`unpack` and :func:`unpack_matmul`.
STRATEGIES: tuple[str, ...] = ("row", "col", "both", "plan")

#: Width at which the reassembly shifts and adds are counted (the int64 register).
REASSEMBLY_BITS = 64

_MAX64 = np.int64(2**63 - 1)
_MIN64 = np.int64(-(2**63))

#: Indices of the digit parameter vector ``dg`` (int64) of the unpacking kernels: the digit width
#: ``sb = bits - 1`` (the base is ``s = 2**sb``), the in-range interval ``[lo, hi]`` and, for
#: :func:`_k_plan_build`, 1 when the operand is stored transposed (inner x own lines).
D_SHIFT, D_LO, D_HI, D_TRANSPOSED = range(4)

#: The cover graph of :func:`_k_cover_graph`: the source and sink nodes, the first node of a line
#: (the nodes of the rows, then of the columns, follow) and the edge types.
SOURCE, SINK, FIRST_LINE_NODE = 0, 1, 2
E_REVERSE, E_SOURCE, E_SINK, E_MIDDLE = range(4)


# ---------------------------------------------------------------------------------------------
# validation and small helpers
# ---------------------------------------------------------------------------------------------

def _check_bits(bits: Any, name: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer from 2 to 63, got {short_repr(bits)}")
    b = int(bits)
    if b == 1:
        raise ConfigError(f"{name} = 1 is not allowed: with base s = 2**0 = 1 no negative entry ever comes "
                          "into range (-1 // 1 == -1), so unpacking would never end; use bits >= 2")
    if not 2 <= b <= 63:
        raise ConfigError(f"{name} must be from 2 to 63, got {b}")
    return b


def _check_strategy(strategy: Any, name: str) -> str:
    if not isinstance(strategy, str) or strategy.strip().lower() not in STRATEGIES:
        raise ConfigError(f"{name} must be one of {', '.join(STRATEGIES)}, got {short_repr(strategy)}")
    return strategy.strip().lower()


def _matrix64(x: Any, name: str) -> np.ndarray:
    """An int64 2-D copy-free view where possible; refuses floats and values beyond int64."""
    return to_int64(as_int_matrix(x, name), name)


def _range(bits: int, admit_min: bool) -> tuple[int, int]:
    if not isinstance(admit_min, (bool, np.bool_)):
        raise ConfigError(f"admit_min must be True or False, got {short_repr(admit_min)}")
    s = 1 << (bits - 1)
    return (-s if admit_min else -s + 1), s - 1


def _digits(sb: int, lo: int, hi: int, transposed: bool = False) -> np.ndarray:
    """The digit parameter vector ``dg`` of the unpacking kernels (indices ``D_*``)."""
    dg = np.empty(4, np.int64)
    dg[D_SHIFT], dg[D_LO], dg[D_HI], dg[D_TRANSPOSED] = sb, lo, hi, int(transposed)
    return dg


def _shifts_from_scales(scales: Any, n: int, name: str) -> np.ndarray:
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


def _scales_from_shifts(shifts: np.ndarray, what: str) -> np.ndarray:
    if shifts.size and int(shifts.max()) >= 63:
        raise OperandRangeError(f"{what}: a scale of 2**{int(shifts.max())} does not fit int64; "
                                "use the .shifts attribute (scale = 2**shift)",
                                count=int(np.count_nonzero(shifts >= 63)), value=1 << int(shifts.max()))
    return np.left_shift(np.int64(1), shifts)


def in_range(x: Any, bits: int, admit_min: bool = False) -> np.ndarray:
    """Elementwise: does the integer ``x`` fit ``bits``-bit unpacking (``|x| < 2**(bits-1)``)?

    With ``admit_min`` the value ``-2**(bits-1)`` fits too.

    >>> in_range(np.array([-8, -7, 7, 8]), 4).tolist()
    [False, True, True, False]
    >>> in_range(np.array([-8, -7, 7, 8]), 4, admit_min=True).tolist()
    [True, True, True, False]
    """
    b = _check_bits(bits)
    arr = to_int64(as_int_array(x, "x"), "x")
    lo, hi = _range(b, admit_min)
    return (arr >= lo) & (arr <= hi)


def entry_levels(x: Any, bits: int, admit_min: bool = False) -> np.ndarray:
    """Number of floor digits each entry needs at ``bits`` bits (int64, same shape).

    ``L(x)`` is the smallest ``L >= 1`` with ``floor(x / s**(L-1))`` in range. Row
    unpacking gives row i ``max_k L(A[i, k])`` copies. Negative values can need one
    more digit than positive ones.

    >>> entry_levels(np.array([7, 8, -8, 63, -57, -100]), 4).tolist()
    [1, 2, 2, 2, 3, 3]
    """
    b = _check_bits(bits)
    arr = to_int64(as_int_array(x, "x"), "x")
    lo, hi = _range(b, admit_min)
    flat = np.ascontiguousarray(arr.reshape(1, -1))
    return _k_levels(flat, _digits(b - 1, lo, hi)).reshape(arr.shape)


# ---------------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _k_levels(X, dg):
    """The number of floor digits of every entry of X (see :func:`entry_levels`)."""
    sb, lo, hi = dg[D_SHIFT], dg[D_LO], dg[D_HI]
    m, n = X.shape
    out = np.empty((m, n), np.int64)
    for i in range(m):
        for j in range(n):
            x = X[i, j]
            L = 1
            while x < lo or x > hi:
                x >>= sb
                L += 1
            out[i, j] = L
    return out


@njit(cache=True)
def _k_grow(a, cap):
    out = np.zeros(cap, np.int64)
    out[:a.shape[0]] = a
    return out


@njit(cache=True)
def _k_both(X0, row_shift0, col_shift0, dg):
    """The paper's greedy UnpackBoth on int64 X0; returns (X, row_src, row_shift, col_src, col_shift).

    Out-of-range counts per row and column are updated incrementally at each split.
    Buffers grow by the original number of rows (columns), as in the reference.
    """
    sb, lo, hi = dg[D_SHIFT], dg[D_LO], dg[D_HI]
    m, n = X0.shape
    step_r = max(m, 1)
    step_c = max(n, 1)
    cap_r = m + step_r
    cap_c = n + step_c
    X = np.zeros((cap_r, cap_c), np.int64)
    X[:m, :n] = X0
    rsrc = np.zeros(cap_r, np.int64)
    rsh = np.zeros(cap_r, np.int64)
    csrc = np.zeros(cap_c, np.int64)
    csh = np.zeros(cap_c, np.int64)
    rc = np.zeros(cap_r, np.int64)
    cc = np.zeros(cap_c, np.int64)
    for i in range(m):
        rsrc[i] = i
        rsh[i] = row_shift0[i]
    for j in range(n):
        csrc[j] = j
        csh[j] = col_shift0[j]
    for i in range(m):
        for j in range(n):
            x = X[i, j]
            if x < lo or x > hi:
                rc[i] += 1
                cc[j] += 1
    mask = (np.int64(1) << sb) - 1
    ir = m
    jc = n
    while True:
        br = -1
        bv = 0
        for i in range(ir):
            if rc[i] > bv:
                bv = rc[i]
                br = i
        bc = -1
        cv = 0
        for j in range(jc):
            if cc[j] > cv:
                cv = cc[j]
                bc = j
        if bv == 0 and cv == 0:
            break
        if bv >= cv:  # ties go to the row
            if ir == cap_r:
                cap_r += step_r
                X2 = np.zeros((cap_r, cap_c), np.int64)
                X2[:ir, :jc] = X[:ir, :jc]
                X = X2
                rsrc = _k_grow(rsrc, cap_r)
                rsh = _k_grow(rsh, cap_r)
                rc = _k_grow(rc, cap_r)
            cnt = 0
            for j in range(jc):
                x = X[br, j]
                h = x >> sb
                X[br, j] = x & mask
                X[ir, j] = h
                ox = 1 if (x < lo or x > hi) else 0
                oh = 1 if (h < lo or h > hi) else 0
                cc[j] += oh - ox
                cnt += oh
            rc[br] = 0
            rc[ir] = cnt
            rsrc[ir] = rsrc[br]
            rsh[ir] = rsh[br] + sb
            ir += 1
        else:
            if jc == cap_c:
                cap_c += step_c
                X2 = np.zeros((cap_r, cap_c), np.int64)
                X2[:ir, :jc] = X[:ir, :jc]
                X = X2
                csrc = _k_grow(csrc, cap_c)
                csh = _k_grow(csh, cap_c)
                cc = _k_grow(cc, cap_c)
            cnt = 0
            for i in range(ir):
                x = X[i, bc]
                h = x >> sb
                X[i, bc] = x & mask
                X[i, jc] = h
                ox = 1 if (x < lo or x > hi) else 0
                oh = 1 if (h < lo or h > hi) else 0
                rc[i] += oh - ox
                cnt += oh
            cc[bc] = 0
            cc[jc] = cnt
            csrc[jc] = csrc[bc]
            csh[jc] = csh[bc] + sb
            jc += 1
    return X[:ir, :jc].copy(), rsrc[:ir].copy(), rsh[:ir].copy(), csrc[:jc].copy(), csh[:jc].copy()


@njit(cache=True)
def _k_plan_build(X, a, c, row_pos, col_pos, dg):
    """Write each entry's minimal floor-digit string into its a[i] x c[k] block.

    Own line i, inner line k; digit j of the entry goes to own copy p = min(j, a[i]-1)
    and inner copy j - p (``row_pos``/``col_pos``: the position of each copy, sum(a) own and
    sum(c) inner lines in all). ``dg[D_TRANSPOSED]``: X is (inner x own) and so is the output.
    """
    sb, lo, hi = dg[D_SHIFT], dg[D_LO], dg[D_HI]
    transposed = dg[D_TRANSPOSED] != 0
    n_rows = a.sum()
    n_cols = c.sum()
    if transposed:
        n, m = X.shape
        out = np.zeros((n_cols, n_rows), np.int64)
    else:
        m, n = X.shape
        out = np.zeros((n_rows, n_cols), np.int64)
    mask = (np.int64(1) << sb) - 1
    for r in range(X.shape[0]):
        for q in range(X.shape[1]):
            x = X[r, q]
            if x == 0:
                continue
            i, k = (q, r) if transposed else (r, q)
            ai = a[i]
            y = x
            L = 1
            while y < lo or y > hi:
                y >>= sb
                L += 1
            for j in range(L):
                p = j if j < ai - 1 else ai - 1
                d = x >> (j * sb)
                if j < L - 1:
                    d &= mask
                if transposed:
                    out[col_pos[k, j - p], row_pos[i, p]] = d
                else:
                    out[row_pos[i, p], col_pos[k, j - p]] = d
    return out


@njit(cache=True)
def _k_reassemble(C, G, rsrc, rsh, csrc, csh, t):
    """C[rsrc[r], csrc[q]] += G[r, q] << (t + rsh[r] + csh[q]) in int64; False on any overflow."""
    R, Q = G.shape
    for r in range(R):
        i = rsrc[r]
        sr = rsh[r] + t
        for q in range(Q):
            v = G[r, q]
            if v == 0:
                continue
            s = sr + csh[q]
            if s >= 63:
                if s == 63 and v == -1:
                    term = _MIN64
                else:
                    return False
            else:
                lim = _MAX64 >> s
                if v > lim or v < -lim - 1:
                    return False
                term = v << s
            j = csrc[q]
            old = C[i, j]
            new = old + term
            if ((old ^ new) & (term ^ new)) < 0:
                return False
            C[i, j] = new
    return True


@njit(cache=True)
def _k_cover_graph(ell, tr, tc):
    """The bipartite cover graph of :func:`_k_cover_solve`, in CSR form: the tuple
    ``(start, to, rev, etype, owner, sink_edge, xoff, yoff)``.

    Node SOURCE (0) is the source, SINK (1) the sink; row i has nodes ``xoff[i] + t`` (t < tr[i]),
    one per unit of alpha_i; column k has ``yoff[k] + t`` (t < tc[k]). Entry (i, k) joins
    x_{i,t} and y_{k,ell-1-t} for t < ell. ``etype``: E_SOURCE source edge (owner = row),
    E_SINK sink edge (owner = column), E_MIDDLE uncuttable middle edge, E_REVERSE reverse edge.
    """
    m, n = ell.shape
    xoff = np.empty(m, np.int64)
    yoff = np.empty(n, np.int64)
    nid = FIRST_LINE_NODE
    for i in range(m):
        xoff[i] = nid
        nid += tr[i]
    for k in range(n):
        yoff[k] = nid
        nid += tc[k]
    deg = np.zeros(nid, np.int64)
    deg[SOURCE] = tr.sum()
    deg[SINK] = tc.sum()
    deg[FIRST_LINE_NODE:] = 1
    for i in range(m):
        for k in range(n):
            lv = ell[i, k]
            for t in range(lv):
                deg[xoff[i] + t] += 1
                deg[yoff[k] + lv - 1 - t] += 1
    start = np.zeros(nid + 1, np.int64)
    for u in range(nid):
        start[u + 1] = start[u] + deg[u]
    fill = start[:nid].copy()
    n_e = start[nid]
    to = np.empty(n_e, np.int64)
    rev = np.empty(n_e, np.int64)
    etype = np.full(n_e, E_REVERSE, np.int64)
    owner = np.zeros(n_e, np.int64)
    sink_edge = np.full(nid, -1, np.int64)
    for i in range(m):
        for t in range(tr[i]):
            a, b = _k_pair(fill, to, rev, SOURCE, xoff[i] + t)
            etype[a] = E_SOURCE
            owner[a] = i
    for k in range(n):
        for t in range(tc[k]):
            a, b = _k_pair(fill, to, rev, yoff[k] + t, SINK)
            etype[a] = E_SINK
            owner[a] = k
            sink_edge[yoff[k] + t] = a
    for i in range(m):
        for k in range(n):
            lv = ell[i, k]
            for t in range(lv):
                a, b = _k_pair(fill, to, rev, xoff[i] + t, yoff[k] + lv - 1 - t)
                etype[a] = E_MIDDLE
    return start, to, rev, etype, owner, sink_edge, xoff, yoff


@njit(cache=True)
def _k_pair(fill, to, rev, u, v):
    a = fill[u]
    b = fill[v]
    fill[u] += 1
    fill[v] += 1
    to[a] = v
    rev[a] = b
    to[b] = u
    rev[b] = a
    return a, b


@njit(cache=True)
def _k_cover_solve(graph, tr, tc, cx, cy):
    """Integer alpha, gamma >= 0 with alpha[i] + gamma[k] >= ell[i, k] minimizing
    ``sum(cx * alpha) + sum(cy * gamma)``, as a minimum s-t cut of :func:`_k_cover_graph`.

    A vertex cover of the graph's pairs holds at least ell of the 2 * ell nodes of
    entry (i, k), so counting cover nodes per line is feasible; the prefix solutions
    are covers; so the minimum weighted cover (x in the cover: its source edge is cut;
    y: its sink edge is cut) is the optimum. Max flow: a greedy pass over the
    source-x-y-sink paths, then Dinic's algorithm. ``graph``: the tuple of :func:`_k_cover_graph`.
    """
    start, to, rev, etype, owner, sink_edge, xoff, yoff = graph
    n_nodes = start.shape[0] - 1
    n_e = to.shape[0]
    m = tr.shape[0]
    n = tc.shape[0]
    inf = 1
    for i in range(m):
        inf += cx[i] * tr[i]
    for k in range(n):
        inf += cy[k] * tc[k]
    cap = np.zeros(n_e, np.int64)
    for e in range(n_e):
        t = etype[e]
        if t == E_SOURCE:
            cap[e] = cx[owner[e]]
        elif t == E_SINK:
            cap[e] = cy[owner[e]]
        elif t == E_MIDDLE:
            cap[e] = inf
    for p in range(start[SOURCE], start[SOURCE + 1]):  # greedy initial flow along s -> x -> y -> t
        x = to[p]
        for q in range(start[x], start[x + 1]):
            if cap[p] == 0:
                break
            y = to[q]
            if etype[q] != E_MIDDLE:
                continue
            r = sink_edge[y]
            f = min(cap[p], cap[r])
            if f > 0:
                cap[p] -= f
                cap[rev[p]] += f
                cap[q] -= f
                cap[rev[q]] += f
                cap[r] -= f
                cap[rev[r]] += f
    level = np.empty(n_nodes, np.int64)
    it = np.empty(n_nodes, np.int64)
    queue = np.empty(n_nodes, np.int64)
    pe = np.empty(n_nodes, np.int64)
    pn = np.empty(n_nodes, np.int64)
    while True:
        level[:] = -1
        level[SOURCE] = 0
        qh = 0
        qt = 1
        queue[0] = SOURCE
        while qh < qt:
            u = queue[qh]
            qh += 1
            for e in range(start[u], start[u + 1]):
                v = to[e]
                if cap[e] > 0 and level[v] < 0:
                    level[v] = level[u] + 1
                    queue[qt] = v
                    qt += 1
        if level[SINK] < 0:
            break
        for u in range(n_nodes):
            it[u] = start[u]
        while True:
            depth = 0
            u = SOURCE
            found = False
            while True:
                if u == SINK:
                    found = True
                    break
                e = it[u]
                end = start[u + 1]
                while e < end and not (cap[e] > 0 and level[to[e]] == level[u] + 1):
                    e += 1
                it[u] = e
                if e == end:
                    if depth == 0:
                        break
                    level[u] = -2  # dead end for the rest of this phase
                    depth -= 1
                    u = pn[depth]
                    it[u] += 1
                else:
                    pe[depth] = e
                    pn[depth] = u
                    depth += 1
                    u = to[e]
            if not found:
                break
            f = cap[pe[0]]
            for d in range(1, depth):
                if cap[pe[d]] < f:
                    f = cap[pe[d]]
            for d in range(depth):
                cap[pe[d]] -= f
                cap[rev[pe[d]]] += f
    # level >= 0 exactly for the nodes reachable from the source in the final residual graph
    alpha = np.zeros(m, np.int64)
    gamma = np.zeros(n, np.int64)
    for i in range(m):
        for t in range(tr[i]):
            if level[xoff[i] + t] < 0:
                alpha[i] += 1
    for k in range(n):
        for t in range(tc[k]):
            if level[yoff[k] + t] >= 0:
                gamma[k] += 1
    return alpha, gamma


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
    return X.size == 0 or (int(X.min()) >= lo and int(X.max()) <= hi)


def _split_levels(X: np.ndarray, axis: int, sb: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _unpack_operand(X: np.ndarray, own_axis: int, strategy: str, inner_shift: np.ndarray, sb: int, lo: int,
                    hi: int, counts: tuple[np.ndarray, np.ndarray] | None = None) -> _Side:
    """Unpack X (int64; own lines along ``own_axis``) with a strategy; ``counts`` = (a, c) for plan."""
    n_own = X.shape[own_axis]
    own_id, own_zero = np.arange(n_own, dtype=np.int64), np.zeros(n_own, np.int64)
    if strategy == "row":
        mat, src, sh = _split_levels(X, own_axis, sb, lo, hi)
        return _Side(mat, src, sh, None, inner_shift)
    if strategy == "col":
        mat, src, sh = _split_levels(X, 1 - own_axis, sb, lo, hi)
        if mat is X:
            return _Side(X, own_id, own_zero, None, inner_shift)
        return _Side(mat, own_id, own_zero, src, inner_shift[src] + sh)
    if strategy == "both":
        if _all_in_range(X, lo, hi):
            return _Side(X, own_id, own_zero, None, inner_shift)
        Xo = X if own_axis == 0 else X.T
        mat_o, osrc, osh, isrc, ish = _k_both(Xo, own_zero, np.ascontiguousarray(inner_shift), _digits(sb, lo, hi))
        return _Side(mat_o if own_axis == 0 else mat_o.T, osrc, osh, isrc, ish)
    a, c = counts
    if int(a.max(initial=1)) == 1 and int(c.max(initial=1)) == 1:
        return _Side(X, own_id, own_zero, None, inner_shift)
    rpos, osrc, rlev = _copy_positions(a)
    cpos, isrc, clev = _copy_positions(c)
    mat = _k_plan_build(X, a, c, rpos, cpos, _digits(sb, lo, hi, own_axis == 1))
    return _Side(mat, osrc, rlev * sb, isrc, inner_shift[isrc] + clev * sb)


def _plan_levels(L: np.ndarray, w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    sub = np.ascontiguousarray(ell[np.ix_(rows, cols)])
    tr, tc = tr_all[rows], tc_all[cols]
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

    graph = _k_cover_graph(sub, tr, tc)
    push(pl, (1, 0), pr, (0, 1))
    while heap:
        lb, _, p1, n1, p2, n2 = heapq.heappop(heap)
        if lb >= best_f:
            break
        (x1, y1), (x2, y2) = p1, p2
        g = gcd(y1 - y2, x2 - x1)
        cx, cy = (y1 - y2) // g, (x2 - x1) // g
        al, ga = _k_cover_solve(graph, tr, tc, ws * cx, vs * cy)
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


def _joint_plan(LA: np.ndarray, LBt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plans for A (a, c) and for B^T (f, e) when both operands use ``plan``.

    A is planned first (inner weights 1), then B^T with A's inner copies as weights;
    then each plan is recomputed given the other while the total work
    ``sum(a) * (c @ e) * sum(f)`` falls (at most 4 rounds).
    """
    M, K = LA.shape
    N = LBt.shape[0]
    ones_m, ones_n = np.ones(M, np.int64), np.ones(N, np.int64)
    a, c = _plan_levels(LA, ones_m, np.ones(K, np.int64))
    f, e = _plan_levels(LBt, ones_n, c)
    best = (int(a.sum()) * int(c @ e) * int(f.sum()), a, c, f, e)
    for _ in range(4):
        a2, c2 = _plan_levels(LA, ones_m, best[4])
        if np.array_equal(c2, best[2]):
            break  # A's plan is unchanged, so B's would be too
        f2, e2 = _plan_levels(LBt, ones_n, c2)
        work = int(a2.sum()) * int(c2 @ e2) * int(f2.sum())
        if work >= best[0]:
            break
        best = (work, a2, c2, f2, e2)
    return best[1], best[2], best[3], best[4]


def _unpack_pair(A: np.ndarray, B: np.ndarray, strategy_a: str, strategy_b: str, bits_a: int, bits_b: int,
                 admit_min: bool) -> UnpackedPair:
    """Unpack A (M x K) against B, then B (its columns are its own lines) against the unpacked A."""
    (lo_a, hi_a), (lo_b, hi_b) = _range(bits_a, admit_min), _range(bits_b, admit_min)
    sa, sbb = bits_a - 1, bits_b - 1
    M, K = A.shape
    N = B.shape[1]
    zeros_k = np.zeros(K, np.int64)
    plan_a, plan_b = strategy_a == "plan", strategy_b == "plan"
    LBt = _k_levels(B, _digits(sbb, lo_b, hi_b)).T if plan_b else None
    f_cnt = e_cnt = counts_a = None
    if plan_a:
        LA = _k_levels(A, _digits(sa, lo_a, hi_a))
        if plan_b:
            a_cnt, c_cnt, f_cnt, e_cnt = _joint_plan(LA, LBt)
        else:
            a_cnt, c_cnt = _plan_levels(LA, np.ones(M, np.int64), np.ones(K, np.int64))
        counts_a = (a_cnt, c_cnt)
    sideA = _unpack_operand(A, 0, strategy_a, zeros_k, sa, lo_a, hi_a, counts_a)
    ksrc = sideA.inner_src  # A's inner lines -> B's rows (None: one each)
    if plan_b:
        if e_cnt is None:
            mult = np.bincount(ksrc, minlength=K).astype(np.int64) if ksrc is not None else np.ones(K, np.int64)
            f_cnt, e_cnt = _plan_levels(LBt, np.ones(N, np.int64), mult)
        # Plan B on its K original inner lines; each inner line of A then gets e[k] B copies.
        sideBo = _unpack_operand(B, 1, "plan", zeros_k, sbb, lo_b, hi_b, (f_cnt, e_cnt))
        cpos = _copy_positions(e_cnt)[0]
        kk = ksrc if ksrc is not None else np.arange(K, dtype=np.int64)
        e_of = e_cnt[kk]
        slots = [np.flatnonzero(e_of > q) for q in range(int(e_of.max()) if e_of.size else 0)]
        src = np.concatenate(slots) if slots else np.zeros(0, np.int64)
        lev = np.concatenate([np.full(t.size, q, np.int64) for q, t in enumerate(slots)]) if slots else src
        sideB = _Side(sideBo.mat[cpos[kk[src], lev]], sideBo.own_src, sideBo.own_shift, src,
                      sideA.inner_shift[src] + lev * sbb)
    else:
        B1 = B if ksrc is None else B[ksrc]  # B's rows duplicated for A's inner copies
        sideB = _unpack_operand(B1, 1, strategy_b, sideA.inner_shift, sbb, lo_b, hi_b)
    A2 = sideA.mat if sideB.inner_src is None else sideA.mat[:, sideB.inner_src]
    return UnpackedPair(A2, sideB.mat, sideA.own_src, sideA.own_shift, sideB.own_src, sideB.own_shift,
                 sideB.inner_shift)


# ---------------------------------------------------------------------------------------------
# public single-operand API
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowUnpack:
    """Result of :func:`unpack_rows`: ``A == P^T diag(scales) matrix``.

    ``matrix`` (M' x K) int64, every entry in range; ``index`` (M',) the source row of
    each row; ``shifts`` (M',) with ``scales = 2**shifts`` (int64). Row i of A is the
    sum over ``{r : index[r] == i}`` of ``scales[r] * matrix[r]``.
    """

    matrix: np.ndarray
    index: np.ndarray
    shifts: np.ndarray
    bits: int

    @property
    def scales(self) -> np.ndarray:
        """int64 ``2**shifts`` (OperandRangeError if a scale reaches 2**63)."""
        return _scales_from_shifts(self.shifts, "row scales")


@dataclass(frozen=True)
class ColUnpack:
    """Result of :func:`unpack_cols`: ``A @ B == a @ diag(scales) @ b``.

    ``a`` (M x K'), ``b`` (K' x N) int64; ``index`` (K',) source inner index of each
    inner line; ``shifts`` (K',) inner shifts, ``scales = 2**shifts``.
    """

    a: np.ndarray
    b: np.ndarray
    index: np.ndarray
    shifts: np.ndarray
    bits: int

    @property
    def scales(self) -> np.ndarray:
        """int64 ``2**shifts`` (OperandRangeError if a scale reaches 2**63)."""
        return _scales_from_shifts(self.shifts, "inner scales")


@dataclass(frozen=True)
class BothUnpack:
    """Result of :func:`unpack_both` / :func:`unpack_plan` / :func:`unpack`.

    ``A @ B == P^T diag(row_scales) (a @ diag(scales) @ b)``: ``a`` (M' x K'), ``b``
    (K' x N); ``index``/``row_shifts`` (M',) source row and shift of each row of ``a``;
    ``inner_index``/``shifts`` (K',) source inner index and shift of each inner line.
    """

    a: np.ndarray
    b: np.ndarray
    index: np.ndarray
    row_shifts: np.ndarray
    inner_index: np.ndarray
    shifts: np.ndarray
    bits: int
    strategy: str

    @property
    def row_scales(self) -> np.ndarray:
        """int64 ``2**row_shifts``."""
        return _scales_from_shifts(self.row_shifts, "row scales")

    @property
    def scales(self) -> np.ndarray:
        """int64 ``2**shifts`` (inner scales)."""
        return _scales_from_shifts(self.shifts, "inner scales")


def _operands(A: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
    A64 = _matrix64(A, "A")
    B64 = _matrix64(B, "B")
    if A64.shape[1] != B64.shape[0]:
        raise ShapeError(f"inner dimensions differ: A is {A64.shape[0]}x{A64.shape[1]} (M x K) but B is "
                         f"{B64.shape[0]}x{B64.shape[1]} (K x N)")
    return A64, B64


def unpack_rows(A: Any, bits: int, *, admit_min: bool = False) -> RowUnpack:
    """UnpackRow: split every row holding an out-of-range entry, level by level.

    Each pass takes the newest block of rows; every row of it with an entry
    ``|x| >= 2**(bits-1)`` is replaced by its low digits ``x mod s`` and its high
    digits ``floor(x / s)`` are appended (in row order) as a new block with scale
    ``s**level``. Output order: the M original rows (low parts where split), then the
    level-1 rows, then level 2, ...

    >>> r = unpack_rows(np.array([[1, 9], [2, 3]]), 4)
    >>> r.matrix.tolist(), r.index.tolist(), r.scales.tolist()
    ([[1, 1], [2, 3], [0, 1]], [0, 1, 0], [1, 1, 8])
    """
    b = _check_bits(bits)
    X = _matrix64(A, "A")
    lo, hi = _range(b, admit_min)
    mat, src, sh = _split_levels(X, 0, b - 1, lo, hi)
    return RowUnpack(mat.copy() if mat is X else mat, src, sh, b)


def unpack_cols(A: Any, B: Any, bits: int, scales: Any = None, *, admit_min: bool = False) -> ColUnpack:
    """UnpackColumn: :func:`unpack_rows` over A's columns (the inner dimension).

    The matching rows of ``B`` (K x N) are duplicated and the inner scale vector
    (``scales``, K positive powers of two, default ones) is extended by ``scale * s``.
    ``A @ diag(scales) @ B == a @ diag(result.scales) @ b``.

    >>> r = unpack_cols(np.array([[9, 1]]), np.array([[1], [2]]), 4)
    >>> r.a.tolist(), r.b.tolist(), r.scales.tolist()
    ([[1, 1, 1]], [[1], [2], [1]], [1, 1, 8])
    """
    b = _check_bits(bits)
    A64, B64 = _operands(A, B)
    shifts = _shifts_from_scales(scales, A64.shape[1], "scales")
    lo, hi = _range(b, admit_min)
    mat, src, sh = _split_levels(A64, 1, b - 1, lo, hi)
    return ColUnpack(mat.copy() if mat is A64 else mat, B64[src], src, shifts[src] + sh, b)


def unpack(A: Any, B: Any, bits: int, strategy: str = "both", scales: Any = None, *,
           admit_min: bool = False) -> BothUnpack:
    """Unpack A (against its partner B) with any strategy in :data:`STRATEGIES`.

    The general form ``A @ diag(scales) @ B == P^T diag(row_scales) (a @ diag(s') @ b)``.
    ``plan`` here minimizes ``M' * K'`` (B's later unpacking is not known).
    """
    b = _check_bits(bits)
    strat = _check_strategy(strategy, "strategy")
    A64, B64 = _operands(A, B)
    shifts = _shifts_from_scales(scales, A64.shape[1], "scales")
    lo, hi = _range(b, admit_min)
    counts = None
    if strat == "plan":
        L = _k_levels(A64, _digits(b - 1, lo, hi))
        counts = _plan_levels(L, np.ones(A64.shape[0], np.int64), np.ones(A64.shape[1], np.int64))
    side = _unpack_operand(A64, 0, strat, shifts, b - 1, lo, hi, counts)
    isrc = side.inner_src if side.inner_src is not None else np.arange(A64.shape[1], dtype=np.int64)
    mat = side.mat.copy() if side.mat is A64 else side.mat
    return BothUnpack(mat, B64[isrc], side.own_src, side.own_shift, isrc, side.inner_shift, b, strat)


def unpack_both(A: Any, B: Any, bits: int, scales: Any = None, *, admit_min: bool = False) -> BothUnpack:
    """UnpackBoth, the paper's greedy: one line per step.

    Each step counts the out-of-range entries per row and per column of the current
    matrix and splits the line with the most; ties go to the row, then to the lowest
    index. A split row's high digits become a new row (appended after all rows, scale
    times s, same source row); a split column's become a new column, with B's matching
    row duplicated and the inner scale times s.

    >>> r = unpack_both(np.array([[9, 9], [9, 1]]), np.eye(2, dtype=np.int64), 4)
    >>> r.a.tolist(), r.index.tolist(), r.row_scales.tolist(), r.scales.tolist()
    ([[1, 1], [1, 1], [1, 1], [1, 0]], [0, 1, 0, 1], [1, 1, 8, 8], [1, 1])
    """
    return unpack(A, B, bits, "both", scales, admit_min=admit_min)


def unpack_plan(A: Any, B: Any, bits: int, scales: Any = None, *, admit_min: bool = False) -> BothUnpack:
    """intsim's work-minimizing unpacking of A alone (see the module docs): the
    digit-copy counts per row and per column that minimize ``M' * K'`` exactly.

    >>> A = np.array([[100, 1, 1], [100, 1, 1], [100, 1, 1]])
    >>> r = unpack_plan(A, np.eye(3, dtype=np.int64), 4)
    >>> r.a.shape, r.scales.tolist()  # one column split twice beats three rows split twice
    ((3, 5), [1, 1, 1, 8, 64])
    """
    return unpack(A, B, bits, "plan", scales, admit_min=admit_min)


# ---------------------------------------------------------------------------------------------
# stats without materializing (for reports)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnpackStats:
    """Shapes of an unpacked GEMM: ``shape`` (M, K, N), ``unpacked_shape`` (M', K', N'),
    ``n_gemms`` (distinct inner shifts = low-bit GEMMs) and ``ratio`` = M'K'N' / (MKN)."""

    shape: tuple[int, int, int]
    unpacked_shape: tuple[int, int, int]
    n_gemms: int

    @property
    def work(self) -> int:
        """M' * K' * N'."""
        m, k, n = self.unpacked_shape
        return m * k * n

    @property
    def ratio(self) -> float:
        """M'K'N' / (MKN); 1.0 for an empty GEMM."""
        m, k, n = self.shape
        return self.work / (m * k * n) if m * k * n else 1.0


def _copy_shifts(counts: np.ndarray, step: int) -> np.ndarray:
    """Shifts of the copies of each line, copy q of line k at q * step, lines in order."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(total, dtype=np.int64) - starts) * step


def _distinct_inner(a_shift: np.ndarray, a_src: np.ndarray, e: np.ndarray, sbb: int) -> int:
    """Distinct values of a_shift[k'] + q * sbb over A's inner lines k' and q < e[a_src[k']]."""
    if a_shift.size == 0:
        return 0
    pairs = np.unique(np.stack([a_shift, e[a_src]]), axis=1)
    vals: set[int] = set()
    for sh, cnt in pairs.T.tolist():
        vals.update(range(sh, sh + cnt * sbb, sbb))
    return len(vals)


def _stats_from_levels(LA: np.ndarray, LBt: np.ndarray, strategy: str, sa: int, sbb: int) -> UnpackStats:
    """Shapes of ``strategy`` on both operands (row, col or plan) from the digit counts."""
    M, K = LA.shape
    N = LBt.shape[0]
    ones_m, ones_k, ones_n = np.ones(M, np.int64), np.ones(K, np.int64), np.ones(N, np.int64)
    if strategy == "plan":
        a, c, f, e = _joint_plan(LA, LBt)
    elif strategy == "row":
        a, c = (LA.max(axis=1) if K else ones_m), ones_k
        f, e = (LBt.max(axis=1) if K else ones_n), ones_k
    else:
        a, c = ones_m, (LA.max(axis=0) if M else ones_k)
        f, e = ones_n, (LBt.max(axis=0) if N else ones_k)
    # A's inner copies of k carry shifts q * sa (q < c[k]); B adds q' * sbb (q' < e[k]).
    n_gemms = _distinct_inner(_copy_shifts(c, sa), np.repeat(np.arange(K, dtype=np.int64), c), e, sbb)
    return UnpackStats((M, K, N), (int(a.sum()), int(c @ e), int(f.sum())), n_gemms)


def _pair_stats(A64: np.ndarray, B64: np.ndarray, sa_name: str, sb_name: str, bits_a: int, bits_b: int,
                admit_min: bool) -> UnpackStats:
    """Stats by running the unpacking (any strategies)."""
    p = _unpack_pair(A64, B64, sa_name, sb_name, bits_a, bits_b, admit_min)
    return UnpackStats((A64.shape[0], A64.shape[1], B64.shape[1]), (p.a.shape[0], p.a.shape[1], p.b.shape[1]),
                       int(np.unique(p.inner_shift).size))


def unpack_stats(A: Any, B: Any, strategy_a: str = "row", strategy_b: str = "row", bits: int | tuple[int, int] = 8,
                 *, admit_min: bool = False) -> UnpackStats:
    """The shapes and GEMM count :func:`unpack_matmul` would produce, without the GEMMs.

    ``bits`` is an int or ``(bits_a, bits_b)``. When both operands use ``row``, ``col``
    or ``plan``, the figures come from per-entry digit counts without building the
    unpacked matrices; otherwise the unpacking is run.

    >>> st = unpack_stats(np.array([[100, -3], [2, 1]]), np.array([[-100, 5], [7, 0]]), "row", "col", 4)
    >>> st.unpacked_shape, st.n_gemms, st.ratio
    ((4, 4, 2), 3, 4.0)
    """
    sa_name = _check_strategy(strategy_a, "strategy_a")
    sb_name = _check_strategy(strategy_b, "strategy_b")
    if sa_name == sb_name:
        return compare_strategies(A, B, bits, (sa_name,), admit_min=admit_min)[sa_name]
    bits_a, bits_b = _pair_bits(bits)
    A64, B64 = _operands(A, B)
    return _pair_stats(A64, B64, sa_name, sb_name, bits_a, bits_b, admit_min)


def compare_strategies(A: Any, B: Any, bits: int | tuple[int, int] = 8, strategies: tuple[str, ...] = STRATEGIES,
                       *, admit_min: bool = False) -> dict[str, UnpackStats]:
    """:func:`unpack_stats` for each strategy used on both operands, sharing the digit counts.

    >>> r = compare_strategies(np.array([[100, 1, 1]] * 3), np.eye(3, dtype=np.int64), 4)
    >>> {k: v.unpacked_shape for k, v in r.items()}
    {'row': (9, 3, 3), 'col': (3, 5, 3), 'both': (3, 5, 3), 'plan': (3, 5, 3)}
    """
    bits_a, bits_b = _pair_bits(bits)
    if isinstance(strategies, str) or not isinstance(strategies, (tuple, list)):
        raise ConfigError(f"strategies must be a tuple of names from {', '.join(STRATEGIES)}, "
                          f"e.g. ('row',), got {short_repr(strategies)}")
    names = [_check_strategy(s, "strategy") for s in strategies]
    A64, B64 = _operands(A, B)
    out: dict[str, UnpackStats] = {}
    if any(n != "both" for n in names):
        (lo_a, hi_a), (lo_b, hi_b) = _range(bits_a, admit_min), _range(bits_b, admit_min)
        LA = _k_levels(A64, _digits(bits_a - 1, lo_a, hi_a))
        LBt = _k_levels(B64, _digits(bits_b - 1, lo_b, hi_b)).T
    for n in names:
        if n == "both":
            out[n] = _pair_stats(A64, B64, n, n, bits_a, bits_b, admit_min)
        else:
            out[n] = _stats_from_levels(LA, LBt, n, bits_a - 1, bits_b - 1)
    return out


# ---------------------------------------------------------------------------------------------
# unpack_matmul
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LowBitGemm:
    """One low-bit GEMM of an :class:`UnpackResult`: the inner lines with shift ``inner_shift``.

    ``shape`` (M', k, N'); ``n_overflow`` outputs with an overflow; ``first_overflow``
    the first such output in row-major order as (row of A', column of B', k step) or
    None; ``method`` how :func:`intsim.matmul` computed it; ``events`` the
    :attr:`GemmResult.events <intsim.hw.gemm.GemmResult.events>` of this GEMM (indices are
    (row of A', column of B')) and ``overflowed`` whether there are any.
    """

    inner_shift: int
    shape: tuple[int, int, int]
    n_overflow: int
    first_overflow: tuple[int, int, int] | None
    method: str
    events: tuple[RegisterEvent, ...] = ()

    @property
    def overflowed(self) -> bool:
        """True when a register of this low-bit GEMM overflowed."""
        return bool(self.events)


@dataclass(frozen=True)
class UnpackResult:
    """The outcome of :func:`unpack_matmul`.

    Attributes
    ----------
    values:
        (M, N) reassembled result: int64 when every output fits int64 (always the
        case for int64 inputs whose exact product fits), otherwise an object array of
        Python ints holding the exact values. Equal to the exact product ``A @ B``
        whenever ``n_overflow == 0``.
    overflow:
        bool (M, N): some low-bit GEMM output that feeds this output overflowed.
    gemms:
        one :class:`LowBitGemm` per low-bit GEMM, by ascending inner shift.
    ops:
        :class:`~intsim.OpCounts`: the low-bit GEMMs plus the reassembly, one shift
        (when the total shift is not 0) and one add (except the first into each
        output) per low-bit GEMM output, at :data:`REASSEMBLY_BITS` bits.
    shape, unpacked_shape:
        (M, K, N) and (M', K', N').
    events, overflowed:
        the overflow report shared with the operators' results (see :attr:`events`).
    """

    values: np.ndarray
    overflow: np.ndarray
    gemms: tuple[LowBitGemm, ...]
    ops: OpCounts
    shape: tuple[int, int, int]
    unpacked_shape: tuple[int, int, int]
    strategy_a: str
    strategy_b: str
    bits_a: int
    bits_b: int
    admit_min: bool
    datapath: Datapath = field(repr=False)
    _events: tuple[RegisterEvent, ...] = field(default=(), repr=False, compare=False)

    @property
    def events(self) -> tuple[RegisterEvent, ...]:
        """One :class:`~intsim.regs.registers.RegisterEvent` per datapath register that overflowed
        in some low-bit GEMM, in pipeline order (``"tree"``, then ``"acc"``; op ``"unpack_matmul"``,
        the datapath's width and policy of that register). ``count``: the outputs (r, c) of
        ``A @ B`` fed by a low-bit output whose register overflowed; ``index``: the first of them
        in row-major order; ``value``: the first value that did not fit that register (exact,
        before the policy) at the first low-bit output feeding ``index`` (low-bit GEMMs by
        ascending inner shift, each in row-major order). Each GEMM's own events, in its
        coordinates, are in ``gemms[g].events``.

        >>> from intsim import Datapath, IntType
        >>> A = np.array([[7] * 8, [1] * 8]); B = np.array([[7, 0]] * 8)
        >>> r = unpack_matmul(A, B, Datapath(IntType(4), IntType(4), acc_bits=8, overflow="wrap"))
        >>> [(e.op, e.step, e.count, e.index, e.value) for e in r.events], r.overflowed
        ([('unpack_matmul', 'acc', 1, (0, 0), 147)], True)
        """
        return self._events

    @property
    def overflowed(self) -> bool:
        """True when some low-bit register overflowed (``events`` is not empty; ``overflow.any()``)."""
        return bool(self._events)

    @property
    def n_gemms(self) -> int:
        """Number of low-bit GEMMs (distinct inner shifts)."""
        return len(self.gemms)

    @property
    def n_overflow(self) -> int:
        """Outputs (of the M x N result) touched by a low-bit overflow."""
        return int(np.count_nonzero(self.overflow))

    @property
    def unpack_ratio(self) -> float:
        """(M' K' N') / (M K N), the GEMM work after unpacking over before; 1.0 if MKN = 0."""
        m, k, n = self.shape
        m2, k2, n2 = self.unpacked_shape
        return (m2 * k2 * n2) / (m * k * n) if m * k * n else 1.0

    @property
    def row_factor(self) -> float:
        """M' / M (A's rows; 1.0 if M = 0)."""
        return self.unpacked_shape[0] / self.shape[0] if self.shape[0] else 1.0

    @property
    def inner_factor(self) -> float:
        """K' / K (inner lines; 1.0 if K = 0)."""
        return self.unpacked_shape[1] / self.shape[1] if self.shape[1] else 1.0

    @property
    def col_factor(self) -> float:
        """N' / N (B's columns; 1.0 if N = 0)."""
        return self.unpacked_shape[2] / self.shape[2] if self.shape[2] else 1.0

    @property
    def is_wide(self) -> bool:
        """True when ``values`` is an object array (some output does not fit int64)."""
        return self.values.dtype == object


def _pair_bits(bits: Any) -> tuple[int, int]:
    if isinstance(bits, (tuple, list)):
        if len(bits) != 2:
            raise ConfigError(f"bits must be an int or a pair (bits_a, bits_b), got {short_repr(bits)}")
        return _check_bits(bits[0], "bits_a"), _check_bits(bits[1], "bits_b")
    b = _check_bits(bits)
    return b, b


def _datapath_bits(dp: Datapath, bits: Any) -> tuple[int, int]:
    for name in ("a", "b"):
        t = getattr(dp, name)
        if not t.signed:
            raise ConfigError(f"datapath operand {name} is {t.name}: IM-Unpack digits are signed "
                              "(the top digit carries the sign); use a signed operand type")
        if t.bits < 2:
            raise ConfigError(f"datapath operand {name} is {t.name}: unpacking needs at least 2 bits")
    if bits is None:
        return dp.a.bits, dp.b.bits
    ba, bb = _pair_bits(bits)
    if ba > dp.a.bits or bb > dp.b.bits:
        raise ConfigError(f"unpack bits ({ba}, {bb}) exceed the datapath operands ({dp.a.name}, {dp.b.name})")
    return ba, bb


def _reassembly_ops(n_gemms_shifts: list[int], a_shift: np.ndarray, b_shift: np.ndarray, M: int, N: int) -> OpCounts:
    ops = OpCounts()
    Mp, Np = a_shift.size, b_shift.size
    if not n_gemms_shifts:
        return ops
    terms = len(n_gemms_shifts) * Mp * Np
    zero_terms = 0
    if 0 in n_gemms_shifts:
        zero_terms = int(np.count_nonzero(a_shift == 0)) * int(np.count_nonzero(b_shift == 0))
    ops.add("shift", (REASSEMBLY_BITS,), terms - zero_terms)
    ops.add("add", (REASSEMBLY_BITS,), terms - M * N)
    return ops


def _resolve(A: Any, B: Any, datapath: Datapath | None, strategy_a: str, strategy_b: str, bits: Any,
             admit_min: bool) -> tuple[Datapath, str, str, int, int, tuple[int, int, int], UnpackedPair]:
    """The checked arguments of :func:`unpack_matmul` and :func:`unpack_operands`, and the pair."""
    dp = as_datapath(datapath)
    bits_a, bits_b = _datapath_bits(dp, bits)
    sa_name = _check_strategy(strategy_a, "strategy_a")
    sb_name = _check_strategy(strategy_b, "strategy_b")
    A64, B64 = _operands(A, B)
    pair = _unpack_pair(A64, B64, sa_name, sb_name, bits_a, bits_b, admit_min)
    return dp, sa_name, sb_name, bits_a, bits_b, (A64.shape[0], A64.shape[1], B64.shape[1]), pair


def unpack_operands(A: Any, B: Any, datapath: Datapath | None = None, strategy_a: str = "row",
                    strategy_b: str = "row", *, bits: int | tuple[int, int] | None = None,
                    admit_min: bool = False) -> UnpackedPair:
    """The unpacked operands that :func:`unpack_matmul` multiplies (same arguments, same
    checks), with the maps that reassemble the product: for streaming them to hardware or
    checking a design's low-bit GEMMs one by one.

    >>> from intsim import Datapath, IntType
    >>> p = unpack_operands([[100, -3], [2, 1]], [[1, 0], [0, 1]], Datapath(IntType(4), IntType(4)))
    >>> p.a_src.tolist(), p.a_shift.tolist()  # row 0 = [4, 5] + ([4, 7] << 3) + ([1, -1] << 6)
    ([0, 1, 0, 0], [0, 0, 3, 6])
    >>> p.a.tolist()
    [[4, 5], [2, 1], [4, 7], [1, -1]]
    """
    return _resolve(A, B, datapath, strategy_a, strategy_b, bits, admit_min)[-1]


def unpack_matmul(A: Any, B: Any, datapath: Datapath | None = None, strategy_a: str = "row",
                  strategy_b: str = "row", *, bits: int | tuple[int, int] | None = None,
                  admit_min: bool = False) -> UnpackResult:
    """Exact ``A @ B`` of int64-representable integer matrices on a low-bit datapath.

    A (M x K) is unpacked with ``strategy_a`` to ``bits_a`` bits, then B (K x N) with
    ``strategy_b`` to ``bits_b`` bits against the unpacked A (its columns are output
    columns, its rows inner lines). ``bits`` defaults to the datapath's operand widths
    (``datapath.a.bits``, ``datapath.b.bits``); both types must be signed. The inner
    lines are grouped by total inner shift; each group is one low-bit GEMM run by
    :func:`intsim.matmul` on ``datapath`` (operands checked against its types,
    accumulators under its overflow policy: ``raise`` re-raises the
    :class:`~intsim.core.errors.AccumulatorOverflow` naming the low-bit GEMM and the
    original output). Reassembly: each low-bit output is shifted left by its inner,
    row and column shifts and added into its original output, in exact int64 with
    overflow detection; if a term or sum leaves int64, the reassembly is redone in
    Python ints and ``values`` is an object array unless every output fits int64.

    Without accumulator overflow the result is the exact product for every input.

    >>> import numpy as np
    >>> from intsim import Datapath, IntType
    >>> A = np.array([[100, -3], [2, 1]]); B = np.array([[-100, 5], [7, 0]])
    >>> r = unpack_matmul(A, B, Datapath(IntType(4), IntType(4), acc_bits=16), "row", "col")
    >>> r.values.tolist() == (A @ B).tolist(), r.n_gemms, round(r.unpack_ratio, 2)
    (True, 3, 4.0)
    """
    dp, sa_name, sb_name, bits_a, bits_b, (M, K, N), pair = _resolve(A, B, datapath, strategy_a, strategy_b, bits,
                                                                     admit_min)
    Ap = pair.a.astype(dp.a.dtype)  # narrow first: the reordering below then moves fewer bytes
    Bp = pair.b.astype(dp.b.dtype)
    Mp, Kp = Ap.shape
    Np = Bp.shape[1]
    ishift = pair.inner_shift
    if ishift.size > 1 and np.any(ishift[1:] < ishift[:-1]):  # group equal shifts into slices
        order = np.argsort(ishift, kind="stable")
        Ap, Bp, ishift = Ap[:, order], Bp[order], ishift[order]
    cuts = np.flatnonzero(ishift[1:] != ishift[:-1]) + 1
    starts = np.concatenate([[0], cuts]) if ishift.size else np.zeros(0, np.int64)
    ends = np.concatenate([cuts, [ishift.size]]) if ishift.size else np.zeros(0, np.int64)
    ops = OpCounts()
    gemms: list[LowBitGemm] = []
    results: list[tuple[int, GemmResult]] = []
    overflow = np.zeros((M, N), bool)
    for k0, k1 in zip(starts.tolist(), ends.tolist(), strict=True):
        t = int(ishift[k0])
        a_t = Ap if k1 - k0 == Kp else Ap[:, k0:k1]
        b_t = Bp if k1 - k0 == Kp else Bp[k0:k1]
        try:
            g = matmul(a_t, b_t, dp)
        except AccumulatorOverflow as exc:
            r, q = exc.index
            raise AccumulatorOverflow(
                f"low-bit GEMM with inner shift {t} ({Mp}x{k1 - k0}x{Np}): {exc} "
                f"[its output ({r}, {q}) feeds output ({int(pair.a_src[r])}, {int(pair.b_src[q])}) of A @ B]",
                index=exc.index, k=exc.k, value=exc.value, bits=exc.bits) from None
        ops += g.ops
        first = None
        if g.n_overflow:
            rr, qq = np.nonzero(g.overflow)
            first = (int(rr[0]), int(qq[0]), int(g.first_overflow_k[rr[0], qq[0]]))
            overflow[pair.a_src[rr], pair.b_src[qq]] = True
        gemms.append(LowBitGemm(t, (Mp, k1 - k0, Np), g.n_overflow, first, g.method, g.events))
        results.append((t, g))
    ops += _reassembly_ops([t for t, _ in results], pair.a_shift, pair.b_shift, M, N)
    if len(results) == 1 and results[0][0] == 0 and (Mp, Np) == (M, N) and not pair.a_shift.any() \
            and not pair.b_shift.any():
        values = results[0][1].values  # nothing was split: the low-bit GEMM is the product
    else:
        values = np.zeros((M, N), np.int64)
        for t, g in results:
            if not _k_reassemble(values, g.values, pair.a_src, pair.a_shift, pair.b_src, pair.b_shift, t):
                values = _reassemble_exact(results, pair, M, N)
                break
    events = _unpack_events(results, pair, N, dp) if overflow.any() else ()
    return UnpackResult(values, overflow, tuple(gemms), ops, (M, K, N), (Mp, Kp, Np), sa_name, sb_name,
                        bits_a, bits_b, admit_min, dp, events)


def _unpack_events(results: list[tuple[int, GemmResult]], pair: UnpackedPair, N: int,
                   dp: Datapath) -> tuple[RegisterEvent, ...]:
    """The events of :attr:`UnpackResult.events` from the low-bit GEMMs' overflowing outputs."""
    events = []
    for step in ("tree", "acc"):
        orig, found = [], []
        for _, g in results:
            for h in g._overflows:
                if h.step == step:
                    r, q = np.divmod(h.flat, g.values.shape[1])
                    orig.append(pair.a_src[r] * N + pair.b_src[q])
                    found.append(h)
        if not orig:
            continue
        flat = np.concatenate(orig)
        p = int(np.argmin(flat))  # the first occurrence: earliest GEMM, then row-major
        for o, h in zip(orig, found, strict=True):
            if p < o.size:
                value = h.value(p)
                break
            p -= o.size
        bits, policy = register_of(dp, step)
        index = divmod(int(flat.min()), N)
        events.append(RegisterEvent("unpack_matmul", step, bits, True, int(np.unique(flat).size), index, value,
                                    policy))
    return tuple(events)


def _reassemble_exact(results: list[tuple[int, GemmResult]], pair: UnpackedPair, M: int, N: int) -> np.ndarray:
    """The reassembly in Python ints; int64 if every output fits, else an object array."""
    C = np.empty((M, N), dtype=object)
    C.fill(0)
    rows = pair.a_src[:, None]
    cols = pair.b_src[None, :]
    for t, g in results:
        sh = (t + pair.a_shift[:, None] + pair.b_shift[None, :]).astype(object)
        terms = g.values.astype(object) * np.left_shift(np.ones(sh.shape, dtype=object), sh)
        np.add.at(C, (np.broadcast_to(rows, sh.shape), np.broadcast_to(cols, sh.shape)), terms)
    flat = C.reshape(-1)
    if flat.size == 0 or all(-(2**63) <= v < 2**63 for v in flat):
        return C.astype(np.int64)
    return C
