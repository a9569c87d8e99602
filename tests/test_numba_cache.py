"""The numba kernels are compiled once and reused from the on-disk cache by a second process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import json
from intsim import _kernels as k
k.warm_up()
print(json.dumps({f.py_func.__name__: [len(f.stats.cache_hits), len(f.stats.cache_misses)] for f in k.KERNELS}))
"""


def _run(env):
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reuses_compiled_kernels(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    first = _run(env)
    second = _run(env)
    # the first process compiles each kernel (a cache miss), the second loads it (hits, no misses)
    assert all(misses >= 1 for _, misses in first.values()), first
    assert all(hits >= 1 and misses == 0 for hits, misses in second.values()), second


def test_cache_key_covers_inlined_kernels_of_other_modules():
    """A kernel inlining helpers of another module is recompiled when that module changes."""
    import intsim
    from intsim import _jitcache, ibert, ivit

    names = {p.name for p in _jitcache.kernel_dependencies(ivit.__file__)}
    assert {"ivit.py", "ibert.py", "isqrt.py"} <= names
    assert {p.name for p in _jitcache.kernel_dependencies(intsim.gemm.__file__)} == {"gemm.py", "_kernels.py"}
    # every cached intsim kernel uses the locators whose stamp carries that digest
    kernels = [v for v in vars(ivit).values()
               if hasattr(v, "stats") and getattr(v, "py_func", None) and v.py_func.__module__ == "intsim.ivit"]
    assert kernels
    for k in kernels:
        loc = k._cache._impl._locator
        assert type(loc).__name__.startswith("Intsim"), type(loc)
        assert loc.get_source_stamp()[1] == _jitcache.kernel_sources_digest(ivit.__file__)
    assert _jitcache.kernel_sources_digest(ivit.__file__) != _jitcache.kernel_sources_digest(ibert.__file__)
