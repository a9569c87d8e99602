"""Integer GEMMs of a MiniLM training step: IM-Unpack on low-bit multipliers and INT16 dynamic fixed point.

The float64 training step (:func:`intsim_reference.training.training_step`, the
cosine-similarity loss on sentence pairs) runs every matrix product through one
function; this module provides integer versions of it and the measurements the
training report makes.

**IM-Unpack step** (:class:`UnpackGemm`, :func:`integer_training_step`). Every GEMM of
the step, forward and backward, runs on the emulated datapath as in "IM-Unpack:
Training and Inference with Arbitrarily Low Precision Integers" (Zeng et al. 2024,
arXiv:2403.07339): both operands are quantized per tensor with the percentile
quantizer :func:`intsim.quant.quantizers.quantize_rtn` (``q = round(x * 0.5 D /
alpha_p)``, half to even, no clipping), the integer product is computed exactly by
:func:`intsim.hw.unpack.unpack_matmul` on ``bits``-bit signed multipliers (default 4)
into 32-bit accumulators (overflow raises, so a result that is returned is exact),
checked against the int64 product, and dequantized (divided by the two scales) in
float64. As in the paper's training code, the forward operands and the output
gradient are what is quantized: in a ``grad_a`` GEMM (``dA = dC B^T``) the A operand
is the output gradient, in a ``grad_b`` GEMM (``dB = A^T dC``) the B operand; they use
``grad_levels`` (default: ``levels``), every other operand ``levels``. Each GEMM is
quantized on its own (a per-head attention product per sentence and head). The
element-wise work between the GEMMs stays in float64.

**INT16 dynamic fixed point** (:func:`dfp_quantize`, :func:`overflow_counts`), after
"Mixed Precision Training of Convolutional Neural Networks using Integer Operations"
(Das et al. 2018, arXiv:1802.00930): a tensor shares one exponent, ``x ~ q * 2**e``
with int16 ``q``; ``e`` is the smallest integer for which the largest magnitude
still rounds into int16. Products of two int16 values (at most ``2**30``) are
accumulated into an int32 register, which a long enough dot product overflows;
:func:`overflow_counts` runs :func:`intsim.matmul` on several accumulator
organisations (:func:`default_variants`): the plain int32 MAC chain, a 32-bit
register spilled into a 64-bit one every ``k`` products (``k_chunk``/``chunk_bits`` of
:class:`intsim.Datapath`) and wider accumulators.

>>> import numpy as np
>>> d = dfp_quantize(np.array([[0.5, -3.0], [1e-3, 2.0]]))
>>> d.exponent, d.values.tolist()
(-13, [[4096, -24576], [8, 16384]])
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.errors import AccumulatorOverflow, ConfigError, ModelNotInstalledError
from ...core.inttype import IntType
from ...hw.datapath import Datapath
from ...hw.gemm import matmul
from ...hw.unpack import STRATEGIES, unpack_matmul
from ...quant.quantizers import quantize_rtn

if TYPE_CHECKING:  # the float64 reference is a separate package (intsim_reference)
    from intsim_reference.minilm import MiniLMReference
    from intsim_reference.training import TrainingGemm, TrainingStep

__all__ = [
    "AccumulatorVariant",
    "DfpTensor",
    "GemmTally",
    "UnpackGemm",
    "default_variants",
    "dfp_quantize",
    "dfp_quantize_group",
    "exact_product",
    "integer_training_step",
    "outside_register",
    "overflow_counts",
    "relative_error",
]


# ---------------------------------------------------------------------------------------------
# INT16 dynamic fixed point
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DfpTensor:
    """A shared-exponent integer tensor: ``values * 2**exponent`` approximates the real tensor.

    ``values`` int64 in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``; ``exponent`` a Python int.
    """

    values: np.ndarray
    exponent: int
    bits: int

    def dequantize(self) -> np.ndarray:
        """``values * 2**exponent`` in float64 (exact)."""
        return np.ldexp(self.values.astype(np.float64), self.exponent)


def _check_bits(bits: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or not lo <= int(bits) <= hi:
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {bits!r}")
    return int(bits)


def _dfp_exponent(amax: float, qmax: int) -> int:
    """The smallest e with round_half_even(amax / 2**e) <= qmax (amax > 0, finite)."""
    m, ex = math.frexp(amax)  # amax = m * 2**ex, 0.5 <= m < 1
    e = ex - qmax.bit_length()  # amax / 2**e = m * 2**bit_length(qmax) in [2**(L-1), 2**L)
    while float(np.round(math.ldexp(amax, -e))) > qmax:
        e += 1
    while float(np.round(math.ldexp(amax, -(e - 1)))) <= qmax:
        e -= 1
    return e


def dfp_quantize_group(mats: Sequence[Any], bits: int = 16) -> tuple[list[np.ndarray], int]:
    """Quantize several real matrices with one shared exponent (one tensor split in pieces).

    Returns the int64 arrays (shapes kept) and the exponent ``e``: ``x ~ q * 2**e``,
    ``q = round_half_even(x / 2**e)``, ``e`` the smallest integer for which the largest
    magnitude over all pieces rounds to at most ``2**(bits-1) - 1``. All-zero input gives
    zeros and ``e = 0``.

    Raises:
        ConfigError: ``bits`` outside 2..32, no matrix, a non-finite entry.

    >>> q, e = dfp_quantize_group([np.array([1.0, 0.25]), np.array([-0.5])], bits=8)
    >>> [v.tolist() for v in q], e
    ([[64, 16], [-32]], -6)
    """
    b = _check_bits(bits, "bits", 2, 32)
    arrs = [np.asarray(m, dtype=np.float64) for m in mats]
    if not arrs:
        raise ConfigError("dfp_quantize_group needs at least one matrix")
    amax = max((float(np.max(np.abs(a))) for a in arrs if a.size), default=0.0)
    if not math.isfinite(amax):
        raise ConfigError("dynamic fixed point needs finite values (got inf or NaN)")
    if amax == 0.0:
        return [np.zeros(a.shape, np.int64) for a in arrs], 0
    e = _dfp_exponent(amax, (1 << (b - 1)) - 1)
    return [np.round(np.ldexp(a, -e)).astype(np.int64) for a in arrs], e


def dfp_quantize(x: Any, bits: int = 16) -> DfpTensor:
    """Dynamic fixed point of one tensor (see :func:`dfp_quantize_group`).

    >>> d = dfp_quantize(np.array([3.0, -1.5]), bits=4)
    >>> d.values.tolist(), d.exponent, d.dequantize().tolist()
    ([6, -3], -1, [3.0, -1.5])
    """
    (q,), e = dfp_quantize_group([x], bits)
    return DfpTensor(q, e, int(bits))


@dataclass(frozen=True)
class AccumulatorVariant:
    """One accumulator organisation: a label and the :class:`~intsim.Datapath` that models it
    (every register wraps, so :func:`intsim.matmul` flags each output that overflowed)."""

    name: str
    datapath: Datapath


def default_variants(operand_bits: int = 16, acc_bits: int = 32, spill: Sequence[int] = (8, 32, 128),
                     wide: Sequence[int] = (40, 48)) -> tuple[AccumulatorVariant, ...]:
    """The accumulator organisations the training report compares.

    * ``acc{acc_bits}``: a plain MAC chain into an ``acc_bits`` register (an output
      overflows when any partial sum in K order leaves the register);
    * ``acc{acc_bits}, spill every k`` for each ``k`` in ``spill``: two-level
      accumulation, the ``acc_bits`` register sums ``k`` products and is then added into
      a 64-bit register (an output overflows when some group of ``k`` consecutive
      products sums outside ``acc_bits``; with wrapping arithmetic the intermediate
      sums inside a group do not matter);
    * ``acc{w}`` for each ``w`` in ``wide``: a wider MAC chain.

    Operands are signed ``operand_bits`` wide.

    >>> [v.name for v in default_variants(spill=(16,), wide=(48,))]
    ['acc32', 'acc32, spill every 16', 'acc48']
    """
    ob = _check_bits(operand_bits, "operand_bits", 2, 32)
    ab = _check_bits(acc_bits, "acc_bits", 2, 63)
    t = IntType(ob)
    out = [AccumulatorVariant(f"acc{ab}", Datapath(a=t, b=t, acc_bits=ab, overflow="wrap"))]
    for k in spill:
        kk = _check_bits(k, "spill interval", 2, 1 << 20)
        out.append(AccumulatorVariant(f"acc{ab}, spill every {kk}",
                                      Datapath(a=t, b=t, acc_bits=64, overflow="wrap", k_chunk=kk,
                                               chunk_bits=ab, chunk_overflow="wrap")))
    for w in wide:
        ww = _check_bits(w, "wide accumulator bits", ab + 1, 64)
        out.append(AccumulatorVariant(f"acc{ww}", Datapath(a=t, b=t, acc_bits=ww, overflow="wrap")))
    return tuple(out)


def overflow_counts(qa: Any, qb: Any, variants: Sequence[AccumulatorVariant]) -> dict[str, int]:
    """For each variant, the number of outputs of ``qa @ qb`` whose registers overflowed
    (:attr:`intsim.hw.gemm.GemmResult.n_overflow` on the variant's datapath).

    >>> big = np.full((1, 4), 30000); v = default_variants(spill=(2,), wide=(40,))
    >>> overflow_counts(big, big.T, v)
    {'acc32': 1, 'acc32, spill every 2': 0, 'acc40': 0}
    """
    return {v.name: matmul(qa, qb, v.datapath).n_overflow for v in variants}


def outside_register(qa: Any, qb: Any, bits: int = 32) -> int:
    """Outputs whose exact value ``qa @ qb`` lies outside a signed ``bits``-bit register (a wrapping
    MAC chain then returns a wrong value; partial sums may overflow without that).

    >>> outside_register(np.full((1, 4), 30000), np.full((4, 1), 30000))
    1
    """
    b = _check_bits(bits, "bits", 2, 63)
    exact = exact_product(qa, qb)
    lim = 1 << (b - 1)
    return int(np.count_nonzero((exact < -lim) | (exact >= lim)))


def exact_product(qa: Any, qb: Any) -> np.ndarray:
    """The exact int64 product ``qa @ qb`` of integer matrices: by float64 BLAS when every partial sum
    is an integer below 2**53 in magnitude (then exact in any summation order), else in int64
    (exact while the sums fit int64).

    >>> exact_product(np.array([[3, -2]]), np.array([[4], [5]])).tolist()
    [[2]]
    """
    a = np.asarray(qa, dtype=np.int64)
    b = np.asarray(qb, dtype=np.int64)
    amax = int(np.abs(a).max(initial=0))
    bmax = int(np.abs(b).max(initial=0))
    if amax * bmax * a.shape[1] < 1 << 53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def relative_error(x: Any, ref: Any) -> float:
    """``||x - ref|| / ||ref||`` (Frobenius); 0.0 when both are zero, ``inf`` when only ``ref`` is.

    >>> relative_error(np.array([1.0, 2.1]), np.array([1.0, 2.0])) < 0.05
    True
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    num = float(np.linalg.norm(x - ref))
    den = float(np.linalg.norm(ref))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


# ---------------------------------------------------------------------------------------------
# IM-Unpack GEMMs for the training step
# ---------------------------------------------------------------------------------------------

@dataclass
class GemmTally:
    """Sums over the GEMMs of one kind run by :class:`UnpackGemm`: ``gemms``, ``macs`` (sum MKN),
    ``work`` (sum M'K'N' after unpacking), ``low_bit_gemms`` and ``exact`` (GEMMs whose
    reassembled integer result equals the int64 product)."""

    gemms: int = 0
    macs: int = 0
    work: int = 0
    low_bit_gemms: int = 0
    exact: int = 0

    @property
    def ratio(self) -> float:
        """``work / macs`` (1.0 when empty)."""
        return self.work / self.macs if self.macs else 1.0


@dataclass
class UnpackGemm:
    """A ``gemm`` function for :func:`intsim_reference.training.training_step` that runs every
    product as an exact integer GEMM on ``bits``-bit multipliers (see the module docs).

    Args:
        bits: multiplier operand width (signed), 2 to 16.
        strategy: IM-Unpack strategy for both operands (:data:`intsim.hw.unpack.STRATEGIES`).
        percentile, levels: the quantizer's p and D for the forward operands.
        grad_levels: D for the output-gradient operand of a backward GEMM (None: ``levels``).
        acc_bits: accumulator width of the low-bit GEMMs (overflow raises).

    ``tally`` holds a :class:`GemmTally` per GEMM kind, filled as the step runs.

    Raises:
        ConfigError: an argument outside its range.
        RuntimeError: an unpacked result differs from the int64 product (never expected).

    >>> from intsim_reference.training import random_model, training_step
    >>> m = random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20, seed=1)
    >>> run = UnpackGemm(bits=4, levels=255)
    >>> s = training_step(m, np.array([[1, 3, 2], [1, 4, 2]]), np.ones((2, 3), int), [(0, 1)], [0.0], gemm=run)
    >>> sum(t.gemms for t in run.tally.values()), all(t.exact == t.gemms for t in run.tally.values())
    (42, True)
    """

    bits: int = 4
    strategy: str = "plan"
    percentile: float = 0.95
    levels: int = 255
    grad_levels: int | None = None
    acc_bits: int = 32
    tally: dict[str, GemmTally] = field(default_factory=lambda: defaultdict(GemmTally))

    def __post_init__(self) -> None:
        self.bits = _check_bits(self.bits, "bits", 2, 16)
        self.acc_bits = _check_bits(self.acc_bits, "acc_bits", 2 * self.bits, 64)
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, (int, float)) \
                or not 0 < float(self.percentile) <= 1:
            raise ConfigError(f"percentile must be in (0, 1], got {self.percentile!r}")
        self.levels = _check_bits(self.levels, "levels", 1, 1 << 30)
        if self.grad_levels is not None:
            self.grad_levels = _check_bits(self.grad_levels, "grad_levels", 1, 1 << 30)

    @property
    def datapath(self) -> Datapath:
        """The low-bit datapath: ``int{bits} x int{bits} -> acc{acc_bits}``, overflow raises."""
        t = IntType(self.bits)
        return Datapath(a=t, b=t, acc_bits=self.acc_bits, overflow="raise")

    def describe(self) -> str:
        """One line naming the quantizer and the datapath."""
        g = self.levels if self.grad_levels is None else self.grad_levels
        return (f"per-tensor percentile quantizer p = {self.percentile}, D = {self.levels} (output gradients "
                f"D = {g}); IM-Unpack '{self.strategy}' on int{self.bits} x int{self.bits} -> acc{self.acc_bits}")

    def __call__(self, g: TrainingGemm) -> np.ndarray:
        grad_levels = self.levels if self.grad_levels is None else self.grad_levels
        la = grad_levels if g.role == "grad_a" else self.levels
        lb = grad_levels if g.role == "grad_b" else self.levels
        qa = quantize_rtn(g.a, la, self.percentile)
        qb = quantize_rtn(g.b, lb, self.percentile)
        try:
            r = unpack_matmul(qa.values, qb.values, self.datapath, self.strategy, self.strategy)
        except AccumulatorOverflow as exc:
            raise AccumulatorOverflow(f"layer {g.layer} {g.name} {g.role}: {exc}", index=exc.index, k=exc.k,
                                      value=exc.value, bits=exc.bits) from None
        want = exact_product(qa.values, qb.values)
        if r.is_wide or not np.array_equal(r.values, want):
            raise RuntimeError(f"layer {g.layer} {g.name} {g.role}: the unpacked product differs from the "
                               "int64 product")
        t = self.tally[g.kind]
        m, k, n = g.shape
        m2, k2, n2 = r.unpacked_shape
        t.gemms += 1
        t.macs += m * k * n
        t.work += m2 * k2 * n2
        t.low_bit_gemms += r.n_gemms
        t.exact += 1
        return r.values.astype(np.float64) / (float(qa.scale) * float(qb.scale))


def _reference_training() -> Any:
    try:
        import intsim_reference.training as ref
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ModelNotInstalledError(f"the float64 reference (intsim_reference) is needed ({exc})") from None
    return ref


def integer_training_step(model: MiniLMReference, input_ids: Any, attention_mask: Any,
                          pairs: Sequence[tuple[int, int]], labels: Any,
                          gemm: UnpackGemm | None = None) -> tuple[TrainingStep, UnpackGemm]:
    """The training step of :func:`intsim_reference.training.training_step` with every GEMM run by
    ``gemm`` (default ``UnpackGemm()``: 4-bit multipliers, p = 0.95, D = 255, strategy ``plan``).

    Returns the step (loss, gradients, ...; its ``gemms`` list is empty) and ``gemm`` with its tallies.

    >>> from intsim_reference.training import random_model
    >>> m = random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20, seed=1)
    >>> s, g = integer_training_step(m, np.array([[1, 3, 2], [1, 4, 2]]), np.ones((2, 3), int), [(0, 1)], [1.0])
    >>> sorted(g.tally), len(s.gradients)
    (['attention', 'attention_grad', 'forward', 'input_grad', 'weight_grad'], 18)
    """
    ref = _reference_training()
    run = UnpackGemm() if gemm is None else gemm
    if not isinstance(run, UnpackGemm):
        raise ConfigError(f"gemm must be an UnpackGemm, got {type(run).__name__}")
    step = ref.training_step(model, input_ids, attention_mask, pairs, labels, gemm=run, keep_gemms=False)
    return step, run
