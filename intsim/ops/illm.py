"""I-LLM integer-only operators (Hu et al., arXiv 2405.17849): DI-Exp, DI-ClippedSoftmax,
DI-Norm (integer RMSNorm and LayerNorm), DI-SwiGLU, and the dynamic per-token
requantization of GEMM outputs (DI-MatMul's output step).

I-LLM's integer kernels are not public (the official repository's integer branch is an
empty TODO), so every operator here is intsim's construction from the paper-level
description, following the design note's guidance: "treat I-LLM as I-ViT's shift-exp with
per-token dynamic scales". Each choice the paper leaves open is named below and is a
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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from numba import njit, prange

from ..core.dyadic import Dyadic
from ..core.errors import ConfigError, DTypeError, OperandRangeError, ShapeError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.rounding import rounding_mode
from ..regs.opresult import OpResult
from ..regs.prims import (
    add_chk,
    bitlen64,
    div0,
    fits,
    mul_reg,
    reg,
    shl_reg,
    tap,
)
from ..regs.registers import RegisterFile
from ..regs.runtime import (
    Plan,
    as_rows,
    check_in_type,
    check_input,
    check_int_param,
    check_profile,
    make_registers,
)
from .ibert import (
    I8,
    I16,
    I32,
    I64,
)
from .layernorm_chain import (
    MEAN_NONE,
    MEAN_RNE,
    SQ_NORM,
    check_float_params,
    div_round_mode,
    ln_affine,
    run_layernorm,
)

__all__ = ["di_exp", "clipped_softmax", "di_norm", "rmsnorm", "layernorm", "swiglu", "dynamic_requant",
           "AffineOpResult", "row_dyadic", "OPERATORS", "PROFILES", "INPUTS"]

LOG2E_SHIFTS = ((0, 1), (1, 1), (4, -1))
_U16 = IntType(16, signed=False)


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


def _monotone(sh: np.ndarray, sg: np.ndarray) -> bool:
    """Whether ``sum(sign * (t >> shift))`` is non-decreasing in t (which the fast paths' range
    checks rely on): when t grows by one, each ``+(t >> 0)`` term grows by exactly one and each
    negative term falls by at most one, so it is enough that there are at least as many
    ``(0, +1)`` terms as negative ones (true of the default 1 + 1/2 - 1/16)."""
    terms = list(zip(sh.tolist(), sg.tolist(), strict=True))
    return sum(1 for a, b in terms if a == 0 and b > 0) >= sum(1 for _, b in terms if b < 0)


def _log2e_terms(terms: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        sh = np.array([int(t[0]) for t in terms], dtype=np.int64)
        sg = np.array([int(t[1]) for t in terms], dtype=np.int64)
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"{op}: log2e_shifts must be (shift, sign) pairs, got {terms!r}") from None
    if sh.size == 0 or np.any(sh < 0) or np.any(sh > 62) or np.any(np.abs(sg) != 1):
        raise ConfigError(f"{op}: log2e_shifts need shifts in [0, 62] and signs +-1, got {terms!r}")
    return sh, sg


# ---------------------------------------------------------------------------------------------
# DI-Exp
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _shift_add(t, sh, sg):
    """The log2(e) multiply as shift-adds: ``sum(sign * (t >> shift))`` over the terms."""
    u = np.int64(0)
    for w in range(sh.shape[0]):
        if sg[w] > 0:
            u += t >> sh[w]
        else:
            u -= t >> sh[w]
    return u


@njit(cache=True, inline="always")
def _diexp_chain(cf, st, tp, ton, i, j, s0, z, m, k, sh, sg, F):
    """DI-Exp of z <= 0 at scale m / 2**k: steps mul, log2e, q, r, frac, exp (s0 ... s0+5).

    t = z*m; u = sum(sign * (t >> shift)); a = max(-u, 0); q = a >> k; r = a mod 2**k;
    frac = floor(2**F * (1 - r / 2**(k+1))); exp = frac >> q.
    """
    t = mul_reg(cf, st, tp, ton, i, j, s0, z, m)
    u = reg(cf, st, tp, ton, i, j, s0 + 1, _shift_add(t, sh, sg))
    a = -u if u < 0 else np.int64(0)
    q = reg(cf, st, tp, ton, i, j, s0 + 2, a >> k)
    r = reg(cf, st, tp, ton, i, j, s0 + 3, a & ((np.int64(1) << k) - np.int64(1)))
    one = np.int64(1) << F
    if k + 1 >= F:
        d = k + 1 - F
        fr = one - ((r + (np.int64(1) << d) - np.int64(1)) >> d)
    else:
        fr = one - (r << (F - k - 1))
    fr = reg(cf, st, tp, ton, i, j, s0 + 4, fr)
    if q >= 63:
        e = np.int64(0)
    else:
        e = fr >> q
    return reg(cf, st, tp, ton, i, j, s0 + 5, e)


@njit(cache=True)
def _div_round5(a, d, mode):
    if mode == 4:
        if a < 0:
            return -div_round_mode(-a, d, 3)
        return div_round_mode(a, d, 3)
    return div_round_mode(a, d, mode)


@njit(cache=True, inline="always")
def _is_default_log2e(sh, sg):
    """Whether the shift-add terms are the default ``t + (t >> 1) - (t >> 4)``."""
    return sh.shape[0] == 3 and sh[0] == 0 and sh[1] == 1 and sh[2] == 4 and sg[0] == 1 and sg[1] == 1 and sg[2] == -1


@njit(cache=True, inline="always")
def _diexp_raw(z, m, k, sh, sg, F):
    """DI-Exp without registers (the fast paths): same arithmetic as _diexp_chain."""
    if _is_default_log2e(sh, sg):
        return _diexp_default(z, m, k, F)
    return _diexp_tail(_shift_add(z * m, sh, sg), k, F)


@njit(cache=True, inline="always")
def _diexp_default(z, m, k, F):
    """_diexp_raw for the default shift-add terms (no array reads: the loop vectorizes cleanly)."""
    t = z * m
    return _diexp_tail(t + (t >> np.int64(1)) - (t >> np.int64(4)), k, F)


@njit(cache=True, inline="always")
def _diexp_tail(u, k, F):
    """From ``u = x s log2(e) 2**k``: the integer and fractional parts, the linear fraction, the shift."""
    a = -u if u < 0 else np.int64(0)
    q = a >> k
    r = a & ((np.int64(1) << k) - np.int64(1))
    one = np.int64(1) << F
    if k + 1 >= F:
        d = k + 1 - F
        fr = one - ((r + (np.int64(1) << d) - np.int64(1)) >> d)
    else:
        fr = one - (r << (F - k - 1))
    if q >= 63:
        return np.int64(0)
    return fr >> q


@njit(cache=True, inline="always")
def _diexp_fits(cf, s0, zlo, m, k, sh, sg, F):
    """Whether every DI-Exp register (steps s0..s0+5) holds its values for all z in [zlo, 0],
    by monotonicity (valid for the default shift-add, which is non-decreasing in t)."""
    tlo = zlo * m
    ulo = _shift_add(tlo, sh, sg)
    amax = -ulo if ulo < 0 else np.int64(0)
    rmax = min(amax, (np.int64(1) << k) - np.int64(1))
    one = np.int64(1) << F
    ok = fits(cf, s0, tlo) and fits(cf, s0, 0) and fits(cf, s0 + 1, ulo) and fits(cf, s0 + 1, 0)
    ok = ok and fits(cf, s0 + 2, 0) and fits(cf, s0 + 2, amax >> k) and fits(cf, s0 + 3, 0) and fits(cf, s0 + 3, rmax)
    ok = ok and fits(cf, s0 + 4, one >> 1) and fits(cf, s0 + 4, one) and fits(cf, s0 + 5, 0) and fits(cf, s0 + 5, one)
    return ok


@njit(cache=True, inline="always")
def _fdiv(a, d, inv, mode):
    """round(a / d) for d > 0 (mode as _div_round5), using a float estimate when |a| < 2**52."""
    if a >= 4503599627370496 or a <= -4503599627370496:
        return _div_round5(a, d, mode)
    q = np.int64(np.floor(a * inv))
    r = a - q * d
    while r < 0:
        q -= 1
        r += d
    while r >= d:
        q += 1
        r -= d
    if mode == 2 or r == 0:
        return q
    if mode == 1:
        return q + 1 if a < 0 else q
    t = r - (d - r)
    if t > 0:
        return q + 1
    if t < 0:
        return q
    if mode == 0:
        return q + (q & 1)
    if mode == 3:
        return q + 1
    return q + 1 if a > 0 else q  # half_away


@njit(cache=True, inline="always")
def _fdiv_rne(a, d, inv):
    """round_half_even(a / d) for a >= 0, d > 0, inv = 1.0 / d (float-estimated, then exact;
    plain integer division from 2**52 on)."""
    if a >= 4503599627370496:
        return div_round_mode(a, d, 0)
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


_DIEXP_STEPS = ["mul", "log2e", "q", "r", "frac", "exp"]


def _diexp_widths(F: int) -> dict[str, IntType]:
    return {"mul": I64, "log2e": I64, "q": I32, "r": I64, "frac": IntType(F + 2), "exp": IntType(F + 2)}


def _diexp_ops(ops: OpCounts, regs: RegisterFile, n: int, in_bits: int, nterms: int) -> None:
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops.add("mul", (in_bits, 8), n)
    ops.add("shift", (w("mul"),), n * (nterms - 1)).add("add", (w("log2e"),), n * (nterms - 1))
    ops.add("add", (w("log2e"),), n)  # negate / clamp at 0
    ops.add("shift", (w("q"),), n).add("shift", (w("r"),), n)  # integer part, fraction mask
    ops.add("shift", (w("frac"),), n).add("add", (w("frac"),), 2 * n)  # 1 - f/2 with its rounding
    ops.add("shift", (w("exp"),), n)


# The parallel kernels call their loop body as a separate, non-inlined function, compiled with the options
# explained at ibert._k_iexp_block: numba's parfor passes copy the whole prange body, so a call keeps it
# small and the cold compile fast.
@njit(cache=True, error_model="numpy", _nrt=False)
def _k_diexp_row(i, cf, st, tp, ton, x, m, k, sh, sg, F, mono, out, N):
    """Row i of :func:`_k_diexp` (the body of its parallel loop)."""
    zlo = np.int64(x[i, 0])
    for j in range(1, N):
        zlo = min(zlo, np.int64(x[i, j]))
    if (not ton) and mono and _diexp_fits(cf, 0, zlo, m[i], k[i], sh, sg, F):
        xr = x[i]
        orow = out[i]
        mi = m[i]
        ki = k[i]
        if _is_default_log2e(sh, sg):
            for j in range(N):
                orow[j] = _diexp_default(np.int64(xr[j]), mi, ki, F)
        else:
            for j in range(N):
                orow[j] = _diexp_raw(np.int64(xr[j]), mi, ki, sh, sg, F)
        return
    for j in range(N):
        out[i, j] = _diexp_chain(cf, st, tp, ton, i, j, 0, x[i, j], m[i], k[i], sh, sg, F)


@njit(cache=True, parallel=True)
def _k_diexp(cf, st, tp, ton, x, m, k, sh, sg, F, mono, out):
    R, N = x.shape
    for i in prange(R):
        _k_diexp_row(np.int64(i), cf, st, tp, ton, x, m, k, sh, sg, F, mono, out, N)


def _rows_shape(arr: np.ndarray) -> tuple:
    return arr.shape[:-1] if arr.ndim >= 1 else ()


def di_exp(x: Any, scale: Any, *, out_frac_bits: int = 15, m_bits: int = 8, log2e_shifts: Any = LOG2E_SHIFTS,
           in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
           taps: bool = False, profile: str = "default") -> OpResult:
    """DI-Exp: ``exp(x * s)`` for ``x <= 0`` with a per-row dyadic scale ``s = m / 2**k``.

    Semantics (intsim's construction; see the module table)::

        t   = x * m                                   # real value t / 2**k = x s
        u   = t + (t >> 1) - (t >> 4)                 # x s log2(e), shift-add (1.4375)
        a   = max(-u, 0);  q = a >> k;  r = a mod 2**k          # integer and fractional parts
        out = floor(2**F (1 - r / 2**(k+1))) >> q;  scale_out = 2**-F       (F = out_frac_bits)

    ``x`` must be ``<= 0`` (the operator is applied after a row-maximum subtraction); a
    positive entry raises OperandRangeError. Registers (defaults): ``mul``, ``log2e``, ``r``
    64; ``q`` 32; ``frac`` and ``exp`` ``F + 2`` bits. Accuracy: the linear fraction has a
    max error of about 0.043 (6 % relative) plus the -0.36 % slope of 1.4375 (design note §4.1).

    >>> r = di_exp(np.array([[0, -10, -20]]), 0.1)
    >>> r.values.tolist(), [round(v, 3) for v in r.dequantize()[0].tolist()]
    ([[32768, 12792, 4598]], [1.0, 0.39, 0.14])
    """
    op = "illm.di_exp"
    check_profile(profile, ("default",), op)
    in_t = check_in_type(in_type, op)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 1, 40)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    sh, sg = _log2e_terms(log2e_shifts, op)
    arr = check_input(x, in_t, op, min_ndim=1)
    if arr.size and int(arr.max()) > 0:
        flat = np.flatnonzero(arr.reshape(-1) > 0)
        idx = tuple(int(v) for v in np.unravel_index(int(flat[0]), arr.shape))
        raise OperandRangeError(f"{op}: x must be <= 0 (subtract the row maximum first); {flat.size} positive "
                                f"entries, first at index {idx}: {int(arr[idx])}", count=int(flat.size), index=idx,
                                value=int(arr[idx]))
    m, k = row_dyadic(scale, _rows_shape(arr), m_bits, op)
    _check_k(k, F, op)
    regs = make_registers(op, _diexp_widths(F), widths, overflow)
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = Plan(regs, [(s, "e") for s in _DIEXP_STEPS], R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        _k_diexp(*plan.args(), as_rows(arr), m, k, sh, sg, np.int64(F), _monotone(sh, sg), out)
    tapd = plan.finish(arr.shape, "rows")
    ops = OpCounts()
    if arr.size:
        _diexp_ops(ops, regs, R * N, in_t.bits, len(sh))
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
            m2 = div_round_mode(num << j, den, 0)
        else:
            m2 = div_round_mode(num, den << (-j), 0)
        if m2 >= top:
            j -= 1
            continue
        # try one more bit
        if j + 1 >= 0:
            m3 = div_round_mode(num << (j + 1), den, 0)
        else:
            m3 = div_round_mode(num, den << (-(j + 1)), 0)
        if m3 < top and k + j + 1 <= 62:
            j += 1
            continue
        break
    k2 = k + j
    if k2 < 0:
        m2 = m2 << (-k2)
        k2 = np.int64(0)
    return m2, k2


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_csoftmax_row(i, cf, st, tp, ton, x, m, k, clip_int, in_bits, m_bits, sh, sg, F, mono, tab, zscale_m, zscale_k,
                    out, N, qmax, D):
    """Row i of :func:`_k_csoftmax` (the body of its parallel loop)."""
    mx = np.int64(x[i, 0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, np.int64(x[i, j]))
        mn = min(mn, np.int64(x[i, j]))
    T = clip_int[i]
    rg = min(mx - mn, T)
    if in_bits > 0:
        mz, kz = _dyadic_ratio(m[i] * rg, D, k[i], m_bits)
    else:
        mz, kz = m[i], k[i]
    zscale_m[i] = mz
    zscale_k[i] = kz
    # fast path: range checks by monotonicity, float-assisted exact divisions
    dlo = mn - mx
    clo = max(dlo, -T)
    if in_bits > 0:
        zlo = -div_round_mode(-clo * D, rg, 0) if rg > 0 else np.int64(0)
    else:
        zlo = clo
    ok = (not ton) and mono and fits(cf, 0, dlo) and fits(cf, 0, 0) and fits(cf, 1, clo) and fits(cf, 1, 0)
    ok = ok and fits(cf, 2, rg) and fits(cf, 3, zlo) and fits(cf, 3, 0) and fits(cf, 4, mz)
    ok = ok and _diexp_fits(cf, 5, zlo, mz, kz, sh, sg, F)
    if ok:
        inv = 1.0 / rg if rg > 0 else 0.0
        width = -clo + 1
        acc = np.int64(0)
        if width <= tab.shape[1]:
            # the row's clipped differences take at most `width` values: tabulate exp per value
            tr = tab[i]
            for t in range(width):
                if in_bits > 0:
                    z = -_fdiv_rne(t * D, rg, inv) if rg > 0 else np.int64(0)
                else:
                    z = -t
                tr[t] = _diexp_raw(z, mz, kz, sh, sg, F)
            for j in range(N):
                t = -max(x[i, j] - mx, -T)
                acc += tr[t]
                out[i, j] = t
            ok = fits(cf, 11, 0) and fits(cf, 11, acc) and acc > 0
            ok = ok and fits(cf, 12, 0) and fits(cf, 12, (np.int64(1) << F) * qmax) and fits(cf, 13, 0)
            ok = ok and fits(cf, 13, qmax)
            if ok:
                inv = 1.0 / acc
                for t in range(width):
                    tr[t] = _fdiv_rne(tr[t] * qmax, acc, inv)
                for j in range(N):
                    out[i, j] = tr[out[i, j]]
                return
        else:
            for j in range(N):
                dc = max(x[i, j] - mx, -T)
                if in_bits > 0:
                    z = -_fdiv_rne(-dc * D, rg, inv) if rg > 0 else np.int64(0)
                else:
                    z = dc
                e = _diexp_raw(z, mz, kz, sh, sg, F)
                out[i, j] = e
                acc += e
            ok = fits(cf, 11, 0) and fits(cf, 11, acc) and acc > 0
            ok = ok and fits(cf, 12, 0) and fits(cf, 12, (np.int64(1) << F) * qmax) and fits(cf, 13, 0)
            ok = ok and fits(cf, 13, qmax)
            if ok:
                inv = 1.0 / acc
                for j in range(N):
                    out[i, j] = _fdiv_rne(out[i, j] * qmax, acc, inv)
                return
    # checked path
    rg = reg(cf, st, tp, ton, i, -1, 2, rg)
    if in_bits > 0:
        mz, kz = _dyadic_ratio(m[i] * rg, D, k[i], m_bits)
    mz = reg(cf, st, tp, ton, i, -1, 4, mz)
    zscale_m[i] = mz
    zscale_k[i] = kz
    acc = np.int64(0)
    for j in range(N):
        d = reg(cf, st, tp, ton, i, j, 0, x[i, j] - mx)
        dc = reg(cf, st, tp, ton, i, j, 1, d if d > -T else -T)
        if in_bits > 0:
            z = -div_round_mode(-dc * D, rg, 0) if rg != 0 else np.int64(0)
        else:
            z = dc
        z = reg(cf, st, tp, ton, i, j, 3, z)
        e = _diexp_chain(cf, st, tp, ton, i, j, 5, z, mz, kz, sh, sg, F)
        out[i, j] = e
        acc = add_chk(cf, st, i, j, 11, acc, e)
    tap(tp, ton, i, -1, 11, acc)
    for j in range(N):
        p = mul_reg(cf, st, tp, ton, i, j, 12, out[i, j], qmax)
        if acc == 0:
            o = div0(cf, st, tp, ton, i, j, 13)
        elif acc < 0:
            o = reg(cf, st, tp, ton, i, j, 13, -div_round_mode(p, -acc, 0))
        else:
            o = reg(cf, st, tp, ton, i, j, 13, div_round_mode(p, acc, 0))
        out[i, j] = o


@njit(cache=True, parallel=True)
def _k_csoftmax(cf, st, tp, ton, x, m, k, clip_int, in_bits, m_bits, sh, sg, F, ob, mono, tab, zscale_m, zscale_k,
                out):
    """Steps: x_sub 0, x_clipped 1, range 2 (row), z 3, scale_m 4 (row), DI-Exp chain 5-10,
    sum 11 (row), prod 12, out 13."""
    R, N = x.shape
    qmax = (np.int64(1) << np.int64(ob)) - np.int64(1)
    D = (np.int64(1) << np.int64(in_bits)) - np.int64(1) if in_bits > 0 else np.int64(1)
    for i in prange(R):
        _k_csoftmax_row(np.int64(i), cf, st, tp, ton, x, m, k, clip_int, in_bits, m_bits, sh, sg, F, mono, tab,
                        zscale_m, zscale_k, out, N, qmax, D)


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


def clipped_softmax(x: Any, scale: Any, *, clip: float = 15.0, in_bits: int | None = 8, out_bits: int = 16,
                    out_frac_bits: int = 15, m_bits: int = 8, log2e_shifts: Any = LOG2E_SHIFTS,
                    in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
                    taps: bool = False, profile: str = "default") -> OpResult:
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
    check_profile(profile, ("default",), op)
    in_t = check_in_type(in_type, op)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 1, 40)
    ob = check_int_param(out_bits, "out_bits", op, 1, 31)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    ib = 0 if in_bits is None else check_int_param(in_bits, "in_bits", op, 1, 24)
    sh, sg = _log2e_terms(log2e_shifts, op)
    arr = check_input(x, in_t, op)
    m, k = row_dyadic(scale, _rows_shape(arr), m_bits, op)
    _check_k(k, F, op)
    clip_int = _clip_int(clip, m, k, op)
    steps = [("x_sub", "e"), ("x_clipped", "e"), ("range", "r"), ("z", "e"), ("scale_m", "r"),
             *[(s, "e") for s in _DIEXP_STEPS], ("sum", "r"), ("prod", "e"), ("out", "e")]
    defaults = {"x_sub": I32, "x_clipped": I32, "range": I32, "z": I32, "scale_m": I32, **_diexp_widths(F),
                "sum": I32, "prod": I64, "out": IntType(ob, signed=False)}
    regs = make_registers(op, defaults, widths, overflow)
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = Plan(regs, steps, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    zm = np.zeros(R, dtype=np.int64)
    zk = np.zeros(R, dtype=np.int64)
    if arr.size:
        # per-row tables when a row's clipped differences take fewer values than half its length
        tw = N // 2 if (N >= 64 and not taps) else 0
        tab = np.empty((R if tw else 1, max(tw, 1)), dtype=np.int64)
        _k_csoftmax(*plan.args(), as_rows(arr), m, k, clip_int, np.int64(ib), np.int64(m_bits), sh, sg, np.int64(F),
                    np.int64(ob), _monotone(sh, sg), tab if tw else tab[:, :0], zm, zk, out)
    tapd = plan.finish(arr.shape, "rows")
    if taps:
        tapd["z_scale_m"] = zm.reshape(arr.shape[:-1])
        tapd["z_scale_k"] = zk.reshape(arr.shape[:-1])
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops = OpCounts()
    if arr.size:
        ne = R * N
        ops.add("compare", (in_t.bits,), 2 * R * (N - 1))  # row max and min
        ops.add("add", (w("x_sub"),), ne).add("compare", (w("x_clipped"),), ne)
        ops.add("add", (w("range"),), R).add("compare", (w("range"),), R)
        if ib:
            ops.add("mul", (w("x_clipped"), ib), ne).add("div", (w("range"),), ne)  # requantize z
            ops.add("mul", (m_bits, w("range")), R).add("div", (ib,), R)  # the new scale (one division)
        _diexp_ops(ops, regs, ne, w("z"), len(sh))
        ops.add("add", (w("sum"),), R * (N - 1))
        ops.add("mul", (w("exp"), ob), ne).add("div", (w("sum"),), ne)
    return OpResult(values=out.reshape(arr.shape), scale=1.0 / ((1 << ob) - 1), ops=ops, registers=regs, taps=tapd)


# ---------------------------------------------------------------------------------------------
# DI-Norm
# ---------------------------------------------------------------------------------------------
_NORM_MODES = ("rms", "layer")


def di_norm(x: Any, scale: Any, gamma: Any = None, beta: Any = None, *, mode: str = "rms",
            out_frac_bits: int = 16, eps: float = 0.0, in_type: IntType | str = I16, widths: dict | None = None,
            overflow: str = "raise", taps: bool = False, profile: str = "default") -> OpResult:
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
    check_profile(profile, ("default",), op)
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
    regs = make_registers(op, defaults, widths, overflow)
    return run_layernorm(op, arr, regs, taps, in_t, mean_mode=MEAN_RNE if mode == "layer" else MEAN_NONE,
                          shift=0, sqrt_mode=SQ_NORM, iv_steps=0, num_bits=F + 16, norm_top=62, prod_shift=16,
                          prod_round=2, eps_int=eps_arr, bias=bias, out_scale=out_scale, div_d=True)


def _rne_fraction(q: Fraction) -> int:
    fl = q.numerator // q.denominator
    rem = q - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


def rmsnorm(x: Any, scale: Any, gamma: Any = None, **kw: Any) -> OpResult:
    """DI-Norm in RMSNorm mode: :func:`di_norm` with ``mode="rms"``.

    >>> rmsnorm(np.array([[1, 1, 1, 1]]), 0.5).values.tolist()
    [[65536, 65536, 65536, 65536]]
    """
    return di_norm(x, scale, gamma, mode="rms", **kw)


def layernorm(x: Any, scale: Any, gamma: Any = None, beta: Any = None, **kw: Any) -> OpResult:
    """DI-Norm in LayerNorm mode: :func:`di_norm` with ``mode="layer"``.

    >>> layernorm(np.array([[1, 2, 3, 4]]), 0.5).values.tolist()
    [[-53510, 0, 53510, 107020]]
    """
    return di_norm(x, scale, gamma, beta, mode="layer", **kw)


# ---------------------------------------------------------------------------------------------
# DI-SwiGLU
# ---------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", _nrt=False)
def _k_swiglu_row(i, cf, st, tp, ton, g, u, m, k, sh, sg, F, Fs, mono, tab, out, N, one):
    """Row i of :func:`_k_swiglu` (the body of its parallel loop)."""
    glo = np.int64(g[i, 0])
    ghi = glo
    umax = np.int64(0)
    for j in range(N):
        glo = min(glo, np.int64(g[i, j]))
        ghi = max(ghi, np.int64(g[i, j]))
        umax = max(umax, abs(np.int64(u[i, j])))
    amax = max(-glo, ghi)
    smax = np.int64(1) << Fs
    slo = min(glo * smax, np.int64(0))
    shi = max(ghi * smax, np.int64(0))
    omax = max(-slo, shi) * umax
    ok = (not ton) and mono and fits(cf, 0, 0) and fits(cf, 0, amax) and _diexp_fits(cf, 1, -amax, m[i], k[i], sh,
                                                                                      sg, F)
    ok = ok and fits(cf, 7, one) and fits(cf, 7, 2 * one) and fits(cf, 8, 0) and fits(cf, 8, one << Fs)
    ok = ok and fits(cf, 9, 0) and fits(cf, 9, smax) and fits(cf, 10, slo) and fits(cf, 10, shi)
    ok = ok and fits(cf, 11, -omax) and fits(cf, 11, omax)
    if ok:
        width = ghi - glo + 1
        if width <= tab.shape[1]:
            # narrow inputs: tabulate the sigmoid over the row's gate values
            tr = tab[i]
            for t in range(width):
                gv = glo + t
                e = _diexp_raw(-abs(gv), m[i], k[i], sh, sg, F)
                den = one + e
                tr[t] = _fdiv((one if gv >= 0 else e) << Fs, den, 1.0 / den, 0)
            for j in range(N):
                gv = np.int64(g[i, j])
                out[i, j] = gv * tr[gv - glo] * u[i, j]
            return
        for j in range(N):
            gv = np.int64(g[i, j])
            e = _diexp_raw(-abs(gv), m[i], k[i], sh, sg, F)
            den = one + e
            s = _fdiv((one if gv >= 0 else e) << Fs, den, 1.0 / den, 0)
            out[i, j] = gv * s * u[i, j]
        return
    for j in range(N):
        gv = np.int64(g[i, j])
        a = reg(cf, st, tp, ton, i, j, 0, -gv if gv < 0 else gv)
        e = _diexp_chain(cf, st, tp, ton, i, j, 1, -a, m[i], k[i], sh, sg, F)
        den = reg(cf, st, tp, ton, i, j, 7, one + e)
        num = shl_reg(cf, st, tp, ton, i, j, 8, one if gv >= 0 else e, Fs)
        if den == 0:
            s = div0(cf, st, tp, ton, i, j, 9)
        else:
            s = reg(cf, st, tp, ton, i, j, 9, div_round_mode(num, den, 0))
        t = mul_reg(cf, st, tp, ton, i, j, 10, gv, s)
        out[i, j] = mul_reg(cf, st, tp, ton, i, j, 11, t, u[i, j])


@njit(cache=True, parallel=True)
def _k_swiglu(cf, st, tp, ton, g, u, m, k, sh, sg, F, Fs, mono, tab, out):
    """Steps: abs 0, DI-Exp chain 1-6, denom 7, num 8, sig 9, silu 10, out 11."""
    R, N = g.shape
    one = np.int64(1) << F
    for i in prange(R):
        _k_swiglu_row(np.int64(i), cf, st, tp, ton, g, u, m, k, sh, sg, F, Fs, mono, tab, out, N, one)


def swiglu(gate: Any, scale: Any, up: Any, up_scale: Any, *, sig_bits: int = 15, out_frac_bits: int = 15,
           m_bits: int = 8, log2e_shifts: Any = LOG2E_SHIFTS, in_type: IntType | str = I8,
           widths: dict | None = None, overflow: str = "raise", taps: bool = False,
           profile: str = "default") -> OpResult:
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
    check_profile(profile, ("default",), op)
    in_t = check_in_type(in_type, op, max_bits=16)
    F = check_int_param(out_frac_bits, "out_frac_bits", op, 1, 30)
    Fs = check_int_param(sig_bits, "sig_bits", op, 1, 30)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    sh, sg = _log2e_terms(log2e_shifts, op)
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
    steps = [("abs", "e"), *[(s, "e") for s in _DIEXP_STEPS], ("denom", "e"), ("num", "e"), ("sig", "e"),
             ("silu", "e"), ("out", "e")]
    defaults = {"abs": I32, **_diexp_widths(F), "denom": IntType(F + 3), "num": I64,
                "sig": IntType(Fs + 1, signed=False), "silu": I32, "out": I32}
    regs = make_registers(op, defaults, widths, overflow)
    R = int(np.prod(rows)) if len(rows) else 1
    N = ga.shape[-1]
    plan = Plan(regs, steps, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if ga.size:
        tw = (1 << in_t.bits) if (in_t.bits <= 10 and 2 * (1 << in_t.bits) <= N and not taps) else 0
        tab = np.empty((R if tw else 1, max(tw, 1)), dtype=np.int64)
        _k_swiglu(*plan.args(), as_rows(ga), as_rows(ua), m, k, sh, sg, np.int64(F), np.int64(Fs), _monotone(sh, sg),
                  tab if tw else tab[:, :0], out)
    tapd = plan.finish(ga.shape, "rows")
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops = OpCounts()
    if ga.size:
        ne = R * N
        ops.add("compare", (in_t.bits,), ne).add("add", (w("abs"),), ne)
        _diexp_ops(ops, regs, ne, in_t.bits, len(sh))
        ops.add("add", (w("denom"),), ne).add("shift", (w("num"),), ne).add("div", (w("denom"),), ne)
        ops.add("mul", (in_t.bits, w("sig")), ne).add("mul", (w("silu"), in_t.bits), ne)
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


_ROUND_CODE = {"half_even": 0, "trunc": 1, "floor": 2, "half_up": 3, "half_away": 4}


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_dynq_row(i, cf, st, tp, ton, x, bits, symmetric, rmode, rng_out, lo_out, out, N):
    """Row i of :func:`_k_dynq` (the body of its parallel loop)."""
    mx = np.int64(x[i, 0])
    mn = mx
    for j in range(1, N):
        mx = max(mx, np.int64(x[i, j]))
        mn = min(mn, np.int64(x[i, j]))
    if symmetric:
        rg = max(-mn, mn, -mx, mx)
        qm = (np.int64(1) << np.int64(bits - 1)) - np.int64(1)
        base = np.int64(0)
    else:
        rg = mx - mn
        qm = (np.int64(1) << np.int64(bits)) - np.int64(1)
        base = mn
    rgd = rg if rg != 0 else np.int64(1)
    ok = (not ton) and fits(cf, 0, mn) and fits(cf, 1, mx) and fits(cf, 2, rg)
    ok = ok and fits(cf, 3, mn - base) and fits(cf, 3, mx - base)
    ok = ok and fits(cf, 4, (mn - base) * qm) and fits(cf, 4, (mx - base) * qm)
    ok = ok and fits(cf, 5, _div_round5((mn - base) * qm, rgd, rmode))
    ok = ok and fits(cf, 5, _div_round5((mx - base) * qm, rgd, rmode))
    rng_out[i] = rgd
    lo_out[i] = base
    if ok:
        inv = 1.0 / rgd
        if rmode == 0 and max(abs(mn - base), abs(mx - base)) * qm < 4503599627370496:
            for j in range(N):
                a = (x[i, j] - base) * qm
                out[i, j] = _fdiv_rne(a, rgd, inv) if a >= 0 else -_fdiv_rne(-a, rgd, inv)
        else:
            for j in range(N):
                out[i, j] = _fdiv((x[i, j] - base) * qm, rgd, inv, rmode)
        return
    mn = reg(cf, st, tp, ton, i, -1, 0, mn)
    mx = reg(cf, st, tp, ton, i, -1, 1, mx)
    if symmetric:
        rg = reg(cf, st, tp, ton, i, -1, 2, max(-mn, mn, -mx, mx))
    else:
        rg = reg(cf, st, tp, ton, i, -1, 2, mx - mn)
        base = mn
    if rg == 0:
        rg = np.int64(1)
    rng_out[i] = rg
    lo_out[i] = base
    for j in range(N):
        sft = reg(cf, st, tp, ton, i, j, 3, x[i, j] - base)
        p = mul_reg(cf, st, tp, ton, i, j, 4, sft, qm)
        out[i, j] = reg(cf, st, tp, ton, i, j, 5, _div_round5(p, rg, rmode))


@njit(cache=True, parallel=True)
def _k_dynq(cf, st, tp, ton, x, bits, symmetric, rmode, rng_out, lo_out, out):
    """Steps: p_min 0, p_max 1, range 2, shifted 3, prod 4, out 5."""
    R, N = x.shape
    for i in prange(R):
        _k_dynq_row(np.int64(i), cf, st, tp, ton, x, bits, symmetric, rmode, rng_out, lo_out, out, N)


def dynamic_requant(p: Any, scale: Any, *, bits: int = 8, symmetric: bool = False, rounding: str = "half_even",
                    m_bits: int = 8, in_type: IntType | str = I32, widths: dict | None = None,
                    overflow: str = "raise", taps: bool = False, profile: str = "default") -> OpResult:
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
    check_profile(profile, ("default",), op)
    in_t = check_in_type(in_type, op)
    bits = check_int_param(bits, "bits", op, 2, 24)
    m_bits = check_int_param(m_bits, "m_bits", op, 2, 30)
    rmode = rounding_mode(rounding)
    if rmode not in _ROUND_CODE:
        raise ConfigError(f"{op}: rounding {rounding!r} not supported here; valid: {', '.join(_ROUND_CODE)}")
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
    steps = [("p_min", "r"), ("p_max", "r"), ("range", "r"), ("shifted", "e"), ("prod", "e"), ("out", "e")]
    defaults = {"p_min": I32, "p_max": I32, "range": IntType(33), "shifted": IntType(33), "prod": I64,
                "out": IntType(bits, signed=bool(symmetric))}
    regs = make_registers(op, defaults, widths, overflow)
    N = arr.shape[-1]
    plan = Plan(regs, steps, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    rg = np.ones(R, dtype=np.int64)
    lo = np.zeros(R, dtype=np.int64)
    if arr.size:
        _k_dynq(*plan.args(), as_rows(arr), np.int64(bits), bool(symmetric), np.int64(_ROUND_CODE[rmode]), rg, lo, out)
    tapd = plan.finish(arr.shape, "rows")
    qm = (1 << (bits - 1)) - 1 if symmetric else (1 << bits) - 1
    s_out = s_in * rg.astype(np.float64) / qm
    if taps:
        dy = [Dyadic.from_float(float(v), bits=m_bits, rounding="half_even", max_shift=62) for v in s_out]
        tapd["scale_m"] = np.array([d.m for d in dy], dtype=np.int64).reshape(rows)
        tapd["scale_k"] = np.array([d.k for d in dy], dtype=np.int64).reshape(rows)
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops = OpCounts()
    if arr.size:
        ne = R * N
        ops.add("compare", (in_t.bits,), 2 * R * (N - 1))
        ops.add("add", (w("range"),), R)
        if not symmetric:
            ops.add("add", (w("shifted"),), ne)
        ops.add("mul", (w("shifted"), bits), ne).add("div", (w("range"),), ne)
    shape_s = rows + (1,)
    values = out.reshape(arr.shape)
    scale_out = s_out.reshape(shape_s)
    if symmetric:
        return OpResult(values=values, scale=scale_out, ops=ops, registers=regs, taps=tapd)
    return AffineOpResult(values=values, scale=scale_out, ops=ops, registers=regs, taps=tapd,
                          row_range=rg.reshape(shape_s),
                          offset=lo.reshape(shape_s), offset_scale=s_in.reshape(shape_s))


OPERATORS: dict[str, Callable[..., OpResult]] = {
    "di_exp": di_exp,
    "clipped_softmax": clipped_softmax,
    "rmsnorm": rmsnorm,
    "layernorm": layernorm,
    "swiglu": swiglu,
    "dynamic_requant": dynamic_requant,
}
PROFILES: dict[str, tuple[str, ...]] = {name: ("default",) for name in OPERATORS}
#: the positional inputs of each operator (all take ``profile=`` and keyword options)
INPUTS: dict[str, tuple[str, ...]] = {name: ("x", "scale") for name in OPERATORS}
INPUTS["swiglu"] = ("gate", "scale", "up", "up_scale")
_ = (I64,)
