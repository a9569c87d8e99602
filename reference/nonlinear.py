"""Float64 numpy references for the non-linear operators of integer Transformers.

These are the ground truth the integer operators (gemmlowp/TFLite, I-BERT,
I-ViT, I-LLM) are judged against. Every function takes a real array-like
(any numeric dtype; it is widened to float64), computes in float64 and
returns a float64 array of the broadcast input shape (0-d for a scalar).
Nothing here rounds to integers.

Domain errors are not silent: NaN input propagates as NaN (numpy semantics),
and the square roots refuse negative input with
:class:`~intsim.core.errors.OperandRangeError`.

=================  ==========================================================================
function           formula
=================  ==========================================================================
``exp``            e^x
``softmax``        e^(x_i - max x) / sum_j e^(x_j - max x) along ``axis`` (default last)
``gelu_erf``       x/2 * (1 + erf(x / sqrt 2))  (exact GELU; erf accurate to a few ulp)
``gelu_tanh``      x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
``sigmoid``        1 / (1 + e^-x), evaluated without overflow for large |x|
``silu``           x * sigmoid(x)
``swiglu``         silu(x_gate) * x_up
``layernorm``      (x - mean) / sqrt(var + eps) * gamma + beta, population variance, last axis
``rmsnorm``        x / sqrt(mean(x^2) + eps) * gamma, last axis
``sqrt``           sqrt(x), x >= 0
``inv_sqrt``       1 / sqrt(x), x >= 0 (``inv_sqrt(0)`` is ``+inf``)
=================  ==========================================================================

>>> import numpy as np
>>> from intsim_reference.nonlinear import softmax, gelu_erf
>>> np.round(softmax([1.0, 2.0, 3.0]), 6).tolist()
[0.090031, 0.244728, 0.665241]
>>> round(float(gelu_erf(1.0)), 9)
0.841344746
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from intsim.core.errors import OperandRangeError
from intsim_reference.minilm import erf

__all__ = [
    "erf", "exp", "softmax", "gelu_erf", "gelu_tanh", "sigmoid", "tanh", "silu", "swiglu",
    "layernorm", "rmsnorm", "sqrt", "inv_sqrt", "FUNCTIONS",
]

_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _f64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def exp(x: ArrayLike) -> np.ndarray:
    """``e**x`` in float64 (``np.exp``; overflows to ``inf`` above about 709.78).

    >>> float(exp(0.0))
    1.0
    """
    return np.exp(_f64(x))


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (default: the last).

    ``softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)`` with ``m = max_j x_j``;
    subtracting ``m`` changes nothing mathematically and keeps every exponent
    <= 0, so no term overflows. A row containing ``-inf`` gives 0 there; a row
    of all ``-inf`` gives NaN.

    >>> softmax([[0.0, 0.0]]).tolist()
    [[0.5, 0.5]]
    """
    a = _f64(x)
    m = np.max(a, axis=axis, keepdims=True)
    with np.errstate(over="ignore"):  # x - m may overflow to -inf, whose exp is the correct 0
        e = np.exp(a - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def gelu_erf(x: ArrayLike) -> np.ndarray:
    """Exact GELU: ``x * Phi(x) = x/2 * (1 + erf(x / sqrt(2)))``.

    ``erf`` is :func:`intsim_reference.minilm.erf` (float64, at most 3 ulp from the
    C library's ``erf``).

    >>> round(float(gelu_erf(-1.0)), 9)
    -0.158655254
    """
    a = _f64(x)
    return 0.5 * a * (1.0 + erf(a * _SQRT_HALF))


def gelu_tanh(x: ArrayLike) -> np.ndarray:
    """Tanh-approximated GELU (Hendrycks & Gimpel; PyTorch ``approximate="tanh"``):
    ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``.

    >>> round(float(gelu_tanh(1.0)), 9)
    0.841191991
    """
    a = _f64(x)
    return 0.5 * a * (1.0 + np.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a * a * a)))


def sigmoid(x: ArrayLike) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + e**-x)``.

    Evaluated as ``1/(1+e^-x)`` for ``x >= 0`` and ``e^x/(1+e^x)`` for ``x < 0``
    so that no exponential overflows (``sigmoid(-1000) == 0``, ``sigmoid(1000) == 1``).

    >>> sigmoid([-1000.0, 0.0, 1000.0]).tolist()
    [0.0, 0.5, 1.0]
    """
    a = _f64(x)
    e = np.exp(-np.abs(a))  # in (0, 1]: never overflows
    pos = 1.0 / (1.0 + e)
    return np.where(a >= 0, pos, e / (1.0 + e))


def tanh(x: ArrayLike) -> np.ndarray:
    """Hyperbolic tangent ``(e**x - e**-x) / (e**x + e**-x)`` (numpy's float64 ``tanh``).

    >>> tanh([-1000.0, 0.0, 0.5]).round(6).tolist()
    [-1.0, 0.0, 0.462117]
    """
    return np.tanh(_f64(x))


def silu(x: ArrayLike) -> np.ndarray:
    """SiLU (swish with beta = 1): ``x * sigmoid(x)``.

    >>> round(float(silu(1.0)), 9)
    0.731058579
    """
    a = _f64(x)
    return a * sigmoid(a)


def swiglu(x_gate: ArrayLike, x_up: ArrayLike) -> np.ndarray:
    """SwiGLU as in LLaMA's MLP: ``silu(x_gate) * x_up`` (inputs broadcast together).

    >>> round(float(swiglu(1.0, 2.0)), 9)
    1.462117157
    """
    return silu(x_gate) * _f64(x_up)


def layernorm(x: ArrayLike, gamma: ArrayLike | None = None, beta: ArrayLike | None = None,
              eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis, as ``torch.nn.LayerNorm``:
    ``(x - mean) / sqrt(var + eps) * gamma + beta`` with the population
    (biased) variance ``var = mean((x - mean)**2)``. ``gamma`` defaults to 1,
    ``beta`` to 0; both broadcast against the last axis.

    >>> layernorm([[1.0, 3.0]], eps=0.0).tolist()
    [[-1.0, 1.0]]
    """
    a = _f64(x)
    mean = a.mean(axis=-1, keepdims=True)
    c = a - mean
    var = np.mean(c * c, axis=-1, keepdims=True)
    y = c / np.sqrt(var + float(eps))
    if gamma is not None:
        y = y * _f64(gamma)
    if beta is not None:
        y = y + _f64(beta)
    return y


def rmsnorm(x: ArrayLike, gamma: ArrayLike | None = None, eps: float = 1e-6) -> np.ndarray:
    """RMSNorm over the last axis, as LLaMA's: ``x / sqrt(mean(x**2) + eps) * gamma``
    (``gamma`` defaults to 1).

    >>> rmsnorm([[3.0, 4.0]], eps=0.0).round(6).tolist()
    [[0.848528, 1.131371]]
    """
    a = _f64(x)
    ms = np.mean(a * a, axis=-1, keepdims=True)
    y = a / np.sqrt(ms + float(eps))
    if gamma is not None:
        y = y * _f64(gamma)
    return y


def _nonnegative(a: np.ndarray, name: str) -> None:
    bad = a < 0
    if np.any(bad):
        flat = np.flatnonzero(bad.reshape(-1))
        idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), a.shape))
        raise OperandRangeError(f"{name}: {flat.size} negative entries (no real square root); "
                                f"first at index {idx}: {a[idx]!r}", count=int(flat.size), index=idx)


def sqrt(x: ArrayLike) -> np.ndarray:
    """``sqrt(x)`` for ``x >= 0``; negative entries raise OperandRangeError.

    >>> sqrt([0.0, 2.25]).tolist()
    [0.0, 1.5]
    """
    a = _f64(x)
    _nonnegative(a, "sqrt")
    return np.sqrt(a)


def inv_sqrt(x: ArrayLike) -> np.ndarray:
    """``1 / sqrt(x)`` for ``x >= 0`` (``+inf`` at 0); negative entries raise OperandRangeError.

    >>> inv_sqrt([0.25, 4.0]).tolist()
    [2.0, 0.5]
    """
    a = _f64(x)
    _nonnegative(a, "inv_sqrt")
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(a)


#: Name -> function, for reports that iterate over the references (one-argument functions only).
FUNCTIONS = {
    "exp": exp, "softmax": softmax, "gelu_erf": gelu_erf, "gelu_tanh": gelu_tanh,
    "sigmoid": sigmoid, "tanh": tanh, "silu": silu, "layernorm": layernorm, "rmsnorm": rmsnorm,
    "sqrt": sqrt, "inv_sqrt": inv_sqrt,
}
