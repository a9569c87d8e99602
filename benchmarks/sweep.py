"""Scaling of ``intsim sweep`` with the number of Dask workers, in one run.

Usage:  python benchmarks/sweep.py [--workers N] [--repeat R]

A CPU-bound unpack sweep (the ``plan`` and ``both`` strategies at 2 and 3 bits on six real
MiniLM GEMMs, four quantizer percentiles: 96 points of 10-400 ms each) runs on a local Dask
cluster of 1 worker process and on one of N (default 2), both started and warmed up first (every
worker imports intsim and captures the MiniLM's GEMMs, cached per worker process, by running the
sweep once into a scratch directory); then the same sweep is timed R times (default 2) on each,
interleaved, into fresh directories, and the best time of each is kept. Printed: both times and the speed-up
t(1) / t(N); on a 2-core machine the target is at least 1.7. The rows of every run are checked
to be identical (a sweep is deterministic whatever the number of workers).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """
[sweep]
kind = "unpack"
[grid]
gemm = ["0.q_proj", "0.k_proj", "0.v_proj", "0.o_proj", "1.q_proj", "1.o_proj"]
bits = [2, 3]
strategy = ["plan", "both"]
percentile = [0.9, 0.95, 0.98, 0.99]
sentences = 2
max_len = 32
"""


def _cluster(n: int, stack: contextlib.ExitStack) -> Any:
    import dask
    from distributed import Client, LocalCluster

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "NUMBA_NUM_THREADS": "1"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = stack.enter_context(LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", silence_logs=logging.ERROR))
    client = stack.enter_context(Client(cluster))
    client.wait_for_workers(n)
    return client


def main() -> None:
    import pandas as pd

    from intsim.apps.sweep import parse_sweep_spec, run_sweep

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the second cluster (default: 2)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per cluster, best kept (default: 2)")
    args = ap.parse_args()
    spec = parse_sweep_spec(SPEC, source="benchmark")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="intsim-bench-sweep-") as d, contextlib.ExitStack() as stack:
        work = Path(d)
        clients = {n: _cluster(n, stack) for n in (1, args.workers)}
        for n, client in clients.items():  # warm-up: every worker captures the GEMMs once (cached per process)
            run_sweep(spec, work / f"warm{n}", client=client, quiet=True, plots=False)
        best = {n: float("inf") for n in clients}
        rows = {}
        for r in range(args.repeat):  # interleaved, so that a change of the machine's load hits both alike
            for n, client in clients.items():
                out = work / f"run{n}-{r}"
                t0 = time.perf_counter()
                run_sweep(spec, out, client=client, quiet=True, plots=False)
                best[n] = min(best[n], time.perf_counter() - t0)
                rows[n] = (out / "results.parquet").read_bytes()
                cpu = pd.read_parquet(out / "timings.parquet").compute_seconds.sum()
                print(f"  run {r + 1}, {n} worker(s): {time.perf_counter() - t0:.2f} s wall, "
                      f"{cpu:.2f} s of point compute time", flush=True)
    t1, tn = best[1], best[args.workers]
    assert rows[1] == rows[args.workers], "the rows differ between the worker counts"
    print(f"1 worker: {t1:.2f} s; {args.workers} workers: {tn:.2f} s (best of {args.repeat})")
    print(f"speed-up with {args.workers} workers: {t1 / tn:.2f}x (target on 2 idle cores: >= 1.7x); rows identical")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
