"""intsim.onnx: quantized ONNX models run bit for bit against ONNX Runtime (CPU), and the errors."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_models import calibration_reader, random_feeds, save_graph  # noqa: E402

from intsim import Datapath, IntType, OperandRangeError  # noqa: E402
from intsim.core.errors import ConfigError, DTypeError, FileFormatError, ShapeError  # noqa: E402
from intsim.onnx import (  # noqa: E402
    check_against_ort,
    load_model,
    run_model,
    supported_ops,
    ulp_distance,
)
from intsim.onnx.check import run_ort  # noqa: E402

D, H, O = 24, 40, 12  # MLP widths (not multiples of the SIMD widths: the kernels' tails run too)


def _save(tmp, name, nodes, inputs, outputs, inits, opset=17):
    return save_graph(tmp / f"{name}.onnx", nodes, inputs, outputs, inits, opset=opset)


def _mlp(tmp):
    rng = np.random.default_rng(11)
    inits = {"W1": (rng.standard_normal((D, H)) * 0.3).astype(np.float32),
             "b1": (rng.standard_normal(H) * 0.1).astype(np.float32),
             "W2": (rng.standard_normal((H, O)) * 0.3).astype(np.float32),
             "b2": (rng.standard_normal(O) * 0.1).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
             helper.make_node("MatMul", ["h2", "W2"], ["y0"], name="fc2"),
             helper.make_node("Add", ["y0", "b2"], ["y"], name="fc2_bias")]
    return _save(tmp, "mlp", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", O])], inits)


def _attention(tmp):
    """One attention head and its output projection: x (N, T, E) -> softmax(q k^T / sqrt(E)) v Wo + x."""
    E = 16
    rng = np.random.default_rng(12)
    inits = {n: (rng.standard_normal((E, E)) * 0.25).astype(np.float32) for n in ("Wq", "Wk", "Wv", "Wo")}
    inits["scale"] = np.array(1 / np.sqrt(E), dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["x", "Wq"], ["q"], name="q_proj"),
             helper.make_node("MatMul", ["x", "Wk"], ["k"], name="k_proj"),
             helper.make_node("MatMul", ["x", "Wv"], ["v"], name="v_proj"),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_t"),
             helper.make_node("MatMul", ["q", "kt"], ["s0"], name="scores"),
             helper.make_node("Mul", ["s0", "scale"], ["s1"], name="scale"),
             helper.make_node("Softmax", ["s1"], ["p"], axis=-1, name="softmax"),
             helper.make_node("MatMul", ["p", "v"], ["ctx"], name="context"),
             helper.make_node("MatMul", ["ctx", "Wo"], ["o"], name="o_proj"),
             helper.make_node("Add", ["o", "x"], ["y"], name="residual")]
    return _save(tmp, "attention", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", E])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", E])], inits)


def _calibration(shape):
    """Calibration feeds from a seed of their own (the test feeds use other seeds)."""
    return calibration_reader(random_feeds(shape, 8, 1000))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    tmp = tmp_path_factory.mktemp("onnx")
    out = {"mlp": _mlp(tmp), "attention": _attention(tmp)}
    Q = quantization.QuantType
    for w in ("u8", "s8"):
        p = tmp / f"mlp_dyn_{w}.onnx"
        quantization.quantize_dynamic(str(out["mlp"]), str(p), weight_type=Q.QUInt8 if w == "u8" else Q.QInt8)
        out[f"mlp_dyn_{w}"] = p
    for act in ("u8", "s8"):
        for pc in (False, True):
            p = tmp / f"mlp_static_{act}_{'pc' if pc else 'pt'}.onnx"
            quantization.quantize_static(str(out["mlp"]), str(p), _calibration((4, D)),
                                         quant_format=quantization.QuantFormat.QOperator,
                                         activation_type=Q.QUInt8 if act == "u8" else Q.QInt8,
                                         weight_type=Q.QInt8, per_channel=pc)
            out[p.stem] = p
    p = tmp / "attention_dyn_s8.onnx"
    quantization.quantize_dynamic(str(out["attention"]), str(p), weight_type=Q.QInt8)
    out["attention_dyn_s8"] = p
    p = tmp / "attention_static_u8.onnx"
    quantization.quantize_static(str(out["attention"]), str(p), _calibration((2, 6, 16)),
                                 quant_format=quantization.QuantFormat.QOperator, weight_type=Q.QInt8,
                                 op_types_to_quantize=["MatMul", "Add", "Mul"])  # QLinearSoftmax: not supported
    out["attention_static_u8"] = p
    return out


def _feeds(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 1.5
    x.reshape(-1)[:3] = [0.0, -4.0, 5.0]  # a zero and values beyond the calibration range (saturation)
    return {"x": x}


QUANTIZED_MLPS = ["mlp_dyn_u8", "mlp_dyn_s8", "mlp_static_u8_pt", "mlp_static_u8_pc", "mlp_static_s8_pt",
                  "mlp_static_s8_pc"]


@pytest.mark.parametrize("mode", ["disabled", "enabled"])
@pytest.mark.parametrize("name", QUANTIZED_MLPS)
def test_quantized_mlp_is_bit_identical_to_onnxruntime(models, name, mode):
    for seed, n in ((1, 5), (2, 33)):
        rep = check_against_ort(models[name], _feeds((n, D), seed), optimization=mode)
        assert rep.ok, rep.table()
        assert all(t.ok for t in rep.tensors), rep.table(all_rows=True)  # float intermediates too
        assert rep.gemms and all(g.n_overflow == 0 for g in rep.gemms)
        if mode == "disabled":  # every node output was compared, not only the graph output
            assert len(rep.tensors) > 5


def test_quantized_graphs_hold_the_operators_under_test(models):
    ops = lambda name: {n.op_type for n in load_model(models[name]).graph.node}  # noqa: E731
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops("mlp_dyn_s8")
    assert {"QuantizeLinear", "QLinearMatMul", "QLinearAdd", "DequantizeLinear"} <= ops("mlp_static_u8_pt")
    w = {t.name: numpy_helper.to_array(t) for t in load_model(models["mlp_static_s8_pc"]).graph.initializer}
    assert any(k.endswith("scale") and v.size == H for k, v in w.items())  # per-channel weight scales
    w = {t.name: numpy_helper.to_array(t) for t in load_model(models["mlp_static_s8_pt"]).graph.initializer}
    assert {v.dtype for k, v in w.items() if k.endswith("zero_point")} == {np.dtype(np.int8)}


def test_optimized_graph_is_the_fused_one(models, tmp_path):
    """With default optimizations ONNX Runtime fuses the dynamic quantization into
    DynamicQuantizeMatMul; intsim runs that fused graph, bit-identically."""
    rep = check_against_ort(models["mlp_dyn_u8"], _feeds((3, D), 4), optimization="enabled")
    assert "DynamicQuantizeMatMul" in rep.ops and "MatMulInteger" not in rep.ops
    assert rep.ok, rep.table()


@pytest.mark.parametrize(("name", "mode"), [("attention_dyn_s8", "disabled"), ("attention_dyn_s8", "enabled"),
                                           ("attention_static_u8", "disabled")])
def test_quantized_attention_integer_tensors_are_bit_identical(models, name, mode):
    """The integer tensors (every GEMM, every quantization) are bit-identical; the float tensors after a
    float MatMul may differ in the last bits (numpy's BLAS, not MLAS's SGEMM).
    (With optimizations enabled the static model's Softmax becomes QLinearSoftmax: not supported.)"""
    rep = check_against_ort(models[name], _feeds((2, 6, 16), 5), optimization=mode)
    if mode == "enabled":  # the fused graph: MatMulIntegerToFloat sharing one DynamicQuantizeLinear, FusedMatMul
        assert {"MatMulIntegerToFloat", "DynamicQuantizeMatMul", "FusedMatMul"} <= set(rep.ops)
    else:
        assert rep.ok, rep.table()  # the graph output is bit-identical: the quantization after Softmax absorbs it
    ints = [t for t in rep.tensors if np.dtype(t.dtype).kind in "iu"]
    assert len(ints) >= 2 and all(t.ok for t in ints), rep.table()
    floats = [t for t in rep.tensors if t.max_ulp is not None]
    before_softmax = [t for t in floats if t.name in ("s0", "s1") or "scores" in t.name]
    assert all(t.ok for t in before_softmax), rep.table(all_rows=True)
    assert max(t.max_ulp for t in floats) < 2**23  # same magnitude wherever the bits differ


def _approx_model(tmp):
    """A float ReduceSum over axes that make five runs (R K R K R): intsim adds in numpy's order, not
    ONNX Runtime's (a float operator intsim still computes differently from ONNX Runtime)."""
    axes = np.array([0, 2, 4], np.int64)
    return _save(tmp, "approx", [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0, name="rsum")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 3, 64, 2, 64])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])], {"axes": axes})


def _approx_feeds():
    return {"x": np.random.default_rng(14).random((16, 3, 64, 2, 64), dtype=np.float32)}


def test_float_approximations_are_reported_in_ulp(tmp_path):
    """A float operator intsim computes in another summation order (ReduceSum over five runs of
    axes: numpy's order, not ONNX Runtime's) differs in the last bits, which the check reports (and
    counts against the verdict, as a graph output). (MatMul, Gemm, Conv, Tanh, Erf, Softmax... are
    bit-exact: tests/test_onnx_float_exact.py, tests/test_onnx_conv.py.)"""
    rep = check_against_ort(_approx_model(tmp_path), _approx_feeds(), optimization="disabled")
    (y,) = rep.tensors
    assert y.decides and not y.ok and not rep.ok
    assert 0 < y.max_ulp < 2**10
    assert y.first is not None and y.intsim_value != y.ort_value
    assert "max ULP" in rep.table() and "FAIL" in rep.table()


def test_float_elementwise_operators_are_bit_identical(models):
    """Add, Relu (and here MatMul too: at these sizes numpy's and MLAS's float32 sums agree) in the
    float MLP; the Add and Relu results must agree bit for bit whatever the MatMul does."""
    rep = check_against_ort(models["mlp"], _feeds((5, D), 6), optimization="disabled")
    by = {t.name: t for t in rep.tensors}
    assert set(by) == {"h0", "h1", "h2", "y0", "y"}
    if by["h0"].ok:
        assert by["h1"].ok and by["h2"].ok
    assert by["h2"].decides is False and by["y"].decides is True


def test_run_model_exposes_tensors_and_the_datapath(models):
    model = load_model(models["mlp_dyn_s8"])
    feeds = _feeds((4, D), 7)
    res = run_model(model, feeds)
    ref = run_ort(model, feeds)
    np.testing.assert_array_equal(res.outputs["y"].view(np.uint32), ref["y"].view(np.uint32))
    assert {g.shape for g in res.gemms} == {(4, D, H), (4, H, O)}
    acc = [k for k, v in res.tensors.items() if v.dtype == np.int32]
    assert len(acc) == 2
    # the zero-point-free operands need 9 bits: an 8-bit datapath refuses them
    with pytest.raises(OperandRangeError):
        run_model(model, feeds, datapath=Datapath(a=IntType(8), b=IntType(8)))


def test_ulp_distance():
    a = np.array([1.0, -0.0, 1.0, -1.0, np.nan], dtype=np.float32)
    b = np.array([np.nextafter(np.float32(1), np.float32(2)), 0.0, 1.0, np.float32(-1) - np.float32(2**-23), 1],
                 dtype=np.float32)
    assert ulp_distance(a, b).tolist()[:4] == [1, 0, 0, 1]
    assert ulp_distance(a, b)[4] == np.iinfo(np.int64).max
    assert ulp_distance(np.float32([-1e-45]), np.float32([1e-45]))[0] == 2


# -- errors ----------------------------------------------------------------------------------------------


def test_unsupported_operator_names_the_node(tmp_path):
    p = _save(tmp_path, "lrn", [helper.make_node("LRN", ["x"], ["y"], size=3, name="my_lrn")],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])], {})
    with pytest.raises(ConfigError, match=r"'my_lrn'.*'LRN'.*'ai\.onnx'.*supported: .*QLinearMatMul"):
        run_model(load_model(p), {"x": np.zeros((1, 3, 4, 4), np.float32)})
    assert "com.microsoft:DynamicQuantizeMatMul" in supported_ops()


def test_model_failing_the_checker(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "bad",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.graph.node[0].input[0] = "nowhere"  # an input nothing produces
    p = tmp_path / "bad.onnx"
    onnx.save(m, str(p))
    with pytest.raises(FileFormatError, match=r"bad\.onnx.*onnx\.checker"):
        load_model(p)
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a model")
    with pytest.raises(FileFormatError, match="junk.onnx"):
        load_model(tmp_path / "junk.onnx")
    with pytest.raises(FileFormatError, match="no such"):
        load_model(tmp_path / "absent.onnx")


def test_missing_external_data(tmp_path, models):
    m = onnx.load(str(models["mlp"]))
    p = tmp_path / "ext.onnx"
    onnx.save_model(m, str(p), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
                    size_threshold=0)
    model = load_model(p)  # loads with its data
    assert {t.name for t in model.graph.initializer} == {"W1", "b1", "W2", "b2"}
    (tmp_path / "ext.data").unlink()
    with pytest.raises(FileFormatError, match=r"external data of tensor 'W1'.*ext\.data"):
        load_model(p)


def test_bad_feeds_name_the_input(models):
    path = models["mlp_dyn_u8"]
    x = _feeds((3, D), 8)["x"]
    with pytest.raises(ConfigError, match="'z' is not an input.*x"):
        check_against_ort(path, {"x": x, "z": x})
    with pytest.raises(ConfigError, match="'x' is not fed"):
        check_against_ort(path, {})
    with pytest.raises(DTypeError, match="'x' has dtype float64"):
        check_against_ort(path, {"x": x.astype(np.float64)})
    with pytest.raises(ShapeError, match=f"'x' has length {D + 1} along axis 1.*declares {D}"):
        check_against_ort(path, {"x": np.zeros((3, D + 1), np.float32)})
    with pytest.raises(ShapeError, match="'x'.*rank 3"):
        check_against_ort(path, {"x": np.zeros((1, 3, D), np.float32)})
    with pytest.raises(ConfigError, match="unknown optimization"):
        check_against_ort(path, {"x": x}, optimization="fast")


# -- command line ----------------------------------------------------------------------------------------


def test_cli_exit_status(models, tmp_path, capsys):
    from intsim.apps.onnx_cli import main

    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, **_feeds((6, D), 9))
    assert main(["onnx", "check", str(models["mlp_static_u8_pc"]), "--inputs", str(feeds)]) == 0
    out = capsys.readouterr().out
    assert "optimizations disabled" in out and "optimizations enabled" in out and "PASS" in out
    approx_feeds = tmp_path / "approx.npz"
    np.savez(approx_feeds, **_approx_feeds())
    assert main(["onnx", "check", str(_approx_model(tmp_path)), "--inputs", str(approx_feeds),
                 "--optimization", "disabled"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "first at" in out and "max ULP" in out
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, D), np.float64))
    assert main(["onnx", "check", str(models["mlp_dyn_s8"]), "--inputs", str(bad)]) == 2
    assert "DTypeError" in capsys.readouterr().err
    assert main(["onnx", "check", str(tmp_path / "none.onnx"), "--inputs", str(feeds)]) == 2
    assert main(["onnx", "ops"]) == 0
    assert "ai.onnx:QLinearMatMul" in capsys.readouterr().out


@pytest.mark.parametrize("quantized_output", [True, False])
def test_qgemm_is_bit_identical(tmp_path, quantized_output):
    """com.microsoft QGemm (alpha, transB, int32 bias C), with a uint8 output and with a float one."""
    rng = np.random.default_rng(13)
    M, K, N = 7, 30, 9
    inits = {"as": np.float32(0.02), "azp": np.uint8(120), "B": rng.integers(-128, 128, (N, K), dtype=np.int8),
             "bs": np.float32(0.01), "bzp": np.int8(0), "C": rng.integers(-500, 500, N).astype(np.int32),
             "ys": np.float32(0.05), "yzp": np.uint8(128)}
    ins = ["A", "as", "azp", "B", "bs", "bzp", "C"] + (["ys", "yzp"] if quantized_output else [])
    g = helper.make_graph([helper.make_node("QGemm", ins, ["Y"], domain="com.microsoft", transB=1, alpha=0.75)],
                          "qgemm", [helper.make_tensor_value_info("A", TensorProto.UINT8, [M, K])],
                          [helper.make_tensor_value_info("Y", TensorProto.UINT8 if quantized_output else
                                                         TensorProto.FLOAT, [M, N])],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    p = tmp_path / "qgemm.onnx"
    onnx.save(m, str(p))
    rep = check_against_ort(p, {"A": rng.integers(0, 256, (M, K), dtype=np.uint8)})
    assert rep.ok and len(rep.tensors) == 1, rep.table()
    assert rep.gemms[0].shape == (M, K, N)


def test_feeds_that_are_not_a_regular_file_are_named_as_such(tmp_path):
    import os

    from intsim.onnx import load_feeds

    with pytest.raises(FileFormatError, match="no such feeds file"):
        load_feeds(tmp_path / "missing.npz")
    with pytest.raises(FileFormatError, match="not a regular file"):
        load_feeds(tmp_path)
    os.mkfifo(tmp_path / "fifo.npz")
    with pytest.raises(FileFormatError, match="not a regular file"):  # refused without opening (no hang)
        load_feeds(tmp_path / "fifo.npz")
