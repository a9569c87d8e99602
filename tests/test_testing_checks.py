"""intsim.testing.checks: assert_bit_exact, and check_against catching five kinds of wrong candidate
that teams ship, each within the intsim-ci example budget, with a shrunk counterexample written as
a golden suite that verifies and replays; intsim's own operators pass against themselves."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import settings

from intsim import ConfigError, Datapath, DTypeError, IntType, matmul, requantize
from intsim.golden import compare_suite, verify_suite
from intsim.ops.registry import get_op, operators
from intsim.testing import (
    BitExactMismatch,
    CounterexampleFound,
    GoldenCase,
    assert_bit_exact,
    check_against,
    register_profiles,
)

register_profiles()
CI = settings.get_profile("intsim-ci")
BUDGET = CI.max_examples


# --------------------------------------------------------------------------------------------------
# assert_bit_exact
# --------------------------------------------------------------------------------------------------


def test_assert_bit_exact_passes_on_equal_values_of_any_integer_dtype():
    assert_bit_exact(np.array([[1, -2]], dtype=np.int64), np.array([[1, -2]], dtype=np.int8))
    assert_bit_exact(np.array([2**64 - 1], dtype=np.uint64), np.array([2**64 - 1], dtype=np.uint64))


def test_assert_bit_exact_message_names_index_values_hex_and_count():
    actual = np.array([[127, -4, 5], [3, 128, 0]])
    expected = np.array([[127, -3, 5], [3, -128, 1]])
    with pytest.raises(BitExactMismatch) as ei:
        assert_bit_exact(actual, expected, type="int8", name="C", max_report=2)
    msg = str(ei.value)
    assert msg.splitlines()[0] == "C: 3 of 6 entries differ (int8 words):"
    assert "C[0, 1]: expected -3 (0xfd), actual -4 (0xfc)" in msg
    assert "C[1, 1]: expected -128 (0x80), actual 128 (outside int8)" in msg
    assert "... and 1 more" in msg
    assert ei.value.count == 3 and ei.value.size == 6
    assert ei.value.diffs[0] == ((0, 1), -3, -4)


def test_assert_bit_exact_hex_width_follows_the_declared_type():
    with pytest.raises(BitExactMismatch, match=r"expected -1 \(0x7fff\), actual 0 \(0x0000\)"):
        assert_bit_exact(np.array([0]), np.array([-1]), type=IntType(15))
    # default width: the expected array's dtype
    with pytest.raises(BitExactMismatch, match=r"expected -1 \(0xffff\)"):
        assert_bit_exact(np.array([0]), np.array([-1], dtype=np.int16))


def test_assert_bit_exact_compares_mixed_signedness_exactly():
    # uint64 2**64 - 1 is not int64 -1, although their bit patterns agree
    with pytest.raises(BitExactMismatch, match="1 of 1"):
        assert_bit_exact(np.array([2**64 - 1], dtype=np.uint64), np.array([-1], dtype=np.int64))


def test_assert_bit_exact_refuses_floats_and_reports_shapes():
    with pytest.raises(DTypeError, match="integer"):
        assert_bit_exact(np.array([1.0]), np.array([1]))
    with pytest.raises(BitExactMismatch, match=r"shape \(3,\), expected \(1, 3\)"):
        assert_bit_exact(np.array([1, 2, 3]), np.array([[1, 2, 3]]))
    with pytest.raises(ConfigError):
        assert_bit_exact(np.array([1]), np.array([1]), max_report=0)


# --------------------------------------------------------------------------------------------------
# five wrong candidates of the kinds teams ship
# --------------------------------------------------------------------------------------------------


def saturate_once_at_the_end(A, B, bias, *, acc_bits, **_):
    """Exact dot products, saturated once at the end (the spec saturates after every add)."""
    acc = IntType(acc_bits)
    return np.clip(A.astype(np.int64) @ B.astype(np.int64), acc.min, acc.max)


def _exact(x, scale):
    return [Fraction(int(v) * scale.m, 1 << scale.k) for v in x.reshape(-1)]


def ties_up(x, *, scale, out, zero_point, **_):
    """Ties rounded up (the spec: ties to even)."""
    r = [int((2 * v + 1) // 2) for v in _exact(x, scale)]  # floor(v + 1/2)
    return np.clip(np.array(r, dtype=object) + zero_point, out.min, out.max).astype(np.int64).reshape(x.shape)


def arithmetic_shift(x, *, scale, out, zero_point, **_):
    """``(x * m) >> k`` (floor) where a rounding divide (half away from zero) is specified."""
    r = (x.astype(object) * scale.m) >> scale.k
    return np.clip(r + zero_point, out.min, out.max).astype(np.int64)


def sign_extends_unsigned(A, B, bias, *, a, b, acc_bits, **_):
    """Operands sign-extended from their width whether or not the type is signed (a Verilog
    ``$signed`` on an unsigned port, a C ``int8_t`` cast of a ``uint8_t``)."""
    def sext(M, t):
        M = M.astype(np.int64)
        return np.where(M >= 1 << (t.bits - 1), M - (1 << t.bits), M)
    return IntType(acc_bits).wrap(sext(A, a) @ sext(B, b))


def clamps_before_rounding(x, *, scale, out, zero_point, **_):
    """Clamps the real value to the output range, then rounds and adds the zero point (the spec:
    round, add the zero point, then saturate)."""
    r = []
    for v in _exact(x, scale):
        c = min(max(v, Fraction(out.min)), Fraction(out.max))
        r.append(round(c) + zero_point)  # Python round: ties to even, as the spec
    return np.array(r, dtype=np.int64).reshape(x.shape)


WRONG = {
    "saturate_once": ("matmul", saturate_once_at_the_end, {"overflow": "saturate", "k_chunk": 1}),
    "ties_up": ("requantize", ties_up, {"mode": "dyadic", "rounding": "half_even"}),
    "arithmetic_shift": ("requantize", arithmetic_shift, {"mode": "dyadic", "rounding": "half_away"}),
    "sign_extension": ("matmul", sign_extends_unsigned, {"a": "uint8", "overflow": "wrap", "k_chunk": 1}),
    "clamp_first": ("requantize", clamps_before_rounding, {"mode": "dyadic", "rounding": "half_even"}),
}


def _agrees(case: GoldenCase, candidate) -> bool:
    """The candidate matches intsim on this case (an invalid case counts as agreeing)."""
    try:
        run = case.expected()
    except ConfigError:
        return True
    got = candidate(**case.call_args())
    return all(np.array_equal(np.asarray(got, dtype=object), np.asarray(e, dtype=object)) for _, e in run.outputs)


def _one_step_simpler(case: GoldenCase):
    """Every case one step simpler: one dimension one smaller, one constant one step toward 0."""
    from dataclasses import replace

    for key, v in case.shape.items():
        dims = list(v) if isinstance(v, list) else [v]
        for i, d in enumerate(dims):
            if d > 1:
                new = dims[:i] + [d - 1] + dims[i + 1:]
                yield replace(case, shape={**case.shape, key: new if isinstance(v, list) else new[0]})
    for name, dist in case.inputs.items():
        if dist.get("dist") == "constant" and dist["value"]:
            v = dist["value"]
            for w in sorted({0, v - (1 if v > 0 else -1), v // 2 if v > 0 else -(-v // 2)} - {v}, key=abs):
                yield replace(case, inputs={**case.inputs, name: {"dist": "constant", "value": w}})


@pytest.mark.parametrize("kind", sorted(WRONG))
def test_each_wrong_candidate_is_caught_shrunk_and_replayable(kind, tmp_path):
    op, candidate, config = WRONG[kind]
    out = tmp_path / "counterexample"
    with pytest.raises(CounterexampleFound) as ei:
        check_against(op, candidate, config=config, settings=CI, out=out)
    exc = ei.value
    # caught within the CI profile's example budget
    assert 1 <= exc.examples <= BUDGET
    case = exc.case
    assert isinstance(exc.mismatch, BitExactMismatch) and exc.mismatch.count >= 1
    # shrunk: a single output, and no one-step simpler case fails
    assert exc.mismatch.size == 1, str(exc)
    assert case.seed == 0 or all(d["dist"] == "constant" or d["dist"] in (
        "zeros", "most_negative", "most_positive", "alternating", "alternating_rows") for d in case.inputs.values())
    assert not _agrees(case, candidate)
    for simpler in _one_step_simpler(case):
        assert _agrees(simpler, candidate), f"{simpler} still fails: the counterexample was not minimal"
    # the message shows the case, the differing entry in hex and the replay commands
    msg = str(exc)
    assert f'operator = "{op}"' in msg and "(0x" in msg and "intsim golden compare" in msg
    # written as a one-case golden suite that verifies, with the candidate's dump beside it
    assert exc.out == out and exc.suite == out / "suite"
    assert verify_suite(exc.suite).ok
    report = compare_suite(exc.suite, exc.candidate_dumps)
    assert report.exit_code == 1 and len(report.cases) == 1
    # the suite's stored inputs are the case's inputs; intsim's own output passes the replay
    fixed = tmp_path / "fixed" / case.name
    fixed.mkdir(parents=True)
    expected = case.expected().outputs[0]
    (fixed / f"{expected[0].name}.npy").write_bytes((exc.suite / case.name / f"{expected[0].name}.npy").read_bytes())
    assert compare_suite(exc.suite, tmp_path / "fixed").exit_code == 0
    assert (out / "replay.txt").read_text().startswith("intsim golden verify")
    if kind == "saturate_once":
        # one product leaves the accumulator's range (saturates), the next one brings the sum back
        assert (case.shape["M"], case.shape["K"], case.shape["N"]) == (1, 2, 1), msg
        assert case.inputs["A"]["dist"] == "constant" and case.inputs["B"]["dist"] == "alternating_rows", msg
    if kind == "sign_extension":
        # the smallest uint8 with its top bit set, times a constant
        assert case.shape == {"M": 1, "K": 1, "N": 1}, msg
        assert case.inputs["A"] == {"dist": "constant", "value": 128} and case.inputs["B"]["dist"] == "constant"


def test_the_written_suite_verifies_with_the_command_line(tmp_path):
    with pytest.raises(CounterexampleFound) as ei:
        check_against("requantize", ties_up, config=WRONG["ties_up"][2], settings=CI, out=tmp_path / "cx")
    exe = [sys.executable, "-m", "intsim.golden"]
    r = subprocess.run(exe + ["verify", str(ei.value.suite)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(exe + ["compare", str(ei.value.suite), "--dut", str(ei.value.candidate_dumps)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "FAIL counterexample" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------------------------------
# intsim against itself
# --------------------------------------------------------------------------------------------------


def intsim_matmul(A, B, bias, **dp):
    return matmul(A, B, Datapath(**dp), bias)


def test_intsim_matmul_and_requantize_pass_against_themselves():
    r = check_against("matmul", intsim_matmul, settings=CI)
    assert r.examples == BUDGET and r.raised > 0  # some cases overflow under policy raise: both raise
    r = check_against("requantize", requantize, settings=CI)
    assert r.examples == BUDGET and r.outputs == ["y"]


@pytest.mark.parametrize("name", sorted(operators()))
def test_every_registered_operator_passes_against_itself(name):
    r = check_against(name, get_op(name).fn, settings=CI, max_examples=25)
    assert r.examples == 25


def test_on_raise_modes(tmp_path):
    def never_raises(A, B, bias, *, acc_bits, **_):
        return IntType(acc_bits).wrap(A.astype(np.int64) @ B.astype(np.int64))

    cfg = {"overflow": "raise", "k_chunk": 1, "a": "int8", "b": "int8"}
    with pytest.raises(CounterexampleFound, match="must flag this overflow") as ei:
        check_against("matmul", never_raises, config=cfg, settings=CI, out=tmp_path / "x")
    assert ei.value.case.expected().raises is not None and ei.value.mismatch is None
    assert check_against("matmul", never_raises, config=cfg, settings=CI, on_raise="compare").raised > 0
    assert check_against("matmul", never_raises, config=cfg, settings=CI, on_raise="skip").raised == 0


def test_a_candidate_that_raises_is_a_finding(tmp_path):
    def broken(x, **_):
        if (x < 0).any():
            raise ValueError("negative input")
        return requantize(x, **_).values

    with pytest.raises(CounterexampleFound, match="raised ValueError: negative input") as ei:
        check_against("requantize", broken, settings=CI, out=tmp_path / "x")
    assert ei.value.case.inputs["x"] == {"dist": "constant", "value": -1}


# --------------------------------------------------------------------------------------------------
# arguments and files
# --------------------------------------------------------------------------------------------------


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown operator"):
        check_against("ibert.sofmax", requantize)
    with pytest.raises(ConfigError, match="callable"):
        check_against("requantize", 3)
    with pytest.raises(ConfigError, match="on_raise"):
        check_against("requantize", requantize, on_raise="ignore")
    with pytest.raises(ConfigError, match=r"config\.rouding: unknown key"):
        check_against("requantize", requantize, config={"rouding": "half_even"})
    with pytest.raises(ConfigError, match="max_examples"):
        check_against("requantize", requantize, max_examples=0)


def test_an_output_directory_of_yours_is_never_replaced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists"):
        check_against("requantize", ties_up, config=WRONG["ties_up"][2], settings=CI, out=out)
    with pytest.raises(ConfigError, match="notes.txt"):
        check_against("requantize", ties_up, config=WRONG["ties_up"][2], settings=CI, out=out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # intsim's own counterexample directory is replaced with force
    with pytest.raises(CounterexampleFound):
        check_against("requantize", ties_up, config=WRONG["ties_up"][2], settings=CI, out=tmp_path / "cx")
    with pytest.raises(CounterexampleFound):
        check_against("requantize", arithmetic_shift, config=WRONG["arithmetic_shift"][2], settings=CI,
                      out=tmp_path / "cx", force=True)
    assert verify_suite(tmp_path / "cx" / "suite").ok


def test_the_example_runs_as_written(tmp_path):
    """examples/requant_bug.py (the README's example): the bug found, shrunk, replayed."""
    script = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "requant_bug.py"
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "cx")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'inputs = { x = { dist = "constant", value = -1 } }' in r.stdout
    assert "y[0]: expected -1 (0xff), actual 0 (0x00)" in r.stdout
    assert "FAIL counterexample" in r.stdout and "(exit status 1)" in r.stdout
    assert "PASS counterexample" in r.stdout and "(exit status 0)" in r.stdout
    assert verify_suite(tmp_path / "cx" / "suite").ok
