"""The checked-register runtime of the integer operators (Python side).

Every integer operator declares the registers of its pipeline (a :class:`~intsim.regs.registers.RegisterFile`
of named steps with widths and an overflow policy). A :class:`Plan` turns that into the flat arrays
the numba kernels fill (:mod:`intsim.regs.prims` holds the primitives they inline) and, after the
kernel, into register events, raised or recorded as the policy says, and into the taps (the
intermediate registers). The argument checks every operator shares live here too, so that every
operator words its errors the same way.

Overflow policies have one numeric encoding, :data:`intsim.core.overflow.POLICY_CODE` (``wrap`` 0,
``saturate`` 1, ``raise`` 2, ``record`` 3), used by every kernel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.arrays import as_int_array
from ..core.dyadic import check_scale
from ..core.errors import ConfigError, RegisterOverflow, ShapeError
from ..core.inttype import IntType
from ..core.overflow import POLICY_CODE
from .registers import RegisterEvent, RegisterFile

INT64_MAX = (1 << 63) - 1
BLOCK = 4096  #: elements per parallel block of the element-wise kernels
LUT_MAX = 1 << 22  #: largest look-up table the emulator builds to speed up an element chain


def check_input(x: Any, in_type: IntType, op: str, name: str = "x", min_ndim: int = 1) -> np.ndarray:
    """Validate an integer operand: integer dtype, at least ``min_ndim`` dims, values in ``in_type``."""
    arr = as_int_array(x, f"{op}: {name}")
    if arr.ndim < min_ndim:
        raise ShapeError(f"{op}: {name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    info = np.iinfo(arr.dtype)
    if not (in_type.min <= int(info.min) and int(info.max) <= in_type.max):  # the dtype alone proves it
        in_type.check(arr, f"{op}: {name}")
    return arr


def check_in_type(t: Any, op: str, max_bits: int = 32) -> IntType:
    try:
        it = IntType.parse(t)
    except ConfigError as exc:
        raise ConfigError(f"{op}: in_type: {exc}") from None
    if it.bits > max_bits:
        raise ConfigError(f"{op}: in_type {it.name} is wider than the {max_bits} bits this operator accepts")
    return it


def check_op_scale(scale: Any, op: str, name: str = "scale") -> float:
    try:
        return check_scale(scale, name)
    except ConfigError as exc:
        raise ConfigError(f"{op}: {exc}") from None


def check_variant(variant: Any, valid: tuple[str, ...], op: str) -> str:
    """The name of one of an operator's published variants (``published``, ``corrected``, ...)."""
    if variant not in valid:
        raise ConfigError(f"{op}: unknown variant {variant!r}; valid: {', '.join(valid)}")
    return variant



def check_int_param(v: Any, name: str, op: str, lo: int, hi: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ConfigError(f"{op}: {name} must be an integer from {lo} to {hi}, got {v!r}")
    return int(v)


def make_registers(op: str, defaults: dict[str, Any], widths: dict | None, overflow: str) -> RegisterFile:
    """A RegisterFile with the operator's default widths, overridden by ``widths``."""
    if overflow not in POLICY_CODE:
        raise ConfigError(f"{op}: unknown overflow policy {overflow!r}; valid: {', '.join(POLICY_CODE)}")
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


def check_register_u64(regs: RegisterFile, step: str, values: np.ndarray) -> np.ndarray:
    """RegisterFile.check for unsigned 64-bit data that may exceed int64."""
    if values.dtype == np.uint64 and values.size and int(values.max()) > INT64_MAX:
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


class Plan:
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
        self.cf = np.array([[t.min, t.max, t.bits, 1 if t.signed else 0, POLICY_CODE[regs.overflow]] for t in types],
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


NATIVE_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64))


def kernel_dtype(arr: np.ndarray) -> Any:
    """Signed 8/16/32/64-bit arrays go to the kernels as they are (numba specializes the kernel
    per dtype and widens every operation to int64); other integer arrays are converted."""
    return arr.dtype if arr.dtype in NATIVE_DTYPES else np.int64


def as_rows(arr: np.ndarray) -> np.ndarray:
    """(..., N) -> contiguous (R, N) of a kernel dtype."""
    n = arr.shape[-1]
    return np.ascontiguousarray(arr.reshape(-1, n), dtype=kernel_dtype(arr))


def as_blocks(arr: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Flatten for the element-wise kernels: (flat array, number of blocks, block size)."""
    flat = np.ascontiguousarray(arr.reshape(-1), dtype=kernel_dtype(arr))
    size = flat.size
    B = min(BLOCK, max(size, 1))
    return flat, -(-size // B), B


class Lut:
    """A table of an element chain over an integer domain [lo, lo + size): the post-policy
    value of each of its registers and the overflow event of each entry, so a kernel replays
    events and taps exactly as the chain would produce them. ``fill(cf, st, tp, out)`` runs
    the chain on entry i (kernel row i, column 0) and stores the chain's result in ``out[i]``."""

    def __init__(self, plan: Plan, s0: int, s1: int, lo: int, size: int, fill: Callable):
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


#: tables kept across calls by :func:`cached_lut` (least recently used first), and their budget
_LUT_CACHE: OrderedDict[tuple, tuple] = OrderedDict()
_LUT_LOCK = threading.Lock()
LUT_CACHE_BYTES = 256 << 20


def cached_lut(key: tuple, plan: Plan, s0: int, s1: int, lo: int, size: int, fill: Callable) -> tuple:
    """``Lut(plan, s0, s1, lo, size, fill).args()``, built once and reused by later calls.

    A table is a function of the chain's fill kernel and its parameters (``key``, which the
    caller must make complete: the kernel's name and every parameter ``fill`` passes it), of
    the registers' ranges, widths and policies (``plan.cf``) and of the domain; events and taps
    are replayed from it per element, so a reused table gives every result, event and tap of a
    fresh one. An operator called again with the same scale (every layer of a model, every
    batch) then skips the table's construction. The kernels only read the arrays. Tables are
    kept up to :data:`LUT_CACHE_BYTES` in all (least recently used dropped first)."""
    k = (key, plan.cf.shape, plan.cf.tobytes(), int(s0), int(s1), int(lo), int(size))
    with _LUT_LOCK:  # operators may be called from several threads
        hit = _LUT_CACHE.get(k)
        if hit is not None:
            _LUT_CACHE.move_to_end(k)
            return hit
    args = Lut(plan, s0, s1, lo, size, fill).args()
    nbytes = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
    if nbytes <= LUT_CACHE_BYTES // 4:
        with _LUT_LOCK:
            _LUT_CACHE[k] = args
            total = sum(a.nbytes for v in _LUT_CACHE.values() for a in v if isinstance(a, np.ndarray))
            while total > LUT_CACHE_BYTES:
                _, old = _LUT_CACHE.popitem(last=False)
                total -= sum(a.nbytes for a in old if isinstance(a, np.ndarray))
    return args


def no_lut(nsteps: int) -> tuple:
    return (np.zeros(0, np.int64), np.zeros((0, nsteps), np.int64), np.zeros((0, nsteps, 2), np.int64),
            np.zeros(0, np.bool_), np.int64(0), np.int64(0))
