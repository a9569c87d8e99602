"""The numba kernels are compiled once and reused from the on-disk cache by a second process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import json
from intsim.hw import gemm_kernels as k
k.warm_up()
print(json.dumps({f.py_func.__name__: [len(f.stats.cache_hits), len(f.stats.cache_misses)] for f in k.KERNELS}))
"""


NOTICE = "intsim: compiling numba kernels (first run only; cached in "


def _run(env):
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_second_process_reuses_compiled_kernels(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {k: v for k, v in os.environ.items() if k not in ("INTSIM_QUIET", "NUMBA_DEBUG_CACHE")}
    env["NUMBA_CACHE_DIR"] = str(cache)
    first, first_err = _run(env)
    second, second_err = _run(env)
    # the first process compiles each kernel (a cache miss), the second loads it (hits, no misses)
    assert all(misses >= 1 for _, misses in first.values()), first
    assert all(hits >= 1 and misses == 0 for hits, misses in second.values()), second
    # the first process says once (for five kernels) that it compiles, and where the cache goes;
    # the second, loading everything, prints nothing
    (line,) = [ln for ln in first_err.splitlines() if ln.startswith("intsim: compiling")]
    assert line.startswith(NOTICE + str(cache)) and line.endswith(") ..."), first_err
    assert second_err == "", second_err


def test_quiet_silences_the_compile_notice(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), INTSIM_QUIET="1")
    env.pop("NUMBA_DEBUG_CACHE", None)
    probe = ("from intsim.core import jitcache; from intsim.hw import gemm_kernels as k; "
             "k.gemm_int64(k.np.eye(2, dtype='int64'), k.np.eye(2, dtype='int64')); print(jitcache.compile_count())")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"] and out.stderr == "", (out.stdout, out.stderr)


def test_cache_key_covers_inlined_kernels_of_other_modules():
    """A kernel inlining helpers of another module is recompiled when that module changes."""
    import intsim
    from intsim.core import jitcache as _jitcache
    from intsim.ops import ibert, ivit

    names = {p.name for p in _jitcache.kernel_dependencies(ivit.__file__)}
    assert {"ivit.py", "ibert.py", "isqrt.py", "prims.py", "layernorm_chain.py"} <= names
    assert {p.name for p in _jitcache.kernel_dependencies(intsim.hw.gemm.__file__)} == {"gemm.py", "gemm_kernels.py",
                                                                                  "intdot.py"}
    # every cached intsim kernel uses the locators whose stamp carries that digest
    kernels = [v for v in vars(ivit).values()
               if hasattr(v, "stats") and getattr(v, "py_func", None) and v.py_func.__module__ == "intsim.ops.ivit"]
    assert kernels
    for k in kernels:
        loc = k._cache._impl._locator
        assert type(loc).__name__.startswith("Intsim"), type(loc)
        assert loc.get_source_stamp()[1] == _jitcache.kernel_sources_digest(ivit.__file__)
    assert _jitcache.kernel_sources_digest(ivit.__file__) != _jitcache.kernel_sources_digest(ibert.__file__)
