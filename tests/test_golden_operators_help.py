"""``intsim golden operators [NAME]``: the list never cuts a summary, and a new user can write a golden
spec for any operator from ``intsim golden operators NAME`` alone: every printed example case
generates and verifies, and every key, input, output and tap it writes is documented."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from intsim.apps.cli import main
from intsim.core.helptext import summary
from intsim.golden.operators import ADAPTERS, available_operators, describe_operator
from intsim.models.store import model_available

OPERATORS = sorted(available_operators())
MARKER = "Example case (a complete spec file"
ENCODER = "minilm_int.encoder_layer"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_every_full_summary(capsys):
    code, out, _ = _run(capsys, "golden", "operators")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip() and not line[0].isspace()}
    for name in OPERATORS:
        assert name in lines, name
        assert lines[name].split(None, 1)[1] == ADAPTERS[name].summary
    # the registry's summaries are their docstrings' whole first paragraph, markup removed
    gelu = ADAPTERS["ibert.gelu"]
    assert gelu.summary == summary(gelu.fn.__doc__)
    assert gelu.summary.endswith("b = -1.769."), gelu.summary  # was cut after "element-wise, ... with the"
    for name, op in ADAPTERS.items():
        if "." in name and name != ENCODER:
            assert op.summary.endswith("."), (name, op.summary)
    assert "``" not in out and ":func:" not in out and ":class:" not in out


def test_operators_help_has_a_description(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["golden", "operators", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "List the operators a golden suite can hold" in out
    assert "--example" in out and "``" not in out


def test_unknown_operator_and_example_without_name_are_usage_errors(capsys):
    code, _, err = _run(capsys, "golden", "operators", "ibert.sofmax")
    assert code == 2 and "unknown operator 'ibert.sofmax'" in err and "ibert.softmax" in err
    code, _, err = _run(capsys, "golden", "operators", "--example")
    assert code == 2 and "needs an operator NAME" in err


def test_missing_keys_are_reported_together(tmp_path, capsys):
    """The four-attempt experience: one error now names every missing key and where to look."""
    spec = tmp_path / "spec.toml"
    spec.write_text('[[case]]\nname = "s"\noperator = "ibert.softmax"\nshape = { x = [4, 32] }\n')
    code, _, err = _run(capsys, "golden", "generate", str(spec), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "config.in_type: missing" in err and "config.scale: missing" in err
    assert "intsim golden operators ibert.softmax" in err
    spec.write_text('[[case]]\nname = "s"\noperator = "illm.swiglu"\nshape = { gate = [2, 4] }\n'
                    'config = { in_type = "int8", scale = 0.1 }\n')
    code, _, err = _run(capsys, "golden", "generate", str(spec), "--out", str(tmp_path / "o"))
    assert code == 2 and "shape.up: missing" in err and "config.up_scale: missing" in err


def _documented(name: str, keys) -> bool:
    return any(fnmatch.fnmatch(name, k.name.replace("<t>", "*").replace("<intermediate>", "*")) for k in keys)


@pytest.mark.parametrize("name", OPERATORS)
def test_printed_example_generates_and_verifies(name, tmp_path, capsys):
    if name == ENCODER and not model_available():
        pytest.skip("needs the MiniLM model (intsim model fetch)")
    code, text, _ = _run(capsys, "golden", "operators", name)
    assert code == 0
    assert "``" not in text and ":func:" not in text and ":class:" not in text
    assert MARKER in text
    example = text.split(MARKER, 1)[1].split("\n", 2)[2]  # after the marker line and a blank line
    code, alone, _ = _run(capsys, "golden", "operators", name, "--example")
    assert code == 0 and alone == example

    doc = describe_operator(name)
    for section in ("Shape", "Config", "Inputs", "Outputs", "Taps"):
        assert f"\n{section} " in text or text.startswith(section) or f"\n{section}:" in text, section
    for key in [*doc.shape, *doc.config, *doc.inputs]:
        assert re.search(rf"^  {re.escape(key.name)} ", text, re.M), key.name
    for key in doc.config:
        if key.required:
            assert re.search(rf"^  {re.escape(key.name)} +required", text, re.M), key.name

    spec = tmp_path / "spec.toml"
    spec.write_text(example)
    out = tmp_path / "suite"
    code, gen, err = _run(capsys, "golden", "generate", str(spec), "--out", str(out), "--quiet")
    assert code == 0, err
    assert gen.startswith("wrote 1 case(s)")
    code, ver, err = _run(capsys, "golden", "verify", str(out))
    assert code == 0, err
    assert "1 of 1 case(s) verified bit for bit" in ver

    # the case wrote what the help promised: every key it used, every tensor (outputs and taps)
    case = json.loads((out / "manifest.json").read_text())["cases"][0]
    assert set(case["shape"]) <= {k.name for k in doc.shape}
    assert set(case["config"]) <= {k.name for k in doc.config} | {"profile"}
    for t in case["tensors"]:
        keys = {"input": doc.inputs, "output": doc.outputs, "tap": doc.taps}[t["role"]]
        assert _documented(t["name"], keys), (t["role"], t["name"])
