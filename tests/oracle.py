"""Oracles written with Python's unbounded ints, following the definitions literally.

They are deliberately slow and simple: the tests compare intsim's fast kernels
against them.
"""

from __future__ import annotations

from fractions import Fraction


def round_fraction(q: Fraction, mode: str) -> int:
    """Round an exact rational to an integer under a canonical rounding mode."""
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


def fit(v: int, bits: int, policy: str) -> tuple[int, bool]:
    """Put v into a signed ``bits``-wide register: (new value, overflowed)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= v <= hi:
        return v, False
    if policy == "saturate":
        return (hi if v > hi else lo), True
    if policy == "wrap":
        w = v & ((1 << bits) - 1)
        return (w - (1 << bits) if w > hi else w), True
    return v, True  # raise: the caller stops here


def gemm_oracle(A, B, acc_bits, overflow, k_chunk=1, chunk_bits=None, chunk_overflow=None, bias=None, n=None):
    """Return (values, overflow flags, first_overflow_k, first raise event or None) as nested lists.

    The raise event is (i, j, k, value, stage) of the first output, in row-major order, whose
    first overflow happened in a stage with the raise policy.
    """
    M = len(A)
    K = len(B)
    N = n if n is not None else len(B[0])
    chunk_pol = chunk_overflow or overflow
    vals = [[0] * N for _ in range(M)]
    flags = [[False] * N for _ in range(M)]
    firstk = [[-1] * N for _ in range(M)]
    event = None
    for i in range(M):
        for j in range(N):
            reg = 0 if bias is None else int(bias[j])
            for k0 in range(0, K, k_chunk):
                k1 = min(k0 + k_chunk, K)
                t = sum(int(A[i][k]) * int(B[k][j]) for k in range(k0, k1))
                if chunk_bits is not None:
                    t2, ov = fit(t, chunk_bits, chunk_pol)
                    if ov:
                        if firstk[i][j] < 0:
                            firstk[i][j] = k1 - 1
                            flags[i][j] = True
                        if chunk_pol == "raise":
                            if event is None:
                                event = (i, j, k1 - 1, t, 1)
                            break
                    t = t2
                r2, ov = fit(reg + t, acc_bits, overflow)
                if ov:
                    if firstk[i][j] < 0:
                        firstk[i][j] = k1 - 1
                        flags[i][j] = True
                    if overflow == "raise":
                        if event is None:
                            event = (i, j, k1 - 1, reg + t, 2)
                        break
                reg = r2
            vals[i][j] = reg
    return vals, flags, firstk, event
