"""``.npy`` files (a byte-stable writer and a safe reader), safe reading of regular files, and the size caps.

``npy_bytes`` produces NPY format 1.0 exactly as ``numpy.save`` does for the
little-endian integer dtypes golden suites use (header padded to 64 bytes,
C order), but independently of the installed numpy version, so that a suite is
byte-identical wherever it is generated.

Reading never trusts a file. ``load_npy`` / ``npy_from_bytes`` parse the header
themselves (a Python literal read with :func:`ast.literal_eval`, never a pickle:
there is no ``allow_pickle`` anywhere), accept only plain integer dtypes, check
the declared shape against :data:`MAX_ELEMENTS` and the data length against the
shape *before* any array is made, and turn every failure into a
:class:`~intsim.core.errors.FileFormatError` naming the file. :func:`read_file` and
:func:`open_regular` read only regular files (a FIFO, device, directory, socket or
symbolic link is refused before it is opened, and again after, with ``fstat``, so a
swap in between cannot make a read hang) and only up to a cap.

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

import ast
import contextlib
import math
import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..core.errors import FileFormatError
from .keys import MAX_TENSOR_ELEMENTS

__all__ = [
    "npy_bytes", "load_npy", "npy_from_bytes", "NpyHeader", "parse_npy_header", "read_npy_header",
    "read_file", "open_regular", "check_elements",
    "MAX_ELEMENTS", "MAX_NDIM", "MAX_FILE_BYTES", "MAX_MANIFEST_BYTES", "MAX_JSON_DEPTH", "MAX_NPY_HEADER_BYTES",
    "MAX_HEX_WORD_DIGITS",
]

MAX_ELEMENTS = MAX_TENSOR_ELEMENTS
"""Most elements a tensor may have (16,777,216, the same cap as a spec's tensors): manifest shapes,
``.npy`` headers, hex words."""
MAX_NDIM = 32
"""Most dimensions a tensor may have."""
MAX_FILE_BYTES = 1 << 29
"""Largest data file or dump read (536,870,912 bytes, 512 MiB)."""
MAX_MANIFEST_BYTES = 1 << 24
"""Largest ``manifest.json`` read (16,777,216 bytes, 16 MiB)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in ``manifest.json``."""
MAX_NPY_HEADER_BYTES = 10_000
"""Longest ``.npy`` header text accepted (bytes)."""
MAX_HEX_WORD_DIGITS = 64
"""Most hex digits in one word of a hex dump (a 256-bit register)."""

_MAGIC = b"\x93NUMPY\x01\x00"
_ALIGN = 64
_INT_DESCR = re.compile(r"^[<>|=]?[iu][1248]$")


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


# --------------------------------------------------------------------------------------------------
# regular files, read up to a cap
# --------------------------------------------------------------------------------------------------


def _kind(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: str | os.PathLike, mode: int) -> FileFormatError:
    return FileFormatError(f"{path}: is {_kind(mode)}, not a regular file; refused")


def _too_big(path: str | os.PathLike, size: int, max_bytes: int) -> FileFormatError:
    return FileFormatError(f"{path}: {size} bytes is more than the cap of {max_bytes} bytes for this file; refused")


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES,
                 missing: str = "missing") -> Iterator[tuple[BinaryIO, int]]:
    """Open a regular file for reading; yields ``(binary file, size in bytes)``.

    Refused with :class:`~intsim.core.errors.FileFormatError` naming ``path``: a missing file
    (``missing`` is the problem stated), a symbolic link, FIFO, device, socket or
    directory (checked with ``lstat`` before opening and with ``fstat`` after, the open
    itself non-blocking and not following links), and a file larger than ``max_bytes``.
    """
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: {missing}") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    if st.st_size > max_bytes:
        raise _too_big(path, st.st_size, max_bytes)
    flags = os.O_RDONLY
    for name in ("O_NONBLOCK", "O_NOFOLLOW", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: {missing}") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode):
            raise _refuse(path, st2.st_mode)
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            raise FileFormatError(f"{path}: was replaced while being opened; refused")
        if st2.st_size > max_bytes:
            raise _too_big(path, st2.st_size, max_bytes)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, int(st2.st_size)


def read_file(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES, missing: str = "missing") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes (see :func:`open_regular`)."""
    with open_regular(path, max_bytes=max_bytes, missing=missing) as (fh, size):
        try:  # read(n) reserves n bytes first: ask for what fstat reported (plus one, to see growth)
            data = fh.read(size + 1)
        except OSError as exc:
            raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > size:
        raise FileFormatError(f"{path}: grew while being read; refused")
    return data


def check_elements(shape: tuple[int, ...], where: str, max_elements: int = MAX_ELEMENTS) -> int:
    """The element count of ``shape`` (a tuple of non-negative ints) if it is within the caps.

    FileFormatError naming ``where`` and the cap: more than :data:`MAX_NDIM` dimensions, or
    more than ``max_elements`` (default :data:`MAX_ELEMENTS`) elements.
    """
    if len(shape) > MAX_NDIM:
        raise FileFormatError(f"{where}: shape {shape!r} has {len(shape)} dimensions, more than the cap of "
                              f"{MAX_NDIM}")
    n = math.prod(shape)
    if n > max_elements:
        cap = "the cap" if max_elements == MAX_ELEMENTS else "the limit"
        raise FileFormatError(f"{where}: shape {shape!r} has {n} elements, more than {cap} of {max_elements} "
                              "elements per tensor; refused")
    return n


# --------------------------------------------------------------------------------------------------
# .npy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpyHeader:
    """A checked ``.npy`` header: integer dtype, shape, order and where the data start."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    offset: int

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def _bad(source: str | os.PathLike, problem: str) -> FileFormatError:
    return FileFormatError(f"{source}: {problem}")


def parse_npy_header(data: bytes, source: str | os.PathLike, *,
                     max_elements: int | None = MAX_ELEMENTS) -> NpyHeader:
    """Parse and check the header at the start of ``data`` (the data bytes need not follow).

    Accepted: NPY versions 1.0, 2.0 and 3.0; a header dict of exactly ``descr`` (a plain
    integer dtype such as ``'<i2'`` or ``'|u1'``), ``fortran_order`` (a bool) and
    ``shape`` (a tuple of at most :data:`MAX_NDIM` non-negative ints with at most
    ``max_elements`` elements; None: any count, for a caller that compares it with an
    expected count before anything is read). Anything else (object, float, bool or
    structured dtypes, a header longer than :data:`MAX_NPY_HEADER_BYTES`, ...) raises
    FileFormatError naming ``source``.
    """
    if not data.startswith(b"\x93NUMPY"):
        raise _bad(source, "not a .npy file (bad magic bytes)")
    if len(data) < 10:
        raise _bad(source, "truncated .npy header")
    version = (data[6], data[7])
    if version == (1, 0):
        (hlen,), start, enc = struct.unpack("<H", data[8:10]), 10, "latin-1"
    elif version in ((2, 0), (3, 0)):
        if len(data) < 12:
            raise _bad(source, "truncated .npy header")
        (hlen,), start, enc = struct.unpack("<I", data[8:12]), 12, "latin-1" if version[0] == 2 else "utf-8"
    else:
        raise _bad(source, f"unsupported .npy format version {version[0]}.{version[1]}")
    if hlen > MAX_NPY_HEADER_BYTES:
        raise _bad(source, f".npy header of {hlen} bytes is longer than the cap of {MAX_NPY_HEADER_BYTES} bytes")
    if len(data) < start + hlen:
        raise _bad(source, f"truncated .npy header ({len(data) - start} of {hlen} bytes)")
    try:
        text = data[start:start + hlen].decode(enc)
        d = ast.literal_eval(text)
    except (UnicodeDecodeError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise _bad(source, f"corrupted .npy header ({type(exc).__name__})") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise _bad(source, "corrupted .npy header (expected the keys descr, fortran_order and shape)")
    descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
    if not isinstance(descr, str) or not _INT_DESCR.match(descr):
        shown = descr if isinstance(descr, str) and len(descr) <= 40 else type(descr).__name__
        raise _bad(source, f"dtype {shown!r} is not a plain integer dtype; integer arrays are expected")
    if not isinstance(fortran, bool):
        raise _bad(source, "corrupted .npy header (fortran_order is not True or False)")
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 63
                                               for s in shape):
        raise _bad(source, "corrupted .npy header (shape is not a tuple of non-negative 64-bit integers)")
    if max_elements is not None:
        check_elements(shape, str(source), max_elements)
    elif len(shape) > MAX_NDIM:
        check_elements(shape, str(source))  # raises: too many dimensions
    return NpyHeader(np.dtype(descr), shape, fortran, start + hlen)


def npy_from_bytes(data: bytes, source: str | os.PathLike, *, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Parse ``.npy`` bytes (never a pickle); FileFormatError names ``source`` on failure.

    The header is checked (:func:`parse_npy_header`) and the data must be exactly as long
    as its shape and dtype say. Returns a native-byte-order, C-ordered, writeable array.
    """
    hdr = parse_npy_header(data, source, max_elements=max_elements)
    body = len(data) - hdr.offset
    if body != hdr.nbytes:
        what = "truncated" if body < hdr.nbytes else "trailing bytes after the array"
        raise _bad(source, f"corrupted .npy file ({what}: {body} data bytes, the header's shape {hdr.shape} "
                   f"and dtype {hdr.dtype.str} need {hdr.nbytes})")
    native = hdr.dtype.newbyteorder("=")
    if hdr.count == 0:
        return np.zeros(hdr.shape, dtype=native)
    flat = np.frombuffer(data, dtype=hdr.dtype, count=hdr.count, offset=hdr.offset)
    arr = flat.reshape(hdr.shape, order="F" if hdr.fortran_order else "C")
    return np.array(arr, dtype=native, order="C")


def _read_header(fh: BinaryIO, size: int, path: str | os.PathLike, max_elements: int | None,
                 check_size: bool = True) -> tuple[NpyHeader, bytes]:
    try:
        head = fh.read(min(size, 12 + MAX_NPY_HEADER_BYTES))
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    hdr = parse_npy_header(head, path, max_elements=max_elements)
    body = size - hdr.offset
    if check_size and body != hdr.nbytes:
        what = "truncated" if body < hdr.nbytes else "trailing bytes after the array"
        raise _bad(path, f"corrupted .npy file ({what}: {body} data bytes, the header's shape {hdr.shape} "
                   f"and dtype {hdr.dtype.str} need {hdr.nbytes})")
    return hdr, head


def read_npy_header(path: str | os.PathLike, *, max_elements: int | None = MAX_ELEMENTS,
                    check_size: bool = True) -> NpyHeader:
    """The checked header of an ``.npy`` file, read without its data.

    ``max_elements`` as for :func:`parse_npy_header`; with ``check_size`` the file's length
    must be exactly what the header declares (truncated or trailing data are refused).
    """
    with open_regular(path) as (fh, size):
        return _read_header(fh, size, path, max_elements, check_size)[0]


def load_npy(path: str | os.PathLike, *, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Read an ``.npy`` file safely (a regular file, no pickles, within the caps); FileFormatError names it.

    The header is read and checked first, so a file declaring more than ``max_elements``
    elements, or not as many data bytes as it declares, is refused before its data are read.
    """
    with open_regular(path) as (fh, size):
        hdr, head = _read_header(fh, size, path, max_elements)
        try:
            rest = fh.read(size - len(head) + 1)
        except OSError as exc:
            raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return npy_from_bytes(head + rest, path, max_elements=max_elements)
