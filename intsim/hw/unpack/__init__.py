"""IM-Unpack: exact GEMMs of large-integer matrices on a low-bit datapath.

IM-Unpack (Zeng, Sankaralingam, Singh, ICML 2024) rewrites ``A @ B`` whose entries
do not all fit a b-bit multiplier as a larger GEMM whose entries all do, with the
exact same result. intsim follows the official PyTorch reference bit for bit
(``vsingh-group/im-unpack``, ``unpack.py``):

* base ``s = 2**(b-1)``; an entry is **in range** iff ``|x| < s`` (``b >= 2``).
  With ``admit_min=True`` the value ``-s`` is in range too, as it is for a real
  two's-complement b-bit multiplier (range ``[-s, s-1]``).
* **floor digits**: an out-of-range line is replaced by its low digits
  ``x mod s`` (in ``[0, s)``) and its high digits ``floor(x / s)`` go to a new line
  whose scale is the old line's times ``s``. A split replaces the **whole line**,
  in-range entries included (``-3`` at b = 4 becomes ``5`` and ``-1``). So ``-100``
  at b = 4 gives digits ``4, 3, -2`` with scales ``1, 8, 64``.
* Scales are powers of two, ``s**level``; intsim keeps them as int64 *shifts*
  (``scale = 2**shift``), so no scale can overflow.

Conventions: our GEMM is ``A (M x K) @ B (K x N)``. A's own lines are its rows (they
become output rows), its inner lines its columns. B is unpacked the same way with
the roles swapped: its own lines are its columns (output columns), its inner lines
its rows. Strategies, per operand:

``row``
    level-synchronous: every own line with an out-of-range entry is split, all in
    one pass, the new lines appended in index order; repeat on the newest block.
``col``
    the same over the inner lines; the partner's matching inner lines are duplicated.
``both``
    the paper's greedy: each step splits the single line (own or inner) with the
    most out-of-range entries; ties go to the own line (the row of A), then to the
    lowest index.
``plan``
    intsim's strategy, aimed at the GEMM work itself. It chooses how many digit
    copies each own line (``a_i``) and each inner line (``c_k``) gets, minimizing the
    work ``(sum a) * (sum c)`` (weighted by the partner's multiplicities) subject to
    every entry fitting: an entry needing ``L`` floor digits fits a block of
    ``a_i x c_k`` slots iff ``L <= a_i + c_k - 1``. The row, col and greedy results
    all satisfy that constraint, so the plan's work for one operand is never larger
    than theirs. The minimum is exact: the product is minimized at a vertex of the
    convex hull of achievable (own work, inner work) pairs; each vertex is the
    optimum of a weighted vertex cover of a bipartite graph (a min-cut); the hull
    is searched best first, a stretch between two known vertices being dropped when
    a lower bound of the product over it cannot beat the best vertex found.
    Entry ``x`` writes its own minimal floor-digit string into its block (digit j on
    row copy ``min(j, a_i - 1)`` and inner copy ``j - min(j, a_i - 1)``, zeros
    elsewhere). When both operands use ``plan``, the two plans are refined in turn
    (each minimizing the total work given the other) while the total work falls.

:func:`unpack_matmul` unpacks A then B (B against the already unpacked A, as the
reference's ``check_unpack_correct.py`` does), runs one low-bit GEMM per distinct
inner shift through :func:`intsim.matmul` on the given datapath, and reassembles
with exact shifts and adds.

>>> import numpy as np
>>> from intsim.hw.unpack import unpack_rows
>>> r = unpack_rows(np.array([[-100]]), 4)
>>> r.matrix.ravel().tolist(), r.index.tolist(), r.scales.tolist()
([4, 3, -2], [0, 0, 0], [1, 8, 64])
"""

from __future__ import annotations

from .api import BothUnpack, ColUnpack, RowUnpack, unpack, unpack_both, unpack_cols, unpack_plan, unpack_rows
from .matmul import REASSEMBLY_BITS, LowBitGemm, UnpackResult, unpack_matmul, unpack_operands
from .operands import STRATEGIES, UnpackedPair, entry_levels, in_range
from .stats import UnpackStats, compare_strategies, unpack_stats

__all__ = [
    "STRATEGIES",
    "RowUnpack",
    "ColUnpack",
    "BothUnpack",
    "LowBitGemm",
    "UnpackResult",
    "UnpackedPair",
    "unpack_operands",
    "UnpackStats",
    "in_range",
    "entry_levels",
    "unpack_rows",
    "unpack_cols",
    "unpack_both",
    "unpack_plan",
    "unpack",
    "unpack_stats",
    "compare_strategies",
    "unpack_matmul",
    "REASSEMBLY_BITS",
]
