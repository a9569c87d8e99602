"""intsim.onnx on QDQ models from onnxruntime.quantization, and the quantized and float kernels behind them.

Small graphs built with onnx.helper are quantized with ``quantize_static`` (QDQ, and QOperator for the
lookup-table operators), per tensor and per channel, uint8 and int8 activations, calibrated on feeds of
their own seed; the check runs on held-out feeds (other seeds, 1.5 times the calibration spread, a zero
and values beyond the calibration range). Each kernel is also checked on its own against ONNX Runtime
(hypothesis draws shapes, scales and zero points) and, for ``fma_f32``, against an exact rational oracle.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_models import calibration_reader, save_graph  # noqa: E402

from intsim.core.errors import ConfigError  # noqa: E402
from intsim.onnx import (  # noqa: E402
    check_against_ort,
    load_model,
    qops,  # noqa: E402
    run_model,
    sgemm,
)
from intsim.onnx.check import run_ort  # noqa: E402
from intsim.onnx.registry import MS_DOMAIN, OPS, NodeContext  # noqa: E402
from intsim.oracles.rounding import round_f32  # noqa: E402

F32 = np.float32
Q = quantization.QuantType
D, H, O = 24, 40, 12  # widths that are not multiples of the SIMD widths


# -- models ----------------------------------------------------------------------------------------------


def _save(tmp, name, nodes, inputs, outputs, inits, opset=17):
    return save_graph(tmp / f"{name}.onnx", nodes, inputs, outputs, inits, opset=opset, ms_domain=True)


def _mlp(tmp):
    rng = np.random.default_rng(21)
    inits = {"W1": (rng.standard_normal((D, H)) * 0.3).astype(F32), "b1": (rng.standard_normal(H) * 0.1).astype(F32),
             "W2": (rng.standard_normal((H, O)) * 0.3).astype(F32), "b2": (rng.standard_normal(O) * 0.1).astype(F32)}
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
             helper.make_node("MatMul", ["h2", "W2"], ["y0"], name="fc2"),
             helper.make_node("Add", ["y0", "b2"], ["y"], name="fc2_bias")]
    return _save(tmp, "mlp", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", O])], inits)


E, HEADS = 32, 4


def _attention(tmp):
    """Multi-head self-attention with output projection and residual: x (N, T, E) -> y (N, T, E)."""
    rng = np.random.default_rng(22)
    inits = {n: (rng.standard_normal((E, E)) * 0.2).astype(F32) for n in ("Wq", "Wk", "Wv", "Wo")}
    inits.update({"bq": (rng.standard_normal(E) * 0.1).astype(F32), "scale": F32(1 / np.sqrt(E // HEADS)),
                  "heads": np.array([0, 0, HEADS, E // HEADS], np.int64), "merged": np.array([0, 0, E], np.int64)})
    nodes = [helper.make_node("MatMul", ["x", "Wq"], ["q0"], name="q_proj"),
             helper.make_node("Add", ["q0", "bq"], ["q"], name="q_bias"),
             helper.make_node("MatMul", ["x", "Wk"], ["k"], name="k_proj"),
             helper.make_node("MatMul", ["x", "Wv"], ["v"], name="v_proj"),
             helper.make_node("Reshape", ["q", "heads"], ["qr"], name="q_heads"),
             helper.make_node("Transpose", ["qr"], ["qh"], perm=[0, 2, 1, 3], name="q_t"),
             helper.make_node("Reshape", ["k", "heads"], ["kr"], name="k_heads"),
             helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1], name="k_t"),
             helper.make_node("Reshape", ["v", "heads"], ["vr"], name="v_heads"),
             helper.make_node("Transpose", ["vr"], ["vh"], perm=[0, 2, 1, 3], name="v_t"),
             helper.make_node("MatMul", ["qh", "kt"], ["s0"], name="scores"),
             helper.make_node("Mul", ["s0", "scale"], ["s1"], name="scale"),
             helper.make_node("Softmax", ["s1"], ["p"], axis=-1, name="softmax"),
             helper.make_node("MatMul", ["p", "vh"], ["c0"], name="context"),
             helper.make_node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3], name="c_t"),
             helper.make_node("Reshape", ["c1", "merged"], ["c"], name="c_merge"),
             helper.make_node("MatMul", ["c", "Wo"], ["o"], name="o_proj"),
             helper.make_node("Add", ["o", "x"], ["y"], name="residual")]
    return _save(tmp, "attention", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", E])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", E])], inits)


def _lookup(tmp):
    """Sigmoid, LeakyRelu, Concat, Where, Softmax after a linear layer: the lookup-table operators."""
    rng = np.random.default_rng(23)
    inits = {"W": (rng.standard_normal((D, D)) * 0.4).astype(F32), "b": (rng.standard_normal(D) * 0.1).astype(F32),
             "W2": (rng.standard_normal((2 * D, O)) * 0.3).astype(F32),
             "W3": (rng.standard_normal((2 * D, O)) * 0.3).astype(F32)}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node("Add", ["h", "b"], ["h1"], name="add"),
             helper.make_node("Sigmoid", ["h1"], ["s"], name="sigmoid"),
             helper.make_node("LeakyRelu", ["h1"], ["lr"], alpha=0.1, name="leaky_relu"),
             helper.make_node("Concat", ["s", "lr"], ["cat"], axis=-1, name="concat"),
             helper.make_node("MatMul", ["cat", "W2"], ["y0"], name="mm2"),
             helper.make_node("MatMul", ["cat", "W3"], ["y1"], name="mm3"),
             helper.make_node("Where", ["cond", "y0", "y1"], ["y2"], name="where"),
             helper.make_node("Softmax", ["y2"], ["y"], axis=-1, name="softmax")]
    return _save(tmp, "lookup", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D]),
                                        helper.make_tensor_value_info("cond", TensorProto.BOOL, ["N", O])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", O])], inits)


SHAPES = {"mlp": (6, D), "attention": (2, 7, E), "lookup": (6, D)}


def _calibration(name, count=6):
    rng = np.random.default_rng(1000)  # the held-out feeds use other seeds
    out = []
    for _ in range(count):
        f = {"x": rng.standard_normal(SHAPES[name]).astype(F32)}
        if name == "lookup":
            f["cond"] = rng.random((SHAPES[name][0], O)) < 0.5
        out.append(f)
    return out


def _feeds(name, seed, rows=None):
    rng = np.random.default_rng(seed)
    shape = SHAPES[name] if rows is None else (rows,) + SHAPES[name][1:]
    x = (rng.standard_normal(shape) * 1.5).astype(F32)
    x.reshape(-1)[:3] = [0.0, -5.0, 6.0]  # a zero and values beyond the calibration range (saturation)
    f = {"x": x}
    if name == "lookup":
        f["cond"] = rng.random((shape[0], O)) < 0.5
    return f


BUILDERS = {"mlp": _mlp, "attention": _attention, "lookup": _lookup}


@pytest.fixture(scope="session")
def qdq_models(tmp_path_factory):
    """Build the float graphs once, quantize lazily: ``get(name, fmt, act, per_channel)`` -> path."""
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    tmp = tmp_path_factory.mktemp("onnx_qdq")
    floats = {name: build(tmp) for name, build in BUILDERS.items()}
    cache: dict = {}

    def get(name, fmt="qdq", act="u8", per_channel=False):
        key = (name, fmt, act, per_channel)
        if key not in cache:
            p = tmp / f"{name}_{fmt}_{act}_{'pc' if per_channel else 'pt'}.onnx"
            extra = {"ForceQuantizeNoInputCheck": True} if name == "lookup" else {}
            quantization.quantize_static(
                str(floats[name]), str(p), calibration_reader(_calibration(name)),
                quant_format=quantization.QuantFormat.QDQ if fmt == "qdq" else quantization.QuantFormat.QOperator,
                activation_type=Q.QUInt8 if act == "u8" else Q.QInt8, weight_type=Q.QInt8,
                per_channel=per_channel, extra_options=extra)
            cache[key] = p
        return cache[key]

    get.floats = floats
    return get


GRID = [(act, pc) for act in ("u8", "s8") for pc in (False, True)]


# -- QDQ graphs: both optimization modes -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["enabled", "disabled"])
@pytest.mark.parametrize(("act", "per_channel"), GRID)
@pytest.mark.parametrize("name", ["mlp", "attention"])
def test_qdq_model_is_bit_identical_to_onnxruntime(qdq_models, name, act, per_channel, mode):
    path = qdq_models(name, "qdq", act, per_channel)
    for seed in (1, 2):
        rep = check_against_ort(path, _feeds(name, seed), optimization=mode)
        assert rep.ok, rep.table()
        assert all(t.ok for t in rep.tensors), rep.table(all_rows=True)  # float intermediates too
    assert any(t.decides and t.kind == "intermediate" for t in rep.tensors)


@pytest.mark.parametrize(("act", "per_channel"), GRID)
def test_qdq_lookup_operators(qdq_models, act, per_channel):
    """Sigmoid, LeakyRelu, Concat, Where, Softmax: fused into their QLinear* kernels (uint8), or left
    float between DequantizeLinear and QuantizeLinear (int8; and with optimizations disabled)."""
    path = qdq_models("lookup", "qdq", act, per_channel)
    for mode in ("enabled", "disabled"):
        rep = check_against_ort(path, _feeds("lookup", 3, rows=9), optimization=mode)
        assert rep.ok and all(t.ok for t in rep.tensors), rep.table(all_rows=True)
        if mode == "enabled" and act == "u8":
            assert {"QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearWhere",
                    "QLinearSoftmax"} <= set(rep.ops)


@pytest.mark.parametrize(("act", "per_channel"), GRID)
def test_qoperator_lookup_operators(qdq_models, act, per_channel):
    path = qdq_models("lookup", "qoperator", act, per_channel)
    assert {"QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearWhere", "QLinearSoftmax"} <= \
        {n.op_type for n in load_model(path).graph.node}
    for mode in ("enabled", "disabled"):
        rep = check_against_ort(path, _feeds("lookup", 4, rows=11), optimization=mode)
        assert rep.ok and all(t.ok for t in rep.tensors), rep.table(all_rows=True)


@pytest.mark.parametrize("act", ["u8", "s8"])
def test_qoperator_attention_with_qlinear_softmax(qdq_models, act):
    path = qdq_models("attention", "qoperator", act, True)
    rep = check_against_ort(path, _feeds("attention", 5), optimization="enabled")
    assert "QLinearSoftmax" in rep.ops and "QLinearMul" in rep.ops
    assert rep.ok and all(t.ok for t in rep.tensors), rep.table(all_rows=True)


def test_int8_qdq_graph_keeps_float_matmuls(qdq_models):
    """With int8 activations the optimized attention graph still multiplies dequantized tensors in
    float (the SGEMM path); with uint8 activations every MatMul becomes QLinearMatMul."""
    s8 = check_against_ort(qdq_models("attention", "qdq", "s8", True), _feeds("attention", 6),
                           optimization="enabled", intermediates=False)
    u8 = check_against_ort(qdq_models("attention", "qdq", "u8", True), _feeds("attention", 6),
                           optimization="enabled", intermediates=False)
    assert s8.ok and u8.ok
    assert "MatMul" in s8.ops
    assert "QLinearMatMul" in u8.ops and "MatMul" not in u8.ops


def test_numpy_float_matmul_is_reported_per_node_in_ulp(qdq_models, monkeypatch):
    """With optimizations disabled a QDQ graph's MatMul multiplies dequantized float tensors; a float
    GEMM in another summation order than MLAS's (numpy's, here) is reported node by node with its
    ULP distance."""
    monkeypatch.setitem(OPS, ("", "MatMul"), lambda ctx, i: [np.matmul(i[0], i[1]).astype(i[0].dtype)])
    rng = np.random.default_rng(7)
    k = n = 300  # MLAS adds three K slices of 128, 128 and 44 products: numpy's BLAS does not
    inits = {"W": rng.standard_normal((k, n)).astype(F32) * F32(0.05)}
    path = _save(qdq_models.floats["mlp"].parent, "wide", [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])], inits)
    qpath = path.with_name("wide_qdq.onnx")
    feeds = [{"x": rng.standard_normal((4, k)).astype(F32)} for _ in range(3)]
    quantization.quantize_static(str(path), str(qpath), calibration_reader(feeds),
                                 quant_format=quantization.QuantFormat.QDQ, weight_type=Q.QInt8)
    feeds = {"x": rng.standard_normal((9, k)).astype(F32)}
    rep = check_against_ort(qpath, feeds, optimization="disabled")
    (out,) = [n.output[0] for n in load_model(qpath).graph.node if n.op_type == "MatMul"]
    (mm,) = [t for t in rep.tensors if t.name == out]
    assert mm.max_ulp > 0 and not mm.decides, rep.table(all_rows=True)
    assert out in rep.table() and "max ULP" in rep.table()
    monkeypatch.setitem(OPS, ("", "MatMul"), sgemm.float_matmul_op)  # intsim's own MatMul
    rep = check_against_ort(qpath, feeds, optimization="disabled")
    assert rep.ok and all(t.ok for t in rep.tensors), rep.table(all_rows=True)


# -- the kernels on their own, against ONNX Runtime --------------------------------------------------------


def _session(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "k", inputs, outputs, [numpy_helper.from_array(np.asarray(v), n)
                                                        for n, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS_DOMAIN, 1)])
    m.ir_version = 8
    return m


def _run_both(model, feeds):
    mine = run_model(model, feeds).outputs
    ref = run_ort(model, feeds)
    return mine, ref


def _tt(dtype):
    return TensorProto.UINT8 if np.dtype(dtype) == np.uint8 else TensorProto.INT8


_scales = st.floats(min_value=-7, max_value=1).map(lambda e: F32(np.exp2(e) * 1.37))
_shapes = st.sampled_from([((5, 7), (7,)), ((5, 7), (5, 1)), ((5, 1), (1, 7)), ((1,), (5, 7)), ((5, 7), ()),
                           ((3, 1, 4), (1, 5, 1)), ((3, 5, 40), (3, 5, 40)), ((1, 40), (3, 1)), ((70,), (70,))])


@settings(max_examples=40)
@given(op=st.sampled_from(["QLinearAdd", "QLinearMul"]), signed=st.booleans(), shapes=_shapes,
       scales=st.tuples(_scales, _scales, _scales), zps=st.tuples(*[st.integers(0, 255)] * 3),
       seed=st.integers(0, 2**31))
def test_qlinear_binary_against_onnxruntime(op, signed, shapes, scales, zps, seed):
    dt = np.dtype(np.int8 if signed else np.uint8)
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 127) if signed else (0, 255)
    a = rng.integers(lo, hi + 1, shapes[0]).astype(dt)
    b = rng.integers(lo, hi + 1, shapes[1]).astype(dt)
    z = [np.array(v - 128 if signed else v, dt) for v in zps]
    inits = {"as": scales[0], "az": z[0], "bs": scales[1], "bz": z[1], "cs": scales[2], "cz": z[2]}
    m = _session([helper.make_node(op, ["A", "as", "az", "B", "bs", "bz", "cs", "cz"], ["C"], domain=MS_DOMAIN)],
                 [helper.make_tensor_value_info("A", _tt(dt), list(a.shape)),
                  helper.make_tensor_value_info("B", _tt(dt), list(b.shape))],
                 [helper.make_tensor_value_info("C", _tt(dt), None)], inits)
    mine, ref = _run_both(m, {"A": a, "B": b})
    np.testing.assert_array_equal(mine["C"], ref["C"])


@settings(max_examples=40)
@given(signed=st.booleans(), rows=st.integers(1, 6), cols=st.integers(1, 300), xs=_scales,
       ys=st.sampled_from([1 / 256, 1 / 255, 1 / 300, 0.01, 0.5, 2.0, 1e-12]), yz=st.integers(0, 255),
       opset=st.sampled_from([12, 13]), axis=st.sampled_from([-1, 0, 1]), seed=st.integers(0, 2**31))
def test_qlinear_softmax_against_onnxruntime(signed, rows, cols, xs, ys, yz, opset, axis, seed):
    dt = np.dtype(np.int8 if signed else np.uint8)
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 127) if signed else (0, 255)
    x = rng.integers(lo, hi + 1, (rows, cols)).astype(dt)
    x[0, 0] = hi  # a row with a clear maximum: a probability near 1
    inits = {"xs": xs, "xz": np.array(0, dt), "ys": F32(ys), "yz": np.array(yz - 128 if signed else yz, dt)}
    m = _session([helper.make_node("QLinearSoftmax", ["X", "xs", "xz", "ys", "yz"], ["Y"], domain=MS_DOMAIN,
                                   opset=opset, axis=axis)],
                 [helper.make_tensor_value_info("X", _tt(dt), list(x.shape))],
                 [helper.make_tensor_value_info("Y", _tt(dt), None)], inits)
    mine, ref = _run_both(m, {"X": x})
    np.testing.assert_array_equal(mine["Y"], ref["Y"])


@settings(max_examples=30)
@given(op=st.sampled_from(["QLinearSigmoid", "QLinearLeakyRelu"]), signed=st.booleans(), xs=_scales, ys=_scales,
       xz=st.integers(0, 255), yz=st.integers(0, 255), alpha=st.floats(0.001, 0.5))
def test_lookup_table_operators_against_onnxruntime(op, signed, xs, ys, xz, yz, alpha):
    dt = np.dtype(np.int8 if signed else np.uint8)
    x = np.arange(256, dtype=np.uint8).view(dt)  # every input byte: the whole table
    inits = {"xs": xs, "xz": np.array(xz - 128 if signed else xz, dt), "ys": ys,
             "yz": np.array(yz - 128 if signed else yz, dt)}
    attrs = {"alpha": alpha} if op == "QLinearLeakyRelu" else {}
    m = _session([helper.make_node(op, ["X", "xs", "xz", "ys", "yz"], ["Y"], domain=MS_DOMAIN, **attrs)],
                 [helper.make_tensor_value_info("X", _tt(dt), [256])],
                 [helper.make_tensor_value_info("Y", _tt(dt), None)], inits)
    mine, ref = _run_both(m, {"X": x})
    np.testing.assert_array_equal(mine["Y"], ref["Y"])


@settings(max_examples=40)
@given(m=st.integers(1, 40), k=st.integers(1, 700), n=st.integers(1, 300), trans_a=st.booleans(),
       trans_b=st.booleans(), alpha=st.sampled_from([1.0, 0.17677669, -0.5]), const_b=st.booleans(),
       batch=st.sampled_from([(), (3,), (2, 2)]), seed=st.integers(0, 2**31))
def test_float_matmul_against_onnxruntime(m, k, n, trans_a, trans_b, alpha, const_b, batch, seed):
    """MLAS's SGEMM: K slices by N, K, packing; the M=1 and N=1 kernels; FusedMatMul's flags and alpha."""
    rng = np.random.default_rng(seed)
    fused = trans_a or trans_b or alpha != 1.0
    a = rng.standard_normal(batch + ((k, m) if trans_a else (m, k))).astype(F32)
    b = rng.standard_normal(((n, k) if trans_b else (k, n)) if const_b else batch + ((n, k) if trans_b else (k, n)))
    b = b.astype(F32)
    node = (helper.make_node("FusedMatMul", ["A", "B"], ["C"], domain=MS_DOMAIN, transA=int(trans_a),
                             transB=int(trans_b), alpha=alpha) if fused
            else helper.make_node("MatMul", ["A", "B"], ["C"]))
    inputs = [helper.make_tensor_value_info("A", TensorProto.FLOAT, list(a.shape))]
    if not const_b:
        inputs.append(helper.make_tensor_value_info("B", TensorProto.FLOAT, list(b.shape)))
    model = _session([node], inputs, [helper.make_tensor_value_info("C", TensorProto.FLOAT, None)],
                     {"B": b} if const_b else {})
    feeds = {"A": a} if const_b else {"A": a, "B": b}
    mine, ref = _run_both(model, feeds)
    np.testing.assert_array_equal(mine["C"].view(np.uint32), ref["C"].view(np.uint32))


@settings(max_examples=20)
@given(outer=st.integers(2, 5), rows=st.integers(2, 300), cols=st.integers(2, 50), seed=st.integers(0, 2**31))
def test_reduce_sum_middle_axis_against_onnxruntime(outer, rows, cols, seed):
    """ONNX Runtime's ``ReduceSum`` over the middle of three non-trivial axes: a ones-vector SGEMM."""
    x = np.random.default_rng(seed).standard_normal((outer, rows, cols)).astype(F32)
    m = _session([helper.make_node("ReduceSum", ["X", "axes"], ["Y"], keepdims=0)],
                 [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], {"axes": np.array([1], np.int64)})
    ref = run_ort(m, {"X": x})["Y"]
    np.testing.assert_array_equal(sgemm.reduce_sum_krk(x).view(np.uint32), ref.view(np.uint32))
    np.testing.assert_array_equal(run_model(m, {"X": x}).outputs["Y"].view(np.uint32), ref.view(np.uint32))


# -- fma_f32 against an exact oracle -----------------------------------------------------------------------


_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(a=_f32, b=_f32, c=_f32)
def test_fma_f32_is_correctly_rounded(a, b, c):
    a, b, c = F32(a), F32(b), F32(c)
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    want = round_f32(exact)
    got = float(qops.fma_f32(np.array([a]), np.array([b]), np.array([c]))[0])
    if want == 0.0:
        assert got == 0.0
    else:
        assert got == want


def test_fma_f32_rounds_once():
    """A case where rounding the product first gives another float32."""
    e = F32(2.0**-13)
    a, b = F32(1) + e, F32(1) - e
    assert float(qops.fma_f32(a, b, F32(-1))) == -(2.0**-26)
    assert float(F32(a * b) - F32(1)) == 0.0


# -- units and errors --------------------------------------------------------------------------------------


def test_softmax_table_and_rows():
    t = qops.softmax_exp_table(F32(0.1), 8, False)
    assert t.dtype == F32 and np.all(np.diff(t.astype(np.float64)) > 0)
    ts = qops.softmax_exp_table(F32(0.1), 8, True)
    assert ts[127] == t[255] and ts[128] == t[0]  # int8: byte order -128..127 maps to the same exps
    y = qops.qlinear_softmax_rows(np.array([[127, -128, -128]], np.int8), ts, F32(1 / 256), -128)
    assert y.tolist() == [[127, -128, -128]]  # a probability of 1 saturates at 127


def test_qlinear_softmax_refuses_bad_scales():
    x = np.zeros((2, 3), np.uint8)
    node = helper.make_node("QLinearSoftmax", ["X", "xs", "xz", "ys", "yz"], ["Y"], domain=MS_DOMAIN, opset=13)
    fn = OPS[(MS_DOMAIN, "QLinearSoftmax")]
    ctx = NodeContext(node, {"opset": 13}, 17, None)
    with pytest.raises(ConfigError, match="Y_scale"):
        fn(ctx, [x, F32(0.1), np.uint8(0), F32(0), np.uint8(0)])
    with pytest.raises(ConfigError, match="X_scale"):
        fn(ctx, [x, F32(0), np.uint8(0), F32(1 / 256), np.uint8(0)])
    with pytest.raises(ConfigError, match="opset"):
        fn(NodeContext(node, {}, 17, None), [x, F32(0.1), np.uint8(0), F32(1 / 256), np.uint8(0)])


def test_lookup_table_identity():
    t = qops.lookup_table(F32(0.5), 3, F32(0.5), 3, np.dtype(np.int8), lambda v: v)
    assert (t == np.arange(256, dtype=np.uint8).view(np.int8)).all()


# -- int16 activations (QInt16 / QUInt16 in onnxruntime.quantization) ---------------------------------------


@pytest.mark.parametrize(("act", "weight"), [("QInt16", "QInt16"), ("QUInt16", "QUInt8"), ("QInt16", "QInt8")])
def test_int16_activations(tmp_path, act, weight):
    """QDQ models with 16-bit activations check clean as written; with ONNX Runtime's optimizations a
    16-bit weight stays a QDQ group, while an 8-bit weight is fused into com.microsoft MatMulNBits
    (a weight-only GEMM intsim does not implement: refused, naming the node's operator)."""
    rng = np.random.default_rng(21)
    inits = {"W1": (rng.standard_normal((D, H)) * 0.3).astype(F32), "b1": (rng.standard_normal(H) * 0.1).astype(F32),
             "W2": (rng.standard_normal((H, O)) * 0.3).astype(F32)}
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="bias"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
             helper.make_node("MatMul", ["h2", "W2"], ["y"], name="fc2")]
    path = _save(tmp_path, "mlp16", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", O])], inits, opset=21)
    qpath = tmp_path / f"mlp16_{act}_{weight}.onnx"
    logging.getLogger().setLevel(logging.ERROR)
    feeds = [{"x": rng.standard_normal((4, D)).astype(F32)} for _ in range(4)]
    quantization.quantize_static(str(path), str(qpath), calibration_reader(feeds),
                                 quant_format=quantization.QuantFormat.QDQ, activation_type=getattr(Q, act),
                                 weight_type=getattr(Q, weight))
    feeds = {"x": (np.random.default_rng(22).standard_normal((7, D)) * 1.5).astype(F32)}
    rep = check_against_ort(qpath, feeds, optimization="disabled")
    assert rep.ok and all(t.ok for t in rep.tensors), rep.table(all_rows=True)
    assert any(t.dtype in ("int16", "uint16") for t in rep.tensors)
    if weight == "QInt16":
        rep = check_against_ort(qpath, feeds, optimization="enabled")
        assert rep.ok and all(t.ok for t in rep.tensors), rep.table(all_rows=True)
    else:
        with pytest.raises(ConfigError, match="MatMulNBits"):
            check_against_ort(qpath, feeds, optimization="enabled")
