"""``.npy`` files of golden suites: a byte-stable writer, and the safe reader and size caps (re-exported).

``npy_bytes`` produces NPY format 1.0 exactly as ``numpy.save`` does for the
little-endian integer dtypes golden suites use (header padded to 64 bytes,
C order), but independently of the installed numpy version, so that a suite is
byte-identical wherever it is generated.

Reading never trusts a file. The safe readers live in :mod:`intsim.core.npyfile` (so that
every layer reads a user's ``.npy`` file with the same rules) and are re-exported here:
``load_npy`` / ``npy_from_bytes`` parse the header themselves (a Python literal read with
:func:`ast.literal_eval`, never a pickle: there is no ``allow_pickle`` anywhere), accept only
plain integer dtypes, check the declared shape against :data:`MAX_ELEMENTS` and the data
length against the shape *before* any array is made, and turn every failure into a
:class:`~intsim.core.errors.FileFormatError` naming the file. :func:`read_file` and
:func:`open_regular` read only regular files (a FIFO, device, directory, socket or symbolic
link is refused before it is opened, and again after, with ``fstat``, so a swap in between
cannot make a read hang) and only up to a cap.

Size caps, all checked before anything is allocated (exceeding one raises
:class:`~intsim.core.errors.FileFormatError` naming the file and the cap):

* :data:`MAX_ELEMENTS` = 16,777,216 (2**24) elements per tensor: a manifest's
  declared shape, an ``.npy`` header's shape, and the words of a hex file read
  without an expected count. It is the bound the operators already put on a
  case's tensors.
* :data:`MAX_NDIM` = 32 dimensions per tensor.
* :data:`MAX_FILE_BYTES` = 536,870,912 bytes (512 MiB) per data file: a suite's
  ``.npy``/``.hex`` files and a design's dumps (the canonical hex text of
  :data:`MAX_ELEMENTS` 64-bit words is 285 MB).
* :data:`MAX_MANIFEST_BYTES` = 16,777,216 bytes (16 MiB) for ``manifest.json``.
* :data:`MAX_JSON_DEPTH` = 32 levels of nesting in ``manifest.json``.
* :data:`MAX_NPY_HEADER_BYTES` = 10,000 bytes of ``.npy`` header text (numpy's own
  default ``max_header_size``).
* :data:`MAX_HEX_WORD_DIGITS` = 64 hex digits (a 256-bit register) per word of a
  hex dump.

A design's dump is checked against the tensor it should hold first: one with more
(or fewer) words than the manifest declares is a mismatch, and is never read in full.

>>> import io, numpy as np
>>> b = npy_bytes(np.array([[1, -2]], dtype=np.int16))
>>> np.load(io.BytesIO(b), allow_pickle=False).tolist()
[[1, -2]]
>>> npy_from_bytes(b, "x.npy").tolist()
[[1, -2]]
"""

from __future__ import annotations

import struct

import numpy as np

from ..core.npyfile import (
    MAX_ELEMENTS,
    MAX_FILE_BYTES,
    MAX_NDIM,
    MAX_NPY_HEADER_BYTES,
    NpyHeader,
    check_elements,
    load_npy,
    npy_from_bytes,
    open_regular,
    parse_npy_header,
    read_file,
    read_npy_header,
)

__all__ = [
    "npy_bytes", "load_npy", "npy_from_bytes", "NpyHeader", "parse_npy_header", "read_npy_header",
    "read_file", "open_regular", "check_elements",
    "MAX_ELEMENTS", "MAX_NDIM", "MAX_FILE_BYTES", "MAX_MANIFEST_BYTES", "MAX_JSON_DEPTH", "MAX_NPY_HEADER_BYTES",
    "MAX_HEX_WORD_DIGITS",
]

MAX_MANIFEST_BYTES = 1 << 24
"""Largest ``manifest.json`` read (16,777,216 bytes, 16 MiB)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in ``manifest.json``."""
MAX_HEX_WORD_DIGITS = 64
"""Most hex digits in one word of a hex dump (a 256-bit register)."""

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
