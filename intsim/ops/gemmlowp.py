"""gemmlowp / TFLite fixed-point non-linear operators, bit-exact.

A raw int32 in Q\\ *m*.\\ *n* format (``n = 31 - m``) has the real value ``raw / 2**n``.
gemmlowp's ``+``, ``-`` and ``&`` are plain wrapping int32 operations and ``*`` is
:func:`~intsim.quant.requant.saturating_rounding_doubling_high_mul` (SRDHM, ties toward +inf);
``Rescale`` and ``SaturatingRoundingMultiplyByPOT`` saturate when shifting left and use
:func:`~intsim.quant.requant.rounding_divide_by_pot` (RDBPOT, ties away from zero) when shifting
right. The operators here follow ``fixedpoint/fixedpoint.h`` (gemmlowp 16e8662c3491) and
TFLite's ``reference/softmax.h`` / ``common.h`` (tflite-micro 90b983c2b3f1) step by step:

==============================================================  ====================  ==================
operator                                                        input                 output
==============================================================  ====================  ==================
:func:`exp_on_interval_between_negative_one_quarter_and_0_excl`  Q0.31 in [-1/4, 0)   Q0.31
:func:`exp_on_negative_values`                                  Qk.(31-k), <= 0       Q0.31
:func:`one_over_one_plus_x_for_x_in_0_1`                        Q0.31 in [0, 1]       Q0.31
:func:`softmax_int8` (TFLite int8/uint8 reference kernel)       int8/uint8 + scale    int8/uint8/int16
:func:`get_inv_sqrt_quantized_multiplier_exp` (LayerNorm, L2)   int32 >= 0            multiplier, shift
==============================================================  ====================  ==================

Every operator returns an :class:`~intsim.regs.opresult.OpResult` (values as int64 arrays of
the input's shape, their scale, per-call op counts and named taps) and checks every
wrapping intermediate register through a :class:`~intsim.regs.registers.RegisterFile`
(defaults: 32-bit signed, as in the C code; override with ``registers={step: bits}``).
With ``overflow="raise"`` (default) a register that would wrap raises
:class:`~intsim.core.errors.RegisterOverflow` naming the operator, the step and the value;
``"wrap"`` reproduces the C code's silent int32 wrap-around, ``"saturate"`` clamps, and
``"record"`` keeps the C (wrapped) value while recording the event (the published code's
arithmetic *is* wrapping int32, so there is no wider "exact" value to keep).

Op counts follow the C reference one operation for one operation: SRDHM counts as a
32x32 multiply, a 64-bit add and shift, and a compare (the saturation test); RDBPOT as a
32-bit shift, two adds and two compares; bitwise and/select/mask operations count as
``compare`` (single-cycle logic). The softmax kernel's counts are those of the reference
kernel, which evaluates the exponential twice per element (once for the sum, once for
the output), even though intsim evaluates it once (the result is identical).

The kernels are serial numba loops (``cache=True``), which LLVM vectorizes where it can.

>>> import numpy as np
>>> from intsim.ops.gemmlowp import softmax_int8, exp_on_negative_values
>>> softmax_int8(np.array([10, 20, 30, 40, 50], dtype=np.int8), 0.1).values.tolist()
[-125, -120, -106, -68, 35]
>>> int(exp_on_negative_values(np.array([-(1 << 26)]), 5).values[0])    # exp(-1) in Q0.31
790015308
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import leading_zeros

from ..core.arrays import as_int_array, to_int64
from ..core.dyadic import check_scale, quantize_multiplier_greater_than_one
from ..core.errors import ConfigError, OperandRangeError, RegisterOverflow
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..regs.opresult import OpResult
from ..regs.registers import RegisterEvent, RegisterFile

__all__ = [
    "QuantOpResult",
    "SoftmaxParams",
    "exp_on_interval_between_negative_one_quarter_and_0_excl",
    "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1",
    "softmax_params",
    "softmax_int8",
    "get_inv_sqrt_quantized_multiplier_exp",
    "EXP_BARREL_CONSTANTS",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

#: exp(-2**j) in Q0.31 for j = -2 .. 4 (gemmlowp's barrel-shifter multipliers).
EXP_BARREL_CONSTANTS: tuple[int, ...] = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
_BARREL = np.array(EXP_BARREL_CONSTANTS, dtype=np.int64)
_EXP_M1_8 = 1895147668  # exp(-1/8), Q0.31
_ONE_THIRD = 715827883  # 1/3, Q0.31
_C48_17 = 1515870810  # 48/17, Q2.29
_CNEG32_17 = -1010580540  # -32/17, Q2.29
_HALF_THREE = (1 << 28) + (1 << 27)  # 1.5, Q3.28
_HALF_SQRT2 = 1518500250  # sqrt(2)/2, Q0.31

_POLICY = {"raise": 0, "wrap": 1, "saturate": 2, "record": 3}


@dataclass
class QuantOpResult(OpResult):
    """An :class:`OpResult` whose values carry a zero point: ``real = (values - zero_point) * scale``.

    >>> QuantOpResult(values=np.array([-128, 127]), scale=1 / 256, zero_point=-128).dequantize().tolist()
    [0.0, 0.99609375]
    """

    zero_point: int = 0

    def dequantize(self) -> np.ndarray:
        scale = self.scale.value if hasattr(self.scale, "value") else self.scale
        return (self.values - self.zero_point).astype(np.float64) * np.asarray(scale, dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# register plumbing between numba kernels and RegisterFile
# ------------------------------------------------------------------------------------------------


class _KernelRegisters:
    """Declared registers of one call, as the (lo, hi, bits, wrap-on-record) table a kernel checks.

    Under ``raise`` the kernel keeps the exact value (the call raises afterwards); under
    ``record`` it keeps the C code's wrapped value, except for the steps in
    ``exact_on_record`` (where the C code has no defined value), which stay exact."""

    def __init__(self, op: str, defaults: Mapping[str, Any], registers: Mapping[str, Any] | None,
                 overflow: str, exact_on_record: tuple[str, ...] = ()) -> None:
        extra = set(registers or {}) - set(defaults)
        if extra:
            raise ConfigError(f"{op}: unknown register step(s) {sorted(extra)}; valid: {', '.join(defaults)}")
        self.file = RegisterFile(op, dict(defaults, **(registers or {})), overflow=overflow)
        self.steps = list(defaults)
        base = RegisterFile(op, dict(defaults))
        #: True when some register is declared narrower/wider than the C code's: use checked kernels
        self.custom = any(self.file.type_of(k) != base.type_of(k) for k in self.steps)
        self.policy = _POLICY[self.file.overflow]
        spec = np.empty((len(self.steps), 4), dtype=np.int64)
        for s, step in enumerate(self.steps):
            t = self.file.type_of(step)
            spec[s] = (t.min, min(t.max, 2**63 - 1), t.bits, int(step not in exact_on_record))
        self.spec = spec

    def stats(self, nchunks: int) -> np.ndarray:
        return np.zeros((max(nchunks, 1), len(self.steps), 3), dtype=np.int64)

    def report(self, stats: np.ndarray, shape: tuple) -> None:
        """Turn kernel statistics into RegisterEvents; raise on the first step under ``raise``."""
        first_raise = None
        for s, step in enumerate(self.steps):
            counts = stats[:, s, 0]
            total = int(counts.sum())
            if total == 0:
                continue
            c = int(np.flatnonzero(counts)[0])
            flat, value = int(stats[c, s, 1]), int(stats[c, s, 2])
            idx = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
            t = self.file.type_of(step)
            ev = RegisterEvent(self.file.op, step, t.bits, t.signed, total, idx, value, self.file.overflow)
            self.file.events.append(ev)
            if first_raise is None and self.file.overflow == "raise":
                first_raise = ev
        if first_raise is not None:
            e = first_raise
            t = self.file.type_of(e.step)
            raise RegisterOverflow(
                f"{e.op}: register '{e.step}' ({t.name}) overflowed: {e.count} value(s) outside "
                f"[{t.min}, {t.max}]; first at index {e.index}: {e.value}",
                op=e.op, step=e.step, value=e.value, bits=e.bits)


# ------------------------------------------------------------------------------------------------
# scalar numba building blocks (int64 holding int32 raws)
# ------------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _fit(v, s, spec, stats, c, i, pol):  # pragma: no cover - numba
    """Pass v through register step s: the common case inline, the overflow case out of line."""
    if v >= spec[s, 0] and v <= spec[s, 1]:
        return v
    return _fit_overflow(v, s, spec, stats, c, i, pol)


@njit(cache=True, inline="never")
def _fit_overflow(v, s, spec, stats, c, i, pol):  # pragma: no cover - numba
    lo = spec[s, 0]
    hi = spec[s, 1]
    if stats[c, s, 0] == 0:
        stats[c, s, 1] = i
        stats[c, s, 2] = v
    stats[c, s, 0] += 1
    if pol == 0 or (pol == 3 and spec[s, 3] == 0):
        return v
    if pol == 2:
        return lo if v < lo else hi
    w = spec[s, 2]
    if w >= 64:
        return v
    if lo < 0:
        sh = np.int64(64) - w
        return (v << sh) >> sh
    return v & ((np.int64(1) << w) - np.int64(1))


@njit(cache=True, inline="always")
def _srdhm(a, b):  # pragma: no cover - numba
    # floor((a*b + 2**30) / 2**31); only MIN*MIN exceeds INT32_MAX (it gives 2**31)
    r = (a * b + np.int64(1 << 30)) >> np.int64(31)
    return r if r <= np.int64(INT32_MAX) else np.int64(INT32_MAX)


@njit(cache=True, inline="always")
def _srdhm32(a, b):  # pragma: no cover - numba
    """_srdhm for operands known to be int32 (the unchecked paths): the sign-extend-from-int32
    form lets LLVM use a 32x32->64 vector multiply (vpmuldq) instead of a 64x64 one."""
    r = (np.int64(np.int32(a)) * np.int64(np.int32(b)) + np.int64(1 << 30)) >> np.int64(31)
    return r if r <= np.int64(INT32_MAX) else np.int64(INT32_MAX)


@njit(cache=True, inline="always")
def _srdhm_nonneg(a, b):  # pragma: no cover - numba
    """_srdhm32 for non-negative int32 operands: ``(a b + 2**30) >> 31 <= 2**31 - 2``, no clamp.
    Zero-extended from 32 bits (the same values for such operands), so that LLVM uses the unsigned
    32x32->64 vector multiply (vpmuludq) without the sign-extending shifts of the signed form."""
    p = np.uint64(np.uint32(a)) * np.uint64(np.uint32(b)) + np.uint64(1 << 30)
    return np.int64(p >> np.uint64(31))


@njit(cache=True, inline="always")
def _rdbpot(x, e):  # pragma: no cover - numba
    # exact round-half-away of x / 2**e for any 0 <= e <= 62 (gemmlowp allows e <= 31)
    mask = (np.int64(1) << e) - np.int64(1)
    rem = x & mask
    thr = (mask >> np.int64(1)) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if rem > thr else np.int64(0))


@njit(cache=True, inline="always")
def _srmpot_left(x, e):  # pragma: no cover - numba
    thr = (np.int64(1) << np.int64(31 - e)) - np.int64(1)
    if x > thr:
        return np.int64(INT32_MAX)
    if x < -thr:
        return np.int64(INT32_MIN)
    return x << np.int64(e)


@njit(cache=True, inline="always")
def _exp_interval(a, spec, stats, c, i, pol, s0):  # pragma: no cover - numba
    """exp on [-1/4, 0): Taylor expansion around -1/8 (Q0.31 in and out)."""
    x = a + np.int64(1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, np.int64(2))
    t = _fit(x4_over_4 + x3, s0, spec, stats, c, i, pol)
    t = _fit(_srdhm(t, np.int64(_ONE_THIRD)) + x2, s0 + 1, spec, stats, c, i, pol)
    t = _rdbpot(t, np.int64(1))
    u = _fit(x + t, s0 + 2, spec, stats, c, i, pol)
    return _fit(np.int64(_EXP_M1_8) + _srdhm(np.int64(_EXP_M1_8), u), s0 + 3, spec, stats, c, i, pol)


@njit(cache=True, inline="always")
def _exp_neg(a, ib, spec, stats, c, i, pol, s0, barrel):  # pragma: no cover - numba
    """exp_on_negative_values for a Q(ib).(31-ib) raw a <= 0; returns (Q0.31 result, a', interval exp)."""
    frac = 31 - ib
    quarter = np.int64(1) << np.int64(frac - 2)
    a_mod = (a & (quarter - np.int64(1))) - quarter
    a0 = _srmpot_left(a_mod, ib) if ib > 0 else a_mod
    y0 = _exp_interval(a0, spec, stats, c, i, pol, s0)
    result = y0
    rem = a_mod - a
    for j in range(7):
        e = j - 2
        if ib > e:
            if rem & (np.int64(1) << np.int64(frac + e)):
                result = _srdhm(result, barrel[j])
    if ib > 5:
        if a < -(np.int64(1) << np.int64(36 - ib)):
            result = np.int64(0)
    if a == 0:
        result = np.int64(INT32_MAX)
    return result, a_mod, y0


@njit(cache=True, inline="always")
def _rounding_half_sum(a, b):  # pragma: no cover - numba
    s = a + b
    n = s + (np.int64(1) if s >= 0 else np.int64(-1))
    return n // 2 if n >= 0 else -((-n) // 2)


@njit(cache=True, inline="always")
def _one_over(a, spec, stats, c, i, pol, s0):  # pragma: no cover - numba
    """1/(1+x) for x in [0, 1]: Q0.31 in, Q0.31 out (Newton-Raphson in Q2.29)."""
    h = _rounding_half_sum(a, np.int64(INT32_MAX))
    x = _fit(np.int64(_C48_17) + _srdhm(h, np.int64(_CNEG32_17)), s0, spec, stats, c, i, pol)
    for _ in range(3):
        hx = _srdhm(h, x)
        om = _fit(np.int64(1 << 29) - hx, s0 + 1, spec, stats, c, i, pol)
        x = _fit(x + _srmpot_left(_srdhm(x, om), 2), s0 + 2, spec, stats, c, i, pol)
    return _srmpot_left(x, 1)


# Unchecked twins of the helpers above, used when every register has its default (C) width:
# the registers they skip cannot overflow for any valid input (verified exhaustively, see
# _verify_default_registers in tests/test_gemmlowp.py), and without the checks numba vectorizes.


@njit(cache=True, inline="always")
def _exp_interval_fast(a):  # pragma: no cover - numba
    x = a + np.int64(1 << 28)
    x2 = _srdhm32(x, x)
    x3 = _srdhm32(x2, x)
    x4 = _srdhm32(x2, x2)
    t = _rdbpot(x4, np.int64(2)) + x3
    t = _srdhm32(t, np.int64(_ONE_THIRD)) + x2
    t = _rdbpot(t, np.int64(1))
    return np.int64(_EXP_M1_8) + _srdhm32(np.int64(_EXP_M1_8), x + t)


@njit(cache=True, inline="always")
def _barrel_step(result, rem, bit, c):  # pragma: no cover - numba
    sel = (rem >> np.int64(bit)) & np.int64(1)
    return result + sel * (_srdhm32(result, np.int64(c)) - result)  # branch-free select


@njit(cache=True, inline="always")
def _exp_neg_fast(a, ib, barrel):  # pragma: no cover - numba
    frac = 31 - ib
    quarter = np.int64(1) << np.int64(frac - 2)
    a_mod = (a & (quarter - np.int64(1))) - quarter
    a0 = _srmpot_left(a_mod, ib) if ib > 0 else a_mod
    y0 = _exp_interval_fast(a0)
    rem = a_mod - a
    result = _barrel_step(y0, rem, frac - 2, 1672461947)
    result = _barrel_step(result, rem, frac - 1, 1302514674)
    if ib > 0:
        result = _barrel_step(result, rem, frac, 790015084)
    if ib > 1:
        result = _barrel_step(result, rem, frac + 1, 290630308)
    if ib > 2:
        result = _barrel_step(result, rem, frac + 2, 39332535)
    if ib > 3:
        result = _barrel_step(result, rem, frac + 3, 720401)
    if ib > 4:
        result = _barrel_step(result, rem, frac + 4, 242)
    if ib > 5:
        result = np.int64(0) if a < -(np.int64(1) << np.int64(36 - ib)) else result
    result = np.int64(INT32_MAX) if a == 0 else result
    return result, a_mod, y0


@njit(cache=True, inline="always")
def _one_over_fast(a):  # pragma: no cover - numba
    h = _rounding_half_sum(a, np.int64(INT32_MAX))
    x = np.int64(_C48_17) + _srdhm32(h, np.int64(_CNEG32_17))
    for _ in range(3):
        x = x + _srmpot_left(_srdhm32(x, np.int64(1 << 29) - _srdhm32(h, x)), 2)
    return _srmpot_left(x, 1)


@njit(cache=True, inline="always")
def _bit_length_fast(u):  # pragma: no cover - numba
    """Bit length of 0 <= u < 2**32 by a branch-free binary search (vectorizable)."""
    n = np.int64(0)
    for w in (16, 8, 4, 2, 1):
        t = np.int64(1) if u >= (np.int64(1) << np.int64(w)) else np.int64(0)
        n += t * w
        u >>= t * w
    return n + (np.int64(1) if u > 0 else np.int64(0))


@njit(cache=True, inline="always")
def _inv_sqrt_fast_one(inp, reverse_shift):  # pragma: no cover - numba
    """Branch-free twin of the unchecked path of _inv_sqrt_one (same results for 0 <= inp < 2**31)."""
    small = inp <= 1
    v = max(inp, np.int64(2))
    big = np.int64(1) if v >= np.int64(1 << 29) else np.int64(0)
    v = v >> (2 * big)  # v // 4 for the (positive) int32 inputs >= 2**29
    sh = np.int64(11) + big
    pairs = (np.int64(leading_zeros(np.uint64(v))) - 33) // 2 - 1  # (clz32(v) - 1) // 2 - 1
    sh -= pairs
    v = v << (2 * pairs)
    half_in = _rdbpot(v >> np.int64(1), np.int64(1))
    # the first Newton step from x = 1 (Q3.28) in closed form: every product in it is exact
    # (x*x*x = 1, so x3 = 2**28; SRDHM(1.5, 1) = 1.5/8 = 2**25 + 2**24; SRDHM(half_in, 2**28) =
    # floor(half_in / 8 + 1/2)), then the other four as written. Over every int32 input >= 2 each
    # iterate x lies in [2**28, 2**29) and no saturating shift saturates (checked exhaustively; the
    # INTSIM_EXHAUSTIVE sweep of the tests compares this path with the checked one on every input),
    # and SRDHM of non-negative operands cannot reach its clamp: plain shifts and products here.
    x = (np.int64((1 << 25) + (1 << 24)) - ((half_in + np.int64(4)) >> np.int64(3))) << np.int64(3)
    for _ in range(4):
        x3 = _srdhm_nonneg(_srdhm_nonneg(x, x), x) << np.int64(6)
        x = (_srdhm_nonneg(np.int64(_HALF_THREE), x) - _srdhm_nonneg(half_in, x3)) << np.int64(3)
    x = _srdhm32(x, np.int64(_HALF_SQRT2))
    neg = np.int64(1) if sh < 0 else np.int64(0)
    x = x << (neg * -sh)
    sh = sh * (1 - neg)
    if small:
        return np.int64(INT32_MAX), np.int64(0)
    return x, sh * reverse_shift


# ------------------------------------------------------------------------------------------------
# kernels: serial loops for the checked paths; the unchecked element-wise paths run in chunks of
# _CHUNK elements over the cores (prange), each chunk a call of a serial kernel (a plain loop that
# LLVM vectorizes; inlined into the prange body, the same loop runs about 4x slower)
# ------------------------------------------------------------------------------------------------
_CHUNK = 16384


@njit(cache=True)
def _exp_neg_kernel(a, ib, out, taps, with_taps, spec, stats, pol, barrel):  # pragma: no cover - numba
    for i in range(a.size):
        r, a_mod, y0 = _exp_neg(np.int64(a[i]), ib, spec, stats, 0, i, pol, 0, barrel)
        out[i] = r
        if with_taps:
            taps[0, i] = a_mod
            taps[1, i] = y0


@njit(cache=True)
def _exp_neg_fast_serial(a, ib, out, taps, with_taps, barrel):  # pragma: no cover - numba
    if with_taps:
        for i in range(a.size):
            r, a_mod, y0 = _exp_neg_fast(np.int64(a[i]), ib, barrel)
            out[i] = r
            taps[0, i] = a_mod
            taps[1, i] = y0
    elif ib == 5:  # TFLite softmax's Q5.26: a constant ib lets LLVM fold the barrel tests and vectorize
        for i in range(a.size):
            out[i] = _exp_neg_fast(np.int64(a[i]), 5, barrel)[0]
    else:
        for i in range(a.size):
            out[i] = _exp_neg_fast(np.int64(a[i]), ib, barrel)[0]


@njit(cache=True, parallel=True)
def _exp_neg_fast_kernel(a, ib, out, taps, with_taps, barrel):  # pragma: no cover - numba
    n = a.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = c * _CHUNK
        hi = min(lo + _CHUNK, n)
        _exp_neg_fast_serial(a[lo:hi], ib, out[lo:hi], taps[:, lo:hi] if with_taps else taps, with_taps, barrel)


@njit(cache=True)
def _exp_interval_kernel(a, out, spec, stats, pol):  # pragma: no cover - numba
    for i in range(a.size):
        out[i] = _exp_interval(np.int64(a[i]), spec, stats, 0, i, pol, 0)


@njit(cache=True)
def _exp_interval_fast_serial(a, out):  # pragma: no cover - numba
    for i in range(a.size):
        out[i] = _exp_interval_fast(np.int64(a[i]))


@njit(cache=True, parallel=True)
def _exp_interval_fast_kernel(a, out):  # pragma: no cover - numba
    n = a.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = c * _CHUNK
        hi = min(lo + _CHUNK, n)
        _exp_interval_fast_serial(a[lo:hi], out[lo:hi])


@njit(cache=True)
def _one_over_kernel(a, out, spec, stats, pol):  # pragma: no cover - numba
    for i in range(a.size):
        out[i] = _one_over(np.int64(a[i]), spec, stats, 0, i, pol, 0)


@njit(cache=True)
def _one_over_fast_serial(a, out):  # pragma: no cover - numba
    for i in range(a.size):
        out[i] = _one_over_fast(np.int64(a[i]))


@njit(cache=True, parallel=True)
def _one_over_fast_kernel(a, out):  # pragma: no cover - numba
    n = a.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = c * _CHUNK
        hi = min(lo + _CHUNK, n)
        _one_over_fast_serial(a[lo:hi], out[lo:hi])


@njit(cache=True, inline="always")
def _inv_sqrt_one(inp, reverse_shift, checked, spec, stats, i, pol):  # pragma: no cover - numba
    if inp <= 1:
        return np.int64(INT32_MAX), np.int64(0)
    sh = np.int64(11)
    if inp >= np.int64(1 << 29):  # int32 input: one division by 4 is always enough
        inp = inp // 4
        sh += 1
    pairs = (31 - _bit_length_fast(inp)) // 2 - 1  # (clz32 - 1) // 2 - 1
    sh -= pairs
    inp = inp << np.int64(2 * pairs)
    half_in = _rdbpot(inp >> np.int64(1), np.int64(1))
    x = np.int64(1 << 28)
    for _ in range(5):
        x3 = _srmpot_left(_srdhm(_srdhm(x, x), x), 6)
        t = _srdhm(np.int64(_HALF_THREE), x) - _srdhm(half_in, x3)
        if checked:
            t = _fit(t, 0, spec, stats, 0, i, pol)
        x = _srmpot_left(t, 3)
    x = _srdhm(x, np.int64(_HALF_SQRT2))
    if sh < 0:
        x = x << np.int64(-sh)
        if checked:
            x = _fit(x, 1, spec, stats, 0, i, pol)
        sh = np.int64(0)
    return x, sh * reverse_shift


@njit(cache=True)
def _inv_sqrt_kernel(a, reverse_shift, mult, shift, spec, stats, pol):  # pragma: no cover
    """mult, shift per element (every register checked)."""
    for i in range(a.size):
        m, sh = _inv_sqrt_one(np.int64(a[i]), reverse_shift, True, spec, stats, i, pol)
        mult[i] = m
        shift[i] = sh


@njit(cache=True)
def _inv_sqrt_fast_serial(a, reverse_shift, mult, shift):  # pragma: no cover - numba
    """_inv_sqrt_kernel for the default (C) register widths: nothing to check."""
    for i in range(a.size):
        m, sh = _inv_sqrt_fast_one(np.int64(a[i]), reverse_shift)
        mult[i] = m
        shift[i] = sh


@njit(cache=True, parallel=True)
def _inv_sqrt_fast_kernel(a, reverse_shift, mult, shift):  # pragma: no cover - numba
    n = a.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = c * _CHUNK
        hi = min(lo + _CHUNK, n)
        _inv_sqrt_fast_serial(a[lo:hi], reverse_shift, mult[lo:hi], shift[lo:hi])


@njit(cache=True)
def _softmax_table(nd, diff_min, mult, lshift, single, spec, stats, pol, barrel):  # pragma: no cover - numba
    """For d = 0, -1, ..., -(nd-1): the Q5.26 scaled difference, its exp (Q0.31) and whether
    d >= diff_min. Register steps 0 (scaled_diff) and 1..4 (exp polynomial) are checked."""
    scaled = np.zeros(nd, dtype=np.int64)
    ex = np.zeros(nd, dtype=np.int64)
    active = np.zeros(nd, dtype=np.int64)
    for j in range(nd):
        d = np.int64(-j)
        if d < diff_min:
            continue
        active[j] = 1
        if single:
            total = np.int64(31) - lshift
            s = (d * mult + (np.int64(1) << (total - np.int64(1)))) >> total
            s = _fit(s, 0, spec, stats, 0, j, pol)
        else:
            s = _srdhm(_fit(d << lshift, 0, spec, stats, 0, j, pol), mult)
        scaled[j] = s
        r, _, _ = _exp_neg(s, 5, spec, stats, 0, j, pol, 1, barrel)
        ex[j] = r
    return scaled, ex, active


@njit(cache=True)
def _softmax_fast_kernel(x, ex, active, out_bits, out_min, out_max, out, row_sum, row_recip, row_nbou, row_max,
                         row_active, suspect):  # pragma: no cover - numba
    """The softmax rows without per-element register checks; a row whose Q12.19 sum leaves
    int32 or whose output exponent leaves [0, 31] is marked ``suspect`` (the caller then
    reruns the checked kernel). The sum's addends are non-negative, so its partial sums
    only grow: checking the final sum checks every add. The exponential depends only on
    d = x - max, so it comes from the per-call table ``ex``; rows longer than the table
    also tabulate their outputs (the same values the per-element formula gives)."""
    rows, depth = x.shape
    nd = ex.size
    resc = np.empty(nd, dtype=np.int64)
    for j in range(nd):
        resc[j] = _rdbpot(ex[j], np.int64(12)) * active[j]
    lut = np.empty(nd, dtype=np.int64)
    for r in range(rows):
        mx = np.int64(x[r, 0])
        for c in range(1, depth):
            mx = max(mx, np.int64(x[r, c]))
        row_max[r] = mx
        acc = np.int64(0)
        cnt = np.int64(0)
        for c in range(depth):
            j = mx - np.int64(x[r, c])
            acc += resc[j]
            cnt += active[j]
        row_sum[r] = acc
        row_active[r] = cnt
        if acc > np.int64(INT32_MAX) or acc < np.int64(1 << 19):
            suspect[r] = True
            continue
        hp = 32 - _bit_length_fast(acc)
        nbou = np.int64(12 - hp)
        expo = nbou + np.int64(31 - out_bits)
        if expo > 31:
            suspect[r] = True
            continue
        recip = _one_over_fast((acc << np.int64(hp)) - np.int64(1 << 31))
        row_recip[r] = recip
        row_nbou[r] = nbou
        if depth > nd:
            for j in range(nd):
                v = min(max(_rdbpot(_srdhm32(recip, ex[j]), expo) + out_min, out_min), out_max)
                lut[j] = v if active[j] else out_min
            for c in range(depth):
                out[r, c] = lut[mx - np.int64(x[r, c])]
        else:
            for c in range(depth):
                j = mx - np.int64(x[r, c])
                v = min(max(_rdbpot(_srdhm32(recip, ex[j]), expo) + out_min, out_min), out_max)
                out[r, c] = v if active[j] else out_min


@njit(cache=True)
def _softmax_kernel(x, ex, active, out_bits, out_min, out_max, out, row_sum, row_recip, row_nbou, row_max,
                    row_active, spec, stats, pol):  # pragma: no cover - numba
    """Rows of the TFLite reference softmax with every register checked; ``ex``/``active`` are
    indexed by -(x - rowmax). Register steps: 5 sum, 6..8 reciprocal, 9 output_exponent,
    10 output; stats per row."""
    rows, depth = x.shape
    for r in range(rows):
        mx = np.int64(x[r, 0])
        for c in range(1, depth):
            mx = max(mx, np.int64(x[r, c]))
        row_max[r] = mx
        acc = np.int64(0)
        cnt = np.int64(0)
        for c in range(depth):
            j = mx - np.int64(x[r, c])
            if active[j]:
                cnt += 1
                acc = _fit(acc + _rdbpot(ex[j], np.int64(12)), 5, spec, stats, r, c, pol)
        row_sum[r] = acc
        row_active[r] = cnt
        u = acc & np.int64(0xFFFFFFFF)
        if u == 0:
            # the C code would shift by 32 (undefined behaviour); flag it and emit min
            row_nbou[r] = -1000
            row_recip[r] = 0
            for c in range(depth):
                out[r, c] = out_min
            continue
        hp = 32 - _bit_length_fast(u)
        nbou = np.int64(12 - hp)
        shifted = ((u << np.int64(hp)) - np.int64(1 << 31)) & np.int64(0xFFFFFFFF)
        if shifted >= np.int64(1 << 31):
            shifted -= np.int64(1) << np.int64(32)
        recip = _one_over(shifted, spec, stats, r, 0, pol, 6)
        row_recip[r] = recip
        row_nbou[r] = nbou
        expo = _fit(nbou + np.int64(31 - out_bits), 9, spec, stats, r, 0, pol)
        for c in range(depth):
            j = mx - np.int64(x[r, c])
            if active[j]:
                v = _fit(_rdbpot(_srdhm(recip, ex[j]), expo) + out_min, 10, spec, stats, r, c, pol)
                out[r, c] = min(max(v, out_min), out_max)
            else:
                out[r, c] = out_min


# ------------------------------------------------------------------------------------------------
# op-count recipes (per element)
# ------------------------------------------------------------------------------------------------


def _srdhm_ops(n: int = 1) -> OpCounts:
    return OpCounts().add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n).add("compare", (32,), n)


def _rdbpot_ops(n: int = 1) -> OpCounts:
    return OpCounts().add("shift", (32,), n).add("add", (32,), 2 * n).add("compare", (32,), 2 * n)


def _srmpot_left_ops(n: int = 1) -> OpCounts:
    return OpCounts().add("shift", (32,), n).add("compare", (32,), 2 * n)


def _exp_interval_ops() -> OpCounts:
    # x = a + 1/8; x2, x3, x4; x4/4; + x3; * 1/3; + x2; /2; x + ..; c * ..; c + ..
    return (_srdhm_ops(5) + _rdbpot_ops(2) + OpCounts().add("add", (32,), 5))


def _exp_neg_ops(ib: int) -> OpCounts:
    n_barrel = sum(1 for e in range(-2, 5) if ib > e)
    ops = OpCounts().add("compare", (32,), 1).add("add", (32,), 2)  # a & mask; - quarter; rem = a' - a
    if ib > 0:
        ops += _srmpot_left_ops(1)
    ops += _exp_interval_ops()
    ops += _srdhm_ops(n_barrel) + OpCounts().add("compare", (32,), 2 * n_barrel)  # bit test + select
    if ib > 5:
        ops.add("compare", (32,), 2)
    ops.add("compare", (32,), 2)  # a == 0 -> One
    return ops


def _one_over_ops() -> OpCounts:
    ops = OpCounts().add("add", (64,), 2).add("shift", (64,), 1).add("compare", (64,), 1)  # RoundingHalfSum
    ops += _srdhm_ops(1) + OpCounts().add("add", (32,), 1)  # seed
    ops += (_srdhm_ops(2) + OpCounts().add("add", (32,), 2) + _srmpot_left_ops(1)) * 3
    ops += _srmpot_left_ops(1)
    return ops


def _inv_sqrt_ops() -> OpCounts:
    ops = OpCounts().add("compare", (32,), 1)  # input <= 1
    ops.add("shift", (32,), 4).add("compare", (32,), 2).add("add", (32,), 3)  # normalization, clz
    ops += _rdbpot_ops(1)  # half input
    ops += (_srdhm_ops(4) + _srmpot_left_ops(2) + OpCounts().add("add", (32,), 1)) * 5
    ops += _srdhm_ops(1) + OpCounts().add("compare", (32,), 1).add("shift", (32,), 1)
    return ops


# ------------------------------------------------------------------------------------------------
# public operators
# ------------------------------------------------------------------------------------------------


def _int_input(x: Any, name: str, lo: int, hi: int) -> np.ndarray:
    """``x`` as a contiguous native integer array whose entries lie in [lo, hi] (no copy when
    possible; kernels widen each element to int64 themselves). Floats raise DTypeError, values
    outside [lo, hi] OperandRangeError naming the first offending index and value."""
    arr = as_int_array(x, name)
    if arr.dtype == np.uint64 or not arr.dtype.isnative:
        arr = to_int64(arr, name)
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")  # (keeps 0-d arrays 0-d, unlike ascontiguousarray)
    info = np.iinfo(arr.dtype)
    if arr.size and (info.min < lo or info.max > hi):
        amin = int(arr.min()) if info.min < lo else lo
        amax = int(arr.max()) if info.max > hi else hi
        if amin < lo or amax > hi:
            bad = (arr < lo) | (arr > hi) if lo >= info.min else arr > hi
            flat = np.flatnonzero(bad.reshape(-1))
            idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), arr.shape)) if arr.ndim else ()
            value = int(arr.reshape(-1)[flat[0]])
            raise OperandRangeError(f"{name}: {flat.size} of {arr.size} entries outside the input range [{lo}, {hi}]; "
                                    f"first at index {idx}: {value}", count=int(flat.size), index=idx, value=value)
    return arr


_EXP_STEPS = {"poly_a": 32, "poly_b": 32, "poly_c": 32, "poly_out": 32}


def exp_on_interval_between_negative_one_quarter_and_0_excl(
    a: Any, *, overflow: str = "raise", registers: Mapping[str, Any] | None = None,
) -> OpResult:
    """gemmlowp's ``exp`` on ``[-1/4, 0)``: Q0.31 raw in ``[-2**29, 0)`` -> Q0.31 raw.

    A 4th-order Taylor expansion around -1/8 (``x = a + 1/8``, ``c = exp(-1/8) =
    1895147668``, ``1/3 = 715827883``)::

        y = c + c * (x + (((x**4 / 4 + x**3) * 1/3) + x**2) / 2)

    with ``*`` = SRDHM, ``/4`` and ``/2`` = RDBPOT, ``+`` wrapping int32 adds (registers
    ``poly_a``, ``poly_b``, ``poly_c``, ``poly_out``). gemmlowp's test tolerance is 500 LSB.

    >>> int(exp_on_interval_between_negative_one_quarter_and_0_excl(np.array([-(1 << 29)])).values[0])
    1672462419
    """
    aa = _int_input(a, "a", -(1 << 29), -1)
    regs = _KernelRegisters("exp_on_interval_between_negative_one_quarter_and_0_excl", _EXP_STEPS, registers,
                            overflow)
    flat = np.ascontiguousarray(aa.reshape(-1))
    out = np.empty(flat.size, dtype=np.int64)
    if regs.custom:
        stats = regs.stats(1)
        _exp_interval_kernel(flat, out, regs.spec, stats, regs.policy)
        regs.report(stats, aa.shape)
    else:
        _exp_interval_fast_kernel(flat, out)
    vals = out.reshape(aa.shape)
    return OpResult(values=vals, scale=2.0**-31, ops=_exp_interval_ops() * int(aa.size), registers=regs.file,
                    taps={"output": vals})


def exp_on_negative_values(
    a: Any, integer_bits: int = 5, *, overflow: str = "raise", registers: Mapping[str, Any] | None = None,
    taps: bool = True,
) -> OpResult:
    """gemmlowp ``exp_on_negative_values``: ``exp(a)`` for a Q\\ *k*.(31-*k*) raw ``a <= 0``
    (``k = integer_bits``, 0..29; TFLite's softmax uses k = 5), as a Q0.31 raw.

    Exact semantics::

        quarter = 2**(29 - k);  a' = (a & (quarter - 1)) - quarter     # a' in [-1/4, 0)
        y = exp_on_interval(Rescale<0>(a'))                            # saturating << k
        rem = a' - a                                                   # the multiple of 1/4 removed
        for j in -2..4 with k > j: if bit (31 - k + j) of rem: y = SRDHM(y, exp(-2**j))
        if k > 5 and a < -32: y = 0
        if a == 0: y = INT32_MAX                                       # One() in Q0.31

    Accuracy (Q5.26): max error 489 LSB of Q0.31 (gemmlowp's test tolerance: 500).
    Registers: the four Taylor-polynomial adds (``poly_a`` .. ``poly_out``).
    Taps: ``a_mod_quarter_minus_one_quarter``, ``interval_exp``, ``output``.

    >>> r = exp_on_negative_values(np.array([0, -(1 << 26), -(16 << 26)]))
    >>> r.values.tolist(), r.scale
    ([2147483647, 790015308, 242], 4.656612873077393e-10)
    """
    if isinstance(integer_bits, bool) or not isinstance(integer_bits, (int, np.integer)) \
            or not 0 <= int(integer_bits) <= 29:
        raise ConfigError(f"integer_bits must be an integer from 0 to 29, got {integer_bits!r}")
    ib = int(integer_bits)
    aa = _int_input(a, "a", INT32_MIN, 0)
    regs = _KernelRegisters("exp_on_negative_values", _EXP_STEPS, registers, overflow)
    flat = np.ascontiguousarray(aa.reshape(-1))
    out = np.empty(flat.size, dtype=np.int64)
    tp = np.empty((2, flat.size if taps else 0), dtype=np.int64)
    if regs.custom:
        stats = regs.stats(1)
        _exp_neg_kernel(flat, ib, out, tp, bool(taps), regs.spec, stats, regs.policy, _BARREL)
        regs.report(stats, aa.shape)
    else:
        _exp_neg_fast_kernel(flat, ib, out, tp, bool(taps), _BARREL)
    vals = out.reshape(aa.shape)
    tap = {}
    if taps:
        tap = {"a_mod_quarter_minus_one_quarter": tp[0].reshape(aa.shape), "interval_exp": tp[1].reshape(aa.shape),
               "output": vals}
    return OpResult(values=vals, scale=2.0**-31, ops=_exp_neg_ops(ib) * int(aa.size), registers=regs.file, taps=tap)


_ONE_OVER_STEPS = {"seed": 32, "newton_error": 32, "newton_update": 32}


def one_over_one_plus_x_for_x_in_0_1(
    a: Any, *, overflow: str = "raise", registers: Mapping[str, Any] | None = None,
) -> OpResult:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: ``1 / (1 + a)`` for a Q0.31 raw
    ``a`` in ``[0, INT32_MAX]`` (x in [0, 1)), as a Q0.31 raw (``1.0`` saturates to INT32_MAX).

    Exact semantics (``h`` Q0.31, ``x`` Q2.29)::

        h = RoundingHalfSum(a, One)                    # (1 + x) / 2, ties away from zero
        x = 48/17 + SRDHM(h, -32/17)                   # 1515870810, -1010580540 (register seed)
        repeat 3: x = x + Rescale<2>(SRDHM(x, One_Q2.29 - SRDHM(h, x)))   (newton_error, newton_update)
        return Rescale<0>(x / 2)                       # raw unchanged, then saturating << 1

    Accuracy: at most about 6.7 LSB from the exact value (gemmlowp's test: 6 LSB against
    the rounded reference on its test values).

    >>> one_over_one_plus_x_for_x_in_0_1(np.array([0, 1 << 30, 2**31 - 1])).values.tolist()
    [2147483647, 1431655762, 1073741820]
    """
    aa = _int_input(a, "a", 0, INT32_MAX)
    regs = _KernelRegisters("one_over_one_plus_x_for_x_in_0_1", _ONE_OVER_STEPS, registers, overflow)
    flat = np.ascontiguousarray(aa.reshape(-1))
    out = np.empty(flat.size, dtype=np.int64)
    if regs.custom:
        stats = regs.stats(1)
        _one_over_kernel(flat, out, regs.spec, stats, regs.policy)
        regs.report(stats, aa.shape)
    else:
        _one_over_fast_kernel(flat, out)
    vals = out.reshape(aa.shape)
    return OpResult(values=vals, scale=2.0**-31, ops=_one_over_ops() * int(aa.size), registers=regs.file,
                    taps={"output": vals})


_INV_SQRT_STEPS = {"newton_difference": 32, "multiplier": 32}


def get_inv_sqrt_quantized_multiplier_exp(
    x: Any, input_scale: float = 1.0, *, reverse_shift: int = -1, overflow: str = "raise",
    registers: Mapping[str, Any] | None = None,
) -> OpResult:
    """TFLite ``GetInvSqrtQuantizedMultiplierExp`` (integer LayerNorm and L2Normalization):
    ``1/sqrt(x)`` for int32 ``x >= 0`` as a multiplier and a shift per element.

    Exact semantics::

        if x <= 1: return (INT32_MAX, 0)               # 0 is treated as 1 (no error)
        shift = 11; while x >= 2**29: x //= 4; shift += 1
        p = (clz32(x) - 1) // 2 - 1;  shift -= p;  x <<= 2p      # x in [2**27, 2**29)
        in = x >> 1 (Q3.28);  half_in = RDBPOT(in, 1);  y = 1.0 (Q3.28)
        repeat 5: y = Rescale<3>(1.5*y - half_in * Rescale<3>(y*y*y))   # SRDHM products, Q6 -> Q3
        y = SRDHM(y, 1518500250)                        # * sqrt(2)/2
        if shift < 0: y <<= -shift; shift = 0           # plain int32 shift (register multiplier)
        return (y, shift * reverse_shift)

    so that ``1/sqrt(x) ~ multiplier * 2**(-shift * reverse_shift) / 2**31``. ``values`` are the
    multipliers, ``taps["shift"]`` the returned shifts, and ``scale`` the per-element float64
    array ``2**(-shift * reverse_shift - 31) / sqrt(input_scale)`` (built from the shifts when
    first read), so ``dequantize()`` is ``1/sqrt(x * input_scale)``. Negative ``x`` raises
    OperandRangeError (TFLite DCHECKs it).

    >>> r = get_inv_sqrt_quantized_multiplier_exp(np.array([4, 1 << 20]))
    >>> r.values.tolist(), r.taps["shift"].tolist(), r.dequantize().round(6).tolist()
    ([1073741828, 268435457], [0, -7], [0.5, 0.000977])
    """
    if reverse_shift not in (1, -1):
        raise ConfigError(f"reverse_shift must be 1 or -1, got {reverse_shift!r}")
    s_in = check_scale(input_scale, "input_scale")
    aa = _int_input(x, "x", 0, INT32_MAX)
    regs = _KernelRegisters("get_inv_sqrt_quantized_multiplier_exp", _INV_SQRT_STEPS, registers, overflow)
    flat = np.ascontiguousarray(aa.reshape(-1))
    mult = np.empty(flat.size, dtype=np.int64)
    shift = np.empty(flat.size, dtype=np.int64)
    base = 1.0 / math.sqrt(s_in)
    if not 2.0**-900 < base < 2.0**900:
        raise ConfigError(f"input_scale {s_in} is outside the supported range")
    if regs.custom:
        stats = regs.stats(1)
        _inv_sqrt_kernel(flat, np.int64(reverse_shift), mult, shift, regs.spec, stats, regs.policy)
        regs.report(stats, aa.shape)
    else:
        _inv_sqrt_fast_kernel(flat, np.int64(reverse_shift), mult, shift)
    vals = mult.reshape(aa.shape)
    sh = shift.reshape(aa.shape)
    return _InvSqrtResult(base, reverse_shift, values=vals, ops=_inv_sqrt_ops() * int(aa.size),
                          registers=regs.file, taps={"shift": sh, "multiplier": vals})


class _InvSqrtResult(OpResult):
    """The :class:`OpResult` of :func:`get_inv_sqrt_quantized_multiplier_exp`. Its per-element
    ``scale``, ``base * 2**(-shift * reverse_shift - 31)`` (an exact power-of-two scaling:
    ``base`` is normal and the exponent lies in [-43, -31]), is built from the shifts when it is
    first read, so a caller that needs only the multipliers and shifts, as TFLite's do, does not
    pay for a float64 array of the input's size."""

    def __init__(self, base: float, reverse_shift: int, **fields: Any) -> None:
        self._scale_from = (base, reverse_shift, fields["taps"]["shift"])
        super().__init__(scale=None, **fields)

    @property  # type: ignore[override]
    def scale(self) -> Any:
        if self._scale is None:
            base, rs, shift = self._scale_from
            self._scale = np.ldexp(base, -shift * rs - 31)
        return self._scale

    @scale.setter
    def scale(self, value: Any) -> None:
        self._scale = value  # None (from OpResult's __init__): built when first read


# ------------------------------------------------------------------------------------------------
# TFLite int8 softmax
# ------------------------------------------------------------------------------------------------

_SOFTMAX_STEPS = {
    "scaled_diff": 32, "exp_poly_a": 32, "exp_poly_b": 32, "exp_poly_c": 32, "exp_poly_out": 32,
    "sum": 32, "recip_seed": 32, "recip_newton_error": 32, "recip_newton_update": 32,
    "output_exponent": IntType(5, signed=False), "output": 32,
}


@dataclass(frozen=True)
class SoftmaxParams:
    """The prepared parameters of TFLite's int8 softmax (``CalculateSoftmaxParams``)."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int
    real_multiplier: float


def softmax_params(input_scale: float, beta: float = 1.0, *, single_rounding: bool = False,
                   float32_params: bool = True) -> SoftmaxParams:
    """TFLite's softmax Prepare step for 8-bit input (``PreprocessSoftmaxScaling`` and
    ``CalculateInputRadius`` with 5 integer bits)::

        real = min(beta * input_scale * 2**26, 2**31 - 1)        # single-rounding build: 2**30 - 1
        (input_multiplier, input_left_shift) = QuantizeMultiplierGreaterThanOne(real)
        diff_min = -floor(31 * 2**26 / 2**input_left_shift)

    TFLite stores ``input_scale`` and ``beta`` as float32 and widens them to double;
    ``float32_params=True`` (default) does the same, ``False`` uses the given float64
    values (the design note's figures are computed that way: 0.1 gives 1717986918, 23, -248;
    float32 0.1 gives 1717986944, 23, -248).

    >>> softmax_params(0.1, float32_params=False)
    SoftmaxParams(input_multiplier=1717986918, input_left_shift=23, diff_min=-248, real_multiplier=6710886.4)
    """
    s = check_scale(input_scale, "input_scale")
    b = check_scale(beta, "beta")
    if float32_params:
        s, b = float(np.float32(s)), float(np.float32(b))
    cap = float((1 << 30) - 1) if single_rounding else float((1 << 31) - 1)
    real = min(b * s * float(1 << 26), cap)
    if not real > 1.0:
        raise ConfigError(f"beta * input_scale * 2**26 = {real} must exceed 1 (input_scale {s} is too small "
                          "for TFLite's int8 softmax)")
    mult, lshift = quantize_multiplier_greater_than_one(real, single_rounding=single_rounding)
    radius = math.floor(31.0 * float(1 << 26) / float(1 << lshift))
    return SoftmaxParams(mult, lshift, -radius, real)


def softmax_int8(
    x: Any, input_scale: float, *, beta: float = 1.0, in_type: IntType | str = "int8",
    out_type: IntType | str = "int8", single_rounding: bool = False, float32_params: bool = True,
    overflow: str = "raise", registers: Mapping[str, Any] | None = None, taps: bool = True,
) -> QuantOpResult:
    """TFLite's reference int8/uint8 softmax (``reference_ops::Softmax``) along the last axis.

    Per row (``params`` from :func:`softmax_params`)::

        d = x - max(row)                                   # <= 0
        if d < diff_min: output min(out) (contributes 0 to the sum)
        s = MBQM_GreaterThanOne(d, input_multiplier, input_left_shift)   # Q5.26
              (double rounding: SRDHM(d << left_shift, mult); single: MBQM single rounding)
        e = exp_on_negative_values(s, 5)                   # Q0.31
        sum += Rescale<12>(e) = RDBPOT(e, 12)              # Q12.19, wrapping int32 add
        hp = clz32(sum); nbou = 12 - hp
        recip = one_over_one_plus_x((uint32(sum) << hp) - 2**31)
        out = clamp(RDBPOT(SRDHM(recip, e), nbou + 31 - bits(out)) + min(out), min(out), max(out))

    Output scale ``2**-bits(out)``; zero point ``min(out)`` for signed outputs (int8: 1/256,
    -128; int16: 1/65536, -32768) and 0 for uint8. ``in_type`` is int8 or uint8; ``out_type``
    int8, uint8 or int16.

    Registers (``overflow``): ``sum`` wraps (to INT32_MIN) once 4096 maxima are summed; the RDBPOT
    exponent ``output_exponent`` (declared as gemmlowp's valid range, 5-bit unsigned [0, 31])
    exceeds 31 once the Q12.19 sum reaches 2**28 (about 512 maxima for int8 output), where
    gemmlowp asserts and release builds shift out of range; ``record`` then uses the exact
    rounding of ``x / 2**exponent``. A sum that wraps to exactly 0 is refused (the C code would
    shift by 32). Taps: ``row_max``, ``diff``, ``scaled_diff``, ``exp``, ``sum``,
    ``num_bits_over_unit``, ``reciprocal``, ``output``.

    >>> r = softmax_int8(np.array([[10, 20, 30, 40, 50], [0, 0, 0, 0, 0]]), 0.1)
    >>> r.values.tolist(), r.scale, r.zero_point
    ([[-125, -120, -106, -68, 35], [-77, -77, -77, -77, -77]], 0.00390625, -128)
    """
    in_t = IntType.parse(in_type)
    out_t = IntType.parse(out_type)
    if in_t not in (IntType(8), IntType(8, signed=False)):
        raise ConfigError(f"softmax_int8 takes int8 or uint8 input (TFLite's int16 softmax is a LUT kernel), "
                          f"got {in_t.name}")
    if out_t not in (IntType(8), IntType(8, signed=False), IntType(16)):
        raise ConfigError(f"softmax_int8 output must be int8, uint8 or int16, got {out_t.name}")
    params = softmax_params(input_scale, beta, single_rounding=single_rounding, float32_params=float32_params)
    xx = _int_input(x, "x", in_t.min, in_t.max)
    if xx.ndim == 0:
        raise ConfigError("softmax_int8 needs at least one axis (it normalizes over the last)")
    if xx.shape[-1] == 0:
        raise ConfigError("softmax_int8: the last axis is empty")
    regs = _KernelRegisters("softmax_int8", _SOFTMAX_STEPS, registers, overflow, exact_on_record=("output_exponent",))
    depth = xx.shape[-1]
    x2 = np.ascontiguousarray(xx.reshape(-1, depth))
    rows = x2.shape[0]
    nd = 1 << in_t.bits
    tstats = regs.stats(1)
    scaled, ex, active = _softmax_table(nd, np.int64(params.diff_min), np.int64(params.input_multiplier),
                                        np.int64(params.input_left_shift), bool(single_rounding), regs.spec,
                                        tstats, regs.policy, _BARREL)
    out = np.empty(x2.shape, dtype=np.int64)
    row_sum = np.empty(rows, dtype=np.int64)
    row_recip = np.empty(rows, dtype=np.int64)
    row_nbou = np.empty(rows, dtype=np.int64)
    row_max = np.empty(rows, dtype=np.int64)
    row_active = np.empty(rows, dtype=np.int64)
    stats = regs.stats(rows)
    checked = regs.custom
    if not checked:
        suspect = np.zeros(rows, dtype=np.bool_)
        _softmax_fast_kernel(x2, ex, active, out_t.bits, out_t.min, out_t.max, out, row_sum, row_recip, row_nbou,
                             row_max, row_active, suspect)
        checked = bool(suspect.any())
    if checked:
        _softmax_kernel(x2, ex, active, out_t.bits, out_t.min, out_t.max, out, row_sum, row_recip, row_nbou,
                        row_max, row_active, regs.spec, stats, regs.policy)
    lead = xx.shape[:-1]

    _report_softmax(regs, tstats, stats, xx.shape)
    zero_rows = np.flatnonzero(row_nbou == -1000)
    if zero_rows.size:
        r0 = int(zero_rows[0])
        raise RegisterOverflow(
            f"softmax_int8: register 'sum' wrapped to exactly 0 in row {np.unravel_index(r0, lead) if lead else ()} "
            "(8192 or more maxima); the C code would then shift by 32, which is undefined",
            op="softmax_int8", step="sum", value=0, bits=32)
    vals = out.reshape(xx.shape)
    zp = out_t.min if out_t.signed else 0
    n = int(xx.size)
    n_active = int(row_active.sum())
    ops = OpCounts().add("compare", (in_t.bits,), n).add("add", (32,), n).add("compare", (32,), n)  # max, diff, mask
    per_exp = (OpCounts().add("shift", (32,), 1) + _srdhm_ops(1)) if not single_rounding else \
        OpCounts().add("mul", (32, 32), 1).add("add", (64,), 1).add("shift", (64,), 1)
    per_exp += _exp_neg_ops(5)
    ops += per_exp * (2 * n_active)  # the reference kernel evaluates exp twice per active element
    ops += (_rdbpot_ops(1) + OpCounts().add("add", (32,), 1)) * n_active  # Rescale<12> and the sum
    ops += (OpCounts().add("compare", (32,), 1).add("shift", (32,), 1).add("add", (32,), 3) + _one_over_ops()) * rows
    ops += (_srdhm_ops(1) + _rdbpot_ops(1) + OpCounts().add("add", (32,), 1).add("compare", (32,), 2)) * n_active
    ops.add("read", (in_t.bits,), 2 * n).add("write", (out_t.bits,), n)
    tap: dict[str, np.ndarray] = {}
    if taps:
        j = row_max[:, None] - x2
        diff = (-j).reshape(xx.shape)
        tap = {
            "row_max": row_max.reshape(lead), "diff": diff,
            "scaled_diff": np.where(active[j], scaled[j], 0).reshape(xx.shape),
            "exp": np.where(active[j], ex[j], 0).reshape(xx.shape),
            "sum": row_sum.reshape(lead), "num_bits_over_unit": row_nbou.reshape(lead),
            "reciprocal": row_recip.reshape(lead), "output": vals,
        }
    return QuantOpResult(values=vals, scale=2.0 ** -out_t.bits, ops=ops, registers=regs.file, taps=tap,
                         zero_point=zp)


def _report_softmax(regs: _KernelRegisters, tstats: np.ndarray, stats: np.ndarray, shape: tuple) -> None:
    """Report table-build events (indexed by the input difference d) and per-row events."""
    steps_table = {0, 1, 2, 3, 4}
    t_only = tstats.copy()
    r_only = stats.copy()
    for s in range(len(regs.steps)):
        if s not in steps_table:
            t_only[:, s, :] = 0
    first_raise = None
    for s, step in enumerate(regs.steps):
        src = t_only if s in steps_table else r_only
        counts = src[:, s, 0]
        total = int(counts.sum())
        if total == 0:
            continue
        c = int(np.flatnonzero(counts)[0])
        flat, value = int(src[c, s, 1]), int(src[c, s, 2])
        if s in steps_table:
            idx: tuple = (-flat,)  # the input difference d = x - max whose evaluation overflowed
        else:
            row = tuple(int(i) for i in np.unravel_index(c, shape[:-1])) if len(shape) > 1 else ()
            idx = row + (flat,) if step in ("sum", "output") else row  # per-element or per-row register
        t = regs.file.type_of(step)
        ev = RegisterEvent(regs.file.op, step, t.bits, t.signed, total, idx, value, regs.file.overflow)
        regs.file.events.append(ev)
        if first_raise is None and regs.file.overflow == "raise":
            first_raise = ev
    if first_raise is not None:
        e = first_raise
        t = regs.file.type_of(e.step)
        raise RegisterOverflow(
            f"{e.op}: register '{e.step}' ({t.name}) overflowed: {e.count} value(s) outside [{t.min}, {t.max}]; "
            f"first at index {e.index}: {e.value}", op=e.op, step=e.step, value=e.value, bits=e.bits)
