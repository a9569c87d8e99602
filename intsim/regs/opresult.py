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
from .registers import RegisterEvent, RegisterFile

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
    def events(self) -> tuple[RegisterEvent, ...]:
        """The register overflow events of the call, one per step that overflowed, in the
        order they were recorded (``()`` without a register file). The same protocol as
        :attr:`GemmResult.events <intsim.hw.gemm.GemmResult.events>`,
        :attr:`UnpackResult.events <intsim.hw.unpack.UnpackResult.events>` and
        :attr:`LLMInt8Result.events <intsim.quant.llmint8.LLMInt8Result.events>`: each
        :class:`~intsim.regs.registers.RegisterEvent` names the op, the step (register), its
        width, signedness and policy, how many values did not fit, the index of the first and
        that value (before the policy applied).

        >>> from intsim.regs.registers import RegisterFile
        >>> regs = RegisterFile("demo", {"acc": 8}, overflow="wrap")
        >>> r = OpResult(values=regs.check("acc", np.array([5, 300, 400])), registers=regs)
        >>> [(e.step, e.count, e.index, e.value, e.policy) for e in r.events], r.overflowed
        ([('acc', 2, (1,), 300, 'wrap')], True)
        """
        return tuple(self.registers.events) if self.registers else ()

    @property
    def overflowed(self) -> bool:
        """True when some register overflowed (``events`` is not empty)."""
        return bool(self.registers is not None and self.registers.events)
