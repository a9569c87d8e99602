"""The ``intsim`` command line: one entry point, subcommands.

    intsim demo                 run the main job (see ``intsim demo --help``)
    intsim compile              compile every numba kernel ahead of time (first run only)
    intsim report NAME ...      write a report under reports/NAME/
    intsim golden ...           generate, verify and compare golden vectors

Exit status: 0 success, 1 a check failed (mismatch, overflow), 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import IntsimError, describe_os_error

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intsim",
        description="Bit-exact emulator of integer machine-learning hardware.",
        epilog="Run 'intsim COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"intsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from . import demo

    p = sub.add_parser("demo", help="run the main job: integer-only MiniLM embeddings vs the float64 reference",
                       description=demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)

    from . import precompile

    p = sub.add_parser("compile", help=(precompile.__doc__ or "").strip().splitlines()[0],
                       description=precompile.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    precompile.add_arguments(p)
    p.set_defaults(func=precompile.run)

    from .reports import REPORTS

    rp = sub.add_parser("report", help="write a report (unpack, nonlinear, cost)",
                        description="Write a report under reports/NAME/ (Markdown, CSV, PNG).")
    rsub = rp.add_subparsers(dest="report", metavar="NAME")
    for name, modname in REPORTS.items():
        mod = importlib.import_module(modname)
        q = rsub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None,
                            description=mod.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(q)
        q.set_defaults(func=mod.run)
    rp.set_defaults(func=lambda args: _usage(rp))

    from ..golden import cli as golden_cli

    golden_cli.add_parser(sub)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except IntsimError as exc:
        print(f"intsim: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused: one line naming the file, not a traceback
        print(f"intsim: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("intsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
