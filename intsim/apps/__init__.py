"""The top layer: the ``intsim`` command line, the demo and the reports. Nothing below imports
it, and ``import intsim`` does not load it.
"""
