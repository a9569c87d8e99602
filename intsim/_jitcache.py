"""Make numba's on-disk cache notice changes in *any* intsim kernel source, not only the function's own file.

numba keys a cached kernel on the source of the file that defines it. Our kernels inline helpers
from other modules (the register helpers of :mod:`intsim.ibert` are compiled into the I-ViT and
I-LLM kernels), so after an edit to a helper a stale machine-code cache would still be loaded and
silently compute the old arithmetic. This module registers cache locators, used for intsim's files
only, whose freshness stamp also carries a digest of every kernel-defining intsim module the file
imports, directly or through other intsim modules: a change to any of them invalidates that
file's cache entries. Files outside intsim keep numba's own locators untouched.

Imported by ``intsim/__init__.py`` before any kernel module, so every ``@njit(cache=True)`` in the
package picks these locators up.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from numba.core import caching

_PACKAGE = Path(__file__).resolve().parent


_IMPORT = re.compile(rb"^[ \t]*from[ \t]+(\.+[\w.]*|intsim[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.M)


def _module_file(dotted: str) -> Path | None:
    """The source file of ``intsim.<dotted>`` (a module or a package), if it exists."""
    base = _PACKAGE.joinpath(*dotted.split(".")) if dotted else _PACKAGE
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(path: Path) -> set[Path]:
    """intsim source files imported by ``path`` (``from .x import``, ``from . import x``, ``from intsim.x import``)."""
    pkg = path.parent.relative_to(_PACKAGE).parts
    found: set[Path] = set()
    for mod, names in _IMPORT.findall(path.read_bytes()):
        m = mod.decode()
        if m.startswith("."):
            dots = len(m) - len(m.lstrip("."))
            parts = list(pkg[: len(pkg) - (dots - 1)] if dots > 1 else pkg) + [x for x in m.lstrip(".").split(".") if x]
        else:
            parts = m.split(".")[1:]
        dotted = ".".join(parts)
        f = _module_file(dotted) if dotted else None  # not the package __init__ (re-exports, no kernels)
        if f is not None:
            found.add(f)
        for n in re.split(r"[\s,()]+", re.sub(r"#[^\n]*", "", names.decode())):  # from . import x: x may be a module
            if n and (g := _module_file(".".join([*parts, n]))) is not None:
                found.add(g)
    return found


def kernel_dependencies(py_file: str | Path) -> list[Path]:
    """The kernel-defining intsim files ``py_file`` imports, directly or through other intsim
    modules, and ``py_file`` itself: every file whose kernels it can inline."""
    start = Path(py_file).resolve()
    seen: set[Path] = set()
    todo = [start]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(_imports(f) - seen)
    return sorted(f for f in seen if f == start or (f.name != "_jitcache.py" and b"@njit" in f.read_bytes()))


@functools.cache
def kernel_sources_digest(py_file: str) -> str:
    """sha256 over the names and contents of :func:`kernel_dependencies` of ``py_file``."""
    h = hashlib.sha256()
    for f in kernel_dependencies(py_file):
        h.update(str(f.relative_to(_PACKAGE)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _is_ours(py_file: str) -> bool:
    try:
        return Path(py_file).resolve().is_relative_to(_PACKAGE)
    except OSError:
        return False


def _package_locator(base: type) -> type:
    class _Locator(base):  # type: ignore[misc, valid-type]
        @classmethod
        def from_function(cls, py_func, py_file):
            if not _is_ours(py_file):
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return (super().get_source_stamp(), kernel_sources_digest(self._py_file))

    _Locator.__name__ = _Locator.__qualname__ = f"Intsim{base.__name__}"
    return _Locator


_BASES = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")


def install() -> None:
    """Put the intsim locators first in numba's list (idempotent)."""
    classes = caching.CacheImpl._locator_classes
    if any(getattr(c, "_intsim", False) for c in classes):
        return
    ours = []
    for name in _BASES:
        loc = _package_locator(getattr(caching, name))
        loc._intsim = True
        ours.append(loc)
    classes[:0] = ours


install()
