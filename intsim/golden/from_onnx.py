"""Golden vectors from a quantized ONNX model: one case per integer kernel the model runs.

:func:`suite_from_onnx` runs the model with :func:`intsim.onnx.run_model` (by default the graph
ONNX Runtime's default optimizations produce, as ``intsim onnx check`` and ``intsim onnx run``
do), records the integer kernels every node ran, and writes a golden suite
(:mod:`intsim.golden.suite`) with one case per kernel, its inputs taken from the run:

* every 2-D product of an integer GEMM node (``MatMulInteger``, ``QLinearMatMul``,
  ``DynamicQuantizeMatMul``, ``MatMulIntegerToFloat``, ``QGemm``...): a ``matmul`` case of the
  zero-point-free operands (``A - a_zero_point``, ``B - b_zero_point``, as ONNX defines the
  product), a 32-bit accumulator that wraps (ONNX Runtime's int32); each operand declared as
  the narrowest of ``int8``, ``uint8``, ``int9``, ``int16``, ``int32`` that holds its values;
* the requantization of a ``QLinearMatMul``: a ``requantize`` case in mode ``ort_fp32`` with the
  node's float32 multiplier ``a_scale * b_scale / y_scale`` (per column for a per-column
  ``b_scale``), its zero point and output type, the accumulator as input.

Batched products (attention) give one case per batch slice up to ``max_slices`` per node
(default 1: the first slice). Cases are named ``<node>_<slice>_matmul`` and
``<node>_<slice>_requant`` (characters outside ``[A-Za-z0-9_.-]`` become ``_``). The suite's
``spec.toml`` names the input files as they were written beside it while generating
(``inputs/<case>_<input>.npy``); the suite stores every input itself, so ``intsim golden verify``
and ``intsim golden compare`` work on it unchanged. After writing, every case's outputs are
compared with the tensors of the model run (a mismatch is an internal error, never silent).

>>> from intsim.golden.from_onnx import suite_from_onnx
>>> suite_from_onnx("model_q.onnx", {"x": x}, "golden_q").cases  # doctest: +SKIP
12
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.inttype import IntType
from .spec import spec_from_dict
from .suite import GenerateReport, generate_suite, load_suite

__all__ = ["suite_from_onnx", "kernel_cases"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TYPES = (IntType(8), IntType(8, signed=False), IntType(9), IntType(16), IntType(32))


def _type_of(x: np.ndarray) -> str:
    lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
    for t in _TYPES:
        if t.min <= lo and hi <= t.max:
            return t.name
    raise ConfigError(f"integer GEMM operand values [{lo}, {hi}] do not fit int32")  # pragma: no cover


def _case_name(node: str, index: int, kind: str, taken: set[str]) -> str:
    base = _UNSAFE.sub("_", node or "node").lstrip("_.-") or "node"
    name = f"{base[:80]}_{index}_{kind}"
    n = 2
    while name in taken:
        name = f"{base[:76]}_{index}_{kind}{n}"
        n += 1
    taken.add(name)
    return name


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not np.isfinite(v):
            raise ConfigError(f"a requantization scale is not finite: {v}")
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {type(v).__name__}")  # pragma: no cover


def _toml(doc: Mapping[str, Any]) -> str:
    lines = ["# golden suite written by intsim golden from-onnx", "", "[suite]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in doc["suite"].items()]
    for case in doc["case"]:
        lines += ["", "[[case]]"] + [f"{k} = {_toml_value(v)}" for k, v in case.items()]
    return "\n".join(lines) + "\n"


def kernel_cases(trace: list, *, max_slices: int = 1) -> tuple[list[dict[str, Any]], dict[str, np.ndarray],
                                                                dict[str, dict[str, np.ndarray]]]:
    """The cases of a model run's kernel trace (:attr:`intsim.onnx.RunResult.trace`): case tables
    (as a spec's ``[[case]]``), the input arrays to write (relative path -> array), and the
    outputs each case must reproduce (case -> output name -> array)."""
    cases: list[dict[str, Any]] = []
    files: dict[str, np.ndarray] = {}
    expect: dict[str, dict[str, np.ndarray]] = {}
    taken: set[str] = set()
    for t in trace:
        if t.index >= max_slices:
            continue
        if t.kind == "matmul":
            A, B, C = t.arrays["A"], t.arrays["B"], t.arrays["C"]
            name = _case_name(t.node, t.index, "matmul", taken)
            fa, fb = f"inputs/{name}_A.npy", f"inputs/{name}_B.npy"
            files[fa], files[fb] = A, B
            cases.append({"name": name, "operator": "matmul",
                          "description": f"{t.op_type} node {t.node!r}, product {t.index}",
                          "shape": {"M": int(A.shape[0]), "K": int(A.shape[1]), "N": int(B.shape[1])},
                          "config": {"a": _type_of(A), "b": _type_of(B), "acc_bits": 32, "overflow": "wrap"},
                          "inputs": {"A": {"file": fa}, "B": {"file": fb}}})
            expect[name] = {"C": C}
        elif t.kind == "requantize":
            x, y = t.arrays["x"], t.arrays["y"]
            name = _case_name(t.node, t.index, "requant", taken)
            fx = f"inputs/{name}_x.npy"
            files[fx] = x
            scale = t.config["scale"]
            cases.append({"name": name, "operator": "requantize",
                          "description": f"{t.op_type} node {t.node!r}, product {t.index}: requantization",
                          "shape": {"x": [int(d) for d in x.shape]},
                          "config": {"scale": [float(s) for s in scale] if np.ndim(scale) else float(scale),
                                     "mode": t.config["mode"], "out": t.config["out"],
                                     "in_type": t.config["in_type"], "zero_point": int(t.config["zero_point"]),
                                     "overflow": "wrap"},
                          "inputs": {"x": {"file": fx}}})
            expect[name] = {"y": y}
    return cases, files, expect


def suite_from_onnx(model: str | os.PathLike[str], feeds: Mapping[str, Any], out: str | os.PathLike[str], *,
                    optimization: str = "enabled", max_slices: int = 1, force: bool = False,
                    name: str | None = None) -> GenerateReport:
    """Write the golden suite of the quantized model at ``model`` run on ``feeds`` to ``out`` (see
    the module docs); returns what :func:`~intsim.golden.suite.generate_suite` wrote. ConfigError
    when the model runs no integer kernel."""
    from ..onnx import load_model, run_model
    from ..onnx.whatif import optimized_model

    if optimization not in ("enabled", "disabled"):
        raise ConfigError(f"optimization must be 'enabled' or 'disabled', got {optimization!r}")
    if not isinstance(max_slices, int) or max_slices < 1:
        raise ConfigError(f"max_slices must be a positive integer, got {max_slices!r}")
    m = optimized_model(model) if optimization == "enabled" else load_model(model)
    res = run_model(m, feeds, keep=False, trace=True)
    cases, files, expect = kernel_cases(res.trace, max_slices=max_slices)
    if not cases:
        raise ConfigError(f"{model}: the model runs no integer GEMM; nothing to write")
    stem = name or _UNSAFE.sub("_", Path(model).stem)[:60] or "model"
    doc = {"suite": {"name": f"{stem}-onnx", "seed": 0,
                     "description": f"integer kernels of {Path(model).name} on the given feeds "
                                    f"(ONNX Runtime optimizations {optimization}), written by intsim golden "
                                    "from-onnx"},
           "case": cases}
    text = _toml(doc)
    with tempfile.TemporaryDirectory(prefix="intsim-from-onnx-") as tmp:
        for rel, arr in files.items():
            p = Path(tmp) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, np.ascontiguousarray(arr))
        spec = spec_from_dict(doc, source=f"{Path(model).name} (from-onnx)", text=text.encode(), base=tmp)
        rep = generate_suite(spec, out, force=force)
    suite = load_suite(out)
    for case in suite.cases:
        for decl, npy, hx in case.of_role("output"):
            want = expect[case.name][decl.name]
            got = suite.tensor(decl, npy, hx)
            if got.shape != want.shape or not np.array_equal(got.astype(np.int64), want.astype(np.int64)):
                raise RuntimeError(f"internal check failed: case {case.name!r} output {decl.name} differs from "
                                   "the model run")  # pragma: no cover - would be an intsim bug
    return rep
