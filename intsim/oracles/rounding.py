"""Rounding, register fitting and float rounding on exact numbers: what every other oracle builds on.

Specifies :mod:`intsim.core.rounding` (``shift_right``, ``div_round``, ``round_float``: the
mode table there), :mod:`intsim.core.overflow` (the ``wrap`` / ``saturate`` / ``raise``
policies of a register) and the IEEE round-to-nearest-even conversions that the float
back-ends of :mod:`intsim.quant.requant` rely on.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction


def round_fraction(q: Fraction, mode: str) -> int:
    """Round the exact rational ``q`` to an integer under one of intsim's canonical rounding modes.

    With ``fl = floor(q)``: ``floor`` -> fl; ``ceil``, ``trunc`` (toward zero), ``away`` (from
    zero) as named; ``half_even``, ``half_odd``, ``half_away`` (C ``round``), ``half_up``
    (ties toward +inf), ``half_down`` (ties toward -inf), ``half_zero`` (ties toward zero) round
    to nearest and differ only at exact ties; ``jam`` is ``fl | 1`` always (von Neumann
    rounding, exact values included) and ``jam_unbiased`` is ``fl | 1`` only when ``q`` is not
    an integer. The table of :mod:`intsim.core.rounding`, from its definitions.

    >>> [round_fraction(Fraction(v, 2), "half_even") for v in (-3, -1, 1, 3)]
    [-2, 0, 0, 2]
    """
    fl = q.numerator // q.denominator
    frac = q - fl
    if mode == "jam":
        return fl | 1
    if frac == 0:
        return fl
    if mode == "floor":
        return fl
    if mode == "ceil":
        return fl + 1
    if mode == "trunc":
        return fl if q > 0 else fl + 1
    if mode == "away":
        return fl + 1 if q > 0 else fl
    if mode == "jam_unbiased":
        return fl | 1
    half = Fraction(1, 2)
    if frac < half:
        return fl
    if frac > half:
        return fl + 1
    return {
        "half_even": fl + (fl % 2),
        "half_odd": fl + 1 - (fl % 2),
        "half_away": fl + 1 if q > 0 else fl,
        "half_up": fl + 1,
        "half_down": fl,
        "half_zero": fl if q > 0 else fl + 1,
    }[mode]


def round_half_even(q: Fraction) -> int:
    """Round the exact rational ``q`` to the nearest integer, ties to even.

    ``torch.round`` / ``np.rint`` / Python ``round`` on exact values: the rounding the I-BERT,
    I-ViT and I-LLM codes use (``round_fraction(q, "half_even")``, written out).

    >>> [round_half_even(Fraction(v, 2)) for v in (-3, -1, 1, 3, 5)]
    [-2, 0, 0, 2, 2]
    """
    fl = q.numerator // q.denominator
    rem = q - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2):
        return fl + 1
    return fl


def c_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero), as C99 ``a / b`` on ints (``b != 0``).

    >>> c_div(-7, 2), c_div(7, -2), -7 // 2
    (-3, -3, -4)
    """
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def fit(v: int, bits: int, policy: str) -> tuple[int, bool]:
    """Put ``v`` into a signed ``bits``-wide register: ``(new value, overflowed)``.

    In range: ``(v, False)``. Otherwise ``saturate`` gives the nearest end of
    ``[-2**(bits-1), 2**(bits-1) - 1]``, ``wrap`` the two's-complement residue modulo
    ``2**bits``, and ``raise`` leaves ``v`` unchanged (the caller stops there); all with
    ``True``. The register policies of :mod:`intsim.core.overflow`.

    >>> fit(130, 8, "saturate"), fit(130, 8, "wrap"), fit(-5, 8, "raise")
    ((127, True), (-126, True), (-5, False))
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= v <= hi:
        return v, False
    if policy == "saturate":
        return (hi if v > hi else lo), True
    if policy == "wrap":
        w = v & ((1 << bits) - 1)
        return (w - (1 << bits) if w > hi else w), True
    return v, True  # raise: the caller stops here


def round_to_float(q: Fraction, mant: int) -> Fraction:
    """Round the exact rational ``q`` to the nearest binary float with ``mant`` significand bits
    (ties to even), normal range only (no subnormals, no overflow): IEEE 754 round to nearest
    even, ``mant = 24`` for float32 and 53 for float64.

    >>> round_to_float(Fraction(2**24 + 1), 24), round_to_float(Fraction(1, 3), 53) == Fraction(1 / 3)
    (Fraction(16777216, 1), True)
    """
    if q == 0:
        return Fraction(0)
    sign = -1 if q < 0 else 1
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    ulp = Fraction(2) ** (e - mant + 1)
    n = round_fraction(a / ulp, "half_even")
    return sign * n * ulp


def round_to_format(q: Fraction, mant: int, emin: int, emax: int) -> float:
    """``q`` rounded to the binary format with ``mant`` significand bits and normal exponents
    ``[emin, emax]``, subnormals included (ties to even), ``+-inf`` past the largest finite value:
    IEEE 754 round to nearest even in the whole range (:func:`round_to_float` without bounds).

    >>> round_to_format(Fraction(1, 2**150), 24, -126, 127), round_to_format(Fraction(2**129), 24, -126, 127)
    (0.0, inf)
    """
    if q == 0:
        return 0.0
    sign = -1.0 if q < 0 else 1.0
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    e = max(e, emin)  # subnormals share the smallest exponent
    ulp = Fraction(2) ** (e - mant + 1)
    v = round_fraction(a / ulp, "half_even") * ulp
    if v >= Fraction(2) ** (emax + 1):
        return sign * math.inf
    return sign * float(v)


def round_f32(q: Fraction) -> float:
    """The exact rational ``q`` correctly rounded to float32 (subnormals, overflow to inf)."""
    return round_to_format(q, 24, -126, 127)


def round_f64(q: Fraction) -> float:
    """The exact rational ``q`` correctly rounded to float64 (subnormals, overflow to inf)."""
    return round_to_format(q, 53, -1022, 1023)


def float32(x: float) -> float:
    """The float64 ``x`` rounded to float32 (IEEE round to nearest even), as a Python float.

    C's ``(float)x``, which is what ``numpy.float32(x)`` computes; a finite ``x`` beyond the
    float32 range raises OverflowError (numpy would give inf).

    >>> float32(0.1), float32(2.0**24 + 1)
    (0.10000000149011612, 16777216.0)
    """
    return struct.unpack("<f", struct.pack("<f", x))[0]
