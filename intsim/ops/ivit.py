"""I-ViT integer-only operators (Li & Gu, ICCV 2023): shift-exp, Shiftmax, ShiftGELU and
I-LayerNorm, with both published parameter sets and corrected variants.

I-ViT ships two implementations that are not bit-identical: the PyTorch modules
(``models/quantization_utils/quant_modules.py``) and the TVM kernels
(``TVM_benchmark/models/layers.py``). Both are reproduced as profiles:

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

``"corrected"`` (Shiftmax, ShiftGELU, I-LayerNorm) is this module's fix of the flaws the
design note flags; see each operator. All profiles use :mod:`intsim.ops.ibert`'s conventions
(validation, registers, taps, op counts; constants derived in float64 from the float scale).
The register policy ``overflow="wrap"`` reproduces the TVM kernels' int32 wrap-around
exactly, register by register.

>>> import numpy as np
>>> from intsim import ivit
>>> x = np.array([[10, 20, 30, 40, 50]])
>>> ivit.shiftmax(x, 0.1).values.tolist(), ivit.shiftmax(x, 0.1, profile="tvm").values.tolist()
([[1, 4, 11, 31, 78]], [[2, 5, 13, 31, 75]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from ..core.errors import ConfigError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..regs.opresult import OpResult
from ..regs.prims import (
    add_chk,
    bitlen64,
    div0,
    fits,
    lut_get,
    mul_reg,
    reg,
    shl_reg,
    tap,
)
from ..regs.registers import RegisterFile
from ..regs.runtime import (
    LUT_MAX,
    Lut,
    Plan,
    as_blocks,
    as_rows,
    check_in_type,
    check_input,
    check_int_param,
    check_op_scale,
    check_profile,
    make_registers,
    no_lut,
)
from .ibert import (
    I8,
    I32,
    I64,
    U32,
)
from .layernorm_chain import (
    MEAN_RNE,
    MEAN_TRUNC,
    SQ_IVIT,
    SQ_NORM,
    check_float_params,
    ln_affine,
    run_layernorm,
)

__all__ = ["shift_exp", "shiftmax", "shiftgelu", "layernorm", "x0_int", "OPERATORS", "PROFILES", "INPUTS",
           "SOFTMAX_N", "GELU_N", "GELU_SIGMOID_K"]

SOFTMAX_N = {"pytorch": 15, "tvm": 16, "corrected": 15}  #: Shiftmax's "sufficiently large integer"
GELU_N = 23  #: ShiftGELU's n (both paths)
GELU_SIGMOID_K = 1.702  #: GELU(x) ~ x * sigmoid(1.702 x)
I16 = IntType(16)


def x0_int(scale: float, profile: str = "pytorch") -> int:
    """The integer standing for -1 in the log2 domain: ``floor(-1/S)`` (PyTorch) or
    ``int(-1/S - 1)`` (TVM's float-to-int32 constant, truncating toward zero).

    >>> x0_int(0.1), x0_int(0.1, "tvm"), x0_int(0.3), x0_int(0.3, "tvm")
    (-10, -11, -4, -4)
    """
    S = float(scale)
    if profile == "tvm":
        return int(-1.0 / S - 1)
    return math.floor(-1.0 / S)


@njit(cache=True, inline="always")
def _tdiv(a, b):
    """C (truncating) integer division, b != 0."""
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@njit(cache=True, inline="always")
def _log2e(cf, st, tp, ton, i, j, s, x):
    """x + x/2 - x/16 with floor shifts (x * 1.4375)."""
    return reg(cf, st, tp, ton, i, j, s, x + (x >> np.int64(1)) - (x >> np.int64(4)))


@njit(cache=True, inline="always")
def _sexp_chain(cf, st, tp, ton, i, j, s0, v, x0, n, tvm):
    """Steps from "q" on for the clamped log2-domain value v: q, x0q, r, exp_base, exp."""
    if tvm:
        q = reg(cf, st, tp, ton, i, j, s0, _tdiv(v, x0))
    else:
        q = reg(cf, st, tp, ton, i, j, s0, v // x0)
    p = mul_reg(cf, st, tp, ton, i, j, s0 + 1, x0, q)
    r = reg(cf, st, tp, ton, i, j, s0 + 2, v - p)
    if tvm:
        base = reg(cf, st, tp, ton, i, j, s0 + 3, (r >> np.int64(1)) - x0)
        return shl_reg(cf, st, tp, ton, i, j, s0 + 4, base, n - q)
    base = reg(cf, st, tp, ton, i, j, s0 + 3, r - np.int64(2) * x0)  # twice the code's r/2 - x0
    sh = n - q - np.int64(1)
    if base <= 0:
        return reg(cf, st, tp, ton, i, j, s0 + 4, np.int64(0))
    return shl_reg(cf, st, tp, ton, i, j, s0 + 4, base, sh)


@njit(cache=True, inline="always")
def _sexp(cf, st, tp, ton, i, j, s0, x, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0):
    """Full shift-exp of x: steps log2e (s0), x_clamped (s0+1), then the chain (s0+2...)."""
    t = _log2e(cf, st, tp, ton, i, j, s0, x)
    lo = n * x0
    v = reg(cf, st, tp, ton, i, j, s0 + 1, t if t > lo else lo)
    e, ok = lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v)
    if not ok:
        e = _sexp_chain(cf, st, tp, ton, i, j, s0 + 2, v, x0, n, tvm)
    return e


@njit(cache=True)
def _k_sexp_lut(cf, st, tp, lo, s0, x0, n, tvm, out):
    for i in range(out.shape[0]):
        out[i] = _sexp_chain(cf, st, tp, True, i, 0, s0, lo + i, x0, n, tvm)


def _lut_sexp(plan: Plan, s_first: str, x0: int, n: int, tvm: bool, use: bool = True) -> tuple:
    lo = n * x0
    size = -lo + 1
    if size > LUT_MAX or not use:
        return no_lut(5)
    s0 = plan.s(s_first)

    def fill(cf, st, tp, out):
        _k_sexp_lut(cf, st, tp, np.int64(lo), np.int64(s0), np.int64(x0), np.int64(n), tvm, out)
    return Lut(plan, s0, s0 + 5, lo, size, fill).args()


def _sexp_steps(prefix: str = "", kind: str = "e") -> list[tuple[str, str]]:
    names = ["log2e", "x_clamped", "q", "x0q", "r", "exp_base", "exp"]
    return [(prefix + s, kind) for s in names]


def _sexp_widths(prefix: str = "", tvm: bool = False) -> dict[str, IntType]:
    w = {"log2e": I32, "x_clamped": I32, "q": I32, "x0q": I32, "r": I32, "exp_base": I32,
         "exp": I32 if tvm else I64}
    return {prefix + k: v for k, v in w.items()}


def _sexp_ops(ops: OpCounts, regs: RegisterFile, n: int, in_bits: int, prefix: str = "") -> None:
    w = lambda s: regs.type_of(prefix + s).bits  # noqa: E731
    ops.add("shift", (in_bits,), 2 * n).add("add", (w("log2e"),), 2 * n)  # x + (x >> 1) - (x >> 4)
    ops.add("compare", (w("x_clamped"),), n)
    ops.add("div", (w("x_clamped"),), n)
    ops.add("mul", (w("x_clamped"), w("q")), n)
    ops.add("add", (w("r"),), n)
    ops.add("shift", (w("r"),), n)  # r >> 1 (TVM) or the doubling of x0 (PyTorch)
    ops.add("add", (w("exp_base"),), n)
    ops.add("add", (w("q"),), n)  # the shift amount n - q
    ops.add("shift", (w("exp"),), n)


# ---------------------------------------------------------------------------------------------
# shift-exp
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _t(x):
    """x * 1.4375 by floor shifts (monotone non-decreasing in x)."""
    return x + (x >> np.int64(1)) - (x >> np.int64(4))


# The parallel kernels call their loop body as a separate, non-inlined function, compiled with the options
# explained at ibert._k_iexp_block: numba's parfor passes copy the whole prange body, so a call keeps it
# small and the cold compile fast.
@njit(cache=True, error_model="numpy", _nrt=False)
def _k_shift_exp_block(i, cf, st, tp, ton, x, B, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, out, size, nx0, usable):
    """Block i of :func:`_k_shift_exp` (the body of its parallel loop)."""
    p0 = i * B
    p1 = min(p0 + B, size)
    if usable:
        # log2e is monotone: its range over the block is [t(min x), t(max x)]
        xs = x[p0:p1]  # slices indexed from 0: no negative-index wrap, so LLVM vectorizes the loop
        os = out[p0:p1]
        lo = np.int64(xs[0])
        hi = lo
        for j in range(xs.shape[0]):
            v = np.int64(xs[j])
            lo = min(lo, v)
            hi = max(hi, v)
            os[j] = lfin[min(max(_t(v), nx0), np.int64(0)) - llo]
        if hi <= 0 and fits(cf, 0, _t(lo)) and fits(cf, 0, _t(hi)):
            return
    for j in range(p1 - p0):
        out[p0 + j] = _sexp(cf, st, tp, ton, i, j, 0, np.int64(x[p0 + j]), x0, n, tvm, lfin, lval, lev, lbad, llo,
                            ls0)


@njit(cache=True, parallel=True)
def _k_shift_exp(cf, st, tp, ton, x, B, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, out):
    size = x.shape[0]
    nx0 = n * x0
    nl = lfin.shape[0]
    usable = (not ton) and nl > 0 and fits(cf, 1, nx0) and fits(cf, 1, 0) and llo == nx0 and nl == 1 - nx0
    if usable:
        for t in range(nl):
            if lbad[t]:
                usable = False
    for i in prange(st.shape[0]):
        _k_shift_exp_block(np.int64(i), cf, st, tp, ton, x, B, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0, out, size,
                           nx0, usable)


_SEXP_PROFILES = ("pytorch", "tvm")


def shift_exp(x: Any, scale: float, *, profile: str = "pytorch", n: int | None = None,
              in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
              taps: bool = False) -> OpResult:
    """I-ViT's shift exponential ``int_exp_shift``, element-wise (meant for ``x <= 0``).

    ``pytorch``::

        t  = x + floor(x/2) - floor(x/16)           # x * log2(e) ~ 1.4375 x
        t  = max(t, n * x0);  x0 = floor(-1/S)      # x0 stands for -1 in the log2 domain
        q  = floor(t / x0);  r = t - x0 * q         # r in (x0, 0]
        out = max(floor((r/2 - x0) * 2**(n - q)), 0);  scale_out = S / 2**n

    ``tvm``: ``x0 = int(-1/S - 1)``, ``q`` by truncating division, ``out = ((r >> 1) - x0) <<
    (n - q)``, no clamp. ``n`` defaults to the profile's Shiftmax value (15 / 16).

    Registers (defaults): ``log2e``, ``x_clamped``, ``q``, ``x0q``, ``r``, ``exp_base`` (``r -
    2 x0`` for PyTorch, i.e. twice the code's ``r/2 - x0``; ``(r >> 1) - x0`` for TVM) at 32 bits;
    ``exp`` 64 (PyTorch) / 32 (TVM). Positive inputs are accepted and give ``q < 0``, a left
    shift beyond ``n`` that quickly overflows ``exp``.

    >>> shift_exp(np.array([0, -10, -20]), 0.1).values.tolist()
    [327680, 131072, 49152]
    """
    op = "ivit.shift_exp"
    profile = check_profile(profile, _SEXP_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    n = SOFTMAX_N[profile] if n is None else check_int_param(n, "n", op, 0, 62)
    tvm = profile == "tvm"
    x0 = x0_int(S, profile)
    _check_x0(x0, n, op)
    arr = check_input(x, in_t, op, min_ndim=0)
    regs = make_registers(op, _sexp_widths("", tvm), widths, overflow)
    flat, nb, B = as_blocks(arr)
    plan = Plan(regs, _sexp_steps(), nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        lut = _lut_sexp(plan, "q", x0, n, tvm, flat.size >= 1024)
        _k_shift_exp(*plan.args(), flat, np.int64(B), np.int64(x0), np.int64(n), tvm, *lut, out)
    tapd = plan.finish(arr.shape, "flat")
    ops = OpCounts()
    if flat.size:
        _sexp_ops(ops, regs, int(flat.size), in_t.bits)
        if not tvm:
            ops.add("compare", (regs.type_of("exp").bits,), int(flat.size))
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
_I31 = (1 << 31) - 1


@njit(cache=True, inline="always")
def _smx_norm(acc, mode, out_bit):
    """(sum_clamped, factor, shift, k) of Shiftmax's normalization (factor -1: division by zero)."""
    i31 = np.int64(2147483647)
    sc = min(acc, i31) if mode == 0 else acc
    if sc == 0:
        return sc, np.int64(-1), np.int64(0), np.int64(0)
    if mode == 2:
        a = -sc if sc < 0 else sc
        L2 = bitlen64(a)
        k = L2 - 32 if L2 > 32 else np.int64(0)
        f = (np.int64(1) << np.int64(30 + L2 - k)) // (sc >> k)
        return sc, f, np.int64(30 + L2 - k - (out_bit - 1)), k
    if mode == 1:
        return sc, _tdiv(i31, sc), np.int64(24), np.int64(0)
    return sc, i31 // sc, np.int64(32 - out_bit), np.int64(0)


@njit(cache=True, inline="always")
def _smx_out(p, sh, mode, top):
    if mode == 2:
        o = p >> sh if sh <= 0 else (p + (np.int64(1) << (sh - np.int64(1)))) >> sh
        return o if o < top else top
    return p >> sh


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_shiftmax_row(i, cf, st, tp, ton, x, x0, n, mode, out_bit, lfin, lval, lev, lbad, llo, ls0, out, N, tvm, nx0, nl,
                    top):
    """Row i of :func:`_k_shiftmax` (the body of its parallel loop)."""
    mx = np.int64(x[i, 0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, x[i, j])
        mn = min(mn, x[i, j])
    # fast path
    dlo = mn - mx
    tlo = _t(dlo)
    ok = (not ton) and nl > 0 and fits(cf, 0, dlo) and fits(cf, 0, 0) and fits(cf, 1, tlo) and fits(cf, 1, 0)
    ok = ok and fits(cf, 2, max(tlo, nx0)) and fits(cf, 2, 0)
    if ok:
        acc = np.int64(0)
        emin = np.int64(1) << np.int64(62)
        emax = np.int64(0)
        bad = False
        for j in range(N):
            k = max(_t(x[i, j] - mx), nx0) - llo
            bad |= lbad[k]
            e = lfin[k]
            out[i, j] = e
            acc += e
            emin = min(emin, e)
            emax = max(emax, e)
        ok = (not bad) and emin >= 0 and fits(cf, 8, 0) and fits(cf, 8, acc)
        if ok:
            sc, f, sh, kk = _smx_norm(acc, mode, out_bit)
            ok = f >= 0 and fits(cf, 9, sc) and fits(cf, 10, f)
            plo = (emin >> kk) * f
            phi = (emax >> kk) * f
            ok = ok and fits(cf, 11, plo) and fits(cf, 11, phi)
            ok = ok and fits(cf, 12, _smx_out(plo, sh, mode, top)) and fits(cf, 12, _smx_out(phi, sh, mode, top))
            if ok:
                for j in range(N):
                    out[i, j] = _smx_out((out[i, j] >> kk) * f, sh, mode, top)
    if ok:
        return
    # checked path
    acc = np.int64(0)
    for j in range(N):
        d = reg(cf, st, tp, ton, i, j, 0, x[i, j] - mx)
        e = _sexp(cf, st, tp, ton, i, j, 1, d, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0)
        if mode == 0 and e < 0:
            e = np.int64(0)
        out[i, j] = e
        acc = add_chk(cf, st, i, j, 8, acc, e)
    tap(tp, ton, i, -1, 8, acc)
    sc0, f, sh, kk = _smx_norm(acc, mode, out_bit)
    sc = reg(cf, st, tp, ton, i, -1, 9, sc0)
    if sc != sc0:  # the policy changed the register: normalize what it holds
        _, f, sh, kk = _smx_norm(sc, mode, out_bit)
    if sc == 0:
        f = div0(cf, st, tp, ton, i, -1, 10)
    else:
        f = reg(cf, st, tp, ton, i, -1, 10, f)
    for j in range(N):
        p = mul_reg(cf, st, tp, ton, i, j, 11, out[i, j] >> kk, f)
        out[i, j] = reg(cf, st, tp, ton, i, j, 12, _smx_out(p, sh, mode, top))


@njit(cache=True, parallel=True)
def _k_shiftmax(cf, st, tp, ton, x, x0, n, mode, out_bit, lfin, lval, lev, lbad, llo, ls0, out):
    """mode 0 pytorch, 1 tvm, 2 corrected. Steps: x_sub 0, chain 1-7, sum 8, sum_clamped 9,
    factor 10, prod 11, out 12."""
    R, N = x.shape
    tvm = mode == 1
    nx0 = n * x0
    nl = lfin.shape[0]
    top = (np.int64(1) << np.int64(out_bit - 1)) - np.int64(1)
    for i in prange(R):
        _k_shiftmax_row(np.int64(i), cf, st, tp, ton, x, x0, n, mode, out_bit, lfin, lval, lev, lbad, llo, ls0, out, N,
                        tvm, nx0, nl, top)


def shiftmax(x: Any, scale: float, *, profile: str = "pytorch", out_bit: int | None = None, n: int | None = None,
             in_type: IntType | str = I8, widths: dict | None = None, overflow: str = "raise",
             taps: bool = False) -> OpResult:
    """I-ViT's Shiftmax (``IntSoftmax``) along the last axis.

    ``pytorch`` (n = 15, ``out_bit`` 8 by default, 16 in the released ViT models)::

        e   = shift_exp(x - max(x))                      # pytorch profile
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
    other profiles pass the sum through), ``factor`` 32, ``prod`` 64 (PyTorch, corrected) /
    32 (TVM), ``out`` signed ``out_bit``.

    Test vectors (design note §4.5), ``[10, 20, 30, 40, 50]`` at S = 0.1: PyTorch
    ``[1, 4, 11, 31, 78]``, TVM ``[2, 5, 13, 31, 75]``, both at scale 1/128.

    >>> shiftmax(np.array([[0, 0, 0, 0]]), 0.1).values.tolist()
    [[31, 31, 31, 31]]
    """
    op = "ivit.shiftmax"
    profile = check_profile(profile, _SMAX_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    tvm = profile == "tvm"
    if out_bit is None:
        out_bit = 8
    out_bit = check_int_param(out_bit, "out_bit", op, 2, 31)
    if tvm and out_bit != 8:
        raise ConfigError(f"{op}: the TVM kernel's output is fixed to 8 bits (>> 24, int8); got out_bit={out_bit}")
    n = SOFTMAX_N[profile] if n is None else check_int_param(n, "n", op, 0, 62)
    x0 = x0_int(S, "tvm" if tvm else "pytorch")
    _check_x0(x0, n, op)
    arr = check_input(x, in_t, op)
    mode = {"pytorch": 0, "tvm": 1, "corrected": 2}[profile]
    steps = [("x_sub", "e"), *_sexp_steps(), ("sum", "r"), ("sum_clamped", "r"), ("factor", "r"), ("prod", "e"),
             ("out", "e")]
    defaults = {"x_sub": I32, **_sexp_widths("", tvm), "sum": I32 if tvm else I64, "sum_clamped": I32,
                "factor": U32 if mode == 2 else I32, "prod": I32 if tvm else I64, "out": IntType(out_bit)}
    if mode == 2:
        defaults["sum_clamped"] = I64
    regs = make_registers(op, defaults, widths, overflow)
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = Plan(regs, steps, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        xr = as_rows(arr)
        lut = _lut_sexp(plan, "q", x0, n, tvm, arr.size >= 1024)
        _k_shiftmax(*plan.args(), xr, np.int64(x0), np.int64(n), np.int64(mode), np.int64(out_bit), *lut, out)
    tapd = plan.finish(arr.shape, "rows")
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops = OpCounts()
    if arr.size:
        ne = R * N
        ops.add("compare", (in_t.bits,), R * (N - 1)).add("add", (w("x_sub"),), ne)
        _sexp_ops(ops, regs, ne, w("x_sub"))
        if mode == 0:
            ops.add("compare", (w("exp"),), ne).add("compare", (w("sum"),), R)
        ops.add("add", (w("sum"),), R * (N - 1))
        if mode == 2:
            ops.add("compare", (w("sum"),), R).add("shift", (w("sum"),), R)  # bitlen, normalization
            ops.add("shift", (w("exp"),), ne).add("add", (w("prod"),), ne).add("compare", (w("out"),), ne)
        ops.add("div", (w("sum_clamped"),), R)
        ops.add("mul", (w("exp"), w("factor")), ne).add("shift", (w("prod"),), ne)
    return OpResult(values=out.reshape(arr.shape), scale=2.0 ** -(out_bit - 1), ops=ops, registers=regs, taps=tapd)


# ---------------------------------------------------------------------------------------------
# ShiftGELU
# ---------------------------------------------------------------------------------------------
_GELU_PROFILES = ("pytorch", "tvm", "corrected")


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_shiftgelu_row(i, cf, st, tp, ton, x, x0, n, mode, out_bit, lfin, lval, lev, lbad, llo, ls0, nfin, nval, nev,
                     nbad, nlo, ns0, out, N, tvm, i31):
    """Row i of :func:`_k_shiftgelu` (the body of its parallel loop)."""
    mx = np.int64(x[i, 0])
    for j in range(1, N):
        mx = max(mx, np.int64(x[i, j]))
    if mode == 2 and mx < 0:
        mx = np.int64(0)
    nm = reg(cf, st, tp, ton, i, -1, 8, -mx)
    em = _sexp(cf, st, tp, ton, i, -1, 9, nm, x0, n, tvm, nfin, nval, nev, nbad, nlo, ns0)
    if mode == 0 and em < 0:
        em = np.int64(0)
    for j in range(N):
        d = reg(cf, st, tp, ton, i, j, 0, x[i, j] - mx)
        e = _sexp(cf, st, tp, ton, i, j, 1, d, x0, n, tvm, lfin, lval, lev, lbad, llo, ls0)
        if mode == 0 and e < 0:
            e = np.int64(0)
        s = add_chk(cf, st, i, j, 16, e, em)
        tap(tp, ton, i, j, 16, s)
        if mode == 0:
            s = reg(cf, st, tp, ton, i, j, 17, s if s < i31 else i31)
        else:
            s = reg(cf, st, tp, ton, i, j, 17, s)
        if mode == 2:
            # exact sigmoid: floor(e * 2**(out_bit-1) / (e + em))
            if s == 0:
                sig = div0(cf, st, tp, ton, i, j, 18)
            else:
                num = shl_reg(cf, st, tp, ton, i, j, 19, e, np.int64(out_bit - 1))
                tap(tp, ton, i, j, 18, s)
                sig = reg(cf, st, tp, ton, i, j, 20, num // s)
        else:
            if s == 0:
                f = div0(cf, st, tp, ton, i, j, 18)
            elif tvm:
                f = reg(cf, st, tp, ton, i, j, 18, _tdiv(i31, s))
            else:
                f = reg(cf, st, tp, ton, i, j, 18, i31 // s)
            p = mul_reg(cf, st, tp, ton, i, j, 19, e, f)
            sh = np.int64(24) if tvm else np.int64(32 - out_bit)
            sig = reg(cf, st, tp, ton, i, j, 20, p >> sh)
        out[i, j] = mul_reg(cf, st, tp, ton, i, j, 21, x[i, j], sig)


@njit(cache=True, parallel=True)
def _k_shiftgelu(cf, st, tp, ton, x, x0, n, mode, out_bit, lfin, lval, lev, lbad, llo, ls0, nfin, nval, nev,
                 nbad, nlo, ns0, out):
    """Steps: x_sub 0, e-chain 1-7, neg_max 8, em-chain 9-15, sum 16, sum_clamped 17, factor 18,
    prod 19, sig 20, out 21."""
    R, N = x.shape
    tvm = mode == 1
    i31 = np.int64(2147483647)
    for i in prange(R):
        _k_shiftgelu_row(np.int64(i), cf, st, tp, ton, x, x0, n, mode, out_bit, lfin, lval, lev, lbad, llo, ls0, nfin,
                         nval, nev, nbad, nlo, ns0, out, N, tvm, i31)


def shiftgelu(x: Any, scale: float, *, profile: str = "pytorch", out_bit: int = 8, n: int = GELU_N,
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
    profile = check_profile(profile, _GELU_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    out_bit = check_int_param(out_bit, "out_bit", op, 2, 31)
    n = check_int_param(n, "n", op, 0, 62)
    tvm = profile == "tvm"
    if tvm and out_bit != 8:
        raise ConfigError(f"{op}: the TVM kernel's sigmoid is fixed to 8 bits (>> 24); got out_bit={out_bit}")
    S_sig = S * GELU_SIGMOID_K
    x0 = x0_int(S_sig, "tvm" if tvm else "pytorch")
    _check_x0(x0, n, op)
    arr = check_input(x, in_t, op)
    mode = {"pytorch": 0, "tvm": 1, "corrected": 2}[profile]
    steps = [("x_sub", "e"), *_sexp_steps(), ("neg_max", "r"), *_sexp_steps("max_", "r"), ("sum", "e"),
             ("sum_clamped", "e"), ("factor", "e"), ("prod", "e"), ("sig", "e"), ("out", "e")]
    defaults = {"x_sub": I32, **_sexp_widths("", tvm), "neg_max": I32, **_sexp_widths("max_", tvm),
                "sum": I32 if tvm else I64, "sum_clamped": I64 if mode == 2 else I32,
                "factor": I64 if mode == 2 else I32, "prod": I32 if tvm else I64, "sig": IntType(out_bit),
                "out": I32}
    regs = make_registers(op, defaults, widths, overflow)
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = Plan(regs, steps, R, N, taps)
    assert plan.s("neg_max") == 8 and plan.s("out") == 21
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        xr = as_rows(arr)
        lut = _lut_sexp(plan, "q", x0, n, tvm, arr.size >= 1024)
        _k_shiftgelu(*plan.args(), xr, np.int64(x0), np.int64(n), np.int64(mode), np.int64(out_bit), *lut,
                     *no_lut(5), out)
    tapd = plan.finish(arr.shape, "rows")
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops = OpCounts()
    if arr.size:
        ne = R * N
        ops.add("compare", (in_t.bits,), R * (N - 1)).add("add", (w("x_sub"),), ne).add("add", (w("neg_max"),), R)
        _sexp_ops(ops, regs, ne, w("x_sub"))
        _sexp_ops(ops, regs, R, w("neg_max"), "max_")
        if mode == 0:
            ops.add("compare", (w("exp"),), ne).add("compare", (w("max_exp"),), R).add("compare", (w("sum"),), ne)
        if mode == 2:
            ops.add("compare", (in_t.bits,), R)  # max(m, 0)
            ops.add("add", (w("sum"),), ne).add("shift", (w("prod"),), ne).add("div", (w("sum_clamped"),), ne)
        else:
            ops.add("add", (w("sum"),), ne).add("div", (w("sum_clamped"),), ne)
            ops.add("mul", (w("exp"), w("factor")), ne).add("shift", (w("prod"),), ne)
        ops.add("mul", (in_t.bits, w("sig")), ne)
    return OpResult(values=out.reshape(arr.shape), scale=S / 2 ** (out_bit - 1), ops=ops, registers=regs,
                    taps=tapd)


# ---------------------------------------------------------------------------------------------
# I-LayerNorm
# ---------------------------------------------------------------------------------------------
_LN_PROFILES = ("pytorch", "tvm", "corrected")


def layernorm(x: Any, scale: float, gamma: Any = None, beta: Any = None, *, profile: str = "pytorch",
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
    :func:`intsim.ops.ibert.layernorm`'s corrected profile (``std = isqrt(var << 2g)``,
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
    profile = check_profile(profile, _LN_PROFILES, op)
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
    tvm = profile == "tvm"
    corrected = profile == "corrected"
    defaults = {"sum": I32 if tvm else IntType(40), "mean": I32, "y": I32, "y_shifted": I32,
                "y_sq": U32 if tvm else I64, "var": U32 if tvm else I64, "var_norm": I64,
                "sqrt_iter": U32 if tvm else I64, "std": I32, "factor": U32 if corrected else I32,
                "prod": I32 if tvm else I64, "out": I32, "out_bias": I32}
    regs = make_registers(op, defaults, widths, overflow)
    return run_layernorm(op, arr, regs, taps, in_t, mean_mode=MEAN_TRUNC if tvm else MEAN_RNE, shift=0,
                          sqrt_mode=SQ_NORM if corrected else SQ_IVIT, iv_steps=sqrt_steps, num_bits=31,
                          norm_top=62, prod_shift=1, prod_round=1 if tvm else 0, eps_int=0, bias=bias,
                          out_scale=out_scale)


OPERATORS: dict[str, Callable[..., OpResult]] = {
    "shift_exp": shift_exp,
    "shiftmax": shiftmax,
    "shiftgelu": shiftgelu,
    "layernorm": layernorm,
}
#: the positional inputs of each operator (all take ``profile=`` and keyword options)
INPUTS: dict[str, tuple[str, ...]] = {name: ("x", "scale") for name in OPERATORS}
PROFILES: dict[str, tuple[str, ...]] = {
    "shift_exp": _SEXP_PROFILES,
    "shiftmax": _SMAX_PROFILES,
    "shiftgelu": _GELU_PROFILES,
    "layernorm": _LN_PROFILES,
}
_ = (I64, I8, Callable)
