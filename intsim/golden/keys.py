"""The vocabulary of golden specs shared by the spec parser and the operator adapters: the caps on
sizes and work (see :mod:`intsim.golden.spec` for the table), names, size budgets, and the helpers
that check a spec's keys and values with messages naming the case and the key.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError
from ..core.inttype import IntType

#: bytes of spec text
MAX_SPEC_BYTES = 1 << 24


#: levels of nested tables and arrays in a spec
MAX_NESTING = 32


#: cases in one spec
MAX_CASES = 4096


#: any one dimension of a shape
MAX_DIM = 1 << 20


#: elements of any one tensor of a case: an input, an output or a tap
MAX_TENSOR_ELEMENTS = 1 << 24


#: elements of all the tensors (inputs, outputs, taps) of one case
MAX_CASE_ELEMENTS = 1 << 24


#: elements of all the tensors of all the cases of a suite
MAX_SUITE_ELEMENTS = 1 << 25


#: ``trace_samples`` of a matmul case
MAX_TRACE_SAMPLES = 4096


#: multiply-accumulates a case may take (the vectorised and compiled kernels)
MAX_CASE_MACS = 1 << 28


#: multiply-accumulates of all the cases of a suite
MAX_SUITE_MACS = 1 << 30


#: steps a case may emulate one at a time (accumulator traces, the unpack reassembly check)
MAX_CASE_STEPS = 1 << 20


#: one-at-a-time steps of all the cases of a suite
MAX_SUITE_STEPS = 1 << 22


#: output and tap elements per input element assumed for an OpResult operator before its dry run
OPRESULT_EXPANSION = 32


#: a safe name; anchored with \A and \Z, since ``$`` would also match before a final newline
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


#: names a case may not have (compared ignoring letter case): the suite's own files
RESERVED_NAMES = frozenset({"manifest.json", "spec.toml"})


_DEVICE_RE = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)


_BRIEF = reprlib.Repr()
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxlevel = 120, 80, 8, 8, 3
_BRIEF.maxlong = 60


def brief(value: Any) -> str:
    """``repr(value)`` shortened for messages (long strings, lists and integers are elided)."""
    try:
        return _BRIEF.repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail
        return f"<{type(value).__name__}>"


def check_name(value: Any, where: str) -> str:
    """Return ``value`` if it is a safe name (1-100 of ``A-Za-z0-9_.-``, not starting with ``.``/``-``/``_``)."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ConfigError(f"{where}: must be 1 to 100 characters of letters, digits, '_', '.', '-' "
                          f"starting with a letter or digit, got {brief(value)}")
    return value


def check_case_name(value: Any, where: str) -> str:
    """A :func:`check_name` name that is also safe as a case directory on every file system.

    Refused: the suite's own file names (:data:`RESERVED_NAMES`), Windows device names
    (``con``, ``nul``, ``com1``, ``lpt1.txt``, ...) and names ending with ``.`` (Windows drops it),
    all compared ignoring letter case.
    """
    check_name(value, where)
    if value.lower() in RESERVED_NAMES:
        raise ConfigError(f"{where}: {value!r} is reserved: the suite has a file of that name "
                          f"({', '.join(sorted(RESERVED_NAMES))}; letter case is ignored)")
    if _DEVICE_RE.fullmatch(value):
        raise ConfigError(f"{where}: {value!r} is reserved: a Windows device name cannot be a directory")
    if value.endswith("."):
        raise ConfigError(f"{where}: {value!r} ends with '.', which Windows drops from directory names")
    return value


@dataclass(frozen=True)
class TensorBudget:
    """A tensor a case will hold: its name, role, element count (an upper bound when the exact
    count depends on the data) and how many such tensors there can be (``copies``)."""

    name: str
    role: str
    elements: int
    copies: int = 1


@dataclass(frozen=True)
class Budget:
    """What a case will hold and do, declared by its operator before anything is computed.

    ``tensors``: every input, output and tap (:class:`TensorBudget`); ``macs``: the
    multiply-accumulates of its kernels; ``steps``: the steps it emulates one at a time.
    """

    tensors: tuple[TensorBudget, ...]
    macs: int = 0
    steps: int = 0

    @property
    def elements(self) -> int:
        return sum(t.elements * t.copies for t in self.tensors)


def over_cap(where: str, what: str, n: int, cap_name: str, cap: int) -> ConfigError:
    return ConfigError(f"{where}: {what}: {n} is more than the cap {cap_name} = {cap} "
                       "(see the limits in intsim.golden.spec)")


def check_budget(where: str, budget: Budget) -> None:
    """Check one case's budget against the per-tensor and per-case caps (ConfigError naming the cap)."""
    for t in budget.tensors:
        if t.elements > MAX_TENSOR_ELEMENTS:
            raise over_cap(where, f"{t.role} {t.name!r}: elements", t.elements, "MAX_TENSOR_ELEMENTS",
                        MAX_TENSOR_ELEMENTS)
    if budget.elements > MAX_CASE_ELEMENTS:
        raise over_cap(where, "elements of all its tensors (inputs, outputs and taps)", budget.elements,
                    "MAX_CASE_ELEMENTS", MAX_CASE_ELEMENTS)
    if budget.macs > MAX_CASE_MACS:
        raise over_cap(where, "work: multiply-accumulates", budget.macs, "MAX_CASE_MACS", MAX_CASE_MACS)
    if budget.steps > MAX_CASE_STEPS:
        raise over_cap(where, "work: steps emulated one at a time", budget.steps, "MAX_CASE_STEPS", MAX_CASE_STEPS)


def key_text(k: Any) -> str:
    """A key as written in messages: plain when it is a short safe name, else its shortened repr."""
    return k if isinstance(k, str) and NAME_RE.fullmatch(k) else brief(k)


def check_keys(table: Mapping[str, Any], allowed: Mapping[str, Any] | set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(table) - set(allowed))
    if unknown:
        valid = ", ".join(sorted(allowed)) or "(none)"
        raise ConfigError(f"{where}.{key_text(unknown[0])}: unknown key; valid: {valid}")


def int_key(table: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int:
    if key not in table:
        raise ConfigError(f"{where}.{key}: missing (an integer from {lo} to {hi})")
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{where}.{key}: must be an integer from {lo} to {hi}, got {brief(v)}")
    return v


def type_key(v: Any, where: str) -> IntType:
    if not isinstance(v, str):
        raise ConfigError(f"{where}: must be a type name such as 'int8' or 'uint4', got {brief(v)}")
    try:
        return IntType.parse(v)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def bool_key(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: must be true or false, got {brief(v)}")
    return v
