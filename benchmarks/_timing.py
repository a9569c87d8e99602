"""Shared timing helper of the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeat: int, warm_up: bool = True, min_time: float = 0.0) -> float:
    """Minimum wall time in seconds of ``repeat`` calls of ``fn``, after one untimed call if ``warm_up``.

    With ``min_time`` > 0 the calls go on (up to 50 times ``repeat``) until they add up to at least
    ``min_time`` seconds, so that a stretch of interference from the rest of the machine (which can
    slow every call for a fraction of a second) does not decide the minimum.
    """
    if warm_up:
        fn()
    best = float("inf")
    spent = 0.0
    calls = 0
    while calls < repeat or (spent < min_time and calls < 50 * repeat):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        calls += 1
    return best
