"""Float64 reference forward pass of all-MiniLM-L6-v2, capturing every GEMM's operands.

This is the ground truth the integer emulator is judged against: the real
model weights (float32 as stored, widened exactly to float64), the BERT
encoder computed in float64 numpy, then mean pooling over real tokens and L2
normalization, exactly as the sentence-transformers pipeline defines the
embedding. It needs only numpy and reads the model (and tokenizes text,
with :mod:`intsim.models.wordpiece`) through :mod:`intsim.models.loading`.

Per layer (``x`` is the ``[tokens, 384]`` hidden state, linear layers are
``x @ W.T + b`` with PyTorch-layout ``W [out, in]``)::

    q, k, v   = x @ Wq.T + bq, x @ Wk.T + bk, x @ Wv.T + bv       # q_proj k_proj v_proj
    scores_h  = (Q_h @ K_h^T) / sqrt(32) + mask                     # scores, per sentence & head
    P_h       = softmax(scores_h)                                   # over keys
    ctx_h     = P_h @ V_h                                           # attn_v, per sentence & head
    x1        = LayerNorm(ctx @ Wo.T + bo + x)                      # o_proj
    x2        = LayerNorm(gelu(x1 @ Wi.T + bi) @ Wd.T + bd + x1)    # ffn_up, ffn_down

Padding: the additive attention mask is ``-inf`` on padding keys (and 0 on
real keys), so padding keys get a probability of exactly 0, the same effect
as Hugging Face's ``finfo.min`` mask. Token-wise work (embeddings, linear
layers, LayerNorm, GELU) runs on the real tokens only, so padding never
influences a real token. Padding must be on the right (positions are counted
from the first column, as Hugging Face does), which :func:`intsim.models.loading.tokenize`
guarantees.

>>> from intsim_reference.minilm import embed  # doctest: +SKIP
>>> e = embed(["A cat sleeps.", "A kitten is napping."])  # doctest: +SKIP
>>> e.shape, round(float(e[0] @ e[1]), 2)  # doctest: +SKIP
((2, 384), 0.71)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from intsim.models.loading import (
    MiniLMConfig,
    expected_weight_shapes,
    load_minilm_config,
    load_minilm_weights,
    tokenize,
)

__all__ = [
    "GEMM_NAMES",
    "LINEAR_GEMMS",
    "PER_HEAD_GEMMS",
    "CaptureFn",
    "GemmOperands",
    "MiniLMReference",
    "capture_gemm_operands",
    "default_model",
    "embed",
    "erf",
    "gelu",
    "layer_norm",
]

#: GEMM names in the order they are reported within one layer.
GEMM_NAMES = ("q_proj", "k_proj", "v_proj", "scores", "attn_v", "o_proj", "ffn_up", "ffn_down")
#: GEMMs whose B operand is a weight (``W.T``), reported once per layer for all real tokens.
LINEAR_GEMMS = ("q_proj", "k_proj", "v_proj", "o_proj", "ffn_up", "ffn_down")
#: GEMMs reported once per (sentence, head).
PER_HEAD_GEMMS = ("scores", "attn_v")

#: ``capture(layer, name, a, b)``: called with the GEMM ``a @ b``'s real operands.
CaptureFn = Callable[[int, str, np.ndarray, np.ndarray], None]


# ---------------------------------------------------------------------------
# erf, GELU, LayerNorm in float64
# ---------------------------------------------------------------------------

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ONE_OVER_SQRT_PI = 1.0 / math.sqrt(math.pi)
#: Maclaurin coefficients of erf(a) * sqrt(pi)/2 / a as a polynomial in a^2:
#: (-1)^n / (n! (2n+1)), each correctly rounded from the exact fraction.
_ERF_MACLAURIN = tuple(float(Fraction((-1) ** n, math.factorial(n) * (2 * n + 1))) for n in range(26))
_DEKKER_SPLIT = 134217729.0  # 2**27 + 1


def _exp_neg_square(a: np.ndarray) -> np.ndarray:
    """exp(-a*a) without the rounding error of forming a*a (Dekker split)."""
    c = _DEKKER_SPLIT * a
    hi = c - (c - a)
    lo = a - hi
    return np.exp(-hi * hi) * np.exp(-(2.0 * hi + lo) * lo)


def _erf_maclaurin(a: np.ndarray) -> np.ndarray:
    """erf for 0 <= a < 1.25: the Maclaurin series, 26 terms, Horner in a^2."""
    z = a * a
    s = np.full_like(a, _ERF_MACLAURIN[-1])
    for c in _ERF_MACLAURIN[-2::-1]:
        s *= z
        s += c
    return _TWO_OVER_SQRT_PI * (a * s)


def _erfc_continued_fraction(a: np.ndarray, depth: int) -> np.ndarray:
    """erfc for a >= 1.25: Laplace's continued fraction
    erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))),
    evaluated bottom-up from a fixed depth."""
    t = np.zeros_like(a)
    for k in range(depth, 0, -1):
        t = (0.5 * k) / (a + t)
    return _ONE_OVER_SQRT_PI * _exp_neg_square(a) / (a + t)


def erf(x: ArrayLike) -> np.ndarray:
    """The error function in float64, vectorized with numpy (no scipy).

    Method by ``|x|``: below 1.25 the Maclaurin series (26 terms, Horner);
    in [1.25, 2) ``1 - erfc`` with erfc from Laplace's continued fraction
    at depth 150, in [2, 6) at depth 60; from 6 on exactly 1 (erfc(6) is
    2.2e-17, below half an ulp of 1). ``exp(-x^2)`` uses a Dekker split of
    ``x`` so that ``x^2`` adds no rounding error. The sign is restored with
    ``copysign`` (so ``erf(-0.0) == -0.0``); NaN gives NaN, +-inf gives +-1.

    Returns an array of ``x``'s shape (0-d for a scalar).

    Accuracy against :func:`math.erf` (the C library's): at most 3 ulp, max
    abs error 3.3e-16 (near |x| = 1.24), about 90% of results identical, over
    a 2-million-point grid of [-8, 8], tiny arguments down to 1e-300 and the
    region boundaries (the test suite checks a coarser version). About 2x
    faster than ``np.frompyfunc(math.erf, 1, 1)`` on GELU-like data (about
    45 ms against 95 ms per million values on the development machine).

    Example:
        >>> float(erf(0.5)) == math.erf(0.5)
        True
        >>> np.round(erf([-1.0, 0.0, 7.0]), 15).tolist()
        [-0.842700792949715, 0.0, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x).reshape(-1)
    out = a.copy()  # NaN stays NaN; every other entry is overwritten below
    small = a < 1.25
    mid = (a >= 1.25) & (a < 2.0)
    big = (a >= 2.0) & (a < 6.0)
    out[a >= 6.0] = 1.0
    if small.any():
        out[small] = _erf_maclaurin(a[small])
    if mid.any():
        out[mid] = 1.0 - _erfc_continued_fraction(a[mid], 150)
    if big.any():
        out[big] = 1.0 - _erfc_continued_fraction(a[big], 60)
    return np.copysign(out.reshape(x.shape), x)


def gelu(x: ArrayLike) -> np.ndarray:
    """GELU, erf form (Hugging Face ``"gelu"``): ``x/2 * (1 + erf(x/sqrt(2)))``, float64.

    Example:
        >>> round(float(gelu(1.0)), 12)
        0.841344746069
    """
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis: ``(x - mean) / sqrt(var + eps) * weight + bias``
    with the biased (population) variance, as ``torch.nn.LayerNorm``.

    Example:
        >>> layer_norm(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), 0.0).tolist()
        [[-1.0, 1.0]]
    """
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    return centered / np.sqrt(var + eps) * weight + bias


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GemmOperands:
    """The real operands of one GEMM ``a @ b`` of the forward pass.

    Attributes:
        layer: encoder layer, 0-based.
        name: one of :data:`GEMM_NAMES`.
        a: ``[M, K]`` float64. Linear GEMMs: the input activations of the real
            tokens of every sentence, sentence by sentence. ``scores``: ``Q_h``
            of one sentence ``[T_s, 32]``; ``attn_v``: ``P_h [T_s, T_s]``.
        b: ``[K, N]`` float64. Linear GEMMs: ``W.T`` (read-only, shared with
            the model). ``scores``: ``K_h^T [32, T_s]`` (unscaled: the
            ``1/sqrt(32)`` is applied to the product); ``attn_v``: ``V_h [T_s, 32]``.
        sentence: the sentence index for ``scores``/``attn_v``, else None.
        head: the head index for ``scores``/``attn_v``, else None.
    """

    layer: int
    name: str
    a: np.ndarray
    b: np.ndarray
    sentence: int | None = None
    head: int | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(M, K, N)`` of the GEMM."""
        return (self.a.shape[0], self.a.shape[1], self.b.shape[1])


_Emit = Callable[[int, str, np.ndarray, np.ndarray, "int | None", "int | None"], None]


def _without_indices(capture: CaptureFn) -> _Emit:
    """Adapt a public 4-argument capture callback to the internal 6-argument one."""

    def emit(layer: int, name: str, a: np.ndarray, b: np.ndarray, s: int | None, h: int | None) -> None:
        capture(layer, name, a, b)

    return emit


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(a, dtype=np.float64).copy()
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class _Layer:
    wq_t: np.ndarray
    bq: np.ndarray
    wk_t: np.ndarray
    bk: np.ndarray
    wv_t: np.ndarray
    bv: np.ndarray
    wo_t: np.ndarray
    bo: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    wi_t: np.ndarray
    bi: np.ndarray
    wd_t: np.ndarray
    bd: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


class MiniLMReference:
    """Float64 numpy implementation of a BERT sentence encoder (all-MiniLM-L6-v2).

    Args:
        weights: parameters named as in the model file (see
            :func:`intsim.models.loading.load_minilm_weights`), any float dtype; they
            are widened to float64 once (exactly, from float32), linear weights
            stored transposed (``W.T``, ``[in, out]``) and read-only.
        config: the architecture (:func:`intsim.models.loading.load_minilm_config`).

    Raises:
        ValueError: a parameter is missing or has the wrong shape.

    Example:
        >>> from intsim.models.loading import load_minilm_config, load_minilm_weights, tokenize  # doctest: +SKIP
        >>> model = MiniLMReference(load_minilm_weights(), load_minilm_config())  # doctest: +SKIP
        >>> model.forward(*tokenize(["Hello world"])).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, weights: Mapping[str, np.ndarray], config: MiniLMConfig) -> None:
        for name, shape in expected_weight_shapes(config).items():
            if name not in weights:
                raise ValueError(f"weights lack parameter {name!r}")
            if tuple(np.shape(weights[name])) != shape:
                raise ValueError(f"parameter {name!r} has shape {np.shape(weights[name])}, expected {shape}")
        self.config = config
        w = weights
        self.word_embeddings = _frozen(w["embeddings.word_embeddings.weight"])
        self.position_embeddings = _frozen(w["embeddings.position_embeddings.weight"])
        self.token_type_embeddings = _frozen(w["embeddings.token_type_embeddings.weight"])
        self.emb_ln_w = _frozen(w["embeddings.LayerNorm.weight"])
        self.emb_ln_b = _frozen(w["embeddings.LayerNorm.bias"])
        self.layers: list[_Layer] = []
        for i in range(config.num_hidden_layers):
            p = f"encoder.layer.{i}."
            self.layers.append(
                _Layer(
                    wq_t=_frozen(np.asarray(w[p + "attention.self.query.weight"]).T),
                    bq=_frozen(w[p + "attention.self.query.bias"]),
                    wk_t=_frozen(np.asarray(w[p + "attention.self.key.weight"]).T),
                    bk=_frozen(w[p + "attention.self.key.bias"]),
                    wv_t=_frozen(np.asarray(w[p + "attention.self.value.weight"]).T),
                    bv=_frozen(w[p + "attention.self.value.bias"]),
                    wo_t=_frozen(np.asarray(w[p + "attention.output.dense.weight"]).T),
                    bo=_frozen(w[p + "attention.output.dense.bias"]),
                    ln1_w=_frozen(w[p + "attention.output.LayerNorm.weight"]),
                    ln1_b=_frozen(w[p + "attention.output.LayerNorm.bias"]),
                    wi_t=_frozen(np.asarray(w[p + "intermediate.dense.weight"]).T),
                    bi=_frozen(w[p + "intermediate.dense.bias"]),
                    wd_t=_frozen(np.asarray(w[p + "output.dense.weight"]).T),
                    bd=_frozen(w[p + "output.dense.bias"]),
                    ln2_w=_frozen(w[p + "output.LayerNorm.weight"]),
                    ln2_b=_frozen(w[p + "output.LayerNorm.bias"]),
                )
            )

    # -- input checks -------------------------------------------------------

    def _check_inputs(self, input_ids: ArrayLike, attention_mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(input_ids)
        mask = np.asarray(attention_mask)
        if ids.ndim != 2 or mask.shape != ids.shape:
            raise ValueError(
                f"input_ids and attention_mask must both be [B, T]; got {ids.shape} and {mask.shape}"
            )
        if ids.shape[0] == 0 or ids.shape[1] == 0:
            raise ValueError(f"empty batch: input_ids has shape {ids.shape}")
        if ids.dtype.kind not in "iu" or mask.dtype.kind not in "iub":
            raise ValueError(
                f"input_ids and attention_mask must be integer arrays; got {ids.dtype}, {mask.dtype}"
            )
        if ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {ids.shape[1]} exceeds max_position_embeddings "
                f"{self.config.max_position_embeddings}"
            )
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(
                f"input_ids must lie in [0, {self.config.vocab_size}); got [{ids.min()}, {ids.max()}]"
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("attention_mask must hold only 0 and 1")
        mask = mask.astype(bool)
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(f"sentence {int(empty[0])} has no real token (attention_mask row is all 0)")
        return ids.astype(np.intp), mask

    # -- forward ------------------------------------------------------------

    def forward(
        self,
        input_ids: ArrayLike,
        attention_mask: ArrayLike,
        capture: CaptureFn | None = None,
    ) -> np.ndarray:
        """Embed a tokenized batch.

        Args:
            input_ids: ``[B, T]`` integer token ids (token type 0 throughout).
            attention_mask: ``[B, T]``, 1 on real tokens, 0 on right padding.
            capture: optional ``capture(layer, name, a, b)``, called for every
                GEMM ``a @ b`` with its real float64 operands, ``a [M, K]`` and
                ``b [K, N]``. Per layer, in this order: ``q_proj``, ``k_proj``,
                ``v_proj`` (``a`` = input activations of all real tokens, rows
                sentence by sentence, ``b = W.T``); ``scores`` for sentence 0
                heads 0..11, sentence 1 heads 0..11, ... (``a = Q_h [T_s, 32]``,
                ``b = K_h^T [32, T_s]``, real tokens of that sentence only,
                before the ``1/sqrt(32)`` scaling); ``attn_v`` in the same order
                (``a = P_h [T_s, T_s]``, ``b = V_h [T_s, 32]``); ``o_proj``
                (``a`` = concatenated head contexts); ``ffn_up``; ``ffn_down``
                (``a`` = GELU output). The arrays are fresh copies, except the
                weight operands, which are read-only views of the model.

        Returns:
            ``[B, 384]`` float64: mean of the final hidden states over real
            tokens, divided by its L2 norm (floored at 1e-12, as
            ``torch.nn.functional.normalize``), so each row has unit norm.

        Raises:
            ValueError: shapes, dtypes or values of the inputs are invalid
                (ids out of vocabulary, mask not 0/1, a row without real tokens,
                T above ``max_position_embeddings``).

        Example:
            >>> model.forward(np.array([[101, 7592, 2088, 102]]), np.ones((1, 4), int)).shape  # doctest: +SKIP
            (1, 384)
        """
        emit = None if capture is None else _without_indices(capture)
        return self._forward(input_ids, attention_mask, emit)

    def _forward(self, input_ids: ArrayLike, attention_mask: ArrayLike, emit: _Emit | None) -> np.ndarray:
        cfg = self.config
        ids, mask = self._check_inputs(input_ids, attention_mask)
        batch, width = ids.shape
        nh, hd, hidden = cfg.num_attention_heads, cfg.head_dim, cfg.hidden_size
        eps = cfg.layer_norm_eps
        scale = 1.0 / math.sqrt(hd)
        lengths = mask.sum(axis=1)
        # Token-wise work runs on the packed real tokens x[N, hidden], N = lengths.sum().
        flat_real = np.flatnonzero(mask.reshape(-1))
        real_pos = [np.flatnonzero(mask[s]) for s in range(batch)]

        positions = np.broadcast_to(np.arange(width), (batch, width)).reshape(-1)[flat_real]
        x = self.word_embeddings[ids.reshape(-1)[flat_real]] + self.token_type_embeddings[0]
        x = x + self.position_embeddings[positions]
        x = layer_norm(x, self.emb_ln_w, self.emb_ln_b, eps)

        additive_mask = np.where(mask, 0.0, -np.inf)[:, None, None, :]  # [B, 1, 1, T] over keys

        def to_heads(t: np.ndarray) -> np.ndarray:
            """Packed [N, hidden] -> padded [B, heads, T, head_dim] (zeros on padding)."""
            padded = np.zeros((batch * width, hidden))
            padded[flat_real] = t
            return padded.reshape(batch, width, nh, hd).transpose(0, 2, 1, 3)

        for li, lw in enumerate(self.layers):
            q = x @ lw.wq_t + lw.bq
            k = x @ lw.wk_t + lw.bk
            v = x @ lw.wv_t + lw.bv
            if emit is not None:
                emit(li, "q_proj", x.copy(), lw.wq_t, None, None)
                emit(li, "k_proj", x.copy(), lw.wk_t, None, None)
                emit(li, "v_proj", x.copy(), lw.wv_t, None, None)
            qh, kh, vh = to_heads(q), to_heads(k), to_heads(v)
            scores = (qh @ kh.transpose(0, 1, 3, 2)) * scale + additive_mask
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = probs @ vh  # [B, heads, T, head_dim]
            if emit is not None:
                # Fancy indexing on the real positions makes fresh copies.
                for s, pos in enumerate(real_pos):
                    for h in range(nh):
                        emit(li, "scores", qh[s, h, pos], np.ascontiguousarray(kh[s, h, pos].T), s, h)
                for s, pos in enumerate(real_pos):
                    for h in range(nh):
                        emit(li, "attn_v", probs[s, h][np.ix_(pos, pos)], vh[s, h, pos], s, h)
            ctx = ctx.transpose(0, 2, 1, 3).reshape(batch * width, hidden)[flat_real]
            attn_out = ctx @ lw.wo_t + lw.bo
            x1 = layer_norm(attn_out + x, lw.ln1_w, lw.ln1_b, eps)
            up = x1 @ lw.wi_t + lw.bi
            act = gelu(up)
            down = act @ lw.wd_t + lw.bd
            if emit is not None:
                emit(li, "o_proj", ctx, lw.wo_t, None, None)
                emit(li, "ffn_up", x1.copy(), lw.wi_t, None, None)
                emit(li, "ffn_down", act, lw.wd_t, None, None)
            x = layer_norm(down + x1, lw.ln2_w, lw.ln2_b, eps)

        # Mean pooling over real tokens (x is packed sentence by sentence), then L2 normalize.
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        pooled = np.add.reduceat(x, starts, axis=0) / lengths[:, None]
        if not cfg.normalize:
            return pooled
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)


# ---------------------------------------------------------------------------
# Convenience on the installed model
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def default_model() -> MiniLMReference:
    """The reference model on the installed MiniLM weights, built once and cached.

    Raises:
        ModelNotInstalledError: the model package is not installed.
    """
    return MiniLMReference(load_minilm_weights(), load_minilm_config())


def embed(sentences: Sequence[str], max_len: int | None = None) -> np.ndarray:
    """Sentence embeddings ``[B, 384]`` (float64, unit norm) of the installed MiniLM.

    Tokenizes with :func:`intsim.models.loading.tokenize` (truncation at ``max_len``
    tokens; ``None``: the model's own limit, 256, as sentence-transformers does) and runs
    :meth:`MiniLMReference.forward`.

    Example:
        >>> e = embed(["The cat sleeps.", "Stocks fell."])  # doctest: +SKIP
        >>> e.shape  # doctest: +SKIP
        (2, 384)
    """
    ids, mask = tokenize(sentences, max_len=max_len)
    return default_model().forward(ids, mask)


def capture_gemm_operands(sentences: Sequence[str], max_len: int = 64) -> list[GemmOperands]:
    """Run the installed MiniLM on ``sentences`` and return every GEMM's real operands.

    Returns:
        One :class:`GemmOperands` per GEMM, in execution order (see
        :meth:`MiniLMReference.forward`): per layer 6 linear GEMMs plus
        ``B * 12`` ``scores`` and ``B * 12`` ``attn_v`` GEMMs, so
        ``6 * (6 + 24 * B)`` entries for ``B`` sentences.

    Example:
        >>> ops = capture_gemm_operands(["Hello world"])  # doctest: +SKIP
        >>> [(o.name, o.shape) for o in ops[:4]]  # doctest: +SKIP
        [('q_proj', (4, 384, 384)), ('k_proj', (4, 384, 384)), ('v_proj', (4, 384, 384)), ('scores', (4, 32, 4))]
    """
    ids, mask = tokenize(sentences, max_len=max_len)
    captured: list[GemmOperands] = []

    def sink(layer: int, name: str, a: np.ndarray, b: np.ndarray, s: int | None, h: int | None) -> None:
        captured.append(GemmOperands(layer, name, a, b, s, h))

    default_model()._forward(ids, mask, sink)
    return captured
