"""Hardware profiles: per-action energy and area tables read from TOML files.

A profile prices every action of :class:`~intsim.cost.counts.CostCounts`: the
energy in picojoules (pJ) of one operation of a kind at a width, the area in
square micrometres (µm²) of the unit that performs it, and the energy per byte
of each memory level. It also describes the MAC array (shape, clock,
accumulator width) and the vector unit that runs the non-linear operators.

Built-in profiles (``intsim/cost/profiles/*.toml``, each citing its sources;
``intsim report cost --print-profile NAME`` prints one as a starting point):

* ``horowitz45``: Horowitz, ISSCC 2014, 45 nm, 0.9 V; widths missing from the
  table are priced with the QKeras QTools fit and labelled ``fit``.
* ``qkeras_fit``: the QKeras QTools polynomials for any width b (multiplier
  0.002994791667·b² + 0.001041666667·b pJ, adder 0.003125·b pJ).
* ``aladdin40``: the Aladdin 40 nm figures (Accelergy hwcomponents-library); it
  has no floating-point units, so it cannot price fp32, fp16 or LLM.int8().

Profile file format
-------------------

A profile is a UTF-8 TOML file with the sections below, and no others. Unknown
sections or keys, wrong types, negative, infinite or NaN numbers are errors
(:class:`~intsim.core.errors.ConfigError` naming the file and the key).

``[profile]`` (required)
    ``name`` (string, required): the short name used in reports.
    ``technology_nm`` (positive number, required): the technology node in nm; the
    Stillmaker & Baas scaling (``--scale-to``) starts from 45 nm.
    ``voltage_v`` (positive number, V), ``title`` (string), ``sources`` (list of
    strings: citations, listed in the report), ``notes`` (string or list of
    strings): optional.

``[array]`` (required): the MAC array GEMMs are tiled onto (output-stationary,
one MAC per processing element per cycle).
    ``rows``, ``cols`` (integers, 1 to 2²⁰), ``clock_mhz`` (positive number, MHz),
    ``acc_bits`` (integer, 1 to 64: the accumulator width; the add of every
    integer MAC is priced as an adder of this width). All required.

``[vector_unit]`` (required): runs requantization and the non-linear operators.
    ``lanes`` (integer, 1 to 2²⁰) and ``clock_mhz`` (MHz): required.
    ``cycles_per_op`` (optional table): cycles one lane spends on one operation,
    by action kind (``mul``, ``add``, ``shift``, ``compare``, ``div``, ``lut``,
    ``fmul``, ``fadd``, ...), a positive integer or ``"bits"`` (one cycle per bit
    of the operation's width); ``default`` (default 1) covers kinds not listed.
    ``area_units`` (optional list of ``"kind:width"`` strings such as ``"add:32"``
    or ``"mul:32x32"``): the units of one lane, for the datapath area (none: the
    vector unit counts 0 µm²).

``[memory.register_file]``, ``[memory.sram]``, ``[memory.dram]`` (all three required)
    ``read_pj_per_byte`` and ``write_pj_per_byte`` (numbers >= 0, pJ per byte,
    required): an element of b bits costs b/8 times the figure. ``note``
    (string) optional. The register file holds the processing elements' operands
    (two reads per MAC); activations live in SRAM, weights in DRAM.

``[op.KIND]``: how an operation kind is priced. ``KIND`` is one of ``mul``,
``add``, ``shift``, ``compare``, ``div``, ``lut`` (all six required), ``fmul``,
``fadd`` (optional; without them the fp32, fp16 and LLM.int8() methods and the
float non-linear operators cannot be priced). There is no ``mac`` entry: a MAC
is a ``mul`` plus an ``add`` at ``acc_bits``; an ``fmac`` an ``fmul`` plus an
``fadd``. An entry has either

* ``energy_pj`` (required) and ``area_um2`` (optional, but a method needs the
  area of every unit of its processing elements: ``mul`` and ``add``, or
  ``fmul`` and ``fadd``, and of the ``area_units``), each a *quantity* table
  (below); or
* ``same_as = "KIND"``: priced as that kind at the same width (an
  ``a×b`` multiplier as the other kind at max(a, b) bits, one width as a
  square multiplier), provenance ``derived``; or
  ``same_as = "memory.LEVEL"``: priced as a read of the operation's bits from that
  level (its area is 0 µm²).

``repeat`` (``"bits"`` or a positive integer, default 1) multiplies the energy
(not the area): an iterative divider does one add per quotient bit. ``note``
(string) is optional.

A *quantity* (``energy_pj`` in pJ per operation, ``area_um2`` in µm² per unit)
is an inline table with ``points``, ``fit`` or both, and optionally ``scaling``
and ``note``:

``points``
    values at given widths: ``{ 8 = 0.03, 32 = 0.1 }``. Multiplier keys are
    ``"8"`` (8×8) or ``"8x4"`` (a×b, in the order of the counts). Widths 1 to 128.
``fit``
    polynomial coefficients ``[c0, c1, c2, ...]`` in the width b:
    c0 + c1·b + c2·b² + ...; for an a×b multiplier (at most three coefficients)
    c0 + c1·(a+b)/2 + c2·a·b, the square fit when a = b. It must not be negative
    at any width from 1 to 128.
``scaling``
    ``"width"`` (linear in x = b), ``"product"`` (linear in x = a·b, for
    multipliers) or ``"none"`` (the default).

Width rules: the value of a quantity at width b (or a×b) is

1. the ``points`` value at exactly that width (provenance ``table``);
2. otherwise the ``fit`` (``fit``; a fit takes precedence over ``scaling``);
3. otherwise, with ``scaling``, the piecewise-linear interpolation in x between
   the two nearest points (``interpolated``), or the nearest point times x/x0
   beyond the outermost points (``scaled``);
4. otherwise there is none: the operation cannot be priced at that width, and a
   report that needs it fails with an error naming the file, the key and the
   width (``intsim report cost --allow-partial`` leaves such methods out instead).

The report uses, for example, integer multipliers at 2×2 to 64×32 bits, adders at
5 to 64 bits, shifters up to 96 bits and dividers up to 64 bits; a ``fit`` or a
``scaling`` rule covers them all.

A complete profile (every method of ``intsim report cost`` can be priced with it;
``title``, ``voltage_v``, ``sources``, ``area_units``, ``cycles_per_op`` and the
comments are optional)::

    [profile]
    name = "example45"
    title = "Example: Horowitz 45 nm energies, linear fits"
    technology_nm = 45
    voltage_v = 0.9
    sources = ["M. Horowitz, ISSCC 2014"]

    [array]
    rows = 16                     # processing elements
    cols = 16
    clock_mhz = 1000
    acc_bits = 32                 # accumulator width

    [vector_unit]
    lanes = 16
    clock_mhz = 1000
    area_units = ["add:32", "mul:32x32", "shift:32", "compare:32"]   # one lane
    cycles_per_op = { default = 1, div = "bits" }

    [memory.register_file]
    read_pj_per_byte = 0.072
    write_pj_per_byte = 0.072

    [memory.sram]
    read_pj_per_byte = 1.25
    write_pj_per_byte = 1.25

    [memory.dram]
    read_pj_per_byte = 160.0
    write_pj_per_byte = 160.0

    [op.add]
    energy_pj = { points = { 8 = 0.03, 32 = 0.1 }, fit = [0.0, 0.003125] }
    area_um2 = { points = { 8 = 36, 32 = 137 }, scaling = "width" }

    [op.mul]
    energy_pj = { points = { 8 = 0.2, 32 = 3.1 }, fit = [0.0, 0.001041666667, 0.002994791667] }
    area_um2 = { points = { 8 = 282, 32 = 3495 }, scaling = "product" }

    [op.fadd]                     # optional: fp32, fp16 and LLM.int8() need it
    energy_pj = { points = { 16 = 0.4, 32 = 0.9 } }
    area_um2 = { points = { 16 = 1360, 32 = 4184 } }

    [op.fmul]                     # optional: fp32, fp16 and LLM.int8() need it
    energy_pj = { points = { 16 = 1.1, 32 = 3.7 } }
    area_um2 = { points = { 16 = 1640, 32 = 7700 } }

    [op.shift]
    same_as = "add"

    [op.compare]
    same_as = "add"

    [op.div]
    same_as = "add"
    repeat = "bits"               # one add per quotient bit

    [op.lut]
    same_as = "memory.register_file"

Technology scaling (:meth:`HardwareProfile.scaled`): the Stillmaker & Baas (2017)
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
import reprlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from .counts import MEMORY_LEVELS

__all__ = [
    "HardwareProfile",
    "Profile",
    "Quantity",
    "OpEntry",
    "MemoryLevel",
    "ArrayConfig",
    "VectorUnit",
    "Price",
    "MissingEntryError",
    "PROFILE_OPS",
    "REQUIRED_OPS",
    "SCHEMA",
    "STILLMAKER_BAAS",
    "builtin_profiles",
    "builtin_profile_text",
    "load_profile",
    "parse_profile",
]

#: Operation kinds a profile may price (a MAC is priced as mul + add).
PROFILE_OPS: tuple[str, ...] = ("mul", "add", "shift", "compare", "div", "lut", "fmul", "fadd")
#: Operation kinds every profile must price.
REQUIRED_OPS: tuple[str, ...] = ("mul", "add", "shift", "compare", "div", "lut")
PROVENANCES: tuple[str, ...] = ("table", "fit", "interpolated", "scaled", "derived")
#: Every section and key a profile file may have (the module docs describe each): section -> keys.
#: ``memory.LEVEL`` stands for each memory level, ``op.KIND`` for each operation kind, ``quantity``
#: for an ``energy_pj`` or ``area_um2`` table.
SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("profile", "array", "vector_unit", "memory", "op"),
    "profile": ("name", "title", "technology_nm", "voltage_v", "sources", "notes"),
    "array": ("rows", "cols", "clock_mhz", "acc_bits"),
    "vector_unit": ("lanes", "clock_mhz", "cycles_per_op", "area_units"),
    "memory": MEMORY_LEVELS,
    "memory.LEVEL": ("read_pj_per_byte", "write_pj_per_byte", "note"),
    "op": PROFILE_OPS,
    "op.KIND": ("energy_pj", "area_um2", "same_as", "repeat", "note"),
    "quantity": ("points", "fit", "scaling", "note"),
}

#: Stillmaker & Baas (2017) factors relative to 45 nm: (target_nm, voltage_v) -> energy factor,
#: and target_nm -> area factor (as implemented in Accelergy's hwcomponents ``scaling/techscaling.py``).
STILLMAKER_BAAS: dict[str, dict[Any, float]] = {
    "energy": {(7, 0.7): 0.085, (7, 0.8): 0.094, (7, 0.9): 0.102},
    "area": {7: 0.059},
}
_STILLMAKER_SOURCE_NM = 45

_BUILTIN_DIR = "profiles"
#: widths a profile may give points at, and over which a fit must be non-negative
_MAX_WIDTH = 128
#: largest ``repeat`` and ``cycles_per_op`` (and array rows, cols and vector lanes)
_MAX_COUNT = 1 << 20


@dataclass(frozen=True)
class Price:
    """A priced value and how it was obtained (``table``, ``fit``, ``interpolated``, ``scaled``, ``derived``)."""

    value: float
    provenance: str


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 2, 40, 40, 6, 4
_SHOW.maxlong = 40


def _show(v: Any) -> str:
    """A short, safe rendering of a value for an error message (bounded length and depth)."""
    return _SHOW.repr(v)


def _show_path(name: str) -> str:
    """A file name for an error message, quoted; shortened only if absurdly long."""
    return repr(name if len(name) <= 500 else name[:497] + "...")


class MissingEntryError(ConfigError):
    """A profile cannot price an operation: an entry is missing, or has no value at a width.

    Attributes: ``profile`` (name), ``path`` (file), ``entry`` (the missing or insufficient
    key, e.g. ``op.fmul`` or ``op.mul.energy_pj``), ``absent`` (True: the entry is missing;
    False: it has no value at the width), ``kind`` and ``widths`` (e.g. ``"4x4"``) of the
    operation, ``quantity`` (``energy`` or ``area``).
    """

    def __init__(self, message: str, *, profile: str = "", path: str = "", entry: str = "", absent: bool = True,
                 kind: str = "", widths: str = "", quantity: str = "energy"):
        super().__init__(message)
        self.profile = profile
        self.path = path
        self.entry = entry
        self.absent = absent
        self.kind = kind
        self.widths = widths
        self.quantity = quantity

    @property
    def what(self) -> str:
        """The missing entry and the width it is needed at, without the profile."""
        return f"{self.entry} at {self.widths} bits"


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
class HardwareProfile:
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

        The technology factor is applied. Raises :class:`~intsim.core.errors.ConfigError` naming
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

        def missing(msg: str, key: str, absent: bool = True) -> MissingEntryError:
            return MissingEntryError(msg, profile=self.name, path=self.path, entry=key, absent=absent, kind=kind,
                                     widths=bits, quantity=quantity)

        if entry is None:
            raise missing(f"{self._where()} has no entry op.{kind} (section [op.{kind}]); it is needed to price "
                          f"{kind} at {bits} bits", f"op.{kind}")
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
            raise missing(f"{self._where()} has no entry op.{kind}.{qname}; it is needed to price {kind} at "
                          f"{bits} bits", f"op.{kind}.{qname}")
        try:
            p = q.value(widths)
        except LookupError:
            raise missing(f"{self._where()}: op.{kind}.{qname} has no value at {bits} bits (not in points, "
                          "no fit, no scaling rule)", f"op.{kind}.{qname}", absent=False) from None
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
               area_factor: float | None = None) -> HardwareProfile:
        """This profile moved to another technology node.

        Without explicit factors, the Stillmaker & Baas factors of :data:`STILLMAKER_BAAS`
        are used; they exist only from 45 nm to 7 nm at 0.7, 0.8 or 0.9 V. Anything else
        raises :class:`~intsim.core.errors.ConfigError` unless both factors are given.
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


#: The old name of :class:`HardwareProfile` (kept for one release).
Profile = HardwareProfile


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------


def _key(k: Any) -> str:
    """A TOML key for an error message (long keys shortened)."""
    k = str(k)
    return k if len(k) <= 60 else k[:57] + "..."


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
            raise self.fail(f"'{where}{key}' must be a table, got {_show(v)}")
        return v

    def only(self, d: Mapping, allowed: tuple[str, ...], where: str) -> None:
        for k in d:
            if k not in allowed:
                raise self.fail(f"unknown entry '{where}{_key(k)}'; valid here: {', '.join(allowed)}")

    def number(self, d: Mapping, key: str, where: str, *, required: bool = True, positive: bool = False,
               what: str = "value") -> float | None:
        if key not in d:
            if required:
                raise self.fail(f"missing entry '{where}{key}'")
            return None
        v = d[key]
        if not _is_number(v):
            raise self.fail(f"'{where}{key}' must be a finite number, got {_show(v)}")
        if v < 0:
            raise self.fail(f"negative {what} in '{where}{key}': {_show(v)}")
        if positive and v == 0:
            raise self.fail(f"'{where}{key}' must be positive, got {_show(v)}")
        return v

    def integer(self, d: Mapping, key: str, where: str, lo: int, hi: int) -> int:
        if key not in d:
            raise self.fail(f"missing entry '{where}{key}'")
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"'{where}{key}' must be an integer from {lo} to {hi}, got {_show(v)}")
        return v

    def string(self, d: Mapping, key: str, where: str, required: bool = True) -> str | None:
        if key not in d:
            if required:
                raise self.fail(f"missing entry '{where}{key}'")
            return None
        v = d[key]
        if not isinstance(v, str):
            raise self.fail(f"'{where}{key}' must be a string, got {_show(v)}")
        return v


def _parse_widths(r: _Reader, key: str, product: bool, where: str) -> tuple[int, ...]:
    parts = str(key).lower().split("x")
    try:
        w = tuple(int(p) for p in parts)
    except ValueError:
        raise r.fail(f"'{where}{_key(key)}' is not a bit width (expected e.g. 8{' or 8x4' if product else ''})"
                     ) from None
    if product and len(w) == 1:
        w = (w[0], w[0])
    if len(w) != (2 if product else 1) or any(not 1 <= b <= 128 for b in w):
        raise r.fail(f"'{where}{_key(key)}' is not a valid bit width for this operation (1 to 128"
                     f"{', a or axb' if product else ''})")
    return w


def _quantity(r: _Reader, d: Mapping, key: str, where: str, product: bool, what: str) -> Quantity | None:
    q = r.table(d, key, where, required=False)
    if q is None:
        return None
    w = f"{where}{key}."
    r.only(q, SCHEMA["quantity"], w)
    points: dict[tuple[int, ...], float] = {}
    pts = r.table(q, "points", w, required=False) or {}
    for k in pts:
        points[_parse_widths(r, k, product, f"{w}points.")] = r.number(pts, k, f"{w}points.", what=what)
    fit: tuple[float, ...] = ()
    if "fit" in q:
        raw = q["fit"]
        if not isinstance(raw, list) or not raw or not all(_is_number(c) for c in raw):
            raise r.fail(f"'{w}fit' must be a list of finite numbers (c0, c1, c2, ...), got {_show(raw)}")
        if product and len(raw) > 3:
            raise r.fail(f"'{w}fit' of a multiplier may have at most 3 coefficients (c0 + c1*b + c2*b^2)")
        fit = tuple(float(c) for c in raw)
    scaling = r.string(q, "scaling", w, required=False) or "none"
    if scaling not in ("none", "width", "product"):
        raise r.fail(f"'{w}scaling' must be one of none, width, product, got {_show(scaling)}")
    if not points and not fit:
        raise r.fail(f"'{w[:-1]}' needs points or a fit")
    out = Quantity(points=points, fit=fit, scaling=scaling, product=product)
    if fit:  # a fit must not go negative (or overflow) anywhere it may be used
        # c0 + c1 (a+b)/2 + c2 ab is bilinear in (a, b): its extremes over a box are at the corners
        widths = ([(b, b) for b in range(1, _MAX_WIDTH + 1)] + [(1, _MAX_WIDTH), (_MAX_WIDTH, 1)] if product
                  else [(b,) for b in range(1, _MAX_WIDTH + 1)])
        for wd in widths:
            if wd in points:
                continue
            bits = "x".join(map(str, wd)) if product and wd[0] != wd[1] else str(wd[0])
            try:
                v = out.value(wd).value
            except OverflowError:
                v = math.inf
            if not math.isfinite(v):
                raise r.fail(f"'{w}fit' is not finite at {bits} bits")
            if v < 0:
                raise r.fail(f"negative {what} from '{w}fit' at {bits} bits: {v!r}")
    return out


def _op_entry(r: _Reader, kind: str, d: Mapping) -> OpEntry:
    where = f"op.{kind}."
    r.only(d, SCHEMA["op.KIND"], where)
    product = kind == "mul"
    same_as = r.string(d, "same_as", where, required=False)
    repeat: str | int = d.get("repeat", 1)
    if repeat != "bits" and (isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= _MAX_COUNT):
        raise r.fail(f"'{where}repeat' must be \"bits\" or an integer from 1 to {_MAX_COUNT}, got {_show(repeat)}")
    note = r.string(d, "note", where, required=False) or ""
    if same_as is not None:
        if "energy_pj" in d or "area_um2" in d:
            raise r.fail(f"'{where}same_as' excludes energy_pj and area_um2")
        ok = same_as in PROFILE_OPS or same_as in {f"memory.{lvl}" for lvl in MEMORY_LEVELS}
        if not ok or same_as == kind:
            raise r.fail(f"'{where}same_as' must name another operation ({', '.join(PROFILE_OPS)}) or "
                         f"memory.<level>, got {_show(same_as)}")
        return OpEntry(kind, same_as=same_as, repeat=repeat, note=note)
    energy = _quantity(r, d, "energy_pj", where, product, "energy")
    if energy is None:
        raise r.fail(f"missing entry '{where}energy_pj' (or same_as)")
    area = _quantity(r, d, "area_um2", where, product, "area")
    return OpEntry(kind, energy=energy, area=area, repeat=repeat, note=note)


def _unit_spec(r: _Reader, s: Any, where: str) -> tuple[str, tuple[int, ...]]:
    if not isinstance(s, str) or ":" not in s:
        raise r.fail(f"'{where}' entries look like \"add:32\" or \"mul:32x32\", got {_show(s)}")
    kind, w = s.split(":", 1)
    if kind not in PROFILE_OPS:
        raise r.fail(f"unknown operation kind {_show(kind)} in '{where}'; valid: {', '.join(PROFILE_OPS)}")
    return kind, _parse_widths(r, w, kind == "mul", where + " ")


def parse_profile(doc: Mapping[str, Any], path: str = "<profile>") -> HardwareProfile:
    """Validate a parsed TOML document and build a :class:`HardwareProfile`.

    Raises :class:`~intsim.core.errors.ConfigError` naming ``path`` and the entry: a missing
    entry, a negative energy or area, an unknown operation kind or entry, a wrong type.
    """
    r = _Reader(path)
    if not isinstance(doc, Mapping):
        raise r.fail(f"a profile is a TOML document (a table), got {_show(doc)}")
    r.only(doc, SCHEMA[""], "")
    prof = r.table(doc, "profile", "")
    r.only(prof, SCHEMA["profile"], "profile.")
    name = r.string(prof, "name", "profile.")
    tech = r.number(prof, "technology_nm", "profile.", positive=True)
    volt = r.number(prof, "voltage_v", "profile.", required=False, positive=True)
    sources = prof.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise r.fail(f"'profile.sources' must be a list of strings, got {_show(sources)}")
    notes = prof.get("notes", "")
    if not isinstance(notes, str) and not (isinstance(notes, list) and all(isinstance(s, str) for s in notes)):
        raise r.fail(f"'profile.notes' must be a string or a list of strings, got {_show(notes)}")

    arr = r.table(doc, "array", "")
    r.only(arr, SCHEMA["array"], "array.")
    array = ArrayConfig(rows=r.integer(arr, "rows", "array.", 1, _MAX_COUNT),
                        cols=r.integer(arr, "cols", "array.", 1, _MAX_COUNT),
                        clock_mhz=r.number(arr, "clock_mhz", "array.", positive=True),
                        acc_bits=r.integer(arr, "acc_bits", "array.", 1, 64))

    vu = r.table(doc, "vector_unit", "")
    r.only(vu, SCHEMA["vector_unit"], "vector_unit.")
    cpo_raw = r.table(vu, "cycles_per_op", "vector_unit.", required=False) or {"default": 1}
    cpo: dict[str, int | str] = {}
    from .counts import COST_KINDS

    for k, v in cpo_raw.items():
        if k != "default" and k not in COST_KINDS:
            raise r.fail(f"unknown operation kind '{_key(k)}' in 'vector_unit.cycles_per_op'; valid: default, "
                         f"{', '.join(COST_KINDS)}")
        if v != "bits" and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _MAX_COUNT):
            raise r.fail(f"'vector_unit.cycles_per_op.{k}' must be an integer from 1 to {_MAX_COUNT} or \"bits\", "
                         f"got {_show(v)}")
        cpo[k] = v
    cpo.setdefault("default", 1)
    units_raw = vu.get("area_units", [])
    if not isinstance(units_raw, list):
        raise r.fail(f"'vector_unit.area_units' must be a list of strings such as \"add:32\", got {_show(units_raw)}")
    vector = VectorUnit(lanes=r.integer(vu, "lanes", "vector_unit.", 1, _MAX_COUNT),
                        clock_mhz=r.number(vu, "clock_mhz", "vector_unit.", positive=True),
                        cycles_per_op=cpo,
                        area_units=tuple(_unit_spec(r, s, "vector_unit.area_units") for s in units_raw))

    mem = r.table(doc, "memory", "")
    r.only(mem, MEMORY_LEVELS, "memory.")
    memory: dict[str, MemoryLevel] = {}
    for lvl in MEMORY_LEVELS:
        m = r.table(mem, lvl, "memory.")
        w = f"memory.{lvl}."
        r.only(m, SCHEMA["memory.LEVEL"], w)
        memory[lvl] = MemoryLevel(lvl, r.number(m, "read_pj_per_byte", w, what="energy"),
                                  r.number(m, "write_pj_per_byte", w, what="energy"),
                                  r.string(m, "note", w, required=False) or "")

    ops_raw = r.table(doc, "op", "")
    for kind in ops_raw:
        if kind not in PROFILE_OPS:
            hint = " (a MAC is priced as op.mul + op.add)" if kind == "mac" else ""
            raise r.fail(f"unknown operation kind 'op.{_key(kind)}'; valid: {', '.join(PROFILE_OPS)}{hint}")
    for kind in REQUIRED_OPS:
        if kind not in ops_raw:
            raise r.fail(f"missing entry 'op.{kind}'")
    ops = {kind: _op_entry(r, kind, r.table(ops_raw, kind, "op.")) for kind in ops_raw}
    profile = HardwareProfile(name=name, path=path, technology_nm=tech, array=array, vector_unit=vector, memory=memory,
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


def builtin_profile_text(name: str) -> str:
    """The TOML text of a built-in profile (a starting point for a profile of one's own).

    Raises :class:`~intsim.core.errors.ConfigError` listing the built-ins for an unknown name.

    >>> builtin_profile_text("qkeras_fit").splitlines()[0]
    '# The QKeras QTools fit of the Horowitz 45 nm table, for any integer width b.'
    """
    builtins = builtin_profiles()
    if name not in builtins:
        raise ConfigError(f"no built-in profile {name!r}; built-in profiles: {', '.join(builtins)}")
    return builtins[name].read_text(encoding="utf-8")


def load_profile(name_or_path: str | os.PathLike) -> HardwareProfile:
    """Load a built-in profile by name (``horowitz45``, ``qkeras_fit``, ``aladdin40``) or a TOML file.

    Raises :class:`~intsim.core.errors.ConfigError` naming the file for an unknown name, a
    missing or unreadable file, a directory, a file that is not UTF-8 TOML (including
    nesting too deep to parse) and an invalid profile (naming the key).

    >>> load_profile("aladdin40").energy("mul", (32, 32))
    12.68
    """
    builtins = builtin_profiles()
    key = os.fspath(name_or_path)
    if key in builtins:
        path = builtins[key]
    else:
        path = Path(key)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, ValueError) as exc:  # e.g. a name too long, an embedded NUL
            raise ConfigError(f"profile {_show_path(key)}: not a usable file name: {exc}") from None
        if is_dir:
            raise ConfigError(f"profile {path}: is a directory, not a TOML file")
        if not exists:
            raise ConfigError(f"no profile {_show_path(key)}: not a built-in ({', '.join(builtins)}) and no such "
                              "file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"profile {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"profile {path}: not a UTF-8 text file (byte {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"profile {path}: not valid TOML: values nested too deeply to parse") from None
    try:
        return parse_profile(doc, str(path))
    except RecursionError:  # pragma: no cover - parse_profile reads a fixed depth; kept as a last guard
        raise ConfigError(f"profile {path}: values nested too deeply") from None
