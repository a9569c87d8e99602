"""Golden-suite specifications: a TOML file of cases, validated before anything is computed.

A spec is a TOML document (read with the standard library's ``tomllib``)::

    [suite]
    name = "intsim-golden"      # letters, digits, '_', '.', '-'
    seed = 2024                 # base of the per-case seeds (default 0)

    [[case]]
    name = "mm_int8_wrap"       # unique; also the case's directory in the suite
    operator = "matmul"         # a key of intsim.golden.ADAPTERS
    seed = 7                    # optional; default derived from suite.seed and the name
    description = "free text"   # optional
    shape = { M = 4, K = 16, N = 8 }
    config = { a = "int8", b = "int8", acc_bits = 32, overflow = "wrap" }
    inputs = { A = "uniform", B = { dist = "heavy_tailed", outlier_rate = 0.05 } }

``shape``, ``config`` and ``inputs`` are defined by the operator (see
``intsim.golden.operators``); distributions by ``intsim.golden.datagen``. An input may
instead take the values of an integer ``.npy`` file: ``inputs = { A = { file = "A.npy" } }``
(see "Inputs from files" below). Unknown
keys anywhere are errors, so a typo cannot silently fall back to a default. Every
problem raises :class:`~intsim.core.errors.ConfigError` naming the spec, the case and
the key; an unreadable or syntactically invalid file raises
:class:`~intsim.core.errors.FileFormatError` naming the file.

The derived seed of a case without ``seed`` is the first 63 bits of
``sha256(f"{suite_seed}/{name}")`` (little-endian), so it depends only on the
suite seed and the case name, not on the case's position.

Case names become directory names: besides the character rules of :func:`check_name`,
a case may not be named like one of the suite's own files (``manifest.json``,
``spec.toml``) or a Windows device (``con``, ``nul``, ``com1``, ``lpt1.txt``, ...), end
with ``.``, or differ from another case's name only in letter case.

Inputs from files
-----------------

``{ file = "PATH" }`` (optional pins: ``sha256 = "..."``, ``bytes = N``) gives an input the
values of an ``.npy`` file. ``PATH`` is relative to the folder of the spec file
(:func:`load_spec`; for :func:`parse_spec` and :func:`spec_from_dict`, to their ``base``,
default the current directory) or absolute; it may leave that folder (``../data/A.npy``) and
may be a symbolic link, but what it leads to must be a regular file: a directory, FIFO,
device or socket is refused without being opened for a blocking read. The file is read
(:func:`intsim.core.npyfile.read_npy`) after the case's sizes and work have passed the caps
below, so it is never larger than the input it fills: the header is checked before the
data are read, and nothing is ever unpickled. It must hold exactly what the operator
declares for that input, and each error names the spec, the case, the input and the file:

* an integer dtype (any width, byte order, C or Fortran order): a float, bool or complex
  file is a :class:`~intsim.core.errors.DTypeError`;
* the shape the case's ``shape`` keys give that input (e.g. M x K for ``matmul``'s A), with
  as many dimensions: otherwise a :class:`~intsim.core.errors.ShapeError` (the shape keys
  must still be written; they are not inferred from the file);
* every value within the input's word type (``config.a`` of ``matmul``, ``in_type`` of an
  OpResult operator...): otherwise an :class:`~intsim.core.errors.OperandRangeError` naming
  the count and the first offending index and value; the values are then stored at the
  type's dtype (an int16 file feeding an int8 input is fine if every value fits);
* a missing, truncated or corrupted file, an object or structured dtype, a file larger
  than the caps: :class:`~intsim.core.errors.FileFormatError`; a file whose SHA-256 or size
  differs from a pin in the spec: FileFormatError giving both.

The case's ``inputs`` record (and so the suite's manifest) holds
``{"dist": "file", "file": PATH as written, "sha256": ..., "bytes": ...}``, the SHA-256 and
size of the bytes read. The suite stores the values as it stores every input
(``<case>/<input>.npy`` and ``.hex``); the source file is not copied. ``golden verify``
checks such an input against its stored copy and hex twin (and the manifest's hashes), as
every input, but does not read the source file: a suite verifies without it (on another
machine, in CI), and the manifest never makes verify read a file outside the suite. Check a
source file yourself with ``sha256sum`` against the manifest. A spec without file inputs
generates byte-identical suites as before.

Limits
------

Every size a spec declares is checked against these caps while the spec is
validated, before any input is drawn, anything is computed or a file is written;
a spec over a cap raises :class:`~intsim.core.errors.ConfigError` naming the case, the
tensor (or the work) and the cap. Element counts cover every tensor of a case:
inputs, outputs and every tap (``acc_trace`` included). A word costs at most 8 bytes
in ``.npy`` and 17 in ``.hex``, so a suite within the caps writes at most about
800 MiB (64-bit words), much less for narrow ones; the work caps keep a case to
seconds.

==========================  ==============  ==================================================
cap                         value           what it bounds
==========================  ==============  ==================================================
``MAX_SPEC_BYTES``          16 MiB          the spec text
``MAX_NESTING``             32              levels of nested tables and arrays in the spec
``MAX_CASES``               4096            cases in one spec
``MAX_DIM``                 2**20           any one dimension of a shape
``MAX_TENSOR_ELEMENTS``     2**24           elements of any one tensor (input, output, tap)
``MAX_CASE_ELEMENTS``       2**24           elements of all the tensors of one case
``MAX_SUITE_ELEMENTS``      2**25           elements of all the tensors of the suite
``MAX_TRACE_SAMPLES``       4096            ``trace_samples`` of a matmul case
``MAX_CASE_MACS``           2**28           multiply-accumulates of one case
``MAX_SUITE_MACS``          2**30           multiply-accumulates of the suite
``MAX_CASE_STEPS``          2**20           steps emulated one at a time in one case
``MAX_SUITE_STEPS``         2**22           steps emulated one at a time in the suite
``OPRESULT_EXPANSION``      32              output and tap elements per input element assumed
                                            for an OpResult operator before its dry run
==========================  ==============  ==================================================

How each operator declares its sizes and work (:class:`Budget`):

* ``matmul``: A (M*K), B (K*N), bias (N), C, ``overflow`` and ``first_overflow_k``
  (M*N each), ``trace_ij`` (S*2) and ``acc_trace`` (S*ceil(K/k_chunk)) with
  ``S = min(trace_samples, M*N)``; work M*K*N MACs (twice that under a ``raise``
  policy, which runs the product twice) and S*K traced steps (an overflowing output
  is traced one product at a time).
* ``unpack_matmul`` (M, K, N at most 4096 each): upper bounds from the number of floor
  digits L_A, L_B the input types can need at the datapath widths: M' = M*L_A unpacked
  rows, N' = N*L_B columns, K'' = K*L_A*L_B inner lines, up to min(L_A*L_B, K'') low-bit
  accumulators of M'*N'; work 3*M'*K''*N' MACs and (L_A*L_B + 1)*M'*N' reassembly-check
  steps.
* ``requantize``: x, y (the size of x) and each tap of a dry run on one row of zeros
  (shape 1 x ... x C, C the channel dimension), scaled to the size of x.
* the OpResult operators (``ibert.*``, ``ivit.*``, ``illm.*``): first the inputs plus
  ``OPRESULT_EXPANSION`` output and tap elements per input element; once that fits, the
  dry run on zeros of the case's shapes (which validates the configuration) gives the
  exact output and tap shapes, checked in turn.
* any other adapter: the inputs it declares; its outputs and taps are checked against
  the tensor and case caps when its ``run`` returns them, before anything is written.

>>> s = parse_spec('''
... [[case]]
... name = "mm"
... operator = "matmul"
... shape = { M = 2, K = 3, N = 2 }
... config = { overflow = "wrap" }
... ''')
>>> c = s.cases[0]
>>> c.name, c.config["a"], c.config["overflow"], c.inputs["A"]["dist"]
('mm', 'int8', 'wrap', 'uniform')
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, FileFormatError, OperandRangeError, ShapeError
from ..core.npyfile import read_npy
from .keys import (
    MAX_CASE_ELEMENTS,
    MAX_CASE_MACS,
    MAX_CASE_STEPS,
    MAX_CASES,
    MAX_DIM,
    MAX_NESTING,
    MAX_SPEC_BYTES,
    MAX_SUITE_ELEMENTS,
    MAX_SUITE_MACS,
    MAX_SUITE_STEPS,
    MAX_TENSOR_ELEMENTS,
    MAX_TRACE_SAMPLES,
    NAME_RE,
    OPRESULT_EXPANSION,
    RESERVED_NAMES,
    Budget,
    TensorBudget,
    brief,
    check_budget,
    check_case_name,
    check_name,
    over_cap,
)
from .opbase import CaseSpec, derived_seed
from .operators import get_operator

__all__ = [
    "SuiteSpec", "CaseSpec", "load_spec", "parse_spec", "spec_from_dict", "NAME_RE", "check_name", "check_case_name",
    "parse_toml", "RESERVED_NAMES", "Budget", "TensorBudget", "check_budget", "brief",
    "MAX_SPEC_BYTES", "MAX_NESTING", "MAX_CASES", "MAX_DIM", "MAX_TENSOR_ELEMENTS", "MAX_CASE_ELEMENTS",
    "MAX_SUITE_ELEMENTS", "MAX_TRACE_SAMPLES", "MAX_CASE_MACS", "MAX_SUITE_MACS", "MAX_CASE_STEPS",
    "MAX_SUITE_STEPS", "OPRESULT_EXPANSION",
]

# ------------------------------------------------------------------------------------------------
# limits (see the module docs); every one is checked before anything is computed or written
# ------------------------------------------------------------------------------------------------


_SEED_MAX = (1 << 63) - 1
_SUITE_KEYS = {"name", "seed", "description"}
_CASE_KEYS = {"name", "operator", "seed", "description", "shape", "config", "inputs"}



# ------------------------------------------------------------------------------------------------
# budgets: the sizes and work of a case, known before it is computed
# ------------------------------------------------------------------------------------------------


def _check_nesting(doc: Any, source: str) -> None:
    """Refuse tables and arrays nested more than MAX_NESTING levels deep (iteratively: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth >= MAX_NESTING:
            raise ConfigError(f"{source}: at {brief(path)}: tables and arrays nested more than "
                              f"MAX_NESTING = {MAX_NESTING} levels deep")
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for k, v in items:
            if isinstance(v, (Mapping, list, tuple)):
                sub = (f"{path}.{k}" if path else str(k)) if isinstance(value, Mapping) else f"{path}[{k}]"
                stack.append((v, sub, depth + 1))


def _seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _SEED_MAX:
        raise ConfigError(f"{where}: must be an integer from 0 to 2**63 - 1, got {brief(value)}")
    return value


@dataclass(frozen=True)
class SuiteSpec:
    """A validated spec: the suite's name and seed and its cases, resolved by their operators.

    ``cases`` holds :class:`intsim.golden.operators.Case` objects (every default filled in);
    ``text`` is the spec's original bytes when it was read from TOML (copied into the suite);
    ``file_inputs`` the values of the inputs read from files: case name -> input name -> array
    (of the input's dtype, C order), checked against the input's declaration.
    """

    name: str
    seed: int
    cases: tuple[Any, ...]
    description: str = ""
    source: str = "<spec>"
    text: bytes | None = field(default=None, repr=False)
    file_inputs: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table, got {brief(value)}")
    return dict(value)


def _read_file_inputs(case: Any, where: str, base: Path | None) -> tuple[Any, dict[str, np.ndarray]]:
    """Read the inputs of ``case`` that come from files (see "Inputs from files" in the module docs);
    returns the case with each file's SHA-256 and size in its ``inputs`` record, and the arrays."""
    arrays: dict[str, np.ndarray] = {}
    inputs = dict(case.inputs)
    for d in case.input_decls:
        dist = inputs[d.name]
        if dist.get("dist") != "file":
            continue
        rel = dist["file"]
        path = Path(rel) if base is None or os.path.isabs(rel) else base / rel
        label = f"{where}: inputs.{d.name}: {path}"
        try:
            got = read_npy(path, name=label, kinds="iu", shape=d.shape,
                           hint=f"input {d.name} is {d.type.name}; quantize the data to integers first")
        except ShapeError as exc:
            keys = ", ".join(f"{k} = {v}" for k, v in case.shape.items())
            raise ShapeError(f"{exc} (from the case's shape: {keys})") from None
        for key, have in (("sha256", got.sha256), ("bytes", got.bytes)):
            if dist.get(key) is not None and dist[key] != have:
                raise FileFormatError(f"{label}: its {'SHA-256' if key == 'sha256' else 'size'} is {have}, the "
                                      f"spec pins {key} = {dist[key]!r}: the file changed (or the pin is wrong)")
        arr, t = got.array, d.type
        if arr.size:
            bad = (arr < t.min) | (arr > t.max)
            if bad.any():
                flat = np.flatnonzero(bad.reshape(-1))
                idx = tuple(int(i) for i in np.unravel_index(int(flat[0]), arr.shape))
                raise OperandRangeError(f"{label}: {flat.size} values do not fit input {d.name}'s type {t.name} "
                                        f"[{t.min}, {t.max}]; first at index {idx}: {int(arr[idx])}",
                                        count=int(flat.size), index=idx, value=int(arr[idx]))
        arrays[d.name] = np.ascontiguousarray(arr.astype(t.dtype))
        inputs[d.name] = {**dist, "sha256": got.sha256, "bytes": got.bytes}
    return (replace(case, inputs=inputs) if arrays else case), arrays


def spec_from_dict(doc: Mapping[str, Any], source: str = "<spec>", text: bytes | None = None,
                   base: str | os.PathLike | None = None) -> SuiteSpec:
    """Validate a spec given as a dict (the parsed TOML) and resolve its cases.

    Raises :class:`~intsim.core.errors.ConfigError` naming ``source``, the case and the key. Every
    cap of the module docs (sizes, work, nesting, number of cases) is checked here, before
    anything is computed. Inputs given as ``{ file = "..." }`` are read here, after their case
    passed the caps, relative to ``base`` (None: the current directory); their errors are typed
    as the module docs say, each naming the case, the input and the file.
    """
    base_dir = None if base is None else Path(base)
    file_inputs: dict[str, dict[str, np.ndarray]] = {}

    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: a spec must be a table, got {type(doc).__name__}")
    _check_nesting(doc, source)
    unknown = sorted(str(k) for k in set(doc) - {"suite", "case"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {brief(unknown[0])}; expected [suite] and [[case]]")
    suite = _table(doc.get("suite"), f"{source}: [suite]")
    bad = sorted(str(k) for k in set(suite) - _SUITE_KEYS)
    if bad:
        raise ConfigError(f"{source}: suite.{brief(bad[0])}: unknown key; valid: {', '.join(sorted(_SUITE_KEYS))}")
    name = check_name(suite.get("name", "golden"), f"{source}: suite.name")
    suite_seed = _seed(suite.get("seed", 0), f"{source}: suite.seed")
    description = suite.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: suite.description: must be a string, got {brief(description)}")
    raw_cases = doc.get("case", [])
    if not isinstance(raw_cases, list) or not all(isinstance(c, Mapping) for c in raw_cases):
        raise ConfigError(f"{source}: 'case' must be an array of tables ([[case]] sections)")
    if not raw_cases:
        raise ConfigError(f"{source}: no [[case]] sections; a suite needs at least one case")
    if len(raw_cases) > MAX_CASES:
        raise over_cap(source, "number of cases", len(raw_cases), "MAX_CASES", MAX_CASES)
    cases = []
    seen: dict[str, int] = {}
    elements = macs = steps = 0
    for pos, raw in enumerate(raw_cases, start=1):
        label = raw.get("name")
        where = f"{source}: case {brief(label)}" if isinstance(label, str) else f"{source}: case #{pos}"
        bad = sorted(str(k) for k in set(raw) - _CASE_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown key {brief(bad[0])}; valid: {', '.join(sorted(_CASE_KEYS))}")
        if "name" not in raw:
            raise ConfigError(f"{where}: missing key 'name'")
        cname = check_case_name(raw["name"], f"{where}: name")
        if cname.lower() in seen:
            raise ConfigError(f"{where}: duplicate case name: case #{seen[cname.lower()]} has the same name "
                              "(compared ignoring letter case, since names become directory names)")
        seen[cname.lower()] = pos
        if "operator" not in raw:
            raise ConfigError(f"{where}: missing key 'operator'")
        op = get_operator(raw["operator"], where=f"{where}: operator")
        seed = _seed(raw["seed"], f"{where}: seed") if "seed" in raw else derived_seed(suite_seed, cname)
        desc = raw.get("description", "")
        if not isinstance(desc, str):
            raise ConfigError(f"{where}: description: must be a string, got {brief(desc)}")
        cs = CaseSpec(name=cname, operator=op.name, seed=seed,
                      shape=_table(raw.get("shape"), f"{where}: shape"),
                      config=_table(raw.get("config"), f"{where}: config"),
                      inputs=_table(raw.get("inputs"), f"{where}: inputs"),
                      description=desc, where=where)
        case = op.resolve(cs)
        budget = op.budget(case)
        check_budget(where, budget)
        elements += budget.elements
        macs += budget.macs
        steps += budget.steps
        for total, what, cap_name, cap in (
                (elements, "elements of the suite's tensors up to this case", "MAX_SUITE_ELEMENTS", MAX_SUITE_ELEMENTS),
                (macs, "multiply-accumulates of the suite up to this case", "MAX_SUITE_MACS", MAX_SUITE_MACS),
                (steps, "one-at-a-time steps of the suite up to this case", "MAX_SUITE_STEPS", MAX_SUITE_STEPS)):
            if total > cap:
                raise over_cap(where, what, total, cap_name, cap)
        case, arrays = _read_file_inputs(case, where, base_dir)
        if arrays:
            file_inputs[cname] = arrays
        cases.append(case)
    return SuiteSpec(name=name, seed=suite_seed, cases=tuple(cases), description=description,
                     source=source, text=text, file_inputs=file_inputs)


def parse_toml(raw: bytes, source: str = "<spec>") -> dict[str, Any]:
    """The document of UTF-8 TOML bytes; :class:`~intsim.core.errors.FileFormatError` naming
    ``source`` for bytes that are not UTF-8 or not TOML (a RecursionError of tables or arrays nested
    too deeply to parse propagates, for the caller to name its own limit).

    >>> parse_toml(b'seed = 7', "s.toml")
    {'seed': 7}
    """
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{source}: not UTF-8 text ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"{source}: invalid TOML: {exc}") from None


def parse_spec(text: str | bytes, source: str = "<spec>", base: str | os.PathLike | None = None) -> SuiteSpec:
    """Parse and validate spec text (TOML). See the module docs for the format.

    Text that is not UTF-8, not TOML, longer than MAX_SPEC_BYTES or nested too deeply
    to parse raises :class:`~intsim.core.errors.FileFormatError` naming ``source``. Relative
    ``file`` inputs are read relative to ``base`` (None: the current directory).
    """
    try:
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:
        raise FileFormatError(f"{source}: not UTF-8 text ({exc})") from None
    except TypeError:
        raise FileFormatError(f"{source}: spec text must be str or bytes, got {type(text).__name__}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise FileFormatError(f"{source}: {len(raw)} bytes is more than the cap MAX_SPEC_BYTES = {MAX_SPEC_BYTES}")
    try:
        doc = parse_toml(raw, source)
    except RecursionError:
        raise FileFormatError(f"{source}: invalid spec: tables or arrays nested too deeply to parse "
                              f"(a spec may nest at most MAX_NESTING = {MAX_NESTING} levels)") from None
    return spec_from_dict(doc, source=source, text=raw, base=base)


def load_spec(path: str | os.PathLike) -> SuiteSpec:
    """Read and validate a spec file (at most MAX_SPEC_BYTES); its ``file`` inputs are relative to its folder."""
    try:
        p = Path(path)
        with open(p, "rb") as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: spec file not found") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (TypeError, ValueError) as exc:  # not a path, or a NUL in it
        raise FileFormatError(f"{brief(path)}: not a valid spec file path ({exc})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise FileFormatError(f"{p}: more than the cap MAX_SPEC_BYTES = {MAX_SPEC_BYTES} bytes")
    return parse_spec(data, source=str(p), base=p.parent)
