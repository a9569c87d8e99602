"""Input validation shared by every public entry point (internal).

intsim computes on integers only. These helpers turn array-likes into numpy
integer arrays and refuse, with a typed error that names the argument, anything
that is not an integer: floats (even integral ones), complex, bool, strings and
Python objects that do not fit 64 bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DTypeError, OperandRangeError, ShapeError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__


def as_int_array(x: Any, name: str = "x") -> np.ndarray:
    """Return ``x`` as a numpy array of a signed or unsigned integer dtype.

    Integer arrays pass through unchanged (no copy). Python ints and nested
    lists of them are converted (to int64, or to uint64 when a value needs it).
    Floats, complex numbers, bools, strings and objects raise
    :class:`~intsim.errors.DTypeError`; values beyond 64 bits raise
    :class:`~intsim.errors.OperandRangeError`.
    """
    if isinstance(x, np.ndarray):
        arr = _object_to_int(x, name) if x.dtype == object else x
    elif isinstance(x, (bool, np.bool_)):
        raise DTypeError(f"{name}: got a bool where an integer is due; convert it explicitly with int()")
    elif isinstance(x, (int, np.integer)):
        v = int(x)
        if INT64_MIN <= v <= INT64_MAX:
            return np.asarray(v, dtype=np.int64)
        if 0 <= v <= UINT64_MAX:
            return np.asarray(v, dtype=np.uint64)
        raise OperandRangeError(f"{name}: the value {v} does not fit 64 bits", count=1, index=(), value=v)
    else:
        try:
            arr = np.asarray(x)
        except (OverflowError, ValueError) as exc:  # ragged lists and the like
            raise DTypeError(f"{name}: cannot be read as an integer array ({exc})") from None
        if arr.dtype == object:
            arr = _object_to_int(arr, name)
    kind = arr.dtype.kind
    if kind in "iu":
        return arr
    if kind == "b":
        raise DTypeError(f"{name}: got a bool array ({_describe(arr)}) where integers are due; "
                         "convert it explicitly, e.g. x.astype(np.int8)")
    if kind == "f":
        raise DTypeError(
            f"{name}: got a {_describe(arr)}; intsim takes integer arrays only. "
            "Quantize first (for example intsim.quant) or, if the values are integral, "
            "convert with np.rint(x).astype(np.int64) after checking them")
    raise DTypeError(f"{name}: got a {_describe(arr)}; an integer array is due")


def _object_to_int(arr: np.ndarray, name: str) -> np.ndarray:
    flat = arr.reshape(-1)
    vals = []
    for pos, v in enumerate(flat):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            idx = np.unravel_index(pos, arr.shape) if arr.ndim else ()
            raise DTypeError(f"{name}: entry {tuple(int(i) for i in idx)} is {type(v).__name__} "
                             f"({v!r}); integers are due")
        vals.append(int(v))
    if not vals:
        return np.zeros(arr.shape, dtype=np.int64)
    lo, hi = min(vals), max(vals)
    if lo >= INT64_MIN and hi <= INT64_MAX:
        return np.array(vals, dtype=np.int64).reshape(arr.shape)
    if lo >= 0 and hi <= UINT64_MAX:
        return np.array(vals, dtype=np.uint64).reshape(arr.shape)
    bad = next(p for p, v in enumerate(vals) if not (INT64_MIN <= v <= UINT64_MAX) or (v < 0 and hi > INT64_MAX))
    idx = tuple(int(i) for i in np.unravel_index(bad, arr.shape))
    count = sum(1 for v in vals if not (INT64_MIN <= v <= INT64_MAX))
    raise OperandRangeError(
        f"{name}: {count} entries cannot be represented in int64 (nor all in uint64); "
        f"first at index {idx}: {vals[bad]}", count=count, index=idx, value=vals[bad])


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
