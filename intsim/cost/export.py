"""Interchange: qonnx-style ``inference_cost`` totals and Accelergy-style YAML.

**qonnx** (``qonnx.util.inference_cost``): per-datatype keys ``op_mac_<DT1>_<DT2>``
(MACs of GEMMs with operand datatypes DT1, DT2), ``mem_w_<DT>`` (weight elements,
each weight tensor counted once) and ``mem_o_<DT>`` (output elements of every
operation), and the totals ``total_macs``, ``total_bops`` (sum of
``bits(DT1) * bits(DT2) * MACs``), ``total_mem_w_bits``, ``total_mem_w_elems``,
``total_mem_o_bits``, ``total_mem_o_elems``. Datatypes are ``INTn``, ``UINTn``,
``FLOAT16``, ``FLOAT32``. Values are exact integers (qonnx reports floats).

**Accelergy** (ERT and action counts, version 0.4 layout): one component per
hardware unit (``system.multiplier``, ``system.adder``, ``system.fp_multiplier``,
``system.fp_adder``, ``system.shifter``, ``system.comparator``, ``system.divider``,
``system.lut``, ``system.register_file``, ``system.sram``, ``system.dram``), each
action named as in :func:`intsim.cost.model.expand_actions` with its widths as
arguments (``a_bits``/``b_bits`` for a multiply, ``bits`` otherwise), energies in pJ.
The YAML is written by hand (no YAML dependency) and is deterministic.

>>> from intsim.cost.counts import CostCounts
>>> from intsim.cost.profiles import load_profile
>>> print(accelergy_ert_yaml(CostCounts({("mac", (8, 8, 32)): 1}), load_profile("horowitz45")).splitlines()[4])
ERT:
"""

from __future__ import annotations

from collections.abc import Iterable

from .counts import CostCounts
from .model import Step, action_price, dtype_bits, expand_actions
from .profiles import HardwareProfile

__all__ = ["qonnx_cost", "accelergy_ert_yaml", "accelergy_action_counts_yaml", "ACCELERGY_VERSION"]

ACCELERGY_VERSION = "0.4"


def qonnx_cost(steps: Iterable[Step]) -> dict[str, int]:
    """qonnx ``inference_cost``-style totals of ``steps`` (see the module docs); keys sorted.

    >>> from intsim.cost import build_steps, gemm_workload, get_method
    >>> c = qonnx_cost(build_steps(gemm_workload(2, 3, 4, data=False), get_method("int8")))
    >>> c["op_mac_INT8_INT8"], c["total_bops"], c["total_mem_w_bits"], c["total_mem_o_bits"]
    (24, 1536, 96, 256)
    """
    res: dict[str, int] = {}

    def put(k: str, n: int) -> None:
        res[k] = res.get(k, 0) + int(n)

    for s in steps:
        for g in s.gemms:
            put(f"op_mac_{g.a_dtype}_{g.b_dtype}", g.macs)
        for dt, n in s.weights:
            put(f"mem_w_{dt}", n)
        for dt, n in s.outputs:
            put(f"mem_o_{dt}", n)
    total = {"total_macs": 0, "total_bops": 0, "total_mem_w_bits": 0, "total_mem_w_elems": 0,
             "total_mem_o_bits": 0, "total_mem_o_elems": 0}
    for k, v in res.items():
        parts = k.split("_")
        if k.startswith("op_mac_"):
            total["total_macs"] += v
            total["total_bops"] += dtype_bits(parts[2]) * dtype_bits(parts[3]) * v
        else:
            kind = parts[1]
            total[f"total_mem_{kind}_bits"] += dtype_bits(parts[2]) * v
            total[f"total_mem_{kind}_elems"] += v
    res.update(total)
    return dict(sorted(res.items()))


def _args(action: str, w: tuple[int, ...]) -> list[tuple[str, int]]:
    if action == "mul":
        return [("a_bits", w[0]), ("b_bits", w[1])]
    return [("bits", w[0])]


def _num(x: float) -> str:
    return repr(float(x))


def _header(title: str, profile: HardwareProfile) -> list[str]:
    return [f"# {title}, written by intsim (intsim.cost.export)",
            f"# profile: {profile.name} ({profile.title or profile.path})" + (
                f"; {profile.scaling_note}" if profile.scaling_note else ""),
            "# energy unit: pJ per action; widths in bits",
            "# memory actions read/write one element of `bits` bits"]


def accelergy_ert_yaml(counts: CostCounts, profile: HardwareProfile) -> str:
    """Accelergy-style energy reference table (``ERT``) of the actions in ``counts`` on ``profile``.

    Each action carries its energy in pJ and, as a comment, where the figure came from
    (``table``, ``fit``, ``interpolated``, ``scaled``, ``derived``, ``memory``).
    """
    by_unit: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for unit, action, w in expand_actions(counts):
        by_unit.setdefault(unit, []).append((action, w))
    lines = _header("Accelergy-style energy reference table (ERT)", profile)
    lines += ["ERT:", f"  version: '{ACCELERGY_VERSION}'", "  tables:"]
    for unit in sorted(by_unit):
        lines += [f"  - name: system.{unit}", "    actions:"]
        for action, w in by_unit[unit]:
            p = action_price(profile, (unit, action, w))
            lines.append(f"    - name: {action}")
            lines.append("      arguments:")
            lines += [f"        {k}: {v}" for k, v in _args(action, w)]
            lines.append(f"      energy: {_num(p.value)}  # {p.provenance}")
    return "\n".join(lines) + "\n"


def accelergy_action_counts_yaml(counts: CostCounts, profile: HardwareProfile) -> str:
    """Accelergy-style action counts (``action_counts``) of ``counts`` (exact integers)."""
    by_unit: dict[str, list[tuple[str, tuple[int, ...], int]]] = {}
    for (unit, action, w), n in expand_actions(counts).items():
        by_unit.setdefault(unit, []).append((action, w, n))
    lines = _header("Accelergy-style action counts", profile)
    lines += ["action_counts:", f"  version: '{ACCELERGY_VERSION}'", "  local:"]
    for unit in sorted(by_unit):
        lines += [f"  - name: system.{unit}", "    action_counts:"]
        for action, w, n in by_unit[unit]:
            lines.append(f"    - name: {action}")
            lines.append("      arguments:")
            lines += [f"        {k}: {v}" for k, v in _args(action, w)]
            lines.append(f"      counts: {n}")
    return "\n".join(lines) + "\n"
