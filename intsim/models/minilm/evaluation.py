"""The integer MiniLM against the float64 reference: cosine similarity of the embeddings and the
per-layer relative errors (:func:`evaluate`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.errors import ShapeError
from .calibration import FloatProbe, check_sentences, float_probe, tokenize_sentences
from .config import IntConfig
from .forward import IntForward
from .model import IntMiniLM

__all__ = ["Evaluation", "evaluate", "spearman", "pairwise_spearman", "by_kind"]


@dataclass
class Evaluation:
    """Integer vs float64 embeddings of one configuration and non-linear family.

    ``cosine`` per sentence; ``layer_errors`` one row per layer (``embedding`` = the
    quantized input, then layers 0..5): per-token relative L2 error of the layer output,
    ``mean``, ``p50``, ``p90``, ``max``; plus everything :class:`IntForward` reports and
    the wall times of the float and integer passes (seconds), the non-linear family's description
    and the smoothing alphas (and static margins) chosen per layer and linear input, and the
    float64 embeddings compared with (``reference_embeddings``). (``profile`` and
    ``profile_description`` are the old names of ``nonlinear`` and ``nonlinear_description``.)
    """

    config: IntConfig
    nonlinear: str
    sentences: tuple[str, ...]
    cosine: np.ndarray
    layer_errors: list[dict[str, Any]]
    forward: IntForward
    float_seconds: float
    int_seconds: float
    nonlinear_description: str = ""
    smoothing: tuple[dict[str, float], ...] = ()
    margins: tuple[tuple[tuple[str, float], ...], ...] = ()
    reference_embeddings: np.ndarray | None = None

    @property
    def profile(self) -> str:
        """The old name of :attr:`nonlinear` (kept for one release)."""
        return self.nonlinear

    @property
    def profile_description(self) -> str:
        """The old name of :attr:`nonlinear_description` (kept for one release)."""
        return self.nonlinear_description

    @property
    def cos_mean(self) -> float:
        return float(self.cosine.mean())

    @property
    def cos_min(self) -> float:
        return float(self.cosine.min())

    def llm_int8_ratios(self) -> dict[str, float]:
        """Linear name (and ``all``) -> LLM.int8() work in int8 MACs / original MACs (empty otherwise)."""
        u = self.forward.llm_int8
        out = {k: v[0] / v[1] for k, v in u.items() if v[1]}
        if u:
            out["all"] = sum(v[0] for v in u.values()) / max(1, sum(v[1] for v in u.values()))
        return out

    def unpack_ratios(self) -> dict[str, float]:
        """GEMM name (and ``all``) -> unpacked work / original work (empty without IM-Unpack)."""
        u = self.forward.unpack
        out = {k: v[0] / v[1] for k, v in u.items() if v[1]}
        if u:
            out["all"] = sum(v[0] for v in u.values()) / max(1, sum(v[1] for v in u.values()))
        return out


def _rel_err(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    return np.linalg.norm(approx - exact, axis=1) / np.maximum(np.linalg.norm(exact, axis=1), 1e-30)


def _err_row(layer: str, e: np.ndarray) -> dict[str, Any]:
    return {"layer": layer, "mean": float(e.mean()), "p50": float(np.median(e)), "p90": float(np.quantile(e, 0.9)),
            "max": float(e.max())}


def evaluate(model: IntMiniLM, sentences: Sequence[str], *, progress: Callable[[str, int], None] | None = None,
             probe: FloatProbe | None = None) -> Evaluation:
    """Run the float64 reference and the integer pass on ``sentences`` and compare them.

    ``progress(stage, step)`` is called with ``("float", 0)`` and ``("layer", l)``.
    ``probe`` reuses a float pass already run on the same sentences.

    >>> ev = evaluate(load_int_minilm("w8a8"), ["A cat sleeps.", "Stocks fell."])  # doctest: +SKIP
    >>> ev.cos_min > 0.99, [r["layer"] for r in ev.layer_errors][:2]               # doctest: +SKIP
    (True, ['embedding', 'layer 0'])
    """
    sents = check_sentences(sentences)
    if progress:
        progress("float", 0)
    t0 = time.perf_counter()
    if probe is None:
        ids, mask = tokenize_sentences(sents, model.max_len)
        probe = float_probe(model.reference, ids, mask)
    t1 = time.perf_counter()
    x, lens = model.embedding_output(sents)
    xr = model.model.quantize_input(x)
    fwd = model.model.forward(xr, lens, progress=(lambda li: progress("layer", li)) if progress else None)
    t2 = time.perf_counter()
    if not np.array_equal(lens, probe.lengths):
        raise ShapeError("the float probe was run on other sentences (token counts differ)")
    cos = np.einsum("ij,ij->i", fwd.embeddings(), probe.embeddings)
    errs = [_err_row("embedding", _rel_err(xr * model.model.s_in, probe.layers[0]["x"]))]
    for li, (y, s) in enumerate(zip(fwd.layer_outputs, fwd.layer_scales, strict=True)):
        errs.append(_err_row(f"layer {li}", _rel_err(y * s, probe.layers[li]["out"])))
    return Evaluation(model.config, model.nonlinear.name, tuple(sents), cos, errs, fwd, t1 - t0, t2 - t1,
                      model.nonlinear.description, tuple(dict(ql.alphas) for ql in model.model.layers),
                      tuple(ql.margins for ql in model.model.layers), probe.embeddings)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long 1-D samples (average ranks for ties; NaN
    when a sample is constant or has fewer than 2 entries).

    >>> spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 40.0, 30.0]))
    0.8
    """
    import pandas as pd

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ShapeError(f"spearman: samples of {a.size} and {b.size} entries")
    if a.size < 2:
        return float("nan")
    ra = pd.Series(a).rank(method="average").to_numpy()
    rb = pd.Series(b).rank(method="average").to_numpy()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def pairwise_spearman(emb: np.ndarray, ref: np.ndarray) -> float:
    """How well retrieval rankings survive: Spearman's correlation between the cosine similarities
    of all pairs of sentences computed from ``emb`` (integer pass, dequantized) and from ``ref``
    (float64), both ``[sentences, dim]``.

    >>> x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 2.0]])
    >>> pairwise_spearman(x, x), round(pairwise_spearman(x, x[::-1]), 3)
    (1.0, 0.809)
    """
    def cos(e: np.ndarray) -> np.ndarray:
        e = np.asarray(e, dtype=np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-300)
        iu = np.triu_indices(e.shape[0], 1)
        return (e @ e.T)[iu]

    if emb.shape != ref.shape:
        raise ShapeError(f"pairwise_spearman: embeddings {emb.shape} and {ref.shape}")
    return spearman(cos(emb), cos(ref))


def by_kind(cosine: np.ndarray, kinds: Sequence[str], sentences: Sequence[str]) -> list[dict[str, Any]]:
    """One row per kind of text (in order of first appearance): ``kind``, ``sentences``, ``mean``,
    ``min`` of the cosine similarities and the ``worst`` sentence.

    >>> by_kind(np.array([0.99, 0.98, 0.97]), ["a", "b", "a"], ["x", "y", "z"])[0]["worst"]
    'z'
    """
    if not len(cosine) == len(kinds) == len(sentences):
        raise ShapeError(f"by_kind: {len(cosine)} scores, {len(kinds)} kinds, {len(sentences)} sentences")
    rows = []
    for k in dict.fromkeys(kinds):
        idx = [i for i, kk in enumerate(kinds) if kk == k]
        c = np.asarray(cosine)[idx]
        w = idx[int(np.argmin(c))]
        rows.append({"kind": k, "sentences": len(idx), "mean": float(c.mean()), "min": float(c.min()),
                     "worst": sentences[w]})
    return rows
