"""The integer LayerNorm chain shared by I-BERT's IntLayerNorm, I-ViT's I-LayerNorm and I-LLM's
DI-Norm: row sum, mean (round-half-even, truncated or none), centring, optional shift, squared sum,
integer square root (float as published by I-BERT, I-ViT's fixed iteration, or exact Newton on a
normalized variance), the reciprocal factor, the product and its rounding, and the integer bias.
Each variant is a set of modes (:data:`MEAN_RNE` ..., :data:`SQ_FLOAT` ...) passed to one kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from ..core.errors import ConfigError, DTypeError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..regs.opresult import OpResult
from ..regs.prims import (
    add_chk,
    bitlen64,
    chk,
    div0,
    fits,
    mul_reg,
    reg,
    shl_reg,
    tap,
)
from ..regs.registers import RegisterFile
from ..regs.runtime import (
    INT64_MAX,
    Plan,
    as_rows,
)
from .isqrt import isqrt_newton_u64

# sqrt methods
SQ_FLOAT, SQ_IVIT, SQ_NORM = 0, 1, 2


# mean modes
MEAN_RNE, MEAN_TRUNC, MEAN_NONE = 0, 1, 2


LN_STEPS = [("sum", "r"), ("mean", "r"), ("y", "e"), ("y_shifted", "e"), ("y_sq", "e"), ("var", "r"),
             ("var_norm", "r"), ("sqrt_iter", "r"), ("std", "r"), ("factor", "r"), ("prod", "e"), ("out", "e"),
             ("out_bias", "e")]


@njit(cache=True, inline="always")
def div_round_mode(a, d, mode):
    """round(a / d) for d > 0: mode 0 half-even, 1 trunc, 2 floor, 3 half-up."""
    q = a // d
    r = a - q * d
    if mode == 2:
        return q
    if mode == 1:
        if r != 0 and a < 0:
            return q + 1
        return q
    twice = r - (d - r)
    if twice > 0:
        return q + 1
    if twice == 0:
        if mode == 3 or (q & 1) == 1:
            return q + 1
    return q


@njit(cache=True, inline="always")
def row_reg(cf, st, tp, ton, i, s, v, rec, ok):
    """A per-row register: recorded when ``rec``, else only range-checked (the fast path)."""
    if rec:
        return reg(cf, st, tp, ton, i, -1, s, v), ok
    return v, ok and fits(cf, s, v)


@njit(cache=True, inline="always")
def ln_sqrt(cf, st, tp, ton, i, v, N, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d, rec):
    """Steps var_norm (6), sqrt_iter (7), std (8), factor (9) of a row with variance v >= 0.
    Returns (factor, iterations, ok); ``ok`` is False in the fast path when a register would
    not hold its value (the caller then redoes the row with ``rec``)."""
    ok = True
    if sqrt_mode == 1:
        vn, ok = row_reg(cf, st, tp, ton, i, 6, v, rec, ok)
        k = np.int64(65536)
        peak = k
        for _ in range(iv_steps):
            if k == 0:
                break
            t = k + vn // k
            if rec:
                t = chk(cf, st, i, -1, 7, t)
            else:
                ok = ok and fits(cf, 7, t)
            peak = max(peak, t)
            k = t >> np.int64(1)
        if rec:
            tap(tp, ton, i, -1, 7, peak)
        std, ok = row_reg(cf, st, tp, ton, i, 8, k, rec, ok)
        if std == 0:
            if rec:
                return div0(cf, st, tp, ton, i, -1, 9), iv_steps, ok
            return np.int64(0), iv_steps, False
        f, ok = row_reg(cf, st, tp, ton, i, 9, ((np.int64(1) << np.int64(num_bits)) - np.int64(1)) // std, rec, ok)
        return f, iv_steps, ok
    g = np.int64(0)
    if sqrt_mode == 2:
        g = (norm_top - bitlen64(v)) // 2
        if g < 0:
            g = np.int64(0)
    vs = v << np.int64(2 * g)
    if div_d:
        vs = vs // N
    vn, ok = row_reg(cf, st, tp, ton, i, 6, vs, rec, ok)
    r, it = isqrt_newton_u64(np.uint64(vn if vn > 0 else 0))
    num = np.int64(0)
    if vn > 0:  # the Newton numerator peaks at its first step: seed + vn // seed
        sd = np.int64(1) << np.int64((bitlen64(vn) + 1) // 2)
        num = sd + vn // sd
    if rec:
        tap(tp, ton, i, -1, 7, chk(cf, st, i, -1, 7, num))
    else:
        ok = ok and fits(cf, 7, num)
    if sqrt_mode == 0:
        if rec:
            std = shl_reg(cf, st, tp, ton, i, -1, 8, np.int64(r), shift)
        else:
            if shift > 0 and np.int64(r) > (np.int64(INT64_MAX) >> shift):
                return np.int64(0), it, False
            std = np.int64(r) << shift
            ok = ok and fits(cf, 8, std)
        if std == 0:
            std = np.int64(1)
        f, ok = row_reg(cf, st, tp, ton, i, 9, (np.int64(1) << np.int64(num_bits)) // std, rec, ok)
        return f, it, ok
    std, ok = row_reg(cf, st, tp, ton, i, 8, np.int64(r), rec, ok)
    if std == 0:
        f, ok = row_reg(cf, st, tp, ton, i, 9, np.int64(0), rec, ok)
    else:
        f, ok = row_reg(cf, st, tp, ton, i, 9, pow2_floordiv(num_bits + g, std), rec, ok)
    return f, it, ok


@njit(cache=True, inline="always")
def pow2_floordiv(e, d):
    """floor(2**e / d) for e >= 0 and 0 < d < 2**62, exact whenever the quotient fits int64: past
    bit 62 the division goes on one bit at a time (long division), so 2**e itself never has to
    fit a 64-bit register."""
    top = min(np.int64(e), np.int64(62))
    q = (np.int64(1) << top) // d
    r = (np.int64(1) << top) - q * d
    for _ in range(np.int64(e) - top):
        q <<= np.int64(1)
        r <<= np.int64(1)
        if r >= d:
            q += np.int64(1)
            r -= d
    return q


@njit(cache=True, inline="always")
def ln_round(p, prod_shift, prod_round):
    """p / 2**prod_shift rounded: 0 floor, 1 toward zero, 2 half to even (by shifts and masks)."""
    sh = np.int64(prod_shift)
    q = p >> sh
    if prod_round == 0 or sh == 0:
        return q
    r = p & ((np.int64(1) << sh) - np.int64(1))
    if prod_round == 1:
        return q + 1 if (p < 0 and r != 0) else q
    half = np.int64(1) << (sh - np.int64(1))
    if r > half or (r == half and (q & 1) == 1):
        return q + 1
    return q


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_layernorm_row(i, cf, st, tp, ton, x, mean_mode, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d,
                     prod_shift, prod_round, eps, bias, has_bias, bias_lo, bias_hi, its, out, N):
    """Row i of :func:`k_layernorm` (the body of its parallel loop)."""
    ev = eps[i] if eps.shape[0] > 1 else eps[0]
    # ---- fast path ----
    ok = not ton
    m = np.int64(0)
    mn = np.int64(x[i, 0])
    mx = mn
    if ok:
        acc = np.int64(0)
        pos = np.int64(0)
        neg = np.int64(0)
        for j in range(N):
            v = np.int64(x[i, j])
            acc += v
            mn = min(mn, v)
            mx = max(mx, v)
            if v > 0:
                pos += v
            else:
                neg += v
        if mean_mode != 2:
            # every partial sum lies in [sum of the negatives, sum of the positives]
            ok = fits(cf, 0, neg) and fits(cf, 0, pos) and fits(cf, 0, 0)
            m = div_round_mode(acc, np.int64(N), 0 if mean_mode == 0 else 1)
            ok = ok and fits(cf, 1, m)
        ylo = mn - m
        yhi = mx - m
        slo = ylo >> shift
        shi = yhi >> shift
        ok = ok and fits(cf, 2, ylo) and fits(cf, 2, yhi) and fits(cf, 3, slo) and fits(cf, 3, shi)
        amax = max(-slo, shi)
        ok = ok and amax < 3037000499
        if ok:
            sqmax = amax * amax
            ok = fits(cf, 4, sqmax) and fits(cf, 4, 0) and sqmax <= (np.int64(INT64_MAX) - max(ev, 0)) // N
    if ok:
        v = np.int64(0)
        for j in range(N):
            y = x[i, j] - m
            ys = y >> shift
            v += ys * ys
            out[i, j] = y
        v += ev
        ok = fits(cf, 5, v) and fits(cf, 5, 0) and fits(cf, 5, v - ev)
        if ok:
            f, it, ok = ln_sqrt(cf, st, tp, ton, i, max(v, np.int64(0)), N, shift, sqrt_mode, iv_steps,
                                 num_bits, norm_top, div_d, False)
        if ok:
            a = max(abs(ylo), abs(yhi))
            ok = f >= 0 and (a == 0 or f <= np.int64(INT64_MAX) // a)
        if ok:
            olo = ln_round(ylo * f, prod_shift, prod_round)
            ohi = ln_round(yhi * f, prod_shift, prod_round)
            ok = fits(cf, 10, ylo * f) and fits(cf, 10, yhi * f) and fits(cf, 11, olo) and fits(cf, 11, ohi)
            if has_bias:
                ok = ok and fits(cf, 12, olo + bias_lo) and fits(cf, 12, ohi + bias_hi)
            else:
                ok = ok and fits(cf, 12, olo) and fits(cf, 12, ohi)
        if ok:
            its[i] = it
            for j in range(N):
                o = ln_round(out[i, j] * f, prod_shift, prod_round)
                out[i, j] = o + bias[j] if has_bias else o
            return
    # ---- checked path ----
    m = np.int64(0)
    if mean_mode != 2:
        acc = np.int64(0)
        for j in range(N):
            acc = add_chk(cf, st, i, j, 0, acc, x[i, j])
        tap(tp, ton, i, -1, 0, acc)
        m = reg(cf, st, tp, ton, i, -1, 1, div_round_mode(acc, np.int64(N), 0 if mean_mode == 0 else 1))
    v = np.int64(0)
    for j in range(N):
        y = reg(cf, st, tp, ton, i, j, 2, x[i, j] - m)
        ys = reg(cf, st, tp, ton, i, j, 3, y >> shift)
        sq = mul_reg(cf, st, tp, ton, i, j, 4, ys, ys)
        v = add_chk(cf, st, i, j, 5, v, sq)
        out[i, j] = y
    if ev != 0:
        v = add_chk(cf, st, i, -1, 5, v, ev)
    tap(tp, ton, i, -1, 5, v)
    if v < 0:
        v = np.int64(0)
    f, it, _ok = ln_sqrt(cf, st, tp, ton, i, v, N, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d, True)
    its[i] = it
    for j in range(N):
        p = mul_reg(cf, st, tp, ton, i, j, 10, out[i, j], f)
        o = reg(cf, st, tp, ton, i, j, 11, ln_round(p, prod_shift, prod_round))
        if has_bias:
            o = reg(cf, st, tp, ton, i, j, 12, o + bias[j])
        else:
            o = reg(cf, st, tp, ton, i, j, 12, o)
        out[i, j] = o


@njit(cache=True, parallel=True)
def k_layernorm(cf, st, tp, ton, x, mean_mode, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d, prod_shift,
                 prod_round, eps, bias, has_bias, bias_lo, bias_hi, its, out):
    """Generic integer LayerNorm / RMSNorm row kernel (steps in the order of LN_STEPS).

    mean_mode 0: mean = round_half_even(sum / D); 1: trunc(sum / D) (TVM); 2: no mean (RMSNorm).
    sqrt_mode 0: std = isqrt(var) << shift, factor = floor(2**num_bits / max(std, 1))   (I-BERT)
    sqrt_mode 1: I-ViT's fixed-step sqrt from 2**16, factor = (2**num_bits - 1) // std  (I-ViT)
    sqrt_mode 2: g = max(0, (norm_top - bitlen(var)) // 2), vn = var << 2g (// D if div_d),
                 std = isqrt(vn), factor = floor(2**(num_bits + g) / std), 0 if std = 0 (corrected)
    prod_round: 0 floor, 1 trunc (TVM's / 2), 2 half-even, for out = prod / 2**prod_shift.
    eps[i] (or eps[0]) is added to the variance; its[i] receives the square-root iterations.
    Each row first runs a fast path (row-wise range checks, unchecked loops); a row where any
    register might not hold its value is redone on the checked path.
    """
    R, N = x.shape
    for i in prange(R):
        _k_layernorm_row(np.int64(i), cf, st, tp, ton, x, mean_mode, shift, sqrt_mode, iv_steps, num_bits, norm_top,
                         div_d, prod_shift, prod_round, eps, bias, has_bias, bias_lo, bias_hi, its, out, N)


def ln_affine(gamma: Any, beta: Any, D: int, s_y: float, op: str,
               mode: str = "floor") -> tuple[Any, np.ndarray | None]:
    """Fold gamma into the output scale and beta into an integer bias ``floor((beta/gamma) / s_y)``."""
    if gamma is None and beta is None:
        return s_y, None
    g = np.ones(D) if gamma is None else np.asarray(gamma, dtype=np.float64)
    b = np.zeros(D) if beta is None else np.asarray(beta, dtype=np.float64)
    for name, a in (("gamma", g), ("beta", b)):
        if a.shape not in ((D,), ()):
            raise ShapeError(f"{op}: {name} must have shape ({D},), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ConfigError(f"{op}: {name} has NaN or Inf entries")
    g = np.broadcast_to(g, (D,)).astype(np.float64)
    b = np.broadcast_to(b, (D,)).astype(np.float64)
    if np.any(g == 0):
        raise ConfigError(f"{op}: gamma has zero entries; beta/gamma (the integer bias) is undefined")
    ratio = (b / g) / s_y
    if not np.all(np.abs(ratio) < 2.0 ** 62):
        raise ConfigError(f"{op}: beta/gamma is too large for an int64 bias at scale {s_y}")
    bias = np.floor(ratio) if mode == "floor" else np.rint(ratio)
    return s_y * g, bias.astype(np.int64)


def check_float_params(a: Any, name: str, op: str) -> None:
    if a is None:
        return
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise DTypeError(f"{op}: {name} must be a real array, got {arr.dtype}")


def run_layernorm(op: str, arr: np.ndarray, regs: RegisterFile, taps: bool, in_t: IntType, *, mean_mode: int,
                   shift: int, sqrt_mode: int, iv_steps: int, num_bits: int, norm_top: int, prod_shift: int,
                   prod_round: int, eps_int: Any, bias: np.ndarray | None, out_scale: Any,
                   div_d: bool = False) -> OpResult:
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = Plan(regs, LN_STEPS, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    its = np.zeros(R, dtype=np.int64)
    if arr.size:
        xr = as_rows(arr)
        b = bias if bias is not None else np.zeros(1, dtype=np.int64)
        eps = np.ascontiguousarray(np.asarray(eps_int, dtype=np.int64).reshape(-1))
        if eps.size == 0:
            eps = np.zeros(1, dtype=np.int64)
        blo = int(b.min()) if bias is not None else 0
        bhi = int(b.max()) if bias is not None else 0
        k_layernorm(*plan.args(), xr, np.int64(mean_mode), np.int64(shift), np.int64(sqrt_mode), np.int64(iv_steps),
                     np.int64(num_bits), np.int64(norm_top), bool(div_d), np.int64(prod_shift), np.int64(prod_round),
                     eps, b, bias is not None, np.int64(blo), np.int64(bhi), its, out)
    tapd = plan.finish(arr.shape, "rows")
    has_eps = bool(np.any(np.asarray(eps_int) != 0))
    ops = ln_ops(regs, R, N, mean_mode, shift, sqrt_mode, int(its.sum()), bias is not None, has_eps)
    return OpResult(values=out.reshape(arr.shape), scale=out_scale, ops=ops, registers=regs, taps=tapd)


def ln_ops(regs: RegisterFile, R: int, N: int, mean_mode: int, shift: int, sqrt_mode: int, its: int,
            has_bias: bool, has_eps: bool) -> OpCounts:
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    n = R * N
    ops = OpCounts()
    if n == 0:
        return ops
    if mean_mode != MEAN_NONE:
        ops.add("add", (w("sum"),), R * (N - 1))
        ops.add("div", (w("sum"),), R)
        ops.add("add", (w("y"),), n)
    if shift:
        ops.add("shift", (w("y_shifted"),), n)
    ops.add("mul", (w("y_shifted"), w("y_shifted")), n)
    ops.add("add", (w("var"),), R * (N - 1) + (R if has_eps else 0))
    if sqrt_mode == SQ_IVIT:
        ops.add("div", (w("sqrt_iter"),), its).add("add", (w("sqrt_iter"),), its)
        ops.add("shift", (w("sqrt_iter"),), its)
    else:
        if sqrt_mode == SQ_NORM:
            ops.add("compare", (w("var"),), R).add("shift", (w("var_norm"),), R)  # bitlen and the even shift
        ops.add("compare", (w("var_norm"),), 2 * R).add("shift", (w("var_norm"),), R)  # zero test and the seed
        ops.add("div", (w("var_norm"),), its).add("add", (w("sqrt_iter"),), its)
        ops.add("shift", (w("sqrt_iter"),), its).add("compare", (w("sqrt_iter"),), its)
        if shift:
            ops.add("shift", (w("std"),), R)
    ops.add("div", (w("std"),), R)
    ops.add("mul", (w("y"), w("factor")), n)
    ops.add("shift", (w("prod"),), n)
    if has_bias:
        ops.add("add", (w("out_bias"),), n)
    return ops
