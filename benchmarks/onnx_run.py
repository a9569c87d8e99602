"""``intsim onnx run`` against ONNX Runtime on the quantized all-MiniLM-L6-v2, in one run.

Usage:  python benchmarks/onnx_run.py [--sentences N] [--repeat R] [--threads T]

The real MiniLM graph (intsim.onnx.minilm.minilm_onnx) is quantized by onnxruntime.quantization in
three forms (quantize_dynamic with uint8 weights; quantize_static QOperator with uint8 activations;
quantize_static QDQ with int8 activations and per-channel int8 weights) and run on N sentences
(default 32) of intsim_reference.sentences by

* ONNX Runtime (CPU execution provider, default optimizations, ``--threads`` intra-op threads:
  default 1, the setting intsim reproduces bit for bit), and
* intsim (``intsim.onnx.run_model`` on the graph ONNX Runtime's optimizations produce, as
  ``intsim onnx run`` runs it without a what-if: every integer GEMM on the emulated datapath, every
  float operator as ONNX Runtime computes it).

Both outputs are checked to be bit-identical; times are the best of R runs (default 3) after a
warm-up. Acceptance: intsim at most 10 times ONNX Runtime's time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import best_time  # noqa: E402

FORMS = {
    "dynamic-u8": {"form": "dynamic", "weight_type": "u8"},
    "qoperator-u8": {"form": "qoperator", "activation_type": "u8", "weight_type": "s8"},
    "qdq-s8-per-channel": {"form": "qdq", "activation_type": "s8", "weight_type": "s8", "per_channel": True},
}


def main() -> None:
    import onnxruntime as ort

    from intsim.onnx import run_model
    from intsim.onnx.minilm import minilm_feeds, minilm_onnx, quantize_minilm
    from intsim.onnx.whatif import optimized_model
    from intsim_reference.sentences import SENTENCES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime's intra-op threads (default 1)")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"onnxruntime {ort.__version__}", flush=True)
    feeds = minilm_feeds(list(SENTENCES[:args.sentences]))
    print(f"{args.sentences} sentences, batch x tokens = {feeds['input_ids'].shape}")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="intsim-bench-onnx-") as d:
        fp = minilm_onnx(Path(d) / "minilm.onnx")
        for name, kw in FORMS.items():
            qp = quantize_minilm(fp, Path(d) / f"{name}.onnx", **kw)
            model = optimized_model(qp)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.log_severity_level = 3
            sess = ort.InferenceSession(str(qp), so, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            ref = sess.run(names, feeds)
            mine = run_model(model, feeds, keep=False).outputs
            same = all(np.array_equal(mine[n].view(np.uint32), r.view(np.uint32))
                       for n, r in zip(names, ref, strict=True))
            t_ort = best_time(lambda s=sess, n=names: s.run(n, feeds), args.repeat)
            t_int = best_time(lambda m=model: run_model(m, feeds, keep=False), args.repeat)
            worst = max(worst, t_int / t_ort)
            print(f"  {name:20s} ONNX Runtime {t_ort * 1e3:8.1f} ms   intsim {t_int * 1e3:8.1f} ms   "
                  f"ratio {t_int / t_ort:5.1f}x   outputs bit-identical: {same}", flush=True)
    print(f"largest ratio {worst:.1f}x (acceptance: at most 10x)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
