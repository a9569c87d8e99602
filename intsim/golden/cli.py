"""Command line of the golden-vector tools.

    intsim golden generate SPEC --out DIR [--force]
    intsim golden verify DIR [--case GLOB ...]
    intsim golden compare DIR --dut DUMPS [--junit FILE] [--case GLOB ...] [--no-taps]
    intsim golden operators

The same commands run without the ``intsim`` entry point as
``python -m intsim.golden generate ...``.

Exit status: 0 everything passed, 1 a case failed (mismatch), 2 bad usage or an
unreadable / invalid spec, suite or dump, or a file that could not be written (one
line on stderr names the file and the problem).
"""

from __future__ import annotations

import argparse
import functools
import os
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..core.errors import IntsimError

__all__ = ["add_parser", "add_commands", "main"]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:1] + ["; ".join(lines[1:])]) if len(lines) > 1 else "".join(lines)


def _err(exc: IntsimError) -> int:
    print(f"intsim golden: error: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
    return 2


def _os_err(exc: OSError) -> int:
    from ..core.errors import describe_os_error

    print(f"intsim golden: error: {_one_line(describe_os_error(exc))}", file=sys.stderr)
    return 2


def _guarded(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; an intsim error or an OSError becomes one line on stderr and exit status 2."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except IntsimError as exc:
            return _err(exc)
        except OSError as exc:
            return _os_err(exc)

    return run


@_guarded
def cmd_generate(args: argparse.Namespace) -> int:
    from .suite import generate_suite

    try:  # only a regular file is read as the spec: a FIFO or a device would block or never end
        st = os.stat(args.spec)
    except FileNotFoundError:
        st = None  # reported by the spec reader
    if st is not None and not stat.S_ISREG(st.st_mode):
        print(f"intsim golden: error: {args.spec}: not a regular file (the spec must be a TOML file)",
              file=sys.stderr)
        return 2
    progress = None if args.quiet else (lambda name: print(f"  {name}", flush=True))
    rep = generate_suite(args.spec, args.out, force=args.force, progress=progress)
    print(f"wrote {rep.cases} case(s), {rep.files} files, {rep.bytes} bytes to {rep.out}")
    return 0


@_guarded
def cmd_verify(args: argparse.Namespace) -> int:
    from .suite import verify_suite

    rep = verify_suite(args.dir, cases=args.case)
    for c in rep.cases:
        print(f"{'PASS' if c.ok else 'FAIL'} {c.name}")
        for p in c.problems:
            print(f"    {p}")
    n_bad = len(rep.failed)
    print(f"{len(rep.cases) - n_bad} of {len(rep.cases)} case(s) verified bit for bit in {args.dir}"
          + (f"; {n_bad} FAILED" if n_bad else ""))
    return 1 if n_bad else 0


@_guarded
def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_suite, write_junit

    rep = compare_suite(args.dir, args.dut, cases=args.case, taps=not args.no_taps, max_report=args.max_report)
    for c in rep.cases:  # the results first: they are not lost if the JUnit file cannot be written
        print(f"{c.status.upper()} {c.name}" + ("" if c.status != "pass" else
                                              "  (" + ", ".join(t.summary() for t in c.tensors) + ")"))
        for line in c.details():
            print(f"    {line}")
    counts = {s: sum(c.status == s for c in rep.cases) for s in ("pass", "fail", "error")}
    summary = (f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} error(s) "
               f"of {len(rep.cases)} case(s)")
    if args.junit:
        try:
            write_junit(rep, args.junit)
        except OSError as exc:
            print(summary, flush=True)
            print(f"intsim golden: error: cannot write the JUnit XML report {args.junit}: "
                  f"{_one_line(exc.strerror or str(exc))}", file=sys.stderr)
            return 2
    print(summary + (f"; JUnit XML: {args.junit}" if args.junit else ""))
    errors = [c for c in rep.cases if c.status == "error"]
    if errors:
        print(f"intsim golden: error: {len(errors)} case(s) could not be compared, a dump or a suite file is "
              f"unreadable or invalid; first: {_one_line(errors[0].message)}", file=sys.stderr)
    return rep.exit_code


def cmd_operators(args: argparse.Namespace) -> int:
    from .operators import available_operators

    for name, summary in available_operators().items():
        print(f"{name:28s} {summary}")
    return 0


def add_commands(sub: Any) -> None:
    """Register ``generate``, ``verify``, ``compare`` and ``operators`` on an argparse subparsers object."""
    p = sub.add_parser("generate", help="compute a spec's cases and write a golden suite",
                       description="Compute every case of a TOML spec and write the suite (inputs, outputs, taps "
                                   "as .npy and $readmemh .hex, manifest.json) atomically to --out.")
    p.add_argument("spec", help="the TOML spec file")
    p.add_argument("--out", required=True, metavar="DIR", help="the suite directory to write")
    p.add_argument("--force", action="store_true",
                   help="replace an existing suite at DIR (only an empty directory or a golden suite)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list cases while generating")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("verify", help="recompute a suite and check it bit for bit",
                       description="Check every file's SHA-256, then recompute every case from the manifest and "
                                   "the stored inputs and compare outputs, taps and raised errors bit for bit.")
    p.add_argument("dir", metavar="DIR", help="the suite directory")
    p.add_argument("--case", action="append", metavar="GLOB", help="only cases matching GLOB (repeatable)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="compare a design's dumps against a suite",
                       description="Compare DUMPS/<case>/<output>.hex|.npy (and taps/<tap>.hex|.npy when "
                                   "present) against the suite; report mismatches with index, hex and decimal.")
    p.add_argument("dir", metavar="DIR", help="the suite directory")
    p.add_argument("--dut", required=True, metavar="DUMPS", help="the directory of the design's dumps")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    p.add_argument("--case", action="append", metavar="GLOB", help="only cases matching GLOB (repeatable)")
    p.add_argument("--no-taps", action="store_true", help="ignore tap dumps even if present")
    p.add_argument("--max-report", type=int, default=10, metavar="N",
                   help="mismatches listed per tensor (default 10; counts are always complete)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("operators", help="list the operators a suite can hold")
    p.set_defaults(func=cmd_operators)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``golden`` and its commands on the main ``intsim`` CLI's subparsers object.

    Each command sets ``func(args) -> int`` (the exit status) as its default.
    """
    g = subparsers.add_parser("golden", help="generate, verify and compare golden vectors",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gsub = g.add_subparsers(dest="golden_command", metavar="COMMAND")
    add_commands(gsub)
    g.set_defaults(func=lambda args: (g.print_help(sys.stderr), 2)[1])
    return g


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m intsim.golden COMMAND ...``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m intsim.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="golden_command", metavar="COMMAND")
    add_commands(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except IntsimError as exc:
        return _err(exc)
    except OSError as exc:
        return _os_err(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
