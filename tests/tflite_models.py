"""Test helper: one-operator .tflite models, run by the real TFLite interpreter (``ai-edge-litert``).

:func:`one_op_model` writes a flatbuffer with one input tensor, one builtin operator and one output
tensor (their quantization parameters as given) with the schema bindings the package ships
(``ai_edge_litert.schema_py_generated``, object API) and ``flatbuffers.Builder``; :func:`run`
feeds it to ``ai_edge_litert.interpreter.Interpreter`` with one of its op resolvers:

* ``"ref"``: ``BUILTIN_REF``, the reference kernels (``kReference`` in ``kernels/activations.cc``);
* ``"builtin"``: ``BUILTIN``, the optimized kernels plus the default delegate (XNNPACK), what
  ``Interpreter(model_content=...)`` gives a user who sets nothing;
* ``"nodelegate"``: ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, the optimized kernels alone.

Scales and zero points are stored as the schema's float32 / int64; TFLite reads the scales as
float32, as intsim's ``float32_params`` options do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: resolver name -> OpResolverType member name
RESOLVERS = {"ref": "BUILTIN_REF", "builtin": "BUILTIN", "nodelegate": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}

_OPS = {"logistic": ("LOGISTIC", None), "tanh": ("TANH", None), "softmax": ("SOFTMAX", "SoftmaxOptions")}
_DTYPES = {np.dtype(np.int8): "INT8", np.dtype(np.int16): "INT16", np.dtype(np.uint8): "UINT8"}


def one_op_model(op: str, dtype: Any, shape: tuple[int, ...], in_scale: float, in_zp: int, out_scale: float,
                 out_zp: int, *, beta: float = 1.0, version: int | None = None) -> bytes:
    """The .tflite bytes of ``output = op(input)`` (``op``: logistic, tanh or softmax)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    name, options = _OPS[op]
    dt = np.dtype(dtype)
    ttype = getattr(s.TensorType, _DTYPES[dt])
    if version is None:
        version = {"INT8": 2, "UINT8": 1, "INT16": 3}[_DTYPES[dt]]

    def tensor(tname: str, scale: float, zp: int) -> Any:
        t = s.TensorT()
        t.shape = list(shape)
        t.type = ttype
        t.buffer = 0
        t.name = tname
        q = s.QuantizationParametersT()
        q.scale = [float(scale)]
        q.zeroPoint = [int(zp)]
        t.quantization = q
        return t

    code = s.OperatorCodeT()
    code.builtinCode = getattr(s.BuiltinOperator, name)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = version
    oper = s.OperatorT()
    oper.opcodeIndex = 0
    oper.inputs = [0]
    oper.outputs = [1]
    if options == "SoftmaxOptions":
        opt = s.SoftmaxOptionsT()
        opt.beta = float(beta)
        oper.builtinOptionsType = s.BuiltinOptions.SoftmaxOptions
        oper.builtinOptions = opt
    sub = s.SubGraphT()
    sub.tensors = [tensor("input", in_scale, in_zp), tensor("output", out_scale, out_zp)]
    sub.inputs = [0]
    sub.outputs = [1]
    sub.operators = [oper]
    sub.name = "main"
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.subgraphs = [sub]
    model.description = "intsim test model"
    model.buffers = [s.BufferT()]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run(model: bytes, x: np.ndarray, resolver: str = "ref") -> np.ndarray:
    """Run a one-input model on ``x`` with the resolver ``ref``, ``builtin`` or ``nodelegate``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model, experimental_op_resolver_type=getattr(OpResolverType,
                                                                                    RESOLVERS[resolver]))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def run_op(op: str, x: np.ndarray, in_scale: float, in_zp: int, out_scale: float, out_zp: int, *,
           beta: float = 1.0, resolver: str = "ref") -> np.ndarray:
    """Build the one-operator model for ``x``'s dtype and shape and run it."""
    model = one_op_model(op, x.dtype, tuple(x.shape), in_scale, in_zp, out_scale, out_zp, beta=beta)
    return run(model, x, resolver)
