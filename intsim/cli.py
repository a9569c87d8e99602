"""The ``intsim`` command line: one entry point, subcommands.

    intsim demo                 run the main job (see ``intsim demo --help``)
    intsim report NAME ...      write a report under reports/NAME/
    intsim golden ...           generate, verify and compare golden vectors

Exit status: 0 success, 1 a check failed (mismatch, overflow), 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import IntsimError

__all__ = ["main", "build_parser", "describe_os_error"]


def _optional_module(name: str):
    """Import an optional subcommand module; None if it is not part of this build."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return None
        raise


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

    from .reports import REPORTS

    rp = sub.add_parser("report", help="write a report (unpack, nonlinear, cost)",
                        description="Write a report under reports/NAME/ (Markdown, CSV, PNG).")
    rsub = rp.add_subparsers(dest="report", metavar="NAME")
    for name, modname in REPORTS.items():
        mod = _optional_module(modname)
        if mod is None:
            continue
        q = rsub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None,
                            description=mod.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(q)
        q.set_defaults(func=mod.run)
    rp.set_defaults(func=lambda args: _usage(rp))

    golden = _optional_module("intsim.golden.cli")
    if golden is not None:
        golden.add_parser(sub)
    return parser


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: what failed and on which file(s), e.g.
    ``permission denied: /data/out (errno 13)``."""
    what = (exc.strerror or type(exc).__name__).lower()
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    code = f" (errno {exc.errno})" if exc.errno is not None else ""
    return f"{what}: {files}{code}" if files else f"{what}{code}: {exc}"


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
