"""The single-operand IM-Unpack API: :func:`unpack_rows`, :func:`unpack_cols`, :func:`unpack`,
:func:`unpack_both`, :func:`unpack_plan` and their results (:class:`RowUnpack`,
:class:`ColUnpack`, :class:`BothUnpack`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .kernels import k_levels
from .operands import (
    check_bits,
    check_operands,
    check_strategy,
    digits,
    matrix64,
    plan_levels,
    scales_from_shifts,
    shifts_from_scales,
    split_levels,
    unpack_operand,
    value_range,
)

# ---------------------------------------------------------------------------------------------
# public single-operand API
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowUnpack:
    """Result of :func:`unpack_rows`: ``A == P^T diag(scales) matrix``.

    ``matrix`` (M' x K) int64, every entry in range; ``index`` (M',) the source row of
    each row; ``shifts`` (M',) with ``scales = 2**shifts`` (int64). Row i of A is the
    sum over ``{r : index[r] == i}`` of ``scales[r] * matrix[r]``.
    """

    matrix: np.ndarray
    index: np.ndarray
    shifts: np.ndarray
    bits: int

    @property
    def scales(self) -> np.ndarray:
        """int64 ``2**shifts`` (OperandRangeError if a scale reaches 2**63)."""
        return scales_from_shifts(self.shifts, "row scales")


@dataclass(frozen=True)
class ColUnpack:
    """Result of :func:`unpack_cols`: ``A @ B == a @ diag(scales) @ b``.

    ``a`` (M x K'), ``b`` (K' x N) int64; ``index`` (K',) source inner index of each
    inner line; ``shifts`` (K',) inner shifts, ``scales = 2**shifts``.
    """

    a: np.ndarray
    b: np.ndarray
    index: np.ndarray
    shifts: np.ndarray
    bits: int

    @property
    def scales(self) -> np.ndarray:
        """int64 ``2**shifts`` (OperandRangeError if a scale reaches 2**63)."""
        return scales_from_shifts(self.shifts, "inner scales")


@dataclass(frozen=True)
class BothUnpack:
    """Result of :func:`unpack_both` / :func:`unpack_plan` / :func:`unpack`.

    ``A @ B == P^T diag(row_scales) (a @ diag(scales) @ b)``: ``a`` (M' x K'), ``b``
    (K' x N); ``index``/``row_shifts`` (M',) source row and shift of each row of ``a``;
    ``inner_index``/``shifts`` (K',) source inner index and shift of each inner line.
    """

    a: np.ndarray
    b: np.ndarray
    index: np.ndarray
    row_shifts: np.ndarray
    inner_index: np.ndarray
    shifts: np.ndarray
    bits: int
    strategy: str

    @property
    def row_scales(self) -> np.ndarray:
        """int64 ``2**row_shifts``."""
        return scales_from_shifts(self.row_shifts, "row scales")

    @property
    def scales(self) -> np.ndarray:
        """int64 ``2**shifts`` (inner scales)."""
        return scales_from_shifts(self.shifts, "inner scales")


def unpack_rows(A: Any, bits: int, *, admit_min: bool = False) -> RowUnpack:
    """UnpackRow: split every row holding an out-of-range entry, level by level.

    Each pass takes the newest block of rows; every row of it with an entry
    ``|x| >= 2**(bits-1)`` is replaced by its low digits ``x mod s`` and its high
    digits ``floor(x / s)`` are appended (in row order) as a new block with scale
    ``s**level``. Output order: the M original rows (low parts where split), then the
    level-1 rows, then level 2, ...

    >>> r = unpack_rows(np.array([[1, 9], [2, 3]]), 4)
    >>> r.matrix.tolist(), r.index.tolist(), r.scales.tolist()
    ([[1, 1], [2, 3], [0, 1]], [0, 1, 0], [1, 1, 8])
    """
    b = check_bits(bits)
    X = matrix64(A, "A")
    lo, hi = value_range(b, admit_min)
    mat, src, sh = split_levels(X, 0, b - 1, lo, hi)
    return RowUnpack(mat.copy() if mat is X else mat, src, sh, b)


def unpack_cols(A: Any, B: Any, bits: int, scales: Any = None, *, admit_min: bool = False) -> ColUnpack:
    """UnpackColumn: :func:`unpack_rows` over A's columns (the inner dimension).

    The matching rows of ``B`` (K x N) are duplicated and the inner scale vector
    (``scales``, K positive powers of two, default ones) is extended by ``scale * s``.
    ``A @ diag(scales) @ B == a @ diag(result.scales) @ b``.

    >>> r = unpack_cols(np.array([[9, 1]]), np.array([[1], [2]]), 4)
    >>> r.a.tolist(), r.b.tolist(), r.scales.tolist()
    ([[1, 1, 1]], [[1], [2], [1]], [1, 1, 8])
    """
    b = check_bits(bits)
    A64, B64 = check_operands(A, B)
    shifts = shifts_from_scales(scales, A64.shape[1], "scales")
    lo, hi = value_range(b, admit_min)
    mat, src, sh = split_levels(A64, 1, b - 1, lo, hi)
    return ColUnpack(mat.copy() if mat is A64 else mat, B64[src], src, shifts[src] + sh, b)


def unpack(A: Any, B: Any, bits: int, strategy: str = "both", scales: Any = None, *,
           admit_min: bool = False) -> BothUnpack:
    """Unpack A (against its partner B) with any strategy in :data:`STRATEGIES`.

    The general form ``A @ diag(scales) @ B == P^T diag(row_scales) (a @ diag(s') @ b)``.
    ``plan`` here minimizes ``M' * K'`` (B's later unpacking is not known).
    """
    b = check_bits(bits)
    strat = check_strategy(strategy, "strategy")
    A64, B64 = check_operands(A, B)
    shifts = shifts_from_scales(scales, A64.shape[1], "scales")
    lo, hi = value_range(b, admit_min)
    counts = None
    if strat == "plan":
        L = k_levels(A64, digits(b - 1, lo, hi))
        counts = plan_levels(L, np.ones(A64.shape[0], np.int64), np.ones(A64.shape[1], np.int64))
    side = unpack_operand(A64, 0, strat, shifts, b - 1, lo, hi, counts)
    isrc = side.inner_src if side.inner_src is not None else np.arange(A64.shape[1], dtype=np.int64)
    mat = side.mat.copy() if side.mat is A64 else side.mat
    return BothUnpack(mat, B64[isrc], side.own_src, side.own_shift, isrc, side.inner_shift, b, strat)


def unpack_both(A: Any, B: Any, bits: int, scales: Any = None, *, admit_min: bool = False) -> BothUnpack:
    """UnpackBoth, the paper's greedy: one line per step.

    Each step counts the out-of-range entries per row and per column of the current
    matrix and splits the line with the most; ties go to the row, then to the lowest
    index. A split row's high digits become a new row (appended after all rows, scale
    times s, same source row); a split column's become a new column, with B's matching
    row duplicated and the inner scale times s.

    >>> r = unpack_both(np.array([[9, 9], [9, 1]]), np.eye(2, dtype=np.int64), 4)
    >>> r.a.tolist(), r.index.tolist(), r.row_scales.tolist(), r.scales.tolist()
    ([[1, 1], [1, 1], [1, 1], [1, 0]], [0, 1, 0, 1], [1, 1, 8, 8], [1, 1])
    """
    return unpack(A, B, bits, "both", scales, admit_min=admit_min)


def unpack_plan(A: Any, B: Any, bits: int, scales: Any = None, *, admit_min: bool = False) -> BothUnpack:
    """intsim's work-minimizing unpacking of A alone (see the module docs): the
    digit-copy counts per row and per column that minimize ``M' * K'`` exactly.

    >>> A = np.array([[100, 1, 1], [100, 1, 1], [100, 1, 1]])
    >>> r = unpack_plan(A, np.eye(3, dtype=np.int64), 4)
    >>> r.a.shape, r.scales.tolist()  # one column split twice beats three rows split twice
    ((3, 5), [1, 1, 1, 8, 64])
    """
    return unpack(A, B, bits, "plan", scales, admit_min=admit_min)
