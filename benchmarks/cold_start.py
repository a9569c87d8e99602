"""Cold and warm start of intsim's numba kernels, each in a fresh process.

Usage:  python benchmarks/cold_start.py

Runs the same workload in a new process twice with an empty, private numba cache
directory: the first process compiles, the second loads from the cache. Times: importing
intsim; a first matmul whose outputs overflow a narrow accumulator (so it compiles and runs
the ordered-scan kernel); then every remaining kernel (both arithmetic widths, the
adder-tree variant, the int64 GEMM); and the whole process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

PROBE = """
import time
t0 = time.perf_counter()
import numpy as np
import intsim
t1 = time.perf_counter()
rng = np.random.default_rng(0)
A = rng.integers(-8, 8, (64, 256)); B = rng.integers(-8, 8, (256, 64))
intsim.matmul(A, B, intsim.Datapath(a=intsim.IntType(4), b=intsim.IntType(4), acc_bits=10, overflow="saturate"))
t2 = time.perf_counter()
from intsim.hw import gemm_kernels as _kernels
_kernels.warm_up()
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def run_once(env: dict) -> tuple[float, ...]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    parts = [float(x) for x in out.stdout.strip().splitlines()[-1].split()]
    return (*parts, time.perf_counter() - t0)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = run_once(env)
        warm = run_once(env)
    for name, t in (("cold (compiling)", cold), ("warm (cached)", warm)):
        print(f"{name:>17}: import {t[0]:.2f} s, first matmul with overflow {t[1]:.2f} s, "
              f"all other kernels {t[2]:.2f} s, whole process {t[3]:.2f} s")


if __name__ == "__main__":
    main()
