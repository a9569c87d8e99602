"""Exact GEMM on the emulated datapath: :func:`matmul` and :class:`GemmResult`.

The result never depends on float rounding. Per call, intsim proves which
outputs cannot overflow and computes those by the fastest exact method; only
the outputs the proof cannot clear are emulated add by add, in order.

* The proof: every partial sum of output (i, j), and every adder-tree sum, is
  bounded in magnitude by ``|bias_j| + sum_k |A[i,k]| * |B[k,j]|``. A global
  bound (``max|A| * max|B| * K``) clears most calls at once; otherwise per-output
  bounds (``max_k |A[i,k]| * sum_k |B[k,j]|`` and its transpose, then the exact
  ``|A| @ |B|`` for the outputs still in doubt) pick the outputs to emulate.
* The exact product of the cleared outputs: for operands of 8 bits or fewer, an integer
  engine on the CPU's integer dot-product instructions (AMX ``TDPBUSD``, AVX-512 VNNI /
  AVX-VNNI ``VPDPBUSD``, see :mod:`intsim.hw.intdot`: unsigned x signed bytes with an exact
  column-sum correction, int32 lanes over K blocks that provably cannot wrap, blocks
  combined in int64) when the CPU has one and it passed its self-test; otherwise
  float32 BLAS when every partial sum
  is an integer of magnitude at most 2**24 (taken in K-blocks when needed, block
  results summed in float64, exact below 2**53), float64 BLAS below 2**53,
  otherwise an int64 numba kernel. Integers of that size and their sums are
  represented exactly, so any summation order, with or without FMA, gives the
  exact sum. (BLAS libraries compute each output as a sum of its products;
  intsim also checks a few outputs per call against int64 arithmetic.) The engine is
  chosen at run time; :func:`intsim.hw.intdot.gemm_engine` or ``INTSIM_GEMM_ENGINE``
  forces or forbids each one (``"float"``: the float / int64 paths only).
* The outputs in doubt: an ordered numba scan implementing the datapath
  definition literally (in 128-bit arithmetic when 64 bits might not hold a
  sum), with provenance: the first overflowing k and the value that did not fit.
  With one product per add and policy wrap or raise, only the first overflow needs
  the order: the scan stops there (skipping blocks of k whose prefix sums provably
  stay inside the register), and the final register is the exact product wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.arrays import as_int_array, as_int_matrix, short_repr, to_int64
from ..core.errors import AccumulatorOverflow, ConfigError, OperandRangeError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..regs.registers import RegisterEvent
from . import gemm_kernels as kern
from . import intdot
from .datapath import Datapath, as_datapath

__all__ = ["GemmResult", "matmul", "gemm_ops", "trace_output"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
_MIN_F32_BLOCK = 256
_SPOT_CHECKS = 8


@dataclass(frozen=True)
class _StageOverflows:
    """The outputs of one GEMM whose register ``step`` (``"tree"`` or ``"acc"``) overflowed:
    ``flat`` their row-major flat indices (ascending) and, for each, the first value that did not
    fit that register as a 128-bit pair (``hi`` signed high word, ``lo`` unsigned low word)."""

    step: str
    flat: np.ndarray
    hi: np.ndarray
    lo: np.ndarray

    def value(self, n: int) -> int:
        """The value of the ``n``-th listed output (a Python int)."""
        return kern.value128(self.hi[n], self.lo[n])


@dataclass(frozen=True)
class GemmResult:
    """The outcome of :func:`matmul`.

    Attributes
    ----------
    values:
        int64 (M, N): each accumulator register after its last add.
    overflow:
        bool (M, N): some add (adder tree or accumulator) overflowed for this output.
    first_overflow_k:
        int64 (M, N): the k of the last product in the first overflowing add, -1 where none.
    ops:
        :class:`~intsim.OpCounts` of the GEMM.
    datapath:
        the :class:`~intsim.Datapath` it ran on.
    method:
        how the cleared outputs were computed: an integer engine of :mod:`intsim.hw.intdot`
        (``"vnni512"``, ``"vnni256"``), ``"float32-blas"``, ``"float64-blas"``, ``"int64"``, or
        ``"none"`` (nothing to compute); ``n_scanned`` outputs were emulated in order.
    events, overflowed:
        the overflow report shared with the operators' results (see :attr:`events`).
    """

    values: np.ndarray
    overflow: np.ndarray
    #: first_overflow_k as given: the array, or None (-1 everywhere) or (rows, cols, k) (-1 except
    #: there), which the property materializes at first access (an (M, N) int64 array per call costs
    #: as much as writing the values, and most calls never read it).
    _first_k: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(repr=False, compare=False)
    ops: OpCounts
    datapath: Datapath
    method: str = "none"
    n_scanned: int = 0
    _overflows: tuple[_StageOverflows, ...] = field(default=(), repr=False, compare=False)

    @property
    def first_overflow_k(self) -> np.ndarray:
        """int64 (M, N): the k of the last product in the first overflowing add, -1 where none."""
        fk = self._first_k
        if not isinstance(fk, np.ndarray):
            arr = np.full(self.values.shape, -1, np.int64)
            if fk is not None:
                rows, cols, k = fk
                arr[rows, cols] = k
            object.__setattr__(self, "_first_k", arr)
            fk = arr
        return fk

    @property
    def n_overflow(self) -> int:
        """Number of outputs with at least one overflow."""
        return int(np.count_nonzero(self.overflow))

    @property
    def events(self) -> tuple[RegisterEvent, ...]:
        """One :class:`~intsim.regs.registers.RegisterEvent` per register of the datapath that
        overflowed, in pipeline order: step ``"tree"`` (the ``chunk_bits`` adder-tree output,
        policy ``chunk_policy``), then ``"acc"`` (the accumulator, policy ``overflow``); op
        ``"matmul"``, signed. ``count``: the outputs (i, j) where that register overflowed at
        least once; ``index``: the first of them in row-major order; ``value``: at that output,
        the exact value (a Python int) that did not fit that register at its first overflowing
        add, before the policy applied (what :class:`~intsim.core.errors.AccumulatorOverflow`
        reports under ``raise``). Empty when nothing overflowed.

        >>> import numpy as np
        >>> from intsim import Datapath, IntType, matmul
        >>> r = matmul(np.array([[7, 7], [-8, 1]]), np.array([[7], [7]]),
        ...            Datapath(a=IntType(4), b=IntType(4), acc_bits=7, overflow="saturate"))
        >>> [(e.step, e.bits, e.count, e.index, e.value, e.policy) for e in r.events], r.overflowed
        ([('acc', 7, 1, (0, 0), 98, 'saturate')], True)
        """
        n_cols = self.values.shape[1]
        out = []
        for h in self._overflows:
            bits, policy = register_of(self.datapath, h.step)
            index = divmod(int(h.flat[0]), n_cols)
            out.append(RegisterEvent("matmul", h.step, bits, True, int(h.flat.size), index, h.value(0), policy))
        return tuple(out)

    @property
    def overflowed(self) -> bool:
        """True when some register overflowed (``events`` is not empty; ``overflow.any()``)."""
        return bool(self._overflows)


def register_of(dp: Datapath, step: str) -> tuple[int, str]:
    """Width and policy of the register ``step`` of ``dp``: ``"tree"`` (the adder-tree output,
    ``chunk_bits`` and ``chunk_policy``) or ``"acc"`` (the accumulator, ``acc_bits`` and ``overflow``)."""
    return (dp.chunk_bits, dp.chunk_policy) if step == "tree" else (dp.acc_bits, dp.overflow)


def gemm_ops(M: int, K: int, N: int, dp: Datapath) -> OpCounts:
    """Exact op counts of an (M, K) @ (K, N) GEMM on ``dp``.

    With ``k_chunk == 1``: ``M*N*K`` MACs ``(a_bits, b_bits, acc_bits)``. With
    ``k_chunk > 1``: ``M*N*K`` multiplies, ``M*N*(K - G)`` adder-tree adds at the tree
    width and ``M*N*G`` accumulator adds, G = ceil(K / k_chunk) groups per output.
    Memory: each A and B element read once, each output written once at acc_bits.
    """
    dims = []
    for name, v in (("M", M), ("K", K), ("N", N)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or int(v) < 0:
            raise ConfigError(f"gemm_ops: {name} must be a non-negative integer, got {short_repr(v)}")
        dims.append(int(v))
    return _gemm_ops(*dims, as_datapath(dp, "dp", default=False))


def _gemm_ops(M: int, K: int, N: int, dp: Datapath) -> OpCounts:
    ops = OpCounts()
    if M * N * K:
        if dp.k_chunk == 1:
            ops.add("mac", (dp.a.bits, dp.b.bits, dp.acc_bits), M * N * K)
        else:
            groups = -(-K // dp.k_chunk)
            ops.add("mul", (dp.a.bits, dp.b.bits), M * N * K)
            ops.add("add", (dp.tree_bits(),), M * N * (K - groups))
            ops.add("add", (dp.acc_bits,), M * N * groups)
    ops.add("read", (dp.a.bits,), M * K)
    ops.add("read", (dp.b.bits,), K * N)
    ops.add("write", (dp.acc_bits,), M * N)
    return ops


def _operands(A: Any, B: Any, dp: Datapath, bias: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked operands of :func:`matmul` and :func:`trace_output`: A, B and the bias as int64."""
    A = as_int_matrix(A, "A")
    B = as_int_matrix(B, "B")
    M, K = A.shape
    K2, N = B.shape
    if K != K2:
        raise ShapeError(f"inner dimensions differ: A is {M}x{K} (M x K) but B is {K2}x{N} (K x N)")
    dp.a.check(A, "A")
    dp.b.check(B, "B")
    if bias is None:
        return A, B, np.zeros(N, np.int64)
    acc = dp.acc
    barr = as_int_array(bias, "bias")
    if barr.shape != (N,):
        raise ShapeError(f"bias must have shape ({N},) (one value per output column), got {barr.shape}")
    try:
        acc.check(barr, "bias")
    except OperandRangeError as exc:
        raise OperandRangeError(f"{exc} (the accumulator register is {acc.name})", count=exc.count,
                                index=exc.index, value=exc.value) from None
    return A, B, to_int64(barr, "bias")


def _min_max(x: np.ndarray) -> tuple[int, int]:
    """(min, max) of x as Python ints; (0, 0) when empty."""
    if x.size == 0:
        return 0, 0
    return int(x.min()), int(x.max())


def _abs_max(x: np.ndarray) -> int:
    lo, hi = _min_max(x)
    return max(abs(lo), abs(hi))


def _exact_product(A: np.ndarray, B: np.ndarray, pmax: int,
                   ranges: tuple[int, int, int, int] | None = None,
                   bias: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Exact int64 A @ B (plus ``bias[j]`` on every output of column j, when given) for operands whose
    partial sums all fit the method used.

    ``pmax`` bounds every |A[i,k] * B[k,j]|; the caller guarantees that every
    partial sum of every output fits int64 (with the bias: every output does; the int64 adds wrap
    modulo 2**64, so their order does not matter). ``ranges``: (min A, max A, min B, max B)
    if known. Operands of 8 bits or fewer go to the selected integer engine
    (:func:`intsim.hw.intdot.engine_product`), if any.
    """
    values, method = _product(A, B, pmax, ranges, bias)
    if bias is not None and method not in intdot.ENGINES:
        values += bias
    return values, method


def _product(A: np.ndarray, B: np.ndarray, pmax: int, ranges: tuple[int, int, int, int] | None,
             bias: np.ndarray | None) -> tuple[np.ndarray, str]:
    """:func:`_exact_product`; the bias is added only by the integer engines."""
    M, K = A.shape
    N = B.shape[1]
    if pmax == 0 or K == 0:
        return np.zeros((M, N), np.int64), "none"
    if pmax <= 255 * 255:  # necessary for 8-bit operands: skip the range pass otherwise
        if ranges is None:
            ranges = (*_min_max(A), *_min_max(B))
        hit = intdot.engine_product(A, B, *ranges, bias=bias)
        if hit is not None:
            return hit
    kb32 = _F32_EXACT // pmax
    if kb32 >= min(K, _MIN_F32_BLOCK):
        a32 = A.astype(np.float32)
        b32 = B.astype(np.float32)
        if kb32 >= K:
            return (a32 @ b32).astype(np.int64), "float32-blas"
        if pmax * K < _F64_EXACT:
            total = np.zeros((M, N), np.float64)
            for k0 in range(0, K, kb32):
                total += a32[:, k0:k0 + kb32] @ b32[k0:k0 + kb32]
            return total.astype(np.int64), "float32-blas"
    kb64 = _F64_EXACT // pmax
    if kb64 >= min(K, _MIN_F32_BLOCK):
        a64 = A.astype(np.float64)
        b64 = B.astype(np.float64)
        if kb64 >= K:
            return (a64 @ b64).astype(np.int64), "float64-blas"
        total_i = np.zeros((M, N), np.int64)
        for k0 in range(0, K, kb64):
            total_i += (a64[:, k0:k0 + kb64] @ b64[k0:k0 + kb64]).astype(np.int64)
        return total_i, "float64-blas"
    return kern.gemm_int64(to_int64(A, "A"), to_int64(B, "B")), "int64"


def _abs_product(A: np.ndarray, B: np.ndarray, pmax: int) -> np.ndarray | None:
    """Exact |A| @ |B| as int64 where it is exactly computable in float64; else None."""
    K = A.shape[1]
    if pmax * K >= _F64_EXACT:
        return None
    return _exact_product(_abs_narrow(A), _abs_narrow(B), pmax)[0]


def _abs_narrow(X: np.ndarray) -> np.ndarray:
    """|X| in the narrowest dtype that holds it (uint8 for int8 data: np.abs wraps -128 to -128, whose
    byte is 128 = |-128|; int16 for uint8 data)."""
    if X.dtype == np.int8:
        return np.abs(X).view(np.uint8)
    wide = np.int16 if X.dtype.itemsize == 1 else np.int32 if X.dtype.itemsize == 2 else np.int64
    return np.abs(X.astype(wide))


def _spot_check(A: np.ndarray, B: np.ndarray, values: np.ndarray, suspect: tuple | None,
                bias64: np.ndarray, method: str) -> None:
    """Recompute a few cleared outputs in int64; a mismatch means the BLAS is not exact."""
    M, N = values.shape
    picks = np.linspace(0, M * N - 1, min(4 * _SPOT_CHECKS, M * N)).astype(np.int64)
    checked = 0
    for p in picks:
        i, j = divmod(int(p), N)
        if suspect is not None and _is_suspect(suspect, i, j):
            continue
        checked += 1
        if checked > _SPOT_CHECKS:
            break
        want = int(np.dot(A[i].astype(np.int64), B[:, j].astype(np.int64))) + int(bias64[j])
        if want != int(values[i, j]):  # pragma: no cover - would mean a non-exact BLAS
            raise RuntimeError(f"internal check failed: {method} gave {int(values[i, j])} for output "
                               f"({i}, {j}), exact value {want}; please report this with your BLAS build")


def _is_suspect(suspect: tuple, i: int, j: int) -> bool:
    r_idx, c_idx, sub = suspect
    a = int(np.searchsorted(r_idx, i))
    b = int(np.searchsorted(c_idx, j))
    return a < r_idx.size and r_idx[a] == i and b < c_idx.size and c_idx[b] == j and bool(sub[a, b])


def matmul(A: Any, B: Any, datapath: Datapath | None = None, bias: Any = None) -> GemmResult:
    """Run ``A @ B`` on the emulated datapath, bit-exactly.

    Parameters
    ----------
    A, B:
        Integer arrays of shapes (M, K) and (K, N), any numpy integer dtype, or nested
        lists/tuples of ints (checked element by element: a bool or float inside is
        refused). ``np.matrix`` is read as its ndarray, a masked array as its data if no
        entry is masked (a masked entry is refused). Entries must lie in ``datapath.a``
        and ``datapath.b``.
    datapath:
        The hardware, a :class:`~intsim.Datapath` (default ``Datapath()``: int8 x int8
        into a 32-bit accumulator, overflow raises). A type name such as ``"int8"`` is
        not a datapath: pass ``Datapath(a=IntType(8), b=IntType(8))``.
    bias:
        Optional per-output-column initial register values, shape (N,), each in the
        accumulator's range.

    Returns
    -------
    GemmResult
        ``values`` (int64 registers), ``overflow`` flags, ``first_overflow_k`` and ``ops``.

    Raises
    ------
    ConfigError
        ``datapath`` is not a :class:`~intsim.Datapath`.
    DTypeError
        float, bool, string or non-integer object operands; a masked entry.
    ShapeError
        operands that are not 2-D or whose inner dimensions differ; ragged lists.
    OperandRangeError
        an entry outside its operand type, or a bias outside the accumulator range.
    AccumulatorOverflow
        with ``overflow="raise"``: names the first overflowing output in row-major
        order, its k step, the value that did not fit and how many outputs overflowed.

    Example
    -------
    >>> import numpy as np
    >>> from intsim import Datapath, IntType, matmul
    >>> A = np.array([[7, 7], [-8, 1]]); B = np.array([[7], [7]])
    >>> r = matmul(A, B, Datapath(a=IntType(4), b=IntType(4), acc_bits=7, overflow="saturate"))
    >>> r.values.ravel().tolist(), r.first_overflow_k.ravel().tolist()
    ([63, -49], [1, -1])
    """
    dp = as_datapath(datapath)
    A, B, bias64 = _operands(A, B, dp, bias)
    M, K = A.shape
    N = B.shape[1]
    acc = dp.acc
    ops = _gemm_ops(M, K, N, dp)
    overflow = np.zeros((M, N), bool)
    first_k: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # -1 everywhere
    overflows: tuple[_StageOverflows, ...] = ()
    if M == 0 or N == 0 or K == 0:
        values = np.broadcast_to(bias64, (M, N)).copy()
        return GemmResult(values, overflow, first_k, ops, dp)

    ranges = (*_min_max(A), *_min_max(B))
    amax, bmax = max(-ranges[0], ranges[1]), max(-ranges[2], ranges[3])
    pmax = amax * bmax
    acc_lim = acc.max
    chunk_lim = (1 << (dp.chunk_bits - 1)) - 1 if dp.chunk_bits is not None else None
    group = min(dp.k_chunk, K)
    bias_max = _abs_max(bias64)

    globally_safe = bias_max + pmax * K <= acc_lim and (chunk_lim is None or group * pmax <= chunk_lim)
    if globally_safe:
        suspect = None
        n_suspect = 0
    else:
        suspect = _suspects(A, B, bias64, pmax, acc_lim, chunk_lim, group)
        n_suspect = int(np.count_nonzero(suspect[2]))
    # wrap / raise, one product per add, narrow: the suspects' first overflow by a first-exit scan and
    # the final register from the exact product (see gemm_kernels.scan_first)
    first_exit = n_suspect > 0 and dp.k_chunk == 1 and dp.chunk_bits is None and dp.overflow in ("wrap", "raise") \
        and not _needs_wide(dp, pmax, group)
    if n_suspect == M * N and not first_exit:
        values = np.empty((M, N), np.int64)
        method = "none"
    else:
        values, method = _exact_product(A, B, pmax, ranges, bias64 if bias is not None else None)
    if n_suspect:
        r_idx, c_idx, sub = suspect
        sr, sc = np.nonzero(sub)
        rows, cols = r_idx[sr], c_idx[sc]  # row-major order
        # Compact operands: only the rows of A and columns of B that hold suspects (sr is sorted).
        keep_r = sr[np.flatnonzero(np.diff(sr, prepend=-1))]
        keep_c = np.flatnonzero(np.bincount(sc, minlength=c_idx.size))
        rows_u, cols_u = r_idx[keep_r], c_idx[keep_c]
        r_map = _positions(keep_r, r_idx.size)[sr]
        c_map = _positions(keep_c, c_idx.size)[sc]
        kp = kern.scan_params(dp.k_chunk, dp.chunk_bits or 0, dp.chunk_policy, dp.acc_bits, dp.overflow)
        if first_exit:
            # narrow copies: int16 holds every operand of 15 bits or fewer
            small = max(-ranges[0], ranges[1], -ranges[2], ranges[3]) <= 2**15 - 1
            cast = (lambda X, name: X.astype(np.int16)) if small else to_int64
            A_c = cast(A if rows_u.size == M else A[rows_u], "A")
            B_c = cast(B if cols_u.size == N else B[:, cols_u], "B")
            res = kern.scan_first(A_c, B_c, bias64[cols_u], r_map.astype(np.int64), c_map.astype(np.int64),
                                  values[rows, cols], kp, pmax)
        else:
            A_c = to_int64(A[rows_u], "A")
            B_c = np.ascontiguousarray(to_int64(B[:, cols_u], "B"))
            wide = _needs_wide(dp, pmax, group)
            res = kern.scan(A_c, B_c, bias64[cols_u], r_map.astype(np.int64), c_map.astype(np.int64), kp, wide)
        fk = res[kern.R_FIRST_K]
        if n_suspect == M * N:  # every output, in row-major order
            values.reshape(-1)[:] = res[kern.R_VAL]
            overflow.reshape(-1)[:] = fk >= 0
            first_k = fk.reshape(M, N)
        else:
            values[rows, cols] = res[kern.R_VAL]
            hit = fk >= 0
            overflow[rows[hit], cols[hit]] = True
            first_k = (rows[hit], cols[hit], fk[hit])
        mask = res[kern.R_MASK]
        stop = kern.raising_stages(kp)
        if stop and (mask & stop).any():
            _raise_first(dp, rows, cols, res, stop)
        if mask.any():
            overflows = _stage_overflows(res, mask, rows, cols, N)
    if method != "none":
        _spot_check(A, B, values, suspect, bias64, method)
    return GemmResult(values, overflow, first_k, ops, dp, method, n_suspect, overflows)


def _positions(keep: np.ndarray, n: int) -> np.ndarray:
    """p with p[keep[t]] = t (int64, length n; -1 elsewhere): where each kept index went."""
    p = np.full(n, -1, np.int64)
    p[keep] = np.arange(keep.size)
    return p


def _needs_wide(dp: Datapath, pmax: int, group: int) -> bool:
    """True unless every tree sum and register add provably stays inside int64."""
    tree = group * pmax
    if dp.chunk_bits is not None:
        tree_after = min(tree, 1 << (dp.chunk_bits - 1))
    else:
        tree_after = tree
    return not (tree < 2**62 and tree_after + (1 << (dp.acc_bits - 1)) < 2**62)


def _row_col_abs(X: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Max and sum of |X| along ``axis`` as int64 (exact: operands have at most 32 bits).

    |X| is formed in the narrowest signed dtype that holds it (int16 for 8-bit data), and
    summed in int64."""
    fast = kern.abs_stats(X, axis)
    if fast is not None:
        return fast
    ax = _abs_narrow(X)
    return ax.max(axis=axis).astype(np.int64), ax.sum(axis=axis, dtype=np.int64)


def _suspects(A: np.ndarray, B: np.ndarray, bias64: np.ndarray, pmax: int, acc_lim: int,
              chunk_lim: int | None, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs whose overflow-freedom cannot be proved: ``(r_idx, c_idx, sub)``, the outputs
    ``(r_idx[a], c_idx[b])`` where ``sub[a, b]`` (sorted row and column indices).

    Every partial sum of output (i, j) is bounded by |bias_j| + S_ij with
    S_ij = sum_k |A[i,k]| |B[k,j]| <= min(rmax_i * csum_j, rsum_i * cmax_j), and every
    adder-tree sum by min(group * rmax_i * cmax_j, S_ij). Stage 1 clears whole rows and
    columns with these bounds; stage 2 takes the exact S on the rows x columns left.
    Python ints / int64 only: no rounding in any bound.
    """
    N = B.shape[1]
    rmax, rsum = _row_col_abs(A, 1)
    cmax, csum = _row_col_abs(B, 0)
    amax, bmax = int(rmax.max()), int(cmax.max())
    babs = np.abs(bias64.astype(object))  # Python ints: exact even for -2**63
    bias_max = int(babs.max()) if N else 0
    # Stage 1: a column is safe if amax * csum_j + |bias_j| fits; a row if rsum_i * bmax + max|bias| fits.
    col_bad = (amax * csum.astype(object) + babs > acc_lim).astype(bool)
    row_bad = (rsum.astype(object) * bmax + bias_max > acc_lim).astype(bool)
    if chunk_lim is not None:
        col_bad |= group * amax * cmax.astype(object) > chunk_lim
        row_bad |= group * rmax.astype(object) * bmax > chunk_lim
    r_idx = np.flatnonzero(row_bad)
    c_idx = np.flatnonzero(col_bad)
    if r_idx.size == 0 or c_idx.size == 0:
        return r_idx, c_idx, np.zeros((r_idx.size, c_idx.size), bool)
    # Stage 2: exact S on the submatrix where it can be computed exactly, else rank-one bounds.
    sub_b = babs[c_idx]
    exact = _abs_product(A if r_idx.size == A.shape[0] else A[r_idx], B if c_idx.size == N else B[:, c_idx], pmax)
    if exact is None:
        r_o, c_o = rmax[r_idx].astype(object), cmax[c_idx].astype(object)
        bound = np.minimum(np.outer(r_o, csum[c_idx].astype(object)), np.outer(rsum[r_idx].astype(object), c_o))
        sub = (bound + sub_b[None, :] > acc_lim).astype(bool)
        if chunk_lim is not None:
            sub |= (np.minimum(group * np.outer(r_o, c_o), bound) > chunk_lim).astype(bool)
    else:
        if acc_lim >= 2**62:
            sub = (exact.astype(object) + sub_b[None, :] > acc_lim).astype(bool)
        else:
            sub = exact > (acc_lim - sub_b.astype(np.int64))[None, :]
        if chunk_lim is not None:
            rank1 = group * np.outer(rmax[r_idx], cmax[c_idx])  # < 2**62 here (exact path taken)
            sub |= np.minimum(rank1, exact) > chunk_lim
    return r_idx, c_idx, sub


def _stage_overflows(res: np.ndarray, mask: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     n_cols: int) -> tuple[_StageOverflows, ...]:
    """Per register that overflowed (pipeline order), its outputs and first values, from the
    scan result ``res`` of the outputs ``(rows, cols)`` (row-major order)."""
    out = []
    flat = None
    for bit in (kern.TREE, kern.ACC):
        hit = (mask & bit) != 0
        if not hit.any():
            continue
        if flat is None:
            flat = rows * n_cols + cols
        _, r_hi, r_lo = kern.STAGE_ROWS[bit]
        if hit.all():
            out.append(_StageOverflows(kern.STEP_NAMES[bit], flat, res[r_hi].copy(), res[r_lo].copy()))
        else:
            sel = np.flatnonzero(hit)
            out.append(_StageOverflows(kern.STEP_NAMES[bit], flat[sel], res[r_hi, sel], res[r_lo, sel]))
    return tuple(out)


def _raise_first(dp: Datapath, rows: np.ndarray, cols: np.ndarray, res: np.ndarray, stop: int) -> None:
    """Raise AccumulatorOverflow for the first output (row-major) that a raise-policy register stopped."""
    raised = np.flatnonzero(res[kern.R_MASK] & stop)
    s = int(raised[0])  # suspects are listed in row-major order
    stage = int(res[kern.R_MASK, s]) & stop  # one bit: the scan stops at the first raise-policy overflow
    r_k, r_hi, r_lo = kern.STAGE_ROWS[stage]
    i, j, k = int(rows[s]), int(cols[s]), int(res[r_k, s])
    value = kern.value128(res[r_hi, s], res[r_lo, s])
    if stage == kern.TREE:
        bits = dp.chunk_bits or 0
        where = f"the {bits}-bit adder-tree output"
    else:
        bits = dp.acc_bits
        where = f"the {bits}-bit accumulator"
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    raise AccumulatorOverflow(
        f"{where} overflowed at output ({i}, {j}), k step {k}: {value} is outside [{lo}, {hi}]; "
        f"{raised.size} output(s) overflow (the first in row-major order is shown). "
        "Use overflow='wrap' or 'saturate' to emulate past it, or a wider acc_bits.",
        index=(i, j), k=k, value=value, bits=bits)


def trace_output(A: Any, B: Any, datapath: Datapath, i: int, j: int, bias: Any = None) -> list[int]:
    """The accumulator register of output (i, j) after each add, in order (Python ints).

    A slow, literal emulation for golden-vector taps and debugging; the policy
    ``raise`` is treated as ``wrap`` here so the whole trace is returned. The
    arguments are checked as by :func:`matmul`; ``(i, j)`` must be an output index
    (non-negative, no wrap-around).
    """
    dp = as_datapath(datapath, default=False)
    A, B, bias64 = _operands(A, B, dp, bias)
    M, K = A.shape
    N = B.shape[1]
    for name, v, n in (("i", i, M), ("j", j, N)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"trace_output: {name} must be an integer output index, got {short_repr(v)}")
        if not 0 <= int(v) < n:
            raise ShapeError(f"trace_output: output index ({i}, {j}) is outside the {M}x{N} (M x N) result "
                             f"({name} must be from 0 to {n - 1})")
    i, j = int(i), int(j)
    acc = dp.acc
    reg = int(bias64[j])
    out = []
    for k0 in range(0, K, dp.k_chunk):
        t = sum(int(A[i, k]) * int(B[k, j]) for k in range(k0, min(k0 + dp.k_chunk, K)))
        if dp.chunk_bits is not None:
            ct = IntType(dp.chunk_bits)
            if not ct.contains(t):
                t = ct.saturate(t) if dp.chunk_policy == "saturate" else ct.wrap(t)
        reg += t
        if not acc.contains(reg):
            reg = acc.saturate(reg) if dp.overflow == "saturate" else acc.wrap(reg)
        out.append(reg)
    return out
