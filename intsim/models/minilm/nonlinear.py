"""The integer non-linear operators of the MiniLM pass: one adapter per family of integer
softmax, GELU and LayerNorm (:class:`Nonlinear`): I-BERT, I-ViT and I-LLM, each in its published and,
where it has one, its corrected form (:data:`NONLINEAR`).

>>> available_nonlinear()
['ibert', 'ibert-corrected', 'ivit', 'ivit-corrected', 'illm']
>>> get_nonlinear("ibert").description
'I-BERT (intsim.ops.ibert): softmax corrected, i-GELU published, IntLayerNorm published'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ...core.deprecation import renamed_keyword
from ...core.errors import ConfigError
from ...core.inttype import IntType
from ...ops import ibert
from ...regs.opresult import OpResult

__all__ = ["Nonlinear", "IBertNonlinear", "IViTNonlinear", "ILLMNonlinear", "NONLINEAR", "DEFAULT_NONLINEAR",
           "get_nonlinear", "available_nonlinear"]


class Nonlinear:
    """The integer softmax, GELU and LayerNorm of one operator family.

    An adapter maps the three operators onto its module and states their output
    scales, so quantization can fold them into the next dyadic requantization:

    * ``softmax(x, scale, out_bits)``: ``x`` int (``acc`` bits) along the last axis at
      real step ``scale``; returns unsigned integers in ``[0, 2**out_bits - 1]`` at
      ``softmax_scale(out_bits)``;
    * ``gelu(x, scale, in_bits)``: element-wise; returns integers at ``gelu_scale(scale)``
      (I-BERT's published scale is negative);
    * ``layernorm(x, in_bits, shift)``: over the last axis, without the affine part;
      returns integers at the scalar ``layernorm_scale(D)`` (gamma and beta are folded
      in by the caller: ``beta`` as an integer bias, ``gamma`` into the next requantization).

    Each returns an :class:`~intsim.regs.opresult.OpResult` (values, op counts, registers).
    ``layernorm_shift(max_var)`` gives the variance pre-shift the family needs for a
    calibrated maximum variance (0 if it has no 32-bit variance register).
    """

    name: str = ""
    description: str = ""
    #: True when the family quantizes the linear layers' inputs per token at run time
    #: (I-LLM's DI-MatMul); see :class:`ILLMNonlinear`.
    dynamic_tokens: bool = False

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        raise NotImplementedError  # pragma: no cover

    def softmax_scale(self, out_bits: int) -> float:
        raise NotImplementedError  # pragma: no cover

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        raise NotImplementedError  # pragma: no cover

    def gelu_scale(self, scale: float) -> float:
        raise NotImplementedError  # pragma: no cover

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        raise NotImplementedError  # pragma: no cover

    def layernorm_scale(self, D: int) -> float:
        raise NotImplementedError  # pragma: no cover

    def layernorm_shift(self, max_var: float) -> int:
        return 0


class IBertNonlinear(Nonlinear):
    """I-BERT's operators (:mod:`intsim.ops.ibert`).

    ``variant="published"`` (``ibert``): i-GELU and IntLayerNorm as published
    (negative GELU scale, 32-bit variance register with a calibrated pre-shift); the
    softmax is the ``corrected`` one in both variants, because the published output
    reaches ``2**out_bit`` and would need a 9-bit multiplier operand. ``variant="corrected"``
    (``ibert-corrected``): all three operators in :mod:`intsim.ops.ibert`'s corrected form.

    >>> p = IBertNonlinear()
    >>> p.softmax_scale(8), round(p.layernorm_scale(384) * 2**30, 4)
    (0.00390625, 19.5959)
    """

    def __init__(self, variant: str = "published") -> None:
        if variant not in ("published", "corrected"):
            raise ConfigError(f"IBertNonlinear variant must be 'published' or 'corrected', got {variant!r}")
        self.variant = variant
        self.name = "ibert" if variant == "published" else "ibert-corrected"
        self.description = (f"I-BERT (intsim.ops.ibert): softmax corrected, i-GELU {variant}, "
                            f"IntLayerNorm {variant}")

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        return ibert.softmax(x, scale, variant="corrected", out_bit=out_bits, in_type=IntType(in_bits),
                             overflow=overflow)

    def softmax_scale(self, out_bits: int) -> float:
        return 2.0 ** -out_bits

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        return ibert.gelu(x, scale, variant=self.variant, in_type=IntType(in_bits), overflow=overflow)

    def gelu_scale(self, scale: float) -> float:
        return float(ibert.gelu_constants(scale, self.variant)["scale_out"])

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        return ibert.layernorm(x, 1.0, variant=self.variant, shift=shift, in_type=IntType(in_bits),
                               overflow=overflow)

    def layernorm_scale(self, D: int) -> float:
        return math.sqrt(D) / 2 ** 30

    def layernorm_shift(self, max_var: float) -> int:
        if self.variant == "corrected":
            return 0
        s = 0
        while max_var > 2.0 ** (32 + 2 * s):
            s += 1
        return s


class IViTNonlinear(Nonlinear):
    """I-ViT's operators (:mod:`intsim.ops.ivit`): Shiftmax, ShiftGELU, I-LayerNorm.

    ``variant="pytorch"`` (``ivit``): the PyTorch modules as published: Shiftmax
    (n = 15) with ``out_bit = prob_bits + 1`` (outputs in ``[0, 2**prob_bits)`` at
    ``2**-prob_bits``), ShiftGELU with its 8-bit sigmoid (n = 23) and the maximum over the
    hidden row, I-LayerNorm with the 10-step square root. With MiniLM's FFN rows (maxima
    up to about 25) ``e**(x - max)`` and ``e**-max`` both fall below shift-exp's ``2**-23``
    floor for most of the row, which then gets a sigmoid of 1/2: the published ShiftGELU is
    far off here. ``variant="corrected"`` (``ivit-corrected``): the corrected
    operators; ShiftGELU with a 16-bit sigmoid, evaluated on rows of one element (the
    maximum is then the element itself, which keeps both exponentials in range).

    >>> p = IViTNonlinear()
    >>> p.softmax_scale(8), p.gelu_scale(0.5)
    (0.00390625, 0.00390625)
    """

    def __init__(self, variant: str = "pytorch") -> None:
        from ...ops import ivit

        if variant not in ("pytorch", "corrected"):
            raise ConfigError(f"IViTNonlinear variant must be 'pytorch' or 'corrected', got {variant!r}")
        self.ivit = ivit
        self.variant = variant
        self.sig_bits = 8 if variant == "pytorch" else 16
        self.name = "ivit" if variant == "pytorch" else "ivit-corrected"
        self.description = (f"I-ViT (intsim.ops.ivit, {variant}): Shiftmax, ShiftGELU ({self.sig_bits}-bit sigmoid"
                            + (", maximum over the 1536 hidden channels: exp(x - max) and exp(-max) fall below "
                               "shift-exp's 2**-23 floor for most of a MiniLM FFN row, so its sigmoid is 1/2 there, "
                               "and its 8-bit sigmoid register overflows)" if variant == "pytorch" else
                               ", evaluated on rows of one element)")
                            + ", I-LayerNorm")

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        return self.ivit.shiftmax(x, scale, variant=self.variant, out_bit=out_bits + 1, in_type=IntType(in_bits),
                                  overflow=overflow)

    def softmax_scale(self, out_bits: int) -> float:
        return 2.0 ** -out_bits

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        if self.variant == "pytorch":
            return self.ivit.shiftgelu(x, scale, variant="pytorch", out_bit=self.sig_bits, in_type=IntType(in_bits),
                                       overflow=overflow)
        # rows of one element: the row maximum is the element itself (or 0), so both
        # exponentials stay within shift-exp's 2**-n range; the sigmoid is unchanged
        r = self.ivit.shiftgelu(x[..., None], scale, variant="corrected", out_bit=self.sig_bits,
                                in_type=IntType(in_bits), overflow=overflow)
        return replace(r, values=r.values[..., 0])

    def gelu_scale(self, scale: float) -> float:
        return scale / 2 ** (self.sig_bits - 1)

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        return self.ivit.layernorm(x, 1.0, variant=self.variant, in_type=IntType(in_bits), overflow=overflow)

    def layernorm_scale(self, D: int) -> float:
        return math.sqrt(D) / 2 ** 30


class ILLMNonlinear(Nonlinear):
    """I-LLM's operators (:mod:`intsim.ops.illm`, intsim's construction from the paper).

    Softmax: DI-ClippedSoftmax (clip 15, the clipped range requantized to 8 bits, DI-Exp)
    with ``out_bits = prob_bits`` (scale ``1 / (2**prob_bits - 1)``). GELU: I-LLM has no GELU
    (its FFN is SwiGLU), so GELU is the tanh form ``x * sigmoid(1.5958 (x + 0.044715 x**3))``
    (= ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))``, within 3e-4 of the erf form) with
    DI-SwiGLU's sigmoid built from DI-Exp, all in integers for a GELU input ``x`` of at most
    16 bits at scale ``S``::

        c   = round_half_even(x**3 * m / 2**k)          # (m, k) = dyadic(0.044715 S**2), 16-bit m
        z   = sat32(x + c)                               # at scale S; saturation only where e is 0
        e   = DI-Exp(-|z|, 1.5958 S)                     # exp(-|z| 1.5958 S) at 2**-15
        sig = round_half_even((z >= 0 ? 2**15 : e) * 2**15 / (2**15 + e))     # 2**-15
        out = x * sig                                    # at S * 2**-15

    (the form ``x * sigmoid(1.702 x)``, a single DI-SwiGLU call, costs the MiniLM up to 0.015 of
    cosine on one-word inputs). LayerNorm: DI-Norm (``illm.layernorm``), output at
    ``2**-16``. The operators' input scales are calibrated constants, given to them as per-row
    dyadics with I-LLM's 8-bit mantissa (DI-ClippedSoftmax then requantizes each row's clipped
    range dynamically, as the paper does).

    DI-MatMul (``dynamic_tokens``; with the ``static`` linear mode, see :class:`QLinear`): each
    linear layer's input is first requantized (static, per channel) to a 16-bit register at one
    per-tensor step ``s``, then per token by :func:`intsim.ops.illm.dynamic_requant` (the paper's
    asymmetric rule, ties to even) to ``A``-bit unsigned integers ``u`` with the row's minimum
    ``p_min`` and range ``R = p_max - p_min``: ``x ~ (u * R / (2**A - 1) + p_min) * s``. The GEMM
    runs on ``A``-bit unsigned x ``W``-bit multipliers, and the per-token scale enters the result
    as the exact integer ``R`` (I-LLM holds it as an 8-bit dyadic ``m / 2**k``; multiplying by ``R``
    costs the same one multiply per output and rounds nothing).

    >>> p = ILLMNonlinear()
    >>> p.softmax_scale(8), p.layernorm_scale(384), p.gelu_scale(2.0) == 2.0 ** -14
    (0.00392156862745098, 1.52587890625e-05, True)
    """

    SIG_BITS = 15

    def __init__(self) -> None:
        from ...ops import illm

        self.illm = illm
        self.name = "illm"
        self.dynamic_tokens = True
        self.description = ("I-LLM (intsim.ops.illm): DI-MatMul (per-token dynamic linear inputs), DI-ClippedSoftmax, "
                            "GELU in its tanh form x*sigmoid(1.5958(x+0.044715x^3)) with DI-SwiGLU's DI-Exp sigmoid, "
                            "DI-Norm")

    def softmax(self, x: np.ndarray, scale: float, out_bits: int, in_bits: int, overflow: str) -> OpResult:
        return self.illm.clipped_softmax(x, scale, out_bits=out_bits, in_type=IntType(in_bits), overflow=overflow)

    def softmax_scale(self, out_bits: int) -> float:
        return 1.0 / ((1 << out_bits) - 1)

    def gelu(self, x: np.ndarray, scale: float, in_bits: int, overflow: str) -> OpResult:
        from ...core.dyadic import Dyadic
        from ...core.opcounts import OpCounts
        from ...core.rounding import div_round

        if in_bits > 16:  # x**3 * m must stay below 2**63 (|x| < 2**15, m < 2**16)
            raise ConfigError(f"illm GELU: the input must be at most 16 bits (gelu_bits), got {in_bits}")
        xi = np.asarray(x, dtype=np.int64)
        IntType(in_bits).check(xi, "illm GELU input")
        d = Dyadic.from_float(0.044715 * scale * scale, bits=16)
        lim = np.int64(2 ** 31 - 1)  # z saturates to int32 only where exp(-|z| 1.5958 S) is 0 anyway
        z = np.clip(xi + div_round(xi * xi * xi * d.m, 1 << d.k, "half_even"), -lim, lim)
        F = Fs = self.SIG_BITS
        e = self.illm.di_exp(-np.abs(z), self.TANH_K * scale, out_frac_bits=F, in_type=IntType(32), overflow=overflow)
        one = np.int64(1) << F
        sig = div_round(np.where(z >= 0, one, e.values) << Fs, one + e.values, "half_even")  # <= 2**Fs
        out = xi * sig  # |out| < 2**(in_bits - 1 + Fs)
        n = xi.size
        b = in_bits
        ops = (e.ops + OpCounts().add("mul", (b, b), n).add("mul", (2 * b, b), n).add("mul", (3 * b, 16), n)
               .add("shift", (3 * b + 16,), n).add("add", (3 * b,), n).add("compare", (3 * b,), n)
               .add("div", (2 * F + 1,), n).add("mul", (b, Fs + 1), n))
        return replace(e, values=out, ops=ops)

    #: sqrt(2/pi) * 2: the sigmoid argument of the tanh form of GELU
    TANH_K = 2.0 * math.sqrt(2.0 / math.pi)

    def gelu_scale(self, scale: float) -> float:
        return scale * 2.0 ** -self.SIG_BITS

    def layernorm(self, x: np.ndarray, in_bits: int, shift: int, overflow: str) -> OpResult:
        return self.illm.layernorm(x, 1.0, in_type=IntType(in_bits), overflow=overflow)

    def layernorm_scale(self, D: int) -> float:
        return 2.0 ** -16


#: Non-linear family name -> factory. A factory raises ConfigError when its operators are not available.
NONLINEAR: dict[str, Callable[[], Nonlinear]] = {
    "ibert": lambda: IBertNonlinear("published"),
    "ibert-corrected": lambda: IBertNonlinear("corrected"),
    "ivit": lambda: IViTNonlinear("pytorch"),
    "ivit-corrected": lambda: IViTNonlinear("corrected"),
    "illm": ILLMNonlinear,
}
DEFAULT_NONLINEAR = "ibert"


def available_nonlinear() -> list[str]:
    """The names of :data:`NONLINEAR`, in order.

    >>> available_nonlinear()
    ['ibert', 'ibert-corrected', 'ivit', 'ivit-corrected', 'illm']
    """
    return list(NONLINEAR)


@renamed_keyword("profile", "nonlinear")
def get_nonlinear(nonlinear: Nonlinear | str) -> Nonlinear:
    """A :class:`Nonlinear` by name (:data:`NONLINEAR`), or the given one unchanged.

    >>> get_nonlinear("sigmoid")
    Traceback (most recent call last):
    ...
    intsim.core.errors.ConfigError: unknown nonlinear family 'sigmoid'; valid: ibert, ibert-corrected, ...
    """
    if isinstance(nonlinear, Nonlinear):
        return nonlinear
    if isinstance(nonlinear, str) and nonlinear in NONLINEAR:
        return NONLINEAR[nonlinear]()
    raise ConfigError(f"unknown nonlinear family {nonlinear!r}; valid: {', '.join(NONLINEAR)}")
