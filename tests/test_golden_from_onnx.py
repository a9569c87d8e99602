"""`intsim golden from-onnx`: a golden suite of the integer kernels a quantized ONNX model runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper  # noqa: E402
from onnx_models import calibration_reader, random_feeds, save_graph  # noqa: E402

from intsim.apps.cli import main as cli_main  # noqa: E402
from intsim.core.errors import ConfigError  # noqa: E402
from intsim.golden import verify_suite  # noqa: E402
from intsim.golden.from_onnx import suite_from_onnx  # noqa: E402
from intsim.golden.suite import load_suite  # noqa: E402
from intsim.onnx import run_model  # noqa: E402
from intsim.onnx.check import run_ort  # noqa: E402
from intsim.onnx.whatif import optimized_model  # noqa: E402

D, H = 20, 36


def _model(path):
    """x (N, T, D): scores = (x Wq)(x Wk)^T, y = relu(scores (x Wv)) W1 (batched and 2-D GEMMs)."""
    rng = np.random.default_rng(3)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    inits = {"Wq": w(D, D), "Wk": w(D, D), "Wv": w(D, D), "W1": w(D, H)}
    nodes = [helper.make_node("MatMul", ["x", "Wq"], ["q"], name="q_proj"),
             helper.make_node("MatMul", ["x", "Wk"], ["k"], name="k_proj"),
             helper.make_node("MatMul", ["x", "Wv"], ["v"], name="v_proj"),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_t"),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
             helper.make_node("MatMul", ["s", "v"], ["c"], name="context"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "W1"], ["y"], name="ffn")]
    return save_graph(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", D])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", H])], inits)


def _calibration():
    return calibration_reader(random_feeds((2, 5, D), 6, 99))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    tmp = tmp_path_factory.mktemp("from_onnx")
    fp = _model(tmp / "float.onnx")
    static = tmp / "static.onnx"
    quantization.quantize_static(str(fp), str(static), _calibration(), quant_format=quantization.QuantFormat.QOperator,
                                 weight_type=quantization.QuantType.QInt8, per_channel=True)
    dyn = tmp / "dynamic.onnx"
    quantization.quantize_dynamic(str(fp), str(dyn), weight_type=quantization.QuantType.QInt8)
    return {"float": fp, "static": static, "dynamic": dyn}


@pytest.fixture(scope="module")
def feeds():
    rng = np.random.default_rng(4)
    return {"x": (rng.standard_normal((3, 7, D)) * 1.2).astype(np.float32)}


@pytest.mark.parametrize("form", ["static", "dynamic"])
def test_a_suite_from_a_quantized_model_verifies(models, feeds, form, tmp_path):
    out = tmp_path / "suite"
    rep = suite_from_onnx(models[form], feeds, out)
    suite = load_suite(out)
    kinds = [c.record["operator"] for c in suite.cases]
    assert rep.cases == len(suite.cases) and "matmul" in kinds
    if form == "static":  # every QLinearMatMul is a GEMM and a requantization
        assert kinds.count("requantize") == kinds.count("matmul") == 6  # q, k, v, scores, context, ffn
    res = verify_suite(out)
    assert res.ok, res
    man = json.loads((out / "manifest.json").read_text())
    files = [i for c in man["cases"] for i in c["inputs"].values()]
    assert files and all(i["dist"] == "file" and len(i["sha256"]) == 64 for i in files)


def test_requantize_cases_reproduce_onnxruntime_bit_for_bit(models, feeds, tmp_path):
    """The final QLinearMatMul's requantized output, as ONNX Runtime computes it, is a case output."""
    out = tmp_path / "suite"
    suite_from_onnx(models["static"], feeds, out)
    model = optimized_model(models["static"])
    node = next(n for n in model.graph.node if n.op_type == "QLinearMatMul" and n.name.startswith("ffn"))
    dtype = run_model(model, feeds).tensors[node.output[0]].dtype
    ref = run_ort(model, feeds, extra_outputs={node.output[0]: dtype})[node.output[0]]
    suite = load_suite(out)
    case = next(c for c in suite.cases if c.name.startswith(node.name) and c.name.endswith("requant"))
    (decl, npy, hx), = case.of_role("output")
    assert np.array_equal(suite.tensor(decl, npy, hx), ref.reshape(-1, ref.shape[-1]))  # every row: one product


def test_max_slices_writes_one_case_per_batch_slice(models, feeds, tmp_path):
    """The attention products (QLinearMatMul of two activations) are batched; the linear layers
    (a 2-D weight) are one product each, every leading axis of A as rows, as ONNX Runtime runs them."""
    one = suite_from_onnx(models["static"], feeds, tmp_path / "a")
    three = suite_from_onnx(models["static"], feeds, tmp_path / "b", max_slices=3)
    assert one.cases == 12  # q, k, v, scores, context, ffn: a matmul and a requantize each
    assert three.cases == one.cases + 2 * 2 * 2  # scores and context: 2 more slices, a matmul and a requantize
    with pytest.raises(ConfigError):
        suite_from_onnx(models["dynamic"], feeds, tmp_path / "c", max_slices=0)


def test_a_float_model_has_nothing_to_write(models, feeds, tmp_path):
    with pytest.raises(ConfigError, match="no integer GEMM"):
        suite_from_onnx(models["float"], feeds, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_command_line(models, feeds, tmp_path, capsys):
    np.savez(tmp_path / "feeds.npz", **feeds)
    rc = cli_main(["golden", "from-onnx", str(models["static"]), "--inputs", str(tmp_path / "feeds.npz"),
                   "--out", str(tmp_path / "s")])
    assert rc == 0 and "case(s)" in capsys.readouterr().out
    assert cli_main(["golden", "verify", str(tmp_path / "s")]) == 0
    rc = cli_main(["golden", "from-onnx", str(models["static"]), "--inputs", str(tmp_path / "feeds.npz"),
                   "--out", str(tmp_path / "s")])
    assert rc == 2 and "--force" in capsys.readouterr().err  # never replaces without --force
    np.savez(tmp_path / "bad.npz", y=feeds["x"])
    rc = cli_main(["golden", "from-onnx", str(models["static"]), "--inputs", str(tmp_path / "bad.npz"),
                   "--out", str(tmp_path / "t")])
    assert rc == 2 and not (tmp_path / "t").exists()
