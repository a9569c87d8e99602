"""The interface of a sweep kind: :class:`SweepKind` (a kind's parameters, its grid, the task of
one point), what it plans from (:class:`SweepSpec`, a parsed spec), what it plans (:class:`Plan`)
and what a point's task returns (:class:`PointResult`); the registry :data:`KINDS` with
:func:`register_kind`, and the grid helpers every kind shares. A kind and the spec it plans from
refer to each other, so both live here; :mod:`.spec` parses and loads specs."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.errors import ConfigError, FileFormatError
from .params import Param

__all__ = ["MAX_POINTS", "PointResult", "Plan", "SweepKind", "SweepSpec", "KINDS", "register_kind", "product_points",
           "point_seed"]

MAX_POINTS = 1_000_000
"""The largest grid a spec may expand to."""

@dataclass(frozen=True)
class PointResult:
    """What a point's task returns: ``figures`` (name -> int, float, str, bool or None; the columns
    of its row after the parameters) and ``blobs`` (files a kind assembles after the sweep, e.g.
    a golden case's tensors; kept in the point's part, not in ``results.parquet``)."""

    figures: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Plan:
    """A grid ready to run: the points' parameters in grid order, the axes, ``shared`` (one object
    sent once to every worker: file paths, hashes, spec text) and ``identity`` (what the results
    depend on besides the parameters, e.g. the SHA-256 of the files read; part of every point's key)."""

    kind: SweepKind
    points: list[dict[str, Any]]
    axes: list[str]
    shared: dict[str, Any]
    identity: dict[str, Any]
    source: str = "<spec>"


class SweepKind:
    """A kind of sweep. Subclasses set ``name``, ``summary`` and ``params`` and implement
    :meth:`compute` (run on a worker, from the point's parameters and the plan's ``shared`` object
    only); they may override :meth:`plan` (the grid; default: the Cartesian product of the axes),
    :meth:`finish` (files built from all the points, e.g. a golden suite) and :meth:`plots`.

    A kind must be deterministic: the same parameters and shared data give the same figures, on
    any worker, in any order. A kind that needs random numbers derives its seed from a parameter
    (see :func:`point_seed`)."""

    name: str = ""
    summary: str = ""
    params: tuple[Param, ...] = ()
    extra_tables: tuple[str, ...] = ()  # top-level spec tables besides [sweep] and [grid]

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        """The points: every combination of the axes' values, the first axis slowest."""
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1], {}, {}, spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:  # pragma: no cover
        raise NotImplementedError

    def finish(self, out: Path, plan: Plan, results: list[PointResult], progress: Callable[[str], None]) -> list[str]:
        """Write files built from all the points into ``out``; returns their paths relative to ``out``."""
        return []

    def plots(self, rows: list[dict[str, Any]], plan: Plan, out: Path) -> list[tuple[str, str]]:
        """Write PNG figures into ``out``; returns (file name, caption) pairs."""
        return []


KINDS: dict[str, SweepKind] = {}
"""The registered kinds, by name."""


def register_kind(kind: SweepKind) -> SweepKind:
    """Add ``kind`` to :data:`KINDS` (replacing one of the same name) and return it; a later kind
    (e.g. ``training``) plugs in with one call."""
    if not kind.name or not re.fullmatch(r"[a-z][a-z0-9_]*", kind.name):
        raise ConfigError(f"a sweep kind needs a lower-case name, got {kind.name!r}")
    KINDS[kind.name] = kind
    return kind


def product_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values of ``grid`` (name -> list), the first name varying slowest.

    >>> product_points({"b": [2, 4], "s": ["row"]})
    [{'b': 2, 's': 'row'}, {'b': 4, 's': 'row'}]
    """
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def point_seed(params: Mapping[str, Any], *names: str) -> int:
    """A 63-bit seed derived from the named parameters of a point (all of them if none is named):
    the same on every worker and in every run.

    >>> point_seed({"bits": 4, "seed": 0}) == point_seed({"seed": 0, "bits": 4})
    True
    """
    chosen = {k: params[k] for k in (names or params)}
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class SweepSpec:
    """A parsed sweep spec: its kind, the grid (parameter -> list of normalized values, every
    parameter of the kind present, defaults filled in), the names given in the spec, ``retries``,
    ``name``, the kind's extra tables and where relative paths start (``base``)."""

    kind: SweepKind
    grid: dict[str, list[Any]]
    given: tuple[str, ...]
    name: str = ""
    retries: int = 1
    tables: dict[str, Any] = field(default_factory=dict)
    base: Path = field(default_factory=Path.cwd)
    source: str = "<spec>"
    text: bytes = b""

    def resolve(self, path: str, where: str) -> Path:
        """``path`` relative to the spec's folder; a FileFormatError naming ``where`` if it is not a file."""
        p = Path(path)
        p = p if p.is_absolute() else self.base / p
        if not p.is_file():
            what = "not a regular file" if p.exists() else "no such file"
            raise FileFormatError(f"{self.source}: {where}: {p}: {what}")
        return p.resolve()

    def plan(self) -> Plan:
        """The grid's points in order (:meth:`SweepKind.plan`); ConfigError for an empty or too large grid."""
        plan = self.kind.plan(dict(self.grid), self)
        if not plan.points:
            raise ConfigError(f"{self.source}: the grid is empty (an axis without values)")
        if len(plan.points) > MAX_POINTS:
            raise ConfigError(f"{self.source}: the grid has {len(plan.points)} points, more than MAX_POINTS = "
                              f"{MAX_POINTS}")
        return plan

