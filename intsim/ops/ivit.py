"""I-ViT integer-only operators (Li & Gu, ICCV 2023): shift-exp, Shiftmax, ShiftGELU and
I-LayerNorm, with both published parameter sets and corrected variants.

I-ViT ships two implementations that are not bit-identical: the PyTorch modules
(``models/quantization_utils/quant_modules.py``) and the TVM kernels
(``TVM_benchmark/models/layers.py``). Both are reproduced as variants (``variant=``; ``profile=`` is
its old, deprecated name):

==============  ==========================================  ==========================================
                ``"pytorch"``                               ``"tvm"``
==============  ==========================================  ==========================================
x0              ``floor(-1 / S)``                           ``int(-1 / S - 1)`` (truncation)
q               ``floor(x / x0)``                           ``x / x0`` in int32 (truncating division)
exponent        ``floor((r/2 - x0) * 2**(n - q))``          ``((r >> 1) - x0) << (n - q)``
clamps          ``max(exp, 0)``; ``min(sum, 2**31 - 1)``    none (int32 registers wrap)
Shiftmax        n = 15, out_bit 8 (class default; the ViT   n = 16, ``((2**31-1)/sum * e) >> 24`` cast
                model uses 16), scale ``2**-(out_bit-1)``   to int8, scale 1/128
ShiftGELU       n = 23, sigmoid ``>> (32 - out_bit)``       n = 23, ``>> 24``, int32 product
I-LayerNorm     round-half-even mean, 10-step sqrt          truncated mean, uint32 ``y**2`` and sum,
                                                            int32 product, truncating ``/ 2``
==============  ==========================================  ==========================================

``"corrected"`` (Shiftmax, ShiftGELU, I-LayerNorm) is this module's fix of the published
kernels' flaws; see each operator. All variants use :mod:`intsim.ops.ibert`'s conventions
(validation, registers, taps, op counts; constants derived in float64 from the float scale).
The register policy ``overflow="wrap"`` reproduces the TVM kernels' int32 wrap-around
exactly, register by register.

>>> import numpy as np
>>> from intsim import ivit
>>> x = np.array([[10, 20, 30, 40, 50]])
>>> ivit.shiftmax(x, 0.1).values.tolist(), ivit.shiftmax(x, 0.1, variant="tvm").values.tolist()
([[1, 4, 11, 31, 78]], [[2, 5, 13, 31, 75]])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from ..core.deprecation import renamed_keyword
from ..core.errors import ConfigError, ShapeError
from ..core.inttype import IntType
from ..regs.chain import Chain, Cost, Step
from ..regs.opresult import OpResult
from ..regs.prims import (
    add_chk,
    bitlen64,
    div0,
    lut_get,
    mul_step,
    shl_step,
    step,
    tap,
)
from ..regs.runtime import (
    INT64_MAX,
    LUT_MAX,
    Plan,
    as_blocks,
    as_rows,
    cached_lut,
    check_in_type,
    check_input,
    check_int_param,
    check_op_scale,
    check_variant,
    no_lut,
)
from .ibert import (
    I8,
    I32,
    I64,
    U32,
)
from .layernorm_chain import (
    LN_CHAIN,
    MEAN_RNE,
    MEAN_TRUNC,
    SQ_IVIT,
    SQ_NORM,
    acc_end,
    acc_range,
    acc_start,
    acc_step,
    check_float_params,
    ln_affine,
    mulv_step,
    run_layernorm,
)
from .opspec import OpSpec

__all__ = ["shift_exp", "shiftmax", "shiftgelu", "layernorm", "x0_int", "OPS", "SOFTMAX_N", "GELU_N",
           "GELU_SIGMOID_K"]

SOFTMAX_N = {"pytorch": 15, "tvm": 16, "corrected": 15}  #: Shiftmax's "sufficiently large integer"
GELU_N = 23  #: ShiftGELU's n (both paths)
GELU_SIGMOID_K = 1.702  #: GELU(x) ~ x * sigmoid(1.702 x)
I16 = IntType(16)


@renamed_keyword("profile", "variant")
def x0_int(scale: float, variant: str = "pytorch") -> int:
    """The integer standing for -1 in the log2 domain: ``floor(-1/S)`` (PyTorch) or
    ``int(-1/S - 1)`` (TVM's float-to-int32 constant, truncating toward zero).

    >>> x0_int(0.1), x0_int(0.1, "tvm"), x0_int(0.3), x0_int(0.3, "tvm")
    (-10, -11, -4, -4)
    """
    S = float(scale)
    if variant == "tvm":
        return int(-1.0 / S - 1)
    return math.floor(-1.0 / S)


@njit(cache=True, forceinline=True)
def _tdiv(a, b):
    """C (truncating) integer division, b != 0."""
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


# ---------------------------------------------------------------------------------------------
# the shift-exp chain (shift_exp; the element and row-maximum exponentials of Shiftmax and ShiftGELU)
# ---------------------------------------------------------------------------------------------
PYTORCH, TVM, CORRECTED = 0, 1, 2  #: the kernels' variant codes


def _sexp_steps(prefix: str = "", per: str = "e", src: str = "in", tvm: bool = False, clamp: bool = False) -> Chain:
    """The shift-exp steps ``log2e`` ... ``exp`` (named with ``prefix``), one value per element
    (``per="e"``) or per row (``"r"``). ``src`` is the register the chain starts from (its width
    keys the shifts of ``x * log2 e``); ``clamp`` counts the compare of PyTorch's ``max(exp, 0)``."""
    p = prefix

    def c(op: str, widths: tuple, times: int = 1) -> Cost:
        return Cost(op, widths, times, per)

    return Chain("ivit.shift_exp", [
        Step(p + "log2e", per, I32, (c("shift", (src,), 2), c("add", (p + "log2e",), 2))),  # x + (x>>1) - (x>>4)
        Step(p + "x_clamped", per, I32, (c("compare", (p + "x_clamped",)),)),
        Step(p + "q", per, I32, (c("div", (p + "x_clamped",)),)),  # divisor x0 held at the clamped width
        Step(p + "x0q", per, I32, (c("mul", (p + "x_clamped", p + "q")),)),
        Step(p + "r", per, I32, (c("add", (p + "r",)),)),
        # r >> 1 (TVM) or the doubling of x0 (PyTorch), then the subtraction
        Step(p + "exp_base", per, I32, (c("shift", (p + "r",)), c("add", (p + "exp_base",)))),
        # the shift amount n - q and the shift [, max(exp, 0)]
        Step(p + "exp", per, I32 if tvm else I64,
             (c("add", (p + "q",)), c("shift", (p + "exp",)), *([c("compare", (p + "exp",))] if clamp else []))),
    ])


#: the steps of the chain, counted from its first (``log2e``)
SX_LOG2E, SX_CLAMPED, SX_Q, SX_X0Q, SX_R, SX_BASE, SX_EXP = range(len(_sexp_steps()))
#: the kernels' parameter vector: x0, n, the variant code, out_bit, and 1 when the table of
#: :func:`_lut_sexp` covers the clamped domain with no event in any entry (then the unrecorded
#: chain reads it branch-free)
XP_X0, XP_N, XP_MODE, XP_OUT_BIT, XP_TAB, XP_TAB_MIN, XP_TAB_MAX = range(7)


def _params(x0: int, n: int, mode: int, out_bit: int, lut: tuple) -> np.ndarray:
    kp = np.zeros(7, dtype=np.int64)
    lfin, lbad = lut[0], lut[3]
    kp[[XP_X0, XP_N, XP_MODE, XP_OUT_BIT, XP_TAB]] = [x0, n, mode, out_bit, lfin.shape[0] > 0 and not lbad.any()]
    if lfin.shape[0]:  # the table's smallest and largest entry (bounds of every exponential read from it)
        kp[[XP_TAB_MIN, XP_TAB_MAX]] = [lfin.min(), lfin.max()]
    return kp


@njit(cache=True, forceinline=True)
def _sexp_tail(cf, st, tp, ton, i, j, s0, v, x0, n, tvm, rec, ok):
    """Steps q ... exp (``s0`` the chain's first step) for the clamped log2-domain value v.
    Returns ``(exp, ok)``."""
    q, ok = step(cf, st, tp, ton, i, j, s0 + SX_Q, _tdiv(v, x0) if tvm else v // x0, rec, ok)
    p, ok = mul_step(cf, st, tp, ton, i, j, s0 + SX_X0Q, x0, q, rec, ok)
    r, ok = step(cf, st, tp, ton, i, j, s0 + SX_R, v - p, rec, ok)
    if tvm:
        base, ok = step(cf, st, tp, ton, i, j, s0 + SX_BASE, (r >> np.int64(1)) - x0, rec, ok)
        return shl_step(cf, st, tp, ton, i, j, s0 + SX_EXP, base, n - q, rec, ok)
    base, ok = step(cf, st, tp, ton, i, j, s0 + SX_BASE, r - np.int64(2) * x0, rec, ok)  # twice the code's r/2 - x0
    if base <= 0:
        return step(cf, st, tp, ton, i, j, s0 + SX_EXP, np.int64(0), rec, ok)
    return shl_step(cf, st, tp, ton, i, j, s0 + SX_EXP, base, n - q - np.int64(1), rec, ok)


@njit(cache=True, forceinline=True)
def _sexp(cf, st, tp, ton, i, j, s0, x, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, tab, rec, ok):
    """The shift-exp of x (steps from ``s0``): ``log2e``, ``x_clamped``, then the steps from
    ``q`` on, from the table of :func:`_lut_sexp` where it holds the value (``lfin`` empty: no
    table), else by :func:`_sexp_tail`. Returns ``(exp, ok)``.

    ``tab`` (unrecorded only; kp[XP_TAB]): the table covers the whole clamped domain [n x0, 0]
    with no event, so a clamped value ``v >= n x0`` is read without a branch (the loops
    vectorize) and ``ok`` cleared when ``v > 0``, outside the table."""
    t, ok = step(cf, st, tp, ton, i, j, s0 + SX_LOG2E, x + (x >> np.int64(1)) - (x >> np.int64(4)), rec, ok)
    lo = n * x0
    v, ok = step(cf, st, tp, ton, i, j, s0 + SX_CLAMPED, t if t > lo else lo, rec, ok)
    if rec:
        e, found = lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v)
        if found:
            return e, ok
    elif tab:
        return lfin[min(v, np.int64(0)) - llo], ok & (v <= 0)
    else:
        k = v - llo
        if k >= 0 and k < lfin.shape[0]:
            return lfin[k], ok and not lbad[k]
    return _sexp_tail(cf, st, tp, ton, i, j, s0, v, x0, n, tvm, rec, ok)


@njit(cache=True)
def _k_sexp_lut(cf, st, tp, lo, s0, x0, n, tvm, out):
    for i in range(out.shape[0]):
        out[i], _ = _sexp_tail(cf, st, tp, True, i, 0, s0, lo + i, x0, n, tvm, True, True)


def _lut_sexp(plan: Plan, s0: int, x0: int, n: int, tvm: bool, use: bool = True) -> tuple:
    """The steps ``q`` ... ``exp`` of the chain starting at step ``s0``, tabulated over the clamped
    domain [n x0, 0] by :func:`_sexp_tail` (events and taps replayed per entry)."""
    lo = n * x0
    size = -lo + 1
    if size > LUT_MAX or not use:
        return no_lut(SX_EXP - SX_Q + 1)

    def fill(cf, st, tp, out):
        _k_sexp_lut(cf, st, tp, np.int64(lo), np.int64(s0), np.int64(x0), np.int64(n), tvm, out)
    return cached_lut(("ivit.shift_exp", int(x0), int(n), bool(tvm)), plan, s0 + SX_Q, s0 + SX_EXP + 1, lo, size,
                      fill)


# ---------------------------------------------------------------------------------------------
# shift-exp
# ---------------------------------------------------------------------------------------------
_SEXP_PROFILES = ("pytorch", "tvm")
_SEXP_CHAINS = {v: _sexp_steps(tvm=v == "tvm", clamp=v != "tvm") for v in _SEXP_PROFILES}


# The parallel kernels call their loop body as a separate, non-inlined function, compiled with the options
# explained at ibert._k_iexp_block: numba's parfor passes copy the whole prange body, so a call keeps it
# small and the cold compile fast.
@njit(cache=True, error_model="numpy", _nrt=False)
def _k_shift_exp_block(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, B, size):
    """Block i of :func:`_k_shift_exp` (the body of its parallel loop): unrecorded first, the
    whole block again recorded when a register overflowed (or taps are on)."""
    p0 = i * B
    p1 = min(p0 + B, size)
    x0, n = kp[XP_X0], kp[XP_N]
    tvm = kp[XP_MODE] == TVM
    xs = x[p0:p1]  # slices indexed from 0: no negative-index wrap, so LLVM vectorizes the loop
    os = out[p0:p1]
    good = not ton
    if good and kp[XP_TAB] != 0:  # the table, branch-free
        lo = hi = np.int64(xs[0])
        for j in range(xs.shape[0]):
            v = np.int64(xs[j])
            lo = min(lo, v)
            hi = max(hi, v)
            os[j], _ = _sexp(cf, st, tp, ton, i, j, 0, v, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, True, False,
                             True)
        # log2e, x_clamped and the table index increase with x: checked at the block's ends
        for v in (lo, hi):
            _, good = _sexp(cf, st, tp, ton, i, -1, 0, v, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, True, False,
                            good)
    elif good:
        for j in range(xs.shape[0]):
            e, ok = _sexp(cf, st, tp, ton, i, j, 0, np.int64(xs[j]), x0, n, tvm, lfin, lval, lev, lbad, llo, ls0,
                          False, False, True)
            os[j] = e
            good &= ok
    if not good:
        for j in range(xs.shape[0]):
            e, _ = _sexp(cf, st, tp, ton, i, j, 0, np.int64(xs[j]), x0, n, tvm, lfin, lval, lev, lbad, llo, ls0,
                         False, True, True)
            os[j] = e


@njit(cache=True, parallel=True)
def _k_shift_exp(cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, B):
    size = x.shape[0]
    for i in prange(st.shape[0]):
        _k_shift_exp_block(np.int64(i), cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, B, size)


@renamed_keyword("profile", "variant")
def shift_exp(x: Any, scale: float, *, variant: str = "pytorch", n: int | None = None,
              in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
              taps: bool = False) -> OpResult:
    """I-ViT's shift exponential ``int_exp_shift``, element-wise (meant for ``x <= 0``).

    ``pytorch``::

        t  = x + floor(x/2) - floor(x/16)           # x * log2(e) ~ 1.4375 x
        t  = max(t, n * x0);  x0 = floor(-1/S)      # x0 stands for -1 in the log2 domain
        q  = floor(t / x0);  r = t - x0 * q         # r in (x0, 0]
        out = max(floor((r/2 - x0) * 2**(n - q)), 0);  scale_out = S / 2**n

    ``tvm``: ``x0 = int(-1/S - 1)``, ``q`` by truncating division, ``out = ((r >> 1) - x0) <<
    (n - q)``, no clamp. ``n`` defaults to the variant's Shiftmax value (15 / 16).

    Registers (defaults): ``log2e``, ``x_clamped``, ``q``, ``x0q``, ``r``, ``exp_base`` (``r -
    2 x0`` for PyTorch, i.e. twice the code's ``r/2 - x0``; ``(r >> 1) - x0`` for TVM) at 32 bits;
    ``exp`` 64 (PyTorch) / 32 (TVM). Positive inputs are accepted and give ``q < 0``, a left
    shift beyond ``n`` that quickly overflows ``exp``.

    >>> shift_exp(np.array([0, -10, -20]), 0.1).values.tolist()
    [327680, 131072, 49152]
    """
    op = "ivit.shift_exp"
    variant = check_variant(variant, _SEXP_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    n = SOFTMAX_N[variant] if n is None else check_int_param(n, "n", op, 0, 62)
    tvm = variant == "tvm"
    x0 = x0_int(S, variant)
    _check_x0(x0, n, op)
    arr = check_input(x, in_t, op, min_ndim=0)
    chain = _SEXP_CHAINS[variant]
    regs = chain.registers(widths, overflow, op)
    flat, nb, B = as_blocks(arr)
    plan = chain.plan(regs, nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        lut = _lut_sexp(plan, 0, x0, n, tvm, flat.size >= 1024)
        _k_shift_exp(*plan.args(), flat, _params(x0, n, TVM if tvm else PYTORCH, 0, lut), *lut, out, np.int64(B))
    tapd = plan.finish(arr.shape, "flat")
    ops = chain.op_counts(regs, in_bits=in_t.bits, elements=int(flat.size), rows=nb)
    return OpResult(values=out.reshape(arr.shape), scale=S / 2 ** n, ops=ops, registers=regs, taps=tapd)


def _check_x0(x0: int, n: int, op: str) -> None:
    if x0 >= 0:
        raise ConfigError(f"{op}: x0 = {x0} is not negative")
    if abs(n * x0) > 1 << 40:
        raise ConfigError(f"{op}: scale too small: n * x0 = {n * x0} is beyond the emulated range")


# ---------------------------------------------------------------------------------------------
# Shiftmax
# ---------------------------------------------------------------------------------------------
_SMAX_PROFILES = ("pytorch", "tvm", "corrected")


def _smax_steps(variant: str) -> Chain:
    """Shiftmax's chain: ``x_sub``, the shift-exp chain, ``sum`` ... ``out``. ``reduce`` (a call
    parameter of the op counts) is ``R (N - 1)``: the compares of the row maxima, the adds of the
    row sums."""
    mode = _SMAX_PROFILES.index(variant)
    tvm, corrected = mode == TVM, mode == CORRECTED
    head = Chain("ivit.shiftmax", [
        Step("x_sub", "e", I32, (Cost("compare", ("in",), "reduce", "call"), Cost("add", ("x_sub",)))),
    ])
    tail = Chain("ivit.shiftmax", [
        Step("sum", "r", I32 if tvm else I64, (Cost("add", ("sum",), "reduce", "call"),)),
        # PyTorch: min(sum, 2**31 - 1); corrected: the bit length of the sum and its normalizing shift
        Step("sum_clamped", "r", I64 if corrected else I32,
             (Cost("compare", ("sum",), 1, "r"),) if mode == PYTORCH else
             (Cost("compare", ("sum",), 1, "r"), Cost("shift", ("sum",), 1, "r")) if corrected else ()),
        Step("factor", "r", U32 if corrected else I32, (Cost("div", ("sum_clamped",), 1, "r"),)),
        Step("prod", "e", I32 if tvm else I64,
             (*([Cost("shift", ("exp",))] if corrected else []), Cost("mul", ("exp", "factor")))),
        # the shift [, its rounding increment and the clamp]
        Step("out", "e", I8, (Cost("shift", ("prod",)),
                              *([Cost("add", ("prod",)), Cost("compare", ("out",))] if corrected else []))),
    ])
    return head + _sexp_steps(src="x_sub", tvm=tvm, clamp=mode == PYTORCH) + tail


_SMAX_CHAINS = {v: _smax_steps(v) for v in _SMAX_PROFILES}
M_XSUB, M_EXP, M_SUM, M_SUMC, M_FACTOR, M_PROD, M_OUT = _SMAX_CHAINS["pytorch"].ids(
    "x_sub", "log2e", "sum", "sum_clamped", "factor", "prod", "out")


@njit(cache=True, forceinline=True)
def _smx_norm(acc, mode, out_bit):
    """(sum_clamped, factor, shift, k) of Shiftmax's normalization (factor -1: division by zero)."""
    i31 = np.int64(2147483647)
    sc = min(acc, i31) if mode == PYTORCH else acc
    if sc == 0:
        return sc, np.int64(-1), np.int64(0), np.int64(0)
    if mode == CORRECTED:
        a = -sc if sc < 0 else sc
        L2 = bitlen64(a)
        k = L2 - 32 if L2 > 32 else np.int64(0)
        f = (np.int64(1) << np.int64(30 + L2 - k)) // (sc >> k)
        return sc, f, np.int64(30 + L2 - k - (out_bit - 1)), k
    if mode == TVM:
        return sc, _tdiv(i31, sc), np.int64(24), np.int64(0)
    return sc, i31 // sc, np.int64(32 - out_bit), np.int64(0)


@njit(cache=True, forceinline=True)
def _smx_out(p, sh, mode, top):
    if mode == CORRECTED:
        o = p >> sh if sh <= 0 else (p + (np.int64(1) << (sh - np.int64(1)))) >> sh
        return o if o < top else top
    return p >> sh


@njit(cache=True, forceinline=True)
def _smax_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, tab, rec):
    """Shiftmax of row i, unrecorded (``rec`` False: returns False as soon as a register would
    not hold a value) or recorded. Returns ``ok``. ``tab``: see :func:`_sexp`."""
    N = x.shape[1]
    x0, n, mode, out_bit = kp[XP_X0], kp[XP_N], kp[XP_MODE], kp[XP_OUT_BIT]
    tvm = mode == TVM
    top = (np.int64(1) << (out_bit - np.int64(1))) - np.int64(1)
    xr = x[i]
    orow = out[i]
    mx = np.int64(xr[0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, np.int64(xr[j]))
        mn = min(mn, np.int64(xr[j]))
    ok = True
    if tab:  # (unrecorded) x_sub, log2e, x_clamped and the table index increase with x: checked at the row's ends
        for xe in (mn, mx):
            d, ok = step(cf, st, tp, ton, i, -1, M_XSUB, xe - mx, rec, ok)
            _, ok = _sexp(cf, st, tp, ton, i, -1, M_EXP, d, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, tab, rec, ok)
    if tab:  # (unrecorded) every exponential is a table entry: the sum is proven by the table's bounds
        elo, ehi = kp[XP_TAB_MIN], kp[XP_TAB_MAX]
        if mode == PYTORCH:
            elo, ehi = max(elo, np.int64(0)), max(ehi, np.int64(0))
        # non-negative addends below INT64_MAX / N: the partial sums rise from 0 to the sum, within int64
        ok = ok and elo >= 0 and ehi < INT64_MAX // max(N, 1)
        s = np.int64(0)
        for j in range(N):
            d, _ = step(cf, st, tp, ton, i, j, M_XSUB, xr[j] - mx, False, ok)
            e, _ = _sexp(cf, st, tp, ton, i, j, M_EXP, d, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, True, False,
                         ok)
            if mode == PYTORCH and e < 0:
                e = np.int64(0)
            orow[j] = e
            s += e
        _, ok = step(cf, st, tp, ton, i, -1, M_SUM, np.int64(0), False, ok)
        acc, ok = step(cf, st, tp, ton, i, -1, M_SUM, s, False, ok)
        if not ok:
            return False
    else:
        accr = acc_start()
        for j in range(N):
            d, ok = step(cf, st, tp, ton, i, j, M_XSUB, xr[j] - mx, rec, ok)
            e, ok = _sexp(cf, st, tp, ton, i, j, M_EXP, d, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, False, rec, ok)
            if mode == PYTORCH and e < 0:
                e = np.int64(0)
            orow[j] = e
            accr = acc_step(cf, st, i, j, M_SUM, accr, e, rec)
        elo, ehi = acc_range(accr)
        acc, ok = acc_end(cf, M_SUM, accr, rec, ok)
        if not (rec or ok):
            return False
    if rec:
        tap(tp, ton, i, -1, M_SUM, acc)
    sc0, f, sh, kk = _smx_norm(acc, mode, out_bit)
    sc, ok = step(cf, st, tp, ton, i, -1, M_SUMC, sc0, rec, ok)
    if sc != sc0:  # the policy changed the register: normalize what it holds
        _, f, sh, kk = _smx_norm(sc, mode, out_bit)
    if sc == 0:
        if not rec:
            return False
        f = div0(cf, st, tp, ton, i, -1, M_FACTOR)
    else:
        f, ok = step(cf, st, tp, ton, i, -1, M_FACTOR, f, rec, ok)
    if tab:  # (unrecorded) prod and out move with the exponential: checked at the smallest and largest
        for ee in (elo, ehi):
            p, ok = mulv_step(cf, st, tp, ton, i, -1, M_PROD, ee >> kk, f, rec, ok)
            _, ok = step(cf, st, tp, ton, i, -1, M_OUT, _smx_out(p, sh, mode, top), rec, ok)
    for j in range(N):
        p, okj = mulv_step(cf, st, tp, ton, i, j, M_PROD, orow[j] >> kk, f, rec, ok)
        orow[j], okj = step(cf, st, tp, ton, i, j, M_OUT, _smx_out(p, sh, mode, top), rec, okj)
        if not tab:
            ok = okj
    return ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_shiftmax_row(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out):
    """Row i of :func:`_k_shiftmax` (the body of its parallel loop): unrecorded first (reading
    the table branch-free when it can), again recorded when a register overflowed (or taps are on)."""
    if not ton:
        if kp[XP_TAB] != 0:
            if _smax_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, True, False):
                return
        elif _smax_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, False, False):
            return
    _smax_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, False, True)


@njit(cache=True, parallel=True)
def _k_shiftmax(cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out):
    for i in prange(x.shape[0]):
        _k_shiftmax_row(np.int64(i), cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out)


@renamed_keyword("profile", "variant")
def shiftmax(x: Any, scale: float, *, variant: str = "pytorch", out_bit: int | None = None, n: int | None = None,
             in_type: IntType | str = I8, widths: dict | None = None, overflow: str = "raise",
             taps: bool = False) -> OpResult:
    """I-ViT's Shiftmax (``IntSoftmax``) along the last axis.

    ``pytorch`` (n = 15, ``out_bit`` 8 by default, 16 in the released ViT models)::

        e   = shift_exp(x - max(x))                      # pytorch variant
        sum = min(sum(e), 2**31 - 1);  f = floor((2**31 - 1) / sum)
        out = floor(e * f / 2**(32 - out_bit));  scale_out = 2**-(out_bit - 1)   # out in [0, 2**(out_bit-1))

    ``tvm`` (n = 16; the kernel is fixed to 8 bits)::

        e   = shift_exp_tvm(x - max(x));  sum = sum(e)   # int32: wraps for long rows
        out = (((2**31 - 1) / sum) * e) >> 24            # truncating int32 division; cast to int8

    ``corrected``: PyTorch's shift-exp with a 64-bit sum (no clamp: the published clamp makes a
    long row's outputs too large, and TVM's int32 sum wraps), a normalized reciprocal
    ``f = floor(2**(30 + L - k) / (sum >> k))`` (``L = bitlen(sum)``, ``k = max(0, L - 32)``; 31
    significant bits at any row length), ``out = round_half_up((e >> k) * f / 2**(30 + L - k -
    out_bit + 1))`` clamped to ``2**(out_bit - 1) - 1``.

    The input is int8 by default (I-ViT quantizes the scaled attention scores to 8 bits).
    Registers (defaults): ``x_sub`` 32, the shift-exp chain (see :func:`shift_exp`), ``sum`` 64
    (PyTorch, corrected) / 32 (TVM), ``sum_clamped`` 32 (PyTorch: ``min(sum, 2**31 - 1)``; the
    other variants pass the sum through), ``factor`` 32, ``prod`` 64 (PyTorch, corrected) /
    32 (TVM), ``out`` signed ``out_bit``.

    Test vectors (computed with the published PyTorch and TVM kernels), ``[10, 20, 30, 40, 50]`` at S = 0.1: PyTorch
    ``[1, 4, 11, 31, 78]``, TVM ``[2, 5, 13, 31, 75]``, both at scale 1/128.

    >>> shiftmax(np.array([[0, 0, 0, 0]]), 0.1).values.tolist()
    [[31, 31, 31, 31]]
    """
    op = "ivit.shiftmax"
    variant = check_variant(variant, _SMAX_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    tvm = variant == "tvm"
    if out_bit is None:
        out_bit = 8
    out_bit = check_int_param(out_bit, "out_bit", op, 2, 31)
    if tvm and out_bit != 8:
        raise ConfigError(f"{op}: the TVM kernel's output is fixed to 8 bits (>> 24, int8); got out_bit={out_bit}")
    n = SOFTMAX_N[variant] if n is None else check_int_param(n, "n", op, 0, 62)
    x0 = x0_int(S, "tvm" if tvm else "pytorch")
    _check_x0(x0, n, op)
    arr = check_input(x, in_t, op)
    chain = _SMAX_CHAINS[variant]
    regs = chain.registers(widths, overflow, op, defaults={"out": IntType(out_bit)})
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = chain.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        lut = _lut_sexp(plan, M_EXP, x0, n, tvm, arr.size >= 1024)
        _k_shiftmax(*plan.args(), as_rows(arr), _params(x0, n, _SMAX_PROFILES.index(variant), out_bit, lut), *lut,
                    out)
    tapd = plan.finish(arr.shape, "rows")
    ops = chain.op_counts(regs, in_bits=in_t.bits, elements=R * N, rows=R, params={"reduce": R * (N - 1)})
    return OpResult(values=out.reshape(arr.shape), scale=2.0 ** -(out_bit - 1), ops=ops, registers=regs, taps=tapd)


# ---------------------------------------------------------------------------------------------
# ShiftGELU
# ---------------------------------------------------------------------------------------------
_GELU_PROFILES = ("pytorch", "tvm", "corrected")


def _gelu_steps(variant: str) -> Chain:
    """ShiftGELU's chain: ``x_sub``, the element shift-exp chain, ``neg_max`` and the row's
    ``max_`` shift-exp chain, ``sum`` ... ``out``. ``reduce`` (a call parameter of the op counts)
    is ``R (N - 1)``, the compares of the row maxima."""
    mode = _GELU_PROFILES.index(variant)
    tvm, corrected = mode == TVM, mode == CORRECTED
    head = Chain("ivit.shiftgelu", [
        Step("x_sub", "e", I32, (Cost("compare", ("in",), "reduce", "call"), Cost("add", ("x_sub",)))),
    ])
    neg_max = Chain("ivit.shiftgelu", [
        # -m [, m = max(m, 0) (corrected)]
        Step("neg_max", "r", I32, (Cost("add", ("neg_max",), 1, "r"),
                                   *([Cost("compare", ("in",), 1, "r")] if corrected else []))),
    ])
    tail = Chain("ivit.shiftgelu", [
        Step("sum", "e", I32 if tvm else I64, (Cost("add", ("sum",)),)),
        Step("sum_clamped", "e", I64 if corrected else I32,
             (Cost("compare", ("sum",)),) if mode == PYTORCH else ()),  # min(sum, 2**31 - 1)
        # the reciprocal (published) or the exact sigmoid's division (corrected)
        Step("factor", "e", I64 if corrected else I32, (Cost("div", ("sum_clamped",)),)),
        Step("prod", "e", I32 if tvm else I64,
             (Cost("shift", ("prod",)),) if corrected else (Cost("mul", ("exp", "factor")), Cost("shift", ("prod",)))),
        Step("sig", "e", I8),
        Step("out", "e", I32, (Cost("mul", ("in", "sig")),)),
    ])
    clamp = mode == PYTORCH
    return (head + _sexp_steps(src="x_sub", tvm=tvm, clamp=clamp) + neg_max
            + _sexp_steps("max_", "r", "neg_max", tvm, clamp) + tail)


_GELU_CHAINS = {v: _gelu_steps(v) for v in _GELU_PROFILES}
G_XSUB, G_EXP, G_NEG_MAX, G_MAX_EXP, G_SUM, G_SUMC, G_FACTOR, G_PROD, G_SIG, G_OUT = _GELU_CHAINS["pytorch"].ids(
    "x_sub", "log2e", "neg_max", "max_log2e", "sum", "sum_clamped", "factor", "prod", "sig", "out")


@njit(cache=True, forceinline=True)
def _add_step(cf, st, i, j, s, a, b, rec, ok):
    """Register s <- a + b, recorded as :func:`~intsim.regs.prims.add_chk` (no tap) or only
    checked (beyond int64 or outside the register clears ``ok``). Returns ``(value, ok)``."""
    if rec:
        return add_chk(cf, st, i, j, s, a, b), ok
    r = a + b
    wide = ((a >= 0) == (b >= 0)) & ((r >= 0) != (a >= 0))
    return r, ok & (not wide) & (r >= cf[s, 0]) & (r <= cf[s, 1])


@njit(cache=True, forceinline=True)
def _gelu_sig(cf, st, tp, ton, i, j, xv, mx, em, kp, lfin, lval, lev, lbad, llo, ls0, tab, rec, ok):
    """Steps ``x_sub`` ... ``sig`` of element value xv (row maximum mx, ``em`` the row maximum's
    exponential): the sigmoid of 1.702 xv. Returns ``(sig, ok)``; unrecorded, ``ok`` is False
    where a register would not hold a value or the sum is 0 (the recorded run divides by zero)."""
    x0, n, mode, out_bit = kp[XP_X0], kp[XP_N], kp[XP_MODE], kp[XP_OUT_BIT]
    tvm = mode == TVM
    i31 = np.int64(2147483647)
    d, ok = step(cf, st, tp, ton, i, j, G_XSUB, xv - mx, rec, ok)
    e, ok = _sexp(cf, st, tp, ton, i, j, G_EXP, d, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, tab, rec, ok)
    if mode == PYTORCH and e < 0:
        e = np.int64(0)
    s, ok = _add_step(cf, st, i, j, G_SUM, e, em, rec, ok)
    if rec:
        tap(tp, ton, i, j, G_SUM, s)
    s, ok = step(cf, st, tp, ton, i, j, G_SUMC, s if mode != PYTORCH or s < i31 else i31, rec, ok)
    f = np.int64(0)
    if s == 0:
        if not rec:
            return np.int64(0), False
        f = div0(cf, st, tp, ton, i, j, G_FACTOR)
    if mode == CORRECTED:
        # exact sigmoid: floor(e * 2**(out_bit-1) / (e + em)); factor holds e + em
        if s == 0:
            return f, ok
        num, ok = shl_step(cf, st, tp, ton, i, j, G_PROD, e, out_bit - np.int64(1), rec, ok)
        if rec:
            tap(tp, ton, i, j, G_FACTOR, s)
        return step(cf, st, tp, ton, i, j, G_SIG, num // s, rec, ok)
    if s != 0:
        f, ok = step(cf, st, tp, ton, i, j, G_FACTOR, _tdiv(i31, s) if tvm else i31 // s, rec, ok)
    p, ok = mulv_step(cf, st, tp, ton, i, j, G_PROD, e, f, rec, ok)
    return step(cf, st, tp, ton, i, j, G_SIG, p >> (np.int64(24) if tvm else np.int64(32) - out_bit), rec, ok)


@njit(cache=True, forceinline=True)
def _gelu_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, tab, sgt, rec):
    """ShiftGELU of row i, unrecorded (``rec`` False: returns False when a register would not
    hold a value) or recorded. Returns ``ok``. ``tab``: see :func:`_sexp`. Unrecorded, a row whose
    values span at most ``sgt.shape[1]`` integers computes the sigmoid once per value of that
    span (in ``sgt[i]``; every value of the span is checked, a superset of the row's)."""
    x0, n, mode = kp[XP_X0], kp[XP_N], kp[XP_MODE]
    tvm = mode == TVM
    xr = x[i]
    orow = out[i]
    N = xr.shape[0]
    mx = np.int64(xr[0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, np.int64(xr[j]))
        mn = min(mn, np.int64(xr[j]))
    if mode == CORRECTED and mx < 0:
        mx = np.int64(0)
    nm, ok = step(cf, st, tp, ton, i, -1, G_NEG_MAX, -mx, rec, True)
    em, ok = _sexp(cf, st, tp, ton, i, -1, G_MAX_EXP, nm, x0, n, tvm, lfin[:0], lval, lev, lbad, llo, ls0, False, rec,
                   ok)
    if mode == PYTORCH and em < 0:
        em = np.int64(0)
    if not rec and mx - mn < sgt.shape[1]:
        tr = sgt[i]
        for t in range(mx - mn + 1):
            tr[t], ok = _gelu_sig(cf, st, tp, ton, i, 0, mn + t, mx, em, kp, lfin, lval, lev, lbad, llo, ls0, tab,
                                  False, ok)
        for j in range(N):
            xv = np.int64(xr[j])
            orow[j], ok = mulv_step(cf, st, tp, ton, i, j, G_OUT, xv, tr[xv - mn], False, ok)
        return ok
    for j in range(N):
        xv = np.int64(xr[j])
        sig, ok = _gelu_sig(cf, st, tp, ton, i, j, xv, mx, em, kp, lfin, lval, lev, lbad, llo, ls0, tab, rec, ok)
        orow[j], ok = mulv_step(cf, st, tp, ton, i, j, G_OUT, xv, sig, rec, ok)
    return ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_shiftgelu_row(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, sgt, out):
    """Row i of :func:`_k_shiftgelu` (the body of its parallel loop): unrecorded first (reading
    the table branch-free when it can), again recorded when a register overflowed (or taps are on)."""
    if not ton:
        if kp[XP_TAB] != 0:
            if _gelu_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, True, sgt, False):
                return
        elif _gelu_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, False, sgt, False):
            return
    _gelu_chain(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, False, sgt, True)


@njit(cache=True, parallel=True)
def _k_shiftgelu(cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, sgt, out):
    for i in prange(x.shape[0]):
        _k_shiftgelu_row(np.int64(i), cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, sgt, out)


@renamed_keyword("profile", "variant")
def shiftgelu(x: Any, scale: float, *, variant: str = "pytorch", out_bit: int = 8, n: int = GELU_N,
              in_type: IntType | str = I8, widths: dict | None = None, overflow: str = "raise",
              taps: bool = False) -> OpResult:
    """I-ViT's ShiftGELU (``IntGELU``): ``x * sigmoid(1.702 x)`` with the sigmoid as
    ``e**(x-m) / (e**(x-m) + e**-m)`` (``m`` the row maximum), both exponentials by shift-exp at
    scale ``S_sig = 1.702 S`` with n = 23.

    ``pytorch``::

        e   = shift_exp(x - m, S_sig, 23);  em = shift_exp(-m, S_sig, 23)        # per row
        s   = min(e + em, 2**31 - 1);  f = floor((2**31 - 1) / s)
        sig = floor(e * f / 2**(32 - out_bit))                                   # in [0, 2**(out_bit-1))
        out = x * sig;  scale_out = S / 2**(out_bit - 1)

    ``tvm``: the TVM shift-exp, ``s = e + em`` in int32 (no clamp), ``f = (2**31 - 1) / s``
    truncating, ``sig = (f * e) >> 24`` (int32), ``out = x * sig`` (int32); ``out_bit`` must be 8.

    ``corrected``: the reciprocal ``f`` keeps only 3 to 5 bits at fine scales (e + em is about
    ``-x0 * 2**23``), so the sigmoid is computed exactly as ``floor(e * 2**(out_bit-1) / (e +
    em))``; and a negative row maximum (which makes ``-m`` positive and ``em`` overflow in both
    published versions) is replaced by 0, which leaves the sigmoid unchanged mathematically.
    Its registers ``factor`` and ``prod`` hold ``e + em`` and ``e << (out_bit - 1)``.

    Registers (defaults): ``x_sub`` 32; the element chain (see :func:`shift_exp`); ``neg_max``
    32 and the per-row chain ``max_log2e`` ... ``max_exp``; ``sum`` 64 (32 for TVM);
    ``sum_clamped`` 32 (64 corrected); ``factor`` 32; ``prod`` 64 (32 TVM); ``sig`` signed
    ``out_bit``; ``out`` 32. The input is int8 by default (I-ViT requantizes to 8 bits before
    the GELU).

    >>> shiftgelu(np.array([[-40, -10, 0, 10, 40]]), 4 / 127).values.tolist()
    [[-520, -490, 0, 800, 4160]]
    """
    op = "ivit.shiftgelu"
    variant = check_variant(variant, _GELU_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    out_bit = check_int_param(out_bit, "out_bit", op, 2, 31)
    n = check_int_param(n, "n", op, 0, 62)
    tvm = variant == "tvm"
    if tvm and out_bit != 8:
        raise ConfigError(f"{op}: the TVM kernel's sigmoid is fixed to 8 bits (>> 24); got out_bit={out_bit}")
    S_sig = S * GELU_SIGMOID_K
    x0 = x0_int(S_sig, "tvm" if tvm else "pytorch")
    _check_x0(x0, n, op)
    arr = check_input(x, in_t, op)
    chain = _GELU_CHAINS[variant]
    regs = chain.registers(widths, overflow, op, defaults={"sig": IntType(out_bit)})
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = chain.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        lut = _lut_sexp(plan, G_EXP, x0, n, tvm, arr.size >= 1024)
        # the per-row sigmoid table of the unrecorded run: narrow inputs with rows longer than their span
        span = 1 << in_t.bits if in_t.bits <= 12 and N > (1 << in_t.bits) and not taps else 0
        span = span if R * span <= 1 << 22 else 0  # at most 32 MiB of table
        sgt = np.empty((R if span else 1, span), dtype=np.int64)
        _k_shiftgelu(*plan.args(), as_rows(arr), _params(x0, n, _GELU_PROFILES.index(variant), out_bit, lut), *lut,
                     sgt, out)
    tapd = plan.finish(arr.shape, "rows")
    ops = chain.op_counts(regs, in_bits=in_t.bits, elements=R * N, rows=R, params={"reduce": R * (N - 1)})
    return OpResult(values=out.reshape(arr.shape), scale=S / 2 ** (out_bit - 1), ops=ops, registers=regs,
                    taps=tapd)


# ---------------------------------------------------------------------------------------------
# I-LayerNorm
# ---------------------------------------------------------------------------------------------
_LN_PROFILES = ("pytorch", "tvm", "corrected")


@renamed_keyword("profile", "variant")
def layernorm(x: Any, scale: float, gamma: Any = None, beta: Any = None, *, variant: str = "pytorch",
              sqrt_steps: int = 10, in_type: IntType | str = I16, widths: dict | None = None,
              overflow: str = "raise", taps: bool = False) -> OpResult:
    """I-ViT's I-LayerNorm (``IntLayerNorm``) over the last axis (length D).

    ``pytorch``::

        mean   = round_half_even(sum(x) / D);  y = x - mean;  var = sum(y**2)
        k = 2**16;  repeat 10 times: k = floor((k + floor(var / k)) / 2)          # std = k
        factor = floor((2**31 - 1) / std);  out = floor(y * factor / 2) + bias_int
        scale_out = sqrt(D) / 2**30 * gamma;  bias_int = floor((beta / gamma) / (sqrt(D) / 2**30))

    ``tvm`` (``quantized_layernorm``): ``mean = trunc(sum / D)`` with an int32 sum, ``y**2`` and
    its sum in uint32 (``var`` wraps at 2**32), the same 10 steps in uint32, ``(factor * y)`` in
    int32 and a truncating ``/ 2``.

    ``corrected``: I-ViT's square root is far off for small variances (``var = 0`` gives 64,
    ``var = 10**4`` gives 108) and ±1 up to about 2**22, and 10 steps are too few above about
    2**48; the corrected variant uses the exact normalized square root of
    :func:`intsim.ops.ibert.layernorm`'s corrected variant (``std = isqrt(var << 2g)``,
    ``factor = floor(2**(31 + g) / std)``) with a 64-bit variance; same output convention.

    The input is the 16-bit residual stream by default. Registers (defaults): ``sum`` 40 (32
    TVM), ``mean``, ``y``, ``y_shifted`` (unused, equal to ``y``) 32; ``y_sq`` 64 (unsigned 32
    TVM); ``var`` 64 (unsigned 32 TVM); ``var_norm`` 64; ``sqrt_iter`` (the Newton numerator
    ``k + var // k``, largest value of the row) 64 (unsigned 32 TVM); ``std`` 32; ``factor``
    32; ``prod`` 64 (32 TVM); ``out``, ``out_bias`` 32. ``sqrt_steps`` changes the published
    10 iterations. ``scale`` is validated only (normalization is scale-free; no epsilon).

    >>> r = layernorm(np.array([[0, 0, 0, 0]]), 0.1)
    >>> r.values.tolist(), r.taps == {}
    ([[0, 0, 0, 0]], True)
    """
    op = "ivit.layernorm"
    variant = check_variant(variant, _LN_PROFILES, op)
    in_t = check_in_type(in_type, op)
    check_op_scale(scale, op)
    sqrt_steps = check_int_param(sqrt_steps, "sqrt_steps", op, 0, 64)
    check_float_params(gamma, "gamma", op)
    check_float_params(beta, "beta", op)
    arr = check_input(x, in_t, op)
    D = arr.shape[-1]
    if D == 0:
        raise ShapeError(f"{op}: the normalized axis is empty")
    s_y = math.sqrt(D) / 2 ** 30
    out_scale, bias = ln_affine(gamma, beta, D, s_y, op)
    tvm = variant == "tvm"
    corrected = variant == "corrected"
    defaults = {"sum": I32 if tvm else IntType(40), "mean": I32, "y": I32, "y_shifted": I32,
                "y_sq": U32 if tvm else I64, "var": U32 if tvm else I64, "var_norm": I64,
                "sqrt_iter": U32 if tvm else I64, "std": I32, "factor": U32 if corrected else I32,
                "prod": I32 if tvm else I64, "out": I32, "out_bias": I32}
    regs = LN_CHAIN.registers(widths, overflow, op, defaults=defaults)
    return run_layernorm(op, arr, regs, taps, in_t, mean_mode=MEAN_TRUNC if tvm else MEAN_RNE, shift=0,
                          sqrt_mode=SQ_NORM if corrected else SQ_IVIT, iv_steps=sqrt_steps, num_bits=31,
                          norm_top=62, prod_shift=1, prod_round=1 if tvm else 0, eps_int=0, bias=bias,
                          out_scale=out_scale)


#: the operators of this family (:mod:`intsim.ops.registry` lists them as ``ivit.<name>``): the
#: positional inputs of each and the values of its ``variant=`` keyword
OPS: tuple[OpSpec, ...] = (
    OpSpec("shift_exp", shift_exp, ("x", "scale"), _SEXP_PROFILES),
    OpSpec("shiftmax", shiftmax, ("x", "scale"), _SMAX_PROFILES),
    OpSpec("shiftgelu", shiftgelu, ("x", "scale"), _GELU_PROFILES),
    OpSpec("layernorm", layernorm, ("x", "scale"), _LN_PROFILES),
)
