"""Unpacked shapes and GEMM counts without the GEMMs (for reports): :class:`UnpackStats`,
:func:`unpack_stats` and :func:`compare_strategies`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.arrays import short_repr
from ...core.errors import ConfigError
from .kernels import k_levels
from .operands import (
    STRATEGIES,
    check_operands,
    check_strategy,
    digits,
    joint_plan,
    pair_bits,
    unpack_pair,
    value_range,
)

# ---------------------------------------------------------------------------------------------
# stats without materializing (for reports)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnpackStats:
    """Shapes of an unpacked GEMM: ``shape`` (M, K, N), ``unpacked_shape`` (M', K', N'),
    ``n_gemms`` (distinct inner shifts = low-bit GEMMs) and ``ratio`` = M'K'N' / (MKN)."""

    shape: tuple[int, int, int]
    unpacked_shape: tuple[int, int, int]
    n_gemms: int

    @property
    def work(self) -> int:
        """M' * K' * N'."""
        m, k, n = self.unpacked_shape
        return m * k * n

    @property
    def ratio(self) -> float:
        """M'K'N' / (MKN); 1.0 for an empty GEMM."""
        m, k, n = self.shape
        return self.work / (m * k * n) if m * k * n else 1.0


def _copy_shifts(counts: np.ndarray, step: int) -> np.ndarray:
    """Shifts of the copies of each line, copy q of line k at q * step, lines in order."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(total, dtype=np.int64) - starts) * step


def _distinct_inner(a_shift: np.ndarray, a_src: np.ndarray, e: np.ndarray, sbb: int) -> int:
    """Distinct values of a_shift[k'] + q * sbb over A's inner lines k' and q < e[a_src[k']]."""
    if a_shift.size == 0:
        return 0
    pairs = np.unique(np.stack([a_shift, e[a_src]]), axis=1)
    vals: set[int] = set()
    for sh, cnt in pairs.T.tolist():
        vals.update(range(sh, sh + cnt * sbb, sbb))
    return len(vals)


def _stats_from_levels(LA: np.ndarray, LBt: np.ndarray, strategy: str, sa: int, sbb: int) -> UnpackStats:
    """Shapes of ``strategy`` on both operands (row, col or plan) from the digit counts."""
    M, K = LA.shape
    N = LBt.shape[0]
    ones_m, ones_k, ones_n = np.ones(M, np.int64), np.ones(K, np.int64), np.ones(N, np.int64)
    if strategy == "plan":
        a, c, f, e = joint_plan(LA, LBt)
    elif strategy == "row":
        a, c = (LA.max(axis=1) if K else ones_m), ones_k
        f, e = (LBt.max(axis=1) if K else ones_n), ones_k
    else:
        a, c = ones_m, (LA.max(axis=0) if M else ones_k)
        f, e = ones_n, (LBt.max(axis=0) if N else ones_k)
    # A's inner copies of k carry shifts q * sa (q < c[k]); B adds q' * sbb (q' < e[k]).
    n_gemms = _distinct_inner(_copy_shifts(c, sa), np.repeat(np.arange(K, dtype=np.int64), c), e, sbb)
    return UnpackStats((M, K, N), (int(a.sum()), int(c @ e), int(f.sum())), n_gemms)


def _pair_stats(A64: np.ndarray, B64: np.ndarray, sa_name: str, sb_name: str, bits_a: int, bits_b: int,
                admit_min: bool) -> UnpackStats:
    """Stats by running the unpacking (any strategies)."""
    p = unpack_pair(A64, B64, sa_name, sb_name, bits_a, bits_b, admit_min)
    return UnpackStats((A64.shape[0], A64.shape[1], B64.shape[1]), (p.a.shape[0], p.a.shape[1], p.b.shape[1]),
                       int(np.unique(p.inner_shift).size))


def unpack_stats(A: Any, B: Any, strategy_a: str = "row", strategy_b: str = "row", bits: int | tuple[int, int] = 8,
                 *, admit_min: bool = False) -> UnpackStats:
    """The shapes and GEMM count :func:`unpack_matmul` would produce, without the GEMMs.

    ``bits`` is an int or ``(bits_a, bits_b)``. When both operands use ``row``, ``col``
    or ``plan``, the figures come from per-entry digit counts without building the
    unpacked matrices; otherwise the unpacking is run.

    >>> st = unpack_stats(np.array([[100, -3], [2, 1]]), np.array([[-100, 5], [7, 0]]), "row", "col", 4)
    >>> st.unpacked_shape, st.n_gemms, st.ratio
    ((4, 4, 2), 3, 4.0)
    """
    sa_name = check_strategy(strategy_a, "strategy_a")
    sb_name = check_strategy(strategy_b, "strategy_b")
    if sa_name == sb_name:
        return compare_strategies(A, B, bits, (sa_name,), admit_min=admit_min)[sa_name]
    bits_a, bits_b = pair_bits(bits)
    A64, B64 = check_operands(A, B)
    return _pair_stats(A64, B64, sa_name, sb_name, bits_a, bits_b, admit_min)


def compare_strategies(A: Any, B: Any, bits: int | tuple[int, int] = 8, strategies: tuple[str, ...] = STRATEGIES,
                       *, admit_min: bool = False) -> dict[str, UnpackStats]:
    """:func:`unpack_stats` for each strategy used on both operands, sharing the digit counts.

    >>> r = compare_strategies(np.array([[100, 1, 1]] * 3), np.eye(3, dtype=np.int64), 4)
    >>> {k: v.unpacked_shape for k, v in r.items()}
    {'row': (9, 3, 3), 'col': (3, 5, 3), 'both': (3, 5, 3), 'plan': (3, 5, 3)}
    """
    bits_a, bits_b = pair_bits(bits)
    if isinstance(strategies, str) or not isinstance(strategies, (tuple, list)):
        raise ConfigError(f"strategies must be a tuple of names from {', '.join(STRATEGIES)}, "
                          f"e.g. ('row',), got {short_repr(strategies)}")
    names = [check_strategy(s, "strategy") for s in strategies]
    A64, B64 = check_operands(A, B)
    out: dict[str, UnpackStats] = {}
    if any(n != "both" for n in names):
        (lo_a, hi_a), (lo_b, hi_b) = value_range(bits_a, admit_min), value_range(bits_b, admit_min)
        LA = k_levels(A64, digits(bits_a - 1, lo_a, hi_a))
        LBt = k_levels(B64, digits(bits_b - 1, lo_b, hi_b)).T
    for n in names:
        if n == "both":
            out[n] = _pair_stats(A64, B64, n, n, bits_a, bits_b, admit_min)
        else:
            out[n] = _stats_from_levels(LA, LBt, n, bits_a - 1, bits_b - 1)
    return out
