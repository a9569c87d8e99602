"""The integer MiniLM on the installed model (:class:`IntMiniLM`): calibrated, quantized, ready to embed."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...core.deprecation import renamed_keyword
from .calibration import (
    CALIBRATION_SENTENCES,
    TUNING_SENTENCES,
    Calibration,
    calibrate,
    check_sentences,
    model_max_len,
    reference_model,
    tokenize_sentences,
)
from .config import DEFAULT_CONFIG, IntConfig, get_config
from .forward import IntForward
from .nonlinear import DEFAULT_NONLINEAR, Nonlinear, get_nonlinear
from .quantize import quantize_model

__all__ = ["IntMiniLM", "load_int_minilm", "cached_calibration"]


class IntMiniLM:
    """The integer MiniLM on the installed model: calibrated, quantized, ready to embed.

    ``config`` and ``nonlinear`` are names (:data:`CONFIGURATIONS`, :data:`NONLINEAR`) or objects;
    the static scales come from :func:`calibrate` on ``calibration_sentences`` (cached per
    sentence set), the smoothing strengths and static margins are chosen on ``tuning_sentences``
    (both default to the two parts of the calibration corpus, :mod:`.corpus`); ``max_len`` bounds
    the tokens per sentence (default: the model's limit, 256; longer ones are truncated, ``[SEP]``
    kept, as sentence-transformers does). Raises :class:`~intsim.core.errors.ModelNotInstalledError` (naming the extra
    and the model package) when the model is missing.

    >>> m = IntMiniLM("w8a8")                                   # doctest: +SKIP
    >>> r = m.embed(["A cat sleeps.", "Stocks fell."])          # doctest: +SKIP
    >>> r.pooled.dtype, r.embeddings().shape                    # doctest: +SKIP
    (dtype('int64'), (2, 384))
    """

    @renamed_keyword("profile", "nonlinear")
    def __init__(self, config: IntConfig | str = DEFAULT_CONFIG, nonlinear: Nonlinear | str = DEFAULT_NONLINEAR, *,
                 calibration_sentences: Sequence[str] = CALIBRATION_SENTENCES, max_len: int | None = None,
                 tuning_sentences: Sequence[str] | None = TUNING_SENTENCES) -> None:
        self.config = get_config(config)
        self.nonlinear = get_nonlinear(nonlinear)
        self.max_len = model_max_len() if max_len is None else int(max_len)
        self.reference = reference_model()
        tune = tuple(check_sentences(tuning_sentences)) if tuning_sentences else ()
        self.calibration = cached_calibration(tuple(check_sentences(calibration_sentences)), self.max_len, tune)
        self.model = quantize_model(self.reference, self.calibration, self.config, self.nonlinear)

    @property
    def profile(self) -> Nonlinear:
        """The old name of :attr:`nonlinear` (kept for one release)."""
        return self.nonlinear

    def embedding_output(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Float64 embedding-LayerNorm output of the real tokens ``[tokens, hidden]`` and the lengths."""
        from intsim_reference.minilm import layer_norm

        sents = check_sentences(sentences)
        ids, mask = tokenize_sentences(sents, self.max_len)
        ref = self.reference
        m = mask.astype(bool)
        pos = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)[m]
        x = ref.word_embeddings[ids[m]] + ref.token_type_embeddings[0] + ref.position_embeddings[pos]
        x = layer_norm(x, ref.emb_ln_w, ref.emb_ln_b, ref.config.layer_norm_eps)
        return x, m.sum(axis=1).astype(np.int64)

    def embed(self, sentences: Sequence[str], **kwargs: Any) -> IntForward:
        """Quantize the embedding output of ``sentences`` and run the integer pass."""
        x, lens = self.embedding_output(sentences)
        return self.model.forward(self.model.quantize_input(x), lens, **kwargs)


@functools.lru_cache(maxsize=4)
def cached_calibration(sentences: tuple[str, ...] = CALIBRATION_SENTENCES, max_len: int | None = None,
                       tune_sentences: tuple[str, ...] = TUNING_SENTENCES) -> Calibration:
    """:func:`calibrate` on the installed model, once per sentence sets and token limit."""
    return calibrate(reference_model(), sentences, max_len, tune_sentences)


@renamed_keyword("profile", "nonlinear")
def load_int_minilm(config: str = DEFAULT_CONFIG, nonlinear: str = DEFAULT_NONLINEAR) -> IntMiniLM:
    """A cached :class:`IntMiniLM` for a configuration and a non-linear family name (default calibration)."""
    return _load(config, nonlinear)


@functools.lru_cache(maxsize=8)
def _load(config: str, nonlinear: str) -> IntMiniLM:
    return IntMiniLM(config, nonlinear)
