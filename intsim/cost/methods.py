"""Methods: how each workload site is computed, as exact costed steps.

A :class:`Method` turns every site of a :class:`~intsim.cost.workloads.Workload`
into :class:`~intsim.cost.model.Step` records with exact counts:

``fp32`` / ``fp16``
    GEMMs as floating-point multiply-adds (``fmac``) at that format, the 1/sqrt(d)
    score scaling as one ``fmul`` per score, non-linear operators by the recipes of
    :mod:`intsim.cost.floatops`, residual adds as ``fadd``.
``int8``
    int8 x int8 GEMMs into ``acc_bits`` accumulators (counts by
    :func:`intsim.gemm_ops`; the attention probabilities are ``uint8``), biases
    preloaded into the accumulators, in the data flow of :mod:`intsim.models.minilm`
    (``w8a8``; see :func:`build_steps`); every requantization counted by
    :func:`intsim.quant.requant.requantize` (``dyadic`` mode, a 31-bit multiplier); non-linear
    operators by the method's non-linear family (below).
``unpack{b}-{strategy}``
    IM-Unpack (:mod:`intsim.hw.unpack`): the *same int8 operands* as ``int8`` (so the
    same results, bit for bit) unpacked to ``b``-bit digits with ``strategy`` on both
    operands and run on a ``b``-bit multiplier array, plus the shift-and-add
    reassembly (counts: :func:`unpack_gemm_counts`). The unpacked operands are built
    on chip: weights are read once from DRAM as int8, every low-bit operand read is
    an SRAM read; the digit extraction is not counted (intsim.hw.unpack does not count
    it). Everything else as ``int8``.
``llm.int8``
    LLM.int8() (threshold 6.0): the linear layers by :func:`intsim.quant.llmint8.llm_int8_matmul`
    (vector-wise int8 GEMM on the regular feature columns, the outlier columns on a
    16-bit integer path, as intsim emulates the paper's fp16 side-GEMM) plus the
    runtime quantization of the fp16 input; attention GEMMs, non-linear operators and
    residuals in fp16, as in an fp16 model whose Linear layers are replaced
    (bitsandbytes ``Linear8bitLt``).

**Memory placement** (compulsory traffic; the array mapping adds its re-reads,
see :mod:`intsim.cost.model`): weights, biases and LayerNorm parameters are read
from DRAM once; activations are read from and written to SRAM at their stored
widths (integer GEMM outputs at ``acc_bits``).

**Non-linear families** of the integer methods: ``fp32``/``fp16`` dequantize the
integer input (one ``fmul``), run the float recipe and quantize the result (``fmul`` +
3 ``fadd`` per output width), which replaces the requantization; an integer family
(``ibert``, ``ibert-corrected`` and whatever :data:`intsim.models.minilm.NONLINEAR`
provides) runs its integer operators on integer inputs derived from the real
activations, followed by the requantizations.

>>> from intsim.cost.workloads import gemm_workload
>>> steps = build_steps(gemm_workload(2, 3, 4, data=False), get_method("int8"))
>>> [(s.op, s.counts["mac", (8, 8, 32)]) for s in steps]
[('gemm', 24)]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError
from ..core.inttype import IntType
from ..core.opcounts import OpCounts
from ..hw.datapath import Datapath
from ..hw.gemm import gemm_ops
from . import floatops as fo
from .counts import CostCounts
from .model import GemmShape, Step, int_dtype
from .workloads import ACT_BITS, GELU_BITS, RESIDUAL_BITS, GemmSite, VectorSite, Workload

__all__ = [
    "Method",
    "METHOD_FAMILIES",
    "FLOAT_NONLINEAR",
    "DEFAULT_UNPACK_BITS",
    "get_method",
    "standard_methods",
    "nonlinear_families",
    "nonlinear_profiles",
    "unpack_strategies",
    "build_steps",
    "requant_counts",
    "unpack_gemm_counts",
    "quantize_int8",
]

METHOD_FAMILIES: tuple[str, ...] = ("float", "int8", "unpack", "llmint8")
FLOAT_NONLINEAR: tuple[str, ...] = ("fp32", "fp16")
#: LLM.int8() outlier threshold (the paper's and Hugging Face's default; bitsandbytes' own default 0.0
#: disables the decomposition)
LLM_INT8_THRESHOLD = 6.0
#: LayerNorm output register of the integer pipeline (|y| <= 2**30 plus the integer beta), as intsim.models.minilm
LN_OUT_BITS = 40
DEFAULT_UNPACK_BITS: tuple[int, ...] = (4, 2)
#: strategies left out by default at a width, with the reason (they can still be asked for)
SLOW_STRATEGIES: dict[tuple[int, str], str] = {
    (2, "plan"): "unpack 'plan' at 2 bits takes minutes per MiniLM linear GEMM (intsim.hw.unpack.unpack_stats)",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Method:
    """A way of computing a workload (see the module docs).

    Attributes: ``name``, ``family`` (``float``, ``int8``, ``unpack``, ``llmint8``),
    ``bits`` (float format bits, or the integer multiplier operand bits), ``strategy``
    (IM-Unpack strategy on both operands), ``nonlinear`` (non-linear family),
    ``description``.
    """

    name: str
    family: str
    bits: int
    strategy: str | None = None
    nonlinear: str = "fp32"
    description: str = ""

    def __post_init__(self) -> None:
        if self.family not in METHOD_FAMILIES:
            raise ConfigError(f"unknown method family {self.family!r}; valid: {', '.join(METHOD_FAMILIES)}")

    @property
    def is_integer(self) -> bool:
        return self.family in ("int8", "unpack")

    def pe_units(self, acc_bits: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Units of one processing element of the MAC array this method needs."""
        if self.family == "float":
            return (("fmul", (self.bits,)), ("fadd", (self.bits,)))
        if self.family == "llmint8":
            return (("mul", (8, 8)), ("add", (acc_bits,)), ("mul", (16, 16)), ("add", (64,)), ("fmul", (16,)),
                    ("fadd", (16,)))
        return (("mul", (self.bits, self.bits)), ("add", (acc_bits,)))

    def with_nonlinear(self, nonlinear: str) -> Method:
        """The same method with another non-linear family (integer methods only)."""
        if not self.is_integer:
            raise ConfigError(f"method {self.name} fixes its non-linear operators ({self.nonlinear})")
        return Method(self.name if nonlinear == self.nonlinear else f"{self.name}+{nonlinear}", self.family,
                      self.bits, self.strategy, nonlinear, self.description)


def nonlinear_families() -> dict[str, str | None]:
    """Non-linear families: name -> None (every family is usable; the value is kept for callers that
    report a reason).

    ``fp32`` and ``fp16`` (the float recipes) always; the integer families are those of
    :data:`intsim.models.minilm.NONLINEAR` (``ibert``, ``ibert-corrected``, ``ivit``, ``illm``...).
    """
    from ..models.minilm import NONLINEAR

    return {**dict.fromkeys(FLOAT_NONLINEAR), **dict.fromkeys(NONLINEAR)}


#: The old name of :func:`nonlinear_families` (kept for one release).
nonlinear_profiles = nonlinear_families


def default_integer_nonlinear() -> str:
    """The first usable integer non-linear family, else ``fp32``."""
    for name, why in nonlinear_families().items():
        if name not in FLOAT_NONLINEAR and why is None:
            return name
    return "fp32"


def unpack_strategies() -> tuple[str, ...]:
    """The IM-Unpack strategies of :mod:`intsim.hw.unpack`."""
    from ..hw.unpack import STRATEGIES

    return tuple(STRATEGIES)


def get_method(name: str, nonlinear: str | None = None) -> Method:
    """A method by name: ``fp32``, ``fp16``, ``int8``, ``unpack4-row``, ``unpack2-col``..., ``llm.int8``.

    ``nonlinear`` sets the non-linear family of an integer method (default: the first
    available integer family, else ``fp32``).
    """
    nl = nonlinear or default_integer_nonlinear()
    if name in ("fp32", "fp16"):
        b = int(name[2:])
        return Method(name, "float", b, nonlinear=name, description=f"{name} GEMMs and {name} non-linear operators")
    if name == "int8":
        return Method("int8", "int8", 8, nonlinear=nl, description="int8 x int8 -> int32 GEMMs (direct)")
    if name == "llm.int8":
        return Method("llm.int8", "llmint8", 8, nonlinear="fp16",
                      description="LLM.int8() linear layers (threshold 6.0); fp16 elsewhere")
    if name.startswith("unpack"):
        head, _, strategy = name.partition("-")
        bits = head[len("unpack"):]
        strategies = unpack_strategies()
        if not strategies:
            raise ConfigError(f"method {name!r} needs intsim.hw.unpack, which is not available")
        if bits.isdigit() and 2 <= int(bits) <= 8 and strategy in strategies:
            b = int(bits)
            return Method(name, "unpack", b, strategy, nl,
                          f"IM-Unpack of the int8 operands to {b}-bit digits, strategy {strategy} on both operands")
        raise ConfigError(f"unknown IM-Unpack method {name!r}; use unpack<bits>-<strategy> with bits 2..8 and "
                          f"strategy one of {', '.join(strategies)}")
    raise ConfigError(f"unknown method {name!r}; valid: fp32, fp16, int8, unpack<bits>-<strategy>, llm.int8")


def standard_methods(nonlinear: str | None = None, unpack_bits: Sequence[int] = DEFAULT_UNPACK_BITS,
                     strategies: Sequence[str] | None = None) -> tuple[list[Method], list[tuple[str, str]]]:
    """The methods compared side by side, and those left out with the reason.

    fp32, fp16, int8, IM-Unpack at each of ``unpack_bits`` with every strategy of
    :mod:`intsim.hw.unpack` (or ``strategies``; :data:`SLOW_STRATEGIES` are left out unless
    asked for), and LLM.int8().
    """
    methods = [get_method("fp32"), get_method("fp16"), get_method("int8", nonlinear)]
    skipped: list[tuple[str, str]] = []
    avail = unpack_strategies()
    if not avail:
        skipped.append(("unpack*", "intsim.hw.unpack is not available"))
    for b in unpack_bits:
        for s in (strategies or avail):
            if strategies is None and (b, s) in SLOW_STRATEGIES:
                skipped.append((f"unpack{b}-{s}", SLOW_STRATEGIES[(b, s)]))
                continue
            methods.append(get_method(f"unpack{b}-{s}", nonlinear))
    methods.append(get_method("llm.int8"))
    return methods, skipped


# ---------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------


@functools.cache
def _requant_one(in_bits: int, out_bits: int, out_signed: bool) -> OpCounts:
    from ..quant.requant import requantize

    out = IntType(out_bits, out_signed)
    return requantize(np.zeros(1, np.int64), 0.01, out=out, in_type=IntType(in_bits), taps=False).ops


def requant_counts(n: int, in_bits: int = 32, out_bits: int = 8, out_signed: bool = True) -> OpCounts:
    """Op counts of requantizing ``n`` ``in_bits`` integers to ``out_bits``
    (:func:`intsim.quant.requant.requantize`, ``dyadic`` mode, scale 0.01 as a 31-bit dyadic
    multiplier; its counts are the same for every element, so they are one element's
    times ``n``)."""
    return _requant_one(in_bits, out_bits, out_signed) * int(n)


def quantize_int8(x: np.ndarray, amax: float, unsigned: bool = False) -> np.ndarray:
    """Per-tensor symmetric quantization: ``clip(round_half_even(x * 127 / amax), -127, 127)``
    (unsigned: ``clip(round_half_even(x * 255 / amax), 0, 255)``), as int64."""
    if not amax > 0:
        return np.zeros(x.shape, np.int64)
    if unsigned:
        return np.clip(np.rint(x * (255.0 / amax)), 0, 255).astype(np.int64)
    return np.clip(np.rint(x * (127.0 / amax)), -127, 127).astype(np.int64)


def _shapes(site: GemmSite, a_dtype: str, b_dtype: str, acc: int) -> tuple[GemmShape, ...]:
    agg: dict[tuple[int, int, int], int] = {}
    for p in site.parts:
        agg[(p.M, p.K, p.N)] = agg.get((p.M, p.K, p.N), 0) + 1
    return tuple(GemmShape(M, K, N, a_dtype, b_dtype, acc, n) for (M, K, N), n in sorted(agg.items()))


def _b_level(site: GemmSite) -> str:
    return "dram" if site.weight else "sram"


def _weights(site: GemmSite, dtype: str, bias_dtype: str) -> tuple[tuple[str, int], ...]:
    if not site.weight:
        return ()
    out = [(dtype, sum(p.K * p.N for p in site.parts))]
    if site.bias:
        out.append((bias_dtype, sum(p.N for p in site.parts)))
    return tuple(out)


def _mk(method: Method, site: GemmSite | VectorSite, op: str, category: str, counts: CostCounts,
        suffix: str = "", **kw) -> Step:
    for key in ("weights", "outputs"):
        if key in kw:
            kw[key] = tuple((d, n) for d, n in kw[key] if n)
    return Step(method.name, site.name + suffix, site.layer, op, category, counts, **kw)


# ---------------------------------------------------------------------------------------------
# GEMM sites
# ---------------------------------------------------------------------------------------------


def _float_gemm(site: GemmSite, method: Method, bits: int) -> list[Step]:
    dt = f"FLOAT{bits}"
    c = CostCounts()
    c.add("fmac", (bits,), site.macs)
    c.add("sram_read", (bits,), sum(p.M * p.K for p in site.parts))
    c.add(f"{_b_level(site)}_read", (bits,), sum(p.K * p.N for p in site.parts))
    if site.bias:
        c.add("dram_read", (bits,), sum(p.N for p in site.parts))
    if site.out_scale is not None:
        c.add("fmul", (bits,), site.outputs)
    c.add("sram_write", (bits,), site.outputs)
    return [_mk(method, site, site.op, "gemm", c, gemms=_shapes(site, dt, dt, bits),
                weights=_weights(site, dt, dt), outputs=((dt, site.outputs),))]


def _placed_gemm_counts(ops: OpCounts, a_reads: tuple[int, int], b_reads: tuple[int, int], b_level: str,
                        writes: tuple[int, int]) -> CostCounts:
    """Compute kinds of ``ops`` plus reads/writes placed by operand; checks they match ``ops``."""
    c = CostCounts()
    for (kind, w), n in ops.items():
        if kind not in ("read", "write"):
            c.add(kind, w, n)
    placed = OpCounts().add("read", (a_reads[0],), a_reads[1]).add("read", (b_reads[0],), b_reads[1])
    placed.add("write", (writes[0],), writes[1])
    mem = OpCounts({k: n for k, n in ops.items() if k[0] in ("read", "write")})
    if placed != mem:  # pragma: no cover - would mean the placement misreads the GEMM's counts
        raise RuntimeError(f"internal check failed: placed accesses {placed} differ from the GEMM's {mem}")
    c.add("sram_read", (a_reads[0],), a_reads[1]).add(f"{b_level}_read", (b_reads[0],), b_reads[1])
    c.add("sram_write", (writes[0],), writes[1])
    return c


def _int8_gemm(site: GemmSite, method: Method, acc: int) -> list[Step]:
    a_t = IntType(8, signed=not site.a_unsigned)
    dp = Datapath(a=a_t, b=IntType(8), acc_bits=acc)
    ops = sum((gemm_ops(p.M, p.K, p.N, dp) for p in site.parts), OpCounts())
    c = _placed_gemm_counts(ops, (8, sum(p.M * p.K for p in site.parts)), (8, sum(p.K * p.N for p in site.parts)),
                            _b_level(site), (acc, site.outputs))
    if site.bias:
        c.add("dram_read", (acc,), sum(p.N for p in site.parts))
    return [_mk(method, site, site.op, "gemm", c, gemms=_shapes(site, int_dtype(a_t), "INT8", acc),
                weights=_weights(site, "INT8", f"INT{acc}"), outputs=((f"INT{acc}", site.outputs),))]


def unpack_gemm_counts(stats, bits: int, acc: int) -> OpCounts:
    """Op counts of :func:`intsim.hw.unpack.unpack_matmul` from its :class:`~intsim.hw.unpack.UnpackStats`,
    without running the GEMMs: ``M'K'N'`` MACs (b x b -> acc), ``M'K'`` + ``K'N'`` b-bit reads,
    ``G*M'*N'`` acc-bit writes (G low-bit GEMMs, each over all M' x N' outputs), and
    ``G*M'*N' - M*N`` reassembly shifts and adds at :data:`intsim.hw.unpack.REASSEMBLY_BITS`
    (each original row and column has exactly one copy of shift 0). The test suite checks
    these against ``unpack_matmul(...).ops``."""
    from ..hw.unpack import REASSEMBLY_BITS

    M, K, N = stats.shape
    Mp, Kp, Np = stats.unpacked_shape
    ops = OpCounts()
    if M * K * N == 0:  # pragma: no cover - MiniLM has no empty GEMM
        raise ConfigError("unpack_gemm_counts needs a non-empty GEMM")
    ops.add("mac", (bits, bits, acc), Mp * Kp * Np)
    ops.add("read", (bits,), Mp * Kp + Kp * Np)
    terms = stats.n_gemms * Mp * Np
    ops.add("write", (acc,), terms)
    ops.add("shift", (REASSEMBLY_BITS,), terms - M * N)
    ops.add("add", (REASSEMBLY_BITS,), terms - M * N)
    return ops


def _unpack_gemm(site: GemmSite, method: Method, acc: int) -> list[Step]:
    from ..hw.unpack import unpack_stats

    if not site.has_data:
        raise ConfigError(f"method {method.name} needs the operands of {site.name}; this workload has no data")
    b = method.bits
    amax = max(float(np.abs(p.a).max()) for p in site.parts)
    bmax = max(float(np.abs(p.b).max()) for p in site.parts)
    ops = OpCounts()
    shapes: dict[tuple[int, int, int], int] = {}
    a_reads = b_reads = 0
    work = orig = 0
    for p in site.parts:
        A = quantize_int8(p.a, amax, site.a_unsigned)
        B = quantize_int8(p.b, bmax)
        st = unpack_stats(A, B, method.strategy, method.strategy, b)
        ops += unpack_gemm_counts(st, b, acc)
        Mp, Kp, Np = st.unpacked_shape
        a_reads += Mp * Kp
        b_reads += Kp * Np
        work += st.work
        orig += p.M * p.K * p.N
        shapes[st.unpacked_shape] = shapes.get(st.unpacked_shape, 0) + 1
    gemm_part = OpCounts({k: n for k, n in ops.items() if k[0] in ("mac", "read", "write")})
    # The unpacked operands are built on chip: every low-bit operand read is an SRAM read; a weight
    # is stored as int8 and read once from DRAM (the digit extraction itself is not counted).
    c = _placed_gemm_counts(gemm_part, (b, a_reads), (b, b_reads), "sram", (acc, gemm_part.total("write")))
    if site.weight:
        c.add("dram_read", (8,), sum(p.K * p.N for p in site.parts))
    if site.bias:
        c.add("dram_read", (acc,), sum(p.N for p in site.parts))
    dt = f"INT{b}"
    gemms = tuple(GemmShape(M, K, N, dt, dt, acc, n) for (M, K, N), n in sorted(shapes.items()))
    weights = _weights(site, "INT8", f"INT{acc}")
    ratio = work / orig if orig else 1.0
    steps = [_mk(method, site, site.op, "gemm", c, gemms=gemms, weights=weights,
                 outputs=((f"INT{acc}", gemm_part.total("write")),), unpack_ratio=ratio,
                 note=f"IM-Unpack {method.strategy}/{method.strategy} to {b} bits, unpack ratio {ratio:.4f}")]
    rest = CostCounts.from_opcounts(OpCounts({k: n for k, n in ops.items() if k[0] in ("shift", "add")}))
    steps.append(_mk(method, site, "reassembly", "reassembly", rest, suffix=".reassembly",
                     outputs=((f"INT{acc}", site.outputs),)))
    return steps


def _llmint8_gemm(site: GemmSite, method: Method, acc: int) -> list[Step]:
    """A linear layer by :func:`intsim.quant.llmint8.llm_int8_matmul` (threshold 6.0) on the real
    operands: its op counts (both integer GEMMs and the dequantization), plus the runtime
    vector-wise quantization of the fp16 input (per element: the threshold test and the
    absmax, 2 ``fadd`` (16) as compares, then ``fmul`` + ``fadd`` (16) to scale and round;
    per row: one fp16 reciprocal) and the fp16 bias add. Weights are quantized offline."""
    from ..quant.llmint8 import llm_int8_matmul

    if not site.has_data:
        raise ConfigError(f"method {method.name} needs the operands of {site.name}; this workload has no data")
    steps: list[Step] = []
    for i, p in enumerate(site.parts):
        r = llm_int8_matmul(p.a, p.b, threshold=LLM_INT8_THRESHOLD)
        M, K, N = r.shape
        n_out = r.n_outliers
        q = fo.reciprocal_counts(16) * M + CostCounts().add("fadd", (16,), 2 * M * K + M * K).add("fmul", (16,), M * K)
        q.add("sram_read", (16,), M * K).add("sram_write", (r.bits,), M * (K - n_out))
        q.add("sram_write", (r.outlier_bits,), M * n_out)
        sfx = f".{i}" if len(site.parts) > 1 else ""
        steps.append(_mk(method, site, "quantize", "requant", q, suffix=sfx + ".quantize",
                         outputs=((f"INT{r.bits}", M * (K - n_out)), (f"INT{r.outlier_bits}", M * n_out))))
        shapes, reads_a, reads_b, writes = [], [], [], []
        for g in (r.regular, r.outlier):
            if g is None:
                continue
            dpg = g.datapath
            k_ = (K - n_out) if g is r.regular else n_out
            shapes.append(GemmShape(M, k_, N, int_dtype(dpg.a), int_dtype(dpg.b), dpg.acc_bits))
            reads_a.append((dpg.a.bits, M * k_))
            reads_b.append((dpg.b.bits, k_ * N))
            writes.append((dpg.acc_bits, M * N))
        c = CostCounts()
        for (kind, w), n in r.ops.items():
            if kind not in ("read", "write"):
                c.add(kind, w, n)
        placed = OpCounts()
        for (b, n) in reads_a + reads_b:
            placed.add("read", (b,), n)
        for (b, n) in writes:
            placed.add("write", (b,), n)
        mem = OpCounts({k: n for k, n in r.ops.items() if k[0] in ("read", "write")})
        if placed != mem:  # pragma: no cover - would mean the placement misreads the module's counts
            raise RuntimeError(f"internal check failed: placed accesses {placed} differ from llm_int8_matmul's {mem}")
        for b, n in reads_a:
            c.add("sram_read", (b,), n)
        for b, n in reads_b:
            c.add(f"{_b_level(site)}_read", (b,), n)
        for b, n in writes:
            c.add("sram_write", (b,), n)
        if site.bias:
            c.add("fadd", (16,), M * N).add("dram_read", (16,), N).add("sram_write", (16,), M * N)
        weights = tuple((f"INT{b}", n) for b, n in reads_b) + ((("FLOAT16", N),) if site.bias else ())
        steps.append(_mk(method, site, site.op, "gemm", c, suffix=sfx, gemms=tuple(shapes), weights=weights,
                         outputs=(("FLOAT16", M * N),),
                         note=f"LLM.int8(): {n_out} of {K} feature columns on the {r.outlier_bits}-bit path"))
    return steps


def _requant_step(method: Method, site: GemmSite | VectorSite, n: int, in_bits: int, out_bits: int,
                  suffix: str = ".requant", unsigned: bool = False) -> Step:
    c = CostCounts.from_opcounts(requant_counts(n, in_bits, out_bits, not unsigned))
    c.add("sram_read", (in_bits,), n).add("sram_write", (out_bits,), n)
    return _mk(method, site, "requant", "requant", c, suffix=suffix,
               outputs=((f"{'U' if unsigned else ''}INT{out_bits}", n),))


# ---------------------------------------------------------------------------------------------
# vector sites
# ---------------------------------------------------------------------------------------------


def _float_recipe(site: VectorSite, bits: int) -> CostCounts:
    if site.op == "softmax":
        return sum((fo.softmax_row(c, bits) * r for r, c in site.parts), CostCounts())
    if site.op == "gelu":
        return fo.gelu_elements(site.elements, bits)
    if site.op == "layernorm":
        return sum((fo.layernorm_row(c, bits) * r for r, c in site.parts), CostCounts())
    raise ConfigError(f"no float recipe for {site.op!r}")


def _float_vector(site: VectorSite, method: Method, bits: int) -> list[Step]:
    n = site.elements
    dt = f"FLOAT{bits}"
    if site.op == "residual":
        c = fo.residual_elements(n, bits).add("sram_read", (bits,), 2 * n).add("sram_write", (bits,), n)
        return [_mk(method, site, "residual", "residual", c, outputs=((dt, n),))]
    c = _float_recipe(site, bits).add("sram_read", (bits,), n).add("sram_write", (bits,), n)
    if site.params:
        c.add("dram_read", (bits,), site.params)
    return [_mk(method, site, site.op, "nonlinear", c, weights=((dt, site.params),) if site.params else (),
                outputs=((dt, n),), note=f"fp{bits} recipe (intsim.cost.floatops)")]


def _int_residual(site: VectorSite, method: Method, acc: int) -> list[Step]:
    n, r = site.elements, RESIDUAL_BITS
    c = CostCounts.from_opcounts(requant_counts(n, acc, r) + requant_counts(n, r, r)).add("add", (r,), n)
    c.add("sram_read", (acc,), n).add("sram_read", (r,), n).add("sram_write", (r,), n)
    return [_mk(method, site, "residual", "residual", c, outputs=((f"INT{r}", n),),
                note=f"requantize both terms to int{r}, add at {r} bits")]


def _int_input_bits(site: VectorSite, acc: int) -> int:
    return {"softmax": acc, "gelu": GELU_BITS, "layernorm": RESIDUAL_BITS}[site.op]


def _mixed_vector(site: VectorSite, method: Method, acc: int, bits: int) -> list[Step]:
    """An integer pipeline's non-linear operator in floating point: dequantize, recipe, quantize."""
    n = site.elements
    outs = site.int_outputs or (8,)
    c = fo.dequantize_elements(n, bits) + _float_recipe(site, bits)
    for _ in outs:
        c += fo.quantize_elements(n, bits)
    c.add("sram_read", (_int_input_bits(site, acc),), n)
    for w in outs:
        c.add("sram_write", (w,), n)
    if site.params:
        c.add("dram_read", (bits,), site.params)
    sign = "UINT" if site.op == "softmax" else "INT"
    return [_mk(method, site, site.op, "nonlinear", c, weights=((f"FLOAT{bits}", site.params),) if site.params else (),
                outputs=tuple((f"{sign}{w}", n) for w in outs),
                note=f"int -> fp{bits} recipe -> int{'/'.join(map(str, outs))}")]


def _int_quantize(x: np.ndarray, bits: int, headroom: float = 2.0) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor quantization to ``bits`` with ``headroom`` (as intsim.models.minilm):
    ``headroom * max|x|`` maps to the largest value."""
    t = IntType(bits)
    amax = float(np.abs(x).max()) if x.size else 0.0
    s = headroom * amax / t.max if amax > 0 else 1.0
    return np.clip(np.rint(x / s), t.min, t.max).astype(np.int64), s


def _integer_vector(site: VectorSite, method: Method, acc: int, scales: dict[str, float]) -> list[Step]:
    """An integer non-linear family's operator (through :func:`intsim.models.minilm.get_nonlinear`) on
    integer inputs derived from the real activations (see :func:`build_steps`)."""
    fam = _integer_nonlinear(method.nonlinear)
    if site.data is None:
        raise ConfigError(f"non-linear family {method.nonlinear!r} needs the activations of {site.name}")
    ops = OpCounts()
    n = site.elements
    if site.op == "softmax":
        S = scales.get(f"L{site.layer}.softmax", 1.0)
        for d in site.data:
            x = np.clip(np.rint(d / S), -(2**(acc - 1)), 2**(acc - 1) - 1).astype(np.int64)
            ops += fam.softmax(x, S, 8, acc, "saturate").ops
        out_bits, reads, out_int = 8, acc, 8
    elif site.op == "gelu":
        x, s = _int_quantize(np.concatenate([d.ravel() for d in site.data]), GELU_BITS)
        ops += fam.gelu(x, s, GELU_BITS, "saturate").ops
        out_bits, reads, out_int = 32, GELU_BITS, 32
    else:
        x, _ = _int_quantize(np.vstack(site.data), RESIDUAL_BITS)
        y = x - np.rint(x.mean(axis=1, keepdims=True))
        shift = fam.layernorm_shift(float((y * y).sum(axis=1).max()))
        ops += fam.layernorm(x, RESIDUAL_BITS, shift, "saturate").ops
        ops.add("add", (LN_OUT_BITS,), n)  # the integer beta bias
        out_bits, reads, out_int = LN_OUT_BITS, RESIDUAL_BITS, LN_OUT_BITS
    c = CostCounts.from_opcounts(ops).add("sram_read", (reads,), n).add("sram_write", (out_bits,), n)
    weights: tuple[tuple[str, int], ...] = ()
    if site.params:
        c.add("dram_read", (32,), site.params // 2)  # the integer bias; gamma is folded into the requantization
        weights = (("INT32", site.params // 2),)
    sign = "UINT" if site.op == "softmax" else "INT"
    steps = [_mk(method, site, site.op, "nonlinear", c, weights=weights, outputs=((f"{sign}{out_int}", n),),
                 note=f"{fam.description}")]
    for i, w in enumerate(site.int_outputs):
        steps.append(_requant_step(method, site, n, out_bits, w, suffix=f".requant{i}" if i else ".requant"))
    return steps


@functools.cache
def _integer_nonlinear(name: str):
    from ..models.minilm import get_nonlinear

    return get_nonlinear(name)


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def _gemm_scales(workload: Workload) -> dict[str, float]:
    """Per-layer softmax input scale of the integer pipeline: ``s_q * s_k / sqrt(d)`` with the
    per-tensor int8 scales of the score GEMM's operands (``max|x| / 127``)."""
    out = {}
    for s in workload.sites:
        if isinstance(s, GemmSite) and s.op == "scores" and s.has_data:
            amax = max(float(np.abs(p.a).max()) for p in s.parts)
            bmax = max(float(np.abs(p.b).max()) for p in s.parts)
            out[f"L{s.layer}.softmax"] = (amax / 127) * (bmax / 127) * (s.out_scale or 1.0)
    return out


def build_steps(workload: Workload, method: Method, acc_bits: int = 32, progress: Progress | None = None) -> list[Step]:
    """The costed steps of ``workload`` under ``method``, in execution order.

    ``acc_bits`` is the accumulator width of the integer MAC array (the hardware profile's).
    Integer methods follow the data flow of :mod:`intsim.models.minilm` (``w8a8``): 8-bit
    GEMM inputs, a 16-bit residual stream (both residual terms requantized to 16 bits,
    then added), LayerNorm on the 16-bit residual sum plus an integer bias, GELU on a
    16-bit input. Integer non-linear families run their operators
    (:func:`intsim.models.minilm.get_nonlinear`) on integer inputs quantized from the real
    activations: softmax at the int32 score scale, GELU and LayerNorm inputs per tensor
    at 16 bits with headroom 2 (the LayerNorm variance pre-shift from those inputs).
    Raises :class:`~intsim.core.errors.ConfigError` when the method needs data the workload
    lacks or a module that is not available.
    """
    nl = method.nonlinear
    known = nonlinear_families()
    if nl not in known:
        raise ConfigError(f"unknown non-linear family {nl!r}; valid: {', '.join(known)}")
    if known[nl] is not None:
        raise ConfigError(f"non-linear family {nl!r} is not available: {known[nl]}")
    fbits = method.bits if method.family == "float" else 16
    scales = _gemm_scales(workload) if method.is_integer and nl not in FLOAT_NONLINEAR else {}
    steps: list[Step] = []
    last_layer = None
    for site in workload.sites:
        if progress and site.layer != last_layer and site.layer is not None:
            progress(f"  {method.name}: layer {site.layer}")
            last_layer = site.layer
        if isinstance(site, GemmSite):
            if method.family == "float":
                steps += _float_gemm(site, method, method.bits)
            elif method.family == "llmint8":
                steps += (_llmint8_gemm(site, method, acc_bits) if site.weight
                          else _float_gemm(site, method, 16))
            else:
                if site.requant_in is not None:
                    steps.append(_requant_step(method, site, sum(p.M * p.K for p in site.parts), site.requant_in,
                                               ACT_BITS, suffix=".input_requant"))
                steps += (_int8_gemm(site, method, acc_bits) if method.family == "int8"
                          else _unpack_gemm(site, method, acc_bits))
                if site.requant_out is not None:
                    steps.append(_requant_step(method, site, site.outputs, acc_bits, site.requant_out))
        else:
            if not method.is_integer:
                steps += _float_vector(site, method, fbits)
            elif site.op == "residual":
                steps += _int_residual(site, method, acc_bits)
            elif nl in FLOAT_NONLINEAR:
                steps += _mixed_vector(site, method, acc_bits, int(nl[2:]))
            else:
                steps += _integer_vector(site, method, acc_bits, scales)
    return steps
