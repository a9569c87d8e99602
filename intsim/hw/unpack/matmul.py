"""IM-Unpack GEMMs on a low-bit datapath: :func:`unpack_matmul` (the low-bit GEMMs through
:func:`intsim.matmul`, then the exact reassembly), its result (:class:`UnpackResult`,
:class:`LowBitGemm`) and :func:`unpack_operands`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.errors import AccumulatorOverflow, ConfigError
from ...core.opcounts import OpCounts
from ...regs.registers import RegisterEvent
from ..datapath import Datapath, as_datapath
from ..gemm import GemmResult, matmul, register_of
from .kernels import k_reassemble, k_shift_add
from .operands import UnpackedPair, check_operands, check_strategy, pair_bits, unpack_pair

#: Width at which the reassembly shifts and adds are counted (the int64 register).
REASSEMBLY_BITS = 64


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
    ba, bb = pair_bits(bits)
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
             admit_min: bool, narrow: bool = False) -> tuple[Datapath, str, str, int, int, tuple[int, int, int],
                                                             UnpackedPair]:
    """The checked arguments of :func:`unpack_matmul` and :func:`unpack_operands`, and the pair (its digit
    matrices int64, or with ``narrow`` of the datapath operands' dtypes)."""
    dp = as_datapath(datapath)
    bits_a, bits_b = _datapath_bits(dp, bits)
    sa_name = check_strategy(strategy_a, "strategy_a")
    sb_name = check_strategy(strategy_b, "strategy_b")
    A64, B64 = check_operands(A, B)
    dtypes = (dp.a.dtype, dp.b.dtype) if narrow else (np.int64, np.int64)
    pair = unpack_pair(A64, B64, sa_name, sb_name, bits_a, bits_b, admit_min, *dtypes)
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
                                                                     admit_min, narrow=True)
    Ap, Bp = pair.a, pair.b  # of the datapath's dtypes: the reordering below moves fewer bytes
    Mp, Kp = Ap.shape
    Np = Bp.shape[1]
    ishift = pair.inner_shift
    order = None
    if ishift.size > 1 and np.any(ishift[1:] < ishift[:-1]):  # group equal shifts
        order = np.argsort(ishift, kind="stable")
        ishift = ishift[order]
    cuts = np.flatnonzero(ishift[1:] != ishift[:-1]) + 1
    starts = np.concatenate([[0], cuts]) if ishift.size else np.zeros(0, np.int64)
    ends = np.concatenate([cuts, [ishift.size]]) if ishift.size else np.zeros(0, np.int64)
    shifts = [int(ishift[k0]) for k0 in starts.tolist()]
    # identity row and column maps, no row or column shifts, and every sum provably inside int64: the
    # product is sum_t G_t << t, folded in as each G_t is computed (its array is then released)
    plain = _plain_sum(shifts, pair, M, N, dp)
    ops = OpCounts()
    gemms: list[LowBitGemm] = []
    results: list[tuple[int, GemmResult]] = []  # kept for the reassembly unless plain
    reports: list[tuple[tuple, int]] = []  # each GEMM's overflow records and width, for the events
    overflow = np.zeros((M, N), bool)
    values = None
    for k0, k1 in zip(starts.tolist(), ends.tolist(), strict=True):
        t = int(ishift[k0])
        if order is not None:  # the lines of this shift, gathered into contiguous operands
            a_t, b_t = Ap[:, order[k0:k1]], Bp[order[k0:k1]]
        else:
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
        reports.append((g._overflows, Np))
        if not plain:
            results.append((t, g))
        elif values is None:
            values = g.values  # this call's own array
        else:
            k_shift_add(values, shifts[0] if len(gemms) == 2 else 0, g.values, t)
        del g
    ops += _reassembly_ops(shifts, pair.a_shift, pair.b_shift, M, N)
    if plain:
        if len(gemms) == 1:
            np.left_shift(values, shifts[0], out=values)
    elif len(results) == 1 and results[0][0] == 0 and (Mp, Np) == (M, N) and not pair.a_shift.any() \
            and not pair.b_shift.any():
        values = results[0][1].values  # nothing was split: the low-bit GEMM is the product
    else:
        values = np.zeros((M, N), np.int64)
        for t, g in results:
            if not k_reassemble(values, g.values, pair.a_src, pair.a_shift, pair.b_src, pair.b_shift, t):
                values = _reassemble_exact(results, pair, M, N)
                break
    events = _unpack_events(reports, pair, N, dp) if overflow.any() else ()
    return UnpackResult(values, overflow, tuple(gemms), ops, (M, K, N), (Mp, Kp, Np), sa_name, sb_name,
                        bits_a, bits_b, admit_min, dp, events)


def _plain_sum(shifts: list[int], pair: UnpackedPair, M: int, N: int, dp: Datapath) -> bool:
    """True when the reassembly of the low-bit GEMMs with inner shifts ``shifts`` is
    ``sum_t G_t << t`` exactly in int64: row i of A' and column j of B' feed output (i, j) unshifted,
    and sum_t 2**(acc_bits - 1) * 2**t < 2**63 bounds every partial sum (each G_t is an accumulator
    register: |G_t| <= 2**(acc_bits - 1))."""
    if not shifts or pair.a_src.size != M or pair.b_src.size != N or pair.a_shift.any() or pair.b_shift.any() \
            or any(t < 0 for t in shifts):
        return False
    if sum(1 << t for t in shifts) << (dp.acc_bits - 1) >= 2**63:
        return False
    return bool(np.array_equal(pair.a_src, np.arange(M)) and np.array_equal(pair.b_src, np.arange(N)))


def _unpack_events(reports: list[tuple[tuple, int]], pair: UnpackedPair, N: int,
                   dp: Datapath) -> tuple[RegisterEvent, ...]:
    """The events of :attr:`UnpackResult.events` from the low-bit GEMMs' overflowing outputs (``reports``:
    per GEMM, its overflow records and its number of output columns)."""
    events = []
    for step in ("tree", "acc"):
        orig, found = [], []
        for overflows, n_cols in reports:
            for h in overflows:
                if h.step == step:
                    r, q = np.divmod(h.flat, n_cols)
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
