"""Operation counts of the floating-point operators the integer ones are compared against.

intsim runs no floating-point hardware, so the fp32/fp16 baselines of the
non-linear operators are *recipes*: exact counts of floating-point multiplies
(``fmul``), adds (``fadd``; a compare is priced as a subtraction), table lookups
and integer exponent adds that a straightforward vector implementation
performs. They are intsim's own modelling choices, stated here so that anyone
can change them:

* **exp(x)** (one element): ``t = x * log2(e)`` (1 fmul); ``k = round(t)`` and
  ``r = t - k`` (2 fadd, round-to-integer by the magic-number add); ``2**r`` by a
  Horner polynomial of degree d (d fmul + d fadd; d = 5 for fp32, 3 for fp16);
  ``* 2**k`` by an integer add into the exponent field (1 ``add`` at the exponent
  width: 8 bits for fp32, 5 for fp16).
* **reciprocal** (one value): an 8-bit table lookup seed (1 ``lut`` of 8 bits),
  then Newton steps ``y <- y * (2 - x*y)`` (2 fmul + 1 fadd each; 2 steps for
  fp32, 1 for fp16).
* **1/sqrt** (one value): an 8-bit lookup seed, then Newton steps
  ``y <- y * (1.5 - 0.5*x*y*y)`` (3 fmul + 1 fadd each; 2 steps for fp32, 1 for fp16).
* **softmax** (one row of n): max (n-1 fadd), subtract the max (n fadd), n exp,
  sum (n-1 fadd), one reciprocal, normalize (n fmul).
* **GELU** (one element, erf form ``x/2 * (1 + erf(x/sqrt(2)))``): ``u = x/sqrt(2)``
  (1 fmul); erf by Abramowitz & Stegun 7.1.26: ``t = 1/(1 + p*|u|)`` (1 fmul,
  1 fadd, one reciprocal), the degree-5 polynomial in t (5 fmul, 4 fadd), ``u*u``
  (1 fmul), ``exp(-u*u)``, their product (1 fmul), ``1 - ...`` (1 fadd); then
  ``1 + erf`` (1 fadd) and ``x/2 * (...)`` (2 fmul).
* **LayerNorm** (one row of D): mean (D-1 fadd, 1 fmul), centre (D fadd), variance
  (D fmul, D-1 fadd, 1 fmul), ``+ eps`` (1 fadd), one 1/sqrt, normalize (D fmul),
  affine ``gamma*y + beta`` (D fmul, D fadd).
* **residual add** (one element): 1 fadd.
* **dequantize** an integer (one element): 1 fmul by the scale (the int-to-float
  conversion is not priced); **quantize** to an integer: 1 fmul by 1/scale, 1 fadd
  (round, magic-number add), 2 fadd (clamp, as compares).

Only arithmetic is counted here; the caller adds memory accesses.

>>> c = softmax_row(4, 32)
>>> c.total("fmul"), c.total("fadd"), c.total("lut")
(32, 40, 1)
"""

from __future__ import annotations

from ..core.errors import ConfigError
from .counts import CostCounts

__all__ = [
    "FLOAT_FORMATS",
    "exp_counts",
    "reciprocal_counts",
    "rsqrt_counts",
    "softmax_row",
    "gelu_elements",
    "layernorm_row",
    "residual_elements",
    "dequantize_elements",
    "quantize_elements",
]

#: format bits -> (exponent bits, exp polynomial degree, Newton steps)
FLOAT_FORMATS: dict[int, tuple[int, int, int]] = {32: (8, 5, 2), 16: (5, 3, 1)}


def _fmt(bits: int) -> tuple[int, int, int]:
    if bits not in FLOAT_FORMATS:
        raise ConfigError(f"float recipes exist for fp32 and fp16, got {bits} bits")
    return FLOAT_FORMATS[bits]


def _c(bits: int, fmul: int = 0, fadd: int = 0) -> CostCounts:
    return CostCounts().add("fmul", (bits,), fmul).add("fadd", (bits,), fadd)


def exp_counts(bits: int) -> CostCounts:
    """One exp at fp``bits``."""
    ebits, deg, _ = _fmt(bits)
    return _c(bits, 1 + deg, 2 + deg).add("add", (ebits,), 1)


def reciprocal_counts(bits: int) -> CostCounts:
    """One reciprocal at fp``bits``."""
    steps = _fmt(bits)[2]
    return _c(bits, 2 * steps, steps).add("lut", (8,), 1)


def rsqrt_counts(bits: int) -> CostCounts:
    """One 1/sqrt at fp``bits``."""
    steps = _fmt(bits)[2]
    return _c(bits, 3 * steps, steps).add("lut", (8,), 1)


def softmax_row(n: int, bits: int) -> CostCounts:
    """Softmax of one row of ``n`` values at fp``bits``."""
    if n < 1:
        raise ConfigError(f"softmax row length must be positive, got {n}")
    return _c(bits, n, 3 * n - 2) + exp_counts(bits) * n + reciprocal_counts(bits)


def gelu_elements(n: int, bits: int) -> CostCounts:
    """GELU (erf form) of ``n`` elements at fp``bits``."""
    one = _c(bits, 1 + 1 + 5 + 1 + 1 + 2, 1 + 4 + 1 + 1) + reciprocal_counts(bits) + exp_counts(bits)
    return one * n


def layernorm_row(d: int, bits: int) -> CostCounts:
    """LayerNorm of one row of ``d`` values at fp``bits``."""
    if d < 1:
        raise ConfigError(f"LayerNorm row length must be positive, got {d}")
    return _c(bits, 1 + d + 1 + d + d, (d - 1) + d + (d - 1) + 1 + d) + rsqrt_counts(bits)


def residual_elements(n: int, bits: int) -> CostCounts:
    """``n`` residual adds at fp``bits``."""
    return _c(bits, 0, n)


def dequantize_elements(n: int, bits: int) -> CostCounts:
    """Dequantize ``n`` integers to fp``bits`` (1 fmul each)."""
    return _c(bits, n, 0)


def quantize_elements(n: int, bits: int) -> CostCounts:
    """Quantize ``n`` fp``bits`` values to integers (1 fmul, 3 fadd each)."""
    return _c(bits, n, 3 * n)
