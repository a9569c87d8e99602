"""Float64 reference training step of a BERT sentence encoder (all-MiniLM-L6-v2), capturing every GEMM.

One step of sentence-pair fine-tuning: the sentences of a batch are embedded by
:class:`intsim_reference.minilm.MiniLMReference` (same weights, same forward pass), each
pair ``(i, j)`` is scored by the cosine similarity of the mean-pooled embeddings and the
loss is the mean squared error against the pair's label (the sentence-transformers
``CosineSimilarityLoss``)::

    loss = mean_p (cos(u_i, u_j) - y_p)**2,   u = mean of the final hidden states over real tokens

The backward pass is written out by hand in float64 numpy. Every matrix product of
the step is a GEMM ``C = A @ B`` of a :class:`TrainingGemm` with a ``role``:

* ``forward``: the product itself (the inference GEMM);
* ``grad_a``: the gradient of its A operand, ``dA = dC @ B^T``;
* ``grad_b``: the gradient of its B operand, ``dB = A^T @ dC``.

For a linear layer (``A = X`` the input activations of all real tokens, ``B = W^T``)
these are ``Y = X W^T``, the input gradient ``dX = dY W`` and the weight gradient
``d(W^T) = X^T dY``; for the attention products (``scores``: ``A = Q_h``,
``B = K_h^T``; ``attn_v``: ``A = P_h``, ``B = V_h``, one per sentence and head)
``dQ_h = dS_h K_h``, ``dK_h^T = Q_h^T dS_h``, ``dP_h = dC_h V_h^T`` and
``dV_h = P_h^T dC_h`` (``dS_h`` the gradient of the unscaled product ``Q_h K_h^T``,
i.e. already multiplied by ``1/sqrt(head_dim)``). :data:`KINDS` groups them:
``forward``, ``input_grad``, ``weight_grad`` (linear layers), ``attention``
(the two attention products) and ``attention_grad`` (their four gradients).

Every product goes through one function, ``gemm(g) -> array`` (default ``g.a @ g.b``
in float64), so an emulator can run the whole step on its own datapath; the
element-wise work (LayerNorm, softmax, GELU, residual adds, pooling, the loss and
all their derivatives) stays in float64. Parameters: every encoder parameter and the
embedding LayerNorm receive a gradient; the embedding tables are treated as inputs
(their gradient is a scatter-add of :attr:`TrainingStep.embedding_grad`, not a GEMM).

>>> import numpy as np
>>> from intsim_reference.training import random_model, training_step
>>> model = random_model(layers=1, hidden=16, heads=2, intermediate=32, vocab=50, seed=0)
>>> ids, mask = np.array([[1, 5, 7, 2], [1, 9, 2, 0]]), np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
>>> step = training_step(model, ids, mask, [(0, 1)], [1.0])
>>> step.gradients["encoder.layer.0.intermediate.dense.weight"].shape, len(step.gemms)
((32, 16), 42)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from intsim.models.loading import MiniLMConfig, expected_weight_shapes

from .minilm import LINEAR_GEMMS, MiniLMReference, erf, gelu, layer_norm

__all__ = [
    "KINDS",
    "ROLES",
    "GemmFn",
    "TrainingGemm",
    "TrainingStep",
    "gelu_derivative",
    "model_weights",
    "random_model",
    "sgd_update",
    "training_step",
]

#: The three GEMMs of one product: itself, the gradient of its A operand, of its B operand.
ROLES = ("forward", "grad_a", "grad_b")
#: GEMM kinds in report order.
KINDS = ("forward", "input_grad", "weight_grad", "attention", "attention_grad")

_LINEAR_KIND = {"forward": "forward", "grad_a": "input_grad", "grad_b": "weight_grad"}
_PARAM = {
    "q_proj": "attention.self.query",
    "k_proj": "attention.self.key",
    "v_proj": "attention.self.value",
    "o_proj": "attention.output.dense",
    "ffn_up": "intermediate.dense",
    "ffn_down": "output.dense",
}
_TRANSPOSED = {"q_proj": "wq_t", "k_proj": "wk_t", "v_proj": "wv_t", "o_proj": "wo_t", "ffn_up": "wi_t",
               "ffn_down": "wd_t"}


@dataclass(frozen=True)
class TrainingGemm:
    """One GEMM ``a @ b`` of a training step (see the module docs for the operands).

    Attributes:
        layer: encoder layer, 0-based.
        name: the product it belongs to, one of :data:`intsim_reference.minilm.GEMM_NAMES`.
        role: ``forward``, ``grad_a`` or ``grad_b`` (:data:`ROLES`).
        a: ``[M, K]`` float64.
        b: ``[K, N]`` float64.
        sentence, head: the sentence and head of an attention product, else None.
    """

    layer: int
    name: str
    role: str
    a: np.ndarray
    b: np.ndarray
    sentence: int | None = None
    head: int | None = None

    @property
    def kind(self) -> str:
        """One of :data:`KINDS`: ``forward``/``input_grad``/``weight_grad`` for the linear
        layers, ``attention``/``attention_grad`` for ``scores`` and ``attn_v``."""
        if self.name in LINEAR_GEMMS:
            return _LINEAR_KIND[self.role]
        return "attention" if self.role == "forward" else "attention_grad"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(M, K, N)``."""
        return (self.a.shape[0], self.a.shape[1], self.b.shape[1])


#: ``gemm(g)``: the product ``g.a @ g.b`` as a float64 ``[M, N]`` array (possibly approximate).
GemmFn = Callable[[TrainingGemm], np.ndarray]


@dataclass(frozen=True)
class TrainingStep:
    """The outcome of :func:`training_step`.

    Attributes:
        loss: ``mean_p (cos_p - y_p)**2``.
        cosines: ``[P]`` cosine similarity of each pair.
        embeddings: ``[B, hidden]`` mean-pooled final hidden states (not normalized).
        gradients: d loss / d parameter, keyed and shaped as the model file
            (linear weights ``[out, in]``): every encoder parameter and
            ``embeddings.LayerNorm.weight``/``.bias``.
        embedding_grad: ``[N, hidden]`` d loss / d (word + position + token type
            embedding) of each real token, packed sentence by sentence (N real tokens).
        gemms: every :class:`TrainingGemm` of the step in execution order (empty
            unless ``keep_gemms``).
    """

    loss: float
    cosines: np.ndarray
    embeddings: np.ndarray
    gradients: dict[str, np.ndarray]
    embedding_grad: np.ndarray
    gemms: list[TrainingGemm] = field(default_factory=list)


def gelu_derivative(x: ArrayLike) -> np.ndarray:
    """d/dx of the erf-form GELU: ``Phi(x) + x * phi(x)`` (standard normal cdf and pdf), float64.

    >>> round(float(gelu_derivative(0.0)), 12), round(float(gelu_derivative(1.0)), 12)
    (0.5, 1.083315470588)
    """
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _layer_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray,
                         eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`layer_norm` (over the last axis): ``(dx, dweight, dbias)``."""
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    inv = 1.0 / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + eps)
    xhat = centered * inv
    dxhat = dy * weight
    dx = inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * np.mean(dxhat * xhat, axis=-1, keepdims=True))
    return dx, np.sum(dy * xhat, axis=0), np.sum(dy, axis=0)


def _check_pairs(pairs: Sequence[tuple[int, int]], labels: ArrayLike, batch: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(pairs, dtype=np.int64).reshape(-1, 2) if len(pairs) else np.zeros((0, 2), np.int64)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if idx.shape[0] == 0:
        raise ValueError("training_step needs at least one sentence pair")
    if y.shape[0] != idx.shape[0]:
        raise ValueError(f"{idx.shape[0]} pairs but {y.shape[0]} labels")
    if idx.min() < 0 or idx.max() >= batch:
        raise ValueError(f"pair indices must lie in [0, {batch}) (the batch rows); got {idx.tolist()}")
    if np.any(idx[:, 0] == idx[:, 1]):
        raise ValueError("a pair must join two different sentences")
    if not np.all(np.isfinite(y)):
        raise ValueError("labels must be finite")
    return idx, y


def training_step(
    model: MiniLMReference,
    input_ids: ArrayLike,
    attention_mask: ArrayLike,
    pairs: Sequence[tuple[int, int]],
    labels: ArrayLike,
    *,
    gemm: GemmFn | None = None,
    capture: Callable[[TrainingGemm], None] | None = None,
    keep_gemms: bool = True,
) -> TrainingStep:
    """Forward and backward pass of the cosine-similarity MSE loss on sentence pairs.

    Args:
        model: the float64 model (its weights are read, never changed).
        input_ids, attention_mask: ``[B, T]`` as for :meth:`MiniLMReference.forward`.
        pairs: ``P`` pairs of batch rows ``(i, j)``, ``i != j``.
        labels: ``P`` target similarities (e.g. 1 for a paraphrase, 0 for unrelated sentences).
        gemm: computes each product from its :class:`TrainingGemm` (default: ``g.a @ g.b``);
            its result replaces the float64 product everywhere downstream.
        capture: called with every :class:`TrainingGemm` before it is computed, in
            execution order: per layer the forward products (``q_proj``, ``k_proj``,
            ``v_proj``, per sentence ``scores`` and ``attn_v`` of heads 0.., ``o_proj``,
            ``ffn_up``, ``ffn_down``), then, layers from last to first, ``ffn_down``,
            ``ffn_up``, ``o_proj`` (each ``grad_b`` then ``grad_a``), per sentence and head
            the ``attn_v`` and ``scores`` gradients, then ``v_proj``, ``k_proj``, ``q_proj``.
        keep_gemms: keep the list in :attr:`TrainingStep.gemms` (operands are fresh copies,
            weights read-only views of the model).

    Returns:
        :class:`TrainingStep`.

    Raises:
        ValueError: invalid inputs (as :meth:`MiniLMReference.forward`), no pair, pair
            indices outside the batch or equal, a label count that differs from the pairs.

    Example:
        >>> m = random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20, seed=1)
        >>> s = training_step(m, np.array([[1, 3, 2], [1, 4, 2]]), np.ones((2, 3), int), [(0, 1)], [0.0])
        >>> bool(s.loss > 0), sorted({g.kind for g in s.gemms}) == sorted(KINDS)
        (True, True)
    """
    cfg = model.config
    ids, mask = model._check_inputs(input_ids, attention_mask)
    pair_idx, y = _check_pairs(pairs, labels, ids.shape[0])
    captured: list[TrainingGemm] = []

    def run(layer: int, name: str, role: str, a: np.ndarray, b: np.ndarray,
            s: int | None = None, h: int | None = None) -> np.ndarray:
        g = TrainingGemm(layer, name, role, a, b, s, h)
        if capture is not None:
            capture(g)
        if keep_gemms:
            captured.append(g)
        out = g.a @ g.b if gemm is None else np.asarray(gemm(g), dtype=np.float64)
        if out.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"gemm returned shape {out.shape} for {name} {role}, expected {(a.shape[0], b.shape[1])}")
        return out

    batch, width = ids.shape
    nh, hd, hidden = cfg.num_attention_heads, cfg.head_dim, cfg.hidden_size
    eps = cfg.layer_norm_eps
    scale = 1.0 / math.sqrt(hd)
    lengths = mask.sum(axis=1)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    spans = [slice(int(a), int(a + n)) for a, n in zip(starts, lengths, strict=True)]
    flat_real = np.flatnonzero(mask.reshape(-1))
    positions = np.broadcast_to(np.arange(width), (batch, width)).reshape(-1)[flat_real]

    # ---- forward, keeping what the backward pass needs ----
    x_emb = model.word_embeddings[ids.reshape(-1)[flat_real]] + model.token_type_embeddings[0]
    x_emb = x_emb + model.position_embeddings[positions]
    x = layer_norm(x_emb, model.emb_ln_w, model.emb_ln_b, eps)
    caches = []
    for li, lw in enumerate(model.layers):
        q = run(li, "q_proj", "forward", x.copy(), lw.wq_t) + lw.bq
        k = run(li, "k_proj", "forward", x.copy(), lw.wk_t) + lw.bk
        v = run(li, "v_proj", "forward", x.copy(), lw.wv_t) + lw.bv
        ctx = np.empty_like(x)
        heads = []  # per sentence: (Q, K, V, P) each [heads, T_s, head_dim] / [heads, T_s, T_s]
        for s, sp in enumerate(spans):
            qs = np.ascontiguousarray(q[sp].reshape(-1, nh, hd).transpose(1, 0, 2))
            ks = np.ascontiguousarray(k[sp].reshape(-1, nh, hd).transpose(1, 0, 2))
            vs = np.ascontiguousarray(v[sp].reshape(-1, nh, hd).transpose(1, 0, 2))
            raw = np.stack([run(li, "scores", "forward", qs[h].copy(), np.ascontiguousarray(ks[h].T), s, h)
                            for h in range(nh)])
            z = raw * scale
            z -= z.max(axis=-1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=-1, keepdims=True)
            c = np.stack([run(li, "attn_v", "forward", p[h].copy(), vs[h].copy(), s, h) for h in range(nh)])
            ctx[sp] = c.transpose(1, 0, 2).reshape(-1, hidden)
            heads.append((qs, ks, vs, p))
        ao = run(li, "o_proj", "forward", ctx.copy(), lw.wo_t) + lw.bo
        r1 = ao + x
        x1 = layer_norm(r1, lw.ln1_w, lw.ln1_b, eps)
        up = run(li, "ffn_up", "forward", x1.copy(), lw.wi_t) + lw.bi
        act = gelu(up)
        down = run(li, "ffn_down", "forward", act.copy(), lw.wd_t) + lw.bd
        r2 = down + x1
        caches.append((x, heads, ctx, r1, x1, up, act, r2))
        x = layer_norm(r2, lw.ln2_w, lw.ln2_b, eps)

    # ---- loss ----
    pooled = np.add.reduceat(x, starts, axis=0) / lengths[:, None]
    ua, ub = pooled[pair_idx[:, 0]], pooled[pair_idx[:, 1]]
    na, nb = np.linalg.norm(ua, axis=1), np.linalg.norm(ub, axis=1)
    cos = np.sum(ua * ub, axis=1) / (na * nb)
    loss = float(np.mean((cos - y) ** 2))
    dcos = 2.0 * (cos - y) / y.size
    dpooled = np.zeros_like(pooled)
    np.add.at(dpooled, pair_idx[:, 0], dcos[:, None] * (ub / (na * nb)[:, None] - (cos / na**2)[:, None] * ua))
    np.add.at(dpooled, pair_idx[:, 1], dcos[:, None] * (ua / (na * nb)[:, None] - (cos / nb**2)[:, None] * ub))
    dx = np.repeat(dpooled / lengths[:, None], lengths, axis=0)

    # ---- backward ----
    grads: dict[str, np.ndarray] = {}

    def linear_back(li: int, name: str, xin: np.ndarray, dy: np.ndarray, w_t: np.ndarray) -> np.ndarray:
        p = f"encoder.layer.{li}.{_PARAM[name]}."
        grads[p + "weight"] = run(li, name, "grad_b", np.ascontiguousarray(xin.T), dy.copy()).T
        grads[p + "bias"] = dy.sum(axis=0)
        return run(li, name, "grad_a", dy.copy(), np.ascontiguousarray(w_t.T))

    for li in range(len(model.layers) - 1, -1, -1):
        lw = model.layers[li]
        xin, heads, ctx, r1, x1, up, act, r2 = caches[li]
        p = f"encoder.layer.{li}."
        dr2, grads[p + "output.LayerNorm.weight"], grads[p + "output.LayerNorm.bias"] = \
            _layer_norm_backward(dx, r2, lw.ln2_w, eps)
        dact = linear_back(li, "ffn_down", act, dr2, lw.wd_t)
        dup = dact * gelu_derivative(up)
        dx1 = dr2 + linear_back(li, "ffn_up", x1, dup, lw.wi_t)
        dr1, grads[p + "attention.output.LayerNorm.weight"], grads[p + "attention.output.LayerNorm.bias"] = \
            _layer_norm_backward(dx1, r1, lw.ln1_w, eps)
        dctx = linear_back(li, "o_proj", ctx, dr1, lw.wo_t)
        dq, dk, dv = (np.empty_like(xin) for _ in range(3))
        for s, sp in enumerate(spans):
            qs, ks, vs, pr = heads[s]
            dc = np.ascontiguousarray(dctx[sp].reshape(-1, nh, hd).transpose(1, 0, 2))
            dqs, dks, dvs = (np.empty_like(qs) for _ in range(3))
            for h in range(nh):
                dp = run(li, "attn_v", "grad_a", dc[h].copy(), np.ascontiguousarray(vs[h].T), s, h)
                dvs[h] = run(li, "attn_v", "grad_b", np.ascontiguousarray(pr[h].T), dc[h].copy(), s, h)
                dz = pr[h] * (dp - np.sum(dp * pr[h], axis=-1, keepdims=True))
                draw = dz * scale  # the gradient of the unscaled product Q K^T
                dqs[h] = run(li, "scores", "grad_a", draw.copy(), ks[h].copy(), s, h)
                dks[h] = run(li, "scores", "grad_b", np.ascontiguousarray(qs[h].T), draw.copy(), s, h).T
            dq[sp] = dqs.transpose(1, 0, 2).reshape(-1, hidden)
            dk[sp] = dks.transpose(1, 0, 2).reshape(-1, hidden)
            dv[sp] = dvs.transpose(1, 0, 2).reshape(-1, hidden)
        dx = dr1 + linear_back(li, "v_proj", xin, dv, lw.wv_t)
        dx = dx + linear_back(li, "k_proj", xin, dk, lw.wk_t)
        dx = dx + linear_back(li, "q_proj", xin, dq, lw.wq_t)

    demb, grads["embeddings.LayerNorm.weight"], grads["embeddings.LayerNorm.bias"] = \
        _layer_norm_backward(dx, x_emb, model.emb_ln_w, eps)
    ordered = {name: grads[name] for name in expected_weight_shapes(cfg) if name in grads}
    return TrainingStep(loss, cos, pooled, ordered, demb, captured)


def model_weights(model: MiniLMReference) -> dict[str, np.ndarray]:
    """The parameters of ``model`` keyed and shaped as the model file (linear weights ``[out, in]``),
    float64 copies.

    >>> w = model_weights(random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20))
    >>> w["encoder.layer.0.intermediate.dense.weight"].shape
    (16, 8)
    """
    out = {
        "embeddings.word_embeddings.weight": model.word_embeddings.copy(),
        "embeddings.position_embeddings.weight": model.position_embeddings.copy(),
        "embeddings.token_type_embeddings.weight": model.token_type_embeddings.copy(),
        "embeddings.LayerNorm.weight": model.emb_ln_w.copy(),
        "embeddings.LayerNorm.bias": model.emb_ln_b.copy(),
    }
    for i, lw in enumerate(model.layers):
        p = f"encoder.layer.{i}."
        for name, base in _PARAM.items():
            out[p + base + ".weight"] = np.asarray(getattr(lw, _TRANSPOSED[name])).T.copy()
        out[p + "attention.self.query.bias"] = lw.bq.copy()
        out[p + "attention.self.key.bias"] = lw.bk.copy()
        out[p + "attention.self.value.bias"] = lw.bv.copy()
        out[p + "attention.output.dense.bias"] = lw.bo.copy()
        out[p + "attention.output.LayerNorm.weight"] = lw.ln1_w.copy()
        out[p + "attention.output.LayerNorm.bias"] = lw.ln1_b.copy()
        out[p + "intermediate.dense.bias"] = lw.bi.copy()
        out[p + "output.dense.bias"] = lw.bd.copy()
        out[p + "output.LayerNorm.weight"] = lw.ln2_w.copy()
        out[p + "output.LayerNorm.bias"] = lw.ln2_b.copy()
    return out


def sgd_update(weights: Mapping[str, np.ndarray], gradients: Mapping[str, np.ndarray],
               lr: float) -> dict[str, np.ndarray]:
    """Plain SGD: ``w - lr * grad`` for every parameter with a gradient; the others are copied.

    Raises:
        ValueError: ``lr`` is not a finite number >= 0, a gradient names an unknown
            parameter or has another shape.

    >>> sgd_update({"w": np.ones(2), "e": np.zeros(1)}, {"w": np.array([1.0, -2.0])}, 0.5)["w"].tolist()
    [0.5, 2.0]
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) or not 0 <= lr < math.inf:
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    for name, g in gradients.items():
        if name not in weights:
            raise ValueError(f"gradient for unknown parameter {name!r}")
        if np.shape(g) != np.shape(weights[name]):
            raise ValueError(f"gradient of {name!r} has shape {np.shape(g)}, parameter {np.shape(weights[name])}")
    return {name: (np.asarray(w, np.float64) - lr * np.asarray(gradients[name], np.float64)
                   if name in gradients else np.array(w, dtype=np.float64))
            for name, w in weights.items()}


def random_model(layers: int = 2, hidden: int = 32, heads: int = 4, intermediate: int = 64, vocab: int = 100,
                 max_positions: int = 64, seed: int = 0) -> MiniLMReference:
    """A small BERT encoder with random weights (for tests and examples): weights ``N(0, 0.02)``
    scaled like a trained model's (LayerNorm gains near 1), embeddings ``N(0, 1)``.

    >>> random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20).config.head_dim
    4
    """
    cfg = MiniLMConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=intermediate, max_position_embeddings=max_positions)
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_weight_shapes(cfg).items():
        if name.endswith("LayerNorm.weight"):
            weights[name] = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.startswith("embeddings."):
            weights[name] = rng.standard_normal(shape)
        elif name.endswith("weight"):
            weights[name] = rng.standard_normal(shape) / math.sqrt(shape[1])
        else:
            weights[name] = 0.1 * rng.standard_normal(shape)
    return MiniLMReference(weights, cfg)
