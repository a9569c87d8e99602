"""Tables, text and files of an ``intsim onnx run`` what-if (:func:`intsim.onnx.whatif.run_whatif`).

:func:`whatif_tables` turns a :class:`~intsim.onnx.whatif.WhatIfResult` into pandas tables
(tensors against ONNX Runtime, outputs against float, integer GEMMs, replaced operators, energy
by component under a hardware profile), :func:`whatif_markdown` into text, and
:func:`write_whatif` writes both into a report directory (atomically, see
:func:`intsim.core.fileio.atomic_directory`).
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from ..core.fileio import atomic_directory
from ..cost.counts import CostCounts
from ..cost.model import energy_by_component
from ..cost.profiles import load_profile
from ..onnx.whatif import WhatIfResult

__all__ = ["whatif_tables", "whatif_markdown", "write_whatif"]


def whatif_tables(res: WhatIfResult, profile: str = "horowitz45") -> dict[str, pd.DataFrame]:
    """``tensors``, ``outputs_vs_float``, ``gemms``, ``replacements`` and ``energy`` (pJ per component
    of the integer GEMMs' and replaced operators' op counts under ``profile``; memory accesses of
    the GEMM operands at SRAM, float operators not counted)."""
    tensors = pd.DataFrame([vars(t) for t in res.against_ort],
                           columns=["name", "node", "op_type", "dtype", "size", "n_differ", "max_abs", "rel_rms"])
    vs_float = pd.DataFrame([vars(t) for t in res.against_float],
                            columns=["name", "node", "op_type", "dtype", "size", "n_differ", "max_abs", "rel_rms"])
    gemms = pd.DataFrame([{"node": g.node, "op_type": g.op_type, "M": g.shape[0], "K": g.shape[1], "N": g.shape[2],
                           "count": g.count, "engine": g.method, "overflows": g.n_overflow,
                           "first_overflow": "" if g.first_overflow is None else "x".join(map(str, g.first_overflow)),
                           "macs": g.shape[0] * g.shape[1] * g.shape[2] * g.count, "low_bit_macs": g.low_bit_macs,
                           "unpack_ratio": g.low_bit_macs / max(1, g.shape[0] * g.shape[1] * g.shape[2] * g.count)}
                          for g in res.gemms],
                         columns=["node", "op_type", "M", "K", "N", "count", "engine", "overflows", "first_overflow",
                                  "macs", "low_bit_macs", "unpack_ratio"])
    repl = pd.DataFrame([{"node": r.node, "op_type": r.op_type, "family": r.family,
                          "register_overflows": r.n_register_events,
                          "ops": sum(n for _, n in r.ops.items())} for r in res.replacements],
                        columns=["node", "op_type", "family", "register_overflows", "ops"])
    prof = load_profile(profile)
    energy = energy_by_component(CostCounts.from_opcounts(res.ops), prof)
    etab = pd.DataFrame([{"component": k, "energy_pj": v} for k, v in energy.items()])
    etab.attrs["profile"] = prof.name
    return {"tensors": tensors, "outputs_vs_float": vs_float, "gemms": gemms, "replacements": repl, "energy": etab}


def _md(df: pd.DataFrame) -> str:
    if df.empty:
        return "(none)"
    cols = list(df.columns)
    rows = [[_cell(v) for v in r] for r in df.itertuples(index=False)]
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    return "\n".join([head, sep, *("| " + " | ".join(r) + " |" for r in rows)])


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def whatif_markdown(res: WhatIfResult, tables: dict[str, pd.DataFrame], *, model_name: str,
                    all_rows: bool = False) -> str:
    """The what-if as Markdown: the change, the summary, then the tables (tensors that differ
    from ONNX Runtime's only, unless ``all_rows``)."""
    t = tables["tensors"]
    shown = t if all_rows else t[t["n_differ"] > 0]
    ratio = res.unpack_ratio
    total_pj = float(tables["energy"]["energy_pj"].sum())
    lines = [f"# What-if: {os.path.basename(str(model_name))}", "",
             f"Change: {res.whatif.describe()}.", "",
             f"- integer GEMMs: {len(res.gemms)} ({res.macs:,} MACs as written)"
             + (f"; unpack ratio {ratio:.3f}" if ratio is not None else ""),
             f"- GEMM outputs with an accumulator overflow: {res.n_overflow:,}",
             f"- replaced non-linear operators: {len(res.replacements)}"
             + (f" ({sum(r.n_register_events for r in res.replacements)} register overflows)"
                if res.replacements else ""),
             f"- tensors that differ from ONNX Runtime's: {int((t['n_differ'] > 0).sum())} of {len(t)}",
             f"- energy of the integer operations under {tables['energy'].attrs.get('profile', '')}: "
             f"{total_pj / 1e6:.4g} uJ", ""]
    if not tables["outputs_vs_float"].empty:
        lines += ["## Graph outputs against the float model", "", _md(tables["outputs_vs_float"]), ""]
    lines += ["## Tensors against ONNX Runtime" + ("" if all_rows else " (those that differ)"), "", _md(shown), "",
              "## Integer GEMMs", "", _md(tables["gemms"]), ""]
    if res.replacements:
        lines += ["## Replaced operators", "", _md(tables["replacements"]), ""]
    lines += ["## Energy by component (pJ)", "", _md(tables["energy"]), ""]
    return "\n".join(lines)


def write_whatif(out: str | os.PathLike[str], res: WhatIfResult, tables: dict[str, pd.DataFrame], *,
                 model_name: str, force: bool = False) -> None:
    """Write ``what-if.md`` and one CSV per table into the directory ``out`` (replaced only with
    ``force`` and only if intsim wrote it)."""
    with atomic_directory(out, force=force) as d:
        text = whatif_markdown(res, tables, model_name=model_name, all_rows=True)
        (d / "what-if.md").write_text(text, encoding="utf-8")
        for name, df in tables.items():
            (d / f"{name}.csv").write_text(df.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
