"""``intsim onnx``: run a quantized ONNX model on intsim's datapath, bit for bit against ONNX Runtime.

    intsim onnx check MODEL --inputs FEEDS.npz   run ONNX Runtime and intsim side by side
    intsim onnx run MODEL --inputs FEEDS.npz     re-run it on another datapath (what-if)
    intsim onnx ops                              list the supported operators

``check`` reads ``MODEL`` (checked with ``onnx.checker``, external data resolved beside it) and
the feeds (an ``.npz`` of graph input name -> array, checked against the declared names, element
types and shapes), then compares intsim with ONNX Runtime's CPU execution provider in each mode
of ``--optimization`` (default ``both``): ``disabled`` runs the graph as written in ONNX Runtime
(``ORT_DISABLE_ALL``) and compares every graph output and every intermediate tensor; ``enabled``
runs it with ONNX Runtime's default optimizations, saves the optimized graph ONNX Runtime really
runs (fused ``DynamicQuantizeMatMul``, ``FusedGemm``...) and runs that graph in intsim. Graph
outputs and integer intermediate tensors must be bit-identical; float intermediate tensors are
shown with their ULP distance but do not decide. The table lists the tensors that differ (all
of them with ``--all``), each with its first mismatch.

``run`` re-runs the graph ONNX Runtime runs (its default optimizations; ``--optimization
disabled`` for the graph as written) with one change: every integer GEMM on ``--unpack-bits B``
-bit multipliers with IM-Unpack, an accumulator of ``--acc-bits`` under ``--overflow``
(``wrap``, ``saturate``, ``raise``), ``--vpmaddubsw`` (uint8 x int8 GEMMs with the int16 pair
saturation of x86 CPUs without VNNI), and/or ``--nonlinear FAMILY``: integer-only Softmax, GELU
and LayerNorm (I-BERT, I-ViT, I-LLM) in place of the float ones. It prints, per tensor, how far
the run is from ONNX Runtime's (entries that differ, largest difference in the tensor's units),
the graph outputs against ``--float-model`` if given, every integer GEMM (engine, overflows
with the first one's position, unpack ratio), the op counts and their energy under
``--profile``. ``--out DIR`` also writes it as Markdown and CSV.

Exit status of ``check``: 0 every deciding tensor is bit-identical in every mode, 1 some tensor differs, 2 bad
usage or input (a model failing the checker, missing external data, a feed with a wrong name,
dtype or shape, an unsupported operator: one line on stderr names it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.errors import IntsimError
from ..core.helptext import add_command, add_output_options

__all__ = ["add_parser", "main"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``intsim onnx`` and its actions ``check`` and ``ops``."""
    op = add_command(sub, "onnx", __doc__,
                     help="run a quantized ONNX model bit for bit against ONNX Runtime (check, run, ops)")
    osub = op.add_subparsers(dest="onnx_command", metavar="ACTION")
    c = osub.add_parser("check", help="run ONNX Runtime and intsim side by side and compare every tensor",
                        description="Run ONNX Runtime (CPU) and intsim on the same feeds and compare every graph "
                                    "output and intermediate tensor bit for bit. Exit 0 all bit-identical, 1 a "
                                    "tensor differs, 2 bad input.")
    c.add_argument("model", metavar="MODEL", help="the .onnx file (external data beside it)")
    c.add_argument("--inputs", metavar="FEEDS.npz", required=True, help="an .npz of graph input name -> array")
    c.add_argument("--optimization", choices=("disabled", "enabled", "both"), default="both",
                   help="ONNX Runtime's graph optimizations: disabled (the graph as written), enabled (its "
                        "default level; intsim runs the optimized graph ORT saves) or both (default)")
    c.add_argument("--no-intermediates", action="store_true", help="compare the graph outputs only")
    c.add_argument("--all", action="store_true", help="list every tensor, not only the mismatching ones")
    c.set_defaults(func=_check)
    r = osub.add_parser("run", help="re-run a quantized model on another datapath (what-if) and compare",
                        description="Re-run a quantized ONNX model with IM-Unpack on b-bit multipliers, another "
                                    "accumulator width and overflow policy, or integer-only non-linear operators; "
                                    "report the divergence from ONNX Runtime (and float), overflows, op counts, "
                                    "unpack ratios and energy. Exit 0 done, 2 bad input.")
    r.add_argument("model", metavar="MODEL", help="the quantized .onnx file (external data beside it)")
    r.add_argument("--inputs", metavar="FEEDS.npz", required=True, help="an .npz of graph input name -> array")
    r.add_argument("--unpack-bits", type=int, metavar="B", help="run every integer GEMM with IM-Unpack on B-bit "
                   "signed multipliers (default: ONNX Runtime's 8-bit operands as they are)")
    r.add_argument("--strategy", default="row/col", metavar="A/B",
                   help="IM-Unpack strategies of the two operands: row, col, both or plan (default: row/col)")
    r.add_argument("--acc-bits", type=int, default=32, metavar="N", help="accumulator width in bits (default: 32)")
    r.add_argument("--overflow", choices=("wrap", "saturate", "raise"), default="wrap",
                   help="what the accumulator does when a sum leaves its range (default: wrap, as int32 does)")
    r.add_argument("--vpmaddubsw", action="store_true",
                   help="uint8 x int8 GEMMs as ONNX Runtime computes them on x86 CPUs without VNNI (int16 pair "
                        "saturation of VPMADDUBSW)")
    r.add_argument("--nonlinear", metavar="FAMILY", help="replace float Softmax, GELU and LayerNormalization by "
                   "integer-only ones: ibert, ibert-corrected, ivit, ivit-corrected or illm")
    r.add_argument("--nonlinear-bits", type=int, default=16, metavar="N",
                   help="bits of the per-tensor quantized input of a replaced operator (default: 16)")
    r.add_argument("--float-model", metavar="FLOAT.onnx", help="the float model: graph outputs compared with it")
    r.add_argument("--optimization", choices=("enabled", "disabled"), default="enabled",
                   help="run the graph ONNX Runtime's default optimizations produce (enabled, default) or the "
                        "graph as written (disabled)")
    r.add_argument("--profile", default="horowitz45", help="hardware profile for the energy estimate (a built-in "
                   "name or a TOML file; default: horowitz45)")
    r.add_argument("--all", action="store_true", help="list every tensor, not only those that differ")
    add_output_options(r, what="report directory (what-if.md and CSV files)", quiet=False)
    r.set_defaults(func=_run)
    o = osub.add_parser("ops", help="list the supported operators (domain:op_type)",
                        description="List every operator intsim.onnx runs, as domain:op_type.")
    o.set_defaults(func=_ops)
    op.set_defaults(func=lambda args: (op.print_help(sys.stderr), 2)[1])


def _check(args: argparse.Namespace) -> int:
    from ..onnx import check_against_ort, load_feeds

    feeds = load_feeds(args.inputs)
    modes = ("disabled", "enabled") if args.optimization == "both" else (args.optimization,)
    ok = True
    for mode in modes:
        rep = check_against_ort(args.model, feeds, optimization=mode, intermediates=not args.no_intermediates)
        print(rep.table(all_rows=args.all))
        overflow = sum(g.n_overflow for g in rep.gemms)
        print(f"  integer GEMMs on the datapath: {len(rep.gemms)}, int32 accumulator overflows: {overflow}")
        ok = ok and rep.ok
    return 0 if ok else 1


def _run(args: argparse.Namespace) -> int:
    from ..core.errors import ConfigError
    from ..onnx import load_feeds, load_model
    from ..onnx.whatif import WhatIf, optimized_model, run_whatif
    from .onnx_whatif import whatif_markdown, whatif_tables, write_whatif

    parts = args.strategy.split("/")
    if len(parts) != 2:
        raise ConfigError(f"--strategy must be A/B (e.g. row/col), got {args.strategy!r}")
    w = WhatIf(acc_bits=args.acc_bits, overflow=args.overflow, unpack_bits=args.unpack_bits,
               strategy_a=parts[0], strategy_b=parts[1], nonlinear=args.nonlinear,
               nonlinear_bits=args.nonlinear_bits, vpmaddubsw=args.vpmaddubsw)
    feeds = load_feeds(args.inputs)
    model = optimized_model(args.model) if args.optimization == "enabled" else load_model(args.model)
    fmodel = load_model(args.float_model) if args.float_model else None
    res = run_whatif(model, feeds, w, float_model=fmodel)
    tables = whatif_tables(res, args.profile)
    print(whatif_markdown(res, tables, model_name=args.model, all_rows=args.all))
    if args.out:
        write_whatif(args.out, res, tables, model_name=args.model, force=args.force)
    return 0


def _ops(args: argparse.Namespace) -> int:
    from ..onnx import supported_ops

    print("\n".join(supported_ops()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``intsim onnx ...`` on its own (the same parser and exit statuses as under ``intsim``)."""
    parser = argparse.ArgumentParser(prog="intsim")
    add_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except IntsimError as exc:
        print(f"intsim: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"intsim: error: {exc}", file=sys.stderr)
        return 2
