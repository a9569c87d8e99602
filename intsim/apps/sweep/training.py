"""The ``training`` kind: IM-Unpack ratios and INT16 accumulator overflow of the GEMMs of one MiniLM
training step (``intsim report training``), per GEMM kind, bit-width, strategy, quantizer and
accumulator organisation."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import ConfigError, ModelNotInstalledError
from ...quant.quantizers import quantize_rtn_group
from ..reports.training import KIND_ORDER
from .deps import plot_ratio_vs_bits, pyplot
from .kinds import Plan, PointResult, SweepKind, SweepSpec, product_points
from .params import Param, check_choice, check_float, check_int

__all__ = ["TrainingKind", "GEMM_KINDS", "MAX_LAYERS"]

#: what ``gemm`` may be: a GEMM kind of the step, ``inference`` (forward + attention) or ``all``
GEMM_KINDS = (*KIND_ORDER, "inference", "all")
_SELECT = {**{k: (k,) for k in KIND_ORDER}, "inference": ("forward", "attention"), "all": KIND_ORDER}
MAX_LAYERS = 6
"""The encoder layers of all-MiniLM-L6-v2."""
_MAX_LEN = 256  # the model's max_seq_length


def _n_pairs() -> int:
    """How many sentence pairs the training report can draw (paraphrase and unrelated alternating)."""
    try:
        from intsim_reference.sentences import PARAPHRASE_PAIRS, UNRELATED_PAIRS
    except ImportError:  # pragma: no cover - depends on the checkout
        return 30
    return 2 * min(len(PARAPHRASE_PAIRS), len(UNRELATED_PAIRS))


def _check_pairs(v: Any, where: str) -> int:
    return check_int(1, _n_pairs())(v, where)


def _check_spill(v: Any, where: str) -> int:
    """0 (no spill) or a spill interval k from 2 to 2**20."""
    if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or 2 <= v <= 1 << 20):
        raise ConfigError(f"{where}: must be 0 (no spill) or an integer from 2 to {1 << 20}, got {v!r}")
    return v


Groups = tuple[tuple[str, tuple[np.ndarray, ...], tuple[np.ndarray, ...]], ...]


@functools.lru_cache(maxsize=2)
def _groups(pairs: int, max_len: int, layers: int) -> Groups:
    """The float64 GEMM operands of one training step (cached per worker process), one entry per
    (layer, GEMM, role) in execution order: its kind and the A and B operands of its members (the
    per-head products of a layer share a group, as in ``intsim report training``)."""
    try:
        from intsim_reference.training import training_step
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise ModelNotInstalledError(f"the float64 reference is needed for a training sweep ({exc})") from None
    from ..reports.training import training_workload

    wl = training_workload(pairs, max_len, layers)
    step = training_step(wl.model, wl.input_ids, wl.attention_mask, wl.pairs, wl.labels)
    by_key: dict[tuple[int, str, str], list[Any]] = {}
    for g in step.gemms:
        by_key.setdefault((g.layer, g.name, g.role), []).append(g)
    return tuple((m[0].kind, tuple(g.a for g in m), tuple(g.b for g in m)) for m in by_key.values())


@functools.lru_cache(maxsize=8)
def _rtn(pairs: int, max_len: int, layers: int, percentile: float, levels: int) -> Groups:
    """The groups quantized by the percentile quantizer, one scale per group and operand."""
    return tuple((kind, tuple(quantize_rtn_group(list(a), levels, percentile)[0]),
                  tuple(quantize_rtn_group(list(b), levels, percentile)[0]))
                 for kind, a, b in _groups(pairs, max_len, layers))


@functools.lru_cache(maxsize=2)
def _dfp(pairs: int, max_len: int, layers: int) -> Groups:
    """The groups as shared-exponent int16 tensors, one exponent per group and operand."""
    from ...models.minilm.training import dfp_quantize_group

    return tuple((kind, tuple(dfp_quantize_group(list(a))[0]), tuple(dfp_quantize_group(list(b))[0]))
                 for kind, a, b in _groups(pairs, max_len, layers))


@functools.lru_cache(maxsize=512)
def _unpack_sums(kind: str, bits: int, strategy: str, percentile: float, levels: int, pairs: int, max_len: int,
                 layers: int) -> tuple[int, int, int, int]:
    """(GEMMs, sum MKN, sum M'K'N', low-bit GEMMs) of one GEMM kind."""
    from ...hw.unpack import compare_strategies

    gemms = macs = work = lowbit = 0
    for k, qa, qb in _rtn(pairs, max_len, layers, percentile, levels):
        if k != kind:
            continue
        for ia, ib in zip(qa, qb, strict=True):
            st = compare_strategies(ia, ib, bits, strategies=(strategy,))[strategy]
            gemms += 1
            macs += ia.shape[0] * ia.shape[1] * ib.shape[1]
            work += st.work
            lowbit += st.n_gemms
    return gemms, macs, work, lowbit


def _variant(acc_bits: int, spill: int) -> Any:
    """The accumulator organisation of :func:`intsim.models.minilm.training.default_variants`: a plain
    ``acc_bits`` MAC chain (``spill`` 0) or an ``acc_bits`` register spilled into 64 bits every ``spill``."""
    from ...models.minilm.training import default_variants

    return default_variants(acc_bits=acc_bits, spill=(spill,) if spill else (), wide=())[-1]


@functools.lru_cache(maxsize=512)
def _int16_sums(kind: str, acc_bits: int, spill: int, pairs: int, max_len: int,
                layers: int) -> tuple[int, int, int, int]:
    """(outputs, overflowing outputs, outputs whose exact value is outside ``acc_bits``, max K) of one GEMM kind."""
    from ...models.minilm.training import outside_register, overflow_counts

    variant = _variant(acc_bits, spill)
    outputs = overflow = outside = max_k = 0
    for k, da, db in _dfp(pairs, max_len, layers):
        if k != kind:
            continue
        for ja, jb in zip(da, db, strict=True):
            outputs += ja.shape[0] * jb.shape[1]
            max_k = max(max_k, ja.shape[1])
            overflow += overflow_counts(ja, jb, (variant,))[variant.name]
            outside += outside_register(ja, jb, acc_bits)
    return outputs, overflow, outside, max_k


class TrainingKind(SweepKind):
    """The GEMMs of one MiniLM training step (:func:`intsim_reference.training.training_step` on
    ``pairs`` sentence pairs, the first ``layers`` encoder layers, as ``intsim report training``),
    one GEMM kind (``forward``, ``input_grad``, ``weight_grad``, ``attention``, ``attention_grad``,
    or ``inference`` = forward + attention, or ``all``) per point.

    Unpack figures (parameters ``bits``, ``strategy``, ``percentile``, ``levels``; the percentile
    quantizer with one scale per (layer, GEMM, role) and operand, IM-Unpack by
    ``intsim.hw.unpack.compare_strategies``): ``gemms``, ``macs``, ``unpacked_macs``,
    ``unpack_ratio`` (``unpacked_macs / macs``), ``low_bit_gemms``.

    INT16 figures (parameters ``acc_bits``, ``spill``; shared-exponent int16 operands, one exponent
    per (layer, GEMM, role) and operand, run by :func:`intsim.matmul` on the organisation of
    :func:`intsim.models.minilm.training.default_variants`: an ``acc_bits`` MAC chain, or with
    ``spill`` k an ``acc_bits`` register spilled into a 64-bit one every k products):
    ``accumulator`` (its name), ``outputs``, ``max_k``, ``overflow`` (outputs whose registers
    overflowed), ``overflow_fraction`` (``overflow / outputs``) and ``outside_acc`` (outputs whose
    exact value does not fit a signed ``acc_bits`` register)."""

    name = "training"
    summary = "unpack ratios and INT16 accumulator overflow of a MiniLM training step's GEMMs"

    def __init__(self) -> None:
        from ...hw.unpack import STRATEGIES

        self.params = (
            Param("gemm", "all", f"a GEMM kind of the step ({', '.join(GEMM_KINDS)})", check_choice(GEMM_KINDS)),
            Param("bits", 4, "multiplier bit-width b (2-32)", check_int(2, 32)),
            Param("strategy", "plan", f"unpack strategy ({', '.join(STRATEGIES)})", check_choice(STRATEGIES)),
            Param("percentile", 0.95, "quantization percentile p in (0, 1]", check_float(0.0, 1.0, lo_open=True)),
            Param("levels", 15, "quantization levels D", check_int(1, 1 << 30)),
            Param("acc_bits", 32, "INT16 datapath: accumulator (or spilled register) width, 32-63", check_int(32, 63)),
            Param("spill", 0, "INT16 datapath: spill into 64 bits every k products (0 = no spill)", _check_spill),
            Param("pairs", 2, "sentence pairs of intsim_reference.sentences (paraphrase, unrelated alternating)",
                  _check_pairs),
            Param("max_len", 32, "tokenizer max length", check_int(2, _MAX_LEN)),
            Param("layers", 1, f"encoder layers of the model to train (its first N, 1-{MAX_LAYERS})",
                  check_int(1, MAX_LAYERS)),
        )

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1], {},
                    {"model": "all-MiniLM-L6-v2", "step": "cosine-similarity MSE"}, spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        wl = (params["pairs"], params["max_len"], params["layers"])
        gemms = macs = work = lowbit = outputs = overflow = outside = max_k = 0
        for kind in _SELECT[params["gemm"]]:
            g, m, w, lb = _unpack_sums(kind, params["bits"], params["strategy"], params["percentile"],
                                       params["levels"], *wl)
            o, ov, out, k = _int16_sums(kind, params["acc_bits"], params["spill"], *wl)
            gemms, macs, work, lowbit = gemms + g, macs + m, work + w, lowbit + lb
            outputs, overflow, outside, max_k = outputs + o, overflow + ov, outside + out, max(max_k, k)
        return PointResult({"gemms": gemms, "macs": macs, "unpacked_macs": work,
                            "unpack_ratio": work / macs if macs else 1.0, "low_bit_gemms": lowbit,
                            "accumulator": _variant(params["acc_bits"], params["spill"]).name,
                            "outputs": outputs, "max_k": max_k, "overflow": overflow,
                            "overflow_fraction": overflow / outputs if outputs else 0.0, "outside_acc": outside})

    def plots(self, rows: list[dict[str, Any]], plan: Plan, out: Path) -> list[tuple[str, str]]:
        plt = pyplot()
        if plt is None or len({r["bits"] for r in rows}) < 2:
            return []
        series: dict[str, dict[int, list[int]]] = {}
        others = [a for a in plan.axes if a in ("gemm", "strategy", "percentile", "levels", "pairs", "max_len",
                                                 "layers")]
        seen = set()
        for r in rows:  # a point of the INT16 axes repeats the unpack figures: count it once
            key = tuple(r[a] for a in ("gemm", "bits", "strategy", "percentile", "levels", "pairs", "max_len",
                                       "layers"))
            if key in seen:
                continue
            seen.add(key)
            label = ", ".join(f"{a}={r[a]}" for a in others) or f"{r['gemm']}, {r['strategy']}"
            acc = series.setdefault(label, {}).setdefault(r["bits"], [0, 0])
            acc[0] += r["unpacked_macs"]
            acc[1] += r["macs"]
        plot_ratio_vs_bits(plt, series, sorted({r["bits"] for r in rows}),
                           "MiniLM training step: unpack ratio by GEMM kind", out / "training_unpack_ratio_vs_bits.png")
        return [("training_unpack_ratio_vs_bits.png", "unpack ratio against bit-width, by GEMM kind")]
