"""The ``unpack`` kind: IM-Unpack (Zeng, Sankaralingam, Singh, ICML 2024) unpack ratios of the
MiniLM's GEMMs, of ``[[gemm]]`` operands of the spec, or of every integer GEMM of a quantized ONNX
model (``[onnx]``), per bit-width, strategy and quantizer."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ...core.arrays import to_int64
from ...core.errors import (
    ConfigError,
    DTypeError,
    FileFormatError,
    IntsimError,
    ModelNotInstalledError,
    OperandRangeError,
    ShapeError,
)
from ...core.fileio import sha256_file
from ...core.npyfile import read_gemm_npy, read_npy
from ...quant.quantizers import quantize_rtn_group
from .deps import plot_ratio_vs_bits, pyplot
from .kinds import Plan, PointResult, SweepKind, SweepSpec, product_points
from .params import Param, check_bool, check_choice, check_float, check_int, check_sentences, check_str

__all__ = ["UnpackKind"]


_MINILM_ORDER = ("q_proj", "k_proj", "v_proj", "scores", "attn_v", "o_proj", "ffn_up", "ffn_down")
_MINILM_GEMMS = tuple(f"{layer}.{name}" for layer in range(6) for name in _MINILM_ORDER)


@functools.lru_cache(maxsize=2)
def _minilm_groups(sentences: int, max_len: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The MiniLM's GEMM operands by ``"L.name"`` (cached per worker process)."""
    try:
        from intsim_reference.minilm import capture_gemm_operands
        from intsim_reference.sentences import SENTENCES
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise ModelNotInstalledError(f"the MiniLM reference is needed for an unpack sweep ({exc})") from None
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for o in capture_gemm_operands(list(SENTENCES[:sentences]), max_len=max_len):
        groups.setdefault(f"{o.layer}.{o.name}", []).append((o.a, o.b))
    return groups


@functools.lru_cache(maxsize=64)
def _npy(path: str, sha256: str) -> np.ndarray:
    """An operand file (cached per worker process), read as the driver read it
    (:func:`intsim.core.npyfile.read_npy`) and checked against the hash the driver saw."""
    got = read_npy(path, kinds="iuf", ndim=2)
    if got.sha256 != sha256:
        raise FileFormatError(f"{path}: changed since the sweep started (its SHA-256 differs); run the sweep again")
    return got.array


def _onnx_names(sites: Any) -> list[str]:
    """The GEMM names of an ONNX workload's sites: the node name, or ``"node (OpType)"`` where two
    sites share a node name (or it is empty)."""
    short = [s.name.rsplit(" (", 1)[0] for s in sites]
    return [n if n and short.count(n) == 1 and n != "all" else s.name for n, s in zip(short, sites, strict=True)]


@functools.lru_cache(maxsize=2)
def _onnx_gemms(model: str, model_sha: str, feeds: str, feeds_sha: str
                ) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Every integer GEMM of the ONNX model run on the feeds (cached per worker process), by the
    names :func:`_onnx_names` gives: its 2-D products' zero-point-free integer operands."""
    from ...cost.workloads import onnx_workload

    for path, sha in ((model, model_sha), (feeds, feeds_sha)):
        if sha256_file(path) != sha:
            raise FileFormatError(f"{path}: changed since the sweep started (its SHA-256 differs); run the sweep again")
    sites = onnx_workload(model, feeds).sites
    return {n: [(p.a.astype(np.int64), p.b.astype(np.int64)) for p in s.parts]
            for n, s in zip(_onnx_names(sites), sites, strict=True)}


@functools.lru_cache(maxsize=16)
def _quantized(gemm: str, percentile: float, levels: int, sentences: int, max_len: int,
               files: tuple[str, str, str, str] | None, onnx: tuple[str, str, str, str] | None = None
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if files is not None:
        a, b = _npy(files[0], files[1]), _npy(files[2], files[3])
        members = [(a, b)]
    elif onnx is not None:
        members = _onnx_gemms(*onnx)[gemm]
    else:
        members = _minilm_groups(sentences, max_len)[gemm]
    qa = [m[0] if m[0].dtype.kind in "iu" else None for m in members]
    qb = [m[1] if m[1].dtype.kind in "iu" else None for m in members]
    if any(x is None for x in qa):
        qa = quantize_rtn_group([m[0] for m in members], levels, percentile)[0]
    if any(x is None for x in qb):
        qb = quantize_rtn_group([m[1] for m in members], levels, percentile)[0]
    return [to_int64(x, f"{gemm}: A") for x in qa], [to_int64(x, f"{gemm}: B") for x in qb]


class UnpackKind(SweepKind):
    """Unpack ratios of IM-Unpack (``intsim.hw.unpack.compare_strategies``) on the MiniLM's GEMMs,
    on ``[[gemm]]`` operands of the spec, or on every integer GEMM of the quantized ONNX model of an
    ``[onnx]`` table (``model`` and ``inputs``, its feeds ``.npz``; the model is run once per worker as
    ONNX Runtime runs it, and each GEMM node's zero-point-free integer operands are unpacked as they
    are, so ``percentile`` and ``levels`` do not apply): one GEMM (a per-head group summed over
    sentences and heads, with one scale per group as ``intsim report unpack``; for a model, the 2-D
    products of one node), one bit-width, strategy and quantizer per point. Figures: ``gemms``,
    ``macs``, ``unpacked_macs``, ``unpack_ratio`` (``unpacked_macs / macs``), ``low_bit_gemms``,
    ``out_of_range_a``, ``out_of_range_b`` (shares of entries with ``|q| >= 2**(bits-1)``)."""

    name = "unpack"
    summary = "IM-Unpack ratios of GEMMs x bit-widths x strategies x quantizers"
    extra_tables = ("gemm", "onnx")

    def __init__(self) -> None:
        from ...hw.unpack import STRATEGIES

        self.params = (
            Param("gemm", "all", "a GEMM: 'L.name' of the MiniLM (L 0-5), a [[gemm]] name, an [onnx] model's "
                  "node name, or 'all'", check_str),
            Param("bits", 4, "multiplier bit-width b (2-32)", check_int(2, 32)),
            Param("strategy", "plan", f"unpack strategy ({', '.join(STRATEGIES)})", check_choice(STRATEGIES)),
            Param("percentile", 0.95, "quantization percentile p in (0, 1]", check_float(0.0, 1.0, lo_open=True)),
            Param("levels", 15, "quantization levels D", check_int(1, 1 << 30)),
            Param("admit_min", False, "count -2**(b-1) as in range", check_bool),
            Param("sentences", 4, "MiniLM: number of sentences of intsim_reference.sentences", check_sentences),
            Param("max_len", 64, "MiniLM: tokenizer max length", check_int(1, 256)),
        )

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        own = spec.tables.get("gemm")
        files: dict[str, list[str]] = {}
        onnx = self._plan_onnx(spec, own is not None)
        if own is not None:
            if not isinstance(own, list) or not own or not all(isinstance(t, dict) for t in own):
                raise ConfigError(f"{spec.source}: 'gemm' must be an array of tables ([[gemm]] with name, a, b)")
            for i, t in enumerate(own, 1):
                where = f"{spec.source}: [[gemm]] #{i}"
                bad = sorted(set(t) - {"name", "a", "b"})
                if bad or not {"name", "a", "b"} <= set(t):
                    raise ConfigError(f"{where}: needs exactly the keys name, a and b (.npy files), got "
                                      f"{', '.join(sorted(t))}")
                name = check_str(t["name"], f"{where}: name")
                if name in files or name == "all":
                    raise ConfigError(f"{where}: name {name!r} is used twice (or is 'all')")
                pa, pb = (spec.resolve(check_str(t[side], f"{where}: {side}"), f"{where}: {side}") for side in "ab")
                try:
                    ra, rb = read_gemm_npy(pa, pb, kinds="iuf")
                except (FileFormatError, DTypeError, ShapeError, OperandRangeError) as exc:
                    raise type(exc)(f"{where}: {exc}") from None
                entry = [str(pa), ra.sha256, str(pb), rb.sha256]
                files[name] = entry
        names = tuple(files) if files else tuple(onnx[0]) if onnx else _MINILM_GEMMS
        gemms: list[str] = []
        for g in grid["gemm"]:
            if g == "all":
                gemms += [n for n in names if n not in gemms]
            elif g not in names:
                raise ConfigError(f"{spec.source}: grid.gemm: unknown GEMM {g!r}; valid: 'all', "
                                  + (", ".join(names) if files or onnx else "'L.name' with L 0-5 and name one of "
                                     + ", ".join(_MINILM_ORDER)))
            elif g not in gemms:
                gemms.append(g)
        grid = {**grid, "gemm": gemms}
        if files or onnx:  # the MiniLM's parameters do not apply (nor the quantizer's, to a model's integers)
            for k in ("sentences", "max_len") + (("percentile", "levels") if onnx else ()):
                if k in spec.given:
                    raise ConfigError(f"{spec.source}: grid.{k}: applies to the MiniLM's GEMMs, not to "
                                      + ("an [onnx] model's integer GEMMs" if onnx else "[[gemm]] files"))
                grid.pop(k)
        if files:
            identity: dict[str, Any] = {"files": {n: [e[1], e[3]] for n, e in files.items()}}
        elif onnx:
            identity = {"onnx": [onnx[1][1], onnx[1][3]]}
        else:
            identity = {"model": "all-MiniLM-L6-v2"}
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1],
                    {"files": files, "onnx": onnx[1] if onnx else None}, identity, spec.source)

    @staticmethod
    def _plan_onnx(spec: SweepSpec, has_gemm: bool) -> tuple[list[str], tuple[str, str, str, str]] | None:
        """The ``[onnx]`` table: the model's GEMM names (the model is run once here, which checks the
        model and its feeds) and (model, its SHA-256, feeds, their SHA-256); None without the table."""
        t = spec.tables.get("onnx")
        if t is None:
            return None
        where = f"{spec.source}: [onnx]"
        if not isinstance(t, dict):
            raise ConfigError(f"{where}: must be a table with model and inputs")
        if has_gemm:
            raise ConfigError(f"{where}: a spec takes [[gemm]] files or an [onnx] model, not both")
        if set(t) != {"model", "inputs"}:
            raise ConfigError(f"{where}: needs exactly the keys model (.onnx) and inputs (its feeds .npz), got "
                              f"{', '.join(sorted(t)) or 'none'}")
        model, feeds = (str(spec.resolve(check_str(t[k], f"{where}: {k}"), f"[onnx]: {k}"))
                        for k in ("model", "inputs"))
        from ...cost.workloads import onnx_workload

        try:
            sites = onnx_workload(model, feeds).sites
        except IntsimError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        return _onnx_names(sites), (model, sha256_file(model), feeds, sha256_file(feeds))

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        from ...hw.unpack import compare_strategies

        files = shared["files"].get(params["gemm"])
        qa, qb = _quantized(params["gemm"], params.get("percentile", 1.0), params.get("levels", 0),
                            params.get("sentences", 0), params.get("max_len", 0), tuple(files) if files else None,
                            shared.get("onnx"))
        b, strat = params["bits"], params["strategy"]
        s = 1 << (b - 1)
        macs = work = lowbit = oor_a = oor_b = size_a = size_b = 0
        for ia, ib in zip(qa, qb, strict=True):
            m, k = ia.shape
            macs += m * k * ib.shape[1]
            st = compare_strategies(ia, ib, b, strategies=(strat,), admit_min=params["admit_min"])[strat]
            work += st.work
            lowbit += st.n_gemms
            lo = -s if params["admit_min"] else -s + 1
            oor_a += int(np.count_nonzero((ia < lo) | (ia >= s)))
            oor_b += int(np.count_nonzero((ib < lo) | (ib >= s)))
            size_a += ia.size
            size_b += ib.size
        return PointResult({"gemms": len(qa), "macs": macs, "unpacked_macs": work,
                            "unpack_ratio": work / macs if macs else 1.0, "low_bit_gemms": lowbit,
                            "out_of_range_a": oor_a / size_a if size_a else 0.0,
                            "out_of_range_b": oor_b / size_b if size_b else 0.0})

    def plots(self, rows: list[dict[str, Any]], plan: Plan, out: Path) -> list[tuple[str, str]]:
        plt = pyplot()
        if plt is None or len({r["bits"] for r in rows}) < 2:
            return []
        series: dict[str, dict[int, list[int]]] = {}
        others = [a for a in plan.axes if a not in ("bits", "gemm")]
        for r in rows:
            label = ", ".join(f"{a}={r[a]}" for a in others) or r["strategy"]
            acc = series.setdefault(label, {}).setdefault(r["bits"], [0, 0])
            acc[0] += r["unpacked_macs"]
            acc[1] += r["macs"]
        plot_ratio_vs_bits(plt, series, sorted({r["bits"] for r in rows}), "unpack ratio over the sweep's GEMMs",
                           out / "unpack_ratio_vs_bits.png")
        return [("unpack_ratio_vs_bits.png", "unpack ratio against bit-width, summed over the GEMMs")]
