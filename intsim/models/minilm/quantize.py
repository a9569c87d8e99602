"""Quantization of the float64 MiniLM: from the reference weights and a :class:`Calibration` to the
integer parameters of a :class:`~intsim.models.minilm.forward.QuantizedMiniLM` (:func:`quantize_model`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from ...core.deprecation import renamed_keyword
from ...core.dyadic import Dyadic
from ...core.errors import ConfigError
from ...core.inttype import IntType
from ...core.rounding import round_float
from .calibration import LINEAR_INPUTS, Calibration
from .config import DEFAULT_CONFIG, IntConfig, get_config
from .forward import QuantizedMiniLM
from .nonlinear import DEFAULT_NONLINEAR, Nonlinear, get_nonlinear
from .params import DYN_BITS, GELU_OUT_BITS, LN_OUT_BITS, WIDE_BITS, QLayer, QLinear, Requant, mantissa_bits

if TYPE_CHECKING:  # pragma: no cover
    from intsim_reference.minilm import MiniLMReference

__all__ = ["quantize_model"]

#: The smoothing strengths and static activation margins :func:`_choose_smoothing` tries, and how
#: many tuning tokens it uses at most.
_ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)
_MARGINS = (1.25, 1.5, 2.0)  # at least 1.25: headroom for text beyond the calibration corpus
_ALPHA_ROWS = 1024
_ALPHA_CACHE: dict[tuple, tuple[float, float]] = {}
_GPTQ_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _sym_scale(amax: float, bits: int, headroom: float = 1.0) -> float:
    """Symmetric step mapping ``headroom * amax`` to ``2**(bits-1) - 1``."""
    return max(float(amax), 1e-12) * headroom / (2 ** (bits - 1) - 1)


def _quant_weight(w_t: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantization of ``W.T [in, out]``: ``round_half_even(W / s)``
    with ``s[c] = max|W[:, c]| / (2**(bits-1) - 1)`` (an all-zero channel gets ``s = 1``)."""
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(w_t).max(axis=0)
    s = np.where(amax > 0, amax / qmax, 1.0)
    q = np.clip(round_float(w_t / s, "half_even"), -qmax, qmax)
    return q.astype(IntType(bits).dtype), s


@njit(cache=True)
def _gptq_block(W, U, s, qmax, b0, b1, Q, E):  # pragma: no cover - numba
    """GPTQ's rows b0..b1-1 in order (W updated in place): quantize row i to nearest (ties to even)
    on the steps s, then spread its scaled error over the rows after it in the block; the scaled
    errors go to E (the caller spreads them over the rows after the block)."""
    N = W.shape[1]
    for i in range(b0, b1):
        d = U[i, i]
        for c in range(N):
            q = min(max(np.rint(W[i, c] / s[c]), -qmax), qmax)
            Q[i, c] = q
            E[i - b0, c] = (W[i, c] - q * s[c]) / d
        for r in range(i + 1, b1):
            u = U[i, r]
            for c in range(N):
                W[r, c] -= u * E[i - b0, c]


def _quant_weight_gptq(w_t: np.ndarray, bits: int, gram: np.ndarray, damp: float = 0.01,
                       block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_quant_weight`'s integers chosen by GPTQ (Frantar et al., 2023) instead of rounding
    each weight to nearest: the same per-output-channel steps ``s[c] = max|W[:, c]| / qmax``;
    input rows are quantized in order, and each row's rounding error is spread over the rows not
    yet quantized so as to minimize ``E|x (W - s Q)|**2`` for the calibration inputs ``x``
    (``gram = E[x^T x]``, dampened by ``damp`` times its mean diagonal). float64, calibration
    time only; the result is an ordinary integer weight matrix."""
    qmax = 2 ** (bits - 1) - 1
    W = np.array(w_t, dtype=np.float64)
    amax = np.abs(W).max(axis=0)
    s = np.where(amax > 0, amax / qmax, 1.0)
    K = W.shape[0]
    H = np.array(gram, dtype=np.float64)
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0
    H += np.eye(K) * damp * float(np.mean(np.diag(H)))
    try:
        U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper: H^-1 = U^T U
    except np.linalg.LinAlgError:  # pragma: no cover - a dampened Gram matrix is positive definite
        return _quant_weight(w_t, bits)
    Q = np.zeros_like(W)
    for b0 in range(0, K, block):
        b1 = min(b0 + block, K)
        E = np.zeros((b1 - b0, W.shape[1]))
        _gptq_block(W, U, s, float(qmax), b0, b1, Q, E)
        W[b1:] -= U[b0:b1, b1:].T @ E
    return Q.astype(IntType(bits).dtype), s


def _quant_bias(b: np.ndarray, scale: np.ndarray, bits: int, where: str) -> np.ndarray:
    q = round_float(b / scale, "half_even")
    t = IntType(bits)
    if q.size and (int(q.min()) < t.min or int(q.max()) > t.max):
        raise ConfigError(f"{where}: the quantized bias does not fit the {bits}-bit accumulator")
    return q


def _linear(name: str, w_t: np.ndarray, b: np.ndarray, s_x: float, cfg: IntConfig, dynamic: bool = False,
            gram: np.ndarray | None = None, key: tuple = ()            ) -> QLinear:
    if cfg.weight_rounding == "gptq" and gram is not None:
        k = (*key, name, cfg.weight_bits)  # the same smoothed weights and inputs give the same integers
        if not key or k not in _GPTQ_CACHE:
            _GPTQ_CACHE[k] = _quant_weight_gptq(w_t, cfg.weight_bits, gram)
        w, ws = _GPTQ_CACHE[k]
    else:
        w, ws = _quant_weight(w_t, cfg.weight_bits)
    if dynamic:  # DI-MatMul: the result T at s_x * ws / qm (see QLinear)
        qm = (1 << cfg.act_bits) - 1
        bias = _quant_bias(b, s_x * ws / qm, DYN_BITS, name)
        return QLinear(name, w, ws, bias, qm=qm, colsum=w.astype(np.int64).sum(axis=0), x_scale=s_x)
    bias = _quant_bias(b, s_x * ws, cfg.acc_bits, name)
    if cfg.linear != "llm_int8":
        return QLinear(name, w, ws, bias)
    w16, ws16 = _quant_weight(w_t, 16)
    bias16 = _quant_bias(b, s_x * ws16, 48, name)
    tau = max(1, math.ceil(cfg.outlier_threshold / s_x))
    # the int8 part's real value is acc8 * a_i * (s_x / 127) * ws[c]; on the 16-bit part's scale
    # s_x * ws16[c] that is acc8 * a_i * ws[c] / (127 * ws16[c]) = acc8 * a_i * 32767 / 127**2
    qa = 2 ** (cfg.weight_bits - 1) - 1
    comb = Dyadic.from_float(32767.0 / (qa * 127), bits=mantissa_bits(48))
    return QLinear(name, w, ws, bias, w16, ws16, bias16, tau, comb)


def _smoothing(amax_ch: np.ndarray, w_ts: Sequence[np.ndarray], alpha: float) -> np.ndarray:
    """SmoothQuant factors ``f[k] = max|X[:, k]|**alpha / max|W[k, :]|**(1 - alpha)`` over the
    weights sharing the input (1 where either is zero, or with ``alpha = 0``)."""
    if not alpha:
        return np.ones_like(amax_ch)
    wmax = np.max([np.abs(w).max(axis=1) for w in w_ts], axis=0)
    ok = (amax_ch > 0) & (wmax > 0)
    return np.where(ok, np.maximum(amax_ch, 1e-30) ** alpha / np.maximum(wmax, 1e-30) ** (1 - alpha), 1.0)


def _choose_smoothing(X: np.ndarray, amax: np.ndarray, w_ts: Sequence[np.ndarray], a_bits: int, w_bits: int,
                      per_token: bool = False, alphas: Sequence[float] = _ALPHAS,
                      margins: Sequence[float] = _MARGINS) -> tuple[float, float]:
    """``(alpha, margin)``: the smoothing strength (from ``alphas``) and, for per-tensor
    static inputs, the activation margin (from ``margins``) minimizing the output error of a
    simulated quantization of ``X @ W`` on the tuning activations ``X`` (float32, calibration time
    only), with the ranges ``amax`` of the calibration activations: ``X / f`` to ``a_bits``
    (per tensor with the step ``margin * max(amax / f) / qmax``, values beyond it clipped; or per
    token), ``W * f`` per output channel to ``w_bits``. The error is the mean over output channels
    of ``|error|**2 / |output|**2`` (so a few outlier channels cannot hide the others). Per-token
    inputs return ``margin`` 1 (they have no static step)."""
    qa = 2 ** (a_bits - 1) - 1
    qw = 2 ** (w_bits - 1) - 1
    if X.shape[0] > _ALPHA_ROWS:  # evenly spaced tuning tokens keep the search cheap
        X = X[np.linspace(0, X.shape[0] - 1, _ALPHA_ROWS).astype(np.int64)]
    X = X.astype(np.float32)
    w_ts = [w.astype(np.float32) for w in w_ts]
    refs = [X @ w for w in w_ts]
    best, best_err = (0.0, 1.0), np.inf
    for alpha in alphas:
        f = _smoothing(amax, w_ts, alpha).astype(np.float32)
        xs = X / f
        wq = []
        for w in w_ts:
            wf = w * f[:, None]
            ws = np.abs(wf).max(axis=0) / qw
            ws[ws == 0] = 1.0
            wq.append(np.round(wf / ws) * ws)
        for margin in ((1.0,) if per_token else margins):
            if per_token:  # asymmetric per row onto [0, 2**a_bits - 1], as dynamic_requant does
                lo = xs.min(axis=1, keepdims=True)
                st = np.maximum(xs.max(axis=1, keepdims=True) - lo, 1e-12) / (2 * qa + 1)
                xq = np.round((xs - lo) / st) * st + lo
            else:
                s = max(float((amax / f).max()), 1e-12) * margin / qa
                xq = np.clip(np.round(xs / s), -qa - 1, qa) * s
            err = 0.0
            for w, r in zip(wq, refs, strict=True):
                e2 = ((xq @ w - r) ** 2).sum(axis=0)
                err += float((e2 / np.maximum((r ** 2).sum(axis=0), 1e-30)).mean())
            if err < best_err:
                best, best_err = (alpha, float(margin)), err
    return best


def _ln_bias(beta: np.ndarray, gamma: np.ndarray, s_y: float, where: str) -> np.ndarray:
    """I-BERT's integer LayerNorm bias ``floor((beta / gamma) / s_y)``."""
    if np.any(gamma == 0):
        raise ConfigError(f"{where}: gamma has zero entries; beta/gamma (the integer bias) is undefined")
    b = np.floor((beta / gamma) / s_y)
    if np.any(np.abs(b) >= 2.0 ** 38):
        raise ConfigError(f"{where}: beta/gamma is too large for the 40-bit LayerNorm output register")
    return b.astype(np.int64)


@renamed_keyword("profile", "nonlinear")
def quantize_model(ref: MiniLMReference, calib: Calibration, config: IntConfig | str = DEFAULT_CONFIG,
                   nonlinear: Nonlinear | str = DEFAULT_NONLINEAR) -> QuantizedMiniLM:
    """Quantize the reference model with the calibrated ranges.

    Scales (all symmetric, ``amax`` from :class:`Calibration`): residual stream and
    residual sums ``headroom * amax / (2**(R-1) - 1)``; linear inputs, after dividing
    channel k by the smoothing factor ``f[k]`` (see :class:`IntConfig`),
    ``act_margin * max_k(amax[k] / f[k]) / (2**(A-1) - 1)``; q, k, v ``amax / 127``; GELU
    input ``headroom * amax / (2**(G-1) - 1)``; weights (input row k times ``f[k]``) per
    output channel ``max|W[:, c]| / (2**(W-1) - 1)``, values ``round_half_even`` clipped to
    ``+-(2**(W-1) - 1)``; biases ``round_half_even(b / (s_x w_scale[c]))`` at the accumulator's
    scale (ConfigError if one does not fit the accumulator); LayerNorm ``beta`` as I-BERT's
    integer bias ``floor((beta / gamma) / s_ln)``. Every ratio of scales becomes a
    :class:`~intsim.core.dyadic.Dyadic` (round half to even, the widest mantissa that keeps
    ``x * m`` below 2**63).

    >>> from intsim.models.minilm import calibrate, reference_model                  # doctest: +SKIP
    >>> m = quantize_model(reference_model(), calibrate(reference_model()), "w8a8")  # doctest: +SKIP
    >>> m.layers[0].q.w.dtype, m.layers[0].rq_q.scale[0]                             # doctest: +SKIP
    (dtype('int8'), Dyadic(m=..., k=...))
    """
    cfg = get_config(config)
    nl = get_nonlinear(nonlinear)
    mc = ref.config
    D, nh, hd = mc.hidden_size, mc.num_attention_heads, mc.head_dim
    R, A, acc = cfg.residual_bits, cfg.act_bits, cfg.acc_bits
    tR, tA, tAcc = IntType(R), IntType(A), IntType(acc)
    t8, tG = IntType(8), IntType(cfg.gelu_bits)
    tLN = IntType(LN_OUT_BITS)
    h = cfg.headroom
    dyn = (nl.dynamic_tokens or cfg.act_quant == "per_token") and cfg.linear == "static"
    lin_acc = IntType(48) if cfg.linear == "llm_int8" else IntType(DYN_BITS) if dyn else tAcc
    tX = IntType(WIDE_BITS) if dyn else tA  # the producers' output type for a linear input
    layers: list[QLayer] = []
    L = len(ref.layers)
    s_res_in = _sym_scale(calib.amax[0]["x"], R, h)
    s_first = s_res_in
    s_ln = nl.layernorm_scale(D)
    for li, lw in enumerate(ref.layers):
        a = calib.amax[li]
        ach = calib.amax_ch[li]
        where = f"layer {li}"
        # linear inputs: per-channel smoothing factors f, then one per-tensor step for x / f
        weights = {"x": (lw.wq_t, lw.wk_t, lw.wv_t), "ctx": (lw.wo_t,), "x1": (lw.wi_t,), "act": (lw.wd_t,)}
        alphas, margins = {}, {}
        for n, w in weights.items():
            key = (calib.sentences, calib.tune_sentences, calib.max_len, li, n, A, cfg.weight_bits, dyn,
                   cfg.smooth, cfg.act_margin)
            if key not in _ALPHA_CACHE:
                if cfg.smooth == "auto" or (cfg.act_margin == "auto" and not dyn):
                    alpha = _ALPHAS if cfg.smooth == "auto" else (float(cfg.smooth),)
                    mg_try = _MARGINS if cfg.act_margin == "auto" else (float(cfg.act_margin),)
                    _ALPHA_CACHE[key] = _choose_smoothing(calib.samples[li][n], ach[n], w, A, cfg.weight_bits,
                                                          dyn, alpha, mg_try)
                else:
                    _ALPHA_CACHE[key] = (float(cfg.smooth), 1.0 if cfg.act_margin == "auto"
                                         else float(cfg.act_margin))
            alphas[n], margins[n] = _ALPHA_CACHE[key]
        f_x, f_ctx, f_x1, f_act = (_smoothing(ach[n], weights[n], alphas[n]) for n in LINEAR_INPUTS)
        # static: A bits with act_margin; dynamic: a 16-bit register with the residual headroom
        mg = {n: h for n in LINEAR_INPUTS} if dyn else margins
        xb = WIDE_BITS if dyn else A
        s_x = _sym_scale(float((ach["x"] / f_x).max()), xb, mg["x"])
        s_ctx = _sym_scale(float((ach["ctx"] / f_ctx).max()), xb, mg["ctx"])
        s_x1 = _sym_scale(float((ach["x1"] / f_x1).max()), xb, mg["x1"])
        s_act = _sym_scale(float((ach["act"] / f_act).max()), xb, mg["act"])
        s_q, s_k, s_v = (_sym_scale(a[n], 8) for n in ("q", "k", "v"))
        s_r1 = _sym_scale(a["res1"], R, h)
        s_x1r = _sym_scale(a["x1"], R, h)
        s_up = _sym_scale(a["up"], cfg.gelu_bits, h)
        s_r2 = _sym_scale(a["res2"], R, h)
        out_amax = calib.amax[li + 1]["x"] if li + 1 < L else a["out"]
        s_out = _sym_scale(out_amax, R, h)
        g = calib.gram[li] if calib.gram else {}

        def gs(n: str, f: np.ndarray, g: dict = g) -> np.ndarray | None:  # Gram matrix of the smoothed input x / f
            return g[n] / np.outer(f, f) if n in g else None

        def lin(name: str, w: np.ndarray, b: np.ndarray, s: float, n: str, f: np.ndarray, li: int = li,
                alphas: dict = alphas) -> QLinear:
            key = (id(ref), calib.sentences, calib.tune_sentences, calib.max_len, li, alphas[n])
            return _linear(name, w * f[:, None], b, s, cfg, dyn, gs(n, f), key)

        q = lin("q_proj", lw.wq_t, lw.bq, s_x, "x", f_x)
        k = lin("k_proj", lw.wk_t, lw.bk, s_x, "x", f_x)
        v = lin("v_proj", lw.wv_t, lw.bv, s_x, "x", f_x)
        o = lin("o_proj", lw.wo_t, lw.bo, s_ctx, "ctx", f_ctx)
        up = lin("ffn_up", lw.wi_t, lw.bi, s_x1, "x1", f_x1)
        down = lin("ffn_down", lw.wd_t, lw.bd, s_act, "act", f_act)
        ln1_scale = s_ln * lw.ln1_w
        ln2_scale = s_ln * lw.ln2_w
        p_scale = nl.softmax_scale(cfg.prob_bits)
        g_scale = nl.gelu_scale(s_up)
        var_int = [calib.var_max[li][n] / s ** 2 for n, s in (("res1", s_r1), ("res2", s_r2))]
        layers.append(QLayer(
            index=li, q=q, k=k, v=v, o=o, up=up, down=down,
            rq_in=Requant.build("rq_in", s_res_in / (s_x * f_x), tR, tX),
            rq_q=Requant.build("rq_q", q.out_scale(s_x) / s_q, lin_acc, t8),
            rq_k=Requant.build("rq_k", k.out_scale(s_x) / s_k, lin_acc, t8),
            rq_v=Requant.build("rq_v", v.out_scale(s_x) / s_v, lin_acc, t8),
            rq_ctx=Requant.build("rq_ctx", p_scale * s_v / (s_ctx * f_ctx), tAcc, tX),
            rq_res1_o=Requant.build("rq_res1_o", o.out_scale(s_ctx) / s_r1, lin_acc, tR),
            rq_res1_x=Requant.build("rq_res1_x", s_res_in / s_r1, tR, tR),
            ln1_bias=_ln_bias(lw.ln1_b, lw.ln1_w, s_ln, f"{where} LayerNorm 1"),
            ln1_shift=nl.layernorm_shift(4.0 * var_int[0]),
            rq_x1=Requant.build("rq_x1", ln1_scale / (s_x1 * f_x1), tLN, tX),
            rq_x1r=Requant.build("rq_x1r", ln1_scale / s_x1r, tLN, tR),
            rq_up=Requant.build("rq_up", up.out_scale(s_x1) / s_up, lin_acc, tG),
            rq_act=Requant.build("rq_act", g_scale / (s_act * f_act), IntType(GELU_OUT_BITS), tX),
            rq_res2_d=Requant.build("rq_res2_d", down.out_scale(s_act) / s_r2, lin_acc, tR),
            rq_res2_x=Requant.build("rq_res2_x", s_x1r / s_r2, tR, tR),
            ln2_bias=_ln_bias(lw.ln2_b, lw.ln2_w, s_ln, f"{where} LayerNorm 2"),
            ln2_shift=nl.layernorm_shift(4.0 * var_int[1]),
            rq_out=Requant.build("rq_out", ln2_scale / s_out, tLN, tR),
            softmax_scale=s_q * s_k / math.sqrt(hd),
            gelu_scale=s_up,
            ln1_scale=ln1_scale, ln2_scale=ln2_scale, s_in=s_res_in, s_out=s_out, alphas=tuple(alphas.items()),
            margins=tuple(margins.items()) if not dyn else (),
        ))
        s_res_in = s_out
    return QuantizedMiniLM(cfg, nl, layers, s_first, D, nh, calib)
