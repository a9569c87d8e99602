"""ONNX Runtime and intsim side by side: every graph output (and intermediate tensor) bit for bit.

:func:`check_against_ort` runs a model in ONNX Runtime (CPU execution provider) and in intsim on
the same feeds, in one of two modes:

``disabled``
    ONNX Runtime with ``ORT_DISABLE_ALL``: it runs the graph as written, node for node, so the
    two runs compute the same tensors and every intermediate tensor can be compared too (it is
    exposed by adding it to the graph outputs of the copy ONNX Runtime runs).
``enabled``
    ONNX Runtime with its default optimizations (``ORT_ENABLE_ALL``), which fuse node groups
    (``DynamicQuantizeLinear + MatMulInteger + Mul`` becomes ``DynamicQuantizeMatMul``, for
    instance). The optimized graph ONNX Runtime really runs is saved
    (``SessionOptions.optimized_model_filepath``) and intsim executes that graph; the graph
    outputs of the optimized session are the reference. Intermediate tensors of the optimized
    graph are exposed by running the saved graph again with ``ORT_DISABLE_ALL``.

ONNX Runtime runs with :data:`~intsim.onnx.sgemm.SGEMM_THREADS` intra-op threads (one): MLAS splits
a float GEMM among its threads and the split decides how the K dimension is cut into the slices
whose partial sums it adds, so the thread count is part of what intsim reproduces (the integer
kernels and the elementwise float kernels do not depend on it).

QDQ graphs. With optimizations enabled ONNX Runtime fuses ``DequantizeLinear -> op ->
QuantizeLinear`` groups into integer kernels (``QLinearMatMul``, ``QLinearAdd``, ``QLinearMul``,
``QLinearSoftmax``, ``QLinearSigmoid``, ``QLinearConcat``...), which intsim runs bit for bit
(:mod:`intsim.onnx.qops`); groups it does not fuse (with int8 activations the linear layers of a
transformer stay float ``MatMul`` s) and, with optimizations disabled, every group compute the
operator in float32 on dequantized values. A float ``MatMul`` there is MLAS's SGEMM, which
intsim repeats operation for operation (:mod:`intsim.onnx.sgemm`), as it repeats ONNX Runtime's
other float kernels (:mod:`intsim.onnx.mlas`: Softmax, Erf, Tanh, LayerNormalization, GELU...).

A tensor matches when dtype, shape and every bit are equal. Graph outputs and integer
intermediate tensors decide the verdict; float intermediate tensors are reported with the
largest ULP distance (:func:`ulp_distance`) and do not decide it: the few float operators intsim
does not reproduce bit for bit (``Gemm``/``FusedGemm`` with numpy's summation order, float64 and
float16 inputs; :mod:`intsim.onnx.fops` lists them) show there, node by node, and fail the check
as soon as a difference reaches an output or crosses a quantization step (an integer tensor then
differs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ModelNotInstalledError
from ..hw.datapath import Datapath
from .graph import RunResult, run_model
from .load import check_feeds, import_onnx, load_model
from .registry import GemmRecord
from .sgemm import SGEMM_THREADS

__all__ = ["TensorComparison", "CheckReport", "check_against_ort", "ulp_distance", "OPTIMIZATION_MODES",
           "run_ort"]

OPTIMIZATION_MODES = ("disabled", "enabled")


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise distance in units in the last place between two float32 (or float64) arrays of one
    shape: the number of representable values between them (0 for equal values, ``+0`` and ``-0``
    included); int64. NaNs are not ordered: a NaN entry gives the largest int64."""
    a, b = np.asarray(a), np.asarray(b)
    it = {4: np.int32, 8: np.int64}[a.dtype.itemsize]
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    top = np.int64(np.iinfo(it).max)
    ka = np.where(ia < 0, -(ia & top), ia)
    kb = np.where(ib < 0, -(ib & top), ib)
    with np.errstate(over="ignore"):
        d = np.abs(ka - kb)
    return np.where(np.isnan(a) | np.isnan(b), np.iinfo(np.int64).max, d)


@dataclass
class TensorComparison:
    """One tensor of both runs: ``kind`` is ``output`` or ``intermediate``; ``n_mismatch`` the
    entries whose bits differ (all of them when dtype or shape differ), ``first`` the index of the
    first (row-major) and the two values there; ``max_ulp`` the largest ULP distance (float
    tensors of equal shape), ``decides`` whether it counts in the verdict."""

    name: str
    kind: str
    dtype: str
    shape: tuple[int, ...]
    size: int
    n_mismatch: int
    first: tuple[int, ...] | None = None
    intsim_value: Any = None
    ort_value: Any = None
    max_ulp: int | None = None
    note: str = ""

    @property
    def decides(self) -> bool:
        return self.kind == "output" or np.dtype(self.dtype).kind in "iub"

    @property
    def ok(self) -> bool:
        return self.n_mismatch == 0


@dataclass
class CheckReport:
    """The comparison of one mode (``disabled`` or ``enabled``)."""

    model: str
    mode: str
    tensors: list[TensorComparison] = field(default_factory=list)
    gemms: list[GemmRecord] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every deciding tensor (graph outputs, integer intermediates) is bit-identical."""
        return all(t.ok for t in self.tensors if t.decides)

    def table(self, *, all_rows: bool = False) -> str:
        """A plain-text table: every mismatching tensor (every tensor with ``all_rows``)."""
        rows = [t for t in self.tensors if all_rows or not t.ok]
        head = (f"{self.model} [ORT optimizations {self.mode}]: {sum(t.ok for t in self.tensors)}/"
                f"{len(self.tensors)} tensors bit-identical; verdict {'PASS' if self.ok else 'FAIL'} "
                f"(graph ops: {', '.join(self.ops)})")
        if not rows:
            return head
        cols = ("tensor", "kind", "dtype", "shape", "mismatches", "first at", "intsim", "ORT", "max ULP")
        body = [(t.name, t.kind + ("" if t.decides else " (info)"), t.dtype, "x".join(map(str, t.shape)) or "()",
                 f"{t.n_mismatch}/{t.size}", "" if t.first is None else str(t.first),
                 "" if t.intsim_value is None else repr(t.intsim_value),
                 "" if t.ort_value is None else repr(t.ort_value),
                 "" if t.max_ulp is None else str(t.max_ulp)) for t in rows]
        w = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(cols)]
        line = lambda r: "  ".join(s.ljust(w[i]) for i, s in enumerate(r)).rstrip()  # noqa: E731
        return "\n".join([head, line(cols), line(tuple("-" * n for n in w)), *map(line, body)])


def _scalar(x: np.ndarray) -> Any:
    return x.item() if x.dtype.kind in "fiub" else str(x)


def compare(name: str, kind: str, mine: np.ndarray, ref: np.ndarray) -> TensorComparison:
    """Compare intsim's tensor ``mine`` with ONNX Runtime's ``ref`` bit for bit."""
    mine, ref = np.asarray(mine), np.asarray(ref)
    if mine.dtype != ref.dtype or mine.shape != ref.shape:
        return TensorComparison(name, kind, str(ref.dtype), tuple(ref.shape), int(ref.size), int(ref.size),
                                note=f"intsim gives {mine.dtype} {tuple(mine.shape)}")
    if mine.dtype.kind == "f":
        it = np.dtype(f"u{mine.dtype.itemsize}")
        diff = mine.view(it) != ref.view(it)
    else:
        diff = mine != ref
    n = int(np.count_nonzero(diff))
    tc = TensorComparison(name, kind, str(ref.dtype), tuple(ref.shape), int(ref.size), n)
    if mine.dtype.kind == "f" and mine.dtype.itemsize in (4, 8) and mine.size:
        tc.max_ulp = int(ulp_distance(mine, ref).max())
    if n:
        i = int(np.flatnonzero(diff.reshape(-1))[0])
        tc.first = tuple(int(j) for j in np.unravel_index(i, ref.shape)) if ref.ndim else ()
        tc.intsim_value = _scalar(mine.reshape(-1)[i])
        tc.ort_value = _scalar(ref.reshape(-1)[i])
    return tc


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelNotInstalledError("onnxruntime is not installed: pip install 'intsim[onnx]'") from None
    return onnxruntime


def run_ort(model: Any, feeds: Mapping[str, np.ndarray], *, optimization: str = "disabled",
            extra_outputs: Mapping[str, np.dtype] | None = None,
            optimized_path: str | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` (a ``ModelProto``) in ONNX Runtime's CPU execution provider; returns every
    graph output (and every ``extra_outputs`` tensor, added to the graph outputs of a copy)."""
    ort = _ort()
    onnx = import_onnx()
    if optimization not in OPTIMIZATION_MODES:
        raise ConfigError(f"unknown optimization mode {optimization!r}; valid: {', '.join(OPTIMIZATION_MODES)}")
    m = model
    if extra_outputs:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        have = {o.name for o in m.graph.output}
        for name, dt in extra_outputs.items():
            if name not in have:
                elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt))
                m.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if optimization == "disabled"
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    so.log_severity_level = 3
    so.intra_op_num_threads = SGEMM_THREADS  # MLAS's float GEMM cuts K by its thread split: pin it
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, dict(feeds))
    except Exception as exc:  # onnxruntime's own exception types are not importable by a stable name
        raise ConfigError(f"ONNX Runtime could not run the model: {str(exc).strip().splitlines()[0]}") from None
    return dict(zip(names, values, strict=True))


def _compare_all(model_name: str, mode: str, model: Any, mine: RunResult, ref_out: Mapping[str, np.ndarray],
                 ref_mid: Mapping[str, np.ndarray]) -> CheckReport:
    rep = CheckReport(model_name, mode, gemms=list(mine.gemms),
                      ops=sorted({f"{n.op_type}" for n in model.graph.node}))
    for o in model.graph.output:
        rep.tensors.append(compare(o.name, "output", mine.outputs[o.name], ref_out[o.name]))
    outs = {o.name for o in model.graph.output}
    for name, value in mine.tensors.items():
        if name not in outs and name in ref_mid:
            rep.tensors.append(compare(name, "intermediate", value, ref_mid[name]))
    return rep


def check_against_ort(model_path: str | os.PathLike[str], feeds: Mapping[str, Any], *,
                      optimization: str = "disabled", intermediates: bool = True,
                      datapath: Datapath | None = None) -> CheckReport:
    """Run the model at ``model_path`` in ONNX Runtime and in intsim on ``feeds`` and compare them
    (see the module docstring for the two ``optimization`` modes). Raises FileFormatError,
    ConfigError, DTypeError or ShapeError for a bad model or bad feeds (naming the input), and
    ConfigError for an operator intsim does not support (naming the node)."""
    if optimization not in OPTIMIZATION_MODES:
        raise ConfigError(f"unknown optimization mode {optimization!r}; valid: {', '.join(OPTIMIZATION_MODES)}")
    model = load_model(model_path)
    arrays = check_feeds(model, feeds)
    name = Path(model_path).name
    if optimization == "disabled":
        mine = run_model(model, arrays, datapath=datapath)
        extra = {k: v.dtype for k, v in mine.tensors.items()} if intermediates else {}
        ref = run_ort(model, arrays, optimization="disabled", extra_outputs=extra)
        return _compare_all(name, "disabled", model, mine, ref, ref)
    with tempfile.TemporaryDirectory(prefix="intsim-onnx-") as tmp:
        opt_path = os.path.join(tmp, "optimized.onnx")
        ref = run_ort(model, arrays, optimization="enabled", optimized_path=opt_path)
        optimized = load_model(opt_path, check=False)  # ORT's own graph: contrib ops, internal domains
    mine = run_model(optimized, arrays, datapath=datapath)
    mid: dict[str, np.ndarray] = {}
    if intermediates:
        extra = {k: v.dtype for k, v in mine.tensors.items()}
        mid = run_ort(optimized, arrays, optimization="disabled", extra_outputs=extra)
    return _compare_all(name, "enabled", optimized, mine, ref, mid)
