"""Layer 3, the emulated hardware: the datapath description, exact GEMM on it (and its numba
kernels), and IM-Unpack (low-bit GEMMs of large-integer matrices).

Imports :mod:`intsim.core` (and :mod:`intsim.regs`).
"""
