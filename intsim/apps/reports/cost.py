"""Energy, area and cycles of fp32, fp16, int8, IM-Unpack and LLM.int8() on one workload.

``intsim report cost --workload W --profile P`` writes ``reports/cost/`` (or ``--out``)
atomically (the directory is built aside and renamed into place; ``--force`` replaces
an existing one):

* ``README.md``: the workload, the profile and its sources, the methods side by side
  (energy by component, relative to int8 direct, cycles, area), the integer non-linear
  families against the float operators, the unpack ratios, which figures are extrapolated, and
  what was left out and why;
* ``summary.csv`` (one row per method), ``steps.csv`` (one row per method and step),
  ``counts.csv`` (exact action counts), ``energy_table.csv`` (energy per action with
  its provenance), ``area.csv``, ``nonlinear.csv``, ``qonnx.csv`` (qonnx-style totals);
* ``accelergy/ERT.yaml`` and ``accelergy/action_counts_<method>.yaml``;
* ``energy_by_component.png`` (stacked bars per method) and ``unpack_ratio_vs_energy.png``.

Workloads: ``gemm:MxKxN``, ``gemm:LAYER.NAME``, ``npy:A.npy,B.npy`` (one GEMM of your .npy files),
``onnx:MODEL.onnx,FEEDS.npz`` (every integer GEMM of your quantized ONNX model), ``layer[:L]``,
``minilm`` (default).
Profiles: ``horowitz45`` (default), ``qkeras_fit``, ``aladdin40`` or a TOML file (its
format: :mod:`intsim.cost.profiles`; ``--print-profile NAME`` prints a built-in one to
start from); ``--scale-to 7 --voltage 0.8`` applies the Stillmaker & Baas factors.

A method (or a row of the non-linear comparison) the profile cannot price is an error
naming every missing profile entry and width (exit status 2); ``--methods`` restricts the
methods, ``--allow-partial`` writes the report without them (listed under "Not included")
and prints a warning. Progress goes to stdout, one line per unit of work (``-q`` hides
it). Every output is deterministic: no timestamps, fixed inputs, PNGs without the
software tag.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from ...core.helptext import add_output_options

__all__ = ["add_arguments", "run", "write_report"]

_MARKER = "summary.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim report cost``."""
    parser.add_argument("--workload", default="minilm",
                        help="gemm:MxKxN, gemm:LAYER.NAME (a real MiniLM linear GEMM), npy:A.npy,B.npy (one "
                             "GEMM of your .npy files), onnx:MODEL.onnx,FEEDS.npz (the integer GEMMs of your "
                             "quantized model), layer[:L] or minilm (default: minilm)")
    parser.add_argument("--profile", default="horowitz45",
                        help="hardware profile (energy/area table): built-in horowitz45, qkeras_fit, aladdin40 "
                             "or a TOML file (default: horowitz45)")
    parser.add_argument("--scale-to", type=float, default=None, metavar="NM",
                        help="technology node to scale the profile to (Stillmaker & Baas; 7 from 45 nm)")
    parser.add_argument("--voltage", type=float, default=None, metavar="V",
                        help="supply voltage of the scaled node (0.7, 0.8 or 0.9 at 7 nm)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods (default: fp32, fp16, int8, unpack<b>-<strategy> for every "
                             "strategy at --unpack-bits, llm.int8)")
    parser.add_argument("--unpack-bits", default="4,2", help="IM-Unpack multiplier widths (default: 4,2)")
    parser.add_argument("--strategies", default=None,
                        help="IM-Unpack strategies (default: all of intsim.hw.unpack except the slow ones)")
    parser.add_argument("--nonlinear", default=None,
                        help="family of non-linear operators of the integer methods (default: the first "
                             "integer family available, else fp32)")
    parser.add_argument("--sentences", type=int, default=None,
                        help="use the first N sentences of intsim_reference.sentences.SENTENCES (default: all)")
    parser.add_argument("--max-len", type=int, default=64, help="tokenizer truncation length (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of synthetic GEMM operands (default: 0)")
    add_output_options(parser, out="reports/cost", plots=True)
    parser.add_argument("--allow-partial", action="store_true",
                        help="write the report even if the profile cannot price some methods or non-linear "
                             "families: they are left out, listed in the report and in a warning (default: that "
                             "is an error naming every missing profile entry)")
    parser.add_argument("--print-profile", metavar="NAME", default=None,
                        help="print the TOML file of a built-in profile (horowitz45, qkeras_fit, aladdin40, "
                             "synth_generic) to stdout, a starting point for a profile of your own, and exit")
    parser.add_argument("--no-profiles", action="store_true",
                        help="leave out the side-by-side section (the standard methods under horowitz45, "
                             "qkeras_fit and the synthesis-grounded synth_generic)")


def _printer(quiet: bool) -> Callable[[str], None]:
    """Progress on stdout, one line per unit of work, flushed; nothing when ``quiet``."""
    def progress(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)
    return progress


def _csv(df: pd.DataFrame, index: bool = False) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=index, float_format="%.10g", lineterminator="\n")
    return buf.getvalue()


def _fmt_pj(x: float) -> str:
    for unit, f in (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(x) >= f:
            return f"{x / f:.4g} {unit}"
    return f"{x:.4g} pJ"


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _plots(result, summary: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from ...cost.model import COMPONENTS

    written = []
    peak = float(sum(summary[f"{comp}_pj"] for comp in COMPONENTS).max()) if len(summary) else 0.0
    unit, per = next(((u, f) for u, f in (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)) if peak >= f),
                     ("pJ", 1.0))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(summary) + 2), 4.5))
    bottom = [0.0] * len(summary)
    x = list(range(len(summary)))
    for comp in COMPONENTS:
        vals = [v / per for v in summary[f"{comp}_pj"]]
        if not any(vals):
            continue
        ax.bar(x, vals, bottom=bottom, label=comp.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(x, list(summary.index), rotation=45, ha="right")
    ax.set_ylabel(f"energy ({unit})")
    ax.set_title(f"{result.workload.name} on {result.profile.name}: energy by component")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "energy_by_component.png", format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    written.append("energy_by_component.png")

    un = summary[summary.family.isin(["unpack", "int8"])]
    if len(un) > 1:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        markers = "o^sDvP*X"
        for i, (name, row) in enumerate(un.iterrows()):
            color = {4: "C0", 2: "C3"}.get(int(row.bits), "C2" if row.family == "unpack" else "k")
            ax.scatter(row.unpack_ratio, row.relative_energy, color=color, marker=markers[i % len(markers)],
                       label=name)
        ax.legend(fontsize=7, loc="upper left")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.text(ax.get_xlim()[1], 1.0, "int8 direct ", ha="right", va="bottom", fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("unpack ratio (unpacked MACs / original MACs, log scale)")
        ax.set_ylabel("energy relative to int8 direct (x, log scale)")
        ax.set_title(f"IM-Unpack on {result.workload.name} ({result.profile.name})")
        fig.tight_layout()
        fig.savefig(out / "unpack_ratio_vs_energy.png", format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        written.append("unpack_ratio_vs_energy.png")
    return written


def _command(args: argparse.Namespace) -> str:
    parts = ["intsim report cost", f"--workload {args.workload}", f"--profile {args.profile}"]
    if args.scale_to is not None:
        parts.append(f"--scale-to {args.scale_to:g}" + (f" --voltage {args.voltage:g}" if args.voltage else ""))
    for opt in ("methods", "strategies", "nonlinear"):
        if getattr(args, opt):
            parts.append(f"--{opt} {getattr(args, opt)}")
    if args.unpack_bits != "4,2":
        parts.append(f"--unpack-bits {args.unpack_bits}")
    if args.sentences is not None:
        parts.append(f"--sentences {args.sentences}")
    if getattr(args, "allow_partial", False):  # (not --out: where the report goes is not part of its data)
        parts.append("--allow-partial")
    return " ".join(parts) + " --force"


def write_report(result, nonlinear: pd.DataFrame | None, out: Path, command: str, plots: bool = True) -> list[str]:
    """Write every file of the report into the existing directory ``out``; returns their names."""
    from ...core.fileio import atomic_write_text
    from ...cost.counts import CostCounts
    from ...cost.export import accelergy_action_counts_yaml, accelergy_ert_yaml, qonnx_cost

    summary = result.summary()
    files: dict[str, str] = {}
    files["summary.csv"] = _csv(summary, index=True)
    files["steps.csv"] = _csv(result.frame)
    files["counts.csv"] = _csv(result.counts_frame())
    et = []
    for m in result.methods:
        t = result.energy_table(m.name)
        t.insert(0, "method", m.name)
        et.append(t)
    energy_tab = pd.concat(et, ignore_index=True)
    files["energy_table.csv"] = _csv(energy_tab)
    area = []
    for m in result.methods:
        a = result.area(m.name)
        a.insert(0, "method", m.name)
        area.append(a)
    files["area.csv"] = _csv(pd.concat(area, ignore_index=True))
    q = pd.DataFrame([{"method": m.name, **qonnx_cost(result.steps[m.name])} for m in result.methods]).fillna(0)
    q = q[["method"] + sorted(c for c in q.columns if c != "method")]
    for c in q.columns[1:]:
        q[c] = q[c].astype("int64")
    files["qonnx.csv"] = _csv(q)
    if nonlinear is not None:
        files["nonlinear.csv"] = _csv(nonlinear)
    all_counts = sum((result.counts(m.name) for m in result.methods), CostCounts())
    files["accelergy/ERT.yaml"] = accelergy_ert_yaml(all_counts, result.profile)
    for m in result.methods:
        files[f"accelergy/action_counts_{m.name}.yaml"] = accelergy_action_counts_yaml(result.counts(m.name),
                                                                                       result.profile)
    pngs = _plots(result, summary, out) if plots else []
    files["README.md"] = _markdown(result, summary, energy_tab, nonlinear, q, command, pngs)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return sorted(list(files) + pngs)


def _markdown(result, summary: pd.DataFrame, energy_tab: pd.DataFrame, nonlinear: pd.DataFrame | None,
              qonnx: pd.DataFrame, command: str, pngs: list[str]) -> str:
    from ...cost.model import COMPONENTS

    p, w = result.profile, result.workload
    a = p.array
    L = [f"# Cost report: {w.name} on {p.name}", ""]
    L += [f"Generated by `{command}`. Every count is exact; energies are counts times the profile's "
          "per-action figures (pJ). Nothing here is measured on silicon.", ""]
    L += ["## Workload and hardware", "", f"- Workload: {w.description}; {w.macs:,} GEMM MACs.",
          f"- Profile: {p.describe()}.", f"- Profile file: `{Path(p.path).name}`; sources:"]
    L += [f"  - {s}" for s in p.sources]
    L += [f"- MAC array: {a.rows} x {a.cols} processing elements, output-stationary, one MAC per PE per cycle, "
          f"{a.clock_mhz:g} MHz, {a.acc_bits}-bit accumulators. Vector unit: {p.vector_unit.lanes} lanes at "
          f"{p.vector_unit.clock_mhz:g} MHz.",
          "- Memory: weights and LayerNorm parameters read once from DRAM, activations read and written in SRAM at "
          "their stored widths; the array re-reads operands from SRAM for every further tile pass and each MAC reads "
          "its two operands from PE registers (register file).", ""]
    base = "int8"
    have_base = base in summary.index
    L += ["## Methods side by side", ""]
    cols = ["family", "bits", "nonlinear", "macs", "total_pj", "relative_energy", "compute_pj", "memory_pj",
            "array_cycles", "array_utilization", "time_ns", "area_um2", "unpack_ratio"]
    t = summary[cols].copy()
    t.insert(0, "method", t.index)
    t["macs"] = [f"{int(v):,}" for v in t.macs]
    for c in ("total_pj", "compute_pj", "memory_pj"):
        t[c] = [_fmt_pj(v) for v in t[c]]
    t["relative_energy"] = [f"{v:.3f}" if not math.isnan(v) else "" for v in t.relative_energy]
    t["array_cycles"] = [f"{int(v):,}" for v in t.array_cycles]
    t["array_utilization"] = [f"{v:.3f}" for v in t.array_utilization]
    t["time_ns"] = [f"{v / 1e3:,.1f} µs" for v in t.time_ns]
    t["area_um2"] = [f"{v / 1e6:.3f} mm²" for v in t.area_um2]
    t["unpack_ratio"] = ["" if math.isnan(v) else f"{v:.3f}" for v in t.unpack_ratio]
    t = t.rename(columns={"total_pj": "energy", "relative_energy": f"vs {base}", "compute_pj": "compute",
                          "memory_pj": "memory", "time_ns": "time", "area_um2": "datapath area"})
    L += [_md_table(t), ""]
    L += ["`nonlinear` names the non-linear operators each method uses; `macs` counts the MACs the array performs "
          "(for IM-Unpack, of the unpacked GEMMs); `datapath area` is the MAC array for that method's multipliers plus "
          "the vector unit. Time is array time plus vector-unit time, without overlap.", ""]
    if have_base:
        ranked = summary.sort_values("total_pj")
        cheapest = ranked.index[0]
        L += ["### Energy relative to int8 direct", ""]
        L += [f"- **{name}**: {row.relative_energy:.3f} x int8 ({_fmt_pj(row.total_pj)})"
              for name, row in ranked.iterrows()]
        L += ["", f"**Cheapest under {p.name}: {cheapest}** ({_fmt_pj(ranked.iloc[0].total_pj)}, "
                  f"{ranked.iloc[0].relative_energy:.3f} x int8 direct).", ""]
    L += ["## Energy by component", ""]
    comp = summary[[f"{c}_pj" for c in COMPONENTS]].copy()
    comp = comp.loc[:, (comp != 0).any(axis=0)]
    share = comp.div(summary["total_pj"], axis=0)
    ct = pd.DataFrame({"method": comp.index})
    for c in comp.columns:
        ct[c[:-3]] = [f"{_fmt_pj(v)} ({s:.0%})" for v, s in zip(comp[c], share[c], strict=True)]
    L += [_md_table(ct), ""]
    if "energy_by_component.png" in pngs:
        L += ["![energy by component](energy_by_component.png)", ""]
    cat = result.by_category()
    ctab = pd.DataFrame({"method": cat.index})
    for c in cat.columns:
        ctab[c] = [_fmt_pj(v) for v in cat[c]]
    L += ["Energy by step category (`requant` includes LLM.int8()'s input quantization; `reassembly` is IM-Unpack's "
          "shift-and-add):", "", _md_table(ctab), ""]
    un = summary[summary.family == "unpack"]
    if len(un):
        L += ["## IM-Unpack: unpack ratio against energy", "",
              "The IM-Unpack methods unpack the *same int8 operands* as int8 direct (per-tensor absmax, round half "
              "to even, [-127, 127]; probabilities [0, 255]), so they compute exactly the same integers on b-bit "
              "multipliers. The unpack ratio is the unpacked GEMM work over the original (sum of M'K'N' over sum of "
              "MKN); energy saved is relative to int8 direct (negative: more energy).", ""]
        ut = pd.DataFrame({"method": un.index, "bits": un.bits.astype(int), "strategy": un.strategy,
                           "unpack ratio": [f"{v:.3f}" for v in un.unpack_ratio],
                           "energy saved vs int8": [f"{100 * v:.1f}%" for v in un.energy_saved]})
        L += [_md_table(ut), ""]
        if "unpack_ratio_vs_energy.png" in pngs:
            L += ["![unpack ratio against energy relative to int8 direct](unpack_ratio_vs_energy.png)", ""]
        mul = {b: p.energy("mul", (b, b)) for b in sorted({8, *un.bits.astype(int)})}
        add = p.energy("add", (a.acc_bits,))
        L += ["Break-even: a b-bit MAC costs mul(b) + add(acc) = " + ", ".join(
            f"{mul[b] + add:.4g} pJ at {b} bits" for b in mul) + f" on {p.name}, so compute alone breaks even at an "
            "unpack ratio of " + ", ".join(f"{(mul[8] + add) / (mul[b] + add):.2f} ({b} bits)" for b in mul if b != 8)
            + "; memory traffic and the reassembly move it further.", ""]
    if nonlinear is not None:
        L += ["## Non-linear operators: integer families against float", "",
              "Energy of softmax, GELU and LayerNorm over the whole workload. `fp32`/`fp16`: float recipes "
              "(`intsim.cost.floatops`) in a float pipeline; `int8+fp32`/`int8+fp16`: the same recipes in the "
              "integer pipeline (dequantize, compute, quantize); integer families: their operators on integer "
              "inputs from the real activations, with the requantizations that follow them.", ""]
        nt = nonlinear.pivot_table(index="nonlinear", columns="op", values="total_pj", aggfunc="sum", sort=False)
        rel = nonlinear[nonlinear.op == "total"].set_index("nonlinear")["relative_to_fp32"]
        ntab = pd.DataFrame({"nonlinear": nt.index})
        for c in nt.columns:
            ntab[c] = [_fmt_pj(v) for v in nt[c]]
        if not rel.isna().all():
            ntab["total vs fp32"] = [f"{rel[i]:.3f}" for i in nt.index]
        L += [_md_table(ntab), ""]
    prov = energy_tab[~energy_tab.provenance.isin(["table", "memory"])][["unit", "action", "widths", "pj_each",
                                                                        "provenance"]].drop_duplicates()
    L += ["## Where the figures come from", "",
          "`energy_table.csv` lists every priced action with its provenance: `table` (the profile's published "
          "value), `fit` (the QKeras QTools polynomial: an extrapolation), `interpolated`/`scaled` (width rules), "
          "`derived` (priced as another unit, e.g. a shifter as an adder), `memory` (per-byte figure times bytes).",
          ""]
    if len(prov):
        pt = prov.copy()
        pt["pj_each"] = [f"{v:.6g}" for v in pt.pj_each]
        L += ["Values used here that are not published table values:", "", _md_table(pt), ""]
    mem = "; ".join(f"{lv.name} {lv.read_pj_per_byte:g}/{lv.write_pj_per_byte:g} pJ per byte read/write"
                    + (f" ({lv.note})" if lv.note else "") for lv in p.memory.values())
    L += [f"Memory: {mem}.", ""]
    L += ["## qonnx-style totals", "", "BOPs = sum of bits(A) x bits(B) x MACs; memory bits of weights (`mem_w`) and "
          "of every operation's outputs (`mem_o`), as `qonnx.util.inference_cost` defines them.", ""]
    qt = qonnx[["method", "total_macs", "total_bops", "total_mem_w_bits", "total_mem_o_bits"]].copy()
    for c in qt.columns[1:]:
        qt[c] = [f"{int(v):,}" for v in qt[c]]
    L += [_md_table(qt), ""]
    L += ["## Files", "", "- `summary.csv`, `steps.csv`, `counts.csv`, `energy_table.csv`, `area.csv`, `qonnx.csv`"
          + (", `nonlinear.csv`" if nonlinear is not None else ""),
          "- `accelergy/ERT.yaml` (energy per action) and `accelergy/action_counts_<method>.yaml`, for "
          "Timeloop/Accelergy cross-checks", ""]
    from ...cost.methods import nonlinear_families

    missing = [(f"non-linear family {n}", why) for n, why in nonlinear_families().items() if why is not None]
    L += ["## Not included", ""]
    L += [f"- `{n}`: {why}" for n, why in list(result.skipped) + missing]
    L += ["- IM-Unpack's digit extraction (the shifts and masks that build the unpacked operands) is not counted: "
          "`intsim.hw.unpack` counts the low-bit GEMMs and the reassembly only.",
          "- Integer-to-float conversions are not priced; float non-linear operators are recipes "
          "(`intsim.cost.floatops`), not measured implementations.",
          "- The embedding lookup and its LayerNorm, pooling and normalization are outside the workload.", ""]
    return "\n".join(L)


def _problem_text(problems: Sequence[tuple[str, Exception]]) -> str:
    """The problems, grouped by missing profile entry: which widths, needed by what."""
    from ...cost.profiles import MissingEntryError

    entries: dict[tuple[str, bool], dict[str, list[str]]] = {}
    other: list[str] = []
    for label, exc in problems:
        if isinstance(exc, MissingEntryError):
            by_width = entries.setdefault((exc.entry, exc.absent), {})
            users = by_width.setdefault(exc.widths, [])
            if label not in users:
                users.append(label)
        else:
            text = f"{label}: {exc}"
            if text not in other:
                other.append(text)
    parts = []
    for (entry, absent), by_width in entries.items():
        needs = ", ".join(f"at {w} bits by {', '.join(users)}" for w, users in by_width.items())
        if absent:
            parts.append(f"{entry} is missing, needed {needs}")
        else:
            parts.append(f"{entry} has no value (not in points, no fit, no scaling rule) {needs}")
    return "; ".join(parts + other)


_NL = "non-linear comparison of "  # label prefix of the non-linear comparison's rows


def _cannot_price(profile, problems: Sequence[tuple[str, Exception]], methods: Sequence, mode: str = "error") -> str:
    """One line: what cannot be priced and why, and what to do about it. ``mode``: ``error`` (suggest
    the fixes), ``partial`` (they are left out), ``nothing`` (nothing could be priced)."""
    names = [m.name for m in methods]
    bad = list(dict.fromkeys(label for label, _ in problems if label in names))
    nl = list(dict.fromkeys(label.removeprefix(_NL) for label, _ in problems if label not in names))
    what = []
    if bad:
        what.append(f"{len(bad)} of the {len(names)} methods ({', '.join(bad)})")
    if nl:
        what.append(f"{len(nl)} rows of the non-linear comparison ({', '.join(nl)})")
    head = f"profile {profile.name} ({profile.path}) cannot price {' and '.join(what)}: {_problem_text(problems)}"
    if mode == "partial":
        return f"{head}; they are left out of the report (--allow-partial)"
    good = [n for n in names if n not in bad]
    hint = f", restrict the methods with --methods {','.join(good)}" if bad and good else ""
    fix = "Add the missing entries to the profile (intsim report cost --print-profile horowitz45 prints a complete one)"
    if mode == "nothing":
        return f"{head}. Nothing is left to report. {fix}"
    return f"{head}. {fix}{hint}, or pass --allow-partial to write the report without them"


def _mac_counts(method, acc_bits: int):
    """One MAC of ``method``'s main GEMM datapath, as counts."""
    from ...cost.counts import CostCounts

    if method.family == "float":
        return CostCounts({("fmac", (method.bits,)): 1})
    return CostCounts({("mac", (method.bits, method.bits, acc_bits)): 1})


def _profiles_side_by_side(tmp: Path, workload: object, name: str,
                           progress: Callable[[str], None]) -> list[str]:
    """The synthesis-grounded profile beside the literature ones: the standard methods ranked under
    horowitz45, qkeras_fit and synth_generic, per-width curves and the Yosys gate counts they come
    from (the cell counts shipped with intsim: nothing is re-synthesized). Appends a section to
    README.md and writes ``synthesis.md``, ``synth_cells.csv``, ``profiles_curves.csv`` and
    ``profiles_ranking.csv``; returns their names."""
    from ...cost import synth
    from ...cost.profiles import builtin_profile_text

    table = synth.SynthTable.builtin()
    if ("mul", 8, 0) not in table.rows:  # pragma: no cover - the shipped table has it
        return []
    rep = synth.report_files(table, builtin_profile_text("synth_generic"), workload=name, progress=progress,
                             workload_obj=workload)
    out = {"synthesis.md": rep["README.md"], "synth_cells.csv": rep["cells.csv"],
           "profiles_curves.csv": rep["curves.csv"], "profiles_ranking.csv": rep["ranking.csv"]}
    for fname, text in out.items():
        (tmp / fname).write_text(text)
    md = rep["README.md"]
    gates = md[md.index("## Gate counts"):md.index("## Per-width curves")].strip().replace("`cells.csv`",
                                                                                               "`synth_cells.csv`")
    ranking = md[md.index("## Method ranking"):md.index("## Where the profiles disagree")].strip().replace(
        "`ranking.csv`", "`profiles_ranking.csv`")
    disagree = md[md.index("## Where the profiles disagree"):].strip()
    section = ["", "## Hardware profiles side by side: synthesis beside the literature", "",
               "`synth_generic` prices the integer adders and multipliers from Yosys gate counts (generic gates, "
               "`synth -noabc`, the cell counts shipped with intsim in `intsim/cost/profiles/synth_cells.csv`, "
               "regenerated by `intsim synth --sweep`), calibrated at one point of the Horowitz table; the gate "
               "counts, per-width curves and the whole comparison are in `synthesis.md`, `synth_cells.csv`, "
               "`profiles_curves.csv` and `profiles_ranking.csv`.", "",
               "#" + gates, "", "#" + ranking, "", "#" + disagree.replace("\n## ", "\n### "), ""]
    readme = tmp / "README.md"
    readme.write_text(readme.read_text().rstrip("\n") + "\n" + "\n".join(section))
    return list(out)


def run(args: argparse.Namespace) -> int:
    """Build the workload, cost every method, write the report. Returns the exit status."""
    from ...core.errors import ConfigError
    from ...core.fileio import atomic_directory
    from ...cost import cost_workload, load_profile, nonlinear_comparison, parse_workload
    from ...cost.methods import get_method, standard_methods
    from ...cost.model import unpriced
    from ...cost.profiles import builtin_profile_text

    if args.print_profile is not None:
        sys.stdout.write(builtin_profile_text(args.print_profile))
        sys.stdout.flush()
        return 0
    progress = _printer(bool(getattr(args, "quiet", False)))
    allow_partial = bool(getattr(args, "allow_partial", False))
    profile = load_profile(args.profile)
    if args.scale_to is not None:
        profile = profile.scaled(args.scale_to, args.voltage)
    sentences = None
    if args.sentences is not None:
        from intsim_reference.sentences import SENTENCES

        if not 1 <= args.sentences <= len(SENTENCES):
            raise ConfigError(f"--sentences must be from 1 to {len(SENTENCES)}, got {args.sentences}")
        sentences = SENTENCES[:args.sentences]
    try:
        bits = tuple(int(b) for b in args.unpack_bits.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--unpack-bits takes comma-separated integers, got {args.unpack_bits!r}") from None
    strategies = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    if args.methods:
        methods = [get_method(n.strip(), args.nonlinear) for n in args.methods.split(",") if n.strip()]
        skipped: list[tuple[str, str]] = []
    else:
        methods, skipped = standard_methods(args.nonlinear, bits, strategies)
    # Fail fast on what can be checked before the workload is built: each method's MAC and the area
    # of its processing elements and of the vector unit.
    acc = profile.array.acc_bits
    early = [(m.name, e) for m in methods
             for e in unpriced(profile, [_mac_counts(m, acc)], pe_units=m.pe_units(acc))]
    if early and not allow_partial:
        raise ConfigError(_cannot_price(profile, early, methods))
    out = Path(args.out)
    with atomic_directory(out, force=args.force) as tmp:
        progress(f"building workload {args.workload}")
        workload = parse_workload(args.workload, sentences=sentences, max_len=args.max_len, seed=args.seed,
                                  progress=progress)
        problems: list[tuple[str, Exception]] = []
        nonlinear = None
        nl_skipped: list[tuple[str, str]] = []
        if any(s.__class__.__name__ == "VectorSite" and s.op != "residual" for s in workload.sites):
            progress("comparing the non-linear families")
            try:
                nonlinear = nonlinear_comparison(workload, profile, skip_unpriceable=True, progress=progress)
                nl_skipped = [(f"non-linear family {n}", why) for n, why in nonlinear.attrs.get("skipped", [])]
                problems += [(_NL + n, e) for n, e in nonlinear.attrs.get("problems", [])]
            except ConfigError as exc:
                nl_skipped = [("non-linear comparison", str(exc))]
                problems += [(_NL + n, e) for n, e in getattr(exc, "problems", [])] or [("non-linear comparison", exc)]
            if problems and not allow_partial:
                raise ConfigError(_cannot_price(profile, problems, methods))
        try:
            result = cost_workload(workload, profile, methods, progress=progress, skip_unpriceable=True)
        except ConfigError as exc:
            if getattr(exc, "problems", None):
                raise ConfigError(_cannot_price(profile, problems + exc.problems, methods, "nothing")) from None
            raise
        problems = list(result.problems) + problems
        if problems and not allow_partial:
            raise ConfigError(_cannot_price(profile, problems, methods))
        result.skipped = skipped + result.skipped + nl_skipped
        progress("writing the report")
        files = write_report(result, nonlinear, tmp, _command(args), plots=not args.no_plots)
        if not getattr(args, "no_profiles", False):
            files += _profiles_side_by_side(tmp, workload, args.workload, progress)
    print(f"wrote {len(files)} files to {out}", flush=True)
    if problems:
        print(f"warning: partial report: {_cannot_price(profile, problems, methods, 'partial')}", flush=True)
    s = result.summary()
    for name, row in s.iterrows():
        rel = "" if math.isnan(row.relative_energy) else f"  ({row.relative_energy:.3f} x int8)"
        print(f"{name:16s} {_fmt_pj(row.total_pj):>12s}{rel}")
    return 0
