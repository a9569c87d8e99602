"""Typed errors raised by intsim.

Every error intsim raises on bad input or on an arithmetic event the caller
asked to be told about derives from :class:`IntsimError`, so a caller can catch
them all in one place and still tell them apart.

>>> from intsim.core.errors import IntsimError, ConfigError
>>> issubclass(ConfigError, IntsimError) and issubclass(ConfigError, ValueError)
True
"""

from __future__ import annotations

__all__ = [
    "describe_os_error",
    "IntsimError",
    "ConfigError",
    "OperandRangeError",
    "AccumulatorOverflow",
    "RegisterOverflow",
    "DTypeError",
    "ShapeError",
    "WeightsMismatchError",
    "FileFormatError",
    "ModelNotInstalledError",
]


class IntsimError(Exception):
    """Base class of every error intsim raises on purpose."""


class ConfigError(IntsimError, ValueError):
    """An invalid configuration: a width out of range, an unknown rounding mode
    or overflow policy, an inconsistent option. The message lists valid values."""


class OperandRangeError(IntsimError, ValueError):
    """An operand holds values outside the integer type it is declared to have.

    Attributes: ``count`` (offending entries), ``index`` (first offending index,
    a tuple, row-major order), ``value`` (its value, a Python int).
    """

    def __init__(self, message: str, *, count: int = 0, index: tuple = (), value: int | None = None):
        super().__init__(message)
        self.count = count
        self.index = index
        self.value = value


class AccumulatorOverflow(IntsimError, ArithmeticError):
    """An accumulator (or adder-tree) register overflowed under ``overflow="raise"``.

    Attributes: ``index`` (the output (i, j)), ``k`` (the k step, the index of
    the last product that entered the register in the overflowing add),
    ``value`` (the exact value that did not fit), ``bits``.
    """

    def __init__(self, message: str, *, index: tuple = (), k: int = -1, value: int | None = None, bits: int = 0):
        super().__init__(message)
        self.index = index
        self.k = k
        self.value = value
        self.bits = bits


class RegisterOverflow(IntsimError, ArithmeticError):
    """An intermediate register of an operator overflowed under ``overflow="raise"``.

    Attributes: ``op`` (operator), ``step`` (its named step), ``value``, ``bits``.
    """

    def __init__(self, message: str, *, op: str = "", step: str = "", value: int | None = None, bits: int = 0):
        super().__init__(message)
        self.op = op
        self.step = step
        self.value = value
        self.bits = bits


class DTypeError(IntsimError, TypeError):
    """An array of the wrong kind: a float or object array where integers are due."""


class ShapeError(IntsimError, ValueError):
    """Array shapes that do not fit together; the message names the shapes."""


class FileFormatError(IntsimError, ValueError):
    """A file that is missing, truncated, corrupted or not of the expected format;
    the message names the file and the problem."""


class WeightsMismatchError(FileFormatError):
    """Model weights whose SHA-256 is not the pinned one (a modified file, or another model);
    the message names the file and both hashes."""


class ModelNotInstalledError(IntsimError, ImportError):
    """A model package (or another optional dependency) is not installed; the
    message says which extra to install."""


class AccuracyWarning(UserWarning):
    """An operator variant used outside the input scales it was designed for: intsim still
    emulates that variant bit for bit, but its result is far from the function it approximates
    (the message says how far and which variant holds up). Silence it with the standard
    ``warnings`` filters, e.g. ``warnings.simplefilter("ignore", intsim.AccuracyWarning)``."""


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: what failed and on which file(s), e.g.
    ``permission denied: /data/out (errno 13)``."""
    what = (exc.strerror or type(exc).__name__).lower()
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    code = f" (errno {exc.errno})" if exc.errno is not None else ""
    return f"{what}: {files}{code}" if files else f"{what}{code}: {exc}"
