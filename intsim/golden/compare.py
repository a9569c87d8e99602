"""Compare a design's dumps against a golden suite, with per-case results and JUnit XML.

The design (RTL simulation, FPGA, C model) writes its results into a dump
directory that mirrors the suite::

    DUMPS/<case>/<output>.hex          required for every output (e.g. C.hex for matmul)
    DUMPS/<case>/taps/<tap>.hex        optional; compared when present (e.g. taps/overflow.hex)

Each file may be ``$writememh``-style text (``.hex``, read by
:func:`intsim.golden.hexfmt.read_memh`: comments, ``@address`` markers, ``_``
separators; ``x``/``z`` digits count as mismatches) or a ``.npy`` array (read with
``allow_pickle=False``); ``.hex`` is used when both exist. A word is read at the
expected word width when it has at most ``ceil(bits/4)`` digits, and as a wider
sign-extended register when it has more (:func:`~intsim.golden.hexfmt.interpret_word`).

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

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from ..fileio import atomic_write_bytes
from ..inttype import IntType
from .hexfmt import hex_digits, interpret_word, read_memh
from .npyio import load_npy
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


def _compare_words(decl: TensorDecl, expected: np.ndarray, path: Path, max_report: int) -> TensorResult:
    n = int(expected.size)
    flat = expected.reshape(-1)
    res = TensorResult(decl.name, decl.role, str(path), n)
    t = decl.type

    def add(p: int, actual: int | None, text: str, line: int | None) -> None:
        res.mismatches += 1
        if len(res.first) < max_report:
            idx = tuple(int(i) for i in np.unravel_index(p, expected.shape)) if expected.ndim else ()
            res.first.append(Mismatch(decl.name, p, idx, int(flat[p]), actual, text, t.bits, t.signed, line))

    if path.suffix == ".npy":
        arr = load_npy(path)
        if arr.dtype.kind not in "iu":
            raise FileFormatError(f"{path}: holds {arr.dtype} values; integer arrays are expected")
        if arr.size != n:
            res.note = f"{arr.size} values of shape {tuple(arr.shape)}, expected {n} of shape {tuple(expected.shape)}"
            return res
        got = arr.reshape(-1)
        bad = np.flatnonzero(got.astype(object) != flat.astype(object)) if got.dtype != flat.dtype else \
            np.flatnonzero(got != flat)
        for p in bad:
            v = int(got[p])
            text = f"{v & ((1 << t.bits) - 1):0{hex_digits(t)}x}" if t.contains(v) else f"{v & ((1 << 64) - 1):x}"
            add(int(p), v, text, None)
        return res
    dump = read_memh(path)
    for p in range(n):
        text = dump.words.get(p)
        if text is None:
            add(p, None, "(missing)", None)
            continue
        v = interpret_word(text, t)
        if v is None or v != int(flat[p]):
            add(p, v, text, dump.lines.get(p))
    res.extra = sum(1 for a in dump.words if a >= n)
    return res


def _find_dump(dut: Path, case: str, decl: TensorDecl) -> Path | None:
    base = dut / case / ("taps" if decl.role == "tap" else "") / decl.name
    for ext in (".hex", ".npy"):
        p = base.with_name(base.name + ext)
        if p.is_file():
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
    if not dut.is_dir():
        raise FileFormatError(f"{dut}: the dump directory does not exist")
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
    """Write :func:`junit_bytes` to ``path`` atomically."""
    atomic_write_bytes(path, junit_bytes(report))
