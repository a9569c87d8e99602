"""I-BERT integer-only operators (Kim et al., ICML 2021): i-exp, integer softmax,
i-GELU and integer LayerNorm, bit-exact to the published algorithm, with corrected
variants where the published one has a flaw that hardware should not copy.

Every operator takes an integer array and the real value of one of its steps
(``scale``), computes along the last axis where it reduces (softmax, LayerNorm),
and returns an :class:`~intsim.opresult.OpResult`: int64 outputs, the output
scale, exact op counts, the :class:`~intsim.registers.RegisterFile` of the call
and, with ``taps=True``, every intermediate register as an int64 array.

Conventions shared by :mod:`intsim.ibert`, :mod:`intsim.ivit` and :mod:`intsim.illm`
------------------------------------------------------------------------------------

* **Inputs.** ``x`` is an integer array (any integer dtype; floats raise
  :class:`~intsim.errors.DTypeError`) whose values must lie in ``in_type`` (else
  :class:`~intsim.errors.OperandRangeError`); ``in_type`` is at most 32 bits.
  ``scale`` must be a finite positive real (else :class:`~intsim.errors.ConfigError`).
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
  of :mod:`intsim.registers` (``raise`` / ``wrap`` / ``saturate`` / ``record``).
  Accumulators are checked after every add (a saturating accumulator saturates per
  add). A value that does not even fit int64 is handled exactly under ``wrap`` and
  ``saturate``, raises under ``raise``, and raises under ``record`` too (it cannot be
  recorded exactly). A division by zero always raises
  :class:`~intsim.errors.RegisterOverflow` naming the step. Events name the first
  offending element by its index in ``x`` (or the row index for a per-row register).
* **Taps.** ``taps=False`` (the default) keeps the call fast; ``taps=True`` returns
  every register's values: element registers shaped like ``x``, per-row registers
  shaped ``x.shape[:-1]``.
* **Op counts.** Counts of the published algorithm's operations (not of how the
  emulator computes them), per call; a ``div`` is keyed by its divisor's width, a
  ``mul`` by its operands' widths, everything else by its result register's width.
* **Profiles.** ``profile="published"`` reproduces the published code; ``"corrected"``
  is this module's fixed variant (documented per operator).

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

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from ._arrays import as_int_array
from .dyadic import check_scale, ibert_frexp, ibert_scale_ratio
from .errors import ConfigError, DTypeError, RegisterOverflow, ShapeError
from .inttype import IntType
from .isqrt import isqrt_newton_u64
from .opcounts import OpCounts
from .opresult import OpResult
from .registers import RegisterEvent, RegisterFile

__all__ = [
    "i_exp", "softmax", "gelu", "layernorm", "fixedpoint_mul", "quantize", "quant_scale",
    "layernorm_shift", "exp_constants", "gelu_constants", "softmax_requant",
    "EXP_X0", "EXP_N", "EXP_COEF", "GELU_K", "GELU_N", "GELU_COEF",
    "OPERATORS", "PROFILES", "INPUTS",
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
# shared machinery (also used by intsim.ivit, intsim.illm and intsim.isqrt)
# =============================================================================================
_WRAP, _SAT, _RAISE, _RECORD = 0, 1, 2, 3
_POLICY = {"wrap": _WRAP, "saturate": _SAT, "raise": _RAISE, "record": _RECORD}
_INT64_MAX = (1 << 63) - 1
_BLOCK = 4096  # elements per parallel block of the element-wise kernels
_LUT_MAX = 1 << 22  # largest look-up table the emulator builds to speed up an element chain


def _input(x: Any, in_type: IntType, op: str, name: str = "x", min_ndim: int = 1) -> np.ndarray:
    """Validate an integer operand: integer dtype, at least ``min_ndim`` dims, values in ``in_type``."""
    arr = as_int_array(x, f"{op}: {name}")
    if arr.ndim < min_ndim:
        raise ShapeError(f"{op}: {name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    info = np.iinfo(arr.dtype)
    if not (in_type.min <= int(info.min) and int(info.max) <= in_type.max):  # the dtype alone proves it
        in_type.check(arr, f"{op}: {name}")
    return arr


def _in_type(t: Any, op: str, max_bits: int = 32) -> IntType:
    try:
        it = IntType.parse(t)
    except ConfigError as exc:
        raise ConfigError(f"{op}: in_type: {exc}") from None
    if it.bits > max_bits:
        raise ConfigError(f"{op}: in_type {it.name} is wider than the {max_bits} bits this operator accepts")
    return it


def _scale(scale: Any, op: str, name: str = "scale") -> float:
    try:
        return check_scale(scale, name)
    except ConfigError as exc:
        raise ConfigError(f"{op}: {exc}") from None


def _profile(profile: Any, valid: tuple[str, ...], op: str) -> str:
    if profile not in valid:
        raise ConfigError(f"{op}: unknown profile {profile!r}; valid: {', '.join(valid)}")
    return profile


def _int_param(v: Any, name: str, op: str, lo: int, hi: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ConfigError(f"{op}: {name} must be an integer from {lo} to {hi}, got {v!r}")
    return int(v)


def _make_regs(op: str, defaults: dict[str, Any], widths: dict | None, overflow: str) -> RegisterFile:
    """A RegisterFile with the operator's default widths, overridden by ``widths``."""
    if overflow not in _POLICY:
        raise ConfigError(f"{op}: unknown overflow policy {overflow!r}; valid: {', '.join(_POLICY)}")
    merged = dict(defaults)
    if widths is not None:
        if not isinstance(widths, dict):
            raise ConfigError(f"{op}: widths must be a dict step -> bits, got {type(widths).__name__}")
        unknown = sorted(set(widths) - set(defaults))
        if unknown:
            raise ConfigError(f"{op}: unknown register step(s) {unknown}; valid: {', '.join(defaults)}")
        merged.update(widths)
    regs = RegisterFile(op, merged, overflow=overflow)
    for step in defaults:
        t = regs.type_of(step)
        if not t.signed and t.bits == 64:
            raise ConfigError(f"{op}: register '{step}' cannot be unsigned 64-bit (values are held in int64)")
    return regs


def _raise_or_record(regs: RegisterFile, step: str, values: np.ndarray) -> np.ndarray:
    """RegisterFile.check for unsigned 64-bit data that may exceed int64."""
    if values.dtype == np.uint64 and values.size and int(values.max()) > _INT64_MAX:
        # only possible for registers narrower than 64 bits, so the check must fail anyway
        t = regs.type_of(step)
        bad = values > np.uint64(t.max)
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        idx = tuple(int(i) for i in np.unravel_index(first, values.shape))
        ev = RegisterEvent(regs.op, step, t.bits, t.signed, int(np.count_nonzero(bad)), idx,
                           int(values[idx]), regs.overflow)
        regs.events.append(ev)
        raise RegisterOverflow(f"{regs.op}: register '{step}' ({t.name}) overflowed: first at index {idx}: "
                               f"{int(values[idx])}", op=regs.op, step=step, value=int(values[idx]), bits=t.bits)
    return regs.check(step, values.astype(np.int64))


class _Plan:
    """Step table of one call: the registers in pipeline order and the arrays the kernels fill.

    Kernel-side arrays (passed flat: numba handles tuples of arrays slowly):

    * ``cf`` int64 (S, 5): per step ``lo, hi, bits, signed, policy``;
    * ``st`` int64 (R, S, 4): per kernel row and step ``count, first j, first value, flags``
      (flags: low 2 bits the kind of the first event, 0 out of range, 1/2 beyond int64
      positive/negative, 3 division by zero; bit 4 any beyond-int64, bit 8 any division by zero);
    * ``tp`` int64 (S, R, N) taps, or (1, 1, 1) when off; ``ton`` bool. Per-row steps store
      their tap at column 0.

    ``kinds[s]`` is ``"e"`` (one value per element) or ``"r"`` (one per row).
    """

    def __init__(self, regs: RegisterFile, steps: list[tuple[str, str]], R: int, N: int, taps: bool):
        self.regs = regs
        self.names = [s for s, _ in steps]
        self.kinds = [k for _, k in steps]
        self.index = {s: i for i, s in enumerate(self.names)}
        S = len(steps)
        types = [regs.type_of(s) for s in self.names]
        self.cf = np.array([[t.min, t.max, t.bits, 1 if t.signed else 0, _POLICY[regs.overflow]] for t in types],
                           dtype=np.int64).reshape(S, 5)
        self.R, self.N = R, N
        self.taps = bool(taps)
        self.tp = np.zeros((S, R, max(N, 1)), dtype=np.int64) if taps else np.zeros((1, 1, 1), dtype=np.int64)
        self.st = np.zeros((R, S, 4), dtype=np.int64)

    def args(self) -> tuple:
        return self.cf, self.st, self.tp, self.taps

    def s(self, name: str) -> int:
        return self.index[name]

    # -- after the kernel ------------------------------------------------------------------------
    def finish(self, shape: tuple, layout: str = "rows") -> dict[str, np.ndarray]:
        """Turn the kernel's event arrays into RegisterEvents (raising where the policy says)
        and return the taps. ``layout`` is ``"rows"`` (kernel row i, column j = x[..., j]) or
        ``"flat"`` (block i, offset j of the flattened input)."""
        regs = self.regs
        cnt = self.st[:, :, 0]
        if cnt.any():
            tot = cnt.sum(axis=0)
            for s in np.flatnonzero(tot):
                name = self.names[s]
                t = regs.type_of(name)
                rows = np.flatnonzero(cnt[:, s])
                i0 = int(rows[0])
                j = int(self.st[i0, s, 1])
                kind = int(self.st[i0, s, 3]) & 3
                idx = self._index(i0, j, shape, layout)
                flags = self.st[:, s, 3]
                any_wide = bool((flags & 4).any())
                count = int(tot[s])
                if (flags & 8).any():
                    d0 = int(np.flatnonzero(flags & 8)[0])
                    didx = idx if kind == 3 else self._index(d0, int(self.st[d0, s, 1]), shape, layout)
                    regs.events.append(RegisterEvent(regs.op, name, t.bits, t.signed, count, didx, 0, regs.overflow))
                    raise RegisterOverflow(f"{regs.op}: step '{name}': division by zero at index {didx}",
                                           op=regs.op, step=name, value=0, bits=t.bits)
                value = int(self.st[i0, s, 2])
                wide_first = kind in (1, 2)
                what = (f"a value beyond the int64 range ({'+' if kind == 1 else '-'}; low 64 bits {value})"
                        if wide_first else str(value))
                regs.events.append(RegisterEvent(regs.op, name, t.bits, t.signed, count, idx, value,
                                                 regs.overflow))
                if regs.overflow == "raise" or (regs.overflow == "record" and any_wide):
                    extra = "" if regs.overflow == "raise" else " (a value beyond int64 cannot be recorded exactly)"
                    raise RegisterOverflow(
                        f"{regs.op}: register '{name}' ({t.name}) overflowed: {count} value(s) outside "
                        f"[{t.min}, {t.max}]; first at index {idx}: {what}{extra}",
                        op=regs.op, step=name, value=None if wide_first else value, bits=t.bits)
        out: dict[str, np.ndarray] = {}
        if self.taps:
            size = int(np.prod(shape)) if len(shape) else 1
            for s, name in enumerate(self.names):
                if self.kinds[s] == "e":
                    a = self.tp[s]
                    out[name] = (a.reshape(-1)[:size].reshape(shape) if layout == "flat"
                                 else a[:, :self.N].reshape(shape))
                else:
                    out[name] = self.tp[s, :, 0].reshape(shape[:-1])
        return out

    def _index(self, i: int, j: int, shape: tuple, layout: str) -> tuple:
        if layout == "flat":
            flat = i * self.N + j
            return tuple(int(v) for v in np.unravel_index(flat, shape)) if shape else ()
        if j < 0:
            return tuple(int(v) for v in np.unravel_index(i, shape[:-1])) if len(shape) > 1 else ()
        return tuple(int(v) for v in np.unravel_index(i * self.N + j, shape))


_NATIVE = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64))


def _kernel_dtype(arr: np.ndarray) -> Any:
    """Signed 8/16/32/64-bit arrays go to the kernels as they are (numba specializes the kernel
    per dtype and widens every operation to int64); other integer arrays are converted."""
    return arr.dtype if arr.dtype in _NATIVE else np.int64


def _rows(arr: np.ndarray) -> np.ndarray:
    """(..., N) -> contiguous (R, N) of a kernel dtype."""
    n = arr.shape[-1]
    return np.ascontiguousarray(arr.reshape(-1, n), dtype=_kernel_dtype(arr))


def _blocks(arr: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Flatten for the element-wise kernels: (flat array, number of blocks, block size)."""
    flat = np.ascontiguousarray(arr.reshape(-1), dtype=_kernel_dtype(arr))
    size = flat.size
    B = min(_BLOCK, max(size, 1))
    return flat, -(-size // B), B


# ---- numba register primitives ---------------------------------------------------------------
# Every kernel passes (cf, st, tp, ton) and a position (i, j); j = -1 for a per-row register.

@njit(cache=True)
def _slow(cf, st, i, j, s, v, kind):
    """Record an event for step s (kind 0 out of range, 1/2 beyond int64 +/-, 3 division by
    zero) and return the value after the policy (wrap, saturate; unchanged otherwise)."""
    if st[i, s, 0] == 0:
        st[i, s, 1] = j
        st[i, s, 2] = v
        st[i, s, 3] = kind
    st[i, s, 0] += 1
    if kind == 1 or kind == 2:
        st[i, s, 3] |= 4
    if kind == 3:
        st[i, s, 3] |= 8
        return np.int64(0)
    p = cf[s, 4]
    if p == 0:
        b = cf[s, 2]
        if b >= 64:
            return v
        if cf[s, 3] == 1:
            sh = np.int64(64 - b)
            return (v << sh) >> sh
        return v & ((np.int64(1) << np.int64(b)) - np.int64(1))
    if p == 1:
        if kind == 2 or (kind == 0 and v < cf[s, 0]):
            return cf[s, 0]
        return cf[s, 1]
    return v


@njit(cache=True, inline="always")
def tap(tp, ton, i, j, s, v):
    if ton:
        if j >= 0:
            tp[s, i, j] = v
        else:
            tp[s, i, 0] = v


@njit(cache=True, inline="always")
def chk(cf, st, i, j, s, v):
    """Pass v through register s (no tap)."""
    if v < cf[s, 0] or v > cf[s, 1]:
        return _slow(cf, st, i, j, s, v, 0)
    return v


@njit(cache=True, inline="always")
def reg(cf, st, tp, ton, i, j, s, v):
    """Pass v through register s and tap it."""
    if v < cf[s, 0] or v > cf[s, 1]:
        v = _slow(cf, st, i, j, s, v, 0)
    if ton:
        if j >= 0:
            tp[s, i, j] = v
        else:
            tp[s, i, 0] = v
    return v


@njit(cache=True)
def wide(cf, st, tp, ton, i, j, s, low, neg):
    """A value beyond int64 (``low`` its low 64 bits, ``neg`` its sign) entering register s."""
    v = _slow(cf, st, i, j, s, low, 2 if neg else 1)
    tap(tp, ton, i, j, s, v)
    return v


@njit(cache=True)
def div0(cf, st, tp, ton, i, j, s):
    """A division by zero at step s: recorded (always raised afterwards); the register gets 0."""
    v = _slow(cf, st, i, j, s, np.int64(0), 3)
    tap(tp, ton, i, j, s, v)
    return v


@njit(cache=True, inline="always")
def shl_reg(cf, st, tp, ton, i, j, s, v, sh):
    """Register s <- v * 2**sh exactly (sh < 0: floor division by 2**-sh)."""
    if sh <= 0:
        m = -sh
        if m > 63:
            m = 63
        return reg(cf, st, tp, ton, i, j, s, v >> np.int64(m))
    if v == 0:
        return reg(cf, st, tp, ton, i, j, s, v)
    if sh >= 64:
        return wide(cf, st, tp, ton, i, j, s, np.int64(0), v < 0)
    hi = np.int64(_INT64_MAX) >> np.int64(sh)
    if v > hi or v < -hi - np.int64(1):
        return wide(cf, st, tp, ton, i, j, s, v << np.int64(sh), v < 0)
    return reg(cf, st, tp, ton, i, j, s, v << np.int64(sh))


@njit(cache=True)
def _mul_wide(a, b):
    """True when a * b does not fit int64 (a, b not both small)."""
    f = float(a) * float(b)
    if abs(f) < 4.6e18:
        return False
    if abs(f) > 1.9e19:
        return True
    if a == -1 and b == -9223372036854775807 - 1:
        return True
    if b == -1 and a == -9223372036854775807 - 1:
        return True
    p = a * b
    return p // a != b or p % a != 0


@njit(cache=True, inline="always")
def mul_reg(cf, st, tp, ton, i, j, s, a, b):
    """Register s <- a * b exactly (beyond int64 detected)."""
    p = a * b
    if a < 3037000499 and a > -3037000499 and b < 3037000499 and b > -3037000499:
        return reg(cf, st, tp, ton, i, j, s, p)
    if a != 0 and b != 0 and _mul_wide(a, b):
        return wide(cf, st, tp, ton, i, j, s, p, (a < 0) != (b < 0))
    return reg(cf, st, tp, ton, i, j, s, p)


@njit(cache=True, inline="always")
def add_chk(cf, st, i, j, s, a, b):
    """Accumulator step a + b through register s (checked after every add, no tap)."""
    r = a + b
    if (a >= 0) == (b >= 0) and (r >= 0) != (a >= 0):
        return _slow(cf, st, i, j, s, r, 2 if a < 0 else 1)
    if r < cf[s, 0] or r > cf[s, 1]:
        return _slow(cf, st, i, j, s, r, 0)
    return r


@njit(cache=True, inline="always")
def fits(cf, s, v):
    """True when v fits register s (used by the fast paths, which record nothing)."""
    return v >= cf[s, 0] and v <= cf[s, 1]


@njit(cache=True, inline="always")
def bitlen64(v):
    """Bit length of a non-negative int64."""
    b = np.int64(0)
    while v > 0:
        v >>= np.int64(1)
        b += 1
    return b


@njit(cache=True)
def mul_shr_rne(v, m, e):
    """round_half_even(v * m / 2**e) for int64 v, |m| < 2**32, e >= 1.

    Returns (low 64 bits of the result, beyond-int64 flag). The product is formed in 128 bits.
    """
    neg = (v < 0) != (m < 0)
    a = np.uint64(-v) if v < 0 else np.uint64(v)
    b = np.uint64(-m) if m < 0 else np.uint64(m)
    m32 = np.uint64(0xFFFFFFFF)
    a0 = a & m32
    a1 = a >> np.uint64(32)
    p0 = a0 * b
    p1 = a1 * b
    lo = p0 + (p1 << np.uint64(32))
    carry = np.uint64(1) if lo < p0 else np.uint64(0)
    hi = (p1 >> np.uint64(32)) + carry
    if e >= 128:
        return np.int64(0), False
    if e >= 64:
        sh = np.uint64(e - 64)
        q = hi >> sh
        rem_hi = hi & ((np.uint64(1) << sh) - np.uint64(1)) if sh > 0 else np.uint64(0)
        rem_lo = lo
        if e == 64:
            half_hi = np.uint64(0)
            half_lo = np.uint64(1) << np.uint64(63)
        else:
            half_hi = np.uint64(1) << np.uint64(e - 65)
            half_lo = np.uint64(0)
        qhi = np.uint64(0)
    else:
        sh = np.uint64(e)
        q = (lo >> sh) | (hi << (np.uint64(64) - sh))
        qhi = hi >> sh
        rem_hi = np.uint64(0)
        rem_lo = lo & ((np.uint64(1) << sh) - np.uint64(1))
        half_hi = np.uint64(0)
        half_lo = np.uint64(1) << np.uint64(e - 1)
    up = False
    if rem_hi > half_hi or (rem_hi == half_hi and rem_lo > half_lo):
        up = True
    elif rem_hi == half_hi and rem_lo == half_lo:
        up = (q & np.uint64(1)) == np.uint64(1)
    if up:
        q = q + np.uint64(1)
        if q == np.uint64(0):
            qhi += np.uint64(1)
    big = qhi != np.uint64(0) or q > np.uint64(_INT64_MAX)
    r = np.int64(q)
    if neg:
        r = -r
    return r, big


class _Lut:
    """A table of an element chain over an integer domain [lo, lo + size): the post-policy
    value of each of its registers and the overflow event of each entry, so a kernel replays
    events and taps exactly as the chain would produce them. ``fill(cf, st, tp, out)`` runs
    the chain on entry i (kernel row i, column 0) and stores the chain's result in ``out[i]``."""

    def __init__(self, plan: _Plan, s0: int, s1: int, lo: int, size: int, fill: Callable):
        S = len(plan.names)
        st = np.zeros((size, S, 4), dtype=np.int64)
        tp = np.zeros((S, size, 1), dtype=np.int64)
        self.final = np.empty(size, dtype=np.int64)
        fill(plan.cf, st, tp, self.final)
        self.vals = np.ascontiguousarray(tp[s0:s1, :, 0].T)  # (size, nsteps)
        ev = np.zeros((size, s1 - s0, 2), dtype=np.int64)
        ev[:, :, 0] = st[:, s0:s1, 2]
        ev[:, :, 1] = np.where(st[:, s0:s1, 0] > 0, (st[:, s0:s1, 3] & 3) + 1, 0)
        self.ev = ev
        self.bad = np.ascontiguousarray(st[:, s0:s1, 0].any(axis=1))
        self.lo, self.size, self.s0 = int(lo), int(size), int(s0)

    def args(self) -> tuple:
        return self.final, self.vals, self.ev, self.bad, np.int64(self.lo), np.int64(self.s0)


def _no_lut(nsteps: int) -> tuple:
    return (np.zeros(0, np.int64), np.zeros((0, nsteps), np.int64), np.zeros((0, nsteps, 2), np.int64),
            np.zeros(0, np.bool_), np.int64(0), np.int64(0))


@njit(cache=True, inline="always")
def lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v):
    """Look v up in a _Lut; returns (value, found)."""
    k = v - llo
    if k < 0 or k >= lfin.shape[0]:
        return np.int64(0), False
    if lbad[k]:
        for t in range(lval.shape[1]):
            if lev[k, t, 1] > 0:
                _slow(cf, st, i, j, ls0 + t, lev[k, t, 0], lev[k, t, 1] - 1)
    if ton:
        for t in range(lval.shape[1]):
            if j >= 0:
                tp[ls0 + t, i, j] = lval[k, t]
            else:
                tp[ls0 + t, i, 0] = lval[k, t]
    return lfin[k], True


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
    if peak > _INT64_MAX or abs(c_int) << n > _INT64_MAX:
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


@njit(cache=True, inline="always")
def _exp_chain(cf, st, tp, ton, i, j, s0, v, x0, n, b_int, c_int, rq_m, rq_e, with16):
    """Steps from "q" on, for the clamped input v: q, x0q, r, poly_sum, poly_mul, poly, exp
    [, exp16] at indices s0, s0+1, ... Returns the last register's value."""
    q = reg(cf, st, tp, ton, i, j, s0, v // x0)
    p = mul_reg(cf, st, tp, ton, i, j, s0 + 1, x0, q)
    r = reg(cf, st, tp, ton, i, j, s0 + 2, v - p)
    t = reg(cf, st, tp, ton, i, j, s0 + 3, r + b_int)
    t = mul_reg(cf, st, tp, ton, i, j, s0 + 4, r, t)
    t = reg(cf, st, tp, ton, i, j, s0 + 5, t + c_int)
    # exp = max(floor(t * 2**(n - q)), 0)
    if t <= 0:
        e = reg(cf, st, tp, ton, i, j, s0 + 6, np.int64(0))
    else:
        e = shl_reg(cf, st, tp, ton, i, j, s0 + 6, t, n - q)
    if not with16:
        return e
    y, big = mul_shr_rne(e, rq_m, rq_e)
    if big:
        y = np.int64(32767) if (e >= 0) == (rq_m >= 0) else np.int64(-32768)
    elif y > 32767:
        y = np.int64(32767)
    elif y < -32768:
        y = np.int64(-32768)
    return reg(cf, st, tp, ton, i, j, s0 + 7, y)


@njit(cache=True)
def _k_exp_lut(cf, st, tp, lo, s0, x0, n, b_int, c_int, rq_m, rq_e, with16, out):
    for i in range(out.shape[0]):
        out[i] = _exp_chain(cf, st, tp, True, i, 0, s0, lo + i, x0, n, b_int, c_int, rq_m, rq_e, with16)


def _lut_exp(plan: _Plan, k: dict, with16: bool, rq: tuple[int, int]) -> tuple:
    s0 = plan.s("q")
    s1 = plan.s("exp16") + 1 if with16 else plan.s("exp") + 1
    lo = EXP_N * k["x0"]
    size = -lo + 1
    if size > _LUT_MAX:
        return _no_lut(s1 - s0)

    def fill(cf, st, tp, out):
        _k_exp_lut(cf, st, tp, np.int64(lo), np.int64(s0), np.int64(k["x0"]), np.int64(k["n"]),
                   np.int64(k["b_int"]), np.int64(k["c_int"]), np.int64(rq[0]), np.int64(rq[1]), with16, out)
    return _Lut(plan, s0, s1, lo, size, fill).args()


def _exp_steps(with16: bool) -> list[tuple[str, str]]:
    st = [("x_clamped", "e"), ("q", "e"), ("x0q", "e"), ("r", "e"), ("poly_sum", "e"), ("poly_mul", "e"),
          ("poly", "e"), ("exp", "e")]
    if with16:
        st.append(("exp16", "e"))
    return st


_EXP_WIDTHS = {"x_clamped": I32, "q": I32, "x0q": I32, "r": I32, "poly_sum": I32, "poly_mul": I64, "poly": I32,
               "exp": I64}


def _exp_ops(ops: OpCounts, regs: RegisterFile, n: int, with16: bool) -> None:
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    ops.add("compare", (w("x_clamped"),), n)
    ops.add("div", (w("x_clamped"),), n)  # divisor x0 held at the input width
    ops.add("mul", (w("x_clamped"), w("q")), n)
    ops.add("add", (w("r"),), n)
    ops.add("add", (w("poly_sum"),), n)
    ops.add("mul", (w("r"), w("poly_sum")), n)
    ops.add("add", (w("poly"),), n)
    ops.add("add", (w("q"),), n)  # the shift amount n - q
    ops.add("shift", (w("exp"),), n)
    ops.add("compare", (w("exp"),), n)  # max(., 0)
    if with16:
        ops.add("mul", (w("exp"), 32), n)
        ops.add("shift", (w("exp") + 32,), n)  # the rounding shift of the 96-bit product
        ops.add("compare", (w("exp16"),), 2 * n)  # the int16 clamp


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
def _k_iexp_block(i, cf, st, tp, ton, x, B, x0, n, b_int, c_int, lfin, lval, lev, lbad, llo, ls0, out, size, nx0,
                  usable):
    """Block i of :func:`_k_iexp` (the body of its parallel loop)."""
    p0 = i * B
    p1 = min(p0 + B, size)
    if usable:
        xs = x[p0:p1]  # slices indexed from 0: no negative-index wrap, so LLVM vectorizes the loop
        os = out[p0:p1]
        hi = np.int64(xs[0])
        for j in range(xs.shape[0]):
            v = np.int64(xs[j])
            hi = max(hi, v)
            os[j] = lfin[min(max(v, nx0), np.int64(0)) - llo]
        if hi <= 0:
            return
    for j in range(p1 - p0):
        p = p0 + j
        v = np.int64(x[p])
        if v < nx0:
            v = nx0
        v = reg(cf, st, tp, ton, i, j, 0, v)
        e, found = lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v)
        if not found:
            e = _exp_chain(cf, st, tp, ton, i, j, 1, v, x0, n, b_int, c_int, np.int64(0), np.int64(1), False)
        out[p] = e


@njit(cache=True, parallel=True)
def _k_iexp(cf, st, tp, ton, x, B, x0, n, b_int, c_int, lfin, lval, lev, lbad, llo, ls0, out):
    size = x.shape[0]
    nx0 = n * x0
    nl = lfin.shape[0]
    # fast path: x <= 0 keeps x_clamped in [n x0, 0], the table's domain; usable when that
    # register holds the whole domain and no table entry had an event
    usable = (not ton) and nl > 0 and fits(cf, 0, nx0) and fits(cf, 0, 0) and llo == nx0 and nl == 1 - nx0
    if usable:
        for t in range(nl):
            if lbad[t]:
                usable = False
    for i in prange(st.shape[0]):
        _k_iexp_block(np.int64(i), cf, st, tp, ton, x, B, x0, n, b_int, c_int, lfin, lval, lev, lbad, llo, ls0, out,
                      size, nx0, usable)


def i_exp(x: Any, scale: float, *, profile: str = "published", in_type: IntType | str = I32,
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
    _profile(profile, ("published",), op)
    in_t = _in_type(in_type, op)
    S = _scale(scale, op)
    k = _exp_params(S, op)
    arr = _input(x, in_t, op, min_ndim=0)
    regs = _make_regs(op, _EXP_WIDTHS, widths, overflow)
    flat, nb, B = _blocks(arr)
    plan = _Plan(regs, _exp_steps(False), nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        lut = _lut_exp(plan, k, False, (0, 1)) if flat.size >= 1024 else _no_lut(7)
        _k_iexp(*plan.args(), flat, np.int64(B), np.int64(k["x0"]), np.int64(k["n"]), np.int64(k["b_int"]),
                np.int64(k["c_int"]), *lut, out)
    tapd = plan.finish(arr.shape, "flat")
    ops = OpCounts()
    _exp_ops(ops, regs, int(flat.size), False)
    return OpResult(values=out.reshape(arr.shape), scale=k["scale_out"], ops=ops, registers=regs, taps=tapd)


# =============================================================================================
# softmax
# =============================================================================================
_SOFTMAX_PROFILES = ("published", "corrected")


@njit(cache=True, inline="always")
def _smax_norm(acc, corrected, out_bit):
    """(factor, shift) of the normalization: floor(2**32 / sum), or the corrected normalized one."""
    s = acc if acc != 0 else np.int64(1)
    if corrected:
        a = -s if s < 0 else s
        L2 = bitlen64(a)
        k = L2 - 32 if L2 > 32 else np.int64(0)
        return (np.int64(1) << np.int64(30 + L2 - k)) // (s >> k), np.int64(30 + L2 - out_bit)
    return (np.int64(1) << np.int64(32)) // s, np.int64(32 - out_bit)


@njit(cache=True, inline="always")
def _smax_out(p, sh, corrected, top):
    if corrected:
        if sh >= 63:
            o = np.int64(0)
        else:
            o = (p + (np.int64(1) << (sh - np.int64(1)))) >> sh
        return o if o < top else top
    return p >> sh


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_softmax_row(i, cf, st, tp, ton, x, x0, n, b_int, c_int, rq_m, rq_e, lfin, lval, lev, lbad, llo, ls0, corrected,
                   out_bit, out, N, nx0, top, nl):
    """Row i of :func:`_k_softmax` (the body of its parallel loop)."""
    mx = np.int64(x[i, 0])
    mn = mx
    for j in range(1, N):
        v = np.int64(x[i, j])
        mx = max(mx, v)
        mn = min(mn, v)
    # fast path: row-wise range checks of every register, then unchecked loops
    dlo = mn - mx
    vlo = max(dlo, nx0)
    ok = (not ton) and nl > 0 and fits(cf, 0, dlo) and fits(cf, 0, 0) and fits(cf, 1, vlo) and fits(cf, 1, 0)
    if ok:
        acc = np.int64(0)
        emin = np.int64(1) << np.int64(62)
        emax = np.int64(0)
        bad = False
        for j in range(N):
            k = max(x[i, j] - mx, nx0) - llo
            bad |= lbad[k]
            e = lfin[k]
            out[i, j] = e
            acc += e
            emin = min(emin, e)
            emax = max(emax, e)
        ok = (not bad) and emin >= 0 and fits(cf, 10, 0) and fits(cf, 10, acc)
        if ok:
            f, sh = _smax_norm(acc, corrected, out_bit)
            ok = f >= 0 and fits(cf, 11, f) and fits(cf, 12, emin * f) and fits(cf, 12, emax * f)
            ok = ok and fits(cf, 13, _smax_out(emin * f, sh, corrected, top))
            ok = ok and fits(cf, 13, _smax_out(emax * f, sh, corrected, top))
            if ok:
                for j in range(N):
                    out[i, j] = _smax_out(out[i, j] * f, sh, corrected, top)
    if ok:
        return
    # checked path: every register, in pipeline order
    acc = np.int64(0)
    for j in range(N):
        d = reg(cf, st, tp, ton, i, j, 0, x[i, j] - mx)
        v = d if d > nx0 else nx0
        v = reg(cf, st, tp, ton, i, j, 1, v)
        e, found = lut_get(cf, st, tp, ton, i, j, lfin, lval, lev, lbad, llo, ls0, v)
        if not found:
            e = _exp_chain(cf, st, tp, ton, i, j, 2, v, x0, n, b_int, c_int, rq_m, rq_e, True)
        out[i, j] = e
        acc = add_chk(cf, st, i, j, 10, acc, e)
    tap(tp, ton, i, -1, 10, acc)
    f, sh = _smax_norm(acc, corrected, out_bit)
    f = reg(cf, st, tp, ton, i, -1, 11, f)
    for j in range(N):
        p = mul_reg(cf, st, tp, ton, i, j, 12, out[i, j], f)
        out[i, j] = reg(cf, st, tp, ton, i, j, 13, _smax_out(p, sh, corrected, top))


@njit(cache=True, parallel=True)
def _k_softmax(cf, st, tp, ton, x, x0, n, b_int, c_int, rq_m, rq_e, lfin, lval, lev, lbad, llo, ls0,
               corrected, out_bit, out):
    R, N = x.shape
    nx0 = n * x0
    top = (np.int64(1) << np.int64(out_bit)) - np.int64(1)
    nl = lfin.shape[0]
    for i in prange(R):
        _k_softmax_row(np.int64(i), cf, st, tp, ton, x, x0, n, b_int, c_int, rq_m, rq_e, lfin, lval, lev, lbad, llo,
                       ls0, corrected, out_bit, out, N, nx0, top, nl)


_SOFTMAX_STEPS = [("x_sub", "e"), *_exp_steps(True), ("sum", "r"), ("factor", "r"), ("prod", "e"), ("out", "e")]


def softmax(x: Any, scale: float, *, profile: str = "published", out_bit: int = 8, exp_range: float = 1.0,
            in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
            taps: bool = False) -> OpResult:
    """I-BERT's integer softmax (``IntSoftmax``) along the last axis.

    ``published`` (the code, followed exactly; constants in :func:`exp_constants`,
    :func:`softmax_requant`)::

        d     = x - max(x)                                  # per row
        e     = i_exp(d)                                    # 64-bit, scale 0.358 S**2 / 2**30
        e16   = clamp(round_half_even(e * m / 2**e_sh), -32768, 32767)   # QuantAct(16), scale
                                                            #   exp_range / 32767 (design note §3.1)
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
    ``out_bit + 1``. Accuracy (design note, reproduced by the tests): max |error| about 0.012
    for logits N(0, 3**2), 64-128 per row, S in {0.1, 0.05, 0.01}.

    >>> import numpy as np
    >>> softmax(np.array([[0, 0, 0, 0]]), 0.1).values.tolist()
    [[63, 63, 63, 63]]
    """
    op = "ibert.softmax"
    profile = _profile(profile, _SOFTMAX_PROFILES, op)
    in_t = _in_type(in_type, op)
    S = _scale(scale, op)
    out_bit = _int_param(out_bit, "out_bit", op, 1, 30)
    rng_ = _scale(exp_range, op, "exp_range")
    k = _exp_params(S, op)
    rq_m, rq_e, s16 = softmax_requant(S, rng_)
    if abs(rq_m) >= 1 << 32 or rq_e < 1:
        raise ConfigError(f"{op}: the 16-bit requantization multiplier ({rq_m}, {rq_e}) is outside the emulated "
                          "range (|m| < 2**32, e >= 1); exp_range is too small")
    arr = _input(x, in_t, op)
    corrected = profile == "corrected"
    defaults = {"x_sub": I32, **_EXP_WIDTHS, "exp16": I16, "sum": IntType(48) if corrected else I32,
                "factor": U32, "prod": I64, "out": IntType(out_bit if corrected else out_bit + 1, signed=False)}
    regs = _make_regs(op, defaults, widths, overflow)
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = _Plan(regs, _SOFTMAX_STEPS, R, N, taps)
    assert plan.s("sum") == 10 and plan.s("out") == 13
    out = np.empty((R, N), dtype=np.int64)
    if arr.size:
        xr = _rows(arr)
        lut = _lut_exp(plan, k, True, (rq_m, rq_e)) if arr.size >= 1024 else _no_lut(8)
        _k_softmax(*plan.args(), xr, np.int64(k["x0"]), np.int64(k["n"]), np.int64(k["b_int"]), np.int64(k["c_int"]),
                   np.int64(rq_m), np.int64(rq_e), *lut, corrected, np.int64(out_bit), out)
    tapd = plan.finish(arr.shape, "rows")
    ops = _softmax_ops(regs, R, N, in_t, corrected)
    return OpResult(values=out.reshape(arr.shape), scale=2.0 ** -out_bit, ops=ops, registers=regs, taps=tapd)


def _softmax_ops(regs: RegisterFile, R: int, N: int, in_t: IntType, corrected: bool) -> OpCounts:
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    n = R * N
    ops = OpCounts()
    if n == 0:
        return ops
    ops.add("compare", (in_t.bits,), R * (N - 1))  # row max
    ops.add("add", (w("x_sub"),), n)
    _exp_ops(ops, regs, n, True)
    ops.add("add", (w("sum"),), R * (N - 1))
    if corrected:
        ops.add("compare", (w("sum"),), R)  # leading-zero count of the sum
    ops.add("div", (w("sum"),), R)
    ops.add("mul", (w("exp16"), w("factor")), n)
    if corrected:
        ops.add("add", (w("prod"),), n)  # the rounding increment
        ops.add("compare", (w("out"),), n)  # the clamp
    ops.add("shift", (w("prod"),), n)
    return ops


# =============================================================================================
# i-GELU
# =============================================================================================
_GELU_PROFILES = ("published", "corrected")


def gelu_constants(scale: float, profile: str = "published", sig_bits: int = 12) -> dict[str, Any]:
    """Integer constants of I-BERT's i-GELU at input scale ``S`` (design note §3.2).

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
    if profile == "published":
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


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_gelu_block(i, cf, st, tp, ton, x, B, b_int, c_int, sh, shift_int, negate, out, size):
    """Block i of :func:`_k_gelu` (the body of its parallel loop)."""
    for j in range(B):
        p = i * B + j
        if p >= size:
            break
        xv = np.int64(x[p])
        a = reg(cf, st, tp, ton, i, j, 0, -xv if xv < 0 else xv)
        m = reg(cf, st, tp, ton, i, j, 1, a if a < -b_int else -b_int)
        t = reg(cf, st, tp, ton, i, j, 2, m + b_int)
        t = mul_reg(cf, st, tp, ton, i, j, 3, t, t)
        t = reg(cf, st, tp, ton, i, j, 4, t + c_int)
        if xv < 0:
            y = -t
        elif xv == 0:
            y = np.int64(0)
        else:
            y = t
        y = reg(cf, st, tp, ton, i, j, 5, y)
        y = reg(cf, st, tp, ton, i, j, 6, y >> sh)
        g = reg(cf, st, tp, ton, i, j, 7, y + shift_int)
        o = mul_reg(cf, st, tp, ton, i, j, 8, xv, g)
        if negate:
            o = reg(cf, st, tp, ton, i, j, 9, -o)
        out[p] = o


@njit(cache=True, parallel=True)
def _k_gelu(cf, st, tp, ton, x, B, b_int, c_int, sh, shift_int, negate, out):
    size = x.shape[0]
    for i in prange(st.shape[0]):
        _k_gelu_block(np.int64(i), cf, st, tp, ton, x, B, b_int, c_int, sh, shift_int, negate, out, size)


def gelu(x: Any, scale: float, *, profile: str = "published", sig_bits: int = 12, in_type: IntType | str = I32,
         widths: dict | None = None, overflow: str = "raise", taps: bool = False) -> OpResult:
    """I-BERT's i-GELU (``IntGELU``), element-wise: ``x * (1 + L(x / sqrt 2)) / 2`` with the
    second-order erf approximation ``L(u) = sgn(u) [a (min(|u|, -b) + b)**2 + 1]``,
    ``a = -0.2888``, ``b = -1.769``.

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
    >>> r = gelu(np.array([-3000, -1000, 0, 1000, 3000]), 0.001, profile="corrected")
    >>> r.values.tolist(), r.scale > 0
    ([-3000, -1103000, 0, 5662000, 20292000], True)
    """
    op = "ibert.gelu"
    profile = _profile(profile, _GELU_PROFILES, op)
    in_t = _in_type(in_type, op)
    S = _scale(scale, op)
    sig_bits = _int_param(sig_bits, "sig_bits", op, 1, 30)
    k = gelu_constants(S, profile, sig_bits)
    peak_poly = max(k["b_int"] ** 2, abs(k["c_int"])) + abs(k["c_int"])
    peak_sig = (peak_poly >> k["shift"]) + 1 + abs(k["shift_int"])
    if peak_poly > _INT64_MAX or peak_sig * (1 << 32) > _INT64_MAX:
        raise ConfigError(f"{op}: scale {S!r} is too small for exact int64 emulation of i-GELU")
    arr = _input(x, in_t, op, min_ndim=0)
    corrected = profile == "corrected"
    steps = [("abs", "e"), ("clip", "e"), ("poly_sum", "e"), ("poly_sq", "e"), ("poly", "e"), ("erf", "e"),
             ("erf_shifted", "e"), ("sig", "e"), ("out", "e")]
    defaults = {"abs": U32, "clip": I32, "poly_sum": I32, "poly_sq": I64, "poly": I32, "erf": I32,
                "erf_shifted": I32, "sig": I32, "out": I32}
    if corrected:
        steps.append(("neg", "e"))
        defaults["neg"] = I32
    regs = _make_regs(op, defaults, widths, overflow)
    flat, nb, B = _blocks(arr)
    plan = _Plan(regs, steps, nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    if flat.size:
        _k_gelu(*plan.args(), flat, np.int64(B), np.int64(k["b_int"]), np.int64(k["c_int"]), np.int64(k["shift"]),
                np.int64(k["shift_int"]), corrected, out)
    tapd = plan.finish(arr.shape, "flat")
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    n = int(flat.size)
    ops = OpCounts()
    if n:
        ops.add("compare", (w("abs"),), n)  # |x| (sign test + negate)
        ops.add("add", (w("abs"),), n)
        ops.add("compare", (w("clip"),), n)
        ops.add("add", (w("poly_sum"),), n)
        ops.add("mul", (w("poly_sum"), w("poly_sum")), n)
        ops.add("add", (w("poly"),), n)
        ops.add("add", (w("erf"),), n)  # apply the sign (conditional negate)
        ops.add("shift", (w("erf_shifted"),), n)
        ops.add("add", (w("sig"),), n)
        ops.add("mul", (in_t.bits, w("sig")), n)
        if corrected:
            ops.add("add", (w("neg"),), n)
    return OpResult(values=out.reshape(arr.shape), scale=k["scale_out"], ops=ops, registers=regs, taps=tapd)


# =============================================================================================
# LayerNorm (also the engine of I-ViT's I-LayerNorm and I-LLM's DI-Norm)
# =============================================================================================
# sqrt methods
_SQ_FLOAT, _SQ_IVIT, _SQ_NORM = 0, 1, 2
# mean modes
_MEAN_RNE, _MEAN_TRUNC, _MEAN_NONE = 0, 1, 2

_LN_STEPS = [("sum", "r"), ("mean", "r"), ("y", "e"), ("y_shifted", "e"), ("y_sq", "e"), ("var", "r"),
             ("var_norm", "r"), ("sqrt_iter", "r"), ("std", "r"), ("factor", "r"), ("prod", "e"), ("out", "e"),
             ("out_bias", "e")]


@njit(cache=True, inline="always")
def _div_round(a, d, mode):
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
def _rv(cf, st, tp, ton, i, s, v, rec, ok):
    """A per-row register: recorded when ``rec``, else only range-checked (the fast path)."""
    if rec:
        return reg(cf, st, tp, ton, i, -1, s, v), ok
    return v, ok and fits(cf, s, v)


@njit(cache=True, inline="always")
def _ln_sqrt(cf, st, tp, ton, i, v, N, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d, rec):
    """Steps var_norm (6), sqrt_iter (7), std (8), factor (9) of a row with variance v >= 0.
    Returns (factor, iterations, ok); ``ok`` is False in the fast path when a register would
    not hold its value (the caller then redoes the row with ``rec``)."""
    ok = True
    if sqrt_mode == 1:
        vn, ok = _rv(cf, st, tp, ton, i, 6, v, rec, ok)
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
        std, ok = _rv(cf, st, tp, ton, i, 8, k, rec, ok)
        if std == 0:
            if rec:
                return div0(cf, st, tp, ton, i, -1, 9), iv_steps, ok
            return np.int64(0), iv_steps, False
        f, ok = _rv(cf, st, tp, ton, i, 9, ((np.int64(1) << np.int64(num_bits)) - np.int64(1)) // std, rec, ok)
        return f, iv_steps, ok
    g = np.int64(0)
    if sqrt_mode == 2:
        g = (norm_top - bitlen64(v)) // 2
        if g < 0:
            g = np.int64(0)
    vs = v << np.int64(2 * g)
    if div_d:
        vs = vs // N
    vn, ok = _rv(cf, st, tp, ton, i, 6, vs, rec, ok)
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
            if shift > 0 and np.int64(r) > (np.int64(_INT64_MAX) >> shift):
                return np.int64(0), it, False
            std = np.int64(r) << shift
            ok = ok and fits(cf, 8, std)
        if std == 0:
            std = np.int64(1)
        f, ok = _rv(cf, st, tp, ton, i, 9, (np.int64(1) << np.int64(num_bits)) // std, rec, ok)
        return f, it, ok
    std, ok = _rv(cf, st, tp, ton, i, 8, np.int64(r), rec, ok)
    if std == 0:
        f, ok = _rv(cf, st, tp, ton, i, 9, np.int64(0), rec, ok)
    else:
        f, ok = _rv(cf, st, tp, ton, i, 9, (np.int64(1) << np.int64(num_bits + g)) // std, rec, ok)
    return f, it, ok


@njit(cache=True, inline="always")
def _ln_round(p, prod_shift, prod_round):
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
    """Row i of :func:`_k_layernorm` (the body of its parallel loop)."""
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
            m = _div_round(acc, np.int64(N), 0 if mean_mode == 0 else 1)
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
            ok = fits(cf, 4, sqmax) and fits(cf, 4, 0) and sqmax <= (np.int64(_INT64_MAX) - max(ev, 0)) // N
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
            f, it, ok = _ln_sqrt(cf, st, tp, ton, i, max(v, np.int64(0)), N, shift, sqrt_mode, iv_steps,
                                 num_bits, norm_top, div_d, False)
        if ok:
            a = max(abs(ylo), abs(yhi))
            ok = f >= 0 and (a == 0 or f <= np.int64(_INT64_MAX) // a)
        if ok:
            olo = _ln_round(ylo * f, prod_shift, prod_round)
            ohi = _ln_round(yhi * f, prod_shift, prod_round)
            ok = fits(cf, 10, ylo * f) and fits(cf, 10, yhi * f) and fits(cf, 11, olo) and fits(cf, 11, ohi)
            if has_bias:
                ok = ok and fits(cf, 12, olo + bias_lo) and fits(cf, 12, ohi + bias_hi)
            else:
                ok = ok and fits(cf, 12, olo) and fits(cf, 12, ohi)
        if ok:
            its[i] = it
            for j in range(N):
                o = _ln_round(out[i, j] * f, prod_shift, prod_round)
                out[i, j] = o + bias[j] if has_bias else o
            return
    # ---- checked path ----
    m = np.int64(0)
    if mean_mode != 2:
        acc = np.int64(0)
        for j in range(N):
            acc = add_chk(cf, st, i, j, 0, acc, x[i, j])
        tap(tp, ton, i, -1, 0, acc)
        m = reg(cf, st, tp, ton, i, -1, 1, _div_round(acc, np.int64(N), 0 if mean_mode == 0 else 1))
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
    f, it, _ok = _ln_sqrt(cf, st, tp, ton, i, v, N, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d, True)
    its[i] = it
    for j in range(N):
        p = mul_reg(cf, st, tp, ton, i, j, 10, out[i, j], f)
        o = reg(cf, st, tp, ton, i, j, 11, _ln_round(p, prod_shift, prod_round))
        if has_bias:
            o = reg(cf, st, tp, ton, i, j, 12, o + bias[j])
        else:
            o = reg(cf, st, tp, ton, i, j, 12, o)
        out[i, j] = o


@njit(cache=True, parallel=True)
def _k_layernorm(cf, st, tp, ton, x, mean_mode, shift, sqrt_mode, iv_steps, num_bits, norm_top, div_d, prod_shift,
                 prod_round, eps, bias, has_bias, bias_lo, bias_hi, its, out):
    """Generic integer LayerNorm / RMSNorm row kernel (steps in the order of _LN_STEPS).

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


def _ln_affine(gamma: Any, beta: Any, D: int, s_y: float, op: str,
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


def _check_float_params(a: Any, name: str, op: str) -> None:
    if a is None:
        return
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise DTypeError(f"{op}: {name} must be a real array, got {arr.dtype}")


_LN_PROFILES = ("published", "corrected")


def layernorm(x: Any, scale: float, gamma: Any = None, beta: Any = None, *, profile: str = "published",
              shift: int = 0, in_type: IntType | str = I22, widths: dict | None = None,
              overflow: str = "raise", taps: bool = False) -> OpResult:
    """I-BERT's integer LayerNorm (``IntLayerNorm``) over the last axis (length D).

    ``published``::

        mean   = round_half_even(sum(x) / D);  y = x - mean
        var    = sum(floor(y / 2**shift)**2)           # 'var' register: unsigned 32 bits (max_bit)
        std    = floor(sqrt(var)) * 2**shift           # exact i-sqrt (intsim.isqrt); the code
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
    profile = _profile(profile, _LN_PROFILES, op)
    in_t = _in_type(in_type, op)
    _scale(scale, op)
    shift = _int_param(shift, "shift", op, 0, 62)
    _check_float_params(gamma, "gamma", op)
    _check_float_params(beta, "beta", op)
    arr = _input(x, in_t, op)
    D = arr.shape[-1]
    if D == 0:
        raise ShapeError(f"{op}: the normalized axis is empty")
    corrected = profile == "corrected"
    s_y = math.sqrt(D) / 2 ** 30
    out_scale, bias = _ln_affine(gamma, beta, D, s_y, op)
    defaults = {"sum": IntType(40), "mean": I32, "y": I32, "y_shifted": I32, "y_sq": I64,
                "var": I64 if corrected else U32, "var_norm": I64, "sqrt_iter": I64, "std": I32,
                "factor": U32, "prod": I64, "out": I32, "out_bias": I32}
    regs = _make_regs(op, defaults, widths, overflow)
    return _run_layernorm(op, arr, regs, taps, in_t, mean_mode=_MEAN_RNE, shift=0 if corrected else shift,
                          sqrt_mode=_SQ_NORM if corrected else _SQ_FLOAT, iv_steps=0, num_bits=31, norm_top=62,
                          prod_shift=1, prod_round=0, eps_int=0, bias=bias, out_scale=out_scale)


def _run_layernorm(op: str, arr: np.ndarray, regs: RegisterFile, taps: bool, in_t: IntType, *, mean_mode: int,
                   shift: int, sqrt_mode: int, iv_steps: int, num_bits: int, norm_top: int, prod_shift: int,
                   prod_round: int, eps_int: Any, bias: np.ndarray | None, out_scale: Any,
                   div_d: bool = False) -> OpResult:
    R = int(np.prod(arr.shape[:-1])) if arr.ndim > 1 else 1
    N = arr.shape[-1]
    plan = _Plan(regs, _LN_STEPS, R, N, taps)
    out = np.empty((R, N), dtype=np.int64)
    its = np.zeros(R, dtype=np.int64)
    if arr.size:
        xr = _rows(arr)
        b = bias if bias is not None else np.zeros(1, dtype=np.int64)
        eps = np.ascontiguousarray(np.asarray(eps_int, dtype=np.int64).reshape(-1))
        if eps.size == 0:
            eps = np.zeros(1, dtype=np.int64)
        blo = int(b.min()) if bias is not None else 0
        bhi = int(b.max()) if bias is not None else 0
        _k_layernorm(*plan.args(), xr, np.int64(mean_mode), np.int64(shift), np.int64(sqrt_mode), np.int64(iv_steps),
                     np.int64(num_bits), np.int64(norm_top), bool(div_d), np.int64(prod_shift), np.int64(prod_round),
                     eps, b, bias is not None, np.int64(blo), np.int64(bhi), its, out)
    tapd = plan.finish(arr.shape, "rows")
    has_eps = bool(np.any(np.asarray(eps_int) != 0))
    ops = _ln_ops(regs, R, N, mean_mode, shift, sqrt_mode, int(its.sum()), bias is not None, has_eps)
    return OpResult(values=out.reshape(arr.shape), scale=out_scale, ops=ops, registers=regs, taps=tapd)


def _ln_ops(regs: RegisterFile, R: int, N: int, mean_mode: int, shift: int, sqrt_mode: int, its: int,
            has_bias: bool, has_eps: bool) -> OpCounts:
    w = lambda s: regs.type_of(s).bits  # noqa: E731
    n = R * N
    ops = OpCounts()
    if n == 0:
        return ops
    if mean_mode != _MEAN_NONE:
        ops.add("add", (w("sum"),), R * (N - 1))
        ops.add("div", (w("sum"),), R)
        ops.add("add", (w("y"),), n)
    if shift:
        ops.add("shift", (w("y_shifted"),), n)
    ops.add("mul", (w("y_shifted"), w("y_shifted")), n)
    ops.add("add", (w("var"),), R * (N - 1) + (R if has_eps else 0))
    if sqrt_mode == _SQ_IVIT:
        ops.add("div", (w("sqrt_iter"),), its).add("add", (w("sqrt_iter"),), its)
        ops.add("shift", (w("sqrt_iter"),), its)
    else:
        if sqrt_mode == _SQ_NORM:
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
    in_t = _in_type(in_type, op)
    arr = _input(x, in_t, op)
    xr = _rows(arr)
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
    from .rounding import round_float
    s = check_scale(scale, "scale")
    bits = _int_param(bits, "bits", "ibert.quantize", 2, 32)
    n = 2 ** (bits - 1) - 1
    q = round_float(np.asarray(x, dtype=np.float64) * (1.0 / s), "half_even")
    return np.clip(q, -n, n - 1)


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_fpmul_block(i, cf, st, tp, ton, x, B, m, e, lo, hi, do_clamp, out, size):
    """Block i of :func:`_k_fpmul` (the body of its parallel loop)."""
    for j in range(B):
        p = i * B + j
        if p >= size:
            break
        xv = np.int64(x[p])
        y, big = mul_shr_rne(xv, m, e)
        if big:
            y = wide(cf, st, tp, ton, i, j, 0, y, (xv < 0) != (m < 0))
        else:
            y = reg(cf, st, tp, ton, i, j, 0, y)
        if do_clamp:
            if y < lo:
                y = lo
            elif y > hi:
                y = hi
        out[p] = reg(cf, st, tp, ton, i, j, 1, y)


@njit(cache=True, parallel=True)
def _k_fpmul(cf, st, tp, ton, x, B, m, e, lo, hi, do_clamp, out):
    size = x.shape[0]
    for i in prange(st.shape[0]):
        _k_fpmul_block(np.int64(i), cf, st, tp, ton, x, B, m, e, lo, hi, do_clamp, out, size)


def fixedpoint_mul(x: Any, in_scale: float, out_scale: float, bits: int = 8, *, profile: str = "published",
                   in_type: IntType | str = I32, widths: dict | None = None, overflow: str = "raise",
                   taps: bool = False) -> OpResult:
    """I-BERT's ``FixedPointMul`` (the dyadic requantization of ``QuantAct``; design note §2.1).

    ``(m, e) = ibert_frexp(in_scale / float64(float32(out_scale)))``;
    ``y = round_half_even(x * m / 2**e)`` exactly (128-bit product); then for ``bits`` in
    {4, 8, 16} a clamp to ``[-2**(bits-1), 2**(bits-1) - 1]`` (other widths are not clamped, as in
    the fairseq code; the HF port also clamps 32). Registers: ``scaled`` 64 (before the clamp)
    and ``out`` (``bits`` wide, 64 when unclamped). Output scale: ``out_scale``.

    >>> fixedpoint_mul(np.array([1000, -1000, 12345]), 0.01, 0.1).values.tolist()
    [100, -100, 127]
    """
    op = "ibert.fixedpoint_mul"
    _profile(profile, ("published",), op)
    in_t = _in_type(in_type, op)
    si = _scale(in_scale, op, "in_scale")
    so = _scale(out_scale, op, "out_scale")
    bits = _int_param(bits, "bits", op, 2, 64)
    m, e = ibert_frexp(ibert_scale_ratio(si, so))
    if abs(m) >= 1 << 32 or e < 1:
        raise ConfigError(f"{op}: the scale ratio {si / so!r} is outside the emulated range (ratio < 2**30)")
    arr = _input(x, in_t, op, min_ndim=0)
    clamp = bits in (4, 8, 16)
    regs = _make_regs(op, {"scaled": I64, "out": IntType(bits) if clamp else I64}, widths, overflow)
    flat, nb, B = _blocks(arr)
    plan = _Plan(regs, [("scaled", "e"), ("out", "e")], nb, B, taps)
    out = np.empty(flat.size, dtype=np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if flat.size:
        _k_fpmul(*plan.args(), flat, np.int64(B), np.int64(m), np.int64(e), np.int64(max(lo, -(1 << 63))),
                 np.int64(min(hi, _INT64_MAX)), clamp, out)
    tapd = plan.finish(arr.shape, "flat")
    n = int(flat.size)
    ops = OpCounts()
    if n:
        ops.add("mul", (in_t.bits, 32), n).add("shift", (in_t.bits + 32,), n)
        if clamp:
            ops.add("compare", (bits,), 2 * n)
    return OpResult(values=out.reshape(arr.shape), scale=so, ops=ops, registers=regs, taps=tapd)


OPERATORS: dict[str, Callable[..., OpResult]] = {
    "i_exp": i_exp,
    "softmax": softmax,
    "gelu": gelu,
    "layernorm": layernorm,
    "fixedpoint_mul": fixedpoint_mul,
}
#: the positional inputs of each operator (all take ``profile=`` and the keyword options above)
INPUTS: dict[str, tuple[str, ...]] = {
    "i_exp": ("x", "scale"),
    "softmax": ("x", "scale"),
    "gelu": ("x", "scale"),
    "layernorm": ("x", "scale"),
    "fixedpoint_mul": ("x", "in_scale", "out_scale"),
}
PROFILES: dict[str, tuple[str, ...]] = {
    "i_exp": ("published",),
    "softmax": _SOFTMAX_PROFILES,
    "gelu": _GELU_PROFILES,
    "layernorm": _LN_PROFILES,
    "fixedpoint_mul": ("published",),
}
