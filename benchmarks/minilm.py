"""Integer-only MiniLM against the float64 reference, and the wall time of `intsim demo`, in one run.

Usage:  python benchmarks/minilm.py [--repeat N] [--configs w8a8 ...] [--nonlinear ibert] [--skip-demo]

1. The integer-only forward pass (intsim.models.minilm, configuration w8a8 with the I-BERT
   non-linear operators unless --configs / --nonlinear say otherwise) and the float64 reference pass
   (intsim_reference.minilm.MiniLMReference.forward) on the same sentences, one after the other
   in this process, at the model's 256-token limit (--max-len), for three sets: 32 sentences of
   reference/sentences.py (10 to 18 tokens), the evaluation set (reference/evaluation.py, 116
   sentences of 1 to 256 tokens), and 16 long inputs of twenty-four consecutive test sentences
   each (truncated at the limit: 256 tokens).
   The integer time covers the whole integer pass: the embedding output, its quantization,
   the six integer encoder layers and the integer pooling. Model loading, calibration and
   quantization are not timed; one warm-up call of each pass runs first (numba kernels load
   or compile there). Times are the minimum over --repeat runs. Acceptance: integer / float
   at most 20.
2. `python -m intsim demo --out <temporary directory>` in a fresh process, timed from the
   outside (wall clock, model loading and everything included). Acceptance: at most 120 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import best_time  # noqa: E402

from intsim.models import minilm as mi  # noqa: E402
from intsim_reference.evaluation import evaluation_sentences  # noqa: E402
from intsim_reference.sentences import SENTENCES  # noqa: E402


def compare(label: str, sentences: list[str], args: argparse.Namespace) -> bool:
    """Time the integer and the float64 pass on ``sentences``; True if every ratio is at most 20."""
    max_len = args.max_len or mi.model_max_len()
    ids, mask = mi.tokenize_sentences(sentences, max_len)
    print(f"{label}: {len(sentences)} sentences, {int(mask.sum())} tokens, {ids.shape[1]} at most "
          f"(max_len {max_len})")
    ok = True
    for name in args.configs:
        model = mi.load_int_minilm(name, args.nonlinear) if args.max_len is None else \
            mi.IntMiniLM(name, args.nonlinear, max_len=args.max_len)
        ref = model.reference

        def float_pass(ref=ref) -> None:
            ref.forward(ids, mask)

        def int_pass(model=model) -> None:
            x, lens = model.embedding_output(sentences)
            model.model.forward(model.model.quantize_input(x), lens)

        t_float = best_time(float_pass, args.repeat)  # each after one warm-up call
        t_int = best_time(int_pass, args.repeat)
        ratio = t_int / t_float
        ok &= ratio <= 20
        print(f"  {name}/{args.nonlinear}: integer pass {t_int:.2f} s, float64 pass {t_float:.2f} s, "
              f"ratio {ratio:.1f}x (acceptance <= 20x: {'PASS' if ratio <= 20 else 'FAIL'})")
    return ok


def time_demo() -> bool:
    """Run ``intsim demo`` with its default options in a fresh process; True if it passes within 120 s."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "intsim", "demo", "--out", str(Path(tmp) / "minilm")],
                           cwd=ROOT, capture_output=True, text=True)
        dt = time.perf_counter() - t0
    ok = r.returncode == 0 and dt <= 120
    print(f"intsim demo (default options, fresh process): {dt:.1f} s wall, exit status {r.returncode} "
          f"(acceptance <= 120 s: {'PASS' if ok else 'FAIL'})")
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:], sep="\n")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per pass (default 3; the minimum is kept)")
    ap.add_argument("--configs", nargs="+", default=["w8a8"], choices=list(mi.CONFIGURATIONS),
                    help="integer configurations to time (default: w8a8)")
    ap.add_argument("--nonlinear", default="ibert", choices=list(mi.NONLINEAR),
                    help="family of integer softmax/GELU/LayerNorm operators (default: ibert)")
    ap.add_argument("--profile", dest="nonlinear", default=argparse.SUPPRESS, choices=list(mi.NONLINEAR),
                    help=argparse.SUPPRESS)  # the old name of --nonlinear
    ap.add_argument("--max-len", type=int, default=None, help="token limit (default: the model's, 256)")
    ap.add_argument("--skip-demo", action="store_true", help="do not time `intsim demo`")
    args = ap.parse_args()

    short = list(SENTENCES[:32])
    long = [" ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(24)) for i in range(16)]
    ok = compare("test sentences", short, args)
    ok &= compare("evaluation set", list(evaluation_sentences()), args)
    ok &= compare("long inputs", long, args)
    if not args.skip_demo:
        ok &= time_demo()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
