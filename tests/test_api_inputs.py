"""Hostile inputs at the public entry points: every user mistake gives a typed
:class:`~intsim.IntsimError` that says what and where, never a raw TypeError,
ValueError, MaskError or OverflowError, and never a silent wrong answer.

The rules under test (see ``intsim/_arrays.py``):

* ``np.matrix`` is read as the 2-D ndarray it holds; a masked array as its data
  when nothing is masked, and refused (DTypeError) when an entry is masked;
* lists and tuples are checked element by element: a bool, float (NaN and Inf
  included), string or None inside is refused like the matching array, ints
  beyond 64 bits raise OperandRangeError, ragged nesting ShapeError;
* an empty list is an empty integer (or, for the quantizers, float) array of the
  shape numpy gives it: ``[]`` is (0,), ``[[]]`` is (1, 0);
* a configuration argument of the wrong kind (``matmul(A, B, "int8")``) is a
  ConfigError with a hint.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import intsim
import intsim.core.arrays as arrays
from intsim import (
    ConfigError,
    Datapath,
    DTypeError,
    IntsimError,
    IntType,
    OperandRangeError,
    ShapeError,
    compare_strategies,
    gemm_ops,
    isqrt_op,
    llm_int8_matmul,
    matmul,
    quantize_per_token,
    quantize_rtn,
    trace_output,
    unpack_matmul,
    unpack_operands,
    unpack_stats,
)
from intsim.core.arrays import as_int_array
from intsim.ops.isqrt import isqrt
from intsim.quant.quantizers import as_real_array

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

OK_INT = np.array([[1, 2], [3, 4]], dtype=np.int64)
OK_REAL = np.array([[1.0, -2.5], [3.0, 0.5]])
DP = Datapath()

# ---------------------------------------------------------------------------------------------
# the battery: every array-taking public function x every hostile input
# ---------------------------------------------------------------------------------------------

# name -> (call on the hostile argument, family). Families: "int2d" (integer matrices),
# "int_elem" (elementwise on integer arrays of any shape), "real2d" (real matrices),
# "real_any" (real arrays of any shape), "dims" (gemm_ops: integer dimensions, no arrays).
FUNCTIONS = {
    "matmul/A": (lambda x: matmul(x, OK_INT, DP), "int2d"),
    "matmul/B": (lambda x: matmul(OK_INT, x, DP), "int2d"),
    "trace_output": (lambda x: trace_output(x, OK_INT, DP, 0, 0), "int2d"),
    "gemm_ops": (lambda x: gemm_ops(x, 2, 2, DP), "dims"),
    "unpack_matmul": (lambda x: unpack_matmul(x, OK_INT), "int2d"),
    "unpack_operands": (lambda x: unpack_operands(OK_INT, x), "int2d"),
    "unpack_stats": (lambda x: unpack_stats(x, OK_INT, "row", "col", 4), "int2d"),
    "compare_strategies": (lambda x: compare_strategies(x, OK_INT, 4), "int2d"),
    "llm_int8_matmul": (lambda x: llm_int8_matmul(x, OK_REAL), "real2d"),
    "quantize_rtn": (lambda x: quantize_rtn(x, 15), "real_any"),
    "quantize_per_token": (lambda x: quantize_per_token(x), "real2d"),
    "isqrt": (lambda x: isqrt(x), "int_elem"),
    "isqrt_op": (lambda x: isqrt_op(x), "int_elem"),
}

ACCEPT = "accept"  # the call succeeds and equals the call on the plain ndarray ``ref``


def _masked():
    return np.ma.array([[1, 2], [3, 4]], mask=[[False, True], [False, False]])


# name -> (make the input, the plain array it stands for when accepted, outcome per family).
# An outcome is ACCEPT or the IntsimError subclass due; "dims" is ConfigError throughout.
_2X2 = [[1, 2], [3, 4]]
HOSTILE = {
    "np.matrix": (lambda: np.matrix(_2X2), np.array(_2X2),
                  dict(int2d=ACCEPT, int_elem=ACCEPT, real2d=ACCEPT, real_any=ACCEPT)),
    "masked, one entry masked": (_masked, None,
                                 dict(int2d=DTypeError, int_elem=DTypeError, real2d=DTypeError, real_any=DTypeError)),
    "masked, nothing masked": (lambda: np.ma.array(_2X2), np.array(_2X2),
                               dict(int2d=ACCEPT, int_elem=ACCEPT, real2d=ACCEPT, real_any=ACCEPT)),
    "[]": (lambda: [], np.zeros(0, np.int64),
           dict(int2d=ShapeError, int_elem=ACCEPT, real2d=ShapeError, real_any=ACCEPT)),
    # (1, 0) against a 2 x 2 partner: the inner dimensions differ (empty products: see test_empty_lists)
    "[[]]": (lambda: [[]], np.zeros((1, 0), np.int64),
             dict(int2d=ShapeError, int_elem=ACCEPT, real2d=ShapeError, real_any=ACCEPT)),
    "[[1, True], [3, 4]]": (lambda: [[1, True], [3, 4]], None,
                            dict(int2d=DTypeError, int_elem=DTypeError, real2d=DTypeError, real_any=DTypeError)),
    "[[1, 2.5], [3, 4]]": (lambda: [[1, 2.5], [3, 4]], np.array([[1, 2.5], [3, 4]]),
                           dict(int2d=DTypeError, int_elem=DTypeError, real2d=ACCEPT, real_any=ACCEPT)),
    "[[1, 2.0], [3, 4]]": (lambda: [[1, 2.0], [3, 4]], np.array([[1.0, 2.0], [3, 4]]),
                           dict(int2d=DTypeError, int_elem=DTypeError, real2d=ACCEPT, real_any=ACCEPT)),
    "float array with NaN": (lambda: np.array([[1.0, np.nan], [3.0, 4.0]]), None,
                             dict(int2d=DTypeError, int_elem=DTypeError, real2d=OperandRangeError,
                                  real_any=OperandRangeError)),
    "list with inf": (lambda: [[1, float("inf")], [3, 4]], None,
                      dict(int2d=DTypeError, int_elem=DTypeError, real2d=OperandRangeError,
                           real_any=OperandRangeError)),
    "list with 2**70": (lambda: [[1, 2**70], [3, 4]], None,
                        dict(int2d=OperandRangeError, int_elem=OperandRangeError, real2d=OperandRangeError,
                             real_any=OperandRangeError)),
    # fits uint64 but not int64: numpy would read [1, 2**63] as float64; intsim reads it exactly
    "list with 2**63": (lambda: [[1, 2**63], [3, 4]], np.array([[1, 2**63], [3, 4]], dtype=np.uint64),
                        dict(int2d=OperandRangeError, int_elem=ACCEPT, real2d=OperandRangeError,
                             real_any=OperandRangeError)),
    "list with -1 and 2**63": (lambda: [[-1, 2**63], [3, 4]], None,
                               dict(int2d=OperandRangeError, int_elem=OperandRangeError,
                                    real2d=OperandRangeError, real_any=OperandRangeError)),
    "ragged list": (lambda: [[1, 2], [3]], None,
                    dict(int2d=ShapeError, int_elem=ShapeError, real2d=ShapeError, real_any=ShapeError)),
    "3-D array": (lambda: np.arange(8).reshape(2, 2, 2), np.arange(8).reshape(2, 2, 2),
                  dict(int2d=ShapeError, int_elem=ACCEPT, real2d=ShapeError, real_any=ACCEPT)),
    "string array": (lambda: np.array([["1", "2"], ["3", "4"]]), None,
                     dict(int2d=DTypeError, int_elem=DTypeError, real2d=DTypeError, real_any=DTypeError)),
    "list of strings": (lambda: [["1", 2], [3, 4]], None,
                        dict(int2d=DTypeError, int_elem=DTypeError, real2d=DTypeError, real_any=DTypeError)),
    "None": (lambda: None, None,
             dict(int2d=DTypeError, int_elem=DTypeError, real2d=DTypeError, real_any=DTypeError)),
    "list with None": (lambda: [[1, None], [3, 4]], None,
                       dict(int2d=DTypeError, int_elem=DTypeError, real2d=DTypeError, real_any=DTypeError)),
    "object array of ints": (lambda: np.array(_2X2, dtype=object), np.array(_2X2),
                             dict(int2d=ACCEPT, int_elem=ACCEPT, real2d=ACCEPT, real_any=ACCEPT)),
    "object array with a float": (lambda: np.array([[1, 2.5], [3, 4]], dtype=object),
                                  np.array([[1, 2.5], [3, 4]]),
                                  dict(int2d=DTypeError, int_elem=DTypeError, real2d=ACCEPT, real_any=ACCEPT)),
    "tuple of tuples": (lambda: ((1, 2), (3, 4)), np.array(_2X2),
                        dict(int2d=ACCEPT, int_elem=ACCEPT, real2d=ACCEPT, real_any=ACCEPT)),
}

# where a function's own rule decides: quantize_per_token takes any 2-D matrix, (1, 0) included
OVERRIDES = {("quantize_per_token", "[[]]"): ACCEPT}


def _expected(fname: str, hname: str):
    family = FUNCTIONS[fname][1]
    if (fname, hname) in OVERRIDES:
        return OVERRIDES[fname, hname]
    return ConfigError if family == "dims" else HOSTILE[hname][2][family]


def _norm(r):
    """A comparable, type-revealing form of any result (arrays must come back as plain ndarrays)."""
    if isinstance(r, np.ndarray):
        assert type(r) is np.ndarray, f"a {type(r).__name__} came back, a plain ndarray is due"
        return ("ndarray", r.shape, r.tolist())
    if isinstance(r, dict):
        return {k: _norm(v) for k, v in r.items()}
    if isinstance(r, (list, tuple)):
        return [_norm(v) for v in r]
    if hasattr(r, "values") and not isinstance(r, dict):
        return _norm(r.values)
    if hasattr(r, "__dataclass_fields__"):
        return {k: _norm(getattr(r, k)) for k in r.__dataclass_fields__ if k != "datapath"}
    return r


@pytest.mark.parametrize("hname", list(HOSTILE))
@pytest.mark.parametrize("fname", list(FUNCTIONS))
def test_hostile_input_battery(fname, hname):
    call = FUNCTIONS[fname][0]
    make, ref, _ = HOSTILE[hname]
    want = _expected(fname, hname)
    if want is ACCEPT:
        assert _norm(call(make())) == _norm(call(ref))
        return
    with pytest.raises(IntsimError) as info:
        call(make())
    assert type(info.value) is want or isinstance(info.value, want), f"{type(info.value).__name__}: {info.value}"
    assert str(info.value)  # says something


@pytest.mark.parametrize("bias, err", [
    (lambda: np.matrix([[1, 2]]), ShapeError),  # read as its (1, 2) ndarray: not a vector
    (lambda: np.ma.array([1, 2], mask=[True, False]), DTypeError),
    ([], ShapeError),
    ([1, True], DTypeError),
    ([1, 2.0], DTypeError),
    ([1, 2**70], OperandRangeError),
    ([1, 2**40], OperandRangeError),  # outside the 32-bit accumulator
    ([[1], [2, 3]], ShapeError),
    ("12", DTypeError),
])
def test_hostile_bias(bias, err):
    with pytest.raises(err):
        matmul(OK_INT, OK_INT, DP, bias=bias() if callable(bias) else bias)
    assert matmul(OK_INT, OK_INT, DP, bias=np.ma.array([1, 2])).values.tolist() == [[8, 12], [16, 24]]
    assert matmul(OK_INT, OK_INT, DP, bias=(1, 2)).values.tolist() == [[8, 12], [16, 24]]


# ---------------------------------------------------------------------------------------------
# finding 1: np.matrix and masked arrays
# ---------------------------------------------------------------------------------------------

def test_matrix_is_read_as_its_ndarray_without_a_copy():
    m = np.matrix([[1, -2], [3, 4]], dtype=np.int8)
    arr = as_int_array(m, "A")
    assert type(arr) is np.ndarray and arr.dtype == np.int8 and np.shares_memory(arr, m)
    r = matmul(m, m.T)
    assert type(r.values) is np.ndarray
    assert r.values.tolist() == (np.asarray(m, np.int64) @ np.asarray(m, np.int64).T).tolist()
    assert unpack_matmul(m, m.T, Datapath(IntType(4), IntType(4))).values.tolist() == r.values.tolist()


def test_masked_entry_is_refused_naming_it():
    x = np.ma.array([[1, 2, 3], [4, 5, 6]], mask=[[0, 0, 0], [0, 1, 1]])
    with pytest.raises(DTypeError, match=r"A: a masked array with 2 masked entries \(first at index \(1, 1\)\)"):
        matmul(x, np.ones((3, 1), np.int64))
    with pytest.raises(DTypeError, match="masked"):
        quantize_rtn(x.astype(float), 15)
    # filled explicitly, it is an ordinary array
    assert matmul(x.filled(0), np.ones((3, 1), np.int64)).values.ravel().tolist() == [6, 4]


def test_masked_array_without_masked_entries_is_its_data():
    x = np.ma.array([[1, 2], [3, 4]], mask=np.zeros((2, 2), bool))
    assert matmul(x, OK_INT).values.tolist() == (OK_INT @ OK_INT).tolist()
    assert type(as_int_array(np.ma.array(np.matrix(_2X2)), "x")) is np.ndarray


# ---------------------------------------------------------------------------------------------
# finding 2: configuration arguments of the wrong kind
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda dp: matmul(OK_INT, OK_INT, dp),
    lambda dp: trace_output(OK_INT, OK_INT, dp, 0, 0),
    lambda dp: gemm_ops(2, 2, 2, dp),
    lambda dp: unpack_matmul(OK_INT, OK_INT, dp),
    lambda dp: unpack_operands(OK_INT, OK_INT, dp),
    lambda dp: llm_int8_matmul(OK_REAL, OK_REAL, datapath=dp),
], ids=["matmul", "trace_output", "gemm_ops", "unpack_matmul", "unpack_operands", "llm_int8_matmul"])
def test_datapath_must_be_a_datapath(call):
    with pytest.raises(ConfigError, match=r"got str 'int8'.*Datapath\(a=IntType\(8\), b=IntType\(8\)\)"):
        call("int8")
    with pytest.raises(ConfigError, match=r"got str 'uint4'.*IntType\(4, signed=False\)"):
        call("uint4")
    with pytest.raises(ConfigError, match=r"must be an intsim.Datapath, got int 8"):
        call(8)


@pytest.mark.parametrize("call, err, match", [
    (lambda: Datapath(a=8), ConfigError, "Datapath a must be an IntType or a name"),
    (lambda: Datapath(acc_bits="32"), ConfigError, "acc_bits must be an integer"),
    (lambda: IntType("int8"), ConfigError, r"IntType.parse\('int8'\)"),
    (lambda: IntType.parse(8), ConfigError, r"IntType\(8\)"),
    (lambda: trace_output(OK_INT, OK_INT, DP, 2, 0), ShapeError, r"output index \(2, 0\) is outside the 2x2"),
    (lambda: trace_output(OK_INT, OK_INT, DP, -1, 0), ShapeError, "outside"),
    (lambda: trace_output(OK_INT, OK_INT, DP, 0.0, 0), ConfigError, "i must be an integer"),
    (lambda: trace_output(OK_INT, np.ones((3, 2), np.int64), DP, 0, 0), ShapeError, "inner dimensions differ"),
    (lambda: trace_output(OK_INT * 100, OK_INT, DP, 0, 0), OperandRangeError, "outside int8"),
    (lambda: gemm_ops(2, -1, 2, DP), ConfigError, "K must be a non-negative integer"),
    (lambda: gemm_ops(2, 2.0, 2, DP), ConfigError, "K must be a non-negative integer"),
    (lambda: compare_strategies(OK_INT, OK_INT, 4, "row"), ConfigError, r"e.g. \('row',\)"),
    (lambda: compare_strategies(OK_INT, OK_INT, 4, None), ConfigError, "strategies must be a tuple"),
    (lambda: unpack_matmul(OK_INT, OK_INT, admit_min="yes"), ConfigError, "admit_min must be True or False"),
    (lambda: unpack_matmul(OK_INT, OK_INT, strategy_a=["row"]), ConfigError, "strategy_a must be one of"),
    (lambda: unpack_matmul(OK_INT, OK_INT, bits="4"), ConfigError, "bits must be an integer"),
    (lambda: quantize_rtn(OK_REAL, "15"), ConfigError, "levels"),
    (lambda: quantize_rtn(OK_REAL, 15, granularity=["row"]), ConfigError, "granularity"),
    (lambda: quantize_rtn(OK_REAL, 15, min_alpha="0"), ConfigError, "min_alpha"),
    (lambda: quantize_per_token(OK_REAL, "8"), ConfigError, "bits"),
    (lambda: llm_int8_matmul(OK_REAL, OK_REAL, threshold="6"), ConfigError, "threshold"),
    (lambda: isqrt_op(OK_INT, in_type=8), ConfigError, "not an integer type name"),
])
def test_config_arguments_of_the_wrong_kind(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_config_arguments_accepted_in_numpy_and_list_forms():
    dp = Datapath(acc_bits=np.int64(16), k_chunk=np.int32(2))
    assert dp.acc_bits == 16 and type(dp.acc_bits) is int and dp == Datapath(acc_bits=16, k_chunk=2)
    assert matmul(OK_INT, OK_INT, Datapath(a="int8", b="int8")).values.tolist() == (OK_INT @ OK_INT).tolist()
    assert unpack_matmul(OK_INT, OK_INT, bits=[4, 4]).bits_a == 4
    assert quantize_rtn(OK_REAL, 15, min_alpha=np.float32(1e-20)).values.shape == (2, 2)
    assert gemm_ops(np.int64(2), 3, 4, DP) == gemm_ops(2, 3, 4, DP)
    assert trace_output(OK_INT, OK_INT, DP, np.int64(1), 1) == [6, 22]


# ---------------------------------------------------------------------------------------------
# finding 3: empty lists
# ---------------------------------------------------------------------------------------------

def test_empty_lists():
    a = as_int_array([], "A")
    assert a.dtype == np.int64 and a.shape == (0,)
    b = as_int_array([[]], "A")
    assert b.dtype == np.int64 and b.shape == (1, 0)
    with pytest.raises(ShapeError, match=r"A: a 2-D matrix is due, got shape \(0,\)"):
        matmul([], OK_INT)
    r = matmul([[]], np.zeros((0, 3), np.int8))  # M=1, K=0, N=3: nothing to add
    assert r.values.tolist() == [[0, 0, 0]]
    assert matmul([[]], np.zeros((0, 2), np.int64), bias=[5, -5]).values.tolist() == [[5, -5]]
    assert unpack_matmul([[], []], np.zeros((0, 2), np.int64)).values.tolist() == [[0, 0], [0, 0]]
    assert isqrt([]).shape == (0,) and isqrt([[]]).shape == (1, 0)
    assert quantize_rtn([], 15).values.shape == (0,)
    # an empty *array* has a dtype: a float one is still refused, with a hint
    with pytest.raises(DTypeError, match=r"empty array needs an integer dtype too"):
        matmul(np.zeros((1, 0)), np.zeros((0, 3), np.int64))


# ---------------------------------------------------------------------------------------------
# finding 4: lists are checked element by element, ndarrays by dtype only
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x, err, match", [
    ([[1, True]], DTypeError, r"A: entry \(0, 1\) is bool \(True\)"),
    ([[np.bool_(False), 1]], DTypeError, r"A: entry \(0, 0\) is bool"),
    ([[1, 2.0]], DTypeError, r"A: entry \(0, 1\) is float \(2.0\)"),
    ([[1, 2], [3, float("nan")]], DTypeError, r"A: entry \(1, 1\) is float \(nan\)"),
    ([[1, np.float32(-np.inf)]], DTypeError, r"A: entry \(0, 1\) is float32"),
    ([[1, 1j]], DTypeError, r"A: entry \(0, 1\) is complex"),
    ([[1, "2"]], DTypeError, r"A: entry \(0, 1\) is str"),
    ([[1, 2**64]], OperandRangeError, r"A: 1 entries cannot be represented in int64 .*index \(0, 1\)"),
    ([[-(2**63) - 1, 0]], OperandRangeError, r"index \(0, 0\)"),
    ([[1, 2], [3]], ShapeError, "ragged"),
    ([[1, 2], 3], ShapeError, "ragged"),
    (np.array([[1, 2.5]], dtype=object), DTypeError, r"A: entry \(0, 1\) is float"),
    (np.array([[1, True]], dtype=object), DTypeError, r"A: entry \(0, 1\) is bool"),
    (2.5, DTypeError, "float64"),
    ("12", DTypeError, "str"),
])
def test_integer_lists_are_checked_element_by_element(x, err, match):
    with pytest.raises(err, match=match):
        as_int_array(x, "A")


def test_integer_list_conversions():
    assert as_int_array([[1, 2**63]], "A").dtype == np.uint64  # not float64: exact
    assert as_int_array([[1, 2**63]], "A").tolist() == [[1, 2**63]]
    assert isqrt([[2**64 - 1]]).tolist() == [[2**32 - 1]]
    obj = np.array([[2**62, -(2**63)]], dtype=object)
    assert as_int_array(obj, "A").dtype == np.int64 and as_int_array(obj, "A").tolist() == [[2**62, -(2**63)]]
    assert as_int_array([np.int8(3), np.uint16(7)], "A").tolist() == [3, 7]
    assert as_int_array((np.arange(3), (4, 5, 6)), "A").tolist() == [[0, 1, 2], [4, 5, 6]]
    assert as_int_array([np.array(1), np.array(2)], "A").tolist() == [1, 2]  # 0-d arrays inside a list
    assert as_int_array([np.matrix([[1, 2]]), np.matrix([[3, 4]])], "A").tolist() == [[[1, 2]], [[3, 4]]]
    assert as_int_array([np.ma.array([1, 2]), [3, 4]], "A").tolist() == [[1, 2], [3, 4]]
    with pytest.raises(DTypeError, match="masked array inside the sequence has a masked entry"):
        as_int_array([np.ma.array([1, 2], mask=[False, True]), [3, 4]], "A")


@pytest.mark.parametrize("x, err, match", [
    ([[1.5, True]], DTypeError, r"x: entry \(0, 1\) is bool"),
    ([[1.5, None]], DTypeError, r"x: entry \(0, 1\) is NoneType"),
    ([[0.5, 2**53 + 1]], OperandRangeError, r"exceed 2\*\*53 .*index \(0, 1\)"),  # float64 would round it
    ([[1, 2], [3]], ShapeError, "ragged"),
    (np.array([1.5, "a"], dtype=object), DTypeError, r"x: entry \(1,\) is str"),
])
def test_real_lists_are_checked_element_by_element(x, err, match):
    with pytest.raises(err, match=match):
        as_real_array(x)


def test_real_list_conversions():
    assert as_real_array([[1, 2.5]]).tolist() == [[1.0, 2.5]]
    assert as_real_array([[2**53, -1]]).tolist() == [[2.0**53, -1.0]]
    assert as_real_array(np.array([[1, 0.25]], dtype=object)).dtype == np.float64
    assert as_real_array([]).shape == (0,) and as_real_array([[]]).shape == (1, 0)


def test_ndarray_input_is_never_scanned(monkeypatch):
    """The array path looks at the dtype only: no element scan, no copy (O(1) per call)."""
    def boom(*args, **kwargs):
        raise AssertionError("an ndarray was scanned element by element")
    monkeypatch.setattr(arrays, "scan_elements", boom)
    monkeypatch.setattr(arrays, "read_sequence", boom)
    x = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert as_int_array(x, "A") is x
    t = x.T
    assert as_int_array(t, "A") is t
    assert matmul(x, x.T).values.shape == (3, 3)


# ---------------------------------------------------------------------------------------------
# the same matrix in every form gives the same product
# ---------------------------------------------------------------------------------------------

def _forms(M: np.ndarray):
    """The int64 matrix M as every accepted input form that holds its values."""
    out = [M.tolist(), tuple(map(tuple, M.tolist())), np.matrix(M), M.astype(object), np.ma.array(M),
           [list(map(np.int64, row)) for row in M.tolist()]]
    lo, hi = (int(M.min()), int(M.max())) if M.size else (0, 0)
    for dt in (np.int8, np.int16, np.int32, np.int64, np.dtype(">i4"), np.dtype("<i2"),
               np.uint8, np.uint16, np.uint64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            out.append(M.astype(dt))
            out.append(np.asfortranarray(M.astype(dt)))
    return out


@given(st.data())
def test_matmul_same_result_for_every_input_form(data):
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    lo = data.draw(st.sampled_from([-128, 0]))
    el = st.integers(lo, 127)
    A = np.array(data.draw(st.lists(st.lists(el, min_size=k, max_size=k), min_size=m, max_size=m)), np.int64)
    B = np.array(data.draw(st.lists(st.lists(el, min_size=n, max_size=n), min_size=k, max_size=k)), np.int64)
    want = (A @ B).tolist()
    dp = Datapath(acc_bits=24, overflow="wrap")
    for fa in _forms(A):
        r = matmul(fa, B, dp)
        assert type(r.values) is np.ndarray and r.values.dtype == np.int64
        assert r.values.tolist() == want, type(fa)
    for fb in _forms(B):
        assert matmul(A, fb, dp).values.tolist() == want, type(fb)


def test_every_error_is_an_intsim_error():
    assert all(issubclass(e, IntsimError) for e in (ConfigError, DTypeError, ShapeError, OperandRangeError))
    assert intsim.DTypeError is DTypeError


def test_isqrt_op_variant_must_be_a_name():
    from intsim import isqrt_op
    from intsim.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown variant"):
        isqrt_op(np.array([4, 9]), variant=["newton"])
