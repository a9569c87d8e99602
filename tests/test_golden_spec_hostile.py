"""Hostile golden specs: every problem is a typed error raised before anything is computed or written.

Bounded work (every size and the work of a case and of the suite against documented caps),
names that would collide with the suite's own files or on case-insensitive file systems,
wrong types and nesting anywhere a value is due, TOML nested thousands deep, and a
hypothesis search over mutated specs: parse_spec returns a valid spec or raises an
IntsimError, and generate_suite on an invalid spec leaves nothing behind.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim.core.errors import ConfigError, FileFormatError, IntsimError
from intsim.core.inttype import IntType
from intsim.golden import cli, generate_suite, parse_spec
from intsim.golden import spec as specmod
from intsim.golden.operators import ADAPTERS, GoldenOperator, OpResultOperator, OpRun, TensorDecl
from intsim.golden.spec import load_spec
from intsim.golden.suite import MANIFEST, SPEC_COPY

# --------------------------------------------------------------------------------------------------
# a tiny TOML writer (tomllib only reads)
# --------------------------------------------------------------------------------------------------


def toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_str(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dumps(doc: dict[str, Any]) -> str:
    """A document as top-level ``key = value`` lines (tables inline, cases an array of inline tables)."""
    return "".join(f"{toml_str(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


def case_text(name: str = "c", operator: str = "matmul", **tables: str) -> str:
    lines = ["[[case]]", f"name = {toml_str(name)}", f"operator = {toml_str(operator)}"]
    lines += [f"{k} = {v}" for k, v in tables.items()]
    return "\n".join(lines) + "\n"


def mm(shape: str = "{ M = 2, K = 3, N = 2 }", config: str = '{ overflow = "wrap" }', name: str = "c",
       **more: str) -> str:
    return case_text(name, "matmul", shape=shape, config=config, **more)


def assert_nothing_written(tmp_path: Path, text: str | bytes, match: str) -> None:
    """generate (API and CLI) on this spec fails with ``match`` and leaves no file behind."""
    spec = tmp_path / "hostile.toml"
    spec.write_bytes(text.encode() if isinstance(text, str) else text)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(IntsimError, match=match):
        generate_suite(spec, tmp_path / "out")
    assert cli.main(["generate", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == before


# --------------------------------------------------------------------------------------------------
# finding 1: bounded work; every size and the work are checked before anything is computed
# --------------------------------------------------------------------------------------------------


def test_huge_trace_is_refused_before_anything_is_computed(tmp_path, monkeypatch, capsys):
    """M = N = 256, K = 65536, trace_samples = 4096 used to validate, then write ~3.4 GB (acc_trace
    alone 2**28 words, outside the element cap) after minutes of tracing."""
    text = mm("{ M = 256, K = 65536, N = 256 }", '{ acc_bits = 16, overflow = "wrap", trace_samples = 4096 }',
              name="big", inputs='{ A = "overflow", B = "overflow" }')
    calls = []
    monkeypatch.setattr("intsim.golden.suite.generate", lambda *a, **k: calls.append(a) or 1 / 0)
    monkeypatch.setattr(type(ADAPTERS["matmul"]), "run", lambda *a: calls.append(a) or 1 / 0)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"case 'big': tap 'acc_trace': elements: 268435456 is more than "
                                          r"the cap MAX_TENSOR_ELEMENTS = 16777216"):
        parse_spec(text, "big.toml")
    assert time.perf_counter() - t0 < 5
    assert_nothing_written(tmp_path, text, "acc_trace")
    assert "ConfigError" in capsys.readouterr().err
    assert calls == []  # no input drawn, nothing run


@pytest.mark.parametrize("text, match", [
    # every tensor within the tensor cap, together over the case cap
    (mm("{ M = 4096, K = 4096, N = 2 }", '{ overflow = "wrap", trace_samples = 0 }'),
     r"case 'c': elements of all its tensors \(inputs, outputs and taps\): 16809984 is more than the cap "
     r"MAX_CASE_ELEMENTS = 16777216"),
    (mm("{ M = 4096, K = 4097, N = 1 }"), r"case 'c': input 'A': elements: 16781312 .* MAX_TENSOR_ELEMENTS"),
    (mm("{ M = 1, K = 1, N = 1048577 }"), r"case 'c': shape.N: must be an integer from 1 to 1048576"),
    (mm("{ M = 1024, K = 1024, N = 1024 }"),
     r"case 'c': work: multiply-accumulates: 1073741824 is more than the cap MAX_CASE_MACS = 268435456"),
    (mm("{ M = 512, K = 512, N = 1024 }", '{ overflow = "raise" }'),  # raise runs the product twice
     r"case 'c': work: multiply-accumulates: 536870912 .* MAX_CASE_MACS"),
    (mm("{ M = 64, K = 512, N = 64 }", '{ overflow = "wrap", trace_samples = 4096 }'),
     r"case 'c': work: steps emulated one at a time: 2097152 is more than the cap MAX_CASE_STEPS = 1048576"),
    (mm(config='{ trace_samples = 4097 }'), r"case 'c': config.trace_samples: must be an integer from 0 to 4096"),
    (case_text("rq", "requantize", shape="{ x = [4096, 4097] }", config="{ scale = 0.5 }"),
     r"case 'rq': input 'x': elements: 16781312 .* MAX_TENSOR_ELEMENTS"),
    (case_text("rq", "requantize", shape="{ x = [4096, 4096] }", config="{ scale = 0.5 }"),
     r"case 'rq': elements of all its tensors .* MAX_CASE_ELEMENTS"),
    (case_text("g", "ibert.gelu", shape="{ x = [1024, 1024] }", config='{ in_type = "int32", scale = 0.01 }'),
     r"case 'g': output 'outputs and taps \(estimate before the dry run: OPRESULT_EXPANSION = 32 per input "
     r"element\)': elements: 33554432 .* MAX_TENSOR_ELEMENTS"),
    (case_text("up", "unpack_matmul", shape="{ M = 4096, K = 4096, N = 4096 }"),
     r"case 'up': .* is more than the cap MAX_"),
    (case_text("up", "unpack_matmul", shape="{ M = 512, K = 512, N = 512 }",
               config='{ in_a = "int32", in_b = "int32", a = "int4", b = "int4" }'),
     r"case 'up': tap 'a_unpacked': elements: \d+ is more than the cap MAX_TENSOR_ELEMENTS"),
    (case_text("c", "matmul", shape="{ M = 2, K = 2, N = 2 }",
               inputs='{ A = { dist = "heavy_tailed", outlier_channels = 1048577 } }'),
     r"case 'c': inputs.A.outlier_channels: must be an integer from 0 to 1048576"),
])
def test_sizes_and_work_over_a_cap(tmp_path, text, match):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=match):
        parse_spec(text, "caps.toml")
    assert time.perf_counter() - t0 < 5
    assert_nothing_written(tmp_path, text, match)


@pytest.mark.parametrize("case, count, match", [
    # each case 2**23 + 10240 elements: the fourth crosses 2**25
    (mm("{ M = 2048, K = 4096, N = 1 }", '{ overflow = "wrap", trace_samples = 0 }', name="c{i}"), 4,
     r"case 'c3': elements of the suite's tensors up to this case: \d+ is more than the cap "
     r"MAX_SUITE_ELEMENTS = 33554432"),
    (mm("{ M = 512, K = 512, N = 512 }", '{ overflow = "wrap", trace_samples = 0 }', name="c{i}"), 9,
     r"case 'c8': multiply-accumulates of the suite up to this case: 1207959552 is more than the cap "
     r"MAX_SUITE_MACS = 1073741824"),
    (mm("{ M = 64, K = 256, N = 64 }", '{ overflow = "wrap", trace_samples = 4096 }', name="c{i}"), 5,
     r"case 'c4': one-at-a-time steps of the suite up to this case: 5242880 is more than the cap "
     r"MAX_SUITE_STEPS = 4194304"),
])
def test_suite_totals_over_a_cap(tmp_path, case, count, match):
    text = "".join(case.replace("c{i}", f"c{i}") for i in range(count))
    with pytest.raises(ConfigError, match=match):
        parse_spec(text, "suite.toml")
    parse_spec("".join(case.replace("c{i}", f"c{i}") for i in range(count - 1)))  # one fewer is fine
    assert_nothing_written(tmp_path, text, "MAX_SUITE_")


def test_number_of_cases_and_spec_size_are_capped(tmp_path):
    text = "".join(mm(name=f"c{i}") for i in range(specmod.MAX_CASES + 1))
    with pytest.raises(ConfigError, match=r"number of cases: 4097 is more than the cap MAX_CASES = 4096"):
        parse_spec(text, "many.toml")
    big = mm() + "# " + "x" * specmod.MAX_SPEC_BYTES + "\n"
    with pytest.raises(FileFormatError, match=r"big.toml: \d+ bytes is more than the cap MAX_SPEC_BYTES"):
        parse_spec(big, "big.toml")
    assert_nothing_written(tmp_path, big, "MAX_SPEC_BYTES")


def _toy_wide(x, scale, *, in_type="int8", taps=False):
    """A toy operator whose tap is 64 times its input."""
    from intsim.regs.opresult import OpResult

    x = np.asarray(x)
    return OpResult(values=x, scale=scale, taps={"wide": np.zeros((64,) + x.shape, np.int64)} if taps else {})


def test_opresult_taps_are_sized_by_a_dry_run_before_the_case_runs(monkeypatch, tmp_path):
    calls = []

    def fn(x, scale, *, in_type="int8", taps=False):
        calls.append(np.shape(x))
        return _toy_wide(x, scale, in_type=in_type, taps=taps)

    monkeypatch.setitem(ADAPTERS, "toy.wide", OpResultOperator("toy.wide", fn))
    ok = parse_spec(case_text("w", "toy.wide", shape="{ x = [4, 8] }", config='{ in_type = "int8", scale = 0.5 }'))
    budget = ADAPTERS["toy.wide"].budget(ok.cases[0])
    assert {(t.name, t.role, t.elements) for t in budget.tensors} == {("x", "input", 32), ("y", "output", 32),
                                                                        ("wide", "tap", 64 * 32)}
    # within the estimate, the dry run finds the 64x tap over the tensor cap
    calls.clear()
    text = case_text("w", "toy.wide", shape="{ x = [300, 1024] }", config='{ in_type = "int8", scale = 0.5 }')
    with pytest.raises(ConfigError, match=r"case 'w': tap 'wide': elements: 19660800 .* MAX_TENSOR_ELEMENTS"):
        parse_spec(text)
    assert calls == [(300, 1024)]  # the dry run only
    # over the estimate: refused before the dry run
    calls.clear()
    with pytest.raises(ConfigError, match=r"OPRESULT_EXPANSION"):
        parse_spec(case_text("w", "toy.wide", shape="{ x = [1024, 1024] }",
                             config='{ in_type = "int8", scale = 0.5 }'))
    assert calls == []


class _Sneaky(GoldenOperator):
    """An adapter that declares only its input but returns a tap over the cap."""

    name = "toy.sneaky"

    def resolve(self, spec):
        from intsim.golden.operators import Case

        decls = (TensorDecl("x", "input", (2,), IntType(8)),)
        return Case(spec.name, self.name, spec.seed, {}, {}, self._inputs(spec, list(decls)), decls)

    def run(self, case, inputs):
        huge = np.broadcast_to(np.int8(0), (specmod.MAX_TENSOR_ELEMENTS + 1,))  # no memory behind it
        return OpRun([(TensorDecl("y", "output", (2,), IntType(8)), inputs["x"])],
                     [(TensorDecl("huge", "tap", huge.shape, IntType(8)), huge)])


def test_what_an_adapter_returns_is_checked_before_anything_is_written(monkeypatch, tmp_path):
    monkeypatch.setitem(ADAPTERS, "toy.sneaky", _Sneaky())
    spec = parse_spec(case_text("s", "toy.sneaky"))
    with pytest.raises(ConfigError, match=r"case 's' \(operator toy.sneaky\): tap 'huge': elements: 16777217 "
                                          r"is more than the cap MAX_TENSOR_ELEMENTS"):
        generate_suite(spec, tmp_path / "out")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("strategies", [("row", "row"), ("col", "row"), ("row", "col"), ("col", "col"),
                                        ("both", "both"), ("plan", "plan"), ("plan", "col"), ("both", "row")])
@pytest.mark.parametrize("types", [("int16", "int12", "int4", "int4", False), ("int12", "int16", "int3", "int5", True),
                                   ("int8", "int8", "int2", "int2", False)])
def test_unpack_budget_bounds_what_the_case_produces(strategies, types):
    from intsim.golden.suite import make_inputs

    in_a, in_b, a, b, admit = types
    op = ADAPTERS["unpack_matmul"]
    for dist in ("heavy_tailed", "alternating", "most_negative", "uniform"):
        spec = parse_spec(case_text("u", "unpack_matmul", shape="{ M = 3, K = 4, N = 2 }",
                                    config=toml_value({"in_a": in_a, "in_b": in_b, "a": a, "b": b, "overflow": "wrap",
                                                       "strategy_a": strategies[0], "strategy_b": strategies[1],
                                                       "admit_min": admit}),
                                    inputs=toml_value({"A": dist, "B": dist})))
        case = spec.cases[0]
        budget = {t.name: t for t in op.budget(case).tensors}
        run = op.run(case, make_inputs(case))
        lowbit = [d for d, _ in run.taps if d.name.startswith("lowbit_s")]
        assert len(lowbit) <= budget["lowbit_s<t>"].copies
        for d, _ in run.outputs + run.taps:
            key = "lowbit_s<t>" if d.name.startswith("lowbit_s") else d.name
            assert math.prod(d.shape) <= budget[key].elements, (d.name, d.shape, budget[key])


def test_caps_are_documented_in_one_place():
    doc = specmod.__doc__
    for name in ("MAX_SPEC_BYTES", "MAX_NESTING", "MAX_CASES", "MAX_DIM", "MAX_TENSOR_ELEMENTS", "MAX_CASE_ELEMENTS",
                 "MAX_SUITE_ELEMENTS", "MAX_TRACE_SAMPLES", "MAX_CASE_MACS", "MAX_SUITE_MACS", "MAX_CASE_STEPS",
                 "MAX_SUITE_STEPS", "OPRESULT_EXPANSION"):
        value = getattr(specmod, name)
        assert f"``{name}``" in doc
        row = next(line for line in doc.splitlines() if line.startswith(f"``{name}``"))
        written = row.split()[1]
        shown = {"MiB": lambda v: int(v) << 20}.get(row.split()[2], None)
        if "**" in written:
            base, exp = written.split("**")
            assert int(base) ** int(exp) == value, name
        elif shown is not None:
            assert shown(written) == value, name
        else:
            assert int(written) == value, name


# --------------------------------------------------------------------------------------------------
# finding 2: names, nesting and types are ConfigErrors naming the case and the key
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, match", [
    ("manifest.json", "is reserved: the suite has a file of that name"),
    ("spec.toml", "is reserved"),
    ("MANIFEST.JSON", "is reserved"),
    ("Spec.Toml", "is reserved"),
    ("con", "Windows device"),
    ("NUL", "Windows device"),
    ("com1", "Windows device"),
    ("lpt9.txt", "Windows device"),
    ("mm.", r"ends with '\.'"),
    ("mm\n", "must be 1 to 100 characters"),
    ("a" * 101, "must be 1 to 100 characters"),
    ("../up", "must be 1 to 100 characters"),
    ("a/b", "must be 1 to 100 characters"),
    ("a\x00b", "must be 1 to 100 characters"),
    ("caf\u00e9", "must be 1 to 100 characters"),
    ("", "must be 1 to 100 characters"),
])
def test_case_names_that_collide_or_escape_are_refused(tmp_path, name, match):
    text = mm(name=name)
    with pytest.raises(ConfigError, match=r"names.toml: case .*: name: .*" + match):
        parse_spec(text, "names.toml")
    assert_nothing_written(tmp_path, text, "name")


def test_reserved_names_are_the_suites_own_files():
    assert {MANIFEST, SPEC_COPY} <= specmod.RESERVED_NAMES


def test_names_differing_only_in_letter_case_collide(tmp_path):
    text = mm(name="MM_wrap") + mm(name="mm_WRAP")
    with pytest.raises(ConfigError, match=r"case 'mm_WRAP': duplicate case name: case #1 .*ignoring letter case"):
        parse_spec(text)
    assert_nothing_written(tmp_path, text, "duplicate")


NESTED = [
    (mm("{ M = [[1]], K = 2, N = 2 }"), r"case 'c': shape.M: must be an integer"),
    (mm(config="{ acc_bits = [[32]] }"), r"case 'c': config.acc_bits: must be an integer"),
    (mm(config="{ bias = [[true]] }"), r"case 'c': config.bias: must be true or false"),
    (mm(config="{ trace_samples = [[4]] }"), r"case 'c': config.trace_samples: must be an integer"),
    (mm(inputs='{ A = { dist = [["uniform"]] } }'), r"case 'c': inputs.A.dist: unknown distribution"),
    (mm(inputs='{ A = [["uniform"]] }'), r"case 'c': inputs.A: must be a distribution name or a table"),
    (mm(inputs='{ A = { dist = "overflow", as = [["x"]] } }'), r"case 'c': inputs.A.as: must be one of"),
    (mm(inputs='{ A = { dist = "uniform", low = [[1]] } }'), r"case 'c': inputs.A.low: must be an integer"),
    (case_text(operator="requantize", shape="{ x = [[2, 3]] }", config="{ scale = 0.5 }"),
     r"case 'c': shape.x: must be a list of 1 to 4 dimensions"),
    (case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = [[0.5, 0.5, 0.5]] }"),
     r"case 'c': config.scale\[0\]: a list inside a list of scales"),
    (case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = { m = [[1]], k = 3 } }"),
     r"case 'c': config.scale.m: must be an integer"),
    (case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = 0.5, zero_point = [[1]] }"),
     r"case 'c': config.zero_point: must be a 64-bit integer"),
    (case_text(operator="ibert.layernorm", shape="{ x = [2, 3] }",
               config='{ in_type = "int22", scale = 0.1, gamma = [1.0, [2.0], 3.0] }'),
     r"case 'c': config.gamma: a list must hold finite numbers only"),
    (case_text(operator="ibert.gelu", shape="{ x = [2, 3] }", config='{ in_type = "int32", scale = 0.1, '
                                                                     'profile = [] }'),
     r"case 'c': config: ibert.gelu: .*"),
    (case_text(operator="ibert.gelu", shape="{ x = [2, 3] }", config='{ in_type = "int32", scale = 0.1, '
                                                                     'widths = { a = [[1]] } }'),
     r"case 'c': config.widths.a: must be a number"),
    (case_text(operator="unpack_matmul", shape="{ M = 2, K = 2, N = 2 }", config="{ bits = [[4]] }"),
     r"case 'c': config.bits: must be an integer or a pair"),
    (case_text(operator="unpack_matmul", shape="{ M = 2, K = 2, N = 2 }", config='{ strategy_a = [["row"]] }'),
     r"case 'c': config.strategy_a: must be one of"),
    ('[[case]]\nname = "c"\noperator = [["matmul"]]\n', r"case 'c': operator: unknown operator"),
    ('[suite]\nname = [["s"]]\n' + mm(), r"suite.name: must be 1 to 100 characters"),
    ('[suite]\nseed = [[1]]\n' + mm(), r"suite.seed: must be an integer from 0 to 2\*\*63 - 1"),
]


@pytest.mark.parametrize("text, match", NESTED)
def test_nested_lists_where_a_scalar_is_due(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        parse_spec(text, "nested.toml")
    assert_nothing_written(tmp_path, text, ".")


@pytest.mark.parametrize("text", [
    "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "a = " + "{ b = " * 5_000 + "1" + " }" * 5_000 + "\n",
    mm(config="{ acc_bits = " + "[" * 3_000 + "32" + "]" * 3_000 + " }"),
])
def test_toml_nested_thousands_deep_is_a_format_error(tmp_path, text):
    with pytest.raises(FileFormatError, match=r"deep.toml: invalid spec: tables or arrays nested too deeply"):
        parse_spec(text, "deep.toml")
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=str(path)):
        load_spec(path)
    assert_nothing_written(tmp_path, text, "nested too deeply")


def test_nesting_within_the_parser_but_over_the_cap_is_a_config_error():
    deep = "[" * 40 + "1" + "]" * 40
    with pytest.raises(ConfigError, match=r"deep.toml: at 'case\[0\].config.acc_bits.*MAX_NESTING = 32"):
        parse_spec(mm(config="{ acc_bits = " + deep + " }"), "deep.toml")


# the shape and config of a valid small case per adapter, and the keys to spoil
BASE = {
    "matmul": ("{ M = 2, K = 3, N = 2 }", '{ overflow = "wrap" }'),
    "requantize": ("{ x = [2, 3] }", "{ scale = 0.5 }"),
    "unpack_matmul": ("{ M = 2, K = 2, N = 2 }", '{ overflow = "wrap" }'),
    "ibert.gelu": ("{ x = [2, 3] }", '{ in_type = "int32", scale = 0.01 }'),
}
HOSTILE = {"bool": "true", "float": "16.0", "fraction": "16.5", "negative": "-1", "zero": "0",
           "huge": str(10**30), "nan": "nan", "inf": "inf", "string": '"16"', "nested": "[[16]]"}
SPOIL = [  # (operator, where the value goes, the key named in the message, values that must be refused)
    ("matmul", "shape.M", "shape.M", HOSTILE),
    ("matmul", "shape.K", "shape.K", HOSTILE),
    ("matmul", "config.acc_bits", "acc_bits", {k: v for k, v in HOSTILE.items() if k != "string"}),
    ("matmul", "config.k_chunk", "k_chunk", HOSTILE),
    ("matmul", "config.trace_samples", "config.trace_samples", {k: v for k, v in HOSTILE.items() if k != "zero"}),
    ("matmul", "inputs.A.low", "inputs.A.low", {k: v for k, v in HOSTILE.items() if k not in ("zero", "negative")}),
    ("matmul", "inputs.A.outlier_rate", "inputs.A.outlier_rate",
     {k: v for k, v in HOSTILE.items() if k not in ("zero",)} | {"two": "2"}),
    ("matmul", "seed", "seed", {k: v for k, v in HOSTILE.items() if k != "zero"} | {"2**64": str(2**64)}),
    ("requantize", "shape.x", "shape.x", {k: f"[{v}, 3]" for k, v in HOSTILE.items()}),
    ("requantize", "config.scale", "scale", {k: v for k, v in HOSTILE.items() if k not in ("float", "fraction")}),
    ("requantize", "config.zero_point", "zero_point",
     {k: v for k, v in HOSTILE.items() if k not in ("zero", "negative")}),
    ("unpack_matmul", "shape.N", "shape.N", HOSTILE),
    ("unpack_matmul", "config.bits", "bits", HOSTILE),
    ("ibert.gelu", "shape.x", "shape.x", {k: f"[2, {v}]" for k, v in HOSTILE.items()}),
    ("ibert.gelu", "config.scale", "scale", {k: v for k, v in HOSTILE.items() if k not in ("float", "fraction")}),
    ("ibert.gelu", "config.in_type", "config.in_type", HOSTILE),
]


def _spoiled(op: str, path: str, value: str) -> str:
    shape, config = BASE[op]
    tables = {"shape": shape, "config": config}
    top, _, key = path.partition(".")
    if top == "seed":
        return case_text("c", op, shape=shape, config=config, seed=value)
    if top == "inputs":
        tensor, _, param = key.partition(".")
        dist = "heavy_tailed" if param == "outlier_rate" else "uniform"
        return case_text("c", op, shape=shape, config=config,
                         inputs=f'{{ {tensor} = {{ dist = "{dist}", {param} = {value} }} }}')
    body = "" if (top, key) == ("shape", "x") else tables[top].strip("{} ")  # x = [2, 3] is the whole table
    parts = [p for p in body.split(", ") if p and not p.startswith(f"{key} ")]
    parts.append(f"{key} = {value}")
    tables[top] = "{ " + ", ".join(parts) + " }"
    return case_text("c", op, **tables)


@pytest.mark.parametrize("op, path, key, values", SPOIL, ids=[f"{s[0]}:{s[1]}" for s in SPOIL])
def test_wrong_types_and_ranges_name_the_case_and_the_key(tmp_path, op, path, key, values):
    shape, config = BASE[op]
    parse_spec(case_text("c", op, shape=shape, config=config))  # the base is valid
    for label, value in values.items():
        text = _spoiled(op, path, value)
        with pytest.raises(ConfigError) as err:
            parse_spec(text, "types.toml")
        msg = str(err.value)
        assert "types.toml: case 'c'" in msg and key in msg, (label, value, msg)
    assert_nothing_written(tmp_path, _spoiled(op, path, values[next(iter(values))]), key)


@pytest.mark.parametrize("seed", ["-1", str(2**63), str(2**64), str(2**64 + 1)])
def test_suite_seed_out_of_range(seed):
    with pytest.raises(ConfigError, match=r"s.toml: suite.seed: must be an integer from 0 to 2\*\*63 - 1"):
        parse_spec(f"[suite]\nseed = {seed}\n" + mm(), "s.toml")


@pytest.mark.parametrize("text, match", [
    (case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = [0.5, 0.25] }"),
     r"case 'c': config.scale: 2 per-channel scales, but the channel dimension \(the last of shape.x = \[2, 3\]\) "
     r"is 3"),
    (case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = [0.5] }"),
     r"case 'c': config.scale: 1 per-channel scales, but the channel dimension"),
    (case_text(operator="requantize", shape="{ x = [4, 3] }", config="{ scale = [0.5, 0.5, 0.5, 0.5] }"),
     r"case 'c': config.scale: 4 per-channel scales"),
    (case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = { m = 1, k = 100000000000000 } }"),
     r"case 'c': config.scale.k: must be an integer from 0 to 127"),
    (case_text(operator="requantize", shape="{ x = [2, 3] }",
               config="{ scale = { m = 100000000000000000000, k = 3 } }"),
     r"case 'c': config.scale.m: must be an integer from -9223372036854775808"),
    (case_text(operator="illm.di_exp", shape="{ x = [2, 3] }",
               config='{ in_type = "int32", scale = { m = 100000000000000000000, k = 3 } }'),
     r"case 'c': config.scale.m: must be an integer"),
    (case_text(operator="illm.clipped_softmax", shape="{ x = [4, 3] }",
               config='{ in_type = "int32", scale = [0.1, 0.2] }'), r"case 'c': config: illm.clipped_softmax: "),
    (case_text(operator="ibert.gelu", shape="{ x = [2, 3] }", config='{ in_type = "int32", scale = 1e308 }'),
     r"case 'c': config: ibert.gelu: "),
    (case_text(operator="ibert.gelu", shape="{ x = [2, 3] }", config='{ in_type = "int32", scale = 1e-308 }'),
     r"case 'c': config: ibert.gelu: "),
    (case_text(operator="ibert.gelu", shape="{ x = [2, 3] }",
               config='{ in_type = "int32", scale = 0.1, n = 100000000000000000000 }'),
     r"case 'c': config.n: must be an integer of at most 64 bits"),
])
def test_scales_that_do_not_fit_the_case(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        parse_spec(text)
    assert_nothing_written(tmp_path, text, "case 'c'")


def test_per_channel_scale_of_the_right_length_still_validates():
    s = parse_spec(case_text(operator="requantize", shape="{ x = [2, 3] }", config="{ scale = [0.5, 0.25, 0.125] }"))
    assert s.cases[0].config["scale"] == [0.5, 0.25, 0.125]


def test_unreadable_text_and_paths_are_format_errors(tmp_path):
    with pytest.raises(FileFormatError, match="s.toml: not UTF-8"):
        parse_spec("name = '\ud800'", "s.toml")
    with pytest.raises(FileFormatError, match="s.toml: not UTF-8"):
        parse_spec(b"\xff\xfe", "s.toml")
    with pytest.raises(FileFormatError, match="not a valid spec file path"):
        load_spec("spec\x00.toml")
    with pytest.raises(FileFormatError, match="cannot be read"):
        load_spec(tmp_path)
    with pytest.raises(FileFormatError, match="cannot be read|not a valid"):
        generate_suite(str(tmp_path / "a\x00b.toml"), tmp_path / "out")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# finding 3: hostile specs from hypothesis: a valid spec or a typed error, never another exception
# --------------------------------------------------------------------------------------------------

VALID = [
    {"suite": {"name": "s", "seed": 1, "description": "hostile base"},
     "case": [{"name": "mm", "operator": "matmul", "seed": 3, "shape": {"M": 2, "K": 3, "N": 2},
               "config": {"a": "int8", "b": "int8", "acc_bits": 16, "overflow": "wrap", "bias": True,
                          "trace_samples": 2, "k_chunk": 2, "chunk_bits": 12, "chunk_overflow": "saturate"},
               "inputs": {"A": "uniform", "B": {"dist": "heavy_tailed", "outlier_rate": 0.1, "outlier_channels": 1},
                          "bias": {"dist": "uniform", "low": -5, "high": 5}}}]},
    {"case": [{"name": "rq", "operator": "requantize", "shape": {"x": [2, 3]},
               "config": {"mode": "dyadic", "scale": [0.5, 0.25, 0.125], "rounding": "half_even",
                          "out": "int8", "zero_point": 1},
               "inputs": {"x": {"dist": "uniform", "low": -1000, "high": 1000}}},
              {"name": "rq2", "operator": "requantize", "shape": {"x": [3]},
               "config": {"scale": {"m": 3, "k": 4}, "mode": "tflite_single", "in_type": "int16"},
               "inputs": {"x": "alternating"}}]},
    {"case": [{"name": "up", "operator": "unpack_matmul", "shape": {"M": 2, "K": 2, "N": 2},
               "config": {"in_a": "int12", "in_b": "int12", "a": "int4", "b": "int4", "overflow": "wrap",
                          "strategy_a": "plan", "strategy_b": "col", "bits": [4, 4]},
               "inputs": {"A": "heavy_tailed", "B": {"dist": "overflow", "as": "alternating"}}}]},
    {"case": [{"name": "gelu", "operator": "ibert.gelu", "shape": {"x": [2, 4]},
               "config": {"in_type": "int32", "scale": 0.001, "profile": "corrected"}, "inputs": {"x": "uniform"}},
              {"name": "ln", "operator": "ibert.layernorm", "shape": {"x": [2, 4]},
               "config": {"in_type": "int22", "scale": 0.01, "gamma": [1.0, 0.5, 2.0, 1.0]}},
              {"name": "sm", "operator": "illm.clipped_softmax", "shape": {"x": [2, 4]},
               "config": {"in_type": "int32", "scale": [0.01, 0.02], "widths": {"x_sub": 33}},
               "inputs": {"x": {"dist": "constant", "value": 3}}}]},
]

HOSTILE_NAMES = ["manifest.json", "SPEC.toml", "..", ".", "a/b", "../x", "/abs", "a\\b", "a\x00b", "x" * 300,
                 "caf\u00e9", "\u0130", "con", "nul.txt", "mm.", "mm\n", " mm", "", "-x", "_x", "MM"]
KEYS = ["name", "operator", "seed", "shape", "config", "inputs", "M", "K", "N", "x", "a", "b", "acc_bits",
        "overflow", "k_chunk", "chunk_bits", "trace_samples", "bias", "dist", "low", "high", "value", "as", "m", "k",
        "scale", "in_type", "out_type", "input_types", "taps", "bits", "strategy_a", "mode", "zero_point", "gamma",
        "outlier_rate", "outlier_channels", "scale_bits", "suite", "case", "description", "widths", "profile"]
WORDS = ["int8", "int65", "uint0", "int0", "wrap", "raise", "saturate", "uniform", "overflow", "heavy_tailed",
         "most_negative", "matmul", "requantize", "unpack_matmul", "ibert.gelu", "illm.nothing", "row", "plan",
         "dyadic", "half_even", "nan"]

scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2, 64, 65, 4096, 4097, 2**20, 2**20 + 1, 2**24, 2**31, 2**63 - 1, 2**63, 2**64,
                     -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 16.0, 16.5, 1e308, 5e-324, float("nan"), float("inf")]),
    st.text(max_size=12),
    st.sampled_from(HOSTILE_NAMES + WORDS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4)),
    max_leaves=12,
)
deep = st.integers(1, 80).map(lambda d: [[]] if d == 1 else _nest(d))


def _nest(depth: int) -> Any:
    v: Any = 1
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


def _containers(v: Any, out: list, depth: int = 0) -> list:
    """Every table and array in ``v`` with its depth (0: the document)."""
    if isinstance(v, dict):
        out.append((v, depth))
        for x in v.values():
            _containers(x, out, depth + 1)
    elif isinstance(v, list):
        out.append((v, depth))
        for x in v:
            _containers(x, out, depth + 1)
    return out


@st.composite
def hostile_docs(draw) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "drop", "replace", "replace", "replace", "replace", "add", "add",
                                     "rename", "dup", "deep"]))
        cases = doc.get("case") if isinstance(doc.get("case"), list) else []
        tables = [c for c in cases if isinstance(c, dict)]
        if kind == "rename" and tables:
            draw(st.sampled_from(tables))["name"] = draw(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=8)))
            continue
        if kind == "dup" and tables:
            twin = copy.deepcopy(draw(st.sampled_from(tables)))
            if isinstance(twin.get("name"), str):
                twin["name"] = twin["name"].swapcase()
            cases.append(twin)
            continue
        found = _containers(doc, [])
        inner = [c for c, depth in found if depth >= 3]  # inside a case's shape, config or inputs
        target = draw(st.sampled_from(inner if inner and draw(st.integers(0, 9)) else [c for c, _ in found]))
        value = draw(deep if kind == "deep" else values)
        if isinstance(target, dict):
            if kind == "drop" and target:
                del target[draw(st.sampled_from(sorted(target)))]
            elif kind == "add" or not target:
                target[draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)))] = value
            else:
                target[draw(st.sampled_from(sorted(target)))] = value
        elif isinstance(target, list):
            if kind == "drop" and target:
                del target[draw(st.integers(0, len(target) - 1))]
            elif kind == "add" or not target:
                target.append(value)
            else:
                target[draw(st.integers(0, len(target) - 1))] = value
    return doc


def test_the_bases_are_valid():
    for doc in VALID:
        parse_spec(dumps(doc), "base.toml")


def _check_hostile(text: str | bytes) -> None:
    try:
        parse_spec(text, "hostile.toml")
    except IntsimError:
        pass
    else:
        return  # a valid spec (generating it is the other tests' business)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        spec = root / "spec.toml"
        spec.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        with pytest.raises(IntsimError):
            generate_suite(spec, root / "out")
        assert not (root / "out").exists()
        assert os.listdir(root) == ["spec.toml"]


@given(doc=hostile_docs())
def test_mutated_specs_give_a_valid_spec_or_a_typed_error(doc):
    _check_hostile(dumps(doc))


@given(doc=st.sampled_from(VALID), cut=st.integers(0, 10**6), junk=st.binary(max_size=8))
def test_corrupted_spec_text_gives_a_valid_spec_or_a_typed_error(doc, cut, junk):
    raw = dumps(doc).encode("utf-8")
    pos = cut % (len(raw) + 1)
    _check_hostile(raw[:pos] + junk + raw[pos + len(junk):])
