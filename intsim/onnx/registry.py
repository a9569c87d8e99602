"""The operator table of :mod:`intsim.onnx`: one function per ``(domain, op_type)``.

An operator function takes a :class:`NodeContext` and the node's input arrays (``None`` for an
omitted optional input) and returns the list of its output arrays. :data:`OPS` maps
``(domain, op_type)`` to the function (the default ONNX domain is ``""``; ``"ai.onnx"`` is read
as ``""``); :func:`supported_ops` lists them as ``domain:op_type`` strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ConfigError, DTypeError, ShapeError
from ..core.opcounts import OpCounts
from ..hw.datapath import Datapath

__all__ = ["NodeContext", "GemmRecord", "GemmOutcome", "GemmFunc", "KernelTrace", "OPS", "register", "supported_ops",
           "MS_DOMAIN"]

#: the domain of ONNX Runtime's contrib operators
MS_DOMAIN = "com.microsoft"


@dataclass
class GemmRecord:
    """One integer GEMM node run on the emulated datapath: the node, the shapes, intsim's engine,
    how many outputs overflowed the accumulator (wrapped, as an int32 register does, unless a
    what-if run chose another policy), the first overflow as (batch index, row, column, k step)
    (None without one), the op counts of every product and the multiply-accumulates the
    multipliers ran (more than ``M*K*N*count`` under IM-Unpack)."""

    node: str
    op_type: str
    shape: tuple[int, int, int]  # (M, K, N) of every 2-D product (the batch is ``count``)
    count: int
    method: str
    n_overflow: int
    first_overflow: tuple[int, int, int, int] | None = None
    ops: OpCounts = field(default_factory=OpCounts)
    low_bit_macs: int = 0


@dataclass
class GemmOutcome:
    """What one 2-D integer product returned (see :data:`GemmFunc`): the int64 ``values`` (M, N),
    the engine, the outputs that overflowed, the op counts, the first overflow (row, column, k
    step) and the multiply-accumulates run."""

    values: np.ndarray
    method: str
    n_overflow: int
    ops: OpCounts
    first_overflow: tuple[int, int, int] | None
    macs: int


@dataclass
class KernelTrace:
    """One integer kernel a node ran, kept for golden vectors (``run_model(..., trace=True)``):
    ``kind`` ``matmul`` (arrays ``A``, ``B``, ``C``: the zero-point-free operands and the int64
    accumulator values) or ``requantize`` (arrays ``x``, ``y`` and the ``config`` of
    :func:`intsim.requantize`), the node, its op_type and the index of the 2-D product."""

    kind: str
    node: str
    op_type: str
    index: int
    arrays: dict[str, np.ndarray]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeContext:
    """What an operator function knows about its node: the ``NodeProto``, its attributes as
    Python values, the model's opset of the default domain, the datapath of integer GEMMs, the
    list every integer GEMM is recorded in and the names of the graph's constant initializers."""

    node: Any
    attrs: dict[str, Any]
    opset: int
    datapath: Datapath
    gemms: list[GemmRecord] = field(default_factory=list)
    constants: frozenset[str] = frozenset()
    gemm: GemmFunc | None = None
    trace: list[KernelTrace] | None = None
    #: the zero points of the node's integer GEMM as :func:`~intsim.onnx.qops.int_matmul` got them
    #: (A's: a scalar; B's: a scalar or one per column), with the raw operands' dtypes, for a
    #: what-if GEMM that works on the raw operands (VPMADDUBSW); None before the GEMM
    zero_points: tuple[int, np.ndarray, np.dtype, np.dtype] | None = None

    def is_constant(self, i: int) -> bool:
        """Whether input ``i`` is a constant initializer of the graph (an initializer that is not
        also a graph input), which ONNX Runtime may pre-pack (float ``MatMul``'s B, for one)."""
        return i < len(self.node.input) and self.node.input[i] in self.constants

    @property
    def where(self) -> str:
        n = self.node
        dom = n.domain or "ai.onnx"
        return f"node {n.name or '(unnamed)'!r} ({dom}:{n.op_type})"

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def need(self, inputs: Sequence[Any], i: int, what: str) -> np.ndarray:
        """Input ``i`` (named ``what``), a ShapeError-free ConfigError if it is absent."""
        if i >= len(inputs) or inputs[i] is None:
            raise ConfigError(f"{self.where}: required input {i} ({what}) is missing")
        return inputs[i]

    def shape_error(self, msg: str) -> ShapeError:
        return ShapeError(f"{self.where}: {msg}")

    def dtype_error(self, msg: str) -> DTypeError:
        return DTypeError(f"{self.where}: {msg}")


OpFunc = Callable[[NodeContext, list], list]
#: a replacement for the 2-D integer product of every GEMM node (what-if runs): ``(ctx, A, B)``
#: with int64 zero-point-free operands -> :class:`GemmOutcome`
GemmFunc = Callable[["NodeContext", np.ndarray, np.ndarray], GemmOutcome]

#: (domain, op_type) -> operator function
OPS: dict[tuple[str, str], OpFunc] = {}


def register(*op_types: str, domain: str = "") -> Callable[[OpFunc], OpFunc]:
    """Decorator: register the function under every ``op_type`` of ``domain``."""

    def deco(fn: OpFunc) -> OpFunc:
        for op in op_types:
            OPS[(domain, op)] = fn
        return fn

    return deco


def supported_ops() -> list[str]:
    """Every supported operator as ``domain:op_type`` (``ai.onnx`` for the default domain), sorted."""
    return sorted(f"{d or 'ai.onnx'}:{o}" for d, o in OPS)
