"""Convolutions, max pooling and float Gemm in intsim.onnx, bit for bit against ONNX Runtime (CPU):
QLinearConv (ONNX and ONNX Runtime's NHWC form), ConvInteger, float Conv (MLAS's im2col and SGEMM
slices), MaxPool / NhwcMaxPool, float Gemm (MLAS's SGEMM with beta * C), and whole quantized CNNs
made by onnxruntime.quantization."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_models import calibration_reader, random_feeds, save_graph  # noqa: E402

from intsim.core.errors import ShapeError  # noqa: E402
from intsim.onnx import check_against_ort, load_model, run_model  # noqa: E402

_TP = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
       np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}


def _model(tmp, name, node, feeds, inits, out_dtype, opset=19, rank=None):
    """One node; ``feeds`` become graph inputs, ``inits`` initializers; output ``y`` of the rank of
    the first feed (or ``rank``), its sizes symbolic."""
    rank = rank if rank is not None else next(iter(feeds.values())).ndim
    return save_graph(tmp / f"{name}.onnx", [node],
                      [helper.make_tensor_value_info(k, _TP[v.dtype], list(v.shape)) for k, v in feeds.items()],
                      [helper.make_tensor_value_info("y", _TP[np.dtype(out_dtype)], [f"d{i}" for i in range(rank)])],
                      inits, opset=opset, ir_version=9)


def _same(path, feeds, modes=("disabled", "enabled")):
    for mode in modes:
        rep = check_against_ort(path, feeds, optimization=mode)
        assert all(t.ok for t in rep.tensors), rep.table()


def _ints(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


# (channels, filters, group, kernel, spatial, attributes)
GEOMETRIES = [
    (3, 8, 1, (3, 3), (9, 11), {"pads": [1, 1, 1, 1]}),
    (4, 6, 2, (3, 2), (7, 8), {"strides": [2, 1], "pads": [0, 1, 2, 0]}),
    (8, 8, 8, (3, 3), (6, 6), {"pads": [1, 1, 1, 1], "dilations": [2, 1]}),  # depthwise
    (5, 7, 1, (1, 1), (4, 6), {}),  # pointwise
    (6, 4, 1, (3, 3), (8, 7), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    (6, 4, 1, (2, 3), (8, 7), {"auto_pad": "SAME_LOWER"}),
    (2, 3, 1, (5,), (19,), {"strides": [3], "pads": [2, 1]}),  # 1-D
    (2, 3, 1, (2, 2, 2), (4, 5, 3), {"pads": [1, 0, 0, 0, 1, 1]}),  # 3-D
]


@pytest.mark.parametrize("geom", range(len(GEOMETRIES)))
@pytest.mark.parametrize("act", ["u8", "s8"])
def test_qlinear_conv_matches_onnxruntime(tmp_path, geom, act):
    c, m, g, kernel, spatial, attrs = GEOMETRIES[geom]
    rng = np.random.default_rng(geom * 7 + (act == "s8"))
    xt = np.uint8 if act == "u8" else np.int8
    wt = np.int8 if act == "s8" or geom % 2 else np.uint8  # u8 activations take u8 or s8 weights
    x = _ints(rng, xt, (2, c, *spatial))
    w = _ints(rng, wt, (m, c // g, *kernel))
    per_channel = geom % 3 == 0
    inits = {"xs": np.float32(0.02), "xz": np.array(rng.integers(0, 40) if act == "u8" else -3, xt),
             "w": w, "ws": (rng.uniform(0.001, 0.01, m) if per_channel else np.array(0.004)).astype(np.float32),
             "wz": np.array(0 if wt == np.int8 else 9, wt), "ys": np.float32(0.3 + 0.2 * geom),
             "yz": np.array(17 if act == "u8" else -5, xt), "b": rng.integers(-3000, 3000, m).astype(np.int32)}
    ins = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"] + (["b"] if geom % 2 == 0 else [])
    node = helper.make_node("QLinearConv", ins, ["y"], group=g, kernel_shape=list(kernel), **attrs)
    path = _model(tmp_path, f"qlc{geom}{act}", node, {"x": x}, inits, xt)
    _same(path, {"x": x})


@pytest.mark.parametrize("geom", [0, 1, 2, 6])
def test_conv_integer_matches_onnxruntime(tmp_path, geom):
    c, m, g, kernel, spatial, attrs = GEOMETRIES[geom]
    rng = np.random.default_rng(100 + geom)
    x = _ints(rng, np.uint8, (1, c, *spatial))
    w = _ints(rng, np.uint8 if geom % 2 else np.int8, (m, c // g, *kernel))
    inits = {"w": w, "xz": np.array(128, np.uint8), "wz": np.array(3 if geom % 2 else -2, w.dtype)}
    node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], group=g, kernel_shape=list(kernel), **attrs)
    path = _model(tmp_path, f"ci{geom}", node, {"x": x}, inits, np.int32)
    _same(path, {"x": x}, modes=("disabled",))


FLOAT_CONVS = [
    *GEOMETRIES,
    (16, 4, 1, (3, 3), (12, 12), {}),  # K = 144 > 128: MlasConvOperation adds a second K slice
    (2, 2, 2, (13, 13), (14, 14), {"pads": [1, 1, 1, 1]}),  # one filter per group, K = 169: the M=1 kernel adds
    (3, 40, 1, (3, 3), (4, 5), {}),  # more filters than output positions: one GEMM of the im2col matrix
    (40, 3, 1, (3, 3), (3, 3), {}),  # a 1x1 output (N = 1)
]


@pytest.mark.parametrize("case", range(len(FLOAT_CONVS)))
def test_float_conv_matches_onnxruntime(tmp_path, case):
    c, m, g, kernel, spatial, attrs = FLOAT_CONVS[case]
    rng = np.random.default_rng(200 + case)
    x = rng.standard_normal((2, c, *spatial)).astype(np.float32)
    inits = {"w": (rng.standard_normal((m, c // g, *kernel)) * 0.3).astype(np.float32),
             "b": rng.standard_normal(m).astype(np.float32)}
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if case % 2 else []), ["y"], group=g, **attrs)
    path = _model(tmp_path, f"conv{case}", node, {"x": x}, inits, np.float32)
    _same(path, {"x": x}, modes=("disabled",))


def test_a_conv_mlas_multiplies_without_im2col_is_refused(tmp_path):
    x = np.ones((1, 1, 4, 6), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="wide")
    path = _model(tmp_path, "wide", node, {"x": x}, {"w": np.ones((2, 1, 2, 6), np.float32)}, np.float32)
    with pytest.raises(ShapeError, match="'wide'.*as wide"):
        run_model(load_model(path), {"x": x})


@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8"])
@pytest.mark.parametrize("attrs", [{"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
                                   {"kernel_shape": [2, 3], "ceil_mode": 1, "strides": [2, 2]},
                                   {"kernel_shape": [3, 2], "dilations": [2, 1], "auto_pad": "SAME_UPPER"},
                                   {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}])
def test_max_pool_matches_onnxruntime(tmp_path, dtype, attrs):
    rng = np.random.default_rng(len(str(attrs)))
    shape = (2, 3, 11) if len(attrs["kernel_shape"]) == 1 else (2, 3, 9, 8)
    if dtype == "float32":
        x = rng.standard_normal(shape).astype(np.float32)
        x.reshape(-1)[::17] = -np.inf
    else:
        x = _ints(rng, np.dtype(dtype), shape)
    node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    path = _model(tmp_path, "pool", node, {"x": x}, {}, x.dtype)
    _same(path, {"x": x}, modes=("disabled",))


POOLS = [  # (spatial, attributes): the generic, vector (2-D/3-D, strides 1/2) and global MLAS kernels
    ((9, 8), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((9, 8), {"kernel_shape": [2, 3], "ceil_mode": 1, "strides": [2, 2]}),
    ((9, 8), {"kernel_shape": [2, 3], "ceil_mode": 1, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((7, 9), {"kernel_shape": [3, 2], "strides": [3, 1], "pads": [0, 1, 2, 0]}),
    ((6, 12), {"kernel_shape": [2, 2], "strides": [1, 3]}),  # a last stride of 3: the generic kernel
    ((5, 6), {"kernel_shape": [5, 6]}),  # the whole image: the global kernel
    ((4, 5, 6), {"kernel_shape": [2, 3, 2], "pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 2]}),
    ((13,), {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}),
    ((40, 3), {"kernel_shape": [33, 2]}),  # a kernel over 32: the generic kernel
]


@pytest.mark.parametrize("case", range(len(POOLS)))
@pytest.mark.parametrize("op", ["AveragePool-exclude", "AveragePool-include", "MaxPool"])
@pytest.mark.parametrize("opset", [17, 19])  # AveragePool: MLAS's kernels before opset 19, ONNX Runtime's loops from it
def test_float_pooling_matches_onnxruntime(tmp_path, case, op, opset):
    spatial, attrs = POOLS[case]
    rng = np.random.default_rng(300 + case)
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    x.reshape(-1)[::7] = -np.inf if op == "MaxPool" else x.reshape(-1)[::7] * 1e4
    if op == "MaxPool":
        x[0, 0] = -np.inf  # whole -inf windows: the generic kernel gives -FLT_MAX, the vector kernel -inf
    name, _, pad = op.partition("-")
    extra = {"count_include_pad": int(pad == "include")} if pad else {}
    if opset >= 19 and name == "AveragePool" and case in (0, 3):
        attrs = {**attrs, "dilations": [1, 2]}
    path = _model(tmp_path, "pool", helper.make_node(name, ["x"], ["y"], **attrs, **extra), {"x": x}, {}, np.float32,
                  opset=opset)
    _same(path, {"x": x}, modes=("disabled",))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("spatial", [(7, 7), (3, 5), (11,), (2, 3, 5)])
def test_float_global_pooling_matches_onnxruntime(tmp_path, op, spatial):
    x = (np.random.default_rng(len(spatial)).standard_normal((2, 5, *spatial)) * 100).astype(np.float32)
    path = _model(tmp_path, "gp", helper.make_node(op, ["x"], ["y"]), {"x": x}, {}, np.float32)
    _same(path, {"x": x}, modes=("disabled",))


QPOOLS = [
    ((9, 8), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((9, 8), {"kernel_shape": [2, 3], "ceil_mode": 1, "strides": [2, 2], "count_include_pad": 1}),
    ((7, 9), {"kernel_shape": [3, 2], "strides": [3, 1], "pads": [0, 1, 2, 0], "count_include_pad": 1}),
    ((5, 6), {"kernel_shape": [5, 6]}),  # the whole image: ONNX Runtime's global arithmetic
    ((13,), {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}),
    ((4, 5, 6), {"kernel_shape": [2, 3, 2], "pads": [1, 0, 1, 0, 1, 1]}),
]


@pytest.mark.parametrize("case", range(len(QPOOLS)))
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("last", [0, 1])
def test_qlinear_pooling_matches_onnxruntime(tmp_path, case, dtype, last):
    spatial, attrs = QPOOLS[case]
    rng = np.random.default_rng(400 + case)
    dt = np.dtype(dtype)
    shape = (2, *spatial, 5) if last else (2, 5, *spatial)
    x = _ints(rng, dt, shape)
    yz = -3 if dtype == "int8" else 100
    inits = {"xs": np.float32(0.05), "xz": np.array(7, dt), "ys": np.float32(0.031), "yz": np.array(yz, dt)}
    for op, kw in (("QLinearAveragePool", attrs), ("QLinearGlobalAveragePool", {})):
        node = helper.make_node(op, ["x", "xs", "xz", "ys", "yz"], ["y"], domain="com.microsoft", channels_last=last,
                                **kw)
        g = helper.make_graph([node], "qp", [helper.make_tensor_value_info("x", _TP[dt], list(shape))],
                              [helper.make_tensor_value_info("y", _TP[dt], [f"d{i}" for i in range(len(shape))])],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 9
        onnx.save(m, str(tmp_path / "qp.onnx"))
        mine = run_model(load_model(tmp_path / "qp.onnx", check=False), {"x": x}).outputs["y"]
        sess = ort.InferenceSession(str(tmp_path / "qp.onnx"), providers=["CPUExecutionProvider"])
        ref = sess.run(["y"], {"x": x})[0]
        assert mine.dtype == ref.dtype and mine.shape == ref.shape and np.array_equal(mine, ref), (op, mine, ref)


def test_max_pool_refuses_a_nan_input(tmp_path):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 2] = np.nan
    path = _model(tmp_path, "mp", helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], name="mp"),
                  {"x": x}, {}, np.float32)
    with pytest.raises(ShapeError, match="'mp'.*NaN"):
        run_model(load_model(path), {"x": x})


def test_max_pool_refuses_the_indices_output(tmp_path):
    x = np.zeros((1, 1, 4, 4), np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="mp")
    g = helper.make_graph([node], "mp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("idx", TensorProto.INT64, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ShapeError, match="Indices"):
        run_model(m, {"x": x})


@pytest.mark.parametrize("m, k, n", [(1, 300, 5), (7, 24, 1), (9, 200, 33), (1, 3, 1), (130, 40, 20)])
@pytest.mark.parametrize("variant", range(4))
def test_float_gemm_matches_onnxruntime(tmp_path, m, k, n, variant):
    rng = np.random.default_rng(m * 1000 + k + n + variant)
    ta, tb = variant in (1, 3), variant >= 2
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c = [rng.standard_normal(n), rng.standard_normal((m, 1)), rng.standard_normal((m, n)),
         rng.standard_normal(1)][variant].astype(np.float32)
    attrs = [{}, {"alpha": 0.7}, {"beta": 1.5}, {"alpha": -2.0, "beta": 0.25}][variant]
    feeds = {"a": a} if variant % 2 else {"a": a, "b": b}  # B a constant (ONNX Runtime pre-packs it) or an input
    inits = {"c": c} | ({"b": b} if variant % 2 else {})
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=int(ta), transB=int(tb), **attrs)
    path = _model(tmp_path, "gemm", node, feeds, inits, np.float32, opset=13, rank=2)
    _same(path, feeds, modes=("disabled",))


# ------------------------------------------------------------------------------------------------
# whole CNNs quantized by onnxruntime.quantization
# ------------------------------------------------------------------------------------------------


def _cnn(path):
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    inits = {"W1": w(8, 3, 3, 3), "B1": w(8), "W2": w(8, 1, 3, 3), "B2": w(8), "W3": w(6, 8, 1, 1), "Wf": w(24, 5),
             "Bf": w(5)}
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
             helper.make_node("Conv", ["p1", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dwconv"),
             helper.make_node("Conv", ["c2", "W3"], ["c3"], strides=[2, 2], name="pwconv"),
             helper.make_node("Flatten", ["c3"], ["f"], axis=1, name="flat"),
             helper.make_node("Gemm", ["f", "Wf", "Bf"], ["y"], name="fc")]
    return _save_cnn(path, nodes, inits, 5)


def _save_cnn(path, nodes, inits, classes):
    """A float CNN graph x (N, 3, 8, 8) -> y (N, classes), opset 17, saved at ``path``."""
    return save_graph(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], inits)


def _cnn_pools(path):
    """Conv, AveragePool, a residual Add, Sigmoid, GlobalAveragePool and Gemm."""
    rng = np.random.default_rng(3)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    inits = {"W1": w(8, 3, 3, 3), "B1": w(8), "W2": w(8, 8, 3, 3), "Wf": w(8, 4), "Bf": w(4)}
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="avg"),
             helper.make_node("Conv", ["p1", "W2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "p1"], ["s"], name="residual"),
             helper.make_node("Sigmoid", ["s"], ["g"], name="sigmoid"),
             helper.make_node("GlobalAveragePool", ["g"], ["gp"], name="gap"),
             helper.make_node("Flatten", ["gp"], ["f"], axis=1, name="flat"),
             helper.make_node("Gemm", ["f", "Wf", "Bf"], ["y"], name="fc")]
    return _save_cnn(path, nodes, inits, 4)


def _calibration():
    return calibration_reader(random_feeds((2, 3, 8, 8), 6, 1000))


@pytest.fixture(scope="module")
def cnn_models(tmp_path_factory):
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    tmp = tmp_path_factory.mktemp("cnn")
    q = quantization
    out = {}
    for arch, build in (("cnn", _cnn), ("pools", _cnn_pools)):
        fp = build(tmp / f"{arch}.onnx")
        for name, fmt, act, per_channel in [("qoperator-u8", q.QuantFormat.QOperator, q.QuantType.QUInt8, False),
                                            ("qoperator-s8-per-channel", q.QuantFormat.QOperator, q.QuantType.QInt8,
                                             True),
                                            ("qdq-s8", q.QuantFormat.QDQ, q.QuantType.QInt8, False),
                                            ("qdq-u8-per-channel", q.QuantFormat.QDQ, q.QuantType.QUInt8, True)]:
            out[arch, name] = tmp / f"{arch}-{name}.onnx"
            q.quantize_static(str(fp), str(out[arch, name]), _calibration(), quant_format=fmt, activation_type=act,
                              weight_type=q.QuantType.QInt8, per_channel=per_channel)
        out[arch, "dynamic-u8"] = tmp / f"{arch}-dynamic.onnx"
        q.quantize_dynamic(str(fp), str(out[arch, "dynamic-u8"]), weight_type=q.QuantType.QUInt8)
    return out


@pytest.mark.parametrize("form", ["qoperator-u8", "qoperator-s8-per-channel", "qdq-s8", "qdq-u8-per-channel",
                                  "dynamic-u8"])
@pytest.mark.parametrize("arch", ["cnn", "pools"])
def test_quantized_cnns_match_onnxruntime(cnn_models, arch, form):
    x = np.random.default_rng(7).standard_normal((3, 3, 8, 8)).astype(np.float32) * 1.5  # held out
    _same(cnn_models[arch, form], {"x": x})
    rep = check_against_ort(cnn_models[arch, form], {"x": x}, optimization="enabled")
    assert "QLinearConv" in rep.ops or "ConvInteger" in rep.ops
    assert all(g.n_overflow == 0 for g in rep.gemms) and len(rep.gemms) >= 2


# ------------------------------------------------------------------------------------------------
# ONNX Runtime's NCHWc layout, and two operators its exported graphs carry
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [20, 32])
def test_nchwc_pooling_of_the_optimized_graph_matches_onnxruntime(tmp_path, channels):
    """With its default optimizations ONNX Runtime moves float pooling to its NCHWc layout
    (ReorderInput, com.microsoft.nchwc pools, ReorderOutput): bytes and values as ONNX Runtime's."""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, channels, 11, 9)).astype(np.float32)
    x[0, 1, 2:5, 2:5] = -np.inf
    nodes = [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2], pads=[1, 0, 0, 1]),
             helper.make_node("AveragePool", ["m"], ["ai"], kernel_shape=[3, 2], pads=[1, 1, 1, 1],
                              count_include_pad=1),
             helper.make_node("GlobalAveragePool", ["a"], ["g"]), helper.make_node("GlobalMaxPool", ["ai"], ["gm"]),
             helper.make_node("Add", ["g", "gm"], ["y"])]
    g = helper.make_graph(nodes, "pools", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, channels, 1, 1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "pools.onnx"))
    rep = check_against_ort(tmp_path / "pools.onnx", {"x": x}, optimization="enabled")
    assert all(t.ok for t in rep.tensors), rep.table()
    if channels % 16 == 0:  # ONNX Runtime moves whole blocks only
        assert "ReorderInput" in rep.ops and "ReorderOutput" in rep.ops


def test_mod_and_quick_gelu_match_onnxruntime(tmp_path):
    rng = np.random.default_rng(9)
    a = rng.integers(-50, 50, (4, 6)).astype(np.int64)
    b = np.where(rng.random((4, 6)) < 0.5, -7, 5).astype(np.int64)
    f = (rng.standard_normal((4, 6)) * 10).astype(np.float32)
    nodes = [helper.make_node("Mod", ["a", "b"], ["m0"]), helper.make_node("Mod", ["a", "b"], ["m1"], fmod=1),
             helper.make_node("Mod", ["f", "c"], ["m2"], fmod=1),
             helper.make_node("QuickGelu", ["f"], ["q0"], domain="com.microsoft"),
             helper.make_node("QuickGelu", ["f"], ["q1"], domain="com.microsoft", alpha=1.0)]
    vi = helper.make_tensor_value_info
    g = helper.make_graph(nodes, "mod", [vi("a", TensorProto.INT64, [4, 6]), vi("b", TensorProto.INT64, [4, 6]),
                                         vi("f", TensorProto.FLOAT, [4, 6])],
                          [vi(n, t, [4, 6]) for n, t in (("m0", TensorProto.INT64), ("m1", TensorProto.INT64),
                                                         ("m2", TensorProto.FLOAT), ("q0", TensorProto.FLOAT),
                                                         ("q1", TensorProto.FLOAT))],
                          [numpy_helper.from_array(np.float32(-3.5), "c")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "mod.onnx"))
    feeds = {"a": a, "b": b, "f": f}
    mine = run_model(load_model(tmp_path / "mod.onnx", check=False), feeds).outputs
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(tmp_path / "mod.onnx"), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    for name, r in zip(("m0", "m1", "m2", "q0", "q1"), ref, strict=True):
        assert np.array_equal(mine[name].view(np.uint8), r.view(np.uint8)), name
    assert (mine["m0"] * np.sign(b) >= 0).all() and (mine["m1"] * np.sign(a) >= 0).all()
