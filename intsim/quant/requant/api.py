""":func:`requantize`: one entry point over every back-end (see :mod:`intsim.quant.requant`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...core.arrays import as_int_array, to_int64
from ...core.deprecation import renamed_keyword
from ...core.dyadic import Dyadic, check_scale, quantize_multiplier
from ...core.errors import ConfigError, RegisterOverflow
from ...core.inttype import IntType
from ...core.opcounts import OpCounts
from ...core.rounding import (
    rounding_mode,
    shift_right,
)
from ...regs.opresult import OpResult
from ...regs.registers import RegisterEvent, RegisterFile
from .common import (
    INT8,
    INT32,
    INT64_MAX,
    INT64_MIN,
    REQUANT_MODES,
    REQUANT_ORDERS,
    check_param_shape,
    check_registers,
    int_type,
)
from .exact import abs_max, mul_shift_round_exact
from .fixedpoint import multiply_by_quantized_multiplier_int64
from .kernels import (
    DYADIC_CHAIN,
    FK_DIV32,
    FK_DIV64,
    FK_FLOAT32,
    FK_MUL32,
    FK_MUL64,
    FK_MUL64_ZP,
    TFLITE_CHAIN,
    quantize_linear_f32,
    run_dyadic,
    run_float,
    run_tflite,
)

#: the float back-ends and their arithmetic (see :func:`intsim.quant.requant.kernels.run_float`)
FLOAT_KINDS = {"onnx_ref": FK_MUL64, "onnx_refeval": FK_MUL64_ZP, "ort_fp32": FK_MUL32, "gemmini_fp32": FK_MUL32,
               "ort_div": FK_DIV32, "onnx_refeval_div": FK_DIV64}

# ------------------------------------------------------------------------------------------------
# requantize
# ------------------------------------------------------------------------------------------------


def onnx_multiplier(a_scale: float, b_scale: float, y_scale: float) -> float:
    """The multiplier the ONNX reference ``QLinearMatMul`` uses: ``a_scale * b_scale / y_scale``
    computed in float32 (the scales are float32 tensors), returned as a Python float.

    >>> onnx_multiplier(0.1, 0.2, 0.3) == float(__import__("numpy").float32(0.1) * __import__("numpy").float32(0.2)
    ...                                          / __import__("numpy").float32(0.3))
    True
    """
    a, b, y = (np.float32(check_scale(v, n)) for v, n in ((a_scale, "a_scale"), (b_scale, "b_scale"),
                                                            (y_scale, "y_scale")))
    with np.errstate(over="raise", under="ignore"):
        return float(np.float32(np.float32(a * b) / y))


def _check_float32_scale(mode: str, sarr: np.ndarray) -> None:
    """ConfigError unless every scale is finite in float32 (the float32 back-ends take float32
    scales: a float64 scale beyond float32's range would be an infinite scale there)."""
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(sarr.astype(np.float32))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        where = f" at index {tuple(int(j) for j in np.unravel_index(i, sarr.shape))}" if sarr.ndim else ""
        raise ConfigError(f"{mode}: scale{where} ({float(sarr.reshape(-1)[i])!r}) rounds to infinity in float32 "
                          f"(largest float32: {float(np.finfo(np.float32).max)!r}); {mode} takes float32 scales")


def _check_float32_divisor(mode: str, sarr: np.ndarray) -> None:
    """ConfigError unless every scale is nonzero in float32 (a divisor below float32's smallest
    subnormal would round to zero there)."""
    with np.errstate(under="ignore"):
        bad = sarr.astype(np.float32) == 0
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        where = f" at index {tuple(int(j) for j in np.unravel_index(i, sarr.shape))}" if sarr.ndim else ""
        raise ConfigError(f"{mode}: scale{where} ({float(sarr.reshape(-1)[i])!r}) rounds to zero in float32; "
                          f"{mode} divides by the float32 scale")


def _scales_array(scale: Any, allow_negative: bool) -> np.ndarray:
    """A float scale, an array-like of them, or Dyadic(s), as a checked float64 array."""
    if isinstance(scale, Dyadic):
        arr = np.asarray(scale.value)
    elif isinstance(scale, (list, tuple)) and scale and all(isinstance(s, Dyadic) for s in scale):
        arr = np.asarray([s.value for s in scale])
    else:
        if isinstance(scale, (bool, np.bool_, str, bytes)):
            raise ConfigError(f"scale must be a real number, an array of them or a Dyadic, got {scale!r}")
        try:
            arr = np.asarray(scale)
        except (TypeError, ValueError):
            raise ConfigError(f"scale must be a real number, an array of them or a Dyadic, got {scale!r}") from None
        if arr.dtype.kind not in "iuf":
            raise ConfigError(f"scale must be a real number, an array of them or a Dyadic, got {scale!r}")
        arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ConfigError("scale is empty")
    flat = arr.reshape(-1)
    for what, bad in (("NaN", np.isnan(flat)), ("infinite", np.isinf(flat)), ("zero", flat == 0),
                      ("negative", (flat < 0) & (not allow_negative))):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            hint = " (pass allow_negative=True if intended)" if what == "negative" else ""
            where = f" at index {tuple(int(j) for j in np.unravel_index(i, arr.shape))}" if arr.ndim else ""
            raise ConfigError(f"scale{where} is {what} ({flat[i]!r}); a finite positive scale is required{hint}")
    return arr


def _dyadics(scale: Any, allow_negative: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    """(m, k) int64 arrays and the output-scale description for the dyadic mode."""
    if isinstance(scale, Dyadic):
        ds = [scale]
        shape: tuple = ()
    elif isinstance(scale, (list, tuple)) and scale and all(isinstance(s, Dyadic) for s in scale):
        ds = list(scale)
        shape = (len(ds),)
    else:
        arr = _scales_array(scale, allow_negative)
        ds = [Dyadic.from_float(float(s), bits=31) for s in arr.reshape(-1)]
        shape = arr.shape
    for d in ds:
        if d.m == 0:
            raise ConfigError(f"scale {d} is zero")
        if d.m < 0 and not allow_negative:
            raise ConfigError(f"scale {d} is negative; pass allow_negative=True if intended")
        if not INT64_MIN < d.m <= INT64_MAX:
            raise ConfigError(f"scale {d}: the mantissa does not fit int64")
    m = np.array([d.m for d in ds], dtype=np.int64).reshape(shape)
    k = np.array([d.k for d in ds], dtype=np.int64).reshape(shape)
    return m, k, (ds[0] if not shape else ds)


def _clamp_bounds(out: IntType, zp: int) -> tuple[int, int]:
    """Bounds on the rounded value r so that sat(r + zp) == clip(r, lo, hi) + zp, clipped to int64.

    The clipping to int64 changes a bound only for 64-bit outputs with a zero point, and only
    matters where r itself can leave int64 (the exact 128-bit products of ``overflow="record"``):
    :func:`_exact_beyond_int64` redoes those entries with Python ints."""
    return max(out.min - zp, INT64_MIN), min(out.max - zp, INT64_MAX)


def _exact_beyond_int64(r: np.ndarray, xa: np.ndarray, m: np.ndarray, k: np.ndarray, mode: str, order: str,
                        out: IntType, zp: int, lo: int, hi: int) -> np.ndarray:
    """``r + zp``, except that entries of ``r`` at (or, for jam, next to) an int64-clipped bound are
    recomputed exactly with Python ints: the exact rounded value ``R`` of ``x*m / 2**k`` may lie
    beyond int64 there (between ``out.min - zp`` and ``INT64_MIN``, say), where ``r`` holds the
    int64 limit instead. Returns ``sat_out(R + zp)`` (round_then_saturate) or, for
    clamp_then_round, ``R`` = the rounding of ``x*m / 2**k`` clamped to the exact integer bounds
    ``[out.min - zp, out.max - zp]``, plus ``zp``, saturated (only jam can step off a bound)."""
    r = np.asarray(r, dtype=np.int64)
    values = np.array(r + zp, dtype=np.int64)
    lo_x, hi_x = out.min - zp, out.max - zp
    sel = np.zeros(r.shape, dtype=bool)
    if lo_x < lo:
        sel |= r <= lo + 1
    if hi_x > hi:
        sel |= r >= hi - 1
    if not sel.any():
        return values
    xb, mb, kb = np.broadcast_arrays(xa, m, k)
    for i in np.flatnonzero(sel):
        idx = np.unravel_index(int(i), r.shape)
        p, kk = int(xb[idx]) * int(mb[idx]), int(kb[idx])
        if order == "clamp_then_round" and p >> kk < lo_x:  # floor(v) < lo iff v < lo (lo an integer)
            v = _round_bound(lo_x, mode)
        elif order == "clamp_then_round" and -((-p) >> kk) > hi_x:  # ceil(v) > hi iff v > hi
            v = _round_bound(hi_x, mode)
        else:
            v = int(shift_right(p, kk, mode))
        values[idx] = min(max(v + zp, out.min), out.max)
    return values


@renamed_keyword("registers", "widths")
def requantize(
    x: Any,
    scale: Any,
    rounding: str | None = None,
    out: IntType | str = INT8,
    *,
    mode: str = "dyadic",
    in_type: IntType | str = INT32,
    zero_point: int = 0,
    order: str = "round_then_saturate",
    allow_negative: bool = False,
    overflow: str = "raise",
    widths: Mapping[str, Any] | None = None,
    taps: bool = False,
) -> OpResult:
    """Requantize integers ``x`` (real value ``x * s_in``) to ``out`` by the scale ``s``.

    The result is ``sat_out(round(x * s) + zero_point)``, with the rounding and arithmetic of
    the back-end ``mode`` (see the module table): ``dyadic`` (exact, any ``rounding``;
    default ``half_even``), ``tflite_double``, ``tflite_single``, ``onnx_ref``, ``ort_fp32``,
    ``gemmini_fp32``, ``onnx_refeval`` (the zero point added in float64 before rounding). Only
    ``dyadic`` takes a ``rounding``; the other back-ends fix theirs and refuse a different one.
    In the dividing modes ``ort_div`` (float32) and ``onnx_refeval_div`` (float64) ``scale`` is
    a divisor, ONNX ``QuantizeLinear``'s ``y_scale``: the result is ``sat_out(round(x / s) +
    zero_point)``, divided by ``float32(s)`` (``y_scale`` is a float32 tensor; a scale that is zero
    or infinite in float32 is refused).

    **Float overflow** (float modes). When the float product ``x * s`` overflows the working
    type (float32, or float64 in ``onnx_ref``, ``onnx_refeval`` and ``onnx_refeval_div``; a
    quotient likewise in the dividing modes) it is ``+inf`` or ``-inf`` (never NaN: ``x``
    and ``s`` are finite), and it saturates like any other value beyond the output range:
    ``+inf`` gives ``out.max``, ``-inf`` gives ``out.min``, in both orders, with or without
    taps (no error, no register event). That is the specified ``saturate(round(x / y_scale) +
    y_zero_point)`` of ONNX ``QuantizeLinear``, and what the runtimes do: onnxruntime's MLAS
    clamps the float value to the output range (as floats, so inf is clamped) before the
    float->int conversion, and Gemmini's HardFloat fp32->int conversion saturates. It is also
    continuous: the largest finite products already saturate (every output here has at most
    53 bits), so an error just past the overflow threshold would have no counterpart just
    below it. (The ONNX Python reference evaluator computes ``np.rint(v).astype(np.int32)``,
    which numpy leaves undefined for ``|v| >= 2**31``, inf included; intsim follows the
    specified saturation there too, as it does for finite values beyond int32.) The taps show
    an overflowed product as the inf bit pattern in ``scaled_bits``. A scale that itself
    overflows float32 is refused (ConfigError) by the float32 modes, in both paths.

    Parameters
    ----------
    x:
        integer array (int64 or narrower); every entry must fit ``in_type`` (default int32),
        else OperandRangeError. Float arrays raise DTypeError.
    scale:
        a :class:`~intsim.core.dyadic.Dyadic`, a list of Dyadics, a float or an array of floats.
        Its shape must broadcast *to* ``x``'s shape: a scalar, per-channel along ``x``'s
        trailing axes (e.g. ``(C,)`` for ``x`` of shape ``(..., C)``, ``(R, 1)`` for
        ``(R, C)``), or ``x``'s own shape; any other shape (one that does not broadcast, or
        that would enlarge the result beyond ``x.shape``) raises ShapeError naming both
        shapes. Zero, negative (unless ``allow_negative``), NaN or Inf scales raise ConfigError,
        and so do scales beyond float32's range in ``ort_fp32`` and ``gemmini_fp32``.
    out:
        output type (``IntType`` or a name such as ``"int8"``); saturation target.
    zero_point:
        an integer scalar in ``out``'s range, added after rounding, before saturation.
    order:
        ``round_then_saturate`` (ONNX, TFLite): ``sat_out(round(v) + zp)`` with ``v = x*s`` as
        the mode computes it. ``clamp_then_round`` (qonnx, TVM): ``round(clip(v, lo, hi)) + zp``
        where ``lo = out.min - zp`` and ``hi = out.max - zp`` are exact integers (compared
        with ``v`` exactly, in every mode: never rounded to the float working type).
    overflow, widths:
        policy and width overrides for the intermediate registers: ``product`` (64 bits) in
        ``dyadic``; ``shifted_input`` and ``result`` (32 bits) in the TFLite modes; the float
        modes have none. A name the mode does not declare raises ConfigError listing the
        valid names. (``registers=`` is the old name of ``widths=``; it still works, with a
        DeprecationWarning.)
    taps:
        also return the intermediate registers as taps (default False: the fused kernels
        write only the values).

    Returns
    -------
    OpResult with int64 ``values`` of ``x``'s shape (a 0-d int64 array for a scalar ``x``, in
    both paths, like the other intsim operators; taps likewise), ``scale`` = the output step
    (``1.0``: the caller's output scale is ``s_in / s``; requantize itself only maps
    integers), op counts per element and taps (``product``, ``rounded``, ... depending on the mode; float modes tap
    the float32/float64 bit patterns of the scaled value as ``scaled_bits``).

    >>> import numpy as np
    >>> requantize(np.array([5, -5, 7]), 0.5, "half_away").values.tolist()
    [3, -3, 4]
    >>> requantize(np.array([2**24 + 1]), 1.0, mode="ort_fp32", out="int32").values.tolist()   # fp32 rounds
    [16777216]
    >>> requantize(np.array([2**24 + 1]), 1.0, mode="onnx_ref", out="int32").values.tolist()
    [16777217]
    >>> requantize(np.array([2**30]), 4.0, mode="ort_fp32", out="int32", zero_point=-100,   # exact bound 2**31 + 99
    ...            order="clamp_then_round").values.tolist()
    [2147483647]
    >>> requantize(np.array([2**62, -2**62]), 1e300, mode="onnx_ref", in_type="int64").values.tolist()  # +-inf
    [127, -128]
    >>> requantize(np.array([75, 45]), 30.0, mode="ort_div", zero_point=1).values.tolist()  # 2.5 -> 2, 1.5 -> 2
    [3, 3]
    >>> requantize(np.array([1, 3]), 0.5, mode="onnx_refeval", zero_point=1).values.tolist()  # rint(1.5), rint(2.5)
    [2, 2]
    """
    if mode not in REQUANT_MODES:
        raise ConfigError(f"unknown requantization mode {mode!r}; valid: {', '.join(REQUANT_MODES)} "
                          "(tosa_rescale is not provided: its exact semantics are not specified in intsim's notes)")
    if order not in REQUANT_ORDERS:
        raise ConfigError(f"unknown order {order!r}; valid: {', '.join(REQUANT_ORDERS)}")
    out_t = int_type(out, "out")
    in_t = int_type(in_type, "in_type")
    if out_t.bits == 64 and not out_t.signed:
        raise ConfigError("out=uint64 is not supported (results are held in int64)")
    if isinstance(zero_point, bool) or not isinstance(zero_point, (int, np.integer)):
        raise ConfigError(f"zero_point must be an integer, got {zero_point!r}")
    zp = int(zero_point)
    if not out_t.contains(zp):
        raise ConfigError(f"zero_point {zp} is outside the output type {out_t.name} [{out_t.min}, {out_t.max}]")
    xa = _checked_input(x, in_t)
    n = int(xa.size)
    taps_d: dict[str, np.ndarray] = {}
    ops = OpCounts()
    lo, hi = _clamp_bounds(out_t, zp)
    tapd = taps_d if taps else None
    ctr = order == "clamp_then_round"
    if mode == "dyadic":
        rmode = rounding_mode(rounding if rounding is not None else "half_even")
        regs = RegisterFile("requantize", dict(DYADIC_CHAIN.defaults(), **check_registers(
            f"requantize(mode={mode!r})", widths, DYADIC_CHAIN.names)), overflow=overflow)
        m, k, _ = _dyadics(scale, allow_negative)
        check_param_shape("requantize", "scale", m.shape, "x", xa.shape)
        xmax, mmax = abs_max(xa), abs_max(m)
        if xmax * mmax <= INT64_MAX:  # every product fits int64
            values = run_dyadic(regs, xa, m, k, rmode, lo, hi, zp, ctr, tapd, xmax)
        else:
            values = _requant_dyadic_wide(to_int64(xa, "x"), m, k, rmode, lo, hi, zp, ctr, regs, tapd)
            if regs.overflow == "record" and (out_t.min - zp < lo or out_t.max - zp > hi):
                values = _exact_beyond_int64(values - zp, xa, m, k, rmode, order, out_t, zp, lo, hi)
        mbits = max(1, int(mmax).bit_length() + 1)
        prod_bits = min(128, in_t.bits + mbits)
        ops.add("mul", (in_t.bits, mbits), n).add("shift", (prod_bits,), n)
    elif mode in ("tflite_double", "tflite_single"):
        if rounding is not None and rounding_mode(rounding) != ("half_up" if mode == "tflite_single" else "half_away"):
            raise ConfigError(f"mode {mode!r} fixes its own rounding; do not pass rounding={rounding!r}")
        single = mode == "tflite_single"
        w = check_registers(f"requantize(mode={mode!r})", widths, TFLITE_CHAIN.names)
        q, s = _tflite_params(scale, single)
        check_param_shape("requantize", "scale", q.shape, "x", xa.shape)
        regs = RegisterFile("requantize", dict(TFLITE_CHAIN.defaults(), **w), overflow=overflow)
        if in_t.bits > 32:
            if in_t.bits > 48:
                raise ConfigError(f"TFLite's int64-input MultiplyByQuantizedMultiplier takes |x| < 2**47; "
                                  f"in_type {in_t.name} is too wide")
            r = multiply_by_quantized_multiplier_int64(to_int64(xa, "x"), q, s, _regs=regs, _taps=taps_d)
            values = np.clip(r, lo, hi) + zp  # already an integer: both orders coincide
            ops.add("mul", (48, 16), n).add("add", (64,), n).add("shift", (64,), n)
        else:
            if not in_t.signed and in_t.bits == 32:
                INT32.check(xa, "x")  # uint32 values above INT32_MAX are not int32 inputs
            values = run_tflite(regs, xa, q, s, single, lo, hi, zp, tapd)  # both orders coincide
            if single:
                ops.add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n)
            else:
                ops.add("shift", (32,), n)                                   # x << left
                ops.add("mul", (32, 32), n).add("add", (64,), n).add("shift", (64,), n)  # SRDHM
                ops.add("shift", (32,), n).add("compare", (32,), n).add("add", (32,), n)  # RDBPOT
    else:
        if rounding is not None and rounding_mode(rounding) != "half_even":
            raise ConfigError(f"mode {mode!r} rounds half to even; do not pass rounding={rounding!r}")
        if mode == "gemmini_fp32" and zp != 0:
            raise ConfigError("gemmini_fp32 has no output zero point (Gemmini scales and saturates only)")
        if out_t.bits > 53:
            raise ConfigError(f"float back-ends cannot produce exact {out_t.name} results; use at most 53 bits")
        kind = FLOAT_KINDS[mode]
        use32 = kind in FK_FLOAT32
        if use32 and in_t.bits > 53:
            raise ConfigError(f"{mode}: inputs wider than 53 bits are not supported (in_type {in_t.name})")
        regs = RegisterFile("requantize", check_registers(f"requantize(mode={mode!r})", widths, ()),
                            overflow=overflow)
        sarr = _scales_array(scale, allow_negative)
        check_param_shape("requantize", "scale", sarr.shape, "x", xa.shape)
        if use32 or kind == FK_DIV64:  # (onnx_refeval_div divides by the float32 scale too)
            _check_float32_scale(mode, sarr)
        if kind in (FK_DIV32, FK_DIV64):
            _check_float32_divisor(mode, sarr)
        values = run_float(xa, sarr, kind, lo, hi, zp, tapd)
        w = 24 if use32 else 53
        ops.add("div" if kind in (FK_DIV32, FK_DIV64) else "mul", (w, w), n)
        ops.add("shift", (32 if w == 24 else 64,), 2 * n)  # int->float, rint
        if kind == FK_MUL64_ZP:
            ops.add("add", (64,), n)  # the zero point, added in float64
    if zp:
        ops.add("add", (out_t.bits,), n)
    ops.add("compare", (out_t.bits,), 2 * n)
    # int64 arrays in every path: a scalar x gives 0-d arrays (never numpy scalars), as the other
    # intsim operators return for scalar input
    values = np.asarray(values, dtype=np.int64)
    if taps:
        taps_d = {name: np.asarray(t) for name, t in taps_d.items()}
        taps_d["output"] = values
    return OpResult(values=values, scale=1.0, ops=ops, registers=regs, taps=taps_d if taps else {})


def _checked_input(x: Any, in_t: IntType) -> np.ndarray:
    """``x`` as an integer array whose entries fit ``in_t`` (no copy; no scan when its dtype's
    whole range fits ``in_t``)."""
    arr = as_int_array(x, "x")
    if arr.dtype == np.uint64:
        arr = to_int64(arr, "x")
    info = np.iinfo(arr.dtype)
    if info.min < in_t.min or info.max > in_t.max:
        in_t.check(arr, "x")
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return arr


def _tflite_params(scale: Any, single: bool) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(scale, Dyadic) or (isinstance(scale, (list, tuple)) and scale
                                     and all(isinstance(s, Dyadic) for s in scale)):
        ds = [scale] if isinstance(scale, Dyadic) else list(scale)
        pairs = []
        for d in ds:
            if d.m <= 0:
                raise ConfigError(f"scale {d} must be positive for the TFLite back-ends")
            qq, ss = d.to_tflite()
            if not -31 <= ss <= 30:
                raise ConfigError(f"scale {d} gives TFLite shift {ss}, outside [-31, 30]")
            pairs.append((qq, ss))
        shape: tuple = () if isinstance(scale, Dyadic) else (len(ds),)
    else:
        arr = _scales_array(scale, allow_negative=False)
        pairs = [quantize_multiplier(float(s), single_rounding=single) for s in arr.reshape(-1)]
        for s_, (qq, ss) in zip(arr.reshape(-1), pairs, strict=True):
            if qq == 0:
                raise ConfigError(f"scale {float(s_)} is below 2**-32: TFLite flushes it to a zero multiplier")
            if ss > 30:
                raise ConfigError(f"scale {float(s_)} needs a left shift of {ss} (> 30)")
        shape = arr.shape
    q = np.array([p[0] for p in pairs], dtype=np.int64).reshape(shape)
    s = np.array([p[1] for p in pairs], dtype=np.int64).reshape(shape)
    return q, s


def _product_overflow(regs: RegisterFile, xb: np.ndarray, mb: np.ndarray, bad: np.ndarray) -> None:
    """Record (and under ``raise``, raise) products ``x*m`` that do not fit the product register."""
    t = regs.type_of("product")
    first = int(np.flatnonzero(bad.reshape(-1))[0])
    idx = tuple(int(i) for i in np.unravel_index(first, bad.shape))
    value = int(xb[idx]) * int(mb[idx])
    count = int(np.count_nonzero(bad))
    regs.events.append(RegisterEvent(regs.op, "product", t.bits, t.signed, count, idx, value, regs.overflow))
    if regs.overflow == "raise":
        raise RegisterOverflow(
            f"{regs.op}: register 'product' ({t.name}) overflowed: {count} value(s) outside [{t.min}, {t.max}]; "
            f"first at index {idx}: {value} (overflow='record' keeps the exact product)",
            op=regs.op, step="product", value=value, bits=t.bits)


def _requant_dyadic_wide(xx: np.ndarray, m: np.ndarray, k: np.ndarray, mode: str, lo: int, hi: int, zp: int,
                         ctr: bool, regs: RegisterFile, taps: dict | None) -> np.ndarray:
    """The dyadic requantization when some ``|x| |m|`` exceeds int64 (``values``, zero point
    added): where no product does, as :func:`run_dyadic`; else the product register overflows
    (an event; raised under ``raise``): ``wrap``/``saturate`` give the 64-bit register's
    product, ``record`` the exact result of the (wider than declared) product."""
    xb, mb, kb = np.broadcast_arrays(xx, m, k)
    r, wide = mul_shift_round_exact(xx, m, k, mode, product_fits=False, clip=(lo, hi))
    one = np.ones(1, dtype=np.int64)
    if not wide.any():
        return run_dyadic(regs, xb * mb, one, kb, mode, lo, hi, zp, ctr, taps)
    t = regs.type_of("product")
    low = (xb.astype(np.uint64) * mb.astype(np.uint64)).astype(np.int64)  # the product mod 2**64
    exact_low = np.where(wide, 0, low)  # exact where the product fits int64
    bad = wide | ~np.asarray(t.contains(exact_low))
    _product_overflow(regs, xb, mb, bad)  # raises under "raise"
    if regs.overflow in ("wrap", "saturate"):
        if regs.overflow == "wrap":
            prod = np.asarray(t.wrap(low), dtype=np.int64)
        else:
            neg = (xb < 0) != (mb < 0)
            sat = np.where(neg, np.int64(t.min), np.int64(t.max))
            prod = np.where(wide, sat, np.asarray(t.saturate(exact_low), dtype=np.int64))
        # the products after the register's policy (its event is recorded): round and saturate them
        return run_dyadic(RegisterFile("requantize", {"product": 64}), prod, one, kb, mode, lo, hi, zp, ctr, taps)
    # record: the exact result of the (wider than declared) product
    if ctr:
        wider = (max(lo - 1, INT64_MIN), min(hi + 1, INT64_MAX))
        fl, _ = mul_shift_round_exact(xx, m, k, "floor", product_fits=False, clip=wider)
        ce, _ = mul_shift_round_exact(xx, m, k, "ceil", product_fits=False, clip=wider)
        r = np.where(fl < lo, _round_bound(lo, mode), np.where(ce > hi, _round_bound(hi, mode), r))
        if mode == "jam":
            r = np.clip(r, lo, hi)  # jam can move an exact bound by one
    else:
        if taps is not None:
            taps["rounded"] = r
        r = np.clip(r, lo, hi)
    return r + zp


def _round_bound(b: int, mode: str) -> int:
    """The rounding of an (exact) integer bound: the bound itself, except ``jam`` (``b | 1``)."""
    return b | 1 if mode == "jam" else b


_QL_OUT = ("int8", "uint8", "int16", "uint16")


def quantize_linear(x: Any, y_scale: Any, y_zero_point: Any = 0, out: IntType | str = "uint8", *,
                    runtime: str = "onnxruntime", nan: str = "raise") -> OpResult:
    """ONNX ``QuantizeLinear`` of a float32 (or, in the reference evaluator, int32) tensor, bit for bit.

    float32 ``x`` (both runtimes): ``sat(rint(fl32(x / float32(y_scale))) + y_zero_point)``, a
    float32 division (IEEE, one rounding), round half to even, the zero point added after the
    rounding, saturation to ``out`` (int8, uint8, int16 or uint16): onnxruntime's CPU kernel
    (MLAS divides by the scale; it does not multiply by a reciprocal) and the ONNX reference
    evaluator (``op_quantize_linear.py``) agree. int32 ``x``: only the reference evaluator
    (``runtime="reference"``) accepts it, and divides in float64 (numpy promotes int32 / float32
    to float64): ``sat(rint(fl64(float64(x) / float64(float32(y_scale)))) + y_zero_point)``;
    onnxruntime has no int32-input kernel (ConfigError). ``+-inf`` saturates. A NaN in ``x`` is
    refused (``nan="raise"``, ConfigError) unless ``nan="minimum"``: then it gives the output
    type's minimum, as onnxruntime's kernel does (MLAS clamps with ``MAXPS``, which returns the
    bound for NaN; :mod:`intsim.onnx` runs models that way). ``y_scale`` is a positive scalar or an
    array broadcasting to ``x``'s shape (per channel along trailing axes), finite and nonzero in
    float32; ``y_zero_point`` an integer or an integer array broadcasting likewise, within
    ``out``. Returns an OpResult with int64 ``values`` and ``scale`` = ``y_scale`` (as float32
    values in float64).

    >>> quantize_linear(np.array([75.0, -75.0, 74.99], dtype=np.float32), 30.0, 0, "int8").values.tolist()
    [2, -2, 2]
    >>> quantize_linear(np.array([16777217], dtype=np.int32), 2.0, 0, "int16", runtime="reference").values.tolist()
    [32767]
    """
    from ...core.errors import DTypeError

    if runtime not in ("onnxruntime", "reference"):
        raise ConfigError(f"quantize_linear: runtime must be 'onnxruntime' or 'reference', got {runtime!r}")
    out_t = int_type(out, "out")
    if out_t.name not in _QL_OUT:
        raise ConfigError(f"quantize_linear: out must be one of {', '.join(_QL_OUT)}, got {out_t.name}")
    if nan not in ("raise", "minimum"):
        raise ConfigError(f"quantize_linear: nan must be 'raise' or 'minimum', got {nan!r}")
    if isinstance(y_zero_point, (bool, np.bool_)) or not (
            isinstance(y_zero_point, (int, np.integer))
            or (isinstance(y_zero_point, np.ndarray) and y_zero_point.dtype.kind in "iu")):
        raise ConfigError(f"y_zero_point must be an integer or an integer array, got {y_zero_point!r}")
    zp = np.asarray(y_zero_point, dtype=np.int64)
    if zp.size and (int(zp.min()) < out_t.min or int(zp.max()) > out_t.max):
        bad = int(zp.reshape(-1)[np.flatnonzero((zp.reshape(-1) < out_t.min) | (zp.reshape(-1) > out_t.max))[0]])
        raise ConfigError(f"y_zero_point {bad} is outside the output type {out_t.name} [{out_t.min}, {out_t.max}]")
    xa = np.asarray(x)
    if xa.dtype == np.int32:
        if runtime == "onnxruntime":
            raise ConfigError("quantize_linear: onnxruntime has no QuantizeLinear kernel for int32 input "
                              "(use runtime='reference', or requantize(..., mode='ort_div') for float32(x))")
    elif xa.dtype != np.float32:
        raise DTypeError(f"quantize_linear: x must be a float32 (or int32) array, got dtype {xa.dtype}")
    elif nan == "raise" and np.isnan(xa).any():
        raise ConfigError("quantize_linear: x contains NaN")
    sarr = _scales_array(y_scale, allow_negative=False)
    check_param_shape("quantize_linear", "y_scale", sarr.shape, "x", xa.shape)
    if zp.ndim:
        check_param_shape("quantize_linear", "y_zero_point", zp.shape, "x", xa.shape)
    _check_float32_scale("quantize_linear", sarr)
    _check_float32_divisor("quantize_linear", sarr)
    s32 = sarr.astype(np.float32)
    if xa.dtype == np.float32 and s32.ndim == 0 and zp.ndim == 0:  # one pass (numba), same arithmetic
        values = np.empty(xa.shape, np.int64)
        quantize_linear_f32(np.ascontiguousarray(xa).reshape(-1), np.float32(s32), int(zp), out_t.min,
                                   out_t.max, out_t.min, values.reshape(-1))
        return OpResult(values=values, scale=float(s32), ops=_quantize_linear_ops(xa.size, 24, out_t, bool(zp)))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = xa.astype(np.float64) / s32.astype(np.float64) if xa.dtype == np.int32 else xa / s32
        r = np.clip(np.rint(v), out_t.min - zp, out_t.max - zp)  # integer bounds, exact in float32 and float64
    values = np.asarray(np.where(np.isnan(r), 0, r).astype(np.int64) + zp, dtype=np.int64)
    if nan == "minimum":
        values = np.where(np.isnan(v), out_t.min, values)
    ops = _quantize_linear_ops(xa.size, 53 if xa.dtype == np.int32 else 24, out_t, bool(zp.any()))
    return OpResult(values=values, scale=s32.astype(np.float64) if s32.ndim else float(s32), ops=ops)


def _quantize_linear_ops(n: int, w: int, out_t: IntType, zp: bool) -> OpCounts:
    """The operations of a ``QuantizeLinear`` of ``n`` values: a ``w``-bit division, a rounding
    shift, the zero point's add (when nonzero) and two compares per value."""
    ops = OpCounts().add("div", (w, w), n).add("shift", (64 if w == 53 else 32,), n)
    if zp:
        ops.add("add", (out_t.bits,), n)
    return ops.add("compare", (out_t.bits,), 2 * n)
