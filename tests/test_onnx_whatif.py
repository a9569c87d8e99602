"""`intsim onnx run`: what-if runs of quantized ONNX models (other accumulators, IM-Unpack,
integer-only non-linear operators), compared with ONNX Runtime and float."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper  # noqa: E402
from onnx_models import save_graph  # noqa: E402

from intsim.apps.cli import main as cli_main  # noqa: E402
from intsim.core.errors import AccumulatorOverflow, ConfigError  # noqa: E402
from intsim.onnx import load_model  # noqa: E402
from intsim.onnx.whatif import WhatIf, optimized_model, run_whatif  # noqa: E402

D, H = 32, 48


def _block(path):
    """x (N, T, D) -> LayerNorm(x + softmax(x Wq (x Wk)^T) x Wv) -> GELU(. W1) W2: one small
    Transformer-like block with every non-linear operator the what-if can replace."""
    rng = np.random.default_rng(5)
    w = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    inits = {"Wq": w(D, D), "Wk": w(D, D), "Wv": w(D, D), "W1": w(D, H), "W2": w(H, D),
             "gamma": (1 + 0.1 * rng.standard_normal(D)).astype(np.float32),
             "beta": (0.1 * rng.standard_normal(D)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "Wq"], ["q"], name="q_proj"),
             helper.make_node("MatMul", ["x", "Wk"], ["k"], name="k_proj"),
             helper.make_node("MatMul", ["x", "Wv"], ["v"], name="v_proj"),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_t"),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="softmax"),
             helper.make_node("MatMul", ["p", "v"], ["c"], name="context"),
             helper.make_node("Add", ["c", "x"], ["r"], name="residual"),
             helper.make_node("LayerNormalization", ["r", "gamma", "beta"], ["n"], axis=-1, name="ln"),
             helper.make_node("MatMul", ["n", "W1"], ["u"], name="ffn_up"),
             helper.make_node("Gelu", ["u"], ["g"], name="gelu"),
             helper.make_node("MatMul", ["g", "W2"], ["y"], name="ffn_down")]
    return save_graph(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", D])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", D])], inits, opset=20)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    tmp = tmp_path_factory.mktemp("whatif")
    fp = _block(tmp / "block.onnx")
    dyn = tmp / "block_dyn.onnx"
    quantization.quantize_dynamic(str(fp), str(dyn), weight_type=quantization.QuantType.QInt8)
    return {"float": fp, "dynamic": dyn}


@pytest.fixture(scope="module")
def feeds():
    rng = np.random.default_rng(7)  # disjoint from the calibration seed
    return {"x": (rng.standard_normal((2, 9, D)) * 1.3).astype(np.float32)}


def test_the_unchanged_datapath_reproduces_onnxruntime(models, feeds):
    res = run_whatif(optimized_model(models["dynamic"]), feeds, WhatIf())
    assert res.gemms and res.n_overflow == 0
    assert res.against_ort and all(t.n_differ == 0 for t in res.against_ort), res.against_ort
    assert res.unpack_ratio is None


def test_im_unpack_on_4_bit_multipliers_is_exact(models, feeds):
    res = run_whatif(optimized_model(models["dynamic"]), feeds, WhatIf(unpack_bits=4))
    assert res.n_overflow == 0
    assert all(t.n_differ == 0 for t in res.against_ort)  # exact: every tensor as ONNX Runtime's
    assert all(g.method == "unpack4" for g in res.gemms)
    assert res.unpack_ratio is not None and res.unpack_ratio > 1.0
    assert any(k == "mac" and w[:2] == (4, 4) for (k, w), _ in res.ops.items())


def test_narrow_saturating_accumulators_diverge_and_say_where(models, feeds):
    res = run_whatif(optimized_model(models["dynamic"]), feeds, WhatIf(acc_bits=12, overflow="saturate"))
    assert res.n_overflow > 0
    first = next(g for g in res.gemms if g.n_overflow)
    assert first.first_overflow is not None and len(first.first_overflow) == 4
    assert any(t.n_differ > 0 for t in res.against_ort)
    with pytest.raises(AccumulatorOverflow, match="node"):
        run_whatif(optimized_model(models["dynamic"]), feeds, WhatIf(acc_bits=12, overflow="raise"))


def test_vpmaddubsw_saturates_pair_sums_of_the_raw_operands(models, feeds):
    """uint8 activations x int8 weights as MLAS computes them without VNNI: the raw operands' pair
    sums saturate at int16 (large activations meet large weights of the same sign)."""
    model = optimized_model(models["dynamic"])
    big = {"x": feeds["x"] * np.float32(4)}  # wider activations: the uint8 codes reach both ends
    res = run_whatif(model, big, WhatIf(vpmaddubsw=True))
    assert res.gemms and all(g.method == "vpmaddubsw" for g in res.gemms)
    assert res.n_overflow > 0  # saturated pair sums, counted per output
    first = next(g for g in res.gemms if g.n_overflow)
    assert first.first_overflow is not None
    assert any(t.n_differ for t in res.against_ort)  # and they change the results
    exact = run_whatif(model, big, WhatIf())
    assert exact.n_overflow == 0 and all(t.n_differ == 0 for t in exact.against_ort)
    with pytest.raises(ConfigError):
        WhatIf(vpmaddubsw=True, unpack_bits=4)


@pytest.mark.parametrize("family", ["ibert", "ivit-corrected", "illm"])
def test_integer_only_nonlinear_operators_replace_the_float_ones(models, feeds, family):
    model = load_model(models["dynamic"])  # as written: Softmax, LayerNormalization and Gelu in float
    res = run_whatif(model, feeds, WhatIf(nonlinear=family), float_model=load_model(models["float"]))
    assert sorted(r.op_type for r in res.replacements) == ["Gelu", "LayerNormalization", "Softmax"]
    assert all(r.family == family and r.ops for r in res.replacements)
    y = next(t for t in res.against_ort if t.name == "y")
    assert y.n_differ > 0 and y.rel_rms < 0.1  # close to ONNX Runtime's, not equal
    vs_float = {t.name: t for t in res.against_float}  # the output and the float tensors both graphs name
    assert vs_float["y"].rel_rms < 0.15 and {"p", "n", "g"} <= set(vs_float)


def test_bad_what_ifs_are_refused():
    for kw in ({"acc_bits": 1}, {"overflow": "clip"}, {"unpack_bits": 1}, {"strategy_a": "diagonal"},
               {"nonlinear": "sigmoid"}, {"nonlinear_bits": 2}):
        with pytest.raises(ConfigError):
            WhatIf(**kw)


def test_the_command_line_prints_and_writes_the_what_if(models, feeds, tmp_path, capsys):
    np.savez(tmp_path / "feeds.npz", **feeds)
    out = tmp_path / "whatif"
    rc = cli_main(["onnx", "run", str(models["dynamic"]), "--inputs", str(tmp_path / "feeds.npz"),
                   "--unpack-bits", "4", "--float-model", str(models["float"]), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "IM-Unpack on 4-bit multipliers" in text and "unpack ratio" in text and "Energy" in text
    assert {p.name for p in out.iterdir()} >= {"what-if.md", "tensors.csv", "gemms.csv", "energy.csv"}
    rc = cli_main(["onnx", "run", str(models["dynamic"]), "--inputs", str(tmp_path / "feeds.npz"),
                   "--strategy", "row"])
    assert rc == 2 and "--strategy" in capsys.readouterr().err


def test_report_cost_on_the_integer_gemms_of_an_onnx_model(models, feeds, tmp_path, capsys):
    """``report cost --workload onnx:MODEL,FEEDS``: one site per integer GEMM node, its operands the run's."""
    from intsim.cost.workloads import parse_workload

    np.savez(tmp_path / "feeds.npz", **feeds)
    w = parse_workload(f"onnx:{models['dynamic']},{tmp_path / 'feeds.npz'}")
    res = run_whatif(optimized_model(models["dynamic"]), feeds, WhatIf(), compare=False)
    assert [s.macs for s in w.sites] == [g.shape[0] * g.shape[1] * g.shape[2] * g.count for g in res.gemms]
    assert all(s.weight for s in w.sites) and all(p.a is not None for s in w.sites for p in s.parts)
    out = tmp_path / "cost"
    rc = cli_main(["report", "cost", "--workload", f"onnx:{models['dynamic']},{tmp_path / 'feeds.npz'}",
                   "--no-profiles", "--no-plots", "-q", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "onnx-block_dyn" in (out / "README.md").read_text()
    with pytest.raises(ConfigError, match="onnx:"):
        parse_workload(f"onnx:{models['dynamic']}")
    with pytest.raises(ConfigError, match="no integer GEMM"):
        parse_workload(f"onnx:{models['float']},{tmp_path / 'feeds.npz'}")


def test_an_unpack_sweep_over_the_integer_gemms_of_an_onnx_model(models, feeds, tmp_path, capsys):
    """``intsim sweep`` with an ``[onnx]`` table: one point per GEMM node x bit-width x strategy, the
    figures those of the node's zero-point-free integer operands; bad tables exit 2."""
    import pandas as pd

    from intsim.cost.workloads import onnx_workload
    from intsim.hw.unpack import compare_strategies

    np.savez(tmp_path / "feeds.npz", **feeds)
    spec = tmp_path / "spec.toml"
    head = f'[sweep]\nkind = "unpack"\n[onnx]\nmodel = "{models["dynamic"]}"\ninputs = "feeds.npz"\n'
    spec.write_text(head + '[grid]\nbits = [2, 4]\nstrategy = ["row", "plan"]\n')
    out = tmp_path / "out"
    assert cli_main(["sweep", str(spec), "--out", str(out), "--workers", "1", "-q", "--no-plots"]) == 0
    rows = pd.read_parquet(out / "results.parquet")
    sites = onnx_workload(models["dynamic"], tmp_path / "feeds.npz").sites
    names = [s.name.rsplit(" (", 1)[0] for s in sites]
    assert list(rows.gemm.unique()) == names and len(rows) == 4 * len(names)
    assert "percentile" not in rows and "sentences" not in rows
    for site, name in zip(sites, names, strict=True):
        for b in (2, 4):
            got = rows[(rows.gemm == name) & (rows.bits == b) & (rows.strategy == "plan")].iloc[0]
            want = sum(compare_strategies(p.a.astype(np.int64), p.b.astype(np.int64), b, strategies=("plan",))
                       ["plan"].work for p in site.parts)
            assert got.unpacked_macs == want and got.macs == site.macs
    assert rows[rows.bits == 2].unpack_ratio.min() > 1.0  # int8 operands do not fit 2-bit multipliers
    for extra, needle in [('[[gemm]]\nname = "g"\na = "a.npy"\nb = "b.npy"\n', "not both"),
                          ("[grid]\npercentile = 0.9\n", "grid.percentile"), ('[grid]\ngemm = "x"\n', "unknown GEMM")]:
        spec.write_text(head + extra)
        capsys.readouterr()
        assert cli_main(["sweep", str(spec), "--out", str(tmp_path / "o2"), "-q"]) == 2
        assert needle in capsys.readouterr().err
    spec.write_text(f'[sweep]\nkind = "unpack"\n[onnx]\nmodel = "{models["dynamic"]}"\n')
    assert cli_main(["sweep", str(spec), "--out", str(tmp_path / "o3"), "-q"]) == 2
    assert "model (.onnx) and inputs" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_text("not a model")
    (tmp_path / "a_dir").mkdir()
    for model, inputs, needle in [("junk.onnx", "feeds.npz", "not a readable ONNX model"),
                                  (models["dynamic"], "a_dir", f"inputs: {tmp_path / 'a_dir'}: not a regular file")]:
        spec.write_text(f'[sweep]\nkind = "unpack"\n[onnx]\nmodel = "{model}"\ninputs = "{inputs}"\n')
        assert cli_main(["sweep", str(spec), "--out", str(tmp_path / "o4"), "-q"]) == 2
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "o4").exists()
