"""Layer 2, the checked-register runtime shared by every integer operator: the register file
(declared widths and overflow policies), the per-call plan and the numba register primitives
the operator kernels inline, and :class:`~intsim.regs.opresult.OpResult`.

Imports only :mod:`intsim.core`.
"""
