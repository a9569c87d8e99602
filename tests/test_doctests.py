"""The examples in the docstrings are true: every ``>>>`` example of every intsim module runs."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import intsim

# modules whose examples need optional extras (skipped, with the reason, when those are missing)
_NEEDS = {"intsim.golden.cocotb_adapter": "cocotb"}


def _modules() -> list[str]:
    names = ["intsim"]
    for info in pkgutil.walk_packages(intsim.__path__, "intsim."):
        if not info.name.endswith("__main__"):  # importing it runs the command line
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    if name in _NEEDS:
        pytest.importorskip(_NEEDS[name])
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(mod, name, extraglobs={"np": importlib.import_module("numpy")})
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples of {name} failed (see output)"
