"""The literal specifications of intsim's operators: the oracles the tests compare every kernel against.

Each function here is the reference of one real operator, named after it, written the slow and
obvious way: unbounded Python ints, :class:`fractions.Fraction` and plain floats, lists of ints
in and ints out, following its source (paper, upstream C file, published code) line by line. No
numpy and no numba, and nothing imported from the code they check (an ``out`` range is anything
with ``min``, ``max`` and ``bits``, such as :class:`intsim.core.inttype.IntType`). Row-wise
operators take one row. Like JAX's ``lax_reference.py``, they are meant to be read: when a kernel
and its oracle disagree, the oracle states what was meant.

Modules (one per family; import them explicitly, ``intsim`` does not):

=================  ====================================================================================
:mod:`.rounding`   ``round_fraction`` (every rounding mode), ``round_half_even``, ``c_div``, ``fit``
                   (register overflow policies), ``round_to_float``, ``float32``
:mod:`.gemm`       ``matmul``: the accumulator datapath of :func:`intsim.hw.gemm.matmul`
:mod:`.unpack`     IM-Unpack: ``in_range``, ``unpack_rows``, ``unpack_both``, ``unpack_matmul``
:mod:`.requant`    SRDHM / RDBPOT, TFLite ``MultiplyByQuantizedMultiplier`` (both builds),
                   ``quantize_multiplier``, ``requantize`` (dyadic) and ``requantize_float``
:mod:`.gemmlowp`   gemmlowp ``fixedpoint.h`` and TFLite exp, 1/(1+x), inverse sqrt and int8 softmax
:mod:`.ibert`      I-BERT: ``ibert_frexp``, ``i_exp``, ``softmax``, ``gelu``, ``layernorm``, ``fixedpoint_mul``
:mod:`.ivit`       I-ViT: ``x0_int``, ``shift_exp``, ``shiftmax``, ``shiftgelu``, ``layernorm``
:mod:`.illm`       I-LLM: ``row_dyadic``, ``dyadic_ratio``, ``di_exp``, ``clipped_softmax``, ``di_norm``,
                   ``swiglu``, ``dynamic_requant``
:mod:`.isqrt`      ``isqrt_ivit``, ``isqrt_fixed``
:mod:`.quant`      ``percentile_alpha``, ``quantize_per_token_step``, LLM.int8() ``llm_int8_quantize``,
                   ``llm_int8_part``
=================  ====================================================================================

>>> from intsim.oracles import rounding, ibert
>>> rounding.round_fraction(rounding.Fraction(-5, 2), "half_away"), ibert.softmax([10, 20, 30, 40, 50], 0.1)
(-3, [3, 8, 22, 60, 162])
"""
