"""Golden vectors: bit-exact test suites for hardware that implements intsim's arithmetic.

A *spec* (TOML) lists cases: an operator, its configuration, shapes, a seed and
value distributions. ``generate_suite`` computes every case with intsim and
writes a *suite*: inputs, outputs and intermediate registers (taps) as ``.npy``
and as ``$readmemh`` hex, plus a ``manifest.json`` with every setting and the
SHA-256 of every file. ``verify_suite`` recomputes a suite bit for bit;
``compare_suite`` checks a design's ``$writememh``/``.npy`` dumps against it.

Modules: :mod:`~intsim.golden.spec` (spec format), :mod:`~intsim.golden.datagen`
(distributions and corner sets), :mod:`~intsim.golden.operators` (what a case can
compute), :mod:`~intsim.golden.hexfmt` (hex format), :mod:`~intsim.golden.suite`
(layout, manifest, generate, verify), :mod:`~intsim.golden.compare` (dumps, JUnit),
:mod:`~intsim.golden.cocotb_adapter` (cocotb 2.x ``LogicArray`` adapter and a
scoreboard), :mod:`~intsim.golden.cli` (``intsim golden ...``).

>>> import tempfile, pathlib
>>> from intsim.golden import parse_spec, generate_suite, verify_suite
>>> spec = parse_spec('''
... [[case]]
... name = "mm_int4_sat"
... operator = "matmul"
... shape = { M = 2, K = 8, N = 3 }
... config = { a = "int4", b = "int4", acc_bits = 8, overflow = "saturate" }
... inputs = { A = "overflow", B = "overflow" }
... ''')
>>> out = pathlib.Path(tempfile.mkdtemp()) / "suite"
>>> generate_suite(spec, out).cases
1
>>> (out / "mm_int4_sat" / "C.hex").read_text().split()
['7f', '7f', '7f', '80', '80', '80']
>>> verify_suite(out).ok
True
"""

from __future__ import annotations

from .compare import CompareReport, compare_suite, write_junit
from .datagen import DISTRIBUTIONS, generate
from .hexfmt import format_memh, interpret_word, parse_memh, read_memh
from .operators import (
    ADAPTERS,
    Case,
    GoldenOperator,
    OpResultOperator,
    OpRun,
    TensorDecl,
    available_operators,
    get_operator,
    register,
)
from .spec import SuiteSpec, load_spec, parse_spec, spec_from_dict
from .suite import (
    FORMAT_VERSION,
    GenerateReport,
    Suite,
    VerifyReport,
    generate_suite,
    load_suite,
    verify_suite,
)

__all__ = [
    "load_spec", "parse_spec", "spec_from_dict", "SuiteSpec",
    "generate_suite", "GenerateReport", "verify_suite", "VerifyReport", "load_suite", "Suite", "FORMAT_VERSION",
    "compare_suite", "CompareReport", "write_junit",
    "format_memh", "parse_memh", "read_memh", "interpret_word",
    "DISTRIBUTIONS", "generate",
    "ADAPTERS", "GoldenOperator", "OpResultOperator", "OpRun", "Case", "TensorDecl", "register", "get_operator",
    "available_operators",
]
