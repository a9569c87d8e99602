"""numba register primitives, called by every operator kernel.

Every kernel passes the plan's arrays ``(cf, st, tp, ton)`` (see :class:`intsim.regs.runtime.Plan`)
and a position ``(i, j)``, ``j = -1`` for a per-row register, and a step index ``s``. ``reg``
stores a value in step ``s``'s register: it checks the declared range, applies the overflow policy
(wrap, saturate, raise, record), records the first event and writes the tap. ``chk`` only checks,
``tap`` only records. ``mul_reg``/``shl_reg``/``add_chk`` do the exact wide arithmetic first
(a product or shift beyond int64 is an event, never a silent wrap of the emulator itself).

Each operator's chain is written once, as a function with a ``rec`` flag, through the
``*_step`` forms: with ``rec`` they are ``reg``/``mul_reg``/``shl_reg`` (the recorded path);
without, they pass the value through untouched and return ``ok`` cleared when it leaves its
register (or int64). The fast path runs a row unrecorded and, where ``ok`` came back False,
runs that row again recorded, so the policies, events and taps come from one copy of the
arithmetic.

These functions, and the chain functions of the operators, are ``@njit(forceinline=True)``, not
``inline="always"``: numba types and lowers each once per signature and LLVM inlines it into the
kernels, where the constant ``rec`` flag folds away. Inlining them in numba's own IR instead
copies every call site through type inference and lowering again: measured on
``ivit.shift_exp`` (int64, cold cache) 27 s to compile and 3.6 times slower at run time, against
7 s and the old fast path's speed as separately compiled functions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .runtime import INT64_MAX


@njit(cache=True)
def _slow(cf, st, i, j, s, v, kind):
    """Record an event for step s (kind 0 out of range, 1/2 beyond int64 +/-, 3 division by
    zero) and return the value after the policy (wrap, saturate; unchanged otherwise)."""
    if st[i, s, 0] == 0:
        st[i, s, 1] = j
        st[i, s, 2] = v
        st[i, s, 3] = kind
    st[i, s, 0] += 1
    if kind == 1 or kind == 2:
        st[i, s, 3] |= 4
    if kind == 3:
        st[i, s, 3] |= 8
        return np.int64(0)
    p = cf[s, 4]
    if p == 0:
        b = cf[s, 2]
        if b >= 64:
            return v
        if cf[s, 3] == 1:
            sh = np.int64(64 - b)
            return (v << sh) >> sh
        return v & ((np.int64(1) << np.int64(b)) - np.int64(1))
    if p == 1:
        if kind == 2 or (kind == 0 and v < cf[s, 0]):
            return cf[s, 0]
        return cf[s, 1]
    return v


@njit(cache=True, forceinline=True)
def tap(tp, ton, i, j, s, v):
    if ton:
        if j >= 0:
            tp[s, i, j] = v
        else:
            tp[s, i, 0] = v


@njit(cache=True, forceinline=True)
def chk(cf, st, i, j, s, v):
    """Pass v through register s (no tap)."""
    if v < cf[s, 0] or v > cf[s, 1]:
        return _slow(cf, st, i, j, s, v, 0)
    return v


@njit(cache=True, forceinline=True)
def reg(cf, st, tp, ton, i, j, s, v):
    """Pass v through register s and tap it."""
    if v < cf[s, 0] or v > cf[s, 1]:
        v = _slow(cf, st, i, j, s, v, 0)
    if ton:
        if j >= 0:
            tp[s, i, j] = v
        else:
            tp[s, i, 0] = v
    return v


@njit(cache=True)
def wide(cf, st, tp, ton, i, j, s, low, neg):
    """A value beyond int64 (``low`` its low 64 bits, ``neg`` its sign) entering register s."""
    v = _slow(cf, st, i, j, s, low, 2 if neg else 1)
    tap(tp, ton, i, j, s, v)
    return v


@njit(cache=True)
def div0(cf, st, tp, ton, i, j, s):
    """A division by zero at step s: recorded (always raised afterwards); the register gets 0."""
    v = _slow(cf, st, i, j, s, np.int64(0), 3)
    tap(tp, ton, i, j, s, v)
    return v


@njit(cache=True, forceinline=True)
def shl_reg(cf, st, tp, ton, i, j, s, v, sh):
    """Register s <- v * 2**sh exactly (sh < 0: floor division by 2**-sh)."""
    if sh <= 0:
        m = -sh
        if m > 63:
            m = 63
        return reg(cf, st, tp, ton, i, j, s, v >> np.int64(m))
    if v == 0:
        return reg(cf, st, tp, ton, i, j, s, v)
    if sh >= 64:
        return wide(cf, st, tp, ton, i, j, s, np.int64(0), v < 0)
    hi = np.int64(INT64_MAX) >> np.int64(sh)
    if v > hi or v < -hi - np.int64(1):
        return wide(cf, st, tp, ton, i, j, s, v << np.int64(sh), v < 0)
    return reg(cf, st, tp, ton, i, j, s, v << np.int64(sh))


@njit(cache=True)
def mul_wide(a, b):
    """True when a * b does not fit int64 (a, b not both small)."""
    f = float(a) * float(b)
    if abs(f) < 4.6e18:
        return False
    if abs(f) > 1.9e19:
        return True
    if a == -1 and b == -9223372036854775807 - 1:
        return True
    if b == -1 and a == -9223372036854775807 - 1:
        return True
    p = a * b
    return p // a != b or p % a != 0


@njit(cache=True, forceinline=True)
def mul_reg(cf, st, tp, ton, i, j, s, a, b):
    """Register s <- a * b exactly (beyond int64 detected)."""
    p = a * b
    if a < 3037000499 and a > -3037000499 and b < 3037000499 and b > -3037000499:
        return reg(cf, st, tp, ton, i, j, s, p)
    if a != 0 and b != 0 and mul_wide(a, b):
        return wide(cf, st, tp, ton, i, j, s, p, (a < 0) != (b < 0))
    return reg(cf, st, tp, ton, i, j, s, p)


@njit(cache=True, forceinline=True)
def add_chk(cf, st, i, j, s, a, b):
    """Accumulator step a + b through register s (checked after every add, no tap)."""
    r = a + b
    if (a >= 0) == (b >= 0) and (r >= 0) != (a >= 0):
        return _slow(cf, st, i, j, s, r, 2 if a < 0 else 1)
    if r < cf[s, 0] or r > cf[s, 1]:
        return _slow(cf, st, i, j, s, r, 0)
    return r


@njit(cache=True, forceinline=True)
def fits(cf, s, v):
    """True when v fits register s (used by the fast paths, which record nothing)."""
    return v >= cf[s, 0] and v <= cf[s, 1]


@njit(cache=True, forceinline=True)
def bitlen64(v):
    """Bit length of a non-negative int64."""
    b = np.int64(0)
    while v > 0:
        v >>= np.int64(1)
        b += 1
    return b


@njit(cache=True)
def mul_shr_rne(v, m, e):
    """round_half_even(v * m / 2**e) for int64 v, |m| < 2**32, e >= 1.

    Returns (low 64 bits of the result, beyond-int64 flag). The product is formed in 128 bits.
    """
    neg = (v < 0) != (m < 0)
    a = np.uint64(-v) if v < 0 else np.uint64(v)
    b = np.uint64(-m) if m < 0 else np.uint64(m)
    m32 = np.uint64(0xFFFFFFFF)
    a0 = a & m32
    a1 = a >> np.uint64(32)
    p0 = a0 * b
    p1 = a1 * b
    lo = p0 + (p1 << np.uint64(32))
    carry = np.uint64(1) if lo < p0 else np.uint64(0)
    hi = (p1 >> np.uint64(32)) + carry
    if e >= 128:
        return np.int64(0), False
    if e >= 64:
        sh = np.uint64(e - 64)
        q = hi >> sh
        rem_hi = hi & ((np.uint64(1) << sh) - np.uint64(1)) if sh > 0 else np.uint64(0)
        rem_lo = lo
        if e == 64:
            half_hi = np.uint64(0)
            half_lo = np.uint64(1) << np.uint64(63)
        else:
            half_hi = np.uint64(1) << np.uint64(e - 65)
            half_lo = np.uint64(0)
        qhi = np.uint64(0)
    else:
        sh = np.uint64(e)
        q = (lo >> sh) | (hi << (np.uint64(64) - sh))
        qhi = hi >> sh
        rem_hi = np.uint64(0)
        rem_lo = lo & ((np.uint64(1) << sh) - np.uint64(1))
        half_hi = np.uint64(0)
        half_lo = np.uint64(1) << np.uint64(e - 1)
    up = False
    if rem_hi > half_hi or (rem_hi == half_hi and rem_lo > half_lo):
        up = True
    elif rem_hi == half_hi and rem_lo == half_lo:
        up = (q & np.uint64(1)) == np.uint64(1)
    if up:
        q = q + np.uint64(1)
        if q == np.uint64(0):
            qhi += np.uint64(1)
    big = qhi != np.uint64(0) or q > np.uint64(INT64_MAX)
    r = np.int64(q)
    if neg:
        r = -r
    return r, big


@njit(cache=True, forceinline=True)
def lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v):
    """Look v up in a Lut; returns (value, found)."""
    k = v - llo
    if k < 0 or k >= lfin.shape[0]:
        return np.int64(0), False
    if lbad[k]:
        for t in range(lval.shape[1]):
            if lev[k, t, 1] > 0:
                _slow(cf, st, i, j, ls0 + t, lev[k, t, 0], lev[k, t, 1] - 1)
    if ton:
        for t in range(lval.shape[1]):
            if j >= 0:
                tp[ls0 + t, i, j] = lval[k, t]
            else:
                tp[ls0 + t, i, 0] = lval[k, t]
    return lfin[k], True


@njit(cache=True, forceinline=True)
def step(cf, st, tp, ton, i, j, s, v, rec, ok):
    """Register s <- v: recorded when ``rec`` (as :func:`reg`), else only range-checked.
    Returns ``(value, ok)``."""
    if rec:
        return reg(cf, st, tp, ton, i, j, s, v), ok
    return v, ok & (v >= cf[s, 0]) & (v <= cf[s, 1])


@njit(cache=True, forceinline=True)
def mul_step(cf, st, tp, ton, i, j, s, a, b, rec, ok):
    """Register s <- a * b exactly (as :func:`mul_reg` when ``rec``). Returns ``(value, ok)``."""
    if rec:
        return mul_reg(cf, st, tp, ton, i, j, s, a, b), ok
    p = a * b
    if a < 3037000499 and a > -3037000499 and b < 3037000499 and b > -3037000499:
        return p, ok & (p >= cf[s, 0]) & (p <= cf[s, 1])
    if a != 0 and b != 0 and mul_wide(a, b):
        return p, False
    return p, ok & (p >= cf[s, 0]) & (p <= cf[s, 1])


@njit(cache=True, forceinline=True)
def shl_step(cf, st, tp, ton, i, j, s, v, sh, rec, ok):
    """Register s <- v * 2**sh exactly, sh < 0 a floor division (as :func:`shl_reg` when
    ``rec``). Returns ``(value, ok)``."""
    if rec:
        return shl_reg(cf, st, tp, ton, i, j, s, v, sh), ok
    if sh <= 0:
        m = -sh
        if m > 63:
            m = 63
        r = v >> np.int64(m)
        return r, ok & (r >= cf[s, 0]) & (r <= cf[s, 1])
    if v == 0:
        return v, ok & (v >= cf[s, 0]) & (v <= cf[s, 1])
    if sh >= 64:
        return v, False
    hi = np.int64(INT64_MAX) >> np.int64(sh)
    if v > hi or v < -hi - np.int64(1):
        return v, False
    r = v << np.int64(sh)
    return r, ok & (r >= cf[s, 0]) & (r <= cf[s, 1])


@njit(cache=True, forceinline=True)
def div_round(a, d, code):
    """round(a / d) for d > 0, in the rounding mode of code ``code`` (the numbering of
    :data:`intsim.core.rounding.ROUNDING_CODE`: floor 0, ceil 1, trunc 2, away 3, half_even 4,
    half_odd 5, half_away 6, half_up 7, half_down 8, half_zero 9, jam 10, jam_unbiased 11)."""
    q = a // d
    return round_qr(a, d, q, a - q * d, code)


@njit(cache=True, forceinline=True)
def round_qr(a, d, q, r, code):
    """round(a / d) (d > 0, mode ``code`` as :func:`div_round`) from the exact floor quotient
    ``q = floor(a / d)`` and remainder ``r = a - q d`` (0 <= r < d), however they were found."""
    if code == 0:
        return q
    if code == 10:
        return q | np.int64(1)
    if r == 0:
        return q
    if code == 1:
        return q + 1
    if code == 2:
        return q + 1 if a < 0 else q
    if code == 3:
        return q + 1 if a > 0 else q
    if code == 11:
        return q | np.int64(1)
    t = r - (d - r)
    if t > 0:
        return q + 1
    if t < 0:
        return q
    if code == 4:
        return q + (q & np.int64(1))
    if code == 5:
        return q + np.int64(1) - (q & np.int64(1))
    if code == 6:
        return q + 1 if a > 0 else q
    if code == 7:
        return q + 1
    if code == 8:
        return q
    return q if a > 0 else q + 1  # half_zero
