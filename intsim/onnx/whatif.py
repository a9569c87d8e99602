"""What-if runs of a quantized ONNX model: other datapaths and integer-only non-linear operators.

:func:`run_whatif` runs a model (as ONNX Runtime runs it: by default the graph its default
optimizations produce, see :func:`optimized_model`) with one change, a :class:`WhatIf`:

* the accumulator of every integer GEMM: ``acc_bits`` wide under ``overflow`` (``wrap``,
  ``saturate`` or ``raise``) instead of ONNX Runtime's wrapping int32;
* ``unpack_bits``: every integer GEMM on ``b``-bit signed multipliers with IM-Unpack
  (:func:`intsim.unpack_matmul`, strategies ``strategy_a`` / ``strategy_b``; exact unless an
  accumulator overflows);
* ``vpmaddubsw``: every uint8 x int8 GEMM as MLAS computes it on x86 CPUs without VNNI
  (:meth:`intsim.Datapath.vpmaddubsw`: the raw operands' adjacent products summed with int16
  saturation, the zero points folded in after); an output counts as overflowed when one of its
  pair sums saturated (other operand types run exactly, as MLAS's kernels for them do);
* ``nonlinear``: the float non-linear operators a Transformer graph keeps (``Softmax`` over the
  last axis, ``Gelu`` of ONNX opset 20 and ONNX Runtime's ``com.microsoft`` ``Gelu`` and
  ``BiasGelu``, ``LayerNormalization`` and ``com.microsoft`` ``SkipLayerNormalization`` over the
  last axis) replaced by an integer-only family (``ibert``,
  ``ibert-corrected``, ``ivit``, ``ivit-corrected``, ``illm``: the operators of
  :mod:`intsim.models.minilm.nonlinear`). The float input is quantized per tensor to
  ``nonlinear_bits`` signed bits (step ``max|x| / (2**(bits-1) - 1)``, round half to even),
  the integer operator runs, and its output is dequantized to float32 (LayerNorm's gamma and
  beta applied in float32 after it). A decomposed GELU (``Erf`` and arithmetic) is not
  replaced: run the optimized graph, where ONNX Runtime fuses it into ``Gelu``.

The result compares every tensor with ONNX Runtime's run of the same graph (how many entries
differ, the largest difference in the tensor's own units: least significant bits for integer
tensors) and, given the float model, the float tensors both graphs name with the float model's;
it lists each integer GEMM (shape, engine, overflows with the first one's position as (product,
row, column, k step): under IM-Unpack, row and column of the unpacked operands; op counts,
unpack ratio) and each replaced operator (its op counts and register overflows).

>>> WhatIf(unpack_bits=4).describe()
'IM-Unpack on 4-bit multipliers (row/col), 32-bit wrap accumulators'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ModelNotInstalledError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.overflow import POLICIES
from ..hw.datapath import Datapath
from ..hw.gemm import matmul
from ..hw.unpack import STRATEGIES, unpack_matmul
from ..models.minilm.nonlinear import available_nonlinear, get_nonlinear
from .graph import RunResult, run_model
from .load import check_feeds, load_model
from .registry import MS_DOMAIN, GemmOutcome, NodeContext

__all__ = ["WhatIf", "WhatIfResult", "TensorDivergence", "Replacement", "run_whatif", "optimized_model",
           "OVERFLOW_CHOICES"]

F32 = np.float32
#: the accumulator policies a what-if run can ask for
OVERFLOW_CHOICES: tuple[str, ...] = ("wrap", "saturate", "raise")


@dataclass(frozen=True)
class WhatIf:
    """One change to how a quantized model runs (see the module docs). The default changes
    nothing: ONNX Runtime's arithmetic, a 32-bit accumulator that wraps."""

    acc_bits: int = 32
    overflow: str = "wrap"
    unpack_bits: int | None = None
    strategy_a: str = "row"
    strategy_b: str = "col"
    nonlinear: str | None = None
    nonlinear_bits: int = 16
    vpmaddubsw: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.acc_bits, int) or not 2 <= self.acc_bits <= 64:
            raise ConfigError(f"acc_bits must be an integer in [2, 64], got {self.acc_bits!r}")
        if self.overflow not in OVERFLOW_CHOICES or self.overflow not in POLICIES:
            raise ConfigError(f"overflow must be one of {', '.join(OVERFLOW_CHOICES)}, got {self.overflow!r}")
        if self.unpack_bits is not None and (not isinstance(self.unpack_bits, int) or not 2 <= self.unpack_bits <= 16):
            raise ConfigError(f"unpack_bits must be an integer in [2, 16] (or None), got {self.unpack_bits!r}")
        for s in (self.strategy_a, self.strategy_b):
            if s not in STRATEGIES:
                raise ConfigError(f"unknown IM-Unpack strategy {s!r}; valid: {', '.join(STRATEGIES)}")
        if self.nonlinear is not None and self.nonlinear not in available_nonlinear():
            raise ConfigError(f"unknown nonlinear family {self.nonlinear!r}; valid: "
                              f"{', '.join(available_nonlinear())}")
        if not isinstance(self.nonlinear_bits, int) or not 4 <= self.nonlinear_bits <= 24:
            raise ConfigError(f"nonlinear_bits must be an integer in [4, 24], got {self.nonlinear_bits!r}")
        if self.vpmaddubsw and (self.unpack_bits or self.acc_bits != 32):
            raise ConfigError("vpmaddubsw models ONNX Runtime's own u8 x s8 kernel (int32 accumulators): it does "
                              "not combine with unpack_bits or another acc_bits")

    def describe(self) -> str:
        """One line naming the change."""
        acc = f"{self.acc_bits}-bit {self.overflow} accumulators"
        parts = [f"IM-Unpack on {self.unpack_bits}-bit multipliers ({self.strategy_a}/{self.strategy_b}), {acc}"
                 if self.unpack_bits else
                 "uint8 x int8 GEMMs on VPMADDUBSW (int16 pair saturation; CPUs without VNNI), " + acc
                 if self.vpmaddubsw else acc]
        if self.nonlinear:
            parts.append(f"integer-only {self.nonlinear} non-linear operators ({self.nonlinear_bits}-bit inputs)")
        return ", ".join(parts)


@dataclass
class TensorDivergence:
    """One tensor of the what-if run against the reference run: ``n_differ`` entries differ,
    ``max_abs`` is the largest absolute difference (in the tensor's own units: LSBs for an
    integer tensor), ``rel_rms`` is ``||x - ref|| / ||ref||`` (float64; 0 when both are 0)."""

    name: str
    node: str
    op_type: str
    dtype: str
    size: int
    n_differ: int
    max_abs: float
    rel_rms: float


@dataclass
class Replacement:
    """A float operator replaced by an integer-only one: the node, its op_type, the family,
    its op counts and how many of its registers overflowed."""

    node: str
    op_type: str
    family: str
    ops: OpCounts
    n_register_events: int


@dataclass
class WhatIfResult:
    """The outcome of :func:`run_whatif`."""

    whatif: WhatIf
    run: RunResult
    against_ort: list[TensorDivergence] = field(default_factory=list)
    against_float: list[TensorDivergence] = field(default_factory=list)
    replacements: list[Replacement] = field(default_factory=list)

    @property
    def gemms(self) -> list:
        return self.run.gemms

    @property
    def n_overflow(self) -> int:
        """Outputs of integer GEMMs with an accumulator overflow (any low-bit GEMM for IM-Unpack)."""
        return self.run.n_overflow

    @property
    def ops(self) -> OpCounts:
        """Op counts of every integer GEMM and every replaced operator."""
        total = OpCounts()
        for g in self.run.gemms:
            total = total + g.ops
        for r in self.replacements:
            total = total + r.ops
        return total

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the model's integer GEMMs as written (before unpacking)."""
        return sum(m * k * n * c for (m, k, n), c in ((g.shape, g.count) for g in self.run.gemms))

    @property
    def unpack_ratio(self) -> float | None:
        """Low-bit MACs over the original GEMMs' MACs (None without IM-Unpack)."""
        if not self.whatif.unpack_bits or not self.run.gemms:
            return None
        low = sum(g.low_bit_macs for g in self.run.gemms)
        return low / max(1, self.macs)


def optimized_model(model_path: str | os.PathLike[str]) -> Any:
    """The graph ONNX Runtime runs for the model at ``model_path`` with its default optimizations
    (``ORT_ENABLE_ALL``, saved with ``SessionOptions.optimized_model_filepath``), as a ModelProto."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelNotInstalledError("onnxruntime is not installed: pip install 'intsim[onnx]'") from None
    model = load_model(model_path)
    with tempfile.TemporaryDirectory(prefix="intsim-onnx-") as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = path
        so.log_severity_level = 3
        try:
            ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types are not importable by a stable name
            raise ConfigError(f"ONNX Runtime could not load the model: {str(exc).strip().splitlines()[0]}") from None
        return load_model(path, check=False)


# ---------------------------------------------------------------------------------------------
# The GEMM of a what-if run
# ---------------------------------------------------------------------------------------------


def _gemm_function(w: WhatIf):
    """The function every integer GEMM of the run goes through (``NodeContext.gemm``)."""
    if w.unpack_bits:
        low = Datapath(a=IntType(w.unpack_bits), b=IntType(w.unpack_bits), acc_bits=w.acc_bits, overflow=w.overflow)

        def gemm(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> GemmOutcome:
            r = unpack_matmul(a, b, low, w.strategy_a, w.strategy_b)
            first = next((g.first_overflow for g in r.gemms if g.first_overflow is not None), None)
            values = r.values if r.values.dtype != object else _wrap64(r.values)
            return GemmOutcome(values, f"unpack{w.unpack_bits}", int(r.n_overflow), r.ops, first,
                               sum(g.shape[0] * g.shape[1] * g.shape[2] for g in r.gemms))
        return gemm

    def gemm(ctx: NodeContext, a: np.ndarray, b: np.ndarray) -> GemmOutcome:
        zps = ctx.zero_points
        if w.vpmaddubsw and zps is not None and zps[2] == np.uint8 and zps[3] == np.int8:
            za, zb = zps[0], zps[1]  # the raw operands again: the pair sums saturate on them
            r = matmul(a + za, b + zb, Datapath.vpmaddubsw(w.overflow), a_zero_point=za,
                       b_zero_point=zb if zb.ndim else int(zb))
            first = None
            bad = r.overflow | (r.tree_overflow_count > 0)
            n = int(np.count_nonzero(bad))
            if n:
                i, j = (int(v) for v in np.argwhere(bad)[0])
                first = (i, j, int(r.first_overflow_k[i, j]))
            return GemmOutcome(r.values, "vpmaddubsw", n, r.ops, first, a.shape[0] * a.shape[1] * b.shape[1])
        dp = Datapath(a=ctx.datapath.a, b=ctx.datapath.b, acc_bits=w.acc_bits, overflow=w.overflow)
        r = matmul(a, b, dp)
        first = None
        if r.n_overflow:
            i, j = map(int, np.argwhere(r.overflow)[0])
            first = (i, j, int(r.first_overflow_k[i, j]))
        return GemmOutcome(r.values, r.method, int(r.n_overflow), r.ops, first, a.shape[0] * a.shape[1] * b.shape[1])
    return gemm


def _wrap64(values: np.ndarray) -> np.ndarray:
    """Python-int results (a reassembly beyond int64) as int64 modulo 2**64; only reached when an
    overflow already made the output meaningless."""
    return np.array([[int(v) & (2**64 - 1) for v in row] for row in values], dtype=np.uint64).view(np.int64)


# ---------------------------------------------------------------------------------------------
# Integer-only replacements of the float non-linear operators
# ---------------------------------------------------------------------------------------------


def _quantize(x: np.ndarray, bits: int, where: str = "") -> tuple[np.ndarray, float]:
    """Per-tensor symmetric quantization: ``q = rint(x / s)`` (half to even) with
    ``s = max|x| / (2**(bits-1) - 1)`` (1 for an all-zero tensor); ConfigError on NaN/Inf."""
    x64 = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x64).all():
        raise ConfigError(f"{where}: an integer-only replacement got a NaN or infinite input")
    amax = float(np.abs(x64).max()) if x64.size else 0.0
    s = amax / (2 ** (bits - 1) - 1) if amax > 0 else 1.0
    return np.rint(x64 / s).astype(np.int64), s


def _last_axis(ctx: NodeContext, x: np.ndarray, attr: str, default: int) -> None:
    axis = int(ctx.attr(attr, default))
    if axis not in (-1, x.ndim - 1):
        raise ConfigError(f"{ctx.where}: the integer-only replacement works over the last axis, not axis {axis}")


def _replacements(w: WhatIf, log: list[Replacement]) -> dict[tuple[str, str], Any]:
    fam = get_nonlinear(w.nonlinear)
    bits = w.nonlinear_bits
    over = "wrap"

    def note(ctx: NodeContext, r) -> None:
        events = len(r.registers.events) if r.registers is not None else 0
        log.append(Replacement(ctx.node.name, ctx.node.op_type, fam.name, r.ops, events))

    def softmax(ctx: NodeContext, inputs: list) -> list:
        x = ctx.need(inputs, 0, "input")
        _last_axis(ctx, x, "axis", -1 if ctx.opset >= 13 else 1)
        q, s = _quantize(x, bits, ctx.where)
        r = fam.softmax(q, s, 8, bits, over)
        note(ctx, r)
        return [(np.asarray(r.values, dtype=np.float64) * fam.softmax_scale(8)).astype(F32)]

    def gelu(ctx: NodeContext, inputs: list) -> list:
        x = ctx.need(inputs, 0, "input")
        if ctx.node.domain in ("", "ai.onnx") and ctx.attr("approximate", "none") != "none":
            raise ConfigError(f"{ctx.where}: only the exact (erf) GELU can be replaced, not approximate="
                              f"{ctx.attr('approximate')!r}")
        q, s = _quantize(x, bits, ctx.where)
        r = fam.gelu(q, s, bits, over)
        note(ctx, r)
        return [(np.asarray(r.values, dtype=np.float64) * fam.gelu_scale(s)).astype(F32)]

    def layernorm(ctx: NodeContext, inputs: list) -> list:
        x = ctx.need(inputs, 0, "input")
        _last_axis(ctx, x, "axis", -1)
        gamma = ctx.need(inputs, 1, "scale")
        beta = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        q, _ = _quantize(x, bits, ctx.where)
        D = x.shape[-1]
        c = q - q.mean(axis=-1, keepdims=True)
        shift = fam.layernorm_shift(float((c.astype(np.float64) ** 2).sum(axis=-1).max()) if q.size else 0.0)
        r = fam.layernorm(q, bits, shift, over)
        note(ctx, r)
        y = (np.asarray(r.values, dtype=np.float64) * fam.layernorm_scale(D)).astype(F32) * gamma
        return [y + beta if beta is not None else y]

    def bias_gelu(ctx: NodeContext, inputs: list) -> list:
        x, bias = ctx.need(inputs, 0, "A"), ctx.need(inputs, 1, "B")
        return gelu(ctx, [(x + bias).astype(x.dtype)])

    def skip_layernorm(ctx: NodeContext, inputs: list) -> list:
        x, skip = ctx.need(inputs, 0, "input"), ctx.need(inputs, 1, "skip")
        bias = inputs[4] if len(inputs) > 4 else None
        total = x + skip if bias is None else x + skip + bias
        if any(len(ctx.node.output) > i and ctx.node.output[i] for i in (1, 2)):
            raise ConfigError(f"{ctx.where}: the integer-only replacement does not produce mean and inv_std")
        (y,) = layernorm(ctx, [total, ctx.need(inputs, 2, "gamma"), inputs[3] if len(inputs) > 3 else None])
        return [y, None, None, total]

    return {("", "Softmax"): softmax, ("", "Gelu"): gelu, (MS_DOMAIN, "Gelu"): gelu,
            (MS_DOMAIN, "BiasGelu"): bias_gelu, ("", "LayerNormalization"): layernorm,
            (MS_DOMAIN, "SkipLayerNormalization"): skip_layernorm}


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def divergence(name: str, node: str, op_type: str, x: np.ndarray, ref: np.ndarray) -> TensorDivergence:
    """How ``x`` differs from ``ref`` (same shape; see :class:`TensorDivergence`)."""
    x, ref = np.asarray(x), np.asarray(ref)
    if x.shape != ref.shape:
        return TensorDivergence(name, node, op_type, str(x.dtype), int(ref.size), int(ref.size), float("inf"),
                                float("inf"))
    a, b = x.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(a - b)
    differ = int(np.count_nonzero(x != ref))
    den = float(np.sqrt((b * b).sum()))
    num = float(np.sqrt((diff * diff).sum()))
    return TensorDivergence(name, node, op_type, str(x.dtype), int(x.size), differ,
                            float(diff.max()) if diff.size else 0.0, num / den if den else (0.0 if num == 0 else
                                                                                            float("inf")))


def run_whatif(model: Any, feeds: Mapping[str, Any], whatif: WhatIf, *, float_model: Any = None,
               datapath: Datapath | None = None, compare: bool = True) -> WhatIfResult:
    """Run ``model`` (a ModelProto, e.g. :func:`optimized_model`) on ``feeds`` with ``whatif``.

    With ``compare`` (default) every tensor is compared with ONNX Runtime's run of the same
    graph, and with ``float_model`` (a ModelProto of the float model with the same graph inputs
    and outputs) every float tensor the two graphs share by name (the graph outputs, and
    intermediate tensors the quantizer and ONNX Runtime's optimizations left their names) with
    the float model's, as ONNX Runtime computes it."""
    from .check import run_ort

    arrays = check_feeds(model, feeds)
    log: list[Replacement] = []
    overrides = _replacements(whatif, log) if whatif.nonlinear else None
    res = run_model(model, arrays, datapath=datapath, gemm=_gemm_function(whatif), overrides=overrides)
    out = WhatIfResult(whatif, res, replacements=log)
    if compare:
        producer = {o: n for n in model.graph.node for o in n.output}
        extra = {k: v.dtype for k, v in res.tensors.items()}
        ref = run_ort(model, arrays, optimization="disabled", extra_outputs=extra)
        for name, value in res.tensors.items():
            if name in ref:
                n = producer.get(name)
                out.against_ort.append(divergence(name, n.name if n is not None else "", n.op_type if n is not None
                                                  else "", value, ref[name]))
    if float_model is not None:
        float_names = {o for n in float_model.graph.node for o in n.output if o} | {
            o.name for o in float_model.graph.output}
        shared = {k: v for k, v in res.tensors.items() if k in float_names and v.dtype.kind == "f"}
        shared.update({o.name: res.outputs[o.name] for o in model.graph.output if o.name in float_names})
        fref = run_ort(float_model, check_feeds(float_model, feeds), optimization="disabled",
                       extra_outputs={k: v.dtype for k, v in shared.items()})
        producer = {o: n for n in model.graph.node for o in n.output}
        outs = {o.name for o in model.graph.output}
        for name, value in shared.items():
            if name in fref:
                n = producer.get(name)
                out.against_float.append(divergence(name, n.name if n is not None else "",
                                                    "output" if name in outs else (n.op_type if n is not None
                                                                                   else ""), value, fref[name]))
    return out
