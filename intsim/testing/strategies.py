"""Hypothesis strategies for property-testing an integer datapath against intsim.

Each strategy draws values where integer bugs live, and shrinks toward the smallest such value:

=============================  ====================================================================
strategy                       draws
=============================  ====================================================================
:func:`int_types`              an :class:`~intsim.IntType` (width and signedness)
:func:`interesting_values`     an int of a type: its extremes (the most negative value first among
                               them), 0 and +-1, half-range values, exact rounding ties of a scale,
                               the boundaries you name and one step either side, or any value
:func:`ties`                   (a plain function) every input of a type at which ``x * scale`` is
                               exactly halfway between two integers, nearest 0 and the ends first
:func:`int_arrays`             a numpy array of a type: element-wise interesting values, constant
                               arrays, corner patterns, heavy-tailed matrices with outlier channels
:func:`heavy_tailed_arrays`    a power-law body with heavy hitters and outlier channels
:func:`datapaths`              a :class:`~intsim.Datapath`: operand types, accumulator width (often
                               narrow enough to overflow), policy, adder-tree chunking
:func:`matmul_operands`        ``(A, B)`` for a datapath, one output of which often lands exactly on
                               the accumulator's overflow boundary (its largest value, or one past)
:func:`dyadics`                a :class:`~intsim.Dyadic` multiplier ``m / 2**k``
:func:`float_scales`           a positive float scale (powers of two, ``1/127``-style and arbitrary)
:func:`requant_scales`         a scale as a requantization mode takes it (TFLite's shift range,
                               float32-finite scales for the float32 runtimes, Dyadics for ``dyadic``)
:func:`requant_params`         the keyword arguments of :func:`intsim.requantize` for a mode: scale,
                               rounding (only where the mode takes one), output and input types,
                               zero point (never for Gemmini), order, overflow policy
:func:`op_inputs`              ``(tensors, kwargs)`` for any operator of :mod:`intsim.ops.registry`
                               (``ibert.softmax``...): its tensors and its scales, callable as
                               ``fn(**tensors, **kwargs)``
:func:`golden_cases`           a whole golden-vector case (:class:`GoldenCase`: operator, config,
                               shapes, the input distributions and a seed) for ``matmul``,
                               ``requantize`` or any registered operator
=============================  ====================================================================

Any argument that fixes a value also takes a strategy, drawn from in its place.

>>> import numpy as np
>>> from hypothesis import given
>>> from intsim import IntType, requantize
>>> from intsim.testing import strategies as its
>>> @given(its.int_arrays(IntType(32), ties=0.5), its.requant_params("dyadic", in_type="int32"))
... def test_requantize_stays_in_range(x, params):
...     y = requantize(x, **{**params, "overflow": "wrap"}).values
...     assert params["out"].min <= y.min() and y.max() <= params["out"].max
>>> test_requantize_stays_in_range()

The golden cases are what :func:`intsim.testing.check_against` searches: every input tensor is
drawn from a golden-suite distribution (``constant`` at an interesting value, a narrow
``uniform`` range around one, a corner set, ``heavy_tailed``) with the case's seed, so every case
it draws, the shrunk counterexample included, can be written as a golden suite and recomputed
by ``intsim golden verify``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ..core.dyadic import Dyadic, quantize_multiplier
from ..core.errors import ConfigError, IntsimError
from ..core.inttype import IntType
from ..core.rounding import ROUNDING_MODES
from ..golden.datagen import generate, normalize_dist
from ..golden.operators import MatmulOperator, RequantizeOperator, get_operator
from ..golden.spec import CaseSpec
from ..golden.suite import generate_suite, make_inputs
from ..hw.datapath import OVERFLOW_POLICIES, Datapath
from ..ops.registry import get_op, operators
from ..quant.requant import REQUANT_MODES

__all__ = [
    "int_types", "interesting_values", "ties", "int_arrays", "heavy_tailed_arrays", "datapaths",
    "matmul_operands", "dyadics", "float_scales", "requant_scales", "requant_params", "operator_names",
    "op_inputs", "input_distributions", "golden_cases", "GoldenCase",
]

Drawable = Any  # a value, or a hypothesis strategy drawing one

_ORDERS = ("round_then_saturate", "clamp_then_round")


def _draw(draw: Callable[[SearchStrategy], Any], v: Any) -> Any:
    """``v`` itself, or a value drawn from it when it is a strategy."""
    return draw(v) if isinstance(v, SearchStrategy) else v


def _int_arg(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {v!r}")
    return int(v)


def _type(t: Any, name: str = "t") -> IntType:
    if isinstance(t, IntType):
        return t
    if isinstance(t, str):
        return IntType.parse(t)
    raise ConfigError(f"{name} must be an IntType or a name such as 'int8', got {t!r}")


# --------------------------------------------------------------------------------------------------
# types and values
# --------------------------------------------------------------------------------------------------


def int_types(min_bits: int = 1, max_bits: int = 64, signed: bool | None = None) -> SearchStrategy[IntType]:
    """Integer types of ``min_bits`` to ``max_bits`` bits; ``signed`` None draws both signednesses.

    Shrinks toward the narrowest signed type.

    >>> from hypothesis import find
    >>> find(int_types(4, 16), lambda t: not t.signed)
    IntType(bits=4, signed=False)
    """
    lo = _int_arg(min_bits, "min_bits", 1, 64)
    hi = _int_arg(max_bits, "max_bits", lo, 64)
    if signed is not None and not isinstance(signed, bool):
        raise ConfigError(f"signed must be True, False or None, got {signed!r}")
    signs = st.just(signed) if signed is not None else st.booleans().map(lambda b: not b)
    return st.builds(IntType, st.integers(lo, hi), signs)


def ties(scale: Any, t: IntType | str, limit: int = 4) -> list[int]:
    """The inputs ``x`` of type ``t`` at which ``x * scale`` is exactly halfway between two
    integers (a rounding tie), sorted: the ``limit`` ties nearest 0 on each side and the
    ``limit`` nearest each end of the type. Empty when the scale has no ties (an integer scale,
    or an odd denominator).

    ``scale`` is a :class:`~intsim.Dyadic`, a float (taken exactly), a ``Fraction`` or an int;
    the ties are those of the exact product (the rounding step of every requantization mode
    sees the exact ``x * m / 2**k`` in ``dyadic`` and the TFLite modes).

    >>> ties(Dyadic(3, 2), "int8", limit=2)      # 3x/4 = n + 1/2
    [-126, -122, -6, -2, 2, 6, 122, 126]
    >>> ties(0.5, "uint4", limit=1)
    [1, 15]
    """
    t = _type(t)
    limit = _int_arg(limit, "limit", 1, 1 << 20)
    if isinstance(scale, Dyadic):
        frac = scale.fraction
    elif isinstance(scale, (bool, np.bool_)):
        raise ConfigError(f"scale must be a Dyadic, a float, a Fraction or an int, got {scale!r}")
    elif isinstance(scale, (int, float, Fraction, np.integer, np.floating)):
        if isinstance(scale, (float, np.floating)) and not math.isfinite(float(scale)):
            raise ConfigError(f"scale must be finite, got {scale!r}")
        frac = Fraction(scale) if not isinstance(scale, np.generic) else Fraction(scale.item())
    else:
        raise ConfigError(f"scale must be a Dyadic, a float, a Fraction or an int, got {scale!r}")
    p, q = frac.numerator, frac.denominator
    # x p / q = n + 1/2  <=>  2 p x = q (mod 2q)
    a, mod = (2 * p) % (2 * q), 2 * q
    g = math.gcd(a, mod)
    if p == 0 or q % g:
        return []
    period = mod // g
    x0 = (q // g) * pow(a // g, -1, period) % period if period > 1 else 0
    out: set[int] = set()

    def run(start: int, step: int) -> None:
        x = start
        for _ in range(limit):
            if not t.min <= x <= t.max:
                break
            out.add(x)
            x += step

    first_pos = x0 if x0 > 0 else x0 + period      # smallest positive tie
    run(first_pos, period)
    run(first_pos - period, -period)                  # largest tie <= 0
    top = t.max - ((t.max - x0) % period)
    run(top, -period)
    bottom = t.min + ((x0 - t.min) % period)
    run(bottom, period)
    return sorted(out)


def _special_values(t: IntType, lo: int, hi: int, extra: Iterable[int]) -> list[int]:
    """Interesting values of ``t`` within [lo, hi], smallest magnitude first (what shrinking prefers):
    0, +-1, +-2, ``extra`` (boundaries), half-range values, the extremes and one step inside them."""
    cands = [0, 1, -1, 2, -2, t.max // 2 + 1, t.max // 2, t.min // 2, t.min, t.max, t.min + 1, t.max - 1]
    cands += [int(v) for v in extra]
    seen = sorted({v for v in cands if lo <= v <= hi}, key=lambda v: (abs(v), v > 0))
    return seen or [lo]


def _boundary_values(boundaries: Iterable[int]) -> list[int]:
    out = []
    for b in boundaries:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise ConfigError(f"boundaries must be integers, got {b!r}")
        out += [int(b), int(b) - 1, int(b) + 1]
    return out


def _tie_values(t: IntType, scales: Any) -> list[int]:
    if scales is None:
        return []
    if isinstance(scales, (list, tuple)):
        out: list[int] = []
        for s in scales:
            out += ties(s, t)
        return out
    return ties(scales, t)


def interesting_values(t: IntType | str, *, ties: Any = None, boundaries: Iterable[int] = (),
                       low: int | None = None, high: int | None = None) -> SearchStrategy[int]:
    """Python ints of type ``t`` (within ``[low, high]`` when given), half of them drawn from
    the places bugs live: 0, +-1, the extremes and one step inside them, half-range values,
    the exact rounding ties of ``ties`` (a scale or a list of scales, see :func:`ties`) and
    every value of ``boundaries`` with one step either side (e.g. an accumulator's largest
    value divided by a product); the other half uniformly over the range. Shrinks toward 0
    and then toward those special values.

    >>> from hypothesis import find
    >>> find(interesting_values("int8"), lambda v: v < -127)
    -128
    >>> find(interesting_values("int16", ties=Dyadic(1, 3)), lambda v: v > 0 and v * 1 % 8 == 4)
    4
    """
    t = _type(t)
    lo = t.min if low is None else max(t.min, int(low))
    hi = t.max if high is None else min(t.max, int(high))
    if lo > hi:
        raise ConfigError(f"interesting_values: empty range [{lo}, {hi}] for {t.name}")
    special = _special_values(t, lo, hi, _boundary_values(boundaries))
    tie_vals = sorted({v for v in _tie_values(t, ties) if lo <= v <= hi}, key=lambda v: (abs(v), v > 0))
    if tie_vals:
        return st.one_of(st.sampled_from(special), st.sampled_from(tie_vals), st.integers(lo, hi))
    return st.one_of(st.sampled_from(special), st.integers(lo, hi))


_SHAPES = {"min_dims": 1, "max_dims": 2, "min_side": 1, "max_side": 6}


def _shape_strategy(shape: Any, max_dims: int = 2, max_side: int = 6) -> SearchStrategy[tuple[int, ...]]:
    if shape is None:
        return st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims).map(tuple)
    if isinstance(shape, SearchStrategy):
        return shape.map(lambda s: tuple(int(d) for d in s))
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ConfigError(f"shape must have non-negative dimensions, got {shape!r}")
    return st.just(dims)


def heavy_tailed_arrays(t: IntType | str, shape: Any = None, *, outlier_rate: Drawable = None,
                        outlier_channels: Drawable = None, scale_bits: Drawable = None) -> SearchStrategy[np.ndarray]:
    """Heavy-tailed arrays of type ``t`` (dtype ``t.dtype``): a power-law body of magnitude
    about ``2**scale_bits`` plus heavy hitters (the top or bottom half of the range) at rate
    ``outlier_rate``, and whole outlier channels (last axis), as the golden generator's
    ``heavy_tailed`` distribution draws them (:mod:`intsim.golden.datagen`) from a drawn seed.

    >>> from hypothesis import find
    >>> a = find(heavy_tailed_arrays("int8", (4, 16), outlier_channels=1), lambda a: True)
    >>> a.shape, a.dtype.name, bool((np.abs(a.astype(int)) >= 63).all(axis=0).any())
    ((4, 16), 'int8', True)
    """
    t = _type(t)
    mbits = t.bits - 1 if t.signed else t.bits

    @st.composite
    def build(draw: Any) -> np.ndarray:
        dims = draw(_shape_strategy(shape))
        sb = _draw(draw, scale_bits) if scale_bits is not None else draw(st.integers(0, max(0, mbits // 2)))
        rate = (_draw(draw, outlier_rate) if outlier_rate is not None
                else draw(st.sampled_from([0.0, 0.01, 0.05, 0.25, 1.0])))
        ch = _draw(draw, outlier_channels) if outlier_channels is not None else draw(st.integers(0, 2))
        dist = normalize_dist({"dist": "heavy_tailed", "scale_bits": sb, "outlier_rate": rate,
                               "outlier_channels": ch}, t, "heavy_tailed_arrays")
        return generate(t, dims, dist, draw(st.integers(0, 2**32 - 1)), "x")

    return build()


def int_arrays(t: IntType | str, shape: Any = None, *, ties: Any = None, boundaries: Iterable[int] = (),
               low: int | None = None, high: int | None = None, max_dims: int = 2, max_side: int = 6,
               heavy_tailed: bool = True) -> SearchStrategy[np.ndarray]:
    """Integer arrays of type ``t`` (dtype ``t.dtype``, C order) biased toward the places bugs live.

    ``shape`` is a fixed shape, a strategy, or None (1 to ``max_dims`` dimensions of 1 to
    ``max_side``). The arrays are, by turns: element-wise :func:`interesting_values` (with the
    given ``ties``, ``boundaries``, ``low`` and ``high``); a constant array of one such value;
    the corner patterns of the golden generator (all most-negative, all most-positive, a
    checkerboard of the extremes); and (when ``heavy_tailed`` and the range is the whole type)
    :func:`heavy_tailed_arrays`. Shrinks toward small all-zero arrays.

    >>> from hypothesis import find
    >>> a = find(int_arrays("int8", (2, 2)), lambda a: (a == -128).any())
    >>> a.dtype.name, a.shape, int(a.min())
    ('int8', (2, 2), -128)
    """
    t = _type(t)
    lo = t.min if low is None else max(t.min, int(low))
    hi = t.max if high is None else min(t.max, int(high))
    values = interesting_values(t, ties=ties, boundaries=boundaries, low=lo, high=hi)
    shapes = _shape_strategy(shape, max_dims, max_side)

    @st.composite
    def elementwise(draw: Any) -> np.ndarray:
        dims = draw(shapes)
        n = math.prod(dims)
        vals = draw(st.lists(values, min_size=n, max_size=n))
        return np.array(vals, dtype=object).astype(t.dtype).reshape(dims)

    @st.composite
    def constant(draw: Any) -> np.ndarray:
        return np.full(draw(shapes), draw(values), dtype=t.dtype)

    @st.composite
    def corner(draw: Any) -> np.ndarray:
        dims = draw(shapes)
        kinds = [k for k, ok in (("most_negative", lo <= t.min), ("most_positive", hi >= t.max),
                                 ("alternating", lo <= t.min and hi >= t.max)) if ok]
        if not kinds:
            return np.full(dims, lo, dtype=t.dtype)
        return generate(t, dims, {"dist": draw(st.sampled_from(kinds))}, 0, "x")

    branches = [elementwise(), constant(), corner()]
    if heavy_tailed and lo == t.min and hi == t.max:
        branches.append(heavy_tailed_arrays(t, shapes))
    return st.one_of(*branches)


# --------------------------------------------------------------------------------------------------
# datapaths and matmul operands
# --------------------------------------------------------------------------------------------------


def datapaths(a: Drawable = None, b: Drawable = None, acc_bits: Drawable = None, overflow: Drawable = None,
              k_chunk: Drawable = None, chunk_bits: Drawable = None, chunk_overflow: Drawable = None, *,
              max_operand_bits: int = 16) -> SearchStrategy[Datapath]:
    """:class:`~intsim.Datapath` configurations. Unset fields are drawn: operand types of 1 to
    ``max_operand_bits`` bits (signed or not), an accumulator width that is half the time
    narrow enough for a short dot product to overflow (``a.bits + b.bits - 2`` to ``+ 4``
    bits) and otherwise anything from 1 to 64 bits, every overflow policy, ``k_chunk`` 1 to 4
    and, now and then, an adder tree of its own width and policy.

    >>> from hypothesis import find
    >>> find(datapaths(a="int8", b="int8", overflow="saturate"), lambda dp: dp.acc_bits < 16).acc_bits
    1
    """
    mob = _int_arg(max_operand_bits, "max_operand_bits", 1, 32)

    @st.composite
    def build(draw: Any) -> Datapath:
        ta = _type(_draw(draw, a), "a") if a is not None else draw(int_types(1, mob))
        tb = _type(_draw(draw, b), "b") if b is not None else draw(int_types(1, mob))
        if acc_bits is not None:
            acc = _draw(draw, acc_bits)
        else:
            narrow = st.integers(max(1, ta.bits + tb.bits - 2), min(64, ta.bits + tb.bits + 4))
            acc = draw(st.one_of(st.integers(1, 64), narrow, st.sampled_from([32, 16, 64])))
        pol = _draw(draw, overflow) if overflow is not None else draw(st.sampled_from(OVERFLOW_POLICIES))
        kc = _draw(draw, k_chunk) if k_chunk is not None else draw(st.sampled_from([1, 1, 2, 4, 3]))
        if chunk_bits is not None:
            cb = _draw(draw, chunk_bits)
        else:
            cb = draw(st.one_of(st.none(), st.integers(max(1, ta.bits + tb.bits - 2), 64))) if kc > 1 else None
        co = _draw(draw, chunk_overflow) if chunk_overflow is not None else (
            draw(st.sampled_from([None, *OVERFLOW_POLICIES])) if cb is not None else None)
        return Datapath(a=ta, b=tb, acc_bits=acc, overflow=pol, k_chunk=kc, chunk_bits=cb, chunk_overflow=co)

    return build()


def _cands(t: IntType) -> list[int]:
    vals = {t.min, t.max, 1, -1, 2, -2, t.max // 2, t.min // 2}
    p = 4
    while p <= max(t.max, -t.min):
        vals |= {p, -p, p - 1, -(p - 1)}
        p <<= 4
    return sorted((v for v in vals if v and t.min <= v <= t.max), key=lambda v: -abs(v))


def boundary_dot(dp: Datapath, K: int, target: int) -> tuple[list[int], list[int]] | None:
    """A row ``a`` (K entries of type ``dp.a``) and a column ``b`` (of ``dp.b``) whose exact dot
    product is ``target`` with every partial sum on the way between 0 and ``target`` (the
    largest products first), or None when K products cannot reach it."""
    ca, cb = _cands(dp.a), _cands(dp.b)
    ra: list[int] = []
    rb: list[int] = []
    r = int(target)
    while r and len(ra) < K:
        best = None
        for x in ca:
            y = abs(r) // abs(x) * (1 if (r > 0) == (x > 0) else -1)
            y = min(max(y, dp.b.min), dp.b.max)
            p = x * y
            if y == 0 or (p > 0) != (r > 0) or abs(p) > abs(r):
                continue
            if best is None or abs(p) > abs(best[0] * best[1]):
                best = (x, y)
        if best is None:
            for y in cb:
                x = abs(r) // abs(y) * (1 if (r > 0) == (y > 0) else -1)
                x = min(max(x, dp.a.min), dp.a.max)
                if x and (x * y > 0) == (r > 0) and abs(x * y) <= abs(r):
                    best = (x, y)
                    break
        if best is None:
            return None
        ra.append(best[0])
        rb.append(best[1])
        r -= best[0] * best[1]
    if r:
        return None
    ra += [0] * (K - len(ra))
    rb += [0] * (K - len(rb))
    return ra, rb


def matmul_operands(dp: Datapath, M: Drawable = None, K: Drawable = None, N: Drawable = None, *,
                    max_dim: int = 4, max_k: int = 16) -> SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """``(A, B)`` for ``matmul(A, B, dp)``: ``A`` (M x K) of ``dp.a`` and ``B`` (K x N) of ``dp.b``
    (their dtypes), entries from :func:`int_arrays`; half the time one output (i, j) is built
    so that its exact sum is the accumulator's largest or smallest value, or one past it (the
    overflow boundary), when K products can reach it. Unset dimensions are drawn (1 to
    ``max_dim``, K 1 to ``max_k``).

    >>> from hypothesis import find
    >>> from intsim import matmul
    >>> dp = Datapath(a=IntType(8), b=IntType(8), acc_bits=16, overflow="wrap")
    >>> A, B = find(matmul_operands(dp), lambda ab: int((ab[0].astype(int) @ ab[1].astype(int)).max()) == 2**15)
    >>> matmul(A, B, dp).n_overflow >= 1
    True
    """
    if not isinstance(dp, Datapath):
        raise ConfigError(f"dp must be an intsim.Datapath, got {type(dp).__name__}")

    @st.composite
    def build(draw: Any) -> tuple[np.ndarray, np.ndarray]:
        m = _draw(draw, M) if M is not None else draw(st.integers(1, max_dim))
        k = _draw(draw, K) if K is not None else draw(st.integers(1, max_k))
        n = _draw(draw, N) if N is not None else draw(st.integers(1, max_dim))
        A = draw(int_arrays(dp.a, (m, k), heavy_tailed=True)).astype(dp.a.dtype)
        B = draw(int_arrays(dp.b, (k, n), heavy_tailed=True)).astype(dp.b.dtype)
        if m and n and k and draw(st.booleans()):
            acc = dp.acc
            target = draw(st.sampled_from([acc.max, acc.max + 1, acc.min, acc.min - 1]))
            pair = boundary_dot(dp, k, target)
            if pair is not None:
                i, j = draw(st.integers(0, m - 1)), draw(st.integers(0, n - 1))
                A = A.copy()
                B = B.copy()
                A[i, :] = np.array(pair[0], dtype=object).astype(dp.a.dtype)
                B[:, j] = np.array(pair[1], dtype=object).astype(dp.b.dtype)
        return A, B

    return build()


# --------------------------------------------------------------------------------------------------
# scales and requantization parameters
# --------------------------------------------------------------------------------------------------


def dyadics(m_bits: int = 31, max_k: int = 62, *, signed: bool = False) -> SearchStrategy[Dyadic]:
    """Dyadic multipliers ``m / 2**k``: ``m`` of at most ``m_bits`` magnitude bits (nonzero;
    negative too when ``signed``), ``0 <= k <= max_k``; ``m`` favours 1, powers of two, odd values
    and its largest value. Shrinks toward ``Dyadic(1, 0)``.

    >>> from hypothesis import find
    >>> find(dyadics(), lambda d: d.value == 0.5)
    Dyadic(m=1, k=1)
    """
    mb = _int_arg(m_bits, "m_bits", 1, 63)
    kmax = _int_arg(max_k, "max_k", 0, 127)
    top = (1 << mb) - 1
    special = sorted(v for v in {1, 3, 5, 7, top, 1 << (mb - 1), (1 << (mb - 1)) + 1, top - 2} if 1 <= v <= top)
    ks = st.one_of(st.integers(0, min(kmax, 12)), st.integers(0, kmax))

    @st.composite
    def build(draw: Any) -> Dyadic:
        k = draw(ks)
        # mostly scales below 4 (m < 2**(k + 2)), as requantization multipliers are
        near = min(top, 1 << (k + 2))
        m = draw(st.one_of(st.sampled_from([v for v in special if v <= near] or [1]), st.integers(1, near),
                           st.integers(1, top)))
        if signed and draw(st.booleans()):
            m = -m
        return Dyadic(m, k)

    return build()


def float_scales(min_value: float = 2.0**-20, max_value: float = 2.0**10) -> SearchStrategy[float]:
    """Positive float scales in ``[min_value, max_value]``: powers of two, ``1/127``-, ``1/255``- and
    decimal-style scales, and arbitrary floats (every one exactly representable in TOML text)."""
    lo, hi = float(min_value), float(max_value)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ConfigError(f"float_scales: need finite 0 < min_value <= max_value, got {min_value!r}, {max_value!r}")
    nice = [0.5, 0.25, 1.0, 0.1, 1 / 127, 1 / 255, 0.05, 0.02, 0.01, 2.0, 0.001, 0.75, 0.3, 1 / 3, 4.0, 0.125,
            2.0**-8, 2.0**-16, 8.0, 16.0]
    nice = [s for s in nice if lo <= s <= hi]
    arb = st.floats(lo, hi, allow_nan=False, allow_infinity=False).filter(lambda s: s > 0)
    return st.one_of(st.sampled_from(nice), arb) if nice else arb


def _tflite_ok(s: float, single: bool) -> bool:
    q, sh = quantize_multiplier(s, single_rounding=single)
    return q != 0 and -31 <= sh <= 30


def requant_scales(mode: str = "dyadic", *, dyadic_fraction: bool = True) -> SearchStrategy[Any]:
    """A scale as requantization ``mode`` accepts it: ``dyadic`` a :class:`~intsim.Dyadic` (or,
    with ``dyadic_fraction`` False, a float turned into one by ``Dyadic.from_float``); the TFLite
    modes a float whose multiplier and shift TFLite represents (shift -31 to 30, multiplier not
    flushed to zero); ``onnx_ref`` a float64; ``ort_fp32``/``gemmini_fp32`` a float finite in float32;
    ``onnx_refeval`` a float32 value (QLinearMatMul's multiplier is computed in float32);
    ``ort_div``/``onnx_refeval_div`` a divisor (QuantizeLinear's ``y_scale``), finite and nonzero in float32.
    """
    if mode not in REQUANT_MODES:
        raise ConfigError(f"unknown requantization mode {mode!r}; valid: {', '.join(REQUANT_MODES)}")
    if mode == "dyadic":
        return dyadics(31, 40) if dyadic_fraction else float_scales(2.0**-30, 2.0**8)
    if mode in ("tflite_double", "tflite_single"):
        single = mode == "tflite_single"
        return float_scales(2.0**-30, 2.0**8).filter(lambda s: _tflite_ok(s, single))
    if mode in ("ort_div", "onnx_refeval_div"):
        return float_scales(2.0**-8, 2.0**30).map(lambda s: float(np.float32(s)))
    if mode == "onnx_refeval":
        return float_scales(2.0**-30, 2.0**8).map(lambda s: float(np.float32(s)))
    return float_scales(2.0**-30, 2.0**8)


def _out_types(mode: str) -> list[IntType]:
    base = [IntType(8), IntType(8, signed=False), IntType(4), IntType(16), IntType(32), IntType(1, signed=False),
            IntType(4, signed=False), IntType(12)]
    return base


def _in_types(mode: str) -> list[IntType]:
    signed = [IntType(32), IntType(16), IntType(8), IntType(24)]
    # the float64 modes also take uint32 inputs exactly
    return signed + [IntType(32, signed=False)] if mode in ("dyadic", "onnx_ref", "onnx_refeval",
                                                           "onnx_refeval_div") else signed


def requant_params(mode: Drawable = None, *, scale: Drawable = None, rounding: Drawable = None, out: Drawable = None,
                   in_type: Drawable = None, zero_point: Drawable = None, order: Drawable = None,
                   overflow: Drawable = None) -> SearchStrategy[dict[str, Any]]:
    """Keyword arguments of :func:`intsim.requantize` (``scale``, ``rounding``, ``out``, ``mode``,
    ``in_type``, ``zero_point``, ``order``, ``overflow``), each valid for the mode: a rounding
    only for ``dyadic`` (any of :data:`intsim.ROUNDING_MODES`; None elsewhere: the runtime fixes
    it), :func:`requant_scales` of the mode, a zero point inside the output type (half the time
    0; always 0 for ``gemmini_fp32``), output types from 1 to 32 bits, int8 to int32 inputs.
    Any argument given fixes that key (a value or a strategy).

    >>> from hypothesis import find
    >>> p = find(requant_params("tflite_single"), lambda p: True)
    >>> p["mode"], p["rounding"], p["zero_point"], p["out"]
    ('tflite_single', None, 0, IntType(bits=8, signed=True))
    """

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        md = _draw(draw, mode) if mode is not None else draw(st.sampled_from(REQUANT_MODES))
        if md not in REQUANT_MODES:
            raise ConfigError(f"unknown requantization mode {md!r}; valid: {', '.join(REQUANT_MODES)}")
        sc = _draw(draw, scale) if scale is not None else draw(requant_scales(md))
        if rounding is not None:
            rd = _draw(draw, rounding)
        else:
            rd = draw(st.sampled_from(("half_even",) + ROUNDING_MODES)) if md == "dyadic" else None
        ot = _type(_draw(draw, out), "out") if out is not None else draw(st.sampled_from(_out_types(md)))
        it = _type(_draw(draw, in_type), "in_type") if in_type is not None else draw(st.sampled_from(_in_types(md)))
        if zero_point is not None:
            zp = _draw(draw, zero_point)
        elif md == "gemmini_fp32":
            zp = 0
        else:
            zp = draw(st.one_of(st.just(0), interesting_values(ot)))
        od = _draw(draw, order) if order is not None else draw(st.sampled_from(_ORDERS))
        pol = _draw(draw, overflow) if overflow is not None else "raise"
        return {"scale": sc, "rounding": rd, "out": ot, "mode": md, "in_type": it, "zero_point": zp,
                "order": od, "overflow": pol}

    return build()


# --------------------------------------------------------------------------------------------------
# registered operators
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Domain:
    """What a registered operator accepts: scale ranges per scalar input, the allowed sign of each
    tensor input, whether it reduces along the last axis, and extra input types."""

    scales: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    sign: Mapping[str, str] = field(default_factory=dict)  # tensor -> "nonpositive" | "nonnegative"
    in_types: tuple[str, ...] = ()


#: domain knowledge per operator (everything not listed: scales in [1e-3, 1], any sign, the
#: operator's default input type)
_DOMAINS: dict[str, _Domain] = {
    "ibert.i_exp": _Domain({"scale": (2e-3, 0.5)}, {"x": "nonpositive"}, ("int16",)),
    "ibert.softmax": _Domain({"scale": (2e-3, 0.5)}, {}, ("int8", "int16")),
    "ibert.gelu": _Domain({"scale": (1e-4, 0.05)}, {}, ("int8", "int16")),
    "ibert.layernorm": _Domain({"scale": (1e-3, 1.0)}, {}, ("int8", "int16")),
    "ibert.fixedpoint_mul": _Domain({"in_scale": (1e-4, 1.0), "out_scale": (1e-3, 1.0)}, {}, ("int16", "int8")),
    "ivit.shift_exp": _Domain({"scale": (2e-3, 0.5)}, {"x": "nonpositive"}, ("int16", "int8")),
    "ivit.shiftmax": _Domain({"scale": (1e-2, 0.5)}, {}, ("int4",)),
    "ivit.shiftgelu": _Domain({"scale": (1e-2, 0.5)}, {}, ("int4",)),
    "ivit.layernorm": _Domain({"scale": (1e-3, 1.0)}, {}, ("int8",)),
    "illm.di_exp": _Domain({"scale": (1e-3, 0.5)}, {"x": "nonpositive"}, ("int16", "int8")),
    "illm.clipped_softmax": _Domain({"scale": (1e-3, 0.5)}, {}, ("int16", "int8")),
    "illm.rmsnorm": _Domain({"scale": (1e-3, 1.0)}, {}, ("int16", "int8")),
    "illm.layernorm": _Domain({"scale": (1e-3, 1.0)}, {}, ("int16", "int8")),
    "illm.swiglu": _Domain({"scale": (1e-3, 0.1), "up_scale": (1e-3, 0.1)}, {}, ("int4",)),
    # the per-row output scale s * range / 255 must fit the 8-bit dyadic mantissa at shift 0
    "illm.dynamic_requant": _Domain({"scale": (1e-7, 1.5e-5)}, {}, ("int16", "int8")),
    "isqrt.isqrt": _Domain({"scale": (2.0**-8, 16.0)}, {"n": "nonnegative"}, ("uint32", "uint16")),
}


def operator_names() -> list[str]:
    """Every operator :func:`golden_cases` draws cases of: ``matmul``, ``requantize`` and every
    registered ``<family>.<name>``."""
    return ["matmul", "requantize", *sorted(operators())]


@functools.cache
def _op_meta(name: str) -> tuple[tuple[str, ...], tuple[str, ...], IntType, tuple[str, ...], _Domain]:
    """(tensor inputs, scalar inputs, default input type, variants, domain) of a registered operator."""
    spec = get_op(name)
    scalars = tuple(n for n in spec.inputs if "scale" in n)
    tensors = tuple(n for n in spec.inputs if n not in scalars)
    default = IntType(32)
    try:
        p = inspect.signature(spec.fn).parameters.get("in_type")
        if p is not None and p.default is not inspect.Parameter.empty:
            default = IntType.parse(p.default)
    except (TypeError, ValueError, ConfigError):
        pass
    return tensors, scalars, default, tuple(spec.variants), _DOMAINS.get(name, _Domain())


def _value_range(t: IntType, sign: str | None) -> tuple[int, int]:
    lo, hi = t.min, t.max
    if sign == "nonpositive":
        hi = min(hi, 0)
    elif sign == "nonnegative":
        lo = max(lo, 0)
    return lo, hi


def _op_in_types(name: str) -> list[IntType]:
    _, _, default, _, dom = _op_meta(name)
    out = [default]
    for n in dom.in_types:
        t = IntType.parse(n)
        if t not in out and t.bits <= default.bits:
            out.append(t)
    return out


def op_inputs(name: str, *, shape: Any = None, variant: Drawable = None, in_type: Drawable = None,
              scales: Mapping[str, Drawable] | None = None, overflow: Drawable = None,
              max_side: int = 8) -> SearchStrategy[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """``(tensors, kwargs)`` for the registered operator ``name`` (see :func:`intsim.ops.registry.operators`):
    its tensor inputs as :func:`int_arrays` of its input type (every tensor of one shape, rows
    of 1 to ``max_side`` entries; within the sign the operator takes, e.g. ``x <= 0`` for the
    exponentials) and its keyword arguments: each scale in the range the operator is meant for,
    ``in_type``, ``variant`` (one of its published/corrected variants) and, if given,
    ``overflow``. Call it as ``get_op(name).fn(**tensors, **kwargs)``.

    >>> from hypothesis import find
    >>> from intsim.ops.registry import get_op
    >>> tensors, kwargs = find(op_inputs("ibert.softmax", shape=(2, 4)), lambda tk: True)
    >>> get_op("ibert.softmax").fn(**tensors, **kwargs).values.shape
    (2, 4)
    """
    tensors, scalars, _, variants, dom = _op_meta(name)
    types = _op_in_types(name)
    fixed_scales = dict(scales or {})
    unknown = set(fixed_scales) - set(scalars)
    if unknown:
        raise ConfigError(f"op_inputs({name!r}): unknown scale name(s) {sorted(unknown)}; its scales: {list(scalars)}")

    @st.composite
    def build(draw: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        t = _type(_draw(draw, in_type), "in_type") if in_type is not None else draw(st.sampled_from(types))
        dims = draw(_shape_strategy(shape, 2, max_side))
        arrays = {}
        for tn in tensors:
            lo, hi = _value_range(t, dom.sign.get(tn))
            arrays[tn] = draw(int_arrays(t, dims, low=lo, high=hi))
        kwargs: dict[str, Any] = {"in_type": t}
        for sn in scalars:
            lo_s, hi_s = dom.scales.get(sn, (1e-3, 1.0))
            kwargs[sn] = _draw(draw, fixed_scales[sn]) if sn in fixed_scales else draw(float_scales(lo_s, hi_s))
        if variant is not None:
            kwargs["variant"] = _draw(draw, variant)
        elif variants:
            kwargs["variant"] = draw(st.sampled_from(variants))
        if overflow is not None:
            kwargs["overflow"] = _draw(draw, overflow)
        return arrays, kwargs

    return build()


# --------------------------------------------------------------------------------------------------
# golden-style cases
# --------------------------------------------------------------------------------------------------


def input_distributions(t: IntType | str, *, low: int | None = None, high: int | None = None, ties: Any = None,
                        boundaries: Iterable[int] = ()) -> SearchStrategy[dict[str, Any]]:
    """Golden-suite input distributions (the ``inputs`` tables of a spec) for a tensor of type ``t``
    whose entries must lie in ``[low, high]``, most specific first (what shrinking goes to): a
    ``constant`` at an :func:`interesting_values` value (with ``ties`` and ``boundaries``), a
    narrow ``uniform`` range starting at one, the corner sets that fit (``zeros``,
    ``most_negative``, ``most_positive``, ``alternating``, ``alternating_rows``), ``uniform`` over
    the whole range and (for the whole type) ``heavy_tailed`` with outlier channels.

    >>> from hypothesis import find
    >>> find(input_distributions("int8"), lambda d: d["dist"] == "constant" and d["value"] < 0)
    {'dist': 'constant', 'value': -1}
    """
    t = _type(t)
    lo = t.min if low is None else max(t.min, int(low))
    hi = t.max if high is None else min(t.max, int(high))
    if lo > hi:
        raise ConfigError(f"input_distributions: empty range [{lo}, {hi}] for {t.name}")
    values = interesting_values(t, ties=ties, boundaries=boundaries, low=lo, high=hi)
    constant = values.map(lambda v: {"dist": "constant", "value": int(v)})

    @st.composite
    def narrow(draw: Any) -> dict[str, Any]:
        v = draw(values)
        w = draw(st.integers(1, 1 << min(t.bits, 6)))
        a, b = max(lo, v - w // 2), min(hi, v + (w + 1) // 2)
        return {"dist": "uniform", "low": int(a), "high": int(b)}

    corners = [name for name, ok in (
        ("zeros", lo <= 0 <= hi), ("most_negative", lo <= t.min or (not t.signed and lo == 0)),
        ("most_positive", hi >= t.max), ("alternating", lo <= t.min and hi >= t.max),
        ("alternating_rows", lo <= t.min and hi >= t.max)) if ok]
    branches = [constant]
    if corners:
        branches.append(st.sampled_from(corners).map(lambda n: {"dist": n}))
    branches.append(narrow())
    branches.append(st.just({"dist": "uniform", "low": lo, "high": hi}))
    if lo == t.min and hi == t.max:
        branches.append(st.builds(
            lambda sb, rate, ch: {"dist": "heavy_tailed", "scale_bits": sb, "outlier_rate": rate,
                                  "outlier_channels": ch},
            st.integers(0, max(0, (t.bits - 1 if t.signed else t.bits) // 2)),
            st.sampled_from([0.01, 0.0, 0.1, 0.5]), st.integers(0, 2)))
    return st.one_of(*branches)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ConfigError(f"a golden case cannot hold the float {f!r}")
        return repr(f)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, Dyadic):
        return f"{{ m = {v.m}, k = {v.k} }}"
    if isinstance(v, IntType):
        return f'"{v.name}"'
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"a golden case cannot hold {type(v).__name__} {v!r}")


def _plain(v: Any) -> Any:
    """A config value in its spec form: IntType -> name, Dyadic -> {m, k}, None dropped by the caller."""
    if isinstance(v, IntType):
        return v.name
    if isinstance(v, Dyadic):
        return {"m": v.m, "k": v.k}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _python_value(v: Any) -> Any:
    """A spec value as the operator takes it: {m, k} -> Dyadic, lists of them -> list of Dyadic,
    lists of numbers -> numpy arrays."""
    if isinstance(v, Mapping) and set(v) == {"m", "k"}:
        return Dyadic(int(v["m"]), int(v["k"]))
    if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
        return [_python_value(x) for x in v]
    if isinstance(v, list):
        return np.asarray(v)
    return v


_TYPE_KEYS = {"a", "b", "out", "in_type"}


@dataclass(frozen=True)
class GoldenCase:
    """One golden-vector case, drawn by :func:`golden_cases`: what ``[[case]]`` of a spec holds.

    ``operator`` is a golden-suite operator name (``matmul``, ``requantize``, ``ibert.softmax``
    ...); ``shape``, ``config`` and ``inputs`` are the spec's tables (types by name, Dyadic
    scales as ``{m, k}``, inputs as distributions) and ``seed`` the case seed, so the input
    tensors are exactly those ``intsim golden generate`` draws.

    >>> c = GoldenCase("requantize", {"x": [3]}, {"scale": {"m": 1, "k": 1}, "out": "int8"},
    ...                {"x": {"dist": "constant", "value": 5}}, seed=0)
    >>> c.arrays()["x"].tolist(), c.expected().outputs[0][1].tolist()
    ([5, 5, 5], [2, 2, 2])
    >>> print(c.spec_toml().splitlines()[-1])
    inputs = { x = { dist = "constant", value = 5 } }
    """

    operator: str
    shape: Mapping[str, Any]
    config: Mapping[str, Any]
    inputs: Mapping[str, Any]
    seed: int = 0
    name: str = "counterexample"

    def __repr__(self) -> str:
        return (f"GoldenCase({self.operator!r}, shape={dict(self.shape)!r}, config={dict(self.config)!r}, "
                f"inputs={dict(self.inputs)!r}, seed={self.seed})")

    @functools.cached_property
    def case(self) -> Any:
        """The validated case (:class:`intsim.golden.Case`, every default filled in); ConfigError
        naming the key when the tables are not valid for the operator."""
        cs = CaseSpec(name=self.name, operator=self.operator, seed=int(self.seed), shape=dict(self.shape),
                      config=dict(self.config), inputs=dict(self.inputs), where=f"case {self.name!r}")
        return get_operator(self.operator, where="operator").resolve(cs)

    def arrays(self) -> dict[str, np.ndarray]:
        """The input tensors, by name (drawn from their distributions with the case seed)."""
        return dict(self._arrays)

    @functools.cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        return make_inputs(self.case)

    def expected(self) -> Any:
        """What intsim computes: an :class:`intsim.golden.OpRun` (``outputs``, ``taps`` and, under an
        overflow policy ``raise``, the error it ``raises`` in the place of the outputs)."""
        return self._expected

    @functools.cached_property
    def _expected(self) -> Any:
        return get_operator(self.operator).run(self.case, self._arrays)

    def call_args(self) -> dict[str, Any]:
        """Keyword arguments for a candidate: the input tensors by name plus the resolved config
        (defaults filled in) as the operator takes it: types as :class:`~intsim.IntType`, Dyadic
        scales as :class:`~intsim.Dyadic`. ``matmul``: ``A``, ``B``, ``bias`` (None unless
        ``config.bias``), ``a``, ``b``, ``acc_bits``, ``overflow``, ``k_chunk``, ``chunk_bits``,
        ``chunk_overflow`` (``Datapath(**rest)`` rebuilds the datapath); ``requantize``: ``x`` and
        the keywords of :func:`intsim.requantize`; a registered operator: its tensors and keywords."""
        args: dict[str, Any] = dict(self._arrays)
        cfg = dict(self.case.config)
        if self.operator == "matmul":
            cfg.pop("trace_samples", None)
            has_bias = cfg.pop("bias", False)
            args.setdefault("bias", None)
            if not has_bias:
                args["bias"] = None
        elif self.operator not in ("requantize",):
            cfg.pop("out_type", None)
            cfg.pop("input_types", None)
        for k, v in cfg.items():
            if k in _TYPE_KEYS and isinstance(v, str):
                args[k] = IntType.parse(v)
            else:
                args[k] = _python_value(v)
        return args

    def spec_doc(self) -> dict[str, Any]:
        """The one-case spec as a dict (what :func:`intsim.golden.spec_from_dict` reads)."""
        return {"suite": {"name": self.name, "seed": 0},
                "case": [{"name": self.name, "operator": self.operator, "seed": int(self.seed),
                          "shape": dict(self.shape), "config": {k: v for k, v in self.config.items() if v is not None},
                          "inputs": dict(self.inputs)}]}

    def spec_toml(self) -> str:
        """The one-case spec as TOML text (``intsim golden generate`` reads it)."""
        case = self.spec_doc()["case"][0]
        lines = ["[suite]", f"name = {_toml_value(self.name)}", "seed = 0", "", "[[case]]"]
        for key in ("name", "operator", "seed", "shape", "config", "inputs"):
            lines.append(f"{key} = {_toml_value(case[key])}")
        return "\n".join(lines) + "\n"

    def write(self, out: Any, *, force: bool = False) -> Any:
        """Write the case as a one-case golden suite in directory ``out`` (with its ``spec.toml``),
        atomically, by :func:`intsim.golden.generate_suite` (an existing ``out`` is replaced only
        with ``force`` and only if it holds exactly a suite intsim wrote). Returns the report."""
        from ..golden.spec import parse_spec

        return generate_suite(parse_spec(self.spec_toml(), source=f"{self.name}.toml"), out, force=force)


def _fixed(draw: Any, table: Mapping[str, Any] | None, key: str, default: Callable[[], Any]) -> Any:
    if table is not None and key in table:
        return _draw(draw, table[key])
    return default()


def _check_fixed_keys(op: str, table: Mapping[str, Any] | None, allowed: Iterable[str] | None, what: str) -> None:
    if table is None:
        return
    if not isinstance(table, Mapping):
        raise ConfigError(f"golden_cases({op!r}): {what} must be a mapping, got {type(table).__name__}")
    if allowed is None:
        return
    unknown = sorted(str(k) for k in set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"golden_cases({op!r}): {what}.{unknown[0]}: unknown key; "
                          f"valid: {', '.join(sorted(allowed))}")


def _matmul_case(draw: Any, config: Mapping | None, shape: Mapping | None, inputs: Mapping | None,
                 max_dim: int, max_k: int) -> tuple[dict, dict, dict]:
    a = _type(_fixed(draw, config, "a", lambda: draw(st.sampled_from(
        [IntType(8), IntType(8, signed=False), IntType(4), IntType(4, signed=False), IntType(2), IntType(16)]))), "a")
    b = _type(_fixed(draw, config, "b", lambda: draw(st.sampled_from(
        [IntType(8), IntType(4), IntType(8, signed=False), IntType(2), IntType(16)]))), "b")
    pmax = max(abs(a.min), a.max) * max(abs(b.min), b.max)
    narrow = st.integers(max(2, pmax.bit_length()), min(64, pmax.bit_length() + 1 + max_k.bit_length()))
    acc_bits = _fixed(draw, config, "acc_bits", lambda: draw(st.one_of(narrow, st.sampled_from([32, 16, 24, 64]))))
    policy = _fixed(draw, config, "overflow", lambda: draw(st.sampled_from(OVERFLOW_POLICIES)))
    cfg: dict[str, Any] = {"a": a.name, "b": b.name, "acc_bits": acc_bits, "overflow": policy}
    kc = _fixed(draw, config, "k_chunk", lambda: draw(st.sampled_from([1, 2, 4])))
    cfg["k_chunk"] = kc
    cb = _fixed(draw, config, "chunk_bits", lambda: None)
    if cb is not None:
        cfg["chunk_bits"] = cb
        co = _fixed(draw, config, "chunk_overflow", lambda: None)
        if co is not None:
            cfg["chunk_overflow"] = co
    bias = _fixed(draw, config, "bias", lambda: False)
    cfg["bias"] = bool(bias)
    if config is not None and "trace_samples" in config:
        cfg["trace_samples"] = _draw(draw, config["trace_samples"])
    acc_t = IntType(int(acc_bits))
    ins: dict[str, Any] = {}
    if inputs is not None:
        ins.update({k: _draw(draw, v) for k, v in inputs.items() if k in ("A", "B")})
    # a third of the time each: random distributions; constant operands with K right at the
    # accumulator's overflow boundary; a swing (an extreme constant row against alternating rows
    # of B: partial sums that leave the range and come back)
    free = inputs is None and (shape is None or "K" not in shape)
    mode = draw(st.sampled_from(["random", "boundary", "swing"])) if free else "random"
    K = None
    if mode == "boundary":
        av = draw(st.sampled_from(sorted({a.max, a.min, -1 if a.signed else 1, 1} & set(range(a.min, a.max + 1)),
                                        key=lambda v: (-abs(v), v))))
        bv = draw(st.sampled_from(sorted({b.max, b.min, 1} & set(range(b.min, b.max + 1)), key=lambda v: (-abs(v), v))))
        p = av * bv
        if p:
            limit = acc_t.max if p > 0 else -acc_t.min
            K = limit // abs(p) + draw(st.sampled_from([1, 0]))
        if K is not None and 1 <= K <= max_k:
            ins = {"A": {"dist": "constant", "value": int(av)}, "B": {"dist": "constant", "value": int(bv)}}
        else:
            mode, K = "random", None
    elif mode == "swing":
        av = draw(st.sampled_from(sorted({a.min, a.max} - {0}, key=lambda v: (v > 0, v)) or [1]))
        K = draw(st.integers(2, max(2, min(4, max_k))))
        ins = {"A": {"dist": "constant", "value": int(av)},
               "B": {"dist": draw(st.sampled_from(["alternating_rows", "alternating"]))}}
    dims = {"M": _fixed(draw, shape, "M", lambda: draw(st.integers(1, max_dim))),
            "K": K if K is not None else _fixed(draw, shape, "K", lambda: draw(st.integers(1, max_k))),
            "N": _fixed(draw, shape, "N", lambda: draw(st.integers(1, max_dim)))}
    if mode == "random":
        bound = [acc_t.max // max(1, pmax)]
        for name, t in (("A", a), ("B", b)):
            ins[name] = _fixed(draw, inputs, name, lambda t=t: draw(input_distributions(t, boundaries=bound)))
    if cfg["bias"]:
        ins["bias"] = _fixed(draw, inputs, "bias", lambda: draw(input_distributions(acc_t)))
    return cfg, {k: int(v) for k, v in dims.items()}, ins


def _requant_case(draw: Any, config: Mapping | None, shape: Mapping | None, inputs: Mapping | None,
                  max_side: int) -> tuple[dict, dict, dict]:
    fixed = {k: v for k, v in (config or {}).items()}
    params = draw(requant_params(**{k: fixed[k] for k in ("mode", "scale", "rounding", "out", "in_type",
                                                          "zero_point", "order", "overflow") if k in fixed}))
    if "allow_negative" in fixed:
        params["allow_negative"] = _draw(draw, fixed["allow_negative"])
    dims = _fixed(draw, shape, "x", lambda: draw(st.lists(st.integers(1, max_side), min_size=1, max_size=2)))
    dims = [int(d) for d in dims]
    sc = params["scale"]
    in_t, out_t = params["in_type"], params["out"]
    tie_scales = sc if isinstance(sc, (Dyadic, float, int)) else None
    bounds = []
    try:
        s = float(sc.value if isinstance(sc, Dyadic) else sc)
        for edge in (out_t.max - params["zero_point"], out_t.min - params["zero_point"]):
            bounds.append(int(round(edge / s)))
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        pass
    bounds = [v for v in bounds if in_t.min <= v <= in_t.max]
    ins = {"x": _fixed(draw, inputs, "x", lambda: draw(input_distributions(in_t, ties=tie_scales, boundaries=bounds)))}
    cfg = {k: _plain(v) for k, v in params.items() if v is not None}
    return cfg, {"x": dims}, ins


def _op_case(draw: Any, op: str, config: Mapping | None, shape: Mapping | None, inputs: Mapping | None,
             max_side: int) -> tuple[dict, dict, dict]:
    tensors, scalars, _, variants, dom = _op_meta(op)
    fixed = dict(config or {})
    t = _type(_fixed(draw, fixed, "in_type", lambda: draw(st.sampled_from(_op_in_types(op)))), "in_type")
    cfg: dict[str, Any] = {"in_type": t.name, "out_type": _plain(_fixed(draw, fixed, "out_type", lambda: "int64"))}
    for sn in scalars:
        lo_s, hi_s = dom.scales.get(sn, (1e-3, 1.0))
        cfg[sn] = _plain(_fixed(draw, fixed, sn, lambda lo_s=lo_s, hi_s=hi_s: draw(float_scales(lo_s, hi_s))))
    if variants:
        cfg["variant"] = _fixed(draw, fixed, "variant", lambda: draw(st.sampled_from(variants)))
    for k, v in fixed.items():
        if k not in cfg:
            cfg[k] = _plain(_draw(draw, v))
    rows = draw(st.integers(1, 3))
    cols = draw(st.integers(1, max_side))
    # rows x cols: a 1-D input gives row-wise operators 0-d per-row taps, which golden suites
    # cannot hold yet (np.ascontiguousarray makes them 1-D)
    default_dims = [rows, cols]
    dims: dict[str, list[int]] = {}
    ins: dict[str, Any] = {}
    for tn in tensors:
        dims[tn] = [int(d) for d in _fixed(draw, shape, tn, lambda: default_dims)]
        lo, hi = _value_range(t, dom.sign.get(tn))
        ins[tn] = _fixed(draw, inputs, tn, lambda lo=lo, hi=hi: draw(input_distributions(t, low=lo, high=hi)))
    return cfg, dims, ins


def _allowed_config(op: str) -> set[str] | None:
    """The config keys a case of ``op`` may fix (None: any, for an operator taking ``**kw``)."""
    if op == "matmul":
        return set(MatmulOperator.CONFIG)
    if op == "requantize":
        return set(RequantizeOperator.CONFIG)
    params = inspect.signature(get_op(op).fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return ({k for k in params if k != "taps"} - set(_op_meta(op)[0])) | {"out_type", "input_types"}


def golden_cases(operator: str, *, config: Mapping[str, Any] | None = None, shape: Mapping[str, Any] | None = None,
                 inputs: Mapping[str, Any] | None = None, seed: Drawable = None, max_side: int = 8,
                 max_k: int = 16, name: str = "counterexample") -> SearchStrategy[GoldenCase]:
    """Whole golden-vector cases (:class:`GoldenCase`) of ``operator``: ``matmul``, ``requantize``
    or any registered ``<family>.<name>`` (:func:`operator_names`).

    ``config``, ``shape`` and ``inputs`` fix entries of the case's tables (a value or a strategy
    per key; a key the operator does not have raises ConfigError); everything else is drawn:

    * ``matmul``: operand types (int2 to int16, signed and unsigned), a narrow or common
      accumulator width, every overflow policy, ``k_chunk``; M, N up to 4 and K up to ``max_k``;
      half the time both operands constant at their extremes with K right at the accumulator's
      overflow boundary (the last add overflows by at most one product, or just fits);
    * ``requantize``: :func:`requant_params` (mode, scale as the mode takes it, rounding, types,
      zero point, order), ``x`` of 1 or 2 dimensions; the input distributions favour the
      scale's exact rounding ties and the inputs at the output's saturation boundary;
    * a registered operator: its input type, its scales (:func:`op_inputs`), a variant, one
      shape for all its tensors (1 to 3 rows of 1 to ``max_side``).

    Every input is a golden distribution (:func:`input_distributions`) drawn with the case
    ``seed`` (drawn when None; shrinks toward 0). Cases the operator refuses are rejected
    (hypothesis filters them out).

    >>> from hypothesis import find
    >>> c = find(golden_cases("requantize", config={"mode": "dyadic", "rounding": "half_even"}),
    ...          lambda c: True)
    >>> c.operator, c.config["mode"], c.config["rounding"], sorted(c.inputs)
    ('requantize', 'dyadic', 'half_even', ['x'])
    """
    if operator not in ("matmul", "requantize"):
        get_op(operator)  # ConfigError listing the registered operators
    _check_fixed_keys(operator, config, _allowed_config(operator), "config")
    if shape is not None:
        allowed = {"M", "K", "N"} if operator == "matmul" else ({"x"} if operator == "requantize"
                                                                 else set(_op_meta(operator)[0]))
        _check_fixed_keys(operator, shape, allowed, "shape")
    if inputs is not None:
        allowed = {"A", "B", "bias"} if operator == "matmul" else ({"x"} if operator == "requantize"
                                                                     else set(_op_meta(operator)[0]))
        _check_fixed_keys(operator, inputs, allowed, "inputs")
    side = _int_arg(max_side, "max_side", 1, 1 << 12)
    kmax = _int_arg(max_k, "max_k", 1, 1 << 12)

    @st.composite
    def build(draw: Any) -> GoldenCase:
        if operator == "matmul":
            cfg, dims, ins = _matmul_case(draw, config, shape, inputs, min(4, side), kmax)
        elif operator == "requantize":
            cfg, dims, ins = _requant_case(draw, config, shape, inputs, side)
        else:
            cfg, dims, ins = _op_case(draw, operator, config, shape, inputs, side)
        s = _draw(draw, seed) if seed is not None else draw(st.integers(0, 2**32 - 1))
        case = GoldenCase(operator, dims, cfg, ins, int(s), name)
        try:
            case.case  # noqa: B018 - validates (and caches) the case
        except IntsimError:
            assume(False)
        return case

    return build()
