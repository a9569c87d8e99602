"""I-LLM integer-only operators (Hu et al., arXiv 2405.17849): DI-Exp, DI-ClippedSoftmax,
DI-Norm (integer RMSNorm and LayerNorm), DI-SwiGLU, and the dynamic per-token
requantization of GEMM outputs (DI-MatMul's output step).

I-LLM's integer kernels are not public (the official repository's integer branch is an
empty TODO), so every operator here is intsim's construction from the paper-level
description: I-ViT's shift-exp with per-token dynamic scales. Each choice the paper leaves open is named below and is a
parameter:

===========================  ==================================================================
choice                       intsim's default (parameter)
===========================  ==================================================================
activation scale             per token (row), dyadic ``m / 2**k`` with an 8-bit mantissa
                             (``m_bits=8``): a float scale is converted by
                             :meth:`intsim.core.dyadic.Dyadic.from_float` (ties to even, largest
                             ``k <= 62``); a :class:`~intsim.core.dyadic.Dyadic` or an ``(m, k)`` pair of
                             integer arrays is used exactly
multiplication by log2(e)    shift-add ``t + (t >> 1) - (t >> 4)`` = 1.4375 t, I-ViT's
                             (``log2e_shifts=((0, 1), (1, 1), (4, -1))``: (shift, sign) terms)
fractional power of two      ``2**-f ~ 1 - f/2`` on [0, 1) (I-ViT's linear approximation)
exponent output              fixed point, ``out_frac_bits=15`` (scale ``2**-15``; 1.0 -> 32768)
clip value c                 ``clip=15`` (the paper's Table 6 choice)
clipped-range quantization   ``in_bits=8``: per row ``R = min(max - min, floor(c / s))``,
                             ``z = -round_half_even(-d * 255 / R)``, scale ``s * R / 255`` as an
                             8-bit dyadic (``None`` skips the requantization)
softmax output               ``out_bits=16`` with scale ``1 / (2**16 - 1)`` (the released code's
                             ``fix0to1`` attention quantizer), ``round_half_even(e * 65535 / sum)``
norm output                  ``y / sigma * 2**16`` (scale ``2**-16``), round half to even;
                             ``sigma`` from an exact normalized integer square root
swiglu sigmoid               ``2**15 / (1 + e**-|x|)`` by exact division, DI-Exp of ``-|x|``
dynamic requantization       asymmetric ``round_half_even((P - p_min) (2**n - 1) / (p_max - p_min))``
                             (the paper's formula), ``bits=8``; ``symmetric=True`` for
                             ``round(P (2**(n-1) - 1) / max |P|)``
rounding                     half to even everywhere a value is rounded (I-LLM's code uses
                             ``torch.round``), floor for shifts
===========================  ==================================================================

Scales are per row: ``scale`` is a scalar or an array of shape ``x.shape[:-1]``.

>>> import numpy as np
>>> from intsim import illm
>>> r = illm.clipped_softmax(np.array([[10, 20, 30, 40, 50]]), 0.1)
>>> r.values.tolist(), r.scale
([[786, 2149, 5655, 15913, 41032]], 1.5259021896696422e-05)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from numba import njit, prange

from ..core.deprecation import renamed_keyword
from ..core.dyadic import Dyadic
from ..core.errors import ConfigError, DTypeError, OperandRangeError, ShapeError
from ..core.inttype import IntType
from ..core.rounding import (
    HALF_AWAY,
    HALF_EVEN,
    HALF_UP,
    ROUNDING_CODE,
    rounding_mode,
)
from ..regs.chain import Chain, Cost, Step
from ..regs.opresult import OpResult
from ..regs.prims import (
    bitlen64,
    div0,
    div_round,
    mul_step,
    round_qr,
    shl_step,
    step,
    tap,
)
from ..regs.runtime import (
    INT64_MAX,
    as_rows,
    check_in_type,
    check_input,
    check_int_param,
    check_variant,
)
from .ibert import (
    I8,
    I16,
    I32,
    I64,
)
from .layernorm_chain import (
    LN_CHAIN,
    MEAN_NONE,
    MEAN_RNE,
    SQ_NORM,
    acc_end_mag,
    acc_start,
    acc_step,
    check_float_params,
    ln_affine,
    mulv_step,
    run_layernorm,
)
from .opspec import OpSpec

__all__ = ["di_exp", "clipped_softmax", "di_norm", "rmsnorm", "layernorm", "swiglu", "dynamic_requant",
           "AffineOpResult", "row_dyadic", "OPS"]

LOG2E_SHIFTS = ((0, 1), (1, 1), (4, -1))


# ---------------------------------------------------------------------------------------------
# per-row dyadic scales
# ---------------------------------------------------------------------------------------------
def row_dyadic(scale: Any, rows_shape: tuple, m_bits: int = 8, op: str = "illm") -> tuple[np.ndarray, np.ndarray]:
    """Per-row dyadic scales ``(m, k)`` (int64 arrays of length ``prod(rows_shape)``).

    ``scale``: a positive float, an array of positive floats broadcastable to ``rows_shape``
    (each converted with ``Dyadic.from_float(s, bits=m_bits)``, ties to even), a
    :class:`~intsim.core.dyadic.Dyadic`, or a pair ``(m, k)`` of integer arrays/ints used exactly
    (``m`` positive and below 2**31, ``0 <= k <= 62``).

    >>> m, k = row_dyadic(0.1, (2,))
    >>> m.tolist(), k.tolist()
    ([205, 205], [11, 11])
    """
    R = int(np.prod(rows_shape)) if len(rows_shape) else 1
    if isinstance(scale, Dyadic):
        m, k = np.full(R, scale.m, dtype=np.int64), np.full(R, scale.k, dtype=np.int64)
    elif isinstance(scale, tuple) and len(scale) == 2:
        try:
            m = np.broadcast_to(np.asarray(scale[0]), rows_shape).reshape(R)
            k = np.broadcast_to(np.asarray(scale[1]), rows_shape).reshape(R)
        except ValueError:
            raise ShapeError(f"{op}: scale (m, k) does not broadcast to the rows shape {rows_shape}") from None
        if m.dtype.kind not in "iu" or k.dtype.kind not in "iu":
            raise DTypeError(f"{op}: a dyadic scale (m, k) must hold integers")
        m, k = m.astype(np.int64), k.astype(np.int64)
    else:
        a = np.asarray(scale)
        if a.dtype.kind not in "fiu" or a.dtype.kind == "b":
            raise ConfigError(f"{op}: scale must be a positive real (or array of them), got {scale!r}")
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise ConfigError(f"{op}: scale has NaN or Inf entries")
        if np.any(a <= 0):
            raise ConfigError(f"{op}: scale must be positive; got {float(a.min())}")
        try:
            a = np.broadcast_to(a, rows_shape).reshape(R)
        except ValueError:
            raise ShapeError(f"{op}: scale of shape {np.shape(scale)} does not broadcast to the rows shape "
                             f"{rows_shape}") from None
        uniq, inv = np.unique(a, return_inverse=True)
        mk = [Dyadic.from_float(float(u), bits=m_bits, rounding="half_even", max_shift=62) for u in uniq]
        m = np.array([d.m for d in mk], dtype=np.int64)[inv]
        k = np.array([d.k for d in mk], dtype=np.int64)[inv]
    if m.size and (int(m.min()) <= 0 or int(m.max()) >= 1 << 31):
        raise ConfigError(f"{op}: dyadic scale mantissas must be in [1, 2**31), got {int(m.min())}..{int(m.max())}")
    if k.size and (int(k.min()) < 0 or int(k.max()) > 62):
        raise ConfigError(f"{op}: dyadic scale shifts must be in [0, 62]")
    return np.ascontiguousarray(m), np.ascontiguousarray(k)


def _monotone(terms: np.ndarray) -> bool:
    """Whether ``sum(sign * (t >> shift))`` is non-decreasing in t (which the range proofs of
    :func:`_diexp_fits` rely on): when t grows by one, each ``+(t >> 0)`` term grows by exactly one
    and each negative term falls by at most one, so it is enough that there are at least as many
    ``(0, +1)`` terms as negative ones (true of the default 1 + 1/2 - 1/16)."""
    pairs = terms.tolist()
    return sum(1 for a, b in pairs if a == 0 and b > 0) >= sum(1 for _, b in pairs if b < 0)


def _log2e_terms(terms: Any, op: str) -> tuple[np.ndarray, bool]:
    """The shift-add terms as an int64 array of ``(shift, sign)`` rows, and whether they are the
    default ``t + (t >> 1) - (t >> 4)`` (which the kernels then read as constants)."""
    try:
        sh = np.array([int(t[0]) for t in terms], dtype=np.int64)
        sg = np.array([int(t[1]) for t in terms], dtype=np.int64)
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"{op}: log2e_shifts must be (shift, sign) pairs, got {terms!r}") from None
    if sh.size == 0 or np.any(sh < 0) or np.any(sh > 62) or np.any(np.abs(sg) != 1):
        raise ConfigError(f"{op}: log2e_shifts need shifts in [0, 62] and signs +-1, got {terms!r}")
    arr = np.ascontiguousarray(np.stack([sh, sg], axis=1))
    return arr, arr.tolist() == [list(t) for t in LOG2E_SHIFTS]


# ---------------------------------------------------------------------------------------------
# DI-Exp (the chain of di_exp, and a sub-chain of clipped_softmax and swiglu)
# ---------------------------------------------------------------------------------------------
def _diexp_steps(src: str = "in") -> Chain:
    """DI-Exp's steps ``mul`` ... ``exp``; ``src`` is the register of its input (its width keys the
    multiply by the 8-bit mantissa). ``terms1`` (a call parameter of the op counts) is the number
    of shift-add terms minus one. ``frac`` and ``exp`` are ``F + 2`` bits (:func:`_diexp_widths`)."""
    return Chain("illm.di_exp", [
        Step("mul", "e", I64, (Cost("mul", (src, 8)),)),
        # the shift-adds, then the negation / clamp at 0
        Step("log2e", "e", I64, (Cost("shift", ("mul",), "terms1"), Cost("add", ("log2e",), "terms1"),
                                 Cost("add", ("log2e",)))),
        Step("q", "e", I32, (Cost("shift", ("q",)),)),  # integer part
        Step("r", "e", I64, (Cost("shift", ("r",)),)),  # fraction mask
        Step("frac", "e", IntType(17), (Cost("shift", ("frac",)), Cost("add", ("frac",), 2))),  # 1 - f/2, rounded
        Step("exp", "e", IntType(17), (Cost("shift", ("exp",)),)),
    ])


DIEXP_CHAIN = _diexp_steps()
#: DI-Exp's steps, counted from its first (``mul``)
D_MUL, D_LOG2E, D_Q, D_R, D_FRAC, D_EXP = range(len(DIEXP_CHAIN))
#: the head of every I-LLM DI-Exp kernel's parameter vector: F (out_frac_bits), 1 when the
#: shift-add terms are the default ones, 1 when they are monotone (:func:`_monotone`)
EP_F, EP_DEFAULT_TERMS, EP_MONO = range(3)


def _diexp_widths(F: int) -> dict[str, IntType]:
    return {"frac": IntType(F + 2), "exp": IntType(F + 2)}


@njit(cache=True, forceinline=True)
def _shift_add(t, terms, dflt):
    """The log2(e) multiply as shift-adds: ``sum(sign * (t >> shift))`` over the terms (``dflt``:
    the default terms, read as constants so that the loops vectorize)."""
    if dflt:
        return t + (t >> np.int64(1)) - (t >> np.int64(4))
    u = np.int64(0)
    for w in range(terms.shape[0]):
        if terms[w, 1] > 0:
            u += t >> terms[w, 0]
        else:
            u -= t >> terms[w, 0]
    return u


@njit(cache=True, forceinline=True)
def _diexp_head(cf, st, tp, ton, i, j, s0, z, m, terms, dflt, rec, ok):
    """DI-Exp's steps ``mul`` and ``log2e`` of z: ``t = z*m; u = sum(sign * (t >> shift))``.
    Returns ``(a, ok)``, ``a = max(-u, 0)`` (non-increasing in z for monotone terms, see
    :func:`_monotone`)."""
    t, ok = mulv_step(cf, st, tp, ton, i, j, s0 + D_MUL, z, m, rec, ok)
    u, ok = step(cf, st, tp, ton, i, j, s0 + D_LOG2E, _shift_add(t, terms, dflt), rec, ok)
    return (-u if u < 0 else np.int64(0)), ok


@njit(cache=True, forceinline=True)
def _diexp_tail(cf, st, tp, ton, i, j, s0, a, k, F, rec, ok):
    """DI-Exp's steps ``q`` ... ``exp`` of a >= 0: ``q = a >> k; r = a mod 2**k;
    frac = floor(2**F * (1 - r / 2**(k+1))); exp = frac >> q``. Returns ``(exp, ok)``."""
    q, ok = step(cf, st, tp, ton, i, j, s0 + D_Q, a >> k, rec, ok)
    r, ok = step(cf, st, tp, ton, i, j, s0 + D_R, a & ((np.int64(1) << k) - np.int64(1)), rec, ok)
    one = np.int64(1) << F
    if k + 1 >= F:
        d = k + 1 - F
        fr = one - ((r + (np.int64(1) << d) - np.int64(1)) >> d)
    else:
        fr = one - (r << (F - k - 1))
    fr, ok = step(cf, st, tp, ton, i, j, s0 + D_FRAC, fr, rec, ok)
    return step(cf, st, tp, ton, i, j, s0 + D_EXP, np.int64(0) if q >= 63 else fr >> q, rec, ok)


@njit(cache=True, forceinline=True)
def _diexp(cf, st, tp, ton, i, j, s0, z, m, k, terms, dflt, F, rec, ok):
    """DI-Exp of z <= 0 at scale m / 2**k, steps ``mul`` ... ``exp`` from ``s0``::

        t = z*m; u = sum(sign * (t >> shift)); a = max(-u, 0); q = a >> k; r = a mod 2**k;
        frac = floor(2**F * (1 - r / 2**(k+1))); exp = frac >> q

    Returns ``(exp, ok)`` (recorded when ``rec``; else ``ok`` False when a register would not hold
    a value)."""
    a, ok = _diexp_head(cf, st, tp, ton, i, j, s0, z, m, terms, dflt, rec, ok)
    return _diexp_tail(cf, st, tp, ton, i, j, s0, a, k, F, rec, ok)


@njit(cache=True)
def _diexp_fits(cf, st, tp, ton, i, s0, zlo, m, k, terms, dflt, F, ok):
    """Unrecorded range proof of the DI-Exp chain (steps from ``s0``) for every z in [zlo, 0],
    with monotone shift-add terms (:func:`_monotone`): the chain's own steps at the ends and at
    the corners of its non-monotone steps. ``t``, ``u``, ``a`` and ``q`` move monotonically with
    z, so their ends are those of z = zlo and z = 0 (a = 0); ``r`` lies in [0, min(a_max,
    2**k - 1)] (the tail at that a reaches the top); ``frac`` falls as ``r`` grows (its ends are
    those of r = 0 and r = r_max); ``exp`` lies in [0, 2**F] (its top is the tail at a = 0, and
    every register holds 0). Returns ``ok``."""
    _, ok = _diexp_head(cf, st, tp, ton, i, -1, s0, np.int64(0), m, terms, dflt, False, ok)
    amax, ok = _diexp_head(cf, st, tp, ton, i, -1, s0, zlo, m, terms, dflt, False, ok)
    for a in (np.int64(0), min(amax, (np.int64(1) << k) - np.int64(1)), amax):
        _, ok = _diexp_tail(cf, st, tp, ton, i, -1, s0, a, k, F, False, ok)
    return ok


# ---------------------------------------------------------------------------------------------
# exact rounded division
# ---------------------------------------------------------------------------------------------
@njit(cache=True, forceinline=True)
def _fdiv_rne(a, d, inv):
    """round_half_even(a / d) for a >= 0, d > 0, inv = 1.0 / d (float-estimated, then exact;
    plain integer division from 2**52 on)."""
    if a >= 4503599627370496:
        return div_round(a, d, HALF_EVEN)
    q = np.int64(a * inv + 0.5)
    r = a - q * d
    if 2 * r > d:
        q += 1
        r -= d
    elif 2 * r < -d:
        q -= 1
        r += d
    if 2 * r == d and (q & 1) == 1:
        q += 1
    elif 2 * r == -d and (q & 1) == 1:
        q -= 1
    return q


@njit(cache=True, forceinline=True)
def _fdiv(a, d, inv, code):
    """round(a / d) in rounding mode ``code`` (:data:`~intsim.core.rounding.ROUNDING_CODE`) for
    d != 0, exactly; ``inv = 1.0 / d``. For d > 0 it is :func:`~intsim.regs.prims.div_round`, the
    quotient estimated in float64 when |a| < 2**52 and then corrected exactly. A negative d (only
    reachable when a register wrapped) keeps the result intsim has always given: the rounding rule
    applied to the remainder of the floor division, which moves an exact quotient one step
    (up for half_even and half_up; for half_away, up for a >= 0 and down for a < 0)."""
    if d < 0:
        v = div_round(a, d, code)
        if (code == HALF_EVEN or code == HALF_UP or code == HALF_AWAY) and a % d == 0:
            v += np.int64(-1) if (code == HALF_AWAY and a < 0) else np.int64(1)
        return v
    if a >= 4503599627370496 or a <= -4503599627370496:
        return div_round(a, d, code)
    if code == HALF_EVEN:
        return _fdiv_rne(a, d, inv) if a >= 0 else -_fdiv_rne(-a, d, inv)
    q = np.int64(np.floor(a * inv))
    r = a - q * d
    while r < 0:
        q -= 1
        r += d
    while r >= d:
        q += 1
        r -= d
    return round_qr(a, d, q, r, code)


@njit(cache=True, forceinline=True)
def _diexp_chain(i, cf, st, tp, ton, x, m, k, terms, kp, out, dflt, rec):
    """DI-Exp of row i, recorded (``rec``) or unrecorded (monotone terms only): then the
    registers are proven at the row's ends by :func:`_diexp_fits` (returns False when that fails)
    and the loop checks nothing. Returns ``ok``. ``dflt``: the default shift-add terms (a
    constant, so that the loop vectorizes)."""
    F = kp[EP_F]
    mi, ki = m[i], k[i]
    xr = x[i]
    orow = out[i]
    if not rec:
        zlo = np.int64(xr[0])
        for j in range(1, xr.shape[0]):
            zlo = min(zlo, np.int64(xr[j]))
        if not _diexp_fits(cf, st, tp, ton, i, 0, zlo, mi, ki, terms, dflt, F, True):
            return False
    for j in range(xr.shape[0]):
        orow[j], _ = _diexp(cf, st, tp, ton, i, j, 0, np.int64(xr[j]), mi, ki, terms, dflt, F, rec, True)
    return True


# The parallel kernels call their loop body as a separate, non-inlined function, compiled with the options
# explained at ibert._k_iexp_block: numba's parfor passes copy the whole prange body, so a call keeps it
# small and the cold compile fast.
@njit(cache=True, error_model="numpy", _nrt=False)
def _k_diexp_row(i, cf, st, tp, ton, x, m, k, terms, kp, out):
    """Row i of :func:`_k_diexp` (the body of its parallel loop): unrecorded first when the terms
    are monotone (proven at the row's ends), the row again recorded when that fails (or taps are
    on)."""
    dflt, mono = kp[EP_DEFAULT_TERMS] != 0, kp[EP_MONO] != 0
    if not ton:
        if dflt:
            if _diexp_chain(i, cf, st, tp, ton, x, m, k, terms, kp, out, True, False):
                return
        elif mono:
            if _diexp_chain(i, cf, st, tp, ton, x, m, k, terms, kp, out, False, False):
                return
    _diexp_chain(i, cf, st, tp, ton, x, m, k, terms, kp, out, dflt, True)


@njit(cache=True, parallel=True)
def _k_diexp(cf, st, tp, ton, x, m, k, terms, kp, out):
    for i in prange(x.shape[0]):
        _k_diexp_row(np.int64(i), cf, st, tp, ton, x, m, k, terms, kp, out)


def _rows_shape(arr: np.ndarray) -> tuple:
    return arr.shape[:-1] if arr.ndim >= 1 else ()


@renamed_keyword("profile", "variant")
def di_exp(x: Any, scale: Any, *, out_frac_bits: int = 15, m_bits: int = 8, log2e_shifts: Any = LOG2E_SHIFTS,
           in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
           taps: bool = False, variant: str = "default") -> OpResult:
    """DI-Exp: ``exp(x * s)`` for ``x <= 0`` with a per-row dyadic scale ``s = m / 2**k``.

    Semantics (intsim's construction; see the module table)::

        t   = x * m                                   # real value t / 2**k = x s
        u   = t + (t >> 1) - (t >> 4)                 # x s log2(e), shift-add (1.4375)
        a   = max(-u, 0);  q = a >> k;  r = a mod 2**k          # integer and fractional parts
        out = floor(2**F (1 - r / 2**(k+1))) >> q;  scale_out = 2**-F       (F = out_frac_bits)

    ``x`` must be ``<= 0`` (the operator is applied after a row-maximum subtraction); a
    positive entry raises OperandRangeError. Registers (defaults): ``mul``, ``log2e``, ``r``
    64; ``q`` 32; ``frac`` and ``exp`` ``F + 2`` bits. Accuracy: the linear fraction has a
    max error of about 0.043 (6 % relative) plus the -0.36 % slope of 1.4375 (measured by the tests).

    >>> r = di_exp(np.array([[0, -10, -20]]), 0.1)
    >>> r.values.tolist(), [round(v, 3) for v in r.dequantize()[0].tolist()]
    ([[32768, 12792, 4598]], [1.0, 0.39, 0.14])
    """
    op = "illm.di_exp"
    check_variant(variant, ("default",), op)
    in_t = check_in_type(in_type, op)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 1, 40)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    terms, dflt = _log2e_terms(log2e_shifts, op)
    arr = check_input(x, in_t, op, min_ndim=1)
    if arr.size and int(arr.max()) > 0:
        flat = np.flatnonzero(arr.reshape(-1) > 0)
        idx = tuple(int(v) for v in np.unravel_index(int(flat[0]), arr.shape))
        raise OperandRangeError(f"{op}: x must be <= 0 (subtract the row maximum first); {flat.size} positive "
                                f"entries, first at index {idx}: {int(arr[idx])}", count=int(flat.size), index=idx,
                                value=int(arr[idx]))
    m, k = row_dyadic(scale, _rows_shape(arr), m_bits, op)
    _check_k(k, F, op)
    regs = DIEXP_CHAIN.registers(widths, overflow, op, defaults=_diexp_widths(F))
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = DIEXP_CHAIN.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        _k_diexp(*plan.args(), as_rows(arr), m, k, terms, np.array([F, dflt, _monotone(terms)], dtype=np.int64), out)
    tapd = plan.finish(arr.shape, "rows")
    ops = DIEXP_CHAIN.op_counts(regs, in_bits=in_t.bits, elements=R * N, rows=R, params={"terms1": len(terms) - 1})
    return OpResult(values=out.reshape(arr.shape), scale=2.0 ** -F, ops=ops, registers=regs, taps=tapd)


def _check_k(k: np.ndarray, F: int, op: str) -> None:
    if k.size and int(k.max()) + F > 62 + 62:
        raise ConfigError(f"{op}: scale shift too large for the emulated DI-Exp")


# ---------------------------------------------------------------------------------------------
# DI-ClippedSoftmax
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _dyadic_ratio(num, den, k, m_bits):
    """(m2, k2) with m2 / 2**k2 ~ num / (den * 2**k), m2 = round_half_even(num * 2**j / den) the
    largest j keeping m2 < 2**m_bits; num >= 0, den >= 1."""
    if num == 0:
        return np.int64(0), np.int64(0)
    top = np.int64(1) << np.int64(m_bits)
    j = np.int64(m_bits) + bitlen64(den) - bitlen64(num)
    while True:
        if j >= 0:
            m2 = div_round(num << j, den, HALF_EVEN)
        else:
            m2 = div_round(num, den << (-j), HALF_EVEN)
        if m2 >= top:
            j -= 1
            continue
        # try one more bit
        if j + 1 >= 0:
            m3 = div_round(num << (j + 1), den, HALF_EVEN)
        else:
            m3 = div_round(num, den << (-(j + 1)), HALF_EVEN)
        if m3 < top and k + j + 1 <= 62:
            j += 1
            continue
        break
    k2 = k + j
    if k2 < 0:
        m2 = m2 << (-k2)
        k2 = np.int64(0)
    return m2, k2


@functools.cache
def _csm_steps(ib: int, m_bits: int, ob: int) -> Chain:
    """DI-ClippedSoftmax's chain for ``in_bits`` ``ib`` (0: no requantization), ``m_bits`` and
    ``out_bits`` ``ob``. ``minmax`` and ``reduce`` (call parameters of the op counts) are
    ``2 R (N - 1)`` (row maxima and minima) and ``R (N - 1)`` (row sums)."""
    rq = ib > 0
    head = Chain("illm.clipped_softmax", [
        Step("x_sub", "e", I32, (Cost("compare", ("in",), "minmax", "call"), Cost("add", ("x_sub",)))),
        Step("x_clipped", "e", I32, (Cost("compare", ("x_clipped",)),)),
        Step("range", "r", I32, (Cost("add", ("range",), 1, "r"), Cost("compare", ("range",), 1, "r"))),
        Step("z", "e", I32, (Cost("mul", ("x_clipped", ib)), Cost("div", ("range",))) if rq else ()),
        # the new scale (one division per row)
        Step("scale_m", "r", I32, (Cost("mul", (m_bits, "range"), 1, "r"), Cost("div", (ib,), 1, "r")) if rq else ()),
    ])
    tail = Chain("illm.clipped_softmax", [
        Step("sum", "r", I32, (Cost("add", ("sum",), "reduce", "call"),)),
        Step("prod", "e", I64, (Cost("mul", ("exp", ob)),)),
        Step("out", "e", IntType(ob, signed=False), (Cost("div", ("sum",)),)),
    ])
    return head + _diexp_steps("z") + tail


C_XSUB, C_XCLIP, C_RANGE, C_Z, C_SCALE_M, C_EXP, C_SUM, C_PROD, C_OUT = _csm_steps(8, 8, 16).ids(
    "x_sub", "x_clipped", "range", "z", "scale_m", "mul", "sum", "prod", "out")
#: the kernel's parameter vector (after EP_F, EP_DEFAULT_TERMS, EP_MONO)
CP_IN_BITS, CP_M_BITS, CP_OUT_BITS = range(3, 6)


@njit(cache=True, forceinline=True)
def _csm_z(cf, st, tp, ton, i, j, dc, ib, D, rg, inv, rec, ok):
    """Step ``z``: the clipped difference ``dc`` requantized to ``ib`` bits. Unrecorded, the
    chain has checked ``0 <= rg <= INT64_MAX // D`` (so ``0 <= -dc * D`` holds exactly: ``-dc <=
    rg``), and the division is :func:`_fdiv`'s for a non-negative dividend. Returns ``(z, ok)``."""
    if ib > 0:
        if rg == 0:
            z = np.int64(0)
        elif rec:
            z = -_fdiv(-dc * D, rg, inv, HALF_EVEN)
        else:
            z = -_fdiv_rne(-dc * D, rg, inv)
    else:
        z = dc
    return step(cf, st, tp, ton, i, j, C_Z, z, rec, ok)


@njit(cache=True, forceinline=True)
def _csm_exp(cf, st, tp, ton, i, j, dc, ib, D, rg, inv, mz, kz, terms, dflt, F, rec, ok):
    """Step ``z`` and DI-Exp of it. Returns ``(exp, ok)``."""
    z, ok = _csm_z(cf, st, tp, ton, i, j, dc, ib, D, rg, inv, rec, ok)
    return _diexp(cf, st, tp, ton, i, j, C_EXP, z, mz, kz, terms, dflt, F, rec, ok)


@njit(cache=True, forceinline=True)
def _csm_out(cf, st, tp, ton, i, j, e, qmax, acc, inv, rec, ok):
    """Steps ``prod`` and ``out`` of the exponential e. Unrecorded, ``acc > 0`` and the product
    is non-negative unless ``ok`` is cleared. Returns ``(out, ok)``."""
    p, ok = mulv_step(cf, st, tp, ton, i, j, C_PROD, e, qmax, rec, ok)
    if not rec:
        return step(cf, st, tp, ton, i, j, C_OUT, _fdiv_rne(p, acc, inv), rec, ok)
    if acc == 0:
        return div0(cf, st, tp, ton, i, j, C_OUT), ok
    o = -_fdiv(p, -acc, inv, HALF_EVEN) if acc < 0 else _fdiv(p, acc, inv, HALF_EVEN)
    return step(cf, st, tp, ton, i, j, C_OUT, o, rec, ok)


@njit(cache=True, forceinline=True)
def _csm_chain(i, cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out, dflt, rec):
    """DI-ClippedSoftmax of row i, unrecorded (``rec`` False: returns False when a register would
    not hold a value) or recorded. Returns ``ok``. Unrecorded, a row whose clipped differences
    take at most ``tab.shape[1]`` values computes its exponentials and outputs once per value (in
    ``tab[i]``). ``dflt``: the default shift-add terms (kp[EP_DEFAULT_TERMS]; a constant in the
    unrecorded calls, so that the loops vectorize). Unrecorded (monotone terms only), the
    per-element registers are proven at the row's ends and the element loops check nothing:
    ``x_sub``, ``x_clipped`` and ``z`` do not decrease with x, DI-Exp is proven by
    :func:`_diexp_fits` on [z_min, 0], and ``prod``, ``out`` do not decrease with the exponential,
    which lies in [0, 2**F] (``r`` < 2**k makes ``frac`` > 2**(F-1) > 0)."""
    F = kp[EP_F]
    ib, m_bits, ob = kp[CP_IN_BITS], kp[CP_M_BITS], kp[CP_OUT_BITS]
    qmax = (np.int64(1) << ob) - np.int64(1)
    D = (np.int64(1) << ib) - np.int64(1) if ib > 0 else np.int64(1)
    one = np.int64(1) << F
    xr = x[i]
    orow = out[i]
    N = xr.shape[0]
    mx = np.int64(xr[0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, np.int64(xr[j]))
        mn = min(mn, np.int64(xr[j]))
    T = clip_int[i]
    rg, ok = step(cf, st, tp, ton, i, -1, C_RANGE, min(mx - mn, T), rec, True)
    if ib > 0:
        mz, kz = _dyadic_ratio(m[i] * rg, D, k[i], m_bits)
    else:
        mz, kz = m[i], k[i]
    mz, ok = step(cf, st, tp, ton, i, -1, C_SCALE_M, mz, rec, ok)
    zscale_m[i] = mz
    zscale_k[i] = kz
    if not rec and not (ok and 0 <= rg <= INT64_MAX // D):
        return False
    inv = 1.0 / rg if rg != 0 else 0.0
    width = -max(mn - mx, -T) + 1
    table = not rec and width <= tab.shape[1]
    if not rec:
        z = np.int64(0)
        for xe in (mx, mn):  # z ends at the row's smallest
            d, ok = step(cf, st, tp, ton, i, -1, C_XSUB, xe - mx, rec, ok)
            dc, ok = step(cf, st, tp, ton, i, -1, C_XCLIP, d if d > -T else -T, rec, ok)
            if not table:
                z, ok = _csm_z(cf, st, tp, ton, i, -1, dc, ib, D, rg, inv, rec, ok)
        if not table:
            ok = _diexp_fits(cf, st, tp, ton, i, C_EXP, z, mz, kz, terms, dflt, F, ok)
        if not ok:
            return False
    acc = acc_start()
    if table:
        tr = tab[i]
        for t in range(width):
            tr[t], ok = _csm_exp(cf, st, tp, ton, i, 0, np.int64(-t), ib, D, rg, inv, mz, kz, terms, dflt, F, rec,
                                 ok)
        for j in range(N):
            d, okj = step(cf, st, tp, ton, i, j, C_XSUB, xr[j] - mx, rec, ok)
            dc, okj = step(cf, st, tp, ton, i, j, C_XCLIP, d if d > -T else -T, rec, okj)
            acc = acc_step(cf, st, i, j, C_SUM, acc, tr[-dc], rec)
            orow[j] = -dc
    else:
        for j in range(N):
            d, okj = step(cf, st, tp, ton, i, j, C_XSUB, xr[j] - mx, rec, ok)
            dc, okj = step(cf, st, tp, ton, i, j, C_XCLIP, d if d > -T else -T, rec, okj)
            e, okj = _csm_exp(cf, st, tp, ton, i, j, dc, ib, D, rg, inv, mz, kz, terms, dflt, F, rec, okj)
            orow[j] = e
            acc = acc_step(cf, st, i, j, C_SUM, acc, e, rec)
    # unrecorded, every exponential lies in [0, 2**F]
    acc, ok = acc_end_mag(cf, C_SUM, acc, one, rec, ok)
    if not (rec or ok):
        return False
    if rec:
        tap(tp, ton, i, -1, C_SUM, acc)
    if acc == 0 and not rec:
        return False
    inv = 1.0 / acc if acc > 0 else (-1.0 / acc if acc < 0 else 0.0)
    if table:
        tr = tab[i]
        for t in range(width):
            tr[t], ok = _csm_out(cf, st, tp, ton, i, 0, tr[t], qmax, acc, inv, rec, ok)
        for j in range(N):
            orow[j] = tr[orow[j]]
        return ok
    if not rec:
        for ee in (np.int64(0), one):
            _, ok = _csm_out(cf, st, tp, ton, i, -1, ee, qmax, acc, inv, rec, ok)
    # (unrecorded, the element loops' ok is not needed: the ends proved it)
    for j in range(N):
        orow[j], _ = _csm_out(cf, st, tp, ton, i, j, orow[j], qmax, acc, inv, rec, ok)
    return ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_csoftmax_row(i, cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out):
    """Row i of :func:`_k_csoftmax` (the body of its parallel loop): unrecorded first when the
    terms are monotone (proven at the row's ends), again recorded when a register overflowed (or
    taps are on)."""
    dflt, mono = kp[EP_DEFAULT_TERMS] != 0, kp[EP_MONO] != 0
    if not ton:
        if dflt:
            if _csm_chain(i, cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out, True, False):
                return
        elif mono:
            if _csm_chain(i, cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out, False,
                          False):
                return
    _csm_chain(i, cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out, dflt, True)


@njit(cache=True, parallel=True)
def _k_csoftmax(cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out):
    for i in prange(x.shape[0]):
        _k_csoftmax_row(np.int64(i), cf, st, tp, ton, x, m, k, clip_int, terms, kp, tab, zscale_m, zscale_k, out)


def _clip_int(clip: Any, m: np.ndarray, k: np.ndarray, op: str) -> np.ndarray:
    """floor(clip / s) per row, exactly: floor(clip * 2**k / m)."""
    if isinstance(clip, (bool, np.bool_)) or not isinstance(clip, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{op}: clip must be a positive real number, got {clip!r}")
    cf = float(clip)
    if not math.isfinite(cf) or cf <= 0:
        raise ConfigError(f"{op}: clip must be a positive finite number, got {clip!r}")
    fr = Fraction(cf)
    out = np.empty(m.shape, dtype=np.int64)
    cache: dict[tuple[int, int], int] = {}
    for idx, (mm, kk) in enumerate(zip(m.tolist(), k.tolist(), strict=True)):
        key = (mm, kk)
        if key not in cache:
            v = (fr.numerator << kk) // (fr.denominator * mm)
            cache[key] = min(v, (1 << 62))
        out[idx] = cache[key]
    return out


@renamed_keyword("profile", "variant")
def clipped_softmax(x: Any, scale: Any, *, clip: float = 15.0, in_bits: int | None = 8, out_bits: int = 16,
                    out_frac_bits: int = 15, m_bits: int = 8, log2e_shifts: Any = LOG2E_SHIFTS,
                    in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
                    taps: bool = False, variant: str = "default") -> OpResult:
    """DI-ClippedSoftmax along the last axis, with a per-row dyadic input scale ``s = m / 2**k``.

    Semantics (intsim's construction; the module table lists the choices)::

        d   = x - max(x);  T = floor(clip / s)            # clip threshold in input steps, per row
        dc  = max(d, -T)                                   # clip x - max to [-clip, 0]
        R   = min(max(x) - min(x), T)                      # the clipped range of the row
        z   = -round_half_even(-dc * (2**b - 1) / R)       # b = in_bits: requantize to b bits
        s_z = dyadic(s * R / (2**b - 1))                   # m_bits mantissa, ties to even
        e   = DI-Exp(z, s_z)                               # fixed point 2**-F, F = out_frac_bits
        out = round_half_even(e * (2**out_bits - 1) / sum(e));  scale_out = 1 / (2**out_bits - 1)

    A row with ``R = 0`` (all equal) has ``z = 0`` and a uniform output. ``in_bits=None`` skips
    the requantization (DI-Exp then takes ``dc`` at scale ``s``). The input is the int32
    attention score (or any integer up to 32 bits) with its per-row scale.

    Registers (defaults): ``x_sub``, ``x_clipped``, ``range``, ``z`` 32; ``scale_m`` 32 (the
    mantissa of ``s_z``); the DI-Exp chain (see :func:`di_exp`); ``sum`` 32 (overflows for rows
    longer than 65535 elements at the maximum: the long-row case); ``prod`` 64; ``out``
    unsigned ``out_bits``. The per-row ``(m_z, k_z)`` are returned in the taps as
    ``z_scale_m`` / ``z_scale_k`` when ``taps=True``.

    >>> clipped_softmax(np.array([[0, 0, 0]]), 0.5).values.tolist()
    [[21845, 21845, 21845]]
    """
    op = "illm.clipped_softmax"
    check_variant(variant, ("default",), op)
    in_t = check_in_type(in_type, op)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 1, 40)
    ob = check_int_param(out_bits, "out_bits", op, 1, 31)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    ib = 0 if in_bits is None else check_int_param(in_bits, "in_bits", op, 1, 24)
    terms, dflt = _log2e_terms(log2e_shifts, op)
    arr = check_input(x, in_t, op)
    m, k = row_dyadic(scale, _rows_shape(arr), m_bits, op)
    _check_k(k, F, op)
    clip_int = _clip_int(clip, m, k, op)
    chain = _csm_steps(ib, m_bits, ob)
    regs = chain.registers(widths, overflow, op, defaults=_diexp_widths(F))
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = chain.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    zm = np.zeros(R, dtype=np.int64)
    zk = np.zeros(R, dtype=np.int64)
    if arr.size:
        # per-row tables when a row's clipped differences take fewer values than half its length
        tw = N // 2 if (N >= 64 and not taps) else 0
        tab = np.empty((R if tw else 1, max(tw, 1)), dtype=np.int64)
        kp = np.array([F, dflt, _monotone(terms), ib, m_bits, ob], dtype=np.int64)
        _k_csoftmax(*plan.args(), as_rows(arr), m, k, clip_int, terms, kp, tab if tw else tab[:, :0], zm, zk, out)
    tapd = plan.finish(arr.shape, "rows")
    if taps:
        tapd["z_scale_m"] = zm.reshape(arr.shape[:-1])
        tapd["z_scale_k"] = zk.reshape(arr.shape[:-1])
    ops = chain.op_counts(regs, in_bits=in_t.bits, elements=R * N, rows=R,
                          params={"terms1": len(terms) - 1, "minmax": 2 * R * (N - 1), "reduce": R * (N - 1)})
    return OpResult(values=out.reshape(arr.shape), scale=1.0 / ((1 << ob) - 1), ops=ops, registers=regs, taps=tapd)


# ---------------------------------------------------------------------------------------------
# DI-Norm
# ---------------------------------------------------------------------------------------------
_NORM_MODES = ("rms", "layer")


@renamed_keyword("profile", "variant")
def di_norm(x: Any, scale: Any, gamma: Any = None, beta: Any = None, *, mode: str = "rms",
            out_frac_bits: int = 16, eps: float = 0.0, in_type: IntType | str = I16, widths: dict | None = None,
            overflow: str = "raise", taps: bool = False, variant: str = "default") -> OpResult:
    """DI-Norm: integer RMSNorm (``mode="rms"``) or LayerNorm (``mode="layer"``) over the last axis.

    Semantics (intsim's construction; D = row length, F = out_frac_bits)::

        y      = x - round_half_even(sum(x) / D)    (layer)   |   y = x    (rms)
        var    = sum(y**2) + eps_int;  eps_int = round_half_even(eps * D / s**2)   (per row)
        g      = max(0, (62 - bitlen(var)) // 2)                 # normalize for the square root
        std    = isqrt(((var << 2g) // D))                        # floor(sqrt(var / D) * 2**g), exact
        factor = floor(2**(F + 16 + g) / std)                     # 0 when std = 0 (then y = 0)
        out    = round_half_even(y * factor / 2**16) + bias_int;   scale_out = 2**-F * gamma

    so ``out ~ y / sigma * 2**F`` with ``sigma = sqrt(var / D)``: a dyadic output scale, no
    ``sqrt(D)`` in it. ``gamma`` is folded into a per-channel output scale and ``beta`` becomes
    ``bias_int = round_half_even((beta / gamma) * 2**F)`` (I-BERT's convention); in I-LLM the
    norm weights are usually folded into the next linear layer instead. ``scale`` (per row or
    scalar; a float, array, Dyadic or (m, k)) only enters through ``eps``.

    The square root is :mod:`intsim.ops.isqrt`'s exact Newton iteration on a value normalized to
    about 60 bits, so ``std`` keeps about ``30 - log2(D)/2`` significant bits at any variance
    (the "integer square root with shifts" of the paper). Registers (defaults): ``sum`` 48,
    ``mean``, ``y``, ``y_shifted`` (= y) 32; ``y_sq``, ``var``, ``var_norm``, ``sqrt_iter``,
    ``factor``, ``prod`` 64; ``std``, ``out``, ``out_bias`` 32. The input is int16 by default
    (I-LLM's 16-bit norm input).

    >>> di_norm(np.array([[3, -3, 3, -3]]), 0.1).values.tolist()
    [[65536, -65536, 65536, -65536]]
    """
    op = f"illm.{'rmsnorm' if mode == 'rms' else 'layernorm'}"
    check_variant(variant, ("default",), op)
    if mode not in _NORM_MODES:
        raise ConfigError(f"illm.di_norm: unknown mode {mode!r}; valid: {', '.join(_NORM_MODES)}")
    in_t = check_in_type(in_type, op)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 0, 30)
    check_float_params(gamma, "gamma", op)
    check_float_params(beta, "beta", op)
    if mode == "rms" and beta is not None:
        raise ConfigError(f"{op}: RMSNorm has no beta")
    arr = check_input(x, in_t, op)
    D = arr.shape[-1]
    if D == 0:
        raise ShapeError(f"{op}: the normalized axis is empty")
    rows = _rows_shape(arr)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(eps)) or float(eps) < 0:
        raise ConfigError(f"{op}: eps must be a finite non-negative number, got {eps!r}")
    m, k = row_dyadic(scale, rows, 30, op)
    R = int(np.prod(rows)) if len(rows) else 1
    if float(eps) > 0:
        epsf = Fraction(float(eps))
        eps_int = np.array([_rne_fraction(epsf * D * (1 << (2 * int(kk))) / (int(mm) ** 2))
                            for mm, kk in zip(m.tolist(), k.tolist(), strict=True)], dtype=object)
        if any(v > 1 << 62 for v in eps_int):
            raise ConfigError(f"{op}: eps / scale**2 is too large for an int64 register")
        eps_arr = eps_int.astype(np.int64)
    else:
        eps_arr = np.zeros(max(R, 1), dtype=np.int64)
    out_scale: Any = 2.0 ** -F
    bias = None
    if gamma is not None or beta is not None:
        out_scale, bias = ln_affine(gamma, beta, D, 2.0 ** -F, op, mode="rint")
    defaults = {"sum": IntType(48), "mean": I32, "y": I32, "y_shifted": I32, "y_sq": I64, "var": I64,
                "var_norm": I64, "sqrt_iter": I64, "std": I32, "factor": I64, "prod": I64, "out": I32,
                "out_bias": I32}
    regs = LN_CHAIN.registers(widths, overflow, op, defaults=defaults)
    return run_layernorm(op, arr, regs, taps, in_t, mean_mode=MEAN_RNE if mode == "layer" else MEAN_NONE,
                          shift=0, sqrt_mode=SQ_NORM, iv_steps=0, num_bits=F + 16, norm_top=62, prod_shift=16,
                          prod_round=2, eps_int=eps_arr, bias=bias, out_scale=out_scale, div_d=True)


def _rne_fraction(q: Fraction) -> int:
    fl = q.numerator // q.denominator
    rem = q - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


@renamed_keyword("profile", "variant")
def rmsnorm(x: Any, scale: Any, gamma: Any = None, **kw: Any) -> OpResult:
    """DI-Norm in RMSNorm mode: :func:`di_norm` with ``mode="rms"``.

    >>> rmsnorm(np.array([[1, 1, 1, 1]]), 0.5).values.tolist()
    [[65536, 65536, 65536, 65536]]
    """
    return di_norm(x, scale, gamma, mode="rms", **kw)


@renamed_keyword("profile", "variant")
def layernorm(x: Any, scale: Any, gamma: Any = None, beta: Any = None, **kw: Any) -> OpResult:
    """DI-Norm in LayerNorm mode: :func:`di_norm` with ``mode="layer"``.

    >>> layernorm(np.array([[1, 2, 3, 4]]), 0.5).values.tolist()
    [[-53510, 0, 53510, 107020]]
    """
    return di_norm(x, scale, gamma, beta, mode="layer", **kw)


# ---------------------------------------------------------------------------------------------
# DI-SwiGLU
# ---------------------------------------------------------------------------------------------
SWIGLU_CHAIN = Chain("illm.swiglu", [
    Step("abs", "e", I32, (Cost("compare", ("in",)), Cost("add", ("abs",)))),
]) + _diexp_steps() + Chain("illm.swiglu", [
    Step("denom", "e", IntType(18), (Cost("add", ("denom",)),)),
    Step("num", "e", I64, (Cost("shift", ("num",)),)),
    Step("sig", "e", IntType(16, signed=False), (Cost("div", ("denom",)),)),
    Step("silu", "e", I32, (Cost("mul", ("in", "sig")),)),
    Step("out", "e", I32, (Cost("mul", ("silu", "in")),)),
])
W_ABS, W_EXP, W_DENOM, W_NUM, W_SIG, W_SILU, W_OUT = SWIGLU_CHAIN.ids("abs", "mul", "denom", "num", "sig", "silu",
                                                                      "out")
#: the kernel's parameter vector (after EP_F, EP_DEFAULT_TERMS, EP_MONO): Fs (sig_bits)
WP_SIG_BITS = 3


@njit(cache=True, forceinline=True)
def _swiglu_sig(cf, st, tp, ton, i, j, gv, m, k, terms, dflt, F, Fs, rec, ok):
    """Steps ``abs`` ... ``sig`` of the gate value gv: the sigmoid at scale 2**-Fs. Returns
    ``(sig, ok)``."""
    one = np.int64(1) << F
    a, ok = step(cf, st, tp, ton, i, j, W_ABS, -gv if gv < 0 else gv, rec, ok)
    e, ok = _diexp(cf, st, tp, ton, i, j, W_EXP, -a, m, k, terms, dflt, F, rec, ok)
    den, ok = step(cf, st, tp, ton, i, j, W_DENOM, one + e, rec, ok)
    num, ok = shl_step(cf, st, tp, ton, i, j, W_NUM, one if gv >= 0 else e, Fs, rec, ok)
    if den == 0:
        if rec:
            return div0(cf, st, tp, ton, i, j, W_SIG), ok
        return np.int64(0), False
    return step(cf, st, tp, ton, i, j, W_SIG, _fdiv(num, den, 1.0 / den, HALF_EVEN), rec, ok)


@njit(cache=True)
def _swiglu_fits(cf, st, tp, ton, i, glo, ghi, ulo, uhi, m, k, terms, dflt, F, Fs):
    """Unrecorded range proof of the DI-SwiGLU registers for every gate in [glo, ghi] and up in
    [ulo, uhi], with monotone shift-add terms: ``abs`` lies in [0, max|gate|]; DI-Exp of
    -abs is proven by :func:`_diexp_fits` and lies in [0, 2**F]; so ``denom`` lies in [2**F,
    2**(F+1)], ``num`` in [0, 2**(F+Fs)] and ``sig`` in [0, 2**Fs] (a rounded quotient of at most
    2**(F+Fs) by at least 2**F); ``silu = gate * sig`` in [min(glo, 0), max(ghi, 0)] * 2**Fs;
    ``out = silu * up`` between the four corner products. A register is an interval, so its ends
    fitting proves every value between. Returns ``ok``."""
    one = np.int64(1) << F
    smax = np.int64(1) << Fs
    amax = max(-glo, ghi)
    ok = True
    for v in (np.int64(0), amax):
        _, ok = step(cf, st, tp, ton, i, -1, W_ABS, v, False, ok)
    ok = _diexp_fits(cf, st, tp, ton, i, W_EXP, -amax, m, k, terms, dflt, F, ok)
    for v in (one, one + one):
        _, ok = step(cf, st, tp, ton, i, -1, W_DENOM, v, False, ok)
    for v in (np.int64(0), one):
        _, ok = shl_step(cf, st, tp, ton, i, -1, W_NUM, v, Fs, False, ok)
    for v in (np.int64(0), smax):
        _, ok = step(cf, st, tp, ton, i, -1, W_SIG, v, False, ok)
    tlo, ok = mul_step(cf, st, tp, ton, i, -1, W_SILU, min(glo, np.int64(0)), smax, False, ok)
    thi, ok = mul_step(cf, st, tp, ton, i, -1, W_SILU, max(ghi, np.int64(0)), smax, False, ok)
    for t in (tlo, thi):
        for v in (ulo, uhi):
            _, ok = mul_step(cf, st, tp, ton, i, -1, W_OUT, t, v, False, ok)
    return ok


@njit(cache=True, forceinline=True)
def _swiglu_chain(i, cf, st, tp, ton, g, u, m, k, terms, kp, tab, out, rec):
    """DI-SwiGLU of row i, recorded (``rec``) or unrecorded (monotone terms only): then the
    registers are proven at the row's ends by :func:`_swiglu_fits` (returns False when that
    fails) and the loops check nothing. Unrecorded, a row whose gate values span at most
    ``tab.shape[1]`` values computes the sigmoid once per value (in ``tab[i]``). Returns ``ok``."""
    F, dflt, Fs = kp[EP_F], kp[EP_DEFAULT_TERMS] != 0, kp[WP_SIG_BITS]
    mi, ki = m[i], k[i]
    gr, ur, orow = g[i], u[i], out[i]
    N = gr.shape[0]
    if not rec:
        glo = np.int64(gr[0])
        ghi = glo
        ulo = np.int64(ur[0])
        uhi = ulo
        for j in range(1, N):
            glo = min(glo, np.int64(gr[j]))
            ghi = max(ghi, np.int64(gr[j]))
            ulo = min(ulo, np.int64(ur[j]))
            uhi = max(uhi, np.int64(ur[j]))
        if not _swiglu_fits(cf, st, tp, ton, i, glo, ghi, ulo, uhi, mi, ki, terms, dflt, F, Fs):
            return False
        width = ghi - glo + 1
        if width <= tab.shape[1]:
            tr = tab[i]
            for t in range(width):
                tr[t], _ = _swiglu_sig(cf, st, tp, ton, i, 0, glo + t, mi, ki, terms, dflt, F, Fs, False, True)
            for j in range(N):
                gv = np.int64(gr[j])
                orow[j] = gv * tr[gv - glo] * np.int64(ur[j])
            return True
        for j in range(N):
            gv = np.int64(gr[j])
            sg, _ = _swiglu_sig(cf, st, tp, ton, i, j, gv, mi, ki, terms, dflt, F, Fs, False, True)
            orow[j] = gv * sg * np.int64(ur[j])
        return True
    for j in range(N):
        gv = np.int64(gr[j])
        sg, _ = _swiglu_sig(cf, st, tp, ton, i, j, gv, mi, ki, terms, dflt, F, Fs, True, True)
        t, _ = mul_step(cf, st, tp, ton, i, j, W_SILU, gv, sg, True, True)
        orow[j], _ = mul_step(cf, st, tp, ton, i, j, W_OUT, t, np.int64(ur[j]), True, True)
    return True


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_swiglu_row(i, cf, st, tp, ton, g, u, m, k, terms, kp, tab, out):
    """Row i of :func:`_k_swiglu` (the body of its parallel loop): unrecorded first, again
    recorded when a register overflowed (or taps are on)."""
    if ton or kp[EP_MONO] == 0 or not _swiglu_chain(i, cf, st, tp, ton, g, u, m, k, terms, kp, tab, out, False):
        _swiglu_chain(i, cf, st, tp, ton, g, u, m, k, terms, kp, tab, out, True)


@njit(cache=True, parallel=True)
def _k_swiglu(cf, st, tp, ton, g, u, m, k, terms, kp, tab, out):
    for i in prange(g.shape[0]):
        _k_swiglu_row(np.int64(i), cf, st, tp, ton, g, u, m, k, terms, kp, tab, out)


@renamed_keyword("profile", "variant")
def swiglu(gate: Any, scale: Any, up: Any, up_scale: Any, *, sig_bits: int = 15, out_frac_bits: int = 15,
           m_bits: int = 8, log2e_shifts: Any = LOG2E_SHIFTS, in_type: IntType | str = I8,
           widths: dict | None = None, overflow: str = "raise", taps: bool = False,
           variant: str = "default") -> OpResult:
    """DI-SwiGLU: ``silu(gate) * up = gate * sigmoid(gate) * up``, element-wise, with the
    sigmoid built from DI-Exp.

    Semantics (``s_g = m / 2**k`` per row, F = out_frac_bits, Fs = sig_bits)::

        e   = DI-Exp(-|gate|, s_g)                       # e**-|gate s_g| at scale 2**-F
        sig = round_half_even((gate >= 0 ? 2**F : e) * 2**Fs / (2**F + e))    # sigmoid, 2**-Fs
        out = gate * sig * up;   scale_out = s_g * s_up * 2**-Fs  (per row)

    ``gate`` and ``up`` are the two 8-bit per-token GEMM outputs (I-LLM's SwiGLU inputs are
    8-bit; ``in_type`` may be up to 16 bits); ``scale`` and ``up_scale`` are per-row scales
    (``up_scale`` only enters the output scale, as a float). FSBR's smoothing factor is
    assumed folded into the scales. Registers (defaults): ``abs`` 32, the DI-Exp chain,
    ``denom`` ``F + 3`` bits, ``num`` 64, ``sig`` unsigned ``Fs + 1``, ``silu`` 32, ``out`` 32
    (8-bit inputs need 31 bits).

    >>> r = swiglu(np.array([[-100, 0, 100]]), 0.02, np.array([[50, 50, 50]]), 0.02)
    >>> r.values.tolist(), [round(v, 3) for v in r.dequantize()[0].tolist()]
    ([[-20155000, 0, 143685000]], [-0.246, 0.0, 1.756])
    """
    op = "illm.swiglu"
    check_variant(variant, ("default",), op)
    in_t = check_in_type(in_type, op, max_bits=16)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 1, 30)
    Fs = check_int_param(sig_bits, "sig_bits", op, 1, 30)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    terms, dflt = _log2e_terms(log2e_shifts, op)
    ga = check_input(gate, in_t, op, "gate")
    ua = check_input(up, in_t, op, "up")
    if ga.shape != ua.shape:
        raise ShapeError(f"{op}: gate {ga.shape} and up {ua.shape} must have the same shape")
    rows = _rows_shape(ga)
    m, k = row_dyadic(scale, rows, m_bits, op)
    _check_k(k, F, op)
    su = np.asarray(up_scale, dtype=np.float64) if not isinstance(up_scale, (bool, str)) else None
    if su is None or not np.all(np.isfinite(su)) or np.any(su <= 0):
        raise ConfigError(f"{op}: up_scale must be positive finite, got {up_scale!r}")
    try:
        su = np.broadcast_to(su, rows)
    except ValueError:
        raise ShapeError(f"{op}: up_scale does not broadcast to the rows shape {rows}") from None
    regs = SWIGLU_CHAIN.registers(widths, overflow, op, defaults={
        **_diexp_widths(F), "denom": IntType(F + 3), "sig": IntType(Fs + 1, signed=False)})
    R = int(np.prod(rows)) if len(rows) else 1
    N = ga.shape[-1]
    plan = SWIGLU_CHAIN.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if ga.size:
        tw = (1 << in_t.bits) if (in_t.bits <= 10 and 2 * (1 << in_t.bits) <= N and not taps) else 0
        tab = np.empty((R if tw else 1, max(tw, 1)), dtype=np.int64)
        kp = np.array([F, dflt, _monotone(terms), Fs], dtype=np.int64)
        _k_swiglu(*plan.args(), as_rows(ga), as_rows(ua), m, k, terms, kp, tab if tw else tab[:, :0], out)
    tapd = plan.finish(ga.shape, "rows")
    ops = SWIGLU_CHAIN.op_counts(regs, in_bits=in_t.bits, elements=R * N, rows=R, params={"terms1": len(terms) - 1})
    s_g = (m.astype(np.float64) / np.exp2(k.astype(np.float64))).reshape(rows)
    out_scale = s_g * su * 2.0 ** -Fs
    out_scale = out_scale[..., None] if out_scale.ndim else float(out_scale)
    return OpResult(values=out.reshape(ga.shape), scale=out_scale, ops=ops, registers=regs, taps=tapd)


# ---------------------------------------------------------------------------------------------
# dynamic per-token requantization (DI-MatMul output)
# ---------------------------------------------------------------------------------------------
@dataclass
class AffineOpResult(OpResult):
    """An :class:`~intsim.regs.opresult.OpResult` with a per-row real offset:
    ``real = values * scale + offset * offset_scale`` (``offset`` an int64 array, exact).

    :func:`dynamic_requant` returns it for the asymmetric mode, with ``offset = p_min`` (the row
    minimum of the input, in input steps), ``offset_scale`` the input scale, and ``row_range`` the
    exact integer range ``R`` each row was divided by (int64, the shape of ``offset``), so that
    ``scale = offset_scale * row_range / (2**bits - 1)`` up to float64 rounding.
    """

    offset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    offset_scale: Any = 0.0
    row_range: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def dequantize(self) -> np.ndarray:
        base = super().dequantize()
        return base + self.offset.astype(np.float64) * np.asarray(self.offset_scale, dtype=np.float64)


_ROUNDINGS = ("half_even", "trunc", "floor", "half_up", "half_away")  #: the roundings of dynamic_requant


@functools.cache
def _dynq_steps(bits: int, symmetric: bool) -> Chain:
    """dynamic_requant's chain; ``minmax`` (a call parameter of the op counts) is ``2 R (N - 1)``,
    the compares of the row minima and maxima."""
    return Chain("illm.dynamic_requant", [
        Step("p_min", "r", I32, (Cost("compare", ("in",), "minmax", "call"),)),
        Step("p_max", "r", I32),
        Step("range", "r", IntType(33), (Cost("add", ("range",), 1, "r"),)),
        Step("shifted", "e", IntType(33), () if symmetric else (Cost("add", ("shifted",)),)),
        Step("prod", "e", I64, (Cost("mul", ("shifted", bits)),)),
        Step("out", "e", IntType(bits, signed=symmetric), (Cost("div", ("range",)),)),
    ])


Q_PMIN, Q_PMAX, Q_RANGE, Q_SHIFTED, Q_PROD, Q_OUT = range(len(_dynq_steps(8, False)))
#: the kernel's parameter vector
QP_BITS, QP_SYMMETRIC, QP_ROUNDING = range(3)


@njit(cache=True, forceinline=True)
def _dynq_chain(i, cf, st, tp, ton, x, kp, rng_out, lo_out, out, rec):
    """The requantization of row i, recorded (``rec``) or unrecorded. Returns ``ok``.
    Unrecorded, the registers are proven at the row's ends and the loop checks nothing:
    ``shifted``, ``prod`` and ``out`` do not decrease with the input (``qm > 0``, ``range > 0``),
    so the row's minimum and maximum bound them (returns False when one does not fit)."""
    bits, symmetric, code = kp[QP_BITS], kp[QP_SYMMETRIC] != 0, kp[QP_ROUNDING]
    xr = x[i]
    orow = out[i]
    N = xr.shape[0]
    mx = np.int64(xr[0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, np.int64(xr[j]))
        mn = min(mn, np.int64(xr[j]))
    mn, ok = step(cf, st, tp, ton, i, -1, Q_PMIN, mn, rec, True)
    mx, ok = step(cf, st, tp, ton, i, -1, Q_PMAX, mx, rec, ok)
    if symmetric:
        rg = max(-mn, mn, -mx, mx)
        qm = (np.int64(1) << (bits - np.int64(1))) - np.int64(1)
        base = np.int64(0)
    else:
        rg = mx - mn
        qm = (np.int64(1) << bits) - np.int64(1)
        base = mn
    rg, ok = step(cf, st, tp, ton, i, -1, Q_RANGE, rg, rec, ok)
    if rg == 0:
        rg = np.int64(1)
    rng_out[i] = rg
    lo_out[i] = base
    inv = 1.0 / rg
    if not rec:
        for v in (mn, mx):
            sft, ok = step(cf, st, tp, ton, i, -1, Q_SHIFTED, v - base, False, ok)
            p, ok = mul_step(cf, st, tp, ton, i, -1, Q_PROD, sft, qm, False, ok)
            _, ok = step(cf, st, tp, ton, i, -1, Q_OUT, _fdiv(p, rg, inv, code), False, ok)
        if not ok:
            return False
        if code == HALF_EVEN and max(abs(mn - base), abs(mx - base)) * qm < 4503599627370496:
            for j in range(N):  # products below 2**52: the float-assisted division, branch-light
                a = (np.int64(xr[j]) - base) * qm
                orow[j] = _fdiv_rne(a, rg, inv) if a >= 0 else -_fdiv_rne(-a, rg, inv)
        else:
            for j in range(N):
                orow[j] = _fdiv((np.int64(xr[j]) - base) * qm, rg, inv, code)
        return True
    for j in range(N):
        sft, ok = step(cf, st, tp, ton, i, j, Q_SHIFTED, xr[j] - base, True, ok)
        p, ok = mul_step(cf, st, tp, ton, i, j, Q_PROD, sft, qm, True, ok)
        orow[j], ok = step(cf, st, tp, ton, i, j, Q_OUT, _fdiv(p, rg, inv, code), True, ok)
    return ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_dynq_row(i, cf, st, tp, ton, x, kp, rng_out, lo_out, out):
    """Row i of :func:`_k_dynq` (the body of its parallel loop): unrecorded first, again recorded
    when a register overflowed (or taps are on)."""
    if ton or not _dynq_chain(i, cf, st, tp, ton, x, kp, rng_out, lo_out, out, False):
        _dynq_chain(i, cf, st, tp, ton, x, kp, rng_out, lo_out, out, True)


@njit(cache=True, parallel=True)
def _k_dynq(cf, st, tp, ton, x, kp, rng_out, lo_out, out):
    for i in prange(x.shape[0]):
        _k_dynq_row(np.int64(i), cf, st, tp, ton, x, kp, rng_out, lo_out, out)


@renamed_keyword("profile", "variant")
def dynamic_requant(p: Any, scale: Any, *, bits: int = 8, symmetric: bool = False, rounding: str = "half_even",
                    m_bits: int = 8, in_type: IntType | str = I32, widths: dict | None = None,
                    overflow: str = "raise", taps: bool = False, variant: str = "default") -> OpResult:
    """Dynamic per-token requantization of a GEMM output (DI-MatMul's output step).

    Per row (token) of the integer GEMM result ``P`` with input scale ``s`` (real ``P * s``)::

        asymmetric (default, the paper's formula):
            R = p_max - p_min  (1 if 0);  out = round((P - p_min) * (2**bits - 1) / R)  in [0, 2**bits - 1]
            scale_out = s * R / (2**bits - 1);  real = out * scale_out + p_min * s
        symmetric:
            R = max |P|  (1 if 0);        out = round(P * (2**(bits-1) - 1) / R)  in [-(2**(bits-1) - 1), ...]
            scale_out = s * R / (2**(bits-1) - 1)

    ``round`` is ``rounding`` (half to even by default; also half_up, half_away, floor, trunc),
    computed exactly by integer division. ``scale`` is a scalar or a per-row array (floats, a
    Dyadic or (m, k)); ``scale_out`` is returned as a float64 array of shape ``x.shape[:-1] +
    (1,)`` (exact up to float64 rounding); the 8-bit dyadic form of each row's output scale
    (``m_bits``) is in ``taps["scale_m"]``/``taps["scale_k"]`` for an integer-only consumer.
    The asymmetric result is an :class:`AffineOpResult` whose ``offset`` is ``p_min`` (int64, per
    row) at ``offset_scale = s``, so ``dequantize()`` is exact up to the rounding of ``out``, and
    whose ``row_range`` is ``R`` (int64, per row) for an integer-only consumer.

    Registers (defaults): ``p_min``, ``p_max`` 32; ``range`` 33 (``p_max - p_min`` of int32
    data); ``shifted`` 33; ``prod`` 64; ``out`` unsigned ``bits`` (signed when symmetric).

    >>> r = dynamic_requant(np.array([[-100, 0, 155]]), 0.5)
    >>> r.values.tolist(), r.offset.tolist(), r.row_range.tolist(), r.dequantize().tolist()
    ([[0, 100, 255]], [[-100]], [[255]], [[-50.0, 0.0, 77.5]])
    """
    op = "illm.dynamic_requant"
    check_variant(variant, ("default",), op)
    in_t = check_in_type(in_type, op)
    bits = check_int_param(bits, "bits", op, 2, 24)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    rmode = rounding_mode(rounding)
    if rmode not in _ROUNDINGS:
        raise ConfigError(f"{op}: rounding {rounding!r} not supported here; valid: {', '.join(_ROUNDINGS)}")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise ConfigError(f"{op}: symmetric must be True or False")
    arr = check_input(p, in_t, op)
    rows = _rows_shape(arr)
    R = int(np.prod(rows)) if len(rows) else 1
    if isinstance(scale, Dyadic) or isinstance(scale, tuple):
        mm, kk = row_dyadic(scale, rows, m_bits, op)
        s_in = mm.astype(np.float64) / np.exp2(kk.astype(np.float64))
    else:
        a = np.asarray(scale)
        if a.dtype.kind not in "fiu" or a.dtype.kind == "b":
            raise ConfigError(f"{op}: scale must be a positive real (or array of them), got {scale!r}")
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ConfigError(f"{op}: scale must be positive and finite")
        try:
            s_in = np.broadcast_to(a, rows).reshape(R)
        except ValueError:
            raise ShapeError(f"{op}: scale does not broadcast to the rows shape {rows}") from None
    chain = _dynq_steps(bits, bool(symmetric))
    regs = chain.registers(widths, overflow, op)
    N = arr.shape[-1]
    plan = chain.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    rg = np.ones(R, dtype=np.int64)
    lo = np.zeros(R, dtype=np.int64)
    if arr.size:
        kp = np.array([bits, int(bool(symmetric)), ROUNDING_CODE[rmode]], dtype=np.int64)
        _k_dynq(*plan.args(), as_rows(arr), kp, rg, lo, out)
    tapd = plan.finish(arr.shape, "rows")
    qm = (1 << (bits - 1)) - 1 if symmetric else (1 << bits) - 1
    s_out = s_in * rg.astype(np.float64) / qm
    if taps:
        dy = [Dyadic.from_float(float(v), bits=m_bits, rounding="half_even", max_shift=62) for v in s_out]
        tapd["scale_m"] = np.array([d.m for d in dy], dtype=np.int64).reshape(rows)
        tapd["scale_k"] = np.array([d.k for d in dy], dtype=np.int64).reshape(rows)
    ops = chain.op_counts(regs, in_bits=in_t.bits, elements=R * N, rows=R, params={"minmax": 2 * R * (N - 1)})
    shape_s = rows + (1,)
    values = out.reshape(arr.shape)
    scale_out = s_out.reshape(shape_s)
    if symmetric:
        return OpResult(values=values, scale=scale_out, ops=ops, registers=regs, taps=tapd)
    return AffineOpResult(values=values, scale=scale_out, ops=ops, registers=regs, taps=tapd,
                          row_range=rg.reshape(shape_s),
                          offset=lo.reshape(shape_s), offset_scale=s_in.reshape(shape_s))


#: the operators of this family (:mod:`intsim.ops.registry` lists them as ``illm.<name>``) and the
#: positional inputs of each; each has a single form (no ``variant=`` choice)
OPS: tuple[OpSpec, ...] = (
    OpSpec("di_exp", di_exp),
    OpSpec("clipped_softmax", clipped_softmax),
    OpSpec("rmsnorm", rmsnorm),
    OpSpec("layernorm", layernorm),
    OpSpec("swiglu", swiglu, ("gate", "scale", "up", "up_scale")),
    OpSpec("dynamic_requant", dynamic_requant, ("p", "scale")),
)
