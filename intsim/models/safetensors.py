"""A dependency-free reader for the safetensors file format (numpy + json only).

Layout of a safetensors file (all integers little-endian):

* bytes ``0..8``: ``N``, the length of the header, an unsigned 64-bit integer;
* bytes ``8..8+N``: the header, a UTF-8 JSON object mapping each tensor name to
  ``{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}``, plus an
  optional ``"__metadata__"`` entry (a string-to-string map, ignored here);
* bytes ``8+N..``: the data buffer; tensor bytes live at
  ``[8+N+begin, 8+N+end)``, row-major (C order), little-endian.

:func:`read_safetensors` checks every entry before it reads any data: a known
dtype, a shape of non-negative integers, offsets inside the data buffer that
match ``prod(shape) * itemsize`` exactly, and no two tensors sharing bytes.
Anything wrong raises :class:`intsim.core.errors.FileFormatError` naming the file
and the problem.

>>> import json, struct, tempfile, os
>>> import numpy as np
>>> header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
>>> with open(path, "wb") as f:
...     _ = f.write(struct.pack("<Q", len(header)) + header + np.array([1.5, -2.0], "<f4").tobytes())
>>> read_safetensors(path)["w"]
array([ 1.5, -2. ], dtype=float32)
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core.errors import FileFormatError

__all__ = ["SAFETENSORS_DTYPES", "read_safetensors"]

#: safetensors dtype name -> numpy dtype of the stored bytes (little-endian).
#: ``BF16`` is stored as 16-bit patterns and returned as float32 (exactly:
#: a bfloat16 is the upper half of a float32).
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

#: The format's own limit on the header size (100 MB); larger means corruption.
MAX_HEADER_BYTES = 100_000_000


def _fail(path: Path, problem: str) -> FileFormatError:
    return FileFormatError(f"{path}: not a valid safetensors file: {problem}")


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in the header")
        out[key] = value
    return out


def _parse_entry(
    path: Path, name: str, entry: object, data_size: int
) -> tuple[str, tuple[int, ...], int, int]:
    """Validate one header entry; return (dtype name, shape, begin, end)."""
    if not isinstance(entry, dict):
        raise _fail(path, f"tensor {name!r}: header entry is a {type(entry).__name__}, not an object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in entry]
    if missing:
        raise _fail(path, f"tensor {name!r}: header entry lacks {', '.join(missing)}")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        raise _fail(
            path, f"tensor {name!r}: unknown dtype {dtype!r} (known: {', '.join(SAFETENSORS_DTYPES)})"
        )
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _fail(path, f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise _fail(path, f"tensor {name!r}: data_offsets {offsets!r} is not a pair of integers")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise _fail(
            path,
            f"tensor {name!r}: data_offsets [{begin}, {end}] out of range: the data buffer holds "
            f"{data_size} bytes (file truncated?)",
        )
    itemsize = 2 if dtype == "BF16" else SAFETENSORS_DTYPES[dtype].itemsize
    expected = math.prod(shape) * itemsize
    if end - begin != expected:
        raise _fail(
            path,
            f"tensor {name!r}: data_offsets [{begin}, {end}] span {end - begin} bytes but "
            f"dtype {dtype} with shape {shape} needs {expected}",
        )
    return dtype, tuple(shape), begin, end


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every tensor of a safetensors file into numpy arrays.

    Args:
        path: the file to read.

    Returns:
        A dict from tensor name (header order) to a fresh, writable, C-contiguous
        array in native byte order, holding the stored values in the stored
        dtype (``F32`` -> float32, ``I64`` -> int64, ``BOOL`` -> bool, ...),
        except ``BF16``, which comes back as float32 holding the same values
        (each 16-bit pattern shifted into the top half of a float32).
        The ``__metadata__`` entry is skipped.

    Raises:
        FileFormatError: the file is missing or unreadable, shorter than 8 bytes,
            declares a header that runs past the end of the file (or exceeds the
            format's 100 MB limit), holds a header that is not a UTF-8 JSON
            object, or has an entry with an unknown dtype, a bad shape, offsets
            outside the data buffer (a truncated file ends up here), offsets
            whose span does not equal ``prod(shape) * itemsize``, or bytes
            shared with another tensor. The message names the file and the
            tensor.

    Example:
        >>> weights = read_safetensors("model.safetensors")  # doctest: +SKIP
        >>> weights["embeddings.word_embeddings.weight"].shape  # doctest: +SKIP
        (30522, 384)
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _read_open_file(path, fh)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read safetensors file: {exc.strerror or exc}") from exc


def _read_open_file(path: Path, fh: BinaryIO) -> dict[str, np.ndarray]:
    """The body of :func:`read_safetensors` on an open binary file."""
    file_size = os.fstat(fh.fileno()).st_size
    head = fh.read(8)
    if len(head) < 8:
        raise _fail(path, f"file is {file_size} bytes long, too short for the 8-byte header length")
    (header_len,) = struct.unpack("<Q", head)
    if header_len > MAX_HEADER_BYTES:
        raise _fail(path, f"header length {header_len} exceeds the format's limit of {MAX_HEADER_BYTES}")
    if 8 + header_len > file_size:
        raise _fail(path, f"header length {header_len} runs past the end of the file ({file_size} bytes)")
    raw = fh.read(header_len)
    if len(raw) != header_len:
        raise _fail(path, f"could read only {len(raw)} of {header_len} header bytes")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(path, f"header is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise _fail(path, f"header is a JSON {type(header).__name__}, not an object")

    data_start = 8 + header_len
    data_size = file_size - data_start
    entries = {
        name: _parse_entry(path, name, entry, data_size)
        for name, entry in header.items()
        if name != "__metadata__"
    }

    # No two tensors may share bytes (empty tensors occupy none).
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items() if end > begin)
    for (_, prev_end, prev_name), (begin, _, name) in itertools.pairwise(spans):
        if begin < prev_end:
            raise _fail(path, f"tensors {prev_name!r} and {name!r} overlap in the data buffer")

    out: dict[str, np.ndarray] = {}
    for name, (dtype, shape, begin, end) in entries.items():
        stored = SAFETENSORS_DTYPES[dtype]
        count = (end - begin) // stored.itemsize
        fh.seek(data_start + begin)
        flat = np.fromfile(fh, dtype=stored, count=count) if count else np.empty(0, stored)
        if flat.size != count:
            raise _fail(path, f"tensor {name!r}: file ended after {flat.size} of {count} elements")
        if dtype == "BF16":
            flat = (flat.astype(np.uint32) << np.uint32(16)).view(np.float32)
        elif dtype == "BOOL":
            as_bytes = flat.view(np.uint8)
            if as_bytes.size and as_bytes.max() > 1:
                raise _fail(path, f"tensor {name!r}: BOOL data holds bytes other than 0 and 1")
        else:
            flat = flat.astype(stored.newbyteorder("="), copy=False)
        out[name] = flat.reshape(shape)
    return out
