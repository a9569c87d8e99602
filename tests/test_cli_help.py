"""The command line's help is plain text made from docstrings, and the subcommands share one option
protocol (``--out``, ``--force``, ``-q/--quiet``, ``--no-plots``; exit status 2 for bad usage)."""

from __future__ import annotations

import argparse
import re

import pytest

from intsim.apps.cli import build_parser, main
from intsim.core.helptext import help_line, plain, summary

#: what reStructuredText markup looks like when it leaks into a terminal
MARKUP = re.compile(r"``|:(?:func|mod|data|class|meth|attr|exc|obj|ref|doc):`|`_\b|^\s*\.\. \w+::|>>> ", re.M)


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("intsim",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))
                assert helps.get(name), f"{' '.join((*path, name))}: no help line in {' '.join(path)} --help"


COMMANDS = list(_walk(build_parser()))


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"intsim golden operators", "intsim report unpack", "intsim report cost", "intsim report nonlinear",
            "intsim report training", "intsim sweep", "intsim compile", "intsim rtl run", "intsim synth",
            "intsim model fetch", "intsim demo"} <= names


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_is_plain_text_with_a_description(path, parser):
    text = parser.format_help()
    leaked = MARKUP.findall(text)
    assert not leaked, f"{' '.join(path)} --help shows markup: {leaked}"
    assert parser.description, f"{' '.join(path)} --help has no description"


def test_report_list_shows_summaries_not_markup(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+unpack\s+IM-Unpack ratios on the real GEMMs of all-MiniLM-L6-v2$", out, re.M), out
    assert "intsim report unpack:" not in out  # the name is not repeated as a prefix


def test_plain_removes_markup_and_keeps_the_text():
    doc = """Run :func:`intsim.matmul` on ``A`` (a :class:`~intsim.core.errors.ConfigError` if not), see
    :mod:`the module <intsim.hw.gemm>`, `a link <https://example.org>`_, *emphasis* and **strong**;
    ``a literal
    over two lines`` and 2**k stay.

    .. note:: dropped

    >>> 1 + 1
    2

    Example::

        keep ``this`` *as written*
    """
    text = plain(doc)
    assert text.splitlines()[0] == "Run intsim.matmul on A (a ConfigError if not), see"
    assert "the module, a link, emphasis and strong;" in text
    assert "a literal\nover two lines and 2**k stay." in text
    assert "note" not in text and ">>>" not in text and "1 + 1" not in text
    assert "Example:\n\n    keep ``this`` *as written*" in text  # a literal block is shown as written
    assert plain(None) == "" and summary(None) == ""


def test_summary_is_the_whole_first_paragraph_on_one_line():
    assert summary("``intsim report unpack``: IM-Unpack ratios on the real\n  GEMMs of MiniLM.\n\nMore.") == \
        "IM-Unpack ratios on the real GEMMs of MiniLM."
    assert summary("I-BERT's i-GELU, element-wise, with the\nsecond-order erf approximation.\n\nx") == \
        "I-BERT's i-GELU, element-wise, with the second-order erf approximation."
    assert help_line("Gate counts from synthesis.") == "gate counts from synthesis"
    assert help_line("IM-Unpack ratios.") == "IM-Unpack ratios"


REPORTS = ["unpack", "cost", "nonlinear", "training"]


@pytest.mark.parametrize("name", REPORTS)
def test_reports_share_the_output_options(name, tmp_path):
    parser = build_parser()
    args = parser.parse_args(["report", name, "--out", str(tmp_path), "--force", "-q", "--no-plots"])
    assert (args.out, args.force, args.quiet, args.no_plots) == (str(tmp_path), True, True, True)
    args = parser.parse_args(["report", name, "--quiet"])
    assert args.out == f"reports/{name}" and not args.force and args.quiet and not args.no_plots


def test_other_commands_share_the_option_names(tmp_path):
    parser = build_parser()
    for argv in (["golden", "generate", "s.toml", "--out", "d", "--force", "--quiet"],
                 ["golden", "generate", "s.toml", "--out", "d", "-q"]):
        args = parser.parse_args(argv)
        assert (args.out, args.quiet) == ("d", True)
    args = parser.parse_args(["rtl", "run", "suite", "--template", "softmax", "--out", "d", "--force"])
    assert (args.out, args.force) == ("d", True)
    args = parser.parse_args(["synth", "--out", "r", "--force", "-q"])
    assert (args.out, args.force, args.quiet) == ("r", True, True)
    args = parser.parse_args(["synth", "--report", "old"])  # the old name of --out keeps working
    assert args.out == "old"
    assert "--report" not in parser._subparsers._group_actions[0].choices["synth"].format_help()
    assert parser.parse_args(["compile", "-q"]).quiet is True


def test_bad_usage_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["report", "unpack", "--no-such-option"])
    assert exc.value.code == 2
    assert main(["report"]) == 2
    assert main(["golden"]) == 2
    # an invalid value is one line on stderr and exit status 2, before anything is computed
    assert main(["report", "unpack", "--bits", "1-3", "--out", str(tmp_path / "u"), "-q"]) == 2
    assert "intsim: error: ConfigError" in capsys.readouterr().err


def test_standalone_unpack_entry_point_is_the_same_command(capsys, tmp_path):
    from intsim.apps.reports import unpack

    assert unpack.main(["--bits", "1-3", "--out", str(tmp_path / "u")]) == 2
    assert "intsim: error: ConfigError" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
