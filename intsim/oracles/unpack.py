"""IM-Unpack (Zeng, Sankaralingam, Singh, ICML 2024) on Python ints and lists: the algorithms
of the official reference (``vsingh-group/im-unpack``,
``unpack.py``), which :mod:`intsim.hw.unpack` follows bit for bit.

Base ``s = 2**(b-1)``; splitting a line replaces it by its low digits ``x mod s`` and appends its
high digits ``floor(x / s)`` as a new line with scale times ``s``.
"""

from __future__ import annotations

from collections.abc import Sequence


def in_range(v: int, b: int, admit: bool = False) -> bool:
    """Whether ``v`` fits a ``b``-bit multiplier: ``|v| < 2**(b-1)``, or ``-2**(b-1) <= v < 2**(b-1)``
    when ``admit`` (``admit_min``). Specifies :func:`intsim.hw.unpack.in_range` per entry.

    >>> in_range(-8, 4), in_range(-8, 4, admit=True), in_range(7, 4)
    (False, True, True)
    """
    s = 1 << (b - 1)
    return (-s if admit else -s + 1) <= v <= s - 1


def unpack_rows(A: list[list[int]], b: int, admit: bool = False) -> tuple[list[list[int]], list[int], list[int]]:
    """UnpackRow (IM-Unpack's row strategy), level-synchronous: every row with an out-of-range entry is
    split, all in one pass, the new rows appended in index order; repeat on the newest block.

    Returns ``(rows, source row index, scale)`` per unpacked row, as
    :func:`intsim.hw.unpack.unpack_rows` (``matrix``, ``index``, ``scales``); applied to the
    transpose it specifies :func:`intsim.hw.unpack.unpack_cols`.

    >>> unpack_rows([[-100]], 4)
    ([[4], [3], [-2]], [0, 0, 0], [1, 8, 64])
    """
    s = 1 << (b - 1)
    blocks = [[list(r) for r in A]]
    idx = [list(range(len(A)))]
    sc = [[1] * len(A)]
    while True:
        X = blocks[-1]
        m = [i for i, r in enumerate(X) if any(not in_range(v, b, admit) for v in r)]
        if not m:
            break
        new = []
        for i in m:
            new.append([v // s for v in X[i]])
            X[i] = [v % s for v in X[i]]
        blocks.append(new)
        idx.append([idx[-1][i] for i in m])
        sc.append([sc[-1][i] * s for i in m])
    return [r for blk in blocks for r in blk], [i for blk in idx for i in blk], [c for blk in sc for c in blk]


def unpack_both(A: list[list[int]], B: list[list[int]], b: int, admit: bool = False
                ) -> tuple[list[list[int]], list[list[int]], list[int], list[int], list[int]]:
    """UnpackBoth, the paper's greedy: each step splits the single row or column
    of A with the most out-of-range entries (ties to the row, then the lowest index). Our B is
    K x N, so a split column of A duplicates that row of B.

    Returns ``(A unpacked, B extended, source row per row, row scale, column scale)`` as
    :func:`intsim.hw.unpack.unpack_both` (``a``, ``b``, ``index``, ``row_shifts``, ``shifts``).

    >>> unpack_both([[9, 1]], [[1], [1]], 3)
    ([[1, 1], [2, 0]], [[1], [1]], [0, 0], [1, 4], [1, 1])
    """
    s = 1 << (b - 1)
    Au = [list(r) for r in A]
    Be = [list(r) for r in B]
    K = len(B)
    p_idx, p_sc, sc = list(range(len(A))), [1] * len(A), [1] * K
    while True:
        rc = [sum(not in_range(v, b, admit) for v in row) for row in Au]
        cc = [sum(not in_range(row[j], b, admit) for row in Au) for j in range(len(sc))]
        r = max(range(len(rc)), key=rc.__getitem__) if rc else -1
        c = max(range(len(cc)), key=cc.__getitem__) if cc else -1
        mr = rc[r] if rc else 0
        mc = cc[c] if cc else 0
        if mr == 0 and mc == 0:
            break
        if mr >= mc:
            Au.append([v // s for v in Au[r]])
            Au[r] = [v % s for v in Au[r]]
            p_idx.append(p_idx[r])
            p_sc.append(p_sc[r] * s)
        else:
            for row in Au:
                row.append(row[c] // s)
                row[c] = row[c] % s
            Be.append(list(Be[c]))
            sc.append(sc[c] * s)
    return Au, Be, p_idx, p_sc, sc


def unpack_matmul(A: Sequence[Sequence[int]], B: Sequence[Sequence[int]], n: int) -> list[list[int]]:
    """The exact integer product ``A (M x K) @ B (K x n)``, which :func:`intsim.hw.unpack.unpack_matmul`
    reproduces for every strategy pair (``n`` is given so that K may be 0).

    >>> unpack_matmul([[2**40, -1]], [[2**40], [3]], 1)
    [[1208925819614629174706173]]
    """
    M, K = len(A), len(B)
    return [[sum(int(A[i][k]) * int(B[k][j]) for k in range(K)) for j in range(n)] for i in range(M)]
