"""Integer formats: :class:`IntType`, a b-bit two's-complement or unsigned integer.

An ``IntType`` is a value description, not a container: it knows its range and
converts numbers into it by checking, wrapping or saturating. Widths run from 1
to 64 bits. A signed b-bit type holds [-2**(b-1), 2**(b-1) - 1] (so a signed
1-bit type holds -1 and 0); an unsigned one holds [0, 2**b - 1].

>>> from intsim import IntType
>>> t = IntType(4)
>>> t.min, t.max
(-8, 7)
>>> t.wrap(9), t.saturate(9)
(-7, 7)
>>> IntType(8, signed=False).wrap(-1)
255
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import as_int_array, short_repr
from .errors import ConfigError, OperandRangeError

__all__ = ["IntType"]

_NAME = re.compile(r"^(u?)int(\d+)$")


def _dtype_bounds(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


@dataclass(frozen=True)
class IntType:
    """A ``bits``-wide integer, two's complement when ``signed`` (1 <= bits <= 64).

    Methods accept Python ints (exact, any size, returning Python ints) and numpy
    integer arrays (returning arrays). Float input is refused with
    :class:`~intsim.core.errors.DTypeError`.
    """

    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.bits, (bool, np.bool_)) or not isinstance(self.bits, (int, np.integer)):
            hint = f"; for a type name use IntType.parse({self.bits!r})" if isinstance(self.bits, str) else ""
            raise ConfigError(f"IntType bits must be an integer from 1 to 64, got {short_repr(self.bits)}{hint}")
        if not 1 <= int(self.bits) <= 64:
            raise ConfigError(f"IntType bits must be from 1 to 64, got {self.bits}")
        if not isinstance(self.signed, (bool, np.bool_)):
            raise ConfigError(f"IntType signed must be True or False, got {self.signed!r}")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "signed", bool(self.signed))

    # --- description -------------------------------------------------------------------------
    @classmethod
    def parse(cls, name: str | IntType) -> IntType:
        """Read ``"int8"``, ``"uint4"``, ``"int32"``... (or pass an IntType through)."""
        if isinstance(name, IntType):
            return name
        m = _NAME.match(str(name).strip().lower())
        if not m:
            hint = (f"; for a {name}-bit signed type use IntType({name})"
                    if isinstance(name, (int, np.integer)) and not isinstance(name, (bool, np.bool_)) else "")
            raise ConfigError(f"not an integer type name: {short_repr(name)} (expected an IntType or a name "
                              f"such as 'int8' or 'uint4'){hint}")
        return cls(int(m.group(2)), signed=not m.group(1))

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}"

    def __str__(self) -> str:
        return self.name

    @property
    def min(self) -> int:
        """Smallest value, a Python int."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """Largest value, a Python int."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def dtype(self) -> np.dtype:
        """The narrowest numpy dtype that holds every value of this type."""
        for width in (8, 16, 32, 64):
            if self.bits <= width:
                return np.dtype(f"{'int' if self.signed else 'uint'}{width}")
        raise AssertionError("unreachable")

    # --- range ---------------------------------------------------------------------------------
    def contains(self, x: Any) -> Any:
        """Elementwise ``min <= x <= max``: a bool for a Python int, a bool array otherwise."""
        if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
            return self.min <= int(x) <= self.max
        arr = as_int_array(x, "x")
        lo_d, hi_d = _dtype_bounds(arr.dtype)
        ok = np.ones(arr.shape, dtype=bool)
        if self.min > lo_d:
            ok &= arr >= arr.dtype.type(self.min)
        if self.max < hi_d:
            ok &= arr <= arr.dtype.type(self.max)
        return ok

    def check(self, x: Any, name: str = "x") -> Any:
        """Return ``x`` (as an integer array, or the Python int) if every entry is in range.

        Otherwise raise :class:`~intsim.core.errors.OperandRangeError` with the number of
        offending entries and the first one (row-major) with its index and value.
        """
        if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
            if not self.min <= int(x) <= self.max:
                raise OperandRangeError(f"{name}: {int(x)} is outside {self.name} [{self.min}, {self.max}]",
                                        count=1, index=(), value=int(x))
            return int(x)
        arr = as_int_array(x, name)
        if arr.size == 0:
            return arr
        info = np.iinfo(arr.dtype)  # a bound the dtype already guarantees needs no pass over the data
        lo = int(arr.min()) if int(info.min) < self.min else self.min
        hi = int(arr.max()) if int(info.max) > self.max else self.max
        if lo >= self.min and hi <= self.max:
            return arr
        bad = ~self.contains(arr)
        count = int(np.count_nonzero(bad))
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        idx = tuple(int(i) for i in np.unravel_index(first, arr.shape))
        value = int(arr[idx])
        raise OperandRangeError(
            f"{name}: {count} of {arr.size} entries are outside {self.name} [{self.min}, {self.max}]; "
            f"first at index {idx}: {value}", count=count, index=idx, value=value)

    # --- conversion ----------------------------------------------------------------------------
    def wrap(self, x: Any) -> Any:
        """Two's-complement wrap into the type: keep the low ``bits`` bits.

        For arrays the result is int64 (uint64 for ``uint64``). Exact for any
        int64/uint64 input, since the low 64 bits of a value are the same in both.
        """
        if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
            v = int(x) & ((1 << self.bits) - 1)
            if self.signed and v >> (self.bits - 1):
                v -= 1 << self.bits
            return v
        arr = as_int_array(x, "x")
        if self.bits == 64:
            return arr.astype(np.int64 if self.signed else np.uint64)
        u = arr.astype(np.uint64) & np.uint64((1 << self.bits) - 1)
        if not self.signed:
            return u.astype(np.int64)
        sign = np.uint64(1 << (self.bits - 1))
        return ((u ^ sign) - sign).view(np.int64)  # sign extension, exact modulo 2**64 (bits up to 63 too)

    def saturate(self, x: Any) -> Any:
        """Clamp into ``[min, max]``. Arrays keep their dtype when it holds the type's range,
        otherwise become int64 (uint64 for ``uint64``)."""
        if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
            return min(max(int(x), self.min), self.max)
        arr = as_int_array(x, "x")
        lo_d, hi_d = _dtype_bounds(arr.dtype)
        lo, hi = max(self.min, lo_d), min(self.max, hi_d)
        if lo > hi:  # e.g. uint8 data into a negative-only range cannot happen; defensive
            raise ConfigError(f"cannot saturate {arr.dtype} data into {self.name}")
        out = np.clip(arr, arr.dtype.type(lo), arr.dtype.type(hi))
        target = np.dtype(np.int64) if self.signed or self.bits < 64 else np.dtype(np.uint64)
        if self.min < lo_d or self.max > hi_d:
            out = out.astype(target)
        return out
