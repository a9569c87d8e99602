"""all-MiniLM-L6-v2 as an ONNX model, from the real weights, and its quantized forms.

:func:`minilm_onnx` writes the float32 graph of the sentence encoder with ``onnx.helper``, from
the safetensors weights :func:`intsim.models.loading.load_minilm_weights` reads (SHA-256 checked),
node for node as ``torch.onnx.export`` (opset 17, the TorchScript exporter) writes a Hugging Face
``BertModel`` followed by sentence-transformers' mean pooling:

* embeddings: ``Gather`` of the word table by ``input_ids``; the position ids and the (zero)
  token type ids are ``Slice`` s of the model's buffers ``[1, 512]`` to the sequence length
  (``Shape -> Gather -> Unsqueeze``), each ``Gather`` ed from its table; ``word + token_type``,
  ``+ position`` (two ``Add``), ``LayerNormalization``;
* the attention mask as Hugging Face extends it: ``Unsqueeze(axes=[1, 2]) -> Cast(float) ->
  Sub(1, m) -> Mul(float32 min)``, added to the scores;
* per layer: ``MatMul`` by the transposed weight and ``Add`` of the bias for query, key, value;
  ``Reshape [0, 0, 12, 32]``, ``Transpose`` (``[0, 2, 1, 3]``; the key ``[0, 2, 3, 1]``);
  ``MatMul`` of query and key, ``Div`` by ``sqrt(32)``, ``Add`` of the mask, ``Softmax(axis=-1)``,
  ``MatMul`` by the value, ``Transpose``, ``Reshape [0, 0, 384]``, output projection, residual
  ``Add``, ``LayerNormalization``; the FFN with GELU in its erf form as the exporter decomposes
  it below opset 20 (``Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)``), residual,
  ``LayerNormalization``;
* outputs: ``token_embeddings`` ``[batch, seq, 384]`` (the last hidden state) and
  ``sentence_embedding`` ``[batch, 384]``, the mean over real tokens as sentence-transformers'
  ``Pooling`` computes it: ``Unsqueeze(mask, -1) -> Cast``, ``Mul``, ``ReduceSum`` over the
  sequence, divided by the token count ``ReduceSum -> Clip(min=1e-9)``. The embedding is not
  L2-normalized (the model's ``Normalize`` module is left out: cosines are unchanged).

LayerNorm: ``layer_norm="fused"`` (default) writes the opset-17 ``LayerNormalization`` node
(``epsilon=1e-12``), which ``torch.onnx.export`` emits from opset 17 on (and the dynamo exporter
always); ``"decomposed"`` writes the opset-14-and-earlier decomposition that Hugging Face
``optimum`` exports carry (``ReduceMean -> Sub -> Pow(2) -> ReduceMean -> Add(eps) -> Sqrt ->
Div -> Mul(gamma) -> Add(beta)``), which ONNX Runtime fuses back into ``LayerNormalization``. Where
the exporter writes an ``Expand`` to a broadcast shape (the token type ids, the pooling mask),
this graph relies on broadcasting instead: the values are the same.

:func:`quantize_minilm` quantizes such a model with ``onnxruntime.quantization``:
``quantize_static`` (QOperator or QDQ format, MinMax calibration over the ``fit`` half of
:func:`intsim.models.minilm.corpus.calibration_split`, one sentence per batch) or
``quantize_dynamic``. The attention-mask arithmetic, the ``Add`` of the mask to the scores and the
pooling are excluded from quantization (the mask holds the float32 minimum, which would make one
quantization step of the masked scores larger than every real score), as one does for BERT.
:func:`minilm_feeds` tokenizes sentences with intsim's WordPiece tokenizer into the feeds
(``input_ids``, ``attention_mask``: int64 ``[batch, seq]``, right padding).

>>> from intsim.onnx.minilm import minilm_onnx, minilm_feeds  # doctest: +SKIP
>>> p = minilm_onnx("/tmp/minilm.onnx")  # doctest: +SKIP
>>> sorted(minilm_feeds(["Hello world", "Hi"]))  # doctest: +SKIP
['attention_mask', 'input_ids']
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from .load import import_onnx

__all__ = ["minilm_onnx", "minilm_feeds", "quantize_minilm", "QUANT_FORMS", "MASK_AND_POOLING_NODES",
           "SentenceReader"]

#: the forms :func:`quantize_minilm` writes
QUANT_FORMS = ("qoperator", "qdq", "dynamic")

#: names of the nodes outside the encoder (mask arithmetic, pooling); with the ``Add`` of the mask
#: to the scores (``/encoder/layer.{i}/attention/self/Add_mask``) they are never quantized
MASK_AND_POOLING_NODES = ("/mask/Unsqueeze", "/mask/Cast", "/mask/Sub", "/mask/Mul", "/pool/Unsqueeze",
                          "/pool/Cast", "/pool/Mul", "/pool/ReduceSum", "/pool/ReduceSum_count", "/pool/Clip",
                          "/pool/Div")

_F32_MIN = float(np.finfo(np.float32).min)


class _Graph:
    """A node list with generated output names and float32/int64 initializers."""

    def __init__(self) -> None:
        self.onnx = import_onnx()
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def init(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))  # 0-d stays 0-d
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, *, n_out: int = 1, **attrs: Any) -> str:
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs[0]


def _reduce_mean(g: _Graph, x: str, name: str, opset: int) -> str:
    if opset < 18:
        return g.node("ReduceMean", [x], name, axes=[-1], keepdims=1)
    return g.node("ReduceMean", [x, g.init(f"{name}/axes", np.asarray([-1], np.int64))], name, keepdims=1)


def _layer_norm(g: _Graph, x: str, w: np.ndarray, b: np.ndarray, eps: float, prefix: str, form: str,
                opset: int) -> str:
    gw = g.init(f"{prefix}.weight", w.astype(np.float32))
    gb = g.init(f"{prefix}.bias", b.astype(np.float32))
    p = "/" + prefix.replace(".", "/").replace("layer/", "layer.")
    if form == "fused":
        return g.node("LayerNormalization", [x, gw, gb], f"{p}/LayerNormalization", axis=-1, epsilon=eps)
    mean = _reduce_mean(g, x, f"{p}/ReduceMean", opset)
    d = g.node("Sub", [x, mean], f"{p}/Sub")
    sq = g.node("Pow", [d, g.init(f"{p}/Constant_2", np.float32(2.0))], f"{p}/Pow")
    var = _reduce_mean(g, sq, f"{p}/ReduceMean_1", opset)
    ve = g.node("Add", [var, g.init(f"{p}/Constant_eps", np.float32(eps))], f"{p}/Add")
    sd = g.node("Sqrt", [ve], f"{p}/Sqrt")
    n = g.node("Div", [d, sd], f"{p}/Div")
    m = g.node("Mul", [n, gw], f"{p}/Mul")
    return g.node("Add", [m, gb], f"{p}/Add_1")


def _linear(g: _Graph, x: str, w: np.ndarray, b: np.ndarray, name: str, p: str) -> str:
    wt = g.init(f"onnx::MatMul_{name}", np.ascontiguousarray(w.T.astype(np.float32)))
    mm = g.node("MatMul", [x, wt], f"{p}/MatMul")
    return g.node("Add", [g.init(f"{name}.bias", b.astype(np.float32)), mm], f"{p}/Add")


def minilm_onnx(path: str | os.PathLike[str], *, model_dir: str | os.PathLike[str] | None = None,
                layer_norm: str = "fused", opset: int = 17) -> Path:
    """Write the float32 all-MiniLM-L6-v2 graph (see the module docstring) to ``path``.

    ``layer_norm``: ``"fused"`` (opset-17 ``LayerNormalization``) or ``"decomposed"``; ``opset``:
    17 or 18 (``ReduceMean``/``ReduceSum`` take their axes as the opset requires: an attribute
    below 18 for ``ReduceMean``, an input from 13 on for ``ReduceSum``). The weights come from
    :func:`intsim.models.loading.load_minilm_weights` (``model_dir`` or the installed model;
    ModelNotInstalledError when it is absent). Returns ``path``.

    Example:
        >>> minilm_onnx("/tmp/m.onnx").stat().st_size > 80_000_000  # doctest: +SKIP
        True
    """
    from ..models.loading import load_minilm_config, load_minilm_weights

    if layer_norm not in ("fused", "decomposed"):
        raise ConfigError(f"layer_norm {layer_norm!r}: expected 'fused' or 'decomposed'")
    if opset not in (17, 18):
        raise ConfigError(f"opset {opset}: minilm_onnx writes opset 17 or 18")
    onnx = import_onnx()
    from onnx import TensorProto, helper

    cfg = load_minilm_config(model_dir)
    w = load_minilm_weights(model_dir)
    nh, hd, hid, eps = cfg.num_attention_heads, cfg.head_dim, cfg.hidden_size, cfg.layer_norm_eps
    g = _Graph()
    i64 = np.int64

    def reduce_sum(x: str, name: str) -> str:  # over the sequence axis, keepdims=0 (axes an input from opset 13)
        return g.node("ReduceSum", [x, g.init(f"{name}/axes", np.asarray([1], i64))], name, keepdims=0)

    # -- embeddings
    word = g.node("Gather", [g.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                             "input_ids"], "/embeddings/word_embeddings/Gather")
    shape = g.node("Shape", ["input_ids"], "/embeddings/Shape")
    seq = g.node("Gather", [shape, g.init("/embeddings/Constant_1", np.asarray(1, i64))], "/embeddings/Gather",
                 axis=0)
    seq1 = g.node("Unsqueeze", [seq, g.init("/embeddings/Constant_axes", np.asarray([0], i64))],
                  "/embeddings/Unsqueeze")
    zero = g.init("/embeddings/Constant_0", np.asarray([0], i64))
    one = g.init("/embeddings/Constant_axis1", np.asarray([1], i64))
    tt_ids = g.node("Slice", [g.init("embeddings.token_type_ids", np.zeros((1, cfg.max_position_embeddings), i64)),
                              zero, seq1, one], "/embeddings/Slice")
    pos_ids = g.node("Slice", [g.init("embeddings.position_ids",
                                      np.arange(cfg.max_position_embeddings, dtype=i64)[None, :]),
                               zero, seq1, one], "/embeddings/Slice_1")
    tt = g.node("Gather", [g.init("embeddings.token_type_embeddings.weight",
                                  w["embeddings.token_type_embeddings.weight"]), tt_ids],
                "/embeddings/token_type_embeddings/Gather")
    pos = g.node("Gather", [g.init("embeddings.position_embeddings.weight",
                                   w["embeddings.position_embeddings.weight"]), pos_ids],
                 "/embeddings/position_embeddings/Gather")
    e = g.node("Add", [word, tt], "/embeddings/Add")
    e = g.node("Add", [e, pos], "/embeddings/Add_1")
    x = _layer_norm(g, e, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps,
                    "embeddings.LayerNorm", layer_norm, opset)
    # -- the extended attention mask [B, 1, 1, T]: 0 on real keys, float32 min on padding
    m = g.node("Unsqueeze", ["attention_mask", g.init("/mask/axes", np.asarray([1, 2], i64))], "/mask/Unsqueeze")
    m = g.node("Cast", [m], "/mask/Cast", to=TensorProto.FLOAT)
    m = g.node("Sub", [g.init("/mask/Constant_one", np.float32(1.0)), m], "/mask/Sub")
    mask = g.node("Mul", [m, g.init("/mask/Constant_min", np.float32(_F32_MIN))], "/mask/Mul")
    heads = g.init("/encoder/Constant_heads_shape", np.asarray([0, 0, nh, hd], i64))
    merged = g.init("/encoder/Constant_merged_shape", np.asarray([0, 0, hid], i64))
    sqrt_hd = g.init("/encoder/Constant_sqrt_head_dim", np.float32(math.sqrt(hd)))
    sqrt2 = g.init("/encoder/Constant_sqrt2", np.float32(math.sqrt(2.0)))
    f_one = g.init("/encoder/Constant_one", np.float32(1.0))
    f_half = g.init("/encoder/Constant_half", np.float32(0.5))
    for li in range(cfg.num_hidden_layers):
        pw = f"encoder.layer.{li}."
        p = f"/encoder/layer.{li}"
        sp = f"{p}/attention/self"
        q = _linear(g, x, w[pw + "attention.self.query.weight"], w[pw + "attention.self.query.bias"],
                    pw + "attention.self.query", f"{sp}/query")
        k = _linear(g, x, w[pw + "attention.self.key.weight"], w[pw + "attention.self.key.bias"],
                    pw + "attention.self.key", f"{sp}/key")
        v = _linear(g, x, w[pw + "attention.self.value.weight"], w[pw + "attention.self.value.bias"],
                    pw + "attention.self.value", f"{sp}/value")
        qh = g.node("Transpose", [g.node("Reshape", [q, heads], f"{sp}/Reshape")], f"{sp}/Transpose",
                    perm=[0, 2, 1, 3])
        kt = g.node("Transpose", [g.node("Reshape", [k, heads], f"{sp}/Reshape_1")], f"{sp}/Transpose_1",
                    perm=[0, 2, 3, 1])
        vh = g.node("Transpose", [g.node("Reshape", [v, heads], f"{sp}/Reshape_2")], f"{sp}/Transpose_2",
                    perm=[0, 2, 1, 3])
        s = g.node("MatMul", [qh, kt], f"{sp}/MatMul")
        s = g.node("Div", [s, sqrt_hd], f"{sp}/Div")
        s = g.node("Add", [s, mask], f"{sp}/Add_mask")
        pr = g.node("Softmax", [s], f"{sp}/Softmax", axis=-1)
        c = g.node("MatMul", [pr, vh], f"{sp}/MatMul_1")
        c = g.node("Transpose", [c], f"{sp}/Transpose_3", perm=[0, 2, 1, 3])
        c = g.node("Reshape", [c, merged], f"{sp}/Reshape_3")
        o = _linear(g, c, w[pw + "attention.output.dense.weight"], w[pw + "attention.output.dense.bias"],
                    pw + "attention.output.dense", f"{p}/attention/output/dense")
        o = g.node("Add", [o, x], f"{p}/attention/output/Add")
        x1 = _layer_norm(g, o, w[pw + "attention.output.LayerNorm.weight"], w[pw + "attention.output.LayerNorm.bias"],
                         eps, pw + "attention.output.LayerNorm", layer_norm, opset)
        up = _linear(g, x1, w[pw + "intermediate.dense.weight"], w[pw + "intermediate.dense.bias"],
                     pw + "intermediate.dense", f"{p}/intermediate/dense")
        ip = f"{p}/intermediate/intermediate_act_fn"
        t = g.node("Div", [up, sqrt2], f"{ip}/Div")
        t = g.node("Erf", [t], f"{ip}/Erf")
        t = g.node("Add", [t, f_one], f"{ip}/Add")
        t = g.node("Mul", [up, t], f"{ip}/Mul")
        act = g.node("Mul", [t, f_half], f"{ip}/Mul_1")
        d = _linear(g, act, w[pw + "output.dense.weight"], w[pw + "output.dense.bias"], pw + "output.dense",
                    f"{p}/output/dense")
        d = g.node("Add", [d, x1], f"{p}/output/Add")
        x = _layer_norm(g, d, w[pw + "output.LayerNorm.weight"], w[pw + "output.LayerNorm.bias"], eps,
                        pw + "output.LayerNorm", layer_norm, opset)
    g.nodes[-1].output[0] = tokens = "token_embeddings"  # the last LayerNorm's output, read by no node yet
    # -- mean pooling over real tokens
    mu = g.node("Unsqueeze", ["attention_mask", g.init("/pool/axes", np.asarray([-1], i64))], "/pool/Unsqueeze")
    mu = g.node("Cast", [mu], "/pool/Cast", to=TensorProto.FLOAT)
    tot = reduce_sum(g.node("Mul", [tokens, mu], "/pool/Mul"), "/pool/ReduceSum")
    cnt = reduce_sum(mu, "/pool/ReduceSum_count")
    cnt = g.node("Clip", [cnt, g.init("/pool/Constant_min", np.float32(1e-9))], "/pool/Clip")
    g.node("Div", [tot, cnt], "/pool/Div")
    g.nodes[-1].output[0] = "sentence_embedding"
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["batch", "sequence", hid]),
         helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hid])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="intsim.onnx.minilm")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def minilm_feeds(sentences: Sequence[str], max_len: int | None = None) -> dict[str, np.ndarray]:
    """The feeds of the MiniLM graph for ``sentences``: ``input_ids`` and ``attention_mask``, int64
    ``[batch, seq]`` from :func:`intsim.models.loading.tokenize` (intsim's WordPiece tokenizer,
    ``[CLS] ... [SEP]``, truncation at ``max_len`` tokens, default the model's 256; right padding
    with id 0 to the longest sentence). The dict can be saved with ``np.savez`` for
    ``intsim onnx check --inputs``.

    Example:
        >>> f = minilm_feeds(["Hello world", "Hi"])  # doctest: +SKIP
        >>> f["input_ids"].tolist(), f["attention_mask"].tolist()  # doctest: +SKIP
        ([[101, 7592, 2088, 102], [101, 7632, 102, 0]], [[1, 1, 1, 1], [1, 1, 1, 0]])
    """
    from ..models.loading import tokenize

    ids, mask = tokenize(list(sentences), max_len=max_len)
    return {"input_ids": np.ascontiguousarray(ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(mask, dtype=np.int64)}


class SentenceReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over sentences: one feed dict (from
    :func:`minilm_feeds`) per batch of ``batch_size`` sentences, in order. It is created through
    :func:`_reader_class` so that ``onnxruntime`` is imported only when quantizing."""

    def __init__(self, sentences: Sequence[str], batch_size: int = 1, max_len: int | None = None) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [minilm_feeds(sentences[i:i + batch_size], max_len) for i in range(0, len(sentences), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch's feeds, None after the last."""
        return next(self._batches, None)


_DTYPES = {"u8": "QUInt8", "s8": "QInt8"}


def _qtype(quantization: Any, name: str, what: str) -> Any:
    if name not in _DTYPES:
        raise ConfigError(f"{what} {name!r}: expected one of {', '.join(_DTYPES)}")
    return getattr(quantization.QuantType, _DTYPES[name])


def _excluded(model: Any) -> list[str]:
    return [n.name for n in model.graph.node if n.name in MASK_AND_POOLING_NODES or n.name.endswith("/Add_mask")]


def quantize_minilm(float_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
                    form: str = "qdq", per_channel: bool = False, activation_type: str = "u8",
                    weight_type: str = "s8", sentences: Sequence[str] | None = None,
                    op_types: Sequence[str] | None = None) -> Path:
    """Quantize the float MiniLM at ``float_path`` with ``onnxruntime.quantization`` into ``out_path``.

    ``form``: ``"qoperator"`` / ``"qdq"`` (``quantize_static`` in that ``QuantFormat``, MinMax
    calibration on ``sentences``, default the ``fit`` half of the calibration corpus, one
    sentence per batch: no padding in calibration) or ``"dynamic"`` (``quantize_dynamic``: weights
    quantized, activations quantized at run time by ``DynamicQuantizeLinear``; ``activation_type``
    is then uint8 by ONNX Runtime's definition and must be ``"u8"``). ``activation_type`` and
    ``weight_type``: ``"u8"`` or ``"s8"``; ``per_channel``: one weight scale per output column.
    ``op_types``: the operator types to quantize (``None``: the quantizer's default, every type it
    knows). The mask and pooling nodes (:data:`MASK_AND_POOLING_NODES`) and the ``Add`` of the
    mask to the scores are never quantized. Returns ``out_path``.

    Example:
        >>> quantize_minilm("/tmp/m.onnx", "/tmp/m_qdq.onnx", form="qdq", per_channel=True)  # doctest: +SKIP
        PosixPath('/tmp/m_qdq.onnx')
    """
    import logging

    try:
        from onnxruntime import quantization
    except ImportError:
        from ..core.errors import ModelNotInstalledError

        raise ModelNotInstalledError("onnxruntime is not installed: pip install 'intsim[onnx]'") from None
    if form not in QUANT_FORMS:
        raise ConfigError(f"form {form!r}: expected one of {', '.join(QUANT_FORMS)}")
    onnx = import_onnx()
    src, dst = Path(float_path), Path(out_path)
    model = onnx.load(str(src))
    exclude = _excluded(model)
    wt = _qtype(quantization, weight_type, "weight_type")
    at = _qtype(quantization, activation_type, "activation_type")
    ops = list(op_types) if op_types is not None else None
    dst.parent.mkdir(parents=True, exist_ok=True)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process the model
    try:
        if form == "dynamic":
            if activation_type != "u8":
                raise ConfigError("quantize_dynamic quantizes activations to uint8 (DynamicQuantizeLinear); "
                                  "activation_type must be 'u8'")
            quantization.quantize_dynamic(str(src), str(dst), weight_type=wt, per_channel=per_channel,
                                          op_types_to_quantize=ops, nodes_to_exclude=exclude)
            return dst
        if sentences is None:
            from ..models.minilm.corpus import calibration_split

            sentences = calibration_split()[0]
        reader = _reader_class(quantization)(list(sentences))
        fmt = quantization.QuantFormat.QDQ if form == "qdq" else quantization.QuantFormat.QOperator
        quantization.quantize_static(str(src), str(dst), reader, quant_format=fmt, activation_type=at,
                                     weight_type=wt, per_channel=per_channel, op_types_to_quantize=ops,
                                     nodes_to_exclude=exclude)
    finally:
        logging.getLogger().setLevel(level)
    return dst


def _reader_class(quantization: Any) -> type:
    """:class:`SentenceReader` as a subclass of ``quantization.CalibrationDataReader``."""
    return type("SentenceCalibrationReader", (SentenceReader, quantization.CalibrationDataReader), {})
