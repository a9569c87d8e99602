"""Pad and nearest Resize in intsim.onnx, bit for bit against ONNX Runtime (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from intsim.core.errors import ShapeError  # noqa: E402
from intsim.onnx import load_model, run_model  # noqa: E402

_TP = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
       np.dtype(np.int64): TensorProto.INT64}


def _run_both(tmp_path, node, x, inits, opset):
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", _TP[x.dtype], list(x.shape))],
                          [helper.make_tensor_value_info("y", _TP[x.dtype], None)],
                          [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    mine = run_model(load_model(path, check=False), {"x": x}).outputs["y"]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    ref = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    return mine, ref


@pytest.mark.parametrize("mode", ["half_pixel", "asymmetric", "pytorch_half_pixel", "align_corners",
                                  "tf_half_pixel_for_nn"])
@pytest.mark.parametrize("nearest", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("scales", [(2.0, 3.0), (0.5, 0.75), (1.7, 0.625), (1.0, 2.5)])
def test_resize_nearest_matches_onnxruntime(tmp_path, mode, nearest, scales):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 10)).astype(np.float32)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", coordinate_transformation_mode=mode,
                            nearest_mode=nearest)
    mine, ref = _run_both(tmp_path, node, x, {"scales": np.array([1, 1, *scales], np.float32)}, 13)
    assert mine.shape == ref.shape and np.array_equal(mine, ref)


@pytest.mark.parametrize("sizes", [(14, 20), (3, 4), (8, 23), (1, 1)])
def test_resize_nearest_to_sizes_and_upsample_match_onnxruntime(tmp_path, sizes):
    x = np.random.default_rng(1).integers(0, 255, (1, 2, 7, 10)).astype(np.uint8)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")
    mine, ref = _run_both(tmp_path, node, x, {"sizes": np.array([1, 2, *sizes], np.int64)}, 13)
    assert mine.shape == ref.shape and np.array_equal(mine, ref)
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")
    mine, ref = _run_both(tmp_path, node, x, {"scales": np.array([1, 1, 2.0, 1.5], np.float32)}, 9)
    assert mine.shape == ref.shape and np.array_equal(mine, ref)


def test_resize_modes_intsim_does_not_reproduce_are_refused(tmp_path):
    x = np.zeros((1, 1, 4, 4), np.float32)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", name="lin")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ShapeError, match="'lin'.*nearest only"):
        run_model(m, {"x": x})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(0, 1, 2, 0, 0, 2, 1, 3), (0, 0, -1, 2, 0, 0, 1, -2)])
def test_pad_matches_onnxruntime(tmp_path, mode, pads):
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 6)).astype(np.float32)
    inits = {"pads": np.array(pads, np.int64), "value": np.float32(-1.25)}
    node = helper.make_node("Pad", ["x", "pads"] + (["value"] if mode == "constant" else []), ["y"], mode=mode)
    mine, ref = _run_both(tmp_path, node, x, inits, 19)
    assert mine.shape == ref.shape and np.array_equal(mine, ref)


def test_pad_with_axes_and_the_attribute_form(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    node = helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="edge")
    mine, ref = _run_both(tmp_path, node, x, {"pads": np.array([1, 2, 0, 1], np.int64),
                                               "axes": np.array([-1, 0], np.int64)}, 18)
    assert np.array_equal(mine, ref)
    node = helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 0, 0, 2, 1], value=3.5)
    mine, ref = _run_both(tmp_path, node, x, {}, 2)
    assert np.array_equal(mine, ref)
