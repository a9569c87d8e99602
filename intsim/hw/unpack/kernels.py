"""The numba kernels of IM-Unpack (all ``@njit(cache=True)``) and their constants.

Digit levels of entries, the paper's greedy UnpackBoth, the ``plan`` matrix builder,
the exact int64 reassembly, and the bipartite cover graph and its min-cut solver used
by the ``plan`` strategy (see :mod:`intsim.hw.unpack` for the method).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MAX64 = np.int64(2**63 - 1)
_MIN64 = np.int64(-(2**63))

#: Indices of the digit parameter vector ``dg`` (int64) of the unpacking kernels: the digit width
#: ``sb = bits - 1`` (the base is ``s = 2**sb``), the in-range interval ``[lo, hi]`` and, for
#: :func:`k_plan_build`, 1 when the operand is stored transposed (inner x own lines).
D_SHIFT, D_LO, D_HI, D_TRANSPOSED = range(4)

#: The cover graph of :func:`k_cover_graph`: the source and sink nodes, the first node of a line
#: (the nodes of the rows, then of the columns, follow) and the edge types.
SOURCE, SINK, FIRST_LINE_NODE = 0, 1, 2
E_REVERSE, E_SOURCE, E_SINK, E_MIDDLE = range(4)


# ---------------------------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def k_levels_into(X, dg, out):
    """out = the number of floor digits of every entry of X (see :func:`entry_levels`); out may be of
    any integer dtype (at most 64 digits)."""
    sb, lo, hi = dg[D_SHIFT], dg[D_LO], dg[D_HI]
    m, n = X.shape
    for i in range(m):
        for j in range(n):
            x = X[i, j]
            L = 1
            while x < lo or x > hi:
                x >>= sb
                L += 1
            out[i, j] = L


@njit(cache=True)
def k_levels(X, dg):
    """The number of floor digits of every entry of X (see :func:`entry_levels`), int64."""
    out = np.empty(X.shape, np.int64)
    k_levels_into(X, dg, out)
    return out


@njit(cache=True, nogil=True)
def k_in_range(X, lo, hi):
    """True when every entry of the 2-D array X lies in [lo, hi] (stops at the first that does not)."""
    m, n = X.shape
    for i in range(m):
        row = X[i]
        bad = False
        for j in range(n):
            v = row[j]
            bad |= (v < lo) | (v > hi)
        if bad:
            return False
    return True


@njit(cache=True, nogil=True)
def k_shift_add(acc, s_acc, G, s):
    """acc = (acc << s_acc) + (G << s) elementwise in int64, in one pass (acc and G of one shape); the
    caller has proved that no term or sum leaves int64."""
    m, n = acc.shape
    for i in range(m):
        a = acc[i]
        g = G[i]
        for j in range(n):
            a[j] = (a[j] << s_acc) + (g[j] << s)


@njit(cache=True)
def _k_grow(a, cap):
    out = np.zeros(cap, np.int64)
    out[:a.shape[0]] = a
    return out


@njit(cache=True)
def _k_slack(n):
    """Spare lines allocated past n (and added at each growth): n // 8, at least 16; how much room
    the buffers have changes only the memory used, never the result."""
    return max(16, n // 8)


@njit(cache=True)
def k_both(X0, row_shift0, col_shift0, dg):
    """The paper's greedy UnpackBoth on int64 X0; returns (X, row_src, row_shift, col_src, col_shift).

    Out-of-range counts per row and column are updated incrementally at each split. New rows and
    columns are appended in the order they are split off (the buffers keep spare lines and grow
    when those run out); X is a view of the buffer.
    """
    sb, lo, hi = dg[D_SHIFT], dg[D_LO], dg[D_HI]
    m, n = X0.shape
    cap_r = m + _k_slack(m)
    cap_c = n + _k_slack(n)
    X = np.empty((cap_r, cap_c), np.int64)
    rc = np.zeros(cap_r, np.int64)
    cc = np.zeros(cap_c, np.int64)
    for i0 in range(0, m, 64):  # in 64 x 64 tiles: X0 may be a transposed view
        for j0 in range(0, n, 64):
            for i in range(i0, min(m, i0 + 64)):
                t = 0
                for j in range(j0, min(n, j0 + 64)):
                    v = X0[i, j]
                    X[i, j] = v
                    bad = 1 if (v < lo or v > hi) else 0
                    t += bad
                    cc[j] += bad
                rc[i] += t
    rsrc = np.zeros(cap_r, np.int64)
    rsh = np.zeros(cap_r, np.int64)
    csrc = np.zeros(cap_c, np.int64)
    csh = np.zeros(cap_c, np.int64)
    for i in range(m):
        rsrc[i] = i
        rsh[i] = row_shift0[i]
    for j in range(n):
        csrc[j] = j
        csh[j] = col_shift0[j]
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
                cap_r += _k_slack(cap_r)
                X2 = np.empty((cap_r, cap_c), np.int64)
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
                cap_c += _k_slack(cap_c)
                X2 = np.empty((cap_r, cap_c), np.int64)
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
    return X[:ir, :jc], rsrc[:ir].copy(), rsh[:ir].copy(), csrc[:jc].copy(), csh[:jc].copy()


@njit(cache=True)
def k_plan_build(X, a, c, row_pos, col_pos, dg, out):
    """Write each entry's minimal floor-digit string into its a[i] x c[k] block.

    Own line i, inner line k; digit j of the entry goes to own copy p = min(j, a[i]-1)
    and inner copy j - p (``row_pos``/``col_pos``: the position of each copy, sum(a) own and
    sum(c) inner lines in all). ``dg[D_TRANSPOSED]``: X is (inner x own) and so is the output.
    ``out``: zeros of the output's shape, any integer dtype that holds every digit. The first copy of
    every line is the line itself (``row_pos[i, 0] = i``, ``col_pos[k, 0] = k``: originals first), so
    an entry's lowest digit stays at its own place.
    """
    sb, lo, hi = dg[D_SHIFT], dg[D_LO], dg[D_HI]
    transposed = dg[D_TRANSPOSED] != 0
    mask = (np.int64(1) << sb) - 1
    for r in range(X.shape[0]):
        xr = X[r]
        orow = out[r]
        for q in range(X.shape[1]):
            x = xr[q]
            if lo <= x <= hi:  # one digit: the entry itself, at (r, q) (row_pos[i, 0] = i, col_pos[k, 0] = k)
                orow[q] = x
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


@njit(cache=True)
def k_reassemble(C, G, rsrc, rsh, csrc, csh, t):
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
def k_cover_graph(ell, tr, tc):
    """The bipartite cover graph of :func:`k_cover_solve`, in CSR form: the tuple
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
def k_cover_solve(graph, tr, tc, cx, cy):
    """Integer alpha, gamma >= 0 with alpha[i] + gamma[k] >= ell[i, k] minimizing
    ``sum(cx * alpha) + sum(cy * gamma)``, as a minimum s-t cut of :func:`k_cover_graph`.

    A vertex cover of the graph's pairs holds at least ell of the 2 * ell nodes of
    entry (i, k), so counting cover nodes per line is feasible; the prefix solutions
    are covers; so the minimum weighted cover (x in the cover: its source edge is cut;
    y: its sink edge is cut) is the optimum. Max flow: a greedy pass over the
    source-x-y-sink paths, then Dinic's algorithm. ``graph``: the tuple of :func:`k_cover_graph`.
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
