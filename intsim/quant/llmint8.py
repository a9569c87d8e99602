"""LLM.int8() on the emulated datapath: vector-wise absmax int8 with 16-bit outlier columns.

LLM.int8() (Dettmers, Lewis, Belkada, Zettlemoyer, NeurIPS 2022) multiplies
``A (M x K) @ B (K x N)`` in two parts:

* **outlier feature columns**: the inner indices k where some ``|A[i, k]| >= threshold``
  (6.0). Those columns of A and rows of B are multiplied on a wider path (fp16 in
  the paper). intsim emulates that path in integers: vector-wise absmax quantization
  to ``outlier_bits`` (16) bits and an ``outlier_bits x outlier_bits`` datapath with a
  64-bit accumulator.
* **the rest**: vector-wise absmax quantization to ``bits`` (8) bits, one scale per row
  of A and per column of B, ``q = round(x * qmax / absmax)`` with ``qmax = 2**(bits-1) - 1``,
  round half to even, the product in float64 (:func:`intsim.quant.quantizers.quantize_rtn` with
  ``levels = 2 * qmax``, ``percentile = 1``). An all-zero row or column quantizes to 0.
  The integer GEMM runs on an int8 x int8 datapath with a 32-bit accumulator.

Each part is dequantized as ``acc[i, j] / (scale_a[i] * scale_b[j])`` in float64 and
the two are added. Like the paper, the method is lossy: its result approximates the
float product, unlike IM-Unpack, which is exact on its integers.

**Work ratio**, comparable with IM-Unpack's unpack ratio at ``bits``: the low-bit
GEMM work in ``bits x bits`` MACs over ``M * K * N``. A ``2b x 2b`` product is four
``b x b`` partial products, so an outlier column costs ``(outlier_bits / bits)**2``
(4) times a regular one: ``ratio = (K - n_out + 4 * n_out) / K``.

>>> import numpy as np
>>> A = np.array([[1.0, 8.0], [-2.0, 0.5]]); B = np.array([[0.5, 1.0], [1.0, -1.0]])
>>> r = llm_int8_matmul(A, B)
>>> r.outlier_columns.tolist(), r.work_ratio, bool(np.allclose(r.values, A @ B, rtol=1e-2))
([1], 2.5, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..core.arrays import short_repr
from ..core.errors import ConfigError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..hw.datapath import Datapath, as_datapath
from ..hw.gemm import GemmResult, matmul
from ..regs.registers import RegisterEvent
from .quantizers import as_real_array, quantize_rtn

__all__ = ["LLMInt8Result", "llm_int8_matmul", "outlier_columns", "DEQUANT_BITS"]

#: Width at which the float dequantization multiplies and the final adds are counted.
DEQUANT_BITS = 32


def outlier_columns(A: Any, threshold: float = 6.0) -> np.ndarray:
    """Inner indices k with some ``|A[i, k]| >= threshold`` (int64, ascending).

    >>> outlier_columns(np.array([[0.0, 6.0, -7.0], [1.0, 0.0, 5.9]])).tolist()
    [1, 2]
    """
    arr = as_real_array(A, "A")
    if arr.ndim != 2:
        raise ShapeError(f"A must be a 2-D matrix, got shape {arr.shape}")
    t = _check_threshold(threshold)
    return np.flatnonzero((np.abs(arr) >= t).any(axis=0)).astype(np.int64)


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise ConfigError(f"threshold must be a positive number, got {short_repr(threshold)}")
    t = float(threshold)
    if not 0 < t < np.inf:
        raise ConfigError(f"threshold must be a positive finite number, got {t}")
    return t


@dataclass(frozen=True)
class LLMInt8Result:
    """The outcome of :func:`llm_int8_matmul`.

    ``values`` float64 (M, N) approximates ``A @ B``; ``outlier_columns`` the inner
    indices on the wide path; ``regular``/``outlier`` the two integer GEMMs (None when
    a part is empty); ``ops`` both GEMMs plus the dequantization (two multiplies per
    output and part) and, with outliers, one add per output, at :data:`DEQUANT_BITS`;
    ``events``/``overflowed`` the overflow report shared with the operators' results.
    """

    values: np.ndarray
    outlier_columns: np.ndarray
    regular: GemmResult | None
    outlier: GemmResult | None
    ops: OpCounts
    shape: tuple[int, int, int]
    bits: int
    outlier_bits: int
    threshold: float
    datapath: Datapath = field(repr=False)
    outlier_datapath: Datapath = field(repr=False)

    @property
    def events(self) -> tuple[RegisterEvent, ...]:
        """The :attr:`GemmResult.events <intsim.hw.gemm.GemmResult.events>` of the regular GEMM,
        then of the outlier GEMM, as op ``"llm_int8_matmul"`` with the step prefixed by the part
        (``"regular.acc"``, ``"outlier.tree"``, ...). Both GEMMs have the (M, N) outputs of
        ``A @ B``, so ``index`` is (i, j) of the result; ``count``, ``value`` and the width and
        policy are the GEMM's. Empty with the default datapaths (their policy is ``raise``).

        >>> from intsim import Datapath, IntType
        >>> dp = Datapath(IntType(8), IntType(8), acc_bits=16, overflow="saturate")
        >>> r = llm_int8_matmul(np.ones((2, 4)), np.ones((4, 3)), datapath=dp)
        >>> [(e.step, e.bits, e.count, e.index, e.value, e.policy) for e in r.events], r.overflowed
        ([('regular.acc', 16, 6, (0, 0), 48387, 'saturate')], True)
        """
        return tuple(replace(e, op="llm_int8_matmul", step=f"{part}.{e.step}")
                     for part, g in (("regular", self.regular), ("outlier", self.outlier)) if g is not None
                     for e in g.events)

    @property
    def overflowed(self) -> bool:
        """True when a register of either GEMM overflowed (``events`` is not empty)."""
        return any(g is not None and g.overflowed for g in (self.regular, self.outlier))

    @property
    def n_outliers(self) -> int:
        """Number of outlier feature columns."""
        return int(self.outlier_columns.size)

    @property
    def outlier_share(self) -> float:
        """Share of the inner dimension on the wide path (0.0 if K = 0)."""
        return self.n_outliers / self.shape[1] if self.shape[1] else 0.0

    @property
    def work_ratio(self) -> float:
        """``(K - n + w * n) / K`` with ``w = (outlier_bits / bits)**2`` (see the module docs)."""
        K = self.shape[1]
        if K == 0:
            return 1.0
        w = (self.outlier_bits / self.bits) ** 2
        return (K - self.n_outliers + w * self.n_outliers) / K


def _part(A: np.ndarray, B: np.ndarray, bits: int, dp: Datapath) -> tuple[np.ndarray, GemmResult]:
    qmax = (1 << (bits - 1)) - 1
    qa = quantize_rtn(A, 2 * qmax, 1.0, "row")
    qb = quantize_rtn(B, 2 * qmax, 1.0, "col")
    g = matmul(qa.values, qb.values, dp)
    return g.values / (qa.scale * qb.scale), g


def llm_int8_matmul(A: Any, B: Any, *, threshold: float = 6.0, bits: int = 8, outlier_bits: int | None = None,
                    datapath: Datapath | None = None, outlier_datapath: Datapath | None = None) -> LLMInt8Result:
    """LLM.int8() ``A @ B`` of float matrices (see the module docs for the exact semantics).

    Parameters
    ----------
    A, B:
        Real matrices (M, K) and (K, N), read by :func:`intsim.quant.quantizers.as_real_array`
        (``np.matrix`` and unmasked masked arrays as their data, lists element by
        element); NaN/Inf refused.
    threshold:
        outlier magnitude, 6.0 in the paper; a column of A is an outlier column if any
        ``|A[i, k]| >= threshold``.
    bits, outlier_bits:
        widths of the regular and the outlier path (8 and ``2 * bits``).
    datapath, outlier_datapath:
        default ``Datapath(IntType(bits), IntType(bits), acc_bits=32)`` and
        ``Datapath(IntType(outlier_bits), IntType(outlier_bits), acc_bits=64)``, both
        ``overflow="raise"``.
    """
    for name, v in (("bits", bits), ("outlier_bits", outlier_bits)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 2 <= int(v) <= 32):
            raise ConfigError(f"{name} must be an integer from 2 to 32, got {short_repr(v)}")
    bits = int(bits)
    obits = 2 * bits if outlier_bits is None else int(outlier_bits)
    if obits > 32:
        raise ConfigError(f"outlier_bits must be at most 32 (the datapath limit), got {obits}")
    a = as_real_array(A, "A")
    b = as_real_array(B, "B")
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"A and B must be 2-D matrices, got shapes {a.shape} and {b.shape}")
    M, K = a.shape
    K2, N = b.shape
    if K != K2:
        raise ShapeError(f"inner dimensions differ: A is {M}x{K} (M x K) but B is {K2}x{N} (K x N)")
    t = _check_threshold(threshold)
    dp = (as_datapath(datapath, "datapath") if datapath is not None
          else Datapath(IntType(bits), IntType(bits), acc_bits=32))
    odp = (as_datapath(outlier_datapath, "outlier_datapath") if outlier_datapath is not None
           else Datapath(IntType(obits), IntType(obits), acc_bits=64))
    for name, d, w in (("datapath", dp, bits), ("outlier_datapath", odp, obits)):
        if not (d.a.signed and d.b.signed and d.a.bits >= w and d.b.bits >= w):
            raise ConfigError(f"{name} ({d.describe()}) cannot hold signed {w}-bit operands")
    out = np.flatnonzero((np.abs(a) >= t).any(axis=0)).astype(np.int64)
    keep = np.setdiff1d(np.arange(K, dtype=np.int64), out)
    values = np.zeros((M, N), np.float64)
    ops = OpCounts()
    regular = outlier = None
    if keep.size:
        v, regular = _part(a[:, keep], b[keep], bits, dp)
        values += v
        ops += regular.ops
        ops.add("mul", (DEQUANT_BITS, DEQUANT_BITS), 2 * M * N)
    if out.size:
        v, outlier = _part(a[:, out], b[out], obits, odp)
        values += v
        ops += outlier.ops
        ops.add("mul", (DEQUANT_BITS, DEQUANT_BITS), 2 * M * N)
        if keep.size:
            ops.add("add", (DEQUANT_BITS,), M * N)
    return LLMInt8Result(values, out, regular, outlier, ops, (M, K, N), bits, obits, t, dp, odp)
