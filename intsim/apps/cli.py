"""The ``intsim`` command line: one entry point, subcommands.

    intsim demo                 run the main job (see ``intsim demo --help``)
    intsim compile              compile every numba kernel ahead of time (first run only)
    intsim report NAME ...      write a report under reports/NAME/
    intsim golden ...           generate, verify and compare golden vectors
    intsim rtl ...              run RTL templates or your design against a golden suite
    intsim synth                gate counts of the datapath units from Yosys (cost/synth.py)
    intsim model fetch|info     get the MiniLM model, show which copy is used
    intsim onnx check|run|ops   a quantized ONNX model against ONNX Runtime bit for bit, or on another datapath
    intsim sweep SPEC.toml      a parameter grid on a Dask cluster, results in Parquet

``--model-dir DIR`` (before or after the command) uses a copy of the Hugging Face folder
sentence-transformers/all-MiniLM-L6-v2 instead of the cached model.

Exit status: 0 success, 1 a check failed (mismatch, overflow), 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import IntsimError, describe_os_error
from ..core.helptext import EXIT_STATUS, add_command

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``intsim`` parser: every subcommand registered through :mod:`intsim.core.helptext`, so
    each one's help line and ``--help`` text are plain text made from its module's docstring."""
    parser = argparse.ArgumentParser(
        prog="intsim",
        description="Bit-exact emulator of integer machine-learning hardware.",
        epilog="Run 'intsim COMMAND --help' for the options of a command. " + EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"intsim {__version__}")
    parser.add_argument("--model-dir", metavar="DIR", default=None,
                        help="the MiniLM model folder to use (a copy of the Hugging Face folder)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from . import demo

    p = add_command(sub, "demo", demo.__doc__,
                    help="run the main job: integer-only MiniLM embeddings vs the float64 reference")
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)

    from . import precompile

    p = add_command(sub, "compile", precompile.__doc__)
    precompile.add_arguments(p)
    p.set_defaults(func=precompile.run)

    from .reports import REPORTS

    rp = sub.add_parser("report", help=f"write a report ({', '.join(REPORTS)})",
                        description="Write a report under reports/NAME/ (Markdown, CSV, PNG). "
                                    "Every report takes --out DIR, --force, -q/--quiet and --no-plots.")
    rsub = rp.add_subparsers(dest="report", metavar="NAME")
    for name, modname in REPORTS.items():
        mod = importlib.import_module(modname)
        q = add_command(rsub, name, mod.__doc__)
        mod.add_arguments(q)
        q.set_defaults(func=mod.run)
    rp.set_defaults(func=lambda args: _usage(rp))

    from ..golden import cli as golden_cli

    golden_cli.add_parser(sub)

    from ..golden import templates as rtl_cli

    rtl_cli.add_parser(sub)

    from ..cost import synth

    p = add_command(sub, "synth", synth.__doc__)
    synth.add_arguments(p)
    p.set_defaults(func=synth.run)

    from . import model as model_cli

    model_cli.add_parser(sub)

    from . import onnx_cli

    onnx_cli.add_parser(sub)

    from . import sweep

    p = add_command(sub, "sweep", sweep.__doc__)
    sweep.add_arguments(p)
    p.set_defaults(func=sweep.run)
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
        if getattr(args, "model_dir", None):
            from ..models import store

            previous = store.explicit_model_dir()
            try:  # for this command only (main may run in a longer process, e.g. a test)
                store.set_model_dir(args.model_dir)
                return int(args.func(args) or 0)
            finally:
                store.set_model_dir(previous)
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
