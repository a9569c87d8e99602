"""RTL checks of the exp/softmax template (intsim/golden/rtl/ibert_softmax.v): I-BERT's softmax, row by row.

* The ibert.softmax cases (variant published) of the checked-in suite and of templates_spec.toml
  run through tb_ibert_softmax.v, which also checks the documented latency; ``intsim golden
  compare`` must pass, taps ``exp16``, ``sum`` and ``factor`` included.
* The broken variant ``BROKEN_EXP16_FLOOR`` (the 16-bit requantization truncates) fails with exactly
  the mismatches a Python model of the bug predicts from the suite's ``exp`` tap.
* cocotb (``softmax_cocotb.py``) checks every output, the latency and ``out_last`` against intsim,
  and catches the broken variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intsim.golden import cli
from intsim.golden.compare import compare_suite
from intsim.golden.templates import TEMPLATES, run_cocotb, run_suite, simulate_case, softmax_parameters

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
SM = TEMPLATES["softmax"]


def cases(root: Path) -> list[dict]:
    return SM.cases(json.loads((root / "manifest.json").read_text())["cases"])


def test_softmax_case_selection(template_suite):
    assert [c["name"] for c in cases(GOLDEN)] == ["ibert_softmax_published"]  # not the corrected variant
    assert len(cases(template_suite)) == 3


@pytest.mark.parametrize("which", ["golden", "templates"])
def test_golden_softmax_cases_pass(sim, build_cache, template_suite, tmp_path, capsys, which):
    root = GOLDEN if which == "golden" else template_suite
    names = run_suite(root, SM, tmp_path / "dumps", sim=sim, cache_dir=build_cache)
    code = cli.main(["compare", str(root), "--dut", str(tmp_path / "dumps"), *sum((["--case", n] for n in names), [])])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(names)} passed, 0 failed" in out
    assert "exp16:" in out and "factor:" in out and "sum:" in out


def _predict_floor(root: Path, case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, broken y, exp16, broken exp16) with a truncating 16-bit requantization, from the ``exp`` tap."""
    d = root / case["name"]
    p = softmax_parameters(case["config"]["scale"])
    exp = np.load(d / "taps" / "exp.npy")
    rows = exp.reshape(-1, exp.shape[-1]).tolist()
    e16 = [[min(max((int(e) * p["RQ_M"]) >> p["RQ_E"], -32768), 32767) for e in r] for r in rows]
    ys = []
    for r in e16:
        s = sum(r) or 1
        f = (1 << 32) // s
        ys.append([(e * f) >> (32 - p["OUT_BIT"]) for e in r])
    return (np.load(d / "y.npy").astype(np.int64).reshape(-1), np.array(ys, dtype=np.int64).reshape(-1),
            np.load(d / "taps" / "exp16.npy").astype(np.int64).reshape(-1), np.array(e16, dtype=np.int64).reshape(-1))


def test_broken_exp16_rounding_is_caught_with_the_predicted_mismatches(sim, build_cache, template_suite, tmp_path):
    """The truncation shows in exp16 on every case; it reaches y only where the row's sum moves a floor
    (predicted: 0 of 64 words on the checked-in case, 1 of 80 on the long int8 rows)."""
    y_total = 0
    for root, name in ((GOLDEN, "ibert_softmax_published"), (template_suite, "sm_ibert_s01_i8_long")):
        case = next(c for c in cases(root) if c["name"] == name)
        dumps = tmp_path / name
        simulate_case(SM, case, root, dumps / name, sim=sim, defines=["BROKEN_EXP16_FLOOR"], cache_dir=build_cache)
        res = compare_suite(root, dumps, cases=[name]).cases[0]
        y, by, e16, be16 = _predict_floor(root, case)
        got = {t.name: t for t in res.tensors}
        assert res.status == "fail"
        assert got["exp16"].mismatches == int((e16 != be16).sum()) > 0
        assert got["y"].mismatches == int((y != by).sum())
        first = int(np.flatnonzero(e16 != be16)[0])
        assert got["exp16"].first[0].flat == first and got["exp16"].first[0].actual == int(be16[first])
        y_total += got["y"].mismatches
    assert y_total > 0


cocotb = pytest.importorskip("cocotb", reason="cocotb>=2 not installed (pip install 'intsim[rtl]')")
ENV = {"SM_SCALE": "0.01", "SM_N": "16", "SM_IN": "int32"}
PARAMS = {**softmax_parameters(0.01), "IN_BITS": 32, "MAX_N": 16}


def test_cocotb_softmax_scoreboard(sim, tmp_path):
    n, failed, log = run_cocotb(SM, tmp_path / "good", parameters=PARAMS, env=ENV, sim=sim)
    assert (n, failed) == (2, 0), log[-3000:]


def test_cocotb_softmax_catches_exp16_floor(sim, tmp_path):
    n, failed, log = run_cocotb(SM, tmp_path / "floor", parameters=PARAMS, env=ENV, sim=sim,
                                defines=["BROKEN_EXP16_FLOOR"])
    assert n == 2 and failed >= 1, log[-3000:]
    assert "random_rows failed" in log and "exp16(" in log, log[-3000:]
