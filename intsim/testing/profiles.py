"""The hypothesis profiles intsim offers its users: ``intsim-ci`` and ``intsim-dev``.

``intsim-ci``
    derandomized (the same examples on every run, so CI is reproducible), 200 examples per
    test, no deadline (the first call of an intsim kernel may compile it), the ``too_slow`` and
    ``data_too_large`` health checks off, the reproduction blob printed on failure.
``intsim-dev``
    2000 examples per test from random seeds, for a longer local search; same other settings.

:func:`register_profiles` registers both (importing :mod:`intsim.testing` does it) without
loading either; :func:`load_profile` loads one. The pytest plugin (:mod:`intsim.testing.plugin`)
loads ``intsim-ci`` (or ``$INTSIM_HYPOTHESIS_PROFILE``) only when the run has not chosen a
profile already (``--hypothesis-profile``, or a ``settings.load_profile`` in a conftest; the
``ci`` profile hypothesis loads by itself on a CI service does not count).

>>> from hypothesis import settings
>>> register_profiles()
>>> settings.get_profile("intsim-ci").max_examples, settings.get_profile("intsim-ci").derandomize
(200, True)
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from ..core.errors import ConfigError

__all__ = ["PROFILES", "register_profiles", "load_profile"]

_COMMON: dict[str, Any] = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

#: profile name -> hypothesis settings keywords
PROFILES: dict[str, dict[str, Any]] = {
    "intsim-ci": {"derandomize": True, "max_examples": 200, "database": None, **_COMMON},
    "intsim-dev": {"max_examples": 2000, **_COMMON},
}


def register_profiles() -> None:
    """Register ``intsim-ci`` and ``intsim-dev`` with hypothesis (idempotent; loads neither)."""
    for name, kw in PROFILES.items():
        settings.register_profile(name, **kw)


def load_profile(name: str = "intsim-ci") -> None:
    """Register the profiles and load ``name`` (``intsim-ci`` or ``intsim-dev``); ConfigError otherwise."""
    if name not in PROFILES:
        raise ConfigError(f"unknown intsim hypothesis profile {name!r}; valid: {', '.join(PROFILES)}")
    register_profiles()
    settings.load_profile(name)
