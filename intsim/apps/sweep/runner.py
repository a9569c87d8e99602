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
from .deps import INSTALL
from .kinds import KINDS, Plan, PointResult, SweepSpec
from .report import write_outputs
from .spec import load_sweep_spec
from .store import PARTS, open_sweep_dir, part_bytes, point_key, read_part

__all__ = ["run_sweep", "SweepReport", "SweepFailed"]


def _run_point(kind: str, params: dict[str, Any], shared: dict[str, Any]) -> tuple[PointResult, float]:
    """The task of one point, run on a worker: (its result, its compute time in seconds)."""
    t0 = time.perf_counter()
    result = KINDS[kind].compute(params, shared)
    return result, time.perf_counter() - t0


class _Progress:
    """A progress bar with an estimate of the time left (from the rate since the first finished point)
    on stderr, redrawn in place on a terminal, else one line at most every 2 s; nothing when quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.done = total, quiet, 0
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.t_first: float | None = None

    def step(self) -> None:
        self.done += 1
        if self.t_first is None:  # the rate counts from the first finished point: start-up is not work
            self.t_first = time.monotonic()
        if self.quiet or self.total == 0:
            return
        now = time.monotonic()
        final = self.done == self.total
        if not final and (now - self.last < (0.2 if self.tty else 2.0)):
            return
        self.last = now
        elapsed = now - self.t0
        rate = (now - self.t_first) / (self.done - 1) if self.done > 1 else None
        left = "?" if rate is None else _hms(rate * (self.total - self.done))
        width = 30
        fill = int(width * self.done / self.total)
        text = (f"[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} points, "
                f"{_hms(elapsed)} elapsed, ~{left} left")
        if self.tty:
            print("\r" + text, end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


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
    # one thread per worker process, and numba's thread pool of the same size, so that N workers use N cores
    import dask

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "NUMBA_NUM_THREADS": "1"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


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
    bar = _Progress(len(futures), quiet)
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
        for fut in futures:
            if not fut.done():
                fut.cancel()
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(futures)} point(s) failed (the others are saved; rerun to retry "
                          f"them); first: {failed[0]}")


class SweepFailed(IntsimError):
    """Points whose task raised (after Dask's retries); the finished points are kept."""
