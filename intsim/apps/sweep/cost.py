"""The ``cost`` kind: energy, cycles and area (``intsim report cost``) of one method on one
hardware profile per point."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import FileFormatError
from ...core.fileio import sha256_file
from .deps import pyplot
from .kinds import Plan, PointResult, SweepKind, SweepSpec, product_points
from .params import Param, check_float, check_int, check_sentences, check_str

__all__ = ["CostKind"]


@functools.lru_cache(maxsize=4)
def _workload(spec: str, sentences: int | None, max_len: int, seed: int) -> Any:
    from intsim_reference.sentences import SENTENCES

    from ...cost import parse_workload

    return parse_workload(spec, sentences=None if sentences is None else SENTENCES[:sentences], max_len=max_len,
                          seed=seed)


@functools.lru_cache(maxsize=16)
def _profile(name: str, sha256: str | None, scale_to: float | None, voltage: float | None) -> Any:
    from ...cost import load_profile

    if sha256 is not None and sha256_file(name) != sha256:
        raise FileFormatError(f"{name}: changed since the sweep started (its SHA-256 differs); run the sweep again")
    p = load_profile(name)
    return p.scaled(scale_to, voltage) if scale_to is not None else p


class CostKind(SweepKind):
    """Energy, cycles and area of one method on one hardware profile per point
    (:func:`intsim.cost.cost_workload`). Figures: the method's ``family``, ``bits``, ``macs``,
    ``bops``, ``array_cycles``, ``vector_cycles``, ``time_ns``, ``array_utilization``, the
    ``<component>_pj`` energies, ``compute_pj``, ``memory_pj``, ``total_pj``, ``unpack_ratio``
    and ``area_um2`` (the columns of :meth:`intsim.cost.CostResult.summary`)."""

    name = "cost"
    summary = "energy, cycles and area of methods x hardware profiles"
    params = (
        Param("method", "int8", "a method of intsim.cost (fp32, int8, unpack4-plan, llm.int8, ...)", check_str),
        Param("profile", "horowitz45", "a built-in hardware profile or a TOML file (relative to the spec)", check_str),
        Param("workload", "gemm:64x384x384", "gemm:MxKxN, gemm:L.name, layer[:L] or minilm", check_str),
        Param("scale_to", None, "technology node to scale the profile to (nm)", check_float(1.0, 1000.0)),
        Param("voltage", None, "supply voltage of the scaled node", check_float(0.1, 5.0)),
        Param("nonlinear", None, "family of non-linear operators of the integer methods", check_str),
        Param("sentences", None, "MiniLM workloads: the first N sentences (default: all)", check_sentences),
        Param("max_len", 64, "MiniLM workloads: tokenizer max length", check_int(1, 256)),
        Param("seed", 0, "seed of synthetic GEMM operands", check_int(0, (1 << 63) - 1)),
    )

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        from ...cost import builtin_profiles, get_method, parse_workload

        builtin = builtin_profiles()
        profiles: dict[str, str | None] = {}
        resolved = []
        for name in grid["profile"]:
            if name in builtin:
                profiles[name] = None
                resolved.append(name)
            else:
                path = str(spec.resolve(name, "grid.profile"))
                profiles[path] = sha256_file(path)
                resolved.append(path)
        for m in grid["method"]:
            get_method(m, None)  # an unknown method fails here, naming the valid ones
        for w in grid["workload"]:
            if w.startswith("gemm:") and "x" in w:
                parse_workload(w, seed=0)
        grid = {**grid, "profile": resolved}
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1], {"profiles": profiles},
                    {"profiles": profiles}, spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        from ...cost import cost_workload, get_method

        profile = _profile(params["profile"], shared["profiles"].get(params["profile"]), params["scale_to"],
                           params["voltage"])
        workload = _workload(params["workload"], params["sentences"], params["max_len"], params["seed"])
        method = get_method(params["method"], params["nonlinear"])
        s = cost_workload(workload, profile, [method]).summary().iloc[0]
        figures: dict[str, Any] = {}
        for col, v in s.items():
            if col in ("relative_energy", "energy_saved", "strategy", "nonlinear"):
                continue  # relative to a baseline the point does not hold; strategy is in the method's name
            if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
                figures[str(col)] = int(v)
            elif isinstance(v, (np.floating, float)):
                figures[str(col)] = float(v)
            else:
                figures[str(col)] = str(v)
        return PointResult(figures)

    def plots(self, rows: list[dict[str, Any]], plan: Plan, out: Path) -> list[tuple[str, str]]:
        plt = pyplot()
        if plt is None:
            return []
        labels = [", ".join(str(r[a]) for a in plan.axes) or r["method"] for r in rows]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 4.5), dpi=100)
        ax.bar(range(len(rows)), [r["total_pj"] / 1e6 for r in rows])
        ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("energy (µJ)")
        ax.set_title("total energy per point")
        fig.tight_layout()
        fig.savefig(out / "energy.png", format="png", metadata={"Software": None})
        plt.close(fig)
        return [("energy.png", "total energy of every point")]
