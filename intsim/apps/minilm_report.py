"""The MiniLM part of ``intsim demo``: the text it is evaluated on, its acceptance checks, and the
report it writes (``reports/minilm/``: README.md, CSV tables, a per-layer error plot and a golden
suite of one encoder layer).

The evaluation text (:class:`TextSets`): the evaluation set of ``reference/evaluation.py`` (11 kinds
of text, disjoint from calibration), every sentence of ``reference/sentences.py`` (paraphrase pairs
and unrelated topics), and optionally the user's own sentences (``--text FILE``). Every figure is
computed by the float64 reference and the integer pass on the same tokens, at the same token limit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, FileFormatError

__all__ = ["TextSets", "text_sets", "read_text_file", "checks", "write_report", "result_rows", "set_stats"]

#: The largest text file ``--text`` reads (16 MiB: far more text than an evaluation needs).
TEXT_MAX_BYTES = 16 << 20
_GOLDEN_LAYER = 0
_GOLDEN_TOKENS = 16
#: The configuration/family pairs the acceptance thresholds apply to (mean >= 0.99, min >= 0.98 on the
#: evaluation set and on the reference sentences).
ACCEPTANCE = (("w8a8", "ibert"), ("w8a8", "illm"), ("llm-int8", "ibert"))


@dataclass
class TextSets:
    """Sentences with, per sentence, the set it belongs to (``evaluation``, ``reference``, ``user``)
    and its kind of text."""

    sentences: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def add(self, name: str, sentences: Sequence[str], kinds: Sequence[str]) -> None:
        self.sentences += list(sentences)
        self.sets += [name] * len(sentences)
        self.kinds += list(kinds)

    def names(self) -> list[str]:
        return list(dict.fromkeys(self.sets))

    def index(self, name: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.sets) if s == name], dtype=np.int64)


def read_text_file(path: str | Path) -> list[str]:
    """The user's sentences: one per line of a UTF-8 text file (blank lines skipped).

    The file is read as :func:`intsim.golden.npyio.read_file` reads a suite's files (a symbolic
    link is followed first): a FIFO, device, socket or directory is refused, never waited on, and
    so is a file over :data:`TEXT_MAX_BYTES`. Raises :class:`~intsim.core.errors.FileFormatError`
    naming the file for those, for text that is not UTF-8, and for a file with no sentence."""
    from ..golden.npyio import read_file

    p = Path(path)
    real = p.resolve() if p.is_symlink() else p
    data = read_file(real, max_bytes=TEXT_MAX_BYTES, missing="no such file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise FileFormatError(f"{p}: no sentence (the file is empty or blank)")
    return lines


def text_sets(limit: int | None = None, text_file: str | Path | None = None) -> TextSets:
    """The evaluation text: the evaluation set (by kind), every reference sentence, and the user's
    file; ``limit``: at most that many sentences of each built-in set (a quick run)."""
    from intsim_reference.evaluation import evaluation_kinds, evaluation_sentences
    from intsim_reference.sentences import SENTENCES

    if limit is not None and limit < 1:
        raise ConfigError(f"--sentences must be at least 1, got {limit}")
    ev, kinds = list(evaluation_sentences()), list(evaluation_kinds())
    if limit is not None:  # one of each kind first, so a quick run still sees every kind
        order = sorted(range(len(ev)), key=lambda i: (kinds[:i].count(kinds[i]), i))[:limit]
        ev, kinds = [ev[i] for i in sorted(order)], [kinds[i] for i in sorted(order)]
    ts = TextSets()
    ts.add("evaluation", ev, kinds)
    ref = list(SENTENCES[:limit] if limit is not None else SENTENCES)
    ts.add("reference", ref, ["reference"] * len(ref))
    if text_file is not None:
        user = read_text_file(text_file)
        ts.add("user", user, ["user"] * len(user))
    return ts


def set_stats(ev: Any, ts: TextSets, name: str) -> dict[str, float]:
    """``mean``, ``min`` cosine and the pairwise-similarity Spearman correlation of one set."""
    from ..models.minilm.evaluation import pairwise_spearman

    idx = ts.index(name)
    c = ev.cosine[idx]
    rho = pairwise_spearman(ev.forward.embeddings()[idx], ev.reference_embeddings[idx]) if idx.size > 2 \
        else float("nan")
    return {"mean": float(c.mean()), "min": float(c.min()), "spearman": rho, "n": int(idx.size)}


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _ratio_text(ev: Any) -> str:
    ur, lr = ev.unpack_ratios(), ev.llm_int8_ratios()
    if ur:
        return f"{ur['all']:.3f} (IM-Unpack)"
    if lr:
        f = ev.forward
        cols = [sum(v[2] for v in f.llm_int8.values()), sum(v[3] for v in f.llm_int8.values())]
        share = cols[0] / cols[1] if cols[1] else 0.0
        return f"{lr['all']:.3f} (LLM.int8, {100 * share:.1f}% outlier columns)"
    return "1"


def result_rows(evals: list[Any], ts: TextSets) -> list[dict[str, Any]]:
    """One row per run: figures per set, overflows, work ratio, op totals, the configuration."""
    rows = []
    for ev in evals:
        f = ev.forward
        r: dict[str, Any] = {"configuration": ev.config.name, "nonlinear": ev.nonlinear}
        for name in ts.names():
            st = set_stats(ev, ts, name)
            r |= {f"{name}_mean": st["mean"], f"{name}_min": st["min"], f"{name}_spearman": st["spearman"]}
        r |= {"overflows": sum(o.count for o in f.overflows), "work_ratio": _ratio_text(ev),
              "ops_total": f.ops.total(), "macs": f.ops.total("mac") + f.ops.total("mul"),
              "description": ev.config.describe()}
        rows.append(r)
    return rows


def checks(evals: list[Any], ts: TextSets, gemm_ok: bool, full: bool) -> list[tuple[str, str]]:
    """``(what, status)``, status PASS or FAIL (acceptance) or INFO (findings). ``full``: the whole
    evaluation set was run (the thresholds are acceptance checks only then)."""
    from ..models.minilm import DEFAULT_NONLINEAR

    def st(ok: bool, acceptance: bool = True) -> str:
        return ("PASS" if ok else "FAIL") if acceptance or ok else "INFO"

    out = [("GEMM datapath check: every register bit-exact", st(gemm_ok))]
    by = {(ev.config.name, ev.nonlinear): ev for ev in evals}
    for ev in evals:
        n_over = sum(o.count for o in ev.forward.overflows)
        if ev.nonlinear == DEFAULT_NONLINEAR:
            out.append((f"{ev.config.name}/{ev.nonlinear}: no accumulator or register overflow ({n_over} values"
                        + (", see overflows.csv)" if n_over else ")"), st(n_over == 0)))
        elif n_over:
            regs = sorted({o.register for o in ev.forward.overflows})
            out.append((f"{ev.config.name}/{ev.nonlinear}: {n_over} values overflowed ({', '.join(regs)}; "
                        f"policy {ev.config.overflow}; see overflows.csv)", "INFO"))
    note = "" if full else " (a partial evaluation set: not the acceptance figures)"
    for (cfg, nl), ev in by.items():
        if (cfg, nl) in ACCEPTANCE:
            for name in ("evaluation", "reference"):
                s = set_stats(ev, ts, name)
                ok = s["mean"] >= 0.99 and s["min"] >= 0.98
                out.append((f"{cfg}/{nl}: {name} set ({s['n']} sentences) mean cosine {s['mean']:.5f} >= 0.99 and "
                            f"min {s['min']:.5f} >= 0.98{note}", st(ok, full)))
        if cfg == "w8a8-unpack4":
            base = by.get(("w8a8", nl))
            if base is not None:
                same = bool(np.array_equal(base.forward.pooled, ev.forward.pooled))
                out.append((f"w8a8-unpack4/{nl}: pooled integers identical to w8a8 (exact GEMMs)", st(same)))
    return out


def _plot(evals: list[Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        from ..core.errors import ModelNotInstalledError

        raise ModelNotInstalledError('the per-layer error plot needs matplotlib: install the reports extra: '
                                     'python -m pip install "intsim[reports]" (or pass --no-report)') from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # one line per distinct result: w8a8-unpack4 is bit-identical to w8a8 and shares its line
    same = {(ev.config.name, ev.nonlinear): ev for ev in evals}
    shown = [ev for ev in evals if not (ev.config.name == "w8a8-unpack4" and ("w8a8", ev.nonlinear) in same
                                        and np.array_equal(same["w8a8", ev.nonlinear].forward.pooled,
                                                           ev.forward.pooled))]
    families = list(dict.fromkeys(ev.nonlinear for ev in shown))
    configs = list(dict.fromkeys(ev.config.name for ev in shown))
    markers = {"w8a8": "o", "w8a8-static": "D", "w8a8-unpack4": "s", "llm-int8": "^"}
    cmap = plt.get_cmap("tab10")
    colors = {c: cmap(k % 10) for k, c in enumerate(configs)}
    # one panel per non-linear family on a shared axis (15 lines on one axis hid each other); per
    # configuration one colour in every panel: median line, band to p90, thin dotted max
    ncols = min(3, len(families))
    nrows = -(-len(families) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols + 0.8, 3.4 * nrows + 0.9), sharey=True,
                             squeeze=False)
    for ax, fam in zip(axes.flat, families, strict=False):
        for ev in (e for e in shown if e.nonlinear == fam):
            rows = ev.layer_errors
            x = np.arange(len(rows))
            color = colors[ev.config.name]
            ax.plot(x, [r["p50"] for r in rows], marker=markers.get(ev.config.name, "o"), markersize=4, color=color)
            ax.fill_between(x, [r["p50"] for r in rows], [r["p90"] for r in rows], color=color, alpha=0.12)
            ax.plot(x, [r["max"] for r in rows], linestyle=":", linewidth=1, color=color)
            ax.set_xticks(x, [str(r["layer"]).replace("layer ", "L") for r in rows], fontsize=8)
        ax.set_title(fam, fontsize=10)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(families):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("relative L2 error per token")
    twins = {ev.config.name for ev in shown if ev.config.name == "w8a8"
             and ("w8a8-unpack4", ev.nonlinear) in same}
    handles = [Line2D([], [], color=colors[c], marker=markers.get(c, "o"),
                      label=c + (" (= w8a8-unpack4)" if c in twins else "")) for c in configs]
    handles += [Line2D([], [], color="grey", label="median"), Patch(color="grey", alpha=0.25, label="median to p90"),
                Line2D([], [], color="grey", linestyle=":", label="max")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle("Integer MiniLM vs float64: error of each layer's output, per non-linear family", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * (len(handles) > 4), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.5f}"  # NaN (a set too small for a rank correlation)


def _calibration_lines(evals: list[Any], calib: Any) -> list[str]:
    from ..models.minilm.corpus import CALIBRATION_CORPUS

    n_fit, n_tune = len(calib.sentences), len(calib.tune_sentences)
    kinds = ", ".join(f"{k} {len(v)}" for k, v in CALIBRATION_CORPUS.items())
    lines = ["## Calibration", "",
             f"The calibration corpus (`intsim.models.minilm.corpus`, written for intsim; none of it is in the "
             f"evaluation text) has {n_fit + n_tune} sentences of 11 kinds ({kinds}), from one word to past "
             f"the 256-token limit. Two thirds of each kind ({n_fit} sentences) set the static ranges; the other third "
             f"({n_tune}) is where the smoothing strength and the static activation margin are chosen. Token "
             f"limit {calib.max_len} (the model's `max_seq_length`); {calib.truncated} calibration sentences "
             "were truncated.", "",
             "- Statistic: every static range is the maximum over the calibration tokens (per tensor, and per "
             "channel for the smoothing factors). A clipped range costs more than it gains here: short inputs "
             "reach the extremes (with the calibrated ranges multiplied by 0.75 or 0.5, the static "
             "configuration's worst evaluation sentence fell far below 0.98).",
             "- Linear inputs: per token at run time (`w8a8`: the producer writes a 16-bit register, each token "
             "is quantized to 8 bits on its own range, exactly in integers) or one static step per tensor "
             "(`w8a8-static`), after SmoothQuant smoothing.",
             "- Smoothing strength alpha (0.5 to 0.9; llm-int8 does not smooth) and, for inputs with a static "
             "step (`w8a8-static`'s 8-bit ones, llm-int8's 16-bit ones), the margin (1.25, 1.5 or 2 times "
             "the calibrated maximum), per layer and linear input: the pair whose simulated W8/A8 quantization of "
             "the tuning tokens (at most 16 per sentence, so every sentence weighs alike) gives the smallest "
             "output error. The margin is at least 1.25, as headroom for text beyond the corpus (with 1.0 "
             "allowed, the tuning split chose it almost everywhere). Static steps stay fragile on open text all "
             "the same: a channel that was quiet on the whole corpus gets a small smoothing factor, and a "
             "sentence that excites it is clipped (`clipped.csv` counts the clipped values per configuration); "
             "per-token inputs have no static step to exceed.",
             "- Gram matrices for GPTQ: each calibration sentence weighs alike (a 256-token text would otherwise "
             "outweigh fifty one-word replies); with plain token weighting the worst one-word reply of "
             "`w8a8/ibert` fell about 0.005 lower.",
             "- Weights: int8 per output channel; the integers are chosen by GPTQ (error-compensating rounding "
             "on the calibration inputs' Gram matrices) for `w8a8`, `w8a8-static` and `w8a8-unpack4`, by "
             "rounding to nearest for llm-int8 (there GPTQ's compensation would partly land on the outlier "
             "columns, whose int16 weights replace the int8 ones).", ""]
    groups: dict[tuple, list[str]] = {}
    for ev in evals:
        if ev.smoothing:
            key = (tuple(tuple(a.items()) for a in ev.smoothing), ev.margins)
            groups.setdefault(key, []).append(f"{ev.config.name}/{ev.nonlinear}")
    if groups:
        lines += ["Chosen per layer for the inputs of q/k/v (`x`), o_proj (`ctx`), ffn_up (`x1`) and ffn_down "
                  "(`act`):", ""]
        for (al, mg), runs in groups.items():
            txt = "; ".join(f"layer {i}: " + ", ".join(f"{k} {v:g}" for k, v in a) for i, a in enumerate(al))
            if any(mg):
                txt += ". Margins: " + "; ".join(f"layer {i}: " + ", ".join(f"{k} {v:g}" for k, v in m)
                                                 for i, m in enumerate(mg))
            lines.append(f"- {', '.join(runs)}: alpha {txt}.")
        lines.append("")
    return lines


def _markdown(evals: list[Any], ts: TextSets, chk: list[tuple[str, str]], golden: str, command: str,
              calib: Any, truncated: dict[str, int], plots: bool = True) -> str:
    from intsim_reference.evaluation import EVALUATION

    names = ts.names()
    ml = calib.max_len
    lines = ["# Integer-only MiniLM (all-MiniLM-L6-v2) vs float64", "",
             f"Generated by `{command}`. Sentence embeddings computed with integers only from the quantized "
             "embedding output to the mean-pooled embedding (every GEMM on the emulated datapath, dyadic "
             "requantization, integer softmax/GELU/LayerNorm, integer residual adds and pooling), compared "
             "with the float64 reference (`reference/minilm.py`) by cosine similarity, both at the model's "
             f"{ml}-token limit.", "",
             "Evaluation text: the evaluation set (`reference/evaluation.py`: "
             f"{len(ts.index('evaluation'))} sentences of {len(EVALUATION)} kinds, written for it, disjoint from "
             f"the calibration corpus), every sentence of `reference/sentences.py` ({len(ts.index('reference'))})"
             + (f", and {len(ts.index('user'))} sentences of the user's file" if "user" in names else "")
             + ". Truncated at the token limit: "
             + ", ".join(f"{truncated.get(n, 0)} of the {n} set" for n in names) + ".", "",
             "## Quantization and settings", "",
             "Configurations (weights, linear inputs, GEMM datapath, registers; how the ranges were "
             "calibrated is under Calibration):", ""]
    lines += [f"- {c}" for c in dict.fromkeys(ev.config.describe() for ev in evals)]
    lines += ["", "Non-linear families (integer softmax, GELU, LayerNorm):", ""]
    lines += [f"- `{nl}`: {d}" for nl, d in dict.fromkeys((ev.nonlinear, ev.nonlinear_description) for ev in evals)]
    lines += ["", "## Results", "",
              "Cosine similarity to float64 (mean / min) per set, and Spearman's correlation of all pairwise "
              "similarities within the evaluation set with float64's (how well retrieval rankings survive).", "",
              "| configuration | nonlinear | " + " | ".join(f"{n} mean | {n} min" for n in names)
              + " | Spearman (evaluation) | overflows | work ratio |",
              "|---|---|" + "---|---|" * len(names) + "---|---|---|"]
    for r in result_rows(evals, ts):
        cells = " | ".join(f"{r[f'{n}_mean']:.5f} | {r[f'{n}_min']:.5f}" for n in names)
        lines.append(f"| {r['configuration']} | {r['nonlinear']} | {cells} | {_fmt(r['evaluation_spearman'])} | "
                     f"{r['overflows']} | {r['work_ratio']} |")
    lines += ["", "Work ratio: GEMM work in low-bit MACs over the original MACs: IM-Unpack's `sum M'K'N' / sum MKN` "
              "(here on the per-token unsigned 8-bit linear inputs, which unpack into more int4 digits than "
              "symmetric signed ones), or for llm-int8 `(K + 3 n_outlier) / K` summed over the linear layers "
              "(an int16 x int16 MAC of an outlier column counts as 4 int8 MACs). Timings are printed by the "
              "demo and measured by `benchmarks/minilm.py`; they are not part of this report, so that it "
              "regenerates identically.", "",
              "## By kind of text (evaluation set)", "",
              "Mean / min cosine per kind.", ""]
    ekinds = [ts.kinds[i] for i in ts.index("evaluation")]
    kind_names = list(dict.fromkeys(ekinds))
    lines += ["| configuration | nonlinear | " + " | ".join(kind_names) + " |",
              "|---|---|" + "---|" * len(kind_names)]
    from ..models.minilm.evaluation import by_kind

    for ev in evals:
        idx = ts.index("evaluation")
        rows = {r["kind"]: r for r in by_kind(ev.cosine[idx], ekinds, [ts.sentences[i] for i in idx])}
        lines.append(f"| {ev.config.name} | {ev.nonlinear} | "
                     + " | ".join(f"{rows[k]['mean']:.4f} / {rows[k]['min']:.4f}" for k in kind_names) + " |")
    lines += ["", "## The worst 10 sentences", ""]
    for ev in evals:
        idx = ts.index("evaluation")
        worst = idx[np.argsort(ev.cosine[idx], kind="stable")[:10]]
        lines.append(f"- {ev.config.name}/{ev.nonlinear}: " + "; ".join(
            f"{ev.cosine[i]:.4f} {_quote(ts.sentences[i])} ({ts.kinds[i]})" for i in worst))
    lines += ["", "## Every sentence of reference/sentences.py", "",
              "| # | sentence | " + " | ".join(f"{ev.config.name}/{ev.nonlinear}" for ev in evals) + " |",
              "|---|---|" + "---|" * len(evals)]
    for j, i in enumerate(ts.index("reference")):
        lines.append(f"| {j} | {_quote(ts.sentences[i])} | " + " | ".join(f"{ev.cosine[i]:.4f}" for ev in evals)
                     + " |")
    lines += [""] + _calibration_lines(evals, calib)
    lines += ["## Acceptance checks", ""]
    lines += [f"- {status}: {what}" for what, status in chk]
    lines += ["", "## Per-layer error", "",
              "Per-token relative L2 error `|int - float| / |float|` of each layer's output over every evaluated "
              "token (`embedding` is the quantized embedding output). See `layer_errors.csv`"
              + (" and `layer_errors.png`." if plots else " (no plot: --no-plots)."), "",
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
              "Whole-model op counts by kind and width for the evaluated text (`op_counts.csv`); totals:", "",
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
    lines += ["", "## Golden vectors", "", golden]
    return "\n".join(lines) + "\n"


def _quote(s: str, n: int = 70) -> str:
    s = " ".join(s.split()).replace("|", "\\|").replace("`", "'")
    return f"\"{s if len(s) <= n else s[:n - 3] + '...'}\""


def write_report(out: Path, evals: list[Any], ts: TextSets, chk: list[tuple[str, str]], golden: bool,
                 command: str, calib: Any, truncated: dict[str, int], plots: bool = True) -> None:
    """Write the report directory atomically (it replaces ``out``, which the caller checked)."""
    from ..core.fileio import atomic_directory

    with atomic_directory(out, force=True) as tmp:
        rows = result_rows(evals, ts)
        cols = ["configuration", "nonlinear"] + [f"{n}_{k}" for n in ts.names() for k in ("mean", "min", "spearman")]
        cols += ["overflows", "work_ratio", "ops_total", "macs", "description"]
        (tmp / "results.csv").write_text(_csv(rows, cols))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, **r}
                for ev in evals for r in ev.layer_errors]
        (tmp / "layer_errors.csv").write_text(_csv(rows, ["configuration", "nonlinear", "layer", "mean", "p50",
                                                          "p90", "max"]))
        rows = [{"configuration": ev.config.name, "nonlinear": ev.nonlinear, "set": ts.sets[i], "kind": ts.kinds[i],
                 "sentence": i, "cosine": float(c), "text": ts.sentences[i]}
                for ev in evals for i, c in enumerate(ev.cosine)]
        (tmp / "cosine.csv").write_text(_csv(rows, ["configuration", "nonlinear", "set", "kind", "sentence", "cosine",
                                                    "text"]))
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
        if plots:
            _plot(evals, tmp / "layer_errors.png")
        note = "Not written (--no-golden)."
        if golden:
            cfg, nl = evals[0].config.name, evals[0].nonlinear
            note = (f"`golden/`: an intsim golden-vector suite (format of `intsim.golden`) with one case: encoder "
                    f"layer {_GOLDEN_LAYER} of {cfg}/{nl} on one sentence of {_GOLDEN_TOKENS} tokens (heavy-tailed "
                    "residual-stream input). Output `y` is the next layer's residual-stream input; the taps hold "
                    "every intermediate integer tensor and the layer's integer parameters (`param_*`). Verified bit "
                    "for bit after writing (`intsim.golden.verify_suite`).")
            _write_golden(tmp / "golden", cfg, nl)
        (tmp / "README.md").write_text(_markdown(evals, ts, chk, note, command, calib, truncated, plots))


def _write_golden(path: Path, cfg: str, nl: str) -> None:
    from ..golden import parse_spec, verify_suite
    from ..golden.suite import generate_suite
    from ..models.minilm import golden_spec

    spec = parse_spec(golden_spec(cfg, nl, _GOLDEN_LAYER, _GOLDEN_TOKENS), source="spec.toml")
    generate_suite(spec, path)
    rep = verify_suite(path)
    if not rep.ok:  # pragma: no cover - would be an intsim bug
        raise RuntimeError(f"the golden suite just written does not verify: {rep.failed[0].problems}")
