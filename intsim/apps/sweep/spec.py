"""Sweep specs: :func:`parse_sweep_spec` (TOML text to a checked :class:`SweepSpec`: the kind, the
grid with every parameter's values normalized and defaults filled in) and :func:`load_sweep_spec`
(a spec file, its relative paths starting from its folder)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ...core.errors import ConfigError, FileFormatError
from ...golden.spec import parse_toml
from .kinds import KINDS, MAX_POINTS, SweepSpec
from .params import check_int

__all__ = ["SweepSpec", "MAX_POINTS", "parse_sweep_spec", "load_sweep_spec"]


def parse_sweep_spec(text: str | bytes, source: str = "<spec>", base: str | os.PathLike | None = None) -> SweepSpec:
    """Parse and check a sweep spec (TOML text; see :mod:`intsim.apps.sweep`). Raises FileFormatError for
    text that is not UTF-8 TOML, ConfigError for an unknown kind, table or parameter, a bad value or
    an empty axis, each naming ``source`` and the key."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    try:
        doc = parse_toml(raw, source)
    except RecursionError:
        raise FileFormatError(f"{source}: invalid sweep spec: tables or arrays nested too deeply to parse") from None
    sweep = doc.get("sweep")
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: missing [sweep] table (with kind = one of {', '.join(KINDS)})")
    bad = sorted(set(sweep) - {"kind", "name", "retries"})
    if bad:
        raise ConfigError(f"{source}: sweep.{bad[0]}: unknown key; valid: kind, name, retries")
    kind = KINDS.get(sweep.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise ConfigError(f"{source}: sweep.kind: unknown kind {sweep.get('kind')!r}; valid: {', '.join(KINDS)}")
    name = sweep.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: sweep.name: must be a string, got {name!r}")
    retries = check_int(0, 100)(sweep.get("retries", 1), f"{source}: sweep.retries")
    unknown = sorted(set(doc) - {"sweep", "grid", *kind.extra_tables})
    if unknown:
        raise ConfigError(f"{source}: unknown table {unknown[0]!r}; a {kind.name} sweep has "
                          + ", ".join(f"[{t}]" for t in ("sweep", "grid", *kind.extra_tables)))
    grid_doc = doc.get("grid", {})
    if not isinstance(grid_doc, dict):
        raise ConfigError(f"{source}: 'grid' must be a table ([grid])")
    valid = [p.name for p in kind.params]
    for key in grid_doc:
        if key not in valid:
            raise ConfigError(f"{source}: grid.{key}: unknown parameter of a {kind.name} sweep; valid: "
                              f"{', '.join(valid)}")
    grid: dict[str, list[Any]] = {}
    order = list(grid_doc) + [n for n in valid if n not in grid_doc]
    for key in order:
        p = kind.param(key)
        assert p is not None
        where = f"{source}: grid.{key}"
        if key not in grid_doc:
            grid[key] = [p.default]
            continue
        value = grid_doc[key]
        if isinstance(value, list):
            if not p.axis:
                raise ConfigError(f"{where}: takes one value, not a list")
            if not value:
                raise ConfigError(f"{where}: an empty list makes the grid empty; give at least one value")
            vals = [p.check(v, f"{where}[{i}]") for i, v in enumerate(value)]
            if len(set(map(repr, vals))) != len(vals):
                raise ConfigError(f"{where}: lists a value twice")
            grid[key] = vals
        else:
            grid[key] = [p.check(value, where)]
    return SweepSpec(kind, grid, tuple(grid_doc), name, retries,
                     {t: doc[t] for t in kind.extra_tables if t in doc},
                     Path(base) if base is not None else Path.cwd(), source, raw)


def load_sweep_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and parse a sweep spec file; relative paths in it start from its folder."""
    p = Path(path)
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            raise FileFormatError(f"{p}: not a regular file (a sweep spec is a TOML file)")
        if st.st_size > (16 << 20):
            raise FileFormatError(f"{p}: {st.st_size} bytes; a sweep spec is at most 16 MiB")
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(f"{p}: sweep spec not found") from None
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return parse_sweep_spec(data, source=str(p), base=p.resolve().parent)

