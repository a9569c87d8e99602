"""``.npy`` files: a byte-stable writer and a safe reader.

``npy_bytes`` produces NPY format 1.0 exactly as ``numpy.save`` does for the
little-endian integer dtypes golden suites use (header padded to 64 bytes,
C order), but independently of the installed numpy version, so that a suite is
byte-identical wherever it is generated. ``load_npy`` reads with
``allow_pickle=False`` and turns every failure into a
:class:`~intsim.errors.FileFormatError` naming the file.

>>> import io, numpy as np
>>> b = npy_bytes(np.array([[1, -2]], dtype=np.int16))
>>> np.load(io.BytesIO(b), allow_pickle=False).tolist()
[[1, -2]]
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

from ..errors import FileFormatError

__all__ = ["npy_bytes", "load_npy", "npy_from_bytes"]

_MAGIC = b"\x93NUMPY\x01\x00"
_ALIGN = 64


def npy_bytes(arr: np.ndarray) -> bytes:
    """NPY 1.0 bytes of an integer array, stored little-endian in C order."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"npy_bytes writes integer arrays only, got {arr.dtype}")
    dt = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
    descr = dt.str
    shape = tuple(int(s) for s in arr.shape)
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)  # noqa: UP031
    total = len(_MAGIC) + 2 + len(header) + 1
    header += " " * ((-total) % _ALIGN) + "\n"
    data = np.ascontiguousarray(arr, dtype=dt).tobytes(order="C")
    return _MAGIC + struct.pack("<H", len(header)) + header.encode("latin-1") + data


def npy_from_bytes(data: bytes, source: str | os.PathLike) -> np.ndarray:
    """Parse ``.npy`` bytes (``allow_pickle=False``); FileFormatError names ``source`` on failure."""
    if not data.startswith(b"\x93NUMPY"):
        raise FileFormatError(f"{source}: not a .npy file (bad magic bytes)")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise FileFormatError(f"{source}: corrupted or truncated .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of an .npy returns arrays
        raise FileFormatError(f"{source}: not a single array")
    return arr


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Read an ``.npy`` file safely (no pickles); FileFormatError names the file on failure."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise FileFormatError(f"{path}: missing") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return npy_from_bytes(data, path)
