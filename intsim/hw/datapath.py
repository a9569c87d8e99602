"""The emulated integer datapath: b-bit multipliers feeding accumulator registers.

A :class:`Datapath` describes the hardware; :func:`intsim.matmul` runs a GEMM on it.

Semantics, for each output (i, j) of ``A (M x K) @ B (K x N)``:

0. with zero points (``matmul(..., a_zero_point=, b_zero_point=)``, as ONNX ``MatMulInteger``
   defines them) and ``zero_points="operands"`` (the default), each operand is shifted before
   the multipliers: they receive ``A[i, k] - a_zp[i]`` and ``B[k, j] - b_zp[j]``, exact signed
   integers one bit wider than ``a`` and ``b`` (a subtractor per operand as it enters the array);
   ``a`` and ``b`` are then the types of the *stored* operands and of the zero points;
1. every multiplier forms the exact product ``A[i, k] * B[k, j]`` of an a-operand
   (``a``, an :class:`~intsim.IntType` of 1 to 32 bits) and a b-operand (``b``);
2. products are taken in ascending k; each group of ``k_chunk`` consecutive
   products (the last group may be shorter) is summed exactly by an adder tree;
3. if ``chunk_bits`` is set, the tree output is a ``chunk_bits``-wide signed
   register under its own policy ``chunk_overflow``;
4. the group sum is added into a signed ``acc_bits``-wide accumulator register
   (1 to 64 bits) that starts at 0 or at the column's bias;
5. after every add the overflow policy applies: ``wrap`` (two's complement,
   modulo 2**acc_bits), ``saturate`` (clamp to the register range and go on) or
   ``raise`` (:class:`~intsim.core.errors.AccumulatorOverflow`);
6. with zero points and ``zero_points="correction"``, steps 1 to 5 run on the *raw* operands and
   one more add, after the last product, puts the exact correction
   ``K * a_zp[i] * b_zp[j] - a_zp[i] * sum_k B[k, j] - b_zp[j] * sum_k A[i, k]`` into the
   accumulator under its policy (the gemmlowp / MLAS scheme: row and column sums).

Both schemes give the same exact result ``(A - a_zp) @ (B - b_zp)`` when no register overflows;
they differ in what the adder tree and the accumulator see on the way.

The two registers are the steps ``"tree"`` (3.) and ``"acc"`` (4. and 6.) of the overflow events of
:attr:`GemmResult.events <intsim.hw.gemm.GemmResult.events>`; the numba kernels receive the
policies as :data:`intsim.core.overflow.POLICY_CODE`.

:meth:`Datapath.vpmaddubsw` is the x86 ``VPMADDUBSW`` datapath of ONNX Runtime's u8 x s8 QGEMM
on CPUs without VNNI: ``a=IntType(8, signed=False)``, ``b=IntType(8)``, ``k_chunk=2``,
``chunk_bits=16``, ``chunk_overflow="saturate"`` (each pair of adjacent products summed with
int16 saturation), an int32 accumulator that wraps, and the zero points applied by correction
(the pairs are formed from the raw operands).

>>> from intsim import Datapath, IntType
>>> dp = Datapath(a=IntType(4), b=IntType(4), acc_bits=16, overflow="wrap")
>>> dp.acc.min, dp.acc.max
(-32768, 32767)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.arrays import short_repr
from ..core.errors import ConfigError
from ..core.inttype import IntType

__all__ = ["Datapath", "OVERFLOW_POLICIES", "ZERO_POINT_SCHEMES", "overflow_policy", "as_datapath"]

OVERFLOW_POLICIES: tuple[str, ...] = ("wrap", "saturate", "raise")

#: Where :func:`intsim.matmul` applies zero points: shifted ``"operands"`` before the multipliers, or a
#: ``"correction"`` added to the accumulator after the last product (see the module docs).
ZERO_POINT_SCHEMES: tuple[str, ...] = ("operands", "correction")

_POLICY_ALIASES = {
    "wrap": "wrap", "ap_wrap": "wrap",
    "saturate": "saturate", "sat": "saturate", "ap_sat": "saturate", "clamp": "saturate",
    "raise": "raise", "error": "raise",
}


def overflow_policy(name: str) -> str:
    """Canonical overflow policy name (``wrap``, ``saturate`` or ``raise``).

    APyTypes/ap_fixed spellings (``WRAP``, ``SAT``, ``AP_SAT``) and ``error`` are accepted.

    >>> overflow_policy("SAT"), overflow_policy("error")
    ('saturate', 'raise')
    """
    if isinstance(name, str):
        key = name.strip().lower()
        if key in _POLICY_ALIASES:
            return _POLICY_ALIASES[key]
    raise ConfigError(f"unknown overflow policy {name!r}; valid: {', '.join(OVERFLOW_POLICIES)} "
                      "(aliases: SAT, AP_SAT, AP_WRAP, error)")


def _int_in(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {short_repr(value)}")
    if not lo <= int(value) <= hi:
        raise ConfigError(f"{name} must be from {lo} to {hi}, got {value}")
    return int(value)


def as_datapath(dp: Any, name: str = "datapath", *, default: bool = True) -> Datapath:
    """``dp`` if it is a :class:`Datapath` (``None`` gives ``Datapath()`` when ``default``);
    anything else raises :class:`~intsim.core.errors.ConfigError` saying what was passed and, for an
    integer type name such as ``"int8"``, the Datapath it probably meant.

    >>> try:
    ...     as_datapath("int8")
    ... except ConfigError as exc:
    ...     print(str(exc).split("; ")[1])
    for int8 x int8 operands pass Datapath(a=IntType(8), b=IntType(8))
    """
    if dp is None and default:
        return Datapath()
    if isinstance(dp, Datapath):
        return dp
    hint = "e.g. Datapath(a=IntType(8), b=IntType(8), acc_bits=32)"
    if isinstance(dp, (str, IntType)):
        try:
            t = IntType.parse(dp)
        except ConfigError:
            pass
        else:
            arg = f"IntType({t.bits}{'' if t.signed else ', signed=False'})"
            hint = f"for {t.name} x {t.name} operands pass Datapath(a={arg}, b={arg})"
    raise ConfigError(f"{name} must be an intsim.Datapath, got {type(dp).__name__} {short_repr(dp)}; {hint}")


@dataclass(frozen=True)
class Datapath:
    """A b-bit multiplier array with accumulator registers (see the module docs).

    Parameters
    ----------
    a, b:
        Operand types of the multipliers' two inputs, 1 to 32 bits each, signed or unsigned.
        An ``"int8"``-style name is accepted too.
    acc_bits:
        Width of the signed accumulator register, 1 to 64 bits.
    overflow:
        ``"wrap"``, ``"saturate"`` or ``"raise"``, applied after every accumulator add.
    k_chunk:
        Number of consecutive products summed exactly by an adder tree before each
        accumulator add (1: a plain MAC chain).
    chunk_bits, chunk_overflow:
        Optional width (1 to 64 bits, signed) and policy of the adder tree's output;
        ``None`` (default) means the tree output is exact. ``chunk_overflow=None``
        uses ``overflow``.
    zero_points:
        Where zero points given to :func:`intsim.matmul` are applied: ``"operands"`` (default;
        subtracted from the operands before the multipliers, which then see ``a.bits + 1`` and
        ``b.bits + 1``-bit signed values) or ``"correction"`` (the datapath multiplies the raw
        operands; row and column sums correct the accumulator after the last product). Without
        zero points it has no effect.
    """

    a: IntType = IntType(8)
    b: IntType = IntType(8)
    acc_bits: int = 32
    overflow: str = "raise"
    k_chunk: int = 1
    chunk_bits: int | None = None
    chunk_overflow: str | None = None
    zero_points: str = "operands"

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            t = getattr(self, name)
            if isinstance(t, str):
                t = IntType.parse(t)
                object.__setattr__(self, name, t)
            if not isinstance(t, IntType):
                raise ConfigError(f"Datapath {name} must be an IntType or a name such as 'int8', "
                                  f"got {type(t).__name__} {short_repr(t)}")
            if t.bits > 32:
                raise ConfigError(f"Datapath operand {name} may have 1 to 32 bits, got {t.name} "
                                  f"({t.bits} bits); products must fit a 64-bit accumulator")
        object.__setattr__(self, "acc_bits", _int_in("acc_bits", self.acc_bits, 1, 64))
        object.__setattr__(self, "overflow", overflow_policy(self.overflow))
        object.__setattr__(self, "k_chunk", _int_in("k_chunk", self.k_chunk, 1, 1 << 30))
        if self.chunk_bits is not None:
            object.__setattr__(self, "chunk_bits", _int_in("chunk_bits", self.chunk_bits, 1, 64))
        if self.chunk_overflow is not None:
            if self.chunk_bits is None:
                raise ConfigError("chunk_overflow needs chunk_bits (the adder tree output width)")
            object.__setattr__(self, "chunk_overflow", overflow_policy(self.chunk_overflow))
        if not isinstance(self.zero_points, str) or self.zero_points not in ZERO_POINT_SCHEMES:
            raise ConfigError(f"zero_points must be one of {', '.join(ZERO_POINT_SCHEMES)}, "
                              f"got {short_repr(self.zero_points)}")

    @classmethod
    def vpmaddubsw(cls, overflow: str = "wrap") -> Datapath:
        """The datapath of ONNX Runtime's u8 x s8 QGEMM on x86 CPUs without VNNI (MLAS).

        ``MlasGemmU8S8KernelAvx2`` (``onnxruntime/core/mlas/lib/x86_64/QgemmU8X8KernelAvx2.S``,
        macro ``MultiplyAccumulateRowU8S8Avx2``) and ``MlasGemmU8S8KernelAvx512Core``
        (``QgemmU8X8KernelAvx512Core.S``) multiply the raw operands, uint8 A by int8 B, with
        ``VPMADDUBSW``: the products of k = 2q and 2q + 1 are summed and saturated to int16; then
        ``VPMADDWD`` by ones adds two such words exactly into int32 and ``VPADDD`` adds that into
        the int32 accumulator, modulo 2**32. K is padded with zeros to a multiple of 4
        (``MlasGemmU8S8CopyPackAAvx2``/``CopyPackBAvx2`` in ``QgemmU8S8KernelAvx2.S``), so the pairs
        are (0, 1), (2, 3), ... and an odd K leaves its last product alone. The zero points are
        folded in through row sums of A and column sums of B (``onnxruntime/core/mlas/lib/qgemm.h``,
        ``MlasGemmQuantOperation``), modulo 2**32. MLAS selects these kernels on CPUs with AVX2 but
        neither AVX-VNNI nor AVX512-VNNI nor AMX (``onnxruntime/core/mlas/lib/platform.cpp``):
        Intel Haswell to Comet Lake, Skylake-SP/X (AVX-512 without VNNI), AMD Zen 1 to 3. The GEMV
        kernel (one row, no zero point: ``QgemvU8S8KernelAvx2.S``) forms the same pairs.

        As a :class:`Datapath`: ``a=uint8``, ``b=int8``, ``k_chunk=2`` with a 16-bit saturating
        tree, a 32-bit accumulator under ``overflow`` (``"wrap"``, the hardware's behaviour, by
        default) and ``zero_points="correction"``. Each accumulator add takes one pair instead of the
        hardware's two; by wrap-around arithmetic the final register is the same.

        >>> dp = Datapath.vpmaddubsw()
        >>> dp.describe()
        'uint8 x int8 -> acc32 (wrap), k_chunk=2, tree 16 bits (saturate), zero points by correction'
        """
        return cls(a=IntType(8, signed=False), b=IntType(8), acc_bits=32, overflow=overflow, k_chunk=2,
                   chunk_bits=16, chunk_overflow="saturate", zero_points="correction")

    @property
    def acc(self) -> IntType:
        """The accumulator register type, ``IntType(acc_bits)`` (always signed)."""
        return IntType(self.acc_bits)

    @property
    def chunk_policy(self) -> str:
        """The policy applied to the adder-tree output (``overflow`` unless set)."""
        return self.chunk_overflow or self.overflow

    @property
    def product_bits(self) -> int:
        """Width of a signed register that holds every exact product."""
        both_unsigned = not self.a.signed and not self.b.signed
        return self.a.bits + self.b.bits + (1 if both_unsigned else 0)

    def tree_bits(self) -> int:
        """Width of the adder tree's output: ``chunk_bits`` or the exact width for k_chunk products."""
        if self.chunk_bits is not None:
            return self.chunk_bits
        return self.product_bits + (self.k_chunk - 1).bit_length()

    def describe(self) -> str:
        """One line, e.g. ``int8 x int8 -> acc32 (raise), k_chunk=1``."""
        s = f"{self.a} x {self.b} -> acc{self.acc_bits} ({self.overflow}), k_chunk={self.k_chunk}"
        if self.chunk_bits is not None:
            s += f", tree {self.chunk_bits} bits ({self.chunk_policy})"
        if self.zero_points != "operands":
            s += f", zero points by {self.zero_points}"
        return s
