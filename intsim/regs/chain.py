"""The description of an operator's register chain: its steps, in pipeline order, each with a
name, a kind (one value per element, or one per row), a default width and the operations of the
published algorithm that produce it.

One :class:`Chain` gives everything the Python side of an operator needs, from one table:

* the step numbers the numba kernel uses (:meth:`Chain.ids`, bound to module constants once, so a
  kernel writes ``reg(..., Q, v)``, never ``reg(..., 1, v)``);
* the :class:`~intsim.regs.registers.RegisterFile` of a call, with ``widths=`` overrides
  (:meth:`Chain.registers`) and its :class:`~intsim.regs.runtime.Plan` (:meth:`Chain.plan`);
* the exact op counts of a call (:meth:`Chain.op_counts`), from each step's :class:`Cost` entries
  and the register widths of the call, so the counts follow any width override.

>>> from intsim.core.inttype import IntType
>>> ch = Chain("demo", [Step("sum", "r", IntType(40), (Cost("add", ("sum",)),)),
...                     Step("out", "e", IntType(8), (Cost("mul", ("in", "out")), Cost("compare", ("out",), 2)))])
>>> ch.ids("sum", "out")
(0, 1)
>>> regs = ch.registers(None, "raise")
>>> sorted(ch.op_counts(regs, in_bits=16, elements=10, rows=2).items())
[(('add', (40,)), 10), (('compare', (8,)), 20), (('mul', (16, 8)), 10)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from .registers import RegisterFile
from .runtime import Plan, make_registers

__all__ = ["Cost", "Step", "Chain"]


@dataclass(frozen=True)
class Cost:
    """Operations of the published algorithm: ``times`` operations of kind ``op`` (an
    :data:`~intsim.core.opcounts.OP_KINDS` name) keyed by ``widths``, for every element (``per="e"``,
    the default), every row (``"r"``) or once per call (``"call"``).

    A width is a step name (that register's width in the call), ``"in"`` (the input's width), an
    int, or ``"name+k"`` (a width plus ``k`` bits, e.g. the 96-bit product of a 64-bit register
    and a 32-bit multiplier). ``times`` is an int or the name of a call parameter passed to
    :meth:`Chain.op_counts` (for counts that depend on the call, such as the number of terms of
    a shift-add multiply)."""

    op: str
    widths: tuple[str | int, ...]
    times: int | str = 1
    per: str = "e"


@dataclass(frozen=True)
class Step:
    """One register of a chain: ``kind`` ``"e"`` (one value per element) or ``"r"`` (one per row),
    its default width, and the operations that produce its value."""

    name: str
    kind: str
    width: IntType
    costs: tuple[Cost, ...] = ()


class Chain:
    """The steps of one operator (or one shared sub-chain) in pipeline order."""

    def __init__(self, op: str, steps: Sequence[Step]):
        self.op = op
        self.steps = tuple(steps)
        self.index = {s.name: i for i, s in enumerate(self.steps)}
        if len(self.index) != len(self.steps):
            raise ValueError(f"{op}: duplicate step names")
        for s in self.steps:
            if s.kind not in ("e", "r"):
                raise ValueError(f"{op}: step {s.name!r} has kind {s.kind!r} (valid: 'e', 'r')")

    def __add__(self, other: Chain) -> Chain:
        """This chain followed by ``other`` (whose step numbers shift by ``len(self)``)."""
        return Chain(self.op, self.steps + other.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    def ids(self, *names: str) -> tuple[int, ...]:
        """The step numbers of ``names`` (for the kernel's module constants)."""
        return tuple(self.index[n] for n in names)

    def defaults(self) -> dict[str, IntType]:
        return {s.name: s.width for s in self.steps}

    def registers(self, widths: Mapping[str, Any] | None, overflow: str, op: str | None = None,
                  defaults: Mapping[str, IntType] | None = None) -> RegisterFile:
        """The call's RegisterFile: the default widths (or ``defaults``, for widths that depend on
        the call) overridden by ``widths``; unknown steps and policies raise ConfigError."""
        d = self.defaults()
        if defaults:
            d.update(defaults)
        return make_registers(op or self.op, d, widths, overflow)

    def plan(self, regs: RegisterFile, R: int, N: int, taps: bool) -> Plan:
        return Plan(regs, [(s.name, s.kind) for s in self.steps], R, N, taps)

    def op_counts(self, regs: RegisterFile, *, in_bits: int, elements: int, rows: int,
                  params: Mapping[str, int] | None = None, ops: OpCounts | None = None) -> OpCounts:
        """Exact counts of the published operations of a call over ``elements`` elements in
        ``rows`` rows (added to ``ops`` when given)."""
        ops = OpCounts() if ops is None else ops
        if elements == 0:
            return ops
        params = params or {}

        def width(w: str | int) -> int:
            if isinstance(w, int):
                return w
            name, _, extra = w.partition("+")
            bits = in_bits if name == "in" else regs.type_of(name).bits
            return bits + (int(extra) if extra else 0)

        for s in self.steps:
            for c in s.costs:
                if isinstance(c.times, str):
                    if c.times not in params:
                        raise ConfigError(f"{self.op}: op count parameter {c.times!r} missing")
                    times = int(params[c.times])
                else:
                    times = c.times
                n = {"e": elements, "r": rows, "call": 1}[c.per] * times
                if n:
                    ops.add(c.op, tuple(width(w) for w in c.widths), n)
        return ops
