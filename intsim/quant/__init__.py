"""Layer 4, quantization: float tensors to integers (quantizers), integer accumulators to narrow
integers (requantization, one back-end per mode), and LLM.int8() on the datapath.

Imports the layers below: :mod:`intsim.core`, :mod:`intsim.regs`, :mod:`intsim.hw`.
"""
