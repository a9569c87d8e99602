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

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..opcounts import OpCounts

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

_ARITY = {"mac": 3, "mul": 2}

Key = tuple[str, tuple[int, ...]]


def _key(kind: str, widths: Iterable[int] | int) -> Key:
    if kind not in COST_KINDS:
        raise ConfigError(f"unknown cost action kind {kind!r}; valid: {', '.join(COST_KINDS)}")
    if isinstance(widths, int):
        widths = (widths,)
    w = tuple(int(b) for b in widths)
    if len(w) != _ARITY.get(kind, 1) or any(b < 1 for b in w):
        raise ConfigError(f"{kind} needs {_ARITY.get(kind, 1)} positive bit width(s), got {widths!r}")
    return (kind, w)


def format_widths(kind: str, widths: tuple[int, ...]) -> str:
    """``"8x8->32"`` for a MAC, ``"8x8"`` for a multiply, ``"32"`` otherwise.

    >>> format_widths("mac", (4, 4, 32)), format_widths("fadd", (16,))
    ('4x4->32', '16')
    """
    if kind == "mac":
        return f"{widths[0]}x{widths[1]}->{widths[2]}"
    if kind == "mul":
        return f"{widths[0]}x{widths[1]}"
    return "/".join(str(b) for b in widths)


class CostCounts(Mapping):
    """A multiset of actions, ``(kind, widths) -> count`` (see the module docs)."""

    __slots__ = ("_c",)

    def __init__(self, counts: Mapping[Key, int] | None = None) -> None:
        self._c: dict[Key, int] = {}
        if counts:
            for (kind, widths), n in counts.items():
                self.add(kind, widths, n)

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

    def add(self, kind: str, widths: Iterable[int] | int, n: int = 1) -> CostCounts:
        """Add ``n`` actions in place; returns self. ``n`` must be a non-negative integer."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ConfigError(f"action counts must be non-negative integers, got {n!r}")
        n = int(n)
        if n:
            k = _key(kind, widths)
            self._c[k] = self._c.get(k, 0) + n
        return self

    def __getitem__(self, key: Key) -> int:
        kind, widths = key
        return self._c.get(_key(kind, widths), 0)

    def __iter__(self) -> Iterator[Key]:
        return iter(sorted(self._c))

    def __len__(self) -> int:
        return len(self._c)

    def __add__(self, other: Any) -> CostCounts:
        if not isinstance(other, CostCounts):
            return NotImplemented
        out = CostCounts()
        out._c = dict(self._c)
        for k, n in other._c.items():
            out._c[k] = out._c.get(k, 0) + n
        return out

    def __radd__(self, other: Any) -> CostCounts:
        if isinstance(other, int) and other == 0:  # lets sum() work
            return self + CostCounts()
        return NotImplemented

    def __mul__(self, factor: int) -> CostCounts:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 0:
            return NotImplemented
        out = CostCounts()
        out._c = {k: n * factor for k, n in self._c.items() if n * factor}
        return out

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CostCounts) and self._c == other._c

    __hash__ = None  # type: ignore[assignment]

    def total(self, kind: str | None = None) -> int:
        """Number of actions of ``kind`` at any width (of every kind if None)."""
        return sum(n for (k, _), n in self._c.items() if kind is None or k == kind)

    def memory_bits(self) -> dict[str, int]:
        """Bits moved per memory level (reads plus writes): ``{"register_file": .., "sram": .., "dram": ..}``."""
        out = dict.fromkeys(MEMORY_LEVELS, 0)
        for (k, w), n in self._c.items():
            if k in MEMORY_KINDS:
                out[k.rsplit("_", 1)[0]] += n * w[0]
        return out

    def compute(self) -> CostCounts:
        """The arithmetic actions only (memory accesses dropped)."""
        out = CostCounts()
        out._c = {k: n for k, n in self._c.items() if k[0] not in MEMORY_KINDS}
        return out

    def to_frame(self) -> pd.DataFrame:
        """Columns ``kind``, ``widths`` (formatted, e.g. ``"8x8->32"``), ``bits`` (tuple), ``count``."""
        rows = [{"kind": k, "widths": format_widths(k, w), "bits": w, "count": n}
                for (k, w), n in sorted(self._c.items())]
        return pd.DataFrame(rows, columns=["kind", "widths", "bits", "count"])

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}[{format_widths(k, w)}]={n}" for (k, w), n in sorted(self._c.items()))
        return f"CostCounts({inner})"
