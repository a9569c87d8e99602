"""Atomic file writes and safe output directories.

Nothing intsim writes is ever left half-written, and intsim never deletes or replaces a file it
did not write.

* :func:`atomic_write_bytes` / :func:`atomic_write_text`: the data go to a temporary file in the
  same directory, are fsynced, and the file is renamed into place.
* :func:`atomic_directory`: every command that writes a directory of outputs (reports, the
  demo, golden suites) builds it in a fresh temporary sibling and swaps it into place when it is
  complete. The guarantee:

  - ``target`` is replaced only if it is absent, empty, or holds exactly what intsim wrote there
    before: every file is listed, with its size and SHA-256, in the directory's record (the file
    :data:`RECORD` for reports, the ``manifest.json`` of a golden suite) and still matches it. A
    directory holding anything else (a file of yours, a modified report, a symbolic link) is
    refused with :class:`~intsim.core.errors.ConfigError` naming the first such entry. An existing
    non-empty target also needs ``force``.
  - The check is made when the command starts (so a refusal costs nothing) and again at the
    moment of the swap, under an exclusive lock on the parent directory: a directory that appeared
    at ``target`` while the command ran is not replaced unless it passes the same test. A second
    run writing to the same target while one is in progress fails at once with a message naming
    the other run's process id.
  - At every instant ``target`` holds either the old complete output or the new one (Linux swaps
    the two directories with one ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames are used,
    and a run killed between them has its old output put back by the next run).
  - Every file and directory is fsynced before the swap and the parent after it.
  - The old output is removed file by file, only files listed in its record whose contents still
    match; anything else found there is left in place with a warning. Temporary directories of
    killed runs (``.<name>.intsim-<pid>-<random>.tmp``) are removed by the next run writing the
    same target; a run holds a lock on its own temporary directory, so a live run's directory is
    never mistaken for a leftover.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "a.txt", "hello\\n")
>>> (d / "a.txt").read_text()
'hello\\n'
>>> with atomic_directory(d / "out") as tmp:
...     _ = (tmp / "result.csv").write_text("x\\n1\\n")
>>> sorted(p.name for p in (d / "out").iterdir())
['.intsim-output.json', 'result.csv']
>>> with atomic_directory(d / "out", force=True) as tmp:    # intsim's own output: replaced
...     _ = (tmp / "result.csv").write_text("x\\n2\\n")
>>> _ = (d / "out" / "notes.txt").write_text("mine")
>>> with atomic_directory(d / "out", force=True) as tmp:     # now it holds a file of yours
...     pass
Traceback (most recent call last):
...
intsim.core.errors.ConfigError: refusing to replace ...: 'notes.txt' was not written by intsim; ...
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

try:  # POSIX advisory locks; without them (Windows) runs are not serialized
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "RECORD", "atomic_write_bytes", "atomic_write_text", "atomic_directory", "check_output_target",
    "check_output_location", "owned_listing", "Listing", "sha256_file",
]

RECORD = ".intsim-output.json"
"""Name of the record intsim writes into every output directory it builds (not golden suites, whose
``manifest.json`` plays that role): JSON ``{"format": "intsim-output", "format_version": 1,
"files": {relative path: {"bytes": n, "sha256": hex}}}`` covering every other file."""

RECORD_FORMAT = "intsim-output"

Listing = dict[str, tuple[int, str]]
"""Files intsim wrote in a directory: relative POSIX path -> (size in bytes, SHA-256 hex digest)."""

_fault_hook: Callable[[str], None] | None = None  # tests inject failures and kills at each named step


def _step(name: str) -> None:
    if _fault_hook is not None:
        _fault_hook(name)


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms cannot open directories; the data are still written
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync of the directory).

    An existing ``path`` is replaced only if it is a regular file; a directory, a symbolic link or
    another special file at ``path`` raises :class:`~intsim.core.errors.ConfigError` and nothing is written.
    ``durable=False`` skips both fsyncs: the file is still whole or absent after a killed process
    (the rename is atomic), but a power failure may leave it empty or lose it; only for files whose
    reader checks them and can recreate them (a sweep's per-point parts).
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: exists and is not a regular file; not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_path(path.parent, directory=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically, with ``\\n`` line endings on every platform."""
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------------
# records: which files of a directory intsim wrote
# --------------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk_files(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every entry below ``root`` except directories: (relative POSIX path, path, lstat). Symbolic
    links (to files or directories) are reported, never followed."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(base / d)):
            p = base / name
            yield p.relative_to(root).as_posix(), p, os.lstat(p)


def _record_bytes(files: Mapping[str, tuple[int, str]]) -> bytes:
    doc = {"format": RECORD_FORMAT, "format_version": 1,
           "files": {k: {"bytes": n, "sha256": h} for k, (n, h) in sorted(files.items())}}
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode("ascii")


def write_record(root: Path) -> None:
    """Write :data:`RECORD` in ``root`` listing every regular file below it (sizes and SHA-256)."""
    files: Listing = {}
    for rel, p, st in _walk_files(root):
        if rel == RECORD:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{p}: an output directory may hold only regular files")
        files[rel] = (st.st_size, sha256_file(p))
    (root / RECORD).write_bytes(_record_bytes(files))


def _read_json(path: Path, limit: int = 64 << 20) -> Any:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with open(path, "rb") as fh:
            return json.loads(fh.read(limit + 1))
    except (OSError, ValueError, RecursionError):
        return None


def _record_listing(root: Path) -> Listing | None:
    doc = _read_json(root / RECORD)
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT or not isinstance(doc.get("files"), dict):
        return None
    out: Listing = {}
    for rel, meta in doc["files"].items():
        if not (isinstance(rel, str) and isinstance(meta, dict) and type(meta.get("bytes")) is int
                and isinstance(meta.get("sha256"), str)):
            return None
        out[rel] = (meta["bytes"], meta["sha256"])
    out[RECORD] = ((root / RECORD).stat().st_size, sha256_file(root / RECORD))
    return out


OwnedFn = Callable[[Path], "Listing | None"]


def owned_listing(root: Path, extra: OwnedFn | None = None) -> Listing | None:
    """The files intsim recorded writing in ``root`` (its :data:`RECORD`, or what ``extra`` recognizes,
    e.g. a golden suite's manifest), or None if ``root`` carries no valid record."""
    listing = _record_listing(root)
    if listing is None and extra is not None:
        listing = extra(root)
    return listing


def _foreign(root: Path, listing: Listing | None) -> str | None:
    """The first entry below ``root`` intsim did not write (or that changed since), described; None
    if every entry matches ``listing``."""
    for rel, p, st in _walk_files(root):
        if not stat.S_ISREG(st.st_mode):
            return f"{rel!r} is not a regular file"
        if listing is None or rel not in listing:
            return f"{rel!r} was not written by intsim"
        size, digest = listing[rel]
        if st.st_size != size or sha256_file(p) != digest:
            return f"{rel!r} was modified after intsim wrote it"
    return None


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def check_output_location(target: str | os.PathLike) -> bool:
    """The checks of where every output directory goes, before its contents are looked at: raise
    :class:`~intsim.core.errors.ConfigError` if ``target`` is the current directory or one of its
    parents, a symbolic link, or exists and is not a directory. Returns whether it exists (a directory).
    """
    target = Path(os.path.abspath(target))
    real, cwd = Path(os.path.realpath(target)), Path(os.path.realpath(Path.cwd()))
    if real == cwd or real in cwd.parents or target.parent == target:
        raise ConfigError(f"--out {target}: refusing to write the current directory or one of its parents; "
                          "choose a new directory")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"--out {target}: is a symbolic link; intsim does not replace links, "
                          "give the directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--out {target}: exists and is not a directory")
    return True


def check_output_target(target: str | os.PathLike, force: bool = False, owned: OwnedFn | None = None) -> Listing | None:
    """Raise :class:`~intsim.core.errors.ConfigError` unless ``target`` may be written as an output directory.

    Allowed: ``target`` does not exist, or is an empty directory, or (with ``force``) is a directory
    whose every file intsim wrote and recorded (see :func:`owned_listing`) and that nobody changed
    since. Returns the listing of the files that a replacement will remove (None when there are none).
    """
    target = Path(os.path.abspath(target))
    if not check_output_location(target) or _is_empty_dir(target):
        return None
    if not force:
        raise ConfigError(f"--out {target}: already exists; pass --force (force=True) to replace it")
    listing = owned_listing(target, owned)
    problem = _foreign(target, listing)
    if problem is not None:
        raise ConfigError(f"refusing to replace {target}: {problem}; only a directory holding exactly what "
                          "intsim wrote there is replaced. Move your files or choose another output directory")
    return listing


def _remove_owned(root: Path, listing: Listing | None) -> list[str]:
    """Delete the files of ``listing`` below ``root`` that still match it, then the empty directories.
    Returns the entries left behind (not intsim's, or changed)."""
    left: list[str] = []
    for rel, p, st in list(_walk_files(root)):
        meta = listing.get(rel) if listing is not None else None
        if stat.S_ISREG(st.st_mode) and meta is not None and st.st_size == meta[0] and sha256_file(p) == meta[1]:
            p.unlink()
        else:
            left.append(rel)
    for dirpath, _, _ in sorted(os.walk(root, followlinks=False), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
    return left


# --------------------------------------------------------------------------------------------------
# the swap
# --------------------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2_fn() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _renameat2_fn()


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False if the system or file system does not support it."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


_BUILDING: set[tuple[int, int]] = set()  # (device, inode) of this process's unfinished temporary directories


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive advisory lock on the directory ``path`` (yields False if not blocking and busy).

    A directory this process is itself building (an output written inside another output, like
    the demo's golden suite) is private to this run: it is not locked again, which would wait on
    the process's own lock."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) in _BUILDING:
        os.close(fd)
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.intsim-"


def _leftovers(target: Path) -> list[Path]:
    prefix = _temp_prefix(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return sorted(target.parent / n for n in names if n.startswith(prefix) and n.endswith((".tmp", ".old")))


def _busy(path: Path) -> bool:
    """Whether a live run (this process or another) is building ``path``."""
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) in _BUILDING:
            return True
        with _locked(path, blocking=False) as got:
            return not got
    except OSError:
        return False


def _clean_leftovers(target: Path, owned: OwnedFn | None) -> None:
    """Restore or remove what killed runs left beside ``target``. Called under the parent lock."""
    for p in _leftovers(target):
        if not p.is_dir() or p.is_symlink() or _busy(p):
            continue
        if p.name.endswith(".old") and not os.path.lexists(target):
            os.rename(p, target)  # a run died between its two renames: the old output goes back
            continue
        listing = owned_listing(p, owned)
        if listing is None and not p.name.endswith(".old"):
            shutil.rmtree(p, ignore_errors=True)  # a build that never completed: all of it is ours
        else:
            left = _remove_owned(p, listing)
            if left:
                print(f"intsim: warning: left {len(left)} file(s) that intsim did not write in {p} "
                      f"(first: {left[0]!r})", file=sys.stderr)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, force: bool = False, *, owned: OwnedFn | None = None,
                     record: bool = True) -> Iterator[Path]:
    """Build an output directory in a temporary sibling and swap it into ``target`` when complete.

    The body writes into the yielded directory. On normal exit, :data:`RECORD` is written there
    (unless ``record=False``: the caller's own record, such as a golden suite's manifest, lists
    the files; pass ``owned`` to recognize it), every file is fsynced and the directory replaces
    ``target`` under the rules of the module docstring (:func:`check_output_target`, checked at the
    start and again at the swap). On an exception the temporary directory is removed and ``target``
    is untouched. Raises :class:`~intsim.core.errors.ConfigError` when ``target`` may not be replaced or
    another run is writing it, and ``OSError`` (naming the file) when the file system refuses.
    """
    target = Path(os.path.abspath(target))
    check_output_target(target, force, owned)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent):
        _clean_leftovers(target, owned)
        for p in _leftovers(target):
            if _busy(p):
                pid = p.name[len(_temp_prefix(target)):].split("-", 1)[0]
                raise ConfigError(f"--out {target}: another intsim run (process {pid}) is writing it; "
                                  "wait for it to finish or choose another output directory")
        tmp = parent / f"{_temp_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}.tmp"
        os.mkdir(tmp, 0o755)
    lock_fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    st = os.fstat(lock_fd)
    building = (st.st_dev, st.st_ino)
    try:
        if fcntl is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        _BUILDING.add(building)
        _step("created")
        yield tmp
        _step("built")
        if record:
            write_record(tmp)
        for _, p, st in _walk_files(tmp):
            if stat.S_ISREG(st.st_mode):
                _fsync_path(p)
        for dirpath, _, _ in os.walk(tmp):
            _fsync_path(Path(dirpath), directory=True)
        _step("synced")
        with _locked(parent):
            _step("locked")
            listing = check_output_target(target, force, owned)  # again: the target may have changed
            _swap(tmp, target, listing)
    except BaseException:
        if _same_dir(lock_fd, tmp):  # still our unfinished build (after an exchange it names the old output)
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _BUILDING.discard(building)
        os.close(lock_fd)


def _same_dir(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _swap(tmp: Path, target: Path, listing: Listing | None) -> None:
    parent = target.parent
    if not os.path.lexists(target):
        if not _rename2(tmp, target, _RENAME_NOREPLACE):
            os.rename(tmp, target)
        _step("renamed")
        _fsync_path(parent, directory=True)
        return
    if listing is None:  # an empty directory: nothing to keep, and rmdir refuses if that changed
        os.rmdir(target)
        _step("emptied")
        if not _rename2(tmp, target, _RENAME_NOREPLACE):
            os.rename(tmp, target)
        _step("renamed")
        _fsync_path(parent, directory=True)
        return
    if _rename2(tmp, target, _RENAME_EXCHANGE):
        old = tmp  # the temporary name now holds the old output
        _step("exchanged")
    else:
        old = tmp.with_suffix(".old")
        os.rename(target, old)
        _step("moved_old")
        os.rename(tmp, target)
        _step("renamed")
    _fsync_path(parent, directory=True)
    left = _remove_owned(old, listing)
    _step("removed_old")
    if left:
        print(f"intsim: warning: the replaced output held {len(left)} file(s) intsim did not write; "
              f"they were kept in {old} (first: {left[0]!r})", file=sys.stderr)
