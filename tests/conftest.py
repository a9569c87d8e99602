"""Test configuration: hypothesis profiles.

``ci`` (the default, and what CI runs): derandomized, bounded examples, no deadline.
``dev``: many more examples, random seeds; select with ``HYPOTHESIS_PROFILE=dev``.
"""

import os

# the one-line first-compile notice would otherwise land in the stderr of whichever test compiles first
os.environ.setdefault("INTSIM_QUIET", "1")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=2000, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
