"""Tests of the cost model (intsim.cost) and of ``intsim report cost``.

Small cases are pinned by hand; larger ones check that counts compose (a layer is the sum
of its steps, the model the sum of its layers) and agree with the modules that produce
them (gemm_ops, requantize, unpack_matmul, the I-BERT softmax).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from intsim import Datapath, IntType, OpCounts, gemm_ops
from intsim.apps.cli import main
from intsim.core.errors import ConfigError
from intsim.cost import (
    CostCounts,
    build_steps,
    cost_steps,
    cost_workload,
    energy_by_component,
    gemm_workload,
    get_method,
    load_profile,
    parse_profile,
    qonnx_cost,
)
from intsim.cost import floatops as fo
from intsim.cost.export import accelergy_action_counts_yaml, accelergy_ert_yaml
from intsim.cost.methods import requant_counts, unpack_gemm_counts
from intsim.cost.model import GemmShape, array_counts, gemm_cycles, step_counts
from intsim.cost.profiles import builtin_profiles
from intsim.cost.workloads import VectorSite, Workload

H45 = load_profile("horowitz45")


def _doc(name: str = "horowitz45") -> dict:
    return tomllib.loads(builtin_profiles()[name].read_text(encoding="utf-8"))


def _write_toml(path: Path, doc: dict) -> Path:
    """A minimal TOML writer for the profile documents used here (tables, numbers, strings, lists)."""
    def val(v):
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f'"{k}" = {val(x)}' for k, x in v.items()) + " }"
        return repr(v)

    lines: list[str] = []

    def table(prefix: str, d: dict) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) or prefix.startswith("op.")}
        subs = {k: v for k, v in d.items() if k not in scalars}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f'"{k}" = {val(v)}')
        for k, v in subs.items():
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# the built-in profiles reproduce the published figures exactly
# ---------------------------------------------------------------------------------------------


def test_horowitz45_reproduces_the_published_table():
    p = H45
    # Horowitz ISSCC 2014 (45 nm, 0.9 V): energy (pJ) and area (um2)
    assert [p.energy("add", (b,)) for b in (8, 16, 32)] == [0.03, 0.05, 0.1]
    assert [p.area("add", (b,)) for b in (8, 16, 32)] == [36, 67, 137]
    assert p.energy("mul", (8, 8)) == 0.2 and p.energy("mul", (32, 32)) == 3.1
    assert p.area("mul", (8, 8)) == 282 and p.area("mul", (32, 32)) == 3495
    assert p.energy("fadd", (16,)) == 0.4 and p.energy("fadd", (32,)) == 0.9
    assert p.energy("fmul", (16,)) == 1.1 and p.energy("fmul", (32,)) == 3.7
    assert p.area("fadd", (32,)) == 4184 and p.area("fmul", (32,)) == 7700 and p.area("fmul", (16,)) == 1640
    assert p.memory_energy("sram", "read", 32) == 5.0      # 32-bit read of an 8 KB SRAM
    assert p.memory_energy("dram", "read", 32) == 640.0    # 32-bit DRAM read
    for kind, w in (("add", (8,)), ("mul", (32, 32)), ("fmul", (16,))):
        assert p.price(kind, w).provenance == "table"


def test_widths_missing_from_the_table_use_the_qkeras_fit_and_are_labelled():
    p = H45
    m16 = p.price("mul", (16, 16))  # the table has no 16-bit integer multiply
    assert m16.provenance == "fit" and m16.value == pytest.approx(0.783, abs=5e-4)
    assert p.price("mul", (4, 4)).provenance == "fit"
    assert p.energy("add", (64,)) == pytest.approx(0.2)
    q = load_profile("qkeras_fit")
    for b, want in ((2, 0.014), (4, 0.052), (8, 0.200), (16, 0.783), (32, 3.1)):
        assert q.energy("mul", (b, b)) == pytest.approx(want, abs=6e-4)
        assert q.energy("add", (b,)) == pytest.approx(0.003125 * b, rel=1e-12)
    # a mixed a x b multiplier: c1 (a+b)/2 + c2 a b, the square fit when a == b
    assert q.energy("mul", (8, 4)) == pytest.approx(0.001041666667 * 6 + 0.002994791667 * 32)
    assert q.memory_energy("dram", "read", 1) == 20.3125


def test_aladdin40_figures_and_width_scaling():
    p = load_profile("aladdin40")
    assert p.energy("add", (32,)) == 0.21 and p.area("add", (32,)) == 278
    assert p.energy("mul", (32, 32)) == 12.68 and p.area("mul", (32, 32)) == 6350
    assert p.energy("compare", (32,)) == 0.0295 and p.area("compare", (32,)) == 71
    assert p.memory_energy("register_file", "read", 1) == 0.009  # register bit
    assert p.energy("add", (16,)) == pytest.approx(0.105)        # linear in width
    assert p.energy("mul", (16, 8)) == pytest.approx(12.68 * 128 / 1024)  # linear in a*b
    assert p.price("mul", (8, 8)).provenance == "scaled"
    with pytest.raises(ConfigError, match="op.fmul"):  # Aladdin has no floating-point unit
        p.energy("fmul", (32,))


def test_stillmaker_baas_scaling():
    s = H45.scaled(7, 0.8)
    assert s.energy("mul", (8, 8)) == pytest.approx(0.2 * 0.094)
    assert s.area("mul", (8, 8)) == pytest.approx(282 * 0.059)
    assert s.memory_energy("sram", "read", 8) == pytest.approx(1.25 * 0.094)
    assert s.memory_energy("dram", "read", 8) == 160.0  # off-chip: not scaled
    assert H45.scaled(7, 0.7).energy("add", (32,)) == pytest.approx(0.1 * 0.085)
    with pytest.raises(ConfigError, match="available: 7 nm at 0.7 V"):
        H45.scaled(7, 0.75)
    with pytest.raises(ConfigError, match="40 nm"):
        load_profile("aladdin40").scaled(7, 0.8)
    assert load_profile("aladdin40").scaled(7, energy_factor=0.5, area_factor=0.25).energy("add", (32,)) == 0.105


# ---------------------------------------------------------------------------------------------
# invalid user profiles: clear errors naming the file and the entry, non-zero CLI exit
# ---------------------------------------------------------------------------------------------


def _bad_profiles(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    d = _doc()
    del d["array"]["rows"]
    out["missing"] = (_write_toml(tmp_path / "missing.toml", d), "missing entry 'array.rows'")
    d = _doc()
    del d["op"]["mul"]
    out["missing_op"] = (_write_toml(tmp_path / "missing_op.toml", d), "missing entry 'op.mul'")
    d = _doc()
    d["op"]["add"]["energy_pj"]["points"]["8"] = -0.03
    out["negative"] = (_write_toml(tmp_path / "negative.toml", d), "negative energy in 'op.add.energy_pj.points.8'")
    d = _doc()
    d["memory"]["dram"]["read_pj_per_byte"] = -160.0
    out["negative_memory"] = (_write_toml(tmp_path / "negative_memory.toml", d),
                              "negative energy in 'memory.dram.read_pj_per_byte'")
    d = _doc()
    d["op"]["fdiv"] = {"energy_pj": {"points": {"32": 1.0}}}
    out["unknown"] = (_write_toml(tmp_path / "unknown.toml", d), "unknown operation kind 'op.fdiv'")
    d = _doc()
    d["op"]["mac"] = {"energy_pj": {"points": {"8": 0.3}}}
    out["mac"] = (_write_toml(tmp_path / "mac.toml", d), "a MAC is priced as op.mul + op.add")
    return out


def test_invalid_profiles_raise_config_errors_naming_file_and_entry(tmp_path):
    for path, msg in _bad_profiles(tmp_path).values():
        with pytest.raises(ConfigError) as exc:
            load_profile(path)
        assert msg in str(exc.value) and str(path) in str(exc.value)
    bad = tmp_path / "syntax.toml"
    bad.write_text("[array\nrows = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="not a built-in"):
        load_profile("no_such_profile")
    d = _doc()
    d["op"]["mul"]["energy_pj"]["fit"] = [0.0, -1.0]
    with pytest.raises(ConfigError, match="negative energy from 'op.mul.energy_pj.fit' at 1 bits"):
        parse_profile(d, "inline")


def test_a_valid_user_profile_round_trips(tmp_path):
    p = load_profile(_write_toml(tmp_path / "mine.toml", _doc()))
    assert p.energy("mul", (8, 8)) == 0.2 and p.array.rows == 16


def test_cli_exits_non_zero_on_an_invalid_profile(tmp_path, capsys):
    for key, (path, msg) in _bad_profiles(tmp_path).items():
        rc = main(["report", "cost", "--workload", "gemm:2x3x4", "--profile", str(path),
                   "--out", str(tmp_path / f"out_{key}"), "--no-plots"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err, (key, err)
        assert not (tmp_path / f"out_{key}").exists()


# ---------------------------------------------------------------------------------------------
# a 2x3x4 GEMM, pinned by hand
# ---------------------------------------------------------------------------------------------


def test_2x3x4_int8_gemm_counts_and_energy_by_hand():
    (step,) = build_steps(gemm_workload(2, 3, 4, data=False), get_method("int8", "fp32"))
    c = step.counts
    assert c == CostCounts({("mac", (8, 8, 32)): 24,        # 2*3*4 MACs
                            ("sram_read", (8,)): 6,          # A: 2x3 activations
                            ("dram_read", (8,)): 12,         # B: 3x4 weights
                            ("sram_write", (32,)): 8})       # 2x4 accumulators
    assert gemm_cycles(step.gemms[0], H45.array) == 3        # one 16x16 tile, K = 3 steps
    total = step_counts(step, H45)
    assert total["register_file_read", (8,)] == 48           # two operands per MAC
    assert total.total("sram_read") == 6                     # a single tile: no re-reads
    e = energy_by_component(total, H45)
    assert e["multipliers"] == pytest.approx(24 * 0.2)
    assert e["adders"] == pytest.approx(24 * 0.1)
    assert e["register_file"] == pytest.approx(48 * 0.072)
    assert e["sram"] == pytest.approx(6 * 1.25 + 8 * 4 * 1.25)
    assert e["dram"] == pytest.approx(12 * 160.0)
    row = cost_steps([step], H45).iloc[0]
    assert row.total_pj == pytest.approx(4.8 + 2.4 + 3.456 + 47.5 + 1920.0)
    assert row.array_cycles == 3 and row.array_utilization == pytest.approx(24 / (256 * 3))
    assert row.bops == 24 * 8 * 8


def test_2x3x4_matches_gemm_ops_and_float_methods():
    dp = Datapath(IntType(8), IntType(8), acc_bits=32)
    (step,) = build_steps(gemm_workload(2, 3, 4, data=False), get_method("int8", "fp32"))
    ops = gemm_ops(2, 3, 4, dp)
    assert step.counts.compute() == CostCounts.from_opcounts(ops).compute()
    assert step.counts.total("sram_read") + step.counts.total("dram_read") == ops.total("read")
    (f32,) = build_steps(gemm_workload(2, 3, 4, data=False), get_method("fp32"))
    e = energy_by_component(f32.counts, H45)
    assert f32.counts["fmac", (32,)] == 24
    assert e["multipliers"] == pytest.approx(24 * 3.7) and e["adders"] == pytest.approx(24 * 0.9)


def test_array_mapping_re_reads_on_a_small_array():
    d = _doc()
    d["array"]["rows"], d["array"]["cols"] = 1, 2
    p = parse_profile(d, "small")
    g = GemmShape(2, 3, 4, "INT8", "INT8", 32)
    assert gemm_cycles(g, p.array) == 2 * 2 * 3            # ceil(2/1) * ceil(4/2) tiles, 3 steps each
    c = array_counts(g, p.array)
    assert c["sram_read", (8,)] == 2 * 3 * (2 - 1) + 3 * 4 * (2 - 1)  # A once more per extra column tile, B per row


def test_qonnx_and_accelergy_exports_of_2x3x4():
    steps = build_steps(gemm_workload(2, 3, 4, data=False), get_method("int8", "fp32"))
    q = qonnx_cost(steps)
    assert q["op_mac_INT8_INT8"] == 24 and q["total_macs"] == 24 and q["total_bops"] == 24 * 64
    assert q["mem_w_INT8"] == 12 and q["total_mem_w_bits"] == 96
    assert q["mem_o_INT32"] == 8 and q["total_mem_o_bits"] == 256
    total = step_counts(steps[0], H45)
    ert = accelergy_ert_yaml(total, H45)
    assert "  - name: system.multiplier\n    actions:\n    - name: mul\n      arguments:\n        a_bits: 8\n" \
           "        b_bits: 8\n      energy: 0.2  # table" in ert
    ac = accelergy_action_counts_yaml(total, H45)
    assert "  - name: system.dram\n    action_counts:\n    - name: read\n      arguments:\n        bits: 8\n" \
           "      counts: 12" in ac


# ---------------------------------------------------------------------------------------------
# IM-Unpack: a GEMM with a known unpack ratio, and the fast counts against unpack_matmul
# ---------------------------------------------------------------------------------------------


def test_unpacked_gemm_with_known_ratio_by_hand():
    from intsim.hw.unpack import unpack_matmul, unpack_stats

    A = np.array([[9, 1], [2, 3]])   # at 4 bits (|x| < 8): 9 = 1 + 8*1 needs two digits
    B = np.array([[1, 2], [3, 4]])   # all in range
    st = unpack_stats(A, B, "row", "row", 4)
    assert st.unpacked_shape == (3, 2, 2) and st.ratio == 1.5 and st.n_gemms == 1  # row 0 split in two
    ops = unpack_gemm_counts(st, 4, 16)
    assert ops == OpCounts({("mac", (4, 4, 16)): 3 * 2 * 2,          # M'K'N'
                            ("read", (4,)): 3 * 2 + 2 * 2,           # A' and B'
                            ("write", (16,)): 3 * 2,                 # one low-bit GEMM over M' x N'
                            ("shift", (64,)): 3 * 2 - 2 * 2,         # the high row's terms are shifted ...
                            ("add", (64,)): 3 * 2 - 2 * 2})          # ... and added into their outputs
    r = unpack_matmul(A, B, Datapath(IntType(4), IntType(4), acc_bits=16), "row", "row")
    assert r.ops == ops and r.values.tolist() == (A @ B).tolist()


@pytest.mark.parametrize("strategy", ["row", "col", "both", "plan"])
@pytest.mark.parametrize("bits", [2, 4])
def test_fast_unpack_counts_equal_unpack_matmul(strategy, bits):
    from intsim.hw.unpack import unpack_matmul, unpack_stats

    rng = np.random.default_rng(bits * 10 + len(strategy))
    for _ in range(3):
        M, K, N = (int(v) for v in rng.integers(1, 7, size=3))
        A = np.clip(np.rint(rng.standard_t(3, size=(M, K)) * 12), -127, 127).astype(np.int64)
        B = np.clip(np.rint(rng.standard_t(3, size=(K, N)) * 12), -127, 127).astype(np.int64)
        st = unpack_stats(A, B, strategy, strategy, bits)
        r = unpack_matmul(A, B, Datapath(IntType(bits), IntType(bits), acc_bits=32), strategy, strategy)
        assert unpack_gemm_counts(st, bits, 32) == r.ops


def test_unpack_method_composes_on_a_single_gemm():
    w = gemm_workload(8, 16, 8, seed=3)
    steps = build_steps(w, get_method("unpack4-row", "fp32"))
    gemm, reasm = steps
    assert gemm.category == "gemm" and reasm.category == "reassembly"
    assert gemm.unpack_ratio == pytest.approx(gemm.gemms[0].macs / (8 * 16 * 8))
    assert gemm.counts["dram_read", (8,)] == 16 * 8          # the int8 weights, once
    assert reasm.counts.total("shift") == reasm.counts.total("add") > 0


# ---------------------------------------------------------------------------------------------
# one softmax row
# ---------------------------------------------------------------------------------------------


def test_float_softmax_row_by_hand():
    c = fo.softmax_row(4, 32)
    # fp32 exp: 1 + 5 fmul, 2 + 5 fadd, 1 exponent add; reciprocal: 2 Newton steps (4 fmul, 2 fadd) + lookup
    assert c == CostCounts({("fmul", (32,)): 4 + 4 * 6 + 4,        # normalize, 4 exps, reciprocal
                            ("fadd", (32,)): 3 + 4 + 3 + 4 * 7 + 2,  # max, subtract, sum, 4 exps, reciprocal
                            ("add", (8,)): 4, ("lut", (8,)): 1})
    assert fo.softmax_row(4, 16)["fmul", (16,)] == 4 + 4 * 4 + 2  # fp16: degree 3, one Newton step
    g = fo.gelu_elements(1, 32)
    assert g["fmul", (32,)] == 11 + 4 + 6 and g["fadd", (32,)] == 7 + 2 + 7


class _FakeNonlinear:
    """Stands in for an intsim.models.minilm non-linear family (the real I-BERT kernels take minutes to compile
    with numba on a cold cache; the whole-model report exercises them)."""

    description = "fake integer operators"

    def __init__(self):
        self.calls = []

    def _result(self, x, op):
        from intsim.regs.opresult import OpResult

        self.calls.append((op, x.shape, x.dtype.kind))
        ops = OpCounts().add("div", (48,), x.shape[0]).add("mul", (16, 32), x.size)
        return OpResult(values=np.zeros_like(x), ops=ops)

    def softmax(self, x, scale, out_bits, in_bits, overflow):
        assert (out_bits, in_bits) == (8, 32)
        return self._result(x, "softmax")

    def gelu(self, x, scale, in_bits, overflow):
        return self._result(x, "gelu")

    def layernorm(self, x, in_bits, shift, overflow):
        assert in_bits == 16
        return self._result(x, "layernorm")

    def layernorm_shift(self, max_var):
        return 0


def test_integer_softmax_row_step_is_the_operator_plus_its_memory(monkeypatch):
    import intsim.cost.methods as methods

    fake = _FakeNonlinear()
    monkeypatch.setattr(methods, "_integer_nonlinear", lambda name: fake)
    row = np.array([[0.5, -1.0, 2.0, 0.25]])
    sites = (VectorSite("L0.softmax", 0, "softmax", ((1, 4),), (row,)),
             VectorSite("L0.ln1", 0, "layernorm", ((1, 4),), (row,), params=8, int_outputs=(8, 16)))
    steps = build_steps(Workload("row", "one softmax row", sites), get_method("int8", "ibert"))
    assert [(s.op, s.category) for s in steps] == [("softmax", "nonlinear"), ("layernorm", "nonlinear"),
                                                   ("requant", "requant"), ("requant", "requant")]
    assert fake.calls == [("softmax", (1, 4), "i"), ("layernorm", (1, 4), "i")]
    op_counts = OpCounts().add("div", (48,), 1).add("mul", (16, 32), 4)
    # the operator's counts, its 4 int32 inputs read and 4 probabilities written (8 bits)
    assert steps[0].counts == CostCounts.from_opcounts(op_counts).add("sram_read", (32,), 4).add(
        "sram_write", (8,), 4)
    # LayerNorm: + the integer beta add per element (40 bits), the bias read, one requantization per consumer
    assert steps[1].counts == CostCounts.from_opcounts(op_counts).add("add", (40,), 4).add(
        "sram_read", (16,), 4).add("sram_write", (40,), 4).add("dram_read", (32,), 4)
    assert steps[2].counts.compute() == CostCounts.from_opcounts(requant_counts(4, 40, 8))
    assert steps[3].counts.compute() == CostCounts.from_opcounts(requant_counts(4, 40, 16))


# ---------------------------------------------------------------------------------------------
# composition: requantization, layer = sum of its steps, model = sum of its layers
# ---------------------------------------------------------------------------------------------


def test_requant_counts_are_those_of_requantize():
    from intsim.quant.requant import requantize

    r = requantize(np.zeros(7, np.int64), 0.01, out=IntType(8), in_type=IntType(32))
    assert requant_counts(7, 32, 8) == r.ops


@pytest.fixture(scope="module")
def two_sentences():
    from intsim.models.loading import minilm_dir

    try:
        minilm_dir()
    except Exception as exc:  # pragma: no cover - model package missing
        pytest.skip(str(exc))
    from intsim_reference.sentences import SENTENCES

    return [SENTENCES[0], SENTENCES[43]]


def test_layer_and_model_compose(two_sentences):
    from intsim.cost import minilm_layer_workload, minilm_workload

    methods = [get_method("fp32"), get_method("int8", "fp32"), get_method("unpack4-col", "fp32")]
    model = cost_workload(minilm_workload(two_sentences), H45, methods)
    layers = [cost_workload(minilm_layer_workload(i, two_sentences), H45, methods) for i in range(6)]
    for m in methods:
        assert model.counts(m.name) == sum((r.counts(m.name) for r in layers), CostCounts())
        steps = model.steps[m.name]
        assert model.counts(m.name) == sum((step_counts(s, H45) for s in steps), CostCounts())
        total = sum(energy_by_component(model.counts(m.name), H45).values())
        assert model.summary().loc[m.name, "total_pj"] == pytest.approx(total, rel=1e-12)
        assert math.fsum(r.summary().loc[m.name, "total_pj"] for r in layers) == pytest.approx(total, rel=1e-12)
    # int8 GEMM MACs of a layer by formula: 4 N d^2 + 2 N d f + 2 * 12 * sum(T^2 * 32)
    w = layers[0].workload
    lens = [p.M for s in w.sites if s.op == "scores" for p in s.parts][::12]
    N = sum(lens)
    want = 4 * N * 384 * 384 + 2 * N * 384 * 1536 + 2 * 12 * sum(T * T * 32 for T in lens)
    assert layers[0].summary().loc["int8", "macs"] == want == w.macs
    assert model.summary().loc["int8", "macs"] == 6 * want


def test_report_is_written_atomically_and_deterministically(tmp_path):
    out = tmp_path / "cost"
    args = ["report", "cost", "--workload", "gemm:4x8x4", "--methods", "fp32,fp16,int8,unpack4-row,unpack2-col",
            "--out", str(out)]
    assert main(args) == 0
    first = tmp_path / "first"
    out.rename(first)
    assert main(args) == 0
    a = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    b = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert a == b and {"README.md", "summary.csv", "energy_by_component.png", "unpack_ratio_vs_energy.png",
                       "accelergy/ERT.yaml"} <= {str(p) for p in a}
    for rel in a:
        assert (first / rel).read_bytes() == (out / rel).read_bytes(), rel
    assert main(args) == 2                 # refuses to overwrite ...
    assert main(args + ["--force"]) == 0   # ... unless forced
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "Cheapest under horowitz45: int8" in md
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_nonlinear_comparison_rows_per_family_and_the_old_names():
    import intsim.cost as cost
    from intsim.cost import nonlinear_comparison

    row = np.array([[0.5, -1.0, 2.0, 0.25]])
    w = Workload("row", "one softmax row", (VectorSite("L0.softmax", 0, "softmax", ((1, 4),), (row,)),))
    f = nonlinear_comparison(w, H45, nonlinear=["fp32", "int8+fp32"])
    assert list(f.columns[:3]) == ["nonlinear", "op", "elements"]
    assert f.nonlinear.tolist() == ["fp32", "fp32", "int8+fp32", "int8+fp32"]
    with pytest.warns(DeprecationWarning, match="nonlinear="):
        old = nonlinear_comparison(w, H45, profiles=["fp32", "int8+fp32"])
    assert old.equals(f)
    # the hardware energy/area table is a HardwareProfile; the old names stay for one release
    assert isinstance(H45, cost.HardwareProfile) and cost.Profile is cost.HardwareProfile
    assert cost.nonlinear_profiles is cost.nonlinear_families
    assert {"fp32", "fp16", "ibert"} <= set(cost.nonlinear_families())
    with pytest.raises(ConfigError, match="unknown non-linear family 'nope'"):
        build_steps(w, get_method("int8", "nope"))


def test_a_profile_without_float_units_lists_the_float_methods_as_not_priced(tmp_path):
    r = cost_workload(gemm_workload(2, 3, 4, data=False), load_profile("aladdin40"),
                      [get_method("fp32"), get_method("int8", "fp32")], skip_unpriceable=True)
    assert [m.name for m in r.methods] == ["int8"]
    assert r.skipped and r.skipped[0][0] == "fp32" and "has no entry op.f" in r.skipped[0][1]
    with pytest.raises(ConfigError, match=r"has no entry op\.f(add|mul)"):
        cost_workload(gemm_workload(2, 3, 4, data=False), load_profile("aladdin40"), [get_method("fp32")])


def test_scaled_profile_through_the_cli(tmp_path, capsys):
    out = tmp_path / "scaled"
    assert main(["report", "cost", "--workload", "gemm:2x3x4", "--methods", "int8", "--profile", "horowitz45",
                 "--scale-to", "7", "--voltage", "0.8", "--no-plots", "--out", str(out)]) == 0
    md = (out / "README.md").read_text(encoding="utf-8")
    assert "horowitz45@7nm-0.8V" in md and "Stillmaker & Baas (2017) factors: energy x0.094" in md
    assert main(["report", "cost", "--workload", "gemm:2x3x4", "--scale-to", "5", "--voltage", "0.8",
                 "--no-plots", "--out", str(tmp_path / "bad")]) == 2
    assert "no Stillmaker & Baas factor for 5.0 nm" in capsys.readouterr().err


def test_doctests_of_the_cost_modules():
    import doctest

    from intsim.cost import compare, counts, export, floatops, methods, model, profiles, workloads

    for mod in (counts, profiles, model, floatops, workloads, methods, compare, export):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0 and res.attempted > 0, mod.__name__


def test_report_cost_writes_into_an_empty_existing_directory(tmp_path):
    out = tmp_path / "cost"
    out.mkdir()
    assert main(["report", "cost", "--workload", "gemm:2x3x4", "--methods", "int8", "--no-plots", "--out",
                 str(out)]) == 0
    assert (out / "summary.csv").is_file()
    # the synthesis-grounded profile beside the literature ones, from the shipped gate counts
    readme = (out / "README.md").read_text()
    assert "## Hardware profiles side by side" in readme and "### Gate counts" in readme
    rank = pd.read_csv(out / "profiles_ranking.csv")
    assert set(rank.profile) == {"horowitz45", "qkeras_fit", "synth_generic"}
    cells = pd.read_csv(out / "synth_cells.csv")
    assert ((cells.unit == "mac") & (cells.bits == 8) & (cells.acc_bits == 32)).any()
    assert int(cells[(cells.unit == "mac") & (cells.bits == 8) & (cells.acc_bits == 32)].cells.iloc[0]) == 990
    out2 = tmp_path / "cost2"
    assert main(["report", "cost", "--workload", "gemm:2x3x4", "--methods", "int8", "--no-plots", "--no-profiles",
                 "--out", str(out2)]) == 0
    assert not (out2 / "profiles_ranking.csv").exists()


# ---------------------------------------------------------------------------------------------
# progress of the reports: one line per unit of work on stdout, -q/--quiet hides it
# ---------------------------------------------------------------------------------------------


def _progress_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[")]


def test_cost_report_progress_on_stdout_and_quiet(tmp_path, capsys):
    args = ["report", "cost", "--workload", "gemm:2x3x4", "--methods", "fp32,int8", "--no-plots"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    assert _progress_lines(cap.out) == ["[1/2] costing fp32 on gemm-2x3x4", "[2/2] costing int8 on gemm-2x3x4"]
    assert cap.err == "" and f"wrote 14 files to {tmp_path / 'a'}" in cap.out
    assert main(args + ["--out", str(tmp_path / "b"), "-q"]) == 0
    cap = capsys.readouterr()
    assert _progress_lines(cap.out) == [] and "building" not in cap.out and cap.err == ""
    assert "wrote 14 files" in cap.out and "int8" in cap.out  # the summary is still printed


def test_nonlinear_report_progress_on_stdout_and_quiet(tmp_path, capsys):
    args = ["report", "nonlinear", "--quick", "--operators", "requantize", "--no-plots"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    lines = _progress_lines(cap.out)
    assert len(lines) == 15 and lines[0].startswith("[1/15] requantize dyadic scale 0.375: max error ")
    assert lines[-1].startswith("[15/15] requantize ort_fp32 scale 0.0123: ") and cap.err == ""
    assert main(args + ["--out", str(tmp_path / "b"), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert _progress_lines(cap.out) == [] and "15 cases" in cap.out
    assert (tmp_path / "a" / "nonlinear.csv").read_bytes() == (tmp_path / "b" / "nonlinear.csv").read_bytes()


def test_unpack_report_progress_no_plots_and_quiet(tmp_path, capsys, monkeypatch):
    import intsim_reference.minilm
    from intsim_reference.minilm import GemmOperands

    rng = np.random.default_rng(5)
    ops = [GemmOperands(layer, name, rng.standard_normal((4, 8)), rng.standard_normal((8, 4)))
           for layer in range(2) for name in ("q_proj", "k_proj")]
    monkeypatch.setattr(intsim_reference.minilm, "capture_gemm_operands", lambda sentences, max_len=64: ops)
    args = ["report", "unpack", "--sentences", "1", "--bits", "4", "--no-plots"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    lines = [line.split(" (")[0] for line in _progress_lines(cap.out)]
    assert lines == ["[1/4] layer 0 q_proj: 1 GEMM", "[2/4] layer 0 k_proj: 1 GEMM", "[3/4] layer 1 q_proj: 1 GEMM",
                     "[4/4] layer 1 k_proj: 1 GEMM"]
    assert cap.err == "" and f"wrote {tmp_path / 'a'}" in cap.out
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if not p.name.startswith("."))
    assert files == ["README.md", "accuracy.csv", "aggregate.csv", "gemms.csv"]  # no PNG
    assert "ratio_vs_bits.png" not in (tmp_path / "a" / "README.md").read_text(encoding="utf-8")
    assert main(args + ["--out", str(tmp_path / "b"), "-q"]) == 0
    cap = capsys.readouterr()
    assert _progress_lines(cap.out) == [] and "captured" not in cap.out and f"wrote {tmp_path / 'b'}" in cap.out
    for name in ("gemms.csv", "aggregate.csv", "accuracy.csv", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
