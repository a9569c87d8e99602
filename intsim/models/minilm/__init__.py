"""Integer-only MiniLM (all-MiniLM-L6-v2) sentence embeddings on the emulated datapath.

The float64 reference (:mod:`reference.minilm`) is the ground truth. This package
quantizes the model once (static scales from a calibration pass on the calibration corpus
of :mod:`.corpus`, every kind of text up to the model's 256-token limit; weights per output
channel), then runs the encoder with integers
only: from the quantized embedding output to the mean-pooled embedding, every
tensor is an integer array and every step is an integer operation:

* every GEMM runs through :func:`intsim.matmul` or :func:`intsim.hw.unpack.unpack_matmul`
  on a configurable :class:`~intsim.Datapath`;
* every rescaling is a dyadic requantization (:func:`intsim.quant.requant.requantize`,
  ``round(x * m / 2**k)`` ties to even, then saturation), the ``(m, k)`` fixed at
  quantization time;
* softmax, GELU and LayerNorm come from a *non-linear family* (:class:`Nonlinear`, one
  adapter per family of integer operators: I-BERT, I-ViT, I-LLM; :data:`NONLINEAR`);
* residual adds are integer adds in a declared register; pooling is an integer
  sum and a rounded integer division by the sentence length.

The float world ends at :meth:`QuantizedMiniLM.quantize_input` (the embedding
output, ``round_half_even(x / s_in)``) and starts again after
:meth:`QuantizedMiniLM.forward` (the caller dequantizes the pooled integers for
evaluation). Every intermediate tensor of the integer pass goes through a
checkpoint that refuses any non-integer dtype (:class:`~intsim.core.errors.DTypeError`
naming the layer and the step) and records it in :attr:`IntForward.trace`. Every
float scale is a configuration constant fixed at quantization time: the requantizations
carry :class:`~intsim.core.dyadic.Dyadic` multipliers, and the non-linear operators receive their
calibrated input step, from which they derive their integer constants once per call
exactly as the published operators do (``floor(-ln2 / S)`` and the like); no tensor value
ever passes through a float.

Integer data flow of one encoder layer (``R`` = residual bits, ``A`` = GEMM input
bits, ``acc`` = accumulator bits, ``[c]`` = per output channel)::

    xr   intR  (residual stream, per-tensor scale s_in)
    x    = rq(xr)                         intA   linear input
    q,k,v = rq[c](x @ Wq + bq)            int8   (GEMM: A x W8 -> acc, bias in the register)
    per sentence and head:
      s   = q_h @ k_h^T                   acc    (scale s_q s_k; softmax takes s_q s_k / sqrt(32))
      p   = softmax(s)                    uintP  (P = prob_bits, 12; scale 2**-P)
      c_h = p @ v_h                       acc    (uintP x int8 multipliers)
    ctx  = rq(c)                          intA
    r1   = rq[c](ctx @ Wo + bo) + rq(xr)  intR   (each term rounded, then an R-bit add)
    y1   = layernorm(r1) + beta_int       int    (scale s_ln * gamma[c])
    x1, x1r = rq[c](y1) (intA), rq[c](y1) (intR)
    u    = rq[c](x1 @ Wi + bi)            int16  (per-tensor GELU input)
    g    = gelu(u)                        int32  (the family's scale)
    a    = rq(g)                          intA
    r2   = rq[c](a @ Wd + bd) + rq(x1r)   intR
    y2   = layernorm(r2) + beta_int       -> next xr = rq[c](y2); after the last layer
    pooled[b] = round_half_even(sum_t y2[t] / len_b)  (per-channel scale s_ln * gamma[c])

Per-token linear inputs (``act_quant="per_token"``, the default of ``w8a8``, and always with the
I-LLM family: its DI-MatMul): every linear input is requantized to int16 instead of intA, then
quantized per token at run time to uintA by :func:`intsim.ops.illm.dynamic_requant`; the GEMM
result is rescaled per token by the exact integer range of the row into a 48-bit register (see
:class:`QLinear`)::

    x16  = rq(xr)                         int16  (static, per channel)
    u, p_min, R = dynamic_requant(x16)    uintA  per token: u = round((x16 - p_min) (2**A - 1) / R)
    T    = (u @ Wq) R + (2**A - 1) p_min colsum(Wq) + bq     int48 -> q = rq[c](T)

Configurations (:data:`CONFIGURATIONS`): ``w8a8`` (int8 weights, integers chosen by GPTQ;
per-token uint8 linear inputs x int8 -> acc32 multipliers, uint12 x int8 for probabilities x
values), ``w8a8-static`` (one static per-tensor int8 step per linear input instead),
``w8a8-unpack4`` (w8a8's integers, every GEMM unpacked by IM-Unpack onto int4 x int4 -> acc32:
exact, so bit-identical to ``w8a8``), ``llm-int8`` (the LLM.int8() decomposition in integers:
linear inputs held at 16 bits, feature columns with an entry of magnitude >= 6.0 in the sentence
multiplied in int16 x int16 -> acc48, the rest scaled per token to int8 and multiplied in
int8 x int8 -> acc32, the two parts combined by a dyadic rescale).

>>> cfg = get_config("w8a8")
>>> cfg.linear, cfg.act_quant, cfg.gemm, cfg.act_bits, cfg.residual_bits
('static', 'per_token', 'direct', 8, 16)
>>> sorted(CONFIGURATIONS)
['llm-int8', 'w8a8', 'w8a8-static', 'w8a8-unpack4']

Modules (each imports only those listed before it): :mod:`.config` (:class:`IntConfig`,
:data:`CONFIGURATIONS`), :mod:`.nonlinear` (the adapters per non-linear family),
:mod:`.calibration` (input text, the float64 probe, :class:`Calibration`), :mod:`.params`
(the quantized parameters :class:`Requant`, :class:`QLinear`, :class:`QLayer`),
:mod:`.forward` (the integer model :class:`QuantizedMiniLM` and its pass),
:mod:`.quantize` (:func:`quantize_model`), :mod:`.model` (:class:`IntMiniLM`,
:func:`load_int_minilm`), :mod:`.evaluation` (:func:`evaluate`), :mod:`.golden`
(:func:`golden_spec`).
"""

from __future__ import annotations

from .calibration import (
    CALIBRATION_SENTENCES,
    LINEAR_INPUTS,
    MODELS_HINT,
    TUNING_SENTENCES,
    Calibration,
    FloatProbe,
    calibrate,
    check_sentences,
    float_probe,
    model_max_len,
    reference_model,
    tokenize_sentences,
    truncated_count,
)
from .config import CONFIGURATIONS, DEFAULT_CONFIG, IntConfig, get_config
from .evaluation import Evaluation, evaluate
from .forward import IntForward, OverflowRecord, QuantizedMiniLM, TraceEntry
from .golden import golden_spec
from .model import IntMiniLM, cached_calibration, load_int_minilm
from .nonlinear import (
    DEFAULT_NONLINEAR,
    NONLINEAR,
    IBertNonlinear,
    ILLMNonlinear,
    IViTNonlinear,
    Nonlinear,
    available_nonlinear,
    get_nonlinear,
)
from .params import QLayer, QLinear, Requant, nearest_dyadic
from .quantize import quantize_model

# the names of the non-linear families before they were called that (kept for one release)
Profile = Nonlinear
IBertProfile = IBertNonlinear
IViTProfile = IViTNonlinear
ILLMProfile = ILLMNonlinear
PROFILES = NONLINEAR
DEFAULT_PROFILE = DEFAULT_NONLINEAR
get_profile = get_nonlinear
available_profiles = available_nonlinear

__all__ = [
    "IntConfig", "CONFIGURATIONS", "DEFAULT_CONFIG", "get_config",
    "Nonlinear", "IBertNonlinear", "IViTNonlinear", "ILLMNonlinear", "NONLINEAR", "DEFAULT_NONLINEAR",
    "get_nonlinear", "available_nonlinear",
    "Profile", "IBertProfile", "IViTProfile", "ILLMProfile", "PROFILES", "DEFAULT_PROFILE", "get_profile",
    "available_profiles",
    "CALIBRATION_SENTENCES", "LINEAR_INPUTS", "Calibration", "calibrate", "float_probe", "FloatProbe",
    "check_sentences", "reference_model", "tokenize_sentences", "MODELS_HINT", "TUNING_SENTENCES",
    "model_max_len", "truncated_count",
    "Requant", "QLinear", "QLayer", "nearest_dyadic", "QuantizedMiniLM", "quantize_model",
    "TraceEntry", "OverflowRecord", "IntForward", "IntMiniLM", "load_int_minilm", "cached_calibration",
    "Evaluation", "evaluate", "golden_spec",
]
