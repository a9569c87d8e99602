"""Command line of the golden-vector tools.

    intsim golden generate SPEC --out DIR [--force]
    intsim golden verify DIR [--case GLOB ...]
    intsim golden compare DIR --dut DUMPS [--junit FILE] [--case GLOB ...] [--no-taps]
    intsim golden operators [NAME [--example]]
    intsim golden from-onnx MODEL --inputs FEEDS.npz --out DIR [--max-slices N] [--force]

``intsim golden operators`` lists every operator a suite can hold with its one-line summary;
``intsim golden operators NAME`` prints what a case of that operator writes (its shape, config
and inputs keys with defaults and valid values, its outputs and taps) and a complete example
spec; ``--example`` prints the example alone, ready for ``intsim golden generate``.
``intsim golden from-onnx`` writes a suite from a quantized ONNX model run on your feeds: one
``matmul`` case per integer GEMM (and one ``requantize`` case per ``QLinearMatMul``), inputs
from the run (help(intsim.golden.from_onnx) gives the details).

The same commands run without the ``intsim`` entry point, as
``python -m intsim.golden verify golden`` for example.

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
from ..core.helptext import add_command, add_output_options, plain

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
def cmd_from_onnx(args: argparse.Namespace) -> int:
    from ..onnx import load_feeds
    from .from_onnx import suite_from_onnx

    rep = suite_from_onnx(args.model, load_feeds(args.inputs), args.out, optimization=args.optimization,
                          max_slices=args.max_slices, force=args.force)
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


@_guarded
def cmd_operators(args: argparse.Namespace) -> int:
    from .operators import available_operators, example_spec, operator_help

    if args.name is None:
        if args.example:
            print("intsim golden: error: --example needs an operator NAME (intsim golden operators NAME --example)",
                  file=sys.stderr)
            return 2
        ops = available_operators()
        width = max(len(k) for k in ops)
        for name, summary in ops.items():
            print(f"{name:<{width}}  {summary}")
        print(f"\n{len(ops)} operators; intsim golden operators NAME prints one's keys, taps and an example case")
        return 0
    sys.stdout.write(example_spec(args.name) if args.example else operator_help(args.name))
    return 0


_GENERATE = """Compute every case of a TOML spec and write the suite atomically to --out: inputs, outputs
and taps as .npy and $readmemh .hex files, and manifest.json.

A spec is a [suite] table and [[case]] tables (name, operator, shape, config, inputs);
``intsim golden operators NAME --example`` prints a complete one for operator NAME."""

_VERIFY = """Recompute a suite and check it bit for bit: every file's SHA-256, then every case from the
manifest and the stored inputs (outputs, taps and raised errors)."""

_COMPARE = """Compare a design's dumps against a suite: DUMPS/<case>/<output>.hex|.npy (and
taps/<tap>.hex|.npy when present); report mismatches with index, hex and decimal."""

_FROM_ONNX = """Run a quantized ONNX model on the feeds (the graph ONNX Runtime's default optimizations
produce, unless --optimization disabled) and write a golden suite of the integer kernels it ran:
one matmul case per 2-D integer GEMM (zero-point-free operands, an int32 accumulator that wraps)
and one requantize case (mode ort_fp32) per QLinearMatMul, inputs from the run. Every output of
the suite is checked against the model run before the command returns; verify and compare work
on the suite unchanged."""

_OPERATORS = """List the operators a golden suite can hold, or describe one.

Without NAME: every operator with its one-line summary. With NAME: the keys of a case's shape,
config and inputs tables (required keys, defaults, valid values), the tensors it writes (outputs
and taps, the intermediate registers) and a complete example spec that ``intsim golden generate``
accepts; ``--example`` prints that example alone::

    intsim golden operators ibert.softmax --example > spec.toml
    intsim golden generate spec.toml --out suite
    intsim golden verify suite"""


def add_commands(sub: Any) -> None:
    """Register ``generate``, ``verify``, ``compare`` and ``operators`` on an argparse subparsers object."""
    p = add_command(sub, "generate", _GENERATE, help="compute a spec's cases and write a golden suite")
    p.add_argument("spec", help="the TOML spec file")
    add_output_options(p, out_required=True, what="suite directory")
    p.set_defaults(func=cmd_generate)

    p = add_command(sub, "verify", _VERIFY, help="recompute a suite and check it bit for bit")
    p.add_argument("dir", metavar="DIR", help="the suite directory")
    p.add_argument("--case", action="append", metavar="GLOB", help="only cases matching GLOB (repeatable)")
    p.set_defaults(func=cmd_verify)

    p = add_command(sub, "compare", _COMPARE, help="compare a design's dumps against a suite")
    p.add_argument("dir", metavar="DIR", help="the suite directory")
    p.add_argument("--dut", required=True, metavar="DUMPS", help="the directory of the design's dumps")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    p.add_argument("--case", action="append", metavar="GLOB", help="only cases matching GLOB (repeatable)")
    p.add_argument("--no-taps", action="store_true", help="ignore tap dumps even if present")
    p.add_argument("--max-report", type=int, default=10, metavar="N",
                   help="mismatches listed per tensor (default 10; counts are always complete)")
    p.set_defaults(func=cmd_compare)

    p = add_command(sub, "from-onnx", _FROM_ONNX, help="write a suite of the integer kernels of a quantized ONNX model")
    p.add_argument("model", metavar="MODEL", help="the quantized .onnx file")
    p.add_argument("--inputs", required=True, metavar="FEEDS.npz", help="an .npz of graph input name -> array")
    p.add_argument("--optimization", choices=("enabled", "disabled"), default="enabled",
                   help="the graph ONNX Runtime's default optimizations produce (enabled, default) or the graph "
                        "as written (disabled)")
    p.add_argument("--max-slices", type=int, default=1, metavar="N",
                   help="cases per batched GEMM node, one per batch slice (default: 1, the first)")
    add_output_options(p, out_required=True, what="suite directory", quiet=False)
    p.set_defaults(func=cmd_from_onnx)

    p = add_command(sub, "operators", _OPERATORS,
                    help="list the operators a suite can hold; with NAME, its keys, taps and an example case")
    p.add_argument("name", nargs="?", metavar="NAME", help="an operator (as listed without NAME)")
    p.add_argument("--example", action="store_true", help="print only NAME's example spec (TOML)")
    p.set_defaults(func=cmd_operators)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``golden`` and its commands on the main ``intsim`` CLI's subparsers object.

    Each command sets ``func(args) -> int`` (the exit status) as its default.
    """
    g = add_command(subparsers, "golden", __doc__, help="generate, verify and compare golden vectors")
    gsub = g.add_subparsers(dest="golden_command", metavar="COMMAND")
    add_commands(gsub)
    g.set_defaults(func=lambda args: (g.print_help(sys.stderr), 2)[1])
    return g


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m intsim.golden COMMAND ...``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m intsim.golden", description=plain(__doc__),
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
