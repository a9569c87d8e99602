"""``intsim report unpack``: IM-Unpack ratios on the real GEMMs of all-MiniLM-L6-v2.

For every GEMM of the 6 encoder layers (``intsim_reference.minilm.capture_gemm_operands``),
every bit-width b (2 to 8) and every strategy (``row``, ``col``, ``both``: the paper's;
``plan``: intsim's), the report records the unpack ratio M'K'N'/(MKN), the same ratio
when -2**(b-1) is admitted as in range, the number of low-bit GEMMs, the share of
out-of-range entries of each operand and the heavy-hitter ratio alpha100/alpha95 of
each float operand; then the model aggregate sum(M'K'N') / sum(MKN) per b and
strategy, next to the LLM.int8() baseline, and a plot of ratio against b.

Quantization (the IM-Unpack reference profile, fixed across b so that the bit-width
is the only variable): every operand is quantized per tensor by round-to-nearest with
``alpha`` = the ``--percentile`` (0.95) magnitude and ``D = --levels`` (15) levels,
``q = round(x * 0.5 D / alpha)``, half to even; entries above alpha are not clipped.
The per-head GEMMs (``scores``: Q_h @ K_h^T, ``attn_v``: P_h @ V_h, one per sentence
and head) share one scale per layer and operand, as the reference quantizes the whole
attention tensor; each head's GEMM is unpacked on its own and the report gives one row
per layer and name, summed over sentences and heads (ratios are sum M'K'N' / sum MKN,
out-of-range shares are over all entries, low-bit GEMMs are summed).

Both operands of a GEMM use the same strategy (A first, then B against the unpacked
A, as :func:`intsim.hw.unpack.unpack_matmul` does); the figures come from
:func:`intsim.hw.unpack.compare_strategies`, which gives exactly the shapes and GEMM
counts ``unpack_matmul`` produces without running the low-bit GEMMs.

LLM.int8() (:func:`intsim.quant.llmint8.llm_int8_matmul`, its own int8 + 16-bit scheme, so
a b = 8 figure) runs on the float operands; its work ratio in 8-bit MACs is
(K - n + 4 n) / K for n outlier columns (|x| >= 6), shown next to every b for
reference. For a like-for-like comparison the report adds an int8-like IM-Unpack
profile (p = 1, D = 255) unpacked at b = 8, and the relative Frobenius errors against
the float64 product of the quantized-then-unpacked GEMMs (exact on their integers, so
the same for every b and strategy) and of LLM.int8().

**Your own GEMMs.** ``--npy A.npy B.npy`` (repeat it for several GEMMs) unpacks ``A @ B`` of
your own 2-D ``.npy`` files instead of the MiniLM's, at every bit-width of ``--bits`` and
every strategy, and writes ``reports/unpack-npy`` (or ``--out``): ``README.md``,
``inputs.csv`` (each file's path as given, SHA-256 and size of the bytes read, dtype, byte
and memory order, shape, value range), ``gemms.csv`` (GEMM x bit-width x strategy: ratios,
with -2**(b-1) admitted too, low-bit GEMMs, out-of-range shares, heavy-hitter ratios),
``aggregate.csv`` (sum M'K'N' / sum MKN over the GEMMs) and ``ratio_vs_bits.png``. A is
M x K and B is K x N (M, K, N >= 1); the files are read as every user file is
(:func:`intsim.core.npyfile.read_npy`: regular files only, no pickles, size caps, a
truncated file refused). Integer files (any integer dtype, C or Fortran order, any byte
order) are unpacked exactly as they are; a float file is refused (DTypeError) unless
``--quantize`` is given, which quantizes each float operand on its own, per tensor, with
the report's quantizer (``--percentile``, ``--levels``, as above; NaN or Inf refused);
integer files are never requantized (``--percentile`` and ``--levels`` are refused with
``--npy`` unless ``--quantize`` is given). The MiniLM options (``--sentences``,
``--max-len``, ``--threshold``) do not apply to ``--npy`` and are refused with it. A bad
file or option exits with status 2 and a message naming the file.

Everything is written atomically into ``--out`` (``reports/unpack``) and is
deterministic: no timestamps; the same inputs give the same bytes. Progress goes to
stdout, one line per GEMM row as it finishes (``-q``/``--quiet`` hides it);
``--no-plots`` skips the PNG.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.arrays import to_int64
from ...core.errors import ConfigError, ModelNotInstalledError
from ...core.fileio import atomic_directory
from ...core.helptext import add_output_options
from ...core.npyfile import NpyData, read_gemm_npy
from ...hw.unpack import STRATEGIES, compare_strategies
from ...quant.llmint8 import llm_int8_matmul
from ...quant.quantizers import alpha_ratio, quantize_rtn_group
from .tables import csv_text, md_table

__all__ = ["add_arguments", "run", "DEFAULT_BITS"]

DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)
_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "ffn_up", "ffn_down")
_ORDER = ("q_proj", "k_proj", "v_proj", "scores", "attn_v", "o_proj", "ffn_up", "ffn_down")


def _aggregate_csv(agg: dict, bits: list[int] | tuple[int, ...], llm: float | None = None) -> str:
    """aggregate.csv: per bit-width and strategy the ratio, the ratio admitting -2^(b-1) and the
    saving (and, given ``llm``, LLM.int8()'s ratio on a row of its own per bit-width)."""
    rows = []
    for b in bits:
        for strat in STRATEGIES:
            r, r2 = agg[(b, strat, False)], agg[(b, strat, True)]
            rows.append([b, strat, _f(r), _f(r2), _f(100 * (1 - r2 / r), 2)])
        if llm is not None:
            rows.append([b, "llm.int8 (b=8 scheme)", _f(llm), "", ""])
    return csv_text(["bits", "strategy", "unpack_ratio", "unpack_ratio_admit_min", "admit_min_saving_percent"], rows)


def _admit_min_section(agg: dict, bits: list[int] | tuple[int, ...], aside: str) -> list[str]:
    """The report section on admitting -2^(b-1): ratios per strategy and the saving against the
    symmetric range (``agg[(b, strategy, admit_min)]``)."""
    hdr = ["b", *STRATEGIES, *(f"saving {s}" for s in STRATEGIES)]
    body = [[str(b), *(_f(agg[(b, s, True)], 3) for s in STRATEGIES),
             *(f"{100 * (1 - agg[(b, s, True)] / agg[(b, s, False)]):.1f}%" for s in STRATEGIES)] for b in bits]
    return ["## Admitting -2^(b-1) (the two's-complement minimum)",
            "The same, with -2^(b-1) counted as in range, as a real b-bit two's-complement multiplier "
            f"allows{aside}; the saving is relative to the table above.", md_table(hdr, body)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim report unpack``."""
    add_output_options(parser, out="reports/unpack", plots=True,
                       out_help="the directory to write (default: reports/unpack; with --npy: reports/unpack-npy)")
    parser.set_defaults(out=_DefaultOut("reports/unpack"))
    parser.add_argument("--npy", nargs=2, action="append", metavar=("A.npy", "B.npy"), default=None,
                        help="unpack A @ B of your own 2-D integer .npy files (A: M x K, B: K x N) instead of the "
                             "MiniLM's GEMMs; repeat for several GEMMs")
    parser.add_argument("--quantize", action="store_true",
                        help="with --npy: quantize float .npy files per tensor with --percentile and --levels "
                             "(default: a float file is an error; integer files are always used as they are)")
    parser.add_argument("--sentences", type=int, default=None,
                        help="number of sentences of intsim_reference.sentences.SENTENCES to run (default: 4)")
    parser.add_argument("--max-len", type=int, default=None, help="tokenizer max length (default: 64)")
    parser.add_argument("--bits", default="2-8", help="bit-widths, e.g. '2-8' or '4,8' (default: 2-8)")
    parser.add_argument("--percentile", type=float, default=None,
                        help="quantization percentile p for alpha (default: 0.95)")
    parser.add_argument("--levels", type=int, default=None, help="quantization levels D (default: 15)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="LLM.int8() outlier threshold (default: 6.0)")


class _DefaultOut(str):
    """The default of ``--out`` (equal to the string), told apart from the same path given explicitly."""


#: defaults of the options that --npy may refuse (None in the parser, so that a given one is seen)
_MINILM_DEFAULTS = {"sentences": 4, "max_len": 64, "threshold": 6.0}
_QUANT_DEFAULTS = {"percentile": 0.95, "levels": 15}


def _parse_bits(text: str) -> tuple[int, ...]:
    out: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                out.update(range(lo, hi + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise ConfigError(f"--bits must look like '2-8' or '4,8', got {text!r}") from None
    if not out or min(out) < 2 or max(out) > 32:
        raise ConfigError(f"--bits must name bit-widths from 2 to 32, got {text!r}")
    return tuple(sorted(out))


@dataclass
class _Acc:
    """Sums over the GEMMs of one report row (a linear GEMM or a per-head group)."""

    count: int = 0
    macs: int = 0
    work: dict = field(default_factory=lambda: defaultdict(int))        # (b, strategy, admit) -> sum M'K'N'
    lowbit: dict = field(default_factory=lambda: defaultdict(int))      # (b, strategy) -> sum of low-bit GEMMs
    oor: dict = field(default_factory=lambda: defaultdict(int))         # (b, operand) -> out-of-range entries
    size: dict = field(default_factory=lambda: defaultdict(int))        # operand -> entries
    llm_work: float = 0.0                                               # sum of work ratio * MKN
    llm_err: float = 0.0                                                # sum of squared errors
    q_err: float = 0.0
    ref_sq: float = 0.0
    alpha_a: float = 1.0
    alpha_b: float = 1.0
    shapes: list = field(default_factory=list)
    int8_work: dict = field(default_factory=lambda: defaultdict(int))   # strategy -> sum M'K'N', int8 profile
    int8_err: float = 0.0                                               # its sum of squared errors


def _progress(quiet: bool, msg: str) -> None:
    """Progress on stdout, one line per unit of work, flushed; nothing when ``quiet``."""
    if not quiet:
        print(msg, flush=True)


def _collect(args: argparse.Namespace, bits: tuple[int, ...]) -> tuple[dict, tuple[str, ...]]:
    try:
        from intsim_reference.minilm import capture_gemm_operands
        from intsim_reference.sentences import SENTENCES
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise ModelNotInstalledError(f"the MiniLM reference is needed for this report ({exc})") from None
    if not 1 <= args.sentences <= len(SENTENCES):
        raise ConfigError(f"--sentences must be from 1 to {len(SENTENCES)}, got {args.sentences}")
    sentences = tuple(SENTENCES[:args.sentences])
    t0 = time.perf_counter()
    ops = capture_gemm_operands(list(sentences), max_len=args.max_len)
    _progress(args.quiet, f"captured {len(ops)} GEMMs of {len(sentences)} sentences "
                          f"({time.perf_counter() - t0:.1f} s)")
    groups: dict[tuple[int, str], list] = defaultdict(list)
    for o in ops:
        groups[(o.layer, o.name)].append(o)
    rows: dict[tuple[int, str], _Acc] = {}
    layers = sorted({k[0] for k in groups})
    todo = [(layer, name) for layer in layers for name in _ORDER if groups.get((layer, name))]
    for i, key in enumerate(todo, 1):
        t1 = time.perf_counter()
        members = groups[key]
        rows[key] = _row(members, bits, args)
        _progress(args.quiet, f"[{i}/{len(todo)}] layer {key[0]} {key[1]}: {len(members)} GEMM"
                              f"{'s' if len(members) != 1 else ''} ({time.perf_counter() - t1:.1f} s)")
    return rows, sentences


def _sq_error(ia: np.ndarray, ib: np.ndarray, scale: float, ref: np.ndarray) -> float:
    """Squared Frobenius error of the dequantized integer product (exact: integers below 2**53)."""
    deq = (ia.astype(np.float64) @ ib.astype(np.float64)) / scale
    return float(np.sum((deq - ref) ** 2))


def _row(members: list, bits: tuple[int, ...], args: argparse.Namespace) -> _Acc:
    acc = _Acc()
    qa, sa = quantize_rtn_group([o.a for o in members], args.levels, args.percentile)
    qb, sb = quantize_rtn_group([o.b for o in members], args.levels, args.percentile)
    qa8, sa8 = quantize_rtn_group([o.a for o in members], 255, 1.0)  # the int8-like profile p100-d255
    qb8, sb8 = quantize_rtn_group([o.b for o in members], 255, 1.0)
    acc.alpha_a = alpha_ratio(np.concatenate([o.a.ravel() for o in members]), 0.95)
    acc.alpha_b = alpha_ratio(np.concatenate([o.b.ravel() for o in members]), 0.95)
    acc.shapes = sorted({o.shape for o in members})
    for o, ia, ib, ia8, ib8 in zip(members, qa, qb, qa8, qb8, strict=True):
        M, K, N = o.shape
        acc.count += 1
        acc.macs += M * K * N
        acc.size["a"] += ia.size
        acc.size["b"] += ib.size
        ref = o.a @ o.b
        acc.ref_sq += float(np.sum(ref * ref))
        acc.q_err += _sq_error(ia, ib, sa * sb, ref)
        for b in bits:
            s = 1 << (b - 1)
            acc.oor[(b, "a")] += int(np.count_nonzero(np.abs(ia) >= s))
            acc.oor[(b, "b")] += int(np.count_nonzero(np.abs(ib) >= s))
            for admit in (False, True):
                for strat, st in compare_strategies(ia, ib, b, admit_min=admit).items():
                    acc.work[(b, strat, admit)] += st.work
                    if not admit:
                        acc.lowbit[(b, strat)] += st.n_gemms
        for strat, st in compare_strategies(ia8, ib8, 8).items():
            acc.int8_work[strat] += st.work
        acc.int8_err += _sq_error(ia8, ib8, sa8 * sb8, ref)
        r = llm_int8_matmul(o.a, o.b, threshold=args.threshold)
        acc.llm_err += float(np.sum((r.values - ref) ** 2))
        acc.llm_work += r.work_ratio * M * K * N
    return acc


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def _f(x: float, nd: int = 4) -> str:
    return f"{x:.{nd}f}"


def _pct(x: float) -> str:
    """A signed percentage with one decimal, never "-0.0%"."""
    v = round(100 * x, 1)
    return f"{v + 0.0:+.1f}%"


def _ratio(work: int, macs: int) -> float:
    return work / macs if macs else 1.0


def _shape_text(acc: _Acc, name: str, n_sent: int) -> str:
    if name in _LINEAR:
        (M, K, N), = acc.shapes
        return f"{M}x{K}x{N}"
    return f"{acc.count} GEMMs ({n_sent} sentences x 12 heads)"


def _aggregate(rows: dict, bits: tuple[int, ...]) -> dict:
    macs = sum(a.macs for a in rows.values())
    agg = {"macs": macs}
    for b in bits:
        for strat in STRATEGIES:
            for admit in (False, True):
                agg[(b, strat, admit)] = _ratio(sum(a.work[(b, strat, admit)] for a in rows.values()), macs)
    ref = sum(a.ref_sq for a in rows.values())
    agg["q_err"] = (sum(a.q_err for a in rows.values()) / ref) ** 0.5 if ref else 0.0
    agg["llm_err"] = (sum(a.llm_err for a in rows.values()) / ref) ** 0.5 if ref else 0.0
    agg["llm"] = sum(a.llm_work for a in rows.values()) / macs if macs else 1.0
    agg["int8_err"] = (sum(a.int8_err for a in rows.values()) / ref) ** 0.5 if ref else 0.0
    for strat in STRATEGIES:
        agg[("int8", strat)] = _ratio(sum(a.int8_work[strat] for a in rows.values()), macs)
    return agg


def _plot(path: Path, agg: dict, bits: tuple[int, ...], title: str = "all-MiniLM-L6-v2, all GEMMs of 6 layers",
          llm: bool = True) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ModelNotInstalledError("the unpack report plot needs matplotlib: pip install 'intsim[reports]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    markers = {"row": "o", "col": "s", "both": "^", "plan": "D"}
    for strat in STRATEGIES:
        ax.plot(bits, [agg[(b, strat, False)] for b in bits], marker=markers[strat], label=strat)
    if llm:
        ax.plot(bits, [agg["llm"]] * len(bits), linestyle="--", color="black", label="LLM.int8() (work)")
    ax.set_yscale("log")
    ax.set_xlabel("bit-width b")
    ax.set_ylabel("unpack ratio  sum M'K'N' / sum MKN")
    ax.set_title(title)
    ax.set_xticks(list(bits))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _write(out: Path, rows: dict, bits: tuple[int, ...], args: argparse.Namespace, sentences: tuple[str, ...]) -> dict:
    agg = _aggregate(rows, bits)
    keys = sorted(rows, key=lambda k: (k[0], _ORDER.index(k[1])))
    n_sent = len(sentences)

    # long CSV: GEMM x b x strategy
    long_rows = []
    for key in keys:
        a = rows[key]
        for b in bits:
            for strat in STRATEGIES:
                long_rows.append([
                    key[0], key[1], _shape_text(a, key[1], n_sent), a.count, b, strat, a.macs,
                    a.work[(b, strat, False)], _f(_ratio(a.work[(b, strat, False)], a.macs)),
                    _f(_ratio(a.work[(b, strat, True)], a.macs)), a.lowbit[(b, strat)],
                    _f(a.oor[(b, "a")] / a.size["a"], 6), _f(a.oor[(b, "b")] / a.size["b"], 6),
                    _f(a.alpha_a, 3), _f(a.alpha_b, 3)])
    (out / "gemms.csv").write_text(csv_text(
        ["layer", "gemm", "shape", "gemms", "bits", "strategy", "macs", "unpacked_macs", "unpack_ratio",
         "unpack_ratio_admit_min", "low_bit_gemms", "out_of_range_a", "out_of_range_b",
         "alpha100_alpha95_a", "alpha100_alpha95_b"], long_rows), newline="\n")

    (out / "aggregate.csv").write_text(_aggregate_csv(agg, bits, llm=agg["llm"]), newline="\n")
    (out / "accuracy.csv").write_text(csv_text(
        ["method", "rel_error"],
        [[f"quantized p={args.percentile} D={args.levels}, unpacked (any b, any strategy)", f"{agg['q_err']:.6g}"],
         ["quantized p=1 D=255, unpacked (any b, any strategy)", f"{agg['int8_err']:.6g}"],
         ["llm.int8 (int8 + 16-bit outliers)", f"{agg['llm_err']:.6g}"]]), newline="\n")
    plots = not getattr(args, "no_plots", False)
    if plots:
        _plot(out / "ratio_vs_bits.png", agg, bits)
    (out / "README.md").write_text(_markdown(rows, keys, agg, bits, args, sentences, plots), newline="\n")
    return agg


def _markdown(rows: dict, keys: list, agg: dict, bits: tuple[int, ...], args: argparse.Namespace,
              sentences: tuple[str, ...], plots: bool = True) -> str:
    n_sent = len(sentences)
    total_gemms = sum(a.count for a in rows.values())
    paragraphs = [
        "# IM-Unpack on all-MiniLM-L6-v2",
        "Generated by `intsim report unpack --force` (options: "
        f"`--sentences {n_sent} --max-len {args.max_len} --bits {','.join(map(str, bits))} "
        f"--percentile {args.percentile} --levels {args.levels} --threshold {args.threshold}`). "
        "Deterministic: rerunning gives the same files.",
        f"Input: the first {n_sent} sentences of `intsim_reference.sentences.SENTENCES`; {total_gemms} GEMMs over the "
        f"6 encoder layers, {agg['macs']:,} MACs in total. Every operand is quantized per tensor with "
        f"p = {args.percentile}, D = {args.levels} (`q = round(x * 0.5 D / alpha_p)`, half to even, no clipping); "
        "the same integers are unpacked at every bit-width b. The per-head GEMMs (`scores` = Q_h K_h^T, "
        "`attn_v` = P_h V_h, one per sentence and head) share one scale per layer and operand, as the reference "
        "quantizes the whole attention tensor, and are unpacked one by one; their rows sum over sentences and heads.",
        "Ratio = sum M'K'N' / sum MKN. Strategies, used on both operands (A first, then B against the unpacked A): "
        "`row`, `col`, `both` (the paper's greedy) and `plan` (intsim's: the digit copies of every row and "
        "column chosen to minimize the GEMM work exactly; see `intsim/hw/unpack/`).",
        "LLM.int8(): vector-wise absmax int8 (per row of A, per column of B), outlier columns "
        f"(|x| >= {args.threshold}) on a 16-bit path, counted as 4 int8 MACs each; its work ratio is a b = 8 "
        "figure, repeated in every row for reference.",
        "## Model aggregate",
    ]
    hdr = ["b", *STRATEGIES, "LLM.int8()", "plan vs both", "plan vs best of row/col/both"]
    body = []
    for b in bits:
        r = {s: agg[(b, s, False)] for s in STRATEGIES}
        best_paper = min(r["row"], r["col"], r["both"])
        body.append([str(b), *(_f(r[s], 3) for s in STRATEGIES), _f(agg["llm"], 3),
                     _pct(r["plan"] / r["both"] - 1), _pct(r["plan"] / best_paper - 1)])
    paragraphs.append(md_table(hdr, body))
    if plots:
        paragraphs.append("![unpack ratio against bit-width](ratio_vs_bits.png)")
    paragraphs += _admit_min_section(agg, bits, " (the reference's range is symmetric)")
    paragraphs.append("## Against LLM.int8() at b = 8, like for like")
    paragraphs.append("LLM.int8() keeps every value's 8-bit precision relative to its row or column maximum. The "
                      "IM-Unpack counterpart is an int8-like profile: per-tensor p = 1, D = 255 (`q = round(x * "
                      "127.5 / max|x|)`; the maximum lands on +-128, one step out of range), unpacked at b = 8. "
                      "Work ratios and the relative Frobenius error against the float64 product over all GEMMs; "
                      "the unpacked GEMMs are exact on their integers, so their error is the quantizer's alone.")
    paragraphs.append(md_table(["method", "work ratio (b = 8)", "relative error"], [
        *[[f"p = 1, D = 255, unpacked, {s}", _f(agg[("int8", s)], 4), f"{agg['int8_err']:.4g}"] for s in STRATEGIES],
        ["LLM.int8() (int8 + 16-bit outliers)", _f(agg["llm"], 4), f"{agg['llm_err']:.4g}"],
        [f"p = {args.percentile}, D = {args.levels} (this report's profile), unpacked, plan",
         _f(agg[(8, "plan", False)], 4) if 8 in bits else "", f"{agg['q_err']:.4g}"]]))
    paragraphs.append("## Per GEMM")
    paragraphs.append("`oor A`/`oor B`: share of out-of-range entries (|q| >= 2^(b-1)); `a100/a95`: heavy-hitter "
                      "ratio of the float operand; `GEMMs`: low-bit GEMMs (distinct inner scales) per strategy, "
                      "summed over the row's GEMMs. Every value, with the admit -2^(b-1) ratios: `gemms.csv`.")
    for layer in sorted({k[0] for k in keys}):
        paragraphs.append(f"### Layer {layer}")
        hdr = ["gemm", "shape", "b", "oor A", "oor B", "a100/a95 A", "a100/a95 B", *STRATEGIES,
               "GEMMs row/col/both/plan"]
        body = []
        for key in (k for k in keys if k[0] == layer):
            a = rows[key]
            for b in bits:
                body.append([key[1], _shape_text(a, key[1], n_sent), str(b),
                             f"{100 * a.oor[(b, 'a')] / a.size['a']:.2f}%",
                             f"{100 * a.oor[(b, 'b')] / a.size['b']:.2f}%",
                             _f(a.alpha_a, 2), _f(a.alpha_b, 2),
                             *(_f(_ratio(a.work[(b, s, False)], a.macs), 3) for s in STRATEGIES),
                             "/".join(str(a.lowbit[(b, s)]) for s in STRATEGIES)])
        paragraphs.append(md_table(hdr, body, "ll" + "r" * (len(hdr) - 2)))
    paragraphs.append("## Files\n\n"
                      "- `gemms.csv`: every GEMM (or per-head group) x bit-width x strategy.\n"
                      "- `aggregate.csv`: model aggregate per bit-width and strategy, with LLM.int8().\n"
                      "- `accuracy.csv`: relative errors."
                      + ("\n- `ratio_vs_bits.png`: the plot above." if plots else ""))
    return "\n\n".join(p.rstrip("\n") for p in paragraphs) + "\n"


# ---------------------------------------------------------------------------------------------
# --npy: the user's own GEMMs
# ---------------------------------------------------------------------------------------------

_NPY_HINT = "pass --quantize to quantize float files with the report's quantizer, --percentile and --levels"


@dataclass
class _Operand:
    """One operand file of a --npy GEMM: what was read, and the integers unpacked."""

    data: NpyData
    ints: np.ndarray
    scale: float | None  # the quantizer's scale (integers per unit) for a quantized float file, else None
    alpha_ratio: float | None  # alpha100 / alpha95 of the values; None where float64 would round them


def _operand(data: NpyData, args: argparse.Namespace) -> _Operand:
    arr = data.array
    if arr.dtype.kind == "f":
        (q,), scale = quantize_rtn_group([arr], args.levels, args.percentile)
        return _Operand(data, q, scale, alpha_ratio(arr, 0.95))
    ints = to_int64(arr, data.path)
    big = ints.size and max(int(ints.max()), -int(ints.min())) > 1 << 53
    return _Operand(data, ints, None, None if big else alpha_ratio(ints, 0.95))


def _collect_npy(args: argparse.Namespace, bits: tuple[int, ...]) -> list[tuple[_Operand, _Operand, _Acc]]:
    """Read every --npy pair and unpack it at every b and strategy (one _Acc per GEMM)."""
    kinds = "iuf" if args.quantize else "iu"
    pairs = [read_gemm_npy(a, b, kinds=kinds, hint="" if args.quantize else _NPY_HINT) for a, b in args.npy]
    out = []
    for i, (ra, rb) in enumerate(pairs, 1):
        t1 = time.perf_counter()
        oa, ob = _operand(ra, args), _operand(rb, args)
        ia, ib = oa.ints, ob.ints
        acc = _Acc(count=1)
        M, K = ia.shape
        N = ib.shape[1]
        acc.macs = M * K * N
        acc.shapes = [(M, K, N)]
        acc.size["a"], acc.size["b"] = ia.size, ib.size
        for b in bits:
            s = 1 << (b - 1)
            acc.oor[(b, "a")] = int(np.count_nonzero(np.abs(ia) >= s))
            acc.oor[(b, "b")] = int(np.count_nonzero(np.abs(ib) >= s))
            for admit in (False, True):
                for strat, st in compare_strategies(ia, ib, b, admit_min=admit).items():
                    acc.work[(b, strat, admit)] = st.work
                    if not admit:
                        acc.lowbit[(b, strat)] = st.n_gemms
        out.append((oa, ob, acc))
        _progress(args.quiet, f"[{i}/{len(pairs)}] {ra.path} @ {rb.path}: {M}x{K}x{N} "
                              f"({time.perf_counter() - t1:.1f} s)")
    return out


def _npy_command(args: argparse.Namespace, bits: tuple[int, ...]) -> str:
    parts = ["intsim report unpack"] + [f"--npy {a} {b}" for a, b in args.npy]
    parts.append(f"--bits {','.join(map(str, bits))}")
    if args.quantize:
        parts.append(f"--quantize --percentile {args.percentile} --levels {args.levels}")
    if getattr(args, "no_plots", False):
        parts.append("--no-plots")
    return " ".join(parts) + " --force"


def _range_text(x: np.ndarray) -> tuple[int, int]:
    return (int(x.min()), int(x.max())) if x.size else (0, 0)


def _write_npy(out: Path, gemms: list, bits: tuple[int, ...], args: argparse.Namespace) -> dict:
    """The --npy report's files (see the module docs); returns the aggregate ratios."""
    macs = sum(acc.macs for _, _, acc in gemms)
    agg: dict = {"macs": macs}
    for b in bits:
        for strat in STRATEGIES:
            for admit in (False, True):
                agg[(b, strat, admit)] = _ratio(sum(acc.work[(b, strat, admit)] for _, _, acc in gemms), macs)
    names = [f"{i}" for i in range(1, len(gemms) + 1)]
    in_rows = []
    for name, (oa, ob, _) in zip(names, gemms, strict=True):
        for side, o in (("A", oa), ("B", ob)):
            lo, hi = _range_text(o.ints)
            in_rows.append([name, side, o.data.path, o.data.sha256, o.data.bytes, o.data.dtype.str,
                            "F" if o.data.fortran_order else "C", "x".join(map(str, o.data.array.shape)),
                            lo, hi, "" if o.scale is None else f"{o.scale:.10g}"])
    (out / "inputs.csv").write_text(csv_text(
        ["gemm", "operand", "path", "sha256", "bytes", "dtype", "order", "shape", "min", "max", "quantizer_scale"],
        in_rows), newline="\n")
    long_rows = []
    for name, (oa, ob, a) in zip(names, gemms, strict=True):
        M, K, N = a.shapes[0]
        for b in bits:
            for strat in STRATEGIES:
                long_rows.append([
                    name, oa.data.path, ob.data.path, f"{M}x{K}x{N}", b, strat, a.macs, a.work[(b, strat, False)],
                    _f(_ratio(a.work[(b, strat, False)], a.macs)), _f(_ratio(a.work[(b, strat, True)], a.macs)),
                    a.lowbit[(b, strat)], _f(a.oor[(b, "a")] / a.size["a"], 6), _f(a.oor[(b, "b")] / a.size["b"], 6),
                    "" if oa.alpha_ratio is None else _f(oa.alpha_ratio, 3),
                    "" if ob.alpha_ratio is None else _f(ob.alpha_ratio, 3)])
    (out / "gemms.csv").write_text(csv_text(
        ["gemm", "a", "b", "shape", "bits", "strategy", "macs", "unpacked_macs", "unpack_ratio",
         "unpack_ratio_admit_min", "low_bit_gemms", "out_of_range_a", "out_of_range_b",
         "alpha100_alpha95_a", "alpha100_alpha95_b"], long_rows), newline="\n")
    (out / "aggregate.csv").write_text(_aggregate_csv(agg, bits), newline="\n")
    plots = not getattr(args, "no_plots", False)
    if plots:
        title = "A @ B of your .npy files" if len(gemms) == 1 else f"{len(gemms)} GEMMs of your .npy files"
        _plot(out / "ratio_vs_bits.png", agg, bits, title=title, llm=False)
    (out / "README.md").write_text(_markdown_npy(gemms, names, agg, bits, args, plots), newline="\n")
    return agg


def _markdown_npy(gemms: list, names: list[str], agg: dict, bits: tuple[int, ...], args: argparse.Namespace,
                  plots: bool) -> str:
    quant = (f"Float files are quantized on their own, per tensor, with p = {args.percentile}, D = {args.levels} "
             "(`q = round(x * 0.5 D / alpha_p)`, half to even, no clipping; NaN and Inf refused); integer files "
             "are used as they are." if args.quantize else
             "The files hold integers and are unpacked exactly as they are (no quantization).")
    paragraphs = [
        "# IM-Unpack on your GEMMs",
        f"Generated by `{_npy_command(args, bits)}`. Deterministic: rerunning on the same files gives the same "
        "files; `inputs.csv` records the SHA-256 of the exact bytes read.",
        f"Input: {len(gemms)} GEMM{'s' if len(gemms) != 1 else ''} `A @ B` (A is M x K, B is K x N), "
        f"{agg['macs']:,} MACs in total. {quant} Every bit-width b unpacks the same integers.",
    ]
    rows = []
    for name, (oa, ob, _) in zip(names, gemms, strict=True):
        for side, o in (("A", oa), ("B", ob)):
            lo, hi = _range_text(o.ints)
            what = o.data.dtype.name + (", big-endian" if o.data.dtype.byteorder == ">" else "")
            what += ", Fortran order" if o.data.fortran_order else ""
            if o.scale is not None:
                what += f", quantized (scale {o.scale:.6g})"
            rows.append([name, side, f"`{o.data.path}`", "x".join(map(str, o.data.array.shape)), what,
                         f"[{lo}, {hi}]", f"{o.data.bytes:,}", f"`{o.data.sha256}`"])
    paragraphs.append(md_table(["GEMM", "operand", "file", "shape", "dtype", "integer range", "bytes", "SHA-256"],
                               rows, "llllllrl"))
    paragraphs.append("Ratio = sum M'K'N' / sum MKN. Strategies, used on both operands (A first, then B against the "
                      "unpacked A): `row`, `col`, `both` (the paper's greedy) and `plan` (intsim's: the digit copies "
                      "of every row and column chosen to minimize the GEMM work exactly; see `intsim/hw/unpack/`).")
    paragraphs.append("## Over all GEMMs" if len(gemms) > 1 else "## Unpack ratios")
    hdr = ["b", *STRATEGIES, "plan vs both", "plan vs best of row/col/both"]
    body = []
    for b in bits:
        r = {s: agg[(b, s, False)] for s in STRATEGIES}
        best_paper = min(r["row"], r["col"], r["both"])
        body.append([str(b), *(_f(r[s], 3) for s in STRATEGIES), _pct(r["plan"] / r["both"] - 1),
                     _pct(r["plan"] / best_paper - 1)])
    paragraphs.append(md_table(hdr, body))
    if plots:
        paragraphs.append("![unpack ratio against bit-width](ratio_vs_bits.png)")
    paragraphs += _admit_min_section(agg, bits, "")
    paragraphs.append("## Per GEMM")
    paragraphs.append("`oor A`/`oor B`: share of out-of-range entries (|q| >= 2^(b-1)); `a100/a95`: heavy-hitter "
                      "ratio of the operand's values (empty where float64 would round them); `GEMMs`: low-bit GEMMs "
                      "(distinct inner scales) per strategy. Every value: `gemms.csv`.")
    hdr = ["GEMM", "shape", "b", "oor A", "oor B", "a100/a95 A", "a100/a95 B", *STRATEGIES, "GEMMs row/col/both/plan"]
    body = []
    for name, (oa, ob, a) in zip(names, gemms, strict=True):
        M, K, N = a.shapes[0]
        for b in bits:
            body.append([name, f"{M}x{K}x{N}", str(b), f"{100 * a.oor[(b, 'a')] / a.size['a']:.2f}%",
                         f"{100 * a.oor[(b, 'b')] / a.size['b']:.2f}%",
                         "" if oa.alpha_ratio is None else _f(oa.alpha_ratio, 2),
                         "" if ob.alpha_ratio is None else _f(ob.alpha_ratio, 2),
                         *(_f(_ratio(a.work[(b, s, False)], a.macs), 3) for s in STRATEGIES),
                         "/".join(str(a.lowbit[(b, s)]) for s in STRATEGIES)])
    paragraphs.append(md_table(hdr, body, "ll" + "r" * (len(hdr) - 2)))
    paragraphs.append("## Files\n\n"
                      "- `inputs.csv`: every operand file: path as given, SHA-256, bytes, dtype, order, shape, range.\n"
                      "- `gemms.csv`: every GEMM x bit-width x strategy.\n"
                      "- `aggregate.csv`: over all GEMMs, per bit-width and strategy."
                      + ("\n- `ratio_vs_bits.png`: the plot above." if plots else ""))
    return "\n\n".join(p.rstrip("\n") for p in paragraphs) + "\n"


def _resolve_options(args: argparse.Namespace) -> None:
    """Fill in the defaults of the options the parser leaves None, refusing the ones --npy does not use."""
    npy = bool(getattr(args, "npy", None))
    given = [k for k in _MINILM_DEFAULTS if getattr(args, k, None) is not None]
    if npy and given:
        opts = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(f"{opts}: appl{'y' if len(given) > 1 else 'ies'} to the MiniLM's GEMMs, not to --npy files")
    if getattr(args, "quantize", False) and not npy:
        raise ConfigError("--quantize applies to --npy files (the MiniLM's operands are always quantized)")
    qgiven = [k for k in _QUANT_DEFAULTS if getattr(args, k, None) is not None]
    if npy and qgiven and not args.quantize:
        opts = ", ".join("--" + k for k in qgiven)
        raise ConfigError(f"{opts}: with --npy, the quantizer is used only with --quantize (integer files are "
                          "never quantized)")
    for k, v in {**_MINILM_DEFAULTS, **_QUANT_DEFAULTS}.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)


def run(args: argparse.Namespace) -> int:
    """Generate the report; returns 0 (errors are raised as intsim errors)."""
    bits = _parse_bits(args.bits)
    _resolve_options(args)
    if not 0 < args.percentile <= 1:
        raise ConfigError(f"--percentile must be in (0, 1], got {args.percentile}")
    if args.levels < 1:
        raise ConfigError(f"--levels must be a positive integer, got {args.levels}")
    npy = bool(getattr(args, "npy", None))
    out = Path("reports/unpack-npy" if npy and isinstance(args.out, _DefaultOut) else args.out)
    t0 = time.perf_counter()
    with atomic_directory(out, force=args.force) as tmp:
        if npy:
            agg = _write_npy(tmp, _collect_npy(args, bits), bits, args)
        else:
            rows, sentences = _collect(args, bits)
            agg = _write(tmp, rows, bits, args, sentences)
    summary = ", ".join(f"b={b}: " + " ".join(f"{s} {agg[(b, s, False)]:.3f}" for s in STRATEGIES)
                        for b in (bits[0], bits[-1]))
    tail = "" if npy else f"; LLM.int8() {agg['llm']:.3f}"
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s ({summary}{tail})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m intsim.apps.reports.unpack [options]``: the same as ``intsim report unpack [options]``
    (one parser, one error handling); returns the exit status."""
    import sys

    from ..cli import main as cli_main

    return cli_main(["report", "unpack", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
