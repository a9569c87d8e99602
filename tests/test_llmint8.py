"""LLM.int8(): outlier columns, vector-wise absmax int8, the 16-bit path, work ratio and op counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim import ConfigError, Datapath, IntType, OperandRangeError, ShapeError
from intsim.oracles.quant import llm_int8_part
from intsim.quant.llmint8 import llm_int8_matmul, outlier_columns

vals = st.floats(-20, 20, allow_nan=False, allow_infinity=False)


@st.composite
def float_gemms(draw):
    M, K, N = (draw(st.integers(1, 5)) for _ in range(3))
    A = np.array(draw(st.lists(vals, min_size=M * K, max_size=M * K))).reshape(M, K)
    B = np.array(draw(st.lists(vals, min_size=K * N, max_size=K * N))).reshape(K, N)
    if draw(st.booleans()):
        A[0] = 0.0  # an all-zero row
    return A, B


def part_oracle(A: np.ndarray, B: np.ndarray, bits: int) -> np.ndarray:
    return np.array(llm_int8_part(A.tolist(), B.T.tolist(), bits), dtype=np.float64).reshape(A.shape[0], B.shape[1])


@given(float_gemms(), st.sampled_from([6.0, 3.0, 100.0]))
def test_llm_int8_matches_the_oracle(AB, threshold):
    A, B = AB
    r = llm_int8_matmul(A, B, threshold=threshold)
    out = [k for k in range(A.shape[1]) if any(abs(v) >= threshold for v in A[:, k])]
    keep = [k for k in range(A.shape[1]) if k not in out]
    assert r.outlier_columns.tolist() == out
    want = np.zeros((A.shape[0], B.shape[1]))
    if keep:
        want += part_oracle(A[:, keep], B[keep], 8)
    if out:
        want += part_oracle(A[:, out], B[out], 16)
    assert np.array_equal(r.values, want)
    assert np.isfinite(r.values).all()
    M, K, N = r.shape
    n = len(out)
    assert r.work_ratio == (K - n + 4 * n) / K
    assert r.ops["mac", (8, 8, 32)] == M * (K - n) * N
    assert r.ops["mac", (16, 16, 64)] == M * n * N
    assert (r.regular is None) == (not keep) and (r.outlier is None) == (not out)
    if r.regular is not None:
        assert np.abs(r.regular.values).max() <= 127 * 127 * len(keep)


def test_outlier_columns_threshold_is_inclusive_and_signed():
    A = np.array([[0.0, 6.0, -7.0, 5.99], [1.0, 0.0, 0.0, -5.99]])
    assert outlier_columns(A).tolist() == [1, 2]
    assert outlier_columns(A, threshold=5.99).tolist() == [1, 2, 3]


def test_accuracy_on_gaussian_data_with_outlier_features():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((32, 64))
    A[:, [5, 40]] *= 25.0  # two outlier feature dimensions
    B = rng.standard_normal((64, 16)) * 0.1
    r = llm_int8_matmul(A, B)
    ref = A @ B
    assert set(r.outlier_columns.tolist()) >= {5, 40}
    err = np.linalg.norm(r.values - ref) / np.linalg.norm(ref)
    assert err < 1e-2
    # without the 16-bit path the outliers would spoil the int8 scales
    plain = llm_int8_matmul(A, B, threshold=1e9)
    assert plain.n_outliers == 0 and np.linalg.norm(plain.values - ref) / np.linalg.norm(ref) > err
    assert r.outlier_share == r.n_outliers / 64


def test_op_counts_include_dequantization():
    A = np.array([[1.0, 9.0], [2.0, 0.5]])
    B = np.eye(2)
    r = llm_int8_matmul(A, B)
    assert r.ops["mul", (32, 32)] == 2 * 4 * 2
    assert r.ops["add", (32,)] == 4


def test_other_widths_and_datapaths():
    A = np.array([[1.0, -2.0], [0.25, 7.0]])
    B = np.array([[1.0], [-1.0]])
    r = llm_int8_matmul(A, B, bits=4)
    assert r.outlier_bits == 8 and r.ops["mac", (4, 4, 32)] == 2 and r.ops["mac", (8, 8, 64)] == 2
    with pytest.raises(ConfigError, match="cannot hold signed 8-bit operands"):
        llm_int8_matmul(A, B, datapath=Datapath(IntType(4), IntType(4)))


def test_llm_int8_errors():
    with pytest.raises(OperandRangeError, match="NaN"):
        llm_int8_matmul(np.array([[np.nan]]), np.ones((1, 1)))
    with pytest.raises(ShapeError, match="inner dimensions"):
        llm_int8_matmul(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ConfigError, match="threshold"):
        llm_int8_matmul(np.ones((1, 1)), np.ones((1, 1)), threshold=0)
    with pytest.raises(ConfigError, match="bits"):
        llm_int8_matmul(np.ones((1, 1)), np.ones((1, 1)), bits=1)
    with pytest.raises(ConfigError, match="outlier_bits"):
        llm_int8_matmul(np.ones((1, 1)), np.ones((1, 1)), bits=20)
