"""Action counts for the cost model: :class:`CostCounts`.

:class:`intsim.OpCounts` records what the integer datapath does. Costing also needs
floating-point operations (for the fp32/fp16 baselines and the float non-linear
operators) and memory accesses tagged with the level they hit. ``CostCounts``
is the same kind of multiset, ``(kind, widths) -> count``, over a wider set of
kinds:

=====================  ====================  ===========================================
kind                   widths                meaning
=====================  ====================  ===========================================
``mac``                (a_bits, b_bits, acc)  integer multiply-accumulate (as in OpCounts)
``mul``                (a_bits, b_bits)       integer multiply
``add`` ``shift``      (bits,)                integer add/subtract, shift (with rounding)
``compare`` ``div``    (bits,)                integer compare/min/max/clamp, division
``lut``                (bits,)                table lookup returning ``bits`` bits
``fmac``               (bits,)                floating-point multiply-add (a multiply and an
                                              add at the same format), fp16 or fp32
``fmul`` ``fadd``      (bits,)                floating-point multiply, add/subtract/compare
``<level>_read``       (bits,)                one element of ``bits`` bits read from memory
``<level>_write``      (bits,)                level ``register_file``, ``sram`` or ``dram``
=====================  ====================  ===========================================

Counts are exact Python ints and compose with ``+``.

>>> from intsim import OpCounts
>>> from intsim.cost.counts import CostCounts
>>> c = CostCounts.from_opcounts(OpCounts({("mac", (8, 8, 32)): 24, ("read", (8,)): 20}))
>>> c["mac", (8, 8, 32)], c["sram_read", (8,)], c.memory_bits()["sram"]
(24, 20, 160)
"""

from __future__ import annotations

from typing import ClassVar

from ..core.errors import ConfigError
from ..core.opcounts import KindCounts, OpCounts, format_widths

__all__ = [
    "CostCounts",
    "COST_KINDS",
    "INT_KINDS",
    "FLOAT_KINDS",
    "MEMORY_LEVELS",
    "MEMORY_KINDS",
    "format_widths",
]

INT_KINDS: tuple[str, ...] = ("mac", "mul", "add", "shift", "compare", "div", "lut")
FLOAT_KINDS: tuple[str, ...] = ("fmac", "fmul", "fadd")
MEMORY_LEVELS: tuple[str, ...] = ("register_file", "sram", "dram")
MEMORY_KINDS: tuple[str, ...] = tuple(f"{lvl}_{d}" for lvl in MEMORY_LEVELS for d in ("read", "write"))
COST_KINDS: tuple[str, ...] = INT_KINDS + FLOAT_KINDS + MEMORY_KINDS


class CostCounts(KindCounts):
    """A multiset of actions, ``(kind, widths) -> count`` over :data:`COST_KINDS` (see the
    module docs)."""

    __slots__ = ()
    KINDS = COST_KINDS
    ARITY: ClassVar[dict[str, int] | None] = {"mac": 3, "mul": 2}  # every other kind: one width
    NOUN = "cost action"

    @classmethod
    def from_opcounts(cls, ops: OpCounts, read_level: str = "sram", write_level: str = "sram") -> CostCounts:
        """Convert :class:`~intsim.OpCounts`: compute kinds unchanged, ``read``/``write``
        placed at ``read_level``/``write_level`` (one of :data:`MEMORY_LEVELS`)."""
        for lvl in (read_level, write_level):
            if lvl not in MEMORY_LEVELS:
                raise ConfigError(f"unknown memory level {lvl!r}; valid: {', '.join(MEMORY_LEVELS)}")
        out = cls()
        for (kind, widths), n in ops.items():
            if kind == "read":
                out.add(f"{read_level}_read", widths, n)
            elif kind == "write":
                out.add(f"{write_level}_write", widths, n)
            else:
                out.add(kind, widths, n)
        return out

    def memory_bits(self) -> dict[str, int]:
        """Bits moved per memory level (reads plus writes): ``{"register_file": .., "sram": .., "dram": ..}``."""
        out = dict.fromkeys(MEMORY_LEVELS, 0)
        for (k, w), n in self._c.items():
            if k in MEMORY_KINDS:
                out[k.rsplit("_", 1)[0]] += n * w[0]
        return out

    def compute(self) -> CostCounts:
        """The arithmetic actions only (memory accesses dropped)."""
        return self._new({k: n for k, n in self._c.items() if k[0] not in MEMORY_KINDS})
