"""The float64 references of reference/nonlinear.py against the math module and identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim.core.errors import OperandRangeError
from intsim_reference import nonlinear as nl

reals = st.floats(min_value=-30.0, max_value=30.0, allow_nan=False)


def close(a: float, b: float, rel: float = 4e-15, abs_: float = 1e-300) -> bool:
    return abs(a - b) <= max(rel * abs(b), abs_)


@given(reals)
def test_scalar_functions_match_math(x):
    assert close(float(nl.exp(x)), math.exp(x), 5e-16)  # numpy's SIMD exp: within 1 ulp
    # 1 + erf / 1 + tanh cancel for negative x: compare with an absolute tolerance of a few ulp of |x|
    tol = 4e-15 * max(1.0, abs(x))
    assert abs(float(nl.gelu_erf(x)) - 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))) <= tol
    t = 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    assert abs(float(nl.gelu_tanh(x)) - t) <= tol
    s = 1.0 / (1.0 + math.exp(-x))
    assert close(float(nl.sigmoid(x)), s, 1e-15)
    assert close(float(nl.silu(x)), x * s, 1e-15)
    assert close(float(nl.swiglu(x, 3.0)), 3.0 * x * s, 1e-15)


def test_gelu_forms_agree_and_sigmoid_is_stable():
    x = np.linspace(-8, 8, 10001)
    assert np.max(np.abs(nl.gelu_erf(x) - nl.gelu_tanh(x))) < 1e-3  # the tanh approximation's error
    assert nl.sigmoid([-1000.0, 1000.0]).tolist() == [0.0, 1.0]
    assert np.allclose(nl.sigmoid(-x), 1.0 - nl.sigmoid(x), atol=1e-16)
    assert float(nl.gelu_erf(-40.0)) == -0.0 or float(nl.gelu_erf(-40.0)) == 0.0


@given(st.lists(st.floats(min_value=-500, max_value=500, allow_nan=False), min_size=1, max_size=50),
       st.floats(min_value=-1000, max_value=1000, allow_nan=False))
def test_softmax_properties(xs, shift):
    p = nl.softmax(np.array(xs))
    assert abs(float(p.sum()) - 1.0) < 1e-12 and np.all(p >= 0)
    q = nl.softmax(np.array(xs) + shift)  # invariant to a common shift (no overflow either way)
    assert np.allclose(p, q, atol=1e-9)
    i = int(np.argmax(xs))
    assert p[i] == p.max()


def test_softmax_axis_and_known_values():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert np.allclose(nl.softmax(x)[1], 1 / 3)
    e = np.exp([1.0, 2.0, 3.0])
    assert np.allclose(nl.softmax(x)[0], e / e.sum(), rtol=1e-15)
    assert np.allclose(nl.softmax(x, axis=0)[:, 0], [math.e / (math.e + 1), 1 / (math.e + 1)])
    assert nl.softmax([1e308, -1e308]).tolist() == [1.0, 0.0]


def test_norms():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (5, 64))
    y = nl.layernorm(x, eps=0.0)
    assert np.allclose(y.mean(axis=-1), 0, atol=1e-14) and np.allclose(y.var(axis=-1), 1, atol=1e-12)
    g, b = rng.normal(size=64), rng.normal(size=64)
    assert np.allclose(nl.layernorm(x, g, b, 1e-5), (x - x.mean(-1, keepdims=True))
                       / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b, rtol=1e-13)
    r = nl.rmsnorm(x, g, eps=1e-6)
    assert np.allclose(r, x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * g, rtol=1e-13)
    assert np.allclose(np.sqrt((nl.rmsnorm(x, eps=0.0) ** 2).mean(-1)), 1.0)


def test_square_roots():
    assert nl.sqrt([0.0, 4.0, 2.0]).tolist() == [0.0, 2.0, math.sqrt(2.0)]
    assert nl.inv_sqrt([4.0, 0.0]).tolist() == [0.5, math.inf]
    with pytest.raises(OperandRangeError) as ei:
        nl.sqrt([1.0, -1.0])
    assert ei.value.index == (1,)
    with pytest.raises(OperandRangeError):
        nl.inv_sqrt(-2.0)


def test_shapes_and_dtypes():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    for name, f in nl.FUNCTIONS.items():
        y = f(x) if name not in ("sqrt", "inv_sqrt") else f(x + 1)
        assert y.shape == x.shape and y.dtype == np.float64, name
    assert nl.exp(1.0).shape == ()
    assert np.isnan(nl.exp(np.nan))
