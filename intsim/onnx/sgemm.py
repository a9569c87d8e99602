"""ONNX Runtime's float32 matrix products (MLAS's SGEMM), bit for bit.

ONNX Runtime does not fuse every ``DequantizeLinear -> MatMul -> QuantizeLinear`` group into
``QLinearMatMul``: with int8 activations (x86-64, ONNX Runtime 1.32) the linear layers of a
transformer stay float ``MatMul`` s of dequantized tensors even in the optimized graph,
``quantize_dynamic`` leaves the attention products float (``MatMul``, ``FusedMatMul``), and with
optimizations disabled every QDQ group is a float operator between ``DequantizeLinear`` and
``QuantizeLinear``. Those products are MLAS's SGEMM, whose result depends on how it cuts K into
slices: :func:`mlas_sgemm` and :func:`matmul_f32` repeat it bit for bit (thread split, K slices,
packed B, the M=1 kernels), :func:`float_matmul_op` / :func:`fused_matmul_op` are the operator
functions :mod:`intsim.onnx.fops` registers, and :func:`reduce_sum_krk` is ``ReduceSum`` over a
middle axis (a ones-vector SGEMM in ONNX Runtime).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .mlas import fma32
from .registry import NodeContext

__all__ = ["mlas_sgemm", "sgemm_operation", "matmul_f32", "reduce_sum_krk", "float_matmul_op", "fused_matmul_op",
           "SGEMM_THREADS"]

F32 = np.float32

# -- float GEMM as MLAS SGEMM ----------------------------------------------------------------------------
#
# QDQ graphs whose MatMul ONNX Runtime does not fuse (int8 activations: the linear layers stay
# DequantizeLinear -> MatMul -> QuantizeLinear) and dynamically quantized graphs (the attention
# products stay float MatMul / FusedMatMul) multiply float32 tensors with MLAS's SGEMM. Its result
# depends on how the K dimension is cut into slices, which depends on N, K, the thread split and
# whether B was packed ahead of time; :func:`mlas_sgemm` repeats all of it (see its docstring).

SGEMM_STRIDEN = 128  # MLAS_SGEMM_STRIDEN (onnxruntime/core/mlas/lib/mlasi.h)
SGEMM_STRIDEK = 128  # MLAS_SGEMM_STRIDEK
SGEMM_PACKED_STRIDEN = 128  # MLAS_SGEMM_PACKED_STRIDEN
SGEMM_PACKED_STRIDEK = 256  # MLAS_SGEMM_PACKED_STRIDEK
SGEMM_THREAD_COMPLEXITY = 64 * 1024  # MLAS_SGEMM_THREAD_COMPLEXITY
SGEMM_STRIDEN_THREAD_ALIGN = 16  # MLAS_SGEMM_STRIDEN_THREAD_ALIGN

#: ONNX Runtime's intra-op thread count the emulation assumes: the check runs ONNX Runtime with it
#: (:func:`intsim.onnx.check.run_ort`), because MLAS splits a GEMM among threads and the split
#: changes the K slices.
SGEMM_THREADS = 1


#: rows of A that share each loaded row of B in :func:`_sgemm_kernel_slices` (the result does not
#: depend on it: every output is its own chain of fused multiply-adds in k order)
_ROW_BLOCK = 8


@njit(cache=True, nogil=True)
def _sgemm_kernel_slices(a, b, c, m0, m1, n0, n1, stride_k, alpha, accumulate):
    """``MlasSgemmKernel*Avx512F`` on rows m0:m1 and columns n0:n1, K cut into ``stride_k`` slices:
    per slice a fused multiply-add chain from +0 in k order, then ``c = acc * alpha`` (first slice,
    unless ``accumulate``: beta = 1) or ``c = fma(acc, alpha, c)``. Rows are taken ``_ROW_BLOCK`` at
    a time so that each row of B serves all of them (the order of each output's chain is unchanged)."""
    k_total = a.shape[1]
    width = n1 - n0
    acc = np.empty((_ROW_BLOCK, width), dtype=np.float32)
    bk = np.empty(width, dtype=np.float32)
    for r0 in range(m0, m1, _ROW_BLOCK):
        rows = min(_ROW_BLOCK, m1 - r0)
        k0 = 0
        first = not accumulate
        while k0 < k_total:
            k1 = min(k_total, k0 + stride_k)
            acc[:rows, :] = np.float32(0.0)
            for k in range(k0, k1):
                for j in range(width):
                    bk[j] = b[k, n0 + j]
                for r in range(rows):
                    av = a[r0 + r, k]
                    for j in range(width):
                        acc[r, j] = fma32(av, bk[j], acc[r, j])
            for r in range(rows):
                for j in range(width):
                    if first:
                        c[r0 + r, n0 + j] = acc[r, j] * alpha
                    else:
                        c[r0 + r, n0 + j] = fma32(acc[r, j], alpha, c[r0 + r, n0 + j])
            first = False
            k0 = k1


@njit(cache=True, nogil=True)
def _sgemm_m1(a, b, c, m, n0, n1, accumulate=False):
    """``MlasSgemmKernelM1Avx`` (x86_64/SgemmKernelM1Avx.S): one row ``a[m]`` times ``b``, k in groups
    of 4 (``((p0 + p1) + p2) + p3``, products rounded, no FMA) added to the running result, then a
    group of 2, then 1. The running result starts at +0, or at ``c`` with ``accumulate`` (beta = 1:
    the kernel adds ``C`` masked by ``beta == 0`` to the first group)."""
    k_total = a.shape[1]
    for n in range(n0, n1):
        r = c[m, n] if accumulate else np.float32(0.0)
        k = 0
        while k + 4 <= k_total:
            p0, p1 = a[m, k] * b[k, n], a[m, k + 1] * b[k + 1, n]
            p2, p3 = a[m, k + 2] * b[k + 2, n], a[m, k + 3] * b[k + 3, n]
            r = (((p0 + p1) + p2) + p3) + r
            k += 4
        if k_total - k >= 2:
            r = (a[m, k] * b[k, n] + a[m, k + 1] * b[k + 1, n]) + r
            k += 2
        if k_total - k == 1:
            r = a[m, k] * b[k, n] + r
        c[m, n] = r


@njit(cache=True, nogil=True)
def _dot8(x, y, lanes):
    """The 8 lane sums of ``MlasSgemmKernelM1TransposeBAvx``: lane j adds ``x[k] * y[k]`` for
    k = j mod 8 (rounded products, in k order; a masked tail adds +0 products)."""
    for j in range(8):
        lanes[j] = np.float32(0.0)
    k_total = x.shape[0]
    k = 0
    while k < k_total:
        for j in range(8):
            if k + j < k_total:
                lanes[j] = lanes[j] + x[k + j] * y[k + j]
            else:
                lanes[j] = lanes[j] + np.float32(0.0)
        k += 8


@njit(cache=True, nogil=True)
def _sgemm_m1_transpose_b(vec, rows, out, accumulate=False):
    """``MlasSgemmKernelM1TransposeBAvx`` (x86_64/SgemmKernelM1TransposeBAvx.S): ``out[r] = vec .
    rows[r]`` for every row, rows taken 4 at a time (lanes reduced as ``((l0+l1)+l2)+l3`` and
    ``((l4+l5)+l6)+l7``, then the two halves added), then 2 (``((l2+l0)+(l6+l4)) + ((l3+l1)+(l7+l5))``),
    then 1 (``((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))``); the result plus +0, or plus ``out[r]`` with
    ``accumulate`` (beta = 1)."""
    lanes = np.empty(8, dtype=np.float32)
    zero = np.zeros(rows.shape[0], dtype=np.float32)
    base = out.copy() if accumulate else zero
    n_rows = rows.shape[0]
    r = 0
    while r + 4 <= n_rows:
        for q in range(4):
            _dot8(vec, rows[r + q], lanes)
            lo = ((lanes[0] + lanes[1]) + lanes[2]) + lanes[3]
            hi = ((lanes[4] + lanes[5]) + lanes[6]) + lanes[7]
            out[r + q] = (lo + hi) + base[r + q]
        r += 4
    if n_rows - r >= 2:
        for q in range(2):
            _dot8(vec, rows[r + q], lanes)
            s02 = lanes[2] + lanes[0]
            s13 = lanes[3] + lanes[1]
            s46 = lanes[6] + lanes[4]
            s57 = lanes[7] + lanes[5]
            out[r + q] = ((s02 + s46) + (s13 + s57)) + base[r + q]
        r += 2
    if n_rows - r == 1:
        _dot8(vec, rows[r], lanes)
        out[r] = (((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))) \
            + base[r]


def _partition(thread_id: int, count: int, total: int) -> tuple[int, int]:
    """``MlasPartitionWork``: the start and length of thread ``thread_id``'s share of ``total``."""
    per, extra = divmod(total, count)
    if thread_id < extra:
        return thread_id * (per + 1), per + 1
    return thread_id * per + extra, per


def _sgemm_segment(a: np.ndarray, b: np.ndarray, bt: np.ndarray | None, c: np.ndarray, rows: tuple[int, int],
                   cols: tuple[int, int], trans_a: bool, alpha: np.float32, packed: bool, n_full: int,
                   beta: float = 0.0) -> None:
    """``MlasSgemmOperation`` / ``MlasSgemmPackedOperation`` on one thread's segment of C (``a`` [M, K],
    ``b`` [K, N]; ``bt`` the [N, K] array when B was given transposed, else None); ``beta``: C is
    ``alpha * A @ B + beta * C`` (beta 0: C is not read; beta 1: the product added to C; another
    beta: C multiplied by it first, then added to, and the M=1 / N=1 kernels are not used)."""
    (m0, m1), (n0, n1) = rows, cols
    k_total = a.shape[1]
    seg_m, seg_n = m1 - m0, n1 - n0
    stride_k = SGEMM_PACKED_STRIDEK
    accumulate = beta != 0
    special = beta in (0.0, 1.0)
    if accumulate and not special:
        c[m0:m1, n0:n1] *= F32(beta)
    if not packed and special:
        if seg_m == 1 and not trans_a and alpha == 1:
            if bt is None:
                _sgemm_m1(a, b, c, m0, n0, n1, accumulate)
            else:  # the rows of B^T are the columns of B
                out = np.ascontiguousarray(c[m0, n0:n1], dtype=F32)
                _sgemm_m1_transpose_b(np.ascontiguousarray(a[m0]), np.ascontiguousarray(bt[n0:n1]), out, accumulate)
                c[m0, n0:n1] = out
            return
        if n_full == 1 and alpha == 1 and (bt is None or k_total == 1):  # B and C are contiguous vectors
            out = np.ascontiguousarray(c[m0:m1, 0], dtype=F32)
            if not trans_a:
                _sgemm_m1_transpose_b(np.ascontiguousarray(b[:, 0]), np.ascontiguousarray(a[m0:m1]), out, accumulate)
            else:  # A^T as stored, [K, M]: the M=1 kernel with the vector as its row
                tmp = np.ascontiguousarray(out[None, :])
                _sgemm_m1(np.ascontiguousarray(b[:, 0][None, :]), np.ascontiguousarray(a[m0:m1].T), tmp, 0, 0, seg_m,
                          accumulate)
                out = tmp[0]
            c[m0:m1, 0] = out
            return
    if not packed:
        stride_n, stride_k = SGEMM_STRIDEN, SGEMM_STRIDEK
        if seg_n >= k_total:
            while stride_k // 2 >= k_total:
                stride_n *= 2
                stride_k //= 2
        elif not trans_a:
            while stride_n > 16 and stride_n // 2 >= seg_n:
                stride_k *= 2
                stride_n //= 2
    _sgemm_kernel_slices(a, b, c, m0, m1, n0, n1, stride_k, alpha, accumulate)


def sgemm_operation(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, ldc: int, beta: float = 0.0) -> None:
    """``MlasSgemmOperation`` on one thread, no transposes, alpha 1: ``c`` [M, N] (float32, written
    in place) = ``a`` [M, K] @ ``b`` [K, N] + ``beta * c``, ``ldc`` the row length of the C matrix
    ``c`` is a block of (MLAS takes its N = 1 kernel only when ``N == ldc == 1``). See
    :func:`mlas_sgemm` for the kernels and the K slices."""
    _sgemm_segment(np.ascontiguousarray(a, dtype=F32), np.ascontiguousarray(b, dtype=F32), None, c,
                   (0, a.shape[0]), (0, b.shape[1]), False, F32(1), False, 1 if ldc == 1 and b.shape[1] == 1 else 2,
                   beta)


def mlas_sgemm(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
               alpha: float = 1.0, b_packed: bool = False, threads: int = SGEMM_THREADS,
               c: np.ndarray | None = None, beta: float = 0.0) -> np.ndarray:
    """ONNX Runtime's float32 ``MatMul``/``FusedMatMul`` product of the 3-D arrays ``a`` [batch, M, K]
    and ``b`` [batch, K, N] (``trans_a``/``trans_b``: given as [batch, K, M] / [batch, N, K]), as
    ``MlasGemmBatch`` computes it on an x86-64 CPU with AVX-512F (onnxruntime/core/mlas/lib/sgemm.cpp,
    x86_64/FgemmKernelAvx512FCommon.h, SgemmKernelM1Avx.S, SgemmKernelM1TransposeBAvx.S):

    * threads: ``min(threads, M*N*K // 65536 + 1)`` per batch, split along N in 16-column blocks when
      ``N > M``, else along M (``MlasPartitionWork``);
    * per thread segment (M', N'): with ``M' == 1``, ``alpha == 1`` and no ``trans_a``, the M=1 kernels
      (no FMA; see :func:`_sgemm_m1` and :func:`_sgemm_m1_transpose_b`); with ``N == 1`` and ``alpha == 1``
      the transposed-vector kernel; otherwise the K dimension is cut in slices of ``StrideK`` = 128,
      halved while ``StrideK / 2 >= K`` when ``N' >= K``, doubled while ``StrideN > 16`` and
      ``StrideN / 2 >= N'`` (``StrideN`` from 128, halved at each step) when ``N' < K`` and A is not
      transposed; a packed B (a constant initializer, which ONNX Runtime pre-packs) takes slices of 256;
    * every output element: per slice a fused multiply-add chain from +0 in k order; the first slice
      gives ``acc * alpha``, each later one ``fma(acc, alpha, c)``.

    With ``c`` (float32 [batch, M, N]) and ``beta``, the result is ``alpha * A @ B + beta * C`` as
    MLAS computes it (beta 1: each segment's first slice added to C; another nonzero beta: C scaled
    first; the M=1 kernels only for beta 0 or 1).

    Returns float32 [batch, M, N]. The result is what ONNX Runtime computes with ``threads`` intra-op
    threads (the check pins ONNX Runtime to :data:`SGEMM_THREADS`); other thread counts can change
    the K slices of small-N products, and a CPU without AVX-512F runs other kernels.

    Example:
        >>> a = np.full((1, 2, 3), 0.1, np.float32); b = np.ones((1, 3, 2), np.float32)
        >>> mlas_sgemm(a, b)[0].tolist()
        [[0.30000001192092896, 0.30000001192092896], [0.30000001192092896, 0.30000001192092896]]
    """
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    batch = a.shape[0]
    am = np.ascontiguousarray(np.swapaxes(a, 1, 2)) if trans_a else np.ascontiguousarray(a)
    bm = np.ascontiguousarray(np.swapaxes(b, 1, 2)) if trans_b else np.ascontiguousarray(b)
    m, k = am.shape[1:]
    n = bm.shape[2]
    beta = float(F32(beta)) if c is not None else 0.0
    out = np.array(np.broadcast_to(c, (batch, m, n)), dtype=F32) if beta else np.empty((batch, m, n), dtype=F32)
    al = F32(alpha)
    complexity = float(m) * float(n) * float(k)
    target = min(int(complexity / SGEMM_THREAD_COMPLEXITY) + 1, max(1, int(threads)))
    per_gemm = (target + batch - 1) // batch
    if n > m:
        blocked_n = (n + SGEMM_STRIDEN_THREAD_ALIGN - 1) // SGEMM_STRIDEN_THREAD_ALIGN
        per_gemm = min(per_gemm, blocked_n)
        tcm, tcn = 1, per_gemm
    else:
        per_gemm = min(per_gemm, m)
        tcm, tcn = per_gemm, 1
    blocked_n = (n + SGEMM_STRIDEN_THREAD_ALIGN - 1) // SGEMM_STRIDEN_THREAD_ALIGN
    for i in range(batch):
        ai, bi = am[i], bm[i if bm.shape[0] > 1 else 0]
        bt = np.ascontiguousarray(b[i if b.shape[0] > 1 else 0]) if trans_b else None
        for tid in range(per_gemm):
            sm, cm = _partition(tid // tcn, tcm, m)
            sn, cn = _partition(tid % tcn, tcn, blocked_n)
            sn *= SGEMM_STRIDEN_THREAD_ALIGN
            cn = min(n - sn, cn * SGEMM_STRIDEN_THREAD_ALIGN)
            if cm <= 0 or cn <= 0:
                continue
            _sgemm_segment(ai, bi, bt, out[i], (sm, sm + cm), (sn, sn + cn), trans_a, al, b_packed, n, beta)
    return out


def matmul_f32(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
               b_constant: bool = False, threads: int = SGEMM_THREADS) -> np.ndarray:
    """ONNX Runtime's float32 ``MatMul`` (``FusedMatMul`` with ``trans_a``/``trans_b``/``alpha``) of
    ``a`` and ``b`` with numpy ``matmul`` shapes, through :func:`mlas_sgemm`, as
    onnxruntime/core/providers/cpu/math/matmul.cc arranges the products (``MatMulComputeHelper``):
    a 1-D operand is a row (A) or a column (B) and its axis is dropped from the result (a transpose
    flag is ignored for it); a 2-D B with an A of any rank and no ``trans_a`` is one product with
    ``M`` = every leading axis of A together; otherwise one product per broadcast batch index. A
    constant 2-D B (``b_constant``: an initializer) is pre-packed by ONNX Runtime: K slices of 256.

    Example:
        >>> matmul_f32(np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32)).shape
        (2, 3, 5)
    """
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    a_vec, b_vec = a.ndim == 1, b.ndim == 1
    ta = trans_a and not a_vec
    tb = trans_b and not b_vec
    a2 = a[None, :] if a_vec else a
    b2 = b[:, None] if b_vec else b
    if ta:
        a2 = np.swapaxes(a2, -1, -2)
    if tb:
        b2 = np.swapaxes(b2, -1, -2)
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"cannot multiply A of shape {a.shape} by B of shape {b.shape}")
    m, k, n = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    packed = b_constant and b.ndim == 2
    if b2.ndim == 2 and not ta:
        lead = a2.shape[:-2]
        rows = a2.reshape(1, -1, k)
        bb = np.swapaxes(b2, -1, -2)[None] if tb else b2[None]
        res = mlas_sgemm(rows, bb, trans_b=tb, alpha=alpha, b_packed=packed, threads=threads)
        out = res.reshape(lead + (m, n))
    else:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        aa = np.broadcast_to(a2, batch + (m, k)).reshape(-1, m, k)
        bb = np.broadcast_to(b2, batch + (k, n)).reshape(-1, k, n)
        if ta:
            aa = np.swapaxes(aa, -1, -2)
        if tb:
            bb = np.swapaxes(bb, -1, -2)
        out = mlas_sgemm(aa, bb, trans_a=ta, trans_b=tb, alpha=alpha, b_packed=packed,
                         threads=threads).reshape(batch + (m, n))
    if a_vec:
        out = out[..., 0, :]
    if b_vec:
        out = out[..., 0]
    return out


def reduce_sum_krk(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 ``ReduceSum`` of a [A, R, N] array over its middle axis
    (``ReduceAggregatorSum::FastReduceKRK``, onnxruntime/core/providers/cpu/reduction/reduction_ops.h):
    for each outer index one ``MatMul`` of a row of ones [1, R] by the [R, N] slice, single-threaded,
    which MLAS runs with its M=1 kernel (:func:`_sgemm_m1`): the R rows added in groups of 4
    (``((x0 + x1) + x2) + x3``) to the running sum, then a group of 2, then 1. Returns [A, N].

    Example:
        >>> reduce_sum_krk(np.ones((2, 5, 3), np.float32)).tolist()
        [[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]]
    """
    x = np.ascontiguousarray(x, dtype=F32)
    ones = np.ones((1, x.shape[1]), dtype=F32)
    out = np.empty((x.shape[0], x.shape[2]), dtype=F32)
    for d in range(x.shape[0]):
        row = np.empty((1, x.shape[2]), dtype=F32)
        _sgemm_m1(ones, x[d], row, 0, 0, x.shape[2])
        out[d] = row[0]
    return out


def float_matmul_op(ctx: NodeContext, inputs: list) -> list:
    """An operator function for float32 ``MatMul`` through :func:`matmul_f32` (B pre-packed when it is
    a constant initializer), bit-identical to ONNX Runtime's MLAS SGEMM; other dtypes through numpy.
    Registered for ``MatMul`` by :mod:`intsim.onnx.fops`."""
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    if a.dtype != b.dtype:
        raise ctx.dtype_error(f"A ({a.dtype}) and B ({b.dtype}) differ")
    try:
        if a.dtype != np.float32:
            return [np.matmul(a, b).astype(a.dtype, copy=False)]
        return [matmul_f32(a, b, b_constant=ctx.is_constant(1))]
    except ValueError:
        raise ctx.shape_error(f"cannot multiply A of shape {a.shape} by B of shape {b.shape}") from None


def fused_matmul_op(ctx: NodeContext, inputs: list) -> list:
    """An operator function for ``com.microsoft.FusedMatMul`` (``alpha * op(A) @ op(B)``, ``transA``,
    ``transB``; ``transBatchA``/``transBatchB`` refused) through :func:`matmul_f32`. Registered by
    :mod:`intsim.onnx.fops`."""
    if ctx.attr("transBatchA", 0) or ctx.attr("transBatchB", 0):
        raise ctx.shape_error("transBatchA/transBatchB are not supported")
    a, b = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise ctx.dtype_error(f"A ({a.dtype}) and B ({b.dtype}) must be float32")
    try:
        return [matmul_f32(a, b, trans_a=bool(ctx.attr("transA", 0)), trans_b=bool(ctx.attr("transB", 0)),
                           alpha=float(ctx.attr("alpha", 1.0)), b_constant=ctx.is_constant(1))]
    except ValueError:
        raise ctx.shape_error(f"cannot multiply A of shape {a.shape} by B of shape {b.shape}") from None
