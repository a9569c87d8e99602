"""I-BERT integer-only operators (Kim et al., ICML 2021): i-exp, integer softmax,
i-GELU and integer LayerNorm, bit-exact to the published algorithm, with corrected
variants where the published one has a flaw that hardware should not copy.

Every operator takes an integer array and the real value of one of its steps
(``scale``), computes along the last axis where it reduces (softmax, LayerNorm),
and returns an :class:`~intsim.regs.opresult.OpResult`: int64 outputs, the output
scale, exact op counts, the :class:`~intsim.regs.registers.RegisterFile` of the call
and, with ``taps=True``, every intermediate register as an int64 array.

Conventions shared by :mod:`intsim.ops.ibert`, :mod:`intsim.ops.ivit` and :mod:`intsim.ops.illm`
------------------------------------------------------------------------------------

* **Inputs.** ``x`` is an integer array (any integer dtype; floats raise
  :class:`~intsim.core.errors.DTypeError`) whose values must lie in ``in_type`` (else
  :class:`~intsim.core.errors.OperandRangeError`); ``in_type`` is at most 32 bits.
  ``scale`` must be a finite positive real (else :class:`~intsim.core.errors.ConfigError`).
* **Constants.** Every constant the published code derives from a float scale
  (``floor(-0.6931 / S)``, ``floor(b / S)``...) is derived here in float64 from the
  Python float ``scale``, with the same floor. The PyTorch references hold scales in
  float32 tensors, which can move a constant by one at an exact boundary; that
  artefact is not reproduced. All integer arithmetic is exact (int64, 128 bits where
  a product needs it); the references compute "integers" in float32/float64 and are
  exact only below 2**24 / 2**53.
* **Registers.** Each operator names its intermediate registers (its *steps*) and
  declares a default width for each; ``widths={step: bits or IntType}`` overrides them.
  Every intermediate value passes through its register under the ``overflow`` policy
  of :mod:`intsim.regs.registers` (``raise`` / ``wrap`` / ``saturate`` / ``record``).
  Accumulators are checked after every add (a saturating accumulator saturates per
  add). A value that does not even fit int64 is handled exactly under ``wrap`` and
  ``saturate``, raises under ``raise``, and raises under ``record`` too (it cannot be
  recorded exactly). A division by zero always raises
  :class:`~intsim.core.errors.RegisterOverflow` naming the step. Events name the first
  offending element by its index in ``x`` (or the row index for a per-row register).
* **Taps.** ``taps=False`` (the default) keeps the call fast; ``taps=True`` returns
  every register's values: element registers shaped like ``x``, per-row registers
  shaped ``x.shape[:-1]``.
* **Op counts.** Counts of the published algorithm's operations (not of how the
  emulator computes them), per call; a ``div`` is keyed by its divisor's width, a
  ``mul`` by its operands' widths, everything else by its result register's width.
* **Variants.** ``variant="published"`` reproduces the published code; ``"corrected"``
  is this module's fixed variant (documented per operator). (``profile=`` is the old,
  deprecated name of ``variant=``.)
* **Kernels.** Each operator's register chain is a :class:`~intsim.regs.chain.Chain` (its
  steps, default widths and published operations, from which the op counts come) and one
  numba function with a ``rec`` flag. A block or row runs unrecorded first and
  again recorded only where a register would not hold a value (or taps are on).

Scale conventions for an integer-only Transformer (e.g. MiniLM, 384 hidden):
softmax takes the int32 attention scores with their scale (``S_q * S_k / sqrt(d)``)
and returns probabilities at scale ``2**-out_bit``; i-GELU takes the int32 GEMM
output at its accumulator scale (``S_x * S_w``, around 1e-3 or finer) and returns
int32-range values at a *negative* scale (published) or a positive one (corrected);
LayerNorm takes the residual sum (22-bit in I-BERT) and returns ``|y| <= 2**30`` at
``sqrt(D) / 2**30 * gamma`` per channel (``gamma`` folded into the scale, ``beta``
added as an integer bias), for the next requantization to absorb.

>>> import numpy as np
>>> from intsim import ibert
>>> r = ibert.gelu(np.array([-3000, -1000, 0, 1000, 3000]), 0.001)
>>> r.values.tolist(), round(r.scale, 12)
([3000, 139000, 0, -708000, -2538000], -1.182947e-06)
>>> p = ibert.softmax(np.array([[10, 20, 30, 40, 50]]), 0.1)
>>> p.values.tolist(), p.scale
([[3, 8, 22, 60, 162]], 0.00390625)
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
from numba import njit, prange

from ..core.deprecation import renamed_keyword
from ..core.dyadic import check_scale, ibert_frexp, ibert_scale_ratio
from ..core.errors import AccuracyWarning, ConfigError, ShapeError
from ..core.inttype import IntType
from ..regs.chain import Chain, Cost, Step
from ..regs.opresult import OpResult
from ..regs.prims import (
    bitlen64,
    fits,
    lut_get,
    mul_shr_rne,
    mul_step,
    shl_step,
    step,
    tap,
    wide,
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
from .layernorm_chain import (
    LN_CHAIN,
    MEAN_RNE,
    SQ_FLOAT,
    SQ_NORM,
    acc_end,
    acc_range,
    acc_start,
    acc_step,
    chain_op_counts,
    check_float_params,
    ln_affine,
    mulv_step,
    run_layernorm,
)
from .opspec import OpSpec

__all__ = [
    "i_exp", "softmax", "gelu", "layernorm", "fixedpoint_mul", "quantize", "quant_scale",
    "layernorm_shift", "exp_constants", "gelu_constants", "softmax_requant",
    "EXP_X0", "EXP_N", "EXP_COEF", "GELU_K", "GELU_N", "GELU_COEF",
    "OPS",
]

# ---------------------------------------------------------------------------------------------
# published constants (fairseq/quantization/utils/quant_modules.py of kssteven418/I-BERT)
# ---------------------------------------------------------------------------------------------
EXP_X0 = -0.6931  #: -ln 2 as written in the code
EXP_N = 30  #: "sufficiently large integer": caps z at 30 and scales exp by 2**30
EXP_COEF = (0.35815147, 0.96963238, 1.0)  #: a x**2 + b x + c on (-ln2, 0]
GELU_K = 1.4142  #: sqrt(2) as written
GELU_N = 14  #: the ">> 14" that keeps the erf polynomial small
GELU_COEF = (-0.2888, -1.769, 1.0)  #: a (x + b)**2 + c, with c then divided by a
SOFTMAX_MAX_BIT = 32  #: factor = floor(2**32 / sum)
LN_MAX_BIT = 32  #: the variance register of IntLayerNorm (overflow check at 2**32)

I8, I16, I32, I64 = IntType(8), IntType(16), IntType(32), IntType(64)
U32 = IntType(32, signed=False)
I22 = IntType(22)  #: I-BERT's LayerNorm input (the 22-bit residual QuantAct)


# =============================================================================================
# I-BERT exponential chain
# =============================================================================================
def exp_constants(scale: float) -> dict[str, Any]:
    """The integer constants I-BERT's ``int_exp`` derives from the input scale ``S``.

    ``x0 = floor(-0.6931 / S)``, ``b_int = floor((b/a) / S)``, ``c_int = floor((c/a) / S**2)``
    with ``(a, b, c) = EXP_COEF``, and the output scale ``S_exp = a * S**2 / 2**30``.

    >>> exp_constants(0.1)["x0"], exp_constants(0.1)["b_int"], exp_constants(0.1)["c_int"]
    (-7, 27, 279)
    """
    S = float(scale)
    a, b, c = EXP_COEF
    b_over_a, c_over_a = b / a, c / a
    x0 = math.floor(EXP_X0 / S)
    b_int = math.floor(b_over_a / S)
    c_int = math.floor(c_over_a / S ** 2)
    return {"x0": int(x0), "n": EXP_N, "b_int": int(b_int), "c_int": int(c_int),
            "scale_out": a * S ** 2 / 2 ** EXP_N}


def _exp_params(S: float, op: str) -> dict[str, Any]:
    k = exp_constants(S)
    # the largest magnitudes of the chain on its clamped domain [n*x0, 0] (exact Python ints)
    x0, n, b_int, c_int = k["x0"], k["n"], k["b_int"], k["c_int"]
    peak = max(abs(n * x0), abs(x0 * x0 + b_int * x0) + abs(c_int), abs(b_int) + abs(x0)) * (1 << n)
    if peak > INT64_MAX or abs(c_int) << n > INT64_MAX:
        raise ConfigError(f"{op}: scale {S!r} is too small: the I-BERT exponent would exceed 64 bits "
                          f"(c_int = {c_int}, times 2**{n}); intsim emulates it exactly only within int64")
    return k


def softmax_requant(scale: float, exp_range: float = 1.0) -> tuple[int, int, float]:
    """The 16-bit requantization of I-BERT's softmax: ``(m, e, S16)``.

    ``S16 = float32(exp_range) / 32767`` in float32 (``QuantAct(16)`` with calibrated range
    ``[0, exp_range]``), and ``(m, e) = ibert_frexp(S_exp / float64(S16))`` (§2.1 of the design
    note: ``m`` rounded half away from zero to 31 bits, ``e = 31 - exponent``). The step then
    computes ``clamp(round_half_even(exp_int * m / 2**e), -32768, 32767)``.

    >>> softmax_requant(0.1)[:2], softmax_requant(0.01)[:2]
    ((1968898443, 54), (1260095003, 60))
    """
    s16 = float(np.float32(np.float32(exp_range) / np.float32(32767)))
    s_exp = exp_constants(scale)["scale_out"]
    m, e = ibert_frexp(ibert_scale_ratio(s_exp, s16))
    return int(m), int(e), s16


# The exponent chain of i_exp and softmax, written once: steps, default widths and the published
# operations per element (the requantization to 16 bits, EXP16, is softmax's).
EXP_CHAIN = Chain("ibert.i_exp", [
    Step("x_clamped", "e", I32, (Cost("compare", ("x_clamped",)),)),
    Step("q", "e", I32, (Cost("div", ("x_clamped",)),)),  # divisor x0 held at the input width
    Step("x0q", "e", I32, (Cost("mul", ("x_clamped", "q")),)),
    Step("r", "e", I32, (Cost("add", ("r",)),)),
    Step("poly_sum", "e", I32, (Cost("add", ("poly_sum",)),)),
    Step("poly_mul", "e", I64, (Cost("mul", ("r", "poly_sum")),)),
    Step("poly", "e", I32, (Cost("add", ("poly",)),)),
    # the shift amount n - q, the shift, max(., 0)
    Step("exp", "e", I64, (Cost("add", ("q",)), Cost("shift", ("exp",)), Cost("compare", ("exp",)))),
])
EXP16 = Chain("ibert.softmax", [
    # the 96-bit product, its rounding shift, the int16 clamp
    Step("exp16", "e", I16, (Cost("mul", ("exp", 32)), Cost("shift", ("exp+32",)), Cost("compare", ("exp16",), 2))),
])
E_CLAMP, E_Q, E_X0Q, E_R, E_PSUM, E_PMUL, E_POLY, E_EXP = range(len(EXP_CHAIN))  #: from the chain's first step
E_EXP16 = len(EXP_CHAIN)
IE_EXP = EXP_CHAIN.index["x_clamped"]  #: where the exponent chain starts in i_exp's (it is i_exp's chain)
#: the kernels' parameter vector (computed once per call from the scale); softmax's continue it
EP_X0, EP_N, EP_B_INT, EP_C_INT, EP_RQ_M, EP_RQ_E, EP_NX0 = range(7)


def _exp_kp(k: dict, rq: tuple[int, int], *extra: int) -> np.ndarray:
    return np.array([k["x0"], k["n"], k["b_int"], k["c_int"], rq[0], rq[1], k["n"] * k["x0"], *extra], dtype=np.int64)


@njit(cache=True, forceinline=True)
def _exp_chain(cf, st, tp, ton, i, j, s0, v, kp, with16, rec, ok):
    """The exponent of a clamped input ``v``: the steps from ``q`` on of EXP_CHAIN (and EXP16 when
    ``with16``), the chain starting at step ``s0`` of the operator's. Returns ``(last register, ok)``."""
    x0, n = kp[EP_X0], kp[EP_N]
    q, ok = step(cf, st, tp, ton, i, j, s0 + E_Q, v // x0, rec, ok)
    p, ok = mul_step(cf, st, tp, ton, i, j, s0 + E_X0Q, x0, q, rec, ok)
    r, ok = step(cf, st, tp, ton, i, j, s0 + E_R, v - p, rec, ok)
    t, ok = step(cf, st, tp, ton, i, j, s0 + E_PSUM, r + kp[EP_B_INT], rec, ok)
    t, ok = mul_step(cf, st, tp, ton, i, j, s0 + E_PMUL, r, t, rec, ok)
    t, ok = step(cf, st, tp, ton, i, j, s0 + E_POLY, t + kp[EP_C_INT], rec, ok)
    # exp = max(floor(t * 2**(n - q)), 0)
    if t <= 0:
        e, ok = step(cf, st, tp, ton, i, j, s0 + E_EXP, np.int64(0), rec, ok)
    else:
        e, ok = shl_step(cf, st, tp, ton, i, j, s0 + E_EXP, t, n - q, rec, ok)
    if not with16:
        return e, ok
    m = kp[EP_RQ_M]
    y, big = mul_shr_rne(e, m, kp[EP_RQ_E])
    if big:
        y = np.int64(32767) if (e >= 0) == (m >= 0) else np.int64(-32768)
    else:
        y = min(max(y, np.int64(-32768)), np.int64(32767))
    return step(cf, st, tp, ton, i, j, s0 + E_EXP16, y, rec, ok)


@njit(cache=True, forceinline=True)
def _exp_clamp(cf, st, tp, ton, i, j, s0, d, kp, rec, ok):
    """Step x_clamped of the exponent chain starting at step ``s0``: ``max(d, n x0)``."""
    return step(cf, st, tp, ton, i, j, s0 + E_CLAMP, max(d, kp[EP_NX0]), rec, ok)


@njit(cache=True, forceinline=True)
def _exp_value(cf, st, tp, ton, i, j, s0, v, kp, lfin, lval, lev, lbad, llo, ls0, with16, rec, ok):
    """The exponent of a clamped input ``v``: from the table (a :class:`Lut` of :func:`_exp_chain`)
    when it holds the entry, else from the chain. Returns ``(value, ok)``."""
    if rec:
        e, found = lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v)
        if found:
            return e, ok
    else:
        k = v - llo
        if k >= 0 and k < lfin.shape[0]:
            return lfin[k], ok and not lbad[k]
    return _exp_chain(cf, st, tp, ton, i, j, s0, v, kp, with16, rec, ok)


@njit(cache=True)
def _k_exp_lut(cf, st, tp, lo, s0, kp, with16, out):
    for i in range(out.shape[0]):
        out[i] = _exp_chain(cf, st, tp, True, i, 0, s0, lo + i, kp, with16, True, True)[0]


def _lut_exp(plan: Plan, s0: int, kp: np.ndarray, with16: bool) -> tuple:
    """The table of the exponent chain (starting at step ``s0``) over its clamped domain [n x0, 0]."""
    lo = int(kp[EP_NX0])
    size = -lo + 1
    s1 = s0 + (E_EXP16 if with16 else E_EXP) + 1
    if size > LUT_MAX:
        return no_lut(s1 - s0 - E_Q)

    def fill(cf, st, tp, out):
        _k_exp_lut(cf, st, tp, np.int64(lo), np.int64(s0), kp, with16, out)
    return cached_lut(("ibert.exp", kp.tobytes(), bool(with16)), plan, s0 + E_Q, s1, lo, size, fill)


# Every parallel kernel of this module (and of ivit, illm, isqrt) is a thin `for i in prange(...)` loop that
# calls a separate, non-inlined @njit function holding the loop body (here _k_iexp_block). numba's parfor
# passes copy and rewrite the whole body of a prange loop several times; with the register helpers inlined
# into it, a cold compile took about 90 s for the LayerNorm kernel alone. A call keeps the loop body small.
# The body functions use error_model="numpy", the model numba compiles a prange body with (an integer
# division behaves as it did inside the loop), and no reference counting (_nrt=False, as some of numba's own
# hot helpers; they allocate nothing): the refcount updates on the array arguments that the inlined helpers
# leave in the inner loops made the element-wise kernels several times slower. The index is passed as
# np.int64(i): inside numba's gufunc the prange index is unsigned, and a bare i would compile the body a
# second time, for uint64.
@njit(cache=True, error_model="numpy", _nrt=False)
def _k_iexp_block(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, B, size, usable):
    """Block i of :func:`_k_iexp` (the body of its parallel loop): with ``usable``, the table over
    the block (done when no input is positive); then the chain unrecorded, and again recorded
    when a register overflowed (or taps are on)."""
    p0 = i * B
    p1 = min(p0 + B, size)
    if usable:
        xs = x[p0:p1]  # slices indexed from 0: no negative-index wrap, so LLVM vectorizes the loop
        os = out[p0:p1]
        nx0 = kp[EP_NX0]
        hi = np.int64(xs[0])
        for j in range(xs.shape[0]):
            v = np.int64(xs[j])
            hi = max(hi, v)
            os[j] = lfin[min(max(v, nx0), np.int64(0)) - llo]
        if hi <= 0:
            return
    good = not ton
    if good:
        for j in range(p1 - p0):
            v, ok = _exp_clamp(cf, st, tp, ton, i, j, IE_EXP, np.int64(x[p0 + j]), kp, False, True)
            e, ok = _exp_value(cf, st, tp, ton, i, j, IE_EXP, v, kp, lfin, lval, lev, lbad, llo, ls0, False, False, ok)
            out[p0 + j] = e
            good &= ok
    if not good:
        for j in range(p1 - p0):
            v, _ = _exp_clamp(cf, st, tp, ton, i, j, IE_EXP, np.int64(x[p0 + j]), kp, True, True)
            out[p0 + j] = _exp_value(cf, st, tp, ton, i, j, IE_EXP, v, kp, lfin, lval, lev, lbad, llo, ls0, False,
                                     True, True)[0]


@njit(cache=True, parallel=True)
def _k_iexp(cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, B):
    size = x.shape[0]
    nx0 = kp[EP_NX0]
    nl = lfin.shape[0]
    # the table alone: x <= 0 keeps x_clamped in [n x0, 0], the table's domain; usable when that
    # register holds the whole domain and no table entry had an event
    s = IE_EXP + E_CLAMP
    usable = (not ton) and nl > 0 and fits(cf, s, nx0) and fits(cf, s, 0) and llo == nx0 and nl == 1 - nx0
    if usable:
        for t in range(nl):
            if lbad[t]:
                usable = False
    for i in prange(st.shape[0]):
        _k_iexp_block(np.int64(i), cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, B, size, usable)


@renamed_keyword("profile", "variant")
def i_exp(x: Any, scale: float, *, variant: str = "published", in_type: IntType | str = I32,
          widths: dict | None = None, overflow: str = "raise", taps: bool = False) -> OpResult:
    """I-BERT's integer exponential ``int_exp``, element-wise.

    Semantics (``S = scale``; constants from :func:`exp_constants`)::

        x  = max(x, 30 * x0)                      # x0 = floor(-0.6931 / S)
        q  = floor(x / x0);  r = x - x0 * q       # r in (x0, 0]
        z  = r * (r + b_int) + c_int              # 0.35815147 (p + 2.707)**2 + ..., scale a*S**2
        out = max(floor(z * 2**(30 - q)), 0);  scale_out = 0.35815147 * S**2 / 2**30

    The published code applies it to ``x - max(x) <= 0``; positive ``x`` are accepted
    (``q < 0``) and overflow the ``exp`` register quickly. Registers (defaults):
    ``x_clamped``, ``q``, ``x0q`` (``x0 * q``), ``r``, ``poly_sum`` (``r + b_int``),
    ``poly`` at 32 bits; ``poly_mul`` (``r * (r + b_int)``) and ``exp`` at 64 bits (``exp``
    needs about 39 bits at S = 0.1, 46 at S = 0.01). A scale below about 1.8e-5 makes
    ``exp`` exceed 64 bits and raises ConfigError.

    >>> import numpy as np
    >>> r = i_exp(np.array([0, -7, -14]), 0.1)
    >>> r.values.tolist(), [round(float(v), 4) for v in r.dequantize()]
    ([299573968896, 149786984448, 74893492224], [0.9992, 0.4996, 0.2498])
    """
    op = "ibert.i_exp"
    check_variant(variant, ("published",), op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    k = _exp_params(S, op)
    arr = check_input(x, in_t, op, min_ndim=0)
    regs = EXP_CHAIN.registers(widths, overflow)
    flat, nb, B = as_blocks(arr)
    plan = EXP_CHAIN.plan(regs, nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        kp = _exp_kp(k, (0, 1))
        lut = _lut_exp(plan, IE_EXP, kp, False) if flat.size >= 1024 else no_lut(E_EXP + 1 - E_Q)
        _k_iexp(*plan.args(), flat, kp, *lut, out, np.int64(B))
    tapd = plan.finish(arr.shape, "flat")
    ops = chain_op_counts(EXP_CHAIN, regs, in_bits=in_t.bits, elements=int(flat.size), rows=nb)
    return OpResult(values=out.reshape(arr.shape), scale=k["scale_out"], ops=ops, registers=regs, taps=tapd)


# =============================================================================================
# softmax
# =============================================================================================
_SOFTMAX_PROFILES = ("published", "corrected")


@njit(cache=True, forceinline=True)
def _smax_norm(acc, corrected, out_bit):
    """(factor, shift) of the normalization: floor(2**32 / sum), or the corrected normalized one."""
    s = acc if acc != 0 else np.int64(1)
    if corrected:
        a = -s if s < 0 else s
        L2 = bitlen64(a)
        k = L2 - 32 if L2 > 32 else np.int64(0)
        return (np.int64(1) << np.int64(30 + L2 - k)) // (s >> k), np.int64(30 + L2 - out_bit)
    return (np.int64(1) << np.int64(32)) // s, np.int64(32 - out_bit)


@njit(cache=True, forceinline=True)
def _smax_out(p, sh, corrected, top):
    if corrected:
        if sh >= 63:
            o = np.int64(0)
        else:
            o = (p + (np.int64(1) << (sh - np.int64(1)))) >> sh
        return o if o < top else top
    return p >> sh


# The chain of softmax: the row maximum subtracted, the exponent chain with its 16-bit
# requantization, the row sum, the reciprocal factor and the product. Per-call widths: ``sum`` 48
# bits and ``out`` unsigned ``out_bit`` (corrected), ``out`` unsigned ``out_bit + 1`` (published).
# Op count parameters: ``reduce`` (N - 1, the compares of the row maximum and the adds of the
# sum) and ``corrected`` (1 for the corrected variant).
SOFTMAX_CHAIN = Chain("ibert.softmax", [
    Step("x_sub", "e", I32, (Cost("compare", ("in",), "reduce", "r"), Cost("add", ("x_sub",)))),
]) + EXP_CHAIN + EXP16 + Chain("ibert.softmax", [
    Step("sum", "r", I32, (Cost("add", ("sum",), "reduce", "r"),)),
    # the leading-zero count of the sum (corrected), the division
    Step("factor", "r", U32, (Cost("compare", ("sum",), "corrected", "r"), Cost("div", ("sum",), per="r"))),
    # the product, the rounding increment (corrected)
    Step("prod", "e", I64, (Cost("mul", ("exp16", "factor")), Cost("add", ("prod",), "corrected"))),
    # the clamp (corrected), the shift
    Step("out", "e", IntType(9, signed=False), (Cost("compare", ("out",), "corrected"), Cost("shift", ("prod",)))),
])
SM_SUB, SM_EXP = SOFTMAX_CHAIN.ids("x_sub", "x_clamped")  # SM_EXP: where the exponent chain starts
SM_SUM, SM_FACTOR, SM_PROD, SM_OUT = SOFTMAX_CHAIN.ids("sum", "factor", "prod", "out")
SP_CORRECTED, SP_OUT_BIT, SP_TOP = range(EP_NX0 + 1, EP_NX0 + 4)  #: after the exponent's parameters
_SOFTMAX_STEPS = [(s.name, s.kind) for s in SOFTMAX_CHAIN.steps]


@njit(cache=True, forceinline=True)
def _softmax_in(cf, st, tp, ton, i, j, xv, mx, kp, rec, ok):
    """Steps x_sub and x_clamped of one element (``mx`` its row's maximum): ``(x_clamped, ok)``."""
    d, ok = step(cf, st, tp, ton, i, j, SM_SUB, xv - mx, rec, ok)
    return _exp_clamp(cf, st, tp, ton, i, j, SM_EXP, d, kp, rec, ok)


@njit(cache=True, forceinline=True)
def _softmax_out(cf, st, tp, ton, i, j, e, f, sh, corrected, top, rec, ok):
    """Steps prod and out of one element (``e`` its exponent): ``(out, ok)``."""
    p, ok = mulv_step(cf, st, tp, ton, i, j, SM_PROD, e, f, rec, ok)
    return step(cf, st, tp, ton, i, j, SM_OUT, _smax_out(p, sh, corrected, top), rec, ok)


@njit(cache=True, forceinline=True)
def _softmax_row(cf, st, tp, ton, i, x, kp, lfin, lval, lev, lbad, llo, ls0, out, rec):
    """Softmax of row i; returns ``ok``.

    Recorded (``rec``), every register of every element. Unrecorded (only with a table of the
    whole clamped domain [n x0, 0] in which no register had an event), the element steps are
    checked where they are largest and the loops run unchecked: x_sub and x_clamped increase with
    x, so :func:`_softmax_in` is checked at the row's smallest and largest x (then every exponent
    is the table's); the sum is checked by :func:`acc_end`; prod and out move with the exponent,
    so :func:`_softmax_out` is checked at the row's smallest and largest. ``ok`` False: some
    register might not hold its value (the row is then run again, recorded)."""
    N = x.shape[1]
    mx = mn = np.int64(x[i, 0])
    for j in range(1, N):
        mx = max(mx, np.int64(x[i, j]))
        mn = min(mn, np.int64(x[i, j]))
    ok = True
    if not rec:
        _, ok = _softmax_in(cf, st, tp, ton, i, -1, mn, mx, kp, False, ok)
        _, ok = _softmax_in(cf, st, tp, ton, i, -1, mx, mx, kp, False, ok)
        if not ok:
            return False
    acc = acc_start()
    for j in range(N):
        v, _ = _softmax_in(cf, st, tp, ton, i, j, np.int64(x[i, j]), mx, kp, rec, True)
        if rec:
            e, _ = _exp_value(cf, st, tp, ton, i, j, SM_EXP, v, kp, lfin, lval, lev, lbad, llo, ls0, True, True, True)
        else:  # v is in the table's domain (checked at the row's ends)
            e = lfin[v - llo]
        out[i, j] = e
        acc = acc_step(cf, st, i, j, SM_SUM, acc, e, rec)
    emin, emax = acc_range(acc)  # the smallest and largest exponent (unrecorded)
    total, ok = acc_end(cf, SM_SUM, acc, rec, ok)
    if not (ok or rec):
        return False
    tap(tp, ton, i, -1, SM_SUM, total)
    corrected = kp[SP_CORRECTED] != 0
    f, sh = _smax_norm(total, corrected, kp[SP_OUT_BIT])
    f, ok = step(cf, st, tp, ton, i, -1, SM_FACTOR, f, rec, ok)
    top = kp[SP_TOP]
    if not rec:
        _, ok = _softmax_out(cf, st, tp, ton, i, -1, emin, f, sh, corrected, top, False, ok)
        _, ok = _softmax_out(cf, st, tp, ton, i, -1, emax, f, sh, corrected, top, False, ok)
        if not ok:
            return False
    for j in range(N):
        out[i, j] = _softmax_out(cf, st, tp, ton, i, j, out[i, j], f, sh, corrected, top, rec, True)[0]
    return ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_softmax_row(i, cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, good):
    """Row i of :func:`_k_softmax` (the body of its parallel loop): unrecorded first when ``good``
    (see :func:`_softmax_row`), again recorded when a register might have overflowed (or taps are
    on)."""
    if ton or not good or not _softmax_row(cf, st, tp, ton, i, x, kp, lfin, lval, lev, lbad, llo, ls0, out, False):
        _softmax_row(cf, st, tp, ton, i, x, kp, lfin, lval, lev, lbad, llo, ls0, out, True)


@njit(cache=True, parallel=True)
def _k_softmax(cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out):
    nx0 = kp[EP_NX0]
    nl = lfin.shape[0]
    # the table holds the whole clamped domain, and no register had an event in it
    good = nl > 0 and llo == nx0 and nl == 1 - nx0
    if good:
        for t in range(nl):
            if lbad[t]:
                good = False
    for i in prange(x.shape[0]):
        _k_softmax_row(np.int64(i), cf, st, tp, ton, x, kp, lfin, lval, lev, lbad, llo, ls0, out, good)


@renamed_keyword("profile", "variant")
def softmax(x: Any, scale: float, *, variant: str = "published", out_bit: int = 8, exp_range: float = 1.0,
            in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
            taps: bool = False) -> OpResult:
    """I-BERT's integer softmax (``IntSoftmax``) along the last axis.

    ``published`` (the code, followed exactly; constants in :func:`exp_constants`,
    :func:`softmax_requant`)::

        d     = x - max(x)                                  # per row
        e     = i_exp(d)                                    # 64-bit, scale 0.358 S**2 / 2**30
        e16   = clamp(round_half_even(e * m / 2**e_sh), -32768, 32767)   # QuantAct(16), scale
                                                            #   exp_range / 32767 (I-BERT's QuantAct)
        sum   = sum(e16);  factor = floor(2**32 / sum)
        out   = floor(e16 * factor / 2**(32 - out_bit));  scale_out = 2**-out_bit

    Outputs lie in [0, 2**out_bit]; ``2**out_bit`` itself occurs when one element's ``e16`` is
    a power of two holding the whole row sum, so the ``out`` register is unsigned
    ``out_bit + 1`` bits. ``exp_range`` is the QuantAct's calibrated real range of the
    exponentials (1.0 by default: the row maximum gives ``e16 = 32767``). The code passes the
    integer ``exp_int`` to that QuantAct with the exponent's scale and calibrates on the
    integers; in exact arithmetic that is the same requantization with the range expressed in
    real units, which is what is implemented (its dyadic multiplier can differ in the last
    bit). A zero ``sum`` (only if ``exp_range`` is huge) divides by 1 instead of 0 (the
    reference produces NaN); that row outputs zeros.

    ``corrected`` (this module's fix of two flaws): the 32-bit sum wraps once a row has
    more than 65538 elements near its maximum, and ``floor(2**32 / sum)`` keeps few bits for
    long rows (4096 equal logits give ``factor = 32``). It normalizes the reciprocal,
    ``factor = floor(2**(30 + L) / sum)`` with ``L = bitlen(sum)`` (31 significant bits for
    any row length), rounds the output half up (``(e16 * factor + 2**(sh-1)) >> sh``,
    ``sh = 30 + L - out_bit``) and clamps it to ``2**out_bit - 1`` so it fits ``out_bit``
    unsigned bits; its ``sum`` register is 48 bits.

    Registers (defaults): ``x_sub`` 32, the exponent chain of :func:`i_exp`, ``exp16`` 16,
    ``sum`` 32 (published) / 48 (corrected), ``factor`` 32, ``prod`` 64, ``out`` unsigned
    ``out_bit + 1``. Accuracy (measured by the tests): max |error| about 0.012
    for logits N(0, 3**2), 64-128 per row, S in {0.1, 0.05, 0.01}.

    >>> import numpy as np
    >>> softmax(np.array([[0, 0, 0, 0]]), 0.1).values.tolist()
    [[63, 63, 63, 63]]
    """
    op = "ibert.softmax"
    corrected = check_variant(variant, _SOFTMAX_PROFILES, op) == "corrected"
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    out_bit = check_int_param(out_bit, "out_bit", op, 1, 30)
    rng_ = check_op_scale(exp_range, op, "exp_range")
    k = _exp_params(S, op)
    rq_m, rq_e, s16 = softmax_requant(S, rng_)
    if abs(rq_m) >= 1 << 32 or rq_e < 1:
        raise ConfigError(f"{op}: the 16-bit requantization multiplier ({rq_m}, {rq_e}) is outside the emulated "
                          "range (|m| < 2**32, e >= 1); exp_range is too small")
    arr = check_input(x, in_t, op)
    regs = SOFTMAX_CHAIN.registers(widths, overflow, defaults={
        "sum": IntType(48) if corrected else I32, "out": IntType(out_bit if corrected else out_bit + 1, signed=False)})
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = SOFTMAX_CHAIN.plan(regs, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        kp = _exp_kp(k, (rq_m, rq_e), int(corrected), out_bit, (1 << out_bit) - 1)
        lut = _lut_exp(plan, SM_EXP, kp, True) if arr.size >= 1024 else no_lut(E_EXP16 + 1 - E_Q)
        _k_softmax(*plan.args(), as_rows(arr), kp, *lut, out)
    tapd = plan.finish(arr.shape, "rows")
    ops = chain_op_counts(SOFTMAX_CHAIN, regs, in_bits=in_t.bits, elements=R * N, rows=R,
                          params={"reduce": N - 1, "corrected": int(corrected)})
    return OpResult(values=out.reshape(arr.shape), scale=2.0 ** -out_bit, ops=ops, registers=regs, taps=tapd)


# =============================================================================================
# i-GELU
# =============================================================================================
_GELU_PROFILES = ("published", "corrected")


@renamed_keyword("profile", "variant")
def gelu_constants(scale: float, variant: str = "published", sig_bits: int = 12) -> dict[str, Any]:
    """Integer constants of I-BERT's i-GELU at input scale ``S`` (Kim et al., "I-BERT:
    Integer-only BERT Quantization", ICML 2021).

    ``S' = S / 1.4142``; ``b_int = floor(-1.769 / S')``; ``c_int = floor((1 / -0.2888) / S'**2)``;
    ``S_erf = -0.2888 * S'**2 * 2**shift``; ``shift_int = 1.0 // S_erf`` (Python float floor
    division, as the code); ``S_out = S * S_erf / 2``. Published: ``shift = 14``. Corrected:
    ``shift = max(0, bitlen(|c_int|) - sig_bits)`` (so the erf keeps ``sig_bits`` bits at any
    scale), ``shift_int = floor(c_int / 2**shift)`` computed on integers, and ``S_out`` is
    returned with the opposite sign (the output is negated).

    >>> k = gelu_constants(0.001)
    >>> k["b_int"], k["c_int"], k["shift_int"], round(k["scale_out"], 12)
    (-2502, -6925075, -423, -1.182947e-06)
    """
    S = float(scale)
    Sp = S / GELU_K
    a, b, c = GELU_COEF
    c_over_a = c / a
    b_int = math.floor(b / Sp)
    c_int = math.floor(c_over_a / Sp ** 2)
    if variant == "published":
        sh = GELU_N
        s_erf = Sp ** 2 * a * 2 ** sh
        shift_int = math.floor(1.0 // s_erf)
        s_out = S * s_erf / 2
    else:
        sh = max(0, abs(c_int).bit_length() - sig_bits)
        s_erf = Sp ** 2 * a * 2 ** sh
        shift_int = c_int >> sh
        s_out = -(S * s_erf / 2)
    return {"b_int": int(b_int), "c_int": int(c_int), "shift": int(sh), "shift_int": int(shift_int),
            "scale_erf": s_erf, "scale_out": s_out}


# The chain of i-GELU, written once: steps, default widths and the published operations per element.
GELU_CHAIN = Chain("ibert.gelu", [
    Step("abs", "e", U32, (Cost("compare", ("abs",)), Cost("add", ("abs",)))),  # sign test, negate
    Step("clip", "e", I32, (Cost("compare", ("clip",)),)),
    Step("poly_sum", "e", I32, (Cost("add", ("poly_sum",)),)),
    Step("poly_sq", "e", I64, (Cost("mul", ("poly_sum", "poly_sum")),)),
    Step("poly", "e", I32, (Cost("add", ("poly",)),)),
    Step("erf", "e", I32, (Cost("add", ("erf",)),)),  # apply the sign (conditional negate)
    Step("erf_shifted", "e", I32, (Cost("shift", ("erf_shifted",)),)),
    Step("sig", "e", I32, (Cost("add", ("sig",)),)),
    Step("out", "e", I32, (Cost("mul", ("in", "sig")),)),
])
GELU_NEG = Chain("ibert.gelu", [Step("neg", "e", I32, (Cost("add", ("neg",)),))])  #: corrected only
G_ABS, G_CLIP, G_SUM, G_SQ, G_POLY, G_ERF, G_SHIFTED, G_SIG, G_OUT = range(len(GELU_CHAIN))
G_NEG = len(GELU_CHAIN)
GELU_CORRECTED = GELU_CHAIN + GELU_NEG
#: the kernel's parameter vector (computed once per call from the scale)
GP_B_INT, GP_C_INT, GP_SHIFT, GP_SHIFT_INT, GP_NEGATE = range(5)


@njit(cache=True, forceinline=True)
def _gelu_chain(cf, st, tp, ton, i, j, xv, kp, rec):
    """i-GELU of one element; returns ``(out, ok)`` (``ok`` False: a register overflowed
    in the unrecorded pass)."""
    b_int, c_int = kp[GP_B_INT], kp[GP_C_INT]
    ok = True
    a, ok = step(cf, st, tp, ton, i, j, G_ABS, -xv if xv < 0 else xv, rec, ok)
    m, ok = step(cf, st, tp, ton, i, j, G_CLIP, a if a < -b_int else -b_int, rec, ok)
    t, ok = step(cf, st, tp, ton, i, j, G_SUM, m + b_int, rec, ok)
    t, ok = mul_step(cf, st, tp, ton, i, j, G_SQ, t, t, rec, ok)
    t, ok = step(cf, st, tp, ton, i, j, G_POLY, t + c_int, rec, ok)
    y = -t if xv < 0 else (np.int64(0) if xv == 0 else t)
    y, ok = step(cf, st, tp, ton, i, j, G_ERF, y, rec, ok)
    y, ok = step(cf, st, tp, ton, i, j, G_SHIFTED, y >> kp[GP_SHIFT], rec, ok)
    g, ok = step(cf, st, tp, ton, i, j, G_SIG, y + kp[GP_SHIFT_INT], rec, ok)
    o, ok = mul_step(cf, st, tp, ton, i, j, G_OUT, xv, g, rec, ok)
    if kp[GP_NEGATE]:
        o, ok = step(cf, st, tp, ton, i, j, G_NEG, -o, rec, ok)
    return o, ok


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_gelu_block(i, cf, st, tp, ton, x, kp, out, B, size):
    """Block i of :func:`_k_gelu` (the body of its parallel loop): unrecorded first, the whole
    block again recorded when a register overflowed (or taps are on)."""
    p0 = i * B
    p1 = min(p0 + B, size)
    good = not ton
    if good:
        for p in range(p0, p1):
            o, ok = _gelu_chain(cf, st, tp, ton, i, p - p0, np.int64(x[p]), kp, False)
            out[p] = o
            good &= ok
    if not good:
        for p in range(p0, p1):
            o, _ = _gelu_chain(cf, st, tp, ton, i, p - p0, np.int64(x[p]), kp, True)
            out[p] = o


@njit(cache=True, parallel=True)
def _k_gelu(cf, st, tp, ton, x, kp, out, B):
    size = x.shape[0]
    for i in prange(st.shape[0]):
        _k_gelu_block(np.int64(i), cf, st, tp, ton, x, kp, out, B, size)


#: fewest significant bits of the erf polynomial the published i-GELU keeps without a warning:
#: below 6 (input scales above about 0.0026) its error on [-5, 5] passes 0.1 and grows fast
#: (0.15 at S = 0.005, 0.9 at 0.01, 24.6 at 0.05; the corrected variant stays near 0.02).
GELU_PUBLISHED_MIN_BITS = 6


def _warn_coarse_gelu(S: float, k: dict[str, Any]) -> None:
    bits = abs(k["c_int"]).bit_length() - k["shift"]
    if bits >= GELU_PUBLISHED_MIN_BITS:
        return
    warnings.warn(AccuracyWarning(
        f"ibert.gelu(variant='published') at input scale {S:g}: the fixed '>> 14' leaves {max(bits, 0)} "
        f"significant bits of the erf polynomial (I-BERT's constants suit scales up to about 0.0026, where "
        f"{GELU_PUBLISHED_MIN_BITS} bits remain); the output is far from GELU (max error about 0.15 at scale "
        f"0.005, 0.9 at 0.01, 25 at 0.05). variant='corrected' keeps sig_bits bits at any scale"), stacklevel=4)


@renamed_keyword("profile", "variant")
def gelu(x: Any, scale: float, *, variant: str = "published", sig_bits: int = 12, in_type: IntType | str = I32,
         widths: dict | None = None, overflow: str = "raise", taps: bool = False) -> OpResult:
    """I-BERT's i-GELU (``IntGELU``), element-wise: ``x * (1 + L(x / sqrt 2)) / 2`` with the
    second-order erf approximation ``L(u) = sgn(u) [a (min(|u|, -b) + b)**2 + 1]``,
    ``a = -0.2888``, ``b = -1.769``.

    Warns :class:`~intsim.core.errors.AccuracyWarning` when ``published`` is used at an input scale
    where it keeps fewer than 6 significant bits of the erf (scales above about 0.0026).

    ``published``, exactly as the code (constants in :func:`gelu_constants`)::

        y   = sgn(x) * ((min(|x|, -b_int) + b_int)**2 + c_int)     # sgn(0) = 0
        y   = floor(y / 2**14)                                     # arithmetic shift
        out = x * (y + shift_int);   scale_out = S * S_erf / 2     # NEGATIVE scale (quirk)

    ``corrected``: the ``>> 14`` is replaced by ``>> shift`` with ``shift`` chosen from
    ``c_int`` so the erf keeps ``sig_bits`` (12) significant bits at any input scale (the
    published version keeps about 2 bits at S = 0.01, max error 0.73), ``shift_int`` is
    ``c_int >> shift`` (integer-only), and the output is negated so its scale is positive
    (register ``neg``).

    Registers (defaults): ``abs`` unsigned 32 (holds ``|-2**31|``), ``clip``, ``poly_sum``,
    ``poly`` and ``erf``, ``erf_shifted``, ``sig`` at 32 bits; ``poly_sq`` 64; ``out`` 32
    (with int32 inputs a large ``|x|`` overflows it: the product needs up to 41 bits at
    S = 1e-3); ``neg`` 32. The default input is int32 (the GEMM accumulator), and i-GELU
    needs a fine scale (about 1e-3; max error 0.0218 on [-4, 4] at S = 1e-3).

    >>> import numpy as np
    >>> r = gelu(np.array([-3000, -1000, 0, 1000, 3000]), 0.001, variant="corrected")
    >>> r.values.tolist(), r.scale > 0
    ([-3000, -1103000, 0, 5662000, 20292000], True)
    """
    op = "ibert.gelu"
    variant = check_variant(variant, _GELU_PROFILES, op)
    in_t = check_in_type(in_type, op)
    S = check_op_scale(scale, op)
    sig_bits = check_int_param(sig_bits, "sig_bits", op, 1, 30)
    k = gelu_constants(S, variant, sig_bits)
    if variant == "published":
        _warn_coarse_gelu(S, k)
    peak_poly = max(k["b_int"] ** 2, abs(k["c_int"])) + abs(k["c_int"])
    peak_sig = (peak_poly >> k["shift"]) + 1 + abs(k["shift_int"])
    if peak_poly > INT64_MAX or peak_sig * (1 << 32) > INT64_MAX:
        raise ConfigError(f"{op}: scale {S!r} is too small for exact int64 emulation of i-GELU")
    arr = check_input(x, in_t, op, min_ndim=0)
    corrected = variant == "corrected"
    chain = GELU_CORRECTED if corrected else GELU_CHAIN
    regs = chain.registers(widths, overflow)
    flat, nb, B = as_blocks(arr)
    plan = chain.plan(regs, nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        kp = np.array([k["b_int"], k["c_int"], k["shift"], k["shift_int"], int(corrected)], dtype=np.int64)
        _k_gelu(*plan.args(), flat, kp, out, np.int64(B))
    tapd = plan.finish(arr.shape, "flat")
    ops = chain_op_counts(chain, regs, in_bits=in_t.bits, elements=int(flat.size), rows=nb)
    return OpResult(values=out.reshape(arr.shape), scale=k["scale_out"], ops=ops, registers=regs, taps=tapd)


# =============================================================================================
# LayerNorm (also the engine of I-ViT's I-LayerNorm and I-LLM's DI-Norm)
# =============================================================================================
_LN_PROFILES = ("published", "corrected")


@renamed_keyword("profile", "variant")
def layernorm(x: Any, scale: float, gamma: Any = None, beta: Any = None, *, variant: str = "published",
              shift: int = 0, in_type: IntType | str = I22, widths: dict | None = None,
              overflow: str = "raise", taps: bool = False) -> OpResult:
    """I-BERT's integer LayerNorm (``IntLayerNorm``) over the last axis (length D).

    ``published``::

        mean   = round_half_even(sum(x) / D);  y = x - mean
        var    = sum(floor(y / 2**shift)**2)           # 'var' register: unsigned 32 bits (max_bit)
        std    = floor(sqrt(var)) * 2**shift           # exact i-sqrt (intsim.ops.isqrt); the code
                                                       #   uses torch.sqrt, equal below 2**52
        factor = floor(2**31 / std);  out = floor(y * factor / 2)
        out   += bias_int;  scale_out = sqrt(D) / 2**30 * gamma      (per channel)

    ``shift`` is I-BERT's calibrated ``shift`` buffer (0 by default; :func:`layernorm_shift`
    computes it from calibration data as the code's ``set_shift`` does). ``bias_int =
    floor((beta / gamma) / (sqrt(D) / 2**30))``; without ``gamma``/``beta`` the output scale is the
    scalar ``sqrt(D) / 2**30``. ``scale`` is only validated: normalization is scale-free and
    I-BERT has no epsilon. A zero ``std`` (possible with ``shift > 0``) divides by 1 (the
    reference divides by zero).

    ``corrected``: the variance is accumulated exactly in 64 bits (no shift, no 2**32 limit)
    and the square root is taken with extra precision, ``std = isqrt(var << 2g)`` with
    ``g = max(0, (62 - bitlen(var)) // 2)`` and ``factor = floor(2**(31 + g) / std)``: the
    published ``floor(sqrt(var))`` loses up to 1/std relative precision, i.e. a large error
    for small variances. Same output convention and scale.

    Registers (defaults): ``sum`` 40, ``mean``, ``y``, ``y_shifted`` 32; ``y_sq`` 64; ``var``
    unsigned 32 (published) / 64 (corrected); ``var_norm`` 64 (the value fed to the square
    root); ``sqrt_iter`` 64 (tap only); ``std`` 32; ``factor`` 32; ``prod`` 64; ``out``,
    ``out_bias`` 32. A row whose ``sum(y**2)`` reaches 2**32 overflows the published ``var``
    register (I-BERT's training-time overflow check), which ``shift`` is meant to prevent.

    >>> import numpy as np
    >>> r = layernorm(np.array([[1, 2, 3, 4]]), 0.1)
    >>> r.values.tolist(), r.scale == 2.0 / 2**30
    ([[-536870912, 0, 536870912, 1073741824]], True)
    """
    op = "ibert.layernorm"
    corrected = check_variant(variant, _LN_PROFILES, op) == "corrected"
    in_t = check_in_type(in_type, op)
    check_op_scale(scale, op)
    shift = check_int_param(shift, "shift", op, 0, 62)
    check_float_params(gamma, "gamma", op)
    check_float_params(beta, "beta", op)
    arr = check_input(x, in_t, op)
    D = arr.shape[-1]
    if D == 0:
        raise ShapeError(f"{op}: the normalized axis is empty")
    s_y = math.sqrt(D) / 2 ** 30
    out_scale, bias = ln_affine(gamma, beta, D, s_y, op)
    # LN_CHAIN's default widths are I-BERT's; the corrected variance register is 64 bits
    regs = LN_CHAIN.registers(widths, overflow, op, defaults={"var": I64} if corrected else None)
    return run_layernorm(op, arr, regs, taps, in_t, mean_mode=MEAN_RNE, shift=0 if corrected else shift,
                         sqrt_mode=SQ_NORM if corrected else SQ_FLOAT, iv_steps=0, num_bits=31, norm_top=62,
                         prod_shift=1, prod_round=0, eps_int=0, bias=bias, out_scale=out_scale)


def layernorm_shift(x: Any, shift: int = 0, *, in_type: IntType | str = I22) -> int:
    """The ``shift`` buffer I-BERT's ``set_shift`` would hold after seeing ``x``.

    The code computes ``max(shift, ceil(log2(sqrt(max_var / 2**32))))`` on float variances
    ``max_var = max over rows of sum(y**2)``; here exactly: the smallest ``s >= shift`` with
    ``max_var <= 2**(32 + 2 s)``.

    >>> import numpy as np
    >>> layernorm_shift(np.array([[0, 2**20, -2**20, 0]]))
    5
    """
    op = "ibert.layernorm_shift"
    in_t = check_in_type(in_type, op)
    arr = check_input(x, in_t, op)
    xr = as_rows(arr)
    D = xr.shape[1]
    best = int(shift)
    for row in xr:
        s = sum(int(v) for v in row)
        q, r = divmod(s, D)
        mean = q + (1 if 2 * r > D or (2 * r == D and q & 1) else 0)
        var = sum((int(v) - mean) ** 2 for v in row)
        need = 0
        while var > 1 << (32 + 2 * need):
            need += 1
        best = max(best, need)
    return best


# =============================================================================================
# requantization helpers (I-BERT's QuantAct paths)
# =============================================================================================
def quant_scale(x_min: float, x_max: float, bits: int = 8) -> float:
    """``symmetric_linear_quantization_params``: ``max(|x_min|, |x_max|, 1e-8) / (2**(bits-1) - 1)``.

    >>> quant_scale(-1.0, 0.5, 8) == 1 / 127
    True
    """
    n = 2 ** (int(bits) - 1) - 1
    return max(abs(float(x_min)), abs(float(x_max)), 1e-8) / n


def quantize(x: Any, scale: float, bits: int = 8) -> np.ndarray:
    """I-BERT's ``SymmetricQuantFunction`` (float to int): ``clamp(round_half_even(x / scale),
    -n, n - 1)`` with ``n = 2**(bits-1) - 1``: the published off-by-one clamp, [-127, 126] for
    8 bits (I-ViT and HAWQ clamp to [-128, 127]). Computed in float64 as ``x * (1 / scale)``,
    like the code's ``1.0 / scale * x``. Returns int64; NaN raises OperandRangeError.

    >>> quantize(np.array([-2.0, -0.004, 0.006, 2.0]), 1 / 127).tolist()
    [-127, -1, 1, 126]
    """
    from ..core.rounding import round_float
    s = check_scale(scale, "scale")
    bits = check_int_param(bits, "bits", "ibert.quantize", 2, 32)
    n = 2 ** (bits - 1) - 1
    q = round_float(np.asarray(x, dtype=np.float64) * (1.0 / s), "half_even")
    return np.clip(q, -n, n - 1)


# The chain of fixedpoint_mul: the rounded product (``scaled``) and the output after the clamp,
# whose width and two compares follow the call's ``bits`` (see _fpmul_chain_of).
FPMUL_CHAIN = Chain("ibert.fixedpoint_mul", [
    Step("scaled", "e", I64, (Cost("mul", ("in", 32)), Cost("shift", ("in+32",)))),
    Step("out", "e", I64),
])
F_SCALED, F_OUT = range(len(FPMUL_CHAIN))
FP_M, FP_E, FP_LO, FP_HI, FP_CLAMP = range(5)  #: the kernel's parameter vector


@functools.cache
def _fpmul_chain_of(bits: int) -> Chain:
    """FPMUL_CHAIN for a call with ``bits``: for 4, 8 and 16 a clamp (two compares at ``bits``)
    and an ``out`` register ``bits`` wide."""
    if bits not in (4, 8, 16):
        return FPMUL_CHAIN
    return Chain(FPMUL_CHAIN.op, [FPMUL_CHAIN.steps[F_SCALED], Step("out", "e", IntType(bits),
                                                                    (Cost("compare", (bits,), 2),))])


@njit(cache=True, forceinline=True)
def _fpmul_chain(cf, st, tp, ton, i, j, xv, kp, rec):
    """FixedPointMul of one element; returns ``(out, ok)``."""
    ok = True
    m = kp[FP_M]
    y, big = mul_shr_rne(xv, m, kp[FP_E])
    if big:  # beyond int64: always an event
        if rec:
            y = wide(cf, st, tp, ton, i, j, F_SCALED, y, (xv < 0) != (m < 0))
        ok = False
    else:
        y, ok = step(cf, st, tp, ton, i, j, F_SCALED, y, rec, ok)
    if kp[FP_CLAMP]:
        y = min(max(y, kp[FP_LO]), kp[FP_HI])
    return step(cf, st, tp, ton, i, j, F_OUT, y, rec, ok)


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_fpmul_block(i, cf, st, tp, ton, x, kp, out, B, size):
    """Block i of :func:`_k_fpmul` (the body of its parallel loop): unrecorded first, the whole
    block again recorded when a register overflowed (or taps are on)."""
    p0 = i * B
    p1 = min(p0 + B, size)
    good = not ton
    if good:
        for p in range(p0, p1):
            o, ok = _fpmul_chain(cf, st, tp, ton, i, p - p0, np.int64(x[p]), kp, False)
            out[p] = o
            good &= ok
    if not good:
        for p in range(p0, p1):
            out[p] = _fpmul_chain(cf, st, tp, ton, i, p - p0, np.int64(x[p]), kp, True)[0]


@njit(cache=True, parallel=True)
def _k_fpmul(cf, st, tp, ton, x, kp, out, B):
    size = x.shape[0]
    for i in prange(st.shape[0]):
        _k_fpmul_block(np.int64(i), cf, st, tp, ton, x, kp, out, B, size)


@renamed_keyword("profile", "variant")
def fixedpoint_mul(x: Any, in_scale: float, out_scale: float, bits: int = 8, *, variant: str = "published",
                   in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
                   taps: bool = False) -> OpResult:
    """I-BERT's ``FixedPointMul`` (the dyadic requantization of ``QuantAct``,
    kssteven418/I-BERT ``quant_utils.py``).

    ``(m, e) = ibert_frexp(in_scale / float64(float32(out_scale)))``;
    ``y = round_half_even(x * m / 2**e)`` exactly (128-bit product); then for ``bits`` in
    {4, 8, 16} a clamp to ``[-2**(bits-1), 2**(bits-1) - 1]`` (other widths are not clamped, as in
    the fairseq code; the HF port also clamps 32). Registers: ``scaled`` 64 (before the clamp)
    and ``out`` (``bits`` wide, 64 when unclamped). Output scale: ``out_scale``.

    >>> fixedpoint_mul(np.array([1000, -1000, 12345]), 0.01, 0.1).values.tolist()
    [100, -100, 127]
    """
    op = "ibert.fixedpoint_mul"
    check_variant(variant, ("published",), op)
    in_t = check_in_type(in_type, op)
    si = check_op_scale(in_scale, op, "in_scale")
    so = check_op_scale(out_scale, op, "out_scale")
    bits = check_int_param(bits, "bits", op, 2, 64)
    m, e = ibert_frexp(ibert_scale_ratio(si, so))
    if abs(m) >= 1 << 32 or e < 1:
        raise ConfigError(f"{op}: the scale ratio {si / so!r} is outside the emulated range (ratio < 2**30)")
    arr = check_input(x, in_t, op, min_ndim=0)
    chain = _fpmul_chain_of(bits)
    regs = chain.registers(widths, overflow)
    flat, nb, B = as_blocks(arr)
    plan = chain.plan(regs, nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        kp = np.array([m, e, max(lo, -(1 << 63)), min(hi, INT64_MAX), int(bits in (4, 8, 16))], dtype=np.int64)
        _k_fpmul(*plan.args(), flat, kp, out, np.int64(B))
    tapd = plan.finish(arr.shape, "flat")
    ops = chain_op_counts(chain, regs, in_bits=in_t.bits, elements=int(flat.size), rows=nb)
    return OpResult(values=out.reshape(arr.shape), scale=so, ops=ops, registers=regs, taps=tapd)


#: the operators of this family (:mod:`intsim.ops.registry` lists them as ``ibert.<name>``): the
#: positional inputs of each and the values of its ``variant=`` keyword
OPS: tuple[OpSpec, ...] = (
    OpSpec("i_exp", i_exp, ("x", "scale"), ("published",)),
    OpSpec("softmax", softmax, ("x", "scale"), _SOFTMAX_PROFILES),
    OpSpec("gelu", gelu, ("x", "scale"), _GELU_PROFILES),
    OpSpec("layernorm", layernorm, ("x", "scale"), _LN_PROFILES),
    OpSpec("fixedpoint_mul", fixedpoint_mul, ("x", "in_scale", "out_scale"), ("published",)),
)
