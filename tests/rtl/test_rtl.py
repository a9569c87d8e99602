"""RTL checks of the golden flow: mac_array.v under Icarus Verilog and cocotb 2.x.

* Every matmul case of the checked-in suite (golden/) that mac_array implements
  (signed a and b of one width, k_chunk = 1, no adder-tree width, wrap / saturate /
  raise; raise runs as wrap, whose results and flags the suite stores) runs through
  tb_golden.v; ``intsim golden compare`` must pass, with JUnit XML.
* Broken variants must fail with exactly the mismatches intsim predicts for them:
  ``BROKEN_NO_SAT`` (saturation missing) and ``BROKEN_B_UNSIGNED`` (operand b
  zero-extended).
* cocotb (``mac_cocotb.py``) checks every lane after every clock against intsim, and
  catches the broken variant too.

Needs ``iverilog``/``vvp`` (Debian package ``iverilog``) and, for the cocotb part,
the Python package ``cocotb>=2``; each part is skipped with the reason when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from intsim import Datapath, IntType, matmul
from intsim.golden import cli
from intsim.golden.compare import compare_suite

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN = REPO / "golden"
RTL = [HERE / "mac_array.v", HERE / "tb_golden.v"]
LANES = 4

IVERILOG = shutil.which("iverilog")
VVP = shutil.which("vvp")
needs_iverilog = pytest.mark.skipif(IVERILOG is None or VVP is None,
                                    reason="Icarus Verilog not installed (apt-get install iverilog)")


def rtl_cases() -> list[dict]:
    """The golden matmul cases mac_array implements, from the suite's manifest."""
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    out = []
    for c in manifest["cases"]:
        cfg = c["config"]
        if c["operator"] != "matmul" or cfg["a"] != cfg["b"] or not cfg["a"].startswith("int"):
            continue
        if cfg["k_chunk"] != 1 or cfg["chunk_bits"] is not None:
            continue
        out.append(c)
    return out


def build(tmp: Path, bits: int, acc_bits: int, defines: tuple[str, ...] = ()) -> Path:
    exe = tmp / f"tb_{bits}_{acc_bits}{''.join('_' + d for d in defines)}.vvp"
    if not exe.exists():
        cmd = [IVERILOG, "-g2005", "-Wall", "-o", str(exe), f"-Ptb_golden.BITS={bits}",
               f"-Ptb_golden.ACC_BITS={acc_bits}", f"-Ptb_golden.LANES={LANES}"]
        cmd += [f"-D{d}" for d in defines] + [str(p) for p in RTL]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def run_case(tmp: Path, case: dict, dumps: Path, defines: tuple[str, ...] = ()) -> None:
    """Simulate one case; writes DUMPS/<case>/C.hex and DUMPS/<case>/taps/overflow.hex."""
    cfg, shape = case["config"], case["shape"]
    bits = IntType.parse(cfg["a"]).bits
    exe = build(tmp, bits, cfg["acc_bits"], defines)
    src = GOLDEN / case["name"]
    out = dumps / case["name"]
    (out / "taps").mkdir(parents=True, exist_ok=True)
    args = [VVP, "-n", str(exe), f"+A={src / 'A.hex'}", f"+B={src / 'B.hex'}", f"+C={out / 'C.hex'}",
            f"+OVF={out / 'taps' / 'overflow.hex'}", f"+M={shape['M']}", f"+K={shape['K']}", f"+N={shape['N']}",
            f"+SAT={int(cfg['overflow'] == 'saturate')}"]
    if cfg["bias"]:
        args.append(f"+BIAS={src / 'bias.hex'}")
    res = subprocess.run(args, check=True, capture_output=True, text=True)
    assert "ERROR" not in res.stdout, res.stdout


def golden_inputs(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    d = GOLDEN / case["name"]
    bias = np.load(d / "bias.npy", allow_pickle=False) if case["config"]["bias"] else None
    return (np.load(d / "A.npy", allow_pickle=False), np.load(d / "B.npy", allow_pickle=False), bias,
            np.load(d / "C.npy", allow_pickle=False))


def compare_args(dumps: Path, cases: list[dict], *extra: str) -> list[str]:
    args = ["compare", str(GOLDEN), "--dut", str(dumps), *extra]
    for c in cases:
        args += ["--case", c["name"]]
    return args


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rtl")


def test_rtl_case_selection_covers_every_policy():
    names = {c["config"]["overflow"] for c in rtl_cases()}
    assert names == {"wrap", "saturate", "raise"}
    assert len({c["config"]["a"] for c in rtl_cases()}) >= 4  # several operand widths


@needs_iverilog
def test_golden_suite_passes_on_mac_array(workdir, capsys):
    cases = rtl_cases()
    dumps = workdir / "dumps_good"
    for c in cases:
        run_case(workdir, c, dumps)
    junit = workdir / "good.xml"
    code = cli.main(compare_args(dumps, cases, "--junit", str(junit)))
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(cases)} passed, 0 failed" in out
    root = ET.parse(junit).getroot()
    assert root.get("tests") == str(len(cases)) and root.get("failures") == "0"
    # the taps were compared too, not only C
    assert "overflow:" in out


@needs_iverilog
def test_broken_saturation_is_caught_with_the_predicted_mismatches(workdir, capsys):
    cases = [c for c in rtl_cases() if c["config"]["overflow"] == "saturate"]
    dumps = workdir / "dumps_nosat"
    for c in cases:
        run_case(workdir, c, dumps, ("BROKEN_NO_SAT",))
    report = compare_suite(GOLDEN, dumps, cases=[c["name"] for c in cases])
    n_failed = 0
    for c, res in zip(cases, report.cases, strict=True):
        A, B, bias, C = golden_inputs(c)
        dp = Datapath(a=c["config"]["a"], b=c["config"]["b"], acc_bits=c["config"]["acc_bits"], overflow="wrap")
        broken = matmul(A, B, dp, bias).values  # what hardware without saturation computes
        diff = np.flatnonzero(broken.reshape(-1) != C.reshape(-1))
        c_res = next(t for t in res.tensors if t.name == "C")
        assert c_res.mismatches == diff.size, (c["name"], c_res.summary())
        if diff.size:
            n_failed += 1
            assert res.status == "fail"
            first = c_res.first[0]
            assert first.flat == int(diff[0])
            assert first.index == tuple(int(i) for i in np.unravel_index(diff[0], C.shape))
            assert first.expected == int(C.reshape(-1)[diff[0]]) and first.actual == int(broken.reshape(-1)[diff[0]])
        else:
            assert res.status == "pass"
    assert n_failed >= 3  # the saturating overflow cases
    code = cli.main(compare_args(dumps, cases, "--junit", str(workdir / "nosat.xml")))
    out = capsys.readouterr().out
    assert code == 1
    assert "expected 0x" in out and "got 0x" in out
    root = ET.parse(workdir / "nosat.xml").getroot()
    assert root.get("failures") == str(n_failed)


@needs_iverilog
def test_b_read_as_unsigned_is_caught(workdir):
    cases = [c for c in rtl_cases() if c["name"] in ("mm_i8_acc32_wrap_uniform", "mm_i16_acc32_wrap_overflow",
                                                       "mm_i4_acc12_sat_heavy")]
    assert len(cases) == 3
    dumps = workdir / "dumps_unsigned"
    for c in cases:
        run_case(workdir, c, dumps, ("BROKEN_B_UNSIGNED",))
    report = compare_suite(GOLDEN, dumps, cases=[c["name"] for c in cases])
    assert report.exit_code == 1
    for c, res in zip(cases, report.cases, strict=True):
        A, B, bias, C = golden_inputs(c)
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

try:
    import cocotb  # noqa: F401
    from cocotb_tools.runner import get_results, get_runner
    HAVE_COCOTB = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_COCOTB = False

needs_cocotb = pytest.mark.skipif(not HAVE_COCOTB, reason="cocotb>=2 not installed (pip install cocotb)")

COCOTB_PARAMS = {"BITS": 16, "ACC_BITS": 32, "LANES": LANES}


def run_cocotb(build_dir: Path, defines: dict) -> tuple[int, int, str]:
    runner = get_runner("icarus")
    runner.build(sources=[HERE / "mac_array.v"], hdl_toplevel="mac_array", parameters=COCOTB_PARAMS,
                 defines=defines, build_dir=build_dir, always=True, timescale=("1ns", "1ps"))
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)] + sys.path),
           "MAC_BITS": str(COCOTB_PARAMS["BITS"]), "MAC_ACC_BITS": str(COCOTB_PARAMS["ACC_BITS"]),
           "MAC_LANES": str(COCOTB_PARAMS["LANES"]),
           # cocotb rewrites the asserts of every imported module by default (numpy, pandas, ...),
           # without a bytecode cache; limit that to the test module
           "COCOTB_REWRITE_ASSERTION_FILES": "mac_cocotb.py"}
    log = build_dir / "sim.log"
    results = build_dir / "results.xml"
    try:
        runner.test(hdl_toplevel="mac_array", test_module="mac_cocotb", build_dir=build_dir, test_dir=build_dir,
                    extra_env=env, log_file=log, results_xml=str(results))
    except SystemExit:  # cocotb's runner exits when a test failed; the results file says which
        pass
    n, failed = get_results(results)
    return n, failed, log.read_text(errors="replace") if log.exists() else ""


@needs_iverilog
@needs_cocotb
def test_cocotb_scoreboard_with_intsim_reference(tmp_path):
    n, failed, log = run_cocotb(tmp_path / "good", {})
    assert (n, failed) == (4, 0), log[-3000:]


@needs_iverilog
@needs_cocotb
def test_cocotb_scoreboard_catches_missing_saturation(tmp_path):
    n, failed, log = run_cocotb(tmp_path / "nosat", {"BROKEN_NO_SAT": 1})
    assert n == 4
    assert failed == 2, log[-3000:]  # the two saturating tests; the wrapping ones pass
    assert "saturate_random failed" in log and "saturate_overflow_corner failed" in log, log[-3000:]
    assert "wrap_random passed" in log and "wrap_overflow_corner passed" in log, log[-3000:]
    assert "expected 0x7fffffff (2147483647)" in log, log[-3000:]
