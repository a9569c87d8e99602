"""intsim.testing.strategies: every strategy draws valid values of what it promises, biased toward
the places bugs live, and every golden case it draws can be written as a suite that verifies."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from intsim import ConfigError, Datapath, Dyadic, IntType, RegisterOverflow, matmul, requantize
from intsim.golden import parse_spec, verify_suite
from intsim.ops.registry import get_op, operators
from intsim.testing import GoldenCase
from intsim.testing import strategies as its

# --------------------------------------------------------------------------------------------------
# types, values, ties
# --------------------------------------------------------------------------------------------------


@given(its.int_types(3, 12), st.data())
def test_interesting_values_stay_in_the_type(t, data):
    v = data.draw(its.interesting_values(t, ties=Dyadic(3, 3), boundaries=[t.max // 3]))
    assert t.min <= v <= t.max


def test_interesting_values_reach_the_extremes_and_zero_first():
    assert find(its.interesting_values("int16"), lambda v: v < -32767) == -32768
    assert find(its.interesting_values("uint8"), lambda v: v > 254) == 255
    assert find(its.interesting_values("int8"), lambda v: True) == 0
    with pytest.raises(ConfigError, match="empty range"):
        its.interesting_values("int8", low=5, high=4)


def _brute_ties(scale: Fraction, t: IntType) -> list[int]:
    return [x for x in range(t.min, t.max + 1) if (x * scale - Fraction(1, 2)).denominator == 1]


@given(its.dyadics(m_bits=8, max_k=12, signed=True), its.int_types(2, 10))
def test_ties_are_exactly_the_halfway_inputs(d, t):
    got = its.ties(d, t, limit=4)
    brute = _brute_ties(d.fraction, t)
    assert set(got) <= set(brute)
    # the nearest to zero on each side and the nearest to each end are among them
    pos = [x for x in brute if x > 0]
    neg = [x for x in brute if x <= 0]
    for want in (pos[:4], neg[-4:], brute[:4], brute[-4:]):
        assert set(want) <= set(got)


def test_ties_of_floats_and_of_scales_without_ties():
    assert its.ties(0.5, "int4", limit=2) == [-7, -5, -3, -1, 1, 3, 5, 7]
    assert its.ties(3, "int8") == [] and its.ties(Fraction(1, 3), "int8") == []
    assert its.ties(Fraction(3, 2), "int8", limit=1) == [-127, -1, 1, 127]
    with pytest.raises(ConfigError):
        its.ties(float("nan"), "int8")


@settings(max_examples=100)
@given(its.int_types(1, 64), st.data())
def test_int_arrays_have_the_type_and_range(t, data):
    lo = data.draw(st.integers(t.min, t.max))
    a = data.draw(its.int_arrays(t, low=lo))
    assert a.dtype == t.dtype and a.ndim in (1, 2) and a.size >= 1
    assert int(a.min()) >= lo and int(a.max()) <= t.max


def test_heavy_tailed_arrays_have_outlier_channels():
    a = find(its.heavy_tailed_arrays("int8", (8, 32), outlier_rate=0.0, outlier_channels=2, scale_bits=1),
             lambda a: True)
    big = (np.abs(a.astype(int)) >= 63).all(axis=0)
    assert a.shape == (8, 32) and int(big.sum()) == 2


# --------------------------------------------------------------------------------------------------
# datapaths and operands at the overflow boundary
# --------------------------------------------------------------------------------------------------


@given(its.datapaths())
def test_datapaths_are_valid(dp):
    assert isinstance(dp, Datapath) and 1 <= dp.acc_bits <= 64


@settings(max_examples=300)
@given(its.datapaths(max_operand_bits=8), st.integers(1, 12), st.sampled_from([0, 1, 2, 3]))
def test_boundary_dot_hits_the_accumulator_boundary_exactly(dp, K, which):
    acc = dp.acc
    target = (acc.max, acc.max + 1, acc.min, acc.min - 1)[which]
    pair = its.boundary_dot(dp, K, target)
    if pair is None:
        return
    a, b = pair
    assert len(a) == len(b) == K
    assert all(dp.a.min <= v <= dp.a.max for v in a) and all(dp.b.min <= v <= dp.b.max for v in b)
    assert sum(x * y for x, y in zip(a, b, strict=True)) == target


def test_matmul_operands_reach_the_overflow_boundary():
    dp = Datapath(a=IntType(8), b=IntType(8), acc_bits=18, overflow="wrap")
    A, B = find(its.matmul_operands(dp), lambda ab: int((ab[0].astype(int) @ ab[1].astype(int)).max()) == 2**17)
    r = matmul(A, B, dp)
    assert r.n_overflow >= 1 and A.dtype == np.int8
    A, B = find(its.matmul_operands(dp), lambda ab: int((ab[0].astype(int) @ ab[1].astype(int)).max()) == 2**17 - 1)
    assert matmul(A, B, Datapath(a=IntType(8), b=IntType(8), acc_bits=18, overflow="raise")).n_overflow == 0


# --------------------------------------------------------------------------------------------------
# scales and requantization parameters
# --------------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(its.requant_params(), st.data())
def test_requant_params_are_accepted_by_requantize(params, data):
    x = data.draw(its.int_arrays(params["in_type"]))
    r = requantize(x, **{**params, "overflow": "wrap"})
    out = params["out"]
    assert r.values.shape == x.shape and out.min <= int(r.values.min()) <= int(r.values.max()) <= out.max
    if params["mode"] != "dyadic":
        assert params["rounding"] is None
    if params["mode"] == "gemmini_fp32":
        assert params["zero_point"] == 0


def test_dyadics_and_float_scales():
    assert find(its.dyadics(), lambda d: d.value == 0.5) == Dyadic(1, 1)
    assert find(its.dyadics(signed=True), lambda d: d.m < 0).m == -1
    assert find(its.float_scales(0.01, 0.02), lambda s: True) in (0.01, 0.02)
    with pytest.raises(ConfigError):
        its.float_scales(0.0, 1.0)
    with pytest.raises(ConfigError, match="unknown requantization mode"):
        its.requant_scales("tosa")


# --------------------------------------------------------------------------------------------------
# registered operators and golden cases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(operators()))
def test_op_inputs_run_every_registered_operator(name):
    fn = get_op(name).fn

    @settings(max_examples=15)
    @given(its.op_inputs(name))
    def run(tk):
        tensors, kwargs = tk
        try:
            r = fn(**tensors, **kwargs)
        except RegisterOverflow:
            return  # the operator's registers are too narrow for these data: reported, not wrong
        assert np.asarray(r.values).dtype.kind in "iu"

    run()


def test_operator_names_cover_the_registry():
    names = its.operator_names()
    assert names[:2] == ["matmul", "requantize"] and set(operators()) <= set(names)


@pytest.mark.parametrize("op", its.operator_names())
def test_golden_cases_write_suites_that_verify(op, tmp_path):
    seen = []

    @settings(max_examples=3)
    @given(its.golden_cases(op))
    def draw(case):
        seen.append(case)

    draw()
    case = seen[-1]
    assert isinstance(case, GoldenCase) and case.operator == op
    case.write(tmp_path / "suite")
    assert verify_suite(tmp_path / "suite").ok
    # the TOML text is the same case
    spec = parse_spec(case.spec_toml())
    assert spec.cases[0].record() == case.case.record()


def test_golden_cases_fix_what_is_given_and_refuse_unknown_keys():
    c = find(its.golden_cases("matmul", config={"a": "uint4", "overflow": "saturate"}, shape={"M": 2}),
             lambda c: True)
    assert c.config["a"] == "uint4" and c.config["overflow"] == "saturate" and c.shape["M"] == 2
    c = find(its.golden_cases("requantize", config={"mode": "ort_fp32", "scale": st.just(0.25)}),
             lambda c: True)
    assert c.config["mode"] == "ort_fp32" and c.config["scale"] == 0.25 and "rounding" not in c.config
    with pytest.raises(ConfigError, match="config.acc: unknown key"):
        its.golden_cases("matmul", config={"acc": 16})
    with pytest.raises(ConfigError, match="shape.y: unknown key"):
        its.golden_cases("requantize", shape={"y": [2]})
    with pytest.raises(ConfigError, match="unknown operator"):
        its.golden_cases("ibert.sofmax")


def test_golden_case_call_args_rebuild_the_operators_call():
    c = GoldenCase("matmul", {"M": 1, "K": 2, "N": 1}, {"a": "int4", "acc_bits": 6, "overflow": "saturate"},
                   {"A": {"dist": "constant", "value": -8}, "B": {"dist": "most_negative"}})
    args = c.call_args()
    assert args["a"] == IntType(4) and args["bias"] is None and "trace_samples" not in args
    r = matmul(args.pop("A"), args.pop("B"), Datapath(**{k: v for k, v in args.items() if k != "bias"}))
    assert r.values.tolist() == c.expected().outputs[0][1].tolist() == [[31]]
    c = GoldenCase("requantize", {"x": [2]}, {"scale": {"m": 3, "k": 2}}, {"x": {"dist": "constant", "value": 2}})
    args = c.call_args()
    assert args["scale"] == Dyadic(3, 2) and requantize(**args).values.tolist() == [2, 2]
