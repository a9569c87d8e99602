"""The base of every golden-vector operator adapter: what a case declares (:class:`TensorDecl`),
a resolved case (:class:`Case`, from the :class:`CaseSpec` a spec wrote), what a run returns
(:class:`OpRun`), what ``intsim golden operators NAME`` prints about an operator
(:class:`OperatorDoc`, made of :class:`KeyDoc` entries), and :class:`GoldenOperator`, the class
an adapter subclasses. The adapters are
in :mod:`intsim.golden.operators` (with the registry), :mod:`intsim.golden.unpack_op` and
:mod:`intsim.golden.minilm_op`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.inttype import IntType
from .datagen import normalize_dist
from .keys import Budget, TensorBudget, check_budget, check_keys


def derived_seed(suite_seed: int, name: str) -> int:
    """The seed of a case that does not set one (see the module docs)."""
    digest = hashlib.sha256(f"{suite_seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class CaseSpec:
    """One case as written, before the operator validates it.

    ``where`` locates it in messages (``"spec.toml: case 'mm1'"``).
    """

    name: str
    operator: str
    seed: int
    shape: dict[str, Any]
    config: dict[str, Any]
    inputs: dict[str, Any]
    description: str = ""
    where: str = ""


@dataclass(frozen=True)
class TensorDecl:
    """A tensor of a case: its name, role (``input``, ``output`` or ``tap``), shape and word type."""

    name: str
    role: str
    shape: tuple[int, ...]
    type: IntType


@dataclass(frozen=True)
class Case:
    """A validated case, every default filled in. ``record()`` is what the manifest stores."""

    name: str
    operator: str
    seed: int
    shape: dict[str, Any]
    config: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    input_decls: tuple[TensorDecl, ...]
    description: str = ""
    #: sizes and work declared by the operator (None: the inputs alone); not part of the record
    budget: Budget | None = field(default=None, compare=False, repr=False)

    def record(self) -> dict[str, Any]:
        """The case as plain JSON data (the manifest's case fields, without results)."""
        return {"name": self.name, "operator": self.operator, "seed": self.seed, "description": self.description,
                "shape": plain(self.shape), "config": plain(self.config), "inputs": plain(self.inputs)}


class _Required:
    """The type of :data:`REQUIRED`."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of a :class:`KeyDoc` that a case must give
REQUIRED = _Required()


@dataclass(frozen=True)
class KeyDoc:
    """One key a case may write (a shape, config or inputs key), a tensor it produces or a tap.

    ``default`` is :data:`REQUIRED` for a key a case must give, None for an optional key whose
    absence means something (``text`` says what); ``valid`` lists the valid values in plain text.
    """

    name: str
    text: str = ""
    default: Any = None
    valid: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class OperatorDoc:
    """What ``intsim golden operators NAME`` prints about an operator: its tables' keys, what it
    writes and an example case (``example``: a ``[[case]]`` table as a dict, with ``name``,
    ``operator``, ``shape``, ``config`` and ``inputs``) that ``intsim golden generate`` accepts.

    ``shape`` documents the keys of the case's ``shape`` table, ``inputs`` the input tensors (the
    keys of its ``inputs`` table: a distribution name or table each), ``outputs`` and ``taps``
    the tensors a case writes; ``about`` is free text (plain, paragraphs); ``needs`` names what
    the operator needs beyond intsim (the MiniLM model), empty when nothing.
    """

    name: str
    summary: str
    shape: tuple[KeyDoc, ...] = ()
    config: tuple[KeyDoc, ...] = ()
    inputs: tuple[KeyDoc, ...] = ()
    outputs: tuple[KeyDoc, ...] = ()
    taps: tuple[KeyDoc, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)
    about: str = ""
    needs: str = ""


@dataclass
class OpRun:
    """What one operator call produced: outputs and taps (declaration, array) and the raised error, if any."""

    outputs: list[tuple[TensorDecl, np.ndarray]]
    taps: list[tuple[TensorDecl, np.ndarray]] = field(default_factory=list)
    raises: dict[str, Any] | None = None


class GoldenOperator:
    """Base class of the adapters. Subclasses set ``name`` and implement ``resolve`` and ``run``."""

    name: str = ""
    summary: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's ``run`` so that what it returns is checked against the caps."""
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is None or getattr(run, "_checks_caps", False):
            return

        @functools.wraps(run)
        def checked_run(self: GoldenOperator, case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:
            result = run(self, case, inputs)
            check_produced(case, result)
            return result

        checked_run._checks_caps = True  # type: ignore[attr-defined]
        cls.run = checked_run  # type: ignore[method-assign]

    def budget(self, case: Case) -> Budget:
        """The case's sizes and work (see :class:`~intsim.golden.spec.Budget`); by default what the
        case declares, else its inputs alone."""
        if case.budget is not None:
            return case.budget
        return Budget(tuple(input_budget(case.input_decls)))

    def describe(self) -> OperatorDoc:
        """What ``intsim golden operators NAME`` prints. This default knows only the summary, the
        class docstring and a ``CONFIG`` table of defaults (when the adapter has one); adapters
        override it with their keys, taps and an example case."""
        config = getattr(self, "CONFIG", None)
        keys = tuple(KeyDoc(k, default=v) for k, v in config.items()) if isinstance(config, Mapping) else ()
        return OperatorDoc(self.name, self.summary, config=keys, about=type(self).__doc__ or "")

    def resolve(self, spec: CaseSpec) -> Case:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:  # pragma: no cover - abstract
        raise NotImplementedError

    # helpers for subclasses
    def _inputs(self, spec: CaseSpec, decls: list[TensorDecl], overflow_as: Mapping[str, str] | None = None
                ) -> dict[str, dict[str, Any]]:
        where = f"{spec.where}: inputs"
        check_keys(spec.inputs, {d.name for d in decls}, where)
        dists = {}
        for d in decls:
            dist = normalize_dist(spec.inputs.get(d.name, "uniform"), d.type, f"{where}.{d.name}")
            if dist["dist"] == "overflow" and dist["as"] is None:
                if not overflow_as or d.name not in overflow_as:
                    raise ConfigError(f"{where}.{d.name}: operator {self.name!r} has no overflow pattern for "
                                      f"this input; give one with as = 'most_negative' (or another corner set)")
                dist["as"] = overflow_as[d.name]
            dists[d.name] = dist
        return dists


def plain(v: Any) -> Any:
    """JSON-ready copy: tuples become lists, mapping keys strings."""
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def input_budget(decls: Any) -> list[TensorBudget]:
    return [TensorBudget(d.name, d.role, math.prod(d.shape)) for d in decls]


def check_produced(case: Case, run: Any) -> None:
    """The tensor and case caps, on what an adapter's run returned (before anything is written)."""
    if not isinstance(run, OpRun):
        return
    tensors = input_budget(case.input_decls)
    for d, _ in list(run.outputs) + list(run.taps):
        tensors.append(TensorBudget(d.name, d.role, math.prod(d.shape)))
    check_budget(f"case {case.name!r} (operator {case.operator})", Budget(tuple(tensors)))
