"""The ONNX conventions of the float requantization modes, bit for bit.

``ort_div`` / ``onnx_refeval_div`` / :func:`quantize_linear` (ONNX ``QuantizeLinear``: divide by
``y_scale``) and ``onnx_refeval`` (the ONNX reference evaluator's ``QLinearMatMul``: the zero
point added before rounding) against the unbounded-integer oracles of
:mod:`intsim.oracles.requant`, and against the real implementations on one-node models:
onnxruntime's CPU kernels (``InferenceSession``) and the ONNX reference evaluator
(``onnx.reference.ReferenceEvaluator``, ``op_quantize_linear.py`` and ``op_qlinear_matmul.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intsim.core.errors import ConfigError, DTypeError
from intsim.core.inttype import IntType
from intsim.oracles.requant import requantize_float, requantize_float_div, requantize_float_zp_first
from intsim.quant.requant import DIVIDING_MODES, REQUANT_MODES, onnx_multiplier, quantize_linear, requantize

QL_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16}


def _sat(v: np.ndarray, dt: type) -> np.ndarray:
    info = np.iinfo(dt)
    return np.clip(v, info.min, info.max)


# ------------------------------------------------------------------------------------------------
# the modes are registered, with their exact semantics on the tie cases of the issue
# ------------------------------------------------------------------------------------------------


def test_modes_registered():
    for m in ("onnx_refeval", "ort_div", "onnx_refeval_div"):
        assert m in REQUANT_MODES
    assert set(DIVIDING_MODES) == {"ort_div", "onnx_refeval_div"}


def test_tie_cases():
    # 75 / 30 = 2.5 exactly: ties to even; the reciprocal 1/30 in float32 gives 2.5000002
    assert requantize(np.array([75, -75]), 30.0, mode="ort_div").values.tolist() == [2, -2]
    assert requantize(np.array([75, -75]), 30.0, mode="onnx_refeval_div").values.tolist() == [2, -2]
    assert requantize(np.array([75]), 1 / 30, mode="ort_fp32").values.tolist() == [3]
    # QLinearMatMul, acc [1, 3, 5], m = 1*1/2, zero point 1
    acc = np.array([1, 3, 5])
    m = onnx_multiplier(1, 1, 2)
    assert requantize(acc, m, mode="onnx_refeval", zero_point=1).values.tolist() == [2, 2, 4]
    assert requantize(acc, m, mode="onnx_ref", zero_point=1).values.tolist() == [1, 3, 3]
    assert requantize(acc, m, mode="ort_fp32", zero_point=1).values.tolist() == [1, 3, 3]


def test_divisor_checks():
    with pytest.raises(ConfigError, match="rounds to zero in float32"):
        requantize([1], 1e-50, mode="ort_div")
    with pytest.raises(ConfigError, match="rounds to zero in float32"):
        requantize([1], 1e-50, mode="onnx_refeval_div")
    with pytest.raises(ConfigError, match="half to even"):
        requantize([1], 2.0, "half_up", mode="ort_div")
    with pytest.raises(ConfigError, match="no QuantizeLinear kernel for int32"):
        quantize_linear(np.array([1], dtype=np.int32), 1.0)
    with pytest.raises(DTypeError):
        quantize_linear(np.array([1.0]), 1.0)
    with pytest.raises(ConfigError, match="NaN"):
        quantize_linear(np.array([np.nan], dtype=np.float32), 1.0)
    with pytest.raises(ConfigError, match="out must be"):
        quantize_linear(np.array([1.0], dtype=np.float32), 1.0, 0, "int32")


def test_divide_overflow_saturates():
    x = np.array([2**40, -(2**40)])
    for mode in DIVIDING_MODES:
        r = requantize(x, 2.0**-126, mode=mode, in_type="int48", out="int16", zero_point=5)
        assert r.values.tolist() == [32767, -32768]
    v = quantize_linear(np.array([3e38, -3e38, np.inf, -np.inf], dtype=np.float32), 1e-3, 7, "uint8").values
    assert v.tolist() == [255, 0, 255, 0]


# ------------------------------------------------------------------------------------------------
# against the unbounded-integer oracles
# ------------------------------------------------------------------------------------------------

OUTS = [IntType(8), IntType(8, signed=False), IntType(16), IntType(16, signed=False), IntType(32), IntType(4)]


def _near_ties(draw, s: float) -> int:
    """An integer x near a tie of x / s or x * s (both directions), or at a range edge."""
    k = draw(st.integers(-(2**20), 2**20))
    which = draw(st.sampled_from(["div", "mul", "edge", "any"]))
    if which in ("div", "mul"):
        v = int(round((k + 0.5) * s if which == "div" else (k + 0.5) / s)) + draw(st.integers(-1, 1))
        return min(max(v, -(2**31)), 2**31 - 1)
    if which == "edge":
        return draw(st.sampled_from([-(2**31), 2**31 - 1, 2**24 + 1, -(2**24) - 1, 0, 1, -1]))
    return draw(st.integers(-(2**31), 2**31 - 1))


scales = st.one_of(st.sampled_from([30.0, 0.5, 2.0, 3.0, 1 / 3, 0.1, 7.0, 255.0, 1.5, 2.0**-10]),
                   st.floats(2.0**-20, 2.0**20).filter(lambda s: s > 0))


@settings(max_examples=300, deadline=None)
@given(st.data(), scales, st.sampled_from(OUTS), st.sampled_from(["round_then_saturate", "clamp_then_round"]))
def test_dividing_modes_match_oracle(data, s, out, order):
    xs = [_near_ties(data.draw, s) for _ in range(8)]
    zp = data.draw(st.integers(out.min, out.max))
    for mode, mant in (("ort_div", 24), ("onnx_refeval_div", 53)):
        got = requantize(np.array(xs), s, mode=mode, out=out, zero_point=zp, order=order).values.tolist()
        assert got == [requantize_float_div(x, s, mant, out, zp) for x in xs], (mode, xs, s, zp)


@settings(max_examples=300, deadline=None)
@given(st.data(), scales, st.sampled_from(OUTS), st.sampled_from(["round_then_saturate", "clamp_then_round"]))
def test_onnx_refeval_matches_oracle(data, s, out, order):
    s = float(np.float32(s))  # the multipliers of QLinearMatMul are float32 values
    xs = [_near_ties(data.draw, s) for _ in range(8)]
    zp = data.draw(st.integers(out.min, out.max))
    r = requantize(np.array(xs), s, mode="onnx_refeval", out=out, zero_point=zp, order=order, taps=True)
    assert r.values.tolist() == [requantize_float_zp_first(x, s, out, zp) for x in xs], (xs, s, zp)
    assert (r.taps["rounded"] == r.values - zp).all()
    # without a zero point it is onnx_ref
    ref = [requantize_float(x, s, 53, out, 0) for x in xs]
    assert requantize(np.array(xs), s, mode="onnx_refeval", out=out).values.tolist() == ref


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=8), scales,
       st.sampled_from(list(QL_TYPES)), st.data())
def test_quantize_linear_float32_matches_oracle(xs, s, out, data):
    from fractions import Fraction

    from intsim.oracles.rounding import float32, round_fraction, round_to_float

    out_t = IntType.parse(out)
    zp = data.draw(st.integers(out_t.min, out_t.max))
    got = quantize_linear(np.array(xs, dtype=np.float32), s, zp, out).values.tolist()
    want = []
    for x in xs:
        q = Fraction(x) / Fraction(float32(s))
        v = round_to_float(q, 24) if q else Fraction(0)
        want.append(min(max(round_fraction(v, "half_even") + zp, out_t.min), out_t.max))
    assert got == want
    # an integer-valued float32 x gives ort_div's result
    ints = [int(x) for x in np.array(xs, dtype=np.float32) if float(x).is_integer()]
    if ints:
        a = quantize_linear(np.array(ints, dtype=np.float32), s, zp, out).values
        assert a.tolist() == requantize(np.array(ints), s, mode="ort_div", out=out, zero_point=zp).values.tolist()


# ------------------------------------------------------------------------------------------------
# against onnxruntime and the ONNX reference evaluator, on one-node models
# ------------------------------------------------------------------------------------------------


def _ql_model(onnx, x_type: int, out: str, n: int):
    from onnx import TensorProto, helper

    ot = getattr(TensorProto, out.upper())
    vi = helper.make_tensor_value_info
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "ql",
                          [vi("x", x_type, [n]), vi("s", TensorProto.FLOAT, []), vi("z", ot, [])], [vi("y", ot, [n])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def _ql_inputs(rng, dt: type, n: int, kind: int):
    """float32 x and a scale: ties x = (k + 0.5) * s, their float32 neighbours, integers, randoms."""
    info = np.iinfo(dt)
    s = np.float32(rng.integers(1, 300)) if kind % 2 else np.float32(np.exp2(rng.uniform(-10, 10)))
    k = rng.integers(-2 * info.max, 2 * info.max, n)
    if kind % 4 == 0:
        x = ((k + 0.5) * np.float64(s)).astype(np.float32)
    elif kind % 4 == 1:
        x = rng.integers(-(2**20), 2**20, n).astype(np.float32)
    elif kind % 4 == 2:
        x = (rng.standard_normal(n) * np.float64(s) * info.max).astype(np.float32)
    else:
        x = ((k + 0.5) * np.float64(s)).astype(np.float32)
        x = np.nextafter(x, np.where(rng.random(n) < 0.5, -np.inf, np.inf).astype(np.float32))
    if kind % 5 == 0:  # integer ties, like 75 / 30
        x = np.round((k + 0.5) * np.float64(s)).astype(np.float32)
    return x, s


def _defined_in_reference(x: np.ndarray, s: np.float32) -> np.ndarray:
    """Where the reference evaluator's ``np.rint(x / s).astype(np.int32) + zp`` is defined."""
    return np.abs(x.astype(np.float64) / np.float64(s)) < 2.0**31 - 2.0**17


@pytest.mark.parametrize("out", list(QL_TYPES))
def test_quantize_linear_matches_onnxruntime_and_reference(out):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto
    from onnx.reference import ReferenceEvaluator

    dt = QL_TYPES[out]
    info = np.iinfo(dt)
    n = 1027  # vector bodies and a scalar tail
    model = _ql_model(onnx, TensorProto.FLOAT, out, n)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = ReferenceEvaluator(model)
    rng = np.random.default_rng(16)
    compared = ties = recip_differs = 0
    for trial in range(40):
        x, s = _ql_inputs(rng, dt, n, trial)
        zp = int(rng.integers(info.min, info.max + 1))
        feeds = {"x": x, "s": np.array(s), "z": np.array(zp, dtype=dt)}
        y_ort = sess.run(None, feeds)[0].astype(np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y_ref = ref.run(None, feeds)[0].astype(np.int64)
        ours = quantize_linear(x, float(s), zp, out).values
        np.testing.assert_array_equal(ours, y_ort)
        ok = _defined_in_reference(x, s)
        np.testing.assert_array_equal(ours[ok], y_ref[ok])
        integral = np.floor(x) == x
        if integral.any():
            xi = x[integral].astype(np.int64)
            np.testing.assert_array_equal(requantize(xi, float(s), mode="ort_div", out=out, zero_point=zp,
                                                     in_type="int48").values, y_ort[integral])
        q = x / s
        ties += int((q - np.floor(q) == 0.5).sum())
        recip = _sat(np.rint(x * (np.float32(1) / s)).astype(np.int64) + zp, dt)
        recip_differs += int((recip != y_ort).sum())
        compared += n
    # the comparisons covered float32 ties and cases that tell division from the reciprocal
    assert compared == 40 * n and ties > 1000 and recip_differs > 10


@pytest.mark.parametrize("out", list(QL_TYPES))
def test_quantize_linear_int32_matches_reference(out):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto
    from onnx.reference import ReferenceEvaluator

    dt = QL_TYPES[out]
    info = np.iinfo(dt)
    n = 1024
    ref = ReferenceEvaluator(_ql_model(onnx, TensorProto.INT32, out, n))
    rng = np.random.default_rng(21)
    div32_differs = 0
    for trial in range(40):
        s = np.float32(np.exp2(rng.uniform(-3, 16))) if trial % 2 else np.float32(rng.integers(1, 300))
        k = rng.integers(-2 * info.max, 2 * info.max, n)
        base = [rng.integers(-(2**31), 2**31, n), np.round((k + 0.5) * np.float64(s)),
                rng.integers(-(2**26), 2**26, n), np.round(k * np.float64(s))][trial % 4]
        x = np.clip(base + rng.integers(-1, 2, n), -(2**31), 2**31 - 1).astype(np.int32)
        zp = int(rng.integers(info.min, info.max + 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y_ref = ref.run(None, {"x": x, "s": np.array(s), "z": np.array(zp, dtype=dt)})[0].astype(np.int64)
        ok = _defined_in_reference(x, s)
        a = requantize(x, float(s), mode="onnx_refeval_div", out=out, zero_point=zp).values
        b = quantize_linear(x, float(s), zp, out, runtime="reference").values
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a[ok], y_ref[ok])
        div32 = requantize(x, float(s), mode="ort_div", out=out, zero_point=zp).values
        div32_differs += int((div32[ok] != y_ref[ok]).sum())
    assert div32_differs > 0  # float64 division, not float32's


def _qmm_model(t: int, M: int, K: int, N: int):
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    ins = [vi("a", t, [M, K]), vi("as", TensorProto.FLOAT, []), vi("az", t, []), vi("b", t, [K, N]),
           vi("bs", TensorProto.FLOAT, []), vi("bz", t, []), vi("ys", TensorProto.FLOAT, []), vi("yz", t, [])]
    node = helper.make_node("QLinearMatMul", [i.name for i in ins], ["y"])
    return helper.make_model(helper.make_graph([node], "qmm", ins, [vi("y", t, [M, N])]),
                             opset_imports=[helper.make_opsetid("", 21)])


def _qmm_scales(rng, trial: int, K: int):
    if trial % 3 == 0:  # m = 2**-j: ties
        return np.float32(1), np.float32(1), np.float32(2.0 ** rng.integers(1, 12))
    if trial % 3 == 1:
        a, b, y = (np.float32(rng.uniform(0.001, 0.1)) for _ in range(3))
        return a, b, np.float32(y * K * 20)
    return np.float32(rng.uniform(0.01, 1)), np.float32(rng.uniform(0.01, 1)), np.float32(rng.integers(1, 5000) / 7)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_qlinear_matmul_matches_onnxruntime_and_reference(dtype):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto
    from onnx.reference import ReferenceEvaluator

    dt = QL_TYPES[dtype]
    t = getattr(TensorProto, dtype.upper())
    info = np.iinfo(dt)
    rng = np.random.default_rng(7)
    # the example of the issue: acc [1, 3, 5], scales 1, 1, 2, zero point 1
    m = _qmm_model(t, 1, 1, 3)
    feeds = {"a": np.array([[1]], dt), "as": np.array(np.float32(1)), "az": np.array(0, dt),
             "b": np.array([[1, 3, 5]], dt), "bs": np.array(np.float32(1)), "bz": np.array(0, dt),
             "ys": np.array(np.float32(2)), "yz": np.array(1, dt)}
    assert ort.InferenceSession(m.SerializeToString()).run(None, feeds)[0].tolist() == [[1, 3, 3]]
    assert ReferenceEvaluator(m).run(None, feeds)[0].tolist() == [[2, 2, 4]]
    compared = zp_order_differs = 0
    for trial in range(120):
        M, K, N = int(rng.integers(1, 9)), int(rng.integers(1, 64)), int(rng.integers(1, 40))
        model = _qmm_model(t, M, K, N)
        a = rng.integers(info.min, info.max + 1, (M, K)).astype(dt)
        b = rng.integers(info.min, info.max + 1, (K, N)).astype(dt)
        az, bz = (int(rng.integers(info.min, info.max + 1)) for _ in range(2))
        yz = int(rng.integers(info.min, info.max + 1)) | 1  # odd zero points: the orders differ at ties
        as_, bs, ys = _qmm_scales(rng, trial, K)
        feeds = {"a": a, "as": np.array(as_), "az": np.array(az, dt), "b": b, "bs": np.array(bs),
                 "bz": np.array(bz, dt), "ys": np.array(ys), "yz": np.array(yz, dt)}
        y_ort = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0].astype(np.int64)
        y_ref = ReferenceEvaluator(model).run(None, feeds)[0].astype(np.int64)
        acc = (a.astype(np.int64) - az) @ (b.astype(np.int64) - bz)
        mult = onnx_multiplier(float(as_), float(bs), float(ys))
        mine_ort = requantize(acc, mult, mode="ort_fp32", out=dtype, zero_point=yz).values
        mine_ref = requantize(acc, mult, mode="onnx_refeval", out=dtype, zero_point=yz).values
        np.testing.assert_array_equal(mine_ort, y_ort)
        np.testing.assert_array_equal(mine_ref, y_ref)
        zp_order_differs += int((requantize(acc, mult, mode="onnx_ref", out=dtype, zero_point=yz).values
                                 != y_ref).sum())
        compared += acc.size
    assert compared > 5000 and zp_order_differs > 0


def test_qlinear_matmul_multiplier_is_float32():
    """Both runtimes compute ``a_scale * b_scale / y_scale`` in float32 (``onnx_multiplier``): on
    scales where the float64 quotient rounds to a different float32, and accumulators at the
    tie of the float32 multiplier, the outputs follow the float32 one."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(3)
    found = 0
    for _ in range(4000):
        as_, bs, ys = (np.float32(rng.uniform(0.5, 1)) for _ in range(3))
        m32 = onnx_multiplier(float(as_), float(bs), float(ys))
        m64 = float(np.float32(np.float64(as_) * np.float64(bs) / np.float64(ys)))
        if m32 == m64:
            continue
        # accumulators 0..255 (a = acc, b = 1): the two multipliers must round some of them differently
        acc = np.arange(256, dtype=np.int64).reshape(1, 256)
        r32 = requantize(acc, m32, mode="ort_fp32", out="uint8").values
        r64 = requantize(acc, m64, mode="ort_fp32", out="uint8").values
        e32 = requantize(acc, m32, mode="onnx_refeval", out="uint8").values
        e64 = requantize(acc, m64, mode="onnx_refeval", out="uint8").values
        if (r32 == r64).all() and (e32 == e64).all():
            continue
        model = _qmm_model(TensorProto.UINT8, 256, 1, 1)
        feeds = {"a": acc.reshape(256, 1).astype(np.uint8), "as": np.array(as_), "az": np.array(0, np.uint8),
                 "b": np.ones((1, 1), np.uint8), "bs": np.array(bs), "bz": np.array(0, np.uint8),
                 "ys": np.array(ys), "yz": np.array(0, np.uint8)}
        y_ort = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0].reshape(-1)
        y_ref = ReferenceEvaluator(model).run(None, feeds)[0].reshape(-1)
        np.testing.assert_array_equal(y_ort, r32.reshape(-1))
        np.testing.assert_array_equal(y_ref, e32.reshape(-1))
        found += 1
        if found >= 3:
            break
    if found == 0:
        pytest.skip("no scale triple separated the float32 and float64 multipliers")


def test_quantize_linear_per_channel_zero_points_and_nan_as_onnxruntime():
    """One QuantizeLinear for intsim.onnx and users: per-channel zero points are the scalar call per
    column; nan="minimum" is ONNX Runtime's NaN (the type's minimum), the default refuses NaN."""
    from intsim import quantize_linear
    from intsim.core.errors import ConfigError

    x = np.array([[0.5, -7.25, 300.0], [np.inf, -1.0, 2.5]], dtype=np.float32)
    scale = np.array([0.5, 0.25, 2.0], dtype=np.float32)
    zp = np.array([3, -4, 0], dtype=np.int8)
    got = quantize_linear(x, scale, zp, "int8").values
    for j in range(3):
        col = quantize_linear(np.ascontiguousarray(x[:, j]), float(scale[j]), int(zp[j]), "int8").values
        assert got[:, j].tolist() == col.tolist()
    x[0, 1], x[1, 2] = np.nan, -np.inf  # the per-channel path (numpy) and the per-tensor one (numba) agree
    got = quantize_linear(x, scale, zp, "int8", nan="minimum").values
    for j in range(3):
        col = quantize_linear(np.ascontiguousarray(x[:, j]), float(scale[j]), int(zp[j]), "int8", nan="minimum")
        assert got[:, j].tolist() == col.values.tolist()
    assert got.tolist() == [[4, -128, 127], [127, -8, -128]]
    y = np.array([1.0, np.nan, -3.0], dtype=np.float32)
    assert quantize_linear(y, 1.0, 10, "uint8", nan="minimum").values.tolist() == [11, 0, 7]
    with pytest.raises(ConfigError, match="NaN"):
        quantize_linear(y, 1.0, 10, "uint8")
    for bad in ({"nan": "zero"}, {"y_zero_point": np.array([300], np.int64)}, {"y_zero_point": 0.5}):
        kw = {"y_zero_point": 0, **bad}
        with pytest.raises(ConfigError):
            quantize_linear(y[:1], 1.0, out="uint8", **kw)
