"""Workloads to cost: a single GEMM (synthetic or of your .npy files), a MiniLM encoder layer, the whole MiniLM.

A :class:`Workload` is a sequence of *sites*, the operations of a model in
execution order, with the real float64 data where a method's counts depend on
values (IM-Unpack, LLM.int8(), data-dependent integer operators):

* :class:`GemmSite`: one GEMM of the model (``q_proj``...), possibly made of
  several parts (the per-sentence, per-head ``scores`` and ``attn_v`` GEMMs);
* :class:`VectorSite`: an operation on the vector unit: ``softmax`` (rows of
  attention scores, already scaled by 1/sqrt(head_dim)), ``gelu``,
  ``layernorm``, ``residual`` (an elementwise add of the skip connection).

A method (:mod:`intsim.cost.methods`) turns each site into costed steps.

MiniLM (all-MiniLM-L6-v2; hidden 384, 12 heads of 32, FFN 1536, 6 layers), per
encoder layer, for a batch of sentences with T_s real tokens each and
N = sum T_s tokens (token-wise work runs on real tokens only, attention per
sentence and head over its T_s tokens, exactly as :mod:`reference.minilm`)::

    q_proj, k_proj, v_proj   N x 384 x 384 each (weights, bias)
    scores                   T_s x 32 x T_s per sentence and head
    softmax                  12 * T_s rows of T_s per sentence
    attn_v                   T_s x T_s x 32 per sentence and head
    o_proj                   N x 384 x 384; residual (N x 384); layernorm (N rows of 384)
    ffn_up                   N x 384 x 1536; gelu (N x 1536)
    ffn_down                 N x 1536 x 384; residual (N x 384); layernorm (N rows of 384)

Not included: the embedding lookup and its LayerNorm, pooling and normalization.

**Your own model** (``onnx:MODEL.onnx,FEEDS.npz``, :func:`onnx_workload`): every integer GEMM
of a quantized ONNX model run on your feeds, its operands those of the run (treated as ``npy:``
operands are, below).

**Your own GEMM** (``npy:A.npy,B.npy``, :func:`npy_workload`): one GEMM ``A @ B`` of two 2-D
``.npy`` files (A is M x K, B is K x N, a weight as in ``gemm:MxKxN``), read as every user file
is (:func:`intsim.core.npyfile.read_gemm_npy`: regular files only, no pickles, size caps, a
truncated file refused, shapes checked). Integer and float files are accepted (float values
must be finite; integers beyond 2**53 in magnitude, which float64 would round, are refused);
the values are the operands every method sees, as the real activations and weights of the
MiniLM workloads are: fp32/fp16 use them as they are, int8 and IM-Unpack quantize them per
tensor to int8 (``round(x * 127 / max|x|)``) and unpack those integers, LLM.int8() applies its
own vector-wise scheme. So an int8 file whose largest magnitude is 127 reaches the integer
methods unchanged, while wider integers are requantized to int8 first (the unpack ratios of
your integers as they are: ``intsim report unpack --npy A.npy B.npy``). The workload's
description names both files with their SHA-256.

>>> w = gemm_workload(2, 3, 4)
>>> [(s.op, s.macs) for s in w.sites]
[('gemm', 24)]
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError

__all__ = [
    "GemmPart",
    "GemmSite",
    "VectorSite",
    "Workload",
    "gemm_workload",
    "minilm_workload",
    "minilm_layer_workload",
    "minilm_gemm_workload",
    "npy_workload",
    "onnx_workload",
    "parse_workload",
    "WORKLOAD_SPECS",
]

Progress = Callable[[str], None]

#: Workload specifications understood by :func:`parse_workload` (and the CLI).
WORKLOAD_SPECS: dict[str, str] = {
    "gemm:MxKxN": "one synthetic GEMM (seeded standard-normal operands, B a weight)",
    "gemm:LAYER.NAME": "one real MiniLM GEMM, e.g. gemm:0.ffn_up (a linear layer of that encoder layer)",
    "layer[:L]": "MiniLM encoder layer L (default 0) on real weights and activations",
    "minilm": "the whole MiniLM encoder (6 layers) on real weights and activations",
    "npy:A.npy,B.npy": "one GEMM A @ B of your own 2-D .npy files (integer or float; A is M x K, B is K x N, "
                       "a weight; paths without commas)",
    "onnx:MODEL.onnx,FEEDS.npz": "every integer GEMM of a quantized ONNX model run on the feeds (as ONNX "
                                 "Runtime runs it: its default optimizations; paths without commas)",
}


@dataclass(frozen=True)
class GemmPart:
    """One GEMM ``(M x K) @ (K x N)``; ``a``/``b`` hold its real float64 operands or are None."""

    M: int
    K: int
    N: int
    a: np.ndarray | None = None
    b: np.ndarray | None = None


@dataclass(frozen=True)
class GemmSite:
    """A GEMM of the workload.

    Attributes: ``name`` (unique, e.g. ``"L0.q_proj"``), ``layer``, ``op`` (``q_proj``...),
    ``parts`` (one or more GEMMs), ``weight`` (B is a weight: read from DRAM), ``bias``
    (a bias vector of N is loaded into the accumulators), ``a_unsigned`` (A holds
    probabilities: unsigned in integer methods), ``requant_in`` (integer methods first
    requantize the stored input, of that many bits, to the 8-bit GEMM input; None: the
    input is already 8-bit), ``requant_out`` (integer methods requantize the output to
    that many bits; None: the accumulator output is consumed as is), ``out_scale`` (float
    methods multiply every output by it; None: no scaling).
    """

    name: str
    layer: int | None
    op: str
    parts: tuple[GemmPart, ...]
    weight: bool = True
    bias: bool = False
    a_unsigned: bool = False
    requant_in: int | None = None
    requant_out: int | None = None
    out_scale: float | None = None

    @property
    def macs(self) -> int:
        return sum(p.M * p.K * p.N for p in self.parts)

    @property
    def outputs(self) -> int:
        return sum(p.M * p.N for p in self.parts)

    @property
    def has_data(self) -> bool:
        return all(p.a is not None and p.b is not None for p in self.parts)


@dataclass(frozen=True)
class VectorSite:
    """A vector-unit operation of the workload.

    Attributes: ``name``, ``layer``, ``op`` (``softmax``, ``gelu``, ``layernorm``,
    ``residual``), ``parts`` (``(rows, cols)`` blocks: softmax and layernorm act on rows
    of ``cols``, gelu and residual elementwise), ``data`` (float64 input per part, rows x
    cols, or None), ``params`` (weight elements read: LayerNorm gamma and beta),
    ``int_outputs`` (integer methods requantize the output to each of these widths, one
    requantization per consumer), ``eps``.
    """

    name: str
    layer: int | None
    op: str
    parts: tuple[tuple[int, int], ...]
    data: tuple[np.ndarray, ...] | None = None
    params: int = 0
    int_outputs: tuple[int, ...] = ()
    eps: float = 1e-12

    @property
    def elements(self) -> int:
        return sum(r * c for r, c in self.parts)

    @property
    def rows(self) -> int:
        return sum(r for r, _ in self.parts)


@dataclass(frozen=True)
class Workload:
    """A named sequence of sites; ``sentences``/``tokens`` describe a MiniLM batch (else None)."""

    name: str
    description: str
    sites: tuple[GemmSite | VectorSite, ...]
    sentences: int | None = None
    tokens: int | None = None

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted({s.layer for s in self.sites if s.layer is not None}))

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.sites if isinstance(s, GemmSite))


def gemm_workload(M: int, K: int, N: int, *, seed: int = 0, data: bool = True) -> Workload:
    """A single GEMM ``(M x K) @ (K x N)``; B is a weight. With ``data``, operands are
    seeded standard-normal float64 (``numpy.random.default_rng(seed)``, A then B)."""
    for name, v in (("M", M), ("K", K), ("N", N)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"GEMM dimension {name} must be a positive integer, got {v!r}")
    a = b = None
    if data:
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((M, K))
        b = rng.standard_normal((K, N))
    site = GemmSite(f"gemm {M}x{K}x{N}", None, "gemm", (GemmPart(M, K, N, a, b),), weight=True)
    return Workload(f"gemm-{M}x{K}x{N}", f"one GEMM {M}x{K}x{N} (standard-normal operands, seed {seed})", (site,))


def npy_workload(a: str | os.PathLike, b: str | os.PathLike) -> Workload:
    """One GEMM ``A @ B`` of your own ``.npy`` files (see the module docs); B is a weight.

    Errors: :class:`~intsim.core.errors.FileFormatError` (a missing, non-regular, truncated or
    corrupted file, an object dtype), :class:`~intsim.core.errors.DTypeError` (bool or complex
    values), :class:`~intsim.core.errors.ShapeError` (not 2-D, an empty dimension, inner
    dimensions that differ), :class:`~intsim.core.errors.OperandRangeError` (NaN or Inf,
    integers beyond 2**53); each names the file.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "A.npy"), np.arange(6, dtype=np.int8).reshape(2, 3))
    >>> np.save(os.path.join(d, "B.npy"), np.ones((3, 4)))
    >>> w = npy_workload(os.path.join(d, "A.npy"), os.path.join(d, "B.npy"))
    >>> w.name, w.macs, w.sites[0].parts[0].a.dtype.name
    ('npy-2x3x4', 24, 'float64')
    """
    from ..core.npyfile import read_gemm_npy
    from ..quant.quantizers import as_real_array

    ra, rb = read_gemm_npy(a, b, kinds="iuf")
    fa, fb = as_real_array(ra.array, ra.path), as_real_array(rb.array, rb.path)
    (M, K), N = fa.shape, fb.shape[1]
    site = GemmSite(f"gemm {M}x{K}x{N}", None, "gemm", (GemmPart(M, K, N, fa, fb),), weight=True)
    return Workload(f"npy-{M}x{K}x{N}", f"one GEMM {M}x{K}x{N} of your files: A = {ra.describe()}, "
                    f"B = {rb.describe()}", (site,))


#: the input index of B in each integer GEMM operator of :mod:`intsim.onnx`
_ONNX_B_INPUT = {"MatMulInteger": 1, "QLinearMatMul": 3, "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1,
                 "QGemm": 3}


def onnx_workload(model: str | os.PathLike, feeds: str | os.PathLike) -> Workload:
    """Every integer GEMM of the quantized ONNX model at ``model`` run on the feeds in ``feeds``
    (an ``.npz`` of graph input name -> array), as ONNX Runtime runs it (the graph its default
    optimizations produce; :func:`intsim.onnx.run_model` with its kernel trace): one site per
    GEMM node, one part per 2-D product (a GEMM by a constant initializer is one product, that
    B a weight), its operands the zero-point-free integers of the run (as float64 values: the
    methods treat them as they treat ``npy:`` operands, see the module docs).
    ConfigError when the model runs no integer GEMM; the model's and the feeds' errors as
    ``intsim onnx check`` reports them."""
    from ..onnx import load_feeds, run_model
    from ..onnx.whatif import optimized_model

    m = optimized_model(model)
    res = run_model(m, load_feeds(feeds), keep=False, trace=True)
    constants = {t.name for t in m.graph.initializer} - {i.name for i in m.graph.input}
    nodes = {n.name: n for n in m.graph.node}
    parts: dict[tuple[str, str], list[GemmPart]] = {}
    for t in res.trace:
        if t.kind == "matmul":
            A, B = t.arrays["A"], t.arrays["B"]
            parts.setdefault((t.node, t.op_type), []).append(
                GemmPart(A.shape[0], A.shape[1], B.shape[1], A.astype(np.float64), B.astype(np.float64)))
    if not parts:
        raise ConfigError(f"{model}: the model runs no integer GEMM; nothing to cost")
    sites = []
    for (node, op), ps in parts.items():
        n = nodes.get(node)
        bi = _ONNX_B_INPUT.get(op, 1)
        weight = n is not None and len(n.input) > bi and n.input[bi] in constants
        sites.append(GemmSite(f"{node} ({op})", None, op, tuple(ps), weight=weight))
    return Workload(f"onnx-{Path(model).stem}", f"the {len(sites)} integer GEMM nodes of {Path(model).name} on "
                    f"the feeds of {Path(feeds).name} (ONNX Runtime's optimized graph)", tuple(sites))


# ---------------------------------------------------------------------------------------------
# MiniLM
# ---------------------------------------------------------------------------------------------


def _default_sentences(sentences: Sequence[str] | None) -> list[str]:
    if sentences is None:
        from intsim_reference.sentences import SENTENCES

        return list(SENTENCES)
    out = list(sentences)
    if not out:
        raise ConfigError("the MiniLM workload needs at least one sentence")
    return out


#: Integer pipeline widths of the MiniLM workloads (those of :mod:`intsim.models.minilm`'s ``w8a8``):
#: GEMM inputs, the residual stream (also the LayerNorm input) and the GELU input, in bits.
ACT_BITS, RESIDUAL_BITS, GELU_BITS = 8, 16, 16


def _part(g) -> GemmPart:
    return GemmPart(g.a.shape[0], g.a.shape[1], g.b.shape[1], g.a, g.b)


def _linear(li: int, g, name: str, requant_out: int | None, requant_in: int | None = None) -> GemmSite:
    return GemmSite(f"L{li}.{name}", li, name, (_part(g),), weight=True, bias=True, requant_in=requant_in,
                    requant_out=requant_out)


@functools.lru_cache(maxsize=1)
def _capture(sentences: tuple[str, ...], max_len: int) -> tuple:
    """The real GEMM operands of the float64 reference (the last batch is kept: layer
    workloads of the same sentences share one forward pass)."""
    from intsim_reference.minilm import capture_gemm_operands

    return tuple(capture_gemm_operands(list(sentences), max_len=max_len))


def _minilm_sites(sentences: Sequence[str], max_len: int, layers: Sequence[int] | None,
                  progress: Progress | None) -> tuple[list[GemmSite | VectorSite], int]:
    from intsim_reference.minilm import default_model

    if progress:
        progress(f"running the float64 MiniLM reference on {len(sentences)} sentences")
    captured = _capture(tuple(sentences), max_len)
    model = default_model()
    cfg = model.config
    hd = cfg.head_dim
    n_layers = cfg.num_hidden_layers
    want = list(range(n_layers)) if layers is None else list(layers)
    for li in want:
        if not 0 <= li < n_layers:
            raise ConfigError(f"MiniLM has layers 0 to {n_layers - 1}, got {li}")
    by: dict[tuple[int, str], list] = {}
    for g in captured:
        by.setdefault((g.layer, g.name), []).append(g)
    sites: list[GemmSite | VectorSite] = []
    tokens = 0
    scale = 1.0 / math.sqrt(hd)
    for li in want:
        lw = model.layers[li]
        lin = {name: by[(li, name)][0] for name in ("q_proj", "k_proj", "v_proj", "o_proj", "ffn_up", "ffn_down")}
        x = lin["q_proj"].a
        tokens = x.shape[0]

        sites += [_linear(li, lin["q_proj"], "q_proj", ACT_BITS, requant_in=RESIDUAL_BITS),
                  _linear(li, lin["k_proj"], "k_proj", ACT_BITS), _linear(li, lin["v_proj"], "v_proj", ACT_BITS)]
        sc = by[(li, "scores")]
        sites.append(GemmSite(f"L{li}.scores", li, "scores", tuple(_part(g) for g in sc), weight=False,
                              out_scale=scale))
        # softmax input per sentence: the heads' scaled scores stacked, (heads * T_s) x T_s
        per_sentence: dict[int, list[np.ndarray]] = {}
        for g in sc:
            per_sentence.setdefault(g.sentence, []).append((g.a @ g.b) * scale)
        soft = tuple(np.vstack(v) for _, v in sorted(per_sentence.items()))
        sites.append(VectorSite(f"L{li}.softmax", li, "softmax", tuple(s.shape for s in soft), soft))
        sites.append(GemmSite(f"L{li}.attn_v", li, "attn_v", tuple(_part(g) for g in by[(li, "attn_v")]),
                              weight=False, a_unsigned=True, requant_out=ACT_BITS))
        sites.append(_linear(li, lin["o_proj"], "o_proj", None))
        attn = lin["o_proj"].a @ lin["o_proj"].b + lw.bo
        sites.append(VectorSite(f"L{li}.residual1", li, "residual", (attn.shape,), (attn,)))
        sites.append(VectorSite(f"L{li}.ln1", li, "layernorm", ((attn + x).shape,), (attn + x,),
                                params=2 * cfg.hidden_size, int_outputs=(ACT_BITS, RESIDUAL_BITS),
                                eps=cfg.layer_norm_eps))
        sites.append(_linear(li, lin["ffn_up"], "ffn_up", GELU_BITS))
        up = lin["ffn_up"].a @ lin["ffn_up"].b + lw.bi
        sites.append(VectorSite(f"L{li}.gelu", li, "gelu", (up.shape,), (up,), int_outputs=(ACT_BITS,)))
        sites.append(_linear(li, lin["ffn_down"], "ffn_down", None))
        x1 = lin["ffn_up"].a
        down = lin["ffn_down"].a @ lin["ffn_down"].b + lw.bd
        sites.append(VectorSite(f"L{li}.residual2", li, "residual", (down.shape,), (down,)))
        sites.append(VectorSite(f"L{li}.ln2", li, "layernorm", ((down + x1).shape,), (down + x1,),
                                params=2 * cfg.hidden_size, int_outputs=(RESIDUAL_BITS,), eps=cfg.layer_norm_eps))
    return sites, tokens


def minilm_workload(sentences: Sequence[str] | None = None, *, max_len: int = 64,
                    progress: Progress | None = None) -> Workload:
    """The whole MiniLM encoder (6 layers) on ``sentences`` (default: all of
    :data:`intsim_reference.sentences.SENTENCES`), from the real weights and activations.

    Needs the installed model (:class:`~intsim.core.errors.ModelNotInstalledError` otherwise).
    """
    sents = _default_sentences(sentences)
    sites, tokens = _minilm_sites(sents, max_len, None, progress)
    return Workload("minilm", f"all-MiniLM-L6-v2, 6 encoder layers, {len(sents)} sentences, {tokens} tokens",
                    tuple(sites), len(sents), tokens)


def minilm_layer_workload(layer: int = 0, sentences: Sequence[str] | None = None, *, max_len: int = 64,
                          progress: Progress | None = None) -> Workload:
    """One MiniLM encoder layer (default layer 0) on real weights and activations."""
    sents = _default_sentences(sentences)
    sites, tokens = _minilm_sites(sents, max_len, [layer], progress)
    return Workload(f"minilm-layer{layer}", f"all-MiniLM-L6-v2 encoder layer {layer}, {len(sents)} sentences, "
                    f"{tokens} tokens", tuple(sites), len(sents), tokens)


def minilm_gemm_workload(layer: int = 0, name: str = "ffn_up", sentences: Sequence[str] | None = None, *,
                         max_len: int = 64, progress: Progress | None = None) -> Workload:
    """One real MiniLM GEMM (a linear layer ``name`` of encoder ``layer``) on real operands."""
    linear = ("q_proj", "k_proj", "v_proj", "o_proj", "ffn_up", "ffn_down")
    if name not in linear:
        raise ConfigError(f"unknown MiniLM linear GEMM {name!r}; valid: {', '.join(linear)}")
    w = minilm_layer_workload(layer, sentences, max_len=max_len, progress=progress)
    site = next(s for s in w.sites if s.op == name)
    site = GemmSite(site.name, site.layer, site.op, site.parts, weight=True, bias=site.bias)
    return Workload(f"minilm-L{layer}.{name}", f"all-MiniLM-L6-v2 layer {layer} {name} "
                    f"({site.parts[0].M}x{site.parts[0].K}x{site.parts[0].N}), {w.sentences} sentences",
                    (site,), w.sentences, w.tokens)


def parse_workload(spec: str, *, sentences: Sequence[str] | None = None, max_len: int = 64, seed: int = 0,
                   progress: Progress | None = None) -> Workload:
    """Build a workload from a specification (:data:`WORKLOAD_SPECS`).

    >>> parse_workload("gemm:2x3x4").name
    'gemm-2x3x4'
    """
    s = spec.strip()
    if s.startswith("gemm:"):
        arg = s[5:]
        dims = arg.lower().split("x")
        if len(dims) == 3 and all(d.isdigit() for d in dims):
            return gemm_workload(*(int(d) for d in dims), seed=seed)
        if "." in arg and arg.split(".", 1)[0].isdigit():
            li, name = arg.split(".", 1)
            return minilm_gemm_workload(int(li), name, sentences, max_len=max_len, progress=progress)
    elif s == "layer" or s.startswith("layer:"):
        arg = s[6:] if s.startswith("layer:") else "0"
        if arg.isdigit():
            return minilm_layer_workload(int(arg), sentences, max_len=max_len, progress=progress)
    elif s == "minilm":
        return minilm_workload(sentences, max_len=max_len, progress=progress)
    elif s.startswith("npy:"):
        files = s[4:].split(",")
        if len(files) == 2 and all(f.strip() for f in files):
            if progress:
                progress(f"reading {files[0].strip()} and {files[1].strip()}")
            return npy_workload(files[0].strip(), files[1].strip())
        raise ConfigError(f"workload {spec!r}: npy: takes two .npy files separated by a comma, A (M x K) and "
                          "B (K x N), e.g. npy:A.npy,B.npy (paths without commas)")
    elif s.startswith("onnx:"):
        files = s[5:].split(",")
        if len(files) == 2 and all(f.strip() for f in files):
            if progress:
                progress(f"running {files[0].strip()} on {files[1].strip()}")
            return onnx_workload(files[0].strip(), files[1].strip())
        raise ConfigError(f"workload {spec!r}: onnx: takes a model and its feeds separated by a comma, e.g. "
                          "onnx:model.onnx,feeds.npz (paths without commas)")
    valid = "; ".join(f"{k} ({v})" for k, v in WORKLOAD_SPECS.items())
    raise ConfigError(f"unknown workload {spec!r}; valid: {valid}")
