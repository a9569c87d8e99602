"""Dyadic numbers m / 2**k: the integer form of a real scale.

A :class:`Dyadic` is an exact rational with a power-of-two denominator: integer
hardware multiplies by ``m`` and shifts right by ``k``. Conversions from a float
scale are explicit about mantissa width and rounding.

>>> from intsim.dyadic import Dyadic
>>> d = Dyadic.from_float(0.1, bits=8)
>>> d, d.value
(Dyadic(m=205, k=11), 0.10009765625)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import ConfigError
from .rounding import div_round, rounding_mode

__all__ = ["Dyadic"]


@dataclass(frozen=True)
class Dyadic:
    """The exact value ``m / 2**k`` (``m`` a signed integer, ``k >= 0``)."""

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
        """The value as a float64 (rounded only if it has more than 53 significant bits)."""
        return float(self.fraction)

    @property
    def fraction(self) -> Fraction:
        """The exact value."""
        return Fraction(self.m, 1 << self.k)

    @classmethod
    def from_float(cls, x: float, bits: int = 31, rounding: str = "half_even", max_shift: int = 62) -> Dyadic:
        """The dyadic nearest ``x`` (under ``rounding``) whose ``|m|`` has at most ``bits`` bits.

        ``k`` is chosen as large as possible (at most ``max_shift``) so that
        ``round(x * 2**k)`` still fits ``bits`` magnitude bits; then ``m = round(x * 2**k)``
        computed exactly from the float's rational value. NaN, Inf and non-float input raise
        ConfigError.
        """
        if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "__float__"):
            raise ConfigError(f"scale must be a real number, got {x!r}")
        xf = float(x)
        if not math.isfinite(xf):
            raise ConfigError(f"scale must be finite, got {xf}")
        if not 1 <= bits <= 63:
            raise ConfigError(f"mantissa bits must be from 1 to 63, got {bits}")
        mode = rounding_mode(rounding)
        q = Fraction(xf)
        if q == 0:
            return cls(0, 0)
        limit = (1 << bits) - 1
        k = max_shift
        while k > 0:
            num = q.numerator << k
            m = div_round(num, q.denominator, mode)
            if abs(m) <= limit:
                break
            k -= 1
        m = div_round(q.numerator << k, q.denominator, mode)
        if abs(m) > limit:
            raise ConfigError(f"scale {xf} needs more than {bits} bits at shift 0")
        return cls(int(m), int(k))

    def __float__(self) -> float:
        return self.value
