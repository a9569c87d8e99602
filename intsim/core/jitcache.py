"""intsim's numba cache: keyed on every inlined kernel source, self-healing files, a first-compile notice.

numba keys a cached kernel on the source of the file that defines it. Our kernels inline helpers
from other modules (the register helpers of :mod:`intsim.ops.ibert` are compiled into the I-ViT and
I-LLM kernels), so after an edit to a helper a stale machine-code cache would still be loaded and
silently compute the old arithmetic. This module registers cache locators, used for intsim's files
only, whose freshness stamp also carries a digest of every kernel-defining intsim module the file
imports, directly or through other intsim modules: a change to any of them invalidates that
file's cache entries. Files outside intsim keep numba's own locators untouched.

Two more things happen here, for intsim's kernels only:

* **Self-healing cache files.** numba trusts its cache files: a truncated or bit-flipped ``.nbi``
  (index) or ``.nbc`` (data) file makes every later process die in ``pickle`` or in LLVM's bitcode
  reader, and a flipped bit in the cached machine code can even crash the process or compute wrong
  results without any error. intsim's kernels therefore use :class:`HealingFunctionCache`, whose
  files carry a SHA-256 checksum (see :class:`CheckedIndexDataCacheFile`). A file that fails the
  checksum, does not unpickle, has the wrong structure, or whose payload LLVM refuses to load is a
  cache miss: one line goes to stderr (``intsim: discarded a corrupt numba cache entry PATH
  (REASON); recompiling``), that entry's files are deleted, and numba compiles the kernel and
  writes a fresh entry, so the process computes the right answer and the next one loads the cache.
* **A first-compile notice.** The first time a process compiles an intsim kernel (a real compile,
  not a cache load), one line goes to stderr: ``intsim: compiling numba kernels (first run only;
  cached in DIR) ...``. Set ``INTSIM_QUIET=1`` to silence it (the corrupt-entry line is always
  printed). :func:`compile_count` counts the compiles of the process.

Imported by ``intsim/__init__.py`` before any kernel module, so every ``@njit(cache=True)`` in the
package picks these locators and this cache class up.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import re
import sys
from pathlib import Path

import numba
from numba.core import caching, event

_PACKAGE = Path(__file__).resolve().parent.parent  # the intsim package (this file is intsim/core/jitcache.py)


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
    return sorted(f for f in seen if f == start or (f.name != "jitcache.py" and b"@njit" in f.read_bytes()))


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


# =============================================================================================
# checksummed cache files
# =============================================================================================
#: Written as the index file's first pickle where numba writes its version string. numba (or an
#: intsim without this module) reading such an index sees "another numba version" and ignores it;
#: this module reading numba's own index format sees the same and ignores it too. Either way the
#: entry is recompiled and rewritten, never misread.
_FORMAT = f"{numba.__version__}+intsim-sha256-1"
_INDEX_MAGIC = b"intsim-nbi-sha256\0"
_DATA_MAGIC = b"intsim-nbc-sha256\0"
_DIGEST = 32


class CorruptCacheEntry(Exception):
    """A cache file failed its checksum or could not be decoded (internal: turned into a cache miss)."""


def _report(path: str, reason: str) -> None:
    reason = (reason.strip().splitlines() or ["unreadable"])[0][:200]
    print(f"intsim: discarded a corrupt numba cache entry {path} ({reason}); recompiling", file=sys.stderr, flush=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        print(f"intsim: could not delete the corrupt numba cache file {path}: {exc}", file=sys.stderr, flush=True)


class CheckedIndexDataCacheFile(caching.IndexDataCacheFile):
    """numba's index/data cache files, each with a SHA-256 checksum, healing when damaged.

    Same file names as numba's (``<base>.nbi``, ``<base>.<n>.nbc``), different contents:

    * index: ``pickle(_FORMAT)`` (where numba pickles its version), ``_INDEX_MAGIC``, the SHA-256
      of everything else in the file, then numba's ``(source stamp, {key: data file name})``;
    * data: ``_DATA_MAGIC``, the SHA-256 of the rest, then ``(key, payload)``: the key is stored
      with the payload, so a data file left over from another entry (or being rewritten by another
      process) is a plain cache miss instead of the wrong kernel.

    An index in numba's own format (no ``_INDEX_MAGIC`` after its version pickle: written by numba
    for a file outside intsim's locators, or by an intsim without this module) or one written by
    intsim under another numba version (valid checksum, another header) is stale, as is one whose
    source stamp differs: the entry is recompiled and the index rewritten, as numba does. A file
    that cannot be read as described (short, checksum mismatch, unpicklable, wrong structure, a
    data file name that is not ``<base>.<n>.nbc``) is corrupt: it is reported on stderr, deleted,
    and the lookup is a miss. Deleting a corrupt index also deletes the ``<base>.<n>.nbc`` files
    next to it (only it could reach them); nothing else is ever deleted.
    """

    def __init__(self, cache_path, filename_base, source_stamp):
        super().__init__(cache_path, filename_base, source_stamp)
        self._dir = os.path.normpath(str(cache_path))
        self._fbase = str(filename_base)
        self._idx_path = os.path.join(self._dir, f"{filename_base}.nbi")
        self._data_re = re.compile(re.escape(filename_base) + r"\.[0-9]+\.nbc")
        self._stamp = source_stamp
        #: the data file of the last successful :meth:`load` (None after a miss)
        self.last_data_path: str | None = None

    # ---- numba's interface ------------------------------------------------------------------
    def flush(self):
        self._save_index({})

    def save(self, key, data):
        """Save ``data`` for ``key``: a data file (reused if the index has one for ``key``), then the index."""
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            used = set(overloads.values())
            n = 1
            while f"{self._fbase}.{n}.nbc" in used:
                n += 1
            name = f"{self._fbase}.{n}.nbc"
            overloads[key] = name
            self._save_index(overloads)
        payload = self._dump((key, data))
        with self._open_for_write(os.path.join(self._dir, name)) as f:
            f.write(_DATA_MAGIC + hashlib.sha256(payload).digest() + payload)

    def load(self, key):
        """The payload cached for ``key``, or None (a miss: no entry, stale, or corrupt and discarded)."""
        self.last_data_path = None
        name = self._load_index().get(key)
        if name is None:
            return None
        path = os.path.join(self._dir, name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:  # removed while the index still refers to it
            return None
        try:
            stored_key, data = self._parse_data(raw)
        except CorruptCacheEntry as exc:
            self.discard_data(path, str(exc))
            return None
        if stored_key != key:  # a leftover of another entry, or being rewritten: recompile, overwrite
            return None
        self.last_data_path = path
        return data

    # ---- formats ----------------------------------------------------------------------------
    def _save_index(self, overloads):
        head = pickle.dumps(_FORMAT, protocol=-1)
        payload = self._dump((self._stamp, overloads))
        digest = hashlib.sha256(head + _INDEX_MAGIC + payload).digest()
        with self._open_for_write(self._idx_path) as f:
            f.write(head + _INDEX_MAGIC + digest + payload)

    def _load_index(self):
        try:
            with open(self._idx_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        try:
            return self._parse_index(raw)
        except CorruptCacheEntry as exc:
            self.discard_index(str(exc))
            return {}

    def _parse_index(self, raw: bytes) -> dict:
        buf = io.BytesIO(raw)
        try:
            fmt = pickle.load(buf)
        except Exception as exc:
            raise CorruptCacheEntry(f"unreadable index header: {type(exc).__name__}") from None
        head = raw[: buf.tell()]
        rest = raw[buf.tell():]
        n = len(_INDEX_MAGIC)
        if rest[:n] != _INDEX_MAGIC or len(rest) < n + _DIGEST:
            if fmt == _FORMAT:
                raise CorruptCacheEntry("index truncated")
            return {}  # numba's own format (another numba, an older intsim): stale, rewritten on save
        digest, payload = rest[n:n + _DIGEST], rest[n + _DIGEST:]
        if hashlib.sha256(head + _INDEX_MAGIC + payload).digest() != digest:
            raise CorruptCacheEntry("index checksum mismatch")
        if fmt != _FORMAT:
            return {}  # written by intsim under another numba version: stale, rewritten on save
        try:
            entry = pickle.loads(payload)
        except Exception as exc:
            raise CorruptCacheEntry(f"index does not unpickle: {type(exc).__name__}") from None
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict) and all(
                isinstance(v, str) and self._data_re.fullmatch(v) for v in entry[1].values())):
            raise CorruptCacheEntry("index has the wrong structure")
        stamp, overloads = entry
        if stamp != self._stamp:
            return {}  # the sources changed: stale, rewritten on save
        return overloads

    def _parse_data(self, raw: bytes) -> tuple:
        n = len(_DATA_MAGIC)
        if raw[:n] != _DATA_MAGIC or len(raw) < n + _DIGEST:
            raise CorruptCacheEntry("data file truncated or not intsim's format")
        digest, payload = raw[n:n + _DIGEST], raw[n + _DIGEST:]
        if hashlib.sha256(payload).digest() != digest:
            raise CorruptCacheEntry("data checksum mismatch")
        try:
            entry = pickle.loads(payload)
        except Exception as exc:
            raise CorruptCacheEntry(f"data does not unpickle: {type(exc).__name__}") from None
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise CorruptCacheEntry("data has the wrong structure")
        return entry

    # ---- discarding -------------------------------------------------------------------------
    def discard_data(self, path: str, reason: str) -> None:
        """Report and delete the data file ``path`` (only if it is one of this entry's ``<base>.<n>.nbc``)."""
        if os.path.normpath(os.path.dirname(path)) == self._dir and self._data_re.fullmatch(os.path.basename(path)):
            _report(path, reason)
            _unlink(path)

    def discard_index(self, reason: str) -> None:
        """Report and delete the index and its ``<base>.<n>.nbc`` data files (unreachable without it)."""
        _report(self._idx_path, reason)
        _unlink(self._idx_path)
        try:
            names = os.listdir(self._dir)
        except OSError:
            return
        for name in names:
            if self._data_re.fullmatch(name):
                _unlink(os.path.join(self._dir, name))


class HealingFunctionCache(caching.FunctionCache):
    """numba's per-function cache; for intsim's files (its locators) with checked files and healing.

    For other functions it is numba's ``FunctionCache`` unchanged. For intsim's: the files are
    :class:`CheckedIndexDataCacheFile`, and a payload that passes its checksum but cannot be turned
    back into a compiled function (``CompileResult._rebuild``: unpickled objects, LLVM parsing the
    cached bitcode, loading the object code) is reported, its data file deleted, and the lookup
    becomes a miss, so numba compiles and overwrites the entry.
    """

    def __init__(self, py_func):
        super().__init__(py_func)
        self._heals = bool(getattr(self._impl.locator, "_intsim", False))
        if self._heals:
            self._cache_file = CheckedIndexDataCacheFile(
                cache_path=self._cache_path, filename_base=self._impl.filename_base,
                source_stamp=self._impl.locator.get_source_stamp())

    def _load_overload(self, sig, target_context):
        if not self._heals:
            return super()._load_overload(sig, target_context)
        if not self._enabled:
            return None
        key = self._index_key(sig, target_context.codegen())
        data = self._cache_file.load(key)
        if data is None:
            return None
        try:
            return self._impl.rebuild(target_context, data)
        except Exception as exc:
            path = self._cache_file.last_data_path
            if path is not None:
                self._cache_file.discard_data(path, f"could not be loaded: {type(exc).__name__}: {exc}")
            return None


# =============================================================================================
# the first-compile notice
# =============================================================================================
_COMPILES = 0
_NOTICE_SHOWN = False


def quiet() -> bool:
    """True if ``INTSIM_QUIET`` is set to anything but ``""`` or ``"0"`` (read at each use)."""
    return os.environ.get("INTSIM_QUIET", "") not in ("", "0")


def compile_count() -> int:
    """How many times this process has compiled an intsim kernel (cache loads not counted; a kernel
    compiled for two signatures counts twice; a kernel compiled while compiling another counts too)."""
    return _COMPILES


def suppress_compile_notice() -> None:
    """Do not print the first-compile notice in this process (for callers that report compiles themselves)."""
    global _NOTICE_SHOWN
    _NOTICE_SHOWN = True


def _cache_dir(dispatcher) -> str | None:
    path = getattr(getattr(dispatcher, "_cache", None), "cache_path", None)
    return str(path) if path else None


class _CompileListener(event.Listener):
    """Counts compiles of intsim kernels; prints the first-compile notice once per process."""

    def on_start(self, ev):
        global _COMPILES, _NOTICE_SHOWN
        data = ev.data if isinstance(ev.data, dict) else {}
        disp = data.get("dispatcher")
        mod = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
        if not (mod == "intsim" or mod.startswith("intsim.")):
            return
        _COMPILES += 1
        if _NOTICE_SHOWN:
            return
        _NOTICE_SHOWN = True
        if quiet():
            return
        where = _cache_dir(disp)
        where = f"first run only; cached in {where}" if where else "not cached on disk"
        print(f"intsim: compiling numba kernels ({where}) ...", file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


# =============================================================================================
# installation
# =============================================================================================
_BASES = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")


def install() -> None:
    """Put the intsim locators first in numba's list, make numba's dispatchers use
    :class:`HealingFunctionCache` and register the compile listener (idempotent)."""
    from numba.core import dispatcher

    classes = caching.CacheImpl._locator_classes
    if any(getattr(c, "_intsim", False) for c in classes):
        return
    ours = []
    for name in _BASES:
        loc = _package_locator(getattr(caching, name))
        loc._intsim = True
        ours.append(loc)
    classes[:0] = ours
    dispatcher.FunctionCache = HealingFunctionCache
    event.register("numba:compile", _CompileListener())


install()
