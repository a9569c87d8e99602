"""all-MiniLM-L6-v2 as an ONNX graph (intsim.onnx.minilm) and its onnxruntime.quantization forms, bit for bit.

Needs the real model (``intsim model fetch``): every test skips cleanly without it. The float graph is
checked against the float64 reference (``intsim_reference.minilm``); each quantized form (QOperator
and QDQ from ``quantize_static``, per tensor and per channel, uint8 and int8 activations;
``quantize_dynamic`` with uint8 and int8 weights) must be bit-identical to ONNX Runtime in both
optimization modes on sentences of ``intsim_reference.sentences`` (disjoint from the calibration
sentences). Default: 4 sentences and four of the eight forms; ``INTSIM_ONNX_MINILM_SENTENCES=32`` (any
count up to 44) runs more sentences, ``INTSIM_EXHAUSTIVE=1`` every form.
Models are built once per session under the pytest temporary directory.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from intsim.core.errors import ConfigError  # noqa: E402
from intsim.onnx import check_against_ort, load_model  # noqa: E402


def _have_model() -> bool:
    from intsim.models.store import model_available

    return model_available()


pytestmark = pytest.mark.skipif(not _have_model(), reason="the MiniLM model is missing: intsim model fetch")

N_SENTENCES = int(os.environ.get("INTSIM_ONNX_MINILM_SENTENCES", "4"))


@pytest.fixture(scope="session")
def sentences():
    from intsim_reference.sentences import SENTENCES

    return list(SENTENCES[:N_SENTENCES])


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """``get(form=None, ...)``: the float graph (form None) or a quantized one, built once."""
    from intsim.onnx.minilm import minilm_onnx, quantize_minilm

    logging.getLogger().setLevel(logging.ERROR)
    tmp = tmp_path_factory.mktemp("onnx_minilm")
    cache: dict = {}

    def get(form=None, per_channel=False, act="u8", weight="s8", layer_norm="fused"):
        key = (form, per_channel, act, weight, layer_norm)
        if key not in cache:
            if form is None:
                cache[key] = minilm_onnx(tmp / f"minilm_{layer_norm}.onnx", layer_norm=layer_norm)
            else:
                name = f"minilm_{form}_{'pc' if per_channel else 'pt'}_a{act}_w{weight}.onnx"
                cache[key] = quantize_minilm(get(), tmp / name, form=form, per_channel=per_channel,
                                             activation_type=act, weight_type=weight)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def feeds(sentences):
    from intsim.onnx.minilm import minilm_feeds

    return minilm_feeds(sentences)


def _cosines(embedding: np.ndarray, sentences) -> np.ndarray:
    from intsim_reference.minilm import embed

    ref = embed(sentences)
    e = embedding.astype(np.float64)
    return (e / np.linalg.norm(e, axis=1, keepdims=True) * ref).sum(axis=1)


@pytest.mark.parametrize("layer_norm", ["fused", "decomposed"])
def test_float_graph_matches_the_float64_reference(minilm, feeds, sentences, layer_norm):
    from intsim.onnx.check import run_ort

    out = run_ort(load_model(minilm(layer_norm=layer_norm)), feeds, optimization="enabled")
    assert out["token_embeddings"].shape == feeds["input_ids"].shape + (384,)
    assert _cosines(out["sentence_embedding"], sentences).min() > 0.99999


def test_float_graph_is_written_as_an_exporter_writes_it(minilm):
    fused = load_model(minilm())
    ops = {n.op_type for n in fused.graph.node}
    assert {"Gather", "Slice", "LayerNormalization", "MatMul", "Softmax", "Erf", "ReduceSum", "Clip"} <= ops
    assert [(i.name, i.type.tensor_type.elem_type) for i in fused.graph.input] == \
        [("input_ids", onnx.TensorProto.INT64), ("attention_mask", onnx.TensorProto.INT64)]
    assert [o.name for o in fused.graph.output] == ["token_embeddings", "sentence_embedding"]
    assert sum(n.op_type == "LayerNormalization" for n in fused.graph.node) == 13
    decomposed = {n.op_type for n in load_model(minilm(layer_norm="decomposed")).graph.node}
    assert "LayerNormalization" not in decomposed and {"ReduceMean", "Pow", "Sqrt"} <= decomposed


@pytest.mark.parametrize("mode", ["enabled", "disabled"])
def test_float_graph_is_bit_identical_to_onnxruntime(minilm, feeds, mode):
    rep = check_against_ort(minilm(), feeds, optimization=mode)
    assert rep.ok and all(t.ok for t in rep.tensors), rep.table()


#: four forms by default (each operator kind of the others appears in them); all eight with
#: INTSIM_EXHAUSTIVE=1 (a few minutes)
_MORE = pytest.mark.skipif(os.environ.get("INTSIM_EXHAUSTIVE") != "1",
                           reason="the other quantized forms: set INTSIM_EXHAUSTIVE=1")
FORMS = [pytest.param("qoperator", False, "u8", "s8", id="qoperator-pt-u8"),
         pytest.param("qoperator", True, "s8", "s8", id="qoperator-pc-s8", marks=_MORE),
         pytest.param("qdq", False, "u8", "s8", id="qdq-pt-u8", marks=_MORE),
         pytest.param("qdq", False, "s8", "s8", id="qdq-pt-s8", marks=_MORE),
         pytest.param("qdq", True, "u8", "s8", id="qdq-pc-u8"),
         pytest.param("qdq", True, "s8", "s8", id="qdq-pc-s8"),
         pytest.param("dynamic", False, "u8", "u8", id="dynamic-w-u8", marks=_MORE),
         pytest.param("dynamic", False, "u8", "s8", id="dynamic-w-s8")]


@pytest.mark.parametrize("mode", ["enabled", "disabled"])
@pytest.mark.parametrize(("form", "per_channel", "act", "weight"), FORMS)
def test_quantized_minilm_is_bit_identical_to_onnxruntime(minilm, feeds, form, per_channel, act, weight, mode):
    rep = check_against_ort(minilm(form, per_channel, act, weight), feeds, optimization=mode)
    assert rep.ok, rep.table()
    assert all(t.ok for t in rep.tensors), rep.table()  # the float intermediates too
    assert all(g.n_overflow == 0 for g in rep.gemms)
    # as written, a QDQ graph multiplies dequantized floats (SGEMM); every other graph has integer GEMMs
    assert bool(rep.gemms) != (form == "qdq" and mode == "disabled")


def test_quantized_minilm_holds_the_operators_under_test(minilm, feeds):
    def ops(*key):
        return set(check_against_ort(minilm(*key), feeds, optimization="enabled", intermediates=False).ops)

    u8, s8, dyn = ops("qdq", True, "u8", "s8"), ops("qdq", True, "s8", "s8"), ops("dynamic", False, "u8", "s8")
    assert {"QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearSoftmax"} <= u8 and "MatMul" not in u8
    assert {"QLinearMatMul", "QLinearSoftmax", "MatMul"} <= s8  # int8 activations: float GEMMs of the linear layers
    assert {"DynamicQuantizeMatMul", "FusedMatMul"} <= dyn


def test_cli_check_exits_0(minilm, feeds, tmp_path, capsys):
    from intsim.apps.onnx_cli import main

    npz = tmp_path / "feeds.npz"
    np.savez(npz, **feeds)
    assert main(["onnx", "check", str(minilm("qdq", True, "s8", "s8")), "--inputs", str(npz),
                 "--optimization", "enabled", "--no-intermediates"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_calibration_is_disjoint_from_the_test_sentences():
    from intsim.models.minilm.corpus import calibration_split
    from intsim_reference.sentences import SENTENCES

    assert not set(calibration_split()[0]) & set(SENTENCES)


def test_feeds_and_errors(minilm, tmp_path):
    from intsim.onnx.minilm import minilm_feeds, minilm_onnx, quantize_minilm

    f = minilm_feeds(["Hello world", "Hi"])
    assert f["input_ids"].dtype == np.int64 and f["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    with pytest.raises(ConfigError, match="form 'int4'"):
        quantize_minilm(minilm(), tmp_path / "x.onnx", form="int4")
    with pytest.raises(ConfigError, match="uint8"):
        quantize_minilm(minilm(), tmp_path / "x.onnx", form="dynamic", activation_type="s8")
    with pytest.raises(ConfigError, match="weight_type 'fp8'"):
        quantize_minilm(minilm(), tmp_path / "x.onnx", form="qdq", weight_type="fp8")
    with pytest.raises(ConfigError, match="layer_norm"):
        minilm_onnx(tmp_path / "x.onnx", layer_norm="rms")
