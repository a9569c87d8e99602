"""Shared timing helper of the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeat: int, warm_up: bool = True) -> float:
    """Minimum wall time in seconds of ``repeat`` calls of ``fn``, after one untimed call if ``warm_up``."""
    if warm_up:
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
