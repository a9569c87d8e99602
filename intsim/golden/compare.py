"""Compare a design's dumps against a golden suite, with per-case results and JUnit XML.

The design (RTL simulation, FPGA, C model) writes its results into a dump
directory that mirrors the suite::

    DUMPS/<case>/<output>.hex          required for every output (e.g. C.hex for matmul)
    DUMPS/<case>/taps/<tap>.hex        optional; compared when present (e.g. taps/overflow.hex)

Each file may be ``$writememh``-style text (``.hex``, read by
:func:`intsim.golden.hexfmt.read_memh`: comments, ``@address`` markers, ``_``
separators; ``x``/``z`` digits count as mismatches) or a ``.npy`` array (read by
:func:`intsim.golden.npyio.load_npy`, never unpickled); ``.hex`` is used when both
exist. A hex word is read at the expected word width when it has at most
``ceil(bits/4)`` digits, and as a wider sign-extended register when it has more
(:func:`~intsim.golden.hexfmt.interpret_word`).

A ``.npy`` dump must hold a plain integer dtype and as many elements as the tensor
(any shape; they are taken in row-major order). Its elements are read as follows,
for a tensor of W-bit words:

* a signed dtype (``int8`` ... ``int64``) holds values, compared as they are (a wider
  dtype is a sign-extended register);
* an unsigned dtype of D bits holds raw bit patterns, read like hex words: a pattern
  below ``2**W`` is the W-bit word, in two's complement when the tensor is signed
  (so a 16-bit signed output may be dumped as ``uint16`` words, ``0xffff`` being -1);
  a pattern with bits set above the word is a D-bit register, sign-extended when the
  tensor is signed (``uint32`` ``0xffffffff`` is -1 for a signed tensor).

A value that does not fit the tensor's word type is a mismatch, reported with its
bit pattern as out of range.

Dumps are checked before they are read: only regular files inside the dump
directory are read (a symbolic link, FIFO, device or directory in the place of a
dump is an error), within the caps of :mod:`intsim.golden.npyio`, and a dump whose
``.npy`` header or hex addresses declare more words than the tensor has is a
mismatch without those words ever being allocated.

A case passes when every output (and every tap present) matches word for word. It
fails on any differing, unresolved (x/z), missing or extra word or on a missing
output file; it errors when a dump cannot be parsed. Exit status of the CLI: 0 all
pass, 1 a case failed, 2 a dump or the suite could not be read.

>>> import tempfile, pathlib, shutil
>>> from intsim.golden.spec import parse_spec
>>> from intsim.golden.suite import generate_suite
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = generate_suite(parse_spec('[[case]]\\nname = "t"\\noperator = "matmul"\\n'
...                               'shape = { M = 1, K = 2, N = 2 }\\nconfig = { overflow = "wrap" }\\n'), d / "s")
>>> (d / "dut" / "t").mkdir(parents=True)
>>> _ = shutil.copy(d / "s" / "t" / "C.hex", d / "dut" / "t" / "C.hex")
>>> compare_suite(d / "s", d / "dut").exit_code
0
"""

from __future__ import annotations

import errno
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError
from ..core.fileio import atomic_write_bytes
from ..core.inttype import IntType
from .hexfmt import hex_digits, interpret_word, read_memh
from .npyio import load_npy, read_npy_header
from .operators import TensorDecl
from .suite import Suite, SuiteCase, load_suite

__all__ = ["Mismatch", "TensorResult", "CaseResult", "CompareReport", "compare_suite", "write_junit"]


@dataclass(frozen=True)
class Mismatch:
    """One differing word: flat (row-major) position, tensor index, expected value, and what the dump holds.

    ``actual`` is None when the word is unresolved (x/z), missing or does not fit its width;
    ``actual_text`` is the word as dumped (or ``"(missing)"``); ``line`` its line in a hex dump.
    """

    tensor: str
    flat: int
    index: tuple[int, ...]
    expected: int
    actual: int | None
    actual_text: str
    bits: int
    signed: bool
    line: int | None = None

    def describe(self) -> str:
        t = IntType(self.bits, self.signed)
        exp = f"0x{self.expected & ((1 << self.bits) - 1):0{hex_digits(t)}x} ({self.expected})"
        if self.actual is not None:
            act = f"0x{self.actual_text} ({self.actual})"
        elif self.actual_text == "(missing)":
            act = "nothing (missing word)"
        else:
            act = f"{self.actual_text!r} (unresolved or out of range)"
        where = f", line {self.line}" if self.line is not None else ""
        return f"{self.tensor}{list(self.index)} (word {self.flat}{where}): expected {exp}, got {act}"


@dataclass
class TensorResult:
    """The comparison of one tensor: its dump file, word count, mismatch count and the first mismatches."""

    name: str
    role: str
    source: str | None
    words: int
    mismatches: int = 0
    first: list[Mismatch] = field(default_factory=list)
    extra: int = 0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.source is not None and self.mismatches == 0 and self.extra == 0 and not self.note

    def summary(self) -> str:
        if self.source is None:
            return f"{self.name}: {self.note}"
        parts = []
        if self.mismatches:
            parts.append(f"{self.mismatches} of {self.words} words differ")
        if self.extra:
            parts.append(f"{self.extra} extra word(s) beyond the {self.words} expected")
        if self.note:
            parts.append(self.note)
        return f"{self.name}: " + ("; ".join(parts) if parts else f"{self.words} words match")


@dataclass
class CaseResult:
    """One case: ``status`` is ``pass``, ``fail`` (mismatch or missing dump) or ``error`` (unreadable dump)."""

    name: str
    status: str
    tensors: list[TensorResult] = field(default_factory=list)
    message: str = ""

    def details(self) -> list[str]:
        lines = []
        for t in self.tensors:
            if not t.ok:
                lines.append(t.summary())
                lines.extend("  " + m.describe() for m in t.first)
        if self.message:
            lines.append(self.message)
        return lines


@dataclass
class CompareReport:
    """All case results of :func:`compare_suite`; ``exit_code`` is 0 (pass), 1 (fail) or 2 (error)."""

    suite: str
    suite_dir: Path
    dut_dir: Path
    cases: list[CaseResult]

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" for c in self.cases)

    @property
    def exit_code(self) -> int:
        if any(c.status == "error" for c in self.cases):
            return 2
        return 0 if self.ok else 1


def _npy_matches(got: np.ndarray, flat: np.ndarray, t: IntType) -> np.ndarray:
    """Which dumped ``.npy`` elements equal the expected words (see the module docs for the rule)."""
    if got.dtype.kind == "u" and t.signed:
        u = got.astype(np.uint64)
        e = flat.astype(np.int64).view(np.uint64)
        d = got.dtype.itemsize * 8
        ok = u == (e & np.uint64((1 << t.bits) - 1))
        if d > t.bits:
            ok |= u == (e & np.uint64((1 << d) - 1))
        return ok
    if got.dtype == flat.dtype:
        return got == flat
    if np.dtype(np.uint64) not in (got.dtype, flat.dtype):
        return got.astype(np.int64) == flat.astype(np.int64)
    # uint64 against a signed array: equal only where both are non-negative and equal as uint64
    return (got >= 0) & (flat >= 0) & (got.astype(np.uint64) == flat.astype(np.uint64))


def _npy_actual(v: int, dtype: np.dtype, t: IntType) -> tuple[int | None, str]:
    """The value a dumped ``.npy`` element stands for (None if it does not fit ``t``) and its bit pattern."""
    d = dtype.itemsize * 8
    if dtype.kind == "u" and t.signed:
        if v < (1 << t.bits):
            val = v - (1 << t.bits) if v >> (t.bits - 1) else v
            text = f"{v:0{hex_digits(t)}x}"
        else:
            val = v - (1 << d) if v >> (d - 1) else v
            text = f"{v:0{d // 4}x}"
    else:
        val = v
        text = f"{v & ((1 << t.bits) - 1):0{hex_digits(t)}x}" if t.contains(v) else f"{v & ((1 << d) - 1):0{d // 4}x}"
    return (val if t.contains(val) else None), text


def _compare_words(decl: TensorDecl, expected: np.ndarray, path: Path, max_report: int) -> TensorResult:
    n = int(expected.size)
    flat = expected.reshape(-1)
    res = TensorResult(decl.name, decl.role, str(path), n)
    t = decl.type

    def first(p: int, actual: int | None, text: str, line: int | None) -> None:
        idx = tuple(int(i) for i in np.unravel_index(p, expected.shape)) if expected.ndim else ()
        res.first.append(Mismatch(decl.name, p, idx, int(flat[p]), actual, text, t.bits, t.signed, line))

    if path.suffix == ".npy":
        # the declared shape is compared with the tensor before anything else: a dump of another
        # size is a mismatch, whatever it declares, and none of its data are read
        hdr = read_npy_header(path, max_elements=None, check_size=False)
        if hdr.count != n:
            res.note = f"{hdr.count} values of shape {hdr.shape}, expected {n} of shape {tuple(expected.shape)}"
            return res
        got = load_npy(path, max_elements=n).reshape(-1)
        bad = np.flatnonzero(~_npy_matches(got, flat, t))
        res.mismatches = int(bad.size)
        for p in bad[:max_report].tolist():
            actual, text = _npy_actual(int(got[p]), got.dtype, t)
            first(p, actual, text, None)
        return res
    dump = read_memh(path, count=n)
    for p in range(n):
        text = dump.words.get(p)
        if text is None:
            v, shown, line = None, "(missing)", None
        else:
            v = interpret_word(text, t)
            if v is not None and v == int(flat[p]):
                continue
            shown, line = text, dump.lines.get(p)
        res.mismatches += 1
        if len(res.first) < max_report:
            first(p, v, shown, line)
    res.extra = dump.extra
    return res


def _find_dump(dut: Path, case: str, decl: TensorDecl) -> Path | None:
    """The dump of a tensor (``.hex`` before ``.npy``), if anything exists at either name.

    Case and tensor names were checked to be single safe path components when the suite
    was loaded; the directory the dump sits in must also resolve inside ``dut`` (a case
    directory that is a symbolic link leading elsewhere is refused). Whatever is found is
    returned even if it is not a regular file, so that reading refuses it by name.
    """
    base = dut / case / ("taps" if decl.role == "tap" else "") / decl.name
    for ext in (".hex", ".npy"):
        p = base.with_name(base.name + ext)
        try:
            os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise FileFormatError(f"{p}: cannot be read ({exc.strerror or exc})") from None
        try:
            p.parent.resolve().relative_to(dut.resolve())
        except (ValueError, OSError, RuntimeError):
            raise FileFormatError(f"{p}: resolves outside the dump directory {dut}; refused") from None
        return p
    return None


def _compare_case(suite: Suite, sc: SuiteCase, dut: Path, taps: bool, max_report: int) -> CaseResult:
    result = CaseResult(sc.name, "pass")
    try:
        for decl, npy, hx in sc.tensors:
            if decl.role == "input" or (decl.role == "tap" and not taps):
                continue
            path = _find_dump(dut, sc.name, decl)
            if path is None:
                if decl.role == "output":
                    rel = f"{sc.name}/{decl.name}"
                    result.tensors.append(TensorResult(decl.name, decl.role, None, 0,
                                                       note=f"no dump (looked for {rel}.hex and {rel}.npy)"))
                continue
            expected = suite.tensor(decl, npy, hx)
            result.tensors.append(_compare_words(decl, expected, path, max_report))
    except FileFormatError as exc:
        result.status = "error"
        result.message = str(exc)
        return result
    if not any(t.role == "output" for t in result.tensors):
        result.status = "fail"
        result.message = "the case has no outputs to compare"
    if any(not t.ok for t in result.tensors):
        result.status = "fail"
    return result


def compare_suite(suite_dir: str | os.PathLike, dut_dir: str | os.PathLike, *, cases: Sequence[str] | None = None,
                  taps: bool = True, max_report: int = 10) -> CompareReport:
    """Compare the dumps in ``dut_dir`` against the suite in ``suite_dir`` (see the module docs).

    ``cases`` selects cases by glob pattern (all by default; a pattern matching nothing is a
    ConfigError); ``taps`` compares tap dumps that are present; ``max_report`` bounds the
    mismatches kept per tensor (the counts are always complete). The suite's own files are
    hash-checked first (FileFormatError on damage).
    """
    suite = load_suite(suite_dir)
    dut = Path(dut_dir)
    try:
        st = os.stat(dut)
    except FileNotFoundError:
        raise FileFormatError(f"{dut}: the dump directory does not exist") from None
    except OSError as exc:
        raise FileFormatError(f"{dut}: the dump directory cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise FileFormatError(f"{dut}: the dump directory does not exist (not a directory)")
    results = [_compare_case(suite, sc, dut, taps, max_report) for sc in suite.select(cases)]
    return CompareReport(suite.name, Path(suite_dir), dut, results)


def junit_bytes(report: CompareReport) -> bytes:
    """The report as JUnit XML: one testsuite, one testcase per case, ``failure``/``error`` elements."""
    n_fail = sum(c.status == "fail" for c in report.cases)
    n_err = sum(c.status == "error" for c in report.cases)
    root = ET.Element("testsuites", name="intsim golden compare", tests=str(len(report.cases)),
                      failures=str(n_fail), errors=str(n_err))
    ts = ET.SubElement(root, "testsuite", name=report.suite, tests=str(len(report.cases)), failures=str(n_fail),
                       errors=str(n_err), skipped="0")
    props = ET.SubElement(ts, "properties")
    ET.SubElement(props, "property", name="suite_dir", value=str(report.suite_dir))
    ET.SubElement(props, "property", name="dut_dir", value=str(report.dut_dir))
    for c in report.cases:
        tc = ET.SubElement(ts, "testcase", classname=f"golden.{report.suite}", name=c.name)
        if c.status == "pass":
            continue
        bad = [t for t in c.tensors if not t.ok]
        message = "; ".join(t.summary() for t in bad) or c.message
        el = ET.SubElement(tc, "failure" if c.status == "fail" else "error", message=message,
                           type="mismatch" if c.status == "fail" else "format")
        el.text = "\n".join(c.details())
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(report: CompareReport, path: str | os.PathLike) -> None:
    """Write :func:`junit_bytes` to ``path`` atomically (a temporary file renamed into place).

    An existing directory at ``path`` raises :class:`IsADirectoryError`; any other failure
    to write raises its :class:`OSError` and leaves ``path`` as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    atomic_write_bytes(path, junit_bytes(report))
