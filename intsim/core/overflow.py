"""Overflow policies: what a register does with a value outside its range.

=============  ====  =================================================================
policy         code  what the register holds afterwards
=============  ====  =================================================================
``wrap``       0     the value modulo 2**bits, re-centred for a signed register
``saturate``   1     the nearest end of the register's range
``raise``      2     nothing: :class:`~intsim.core.errors.RegisterOverflow` is raised
``record``     3     the value unchanged; the event is recorded (reported afterwards)
=============  ====  =================================================================

:data:`POLICY_CODE` is the one numeric encoding every numba kernel of intsim receives (the GEMM
datapath, the gemmlowp fixed-point kernels and the operators' register runtime). The datapath
accepts ``wrap``, ``saturate`` and ``raise``; ``record`` is for the operators' registers.

>>> POLICY_CODE["saturate"], POLICIES
(1, ('wrap', 'saturate', 'raise', 'record'))
"""

from __future__ import annotations

__all__ = ["POLICIES", "POLICY_CODE", "WRAP", "SATURATE", "RAISE", "RECORD"]

WRAP, SATURATE, RAISE, RECORD = 0, 1, 2, 3
POLICIES: tuple[str, ...] = ("wrap", "saturate", "raise", "record")
POLICY_CODE: dict[str, int] = {"wrap": WRAP, "saturate": SATURATE, "raise": RAISE, "record": RECORD}
