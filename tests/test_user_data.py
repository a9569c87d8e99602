"""A user's own ``.npy`` data everywhere: ``intsim report unpack --npy``, the cost workload
``npy:A.npy,B.npy`` and golden spec inputs ``{ file = "A.npy" }``.

Every file is written by the test: integer dtypes of several widths and signs, Fortran order,
non-contiguous and big-endian arrays, and hostile files (float where integers are due, NaN, 1-D
or 3-D arrays, truncated or corrupted files, a directory, a FIFO, a missing file, a symbolic
link). One safe reader (:func:`intsim.core.npyfile.read_npy`) serves them all; each problem is a
typed error naming the file (exit status 2 on the command line).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from intsim.apps.cli import main
from intsim.core.errors import ConfigError, DTypeError, FileFormatError, OperandRangeError, ShapeError
from intsim.core.npyfile import MAX_ELEMENTS, read_gemm_npy, read_npy
from intsim.golden import generate_suite, load_spec, parse_spec, verify_suite
from intsim.golden.keys import MAX_TENSOR_ELEMENTS
from intsim.golden.suite import make_inputs
from intsim.hw.unpack import STRATEGIES, compare_strategies

HAS_FIFO = hasattr(os, "mkfifo")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _truncated(path: Path, arr: np.ndarray) -> Path:
    _save(path, arr)
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


RNG = np.random.default_rng(2024)


# --------------------------------------------------------------------------------------------------
# the shared reader
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arr", [
    RNG.integers(-128, 128, size=(3, 5)).astype(np.int8),
    RNG.integers(-30000, 30000, size=(4, 2)).astype(np.int16),
    RNG.integers(0, 256, size=(2, 7)).astype(np.uint8),
    np.asfortranarray(RNG.integers(-300, 300, size=(5, 3)).astype(np.int16)),
    RNG.integers(-9, 9, size=(6, 8)).astype(np.int32)[::2, 1::3],   # a non-contiguous view
    RNG.integers(-9, 9, size=(3, 4)).astype(">i4"),                 # big-endian
    RNG.integers(-(2**62), 2**62, size=(2, 2), dtype=np.int64),
], ids=["int8", "int16", "uint8", "fortran-int16", "non-contiguous", "big-endian", "int64"])
def test_integer_files_are_read_exactly_with_their_hash(tmp_path, arr):
    p = _save(tmp_path / "a.npy", arr)
    got = read_npy(p, ndim=2)
    assert np.array_equal(got.array, arr) and got.array.dtype == arr.dtype.newbyteorder("=")
    assert got.array.flags.c_contiguous and got.array.flags.writeable
    assert (got.sha256, got.bytes) == (_sha(p), p.stat().st_size)
    assert got.fortran_order == (arr.flags.f_contiguous and not arr.flags.c_contiguous)
    assert got.path == str(p)


@given(arr=hnp.arrays(st.sampled_from([np.int8, np.int16, np.uint8, np.uint16, np.int32, np.int64, ">i2", "<u4"]),
                      hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6)),
       fortran=st.booleans())
def test_any_integer_matrix_round_trips(arr, fortran):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = _save(Path(d) / "x.npy", np.asfortranarray(arr) if fortran else arr)
        got = read_npy(p, ndim=2)
        assert np.array_equal(got.array, arr) and got.sha256 == _sha(p)


def test_what_a_file_holds_is_checked(tmp_path):
    f = _save(tmp_path / "f.npy", np.ones((2, 2)))
    with pytest.raises(DTypeError, match=r"f\.npy: holds float64 values; integers are due"):
        read_npy(f)
    assert read_npy(f, kinds="iuf").array.dtype == np.float64
    with pytest.raises(DTypeError, match="holds bool values"):
        read_npy(_save(tmp_path / "b.npy", np.ones((2, 2), bool)), kinds="iuf")
    with pytest.raises(DTypeError, match="complex"):
        read_npy(_save(tmp_path / "c.npy", np.ones((2, 2), complex)), kinds="iuf")
    nan = np.ones((2, 3))
    nan[1, 2] = np.nan
    with pytest.raises(OperandRangeError, match=r"1 entries are NaN or Inf; first at index \(1, 2\)"):
        read_npy(_save(tmp_path / "nan.npy", nan), kinds="iuf")
    with pytest.raises(ShapeError, match="a 2-D array is due, got 1-D"):
        read_npy(_save(tmp_path / "v.npy", np.arange(4)), ndim=2)
    with pytest.raises(ShapeError, match="a 2-D array is due, got 3-D"):
        read_npy(_save(tmp_path / "t.npy", np.zeros((2, 2, 2), np.int8)), ndim=2)
    with pytest.raises(ShapeError, match=r"holds shape \(2, 2\), \(2, 3\) is due"):
        read_npy(tmp_path / "b.npy", kinds="b", shape=(2, 3))


def test_hostile_files_are_format_errors(tmp_path):
    with pytest.raises(FileFormatError, match="missing.npy: no such file"):
        read_npy(tmp_path / "missing.npy")
    with pytest.raises(FileFormatError, match="is a directory"):
        read_npy(tmp_path)
    with pytest.raises(FileFormatError, match="truncated"):
        read_npy(_truncated(tmp_path / "tr.npy", np.arange(12, dtype=np.int16).reshape(3, 4)))
    long = _save(tmp_path / "long.npy", np.arange(4, dtype=np.int8).reshape(2, 2))
    long.write_bytes(long.read_bytes() + b"\0")
    with pytest.raises(FileFormatError, match="trailing bytes"):
        read_npy(long)
    (tmp_path / "junk.npy").write_bytes(b"PK\x03\x04 not an npy file")
    with pytest.raises(FileFormatError, match="bad magic"):
        read_npy(tmp_path / "junk.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(FileFormatError):
        read_npy(tmp_path / "empty.npy")
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="never loaded"):
        read_npy(obj, kinds="iuf")
    huge = tmp_path / "huge.npy"  # a header declaring more than the cap: refused before any data is read
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (" + str(MAX_ELEMENTS) + ", 2), }"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    huge.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    with pytest.raises(FileFormatError, match="more than the cap"):
        read_npy(huge)
    with pytest.raises(FileFormatError, match="not a valid file path"):
        read_npy("a\0b.npy")


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    with pytest.raises(FileFormatError, match="FIFO"):
        read_npy(_fifo(tmp_path / "pipe.npy"))
    os.symlink(tmp_path / "pipe.npy", tmp_path / "link.npy")
    with pytest.raises(FileFormatError, match="FIFO"):
        read_npy(tmp_path / "link.npy")


def test_a_symbolic_link_to_a_file_is_followed(tmp_path):
    real = _save(tmp_path / "data" / "a.npy", np.eye(2, dtype=np.int8))
    os.symlink(real, tmp_path / "link.npy")
    got = read_npy(tmp_path / "link.npy")
    assert got.path == str(tmp_path / "link.npy") and got.sha256 == _sha(real)


def test_gemm_operands_must_fit(tmp_path):
    a = _save(tmp_path / "a.npy", np.ones((2, 3), np.int8))
    b = _save(tmp_path / "b.npy", np.ones((4, 5), np.int8))
    with pytest.raises(ShapeError, match=r"a\.npy @ .*b\.npy: A is 2x3 \(M x K\) but B is 4x5"):
        read_gemm_npy(a, b)
    e = _save(tmp_path / "e.npy", np.ones((0, 2), np.int8))
    with pytest.raises(ShapeError, match="empty GEMM"):
        read_gemm_npy(e, _save(tmp_path / "b2.npy", np.ones((2, 2), np.int8)))


def test_the_caps_are_the_golden_specs_and_npyio_reexports_the_reader():
    from intsim.golden import npyio

    assert MAX_ELEMENTS == MAX_TENSOR_ELEMENTS
    assert npyio.load_npy is read_npy.__globals__["load_npy"] and npyio.MAX_ELEMENTS == MAX_ELEMENTS


# --------------------------------------------------------------------------------------------------
# intsim report unpack --npy
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def operands(tmp_path):
    a = np.asfortranarray(RNG.integers(-300, 300, size=(6, 10)).astype(np.int16))
    a[0, 3] = 2000  # a heavy hitter
    b = RNG.integers(-128, 128, size=(10, 4)).astype(np.int8)
    return _save(tmp_path / "A.npy", a), _save(tmp_path / "B.npy", b), a.astype(np.int64), b.astype(np.int64)


def test_report_unpack_npy_gives_the_ratios_of_the_files(tmp_path, capsys, operands):
    pa, pb, a, b = operands
    out = tmp_path / "rep"
    code, stdout, err = _run(capsys, "report", "unpack", "--npy", pa, pb, "--bits", "2,4,8", "--out", out,
                             "--no-plots")
    assert code == 0, err
    assert "[1/1]" in stdout and f"wrote {out}" in stdout
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "README.md", "aggregate.csv", "gemms.csv", "inputs.csv"]
    inputs = _csv(out / "inputs.csv")
    assert [(r["operand"], r["path"], r["sha256"], r["dtype"], r["order"], r["shape"]) for r in inputs] == [
        ("A", str(pa), _sha(pa), "<i2", "F", "6x10"), ("B", str(pb), _sha(pb), "|i1", "C", "10x4")]
    rows = {(int(r["bits"]), r["strategy"]): r for r in _csv(out / "gemms.csv")}
    assert len(rows) == 3 * len(STRATEGIES)
    for bits in (2, 4, 8):
        want = compare_strategies(a, b, bits)
        admit = compare_strategies(a, b, bits, admit_min=True)
        for s in STRATEGIES:
            r = rows[(bits, s)]
            assert int(r["unpacked_macs"]) == want[s].work and int(r["macs"]) == 6 * 10 * 4
            assert float(r["unpack_ratio"]) == pytest.approx(want[s].work / 240, abs=5e-5)
            assert float(r["unpack_ratio_admit_min"]) == pytest.approx(admit[s].work / 240, abs=5e-5)
            assert int(r["low_bit_gemms"]) == want[s].n_gemms
            assert float(r["out_of_range_a"]) == pytest.approx(np.mean(np.abs(a) >= 1 << (bits - 1)), abs=1e-6)
    readme = (out / "README.md").read_text()
    assert _sha(pa) in readme and _sha(pb) in readme and "no quantization" in readme
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _run(capsys, "report", "unpack", "--npy", pa, pb, "--bits", "2,4,8", "--out", out, "--no-plots",
                "--force", "-q")[0] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # deterministic


def test_report_unpack_npy_several_gemms_and_the_default_folder(tmp_path, capsys, monkeypatch, operands):
    pa, pb, a, b = operands
    pc = _save(tmp_path / "C.npy", RNG.integers(0, 256, size=(3, 6)).astype(np.uint8))
    pd = _save(tmp_path / "D.npy", RNG.integers(-5, 5, size=(6, 2)).astype(np.int32))
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "report", "unpack", "--npy", "A.npy", "B.npy", "--npy", "C.npy", "D.npy",
                        "--bits", "4", "--no-plots", "-q")
    assert code == 0, err
    out = tmp_path / "reports" / "unpack-npy"
    agg = {r["strategy"]: float(r["unpack_ratio"]) for r in _csv(out / "aggregate.csv")}
    c, d = np.load(pc).astype(np.int64), np.load(pd).astype(np.int64)
    for s in STRATEGIES:
        work = compare_strategies(a, b, 4)[s].work + compare_strategies(c, d, 4)[s].work
        assert agg[s] == pytest.approx(work / (240 + 3 * 6 * 2), abs=5e-5)
    assert "--npy A.npy B.npy --npy C.npy D.npy" in (out / "README.md").read_text()


def test_report_unpack_npy_floats_need_quantize(tmp_path, capsys, operands):
    from intsim.quant.quantizers import quantize_rtn_group

    pa, _, a, _ = operands
    fb = RNG.normal(size=(10, 4))
    pf = _save(tmp_path / "F.npy", fb)
    code, _, err = _run(capsys, "report", "unpack", "--npy", pa, pf, "--out", tmp_path / "o1", "-q")
    assert code == 2 and "DTypeError" in err and "F.npy: holds float64 values" in err and "--quantize" in err
    assert not (tmp_path / "o1").exists()
    code, _, err = _run(capsys, "report", "unpack", "--npy", pa, pf, "--quantize", "--levels", "31",
                        "--bits", "4", "--out", tmp_path / "o2", "-q", "--no-plots")
    assert code == 0, err
    (qb,), scale = quantize_rtn_group([fb], 31, 0.95)
    rows = {r["strategy"]: int(r["unpacked_macs"]) for r in _csv(tmp_path / "o2" / "gemms.csv")}
    assert rows == {s: st.work for s, st in compare_strategies(a, qb, 4).items()}
    inputs = {r["operand"]: r for r in _csv(tmp_path / "o2" / "inputs.csv")}
    assert inputs["A"]["quantizer_scale"] == "" and float(inputs["B"]["quantizer_scale"]) == pytest.approx(scale)
    fb[2, 1] = np.inf
    _save(pf, fb)
    code, _, err = _run(capsys, "report", "unpack", "--npy", pa, pf, "--quantize", "--out", tmp_path / "o3", "-q")
    assert code == 2 and "OperandRangeError" in err and "NaN or Inf; first at index (2, 1)" in err


@pytest.mark.parametrize("make, error, needle", [
    (lambda d: _save(d / "v.npy", np.arange(10, dtype=np.int8)), "ShapeError", "a 2-D array is due, got 1-D"),
    (lambda d: _save(d / "t.npy", np.zeros((10, 4, 1), np.int8)), "ShapeError", "got 3-D"),
    (lambda d: _save(d / "k.npy", np.zeros((9, 4), np.int8)), "ShapeError", "the inner dimensions differ"),
    (lambda d: _truncated(d / "tr.npy", np.zeros((10, 4), np.int16)), "FileFormatError", "truncated"),
    (lambda d: d / "missing.npy", "FileFormatError", "missing.npy: no such file"),
    (lambda d: d, "FileFormatError", "is a directory"),
    (lambda d: _save(d / "big.npy", np.full((10, 4), 2**63 + 5, np.uint64)), "OperandRangeError", "exceed int64"),
    pytest.param(lambda d: _fifo(d / "p.npy"), "FileFormatError", "FIFO",
                 marks=pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs")),
])
def test_report_unpack_npy_bad_files_exit_2(tmp_path, capsys, operands, make, error, needle):
    pa = operands[0]
    bad = make(tmp_path)
    code, _, err = _run(capsys, "report", "unpack", "--npy", pa, bad, "--out", tmp_path / "o", "-q")
    assert code == 2 and error in err and needle in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--sentences", "2"], "--sentences: applies to the MiniLM's GEMMs"),
    (["--threshold", "5", "--max-len", "8"], "--max-len, --threshold: apply to the MiniLM's GEMMs"),
    (["--levels", "31"], "--levels: with --npy, the quantizer is used only with --quantize"),
])
def test_report_unpack_npy_refuses_options_it_does_not_use(tmp_path, capsys, operands, extra, needle):
    code, _, err = _run(capsys, "report", "unpack", "--npy", operands[0], operands[1], *extra, "--out",
                        tmp_path / "o", "-q")
    assert code == 2 and needle in err, err


def test_report_unpack_quantize_needs_npy(tmp_path, capsys):
    code, _, err = _run(capsys, "report", "unpack", "--quantize", "--out", tmp_path / "o")
    assert code == 2 and "--quantize applies to --npy files" in err


# --------------------------------------------------------------------------------------------------
# report cost --workload npy:A.npy,B.npy
# --------------------------------------------------------------------------------------------------


def test_npy_workload_holds_the_values_and_names_the_files(operands):
    from intsim.cost import parse_workload

    pa, pb, a, b = operands
    w = parse_workload(f"npy:{pa},{pb}")
    (site,) = w.sites
    (part,) = site.parts
    assert (w.name, w.macs, site.weight) == ("npy-6x10x4", 240, True)
    assert part.a.dtype == np.float64 and np.array_equal(part.a, a) and np.array_equal(part.b, b)
    assert _sha(pa) in w.description and _sha(pb) in w.description and str(pa) in w.description


def test_npy_workload_unpack_ratio_comes_from_the_data(tmp_path):
    from intsim.cost import cost_workload, get_method, load_profile, parse_workload
    from intsim.cost.methods import quantize_int8

    a = RNG.normal(size=(5, 12))
    a[1, 4] = 30.0
    b = RNG.integers(-127, 128, size=(12, 3)).astype(np.int8)
    b[0, 0] = -127
    pa, pb = _save(tmp_path / "a.npy", a.astype(np.float32)), _save(tmp_path / "b.npy", b)
    w = parse_workload(f"npy:{pa},{pb}")
    r = cost_workload(w, load_profile("horowitz45"), [get_method("int8"), get_method("unpack4-plan")])
    qa = quantize_int8(a.astype(np.float32).astype(np.float64), float(np.abs(a.astype(np.float32)).max()))
    qb = quantize_int8(b.astype(np.float64), float(np.abs(b.astype(np.int64)).max()))
    assert np.array_equal(qb, b)  # an int8 file whose largest magnitude is 127 reaches the integer methods unchanged
    want = compare_strategies(qa, qb, 4, strategies=("plan",))["plan"].work / (5 * 12 * 3)
    assert float(r.summary().loc["unpack4-plan", "unpack_ratio"]) == pytest.approx(want, rel=1e-12)


def test_report_cost_on_npy_files(tmp_path, capsys, operands):
    pa, pb, _, _ = operands
    out = tmp_path / "cost"
    code, _, err = _run(capsys, "report", "cost", "--workload", f"npy:{pa},{pb}", "--methods", "int8,unpack4-plan",
                        "--no-profiles", "--no-plots", "-q", "--out", out)
    assert code == 0, err
    readme = (out / "README.md").read_text()
    assert _sha(pa) in readme and "npy-6x10x4" in readme


@pytest.mark.parametrize("workload, error, needle", [
    ("npy:{d}/A.npy", "ConfigError", "npy: takes two .npy files"),
    ("npy:{d}/A.npy,{d}/B.npy,{d}/A.npy", "ConfigError", "npy: takes two .npy files"),
    ("npy:{d}/A.npy,{d}/nope.npy", "FileFormatError", "nope.npy: no such file"),
    ("npy:{d}/A.npy,{d}/nan.npy", "OperandRangeError", "NaN or Inf"),
    ("npy:{d}/A.npy,{d}/cube.npy", "ShapeError", "got 3-D"),
    ("npy:{d}/A.npy,{d}/A.npy", "ShapeError", "the inner dimensions differ"),
    ("npy:{d}/A.npy,{d}/wide.npy", "OperandRangeError", "exceed 2**53"),
])
def test_report_cost_bad_npy_workloads_exit_2(tmp_path, capsys, operands, workload, error, needle):
    nan = np.ones((10, 4))
    nan[0, 0] = np.nan
    _save(tmp_path / "nan.npy", nan)
    _save(tmp_path / "cube.npy", np.ones((10, 4, 2), np.int8))
    _save(tmp_path / "wide.npy", np.full((10, 4), 2**60, np.int64))
    code, _, err = _run(capsys, "report", "cost", "--workload", workload.format(d=tmp_path), "--no-profiles",
                        "--no-plots", "-q", "--out", tmp_path / "o")
    assert code == 2 and error in err and needle in err, err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------
# golden spec inputs from files
# --------------------------------------------------------------------------------------------------

MATMUL = """[suite]
name = "user-data"

[[case]]
name = "mm"
operator = "matmul"
shape = {{ M = 4, K = 16, N = 8 }}
config = {{ a = "int8", b = "int8", acc_bits = 32, overflow = "wrap" }}
inputs = {{ A = {a}, B = {b} }}
"""


def _spec(tmp_path: Path, a: str, b: str = '"uniform"', name: str = "spec.toml") -> Path:
    p = tmp_path / "specs" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(MATMUL.format(a=a, b=b))
    return p


@pytest.fixture()
def gdata(tmp_path):
    a = np.asfortranarray(RNG.integers(-128, 128, size=(4, 16)).astype(np.int16))  # int16 values that fit int8
    b = RNG.integers(-128, 128, size=(16, 8)).astype(np.int8)
    return _save(tmp_path / "data" / "A.npy", a), _save(tmp_path / "data" / "B.npy", b), a, b


def test_golden_inputs_from_files_generate_and_verify(tmp_path, capsys, gdata):
    pa, pb, a, b = gdata
    spec = _spec(tmp_path, '{ file = "../data/A.npy" }', f'{{ dist = "file", file = "{pb}" }}')  # relative, absolute
    out = tmp_path / "suite"
    code, _, err = _run(capsys, "golden", "generate", spec, "--out", out)
    assert code == 0, err
    man = json.loads((out / "manifest.json").read_text())
    inputs = man["cases"][0]["inputs"]
    assert inputs == {"A": {"dist": "file", "file": "../data/A.npy", "sha256": _sha(pa), "bytes": pa.stat().st_size},
                      "B": {"dist": "file", "file": str(pb), "sha256": _sha(pb), "bytes": pb.stat().st_size}}
    stored = np.load(out / "mm" / "A.npy")
    assert stored.dtype == np.int8 and np.array_equal(stored, a)
    assert np.array_equal(np.load(out / "mm" / "B.npy"), b)
    assert np.array_equal(np.load(out / "mm" / "C.npy"), a.astype(np.int64) @ b)  # 32 bits: no overflow
    assert verify_suite(out).ok
    pa.unlink()  # a suite is self-contained: it verifies without its source files
    pb.unlink()
    code, stdout, err = _run(capsys, "golden", "verify", out)
    assert code == 0 and "PASS mm" in stdout, err


def test_golden_file_inputs_from_another_folder_give_the_same_suite(tmp_path, monkeypatch, gdata):
    spec = _spec(tmp_path, '{ file = "../data/A.npy" }')
    generate_suite(load_spec(spec), tmp_path / "s1")
    monkeypatch.chdir(tmp_path / "specs")
    generate_suite(load_spec("spec.toml"), tmp_path / "s2")
    assert (tmp_path / "s1" / "manifest.json").read_bytes() == (tmp_path / "s2" / "manifest.json").read_bytes()


def test_golden_file_input_of_an_opresult_operator_and_unpack_matmul(tmp_path, gdata):
    x = RNG.integers(-5000, 5000, size=(2, 8)).astype(np.int32)
    _save(tmp_path / "x.npy", x)
    a16 = RNG.integers(-30000, 30000, size=(2, 4)).astype(np.int16)
    _save(tmp_path / "a16.npy", a16)
    text = f"""
[[case]]
name = "gelu"
operator = "ibert.gelu"
shape = {{ x = [2, 8] }}
config = {{ in_type = "int32", scale = 0.001, variant = "published" }}
inputs = {{ x = {{ file = "x.npy" }} }}

[[case]]
name = "unpack"
operator = "unpack_matmul"
shape = {{ M = 2, K = 4, N = 2 }}
config = {{ in_a = "int16", in_b = "int16", a = "int8", b = "int8", acc_bits = 32, overflow = "raise" }}
inputs = {{ A = {{ file = "a16.npy", sha256 = "{_sha(tmp_path / 'a16.npy').upper()}" }}, B = "heavy_tailed" }}
"""
    spec = parse_spec(text, "inline.toml", base=tmp_path)
    assert np.array_equal(spec.file_inputs["gelu"]["x"], x) and spec.cases[1].inputs["A"]["sha256"].islower()
    out = tmp_path / "suite"
    generate_suite(spec, out)
    assert np.array_equal(np.load(out / "gelu" / "x.npy"), x) and np.array_equal(np.load(out / "unpack" / "A.npy"),
                                                                                 a16)
    assert verify_suite(out).ok
    with pytest.raises(ConfigError, match="which was not read"):
        make_inputs(spec.cases[0])


@pytest.mark.parametrize("make, a, error, needle", [
    (lambda d: _save(d / "data" / "F.npy", np.ones((4, 16))), '{ file = "../data/F.npy" }', DTypeError,
     "holds float64 values; integers are due (input A is int8"),
    (lambda d: _save(d / "data" / "N.npy", np.full((4, 16), np.nan)), '{ file = "../data/N.npy" }', DTypeError,
     "holds float64 values"),
    (lambda d: _save(d / "data" / "W.npy", np.full((4, 16), 300, np.int16)), '{ file = "../data/W.npy" }',
     OperandRangeError, "64 values do not fit input A's type int8 [-128, 127]; first at index (0, 0): 300"),
    (lambda d: _save(d / "data" / "U.npy", np.full((4, 16), 200, np.uint8)), '{ file = "../data/U.npy" }',
     OperandRangeError, "do not fit input A's type int8"),
    (lambda d: _save(d / "data" / "S.npy", np.ones((4, 15), np.int8)), '{ file = "../data/S.npy" }', ShapeError,
     "holds shape (4, 15), (4, 16) is due (from the case's shape: M = 4, K = 16, N = 8)"),
    (lambda d: _save(d / "data" / "V.npy", np.ones(64, np.int8)), '{ file = "../data/V.npy" }', ShapeError,
     "holds shape (64,), (4, 16) is due"),
    (lambda d: _save(d / "data" / "T.npy", np.ones((4, 16, 1), np.int8)), '{ file = "../data/T.npy" }',
     ShapeError, "holds shape (4, 16, 1)"),
    (lambda d: _truncated(d / "data" / "tr.npy", np.ones((4, 16), np.int8)), '{ file = "../data/tr.npy" }',
     FileFormatError, "truncated"),
    (lambda d: (d / "data").mkdir(), '{ file = "../data" }', FileFormatError, "is a directory"),
    (lambda d: None, '{ file = "../data/missing.npy" }', FileFormatError, "missing.npy: no such file"),
    pytest.param(lambda d: (d / "data").mkdir() or _fifo(d / "data" / "p.npy"), '{ file = "../data/p.npy" }',
                 FileFormatError, "FIFO", marks=pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs")),
    (lambda d: _save(d / "data" / "A.npy", np.ones((4, 16), np.int8)),
     '{ file = "../data/A.npy", sha256 = "' + "0" * 64 + '" }', FileFormatError, "the spec pins sha256"),
    (lambda d: _save(d / "data" / "A.npy", np.ones((4, 16), np.int8)), '{ file = "../data/A.npy", bytes = 7 }',
     FileFormatError, "its size is 192, the spec pins bytes = 7"),
])
def test_golden_file_input_errors_name_the_case_input_and_file(tmp_path, capsys, make, a, error, needle):
    make(tmp_path)
    spec = _spec(tmp_path, a)
    with pytest.raises(error) as exc:
        load_spec(spec)
    msg = str(exc.value)
    assert needle in msg and "case 'mm': inputs.A: " in msg and str(spec) in msg, msg
    out = tmp_path / "out"
    code, _, err = _run(capsys, "golden", "generate", spec, "--out", out)
    assert code == 2 and error.__name__ in err and needle in err
    assert not out.exists()


@pytest.mark.parametrize("a, needle", [
    ('{ file = "A.npy", dist = "uniform" }', "from a file or from a distribution, not both"),
    ('{ dist = "file" }', "inputs.A.file: must be the path of a .npy file"),
    ('{ file = 3 }', "inputs.A.file: must be the path of a .npy file"),
    ('{ file = "" }', "inputs.A.file: must be the path"),
    ('{ file = "A.npy", sha256 = "abc" }', "inputs.A.sha256: must be 64 hex digits"),
    ('{ file = "A.npy", bytes = -1 }', "inputs.A.bytes: must be the file's size"),
    ('{ file = "A.npy", size = 1 }', "unknown parameter of distribution 'file'"),
])
def test_golden_file_input_keys_are_checked(tmp_path, a, needle):
    with pytest.raises(ConfigError, match="case 'mm'") as exc:
        load_spec(_spec(tmp_path, a))
    assert needle in str(exc.value)


def test_golden_file_input_through_a_symbolic_link(tmp_path, gdata):
    os.symlink(gdata[0], tmp_path / "link.npy")
    spec = load_spec(_spec(tmp_path, '{ file = "../link.npy" }'))
    assert spec.cases[0].inputs["A"]["sha256"] == _sha(gdata[0])


def test_specs_without_file_inputs_are_unchanged(tmp_path):
    """The checked-in suite's spec still validates to its manifest's records (its suite is byte-identical:
    ``intsim golden verify golden`` and tests/test_golden.py)."""
    root = Path(__file__).resolve().parents[1] / "golden"
    spec = load_spec(root / "spec.toml")
    man = json.loads((root / "manifest.json").read_text())
    assert [c.record()["inputs"] for c in spec.cases] == [c["inputs"] for c in man["cases"]]
    assert not spec.file_inputs
