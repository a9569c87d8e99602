"""Safe reading of regular files and ``.npy`` files, with size caps: a golden suite's files and a user's data.

Reading never trusts a file. :func:`load_npy` / :func:`npy_from_bytes` parse the header
themselves (a Python literal read with :func:`ast.literal_eval`, never a pickle: there is no
``allow_pickle`` anywhere), accept only plain numeric dtypes (by default plain integer dtypes),
check the declared shape against :data:`MAX_ELEMENTS` and the data length against the shape
*before* any array is made, and turn every failure into a
:class:`~intsim.core.errors.FileFormatError` naming the file. :func:`read_file` and
:func:`open_regular` read only regular files (a FIFO, device, directory, socket or symbolic
link is refused before it is opened, and again after, with ``fstat``, so a swap in between
cannot make a read hang) and only up to a cap.

:func:`read_npy` reads a *user's* ``.npy`` file (``intsim report unpack --npy``, the cost
workload ``npy:A.npy,B.npy``, ``intsim sweep``'s ``[[gemm]]`` operands, a golden spec's
``{ file = "A.npy" }`` inputs) with the same rules, except that a symbolic link the user named
is followed (the file it leads to must be a regular file), and returns the array with the
SHA-256 and size of the exact bytes it was parsed from (:class:`NpyData`). What the file must
hold is the caller's to say: the dtype kinds (a float file where integers are due is a
:class:`~intsim.core.errors.DTypeError`), the number of dimensions or the exact shape
(:class:`~intsim.core.errors.ShapeError`), and float files must be finite (NaN or Inf is an
:class:`~intsim.core.errors.OperandRangeError` naming the first index). :func:`read_gemm_npy`
reads the two operands of one GEMM ``A @ B`` and checks that their shapes fit.

Size caps, all checked before anything is allocated (exceeding one raises
:class:`~intsim.core.errors.FileFormatError` naming the file and the cap):

* :data:`MAX_ELEMENTS` = 16,777,216 (2**24) elements per tensor (the bound golden specs put on
  a case's tensors, ``intsim.golden.spec.MAX_TENSOR_ELEMENTS``).
* :data:`MAX_NDIM` = 32 dimensions per tensor.
* :data:`MAX_FILE_BYTES` = 536,870,912 bytes (512 MiB) per data file.
* :data:`MAX_NPY_HEADER_BYTES` = 10,000 bytes of ``.npy`` header text (numpy's own default
  ``max_header_size``).

>>> import io, os, tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> np.save(os.path.join(d, "a.npy"), np.array([[1, -2], [3, 4]], dtype=np.int8))
>>> r = read_npy(os.path.join(d, "a.npy"), ndim=2)
>>> r.array.tolist(), r.array.dtype.name, r.bytes, len(r.sha256)
([[1, -2], [3, 4]], 'int8', 132, 64)
>>> np.save(os.path.join(d, "f.npy"), np.ones((2, 2)))
>>> read_npy(os.path.join(d, "f.npy"))
Traceback (most recent call last):
...
intsim.core.errors.DTypeError: .../f.npy: holds float64 values; integers are due
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import math
import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import DTypeError, FileFormatError, OperandRangeError, ShapeError

__all__ = [
    "load_npy", "npy_from_bytes", "NpyHeader", "parse_npy_header", "read_npy_header",
    "read_file", "open_regular", "check_elements", "NpyData", "read_npy", "read_gemm_npy",
    "MAX_ELEMENTS", "MAX_NDIM", "MAX_FILE_BYTES", "MAX_NPY_HEADER_BYTES",
]

MAX_ELEMENTS = 1 << 24
"""Most elements a tensor may have (16,777,216, the same cap as a golden spec's tensors): manifest shapes,
``.npy`` headers, hex words, a user's ``.npy`` file."""
MAX_NDIM = 32
"""Most dimensions a tensor may have."""
MAX_FILE_BYTES = 1 << 29
"""Largest data file or dump read (536,870,912 bytes, 512 MiB)."""
MAX_NPY_HEADER_BYTES = 10_000
"""Longest ``.npy`` header text accepted (bytes)."""

#: a plain numeric dtype as a ``.npy`` header spells it: byte order, kind, item size
_PLAIN_DESCR = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(?:8|16))$")
_KIND_WORDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "c": "complex numbers"}


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
def open_regular(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES, missing: str = "missing",
                 label: str | os.PathLike | None = None) -> Iterator[tuple[BinaryIO, int]]:
    """Open a regular file for reading; yields ``(binary file, size in bytes)``.

    Refused with :class:`~intsim.core.errors.FileFormatError` naming ``label`` (default
    ``path``): a missing file (``missing`` is the problem stated), a symbolic link, FIFO,
    device, socket or directory (checked with ``lstat`` before opening and with ``fstat``
    after, the open itself non-blocking and not following links), and a file larger than
    ``max_bytes``.
    """
    p = os.fspath(path)
    name = path if label is None else label
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise FileFormatError(f"{name}: {missing}") from None
    except OSError as exc:
        raise FileFormatError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(name, st.st_mode)
    if st.st_size > max_bytes:
        raise _too_big(name, st.st_size, max_bytes)
    flags = os.O_RDONLY
    for flag in ("O_NONBLOCK", "O_NOFOLLOW", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, flag, 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise FileFormatError(f"{name}: {missing}") from None
    except OSError as exc:
        raise FileFormatError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode):
            raise _refuse(name, st2.st_mode)
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            raise FileFormatError(f"{name}: was replaced while being opened; refused")
        if st2.st_size > max_bytes:
            raise _too_big(name, st2.st_size, max_bytes)
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
    """A checked ``.npy`` header: a plain numeric dtype, shape, order and where the data start."""

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


def _descr_ok(descr: object, kinds: str) -> bool:
    if not isinstance(descr, str):
        return False
    m = _PLAIN_DESCR.match(descr)
    return bool(m) and m.group(1)[0] in kinds


def parse_npy_header(data: bytes, source: str | os.PathLike, *,
                     max_elements: int | None = MAX_ELEMENTS, kinds: str = "iu") -> NpyHeader:
    """Parse and check the header at the start of ``data`` (the data bytes need not follow).

    Accepted: NPY versions 1.0, 2.0 and 3.0; a header dict of exactly ``descr`` (a plain
    dtype whose kind is one of ``kinds``: by default ``"iu"``, the integer dtypes such as
    ``'<i2'`` or ``'|u1'``; ``"biufc"`` admits every plain numeric dtype: ``b1``, ``i``/``u``
    of 1, 2, 4 or 8 bytes, ``f2``/``f4``/``f8``, ``c8``/``c16``), ``fortran_order`` (a bool)
    and ``shape`` (a tuple of at most :data:`MAX_NDIM` non-negative ints with at most
    ``max_elements`` elements; None: any count, for a caller that compares it with an
    expected count before anything is read). Anything else (object, string or structured
    dtypes, a dtype of another kind, a header longer than :data:`MAX_NPY_HEADER_BYTES`, ...)
    raises FileFormatError naming ``source``.
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
    if not _descr_ok(descr, kinds):
        shown = descr if isinstance(descr, str) and len(descr) <= 40 else type(descr).__name__
        if kinds == "iu":
            raise _bad(source, f"dtype {shown!r} is not a plain integer dtype; integer arrays are expected")
        raise _bad(source, f"dtype {shown!r} is not a plain numeric dtype (bool, integer, float or complex); "
                   "object, string and structured arrays are never loaded")
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


def _size_problem(source: str | os.PathLike, body: int, hdr: NpyHeader) -> FileFormatError:
    what = "truncated" if body < hdr.nbytes else "trailing bytes after the array"
    return _bad(source, f"corrupted .npy file ({what}: {body} data bytes, the header's shape {hdr.shape} "
                f"and dtype {hdr.dtype.str} need {hdr.nbytes})")


def npy_from_bytes(data: bytes, source: str | os.PathLike, *, max_elements: int = MAX_ELEMENTS,
                   kinds: str = "iu") -> np.ndarray:
    """Parse ``.npy`` bytes (never a pickle); FileFormatError names ``source`` on failure.

    The header is checked (:func:`parse_npy_header`, with ``kinds``) and the data must be
    exactly as long as its shape and dtype say. Returns a native-byte-order, C-ordered,
    writeable array.
    """
    hdr = parse_npy_header(data, source, max_elements=max_elements, kinds=kinds)
    body = len(data) - hdr.offset
    if body != hdr.nbytes:
        raise _size_problem(source, body, hdr)
    native = hdr.dtype.newbyteorder("=")
    if hdr.count == 0:
        return np.zeros(hdr.shape, dtype=native)
    flat = np.frombuffer(data, dtype=hdr.dtype, count=hdr.count, offset=hdr.offset)
    arr = flat.reshape(hdr.shape, order="F" if hdr.fortran_order else "C")
    return np.array(arr, dtype=native, order="C")


def _read_header(fh: BinaryIO, size: int, path: str | os.PathLike, max_elements: int | None,
                 check_size: bool = True, kinds: str = "iu") -> tuple[NpyHeader, bytes]:
    try:
        head = fh.read(min(size, 12 + MAX_NPY_HEADER_BYTES))
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    hdr = parse_npy_header(head, path, max_elements=max_elements, kinds=kinds)
    if check_size and size - hdr.offset != hdr.nbytes:
        raise _size_problem(path, size - hdr.offset, hdr)
    return hdr, head


def read_npy_header(path: str | os.PathLike, *, max_elements: int | None = MAX_ELEMENTS,
                    check_size: bool = True) -> NpyHeader:
    """The checked header of an integer ``.npy`` file, read without its data.

    ``max_elements`` as for :func:`parse_npy_header`; with ``check_size`` the file's length
    must be exactly what the header declares (truncated or trailing data are refused).
    """
    with open_regular(path) as (fh, size):
        return _read_header(fh, size, path, max_elements, check_size)[0]


def _read_rest(fh: BinaryIO, size: int, head: bytes, path: str | os.PathLike) -> bytes:
    try:
        rest = fh.read(size - len(head) + 1)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return head + rest


def load_npy(path: str | os.PathLike, *, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Read an integer ``.npy`` file safely (a regular file, no pickles, within the caps); FileFormatError
    names it.

    The header is read and checked first, so a file declaring more than ``max_elements``
    elements, or not as many data bytes as it declares, is refused before its data are read.
    """
    with open_regular(path) as (fh, size):
        _, head = _read_header(fh, size, path, max_elements)
        data = _read_rest(fh, size, head, path)
    return npy_from_bytes(data, path, max_elements=max_elements)


# --------------------------------------------------------------------------------------------------
# a user's .npy files
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpyData:
    """A user's ``.npy`` file as read by :func:`read_npy`.

    ``path`` is the path as given (not resolved), ``array`` the values (native byte order,
    C order, writeable, the file's dtype), ``sha256`` and ``bytes`` the SHA-256 (hex) and
    length of the exact bytes the array was parsed from, ``dtype`` the dtype the file declares
    (its byte order included) and ``fortran_order`` whether it was saved in Fortran order.
    """

    path: str
    array: np.ndarray
    sha256: str
    bytes: int
    dtype: np.dtype
    fortran_order: bool

    def describe(self) -> str:
        """One line: ``path (dtype, shape, bytes, SHA-256)``."""
        shape = "x".join(str(s) for s in self.array.shape)
        return f"{self.path} ({self.array.dtype.name} {shape}, {self.bytes} bytes, SHA-256 {self.sha256})"


def _check_path(path: str | os.PathLike, name: str) -> str:
    try:
        p = os.fspath(path)
    except TypeError:
        raise FileFormatError(f"{name}: not a file path ({type(path).__name__})") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p or "\x00" in p:
        raise FileFormatError(f"{name}: not a valid file path ({p!r})")
    return p


def _first(mask: np.ndarray) -> tuple[int, tuple[int, ...]]:
    flat = np.flatnonzero(mask.reshape(-1))
    return int(flat.size), tuple(int(i) for i in np.unravel_index(int(flat[0]), mask.shape))


def read_npy(path: str | os.PathLike, *, name: str | None = None, kinds: str = "iu", ndim: int | None = None,
             shape: tuple[int, ...] | None = None, hint: str = "", max_elements: int = MAX_ELEMENTS,
             max_bytes: int = MAX_FILE_BYTES) -> NpyData:
    """Read a user's ``.npy`` file safely and check what it holds.

    The file: a symbolic link is followed (``os.path.realpath``), and what it leads to must be
    a regular file (a directory, FIFO, device or socket is refused before it is opened, never
    read with a blocking call) of at most ``max_bytes`` bytes; the header is parsed without
    pickles (NPY 1.0 to 3.0, any byte order, C or Fortran order) and checked before the data
    are read: at most ``max_elements`` elements and :data:`MAX_NDIM` dimensions, and exactly
    as many data bytes as it declares (a truncated file or trailing bytes are refused). Every
    problem with the file is a :class:`~intsim.core.errors.FileFormatError` naming ``name``
    (default: the path as given), as are object, string and structured dtypes.

    What it holds: the dtype's kind must be one of ``kinds`` (``"iu"``: integers, ``"iuf"``:
    integers or floats; a bool, complex or other plain dtype is a
    :class:`~intsim.core.errors.DTypeError`, its message followed by ``hint``); with ``ndim``
    the number of dimensions and with ``shape`` the exact shape must match
    (:class:`~intsim.core.errors.ShapeError`, before the data are read); float values must
    be finite (NaN or Inf: :class:`~intsim.core.errors.OperandRangeError` naming the count
    and the first index, row-major).

    The SHA-256 and size are those of the bytes the array was parsed from (read once), so they
    describe exactly the data used even if the file changes afterwards.

    >>> import os, tempfile, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> np.save(p, np.asfortranarray(np.arange(6, dtype=">i2").reshape(2, 3)))
    >>> r = read_npy(p, ndim=2)
    >>> r.array.tolist(), r.fortran_order, r.dtype.str
    ([[0, 1, 2], [3, 4, 5]], True, '>i2')
    >>> read_npy(p, shape=(3, 2))
    Traceback (most recent call last):
    ...
    intsim.core.errors.ShapeError: .../w.npy: holds shape (2, 3), (3, 2) is due
    """
    given = _check_path(path, name or "a .npy file")
    label = name or given
    real = os.path.realpath(given)
    with open_regular(real, max_bytes=max_bytes, missing="no such file", label=label) as (fh, size):
        hdr, head = _read_header(fh, size, label, max_elements, check_size=False, kinds="biufc")
        if hdr.dtype.kind not in kinds:
            due = " or ".join(dict.fromkeys(_KIND_WORDS[k] for k in kinds))
            raise DTypeError(f"{label}: holds {hdr.dtype.name} values; {due} are due" + (f" ({hint})" if hint else ""))
        if ndim is not None and len(hdr.shape) != ndim:
            raise ShapeError(f"{label}: a {ndim}-D array is due, got {len(hdr.shape)}-D shape {hdr.shape}")
        if shape is not None and tuple(hdr.shape) != tuple(shape):
            raise ShapeError(f"{label}: holds shape {hdr.shape}, {tuple(shape)} is due")
        if size - hdr.offset != hdr.nbytes:
            raise _size_problem(label, size - hdr.offset, hdr)
        data = _read_rest(fh, size, head, label)
    if len(data) != size:
        raise FileFormatError(f"{label}: changed size while being read; refused")
    arr = npy_from_bytes(data, label, max_elements=max_elements, kinds="biufc")
    if arr.dtype.kind == "f" and arr.size:
        finite = np.isfinite(arr)
        if not finite.all():
            count, idx = _first(~finite)
            raise OperandRangeError(f"{label}: {count} entries are NaN or Inf; first at index {idx}: {arr[idx]}",
                                    count=count, index=idx)
    return NpyData(given, arr, hashlib.sha256(data).hexdigest(), size, hdr.dtype, hdr.fortran_order)


def read_gemm_npy(a: str | os.PathLike, b: str | os.PathLike, *, kinds: str = "iu",
                  hint: str = "") -> tuple[NpyData, NpyData]:
    """The operands of one GEMM ``A @ B`` from two ``.npy`` files (:func:`read_npy`, ``ndim=2``).

    A is M x K and B is K x N with M, K, N >= 1: a 1-D or 3-D array, an empty dimension or
    inner dimensions that differ are a :class:`~intsim.core.errors.ShapeError` naming both files.

    >>> import os, tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "A.npy"), np.ones((2, 3), np.int8))
    >>> np.save(os.path.join(d, "B.npy"), np.ones((4, 5), np.int8))
    >>> read_gemm_npy(os.path.join(d, "A.npy"), os.path.join(d, "B.npy"))
    Traceback (most recent call last):
    ...
    intsim.core.errors.ShapeError: .../A.npy @ .../B.npy: A is 2x3 (M x K) but B is 4x5 (K x N): ...
    """
    ra = read_npy(a, kinds=kinds, ndim=2, hint=hint)
    rb = read_npy(b, kinds=kinds, ndim=2, hint=hint)
    (m, k), (k2, n) = ra.array.shape, rb.array.shape
    where = f"{ra.path} @ {rb.path}"
    if k != k2:
        raise ShapeError(f"{where}: A is {m}x{k} (M x K) but B is {k2}x{n} (K x N): the inner dimensions differ")
    if not (m and k and n):
        raise ShapeError(f"{where}: A is {m}x{k}, B is {k2}x{n}: an empty GEMM (every dimension must be at least 1)")
    return ra, rb
