"""``intsim onnx``: run a quantized ONNX model on intsim's datapath, bit for bit against ONNX Runtime.

    intsim onnx check MODEL --inputs FEEDS.npz   run ONNX Runtime and intsim side by side
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

Exit status: 0 every deciding tensor is bit-identical in every mode, 1 some tensor differs, 2 bad
usage or input (a model failing the checker, missing external data, a feed with a wrong name,
dtype or shape, an unsupported operator: one line on stderr names it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.errors import IntsimError
from ..core.helptext import add_command

__all__ = ["add_parser", "main"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``intsim onnx`` and its actions ``check`` and ``ops``."""
    op = add_command(sub, "onnx", __doc__,
                     help="run a quantized ONNX model bit for bit against ONNX Runtime (check, ops)")
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
