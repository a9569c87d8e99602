"""Exact operation counts keyed by operation kind and bit-widths.

An :class:`OpCounts` maps ``(kind, widths)`` to a count, where ``kind`` is a
short name and ``widths`` a tuple of bit-widths. Kinds used by intsim:

=============  =====================  ==================================================
kind           widths                 meaning
=============  =====================  ==================================================
``mac``        (a_bits, b_bits, acc)  a multiply of an a-bit by a b-bit operand added
                                      into an acc-bit accumulator register
``mul``        (a_bits, b_bits)       a multiply (no accumulate)
``add``        (bits,)                an add or subtract at that register width
``shift``      (bits,)                a shift (with its rounding increment, if any)
``compare``    (bits,)                a compare, min, max or clamp
``div``        (bits,)                an integer division
``lut``        (bits,)                a table lookup returning that many bits
``read``       (bits,)                an operand element read from memory at that width
``write``      (bits,)                a result element written to memory at that width
=============  =====================  ==================================================

Counts add (``+``), so a layer's counts are the sum of its operations'.

>>> from intsim import OpCounts
>>> c = OpCounts({("mac", (8, 8, 32)): 24})
>>> c += OpCounts({("add", (32,)): 4})
>>> c["mac", (8, 8, 32)], c.total("add")
(24, 4)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from .errors import ConfigError

__all__ = ["OpCounts", "OP_KINDS"]

OP_KINDS: tuple[str, ...] = ("mac", "mul", "add", "shift", "compare", "div", "lut", "read", "write")

Key = tuple[str, tuple[int, ...]]


def _key(kind: str, widths: Iterable[int] | int) -> Key:
    if kind not in OP_KINDS:
        raise ConfigError(f"unknown operation kind {kind!r}; valid: {', '.join(OP_KINDS)}")
    if isinstance(widths, int):
        widths = (widths,)
    w = tuple(int(b) for b in widths)
    if not w or any(b < 1 for b in w):
        raise ConfigError(f"operation widths must be positive bit counts, got {widths!r}")
    return (kind, w)


class OpCounts(Mapping):
    """An immutable-by-convention multiset of operations: ``(kind, widths) -> count``."""

    __slots__ = ("_c",)

    def __init__(self, counts: Mapping[Key, int] | None = None) -> None:
        self._c: dict[Key, int] = {}
        if counts:
            for (kind, widths), n in counts.items():
                self.add(kind, widths, n)

    def add(self, kind: str, widths: Iterable[int] | int, n: int = 1) -> OpCounts:
        """Add ``n`` operations of a kind and widths in place; returns self."""
        n = int(n)
        if n < 0:
            raise ConfigError(f"operation counts cannot be negative, got {n}")
        if n:
            k = _key(kind, widths)
            self._c[k] = self._c.get(k, 0) + n
        return self

    # Mapping protocol
    def __getitem__(self, key: Key) -> int:
        kind, widths = key
        return self._c.get(_key(kind, widths), 0)

    def __iter__(self) -> Iterator[Key]:
        return iter(sorted(self._c))

    def __len__(self) -> int:
        return len(self._c)

    def __add__(self, other: Any) -> OpCounts:
        if not isinstance(other, OpCounts):
            return NotImplemented
        out = OpCounts(self._c)
        for k, n in other._c.items():
            out._c[k] = out._c.get(k, 0) + n
        return out

    def __radd__(self, other: Any) -> OpCounts:
        if other == 0:  # lets sum() work
            return OpCounts(self._c)
        return NotImplemented

    def __iadd__(self, other: Any) -> OpCounts:
        if not isinstance(other, OpCounts):
            return NotImplemented
        for k, n in other._c.items():
            self._c[k] = self._c.get(k, 0) + n
        return self

    def __mul__(self, factor: int) -> OpCounts:
        if not isinstance(factor, int) or factor < 0:
            return NotImplemented
        return OpCounts({k: n * factor for k, n in self._c.items()})

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpCounts) and self._c == other._c

    __hash__ = None  # type: ignore[assignment]

    def total(self, kind: str | None = None) -> int:
        """Number of operations of ``kind`` at any width (of every kind if None)."""
        return sum(n for (k, _), n in self._c.items() if kind is None or k == kind)

    def memory_bits(self) -> dict[str, int]:
        """Bits read and written: ``{"read": ..., "write": ...}``."""
        out = {"read": 0, "write": 0}
        for (k, w), n in self._c.items():
            if k in out:
                out[k] += n * w[0]
        return out

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with columns ``kind``, ``widths`` (e.g. ``"8x8->32"`` or ``"32"``), ``count``."""
        rows = [{"kind": k, "widths": _fmt(k, w), "bits": w, "count": n} for (k, w), n in sorted(self._c.items())]
        return pd.DataFrame(rows, columns=["kind", "widths", "bits", "count"])

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}[{_fmt(k, w)}]={n}" for (k, w), n in sorted(self._c.items()))
        return f"OpCounts({inner})"


def _fmt(kind: str, w: tuple[int, ...]) -> str:
    if kind == "mac" and len(w) == 3:
        return f"{w[0]}x{w[1]}->{w[2]}"
    if kind == "mul" and len(w) == 2:
        return f"{w[0]}x{w[1]}"
    return "/".join(str(b) for b in w)
