"""``intsim sweep``: a grid over a report's parameters, run as Dask tasks, results in Parquet.

``intsim sweep SPEC.toml --out DIR`` expands the grid of a TOML spec into points, computes every
point as a task of `Dask <https://docs.dask.org/>`_ (``dask.distributed``) and writes
``DIR/results.parquet``: one row per grid point, in grid order, with the point's parameters, its
figures and the intsim version. By default the tasks run on a ``LocalCluster`` of worker processes
on this machine (``--workers N``, default one per CPU); ``--scheduler tcp://HOST:PORT`` (or a
scheduler file written by ``dask scheduler --scheduler-file``) uses an existing Dask cluster
started with ``dask scheduler`` and ``dask worker``. The workers must import the same intsim
version and read the files the spec names (the same machine or a shared file system).

A spec::

    [sweep]
    kind = "unpack"            # unpack, cost or golden (see "Kinds" below)
    name = "MiniLM layer 0"    # optional, the title of DIR/README.md
    retries = 1                # optional: Dask retries of a failed point (default 1)

    [grid]                     # a list is an axis, a scalar is the same for every point
    gemm = ["0.q_proj", "0.scores"]
    bits = [2, 4, 8]
    strategy = ["row", "plan"]
    percentile = [0.95, 0.99]

The points are the Cartesian product of the axes, the first axis varying slowest, in the order the
spec lists them. An unknown kind or parameter, a value out of range, an empty axis, malformed
TOML or a missing file is an error (exit status 2) naming the spec and the key.

Kinds (:data:`KINDS`; a kind is a :class:`SweepKind` registered with :func:`register_kind`):

``unpack``
    IM-Unpack (Zeng, Sankaralingam, Singh, ICML 2024) unpack ratios, as ``intsim report unpack``
    computes them: parameters ``gemm`` (``"L.name"`` of the MiniLM GEMMs, or ``"all"``), ``bits``,
    ``strategy``, ``percentile``, ``levels``, ``admit_min``, ``sentences``, ``max_len``. A spec
    may name GEMMs of its own instead, ``[[gemm]]`` tables with ``name``, ``a`` and ``b`` (``.npy``
    files, relative to the spec): float operands are quantized as the MiniLM's, integer operands are
    unpacked as they are.
``cost``
    energy, cycles and area (``intsim report cost``) of one method on one hardware profile per
    point: ``method``, ``profile``, ``workload``, ``scale_to``, ``voltage``, ``nonlinear``,
    ``sentences``, ``max_len``, ``seed``.
``golden``
    one golden suite (``spec`` = its TOML file) sharded over the workers, one case per point,
    assembled into ``DIR/suite``: byte-identical to ``intsim golden generate`` of the same spec.

Resuming: every finished point is written at once, atomically, to ``DIR/parts/<key>.parquet``,
``key`` a hash of the kind, the point's parameters, the data it reads (file hashes) and the intsim
version. Running the same command again (after a crash, a kill or with a larger grid) computes only
the points without a part; ``--force`` discards the finished points and computes them all again.
Points are computed from their parameters alone (a seed is a parameter, never the worker, the time
or the order), so the rows are the same whatever the number of workers, their order or the machine.
Compute times go to ``DIR/timings.parquet``, never into ``results.parquet``.

``DIR`` also gets ``README.md`` (a Markdown summary, with plots when matplotlib is installed,
unless ``--no-plots``) and ``sweep.json``, the record of what intsim wrote there: a ``DIR``
holding anything else is refused. Progress goes to stderr, a bar with an estimate of the time left
(``-q``/``--quiet`` hides it).

>>> spec = parse_sweep_spec('''
... [sweep]
... kind = "unpack"
... [grid]
... gemm = "0.q_proj"
... bits = [2, 4]
... strategy = ["row", "plan"]
... ''')
>>> [(p["bits"], p["strategy"]) for p in spec.plan().points]
[(2, 'row'), (2, 'plan'), (4, 'row'), (4, 'plan')]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import ConfigError, FileFormatError, IntsimError, ModelNotInstalledError
from ..core.fileio import RECORD as OUTPUT_RECORD
from ..core.fileio import (
    atomic_directory,
    atomic_write_bytes,
    check_output_target,
    owned_listing,
    sha256_file,
)
from ..core.helptext import add_output_options

__all__ = [
    "Param", "Plan", "PointResult", "SweepKind", "SweepSpec", "KINDS", "register_kind", "parse_sweep_spec",
    "load_sweep_spec", "run_sweep", "SweepReport", "add_arguments", "run", "point_key",
]

MAX_POINTS = 1_000_000
"""The largest grid a spec may expand to."""

RESULTS = "results.parquet"
TIMINGS = "timings.parquet"
SUMMARY = "README.md"
RECORD = "sweep.json"
PARTS = "parts"
SUITE = "suite"
_RECORD_FORMAT = "intsim-sweep"
_PART_META = b"intsim-sweep-part"
_PART_RE = re.compile(r"[0-9a-f]{32}\.parquet")
_PART_TMP_RE = re.compile(r"\.[0-9a-f]{32}\.parquet\.[^/]+\.tmp")
_INSTALL = "pip install 'intsim[sweep]' (dask[distributed] and pyarrow)"


# --------------------------------------------------------------------------------------------------
# kinds
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A parameter of a kind: its name, default (None: absent unless given), help text and
    ``check(value, where)``, which returns the normalized value or raises ConfigError naming ``where``."""

    name: str
    default: Any
    help: str
    check: Callable[[Any, str], Any]
    axis: bool = True  # may it be a list (an axis)?


@dataclass(frozen=True)
class PointResult:
    """What a point's task returns: ``figures`` (name -> int, float, str, bool or None; the columns
    of its row after the parameters) and ``blobs`` (files a kind assembles after the sweep, e.g.
    a golden case's tensors; kept in the point's part, not in ``results.parquet``)."""

    figures: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Plan:
    """A grid ready to run: the points' parameters in grid order, the axes, ``shared`` (one object
    sent once to every worker: file paths, hashes, spec text) and ``identity`` (what the results
    depend on besides the parameters, e.g. the SHA-256 of the files read; part of every point's key)."""

    kind: SweepKind
    points: list[dict[str, Any]]
    axes: list[str]
    shared: dict[str, Any]
    identity: dict[str, Any]
    source: str = "<spec>"


class SweepKind:
    """A kind of sweep. Subclasses set ``name``, ``summary`` and ``params`` and implement
    :meth:`compute` (run on a worker, from the point's parameters and the plan's ``shared`` object
    only); they may override :meth:`plan` (the grid; default: the Cartesian product of the axes),
    :meth:`finish` (files built from all the points, e.g. a golden suite) and :meth:`plots`.

    A kind must be deterministic: the same parameters and shared data give the same figures, on
    any worker, in any order. A kind that needs random numbers derives its seed from a parameter
    (see :func:`point_seed`)."""

    name: str = ""
    summary: str = ""
    params: tuple[Param, ...] = ()
    extra_tables: tuple[str, ...] = ()  # top-level spec tables besides [sweep] and [grid]

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        """The points: every combination of the axes' values, the first axis slowest."""
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1], {}, {}, spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:  # pragma: no cover
        raise NotImplementedError

    def finish(self, out: Path, plan: Plan, results: list[PointResult], progress: Callable[[str], None]) -> list[str]:
        """Write files built from all the points into ``out``; returns their paths relative to ``out``."""
        return []

    def plots(self, rows: list[dict[str, Any]], plan: Plan, out: Path) -> list[tuple[str, str]]:
        """Write PNG figures into ``out``; returns (file name, caption) pairs."""
        return []


KINDS: dict[str, SweepKind] = {}
"""The registered kinds, by name."""


def register_kind(kind: SweepKind) -> SweepKind:
    """Add ``kind`` to :data:`KINDS` (replacing one of the same name) and return it; a later kind
    (e.g. ``training``) plugs in with one call."""
    if not kind.name or not re.fullmatch(r"[a-z][a-z0-9_]*", kind.name):
        raise ConfigError(f"a sweep kind needs a lower-case name, got {kind.name!r}")
    KINDS[kind.name] = kind
    return kind


def product_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values of ``grid`` (name -> list), the first name varying slowest.

    >>> product_points({"b": [2, 4], "s": ["row"]})
    [{'b': 2, 's': 'row'}, {'b': 4, 's': 'row'}]
    """
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def point_seed(params: Mapping[str, Any], *names: str) -> int:
    """A 63-bit seed derived from the named parameters of a point (all of them if none is named):
    the same on every worker and in every run.

    >>> point_seed({"bits": 4, "seed": 0}) == point_seed({"seed": 0, "bits": 4})
    True
    """
    chosen = {k: params[k] for k in (names or params)}
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def point_key(kind: str, params: Mapping[str, Any], identity: Mapping[str, Any]) -> str:
    """The stable key of a point (32 hex digits): a SHA-256 of the kind, the parameters, the data
    identity and the intsim version; it names the point's part file."""
    doc = {"kind": kind, "params": dict(params), "identity": dict(identity), "version": __version__}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


# value checks -----------------------------------------------------------------------------------


def _int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def check(v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{where}: must be an integer from {lo} to {hi}, got {v!r}")
        return v
    return check


def _float(lo: float, hi: float, lo_open: bool = False) -> Callable[[Any, str], float]:
    def check(v: Any, where: str) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or v > hi or v < lo or (lo_open and v == lo):
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise ConfigError(f"{where}: must be a number in {interval}, got {v!r}")
        return float(v)
    return check


def _choice(values: Sequence[str]) -> Callable[[Any, str], str]:
    def check(v: Any, where: str) -> str:
        if v not in values:
            raise ConfigError(f"{where}: must be one of {', '.join(values)}, got {v!r}")
        return v
    return check


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: must be true or false, got {v!r}")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: must be a non-empty string, got {v!r}")
    return v.strip()


def _n_sentences() -> int:
    try:
        from intsim_reference.sentences import SENTENCES
    except ImportError:  # pragma: no cover - depends on the checkout
        return 44
    return len(SENTENCES)


def _sentences(v: Any, where: str) -> int:
    return _int(1, _n_sentences())(v, where)


# the unpack kind --------------------------------------------------------------------------------

_MINILM_ORDER = ("q_proj", "k_proj", "v_proj", "scores", "attn_v", "o_proj", "ffn_up", "ffn_down")
_MINILM_GEMMS = tuple(f"{layer}.{name}" for layer in range(6) for name in _MINILM_ORDER)


def _quantize_group(mats: Sequence[np.ndarray], percentile: float, levels: int) -> list[np.ndarray]:
    """Quantize matrices with one per-tensor scale, as ``intsim report unpack`` does."""
    from ..quant.quantizers import quantize_rtn

    flat = np.concatenate([m.ravel() for m in mats])
    q = quantize_rtn(flat, levels, percentile)
    out, pos = [], 0
    for m in mats:
        out.append(q.values[pos:pos + m.size].reshape(m.shape))
        pos += m.size
    return out


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
    """An operand file (cached per worker process), checked against the hash the driver saw."""
    if sha256_file(path) != sha256:
        raise FileFormatError(f"{path}: changed since the sweep started (its SHA-256 differs); run the sweep again")
    return np.load(path, allow_pickle=False)


@functools.lru_cache(maxsize=16)
def _quantized(gemm: str, percentile: float, levels: int, sentences: int, max_len: int,
               files: tuple[str, str, str, str] | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if files is not None:
        a, b = _npy(files[0], files[1]), _npy(files[2], files[3])
        members = [(a, b)]
    else:
        members = _minilm_groups(sentences, max_len)[gemm]
    qa = [m[0] if m[0].dtype.kind in "iu" else None for m in members]
    qb = [m[1] if m[1].dtype.kind in "iu" else None for m in members]
    if any(x is None for x in qa):
        qa = _quantize_group([m[0] for m in members], percentile, levels)
    if any(x is None for x in qb):
        qb = _quantize_group([m[1] for m in members], percentile, levels)
    return [np.asarray(x, dtype=np.int64) for x in qa], [np.asarray(x, dtype=np.int64) for x in qb]


class UnpackKind(SweepKind):
    """Unpack ratios of IM-Unpack (``intsim.hw.unpack.compare_strategies``) on the MiniLM's GEMMs
    (or ``[[gemm]]`` operands of the spec): one GEMM (a per-head group summed over sentences and
    heads, with one scale per group as ``intsim report unpack``), one bit-width, strategy and
    quantizer per point. Figures: ``gemms``, ``macs``, ``unpacked_macs``, ``unpack_ratio``
    (``unpacked_macs / macs``), ``low_bit_gemms``, ``out_of_range_a``, ``out_of_range_b``
    (shares of entries with ``|q| >= 2**(bits-1)``)."""

    name = "unpack"
    summary = "IM-Unpack ratios of GEMMs x bit-widths x strategies x quantizers"
    extra_tables = ("gemm",)

    def __init__(self) -> None:
        from ..hw.unpack import STRATEGIES

        self.params = (
            Param("gemm", "all", "a GEMM: 'L.name' of the MiniLM (L 0-5), a [[gemm]] name, or 'all'", _str),
            Param("bits", 4, "multiplier bit-width b (2-32)", _int(2, 32)),
            Param("strategy", "plan", f"unpack strategy ({', '.join(STRATEGIES)})", _choice(STRATEGIES)),
            Param("percentile", 0.95, "quantization percentile p in (0, 1]", _float(0.0, 1.0, lo_open=True)),
            Param("levels", 15, "quantization levels D", _int(1, 1 << 30)),
            Param("admit_min", False, "count -2**(b-1) as in range", _bool),
            Param("sentences", 4, "MiniLM: number of sentences of intsim_reference.sentences", _sentences),
            Param("max_len", 64, "MiniLM: tokenizer max length", _int(1, 256)),
        )

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        own = spec.tables.get("gemm")
        files: dict[str, list[str]] = {}
        if own is not None:
            if not isinstance(own, list) or not own or not all(isinstance(t, dict) for t in own):
                raise ConfigError(f"{spec.source}: 'gemm' must be an array of tables ([[gemm]] with name, a, b)")
            for i, t in enumerate(own, 1):
                where = f"{spec.source}: [[gemm]] #{i}"
                bad = sorted(set(t) - {"name", "a", "b"})
                if bad or not {"name", "a", "b"} <= set(t):
                    raise ConfigError(f"{where}: needs exactly the keys name, a and b (.npy files), got "
                                      f"{', '.join(sorted(t))}")
                name = _str(t["name"], f"{where}: name")
                if name in files or name == "all":
                    raise ConfigError(f"{where}: name {name!r} is used twice (or is 'all')")
                entry = []
                shapes = []
                for side in ("a", "b"):
                    path = spec.resolve(_str(t[side], f"{where}: {side}"), f"{where}: {side}")
                    try:
                        arr = np.load(path, mmap_mode="r", allow_pickle=False)
                    except (OSError, ValueError) as exc:
                        raise FileFormatError(f"{where}: {side} = {path}: not a readable .npy file ({exc})") from None
                    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
                        raise ConfigError(f"{where}: {side} = {path}: must be a 2-D integer or float array, got "
                                          f"{arr.dtype} {arr.shape}")
                    shapes.append(arr.shape)
                    entry += [str(path), sha256_file(path)]
                if shapes[0][1] != shapes[1][0]:
                    raise ConfigError(f"{where}: shapes {shapes[0]} @ {shapes[1]} do not fit (A is M x K, B is K x N)")
                files[name] = entry
        names = tuple(files) if files else _MINILM_GEMMS
        gemms: list[str] = []
        for g in grid["gemm"]:
            if g == "all":
                gemms += [n for n in names if n not in gemms]
            elif g not in names:
                raise ConfigError(f"{spec.source}: grid.gemm: unknown GEMM {g!r}; valid: 'all', "
                                  + (", ".join(names) if files else "'L.name' with L 0-5 and name one of "
                                     + ", ".join(_MINILM_ORDER)))
            elif g not in gemms:
                gemms.append(g)
        grid = {**grid, "gemm": gemms}
        if files:  # the MiniLM's parameters do not apply
            for k in ("sentences", "max_len"):
                if k in spec.given:
                    raise ConfigError(f"{spec.source}: grid.{k}: applies to the MiniLM's GEMMs, not to [[gemm]] files")
                grid.pop(k)
        identity = {"files": {n: [e[1], e[3]] for n, e in files.items()}} if files else {"model": "all-MiniLM-L6-v2"}
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1], {"files": files},
                    identity, spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        from ..hw.unpack import compare_strategies

        files = shared["files"].get(params["gemm"])
        qa, qb = _quantized(params["gemm"], params["percentile"], params["levels"], params.get("sentences", 0),
                            params.get("max_len", 0), tuple(files) if files else None)
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
        plt = _pyplot()
        if plt is None or len({r["bits"] for r in rows}) < 2:
            return []
        series: dict[str, dict[int, list[int]]] = {}
        others = [a for a in plan.axes if a not in ("bits", "gemm")]
        for r in rows:
            label = ", ".join(f"{a}={r[a]}" for a in others) or r["strategy"]
            acc = series.setdefault(label, {}).setdefault(r["bits"], [0, 0])
            acc[0] += r["unpacked_macs"]
            acc[1] += r["macs"]
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for label, pts in series.items():
            bits = sorted(pts)
            ax.plot(bits, [pts[b][0] / pts[b][1] for b in bits], marker="o", label=label)
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["bits"] for r in rows}))
        ax.set_xlabel("bit-width b")
        ax.set_ylabel("unpack ratio  sum M'K'N' / sum MKN")
        ax.set_title("unpack ratio over the sweep's GEMMs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "unpack_ratio_vs_bits.png", format="png", metadata={"Software": None})
        plt.close(fig)
        return [("unpack_ratio_vs_bits.png", "unpack ratio against bit-width, summed over the GEMMs")]


# the cost kind ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _workload(spec: str, sentences: int | None, max_len: int, seed: int) -> Any:
    from intsim_reference.sentences import SENTENCES

    from ..cost import parse_workload

    return parse_workload(spec, sentences=None if sentences is None else SENTENCES[:sentences], max_len=max_len,
                          seed=seed)


@functools.lru_cache(maxsize=16)
def _profile(name: str, sha256: str | None, scale_to: float | None, voltage: float | None) -> Any:
    from ..cost import load_profile

    if sha256 is not None and sha256_file(name) != sha256:
        raise FileFormatError(f"{name}: changed since the sweep started (its SHA-256 differs); run the sweep again")
    p = load_profile(name)
    return p.scaled(scale_to, voltage) if scale_to is not None else p


class CostKind(SweepKind):
    """Energy, cycles and area of one method on one hardware profile per point
    (:func:`intsim.cost.cost_workload`). Figures: the method's ``family``, ``bits``, ``macs``,
    ``bops``, ``array_cycles``, ``vector_cycles``, ``time_ns``, ``array_utilization``, the
    ``<component>_pj`` energies, ``compute_pj``, ``memory_pj``, ``total_pj``, ``unpack_ratio``
    and ``area_um2`` (the columns of :meth:`intsim.cost.CostResult.summary`)."""

    name = "cost"
    summary = "energy, cycles and area of methods x hardware profiles"
    params = (
        Param("method", "int8", "a method of intsim.cost (fp32, int8, unpack4-plan, llm.int8, ...)", _str),
        Param("profile", "horowitz45", "a built-in hardware profile or a TOML file (relative to the spec)", _str),
        Param("workload", "gemm:64x384x384", "gemm:MxKxN, gemm:L.name, layer[:L] or minilm", _str),
        Param("scale_to", None, "technology node to scale the profile to (nm)", _float(1.0, 1000.0)),
        Param("voltage", None, "supply voltage of the scaled node", _float(0.1, 5.0)),
        Param("nonlinear", None, "family of non-linear operators of the integer methods", _str),
        Param("sentences", None, "MiniLM workloads: the first N sentences (default: all)", _sentences),
        Param("max_len", 64, "MiniLM workloads: tokenizer max length", _int(1, 256)),
        Param("seed", 0, "seed of synthetic GEMM operands", _int(0, (1 << 63) - 1)),
    )

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        from ..cost import builtin_profiles, get_method, parse_workload

        builtin = builtin_profiles()
        profiles: dict[str, str | None] = {}
        resolved = []
        for name in grid["profile"]:
            if name in builtin:
                profiles[name] = None
                resolved.append(name)
            else:
                path = str(spec.resolve(name, "grid.profile"))
                profiles[path] = sha256_file(path)
                resolved.append(path)
        for m in grid["method"]:
            get_method(m, None)  # an unknown method fails here, naming the valid ones
        for w in grid["workload"]:
            if w.startswith("gemm:") and "x" in w:
                parse_workload(w, seed=0)
        grid = {**grid, "profile": resolved}
        return Plan(self, product_points(grid), [k for k, v in grid.items() if len(v) > 1], {"profiles": profiles},
                    {"profiles": profiles}, spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        from ..cost import cost_workload, get_method

        profile = _profile(params["profile"], shared["profiles"].get(params["profile"]), params["scale_to"],
                           params["voltage"])
        workload = _workload(params["workload"], params["sentences"], params["max_len"], params["seed"])
        method = get_method(params["method"], params["nonlinear"])
        s = cost_workload(workload, profile, [method]).summary().iloc[0]
        figures: dict[str, Any] = {}
        for col, v in s.items():
            if col in ("relative_energy", "energy_saved", "strategy", "nonlinear"):
                continue  # relative to a baseline the point does not hold; strategy is in the method's name
            if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
                figures[str(col)] = int(v)
            elif isinstance(v, (np.floating, float)):
                figures[str(col)] = float(v)
            else:
                figures[str(col)] = str(v)
        return PointResult(figures)

    def plots(self, rows: list[dict[str, Any]], plan: Plan, out: Path) -> list[tuple[str, str]]:
        plt = _pyplot()
        if plt is None:
            return []
        labels = [", ".join(str(r[a]) for a in plan.axes) or r["method"] for r in rows]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 4.5), dpi=100)
        ax.bar(range(len(rows)), [r["total_pj"] / 1e6 for r in rows])
        ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("energy (µJ)")
        ax.set_title("total energy per point")
        fig.tight_layout()
        fig.savefig(out / "energy.png", format="png", metadata={"Software": None})
        plt.close(fig)
        return [("energy.png", "total energy of every point")]


# the golden kind --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _golden_doc(text: bytes) -> dict[str, Any]:
    return tomllib.loads(text.decode("utf-8"))


class GoldenKind(SweepKind):
    """One golden suite (``spec``: its TOML file, relative to the sweep spec) sharded over the
    workers, one case per point; ``DIR/suite`` is then byte-identical to ``intsim golden generate
    SPEC --out DIR/suite``. Each task generates its case as a one-case suite with the suite's name
    and seed (so the case's seed and files are the same); the driver assembles the manifest.
    Figures: ``operator``, ``seed``, ``raises`` (JSON or empty), ``files`` and ``bytes``."""

    name = "golden"
    summary = "one golden suite's cases sharded over the workers"
    params = (Param("spec", None, "the golden suite spec (TOML), relative to the sweep spec", _str, axis=False),)

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        from ..golden.spec import load_spec

        if grid.get("spec") is None or grid["spec"] == [None]:
            raise ConfigError(f"{spec.source}: grid.spec: a golden sweep needs the suite's spec file")
        path = spec.resolve(grid["spec"][0], "grid.spec")
        suite = load_spec(path)  # validates every case, with the caps, before anything runs
        assert suite.text is not None
        points = [{"case": c.name} for c in suite.cases]
        shared = {"text": suite.text, "source": str(path), "name": suite.name, "seed": suite.seed,
                  "description": suite.description}
        return Plan(self, points, ["case"], shared, {"spec_sha256": hashlib.sha256(suite.text).hexdigest()},
                    spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        from ..golden.spec import spec_from_dict
        from ..golden.suite import MANIFEST, generate_suite

        doc = _golden_doc(shared["text"])
        raw = next(c for c in doc["case"] if c.get("name") == params["case"])
        one = spec_from_dict({"suite": doc.get("suite", {}), "case": [raw]}, source=shared["source"])
        with tempfile.TemporaryDirectory(prefix="intsim-sweep-golden-") as d:
            generate_suite(one, Path(d) / "s")
            root = Path(d) / "s"
            manifest = json.loads((root / MANIFEST).read_bytes())
            blobs = {rel: (root / rel).read_bytes() for rel in sorted(manifest["files"])}
        (case,) = manifest["cases"]
        head = {k: manifest[k] for k in ("format", "format_version", "generator", "hex_format")}
        blobs[".case.json"] = json.dumps({"case": case, "head": head}, sort_keys=True).encode()
        return PointResult({"operator": case["operator"], "seed": case["seed"],
                            "raises": json.dumps(case["raises"], sort_keys=True) if case.get("raises") else "",
                            "files": len(manifest["files"]), "bytes": sum(len(b) for b in blobs.values())},
                           blobs)

    def finish(self, out: Path, plan: Plan, results: list[PointResult], progress: Callable[[str], None]) -> list[str]:
        from ..golden.suite import MANIFEST, SPEC_COPY, manifest_bytes, suite_listing

        progress(f"assembling the golden suite {out / SUITE}")
        shared = plan.shared
        cases: list[dict[str, Any]] = []
        files: dict[str, dict[str, Any]] = {}
        head: dict[str, Any] = {}
        with atomic_directory(out / SUITE, force=True, owned=suite_listing, record=False) as tmp:
            _write_new(tmp / SPEC_COPY, shared["text"], files, SPEC_COPY)
            for r in results:
                meta = json.loads(r.blobs[".case.json"])
                head = meta["head"]
                cases.append(meta["case"])
                for rel, data in r.blobs.items():
                    if rel != ".case.json":
                        _write_new(tmp / rel, data, files, rel)
            manifest: dict[str, Any] = {**head, "suite": {"name": shared["name"], "seed": shared["seed"],
                                                          "description": shared["description"]},
                                        "spec": SPEC_COPY, "cases": cases, "files": files}
            body = manifest_bytes(manifest)
            manifest["content_sha256"] = hashlib.sha256(body).hexdigest()
            _write_new(tmp / MANIFEST, manifest_bytes(manifest), None, MANIFEST)
        return [f"{SUITE}/{rel}" for rel in sorted([*files, MANIFEST])]


def _write_new(path: Path, data: bytes, files: dict[str, dict[str, Any]] | None, rel: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as fh:  # inside a directory built aside (atomic_directory)
        fh.write(data)
    if files is not None:
        files[rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


for _k in (UnpackKind(), CostKind(), GoldenKind()):
    register_kind(_k)


# --------------------------------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------------------------------


@dataclass
class SweepSpec:
    """A parsed sweep spec: its kind, the grid (parameter -> list of normalized values, every
    parameter of the kind present, defaults filled in), the names given in the spec, ``retries``,
    ``name``, the kind's extra tables and where relative paths start (``base``)."""

    kind: SweepKind
    grid: dict[str, list[Any]]
    given: tuple[str, ...]
    name: str = ""
    retries: int = 1
    tables: dict[str, Any] = field(default_factory=dict)
    base: Path = field(default_factory=Path.cwd)
    source: str = "<spec>"
    text: bytes = b""

    def resolve(self, path: str, where: str) -> Path:
        """``path`` relative to the spec's folder; a FileFormatError naming ``where`` if it is not a file."""
        p = Path(path)
        p = p if p.is_absolute() else self.base / p
        if not p.is_file():
            raise FileFormatError(f"{self.source}: {where}: {p}: no such file")
        return p.resolve()

    def plan(self) -> Plan:
        """The grid's points in order (:meth:`SweepKind.plan`); ConfigError for an empty or too large grid."""
        plan = self.kind.plan(dict(self.grid), self)
        if not plan.points:
            raise ConfigError(f"{self.source}: the grid is empty (an axis without values)")
        if len(plan.points) > MAX_POINTS:
            raise ConfigError(f"{self.source}: the grid has {len(plan.points)} points, more than MAX_POINTS = "
                              f"{MAX_POINTS}")
        return plan


def parse_sweep_spec(text: str | bytes, source: str = "<spec>", base: str | os.PathLike | None = None) -> SweepSpec:
    """Parse and check a sweep spec (TOML text; see the module docs). Raises FileFormatError for
    text that is not UTF-8 TOML, ConfigError for an unknown kind, table or parameter, a bad value or
    an empty axis, each naming ``source`` and the key."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{source}: not UTF-8 text ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"{source}: invalid TOML: {exc}") from None
    sweep = doc.get("sweep")
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: missing [sweep] table (with kind = one of {', '.join(KINDS)})")
    bad = sorted(set(sweep) - {"kind", "name", "retries"})
    if bad:
        raise ConfigError(f"{source}: sweep.{bad[0]}: unknown key; valid: kind, name, retries")
    kind = KINDS.get(sweep.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise ConfigError(f"{source}: sweep.kind: unknown kind {sweep.get('kind')!r}; valid: {', '.join(KINDS)}")
    name = sweep.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: sweep.name: must be a string, got {name!r}")
    retries = _int(0, 100)(sweep.get("retries", 1), f"{source}: sweep.retries")
    unknown = sorted(set(doc) - {"sweep", "grid", *kind.extra_tables})
    if unknown:
        raise ConfigError(f"{source}: unknown table {unknown[0]!r}; a {kind.name} sweep has "
                          + ", ".join(f"[{t}]" for t in ("sweep", "grid", *kind.extra_tables)))
    grid_doc = doc.get("grid", {})
    if not isinstance(grid_doc, dict):
        raise ConfigError(f"{source}: 'grid' must be a table ([grid])")
    valid = [p.name for p in kind.params]
    for key in grid_doc:
        if key not in valid:
            raise ConfigError(f"{source}: grid.{key}: unknown parameter of a {kind.name} sweep; valid: "
                              f"{', '.join(valid)}")
    grid: dict[str, list[Any]] = {}
    order = list(grid_doc) + [n for n in valid if n not in grid_doc]
    for key in order:
        p = kind.param(key)
        assert p is not None
        where = f"{source}: grid.{key}"
        if key not in grid_doc:
            grid[key] = [p.default]
            continue
        value = grid_doc[key]
        if isinstance(value, list):
            if not p.axis:
                raise ConfigError(f"{where}: takes one value, not a list")
            if not value:
                raise ConfigError(f"{where}: an empty list makes the grid empty; give at least one value")
            vals = [p.check(v, f"{where}[{i}]") for i, v in enumerate(value)]
            if len(set(map(repr, vals))) != len(vals):
                raise ConfigError(f"{where}: lists a value twice")
            grid[key] = vals
        else:
            grid[key] = [p.check(value, where)]
    return SweepSpec(kind, grid, tuple(grid_doc), name, retries,
                     {t: doc[t] for t in kind.extra_tables if t in doc},
                     Path(base) if base is not None else Path.cwd(), source, raw)


def load_sweep_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and parse a sweep spec file; relative paths in it start from its folder."""
    p = Path(path)
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            raise FileFormatError(f"{p}: not a regular file (a sweep spec is a TOML file)")
        if st.st_size > (16 << 20):
            raise FileFormatError(f"{p}: {st.st_size} bytes; a sweep spec is at most 16 MiB")
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(f"{p}: sweep spec not found") from None
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return parse_sweep_spec(data, source=str(p), base=p.resolve().parent)


# --------------------------------------------------------------------------------------------------
# the output directory
# --------------------------------------------------------------------------------------------------


def _pa() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ModelNotInstalledError(f"intsim sweep needs pyarrow: {_INSTALL}") from None
    return pa, pq


def _part_bytes(key: str, row: dict[str, Any], result: PointResult) -> bytes:
    pa, pq = _pa()
    names = sorted(result.blobs)
    table = pa.table({"key": [key], "row": [json.dumps(row)],  # figures in the kind's order
                      "blob_names": pa.array([names], pa.list_(pa.string())),
                      "blobs": pa.array([[result.blobs[n] for n in names]], pa.list_(pa.binary()))},
                     metadata={_PART_META: key.encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _read_part(path: Path) -> tuple[dict[str, Any], PointResult] | None:
    """A part's (row, result), or None if ``path`` is not an intact part of the key it is named after."""
    pa, pq = _pa()
    key = path.name.split(".", 1)[0]
    try:
        t = pq.read_table(path)
        if (t.schema.metadata or {}).get(_PART_META) != key.encode() or t.num_rows != 1:
            return None
        d = t.to_pylist()[0]
        row = json.loads(d["row"])
        return row, PointResult(row["figures"], dict(zip(d["blob_names"], d["blobs"], strict=True)))
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def _record(root: Path) -> dict[str, Any]:
    try:
        doc = json.loads((root / RECORD).read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("format") == _RECORD_FORMAT else {}


def _foreign(root: Path) -> str | None:
    """The first entry of a sweep directory intsim did not write (described), or None."""
    from ..golden.suite import suite_listing

    rec = _record(root)
    known = {rel: meta for key in ("pending", "files") for rel, meta in (rec.get(key) or {}).items()
             if isinstance(meta, dict)}
    pending = rec.get("pending") or {}
    suite = suite_listing(root / SUITE) if (root / SUITE).is_dir() else None
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        if rel_dir == "." and any(d.startswith(f".{SUITE}.intsim-") for d in dirnames):
            dirnames[:] = [d for d in dirnames if not d.startswith(f".{SUITE}.intsim-")]  # fileio's leftovers
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(base / d)):
            p = base / name
            rel = p.relative_to(root).as_posix()
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                return f"{rel!r} is not a regular file"
            if rel == RECORD and rec:
                continue
            if rel_dir == PARTS and (_PART_TMP_RE.fullmatch(name) or (_PART_RE.fullmatch(name) and _read_part(p))):
                continue
            if rel_dir == "." and name.startswith(".") and name.endswith(".tmp") and \
                    name[1:].split(".", 1)[0] in {"sweep", "results", "timings", "README"}:
                continue  # a temporary file of atomic_write_bytes, left by a killed run
            if rel.startswith(f"{SUITE}/") and suite is not None:
                meta = suite.get(rel[len(SUITE) + 1:])
                if meta is not None and meta[0] == st.st_size and sha256_file(p) == meta[1]:
                    continue
            ok = False
            for cand in (known.get(rel), pending.get(rel)):
                if isinstance(cand, dict) and cand.get("bytes") == st.st_size and sha256_file(p) == cand.get("sha256"):
                    ok = True
                    break
            if not ok:
                return f"{rel!r} was not written by intsim" if rel not in known else \
                    f"{rel!r} was modified after intsim wrote it"
    return None


def _remove_owned(root: Path) -> None:
    """Remove everything of a sweep directory that :func:`_foreign` accepts (called after it)."""
    from ..golden.suite import suite_listing

    suite = root / SUITE
    if suite.is_dir():
        listing = suite_listing(suite) or {}
        for rel in listing:
            with contextlib.suppress(FileNotFoundError):
                (suite / rel).unlink()
        for dirpath, _, _ in sorted(os.walk(suite), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    for p in sorted(root.glob(f".{SUITE}.intsim-*")):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    for p in sorted((root / PARTS).glob("*")) if (root / PARTS).is_dir() else []:
        p.unlink()
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name != RECORD:
            p.unlink()
    with contextlib.suppress(FileNotFoundError):
        (root / RECORD).unlink()


def _check_target(out: Path) -> None:
    """The checks every output directory gets (:func:`intsim.core.fileio.check_output_target`): not the
    current directory or a parent of it, not a symbolic link, a directory if it exists."""
    real, cwd = Path(os.path.realpath(out)), Path(os.path.realpath(Path.cwd()))
    if real == cwd or real in cwd.parents or out.parent == out:
        raise ConfigError(f"--out {out}: refusing to write the current directory or one of its parents; "
                          "choose a new directory")
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"--out {out}: is a symbolic link; intsim does not replace links, give the directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--out {out}: exists and is not a directory")


@contextlib.contextmanager
def _sweep_dir(out: Path, force: bool) -> Iterator[Path]:
    """Check ``out`` (absent, empty, an intsim sweep directory, or with ``force`` the output of another
    intsim command, which is removed file by file), create it and hold a lock on it for the run
    (on its ``parts`` folder); yields its absolute path."""
    out = Path(os.path.abspath(out))
    _check_target(out)
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).exists() and not (out / PARTS).is_dir():
        if owned_listing(out) is None:
            raise ConfigError(f"--out {out}: holds files intsim did not write (it is not a sweep directory); "
                              "choose a new directory")
        if not force:
            raise ConfigError(f"--out {out}: holds the output of another intsim command; pass --force to "
                              "replace it, or choose another directory")
        listing = check_output_target(out, force=True) or {}  # every file is intsim's and unchanged
        for rel in sorted(listing, key=lambda r: r == OUTPUT_RECORD):
            with contextlib.suppress(FileNotFoundError):
                (out / rel).unlink()
        for dirpath, _, _ in sorted(os.walk(out), key=lambda w: -len(w[0])):
            if Path(dirpath) != out:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    fd = os.open(out / PARTS, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except BlockingIOError:
            raise ConfigError(f"--out {out}: another intsim sweep is writing it; wait for it to finish or "
                              "choose another output directory") from None
        problem = _foreign(out)
        if problem is not None:
            raise ConfigError(f"--out {out}: {problem}; intsim sweep writes only into a new directory or one it "
                              "wrote. Move your files or choose another output directory")
        if force:
            _remove_owned(out)
            (out / PARTS).mkdir(exist_ok=True)
        for p in (out / PARTS).iterdir():  # temporary files of parts a killed run was writing
            if _PART_TMP_RE.fullmatch(p.name):
                p.unlink()
        yield out
    finally:
        os.close(fd)


def _write_record(out: Path, files: Mapping[str, bytes], spec: SweepSpec, stage: str) -> None:
    """``sweep.json``, the record of the files intsim wrote in ``out`` (besides the parts, which carry
    their own key, and the golden suite, which has its manifest). With ``stage="pending"`` the files
    about to be written are listed as pending next to their current versions, so that a run killed
    while writing them leaves a directory the next run still recognizes; ``"done"`` lists them."""
    rec = _record(out)
    old = {k: v for k, v in (rec.get("files") or {}).items() if (out / k).exists()}
    new = {k: {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in files.items()}
    doc = {"format": _RECORD_FORMAT, "format_version": 1, "generator": {"name": "intsim", "version": __version__},
           "kind": spec.kind.name, "spec": spec.text.decode("utf-8", "replace"),
           "files": {**old, **new} if stage == "done" else old,
           "pending": new if stage == "pending" else {}}
    atomic_write_bytes(out / RECORD, (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode())


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------


def _run_point(kind: str, params: dict[str, Any], shared: dict[str, Any]) -> tuple[PointResult, float]:
    """The task of one point, run on a worker: (its result, its compute time in seconds)."""
    t0 = time.perf_counter()
    result = KINDS[kind].compute(params, shared)
    return result, time.perf_counter() - t0


class _Progress:
    """A progress bar with an estimate of the time left (from the rate since the first finished point)
    on stderr, redrawn in place on a terminal, else one line at most every 2 s; nothing when quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.done = total, quiet, 0
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = -1.0
        self.t_first: float | None = None

    def step(self) -> None:
        self.done += 1
        if self.t_first is None:  # the rate counts from the first finished point: start-up is not work
            self.t_first = time.monotonic()
        if self.quiet or self.total == 0:
            return
        now = time.monotonic()
        final = self.done == self.total
        if not final and (now - self.last < (0.2 if self.tty else 2.0)):
            return
        self.last = now
        elapsed = now - self.t0
        rate = (now - self.t_first) / (self.done - 1) if self.done > 1 else None
        left = "?" if rate is None else _hms(rate * (self.total - self.done))
        width = 30
        fill = int(width * self.done / self.total)
        text = (f"[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} points, "
                f"{_hms(elapsed)} elapsed, ~{left} left")
        if self.tty:
            print("\r" + text, end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ModelNotInstalledError(f"intsim sweep needs dask.distributed: {_INSTALL}") from None
    import logging

    if scheduler is not None:
        if workers is not None:
            raise ConfigError("--workers applies to the local cluster; with --scheduler the cluster's workers run")
        kw = {"scheduler_file": scheduler} if os.path.isfile(scheduler) else {"address": scheduler}
        try:
            client = Client(timeout="20s", **kw)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler ({exc})") from None
        with client:
            yield client
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ConfigError(f"--workers must be at least 1, got {n}")
    # one thread per worker process, and numba's thread pool of the same size, so that N workers use N cores
    import dask

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "NUMBA_NUM_THREADS": "1"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


@dataclass(frozen=True)
class SweepReport:
    """What :func:`run_sweep` did: the directory, the points, how many were computed in this run
    and how many reused from earlier runs, the files written and the wall time (seconds)."""

    out: Path
    points: int
    computed: int
    reused: int
    files: tuple[str, ...]
    seconds: float


def run_sweep(spec: SweepSpec | str | os.PathLike, out: str | os.PathLike, *, scheduler: str | None = None,
              workers: int | None = None, force: bool = False, quiet: bool = False, plots: bool = True,
              client: Any = None) -> SweepReport:
    """Run a sweep (see the module docs) into ``out``; ``client``: an existing ``distributed.Client``
    to use instead of starting one (then ``scheduler`` and ``workers`` are ignored)."""
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        spec = load_sweep_spec(spec)
    plan = spec.plan()
    kind = spec.kind.name
    keys = [point_key(kind, p, plan.identity) for p in plan.points]
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    with _sweep_dir(Path(out), force) as root:
        parts = root / PARTS
        done: dict[str, tuple[dict[str, Any], PointResult]] = {}
        for key in dict.fromkeys(keys):
            p = parts / f"{key}.parquet"
            if p.exists():
                got = _read_part(p)
                if got is not None:
                    done[key] = got
        todo = {k: plan.points[i] for i, k in enumerate(keys) if k not in done}
        reused = len(set(keys)) - len(todo)
        say(f"intsim sweep: {kind}, {len(plan.points)} points ({reused} done earlier, {len(todo)} to compute)")
        timings: dict[str, float] = {}
        if todo:
            ctx = contextlib.nullcontext(client) if client is not None else _client(scheduler, workers)
            with ctx as cl:
                _compute(cl, kind, plan, todo, spec.retries, parts, done, timings, quiet, say)
        rows = []
        for i, (key, params) in enumerate(zip(keys, plan.points, strict=True)):
            rows.append({"point": i, **params, **done[key][1].figures, "intsim_version": __version__, "key": key})
        results = [done[k][1] for k in keys]
        files = _finish(root, spec, plan, rows, results, keys, timings, plots, say)
    return SweepReport(root, len(plan.points), len(todo), reused, tuple(files), time.perf_counter() - t_start)


def _compute(client: Any, kind: str, plan: Plan, todo: dict[str, dict[str, Any]], retries: int, parts: Path,
             done: dict[str, tuple[dict[str, Any], PointResult]], timings: dict[str, float], quiet: bool,
             say: Callable[[str], None]) -> None:
    from distributed import as_completed

    info = client.scheduler_info()
    say(f"intsim sweep: {len(info.get('workers', {}))} Dask worker(s) at {info.get('address', '?')}")
    (shared,) = client.scatter([plan.shared], hash=True)
    futures = {client.submit(_run_point, kind, params, shared, key=f"intsim-sweep-{key}", retries=retries,
                             pure=False): (key, params) for key, params in todo.items()}
    bar = _Progress(len(futures), quiet)
    failed: list[str] = []
    try:
        for fut in as_completed(futures):
            key, params = futures[fut]
            if fut.status != "finished":
                exc = fut.exception()
                failed.append(f"{json.dumps(params, sort_keys=True)}: {type(exc).__name__}: {exc}")
                bar.step()
                continue
            result, seconds = fut.result()
            row = {"params": params, "figures": result.figures, "seconds": seconds}
            atomic_write_bytes(parts / f"{key}.parquet", _part_bytes(key, row, result))
            done[key] = (row, result)
            timings[key] = seconds
            fut.release()
            bar.step()
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(futures)} point(s) failed (the others are saved; rerun to retry "
                          f"them); first: {failed[0]}")


class SweepFailed(IntsimError):
    """Points whose task raised (after Dask's retries); the finished points are kept."""


def _finish(root: Path, spec: SweepSpec, plan: Plan, rows: list[dict[str, Any]], results: list[PointResult],
            keys: list[str], timings: dict[str, float], plots: bool, say: Callable[[str], None]) -> list[str]:
    pa, pq = _pa()
    files: dict[str, bytes] = {}
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    files[RESULTS] = buf.getvalue()
    t = pa.table({"point": list(range(len(keys))), "key": keys,
                  "compute_seconds": [timings.get(k) for k in keys],
                  "computed_in_this_run": [k in timings for k in keys]})
    buf = io.BytesIO()
    pq.write_table(t, buf)
    files[TIMINGS] = buf.getvalue()
    pngs: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="intsim-sweep-plots-") as d:
        if plots:
            pngs = spec.kind.plots(rows, plan, Path(d))
            for name, _ in pngs:
                files[name] = (Path(d) / name).read_bytes()
    files[SUMMARY] = _markdown(spec, plan, rows, pngs).encode("utf-8")
    _write_record(root, files, spec, "pending")
    for name, data in files.items():
        atomic_write_bytes(root / name, data)
    rec = _record(root)
    for stale in [k for k in (rec.get("files") or {}) if k.endswith(".png") and k not in files]:
        with contextlib.suppress(FileNotFoundError):
            (root / stale).unlink()
    extra = spec.kind.finish(root, plan, results, say)
    _write_record(root, files, spec, "done")
    return sorted([*files, RECORD, *extra])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v).replace("|", "\\|")


def _markdown(spec: SweepSpec, plan: Plan, rows: list[dict[str, Any]], pngs: list[tuple[str, str]]) -> str:
    kind = spec.kind
    params = [k for k in rows[0] if k in {p.name for p in kind.params}]
    fixed = [k for k in params if k not in plan.axes]
    figures = [k for k in rows[0] if k not in params and k not in ("point", "intsim_version", "key")]
    title = spec.name or f"{kind.name} sweep"
    lines = [f"# {title}", "",
             f"`intsim sweep` of kind `{kind.name}` ({kind.summary}), intsim {__version__}: {len(rows)} points, "
             f"one row each in `{RESULTS}` (columns `point`, the parameters, the figures, `intsim_version`, `key`). "
             "Deterministic: the same spec gives the same rows on any number of workers; compute times are in "
             f"`{TIMINGS}` only.", ""]
    if plan.axes:
        lines += ["Axes (the first varies slowest): " + "; ".join(
            f"`{a}` = {', '.join(_fmt(v) for v in dict.fromkeys(r[a] for r in rows))}" for a in plan.axes) + ".", ""]
    if fixed:
        lines += ["Fixed: " + ", ".join(f"`{k}` = {_fmt(rows[0][k])}" for k in fixed) + ".", ""]
    for name, caption in pngs:
        lines += [f"![{caption}]({name})", ""]
    shown = rows[:200]
    cols = ["point", *plan.axes, *figures]
    lines += ["## Results" + (f" (the first {len(shown)} of {len(rows)} points)" if len(shown) < len(rows) else ""),
              "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in shown]
    lines += ["", "## Spec", "", "```toml", spec.text.decode("utf-8", "replace").rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim sweep``."""
    parser.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (TOML)")
    add_output_options(parser, out_required=True, what="sweep directory", plots=True, force=False,
                       out_help="the sweep directory: results.parquet, README.md, parts/ (a rerun resumes it)")
    parser.add_argument("--force", action="store_true",
                        help="discard the finished points of --out and compute every point again (or replace "
                             "another intsim output there)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="an existing Dask scheduler (tcp://host:port or a scheduler file) instead of a local "
                             "cluster")
    parser.add_argument("--workers", type=int, metavar="N", default=None,
                        help="worker processes of the local cluster (default: one per CPU)")


def run(args: argparse.Namespace) -> int:
    """``intsim sweep``: returns 0, or 1 when points failed (the others are kept); bad input raises
    an intsim error (exit status 2)."""
    try:
        rep = run_sweep(args.spec, args.out, scheduler=args.scheduler, workers=args.workers, force=args.force,
                        quiet=args.quiet, plots=not args.no_plots)
    except SweepFailed as exc:
        print(f"intsim: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {rep.out / RESULTS}: {rep.points} points ({rep.computed} computed, {rep.reused} reused) "
          f"in {rep.seconds:.1f} s", flush=True)
    return 0
