"""Small ONNX models for the tests: a graph saved as a model file, and calibration feeds for
onnxruntime.quantization. Imported by test modules after they skipped themselves without onnx and
onnxruntime (``pytest.importorskip``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS_DOMAIN = "com.microsoft"


def save_graph(path: Path, nodes: list, inputs: list, outputs: list, inits: dict, *, opset: int = 17,
               ms_domain: bool = False, ir_version: int = 8) -> Path:
    """Save a model of one graph (named after the file) at ``path``: the default domain at ``opset``
    (and ONNX Runtime's com.microsoft domain with ``ms_domain``), ``ir_version``, initializers
    ``inits`` (name -> array). Returns ``path``."""
    g = helper.make_graph(nodes, path.stem, inputs, outputs,
                          [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if ms_domain else [])
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = ir_version
    onnx.save(m, str(path))
    return path


def random_feeds(shape: tuple, count: int, seed: int) -> list[dict]:
    """``count`` feeds {"x": standard normal float32 of ``shape``} from their own seed."""
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(count)]


def calibration_reader(feeds: list[dict]):
    """An onnxruntime.quantization CalibrationDataReader over ``feeds`` (once through)."""
    from onnxruntime import quantization

    class _Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    return _Reader()
