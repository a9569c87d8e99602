"""gemmlowp / TFLite fixed-point non-linear operators, bit-exact.

A raw int32 in Q\\ *m*.\\ *n* format (``n = 31 - m``) has the real value ``raw / 2**n``.
gemmlowp's ``+``, ``-`` and ``&`` are plain wrapping int32 operations and ``*`` is
:func:`~intsim.quant.requant.saturating_rounding_doubling_high_mul` (SRDHM, ties toward +inf);
``Rescale`` and ``SaturatingRoundingMultiplyByPOT`` saturate when shifting left and use
:func:`~intsim.quant.requant.rounding_divide_by_pot` (RDBPOT, ties away from zero) when shifting
right. The operators here follow ``fixedpoint/fixedpoint.h`` (gemmlowp 16e8662c3491) and
TFLite's ``reference/softmax.h`` / ``common.h`` (tflite-micro 90b983c2b3f1) step by step:

==============================================================  ====================  ==================
operator                                                        input                 output
==============================================================  ====================  ==================
:func:`exp_on_interval_between_negative_one_quarter_and_0_excl`  Q0.31 in [-1/4, 0)   Q0.31
:func:`exp_on_negative_values`                                  Qk.(31-k), <= 0       Q0.31
:func:`one_over_one_plus_x_for_x_in_0_1`                        Q0.31 in [0, 1]       Q0.31
:func:`softmax_int8` (TFLite int8/uint8 reference kernel)       int8/uint8 + scale    int8/uint8/int16
:func:`get_inv_sqrt_quantized_multiplier_exp` (LayerNorm, L2)   int32 >= 0            multiplier, shift
==============================================================  ====================  ==================

Every operator returns an :class:`~intsim.regs.opresult.OpResult` (values as int64 arrays of
the input's shape, their scale, per-call op counts and named taps) and checks every
wrapping intermediate register through a :class:`~intsim.regs.registers.RegisterFile`
(defaults: 32-bit signed, as in the C code; override with ``widths={step: bits}``; the old
keyword ``registers=`` still works, with a DeprecationWarning).
With ``overflow="raise"`` (default) a register that would wrap raises
:class:`~intsim.core.errors.RegisterOverflow` naming the operator, the step and the value;
``"wrap"`` reproduces the C code's silent int32 wrap-around, ``"saturate"`` clamps, and
``"record"`` keeps the C (wrapped) value while recording the event (the published code's
arithmetic *is* wrapping int32, so there is no wider "exact" value to keep).

Op counts follow the C reference one operation for one operation: SRDHM counts as a
32x32 multiply, a 64-bit add and shift, and a compare (the saturation test); RDBPOT as a
32-bit shift, two adds and two compares; bitwise and/select/mask operations count as
``compare`` (single-cycle logic). The softmax kernel's counts are those of the reference
kernel, which evaluates the exponential twice per element (once for the sum, once for
the output), even though intsim evaluates it once (the result is identical).

Each operator's register chain is declared once (a :class:`~intsim.regs.chain.Chain`: the
steps in pipeline order, their C widths and the published operations, from which the op counts
come) and written once, as a numba function with a ``rec`` flag (see
:mod:`intsim.regs.prims`). With the C widths no register can overflow for a valid input
(verified exhaustively: ``_verify_default_registers`` in the tests), so the chain runs
unrecorded, with no checks: plain loops that LLVM vectorizes, over blocks on the cores. With
other widths each block (each softmax row) runs unrecorded first and again recorded where a
value left its register. Unrecorded, every value is the C code's (no policy has changed one),
so the chain may use the int32 forms of its multiplies; the recorded pass uses the exact int64
forms (a policy may leave a register holding a value beyond int32).

>>> import numpy as np
>>> from intsim.ops.gemmlowp import softmax_int8, exp_on_negative_values
>>> softmax_int8(np.array([10, 20, 30, 40, 50], dtype=np.int8), 0.1).values.tolist()
[-125, -120, -106, -68, 35]
>>> int(exp_on_negative_values(np.array([-(1 << 26)]), 5).values[0])    # exp(-1) in Q0.31
790015308
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import leading_zeros

from ..core.arrays import as_int_array, to_int64
from ..core.deprecation import renamed_keyword
from ..core.dyadic import check_scale, quantize_multiplier_greater_than_one
from ..core.errors import ConfigError, OperandRangeError, RegisterOverflow
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..core.overflow import WRAP
from ..regs.chain import Chain, Cost, Step
from ..regs.opresult import OpResult
from ..regs.prims import step
from ..regs.registers import RegisterEvent, RegisterFile
from ..regs.runtime import Plan

__all__ = [
    "QuantOpResult",
    "SoftmaxParams",
    "exp_on_interval_between_negative_one_quarter_and_0_excl",
    "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1",
    "softmax_params",
    "softmax_int8",
    "get_inv_sqrt_quantized_multiplier_exp",
    "EXP_BARREL_CONSTANTS",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
I32 = IntType(32)

#: exp(-2**j) in Q0.31 for j = -2 .. 4 (gemmlowp's barrel-shifter multipliers).
EXP_BARREL_CONSTANTS: tuple[int, ...] = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
_EXP_M1_8 = 1895147668  # exp(-1/8), Q0.31
_ONE_THIRD = 715827883  # 1/3, Q0.31
_C48_17 = 1515870810  # 48/17, Q2.29
_CNEG32_17 = -1010580540  # -32/17, Q2.29
_HALF_THREE = (1 << 28) + (1 << 27)  # 1.5, Q3.28
_HALF_SQRT2 = 1518500250  # sqrt(2)/2, Q0.31


@dataclass
class QuantOpResult(OpResult):
    """An :class:`OpResult` whose values carry a zero point: ``real = (values - zero_point) * scale``.

    >>> QuantOpResult(values=np.array([-128, 127]), scale=1 / 256, zero_point=-128).dequantize().tolist()
    [0.0, 0.99609375]
    """

    zero_point: int = 0

    def dequantize(self) -> np.ndarray:
        scale = self.scale.value if hasattr(self.scale, "value") else self.scale
        return (self.values - self.zero_point).astype(np.float64) * np.asarray(scale, dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# the chains: registers in pipeline order, their C widths and the published operations
# ------------------------------------------------------------------------------------------------
# Op counts follow the C code: SRDHM is a 32x32 multiply, a 64-bit add and shift and a compare
# (the saturation test); RDBPOT a 32-bit shift, two adds and two compares; the saturating left
# shift (Rescale, SaturatingRoundingMultiplyByPOT) a shift and two compares. A step carries the
# operations from the previous register up to it; the last step of a chain also those after it.


def _srdhm_cost(k: int = 1, per: str = "e") -> tuple[Cost, ...]:
    return (Cost("mul", (32, 32), k, per), Cost("add", (64,), k, per), Cost("shift", (64,), k, per),
            Cost("compare", (32,), k, per))


def _rdbpot_cost(k: int = 1, per: str = "e") -> tuple[Cost, ...]:
    return Cost("shift", (32,), k, per), Cost("add", (32,), 2 * k, per), Cost("compare", (32,), 2 * k, per)


def _srmpot_cost(k: int = 1, per: str = "e") -> tuple[Cost, ...]:
    return Cost("shift", (32,), k, per), Cost("compare", (32,), 2 * k, per)


def _cost(op: str, bits: int, k: int = 1, per: str = "e") -> tuple[Cost, ...]:
    return (Cost(op, (bits,), k, per),) if k else ()


def _exp_steps(prefix: str, ib: int | None, k: int = 1) -> list[Step]:
    """The four registers of gemmlowp's exp polynomial (``exp_on_interval...``, ``k`` evaluations
    per element); with ``ib``, the whole of ``exp_on_negative_values`` for Q(ib).(31-ib)."""
    pre: tuple[Cost, ...] = ()
    post: tuple[Cost, ...] = ()
    if ib is not None:
        n_barrel = sum(1 for e in range(-2, 5) if ib > e)
        pre = _cost("compare", 32, k) + _cost("add", 32, 2 * k)  # a & mask; - quarter; rem = a' - a
        if ib > 0:
            pre += _srmpot_cost(k)  # Rescale<0>
        post = _srdhm_cost(n_barrel * k) + _cost("compare", 32, 2 * n_barrel * k)  # barrel: bit test, select
        post += _cost("compare", 32, 2 * k * (ib > 5)) + _cost("compare", 32, 2 * k)  # a < -32 -> 0; a == 0 -> One
    return [
        # x = a + 1/8; x2, x3, x4; x4 / 4; + x3
        Step(prefix + "poly_a", "e", I32, pre + _cost("add", 32, 2 * k) + _srdhm_cost(3 * k) + _rdbpot_cost(k)),
        Step(prefix + "poly_b", "e", I32, _srdhm_cost(k) + _cost("add", 32, k)),  # * 1/3 + x2
        Step(prefix + "poly_c", "e", I32, _rdbpot_cost(k) + _cost("add", 32, k)),  # / 2; x + ..
        Step(prefix + "poly_out", "e", I32, _srdhm_cost(k) + _cost("add", 32, k) + post),  # c + c * ..
    ]


def _one_over_steps(prefix: str, per: str) -> list[Step]:
    """The three registers of gemmlowp's ``one_over_one_plus_x_for_x_in_0_1`` (per element or row)."""
    return [
        # RoundingHalfSum (in 64 bits), then 48/17 + SRDHM(h, -32/17)
        Step(prefix + "seed", per, I32, _cost("add", 64, 2, per) + _cost("shift", 64, 1, per)
             + _cost("compare", 64, 1, per) + _srdhm_cost(1, per) + _cost("add", 32, 1, per)),
        Step(prefix + "newton_error", per, I32, _srdhm_cost(3, per) + _cost("add", 32, 3, per)),
        # x + Rescale<2>(SRDHM(x, error)), three times; then Rescale<0>(x / 2)
        Step(prefix + "newton_update", per, I32, _srdhm_cost(3, per) + _cost("add", 32, 3, per) + _srmpot_cost(4, per)),
    ]


EXP_INTERVAL_CHAIN = Chain("exp_on_interval_between_negative_one_quarter_and_0_excl", _exp_steps("", None))
P_A, P_B, P_C, P_OUT = range(len(EXP_INTERVAL_CHAIN))


@cache
def _exp_neg_chain_of(ib: int) -> Chain:
    """The chain of ``exp_on_negative_values`` for Q(ib).(31-ib) (its op counts depend on ib)."""
    return Chain("exp_on_negative_values", _exp_steps("", ib))


ONE_OVER_CHAIN = Chain("one_over_one_plus_x_for_x_in_0_1", _one_over_steps("", "e"))
R_SEED, R_ERROR, R_UPDATE = range(len(ONE_OVER_CHAIN))

INV_SQRT_CHAIN = Chain("get_inv_sqrt_quantized_multiplier_exp", [
    # input <= 1; normalization (clz, shifts); half input (RDBPOT); five Newton steps
    Step("newton_difference", "e", I32, _cost("compare", 32, 3) + _cost("shift", 32, 4) + _cost("add", 32, 3)
         + _rdbpot_cost(1) + _srdhm_cost(4 * 5) + _srmpot_cost(2 * 5) + _cost("add", 32, 5)),
    Step("multiplier", "e", I32, _srdhm_cost(1) + _cost("compare", 32, 1) + _cost("shift", 32, 1)),  # * sqrt(2)/2
])
Q_DIFF, Q_MULT = range(len(INV_SQRT_CHAIN))


@cache
def _softmax_chain_of(single: bool) -> Chain:
    """TFLite's int8 softmax, costed as the reference kernel: per element (call parameter ``n``)
    the row max, the difference and the diff_min mask; per active element (``elements``) the
    exponential twice (once for the sum, once for the output), the sum and the output; per row
    (``rows``) the reciprocal."""
    per_n = (Cost("compare", ("in",), "n", "call"), Cost("add", (32,), "n", "call"),
             Cost("compare", (32,), "n", "call"))
    if single:
        scaled = (Cost("mul", (32, 32), 2), Cost("add", (64,), 2), Cost("shift", (64,), 2))  # MBQM, single rounding
    else:
        scaled = _cost("shift", 32, 2) + _srdhm_cost(2)  # d << left_shift; SRDHM
    return Chain("softmax_int8", [
        Step("scaled_diff", "e", I32, per_n + scaled),
        *_exp_steps("exp_", 5, 2),
        Step("sum", "r", I32, _rdbpot_cost(1) + _cost("add", 32, 1)),  # Rescale<12>, the sum
        *_one_over_steps("recip_", "r"),
        # clz, the shift and the subtraction of One (before 1 / (1 + x)), the exponent
        Step("output_exponent", "r", IntType(5, signed=False), _cost("compare", 32, 1, "r")
             + _cost("shift", 32, 1, "r") + _cost("add", 32, 3, "r")),
        Step("output", "e", I32, _srdhm_cost(1) + _rdbpot_cost(1) + _cost("add", 32, 1) + _cost("compare", 32, 2)),
    ])


SOFTMAX_CHAIN = _softmax_chain_of(False)
S_SCALED, S_EXP, S_SUM, S_RECIP, S_EXPONENT, S_OUT = SOFTMAX_CHAIN.ids(
    "scaled_diff", "exp_poly_a", "sum", "recip_seed", "output_exponent", "output")
#: the steps of the softmax's per-call exp table (reported by input difference, not by element)
_SOFTMAX_TABLE_STEPS = range(S_SCALED, S_SUM)


@cache
def _unit_counts(chain: Chain, per: str, in_bits: int) -> OpCounts:
    """The op counts of the chain's costs of kind ``per`` ("e", "r" or "call") for one element,
    row or unit of the call parameter ``n`` (every width here is fixed: the C code's, or the
    input's)."""
    part = Chain(chain.op, [Step(s.name, s.kind, s.width, tuple(c for c in s.costs if c.per == per))
                            for s in chain.steps])
    return part.op_counts(chain.registers(None, "raise"), in_bits=in_bits, elements=1, rows=1, params={"n": 1})


def _op_counts(chain: Chain, elements: int, rows: int = 0, n: int = 0, in_bits: int = 32) -> OpCounts:
    """The chain's op counts of a call (``chain.op_counts``, from its parts per unit)."""
    ops = _unit_counts(chain, "e", in_bits) * elements
    if rows:
        ops += _unit_counts(chain, "r", in_bits) * rows
    if n:
        ops += _unit_counts(chain, "call", in_bits) * n
    return ops


def _registers(chain: Chain, widths: Mapping[str, Any] | None, overflow: str) -> tuple[RegisterFile, bool]:
    """The call's RegisterFile (the chain's C widths overridden by ``widths``) and whether any
    width differs from the C code's (then the kernels check the registers)."""
    defaults = chain.defaults()
    extra = set(widths or {}) - set(defaults)
    if extra:
        raise ConfigError(f"{chain.op}: unknown register step(s) {sorted(extra)}; valid: {', '.join(defaults)}")
    regs = RegisterFile(chain.op, dict(defaults, **(widths or {})), overflow=overflow)
    return regs, any(regs.type_of(k) != t for k, t in defaults.items())


def _plan(chain: Chain, regs: RegisterFile, R: int, N: int, exact_on_record: tuple[str, ...] = ()) -> Plan:
    """The kernel arrays of a call (R kernel rows of N, no taps: the operators tap their own
    values). Under ``record`` a register keeps the C code's value, which is the wrapped one,
    except in the steps ``exact_on_record`` (where the C code has no defined value)."""
    u64 = [s for s, name in enumerate(chain.names) if regs.type_of(name).max > INT64_MAX]
    if u64:  # every value is an int64: an unsigned 64-bit register holds [0, INT64_MAX] of them
        held = {name: IntType(64) if s in u64 else regs.type_of(name) for s, name in enumerate(chain.names)}
        plan = chain.plan(RegisterFile(regs.op, held, overflow=regs.overflow), R, N, False)
        plan.regs = regs  # the events name the declared registers
        for s in u64:
            plan.cf[s, :4] = (0, INT64_MAX, 64, 0)
    else:
        plan = chain.plan(regs, R, N, False)
    if regs.overflow == "record":
        for s, name in enumerate(chain.names):
            if name not in exact_on_record:
                plan.cf[s, 4] = WRAP
    return plan


# ------------------------------------------------------------------------------------------------
# scalar numba building blocks (int64 holding int32 raws)
# ------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _srdhm(a, b):  # pragma: no cover - numba
    # floor((a*b + 2**30) / 2**31); only MIN*MIN exceeds INT32_MAX (it gives 2**31)
    r = (a * b + np.int64(1 << 30)) >> np.int64(31)
    return r if r <= np.int64(INT32_MAX) else np.int64(INT32_MAX)


@njit(cache=True, forceinline=True)
def _srdhm32(a, b):  # pragma: no cover - numba
    """_srdhm for operands known to be int32: the sign-extend-from-int32 form lets LLVM use a
    32x32->64 vector multiply (vpmuldq) instead of a 64x64 one."""
    r = (np.int64(np.int32(a)) * np.int64(np.int32(b)) + np.int64(1 << 30)) >> np.int64(31)
    return r if r <= np.int64(INT32_MAX) else np.int64(INT32_MAX)


@njit(cache=True, forceinline=True)
def _mul(a, b, rec):  # pragma: no cover - numba
    """SRDHM in a chain: the int32 form unrecorded (every value is the C code's, an int32), the
    exact int64 form recorded (a policy may have left a value beyond int32 in a register)."""
    if rec:
        return _srdhm(a, b)
    return _srdhm32(a, b)


@njit(cache=True, forceinline=True)
def _mul_nonneg(a, b, rec, ok):  # pragma: no cover - numba
    """SRDHM of operands that are non-negative int32 values in the C code: unrecorded it is the
    unsigned 32x32->64 form, ``(a b + 2**30) >> 31 <= 2**31 - 2`` (no clamp; zero-extended, so
    that LLVM uses vpmuludq without the sign-extending shifts), and ``ok`` is cleared if an
    operand is negative. Returns ``(value, ok)``."""
    if rec:
        return _srdhm(a, b), ok
    p = np.uint64(np.uint32(a)) * np.uint64(np.uint32(b)) + np.uint64(1 << 30)
    return np.int64(p >> np.uint64(31)), ok & (a >= 0) & (b >= 0)


@njit(cache=True, forceinline=True)
def _rdbpot(x, e):  # pragma: no cover - numba
    # exact round-half-away of x / 2**e for any 0 <= e <= 62 (gemmlowp allows e <= 31)
    mask = (np.int64(1) << e) - np.int64(1)
    rem = x & mask
    thr = (mask >> np.int64(1)) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if rem > thr else np.int64(0))


@njit(cache=True, forceinline=True)
def _srmpot_left(x, e):  # pragma: no cover - numba
    thr = (np.int64(1) << np.int64(31 - e)) - np.int64(1)
    if x > thr:
        return np.int64(INT32_MAX)
    if x < -thr:
        return np.int64(INT32_MIN)
    return x << np.int64(e)


@njit(cache=True, forceinline=True)
def _shl(x, e, rec, ok):  # pragma: no cover - numba
    """SaturatingRoundingMultiplyByPOT<e> (e > 0) where the C code never saturates: unrecorded a
    plain shift, with ``ok`` cleared if it would have saturated. Returns ``(value, ok)``."""
    if rec:
        return _srmpot_left(x, e), ok
    thr = (np.int64(1) << np.int64(31 - e)) - np.int64(1)
    return x << np.int64(e), ok & (x <= thr) & (x >= -thr)


@njit(cache=True, forceinline=True)
def _rounding_half_sum(a, b):  # pragma: no cover - numba
    s = a + b
    n = s + (np.int64(1) if s >= 0 else np.int64(-1))
    return n // 2 if n >= 0 else -((-n) // 2)


@njit(cache=True, forceinline=True)
def _bit_length(u):  # pragma: no cover - numba
    """Bit length of 0 <= u < 2**32 by a branch-free binary search (vectorizable)."""
    n = np.int64(0)
    for w in (16, 8, 4, 2, 1):
        t = np.int64(1) if u >= (np.int64(1) << np.int64(w)) else np.int64(0)
        n += t * w
        u >>= t * w
    return n + (np.int64(1) if u > 0 else np.int64(0))


# ------------------------------------------------------------------------------------------------
# the chains, written once: ``rec`` False runs unrecorded (``ok`` cleared where a value leaves its
# register), True recorded; the step numbers are those of the chain declarations above (plus s0
# for a sub-chain). Per-element registers are at (i, j) = (kernel row or block, column or offset),
# per-row registers at j = -1.
# ------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _exp_interval_chain(cf, st, tp, i, j, a, s0, rec, ok):  # pragma: no cover - numba
    """exp on [-1/4, 0): Taylor expansion around -1/8 (Q0.31 in and out). Returns (y, ok)."""
    x = a + np.int64(1 << 28)
    x2 = _mul(x, x, rec)
    x3 = _mul(x2, x, rec)
    x4 = _mul(x2, x2, rec)
    t, ok = step(cf, st, tp, False, i, j, s0 + P_A, _rdbpot(x4, np.int64(2)) + x3, rec, ok)
    t, ok = step(cf, st, tp, False, i, j, s0 + P_B, _mul(t, np.int64(_ONE_THIRD), rec) + x2, rec, ok)
    u, ok = step(cf, st, tp, False, i, j, s0 + P_C, x + _rdbpot(t, np.int64(1)), rec, ok)
    return step(cf, st, tp, False, i, j, s0 + P_OUT, np.int64(_EXP_M1_8) + _mul(np.int64(_EXP_M1_8), u, rec), rec, ok)


@njit(cache=True, forceinline=True)
def _barrel(result, rem, bit, c, rec):  # pragma: no cover - numba
    sel = (rem >> np.int64(bit)) & np.int64(1)
    return result + sel * (_mul(result, np.int64(c), rec) - result)  # branch-free select


@njit(cache=True, forceinline=True)
def _exp_neg_chain(cf, st, tp, i, j, a, ib, s0, rec, ok):  # pragma: no cover - numba
    """exp_on_negative_values for a Q(ib).(31-ib) raw a <= 0; returns (Q0.31 result, a', interval
    exp, ok)."""
    frac = 31 - ib
    quarter = np.int64(1) << np.int64(frac - 2)
    a_mod = (a & (quarter - np.int64(1))) - quarter
    a0 = _srmpot_left(a_mod, ib) if ib > 0 else a_mod
    y0, ok = _exp_interval_chain(cf, st, tp, i, j, a0, s0, rec, ok)
    rem = a_mod - a
    b = EXP_BARREL_CONSTANTS
    result = _barrel(y0, rem, frac - 2, b[0], rec)
    result = _barrel(result, rem, frac - 1, b[1], rec)
    if ib > 0:
        result = _barrel(result, rem, frac, b[2], rec)
    if ib > 1:
        result = _barrel(result, rem, frac + 1, b[3], rec)
    if ib > 2:
        result = _barrel(result, rem, frac + 2, b[4], rec)
    if ib > 3:
        result = _barrel(result, rem, frac + 3, b[5], rec)
    if ib > 4:
        result = _barrel(result, rem, frac + 4, b[6], rec)
    if ib > 5:
        result = np.int64(0) if a < -(np.int64(1) << np.int64(36 - ib)) else result
    result = np.int64(INT32_MAX) if a == 0 else result
    return result, a_mod, y0, ok


@njit(cache=True, forceinline=True)
def _one_over_chain(cf, st, tp, i, j, a, s0, rec, ok):  # pragma: no cover - numba
    """1/(1+x) for x in [0, 1]: Q0.31 in, Q0.31 out (Newton-Raphson in Q2.29). Returns (y, ok)."""
    h = _rounding_half_sum(a, np.int64(INT32_MAX))
    x, ok = step(cf, st, tp, False, i, j, s0 + R_SEED, np.int64(_C48_17) + _mul(h, np.int64(_CNEG32_17), rec), rec,
                 ok)
    for _ in range(3):
        e, ok = step(cf, st, tp, False, i, j, s0 + R_ERROR, np.int64(1 << 29) - _mul(h, x, rec), rec, ok)
        x, ok = step(cf, st, tp, False, i, j, s0 + R_UPDATE, x + _srmpot_left(_mul(x, e, rec), 2), rec, ok)
    return _srmpot_left(x, 1), ok


@njit(cache=True, forceinline=True)
def _inv_sqrt_newton(cf, st, tp, i, j, x, half_in, rec, ok):  # pragma: no cover - numba
    """x = Rescale<3>(1.5 x - half_in * Rescale<3>(x**3)) (Q3.28; the products Q6.25)."""
    x2, ok = _mul_nonneg(x, x, rec, ok)
    x3, ok = _mul_nonneg(x2, x, rec, ok)
    x3, ok = _shl(x3, 6, rec, ok)
    a, ok = _mul_nonneg(np.int64(_HALF_THREE), x, rec, ok)
    b, ok = _mul_nonneg(half_in, x3, rec, ok)
    t, ok = step(cf, st, tp, False, i, j, Q_DIFF, a - b, rec, ok)
    return _shl(t, 3, rec, ok)


@njit(cache=True, forceinline=True)
def _inv_sqrt_chain(cf, st, tp, i, j, inp, rs, rec, ok):  # pragma: no cover - numba
    """TFLite GetInvSqrtQuantizedMultiplierExp of one int32 >= 0; returns (multiplier, shift, ok).
    Unrecorded, branch-free (vectorizable): every Newton iterate lies in [2**28, 2**29), no
    saturating shift saturates and SRDHM of non-negative operands cannot reach its clamp
    (``ok`` says so for the inputs at hand)."""
    small = inp <= 1
    if rec and small:
        return np.int64(INT32_MAX), np.int64(0), ok
    v = max(inp, np.int64(2))
    big = np.int64(1) if v >= np.int64(1 << 29) else np.int64(0)
    v = v >> (2 * big)  # v // 4 for the (positive) int32 inputs >= 2**29: once is always enough
    sh = np.int64(11) + big
    pairs = (np.int64(leading_zeros(np.uint64(v))) - 33) // 2 - 1  # (clz32(v) - 1) // 2 - 1
    sh -= pairs
    v = v << (2 * pairs)
    half_in = _rdbpot(v >> np.int64(1), np.int64(1))
    # the first step from x = 1.0 (Q3.28) apart, so that its products with the constant fold
    x, ok = _inv_sqrt_newton(cf, st, tp, i, j, np.int64(1 << 28), half_in, rec, ok)
    for _ in range(4):
        x, ok = _inv_sqrt_newton(cf, st, tp, i, j, x, half_in, rec, ok)
    x = _mul(x, np.int64(_HALF_SQRT2), rec)
    if sh < 0:  # plain int32 shift into the multiplier register
        x, ok = step(cf, st, tp, False, i, j, Q_MULT, x << -sh, rec, ok)
        sh = np.int64(0)
    if small:
        return np.int64(INT32_MAX), np.int64(0), ok
    return x, sh * rs, ok


# ------------------------------------------------------------------------------------------------
# element-wise kernels: blocks of _BLOCK elements, over the cores (prange) for large inputs (see
# _parallel), else in the calling thread. Each block body is a separate @njit function (see the
# comment above intsim.ops.ibert._k_iexp_block for why: small prange bodies compile fast,
# error_model="numpy" and _nrt=False keep the loops vectorized, and np.int64(i) avoids a second,
# uint64 compilation). ``check`` is False with the C widths (no
# register can overflow: the loop runs unrecorded and unchecked); True runs the block unrecorded
# and, where a value left its register, again recorded.
# ------------------------------------------------------------------------------------------------
_BLOCK = 16384


def _blocks(size: int) -> int:
    return -(-size // _BLOCK)


def _parallel(n: int) -> bool:
    """Whether a kernel runs its blocks over the cores (``par``): from two blocks on. A single
    block runs in the calling thread, which avoids waking the worker threads (tens of
    microseconds on an idle machine, milliseconds on a loaded one). These kernels are compute
    bound (about 1.5 to 5 ns an element), so two blocks already gain from a second core."""
    return n > _BLOCK


@njit(cache=True, forceinline=True)
def _exp_interval_loop(cf, st, tp, i, xs, os, rec):  # pragma: no cover - numba
    good = True
    for j in range(xs.shape[0]):
        y, ok = _exp_interval_chain(cf, st, tp, i, j, np.int64(xs[j]), 0, rec, True)
        os[j] = y
        good &= ok
    return good


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_exp_interval_block(i, cf, st, tp, a, out, check):  # pragma: no cover - numba
    p0 = i * _BLOCK
    p1 = min(p0 + _BLOCK, a.shape[0])
    xs = a[p0:p1]
    os = out[p0:p1]
    if not check:
        _exp_interval_loop(cf, st, tp, i, xs, os, False)
    elif not _exp_interval_loop(cf, st, tp, i, xs, os, False):
        _exp_interval_loop(cf, st, tp, i, xs, os, True)


@njit(cache=True, parallel=True)
def _k_exp_interval(cf, st, tp, a, out, check, par):  # pragma: no cover - numba
    if par:
        for i in prange(st.shape[0]):
            _k_exp_interval_block(np.int64(i), cf, st, tp, a, out, check)
    else:
        for i in range(st.shape[0]):
            _k_exp_interval_block(np.int64(i), cf, st, tp, a, out, check)


@njit(cache=True, forceinline=True)
def _exp_neg_loop(cf, st, tp, i, xs, ib, os, t0, t1, ton, rec):  # pragma: no cover - numba
    good = True
    for j in range(xs.shape[0]):
        y, a_mod, y0, ok = _exp_neg_chain(cf, st, tp, i, j, np.int64(xs[j]), ib, 0, rec, True)
        os[j] = y
        if ton:
            t0[j] = a_mod
            t1[j] = y0
        good &= ok
    return good


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_exp_neg_block(i, cf, st, tp, a, ib, out, tq, ton, check):  # pragma: no cover - numba
    p0 = i * _BLOCK
    p1 = min(p0 + _BLOCK, a.shape[0])
    xs = a[p0:p1]
    os = out[p0:p1]
    t0 = tq[0, p0:p1]  # (empty without taps)
    t1 = tq[1, p0:p1]
    if check:
        if not _exp_neg_loop(cf, st, tp, i, xs, ib, os, t0, t1, ton, False):
            _exp_neg_loop(cf, st, tp, i, xs, ib, os, t0, t1, ton, True)
    elif ton:
        _exp_neg_loop(cf, st, tp, i, xs, ib, os, t0, t1, True, False)
    elif ib == 5:  # TFLite softmax's Q5.26: a constant ib lets LLVM fold the barrel tests and vectorize
        _exp_neg_loop(cf, st, tp, i, xs, 5, os, t0, t1, False, False)
    else:
        _exp_neg_loop(cf, st, tp, i, xs, ib, os, t0, t1, False, False)


@njit(cache=True, parallel=True)
def _k_exp_neg(cf, st, tp, a, ib, out, tq, ton, check, par):  # pragma: no cover - numba
    if par:
        for i in prange(st.shape[0]):
            _k_exp_neg_block(np.int64(i), cf, st, tp, a, ib, out, tq, ton, check)
    else:
        for i in range(st.shape[0]):
            _k_exp_neg_block(np.int64(i), cf, st, tp, a, ib, out, tq, ton, check)


@njit(cache=True, forceinline=True)
def _one_over_loop(cf, st, tp, i, xs, os, rec):  # pragma: no cover - numba
    good = True
    for j in range(xs.shape[0]):
        y, ok = _one_over_chain(cf, st, tp, i, j, np.int64(xs[j]), 0, rec, True)
        os[j] = y
        good &= ok
    return good


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_one_over_block(i, cf, st, tp, a, out, check):  # pragma: no cover - numba
    p0 = i * _BLOCK
    p1 = min(p0 + _BLOCK, a.shape[0])
    xs = a[p0:p1]
    os = out[p0:p1]
    if not check:
        _one_over_loop(cf, st, tp, i, xs, os, False)
    elif not _one_over_loop(cf, st, tp, i, xs, os, False):
        _one_over_loop(cf, st, tp, i, xs, os, True)


@njit(cache=True, parallel=True)
def _k_one_over(cf, st, tp, a, out, check, par):  # pragma: no cover - numba
    if par:
        for i in prange(st.shape[0]):
            _k_one_over_block(np.int64(i), cf, st, tp, a, out, check)
    else:
        for i in range(st.shape[0]):
            _k_one_over_block(np.int64(i), cf, st, tp, a, out, check)


@njit(cache=True, forceinline=True)
def _inv_sqrt_loop(cf, st, tp, i, xs, rs, ms, ss, rec):  # pragma: no cover - numba
    good = True
    for j in range(xs.shape[0]):
        m, sh, ok = _inv_sqrt_chain(cf, st, tp, i, j, np.int64(xs[j]), rs, rec, True)
        ms[j] = m
        ss[j] = sh
        good &= ok
    return good


@njit(cache=True, error_model="numpy", _nrt=False)
def _k_inv_sqrt_block(i, cf, st, tp, a, rs, mult, shift, check):  # pragma: no cover - numba
    p0 = i * _BLOCK
    p1 = min(p0 + _BLOCK, a.shape[0])
    xs = a[p0:p1]
    ms = mult[p0:p1]
    ss = shift[p0:p1]
    if not check:
        _inv_sqrt_loop(cf, st, tp, i, xs, rs, ms, ss, False)
    elif not _inv_sqrt_loop(cf, st, tp, i, xs, rs, ms, ss, False):
        _inv_sqrt_loop(cf, st, tp, i, xs, rs, ms, ss, True)


@njit(cache=True, parallel=True)
def _k_inv_sqrt(cf, st, tp, a, rs, mult, shift, check, par):  # pragma: no cover - numba
    if par:
        for i in prange(st.shape[0]):
            _k_inv_sqrt_block(np.int64(i), cf, st, tp, a, rs, mult, shift, check)
    else:
        for i in range(st.shape[0]):
            _k_inv_sqrt_block(np.int64(i), cf, st, tp, a, rs, mult, shift, check)


# ------------------------------------------------------------------------------------------------
# TFLite int8 softmax kernels
# ------------------------------------------------------------------------------------------------
#: the softmax kernels' parameter vector
SP_DIFF_MIN, SP_MULTIPLIER, SP_LEFT_SHIFT, SP_SINGLE, SP_OUT_BITS, SP_OUT_MIN, SP_OUT_MAX, SP_UNRECORDED = range(8)
#: the columns of the per-row results
ROW_MAX, ROW_SUM, ROW_ACTIVE, ROW_RECIP, ROW_NBOU = range(5)
_ZERO_SUM = -1000  #: ROW_NBOU of a row whose sum wrapped to exactly 0


@njit(cache=True)
def _softmax_table(cf, st, tp, kp, scaled, ex, active):  # pragma: no cover - numba
    """For d = 0, -1, ..., -(nd-1): the Q5.26 scaled difference, its exp (Q0.31) and whether
    d >= diff_min (``scaled``, ``ex`` zero where not), recorded at (0, -d)."""
    lshift = kp[SP_LEFT_SHIFT]
    for j in range(scaled.shape[0]):
        d = np.int64(-j)
        if d < kp[SP_DIFF_MIN]:
            continue
        active[j] = 1
        if kp[SP_SINGLE]:
            total = np.int64(31) - lshift
            s, _ = step(cf, st, tp, False, 0, j, S_SCALED,
                        (d * kp[SP_MULTIPLIER] + (np.int64(1) << (total - np.int64(1)))) >> total, True, True)
        else:
            s, _ = step(cf, st, tp, False, 0, j, S_SCALED, d << lshift, True, True)
            s = _srdhm(s, kp[SP_MULTIPLIER])
        scaled[j] = s
        ex[j] = _exp_neg_chain(cf, st, tp, 0, j, s, 5, S_EXP, True, True)[0]


@njit(cache=True, forceinline=True)
def _softmax_row(cf, st, tp, r, xr, ex, active, resc, lut, kp, outr, ro, rec):  # pragma: no cover - numba
    """One row of the TFLite reference softmax; ``ex``/``active`` indexed by -(x - rowmax).
    Unrecorded, the sum is checked once at the end (its addends are non-negative, so its partial
    sums only grow: that checks every add) and rows longer than the table tabulate their outputs
    (the same values the per-element formula gives). Returns ok."""
    depth = xr.shape[0]
    nd = ex.shape[0]
    out_min = kp[SP_OUT_MIN]
    out_max = kp[SP_OUT_MAX]
    mx = np.int64(xr[0])
    for c in range(1, depth):
        mx = max(mx, np.int64(xr[c]))
    ro[ROW_MAX] = mx
    acc = np.int64(0)
    cnt = np.int64(0)
    ok = True
    if rec:
        for c in range(depth):
            j = mx - np.int64(xr[c])
            if active[j]:
                cnt += 1
                acc, ok = step(cf, st, tp, False, r, c, S_SUM, acc + _rdbpot(ex[j], np.int64(12)), True, ok)
    else:
        for c in range(depth):
            j = mx - np.int64(xr[c])
            acc += resc[j]
            cnt += active[j]
        acc, ok = step(cf, st, tp, False, r, -1, S_SUM, acc, False, ok)
    ro[ROW_SUM] = acc
    ro[ROW_ACTIVE] = cnt
    u = acc & np.int64(0xFFFFFFFF)
    if not rec and (not ok or u == 0):
        return False
    if u == 0:
        # the C code would shift by 32 (undefined behaviour); flag it and emit min
        ro[ROW_NBOU] = _ZERO_SUM
        ro[ROW_RECIP] = 0
        for c in range(depth):
            outr[c] = out_min
        return ok
    hp = 32 - _bit_length(u)
    nbou = np.int64(12 - hp)
    shifted = ((u << np.int64(hp)) - np.int64(1 << 31)) & np.int64(0xFFFFFFFF)
    if shifted >= np.int64(1 << 31):
        shifted -= np.int64(1) << np.int64(32)
    recip, ok = _one_over_chain(cf, st, tp, r, -1, shifted, S_RECIP, rec, ok)
    ro[ROW_RECIP] = recip
    ro[ROW_NBOU] = nbou
    expo, ok = step(cf, st, tp, False, r, -1, S_EXPONENT, nbou + np.int64(31) - kp[SP_OUT_BITS], rec, ok)
    if not rec and not ok:
        return False
    if not rec and depth > nd:
        for j in range(nd):
            lut[j] = out_min
            if active[j]:
                v, ok = step(cf, st, tp, False, r, 0, S_OUT, _rdbpot(_mul(recip, ex[j], rec), expo) + out_min, rec, ok)
                lut[j] = min(max(v, out_min), out_max)
        for c in range(depth):
            outr[c] = lut[mx - np.int64(xr[c])]
        return ok
    for c in range(depth):
        j = mx - np.int64(xr[c])
        if active[j]:
            v, ok = step(cf, st, tp, False, r, c, S_OUT, _rdbpot(_mul(recip, ex[j], rec), expo) + out_min, rec, ok)
            outr[c] = min(max(v, out_min), out_max)
        else:
            outr[c] = out_min
    return ok


@njit(cache=True)
def _softmax_kernel(cf, st, tp, x, ex, active, kp, out, rows):  # pragma: no cover - numba
    """The softmax rows: unrecorded first (when kp[SP_UNRECORDED]: the exp table holds the C
    code's values), a row again recorded when a value left its register."""
    nd = ex.shape[0]
    resc = np.empty(nd, dtype=np.int64)
    for j in range(nd):
        resc[j] = _rdbpot(ex[j], np.int64(12)) * active[j]
    lut = np.empty(nd, dtype=np.int64)
    for r in range(x.shape[0]):
        if kp[SP_UNRECORDED] and _softmax_row(cf, st, tp, r, x[r], ex, active, resc, lut, kp, out[r], rows[r], False):
            continue
        _softmax_row(cf, st, tp, r, x[r], ex, active, resc, lut, kp, out[r], rows[r], True)


# ------------------------------------------------------------------------------------------------
# public operators
# ------------------------------------------------------------------------------------------------


def _int_input(x: Any, name: str, lo: int, hi: int) -> np.ndarray:
    """``x`` as a contiguous native integer array whose entries lie in [lo, hi] (no copy when
    possible; kernels widen each element to int64 themselves). Floats raise DTypeError, values
    outside [lo, hi] OperandRangeError naming the first offending index and value."""
    arr = as_int_array(x, name)
    if arr.dtype == np.uint64 or not arr.dtype.isnative:
        arr = to_int64(arr, name)
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")  # (keeps 0-d arrays 0-d, unlike ascontiguousarray)
    info = np.iinfo(arr.dtype)
    if arr.size and (info.min < lo or info.max > hi):
        amin = int(arr.min()) if info.min < lo else lo
        amax = int(arr.max()) if info.max > hi else hi
        if amin < lo or amax > hi:
            bad = (arr < lo) | (arr > hi) if lo >= info.min else arr > hi
            flat = np.flatnonzero(bad.reshape(-1))
            idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), arr.shape)) if arr.ndim else ()
            value = int(arr.reshape(-1)[flat[0]])
            raise OperandRangeError(f"{name}: {flat.size} of {arr.size} entries outside the input range [{lo}, {hi}]; "
                                    f"first at index {idx}: {value}", count=int(flat.size), index=idx, value=value)
    return arr


@renamed_keyword("registers", "widths")
def exp_on_interval_between_negative_one_quarter_and_0_excl(
    a: Any, *, overflow: str = "raise", widths: Mapping[str, Any] | None = None,
) -> OpResult:
    """gemmlowp's ``exp`` on ``[-1/4, 0)``: Q0.31 raw in ``[-2**29, 0)`` -> Q0.31 raw.

    A 4th-order Taylor expansion around -1/8 (``x = a + 1/8``, ``c = exp(-1/8) =
    1895147668``, ``1/3 = 715827883``)::

        y = c + c * (x + (((x**4 / 4 + x**3) * 1/3) + x**2) / 2)

    with ``*`` = SRDHM, ``/4`` and ``/2`` = RDBPOT, ``+`` wrapping int32 adds (registers
    ``poly_a``, ``poly_b``, ``poly_c``, ``poly_out``). gemmlowp's test tolerance is 500 LSB.

    >>> int(exp_on_interval_between_negative_one_quarter_and_0_excl(np.array([-(1 << 29)])).values[0])
    1672462419
    """
    aa = _int_input(a, "a", -(1 << 29), -1)
    chain = EXP_INTERVAL_CHAIN
    regs, custom = _registers(chain, widths, overflow)
    flat = aa.reshape(-1)
    plan = _plan(chain, regs, _blocks(flat.size), _BLOCK)
    out = np.empty(flat.size, dtype=np.int64)
    _k_exp_interval(*plan.args()[:3], flat, out, custom, _parallel(flat.size))
    plan.finish(aa.shape, "flat")
    vals = out.reshape(aa.shape)
    return OpResult(values=vals, scale=2.0**-31, ops=_op_counts(chain, flat.size),
                    registers=regs, taps={"output": vals})


@renamed_keyword("registers", "widths")
def exp_on_negative_values(
    a: Any, integer_bits: int = 5, *, overflow: str = "raise", widths: Mapping[str, Any] | None = None,
    taps: bool = False,
) -> OpResult:
    """gemmlowp ``exp_on_negative_values``: ``exp(a)`` for a Q\\ *k*.(31-*k*) raw ``a <= 0``
    (``k = integer_bits``, 0..29; TFLite's softmax uses k = 5), as a Q0.31 raw.

    Exact semantics::

        quarter = 2**(29 - k);  a' = (a & (quarter - 1)) - quarter     # a' in [-1/4, 0)
        y = exp_on_interval(Rescale<0>(a'))                            # saturating << k
        rem = a' - a                                                   # the multiple of 1/4 removed
        for j in -2..4 with k > j: if bit (31 - k + j) of rem: y = SRDHM(y, exp(-2**j))
        if k > 5 and a < -32: y = 0
        if a == 0: y = INT32_MAX                                       # One() in Q0.31

    Accuracy (Q5.26): max error 489 LSB of Q0.31 (gemmlowp's test tolerance: 500).
    Registers: the four Taylor-polynomial adds (``poly_a`` .. ``poly_out``).
    Taps (``taps=True``): ``a_mod_quarter_minus_one_quarter``, ``interval_exp``, ``output``.

    >>> r = exp_on_negative_values(np.array([0, -(1 << 26), -(16 << 26)]))
    >>> r.values.tolist(), r.scale
    ([2147483647, 790015308, 242], 4.656612873077393e-10)
    """
    if isinstance(integer_bits, bool) or not isinstance(integer_bits, (int, np.integer)) \
            or not 0 <= int(integer_bits) <= 29:
        raise ConfigError(f"integer_bits must be an integer from 0 to 29, got {integer_bits!r}")
    ib = int(integer_bits)
    aa = _int_input(a, "a", INT32_MIN, 0)
    chain = _exp_neg_chain_of(ib)
    regs, custom = _registers(chain, widths, overflow)
    flat = aa.reshape(-1)
    plan = _plan(chain, regs, _blocks(flat.size), _BLOCK)
    out = np.empty(flat.size, dtype=np.int64)
    tq = np.empty((2, flat.size if taps else 0), dtype=np.int64)
    _k_exp_neg(*plan.args()[:3], flat, ib, out, tq, bool(taps), custom, _parallel(flat.size))
    plan.finish(aa.shape, "flat")
    vals = out.reshape(aa.shape)
    tap = {}
    if taps:
        tap = {"a_mod_quarter_minus_one_quarter": tq[0].reshape(aa.shape), "interval_exp": tq[1].reshape(aa.shape),
               "output": vals}
    return OpResult(values=vals, scale=2.0**-31, ops=_op_counts(chain, flat.size),
                    registers=regs, taps=tap)


@renamed_keyword("registers", "widths")
def one_over_one_plus_x_for_x_in_0_1(
    a: Any, *, overflow: str = "raise", widths: Mapping[str, Any] | None = None,
) -> OpResult:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: ``1 / (1 + a)`` for a Q0.31 raw
    ``a`` in ``[0, INT32_MAX]`` (x in [0, 1)), as a Q0.31 raw (``1.0`` saturates to INT32_MAX).

    Exact semantics (``h`` Q0.31, ``x`` Q2.29)::

        h = RoundingHalfSum(a, One)                    # (1 + x) / 2, ties away from zero
        x = 48/17 + SRDHM(h, -32/17)                   # 1515870810, -1010580540 (register seed)
        repeat 3: x = x + Rescale<2>(SRDHM(x, One_Q2.29 - SRDHM(h, x)))   (newton_error, newton_update)
        return Rescale<0>(x / 2)                       # raw unchanged, then saturating << 1

    Accuracy: at most about 6.7 LSB from the exact value (gemmlowp's test: 6 LSB against
    the rounded reference on its test values).

    >>> one_over_one_plus_x_for_x_in_0_1(np.array([0, 1 << 30, 2**31 - 1])).values.tolist()
    [2147483647, 1431655762, 1073741820]
    """
    aa = _int_input(a, "a", 0, INT32_MAX)
    chain = ONE_OVER_CHAIN
    regs, custom = _registers(chain, widths, overflow)
    flat = aa.reshape(-1)
    plan = _plan(chain, regs, _blocks(flat.size), _BLOCK)
    out = np.empty(flat.size, dtype=np.int64)
    _k_one_over(*plan.args()[:3], flat, out, custom, _parallel(flat.size))
    plan.finish(aa.shape, "flat")
    vals = out.reshape(aa.shape)
    return OpResult(values=vals, scale=2.0**-31, ops=_op_counts(chain, flat.size),
                    registers=regs, taps={"output": vals})


@renamed_keyword("registers", "widths")
def get_inv_sqrt_quantized_multiplier_exp(
    x: Any, input_scale: float = 1.0, *, reverse_shift: int = -1, overflow: str = "raise",
    widths: Mapping[str, Any] | None = None,
) -> OpResult:
    """TFLite ``GetInvSqrtQuantizedMultiplierExp`` (integer LayerNorm and L2Normalization):
    ``1/sqrt(x)`` for int32 ``x >= 0`` as a multiplier and a shift per element.

    Exact semantics::

        if x <= 1: return (INT32_MAX, 0)               # 0 is treated as 1 (no error)
        shift = 11; while x >= 2**29: x //= 4; shift += 1
        p = (clz32(x) - 1) // 2 - 1;  shift -= p;  x <<= 2p      # x in [2**27, 2**29)
        in = x >> 1 (Q3.28);  half_in = RDBPOT(in, 1);  y = 1.0 (Q3.28)
        repeat 5: y = Rescale<3>(1.5*y - half_in * Rescale<3>(y*y*y))   # SRDHM products, Q6 -> Q3
        y = SRDHM(y, 1518500250)                        # * sqrt(2)/2
        if shift < 0: y <<= -shift; shift = 0           # plain int32 shift (register multiplier)
        return (y, shift * reverse_shift)

    so that ``1/sqrt(x) ~ multiplier * 2**(-shift * reverse_shift) / 2**31``. ``values`` are the
    multipliers, ``taps["shift"]`` the returned shifts, and ``scale`` the per-element float64
    array ``2**(-shift * reverse_shift - 31) / sqrt(input_scale)`` (built from the shifts when
    first read), so ``dequantize()`` is ``1/sqrt(x * input_scale)``. Negative ``x`` raises
    OperandRangeError (TFLite DCHECKs it).

    >>> r = get_inv_sqrt_quantized_multiplier_exp(np.array([4, 1 << 20]))
    >>> r.values.tolist(), r.taps["shift"].tolist(), r.dequantize().round(6).tolist()
    ([1073741828, 268435457], [0, -7], [0.5, 0.000977])
    """
    if reverse_shift not in (1, -1):
        raise ConfigError(f"reverse_shift must be 1 or -1, got {reverse_shift!r}")
    s_in = check_scale(input_scale, "input_scale")
    aa = _int_input(x, "x", 0, INT32_MAX)
    chain = INV_SQRT_CHAIN
    regs, custom = _registers(chain, widths, overflow)
    flat = aa.reshape(-1)
    mult = np.empty(flat.size, dtype=np.int64)
    shift = np.empty(flat.size, dtype=np.int64)
    base = 1.0 / math.sqrt(s_in)
    if not 2.0**-900 < base < 2.0**900:
        raise ConfigError(f"input_scale {s_in} is outside the supported range")
    plan = _plan(chain, regs, _blocks(flat.size), _BLOCK)
    _k_inv_sqrt(*plan.args()[:3], flat, np.int64(reverse_shift), mult, shift, custom,
                _parallel(flat.size))
    plan.finish(aa.shape, "flat")
    vals = mult.reshape(aa.shape)
    sh = shift.reshape(aa.shape)
    return _InvSqrtResult(base, reverse_shift, values=vals,
                          ops=_op_counts(chain, flat.size), registers=regs,
                          taps={"shift": sh, "multiplier": vals})


class _InvSqrtResult(OpResult):
    """The :class:`OpResult` of :func:`get_inv_sqrt_quantized_multiplier_exp`. Its per-element
    ``scale``, ``base * 2**(-shift * reverse_shift - 31)`` (an exact power-of-two scaling:
    ``base`` is normal and the exponent lies in [-43, -31]), is built from the shifts when it is
    first read, so a caller that needs only the multipliers and shifts, as TFLite's do, does not
    pay for a float64 array of the input's size."""

    def __init__(self, base: float, reverse_shift: int, **fields: Any) -> None:
        self._scale_from = (base, reverse_shift, fields["taps"]["shift"])
        super().__init__(scale=None, **fields)

    @property  # type: ignore[override]
    def scale(self) -> Any:
        if self._scale is None:
            base, rs, shift = self._scale_from
            self._scale = np.ldexp(base, -shift * rs - 31)
        return self._scale

    @scale.setter
    def scale(self, value: Any) -> None:
        self._scale = value  # None (from OpResult's __init__): built when first read


# ------------------------------------------------------------------------------------------------
# TFLite int8 softmax
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftmaxParams:
    """The prepared parameters of TFLite's int8 softmax (``CalculateSoftmaxParams``)."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int
    real_multiplier: float


def softmax_params(input_scale: float, beta: float = 1.0, *, single_rounding: bool = False,
                   float32_params: bool = True) -> SoftmaxParams:
    """TFLite's softmax Prepare step for 8-bit input (``PreprocessSoftmaxScaling`` and
    ``CalculateInputRadius`` with 5 integer bits)::

        real = min(beta * input_scale * 2**26, 2**31 - 1)        # single-rounding build: 2**30 - 1
        (input_multiplier, input_left_shift) = QuantizeMultiplierGreaterThanOne(real)
        diff_min = -floor(31 * 2**26 / 2**input_left_shift)

    TFLite stores ``input_scale`` and ``beta`` as float32 and widens them to double;
    ``float32_params=True`` (default) does the same, ``False`` uses the given float64
    values (figures computed that way: 0.1 gives 1717986918, 23, -248;
    float32 0.1 gives 1717986944, 23, -248).

    >>> softmax_params(0.1, float32_params=False)
    SoftmaxParams(input_multiplier=1717986918, input_left_shift=23, diff_min=-248, real_multiplier=6710886.4)
    """
    s = check_scale(input_scale, "input_scale")
    b = check_scale(beta, "beta")
    if float32_params:
        s, b = float(np.float32(s)), float(np.float32(b))
    cap = float((1 << 30) - 1) if single_rounding else float((1 << 31) - 1)
    real = min(b * s * float(1 << 26), cap)
    if not real > 1.0:
        raise ConfigError(f"beta * input_scale * 2**26 = {real} must exceed 1 (input_scale {s} is too small "
                          "for TFLite's int8 softmax)")
    mult, lshift = quantize_multiplier_greater_than_one(real, single_rounding=single_rounding)
    radius = math.floor(31.0 * float(1 << 26) / float(1 << lshift))
    return SoftmaxParams(mult, lshift, -radius, real)


@renamed_keyword("registers", "widths")
def softmax_int8(
    x: Any, input_scale: float, *, beta: float = 1.0, in_type: IntType | str = "int8",
    out_type: IntType | str = "int8", single_rounding: bool = False, float32_params: bool = True,
    overflow: str = "raise", widths: Mapping[str, Any] | None = None, taps: bool = False,
) -> QuantOpResult:
    """TFLite's reference int8/uint8 softmax (``reference_ops::Softmax``) along the last axis.

    Per row (``params`` from :func:`softmax_params`)::

        d = x - max(row)                                   # <= 0
        if d < diff_min: output min(out) (contributes 0 to the sum)
        s = MBQM_GreaterThanOne(d, input_multiplier, input_left_shift)   # Q5.26
              (double rounding: SRDHM(d << left_shift, mult); single: MBQM single rounding)
        e = exp_on_negative_values(s, 5)                   # Q0.31
        sum += Rescale<12>(e) = RDBPOT(e, 12)              # Q12.19, wrapping int32 add
        hp = clz32(sum); nbou = 12 - hp
        recip = one_over_one_plus_x((uint32(sum) << hp) - 2**31)
        out = clamp(RDBPOT(SRDHM(recip, e), nbou + 31 - bits(out)) + min(out), min(out), max(out))

    Output scale ``2**-bits(out)``; zero point ``min(out)`` for signed outputs (int8: 1/256,
    -128; int16: 1/65536, -32768) and 0 for uint8. ``in_type`` is int8 or uint8; ``out_type``
    int8, uint8 or int16.

    Registers (``overflow``): ``sum`` wraps (to INT32_MIN) once 4096 maxima are summed; the RDBPOT
    exponent ``output_exponent`` (declared as gemmlowp's valid range, 5-bit unsigned [0, 31])
    exceeds 31 once the Q12.19 sum reaches 2**28 (about 512 maxima for int8 output), where
    gemmlowp asserts and release builds shift out of range; ``record`` then uses the exact
    rounding of ``x / 2**exponent``. A sum that wraps to exactly 0 is refused (the C code would
    shift by 32). Taps (``taps=True``): ``row_max``, ``diff``, ``scaled_diff``, ``exp``, ``sum``,
    ``num_bits_over_unit``, ``reciprocal``, ``output``.

    >>> r = softmax_int8(np.array([[10, 20, 30, 40, 50], [0, 0, 0, 0, 0]]), 0.1)
    >>> r.values.tolist(), r.scale, r.zero_point
    ([[-125, -120, -106, -68, 35], [-77, -77, -77, -77, -77]], 0.00390625, -128)
    """
    in_t = IntType.parse(in_type)
    out_t = IntType.parse(out_type)
    if in_t not in (IntType(8), IntType(8, signed=False)):
        raise ConfigError(f"softmax_int8 takes int8 or uint8 input (TFLite's int16 softmax is a LUT kernel), "
                          f"got {in_t.name}")
    if out_t not in (IntType(8), IntType(8, signed=False), IntType(16)):
        raise ConfigError(f"softmax_int8 output must be int8, uint8 or int16, got {out_t.name}")
    params = softmax_params(input_scale, beta, single_rounding=single_rounding, float32_params=float32_params)
    xx = _int_input(x, "x", in_t.min, in_t.max)
    if xx.ndim == 0:
        raise ConfigError("softmax_int8 needs at least one axis (it normalizes over the last)")
    if xx.shape[-1] == 0:
        raise ConfigError("softmax_int8: the last axis is empty")
    chain = _softmax_chain_of(bool(single_rounding))
    regs, _ = _registers(chain, widths, overflow)
    depth = xx.shape[-1]
    x2 = xx.reshape(-1, depth)
    nrows = x2.shape[0]
    nd = 1 << in_t.bits
    kp = np.array([params.diff_min, params.input_multiplier, params.input_left_shift, int(bool(single_rounding)),
                   out_t.bits, out_t.min, out_t.max, 0], dtype=np.int64)
    table = _plan(chain, regs, 1, nd, exact_on_record=("output_exponent",))
    scaled = np.zeros(nd, dtype=np.int64)
    ex = np.zeros(nd, dtype=np.int64)
    active = np.zeros(nd, dtype=np.int64)
    _softmax_table(*table.args()[:3], kp, scaled, ex, active)
    kp[SP_UNRECORDED] = not table.st[:, :, 0].any()  # the table holds the C code's values
    plan = _plan(chain, regs, nrows, depth, exact_on_record=("output_exponent",))
    out = np.empty(x2.shape, dtype=np.int64)
    rows = np.empty((nrows, 5), dtype=np.int64)
    _softmax_kernel(*plan.args()[:3], x2, ex, active, kp, out, rows)
    lead = xx.shape[:-1]
    _report_softmax_table(regs, table)
    plan.finish(xx.shape)
    zero_rows = np.flatnonzero(rows[:, ROW_NBOU] == _ZERO_SUM)
    if zero_rows.size:
        r0 = int(zero_rows[0])
        raise RegisterOverflow(
            f"softmax_int8: register 'sum' wrapped to exactly 0 in row {np.unravel_index(r0, lead) if lead else ()} "
            "(8192 or more maxima); the C code would then shift by 32, which is undefined",
            op="softmax_int8", step="sum", value=0, bits=32)
    vals = out.reshape(xx.shape)
    zp = out_t.min if out_t.signed else 0
    n = int(xx.size)
    ops = _op_counts(chain, int(rows[:, ROW_ACTIVE].sum()), nrows, n, in_t.bits)
    ops.add("read", (in_t.bits,), 2 * n).add("write", (out_t.bits,), n)
    tap: dict[str, np.ndarray] = {}
    if taps:
        j = rows[:, ROW_MAX][:, None] - x2
        diff = (-j).reshape(xx.shape)
        tap = {
            "row_max": rows[:, ROW_MAX].reshape(lead), "diff": diff,
            "scaled_diff": np.where(active[j], scaled[j], 0).reshape(xx.shape),
            "exp": np.where(active[j], ex[j], 0).reshape(xx.shape),
            "sum": rows[:, ROW_SUM].reshape(lead), "num_bits_over_unit": rows[:, ROW_NBOU].reshape(lead),
            "reciprocal": rows[:, ROW_RECIP].reshape(lead), "output": vals,
        }
    return QuantOpResult(values=vals, scale=2.0 ** -out_t.bits, ops=ops, registers=regs, taps=tap,
                         zero_point=zp)


def _report_softmax_table(regs: RegisterFile, table: Plan) -> None:
    """Report the events of the exp table's steps, each at the input difference ``d = x - max``
    whose evaluation overflowed (index ``(d,)``); raise on the first under ``raise``."""
    for s in _SOFTMAX_TABLE_STEPS:
        count = int(table.st[0, s, 0])
        if count == 0:
            continue
        step_name = table.names[s]
        t = regs.type_of(step_name)
        idx, value = (-int(table.st[0, s, 1]),), int(table.st[0, s, 2])
        regs.events.append(RegisterEvent(regs.op, step_name, t.bits, t.signed, count, idx, value, regs.overflow))
        if regs.overflow == "raise":
            raise RegisterOverflow(
                f"{regs.op}: register '{step_name}' ({t.name}) overflowed: {count} value(s) outside "
                f"[{t.min}, {t.max}]; first at index {idx}: {value}", op=regs.op, step=step_name, value=value,
                bits=t.bits)
