"""The integer GEMM of :func:`intsim.hw.gemm.matmul`, register by register on Python ints."""

from __future__ import annotations

from collections.abc import Sequence

from .rounding import fit


def matmul(A: Sequence[Sequence[int]], B: Sequence[Sequence[int]], acc_bits: int, overflow: str, k_chunk: int = 1,
           chunk_bits: int | None = None, chunk_overflow: str | None = None, bias: Sequence[int] | None = None,
           n: int | None = None) -> tuple[list[list[int]], list[list[bool]], list[list[int]], tuple | None]:
    """``A (M x K) @ B (K x N)`` on a datapath with an ``acc_bits`` accumulator, as
    :func:`intsim.hw.gemm.matmul` specifies it (its :class:`~intsim.hw.datapath.Datapath`).

    Per output ``(i, j)``: the register starts at ``bias[j]`` (or 0); for each chunk of
    ``k_chunk`` consecutive k, the exact partial sum ``t = sum(A[i][k] * B[k][j])`` is first
    fitted into a ``chunk_bits`` register (if given, policy ``chunk_overflow`` or
    ``overflow``), then ``reg + t`` into the accumulator under ``overflow`` (:func:`fit`).
    The first overflow sets the flag and records its k (the chunk's last index); a ``raise``
    stage stops that output there (its value is the register before the failing add) and
    the first such event, in row-major order, is ``(i, j, k, value, stage)`` with stage 1
    (chunk register) or 2 (accumulator). ``n`` gives N when B has no rows.

    Returns ``(values, overflow flags, first overflow k or -1, first raise event or None)``
    as nested lists.

    >>> matmul([[100, 100]], [[1], [1]], 8, "wrap")
    ([[-56]], [[True]], [[1]], None)
    """
    M = len(A)
    K = len(B)
    N = n if n is not None else len(B[0])
    chunk_pol = chunk_overflow or overflow
    vals = [[0] * N for _ in range(M)]
    flags = [[False] * N for _ in range(M)]
    firstk = [[-1] * N for _ in range(M)]
    event = None
    for i in range(M):
        for j in range(N):
            reg = 0 if bias is None else int(bias[j])
            for k0 in range(0, K, k_chunk):
                k1 = min(k0 + k_chunk, K)
                t = sum(int(A[i][k]) * int(B[k][j]) for k in range(k0, k1))
                if chunk_bits is not None:
                    t2, ov = fit(t, chunk_bits, chunk_pol)
                    if ov:
                        if firstk[i][j] < 0:
                            firstk[i][j] = k1 - 1
                            flags[i][j] = True
                        if chunk_pol == "raise":
                            if event is None:
                                event = (i, j, k1 - 1, t, 1)
                            break
                    t = t2
                r2, ov = fit(reg + t, acc_bits, overflow)
                if ov:
                    if firstk[i][j] < 0:
                        firstk[i][j] = k1 - 1
                        flags[i][j] = True
                    if overflow == "raise":
                        if event is None:
                            event = (i, j, k1 - 1, reg + t, 2)
                        break
                reg = r2
            vals[i][j] = reg
    return vals, flags, firstk, event
