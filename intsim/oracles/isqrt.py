"""Integer square roots on Python ints: the specifications of :mod:`intsim.ops.isqrt`'s ``"ivit"`` and
``"fixed"`` methods (``"newton"`` is exact, so its specification is :func:`math.isqrt`).
"""

from __future__ import annotations


def isqrt_ivit(n: int, steps: int = 10, k: int = 2**16) -> int:
    """I-ViT's loop (I-LayerNorm, ``models/quantization_utils/quant_modules.py`` of zkkli/I-ViT),
    literally: ``k = floor((k + floor(n / k)) / 2)``, ``steps`` times from the seed ``k``.

    >>> isqrt_ivit(0), isqrt_ivit(10**4), isqrt_ivit(2**40)
    (64, 108, 1048576)
    """
    for _ in range(steps):
        k = (k + n // k) // 2
    return k


def isqrt_fixed(n: int, steps: int) -> int:
    """intsim's corrected fixed-count iteration: ``x = 2**ceil(bitlen(n) / 2)``, then ``steps`` times
    ``x = min(x, (x + n // x) // 2)``; 0 for ``n == 0``.

    >>> isqrt_fixed(10**4, 6), isqrt_fixed(10**12 + 7, 1), isqrt_fixed(10**12 + 7, 6)
    (100, 1001125, 1000000)
    """
    if n == 0:
        return 0
    x = 1 << ((n.bit_length() + 1) >> 1)
    for _ in range(steps):
        x = min(x, (x + n // x) // 2)
    return x
