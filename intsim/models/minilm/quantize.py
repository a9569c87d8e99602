"""Quantization of the float64 MiniLM: from the reference weights and a :class:`Calibration` to the
integer parameters of a :class:`~intsim.models.minilm.forward.QuantizedMiniLM` (:func:`quantize_model`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

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
    from reference.minilm import MiniLMReference

__all__ = ["quantize_model"]

#: The smoothing strengths :func:`_choose_alpha` tries, and how many calibration tokens it uses at most.
_ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)
_ALPHA_ROWS = 128
_ALPHA_CACHE: dict[tuple, float] = {}


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


def _quant_bias(b: np.ndarray, scale: np.ndarray, bits: int, where: str) -> np.ndarray:
    q = round_float(b / scale, "half_even")
    t = IntType(bits)
    if q.size and (int(q.min()) < t.min or int(q.max()) > t.max):
        raise ConfigError(f"{where}: the quantized bias does not fit the {bits}-bit accumulator")
    return q


def _linear(name: str, w_t: np.ndarray, b: np.ndarray, s_x: float, cfg: IntConfig, dynamic: bool = False
            ) -> QLinear:
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


def _choose_alpha(X: np.ndarray, w_ts: Sequence[np.ndarray], a_bits: int, w_bits: int, per_token: bool = False
                  ) -> float:
    """The smoothing alpha (from :data:`_ALPHAS`) minimizing the output error of a simulated
    quantization of ``X @ W`` on calibration activations (float32, calibration time only):
    ``X / f`` per tensor to ``a_bits``, ``W * f`` per output channel to ``w_bits``; the error
    is the mean over output channels of ``|error|**2 / |output|**2`` (so a few outlier channels
    cannot hide the others)."""
    qa = 2 ** (a_bits - 1) - 1
    qw = 2 ** (w_bits - 1) - 1
    amax = np.abs(X).max(axis=0)
    if X.shape[0] > _ALPHA_ROWS:  # evenly spaced calibration tokens keep the search cheap
        X = X[np.linspace(0, X.shape[0] - 1, _ALPHA_ROWS).astype(np.int64)]
    X = X.astype(np.float32)
    w_ts = [w.astype(np.float32) for w in w_ts]
    refs = [X @ w for w in w_ts]
    best, best_err = 0.0, np.inf
    for alpha in _ALPHAS:
        f = _smoothing(amax, w_ts, alpha).astype(np.float32)
        xs = X / f
        if per_token:  # asymmetric per row onto [0, 2**a_bits - 1], as dynamic_requant does
            lo = xs.min(axis=1, keepdims=True)
            st = np.maximum(xs.max(axis=1, keepdims=True) - lo, 1e-12) / (2 * qa + 1)
            xq = np.round((xs - lo) / st) * st + lo
        else:
            s = max(float(np.abs(xs).max()), 1e-12) / qa
            xq = np.clip(np.round(xs / s), -qa - 1, qa) * s
        err = 0.0
        for w, r in zip(w_ts, refs, strict=True):
            wf = w * f[:, None]
            ws = np.abs(wf).max(axis=0) / qw
            ws[ws == 0] = 1.0
            e2 = ((xq @ (np.round(wf / ws) * ws) - r) ** 2).sum(axis=0)
            err += float((e2 / np.maximum((r ** 2).sum(axis=0), 1e-30)).mean())
        if err < best_err:
            best, best_err = alpha, err
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
    dyn = nl.dynamic_tokens and cfg.linear == "static"
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
        alphas = {}
        for n, w in weights.items():
            if cfg.smooth != "auto":
                alphas[n] = float(cfg.smooth)
                continue
            key = (calib.sentences, calib.max_len, li, n, A, cfg.weight_bits, dyn)
            if key not in _ALPHA_CACHE:
                _ALPHA_CACHE[key] = _choose_alpha(calib.samples[li][n], w, A, cfg.weight_bits, dyn)
            alphas[n] = _ALPHA_CACHE[key]
        f_x, f_ctx, f_x1, f_act = (_smoothing(ach[n], weights[n], alphas[n]) for n in LINEAR_INPUTS)
        # static: A bits with act_margin; dynamic: a 16-bit register with the residual headroom
        mg, xb = (h, WIDE_BITS) if dyn else (cfg.act_margin, A)
        s_x = _sym_scale(float((ach["x"] / f_x).max()), xb, mg)
        s_ctx = _sym_scale(float((ach["ctx"] / f_ctx).max()), xb, mg)
        s_x1 = _sym_scale(float((ach["x1"] / f_x1).max()), xb, mg)
        s_act = _sym_scale(float((ach["act"] / f_act).max()), xb, mg)
        s_q, s_k, s_v = (_sym_scale(a[n], 8) for n in ("q", "k", "v"))
        s_r1 = _sym_scale(a["res1"], R, h)
        s_x1r = _sym_scale(a["x1"], R, h)
        s_up = _sym_scale(a["up"], cfg.gelu_bits, h)
        s_r2 = _sym_scale(a["res2"], R, h)
        out_amax = calib.amax[li + 1]["x"] if li + 1 < L else a["out"]
        s_out = _sym_scale(out_amax, R, h)
        q = _linear("q_proj", lw.wq_t * f_x[:, None], lw.bq, s_x, cfg, dyn)
        k = _linear("k_proj", lw.wk_t * f_x[:, None], lw.bk, s_x, cfg, dyn)
        v = _linear("v_proj", lw.wv_t * f_x[:, None], lw.bv, s_x, cfg, dyn)
        o = _linear("o_proj", lw.wo_t * f_ctx[:, None], lw.bo, s_ctx, cfg, dyn)
        up = _linear("ffn_up", lw.wi_t * f_x1[:, None], lw.bi, s_x1, cfg, dyn)
        down = _linear("ffn_down", lw.wd_t * f_act[:, None], lw.bd, s_act, cfg, dyn)
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
        ))
        s_res_in = s_out
    return QuantizedMiniLM(cfg, nl, layers, s_first, D, nh, calib)
