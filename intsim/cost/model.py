"""The cost model: energy by component, datapath area and cycles, from counts and a profile.

Inputs are :class:`Step` records (one costed operation of a workload under one
method: its exact :class:`~intsim.cost.counts.CostCounts` and the GEMMs it runs
on the MAC array) and a :class:`~intsim.cost.profiles.HardwareProfile`.

**Actions.** Counts expand into priced actions of hardware units: a ``mac``
(a, b, acc) is one ``multiplier.mul`` (a×b) plus one ``adder.add`` (acc); an
``fmac`` (f) is one ``fp_multiplier.fmul`` plus one ``fp_adder.fadd``; every
other kind is one action of its unit; a memory access of b bits at a level
costs b/8 times the level's energy per byte.

**Energy by component** (pJ): ``multipliers`` (integer and floating-point),
``adders`` (integer and floating-point, including accumulation), ``shifters``,
``comparators``, ``dividers``, ``lookups``, ``register_file``, ``sram``, ``dram``.

**Mapping of a GEMM onto the array** (``M x K`` times ``K x N`` on an ``R x C``
array, output-stationary: each processing element (PE) owns one output and
performs one MAC per cycle):

* cycles = ``ceil(M/R) * ceil(N/C) * K`` (steady state; pipeline fill and drain
  are not counted); utilization = ``M*N*K / (R*C*cycles)``;
* each MAC reads its two operands from PE registers: ``register_file_read`` of
  ``a_bits`` and of ``b_bits`` per MAC;
* the step's own counts hold the compulsory traffic (every operand element read
  once, every output written once, at the level the workload assigns: weights
  in DRAM, activations in SRAM); the array re-streams A once per further column
  tile and B once per further row tile from SRAM:
  ``M*K*(ceil(N/C) - 1)`` and ``K*N*(ceil(M/R) - 1)`` extra ``sram_read``.

**Vector unit**: every arithmetic action other than ``mac``/``fmac`` runs on the
vector unit: cycles = ``ceil(sum(count * cycles_per_op) / lanes)``. The array
and the vector unit do not overlap (time = array time + vector time).

>>> from intsim.cost.profiles import load_profile
>>> g = GemmShape(2, 3, 4, "INT8", "INT8", 32)
>>> gemm_cycles(g, load_profile("horowitz45").array), g.macs, g.bops
(3, 24, 1536)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from ..core.errors import ConfigError
from ..core.inttype import IntType
from .counts import MEMORY_KINDS, CostCounts, format_widths
from .profiles import ArrayConfig, HardwareProfile, Price, VectorUnit

__all__ = [
    "COMPONENTS",
    "GemmShape",
    "Step",
    "dtype_bits",
    "int_dtype",
    "expand_actions",
    "action_price",
    "energy_table",
    "energy_by_component",
    "array_counts",
    "gemm_cycles",
    "vector_cycles",
    "step_counts",
    "cost_steps",
    "datapath_area",
    "unpriced",
]

COMPONENTS: tuple[str, ...] = ("multipliers", "adders", "shifters", "comparators", "dividers", "lookups",
                               "register_file", "sram", "dram")

#: hardware unit -> (profile op kind, energy component)
_UNITS: dict[str, tuple[str, str]] = {
    "multiplier": ("mul", "multipliers"),
    "fp_multiplier": ("fmul", "multipliers"),
    "adder": ("add", "adders"),
    "fp_adder": ("fadd", "adders"),
    "shifter": ("shift", "shifters"),
    "comparator": ("compare", "comparators"),
    "divider": ("div", "dividers"),
    "lut": ("lut", "lookups"),
}
_KIND_UNIT = {"mul": "multiplier", "add": "adder", "shift": "shifter", "compare": "comparator", "div": "divider",
              "lut": "lut", "fmul": "fp_multiplier", "fadd": "fp_adder"}

Action = tuple[str, str, tuple[int, ...]]  # (unit, action, widths)


def dtype_bits(dtype: str) -> int:
    """Bit width of a qonnx-style datatype name: ``INT8`` -> 8, ``UINT4`` -> 4, ``FLOAT16`` -> 16.

    >>> dtype_bits("UINT8"), dtype_bits("FLOAT32")
    (8, 32)
    """
    for prefix in ("UINT", "INT", "FLOAT"):
        if dtype.startswith(prefix) and dtype[len(prefix):].isdigit():
            return int(dtype[len(prefix):])
    raise ConfigError(f"not a datatype name: {dtype!r} (expected INTn, UINTn or FLOAT16/FLOAT32)")


def int_dtype(t: IntType) -> str:
    """qonnx datatype name of an :class:`~intsim.IntType`: ``INT8``, ``UINT8``..."""
    return f"{'' if t.signed else 'U'}INT{t.bits}"


@dataclass(frozen=True)
class GemmShape:
    """``count`` GEMMs ``(M x K) @ (K x N)`` with operand datatypes ``a_dtype``/``b_dtype``
    (``INT8``, ``UINT8``, ``INT4``, ``FLOAT16``, ...) accumulating at ``acc_bits``."""

    M: int
    K: int
    N: int
    a_dtype: str
    b_dtype: str
    acc_bits: int
    count: int = 1

    def __post_init__(self) -> None:
        for name in ("M", "K", "N", "count", "acc_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"GemmShape.{name} must be a non-negative integer, got {v!r}")
        dtype_bits(self.a_dtype)
        dtype_bits(self.b_dtype)

    @property
    def a_bits(self) -> int:
        return dtype_bits(self.a_dtype)

    @property
    def b_bits(self) -> int:
        return dtype_bits(self.b_dtype)

    @property
    def is_float(self) -> bool:
        return self.a_dtype.startswith("FLOAT")

    @property
    def macs(self) -> int:
        """Multiply-accumulates, ``count * M * K * N``."""
        return self.count * self.M * self.K * self.N

    @property
    def bops(self) -> int:
        """Bit operations as qonnx counts them: ``a_bits * b_bits * macs``."""
        return self.a_bits * self.b_bits * self.macs


@dataclass(frozen=True)
class Step:
    """One costed operation of a workload under one method.

    Attributes
    ----------
    method, name, layer, op, category:
        labels; ``category`` is ``gemm``, ``requant``, ``nonlinear``, ``residual`` or
        ``reassembly``.
    counts:
        exact :class:`CostCounts` of the operation, memory accesses included (placed at levels).
    gemms:
        the GEMMs it runs on the MAC array (for cycles, array traffic and BOPs).
    weights, outputs:
        ``(datatype, elements)`` of the weights it reads and of the outputs it writes, as
        qonnx's ``mem_w_*`` and ``mem_o_*`` count them.
    unpack_ratio:
        for IM-Unpack GEMMs, the ratio of unpacked to original GEMM work (else None).
    note:
        free text (for example which implementation produced the counts).
    """

    method: str
    name: str
    layer: int | None
    op: str
    category: str
    counts: CostCounts
    gemms: tuple[GemmShape, ...] = ()
    weights: tuple[tuple[str, int], ...] = ()
    outputs: tuple[tuple[str, int], ...] = ()
    unpack_ratio: float | None = None
    note: str = ""


# ---------------------------------------------------------------------------------------------
# Actions and energy
# ---------------------------------------------------------------------------------------------


def expand_actions(counts: CostCounts) -> dict[Action, int]:
    """Counts as actions of hardware units (a MAC is a multiply plus an add; see module docs).

    >>> from intsim.cost.counts import CostCounts
    >>> expand_actions(CostCounts({("mac", (8, 8, 32)): 5}))
    {('adder', 'add', (32,)): 5, ('multiplier', 'mul', (8, 8)): 5}
    """
    out: dict[Action, int] = {}

    def put(a: Action, n: int) -> None:
        out[a] = out.get(a, 0) + n

    for (kind, w), n in counts.items():
        if kind == "mac":
            put(("multiplier", "mul", (w[0], w[1])), n)
            put(("adder", "add", (w[2],)), n)
        elif kind == "fmac":
            put(("fp_multiplier", "fmul", w), n)
            put(("fp_adder", "fadd", w), n)
        elif kind in MEMORY_KINDS:
            level, direction = kind.rsplit("_", 1)
            put((level, direction, w), n)
        else:
            put((_KIND_UNIT[kind], kind, w), n)
    return dict(sorted(out.items()))


def action_price(profile: HardwareProfile, action: Action) -> Price:
    """Energy (pJ) of one action on ``profile``, with its provenance (``memory`` for accesses)."""
    unit, name, w = action
    if unit in _UNITS:
        return profile.price(_UNITS[unit][0], w)
    return Price(profile.memory_energy(unit, name, w[0]), "memory")


def _component(unit: str) -> str:
    return _UNITS[unit][1] if unit in _UNITS else unit


def energy_table(counts: CostCounts, profile: HardwareProfile) -> pd.DataFrame:
    """One row per action: ``unit``, ``action``, ``widths``, ``count``, ``pj_each``, ``energy_pj``,
    ``component``, ``provenance`` (``table``, ``fit``, ``interpolated``, ``scaled``, ``derived``, ``memory``)."""
    rows = []
    for (unit, name, w), n in expand_actions(counts).items():
        p = action_price(profile, (unit, name, w))
        rows.append({"unit": unit, "action": name, "widths": "x".join(map(str, w)), "count": n,
                     "pj_each": p.value, "energy_pj": p.value * n, "component": _component(unit),
                     "provenance": p.provenance})
    return pd.DataFrame(rows, columns=["unit", "action", "widths", "count", "pj_each", "energy_pj", "component",
                                       "provenance"])


def energy_by_component(counts: CostCounts, profile: HardwareProfile) -> dict[str, float]:
    """Energy in pJ per component (all of :data:`COMPONENTS`, zeros included).

    >>> from intsim.cost.profiles import load_profile
    >>> from intsim.cost.counts import CostCounts
    >>> e = energy_by_component(CostCounts({("mac", (8, 8, 32)): 10}), load_profile("horowitz45"))
    >>> round(e["multipliers"], 6), round(e["adders"], 6)
    (2.0, 1.0)
    """
    out = dict.fromkeys(COMPONENTS, 0.0)
    for action, n in expand_actions(counts).items():
        out[_component(action[0])] += action_price(profile, action).value * n
    return out


# ---------------------------------------------------------------------------------------------
# Array mapping and cycles
# ---------------------------------------------------------------------------------------------


def _tiles(g: GemmShape, array: ArrayConfig) -> tuple[int, int]:
    return -(-g.M // array.rows), -(-g.N // array.cols)


def gemm_cycles(g: GemmShape, array: ArrayConfig) -> int:
    """Array cycles of ``g``: ``count * ceil(M/R) * ceil(N/C) * K``."""
    tm, tn = _tiles(g, array)
    return g.count * tm * tn * g.K


def array_counts(g: GemmShape, array: ArrayConfig) -> CostCounts:
    """Accesses the array mapping adds to a GEMM's own counts: PE operand-register reads
    (one of each operand per MAC) and SRAM re-reads for the second and later tile passes."""
    tm, tn = _tiles(g, array)
    c = CostCounts()
    c.add("register_file_read", (g.a_bits,), g.macs)
    c.add("register_file_read", (g.b_bits,), g.macs)
    c.add("sram_read", (g.a_bits,), g.count * g.M * g.K * (tn - 1))
    c.add("sram_read", (g.b_bits,), g.count * g.K * g.N * (tm - 1))
    return c


def vector_cycles(counts: CostCounts, vu: VectorUnit) -> int:
    """Vector-unit cycles: ``ceil(sum(count * cycles_per_op) / lanes)`` over arithmetic actions
    other than ``mac``/``fmac`` (which run on the MAC array)."""
    work = 0
    for (kind, w), n in counts.items():
        if kind in MEMORY_KINDS or kind in ("mac", "fmac"):
            continue
        work += n * vu.cycles(kind, w)
    return -(-work // vu.lanes)


def step_counts(step: Step, profile: HardwareProfile) -> CostCounts:
    """All actions of a step on ``profile``: its own counts plus the array-mapping accesses."""
    total = step.counts
    for g in step.gemms:
        total = total + array_counts(g, profile.array)
    return total


def cost_steps(steps: Iterable[Step], profile: HardwareProfile) -> pd.DataFrame:
    """Price steps: one row per step with energy by component (pJ), totals and timing.

    Columns: ``method``, ``step``, ``layer``, ``op``, ``category``, ``macs``, ``bops``,
    ``array_cycles``, ``array_utilization`` (NaN without GEMMs), ``vector_cycles``, ``time_ns``,
    one ``<component>_pj`` column per :data:`COMPONENTS`, ``compute_pj``, ``memory_pj``,
    ``total_pj``, ``unpack_ratio``, ``note``.
    """
    rows = []
    a, vu = profile.array, profile.vector_unit
    for s in steps:
        total = step_counts(s, profile)
        e = energy_by_component(total, profile)
        cyc = sum(gemm_cycles(g, a) for g in s.gemms)
        macs = sum(g.macs for g in s.gemms)
        vcyc = vector_cycles(s.counts, vu)
        row = {"method": s.method, "step": s.name, "layer": s.layer, "op": s.op, "category": s.category,
               "macs": macs, "bops": sum(g.bops for g in s.gemms), "array_cycles": cyc,
               "array_utilization": macs / (a.rows * a.cols * cyc) if cyc else math.nan,
               "vector_cycles": vcyc,
               "time_ns": cyc * 1e3 / a.clock_mhz + vcyc * 1e3 / vu.clock_mhz}
        for c in COMPONENTS:
            row[f"{c}_pj"] = e[c]
        row["memory_pj"] = math.fsum(e[c] for c in ("register_file", "sram", "dram"))
        row["compute_pj"] = math.fsum(e[c] for c in COMPONENTS if c not in ("register_file", "sram", "dram"))
        row["total_pj"] = math.fsum(e.values())
        row["unpack_ratio"] = s.unpack_ratio if s.unpack_ratio is not None else math.nan
        row["note"] = s.note
        rows.append(row)
    cols = (["method", "step", "layer", "op", "category", "macs", "bops", "array_cycles", "array_utilization",
             "vector_cycles", "time_ns"] + [f"{c}_pj" for c in COMPONENTS]
            + ["compute_pj", "memory_pj", "total_pj", "unpack_ratio", "note"])
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------
# Area
# ---------------------------------------------------------------------------------------------


def datapath_area(profile: HardwareProfile, pe_units: Sequence[tuple[str, tuple[int, ...]]]) -> pd.DataFrame:
    """Area of the configured MAC array with ``pe_units`` in every PE, plus the vector unit.

    ``pe_units`` lists ``(kind, widths)`` of one PE, e.g. ``[("mul", (8, 8)), ("add", (32,))]``
    for an int8 MAC into a 32-bit accumulator or ``[("fmul", (32,)), ("fadd", (32,))]``.
    Rows: ``block`` (``mac_array`` or ``vector_unit``), ``unit``, ``widths``, ``instances``,
    ``um2_each``, ``um2``, ``provenance``. Units without a published area (derived from a
    memory level, e.g. a lookup) count 0 µm².

    >>> from intsim.cost.profiles import load_profile
    >>> df = datapath_area(load_profile("horowitz45"), [("mul", (8, 8)), ("add", (32,))])
    >>> float(df[df.block == "mac_array"].um2.sum())   # 256 PEs x (282 + 137) um2
    107264.0
    """
    rows = []
    n_pe = profile.array.rows * profile.array.cols
    blocks = (("mac_array", n_pe, pe_units), ("vector_unit", profile.vector_unit.lanes,
                                               profile.vector_unit.area_units))
    for block, inst, units in blocks:
        for kind, w in units:
            p = profile.price(kind, tuple(w), "area")
            rows.append({"block": block, "unit": kind, "widths": format_widths(kind, tuple(w)), "instances": inst,
                         "um2_each": p.value, "um2": p.value * inst, "provenance": p.provenance})
    return pd.DataFrame(rows, columns=["block", "unit", "widths", "instances", "um2_each", "um2", "provenance"])


def unpriced(profile: HardwareProfile, counts: Iterable[CostCounts] = (),
             pe_units: Sequence[tuple[str, tuple[int, ...]]] = ()) -> list[ConfigError]:
    """Every reason ``profile`` cannot price ``counts`` (energies) and a MAC array of ``pe_units``
    plus its vector unit (areas): one :class:`~intsim.core.errors.ConfigError` per distinct problem,
    most of them :class:`~intsim.cost.profiles.MissingEntryError` naming the entry and the width.
    Empty when everything can be priced.

    >>> from intsim.cost.profiles import load_profile
    >>> [e.what for e in unpriced(load_profile("aladdin40"), [CostCounts({("fmac", (32,)): 1})])]
    ['op.fadd at 32 bits', 'op.fmul at 32 bits']
    """
    out: dict[str, ConfigError] = {}
    actions: set[Action] = set()
    for c in counts:
        actions.update(expand_actions(c))
    for action in sorted(actions):
        try:
            action_price(profile, action)
        except ConfigError as exc:
            out.setdefault(str(exc), exc)
    for kind, w in list(pe_units) + list(profile.vector_unit.area_units):
        try:
            profile.price(kind, tuple(w), "area")
        except ConfigError as exc:
            out.setdefault(str(exc), exc)
    return list(out.values())
