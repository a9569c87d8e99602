"""Golden vectors: spec, data, hex format, generate / verify / compare, robustness, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from intsim import AccumulatorOverflow, ConfigError, Datapath, FileFormatError, IntType, matmul
from intsim.golden import cli, compare_suite, generate_suite, parse_spec, verify_suite
from intsim.golden.datagen import generate, normalize_dist
from intsim.golden.hexfmt import format_memh, interpret_word, parse_memh, read_memh
from intsim.golden.operators import ADAPTERS, available_operators
from intsim.golden.suite import MANIFEST, _content_hash, load_suite, manifest_bytes

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"
REGENERATE = "regenerate with: python -m intsim.golden generate golden/spec.toml --out golden --force"

SMALL_SPEC = """
[suite]
name = "small"
seed = 5

[[case]]
name = "mm_wrap"
operator = "matmul"
shape = { M = 3, K = 5, N = 4 }
config = { a = "int8", b = "int8", acc_bits = 32, overflow = "wrap", bias = true }
[case.inputs]
A = "uniform"
B = { dist = "heavy_tailed", outlier_rate = 0.2 }
bias = { dist = "uniform", low = -9, high = 9 }

[[case]]
name = "mm_sat16"
operator = "matmul"
shape = { M = 2, K = 8, N = 3 }
config = { a = "int8", b = "int8", acc_bits = 16, overflow = "saturate" }
inputs = { A = "overflow", B = "overflow" }

[[case]]
name = "mm_raise16"
operator = "matmul"
shape = { M = 2, K = 8, N = 3 }
config = { a = "int8", b = "int8", acc_bits = 16, overflow = "raise" }
inputs = { A = "overflow", B = "overflow" }
"""


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "suite"
    generate_suite(parse_spec(SMALL_SPEC, "small.toml"), out)
    return out


@pytest.fixture
def suite_copy(small, tmp_path) -> Path:
    dst = tmp_path / "suite"
    shutil.copytree(small, dst)
    return dst


def rewrite_manifest(root: Path, edit) -> None:
    """Edit the manifest and re-seal its content hash (a self-consistent, hostile manifest)."""
    doc = json.loads((root / MANIFEST).read_text())
    edit(doc)
    doc["content_sha256"] = _content_hash(doc)
    (root / MANIFEST).write_bytes(manifest_bytes(doc))


# --------------------------------------------------------------------------------------------------
# the checked-in suite
# --------------------------------------------------------------------------------------------------


def test_regenerating_the_checked_in_suite_is_byte_identical(tmp_path):
    out = tmp_path / "regen"
    generate_suite(GOLDEN / "spec.toml", out)
    fresh, checked_in = tree(out), tree(GOLDEN)
    assert sorted(fresh) == sorted(checked_in)
    differing = [name for name in fresh if fresh[name] != checked_in[name]]
    if differing == [MANIFEST]:  # only acceptable difference: the generator's version
        a, b = json.loads(fresh[MANIFEST]), json.loads(checked_in[MANIFEST])
        assert a["generator"] != b["generator"]
        for d in (a, b):
            d.pop("generator")
            d.pop("content_sha256")
        assert a == b
    else:
        assert differing == [], (f"golden/ differs from a fresh generation in {differing[:5]}: if an operator's "
                                 f"semantics changed on purpose, {REGENERATE}")


def test_generating_twice_gives_identical_bytes(tmp_path):
    spec = parse_spec(SMALL_SPEC)
    generate_suite(spec, tmp_path / "a")
    generate_suite(spec, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_checked_in_suite_verifies(capsys):
    code = cli.main(["verify", str(GOLDEN)])
    out = capsys.readouterr().out
    assert code == 0, out + REGENERATE + " (after checking that the change is intended)"
    n = len(json.loads((GOLDEN / MANIFEST).read_text())["cases"])
    assert f"{n} of {n} case(s) verified bit for bit" in out
    assert n >= 30


def test_checked_in_suite_covers_every_registered_operator_and_policy():
    doc = json.loads((GOLDEN / MANIFEST).read_text())
    ops = {c["operator"] for c in doc["cases"]}
    # the MiniLM encoder layer needs the model package; its suite is the demo's, reports/minilm/golden
    minilm = json.loads((GOLDEN.parent / "reports" / "minilm" / "golden" / MANIFEST).read_text())
    assert {c["operator"] for c in minilm["cases"]} == {"minilm_int.encoder_layer"}
    missing = set(available_operators()) - ops - {"minilm_int.encoder_layer"}
    assert not missing, f"operators without a case in golden/spec.toml (add one and regenerate): {missing}"
    mm = [c for c in doc["cases"] if c["operator"] == "matmul"]
    assert {c["config"]["overflow"] for c in mm} == {"wrap", "saturate", "raise"}
    assert {c["config"]["chunk_overflow"] for c in mm} >= {"saturate", "raise"}
    dists = {d["dist"] for c in doc["cases"] for d in c["inputs"].values()}
    assert dists >= {"uniform", "heavy_tailed", "most_negative", "most_positive", "zeros", "alternating",
                     "alternating_rows", "overflow"}
    modes = {c["config"]["mode"] for c in doc["cases"] if c["operator"] == "requantize"}
    from intsim.quant.requant import REQUANT_MODES

    assert modes == set(REQUANT_MODES)
    assert any(c["raises"] for c in mm) and any(c["raises"] for c in doc["cases"] if c["operator"] != "matmul")
    # the suite stays small enough to live in git
    assert sum(f["bytes"] for f in doc["files"].values()) < 3_000_000


# --------------------------------------------------------------------------------------------------
# matmul cases: outputs, taps, raise records
# --------------------------------------------------------------------------------------------------


def test_matmul_case_files_match_intsim(small):
    d = small / "mm_sat16"
    A, B = np.load(d / "A.npy"), np.load(d / "B.npy")
    r = matmul(A, B, Datapath(acc_bits=16, overflow="saturate"))
    C = np.load(d / "C.npy")
    assert C.dtype == np.int16 and np.array_equal(C, r.values)
    assert C[0].tolist() == [32767] * 3 and C[1].tolist() == [-32768] * 3
    assert np.array_equal(np.load(d / "taps" / "overflow.npy"), r.overflow.astype(np.uint8))
    assert np.array_equal(np.load(d / "taps" / "first_overflow_k.npy"), r.first_overflow_k)
    ij = np.load(d / "taps" / "trace_ij.npy")
    trace = np.load(d / "taps" / "acc_trace.npy")
    assert trace.shape == (len(ij), 8)
    for (i, j), t in zip(ij.tolist(), trace.tolist(), strict=True):
        assert t[-1] == C[i, j]
    assert trace[0].tolist() == [16384, 32767, 32767, 32767, 32767, 32767, 32767, 32767]
    assert (d / "C.hex").read_text().split() == ["7fff"] * 3 + ["8000"] * 3


def test_raise_case_records_the_error_and_stores_wrapped_registers(small):
    doc = json.loads((small / MANIFEST).read_text())
    case = next(c for c in doc["cases"] if c["name"] == "mm_raise16")
    A, B = np.load(small / "mm_raise16" / "A.npy"), np.load(small / "mm_raise16" / "B.npy")
    with pytest.raises(AccumulatorOverflow) as err:
        matmul(A, B, Datapath(acc_bits=16, overflow="raise"))
    assert case["raises"] == {"error": "AccumulatorOverflow", "index": list(err.value.index), "k": err.value.k,
                              "value": err.value.value, "bits": 16}
    wrapped = matmul(A, B, Datapath(acc_bits=16, overflow="wrap")).values
    assert np.array_equal(np.load(small / "mm_raise16" / "C.npy"), wrapped)
    assert case["config"]["overflow"] == "raise"


def test_manifest_describes_every_file(small):
    doc = json.loads((small / MANIFEST).read_text())
    listed = set(doc["files"])
    on_disk = {str(p.relative_to(small)) for p in small.rglob("*") if p.is_file()} - {MANIFEST}
    assert listed == on_disk
    t = next(t for t in doc["cases"][0]["tensors"] if t["name"] == "C")
    assert (t["dtype"], t["bits"], t["signed"], t["hex_digits"], t["shape"]) == ("int32", 32, True, 8, [3, 4])
    assert doc["cases"][0]["config"]["k_chunk"] == 1  # defaults are recorded explicitly
    assert doc["format_version"] == 1 and "timestamp" not in json.dumps(doc)


# --------------------------------------------------------------------------------------------------
# hex format and data generation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [IntType(1), IntType(1, False), IntType(3), IntType(4), IntType(7), IntType(8),
                               IntType(13, False), IntType(32), IntType(63), IntType(64), IntType(64, False)])
def test_hex_round_trip_at_every_width(t):
    vals = np.array(sorted({t.min, t.max, 0, t.min // 2, t.max // 3}), dtype=t.dtype)
    text = format_memh(vals, t)
    digits = (t.bits + 3) // 4
    assert all(len(line) == digits for line in text.decode().splitlines())
    assert np.array_equal(parse_memh(text, t, vals.size, "x.hex"), vals)
    for line, v in zip(text.decode().splitlines(), vals.tolist(), strict=True):
        assert int(line, 16) == v % (1 << t.bits)  # two's complement, masked to the width


def test_hex_words_are_masked_twos_complement():
    assert format_memh(np.array([-1, -8, 7, 0]), IntType(4)) == b"f\n8\n7\n0\n"
    assert format_memh(np.array([-1, 63, -64]), IntType(7)) == b"7f\n3f\n40\n"
    assert format_memh(np.array([-2**31]), IntType(32)) == b"80000000\n"
    with pytest.raises(Exception, match="outside int4"):
        format_memh(np.array([8]), IntType(4))


@pytest.mark.parametrize("data, problem", [(b"ff\n0g\n", "line 2"), (b"ff\n", "expected 2 lines"),
                                           (b"ff\n0f", "expected 2 lines"), (b"ff\r\n0f\n", "expected 2 lines")])
def test_strict_hex_reader_names_the_problem(data, problem):
    with pytest.raises(FileFormatError, match=problem):
        parse_memh(data, IntType(8), 2, "C.hex")


def test_strict_hex_reader_refuses_bits_above_the_width():
    with pytest.raises(FileFormatError, match="above the 7-bit"):
        parse_memh(b"80\n", IntType(7), 1, "C.hex")


def test_lenient_reader_handles_writememh_syntax(tmp_path):
    p = tmp_path / "d.hex"
    p.write_text("// header 0x0\n/* block\n comment */ 0A_0b\n@3 FFFF // tail\n xz0_1\n@1\n0002\n")
    d = read_memh(p)
    assert d.words == {0: "0a0b", 3: "ffff", 4: "xz01", 1: "0002"}
    assert d.lines == {0: 3, 3: 4, 4: 5, 1: 7}
    p.write_text("ff\n12g\n")
    with pytest.raises(FileFormatError, match="line 2: '12g'"):
        read_memh(p)
    p.write_text("ff /* open\n")
    with pytest.raises(FileFormatError, match="unterminated"):
        read_memh(p)


def test_word_interpretation():
    t = IntType(16)
    assert interpret_word("ffff", t) == -1
    assert interpret_word("ffffffff", t) == -1          # sign-extended wider register
    assert interpret_word("0000ffff", t) == 65535       # zero-extended: a different value
    assert interpret_word("1ffff", IntType(16)) == 131071
    assert interpret_word("7f", IntType(7)) == -1
    assert interpret_word("ff", IntType(7)) is None     # does not fit 7 bits
    assert interpret_word("x0", IntType(8)) is None
    assert interpret_word("ff", IntType(8, signed=False)) == 255


def test_data_streams_are_pinned():
    # PCG64 raw words + integer arithmetic only: these values must never change
    u = generate(IntType(8), (8,), normalize_dist("uniform", IntType(8), "A"), 1, "A")
    h = generate(IntType(16), (6,), normalize_dist("heavy_tailed", IntType(16), "B"), 2, "B")
    assert u.tolist() == PINNED_UNIFORM
    assert h.tolist() == PINNED_HEAVY


PINNED_UNIFORM = [-10, 14, -50, 81, 69, -43, 67, -19]
PINNED_HEAVY = [-17, 2, 6, -2, -6, 1]


def test_distributions_respect_their_ranges():
    t = IntType(12)
    x = generate(t, (4000,), normalize_dist({"dist": "uniform", "low": -5, "high": 9}, t, "x"), 3, "x")
    assert x.min() == -5 and x.max() == 9 and len(np.unique(x)) == 15
    heavy = normalize_dist({"dist": "heavy_tailed", "outlier_rate": 0.1, "outlier_channels": 2}, t, "x")
    h = generate(t, (50, 40), heavy, 3, "x")
    big = np.abs(h.astype(np.int64)) >= t.max // 2
    assert big.all(axis=0).sum() >= 2              # two all-outlier channels
    assert 0.05 < big.mean() < 0.2                  # ~10% heavy hitters plus the channels
    assert np.median(np.abs(h)) < 64                # a small body
    u = generate(IntType(4, False), (2, 3), normalize_dist("alternating", IntType(4, False), "x"), 0, "x")
    assert u.tolist() == [[0, 15, 0], [15, 0, 15]]


# --------------------------------------------------------------------------------------------------
# bad specs
# --------------------------------------------------------------------------------------------------

CASE = '[[case]]\nname = "c1"\noperator = "{op}"\nshape = {{ M = 2, K = 2, N = 2 }}\nconfig = {{ {cfg} }}\n{extra}'


@pytest.mark.parametrize("op, cfg, extra, match", [
    ("conv2d", "", "", r"case 'c1': operator: unknown operator 'conv2d'.*available: .*matmul"),
    ("matmul", 'a = "int65"', "", r"case 'c1': config.a: .*1 to 64"),
    ("matmul", 'a = "int33"', "", r"case 'c1': config: .*1 to 32 bits"),
    ("matmul", "acc_bits = 0", "", r"case 'c1': config: acc_bits must be from 1 to 64"),
    ("matmul", "acc_bits = 65", "", r"case 'c1': config: acc_bits"),
    ("matmul", 'overflow = "clip"', "", r"case 'c1': config: unknown overflow policy 'clip'"),
    ("matmul", "acc_bit = 32", "", r"case 'c1': config.acc_bit: unknown key"),
    ("matmul", "", 'inputs = { A = "gaussian" }', r"case 'c1': inputs.A.dist: unknown distribution 'gaussian'"),
    ("matmul", "", 'inputs = { A = { dist = "uniform", low = -200 } }', r"inputs.A.low: must be an integer in int8"),
    ("matmul", "", 'inputs = { A = "overflow" }', r"'overflow' cannot overflow .* K >= "),
    ("matmul", "", 'inputs = { C = "uniform" }', r"inputs.C: unknown key"),
])
def test_bad_spec_is_a_config_error_naming_case_and_key(tmp_path, capsys, op, cfg, extra, match):
    spec = tmp_path / "spec.toml"
    spec.write_text(CASE.format(op=op, cfg=cfg, extra=extra))
    with pytest.raises(ConfigError, match=match):
        parse_spec(spec.read_text(), str(spec))
    out = tmp_path / "out"
    assert cli.main(["generate", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ConfigError" in err and "c1" in err
    assert not out.exists() and os.listdir(tmp_path) == ["spec.toml"]


def test_unreadable_specs_are_format_errors(tmp_path):
    with pytest.raises(FileFormatError, match="invalid TOML"):
        parse_spec("[[case]\nname=1", "s.toml")
    with pytest.raises(FileFormatError, match="not found"):
        generate_suite(tmp_path / "nope.toml", tmp_path / "out")
    with pytest.raises(ConfigError, match="duplicate case name"):
        parse_spec(CASE.format(op="matmul", cfg="", extra="") * 2)


# --------------------------------------------------------------------------------------------------
# generate is atomic
# --------------------------------------------------------------------------------------------------


def test_failed_generate_leaves_nothing_behind(tmp_path, monkeypatch):
    spec = parse_spec(SMALL_SPEC)
    op = ADAPTERS["matmul"]
    calls = []
    original = type(op).run

    def failing_run(self, case, inputs):
        calls.append(case.name)
        if len(calls) == 2:
            raise ConfigError(f"case {case.name!r}: simulated failure")
        return original(self, case, inputs)

    monkeypatch.setattr(type(op), "run", failing_run)
    with pytest.raises(ConfigError, match="simulated failure"):
        generate_suite(spec, tmp_path / "out")
    assert calls == ["mm_wrap", "mm_sat16"]
    assert os.listdir(tmp_path) == []  # neither the suite nor its temporary directory


def test_failed_regenerate_keeps_the_old_suite(suite_copy, monkeypatch):
    before = tree(suite_copy)
    monkeypatch.setattr(type(ADAPTERS["matmul"]), "run", lambda self, case, inputs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        generate_suite(parse_spec(SMALL_SPEC), suite_copy, force=True)
    assert tree(suite_copy) == before
    assert sorted(os.listdir(suite_copy.parent)) == ["suite"]


def test_generate_refuses_to_overwrite(tmp_path, small, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SMALL_SPEC)
    other = tmp_path / "notasuite"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    assert cli.main(["generate", str(spec), "--out", str(other), "--force"]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "precious"
    existing = tmp_path / "existing"
    shutil.copytree(small, existing)
    assert cli.main(["generate", str(spec), "--out", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["generate", str(spec), "--out", str(existing), "--force", "-q"]) == 0


# --------------------------------------------------------------------------------------------------
# damaged suites
# --------------------------------------------------------------------------------------------------


def _verify_fails(root: Path, capsys, *fragments: str) -> None:
    with pytest.raises(FileFormatError) as err:
        verify_suite(root)
    for f in fragments:
        assert f in str(err.value), str(err.value)
    assert cli.main(["verify", str(root)]) == 2
    msg = capsys.readouterr().err
    assert "FileFormatError" in msg and fragments[0] in msg


def test_flipped_byte_in_a_data_file(suite_copy, capsys):
    p = suite_copy / "mm_wrap" / "C.npy"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x01
    p.write_bytes(bytes(data))
    _verify_fails(suite_copy, capsys, str(p), "SHA-256 mismatch")


def test_flipped_byte_in_the_manifest(suite_copy, capsys):
    p = suite_copy / MANIFEST
    text = p.read_text()
    pos = text.index('"acc_bits": 32') + len('"acc_bits": 3')
    p.write_text(text[:pos] + "1" + text[pos + 1:])  # acc_bits 32 -> 31, still valid JSON
    _verify_fails(suite_copy, capsys, str(p), "content hash mismatch")


def test_truncated_file(suite_copy, capsys):
    p = suite_copy / "mm_sat16" / "C.hex"
    p.write_bytes(p.read_bytes()[:-4])
    _verify_fails(suite_copy, capsys, str(p), "truncated")


def test_truncated_manifest(suite_copy, capsys):
    p = suite_copy / MANIFEST
    p.write_bytes(p.read_bytes()[:500])
    _verify_fails(suite_copy, capsys, str(p), "invalid JSON")


def test_missing_file(suite_copy, capsys):
    p = suite_copy / "mm_wrap" / "taps" / "acc_trace.npy"
    p.unlink()
    _verify_fails(suite_copy, capsys, str(p), "missing")


def test_missing_manifest(suite_copy, capsys):
    (suite_copy / MANIFEST).unlink()
    _verify_fails(suite_copy, capsys, "manifest.json", "not an intsim golden suite")


@pytest.mark.parametrize("bad", ["../outside.npy", "/etc/passwd", "mm_wrap/../../x.npy", "mm_wrap\\..\\x.npy"])
def test_manifest_paths_that_leave_the_suite_are_refused(suite_copy, capsys, bad):
    def edit(doc):
        doc["files"][bad] = {"bytes": 0, "sha256": "0" * 64}
        doc["cases"][0]["tensors"][0]["npy"] = bad

    rewrite_manifest(suite_copy, edit)
    _verify_fails(suite_copy, capsys, "manifest.json", repr(bad))


def test_symlinked_files_are_refused(suite_copy, tmp_path, capsys):
    outside = tmp_path / "outside.npy"
    target = suite_copy / "mm_wrap" / "A.npy"
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)
    _verify_fails(suite_copy, capsys, "manifest.json", "symbolic link")


def test_consistent_but_wrong_values_are_mismatches(suite_copy, capsys):
    """Files re-sealed with matching hashes but a wrong output: verify reports a mismatch (exit 1)."""
    c = suite_copy / "mm_wrap" / "C.npy"
    arr = np.load(c)
    arr[1, 2] += 1
    from intsim.golden.hexfmt import format_memh as fm
    from intsim.golden.npyio import npy_bytes

    c.write_bytes(npy_bytes(arr))
    (suite_copy / "mm_wrap" / "C.hex").write_bytes(fm(arr, IntType(32)))

    def edit(doc):
        import hashlib

        for rel in ("mm_wrap/C.npy", "mm_wrap/C.hex"):
            data = (suite_copy / rel).read_bytes()
            doc["files"][rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    rewrite_manifest(suite_copy, edit)
    rep = verify_suite(suite_copy)
    assert [c.name for c in rep.failed] == ["mm_wrap"]
    assert "output C: 1 of 12 values differ; first at (1, 2)" in rep.failed[0].problems[0]
    assert cli.main(["verify", str(suite_copy)]) == 1
    assert "FAIL mm_wrap" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------------


def dut_from_suite(suite: Path, dut: Path, taps: bool = False) -> None:
    for case in ("mm_wrap", "mm_sat16", "mm_raise16"):
        (dut / case).mkdir(parents=True)
        shutil.copy(suite / case / "C.hex", dut / case / "C.hex")
        if taps:
            (dut / case / "taps").mkdir()
            shutil.copy(suite / case / "taps" / "overflow.hex", dut / case / "taps" / "overflow.hex")


def test_compare_passes_on_exact_dumps(small, tmp_path, capsys):
    dut_from_suite(small, tmp_path / "dut", taps=True)
    junit = tmp_path / "r.xml"
    assert cli.main(["compare", str(small), "--dut", str(tmp_path / "dut"), "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "PASS mm_wrap  (C: 12 words match, overflow: 12 words match)" in out
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "0", "0")


def test_compare_reports_mismatches_with_index_hex_and_decimal(small, tmp_path, capsys):
    dut = tmp_path / "dut"
    dut_from_suite(small, dut)
    C = np.load(small / "mm_wrap" / "C.npy")
    words = [f"{int(v) & 0xFFFFFFFF:08X}" for v in C.reshape(-1)]
    words[5] = "0000_0007"            # (1, 1): a wrong value, with a separator
    words[10] = "xxxxxxxx"            # (2, 2): unresolved
    text = "// dumped by a simulator\n" + "\n".join(words[:11]) + "\n"  # the last word is missing
    (dut / "mm_wrap" / "C.hex").write_text(text)
    sat = [f"{v & 0xFFFF:04x}" for v in np.load(small / "mm_sat16" / "C.npy").reshape(-1).tolist()]
    sat[4] = "ffff"                   # (1, 1): -1 instead of -32768
    (dut / "mm_sat16" / "C.hex").write_text("@0\n" + " ".join(sat) + "\n@6 0000\n")  # plus an extra word
    junit = tmp_path / "r.xml"
    code = cli.main(["compare", str(small), "--dut", str(dut), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1
    rep = compare_suite(small, dut)
    r = {c.name: c for c in rep.cases}
    assert r["mm_raise16"].status == "pass"
    cw = r["mm_wrap"].tensors[0]
    assert (cw.mismatches, cw.extra) == (3, 0)
    m = cw.first
    assert [x.index for x in m] == [(1, 1), (2, 2), (2, 3)]
    assert (m[0].expected, m[0].actual, m[0].line) == (int(C[1, 1]), 7, 7)
    assert m[1].actual is None and m[1].actual_text == "xxxxxxxx"
    assert m[2].actual_text == "(missing)"
    e = int(C[1, 1])
    assert f"C[1, 1] (word 5, line 7): expected 0x{e & 0xFFFFFFFF:08x} ({e}), got 0x00000007 (7)" in out
    assert "C[2, 2] (word 10, line 12): expected" in out and "'xxxxxxxx' (unresolved or out of range)" in out
    cs = r["mm_sat16"].tensors[0]
    assert (cs.mismatches, cs.extra) == (1, 1)
    assert "C[1, 1] (word 4, line 2): expected 0x8000 (-32768), got 0xffff (-1)" in out
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "2", "0")
    fails = {tc.get("name"): tc.find("failure") for tc in root.iter("testcase")}
    assert fails["mm_raise16"] is None
    assert fails["mm_wrap"].get("message") == "C: 3 of 12 words differ"
    assert "expected" in fails["mm_wrap"].text
    assert fails["mm_sat16"].get("message") == "C: 1 of 6 words differ; 1 extra word(s) beyond the 6 expected"


def test_compare_missing_and_unreadable_dumps(small, tmp_path, capsys):
    dut = tmp_path / "dut"
    dut_from_suite(small, dut)
    (dut / "mm_wrap" / "C.hex").unlink()
    rep = compare_suite(small, dut)
    r = {c.name: c for c in rep.cases}
    assert r["mm_wrap"].status == "fail" and "no dump" in r["mm_wrap"].tensors[0].note
    assert rep.exit_code == 1
    (dut / "mm_sat16" / "C.hex").write_text("7fff\nhello\n")
    rep = compare_suite(small, dut)
    r = {c.name: c for c in rep.cases}
    assert r["mm_sat16"].status == "error" and "line 2" in r["mm_sat16"].message
    assert rep.exit_code == 2
    junit = tmp_path / "r.xml"
    assert cli.main(["compare", str(small), "--dut", str(dut), "--junit", str(junit)]) == 2
    root = ET.parse(junit).getroot()
    assert (root.get("failures"), root.get("errors")) == ("1", "1")
    assert cli.main(["compare", str(small), "--dut", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_compare_npy_dumps_wide_registers_and_case_selection(small, tmp_path):
    dut = tmp_path / "dut"
    (dut / "mm_sat16").mkdir(parents=True)
    C = np.load(small / "mm_sat16" / "C.npy").astype(np.int64)
    C[0, 2] = 5
    np.save(dut / "mm_sat16" / "C.npy", C)
    rep = compare_suite(small, dut, cases=["mm_sat*"])
    assert [c.name for c in rep.cases] == ["mm_sat16"]
    t = rep.cases[0].tensors[0]
    assert t.mismatches == 1 and t.first[0].index == (0, 2) and t.first[0].actual == 5
    # a 32-bit register dump of 16-bit words, sign-extended, passes
    words = [f"{v & 0xFFFFFFFF:08x}" for v in np.load(small / "mm_sat16" / "C.npy").reshape(-1).tolist()]
    (dut / "mm_sat16" / "C.npy").unlink()
    (dut / "mm_sat16" / "C.hex").write_text("\n".join(words) + "\n")
    assert compare_suite(small, dut, cases=["mm_sat16"]).ok
    with pytest.raises(ConfigError, match="matches no case"):
        compare_suite(small, dut, cases=["nothing*"])


def test_compare_refuses_a_damaged_suite(suite_copy, tmp_path):
    dut_from_suite(suite_copy, tmp_path / "dut")
    (suite_copy / "mm_wrap" / "C.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FileFormatError, match="mm_wrap/C.npy"):
        compare_suite(suite_copy, tmp_path / "dut")


# --------------------------------------------------------------------------------------------------
# other operators, CLI entry point, cocotb adapter
# --------------------------------------------------------------------------------------------------


def test_requantize_and_unpack_cases(tmp_path):
    spec = parse_spec("""
[[case]]
name = "rq"
operator = "requantize"
shape = { x = [2, 3] }
config = { mode = "tflite_single", scale = 0.3, out = "int8" }
inputs = { x = { dist = "uniform", low = -1000, high = 1000 } }

[[case]]
name = "up"
operator = "unpack_matmul"
shape = { M = 2, K = 3, N = 2 }
config = { in_a = "int16", in_b = "int16", a = "int4", b = "int4", overflow = "wrap" }
inputs = { A = "heavy_tailed", B = "most_negative" }
""")
    generate_suite(spec, tmp_path / "s")
    from intsim.quant.requant import requantize

    x = np.load(tmp_path / "s" / "rq" / "x.npy")
    y = np.load(tmp_path / "s" / "rq" / "y.npy")
    assert np.array_equal(y, requantize(x, 0.3, out="int8", mode="tflite_single").values)
    A, B = np.load(tmp_path / "s" / "up" / "A.npy"), np.load(tmp_path / "s" / "up" / "B.npy")
    assert np.array_equal(np.load(tmp_path / "s" / "up" / "C.npy"), A.astype(np.int64) @ B.astype(np.int64))
    taps = tmp_path / "s" / "up" / "taps"
    a_u = np.load(taps / "a_unpacked.npy")
    assert a_u.dtype == np.int8 and a_u.min() >= -8 and a_u.max() <= 7
    assert np.load(taps / "a_index.npy").size == a_u.shape[0]
    assert verify_suite(tmp_path / "s").ok


def test_python_m_entry_point(small):
    res = subprocess.run([sys.executable, "-m", "intsim.golden", "verify", str(small)], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "3 of 3 case(s) verified" in res.stdout
    res = subprocess.run([sys.executable, "-m", "intsim.golden", "compare", str(small)], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert res.returncode == 2 and "--dut" in res.stderr


def test_load_suite_lists_all_damaged_files(suite_copy):
    for rel in ("mm_wrap/A.hex", "mm_sat16/B.npy"):
        (suite_copy / rel).write_bytes(b"")
    with pytest.raises(FileFormatError, match=r"2 damaged file\(s\)") as err:
        load_suite(suite_copy)
    assert "mm_wrap/A.hex" in str(err.value) and "mm_sat16/B.npy" in str(err.value)


def test_cocotb_adapter_conversions():
    pytest.importorskip("cocotb", minversion="2.0", reason="cocotb>=2 not installed")
    from cocotb.types import LogicArray

    from intsim.core.errors import DTypeError, OperandRangeError
    from intsim.golden.cocotb_adapter import (
        Scoreboard,
        from_logicarray,
        pack_lanes,
        split_lanes,
        to_logicarray,
        unpack_lanes,
    )

    t = IntType(8)
    la = to_logicarray(-3, t)
    assert str(la) == "11111101" and from_logicarray(la, t) == -3
    assert from_logicarray(la, IntType(8, signed=False)) == 253
    with pytest.raises(OperandRangeError):
        to_logicarray(128, t)
    bus = pack_lanes([1, -1, -128, 127], t)
    assert len(bus) == 32 and bus.to_unsigned() == 0x7F80FF01
    assert unpack_lanes(bus, t, 4) == [1, -1, -128, 127]
    assert [from_logicarray(x, t) for x in split_lanes(bus, 8, 4)] == [1, -1, -128, 127]
    with pytest.raises(DTypeError, match="X/Z"):
        from_logicarray(LogicArray("1010XZ10"), t)
    sb = Scoreboard("sb")
    assert sb.check("acc", (0,), 5, LogicArray("00000101"), t)
    assert not sb.check("acc", (1,), 5, LogicArray("0000010X"), t)
    assert not sb.ok and "acc(1,): expected 0x05 (5), got 0000010X (not an integer)" in sb.report()
    with pytest.raises(AssertionError, match="1 of 2 checks failed"):
        sb.assert_clean()


def _toy_op(x, scale, *, in_type="int8", overflow="raise", taps=False):
    """A toy OpResult operator: y = 3 * x, through a 10-bit register 'tripled'."""
    from intsim.regs.opresult import OpResult
    from intsim.regs.registers import RegisterFile

    regs = RegisterFile("toy", {"tripled": 10}, overflow=overflow)
    t = regs.check("tripled", 3 * np.asarray(x, dtype=np.int64))
    return OpResult(values=t, scale=scale, registers=regs, taps={"tripled": t, "x_copy": np.asarray(x)} if taps else {})


def test_generic_opresult_adapter(tmp_path, monkeypatch):
    from intsim.golden.operators import OpResultOperator

    monkeypatch.setitem(ADAPTERS, "toy.triple", OpResultOperator("toy.triple", _toy_op))
    spec = parse_spec("""
[[case]]
name = "ok"
operator = "toy.triple"
shape = { x = [2, 3] }
config = { in_type = "int6", scale = 0.5, out_type = "int10" }
inputs = { x = { dist = "uniform", low = -20, high = 20 } }

[[case]]
name = "overflowing"
operator = "toy.triple"
shape = { x = [2, 2] }
config = { in_type = "int9", scale = 0.5, out_type = "int10" }
inputs = { x = "alternating" }
""")
    generate_suite(spec, tmp_path / "s")
    d = tmp_path / "s"
    x = np.load(d / "ok" / "x.npy")
    assert x.dtype == np.int8 and np.array_equal(np.load(d / "ok" / "y.npy"), 3 * x.astype(np.int64))
    doc = json.loads((d / MANIFEST).read_text())
    ok, ov = doc["cases"]
    taps = {t["name"]: t for t in ok["tensors"] if t["role"] == "tap"}
    assert taps["tripled"]["type"] == "int10" and taps["x_copy"]["type"] == "int64"  # declared width, else 64
    assert ok["raises"] is None
    assert ov["raises"] == {"error": "RegisterOverflow", "op": "toy", "step": "tripled", "value": -768, "bits": 10}
    assert np.load(d / "overflowing" / "y.npy").tolist() == [[-768 + 1024, 765 - 1024], [765 - 1024, -768 + 1024]]
    assert verify_suite(d).ok
    for bad, match in [('shape = { z = [2] }\nconfig = { in_type = "int8", scale = 0.5 }', r"shape.z: not an input"),
                       ('shape = { x = [2] }\nconfig = { scale = 0.5 }', r"config.in_type: missing"),
                       ('shape = { x = [2] }\nconfig = { in_type = "int8", scale = 0.5, gain = 2 }',
                        r"config: toy.triple: .*unexpected keyword argument 'gain'"),
                       ('shape = { x = [2] }\nconfig = { in_type = "int8", scale = 0.5, out_type = "int4" }', None)]:
        text = f'[[case]]\nname = "b"\noperator = "toy.triple"\n{bad}\ninputs = {{ x = "most_positive" }}\n'
        if match is None:  # out_type too narrow: found when the case runs
            with pytest.raises(ConfigError, match=r"case 'b': output values \[381, 381\] do not fit out_type int4"):
                generate_suite(parse_spec(text), tmp_path / "b")
            assert not (tmp_path / "b").exists()
        else:
            with pytest.raises(ConfigError, match=match):
                parse_spec(text)


def test_the_suite_regenerates_from_its_own_edited_spec(tmp_path):
    """``generate out/spec.toml --out out --force`` after editing that spec (the checked-in suite's
    workflow): the edited spec is the input and goes back verbatim; any other edit still refuses."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SMALL_SPEC)
    out = tmp_path / "suite"
    generate_suite(spec, out)
    edited = SMALL_SPEC.replace('name = "mm_wrap"', 'name = "mm_wrap_renamed"')
    (out / "spec.toml").write_text(edited)
    rep = generate_suite(out / "spec.toml", out, force=True)
    assert (out / "spec.toml").read_text() == edited and (out / "mm_wrap_renamed").is_dir()
    assert not (out / "mm_wrap").exists() and rep.cases
    (out / "spec.toml").write_text(edited + "\n# another edit\n")
    hexfile = next((out / "mm_wrap_renamed").glob("*.hex"))
    hexfile.write_text(hexfile.read_text() + "00\n")
    with pytest.raises(ConfigError, match="was modified after intsim wrote it"):
        generate_suite(out / "spec.toml", out, force=True)
    assert (out / "spec.toml").read_text().endswith("# another edit\n")


def test_an_edited_spec_elsewhere_does_not_excuse_an_edited_suite_copy(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SMALL_SPEC)
    out = tmp_path / "suite"
    generate_suite(spec, out)
    (out / "spec.toml").write_text(SMALL_SPEC + "\n# edited in the suite\n")
    with pytest.raises(ConfigError, match="'spec.toml' was modified after intsim wrote it"):
        generate_suite(spec, out, force=True)


def test_a_zero_dimensional_tap_keeps_its_shape(tmp_path):
    """A 1-D input of a per-row operator gives 0-d taps (one row): written and verified as such."""
    spec = parse_spec('[suite]\nname = "t"\nseed = 3\n\n[[case]]\nname = "one_row"\n'
                      'operator = "illm.dynamic_requant"\nshape = { p = [16] }\n'
                      'config = { in_type = "int32", scale = 0.001, bits = 8 }\n'
                      'inputs = { p = { dist = "uniform", low = -3000, high = 3000 } }\n', source="spec.toml")
    generate_suite(spec, tmp_path / "s")
    doc = json.loads((tmp_path / "s" / MANIFEST).read_text())
    taps = {t["name"]: t["shape"] for t in doc["cases"][0]["tensors"] if t["role"] == "tap"}
    assert taps and any(shape == [] for shape in taps.values()), taps
    assert verify_suite(tmp_path / "s").ok
