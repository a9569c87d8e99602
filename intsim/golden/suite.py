"""Golden suites on disk: generate, load (with every integrity check) and verify.

Layout of a suite directory::

    manifest.json               what everything is (see below)
    spec.toml                   the spec it was generated from (when generated from a file)
    <case>/<tensor>.npy         inputs and outputs, NPY 1.0, little-endian, C order
    <case>/<tensor>.hex         the same values as $readmemh text (intsim.golden.hexfmt)
    <case>/taps/<tap>.npy|.hex  intermediate registers (accumulator traces, flags, ...)

``manifest.json`` (JSON, sorted keys, one-space indent, ``\\n`` line ends, ASCII, no
timestamps or host names) holds: ``format`` (``"intsim-golden"``), ``format_version``
(1), ``generator`` (intsim's version), ``suite`` (name, seed, description), ``spec``
(the copied spec's path or null), ``hex_format`` (the word format in words),
``cases`` (per case: name, operator, seed, shape, full config with every default,
input distributions (an input read from a ``.npy`` file: ``{"dist": "file", "file": path as
the spec wrote it, "sha256": ..., "bytes": ...}`` of the file read), ``raises`` and the ``tensors``: name, role
input/output/tap, shape, dtype, type, bits, signed, digits per hex word, and the
two file paths), ``files`` (path -> sha256 and byte size, for every file) and
``content_sha256`` (SHA-256 of the manifest serialized the same way without that
field). Everything is derived from the spec and intsim's arithmetic, so generating
a spec twice, on any machine, gives byte-identical suites.

Reading refuses paths that leave the suite (absolute, ``..``, symbolic links), and
any missing, truncated or modified file raises
:class:`~intsim.core.errors.FileFormatError` naming the file and the problem. The manifest
is untrusted data: every field is checked for type and range before it is used (case
and tensor names are single safe path components), only regular files are read (a
FIFO, device or directory is refused, never opened for a blocking read), and every
declared size is checked against the caps of :mod:`intsim.golden.npyio` before
anything is allocated.

>>> import tempfile, pathlib
>>> from intsim.golden.spec import parse_spec
>>> spec = parse_spec('''
... [[case]]
... name = "tiny"
... operator = "matmul"
... shape = { M = 2, K = 3, N = 2 }
... config = { overflow = "wrap" }
... ''')
>>> out = pathlib.Path(tempfile.mkdtemp()) / "suite"
>>> generate_suite(spec, out).cases
1
>>> verify_suite(out).ok
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from ..core.errors import ConfigError, FileFormatError, IntsimError
from ..core.fileio import Listing, atomic_directory
from ..core.inttype import IntType
from .datagen import generate
from .hexfmt import format_memh, hex_digits, parse_memh
from .npyio import (
    MAX_ELEMENTS,
    MAX_FILE_BYTES,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_NDIM,
    check_elements,
    npy_bytes,
    npy_from_bytes,
    open_regular,
    read_file,
)
from .operators import Case, OpRun, TensorDecl, get_operator
from .spec import CaseSpec, SuiteSpec, check_name, load_spec

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MANIFEST", "generate_suite", "GenerateReport", "load_suite", "Suite",
    "SuiteCase", "verify_suite", "VerifyReport", "CaseCheck", "manifest_bytes",
]

FORMAT = "intsim-golden"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPEC_COPY = "spec.toml"
HEX_FORMAT = ("$readmemh text: one word per line, row-major (C) order, each word the value in two's complement "
              "masked to its type's bits, written as exactly ceil(bits/4) lower-case hex digits, zero-padded, "
              "no 0x prefix, no comments, no @address lines, \\n line endings; line n holds element n-1")


def _version() -> str:
    from .. import __version__

    return str(__version__)


def manifest_bytes(obj: Mapping[str, Any]) -> bytes:
    """The canonical serialization: sorted keys, one-space indent, ASCII, a final newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def _content_hash(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(manifest_bytes(body)).hexdigest()


# --------------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateReport:
    """What :func:`generate_suite` wrote: the directory, number of cases and files, total bytes."""

    out: Path
    cases: int
    files: int
    bytes: int


def _write(root: Path, rel: str, data: bytes, files: dict[str, dict[str, Any]]) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as fh:  # the directory is renamed into place only when complete
        fh.write(data)
    files[rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def suite_listing(root: Path) -> Listing | None:
    """The files a golden suite's ``manifest.json`` says intsim wrote in ``root`` (with the manifest
    itself), or None if ``root`` holds no intact intsim manifest. :func:`intsim.core.fileio.atomic_directory`
    uses it to recognize a suite that ``generate --force`` may replace."""
    path = root / MANIFEST
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > (256 << 20):
            return None
        data = path.read_bytes()
        doc = json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("files"), dict)):
        return None
    if doc.get("content_sha256") != _content_hash(doc):
        return None  # edited by hand: not what intsim wrote
    listing: Listing = {MANIFEST: (len(data), hashlib.sha256(data).hexdigest())}
    for rel, meta in doc["files"].items():
        if not (isinstance(rel, str) and isinstance(meta, dict) and type(meta.get("bytes")) is int
                and isinstance(meta.get("sha256"), str)):
            return None
        listing[rel] = (meta["bytes"], meta["sha256"])
    return listing


def _tensor_files(case: Case, decl: TensorDecl, arr: np.ndarray, root: Path,
                  files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    where = f"case {case.name!r}: {decl.role} {decl.name!r}"
    check_name(decl.name, f"{where}: name")
    arr = np.asarray(arr)
    if tuple(arr.shape) != tuple(decl.shape) or arr.dtype != decl.type.dtype:
        raise RuntimeError(f"{where}: operator returned {arr.dtype} {arr.shape}, declared "
                           f"{decl.type.dtype} {decl.shape}")  # an adapter bug, not a user error
    if arr.size and (int(arr.min()) < decl.type.min or int(arr.max()) > decl.type.max):
        raise ConfigError(f"{where}: values do not fit the declared word type {decl.type.name}")
    base = f"{case.name}/taps/{decl.name}" if decl.role == "tap" else f"{case.name}/{decl.name}"
    _write(root, base + ".npy", npy_bytes(arr), files)
    _write(root, base + ".hex", format_memh(arr, decl.type), files)
    return {"name": decl.name, "role": decl.role, "shape": list(decl.shape), "dtype": arr.dtype.name,
            "type": decl.type.name, "bits": decl.type.bits, "signed": decl.type.signed,
            "hex_digits": hex_digits(decl.type), "layout": "row-major", "npy": base + ".npy", "hex": base + ".hex"}


def make_inputs(case: Case, files: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The input tensors of a case, drawn from their distributions with the case seed; an input given as
    a file (``{"dist": "file"}``) takes its values from ``files`` (input name -> array, as
    :attr:`intsim.golden.spec.SuiteSpec.file_inputs` holds them for the case)."""
    out = {}
    for d in case.input_decls:
        if case.inputs[d.name].get("dist") == "file":
            if files is None or d.name not in files:
                raise ConfigError(f"case {case.name!r}: input {d.name} comes from the file "
                                  f"{case.inputs[d.name].get('file')!r}, which was not read (build the spec with "
                                  "load_spec, parse_spec or spec_from_dict, which read it)")
            out[d.name] = files[d.name]
        else:
            out[d.name] = generate(d.type, d.shape, case.inputs[d.name], case.seed, d.name)
    return out


def _in_case(case: Case, exc: IntsimError) -> IntsimError:
    """The same error, its message prefixed with the case (unless it already names it)."""
    tag = f"case {case.name!r}"
    if tag in str(exc):
        return exc
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    new.args = (f"{tag} (operator {case.operator}): {exc}",)
    return new


def _run(case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:
    try:
        run = get_operator(case.operator).run(case, inputs)
    except IntsimError as exc:
        raise _in_case(case, exc) from exc
    names = [d.name for d in case.input_decls] + [d.name for d, _ in run.outputs]
    taps = [d.name for d, _ in run.taps]
    if len(set(names)) != len(names) or len(set(taps)) != len(taps):
        raise RuntimeError(f"case {case.name!r}: operator {case.operator!r} returned duplicate tensor names")
    return run


def _owned_with_spec(spec: SuiteSpec, out: Path) -> Callable[[Path], Listing | None]:
    """:func:`suite_listing`, except that when the spec being generated is the suite's own copy
    (``generate golden/spec.toml --out golden`` after editing it), that file counts as the suite's
    as it stands now: its bytes were read into ``spec.text`` and go back into the new suite
    verbatim, so replacing it loses nothing. Every other file must still be as intsim wrote it."""
    copy = out / SPEC_COPY
    try:
        own = (spec.text is not None and os.path.lexists(copy)
               and os.path.realpath(spec.source) == os.path.realpath(copy) and copy.read_bytes() == spec.text)
    except OSError:
        own = False

    def owned(root: Path) -> Listing | None:
        listing = suite_listing(root)
        if listing is not None and own and SPEC_COPY in listing:
            listing[SPEC_COPY] = (len(spec.text), hashlib.sha256(spec.text).hexdigest())
        return listing
    return owned


def generate_suite(spec: SuiteSpec | str | os.PathLike, out: str | os.PathLike, *, force: bool = False,
                   progress: Callable[[str], object] | None = None) -> GenerateReport:
    """Compute every case of ``spec`` and write the suite to ``out`` atomically.

    ``spec`` is a :class:`~intsim.golden.spec.SuiteSpec` or the path of a TOML spec. The
    suite is built in a temporary sibling of ``out`` and swapped into place only when
    complete (:func:`intsim.core.fileio.atomic_directory`); on any error nothing is left behind and
    an existing ``out`` is untouched. An existing non-empty ``out`` is refused unless ``force``,
    and even then unless it holds exactly an intsim golden suite: every file listed in its
    manifest, unchanged, and nothing else. ``progress``, if given, is called with each case name.
    """
    if not isinstance(spec, SuiteSpec):
        spec = load_spec(spec)
    out = Path(out)
    files: dict[str, dict[str, Any]] = {}
    cases = []
    with atomic_directory(out, force=force, owned=_owned_with_spec(spec, out), record=False) as tmp:
        if spec.text is not None:
            _write(tmp, SPEC_COPY, spec.text, files)
        for case in spec.cases:
            if progress is not None:
                progress(case.name)
            inputs = make_inputs(case, spec.file_inputs.get(case.name))
            run = _run(case, inputs)
            tensors = [_tensor_files(case, d, inputs[d.name], tmp, files) for d in case.input_decls]
            tensors += [_tensor_files(case, d, a, tmp, files) for d, a in run.outputs]
            tensors += [_tensor_files(case, d, a, tmp, files) for d, a in run.taps]
            rec = case.record()
            rec["raises"] = run.raises
            rec["tensors"] = tensors
            cases.append(rec)
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "generator": {"name": "intsim", "version": _version()},
            "suite": {"name": spec.name, "seed": spec.seed, "description": spec.description},
            "spec": SPEC_COPY if spec.text is not None else None,
            "hex_format": HEX_FORMAT, "cases": cases, "files": files,
        }
        manifest["content_sha256"] = _content_hash(manifest)
        data = manifest_bytes(manifest)
        with open(tmp / MANIFEST, "xb") as fh:
            fh.write(data)
    total = sum(f["bytes"] for f in files.values()) + len(data)
    return GenerateReport(out, len(cases), len(files) + 1, total)


# --------------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------------


def _fail(where: str, problem: str) -> FileFormatError:
    return FileFormatError(f"{where}: {problem}")


_MAX_PATH_CHARS = 1024
_MAX_COMPONENT_BYTES = 255
_SEED_MAX = (1 << 63) - 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TYPE_RE = re.compile(r"u?int[0-9]{1,2}")
_ROLES = ("input", "output", "tap")


def _short(value: Any) -> str:
    """``repr(value)`` cut to 80 characters, for messages about untrusted data."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def safe_path(root: Path, rel: Any, where: str) -> Path:
    """``root / rel`` if ``rel`` is a plain relative path inside ``root``; FileFormatError otherwise.

    Refused: non-strings, empty paths, paths longer than 1024 characters or with a
    component longer than 255 bytes, absolute paths, drive letters, backslashes, NUL and
    other control characters, text that is not valid UTF-8, ``.``/``..`` components, and
    any component that is a symbolic link.
    """
    if not isinstance(rel, str) or not rel or "\\" in rel or any(ord(c) < 32 or c == "\x7f" for c in rel):
        raise _fail(where, f"invalid file path {_short(rel)}")
    try:
        parts = [part.encode("utf-8") for part in rel.split("/")]
    except UnicodeEncodeError:
        raise _fail(where, f"invalid file path {_short(rel)} (not valid UTF-8)") from None
    if len(rel) > _MAX_PATH_CHARS or any(len(part) > _MAX_COMPONENT_BYTES for part in parts):
        raise _fail(where, f"file path {_short(rel)} is too long (more than {_MAX_PATH_CHARS} characters, or a "
                    f"component of more than {_MAX_COMPONENT_BYTES} bytes); refused")
    p = PurePosixPath(rel)
    if p.is_absolute() or PureWindowsPath(rel).drive or any(part in ("", ".", "..") for part in rel.split("/")):
        raise _fail(where, f"file path {_short(rel)} leaves the suite directory (absolute or with '.'/'..'); refused")
    cur = root
    for part in p.parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except (FileNotFoundError, NotADirectoryError):
            break  # missing: reported when the file is read
        except OSError as exc:
            raise _fail(where, f"file path {rel!r} cannot be checked ({exc.strerror or exc})") from None
        if stat.S_ISLNK(st.st_mode):
            raise _fail(where, f"file path {rel!r} goes through a symbolic link ({cur}); refused")
    cur = root.joinpath(*p.parts)
    try:
        cur.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        raise _fail(where, f"file path {rel!r} resolves outside the suite directory; refused") from None
    return cur


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise _fail(where, f"must be a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise _fail(where, f"missing key {key!r}")
    v = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
        raise _fail(where, f"key {key!r} has the wrong type ({type(v).__name__})")
    return v


def _int_in(obj: Any, key: str, lo: int, hi: int, where: str) -> int:
    v = _get(obj, key, int, where)
    if not lo <= v <= hi:
        raise _fail(where, f"key {key!r}: {_short(v)} is out of range ({lo} to {hi})")
    return v


def _name(value: Any, where: str) -> str:
    """A case or tensor name: one safe path component (:func:`intsim.golden.spec.check_name`)."""
    try:
        check_name(value, where)
    except ConfigError as exc:
        raise FileFormatError(str(exc)) from None
    if not (value.isascii() and value.isprintable()):
        raise _fail(where, f"must be letters, digits, '_', '.', '-', got {_short(value)}")
    return value


def _depth_exceeds(doc: Any, limit: int) -> bool:
    """Whether JSON data nest arrays/objects more than ``limit`` levels deep (no recursion)."""
    stack = [(doc, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children = list(v.values())
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text[:40]} is out of range")
    return v


def _parse_manifest(raw: bytes, where: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(where, f"not UTF-8 ({exc})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise _fail(where, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg} "
                    "(truncated or corrupted?)") from None
    except RecursionError:
        raise _fail(where, f"invalid manifest: arrays/objects nested more than {MAX_JSON_DEPTH} levels deep "
                    "(the cap)") from None
    except ValueError as exc:
        raise _fail(where, f"invalid JSON ({exc})") from None
    if _depth_exceeds(doc, MAX_JSON_DEPTH):
        raise _fail(where, f"invalid manifest: arrays/objects nested more than {MAX_JSON_DEPTH} levels deep "
                    "(the cap)")
    return doc


@dataclass
class SuiteCase:
    """One case of a loaded suite: its manifest record and tensor declarations with file paths."""

    record: dict[str, Any]
    tensors: list[tuple[TensorDecl, str, str]]  # (declaration, npy path, hex path)

    @property
    def name(self) -> str:
        return self.record["name"]

    def of_role(self, role: str) -> list[tuple[TensorDecl, str, str]]:
        return [t for t in self.tensors if t[0].role == role]


def _read_listed(path: Path, meta: Mapping[str, Any]) -> bytes:
    """A listed file's bytes: a regular file whose size (checked before reading) and SHA-256 match ``meta``."""
    where = str(path)
    with open_regular(path, missing="missing (listed in the manifest)") as (fh, size):
        if size != meta["bytes"]:
            what = "truncated" if size < meta["bytes"] else "longer than listed"
            raise _fail(where, f"{what}: {size} bytes, the manifest lists {meta['bytes']}")
        try:
            data = fh.read(size + 1)
        except OSError as exc:
            raise _fail(where, f"cannot be read ({exc.strerror or exc})") from None
    _check_file(where, data, meta)
    return data


@dataclass
class Suite:
    """A loaded suite whose manifest and file hashes have been checked."""

    root: Path
    manifest: dict[str, Any]
    cases: list[SuiteCase]

    @property
    def name(self) -> str:
        return self.manifest["suite"]["name"]

    def read(self, rel: str) -> bytes:
        """The bytes of a listed file, re-checked against its size and SHA-256."""
        path = safe_path(self.root, rel, str(self.root / MANIFEST))
        return _read_listed(path, self.manifest["files"][rel])

    def tensor(self, decl: TensorDecl, npy: str, hex_path: str) -> np.ndarray:
        """A tensor's values from its ``.npy`` file, checked against its declaration and its hex twin."""
        arr = npy_from_bytes(self.read(npy), self.root / npy)
        if arr.dtype != decl.type.dtype or tuple(arr.shape) != decl.shape:
            raise _fail(str(self.root / npy), f"holds {arr.dtype} {tuple(arr.shape)}, the manifest declares "
                        f"{decl.type.dtype} {decl.shape}")
        words = parse_memh(self.read(hex_path), decl.type, int(arr.size), self.root / hex_path)
        if not np.array_equal(words.reshape(arr.shape), arr.astype(words.dtype)):
            bad = int(np.flatnonzero(words != arr.reshape(-1).astype(words.dtype))[0])
            raise _fail(str(self.root / hex_path), f"line {bad + 1} differs from {npy}: the two files disagree")
        return arr

    def select(self, patterns: Sequence[str] | None) -> list[SuiteCase]:
        """The cases whose names match any of the glob ``patterns`` (all cases for None)."""
        if not patterns:
            return list(self.cases)
        for pat in patterns:
            if not any(fnmatchcase(c.name, pat) for c in self.cases):
                raise ConfigError(f"--case {pat!r} matches no case of suite {self.name!r}; cases: "
                                  + ", ".join(c.name for c in self.cases))
        return [c for c in self.cases if any(fnmatchcase(c.name, p) for p in patterns)]


def _check_file(where: str, data: bytes, meta: Mapping[str, Any]) -> None:
    size = meta["bytes"]
    if len(data) != size:
        what = "truncated" if len(data) < size else "longer than listed"
        raise _fail(where, f"{what}: {len(data)} bytes, the manifest lists {size}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise _fail(where, f"SHA-256 mismatch (the file was modified or corrupted): {digest}, "
                    f"the manifest lists {meta['sha256']}")


def _parse_type(t: Mapping[str, Any], where: str) -> IntType:
    name = _get(t, "type", str, where)
    fields = (_get(t, "bits", int, where), _get(t, "signed", bool, where), _get(t, "dtype", str, where),
              _get(t, "hex_digits", int, where))
    if not _TYPE_RE.fullmatch(name):
        raise _fail(where, f"key 'type': {_short(name)} is not an integer type name such as 'int8' or 'uint4'")
    try:
        it = IntType.parse(name)
    except ConfigError as exc:
        raise _fail(where, f"key 'type': {exc}") from None
    if (it.bits, it.signed, it.dtype.name, hex_digits(it)) != fields:
        raise _fail(where, f"type {it.name} disagrees with bits/signed/dtype/hex_digits")
    return it


def _check_files_table(doc: dict[str, Any], root: Path, where: str) -> dict[str, Any]:
    files = _get(doc, "files", dict, where)
    for rel, meta in files.items():
        safe_path(root, rel, where)
        fw = f"{where}: files[{rel!r}]"
        if not _SHA256_RE.fullmatch(_get(meta, "sha256", str, fw)):
            raise _fail(fw, "key 'sha256' is not 64 lower-case hex digits")
        _int_in(meta, "bytes", 0, MAX_FILE_BYTES, fw)
    return files


def _check_tensor(t: Any, cw: str, root: Path, files: Mapping[str, Any]) -> tuple[TensorDecl, str, str]:
    tw = cw
    tname = _name(_get(t, "name", str, tw), f"{tw}.name")
    role = _get(t, "role", str, tw)
    if role not in _ROLES:
        raise _fail(tw, f"key 'role': unknown role {_short(role)} (one of {', '.join(_ROLES)})")
    shape = _get(t, "shape", list, tw)
    if len(shape) > MAX_NDIM or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_ELEMENTS
                                        for s in shape):
        raise _fail(tw, f"key 'shape': {_short(shape)} is not a list of at most {MAX_NDIM} integers from 0 to "
                    f"{MAX_ELEMENTS}")
    check_elements(tuple(shape), f"{tw}: key 'shape'")
    decl = TensorDecl(tname, role, tuple(shape), _parse_type(t, tw))
    paths = []
    for key in ("npy", "hex"):
        rel = _get(t, key, str, tw)
        safe_path(root, rel, f"{tw}: key {key!r}")
        if not rel.endswith("." + key):
            raise _fail(tw, f"key {key!r}: {_short(rel)} does not end with '.{key}'")
        if rel not in files:
            raise _fail(tw, f"key {key!r}: file {rel!r} is not listed in 'files'")
        paths.append(rel)
    return decl, paths[0], paths[1]


def _check_case_record(rec: Any, pos: int, where: str, root: Path, files: Mapping[str, Any]) -> SuiteCase:
    cw = f"{where}: cases[{pos}]"
    name = _name(_get(rec, "name", str, cw), f"{cw}.name")
    cw = f"{where}: case {name!r}"
    operator = _get(rec, "operator", str, cw)
    if not 0 < len(operator) <= 200:
        raise _fail(cw, f"key 'operator': {_short(operator)} is not an operator name")
    _int_in(rec, "seed", 0, _SEED_MAX, cw)
    for key in ("shape", "config", "inputs"):
        _get(rec, key, dict, cw)
    if "description" in rec:
        _get(rec, "description", str, cw)
    if rec.get("raises") is not None:
        _get(rec, "raises", dict, cw)
    tensors = []
    seen: set[tuple[bool, str]] = set()
    for tpos, t in enumerate(_get(rec, "tensors", list, cw)):
        decl, npy, hx = _check_tensor(t, f"{cw}: tensors[{tpos}]", root, files)
        key = (decl.role == "tap", decl.name)
        if key in seen:
            raise _fail(f"{cw}: tensors[{tpos}]", f"duplicate {decl.role} name {decl.name!r}")
        seen.add(key)
        tensors.append((decl, npy, hx))
    return SuiteCase(rec, tensors)


def load_suite(root: str | os.PathLike, *, check_files: bool = True) -> Suite:
    """Read and check a suite directory's manifest and (with ``check_files``) every file's size and hash.

    Raises :class:`~intsim.core.errors.FileFormatError` naming the file and the problem: a missing or
    invalid manifest, an unsupported format version, a manifest whose content hash does not
    match, a path leaving the suite, or missing, truncated or modified files (all of them are
    listed).

    The manifest is untrusted data (its content hash detects accidents, not forgeries), so every
    field is checked for type and range before it is used, and the message names the field: case
    and tensor names must be single safe path components
    (:func:`intsim.golden.spec.check_name`), seeds integers from 0 to 2**63 - 1, shapes within
    the caps of :mod:`intsim.golden.npyio` (``MAX_NDIM`` dimensions, ``MAX_ELEMENTS``
    elements), file sizes within ``MAX_FILE_BYTES``; the manifest itself must be a regular
    file of at most ``MAX_MANIFEST_BYTES`` bytes nesting at most ``MAX_JSON_DEPTH`` levels.
    Only regular files are read (a FIFO, device, directory or symbolic link is refused).
    """
    root = Path(root)
    mpath = root / MANIFEST
    where = str(mpath)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise _fail(str(root), "not a directory (expected a golden suite): it does not exist") from None
    except OSError as exc:
        raise _fail(str(root), f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _fail(str(root), "not a directory (expected a golden suite)")
    raw = read_file(mpath, max_bytes=MAX_MANIFEST_BYTES,
                    missing="missing: not an intsim golden suite (or an incomplete copy)")
    doc = _parse_manifest(raw, where)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(where, f"not an intsim golden manifest (format is not {FORMAT!r})")
    version = doc.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise _fail(where, f"format_version {_short(version)} is not supported by this intsim "
                    f"(expects {FORMAT_VERSION})")
    stored = _get(doc, "content_sha256", str, where)
    if _content_hash(doc) != stored:
        raise _fail(where, "content hash mismatch: the manifest was modified or corrupted")
    suite = _get(doc, "suite", dict, where)
    _name(_get(suite, "name", str, f"{where}: suite"), f"{where}: suite.name")
    _int_in(suite, "seed", 0, _SEED_MAX, f"{where}: suite")
    if "description" in suite:
        _get(suite, "description", str, f"{where}: suite")
    files = _check_files_table(doc, root, where)
    if doc.get("spec") is not None and _get(doc, "spec", str, where) not in files:
        raise _fail(where, f"key 'spec': file {_short(doc['spec'])} is not listed in 'files'")
    cases = [_check_case_record(rec, pos, where, root, files)
             for pos, rec in enumerate(_get(doc, "cases", list, where))]
    seen: set[str] = set()
    for sc in cases:
        if sc.name.lower() in seen:
            raise _fail(where, f"case {sc.name!r}: duplicate case name (names are compared ignoring letter case, "
                        "since they are directory names)")
        seen.add(sc.name.lower())
    if check_files:
        problems = []
        for rel, meta in sorted(files.items()):
            try:
                _read_listed(root / rel, meta)
            except FileFormatError as exc:
                problems.append(str(exc))
        if problems:
            shown = "\n  ".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise FileFormatError(f"{root}: {len(problems)} damaged file(s):\n  {shown}{more}")
    return Suite(root, doc, cases)



# --------------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------------


@dataclass
class CaseCheck:
    """The verification of one case: ``problems`` is empty when it passed."""

    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    """The result of :func:`verify_suite`: one :class:`CaseCheck` per case."""

    root: Path
    cases: list[CaseCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def failed(self) -> list[CaseCheck]:
        return [c for c in self.cases if not c.ok]


def _fmt(v: int, t: IntType) -> str:
    digits = hex_digits(t)
    return f"0x{v & ((1 << t.bits) - 1):0{digits}x} ({v})"


def _diff(label: str, decl: TensorDecl, expected: np.ndarray, actual: np.ndarray) -> str | None:
    if expected.shape != actual.shape:
        return f"{label}: shape {tuple(actual.shape)}, the suite has {tuple(expected.shape)}"
    bad = np.flatnonzero(expected.reshape(-1) != actual.reshape(-1))
    if not bad.size:
        return None
    p = int(bad[0])
    idx = tuple(int(i) for i in np.unravel_index(p, expected.shape))
    e, a = int(expected.reshape(-1)[p]), int(actual.reshape(-1)[p])
    return (f"{label}: {bad.size} of {expected.size} values differ; first at {idx}: suite {_fmt(e, decl.type)}, "
            f"recomputed {_fmt(a, decl.type)}")


def _check_case(suite: Suite, sc: SuiteCase) -> CaseCheck:
    rec = sc.record
    check = CaseCheck(sc.name)
    where = f"{suite.root / MANIFEST}: case {sc.name!r}"
    try:
        op = get_operator(rec["operator"], where=f"{where}: operator")
    except ConfigError as exc:
        raise FileFormatError(str(exc)) from None
    cs = CaseSpec(name=sc.name, operator=rec["operator"], seed=rec["seed"], shape=rec["shape"],
                  config={k: v for k, v in rec["config"].items() if v is not None}, inputs=rec["inputs"],
                  description=rec.get("description", ""), where=where)
    try:
        case = op.resolve(cs)
    except ConfigError as exc:
        raise FileFormatError(f"{exc} (the manifest's configuration is not valid for this intsim)") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # the manifest is untrusted data: a value of a type no spec could hold is a format error too
        raise FileFormatError(f"{where}: the manifest's configuration is not valid for this intsim "
                              f"({type(exc).__name__}: {_short(str(exc))})") from None
    stored = {k: rec.get(k) for k in ("name", "operator", "seed", "description", "shape", "config", "inputs")}
    if case.record() != stored:
        check.problems.append("configuration: re-validating the manifest's case gives a different full "
                              f"configuration: {json.dumps(case.record(), sort_keys=True)}")
        return check
    declared = {d.name: (d, n, h) for d, n, h in sc.of_role("input")}
    if [d.name for d in case.input_decls] != [d.name for d, _, _ in sc.of_role("input")]:
        check.problems.append(f"inputs: the manifest lists {sorted(declared)}, the operator expects "
                              f"{[d.name for d in case.input_decls]}")
        return check
    inputs = {}
    for d in case.input_decls:
        md, npy, hx = declared[d.name]
        if (md.shape, md.type) != (d.shape, d.type):
            check.problems.append(f"input {d.name}: the manifest declares {md.type} {md.shape}, the operator "
                                  f"expects {d.type} {d.shape}")
            return check
        inputs[d.name] = suite.tensor(md, npy, hx)
        if case.inputs[d.name].get("dist") == "file":
            continue  # read from a file at generation: the stored copy is the reference (spec module docs)
        regen = generate(d.type, d.shape, case.inputs[d.name], case.seed, d.name)
        msg = _diff(f"input {d.name} (regenerated from its seed and distribution)", d, inputs[d.name], regen)
        if msg:
            check.problems.append(msg)
    try:
        run = _run(case, inputs)
    except IntsimError as exc:
        check.problems.append(f"recomputation failed: {type(exc).__name__}: {exc}")
        return check
    for role, produced in (("output", run.outputs), ("tap", run.taps)):
        stored_t = {d.name: (d, n, h) for d, n, h in sc.of_role(role)}
        names = [d.name for d, _ in produced]
        if sorted(names) != sorted(stored_t):
            check.problems.append(f"{role}s: the suite has {sorted(stored_t)}, recomputation gives {sorted(names)}")
            continue
        for d, arr in produced:
            md, npy, hx = stored_t[d.name]
            if (md.shape, md.type) != (d.shape, d.type):
                check.problems.append(f"{role} {d.name}: the suite declares {md.type} {md.shape}, recomputation "
                                      f"gives {d.type} {d.shape}")
                continue
            msg = _diff(f"{role} {d.name}", d, suite.tensor(md, npy, hx), np.asarray(arr))
            if msg:
                check.problems.append(msg)
    if run.raises != rec.get("raises"):
        check.problems.append(f"raises: the suite records {json.dumps(rec.get('raises'), sort_keys=True)}, "
                              f"recomputation gives {json.dumps(run.raises, sort_keys=True)}")
    return check


def verify_suite(root: str | os.PathLike, cases: Sequence[str] | None = None) -> VerifyReport:
    """Check a suite bit for bit: file hashes, then every case recomputed from its manifest entry and inputs.

    For each selected case (glob ``cases``; all by default): the configuration re-validates
    to the same full record; every input equals both its hex twin and a fresh draw from its
    seed and distribution (an input read from a ``.npy`` file at generation has no
    distribution: its stored copy, checked against the manifest's hash and its hex twin, is the
    reference; the source file is not read, see :mod:`intsim.golden.spec`); the operator, run
    on the stored inputs, reproduces every output and tap exactly and raises (or not) exactly
    as recorded. Corrupt or missing files raise :class:`~intsim.core.errors.FileFormatError`;
    differences are returned as per-case problems.
    """
    suite = load_suite(root)
    return VerifyReport(Path(root), [_check_case(suite, sc) for sc in suite.select(cases)])

