"""numba kernels of the GEMM datapath (internal).

All kernels take int64 operands. ``_scan_narrow`` emulates the ordered
accumulation in plain int64 arithmetic and is used only when the caller has
proved that no product, tree sum or register add can leave int64.
``_scan_wide`` carries tree sums and register adds in 128 bits (a signed high
word and an unsigned low word stored in int64), so it is exact for every
configuration the Datapath accepts (32-bit operands, 64-bit accumulators).
numba's int64 arithmetic wraps modulo 2**64, which the 128-bit code relies on.

Arguments are structured: the per-call constants go to a kernel as one int64
vector ``kp`` (:func:`scan_params`, indices ``P_*``), and the scan writes one
int64 result matrix, one row per field (``R_*``), one column per output (:func:`scan`).
Overflow policies are numbered by :data:`intsim.core.overflow.POLICY_CODE`.
The registers of the datapath are numbered by their bit in an output's overflow
mask: :data:`TREE` (the adder-tree output) and :data:`ACC` (the accumulator).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..core.overflow import POLICY_CODE, RAISE, SATURATE, WRAP
from .chunks import run_chunks

#: The registers of the datapath, by their bit in an output's overflow mask (row ``R_MASK``),
#: in pipeline order, and their step names in overflow events.
TREE, ACC = 1, 2
STEP_NAMES: dict[int, str] = {TREE: "tree", ACC: "acc"}

#: Indices of the kernels' parameter vector ``kp`` (int64): products per adder-tree group, the
#: tree output's width (0: exact, no register) and policy code, the accumulator's width and policy code.
P_K_CHUNK, P_TREE_BITS, P_TREE_POLICY, P_ACC_BITS, P_ACC_POLICY = range(5)
N_PARAMS = 5

#: Rows of the scan result (one int64 column per scanned output): the accumulator after the last
#: add; the k of the last product of the first overflowing add (either register), -1 if none; the
#: overflow mask (TREE | ACC bits of the registers that overflowed); for each register, the k of its
#: first overflowing add (-1 if none) and the value that did not fit there as a 128-bit pair (signed
#: high word, unsigned low word; 0, 0 if none), in three consecutive rows.
(R_VAL, R_FIRST_K, R_MASK,
 R_TREE_K, R_TREE_HI, R_TREE_LO,
 R_ACC_K, R_ACC_HI, R_ACC_LO) = range(9)
N_RESULT = 9

#: For each register bit: its (k, high word, low word) rows in the scan result.
STAGE_ROWS: dict[int, tuple[int, int, int]] = {TREE: (R_TREE_K, R_TREE_HI, R_TREE_LO),
                                               ACC: (R_ACC_K, R_ACC_HI, R_ACC_LO)}

_MIN64 = np.int64(-(2**63))


def scan_params(k_chunk: int, tree_bits: int, tree_policy: str, acc_bits: int, acc_policy: str) -> np.ndarray:
    """The parameter vector ``kp`` of the scan kernels (``tree_bits`` 0: the tree output is exact).

    >>> scan_params(2, 16, "saturate", 32, "wrap").tolist()
    [2, 16, 1, 32, 0]
    """
    kp = np.empty(N_PARAMS, np.int64)
    kp[P_K_CHUNK] = k_chunk
    kp[P_TREE_BITS] = tree_bits
    kp[P_TREE_POLICY] = POLICY_CODE[tree_policy]
    kp[P_ACC_BITS] = acc_bits
    kp[P_ACC_POLICY] = POLICY_CODE[acc_policy]
    return kp


def raising_stages(kp: np.ndarray) -> int:
    """The mask bits of the registers whose policy is ``raise`` (an overflow there stops the output)."""
    return (TREE if kp[P_TREE_BITS] > 0 and kp[P_TREE_POLICY] == RAISE else 0) | \
        (ACC if kp[P_ACC_POLICY] == RAISE else 0)


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


@njit(cache=True, inline="always")
def _sign(v):
    return np.int64(-1) if v < 0 else np.int64(0)


@njit(cache=True, inline="always")
def _clear(res, s):
    """No overflow yet at output s: value 0 for both registers (their k is written by _finish)."""
    res[R_TREE_HI, s] = 0
    res[R_TREE_LO, s] = 0
    res[R_ACC_HI, s] = 0
    res[R_ACC_LO, s] = 0


@njit(cache=True, inline="always")
def _first(res, s, r_k, k, hi, lo):
    """The first overflow of a register at output s, in the group ending at k: its value (hi, lo)
    into the rows after r_k (R_TREE_K or R_ACC_K: then its high and its low word). Returns k."""
    res[r_k + 1, s] = hi
    res[r_k + 2, s] = lo
    return k


@njit(cache=True, inline="always")
def _finish(res, s, acc, tk, ak):
    """Write the accumulator of output s, the first overflowing k of each register (tk, ak; -1 if
    none), the first overflowing k of either and the overflow mask. Within one group the tree
    comes first and both have the group's last k, so the first overflow is the smaller one set."""
    res[R_VAL, s] = acc
    res[R_TREE_K, s] = tk
    res[R_ACC_K, s] = ak
    res[R_FIRST_K, s] = ak if tk < 0 or (0 <= ak < tk) else tk
    res[R_MASK, s] = (TREE if tk >= 0 else 0) | (ACC if ak >= 0 else 0)


@njit(cache=True, nogil=True)
def _scan_wide(A, BT, bias, rows, cols, kp, res, s0, s1):
    """The outputs (rows[s], cols[s]) of A @ BT.T, add by add in 128-bit arithmetic, into column s of res."""
    K = A.shape[1]
    k_chunk = kp[P_K_CHUNK]
    chunk_bits, chunk_pol = kp[P_TREE_BITS], kp[P_TREE_POLICY]
    acc_bits, acc_pol = kp[P_ACC_BITS], kp[P_ACC_POLICY]
    acc_lo_lim, acc_hi_lim = _lims(acc_bits)
    ch_lo_lim, ch_hi_lim = _lims(chunk_bits if chunk_bits > 0 else 64)
    for s in range(s0, s1):
        i = rows[s]
        j = cols[s]
        acc = bias[j]
        tk = -1
        ak = -1
        _clear(res, s)
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
                    if tk < 0:
                        tk = _first(res, s, R_TREE_K, k1 - 1, hi, lo)
                    if chunk_pol == RAISE:
                        break
                    if chunk_pol == WRAP:
                        lo = _wrap64(lo, chunk_bits)
                    else:
                        lo = ch_lo_lim if hi < 0 else ch_hi_lim
                hi = _sign(lo)
            hi, lo = _add128(hi, lo, _sign(acc), acc)
            if _fits128(hi, lo, acc_lo_lim, acc_hi_lim):
                acc = lo
            else:
                if ak < 0:
                    ak = _first(res, s, R_ACC_K, k1 - 1, hi, lo)
                if acc_pol == RAISE:
                    break
                if acc_pol == WRAP:
                    acc = _wrap64(lo, acc_bits)
                else:
                    acc = acc_lo_lim if hi < 0 else acc_hi_lim
        _finish(res, s, acc, tk, ak)


@njit(cache=True, nogil=True)
def _scan_narrow(A, BT, bias, rows, cols, kp, res, s0, s1):
    """As :func:`_scan_wide`, in int64 arithmetic (every sum provably fits int64)."""
    K = A.shape[1]
    k_chunk = kp[P_K_CHUNK]
    chunk_bits, chunk_pol = kp[P_TREE_BITS], kp[P_TREE_POLICY]
    acc_bits, acc_pol = kp[P_ACC_BITS], kp[P_ACC_POLICY]
    acc_lo_lim, acc_hi_lim = _lims(acc_bits)
    ch_lo_lim, ch_hi_lim = _lims(chunk_bits if chunk_bits > 0 else 64)
    for s in range(s0, s1):
        i = rows[s]
        j = cols[s]
        acc = bias[j]
        tk = -1
        ak = -1
        _clear(res, s)
        for k0 in range(0, K, k_chunk):
            k1 = min(k0 + k_chunk, K)
            t = np.int64(0)
            for k in range(k0, k1):
                t += A[i, k] * BT[j, k]
            if chunk_bits > 0 and (t < ch_lo_lim or t > ch_hi_lim):
                if tk < 0:
                    tk = _first(res, s, R_TREE_K, k1 - 1, _sign(t), t)
                if chunk_pol == RAISE:
                    break
                if chunk_pol == WRAP:
                    t = _wrap64(t, chunk_bits)
                else:
                    t = ch_lo_lim if t < 0 else ch_hi_lim
            t += acc
            if t < acc_lo_lim or t > acc_hi_lim:
                if ak < 0:
                    ak = _first(res, s, R_ACC_K, k1 - 1, _sign(t), t)
                if acc_pol == RAISE:
                    break
                if acc_pol == WRAP:
                    t = _wrap64(t, acc_bits)
                else:
                    t = acc_lo_lim if t < 0 else acc_hi_lim
            acc = t
        _finish(res, s, acc, tk, ak)


@njit(cache=True, nogil=True)
def _gemm_int64(A, B, out, i0, i1):
    """out += A @ B in int64 arithmetic (wrapping modulo 2**64)."""
    M, K = A.shape
    N = B.shape[1]
    for i in range(i0, i1):
        for k in range(K):
            a = A[i, k]
            if a != 0:
                for j in range(N):
                    out[i, j] += a * B[k, j]


@njit(cache=True, nogil=True)
def _scan_rows(A, Bc, bias, row_ptr, col, kp, res, r0, r1):
    """k_chunk = 1, exact tree, narrow arithmetic: all suspects of one row advance together
    over k, branch-free, so the inner loop vectorizes. Under raise the first overflow is
    recorded and the row goes on wrapping (the caller raises; the values are not returned)."""
    R, K = A.shape
    acc_bits = kp[P_ACC_BITS]
    lo, hi = _lims(acc_bits)
    sh = np.int64(64) - acc_bits
    sat = kp[P_ACC_POLICY] == SATURATE
    for r in range(r0, r1):
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
            s = s0 + t
            _clear(res, s)
            if first[t] >= 0:
                _first(res, s, R_ACC_K, first[t], _sign(val[t]), val[t])
            _finish(res, s, acc[t], -1, first[t])


@njit(cache=True, nogil=True)
def _scan_dense(A, Bc, bias, kp, res, r0, r1):
    """As _scan_rows, for every output of the block A (R x K) @ Bc (K x C): contiguous rows of
    Bc, no gather. Used when most outputs of the block are in doubt. Output (r, t) is column
    ``r * C + t`` of ``res``."""
    R, K = A.shape
    C = Bc.shape[1]
    acc_bits = kp[P_ACC_BITS]
    lo, hi = _lims(acc_bits)
    sh = np.int64(64) - acc_bits
    sat = kp[P_ACC_POLICY] == SATURATE
    for r in range(r0, r1):
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
        s0 = r * C
        for t in range(C):
            s = s0 + t
            _clear(res, s)
            if first[t] >= 0:
                _first(res, s, R_ACC_K, first[t], _sign(val[t]), val[t])
            _finish(res, s, acc[t], -1, first[t])


@njit(cache=True, nogil=True)
def _abs_stats_i8(X, axis, mx, sm):
    """Per row (axis 1) or column (axis 0) of the int8 matrix X: max |x| into mx and sum |x| into sm
    (int64; |x| <= 128, so int32 partial sums over 2**16 entries cannot overflow). Rows: max |x| from
    the row's min and max, the sum in blocks of 2**16; columns: int16 maxima and int32 partial sums
    over blocks of 2**16 rows (loops the compiler vectorizes)."""
    R, C = X.shape
    if axis == 1:
        for i in range(R):
            row = X[i]
            lo = np.int8(0)
            hi = np.int8(0)
            for k in range(C):
                lo = min(lo, row[k])
                hi = max(hi, row[k])
            t = np.int64(0)
            for k0 in range(0, C, 65536):
                seg = row[k0:k0 + 65536]  # a slice: the loop below then vectorizes
                part = np.int32(0)
                for k in range(seg.size):
                    part += abs(np.int32(seg[k]))
                t += part
            mx[i] = max(-np.int32(lo), np.int32(hi))
            sm[i] = t
    else:
        m = np.zeros(C, np.int16)
        part = np.zeros(C, np.int32)
        tot = np.zeros(C, np.int64)
        for k0 in range(0, R, 65536):
            for k in range(k0, min(R, k0 + 65536)):
                row = X[k]
                for j in range(C):
                    v = abs(np.int16(row[j]))
                    m[j] = max(m[j], v)
                    part[j] += np.int32(v)
            for j in range(C):
                tot[j] += part[j]
                part[j] = 0
        for j in range(C):
            mx[j] = m[j]
            sm[j] = tot[j]


def abs_stats(X: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(max |x|, sum |x|) along ``axis`` as int64 for a C-contiguous int8 matrix, in one pass; None for
    other operands."""
    if X.dtype != np.int8 or not X.flags.c_contiguous:
        return None
    n = X.shape[0] if axis == 1 else X.shape[1]
    mx = np.empty(n, np.int64)
    sm = np.empty(n, np.int64)
    _abs_stats_i8(X, axis, mx, sm)
    return mx, sm


@njit(cache=True, nogil=True)
def _byte_range(x):
    """(min, max) of a non-empty 1-D array of 1-byte integers, in one pass."""
    lo = x[0]
    hi = x[0]
    for v in x:
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


def byte_range(X: np.ndarray) -> tuple[int, int] | None:
    """(min, max) of a non-empty C-contiguous int8 or uint8 array as Python ints, in one pass (numpy's
    min and max make two); None for other arrays."""
    if X.dtype.itemsize != 1 or X.dtype.kind not in "iu" or not X.flags.c_contiguous or X.size == 0:
        return None
    lo, hi = _byte_range(X.reshape(-1))
    return int(lo), int(hi)


#: A scanned product costs about as much as this many engine MACs: the scans' work estimate for the
#: thread pool (:func:`intsim.hw.chunks.run_chunks`).
_SCAN_WEIGHT = 16
#: k per block of the first-exit scan (:func:`_scan_first`).
_EXIT_BLOCK = 64


@njit(cache=True, nogil=True)
def _scan_first(A, BT, bias, rows, cols, total, kp, block_bound, res, out, out_pos, s0, s1):
    """k_chunk = 1, exact tree, narrow arithmetic, policy wrap or raise: for the outputs s0 to s1 - 1,
    the first add whose result leaves the accumulator (its k and value) and the final register.

    Before its first overflow the register holds the exact prefix sum ``bias[j] + sum_{k' <= k}
    A[i, k'] BT[j, k']``, so the first overflow is the first prefix sum outside the register; under
    wrap every later add is taken modulo 2**acc_bits, so the final register is ``total[s]`` (the exact
    ``bias[j] + A[i] @ BT[j]``) wrapped. The scan goes block by block (:data:`_EXIT_BLOCK` k): a block
    whose prefix sums provably stay inside (the register at its start at least ``block_bound`` = the
    block length times max |A[i,k] B[k,j]| away from both limits) is added as one dot product.
    The final register of output s also goes to out[out_pos[s]] (out: the flat result, when not empty)."""
    K = A.shape[1]
    lo, hi = _lims(kp[P_ACC_BITS])
    bits = kp[P_ACC_BITS]
    safe_lo, safe_hi = lo + block_bound, hi - block_bound
    for s in range(s0, s1):
        a = A[rows[s]]
        b = BT[cols[s]]
        acc = bias[cols[s]]
        fk = np.int64(-1)
        fv = np.int64(0)
        for k0 in range(0, K, _EXIT_BLOCK):
            k1 = min(k0 + _EXIT_BLOCK, K)
            if safe_lo <= acc <= safe_hi:
                t = np.int64(0)
                for k in range(k0, k1):
                    t += np.int64(a[k]) * np.int64(b[k])
                acc += t
            else:
                for k in range(k0, k1):
                    acc += np.int64(a[k]) * np.int64(b[k])
                    if acc < lo or acc > hi:
                        fk = k
                        fv = acc
                        break
                if fk >= 0:
                    break
        _clear(res, s)
        if fk >= 0:
            _first(res, s, R_ACC_K, fk, _sign(fv), fv)
        final = _wrap64(total[s], bits) if bits < 64 else total[s]
        _finish(res, s, final, -1, fk)
        if out.size:
            out[out_pos[s]] = final


def scan_first(A: np.ndarray, Bc: np.ndarray, bias: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               total: np.ndarray, kp: np.ndarray, pmax: int, out: np.ndarray | None = None,
               out_pos: np.ndarray | None = None) -> np.ndarray:
    """:func:`scan` for k_chunk = 1, an exact tree, narrow arithmetic and policy wrap or raise, given
    ``total[s]``, the exact ``bias + A @ Bc`` of output s (see :func:`_scan_first`); ``pmax`` bounds
    every |A[i,k] Bc[k,j]|. Outputs in parallel chunks (any order: each is independent). With ``out``
    (a 1-D int64 view of the result) and ``out_pos``, output s's final register is also written to
    ``out[out_pos[s]]``."""
    S = rows.size
    res = np.empty((N_RESULT, S), np.int64)
    BT = np.ascontiguousarray(Bc.T)
    A = np.ascontiguousarray(A)
    bound = min(_EXIT_BLOCK * pmax, 2**62)
    if out is None or out_pos is None:
        out, out_pos = np.empty(0, np.int64), np.empty(0, np.int64)
    run_chunks(lambda s0, s1: _scan_first(A, BT, bias, rows, cols, total, kp, bound, res, out, out_pos, s0, s1),
               S, _SCAN_WEIGHT * S * A.shape[1])
    return res


def scan(A: np.ndarray, Bc: np.ndarray, bias: np.ndarray, rows: np.ndarray, cols: np.ndarray, kp: np.ndarray,
         wide: bool) -> np.ndarray:
    """Run the ordered accumulation for the outputs (rows[s], cols[s]) of A (R x K) @ Bc (K x C).

    ``rows`` must be sorted (row-major order of the outputs); ``kp`` is :func:`scan_params`;
    ``wide``: 128-bit arithmetic. Returns the int64 (:data:`N_RESULT`, S) matrix: row ``R_*``
    (see the module constants) holds that field of every output. An overflow in a register
    whose policy is raise stops that output there (its column then holds that register's k and
    value; the caller raises).
    """
    S = rows.size
    if kp[P_K_CHUNK] == 1 and kp[P_TREE_BITS] == 0 and not wide:
        R, C = A.shape[0], Bc.shape[1]
        if 2 * S >= R * C:
            res = np.empty((N_RESULT, R * C), np.int64)
            run_chunks(lambda r0, r1: _scan_dense(A, Bc, bias, kp, res, r0, r1), R, R * C * A.shape[1])
            # S == R * C: the outputs are the whole block, in row-major order
            return res if S == R * C else res[:, rows * C + cols]
        res = np.empty((N_RESULT, S), np.int64)
        row_ptr = np.zeros(R + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=R), out=row_ptr[1:])
        run_chunks(lambda r0, r1: _scan_rows(A, Bc, bias, row_ptr, cols, kp, res, r0, r1), R, S * A.shape[1])
        return res
    res = np.empty((N_RESULT, S), np.int64)
    BT = np.ascontiguousarray(Bc.T)
    kernel = _scan_wide if wide else _scan_narrow
    run_chunks(lambda s0, s1: kernel(A, BT, bias, rows, cols, kp, res, s0, s1), S, S * A.shape[1])
    return res


def gemm_int64(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    out = np.zeros((A.shape[0], B.shape[1]), np.int64)
    run_chunks(lambda i0, i1: _gemm_int64(A, B, out, i0, i1), A.shape[0], out.size * A.shape[1])
    return out


def value128(hi: int, lo: int) -> int:
    """The Python int of a (signed high, unsigned low) 128-bit pair stored as int64s."""
    return (int(hi) << 64) | (int(lo) & 0xFFFFFFFFFFFFFFFF)


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every GEMM kernel on tiny inputs, and the integer
    dot-product engines this CPU has (:mod:`intsim.hw.intdot`, which also runs their self-test)."""
    from . import intdot

    intdot.warm_up()
    A = np.array([[1, -2], [3, 4]], np.int64)
    B = np.array([[5, 6], [-7, 8]], np.int64)
    bias = np.zeros(2, np.int64)
    rows = np.array([0, 0, 1], np.int64)
    cols = np.array([0, 1, 0], np.int64)
    scan(A, B, bias, rows, cols, scan_params(1, 0, "wrap", 8, "saturate"), False)  # dense block
    scan(A, B, bias, np.array([0], np.int64), np.array([1], np.int64), scan_params(1, 0, "wrap", 8, "wrap"),
         False)  # rows
    scan(A, B, bias, rows, cols, scan_params(2, 6, "saturate", 8, "wrap"), False)  # narrow, adder tree
    scan(A, B, bias, rows, cols, scan_params(2, 6, "saturate", 8, "wrap"), True)  # wide
    for dt in (np.int8, np.int16, np.int64):  # first-exit scan: int8 operands as they are, both copies
        scan_first(A.astype(dt), B.astype(dt), bias, rows, cols, (A @ B)[rows, cols],
                   scan_params(1, 0, "wrap", 8, "wrap"), 64)
    abs_stats(A.astype(np.int8), 0)
    for dt in (np.int8, np.uint8):
        byte_range(A.astype(dt))
    gemm_int64(A, B)


KERNELS = (_scan_wide, _scan_narrow, _scan_rows, _scan_dense, _scan_first, _abs_stats_i8, _byte_range, _gemm_int64)
