"""Static checks and the command line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import intsim
from intsim.apps.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (install the 'test' extra)")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert intsim.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as ei:
        main(["--help"])
    assert ei.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2


def test_gemm_demo_runs_and_checks(capsys):
    import argparse

    from intsim.apps import demo

    args = argparse.Namespace(seed=1, shape=(16, 64, 8), int4_acc_bits=8, gemm_only=True)
    assert demo.run(args) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "MISMATCH" not in out


def test_python_m_intsim():
    out = subprocess.run([sys.executable, "-m", "intsim", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("intsim ")


def test_public_api_reexported():
    for name in ("IntType", "Datapath", "matmul", "GemmResult", "OpCounts", "shift_right", "div_round",
                 "AccumulatorOverflow", "OperandRangeError", "ConfigError", "IntsimError"):
        assert hasattr(intsim, name), name


def test_doctests_of_core_modules():
    import doctest

    from intsim.core import dyadic, fileio, inttype, opcounts, rounding
    from intsim.hw import datapath, gemm
    from intsim.regs import opresult, registers

    for mod in (datapath, dyadic, fileio, gemm, inttype, opcounts, opresult, registers, rounding):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__
