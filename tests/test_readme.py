"""The README stays true: its Python examples run and give what their comments say, and its
set-up commands are the ones CI runs, with extras that pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _block(marker: str) -> str:
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"README: expected one Python example using {marker!r}, found {len(found)}"
    return found[0]


def _run(code: str, **names: object) -> dict:
    ns: dict = dict(names)
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own example
    return ns


def test_readme_has_the_examples_this_file_runs():
    assert len(BLOCKS) == 5


def test_datapath_example():
    ns = _run(_block("matmul(A, B, dp)"))  # as written: the block defines its operands
    A, B, r = ns["A"], ns["B"], ns["r"]
    assert r.values.dtype == np.int64 and r.values.tolist() == (A.astype(np.int64) @ B).tolist()
    assert r.overflow.dtype == bool and not r.overflow.any() and (r.first_overflow_k == -1).all()
    assert set(r.ops.to_frame()["kind"]) >= {"mac"}


def test_unpack_example_and_its_reassembly_rule():
    ns = _run(_block("unpack_operands"))  # as written
    A, B, r, p = ns["A"], ns["B"], ns["r"], ns["p"]
    assert r.values.tolist() == (A @ B).tolist() and r.unpack_ratio > 1
    C = [[0] * B.shape[1] for _ in range(A.shape[0])]  # the rule written in the example's comment
    for i in range(p.a.shape[0]):
        for j in range(p.b.shape[1]):
            for k in range(p.a.shape[1]):
                C[int(p.a_src[i])][int(p.b_src[j])] += (int(p.a[i, k]) * int(p.b[k, j])) << int(
                    p.a_shift[i] + p.b_shift[j] + p.inner_shift[k])
    assert C == (A @ B).tolist()


def test_minilm_example():
    from intsim.models.store import model_available

    if not model_available():
        pytest.skip("the MiniLM model is missing: intsim model fetch")
    ns = _run(_block("load_int_minilm"))
    e = ns["fwd"].embeddings()
    assert e.shape == (1, 384) and e.dtype == np.float64 and np.isfinite(e).all()


def test_setup_commands_match_ci_and_pyproject():
    shell = re.findall(r"```bash\n(.*?)```", README, re.S)
    install, tests = shell[0].strip(), shell[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    extras = re.search(r'pip install -e "\.\[([a-z,]+)\]"', install)
    assert extras and f'pip install -q -e ".[{extras.group(1)}]"' in ci
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert set(extras.group(1).split(",")) <= set(declared)
    assert "intsim model fetch" in install and "\nintsim model fetch\n" in ci and "--no-deps" not in ci
    assert "\npython -m pip check\n" in ci  # the model is fetched, not installed: nothing broken
    assert install.endswith("intsim demo")
    assert tests == "python -m pytest -q" and f"\n{tests}\n" in ci
    # after the test command, CI runs only the slow half of the reports' freshness test
    after = ci.split(f"\n{tests}\n", 1)[1]
    assert [ln for ln in after.splitlines() if ln.strip() and not ln.startswith("echo")] == [
        "INTSIM_FRESH_REPORTS=all python -m pytest -q tests/test_reports_fresh.py"]


def test_testing_examples(tmp_path):
    from intsim.quant.requant import requantize

    ns = _run(_block("from intsim.testing import strategies, check_against, assert_bit_exact"))
    assert callable(ns["check_against"]) and callable(ns["assert_bit_exact"])
    assert hasattr(ns["strategies"], "int_arrays")

    def my_requantizer(x, scale, **config):  # a correct design: intsim's own requantize
        return requantize(x, scale, **config).values

    calls = []

    def intsim_check(op, candidate, **kwargs):  # the fixture, writing under this test's directory
        calls.append(op)
        return ns["check_against"](op, candidate, out=tmp_path / "cx", max_examples=20, **kwargs)

    code = _block("def test_my_requantizer(intsim_check)")
    ns2 = _run(code, my_requantizer=my_requantizer)
    ns2["test_my_requantizer"](intsim_check)
    assert calls == ["requantize"]
