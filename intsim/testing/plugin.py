"""pytest plugin: intsim's hypothesis profiles and the ``intsim_check`` fixture.

Enable it with ``-p intsim.testing.plugin`` on the command line, ``pytest_plugins =
["intsim.testing.plugin"]`` in a top-level ``conftest.py``, or (once the package declares the
``pytest11`` entry point) automatically when intsim is installed.

* Profiles: ``intsim-ci`` (derandomized, 200 examples, no deadline) is loaded unless the run
  already chose a profile (``--hypothesis-profile NAME``, ``settings.load_profile`` in a
  conftest; hypothesis's own ``ci`` profile, which it loads by itself when it sees a CI service's
  environment variable such as ``CI``, is not counted as a choice);
  ``INTSIM_HYPOTHESIS_PROFILE=intsim-dev`` (or ``--intsim-profile intsim-dev``) selects the
  longer randomized search. See :mod:`intsim.testing.profiles`.
* ``intsim_check``: :func:`intsim.testing.check_against` with ``out`` set to a fresh directory
  under the test's ``tmp_path`` (or under ``--intsim-counterexamples DIR``, named after the test),
  so a failing test leaves its counterexample suite where the report says.

A test file then needs a few lines::

    def test_my_requantizer(intsim_check):
        intsim_check("requantize", my_requantizer, config={"mode": "dyadic", "rounding": "half_even"})
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:  # registered as an entry point, the plugin loads in every pytest run: never fail without hypothesis
    from hypothesis import settings

    from .checks import check_against
    from .profiles import PROFILES, register_profiles
except ImportError:  # pragma: no cover - depends on the environment
    settings = None  # type: ignore[assignment]
    PROFILES = {"intsim-ci": {}, "intsim-dev": {}}

_ENV = "INTSIM_HYPOTHESIS_PROFILE"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("intsim", "intsim property-based testing")
    group.addoption("--intsim-profile", default=None, choices=sorted(PROFILES),
                    help=f"hypothesis profile to load when the run has not chosen one (default: ${_ENV} or intsim-ci)")
    group.addoption("--intsim-counterexamples", default=None, metavar="DIR",
                    help="write intsim_check counterexamples under DIR/<test name> instead of the test's tmp_path")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if settings is None:  # pragma: no cover - hypothesis missing: nothing to configure
        return
    register_profiles()
    explicit = config.getoption("--intsim-profile")
    current = settings.get_current_profile_name()
    chosen_elsewhere = bool(config.getoption("hypothesis_profile", default=None)) or (
        current != "default" and not _hypothesis_automatic_ci(current))
    if explicit is None and chosen_elsewhere:
        return
    name = explicit or os.environ.get(_ENV) or "intsim-ci"
    if name not in PROFILES:
        raise pytest.UsageError(f"${_ENV}={name!r} is not an intsim hypothesis profile; valid: {', '.join(PROFILES)}")
    settings.load_profile(name)


def _hypothesis_automatic_ci(name: str) -> bool:
    """True when ``name`` is hypothesis's built-in ``ci`` profile, which hypothesis loads at import
    whenever it detects a CI service (``CI``, ``GITHUB_ACTIONS``, ... in the environment): nobody
    chose it for this run. A ``ci`` profile registered by a conftest is a different object."""
    if name != "ci":
        return False
    try:
        from hypothesis import _settings as hypothesis_settings
    except ImportError:  # pragma: no cover - hypothesis moved its module
        return False
    builtin = getattr(hypothesis_settings, "CI", None)
    return builtin is not None and settings.get_profile("ci") is builtin


def pytest_report_header(config: pytest.Config) -> str:
    if settings is None:  # pragma: no cover
        return "intsim: hypothesis is not installed (pip install \"intsim[test]\")"
    return f"intsim: hypothesis profile {settings.get_current_profile_name()!r}"


@pytest.fixture
def intsim_check(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """:func:`intsim.testing.check_against` writing its counterexamples under this test's directory
    (``tmp_path/intsim-counterexample-<n>``, or ``--intsim-counterexamples DIR/<test>-<n>``)."""
    if settings is None:  # pragma: no cover
        pytest.skip("intsim_check needs hypothesis: pip install \"intsim[test]\"")
    base = request.config.getoption("--intsim-counterexamples")
    counter = {"n": 0}

    def check(op: str, candidate: Callable[..., Any], **kwargs: Any) -> Any:
        counter["n"] += 1
        if "out" not in kwargs:
            if base is not None:
                safe = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
                kwargs["out"] = Path(base) / f"{safe}-{counter['n']}"
                kwargs.setdefault("force", True)
            else:
                kwargs["out"] = tmp_path / f"intsim-counterexample-{counter['n']}"
        return check_against(op, candidate, **kwargs)

    return functools.update_wrapper(check, check_against)
