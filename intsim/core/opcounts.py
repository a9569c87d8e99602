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
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import ConfigError

if TYPE_CHECKING:
    import pandas

__all__ = ["OpCounts", "OP_KINDS", "KindCounts", "format_widths"]

OP_KINDS: tuple[str, ...] = ("mac", "mul", "add", "shift", "compare", "div", "lut", "read", "write")

Key = tuple[str, tuple[int, ...]]


def format_widths(kind: str, widths: tuple[int, ...]) -> str:
    """``"8x8->32"`` for a MAC, ``"8x8"`` for a multiply, ``"32"`` otherwise (``"/"`` joins
    the widths of any other multi-width entry).

    >>> format_widths("mac", (4, 4, 32)), format_widths("add", (16,))
    ('4x4->32', '16')
    """
    if kind == "mac" and len(widths) == 3:
        return f"{widths[0]}x{widths[1]}->{widths[2]}"
    if kind == "mul" and len(widths) == 2:
        return f"{widths[0]}x{widths[1]}"
    return "/".join(str(b) for b in widths)


class KindCounts(Mapping):
    """A multiset ``(kind, widths) -> count`` with exact Python-int counts: the common part of
    :class:`OpCounts` and :class:`~intsim.cost.counts.CostCounts`. A subclass names its kinds
    (``KINDS``), the number of widths a kind must have (``ARITY``; None accepts any positive
    number) and what one entry is called in errors (``NOUN``). Counts add with ``+`` (and
    ``sum()``), scale with ``* int`` and compare with ``==``; adding a negative or non-integral
    count raises :class:`~intsim.core.errors.ConfigError`."""

    __slots__ = ("_c",)
    KINDS: ClassVar[tuple[str, ...]] = ()
    ARITY: ClassVar[dict[str, int] | None] = None
    NOUN: ClassVar[str] = "operation"

    def __init__(self, counts: Mapping[Key, int] | None = None) -> None:
        self._c: dict[Key, int] = {}
        if counts:
            for (kind, widths), n in counts.items():
                self.add(kind, widths, n)

    @classmethod
    def _key(cls, kind: str, widths: Iterable[int] | int) -> Key:
        if kind not in cls.KINDS:
            raise ConfigError(f"unknown {cls.NOUN} kind {kind!r}; valid: {', '.join(cls.KINDS)}")
        if isinstance(widths, int):
            widths = (widths,)
        w = tuple(int(b) for b in widths)
        if cls.ARITY is None:
            if not w or any(b < 1 for b in w):
                raise ConfigError(f"{cls.NOUN} widths must be positive bit counts, got {widths!r}")
        elif len(w) != cls.ARITY.get(kind, 1) or any(b < 1 for b in w):
            raise ConfigError(f"{kind} needs {cls.ARITY.get(kind, 1)} positive bit width(s), got {widths!r}")
        return (kind, w)

    def _new(self, counts: dict[Key, int]) -> Any:
        out = type(self)()
        out._c = counts
        return out

    def add(self, kind: str, widths: Iterable[int] | int, n: int = 1) -> Any:
        """Add ``n`` of a kind and widths in place; returns self. ``n`` must be a non-negative integer."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ConfigError(f"{self.NOUN} counts must be non-negative integers, got {n!r}")
        n = int(n)
        if n:
            k = self._key(kind, widths)
            self._c[k] = self._c.get(k, 0) + n
        return self

    # Mapping protocol
    def __getitem__(self, key: Key) -> int:
        kind, widths = key
        return self._c.get(self._key(kind, widths), 0)

    def __iter__(self) -> Iterator[Key]:
        return iter(sorted(self._c))

    def __len__(self) -> int:
        return len(self._c)

    def __add__(self, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        out = dict(self._c)
        for k, n in other._c.items():
            out[k] = out.get(k, 0) + n
        return self._new(out)

    def __radd__(self, other: Any) -> Any:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:  # lets sum() work
            return self._new(dict(self._c))
        return NotImplemented

    def __iadd__(self, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        for k, n in other._c.items():
            self._c[k] = self._c.get(k, 0) + n
        return self

    def __mul__(self, factor: int) -> Any:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 0:
            return NotImplemented
        return self._new({k: n * factor for k, n in self._c.items() if n * factor})

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._c == other._c  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def total(self, kind: str | None = None) -> int:
        """Number of entries of ``kind`` at any width (of every kind if None)."""
        return sum(n for (k, _), n in self._c.items() if kind is None or k == kind)

    def to_frame(self) -> pandas.DataFrame:
        """A DataFrame with columns ``kind``, ``widths`` (e.g. ``"8x8->32"`` or ``"32"``), ``bits``
        (the tuple) and ``count``."""
        rows = [{"kind": k, "widths": format_widths(k, w), "bits": w, "count": n}
                for (k, w), n in sorted(self._c.items())]
        import pandas  # only here: `import intsim` does not load pandas

        return pandas.DataFrame(rows, columns=["kind", "widths", "bits", "count"])

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}[{format_widths(k, w)}]={n}" for (k, w), n in sorted(self._c.items()))
        return f"{type(self).__name__}({inner})"


class OpCounts(KindCounts):
    """An immutable-by-convention multiset of operations: ``(kind, widths) -> count`` over
    :data:`OP_KINDS` (see the module docs)."""

    __slots__ = ()
    KINDS = OP_KINDS

    def memory_bits(self) -> dict[str, int]:
        """Bits read and written: ``{"read": ..., "write": ...}``."""
        out = {"read": 0, "write": 0}
        for (k, w), n in self._c.items():
            if k in out:
                out[k] += n * w[0]
        return out
