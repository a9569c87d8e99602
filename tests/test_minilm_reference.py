"""Tests of the safetensors reader, the MiniLM loader and the float64 reference pass.

The safetensors and erf/GELU tests need only numpy. Every test that needs the
real model (``intsim model fetch``) goes through the ``model`` fixture, which
skips cleanly when it is missing.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from intsim.core.errors import FileFormatError, ModelNotInstalledError
from intsim.models.safetensors import read_safetensors
from intsim_reference.minilm import GEMM_NAMES, LINEAR_GEMMS, GemmOperands, MiniLMReference, erf, gelu
from intsim_reference.sentences import PARAPHRASE_PAIRS, SENTENCES, UNRELATED_PAIRS

# ---------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------

_ST_NAMES = {
    np.dtype("<f8"): "F64",
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64",
    np.dtype("<i4"): "I32",
    np.dtype("<i2"): "I16",
    np.dtype("i1"): "I8",
    np.dtype("u1"): "U8",
    np.dtype("?"): "BOOL",
}


def _write_st(
    path: Path, tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict | None = None
) -> None:
    """Write a safetensors file from (dtype name, shape, raw bytes) triples."""
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hbytes = json.dumps(header).encode()
    hbytes += b" " * (-len(hbytes) % 8)  # the format pads the header with spaces
    path.write_bytes(struct.pack("<Q", len(hbytes)) + hbytes + b"".join(blobs))


def _write_raw(path: Path, header: object, data: bytes = b"", header_len: int | None = None) -> None:
    hbytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(hbytes) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", n) + hbytes + data)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "f64": rng.standard_normal((2, 3)),
        "f32": rng.standard_normal((4,)).astype("<f4"),
        "f16": rng.standard_normal((3, 1, 2)).astype("<f2"),
        "i64": rng.integers(-(2**62), 2**62, size=(5,), dtype=np.int64),
        "i32": rng.integers(-(2**31), 2**31, size=(2, 2), dtype=np.int32),
        "i16": rng.integers(-(2**15), 2**15, size=(3,), dtype=np.int16),
        "i8": np.array([-128, -1, 0, 1, 127], dtype=np.int8),
        "u8": np.array([[0, 255], [17, 3]], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.25, dtype="<f4"),
        "empty": np.zeros((0, 4), dtype="<f4"),
    }


def test_safetensors_roundtrip_every_dtype(tmp_path: Path) -> None:
    arrays = _arrays()
    bf16_values = np.array([1.0, -2.5, 3.140625, 0.0, -0.0, np.inf], dtype=np.float32)
    tensors = {name: (_ST_NAMES[a.dtype], list(a.shape), a.tobytes()) for name, a in arrays.items()}
    # BF16: the upper 16 bits of float32 values that bfloat16 represents exactly.
    tensors["bf16"] = ("BF16", [2, 3], (bf16_values.view(np.uint32) >> 16).astype("<u2").tobytes())
    path = tmp_path / "all.safetensors"
    _write_st(path, tensors, metadata={"format": "np"})
    got = read_safetensors(path)
    assert list(got) == [*arrays, "bf16"]  # header order, __metadata__ skipped
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype.newbyteorder("="), name
        assert got[name].shape == a.shape, name
        np.testing.assert_array_equal(got[name], a, err_msg=name)
        assert got[name].flags.writeable and got[name].flags.c_contiguous
    assert got["bf16"].dtype == np.float32
    np.testing.assert_array_equal(got["bf16"], bf16_values.reshape(2, 3))


def test_safetensors_big_endian_source_is_made_native(tmp_path: Path) -> None:
    a = np.arange(6, dtype=">i4")
    path = tmp_path / "be.safetensors"
    _write_st(path, {"x": ("I32", [6], a.astype("<i4").tobytes())})
    got = read_safetensors(path)["x"]
    assert got.dtype.isnative and got.tolist() == list(range(6))


def _assert_format_error(path: Path, *fragments: str) -> None:
    with pytest.raises(FileFormatError) as info:
        read_safetensors(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_safetensors_missing_file(tmp_path: Path) -> None:
    _assert_format_error(tmp_path / "nope.safetensors", "cannot read")


def test_safetensors_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    _write_st(path, {"w": ("F32", [4, 4], np.ones((4, 4), "<f4").tobytes())})
    full = path.read_bytes()
    path.write_bytes(full[:-10])  # data cut short
    _assert_format_error(path, "'w'", "out of range", "truncated")
    path.write_bytes(full[:5])  # not even the header length
    _assert_format_error(path, "too short")


def test_safetensors_header_length_past_eof(tmp_path: Path) -> None:
    path = tmp_path / "h.safetensors"
    _write_raw(path, {"__metadata__": {}}, header_len=10_000)
    _assert_format_error(path, "header length 10000", "past the end")
    _write_raw(path, {}, header_len=2**63)
    _assert_format_error(path, "limit")


def test_safetensors_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "j.safetensors"
    _write_raw(path, b'{"w": {"dtype": "F32",')
    _assert_format_error(path, "JSON")
    _write_raw(path, b"\xff\xfe{}")
    _assert_format_error(path, "UTF-8")
    _write_raw(path, [1, 2])
    _assert_format_error(path, "not an object")
    _write_raw(path, b'{"a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}, "a": {}}')
    _assert_format_error(path, "duplicate")


def test_safetensors_offsets_out_of_bounds(tmp_path: Path) -> None:
    path = tmp_path / "o.safetensors"
    _write_raw(path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 8)
    _assert_format_error(path, "'w'", "[4, 12]", "out of range")
    _write_raw(path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, b"\0" * 8)
    _assert_format_error(path, "out of range")
    _write_raw(path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8)
    _assert_format_error(path, "out of range")


def test_safetensors_other_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    _write_raw(path, {"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    _assert_format_error(path, "unknown dtype 'F8_E4M3'")
    _write_raw(path, {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8)
    _assert_format_error(path, "needs 12")
    _write_raw(path, {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4)
    _assert_format_error(path, "shape")
    _write_raw(path, {"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4)
    _assert_format_error(path, "lacks data_offsets")
    overlapping = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    _write_raw(path, overlapping, b"\0" * 12)
    _assert_format_error(path, "overlap")
    _write_raw(path, {"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02")
    _assert_format_error(path, "BOOL")


# ---------------------------------------------------------------------------
# erf / GELU (numpy only)
# ---------------------------------------------------------------------------


def test_erf_matches_math_erf_to_3_ulp() -> None:
    x = np.concatenate(
        [
            np.linspace(-8.0, 8.0, 200_001),
            np.geomspace(1e-300, 1e-2, 2_001),
            [1.25, 2.0, 6.0, np.nextafter(1.25, 0), np.nextafter(2.0, 0), np.nextafter(6.0, 0)],
        ]
    )
    want = np.array([math.erf(v) for v in x.tolist()])
    got = erf(x)
    err = np.abs(got - want)
    assert err.max() <= 4e-16
    nonzero = want != 0
    assert (err[nonzero] / np.spacing(np.abs(want[nonzero]))).max() <= 3
    assert erf(-0.0) == 0.0 and math.copysign(1.0, float(erf(-0.0))) == -1.0
    np.testing.assert_array_equal(erf([np.inf, -np.inf]), [1.0, -1.0])
    assert np.isnan(erf(np.nan))
    assert erf(np.ones((2, 3))).shape == (2, 3) and erf(0.5).shape == ()


def test_gelu_is_erf_form() -> None:
    x = np.linspace(-10, 10, 4001)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    np.testing.assert_allclose(gelu(x), want, rtol=0, atol=2e-15)


# ---------------------------------------------------------------------------
# The real model
# ---------------------------------------------------------------------------

def _model_available() -> bool:
    from intsim.models.store import model_available

    return model_available()


_HAVE_MODEL = _model_available()


@pytest.fixture(scope="module")
def model() -> MiniLMReference:
    if not _HAVE_MODEL:
        pytest.skip("the MiniLM model is missing: intsim model fetch")
    from intsim_reference.minilm import default_model

    return default_model()


@pytest.fixture(scope="module")
def batch(model: MiniLMReference) -> tuple[np.ndarray, np.ndarray]:
    from intsim.models.loading import tokenize

    return tokenize(list(SENTENCES))


@pytest.fixture(scope="module")
def embeddings(model: MiniLMReference, batch: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return model.forward(*batch)


def test_sentence_corpus_shape() -> None:
    assert len(SENTENCES) >= 40 and len(set(SENTENCES)) == len(SENTENCES)
    pairs = [*PARAPHRASE_PAIRS, *UNRELATED_PAIRS]
    assert all(0 <= i < len(SENTENCES) and 0 <= j < len(SENTENCES) and i != j for i, j in pairs)
    assert not {frozenset(p) for p in PARAPHRASE_PAIRS} & {frozenset(p) for p in UNRELATED_PAIRS}


def test_weights_names_shapes_dtypes(model: MiniLMReference) -> None:
    from intsim.models.loading import (
        expected_weight_shapes,
        load_minilm_config,
        load_minilm_weights,
        minilm_dir,
    )

    cfg = load_minilm_config()
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers) == (30522, 384, 6)
    assert (cfg.num_attention_heads, cfg.head_dim, cfg.intermediate_size) == (12, 32, 1536)
    assert cfg.layer_norm_eps == 1e-12 and cfg.hidden_act == "gelu"
    assert cfg.pooling == "mean" and cfg.normalize
    assert (minilm_dir() / "model.safetensors").is_file()
    w = load_minilm_weights()
    expected = expected_weight_shapes(cfg)
    assert len(expected) == 5 + 6 * 16
    assert set(w) == set(expected) | {"pooler.dense.weight", "pooler.dense.bias"}
    for name, shape in expected.items():
        assert w[name].shape == shape and w[name].dtype == np.float32, name
    assert w["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert w["encoder.layer.0.attention.self.query.weight"].shape == (384, 384)
    assert w["encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)
    assert w["encoder.layer.5.output.dense.weight"].shape == (384, 1536)


def test_weights_agree_with_safetensors_package(model: MiniLMReference) -> None:
    st = pytest.importorskip("safetensors.numpy")
    from intsim.models.loading import minilm_dir

    path = minilm_dir() / "model.safetensors"
    ours, theirs = read_safetensors(path), st.load_file(str(path))
    assert list(ours) == list(theirs) or set(ours) == set(theirs)
    for name in theirs:
        assert ours[name].dtype == theirs[name].dtype
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_model_not_installed_messages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from intsim.models import loading as models
    from intsim.models import store

    monkeypatch.setattr(store, "_package_dir", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("INTSIM_MODEL_DIR", raising=False)
    with pytest.raises(ModelNotInstalledError, match="intsim model fetch"):
        models.minilm_dir()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # intsim does not need it
    assert models.load_tokenizer().encode("Hello world") == [101, 7592, 2088, 102]


def test_tokenize_layout(model: MiniLMReference) -> None:
    from intsim.models.loading import tokenize

    ids, mask = tokenize(["Hello world", "Hi"])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.tolist() == [[101, 7592, 2088, 102], [101, 7632, 102, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    long = " ".join(["word"] * 200)
    ids, mask = tokenize([long, "short"], max_len=16)
    assert ids.shape == (2, 16) and mask[0].all()
    assert ids[0, 0] == 101 and ids[0, -1] == 102
    assert ids[1, :3].tolist() == [101, 2460, 102] and mask[1].sum() == 3


def test_tokenize_rejects_bad_input(model: MiniLMReference) -> None:
    from intsim.models.loading import tokenize

    with pytest.raises(ValueError, match="empty"):
        tokenize([])
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        tokenize(["fine", ""])
    with pytest.raises(ValueError, match="sentence 2 is empty or whitespace"):
        tokenize(["fine", "also fine", " \t\n"])
    with pytest.raises(ValueError, match="sentence 0 is a int"):
        tokenize([3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="single string"):
        tokenize("a bare string")
    with pytest.raises(ValueError, match="max_len"):
        tokenize(["x"], max_len=1)


def test_embeddings_unit_norm(embeddings: np.ndarray) -> None:
    assert embeddings.shape == (len(SENTENCES), 384) and embeddings.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=0, atol=1e-14)


def test_matches_pytorch_float64_golden(embeddings: np.ndarray) -> None:
    # First components of the embeddings from Hugging Face transformers' BertModel in
    # float64 (torch 2.13, transformers 5.23) + mean pooling + normalize, same tokens.
    golden = {
        0: [0.10290818216007128, -0.015720671964717547, -0.04250464796041104,
            0.11933064447363968, -0.03984034770417805, 0.024823173801765876],
        42: [0.015295651514303758, -0.029568290533197344, 0.05177932092716386,
             0.010332165359513293, 0.03282551029063297, -0.03471291610406805],
        43: [-0.06115653552352566, -0.03740139377220109, -0.0020557757719833138,
             -0.11961523660059796, -0.02478624792322775, -0.007134812079219856],
    }  # fmt: skip
    for i, want in golden.items():
        np.testing.assert_allclose(embeddings[i, :6], want, rtol=0, atol=1e-12)


def test_paraphrases_beat_unrelated_pairs(embeddings: np.ndarray) -> None:
    sim = embeddings @ embeddings.T
    para = np.array([sim[i, j] for i, j in PARAPHRASE_PAIRS])
    unrel = np.array([sim[i, j] for i, j in UNRELATED_PAIRS])
    # Measured: paraphrases 0.571 .. 0.902 (mean 0.77), unrelated -0.115 .. 0.079 (mean 0.01).
    assert para.min() > 0.5
    assert unrel.max() < 0.2
    assert para.min() > unrel.max() + 0.3
    assert para.mean() - unrel.mean() > 0.6


def test_padding_invariance(model: MiniLMReference, embeddings: np.ndarray) -> None:
    from intsim.models.loading import tokenize

    # Shortest (43), longest (42) and a few in between, alone and in a small batch.
    picks = [43, 42, 0, 7, 27]
    for i in picks:
        alone = model.forward(*tokenize([SENTENCES[i]]))
        np.testing.assert_allclose(alone[0], embeddings[i], rtol=0, atol=1e-12, err_msg=SENTENCES[i])
    small = model.forward(*tokenize([SENTENCES[i] for i in picks]))
    np.testing.assert_allclose(small, embeddings[picks], rtol=0, atol=1e-12)
    # Extra padding columns change nothing either.
    ids, mask = tokenize(list(SENTENCES[:3]))
    wide_ids = np.pad(ids, ((0, 0), (0, 7)))
    wide_mask = np.pad(mask, ((0, 0), (0, 7)))
    np.testing.assert_allclose(model.forward(wide_ids, wide_mask), embeddings[:3], rtol=0, atol=1e-12)


def test_forward_rejects_bad_inputs(model: MiniLMReference) -> None:
    ids = np.array([[101, 7592, 102]])
    with pytest.raises(ValueError, match="no real token"):
        model.forward(ids, np.zeros_like(ids))
    with pytest.raises(ValueError, match="input_ids must lie"):
        model.forward(np.array([[101, 30522, 102]]), np.ones_like(ids))
    with pytest.raises(ValueError, match="0 and 1"):
        model.forward(ids, np.full_like(ids, 2))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        model.forward(ids[0], np.ones(3, dtype=np.int64))


def test_capture_names_shapes_and_values(model: MiniLMReference, embeddings: np.ndarray) -> None:
    from intsim.models.loading import load_minilm_weights, tokenize
    from intsim_reference.minilm import capture_gemm_operands

    sentences = list(SENTENCES[40:44])  # lengths 15, 14, 38, 5 tokens: real padding
    ids, mask = tokenize(sentences)
    lengths = mask.sum(axis=1).tolist()
    n_tokens = sum(lengths)
    calls: list[tuple[int, str, tuple[int, ...], tuple[int, ...]]] = []

    def capture(layer: int, name: str, a: np.ndarray, b: np.ndarray) -> None:
        assert a.dtype == np.float64 and b.dtype == np.float64
        assert a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0]
        calls.append((layer, name, a.shape, b.shape))

    out = model.forward(ids, mask, capture=capture)
    np.testing.assert_array_equal(out, model.forward(ids, mask))  # capture changes nothing
    np.testing.assert_allclose(out, embeddings[40:44], rtol=0, atol=1e-12)

    per_layer = 6 + 2 * 12 * len(sentences)
    assert len(calls) == 6 * per_layer
    expected_linear = {
        "q_proj": ((n_tokens, 384), (384, 384)),
        "k_proj": ((n_tokens, 384), (384, 384)),
        "v_proj": ((n_tokens, 384), (384, 384)),
        "o_proj": ((n_tokens, 384), (384, 384)),
        "ffn_up": ((n_tokens, 384), (384, 1536)),
        "ffn_down": ((n_tokens, 1536), (1536, 384)),
    }
    for layer in range(6):
        chunk = calls[layer * per_layer : (layer + 1) * per_layer]
        assert {c[0] for c in chunk} == {layer}
        names = [c[1] for c in chunk]
        assert names == (
            ["q_proj", "k_proj", "v_proj"] + ["scores"] * 12 * len(sentences)
            + ["attn_v"] * 12 * len(sentences) + ["o_proj", "ffn_up", "ffn_down"]
        )  # fmt: skip
        for _, name, a_shape, b_shape in chunk:
            if name in expected_linear:
                assert (a_shape, b_shape) == expected_linear[name], name
        scores = [c for c in chunk if c[1] == "scores"]
        attn_v = [c for c in chunk if c[1] == "attn_v"]
        for s, t in enumerate(lengths):
            for h in range(12):
                assert scores[s * 12 + h][2:] == ((t, 32), (32, t))
                assert attn_v[s * 12 + h][2:] == ((t, t), (t, 32))

    ops = capture_gemm_operands(sentences)
    assert len(ops) == 6 * per_layer and all(isinstance(o, GemmOperands) for o in ops)
    assert {o.name for o in ops} == set(GEMM_NAMES)
    assert [(o.layer, o.name, o.a.shape, o.b.shape) for o in ops] == calls
    w = load_minilm_weights()
    by_key = {(o.layer, o.name, o.sentence, o.head): o for o in ops}
    for layer in range(6):
        p = f"encoder.layer.{layer}."
        for name, key in [("q_proj", "attention.self.query"), ("ffn_down", "output.dense")]:
            op = by_key[(layer, name, None, None)]
            np.testing.assert_array_equal(op.b, w[p + key + ".weight"].T.astype(np.float64))
            assert not op.b.flags.writeable
        for name in LINEAR_GEMMS:
            assert by_key[(layer, name, None, None)].shape[0] == n_tokens
        for s, _t in enumerate(lengths):
            for h in range(12):
                sc, av = by_key[(layer, "scores", s, h)], by_key[(layer, "attn_v", s, h)]
                logits = sc.a @ sc.b / math.sqrt(32)
                probs = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs /= probs.sum(axis=1, keepdims=True)
                np.testing.assert_allclose(av.a, probs, rtol=0, atol=1e-14)
                np.testing.assert_allclose(av.a.sum(axis=1), 1.0, rtol=0, atol=1e-14)
        # Q of head h is columns h*32:(h+1)*32 of q_proj's output, rows of sentence s.
        q_op = by_key[(layer, "q_proj", None, None)]
        q = q_op.a @ q_op.b + w[p + "attention.self.query.bias"]
        start = sum(lengths[:2])
        np.testing.assert_allclose(
            by_key[(layer, "scores", 2, 5)].a, q[start : start + lengths[2], 160:192], rtol=0, atol=1e-12
        )
