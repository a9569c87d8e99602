"""Running an ONNX graph: topological order, tensors by name, one operator function per node.

:func:`run_model` executes a model's main graph on the given feeds and returns a
:class:`RunResult`: the graph outputs, every tensor the nodes produced (by name), and the
record of every integer GEMM run on the emulated datapath. Nodes run in a topological order
(Kahn's algorithm, ties kept in file order); a node whose ``(domain, op_type)`` intsim does
not implement raises :class:`~intsim.core.errors.ConfigError` naming the node, its op_type and
domain and listing every supported operator, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ConfigError, FileFormatError
from ..core.inttype import IntType
from ..hw.datapath import Datapath
from . import conv as _conv  # noqa: F401  (registers convolution and pooling)
from . import fops as _fops  # noqa: F401  (registers the float operators)
from . import qops as _qops  # noqa: F401  (registers the quantized operators)
from . import spatial as _spatial  # noqa: F401  (registers Pad and Resize)
from .load import check_feeds, import_onnx
from .registry import OPS, GemmFunc, GemmRecord, KernelTrace, NodeContext, OpFunc, supported_ops

__all__ = ["RunResult", "run_model", "default_datapath", "topological_order", "check_supported"]


def default_datapath() -> Datapath:
    """The datapath of every integer GEMM: 9-bit signed operands (8-bit values less their zero
    point), a 32-bit accumulator that wraps (an int32 register), products in ascending k."""
    return Datapath(a=IntType(9), b=IntType(9), acc_bits=32, overflow="wrap")


@dataclass
class RunResult:
    """The result of :func:`run_model`."""

    outputs: dict[str, np.ndarray]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    gemms: list[GemmRecord] = field(default_factory=list)
    trace: list[KernelTrace] = field(default_factory=list)

    @property
    def n_overflow(self) -> int:
        """Outputs of integer GEMMs whose int32 accumulator wrapped."""
        return sum(g.n_overflow for g in self.gemms)


def _domain(d: str) -> str:
    return "" if d in ("", "ai.onnx") else d


def check_supported(model: Any, extra: Mapping[tuple[str, str], Any] | None = None) -> None:
    """ConfigError naming the first node whose operator intsim does not implement (nor ``extra``)."""
    for node in model.graph.node:
        key = (_domain(node.domain), node.op_type)
        if key not in OPS and key not in (extra or {}):
            raise ConfigError(
                f"node {node.name or '(unnamed)'!r}: operator {node.op_type!r} of domain "
                f"{node.domain or 'ai.onnx'!r} is not supported by intsim.onnx; supported: "
                + ", ".join(supported_ops()))


def topological_order(model: Any, available: set[str]) -> list[Any]:
    """The nodes in an order where every input is produced before it is read (FileFormatError
    for an input no node, initializer or graph input provides, or a cycle)."""
    nodes = list(model.graph.node)
    producers = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    for n in nodes:
        for name in n.input:
            if name and name not in available and name not in producers:
                raise FileFormatError(f"node {n.name or '(unnamed)'!r} ({n.op_type}) reads {name!r}, which no "
                                      "node, initializer or graph input provides")
    deps = [{producers[x] for x in n.input if x and x not in available and x in producers} for n in nodes]
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    count = [len(d) for d in deps]
    ready = [i for i, c in enumerate(count) if c == 0]
    order: list[int] = []
    import heapq

    heapq.heapify(ready)
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            count[u] -= 1
            if count[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        stuck = nodes[next(i for i, c in enumerate(count) if c > 0)]
        raise FileFormatError(f"the graph has a cycle through node {stuck.name or '(unnamed)'!r} ({stuck.op_type})")
    return [nodes[i] for i in order]


def _attrs(node: Any) -> dict[str, Any]:
    onnx = import_onnx()
    from onnx import numpy_helper

    out = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.TENSOR:
            out[a.name] = numpy_helper.to_array(a.t)
        elif a.type == onnx.AttributeProto.GRAPH:
            raise ConfigError(f"node {node.name or '(unnamed)'!r} ({node.op_type}) has a subgraph attribute "
                              f"{a.name!r}; control flow is not supported")
        else:
            v = onnx.helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _opset(model: Any) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def run_model(model: Any, feeds: Mapping[str, Any], *, datapath: Datapath | None = None,
              keep: bool = True, gemm: GemmFunc | None = None,
              overrides: Mapping[tuple[str, str], OpFunc] | None = None, trace: bool = False) -> RunResult:
    """Run ``model`` (an ``onnx.ModelProto``, e.g. from :func:`~intsim.onnx.load.load_model`) on
    ``feeds`` (input name -> array, checked by :func:`~intsim.onnx.load.check_feeds`).

    Integer GEMMs run on ``datapath`` (default :func:`default_datapath`). With ``keep=True``
    (default) every tensor a node produced stays in :attr:`RunResult.tensors`. Each operator
    function learns which of its inputs are constant initializers (``NodeContext.constants``:
    initializers that are not graph inputs), as ONNX Runtime pre-packs such a float GEMM operand.

    What-if runs (:mod:`intsim.onnx.whatif`): ``gemm`` replaces the 2-D product of every integer
    GEMM node (:data:`~intsim.onnx.registry.GemmFunc`), ``overrides`` replaces the function of
    some ``(domain, op_type)`` (e.g. an integer-only Softmax). ``trace=True`` keeps every integer
    kernel's operands and results in :attr:`RunResult.trace` (for golden vectors).
    """
    from onnx import numpy_helper

    check_supported(model, overrides)
    arrays = check_feeds(model, feeds)
    env: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env.update(arrays)
    dp = datapath if datapath is not None else default_datapath()
    opset = _opset(model)
    gemms: list[GemmRecord] = []
    kernels: list[KernelTrace] | None = [] if trace else None
    produced: dict[str, np.ndarray] = {}
    constants = frozenset(t.name for t in model.graph.initializer) - {i.name for i in model.graph.input}
    for node in topological_order(model, set(env)):
        ctx = NodeContext(node, _attrs(node), opset, dp, gemms, constants, gemm, kernels)
        inputs = [env[name] if name else None for name in node.input]
        key = (_domain(node.domain), node.op_type)
        outs = (overrides[key] if overrides and key in overrides else OPS[key])(ctx, inputs)
        for name, value in zip(node.output, outs, strict=False):
            if name:
                arr = np.asarray(value)
                env[name] = arr
                if keep:
                    produced[name] = arr
    missing = [o.name for o in model.graph.output if o.name not in env]
    if missing:
        raise FileFormatError(f"graph output {missing[0]!r} is produced by no node")
    return RunResult({o.name: env[o.name] for o in model.graph.output}, produced, gemms, kernels or [])
