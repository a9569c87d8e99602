"""intsim.onnx's float32 operators against ONNX Runtime (CPU execution provider, ORT_DISABLE_ALL), bit for bit.

Each operator runs as a one-node model in ONNX Runtime and through intsim's operator function (the
same model in :func:`intsim.onnx.run_model`) on the same inputs; every output element must have the
same 32 bits (NaN payloads and the sign of zero included). The inputs: normal values at scales from
1e-3 to 100, the operators' range ends and clamps, denormals, +-0, random finite bit patterns,
element counts that are not multiples of the vector widths, softmax rows of 1..1000 elements with
ties of the maximum, layer-norm rows with large offsets and zero variance, and the non-finite
values (+-inf, quiet and signaling NaNs with payloads: what ONNX Runtime returns for them is what
intsim returns, see :mod:`intsim.onnx.mlas`); reductions over every kind of axis set; float
MatMul/FusedMatMul where MLAS's SGEMM order is fixed. Then whole decomposed LayerNorm/GELU graphs,
as written and as ONNX Runtime's default optimizations fuse them (BiasGelu, SkipLayerNormalization).

The kernels copy ONNX Runtime 1.32's on a CPU with AVX-512F, AVX2 and FMA3; elsewhere ONNX Runtime
dispatches other kernels, so the comparisons are skipped there.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_models import save_graph  # noqa: E402

from intsim.onnx import check_against_ort, mlas, run_model  # noqa: E402
from intsim.onnx.sgemm import SGEMM_THREADS  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not ort.__version__.startswith(mlas.REFERENCE_ORT + "."),
                       reason=f"the kernels are ONNX Runtime {mlas.REFERENCE_ORT}'s; installed {ort.__version__}"),
    pytest.mark.skipif(not mlas.reference_dispatch(),
                       reason="ONNX Runtime dispatches other kernels on a CPU without AVX-512F/AVX2/FMA3"),
]

F32 = np.float32
MS = "com.microsoft"


def _f32(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=np.uint32).view(F32)


# -- models and the comparison ------------------------------------------------------------------------


def _model(op: str, feeds: dict, attrs: dict | None = None, inits: dict | None = None, *, domain: str = "",
           opset: int = 17, n_out: int = 1, names: list[str] | None = None):
    """A one-node model: ``feeds`` are graph inputs (their dims symbolic, so one session serves every
    shape), ``inits`` initializers; ``names`` orders the node's inputs ('' for an omitted one)."""
    inits = inits or {}
    names = names if names is not None else list(feeds) + list(inits)
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    vi = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                        [f"{n}_{k}" for k in range(a.ndim)]) for n, a in feeds.items()]
    vo = [helper.make_value_info(o, onnx.TypeProto()) for o in outs]
    g = helper.make_graph([node], op, vi, vo, [numpy_helper.from_array(a, n) for n, a in inits.items()])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(MS, 1)] if domain == MS else [])
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 8
    return m


@functools.cache
def _session(blob: bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = SGEMM_THREADS  # MLAS splits a float GEMM by threads: as intsim.onnx.check does
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])


#: elements compared per operator (reported in the s28 note; the assertions are per call)
CHECKED: dict[str, int] = {}


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _assert_same(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (what, ours.dtype, ours.shape, theirs.dtype,
                                                                       theirs.shape)
    bad = np.flatnonzero(_bits(ours).reshape(-1) != _bits(theirs).reshape(-1))
    if bad.size:
        i = int(bad[0])
        o, t = ours.reshape(-1)[i], theirs.reshape(-1)[i]
        raise AssertionError(f"{what}: {bad.size} of {ours.size} elements differ; first at flat index {i}: "
                             f"intsim {o!r} ({_bits(np.array([o]))[0]:#x}), ONNX Runtime {t!r} "
                             f"({_bits(np.array([t]))[0]:#x})")


def _check(label: str, op: str, feeds: dict, attrs: dict | None = None, inits: dict | None = None, **kw) -> None:
    m = _model(op, feeds, attrs, inits, **kw)
    theirs = _session(m.SerializeToString()).run(None, feeds)
    ours = run_model(m, feeds).outputs
    for k, t in enumerate(theirs):
        _assert_same(ours[f"y{k}"], t, f"{label} output {k}")
        CHECKED[label] = CHECKED.get(label, 0) + np.asarray(t).size


# -- inputs -----------------------------------------------------------------------------------------------

EDGES = np.array([
    0.0, 1e-45, 3e-45, 1e-40, 1.1754942e-38, 1.17549435e-38, 1e-30, 1e-7, 1e-3, 0.1, 0.5, 0.75, 0.9,
    0.921875, 0.92187506, 0.9218749, 1.0, 1.3037281, 1.5, 2.0, 3.0, 3.725, 3.8, 3.925, 3.9250002, 4.0, 5.0,
    5.55, 8.99, 9.0, 9.01, 10.0, 17.9, 18.0, 18.1, 20.0, 50.0, 87.0, 88.37626, 88.7228, 88.72284, 88.776,
    88.77627, 89.0, 100.0, 103.972, 103.97209, 104.0, 1e6, 1e20, 1e30, 3.4028235e38], dtype=F32)


def _elementwise_inputs(seed: int) -> np.ndarray:
    """About 60 000 finite float32 values; the count is odd (every vector tail runs)."""
    rng = np.random.default_rng(seed)
    parts = [(rng.standard_normal(4000) * s).astype(F32) for s in (1e-3, 0.1, 0.5, 1, 2, 4, 10, 30, 100)]
    parts.append(rng.uniform(-25, 25, 8000).astype(F32))
    parts.append(rng.uniform(-110, 95, 4000).astype(F32))
    bits = rng.integers(0, 2**32, 12000, dtype=np.uint64).astype(np.uint32).view(F32)
    parts.append(bits[np.isfinite(bits)])
    up = np.nextafter(EDGES[:-1], F32(np.inf))
    parts += [EDGES, -EDGES, up, -up]
    x = np.concatenate(parts)
    return x[: x.size - (x.size % 16) + 13]


NONFINITE = np.concatenate([np.array([np.inf, -np.inf, np.nan, -np.nan], F32),
                            _f32(0x7FC12345, 0xFFC12345, 0x7F812345, 0xFF812345, 0x7F800001, 0x7FFFFFFF, 0x7FC00001)])

UNARY = [  # label, op, attrs, domain, opset
    ("Erf", "Erf", {}, "", 17),
    ("Exp", "Exp", {}, "", 17),
    ("Tanh", "Tanh", {}, "", 17),
    ("Sigmoid", "Sigmoid", {}, "", 17),
    ("com.microsoft.Gelu", "Gelu", {}, MS, 17),
    ("Gelu-20", "Gelu", {}, "", 20),
    ("Gelu-20 tanh", "Gelu", {"approximate": "tanh"}, "", 20),
    ("com.microsoft.FastGelu", "FastGelu", {}, MS, 17),
    ("Sqrt", "Sqrt", {}, "", 17),
    ("Reciprocal", "Reciprocal", {}, "", 17),
    ("Neg", "Neg", {}, "", 17),
    ("Abs", "Abs", {}, "", 17),
    ("Relu", "Relu", {}, "", 17),
]


@pytest.mark.parametrize(("label", "op", "attrs", "domain", "opset"), UNARY, ids=[u[0] for u in UNARY])
def test_elementwise_operator_is_bit_identical(label, op, attrs, domain, opset):
    for seed in (1, 2):
        x = _elementwise_inputs(seed)
        _check(label, op, {"x": x}, attrs, domain=domain, opset=opset)
    _check(label + " (inf, NaN)", op, {"x": NONFINITE}, attrs, domain=domain, opset=opset)
    for n in (1, 7, 15, 16, 17, 31, 33):  # short buffers: only the kernels' tails run
        _check(label, op, {"x": _elementwise_inputs(n)[:n]}, attrs, domain=domain, opset=opset)


@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=70))
def test_elementwise_operators_any_float32(xs):
    x = np.array(xs, dtype=F32)
    for label, op, attrs, domain, opset in UNARY[:8]:
        _check(label + " (hypothesis)", op, {"x": x}, attrs, domain=domain, opset=opset)


def test_nonfinite_values_as_onnxruntime_returns_them():
    """The documented cases: NaN in, NaN out with its payload (quieted; Gelu returns even a
    signaling NaN unchanged), erf(+-inf) = +-1, exp(+inf) = +inf, exp(-inf) = 0."""
    x = NONFINITE
    assert mlas.erf(x[:2]).tolist() == [1.0, -1.0]
    assert mlas.exp(x[:2]).tolist() == [np.inf, 0.0]
    assert _bits(mlas.erf(_f32(0x7F812345)))[0] == 0x7FC12345
    assert _bits(mlas.gelu(_f32(0x7F812345)))[0] == 0x7F812345
    assert _bits(mlas.tanh(_f32(0xFFC12345)))[0] == 0xFFC12345


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_ieee_operators(op):
    a, b = _elementwise_inputs(3), _elementwise_inputs(4)
    n = min(a.size, b.size)
    _check(op, op, {"a": a[:n], "b": b[:n]})
    _check(op + " broadcast", op, {"a": a[:n - n % 10].reshape(-1, 10), "b": b[:10]})


@pytest.mark.parametrize("exponent", [np.array(2, F32), np.array([3], F32), np.array(0.5, F32), np.array(1.7, F32),
                                      np.array(-1.25, F32), np.array(2, np.int64), np.array(5, np.int64),
                                      np.array([-3], np.int32)],
                         ids=["2", "3", "0.5", "1.7", "-1.25", "int64-2", "int64-5", "int32--3"])
def test_pow(exponent):
    x = _elementwise_inputs(5)
    x = np.abs(x) if float(exponent.reshape(-1)[0]) % 1 else x
    _check("Pow", "Pow", {"x": x}, inits={"e": exponent})


def test_pow_elementwise_exponent():
    rng = np.random.default_rng(6)
    x, e = rng.uniform(0, 10, 3001).astype(F32), rng.uniform(-4, 4, 3001).astype(F32)
    e[:3] = [2, 3, 0]
    _check("Pow", "Pow", {"x": x, "e": e})


# -- softmax ----------------------------------------------------------------------------------------------

ROW_LENGTHS = list(range(1, 100)) + [127, 128, 129, 143, 144, 145, 255, 256, 257, 383, 384, 385, 500, 511, 512, 513,
                                     767, 768, 769, 999, 1000]


def _softmax_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(n) * s for s in (0.01, 1, 10, 100)]
    tie = rng.standard_normal(n)
    tie[rng.integers(0, n, 3)] = 4.0  # the maximum several times
    rows += [tie, np.full(n, 2.5), np.where(rng.random(n) < 0.5, -200.0, 0.0), rng.standard_normal(n) * 1e-30]
    return np.array(rows, dtype=F32)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_rows_of_every_length(op):
    for n in ROW_LENGTHS:
        _check(op, op, {"x": _softmax_rows(n, n)}, {"axis": -1})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_softmax_axis_semantics(op, opset, axis):
    """Opset 13 normalizes along ``axis`` only; below 13 the input is coerced to 2-D at ``axis``."""
    x = (np.random.default_rng(7).standard_normal((3, 5, 21)) * 4).astype(F32)
    _check(f"{op} axis", op, {"x": x}, {"axis": axis}, opset=opset)


def test_softmax_nonfinite_rows():
    x = np.array([[1, 2, np.inf, 3], [1, 2, -np.inf, 3], [1, np.nan, 2, 3], [-np.inf] * 4, [np.inf] * 4,
                  [3.4e38, -3.4e38, 0, 1], [0, 0, 0, 0]], F32)
    _check("Softmax (inf, NaN)", "Softmax", {"x": x}, {"axis": -1})
    _check("LogSoftmax (inf, NaN)", "LogSoftmax", {"x": x}, {"axis": -1})


@given(st.integers(1, 80).flatmap(lambda n: st.lists(st.floats(-1e4, 1e4, width=32), min_size=n, max_size=n)))
def test_softmax_any_row(xs):
    x = np.array([xs], dtype=F32)
    _check("Softmax (hypothesis)", "Softmax", {"x": x}, {"axis": -1})


# -- layer normalization ----------------------------------------------------------------------------------

LN_LENGTHS = list(range(1, 70)) + [127, 128, 129, 383, 384, 385, 768, 1000]


def _ln_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(n) * s + o for s, o in ((1, 0), (0.01, 0.3), (100, -5), (1, 1000), (1e-3, 1e4))]
    rows += [np.full(n, 0.7), rng.standard_normal(n) * 1e-20, rng.standard_normal(n) * 1e17]
    return np.array(rows, dtype=F32)


def test_layer_norm_rows_of_every_length():
    for n in LN_LENGTHS:
        rng = np.random.default_rng(n)
        g, b = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)
        x = _ln_rows(n, n)
        for eps in (1e-5, 1e-12, 0.25):
            _check("LayerNormalization", "LayerNormalization", {"x": x}, {"axis": -1, "epsilon": eps},
                   {"g": g, "b": b}, n_out=3)
        _check("LayerNormalization (no bias)", "LayerNormalization", {"x": x}, {"axis": -1}, {"g": g}, n_out=3)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_layer_norm_axis(axis):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((3, 4, 6)) * 3 + 1).astype(F32)
    shape = x.shape[axis % 3:]
    g, b = rng.standard_normal(shape).astype(F32), rng.standard_normal(shape).astype(F32)
    _check("LayerNormalization axis", "LayerNormalization", {"x": x}, {"axis": axis}, {"g": g, "b": b}, n_out=3)


def test_layer_norm_nonfinite():
    x = np.array([[1, 2, np.inf] + [0] * 6, [1, np.nan] + [0] * 7, [3.4e38] * 9, [-3.4e38, 3.4e38] + [0] * 7], F32)
    for n in (3, 9):
        _check("LayerNormalization (inf, NaN)", "LayerNormalization", {"x": x[:, :n]}, {"axis": -1},
               {"g": np.ones(n, F32), "b": np.zeros(n, F32)}, n_out=3)


@given(st.integers(1, 40).flatmap(lambda n: st.lists(st.floats(-1e6, 1e6, width=32), min_size=n, max_size=n)))
def test_layer_norm_any_row(xs):
    x = np.array([xs], dtype=F32)
    n = x.shape[1]
    g = np.linspace(-2, 2, n, dtype=F32)
    _check("LayerNormalization (hypothesis)", "LayerNormalization", {"x": x}, {"axis": -1},
           {"g": g, "b": g[::-1].copy()}, n_out=3)


def test_skip_layer_norm():
    for n in [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 384, 385]:
        rng = np.random.default_rng(100 + n)
        x = _ln_rows(n, n).reshape(2, 4, n)
        s = rng.standard_normal((2, 4, n)).astype(F32)
        g, be, bi = (rng.standard_normal(n).astype(F32) for _ in range(3))
        _check("SkipLayerNormalization", "SkipLayerNormalization", {"x": x, "s": s}, {"epsilon": 1e-5},
               {"g": g, "be": be, "bi": bi}, domain=MS, n_out=4)
        _check("SkipLayerNormalization (no beta, no bias)", "SkipLayerNormalization", {"x": x, "s": s}, {},
               {"g": g}, domain=MS, n_out=4)
        _check("SkipLayerNormalization (skip broadcast)", "SkipLayerNormalization", {"x": x, "s": s[0]},
               {"epsilon": 1e-6}, {"g": g, "be": be}, domain=MS)


def test_bias_gelu_and_fast_gelu_with_bias():
    x = _elementwise_inputs(9)
    x = x[: x.size - x.size % 96].reshape(-1, 96)
    b = np.random.default_rng(9).standard_normal(96).astype(F32)
    _check("com.microsoft.BiasGelu", "BiasGelu", {"x": x}, inits={"b": b}, domain=MS)
    _check("com.microsoft.FastGelu (bias)", "FastGelu", {"x": x}, inits={"b": b}, domain=MS)


# -- reductions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum"])
def test_reductions_over_trailing_and_leading_axes(op, opset):
    """Trailing axes (Eigen's packet sum per row, whose head depends on the row's 16-byte
    alignment), leading axes (rows added in order), leading and trailing (blocks), all axes."""
    axes_input = opset >= 18 or op == "ReduceSum"
    for n in [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 33, 100, 384, 385, 1000]:
        rng = np.random.default_rng(n)
        for shape, axes in (((5, n), [-1]), ((3, 2, n), [2]), ((3, 2, n), [1, 2]), ((n, 6), [0]), ((n, 3, 2), [0, 1]),
                            ((3, 5, n), [0, 2]), ((2, n), [0, 1]), ((1, 3, n), [-1])):
            x = (rng.standard_normal(shape) * 10 + 3).astype(F32)
            for keep in (0, 1):
                if axes_input:
                    _check(op, op, {"x": x}, {"keepdims": keep}, {"a": np.array(axes, np.int64)}, opset=opset)
                else:
                    _check(op, op, {"x": x}, {"axes": axes, "keepdims": keep}, opset=opset)


def test_reductions_over_middle_axes():
    """Middle axes: ONNX Runtime multiplies a ones row by each block in SGEMM's M = 1 kernel (rows
    added four at a time); every remainder of K mod 4."""
    for n in range(1, 14):
        rng = np.random.default_rng(200 + n)
        for shape, axes in (((3, n, 5), [1]), ((2, n, 17), [1]), ((4, n, 2, 3), [1]), ((2, 3, n, 9), [1, 2]),
                            ((2, n, 384), [1])):
            x = (rng.standard_normal(shape) * 10 + 3).astype(F32)
            for op in ("ReduceMean", "ReduceSum"):
                _check(op + " (middle axes)", op, {"x": x}, {"keepdims": 1}, {"a": np.array(axes, np.int64)}, opset=18)


def test_clip():
    """``x < min ? min : x``, then ``> max``: NaN passes, the sign of zero stays unless a bound
    replaces it, an absent bound is the lowest/highest finite value (+-inf become +-FLT_MAX)."""
    x = np.concatenate([np.array([np.nan, -np.nan, -0.0, 0.0, -1, 2, 0.5, np.inf, -np.inf, 1.0, 1e-45], F32),
                        _elementwise_inputs(12)[:3000]])
    for lo, hi in ((0.0, 1.0), (-0.0, 1.0), (0.0, -0.0), (-0.0, 0.0), (-6.0, 6.0)):
        _check("Clip", "Clip", {"x": x}, inits={"lo": np.array(lo, F32), "hi": np.array(hi, F32)})
    _check("Clip", "Clip", {"x": x}, inits={"lo": np.array(0.0, F32)})
    _check("Clip", "Clip", {"x": x}, inits={"hi": np.array(0.5, F32)}, names=["x", "", "hi"])
    _check("Clip", "Clip", {"x": x}, {"min": -0.5, "max": 0.25}, opset=10)
    _check("Clip", "Clip", {"x": np.arange(-5, 5, dtype=np.int64)}, inits={"lo": np.array(-2, np.int64)})


# -- float products (MLAS's SGEMM: thread split, K slices, M = 1 kernels) ---------------------------------

SGEMM_SHAPES = [(2, 32, 7), (7, 32, 7), (12, 7, 32), (5, 100, 3), (16, 128, 64), (40, 300, 9), (3, 1000, 16),
                (256, 32, 256), (256, 256, 32), (8, 129, 8), (3, 2, 2), (2, 1, 3), (9, 1100, 40), (18, 384, 1536),
                (18, 1536, 384), (1, 5, 9), (1, 8, 16), (1, 33, 40), (1, 384, 384), (1, 3, 2), (1, 1, 7), (1, 17, 1)]


def test_float_matmul():
    """M = 1 (SgemmKernelM1Avx), K in one SGEMM block and K over several (a Transformer's linear
    layers, K = 384 and 1536): 2-D, a batched 4-D product as attention computes it, a 3-D A times a
    2-D B (one flattened product)."""
    rng = np.random.default_rng(13)
    for m, k, n in SGEMM_SHAPES:
        a, b = rng.standard_normal((m, k)).astype(F32), rng.standard_normal((k, n)).astype(F32)
        _check("MatMul", "MatMul", {"a": a, "b": b})
    q, kt = rng.standard_normal((2, 3, 9, 32)).astype(F32), rng.standard_normal((2, 3, 32, 9)).astype(F32)
    _check("MatMul (batched)", "MatMul", {"a": q, "b": kt})
    _check("MatMul (broadcast batch)", "MatMul", {"a": q, "b": kt[:1]})
    _check("MatMul (3-D x 2-D)", "MatMul", {"a": rng.standard_normal((2, 1, 40)).astype(F32),
                                            "b": rng.standard_normal((40, 24)).astype(F32)})
    for alpha, ta, tb in ((0.125, 0, 0), (1.0, 0, 1), (0.1767767, 0, 1), (2.0, 1, 0)):
        _check("com.microsoft.FusedMatMul", "FusedMatMul", {"a": q, "b": q if ta or tb else kt},
               {"alpha": alpha, "transA": ta, "transB": tb}, domain=MS)


# -- shape producers and comparisons ----------------------------------------------------------------------


def test_equal_expand_constant_of_shape():
    a = np.array([[1.0, np.nan, -0.0, 2.0]], F32)
    b = np.array([[1.0], [np.nan], [0.0]], F32)
    _check("Equal", "Equal", {"a": a, "b": b})
    _check("Equal", "Equal", {"a": np.array([1, 2, 3], np.int64), "b": np.array([3, 2, 1], np.int64)})
    _check("Expand", "Expand", {"a": a}, inits={"s": np.array([3, 1, 4], np.int64)})
    _check("Expand", "Expand", {"a": b}, inits={"s": np.array([1, 3, 2], np.int64)})
    s = np.array([2, 0, 3], np.int64)
    _check("ConstantOfShape", "ConstantOfShape", {"s": s})
    for v in (np.array([1.5], F32), np.array([7], np.int64), np.array([True])):
        _check("ConstantOfShape", "ConstantOfShape", {"s": s[[0, 2]]}, {"value": numpy_helper.from_array(v)})


# -- whole graphs: the decomposed patterns and ONNX Runtime's fusions of them -------------------------------


def _decomposed_block(tmp, opset: int):
    """x (B, T, E) -> GELU(x + b) in its erf decomposition -> + x -> LayerNorm decomposed as exporters
    write it -> Softmax over a scaled copy."""
    E = 48
    rng = np.random.default_rng(10)
    inits = {"b": rng.standard_normal(E).astype(F32), "sqrt2": np.array(np.sqrt(2), F32),
             "one": np.array(1, F32), "half": np.array(0.5, F32), "two": np.array(2, F32),
             "eps": np.array(1e-12, F32), "gamma": rng.standard_normal(E).astype(F32),
             "beta": rng.standard_normal(E).astype(F32), "scale": np.array(0.125, F32)}
    axes = {"axes": [-1]} if opset < 18 else {}
    rm_in = (lambda t: [t]) if opset < 18 else (lambda t: [t, "axes_t"])
    if opset >= 18:
        inits["axes_t"] = np.array([-1], np.int64)
    n = helper.make_node
    nodes = [n("Add", ["x", "b"], ["h0"]), n("Div", ["h0", "sqrt2"], ["h1"]), n("Erf", ["h1"], ["h2"]),
             n("Add", ["h2", "one"], ["h3"]), n("Mul", ["h0", "h3"], ["h4"]), n("Mul", ["h4", "half"], ["g"]),
             n("Add", ["g", "x"], ["r"]),
             n("ReduceMean", rm_in("r"), ["mu"], **axes), n("Sub", ["r", "mu"], ["d"]), n("Pow", ["d", "two"], ["d2"]),
             n("ReduceMean", rm_in("d2"), ["var"], **axes), n("Add", ["var", "eps"], ["ve"]), n("Sqrt", ["ve"], ["sd"]),
             n("Div", ["d", "sd"], ["z"]), n("Mul", ["z", "gamma"], ["zg"]), n("Add", ["zg", "beta"], ["y"]),
             n("Mul", ["y", "scale"], ["s"]), n("Softmax", ["s"], ["p"], axis=-1)]
    return save_graph(tmp / f"block{opset}.onnx", nodes,
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", E])],
                      [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["B", "T", E])], inits, opset=opset)


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("mode", ["disabled", "enabled"])
def test_decomposed_transformer_block_every_tensor(tmp_path, opset, mode):
    """Every tensor of the graph as written (mode disabled) and of the graph ONNX Runtime really
    runs after its default optimizations (BiasGelu, LayerNormalization/SkipLayerNormalization
    fusions), floats included, bit for bit."""
    path = _decomposed_block(tmp_path, opset)
    x = (np.random.default_rng(11).standard_normal((2, 7, 48)) * 2).astype(F32)
    rep = check_against_ort(path, {"x": x}, optimization=mode)
    assert rep.ok, rep.table()
    assert all(t.ok for t in rep.tensors), rep.table(all_rows=True)
    if mode == "enabled":
        assert {"LayerNormalization", "SkipLayerNormalization"} & set(rep.ops), rep.ops
