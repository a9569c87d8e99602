"""Methods side by side on one workload and one hardware profile, as pandas DataFrames.

>>> from intsim.cost import cost_workload, gemm_workload, get_method, load_profile
>>> r = cost_workload(gemm_workload(2, 3, 4, data=False), load_profile("horowitz45"),
...                   [get_method("fp32"), get_method("int8")])
>>> r.summary().loc[["fp32", "int8"], "macs"].tolist()
[24, 24]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..core.deprecation import renamed_keyword
from ..core.errors import ConfigError
from .counts import CostCounts
from .methods import FLOAT_NONLINEAR, Method, build_steps, nonlinear_families, standard_methods
from .model import COMPONENTS, Step, cost_steps, datapath_area, energy_table, step_counts, unpriced
from .profiles import HardwareProfile
from .workloads import VectorSite, Workload

__all__ = ["CostResult", "cost_workload", "nonlinear_comparison"]

Progress = Callable[[str], None]


@dataclass
class CostResult:
    """Costs of several methods on one workload under one hardware profile.

    ``frame`` has one row per step (see :func:`intsim.cost.model.cost_steps`); the methods
    give per-method views. Energies in pJ, areas in µm², times in ns. ``skipped`` lists the
    methods left out, with the reason; ``problems`` the errors behind them, one per missing
    profile entry and width (``(method, error)``, see :func:`intsim.cost.model.unpriced`).
    """

    workload: Workload
    profile: HardwareProfile
    methods: list[Method]
    steps: dict[str, list[Step]]
    frame: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, ConfigError]] = field(default_factory=list)

    def method(self, name: str) -> Method:
        for m in self.methods:
            if m.name == name:
                return m
        raise ConfigError(f"no method {name!r} in this result; have {', '.join(m.name for m in self.methods)}")

    def counts(self, method: str) -> CostCounts:
        """All actions of a method on the profile (step counts plus the array mapping's accesses)."""
        return sum((step_counts(s, self.profile) for s in self.steps[method]), CostCounts())

    def counts_frame(self) -> pd.DataFrame:
        """Exact action counts: ``method``, ``kind``, ``widths``, ``count``."""
        frames = []
        for m in self.methods:
            f = self.counts(m.name).to_frame().drop(columns="bits")
            f.insert(0, "method", m.name)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def energy_table(self, method: str) -> pd.DataFrame:
        """Per-action energy table of one method (:func:`intsim.cost.model.energy_table`)."""
        return energy_table(self.counts(method), self.profile)

    def area(self, method: str) -> pd.DataFrame:
        """Datapath area of the array a method needs (:func:`intsim.cost.model.datapath_area`)."""
        return datapath_area(self.profile, self.method(method).pe_units(self.profile.array.acc_bits))

    def summary(self, baseline: str = "int8") -> pd.DataFrame:
        """One row per method (index: method name).

        Columns: ``family``, ``bits``, ``strategy``, ``nonlinear``, ``macs``, ``bops``,
        ``array_cycles``, ``vector_cycles``, ``time_ns``, ``array_utilization`` (MACs over
        PE-cycles), the ``<component>_pj`` energies, ``compute_pj``, ``memory_pj``,
        ``total_pj``, ``relative_energy`` (total over the baseline's), ``energy_saved``
        (1 - relative_energy), ``unpack_ratio`` (unpacked MACs over the workload's MACs),
        ``area_um2`` (MAC array plus vector unit).
        """
        f = self.frame
        num = ["macs", "bops", "array_cycles", "vector_cycles", "time_ns"] + [f"{c}_pj" for c in COMPONENTS] + [
            "compute_pj", "memory_pj", "total_pj"]
        g = f.groupby("method", sort=False)[num].sum()
        g = g.reindex([m.name for m in self.methods])
        a = self.profile.array
        g["array_utilization"] = [g.loc[m, "macs"] / (a.rows * a.cols * g.loc[m, "array_cycles"])
                                  if g.loc[m, "array_cycles"] else math.nan for m in g.index]
        base = g.loc[baseline, "total_pj"] if baseline in g.index else math.nan
        g["relative_energy"] = g["total_pj"] / base
        g["energy_saved"] = 1.0 - g["relative_energy"]
        wm = self.workload.macs
        g["unpack_ratio"] = [g.loc[m.name, "macs"] / wm if m.family == "unpack" and wm else
                             (1.0 if m.family == "int8" else math.nan) for m in self.methods]
        g["area_um2"] = [float(self.area(m.name).um2.sum()) for m in self.methods]
        meta = pd.DataFrame({"family": [m.family for m in self.methods], "bits": [m.bits for m in self.methods],
                             "strategy": [m.strategy or "" for m in self.methods],
                             "nonlinear": [m.nonlinear for m in self.methods]}, index=g.index)
        out = pd.concat([meta, g], axis=1)
        out.index.name = "method"
        return out

    def by_category(self) -> pd.DataFrame:
        """Total energy (pJ) per method (rows) and step category (columns)."""
        t = self.frame.pivot_table(index="method", columns="category", values="total_pj", aggfunc="sum", fill_value=0.0)
        return t.reindex([m.name for m in self.methods])

    def by_layer(self) -> pd.DataFrame:
        """Total energy (pJ) per method (rows) and layer (columns)."""
        t = self.frame.pivot_table(index="method", columns="layer", values="total_pj", aggfunc="sum", fill_value=0.0)
        return t.reindex([m.name for m in self.methods])


def cost_workload(workload: Workload, profile: HardwareProfile, methods: Sequence[Method] | None = None, *,
                  progress: Progress | None = None, skip_unpriceable: bool = False) -> CostResult:
    """Cost ``workload`` under ``profile`` with each of ``methods`` (default: :func:`standard_methods`).

    With ``skip_unpriceable``, a method that cannot be built or priced (for example fp32 on
    a profile without floating-point entries) is left out and listed in ``skipped`` with the
    reason, and in ``problems`` with every missing profile entry; otherwise its
    :class:`~intsim.core.errors.ConfigError` propagates.
    """
    skipped: list[tuple[str, str]] = []
    problems: list[tuple[str, ConfigError]] = []
    if methods is None:
        methods, skipped = standard_methods()
    kept: list[Method] = []
    steps: dict[str, list[Step]] = {}
    frames = []
    acc = profile.array.acc_bits
    for i, m in enumerate(methods, 1):
        if progress:
            progress(f"[{i}/{len(methods)}] costing {m.name} on {workload.name}")
        try:
            s = build_steps(workload, m, acc, progress)
        except ConfigError as exc:
            if not skip_unpriceable:
                raise
            skipped.append((m.name, str(exc)))
            problems.append((m.name, exc))
            continue
        try:
            f = cost_steps(s, profile)
            datapath_area(profile, m.pe_units(acc))
        except ConfigError as exc:
            if not skip_unpriceable:
                raise
            found = unpriced(profile, (step_counts(x, profile) for x in s), m.pe_units(acc)) or [exc]
            skipped.append((m.name, "; ".join(str(e) for e in found)))
            problems += [(m.name, e) for e in found]
            continue
        kept.append(m)
        steps[m.name] = s
        frames.append(f)
    if not kept:
        err = ConfigError(f"no method could be costed on {workload.name} under {profile.name}: "
                          + "; ".join(f"{n}: {why}" for n, why in skipped))
        err.problems = problems  # the structured reasons, as CostResult.problems
        raise err
    return CostResult(workload, profile, kept, steps, pd.concat(frames, ignore_index=True), skipped, problems)


@renamed_keyword("profiles", "nonlinear")
def nonlinear_comparison(workload: Workload, profile: HardwareProfile, nonlinear: Sequence[str] | None = None,
                         acc_bits: int | None = None, *, skip_unpriceable: bool = False,
                         progress: Progress | None = None) -> pd.DataFrame:
    """Energy of the non-linear operators (softmax, GELU, LayerNorm) of ``workload`` on the
    hardware ``profile`` under each non-linear family (``nonlinear``, default: all; ``profiles=``
    is its old name), one row per (family, op) plus a ``total`` row per family.

    ``fp32``/``fp16``: the float recipes on float inputs (a float pipeline). ``int8+fp32``
    and ``int8+fp16``: the same recipes inside an integer pipeline (int32 input
    dequantized, 8-bit output quantized). Integer families: their operators on the
    integer pipeline's int32 inputs, 8-bit outputs (requantization included). Columns:
    ``nonlinear``, ``op``, ``elements``, the ``<component>_pj`` energies, ``total_pj``,
    ``relative_to_fp32``. Families that are not available are left out; with
    ``skip_unpriceable``, so are those ``profile`` cannot price, listed with the reason in
    ``frame.attrs["skipped"]`` and with every missing profile entry in ``frame.attrs["problems"]``
    (``(family, error)``). ``progress`` is called with one line per non-linear family.
    """
    from .methods import get_method

    acc = acc_bits or profile.array.acc_bits
    avail = nonlinear_families()
    names = list(nonlinear) if nonlinear is not None else (
        list(FLOAT_NONLINEAR) + [f"int8+{p}" for p in FLOAT_NONLINEAR]
        + [p for p, why in avail.items() if why is None and p not in FLOAT_NONLINEAR])
    sites = tuple(s for s in workload.sites if isinstance(s, VectorSite) and s.op != "residual")
    if not sites:
        raise ConfigError(f"workload {workload.name} has no non-linear operator")
    nl_only = Workload(workload.name, workload.description, sites, workload.sentences, workload.tokens)
    rows = []
    skipped: list[tuple[str, str]] = []
    problems: list[tuple[str, ConfigError]] = []
    for i, name in enumerate(names, 1):
        if progress:
            progress(f"[{i}/{len(names)}] non-linear operators under {name}")
        if name in FLOAT_NONLINEAR:
            m = get_method(name)
        else:
            m = get_method("int8", name.split("+", 1)[1] if name.startswith("int8+") else name)
        steps = build_steps(nl_only, m, acc)
        priced = [s for s in steps if s.category in ("nonlinear", "requant")]
        try:
            f = cost_steps(priced, profile)
        except ConfigError as exc:
            if not skip_unpriceable:
                raise
            found = unpriced(profile, (step_counts(x, profile) for x in priced)) or [exc]
            skipped.append((name, "; ".join(str(e) for e in found)))
            problems += [(name, e) for e in found]
            continue
        f["op"] = [s.op if s.category == "nonlinear" else None for s in steps
                   if s.category in ("nonlinear", "requant")]
        # a requantization belongs to the operator before it
        f["op"] = f["op"].ffill()
        g = f.groupby("op", sort=False)[[f"{c}_pj" for c in COMPONENTS] + ["total_pj"]].sum()
        for op, row in g.iterrows():
            elements = sum(s.elements for s in sites if s.op == op)
            rows.append({"nonlinear": name, "op": op, "elements": elements, **row.to_dict()})
        tot = g.sum()
        rows.append({"nonlinear": name, "op": "total", "elements": sum(s.elements for s in sites), **tot.to_dict()})
    out = pd.DataFrame(rows)
    if out.empty:
        err = ConfigError(f"no non-linear family could be priced on {profile.name}: "
                          + "; ".join(f"{n}: {why}" for n, why in skipped))
        err.problems = problems  # the structured reasons, as frame.attrs["problems"]
        raise err
    ref = out[out.nonlinear == "fp32"].set_index("op")["total_pj"] if (out.nonlinear == "fp32").any() else None
    out["relative_to_fp32"] = [r.total_pj / ref[r.op] if ref is not None and r.op in ref.index else math.nan
                               for r in out.itertuples()]
    out.attrs["skipped"] = skipped
    out.attrs["problems"] = problems
    return out
