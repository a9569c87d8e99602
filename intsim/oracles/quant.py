"""Quantizers on plain Python numbers: the specifications of :mod:`intsim.quant.quantizers`
(percentile clipping, dynamic per-token steps) and the vector-wise absmax parts of
:func:`intsim.quant.llmint8.llm_int8_matmul` (LLM.int8(), Dettmers et al., NeurIPS 2022).
"""

from __future__ import annotations

from fractions import Fraction


def percentile_alpha(values: list[float], p: float) -> float:
    """The clipping magnitude of one group: the k-th largest ``|v|`` with
    ``k = max(1, int(len * (1 - p)))``; if that is 0 while some value is not, the same rank
    among the non-zero magnitudes; 0.0 for an empty group. Specifies
    :func:`intsim.quant.quantizers.percentile_alpha` (before the ``min_alpha`` clamp).

    >>> percentile_alpha([float(v) for v in range(100)], 0.95), percentile_alpha([0.0, 0.0, 3.0], 0.5)
    (95.0, 3.0)
    """
    mags = sorted((abs(v) for v in values), reverse=True)
    if not mags:
        return 0.0
    k = max(1, int(len(mags) * (1 - p)))
    a = mags[k - 1]
    if a == 0 and mags[0] > 0:
        nz = [v for v in mags if v > 0]
        a = nz[max(1, int(len(nz) * (1 - p))) - 1]
    return a


def quantize_per_token_step(amax: float, qmax: int, scale_bits: int, max_shift: int) -> tuple[int, int]:
    """The step ``m / 2**k`` of one row in :func:`intsim.quant.quantizers.quantize_per_token`: the
    largest ``k <= max_shift`` whose ``m = ceil(amax / qmax * 2**k)`` is below ``2**scale_bits``.

    >>> quantize_per_token_step(1.0, 7, 8, 62)
    (147, 10)
    """
    t = Fraction(amax) / qmax
    limit = 2**scale_bits - 1
    for k in range(max_shift, -1, -1):
        m = -((-t.numerator * 2**k) // t.denominator)
        if m <= limit:
            return m, k
    raise AssertionError("no step")


def llm_int8_quantize(x: list[float], qmax: int) -> tuple[list[int], float]:
    """Vector-wise absmax quantization of one row of A or column of B:
    ``scale = qmax / max(max|x|, 1e-20)`` (as ``0.5 * (2 * qmax) / alpha``), ``q = round(x * scale)``
    (half to even); returns ``(q, scale)``.

    >>> llm_int8_quantize([1.0, -0.5, 0.25], 127)
    ([127, -64, 32], 127.0)
    """
    alpha = max(max(abs(v) for v in x), 1e-20)
    scale = (0.5 * (2 * qmax)) / alpha
    return [round(v * scale) for v in x], scale


def llm_int8_part(A_rows: list[list[float]], B_cols: list[list[float]], bits: int) -> list[list[float]]:
    """One part of LLM.int8(): rows of A and columns of B quantized to ``bits``
    (:func:`llm_int8_quantize`, ``qmax = 2**(bits-1) - 1``), the exact integer dot products
    dequantized as ``acc / (scale_a[i] * scale_b[j])`` in float64.

    >>> llm_int8_part([[1.0, 2.0]], [[1.0, 1.0]], 8)
    [[3.0078740157480315]]
    """
    qmax = 2 ** (bits - 1) - 1
    qa = [llm_int8_quantize(r, qmax) for r in A_rows]
    qb = [llm_int8_quantize(c, qmax) for c in B_cols]
    K = len(A_rows[0]) if A_rows else 0
    return [[sum(qa[i][0][k] * qb[j][0][k] for k in range(K)) / (qa[i][1] * qb[j][1]) for j in range(len(B_cols))]
            for i in range(len(A_rows))]
