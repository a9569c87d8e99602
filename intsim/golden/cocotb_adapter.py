"""intsim as a cocotb 2.x reference model: ``LogicArray`` conversions and a scoreboard.

Conversions between intsim integers (Python ints of an :class:`~intsim.IntType`) and
cocotb's ``LogicArray`` (``cocotb.types``; cocotb 2.x, which replaced ``BinaryValue``):

* :func:`to_logicarray` / :func:`from_logicarray`: one value, two's complement for
  signed types, width ``t.bits`` (index ``bits-1 downto 0``);
* :func:`pack_lanes` / :func:`unpack_lanes`: several values on one bus, lane 0 in the
  least significant bits (``bus[l*bits +: bits]`` in Verilog);
* :class:`GemmReference`: the expected accumulator of every MAC lane after every add,
  and the overflow flags, from :func:`intsim.trace_output` and :func:`intsim.matmul`;
* :class:`Scoreboard`: compares observed values with expected ones and reports the
  first mismatches with index, hex and decimal.

A value with X or Z bits is never converted silently: :func:`from_logicarray` raises
:class:`~intsim.core.errors.DTypeError` naming the signal; the scoreboard records it as a
mismatch. cocotb is imported lazily, so this module imports without it (the functions
that need it raise :class:`~intsim.core.errors.ModelNotInstalledError`).

>>> from intsim import IntType
>>> la = to_logicarray(-3, IntType(8))          # doctest: +SKIP
>>> str(la), from_logicarray(la, IntType(8))    # doctest: +SKIP
('11111101', -3)
>>> sb = Scoreboard("acc")
>>> sb.check("C", (0, 1), expected=5, observed=5, t=IntType(8)), sb.check("C", (0, 2), 5, 7, IntType(8))
(True, False)
>>> print(sb.report())
acc: 1 of 2 checks failed
  C(0, 2): expected 0x05 (5), got 0x07 (7)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import DTypeError, ModelNotInstalledError, ShapeError
from ..core.inttype import IntType
from ..hw.datapath import Datapath
from ..hw.gemm import matmul, trace_output

__all__ = ["to_logicarray", "from_logicarray", "pack_lanes", "unpack_lanes", "split_lanes", "GemmReference",
           "Scoreboard", "ScoreboardMismatch"]


def _cocotb_types() -> tuple[Any, Any]:
    try:
        from cocotb.types import LogicArray, Range
    except ImportError:
        raise ModelNotInstalledError("cocotb 2.x is not installed: pip install 'cocotb>=2.0'") from None
    return LogicArray, Range


def to_logicarray(value: int, t: IntType) -> Any:
    """``value`` (which must lie in ``t``) as a ``t.bits``-wide LogicArray, two's complement if signed."""
    LogicArray, Range = _cocotb_types()
    v = t.check(int(value), "value")
    rng = Range(t.bits - 1, "downto", 0)
    return LogicArray.from_signed(v, rng) if t.signed else LogicArray.from_unsigned(v, rng)


def _bits_of(value: Any, width: int, name: str) -> int:
    """The unsigned bit pattern of a LogicArray (or int) of ``width`` bits."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = int(value)
        if not -(1 << (width - 1)) <= v < (1 << width):
            raise ShapeError(f"{name}: {v} does not fit {width} bits")
        return v & ((1 << width) - 1)
    n = len(value)
    if n != width:
        raise ShapeError(f"{name}: {n} bits, expected {width}")
    if not value.is_resolvable:
        raise DTypeError(f"{name}: value {value} has X/Z/U/W/- bits; it is not an integer")
    return int(value.to_unsigned())


def from_logicarray(value: Any, t: IntType, name: str = "signal") -> int:
    """The integer a ``t.bits``-wide LogicArray (or int pattern) holds, read as type ``t``.

    Raises DTypeError for X/Z bits and ShapeError for a width other than ``t.bits``.
    """
    u = _bits_of(value, t.bits, name)
    return t.wrap(u) if t.signed else u


def pack_lanes(values: Sequence[int], t: IntType) -> Any:
    """Values of type ``t`` packed on one bus, lane ``l`` at bits ``[l*bits +: bits]``."""
    LogicArray, Range = _cocotb_types()
    word = 0
    for lane, v in enumerate(values):
        word |= (t.check(int(v), f"lane {lane}") & ((1 << t.bits) - 1)) << (lane * t.bits)
    return LogicArray.from_unsigned(word, Range(len(values) * t.bits - 1, "downto", 0))


def unpack_lanes(value: Any, t: IntType, lanes: int, name: str = "bus") -> list[int]:
    """The ``lanes`` values of type ``t`` on a bus (lane 0 in the least significant bits)."""
    u = _bits_of(value, lanes * t.bits, name)
    mask = (1 << t.bits) - 1
    out = []
    for lane in range(lanes):
        w = (u >> (lane * t.bits)) & mask
        out.append(t.wrap(w) if t.signed else w)
    return out


def split_lanes(value: Any, width: int, lanes: int, name: str = "bus") -> list[Any]:
    """The ``lanes`` slices of ``width`` bits of a LogicArray bus (lane 0 first), X/Z kept.

    The bus must be ``lanes * width`` bits with a ``downto`` range ending at 0.
    """
    if len(value) != lanes * width:
        raise ShapeError(f"{name}: {len(value)} bits, expected {lanes} lanes of {width}")
    return [value[(lane + 1) * width - 1:lane * width] for lane in range(lanes)]


class GemmReference:
    """The expected state of MAC lanes computing ``bias[l] + sum_k a[k] * B[k, l]`` on a datapath.

    >>> from intsim import Datapath, IntType
    >>> ref = GemmReference(Datapath(IntType(4), IntType(4), acc_bits=6, overflow="saturate"))
    >>> traces, flags = ref.block([7, 7], [[7, -8], [7, -8]])
    >>> traces, flags
    ([[31, 31], [-32, -32]], [True, True])
    """

    def __init__(self, datapath: Datapath):
        self.datapath = datapath

    def block(self, a: Sequence[int], b: Sequence[Sequence[int]], bias: Sequence[int] | None = None
              ) -> tuple[list[list[int]], list[bool]]:
        """Per lane, the register after each add (``k_chunk`` products each), and its overflow flag.

        ``a`` has K values; ``b`` is K x lanes; ``bias`` has one value per lane (default 0).
        """
        A = np.asarray([list(a)], dtype=np.int64)
        B = np.asarray([list(r) for r in b], dtype=np.int64).reshape(len(a), -1)
        lanes = B.shape[1]
        bias_arr = None if bias is None else np.asarray(list(bias), dtype=np.int64)
        result = matmul(A, B, self.datapath, bias_arr)
        traces = [trace_output(A, B, self.datapath, 0, lane, bias_arr) for lane in range(lanes)]
        return traces, [bool(f) for f in result.overflow[0]]


@dataclass(frozen=True)
class ScoreboardMismatch:
    """One failed check: what, where, expected and observed (None if X/Z or malformed)."""

    what: str
    index: tuple
    expected: int
    observed: int | None
    observed_text: str
    type: IntType

    def describe(self) -> str:
        digits = (self.type.bits + 3) // 4
        mask = (1 << self.type.bits) - 1
        exp = f"0x{self.expected & mask:0{digits}x} ({self.expected})"
        got = (f"0x{self.observed & mask:0{digits}x} ({self.observed})" if self.observed is not None
               else f"{self.observed_text} (not an integer)")
        return f"{self.what}{self.index}: expected {exp}, got {got}"


@dataclass
class Scoreboard:
    """Counts checks of observed design values against intsim's expected values; keeps the first mismatches."""

    name: str = "scoreboard"
    max_report: int = 10
    checks: int = 0
    failures: int = 0
    first: list[ScoreboardMismatch] = field(default_factory=list)

    def check(self, what: str, index: tuple, expected: int, observed: Any, t: IntType) -> bool:
        """Compare one value (a LogicArray or an int) with the expected int; True if they match."""
        self.checks += 1
        try:
            got: int | None = from_logicarray(observed, t, f"{what}{index}")
            text = str(got)
        except (DTypeError, ShapeError):
            got, text = None, str(observed)
        if got == int(expected):
            return True
        self.failures += 1
        if len(self.first) < self.max_report:
            self.first.append(ScoreboardMismatch(what, tuple(index), int(expected), got, text, t))
        return False

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def report(self) -> str:
        """A summary line and the first mismatches."""
        head = f"{self.name}: {self.failures} of {self.checks} checks failed"
        return "\n".join([head] + ["  " + m.describe() for m in self.first])

    def assert_clean(self) -> None:
        """Raise AssertionError with :meth:`report` if any check failed."""
        if self.failures:
            raise AssertionError(self.report())
