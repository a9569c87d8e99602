"""The common result of an integer operator: :class:`OpResult`.

Every integer operator (requantization, softmax, GELU, norms, ...) returns its
integer outputs with their scale, its exact op counts, the register report of
the call and the named intermediate registers (taps) for golden vectors.

>>> import numpy as np
>>> from intsim.regs.opresult import OpResult
>>> r = OpResult(values=np.array([1, 2]), scale=0.5)
>>> r.dequantize().tolist()
[0.5, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.opcounts import OpCounts
from .registers import RegisterFile

__all__ = ["OpResult"]


@dataclass
class OpResult:
    """Integer outputs of an operator.

    Attributes
    ----------
    values:
        int64 array of integer outputs.
    scale:
        the real value of one output step: a float, or an array broadcastable
        against ``values`` (for example one scale per row), or a Dyadic.
    ops:
        exact op counts of the call.
    registers:
        the :class:`~intsim.regs.registers.RegisterFile` of the call (overflow events).
    taps:
        named intermediate registers (int64 arrays), in the order they are computed.
    """

    values: np.ndarray
    scale: Any = 1.0
    ops: OpCounts = field(default_factory=OpCounts)
    registers: RegisterFile | None = None
    taps: dict[str, np.ndarray] = field(default_factory=dict)

    def dequantize(self) -> np.ndarray:
        """``values * scale`` in float64 (for accuracy studies, never inside the integer path)."""
        scale = self.scale
        if hasattr(scale, "value"):
            scale = scale.value
        return self.values.astype(np.float64) * np.asarray(scale, dtype=np.float64)

    @property
    def overflowed(self) -> bool:
        return bool(self.registers is not None and self.registers.events)
