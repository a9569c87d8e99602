"""Dyadic numbers m / 2**k: the integer form of a real scale, and the conventions
real code bases use to turn a float scale into one.

A :class:`Dyadic` is an exact rational with a power-of-two denominator: integer
hardware multiplies by ``m`` and shifts right by ``k``. Conversions from a float
scale are explicit about mantissa width and rounding:

=========================================  ============================================================
conversion                                 rule (``scale = f * 2**x`` with ``f`` in [0.5, 1), frexp)
=========================================  ============================================================
:meth:`Dyadic.from_float`                  largest ``k <= max_shift`` with ``|round(scale*2**k)|`` in
                                           ``bits`` bits; any rounding mode; exact on the float's value
:meth:`Dyadic.at_shift`                    ``m = round(scale * 2**k)`` at a given ``k`` (I-LLM's
                                           ``scale_frexp``: k = 16, ties to even)
:func:`quantize_multiplier` (TFLite)       ``q = round_half_away(f * 2**31)``; ``q == 2**31`` is
                                           renormalized to ``2**30`` with ``x + 1``; ``x < -31`` flushes
                                           to ``(0, 0)``; single-rounding builds saturate ``x > 30`` to
                                           ``(2**31 - 1, 30)``. Returns ``(q, shift=x)``: scale ~ q*2**(x-31)
:func:`ibert_frexp` (I-BERT/I-ViT/HAWQ)    ``m = round_half_away(f * 2**31)`` (``Decimal`` ROUND_HALF_UP),
                                           **no** renormalization (``m`` may be exactly ``2**31``), ``e =
                                           31 - x`` unbounded; negative scales keep their sign in ``m``
=========================================  ============================================================

All of them are computed exactly from the binary value of the float (via
:class:`fractions.Fraction`), never by float arithmetic that could round.

>>> from intsim.core.dyadic import Dyadic, quantize_multiplier, ibert_frexp
>>> d = Dyadic.from_float(0.1, bits=8)
>>> d, d.value
(Dyadic(m=205, k=11), 0.10009765625)
>>> quantize_multiplier(0.1)
(1717986918, -3)
>>> quantize_multiplier(1.0 - 2.0**-40)     # rounds to 2**31: renormalized
(1073741824, 1)
>>> ibert_frexp(1.0 - 2.0**-40)             # I-BERT keeps the 2**31 mantissa
(2147483648, 31)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import ConfigError
from .rounding import div_round, rounding_mode

__all__ = [
    "Dyadic",
    "check_scale",
    "quantize_multiplier",
    "quantize_multiplier_greater_than_one",
    "quantize_multiplier_smaller_than_one",
    "tflite_dyadic",
    "ibert_frexp",
    "ibert_dyadic",
    "ibert_scale_ratio",
]

INT32_MAX = 2**31 - 1


def check_scale(x: Any, name: str = "scale", *, allow_negative: bool = False, allow_zero: bool = False) -> float:
    """Return ``x`` as a Python float if it is a finite real scale of the allowed sign.

    Refuses, with :class:`~intsim.core.errors.ConfigError` naming ``name``: bools, strings and
    other non-numbers, NaN, +-Inf, zero (unless ``allow_zero``) and negative values
    (unless ``allow_negative``).

    >>> check_scale(0.5)
    0.5
    """
    if isinstance(x, (bool, np.bool_, str, bytes)) or not isinstance(x, (int, float, np.integer, np.floating)):
        if not (isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iuf"):
            raise ConfigError(f"{name} must be a real number, got {x!r}")
    xf = float(x)
    if math.isnan(xf):
        raise ConfigError(f"{name} is NaN; a finite positive scale is required")
    if math.isinf(xf):
        raise ConfigError(f"{name} is {xf}; a finite scale is required")
    if xf == 0 and not allow_zero:
        raise ConfigError(f"{name} is zero; a nonzero scale is required")
    if xf < 0 and not allow_negative:
        raise ConfigError(f"{name} is negative ({xf}); pass allow_negative=True if the sign is intended "
                          "(e.g. I-BERT's GELU scale)")
    return xf


@dataclass(frozen=True)
class Dyadic:
    """The exact value ``m / 2**k`` (``m`` a signed integer of any size, ``k >= 0``).

    >>> Dyadic(3, 2).value, Dyadic(-3, 2).fraction
    (0.75, Fraction(-3, 4))
    """

    m: int
    k: int

    def __post_init__(self) -> None:
        for name in ("m", "k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ConfigError(f"Dyadic {name} must be an integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.k < 0:
            raise ConfigError(f"Dyadic k (the shift) must be >= 0, got {self.k}")

    @property
    def value(self) -> float:
        """The value as a float64 (rounded to nearest only if it has more than 53 significant bits)."""
        return float(self.fraction)

    @property
    def fraction(self) -> Fraction:
        """The exact value."""
        return Fraction(self.m, 1 << self.k)

    @property
    def mantissa_bits(self) -> int:
        """Magnitude bits of ``m`` (``abs(m).bit_length()``); a signed register needs one more."""
        return abs(self.m).bit_length()

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_float(cls, x: float, bits: int = 31, rounding: str = "half_even", max_shift: int = 62) -> Dyadic:
        """The dyadic nearest ``x`` (under ``rounding``) whose ``|m|`` has at most ``bits`` bits.

        ``k`` is chosen as large as possible (at most ``max_shift``) so that
        ``round(x * 2**k)`` still fits ``bits`` magnitude bits; then ``m = round(x * 2**k)``
        computed exactly from the float's rational value. Zero gives ``Dyadic(0, 0)``; the
        sign of ``x`` is kept in ``m``. NaN, Inf and non-numbers raise ConfigError.

        >>> Dyadic.from_float(0.75, bits=4)
        Dyadic(m=12, k=4)
        """
        xf = check_scale(x, "scale", allow_negative=True, allow_zero=True)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 63:
            raise ConfigError(f"mantissa bits must be an integer from 1 to 63, got {bits!r}")
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ConfigError(f"max_shift must be an integer >= 0, got {max_shift!r}")
        mode = rounding_mode(rounding)
        q = Fraction(xf)
        if q == 0:
            return cls(0, 0)
        limit = (1 << bits) - 1
        k = max_shift
        while k > 0:
            m = div_round(q.numerator << k, q.denominator, mode)
            if abs(m) <= limit:
                break
            k -= 1
        m = div_round(q.numerator << k, q.denominator, mode)
        if abs(m) > limit:
            raise ConfigError(f"scale {xf} needs more than {bits} bits at shift 0")
        return cls(int(m), int(k))

    @classmethod
    def at_shift(cls, x: float, k: int, rounding: str = "half_even") -> Dyadic:
        """``Dyadic(round(x * 2**k), k)``: a fixed shift, the mantissa takes what it needs.

        This is I-LLM's ``scale_frexp`` (``k = 16``, ``torch.round``, ties to even).

        >>> Dyadic.at_shift(0.1, 16)
        Dyadic(m=6554, k=16)
        """
        xf = check_scale(x, "scale", allow_negative=True, allow_zero=True)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 0:
            raise ConfigError(f"shift k must be an integer >= 0, got {k!r}")
        q = Fraction(xf)
        return cls(int(div_round(q.numerator << int(k), q.denominator, rounding_mode(rounding))), int(k))

    @classmethod
    def from_tflite(cls, quantized_multiplier: int, shift: int) -> Dyadic:
        """The exact value of a TFLite ``(quantized_multiplier, shift)`` pair:
        ``quantized_multiplier * 2**(shift - 31)``.

        >>> Dyadic.from_tflite(1073741824, 0).value
        0.5
        """
        q, s = int(quantized_multiplier), int(shift)
        k = 31 - s
        if k < 0:
            return cls(q << -k, 0)
        return cls(q, k)

    # --- conversion -----------------------------------------------------------------------------
    def to_tflite(self) -> tuple[int, int]:
        """``(quantized_multiplier, shift)`` with ``quantized_multiplier`` in ``[2**30, 2**31)``
        and the same exact value (TFLite's normalized form), or ``(0, 0)`` for zero.

        Raises ConfigError for a negative ``m`` (TFLite multipliers are non-negative) and for
        a mantissa with more than 31 significant bits (it would have to be rounded).

        >>> Dyadic(1 << 31, 32).to_tflite()   # I-BERT's unnormalized mantissa for 0.5
        (1073741824, 0)
        """
        m = self.m
        if m == 0:
            return (0, 0)
        if m < 0:
            raise ConfigError(f"{self}: TFLite multipliers are non-negative")
        b = m.bit_length()
        if b <= 31:
            q = m << (31 - b)
        else:
            drop = b - 31
            if m & ((1 << drop) - 1):
                raise ConfigError(f"{self}: the mantissa has more than 31 significant bits; "
                                  "round it first (e.g. tflite_dyadic(d.value))")
            q = m >> drop
        return (q, b - self.k)

    def __float__(self) -> float:
        return self.value


# ------------------------------------------------------------------------------------------------
# TFLite
# ------------------------------------------------------------------------------------------------


def quantize_multiplier(scale: float, *, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``scale ~ quantized_multiplier * 2**(shift - 31)``.

    Exact semantics (``quantization_util.cc``)::

        f, shift = frexp(scale)                 # f in [0.5, 1)
        q = round_half_away_from_zero(f * 2**31)
        if q == 2**31: q = 2**30; shift += 1     # renormalize
        if shift < -31: q = 0; shift = 0         # flush tiny multipliers to zero
        if single_rounding and shift > 30: q = 2**31 - 1; shift = 30   # saturate

    ``scale`` must be finite and > 0 (ConfigError otherwise; TFLite itself maps 0 to
    ``(0, 0)``). Multipliers below ``2**-32`` still flush to ``(0, 0)`` as in TFLite.

    >>> quantize_multiplier(0.375), quantize_multiplier(3.0)
    ((1610612736, -1), (1610612736, 2))
    >>> quantize_multiplier(2.0**-40)
    (0, 0)
    """
    s = check_scale(scale, "scale")
    f, shift = math.frexp(s)
    fr = Fraction(f) * (1 << 31)
    q = int(div_round(fr.numerator, fr.denominator, "half_away"))
    if q == 1 << 31:
        q >>= 1
        shift += 1
    if shift < -31:
        q, shift = 0, 0
    if single_rounding and shift > 30:
        q, shift = INT32_MAX, 30
    return q, shift


def quantize_multiplier_greater_than_one(scale: float, *, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplierGreaterThanOne``: requires ``scale > 1``; returns
    ``(quantized_multiplier, left_shift)`` with ``left_shift >= 0``.

    >>> quantize_multiplier_greater_than_one(0.1 * 2**26)
    (1717986918, 23)
    """
    s = check_scale(scale, "scale")
    if not s > 1.0:
        raise ConfigError(f"QuantizeMultiplierGreaterThanOne needs a scale > 1, got {s}")
    return quantize_multiplier(s, single_rounding=single_rounding)


def quantize_multiplier_smaller_than_one(scale: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplierSmallerThanOneExp``: requires ``0 < scale < 1``; returns
    ``(quantized_multiplier, left_shift)`` with ``left_shift <= 0``.

    >>> quantize_multiplier_smaller_than_one(0.25)
    (1073741824, -1)
    """
    s = check_scale(scale, "scale")
    if not s < 1.0:
        raise ConfigError(f"QuantizeMultiplierSmallerThanOneExp needs a scale < 1, got {s}")
    return quantize_multiplier(s)


def tflite_dyadic(scale: float, *, single_rounding: bool = False) -> Dyadic:
    """:func:`quantize_multiplier` as an exact :class:`Dyadic` ``q / 2**(31 - shift)``.

    >>> tflite_dyadic(0.5)
    Dyadic(m=1073741824, k=31)
    """
    return Dyadic.from_tflite(*quantize_multiplier(scale, single_rounding=single_rounding))


# ------------------------------------------------------------------------------------------------
# I-BERT / I-ViT / HAWQ-V3
# ------------------------------------------------------------------------------------------------


def ibert_frexp(scale: float, *, allow_negative: bool = False) -> tuple[int, int]:
    """The ``batch_frexp`` convention of I-BERT, I-ViT and HAWQ-V3: ``scale ~ m / 2**e``.

    Exact semantics::

        f, x = frexp(scale)                                  # |f| in [0.5, 1)
        m = Decimal(f * 2**31).quantize(1, ROUND_HALF_UP)    # ties away from zero
        e = 31 - x

    There is no renormalization: ``m`` is exactly ``2**31`` when ``|f| >= 1 - 2**-32``
    (so it does not fit an int32), and ``e`` is unbounded (I-BERT's softmax gives e = 54
    and 60). A negative scale (I-BERT's GELU) gives a negative ``m`` when
    ``allow_negative``. ``f * 2**31`` is exact in float64, so the Decimal rounding is
    reproduced exactly by integer rounding here.

    >>> ibert_frexp(0.1)
    (1717986918, 34)
    >>> ibert_frexp(-0.1, allow_negative=True)
    (-1717986918, 34)
    """
    s = check_scale(scale, "scale", allow_negative=allow_negative)
    f, x = math.frexp(s)
    fr = Fraction(f) * (1 << 31)
    m = int(div_round(fr.numerator, fr.denominator, "half_away"))
    return m, 31 - x


def ibert_dyadic(scale: float, *, allow_negative: bool = False) -> Dyadic:
    """:func:`ibert_frexp` as a :class:`Dyadic` (``Dyadic(m, e)``; if ``e < 0``, which needs
    a scale >= 2**31, the exact ``Dyadic(m << -e, 0)``).

    >>> ibert_dyadic(1.0 - 2.0**-40)
    Dyadic(m=2147483648, k=31)
    """
    m, e = ibert_frexp(scale, allow_negative=allow_negative)
    if e < 0:
        return Dyadic(m << -e, 0)
    return Dyadic(m, e)


def ibert_scale_ratio(s_in: float, s_out: float, convention: str = "ibert") -> float:
    """The float64 ratio the research codes feed to :func:`ibert_frexp`.

    * ``"ibert"`` (I-BERT, I-ViT): ``float64(s_in) / float64(float32(s_out))``;
    * ``"hawq"`` (HAWQ-V3, "follow TVM"): ``float64(float32(s_in)) / float64(float32(s_out))``,
      where ``s_in`` is already the product ``S_a * S_w``.

    >>> ibert_scale_ratio(0.5, 0.25)
    2.0
    """
    a = check_scale(s_in, "s_in", allow_negative=True)
    b = check_scale(s_out, "s_out", allow_negative=True)
    b32 = float(np.float32(b))
    if convention == "ibert":
        return a / b32
    if convention == "hawq":
        return float(np.float32(a)) / b32
    raise ConfigError(f"unknown scale-ratio convention {convention!r}; valid: ibert, hawq")
