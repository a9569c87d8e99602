"""IntType and the rounding modes against Python-int oracles."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim import (
    ROUNDING_MODES,
    ConfigError,
    DTypeError,
    IntType,
    OperandRangeError,
    div_round,
    round_float,
    rounding_mode,
    shift_right,
)
from intsim.oracles.rounding import round_fraction
from intsim.testing.strategies import interesting_values

I64 = interesting_values(IntType(64))  # edges, 0, +-1 and half-range values weighted, then uniform


@given(st.integers(1, 64), st.booleans(), st.lists(st.integers(-(2**70), 2**70), max_size=8))
def test_inttype_python_ints(bits, signed, values):
    t = IntType(bits, signed)
    lo = -(2 ** (bits - 1)) if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    assert (t.min, t.max) == (lo, hi)
    for v in values:
        assert t.contains(v) == (lo <= v <= hi)
        assert t.saturate(v) == min(max(v, lo), hi)
        w = t.wrap(v)
        assert lo <= w <= hi and (w - v) % (2**bits) == 0


@given(st.integers(1, 64), st.booleans(), st.lists(I64, min_size=1, max_size=20))
def test_inttype_int64_arrays(bits, signed, values):
    t = IntType(bits, signed)
    arr = np.array(values, dtype=np.int64)
    assert t.contains(arr).tolist() == [t.contains(v) for v in values]
    assert [int(x) for x in t.wrap(arr)] == [t.wrap(v) for v in values]
    assert [int(x) for x in t.saturate(arr)] == [t.saturate(v) for v in values]


@given(st.integers(1, 64), st.booleans(), st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_inttype_uint64_arrays(bits, signed, values):
    t = IntType(bits, signed)
    arr = np.array(values, dtype=np.uint64)
    assert t.contains(arr).tolist() == [t.contains(v) for v in values]
    assert [int(x) for x in t.wrap(arr)] == [t.wrap(v) for v in values]
    assert [int(x) for x in t.saturate(arr)] == [t.saturate(v) for v in values]


def test_inttype_check_reports_count_index_value():
    t = IntType(4)
    with pytest.raises(OperandRangeError) as ei:
        t.check(np.array([[0, 9], [-9, 3]]), "W")
    e = ei.value
    assert (e.count, e.index, e.value) == (2, (0, 1), 9)
    assert "W" in str(e) and "int4 [-8, 7]" in str(e)
    assert t.check(np.array([7, -8])).tolist() == [7, -8]
    with pytest.raises(DTypeError):
        t.check(np.array([1.0]))


def test_inttype_config():
    for bad in (0, 65, 1.5, "8", True):
        with pytest.raises(ConfigError):
            IntType(bad)
    assert IntType.parse("uint4") == IntType(4, False) and str(IntType(8)) == "int8"
    assert IntType(1).min == -1 and IntType(1).max == 0
    assert IntType(64, False).max == 2**64 - 1


MODES = st.sampled_from(ROUNDING_MODES)


@given(st.integers(-(2**80), 2**80), st.integers(0, 90), MODES)
def test_shift_right_python_ints(x, n, mode):
    assert shift_right(x, n, mode) == round_fraction(Fraction(x, 2**n), mode)


@given(st.lists(I64, min_size=1, max_size=16), st.integers(0, 70), MODES)
def test_shift_right_int64_arrays(xs, n, mode):
    got = shift_right(np.array(xs, dtype=np.int64), n, mode)
    assert got.dtype == np.int64
    assert got.tolist() == [round_fraction(Fraction(x, 2**n), mode) for x in xs]


@given(st.lists(st.tuples(I64, st.integers(0, 62)), min_size=1, max_size=16), MODES)
def test_shift_right_per_element_shift(pairs, mode):
    xs = np.array([p[0] for p in pairs], dtype=np.int64)
    ns = np.array([p[1] for p in pairs], dtype=np.int64)
    assert shift_right(xs, ns, mode).tolist() == [round_fraction(Fraction(x, 2**n), mode) for x, n in pairs]


@given(st.integers(-(2**80), 2**80), st.integers(1, 2**70), MODES)
def test_div_round_python_ints(x, d, mode):
    assert div_round(x, d, mode) == round_fraction(Fraction(x, d), mode)


@given(st.lists(I64, min_size=1, max_size=16), st.integers(1, 2**63 - 1), MODES)
def test_div_round_int64_arrays(xs, d, mode):
    got = div_round(np.array(xs, dtype=np.int64), d, mode)
    assert got.tolist() == [round_fraction(Fraction(x, d), mode) for x in xs]


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_exact_ties_both_signs(mode):
    # x / 4 for x = -10..10 covers ties (+-2, +-6, +-10), quarters and exact values
    xs = list(range(-10, 11))
    want = [round_fraction(Fraction(x, 4), mode) for x in xs]
    assert [shift_right(x, 2, mode) for x in xs] == want
    assert shift_right(np.array(xs), 2, mode).tolist() == want
    assert div_round(np.array(xs), 4, mode).tolist() == want


def test_tie_table():
    # -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 as x / 2
    xs = [-5, -3, -1, 1, 3, 5]
    table = {
        "half_even": [-2, -2, 0, 0, 2, 2],
        "half_odd": [-3, -1, -1, 1, 1, 3],
        "half_away": [-3, -2, -1, 1, 2, 3],
        "half_up": [-2, -1, 0, 1, 2, 3],
        "half_down": [-3, -2, -1, 0, 1, 2],
        "half_zero": [-2, -1, 0, 0, 1, 2],
        "floor": [-3, -2, -1, 0, 1, 2],
        "ceil": [-2, -1, 0, 1, 2, 3],
        "trunc": [-2, -1, 0, 0, 1, 2],
        "away": [-3, -2, -1, 1, 2, 3],
    }
    for mode, want in table.items():
        assert [shift_right(x, 1, mode) for x in xs] == want, mode


def test_aliases():
    assert rounding_mode("TRN") == "floor"
    assert rounding_mode("AP_TRN_ZERO") == "trunc"
    assert rounding_mode("RND") == "half_up"
    assert rounding_mode("rnd_conv") == "half_even"
    assert rounding_mode("RND_INF") == "half_away"
    assert rounding_mode("RND_MIN_INF") == "half_down"
    assert rounding_mode("RND_ZERO") == "half_zero"
    assert rounding_mode("TIES_EVEN") == "half_even"
    assert rounding_mode("TO_ZERO") == "trunc"
    with pytest.raises(ConfigError, match="half_even"):
        rounding_mode("nearest-ish")
    with pytest.raises(ConfigError, match="not supported"):
        rounding_mode("STOCH_WEIGHTED")


def test_shift_and_div_errors():
    with pytest.raises(ConfigError):
        shift_right(5, -1)
    with pytest.raises(ConfigError):
        div_round(5, 0)
    with pytest.raises(ConfigError):
        div_round(np.array([5]), np.array([-2]))
    with pytest.raises(DTypeError):
        shift_right(np.array([1.5]), 1)


@given(st.lists(st.floats(-1e15, 1e15, allow_nan=False), min_size=1, max_size=10), MODES)
def test_round_float(xs, mode):
    got = round_float(np.array(xs), mode).tolist()
    assert got == [round_fraction(Fraction(x), mode) for x in xs]


def test_round_float_refuses_nan_inf():
    with pytest.raises(OperandRangeError, match="NaN or Inf"):
        round_float(np.array([1.0, np.nan]))
    with pytest.raises(OperandRangeError):
        round_float(np.array([1e300]))


def test_object_arrays_of_python_ints():
    t = IntType(64, signed=False)
    arr = np.array([1, 2**64 - 1], dtype=object)
    assert t.check(arr).dtype == np.uint64
    with pytest.raises(OperandRangeError, match="int64"):
        IntType(8).check(np.array([2**70], dtype=object))
    with pytest.raises(DTypeError):
        IntType(8).check(np.array([1.5], dtype=object))
