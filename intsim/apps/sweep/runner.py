"""Running a sweep: :func:`run_sweep` (the points without a part are submitted as Dask tasks, each
finished point written to its part at once, then the outputs), the Dask client (a ``LocalCluster``
of worker processes, or an existing scheduler) and the progress bar on stderr."""

from __future__ import annotations

import contextlib
import json
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

__all__ = ["run_sweep", "SweepReport", "SweepFailed"]


def _run_point(kind: str, params: dict[str, Any], shared: dict[str, Any]) -> tuple[PointResult, float]:
    """The task of one point, run on a worker: (its result, its compute time in seconds)."""
    import numba

    numba.set_num_threads(1)  # one task per worker thread: its kernels run on that thread alone
    t0 = time.perf_counter()
    result = KINDS[kind].compute(params, shared)
    return result, time.perf_counter() - t0


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ModelNotInstalledError(f"intsim sweep needs dask.distributed: {INSTALL}") from None
    import logging

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
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ConfigError(f"--workers must be at least 1, got {n}")
    # one thread per worker process, each task's numba kernels on that one thread (_run_point), so that N
    # workers use N cores. Dask's nanny writes its pre-spawn environment (OMP_NUM_THREADS=1 and the like,
    # for the workers' BLAS) into this process's os.environ before spawning a worker; this process keeps
    # its own (its numba and BLAS thread pools are sized by it), so it is put back once the workers run.
    saved = dict(os.environ)
    try:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster:
            _restore_environ(saved)
            with Client(cluster) as client:
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
    futures = {client.submit(_run_point, kind, params, shared, key=f"intsim-sweep-{key}", retries=retries,
                             pure=False): (key, params) for key, params in todo.items()}
    bar = Progress(len(futures), sys.stderr, quiet=quiet, eta=True, min_interval=2.0, unit="points")
    failed: list[str] = []
    try:
        for fut in as_completed(futures):
            key, params = futures[fut]
            if fut.status != "finished":
                exc = fut.exception()
                failed.append(f"{json.dumps(params, sort_keys=True)}: {type(exc).__name__}: {exc}")
                bar.step()
                continue
            result, seconds = fut.result()
            row = {"params": params, "figures": result.figures, "seconds": seconds}
            atomic_write_bytes(parts / f"{key}.parquet", part_bytes(key, row, result))
            done[key] = (row, result)
            timings[key] = seconds
            fut.release()
            bar.step()
    finally:
        bar.close("")
        for fut in futures:
            if not fut.done():
                fut.cancel()
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(futures)} point(s) failed (the others are saved; rerun to retry "
                          f"them); first: {failed[0]}")


class SweepFailed(IntsimError):
    """Points whose task raised (after Dask's retries); the finished points are kept."""
