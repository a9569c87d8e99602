"""The main job: all-MiniLM-L6-v2 sentence embeddings computed with integers only,
against the float64 reference.

Steps:
  1. a short datapath check: seeded int8 and int4 GEMMs on the emulated datapath,
     every register checked against the exact product (--gemm-only stops here,
     with the full GEMM report);
  2. calibration on intsim's calibration corpus (every kind of text, up to the model's 256-token
     limit; none of it in the evaluation text): static ranges on one part, smoothing strengths and
     static margins chosen on the other;
  3. the float64 reference pass on the evaluation text: the evaluation set (reference/evaluation.py,
     11 kinds of text), every sentence of reference/sentences.py, and your own file (--text FILE,
     one sentence per line), at the model's token limit (--max-len);
  4. per configuration and non-linear family: quantization, the integer-only pass (every GEMM on
     the emulated datapath, dyadic requantization, integer softmax/GELU/LayerNorm,
     integer residual adds and pooling), cosine similarity to the float64 embeddings per set and
     per kind of text, the rank correlation of pairwise similarities, per-layer errors, overflows,
     IM-Unpack ratios, op counts;
  5. reports: OUT/README.md, CSV tables, layer_errors.png, and a golden-vector suite
     of one encoder layer under OUT/golden/ (verified after writing).

Configurations (--config): w8a8 (int8 weights, linear inputs quantized to 8 bits per token at run
time), w8a8-static (one calibrated step per tensor), w8a8-unpack4 (w8a8's integers on 4-bit
multipliers through IM-Unpack: exact GEMMs, so bit-identical embeddings), llm-int8 (the LLM.int8()
decomposition), or "all". Families of integer softmax/GELU/LayerNorm (--nonlinear): ibert and
ibert-corrected (intsim.ops.ibert), ivit and ivit-corrected (intsim.ops.ivit), illm (intsim.ops.illm),
or "all". The default runs w8a8 with the ibert family and writes intsim-out/minilm/ (under the
current directory; --force replaces it when it holds only what intsim wrote); reports/minilm/ in the
repository was written with --config all --nonlinear all --out reports/minilm.

Acceptance checks printed at the end (exit status 1 if one fails): every GEMM check is bit-exact;
no accumulator or register overflow with the default family (ibert); w8a8/ibert, w8a8/illm and
llm-int8/ibert (those that ran) reach a mean cosine of at least 0.99 and a minimum of at least 0.98 on
the whole evaluation set and on the reference sentences; w8a8-unpack4 equals w8a8 bit for bit.
Overflows of the other families are reported (INFO). A progress bar goes to stderr; timings go to
stdout only (the report regenerates identically).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..core.fileio import check_output_target
from ..core.helptext import add_output_options
from ..core.inttype import IntType
from ..core.progress import Progress
from ..hw.datapath import Datapath
from ..hw.gemm import matmul

__all__ = ["add_arguments", "run"]

_DEFAULT_OUT = "intsim-out/minilm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``intsim demo`` options."""
    from ..models.minilm import CONFIGURATIONS, NONLINEAR

    p.add_argument("--config", default="w8a8", choices=[*CONFIGURATIONS, "all"],
                   help="integer configuration to run (default: w8a8; 'all' runs every one)")
    p.add_argument("--nonlinear", default="ibert", choices=[*NONLINEAR, "all"],
                   help="family of integer softmax/GELU/LayerNorm operators (default: ibert); 'all' runs every "
                        "available one")
    p.add_argument("--profile", dest="nonlinear", default=argparse.SUPPRESS, choices=[*NONLINEAR, "all"],
                   help=argparse.SUPPRESS)  # the old name of --nonlinear
    p.add_argument("--text", metavar="FILE", help="also evaluate your own sentences: a UTF-8 file, one per line")
    p.add_argument("--sentences", type=int, default=None, metavar="N",
                   help="a quick run on at most N sentences of each built-in set (default: all; the acceptance "
                        "figures need the whole evaluation set)")
    p.add_argument("--max-len", type=int, default=None, metavar="T",
                   help="token limit of the integer pass and the reference (default: the model's max_seq_length, "
                        "256)")
    p.add_argument("--model-dir", metavar="DIR", default=argparse.SUPPRESS,
                   help="the MiniLM model folder (a copy of the Hugging Face folder; default: the cached model)")
    add_output_options(p, out=_DEFAULT_OUT, plots=True,
                       out_help=f"the report directory to write, relative to the current directory (default: "
                                f"{_DEFAULT_OUT}; the repository's reports/minilm was written with --out "
                                f"reports/minilm)")
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
        why = "expected under wrap" if dp.overflow == "wrap" else f"policy {dp.overflow}: none may overflow"
        print(f"  {title}: {M}x{K} @ {K}x{N} on {dp.describe()}: {r.n_overflow} overflowing outputs "
              f"({why}), {verdict}", file=out)
        return ok
    print(f"{title}: {M}x{K} @ {K}x{N} on {dp.describe()}", file=out)
    how = {"none": "no bulk product: every output emulated add by add"}.get(
        r.method, f"outputs proven safe by the bound: exact {r.method} product")
    print(f"  computed in {dt * 1e3:.1f} ms ({how}; {r.n_scanned} outputs emulated add by add)", file=out)
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
# part 2: the integer MiniLM
# =============================================================================================
def _selected(value: str, names: Sequence[str]) -> list[str]:
    return list(names) if value == "all" else [value]


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
    from . import minilm_report as mr

    args = _args_with_defaults(args)
    out = sys.stdout
    if args.gemm_only:
        ok = gemm_check(args.seed, args.shape, args.int4_acc_bits, out, verbose=True)
        print("all checks passed" if ok else "SOME CHECKS FAILED", file=out)
        return 0 if ok else 1

    from ..models import minilm as mi
    from ..models.store import model_source, verify_weights

    if args.max_len is not None and not 2 <= args.max_len <= 512:
        raise ConfigError(f"--max-len must be from 2 to 512, got {args.max_len}")
    ts = mr.text_sets(args.sentences, args.text)
    if not args.no_report:
        check_output_target(args.out, force=args.force)  # before the long run, not after it
    configs = _selected(args.config, list(mi.CONFIGURATIONS))
    families = mi.available_nonlinear() if args.nonlinear == "all" else [args.nonlinear]
    for f in families:
        mi.get_nonlinear(f)  # a clear ConfigError for a family whose module is missing
    timing: dict[str, float] = {}
    t_all = time.perf_counter()

    print("intsim demo: integer-only all-MiniLM-L6-v2 vs float64", file=out)
    ref = mi.reference_model()  # a clear message (extra, fetch command) when the model is missing
    path, how = model_source()
    digest = verify_weights(path / "model.safetensors")
    max_len = mi.model_max_len() if args.max_len is None else int(args.max_len)
    print(f"model: {path} (found by {how}); weights SHA-256 {digest[:16]}... (pinned, verified); "
          f"token limit {max_len}", file=out)
    print("datapath check:", file=out)
    gemm_ok = gemm_check(args.seed, args.shape, args.int4_acc_bits, out, verbose=False)

    runs = [(c, f) for f in families for c in configs]
    L = 6
    bar = Progress(2 + len(runs) * (L + 1) + (0 if args.no_report else 1), sys.stderr, quiet=args.quiet, eta=True)
    bar.step("loading the model and calibrating", 0)
    t0 = time.perf_counter()
    calib = mi.cached_calibration(mi.CALIBRATION_SENTENCES, max_len, mi.TUNING_SENTENCES)
    timing[f"calibration ({len(calib.sentences)} + {len(calib.tune_sentences)} sentences, float64)"] = \
        time.perf_counter() - t0
    bar.step("calibrated; float64 reference pass")
    ids, mask = mi.tokenize_sentences(ts.sentences, max_len)
    truncated = {n: mi.truncated_count([ts.sentences[i] for i in ts.index(n)], max_len) for n in ts.names()}
    t0 = time.perf_counter()
    probe = mi.float_probe(ref, ids, mask)
    t_float = time.perf_counter() - t0
    timing[f"float64 reference pass with probes ({len(ts.sentences)} sentences)"] = t_float
    bar.step("float64 pass done")
    evals = []
    for cfg, nl in runs:
        label = f"{cfg}/{nl}"
        t0 = time.perf_counter()
        model = mi.IntMiniLM(cfg, nl, max_len=max_len) if max_len != mi.model_max_len() \
            else mi.load_int_minilm(cfg, nl)  # cached: the golden suite reuses it
        model.embed(ts.sentences[:1])  # warm-up (numba kernels load), so the timed pass is the pass itself
        bar.step(f"{label}: quantized")

        def prog(stage: str, step: int, label: str = label) -> None:
            if stage == "layer":
                bar.step(f"{label}: integer layer {step + 1}/{L}")

        ev = mi.evaluate(model, ts.sentences, progress=prog, probe=probe)
        ev.float_seconds = t_float
        evals.append(ev)
        timing[f"{label}: quantization, warm-up and integer pass"] = time.perf_counter() - t0
    full = args.sentences is None
    chk = mr.checks(evals, ts, gemm_ok, full)
    if not args.no_report:
        t0 = time.perf_counter()
        command = (f"intsim demo --config {args.config} --nonlinear {args.nonlinear}"
                   + (f" --sentences {args.sentences}" if args.sentences is not None else "")
                   + (f" --max-len {args.max_len}" if args.max_len is not None else "")
                   + (" --text FILE" if args.text else "") + (" --no-golden" if args.no_golden else "")
                   + (" --no-plots" if args.no_plots else ""))  # not --out: the data do not depend on it
        mr.write_report(Path(args.out), evals, ts, chk, not args.no_golden, command, calib, truncated,
                        plots=not args.no_plots)
        timing["report and golden suite"] = time.perf_counter() - t0
        bar.step(f"report written to {args.out}")
    bar.close()
    timing["total"] = time.perf_counter() - t_all
    _summary(evals, ts, chk, out, args, timing)
    return 1 if any(status == "FAIL" for _, status in chk) else 0


def _summary(evals: list[Any], ts: Any, chk: list[tuple[str, str]], out: TextIO, args: argparse.Namespace,
             timing: dict[str, float]) -> None:
    from . import minilm_report as mr

    names = ts.names()
    counts = ", ".join(f"{len(ts.index(n))} {n}" for n in names)
    print(f"integer MiniLM vs float64 on {len(ts.sentences)} sentences ({counts}); cosine mean / min per set:",
          file=out)
    print(f"  {'configuration':<14} {'nonlinear':<16} " + " ".join(f"{n:>17}" for n in names)
          + f" {'overflows':>9}  integer pass", file=out)
    for ev in evals:
        cells = " ".join(f"{st['mean']:>8.5f} {st['min']:>8.5f}" for st in (mr.set_stats(ev, ts, n) for n in names))
        print(f"  {ev.config.name:<14} {ev.nonlinear:<16} {cells} {sum(o.count for o in ev.forward.overflows):>9}"
              f"  {ev.int_seconds:.2f} s (float64 pass {ev.float_seconds:.2f} s)", file=out)
    for what, status in chk:
        print(f"  {status}: {what}", file=out)
    if not args.no_report:
        print(f"reports written to {args.out}/ (README.md, CSV tables, layer_errors.png"
              f"{', golden/' if not args.no_golden else ''})", file=out)
    print("timings: " + "; ".join(f"{k} {v:.1f} s" for k, v in timing.items()), file=out)
