"""Float64 reference GEMM.

>>> import numpy as np
>>> gemm(np.array([[0.5, 2.0]]), np.array([[4.0], [0.25]])).tolist()
[[2.5]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["gemm"]


def gemm(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``a @ b (+ bias)`` in float64: the real-valued product an integer GEMM approximates."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.ndim != 2 or b64.ndim != 2 or a64.shape[1] != b64.shape[0]:
        raise ValueError(f"gemm needs (M, K) @ (K, N) matrices, got {a64.shape} and {b64.shape}")
    out = a64 @ b64
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)
    return out
