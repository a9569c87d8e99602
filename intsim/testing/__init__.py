"""Property-based testing of integer datapaths against intsim (needs hypothesis: ``pip install "intsim[test]"``).

A hardware or kernel team checks its own model of a datapath (a numpy or C++ model, a kernel,
a cocotb testbench's reference) against intsim's operators:

* :mod:`intsim.testing.strategies`: hypothesis strategies that draw where integer bugs live
  (range extremes, the most negative value, exact rounding ties, accumulator overflow
  boundaries, heavy-tailed matrices with outlier channels), datapath configurations,
  requantization parameters as each runtime allows them, inputs and scales of every registered
  operator, and whole golden-vector cases;
* :func:`assert_bit_exact`: an assertion whose message lists the differing entries with their
  index, expected and actual value in decimal and as hex words of the declared width;
* :func:`check_against`: hypothesis over an operator's input space, the candidate against
  intsim, the shrunk counterexample written as a one-case golden suite that
  ``intsim golden verify``/``compare`` (and an RTL simulation) replay;
* :mod:`intsim.testing.plugin`: a pytest plugin with the ``intsim-ci`` / ``intsim-dev`` hypothesis
  profiles and the ``intsim_check`` fixture.

``import intsim`` does not import this package (hypothesis is a test dependency).

>>> import numpy as np
>>> from intsim import requantize
>>> from intsim.testing import strategies, check_against, assert_bit_exact
>>> def model(x, *, scale, out, zero_point, in_type, **_):      # a correct half-to-even requantizer
...     return requantize(x, scale, "half_even", out, in_type=in_type, zero_point=zero_point,
...                       overflow="wrap").values
>>> check_against("requantize", model, config={"mode": "dyadic", "rounding": "half_even",
...                                               "overflow": "wrap"}, max_examples=25).examples
25
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("intsim.testing needs hypothesis; install it with: pip install \"intsim[test]\" "
                      "(or pip install hypothesis)") from exc

from . import strategies
from .checks import (
    RAISE_HANDLING,
    BitExactMismatch,
    CheckReport,
    CounterexampleFound,
    assert_bit_exact,
    check_against,
)
from .profiles import PROFILES, load_profile, register_profiles
from .strategies import GoldenCase

__all__ = [
    "strategies", "check_against", "assert_bit_exact", "BitExactMismatch", "CounterexampleFound", "CheckReport",
    "RAISE_HANDLING", "GoldenCase", "PROFILES", "register_profiles", "load_profile",
]

register_profiles()
