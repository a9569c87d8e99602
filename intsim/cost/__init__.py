"""Hardware cost model: energy, area and cycles of integer (and float) methods on a workload.

Pieces, each usable on its own:

* :mod:`~intsim.cost.profiles`: TOML hardware profiles (per-action energy and area,
  memory energy per byte, MAC array, vector unit); built-ins ``horowitz45``,
  ``qkeras_fit``, ``aladdin40``; Stillmaker & Baas scaling.
* :mod:`~intsim.cost.counts`: :class:`CostCounts`, exact action counts including
  floating-point operations and memory accesses per level.
* :mod:`~intsim.cost.model`: energy by component, array mapping and cycles, area.
* :mod:`~intsim.cost.workloads`: a single GEMM, a MiniLM layer, the whole MiniLM.
* :mod:`~intsim.cost.methods`: fp32, fp16, int8, IM-Unpack, LLM.int8() as costed steps.
* :mod:`~intsim.cost.compare`: methods side by side as DataFrames.
* :mod:`~intsim.cost.export`: qonnx-style BOPs/memory totals, Accelergy-style YAML.

>>> from intsim.cost import cost_workload, gemm_workload, get_method, load_profile
>>> r = cost_workload(gemm_workload(64, 384, 384, data=False), load_profile("horowitz45"),
...                   [get_method("fp32"), get_method("int8")])
>>> round(float(r.summary().loc["fp32", "relative_energy"]), 2)
5.09
"""

from .compare import CostResult, cost_workload, nonlinear_comparison
from .counts import COST_KINDS, MEMORY_LEVELS, CostCounts
from .export import accelergy_action_counts_yaml, accelergy_ert_yaml, qonnx_cost
from .methods import Method, build_steps, get_method, nonlinear_families, nonlinear_profiles, standard_methods
from .model import COMPONENTS, GemmShape, Step, cost_steps, datapath_area, energy_by_component, energy_table
from .profiles import HardwareProfile, Profile, builtin_profiles, load_profile, parse_profile
from .workloads import (
    GemmSite,
    VectorSite,
    Workload,
    gemm_workload,
    minilm_gemm_workload,
    minilm_layer_workload,
    minilm_workload,
    npy_workload,
    onnx_workload,
    parse_workload,
)

__all__ = [
    "COMPONENTS", "COST_KINDS", "MEMORY_LEVELS",
    "CostCounts", "CostResult", "GemmShape", "GemmSite", "HardwareProfile", "Method", "Profile", "Step", "VectorSite",
    "Workload",
    "accelergy_action_counts_yaml", "accelergy_ert_yaml", "build_steps", "builtin_profiles", "cost_steps",
    "cost_workload", "datapath_area", "energy_by_component", "energy_table", "gemm_workload", "get_method",
    "load_profile", "minilm_gemm_workload", "minilm_layer_workload", "minilm_workload", "nonlinear_comparison",
    "nonlinear_families", "nonlinear_profiles", "npy_workload", "onnx_workload", "parse_profile", "parse_workload",
    "qonnx_cost", "standard_methods",
]
