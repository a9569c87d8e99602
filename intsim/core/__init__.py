"""Layer 1, the vocabulary every other layer uses: errors, integer types, named rounding modes,
dyadic scales, op counts, input checks, safe file writes and the numba cache setup.

Nothing here imports from another intsim layer.
"""
