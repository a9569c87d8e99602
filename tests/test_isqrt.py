"""Integer square roots against Python's math.isqrt and literal Python-int oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim.core.errors import ConfigError, DTypeError, OperandRangeError, RegisterOverflow
from intsim.ops.isqrt import (
    FIXED_STEPS_32,
    FIXED_STEPS_64,
    isqrt,
    isqrt_fixed,
    isqrt_ivit,
    isqrt_op,
    newton_steps,
)
from intsim.ops.registry import get_op
from intsim.oracles.isqrt import isqrt_fixed as _fixed_oracle
from intsim.oracles.isqrt import isqrt_ivit as ivit_oracle

U64_MAX = 2**64 - 1


def edge_values(limit: int) -> list[int]:
    """Perfect squares, their neighbours, powers of two and their neighbours, range edges."""
    vals = {0, 1, 2, 3, limit, limit - 1}
    for b in range(1, limit.bit_length() + 1):
        for d in (-1, 0, 1):
            v = (1 << b) + d
            if 0 <= v <= limit:
                vals.add(v)
    s = math.isqrt(limit)
    for r in [2, 3, 255, 256, 65535, 65536, 3037000499, 3037000500, 2**32 - 1, s - 1, s]:
        for d in (-1, 0, 1):
            v = r * r + d
            if 0 <= v <= limit:
                vals.add(v)
    return sorted(vals)


u64 = st.one_of(st.integers(0, U64_MAX), st.sampled_from(edge_values(U64_MAX)),
                st.integers(1, 2**32 - 1).map(lambda r: r * r - 1), st.integers(1, 2**32 - 1).map(lambda r: r * r))


@given(st.lists(u64, min_size=1, max_size=64))
def test_isqrt_exact_over_uint64(vals):
    arr = np.array(vals, dtype=np.uint64)
    got = isqrt(arr)
    assert got.dtype == np.int64
    assert got.tolist() == [math.isqrt(v) for v in vals]
    assert isqrt_fixed(arr).tolist() == [math.isqrt(v) for v in vals]


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=32))
def test_isqrt_int64_input(vals):
    arr = np.array(vals, dtype=np.int64)
    assert isqrt(arr).tolist() == [math.isqrt(v) for v in vals]


def test_isqrt_edges_and_step_counts():
    vals = edge_values(U64_MAX)
    arr = np.array(vals, dtype=np.uint64)
    assert isqrt(arr).tolist() == [math.isqrt(v) for v in vals]
    # the proven fixed-step counts: 6 for 64-bit inputs, 5 below 2**32
    assert isqrt_fixed(arr, steps=FIXED_STEPS_64).tolist() == [math.isqrt(v) for v in vals]
    small = [v for v in vals if v < 2**32]
    assert isqrt_fixed(np.array(small, dtype=np.uint64), steps=FIXED_STEPS_32).tolist() == \
        [math.isqrt(v) for v in small]
    # and fewer steps are not enough somewhere (the bound is not vacuous), never below the floor
    short = isqrt_fixed(arr, steps=4)
    assert any(g != math.isqrt(v) for g, v in zip(short.tolist(), vals, strict=True))
    assert all(g >= math.isqrt(v) for g, v in zip(short.tolist(), vals, strict=True))
    # I-BERT's iteration: at most 6 updates + 1 check on 64-bit values, 5 + 1 below 2**32
    assert max(newton_steps(v) for v in vals) <= 7
    assert max(newton_steps(v) for v in small) <= 6
    assert newton_steps(0) == 0


def test_python_ints_any_size():
    assert isqrt(10**40) == 10**20
    assert isqrt(2**200 - 1) == 2**100 - 1
    assert isqrt(np.int64(15)) == 3


def test_ivit_quirk_published_values():
    # the published figures: var = 0 gives 64, var = 10**4 gives 108
    assert isqrt_ivit(0) == 64
    assert isqrt_ivit(10**4) == 108
    vals = [0, 1, 100, 10**4, 34596, 2**22, 2**30, 2**40, 2**48, 2**56, 2**62]
    got = isqrt_ivit(np.array(vals, dtype=np.int64)).tolist()
    assert got == [ivit_oracle(v) for v in vals]
    # badly wrong for small variances, fine in the middle, too few steps at the top
    assert got[2] != 10
    assert got[vals.index(2**30)] == 2**15
    assert got[vals.index(2**62)] > 2**31 + 1


def test_ivit_off_by_one_oscillation():
    # near a perfect square minus one the fixed iteration can end one above the floor
    hits = [v for v in range(35000, 200000, 7) if isqrt_ivit(v) != math.isqrt(v)]
    assert hits and all(isqrt_ivit(v) == math.isqrt(v) + 1 for v in hits)


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=16))
def test_ivit_matches_oracle(vals):
    assert isqrt_ivit(np.array(vals, dtype=np.int64)).tolist() == [ivit_oracle(v) for v in vals]


def test_operator_form():
    assert get_op("isqrt.isqrt").fn is isqrt_op and get_op("isqrt.isqrt").variants == ("newton", "ivit", "fixed")
    n = np.array([[0, 1, 2, 99], [2**40, 2**40 - 1, 7, 8]], dtype=np.int64)
    r = isqrt_op(n, scale=0.25, in_type="int64")
    assert r.values.tolist() == [[math.isqrt(int(v)) for v in row] for row in n.tolist()]
    assert r.scale == 0.5
    iters = sum(newton_steps(int(v)) for v in n.reshape(-1))
    assert r.ops.total("div") == iters
    assert r.ops["compare", (64,)] == 8 + 7  # zero tests + seeds of the nonzero entries
    rf = isqrt_op(n, variant="fixed", in_type="int64", taps=True)
    assert rf.values.tolist() == r.values.tolist()
    assert rf.ops.total("div") == 6 * 7
    assert rf.taps["root"].tolist() == r.values.tolist()
    # the first Newton numerator tap: seed + n // seed
    assert rf.taps["iter"][1, 0] == 2**21 + 2**40 // 2**21  # bitlen(2**40) = 41: seed 2**21
    ri = isqrt_op(np.array([0, 10**4]), variant="ivit", steps=12)
    assert ri.values.tolist() == [ivit_oracle(0, 12), ivit_oracle(10**4, 12)]
    assert ri.ops.total("div") == 24


def test_operator_registers():
    with pytest.raises(RegisterOverflow) as ei:
        isqrt_op(np.array([4, 2**20]), widths={"root": 8})
    assert ei.value.step == "root" and ei.value.value == 1024 and "isqrt" in str(ei.value)
    r = isqrt_op(np.array([4, 2**20]), widths={"root": 8}, overflow="record")
    assert r.values.tolist() == [2, 1024] and r.registers.events[0].step == "root"


def test_bad_inputs():
    with pytest.raises(OperandRangeError, match="negative"):
        isqrt(np.array([4, -1]))
    with pytest.raises(OperandRangeError):
        isqrt(-4)
    with pytest.raises(DTypeError):
        isqrt(np.array([4.0]))
    with pytest.raises(DTypeError):
        isqrt(4.0)
    with pytest.raises(ConfigError):
        isqrt_ivit(4, steps=-1)
    with pytest.raises(ConfigError, match="seed"):
        isqrt_ivit(4, seed=1)
    with pytest.raises(ConfigError):
        isqrt_op(np.array([4]), variant="nope")
    # int64 data under the default uint64 input type: the sign is checked inside the kernel
    with pytest.raises(OperandRangeError, match=r"first at index \(1, 0\): -1"):
        isqrt_op(np.array([[4, 9], [-1, -2]], dtype=np.int64))
    with pytest.raises(OperandRangeError, match="outside int8"):
        isqrt_op(np.array([4, 300]), in_type="int8")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError):
            isqrt_op(np.array([4]), scale=bad)
    with pytest.raises(OperandRangeError):
        isqrt_op(np.array([300]), in_type="uint8")
    with pytest.raises(OperandRangeError):
        isqrt_op(np.array([-1]), in_type="int8")


def _expected(variant: str, vals: list[int]) -> tuple[list[int], int]:
    """Oracle roots and division count of isqrt_op for each variant."""
    if variant == "ivit":
        return [ivit_oracle(v) for v in vals], 10 * len(vals)
    if variant == "newton":
        return [math.isqrt(v) for v in vals], sum(newton_steps(v) for v in vals)
    return [math.isqrt(v) for v in vals], FIXED_STEPS_64 * sum(1 for v in vals if v)


@given(st.lists(u64, min_size=1, max_size=64), st.sampled_from(["newton", "fixed", "ivit"]))
def test_operator_matches_oracles_and_the_per_entry_path(vals, variant):
    arr = np.array(vals, dtype=np.uint64)
    roots, divs = _expected(variant, vals)
    # the block kernel (no taps; the per-entry kernel only where an I-ViT numerator overflows the
    # 33-bit iter register, which happens for large n and is recorded)
    r = isqrt_op(arr, variant=variant, overflow="record")
    assert r.values.tolist() == roots and r.ops.total("div") == divs
    t = isqrt_op(arr, variant=variant, taps=True, overflow="record")  # the per-entry kernel
    assert t.values.tolist() == roots and t.ops == r.ops
    assert r.registers.events == t.registers.events
    assert bool(r.registers.events) == (variant == "ivit" and int(t.taps["iter"].max()) >= 2**33)


def test_block_kernel_across_blocks_and_its_exact_fallback():
    from intsim.ops.isqrt import _BLOCK

    rng = np.random.default_rng(7)
    edges = edge_values(U64_MAX)
    vals = (rng.integers(0, 2**40, _BLOCK).tolist() + rng.integers(0, 2**63, _BLOCK, dtype=np.int64).tolist()
            + edges + rng.integers(0, 100, 17).tolist())  # three blocks and a partial one
    vals = [int(v) for v in vals]
    arr = np.array(vals, dtype=np.uint64)
    for variant in ("newton", "fixed", "ivit"):
        roots, divs = _expected(variant, vals)
        r = isqrt_op(arr, variant=variant, overflow="record")
        assert r.values.tolist() == roots and r.ops.total("div") == divs, variant
        assert isqrt_op(arr, variant=variant, taps=True, overflow="record").ops == r.ops
    small = arr[arr < 2**40]  # no I-ViT register overflow: the block kernel alone
    r = isqrt_op(small, variant="ivit")
    assert r.values.tolist() == [ivit_oracle(int(v)) for v in small] and not r.registers.events
    assert isqrt_fixed(arr, steps=3).tolist() == [_fixed_oracle(v, 3) for v in vals]
    # from a seed of 3 the first quotients n // 3 of large n are too large for the float estimate:
    # those blocks take the exact per-entry routines, with the same results (a seed of 2 is a
    # power of two, whose first step is a shift); n = 0 reaches k = 0 from such small seeds, where
    # the iteration stays, as documented
    assert isqrt_ivit(arr, steps=12, seed=2).tolist() == [ivit_oracle(v, 12, 2) if v else 0 for v in vals]
    assert isqrt_ivit(arr, steps=11, seed=3).tolist() == [ivit_oracle(v, 11, 3) if v else 0 for v in vals]
    assert isqrt_ivit(arr, steps=10, seed=12345).tolist() == [ivit_oracle(v, 10, 12345) for v in vals]
    from intsim.ops.isqrt import _run_blocks  # both routes ran: stats[3] counts the blocks redone exactly

    assert _run_blocks(arr, 1, 11, 3)[1][3] > 0 and _run_blocks(arr, 1, 10, 2**16)[1][3] == 0


def _ivit_arrival(n: int, steps: int = 10, seed: int = 2**16) -> int | None:
    """The first step j >= 1 at which I-ViT's iterate is floor(sqrt(n)), None if none within steps."""
    s, k = math.isqrt(n), seed
    for j in range(1, steps + 1):
        k = (k + n // k) // 2
        if k <= s:
            return j
    return None


def _bit_length_samples(e: int, rng: np.random.Generator, count: int = 40) -> list[int]:
    """Values of bit length e: both ends, perfect squares, squares minus one (where the iteration
    oscillates) and minus two, and random ones."""
    lo, hi = 1 << (e - 1), (1 << e) - 1
    vals = {lo, hi}
    for r in (math.isqrt(lo) + 1, math.isqrt(lo) + 2, math.isqrt(hi), math.isqrt(hi) - 1):
        vals.update(v for v in (r * r, r * r - 1, r * r - 2) if lo <= v <= hi)
    vals.update(int(v) for v in rng.integers(lo, hi, count, dtype=np.uint64, endpoint=True))
    return sorted(vals)


def test_ivit_closed_form_covers_a_proven_and_tight_range():
    from intsim.ops.isqrt import _ivit_fast_mask

    mask = _ivit_fast_mask(10, 2**16)
    assert [e for e in range(64) if mask >> e & 1] == list(range(21, 43))  # 2**20 <= n < 2**42
    rng = np.random.default_rng(11)
    for e in range(21, 43):  # every value reaches its floor root before the last step, as proven
        assert max(_ivit_arrival(v) for v in _bit_length_samples(e, rng)) <= 9, e
    # tight: the next bit length on each side holds values reached only at the last step
    assert _ivit_arrival(525624) == 10 and (525624).bit_length() == 20
    assert _ivit_arrival(8796082340760) == 10 and (8796082340760).bit_length() == 43
    assert _ivit_fast_mask(10, 3) == 0 and _ivit_fast_mask(1, 2**16) == 0  # no closed form there


@pytest.mark.parametrize(("steps", "seed"), [(10, 2**16), (11, 2**16), (4, 2**8), (12, 2), (6, 2**31)])
def test_ivit_closed_form_matches_the_iteration(steps, seed):
    from intsim.ops.isqrt import _BLOCK, _ivit_fast_mask, _run, _run_blocks

    mask = _ivit_fast_mask(steps, seed)
    rng = np.random.default_rng(steps)
    inside = [v for e in range(1, 64) if mask >> e & 1 for v in _bit_length_samples(e, rng)]
    outside = [v for e in range(1, 64) if not mask >> e & 1 for v in _bit_length_samples(e, rng, 8)] + [0]
    oscillating = [v for v in inside if (math.isqrt(v) + 1) ** 2 - 1 == v]
    assert inside and oscillating
    blocks = {
        "inside": inside[:_BLOCK],  # all covered but the oscillating ones, redone entry by entry
        "outside": outside[:_BLOCK],  # none covered: the Newton passes
        "mixed": (inside * 8)[:_BLOCK - 3] + outside[:3],  # the closed form with three entries redone
    }
    for name, vals in blocks.items():
        arr = np.array(vals, dtype=np.uint64)
        out, stats = _run_blocks(arr, 1, steps, seed)
        assert out.tolist() == [ivit_oracle(v, steps, seed) for v in vals], name
        _, _, peak, _ = _run(arr, 1, steps, seed, "n")  # the per-entry kernel: largest numerator
        assert stats[2] == int(peak.max()), name
        bad = sum(1 for v in vals if not mask >> v.bit_length() & 1 or (math.isqrt(v) + 1) ** 2 - 1 == v)
        assert stats[6] == (0 if bad * 8 > len(vals) else len(vals) - bad), name
