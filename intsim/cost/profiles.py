"""Hardware profiles: per-action energy and area tables read from TOML files.

A profile prices every action of :class:`~intsim.cost.counts.CostCounts`: the
energy in picojoules (pJ) of one operation of a kind at a width, the area in
square micrometres (µm²) of the unit that performs it, and the energy per byte
of each memory level. It also describes the MAC array (shape, clock,
accumulator width) and the vector unit that runs the non-linear operators.

Built-in profiles (``intsim/cost/profiles/*.toml``, each citing its sources):

* ``horowitz45``: Horowitz, ISSCC 2014, 45 nm, 0.9 V; widths missing from the
  table are priced with the QKeras QTools fit and labelled ``fit``.
* ``qkeras_fit``: the QKeras QTools polynomials for any width b (multiplier
  0.002994791667·b² + 0.001041666667·b pJ, adder 0.003125·b pJ).
* ``aladdin40``: the Aladdin 40 nm figures (Accelergy hwcomponents-library).

File format (every entry below is required unless marked optional)::

    [profile]
    name = "my45"                 # short name used in reports
    title = "..."                 # optional one-line description
    technology_nm = 45
    voltage_v = 0.9               # optional
    sources = ["..."]             # optional citations

    [array]                       # the MAC array GEMMs are tiled onto
    rows = 16
    cols = 16
    clock_mhz = 1000
    acc_bits = 32

    [vector_unit]                 # runs requantization and non-linear operators
    lanes = 16
    clock_mhz = 1000
    area_units = ["add:32", "mul:32x32", "shift:32", "compare:32"]   # optional, per lane
    cycles_per_op = { default = 1, div = "bits" }                     # optional

    [memory.register_file]        # also [memory.sram] and [memory.dram]
    read_pj_per_byte = 0.072
    write_pj_per_byte = 0.072

    [op.add]                      # also mul, shift, compare, div, lut; optional fmul, fadd
    energy_pj = { points = { 8 = 0.03, 32 = 0.1 }, fit = [0.0, 0.003125] }
    area_um2 = { points = { 8 = 36, 32 = 137 }, scaling = "width" }   # optional

    [op.shift]
    same_as = "add"               # priced exactly as an adder of the same width

Width rules, for a quantity (``energy_pj`` or ``area_um2``) of an operation at
width b (an a×b multiplier: widths (a, b)):

1. ``points``: a value given at that width is used exactly (provenance
   ``table``). Multiplier keys are ``"8"`` (8×8) or ``"8x4"``.
2. otherwise ``fit`` (coefficients c0, c1, c2, ...): c0 + c1·b + c2·b² + ...
   (``fit``). For an a×b multiplier (at most 3 coefficients):
   c0 + c1·(a+b)/2 + c2·a·b, which is the square fit when a = b.
3. otherwise ``scaling = "width"`` (cost linear in x = b) or ``"product"``
   (linear in x = a·b): piecewise-linear in x between the two nearest points
   (``interpolated``), proportional to x from the nearest point outside them
   (``scaled``).
4. otherwise the width cannot be priced: :class:`~intsim.errors.ConfigError`.

``same_as = "add"`` (or another op kind) prices an operation as that kind at the
same width (``derived``); ``same_as = "memory.register_file"`` prices it as a
read of its ``bits`` from that level; ``repeat = "bits"`` (or an integer)
multiplies the energy (an iterative divider: one add per quotient bit). A MAC
is priced as a multiply plus an add at the accumulator width, never as an entry.

Memory energies are per byte: an element of b bits costs b/8 times the figure.

Technology scaling (:meth:`Profile.scaled`): the Stillmaker & Baas (2017)
factors from 45 nm to 7 nm (energy 0.085 / 0.094 / 0.102 at 0.7 / 0.8 / 0.9 V,
area 0.059) multiply every operation and on-chip memory energy and every area;
DRAM (off-chip) is not scaled.

>>> p = load_profile("horowitz45")
>>> p.energy("mul", (8, 8)), p.energy("add", (32,)), p.energy("fmul", (16,))
(0.2, 0.1, 1.1)
>>> p.price("mul", (16, 16)).provenance
'fit'
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .counts import MEMORY_LEVELS

__all__ = [
    "Profile",
    "Quantity",
    "OpEntry",
    "MemoryLevel",
    "ArrayConfig",
    "VectorUnit",
    "Price",
    "PROFILE_OPS",
    "REQUIRED_OPS",
    "STILLMAKER_BAAS",
    "builtin_profiles",
    "load_profile",
    "parse_profile",
]

#: Operation kinds a profile may price (a MAC is priced as mul + add).
PROFILE_OPS: tuple[str, ...] = ("mul", "add", "shift", "compare", "div", "lut", "fmul", "fadd")
#: Operation kinds every profile must price.
REQUIRED_OPS: tuple[str, ...] = ("mul", "add", "shift", "compare", "div", "lut")
PROVENANCES: tuple[str, ...] = ("table", "fit", "interpolated", "scaled", "derived")

#: Stillmaker & Baas (2017) factors relative to 45 nm: (target_nm, voltage_v) -> energy factor,
#: and target_nm -> area factor (as implemented in Accelergy's hwcomponents ``scaling/techscaling.py``).
STILLMAKER_BAAS: dict[str, dict[Any, float]] = {
    "energy": {(7, 0.7): 0.085, (7, 0.8): 0.094, (7, 0.9): 0.102},
    "area": {7: 0.059},
}
_STILLMAKER_SOURCE_NM = 45

_BUILTIN_DIR = "profiles"


@dataclass(frozen=True)
class Price:
    """A priced value and how it was obtained (``table``, ``fit``, ``interpolated``, ``scaled``, ``derived``)."""

    value: float
    provenance: str


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Quantity:
    """Energy (pJ) or area (µm²) of one operation kind as a function of its width (see module docs)."""

    points: Mapping[tuple[int, ...], float] = field(default_factory=dict)
    fit: tuple[float, ...] = ()
    scaling: str = "none"
    product: bool = False  # a multiplier: widths (a, b)

    def value(self, widths: tuple[int, ...]) -> Price:
        """The quantity at ``widths``, by the width rules; raises ``LookupError`` if none applies."""
        if widths in self.points:
            return Price(float(self.points[widths]), "table")
        if self.fit:
            if self.product:
                a, b = widths
                c = tuple(self.fit) + (0.0,) * (3 - len(self.fit))
                v = c[0] + c[1] * (a + b) / 2 + c[2] * a * b
            else:
                b = widths[0]
                v = sum(c * b**i for i, c in enumerate(self.fit))
            return Price(v, "fit")
        if self.scaling != "none" and self.points:
            return self._scaled(widths)
        raise LookupError(widths)

    def _x(self, widths: tuple[int, ...]) -> int:
        return widths[0] * widths[1] if self.scaling == "product" and len(widths) == 2 else widths[0]

    def _scaled(self, widths: tuple[int, ...]) -> Price:
        pts = sorted((self._x(w), v) for w, v in self.points.items())
        x = self._x(widths)
        below = [p for p in pts if p[0] <= x]
        above = [p for p in pts if p[0] >= x]
        if below and above:
            (x0, v0), (x1, v1) = below[-1], above[0]
            if x0 == x1:
                return Price(float(v0), "interpolated")
            return Price(v0 + (v1 - v0) * (x - x0) / (x1 - x0), "interpolated")
        x0, v0 = (below[-1] if below else above[0])
        return Price(v0 * x / x0, "scaled")


@dataclass(frozen=True)
class OpEntry:
    """How a profile prices one operation kind."""

    kind: str
    energy: Quantity | None = None
    area: Quantity | None = None
    same_as: str | None = None
    repeat: str | int = 1
    note: str = ""


@dataclass(frozen=True)
class MemoryLevel:
    """Energy per byte (pJ) of reads and writes at one memory level."""

    name: str
    read_pj_per_byte: float
    write_pj_per_byte: float
    note: str = ""


@dataclass(frozen=True)
class ArrayConfig:
    """The MAC array: ``rows`` x ``cols`` processing elements at ``clock_mhz``, ``acc_bits`` accumulators."""

    rows: int
    cols: int
    clock_mhz: float
    acc_bits: int


@dataclass(frozen=True)
class VectorUnit:
    """The vector unit: ``lanes`` parallel lanes at ``clock_mhz``.

    ``cycles_per_op`` maps an action kind to the cycles one lane spends on one
    operation: an integer, or ``"bits"`` (one cycle per bit of width); kinds not
    listed take ``default`` cycles. ``area_units`` lists the units of one lane as
    ``(kind, widths)``.
    """

    lanes: int
    clock_mhz: float
    cycles_per_op: Mapping[str, int | str] = field(default_factory=lambda: {"default": 1})
    area_units: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def cycles(self, kind: str, widths: tuple[int, ...]) -> int:
        """Cycles one lane spends on one ``kind`` operation at ``widths``."""
        c = self.cycles_per_op.get(kind, self.cycles_per_op.get("default", 1))
        return max(widths) if c == "bits" else int(c)


@dataclass(frozen=True)
class Profile:
    """A validated hardware profile (see the module docs for the file format).

    Use :func:`load_profile` to read one. Energies are in pJ, areas in µm², memory
    energies in pJ per byte, clocks in MHz.
    """

    name: str
    path: str
    technology_nm: float
    array: ArrayConfig
    vector_unit: VectorUnit
    memory: Mapping[str, MemoryLevel]
    ops: Mapping[str, OpEntry]
    title: str = ""
    voltage_v: float | None = None
    sources: tuple[str, ...] = ()
    energy_factor: float = 1.0
    area_factor: float = 1.0
    scaling_note: str = ""

    # -- pricing -----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"profile {self.name!r} ({self.path})"

    def _check_widths(self, kind: str, widths: tuple[int, ...]) -> tuple[int, ...]:
        w = tuple(int(b) for b in widths)
        want = 2 if kind == "mul" else 1
        if len(w) != want or any(b < 1 for b in w):
            raise ConfigError(f"{kind} takes {want} positive bit width(s), got {widths!r}")
        return w

    def price(self, kind: str, widths: tuple[int, ...], quantity: str = "energy") -> Price:
        """Energy (pJ, ``quantity="energy"``) or area (µm², ``"area"``) of one ``kind`` operation.

        The technology factor is applied. Raises :class:`~intsim.errors.ConfigError` naming
        the profile and the missing entry when the profile cannot price it.
        """
        if kind not in PROFILE_OPS:
            raise ConfigError(f"unknown operation kind {kind!r}; a profile prices {', '.join(PROFILE_OPS)} "
                              "(a MAC is priced as mul + add)")
        widths = self._check_widths(kind, widths)
        p = self._raw_price(kind, widths, quantity, ())
        if p.value < 0:
            raise ConfigError(f"{self._where()}: negative {quantity} {p.value!r} for op.{kind} at "
                              f"{'x'.join(map(str, widths))} bits")
        factor = self.energy_factor if quantity == "energy" else self.area_factor
        return Price(p.value * factor, p.provenance)

    def _raw_price(self, kind: str, widths: tuple[int, ...], quantity: str, seen: tuple[str, ...]) -> Price:
        entry = self.ops.get(kind)
        bits = "x".join(map(str, widths))
        if entry is None:
            raise ConfigError(f"{self._where()} has no entry op.{kind}; it is needed to price {kind} at {bits} bits")
        reps = max(widths) if entry.repeat == "bits" else int(entry.repeat)
        reps = reps if quantity == "energy" else 1
        if entry.same_as is not None:
            if entry.same_as in seen:
                raise ConfigError(f"{self._where()}: op.{kind}.same_as forms a cycle through {entry.same_as!r}")
            if entry.same_as.startswith("memory."):
                if quantity == "area":
                    return Price(0.0, "derived")
                lvl = self.memory[entry.same_as.split(".", 1)[1]]
                return Price(lvl.read_pj_per_byte * max(widths) / 8 * reps, "derived")
            target = entry.same_as
            if target == "mul":
                tw = widths if kind == "mul" else (widths[0], widths[0])
            else:
                tw = (max(widths),)
            return Price(self._raw_price(target, tw, quantity, seen + (kind,)).value * reps, "derived")
        q = entry.energy if quantity == "energy" else entry.area
        qname = "energy_pj" if quantity == "energy" else "area_um2"
        if q is None:
            raise ConfigError(f"{self._where()} has no entry op.{kind}.{qname}; it is needed to price {kind} at "
                              f"{bits} bits")
        try:
            p = q.value(widths)
        except LookupError:
            raise ConfigError(f"{self._where()}: op.{kind}.{qname} has no value at {bits} bits (not in points, "
                              "no fit, no scaling rule)") from None
        return p if reps == 1 else Price(p.value * reps, p.provenance)

    def energy(self, kind: str, widths: tuple[int, ...]) -> float:
        """Energy in pJ of one ``kind`` operation at ``widths`` (see :meth:`price`)."""
        return self.price(kind, widths, "energy").value

    def area(self, kind: str, widths: tuple[int, ...]) -> float:
        """Area in µm² of a ``kind`` unit at ``widths`` (see :meth:`price`)."""
        return self.price(kind, widths, "area").value

    def has_op(self, kind: str) -> bool:
        """Whether the profile has an entry for ``kind``."""
        return kind in self.ops

    def memory_energy(self, level: str, direction: str, bits: int) -> float:
        """Energy in pJ of reading (``direction="read"``) or writing one ``bits``-bit element at ``level``."""
        if level not in self.memory:
            raise ConfigError(f"unknown memory level {level!r}; valid: {', '.join(MEMORY_LEVELS)}")
        lvl = self.memory[level]
        per_byte = lvl.read_pj_per_byte if direction == "read" else lvl.write_pj_per_byte
        factor = 1.0 if level == "dram" else self.energy_factor
        return per_byte * bits / 8 * factor

    # -- technology scaling --------------------------------------------------------------------
    def scaled(self, target_nm: float, voltage_v: float | None = None, *, energy_factor: float | None = None,
               area_factor: float | None = None) -> Profile:
        """This profile moved to another technology node.

        Without explicit factors, the Stillmaker & Baas factors of :data:`STILLMAKER_BAAS`
        are used; they exist only from 45 nm to 7 nm at 0.7, 0.8 or 0.9 V. Anything else
        raises :class:`~intsim.errors.ConfigError` unless both factors are given.
        Operation and on-chip memory energies are multiplied by the energy factor,
        areas by the area factor; DRAM energy is not scaled.

        >>> p = load_profile("horowitz45").scaled(7, 0.8)
        >>> p.name, round(p.energy("mul", (8, 8)), 4)
        ('horowitz45@7nm-0.8V', 0.0188)
        """
        if energy_factor is None or area_factor is None:
            if self.technology_nm != _STILLMAKER_SOURCE_NM:
                raise ConfigError(f"{self._where()} is at {self.technology_nm:g} nm; the built-in Stillmaker & Baas "
                                  f"factors start at {_STILLMAKER_SOURCE_NM} nm. Pass energy_factor and area_factor")
            key = (target_nm, voltage_v)
            if key not in STILLMAKER_BAAS["energy"]:
                known = ", ".join(f"{n} nm at {v} V" for n, v in STILLMAKER_BAAS["energy"])
                raise ConfigError(f"no Stillmaker & Baas factor for {target_nm} nm at {voltage_v} V; "
                                  f"available: {known}")
            ef = STILLMAKER_BAAS["energy"][key] if energy_factor is None else energy_factor
            af = STILLMAKER_BAAS["area"][target_nm] if area_factor is None else area_factor
            note = (f"scaled from {self.technology_nm:g} nm to {target_nm:g} nm at {voltage_v} V by the Stillmaker & "
                    f"Baas (2017) factors: energy x{ef}, area x{af} (DRAM not scaled)")
        else:
            ef, af = energy_factor, area_factor
            note = f"scaled to {target_nm:g} nm by user factors: energy x{ef}, area x{af} (DRAM not scaled)"
        for label, f in (("energy_factor", ef), ("area_factor", af)):
            if not _is_number(f) or f <= 0:
                raise ConfigError(f"{label} must be a positive number, got {f!r}")
        vtxt = f"-{voltage_v:g}V" if voltage_v is not None else ""
        return replace(self, name=f"{self.name}@{target_nm:g}nm{vtxt}", technology_nm=target_nm, voltage_v=voltage_v,
                       energy_factor=self.energy_factor * ef, area_factor=self.area_factor * af,
                       scaling_note=note)

    def describe(self) -> str:
        """One line: name, title, node and array."""
        a = self.array
        s = (f"{self.name}: {self.title or 'user profile'}; {a.rows}x{a.cols} MAC array at {a.clock_mhz:g} MHz, "
             f"acc{a.acc_bits}")
        return s + (f"; {self.scaling_note}" if self.scaling_note else "")


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------


class _Reader:
    """Walks a parsed TOML document, raising ConfigError that names the file and the entry."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, msg: str) -> ConfigError:
        return ConfigError(f"profile {self.path}: {msg}")

    def table(self, d: Mapping, key: str, where: str, required: bool = True) -> Mapping | None:
        if key not in d:
            if required:
                raise self.fail(f"missing entry '{where}{key}'")
            return None
        v = d[key]
        if not isinstance(v, Mapping):
            raise self.fail(f"'{where}{key}' must be a table")
        return v

    def only(self, d: Mapping, allowed: tuple[str, ...], where: str) -> None:
        for k in d:
            if k not in allowed:
                raise self.fail(f"unknown entry '{where}{k}'; valid here: {', '.join(allowed)}")

    def number(self, d: Mapping, key: str, where: str, *, required: bool = True, positive: bool = False,
               what: str = "value") -> float | None:
        if key not in d:
            if required:
                raise self.fail(f"missing entry '{where}{key}'")
            return None
        v = d[key]
        if not _is_number(v):
            raise self.fail(f"'{where}{key}' must be a finite number, got {v!r}")
        if v < 0:
            raise self.fail(f"negative {what} in '{where}{key}': {v!r}")
        if positive and v == 0:
            raise self.fail(f"'{where}{key}' must be positive, got {v!r}")
        return v

    def integer(self, d: Mapping, key: str, where: str, lo: int, hi: int) -> int:
        if key not in d:
            raise self.fail(f"missing entry '{where}{key}'")
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"'{where}{key}' must be an integer from {lo} to {hi}, got {v!r}")
        return v

    def string(self, d: Mapping, key: str, where: str, required: bool = True) -> str | None:
        if key not in d:
            if required:
                raise self.fail(f"missing entry '{where}{key}'")
            return None
        v = d[key]
        if not isinstance(v, str):
            raise self.fail(f"'{where}{key}' must be a string, got {v!r}")
        return v


def _parse_widths(r: _Reader, key: str, product: bool, where: str) -> tuple[int, ...]:
    parts = str(key).lower().split("x")
    try:
        w = tuple(int(p) for p in parts)
    except ValueError:
        raise r.fail(f"'{where}{key}' is not a bit width (expected e.g. 8{' or 8x4' if product else ''})") from None
    if product and len(w) == 1:
        w = (w[0], w[0])
    if len(w) != (2 if product else 1) or any(not 1 <= b <= 128 for b in w):
        raise r.fail(f"'{where}{key}' is not a valid bit width for this operation")
    return w


def _quantity(r: _Reader, d: Mapping, key: str, where: str, product: bool, what: str) -> Quantity | None:
    q = r.table(d, key, where, required=False)
    if q is None:
        return None
    w = f"{where}{key}."
    r.only(q, ("points", "fit", "scaling", "note"), w)
    points: dict[tuple[int, ...], float] = {}
    pts = r.table(q, "points", w, required=False) or {}
    for k in pts:
        points[_parse_widths(r, k, product, f"{w}points.")] = r.number(pts, k, f"{w}points.", what=what)
    fit: tuple[float, ...] = ()
    if "fit" in q:
        raw = q["fit"]
        if not isinstance(raw, list) or not raw or not all(_is_number(c) for c in raw):
            raise r.fail(f"'{w}fit' must be a list of numbers (c0, c1, c2, ...), got {raw!r}")
        if product and len(raw) > 3:
            raise r.fail(f"'{w}fit' of a multiplier may have at most 3 coefficients (c0 + c1*b + c2*b^2)")
        fit = tuple(float(c) for c in raw)
    scaling = r.string(q, "scaling", w, required=False) or "none"
    if scaling not in ("none", "width", "product"):
        raise r.fail(f"'{w}scaling' must be one of none, width, product, got {scaling!r}")
    if not points and not fit:
        raise r.fail(f"'{w[:-1]}' needs points or a fit")
    out = Quantity(points=points, fit=fit, scaling=scaling, product=product)
    if fit:  # a fit must not go negative anywhere it may be used
        for b in range(1, 65):
            v = out.value((b, b) if product else (b,))
            if v.provenance == "fit" and v.value < 0:
                raise r.fail(f"negative {what} from '{w}fit' at {b} bits: {v.value!r}")
    return out


def _op_entry(r: _Reader, kind: str, d: Mapping) -> OpEntry:
    where = f"op.{kind}."
    r.only(d, ("energy_pj", "area_um2", "same_as", "repeat", "note"), where)
    product = kind == "mul"
    same_as = r.string(d, "same_as", where, required=False)
    repeat: str | int = d.get("repeat", 1)
    if repeat != "bits" and (isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1):
        raise r.fail(f"'{where}repeat' must be \"bits\" or a positive integer, got {repeat!r}")
    note = r.string(d, "note", where, required=False) or ""
    if same_as is not None:
        if "energy_pj" in d or "area_um2" in d:
            raise r.fail(f"'{where}same_as' excludes energy_pj and area_um2")
        ok = same_as in PROFILE_OPS or same_as in {f"memory.{lvl}" for lvl in MEMORY_LEVELS}
        if not ok or same_as == kind:
            raise r.fail(f"'{where}same_as' must name another operation ({', '.join(PROFILE_OPS)}) or "
                         f"memory.<level>, got {same_as!r}")
        return OpEntry(kind, same_as=same_as, repeat=repeat, note=note)
    energy = _quantity(r, d, "energy_pj", where, product, "energy")
    if energy is None:
        raise r.fail(f"missing entry '{where}energy_pj' (or same_as)")
    area = _quantity(r, d, "area_um2", where, product, "area")
    return OpEntry(kind, energy=energy, area=area, repeat=repeat, note=note)


def _unit_spec(r: _Reader, s: Any, where: str) -> tuple[str, tuple[int, ...]]:
    if not isinstance(s, str) or ":" not in s:
        raise r.fail(f"'{where}' entries look like \"add:32\" or \"mul:32x32\", got {s!r}")
    kind, w = s.split(":", 1)
    if kind not in PROFILE_OPS:
        raise r.fail(f"unknown operation kind {kind!r} in '{where}'; valid: {', '.join(PROFILE_OPS)}")
    return kind, _parse_widths(r, w, kind == "mul", where + " ")


def parse_profile(doc: Mapping[str, Any], path: str = "<profile>") -> Profile:
    """Validate a parsed TOML document and build a :class:`Profile`.

    Raises :class:`~intsim.errors.ConfigError` naming ``path`` and the entry: a missing
    entry, a negative energy or area, an unknown operation kind or entry, a wrong type.
    """
    r = _Reader(path)
    r.only(doc, ("profile", "array", "vector_unit", "memory", "op"), "")
    prof = r.table(doc, "profile", "")
    r.only(prof, ("name", "title", "technology_nm", "voltage_v", "sources", "notes"), "profile.")
    name = r.string(prof, "name", "profile.")
    tech = r.number(prof, "technology_nm", "profile.", positive=True)
    volt = r.number(prof, "voltage_v", "profile.", required=False, positive=True)
    sources = prof.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise r.fail("'profile.sources' must be a list of strings")

    arr = r.table(doc, "array", "")
    r.only(arr, ("rows", "cols", "clock_mhz", "acc_bits"), "array.")
    array = ArrayConfig(rows=r.integer(arr, "rows", "array.", 1, 1 << 20),
                        cols=r.integer(arr, "cols", "array.", 1, 1 << 20),
                        clock_mhz=r.number(arr, "clock_mhz", "array.", positive=True),
                        acc_bits=r.integer(arr, "acc_bits", "array.", 1, 64))

    vu = r.table(doc, "vector_unit", "")
    r.only(vu, ("lanes", "clock_mhz", "cycles_per_op", "area_units"), "vector_unit.")
    cpo_raw = r.table(vu, "cycles_per_op", "vector_unit.", required=False) or {"default": 1}
    cpo: dict[str, int | str] = {}
    from .counts import COST_KINDS

    for k, v in cpo_raw.items():
        if k != "default" and k not in COST_KINDS:
            raise r.fail(f"unknown operation kind '{k}' in 'vector_unit.cycles_per_op'; valid: default, "
                         f"{', '.join(COST_KINDS)}")
        if v != "bits" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise r.fail(f"'vector_unit.cycles_per_op.{k}' must be a positive integer or \"bits\", got {v!r}")
        cpo[k] = v
    cpo.setdefault("default", 1)
    units_raw = vu.get("area_units", [])
    if not isinstance(units_raw, list):
        raise r.fail("'vector_unit.area_units' must be a list")
    vector = VectorUnit(lanes=r.integer(vu, "lanes", "vector_unit.", 1, 1 << 20),
                        clock_mhz=r.number(vu, "clock_mhz", "vector_unit.", positive=True),
                        cycles_per_op=cpo,
                        area_units=tuple(_unit_spec(r, s, "vector_unit.area_units") for s in units_raw))

    mem = r.table(doc, "memory", "")
    r.only(mem, MEMORY_LEVELS, "memory.")
    memory: dict[str, MemoryLevel] = {}
    for lvl in MEMORY_LEVELS:
        m = r.table(mem, lvl, "memory.")
        w = f"memory.{lvl}."
        r.only(m, ("read_pj_per_byte", "write_pj_per_byte", "note"), w)
        memory[lvl] = MemoryLevel(lvl, r.number(m, "read_pj_per_byte", w, what="energy"),
                                  r.number(m, "write_pj_per_byte", w, what="energy"),
                                  r.string(m, "note", w, required=False) or "")

    ops_raw = r.table(doc, "op", "")
    for kind in ops_raw:
        if kind not in PROFILE_OPS:
            hint = " (a MAC is priced as op.mul + op.add)" if kind == "mac" else ""
            raise r.fail(f"unknown operation kind 'op.{kind}'; valid: {', '.join(PROFILE_OPS)}{hint}")
    for kind in REQUIRED_OPS:
        if kind not in ops_raw:
            raise r.fail(f"missing entry 'op.{kind}'")
    ops = {kind: _op_entry(r, kind, r.table(ops_raw, kind, "op.")) for kind in ops_raw}
    profile = Profile(name=name, path=path, technology_nm=tech, array=array, vector_unit=vector, memory=memory,
                      ops=ops, title=r.string(prof, "title", "profile.", required=False) or "", voltage_v=volt,
                      sources=tuple(sources))
    # Every same_as chain must resolve (no cycles, no missing target), and the vector unit must be priceable.
    for kind, e in ops.items():
        if e.same_as is not None:
            profile.price(kind, (8, 8) if kind == "mul" else (8,))
    return profile


def builtin_profiles() -> dict[str, Path]:
    """Names and paths of the built-in profiles (``intsim/cost/profiles/*.toml``)."""
    root = resources.files(__package__) / _BUILTIN_DIR
    out = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = Path(str(entry))
    return out


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load a built-in profile by name (``horowitz45``, ``qkeras_fit``, ``aladdin40``) or a TOML file.

    Raises :class:`~intsim.errors.ConfigError` naming the file for an unknown name, an
    unreadable file, a TOML syntax error or an invalid profile.

    >>> load_profile("aladdin40").energy("mul", (32, 32))
    12.68
    """
    builtins = builtin_profiles()
    key = str(name_or_path)
    if key in builtins:
        path = builtins[key]
    else:
        path = Path(key)
        if not path.is_file():
            raise ConfigError(f"no profile {key!r}: not a built-in ({', '.join(builtins)}) and no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"profile {path}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {path}: not valid TOML: {exc}") from None
    return parse_profile(doc, str(path))
