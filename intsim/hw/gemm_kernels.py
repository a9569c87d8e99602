"""numba kernels of the GEMM datapath (internal).

All kernels take int64 operands. ``_scan_narrow`` emulates the ordered
accumulation in plain int64 arithmetic and is used only when the caller has
proved that no product, tree sum or register add can leave int64.
``_scan_wide`` carries tree sums and register adds in 128 bits (a signed high
word and an unsigned low word stored in int64), so it is exact for every
configuration the Datapath accepts (32-bit operands, 64-bit accumulators).
numba's int64 arithmetic wraps modulo 2**64, which the 128-bit code relies on.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

WRAP, SATURATE, RAISE = 0, 1, 2
POLICY_CODES = {"wrap": WRAP, "saturate": SATURATE, "raise": RAISE}

_MIN64 = np.int64(-(2**63))


@njit(cache=True, inline="always")
def _lims(w):
    one = np.int64(1)
    hi = (one << np.int64(w - 1)) - one if w < 64 else np.int64(2**63 - 1)
    return -hi - one, hi


@njit(cache=True, inline="always")
def _wrap64(v, w):
    s = np.int64(64 - w)
    return (v << s) >> s


@njit(cache=True, inline="always")
def _ult(a, b):
    return (a ^ _MIN64) < (b ^ _MIN64)


@njit(cache=True, inline="always")
def _add128(hi, lo, bhi, blo):
    nlo = lo + blo
    carry = np.int64(1) if _ult(nlo, lo) else np.int64(0)
    return hi + bhi + carry, nlo


@njit(cache=True, inline="always")
def _fits128(hi, lo, lo_lim, hi_lim):
    if hi == 0 and lo >= 0:
        return lo <= hi_lim
    if hi == -1 and lo < 0:
        return lo >= lo_lim
    return False


@njit(cache=True, parallel=True)
def _scan_wide(A, BT, bias, rows, cols, k_chunk, chunk_bits, chunk_pol, acc_bits, acc_pol,
               out_val, out_flag, out_k, out_hi, out_lo, out_stage, out_rk):
    K = A.shape[1]
    acc_lo_lim, acc_hi_lim = _lims(acc_bits)
    ch_lo_lim, ch_hi_lim = _lims(chunk_bits if chunk_bits > 0 else 64)
    for s in prange(rows.size):
        i = rows[s]
        j = cols[s]
        acc = bias[j]
        first = -1
        stage = 0
        vhi = np.int64(0)
        vlo = np.int64(0)
        rk = -1
        for k0 in range(0, K, k_chunk):
            k1 = min(k0 + k_chunk, K)
            hi = np.int64(0)
            lo = np.int64(0)
            for k in range(k0, k1):
                a = A[i, k]
                b = BT[j, k]
                p = a * b
                phi = np.int64(-1) if ((a < 0) != (b < 0)) and a != 0 and b != 0 else np.int64(0)
                hi, lo = _add128(hi, lo, phi, p)
            if chunk_bits > 0:
                if not _fits128(hi, lo, ch_lo_lim, ch_hi_lim):
                    if first < 0:
                        first = k1 - 1
                    if chunk_pol == RAISE:
                        stage = 1
                        vhi = hi
                        vlo = lo
                        rk = k1 - 1
                        break
                    if chunk_pol == WRAP:
                        lo = _wrap64(lo, chunk_bits)
                    else:
                        lo = ch_lo_lim if hi < 0 else ch_hi_lim
                hi = np.int64(-1) if lo < 0 else np.int64(0)
            ahi = np.int64(-1) if acc < 0 else np.int64(0)
            hi, lo = _add128(hi, lo, ahi, acc)
            if _fits128(hi, lo, acc_lo_lim, acc_hi_lim):
                acc = lo
            else:
                if first < 0:
                    first = k1 - 1
                if acc_pol == RAISE:
                    stage = 2
                    vhi = hi
                    vlo = lo
                    rk = k1 - 1
                    break
                if acc_pol == WRAP:
                    acc = _wrap64(lo, acc_bits)
                else:
                    acc = acc_lo_lim if hi < 0 else acc_hi_lim
        out_val[s] = acc
        out_flag[s] = first >= 0
        out_k[s] = first
        out_hi[s] = vhi
        out_lo[s] = vlo
        out_stage[s] = stage
        out_rk[s] = rk


@njit(cache=True, parallel=True)
def _scan_narrow(A, BT, bias, rows, cols, k_chunk, chunk_bits, chunk_pol, acc_bits, acc_pol,
                 out_val, out_flag, out_k, out_hi, out_lo, out_stage, out_rk):
    K = A.shape[1]
    acc_lo_lim, acc_hi_lim = _lims(acc_bits)
    ch_lo_lim, ch_hi_lim = _lims(chunk_bits if chunk_bits > 0 else 64)
    for s in prange(rows.size):
        i = rows[s]
        j = cols[s]
        acc = bias[j]
        first = -1
        stage = 0
        val = np.int64(0)
        rk = -1
        for k0 in range(0, K, k_chunk):
            k1 = min(k0 + k_chunk, K)
            t = np.int64(0)
            for k in range(k0, k1):
                t += A[i, k] * BT[j, k]
            if chunk_bits > 0 and (t < ch_lo_lim or t > ch_hi_lim):
                if first < 0:
                    first = k1 - 1
                if chunk_pol == RAISE:
                    stage = 1
                    val = t
                    rk = k1 - 1
                    break
                if chunk_pol == WRAP:
                    t = _wrap64(t, chunk_bits)
                else:
                    t = ch_lo_lim if t < 0 else ch_hi_lim
            t += acc
            if t < acc_lo_lim or t > acc_hi_lim:
                if first < 0:
                    first = k1 - 1
                if acc_pol == RAISE:
                    stage = 2
                    val = t
                    rk = k1 - 1
                    break
                if acc_pol == WRAP:
                    t = _wrap64(t, acc_bits)
                else:
                    t = acc_lo_lim if t < 0 else acc_hi_lim
            acc = t
        out_val[s] = acc
        out_flag[s] = first >= 0
        out_k[s] = first
        out_hi[s] = np.int64(-1) if val < 0 else np.int64(0)
        out_lo[s] = val
        out_stage[s] = stage
        out_rk[s] = rk


@njit(cache=True, parallel=True)
def _gemm_int64(A, B, out):
    """out += A @ B in int64 arithmetic (wrapping modulo 2**64)."""
    M, K = A.shape
    N = B.shape[1]
    for i in prange(M):
        for k in range(K):
            a = A[i, k]
            if a != 0:
                for j in range(N):
                    out[i, j] += a * B[k, j]


@njit(cache=True, parallel=True)
def _scan_rows(A, Bc, bias, row_ptr, col, acc_bits, acc_pol, out_val, out_flag, out_k, out_v):
    """k_chunk = 1, exact tree, narrow arithmetic: all suspects of one row advance together
    over k, branch-free, so the inner loop vectorizes. Under raise the first overflow is
    recorded and the row goes on wrapping (the caller raises; the values are not returned)."""
    R, K = A.shape
    lo, hi = _lims(acc_bits)
    sh = np.int64(64 - acc_bits)
    sat = acc_pol == SATURATE
    for r in prange(R):
        s0 = row_ptr[r]
        n = row_ptr[r + 1] - s0
        cc = col[s0:s0 + n]
        acc = np.empty(n, np.int64)
        first = np.full(n, -1, np.int64)
        val = np.zeros(n, np.int64)
        for t in range(n):
            acc[t] = bias[cc[t]]
        for k in range(K):
            a = A[r, k]
            brow = Bc[k]
            for t in range(n):
                v = acc[t] + a * brow[cc[t]]
                fresh = ((v < lo) | (v > hi)) & (first[t] < 0)
                first[t] = k if fresh else first[t]
                val[t] = v if fresh else val[t]
                if sat:
                    acc[t] = min(max(v, lo), hi)
                else:
                    acc[t] = (v << sh) >> sh
        for t in range(n):
            out_val[s0 + t] = acc[t]
            out_flag[s0 + t] = first[t] >= 0
            out_k[s0 + t] = first[t]
            out_v[s0 + t] = val[t]


@njit(cache=True, parallel=True)
def _scan_dense(A, Bc, bias, acc_bits, acc_pol, out_val, out_k, out_v):
    """As _scan_rows, for every output of the block A (R x K) @ Bc (K x C): contiguous rows of
    Bc, no gather. Used when most outputs of the block are in doubt."""
    R, K = A.shape
    C = Bc.shape[1]
    lo, hi = _lims(acc_bits)
    sh = np.int64(64 - acc_bits)
    sat = acc_pol == SATURATE
    for r in prange(R):
        acc = bias.copy()
        first = np.full(C, -1, np.int64)
        val = np.zeros(C, np.int64)
        for k in range(K):
            a = A[r, k]
            brow = Bc[k]
            if sat:
                for t in range(C):
                    v = acc[t] + a * brow[t]
                    fresh = ((v < lo) | (v > hi)) & (first[t] < 0)
                    first[t] = k if fresh else first[t]
                    val[t] = v if fresh else val[t]
                    acc[t] = min(max(v, lo), hi)
            else:
                for t in range(C):
                    v = acc[t] + a * brow[t]
                    fresh = ((v < lo) | (v > hi)) & (first[t] < 0)
                    first[t] = k if fresh else first[t]
                    val[t] = v if fresh else val[t]
                    acc[t] = (v << sh) >> sh
        out_val[r] = acc
        out_k[r] = first
        out_v[r] = val


def scan(A, Bc, bias, rows, cols, k_chunk, chunk_bits, chunk_pol, acc_bits, acc_pol, wide):
    """Run the ordered accumulation for the outputs (rows[s], cols[s]) of A (R x K) @ Bc (K x C).

    ``rows`` must be sorted (row-major order of the outputs). Returns (values, flags,
    first_k, raise value high and low words, raise stage, raise k): an overflow in a
    stage whose policy is raise stops that output and records the stage (1 adder-tree
    output, 2 accumulator register; 0 none), its k and the value.
    """
    S = rows.size
    val = np.empty(S, np.int64)
    flag = np.empty(S, np.bool_)
    firstk = np.empty(S, np.int64)
    vhi = np.zeros(S, np.int64)
    vlo = np.zeros(S, np.int64)
    stage = np.zeros(S, np.int8)
    raise_k = np.full(S, -1, np.int64)
    if k_chunk == 1 and chunk_bits == 0 and not wide and 2 * S >= A.shape[0] * Bc.shape[1]:
        R, C = A.shape[0], Bc.shape[1]
        dv = np.empty((R, C), np.int64)
        dk = np.empty((R, C), np.int64)
        dval = np.empty((R, C), np.int64)
        _scan_dense(A, Bc, bias, np.int64(acc_bits), np.int64(acc_pol), dv, dk, dval)
        val[:] = dv[rows, cols]
        firstk[:] = dk[rows, cols]
        flag[:] = firstk >= 0
        vlo[:] = dval[rows, cols]
    elif k_chunk == 1 and chunk_bits == 0 and not wide:
        row_ptr = np.zeros(A.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=A.shape[0]), out=row_ptr[1:])
        _scan_rows(A, Bc, bias, row_ptr, cols, np.int64(acc_bits), np.int64(acc_pol), val, flag, firstk, vlo)
    if k_chunk == 1 and chunk_bits == 0 and not wide:
        if acc_pol == RAISE:
            stage[flag] = 2
            raise_k[flag] = firstk[flag]
            vhi[flag] = np.where(vlo[flag] < 0, -1, 0)
        return val, flag, firstk, vhi, vlo, stage, raise_k
    BT = np.ascontiguousarray(Bc.T)
    kern = _scan_wide if wide else _scan_narrow
    kern(A, BT, bias, rows, cols, np.int64(k_chunk), np.int64(chunk_bits), np.int64(chunk_pol),
         np.int64(acc_bits), np.int64(acc_pol), val, flag, firstk, vhi, vlo, stage, raise_k)
    return val, flag, firstk, vhi, vlo, stage, raise_k


def gemm_int64(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    out = np.zeros((A.shape[0], B.shape[1]), np.int64)
    _gemm_int64(A, B, out)
    return out


def value128(hi: int, lo: int) -> int:
    """The Python int of a (signed high, unsigned low) 128-bit pair stored as int64s."""
    return (int(hi) << 64) | (int(lo) & 0xFFFFFFFFFFFFFFFF)


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every GEMM kernel on tiny inputs."""
    A = np.array([[1, -2], [3, 4]], np.int64)
    B = np.array([[5, 6], [-7, 8]], np.int64)
    bias = np.zeros(2, np.int64)
    rows = np.array([0, 0, 1], np.int64)
    cols = np.array([0, 1, 0], np.int64)
    scan(A, B, bias, rows, cols, 1, 0, WRAP, 8, SATURATE, False)  # dense block
    scan(A, B, bias, np.array([0], np.int64), np.array([1], np.int64), 1, 0, WRAP, 8, WRAP, False)  # rows
    scan(A, B, bias, rows, cols, 2, 6, SATURATE, 8, WRAP, False)  # narrow, adder tree
    scan(A, B, bias, rows, cols, 2, 6, SATURATE, 8, WRAP, True)  # wide
    gemm_int64(A, B)


KERNELS = (_scan_wide, _scan_narrow, _scan_rows, _scan_dense, _gemm_int64)
