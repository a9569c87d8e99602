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
* Zero points (``a_zero_point``, ``b_zero_point``; ONNX ``MatMulInteger``): with
  ``Datapath.zero_points="operands"`` the proof and the scans run on the shifted operands
  ``A - a_zp`` and ``B - b_zp`` (int16 for 8-bit types); the cleared outputs come from the
  integer engine on the raw operands plus the exact int64 correction
  ``- a_zp (colsum(B) - K b_zp) - b_zp rowsum(A)`` when an engine serves them, else from the
  shifted operands as above. With ``"correction"`` the datapath runs on the raw operands and the
  exact correction is added last (:func:`matmul`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..core.arrays import as_int_array, as_int_matrix, short_repr, to_int64
from ..core.errors import AccumulatorOverflow, ConfigError, DTypeError, OperandRangeError, ShapeError
from ..core.heap import keep_heap
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..regs.registers import RegisterEvent
from . import gemm_kernels as kern
from . import intdot
from .chunks import run_chunks
from .datapath import Datapath, as_datapath

__all__ = ["GemmResult", "matmul", "gemm_ops", "trace_output"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
_MIN_F32_BLOCK = 256
_SPOT_CHECKS = 8
#: A pass over one operand entry costs about as much as this many engine MACs (the thread pool's work
#: estimate: operands of a million entries or more are read by two threads).
_PASS_WEIGHT = 64
_TREE_COUNT_BLOCK = 1 << 22  # elements per block of adder-tree sums when counting their overflows

keep_heap()  # freed GEMM outputs stay in the heap for the next ones (see intsim.core.heap)


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
        int64 (M, N): the k of the last product in the first overflowing add, -1 where none;
        K for the zero-point correction add (``zero_points="correction"``).
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
    tree_overflow_count, n_tree_overflows:
        per output, and in all, the adder-tree sums that left the ``chunk_bits`` register (with
        :meth:`Datapath.vpmaddubsw <intsim.Datapath.vpmaddubsw>`: the pair sums ``VPMADDUBSW``
        saturated; see :attr:`tree_overflow_count`).
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
    #: the adder-tree overflow counts: the (M, N) array, None (0 everywhere) or a function returning
    #: (rows, cols, counts) of the outputs whose tree overflowed, called at first access.
    _tree_counts: Any = field(default=None, repr=False, compare=False)

    @property
    def tree_overflow_count(self) -> np.ndarray:
        """int64 (M, N): per output, the number of adder-tree sums (groups of ``k_chunk`` products)
        whose exact value left the ``chunk_bits`` register (then ``chunk_policy`` applied); 0 everywhere
        without ``chunk_bits``. With :meth:`Datapath.vpmaddubsw <intsim.Datapath.vpmaddubsw>` these are
        the pair sums that ``VPMADDUBSW`` saturated to int16. The first of them is at
        ``first_overflow_k`` (unless an accumulator add overflowed earlier), and the ``"tree"`` event
        counts the outputs where this is positive. Computed at first access from the operands of the
        outputs whose tree overflowed.

        >>> import numpy as np
        >>> from intsim import Datapath, matmul
        >>> r = matmul(np.array([[255, 255, 255, 255]]), np.array([[127], [127], [-128], [-128]]),
        ...            Datapath.vpmaddubsw())
        >>> r.values.tolist(), r.tree_overflow_count.tolist(), r.n_tree_overflows
        ([[-1]], [[2]], 2)
        """
        tc = self._tree_counts
        if not isinstance(tc, np.ndarray):
            arr = np.zeros(self.values.shape, np.int64)
            if tc is not None:
                rows, cols, counts = tc()
                arr[rows, cols] = counts
            object.__setattr__(self, "_tree_counts", arr)
            tc = arr
        return tc

    @property
    def n_tree_overflows(self) -> int:
        """The adder-tree sums that left the ``chunk_bits`` register, over all outputs
        (``tree_overflow_count.sum()``)."""
        return int(self.tree_overflow_count.sum())

    @property
    def first_overflow_k(self) -> np.ndarray:
        """int64 (M, N): the k of the last product in the first overflowing add, -1 where none; K
        when the first overflow was the zero-point correction add (``zero_points="correction"``)."""
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


def gemm_ops(M: int, K: int, N: int, dp: Datapath, *, a_zero_points: int = 0, b_zero_points: int = 0) -> OpCounts:
    """Exact op counts of an (M, K) @ (K, N) GEMM on ``dp``.

    With ``k_chunk == 1``: ``M*N*K`` MACs ``(a_bits, b_bits, acc_bits)``. With
    ``k_chunk > 1``: ``M*N*K`` multiplies, ``M*N*(K - G)`` adder-tree adds at the tree
    width and ``M*N*G`` accumulator adds, G = ceil(K / k_chunk) groups per output.
    Memory: each A and B element read once, each output written once at acc_bits.

    ``a_zero_points`` / ``b_zero_points``: how many zero points of A / B the GEMM reads (0: none,
    1: per tensor, M / N: per row / column), each read once. With ``dp.zero_points="operands"``
    every element of A (B) is shifted once as it enters the array (``M*K`` adds at ``a_bits + 1``;
    ``K*N`` at ``b_bits + 1``) and the multipliers take ``a_bits + 1`` (``b_bits + 1``) signed
    operands. With ``"correction"``: the column sums of B (``K*N`` adds at acc_bits, for a zero point
    of A), the row sums of A (``M*K`` adds, for a zero point of B), ``M`` adds folding ``K * a_zp``
    into the row sums when both are given, per output one MAC ``(a_bits, acc_bits, acc_bits)`` and /
    or ``(b_bits, acc_bits, acc_bits)`` forming the correction and one accumulator add.

    >>> from intsim import Datapath
    >>> sorted(gemm_ops(2, 3, 4, Datapath(), a_zero_points=1).items())
    [(('add', (9,)), 6), (('mac', (9, 8, 32)), 24), (('read', (8,)), 19), (('write', (32,)), 8)]
    """
    dims = []
    for name, v in (("M", M), ("K", K), ("N", N), ("a_zero_points", a_zero_points),
                    ("b_zero_points", b_zero_points)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or int(v) < 0:
            raise ConfigError(f"gemm_ops: {name} must be a non-negative integer, got {short_repr(v)}")
        dims.append(int(v))
    return _gemm_ops(*dims[:3], as_datapath(dp, "dp", default=False), dims[3], dims[4])


def _gemm_ops(M: int, K: int, N: int, dp: Datapath, na: int = 0, nb: int = 0) -> OpCounts:
    ops = OpCounts()
    shift = dp.zero_points == "operands"
    a_t = IntType(dp.a.bits + 1) if na and shift else dp.a  # the multipliers' operand types
    b_t = IntType(dp.b.bits + 1) if nb and shift else dp.b
    if M * N * K:
        if dp.k_chunk == 1:
            ops.add("mac", (a_t.bits, b_t.bits, dp.acc_bits), M * N * K)
        else:
            groups = -(-K // dp.k_chunk)
            tree = dp.chunk_bits if dp.chunk_bits is not None else \
                a_t.bits + b_t.bits + (0 if a_t.signed or b_t.signed else 1) + (dp.k_chunk - 1).bit_length()
            ops.add("mul", (a_t.bits, b_t.bits), M * N * K)
            ops.add("add", (tree,), M * N * (K - groups))
            ops.add("add", (dp.acc_bits,), M * N * groups)
    ops.add("read", (dp.a.bits,), M * K + na)
    ops.add("read", (dp.b.bits,), K * N + nb)
    ops.add("write", (dp.acc_bits,), M * N)
    if shift:
        if na:
            ops.add("add", (a_t.bits,), M * K)
        if nb:
            ops.add("add", (b_t.bits,), K * N)
    elif na or nb:
        acc = dp.acc_bits
        if na:
            ops.add("add", (acc,), K * N)
            ops.add("mac", (dp.a.bits, acc, acc), M * N)
        if nb:
            ops.add("add", (acc,), M * K + (M if na else 0))
            ops.add("mac", (dp.b.bits, acc, acc), M * N)
        ops.add("add", (acc,), M * N)
    return ops


def _operands(A: Any, B: Any, dp: Datapath, bias: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked operands of :func:`matmul` and :func:`trace_output`: A, B and the bias as int64."""
    return _operands_ranges(A, B, dp, bias)[:3]


def _in_type(X: np.ndarray, t: IntType, name: str) -> tuple[int, int, bool]:
    """Bounds (lo, hi) of X's entries after checking that every entry lies in t (raises t.check's
    error if not), and whether they are X's exact min and max: when X's dtype is of one byte and
    already keeps its entries inside t, no pass is made and (lo, hi) are the dtype's limits (False)."""
    if X.size and X.dtype.kind in "iu" and X.dtype.itemsize == 1:  # byte operands: the limits are tight enough
        info = np.iinfo(X.dtype)
        if int(info.min) >= t.min and int(info.max) <= t.max:
            return int(info.min), int(info.max), False
    lo, hi = _min_max(X)
    if lo < t.min or hi > t.max:
        t.check(X, name)
    return lo, hi, True


def _operands_ranges(A: Any, B: Any, dp: Datapath,
                     bias: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int, bool]]:
    """:func:`_operands` and bounds (min A, max A, min B, max B, exact) from at most one pass over each
    operand (``exact`` False: some are the dtype's limits, see :func:`_in_type`)."""
    A = as_int_matrix(A, "A")
    B = as_int_matrix(B, "B")
    M, K = A.shape
    K2, N = B.shape
    if K != K2:
        raise ShapeError(f"inner dimensions differ: A is {M}x{K} (M x K) but B is {K2}x{N} (K x N)")
    a_lo, a_hi, a_exact = _in_type(A, dp.a, "A")
    b_lo, b_hi, b_exact = _in_type(B, dp.b, "B")
    ranges = (a_lo, a_hi, b_lo, b_hi, a_exact and b_exact)
    if bias is None:
        return A, B, np.zeros(N, np.int64), ranges
    acc = dp.acc
    barr = as_int_array(bias, "bias")
    if barr.shape != (N,):
        raise ShapeError(f"bias must have shape ({N},) (one value per output column), got {barr.shape}")
    try:
        acc.check(barr, "bias")
    except OperandRangeError as exc:
        raise OperandRangeError(f"{exc} (the accumulator register is {acc.name})", count=exc.count,
                                index=exc.index, value=exc.value) from None
    return A, B, to_int64(barr, "bias"), ranges


def _min_max(x: np.ndarray) -> tuple[int, int]:
    """(min, max) of x as Python ints; (0, 0) when empty."""
    if x.size == 0:
        return 0, 0
    fast = kern.byte_range(x)
    if fast is not None:
        return fast
    return int(x.min()), int(x.max())


def _max0(x: np.ndarray) -> int:
    """max(x) as a Python int, 0 when x is empty."""
    return int(x.max()) if x.size else 0


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


def _abs_product(A: np.ndarray, B: np.ndarray, pmax: int, amax: int, bmax: int) -> np.ndarray | None:
    """Exact |A| @ |B| as int64 where it is exactly computable in float64; else None. ``amax`` and
    ``bmax`` bound |A| and |B| (so |A| lies in [0, amax] and |B| in [0, bmax]: no range pass)."""
    K = A.shape[1]
    if pmax * K >= _F64_EXACT:
        return None
    return _exact_product(_abs_narrow(A), _abs_narrow(B), pmax, (0, amax, 0, bmax))[0]


def _abs_narrow(X: np.ndarray) -> np.ndarray:
    """|X| in the narrowest dtype that holds it (uint8 for int8 data: np.abs wraps -128 to -128, whose
    byte is 128 = |-128|; int16 for uint8 data)."""
    if X.dtype == np.int8:
        return np.abs(X).view(np.uint8)
    wide = np.int16 if X.dtype.itemsize == 1 else np.int32 if X.dtype.itemsize == 2 else np.int64
    return np.abs(X.astype(wide))


def _spot_check(A: np.ndarray, B: np.ndarray, values: np.ndarray, suspect: tuple | None,
                bias64: np.ndarray, method: str) -> None:
    """Recompute a few cleared outputs in int64; a mismatch means the BLAS (or engine) is not exact.
    The outputs: rows spread over A (first, last and between) in two columns of B (the middle and
    last of the columns without outputs in doubt, if any), so that only two columns of B are gathered."""
    M, N = values.shape
    pool = np.arange(N, dtype=np.int64)
    if suspect is not None and suspect[1].size < N:
        free = np.ones(N, bool)
        free[suspect[1]] = False
        pool = pool[free]
    # one column for the integer engines (exact by construction and self-tested), two for the BLAS
    cols = np.unique(pool[[pool.size - 1] if method in intdot.ENGINES else [pool.size // 2, pool.size - 1]])
    n_rows = 2 * _SPOT_CHECKS
    rows = (np.arange(n_rows, dtype=np.int64) * (M - 1)) // max(n_rows - 1, 1)
    rows = rows.reshape(-1, 4).T.reshape(-1)  # every 4th first: the first few already span A's rows
    rr, cc = np.repeat(rows, cols.size), np.tile(cols, rows.size)
    if suspect is not None:
        keep = ~_are_suspects(suspect, rr, cc)
        rr, cc = rr[keep], cc[keep]
    rr, cc = rr[:_SPOT_CHECKS], cc[:_SPOT_CHECKS]
    if rr.size == 0:
        return
    Bc = B[:, cols].astype(np.int64)  # K x (one or two columns)
    want = np.einsum("tk,kt->t", A[rr].astype(np.int64), Bc[:, np.searchsorted(cols, cc)]) + bias64[cc]
    got = values[rr, cc]
    bad = np.flatnonzero(want != got)
    if bad.size:  # pragma: no cover - would mean a non-exact BLAS or engine
        t = int(bad[0])
        raise RuntimeError(f"internal check failed: {method} gave {int(got[t])} for output "
                           f"({int(rr[t])}, {int(cc[t])}), exact value {int(want[t])}; please report "
                           "this with your BLAS build")


def _are_suspects(suspect: tuple, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each output (rows[t], cols[t]): is it in doubt (``suspect`` = (r_idx, c_idx, sub), see
    :func:`_stage1`)? Vectorized."""
    r_idx, c_idx, sub = suspect
    if r_idx.size == 0 or c_idx.size == 0:
        return np.zeros(rows.size, bool)
    a = np.minimum(np.searchsorted(r_idx, rows), r_idx.size - 1)
    b = np.minimum(np.searchsorted(c_idx, cols), c_idx.size - 1)
    return (r_idx[a] == rows) & (c_idx[b] == cols) & sub[a, b]


def matmul(A: Any, B: Any, datapath: Datapath | None = None, bias: Any = None, *,
           a_zero_point: Any = None, b_zero_point: Any = None) -> GemmResult:
    """Run ``A @ B`` on the emulated datapath, bit-exactly; with zero points, ``(A - a_zp) @ (B - b_zp)``.

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
    a_zero_point, b_zero_point:
        Optional zero points as ONNX ``MatMulInteger`` defines them: ``a_zero_point`` a scalar
        (shape ``()`` or ``(1,)``: per tensor) or shape ``(M,)`` (one per row of A), in
        ``datapath.a``; ``b_zero_point`` a scalar or shape ``(N,)`` (one per column of B), in
        ``datapath.b``. ``None`` (default): no zero point, today's GEMM bit for bit. The result is
        ``sum_k (A[i, k] - a_zp[i]) * (B[k, j] - b_zp[j])`` through the datapath; where the
        subtraction happens is ``datapath.zero_points``:

        ``"operands"`` (default): each operand is shifted before the multipliers (exact; the
        multipliers see signed integers of ``a.bits + 1`` and ``b.bits + 1`` bits, e.g. [-255, 255]
        for uint8 or int8), so the adder tree and the accumulator see the shifted products, add by
        add in ascending k, exactly as the datapath definition says of ``A @ B``; overflows are
        detected and reported per output as without zero points.

        ``"correction"``: the datapath runs on the raw operands (bias, products, tree, accumulator,
        their policies and overflow reports as without zero points), then one more add puts the
        exact correction ``K a_zp[i] b_zp[j] - a_zp[i] sum_k B[k, j] - b_zp[j] sum_k A[i, k]``
        into the accumulator under its policy; an overflow there is an ``"acc"`` event with
        ``first_overflow_k`` K (if that output had none before). The correction adds are a second
        pass after the GEMM: under ``raise`` an overflow of the GEMM itself is raised first (the
        first in row-major order), and only without one the first correction add that overflows.

    Returns
    -------
    GemmResult
        ``values`` (int64 registers), ``overflow`` flags, ``first_overflow_k``, ``ops`` and the
        overflow report (``events``, ``tree_overflow_count``).

    Raises
    ------
    ConfigError
        ``datapath`` is not a :class:`~intsim.Datapath`.
    DTypeError
        float, bool, string or non-integer object operands or zero points; a masked entry.
    ShapeError
        operands that are not 2-D or whose inner dimensions differ; ragged lists; a zero point
        that is neither a scalar nor one per row of A (column of B).
    OperandRangeError
        an entry outside its operand type, a zero point outside its operand's type, or a bias
        outside the accumulator range.
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
    >>> u8s8 = Datapath(a=IntType(8, signed=False), b=IntType(8), overflow="wrap")
    >>> matmul([[200, 10]], [[3], [-4]], u8s8, a_zero_point=128, b_zero_point=[1]).values.tolist()
    [[734]]
    """
    dp = as_datapath(datapath)
    A, B, bias64, ranges = _operands_ranges(A, B, dp, bias)
    M, K = A.shape
    N = B.shape[1]
    azp, na = _zero_point(a_zero_point, dp.a, M, "a_zero_point", "row of A")
    bzp, nb = _zero_point(b_zero_point, dp.b, N, "b_zero_point", "column of B")
    ops = _gemm_ops(M, K, N, dp, na, nb)
    if azp is None and bzp is None:
        return _run(A, B, bias64, bias is not None, dp, ops, ranges=ranges)
    if dp.zero_points == "correction":
        return _correct(_run(A, B, bias64, bias is not None, dp, ops, ranges=ranges), A, B, azp, bzp)
    A_s = A if azp is None else _shift(A, azp[:, None], dp.a)
    B_s = B if bzp is None else _shift(B, bzp[None, :], dp.b)
    return _run(A_s, B_s, bias64, bias is not None, dp, ops, raw=(A, B, azp, bzp, dp))


def _zero_point(zp: Any, t: IntType, n: int, name: str, per: str) -> tuple[np.ndarray | None, int]:
    """A checked zero point as int64 of shape (n,) (per tensor: broadcast) and how many values it has
    (1 or n; 0 and None when ``zp`` is None)."""
    if zp is None:
        return None, 0
    if isinstance(zp, (bool, np.bool_)):
        raise DTypeError(f"{name}: got a bool where an integer zero point is due")
    arr = as_int_array(zp, name)
    if arr.ndim == 0 or arr.shape == (1,):
        count = 1
    elif arr.shape == (n,):
        count = n
    else:
        raise ShapeError(f"{name} must be a scalar (shape () or (1,): per tensor) or have shape ({n},) "
                         f"(one per {per}), got shape {arr.shape}")
    try:
        t.check(arr, name)
    except OperandRangeError as exc:
        raise OperandRangeError(f"{exc} (a zero point must lie in its operand's type, {t.name})", count=exc.count,
                                index=exc.index, value=exc.value) from None
    vec = to_int64(arr, name).reshape(-1)
    return (np.broadcast_to(vec, (n,)) if count == 1 else vec), count


def _shift(X: np.ndarray, zp: np.ndarray, t: IntType) -> np.ndarray:
    """``X - zp`` exactly, in the narrowest of int16 / int32 / int64 holding every difference of two
    values of ``t`` (at most 2**bits - 1 in magnitude)."""
    dtype = np.int16 if t.bits <= 15 else np.int32 if t.bits <= 31 else np.int64
    out = X.astype(dtype)
    out -= zp.astype(dtype)
    return out


def _zp_product(raw: tuple, A: np.ndarray, B: np.ndarray, pmax: int, ranges: tuple[int, int, int, int],
                bias: np.ndarray | None) -> tuple[np.ndarray, str]:
    """:func:`_exact_product` of the shifted operands ``A``, ``B``: by an integer engine on the raw
    operands of ``raw = (A_raw, B_raw, a_zp or None, b_zp or None, datapath)`` plus the exact int64
    correction ``- a_zp (colsum(B_raw) - K b_zp) - b_zp rowsum(A_raw)`` when an engine serves the raw
    operands (a per-column vector goes in with the bias, a per-row vector or a rank-one term is
    subtracted after), else from the shifted operands themselves."""
    A_raw, B_raw, azp, bzp, dp = raw
    M, K = A.shape
    if not (dp.a.bits <= 8 and dp.b.bits <= 8 and K < 2**40):  # int64 holds K * 4 * 255**2 and the sums
        return _exact_product(A, B, pmax, ranges, bias)
    a_uniform = azp is None or azp.strides == (0,) or M == 1  # per tensor (broadcast) or zero
    b_uniform = bzp is None or bzp.strides == (0,) or B.shape[1] == 1
    col = None  # a term constant down each column: - a_zp (colsum(B) - K b_zp), when a_zp is per tensor
    if azp is not None:
        colsum = B_raw.sum(axis=0, dtype=np.int64)
        if bzp is not None:
            colsum -= K * bzp
        if a_uniform:
            col = -int(azp[0]) * colsum
    if bias is not None:
        col = bias if col is None else col + bias
    hit = intdot.engine_product(A_raw, B_raw, dp.a.min, dp.a.max, dp.b.min, dp.b.max, bias=col)
    if hit is None:
        return _exact_product(A, B, pmax, ranges, bias)
    values, method = hit
    if azp is not None and not a_uniform:
        values -= np.multiply.outer(azp, colsum)
    if bzp is not None:
        rowsum = A_raw.sum(axis=1, dtype=np.int64)
        if b_uniform:
            values -= (rowsum * int(bzp[0]))[:, None]
        else:
            values -= np.multiply.outer(rowsum, bzp)
    return values, method


def _correct(r: GemmResult, A: np.ndarray, B: np.ndarray, azp: np.ndarray | None,
             bzp: np.ndarray | None) -> GemmResult:
    """``zero_points="correction"``: one add of the exact correction
    ``c = - a_zp (colsum(B) - K b_zp) - b_zp rowsum(A)`` into each accumulator register of ``r``
    (the GEMM of the raw operands) under the accumulator's policy."""
    dp = r.datapath
    M, K = A.shape
    N = B.shape[1]
    if M * N * K == 0:
        return r
    acc = dp.acc
    # the exact correction, in int64 when every term and the register plus it provably fit, else Python ints
    a_abs = _abs_max(azp) if azp is not None else 0
    b_abs = _abs_max(bzp) if bzp is not None else 0
    bound = K * (a_abs * (_abs_max(B) + b_abs) + b_abs * _abs_max(A)) + (1 << (dp.acc_bits - 1))
    wide = bound >= 2**62
    cast = (lambda x: x.astype(object)) if wide else (lambda x: x)
    corr = np.zeros((M, N), object if wide else np.int64)
    if azp is not None:
        colsum = cast(B.sum(axis=0, dtype=np.int64))
        if bzp is not None:
            colsum = colsum - K * cast(bzp)
        corr -= cast(azp)[:, None] * colsum[None, :]
    if bzp is not None:
        corr -= cast(A.sum(axis=1, dtype=np.int64))[:, None] * cast(bzp)[None, :]
    total = cast(r.values) + corr
    bad = ((total < acc.min) | (total > acc.max)).astype(bool)
    if not bad.any():
        return replace(r, values=total.astype(np.int64) if wide else total)
    flat_bad = np.flatnonzero(bad)
    if dp.overflow == "raise":
        i, j = divmod(int(flat_bad[0]), N)
        value = int(total[i, j])
        raise AccumulatorOverflow(
            f"the {dp.acc_bits}-bit accumulator overflowed at output ({i}, {j}) in the zero-point correction add "
            f"(k step {K}, after the last product): {value} is outside [{acc.min}, {acc.max}]; {flat_bad.size} "
            "output(s) overflow (the first in row-major order is shown). Use overflow='wrap' or 'saturate' to "
            "emulate past it, or a wider acc_bits.", index=(i, j), k=K, value=value, bits=dp.acc_bits)
    if dp.overflow == "wrap":
        fitted = (total - acc.min) % (1 << dp.acc_bits) + acc.min
    else:
        fitted = np.minimum(np.maximum(total, acc.min), acc.max)
    values = np.asarray(fitted).astype(np.int64)
    overflow = r.overflow | bad
    first_k = r.first_overflow_k.copy()
    first_k[bad & (first_k < 0)] = K
    # the accumulator's overflow record: outputs new to it get the corrected value as their first value
    stages = [h for h in r._overflows if h.step != "acc"]
    old = next((h for h in r._overflows if h.step == "acc"), None)
    new_flat = flat_bad if old is None else np.setdiff1d(flat_bad, old.flat, assume_unique=True)
    vals = [int(v) for v in total.reshape(-1)[new_flat]]
    hi = np.array([v >> 64 for v in vals], np.int64)
    lo = np.array([(v & (2**64 - 1)) - (2**64 if v & 2**63 else 0) for v in vals], np.int64)
    if old is not None:
        new_flat = np.concatenate([old.flat, new_flat])
        hi, lo = np.concatenate([old.hi, hi]), np.concatenate([old.lo, lo])
        order = np.argsort(new_flat, kind="stable")
        new_flat, hi, lo = new_flat[order], hi[order], lo[order]
    stages.append(_StageOverflows("acc", new_flat.astype(np.int64), hi, lo))
    return replace(r, values=values, overflow=overflow, _first_k=first_k, _overflows=tuple(stages))


def _tree_counter(A_c: np.ndarray, B_c: np.ndarray, r_loc: np.ndarray, c_loc: np.ndarray, rows: np.ndarray,
                  cols: np.ndarray, dp: Datapath, pmax: int) -> Callable[[], tuple]:
    """The function :attr:`GemmResult.tree_overflow_count` calls: for the outputs (rows[s], cols[s]),
    row r_loc[s] of ``A_c`` times column c_loc[s] of ``B_c``, how many adder-tree sums left the
    ``chunk_bits`` register. Each tree sum is the exact sum of its group's products whatever the
    accumulator holds, so the count is a function of the operands alone: the sums of every group are
    formed block by block, as batched products in float32 when every one is an integer below 2**24
    (then exact in any order), float64 below 2**53, int64 below 2**63, else in Python ints."""

    def count() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ru, r_inv = np.unique(r_loc, return_inverse=True)
        cu, c_inv = np.unique(c_loc, return_inverse=True)
        kc, K = dp.k_chunk, A_c.shape[1]
        groups = -(-K // kc)
        bound = min(kc, K) * pmax  # bounds every product and every partial sum of a group
        dtype = np.float32 if bound < _F32_EXACT else np.float64 if bound < _F64_EXACT else \
            np.int64 if bound < 2**63 else object
        Ap = np.zeros((ru.size, groups * kc), dtype)
        Ap[:, :K] = A_c[ru]
        Bp = np.zeros((groups * kc, cu.size), dtype)
        Bp[:K] = B_c[:, cu]
        A3 = np.ascontiguousarray(Ap.reshape(ru.size, groups, kc).transpose(1, 0, 2))
        B3 = Bp.reshape(groups, kc, cu.size)
        lo, hi = -(1 << (dp.chunk_bits - 1)), (1 << (dp.chunk_bits - 1)) - 1
        if dtype is not object and dtype is not np.int64:
            lo, hi = max(lo, -bound), min(hi, bound)  # exact in the float type (|bound| < 2**24 or 2**53)
        counts = np.zeros((ru.size, cu.size), np.int64)
        step = max(1, _TREE_COUNT_BLOCK // max(1, ru.size * cu.size))
        for g0 in range(0, groups, step):
            T = np.matmul(A3[g0:g0 + step], B3[g0:g0 + step])
            counts += ((T < lo) | (T > hi)).astype(bool).sum(axis=0)
        return rows, cols, counts[r_inv, c_inv]

    return count


def _run(A: np.ndarray, B: np.ndarray, bias64: np.ndarray, has_bias: bool, dp: Datapath, ops: OpCounts,
         raw: tuple | None = None, ranges: tuple[int, int, int, int, bool] | None = None) -> GemmResult:
    """:func:`matmul` of checked operands: the datapath on ``A`` and ``B`` as given (shifted by their
    zero points when ``raw`` holds the raw operands and the zero points, see :func:`_zp_product`).
    ``ranges``: bounds (min A, max A, min B, max B, exact) of the operands if known (see
    :func:`_operands_ranges`); bounds that are not exact serve only when they prove every output safe."""
    M, K = A.shape
    N = B.shape[1]
    acc = dp.acc
    overflow = np.zeros((M, N), bool)
    first_k: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # -1 everywhere
    overflows: tuple[_StageOverflows, ...] = ()
    tree_counts = None
    if M == 0 or N == 0 or K == 0:
        values = np.broadcast_to(bias64, (M, N)).copy()
        return GemmResult(values, overflow, first_k, ops, dp)

    acc_lim = acc.max
    chunk_lim = (1 << (dp.chunk_bits - 1)) - 1 if dp.chunk_bits is not None else None
    group = min(dp.k_chunk, K)
    bias_max = _abs_max(bias64) if has_bias else 0
    for _ in range(2):
        if ranges is None:  # (min A, max A, min B, max B, exact)
            ranges = (*_min_max(A), *_min_max(B), True)
        amax, bmax = max(-ranges[0], ranges[1]), max(-ranges[2], ranges[3])
        pmax = amax * bmax
        globally_safe = bias_max + pmax * K <= acc_lim and (chunk_lim is None or group * pmax <= chunk_lim)
        if globally_safe or ranges[4]:
            break
        ranges = None  # the dtype's limits did not prove every output safe: the exact ranges might
    ranges = ranges[:4]
    # wrap / raise, one product per add, narrow: the suspects' first overflow by a first-exit scan and
    # the final register from the exact product (see gemm_kernels.scan_first)
    can_exit = dp.k_chunk == 1 and dp.chunk_bits is None and dp.overflow in ("wrap", "raise") \
        and not _needs_wide(dp, pmax, group)
    computed: list[tuple[np.ndarray, str]] = []

    def product() -> tuple[np.ndarray, str]:  # the exact bias + A @ B, computed once
        if not computed:
            if raw is not None:
                computed.append(_zp_product(raw, A, B, pmax, ranges, bias64 if has_bias else None))
            else:
                computed.append(_exact_product(A, B, pmax, ranges, bias64 if has_bias else None))
        return computed[0]

    t_sub = None  # the exact bias + A @ B on stage 1's rows x columns, when computed before stage 2
    if globally_safe:
        suspect = None
        n_suspect = 0
    else:
        st = _stage1(A, B, bias64, acc_lim, chunk_lim, group)
        r_idx, c_idx = st[0], st[1]
        if r_idx.size == 0 or c_idx.size == 0:
            suspect = (r_idx, c_idx, np.zeros((r_idx.size, c_idx.size), bool))
        else:
            # the product is needed anyway unless every output stays in doubt and is scanned in full; when
            # it is, its values tell stage 2 which outputs it could clear
            if can_exit or r_idx.size * c_idx.size < M * N:
                v = np.ascontiguousarray(product()[0])
                computed[0] = (v, computed[0][1])
                t_sub = _flat(v).take((r_idx[:, None] * N + c_idx[None, :]).reshape(-1)).reshape(r_idx.size, -1)
            suspect = (r_idx, c_idx, _stage2(A, B, bias64, pmax, acc_lim, chunk_lim, group, st, t_sub))
        n_suspect = int(np.count_nonzero(suspect[2]))
    first_exit = n_suspect > 0 and can_exit
    if n_suspect == M * N and not first_exit:
        values = np.empty((M, N), np.int64)
        method = "none"
    else:
        values, method = product()
    if n_suspect:
        values = np.ascontiguousarray(values)  # (a no-op for the results of _exact_product and np.empty)
        r_idx, c_idx, sub = suspect
        sr, sc = np.nonzero(sub)
        rows, cols = r_idx[sr], c_idx[sc]  # row-major order
        flat = rows * N + cols  # their positions in a C-ordered M x N array
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
            if A.dtype == np.int8 and B.dtype == np.int8:
                cast = lambda X, name: X  # noqa: E731 - int8 as it is (no copy)
            else:
                cast = (lambda X, name: X.astype(np.int16)) if small else to_int64
            A_c = cast(A if rows_u.size == M else A[rows_u], "A")
            B_c = cast(B if cols_u.size == N else B[:, cols_u], "B")
            total = _flat(values).take(flat) if t_sub is None else t_sub[sr, sc]
            res = kern.scan_first(A_c, B_c, bias64[cols_u], r_map.astype(np.int64), c_map.astype(np.int64),
                                  total, kp, pmax, _flat(values), flat)  # the final registers go to values
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
            if not first_exit:
                _flat(values).put(flat, res[kern.R_VAL])
            hit = fk >= 0
            _flat(overflow).put(flat[hit], True)
            first_k = (rows[hit], cols[hit], fk[hit])
        mask = res[kern.R_MASK]
        stop = kern.raising_stages(kp)
        if stop and (mask & stop).any():
            _raise_first(dp, rows, cols, res, stop)
        if mask.any():
            overflows = _stage_overflows(res, mask, rows, cols, N)
            tree_hit = np.flatnonzero(mask & kern.TREE)
            if tree_hit.size:  # only with chunk_bits, hence from kern.scan on int64 A_c, B_c
                tree_counts = _tree_counter(A_c, B_c, r_map[tree_hit], c_map[tree_hit], rows[tree_hit],
                                            cols[tree_hit], dp, pmax)
    if method != "none":
        _spot_check(A, B, values, suspect, bias64, method)
    return GemmResult(values, overflow, first_k, ops, dp, method, n_suspect, overflows, tree_counts)


def _flat(X: np.ndarray) -> np.ndarray:
    """X's 1-D view in C order (X must be C-contiguous); take/put on it move elements far faster
    than X[rows, cols]."""
    assert X.flags.c_contiguous
    return X.reshape(-1)


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


def _stage1(A: np.ndarray, B: np.ndarray, bias64: np.ndarray, acc_lim: int, chunk_lim: int | None,
            group: int) -> tuple:
    """Stage 1 of the overflow proof: the rows and columns whose bounds do not clear them, and the
    statistics stage 2 (:func:`_stage2`) uses.

    Every partial sum of output (i, j) is bounded by |bias_j| + S_ij with
    S_ij = sum_k |A[i,k]| |B[k,j]| <= min(rmax_i * csum_j, rsum_i * cmax_j), and every
    adder-tree sum by min(group * rmax_i * cmax_j, S_ij). Stage 1 clears whole rows and
    columns with these bounds; stage 2 takes the exact S on the rows x columns left, giving the
    outputs in doubt ``(r_idx, c_idx, sub)``: ``(r_idx[a], c_idx[b])`` where ``sub[a, b]``.
    Python ints / int64 only: no rounding in any bound.
    """
    stats: list = [None, None]

    def pass_over(i0: int, i1: int) -> None:  # A's rows and B's columns, one operand per thread
        for i in range(i0, i1):
            stats[i] = _row_col_abs(A, 1) if i == 0 else _row_col_abs(B, 0)

    run_chunks(pass_over, 2, _PASS_WEIGHT * (A.size + B.size))
    (rmax, rsum), (cmax, csum) = stats
    amax, bmax = int(rmax.max()), int(cmax.max())
    bias_max = _abs_max(bias64)
    # Stage 1: a column is safe if amax * csum_j + |bias_j| fits; a row if rsum_i * bmax + max|bias| fits.
    # In int64 when no term can reach 2**63 (checked in Python ints), else in Python ints.
    top = max(amax * _max0(csum), _max0(rsum) * bmax, group * amax * bmax) + bias_max
    if top < 2**63 and acc_lim < 2**63:
        babs = np.abs(bias64)  # |bias| <= bias_max < 2**63: no -2**63 here
        num = np.asarray
    else:
        babs = np.abs(bias64.astype(object))  # Python ints: exact even for -2**63
        num = lambda x: x.astype(object)  # noqa: E731
    col_bad = np.asarray(amax * num(csum) + babs > acc_lim, bool)
    row_bad = np.asarray(num(rsum) * bmax + bias_max > acc_lim, bool)
    if chunk_lim is not None:
        col_bad |= np.asarray(group * amax * num(cmax) > chunk_lim, bool)
        row_bad |= np.asarray(group * num(rmax) * bmax > chunk_lim, bool)
    return np.flatnonzero(row_bad), np.flatnonzero(col_bad), rmax, rsum, cmax, csum, amax, bmax, babs


def _stage2(A: np.ndarray, B: np.ndarray, bias64: np.ndarray, pmax: int, acc_lim: int, chunk_lim: int | None,
            group: int, st: tuple, t_sub: np.ndarray | None) -> np.ndarray:
    """Stage 2 of the overflow proof (see :func:`_stage1`) on the rows x columns stage 1 left: ``sub``.
    ``t_sub`` (optional): the exact int64 ``bias + A @ B`` on those rows x columns; since
    S_ij >= |A[i] @ B[:, j]|, S is then computed only on the rows and columns holding an output it
    could clear."""
    r_idx, c_idx, rmax, rsum, cmax, csum, amax, bmax, babs = st
    N = B.shape[1]
    sub_b = babs[c_idx]
    sub = np.ones((r_idx.size, c_idx.size), bool)
    rr, cc = np.arange(r_idx.size), np.arange(c_idx.size)  # the part of the submatrix stage 2 computes
    if t_sub is not None and acc_lim < 2**62 and pmax * A.shape[1] + _abs_max(bias64) < 2**62:
        # |bias_j| + S_ij <= acc_lim needs |bias_j| + |T_ij - bias_j| <= acc_lim (S_ij >= |T_ij - bias_j|),
        # and min(rank1, S_ij) <= chunk_lim needs min(rank1, |T_ij - bias_j|) <= chunk_lim
        d = np.abs(t_sub - bias64[c_idx][None, :])
        cand = d <= (acc_lim - sub_b.astype(np.int64))[None, :]
        if chunk_lim is not None:
            cand &= np.minimum(group * np.outer(rmax[r_idx], cmax[c_idx]), d) <= chunk_lim
        rr, cc = np.flatnonzero(cand.any(axis=1)), np.flatnonzero(cand.any(axis=0))
        if rr.size == 0:
            return sub
    r_sel, c_sel = r_idx[rr], c_idx[cc]
    # exact S on the submatrix where it can be computed exactly, else rank-one bounds
    exact = _abs_product(A if r_sel.size == A.shape[0] else A[r_sel], B if c_sel.size == N else B[:, c_sel], pmax,
                         amax, bmax)
    sb = sub_b[cc]
    if exact is None:
        r_o, c_o = rmax[r_sel].astype(object), cmax[c_sel].astype(object)
        bound = np.minimum(np.outer(r_o, csum[c_sel].astype(object)), np.outer(rsum[r_sel].astype(object), c_o))
        part = (bound + sb[None, :] > acc_lim).astype(bool)
        if chunk_lim is not None:
            part |= (np.minimum(group * np.outer(r_o, c_o), bound) > chunk_lim).astype(bool)
    else:
        if acc_lim >= 2**62:
            part = (exact.astype(object) + sb[None, :] > acc_lim).astype(bool)
        else:
            part = exact > (acc_lim - sb.astype(np.int64))[None, :]
        if chunk_lim is not None:
            rank1 = group * np.outer(rmax[r_sel], cmax[c_sel])  # < 2**62 here (exact path taken)
            part |= np.minimum(rank1, exact) > chunk_lim
    sub[np.ix_(rr, cc)] = part
    return sub


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


def trace_output(A: Any, B: Any, datapath: Datapath, i: int, j: int, bias: Any = None, *,
                 a_zero_point: Any = None, b_zero_point: Any = None) -> list[int]:
    """The accumulator register of output (i, j) after each add, in order (Python ints).

    A slow, literal emulation for golden-vector taps and debugging; the policy
    ``raise`` is treated as ``wrap`` here so the whole trace is returned. The
    arguments are checked as by :func:`matmul`; ``(i, j)`` must be an output index
    (non-negative, no wrap-around). With zero points the products are those of the shifted
    operands (``datapath.zero_points="operands"``), or of the raw operands followed by one more
    entry, the register after the correction add (``"correction"``).

    >>> from intsim import Datapath
    >>> trace_output([[255, 255, 7]], [[127], [127], [1]], Datapath.vpmaddubsw(), 0, 0, a_zero_point=1)
    [32767, 32774, 32519]
    """
    dp = as_datapath(datapath, default=False)
    A, B, bias64 = _operands(A, B, dp, bias)
    M, K = A.shape
    N = B.shape[1]
    azp, _ = _zero_point(a_zero_point, dp.a, M, "a_zero_point", "row of A")
    bzp, _ = _zero_point(b_zero_point, dp.b, N, "b_zero_point", "column of B")
    for name, v, n in (("i", i, M), ("j", j, N)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"trace_output: {name} must be an integer output index, got {short_repr(v)}")
        if not 0 <= int(v) < n:
            raise ShapeError(f"trace_output: output index ({i}, {j}) is outside the {M}x{N} (M x N) result "
                             f"({name} must be from 0 to {n - 1})")
    i, j = int(i), int(j)
    za = int(azp[i]) if azp is not None else 0
    zb = int(bzp[j]) if bzp is not None else 0
    shift = dp.zero_points == "operands"
    a = [int(v) - (za if shift else 0) for v in A[i]]
    b = [int(v) - (zb if shift else 0) for v in B[:, j]]
    acc = dp.acc

    def fit(v: int) -> int:
        if acc.contains(v):
            return v
        return acc.saturate(v) if dp.overflow == "saturate" else acc.wrap(v)

    reg = int(bias64[j])
    out = []
    for k0 in range(0, K, dp.k_chunk):
        t = sum(a[k] * b[k] for k in range(k0, min(k0 + dp.k_chunk, K)))
        if dp.chunk_bits is not None:
            ct = IntType(dp.chunk_bits)
            if not ct.contains(t):
                t = ct.saturate(t) if dp.chunk_policy == "saturate" else ct.wrap(t)
        reg = fit(reg + t)
        out.append(reg)
    if not shift and (azp is not None or bzp is not None) and K:
        out.append(fit(reg + K * za * zb - za * sum(b) - zb * sum(a)))
    return out
