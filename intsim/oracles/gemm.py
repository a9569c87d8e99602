"""The integer GEMM of :func:`intsim.hw.gemm.matmul`, register by register on Python ints; zero points
as ONNX ``MatMulInteger`` defines them; and a literal model of ONNX Runtime's u8 x s8 QGEMM on x86
CPUs without VNNI (``VPMADDUBSW``)."""

from __future__ import annotations

from collections.abc import Sequence

from .rounding import fit

ZeroPoint = int | Sequence[int] | None


def _zps(zp: ZeroPoint, count: int) -> list[int]:
    """A zero point as one int per row (column): None -> zeros, an int or one value -> repeated."""
    if zp is None:
        return [0] * count
    if isinstance(zp, int):
        return [zp] * count
    vals = [int(v) for v in zp]
    return vals * count if len(vals) == 1 else vals


def matmul(A: Sequence[Sequence[int]], B: Sequence[Sequence[int]], acc_bits: int, overflow: str, k_chunk: int = 1,
           chunk_bits: int | None = None, chunk_overflow: str | None = None, bias: Sequence[int] | None = None,
           n: int | None = None, *, a_zero_point: ZeroPoint = None, b_zero_point: ZeroPoint = None,
           zero_points: str = "operands") -> tuple[list[list[int]], list[list[bool]], list[list[int]], tuple | None]:
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

    Zero points (an int, one value, or one per row of A / column of B): with ``zero_points=
    "operands"`` the products are ``(A[i][k] - a_zp[i]) * (B[k][j] - b_zp[j])``; with
    ``"correction"`` they are the raw ``A[i][k] * B[k][j]`` and, once every output is done and no
    ``raise`` stage stopped one, each register gets one more add, ``K a_zp[i] b_zp[j] - a_zp[i]
    sum_k B[k][j] - b_zp[j] sum_k A[i][k]``, under ``overflow`` (k = K for its flag and event).

    Returns ``(values, overflow flags, first overflow k or -1, first raise event or None)``
    as nested lists.

    >>> matmul([[100, 100]], [[1], [1]], 8, "wrap")
    ([[-56]], [[True]], [[1]], None)
    >>> matmul([[100, 100]], [[1], [1]], 8, "wrap", a_zero_point=90)[0]
    [[20]]
    """
    M = len(A)
    K = len(B)
    N = n if n is not None else len(B[0])
    za, zb = _zps(a_zero_point, M), _zps(b_zero_point, N)
    has_zp = a_zero_point is not None or b_zero_point is not None
    shift = zero_points == "operands"
    chunk_pol = chunk_overflow or overflow
    vals = [[0] * N for _ in range(M)]
    flags = [[False] * N for _ in range(M)]
    firstk = [[-1] * N for _ in range(M)]
    event = None
    for i in range(M):
        for j in range(N):
            a = [int(A[i][k]) - (za[i] if shift else 0) for k in range(K)]
            b = [int(B[k][j]) - (zb[j] if shift else 0) for k in range(K)]
            reg = 0 if bias is None else int(bias[j])
            for k0 in range(0, K, k_chunk):
                k1 = min(k0 + k_chunk, K)
                t = sum(a[k] * b[k] for k in range(k0, k1))
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
    if has_zp and not shift and event is None:
        for i in range(M):
            for j in range(N):
                c = K * za[i] * zb[j] - za[i] * sum(int(B[k][j]) for k in range(K)) \
                    - zb[j] * sum(int(A[i][k]) for k in range(K))
                r2, ov = fit(vals[i][j] + c, acc_bits, overflow)
                if ov:
                    if firstk[i][j] < 0:
                        firstk[i][j] = K
                        flags[i][j] = True
                    if overflow == "raise":
                        if event is None:
                            event = (i, j, K, vals[i][j] + c, 2)
                        continue
                vals[i][j] = r2
    return vals, flags, firstk, event


def tree_overflow_counts(A: Sequence[Sequence[int]], B: Sequence[Sequence[int]], k_chunk: int, chunk_bits: int | None,
                         n: int | None = None, *, a_zero_point: ZeroPoint = None, b_zero_point: ZeroPoint = None,
                         zero_points: str = "operands") -> list[list[int]]:
    """Per output, how many adder-tree sums (the exact sums of ``k_chunk`` consecutive products, of the
    operands :func:`matmul` multiplies) lie outside a signed ``chunk_bits`` register (0 without one).

    >>> tree_overflow_counts([[255, 255, 255, 255]], [[127], [127], [-128], [-128]], 2, 16)
    [[2]]
    """
    M = len(A)
    K = len(B)
    N = n if n is not None else len(B[0])
    if chunk_bits is None:
        return [[0] * N for _ in range(M)]
    za, zb = _zps(a_zero_point, M), _zps(b_zero_point, N)
    shift = zero_points == "operands"
    lo, hi = -(1 << (chunk_bits - 1)), (1 << (chunk_bits - 1)) - 1
    out = [[0] * N for _ in range(M)]
    for i in range(M):
        for j in range(N):
            for k0 in range(0, K, k_chunk):
                t = sum((int(A[i][k]) - (za[i] if shift else 0)) * (int(B[k][j]) - (zb[j] if shift else 0))
                        for k in range(k0, min(k0 + k_chunk, K)))
                out[i][j] += not lo <= t <= hi
    return out


def _sat16(v: int) -> int:
    return max(-32768, min(32767, v))


def _wrap32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def mlas_u8s8_avx2(A: Sequence[Sequence[int]], B: Sequence[Sequence[int]], a_zero_point: int = 0,
                   b_zero_point: ZeroPoint = 0, n: int | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """ONNX Runtime's ``MatMulInteger`` of uint8 ``A`` and int8 ``B`` on an x86 CPU with AVX2 and no VNNI,
    instruction by instruction: ``(int32 results, per output the number of saturated VPMADDUBSW words)``.

    As ``MlasGemmQuantOperation`` (``onnxruntime/core/mlas/lib/qgemm.h``) with the AVX2 U8S8 kernel
    (``qgemm_kernel_avx2.cpp``: ``PackedK = 4``, ``Strides.K = 128``): K in slices of 128; per slice the
    packed A and B are padded with zeros to a multiple of 4 (``QgemmU8S8KernelAvx2.S``), the row sums
    of A less ``CountK * a_zp``, times ``-b_zp`` (per tensor), and the column sums of B times
    ``-a_zp``, all int32, initialise each accumulator (``ProduceOutputBlock`` in
    ``QgemmU8X8KernelAvx2.S``; a per-column ``b_zp`` multiplies the row sum there, ``vpmulld``);
    then per group of 4 k, ``VPMADDUBSW`` (u8 A x s8 B, adjacent pairs summed, saturated to int16),
    ``VPMADDWD`` by ones (the two words summed exactly) and ``VPADDD`` (int32, wraps); the first
    slice stores, later slices add (``VPADDD``) into the output. ``b_zero_point``: an int or one per
    column.

    >>> mlas_u8s8_avx2([[255, 255, 255, 255]], [[127], [127], [-128], [-128]])
    ([[-1]], [[2]])
    """
    M = len(A)
    K = len(B)
    N = n if n is not None else len(B[0])
    zbs = _zps(b_zero_point, N)
    per_column = not isinstance(b_zero_point, int) and len(list(b_zero_point)) != 1
    C = [[0] * N for _ in range(M)]
    sats = [[0] * N for _ in range(M)]
    for k0 in range(0, K, 128):
        count_k = min(128, K - k0)
        padded = -(-count_k // 4) * 4
        a_rows = [[int(A[i][k0 + k]) if k < count_k else 0 for k in range(padded)] for i in range(M)]
        b_cols = [[int(B[k0 + k][j]) if k < count_k else 0 for k in range(padded)] for j in range(N)]
        col_sum = [_wrap32(sum(b_cols[j]) * -a_zero_point) for j in range(N)]
        row_sum = [_wrap32(sum(a_rows[i]) - count_k * a_zero_point) for i in range(M)]
        if not per_column:
            row_sum = [_wrap32(r * -zbs[0]) for r in row_sum]
        for i in range(M):
            for j in range(N):
                acc = _wrap32(row_sum[i] * -zbs[j]) if per_column else row_sum[i]
                acc = _wrap32(acc + col_sum[j])
                a, b = a_rows[i], b_cols[j]
                for q in range(0, padded, 4):
                    words = []
                    for p in (q, q + 2):
                        exact = a[p] * b[p] + a[p + 1] * b[p + 1]
                        words.append(_sat16(exact))
                        sats[i][j] += words[-1] != exact
                    acc = _wrap32(acc + words[0] + words[1])
                C[i][j] = acc if k0 == 0 else _wrap32(C[i][j] + acc)
    return C, sats
