"""The quantized parameters of the integer MiniLM: dyadic requantizations (:class:`Requant`),
integer linear layers (:class:`QLinear`) and one encoder layer's parameters (:class:`QLayer`),
with the fixed register widths of the integer pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.dyadic import Dyadic
from ...core.errors import ConfigError
from ...core.inttype import IntType

__all__ = ["LN_OUT_BITS", "WIDE_BITS", "DYN_BITS", "GELU_OUT_BITS", "mantissa_bits", "nearest_dyadic", "Requant",
           "QLinear", "QLayer"]

LN_OUT_BITS = 40  #: LayerNorm output (|y| <= 2**30) plus the integer beta bias
WIDE_BITS = 16  #: DI-MatMul: a linear input before its per-token quantization
DYN_BITS = 48  #: DI-MatMul: the register of (u @ w) * R + qm * p_min * colsum + bias
GELU_OUT_BITS = 32  #: the GELU output register of every non-linear family


def mantissa_bits(in_bits: int) -> int:
    """Multiplier mantissa bits so every product ``x * m`` of an ``in_bits`` input stays below 2**63."""
    return max(8, min(31, 63 - in_bits))


def nearest_dyadic(v: float, bits: int, where: str) -> Dyadic:
    """The dyadic ``m / 2**k`` nearest ``v`` (ties to even) with the largest ``k <= 62`` such that
    ``|m| < 2**bits`` (the result of ``Dyadic.from_float(v, bits, "half_even", 62)``, computed
    directly: ``v * 2**k`` is exact in float64, and Python's ``round`` rounds a float half to even).

    A ratio below ``2**-63`` (a dead LayerNorm channel, gamma about 1e-33) keeps the smallest
    nonzero multiplier ``+-1 / 2**62``: every output of that channel rounds to 0, as the real
    value does.
    """
    _, e = math.frexp(v)
    k = min(62, bits - e)
    if k < 0:
        raise ConfigError(f"requantization {where}: the scale ratio {v!r} needs more than {bits} bits")
    m = round(math.ldexp(v, k))
    if abs(m) >= 1 << bits:  # rounded up to 2**bits
        k -= 1
        m = round(math.ldexp(v, k))
    if m == 0:
        return Dyadic(1 if v > 0 else -1, 62)
    return Dyadic(int(m), int(k))


@dataclass(frozen=True)
class Requant:
    """A static dyadic requantization ``sat_out(round_half_even(x * m / 2**k))``, per tensor
    (one Dyadic) or per channel along the last axis (a tuple of Dyadics)."""

    name: str
    scale: Dyadic | tuple[Dyadic, ...]
    in_type: IntType
    out: IntType

    @classmethod
    def build(cls, name: str, ratio: Any, in_type: IntType, out: IntType) -> Requant:
        """From the real ratio ``s_in / s_out`` (a float or one float per channel); the
        mantissas have ``min(31, 63 - in_type.bits)`` bits (see :func:`nearest_dyadic`).

        >>> Requant.build("r", 0.5, IntType(32), IntType(8)).scale
        Dyadic(m=1073741824, k=31)
        >>> [d.k for d in Requant.build("r", [0.5, 0.25], IntType(40), IntType(8)).scale]
        [23, 24]
        """
        mb = mantissa_bits(in_type.bits)
        r = np.asarray(ratio, dtype=np.float64)
        if not np.all(np.isfinite(r)) or np.any(r == 0):
            raise ConfigError(f"requantization {name}: the scale ratio must be finite and nonzero")
        if r.ndim == 0:
            return cls(name, nearest_dyadic(float(r), mb, name), in_type, out)
        return cls(name, tuple(nearest_dyadic(float(v), mb, name) for v in r.reshape(-1)), in_type, out)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(m, k)`` as int64 arrays (one entry per channel, or one)."""
        ds = self.scale if isinstance(self.scale, tuple) else (self.scale,)
        return (np.array([d.m for d in ds], dtype=np.int64), np.array([d.k for d in ds], dtype=np.int64))


@dataclass(frozen=True)
class QLinear:
    """A quantized linear layer ``x @ W.T + b`` in integers.

    ``w`` is ``W.T`` (``[in, out]``) with per-output-channel symmetric scales ``w_scale``
    and ``bias`` the int64 bias at ``s_x * w_scale[c]``. For ``llm_int8``: ``w16`` / ``bias16``
    are the 16-bit weights and bias (bias at ``s_x * w16_scale[c]``), ``tau`` the
    integer outlier threshold on the input, ``combine`` the dyadic factor that moves the
    per-token int8 part onto the 16-bit part's scale.

    Per-token dynamic inputs (``qm > 0``, the I-LLM family's DI-MatMul): the input arrives as
    16-bit integers at the per-tensor step ``x_scale`` and is quantized per token to
    ``u = round_half_even((x - p_min) * qm / R)`` in ``[0, qm]`` (``qm = 2**A - 1``, ``R`` the
    row's range). The layer's integer result is the 48-bit
    ``T = (u @ w) * R + qm * p_min * colsum + bias`` at ``x_scale * w_scale[c] / qm``, where
    ``colsum[c] = sum_k w[k, c]`` and ``bias`` is at that scale.
    """

    name: str
    w: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray
    w16: np.ndarray | None = None
    w16_scale: np.ndarray | None = None
    bias16: np.ndarray | None = None
    tau: int = 0
    combine: Dyadic | None = None
    qm: int = 0
    colsum: np.ndarray | None = None
    x_scale: float = 0.0

    def out_scale(self, s_x: float) -> np.ndarray:
        """Real scale per output channel of the integer result for an input at ``s_x``."""
        s = s_x * (self.w16_scale if self.w16_scale is not None else self.w_scale)
        return s / self.qm if self.qm else s


@dataclass(frozen=True)
class QLayer:
    """One encoder layer's integer parameters and static requantizations.

    ``softmax_scale`` (the real step of the attention scores, ``s_q s_k / sqrt(d)``) and
    ``gelu_scale`` (the real step of the GELU input) are the two configuration constants
    the non-linear operators derive their integer constants from. ``ln1_scale``/``ln2_scale``
    (per channel), ``s_in``/``s_out`` (residual stream in and out), ``alphas`` (the
    smoothing strengths) and ``margins`` (the static activation margins) describe the integers;
    the integer pass does not read them.
    """

    index: int
    q: QLinear
    k: QLinear
    v: QLinear
    o: QLinear
    up: QLinear
    down: QLinear
    rq_in: Requant
    rq_q: Requant
    rq_k: Requant
    rq_v: Requant
    rq_ctx: Requant
    rq_res1_o: Requant
    rq_res1_x: Requant
    ln1_bias: np.ndarray
    ln1_shift: int
    rq_x1: Requant
    rq_x1r: Requant
    rq_up: Requant
    rq_act: Requant
    rq_res2_d: Requant
    rq_res2_x: Requant
    ln2_bias: np.ndarray
    ln2_shift: int
    rq_out: Requant
    softmax_scale: float
    gelu_scale: float
    ln1_scale: np.ndarray = field(repr=False)
    ln2_scale: np.ndarray = field(repr=False)
    s_in: float
    s_out: float
    alphas: tuple[tuple[str, float], ...] = ()
    margins: tuple[tuple[str, float], ...] = ()

    def requants(self) -> list[Requant]:
        """The layer's requantizations in the order of the integer pass."""
        return [self.rq_in, self.rq_q, self.rq_k, self.rq_v, self.rq_ctx, self.rq_res1_o, self.rq_res1_x,
                self.rq_x1, self.rq_x1r, self.rq_up, self.rq_act, self.rq_res2_d, self.rq_res2_x, self.rq_out]
