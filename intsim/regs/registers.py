"""Width checks for the intermediate registers of integer operators.

Every integer operator (requantization, softmax, GELU, norms, ...) declares the
width of each intermediate register it uses. A :class:`RegisterFile` passes every
intermediate value through :meth:`RegisterFile.check`, which applies the
operator's overflow policy and records every value that did not fit:

* ``"raise"`` (default): raise :class:`~intsim.core.errors.RegisterOverflow` naming the
  operator, the step, the first offending value, its index and the width;
* ``"wrap"``: two's-complement wrap, as hardware without checks does; recorded;
* ``"saturate"``: clamp to the register range; recorded;
* ``"record"``: keep the exact value (as the published float/int64 code does) and
  record the event, so a study can see where a real register would overflow.

>>> import numpy as np
>>> from intsim.regs.registers import RegisterFile
>>> regs = RegisterFile("i_exp", {"poly": 16}, overflow="record")
>>> regs.check("poly", np.array([100, 40000])).tolist()
[100, 40000]
>>> [(e.step, e.bits, e.count, e.value) for e in regs.events]
[('poly', 16, 1, 40000)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.arrays import as_int_array, short_repr, to_int64
from ..core.errors import ConfigError, RegisterOverflow
from ..core.inttype import IntType

__all__ = ["RegisterEvent", "RegisterFile", "REGISTER_POLICIES"]

REGISTER_POLICIES: tuple[str, ...] = ("raise", "wrap", "saturate", "record")
_VALID_WIDTHS = ("valid: an integer number of bits from 1 to 64 (a signed register), an IntType, "
                 "or a type name such as 'int16' or 'uint8'")


@dataclass(frozen=True)
class RegisterEvent:
    """One step of one call where values did not fit their register."""

    op: str
    step: str
    bits: int
    signed: bool
    count: int
    index: tuple
    value: int
    policy: str


@dataclass
class RegisterFile:
    """The declared register widths of one operator call and what overflowed in it.

    Parameters
    ----------
    op:
        Operator name, used in messages.
    widths:
        Step name -> width in bits (signed registers), or -> :class:`~intsim.IntType`.
    overflow:
        One of ``raise``, ``wrap``, ``saturate``, ``record``.
    default_bits:
        Width of a step not named in ``widths`` (32 unless given).

    A width outside 1 to 64 bits (or not a width at all) raises ConfigError naming ``op``, the
    register and the valid widths.
    """

    op: str
    widths: Mapping[str, Any] = field(default_factory=dict)
    overflow: str = "raise"
    default_bits: int = 32
    events: list[RegisterEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.overflow not in REGISTER_POLICIES:
            raise ConfigError(f"{self.op}: unknown register overflow policy {self.overflow!r}; "
                              f"valid: {', '.join(REGISTER_POLICIES)}")
        try:
            widths = dict(self.widths)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.op}: register widths must be a mapping of register name -> width, "
                              f"got {short_repr(self.widths)}") from None
        self.widths = {k: self._type(v, self.op, f"register {k!r}") for k, v in widths.items()}
        self._type(self.default_bits, self.op, "default_bits")

    @staticmethod
    def _type(v: Any, op: str | None = None, what: str | None = None) -> IntType:
        """``v`` (a width in bits, an IntType or a type name) as an IntType. Otherwise ConfigError
        naming the operator ``op`` and the register ``what`` (when given) and the valid widths."""
        if isinstance(v, IntType):
            return v
        if isinstance(v, str):
            try:
                return IntType.parse(v)
            except ConfigError:
                pass
        elif not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, np.integer)) and 1 <= int(v) <= 64:
            return IntType(int(v))
        shown = short_repr(int(v) if isinstance(v, np.integer) else v)
        prefix = "".join(f"{p}: " for p in (op, what) if p)
        raise ConfigError(f"{prefix}{shown} is not a valid register width; {_VALID_WIDTHS}")

    def type_of(self, step: str) -> IntType:
        """The register type of a step."""
        return self.widths.get(step) or self._type(self.default_bits, self.op, "default_bits")

    def check(self, step: str, values: Any, bits: int | IntType | None = None) -> np.ndarray:
        """Pass ``values`` (int64 array or int) through the register of ``step``.

        ``bits`` overrides the declared width for this call. Returns int64 values after
        the policy (unchanged for ``record`` and for values that fit).
        """
        t = self._type(bits, self.op, f"register {step!r} (bits= override)") if bits is not None \
            else self.type_of(step)
        arr = to_int64(as_int_array(values, f"{self.op}.{step}"), f"{self.op}.{step}")
        if arr.size == 0:
            return arr
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= t.min and hi <= t.max:
            return arr
        bad = ~t.contains(arr)
        count = int(np.count_nonzero(bad))
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        idx = tuple(int(i) for i in np.unravel_index(first, arr.shape))
        value = int(arr[idx]) if arr.ndim else int(arr)
        event = RegisterEvent(self.op, step, t.bits, t.signed, count, idx, value, self.overflow)
        self.events.append(event)
        if self.overflow == "raise":
            raise RegisterOverflow(
                f"{self.op}: register '{step}' ({t.name}) overflowed: {count} value(s) outside "
                f"[{t.min}, {t.max}]; first at index {idx}: {value}",
                op=self.op, step=step, value=value, bits=t.bits)
        if self.overflow == "wrap":
            return np.asarray(t.wrap(arr), dtype=np.int64)
        if self.overflow == "saturate":
            return np.asarray(t.saturate(arr), dtype=np.int64)
        return arr

    @property
    def overflowed(self) -> bool:
        return bool(self.events)

    def summary(self) -> list[dict]:
        """The events as plain dicts (for tables and manifests)."""
        return [e.__dict__.copy() for e in self.events]
