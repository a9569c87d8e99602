"""The command line of ``intsim sweep``: its options (:func:`add_arguments`) and :func:`run`."""

from __future__ import annotations

import argparse
import sys

from ...core.helptext import add_output_options
from .runner import SweepFailed, run_sweep
from .store import RESULTS

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim sweep``."""
    parser.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (TOML)")
    add_output_options(parser, out_required=True, what="sweep directory", plots=True, force=False,
                       out_help="the sweep directory: results.parquet, README.md, parts/ (a rerun resumes it)")
    parser.add_argument("--force", action="store_true",
                        help="discard the finished points of --out and compute every point again (or replace "
                             "another intsim output there)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="an existing Dask scheduler (tcp://host:port or a scheduler file) instead of a local "
                             "cluster")
    parser.add_argument("--workers", type=int, metavar="N", default=None,
                        help="worker processes of the local cluster (default: one per CPU)")


def run(args: argparse.Namespace) -> int:
    """``intsim sweep``: returns 0, or 1 when points failed (the others are kept); bad input raises
    an intsim error (exit status 2)."""
    try:
        rep = run_sweep(args.spec, args.out, scheduler=args.scheduler, workers=args.workers, force=args.force,
                        quiet=args.quiet, plots=not args.no_plots)
    except SweepFailed as exc:
        print(f"intsim: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {rep.out / RESULTS}: {rep.points} points ({rep.computed} computed, {rep.reused} reused) "
          f"in {rep.seconds:.1f} s", flush=True)
    return 0
