"""Integer square roots: exact floor sqrt (I-BERT's Newton iteration), I-ViT's
fixed 10-step variant as published, and a corrected fixed-iteration variant.

Three methods, all on non-negative integers:

==============  =================================================================  =========================
method          iteration                                                          result
==============  =================================================================  =========================
``"newton"``    I-BERT (Kim et al. 2021, i-sqrt): ``x = 2**ceil(bits(n)/2)``;       exact ``floor(sqrt(n))``
                repeat ``x' = (x + n // x) // 2`` until ``x' >= x``; return ``x``;  for every n < 2**64
                ``n == 0`` returns 0 without iterating
``"ivit"``      I-ViT (Li & Gu 2023, I-LayerNorm): ``k = 2**16``; exactly 10 times  the published quirk:
                ``k = (k + n // k) // 2``; return ``k``                              wrong for small and huge n
``"fixed"``     corrected fixed count: ``x = 2**ceil(bits(n)/2)``; ``steps`` times   exact for n < 2**64 with
                ``x = min(x, (x + n // x) // 2)``; ``n == 0`` gives 0                ``steps >= 6`` (the default)
==============  =================================================================  =========================

``bits(n)`` is the bit length of ``n`` (``int.bit_length``). All divisions are floor
divisions of non-negative integers; all intermediates fit 64-bit unsigned registers.

**Why "newton" is exact and terminates** (for any ``n >= 1``). Let ``s = floor(sqrt(n))``
and ``g(x) = (x + n // x) // 2``. Since ``x`` is an integer, ``g(x) = floor((x + n/x) / 2)``,
and by the AM-GM inequality ``(x + n/x)/2 >= sqrt(n)``, so ``g(x) >= s``: every iterate is
``>= s``. The seed is ``2**ceil(b/2) > sqrt(2**b) > sqrt(n)`` (``b = bits(n)``), so it is
``>= s`` too. While ``x > s`` we have ``x >= s + 1 > sqrt(n)``, so ``n/x < x`` and
``g(x) < x``: the iterates decrease strictly, hence reach ``s`` after finitely many
steps. At ``x = s``, ``n // s >= s`` gives ``g(s) >= s``, so the stopping test fires and
``s`` is returned. It never returns early: the test fires only when ``g(x) >= x``, which
for ``x > s`` is impossible.

**Why 6 fixed steps suffice** for ``n < 2**64`` (5 for ``n < 2**32``). With ``rho`` the
ratio of the real Newton iterate ``y_k`` (``y_0 = x_0``, ``y_{k+1} = (y_k + n/y_k)/2``) to
``sqrt(n)``: the seed has ``rho_0 <= 2``, and ``rho' = (rho + 1/rho)/2`` gives 1.25, 1.025,
1 + 3.05e-4, 1 + 4.65e-8, 1 + 1.1e-15. ``g`` is increasing for ``x >= sqrt(n)``, so
induction gives ``x_k <= y_k`` (while ``x_k > s``). After 5 steps
``y_5 - sqrt(n) < 1.1e-15 * 2**32 < 1e-5``, so ``x_5 <= floor(y_5)`` is ``s`` or ``s + 1``
(the latter only when ``sqrt(n)`` is within 1e-5 below ``s + 1``). From ``x = s + 1``:
``n < (s+1)**2`` gives ``n // (s+1) <= s``, so ``g(s+1) <= s``. Hence ``x_6 = s``; the
``min`` keeps ``x = s`` afterwards. For ``n < 2**32`` the same bound is reached one step
earlier (``4.65e-8 * 2**16 < 1e-2``). The tests check these counts at the worst cases.

**The I-ViT quirk.** Ten steps from ``2**16`` without the stopping test: for ``n = 0`` the
iterate halves ten times (result 64); small ``n`` have not converged (``n = 10**4`` gives
108, not 100); near a perfect square minus one the iteration can oscillate between ``s``
and ``s + 1`` (so ``s + 1`` is returned); above about ``2**48`` ten steps are too few.
Arrays are computed without running the ten divisions where the result is known: for
``2**20 <= n < 2**42`` the iteration provably reaches ``s`` before its last step, so it
returns ``s`` unless ``n = (s + 1)**2 - 1`` (see ``_ivit_fast_mask``); every other entry,
and every entry with another seed or step count outside such a proven range, runs the
iteration itself. Results and register values are the iteration's in both cases.

>>> from intsim.ops.isqrt import isqrt, isqrt_ivit, isqrt_fixed
>>> isqrt(99), isqrt(2**64 - 1), isqrt(10**4)
(9, 4294967295, 100)
>>> isqrt_ivit(0), isqrt_ivit(10**4), isqrt_fixed(10**4)
(64, 108, 100)
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import leading_zeros

from ..core.arrays import as_int_array
from ..core.deprecation import renamed_keyword
from ..core.errors import ConfigError, DTypeError, OperandRangeError
from ..core.inttype import IntType
from ..regs.chain import Chain, Cost, Step
from ..regs.opresult import OpResult
from ..regs.prims import reg
from ..regs.runtime import BLOCK, check_input, check_variant
from .opspec import OpSpec

__all__ = [
    "isqrt", "isqrt_ivit", "isqrt_fixed", "isqrt_op", "newton_steps",
    "METHODS", "FIXED_STEPS_64", "FIXED_STEPS_32", "OPS",
]

METHODS: tuple[str, ...] = ("newton", "ivit", "fixed")
FIXED_STEPS_64 = 6  #: fixed Newton steps that make "fixed" exact for every n < 2**64
FIXED_STEPS_32 = 5  #: ... and for every n < 2**32
IVIT_STEPS = 10
IVIT_SEED = 1 << 16

_U64_MAX = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1
_U64 = IntType(64, signed=False)


# ---------------------------------------------------------------------------------------------
# numba kernels (uint64 throughout: mixing int64 and uint64 would promote to float64)
# ---------------------------------------------------------------------------------------------
@njit(cache=True, forceinline=True)
def _seed_u64(v):
    """``(2**ceil(bits(v)/2), shift)`` of the Newton seed, ``(0, 0)`` for ``v = 0``."""
    one = np.uint64(1)
    c = (np.uint64(64) - np.uint64(leading_zeros(v)) + one) >> one
    return (one << c) if v != np.uint64(0) else np.uint64(0), c


@njit(cache=True, forceinline=True)
def isqrt_newton_u64(n):
    """I-BERT's Newton floor sqrt of a uint64; returns (root, number of updates + final check)."""
    zero = np.uint64(0)
    one = np.uint64(1)
    if n == zero:
        return zero, np.int64(0)
    x = _seed_u64(n)[0]
    it = np.int64(0)
    while True:
        it += 1
        y = (x + n // x) >> one
        if y >= x:
            return x, it
        x = y


@njit(cache=True, forceinline=True)
def isqrt_fixed_u64(n, steps):
    """Fixed-count Newton from the normalized seed, with the min() that makes it monotone."""
    zero = np.uint64(0)
    one = np.uint64(1)
    if n == zero:
        return zero
    x = _seed_u64(n)[0]
    for _ in range(steps):
        y = (x + n // x) >> one
        if y < x:
            x = y
    return x


@njit(cache=True, forceinline=True)
def isqrt_ivit_u64(n, steps, seed):
    """I-ViT's fixed iteration: k = (k + n // k) // 2, ``steps`` times from ``seed``.

    Returns (k, max intermediate k + n // k seen) so callers can check the register.
    A k of 0 (impossible from a positive seed with the published 10 steps) yields 0.
    """
    one = np.uint64(1)
    k = seed
    peak = seed
    for _ in range(steps):
        if k == np.uint64(0):
            return k, peak
        t = k + n // k
        if t > peak:
            peak = t
        k = t >> one
    return k, peak


@njit(cache=True, forceinline=True)
def _first_numerator(n):
    """The largest Newton numerator x + n // x of "newton" and "fixed": the first one (the
    seed is a power of two, so n // seed is a shift); 0 for n = 0."""
    x, c = _seed_u64(n)
    return x + (n >> c)


@njit(cache=True, forceinline=True)
def isqrt_float_u64(n):
    """floor(sqrt(n)) from the float64 square root, corrected exactly (the same value as the
    Newton iterations, which are proven to return the floor square root). The float root is
    within 1 of the true one (relative error below 2**-52, roots below 2**32), so one
    correction each way suffices; branch-free, so loops over it vectorize."""
    one = np.uint64(1)
    top = np.uint64(4294967295)
    r = min(np.uint64(np.sqrt(np.float64(n))), top)
    r = r - np.uint64(r * r > n)
    return r + np.uint64((r < top) & ((r + one) * (r + one) <= n))


# The parallel kernels call their loop body as a separate, non-inlined function, compiled with the options
# explained at ibert._k_iexp_block: numba's parfor passes copy the whole prange body, so a call keeps it
# small and the cold compile fast. Here the body is one entry, so it is also marked forceinline: LLVM (not
# numba's IR inliner) inlines the small compiled function into the loop, which saves a call per entry.
@njit(cache=True, forceinline=True)
def _isqrt_entry(v, method, steps, seed):
    """``(root, iterations, largest numerator)`` of one uint64 entry by the per-entry routines
    (methods as :func:`_kernel`)."""
    if method == 1:
        r, p = isqrt_ivit_u64(v, steps, np.uint64(seed))
        return r, np.int64(steps), p
    if method == 0:
        r, it = isqrt_newton_u64(v)
        return r, it, _first_numerator(v)
    r = isqrt_float_u64(v) if method == 2 else isqrt_fixed_u64(v, steps)
    return r, np.int64(steps if v != np.uint64(0) else 0), _first_numerator(v)


@njit(cache=True, error_model="numpy", _nrt=False, forceinline=True)
def _kernel_item(i, n, method, steps, seed, out, iters, peak):
    """Entry i of :func:`_kernel` (the body of its parallel loop)."""
    out[i], iters[i], peak[i] = _isqrt_entry(np.uint64(n[i]), method, steps, seed)


@njit(cache=True, parallel=True)
def _kernel(n, method, steps, seed, out, iters, peak):
    """method 0: I-BERT's Newton, simulated (its iteration count is data dependent);
    1: I-ViT's fixed iteration, simulated; 2: "fixed" with at least 6 steps, whose result is
    proven to be the floor square root (computed from the float square root); 3: "fixed" with
    fewer steps, simulated."""
    for i in prange(n.shape[0]):
        _kernel_item(np.int64(i), n, method, steps, seed, out, iters, peak)


# Block-vectorized kernels: the same four methods, one Newton pass at a time over a block of entries, so
# that LLVM vectorizes each pass (the per-entry loops above stay scalar: a 64-bit integer division per
# update, and a data-dependent iteration count). n // x is computed by a float64 division corrected
# exactly (see _udiv_est). Every iterate after the first is >= floor(sqrt(n)) (see the module docstring),
# so its quotient n // x < 2**33 is far inside the estimate's exact range; only the first I-ViT step from a
# seed that is not a power of two can have a larger quotient: it is checked, and a block where the
# estimate could be off by more than one is redone with the exact per-entry routines. Only aggregates
# leave the kernel (see _kernel_blocks).
_BLOCK = 512  # fewer passes wasted on a block's slowest entry than with larger blocks (measured)
_F_LIMIT = 2.0 ** 51  # float64 quotients below this are within 1 of the floor quotient


@njit(cache=True, forceinline=True)
def _udiv_est(n, d):
    """``(floor(n / d), bad)`` for uint64 ``n`` and ``1 <= d < 2**53``: the float64 quotient
    ``q`` (relative error below 2**-51, so for ``q < 2**51`` within 1 of ``n / d`` and its
    truncation within 1 of the floor), corrected by the sign and size of the remainder
    ``n - q d`` (exact mod 2**64; its true value lies in ``(-d, 2d)``). ``bad`` is set when the
    estimate is ``>= 2**51`` (then the result must not be used)."""
    qf = np.float64(n) / np.float64(d)
    bad = qf >= _F_LIMIT
    return _udiv_fix(n, d, np.uint64(min(qf, _F_LIMIT))), bad


@njit(cache=True, forceinline=True)
def _udiv_near(n, d):
    """:func:`_udiv_est` for quotients known to be below 2**51 (no range test)."""
    return _udiv_fix(n, d, np.uint64(np.float64(n) / np.float64(d)))


@njit(cache=True, forceinline=True)
def _udiv_fix(n, d, q):
    """The floor quotient from an estimate ``q`` within 1 of it."""
    r = np.int64(n - q * d)
    q = q - np.uint64(r < 0)
    return q + np.uint64(r >= np.int64(d))


@njit(cache=True, error_model="numpy", _nrt=False)
def _kernel_block(b, n, method, steps, seed, okmask, out, stats, blk):
    """Block b of :func:`_kernel_blocks`: entries ``[b blk, (b+1) blk)``; writes the roots and
    ``stats[b]`` (see :func:`_kernel_blocks`)."""
    start = b * blk
    stop = min(start + blk, n.shape[0])
    ns = n[start:stop]
    xs = out[start:stop]
    m = ns.shape[0]
    one = np.uint64(1)
    zero = np.uint64(0)
    zeros = 0
    peak = zero
    total = 0
    bad = False
    nmax = zero
    closed = 0
    if method == 1:  # I-ViT: k = (k + n // k) >> 1, `steps` times, stuck at 0 once 0
        sd = np.uint64(seed)
        closed = -1
        if okmask != zero:  # in closed form where that is proven to give the iteration's values
            peak, zeros, nmax, closed = _ivit_closed(ns, xs, sd, steps, okmask)
        if closed < 0:
            closed = 0
            peak, zeros, nmax, bad = _ivit_newton(ns, xs, sd, steps)
        total = steps * m
    else:
        upd = 0
        left = 0  # entries above their floor square root (every iterate is >= it: x == s iff x * x <= n)
        for j in range(m):  # the seed 2**c and the first update, whose n // 2**c is a shift (and
            v = ns[j]       # whose numerator is the largest); after it x < 2**32, so x * x fits
            x, c = _seed_u64(v)
            p = x + (v >> c)
            peak = max(peak, p)
            y = p >> one
            upd += y < x
            x = min(x, y)
            xs[j] = x
            left += x * x > v
            zeros += v == zero
            nmax = max(nmax, v)
        if method == 2:  # proven exact: the float64 root, corrected by integer squares
            for j in range(m):
                xs[j] = isqrt_float_u64(ns[j])
            total = steps * (m - zeros)
        elif method == 3 and steps == 0:  # no update at all: the seeds
            for j in range(m):
                xs[j] = _seed_u64(ns[j])[0]
            total = 0
        else:  # Newton updates x = min(x, (x + n // x) >> 1): `steps` of them (3), or until every entry
            total = upd  # is at its floor square root, from which no update changes it (0)
            done = 1
            while left != 0 and not (method == 3 and done == steps):
                upd = 0
                left = 0
                for j in range(m):
                    x = xs[j]
                    v = ns[j]
                    q = _udiv_near(v, max(x, one))
                    y = (x + q) >> one
                    upd += y < x
                    x = min(x, y)
                    xs[j] = x
                    left += x * x > v
                done += 1
                total += upd
            # "newton": each nonzero entry made its updates plus the final check; "fixed": `steps` each
            total = total + (m - zeros) if method == 0 else steps * (m - zeros)
    if bad:  # an estimate was too coarse (possible only with a small custom seed): redo exactly
        return _block_exact(b, n, method, steps, seed, out, stats, start, stop)
    rmax = zero  # the largest root; "newton" and "fixed" return floor(sqrt(n)): their caller takes isqrt(max n)
    if method == 1 or method == 3:
        for j in range(m):
            rmax = max(rmax, xs[j])
    _put_stats(stats, b, total, zeros, peak, 0, rmax, nmax, closed)


@njit(cache=True, forceinline=True)
def _ivit_closed_entry(v, sd, c, okmask):
    """``(root, peak, good)`` of I-ViT's iteration for ``n = v`` from the seed ``sd = 2**c`` in
    closed form (see :func:`_ivit_fast_mask`): ``good`` is 1 when the bit length of ``v`` is in
    ``okmask`` (the iteration reaches ``s = floor(sqrt(v))`` before its last step) and ``v`` is
    not ``(s + 1)**2 - 1`` (the one case that leaves ``s`` again); then the root is ``s`` and the
    largest numerator is that of the first step or that of a step from ``s``, ``s + v // s``
    (``v = s**2 + r`` with ``0 <= r <= 2s``, so ``v // s = s + [r >= s] + [r >= 2s]``). With
    ``good = 0`` the root and peak are not the iteration's; branch-free, so loops vectorize."""
    one = np.uint64(1)
    s = isqrt_float_u64(v)
    r = v - s * s
    s2 = s << one
    e = np.uint64(64) - np.uint64(leading_zeros(v))  # the bit length (0 for v = 0, not in the mask)
    good = ((okmask >> min(e, np.uint64(63))) & one) & np.uint64(r != s2)
    pk = max(sd + (v >> c), s2 + np.uint64(r >= s) + np.uint64(r >= s2))
    return s, pk * good, good


@njit(cache=True, error_model="numpy", _nrt=False)
def _ivit_closed(ns, xs, sd, steps, okmask):
    """I-ViT's iteration on one block: in closed form (one pass, no division), then the entries
    that form does not cover by the per-entry iteration; returns ``(peak, zeros, nmax, closed)``, with
    ``closed`` the number of entries taken in closed form, or -1 (nothing done) when more than
    1/8 of the block is not covered: :func:`_ivit_newton` is faster then."""
    m = ns.shape[0]
    zero = np.uint64(0)
    c = np.uint64(63) - np.uint64(leading_zeros(sd))
    peak = sd
    zeros = 0
    nmax = zero
    nbad = 0
    for j in range(m):
        v = ns[j]
        r, pk, good = _ivit_closed_entry(v, sd, c, okmask)
        xs[j] = r
        peak = max(peak, pk)
        nbad += good == zero
        zeros += v == zero
        nmax = max(nmax, v)
    if nbad * 8 > m:
        return peak, zeros, nmax, -1
    if nbad != 0:
        for j in range(m):
            v = ns[j]
            if _ivit_closed_entry(v, sd, c, okmask)[2] == zero:
                r, pk = isqrt_ivit_u64(v, steps, sd)
                xs[j] = r
                peak = max(peak, pk)
    return peak, zeros, nmax, m - nbad


@njit(cache=True, error_model="numpy", _nrt=False)
def _ivit_newton(ns, xs, sd, steps):
    """I-ViT's iteration on one block, one Newton pass at a time (``xs`` receives the roots);
    returns ``(peak, zeros, nmax, bad)`` as :func:`_kernel_block` keeps them."""
    m = ns.shape[0]
    one = np.uint64(1)
    zero = np.uint64(0)
    zeros = 0
    bad = False
    nmax = zero
    peak = sd
    first = 0
    if steps > 0 and (sd & (sd - one)) == zero:  # a power-of-two seed: the first n // k is a shift
        c = np.uint64(63) - np.uint64(leading_zeros(sd))
        for j in range(m):
            v = ns[j]
            t = sd + (v >> c)
            peak = max(peak, t)
            xs[j] = t >> one
            zeros += v == zero
            nmax = max(nmax, v)
        first = 1
    elif steps > 0:  # the first step from another seed: n // seed may be large, the estimate is checked
        for j in range(m):
            v = ns[j]
            q, bd = _udiv_est(v, sd)
            bad |= bd
            t = sd + q
            peak = max(peak, t)
            xs[j] = t >> one
            zeros += v == zero
            nmax = max(nmax, v)
        first = 1
    else:
        for j in range(m):
            xs[j] = sd
            zeros += ns[j] == zero
            nmax = max(nmax, ns[j])
    for _ in range(first, steps):
        changed = 0
        for j in range(m):
            k = xs[j]
            q = _udiv_near(ns[j], max(k, one))
            t = k + q  # (k = 0 only for n = 0, where q = 0 // 1 = 0: t = 0, it stays 0)
            peak = max(peak, t)
            k2 = t >> one
            changed += k2 != k
            xs[j] = k2
        if changed == 0:  # a fixed point of every entry: the remaining steps change nothing
            break
    return peak, zeros, nmax, bad


@njit(cache=True, error_model="numpy", _nrt=False)
def _block_exact(b, n, method, steps, seed, out, stats, start, stop):
    """:func:`_kernel_block` with the per-entry routines (64-bit integer divisions)."""
    total = 0
    zeros = 0
    peak = np.uint64(0)
    rmax = np.uint64(0)
    nmax = np.uint64(0)
    for i in range(start, stop):
        v = n[i]
        nmax = max(nmax, v)
        zeros += v == np.uint64(0)
        r, it, p = _isqrt_entry(v, method, steps, seed)
        out[i] = r
        total += it
        peak = max(peak, p)
        rmax = max(rmax, r)
    _put_stats(stats, b, total, zeros, peak, 1, rmax, nmax, 0)


@njit(cache=True, forceinline=True)
def _put_stats(stats, b, total, zeros, peak, exact, rmax, nmax, closed):
    """Row b of the block statistics (the columns :func:`_kernel_blocks` lists)."""
    stats[b, 0] = total
    stats[b, 1] = zeros
    stats[b, 2] = peak
    stats[b, 3] = exact
    stats[b, 4] = rmax
    stats[b, 5] = nmax
    stats[b, 6] = closed


@njit(cache=True, parallel=True)
def _kernel_blocks(n, method, steps, seed, okmask, out, stats, blk):
    """The roots of every entry of ``n`` (uint64, flat) into ``out`` by blocks of ``blk``, with
    per-block aggregates in ``stats`` (uint64, one row per block): total iterations (as
    :func:`_kernel`'s ``iters`` would sum), zero entries, largest ``iter`` register value,
    whether the block fell back to the exact routines, largest root (0 for the exact methods 0 and
    2, whose largest root is the floor square root of the largest entry), largest entry, entries
    computed in closed form (I-ViT, see :func:`_ivit_closed`). Methods as
    :func:`_kernel`; ``okmask`` (method 1 only, else 0) is :func:`_ivit_fast_mask`."""
    for b in prange(stats.shape[0]):
        _kernel_block(np.int64(b), n, method, steps, seed, okmask, out, stats, blk)


@njit(cache=True, error_model="numpy", _nrt=False, forceinline=True)
def _kernel_values_item(i, n, out):
    """Entry i of :func:`_kernel_values` (the body of its parallel loop); returns 1 if it is negative."""
    v = n[i]
    if v < 0:
        out[i] = 0
        return 1
    out[i] = isqrt_float_u64(np.uint64(v))
    return 0


@njit(cache=True, parallel=True)
def _kernel_values(n, out, neg):
    """floor sqrt of every entry of a flat integer array; counts negative entries in neg[0]."""
    nneg = 0
    for i in prange(n.shape[0]):
        nneg += _kernel_values_item(np.int64(i), n, out)
    neg[0] = nneg


# ---------------------------------------------------------------------------------------------
# Python-int paths (exact at any size) and array plumbing
# ---------------------------------------------------------------------------------------------
def newton_steps(n: int) -> int:
    """Number of Newton updates plus the final check I-BERT's iteration makes for ``n``.

    >>> [newton_steps(v) for v in (0, 1, 2**32 - 1, 2**64 - 1)]
    [0, 2, 2, 2]
    """
    n = _py_nonneg(n, "n")
    if n == 0:
        return 0
    x = 1 << ((n.bit_length() + 1) >> 1)
    it = 0
    while True:
        it += 1
        y = (x + n // x) >> 1
        if y >= x:
            return it
        x = y


def _py_nonneg(n: Any, name: str) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise DTypeError(f"{name}: an integer is due, got {type(n).__name__} ({n!r})")
    v = int(n)
    if v < 0:
        raise OperandRangeError(f"{name}: square root of a negative number ({v})", count=1, index=(), value=v)
    return v


def _py_newton(n: int) -> int:
    if n == 0:
        return 0
    x = 1 << ((n.bit_length() + 1) >> 1)
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def _py_fixed(n: int, steps: int) -> int:
    if n == 0:
        return 0
    x = 1 << ((n.bit_length() + 1) >> 1)
    for _ in range(steps):
        x = min(x, (x + n // x) >> 1)
    return x


def _py_ivit(n: int, steps: int, seed: int) -> int:
    k = seed
    for _ in range(steps):
        if k == 0:
            return 0
        k = (k + n // k) >> 1
    return k


def _as_u64(n: Any, name: str) -> tuple[np.ndarray, tuple]:
    arr = as_int_array(n, name)
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        flat = np.flatnonzero(arr.reshape(-1) < 0)
        idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), arr.shape))
        raise OperandRangeError(
            f"{name}: {flat.size} entries are negative (no integer square root); first at index {idx}: "
            f"{int(arr[idx])}", count=int(flat.size), index=idx, value=int(arr[idx]))
    arr = np.ascontiguousarray(arr)
    # int64 entries are non-negative here: reinterpreting them as uint64 keeps every value (no copy)
    flat = arr.view(np.uint64) if arr.dtype == np.int64 else arr.astype(np.uint64)
    return flat.reshape(-1), arr.shape


def _check_steps(steps: Any, name: str = "steps") -> int:
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or not 0 <= int(steps) <= 4096:
        raise ConfigError(f"{name} must be an integer from 0 to 4096, got {steps!r}")
    return int(steps)


def _run(n: Any, method: int, steps: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Roots, per-entry iteration counts and ``iter`` register values by the per-entry kernel
    (the plain iteration the tests hold the block kernel's results and aggregates to)."""
    flat, shape = _as_u64(n, name)
    out = np.empty(flat.shape, dtype=np.uint64)
    iters = np.empty(flat.shape, dtype=np.int64)
    peak = np.empty(flat.shape, dtype=np.uint64)
    if flat.size:
        _kernel(flat, method, steps, seed, out, iters, peak)
    return out, iters, peak, shape


def _round_up(x: Fraction, bits: int = 80) -> Fraction:
    """The smallest ``bits``-bit binary fraction ``>= x`` (``x >= 0``): keeps upper bounds short."""
    if x == 0:
        return x
    e = x.numerator.bit_length() - x.denominator.bit_length() - bits
    if e >= 0:
        return Fraction(-(-x.numerator // (x.denominator << e)) << e)
    return Fraction(-(-(x.numerator << -e) // x.denominator), 1 << -e)


@functools.lru_cache(maxsize=64)
def _ivit_fast_mask(steps: int, seed: int) -> int:
    """Bit lengths ``e`` (bit ``e`` set) for which every ``n`` with ``bits(n) = e`` provably
    reaches ``s = floor(sqrt(n))`` within ``steps - 1`` steps of I-ViT's iteration from
    ``seed``; 0 unless the seed is a power of two and ``steps >= 2``.

    For such ``n`` the iteration's result and largest numerator have a closed form
    (:func:`_ivit_closed_entry`): after reaching ``s`` it stays there (``s + n // s`` is
    ``2s`` or ``2s + 1``) unless ``n = (s + 1)**2 - 1``, and at least one step from ``s``
    remains. Each numerator ``t_j = k_j + n // k_j`` of a step from ``k_j > s`` (``j >= 1``)
    is ``<= 2 k_j - 1 <= t_{j-1} - 1``, so the largest one is the first ``t_0`` or
    ``s + n // s``.

    The proof of reaching ``s`` by step ``a``: the real Newton iterate ``y_{j+1} = (y_j +
    n / y_j) / 2`` from ``y_0 = seed`` bounds the integer iterate (``k_j <= y_j`` while
    ``k_j > s``, see the module docstring), and ``d_j = y_j / sqrt(n) - 1`` follows
    ``d_{j+1} = d_j**2 / (2 (1 + d_j))`` from ``d_1 = (seed**2 + n) / (2 seed sqrt(n)) - 1``.
    ``y_a < s + 1`` gives ``k_a = s``, and ``s + 1 - sqrt(n) >= 1 / (s + 1 + sqrt(n))``, so
    ``d_a * 2 (isqrt(H) + 1)**2 < 1`` suffices, ``H = 2**e - 1`` the largest ``n`` of the
    bit length. ``d_1`` is largest at an end of the range (it depends on ``log n`` only
    through ``|log(seed / sqrt(n))|``), and is bounded above there with ``isqrt(n) <= sqrt(n)``;
    every ``d_j`` is rounded up, so the bound is rigorous. For the published 10 steps from
    ``2**16`` the mask covers ``2**20 <= n < 2**42``; the tests check each bit length against
    the iteration itself.
    """
    if steps < 2 or seed < 2 or seed & (seed - 1):
        return 0
    mask = 0
    for e in range(1, 63):
        lo, hi = 1 << (e - 1), (1 << e) - 1
        d = _round_up(max(Fraction(seed * seed + v, 2 * seed * math.isqrt(v)) - 1 for v in (lo, hi)))
        lim = 2 * (math.isqrt(hi) + 1) ** 2
        a = 1
        while a < steps and d * lim >= 1:
            d = _round_up(d * d / (2 * (1 + d)))
            a += 1
        if a < steps:
            mask |= 1 << e
    return mask


def _run_blocks(flat: np.ndarray, method: int, steps: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Roots of a flat uint64 array and the aggregates ``[iterations, zeros, max iter register,
    fallback blocks, max root, max entry, entries in closed form]`` (the block kernel: no per-entry
    arrays besides the roots)."""
    out = np.empty(flat.shape, dtype=np.uint64)
    if not flat.size:
        return out, [0, 0, 0, 0, 0, 0, 0]
    stats = np.zeros((-(-flat.size // _BLOCK), 7), dtype=np.uint64)
    okmask = np.uint64(_ivit_fast_mask(steps, seed) if method == 1 else 0)
    _kernel_blocks(flat, method, steps, seed, okmask, out, stats, _BLOCK)
    return out, [int(stats[:, 0].sum()), int(stats[:, 1].sum()), int(stats[:, 2].max()), int(stats[:, 3].sum()),
                 int(stats[:, 4].max()), int(stats[:, 5].max()), int(stats[:, 6].sum())]


def _result(out: np.ndarray, shape: tuple) -> np.ndarray:
    """int64 (every root of a uint64 value is < 2**32, so the bits are the same: a view, no copy)."""
    return out.view(np.int64).reshape(shape)


def isqrt(n: Any) -> Any:
    """Exact ``floor(sqrt(n))``: the value of I-BERT's Newton iteration (see the module docstring).

    Python ints run the iteration itself. Arrays take a faster route to the same values (the
    iteration is proven to return the floor square root): the float64 square root, corrected
    exactly with integer squares; :func:`isqrt_op` with ``variant="newton"`` runs the iteration
    element by element to count its operations.

    ``n`` is a non-negative Python int (any size; returns a Python int) or an integer
    array with values in [0, 2**64 - 1] (int64 or uint64; returns int64 of the same shape).
    Negative values raise :class:`~intsim.core.errors.OperandRangeError`, floats
    :class:`~intsim.core.errors.DTypeError`.

    >>> isqrt(np.array([0, 1, 15, 16, 2**62])).tolist()
    [0, 1, 3, 4, 2147483648]
    """
    if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)):
        return _py_newton(_py_nonneg(n, "n"))
    arr = as_int_array(n, "n")
    flat = np.ascontiguousarray(arr.reshape(-1))
    if flat.dtype.kind == "u" and flat.dtype != np.uint64:
        flat = flat.astype(np.uint64)
    elif flat.dtype.kind == "i" and flat.dtype not in (np.int32, np.int64):
        flat = flat.astype(np.int64)
    out = np.empty(flat.shape, dtype=np.int64)
    if flat.size:
        neg = np.zeros(1, dtype=np.int64)
        _kernel_values(flat, out, neg)  # the same values as the iteration (proven), much faster
        if neg[0]:
            _as_u64(arr, "n")  # raises, naming the first negative entry
    return out.reshape(arr.shape)


def isqrt_ivit(n: Any, steps: int = IVIT_STEPS, seed: int = IVIT_SEED) -> Any:
    """I-ViT's published square root: ``steps`` (10) iterations ``k = (k + n // k) // 2`` from
    ``seed`` (``2**16``; any from 2 to ``2**32 - 1``), with no convergence test. Reproduces the
    published quirk exactly (``isqrt_ivit(0) == 64``); inputs and outputs as :func:`isqrt` (n < 2**64).

    >>> isqrt_ivit(np.array([0, 34596, 2**40])).tolist()
    [64, 187, 1048576]
    """
    steps = _check_steps(steps)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 2 <= int(seed) < 2**32:
        # (from a seed of 1 the first numerator 1 + n // 1 of n = 2**64 - 1 would not fit 64 bits)
        raise ConfigError(f"seed must be an integer from 2 to 2**32 - 1, got {seed!r}")
    if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)):
        v = _py_nonneg(n, "n")
        if v > _U64_MAX:
            raise OperandRangeError(f"n: {v} exceeds the 64-bit range of this iteration", count=1, value=v)
        return _py_ivit(v, steps, int(seed))
    flat, shape = _as_u64(n, "n")
    return _result(_run_blocks(flat, 1, steps, int(seed))[0], shape)


def isqrt_fixed(n: Any, steps: int = FIXED_STEPS_64) -> Any:
    """Corrected fixed-iteration square root: seed ``2**ceil(bits(n)/2)``, then ``steps``
    Newton updates ``x = min(x, (x + n // x) // 2)``. Exact (``floor(sqrt(n))``) for every
    n < 2**64 when ``steps >= 6`` and for n < 2**32 when ``steps >= 5`` (proof in the module
    docstring); fewer steps can return a value above the floor sqrt, never below it.

    >>> isqrt_fixed(2**63 - 1), isqrt_fixed(2**63 - 1, steps=3)
    (3037000499, 3037005061)
    """
    steps = _check_steps(steps)
    if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)):
        v = _py_nonneg(n, "n")
        if v > _U64_MAX:
            raise OperandRangeError(f"n: {v} exceeds the 64-bit range of this iteration", count=1, value=v)
        return _py_fixed(v, steps)
    flat, shape = _as_u64(n, "n")
    return _result(_run_blocks(flat, 2 if steps >= FIXED_STEPS_64 else 3, steps, 0)[0], shape)


# ---------------------------------------------------------------------------------------------
# the operator form: OpResult with op counts and registers
# ---------------------------------------------------------------------------------------------
_METHOD_CODE = {"newton": 0, "ivit": 1, "fixed": 2}
# The chain of isqrt_op: the largest Newton numerator of an entry (``iter``) and its root. Op count
# parameters: ``nonzero`` (the nonzero entries) and ``updates`` (the Newton updates of the call).
_UPDATES = (Cost("div", (64,), "updates", "call"), Cost("add", ("iter",), "updates", "call"),
            Cost("shift", ("iter",), "updates", "call"))
ISQRT_CHAIN = Chain("isqrt", [  #: "newton" and "fixed"
    # the n == 0 test, the seed (a leading-zero count and a shift), the updates and their tests
    Step("iter", "e", IntType(33, signed=False), (
        Cost("compare", (64,)), Cost("compare", (64,), "nonzero", "call"), Cost("shift", (64,), "nonzero", "call"),
        *_UPDATES, Cost("compare", ("iter",), "updates", "call"))),
    Step("root", "e", IntType(32, signed=False)),
])
IVIT_CHAIN = Chain("isqrt", [Step("iter", "e", IntType(33, signed=False), _UPDATES), ISQRT_CHAIN.steps[1]])
Q_ITER, Q_ROOT = range(len(ISQRT_CHAIN))
QP_METHOD, QP_STEPS, QP_SEED = range(3)  #: the recorded kernel's parameter vector


@njit(cache=True, forceinline=True)
def _isqrt_chain(cf, st, tp, ton, i, j, v, kp):
    """The registers of one uint64 entry, recorded: ``iter`` <- its largest numerator, ``root``
    <- its root (the value returned)."""
    r, _, p = _isqrt_entry(v, kp[QP_METHOD], kp[QP_STEPS], kp[QP_SEED])
    reg(cf, st, tp, ton, i, j, Q_ITER, np.int64(p))  # below 2**49: the seed is at most 2**32
    return reg(cf, st, tp, ton, i, j, Q_ROOT, np.int64(r))


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_isqrt_block(i, cf, st, tp, ton, n, kp, out, B, size):
    """Block i of :func:`_k_isqrt` (the body of its parallel loop)."""
    p0 = i * B
    for p in range(p0, min(p0 + B, size)):
        out[p] = _isqrt_chain(cf, st, tp, ton, i, p - p0, n[p], kp)


@njit(cache=True, parallel=True)
def _k_isqrt(cf, st, tp, ton, n, kp, out, B):
    """isqrt_op's chain over the entries of ``n`` (uint64, flat) by blocks of ``B``, recorded."""
    size = n.shape[0]
    for i in prange(st.shape[0]):
        _k_isqrt_block(np.int64(i), cf, st, tp, ton, n, kp, out, B, size)


@renamed_keyword("profile", "variant")
def isqrt_op(n: Any, scale: float = 1.0, *, variant: str = "newton", steps: int | None = None,
             in_type: IntType | str = _U64, widths: dict | None = None, overflow: str = "raise",
             taps: bool = False) -> OpResult:
    """Integer square root as an operator returning :class:`~intsim.regs.opresult.OpResult`.

    ``variant`` is a method of the module table: ``"newton"`` (I-BERT, exact),
    ``"ivit"`` (published 10 steps from 2**16; ``steps`` overrides 10) or ``"fixed"``
    (corrected; ``steps`` defaults to 6). ``scale`` is the real value of one input step;
    the output scale is ``sqrt(scale)`` (a float; exact when ``scale`` is a power of 4).
    ``in_type`` (default uint64) is the declared input type; negative inputs raise.

    Registers (declared widths, overridable through ``widths``):

    * ``"iter"``: the largest Newton numerator ``x + n // x`` of each element (the first one
      for "newton"/"fixed"), unsigned 33 bits: the seed is at most ``2**32`` and
      ``n // x <= 2**32``, so it never overflows for 64-bit inputs;
    * ``"root"``: the result, unsigned 32 bits (every root of a 64-bit value fits).

    Op counts (exact, per call): "newton"/"fixed" count per element one ``compare`` for the
    ``n == 0`` test and, for ``n > 0``, one ``compare`` (the leading-zero count of the seed, a
    priority encoder) and one ``shift``; per Newton update one ``div``, ``add``, ``shift`` and
    ``compare`` (the stopping test or the ``min``). "newton" counts the updates it actually
    made (data dependent), "fixed" ``steps`` per nonzero element, "ivit" ``steps`` updates of
    one ``div``, ``add`` and ``shift`` per element.

    The registers are checked on the block kernel's aggregates (the largest numerator and the
    largest root); only when one of them would not fit (or with taps) does the chain run again
    entry by entry, recorded (:func:`_isqrt_chain`).

    >>> r = isqrt_op(np.array([0, 10**4]), variant="ivit")
    >>> r.values.tolist(), r.ops.total("div")
    ([64, 108], 20)
    """
    from ..core.dyadic import check_scale

    op = "isqrt"
    variant = check_variant(variant, METHODS, op)
    try:
        s = check_scale(scale, "scale")
    except ConfigError as exc:
        raise ConfigError(f"{op}: {exc}") from None
    steps = _check_steps(IVIT_STEPS if variant == "ivit" else FIXED_STEPS_64) if steps is None else _check_steps(steps)
    in_t = IntType.parse(in_type)
    # int64 data declared uint64 (the default): its one range condition, n >= 0, is checked by the
    # kernel (a negative entry reads as >= 2**63 through the uint64 view), saving a pass over the input
    arr = as_int_array(n, f"{op}: n")
    fused = arr.dtype == np.int64 and in_t.bits == 64 and not in_t.signed
    if not fused:
        arr = check_input(n, in_t, op, "n", min_ndim=0)
    chain = IVIT_CHAIN if variant == "ivit" else ISQRT_CHAIN
    regs = chain.registers(widths, overflow)
    code = _METHOD_CODE[variant]
    if code == 2 and steps < FIXED_STEPS_64:
        code = 3
    it_t, root_t = regs.type_of("iter"), regs.type_of("root")
    if in_t.min >= 0:  # check_input proved every value non-negative: the uint64 view keeps them all
        a = np.ascontiguousarray(arr)
        flat, shape = (a.view(np.uint64) if a.dtype == np.int64 else a.astype(np.uint64)).reshape(-1), a.shape
    else:
        flat, shape = _as_u64(arr, "n")
    out, (total, zeros, peak_max, _, root_max, n_max, _) = _run_blocks(flat, code, steps, IVIT_SEED)
    if code in (0, 2):
        root_max = math.isqrt(n_max)  # the roots are exact floor square roots, monotone in n
    if fused and n_max > _INT64_MAX:
        check_input(arr, in_t, op, "n", min_ndim=0)  # raises, naming the first negative entry
    taps_d: dict[str, np.ndarray] = {}
    if taps or peak_max > it_t.max or root_max > root_t.max:
        # a register would not hold a value (or taps): the chain again, entry by entry, recorded
        size = int(flat.size)
        B = min(BLOCK, max(size, 1))
        plan = chain.plan(regs, -(-size // B), B, taps)
        vals = np.empty(size, dtype=np.int64)
        if size:
            _k_isqrt(*plan.args(), flat, np.array([code, steps, IVIT_SEED], dtype=np.int64), vals, np.int64(B))
        taps_d = plan.finish(shape, "flat")
        root = vals.reshape(shape)
    else:  # every value fits both registers: nothing to record
        root = _result(out, shape)
    ops = chain.op_counts(regs, in_bits=in_t.bits, elements=int(out.size), rows=1,
                          params={"nonzero": int(out.size) - zeros, "updates": total})
    return OpResult(values=root, scale=math.sqrt(s), ops=ops, registers=regs, taps=taps_d)


#: the operators of this family (:mod:`intsim.ops.registry` lists them as ``isqrt.<name>``)
OPS: tuple[OpSpec, ...] = (OpSpec("isqrt", isqrt_op, ("n", "scale"), METHODS),)
