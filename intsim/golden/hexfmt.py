"""``$readmemh`` text: the canonical writer, its strict reader, and a lenient reader for design dumps.

The canonical format intsim writes (``format_memh``) is what every HDL simulator's
``$readmemh`` accepts without options:

* one word per line, ``\\n`` line endings, no header, no comments, no ``@`` markers,
  so line ``n`` (1-based) holds element ``n - 1``;
* elements in row-major (C) order of the tensor;
* each word is the value in two's complement masked to the word width W
  (``value & (2**W - 1)``), written as exactly ``ceil(W / 4)`` lower-case hex digits,
  zero-padded, without ``0x``.

The word width, signedness, shape and SHA-256 of every file are in the suite's
``manifest.json``; the hex text itself carries none of them.

``read_memh`` reads what a simulator's ``$writememh`` (or a hand-written file)
produces: ``//`` and ``/* */`` comments, ``@hhhh`` address markers, ``_``
separators, any case, and ``x``/``z``/``?`` digits, which are kept as unresolved
words so that the caller reports them as mismatches. It reads only regular files
within the size caps of :mod:`intsim.golden.npyio` (file size, words per tensor,
digits per word), checked before anything is allocated.

>>> import numpy as np
>>> from intsim import IntType
>>> format_memh(np.array([-1, 5, -128]), IntType(8))
b'ff\\n05\\n80\\n'
>>> parse_memh(b'ff\\n05\\n80\\n', IntType(8), 3, "x.hex").tolist()
[-1, 5, -128]
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError
from ..core.inttype import IntType
from .npyio import MAX_ELEMENTS, MAX_FILE_BYTES, MAX_HEX_WORD_DIGITS, read_file

__all__ = ["format_memh", "parse_memh", "hex_digits", "MemhDump", "read_memh", "interpret_word"]

_HEX_CHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
_NEWLINE = ord("\n")
# byte -> its two lower-case hex characters, as the two bytes of a native-order uint16
_BYTE_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16).copy()


def hex_digits(t: IntType) -> int:
    """Hex digits per word for type ``t``: ``ceil(t.bits / 4)``.

    >>> hex_digits(IntType(1)), hex_digits(IntType(8)), hex_digits(IntType(13))
    (1, 2, 4)
    """
    return (t.bits + 3) // 4


def _as_u64(values: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype.kind == "u":
        return flat.astype(np.uint64)
    return flat.astype(np.int64).view(np.uint64)


def format_memh(values: np.ndarray, t: IntType) -> bytes:
    """The canonical ``$readmemh`` text of ``values`` as words of type ``t`` (see the module docs).

    ``values`` must be an integer array whose entries all lie in ``t``; otherwise
    :class:`~intsim.core.errors.OperandRangeError` names the first offending entry.
    """
    t.check(values, "hex words")
    digits = hex_digits(t)
    u = _as_u64(np.asarray(values))
    if t.bits < 64:
        u = u & np.uint64((1 << t.bits) - 1)
    nbytes = (digits + 1) // 2
    # big-endian bytes of each word, two hex characters per byte through a 256-entry table
    be = u.astype(">u8").view(np.uint8).reshape(u.size, 8)[:, 8 - nbytes:]
    chars = _BYTE_HEX[be].view(np.uint8).reshape(u.size, 2 * nbytes)
    out = np.empty((u.size, digits + 1), dtype=np.uint8)
    out[:, :digits] = chars[:, 2 * nbytes - digits:]
    out[:, digits] = _NEWLINE
    return out.tobytes()


def parse_memh(data: bytes, t: IntType, count: int, source: str | os.PathLike) -> np.ndarray:
    """Read canonical ``$readmemh`` text (as :func:`format_memh` writes it), strictly.

    Returns ``count`` values as int64 (uint64 for ``uint64``), sign-extended when ``t``
    is signed. Any deviation (wrong line length, a non-hex character, a word with
    bits set above the width, too few or too many lines) raises
    :class:`~intsim.core.errors.FileFormatError` naming ``source`` and the line.
    """
    digits = hex_digits(t)
    width = digits + 1
    if len(data) != count * width:
        lines = data.count(b"\n")
        raise FileFormatError(f"{source}: expected {count} lines of {digits} hex digits "
                              f"({count * width} bytes), found {len(data)} bytes in {lines} lines "
                              "(truncated or not written by intsim?)")
    if count == 0:
        return np.zeros(0, dtype=np.uint64 if (t.bits == 64 and not t.signed) else np.int64)
    arr = np.frombuffer(data, dtype=np.uint8).reshape(count, width)
    bad_nl = arr[:, digits] != _NEWLINE
    nib = _NIBBLE[arr[:, :digits]]
    bad_digit = (nib == 255).any(axis=1)
    bad = bad_nl | bad_digit
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        text = bytes(arr[line]).decode("latin-1").rstrip("\n")
        raise FileFormatError(f"{source}: line {line + 1}: {text!r} is not {digits} lower-case hex digits")
    u = np.zeros(count, dtype=np.uint64)
    for d in range(digits):
        u = (u << np.uint64(4)) | nib[:, d].astype(np.uint64)
    if t.bits < 64:
        over = u >> np.uint64(t.bits)
        if over.any():
            line = int(np.flatnonzero(over)[0])
            raise FileFormatError(f"{source}: line {line + 1}: word {bytes(arr[line, :digits]).decode()} "
                                  f"has bits set above the {t.bits}-bit word width")
    if not t.signed:
        return u if t.bits == 64 else u.astype(np.int64)
    shift = np.uint64(64 - t.bits)  # sign-extend: move the sign bit to bit 63, shift back arithmetically
    return (u << shift).view(np.int64) >> np.int64(64 - t.bits)


# --- lenient reading of design dumps --------------------------------------------------------------

_COMMENT_START = re.compile(rb"//|/\*")
_WORD = re.compile(rb"^[0-9a-fA-FxXzZ?_]+$")
_ADDR = re.compile(rb"^@[0-9a-fA-F_]+$")


@dataclass
class MemhDump:
    """The words of a ``$writememh``-style file, by address.

    ``words[addr]`` is the word's text (lower case, ``_`` removed) and ``lines[addr]``
    its 1-based line in the file; a later word at the same address replaces an
    earlier one, as in ``$readmemh``. ``extra`` counts the words at addresses at or
    beyond the expected word count (each occurrence), which are not kept.
    """

    source: str
    words: dict[int, str]
    lines: dict[int, int]
    extra: int = 0


def _strip_comments(data: bytes, path: str | os.PathLike) -> bytes:
    """``data`` without ``//`` and ``/* */`` comments, keeping their newlines (linear time)."""
    if b"/" not in data:
        return data
    out = []
    pos = 0
    while True:
        m = _COMMENT_START.search(data, pos)
        if m is None:
            out.append(data[pos:])
            return b"".join(out)
        out.append(data[pos:m.start()])
        if m.group(0) == b"//":
            end = data.find(b"\n", m.end())
            pos = len(data) if end < 0 else end
        else:
            end = data.find(b"*/", m.end())
            if end < 0:
                line = data.count(b"\n", 0, m.start()) + 1
                raise FileFormatError(f"{path}: line {line}: unterminated /* comment")
            out.append(b"\n" * data.count(b"\n", m.start(), end))
            pos = end + 2


def read_memh(path: str | os.PathLike, *, count: int | None = None) -> MemhDump:
    """Read a ``$writememh``/``$readmemh`` text file written by a design or simulator.

    Accepted: whitespace-separated hex words (any case, ``_`` separators, ``x``/``z``/``?``
    digits, at most :data:`~intsim.golden.npyio.MAX_HEX_WORD_DIGITS` digits), ``//`` and
    ``/* */`` comments, ``@hhhh`` address markers. Anything else raises
    :class:`~intsim.core.errors.FileFormatError` naming the file and the line.

    Only a regular file of at most :data:`~intsim.golden.npyio.MAX_FILE_BYTES` bytes is
    read. With ``count`` (the expected number of words), words at addresses at or beyond
    it are counted in ``extra`` and not kept, so an ``@address`` far beyond the tensor
    costs nothing; without it, a word at an address at or beyond
    :data:`~intsim.golden.npyio.MAX_ELEMENTS` raises FileFormatError.
    """
    path = Path(path)
    data = read_file(path, max_bytes=MAX_FILE_BYTES)
    clean = _strip_comments(data, path)
    del data
    limit = MAX_ELEMENTS if count is None else int(count)
    words: dict[int, str] = {}
    lines: dict[int, int] = {}
    extra = 0
    addr = 0
    for line, text in enumerate(io.BytesIO(clean), start=1):
        for tok in text.split():
            if tok[:1] == b"@":
                if not _ADDR.match(tok):
                    raise FileFormatError(f"{path}: line {line}: {tok[:40].decode('latin-1')!r} is not an "
                                          "@address (hex digits after '@')")
                digits = tok[1:].replace(b"_", b"").lstrip(b"0")
                addr = int(digits or b"0", 16) if len(digits) <= 16 else 1 << 64  # beyond any tensor either way
                continue
            word = tok.replace(b"_", b"")
            if not _WORD.match(tok) or not word:
                shown = tok[:40].decode("latin-1")
                raise FileFormatError(f"{path}: line {line}: {shown!r} is neither a hex word nor an @address")
            if len(word) > MAX_HEX_WORD_DIGITS:
                raise FileFormatError(f"{path}: line {line}: a word of {len(word)} digits is longer than the cap "
                                      f"of {MAX_HEX_WORD_DIGITS} hex digits per word")
            if addr >= limit:
                if count is None:
                    raise FileFormatError(f"{path}: line {line}: a word at address {addr:#x}, beyond the cap of "
                                          f"{MAX_ELEMENTS} words per tensor")
                extra += 1
            else:
                words[addr] = word.decode("ascii").lower()
                lines[addr] = line
            addr += 1
    return MemhDump(str(path), words, lines, extra)


def interpret_word(text: str, t: IntType) -> int | None:
    """The value of a dumped word compared against an expected word of type ``t``.

    Returns ``None`` when the word has ``x``/``z``/``?`` digits (unresolved), or when it
    does not fit its width (see below). The width the word is read at is ``t.bits``
    when the word has at most ``ceil(t.bits / 4)`` digits, and ``4 * digits`` when
    it has more (a design register wider than the expected word, read as a
    sign-extended value when ``t`` is signed).

    >>> interpret_word("ff", IntType(8)), interpret_word("ffffffff", IntType(8)), interpret_word("7f", IntType(7))
    (-1, -1, -1)
    >>> interpret_word("000000ff", IntType(8)), interpret_word("1x", IntType(8))
    (255, None)
    """
    if any(c in "xz?" for c in text):
        return None
    raw = int(text, 16)
    width = t.bits if len(text) <= hex_digits(t) else 4 * len(text)
    if raw >> width:
        return None
    if t.signed and raw >> (width - 1):
        raw -= 1 << width
    return raw
