"""Input text, the float64 reference and the calibration pass of the integer MiniLM.

:func:`float_probe` runs the float64 reference (:mod:`reference.minilm`) with a capture hook and
rebuilds every tensor the integer pass quantizes; :func:`calibrate` turns those of a few
sentences (:data:`CALIBRATION_SENTENCES`, none of them in the test set) into the static ranges of
a :class:`Calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.errors import ConfigError, DTypeError, ModelNotInstalledError
from .corpus import calibration_split

if TYPE_CHECKING:  # pragma: no cover
    from intsim_reference.minilm import MiniLMReference

__all__ = ["MODELS_HINT", "CALIBRATION_SENTENCES", "TUNING_SENTENCES", "LINEAR_INPUTS", "model_max_len",
           "truncated_count", "check_sentences", "reference_model",
           "tokenize_sentences", "FloatProbe", "float_probe", "Calibration", "calibrate"]

#: How to get what the integer MiniLM needs: the model folder.
MODELS_HINT = "fetch the model: intsim model fetch"

#: The sentences whose float64 activations set the static ranges: the ``fit`` part of the
#: calibration corpus (:mod:`.corpus`, every kind of text, up to the 256-token limit).
CALIBRATION_SENTENCES: tuple[str, ...] = calibration_split()[0]
#: The calibration corpus's other part, on which the smoothing strengths and the static activation
#: margin are chosen (never the evaluation sets).
TUNING_SENTENCES: tuple[str, ...] = calibration_split()[1]


def check_sentences(sentences: Any) -> list[str]:
    """Validate input text: a non-empty sequence of non-blank strings.

    Raises :class:`~intsim.core.errors.ConfigError` for a single string (not a list), an empty
    list, or an empty/whitespace-only sentence (naming its index), and
    :class:`~intsim.core.errors.DTypeError` for an entry that is not a string.

    >>> check_sentences(["Hello.", "Hi"])
    ['Hello.', 'Hi']
    >>> check_sentences(["Hello.", "  "])
    Traceback (most recent call last):
    ...
    intsim.core.errors.ConfigError: input text: sentence 1 is empty or whitespace-only: '  '
    """
    if isinstance(sentences, (str, bytes)):
        raise ConfigError("input text: pass a list of sentences, not a single string")
    try:
        items = list(sentences)
    except TypeError:
        raise DTypeError(f"input text: expected a list of strings, got {type(sentences).__name__}") from None
    if not items:
        raise ConfigError("input text: no sentences (the list is empty)")
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise DTypeError(f"input text: sentence {i} is a {type(s).__name__}, not a str")
        if not s.strip():
            raise ConfigError(f"input text: sentence {i} is empty or whitespace-only: {s!r}")
    return items


def reference_model() -> MiniLMReference:
    """The float64 reference on the installed weights (cached), with a clear message when missing."""
    try:
        from intsim_reference.minilm import default_model
        return default_model()
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"the integer MiniLM needs the MiniLM model: {MODELS_HINT} ({exc})") from exc


def model_max_len() -> int:
    """The model's own token limit (``max_seq_length`` of its ``sentence_bert_config.json``: 256)."""
    from ..loading import load_minilm_config

    try:
        return load_minilm_config().max_seq_length
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"the integer MiniLM needs the MiniLM model: {MODELS_HINT} ({exc})") from exc


def tokenize_sentences(sentences: Sequence[str], max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask ``[B, T]`` of ``sentences`` (at most ``max_len`` tokens each; ``None``:
    the model's limit, :func:`model_max_len`), with a clear message when the tokenizer is missing."""
    from ..loading import tokenize

    try:
        return tokenize(sentences, max_len=max_len)
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"tokenizing needs the model folder: {MODELS_HINT} ({exc})") from exc


def truncated_count(sentences: Sequence[str], max_len: int | None = None) -> int:
    """How many of ``sentences`` have more than ``max_len`` tokens (``[CLS]`` and ``[SEP]`` included;
    ``None``: the model's limit), i.e. lose their end to truncation."""
    limit = model_max_len() if max_len is None else int(max_len)
    if limit >= 512:
        return 0
    _, mask = tokenize_sentences(sentences, 512)
    return int((mask.sum(axis=1) > limit).sum())


# float64 probe: every tensor the integer pass quantizes, for calibration and error analysis
_PROBES = ("x", "q", "k", "v", "scores", "ctx", "res1", "x1", "up", "act", "res2", "out")
#: The probed tensors that are linear layers' inputs (per-channel ranges and samples in :class:`Calibration`).
LINEAR_INPUTS = ("x", "ctx", "x1", "act")


@dataclass
class FloatProbe:
    """Float64 tensors of the reference pass, packed over real tokens (sentence by sentence).

    ``layers[l]`` maps each name of ``x q k v ctx res1 x1 up act res2 out`` to a
    ``[tokens, width]`` array (``x`` the layer input, ``res1``/``res2`` the residual sums
    before LayerNorm, ``out`` the layer output) and ``scores_amax`` to the largest
    ``|q_h k_h^T| / sqrt(head_dim)``; ``embeddings`` are the reference's unit-norm outputs.
    """

    layers: list[dict[str, Any]]
    embeddings: np.ndarray
    lengths: np.ndarray


#: :func:`float_probe` runs the reference on batches of sentences of similar lengths, at most this many
#: padded tokens each (a batch padded to its longest sentence wastes little).
PROBE_BATCH_TOKENS = 4096


def float_probe(ref: MiniLMReference, ids: np.ndarray, mask: np.ndarray) -> FloatProbe:
    """Run the float64 reference with a capture hook and rebuild every probed tensor.

    The sentences run in batches of similar lengths (sorted by length, at most
    :data:`PROBE_BATCH_TOKENS` padded tokens a batch), so that short sentences are not padded to
    the longest one; the result is assembled in the order of ``ids``.

    The hook yields each GEMM's operands; the residual sums, the GELU input and the
    layer output are recomputed from them with the reference's own weights and
    :func:`intsim_reference.minilm.layer_norm`.

    >>> from intsim_reference.minilm import default_model                       # doctest: +SKIP
    >>> p = float_probe(default_model(), *tokenize_sentences(["Hello world."], 64))  # doctest: +SKIP
    >>> p.layers[0]["x"].shape, p.layers[5]["out"].shape, p.embeddings.shape  # doctest: +SKIP
    ((5, 384), (5, 384), (1, 384))
    """
    ids, mask = np.asarray(ids), np.asarray(mask)
    lengths = mask.sum(axis=1).astype(np.int64)
    order = np.argsort(lengths, kind="stable")
    batches, cur = [], []
    for i in order.tolist():
        if cur and (len(cur) + 1) * int(lengths[i]) > PROBE_BATCH_TOKENS:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    if len(batches) == 1 and int(lengths.max(initial=0)) == ids.shape[1]:
        return _probe_batch(ref, ids, mask)
    parts = []
    for b in batches:
        w = max(1, int(lengths[b].max()))
        parts.append((b, _probe_batch(ref, ids[b, :w], mask[b, :w])))
    # reassemble: sentence i's tokens are rows [start_i, start_i + len_i) of its batch's packed tensors
    where: dict[int, tuple[int, int]] = {}
    for pi, (b, pr) in enumerate(parts):
        starts = np.concatenate([[0], np.cumsum(pr.lengths)[:-1]])
        for j, i in enumerate(b):
            where[i] = (pi, int(starts[j]))
    layers = []
    for li in range(len(parts[0][1].layers)):
        d: dict[str, Any] = {"scores_amax": max(pr.layers[li]["scores_amax"] for _, pr in parts)}
        for name in parts[0][1].layers[li]:
            if name == "scores_amax":
                continue
            d[name] = np.concatenate([parts[where[i][0]][1].layers[li][name][where[i][1]:where[i][1] + int(lengths[i])]
                                      for i in range(len(lengths))])
        layers.append(d)
    emb = np.empty((len(lengths), parts[0][1].embeddings.shape[1]))
    for b, pr in parts:
        emb[b] = pr.embeddings
    return FloatProbe(layers, emb, lengths)


def _probe_batch(ref: MiniLMReference, ids: np.ndarray, mask: np.ndarray) -> FloatProbe:
    """:func:`float_probe` of one batch."""
    from intsim_reference.minilm import layer_norm

    cfg = ref.config
    L = cfg.num_hidden_layers
    layers: list[dict[str, Any]] = [{"scores_amax": 0.0} for _ in range(L)]
    inv = 1.0 / math.sqrt(cfg.head_dim)

    def sink(layer: int, name: str, a: np.ndarray, b: np.ndarray) -> None:
        d = layers[layer]
        if name == "q_proj":
            d["x"] = a
        elif name == "scores":
            d["scores_amax"] = max(d["scores_amax"], float(np.abs(a @ b).max()) * inv)
        elif name == "o_proj":
            d["ctx"] = a
        elif name == "ffn_up":
            d["x1"] = a
        elif name == "ffn_down":
            d["act"] = a

    emb = ref.forward(ids, mask, capture=sink)
    for lw, d in zip(ref.layers, layers, strict=True):
        x = d["x"]
        d["q"] = x @ lw.wq_t + lw.bq
        d["k"] = x @ lw.wk_t + lw.bk
        d["v"] = x @ lw.wv_t + lw.bv
        d["res1"] = d["ctx"] @ lw.wo_t + lw.bo + x
        d["up"] = d["x1"] @ lw.wi_t + lw.bi
        d["res2"] = d["act"] @ lw.wd_t + lw.bd + d["x1"]
        d["out"] = layer_norm(d["res2"], lw.ln2_w, lw.ln2_b, cfg.layer_norm_eps)
    return FloatProbe(layers, emb, np.asarray(mask).sum(axis=1).astype(np.int64))


def _sentence_weighted_gram(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_t w[t] x[t]^T x[t]`` (float64)."""
    return (x * w[:, None]).T @ x


#: At most this many tokens of each tuning sentence enter :attr:`Calibration.samples`.
SAMPLES_PER_SENTENCE = 16


def _per_sentence_rows(lengths: np.ndarray) -> np.ndarray:
    """Packed-token rows: at most :data:`SAMPLES_PER_SENTENCE` evenly spaced tokens of each sentence
    (its first and last included), so that every sentence weighs about the same in the choices made
    on the samples, whatever its length."""
    out, start = [], 0
    for n in lengths.tolist():
        k = min(n, SAMPLES_PER_SENTENCE)
        out.append(start + np.unique(np.linspace(0, n - 1, k).round().astype(np.int64)))
        start += n
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Calibration:
    """Static ranges from a calibration pass: ``amax[l][name]`` (largest magnitude of each
    probed tensor of layer ``l``), ``amax_ch[l][name]`` (the same per channel, for the
    linear layers' inputs ``x ctx x1 act``), ``var_max[l]["res1"|"res2"]`` (largest
    per-token ``sum((r - mean(r))**2)`` of the residual sums, real units), ``samples[l]``
    (those linear inputs on the tuning sentences, at most 16 tokens of each, for the choice of
    the smoothing strength and the static activation margin; on the calibration sentences when there are none), the
    sentences of both parts, how many of them the token limit truncated, and ``gram[l][name]``
    (``sum_t w_t x_t^T x_t`` of each linear input over the calibration tokens, each sentence's
    tokens weighing ``1 / (sentences * its length)``, for the weights' error-compensating rounding).

    Every range is the maximum over the calibration tokens: on this model a clipped range (a
    percentile, or a margin below 1) costs far more on short inputs, whose activations reach the
    extremes, than it gains in resolution (see ``reports/minilm``)."""

    amax: tuple[dict[str, float], ...]
    var_max: tuple[dict[str, float], ...]
    sentences: tuple[str, ...]
    max_len: int
    amax_ch: tuple[dict[str, np.ndarray], ...] = ()
    samples: tuple[dict[str, np.ndarray], ...] = ()
    tune_sentences: tuple[str, ...] = ()
    truncated: int = 0
    gram: tuple[dict[str, np.ndarray], ...] = ()


def calibrate(ref: MiniLMReference, sentences: Sequence[str] = CALIBRATION_SENTENCES,
              max_len: int | None = None, tune_sentences: Sequence[str] | None = TUNING_SENTENCES) -> Calibration:
    """Calibrate static scales on ``sentences`` with the float64 reference (max-abs ranges), and
    keep the linear inputs of ``tune_sentences`` (``None`` or empty: of ``sentences``) for the
    choices :func:`~intsim.models.minilm.quantize.quantize_model` makes. ``max_len``: the token
    limit (``None``: the model's, 256).

    >>> from intsim_reference.minilm import default_model                      # doctest: +SKIP
    >>> c = calibrate(default_model(), ["A short calibration sentence."])  # doctest: +SKIP
    >>> round(c.amax[0]["x"], 2) > 0, c.amax_ch[0]["act"].shape         # doctest: +SKIP
    (True, (1536,))
    """
    sents = check_sentences(sentences)
    max_len = model_max_len() if max_len is None else int(max_len)
    ids, mask = tokenize_sentences(sents, max_len)
    probe = float_probe(ref, ids, mask)
    tune = tuple(check_sentences(tune_sentences)) if tune_sentences else ()
    tprobe = float_probe(ref, *tokenize_sentences(tune, max_len)) if tune else probe
    amax, var_max, amax_ch, samples, gram = [], [], [], [], []
    # every sentence weighs alike in the Gram matrices (a 256-token text would drown a one-word reply)
    wts = np.repeat(1.0 / np.maximum(probe.lengths, 1), probe.lengths) / max(1, len(probe.lengths))
    rows = _per_sentence_rows(tprobe.lengths)
    for d in probe.layers:
        a = {n: float(np.abs(d[n]).max()) for n in _PROBES if n != "scores"}
        a["scores"] = float(d["scores_amax"])
        amax.append(a)
        amax_ch.append({n: np.abs(d[n]).max(axis=0) for n in LINEAR_INPUTS})
        gram.append({n: _sentence_weighted_gram(d[n], wts) for n in LINEAR_INPUTS})
        samples.append({n: tprobe.layers[len(samples)][n][rows] for n in LINEAR_INPUTS})
        var_max.append({n: float(((d[n] - d[n].mean(axis=1, keepdims=True)) ** 2).sum(axis=1).max())
                        for n in ("res1", "res2")})
    truncated = truncated_count(sents + list(tune), max_len)
    return Calibration(tuple(amax), tuple(var_max), tuple(sents), int(max_len), tuple(amax_ch), tuple(samples),
                       tune, truncated, tuple(gram))

