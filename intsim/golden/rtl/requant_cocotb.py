"""cocotb 2.x testbench of requant_tflite.v with intsim as the live scoreboard reference.

Run through ``cocotb_tools.runner`` (``intsim.golden.templates.run_cocotb``). One int32 word
enters per clock; one clock later ``y``, ``srdhm`` and ``rounded`` are checked against
:func:`intsim.quant.requant.requantize` (``mode="tflite_double"``) and its taps. Environment:
``RQ_SCALE`` (the float scale the design's ``MULT``/``SHIFT`` came from), ``RQ_ZP``, ``RQ_OUT``
(output type name, e.g. ``int8``).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from intsim import IntType
from intsim.core.dyadic import quantize_multiplier
from intsim.golden.cocotb_adapter import Scoreboard, to_logicarray
from intsim.golden.datagen import generate, normalize_dist
from intsim.quant.requant import requantize, saturating_rounding_doubling_high_mul

SCALE = float(os.environ.get("RQ_SCALE", "0.0123"))
ZP = int(os.environ.get("RQ_ZP", "-3"))
OUT = IntType.parse(os.environ.get("RQ_OUT", "int8"))
I32 = IntType(32)


def expected(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """intsim's y and the srdhm / rounded registers for int32 inputs ``x``."""
    res = requantize(x, SCALE, mode="tflite_double", out=OUT, zero_point=ZP, taps=True)
    return res.values, res.taps["srdhm"], res.taps["rounded"]


def tie_inputs(count: int) -> np.ndarray:
    """int32 inputs whose SRDHM result lies exactly half-way for the rounding divide (ties), both signs."""
    mult, shift = quantize_multiplier(SCALE)
    right = max(-shift, 0)
    if right == 0:
        return np.zeros(0, dtype=np.int64)
    xs = np.arange(-(1 << 20), 1 << 20, dtype=np.int64)
    s = saturating_rounding_doubling_high_mul(xs << max(shift, 0), mult)
    half = (s & ((1 << right) - 1)) == (1 << (right - 1))
    ties = xs[half]
    neg, pos = ties[ties < 0], ties[ties > 0]
    return np.concatenate([neg[-count // 2:], pos[:count // 2]])


async def _run(dut, x: np.ndarray, name: str) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.x.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    y, srdhm, rounded = expected(x)
    sb = Scoreboard(f"requant_tflite {name}")
    for i, v in enumerate(x.tolist()):
        dut.x.value = to_logicarray(v, I32)
        dut.in_valid.value = 1
        await RisingEdge(dut.clk)
        await ReadOnly()  # latency 1: the outputs of the word taken at this edge
        assert int(dut.out_valid.value) == 1, "out_valid must follow in_valid by one clock"
        sb.check("y", (i,), int(y[i]), dut.y.value, OUT)
        sb.check("srdhm", (i,), int(srdhm[i]), dut.srdhm.value, I32)
        sb.check("rounded", (i,), int(rounded[i]), dut.rounded.value, I32)
        await FallingEdge(dut.clk)
    dut.in_valid.value = 0
    dut._log.info(sb.report())
    sb.assert_clean()


@cocotb.test()
async def random_words(dut):
    """Heavy-tailed int32 accumulators (most in range, some saturating the output)."""
    x = generate(I32, (256,), normalize_dist({"dist": "heavy_tailed", "scale_bits": 12, "outlier_rate": 0.05},
                                             I32, "x"), 7, "x")
    await _run(dut, x, "random")


@cocotb.test()
async def extremes(dut):
    """INT32_MIN / MAX, zero, +-1 and the words around both output clamps."""
    mult, shift = quantize_multiplier(SCALE)
    edge = [int(round(b / SCALE)) for b in (OUT.min - ZP, OUT.max - ZP)]
    x = np.array([I32.min, I32.max, 0, 1, -1] + [e + d for e in edge for d in range(-300, 301, 25)], dtype=np.int64)
    await _run(dut, np.clip(x, I32.min, I32.max), "extremes")


@cocotb.test()
async def rounding_ties(dut):
    """Inputs whose rounding divide sees an exact tie (half away from zero, both signs)."""
    x = tie_inputs(32)
    assert x.size >= 16, "the scale gives too few ties to test"
    await _run(dut, x, "ties")
