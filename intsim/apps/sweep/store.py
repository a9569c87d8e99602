"""The sweep directory (``--out DIR``): its file names, the point keys, the parts (one Parquet
file per finished point, what a rerun resumes from), the record ``sweep.json`` of the files intsim
wrote there, and the checks and lock of :func:`open_sweep_dir` (a directory holding anything intsim
did not write is refused)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ... import __version__
from ...core.errors import ConfigError
from ...core.fileio import RECORD as OUTPUT_RECORD
from ...core.fileio import atomic_write_bytes, check_output_location, check_output_target, owned_listing, sha256_file
from .deps import pyarrow_modules
from .kinds import PointResult, SweepSpec

__all__ = ["RESULTS", "TIMINGS", "SUMMARY", "RECORD", "PARTS", "SUITE", "point_key", "part_bytes", "read_part",
           "read_record", "write_record", "open_sweep_dir"]

RESULTS = "results.parquet"
TIMINGS = "timings.parquet"
SUMMARY = "README.md"
RECORD = "sweep.json"
PARTS = "parts"
SUITE = "suite"
_RECORD_FORMAT = "intsim-sweep"
_PART_META = b"intsim-sweep-part"
_PART_RE = re.compile(r"[0-9a-f]{32}\.parquet")
_PART_TMP_RE = re.compile(r"\.[0-9a-f]{32}\.parquet\.[^/]+\.tmp")


def point_key(kind: str, params: Mapping[str, Any], identity: Mapping[str, Any]) -> str:
    """The stable key of a point (32 hex digits): a SHA-256 of the kind, the parameters, the data
    identity and the intsim version; it names the point's part file."""
    doc = {"kind": kind, "params": dict(params), "identity": dict(identity), "version": __version__}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


def part_bytes(key: str, row: dict[str, Any], result: PointResult) -> bytes:
    """The Parquet bytes of a finished point's part (``parts/<key>.parquet``): its row and blobs."""
    pa, pq = pyarrow_modules()
    names = sorted(result.blobs)
    table = pa.table({"key": [key], "row": [json.dumps(row)],  # figures in the kind's order
                      "blob_names": pa.array([names], pa.list_(pa.string())),
                      "blobs": pa.array([[result.blobs[n] for n in names]], pa.list_(pa.binary()))},
                     metadata={_PART_META: key.encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def read_part(path: Path) -> tuple[dict[str, Any], PointResult] | None:
    """A part's (row, result), or None if ``path`` is not an intact part of the key it is named after."""
    pa, pq = pyarrow_modules()
    key = path.name.split(".", 1)[0]
    try:
        t = pq.read_table(path)
        if (t.schema.metadata or {}).get(_PART_META) != key.encode() or t.num_rows != 1:
            return None
        d = t.to_pylist()[0]
        row = json.loads(d["row"])
        return row, PointResult(row["figures"], dict(zip(d["blob_names"], d["blobs"], strict=True)))
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def read_record(root: Path) -> dict[str, Any]:
    """The record ``sweep.json`` of a sweep directory, or ``{}`` if it has none (or not a sweep's)."""
    try:
        doc = json.loads((root / RECORD).read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("format") == _RECORD_FORMAT else {}


def _foreign(root: Path) -> str | None:
    """The first entry of a sweep directory intsim did not write (described), or None."""
    from ...golden.suite import suite_listing

    rec = read_record(root)
    known = {rel: meta for key in ("pending", "files") for rel, meta in (rec.get(key) or {}).items()
             if isinstance(meta, dict)}
    pending = rec.get("pending") or {}
    suite = suite_listing(root / SUITE) if (root / SUITE).is_dir() else None
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        if rel_dir == "." and any(d.startswith(f".{SUITE}.intsim-") for d in dirnames):
            dirnames[:] = [d for d in dirnames if not d.startswith(f".{SUITE}.intsim-")]  # fileio's leftovers
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(base / d)):
            p = base / name
            rel = p.relative_to(root).as_posix()
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                return f"{rel!r} is not a regular file"
            if rel == RECORD and rec:
                continue
            if rel_dir == PARTS and (_PART_TMP_RE.fullmatch(name) or (_PART_RE.fullmatch(name) and read_part(p))):
                continue
            if rel_dir == "." and name.startswith(".") and name.endswith(".tmp") and \
                    name[1:].split(".", 1)[0] in {"sweep", "results", "timings", "README"}:
                continue  # a temporary file of atomic_write_bytes, left by a killed run
            if rel.startswith(f"{SUITE}/") and suite is not None:
                meta = suite.get(rel[len(SUITE) + 1:])
                if meta is not None and meta[0] == st.st_size and sha256_file(p) == meta[1]:
                    continue
            ok = False
            for cand in (known.get(rel), pending.get(rel)):
                if isinstance(cand, dict) and cand.get("bytes") == st.st_size and sha256_file(p) == cand.get("sha256"):
                    ok = True
                    break
            if not ok:
                return f"{rel!r} was not written by intsim" if rel not in known else \
                    f"{rel!r} was modified after intsim wrote it"
    return None


def _remove_owned(root: Path) -> None:
    """Remove everything of a sweep directory that :func:`_foreign` accepts (called after it)."""
    from ...golden.suite import suite_listing

    suite = root / SUITE
    if suite.is_dir():
        listing = suite_listing(suite) or {}
        for rel in listing:
            with contextlib.suppress(FileNotFoundError):
                (suite / rel).unlink()
        for dirpath, _, _ in sorted(os.walk(suite), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    for p in sorted(root.glob(f".{SUITE}.intsim-*")):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    for p in sorted((root / PARTS).glob("*")) if (root / PARTS).is_dir() else []:
        p.unlink()
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name != RECORD:
            p.unlink()
    with contextlib.suppress(FileNotFoundError):
        (root / RECORD).unlink()


@contextlib.contextmanager
def open_sweep_dir(out: Path, force: bool) -> Iterator[Path]:
    """Check ``out`` (absent, empty, an intsim sweep directory, or with ``force`` the output of another
    intsim command, which is removed file by file), create it and hold a lock on it for the run
    (on its ``parts`` folder); yields its absolute path."""
    out = Path(os.path.abspath(out))
    check_output_location(out)
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).exists() and not (out / PARTS).is_dir():
        if owned_listing(out) is None:
            raise ConfigError(f"--out {out}: holds files intsim did not write (it is not a sweep directory); "
                              "choose a new directory")
        if not force:
            raise ConfigError(f"--out {out}: holds the output of another intsim command; pass --force to "
                              "replace it, or choose another directory")
        listing = check_output_target(out, force=True) or {}  # every file is intsim's and unchanged
        for rel in sorted(listing, key=lambda r: r == OUTPUT_RECORD):
            with contextlib.suppress(FileNotFoundError):
                (out / rel).unlink()
        for dirpath, _, _ in sorted(os.walk(out), key=lambda w: -len(w[0])):
            if Path(dirpath) != out:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    fd = os.open(out / PARTS, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except BlockingIOError:
            raise ConfigError(f"--out {out}: another intsim sweep is writing it; wait for it to finish or "
                              "choose another output directory") from None
        problem = _foreign(out)
        if problem is not None:
            raise ConfigError(f"--out {out}: {problem}; intsim sweep writes only into a new directory or one it "
                              "wrote. Move your files or choose another output directory")
        if force:
            _remove_owned(out)
            (out / PARTS).mkdir(exist_ok=True)
        for p in (out / PARTS).iterdir():  # temporary files of parts a killed run was writing
            if _PART_TMP_RE.fullmatch(p.name):
                p.unlink()
        yield out
    finally:
        os.close(fd)


def write_record(out: Path, files: Mapping[str, bytes], spec: SweepSpec, stage: str) -> None:
    """``sweep.json``, the record of the files intsim wrote in ``out`` (besides the parts, which carry
    their own key, and the golden suite, which has its manifest). With ``stage="pending"`` the files
    about to be written are listed as pending next to their current versions, so that a run killed
    while writing them leaves a directory the next run still recognizes; ``"done"`` lists them."""
    rec = read_record(out)
    old = {k: v for k, v in (rec.get("files") or {}).items() if (out / k).exists()}
    new = {k: {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in files.items()}
    doc = {"format": _RECORD_FORMAT, "format_version": 1, "generator": {"name": "intsim", "version": __version__},
           "kind": spec.kind.name, "spec": spec.text.decode("utf-8", "replace"),
           "files": {**old, **new} if stage == "done" else old,
           "pending": new if stage == "pending" else {}}
    atomic_write_bytes(out / RECORD, (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode())


