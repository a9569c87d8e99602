"""Keep freed large arrays in the process heap (glibc on Linux), so the next GEMM output reuses them.

intsim's GEMMs return a fresh int64 output (8 MB for 1024 x 1024) and hold a few such arrays at
once (an unpacked GEMM's low-bit outputs, the overflow proof's operands). With glibc's defaults an
allocation that large is an ``mmap`` of its own, and freeing it returns the pages to the kernel (or
trims the heap top), so the next call touches fresh pages: one page fault per page, which on some
virtual machines costs about 1 ms per MB, more than the integer GEMM itself.

:func:`keep_heap` raises two glibc tunables with ``mallopt`` (process-wide, at most once):
``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD` (allocations below it come from the heap) and
``M_TRIM_THRESHOLD`` to :data:`TRIM_THRESHOLD` (at most that much free memory at the heap top is kept
rather than returned to the kernel). The process may then keep up to :data:`TRIM_THRESHOLD` bytes
of freed memory resident. Nothing changes on other platforms or C libraries, or when the environment
variable ``INTSIM_KEEP_HEAP`` is ``0`` (set it before importing intsim). Results never depend on it.
"""

from __future__ import annotations

import os

__all__ = ["ENV_VAR", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_heap"]

#: The environment variable that turns the tuning off ("0").
ENV_VAR = "INTSIM_KEEP_HEAP"
#: Allocations below this many bytes come from the heap (glibc's cap for this tunable is 32 MiB on
#: 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Free memory kept at the top of the heap, in bytes.
TRIM_THRESHOLD = 256 << 20

_done: bool | None = None


def keep_heap() -> bool:
    """Apply the tunables once per process; True when they are in effect (Linux with glibc, not turned
    off by ``INTSIM_KEEP_HEAP=0``)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get(ENV_VAR, "1").strip() == "0":
        return False
    import platform
    import sys

    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        _done = bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # pragma: no cover - no mallopt in this process
        _done = False
    return _done
