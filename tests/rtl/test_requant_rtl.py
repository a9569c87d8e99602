"""RTL checks of the requantizer template (intsim/golden/rtl/requant_tflite.v): TFLite double rounding.

* The requantize cases (mode tflite_double, int32 in) of the checked-in suite and of
  templates_spec.toml run through tb_requant_tflite.v; ``intsim golden compare`` must pass, taps
  ``srdhm`` and ``rounded`` included.
* Broken variants fail with exactly the mismatches a Python model of the bug predicts from the
  suite's own taps: ``BROKEN_ROUND_FLOOR`` (the rounding divide floors) and
  ``BROKEN_CLAMP_BEFORE_ZP`` (clamp, then add the zero point and wrap).
* cocotb (``requant_cocotb.py``) checks every word against intsim and catches the broken variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intsim import IntType
from intsim.golden import cli
from intsim.golden.compare import compare_suite
from intsim.golden.templates import TEMPLATES, requant_parameters, run_cocotb, run_suite, simulate_case

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
RQ = TEMPLATES["requant"]
# one design build for both: the same scale and zero point
BROKEN_CASES = (("golden", "rq_tflite_double"), ("templates", "rq_tflite_double_wide"))


def cases(root: Path) -> list[dict]:
    return RQ.cases(json.loads((root / "manifest.json").read_text())["cases"])


def test_requant_case_selection(template_suite):
    assert [c["name"] for c in cases(GOLDEN)] == ["rq_tflite_double"]
    names = [c["name"] for c in cases(template_suite)]
    assert names == ["rq_tflite_double_wide", "rq_tflite_double_gain", "rq_tflite_double_int16"]
    assert requant_parameters(cases(template_suite)[1]["config"])["SHIFT"] > 0  # a left shift is covered


@pytest.mark.parametrize("which", ["golden", "templates"])
def test_golden_requant_cases_pass(sim, build_cache, template_suite, tmp_path, capsys, which):
    root = GOLDEN if which == "golden" else template_suite
    names = run_suite(root, RQ, tmp_path / "dumps", sim=sim, cache_dir=build_cache)
    code = cli.main(["compare", str(root), "--dut", str(tmp_path / "dumps"), *sum((["--case", n] for n in names), [])])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(names)} passed, 0 failed" in out
    assert "srdhm:" in out and "rounded:" in out  # the taps were compared too


def _predict(root: Path, case: dict, define: str) -> tuple[np.ndarray, np.ndarray]:
    """(expected y, what the broken design outputs), from the suite's y and taps."""
    d = root / case["name"]
    y = np.load(d / "y.npy").astype(np.int64).reshape(-1)
    srdhm = np.load(d / "taps" / "srdhm.npy").astype(np.int64).reshape(-1)
    rounded = np.load(d / "taps" / "rounded.npy").astype(np.int64).reshape(-1)
    p = requant_parameters(case["config"])
    out = IntType(p["OUT_BITS"])
    if define == "BROKEN_ROUND_FLOOR":
        right = max(-p["SHIFT"], 0)
        broken = np.clip((srdhm >> right) + p["ZP"], out.min, out.max)
    else:
        broken = np.asarray(out.wrap(np.clip(rounded, out.min, out.max) + p["ZP"]), dtype=np.int64)
    return y, broken


@pytest.mark.parametrize("define", ["BROKEN_ROUND_FLOOR", "BROKEN_CLAMP_BEFORE_ZP"])
def test_broken_requantizer_is_caught_with_the_predicted_mismatches(sim, build_cache, template_suite, tmp_path,
                                                                    define):
    total = 0
    for which, name in BROKEN_CASES:
        root = GOLDEN if which == "golden" else template_suite
        case = next(c for c in cases(root) if c["name"] == name)
        dumps = tmp_path / which
        simulate_case(RQ, case, root, dumps / name, sim=sim, defines=[define], cache_dir=build_cache)
        res = compare_suite(root, dumps, cases=[name]).cases[0]
        y, broken = _predict(root, case, define)
        diff = np.flatnonzero(broken != y)
        got = next(t for t in res.tensors if t.name == "y")
        assert got.mismatches == diff.size, (name, define, got.summary())
        if diff.size:
            assert res.status == "fail"
            assert got.first[0].flat == int(diff[0]) and got.first[0].actual == int(broken[diff[0]])
        total += int(diff.size)
    assert total > 0  # the data exercise the bug


cocotb = pytest.importorskip("cocotb", reason="cocotb>=2 not installed (pip install 'intsim[rtl]')")
ENV = {"RQ_SCALE": "0.0123", "RQ_ZP": "-3", "RQ_OUT": "int8"}
PARAMS = requant_parameters({"scale": 0.0123, "zero_point": -3, "out": "int8"})


def test_cocotb_requant_scoreboard(sim, tmp_path):
    n, failed, log = run_cocotb(RQ, tmp_path / "good", parameters=PARAMS, env=ENV, sim=sim)
    assert (n, failed) == (3, 0), log[-3000:]
    assert "ties: 0 of 96 checks failed" in log


def test_cocotb_requant_catches_floor_rounding(sim, tmp_path):
    n, failed, log = run_cocotb(RQ, tmp_path / "floor", parameters=PARAMS, env=ENV, sim=sim,
                                defines=["BROKEN_ROUND_FLOOR"])
    assert n == 3 and failed >= 2, log[-3000:]
    assert "random_words failed" in log and "rounding_ties failed" in log, log[-3000:]
    assert "rounded(" in log and "expected 0x" in log, log[-3000:]
