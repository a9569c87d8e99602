"""I-BERT (Kim et al., ICML 2021) on Python ints: the published code, element by element, the
specifications of :mod:`intsim.ops.ibert`.

Source: ``fairseq/quantization/utils/quant_modules.py`` of kssteven418/I-BERT (``int_exp`` of
``IntSoftmax``, ``IntSoftmax``, ``IntGELU``, ``IntLayerNorm``, ``FixedPointMul``, ``batch_frexp``),
with the ``corrected`` variants intsim documents per operator. Constants are derived in float64
from the float scale ``S`` with the code's floors; every row-wise operator takes one row.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from .rounding import float32
from .rounding import round_half_even as rne


def ibert_frexp(r: float) -> tuple[int, int]:
    """``batch_frexp`` as the code writes it: ``f, x = frexp(r)``, ``m = Decimal(f * 2**31)``
    rounded ``ROUND_HALF_UP`` (ties away from zero), ``e = 31 - x``; ``r ~ m / 2**e``, no
    renormalization. Specifies :func:`intsim.core.dyadic.ibert_frexp`.

    >>> ibert_frexp(0.1), ibert_frexp(-0.1)
    ((1717986918, 34), (-1717986918, 34))
    """
    f, x = math.frexp(r)
    return int(Decimal(f * 2**31).quantize(Decimal("1"), rounding=ROUND_HALF_UP)), 31 - x


def i_exp(d: int, S: float) -> int:
    """``int_exp``: ``x0 = floor(-0.6931 / S)``, ``d = max(d, 30 * x0)``, ``q = floor(d / x0)``,
    ``r = d - x0 * q``, ``z = r * (r + floor(2.707... / S)) + floor(1 / (0.358... S**2))``,
    result ``max(floor(z * 2**(30 - q)), 0)`` at scale ``0.35815147 * S**2 / 2**30``.

    >>> [i_exp(d, 0.1) for d in (0, -7, -14)]
    [299573968896, 149786984448, 74893492224]
    """
    x0 = math.floor(-0.6931 / S)
    n = 30
    b = math.floor((0.96963238 / 0.35815147) / S)
    c = math.floor((1.0 / 0.35815147) / S**2)
    d = max(d, n * x0)
    q = d // x0
    r = d - x0 * q
    z = r * (r + b) + c
    e = z * 2 ** (n - q) if n >= q else z // 2 ** (q - n)
    return max(e, 0)


def softmax(row: list[int], S: float, out_bit: int = 8, rng: float = 1.0, corrected: bool = False) -> list[int]:
    """``IntSoftmax`` on one row: :func:`i_exp` of ``x - max``, requantized to 16 bits
    (``QuantAct(16)`` at scale ``float32(rng / 32767)``, dyadic from :func:`ibert_frexp`, round half
    to even, clamp), then ``floor(e16 * floor(2**32 / sum) / 2**(32 - out_bit))``. ``corrected``
    normalizes the reciprocal, ``floor(2**(30 + L) / sum)`` with ``L = bitlen(sum)``, and rounds
    half up, clamped to ``2**out_bit - 1``. A zero sum divides by 1.

    >>> softmax([10, 20, 30, 40, 50], 0.1)
    [3, 8, 22, 60, 162]
    """
    s16 = float32(float32(rng) / float32(32767))
    m, e = ibert_frexp((0.35815147 * S**2 / 2**30) / s16)
    mx = max(row)
    e16 = [min(max(rne(Fraction(i_exp(v - mx, S) * m, 2**e)), -32768), 32767) for v in row]
    s = sum(e16) or 1
    if not corrected:
        f = 2**32 // s
        return [(v * f) // 2 ** (32 - out_bit) for v in e16]
    L = abs(s).bit_length()
    k = max(L - 32, 0)
    f = 2 ** (30 + L - k) // (s >> k)
    sh = 30 + L - out_bit
    return [min((v * f + 2 ** (sh - 1)) >> sh, 2**out_bit - 1) for v in e16]


def gelu(x: int, S: float, corrected: bool = False, sig_bits: int = 12) -> int:
    """``IntGELU`` (i-GELU): with ``S' = S / 1.4142``, ``b = floor(-1.769 / S')``,
    ``c = floor(-1 / (0.2888 S'**2))``, ``y = sgn(x) ((min(|x|, -b) + b)**2 + c)``; published
    ``x * (floor(y / 2**14) + floor(1 // S_erf))`` (``S_erf = -0.2888 S'**2 2**14``, a negative
    output scale); ``corrected`` shifts by ``max(0, bitlen(|c|) - sig_bits)`` instead of 14 and
    negates, ``-(x * ((y >> sh) + (c >> sh)))``.

    >>> [gelu(x, 0.001) for x in (-3000, -1000, 0, 1000, 3000)]
    [3000, 139000, 0, -708000, -2538000]
    """
    Sp = S / 1.4142
    b = math.floor(-1.769 / Sp)
    c = math.floor((1 / -0.2888) / Sp**2)
    sign = (x > 0) - (x < 0)
    y = sign * ((min(abs(x), -b) + b) ** 2 + c)
    if not corrected:
        s_erf = Sp**2 * -0.2888 * 2**14
        return x * (y // 2**14 + math.floor(1.0 // s_erf))
    sh = max(0, abs(c).bit_length() - sig_bits)
    return -(x * ((y >> sh) + (c >> sh)))


def layernorm(row: list[int], shift: int = 0, corrected: bool = False, bias: list[int] | None = None) -> list[int]:
    """``IntLayerNorm`` on one row: ``mean = round_half_even(sum / D)``, ``y = x - mean``; published
    ``var = sum(floor(y / 2**shift)**2)``, ``std = isqrt(var) * 2**shift`` (or 1),
    ``factor = floor(2**31 / std)``; ``corrected`` takes the exact ``var``, ``g = max(0, (62 -
    bitlen(var)) // 2)``, ``std = isqrt(var << 2g)``, ``factor = floor(2**(31 + g) / std)`` (0 if
    ``std == 0``); then ``floor(y * factor / 2)``, plus ``bias`` if given.

    >>> layernorm([1, 2, 3, 4])
    [-536870912, 0, 536870912, 1073741824]
    """
    D = len(row)
    mean = rne(Fraction(sum(row), D))
    y = [v - mean for v in row]
    if not corrected:
        var = sum((v // 2**shift) ** 2 for v in y)
        std = math.isqrt(var) * 2**shift or 1
        f = 2**31 // std
    else:
        var = sum(v * v for v in y)
        g = max(0, (62 - var.bit_length()) // 2)
        std = math.isqrt(var << (2 * g))
        f = 0 if std == 0 else 2 ** (31 + g) // std
    out = [(v * f) // 2 for v in y]
    return out if bias is None else [o + b for o, b in zip(out, bias, strict=True)]


def fixedpoint_mul(x: int, s_in: float, s_out: float, bits: int) -> int:
    """``FixedPointMul``: ``(m, e) = batch_frexp(s_in / float32(s_out))``,
    ``y = round_half_even(x * m / 2**e)``, clamped to signed ``bits`` for ``bits`` in {4, 8, 16}.

    >>> [fixedpoint_mul(x, 0.01, 0.1, 8) for x in (1000, -1000, 12345)]
    [100, -100, 127]
    """
    m, e = ibert_frexp(s_in / float32(s_out))
    y = rne(Fraction(x * m, 2**e))
    if bits in (4, 8, 16):
        y = min(max(y, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)
    return y
