"""Plain-text command-line help from reStructuredText docstrings, and the options every command shares.

The modules behind ``intsim`` document themselves in reStructuredText; argparse would print that
markup verbatim. :func:`plain` turns a docstring into plain text for a terminal: ``literal`` and
`default role` become their text, a role such as :func:`intsim.matmul` (or
:class:`~intsim.core.errors.ConfigError`, or :mod:`title <target>`) becomes what Sphinx would show
(``intsim.matmul``, ``ConfigError``, ``title``), *emphasis* and **strong** lose their stars,
``text::`` loses one colon, directives (``.. note::``) and doctest examples (``>>>`` lines and
their output) are dropped. :func:`summary` is the first paragraph of that text on one line, never
cut mid-sentence, without a leading ``intsim NAME:`` that only repeats the command's name.

:func:`add_command` registers a subcommand whose ``help`` (the line in the parent's list) and
``description`` (``--help``) both come from a docstring. :func:`add_output_options` adds the
options with one meaning everywhere:

==============  ===========================================================================
option          meaning
==============  ===========================================================================
``--out``       the directory (or file) the command writes; built aside, moved into place whole
``--force``     replace ``--out`` if it exists (only an empty directory or one intsim wrote)
``--quiet``     ``-q``: no progress lines; the summary line, warnings and errors still print
``--no-plots``  write no PNG figures (the tables and text are unchanged)
==============  ===========================================================================

Exit status of every command: 0 success, 1 a check failed (a mismatch, an exceeded bound, a
failed step), 2 bad usage or input (one line on stderr names the problem).

>>> plain("Runs :func:`~intsim.hw.gemm.matmul` on ``A`` (see `the docs <https://x.org>`_)::")
'Runs matmul on A (see the docs):'
>>> summary('''``intsim report unpack``: IM-Unpack ratios on the real
...     GEMMs of all-MiniLM-L6-v2.
...
...     More.''')
'IM-Unpack ratios on the real GEMMs of all-MiniLM-L6-v2.'
"""

from __future__ import annotations

import argparse
import inspect
import re
from typing import Any

__all__ = ["plain", "summary", "help_line", "add_command", "add_output_options", "EXIT_STATUS"]

#: the exit-status sentence every command's help may end with
EXIT_STATUS = "Exit status: 0 success, 1 a check failed, 2 bad usage or input (one line on stderr names it)."

_ROLE = re.compile(r":(?:[A-Za-z][\w.+-]*:)*[A-Za-z][\w.+-]*:`([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``", re.S)
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`__?")
_REF = re.compile(r"`([^`]+)`__?")
_DEFAULT_ROLE = re.compile(r"(?<![\w`])`([^`]+)`(?![\w`])")
_STRONG = re.compile(r"(?<![\w*])\*\*(\S(?:[^*\n]*\S)?)\*\*(?![\w*])")
_EMPH = re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*\S)?)\*(?![\w*])")
_DIRECTIVE = re.compile(r"^\s*\.\. [\w-]+::")
_COMMAND_PREFIX = re.compile(r"^intsim(?: [\w.-]+)+:\s+")


def _role_text(m: re.Match[str]) -> str:
    body = m.group(1)
    target = re.fullmatch(r"(.*?)\s*<([^>]+)>", body)
    if target and target.group(1):
        return target.group(1)
    if body.startswith("~"):
        return body[1:].rsplit(".", 1)[-1]
    return body.lstrip("!")


def _inline(line: str) -> str:
    """The markup of one line of text removed (literals and roles first, so their content stays as written)."""
    literals: list[str] = []

    def keep(text: str) -> str:
        literals.append(text)
        return f"\0{len(literals) - 1}\0"

    line = _LITERAL.sub(lambda m: keep(m.group(1)), line)
    line = _ROLE.sub(lambda m: keep(_role_text(m)), line)
    line = _LINK.sub(r"\1", line)
    line = _REF.sub(r"\1", line)
    line = _DEFAULT_ROLE.sub(r"\1", line)
    line = _STRONG.sub(r"\1", line)
    line = _EMPH.sub(r"\1", line)
    line = line.replace("\\*", "*").replace("\\_", "_")
    return re.sub("\0(\\d+)\0", lambda m: literals[int(m.group(1))], line)


def plain(doc: str | None) -> str:
    """A docstring as plain text for a terminal (see the module docs); ``""`` for None.

    >>> plain('''Checks :data:`ADAPTERS`.
    ...
    ... >>> 1 + 1
    ... 2
    ...
    ... .. note:: gone
    ... Example::
    ...
    ...     intsim golden operators *NAME*''')
    'Checks ADAPTERS.\\n\\nExample:\\n\\n    intsim golden operators *NAME*'
    """
    if not doc:
        return ""
    out: list[str] = []
    prose: list[str] = []  # the lines of the current paragraph: markup can span lines

    def flush() -> None:
        if prose:
            out.extend(_inline("\n".join(prose)).split("\n"))
            prose.clear()

    in_doctest = in_literal = False
    literal_indent = 0
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if in_doctest:
            if stripped:
                continue
            in_doctest = False
        if stripped.startswith(">>>"):
            in_doctest = True
            flush()
            while out and not out[-1].strip():
                out.pop()
            continue
        if in_literal and stripped and indent <= literal_indent:
            in_literal = False
        if in_literal:  # a literal block (after "::") is shown as written
            out.append(line)
            continue
        if _DIRECTIVE.match(line):
            continue
        if not stripped:
            flush()
            out.append("")
            continue
        if stripped == "::":
            flush()
            in_literal, literal_indent = True, indent
            continue
        if stripped.endswith("::"):
            in_literal, literal_indent = True, indent
            prose.append(line[:-1])
            flush()
            continue
        prose.append(line)
    flush()
    while out and not out[-1].strip():
        out.pop()
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text)


def summary(doc: str | None) -> str:
    """The first paragraph of ``doc`` as plain text on one line (whole sentences, never cut), without
    a leading ``intsim NAME:`` that repeats the command's name; ``""`` for None.

    >>> summary("I-BERT's i-GELU (``IntGELU``), element-wise, with the\\nsecond-order erf approximation.")
    "I-BERT's i-GELU (IntGELU), element-wise, with the second-order erf approximation."
    """
    text = plain(doc)
    first = text.split("\n\n", 1)[0] if text else ""
    line = " ".join(first.split())
    return _COMMAND_PREFIX.sub("", line, count=1)


def add_command(subparsers: Any, name: str, doc: str | None, *, help: str | None = None,
                **kwargs: Any) -> argparse.ArgumentParser:
    """Register subcommand ``name``: its one-line ``help`` (default :func:`summary` of ``doc``) and
    its ``--help`` description (:func:`plain` of ``doc``, line breaks kept) come from ``doc``."""
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return subparsers.add_parser(name, help=help_line(summary(doc)) if help is None else help,
                                 description=plain(doc) or None, **kwargs)


def help_line(text: str) -> str:
    """A summary in the style of argparse's command list: a leading capital lowered (unless the word is
    an acronym such as ``IM-Unpack``) and one final period dropped.

    >>> help_line("Energy, area and cycles of fp32 and LLM.int8() on one workload.")
    'energy, area and cycles of fp32 and LLM.int8() on one workload'
    >>> help_line("IM-Unpack ratios on the real GEMMs.")
    'IM-Unpack ratios on the real GEMMs'
    """
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def add_output_options(parser: argparse.ArgumentParser, *, out: str | None = None, out_required: bool = False,
                       what: str = "directory", metavar: str = "DIR", force: bool = True, quiet: bool = True,
                       plots: bool = False, out_aliases: tuple[str, ...] = (), out_help: str | None = None) -> None:
    """Add ``--out``, ``--force``, ``-q/--quiet`` and ``--no-plots`` with the shared meanings (module
    docs); their ``args`` names are ``out``, ``force``, ``quiet`` and ``no_plots``.

    ``out`` is the default of ``--out`` (None: nothing is written unless it is given, or, with
    ``out_required``, it must be given); ``out_aliases`` are older names of ``--out`` that keep
    working without being listed; ``out_help`` replaces the generated help of ``--out``.
    """
    default = f" (default: {out})" if out is not None else ""
    parser.add_argument("--out", required=out_required, default=out, metavar=metavar,
                        help=out_help or f"the {what} to write{default}")
    for alias in out_aliases:
        parser.add_argument(alias, dest="out", metavar=metavar, help=argparse.SUPPRESS)
    if force:
        parser.add_argument("--force", action="store_true",
                            help="replace --out if it exists (only an empty directory or one intsim wrote)")
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true",
                            help="no progress lines (the summary, warnings and errors still print)")
    if plots:
        parser.add_argument("--no-plots", dest="no_plots", action="store_true",
                            help="write no PNG figures (the tables and text are unchanged)")
