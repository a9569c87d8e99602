"""cocotb 2.x testbench of requant_tflite.v driven by hypothesis (``intsim.testing.strategies``).

Run through ``cocotb_tools.runner`` (``intsim.golden.templates.run_cocotb`` with ``cocotb_module``
set to this module). The design's parameters are fixed when it is built, so the two halves of the
search run at different times:

* the requantization parameters (``MULT``, ``SHIFT``, ``ZP``, ``OUT_BITS``) are drawn before the
  build, as TFLite allows them, by :func:`draw_designs` (``strategies.requant_params`` with
  ``mode="tflite_double"``, int32 in, a signed output of 2 to 32 bits; derandomized);
* the int32 accumulators are drawn during the simulation by a ``@given`` property run in a
  :func:`cocotb.task.bridge` thread: every example (a list of words) is driven through the DUT by a
  :func:`cocotb.task.resume` coroutine, one word per clock, and ``y``, ``srdhm`` and ``rounded``
  are compared with ``requantize(x, scale, mode="tflite_double", ...)`` and its taps by
  :func:`intsim.testing.assert_bit_exact`. Hypothesis therefore shrinks a failure against the
  DUT itself; the shrunk counterexample (the fewest, simplest words) is logged and is the test's
  failure message.

The words come from ``strategies.interesting_values`` (int32 extremes, 0, +-1, half-range
values, the words around both output clamps) and the inputs whose SRDHM result is an exact tie of
the rounding divide. With a left shift, words are limited to those whose shifted value fits int32
(intsim raises otherwise). The search is deterministic (``derandomize=True``, no example
database). Environment: ``RQ_SCALE`` (the float scale ``MULT``/``SHIFT`` came from), ``RQ_ZP``,
``RQ_OUT`` (output type name, e.g. ``int8``), ``RQ_EXAMPLES`` (hypothesis examples, default 40).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisSideeffectWarning

from intsim import IntType
from intsim.core.dyadic import quantize_multiplier
from intsim.golden.cocotb_adapter import from_logicarray, to_logicarray
from intsim.quant.requant import requantize, saturating_rounding_doubling_high_mul
from intsim.testing import assert_bit_exact, strategies

SCALE = float(os.environ.get("RQ_SCALE", "0.0123"))
ZP = int(os.environ.get("RQ_ZP", "-3"))
OUT = IntType.parse(os.environ.get("RQ_OUT", "int8"))
EXAMPLES = int(os.environ.get("RQ_EXAMPLES", "40"))
# cocotb loads pytest (assertion rewriting), whose hypothesis plugin then takes the simulation for its
# start-up phase and warns about every strategy evaluated; nothing here runs during that phase
warnings.filterwarnings("ignore", category=HypothesisSideeffectWarning)
I32 = IntType(32)
OUT_TYPES = [IntType(8), IntType(4), IntType(16), IntType(12), IntType(32), IntType(2)]


# ----------------------------------------------------------------------------------------------
# before the build: the design's parameters
# ----------------------------------------------------------------------------------------------

def draw_designs(count: int = 8) -> list[dict[str, Any]]:
    """``count`` requantizer configurations as TFLite allows them (derandomized hypothesis draws):
    ``scale``, ``zero_point``, ``out`` (the testbench's ``RQ_*`` environment, see :func:`design_env`)
    and the design's ``parameters`` (``intsim.golden.templates.requant_parameters``)."""
    from intsim.golden.templates import requant_parameters

    found: list[dict[str, Any]] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=(Phase.generate,), suppress_health_check=list(HealthCheck))
    @given(strategies.requant_params("tflite_double", in_type="int32", out=st.sampled_from(OUT_TYPES)))
    def collect(p: dict[str, Any]) -> None:
        cfg = {"scale": p["scale"], "zero_point": int(p["zero_point"]), "out": p["out"].name}
        found.append({**cfg, "parameters": requant_parameters(cfg)})

    collect()
    return found


def design_env(design: dict[str, Any], examples: int = EXAMPLES) -> dict[str, str]:
    """The environment of this testbench for a design of :func:`draw_designs`."""
    return {"RQ_SCALE": repr(float(design["scale"])), "RQ_ZP": str(design["zero_point"]),
            "RQ_OUT": design["out"], "RQ_EXAMPLES": str(examples)}


# ----------------------------------------------------------------------------------------------
# during the simulation: the words
# ----------------------------------------------------------------------------------------------

def expected(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """intsim's y and the srdhm / rounded registers for int32 inputs ``x``."""
    res = requantize(x, SCALE, mode="tflite_double", out=OUT, zero_point=ZP, taps=True)
    return res.values, res.taps["srdhm"], res.taps["rounded"]


def srdhm_ties(lo: int, hi: int, count: int = 16) -> list[int]:
    """Words in [lo, hi] (searched within +-2**20) whose SRDHM result is an exact tie of the rounding divide."""
    mult, shift = quantize_multiplier(SCALE)
    right = max(-shift, 0)
    if right == 0:
        return []
    xs = np.arange(max(lo, -(1 << 20)), min(hi, 1 << 20) + 1, dtype=np.int64)
    s = saturating_rounding_doubling_high_mul(xs << max(shift, 0), mult)
    t = xs[(s & ((1 << right) - 1)) == (1 << (right - 1))]
    neg, pos = t[t < 0], t[t > 0]
    return [int(v) for v in np.concatenate([neg[-count // 2:], pos[:count // 2]])]


def words() -> st.SearchStrategy[list[int]]:
    """Lists of 1 to 16 int32 words the requantizer accepts, biased to extremes, clamps and ties."""
    _, shift = quantize_multiplier(SCALE)
    left = max(shift, 0)
    lo, hi = I32.min >> left, I32.max >> left  # x << left must fit int32
    clamps = [int(round(b / SCALE)) for b in (OUT.min - ZP, OUT.max - ZP)]
    word = strategies.interesting_values(I32, boundaries=[c for c in clamps if lo <= c <= hi], low=lo, high=hi)
    tie = srdhm_ties(lo, hi)
    if tie:
        word = st.one_of(word, st.sampled_from(tie))
    return st.lists(word, min_size=1, max_size=16)


@cocotb.test()
async def hypothesis_words(dut):
    """Hypothesis-drawn int32 words, each output checked bit for bit; a failure is shrunk against the DUT."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.x.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    @resume
    async def drive(xs: list[int]) -> tuple[list[int], list[int], list[int]]:
        """One word per clock; the outputs registered on the edge that took it (latency 1)."""
        y, srdhm, rounded = [], [], []
        for v in xs:
            dut.x.value = to_logicarray(v, I32)
            dut.in_valid.value = 1
            await RisingEdge(dut.clk)
            await ReadOnly()
            assert int(dut.out_valid.value) == 1, "out_valid must follow in_valid by one clock"
            y.append(from_logicarray(dut.y.value, OUT))
            srdhm.append(from_logicarray(dut.srdhm.value, I32))
            rounded.append(from_logicarray(dut.rounded.value, I32))
            await FallingEdge(dut.clk)
        dut.in_valid.value = 0
        return y, srdhm, rounded

    failing: list[list[int]] = []
    stats = {"examples": 0, "words": 0}

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(words())
    def prop(xs: list[int]) -> None:
        stats["examples"] += 1
        stats["words"] += len(xs)
        got = drive(xs)
        want = expected(np.array(xs, dtype=np.int64))
        try:
            for name, t, g, w in zip(("y", "srdhm", "rounded"), (OUT, I32, I32), got, want, strict=True):
                assert_bit_exact(np.array(g, dtype=np.int64), w, type=t, name=name)
        except AssertionError:
            failing.append(list(xs))  # hypothesis replays the shrunk example last
            raise

    def search() -> str | None:
        try:
            prop()
        except AssertionError as exc:
            notes = "\n".join(getattr(exc, "__notes__", []))
            return f"{exc}\n{notes}".strip()
        return None

    problem = await bridge(search)()
    dut._log.info("hypothesis: %d examples, %d words driven (scale %r, zero point %d, %s)",
                  stats["examples"], stats["words"], SCALE, ZP, OUT.name)
    if problem is not None:
        shrunk = failing[-1] if failing else None
        dut._log.error("shrunk counterexample: x = %s\n%s", shrunk, problem)
        raise AssertionError(f"requant_tflite differs from intsim; shrunk counterexample x = {shrunk}\n{problem}")
    dut._log.info("hypothesis: every word bit-exact")
