"""cocotb 2.x testbench of mac_array.v with intsim as the live scoreboard reference.

Run through ``cocotb_tools.runner`` (``intsim.golden.templates.run_cocotb``; not collected by
pytest itself). Every cycle, each lane's accumulator is checked against intsim's trace of the
same register (:func:`intsim.trace_output`), and after each block the overflow flags against
:func:`intsim.matmul`. Environment: ``MAC_A`` and ``MAC_B`` (operand type names, e.g. ``int8``,
``uint4``), ``MAC_ACC_BITS``, ``MAC_LANES`` (what the design was built with).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from intsim import Datapath, IntType
from intsim.golden.cocotb_adapter import GemmReference, Scoreboard, pack_lanes, split_lanes, to_logicarray
from intsim.golden.datagen import generate, normalize_dist

A_TYPE = IntType.parse(os.environ.get("MAC_A", "int16"))
B_TYPE = IntType.parse(os.environ.get("MAC_B", "int16"))
ACC_BITS = int(os.environ.get("MAC_ACC_BITS", "32"))
LANES = int(os.environ.get("MAC_LANES", "4"))
ACC = IntType(ACC_BITS)
FLAG = IntType(1, signed=False)


async def _reset(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.load.value = 0
    dut.en.value = 0
    dut.sat.value = 0
    dut.a.value = 0
    dut.b.value = 0
    dut.bias.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _run_block(dut, ref: GemmReference, sb: Scoreboard, a: list[int], b: list[list[int]], bias: list[int],
                     saturate: bool, tag: int) -> int:
    """Load the bias, feed K MACs, check every lane after every clock and the flags at the end.

    Returns the number of lanes whose accumulator overflowed (per intsim).
    """
    traces, flags = ref.block(a, b, bias)
    dut.sat.value = int(saturate)
    dut.bias.value = pack_lanes(bias, ACC)
    dut.load.value = 1
    await FallingEdge(dut.clk)
    dut.load.value = 0
    for k in range(len(a)):
        dut.a.value = to_logicarray(a[k], A_TYPE)
        dut.b.value = pack_lanes(b[k], B_TYPE)
        dut.en.value = 1
        await RisingEdge(dut.clk)
        await ReadOnly()
        for lane, word in enumerate(split_lanes(dut.acc.value, ACC_BITS, LANES, "acc")):
            sb.check("acc", (tag, k, lane), traces[lane][k], word, ACC)
        await FallingEdge(dut.clk)
    dut.en.value = 0
    await ReadOnly()
    for lane, word in enumerate(split_lanes(dut.ovf.value, 1, LANES, "ovf")):
        sb.check("ovf", (tag, lane), int(flags[lane]), word, FLAG)
    await FallingEdge(dut.clk)
    return sum(flags)


def _data(seed: int, name: str, shape: tuple[int, ...], t: IntType, dist: str | dict) -> np.ndarray:
    return generate(t, shape, normalize_dist(dist, t, name), seed, name)


async def _run(dut, saturate: bool, dist_a: str | dict, dist_b: str | dict, K: int, blocks: int, seed: int,
               min_overflows: int = 0) -> None:
    await _reset(dut)
    policy = "saturate" if saturate else "wrap"
    ref = GemmReference(Datapath(a=A_TYPE, b=B_TYPE, acc_bits=ACC_BITS, overflow=policy))
    sb = Scoreboard(f"mac_array {policy}")
    A = _data(seed, "A", (blocks, K), A_TYPE, dist_a)
    B = _data(seed, "B", (blocks, K, LANES), B_TYPE, dist_b)
    bias = _data(seed, "bias", (blocks, LANES), ACC, {"dist": "uniform", "low": -1000, "high": 1000})
    overflows = 0
    for blk in range(blocks):
        overflows += await _run_block(dut, ref, sb, A[blk].tolist(), B[blk].tolist(), bias[blk].tolist(),
                                      saturate, blk)
    dut._log.info(f"{sb.report()}; {overflows} lane(s) overflowed")
    sb.assert_clean()
    assert overflows >= min_overflows, f"the data was meant to overflow at least {min_overflows} lane(s)"


@cocotb.test()
async def wrap_random(dut):
    """Random operands, wrapping accumulator."""
    await _run(dut, False, "uniform", "uniform", K=24, blocks=3, seed=1)


@cocotb.test()
async def saturate_random(dut):
    """Heavy-tailed operands with heavy hitters, saturating accumulator."""
    heavy = {"dist": "heavy_tailed", "outlier_rate": 0.8}
    await _run(dut, True, heavy, heavy, K=24, blocks=3, seed=2, min_overflows=1)


@cocotb.test()
async def saturate_overflow_corner(dut):
    """Most-negative operands: every lane saturates at the positive limit."""
    await _run(dut, True, "most_negative", "most_negative", K=8, blocks=1, seed=3, min_overflows=LANES)


@cocotb.test()
async def wrap_overflow_corner(dut):
    """Alternating extremes: the accumulators wrap."""
    await _run(dut, False, "alternating_rows", "most_negative", K=8, blocks=2, seed=4, min_overflows=2 * LANES)
