"""Scaling of ``intsim sweep`` with the number of Dask workers, in one run.

Usage:  python benchmarks/sweep.py [--workers N] [--repeat R] [--only cost|unpack]

Two sweeps, each on a local Dask cluster of 1 worker process and on one of N (default 2), both
started and warmed up first (every worker imports intsim and loads what the sweep needs, cached per
worker process, by running the sweep once into a scratch directory); then each sweep is timed R
times (default 2) on each cluster, interleaved, into fresh directories, and the best time of each
is kept. Printed per sweep: both times, the point compute time, the CPU the client process spends
(Dask's scheduler and client threads, the part files) and the speed-up t(1) / t(N):

* ``cost``, CPU-bound: 7 methods x 2 hardware profiles x 4 synthetic GEMM workloads (56 points of
  20-150 ms of Python-level counting each); on a 2-core machine the target is at least 1.7.
* ``unpack``, memory-bound: IM-Unpack ``plan`` and ``both`` at 2 and 3 bits on six real MiniLM
  GEMMs at four quantizer percentiles (96 points of 10-400 ms, streaming operands far larger
  than the caches): two workers share the memory system, so each point runs about 1.2-1.3 times
  slower beside another and the speed-up stays near 1.5.

The rows of every run are checked to be identical (a sweep is deterministic whatever the number
of workers).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

SPECS = {
    "cost": """
[sweep]
kind = "cost"
[grid]
method = ["int8", "unpack4-row", "unpack4-col", "unpack4-plan", "unpack2-col", "llm.int8", "fp16"]
profile = ["horowitz45", "qkeras_fit"]
workload = ["gemm:64x768x768", "gemm:128x768x3072", "gemm:128x3072x768", "gemm:256x384x1536"]
""",
    "unpack": """
[sweep]
kind = "unpack"
[grid]
gemm = ["0.q_proj", "0.k_proj", "0.v_proj", "0.o_proj", "1.q_proj", "1.o_proj"]
bits = [2, 3]
strategy = ["plan", "both"]
percentile = [0.9, 0.95, 0.98, 0.99]
sentences = 2
max_len = 32
""",
}


def main() -> None:
    from intsim.apps.sweep import parse_sweep_spec
    from intsim.apps.sweep.runner import local_client

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the second cluster (default: 2)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per cluster, best kept (default: 2)")
    ap.add_argument("--only", choices=sorted(SPECS), default=None, help="run one of the two sweeps")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="intsim-bench-sweep-") as d, contextlib.ExitStack() as stack:
        clients = {n: stack.enter_context(local_client(n)) for n in (1, args.workers)}
        for name, text in SPECS.items():
            if args.only in (None, name):
                print(f"{name} sweep:", flush=True)
                _measure(parse_sweep_spec(text, source=f"benchmark:{name}"), Path(d) / name, clients, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _measure(spec: Any, work: Path, clients: dict[int, Any], args: argparse.Namespace) -> None:
    import pandas as pd

    from intsim.apps.sweep import run_sweep

    for n, client in clients.items():  # warm-up: every worker captures the GEMMs once (cached per process)
        run_sweep(spec, work / f"warm{n}", client=client, quiet=True, plots=False)
    best = {n: float("inf") for n in clients}
    rows = {}
    for r in range(args.repeat):  # interleaved, so that a change of the machine's load hits both alike
        for n, client in clients.items():
            out = work / f"run{n}-{r}"
            t0, c0 = time.perf_counter(), time.process_time()
            run_sweep(spec, out, client=client, quiet=True, plots=False)
            client_cpu = time.process_time() - c0
            best[n] = min(best[n], time.perf_counter() - t0)
            rows[n] = (out / "results.parquet").read_bytes()
            cpu = pd.read_parquet(out / "timings.parquet").compute_seconds.sum()
            print(f"  run {r + 1}, {n} worker(s): {time.perf_counter() - t0:.2f} s wall, "
                  f"{cpu:.2f} s of point compute time, {client_cpu:.2f} s of CPU in this process (client, "
                  f"scheduler, part files)", flush=True)
    t1, tn = best[1], best[args.workers]
    assert rows[1] == rows[args.workers], "the rows differ between the worker counts"
    print(f"  1 worker: {t1:.2f} s; {args.workers} workers: {tn:.2f} s (best of {args.repeat})")
    print(f"  speed-up with {args.workers} workers: {t1 / tn:.2f}x; rows identical", flush=True)


if __name__ == "__main__":
    main()
