"""The main job: all-MiniLM-L6-v2 sentence embeddings computed with integers only,
against the float64 reference.

Steps:
  1. a short datapath check: seeded int8 and int4 GEMMs on the emulated datapath,
     every register checked against the exact product (--gemm-only stops here,
     with the full GEMM report);
  2. calibration of static scales on 24 sentences of intsim's own (not in the test set);
  3. the float64 reference pass on the test sentences (reference/sentences.py);
  4. per configuration and non-linear family: quantization, the integer-only pass (every GEMM on
     the emulated datapath, dyadic requantization, integer softmax/GELU/LayerNorm,
     integer residual adds and pooling), cosine similarity to the float64 embeddings,
     per-layer errors, overflows, IM-Unpack ratios, op counts;
  5. reports: OUT/README.md, CSV tables, layer_errors.png, and a golden-vector suite
     of one encoder layer under OUT/golden/ (verified after writing).

Configurations (--config): w8a8 (8-bit multipliers), w8a8-unpack4 (the same integers
on 4-bit multipliers through IM-Unpack: exact GEMMs, so bit-identical embeddings),
llm-int8 (the LLM.int8() decomposition), or "all". Families of integer softmax/GELU/LayerNorm
(--nonlinear): ibert and ibert-corrected (intsim.ops.ibert), ivit and ivit-corrected (intsim.ops.ivit),
illm (intsim.ops.illm), or "all" (every family whose module is present). The default runs every
configuration with the ibert family (about a minute); reports/minilm/ in the repository was written
with --nonlinear all.

Acceptance checks printed at the end (exit status 1 if one fails): every GEMM check is
bit-exact; no accumulator or register overflow with the default family (ibert); w8a8
with an I-BERT family reaches a mean cosine of at least 0.99 and a minimum of at least
0.98, and w8a8-unpack4 a mean of at least 0.99; w8a8-unpack4 equals w8a8 bit for bit.
Overflows of the other families are reported (INFO). A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..core.fileio import check_output_target
from ..core.inttype import IntType
from ..hw.datapath import Datapath
from ..hw.gemm import matmul

__all__ = ["add_arguments", "run"]

_DEFAULT_OUT = "reports/minilm"
_GOLDEN_LAYER = 0
_GOLDEN_TOKENS = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``intsim demo`` options."""
    from ..models.minilm import CONFIGURATIONS, NONLINEAR

    p.add_argument("--config", default="all", choices=[*CONFIGURATIONS, "all"],
                   help="integer configuration to run (default: all)")
    p.add_argument("--nonlinear", default="ibert", choices=[*NONLINEAR, "all"],
                   help="family of integer softmax/GELU/LayerNorm operators (default: ibert); 'all' runs every "
                        "available one")
    p.add_argument("--profile", dest="nonlinear", default=argparse.SUPPRESS, choices=[*NONLINEAR, "all"],
                   help=argparse.SUPPRESS)  # the old name of --nonlinear
    p.add_argument("--sentences", type=int, default=32, metavar="N",
                   help="number of test sentences, 1 to 44 (default: 32; the acceptance figures need >= 32)")
    p.add_argument("--out", default=_DEFAULT_OUT, metavar="DIR",
                   help=f"output directory, replaced atomically (default: {_DEFAULT_OUT})")
    p.add_argument("--no-golden", action="store_true", help="do not write the golden-vector suite")
    p.add_argument("--no-report", action="store_true", help="print the summary only, write nothing")
    p.add_argument("--gemm-only", action="store_true", help="run only the GEMM datapath check, in full")
    g = p.add_argument_group("GEMM datapath check")
    g.add_argument("--seed", type=int, default=2024, help="random seed (default: 2024)")
    g.add_argument("--shape", type=int, nargs=3, metavar=("M", "K", "N"), default=(256, 1024, 256),
                   help="GEMM shape (default: 256 1024 256)")
    g.add_argument("--int4-acc-bits", type=int, default=12,
                   help="accumulator width of the int4 run, narrow enough to overflow (default: 12)")


# =============================================================================================
# part 1: the GEMM datapath check
# =============================================================================================
def _exact(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Exact A @ B via int64 (the operands are at most 8-bit, K at most 2**40: no int64 overflow)."""
    return A.astype(np.int64) @ B.astype(np.int64)


def _case(title: str, A: np.ndarray, B: np.ndarray, dp: Datapath, out: TextIO, verbose: bool) -> bool:
    t0 = time.perf_counter()
    r = matmul(A, B, dp)
    dt = time.perf_counter() - t0
    exact = _exact(A, B)
    clean = ~r.overflow
    ok_clean = bool(np.array_equal(r.values[clean], exact[clean]))
    # Overflowing outputs: under wrap, the register is the exact sum modulo 2**acc_bits.
    wrapped = np.asarray(dp.acc.wrap(exact[r.overflow]))
    ok_over = dp.overflow != "wrap" or bool(np.array_equal(r.values[r.overflow], wrapped))
    ok = ok_clean and ok_over
    verdict = "bit-exact" if ok else "MISMATCH"
    M, K = A.shape
    N = B.shape[1]
    if not verbose:
        print(f"  {title}: {M}x{K} @ {K}x{N} on {dp.describe()}: {r.n_overflow} overflowing outputs "
              f"(expected under wrap), {verdict}", file=out)
        return ok
    print(f"{title}: {M}x{K} @ {K}x{N} on {dp.describe()}", file=out)
    print(f"  computed in {dt * 1e3:.1f} ms ({r.method}, {r.n_scanned} outputs emulated add by add)", file=out)
    print(f"  outputs that overflowed: {r.n_overflow} of {M * N}", file=out)
    if r.n_overflow:
        ks = r.first_overflow_k[r.overflow]
        i, j = map(int, np.argwhere(r.overflow)[0])
        print(f"  first overflow k: min {int(ks.min())}, median {int(np.median(ks))}, max {int(ks.max())}; "
              f"e.g. output ({i}, {j}) at k={int(r.first_overflow_k[i, j])}", file=out)
    for _, row in r.ops.to_frame().iterrows():
        print(f"  ops {row['kind']:>6} {row['widths']:>10}: {row['count']:,}", file=out)
    print(f"  check against the exact product: {verdict}", file=out)
    return ok


def gemm_check(seed: int, shape: Sequence[int], int4_acc_bits: int, out: TextIO, verbose: bool = True) -> bool:
    """Seeded int8 and int4 GEMMs checked against the exact product; True if all bit-exact."""
    rng = np.random.default_rng(seed)
    M, K, N = shape
    i8 = IntType(8)
    A8 = rng.integers(i8.min, i8.max + 1, (M, K), dtype=np.int8)
    B8 = rng.integers(i8.min, i8.max + 1, (K, N), dtype=np.int8)
    ok = _case("int8 GEMM", A8, B8, Datapath(a=i8, b=i8, acc_bits=32, overflow="raise"), out, verbose)
    i4 = IntType(4)
    A4 = rng.integers(i4.min, i4.max + 1, (M, K), dtype=np.int8)
    B4 = rng.integers(i4.min, i4.max + 1, (K, N), dtype=np.int8)
    # A few heavy rows push some outputs past the narrow accumulator.
    A4[:: max(1, M // 8)] = i4.max
    B4[:, :: max(1, N // 8)] = i4.max
    dp4 = Datapath(a=i4, b=i4, acc_bits=int4_acc_bits, overflow="wrap")
    ok &= _case("int4 GEMM", A4, B4, dp4, out, verbose)
    return ok


# =============================================================================================
# progress bar (stderr, plain text)
# =============================================================================================
class _Progress:
    """``[#####-----]  50%  label`` redrawn in place on a terminal, one line per update otherwise."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()

    def step(self, label: str, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        frac = self.done / self.total
        fill = int(round(frac * self.width))
        line = (f"[{'#' * fill}{'-' * (self.width - fill)}] {frac * 100:3.0f}% "
                f"{time.perf_counter() - self.t0:6.1f}s  {label}")
        if self.tty:
            self.stream.write("\r" + line[:110].ljust(110))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# =============================================================================================
# part 2: the integer MiniLM
# =============================================================================================
def _selected(value: str, names: Sequence[str]) -> list[str]:
    return list(names) if value == "all" else [value]


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _plot(evals: list[Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        from ..core.errors import ModelNotInstalledError

        raise ModelNotInstalledError('the per-layer error plot needs matplotlib: install the reports extra: '
                                     'python -m pip install "intsim[reports]" (or pass --no-report)') from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one line per distinct result: w8a8-unpack4 is bit-identical to w8a8 and shares its line
    same = {(ev.config.name, ev.nonlinear): ev for ev in evals}
    shown = [ev for ev in evals if not (ev.config.name == "w8a8-unpack4" and ("w8a8", ev.nonlinear) in same
                                        and np.array_equal(same["w8a8", ev.nonlinear].forward.pooled,
                                                           ev.forward.pooled))]
    families = list(dict.fromkeys(ev.nonlinear for ev in shown))
    markers = {"w8a8": "o", "w8a8-unpack4": "s", "llm-int8": "^"}
    styles = {"w8a8": "-", "w8a8-unpack4": "-.", "llm-int8": "--"}
    cmap = plt.get_cmap("tab10")
    show_max = len(shown) <= 4
    fig, ax = plt.subplots(figsize=(10, 5))
    for ev in shown:
        rows = ev.layer_errors
        x = np.arange(len(rows))
        color = cmap(families.index(ev.nonlinear) % 10)
        twin = " (= w8a8-unpack4)" if ev.config.name == "w8a8" and ("w8a8-unpack4", ev.nonlinear) in same else ""
        ax.plot(x, [r["p50"] for r in rows], marker=markers.get(ev.config.name, "o"),
                linestyle=styles.get(ev.config.name, "-"), color=color,
                label=f"{ev.config.name}{twin} / {ev.nonlinear}")
        ax.fill_between(x, [r["p50"] for r in rows], [r["p90"] for r in rows], color=color, alpha=0.08)
        if show_max:
            ax.plot(x, [r["max"] for r in rows], linestyle=":", color=color)
        ax.set_xticks(x, [r["layer"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("per-token relative L2 error of the layer output")
    ax.set_title("Integer MiniLM vs float64: per-layer error (lines: median; band: to p90"
                 + ("; dotted: max)" if show_max else ")"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _result_row(ev: Any) -> dict[str, Any]:
    f = ev.forward
    ratios = ev.unpack_ratios()
    llm = ev.llm_int8_ratios()
    cols = [sum(v[2] for v in f.llm_int8.values()), sum(v[3] for v in f.llm_int8.values())]
    return {"configuration": ev.config.name, "nonlinear": ev.nonlinear, "sentences": len(ev.sentences),
            "cos_mean": ev.cos_mean, "cos_min": ev.cos_min, "worst_sentence": int(np.argmin(ev.cosine)),
            "overflows": sum(o.count for o in f.overflows), "unpack_ratio": ratios.get("all", ""),
            "llm_int8_work_ratio": llm.get("all", ""),
            "outlier_column_share": cols[0] / cols[1] if cols[1] else "",
            "int_seconds": ev.int_seconds, "float_seconds": ev.float_seconds,
            "slowdown": ev.int_seconds / max(ev.float_seconds, 1e-9),
            "ops_total": f.ops.total(), "macs": f.ops.total("mac") + f.ops.total("mul"),
            "description": ev.config.describe()}


_RESULT_COLS = ("configuration", "nonlinear", "sentences", "cos_mean", "cos_min", "worst_sentence", "overflows",
                "unpack_ratio", "llm_int8_work_ratio", "outlier_column_share", "int_seconds", "float_seconds",
                "slowdown", "ops_total", "macs", "description")


def _ratio_text(r: dict[str, Any]) -> str:
    if r["unpack_ratio"] != "":
        return f"{r['unpack_ratio']:.3f} (IM-Unpack)"
    if r["llm_int8_work_ratio"] != "":
        return f"{r['llm_int8_work_ratio']:.3f} (LLM.int8, {100 * r['outlier_column_share']:.1f}% outlier columns)"
    return "1"


def _markdown(evals: list[Any], checks: list[tuple[str, str]], golden: str, timing: dict[str, float],
              command: str) -> str:
    from ..models.minilm import CALIBRATION_SENTENCES

    n_cal = len(CALIBRATION_SENTENCES)
    lines = ["# Integer-only MiniLM (all-MiniLM-L6-v2) vs float64", "",
             f"Generated by `{command}`. Sentence embeddings computed with integers only from the quantized "
             "embedding output to the mean-pooled embedding (every GEMM on the emulated datapath, dyadic "
             "requantization, integer softmax/GELU/LayerNorm, integer residual adds and pooling), compared "
             "with the float64 reference (`reference/minilm.py`) by cosine similarity. Static scales come from a "
             f"calibration pass on {n_cal} sentences that are not in the test set (`intsim.models.minilm."
             "CALIBRATION_SENTENCES`).", "",
             "## Results", "",
             "| configuration | nonlinear | sentences | cosine mean | cosine min | overflows | work ratio | "
             "integer pass (s) | float64 pass (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for ev in evals:
        r = _result_row(ev)
        lines.append(f"| {r['configuration']} | {r['nonlinear']} | {r['sentences']} | {r['cos_mean']:.5f} | "
                     f"{r['cos_min']:.5f} | {r['overflows']} | {_ratio_text(r)} | {r['int_seconds']:.2f} | "
                     f"{r['float_seconds']:.2f} |")
    lines += ["", "Work ratio: GEMM work in low-bit MACs over the original MACs: IM-Unpack's `sum M'K'N' / sum MKN`, "
              "or for llm-int8 `(K + 3 n_outlier) / K` summed over the linear layers (an int16 x int16 MAC of an "
              "outlier column counts as 4 int8 MACs). Times on a shared 2-core machine: the integer pass after a "
              "one-sentence warm-up, the float64 pass with its probes (every GEMM operand captured); "
              "`benchmarks/minilm.py` compares the integer pass with the plain float64 pass."]
    if any(ev.config.gemm == "unpack" and "DI-MatMul" in ev.nonlinear_description for ev in evals):
        lines += ["", "With per-token dynamic linear inputs (DI-MatMul) those inputs are unsigned, in [0, 2**A - 1]: "
                  "they unpack into more narrow digits than the symmetric signed inputs of the static mode, hence "
                  "the larger IM-Unpack ratio."]
    lines += ["", "Configurations:", ""]
    seen = set()
    for ev in evals:
        if ev.config.name not in seen:
            seen.add(ev.config.name)
            lines.append(f"- {ev.config.describe()}")
    lines += ["", "Non-linear families (integer softmax, GELU, LayerNorm):", ""]
    seen = set()
    for ev in evals:
        if ev.nonlinear not in seen:
            seen.add(ev.nonlinear)
            lines.append(f"- `{ev.nonlinear}`: {ev.nonlinear_description}")
    groups: dict[tuple, list[str]] = {}  # distinct smoothing choices -> the runs using them
    for ev in evals:
        if ev.config.smooth and ev.smoothing:
            key = tuple(tuple(a.items()) for a in ev.smoothing)
            groups.setdefault(key, []).append(f"{ev.config.name}/{ev.nonlinear}")
    if groups:
        lines += ["", "Smoothing alphas chosen on the calibration set, per layer, for the inputs of q/k/v (`x`), "
                  "o_proj (`ctx`), ffn_up (`x1`) and ffn_down (`act`) (the search simulates per-tensor "
                  "quantization, or per-token quantization for a family with dynamic linear inputs):", ""]
        for key, runs in groups.items():
            lines.append(f"- {', '.join(runs)}: " + "; ".join(
                f"layer {i}: " + ", ".join(f"{k} {v:g}" for k, v in a) for i, a in enumerate(key)) + ".")
    lines += ["", "## Acceptance checks", ""]
    lines += [f"- {status}: {what}" for what, status in checks]
    lines += ["", "## Per-layer error", "",
              "Per-token relative L2 error `|int - float| / |float|` of each layer's output (`embedding` is the "
              "quantized embedding output). See `layer_errors.csv` and `layer_errors.png`.", "",
              "| configuration | nonlinear | layer | mean | median | p90 | max |", "|---|---|---|---|---|---|---|"]
    for ev in evals:
        for r in ev.layer_errors:
            lines.append(f"| {ev.config.name} | {ev.nonlinear} | {r['layer']} | {r['mean']:.4f} | {r['p50']:.4f} | "
                         f"{r['p90']:.4f} | {r['max']:.4f} |")
    lines += ["", "## Overflows", ""]
    any_over = False
    for ev in evals:
        for o in ev.forward.overflows:
            any_over = True
            lines.append(f"- {ev.config.name}/{ev.nonlinear}: layer {o.layer}, {o.step}, register {o.register} "
                         f"({o.bits} bits, {o.policy}): {o.count} values, first at {o.first_index}")
    if not any_over:
        lines.append("No accumulator or register overflowed in any configuration (every GEMM accumulator, every "
                     "operator register, the residual adds, the LayerNorm bias adds and the pooling sums are "
                     "checked).")
    ur = [(ev, ev.unpack_ratios()) for ev in evals if ev.forward.unpack]
    if ur:
        lines += ["", "## IM-Unpack ratios", "",
                  "Work of the unpacked low-bit GEMMs over the original GEMMs, `sum M'K'N' / sum MKN` per GEMM kind "
                  "over all layers (`unpack_ratios.csv`).", "",
                  "| configuration | nonlinear | GEMM | ratio |", "|---|---|---|---|"]
        for ev, rs in ur:
            for k, v in rs.items():
                lines.append(f"| {ev.config.name} | {ev.nonlinear} | {k} | {v:.3f} |")
    lines += ["", "## Op counts", "",
              "Whole-model op counts by kind and width for the test sentences (`op_counts.csv`); totals:", "",
              "| configuration | nonlinear | kind | count |", "|---|---|---|---|"]
    for ev in evals:
        df = ev.forward.ops.to_frame()
        for kind, n in df.groupby("kind")["count"].sum().items():
            lines.append(f"| {ev.config.name} | {ev.nonlinear} | {kind} | {int(n):,} |")
    lines += ["", "## Clipping", "",
              "Requantization outputs that saturated: quantization clipping at the calibrated ranges, by design, "
              "not overflows (`clipped.csv`).", ""]
    for ev in evals:
        items = ", ".join(f"{k}: {v}" for k, v in sorted(ev.forward.clipped.items())) or "none"
        lines.append(f"- {ev.config.name}/{ev.nonlinear}: {items}")
    lines += ["", "## Golden vectors", "", golden, "", "## Timing", ""]
    lines += [f"- {k}: {v:.2f} s" for k, v in timing.items()]
    return "\n".join(lines) + "\n"


def _write_report(out: Path, evals: list[Any], checks: list[tuple[str, str]], timing: dict[str, float],
                  golden: bool, golden_note: list[str], command: str) -> None:
    from ..core.fileio import atomic_directory

    with atomic_directory(out, force=True) as tmp:
        (tmp / "results.csv").write_text(_csv([_result_row(ev) for ev in evals], _RESULT_COLS))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, **r}
                for ev in evals for r in ev.layer_errors]
        (tmp / "layer_errors.csv").write_text(_csv(rows, ["configuration", "nonlinear", "layer", "mean", "p50",
                                                          "p90", "max"]))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, "sentence": i, "cosine": float(c),
                 "text": ev.sentences[i]} for ev in evals for i, c in enumerate(ev.cosine)]
        (tmp / "cosine.csv").write_text(_csv(rows, ["configuration", "nonlinear", "sentence", "cosine", "text"]))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, "layer": o.layer, "step": o.step,
                 "register": o.register, "bits": o.bits, "count": o.count, "first_index": o.first_index,
                 "value": o.value, "policy": o.policy} for ev in evals for o in ev.forward.overflows]
        (tmp / "overflows.csv").write_text(_csv(rows, ["configuration", "nonlinear", "layer", "step", "register",
                                                       "bits", "count", "first_index", "value", "policy"]))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, "gemm": k, "ratio": v,
                 "work_after": ev.forward.unpack.get(k, [sum(w[0] for w in ev.forward.unpack.values())])[0],
                 "work_before": ev.forward.unpack.get(k, [0, sum(w[1] for w in ev.forward.unpack.values())])[1]}
                for ev in evals for k, v in ev.unpack_ratios().items()]
        (tmp / "unpack_ratios.csv").write_text(_csv(rows, ["configuration", "nonlinear", "gemm", "ratio",
                                                           "work_after", "work_before"]))
        rows = []
        for ev in evals:
            for _, r in ev.forward.ops.to_frame().iterrows():
                rows.append({"configuration": ev.config.name, "nonlinear": ev.nonlinear, "kind": r["kind"],
                             "widths": r["widths"], "count": int(r["count"])})
        (tmp / "op_counts.csv").write_text(_csv(rows, ["configuration", "nonlinear", "kind", "widths", "count"]))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, "step": k, "count": v}
                for ev in evals for k, v in sorted(ev.forward.clipped.items())]
        (tmp / "clipped.csv").write_text(_csv(rows, ["configuration", "nonlinear", "step", "count"]))
        _plot(evals, tmp / "layer_errors.png")
        note = "Not written (--no-golden)."
        if golden:
            note = "\n".join(golden_note)
            _write_golden(tmp / "golden", evals)
        (tmp / "README.md").write_text(_markdown(evals, checks, note, timing, command))


def _golden_choice(evals: list[Any]) -> tuple[str, str]:
    ev = evals[0]
    return ev.config.name, ev.nonlinear


def _write_golden(path: Path, evals: list[Any]) -> None:
    from ..golden import parse_spec, verify_suite
    from ..golden.suite import generate_suite
    from ..models.minilm import golden_spec

    cfg, nl = _golden_choice(evals)
    spec = parse_spec(golden_spec(cfg, nl, _GOLDEN_LAYER, _GOLDEN_TOKENS), source="spec.toml")
    generate_suite(spec, path)
    rep = verify_suite(path)
    if not rep.ok:  # pragma: no cover - would be an intsim bug
        raise RuntimeError(f"the golden suite just written does not verify: {rep.failed[0].problems}")


def _checks(evals: list[Any], gemm_ok: bool, n: int) -> list[tuple[str, str]]:
    """``(what, status)`` with status PASS or FAIL (acceptance checks) or INFO (findings).

    Acceptance: the GEMM check; no overflow in the default non-linear family's configurations;
    the cosine thresholds of w8a8 and w8a8-unpack4 with the I-BERT families; IM-Unpack's
    bit-identity with w8a8 for every family. Overflows and thresholds of the other families
    are reported as INFO.
    """
    from ..models.minilm import DEFAULT_NONLINEAR

    def st(ok: bool, acceptance: bool = True) -> str:
        return ("PASS" if ok else "FAIL") if acceptance or ok else "INFO"

    checks = [("GEMM datapath check: every register bit-exact", st(gemm_ok))]
    by = {(ev.config.name, ev.nonlinear): ev for ev in evals}
    for ev in evals:
        n_over = sum(o.count for o in ev.forward.overflows)
        if ev.nonlinear == DEFAULT_NONLINEAR:
            checks.append((f"{ev.config.name}/{ev.nonlinear}: no accumulator or register overflow ({n_over} values"
                           + (", see overflows.csv)" if n_over else ")"), st(n_over == 0)))
        elif n_over:
            regs = sorted({o.register for o in ev.forward.overflows})
            checks.append((f"{ev.config.name}/{ev.nonlinear}: {n_over} values overflowed ({', '.join(regs)}; "
                           f"policy {ev.config.overflow}; see overflows.csv)", "INFO"))
    note = "" if n >= 32 else " (fewer than 32: not the acceptance set)"
    for (cfg, nl), ev in by.items():
        ib = nl.startswith("ibert")
        if cfg == "w8a8" and ib:
            checks.append((f"w8a8/{nl}: mean cosine {ev.cos_mean:.5f} >= 0.99 and min {ev.cos_min:.5f} >= 0.98"
                           f" over {n} sentences{note}", st(ev.cos_mean >= 0.99 and ev.cos_min >= 0.98)))
        if cfg == "w8a8-unpack4":
            if ib:
                checks.append((f"w8a8-unpack4/{nl}: mean cosine {ev.cos_mean:.5f} >= 0.99{note}",
                               st(ev.cos_mean >= 0.99)))
            base = by.get(("w8a8", nl))
            if base is not None:
                same = bool(np.array_equal(base.forward.pooled, ev.forward.pooled))
                checks.append((f"w8a8-unpack4/{nl}: pooled integers identical to w8a8 (exact GEMMs)", st(same)))
    return checks


def _args_with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options a caller's Namespace lacks with the parser defaults (``profile``, the old
    name of ``nonlinear``, still counts when ``nonlinear`` is absent)."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    full = p.parse_args([])
    given = vars(args)
    for k, v in given.items():
        setattr(full, k, v)
    if "profile" in given and "nonlinear" not in given:
        full.nonlinear = given["profile"]
    return full


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit status 0 if every check passes, 1 otherwise."""
    from ..core.errors import ConfigError

    args = _args_with_defaults(args)
    out = sys.stdout
    if args.gemm_only:
        ok = gemm_check(args.seed, args.shape, args.int4_acc_bits, out, verbose=True)
        print("all checks passed" if ok else "SOME CHECKS FAILED", file=out)
        return 0 if ok else 1

    from reference.sentences import SENTENCES

    from ..models import minilm as mi

    if not 1 <= args.sentences <= len(SENTENCES):
        raise ConfigError(f"--sentences must be from 1 to {len(SENTENCES)}, got {args.sentences}")
    if not args.no_report:
        check_output_target(args.out, force=True)  # before the long run, not after it
    configs = _selected(args.config, list(mi.CONFIGURATIONS))
    families = mi.available_nonlinear() if args.nonlinear == "all" else [args.nonlinear]
    for f in families:
        mi.get_nonlinear(f)  # a clear ConfigError for a family whose module is missing
    sentences = list(SENTENCES[: args.sentences])
    timing: dict[str, float] = {}
    t_all = time.perf_counter()

    print("intsim demo: integer-only all-MiniLM-L6-v2 vs float64", file=out)
    print("datapath check:", file=out)
    gemm_ok = gemm_check(args.seed, args.shape, args.int4_acc_bits, out, verbose=False)

    runs = [(c, f) for f in families for c in configs]
    L = 6
    bar = _Progress(2 + len(runs) * (L + 1) + (0 if args.no_report else 1), sys.stderr)
    bar.step("loading the model and calibrating", 0)
    t0 = time.perf_counter()
    ref = mi.reference_model()
    mi.cached_calibration(mi.CALIBRATION_SENTENCES, 64)
    timing[f"calibration ({len(mi.CALIBRATION_SENTENCES)} sentences, float64)"] = time.perf_counter() - t0
    bar.step("calibrated; float64 reference pass")
    ids, mask = mi.tokenize_sentences(sentences, 64)
    t0 = time.perf_counter()
    probe = mi.float_probe(ref, ids, mask)
    t_float = time.perf_counter() - t0
    timing[f"float64 reference pass with probes ({len(sentences)} sentences)"] = t_float
    bar.step("float64 pass done")
    evals = []
    for cfg, nl in runs:
        label = f"{cfg}/{nl}"
        t0 = time.perf_counter()
        model = mi.load_int_minilm(cfg, nl)  # cached: the golden suite reuses it
        model.embed(sentences[:1])  # warm-up (numba kernels load), so the timed pass is the pass itself
        bar.step(f"{label}: quantized")

        def prog(stage: str, step: int, label: str = label) -> None:
            if stage == "layer":
                bar.step(f"{label}: integer layer {step + 1}/{L}")

        ev = mi.evaluate(model, sentences, progress=prog, probe=probe)
        ev.float_seconds = t_float
        evals.append(ev)
        timing[f"{label}: quantization, warm-up and integer pass"] = time.perf_counter() - t0
    checks = _checks(evals, gemm_ok, len(sentences))
    if not args.no_report:
        t0 = time.perf_counter()
        golden_note = []
        if not args.no_golden:
            gc, gn = _golden_choice(evals)
            golden_note = [f"`golden/`: an intsim golden-vector suite (format of `intsim.golden`) with one case: "
                           f"encoder layer {_GOLDEN_LAYER} of {gc}/{gn} on one sentence of {_GOLDEN_TOKENS} tokens "
                           "(heavy-tailed residual-stream input). Output `y` is the next layer's residual-stream "
                           "input; the taps hold every intermediate integer tensor and the layer's integer "
                           "parameters (`param_*`). Verified bit for bit after writing "
                           "(`intsim.golden.verify_suite`)."]
        timing["total (demo)"] = time.perf_counter() - t_all
        command = (f"intsim demo --config {args.config} --nonlinear {args.nonlinear} --sentences {args.sentences}"
                   + (" --no-golden" if args.no_golden else ""))
        _write_report(Path(args.out), evals, checks, timing, not args.no_golden, golden_note, command)
        timing["report and golden suite"] = time.perf_counter() - t0
        bar.step(f"report written to {args.out}")
    bar.close()
    _summary(evals, checks, out, args, time.perf_counter() - t_all)
    return 1 if any(status == "FAIL" for _, status in checks) else 0


def _summary(evals: list[Any], checks: list[tuple[str, str]], out: TextIO, args: argparse.Namespace,
             total: float) -> None:
    print(f"integer MiniLM on {len(evals[0].sentences) if evals else 0} sentences:", file=out)
    print(f"  {'configuration':<14} {'nonlinear':<16} {'cos mean':>9} {'cos min':>9} {'overflows':>9} "
          f"{'work':>7} {'int s':>7} {'x float':>8}", file=out)
    for ev in evals:
        r = _result_row(ev)
        ur = r["unpack_ratio"] if r["unpack_ratio"] != "" else r["llm_int8_work_ratio"]
        ur = f"{ur:.2f}" if ur != "" else "1"
        print(f"  {r['configuration']:<14} {r['nonlinear']:<16} {r['cos_mean']:>9.5f} {r['cos_min']:>9.5f} "
              f"{r['overflows']:>9} {ur:>7} {r['int_seconds']:>7.2f} {r['slowdown']:>8.1f}", file=out)
    for what, status in checks:
        print(f"  {status}: {what}", file=out)
    if not args.no_report:
        print(f"reports written to {args.out}/ (README.md, CSV tables, layer_errors.png"
              f"{', golden/' if not args.no_golden else ''})", file=out)
    print(f"total {total:.1f} s", file=out)
