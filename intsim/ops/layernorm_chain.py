"""The integer LayerNorm chain shared by I-BERT's IntLayerNorm, I-ViT's I-LayerNorm and I-LLM's
DI-Norm: row sum, mean (round-half-even, truncated or none), centring, optional shift, squared sum,
integer square root (float as published by I-BERT, I-ViT's fixed iteration, or exact Newton on a
normalized variance), the reciprocal factor, the product and its rounding, and the integer bias.

The chain is :data:`LN_CHAIN` (its steps, default widths and published operations, from which the
op counts come); the variants are sets of modes (:data:`MEAN_RNE` ..., :data:`SQ_FLOAT` ...) in one
parameter vector of the one kernel. :func:`ln_row` is the one copy of the arithmetic: a row runs
unrecorded first (its element steps checked where they are largest, see :func:`ln_row`) and again
recorded only when a register might not hold a value (or taps are on), so the policies, events
and taps all come from it.

Also here, for every operator's kernels: the checked accumulator (:func:`acc_start`,
:func:`acc_step`, :func:`acc_end`), :func:`mulv_step` (a branch-free ``mul_step``),
:func:`chain_op_counts` (memoized op counts) and :func:`div_round_mode` (I-LLM's numbering of
:func:`intsim.regs.prims.div_round`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from ..core.errors import ConfigError, DTypeError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.rounding import FLOOR, HALF_EVEN, HALF_UP, TRUNC
from ..regs.chain import Chain, Cost, Step
from ..regs.opresult import OpResult
from ..regs.prims import add_chk, bitlen64, div0, div_round, mul_step, shl_step, step, tap
from ..regs.registers import RegisterFile
from ..regs.runtime import INT64_MAX, as_rows
from .isqrt import isqrt_newton_u64

# sqrt methods
SQ_FLOAT, SQ_IVIT, SQ_NORM = 0, 1, 2
# mean modes
MEAN_RNE, MEAN_TRUNC, MEAN_NONE = 0, 1, 2

_I32, _I64, _U32 = IntType(32), IntType(64), IntType(32, signed=False)

# The chain, written once: steps, I-BERT's default widths (I-ViT and I-LLM declare their own) and the
# published operations. The counts that depend on the call's modes or data are parameters (see
# run_layernorm): ``mean`` (1 with a mean), ``mean_adds`` (N - 1 with a mean), ``shifted``,
# ``var_adds`` (N - 1, + 1 with an epsilon), ``norm`` (SQ_NORM), ``newton`` (not SQ_IVIT; ``newton2``
# twice that), ``its`` (square-root iterations of the call; ``newton_its``, ``ivit_its`` by method),
# ``std_shift`` (a shifted Newton std) and ``bias``.
LN_CHAIN = Chain("layernorm", [
    Step("sum", "r", IntType(40), (Cost("add", ("sum",), "mean_adds", "r"), Cost("div", ("sum",), "mean", "r"))),
    Step("mean", "r", _I32),
    Step("y", "e", _I32, (Cost("add", ("y",), "mean"),)),
    Step("y_shifted", "e", _I32, (Cost("shift", ("y_shifted",), "shifted"),)),
    Step("y_sq", "e", _I64, (Cost("mul", ("y_shifted", "y_shifted")),)),
    Step("var", "r", _U32, (Cost("add", ("var",), "var_adds", "r"),)),
    Step("var_norm", "r", _I64, (
        Cost("compare", ("var",), "norm", "r"), Cost("shift", ("var_norm",), "norm", "r"),  # bitlen, even shift
        Cost("compare", ("var_norm",), "newton2", "r"), Cost("shift", ("var_norm",), "newton", "r"),  # zero, seed
        Cost("div", ("var_norm",), "newton_its", "call"))),
    Step("sqrt_iter", "r", _I64, (
        Cost("div", ("sqrt_iter",), "ivit_its", "call"), Cost("add", ("sqrt_iter",), "its", "call"),
        Cost("shift", ("sqrt_iter",), "its", "call"), Cost("compare", ("sqrt_iter",), "newton_its", "call"))),
    Step("std", "r", _I32, (Cost("shift", ("std",), "std_shift", "r"),)),
    Step("factor", "r", _U32, (Cost("div", ("std",), per="r"),)),
    Step("prod", "e", _I64, (Cost("mul", ("y", "factor")), Cost("shift", ("prod",)))),
    Step("out", "e", _I32),
    Step("out_bias", "e", _I32, (Cost("add", ("out_bias",), "bias"),)),
])
L_SUM, L_MEAN, L_Y, L_YS, L_YSQ, L_VAR, L_VNORM, L_ITER, L_STD, L_FACTOR, L_PROD, L_OUT, L_BIAS = range(len(LN_CHAIN))
#: the steps as (name, kind) pairs (the kernel's order)
LN_STEPS = [(s.name, s.kind) for s in LN_CHAIN.steps]
#: the kernel's parameter vector (the modes of the call)
(LP_MEAN_MODE, LP_SHIFT, LP_SQRT_MODE, LP_IV_STEPS, LP_NUM_BITS, LP_NORM_TOP, LP_DIV_D, LP_PROD_SHIFT,
 LP_PROD_ROUND, LP_HAS_BIAS, LP_BIAS_LO, LP_BIAS_HI) = range(12)

_DIV_ROUND_CODES = (HALF_EVEN, TRUNC, FLOOR, HALF_UP)


_OPS_MEMO: dict = {}


def chain_op_counts(chain: Chain, regs: RegisterFile, *, in_bits: int, elements: int, rows: int,
                    params: dict[str, int] | None = None) -> OpCounts:
    """``chain.op_counts(...)``, memoized: a call's counts depend only on these arguments and the
    register widths (a fresh copy is returned; the memo holds up to 1024 entries)."""
    key = (chain, tuple(regs.widths.items()), regs.default_bits, in_bits, elements, rows,
           tuple(params.items()) if params else ())
    ops = _OPS_MEMO.get(key)
    if ops is None:
        if len(_OPS_MEMO) >= 1024:
            _OPS_MEMO.clear()
        ops = _OPS_MEMO[key] = chain.op_counts(regs, in_bits=in_bits, elements=elements, rows=rows, params=params)
    return OpCounts() + ops


@njit(cache=True, forceinline=True)
def div_round_mode(a, d, mode):
    """round(a / d) for d > 0: mode 0 half-even, 1 trunc, 2 floor, 3 half-up (this numbering;
    :func:`intsim.regs.prims.div_round` in the :data:`~intsim.core.rounding.ROUNDING_CODE` one)."""
    return div_round(a, d, _DIV_ROUND_CODES[mode])


@njit(cache=True, forceinline=True)
def acc_start():
    """A checked accumulator at 0 (see :func:`acc_step`): ``(sum, sum of the positive addends,
    smallest addend, largest addend, number of addends)``."""
    z = np.int64(0)
    return z, z, np.int64(INT64_MAX), np.int64(-INT64_MAX - 1), z


@njit(cache=True, forceinline=True)
def acc_step(cf, st, i, j, s, acc, b, rec):
    """Accumulator register s <- sum + b, checked after every add. Recorded (``rec``): as
    :func:`~intsim.regs.prims.add_chk` (no tap). Unrecorded: the sum, the sum of the positive
    addends and the smallest and largest addend, reductions that vectorize (a test of every
    partial sum would not); :func:`acc_end` checks them."""
    a, pos, lo, hi, n = acc
    if rec:
        return add_chk(cf, st, i, j, s, a, b), pos, lo, hi, n
    return a + b, pos + max(b, np.int64(0)), min(lo, b), max(hi, b), n + 1


@njit(cache=True, forceinline=True)
def acc_range(acc):
    """The smallest and largest addend of an unrecorded accumulator."""
    return acc[2], acc[3]


@njit(cache=True, forceinline=True)
def acc_end_mag(cf, s, acc, mag, rec, ok):
    """:func:`acc_end` with the caller's bound ``mag`` on the addends: each lies in ``[-mag - 1,
    mag]`` (then the accumulator's smallest and largest addend are not needed, and their
    reductions vanish from the loop)."""
    a, pos, lo, hi, n = acc
    if rec:
        return a, ok
    return a, ok and (n == 0 or mag < INT64_MAX // n) and pos <= cf[s, 1] and a - pos >= cf[s, 0]


@njit(cache=True, forceinline=True)
def acc_end(cf, s, acc, rec, ok):
    """``(sum, ok)`` of an accumulator. Unrecorded, ``ok`` stays set only when every partial sum
    provably fitted int64 and register s: ``n`` addends of magnitude at most ``mag + 1``, ``mag =
    max(largest, ~smallest)``, cannot leave int64 when ``mag < INT64_MAX // n``, and then every
    partial sum lies in ``[neg, pos]``, ``neg = sum - pos`` the sum of the negative addends. (A row
    this bound rejects is run again recorded, which records exactly the partial sums that did not
    fit, if any.)"""
    lo, hi = acc_range(acc)
    return acc_end_mag(cf, s, acc, max(hi, ~lo), rec, ok)


@njit(cache=True, forceinline=True)
def mulv_step(cf, st, tp, ton, i, j, s, a, b, rec, ok):
    """Register s <- a * b exactly, as :func:`~intsim.regs.prims.mul_step`, but branch-free when
    unrecorded, so that loops over it vectorize: the product wraps, and ``ok`` is cleared unless
    the float product (relative error below 2**-51) shows the exact one inside int64 (a product
    within 0.3% of 2**63 is refused too: that row is run again, recorded) and it fits register s."""
    if rec:
        return mul_step(cf, st, tp, ton, i, j, s, a, b, rec, ok)
    p = np.int64(np.uint64(a) * np.uint64(b))
    fine = abs(np.float64(a) * np.float64(b)) < 9.2e18
    return p, ok & fine & (p >= cf[s, 0]) & (p <= cf[s, 1])


@njit(cache=True, forceinline=True)
def ln_sqrt(cf, st, tp, ton, i, v, N, kp, rec, ok):
    """Steps var_norm, sqrt_iter, std and factor of a row with variance v >= 0. Returns
    ``(factor, iterations, ok)``."""
    sqrt_mode = kp[LP_SQRT_MODE]
    num_bits = kp[LP_NUM_BITS]
    if sqrt_mode == SQ_IVIT:
        vn, ok = step(cf, st, tp, ton, i, -1, L_VNORM, v, rec, ok)
        k = np.int64(65536)
        peak = k
        for _ in range(kp[LP_IV_STEPS]):
            if k == 0:
                break
            t, ok = step(cf, st, tp, ton, i, -1, L_ITER, k + vn // k, rec, ok)
            peak = max(peak, t)
            k = t >> np.int64(1)
        tap(tp, ton, i, -1, L_ITER, peak)  # the register's tap: the largest numerator
        std, ok = step(cf, st, tp, ton, i, -1, L_STD, k, rec, ok)
        if std == 0:
            if rec:
                return div0(cf, st, tp, ton, i, -1, L_FACTOR), kp[LP_IV_STEPS], ok
            return np.int64(0), kp[LP_IV_STEPS], False
        f, ok = step(cf, st, tp, ton, i, -1, L_FACTOR, ((np.int64(1) << num_bits) - np.int64(1)) // std, rec, ok)
        return f, kp[LP_IV_STEPS], ok
    g = np.int64(0)
    if sqrt_mode == SQ_NORM:
        g = max((kp[LP_NORM_TOP] - bitlen64(v)) // 2, np.int64(0))
    vs = v << np.int64(2 * g)
    if kp[LP_DIV_D]:
        vs = vs // N
    vn, ok = step(cf, st, tp, ton, i, -1, L_VNORM, vs, rec, ok)
    r, it = isqrt_newton_u64(np.uint64(vn if vn > 0 else 0))
    num = np.int64(0)
    if vn > 0:  # the Newton numerator peaks at its first step: seed + vn // seed
        sd = np.int64(1) << np.int64((bitlen64(vn) + 1) // 2)
        num = sd + vn // sd
    num, ok = step(cf, st, tp, ton, i, -1, L_ITER, num, rec, ok)
    if sqrt_mode == SQ_FLOAT:
        std, ok = shl_step(cf, st, tp, ton, i, -1, L_STD, np.int64(r), kp[LP_SHIFT], rec, ok)
        if std == 0:
            std = np.int64(1)
        f, ok = step(cf, st, tp, ton, i, -1, L_FACTOR, (np.int64(1) << num_bits) // std, rec, ok)
        return f, it, ok
    std, ok = step(cf, st, tp, ton, i, -1, L_STD, np.int64(r), rec, ok)
    f = pow2_floordiv(num_bits + g, std) if std != 0 else np.int64(0)
    f, ok = step(cf, st, tp, ton, i, -1, L_FACTOR, f, rec, ok)
    return f, it, ok


@njit(cache=True, forceinline=True)
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


@njit(cache=True, forceinline=True)
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


@njit(cache=True, forceinline=True)
def ln_center(cf, st, tp, ton, i, j, xv, m, shift, rec, ok):
    """Steps y, y_shifted and y_sq of one element: ``(y, y_sq, ok)``."""
    y, ok = step(cf, st, tp, ton, i, j, L_Y, xv - m, rec, ok)
    ys, ok = step(cf, st, tp, ton, i, j, L_YS, y >> shift, rec, ok)
    sq, ok = mulv_step(cf, st, tp, ton, i, j, L_YSQ, ys, ys, rec, ok)
    return y, sq, ok


@njit(cache=True, forceinline=True)
def ln_output(cf, st, tp, ton, i, j, y, f, b, prod_shift, prod_round, has_bias, rec, ok):
    """Steps prod, out and out_bias of one element (``b`` its bias): ``(out_bias, ok)``."""
    p, ok = mulv_step(cf, st, tp, ton, i, j, L_PROD, y, f, rec, ok)
    o, ok = step(cf, st, tp, ton, i, j, L_OUT, ln_round(p, prod_shift, prod_round), rec, ok)
    return step(cf, st, tp, ton, i, j, L_BIAS, o + b if has_bias else o, rec, ok)


@njit(cache=True, forceinline=True)
def ln_row(cf, st, tp, ton, i, x, kp, ev, bias, out, rec):
    """Row i of the LayerNorm chain (``ev`` its epsilon); returns ``(iterations, ok)``.

    Recorded (``rec``), every register of every element. Unrecorded, the element steps are
    checked where they are largest, and the loops over the row run unchecked: y and y_shifted
    increase with x and y_sq is largest at an end, so :func:`ln_center` is checked at the row's
    smallest and largest x; prod and out move with y (either way, with the sign of the factor) and
    out_bias with y and the bias, so :func:`ln_output` is checked at the four corners; the
    accumulators are checked by :func:`acc_end`. ``ok`` False: some register might not hold its
    value (the row is then run again, recorded)."""
    N = x.shape[1]
    ok = True
    shift = kp[LP_SHIFT]
    m = np.int64(0)
    mn = mx = np.int64(x[i, 0])
    if kp[LP_MEAN_MODE] != MEAN_NONE:
        acc = acc_start()
        for j in range(N):
            acc = acc_step(cf, st, i, j, L_SUM, acc, np.int64(x[i, j]), rec)
        mn, mx = acc_range(acc)  # (unrecorded)
        total, ok = acc_end(cf, L_SUM, acc, rec, ok)
        if not (ok or rec):
            return np.int64(0), False
        tap(tp, ton, i, -1, L_SUM, total)
        code = HALF_EVEN if kp[LP_MEAN_MODE] == MEAN_RNE else TRUNC
        m, ok = step(cf, st, tp, ton, i, -1, L_MEAN, div_round(total, np.int64(N), code), rec, ok)
    elif not rec:
        for j in range(N):
            mn = min(mn, np.int64(x[i, j]))
            mx = max(mx, np.int64(x[i, j]))
    ylo = yhi = mag = np.int64(0)
    if not rec:
        ylo, sqlo, ok = ln_center(cf, st, tp, ton, i, -1, mn, m, shift, False, ok)
        yhi, sqhi, ok = ln_center(cf, st, tp, ton, i, -1, mx, m, shift, False, ok)
        if not ok:
            return np.int64(0), False
        mag = max(sqlo, sqhi, ev ^ (ev >> np.int64(63)))  # every y_sq lies in [0, max(sqlo, sqhi)]
    acc = acc_start()
    for j in range(N):
        y, sq, _ = ln_center(cf, st, tp, ton, i, j, np.int64(x[i, j]), m, shift, rec, True)
        acc = acc_step(cf, st, i, j, L_VAR, acc, sq, rec)
        out[i, j] = y
    if ev != 0:
        acc = acc_step(cf, st, i, -1, L_VAR, acc, ev, rec)
    v, ok = acc_end_mag(cf, L_VAR, acc, mag, rec, ok)
    if not (ok or rec):
        return np.int64(0), False
    tap(tp, ton, i, -1, L_VAR, v)
    f, it, ok = ln_sqrt(cf, st, tp, ton, i, max(v, np.int64(0)), N, kp, rec, ok)
    if not (ok or rec):
        return it, False
    has_bias = kp[LP_HAS_BIAS] != 0
    prod_shift, prod_round = kp[LP_PROD_SHIFT], kp[LP_PROD_ROUND]
    if not rec:
        for yc in (ylo, yhi):
            for bc in (kp[LP_BIAS_LO], kp[LP_BIAS_HI]):
                _, ok = ln_output(cf, st, tp, ton, i, -1, yc, f, bc, prod_shift, prod_round, has_bias, False, ok)
        if not ok:
            return it, False
    for j in range(N):
        b = bias[j] if has_bias else np.int64(0)
        out[i, j] = ln_output(cf, st, tp, ton, i, j, out[i, j], f, b, prod_shift, prod_round, has_bias, rec, True)[0]
    return it, ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_layernorm_row(i, cf, st, tp, ton, x, kp, eps, bias, its, out):
    """Row i of :func:`k_layernorm` (the body of its parallel loop): unrecorded first, again
    recorded when a register overflowed (or taps are on)."""
    ev = eps[i] if eps.shape[0] > 1 else eps[0]
    if not ton:
        it, ok = ln_row(cf, st, tp, ton, i, x, kp, ev, bias, out, False)
        if ok:
            its[i] = it
            return
    its[i] = ln_row(cf, st, tp, ton, i, x, kp, ev, bias, out, True)[0]


@njit(cache=True, parallel=True)
def k_layernorm(cf, st, tp, ton, x, kp, eps, bias, its, out):
    """Generic integer LayerNorm / RMSNorm row kernel (the steps of :data:`LN_CHAIN`); ``kp``
    holds the modes (indices ``LP_*``):

    mean_mode 0: mean = round_half_even(sum / D); 1: trunc(sum / D) (TVM); 2: no mean (RMSNorm).
    sqrt_mode 0: std = isqrt(var) << shift, factor = floor(2**num_bits / max(std, 1))   (I-BERT)
    sqrt_mode 1: I-ViT's fixed-step sqrt from 2**16, factor = (2**num_bits - 1) // std  (I-ViT)
    sqrt_mode 2: g = max(0, (norm_top - bitlen(var)) // 2), vn = var << 2g (// D if div_d),
                 std = isqrt(vn), factor = floor(2**(num_bits + g) / std), 0 if std = 0 (corrected)
    prod_round: 0 floor, 1 trunc (TVM's / 2), 2 half-even, for out = prod / 2**prod_shift.
    eps[i] (or eps[0]) is added to the variance; bias[j] to the output when has_bias; its[i]
    receives the square-root iterations.
    """
    for i in prange(x.shape[0]):
        _k_layernorm_row(np.int64(i), cf, st, tp, ton, x, kp, eps, bias, its, out)


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
    """LayerNorm over the last axis of ``arr`` in the registers ``regs`` (the steps of
    :data:`LN_CHAIN`), in the modes of :func:`k_layernorm`; op counts from the chain."""
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = LN_CHAIN.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    its = np.zeros(R, dtype=np.int64)
    if arr.size:
        xr = as_rows(arr)
        b = bias if bias is not None else np.zeros(1, dtype=np.int64)
        eps = np.ascontiguousarray(np.asarray(eps_int, dtype=np.int64).reshape(-1))
        if eps.size == 0:
            eps = np.zeros(1, dtype=np.int64)
        kp = np.zeros(12, dtype=np.int64)
        kp[[LP_MEAN_MODE, LP_SHIFT, LP_SQRT_MODE, LP_IV_STEPS, LP_NUM_BITS, LP_NORM_TOP, LP_DIV_D, LP_PROD_SHIFT,
            LP_PROD_ROUND]] = [mean_mode, shift, sqrt_mode, iv_steps, num_bits, norm_top, int(div_d), prod_shift,
                               prod_round]
        if bias is not None:
            kp[[LP_HAS_BIAS, LP_BIAS_LO, LP_BIAS_HI]] = [1, b.min(), b.max()]
        k_layernorm(*plan.args(), xr, kp, eps, b, its, out)
    tapd = plan.finish(arr.shape, "rows")
    mean = int(mean_mode != MEAN_NONE)
    newton = int(sqrt_mode != SQ_IVIT)
    total = int(its.sum())
    params = {"mean": mean, "mean_adds": mean * (N - 1), "shifted": int(shift != 0),
              "var_adds": N - 1 + int(bool(np.any(np.asarray(eps_int) != 0))), "norm": int(sqrt_mode == SQ_NORM),
              "newton": newton, "newton2": 2 * newton, "its": total, "newton_its": newton * total,
              "ivit_its": (1 - newton) * total, "std_shift": newton * int(shift != 0), "bias": int(bias is not None)}
    ops = chain_op_counts(LN_CHAIN, regs, in_bits=in_t.bits, elements=R * N, rows=R, params=params)
    return OpResult(values=out.reshape(arr.shape), scale=out_scale, ops=ops, registers=regs, taps=tapd)
