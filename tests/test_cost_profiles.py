"""Hardware profiles as a user writes them: the documented schema, ``--print-profile``, invalid
files, and methods a profile cannot price (an error naming every missing entry, or a partial
report with ``--allow-partial``).
"""

from __future__ import annotations

import csv
import math
import re
import textwrap
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from intsim.apps.cli import main
from intsim.core.errors import ConfigError
from intsim.cost import cost_workload, gemm_workload, get_method, load_profile, parse_profile
from intsim.cost import profiles as profiles_module
from intsim.cost.profiles import SCHEMA, MissingEntryError, builtin_profile_text, builtin_profiles
from intsim.cost.workloads import VectorSite, Workload

H45_TEXT = builtin_profile_text("horowitz45")
H45_MUL_ENERGY = "energy_pj = { points = { 8 = 0.2, 32 = 3.1 }, fit = [0.0, 0.001041666667, 0.002994791667] }"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _edited(old: str, new: str) -> str:
    assert H45_TEXT.count(old) == 1, old
    return H45_TEXT.replace(old, new)


def _report(tmp_path: Path, profile: Path | str, *extra: str, out: str = "out", workload: str = "gemm:4x8x4"):
    return main(["report", "cost", "--workload", workload, "--profile", str(profile), "--out", str(tmp_path / out),
                 "--no-plots", *extra])


def _summary_methods(out: Path) -> list[str]:
    with (out / "summary.csv").open(encoding="utf-8") as f:
        return [row["method"] for row in csv.DictReader(f)]


# ---------------------------------------------------------------------------------------------
# 1. a method the profile cannot price is an error naming every missing entry
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_mul_fit(tmp_path) -> Path:
    """horowitz45 without the multiplier fit: no energy at 4x4, 2x2 (IM-Unpack) or 16x16 bits."""
    text = _edited(H45_MUL_ENERGY, "energy_pj = { points = { 8 = 0.2, 32 = 3.1 } }")
    return _write(tmp_path / "no_mul_fit.toml", text)


def test_unpriceable_methods_are_an_error_naming_every_missing_entry(tmp_path, capsys, no_mul_fit):
    rc = _report(tmp_path, no_mul_fit)
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert str(no_mul_fit) in err and "op.mul.energy_pj" in err
    for width, methods in (("4x4", "unpack4-row, unpack4-col, unpack4-both, unpack4-plan"),
                           ("2x2", "unpack2-row, unpack2-col, unpack2-both")):
        assert f"at {width} bits by {methods}" in err
    assert "--methods fp32,fp16,int8,llm.int8" in err and "--allow-partial" in err
    assert "Traceback" not in cap.err and not (tmp_path / "out").exists()


def test_restricting_the_methods_gives_a_complete_report(tmp_path, capsys, no_mul_fit):
    assert _report(tmp_path, no_mul_fit, "--methods", "fp32,fp16,int8,llm.int8") == 0
    assert "warning" not in capsys.readouterr().out
    assert _summary_methods(tmp_path / "out") == ["fp32", "fp16", "int8", "llm.int8"]


def test_allow_partial_writes_the_rest_and_warns_on_stdout(tmp_path, capsys, no_mul_fit):
    assert _report(tmp_path, no_mul_fit, "--allow-partial") == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "partial report" in warning and str(no_mul_fit) in warning and "op.mul.energy_pj" in warning
    assert "at 4x4 bits by unpack4-row" in warning and "at 2x2 bits by unpack2-row" in warning
    assert _summary_methods(tmp_path / "out") == ["fp32", "fp16", "int8", "llm.int8"]
    md = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    not_included = md.split("## Not included", 1)[1]
    assert "`unpack4-row`" in not_included and "op.mul.energy_pj has no value at 4x4 bits" in not_included
    assert "--allow-partial" in md  # the command line that made it


def test_a_builtin_profile_without_float_units_needs_methods_or_allow_partial(tmp_path, capsys):
    assert _report(tmp_path, "aladdin40") == 2
    err = capsys.readouterr().err
    assert "cannot price 3 of the 11 methods (fp32, fp16, llm.int8)" in err
    assert "op.fmul is missing, needed at 32 bits by fp32, at 16 bits by fp16, llm.int8" in err
    assert "op.fadd is missing" in err
    assert _report(tmp_path, "aladdin40", "--methods", "int8,unpack4-row", out="ok") == 0
    capsys.readouterr()
    assert _report(tmp_path, "aladdin40", "--methods", "fp32", "--allow-partial", out="none") == 2
    err = capsys.readouterr().err
    assert "op.fmul is missing, needed at 32 bits by fp32" in err and "Nothing is left to report" in err
    assert not (tmp_path / "none").exists()


def test_a_missing_entry_found_only_by_costing_is_an_error_too(tmp_path, capsys):
    # the shifter of IM-Unpack's reassembly works at 64 bits: only points at 32, no rule
    prof = _write(tmp_path / "shift.toml", _edited('[op.shift]\nsame_as = "add"\n', "[op.shift]\n"
                                                   "energy_pj = { points = { 32 = 0.1 } }\n"
                                                   "area_um2 = { points = { 32 = 137 } }\n"))
    assert _report(tmp_path, prof, "--methods", "int8,unpack4-row") == 2
    err = capsys.readouterr().err
    assert "cannot price 1 of the 2 methods (unpack4-row)" in err
    assert "op.shift.energy_pj has no value (not in points, no fit, no scaling rule) at 64 bits by unpack4-row" in err
    assert "--methods int8" in err and not (tmp_path / "out").exists()


def test_the_non_linear_comparison_must_be_priced_too(tmp_path, capsys, monkeypatch):
    import intsim.cost as cost
    import intsim.cost.compare as compare

    # no fp16 adder: the fp16 rows of the non-linear comparison cannot be priced
    prof = _write(tmp_path / "nofadd16.toml", _edited("energy_pj = { points = { 16 = 0.4, 32 = 0.9 } }",
                                                      "energy_pj = { points = { 32 = 0.9 } }"))
    row = [[0.5, -1.0, 2.0, 0.25]]
    import numpy as np

    site = VectorSite("L0.softmax", 0, "softmax", ((1, 4),), (np.array(row),))
    small = Workload("tiny", "a 2x3x4 GEMM and one softmax row", gemm_workload(2, 3, 4).sites + (site,))
    monkeypatch.setattr(cost, "parse_workload", lambda *a, **k: small)
    monkeypatch.setattr(compare, "nonlinear_families", lambda: {"fp32": None, "fp16": None})
    args = ["--methods", "fp32,int8", "--nonlinear", "fp32"]
    assert _report(tmp_path, prof, *args) == 2
    err = capsys.readouterr().err
    assert "2 rows of the non-linear comparison (fp16, int8+fp16)" in err
    assert "op.fadd.energy_pj has no value (not in points, no fit, no scaling rule) at 16 bits" in err
    assert _report(tmp_path, prof, *args, "--allow-partial") == 0
    assert "warning: partial report" in capsys.readouterr().out
    with (tmp_path / "out" / "nonlinear.csv").open(encoding="utf-8") as f:
        assert {r["nonlinear"] for r in csv.DictReader(f)} == {"fp32", "int8+fp32"}


def test_cost_workload_lists_every_missing_entry_of_a_method():
    r = cost_workload(gemm_workload(2, 3, 4, data=False), load_profile("aladdin40"),
                      [get_method("fp32"), get_method("int8", "fp32")], skip_unpriceable=True)
    missing = sorted(e.what for m, e in r.problems if m == "fp32" and isinstance(e, MissingEntryError))
    assert missing == ["op.fadd at 32 bits", "op.fmul at 32 bits"]
    assert all(e.path.endswith("aladdin40.toml") and e.absent for _, e in r.problems)


# ---------------------------------------------------------------------------------------------
# 2. the schema is documented (with a complete example that works) and built-ins can be printed
# ---------------------------------------------------------------------------------------------


def _documented_example() -> str:
    doc = profiles_module.__doc__
    m = re.search(r"A complete profile \(.*?\)::\n\n(.*?)\n\n(?=\S)", doc, re.S)
    assert m, "the module docs lost their example profile"
    return textwrap.dedent(m.group(1)) + "\n"


def test_the_documented_example_is_a_valid_profile_that_prices_every_method(tmp_path, capsys):
    path = _write(tmp_path / "example.toml", _documented_example())
    p = load_profile(path)
    assert p.name == "example45" and p.array.acc_bits == 32
    assert _report(tmp_path, path, "-q") == 0
    out = capsys.readouterr().out
    assert "warning" not in out
    methods = _summary_methods(tmp_path / "out")
    assert methods[:3] == ["fp32", "fp16", "int8"] and "llm.int8" in methods and len(methods) == 11
    # its figures are those of horowitz45 (the same table and fits)
    h = load_profile("horowitz45")
    for kind, w in (("mul", (8, 8)), ("mul", (4, 4)), ("add", (64,)), ("fmul", (16,)), ("div", (32,))):
        assert p.energy(kind, w) == pytest.approx(h.energy(kind, w), rel=1e-12), (kind, w)


def test_every_section_and_key_of_the_schema_is_documented():
    doc = profiles_module.__doc__
    for section, keys in SCHEMA.items():
        for key in keys:
            full = f"{section}.{key}" if section else key
            documented = re.search(rf"``{re.escape(key)}( = [^`]*)?``", doc) or f"[{full}]" in doc \
                or f"[{full}." in doc
            assert documented, (section, key)


@pytest.mark.parametrize("name", sorted(builtin_profiles()))
def test_print_profile_prints_a_builtin_that_round_trips(name, tmp_path, capsys):
    assert main(["report", "cost", "--print-profile", name]) == 0
    text = capsys.readouterr().out
    assert text == builtin_profiles()[name].read_text(encoding="utf-8")
    mine = load_profile(_write(tmp_path / "mine.toml", text))
    assert replace(mine, path="") == replace(load_profile(name), path="")
    assert not (tmp_path / "reports").exists()


def test_print_profile_of_an_unknown_name_lists_the_builtins(capsys):
    assert main(["report", "cost", "--print-profile", "horowitz46"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "aladdin40, horowitz45, qkeras_fit" in cap.err and "horowitz46" in cap.err


# ---------------------------------------------------------------------------------------------
# 3. invalid profile files: one error naming the file and the key, never a traceback
# ---------------------------------------------------------------------------------------------


def _invalid_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    out: dict[str, tuple[Path, str]] = {}

    def add(name: str, text: str | bytes, key: str) -> None:
        p = tmp_path / f"{name}.toml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        out[name] = (p, key)

    out["missing_file"] = (tmp_path / "nowhere.toml", "no such file")
    (tmp_path / "a_dir.toml").mkdir()
    out["directory"] = (tmp_path / "a_dir.toml", "is a directory")
    add("not_toml", "[profile\nname = 1\n", "not valid TOML")
    add("not_utf8", b"[profile]\nname = \"\xff\xfe\"\n", "not a UTF-8 text file")
    add("deep_array", "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply")
    add("deep_table", "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", "nested too deeply")
    add("deep_under_a_key", _edited('name = "horowitz45"\n', "") + "[profile.name." + ".".join(
        f"k{i}" for i in range(3000)) + "]\nx = 1\n", "'profile.name' must be a string")
    add("string_for_number", _edited("rows = 16", 'rows = "16"'), "'array.rows' must be an integer")
    add("float_for_integer", _edited("acc_bits = 32", "acc_bits = 32.5"), "'array.acc_bits' must be an integer")
    add("bool_for_number", _edited("clock_mhz = 1000\nacc_bits", "clock_mhz = true\nacc_bits"),
        "'array.clock_mhz' must be a finite number")
    add("list_for_table", "array = [1, 2]\n" + _edited("[array]\nrows = 16\ncols = 16\nclock_mhz = 1000\n"
                                                         "acc_bits = 32\n", ""), "'array' must be a table")
    add("number_for_quantity", _edited(H45_MUL_ENERGY, "energy_pj = 0.2"), "'op.mul.energy_pj' must be a table")
    add("string_for_point", _edited("points = { 8 = 0.2, 32 = 3.1 }, fit", 'points = { 8 = "0.2", 32 = 3.1 }, fit'),
        "'op.mul.energy_pj.points.8' must be a finite number")
    add("bad_width", _edited("points = { 8 = 0.2, 32 = 3.1 }, fit", "points = { 8 = 0.2, 3x2x1 = 3.1 }, fit"),
        "'op.mul.energy_pj.points.3x2x1' is not a valid bit width")
    add("width_too_large", _edited("points = { 8 = 0.03, 16 = 0.05, 32 = 0.1 }, fit",
                                   "points = { 8 = 0.03, 16 = 0.05, 300 = 0.1 }, fit"),
        "'op.add.energy_pj.points.300' is not a valid bit width")
    add("fit_of_strings", _edited("fit = [0.0, 0.003125]", 'fit = ["0", "x"]'), "'op.add.energy_pj.fit' must be a list")
    add("bad_scaling", _edited('area_um2 = { points = { 8 = 36, 16 = 67, 32 = 137 }, scaling = "width" }',
                               'area_um2 = { points = { 8 = 36, 16 = 67, 32 = 137 }, scaling = "log" }'),
        "'op.add.area_um2.scaling' must be one of none, width, product")
    add("sources_not_strings", _edited("sources = [", "sources = [1, "), "'profile.sources' must be a list of strings")
    add("notes_not_strings", _edited("[array]", "notes = 3\n\n[array]"), "'profile.notes' must be a string")
    add("area_units_not_list", _edited('area_units = ["add:32", "mul:32x32", "shift:32", "compare:32"]',
                                       'area_units = "add:32"'), "'vector_unit.area_units' must be a list")
    add("cycles_not_integer", _edited('cycles_per_op = { default = 1, div = "bits" }',
                                      'cycles_per_op = { default = 1.5 }'),
        "'vector_unit.cycles_per_op.default' must be an integer from 1")
    add("repeat_zero", _edited('repeat = "bits"', "repeat = 0"), "'op.div.repeat' must be")
    add("same_as_itself", _edited('[op.shift]\nsame_as = "add"', '[op.shift]\nsame_as = "shift"'),
        "'op.shift.same_as' must name another operation")
    add("negative_energy", _edited("8 = 0.03, 16 = 0.05", "8 = -0.03, 16 = 0.05"),
        "negative energy in 'op.add.energy_pj.points.8'")
    add("negative_area", _edited("points = { 8 = 36, 16 = 67", "points = { 8 = -36, 16 = 67"),
        "negative area in 'op.add.area_um2.points.8'")
    add("negative_memory", _edited("read_pj_per_byte = 1.25", "read_pj_per_byte = -1.25"),
        "negative energy in 'memory.sram.read_pj_per_byte'")
    add("negative_fit_off_the_diagonal", _edited(H45_MUL_ENERGY, "energy_pj = { fit = [0.3, -0.1, 0.01] }"),
        "negative energy from 'op.mul.energy_pj.fit' at 1x128 bits")
    add("nan", _edited("8 = 0.03, 16 = 0.05", "8 = nan, 16 = 0.05"),
        "'op.add.energy_pj.points.8' must be a finite number, got nan")
    add("inf", _edited("read_pj_per_byte = 160.0", "read_pj_per_byte = inf"),
        "'memory.dram.read_pj_per_byte' must be a finite number, got inf")
    add("nan_in_fit", _edited("fit = [0.0, 0.003125]", "fit = [0.0, nan]"), "'op.add.energy_pj.fit' must be a list")
    add("overflowing_fit", _edited("fit = [0.0, 0.003125]", "fit = [" + "0.0, " * 200 + "1.0]"),
        "'op.add.energy_pj.fit' is not finite at 35 bits")
    add("huge_integer", _edited("clock_mhz = 1000\nacc_bits", "clock_mhz = " + "9" * 400 + "\nacc_bits"),
        "'array.clock_mhz' must be a finite number")
    add("unknown_section", H45_TEXT + "\n[cache]\nsize = 1\n", "unknown entry 'cache'")
    add("unknown_key", _edited("rows = 16", "rows = 16\nrow = 16"), "unknown entry 'array.row'")
    add("unknown_quantity_key", _edited("fit = [0.0, 0.003125] }", "fit = [0.0, 0.003125], unit = \"pJ\" }"),
        "unknown entry 'op.add.energy_pj.unit'")
    add("unknown_memory_level", H45_TEXT + "\n[memory.l2]\nread_pj_per_byte = 1\n", "unknown entry 'memory.l2'")
    add("unknown_op", H45_TEXT + "\n[op.fdiv]\nenergy_pj = { points = { 32 = 1.0 } }\n",
        "unknown operation kind 'op.fdiv'")
    add("missing_section", re.sub(r"\[memory\.dram\]\n(.+\n)+", "", H45_TEXT), "missing entry 'memory.dram'")
    add("missing_key", _edited("lanes = 16\n", ""), "missing entry 'vector_unit.lanes'")
    add("not_a_table_at_all", "", "missing entry 'profile'")
    return out


def test_invalid_profile_files_raise_config_errors_naming_file_and_key(tmp_path):
    for name, (path, key) in _invalid_files(tmp_path).items():
        with pytest.raises(ConfigError) as exc:
            load_profile(path)
        msg = str(exc.value)
        assert key in msg and str(path) in msg and len(msg) < 600, (name, msg)


def test_invalid_profile_files_make_the_cli_print_one_line_and_exit_2(tmp_path, capsys):
    for name, (path, key) in _invalid_files(tmp_path).items():
        rc = _report(tmp_path, path, out=f"out_{name}")
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("intsim: error: ConfigError: ") and len(err.strip().splitlines()) == 1, \
            (name, err)
        assert key in err and "Traceback" not in err, (name, err)
        assert not (tmp_path / f"out_{name}").exists()


_BAD_VALUES = ("x", True, -1, 0, 1.5, math.nan, math.inf, 10**400, [], [1, "a"], {}, {"a": {"b": 1}})


def _leaves(d: dict, prefix: tuple = ()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,)


def test_any_bad_value_anywhere_is_a_config_error_naming_the_file():
    base = tomllib.loads(H45_TEXT)
    checked = 0
    for leaf in _leaves(base):
        for bad in _BAD_VALUES:
            doc = tomllib.loads(H45_TEXT)
            d = doc
            for k in leaf[:-1]:
                d = d[k]
            d[leaf[-1]] = bad
            try:
                parse_profile(doc, "fuzzed.toml")
            except ConfigError as exc:
                assert str(exc).startswith("profile fuzzed.toml: ") or "fuzzed.toml" in str(exc), (leaf, bad, exc)
                assert len(str(exc)) < 600, (leaf, bad)
            checked += 1
    assert checked > 500
