"""TFLite / TFLite Micro / XNNPACK integer activations and gemmlowp's fixed-point ``logistic`` and
``tanh``, bit-exact.

==================================  ======================  =====================================================
function                            input                   output (real = (q - zero point) * scale)
==================================  ======================  =====================================================
:func:`gemmlowp_logistic`           Q\\ *k* raw, 16/32 bit   Q0 raw of 1 / (1 + exp(-x))
:func:`gemmlowp_tanh`               Q\\ *k* raw, 16/32 bit   Q0 raw of tanh(x)
:func:`logistic_int8`               int8, scale, zp         int8, 1/256, -128
:func:`tanh_int8`                   int8, scale, zp         int8, output scale / zp as declared (1/128, 0)
:func:`logistic_int16`              int16, scale, zp 0      int16, 1/32768, 0
:func:`tanh_int16`                  int16, scale, zp 0      int16, 1/32768, 0
:func:`softmax_int16`               int16, scale, zp 0      int16, 1/32768, 0 (along the last axis)
==================================  ======================  =====================================================

Which kernel computes what depends on the runtime; ``variant=`` names the kernel:

=========  ===============================================================  =====================================
operator   variant: kernel                                                   who runs it
=========  ===============================================================  =====================================
8-bit      ``"xnnpack"`` (default): XNNPACK's LUT (double ``exp`` sigmoid,   TFLite's default interpreter
           ``tanhf``; ``nearbyint(t / out_scale + out_zp)``)                 (``Interpreter(model_content=..)``:
                                                                              BUILTIN with the XNNPACK delegate)
8-bit      ``"lut"``: TFLite's ``LUTPopulateInt8`` (float32 ``expf`` /       TFLite ``BUILTIN_REF``,
           ``tanhf``; ``roundf(t / out_scale) + out_zp``)                    ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``
8-bit      ``"reference"``: ``reference_integer_ops::Logistic`` / ``Tanh``   TFLite Micro
           (gemmlowp fixed point on Q4.27, TFLite Micro's parameters)
int16      ``"optimized"`` (default): ``optimized_ops`` gemmlowp on 16-bit   TFLite BUILTIN (with or without
           raws for a power-of-two input scale (2**-12; tanh also 2**-11),   delegates: XNNPACK leaves int16)
           else the reference kernel
int16      ``"reference"``: ``reference_integer_ops`` interpolation in       TFLite ``BUILTIN_REF``, TFLite Micro
           ``sigmoid_table_uint16`` (256 entries, Q0.16)
softmax    ``"tflite"`` (default): ``SoftmaxInt16``, tables from double      every TFLite resolver
           math, ``scale * beta`` in float32
softmax    ``"tflm"``: the same kernel, tables from float32 math,            TFLite Micro
           ``scale * beta`` in double
=========  ===============================================================  =====================================

The 8-bit variants agree on almost every entry; they differ where a float result lands on (or
within an ulp of) a rounding boundary (``tanh_int8`` at input scale 0.035170745, input 1: ``lut`` 5,
``xnnpack`` 4, as ``tanhf`` gives exactly 4.5 / 128; the fixed-point ``reference`` now and then by
one step). Every variant was checked against the real runtime (``tests/test_tflite_act.py``:
ai-edge-litert 2.3.0's interpreter with each op resolver, and the tflite-micro interpreter) on
every input value of many scales.

Float steps follow the C types exactly: float32 operations are IEEE float32 (numpy float32), and
the transcendental functions come from ``libm=``: ``"c"`` (default: the C library's ``expf``,
``tanhf``, ``logf`` and ``exp`` through ctypes, the very functions the TFLite binary on this machine
calls) or ``"exact"`` (correctly rounded, the same on every platform). They differ where the C
library is not correctly rounded and that moves a result across a rounding boundary: glibc 2.36's
``tanhf(0.019533733f)`` is ``0.01953125`` (the exact value is 0.6 ulp below), a tie that TFLite's
table rounds up to 3 (``libm="c"``, what TFLite gives) where the exact value rounds to 2. The
tables are built once per parameter set and cached.

Sources (semantics read, not copied; the one data table, ``sigmoid_table_uint16``, is TFLite's
as published): gemmlowp ``fixedpoint/fixedpoint.h`` (16e8662c3491); LiteRT (f67457790c9c)
``tflite/kernels/activations.cc``, ``kernels/internal/common.h``,
``kernels/internal/reference/integer_ops/logistic.h`` and ``tanh.h``,
``kernels/internal/reference/softmax.h``, ``kernels/internal/optimized/optimized_ops.h``,
``kernels/internal/quantization_util.cc``; TFLite Micro (90b983c2b3f1)
``micro/kernels/logistic_common.cc``, ``tanh.cc``, ``softmax_common.cc``; XNNPACK (75db3c093b6d)
``src/reference/unary-elementwise.cc``, ``src/operators/unary-elementwise-nc.c``.

Op counts are those of the C kernels per element (the tables are built in Prepare, not counted):
a table lookup counts as ``lut``; the gemmlowp primitives as in :mod:`intsim.ops.gemmlowp`.

>>> import numpy as np
>>> logistic_int8(np.array([-100, 0, 10, 100]), 0.05).values.tolist()
[-126, 0, 31, 126]
>>> softmax_int16(np.array([[0, 100, 200]]), 0.01).values.tolist()
[[2950, 8020, 21798]]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from collections.abc import Callable
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from ..core.arrays import as_int_array
from ..core.deprecation import renamed_keyword
from ..core.dyadic import check_scale, quantize_multiplier
from ..core.errors import ConfigError, RegisterOverflow
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.tflite_tables import SIGMOID_TABLE_UINT16
from ..regs.opresult import OpResult
from ..regs.registers import RegisterFile
from .gemmlowp import QuantOpResult
from .opspec import OpSpec

__all__ = [
    "gemmlowp_logistic", "gemmlowp_tanh",
    "logistic_int8", "tanh_int8", "logistic_int16", "tanh_int16", "softmax_int16",
    "int8_activation_lut", "int16_activation_params", "int8_reference_params", "softmax_int16_params",
    "softmax_int16_luts", "SIGMOID_TABLE_UINT16", "INT8_VARIANTS", "INT16_VARIANTS", "SOFTMAX_INT16_VARIANTS",
    "LIBMS", "OPS",
]

INT8_VARIANTS: tuple[str, ...] = ("xnnpack", "lut", "reference")
INT16_VARIANTS: tuple[str, ...] = ("optimized", "reference")
SOFTMAX_INT16_VARIANTS: tuple[str, ...] = ("tflite", "tflm")
LIBMS: tuple[str, ...] = ("c", "exact")

_SIG = np.array(SIGMOID_TABLE_UINT16, dtype=np.int64)

#: exp(-2**j) in Q0.31 for j = -2 .. 4 (gemmlowp's barrel shifter), before RescaleConstantInitializer
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
_F32 = np.float32

# ------------------------------------------------------------------------------------------------
# gemmlowp fixed point on int64 arrays holding 16- or 32-bit raws
# ------------------------------------------------------------------------------------------------


def _wrap(v: Any, w: int) -> Any:
    """Two's-complement wrap of int64 values to ``w`` bits (C's conversion back to the raw type)."""
    h = np.int64(1 << (w - 1))
    return ((v + h) & np.int64((1 << w) - 1)) - h


def _srdhm(a: Any, b: Any, w: int) -> Any:
    """SaturatingRoundingDoublingHighMul: floor((a b + 2**(w-2)) / 2**(w-1)); min*min -> max."""
    lo = -(1 << (w - 1))
    r = (a * b + np.int64(1 << (w - 2))) >> np.int64(w - 1)
    return np.where((a == lo) & (b == lo), np.int64((1 << (w - 1)) - 1), r)


def _rdbpot(x: Any, e: int) -> Any:
    """RoundingDivideByPOT: x / 2**e rounded half away from zero."""
    if e == 0:
        return x
    mask = np.int64((1 << e) - 1)
    return (x >> np.int64(e)) + ((x & mask) > ((mask >> 1) + (x < 0)))


def _rdbpot_int(x: int, e: int) -> int:
    """:func:`_rdbpot` of one Python int."""
    mask = (1 << e) - 1
    return (x >> e) + int((x & mask) > (mask >> 1) + (x < 0))


def _srmpot(x: Any, e: int, w: int) -> Any:
    """SaturatingRoundingMultiplyByPOT<e> for e >= 0: x * 2**e saturated to w bits."""
    if e == 0:
        return x
    thr = (1 << (w - 1 - e)) - 1
    return np.where(x > thr, np.int64((1 << (w - 1)) - 1),
                    np.where(x < -thr, np.int64(-(1 << (w - 1))), x << np.int64(e)))


def _const(c32: int, w: int) -> int:
    """A gemmlowp int32 constant for w-bit raws (``RescaleConstantInitializer``)."""
    return _rdbpot_int(c32, 32 - w)


def _exp_interval(a: Any, w: int) -> Any:
    """exp on [-1/4, 0): Q0 in and out (AddSaturatingIf16Bit saturates the last add in 16 bits)."""
    c = _const(1895147668, w)
    x = _wrap(a + np.int64(1 << (w - 4)), w)
    x2 = _srdhm(x, x, w)
    x3 = _srdhm(x2, x, w)
    x4 = _srdhm(x2, x2, w)
    t = _wrap(_rdbpot(x4, 2) + x3, w)
    t = _rdbpot(_wrap(_srdhm(t, _const(715827883, w), w) + x2, w), 1)
    y = c + _srdhm(np.int64(c), _wrap(x + t, w), w)
    return np.clip(y, -(1 << 15), (1 << 15) - 1) if w == 16 else _wrap(y, w)


def _exp_neg(a: Any, k: int, w: int) -> Any:
    """exp_on_negative_values of Q(k) raws a <= 0: Q0 raws."""
    frac = w - 1 - k
    quarter = np.int64(1 << (frac - 2))
    am = _wrap((a & (quarter - 1)) - quarter, w)
    r = _exp_interval(_srmpot(am, k, w), w)
    rem = _wrap(am - a, w)
    for e, c in zip(range(-2, 5), _EXP_BARREL, strict=True):
        if k > e:
            r = np.where((rem >> np.int64(frac + e)) & 1, _srdhm(r, np.int64(_const(c, w)), w), r)
    if k > 5:
        r = np.where(a < _const(-(1 << (36 - k)), w), np.int64(0), r)
    return np.where(a == 0, np.int64((1 << (w - 1)) - 1), r)


def _newton(h: Any, w: int) -> Any:
    """The Q2 reciprocal of the Q0 half-denominator h: seed 48/17 - 32/17 h, three Newton steps."""
    x = _wrap(_const(1515870810, w) + _srdhm(h, np.int64(_const(-1010580540, w)), w), w)
    one = np.int64(1 << (w - 3))
    for _ in range(3):
        err = _wrap(one - _srdhm(h, x, w), w)
        x = _wrap(x + _srmpot(_srdhm(x, err, w), 2, w), w)
    return x


def _half_denominator(a: Any, w: int) -> Any:
    """RoundingHalfSum(a, One) = (a + max + sign) / 2 in C division."""
    s = a + np.int64((1 << (w - 1)) - 1)
    n = s + np.where(s >= 0, np.int64(1), np.int64(-1))
    return np.where(n >= 0, n >> 1, -((-n) >> 1))


def _one_over_one_plus_x(a: Any, w: int) -> Any:
    return _srmpot(_newton(_half_denominator(a, w), w), 1, w)


def _one_minus_x_over_one_plus_x(a: Any, w: int) -> Any:
    return _srmpot(_wrap(_newton(_half_denominator(a, w), w) - np.int64(1 << (w - 3)), w), 2, w)


def _logistic_fp(a: Any, k: int, w: int) -> tuple[Any, Any]:
    """gemmlowp logistic of Q(k) raws: (Q0 result, exp(-|a|))."""
    pos = a > 0
    ab = np.where(pos, a, _wrap(-a, w))
    ex = _exp_neg(_wrap(-ab, w), k, w)
    rp = _one_over_one_plus_x(ex, w)
    out = np.where(pos, rp, _wrap(np.int64((1 << (w - 1)) - 1) - rp, w))
    return np.where(a == 0, np.int64(_const(1 << 30, w)), out), ex


def _tanh_fp(a: Any, k: int, w: int) -> tuple[Any, Any]:
    """gemmlowp tanh of Q(k) raws: (Q0 result, exp(-2|a|))."""
    neg = a < 0
    n = np.where(neg, a, _wrap(-a, w))
    ex = _exp_neg(n, k + 1, w)
    t = _one_minus_x_over_one_plus_x(ex, w)
    return np.where(a == 0, np.int64(0), np.where(neg, _wrap(-t, w), t)), ex


# ---- op counts (per element, the C code's operations) -----------------------------------------


def _prim(ops: OpCounts, name: str, w: int, n: int = 1) -> None:
    """Add ``n`` gemmlowp primitives ``name`` on w-bit raws (costs as in intsim.ops.gemmlowp)."""
    if n == 0:
        return
    if name == "srdhm":
        ops.add("mul", (w, w), n).add("add", (2 * w,), n).add("shift", (2 * w,), n).add("compare", (w,), n)
    elif name == "rdbpot":
        ops.add("shift", (w,), n).add("add", (w,), 2 * n).add("compare", (w,), 2 * n)
    elif name == "srmpot":
        ops.add("shift", (w,), n).add("compare", (w,), 2 * n)
    else:
        ops.add(name, (w,), n)


@functools.cache
def _fp_counts(fn: str, k: int, w: int) -> OpCounts:
    """Per-element op counts of gemmlowp ``logistic`` / ``tanh`` of Q(k) raws."""
    ops = OpCounts()
    ke = k + 1 if fn == "tanh" else k
    # exp_on_interval: 5 adds, 5 SRDHM, 2 RDBPOT (+ the final saturating add in 16 bits)
    _prim(ops, "add", w, 5)
    _prim(ops, "srdhm", w, 5)
    _prim(ops, "rdbpot", w, 2)
    # exp_on_negative_values: mask, 2 subtractions, Rescale, barrel (test, multiply, select), clamp, zero
    n_barrel = sum(1 for e in range(-2, 5) if ke > e)
    _prim(ops, "compare", w, 1 + 2 * n_barrel + (2 if ke > 5 else 0) + 2)
    _prim(ops, "add", w, 2)
    _prim(ops, "srmpot", w, 1 if ke > 0 else 0)
    _prim(ops, "srdhm", w, n_barrel)
    # RoundingHalfSum (in 2w bits), seed, three Newton steps, final Rescale
    ops.add("add", (2 * w,), 2).add("shift", (2 * w,), 1).add("compare", (2 * w,), 1)
    _prim(ops, "srdhm", w, 1 + 6)
    _prim(ops, "add", w, 1 + 6 + (1 if fn == "tanh" else 0))
    _prim(ops, "srmpot", w, 3 + 1)
    # the sign masks, negations and selects around it
    _prim(ops, "compare", w, 2 + 1 + 2)
    _prim(ops, "add", w, 2)
    return ops


# ------------------------------------------------------------------------------------------------
# the float steps: float32 IEEE arithmetic (numpy) and the transcendental functions
# ------------------------------------------------------------------------------------------------
_CTX = Context(prec=130)


def _f32_of_fraction(q: Fraction) -> float:
    """The exact rational ``q`` correctly rounded to float32 (subnormals, overflow to inf)."""
    if q == 0:
        return 0.0
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    e = max(e, -126)
    ulp = Fraction(2) ** (e - 23)
    n, r = divmod(a / ulp, 1)
    n = int(n) + (1 if r > Fraction(1, 2) or (r == Fraction(1, 2) and int(n) % 2) else 0)
    v = n * ulp
    out = math.inf if v >= Fraction(2) ** 128 else float(v)
    return out if q > 0 else -out


def _exp_fraction(x: float) -> Fraction:
    return Fraction(_CTX.exp(Decimal(x)))


def _tanh_fraction(x: float) -> Fraction:
    if x == 0:
        return Fraction(0)
    if abs(x) > 60:
        return (1 if x > 0 else -1) * (1 - 2 * Fraction(_CTX.exp(Decimal(-2 * abs(x)))))
    e = _CTX.exp(Decimal(x) * 2)
    return Fraction(_CTX.divide(_CTX.subtract(e, 1), _CTX.add(e, 1)))


@functools.cache
def _libc() -> dict[str, Any]:
    """The C library's expf, tanhf, logf, exp (ctypes); ConfigError when there is none."""
    name = ctypes.util.find_library("m") or ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name)
        out = {}
        for fn, t in (("expf", ctypes.c_float), ("tanhf", ctypes.c_float), ("logf", ctypes.c_float),
                      ("exp", ctypes.c_double)):
            f = getattr(lib, fn)
            f.restype, f.argtypes = t, [t]
            out[fn] = f
        return out
    except (OSError, AttributeError, TypeError) as exc:
        raise ConfigError(f"libm='c': the C math library cannot be loaded here ({exc}); use libm='exact'") from None


def _check_libm(libm: str) -> str:
    if not isinstance(libm, str) or libm not in LIBMS:
        raise ConfigError(f"unknown libm {libm!r}; valid: {', '.join(LIBMS)}")
    return libm


def _f32_fn(name: str, x: np.ndarray, libm: str) -> np.ndarray:
    """``expf`` or ``tanhf`` of a float32 array: the C library's, or correctly rounded (float64
    values rounded to float32; the few within 2**-40 of a float32 midpoint decided at 130 digits)."""
    if libm == "c":
        f = _libc()[name]
        return np.array([f(float(v)) for v in x], dtype=_F32)
    with np.errstate(over="ignore", under="ignore"):
        y = np.exp(x.astype(np.float64)) if name == "expf" else np.tanh(x.astype(np.float64))
        f = y.astype(_F32)
        nb = np.nextafter(f, np.where(y >= f.astype(np.float64), _F32(np.inf), _F32(-np.inf)))
        mid = (f.astype(np.float64) + nb.astype(np.float64)) / 2
    with np.errstate(invalid="ignore", over="ignore"):
        amb = np.isfinite(f) & np.isfinite(nb) & (np.abs(y - mid) <= np.abs(y) * 2.0**-40)
    for i in np.flatnonzero(amb):
        xi = float(x[i])
        f[i] = _f32_of_fraction(_exp_fraction(xi) if name == "expf" else _tanh_fraction(xi))
    return f


def _exp_double(x: np.ndarray, libm: str) -> np.ndarray:
    """C ``exp`` (double) of each value: the C library's or correctly rounded."""
    if libm == "c":
        f = _libc()["exp"]
        return np.array([f(float(v)) for v in x], dtype=np.float64)
    out = np.empty(x.shape, dtype=np.float64)
    for i, v in enumerate(x.tolist()):
        q = _exp_fraction(v) if v > -750 else Fraction(0)
        out[i] = q.numerator / q.denominator  # int true division: correctly rounded
    return out


def _logf(x: float, libm: str) -> float:
    if libm == "c":
        return float(_libc()["logf"](x))
    return _f32_of_fraction(Fraction(_CTX.ln(Decimal(x))))


def _roundf(y: np.ndarray) -> np.ndarray:
    """C ``roundf``/``round`` (half away from zero) of a float array, exactly."""
    t = np.trunc(y)
    return t + np.where(np.abs(y - t) >= 0.5, np.sign(y), 0).astype(y.dtype)


# ------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------


def _input(x: Any, t: IntType, name: str = "x") -> np.ndarray:
    """``x`` as an int64 array whose entries fit ``t`` (DTypeError for floats, OperandRangeError
    naming the first entry outside)."""
    arr = as_int_array(x, name)
    return np.asarray(t.check(arr, name), dtype=np.int64)


def _check_in_type(in_type: Any, want: str, op: str) -> None:
    t = IntType.parse(in_type)
    if t != IntType.parse(want):
        raise ConfigError(f"{op} takes {want} input (TFLite's kernel for that type), got in_type {t.name}")


def _check_variant(variant: Any, valid: tuple[str, ...], op: str) -> str:
    if not isinstance(variant, str) or variant not in valid:
        raise ConfigError(f"{op}: unknown variant {variant!r}; valid: {', '.join(valid)}")
    return variant


def _check_zp(zp: Any, name: str, t: IntType) -> int:
    if isinstance(zp, (bool, np.bool_)) or not isinstance(zp, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {zp!r}")
    if not t.min <= int(zp) <= t.max:
        raise ConfigError(f"{name} {int(zp)} is outside {t.name} [{t.min}, {t.max}]")
    return int(zp)


def _scale32(s: Any, name: str) -> float:
    """A positive finite scale as the float32 a TFLite tensor stores (ConfigError if it is not a
    normal float32)."""
    v = check_scale(s, name)
    with np.errstate(over="ignore"):
        f = float(_F32(v))
    if not (np.isfinite(f) and f >= float(np.finfo(np.float32).tiny)):
        raise ConfigError(f"{name} {v} is not a normal float32 (TFLite stores scales as float32)")
    return f


def _check_policy(overflow: str, op: str) -> str:
    if not isinstance(overflow, str) or overflow not in ("raise", "wrap"):
        raise ConfigError(f"{op}: overflow must be 'raise' or 'wrap' (the compiled C code wraps; its other "
                          f"values are undefined), got {overflow!r}")
    return overflow


# ------------------------------------------------------------------------------------------------
# gemmlowp logistic / tanh on raw fixed-point arrays
# ------------------------------------------------------------------------------------------------


def _raw_args(a: Any, integer_bits: Any, raw_bits: Any, kmax: int, op: str) -> tuple[np.ndarray, int, int]:
    if isinstance(raw_bits, bool) or not isinstance(raw_bits, (int, np.integer)) or raw_bits not in (16, 32):
        raise ConfigError(f"{op}: raw_bits must be 16 or 32 (gemmlowp's scalar raw types), got {raw_bits!r}")
    w = int(raw_bits)
    if isinstance(integer_bits, bool) or not isinstance(integer_bits, (int, np.integer)) \
            or not 0 <= int(integer_bits) <= w - kmax:
        raise ConfigError(f"{op}: integer_bits must be an integer from 0 to {w - kmax} for {w}-bit raws, "
                          f"got {integer_bits!r}")
    return _input(a, IntType(w), "a"), int(integer_bits), w


def gemmlowp_logistic(a: Any, integer_bits: int, *, raw_bits: int = 32, taps: bool = False) -> OpResult:
    """gemmlowp ``logistic`` (``fixedpoint/fixedpoint.h``): ``1 / (1 + exp(-a))`` of Q\\ *k* raws
    ``a`` (``k = integer_bits``, 0 .. raw_bits - 3) of ``raw_bits`` (16 or 32) bits, as Q0 raws
    (scale ``2**-(raw_bits - 1)``).

    Exact semantics (``+``, ``-``, unary ``-`` wrap in the raw width; ``*`` is SRDHM)::

        abs = a if a > 0 else -a                    # -MIN wraps to MIN
        r = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs))   # Q(k) -> Q0 -> Q0
        result = 1/2 if a == 0 else r if a > 0 else One - r                   # One = max raw

    with ``exp_on_negative_values`` and ``one_over_one_plus_x_for_x_in_0_1`` as in
    :mod:`intsim.ops.gemmlowp` (for 16-bit raws: every int32 constant ``c`` becomes
    ``RDBPOT(c, 16)``, the exp polynomial's last add saturates). TFLite runs it on Q4.27 (int8
    reference kernels) and on 16-bit Q3.12 (the optimized int16 kernel). Taps (``taps=True``):
    ``exp`` (exp(-|a|), Q0), ``output``.

    >>> gemmlowp_logistic(np.array([0, 1 << 27, -(1 << 27)]), 4).values.tolist()
    [1073741824, 1569936226, 577547421]
    """
    aa, k, w = _raw_args(a, integer_bits, raw_bits, 3, "gemmlowp_logistic")
    return _fp_result("logistic", _logistic_fp(aa, k, w), aa.size, k, w, taps)


def _fp_result(fn: str, out_ex: tuple, n: int, k: int, w: int, taps: bool) -> OpResult:
    """The OpResult of a gemmlowp logistic/tanh: Q0 raws of ``w`` bits, its op counts for ``n``
    values, and the ``exp``/``output`` taps."""
    out = np.asarray(out_ex[0], dtype=np.int64)
    return OpResult(values=out, scale=2.0 ** -(w - 1), ops=_fp_counts(fn, k, w) * int(n),
                    taps={"exp": np.asarray(out_ex[1], dtype=np.int64), "output": out} if taps else {})


def gemmlowp_tanh(a: Any, integer_bits: int, *, raw_bits: int = 32, taps: bool = False) -> OpResult:
    """gemmlowp ``tanh`` (``fixedpoint/fixedpoint.h``) of Q\\ *k* raws ``a`` (``k = integer_bits``,
    0 .. raw_bits - 4) of ``raw_bits`` (16 or 32) bits, as Q0 raws (scale ``2**-(raw_bits - 1)``).

    Exact semantics (wrapping ``+``/``-``, SRDHM ``*``)::

        n = a if a < 0 else -a
        e = exp_on_negative_values(n as Q(k+1))    # the raw reinterpreted: exp(2n)
        t = (1 - e) / (1 + e)                       # 48/17 - 32/17 h seed, 3 Newton steps, Rescale<0>(x - 1)
        result = 0 if a == 0 else -t if a < 0 else t

    Taps (``taps=True``): ``exp`` (exp(-2|a|), Q0), ``output``.

    >>> gemmlowp_tanh(np.array([0, 1 << 27, -(1 << 12)]), 4).values.tolist()
    [0, 1635510876, -65780]
    """
    aa, k, w = _raw_args(a, integer_bits, raw_bits, 4, "gemmlowp_tanh")
    return _fp_result("tanh", _tanh_fp(aa, k, w), aa.size, k, w, taps)


# ------------------------------------------------------------------------------------------------
# 8-bit LOGISTIC / TANH
# ------------------------------------------------------------------------------------------------


def int8_reference_params(scale: float) -> tuple[int, int, int]:
    """TFLite Micro's Prepare of the int8 ``reference_integer_ops`` LOGISTIC / TANH:
    ``(input_multiplier, input_left_shift, input_range_radius)``::

        real = double(float32 scale) * 2**27;  q = frexp(real, &shift)
        multiplier = round_half_away(q * 2**31);  radius = floor(15 * 2**27 / 2**shift)

    ConfigError where the C code is undefined (scale below 2**-28: negative shift; a multiplier
    rounding to 2**31; a shift above 62).

    >>> int8_reference_params(0.05)
    (1717986944, 23, 240)
    """
    s = _scale32(scale, "scale")
    q, shift = math.frexp(s * 2.0**27)
    fr = Fraction(q) * (1 << 31)
    mult = math.floor(fr + Fraction(1, 2))
    if shift < 0 or shift > 62:
        raise ConfigError(f"scale {s}: TFLite Micro's radius shift {shift} is undefined in C (scale must be in "
                          "[2**-28, 2**35))")
    if mult >= 1 << 31:
        raise ConfigError(f"scale {s}: the int8 logistic/tanh multiplier rounds to 2**31, which overflows int32 "
                          "in TFLite Micro's Prepare")
    radius = (15 << 27) >> shift
    return mult, shift, radius


@functools.lru_cache(maxsize=512)
def _int8_lut(fn: str, variant: str, s: float, zp: int, os_: float, ozp: int, libm: str) -> np.ndarray:
    """The 256 int8 outputs (read-only, cached) of every input, in input order -128 .. 127."""
    out = _int8_table(fn, variant, s, zp, os_, ozp, libm)
    out.setflags(write=False)
    return out


def _int8_table(fn: str, variant: str, s: float, zp: int, os_: float, ozp: int, libm: str) -> np.ndarray:
    v = np.arange(-128, 128, dtype=np.int64)
    if variant == "reference":
        mult, shift, radius = int8_reference_params(s)
        d = v - zp
        inside = (d > -radius) & (d < radius)
        di = np.where(inside, d, 0)
        # MultiplyByQuantizedMultiplier (double rounding): |d| < radius keeps d << shift in int32
        q4 = _srdhm(di << np.int64(max(shift, 0)), np.int64(mult), 32)
        if fn == "logistic":
            y = np.clip(_rdbpot(_logistic_fp(q4, 4, 32)[0], 23) - 128, -128, 127)
        else:
            y = np.clip(_rdbpot(_tanh_fp(q4, 4, 32)[0], 24), -128, 127)
        return np.where(inside, y, np.where(d <= -radius, -128, 127)).astype(np.int64)
    inv = _F32(1) / _F32(os_)
    if variant == "lut":
        dq = _F32(s) * (v - zp).astype(_F32)
        if fn == "logistic":
            t = _F32(1) / (_F32(1) + _f32_fn("expf", -dq, libm))
        else:
            t = _f32_fn("tanhf", dq, libm)
        q = (_roundf(t * inv) + _F32(ozp)).astype(np.int64)
        return np.clip(q, -128, 127)
    dq = (v.astype(_F32) - _F32(zp)) * _F32(s)  # xnnpack
    if fn == "logistic":
        e = _exp_double(np.clip(dq, -100, 100).astype(np.float64), libm)  # (the others are not used)
        t = np.where(dq > 100, _F32(1), np.where(dq < -100, _F32(0), (e / (1 + e)).astype(_F32)))
    else:
        t = _f32_fn("tanhf", dq, libm)
    q = np.rint(t * inv + _F32(ozp))
    return np.clip(q, -128, 127).astype(np.int64)


def _int8_out(fn: str, variant: str, output_scale: Any, output_zero_point: Any) -> tuple[float, int]:
    """The output parameters a variant accepts (ConfigError for those TFLite refuses or ignores)."""
    i8 = IntType(8)
    os_ = _scale32(output_scale, "output_scale")
    ozp = _check_zp(output_zero_point, "output_zero_point", i8)
    fixed = (1 / 256, -128) if fn == "logistic" else (1 / 128, 0)
    if variant == "reference" and (os_, ozp) != fixed:
        raise ConfigError(f"{fn}_int8 variant 'reference': the kernel's output is fixed at scale {fixed[0]}, zero "
                          f"point {fixed[1]} (got {os_}, {ozp})")
    if fn == "logistic" and os_ != 1 / 256:
        raise ConfigError(f"logistic_int8: TFLite requires output scale 1/256 (got {os_})")
    if abs(1 / os_) + abs(ozp) >= 2.0**31:
        raise ConfigError(f"{fn}_int8: output_scale {os_} is too small (t / output_scale overflows int32)")
    return os_, ozp


def int8_activation_lut(fn: str, scale: float, zero_point: int = 0, *, variant: str = "xnnpack",
                        output_scale: float | None = None, output_zero_point: int | None = None,
                        libm: str = "c") -> np.ndarray:
    """The 256-entry table of an 8-bit LOGISTIC (``fn="logistic"``) or TANH (``"tanh"``): entry
    ``x + 128`` is the int8 output for input ``x`` (see :func:`logistic_int8` for the variants;
    output defaults: logistic 1/256, -128, tanh 1/128, 0). The table a hardware LUT holds.

    >>> int8_activation_lut("tanh", 0.1)[128:133].tolist()
    [0, 13, 25, 37, 49]
    """
    if not isinstance(fn, str) or fn not in ("logistic", "tanh"):
        raise ConfigError(f"int8_activation_lut: fn must be 'logistic' or 'tanh', got {fn!r}")
    _check_variant(variant, INT8_VARIANTS, f"{fn}_int8")
    s = _scale32(scale, "scale")
    zp = _check_zp(zero_point, "zero_point", IntType(8))
    d_os, d_zp = (1 / 256, -128) if fn == "logistic" else (1 / 128, 0)
    os_, ozp = _int8_out(fn, variant, d_os if output_scale is None else output_scale,
                         d_zp if output_zero_point is None else output_zero_point)
    return _int8_lut(fn, variant, s, zp, os_, ozp, _check_libm(libm)).copy()


def _int8_counts(variant: str, n: int, n_inside: int, fn: str) -> OpCounts:
    ops = OpCounts().add("read", (8,), n).add("write", (8,), n)
    if variant != "reference":
        return ops.add("lut", (8,), n)
    ops.add("add", (32,), n).add("compare", (32,), 2 * n)  # x - zp; the radius tests
    per = OpCounts()
    per.add("shift", (32,), 1)  # d << left_shift
    _prim(per, "srdhm", 32)
    per += _fp_counts(fn, 4, 32)
    _prim(per, "rdbpot", 32)
    per.add("add", (32,), 1 if fn == "logistic" else 0).add("compare", (32,), 2)
    return ops + per * n_inside


def _act_int8(fn: str, x: Any, scale: Any, zero_point: Any, variant: str, output_scale: Any,
              output_zero_point: Any, libm: str, in_type: Any, taps: bool) -> QuantOpResult:
    op = f"{fn}_int8"
    _check_in_type(in_type, "int8", op)
    _check_variant(variant, INT8_VARIANTS, op)
    s = _scale32(scale, "scale")
    zp = _check_zp(zero_point, "zero_point", IntType(8))
    os_, ozp = _int8_out(fn, variant, output_scale, output_zero_point)
    xx = _input(x, IntType(8))
    lut = _int8_lut(fn, variant, s, zp, os_, ozp, _check_libm(libm))
    vals = lut[xx + 128]
    n_inside = 0
    tap: dict[str, np.ndarray] = {}
    if variant == "reference":
        _, _, radius = int8_reference_params(s)
        n_inside = int(np.count_nonzero(np.abs(xx - zp) < radius))
    if taps:
        tap = {"table": lut.copy(), "output": vals}
    return QuantOpResult(values=vals, scale=os_, zero_point=ozp, ops=_int8_counts(variant, int(xx.size), n_inside, fn),
                         taps=tap)


@renamed_keyword("profile", "variant")
def logistic_int8(x: Any, scale: float, zero_point: int = 0, *, variant: str = "xnnpack",
                  output_scale: float = 1 / 256, output_zero_point: int = -128, libm: str = "c",
                  in_type: IntType | str = "int8", taps: bool = False) -> QuantOpResult:
    """TFLite's 8-bit LOGISTIC on int8 ``x`` (input ``scale``, ``zero_point``): int8 outputs of
    ``1 / (1 + exp(-(x - zero_point) * scale))`` in steps of ``output_scale`` (TFLite requires
    1/256) from ``output_zero_point`` (-128 usually; the reference kernel's is fixed at -128).

    ``variant`` (one 256-entry table per parameter set, then ``table[x + 128]``):

    * ``"xnnpack"`` (default; TFLite's default interpreter, whose XNNPACK delegate takes the op)::

          dq = (float(x) - float(zp)) * scale                       # float32
          t = 1 if dq > 100, 0 if dq < -100, else float(e / (1 + e)), e = exp(double(dq))
          out = clamp(nearbyint(t * (1.0f / out_scale) + float(out_zp)), -128, 127)   # ties to even

    * ``"lut"`` (TFLite's ``BUILTIN_REF`` and ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``)::

          dq = scale * float(x - zp);  t = 1.0f / (1.0f + expf(-dq))                   # float32
          out = clamp(int(roundf(t * (1 / out_scale)) + out_zp), -128, 127)              # ties away

    * ``"reference"`` (``reference_integer_ops::Logistic``, as TFLite Micro runs it; parameters of
      :func:`int8_reference_params`): ``d = x - zp``; -128 if ``d <= -radius``, 127 if
      ``d >= radius``, else ``clamp(RDBPOT(gemmlowp_logistic(MBQM(d, mult, shift), 4), 23) - 128)``.

    ``libm``: ``"c"`` (the C library's expf/exp, as TFLite on this machine) or ``"exact"``
    (correctly rounded). Taps
    (``taps=True``): ``table`` (the 256 entries), ``output``.

    >>> r = logistic_int8(np.array([-100, 0, 10, 100]), 0.05)
    >>> r.values.tolist(), r.scale, r.zero_point
    ([-126, 0, 31, 126], 0.00390625, -128)
    """
    return _act_int8("logistic", x, scale, zero_point, variant, output_scale, output_zero_point, libm, in_type, taps)


@renamed_keyword("profile", "variant")
def tanh_int8(x: Any, scale: float, zero_point: int = 0, *, variant: str = "xnnpack",
              output_scale: float = 1 / 128, output_zero_point: int = 0, libm: str = "c",
              in_type: IntType | str = "int8", taps: bool = False) -> QuantOpResult:
    """TFLite's 8-bit TANH on int8 ``x`` (input ``scale``, ``zero_point``): int8 outputs of
    ``tanh((x - zero_point) * scale)`` in steps of ``output_scale`` from ``output_zero_point``
    (any; the usual 1/128, 0 is the reference kernel's fixed output).

    ``variant`` as for :func:`logistic_int8`, with ``t = tanhf(dq)`` in both float variants
    (``"xnnpack"``: ``nearbyint(t * (1.0f / out_scale) + out_zp)``; ``"lut"``:
    ``roundf(t * (1 / out_scale)) + out_zp``) and, for ``"reference"``,
    ``clamp(RDBPOT(gemmlowp_tanh(MBQM(d, mult, shift), 4), 24))``.

    >>> tanh_int8(np.array([-100, 0, 10, 100]), 0.05).values.tolist()
    [-128, 0, 59, 127]
    """
    return _act_int8("tanh", x, scale, zero_point, variant, output_scale, output_zero_point, libm, in_type, taps)


# ------------------------------------------------------------------------------------------------
# int16 LOGISTIC / TANH
# ------------------------------------------------------------------------------------------------


def int16_activation_params(fn: str, scale: float, *, libm: str = "c") -> tuple[int, int]:
    """TFLite's int16 LOGISTIC / TANH Prepare (``activations.cc``; TFLite Micro's is the same):
    ``(input_multiplier, input_left_shift)``.

    ``CheckedLog2(scale)`` (float32: ``logf(scale) * (1.0f / logf(2.0f))``, power of two when within
    1e-3 of an integer ``l``) with ``12 + l == 0`` (tanh: 0 or 1) gives ``(0, 12 + l)``: the
    power-of-two path. Otherwise ``m = scale * 4096 * 3`` (double) is doubled while
    ``m <= 32767 / 2`` and the shift ``<= 30``: ``(int(m), shift)``.

    >>> int16_activation_params("logistic", 2**-12), int16_activation_params("tanh", 1e-3)
    ((0, 0), (25165, 11))
    """
    if not isinstance(fn, str) or fn not in ("logistic", "tanh"):
        raise ConfigError(f"int16_activation_params: fn must be 'logistic' or 'tanh', got {fn!r}")
    s = _scale32(scale, "scale")
    lm = _check_libm(libm)
    lg = _F32(_F32(_logf(s, lm)) * (_F32(1) / _F32(_logf(2.0, lm))))
    r = _roundf(np.array([lg]))[0]
    pot = bool(abs(_F32(lg - r)) < _F32(1e-3))
    shift = 12 + int(r)
    if pot and (shift == 0 or (fn == "tanh" and shift == 1)):
        return 0, shift
    m = s * 4096.0 * 3.0
    shift = 0
    while m <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        m *= 2.0
    return int(m), shift


def _reference_int16(fn: str, xx: np.ndarray, mult: int, shift: int, regs: RegisterFile) -> tuple[Any, Any]:
    """reference_integer_ops int16 Logistic / Tanh: (outputs, the scaled inputs)."""
    if mult == 0:
        mult, shift = 3 << shift, 0
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    v = regs.check("scaled_input", xx * np.int64(mult) + np.int64(rnd)) >> np.int64(shift)
    av = np.abs(v)
    if fn == "logistic":
        uh = av >> 9
        sat = uh >= 255
        i = np.where(sat, 0, uh)
        res = (_SIG[i] << 9) + (av & 0x1FF) * (_SIG[i + 1] - _SIG[i])
        res = np.where(sat, np.int64(0x7FFF << 10), res)
        res = np.where(v >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
        return _wrap((res & 0xFFFFFFFF) >> 10, 16), v
    uh = av >> 8
    sat = uh >= 255
    i = np.where(sat, 0, uh)
    res = (_SIG[i] << 8) + (av & 0xFF) * (_SIG[i + 1] - _SIG[i])
    res = np.where(sat, np.int64(0xFFFF << 8), res)
    res = np.where(v >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
    return _wrap(res >> 8, 16), v


@functools.cache
def _optimized_int16_table(fn: str, shift: int) -> np.ndarray:
    """optimized_ops int16 Logistic / Tanh (gemmlowp on 16-bit Q3.12 raws) of all 65536 inputs."""
    x = np.arange(-32768, 32768, dtype=np.int64)
    if fn == "logistic":
        out = np.asarray(_logistic_fp(x, 3, 16)[0], dtype=np.int64)
    else:
        out = np.asarray(_tanh_fp(_srmpot(x, shift, 16), 3, 16)[0], dtype=np.int64)
    out.setflags(write=False)
    return out


def _act_int16(fn: str, x: Any, scale: Any, variant: str, overflow: str, libm: str, in_type: Any,
               taps: bool) -> QuantOpResult:
    op = f"{fn}_int16"
    _check_in_type(in_type, "int16", op)
    _check_variant(variant, INT16_VARIANTS, op)
    _check_policy(overflow, op)
    mult, shift = int16_activation_params(fn, scale, libm=libm)
    xx = _input(x, IntType(16))
    n = int(xx.size)
    ops = OpCounts().add("read", (16,), n).add("write", (16,), n)
    tap: dict[str, np.ndarray] = {}
    regs = RegisterFile(op, {"scaled_input": 32}, overflow=overflow)
    if variant == "optimized" and mult == 0:
        vals = _optimized_int16_table(fn, shift)[xx + 32768]
        per = _fp_counts(fn, 3, 16)
        if fn == "tanh" and shift:
            per = per + OpCounts().add("shift", (16,), 1).add("compare", (16,), 2)
    else:
        vals, v = _reference_int16(fn, xx, mult, shift, regs)
        vals = np.asarray(vals, dtype=np.int64)
        if taps:
            tap["scaled_input"] = np.asarray(v, dtype=np.int64)
        per = OpCounts().add("mul", (16, 32), 1).add("add", (32,), 5).add("shift", (32,), 4)
        per = per.add("compare", (32,), 3).add("lut", (16,), 2).add("mul", (32, 32), 1)
    if taps:
        tap["output"] = vals
    return QuantOpResult(values=vals, scale=2.0**-15, zero_point=0, ops=ops + per * n, registers=regs, taps=tap)


@renamed_keyword("profile", "variant")
def logistic_int16(x: Any, scale: float, *, variant: str = "optimized", overflow: str = "raise",
                   libm: str = "c", in_type: IntType | str = "int16", taps: bool = False) -> QuantOpResult:
    """TFLite's int16 LOGISTIC (input zero point 0; output scale 1/32768, zero point 0, as TFLite
    requires) on int16 ``x`` with input ``scale``; parameters from :func:`int16_activation_params`.

    * ``"reference"`` (``reference_integer_ops::Logistic``: TFLite ``BUILTIN_REF``, TFLite Micro,
      and TFLite ``BUILTIN`` for scales off the power-of-two path)::

          if mult == 0: mult, shift = 3 << shift, 0
          v = (x * mult + (1 << (shift - 1) if shift else 0)) >> shift     # int32 (register scaled_input)
          a = |v|; h = a >> 9                                                # 2**9 steps per entry
          r = 0x7FFF << 10 if h >= 255 else (T[h] << 9) + (a & 511) * (T[h+1] - T[h])
          r = r + 512 if v >= 0 else 2**25 - r + 511;  out = r >> 10         # T: SIGMOID_TABLE_UINT16

    * ``"optimized"`` (default; TFLite ``BUILTIN``): at a power-of-two scale (2**-12 within
      CheckedLog2's 1e-3) ``gemmlowp_logistic(x, 3, raw_bits=16)``, else ``"reference"``.

    ``overflow``: ``x * mult`` must fit int32 (scales above about 5.3); ``"raise"`` (default) raises
    RegisterOverflow, ``"wrap"`` wraps as the compiled C code does. Taps: ``scaled_input``
    (reference path), ``output``.

    >>> logistic_int16(np.array([-4096, 0, 4096]), 2**-12).values.tolist()
    [8815, 16384, 23952]
    """
    return _act_int16("logistic", x, scale, variant, overflow, libm, in_type, taps)


@renamed_keyword("profile", "variant")
def tanh_int16(x: Any, scale: float, *, variant: str = "optimized", overflow: str = "raise",
               libm: str = "c", in_type: IntType | str = "int16", taps: bool = False) -> QuantOpResult:
    """TFLite's int16 TANH (input zero point 0; output scale 1/32768, zero point 0) on int16 ``x``
    with input ``scale``; parameters from :func:`int16_activation_params`.

    * ``"reference"`` (``reference_integer_ops::Tanh``: ``BUILTIN_REF``, TFLite Micro, and
      ``BUILTIN`` off the power-of-two path): ``v`` as for :func:`logistic_int16`, then 2**8 steps
      per entry of ``tanh(x) = 2 sigmoid(2x) - 1``::

          r = 0xFFFF << 8 if h >= 255 else (T[h] << 8) + (a & 255) * (T[h+1] - T[h]),  h = a >> 8
          out = (r - 2**23 + 128) >> 8 if v >= 0 else (2**23 - r + 127) >> 8

    * ``"optimized"`` (default; ``BUILTIN``): at scale 2**-12 ``gemmlowp_tanh(x, 3, raw_bits=16)``,
      at 2**-11 the same of ``SaturatingRoundingMultiplyByPOT<1>(x)``, else ``"reference"``.

    >>> tanh_int16(np.array([-4096, 0, 4096]), 2**-12).values.tolist()
    [-24964, 0, 24964]
    """
    return _act_int16("tanh", x, scale, variant, overflow, libm, in_type, taps)


# ------------------------------------------------------------------------------------------------
# int16 SOFTMAX
# ------------------------------------------------------------------------------------------------


def _lut_populate_int16(transform: Callable[[np.ndarray], np.ndarray], in_scale: Any, in_zp: int, out_scale: Any,
                        ft: type) -> np.ndarray:
    """``LUTPopulateInt16<FloatT>`` (output zero point 0) with every operation in ``ft``
    (np.float64 for double, np.float32 for float): 512 samples with a midpoint bias, then the end."""
    s, o = ft(in_scale), ft(out_scale)
    input_min = s * ft(-32768 - in_zp)
    input_max = s * ft(32767 - in_zp)
    inv = ft(65536) / (o * ft(32767) - o * ft(-32768))
    step = (input_max - input_min) / ft(512)
    half = step / ft(2)
    i = np.arange(512).astype(ft)
    base = input_min + i * step
    v = transform(base)
    vm = transform(base + half)
    vn = transform(input_min + (i + ft(1)) * step)
    sample = _roundf(v * inv)
    interp = _roundf((vn * inv + _roundf(v * inv)) / ft(2))
    bias = _roundf((interp - _roundf(vm * inv)) / ft(2))
    lut = np.clip(sample - bias, ft(-32768), ft(32767))
    end = np.clip(_roundf(transform(np.array([input_max], dtype=ft)) * inv), ft(-32768), ft(32767))
    return np.concatenate([lut, end]).astype(np.int64)


@functools.cache
def _softmax_luts(variant: str, libm: str) -> tuple[np.ndarray, np.ndarray]:
    rng = 65535
    if variant == "tflite":  # double tables, std::exp(double)
        f64 = np.float64
        e = _lut_populate_int16(lambda v: _exp_double(v, libm), 10.0 / rng, 32767, 2.0 / rng, f64)
        r = _lut_populate_int16(lambda v: 1.0 / (1.0 + v), 1.0 / rng, -32768, 2.0 / rng, f64)
    else:  # TFLite Micro: float tables, std::exp(float) = expf
        e = _lut_populate_int16(lambda v: _f32_fn("expf", v, libm), _F32(10) / _F32(rng), 32767,
                                _F32(2) / _F32(rng), _F32)
        r = _lut_populate_int16(lambda v: _F32(1) / (_F32(1) + v), _F32(1) / _F32(rng), -32768,
                                _F32(2) / _F32(rng), _F32)
    e.setflags(write=False)
    r.setflags(write=False)
    return e, r


def softmax_int16_luts(variant: str = "tflite", *, libm: str = "c") -> tuple[np.ndarray, np.ndarray]:
    """The two 513-entry int16 tables of the int16 softmax (``LUTPopulateInt16``): ``exp`` on
    [-10, 0] (input scale 10/65535, zero point 32767) and ``1 / (1 + x)`` on [0, 1] (1/65535,
    -32768), both with output scale 2/65535: entry ``i < 512`` is the sample at step ``i``
    (``round(f * 32768)``) minus half the rounded error of the linear interpolation at the step's
    midpoint; entry 512 the end point. ``"tflite"`` computes in double with ``exp``,
    ``"tflm"`` in float32 with ``expf`` (their ``1/(1+x)`` tables differ in 2 entries).

    >>> e, r = softmax_int16_luts()
    >>> int(e[0]), int(e[512]), int(r[0]), int(r[512])
    (2, 32767, 32767, 16384)
    """
    _check_variant(variant, SOFTMAX_INT16_VARIANTS, "softmax_int16")
    e, r = _softmax_luts(variant, _check_libm(libm))
    return e.copy(), r.copy()


def softmax_int16_params(scale: float, beta: float = 1.0, *, variant: str = "tflite") -> tuple[int, int]:
    """The int16 softmax Prepare: ``QuantizeMultiplier(scale * beta / (10 / 65535))`` so that an
    input difference maps [-65535, 0] onto [-10, 0]; ``"tflite"`` multiplies the float32 scale and
    beta in float32, ``"tflm"`` in double. Returns ``(input_multiplier, input_left_shift)``.

    >>> softmax_int16_params(0.01)
    (1099494826, 7)
    """
    _check_variant(variant, SOFTMAX_INT16_VARIANTS, "softmax_int16")
    s = _scale32(scale, "scale")
    with np.errstate(over="ignore"):
        b = float(_F32(check_scale(beta, "beta")))
        sb = float(_F32(s) * _F32(b)) if variant == "tflite" else s * b
    if not (math.isfinite(sb) and sb > 0):
        raise ConfigError(f"softmax_int16: scale * beta = {sb} is not a positive finite float")
    return quantize_multiplier(sb / (10.0 / 65535.0))


def _lut_lookup16(v: Any, lut: np.ndarray) -> Any:
    """``LUTLookup(int16)``: base at ``256 + (v >> 7)`` plus ``(slope * (v & 127) + 64) >> 7``."""
    i = 256 + (v >> 7)
    slope = _wrap(lut[i + 1] - lut[i], 16)
    return _wrap(lut[i] + ((slope * (v & 0x7F) + 64) >> 7), 16)


@renamed_keyword("profile", "variant")
def softmax_int16(x: Any, scale: float, *, beta: float = 1.0, variant: str = "tflite", overflow: str = "raise",
                  libm: str = "c", in_type: IntType | str = "int16", taps: bool = False) -> QuantOpResult:
    """TFLite's int16 SOFTMAX (``reference_ops::SoftmaxInt16``, every TFLite resolver; TFLite Micro
    with ``variant="tflm"``) along the last axis: input zero point 0, output int16 in steps of
    1/32768 from 0 (TFLite requires output scale 1/32768 within 0.1%, zero point 0).

    Per row, with ``(mult, shift)`` of :func:`softmax_int16_params` and the tables of
    :func:`softmax_int16_luts`::

        d = MultiplyByQuantizedMultiplier(x - max(row), mult, shift)   # double rounding; register scaled_diff
        e = LUTLookup(clamp(d + 32767, int16), exp_lut)                 # Q0.15, exp(-10 .. 0)
        sum = sum(e)                                                    # int32, >= 32767
        hp = clz32(sum); s = ((sum << (hp - 1)) + 2**13) >> 14          # [2**16, 2**17]
        r = LUTLookup(clamp(s - 98304, int16), one_over_one_plus_x_lut) # 1 / (sum normalized)
        out = clamp((e * r + 2**(30 - hp)) >> (31 - hp), 0, 32767)

    ``overflow``: the left shift inside MultiplyByQuantizedMultiplier overflows int32 for large
    ``scale * beta`` (about 5 and above); ``"raise"`` (default) raises RegisterOverflow naming
    the register ``scaled_diff``, ``"wrap"`` wraps as the compiled C code does. A row whose sum
    exceeds int32 (more than 65548 maxima) raises RegisterOverflow under either policy (the C code
    then shifts by a negative amount). Taps: ``row_max``, ``exp``, ``sum``, ``reciprocal``,
    ``output``.

    >>> softmax_int16(np.array([[0, 100, 200], [5, 5, 5]]), 0.01).values.tolist()
    [[2950, 8020, 21798], [10922, 10922, 10922]]
    """
    op = "softmax_int16"
    _check_in_type(in_type, "int16", op)
    _check_variant(variant, SOFTMAX_INT16_VARIANTS, op)
    _check_policy(overflow, op)
    mult, shift = softmax_int16_params(scale, beta, variant=variant)
    if shift > 30:
        raise ConfigError(f"{op}: scale * beta = {float(scale) * float(beta)} needs a left shift of {shift} "
                          "(undefined in TFLite's MultiplyByQuantizedMultiplier)")
    exp_lut, recip_lut = _softmax_luts(variant, _check_libm(libm))
    xx = _input(x, IntType(16))
    if xx.ndim == 0:
        raise ConfigError(f"{op} needs at least one axis (it normalizes over the last)")
    if xx.shape[-1] == 0:
        raise ConfigError(f"{op}: the last axis is empty")
    regs = RegisterFile(op, {"scaled_diff": 32}, overflow=overflow)
    mx = xx.max(axis=-1, keepdims=True)
    left = max(shift, 0)
    sd = _rdbpot(_srdhm(regs.check("scaled_diff", (xx - mx) << np.int64(left)), np.int64(mult), 32), max(-shift, 0))
    e = _lut_lookup16(np.clip(sd + 32767, -32768, 32767), exp_lut)
    total = e.sum(axis=-1, keepdims=True)
    big = total > (1 << 31) - 1
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0][:-1])
        raise RegisterOverflow(f"{op}: the int32 sum of exponentials of row {idx} is {int(total[big][0])} "
                               "(too many elements); TFLite's kernel is undefined there",
                               op=op, step="sum", value=int(total[big][0]), bits=32)
    hp = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)  # clz32: 32 - bit length (exact)
    s = ((total << (hp - 1)) + (1 << 13)) >> 14
    recip = _lut_lookup16(np.clip(s - ((1 << 15) + (1 << 16)), -32768, 32767), recip_lut)
    rs = 31 - hp
    vals = np.clip((e * recip + (np.int64(1) << (rs - 1))) >> rs, 0, 32767).astype(np.int64)
    n = int(xx.size)
    rows = n // xx.shape[-1]
    ops = OpCounts().add("read", (16,), n).add("write", (16,), n)
    per = OpCounts().add("compare", (16,), 1).add("add", (32,), 2)  # max, difference, + 32767
    per = per.add("shift", (32,), 1)
    _prim(per, "srdhm", 32)
    _prim(per, "rdbpot", 32)
    per = per.add("compare", (32,), 2).add("shift", (16,), 3).add("add", (16,), 3).add("lut", (16,), 2)
    per = per.add("mul", (16, 16), 2).add("add", (32,), 1).add("add", (64,), 1).add("shift", (64,), 1)
    per = per.add("compare", (32,), 2)
    row = OpCounts().add("compare", (32,), 3).add("shift", (64,), 2).add("add", (64,), 1).add("add", (32,), 2)
    row = row.add("lut", (16,), 2).add("mul", (16, 16), 1).add("shift", (16,), 3).add("add", (16,), 3)
    ops = ops + per * n + row * rows
    tap: dict[str, np.ndarray] = {}
    if taps:
        tap = {"row_max": mx[..., 0], "exp": np.asarray(e, dtype=np.int64), "sum": total[..., 0],
               "reciprocal": np.asarray(recip, dtype=np.int64)[..., 0], "output": vals}
    return QuantOpResult(values=vals, scale=2.0**-15, zero_point=0, ops=ops, registers=regs, taps=tap)


#: the operators in the registry's form (``x, scale`` inputs, ``variant=``): ``tflite.<name>`` in
#: :data:`intsim.ops.registry.FAMILIES` (golden-suite operators)
OPS: tuple[OpSpec, ...] = (
    OpSpec("logistic_int8", logistic_int8, ("x", "scale"), INT8_VARIANTS),
    OpSpec("tanh_int8", tanh_int8, ("x", "scale"), INT8_VARIANTS),
    OpSpec("logistic_int16", logistic_int16, ("x", "scale"), INT16_VARIANTS),
    OpSpec("tanh_int16", tanh_int16, ("x", "scale"), INT16_VARIANTS),
    OpSpec("softmax_int16", softmax_int16, ("x", "scale"), SOFTMAX_INT16_VARIANTS),
)

