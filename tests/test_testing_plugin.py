"""intsim.testing.plugin in a user's own pytest run: the intsim-ci profile unless the run chose one,
the intsim_check fixture, and a failing check leaving its counterexample where the report says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

USER_TESTS = '''
import numpy as np
from hypothesis import settings
from intsim import requantize


def good(x, **kw):
    return requantize(x, **kw).values


def floors(x, *, scale, out, zero_point, **_):
    return np.clip(((x.astype(object) * scale.m) >> scale.k) + zero_point, out.min, out.max).astype(np.int64)


def test_profile():
    print("PROFILE", settings.get_current_profile_name(), settings().max_examples)


def test_good(intsim_check):
    assert intsim_check("requantize", good, max_examples=10).examples == 10


def test_bad(intsim_check):
    intsim_check("requantize", floors, config={"mode": "dyadic", "rounding": "half_away"})
'''


def _pytest(tmp_path: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    env = {**os.environ, "INTSIM_QUIET": "1"}
    env.pop("HYPOTHESIS_PROFILE", None)
    env.pop("INTSIM_HYPOTHESIS_PROFILE", None)
    for var in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD", "BUILDKITE", "CIRCLECI", "CIRRUS_CI"):
        env.pop(var, None)
    if ci:  # as on a CI service: recent hypothesis versions then load their own "ci" profile at import
        env["CI"] = "true"
    # an installed intsim registers the plugin (entry point pytest11); from a source tree, -p loads it
    from importlib.metadata import entry_points

    auto = any(ep.value == "intsim.testing.plugin" for ep in entry_points(group="pytest11"))
    plugin = [] if auto else ["-p", "intsim.testing.plugin"]
    return subprocess.run([sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider",
                           "-s", "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_user.py"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_users_test_file_needs_a_few_lines(tmp_path):
    cx = tmp_path / "cx"
    r = _pytest(tmp_path, "--intsim-counterexamples", str(cx))
    out = r.stdout + r.stderr
    assert "PROFILE intsim-ci 200" in out, out
    assert "1 failed, 2 passed" in out, out
    assert "CounterexampleFound" in out and "intsim golden compare" in out, out
    written = cx / "test_bad-1"
    assert (written / "suite" / "manifest.json").is_file(), out
    assert (written / "candidate" / "counterexample" / "y.npy").is_file(), out
    # a second run replaces intsim's own counterexample directory
    r = _pytest(tmp_path, "--intsim-counterexamples", str(cx), "-k", "bad")
    assert "1 failed" in r.stdout and (written / "suite" / "manifest.json").is_file(), r.stdout + r.stderr


def test_the_profile_hypothesis_loads_on_a_ci_service_is_not_a_choice(tmp_path):
    r = _pytest(tmp_path, "-k", "profile", ci=True)
    assert "PROFILE intsim-ci 200" in r.stdout, r.stdout + r.stderr


def test_a_ci_profile_of_the_users_own_is_kept(tmp_path):
    (tmp_path / "conftest.py").write_text("from hypothesis import settings\n"
                                          'settings.register_profile("ci", max_examples=7)\n'
                                          'settings.load_profile("ci")\n')
    r = _pytest(tmp_path, "-k", "profile", ci=True)
    assert "PROFILE ci 7" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("args, want", [(("--hypothesis-profile", "default"), "PROFILE default 100"),
                                        (("--intsim-profile", "intsim-dev"), "PROFILE intsim-dev 2000")])
def test_a_chosen_profile_is_kept(tmp_path, args, want):
    r = _pytest(tmp_path, "-k", "profile", *args)
    assert want in r.stdout, r.stdout + r.stderr
