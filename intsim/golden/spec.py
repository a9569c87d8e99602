"""Golden-suite specifications: a TOML file of cases, validated before anything is computed.

A spec is a TOML document (read with the standard library's ``tomllib``)::

    [suite]
    name = "intsim-golden"      # letters, digits, '_', '.', '-'
    seed = 2024                 # base of the per-case seeds (default 0)

    [[case]]
    name = "mm_int8_wrap"       # unique; also the case's directory in the suite
    operator = "matmul"         # a key of intsim.golden.OPERATORS
    seed = 7                    # optional; default derived from suite.seed and the name
    description = "free text"   # optional
    shape = { M = 4, K = 16, N = 8 }
    config = { a = "int8", b = "int8", acc_bits = 32, overflow = "wrap" }
    inputs = { A = "uniform", B = { dist = "heavy_tailed", outlier_rate = 0.05 } }

``shape``, ``config`` and ``inputs`` are defined by the operator (see
``intsim.golden.operators``); distributions by ``intsim.golden.datagen``. Unknown
keys anywhere are errors, so a typo cannot silently fall back to a default. Every
problem raises :class:`~intsim.errors.ConfigError` naming the spec, the case and
the key; an unreadable or syntactically invalid file raises
:class:`~intsim.errors.FileFormatError` naming the file.

The derived seed of a case without ``seed`` is the first 63 bits of
``sha256(f"{suite_seed}/{name}")`` (little-endian), so it depends only on the
suite seed and the case name, not on the case's position.

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

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FileFormatError

__all__ = ["SuiteSpec", "CaseSpec", "load_spec", "parse_spec", "spec_from_dict", "NAME_RE", "check_name"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SEED_MAX = (1 << 63) - 1
_SUITE_KEYS = {"name", "seed", "description"}
_CASE_KEYS = {"name", "operator", "seed", "description", "shape", "config", "inputs"}


def check_name(value: Any, where: str) -> str:
    """Return ``value`` if it is a safe name (1-100 of ``A-Za-z0-9_.-``, not starting with ``.``/``-``/``_``)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ConfigError(f"{where}: must be 1 to 100 characters of letters, digits, '_', '.', '-' "
                          f"starting with a letter or digit, got {value!r}")
    return value


def _seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _SEED_MAX:
        raise ConfigError(f"{where}: must be an integer from 0 to 2**63 - 1, got {value!r}")
    return value


def derived_seed(suite_seed: int, name: str) -> int:
    """The seed of a case that does not set one (see the module docs)."""
    digest = hashlib.sha256(f"{suite_seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class CaseSpec:
    """One case as written, before the operator validates it.

    ``where`` locates it in messages (``"spec.toml: case 'mm1'"``).
    """

    name: str
    operator: str
    seed: int
    shape: dict[str, Any]
    config: dict[str, Any]
    inputs: dict[str, Any]
    description: str = ""
    where: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    """A validated spec: the suite's name and seed and its cases, resolved by their operators.

    ``cases`` holds :class:`intsim.golden.operators.Case` objects (every default filled in);
    ``text`` is the spec's original bytes when it was read from TOML (copied into the suite).
    """

    name: str
    seed: int
    cases: tuple[Any, ...]
    description: str = ""
    source: str = "<spec>"
    text: bytes | None = field(default=None, repr=False)


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table, got {value!r}")
    return dict(value)


def spec_from_dict(doc: Mapping[str, Any], source: str = "<spec>", text: bytes | None = None) -> SuiteSpec:
    """Validate a spec given as a dict (the parsed TOML) and resolve its cases.

    Raises :class:`~intsim.errors.ConfigError` naming ``source``, the case and the key.
    """
    from .operators import get_operator  # the registry imports this module

    unknown = sorted(set(doc) - {"suite", "case"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; expected [suite] and [[case]]")
    suite = _table(doc.get("suite"), f"{source}: [suite]")
    bad = sorted(set(suite) - _SUITE_KEYS)
    if bad:
        raise ConfigError(f"{source}: suite.{bad[0]}: unknown key; valid: {', '.join(sorted(_SUITE_KEYS))}")
    name = check_name(suite.get("name", "golden"), f"{source}: suite.name")
    suite_seed = _seed(suite.get("seed", 0), f"{source}: suite.seed")
    description = suite.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: suite.description: must be a string")
    raw_cases = doc.get("case", [])
    if not isinstance(raw_cases, list) or not all(isinstance(c, Mapping) for c in raw_cases):
        raise ConfigError(f"{source}: 'case' must be an array of tables ([[case]] sections)")
    if not raw_cases:
        raise ConfigError(f"{source}: no [[case]] sections; a suite needs at least one case")
    cases = []
    seen: dict[str, int] = {}
    for pos, raw in enumerate(raw_cases, start=1):
        label = raw.get("name")
        where = f"{source}: case {label!r}" if isinstance(label, str) else f"{source}: case #{pos}"
        bad = sorted(set(raw) - _CASE_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown key {bad[0]!r}; valid: {', '.join(sorted(_CASE_KEYS))}")
        if "name" not in raw:
            raise ConfigError(f"{where}: missing key 'name'")
        cname = check_name(raw["name"], f"{where}: name")
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
            raise ConfigError(f"{where}: description: must be a string")
        cs = CaseSpec(name=cname, operator=op.name, seed=seed,
                      shape=_table(raw.get("shape"), f"{where}: shape"),
                      config=_table(raw.get("config"), f"{where}: config"),
                      inputs=_table(raw.get("inputs"), f"{where}: inputs"),
                      description=desc, where=where)
        cases.append(op.resolve(cs))
    return SuiteSpec(name=name, seed=suite_seed, cases=tuple(cases), description=description,
                     source=source, text=text)


def parse_spec(text: str | bytes, source: str = "<spec>") -> SuiteSpec:
    """Parse and validate spec text (TOML). See the module docs for the format."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{source}: not UTF-8 text ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"{source}: invalid TOML: {exc}") from None
    return spec_from_dict(doc, source=source, text=raw)


def load_spec(path: str | os.PathLike) -> SuiteSpec:
    """Read and validate a spec file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(f"{p}: spec file not found") from None
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return parse_spec(data, source=str(p))
