"""The record every integer operator is registered with: :class:`OpSpec`.

Each operator module of :mod:`intsim.ops` lists its operators in one table, ``OPS``, a tuple of
``OpSpec`` records; :mod:`intsim.ops.registry` gathers them under ``<family>.<name>`` names
(``ibert.softmax``), which the golden tools, the reports and the precompiler use.

>>> from intsim.ops.ibert import OPS
>>> spec = next(s for s in OPS if s.name == "softmax")
>>> spec.inputs, spec.variants
(('x', 'scale'), ('published', 'corrected'))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["OpSpec"]


@dataclass(frozen=True)
class OpSpec:
    """One operator: its ``name`` in its family, the function, the names of its positional
    inputs (tensors such as ``x``, ``gate``, ``up`` and scalars such as ``scale``), and the values
    its ``variant=`` keyword accepts (empty when it has a single form)."""

    name: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...] = ("x", "scale")
    variants: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The first line of the function's docstring."""
        doc = (getattr(self.fn, "__doc__", "") or "").strip()
        return doc.splitlines()[0] if doc else ""
