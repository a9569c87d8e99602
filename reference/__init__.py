"""Float64 reference implementations: the ground truth for intsim's accuracy figures.

Nothing here is bit-exact hardware: these are the real-valued operations that integer
kernels approximate, computed in numpy float64.
"""
