"""Bring your own model: quantized ONNX models, run on intsim's emulated integer datapath.

:func:`load_model` reads and checks a model, :func:`run_model` runs it (every integer GEMM on
:func:`intsim.matmul`, the float arithmetic in float32 as ONNX Runtime's CPU kernels compute
it), :func:`check_against_ort` runs ONNX Runtime and intsim side by side and compares every
graph output (and every intermediate tensor) bit for bit. :func:`supported_ops` lists the
operators. Needs the ``onnx`` extra (``onnx``, ``onnxruntime``).
"""

from __future__ import annotations

from .check import CheckReport, TensorComparison, check_against_ort, ulp_distance
from .graph import RunResult, default_datapath, run_model
from .load import check_feeds, load_feeds, load_model
from .registry import GemmRecord, supported_ops

__all__ = ["load_model", "load_feeds", "check_feeds", "run_model", "RunResult", "GemmRecord", "default_datapath",
           "supported_ops", "check_against_ort", "CheckReport", "TensorComparison", "ulp_distance"]
