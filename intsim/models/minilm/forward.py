"""The integer pass of the MiniLM: the integer model (:class:`QuantizedMiniLM`) and its forward pass.

Every intermediate tensor goes through one checkpoint (:meth:`_Run.emit`) that refuses any
non-integer dtype and records the tensor's dtype and shape; every register and accumulator
overflow becomes an :class:`OverflowRecord`. The data flow of one encoder layer is in the
package docs (:mod:`intsim.models.minilm`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.errors import ConfigError, DTypeError, ShapeError
from ...core.inttype import IntType
from ...core.opcounts import OpCounts
from ...core.rounding import div_round, round_float
from ...hw.datapath import Datapath
from ...hw.gemm import matmul
from ...quant.requant import requantize
from ...regs.opresult import OpResult
from ...regs.registers import RegisterFile
from .calibration import Calibration
from .config import IntConfig
from .nonlinear import Nonlinear
from .params import DYN_BITS, LN_OUT_BITS, WIDE_BITS, QLayer, QLinear, Requant

__all__ = ["QuantizedMiniLM", "IntForward", "TraceEntry", "OverflowRecord"]


@dataclass
class QuantizedMiniLM:
    """The integer model: per-layer :class:`QLayer`, the input scale and the datapaths.

    Build it with :func:`quantize_model`; run it with :meth:`forward` on the output of
    :meth:`quantize_input`.

    >>> m = load_int_minilm("w8a8", "ibert").model                        # doctest: +SKIP
    >>> x, lens = load_int_minilm().embedding_output(["Hello world."])    # doctest: +SKIP
    >>> f = m.forward(m.quantize_input(x), lens)                          # doctest: +SKIP
    >>> f.pooled.dtype, f.pooled.shape, f.overflows                       # doctest: +SKIP
    (dtype('int64'), (1, 384), [])
    """

    config: IntConfig
    nonlinear: Nonlinear
    layers: list[QLayer]
    s_in: float
    hidden: int
    heads: int
    calibration: Calibration

    @property
    def profile(self) -> Nonlinear:
        """The old name of :attr:`nonlinear` (kept for one release)."""
        return self.nonlinear

    # -- the float -> integer boundary ------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Quantize the embedding output (float, ``[tokens, hidden]``) onto the residual stream:
        ``clip(round_half_even(x / s_in), residual range)``, int64."""
        t = IntType(self.config.residual_bits)
        return np.clip(round_float(np.asarray(x, dtype=np.float64) / self.s_in, "half_even"), t.min, t.max)

    @property
    def pooled_scale(self) -> np.ndarray:
        """Real scale per channel of the pooled integers (the last LayerNorm's output scale)."""
        return self.layers[-1].ln2_scale

    # -- the integer pass -------------------------------------------------------------------------
    def forward(self, xr: np.ndarray, lengths: Sequence[int], *, layers: Sequence[int] | None = None,
                record: dict[str, np.ndarray] | None = None, progress: Callable[[int], None] | None = None
                ) -> IntForward:
        """The integer-only pass from the quantized embedding output to the pooled embedding.

        ``xr`` holds the residual-stream integers of every real token, sentence by
        sentence (``[sum(lengths), hidden]``); ``lengths`` the tokens per sentence.
        ``layers`` restricts the pass to those consecutive layers (default: all); with
        fewer than all, ``pooled`` pools the last run layer's LayerNorm output.
        ``record``, if given, receives every intermediate integer tensor by name
        (``l{layer}.{step}``; attention steps per sentence only for one sentence).
        ``progress(layer)`` is called after each layer.

        Raises :class:`~intsim.core.errors.DTypeError` if any intermediate is not an integer
        array, :class:`~intsim.core.errors.ShapeError` for inconsistent shapes, and the
        overflow errors of the datapath under ``overflow="raise"``.
        """
        lens = np.asarray(lengths)
        if lens.ndim != 1 or lens.size == 0 or lens.dtype.kind not in "iu" or np.any(lens < 1):
            raise ShapeError(f"lengths must be a non-empty 1-D array of positive integers, got {lengths!r}")
        lens = lens.astype(np.int64)
        arr = np.asarray(xr)
        if arr.ndim != 2 or arr.shape != (int(lens.sum()), self.hidden):
            raise ShapeError(f"xr must be [sum(lengths)={int(lens.sum())}, {self.hidden}], got {arr.shape}")
        run = _Run(self.config, record)
        run.emit(-1, "input", arr)
        IntType(self.config.residual_bits).check(arr, "xr (the residual-stream input)")
        idx = list(range(len(self.layers))) if layers is None else [int(i) for i in layers]
        if not idx or idx != list(range(idx[0], idx[0] + len(idx))) or idx[0] < 0 or idx[-1] >= len(self.layers):
            raise ConfigError(f"layers must be consecutive indices in [0, {len(self.layers)}), got {layers!r}")
        x = arr.astype(np.int64)
        outs, scales = [], []
        y2 = x
        for li in idx:
            x, y2 = _Layer(self, self.layers[li], run).run(x, lens)
            outs.append(y2)
            scales.append(self.layers[li].ln2_scale)
            if progress is not None:
                progress(li)
        pooled = run.pool(y2, lens)
        return IntForward(pooled=pooled, pooled_scale=scales[-1], layer_outputs=outs, layer_scales=scales,
                          residual=x, ops=run.ops, overflows=run.overflows, unpack=run.unpack,
                          clipped=run.clipped, trace=run.trace, layers=idx, llm_int8=run.llm_int8)

    def parameters(self) -> dict[str, np.ndarray]:
        """Every integer parameter of the integer pass by name (``l{layer}.{what}``)."""
        out: dict[str, np.ndarray] = {}
        for ql in self.layers:
            p = f"l{ql.index}."
            for lin in (ql.q, ql.k, ql.v, ql.o, ql.up, ql.down):
                out[p + lin.name + ".w"] = lin.w
                out[p + lin.name + ".bias"] = lin.bias
                if lin.w16 is not None:
                    out[p + lin.name + ".w16"] = lin.w16
                    out[p + lin.name + ".bias16"] = lin.bias16
                if lin.colsum is not None:
                    out[p + lin.name + ".colsum"] = lin.colsum
            for rq in ql.requants():
                m, k = rq.arrays()
                out[p + rq.name + ".m"] = m
                out[p + rq.name + ".k"] = k
            out[p + "ln1.bias"] = ql.ln1_bias
            out[p + "ln2.bias"] = ql.ln2_bias
        return out


@dataclass(frozen=True)
class TraceEntry:
    """One intermediate tensor of the integer pass: layer (-1 the input, -2 the pooling, else
    the encoder layer), step name, dtype name and shape."""

    layer: int
    step: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OverflowRecord:
    """An accumulator or register overflow: where, what, how many values, the first one."""

    layer: int
    step: str
    register: str
    bits: int
    count: int
    first_index: tuple
    value: int | None
    policy: str


@dataclass
class IntForward:
    """Result of :meth:`QuantizedMiniLM.forward`.

    ``pooled`` int64 ``[B, hidden]`` (integer mean of the last LayerNorm output over each
    sentence's tokens) at the real per-channel scale ``pooled_scale``; ``layer_outputs``
    the LayerNorm-2 integers of each run layer at ``layer_scales``; ``residual`` the
    residual-stream integers after the last run layer; ``ops`` the op counts of the
    whole pass; ``overflows`` every overflow event; ``unpack`` GEMM name ->
    ``[work after unpacking, work before]`` (IM-Unpack configurations);
    ``clipped`` requantization step -> outputs that saturated; ``trace`` every
    intermediate tensor's dtype and shape, in order; ``llm_int8`` linear name ->
    ``[work in int8 x int8 MACs, M K N, outlier columns, columns]`` summed over calls
    (an outlier column's int16 x int16 MAC counts as 4 int8 MACs).
    """

    pooled: np.ndarray
    pooled_scale: np.ndarray
    layer_outputs: list[np.ndarray]
    layer_scales: list[np.ndarray]
    residual: np.ndarray
    ops: OpCounts
    overflows: list[OverflowRecord]
    unpack: dict[str, list[int]]
    clipped: dict[str, int]
    trace: list[TraceEntry]
    layers: list[int]
    llm_int8: dict[str, list[int]] = field(default_factory=dict)

    def embeddings(self) -> np.ndarray:
        """Dequantized, L2-normalized pooled embeddings (float64; evaluation only)."""
        e = self.pooled.astype(np.float64) * self.pooled_scale
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


class _Run:
    """Accumulates op counts, overflow events, unpack work, clip counts and the dtype trace."""

    def __init__(self, cfg: IntConfig, record: dict[str, np.ndarray] | None) -> None:
        self.cfg = cfg
        self.policy = cfg.overflow
        self.ops = OpCounts()
        self.overflows: list[OverflowRecord] = []
        self.unpack: dict[str, list[int]] = {}
        self.llm_int8: dict[str, list[int]] = {}
        self.clipped: dict[str, int] = {}
        self.trace: list[TraceEntry] = []
        self.record = record
        self.layer = -1

    def emit(self, layer: int, step: str, arr: Any) -> np.ndarray:
        """The checkpoint every intermediate passes: integer dtype or DTypeError."""
        a = np.asarray(arr)
        if a.dtype.kind not in "iu":
            raise DTypeError(f"integer MiniLM pass, layer {layer}, step {step!r}: a {a.dtype} tensor of shape "
                             f"{a.shape} where only integers may flow")
        self.trace.append(TraceEntry(layer, step, a.dtype.name, tuple(a.shape)))
        if self.record is not None:
            self.record[f"l{layer}.{step}" if layer >= 0 else step] = a
        return a

    def op(self, layer: int, step: str, res: OpResult) -> np.ndarray:
        """Take an operator's result: ops, register events, its values through the checkpoint."""
        self.ops += res.ops
        if res.registers is not None:
            for ev in res.registers.events:
                self.overflows.append(OverflowRecord(layer, step, f"{ev.op}.{ev.step}", ev.bits, ev.count,
                                                     tuple(ev.index), ev.value, ev.policy))
        return self.emit(layer, step, res.values)

    def reg(self, layer: int, step: str, values: np.ndarray, bits: int) -> np.ndarray:
        """Pass values through a signed ``bits``-wide register under the configured policy."""
        regs = RegisterFile("minilm", {step: bits}, overflow=self.policy)
        try:
            out = regs.check(step, values)
        finally:
            for ev in regs.events:
                self.overflows.append(OverflowRecord(layer, step, f"minilm.{step}", ev.bits, ev.count,
                                                     tuple(ev.index), ev.value, ev.policy))
        return self.emit(layer, step, out)

    def requant(self, layer: int, rq: Requant, x: np.ndarray) -> np.ndarray:
        """``rq`` on ``x`` (the fast kernel, no taps); saturated outputs are counted in :attr:`clipped`."""
        res = requantize(x, rq.scale, "half_even", rq.out, in_type=rq.in_type, allow_negative=True,
                         overflow=self.policy, taps=False)
        n = self.saturated(rq, x, res.values)
        if n:
            self.clipped[rq.name] = self.clipped.get(rq.name, 0) + n
        return self.op(layer, rq.name, res)

    def saturated(self, rq: Requant, x: np.ndarray, values: np.ndarray) -> int:
        """How many of ``values`` (``rq`` on ``x``) saturated: their rounded value lies outside ``rq.out``.

        Only an output at a bound of ``rq.out`` can have saturated, so the rows of ``x`` holding
        one are requantized again with taps, whose ``rounded`` register is compared with the output.
        """
        if values.size == 0 or (values.min() > rq.out.min and values.max() < rq.out.max):
            return 0
        C = values.shape[-1] if values.ndim else 1
        v = values.reshape(-1, C)
        rows = np.flatnonzero(((v == rq.out.min) | (v == rq.out.max)).any(axis=1))  # not empty
        again = requantize(np.asarray(x).reshape(-1, C)[rows], rq.scale, "half_even", rq.out, in_type=rq.in_type,
                           allow_negative=True, overflow=self.policy, taps=True)
        return int(np.count_nonzero(again.taps["rounded"] != v[rows]))

    def gemm_overflow(self, layer: int, step: str, n: int, first: tuple, bits: int) -> None:
        if n:
            self.overflows.append(OverflowRecord(layer, step, "accumulator", bits, n, first, None, self.policy))

    def pool(self, y: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Integer mean pooling: a per-sentence sum register, then ``round_half_even(sum / len)``."""
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        sums = np.add.reduceat(y, starts, axis=0)
        bits = LN_OUT_BITS + int(lens.max()).bit_length()
        sums = self.reg(-2, "pool_sum", sums, bits)
        pooled = self.emit(-2, "pooled", div_round(sums, lens[:, None], "half_even"))
        H = y.shape[1]
        self.ops += OpCounts().add("add", (bits,), int(lens.sum() - lens.size) * H).add("div", (bits,), lens.size * H)
        return pooled


class _Layer:
    """One encoder layer of the integer pass (see the module docs for the data flow)."""

    def __init__(self, model: QuantizedMiniLM, ql: QLayer, run: _Run) -> None:
        self.m = model
        self.ql = ql
        self.run_ = run
        self.cfg = model.config
        self.li = ql.index
        c = self.cfg
        pol = c.overflow
        self.dp_lin = Datapath(IntType(c.act_bits if c.linear == "static" else 8), IntType(c.weight_bits),
                               acc_bits=c.acc_bits, overflow=pol)
        self.dp_out16 = Datapath(IntType(16), IntType(16), acc_bits=48, overflow=pol)
        self.dp_scores = Datapath(IntType(8), IntType(8), acc_bits=c.acc_bits, overflow=pol)
        self.dp_pv = Datapath(IntType(c.prob_bits, signed=False), IntType(8), acc_bits=c.acc_bits, overflow=pol)
        self.dp_unpack = Datapath(IntType(c.mult_bits), IntType(c.mult_bits), acc_bits=c.acc_bits, overflow=pol)
        self._dyn_in: tuple[np.ndarray, ...] | None = None
        self.lens: np.ndarray | None = None  # tokens per sentence, set by run()
        self.dp_dyn = Datapath(IntType(c.act_bits, signed=False), IntType(c.weight_bits), acc_bits=c.acc_bits,
                               overflow=pol)

    # -- GEMMs ------------------------------------------------------------------------------------
    def gemm(self, A: np.ndarray, B: np.ndarray, step: str, dp: Datapath, bias: np.ndarray | None = None
             ) -> np.ndarray:
        run = self.run_
        if self.cfg.gemm == "unpack" and dp is not self.dp_out16:
            from ...hw.unpack import unpack_matmul

            sa, sb = self.cfg.unpack_strategy
            r = unpack_matmul(A, B, self.dp_unpack, sa, sb)
            if r.is_wide:  # pragma: no cover - int8 operands cannot produce this
                raise ShapeError(f"layer {self.li} {step}: an unpacked GEMM result does not fit int64")
            run.ops += r.ops
            w = run.unpack.setdefault(step, [0, 0])
            w[0] += int(np.prod(r.unpacked_shape))
            w[1] += int(np.prod(r.shape))
            first = ()
            if r.n_overflow:
                first = tuple(int(i) for i in np.argwhere(r.overflow)[0])
            run.gemm_overflow(self.li, step, r.n_overflow, first, dp.acc_bits)
            values = r.values
            if bias is not None:
                run.ops += OpCounts().add("add", (dp.acc_bits,), values.size)
                values = run.reg(self.li, step + ".bias_add", values + bias, dp.acc_bits)
            return values
        r = matmul(A, B, dp, bias)
        run.ops += r.ops
        first = ()
        if r.n_overflow:
            i, j = (int(t) for t in np.argwhere(r.overflow)[0])
            first = (i, j, int(r.first_overflow_k[i, j]))
        run.gemm_overflow(self.li, step, r.n_overflow, first, dp.acc_bits)
        return r.values

    def linear(self, lin: QLinear, x: np.ndarray) -> np.ndarray:
        run = self.run_
        if lin.qm:
            return run.emit(self.li, lin.name, self._dynamic(lin, x))
        if self.cfg.linear == "static":
            return run.emit(self.li, lin.name, self.gemm(x, lin.w, lin.name, self.dp_lin, lin.bias))
        lens = self.lens
        if self.cfg.outlier_scope == "batch" or lens is None or len(lens) == 1:
            return run.emit(self.li, lin.name, self._llm_int8(lin, x))
        # per sequence: each sentence chooses its own outlier columns (batch-invariant results)
        bounds = np.concatenate(([0], np.cumsum(lens)))
        return run.emit(self.li, lin.name, np.concatenate([self._llm_int8(lin, x[bounds[i]:bounds[i + 1]])
                                                           for i in range(len(lens))]))

    def _dynamic(self, lin: QLinear, x: np.ndarray) -> np.ndarray:
        """DI-MatMul: per-token dynamic quantization of the input, GEMM, exact per-token rescale
        (see :class:`QLinear`)."""
        from ...ops.illm import dynamic_requant

        run, li, name = self.run_, self.li, lin.name
        if self._dyn_in is None or self._dyn_in[0] is not x:  # q, k and v share one quantized input
            dq = dynamic_requant(x, lin.x_scale, bits=self.cfg.act_bits, in_type=IntType(WIDE_BITS),
                                 overflow=run.policy)
            u = run.op(li, name + ".dynq", dq)
            p_min = run.emit(li, name + ".p_min", dq.offset)  # [tokens, 1]
            rng = run.emit(li, name + ".range", dq.row_range)  # the range each token was divided by
            self._dyn_in = (x, u, p_min, rng)
        _, u, p_min, rng = self._dyn_in
        acc = run.emit(li, name + ".acc", self.gemm(u, lin.w, name, self.dp_dyn))
        t = acc * rng + (lin.qm * p_min) * lin.colsum + lin.bias
        run.ops += (OpCounts().add("mul", (self.cfg.acc_bits, WIDE_BITS + 1), acc.size)
                    .add("mul", (WIDE_BITS + self.cfg.act_bits, 32), acc.size).add("add", (DYN_BITS,), 2 * acc.size))
        return run.reg(li, name + ".rescaled", t, DYN_BITS)

    def _llm_int8(self, lin: QLinear, x: np.ndarray) -> np.ndarray:
        """LLM.int8() in integers: outlier columns at 16 bits, the rest per token at 8 bits."""
        run, li, name = self.run_, self.li, lin.name
        N, K = x.shape
        ax = np.abs(x)
        colmax = ax.max(axis=0)
        outl = colmax >= lin.tau
        reg_cols = np.flatnonzero(~outl)
        out_cols = np.flatnonzero(outl)
        A = self.cfg.act_bits
        ops = OpCounts().add("compare", (A,), 2 * N * K)  # |x| and the column maxima
        # per-token (row) absmax of the regular columns, then x8 = round(127 x / a)
        xr = x[:, reg_cols]
        a = np.abs(xr).max(axis=1) if reg_cols.size else np.zeros(N, np.int64)
        a = run.emit(li, name + ".row_absmax", a.astype(np.int64))
        safe = np.maximum(a, 1)[:, None]
        x8 = run.emit(li, name + ".x8", div_round(xr * 127, safe, "half_even"))
        ops.add("compare", (A,), N * reg_cols.size).add("mul", (A, 8), xr.size).add("div", (A,), xr.size)
        acc8 = self.gemm(x8, lin.w[reg_cols], name + ".int8", self.dp_lin)
        acc8 = run.emit(li, name + ".acc8", acc8)
        # acc8 * a_i (the per-token scale, an integer) then the constant dyadic factor
        t = run.reg(li, name + ".row_scaled", acc8 * a[:, None], 48)
        ops.add("mul", (self.cfg.acc_bits, A), t.size)
        part8 = run.op(li, name + ".rescale", requantize(t, lin.combine, "half_even", IntType(48),
                                                          in_type=IntType(48), overflow=run.policy, taps=False))
        acc16 = self.gemm(x[:, out_cols], lin.w16[out_cols], name + ".int16", self.dp_out16, lin.bias16)
        acc16 = run.emit(li, name + ".acc16", acc16)
        ops.add("add", (48,), t.size)
        run.ops += ops
        w = run.llm_int8.setdefault(name, [0, 0, 0, 0])
        w[0] += N * (K + 3 * int(out_cols.size)) * lin.w.shape[1]  # an int16 x int16 MAC is 4 int8 MACs
        w[1] += N * K * lin.w.shape[1]
        w[2] += int(out_cols.size)
        w[3] += K
        return run.reg(li, name + ".sum", acc16 + part8, 48)

    # -- the layer --------------------------------------------------------------------------------
    def run(self, xr: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ql, run, li, cfg, nl = self.ql, self.run_, self.li, self.cfg, self.m.nonlinear
        self.lens = lens
        emit = run.emit
        R = cfg.residual_bits
        emit(li, "xr", xr)
        x = run.requant(li, ql.rq_in, xr)
        q = run.requant(li, ql.rq_q, self.linear(ql.q, x))
        k = run.requant(li, ql.rq_k, self.linear(ql.k, x))
        v = run.requant(li, ql.rq_v, self.linear(ql.v, x))
        nh, hd = self.m.heads, self.m.hidden // self.m.heads
        ctx_acc = np.empty((xr.shape[0], self.m.hidden), dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        # sentences of equal length share one softmax call (rows are independent: same result)
        for T in np.unique(lens).tolist():
            group = starts[lens == T].tolist()
            scores = np.empty((len(group), nh, T, T), dtype=np.int64)
            for g, off in enumerate(group):
                rows = slice(off, off + T)
                for h in range(nh):
                    cols = slice(h * hd, (h + 1) * hd)
                    scores[g, h] = self.gemm(q[rows, cols], k[rows, cols].T, "scores", self.dp_scores)
            emit(li, "scores", scores if len(lens) > 1 else scores[0])
            p = run.op(li, "softmax", nl.softmax(scores, ql.softmax_scale, cfg.prob_bits, cfg.acc_bits,
                                                   run.policy))
            if len(lens) == 1 and run.record is not None:
                run.record[f"l{li}.softmax"] = p[0]
            for g, off in enumerate(group):
                rows = slice(off, off + T)
                for h in range(nh):
                    cols = slice(h * hd, (h + 1) * hd)
                    ctx_acc[rows, cols] = self.gemm(p[g, h], v[rows, cols], "attn_v", self.dp_pv)
        if len(lens) > 1 and run.record is not None:  # per-sentence tensors are recorded for one sentence only
            for key in (f"l{li}.scores", f"l{li}.softmax"):
                run.record.pop(key, None)
        emit(li, "attn_v", ctx_acc)
        ctx = run.requant(li, ql.rq_ctx, ctx_acc)
        o = self.linear(ql.o, ctx)
        res1 = self.residual("res1", run.requant(li, ql.rq_res1_o, o), run.requant(li, ql.rq_res1_x, xr), R)
        y1 = self.layernorm("ln1", res1, ql.ln1_shift, ql.ln1_bias)
        x1 = run.requant(li, ql.rq_x1, y1)
        x1r = run.requant(li, ql.rq_x1r, y1)
        up = run.requant(li, ql.rq_up, self.linear(ql.up, x1))
        g = run.op(li, "gelu", nl.gelu(up, ql.gelu_scale, cfg.gelu_bits, run.policy))
        act = run.requant(li, ql.rq_act, g)
        d = self.linear(ql.down, act)
        res2 = self.residual("res2", run.requant(li, ql.rq_res2_d, d), run.requant(li, ql.rq_res2_x, x1r), R)
        y2 = self.layernorm("ln2", res2, ql.ln2_shift, ql.ln2_bias)
        out = run.requant(li, ql.rq_out, y2)
        return out, y2

    def residual(self, step: str, a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
        self.run_.ops += OpCounts().add("add", (bits,), a.size)
        return self.run_.reg(self.li, step, a + b, bits)

    def layernorm(self, step: str, x: np.ndarray, shift: int, bias: np.ndarray) -> np.ndarray:
        run = self.run_
        y = run.op(self.li, step, self.m.nonlinear.layernorm(x, self.cfg.residual_bits, shift, run.policy))
        run.ops += OpCounts().add("add", (LN_OUT_BITS,), y.size)
        return run.reg(self.li, step + ".bias", y + bias, LN_OUT_BITS)
