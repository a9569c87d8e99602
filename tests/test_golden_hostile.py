"""Hostile inputs to the golden-suite readers: malformed manifests, hex dumps and ``.npy`` files.

Whatever a suite directory or a dump directory holds, ``load_suite`` / ``verify_suite`` /
``compare_suite`` end in a typed :class:`~intsim.core.errors.IntsimError` (or a result), the CLI
exits 0, 1 or 2 with at most one line on stderr and no traceback, nothing is allocated
beyond the documented caps (:mod:`intsim.golden.npyio`), nothing is unpickled, no read
blocks, and no file outside the target changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import stat
import tempfile
import threading
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intsim.core.errors import FileFormatError, IntsimError
from intsim.golden import cli, compare_suite, generate_suite, parse_spec, verify_suite
from intsim.golden import compare as compare_mod
from intsim.golden.hexfmt import read_memh
from intsim.golden.npyio import MAX_ELEMENTS, MAX_FILE_BYTES, MAX_JSON_DEPTH, load_npy, npy_from_bytes
from intsim.golden.suite import MANIFEST, _content_hash, load_suite, manifest_bytes

SPEC = """
[suite]
name = "hostile"
seed = 3

[[case]]
name = "mm16"
operator = "matmul"
shape = { M = 2, K = 3, N = 2 }
config = { a = "int8", b = "int8", acc_bits = 16, overflow = "wrap" }
inputs = { A = "uniform", B = "heavy_tailed" }

[[case]]
name = "mm8"
operator = "matmul"
shape = { M = 1, K = 2, N = 3 }
config = { a = "int4", b = "int4", acc_bits = 8, overflow = "saturate" }
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "suite"
    generate_suite(parse_spec(SPEC, "hostile.toml"), out)
    return out


@pytest.fixture(scope="module")
def doc(small) -> dict[str, Any]:
    return json.loads((small / MANIFEST).read_text())


# --------------------------------------------------------------------------------------------------
# helpers: a sandbox per example, snapshots, the CLI with its output captured
# --------------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root`` (not following links): regular files by content, others by kind."""
    snap: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st_.st_mode):
                snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st_.st_mode):
                snap[rel] = ("link", os.readlink(p))
            else:
                snap[rel] = ("kind", stat.S_IFMT(st_.st_mode))
    return snap


@contextlib.contextmanager
def sandbox(small: Path):
    """``box/suite`` (a copy), ``box/dut`` (exact dumps of every output), ``box/outside`` and
    ``box/sibling`` (must not change); the whole box is removed afterwards."""
    box = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        shutil.copytree(small, box / "suite")
        for case in ("mm16", "mm8"):
            (box / "dut" / case).mkdir(parents=True)
            shutil.copy(small / case / "C.hex", box / "dut" / case / "C.hex")
        (box / "outside").mkdir()
        (box / "outside" / "leak.hex").write_bytes((small / "mm16" / "C.hex").read_bytes())
        (box / "sibling").mkdir()
        (box / "sibling" / "keep.txt").write_text("precious\n")
        (box / "sibling" / "manifest.json").write_text("{}\n")
        yield box
    finally:
        shutil.rmtree(box, ignore_errors=True)


def guarded(box: Path) -> contextlib.AbstractContextManager:
    """Assert that ``box/outside`` and ``box/sibling`` are unchanged by the block."""

    @contextlib.contextmanager
    def check():
        before = {d: snapshot(box / d) for d in ("outside", "sibling")}
        yield
        assert {d: snapshot(box / d) for d in ("outside", "sibling")} == before

    return check()


def reseal(root: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as the manifest with a matching content hash (a self-consistent, hostile manifest)."""
    doc = dict(doc)
    doc["content_sha256"] = _content_hash(doc)
    (root / MANIFEST).write_bytes(manifest_bytes(doc))


def relist(root: Path, doc: dict[str, Any], rel: str) -> None:
    """Update the manifest's size and hash of ``rel`` after it was rewritten, and reseal."""
    data = (root / rel).read_bytes()
    doc["files"][rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    reseal(root, doc)


def run_cli(argv: list[str], via_intsim: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if via_intsim:
            from intsim.apps import cli as intsim_cli

            code = intsim_cli.main(["golden", *argv])
        else:
            code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def one_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def cli_survives(argv: list[str]) -> int:
    """The CLI exits 0, 1 or 2; with 2 (and only then) one line on stderr."""
    code, _out, err = run_cli(argv)
    assert code in (0, 1, 2)
    if code == 2:
        one_line(err)
    else:
        assert err == ""
    return code


@contextlib.contextmanager
def unblock_fifo(path: Path, after: float = 4.0):
    """If a reader is still blocked on the FIFO ``path`` after ``after`` seconds, open and close its
    writing end so that it goes on (a reader that hangs fails its test instead of hanging it)."""
    stop = threading.Event()

    def release() -> None:
        while not stop.wait(after):
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    t = threading.Thread(target=release, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def npy_header(descr: Any, fortran: Any, shape: Any, version: tuple[int, int] = (1, 0)) -> bytes:
    text = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (descr, fortran, shape)  # noqa: UP031
    pad = (-(10 + len(text) + 1)) % 64
    text = (text + " " * pad + "\n").encode("latin-1")
    if version == (1, 0):
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
    return b"\x93NUMPY" + bytes(version) + len(text).to_bytes(4, "little") + text


# --------------------------------------------------------------------------------------------------
# finding 1: every declared size is checked against a cap before anything is allocated
# --------------------------------------------------------------------------------------------------


def test_npy_dump_declaring_a_trillion_elements_is_a_mismatch_not_an_allocation(small):
    with sandbox(small) as box:
        dump = box / "dut" / "mm16" / "C.npy"
        (box / "dut" / "mm16" / "C.hex").unlink()
        data = npy_header("<i2", False, (10**12,)) + bytes(16)
        assert len(data) == 144
        dump.write_bytes(data)
        tracemalloc.start()
        try:
            rep = compare_suite(box / "suite", box / "dut", cases=["mm16"])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 50 << 20
        (c,) = rep.cases
        assert c.status == "fail" and rep.exit_code == 1
        assert "1000000000000 values of shape (1000000000000,), expected 4" in c.tensors[0].note
        with pytest.raises(FileFormatError, match=rf"C\.npy: .*more than the cap of {MAX_ELEMENTS} elements"):
            load_npy(dump)
        code, out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--case", "mm16"])
        assert code == 1 and "FAIL mm16" in out and err == ""


def test_npy_dump_larger_than_the_tensor_is_a_mismatch(small):
    with sandbox(small) as box:
        (box / "dut" / "mm16" / "C.hex").unlink()
        np.save(box / "dut" / "mm16" / "C.npy", np.zeros(100_000, dtype=np.int16))
        (c,) = compare_suite(box / "suite", box / "dut", cases=["mm16"]).cases
        assert c.status == "fail" and "100000 values of shape (100000,), expected 4" in c.tensors[0].note


@pytest.mark.parametrize("shape", [repr((2**63 - 1,) * 32), "(" + "9" * 4000 + ",)", repr((1,) * 33),
                                   "(" + "9" * 5000 + ",)"], ids=["32_huge_dims", "4000_digits", "33_dims",
                                                                   "5000_digits"])
def test_npy_dump_headers_with_absurd_shapes(small, shape):
    with sandbox(small) as box:
        (box / "dut" / "mm16" / "C.hex").unlink()
        text = "{'descr': '<i2', 'fortran_order': False, 'shape': %s, }" % shape  # noqa: UP031
        text += " " * ((-(10 + len(text) + 1)) % 64) + "\n"
        (box / "dut" / "mm16" / "C.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little")
                                                     + text.encode() + bytes(8))
        rep = compare_suite(box / "suite", box / "dut", cases=["mm16"])
        (c,) = rep.cases
        assert c.status in ("fail", "error")
        if c.status == "fail":
            assert "expected 4 of shape (2, 2)" in c.tensors[0].note and len(c.tensors[0].note) < 2000
        code, _out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--case", "mm16"])
        assert code == (1 if c.status == "fail" else 2)


def test_manifest_shape_over_the_cap_is_refused(small, doc):
    with sandbox(small) as box:
        d = json.loads(json.dumps(doc))
        d["cases"][0]["tensors"][0]["shape"] = [10**6, 10**6]
        reseal(box / "suite", d)
        with pytest.raises(FileFormatError, match=rf"manifest.json: case 'mm16': tensors\[0\]: key 'shape'.*"
                                                  rf"cap of {MAX_ELEMENTS}"):
            load_suite(box / "suite")


def test_hex_address_far_beyond_the_tensor(small):
    with sandbox(small) as box:
        dump = box / "dut" / "mm16" / "C.hex"
        dump.write_bytes(dump.read_bytes() + b"@e8d4a51000\n0000\n1111\n")
        tracemalloc.start()
        try:
            (c,) = compare_suite(box / "suite", box / "dut", cases=["mm16"]).cases
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 50 << 20
        assert c.status == "fail" and c.tensors[0].extra == 2 and c.tensors[0].mismatches == 0
        with pytest.raises(FileFormatError, match=rf"line 6: a word at address 0xe8d4a51000, beyond the cap of "
                                                  rf"{MAX_ELEMENTS} words"):
            read_memh(dump)


def test_huge_hex_file_is_refused_by_its_size(small):
    with sandbox(small) as box:
        dump = box / "dut" / "mm16" / "C.hex"
        with open(dump, "r+b") as fh:
            fh.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
        t0 = time.monotonic()
        (c,) = compare_suite(box / "suite", box / "dut", cases=["mm16"]).cases
        assert time.monotonic() - t0 < 5
        assert c.status == "error" and str(dump) in c.message
        assert f"more than the cap of {MAX_FILE_BYTES} bytes" in c.message


def test_overlong_hex_words_and_unterminated_comments_are_errors_quickly(small):
    with sandbox(small) as box:
        dump = box / "dut" / "mm16" / "C.hex"
        dump.write_bytes(b"f" * 100_000 + b"\n")
        with pytest.raises(FileFormatError, match="line 1: a word of 100000 digits is longer than the cap of 64"):
            read_memh(dump)
        dump.write_bytes(b"/*" * 500_000)  # quadratic for a backtracking comment pattern
        t0 = time.monotonic()
        with pytest.raises(FileFormatError, match="line 1: unterminated /\\* comment"):
            read_memh(dump)
        assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------------------------------
# finding 2: only regular files are read
# --------------------------------------------------------------------------------------------------


def test_fifo_in_a_suite_is_refused_without_hanging(small):
    with sandbox(small) as box:
        fifo = box / "suite" / "mm16" / "A.npy"
        fifo.unlink()
        os.mkfifo(fifo)
        t0 = time.monotonic()
        with unblock_fifo(fifo), pytest.raises(FileFormatError, match=r"A\.npy: is a FIFO \(named pipe\), not a "
                                                                     r"regular file"):
            verify_suite(box / "suite")
        assert time.monotonic() - t0 < 3
        code, _out, err = run_cli(["verify", str(box / "suite")])
        assert code == 2 and "A.npy" in one_line(err, "FileFormatError")


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "device_link"])
def test_non_regular_dut_dumps_are_refused(small, kind):
    with sandbox(small) as box:
        dump = box / "dut" / "mm16" / "C.hex"
        good = dump.read_bytes()
        dump.unlink()
        if kind == "fifo":
            os.mkfifo(dump)
        elif kind == "directory":
            dump.mkdir()
        elif kind == "symlink":
            (box / "outside" / "C.hex").write_bytes(good)
            dump.symlink_to(box / "outside" / "C.hex")
        else:
            dump.symlink_to(os.devnull)
        with guarded(box), unblock_fifo(dump):
            t0 = time.monotonic()
            rep = compare_suite(box / "suite", box / "dut", cases=["mm16"])
            assert time.monotonic() - t0 < 3
        (c,) = rep.cases
        assert c.status == "error" and rep.exit_code == 2
        assert str(dump) in c.message and "not a regular file" in c.message
        code, out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--case", "mm16"])
        assert code == 2 and "ERROR mm16" in out
        one_line(err, str(dump))


def test_directory_in_place_of_a_suite_file(small):
    with sandbox(small) as box:
        p = box / "suite" / "mm8" / "C.hex"
        p.unlink()
        p.mkdir()
        with pytest.raises(FileFormatError, match=r"C\.hex: is a directory, not a regular file"):
            load_suite(box / "suite")


# --------------------------------------------------------------------------------------------------
# finding 3: tensor and case names are single safe path components
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../outside/leak", "/abs/leak", "..", "a/b", "C\n", "C\\..\\x", ""])
def test_tensor_names_that_leave_the_dump_directory_are_refused(small, doc, name):
    with sandbox(small) as box:
        d = json.loads(json.dumps(doc))
        out = next(t for t in d["cases"][0]["tensors"] if t["role"] == "output")
        out["name"] = name
        reseal(box / "suite", d)
        with guarded(box):
            with pytest.raises(FileFormatError, match=r"manifest.json: case 'mm16': tensors\[\d+\].name: must be"):
                load_suite(box / "suite")
            with pytest.raises(FileFormatError, match=r"tensors\[\d+\].name"):
                compare_suite(box / "suite", box / "dut")
            code, out_, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut")])
        assert code == 2 and out_ == ""
        one_line(err, "FileFormatError", "manifest.json")


@pytest.mark.parametrize("name", ["../outside", "/tmp", "mm16/../x"])
def test_case_names_that_leave_the_dump_directory_are_refused(small, doc, name):
    with sandbox(small) as box:
        d = json.loads(json.dumps(doc))
        d["cases"][0]["name"] = name
        reseal(box / "suite", d)
        with pytest.raises(FileFormatError, match=r"cases\[0\].name: must be"):
            compare_suite(box / "suite", box / "dut")


def test_a_case_directory_linking_outside_the_dump_directory_is_refused(small):
    with sandbox(small) as box:
        shutil.rmtree(box / "dut" / "mm16")
        (box / "outside" / "mm16").mkdir()
        shutil.copy(small / "mm16" / "C.hex", box / "outside" / "mm16" / "C.hex")
        (box / "dut" / "mm16").symlink_to(box / "outside" / "mm16")
        (c,) = compare_suite(box / "suite", box / "dut", cases=["mm16"]).cases
        assert c.status == "error" and "resolves outside the dump directory" in c.message


# --------------------------------------------------------------------------------------------------
# finding 4: malformed manifests are FileFormatErrors naming the manifest and the field
# --------------------------------------------------------------------------------------------------


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    obj: Any = d
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


MALFORMED = [
    ("cases.0.seed", -1, "case 'mm16': key 'seed': -1 is out of range"),
    ("cases.0.seed", "7", "case 'mm16': key 'seed' has the wrong type (str)"),
    ("cases.0.seed", 2**64, "key 'seed'"),
    ("suite.seed", -1, "suite: key 'seed'"),
    ("suite.name", ["x"], "suite: key 'name' has the wrong type (list)"),
    ("suite", [], "key 'suite' has the wrong type (list)"),
    ("files", [], "key 'files' has the wrong type (list)"),
    ("cases", {}, "key 'cases' has the wrong type (dict)"),
    ("cases.0", [], "cases[0]: must be a JSON object, got list"),
    ("cases.0.tensors", {}, "key 'tensors' has the wrong type (dict)"),
    ("cases.0.tensors.0", "A", "tensors[0]: must be a JSON object, got str"),
    ("cases.0.tensors.0.shape", [-1, 3], "tensors[0]: key 'shape'"),
    ("cases.0.tensors.0.shape", [2, "3"], "tensors[0]: key 'shape'"),
    ("cases.0.tensors.0.shape", [1] * 40, "tensors[0]: key 'shape'"),
    ("cases.0.tensors.0.bits", 99, "disagrees with bits/signed/dtype/hex_digits"),
    ("cases.0.tensors.0.bits", "8", "key 'bits' has the wrong type (str)"),
    ("cases.0.tensors.0.signed", 1, "key 'signed' has the wrong type (int)"),
    ("cases.0.tensors.0.type", "int" + "9" * 5000, "key 'type'"),
    ("cases.0.tensors.0.type", "int99", "key 'type': IntType bits must be from 1 to 64"),
    ("cases.0.tensors.0.type", "float32", "key 'type'"),
    ("cases.0.tensors.0.dtype", "object", "disagrees"),
    ("cases.0.tensors.0.role", "weight", "key 'role': unknown role 'weight'"),
    ("cases.0.tensors.0.npy", "../outside.npy", "leaves the suite directory"),
    ("cases.0.tensors.0.npy", "mm16/A.hex", "does not end with '.npy'"),
    ("cases.0.config.a", "int" + "9" * 5000, "configuration is not valid"),
    ("cases.0.config.acc_bits", "16", "config.acc_bits"),
    ("cases.0.operator", 3, "key 'operator' has the wrong type (int)"),
    ("cases.0.operator", "no_such_op", "unknown operator 'no_such_op'"),
    ("cases.0.shape", [2, 3], "key 'shape' has the wrong type (list)"),
    ("cases.1.name", "MM16", "duplicate case name"),
    ("format_version", True, "format_version True is not supported"),
    ("files.mm16/A.npy.bytes", -1, "key 'bytes': -1 is out of range"),
    ("files.mm16/A.npy.bytes", 10**30, "key 'bytes'"),
    ("files.mm16/A.npy.sha256", "../x", "key 'sha256' is not 64 lower-case hex digits"),
    ("files.mm16/A.npy", "x", "must be a JSON object, got str"),
]


@pytest.mark.parametrize("path, value, fragment", MALFORMED, ids=[f"{p}={str(v)[:12]}" for p, v, _ in MALFORMED])
def test_malformed_manifest_fields(small, doc, path, value, fragment):
    with sandbox(small) as box:
        d = json.loads(json.dumps(doc))
        if path.startswith("files.mm16/A.npy"):
            meta = d["files"]["mm16/A.npy"]
            if path == "files.mm16/A.npy":
                d["files"]["mm16/A.npy"] = value
            else:
                meta[path.rsplit(".", 1)[1]] = value
        else:
            _set(d, path, value)
        reseal(box / "suite", d)
        with guarded(box):
            with pytest.raises(FileFormatError) as err:
                verify_suite(box / "suite")
            msg = str(err.value)
            assert "manifest.json" in msg and fragment in msg, msg
            code, _out, err_ = run_cli(["verify", str(box / "suite")])
        assert code == 2
        one_line(err_, "FileFormatError", "manifest.json")


def test_overlong_path_component_in_the_manifest(small, doc):
    with sandbox(small) as box:
        d = json.loads(json.dumps(doc))
        rel = "x" * 300 + "/A.npy"
        d["files"][rel] = d["files"]["mm16/A.npy"]
        d["cases"][0]["tensors"][0]["npy"] = rel
        reseal(box / "suite", d)
        with pytest.raises(FileFormatError, match=r"manifest.json: file path 'x{20,}.* is too long"):
            load_suite(box / "suite")
        code, _out, err = run_cli(["verify", str(box / "suite")])
        assert code == 2
        one_line(err, "too long")


def test_lone_surrogate_in_a_manifest_path(small, doc):
    with sandbox(small) as box:
        d = json.loads(json.dumps(doc))
        d["files"]["\ud800.npy"] = d["files"]["mm16/A.npy"]
        reseal(box / "suite", d)
        with pytest.raises(FileFormatError, match="not valid UTF-8"):
            load_suite(box / "suite")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100, 100_000])
def test_deeply_nested_manifest(small, depth):
    with sandbox(small) as box:
        m = box / "suite" / MANIFEST
        text = m.read_text()
        nested = "[" * depth + "]" * depth
        m.write_text(text.replace('"description": ""', f'"description": {nested}', 1))
        with pytest.raises(FileFormatError, match=rf"manifest.json: invalid manifest: arrays/objects nested more "
                                                  rf"than {MAX_JSON_DEPTH} levels"):
            load_suite(box / "suite")
        code, _out, err = run_cli(["verify", str(box / "suite")])
        assert code == 2
        one_line(err, "nested")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "1" * 5000])
def test_non_finite_and_oversized_numbers_in_the_manifest(small, text):
    with sandbox(small) as box:
        m = box / "suite" / MANIFEST
        m.write_text(m.read_text().replace('"description": ""', f'"description": {text}', 1))
        with pytest.raises(FileFormatError, match="manifest.json: invalid JSON"):
            load_suite(box / "suite")


def test_oversized_manifest_is_refused_by_its_size(small):
    with sandbox(small) as box:
        m = box / "suite" / MANIFEST
        with open(m, "r+b") as fh:
            fh.truncate(64 << 20)
        with pytest.raises(FileFormatError, match=r"manifest.json: \d+ bytes is more than the cap of 16777216"):
            load_suite(box / "suite")


# --------------------------------------------------------------------------------------------------
# finding 5: the results are printed before the JUnit file is written; failing to write it is exit 2
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via_intsim", [False, True])
def test_junit_pointing_at_a_directory(small, via_intsim):
    with sandbox(small) as box:
        target = box / "sibling"
        with guarded(box):
            code, out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--junit",
                                      str(target)], via_intsim=via_intsim)
        assert code == 2
        assert "PASS mm16" in out and "PASS mm8" in out and "2 passed, 0 failed, 0 error(s) of 2 case(s)" in out
        one_line(err, str(target), "JUnit")
        assert sorted(os.listdir(target)) == ["keep.txt", "manifest.json"]  # no temporary file left


def test_junit_in_an_unwritable_place(small, monkeypatch):
    with sandbox(small) as box:
        target = box / "ro" / "report.xml"

        def refuse(path, data):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(compare_mod, "atomic_write_bytes", refuse)
        code, out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--junit", str(target)])
        assert code == 2 and "PASS mm16" in out
        one_line(err, str(target), "Permission denied")
        monkeypatch.undo()
        # a real one: the parent "directory" is a regular file
        target = box / "sibling" / "keep.txt" / "report.xml"
        with guarded(box):
            code, out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--junit",
                                      str(target)])
        assert code == 2 and "PASS mm8" in out
        one_line(err, str(target))
        target = box / "report.xml"
        code, out, err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--junit", str(target)])
        assert code == 0 and err == "" and f"JUnit XML: {target}" in out
        assert ET.parse(target).getroot().get("tests") == "2"


# --------------------------------------------------------------------------------------------------
# finding 6: .npy dumps of raw bit patterns read like hex words
# --------------------------------------------------------------------------------------------------


def test_uint16_raw_bit_patterns_of_a_signed_output(small):
    C = np.load(small / "mm16" / "C.npy")
    assert C.dtype == np.int16 and (C < 0).any()
    with sandbox(small) as box:
        (box / "dut" / "mm16" / "C.hex").unlink()
        dump = box / "dut" / "mm16" / "C.npy"
        for arr in (C.view(np.uint16), C.astype(np.int32).view(np.uint32), C.astype(np.int64).view(np.uint64),
                    C.astype(np.int64), C.view(np.uint16).astype(np.uint32),
                    np.asfortranarray(C.view(np.uint16).reshape(2, 2))):
            np.save(dump, arr)
            rep = compare_suite(box / "suite", box / "dut", cases=["mm16"])
            assert rep.ok, (arr.dtype, rep.cases[0].details())
        code, out, _err = run_cli(["compare", str(box / "suite"), "--dut", str(box / "dut"), "--case", "mm16"])
        assert code == 0 and "PASS mm16" in out


def test_npy_values_that_do_not_fit_the_word_are_reported_mismatches(small):
    C = np.load(small / "mm8" / "C.npy")
    assert C.dtype == np.int8
    with sandbox(small) as box:
        (box / "dut" / "mm8" / "C.hex").unlink()
        dump = box / "dut" / "mm8" / "C.npy"
        bad = C.view(np.uint8).astype(np.uint16)
        bad[0, 1] = 0x01FF          # a 16-bit register holding 511: not an int8 value
        np.save(dump, bad)
        t = compare_suite(box / "suite", box / "dut", cases=["mm8"]).cases[0].tensors[0]
        assert t.mismatches == 1 and t.first[0].actual is None and t.first[0].actual_text == "01ff"
        assert "got '01ff' (unresolved or out of range)" in t.first[0].describe()
        wide = C.astype(np.int64)
        wide[0, 2] = 1 << 40
        np.save(dump, wide)
        t = compare_suite(box / "suite", box / "dut", cases=["mm8"]).cases[0].tensors[0]
        assert t.mismatches == 1 and t.first[0].index == (0, 2) and t.first[0].actual is None
        np.save(dump, C.astype(np.float32))
        (c,) = compare_suite(box / "suite", box / "dut", cases=["mm8"]).cases
        assert c.status == "error" and "not a plain integer dtype" in c.message


# --------------------------------------------------------------------------------------------------
# finding 7: OSErrors are one line and exit 2
# --------------------------------------------------------------------------------------------------


def test_os_errors_in_the_golden_commands_are_one_line(small, tmp_path):
    long = tmp_path / ("n" * 300)
    for argv in (["verify", str(long)], ["compare", str(small), "--dut", str(long)],
                 ["compare", str(long), "--dut", str(tmp_path)]):
        code, out, err = run_cli(argv)
        assert code == 2 and out == ""
        one_line(err, "n" * 300)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    for via_intsim in (False, True):
        code, _out, err = run_cli(["generate", str(spec), "--out", str(blocker / "suite"), "-q"], via_intsim)
        assert code == 2
        one_line(err, str(blocker))
    assert blocker.read_text() == "x"


def test_a_fifo_as_the_spec_does_not_hang(tmp_path):
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    with unblock_fifo(fifo):
        t0 = time.monotonic()
        code, _out, err = run_cli(["generate", str(fifo), "--out", str(tmp_path / "out")])
        assert time.monotonic() - t0 < 3
    assert code == 2
    one_line(err, str(fifo), "not a regular file")


def test_damaged_file_lists_are_one_stderr_line(small):
    with sandbox(small) as box:
        for rel in ("mm16/A.hex", "mm8/B.npy"):
            (box / "suite" / rel).write_bytes(b"")
        code, _out, err = run_cli(["verify", str(box / "suite")])
        assert code == 2
        one_line(err, "2 damaged file(s)", "mm16/A.hex", "mm8/B.npy")


# --------------------------------------------------------------------------------------------------
# finding 8: generated hostile inputs
# --------------------------------------------------------------------------------------------------


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) to a value inside ``obj``."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append(prefix + (i,))
            out.extend(_paths(v, prefix + (i,)))
    return out


def _nest(depth: int) -> Any:
    v: Any = []
    for _ in range(depth - 1):
        v = [v]
    return v


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, 1, 10**12, 2**63, 2**64, 2**24 + 1]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["../../outside/leak", "/etc/passwd", "..", ".", "x" * 300, "a/../../b", "C\n", "mm16",
                     "int999", "uint0", "int" + "9" * 5000, "object", "<f8", "matmul", "tap", "output",
                     "mm16/C.npy", "mm16/C.hex", "0" * 64, "\ud800", "nul", "manifest.json"]),
    st.lists(st.integers(-3, 2**40), max_size=4),
    st.sampled_from([[10**12], [2**24, 2**24], [-1], [1] * 40, [], [2, 2], [2, 3], [3]]),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.integers(MAX_JSON_DEPTH - 2, 60).map(_nest),
)


@st.composite
def manifest_edits(draw, paths: list[tuple]) -> tuple[list[tuple[tuple, str, Any]], bool]:
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        edits.append((draw(st.sampled_from(paths)), draw(st.sampled_from(["delete", "replace", "replace", "rename"])),
                      draw(HOSTILE_VALUES)))
    return edits, draw(st.sampled_from([True, True, True, False]))


def _apply(doc: dict[str, Any], path: tuple, action: str, value: Any) -> None:
    obj: Any = doc
    try:
        for k in path[:-1]:
            obj = obj[k]
        key = path[-1]
    except (KeyError, IndexError, TypeError):
        return  # an earlier edit removed or replaced what the path goes through
    if not (isinstance(obj, dict) and key in obj
            or isinstance(obj, list) and isinstance(key, int) and 0 <= key < len(obj)):
        return
    if action == "delete":
        del obj[key]
    elif action == "rename" and isinstance(obj, dict):
        obj[str(value) if not isinstance(value, str) else value] = obj.pop(key)
    else:
        obj[key] = value


@settings(max_examples=120)
@given(data=st.data())
def test_generated_hostile_manifests(small, doc, data):
    edits, sealed = data.draw(manifest_edits(_paths(doc)))
    d = json.loads(json.dumps(doc))
    for path, action, value in edits:
        _apply(d, path, action, value)
    with sandbox(small) as box:
        root = box / "suite"
        if sealed:
            reseal(root, d)
        else:
            (root / MANIFEST).write_bytes(manifest_bytes(d))
        suite_before = snapshot(root)
        with guarded(box):
            for call in (lambda: load_suite(root), lambda: verify_suite(root),
                         lambda: compare_suite(root, box / "dut")):
                try:
                    call()
                except IntsimError:
                    pass
            cli_survives(["verify", str(root)])
            cli_survives(["compare", str(root), "--dut", str(box / "dut")])
        assert snapshot(root) == suite_before


_HEX_TOKENS = st.one_of(
    st.integers(0, 2**16 - 1).map(lambda v: f"{v:04x}"),
    st.integers(0, 2**8 - 1).map(lambda v: f"{v:x}"),
    st.text("0123456789abcdefABCDEFxXzZ?_", min_size=1, max_size=20),
    st.integers(0, 2**50).map(lambda a: f"@{a:x}"),
    st.sampled_from(["@e8d4a51000", "@" + "f" * 40, "@", "@_", "@0", "@3", "//c", "/*", "*/", "/* x\n y */", "0x12",
                     "g", "\x00", "-1", "f" * 70, "1" * 65, "ffffffffffffffff", "_", "@@1", "\u00e9"]),
    st.text(max_size=5),
)
_SEPARATORS = st.sampled_from([" ", "\n", "\r\n", "\t", "\n\n", "\f"])


@st.composite
def hostile_hex(draw) -> bytes:
    kind = draw(st.sampled_from(["tokens", "tokens", "tokens", "binary", "long"]))
    if kind == "binary":
        return draw(st.binary(max_size=400))
    if kind == "long":
        return draw(st.sampled_from(["f", "0", "x", " ", "/", "@"])).encode() * draw(st.integers(100, 300_000))
    toks = draw(st.lists(st.tuples(_HEX_TOKENS, _SEPARATORS), max_size=30))
    return "".join(t + s for t, s in toks).encode("utf-8", "surrogatepass")


@settings(max_examples=150)
@given(blob=hostile_hex(), target=st.sampled_from(["mm16/C.hex", "mm8/C.hex", "mm16/taps/overflow.hex"]))
def test_generated_hostile_hex_dumps(small, blob, target):
    with sandbox(small) as box:
        dump = box / "dut" / target
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_bytes(blob)
        with guarded(box):
            try:
                read_memh(dump)
            except FileFormatError as exc:
                assert str(dump) in str(exc)
            rep = compare_suite(box / "suite", box / "dut")
            assert {c.status for c in rep.cases} <= {"pass", "fail", "error"}
            for c in rep.cases:
                assert c.status != "error" or str(dump) in c.message
            cli_survives(["compare", str(box / "suite"), "--dut", str(box / "dut")])


class _Trap:
    """Unpickling this creates ``path``: a loader that ever unpickles is caught in the act."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@st.composite
def hostile_npy(draw, good: bytes, trap: str) -> bytes:
    kind = draw(st.sampled_from(["header", "header", "truncate", "trailing", "flip", "pickle", "version", "bytes"]))
    if kind == "header":
        descr = draw(st.sampled_from(["<i2", "<u2", ">i2", "<i8", "|u1", "<u8", "<f8", "|O", "<U3", "|b1", "|V4",
                                      [("a", "<i2")], "<M8[s]", "<c8", "i2", "", "x" * 50, 3, None, "|i1"]))
        fortran = draw(st.sampled_from([False, True, "no", 1, None]))
        shape = draw(st.sampled_from([(2, 2), (4,), (10**12,), (-1,), (2**24, 2**24), (1,) * 40, (), "x", (2.0,),
                                      [2, 2], (True,), (1, 3), (3,), (0,), (2**24 + 1,)]))
        version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0)]))
        head = npy_header(descr, fortran, shape, version)
        if draw(st.booleans()):
            keys = draw(st.sampled_from([b"'shapes'", b"'shape': 1, 'shape'", b"'x': 1, 'shape'"]))
            head = head.replace(b"'shape'", keys)
        return head + draw(st.binary(max_size=64))
    if kind == "truncate":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "trailing":
        return good + draw(st.binary(min_size=1, max_size=16))
    if kind == "flip":
        b = bytearray(good)
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)
    if kind == "pickle":
        payload = pickle.dumps(np.array([_Trap(trap)], dtype=object), protocol=2)
        return npy_header("|O", False, (1,)) + payload
    if kind == "version":
        return good[:6] + bytes([draw(st.integers(0, 255)), draw(st.integers(0, 255))]) + good[8:]
    return draw(st.sampled_from([b"", b"\x93NUMPY"])) + draw(st.binary(max_size=200))


@settings(max_examples=150)
@given(data=st.data(), where=st.sampled_from(["dut", "suite"]))
def test_generated_hostile_npy_files(small, doc, data, where):
    good = (small / "mm16" / "C.npy").read_bytes()
    with sandbox(small) as box:
        trap = str(box / "outside" / "unpickled")
        blob = data.draw(hostile_npy(good, trap))
        try:
            arr = npy_from_bytes(blob, "x.npy")
            assert arr.dtype.kind in "iu"
        except FileFormatError as exc:
            assert "x.npy" in str(exc)
        with guarded(box):
            if where == "dut":
                (box / "dut" / "mm16" / "C.hex").unlink()
                dump = box / "dut" / "mm16" / "C.npy"
                dump.write_bytes(blob)
                try:
                    load_npy(dump)
                except FileFormatError as exc:
                    assert str(dump) in str(exc)
                rep = compare_suite(box / "suite", box / "dut")
                assert {c.status for c in rep.cases} <= {"pass", "fail", "error"}
                cli_survives(["compare", str(box / "suite"), "--dut", str(box / "dut")])
            else:
                (box / "suite" / "mm16" / "C.npy").write_bytes(blob)
                relist(box / "suite", json.loads(json.dumps(doc)), "mm16/C.npy")
                for call in (lambda: verify_suite(box / "suite"), lambda: compare_suite(box / "suite", box / "dut")):
                    try:
                        call()
                    except IntsimError:
                        pass
                cli_survives(["verify", str(box / "suite")])
        assert not os.path.exists(trap)
