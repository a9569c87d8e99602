"""A small pool for numba kernels that release the GIL (``nogil=True``): a range of rows, panels
or outputs is cut into chunks that the calling thread and up to ``numba.get_num_threads() - 1``
pool threads take from a shared counter, so a thread the OS schedules late finds no chunk left and
nobody waits for it (numba's ``prange`` splits statically, and stalls when the machine is busy).
``numba.set_num_threads(1)`` (or work below :data:`PARALLEL_MIN`) keeps everything on the calling
thread. The result never depends on the number of threads: chunks write disjoint outputs.

>>> out = [0] * 10
>>> def fill(i0, i1):
...     for i in range(i0, i1):
...         out[i] = i * i
>>> run_chunks(fill, 10, work=10)
>>> out[-1]
81
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba

__all__ = ["PARALLEL_MIN", "run_chunks"]

#: Work below this size (MACs or bytes) runs in the calling thread only.
PARALLEL_MIN = 1 << 26
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> int:
    try:
        return max(1, int(numba.get_num_threads()))
    except Exception:  # pragma: no cover
        return 1


def run_chunks(fn: Callable[[int, int], None], n: int, work: int) -> None:
    """fn(i0, i1) over chunks covering range(n), on the calling thread and up to get_num_threads() - 1
    pool threads (numba kernels release the GIL). Chunks are taken dynamically from a shared counter,
    and the call returns as soon as every chunk is done: a pool thread that the OS schedules late
    finds no chunk left, so nobody waits for it (a static split would)."""
    global _pool
    t = _threads()
    if t == 1 or work < PARALLEL_MIN or n < 2:
        fn(0, n)
        return
    n_chunks = min(n, 8 * t)
    bounds = [n * c // n_chunks for c in range(n_chunks + 1)]
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "error": None}
    finished = threading.Event()

    def worker() -> None:
        while True:
            with lock:
                c = state["next"]
                if c >= n_chunks or state["error"] is not None:
                    return
                state["next"] = c + 1
            try:
                fn(bounds[c], bounds[c + 1])
            except BaseException as exc:  # pragma: no cover - re-raised in the caller
                with lock:
                    state["error"] = exc
                finished.set()
                return
            with lock:
                state["done"] += 1
                if state["done"] == n_chunks:
                    finished.set()

    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, t - 1), thread_name_prefix="intsim-gemm")
        pool = _pool
    for _ in range(t - 1):
        pool.submit(worker)
    worker()
    finished.wait()
    if state["error"] is not None:
        raise state["error"]
