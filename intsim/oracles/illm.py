"""I-LLM (Hu et al., arXiv 2405.17849) on Python ints: intsim's documented construction, the
specifications of :mod:`intsim.ops.illm`.

I-LLM's integer kernels are not public; every choice is the one :mod:`intsim.ops.illm` documents
(its table): per-row dyadic scales with 8-bit mantissas, I-ViT's shift-add log2(e) and linear
``2**-f``, round half to even wherever a value is rounded. Row-wise operators take one row.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .rounding import round_fraction
from .rounding import round_half_even as rne


def row_dyadic(s: float, m_bits: int = 8) -> tuple[int, int]:
    """A float scale as the dyadic ``m / 2**k`` of :func:`intsim.ops.illm.row_dyadic`: the largest
    ``k <= 62`` with ``round_half_even(s * 2**k) < 2**m_bits``.

    >>> row_dyadic(0.1), row_dyadic(0.2)
    ((205, 11), (205, 10))
    """
    q = Fraction(s)
    for k in range(62, -1, -1):
        m = rne(q * 2**k)
        if m < 2**m_bits:
            return m, k
    raise AssertionError


def dyadic_ratio(num: int, den: int, k: int, m_bits: int) -> tuple[int, int]:
    """``num / den / 2**k`` as an ``m_bits`` dyadic: the largest shift ``j <= 62 - k`` with
    ``round_half_even(num * 2**j / den) < 2**m_bits``, returned as ``(m2, k + j)`` (``(m2 << -(k + j), 0)``
    for a negative exponent); 0 gives ``(0, 0)``. The scale requantization of
    :func:`clipped_softmax` (``_dyadic_ratio`` of :mod:`intsim.ops.illm`).

    >>> dyadic_ratio(205 * 100, 255, 11, 8)
    (161, 12)
    """
    if num == 0:
        return 0, 0
    best = None
    for j in range(62 - k, -200, -1):
        m2 = rne(Fraction(num * 2**j, den) if j >= 0 else Fraction(num, den * 2**-j))
        if m2 < 2**m_bits:
            best = (m2, j)
            break
    m2, j = best
    k2 = k + j
    if k2 < 0:
        return m2 << -k2, 0
    return m2, k2


def di_exp(z: int, m: int, k: int, F: int = 15, terms: tuple = ((0, 1), (1, 1), (4, -1))) -> int:
    """DI-Exp of ``z <= 0`` at scale ``m / 2**k``: ``t = z * m``, ``u = sum(sign * (t >> shift))``
    over the log2(e) ``terms`` (1.4375 t), ``a = max(-u, 0)``, ``q = a >> k``, ``r = a mod 2**k``;
    result ``floor(2**F * (1 - r / 2**(k + 1))) >> q`` (scale ``2**-F``).

    >>> di_exp(0, 205, 11), di_exp(-10, 205, 11)
    (32768, 12792)
    """
    t = z * m
    u = sum(sg * (t >> sh) for sh, sg in terms)
    a = max(-u, 0)
    q, r = a >> k, a & ((1 << k) - 1)
    fr = math.floor(Fraction(2**F) * (1 - Fraction(r, 2 ** (k + 1))))
    return fr >> q


def clipped_softmax(row: list[int], s: float, clip: float = 15.0, in_bits: int | None = 8, ob: int = 16,
                    F: int = 15) -> list[int]:
    """DI-ClippedSoftmax on one row: differences to the max clamped at ``T = floor(clip * 2**k / m)``
    steps; with ``in_bits`` they are requantized to the clipped range ``R = min(max - min, T)``,
    ``z = -round_half_even(-d (2**in_bits - 1) / R)`` at the scale ``m R / (2**in_bits - 1)``
    (:func:`dyadic_ratio`); :func:`di_exp` of each; output ``round_half_even(e (2**ob - 1) / sum)``.

    >>> clipped_softmax([10, 20, 30, 40, 50], 0.1)
    [786, 2149, 5655, 15913, 41032]
    """
    m, k = row_dyadic(s)
    T = math.floor(Fraction(clip) * 2**k / m)
    mx, mn = max(row), min(row)
    R = min(mx - mn, T)
    if in_bits:
        D = 2**in_bits - 1
        mz, kz = dyadic_ratio(m * R, D, k, 8)
    else:
        mz, kz = m, k
    es = []
    for v in row:
        dc = max(v - mx, -T)
        z = (-rne(Fraction(-dc * D, R)) if R else 0) if in_bits else dc
        es.append(di_exp(z, mz, kz, F))
    total = sum(es)
    return [rne(Fraction(e * (2**ob - 1), total)) for e in es]


def di_norm(row: list[int], mode: str, F: int = 16, eps_int: int = 0) -> list[int]:
    """DI-Norm on one row (``mode`` ``"rms"`` or ``"layer"``: ``y = x - round_half_even(mean)``):
    ``var = sum(y**2) + eps_int``, ``g = max(0, (62 - bitlen(var)) // 2)``,
    ``std = isqrt((var << 2g) // D)``, ``f = floor(2**(F + 16 + g) / std)`` (0 if ``std == 0``);
    output ``round_half_even(y * f / 2**16)`` at scale ``2**-F``.

    >>> di_norm([1, -1, 2, 0], "rms")
    [53510, -53510, 107020, 0]
    """
    D = len(row)
    y = row if mode == "rms" else [v - rne(Fraction(sum(row), D)) for v in row]
    var = sum(v * v for v in y) + eps_int
    g = max(0, (62 - var.bit_length()) // 2)
    std = math.isqrt((var << (2 * g)) // D)
    f = 0 if std == 0 else 2 ** (F + 16 + g) // std
    return [rne(Fraction(v * f, 2**16)) for v in y]


def swiglu(g: int, u: int, m: int, k: int, F: int = 15, Fs: int = 15) -> int:
    """DI-SwiGLU of one gate ``g`` (scale ``m / 2**k``) and up value ``u``: ``e = di_exp(-|g|)``,
    ``sigmoid = round_half_even((2**F if g >= 0 else e) * 2**Fs / (2**F + e))``, result ``g * sigmoid * u``.

    >>> swiglu(0, 5, 205, 11), swiglu(10, 1, 205, 11)
    (0, 235680)
    """
    e = di_exp(-abs(g), m, k, F)
    sig = rne(Fraction((2**F if g >= 0 else e) << Fs, 2**F + e))
    return g * sig * u


def dynamic_requant(row: list[int], bits: int, symmetric: bool, mode: str) -> list[int]:
    """Dynamic per-token requantization of one row, rounded by ``mode``: asymmetric
    ``round((x - min) (2**bits - 1) / (max - min))`` (range 0 taken as 1), symmetric
    ``round(x (2**(bits-1) - 1) / max|x|)`` (0 taken as 1).

    >>> dynamic_requant([-10, 0, 10], 8, False, "half_even"), dynamic_requant([-10, 0, 5], 8, True, "half_even")
    ([0, 128, 255], [-127, 0, 64])
    """
    if symmetric:
        A = max(abs(v) for v in row) or 1
        return [round_fraction(Fraction(v * (2 ** (bits - 1) - 1), A), mode) for v in row]
    lo = min(row)
    R = (max(row) - lo) or 1
    return [round_fraction(Fraction((v - lo) * (2**bits - 1), R), mode) for v in row]
