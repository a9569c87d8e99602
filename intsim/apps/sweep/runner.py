"""Running a sweep: :func:`run_sweep` (the points without a part are submitted as Dask tasks, each
finished point written to its part at once, then the outputs), the Dask client (a ``LocalCluster``
of worker processes, or an existing scheduler) and the progress bar on stderr."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import __version__
from ...core.errors import ConfigError, IntsimError, ModelNotInstalledError
from ...core.fileio import atomic_write_bytes
from ...core.progress import Progress
from .deps import INSTALL
from .kinds import KINDS, Plan, PointResult, SweepSpec
from .report import write_outputs
from .spec import load_sweep_spec
from .store import PARTS, open_sweep_dir, part_bytes, point_key, read_part

__all__ = ["run_sweep", "SweepReport", "SweepFailed", "local_client", "WORKER_MALLOC"]


def _run_points(kind: str, batch: list[tuple[str, dict[str, Any]]], shared: dict[str, Any]
                ) -> list[tuple[str, PointResult | str, float]]:
    """The task of a few consecutive points, run on a worker: per point its key, its result (or the
    error it raised, as text: the other points of the batch still count) and its compute time."""
    import numba

    numba.set_num_threads(1)  # one task per worker thread: its kernels run on that thread alone
    out: list[tuple[str, PointResult | str, float]] = []
    for key, params in batch:
        t0 = time.perf_counter()
        try:
            result: PointResult | str = KINDS[kind].compute(params, shared)
        except Exception as exc:  # reported with the point's parameters by the client
            result = f"{type(exc).__name__}: {exc}"
        out.append((key, result, time.perf_counter() - t0))
    return out


#: Points per task: enough tasks for every worker to take about eight (load balance), few enough that
#: Dask's own cost per task (a few ms of scheduler and client CPU, on the same cores) stays small.
TASKS_PER_WORKER = 8


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    try:
        from distributed import Client
    except ImportError:
        raise ModelNotInstalledError(f"intsim sweep needs dask.distributed: {INSTALL}") from None
    if scheduler is not None:
        if workers is not None:
            raise ConfigError("--workers applies to the local cluster; with --scheduler the cluster's workers run")
        kw = {"scheduler_file": scheduler} if os.path.isfile(scheduler) else {"address": scheduler}
        try:
            client = Client(timeout="20s", **kw)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler ({exc})") from None
        with client:
            yield client
        return
    with local_client(workers if workers is not None else (os.cpu_count() or 1)) as client:
        yield client


#: glibc settings of the local workers: keep freed memory for reuse instead of returning it to the
#: system after every array (Dask's default trim threshold, 64 KiB, makes each task fault its pages
#: in again; with two workers on a 2-core virtual machine the faults cost more than the work).
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


#: Dask settings of the local cluster: no statistical profiler in the workers (a thread that takes
#: the GIL every 10 ms to sample the stack), no work stealing (the tasks are independent batches of
#: like size, handed out by the scheduler's queue as workers free up), a slower system monitor: on
#: two cores these background threads take CPU from the points.
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.scheduler.work-stealing": False,
                "distributed.admin.system-monitor.interval": "2s"}


@contextlib.contextmanager
def local_client(n: int) -> Iterator[Any]:
    """A client of a local Dask cluster of ``n`` worker processes of one thread each (each task runs
    its numba kernels on that thread: N workers use N cores), with :data:`WORKER_MALLOC`."""
    import dask
    from distributed import Client, LocalCluster

    if n < 1:
        raise ConfigError(f"--workers must be at least 1, got {n}")
    # Dask's nanny writes its pre-spawn environment (OMP_NUM_THREADS=1 and the like, and the malloc
    # settings) into this process's os.environ before spawning a worker; this process keeps its own
    # (its numba and BLAS thread pools are sized by it), so it is put back once the workers run.
    saved = dict(os.environ)
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **LOCAL_CONFIG}), \
                LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                             silence_logs=logging.ERROR) as cluster:
            _restore_environ(saved)
            with Client(cluster) as client:
                client.wait_for_workers(n)
                yield client
    finally:
        _restore_environ(saved)


def _restore_environ(saved: dict[str, str]) -> None:
    for k in [k for k in os.environ if k not in saved]:
        del os.environ[k]
    for k, v in saved.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


@dataclass(frozen=True)
class SweepReport:
    """What :func:`run_sweep` did: the directory, the points, how many were computed in this run
    and how many reused from earlier runs, the files written and the wall time (seconds)."""

    out: Path
    points: int
    computed: int
    reused: int
    files: tuple[str, ...]
    seconds: float


def run_sweep(spec: SweepSpec | str | os.PathLike, out: str | os.PathLike, *, scheduler: str | None = None,
              workers: int | None = None, force: bool = False, quiet: bool = False, plots: bool = True,
              client: Any = None) -> SweepReport:
    """Run a sweep (see :mod:`intsim.apps.sweep`) into ``out``; ``client``: an existing ``distributed.Client``
    to use instead of starting one (then ``scheduler`` and ``workers`` are ignored)."""
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        spec = load_sweep_spec(spec)
    plan = spec.plan()
    kind = spec.kind.name
    keys = [point_key(kind, p, plan.identity) for p in plan.points]
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    with open_sweep_dir(Path(out), force) as root:
        parts = root / PARTS
        done: dict[str, tuple[dict[str, Any], PointResult]] = {}
        for key in dict.fromkeys(keys):
            p = parts / f"{key}.parquet"
            if p.exists():
                got = read_part(p)
                if got is not None:
                    done[key] = got
        todo = {k: plan.points[i] for i, k in enumerate(keys) if k not in done}
        reused = len(set(keys)) - len(todo)
        say(f"intsim sweep: {kind}, {len(plan.points)} points ({reused} done earlier, {len(todo)} to compute)")
        timings: dict[str, float] = {}
        if todo:
            ctx = contextlib.nullcontext(client) if client is not None else _client(scheduler, workers)
            with ctx as cl:
                _compute(cl, kind, plan, todo, spec.retries, parts, done, timings, quiet, say)
        rows = []
        for i, (key, params) in enumerate(zip(keys, plan.points, strict=True)):
            rows.append({"point": i, **params, **done[key][1].figures, "intsim_version": __version__, "key": key})
        results = [done[k][1] for k in keys]
        files = write_outputs(root, spec, plan, rows, results, keys, timings, plots, say)
    return SweepReport(root, len(plan.points), len(todo), reused, tuple(files), time.perf_counter() - t_start)


def _compute(client: Any, kind: str, plan: Plan, todo: dict[str, dict[str, Any]], retries: int, parts: Path,
             done: dict[str, tuple[dict[str, Any], PointResult]], timings: dict[str, float], quiet: bool,
             say: Callable[[str], None]) -> None:
    from distributed import as_completed

    info = client.scheduler_info()
    say(f"intsim sweep: {len(info.get('workers', {}))} Dask worker(s) at {info.get('address', '?')}")
    (shared,) = client.scatter([plan.shared], hash=True)
    items = list(todo.items())
    size = max(1, len(items) // (TASKS_PER_WORKER * max(1, len(info.get("workers", {})))))
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    futures = {client.submit(_run_points, kind, b, shared, key=f"intsim-sweep-{b[0][0]}-{len(b)}", retries=retries,
                             pure=False): b for b in batches}
    bar = Progress(len(items), sys.stderr, quiet=quiet, eta=True, min_interval=2.0, unit="points")
    failed: list[str] = []
    try:
        for fut in as_completed(futures):
            batch = futures[fut]
            if fut.status != "finished":
                exc = fut.exception()
                failed += [f"{json.dumps(params, sort_keys=True)}: {type(exc).__name__}: {exc}" for _, params in batch]
                bar.step(n=len(batch))
                continue
            for (key, params), (_, result, seconds) in zip(batch, fut.result(), strict=True):
                if isinstance(result, str):
                    failed.append(f"{json.dumps(params, sort_keys=True)}: {result}")
                else:
                    row = {"params": params, "figures": result.figures, "seconds": seconds}
                    # not fsynced: a part lost or emptied by a power failure fails read_part's
                    # check and is computed again; a killed run leaves whole parts (atomic rename)
                    atomic_write_bytes(parts / f"{key}.parquet", part_bytes(key, row, result), durable=False)
                    done[key] = (row, result)
                    timings[key] = seconds
                bar.step()
            fut.release()
    finally:
        bar.close("")
        for fut in futures:
            if not fut.done():
                fut.cancel()
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(items)} point(s) failed (the others are saved; rerun to retry "
                          f"them); first: {failed[0]}")


class SweepFailed(IntsimError):
    """Points whose task raised (after Dask's retries); the finished points are kept."""
