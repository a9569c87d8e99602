"""The package's layering, checked on the source: imports point one way, no module imports a
private name of another, no import cycles, and ``import intsim`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "intsim"

#: top-level subpackage -> layer (README "Architecture"); a module imports only from its own
#: layer and the layers below. The oracles import nothing of the package above ``core``.
#: ``testing`` (the hypothesis strategies and checks for users) sits on top beside ``apps``.
LAYERS = {"core": 1, "regs": 2, "hw": 3, "quant": 4, "ops": 5, "models": 6, "onnx": 6, "golden": 7, "cost": 7,
          "apps": 8, "testing": 8}


def _modules() -> dict[str, Path]:
    """Every module of the package: a ``.py`` file whose folders up to ``intsim/`` are all packages
    (the RTL templates' cocotb testbenches in ``intsim/golden/rtl/``, a folder without
    ``__init__.py``, are scripts shipped as data for a simulator to run, not modules of a layer)."""
    out = {}
    for f in ROOT.rglob("*.py"):
        if any(not (d / "__init__.py").is_file() for d in f.parents if d == ROOT or ROOT in d.parents):
            continue
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str, bool]]:
    """(imported module, imported name, at module level) of every ``intsim`` import of a module."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "intsim" or mod.startswith("intsim."):
                for alias in node.names:
                    sub = f"{mod}.{alias.name}"
                    out.append((sub if sub in MODULES else mod, alias.name, id(node) in top))
        elif isinstance(node, ast.Import):
            out += [(a.name, "", id(node) in top) for a in node.names if a.name.startswith("intsim")]
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_private_name_crosses_a_module_boundary():
    bad = [(m, mod, n) for m, p in MODULES.items() for mod, n, _ in _imports(m, p)
           if n.startswith("_") and not n.startswith("__") and mod != m]
    assert not bad, bad


def test_imports_point_down_the_layers():
    bad = []
    for m, p in MODULES.items():
        own = _layer(m)
        for mod, _, _ in _imports(m, p):
            if m.startswith("intsim.oracles"):
                if not mod.startswith(("intsim.oracles", "intsim.core")):
                    bad.append((m, mod))
            elif own is not None and mod != "intsim" and (_layer(mod) or 0) > own:
                bad.append((m, mod))
    assert not bad, bad


def test_no_import_cycles():
    """Module-level imports between modules (an import of a package's ``__init__`` from inside the
    package is the re-export hub, not an edge)."""
    graph = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for mod, _, top in _imports(m, p):
            if top and mod in MODULES and mod != m and not m.startswith(mod + "."):
                graph[m].add(mod)
    state: dict[str, int] = {}
    cycles = []

    def visit(v: str, path: list[str]) -> None:
        state[v] = 1
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                cycles.append(path[path.index(w):] + [w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [v])
    assert not cycles, cycles[:3]


def test_no_late_import_hides_a_cycle():
    """A function-level import is fine for optional or heavy dependencies, but never of a module
    that imports the importer back at module level."""
    top = {m: {mod for mod, _, t in _imports(m, p) if t} for m, p in MODULES.items()}
    bad = [(m, mod) for m, p in MODULES.items() for mod, _, t in _imports(m, p)
           if not t and m in top.get(mod, set())]
    assert not bad, bad


def test_import_intsim_is_light():
    code = ("import sys, intsim; print(sorted(m for m in ('pandas', 'matplotlib', 'intsim.apps', 'intsim.golden', "
            "'intsim.cost', 'intsim.models', 'intsim.onnx', 'intsim.testing', 'hypothesis', 'onnx', 'onnxruntime') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_shipped_testbench_scripts_are_not_modules():
    assert not any(".rtl." in m for m in MODULES)
    assert "intsim.golden.templates" in MODULES and "intsim.testing.strategies" in MODULES


def test_every_package_is_installed_and_the_references_under_their_own_name():
    import tomllib

    meta = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(d.relative_to(ROOT.parent).parts) for d in [ROOT, *ROOT.rglob("*")]
               if d.is_dir() and (d / "__init__.py").is_file()}
    assert set(meta["packages"]) == on_disk | {"intsim_reference"}
    assert meta["package-dir"] == {"intsim_reference": "reference"}


def test_nothing_imports_a_top_level_reference_package():
    # installed as intsim_reference: a bare "reference" would be whichever project's package comes first
    top = ROOT.parent
    for folder in ("intsim", "reference", "tests", "benchmarks", "examples"):
        for f in (top / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                assert not any(n == "reference" or n.startswith("reference.") for n in names), f"{f}: {names}"
