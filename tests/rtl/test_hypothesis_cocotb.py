"""The hypothesis-driven cocotb testbench of the requantizer (intsim/golden/rtl/requant_hypothesis_cocotb.py).

The design's parameters are drawn with ``intsim.testing.strategies.requant_params`` (TFLite's
multiplier and shift, a zero point, a signed output) before the build; the int32 words are drawn
by hypothesis inside the simulation and every output is checked with ``assert_bit_exact``. The
clean design passes; ``BROKEN_ROUND_FLOOR`` is caught and the failure names the shrunk
counterexample. One build per simulator and run (``RQ_EXAMPLES`` examples of 1 to 16 words).
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

pytest.importorskip("cocotb", reason="cocotb>=2 not installed (pip install 'intsim[rtl]')")
pytest.importorskip("hypothesis", reason="hypothesis not installed (pip install 'intsim[test]')")

from intsim.golden.sim import RTL_DIR  # noqa: E402
from intsim.golden.templates import TEMPLATES, run_cocotb  # noqa: E402

MODULE = "requant_hypothesis_cocotb"
RQ = dataclasses.replace(TEMPLATES["requant"], cocotb_module=MODULE)
EXAMPLES = 30


def _bench():
    spec = importlib.util.spec_from_file_location(MODULE, RTL_DIR / f"{MODULE}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def design() -> dict:
    """The first drawn design with a rounding right shift, a multiplier other than a power of two, a nonzero
    zero point and an output of at least 8 bits."""
    designs = _bench().draw_designs(48)
    assert designs == _bench().draw_designs(48)  # derandomized: the same draws every run
    p = [d["parameters"] for d in designs]
    return next(d for d, q in zip(designs, p, strict=True)
                if q["SHIFT"] < 0 and q["MULT"] != 1 << 30 and q["OUT_BITS"] >= 8 and q["ZP"] != 0)


def test_hypothesis_bench_passes_the_clean_design(sim, tmp_path, design):
    n, failed, log = run_cocotb(RQ, tmp_path / "good", parameters=design["parameters"],
                                env=_bench().design_env(design, EXAMPLES), sim=sim)
    assert (n, failed) == (1, 0), log[-3000:]
    assert f"hypothesis: {EXAMPLES} examples" in log and "every word bit-exact" in log, log[-3000:]


def test_hypothesis_bench_catches_floor_rounding(sim, tmp_path, design):
    n, failed, log = run_cocotb(RQ, tmp_path / "floor", parameters=design["parameters"],
                                env=_bench().design_env(design, EXAMPLES), sim=sim, defines=["BROKEN_ROUND_FLOOR"])
    assert (n, failed) == (1, 1), log[-3000:]
    assert "shrunk counterexample: x = [" in log, log[-3000:]
    assert "rounded: 1 of 1 entries differ" in log or "y: 1 of 1 entries differ" in log, log[-3000:]
