"""The parameters of a sweep kind (:class:`Param`) and the checks of their values: each check
returns the normalized value or raises ConfigError naming where the value was given."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...core.errors import ConfigError

__all__ = ["Param", "check_int", "check_float", "check_choice", "check_bool", "check_str", "check_sentences",
           "n_sentences"]


@dataclass(frozen=True)
class Param:
    """A parameter of a kind: its name, default (None: absent unless given), help text and
    ``check(value, where)``, which returns the normalized value or raises ConfigError naming ``where``."""

    name: str
    default: Any
    help: str
    check: Callable[[Any, str], Any]
    axis: bool = True  # may it be a list (an axis)?


def check_int(lo: int, hi: int) -> Callable[[Any, str], int]:
    """The check of an integer from ``lo`` to ``hi``.

    >>> check_int(2, 32)(4, "grid.bits")
    4
    """
    def check(v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{where}: must be an integer from {lo} to {hi}, got {v!r}")
        return v
    return check


def check_float(lo: float, hi: float, lo_open: bool = False) -> Callable[[Any, str], float]:
    """The check of a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), returned as a float."""
    def check(v: Any, where: str) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or v > hi or v < lo or (lo_open and v == lo):
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise ConfigError(f"{where}: must be a number in {interval}, got {v!r}")
        return float(v)
    return check


def check_choice(values: Sequence[str]) -> Callable[[Any, str], str]:
    """The check of one of ``values``."""
    def check(v: Any, where: str) -> str:
        if v not in values:
            raise ConfigError(f"{where}: must be one of {', '.join(values)}, got {v!r}")
        return v
    return check


def check_bool(v: Any, where: str) -> bool:
    """The check of true or false."""
    if not isinstance(v, bool):
        raise ConfigError(f"{where}: must be true or false, got {v!r}")
    return v


def check_str(v: Any, where: str) -> str:
    """The check of a non-empty string, returned stripped."""
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: must be a non-empty string, got {v!r}")
    return v.strip()


def n_sentences() -> int:
    """How many sentences ``intsim_reference.sentences`` holds."""
    try:
        from intsim_reference.sentences import SENTENCES
    except ImportError:  # pragma: no cover - depends on the checkout
        return 44
    return len(SENTENCES)


def check_sentences(v: Any, where: str) -> int:
    """The check of a number of MiniLM sentences (1 to :func:`n_sentences`)."""
    return check_int(1, n_sentences())(v, where)

