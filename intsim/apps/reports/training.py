"""``intsim report training``: IM-Unpack ratios, INT16 accumulator overflow and an integer SGD step on the
training GEMMs of all-MiniLM-L6-v2.

One step of sentence-pair fine-tuning (the cosine-similarity MSE loss on mean-pooled
embeddings, :func:`intsim_reference.training.training_step`) is run in float64 on
``--pairs`` pairs of :mod:`intsim_reference.sentences` (paraphrase pairs with label 1
alternating with unrelated pairs with label 0), capturing every GEMM: per linear layer
the forward product, the input gradient and the weight gradient; per sentence and head
the attention products ``Q K^T`` and ``P V`` and their four gradients. Kinds:
``forward``, ``input_grad``, ``weight_grad``, ``attention``, ``attention_grad``; the
inference GEMMs are ``forward`` plus ``attention`` (the same products as
``intsim report unpack`` on these sentences).

1. **Unpack ratios.** Every operand is quantized as in ``intsim report unpack``
   (:func:`intsim.quant.quantizers.quantize_rtn`, per tensor, ``--percentile`` p and
   ``--levels`` D; the per-head products of one layer, name and role share one scale
   per operand) and unpacked at every ``--bits`` b with each strategy
   (:func:`intsim.hw.unpack.compare_strategies`); ratio = sum M'K'N' / sum MKN per kind.
   The heavy-hitter ratio alpha100/alpha95 (``max|x|`` over the 95th-percentile
   magnitude) of each float operand is reported per GEMM and summarised per kind.
2. **INT16 datapath.** Every operand becomes a shared-exponent int16 tensor
   (:func:`intsim.models.minilm.training.dfp_quantize_group`, one exponent per tensor,
   per-head products sharing it as above) and each GEMM runs on the accumulator
   organisations of :func:`intsim.models.minilm.training.default_variants`
   (``--spill``, ``--wide``) through :func:`intsim.matmul`; the report gives the share of
   outputs that overflow, per kind, and a recommendation derived from those numbers.
3. **Integer training step.** The whole step again, every GEMM an exact integer
   IM-Unpack GEMM on ``--step-bits``-bit multipliers
   (:class:`intsim.models.minilm.training.UnpackGemm`), for each quantizer profile
   ``--step-levels`` (p = ``--percentile``); then SGD (``--lr``) on both steps and the
   relative error of each gradient and updated weight tensor against float64.

Everything is written atomically into ``--out`` (``reports/training``) and is
deterministic (no timings in the files); progress goes to stdout (``-q`` hides it),
``--no-plots`` skips the PNG.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import ConfigError, ModelNotInstalledError
from ...core.fileio import atomic_directory
from ...core.helptext import add_output_options
from ...hw.unpack import STRATEGIES, compare_strategies
from ...quant.quantizers import alpha_ratio, quantize_rtn_group
from .tables import csv_text, md_table

__all__ = ["add_arguments", "run", "DEFAULT_BITS", "KIND_ORDER", "training_workload"]

DEFAULT_BITS = (2, 3, 4, 8)
#: GEMM kinds in report order (:data:`intsim_reference.training.KINDS`).
KIND_ORDER = ("forward", "input_grad", "weight_grad", "attention", "attention_grad")
_INFERENCE = ("forward", "attention")
_NAME_ORDER = ("q_proj", "k_proj", "v_proj", "scores", "attn_v", "o_proj", "ffn_up", "ffn_down")
_ROLE_ORDER = ("forward", "grad_a", "grad_b")
_KIND_TEXT = {
    "forward": "forward Y = X W^T",
    "input_grad": "input gradient dX = dY W",
    "weight_grad": "weight gradient dW^T = X^T dY",
    "attention": "attention Q K^T, P V",
    "attention_grad": "attention gradients dQ, dK, dP, dV",
}
#: what the A and B operands of each kind are
_OPERANDS = {
    "forward": ("X (activations)", "W^T (weights)"),
    "input_grad": ("dY (output gradient)", "W (weights)"),
    "weight_grad": ("X^T (activations)", "dY (output gradient)"),
    "attention": ("Q_h / P_h", "K_h^T / V_h"),
    "attention_grad": ("dS_h, dC_h / Q_h^T, P_h^T", "K_h, V_h^T / dS_h, dC_h"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim report training``."""
    add_output_options(parser, out="reports/training", plots=True)
    parser.add_argument("--pairs", type=int, default=4,
                        help="sentence pairs, paraphrase (label 1) and unrelated (label 0) alternating (default: 4)")
    parser.add_argument("--max-len", type=int, default=64, help="tokenizer max length (default: 64)")
    parser.add_argument("--layers", type=int, default=6,
                        help="encoder layers of the model to train (its first N; default: 6, all)")
    parser.add_argument("--bits", default="2,3,4,8", help="unpack bit-widths, e.g. '2-8' or '4,8' (default: 2,3,4,8)")
    parser.add_argument("--percentile", type=float, default=0.95,
                        help="quantization percentile p for alpha (default: 0.95)")
    parser.add_argument("--levels", type=int, default=15, help="quantization levels D of the ratios (default: 15)")
    parser.add_argument("--spill", default="8,32,128",
                        help="spill intervals k of the two-level int32 accumulator (default: 8,32,128)")
    parser.add_argument("--wide", default="40,48", help="wider accumulator widths (default: 40,48)")
    parser.add_argument("--step-levels", default="15,255",
                        help="quantizer levels D of the integer training steps, one step each (default: 15,255)")
    parser.add_argument("--step-bits", type=int, default=4, help="multiplier bits of the integer step (default: 4)")
    parser.add_argument("--step-strategy", default="plan", choices=STRATEGIES,
                        help="IM-Unpack strategy of the integer step (default: plan)")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default: 0.01)")


def _int_list(text: str, option: str, lo: int, hi: int) -> tuple[int, ...]:
    out: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                out.update(range(a, b + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise ConfigError(f"{option} must look like '2-8' or '4,8', got {text!r}") from None
    if not out or min(out) < lo or max(out) > hi:
        raise ConfigError(f"{option} must name integers from {lo} to {hi}, got {text!r}")
    return tuple(sorted(out))


def _progress(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# the workload
# ---------------------------------------------------------------------------------------------

@dataclass
class Workload:
    """The model and batch of the step: ``sentences`` (texts), ``pairs`` (batch rows) and ``labels``."""

    model: Any
    input_ids: np.ndarray
    attention_mask: np.ndarray
    pairs: list[tuple[int, int]]
    labels: list[float]
    sentences: tuple[str, ...]
    description: str


def training_workload(pairs: int, max_len: int, layers: int) -> Workload:
    """The real MiniLM (its first ``layers`` layers) on ``pairs`` sentence pairs of the test corpus
    (paraphrase pairs labelled 1 and unrelated pairs labelled 0, alternately), tokenized at
    ``max_len``; ConfigError for values out of range."""
    try:
        from intsim_reference.minilm import MiniLMReference
        from intsim_reference.sentences import PARAPHRASE_PAIRS, SENTENCES, UNRELATED_PAIRS
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise ModelNotInstalledError(f"the MiniLM reference is needed for this report ({exc})") from None
    from ...models.loading import load_minilm_config, load_minilm_weights, tokenize

    n_max = 2 * min(len(PARAPHRASE_PAIRS), len(UNRELATED_PAIRS))
    if not 1 <= pairs <= n_max:
        raise ConfigError(f"--pairs must be from 1 to {n_max}, got {pairs}")
    cfg = load_minilm_config()
    if not 1 <= layers <= cfg.num_hidden_layers:
        raise ConfigError(f"--layers must be from 1 to {cfg.num_hidden_layers}, got {layers}")
    if not 2 <= max_len <= cfg.max_seq_length:
        raise ConfigError(f"--max-len must be from 2 to {cfg.max_seq_length}, got {max_len}")
    chosen = [(PARAPHRASE_PAIRS[i // 2], 1.0) if i % 2 == 0 else (UNRELATED_PAIRS[i // 2], 0.0)
              for i in range(pairs)]
    rows = sorted({s for (a, b), _ in chosen for s in (a, b)})
    where = {s: r for r, s in enumerate(rows)}
    sentences = tuple(SENTENCES[s] for s in rows)
    ids, mask = tokenize(list(sentences), max_len=max_len)
    model = MiniLMReference(load_minilm_weights(), replace(cfg, num_hidden_layers=layers))
    pairs = [(where[a], where[b]) for (a, b), _ in chosen]
    desc = (f"all-MiniLM-L6-v2 ({layers} of {cfg.num_hidden_layers} encoder layers), {len(pairs)} sentence "
            f"pair{'s' if len(pairs) != 1 else ''} of `intsim_reference.sentences` ({len(rows)} sentences, "
            f"{int(mask.sum())} real tokens, "
            f"max length {max_len})")
    return Workload(model, ids, mask, pairs, [lab for _, lab in chosen], sentences, desc)


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------

@dataclass
class _Group:
    """Sums over the GEMMs of one (layer, name, role)."""

    kind: str
    count: int = 0
    macs: int = 0
    shapes: set = field(default_factory=set)
    work: dict = field(default_factory=lambda: defaultdict(int))       # (b, strategy) -> sum M'K'N'
    alpha_a: float = 1.0
    alpha_b: float = 1.0
    outputs: int = 0
    max_k: int = 0
    overflow: dict = field(default_factory=lambda: defaultdict(int))   # variant -> overflowing outputs
    outside: int = 0                                                   # exact result outside int32
    dfp_err: float = 0.0                                               # squared error of the int16 product
    ref_sq: float = 0.0


def _measure(members: list, bits: tuple[int, ...], args: argparse.Namespace, variants: tuple) -> _Group:
    from ...models.minilm.training import dfp_quantize_group, exact_product, overflow_counts

    acc = _Group(members[0].kind)
    qa = quantize_rtn_group([g.a for g in members], args.levels, args.percentile)[0]
    qb = quantize_rtn_group([g.b for g in members], args.levels, args.percentile)[0]
    acc.alpha_a = alpha_ratio(np.concatenate([g.a.ravel() for g in members]), 0.95)
    acc.alpha_b = alpha_ratio(np.concatenate([g.b.ravel() for g in members]), 0.95)
    da, ea = dfp_quantize_group([g.a for g in members])
    db, eb = dfp_quantize_group([g.b for g in members])
    for g, ia, ib, ja, jb in zip(members, qa, qb, da, db, strict=True):
        M, K, N = g.shape
        acc.count += 1
        acc.macs += M * K * N
        acc.shapes.add((M, K, N))
        for b in bits:
            for strat, st in compare_strategies(ia, ib, b).items():
                acc.work[(b, strat)] += st.work
        acc.outputs += M * N
        acc.max_k = max(acc.max_k, K)
        for name, n in overflow_counts(ja, jb, variants).items():
            acc.overflow[name] += n
        exact = exact_product(ja, jb)
        acc.outside += int(np.count_nonzero((exact < -(1 << 31)) | (exact >= 1 << 31)))
        ref = g.a @ g.b
        approx = np.ldexp(exact.astype(np.float64), ea + eb)
        acc.dfp_err += float(np.sum((approx - ref) ** 2))
        acc.ref_sq += float(np.sum(ref * ref))
    return acc


@dataclass
class _StepResult:
    levels: int
    description: str
    loss: float
    loss_after: float
    tally: dict
    grad_err: dict
    weight_err: dict


def _step_errors(ref_grads: dict, grads: dict, weights: dict, lr: float) -> tuple[dict, dict]:
    from ...models.minilm.training import relative_error

    top = max(float(np.linalg.norm(g)) for g in ref_grads.values())
    gerr, werr = {}, {}
    for name, g in ref_grads.items():
        # a gradient that is 0 in exact arithmetic (the key bias: softmax ignores a per-row shift)
        # has a float64 value of pure rounding noise: no relative error is defined
        gerr[name] = math.nan if float(np.linalg.norm(g)) <= 1e-12 * top else relative_error(grads[name], g)
        werr[name] = relative_error(weights[name] - lr * grads[name], weights[name] - lr * g)
    return gerr, werr


# ---------------------------------------------------------------------------------------------
# output helpers
# ---------------------------------------------------------------------------------------------

def _f(x: float, nd: int = 4) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _g(x: float, nd: int = 3) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.{nd}g}"


def _ratio(work: int, macs: int) -> float:
    return work / macs if macs else 1.0


def _kind_sums(groups: dict, kinds: tuple[str, ...]) -> tuple[int, dict, int]:
    sel = [a for a in groups.values() if a.kind in kinds]
    work: dict = defaultdict(int)
    for a in sel:
        for key, v in a.work.items():
            work[key] += v
    return sum(a.macs for a in sel), work, sum(a.count for a in sel)


def _aggregates(groups: dict, bits: tuple[int, ...]) -> list[tuple[str, int, int, dict]]:
    """(label, gemms, macs, {(b, strategy): ratio}) per kind, inference and the whole step."""
    out = []
    for label, kinds in [*((k, (k,)) for k in KIND_ORDER), ("inference (forward + attention)", _INFERENCE),
                         ("training step (all)", KIND_ORDER)]:
        macs, work, count = _kind_sums(groups, kinds)
        if not count:
            continue
        out.append((label, count, macs, {(b, s): _ratio(work[(b, s)], macs) for b in bits for s in STRATEGIES}))
    return out


def _alpha_summary(groups: dict) -> list[list]:
    rows = []
    for kind in KIND_ORDER:
        sel = [(k, a) for k, a in groups.items() if a.kind == kind]
        if not sel:
            continue
        for op, attr in (("A", "alpha_a"), ("B", "alpha_b")):
            vals = np.array([getattr(a, attr) for _, a in sel])
            worst = max(sel, key=lambda t, attr=attr: getattr(t[1], attr))[0]
            rows.append([kind, op, _OPERANDS[kind][0 if op == "A" else 1], len(sel), _f(float(np.median(vals)), 2),
                         _f(float(vals.max()), 2), f"layer {worst[0]} {worst[1]} {worst[2]}"])
    return rows


def _int16_rows(groups: dict, variants: tuple) -> list[list]:
    rows = []
    for kind in KIND_ORDER:
        sel = [a for a in groups.values() if a.kind == kind]
        if not sel:
            continue
        outputs = sum(a.outputs for a in sel)
        ref = sum(a.ref_sq for a in sel)
        err = math.sqrt(sum(a.dfp_err for a in sel) / ref) if ref else 0.0
        rows.append([kind, sum(a.count for a in sel), outputs, max(a.max_k for a in sel), f"{err:.3g}",
                     sum(a.outside for a in sel), *(sum(a.overflow[v.name] for a in sel) for v in variants)])
    return rows


def _guaranteed_bits(max_k: int) -> int:
    """Accumulator width that no sum of ``max_k`` int16 x int16 products (|p| <= 32767**2) can overflow."""
    return (max_k * 32767 * 32767).bit_length() + 1


def _recommendation(rows: list[list], variants: tuple) -> str:
    total = sum(r[2] for r in rows)
    names = [v.name for v in variants]
    counts = {n: sum(r[6 + i] for r in rows) for i, n in enumerate(names)}
    plain = counts[names[0]]
    outside = sum(r[5] for r in rows)
    max_k = max(r[3] for r in rows)
    clean = [n for n in names if counts[n] == 0]
    worst = max(rows, key=lambda r: r[6] / r[2] if r[2] else 0.0)
    parts = [f"A plain int32 accumulator overflows on {plain:,} of {total:,} outputs "
             f"({100 * plain / total:.3f}%); the worst kind is `{worst[0]}` "
             f"({100 * worst[6] / worst[2]:.3f}% of its outputs). {outside:,} outputs "
             f"({100 * outside / total:.3f}%) have a final value outside int32: a plain int32 register cannot "
             "hold them at all, while a spilled design keeps the total in its 64-bit register."]
    spills = [n for n in names if "spill" in n]
    if spills:
        parts.append("Two-level accumulation leaves " + ", ".join(f"{counts[n]:,} (`{n}`)" for n in spills) + ".")
    if clean:
        parts.append(f"Recommended: `{clean[0]}`, the first organisation in the table's order with no overflow "
                     f"on any GEMM of this step.")
    else:
        parts.append("No organisation tested is free of overflow on this step; use a wider accumulator.")
    parts.append(f"For a guarantee whatever the data, an accumulator of {_guaranteed_bits(max_k)} bits holds "
                 f"any sum of K = {max_k} (the longest dot product here) int16 x int16 products; a spilled "
                 "int32 register only guarantees k = 2 products (32767^2 = 2^30 - 2^16 + 1).")
    return " ".join(parts)


def _observation(groups: dict, aggs: list, bits: tuple[int, ...]) -> str:
    """One sentence comparing the output gradients' tails and the backward ratios with inference."""
    grads = [a.alpha_a for a in groups.values() if a.kind == "input_grad"]
    acts = [a.alpha_a for a in groups.values() if a.kind == "forward"]
    if not grads or not acts:
        return ""
    b = 4 if 4 in bits else bits[-1]
    r = {label: ratios[(b, "plan")] for label, _, _, ratios in aggs}
    back = [k for k in ("input_grad", "weight_grad", "attention_grad") if k in r]
    inf = r.get("inference (forward + attention)")
    text = (f"Here the output gradients dY have a median alpha100/alpha95 of {np.median(grads):.2f} against "
            f"{np.median(acts):.2f} for the linear layers' input activations; at b = {b} (plan) the backward kinds "
            "unpack at " + ", ".join(f"{r[k]:.3f} (`{k}`)" for k in back))
    if inf is not None:
        text += f" against {inf:.3f} for inference"
    return text + "."


def _plot(path: Path, aggs: list, bits: tuple[int, ...], strategy: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ModelNotInstalledError("the training report plot needs matplotlib: pip install 'intsim[reports]'") \
            from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for label, _, _, ratios in aggs:
        y = [ratios[(b, strategy)] for b in bits]
        if label.startswith("inference"):  # nearly on top of forward: thin, black, drawn over it
            ax.plot(bits, y, color="black", linestyle="--", linewidth=1, marker="x", markersize=8, label=label,
                    zorder=3)
        elif label.startswith("training"):
            ax.plot(bits, y, color="dimgray", linestyle=":", linewidth=1.5, marker="s", markerfacecolor="none",
                    markersize=8, label=label, zorder=3)
        else:
            ax.plot(bits, y, marker="o", linewidth=2.5, alpha=0.85, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("bit-width b")
    ax.set_ylabel(f"unpack ratio ({strategy}), sum M'K'N' / sum MKN")
    ax.set_title("MiniLM training step: IM-Unpack ratio by GEMM kind")
    ax.set_xticks(list(bits))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------

def _collect(args: argparse.Namespace, bits: tuple[int, ...], variants: tuple, step_levels: tuple[int, ...],
             workload: Workload) -> dict:
    from intsim_reference.training import model_weights, training_step

    from ...models.minilm.training import UnpackGemm, integer_training_step

    t0 = time.perf_counter()
    wl = workload
    ref = training_step(wl.model, wl.input_ids, wl.attention_mask, wl.pairs, wl.labels)
    _progress(args.quiet, f"float64 step: loss {ref.loss:.6f}, {len(ref.gemms)} GEMMs "
                          f"({time.perf_counter() - t0:.1f} s)")
    by_key: dict[tuple[int, str, str], list] = defaultdict(list)
    for g in ref.gemms:
        by_key[(g.layer, g.name, g.role)].append(g)
    keys = sorted(by_key, key=lambda k: (k[0], _NAME_ORDER.index(k[1]), _ROLE_ORDER.index(k[2])))
    groups: dict = {}
    for i, key in enumerate(keys, 1):
        t1 = time.perf_counter()
        groups[key] = _measure(by_key[key], bits, args, variants)
        _progress(args.quiet, f"[{i}/{len(keys)}] layer {key[0]} {key[1]} {key[2]}: {len(by_key[key])} GEMM(s) "
                              f"({time.perf_counter() - t1:.1f} s)")
    weights = model_weights(wl.model)
    ref_after = _loss_after(wl, weights, ref.gradients, args.lr, training_step)
    steps = []
    for levels in step_levels:
        t1 = time.perf_counter()
        run = UnpackGemm(bits=args.step_bits, strategy=args.step_strategy, percentile=args.percentile,
                         levels=levels)
        st, run = integer_training_step(wl.model, wl.input_ids, wl.attention_mask, wl.pairs, wl.labels, run)
        gerr, werr = _step_errors(ref.gradients, st.gradients, weights, args.lr)
        after = _loss_after(wl, weights, st.gradients, args.lr, training_step)
        steps.append(_StepResult(levels, run.describe(), st.loss, after, dict(run.tally), gerr, werr))
        _progress(args.quiet, f"integer step D = {levels}: loss {st.loss:.6f} "
                              f"({time.perf_counter() - t1:.1f} s)")
    return {"ref": ref, "ref_after": ref_after, "keys": keys, "groups": groups, "steps": steps}


def _loss_after(wl: Workload, weights: dict, grads: dict, lr: float, training_step: Callable) -> float:
    from intsim_reference.minilm import MiniLMReference
    from intsim_reference.training import sgd_update

    model = MiniLMReference(sgd_update(weights, grads, lr), wl.model.config)
    return training_step(model, wl.input_ids, wl.attention_mask, wl.pairs, wl.labels, keep_gemms=False).loss


def _shape_text(a: _Group) -> str:
    if len(a.shapes) == 1:
        (M, K, N), = a.shapes
        return f"{M}x{K}x{N}"
    return f"{a.count} GEMMs"


def _param_kind(name: str) -> str:
    return name.split(".", 3)[3] if name.startswith("encoder.layer.") else name


def _write(out: Path, res: dict, bits: tuple[int, ...], variants: tuple, args: argparse.Namespace,
           wl: Workload) -> dict:
    groups, keys, steps = res["groups"], res["keys"], res["steps"]
    aggs = _aggregates(groups, bits)
    rows = []
    for key in keys:
        a = groups[key]
        for b in bits:
            for s in STRATEGIES:
                rows.append([key[0], key[1], key[2], a.kind, _shape_text(a), a.count, b, s, a.macs, a.work[(b, s)],
                             _f(_ratio(a.work[(b, s)], a.macs)), _f(a.alpha_a, 3), _f(a.alpha_b, 3)])
    (out / "gemms.csv").write_text(csv_text(
        ["layer", "gemm", "role", "kind", "shape", "gemms", "bits", "strategy", "macs", "unpacked_macs",
         "unpack_ratio", "alpha100_alpha95_a", "alpha100_alpha95_b"], rows), newline="\n")
    (out / "kinds.csv").write_text(csv_text(
        ["kind", "gemms", "macs", "bits", "strategy", "unpack_ratio"],
        [[label, n, macs, b, s, _f(r[(b, s)])] for label, n, macs, r in aggs for b in bits for s in STRATEGIES]),
        newline="\n")
    alpha_rows = _alpha_summary(groups)
    (out / "heavy_hitters.csv").write_text(csv_text(
        ["kind", "operand", "what", "groups", "median_alpha100_alpha95", "max_alpha100_alpha95", "max_at"],
        alpha_rows), newline="\n")
    int16 = _int16_rows(groups, variants)
    vnames = [v.name for v in variants]
    (out / "int16.csv").write_text(csv_text(
        ["kind", "gemms", "outputs", "max_k", "dfp_rel_error", "final_outside_int32", *vnames],
        int16), newline="\n")
    (out / "int16_gemms.csv").write_text(csv_text(
        ["layer", "gemm", "role", "kind", "shape", "outputs", "final_outside_int32", *vnames],
        [[k[0], k[1], k[2], groups[k].kind, _shape_text(groups[k]), groups[k].outputs, groups[k].outside,
          *(groups[k].overflow[n] for n in vnames)] for k in keys]), newline="\n")
    (out / "step.csv").write_text(csv_text(
        ["levels", "parameter", "grad_rel_error", "updated_weight_rel_error"],
        [[s.levels, name, _g(s.grad_err[name], 6), _g(s.weight_err[name], 6)] for s in steps for name in s.grad_err]),
        newline="\n")
    (out / "step_gemms.csv").write_text(csv_text(
        ["levels", "kind", "gemms", "exact", "macs", "unpacked_macs", "unpack_ratio", "low_bit_gemms"],
        [[s.levels, k, t.gemms, t.exact, t.macs, t.work, _f(t.ratio), t.low_bit_gemms]
         for s in steps for k in KIND_ORDER if (t := s.tally.get(k)) is not None]), newline="\n")
    plots = not getattr(args, "no_plots", False)
    if plots:
        _plot(out / "ratio_by_kind.png", aggs, bits, "plan")
    (out / "README.md").write_text(_markdown(res, aggs, alpha_rows, int16, bits, variants, args, wl, plots),
                                   newline="\n")
    return {"aggs": aggs, "int16": int16}


def _markdown(res: dict, aggs: list, alpha_rows: list, int16: list, bits: tuple[int, ...], variants: tuple,
              args: argparse.Namespace, wl: Workload, plots: bool) -> str:
    ref, steps = res["ref"], res["steps"]
    opts = (f"--pairs {args.pairs} --max-len {args.max_len} --layers {args.layers} --bits {','.join(map(str, bits))} "
            f"--percentile {args.percentile} --levels {args.levels} --spill {args.spill} --wide {args.wide} "
            f"--step-levels {args.step_levels} --step-bits {args.step_bits} --step-strategy {args.step_strategy} "
            f"--lr {args.lr}")
    n_gemms = sum(a.count for a in res["groups"].values())
    P = [
        "# Training GEMMs of all-MiniLM-L6-v2: IM-Unpack, INT16 accumulators, an integer SGD step",
        f"Generated by `intsim report training --force` (options: `{opts}`). Deterministic: rerunning gives "
        "the same files.",
        f"Workload: {wl.description}. One step of the cosine-similarity MSE loss on mean-pooled embeddings "
        "(`intsim_reference.training.training_step`; paraphrase pairs have label 1, unrelated pairs label 0); "
        f"float64 loss {ref.loss:.6f}. {n_gemms:,} GEMMs: per linear layer the forward product, the input "
        "gradient and the weight gradient; per sentence and head Q_h K_h^T and P_h V_h and the gradients of "
        "both operands of each. The inference GEMMs are `forward` + `attention`.",
        "## Unpack ratio by GEMM kind",
        f"Every operand is quantized per tensor as in `intsim report unpack` (p = {args.percentile}, "
        f"D = {args.levels}, `q = round(x * 0.5 D / alpha_p)`, half to even, no clipping; the per-head products "
        "of one layer, name and role share one scale per operand) and unpacked with each strategy at each b "
        "(both operands with the same strategy). Ratio = sum M'K'N' / sum MKN over the kind. IM-Unpack "
        "(Zeng et al. 2024, arXiv:2403.07339) reports heavier-tailed matrices in the backward pass. "
        + _observation(res["groups"], aggs, bits),
    ]
    for b in bits:
        P.append(f"### b = {b}")
        P.append(md_table(["GEMM kind", "GEMMs", "MACs", *STRATEGIES],
                           [[label, str(n), f"{macs:,}", *(_f(r[(b, s)], 3) for s in STRATEGIES)]
                            for label, n, macs, r in aggs]))
    if plots:
        P.append("![unpack ratio by GEMM kind against b](ratio_by_kind.png)")
    P.append("## Heavy hitters: alpha100 / alpha95")
    P.append("`max|x| / alpha_0.95` of each float operand (the 95th-percentile magnitude as the quantizer computes "
             "it), per (layer, GEMM, role), summarised per kind: median and maximum over those groups. Per GEMM: "
             "`gemms.csv`.")
    P.append(md_table(["kind", "operand", "what", "groups", "median", "max", "max at"],
                       [[str(c) for c in r] for r in alpha_rows], "lllrrrl"))
    P.append("## INT16 dynamic fixed point and the int32 accumulator")
    P.append("Each operand becomes a shared-exponent int16 tensor (one exponent per tensor, the smallest power "
             "of two with the largest magnitude still rounding into int16, as in the dynamic fixed point of "
             "Das et al. 2018, arXiv:1802.00930; per-head products of one layer, name and role share it). Every "
             "GEMM then runs on `intsim.matmul` with each accumulator organisation, all registers wrapping: "
             "`acc32` is the plain MAC chain (an output counts when any partial sum in K order leaves int32); "
             "`acc32, spill every k` sums k products in the int32 register and then adds them into a 64-bit "
             "register (`Datapath(k_chunk=k, chunk_bits=32, acc_bits=64)`; an output counts when some group sum "
             "leaves int32); `accW` is a W-bit MAC chain. Cells: outputs that overflow (share of the kind's "
             "outputs). `final outside int32`: outputs whose exact value does not fit int32. `DFP error`: "
             "relative Frobenius error of the int16 product against float64.")
    hdr = ["kind", "outputs", "max K", "DFP error", "final outside int32", *(f"`{v.name}`" for v in variants)]
    body = []
    for r in int16:
        outs = r[2]
        body.append([r[0], f"{outs:,}", str(r[3]), r[4], f"{r[5]:,} ({100 * r[5] / outs:.3f}%)",
                     *(f"{n:,} ({100 * n / outs:.3f}%)" for n in r[6:])])
    total = [sum(r[2] for r in int16), sum(r[5] for r in int16)] + [sum(r[6 + i] for r in int16)
                                                                     for i in range(len(variants))]
    body.append(["all", f"{total[0]:,}", str(max(r[3] for r in int16)), "", f"{total[1]:,} "
                 f"({100 * total[1] / total[0]:.3f}%)", *(f"{n:,} ({100 * n / total[0]:.3f}%)" for n in total[2:])])
    P.append(md_table(hdr, body))
    P.append("**Recommendation.** " + _recommendation(int16, variants))
    P.append("## One training step on the integer datapath")
    P.append(f"The same step with every GEMM (forward and backward, {n_gemms:,} of them) an exact integer GEMM: "
             f"both operands quantized per tensor by the percentile quantizer (p = {args.percentile}, D per row "
             "below; each per-head product quantized on its own), the integer product computed by "
             f"`intsim.hw.unpack.unpack_matmul` on int{args.step_bits} x int{args.step_bits} multipliers into "
             f"32-bit accumulators (overflow raises; strategy `{args.step_strategy}`), checked equal to the int64 "
             "product, then dequantized. LayerNorm, softmax, GELU, the loss and their derivatives stay in "
             f"float64. SGD with lr = {args.lr} on both steps; `updated weight` compares `w - lr * grad`. The "
             "error of a gradient is also the error of its update. `attention.self.key.bias` has an exact "
             "gradient of 0 (softmax ignores a per-row shift), so it has no relative gradient error (n/a).")
    hdr = ["D", "GEMMs exact", "unpack ratio (all)", "loss", "loss after SGD", "median grad error", "max grad error",
           "max updated-weight error"]
    body = [["float64", "", "", f"{ref.loss:.6f}", f"{res['ref_after']:.6f}", "", "", ""]]
    for s in steps:
        g = np.array([v for v in s.grad_err.values() if not math.isnan(v)])
        w = np.array(list(s.weight_err.values()))
        n = sum(t.gemms for t in s.tally.values())
        ex = sum(t.exact for t in s.tally.values())
        ratio = _ratio(sum(t.work for t in s.tally.values()), sum(t.macs for t in s.tally.values()))
        body.append([str(s.levels), f"{ex}/{n}", _f(ratio, 3), f"{s.loss:.6f}", f"{s.loss_after:.6f}",
                     _g(float(np.median(g))), _g(float(g.max())), _g(float(w.max()))])
    P.append(md_table(hdr, body))
    P.append("Relative gradient error by parameter (maximum over layers; every tensor: `step.csv`; unpack ratios "
             "of the step per kind: `step_gemms.csv`):")
    kinds: dict[str, list[str]] = defaultdict(list)
    for name in ref.gradients:
        kinds[_param_kind(name)].append(name)
    hdr = ["parameter", *(f"grad, D = {s.levels}" for s in steps), *(f"updated weight, D = {s.levels}" for s in steps)]
    body = []
    for pk, names in kinds.items():
        cells = [f"`{pk}`"]
        for s in steps:
            vals = [s.grad_err[n] for n in names if not math.isnan(s.grad_err[n])]
            cells.append(_g(max(vals)) if vals else "n/a")
        cells += [_g(max(s.weight_err[n] for n in names)) for s in steps]
        body.append(cells)
    P.append(md_table(hdr, body))
    P.append("## Files\n\n"
             "- `kinds.csv`: unpack ratio per GEMM kind, inference and the whole step, per b and strategy.\n"
             "- `gemms.csv`: per (layer, GEMM, role), per b and strategy, with alpha100/alpha95 of both operands.\n"
             "- `heavy_hitters.csv`: alpha100/alpha95 per kind and operand.\n"
             "- `int16.csv`, `int16_gemms.csv`: overflowing outputs per kind / per GEMM and accumulator.\n"
             "- `step.csv`, `step_gemms.csv`: the integer step's errors per tensor and its GEMMs per kind."
             + ("\n- `ratio_by_kind.png`: the plot above (strategy `plan`)." if plots else ""))
    return "\n\n".join(p.rstrip("\n") for p in P) + "\n"


def run(args: argparse.Namespace, workload: Workload | None = None) -> int:
    """Generate the report; returns 0 (errors are raised as intsim errors). ``workload`` replaces the
    real model and sentences (for tests)."""
    from ...models.minilm.training import default_variants

    bits = _int_list(args.bits, "--bits", 2, 32)
    if not 0 < args.percentile <= 1:
        raise ConfigError(f"--percentile must be in (0, 1], got {args.percentile}")
    if args.levels < 1:
        raise ConfigError(f"--levels must be a positive integer, got {args.levels}")
    spill = _int_list(args.spill, "--spill", 2, 1 << 20)
    wide = _int_list(args.wide, "--wide", 33, 64)
    step_levels = _int_list(args.step_levels, "--step-levels", 1, 1 << 24)
    if not 2 <= args.step_bits <= 16:
        raise ConfigError(f"--step-bits must be from 2 to 16, got {args.step_bits}")
    if not (math.isfinite(args.lr) and args.lr >= 0):
        raise ConfigError(f"--lr must be a finite number >= 0, got {args.lr}")
    variants = default_variants(spill=spill, wide=wide)
    out = Path(args.out)
    t0 = time.perf_counter()
    with atomic_directory(out, force=args.force) as tmp:
        wl = training_workload(args.pairs, args.max_len, args.layers) if workload is None else workload
        res = _collect(args, bits, variants, step_levels, wl)
        summary = _write(tmp, res, bits, variants, args, wl)
    b4 = 4 if 4 in bits else bits[0]
    ratios = ", ".join(f"{label.split(' ')[0]} {r[(b4, 'plan')]:.3f}" for label, _, _, r in summary["aggs"])
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s (plan ratios at b = {b4}: {ratios})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m intsim.apps.reports.training [options]``: the same as ``intsim report training [options]``."""
    import sys

    from ..cli import main as cli_main

    return cli_main(["report", "training", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
