"""Requantization: integer accumulators to narrow integers, as real back-ends do it.

One entry point, :func:`requantize`, with the back-end chosen by ``mode``:

================  ==================================================================================
``mode``          exact semantics (``x`` an integer, ``s`` the scale, ``zp`` the output zero point)
================  ==================================================================================
``dyadic``        ``sat(round(x * m / 2**k) + zp)``, exact integer arithmetic, any rounding mode
                  (default ``half_even``); ``s`` a :class:`~intsim.core.dyadic.Dyadic` (a float scale is
                  converted with ``Dyadic.from_float(s, bits=31)``)
``tflite_double`` TFLite ``MultiplyByQuantizedMultiplier``, double-rounding build (the default build):
                  ``RDBPOT(SRDHM(x * 2**max(shift, 0), q), max(-shift, 0))``: SRDHM rounds ties toward
                  +inf, RDBPOT ties away from zero; then ``+ zp`` and saturation
``tflite_single`` ``TFLITE_SINGLE_ROUNDING`` build: ``(x * q + 2**(30 - shift)) >> (31 - shift)``
                  (one rounding, ties toward +inf); then ``+ zp`` and saturation
``onnx_ref``      ONNX reference evaluator (``QLinearMatMul``/``QuantizeLinear``): ``float64(x) *
                  float64(s)`` (one IEEE rounding), ``np.rint`` (ties to even), ``+ zp``, saturation
``ort_fp32``      onnxruntime/MLAS: ``float32(x)`` (rounds to nearest-even above 2**24) times
                  ``float32(s)`` in float32 (one IEEE rounding), round half to even, ``+ zp``, saturation
``gemmini_fp32``  Gemmini ``ACC_SCALE``: HardFloat int->fp32, fp32 multiply, fp32->int, all round
                  to nearest even, saturating; bit-identical arithmetic to ``ort_fp32``; no zero point
================  ==================================================================================

TFLite modes take the scale as a float (converted with
:func:`~intsim.core.dyadic.quantize_multiplier`, single-rounding saturation included for
``tflite_single``) or as a Dyadic (normalized exactly with
:meth:`~intsim.core.dyadic.Dyadic.to_tflite`). With ``in_type`` wider than 32 bits they use
TFLite's int64-input overload (:func:`multiply_by_quantized_multiplier_int64`).

``tosa_rescale`` is deliberately absent: intsim has not checked TOSA 1.0's ``apply_scale_32``
pseudocode against an implementation, and does not guess bit-exact semantics.

**Order of rounding and saturation.** ONNX and TFLite round, then add the zero point,
then saturate (``order="round_then_saturate"``, the default). qonnx ``IntQuant`` and
TVM Relay QNN clamp the real value first (``order="clamp_then_round"``): ``v = x * s``
(as the mode computes it: exact rational in ``dyadic``, the float32/float64 product in the
float modes) is clamped to ``[lo, hi] = [out.min - zp, out.max - zp]``, then rounded, then
``zp`` is added. The bounds are exact integers in every mode (the float modes compare in
the integer domain after rounding, never against a bound rounded to float32, which would
move it inward past 2**24). With integer bounds the two orders give identical results in
every rounding mode except ``jam`` (which turns the clamped bound ``min`` into
``min | 1``), because every other mode is monotone and leaves integers unchanged; the
option exists so a model states which one its hardware has.

**Exactness.** ``dyadic``: when every product ``x * m`` fits int64 the product is exact and
the rounding is exact integer arithmetic (a numba kernel). Otherwise the product register
(declared 64 bits by default) overflows: ``overflow="raise"`` raises
:class:`~intsim.core.errors.RegisterOverflow`, ``"wrap"`` / ``"saturate"`` model a 64-bit
product register, and ``"record"`` computes the exact 128-bit product with a numba kernel
(proof in :func:`intsim.quant.requant.exact._mul_u64_128`) and rounds it exactly. The float modes are exact emulations
because numba's float32/float64 arithmetic *is* the IEEE arithmetic the runtimes use.

Each back-end's chain is written once, as a numba function run over blocks of elements (on the
cores from 2**21 elements): unrecorded first and, in a block where a register overflowed, again
recorded (events, policies and taps from the same arithmetic). The dyadic chain rounds by bias-and-shift where
that cannot wrap (``|x| * |m| + 2**k`` fits int64), ``round(p / 2**k) = (p + b) >> k`` with
``b`` = 0 (floor), ``2**k - 1`` (ceil), ``2**(k-1)`` (half up), ``2**(k-1) - 1`` (half down),
the sign-dependent choice between those for trunc/away/half_away/half_zero, and a step back at
exact ties for half_even/half_odd; otherwise from the floor and the class of the remainder.
The TFLite chains reproduce the C expressions in int64. ``taps=False`` (the default) skips
the taps.

>>> import numpy as np
>>> from intsim.quant.requant import requantize
>>> from intsim.core.dyadic import Dyadic
>>> r = requantize(np.array([-300, -5, 5, 300]), Dyadic(1, 1))   # x / 2, ties to even, int8
>>> r.values.tolist(), r.scale
([-128, -2, 2, 127], 1.0)
>>> requantize(np.array([-99996]), 0.375, mode="tflite_double", out="int32").values.tolist()
[-37499]
>>> requantize(np.array([-99996]), 0.375, mode="tflite_single", out="int32").values.tolist()
[-37498]
"""

from __future__ import annotations

from .api import onnx_multiplier, requantize
from .common import REQUANT_MODES, REQUANT_ORDERS
from .exact import mul_shift_round
from .fixedpoint import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    rounding_divide_by_pot,
    rounding_half_sum,
    saturating_rounding_doubling_high_mul,
    saturating_rounding_multiply_by_pot,
)

__all__ = [
    "REQUANT_MODES",
    "REQUANT_ORDERS",
    "requantize",
    "mul_shift_round",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "saturating_rounding_multiply_by_pot",
    "rounding_half_sum",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_int64",
    "onnx_multiplier",
]
