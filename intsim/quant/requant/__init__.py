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
``onnx_ref``      ``float64(x) * float64(s)`` (one IEEE rounding), ``np.rint`` (ties to even), *then*
                  ``+ zp``, saturation: the ONNX reference evaluator's ``QLinearMatMul`` arithmetic
                  when the output zero point is 0 (with a zero point the evaluator adds it before
                  rounding: ``onnx_refeval``); with ``zp`` it is ONNX ``QuantizeLinear``'s
                  ``saturate(round(x / y_scale) + y_zero_point)`` order in float64
``onnx_refeval``  the ONNX reference evaluator's ``QLinearMatMul`` (``op_qlinear_matmul.py``) exactly:
                  ``sat(rint(fl64(float64(x) * float64(s)) + zp))``, the zero point added in float64
                  *before* rounding; ``s`` = :func:`onnx_multiplier` (float32, as there)
``ort_fp32``      onnxruntime/MLAS: ``float32(x)`` (rounds to nearest-even above 2**24) times
                  ``float32(s)`` in float32 (one IEEE rounding), round half to even, ``+ zp``, saturation
                  (onnxruntime's ``QLinearMatMul``, int8/uint8, with ``s`` = :func:`onnx_multiplier`)
``gemmini_fp32``  Gemmini ``ACC_SCALE``: HardFloat int->fp32, fp32 multiply, fp32->int, all round
                  to nearest even, saturating; bit-identical arithmetic to ``ort_fp32``; no zero point
``ort_div``       ``s`` is a *divisor* (``y_scale``): ``sat(rint(fl32(float32(x) / float32(s))) + zp)``,
                  the float32 division of ONNX ``QuantizeLinear`` with float32 input in onnxruntime
                  (every output type: int8, uint8, int16, uint16) and in the ONNX reference evaluator;
                  never ``x * (1/s)`` (``75 / 30`` is the tie 2.5, giving 2; ``75 * fl32(1/30)`` is
                  ``2.5000002``, giving 3)
``onnx_refeval_div`` ``s`` is a divisor: ``sat(rint(fl64(float64(x) / float64(float32(s)))) + zp)``, the
                  ONNX reference evaluator's ``QuantizeLinear`` with *int32* input (numpy divides
                  int32 by float32 in float64); onnxruntime has no int32-input ``QuantizeLinear``
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
>>> requantize(np.array([75]), 30.0, mode="ort_div").values.tolist()   # 75 / 30 = 2.5: ties to even
[2]
>>> requantize(np.array([75]), 1 / 30, mode="ort_fp32").values.tolist()   # 75 * fl32(1/30) = 2.5000002
[3]
>>> [requantize(np.array([1, 3, 5]), 0.5, mode=m, zero_point=1).values.tolist() for m in ("onnx_ref", "onnx_refeval")]
[[1, 3, 3], [2, 2, 4]]

**Which mode matches which runtime** (checked bit for bit against onnxruntime's CPU kernels and
the ONNX reference evaluator on one-node models, ``tests/test_onnx_conventions.py``):

=================================================  ==============================  ===================
operator (inputs)                                  onnxruntime (CPU)               reference evaluator
=================================================  ==============================  ===================
``QuantizeLinear`` float32 -> (u)int8, (u)int16     ``ort_div``                     ``ort_div``
``QuantizeLinear`` int32 -> (u)int8, (u)int16       (not implemented)               ``onnx_refeval_div``
``QLinearMatMul`` (u)int8, ``s = onnx_multiplier``  ``ort_fp32``                    ``onnx_refeval``
=================================================  ==============================  ===================

(``ort_div`` of an integer ``x`` is ``QuantizeLinear`` of ``float32(x)``; for a float32 tensor use
:func:`quantize_linear`.) The reference evaluator converts with ``np.rint(v).astype(np.int32)``,
which numpy leaves undefined for ``|v| >= 2**31`` (and adds the zero point in int32); intsim
saturates there, as the operator specification says.
"""

from __future__ import annotations

from .api import onnx_multiplier, quantize_linear, requantize
from .common import DIVIDING_MODES, REQUANT_MODES, REQUANT_ORDERS
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
    "DIVIDING_MODES",
    "requantize",
    "quantize_linear",
    "mul_shift_round",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "saturating_rounding_multiply_by_pot",
    "rounding_half_sum",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_int64",
    "onnx_multiplier",
]
