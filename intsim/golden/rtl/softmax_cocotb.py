"""cocotb 2.x testbench of ibert_softmax.v with intsim as the live scoreboard reference.

Run through ``cocotb_tools.runner`` (``intsim.golden.templates.run_cocotb``). Rows stream in one
element per clock; the row's ``y`` and ``exp16`` (and its ``sum``, ``factor``) are checked against
:func:`intsim.ops.ibert.softmax` (``variant="published"``, taps on), and the first output must come
``n + 2`` clocks after ``in_last`` with ``out_last`` on the row's last element. Environment:
``SM_SCALE`` (the input scale the design's constants came from), ``SM_N`` (row length),
``SM_IN`` (input type name).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from intsim import IntType
from intsim.golden.cocotb_adapter import Scoreboard, to_logicarray
from intsim.golden.datagen import generate, normalize_dist
from intsim.ops.ibert import softmax

SCALE = float(os.environ.get("SM_SCALE", "0.01"))
N = int(os.environ.get("SM_N", "16"))
IN = IntType.parse(os.environ.get("SM_IN", "int32"))
Y = IntType(16)
E16 = IntType(16)
SUM = IntType(32)
FACTOR = IntType(32, signed=False)


async def _reset(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_last.value = 0
    dut.in_x.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _row(dut, sb: Scoreboard, r: int, row: list[int]) -> None:
    res = softmax(np.array([row], dtype=np.int64), SCALE, variant="published", in_type=IN, taps=True)
    y, e16 = res.values[0], res.taps["exp16"][0]
    s, f = int(res.taps["sum"][0]), int(res.taps["factor"][0])
    for j, v in enumerate(row):
        dut.in_x.value = to_logicarray(v, IN)
        dut.in_valid.value = 1
        dut.in_last.value = int(j == len(row) - 1)
        await FallingEdge(dut.clk)
    dut.in_valid.value = 0
    dut.in_last.value = 0
    clocks = 0
    while True:
        await RisingEdge(dut.clk)
        clocks += 1
        await ReadOnly()
        if int(dut.out_valid.value):
            break
        assert clocks <= len(row) + 8, "no output"
    assert clocks == len(row) + 2, f"first output {clocks} clocks after in_last, documented {len(row) + 2}"
    for j in range(len(row)):
        if j:
            await RisingEdge(dut.clk)
            await ReadOnly()
        assert int(dut.out_valid.value) == 1 and int(dut.out_last.value) == int(j == len(row) - 1)
        sb.check("y", (r, j), int(y[j]), dut.out_y.value, Y)
        sb.check("exp16", (r, j), int(e16[j]), dut.out_exp16.value, E16)
        sb.check("sum", (r,), s, dut.out_sum.value, SUM)
        sb.check("factor", (r,), f, dut.out_factor.value, FACTOR)
    await FallingEdge(dut.clk)


async def _run(dut, rows: np.ndarray, name: str) -> None:
    await _reset(dut)
    sb = Scoreboard(f"ibert_softmax {name}")
    for r, row in enumerate(rows.tolist()):
        await _row(dut, sb, r, row)
    dut._log.info(sb.report())
    sb.assert_clean()


@cocotb.test()
async def random_rows(dut):
    """Logits N(0, (3/S)**2)-like: heavy-tailed rows at the input scale."""
    x = generate(IN, (6, N), normalize_dist({"dist": "heavy_tailed", "scale_bits": 9, "outlier_rate": 0.05},
                                            IN, "x"), 11, "x")
    await _run(dut, x, "random")


@cocotb.test()
async def corner_rows(dut):
    """Equal logits, one dominant logit, a row clamped at 30 * x0, and alternating extremes."""
    lo = max(IN.min // 2, -(1 << 20))
    rows = np.array([[0] * N, [5000] + [0] * (N - 1), [0] + [lo] * (N - 1),
                     [lo if j % 2 else 0 for j in range(N)]], dtype=np.int64)
    await _run(dut, rows, "corners")
