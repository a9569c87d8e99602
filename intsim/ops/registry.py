"""Every registered integer operator, by ``<family>.<name>`` (``ibert.softmax``, ``illm.swiglu``...).

A family is an operator module of :mod:`intsim.ops` with an ``OPS`` table of
:class:`~intsim.ops.opspec.OpSpec` records (:data:`FAMILIES`). Adding an operator to its module's
``OPS`` makes it available to ``intsim golden`` (as a golden-suite operator), to
``intsim compile`` and to the reports.

>>> from intsim.ops.registry import operators, get_op
>>> "ibert.softmax" in operators(), get_op("ivit.shiftmax").variants
(True, ('pytorch', 'tvm', 'corrected'))
"""

from __future__ import annotations

import functools
import importlib

from ..core.errors import ConfigError
from .opspec import OpSpec

__all__ = ["FAMILIES", "operators", "get_op"]

#: family prefix -> module holding its ``OPS`` table
FAMILIES: dict[str, str] = {
    "ibert": "intsim.ops.ibert",
    "ivit": "intsim.ops.ivit",
    "illm": "intsim.ops.illm",
    "isqrt": "intsim.ops.isqrt",
    "tflite": "intsim.ops.tflite_act",
}


@functools.cache
def _all() -> dict[str, OpSpec]:
    out: dict[str, OpSpec] = {}
    for family, module in FAMILIES.items():
        for spec in importlib.import_module(module).OPS:
            out[f"{family}.{spec.name}"] = spec
    return out


def operators() -> dict[str, OpSpec]:
    """``<family>.<name>`` -> :class:`OpSpec` of every registered operator (a copy)."""
    return dict(_all())


def get_op(name: str) -> OpSpec:
    """The operator registered as ``name``; ConfigError listing the valid names otherwise."""
    ops = _all()
    if isinstance(name, str) and name in ops:
        return ops[name]
    raise ConfigError(f"unknown operator {name!r}; registered: {', '.join(sorted(ops))}")
