"""``intsim report onnx``: the real all-MiniLM-L6-v2 as a quantized ONNX model, bit for bit against
ONNX Runtime, then re-run on other datapaths.

1. The float graph is written from the model's weights (:func:`intsim.onnx.minilm.minilm_onnx`)
   and quantized with ``onnxruntime.quantization`` (:func:`intsim.onnx.minilm.quantize_minilm`:
   ``quantize_dynamic`` with uint8 weights, and ``quantize_static`` in QDQ form with int8
   activations and per-channel int8 weights, calibrated on intsim's calibration sentences).
2. Each quantized model is checked against ONNX Runtime (``intsim onnx check``, both optimization
   modes) on ``--sentences`` sentences of :mod:`intsim_reference.sentences`: tensors compared and
   bit-identical; the cosine of each sentence embedding to the float model's.
3. What-ifs (``intsim onnx run`` on the graph ONNX Runtime's default optimizations produce): every
   integer GEMM with IM-Unpack on 4-bit multipliers (row/col, 32-bit accumulators) and every
   integer GEMM on 24-bit saturating accumulators; per node, the divergence from ONNX Runtime's
   tensors and, for the graph outputs, from the float model; overflows, unpack ratios, and the
   energy of the integer operations under horowitz45.

Everything is written atomically into ``--out`` (``reports/onnx``) and is deterministic (ONNX
Runtime runs with one intra-op thread; no timings in the files).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...core.fileio import atomic_directory
from ...core.helptext import add_output_options
from .tables import csv_text, md_table

__all__ = ["add_arguments", "run", "FORMS", "WHATIFS"]

#: (name, quantize_minilm keyword arguments)
FORMS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dynamic-u8", {"form": "dynamic", "weight_type": "u8"}),
    ("qdq-s8-per-channel", {"form": "qdq", "activation_type": "s8", "weight_type": "s8", "per_channel": True}),
)
#: (name, WhatIf keyword arguments)
WHATIFS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("unpack4", {"unpack_bits": 4, "strategy_a": "row", "strategy_b": "col"}),
    ("acc24-saturate", {"acc_bits": 24, "overflow": "saturate"}),
    ("acc16-saturate", {"acc_bits": 16, "overflow": "saturate"}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim report onnx``."""
    parser.add_argument("--sentences", type=int, default=32, metavar="N",
                        help="sentences of intsim_reference.sentences to run (default: 32)")
    parser.add_argument("--profile", default="horowitz45", help="hardware profile of the energy figures")
    add_output_options(parser, out="reports/onnx")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(-1) / (np.linalg.norm(a64, axis=-1) * np.linalg.norm(b64, axis=-1))


def run(args: argparse.Namespace) -> int:
    """Write the report (see the module docs)."""
    from intsim_reference.sentences import SENTENCES

    from ...core.errors import ConfigError
    from ...onnx import check_against_ort, load_model
    from ...onnx.check import run_ort
    from ...onnx.minilm import minilm_feeds, minilm_onnx, quantize_minilm
    from ...onnx.whatif import WhatIf, optimized_model, run_whatif
    from ..onnx_whatif import whatif_tables

    if not 1 <= args.sentences <= len(SENTENCES):
        raise ConfigError(f"--sentences must be in [1, {len(SENTENCES)}], got {args.sentences}")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    sentences = list(SENTENCES[:args.sentences])
    feeds = minilm_feeds(sentences)
    check_rows, acc_rows, whatif_rows, node_rows = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="intsim-report-onnx-") as tmp:
        fp = minilm_onnx(Path(tmp) / "minilm.onnx")
        fmodel = load_model(fp)
        fref = run_ort(fmodel, feeds)["sentence_embedding"]
        for form, kw in FORMS:
            say(f"{form}: quantizing")
            qp = quantize_minilm(fp, Path(tmp) / f"{form}.onnx", **kw)
            for mode in ("disabled", "enabled"):
                say(f"{form}: intsim onnx check, ORT optimizations {mode}")
                rep = check_against_ort(qp, feeds, optimization=mode)
                check_rows.append({"form": form, "optimizations": mode, "tensors": len(rep.tensors),
                                   "bit_identical": sum(t.ok for t in rep.tensors),
                                   "integer_gemms": len(rep.gemms),
                                   "int32_overflows": sum(g.n_overflow for g in rep.gemms),
                                   "verdict": "PASS" if rep.ok and all(t.ok for t in rep.tensors) else "FAIL"})
            model = optimized_model(qp)
            for name, wkw in (("onnxruntime", {}),) + WHATIFS:
                say(f"{form}: what-if {name}")
                res = run_whatif(model, feeds, WhatIf(**wkw), float_model=fmodel)
                tabs = whatif_tables(res, args.profile)
                c = _cosines(res.run.outputs["sentence_embedding"], fref)
                if not wkw:
                    acc_rows.append({"form": form, "cosine_mean": float(c.mean()), "cosine_min": float(c.min())})
                differ = [t for t in res.against_ort if t.n_differ]
                whatif_rows.append({
                    "form": form, "what_if": name, "change": res.whatif.describe(),
                    "gemm_overflows": res.n_overflow, "unpack_ratio": res.unpack_ratio or 1.0,
                    "tensors_differing": len(differ), "tensors": len(res.against_ort),
                    "cosine_mean": float(c.mean()), "cosine_min": float(c.min()),
                    "energy_uj": float(tabs["energy"]["energy_pj"].sum()) / 1e6})
                for against, ts in (("onnxruntime", res.against_ort), ("float", res.against_float)):
                    for t in ts:
                        node_rows.append({"form": form, "what_if": name, "against": against, "tensor": t.name,
                                          "node": t.node, "op_type": t.op_type, "dtype": t.dtype, "size": t.size,
                                          "differ": t.n_differ, "max_abs": t.max_abs, "rel_rms": t.rel_rms})
    _write(args, sentences, check_rows, acc_rows, whatif_rows, node_rows)
    say(f"wrote {args.out}")
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.5f}" if abs(v) < 1000 else f"{v:.4g}"
    return str(v)


def _write(args: argparse.Namespace, sentences: list[str], check_rows: list, acc_rows: list, whatif_rows: list,
           node_rows: list) -> None:
    import onnxruntime

    def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
        return md_table(cols, [[_fmt(r[c]) for c in cols] for r in rows])

    worst: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in node_rows:
        if r["differ"] and ((r["what_if"] != "onnxruntime") == (r["against"] == "onnxruntime")):
            worst.setdefault((r["form"], r["what_if"], r["against"]), []).append(r)
    lines = ["# all-MiniLM-L6-v2 as a quantized ONNX model: bit for bit against ONNX Runtime, then on other "
             "datapaths", "",
             f"Generated by `intsim report onnx --force` (options: `--sentences {args.sentences} --profile "
             f"{args.profile}`; ONNX Runtime {onnxruntime.__version__}, one intra-op thread). Deterministic: "
             "rerunning gives the same files.", "",
             "## Quantization and settings", "",
             "- Float graph: `intsim.onnx.minilm.minilm_onnx` (the real weights, opset 17, as `torch.onnx.export` "
             "writes it); outputs `token_embeddings` and the mean-pooled `sentence_embedding`.",
             "- Forms (`onnxruntime.quantization`): " + "; ".join(f"`{f}` {kw}" for f, kw in FORMS) + ".",
             f"- Inputs: the first {len(sentences)} sentences of `intsim_reference.sentences` (disjoint from the "
             "calibration sentences), right-padded to the longest.",
             "- What-ifs run on the graph ONNX Runtime's default optimizations produce: "
             + "; ".join(f"`{n}` {kw}" for n, kw in WHATIFS) + ".", "",
             "## `intsim onnx check`: every tensor against ONNX Runtime", "",
             table(check_rows, ["form", "optimizations", "tensors", "bit_identical", "integer_gemms",
                                "int32_overflows", "verdict"]), "",
             "## Accuracy of the quantized models (as ONNX Runtime runs them)", "",
             "Cosine of each sentence embedding to the float ONNX model's.", "",
             table(acc_rows, ["form", "cosine_mean", "cosine_min"]), "",
             "## What-ifs", "",
             "`tensors_differing`: tensors of the run that differ from ONNX Runtime's (of `tensors`); cosine of "
             "the sentence embeddings to the float model's; energy of the integer operations (GEMMs) under "
             f"{args.profile}.", "",
             table(whatif_rows, ["form", "what_if", "gemm_overflows", "unpack_ratio", "tensors_differing", "tensors",
                                 "cosine_mean", "cosine_min", "energy_uj"]), ""]
    lines += ["## Divergence per node", "",
              "The quantized model as ONNX Runtime runs it against the float model (float tensors the two graphs "
              "share by name), and each what-if run against ONNX Runtime's run of the same quantized graph "
              "(`rel_rms` = ||x - ref|| / ||ref||; `max_abs` in the tensor's units, LSBs for integer tensors). "
              "The ten furthest per run; a what-if without a table here reproduces ONNX Runtime's tensors "
              "exactly. Every tensor of every run, against both references: `nodes.csv`.", ""]
    for (form, name, against), rows in worst.items():
        top = sorted(rows, key=lambda r: (-r["rel_rms"], r["tensor"]))[:10]
        what = "ONNX Runtime's" if against == "onnxruntime" else "the float model's"
        lines += [f"### {form}, {name}, against {what} ({len(rows)} tensors differ)", "",
                  table(top, ["tensor", "op_type", "dtype", "differ", "size", "max_abs", "rel_rms"]), ""]
    lines += ["## Notes", "",
              "- With int8 activations, ONNX Runtime's optimized QDQ graph keeps the linear layers as float "
              "`MatMul`s of dequantized tensors (only the attention products become `QLinearMatMul`); intsim "
              "reproduces that float arithmetic too (MLAS's SGEMM), so those layers are not integer GEMMs here.",
              "- The accuracy above is that of `onnxruntime.quantization`'s defaults on this model (static "
              "MinMax calibration per tensor for the QDQ form); intsim's own integer MiniLM (`reports/minilm`: "
              "per-token activations, GPTQ weights) keeps a cosine near 0.996 on the same sentences.", ""]
    with atomic_directory(args.out, force=args.force) as d:
        (d / "README.md").write_text("\n".join(lines), encoding="utf-8")
        (d / "check.csv").write_text(csv_text(list(check_rows[0]), [list(r.values()) for r in check_rows]),
                                     encoding="utf-8")
        (d / "whatif.csv").write_text(csv_text(list(whatif_rows[0]), [list(r.values()) for r in whatif_rows]),
                                      encoding="utf-8")
        (d / "nodes.csv").write_text(csv_text(list(node_rows[0]), [list(r.values()) for r in node_rows]),
                                     encoding="utf-8")
