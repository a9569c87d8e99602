"""What a finished sweep writes besides its parts: ``results.parquet`` (one row per point, in grid
order), ``timings.parquet``, the kind's plots and ``README.md`` (a Markdown summary: the axes, the
fixed parameters, the plots, the first rows and the spec), recorded in ``sweep.json``."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import __version__
from ...core.fileio import atomic_write_bytes
from .deps import pyarrow_modules
from .kinds import Plan, PointResult, SweepSpec
from .store import RECORD, RESULTS, SUMMARY, TIMINGS, read_record, write_record

__all__ = ["write_outputs"]


def write_outputs(root: Path, spec: SweepSpec, plan: Plan, rows: list[dict[str, Any]], results: list[PointResult],
                  keys: list[str], timings: dict[str, float], plots: bool, say: Callable[[str], None]) -> list[str]:
    """Write what a finished sweep gives into ``root``: ``results.parquet`` (``rows``, in grid order),
    ``timings.parquet``, the kind's plots (with ``plots``), ``README.md``, the kind's own files
    (:meth:`SweepKind.finish`) and the record; returns the files' paths relative to ``root``."""
    pa, pq = pyarrow_modules()
    files: dict[str, bytes] = {}
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    files[RESULTS] = buf.getvalue()
    t = pa.table({"point": list(range(len(keys))), "key": keys,
                  "compute_seconds": [timings.get(k) for k in keys],
                  "computed_in_this_run": [k in timings for k in keys]})
    buf = io.BytesIO()
    pq.write_table(t, buf)
    files[TIMINGS] = buf.getvalue()
    pngs: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="intsim-sweep-plots-") as d:
        if plots:
            pngs = spec.kind.plots(rows, plan, Path(d))
            for name, _ in pngs:
                files[name] = (Path(d) / name).read_bytes()
    files[SUMMARY] = _markdown(spec, plan, rows, pngs).encode("utf-8")
    write_record(root, files, spec, "pending")
    for name, data in files.items():
        atomic_write_bytes(root / name, data)
    rec = read_record(root)
    for stale in [k for k in (rec.get("files") or {}) if k.endswith(".png") and k not in files]:
        with contextlib.suppress(FileNotFoundError):
            (root / stale).unlink()
    extra = spec.kind.finish(root, plan, results, say)
    write_record(root, files, spec, "done")
    return sorted([*files, RECORD, *extra])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v).replace("|", "\\|")


def _markdown(spec: SweepSpec, plan: Plan, rows: list[dict[str, Any]], pngs: list[tuple[str, str]]) -> str:
    kind = spec.kind
    params = [k for k in rows[0] if k in {p.name for p in kind.params}]
    fixed = [k for k in params if k not in plan.axes]
    figures = [k for k in rows[0] if k not in params and k not in ("point", "intsim_version", "key")]
    title = spec.name or f"{kind.name} sweep"
    lines = [f"# {title}", "",
             f"`intsim sweep` of kind `{kind.name}` ({kind.summary}), intsim {__version__}: {len(rows)} points, "
             f"one row each in `{RESULTS}` (columns `point`, the parameters, the figures, `intsim_version`, `key`). "
             "Deterministic: the same spec gives the same rows on any number of workers; compute times are in "
             f"`{TIMINGS}` only.", ""]
    if plan.axes:
        lines += ["Axes (the first varies slowest): " + "; ".join(
            f"`{a}` = {', '.join(_fmt(v) for v in dict.fromkeys(r[a] for r in rows))}" for a in plan.axes) + ".", ""]
    if fixed:
        lines += ["Fixed: " + ", ".join(f"`{k}` = {_fmt(rows[0][k])}" for k in fixed) + ".", ""]
    for name, caption in pngs:
        lines += [f"![{caption}]({name})", ""]
    shown = rows[:200]
    cols = ["point", *plan.axes, *figures]
    lines += ["## Results" + (f" (the first {len(shown)} of {len(rows)} points)" if len(shown) < len(rows) else ""),
              "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in shown]
    lines += ["", "## Spec", "", "```toml", spec.text.decode("utf-8", "replace").rstrip("\n"), "```", ""]
    return "\n".join(lines)
