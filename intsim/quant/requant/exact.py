"""Exact ``round(x * m / 2**k)`` in any rounding mode, products beyond int64 included (numba,
128-bit products): :func:`mul_shift_round` and the helpers the back-ends use."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ...core.arrays import as_int_array, to_int64
from ...core.errors import ConfigError, OperandRangeError
from ...core.rounding import (
    AWAY,
    CEIL,
    FLOOR,
    HALF_AWAY,
    HALF_DOWN,
    HALF_EVEN,
    HALF_ODD,
    HALF_UP,
    JAM,
    JAM_UNBIASED,
    ROUNDING_CODE,
    TRUNC,
    rounding_mode,
    shift_right,
)
from .common import INT64_MAX, INT64_MIN, check_param_shape, int_arg

# ------------------------------------------------------------------------------------------------
# exact x * m / 2**k with rounding, including products beyond int64 (numba)
# ------------------------------------------------------------------------------------------------

_M32 = np.uint64(0xFFFFFFFF)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U32 = np.uint64(32)


@numba.njit(cache=True, forceinline=True)
def _abs_u64(v):  # pragma: no cover - numba
    if v < 0:
        return np.uint64(-(v + 1)) + _U1
    return np.uint64(v)


@numba.njit(cache=True, forceinline=True)
def _mul_u64_128(a, b):  # pragma: no cover - numba
    """Full 128-bit product of two uint64 values as (hi, lo).

    Proof of exactness: with a = ah*2**32 + al and b = bh*2**32 + bl (all limbs < 2**32),
    every partial product is at most (2**32-1)**2 = 2**64 - 2**33 + 1, and each sum below
    adds at most two values < 2**32 to one such product, staying <= 2**64 - 1: no uint64
    operation wraps except ``t << 32``, which is meant to keep only t's low 32 bits.
    a*b = ah*bh*2**64 + (ah*bl + al*bh)*2**32 + al*bl, and the carries (``>> 32``) move
    exactly the bits above 2**32 of each column into the next.
    """
    al = a & _M32
    ah = a >> _U32
    bl = b & _M32
    bh = b >> _U32
    t = al * bl
    w0 = t & _M32
    c = t >> _U32
    t = ah * bl + c
    w1 = t & _M32
    w2 = t >> _U32
    t = al * bh + w1
    c = t >> _U32
    hi = ah * bh + w2 + c
    lo = (t << _U32) + w0
    return hi, lo


@numba.njit(cache=True, forceinline=True)
def round_code(fl, cls, mode):  # pragma: no cover - numba
    """Round v = fl + frac (fl = floor v) where cls codes frac: 0 zero, 1 below 1/2, 2 a tie,
    3 above 1/2; ``mode`` is a :data:`~intsim.core.rounding.ROUNDING_CODE`. Mirrors
    intsim.core.rounding._round_int."""
    if mode == JAM:
        return fl | 1
    if cls == 0 or mode == FLOOR:
        return fl
    if mode == CEIL:
        return fl + 1
    if mode == TRUNC:
        return fl + 1 if fl < 0 else fl
    if mode == AWAY:
        return fl if fl < 0 else fl + 1
    if mode == JAM_UNBIASED:
        return fl | 1
    if cls == 1:
        return fl
    if cls == 3:
        return fl + 1
    if mode == HALF_EVEN:
        return fl + (fl & 1)
    if mode == HALF_ODD:
        return fl + 1 - (fl & 1)
    if mode == HALF_AWAY:
        return fl if fl < 0 else fl + 1
    if mode == HALF_UP:
        return fl + 1
    if mode == HALF_DOWN:
        return fl
    return fl + 1 if fl < 0 else fl  # half_zero


@numba.njit(cache=True)
def _wide_kernel(x, m, k, mode, res, huge, wide):  # pragma: no cover - numba
    """For flat int64 x, m, k: res = round(x*m / 2**k) (exact, 128-bit product), huge = the
    result's magnitude may reach 2**61 (res not set), wide = the product does not fit int64."""
    two61 = np.uint64(1) << np.uint64(61)
    two63 = np.uint64(1) << np.uint64(63)
    for i in range(x.size):
        xi = x[i]
        mi = m[i]
        ki = k[i]
        neg = (xi < 0) != (mi < 0)
        hi, lo = _mul_u64_128(_abs_u64(xi), _abs_u64(mi))
        if hi == _U0 and lo == _U0:
            neg = False
        # does the signed product fit int64? (-2**63 does, +2**63 does not)
        if neg:
            wide[i] = hi != _U0 or lo > two63
        else:
            wide[i] = hi != _U0 or lo >= two63
        # magnitude quotient Q (qh, ql) and the class of the remainder
        qh = _U0
        ql = _U0
        cls = 0
        if ki == 0:
            qh = hi
            ql = lo
        elif ki < 64:
            s = np.uint64(ki)
            ql = (lo >> s) | (hi << (np.uint64(64) - s))
            qh = hi >> s
            rem = lo & ((_U1 << s) - _U1)
            half = _U1 << (s - _U1)
            if rem == _U0:
                cls = 0
            elif rem < half:
                cls = 1
            elif rem == half:
                cls = 2
            else:
                cls = 3
        elif ki == 64:
            ql = hi
            if lo == _U0:
                cls = 0
            elif lo < two63:
                cls = 1
            elif lo == two63:
                cls = 2
            else:
                cls = 3
        elif ki < 128:
            s = np.uint64(ki - 64)
            ql = hi >> s
            remh = hi & ((_U1 << s) - _U1)
            halfh = _U1 << (s - _U1)
            if remh == _U0 and lo == _U0:
                cls = 0
            elif remh < halfh:
                cls = 1
            elif remh == halfh and lo == _U0:
                cls = 2
            else:
                cls = 3
        else:
            cls = 0 if (hi == _U0 and lo == _U0) else 1
        if qh != _U0 or ql >= two61:
            huge[i] = True
            res[i] = 0
            continue
        q = np.int64(ql)
        if not neg:
            fl = q
        elif cls == 0:
            fl = -q
        else:
            fl = -q - 1
            cls = 4 - cls
        res[i] = round_code(fl, cls, mode)


def _round_python(x: int, m: int, k: int, mode: str) -> int:
    """round(x*m / 2**k) with Python ints (for the rare results beyond 2**61)."""
    return int(shift_right(int(x) * int(m), int(k), mode))


def mul_shift_round(x: Any, m: Any, k: Any, rounding: str = "half_even") -> np.ndarray:
    """Exact ``round(x * m / 2**k)`` under a named rounding mode, as int64.

    ``x``, ``m`` and ``k >= 0`` are integer scalars or arrays; ``m`` and ``k`` broadcast to
    ``x``'s shape (else ShapeError), so the result has ``x``'s shape. The product is exact at
    any size (int64 when it fits, else the 128-bit numba kernel); a result that does not fit
    int64 raises OperandRangeError.

    >>> mul_shift_round([-3, 3, 2**62], [1, 1, 2**31 - 1], [1, 1, 40], "half_away").tolist()
    [-2, 2, 9007199250546688]
    """
    mode = rounding_mode(rounding)
    xx = to_int64(as_int_array(x, "x"), "x")
    mm = to_int64(as_int_array(m, "m"), "m")
    kk = int_arg(k, "k")
    check_param_shape("mul_shift_round", "m", mm.shape, "x", xx.shape)
    check_param_shape("mul_shift_round", "k", kk.shape, "x", xx.shape)
    if kk.size and int(kk.min()) < 0:
        raise ConfigError(f"k (shift) must be >= 0, got {int(kk.min())}")
    res, _ = mul_shift_round_exact(xx, mm, kk, mode)
    return res


def abs_max(a: np.ndarray) -> int:
    return max(abs(int(a.min())), abs(int(a.max()))) if a.size else 0


def mul_shift_round_exact(xx: np.ndarray, mm: np.ndarray, kk: np.ndarray, mode: str,
                           product_fits: bool | None = None,
                           clip: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """round(x*m/2**k) exactly; returns (int64 values, product-does-not-fit-int64 mask or None).

    Results beyond int64 raise OperandRangeError, unless ``clip = (lo, hi)`` (int64 bounds) is
    given: then those results are clipped to it exactly (values inside int64 are left alone)."""
    if product_fits is None:
        product_fits = abs_max(xx) * abs_max(mm) <= INT64_MAX
    if product_fits:
        return np.asarray(shift_right(xx * mm, kk, mode), dtype=np.int64), None
    xb, mb, kb = np.broadcast_arrays(xx, mm, np.minimum(kk, 200))
    shape = xb.shape
    xf, mf, kf = (np.array(a, dtype=np.int64, copy=True).reshape(-1) for a in (xb, mb, kb))
    res = np.empty(xf.size, dtype=np.int64)
    huge = np.zeros(xf.size, dtype=np.bool_)
    wide = np.zeros(xf.size, dtype=np.bool_)
    _wide_kernel(xf, mf, kf, ROUNDING_CODE[mode], res, huge, wide)
    for i in np.flatnonzero(huge):
        v = _round_python(int(xf[i]), int(mf[i]), int(kf[i]), mode)
        if clip is not None:
            v = min(max(v, clip[0]), clip[1])
        if not INT64_MIN <= v <= INT64_MAX:
            idx = tuple(int(j) for j in np.unravel_index(int(i), shape))
            raise OperandRangeError(f"round(x*m/2**k) at index {idx} is {v}, beyond int64", count=1,
                                    index=idx, value=v)
        res[i] = v
    return res.reshape(shape), wide.reshape(shape)
