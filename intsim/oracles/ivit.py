"""I-ViT (Li & Gu, ICCV 2023) on Python ints: the published code, the specifications of
:mod:`intsim.ops.ivit`.

Sources: the PyTorch modules ``models/quantization_utils/quant_modules.py`` (``profile="pytorch"``)
and the TVM kernels ``TVM_benchmark/models/layers.py`` (``"tvm"``: truncating int32 divisions and
shifts) of zkkli/I-ViT, and intsim's ``"corrected"`` variants. Row-wise operators take one row.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .rounding import c_div as tdiv
from .rounding import round_half_even as rne

I31 = 2**31 - 1


def x0_int(S: float, tvm: bool) -> int:
    """The shift-exp constant ``x0`` (-1 / S in steps): ``floor(-1 / S)`` (PyTorch), ``int(-1 / S - 1)``
    (TVM, truncation).

    >>> x0_int(0.1, False), x0_int(0.3, True)
    (-10, -4)
    """
    return int(-1.0 / S - 1) if tvm else math.floor(-1.0 / S)


def shift_exp(x: int, S: float, n: int, tvm: bool) -> int:
    """Shift-exp of ``x <= 0``: ``t = x + floor(x / 2) - floor(x / 16)`` (x log2 e), clamped to
    ``n * x0``; PyTorch: ``q = floor(t / x0)``, ``r = t - x0 q``,
    ``max(floor((r / 2 - x0) * 2**(n - q)), 0)``; TVM: truncating ``q``,
    ``((r >> 1) - x0) << (n - q)`` (``>>`` when ``q > n``).

    >>> shift_exp(0, 0.1, 15, False), shift_exp(-10, 0.1, 15, False)
    (327680, 131072)
    """
    t = x + math.floor(x / 2) - math.floor(x / 16)
    x0 = x0_int(S, tvm)
    t = max(t, n * x0)
    if tvm:
        q = tdiv(t, x0)
        r = t - q * x0
        base = (r >> 1) - x0
        return base << (n - q) if n >= q else base >> (q - n)
    q = t // x0
    r = t - x0 * q
    return max(math.floor((Fraction(r, 2) - x0) * Fraction(2) ** (n - q)), 0)


def shiftmax(row: list[int], S: float, profile: str = "pytorch", out_bit: int = 8) -> list[int]:
    """Shiftmax on one row: :func:`shift_exp` of ``x - max`` (n = 15, TVM 16); PyTorch
    ``floor(e * floor(I31 / min(sum, I31)) / 2**(32 - out_bit))``; TVM
    ``(trunc(I31 / sum) * e) >> 24``; ``corrected`` a normalized reciprocal rounded half up and
    clamped to ``2**(out_bit - 1) - 1``.

    >>> shiftmax([10, 20, 30, 40, 50], 0.1), shiftmax([10, 20, 30, 40, 50], 0.1, "tvm")
    ([1, 4, 11, 31, 78], [2, 5, 13, 31, 75])
    """
    tvm = profile == "tvm"
    n = 16 if tvm else 15
    mx = max(row)
    e = [shift_exp(v - mx, S, n, tvm) for v in row]
    s = sum(e)
    if profile == "pytorch":
        s = min(s, I31)
        f = I31 // s
        return [(v * f) // 2 ** (32 - out_bit) for v in e]
    if tvm:
        f = tdiv(I31, s)
        return [(f * v) >> 24 for v in e]
    L = s.bit_length()
    k = max(L - 32, 0)
    f = 2 ** (30 + L - k) // (s >> k)
    sh = 30 + L - k - (out_bit - 1)
    return [min(((v >> k) * f + 2 ** (sh - 1)) >> sh, 2 ** (out_bit - 1) - 1) for v in e]


def shiftgelu(row: list[int], S: float, profile: str = "pytorch", out_bit: int = 8) -> list[int]:
    """ShiftGELU on one row: ``x * sigmoid(1.702 x)`` with the sigmoid as ``e / (e + e_max)`` of
    :func:`shift_exp` (n = 23) at scale ``1.702 S``, ``e = exp(x - m)``, ``e_max = exp(-m)``,
    ``m`` the row max (``max(m, 0)`` when ``corrected``); PyTorch
    ``floor(e * floor(I31 / min(sum, I31)) / 2**(32 - out_bit))``, TVM ``(trunc(I31 / sum) * e) >> 24``,
    ``corrected`` ``floor(e * 2**(out_bit - 1) / sum)``; result ``x * sigmoid``.

    >>> shiftgelu([-20, 0, 20], 0.1)
    [-80, 0, 2400]
    """
    tvm = profile == "tvm"
    Ss = S * 1.702
    m = max(row)
    if profile == "corrected":
        m = max(m, 0)
    em = shift_exp(-m, Ss, 23, tvm)
    out = []
    for v in row:
        e = shift_exp(v - m, Ss, 23, tvm)
        s = e + em
        if profile == "pytorch":
            sig = (e * (I31 // min(s, I31))) // 2 ** (32 - out_bit)
        elif tvm:
            sig = (tdiv(I31, s) * e) >> 24
        else:
            sig = (e << (out_bit - 1)) // s
        out.append(v * sig)
    return out


def layernorm(row: list[int], profile: str = "pytorch", steps: int = 10) -> list[int]:
    """I-LayerNorm on one row: ``mean`` rounded half to even (TVM: truncating), ``y = x - mean``,
    ``var = sum(y**2)``, ``std`` by ``steps`` iterations ``k = floor((k + floor(var / k)) / 2)`` from
    ``2**16`` (:func:`intsim.oracles.isqrt.isqrt_ivit`), ``floor(y * floor(I31 / std) / 2)``
    (TVM: truncating); ``corrected`` the exact normalized square root of
    :func:`intsim.oracles.ibert.layernorm`.

    >>> layernorm([1, 2, 3, 4])
    [-16777216, 0, 16777215, 33554431]
    """
    D = len(row)
    if profile == "tvm":
        mean = tdiv(sum(row), D)
    else:
        mean = rne(Fraction(sum(row), D))
    y = [v - mean for v in row]
    var = sum(v * v for v in y)
    if profile == "corrected":
        g = max(0, (62 - var.bit_length()) // 2)
        std = math.isqrt(var << (2 * g))
        f = 0 if std == 0 else 2 ** (31 + g) // std
        return [(v * f) // 2 for v in y]
    k = 2**16
    for _ in range(steps):
        k = (k + var // k) // 2
    if profile == "tvm":
        f = tdiv(I31, k)
        return [tdiv(f * v, 2) for v in y]
    f = I31 // k
    return [(v * f) // 2 for v in y]
