"""Input validation shared by every public entry point (internal).

intsim computes on integers only. These helpers turn array-likes into numpy
integer arrays and refuse, with a typed error that names the argument, anything
that is not an integer: floats (even integral ones), complex, bool, strings and
Python objects that do not fit 64 bits.

What is accepted, and how (the same for every function that takes arrays):

* numpy integer arrays of any dtype pass through unchanged (no copy, no pass
  over the data: the dtype alone decides);
* ``np.matrix`` and other ndarray subclasses are read as the plain ndarray they
  hold (an O(1) view; a matrix is always 2-D), so results are plain ndarrays;
* masked arrays (``np.ma``) with no masked entry are read as their data; a
  masked entry has no integer value, so any masked entry raises
  :class:`~intsim.core.errors.DTypeError` naming the first one (fill or drop them
  first, e.g. ``x.filled(0)``);
* Python ints and (nested) lists or tuples of ints become int64 arrays (uint64
  when a value needs it); every element of a list is type-checked, so a bool
  or float inside a list is refused just like a bool or float array; values
  beyond 64 bits raise :class:`~intsim.core.errors.OperandRangeError`;
* an empty list has no dtype and no values: ``[]`` and ``[[]]`` become empty
  int64 arrays of shapes (0,) and (1, 0) (a function due a matrix then checks
  the shape as for any array);
* ragged lists (rows of different lengths) raise :class:`~intsim.core.errors.ShapeError`;
* object arrays are checked element by element: Python ints (and numpy integer
  scalars) are converted like a list, anything else is refused;
* ``None``, strings, bytes, complex and float data raise :class:`~intsim.core.errors.DTypeError`.
"""

from __future__ import annotations

import itertools
import reprlib
from typing import Any

import numpy as np

from .errors import DTypeError, OperandRangeError, ShapeError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlist = 4
_short.maxtuple = 4


def short_repr(x: Any) -> str:
    """A repr short enough for an error message."""
    if isinstance(x, np.ndarray):
        return _describe(x)
    return _short.repr(x)


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__


def _index(pos: int, shape: tuple) -> tuple:
    return tuple(int(i) for i in np.unravel_index(pos, shape)) if shape else ()


def read_array_like(x: Any, name: str, what: str) -> np.ndarray:
    """``np.asarray(x)`` as a plain ndarray (subclasses through :func:`plain_array`); an object numpy
    cannot read is a DTypeError saying it is not ``what`` (e.g. ``"an integer array"``)."""
    try:
        arr = np.asarray(x)
    except (OverflowError, ValueError, TypeError) as exc:
        raise DTypeError(f"{name}: {type(x).__name__} cannot be read as {what} ({exc})") from None
    return arr if type(arr) is np.ndarray else plain_array(arr, name)


def plain_array(x: np.ndarray, name: str) -> np.ndarray:
    """An ndarray subclass as a plain ndarray (O(1) for every subclass but a masked array
    with a mask, whose mask is checked in one vectorized pass).

    ``np.matrix`` becomes the 2-D ndarray it holds. A masked array with no masked entry
    becomes its data; one with a masked entry raises :class:`~intsim.core.errors.DTypeError`.
    """
    if isinstance(x, np.ma.MaskedArray):
        mask = np.ma.getmask(x)
        if mask is not np.ma.nomask and mask.any():
            flat = np.flatnonzero(np.asarray(mask).reshape(-1))
            raise DTypeError(
                f"{name}: a masked array with {flat.size} masked entr{'y' if flat.size == 1 else 'ies'} "
                f"(first at index {_index(int(flat[0]), x.shape)}); a masked entry has no value to compute "
                "with: fill the masked entries first (e.g. x.filled(0)) or pass x.data to use the "
                "stored values")
        x = np.ma.getdata(x)
    return x.view(np.ndarray)


_SCALARS = (int, float, complex, str, bytes, np.generic, type(None))


def read_sequence(x: list | tuple, name: str) -> tuple[np.ndarray, list | None]:
    """A (nested) list or tuple as numpy reads it, and its elements in row-major order as
    they were given (bools stay bools, Python ints stay exact; None when there are none).
    Ragged nesting raises ShapeError."""
    try:
        try:
            arr = np.asarray(x)
        except OverflowError:  # a value no numpy integer dtype holds: read the Python objects
            arr = np.array(x, dtype=object)
    except (ValueError, TypeError) as exc:
        raise ShapeError(f"{name}: a nested sequence whose rows have different lengths (ragged) cannot be "
                         f"read as an array ({exc})") from None
    if arr.size == 0:
        return arr, None
    if arr.dtype == object:
        return arr, arr.reshape(-1).tolist()
    flat: Any = x
    for _ in range(arr.ndim - 1):  # flatten the nesting numpy found, without building an object array
        flat = itertools.chain.from_iterable(flat)
    flat = list(flat)
    if len(flat) != arr.size or not all(issubclass(t, _SCALARS) for t in set(map(type, flat))):
        if any(v is np.ma.masked for v in flat):  # numpy would read the stored value under the mask
            raise DTypeError(f"{name}: a masked array inside the sequence has a masked entry; a masked entry has "
                             "no value to compute with: fill it first (e.g. x.filled(0))")
        obj = np.empty(arr.shape, dtype=object)  # unusual nesting (e.g. matrices inside a list)
        obj[...] = x
        flat = [v[()] if isinstance(v, np.ndarray) and v.ndim == 0 else v for v in obj.reshape(-1).tolist()]
    return arr, flat


def scan_elements(flat: list, shape: tuple, name: str, *, real: bool = False) -> list:
    """Check the types of the elements ``flat`` (row-major, of an array of ``shape``).

    Integers (Python ints and numpy integer scalars; never bools) are due, and with
    ``real`` also floats (Python and numpy). Anything else raises DTypeError naming the
    first offending entry (row-major) and its type. Returns ``flat``.
    """
    types = set(map(type, flat))
    if types <= {int}:
        return flat
    ok = (int, np.integer, float, np.floating) if real else (int, np.integer)
    bad = {t for t in types if issubclass(t, (bool, np.bool_)) or not issubclass(t, ok)}
    if bad:
        pos = next(p for p, v in enumerate(flat) if type(v) in bad)
        v = flat[pos]
        where = f"entry {_index(pos, shape)}" if shape else "the value"
        due = "real numbers are due" if real else "integers are due"
        if isinstance(v, (bool, np.bool_)):
            hint = "; bools are refused (convert them explicitly, e.g. int(v))"
        elif isinstance(v, (list, tuple, np.ndarray)):
            hint = " (a sequence inside the array: ragged or too deeply nested input?)"
        elif isinstance(v, (float, np.floating)):
            hint = (": quantize first (for example intsim.quant.quantizers) or, if the values are integral, "
                    "convert them with int() after checking them")
        else:
            hint = ""
        raise DTypeError(f"{name}: {where} is {type(v).__name__} ({short_repr(v)}); {due}{hint}")
    return flat


def _ints_to_array(vals: list, shape: tuple, name: str) -> np.ndarray:
    """Python ints (already type-checked) as int64, or uint64 when a value needs it."""
    if not vals:
        return np.zeros(shape, dtype=np.int64)
    if not all(type(v) is int for v in vals):
        vals = [int(v) for v in vals]
    lo, hi = min(vals), max(vals)
    if lo >= INT64_MIN and hi <= INT64_MAX:
        return np.array(vals, dtype=np.int64).reshape(shape)
    if lo >= 0 and hi <= UINT64_MAX:
        return np.array(vals, dtype=np.uint64).reshape(shape)
    bad = next(p for p, v in enumerate(vals) if not (INT64_MIN <= v <= UINT64_MAX) or (v < 0 and hi > INT64_MAX))
    idx = _index(bad, shape)
    count = sum(1 for v in vals if not (INT64_MIN <= v <= INT64_MAX))
    raise OperandRangeError(
        f"{name}: {count} entries cannot be represented in int64 (nor all in uint64); "
        f"first at index {idx}: {vals[bad]}", count=count, index=idx, value=vals[bad])


def _object_to_int(arr: np.ndarray, name: str) -> np.ndarray:
    return _ints_to_array(scan_elements(arr.reshape(-1).tolist(), arr.shape, name), arr.shape, name)


def _int_sequence(x: list | tuple, name: str) -> np.ndarray:
    arr, flat = read_sequence(x, name)
    if flat is None:
        return np.zeros(arr.shape, dtype=np.int64)  # no elements, no dtype: an empty integer array
    vals = scan_elements(flat, arr.shape, name)
    if arr.dtype.kind in "iu":
        return arr  # integers only, read exactly (numpy goes to float or object when a dtype cannot hold them)
    return _ints_to_array(vals, arr.shape, name)  # e.g. [-1, 2**63] (float64 in numpy) or values beyond int64


def as_int_array(x: Any, name: str = "x") -> np.ndarray:
    """Return ``x`` as a numpy array of a signed or unsigned integer dtype (see the module docs).

    Integer ndarrays pass through unchanged (no copy). Python ints and nested
    lists of them are converted (to int64, or to uint64 when a value needs it).
    Floats, complex numbers, bools, strings, None and other objects raise
    :class:`~intsim.core.errors.DTypeError`; values beyond 64 bits raise
    :class:`~intsim.core.errors.OperandRangeError`; ragged lists
    :class:`~intsim.core.errors.ShapeError`.
    """
    if type(x) is np.ndarray:  # the common case: nothing but the dtype is looked at
        arr = x
    elif isinstance(x, np.ndarray):
        arr = plain_array(x, name)
    elif isinstance(x, (bool, np.bool_)):
        raise DTypeError(f"{name}: got a bool where an integer is due; convert it explicitly with int()")
    elif isinstance(x, (int, np.integer)):
        v = int(x)
        if INT64_MIN <= v <= INT64_MAX:
            return np.asarray(v, dtype=np.int64)
        if 0 <= v <= UINT64_MAX:
            return np.asarray(v, dtype=np.uint64)
        raise OperandRangeError(f"{name}: the value {v} does not fit 64 bits", count=1, index=(), value=v)
    elif x is None:
        raise DTypeError(f"{name}: got None where an integer array is due")
    elif isinstance(x, (list, tuple)):
        return _int_sequence(x, name)
    elif isinstance(x, (str, bytes)):
        raise DTypeError(f"{name}: got a {type(x).__name__} ({short_repr(x)}) where an integer array is due")
    else:
        arr = read_array_like(x, name, "an integer array")
    if arr.dtype == object:
        arr = _object_to_int(arr, name)
    kind = arr.dtype.kind
    if kind in "iu":
        return arr
    if kind == "b":
        raise DTypeError(f"{name}: got a bool array ({_describe(arr)}) where integers are due; "
                         "convert it explicitly, e.g. x.astype(np.int8)")
    if kind == "f":
        empty = (" (an empty array needs an integer dtype too, e.g. np.zeros(shape, np.int64))"
                 if arr.size == 0 else "")
        raise DTypeError(
            f"{name}: got a {_describe(arr)}{empty}; intsim takes integer arrays only. "
            "Quantize first (for example intsim.quant.quantizers) or, if the values are integral, "
            "convert with np.rint(x).astype(np.int64) after checking them")
    raise DTypeError(f"{name}: got a {_describe(arr)}; an integer array is due")


def as_int_matrix(x: Any, name: str) -> np.ndarray:
    """:func:`as_int_array` and require two dimensions."""
    arr = as_int_array(x, name)
    if arr.ndim != 2:
        raise ShapeError(f"{name}: a 2-D matrix is due, got shape {arr.shape}")
    return arr


def to_int64(arr: np.ndarray, name: str) -> np.ndarray:
    """Convert an integer array to int64, refusing uint64 values above 2**63 - 1."""
    if arr.dtype == np.int64:
        return arr
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > INT64_MAX:
        flat = np.flatnonzero(arr.reshape(-1) > np.uint64(INT64_MAX))
        idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), arr.shape))
        raise OperandRangeError(
            f"{name}: {flat.size} entries exceed int64; first at index {idx}: {int(arr[idx])}",
            count=int(flat.size), index=idx, value=int(arr[idx]))
    return arr.astype(np.int64)
