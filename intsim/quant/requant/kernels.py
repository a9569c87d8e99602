"""The numba chains of :func:`~intsim.quant.requant.requantize`, one per back-end family
(dyadic, TFLite, float), each written once and run over blocks of elements: unrecorded first and,
in a block where a register overflowed, again recorded (events, policies and taps from the same
arithmetic)."""

from __future__ import annotations

import numba
import numpy as np

from ...core.errors import OperandRangeError
from ...core.rounding import (
    AWAY,
    CEIL,
    FLOOR,
    HALF_AWAY,
    HALF_DOWN,
    HALF_EVEN,
    HALF_ODD,
    HALF_UP,
    HALF_ZERO,
    JAM,
    ROUNDING_CODE,
    TRUNC,
)
from ...regs.chain import Chain, Step
from ...regs.prims import step
from ...regs.registers import RegisterFile
from ...regs.runtime import Plan
from .common import INT32, INT32_MAX, INT32_MIN, INT64, INT64_MAX, INT64_MIN
from .exact import abs_max, round_code

# ------------------------------------------------------------------------------------------------
# the chains of requantize, written once (numba). Each runs over blocks of elements (on the cores for
# large inputs, see _parallel); a block runs unrecorded and, where a value left its register, again
# recorded (regs.prims.step).
# The block bodies are separate @njit functions (see the comment above intsim.ops.ibert._k_iexp_block).
# ------------------------------------------------------------------------------------------------
#: the registers each chain declares, with their default widths (the names ``widths=`` accepts)
DYADIC_CHAIN = Chain("requantize", [Step("product", "e", INT64)])
TFLITE_CHAIN = Chain("requantize", [Step("shifted_input", "e", INT32), Step("result", "e", INT32)])
(PRODUCT,) = DYADIC_CHAIN.ids("product")
SHIFTED_INPUT, RESULT = TFLITE_CHAIN.ids("shifted_input", "result")
#: the kernels' parameter vector
RP_LO, RP_HI, RP_ZP, RP_ROUNDING, RP_CLAMP_FIRST, RP_BIAS, RP_SINGLE, RP_FKIND = range(8)
#: the float back-ends' arithmetic (``RP_FKIND``): ``x * s`` in float64 or float32, ``x * s`` in float64 with
#: the zero point added in float64 before rounding, ``x / s`` in float32 or float64
FK_MUL64, FK_MUL32, FK_MUL64_ZP, FK_DIV32, FK_DIV64 = range(5)
#: the float kinds whose working type is float32
FK_FLOAT32 = (FK_MUL32, FK_DIV32)
_BLOCK = 16384  #: elements per parallel block (rounded to whole rows of the per-channel parameters)


_PARALLEL = 1 << 21  #: elements from which the blocks run over the cores


def _block(period: int) -> int:
    return period * max(1, _BLOCK // period)


def _parallel(n: int) -> bool:
    """Whether a kernel runs its blocks over the cores. Below ``_PARALLEL`` elements one thread is
    as fast (the kernels are memory bound, about 1 ns an element) and avoids waking the worker
    threads, which on a loaded machine can cost milliseconds per call."""
    return n >= _PARALLEL


def _plan(chain: Chain, regs: RegisterFile, R: int, N: int) -> Plan:
    """``chain.plan`` (no taps: requantize taps its own values) for registers of up to 64 bits,
    unsigned 64 included: every value is an int64, so such a register's upper bound is INT64_MAX
    and only negative values leave it (its wrap keeps the bits, as RegisterFile.check does)."""
    u64 = [s for s, name in enumerate(chain.names) if regs.type_of(name).max > INT64_MAX]
    if not u64:
        return chain.plan(regs, R, N, False)
    held = {name: INT64 if s in u64 else regs.type_of(name) for s, name in enumerate(chain.names)}
    plan = chain.plan(RegisterFile(regs.op, held, overflow=regs.overflow), R, N, False)
    plan.regs = regs  # the events name the declared registers
    for s in u64:
        plan.cf[s, :4] = (0, INT64_MAX, 64, 0)
    return plan


@numba.njit(cache=True, forceinline=True)
def _rdbpot1(x, e):  # pragma: no cover - numba
    mask = (np.int64(1) << e) - np.int64(1)
    thr = (mask >> np.int64(1)) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if (x & mask) > thr else np.int64(0))


@numba.njit(cache=True, forceinline=True)
def _shift_round(p, kk, mode):  # pragma: no cover - numba
    """round(p / 2**kk) for 0 <= kk <= 62 by bias-and-shift, when ``|p| + 2**kk`` fits int64;
    branch-free once ``mode`` is a constant: the bias is what must be added before the floor
    shift for each rule, and the two tie-parity modes then step back from an odd/even result at
    an exact tie."""
    one = np.int64(1)
    if kk == 0:
        return p | one if mode == JAM else p
    d = one << kk
    half = d >> one
    neg = one if p < 0 else np.int64(0)
    if mode == FLOOR:
        return p >> kk
    if mode == CEIL:
        return (p + d - one) >> kk
    if mode == TRUNC:
        return (p + neg * (d - one)) >> kk
    if mode == AWAY:
        return (p + (one - neg) * (d - one)) >> kk
    if mode == HALF_EVEN:
        q = (p + half) >> kk
        tie = one if (p & (d - one)) == half else np.int64(0)
        return q - (tie & q)
    if mode == HALF_ODD:
        q = (p + half) >> kk
        tie = one if (p & (d - one)) == half else np.int64(0)
        return q - (tie & (one - (q & one)))
    if mode == HALF_AWAY:
        return (p + half - neg) >> kk
    if mode == HALF_UP:
        return (p + half) >> kk
    if mode == HALF_DOWN:
        return (p + half - one) >> kk
    if mode == HALF_ZERO:
        return (p + half - (one - neg)) >> kk
    if mode == JAM:
        return (p >> kk) | one
    return (p >> kk) | (one if (p & (d - one)) != 0 else np.int64(0))  # jam_unbiased


@numba.njit(cache=True, forceinline=True)
def _floor_ceil(p, k):  # pragma: no cover - numba
    """(floor, ceil) of p / 2**k for any int64 p and k >= 0."""
    if k < 63:
        fl = p >> k
        return fl, fl + (np.int64(1) if (p & ((np.int64(1) << k) - np.int64(1))) != 0 else np.int64(0))
    fl = p >> np.int64(63)
    exact = p == 0 or (k == 63 and p == INT64_MIN)
    return fl, fl + (np.int64(0) if exact else np.int64(1))


@numba.njit(cache=True, forceinline=True)
def _round_exact(p, k, mode):  # pragma: no cover - numba
    """round(p / 2**k) for any int64 p and k >= 0, exactly (the rule of
    :func:`intsim.core.rounding.shift_right`): the floor and the class of the remainder."""
    if k == 0:
        return p | np.int64(1) if mode == JAM else p
    if k < 63:
        d = np.int64(1) << k
        r = p & (d - np.int64(1))
        rest = d - r
        return round_code(p >> k, 0 if r == 0 else (1 if r < rest else (2 if r == rest else 3)), mode)
    half = np.int64(1) << np.int64(62)
    if p >= 0:  # floor 0, fraction p / 2**k < 1/2 unless k == 63 and p >= 2**62
        cls = 0 if p == 0 else (1 if k > 63 or p < half else (2 if p == half else 3))
        return round_code(np.int64(0), cls, mode)
    # floor -1, fraction 1 - |p| / 2**k (|p| <= 2**63)
    if k == 63:
        if p == INT64_MIN:
            cls = 0
        else:
            cls = 3 if -p < half else (2 if -p == half else 1)
    elif k == 64:
        cls = 2 if p == INT64_MIN else 3
    else:
        cls = 3
    return round_code(np.int64(-1), cls, mode)


@numba.njit(cache=True, forceinline=True)
def _dyadic_chain(cf, st, tp, i, j, xv, m, k, mode, lo, hi, zp, ctr, bias, rec, ok):  # pragma: no cover - numba
    """One element of the dyadic requantization: the product register, round(p / 2**k), the
    clamp (clamp-then-round) or the saturation, + zp. Returns (out, product, rounded, ok).
    Unrecorded, ``bias`` (|x| |m| + 2**k fits int64, k <= 62) allows the bias-and-shift
    rounding; recorded, the product may be any int64 after its policy."""
    p, ok = step(cf, st, tp, False, i, j, PRODUCT, xv * m, rec, ok)
    if bias and not rec:
        r = _shift_round(p, k, mode)
    else:
        r = _round_exact(p, k, mode)
    v = r
    if ctr:  # the real value is below lo iff its floor is, above hi iff its ceiling is
        fl, ce = _floor_ceil(p, k)
        if fl < lo:
            v = lo | np.int64(1) if mode == JAM else lo
        elif ce > hi:
            v = hi | np.int64(1) if mode == JAM else hi
    return min(max(v, lo), hi) + zp, p, r, ok


@numba.njit(cache=True, forceinline=True)
def _dyadic_elem(cf, st, tp, i, j, xv, m, k, mode, lo, hi, zp, os, ts, ton, ctr, bias, rec):  # pragma: no cover
    v, p, r, ok = _dyadic_chain(cf, st, tp, i, j, xv, m, k, mode, lo, hi, zp, ctr, bias, rec, True)
    os[j] = v
    if ton:
        ts[0, j] = p
        ts[1, j] = r
    return ok


@numba.njit(cache=True, forceinline=True)
def _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, ton, ctr, bias, rec):  # pragma: no cover - numba
    lo = kp[RP_LO]
    hi = kp[RP_HI]
    zp = kp[RP_ZP]
    good = True
    C = m.shape[0]
    if C == 1:  # per tensor: the parameters are loop invariants (the loop vectorizes)
        m0 = m[0]
        k0 = k[0]
        for j in range(xs.shape[0]):
            good &= _dyadic_elem(cf, st, tp, i, j, np.int64(xs[j]), m0, k0, mode, lo, hi, zp, os, ts, ton, ctr, bias,
                                 rec)
        return good
    for row in range(xs.shape[0] // C):
        for c in range(C):
            j = row * C + c
            good &= _dyadic_elem(cf, st, tp, i, j, np.int64(xs[j]), m[c], k[c], mode, lo, hi, zp, os, ts, ton, ctr,
                                 bias, rec)
    return good


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _dyadic_block(i, cf, st, tp, x, m, k, kp, out, tq, ton, check, B):  # pragma: no cover - numba
    p0 = i * B
    p1 = min(p0 + B, x.shape[0])
    xs = x[p0:p1]
    os = out[p0:p1]
    ts = tq[:, p0:p1]
    mode = kp[RP_ROUNDING]
    ctr = kp[RP_CLAMP_FIRST] != 0
    bias = kp[RP_BIAS] != 0
    if bias and not (check or ton or ctr):
        # the common case: the common modes get a loop with the mode a constant (vectorizable)
        if mode == HALF_EVEN:
            _dyadic_loop(cf, st, tp, i, xs, m, k, HALF_EVEN, kp, os, ts, False, False, True, False)
        elif mode == HALF_UP:
            _dyadic_loop(cf, st, tp, i, xs, m, k, HALF_UP, kp, os, ts, False, False, True, False)
        elif mode == HALF_AWAY:
            _dyadic_loop(cf, st, tp, i, xs, m, k, HALF_AWAY, kp, os, ts, False, False, True, False)
        elif mode == FLOOR:
            _dyadic_loop(cf, st, tp, i, xs, m, k, FLOOR, kp, os, ts, False, False, True, False)
        elif mode == TRUNC:
            _dyadic_loop(cf, st, tp, i, xs, m, k, TRUNC, kp, os, ts, False, False, True, False)
        else:
            _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, False, False, True, False)
    elif not _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, ton, ctr, bias, False):
        _dyadic_loop(cf, st, tp, i, xs, m, k, mode, kp, os, ts, ton, ctr, bias, True)


@numba.njit(cache=True, parallel=True)
def _dyadic_fast(cf, st, tp, x, m, k, kp, out, tq, ton, check, B, par):  # pragma: no cover - numba
    """The dyadic requantization of flat x with per-channel m, k (period m.size), every product
    fitting int64 (the caller checks); ``check`` when the product register is not 64-bit; the
    blocks over the cores when ``par`` (see :func:`_parallel`), else in this thread."""
    if par:
        for i in numba.prange(st.shape[0]):
            _dyadic_block(np.int64(i), cf, st, tp, x, m, k, kp, out, tq, ton, check, B)
    else:
        for i in range(st.shape[0]):
            _dyadic_block(np.int64(i), cf, st, tp, x, m, k, kp, out, tq, ton, check, B)


@numba.njit(cache=True, forceinline=True)
def _int32_step(cf, st, tp, i, j, s, v, check, rec, ok):  # pragma: no cover - numba
    """``step`` into register s. Unrecorded with the register at its default width, int32
    (``check`` False), the range test has constant bounds, which LLVM keeps out of the loop (it
    cannot hoist the loads from ``cf``, which the output array might alias). Returns (value, ok)."""
    if rec or check:
        return step(cf, st, tp, False, i, j, s, v, rec, ok)
    return v, ok & (v >= INT32_MIN) & (v <= INT32_MAX)


@numba.njit(cache=True, forceinline=True)
def _tflite_chain(cf, st, tp, i, j, xv, q, s, single, check, rec, ok):  # pragma: no cover - numba
    """MultiplyByQuantizedMultiplier of one int32 x: returns (result, three taps, whether the
    SRDHM operand is an int32, ok). Single rounding taps (product, rounded), double rounding
    (shifted_input, srdhm, rounded). ``check``: a register is not at its default width."""
    if single:
        total = np.int64(31) - s
        prod = xv * q  # |x q| < 2**62
        r0 = (prod + (np.int64(1) << (total - np.int64(1)))) >> total
        r, ok = _int32_step(cf, st, tp, i, j, RESULT, r0, check, rec, ok)
        return r, prod, r0, r0, True, ok
    sh, ok = _int32_step(cf, st, tp, i, j, SHIFTED_INPUT, xv << max(s, np.int64(0)), check, rec, ok)
    fits = (sh >= INT32_MIN) & (sh <= INT32_MAX)
    hm = (sh * q + np.int64(1 << 30)) >> np.int64(31)  # SRDHM; MIN*MIN cannot occur: q >= 0
    r = _rdbpot1(hm, max(-s, np.int64(0)))
    return r, sh, hm, r, fits, ok & fits


@numba.njit(cache=True, forceinline=True)
def _tflite_elem(cf, st, tp, oe, i, j, xv, q, s, lo, hi, zp, os, ts, single, ton, check, rec):  # pragma: no cover
    r, t0, t1, t2, fits, ok = _tflite_chain(cf, st, tp, i, j, xv, q, s, single, check, rec, True)
    os[j] = min(max(r, lo), hi) + zp
    if ton:
        ts[0, j] = t0
        ts[1, j] = t1
        ts[2, j] = t2
    if rec and not fits:  # the SRDHM operand is not an int32 (an error, raised afterwards)
        if oe[i, 0] == 0:
            oe[i, 1] = j
            oe[i, 2] = t0
        oe[i, 0] += 1
    return ok


@numba.njit(cache=True, forceinline=True)
def _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, ton, check, rec):  # pragma: no cover - numba
    lo = kp[RP_LO]
    hi = kp[RP_HI]
    zp = kp[RP_ZP]
    good = True
    C = q.shape[0]
    if C == 1:  # per tensor: the parameters are loop invariants (the loop vectorizes)
        q0 = q[0]
        s0 = s[0]
        for j in range(xs.shape[0]):
            good &= _tflite_elem(cf, st, tp, oe, i, j, np.int64(xs[j]), q0, s0, lo, hi, zp, os, ts, single, ton, check,
                                 rec)
        return good
    for row in range(xs.shape[0] // C):
        for c in range(C):
            j = row * C + c
            good &= _tflite_elem(cf, st, tp, oe, i, j, np.int64(xs[j]), q[c], s[c], lo, hi, zp, os, ts, single, ton,
                                 check, rec)
    return good


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _tflite_block(i, cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B):  # pragma: no cover - numba
    p0 = i * B
    p1 = min(p0 + B, x.shape[0])
    xs = x[p0:p1]
    os = out[p0:p1]
    ts = tq[:, p0:p1]
    single = kp[RP_SINGLE] != 0
    if ton:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, True, check, False)
    elif check:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, False, True, False)
    elif single:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, True, False, False, False)
    else:
        good = _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, False, False, False, False)
    if not good:
        _tflite_loop(cf, st, tp, oe, i, xs, q, s, kp, os, ts, single, ton, check, True)


@numba.njit(cache=True, parallel=True)
def _k_tflite(cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B, par):  # pragma: no cover - numba
    """TFLite MultiplyByQuantizedMultiplier of flat int32 x, per-channel q, s (period q.size),
    then clip to [lo, hi] + zp; ``check`` when a register is not int32; the blocks over the
    cores when ``par``, else in this thread."""
    if par:
        for i in numba.prange(st.shape[0]):
            _tflite_block(np.int64(i), cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B)
    else:
        for i in range(st.shape[0]):
            _tflite_block(np.int64(i), cf, st, tp, oe, x, q, s, kp, out, tq, ton, check, B)


@numba.njit(cache=True, forceinline=True)
def _float_one(xi, s64, s32, kind, flo, fhi, zp):  # pragma: no cover - numba
    """clip(w, lo, hi) and v (in its type; 0 in the other), where v is the scaled value of the
    float ``kind`` (FK_*): ``x*s`` or ``x/s`` in float32 (x converted to float32 first, rounded to
    nearest even) or float64, and w = rint(v) or, for FK_MUL64_ZP, ``rint(v + zp) - zp`` (the
    zero point added in float64 before the rounding). ``rint`` of a float is an integer-valued
    float of the same precision, exactly representable in float64; ``flo``, ``fhi`` are the
    integer bounds, exact in float64 (|bound| < 2**53), so the comparisons and the conversion to
    int64 are exact. A value that overflows is +-inf (never NaN: x and s are finite, s nonzero),
    which the clip maps to ``fhi`` / ``flo`` before the conversion: it saturates."""
    v32 = np.float32(0)
    v64 = np.float64(0)
    if kind == FK_MUL32:
        v32 = np.float32(xi) * s32
        v = np.float64(np.rint(v32))
    elif kind == FK_DIV32:
        v32 = np.float32(xi) / s32
        v = np.float64(np.rint(v32))
    elif kind == FK_DIV64:
        v64 = np.float64(xi) / np.float64(s32)  # the scale is a float32 tensor (y_scale)
        v = np.rint(v64)
    elif kind == FK_MUL64_ZP:
        v64 = np.float64(xi) * s64
        v = np.rint(v64 + np.float64(zp)) - np.float64(zp)  # integers below 2**53, or beyond the bounds
    else:
        v64 = np.float64(xi) * s64
        v = np.rint(v64)
    return np.int64(min(max(v, flo), fhi)), v32, v64


@numba.njit(cache=True, forceinline=True)
def _float_elem(j, xv, s64, s32, flo, fhi, zp, os, t32, t64, kind, ton):  # pragma: no cover - numba
    v, v32, v64 = _float_one(xv, s64, s32, kind, flo, fhi, zp)
    os[j] = v + zp
    if ton:
        if kind == FK_MUL32 or kind == FK_DIV32:
            t32[j] = v32
        else:
            t64[j] = v64


@numba.njit(cache=True, forceinline=True)
def _float_loop(xs, s64, s32, kp, os, t32, t64, kind, ton):  # pragma: no cover - numba
    flo = np.float64(kp[RP_LO])
    fhi = np.float64(kp[RP_HI])
    zp = kp[RP_ZP]
    C = s64.shape[0]
    if C == 1:  # per tensor: the scale is a loop invariant (the loop vectorizes)
        a64 = s64[0]
        a32 = s32[0]
        for j in range(xs.shape[0]):
            _float_elem(j, xs[j], a64, a32, flo, fhi, zp, os, t32, t64, kind, ton)
        return
    for row in range(xs.shape[0] // C):
        for c in range(C):
            j = row * C + c
            _float_elem(j, xs[j], s64[c], s32[c], flo, fhi, zp, os, t32, t64, kind, ton)


@numba.njit(cache=True, error_model="numpy", _nrt=False)
def _float_block(i, x, s64, s32, kp, out, t32, t64, ton, B):  # pragma: no cover - numba
    p0 = i * B
    p1 = min(p0 + B, x.shape[0])
    xs = x[p0:p1]
    os = out[p0:p1]
    kind = kp[RP_FKIND]
    if ton:
        _float_loop(xs, s64, s32, kp, os, t32[p0:p1], t64[p0:p1], kind, True)
    elif kind == FK_MUL32:  # the kind a constant in each loop (vectorizable)
        _float_loop(xs, s64, s32, kp, os, t32, t64, FK_MUL32, False)
    elif kind == FK_MUL64:
        _float_loop(xs, s64, s32, kp, os, t32, t64, FK_MUL64, False)
    elif kind == FK_DIV32:
        _float_loop(xs, s64, s32, kp, os, t32, t64, FK_DIV32, False)
    else:
        _float_loop(xs, s64, s32, kp, os, t32, t64, kind, False)


@numba.njit(cache=True, parallel=True)
def _k_float(x, s64, s32, kp, out, t32, t64, ton, B, nblocks, par):  # pragma: no cover - numba
    """The float back-ends (``kp[RP_FKIND]``, see :func:`_float_one`): the scaled value, rint
    (ties to even), exact saturation to the integer bounds [lo, hi] (both orders: see
    :func:`run_float`); the blocks over the cores when ``par``, else in this thread."""
    if par:
        for i in numba.prange(nblocks):
            _float_block(np.int64(i), x, s64, s32, kp, out, t32, t64, ton, B)
    else:
        for i in range(nblocks):
            _float_block(np.int64(i), x, s64, s32, kp, out, t32, t64, ton, B)


def _kernel_input(xa: np.ndarray) -> np.ndarray:
    """The flat input for a kernel, as int32 or int64 (two compiled variants only)."""
    flat = xa.reshape(-1)
    if flat.dtype in (np.int32, np.int64):
        return flat
    return flat.astype(np.int32 if flat.dtype.itemsize <= 2 else np.int64)  # (u)int8/16 -> int32; uint32 -> int64


def _per_channel(xshape: tuple, *params: np.ndarray) -> list[np.ndarray]:
    """Parameters that broadcast to ``xshape`` as flat int64/float arrays of one common period:
    1 (per tensor), ``xshape[-1]`` (along the last axis) or, for any other broadcast, the size of
    x (then expanded to x's shape)."""
    if all(p.size == 1 for p in params):
        return [np.ascontiguousarray(p.reshape(1)) for p in params]
    c = xshape[-1] if xshape else 1
    if all(p.size == 1 or (p.ndim <= len(xshape) and p.shape[-1] == c and p.size == c) for p in params):
        # (np.full / reshape: the same arrays as broadcast_to(p.reshape(-1), (c,)), without its cost)
        return [np.full(c, p.reshape(-1)[0], dtype=p.dtype) if p.size == 1 else np.ascontiguousarray(p.reshape(-1))
                for p in params]
    return [np.ascontiguousarray(np.broadcast_to(p, xshape).reshape(-1)) for p in params]


def run_dyadic(regs: RegisterFile, xx: np.ndarray, m: np.ndarray, k: np.ndarray, rmode: str, lo: int, hi: int,
                zp: int, ctr: bool, taps: dict | None, xmax: int | None = None) -> np.ndarray:
    """``sat(round(x*m / 2**k) + zp)`` (or clamp-then-round) through the product register, for
    products that fit int64 (the caller checks); taps ``product`` and ``rounded`` into ``taps``.
    ``xmax`` is ``max |x|`` when the caller has it (a pass over x saved)."""
    mv, kv = _per_channel(xx.shape, m, k)
    n = int(xx.size)
    kmax = int(kv.max())
    if xmax is None:
        xmax = abs_max(xx)
    bias = kmax <= 62 and xmax * abs_max(mv) + (1 << kmax) <= INT64_MAX  # p + bias fits int64
    B = _block(mv.size)
    plan = _plan(DYADIC_CHAIN, regs, -(-n // B), B)
    kp = np.array([lo, hi, zp, ROUNDING_CODE[rmode], ctr, bias, 0, 0], dtype=np.int64)
    out = np.empty(xx.shape, dtype=np.int64)
    tq = np.empty((2, n if taps is not None else 0), dtype=np.int64)
    if n:
        _dyadic_fast(*plan.args()[:3], _kernel_input(xx), mv, kv, kp, out.reshape(-1), tq, taps is not None,
                     regs.type_of("product") != INT64, B, _parallel(n))
    plan.finish(xx.shape, "flat")
    if taps is not None:
        taps["product"] = tq[0].reshape(xx.shape)
        taps["rounded"] = tq[1].reshape(xx.shape)
    return out


def run_tflite(regs: RegisterFile, xx: np.ndarray, q: np.ndarray, s: np.ndarray, single: bool, lo: int, hi: int,
                zp: int, taps: dict | None) -> np.ndarray:
    """MultiplyByQuantizedMultiplier of int32 ``xx`` (the caller checks), then
    ``min(max(., lo), hi) + zp``; taps into ``taps``. An SRDHM operand that is not an int32 (a
    ``shifted_input`` register declared wider, or overflowed under ``record``) raises
    OperandRangeError, as gemmlowp's SRDHM takes int32 operands."""
    qv, sv = _per_channel(xx.shape, q, s)
    n = int(xx.size)
    B = _block(qv.size)
    nb = -(-n // B)
    plan = _plan(TFLITE_CHAIN, regs, nb, B)
    oe = np.zeros((nb, 3), dtype=np.int64)
    kp = np.array([lo, hi, zp, 0, 0, 0, single, 0], dtype=np.int64)
    out = np.empty(xx.shape, dtype=np.int64)
    tq = np.empty((3, n if taps is not None else 0), dtype=np.int64)
    if n:
        check = any(regs.type_of(name) != INT32 for name in TFLITE_CHAIN.names)
        _k_tflite(*plan.args()[:3], oe, _kernel_input(xx), qv, sv, kp, out.reshape(-1), tq, taps is not None, check,
                  B, _parallel(n))
    plan.finish(xx.shape, "flat")
    if oe[:, 0].any():
        i0 = int(np.flatnonzero(oe[:, 0])[0])
        idx = tuple(int(v) for v in np.unravel_index(i0 * B + int(oe[i0, 1]), xx.shape))
        count, value = int(oe[:, 0].sum()), int(oe[i0, 2])
        raise OperandRangeError(f"a: {count} of {n} entries are outside int32 [{INT32_MIN}, {INT32_MAX}]; "
                                f"first at index {idx}: {value}", count=count, index=idx, value=value)
    if taps is not None:
        names = ("product", "rounded") if single else ("shifted_input", "srdhm", "rounded")
        for t, name in enumerate(names):
            taps[name] = tq[t].reshape(xx.shape)
    return out


_NO_TAPS32 = np.empty(0, dtype=np.float32)  #: the float kernels' tap arrays without taps (never written)
_NO_TAPS64 = np.empty(0, dtype=np.float64)


def run_float(xx: np.ndarray, sarr: np.ndarray, kind: int, lo: int, hi: int, zp: int,
              taps: dict | None) -> np.ndarray:
    """The float back-ends: the scaled value ``v`` of ``kind`` (``FK_*``): ``x*s`` in float64
    (onnx_ref, onnx_refeval) or float32 (ort_fp32, gemmini_fp32), ``x/s`` in float32 (ort_div) or
    float64 (onnx_refeval_div), one IEEE rounding each (after x's conversion to the working type);
    then ``clip(rint(v), lo, hi) + zp`` with the exact integer bounds ``lo``, ``hi`` (|bound| <=
    2**53), or for ``FK_MUL64_ZP`` (onnx_refeval) ``clip(rint(v + zp), lo + zp, hi + zp)`` with the
    sum ``v + zp`` rounded in float64.

    Both orders compute that value. Clamp-then-round is ``rint(clip(v, lo, hi))`` with the
    clamp done on the real value ``v`` against the exact integers ``lo``, ``hi``; since ``rint``
    (ties to even) is monotone and leaves integers unchanged, ``v > hi`` implies ``rint(v) >=
    hi`` and ``v < lo`` implies ``rint(v) <= lo``, so it equals ``clip(rint(v), lo, hi)``. (The
    same holds for ``rint(fl64(v + zp))``: float64 addition is monotone and ``fl64(hi + zp)`` is
    the integer ``out.max``.) (The
    bounds are never converted to the working float type: once ``|hi| > 2**24``, ``float32(hi)``
    can round inward, below ``hi``, and a clamp against it would cut off valid results, e.g.
    ``float32(2**31 + 99) == 2**31``.) Taps: ``scaled_bits``, the bit pattern of ``v`` in its
    type (before any zero point), and ``rounded``, the saturated result minus the zero point
    (``clip(rint(v), lo, hi)``), in both orders.

    A value that overflows the working type is ``+-inf`` and saturates like any other value
    beyond the bounds (``rounded`` = ``hi`` or ``lo``; ``scaled_bits`` holds the inf pattern).
    """
    (sv,) = _per_channel(xx.shape, sarr)
    n = int(xx.size)
    with np.errstate(over="ignore"):  # (the float64 kinds do not use the float32 copy)
        s32 = sv.astype(np.float32)
    ton = taps is not None
    use32 = kind in FK_FLOAT32
    t32 = np.empty(n, dtype=np.float32) if ton and use32 else _NO_TAPS32
    t64 = np.empty(n, dtype=np.float64) if ton and not use32 else _NO_TAPS64
    kp = np.array([lo, hi, zp, 0, 0, 0, 0, kind], dtype=np.int64)
    out = np.empty(xx.shape, dtype=np.int64)
    B = _block(sv.size)
    if n:
        _k_float(_kernel_input(xx), sv.astype(np.float64), s32, kp, out.reshape(-1), t32, t64, ton, B,
                 -(-n // B), _parallel(n))
    if ton:
        bits = t32.view(np.int32).astype(np.int64) if use32 else t64.view(np.int64)
        taps["scaled_bits"] = bits.reshape(xx.shape)
        taps["rounded"] = out - zp
    return out


# ------------------------------------------------------------------------------------------------
# QuantizeLinear (float32 input, one scale and one zero point): one pass
# ------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def quantize_linear_f32(x, scale, zp, lo, hi, nan_value, out):  # pragma: no cover - numba
    """``out[i] = clip(rint(float32(x[i] / scale)), lo - zp, hi - zp) + zp`` for a float32 ``x`` and
    ``scale`` (one float32 division, round half to even); a NaN gives ``nan_value``. Returns the
    number of NaNs seen."""
    blo = np.float32(lo - zp)
    bhi = np.float32(hi - zp)
    nans = 0
    for i in range(x.size):
        v = np.rint(x[i] / scale)
        if v != v:
            nans += 1
            out[i] = nan_value
        elif v < blo:
            out[i] = lo
        elif v > bhi:
            out[i] = hi
        else:
            out[i] = np.int64(v) + zp
    return nans
