"""Named rounding modes, exact on Python ints and on int64 arrays.

Every operation in intsim that drops bits names its rounding. The canonical
names, and what they do to the exact quotient q = x / d:

================  ==============================================  =====================================
name              rule                                            aliases (APyTypes / ap_fixed)
================  ==============================================  =====================================
``floor``         toward -inf (keep the high bits: ``x >> n``)    TRN, TO_NEG, AP_TRN
``ceil``          toward +inf                                     TRN_INF, TO_POS
``trunc``         toward zero (C integer division)                TRN_ZERO, TO_ZERO, AP_TRN_ZERO
``away``          away from zero                                  TRN_AWAY, TO_AWAY
``half_even``     nearest, ties to even (convergent, IEEE 754)    RND_CONV, TIES_EVEN, AP_RND_CONV
``half_odd``      nearest, ties to odd                            RND_CONV_ODD, TIES_ODD
``half_away``     nearest, ties away from zero (C ``round``)      RND_INF, TIES_AWAY, AP_RND_INF
``half_up``       nearest, ties toward +inf                       RND, TIES_POS, AP_RND
``half_down``     nearest, ties toward -inf                       RND_MIN_INF, TIES_NEG, AP_RND_MIN_INF
``half_zero``     nearest, ties toward zero                       RND_ZERO, TIES_ZERO, AP_RND_ZERO
``jam``           floor, then force the lowest bit to 1           JAM (von Neumann rounding)
``jam_unbiased``  floor, then set the lowest bit if inexact       JAM_UNBIASED
================  ==============================================  =====================================

Names are case-insensitive; ``AP_`` prefixes and ``-``/``_`` are accepted.
``TRN_MAG`` and the stochastic modes are refused: intsim has no deterministic,
documented rule for them that it could promise to match.

Traps in other libraries, for users porting a model:

* fxpmath ``trunc`` is ``np.trunc`` (toward zero); hardware "truncation"
  (ap_fixed ``AP_TRN``, APyTypes ``TRN``) is ``floor``.
* numfi ``Nearest``, ``Round`` and ``Convergent`` all round ties away from zero
  (add 0.5 then cast); MATLAB's ``Convergent`` is ties-to-even.
* ``AP_RND`` (and APyTypes ``RND``) is ties toward +inf, not ties-to-even.
* ``np.round``/``np.rint``/Python ``round`` are ties-to-even; C ``round``/
  ``std::round`` (TFLite ``TfLiteRound``) are ties away from zero.
* qonnx ``IntQuant`` and TVM Relay QNN clamp before rounding; ONNX and TFLite
  round, then saturate. The two differ at the saturation boundary.

>>> from intsim import shift_right, div_round
>>> [shift_right(x, 1, "half_even") for x in (-3, -1, 1, 3)]
[-2, 0, 0, 2]
>>> [shift_right(x, 1, "half_away") for x in (-3, -1, 1, 3)]
[-2, -1, 1, 2]
>>> div_round(-7, 2, "trunc"), div_round(-7, 2, "floor"), div_round(-7, 2, "RND")
(-3, -4, -3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import INT64_MAX, as_int_array, to_int64
from .errors import ConfigError, OperandRangeError

__all__ = ["ROUNDING_MODES", "ROUNDING_CODE", "rounding_mode", "shift_right", "div_round", "round_float"]

ROUNDING_MODES: tuple[str, ...] = (
    "floor", "ceil", "trunc", "away",
    "half_even", "half_odd", "half_away", "half_up", "half_down", "half_zero",
    "jam", "jam_unbiased",
)
#: the one numeric encoding of the rounding modes every numba kernel receives (the position in
#: :data:`ROUNDING_MODES`: ``floor`` 0, ``ceil`` 1, ``trunc`` 2, ``away`` 3, ``half_even`` 4, ...)
ROUNDING_CODE: dict[str, int] = {name: i for i, name in enumerate(ROUNDING_MODES)}
FLOOR, CEIL, TRUNC, AWAY, HALF_EVEN, HALF_ODD, HALF_AWAY, HALF_UP, HALF_DOWN, HALF_ZERO, JAM, JAM_UNBIASED = range(12)

_ALIASES: dict[str, str] = {
    "trn": "floor", "to_neg": "floor", "floor": "floor",
    "trn_inf": "ceil", "to_pos": "ceil", "ceil": "ceil",
    "trn_zero": "trunc", "to_zero": "trunc", "trunc": "trunc",
    "trn_away": "away", "to_away": "away", "away": "away",
    "rnd_conv": "half_even", "ties_even": "half_even", "half_even": "half_even", "convergent": "half_even",
    "rnd_conv_odd": "half_odd", "ties_odd": "half_odd", "half_odd": "half_odd",
    "rnd_inf": "half_away", "ties_away": "half_away", "half_away": "half_away",
    "rnd": "half_up", "ties_pos": "half_up", "half_up": "half_up",
    "rnd_min_inf": "half_down", "ties_neg": "half_down", "half_down": "half_down",
    "rnd_zero": "half_zero", "ties_zero": "half_zero", "half_zero": "half_zero",
    "jam": "jam", "jam_unbiased": "jam_unbiased",
}

_REFUSED = {"trn_mag", "stoch_weighted", "stoch_equal"}


def rounding_mode(name: str) -> str:
    """Return the canonical name of a rounding mode or alias; raise ConfigError otherwise.

    >>> rounding_mode("AP_RND_CONV"), rounding_mode("TIES_AWAY"), rounding_mode("TRN")
    ('half_even', 'half_away', 'floor')
    """
    if not isinstance(name, str):
        raise ConfigError(f"rounding mode must be a string, got {name!r}; valid: {', '.join(ROUNDING_MODES)}")
    key = name.strip().lower().replace("-", "_")
    if key.startswith("ap_"):
        key = key[3:]
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _REFUSED:
        raise ConfigError(f"rounding mode {name!r} is not supported (no deterministic rule intsim can "
                          f"promise to match); valid: {', '.join(ROUNDING_MODES)}")
    raise ConfigError(f"unknown rounding mode {name!r}; valid: {', '.join(ROUNDING_MODES)} "
                      "(APyTypes/ap_fixed names such as TRN, RND, RND_CONV, TIES_EVEN are accepted too)")


def _is_scalar_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _round_int(q: int, r: int, d: int, mode: str) -> int:
    """Round x = q*d + r (0 <= r < d) to an integer under ``mode``; Python ints."""
    if mode == "jam":
        return q | 1
    if r == 0:
        return q
    if mode == "floor":
        return q
    if mode == "ceil":
        return q + 1
    if mode == "trunc":
        return q + 1 if q < 0 else q  # x < 0 iff q < 0 when r > 0
    if mode == "away":
        return q if q < 0 else q + 1
    if mode == "jam_unbiased":
        return q | 1
    twice = 2 * r
    if twice < d:
        return q
    if twice > d:
        return q + 1
    # exact tie: x = q + 1/2
    if mode == "half_even":
        return q + (q & 1)
    if mode == "half_odd":
        return q + 1 - (q & 1)
    if mode == "half_away":
        return q + 1 if q >= 0 else q
    if mode == "half_up":
        return q + 1
    if mode == "half_down":
        return q
    if mode == "half_zero":
        return q if q >= 0 else q + 1
    raise AssertionError(mode)


def _round_arr(q: np.ndarray, r: np.ndarray, d: Any, mode: str) -> np.ndarray:
    """Vectorized :func:`_round_int` on int64 arrays (``d`` scalar or array, d >= 1)."""
    inexact = r != 0
    if mode == "floor":
        return q
    if mode == "ceil":
        return q + inexact
    if mode == "trunc":
        return q + (inexact & (q < 0))
    if mode == "away":
        return q + (inexact & (q >= 0))
    if mode == "jam":
        return q | 1
    if mode == "jam_unbiased":
        return q | inexact.astype(np.int64)
    # compare 2r with d without overflow: r ? d - r
    rest = d - r
    above = r > rest
    tie = r == rest
    if mode == "half_even":
        up = tie & ((q & 1) == 1)
    elif mode == "half_odd":
        up = tie & ((q & 1) == 0)
    elif mode == "half_away":
        up = tie & (q >= 0)
    elif mode == "half_up":
        up = tie
    elif mode == "half_down":
        up = np.zeros_like(tie)
    elif mode == "half_zero":
        up = tie & (q < 0)
    else:
        raise AssertionError(mode)
    return q + (above | up)


def _check_shift(n: Any) -> Any:
    if _is_scalar_int(n):
        if int(n) < 0:
            raise ConfigError(f"shift amount must be >= 0, got {int(n)}")
        return int(n)
    arr = as_int_array(n, "n")
    if arr.size and int(arr.min()) < 0:
        raise ConfigError(f"shift amounts must be >= 0, got a minimum of {int(arr.min())}")
    return to_int64(arr, "n")


def shift_right(x: Any, n: Any, rounding: str = "floor") -> Any:
    """Arithmetic right shift by ``n >= 0`` bits with the named rounding: round(x / 2**n).

    ``x`` is a Python int (exact at any size; returns a Python int) or an integer
    array (computed exactly in int64; returns int64). ``n`` is an int or an array
    broadcast against ``x``. ``floor`` is the plain ``>>`` of two's-complement
    hardware. The result of a rounding up can exceed the input range only for
    n = 0, which never rounds.

    >>> shift_right(-5, 1, "floor"), shift_right(-5, 1, "trunc"), shift_right(-5, 1, "half_up")
    (-3, -2, -2)
    """
    mode = rounding_mode(rounding)
    n = _check_shift(n)
    if _is_scalar_int(x) and isinstance(n, int):
        x = int(x)
        return _round_int(x >> n, x & ((1 << n) - 1), 1 << n, mode)
    xa = to_int64(as_int_array(x, "x"), "x")
    na = np.asarray(n, dtype=np.int64)
    if na.size and int(na.max()) >= 63:
        # 2**n does not fit int64: take the exact Python-int path for these rare shifts.
        return _shift_wide(xa, na, mode)
    d = np.left_shift(np.int64(1), na)
    q = np.right_shift(xa, na)
    r = xa & (d - 1)
    return _round_arr(q, r, d, mode)


def div_round(x: Any, d: Any, rounding: str = "floor") -> Any:
    """Divide by a positive integer ``d`` with the named rounding: round(x / d).

    Exact on Python ints (any size) and on int64 arrays (``d`` an int or an
    array broadcast against ``x``). ``d <= 0`` raises ConfigError.

    >>> [div_round(v, 3, "half_even") for v in (-5, -4, 4, 5)]
    [-2, -1, 1, 2]
    """
    mode = rounding_mode(rounding)
    if _is_scalar_int(d):
        if int(d) <= 0:
            raise ConfigError(f"divisor must be a positive integer, got {int(d)}")
        if _is_scalar_int(x):
            q, r = divmod(int(x), int(d))
            return _round_int(q, r, int(d), mode)
        if int(d) > INT64_MAX:
            raise OperandRangeError(f"divisor {int(d)} exceeds int64", count=1, value=int(d))
        da: Any = np.int64(int(d))
    else:
        da = to_int64(as_int_array(d, "d"), "d")
        if da.size and int(da.min()) <= 0:
            raise ConfigError(f"divisors must be positive integers, got a minimum of {int(da.min())}")
    xa = to_int64(as_int_array(x, "x"), "x")
    q = np.floor_divide(xa, da)
    r = xa - q * da  # in [0, d): no overflow since |q*d| <= |x| + d
    return _round_arr(q, r, da, mode)


def _shift_wide(xa: np.ndarray, na: np.ndarray, mode: str) -> np.ndarray:
    xb, nb = np.broadcast_arrays(xa, na)
    out = np.empty(xb.shape, dtype=np.int64)
    for idx in np.ndindex(xb.shape):
        out[idx] = shift_right(int(xb[idx]), int(nb[idx]), mode)
    return out


def round_float(x: Any, rounding: str = "half_even") -> np.ndarray:
    """Round a float array to integers (int64) with the named rounding; exact.

    NaN and Inf, and values outside int64, raise
    :class:`~intsim.core.errors.OperandRangeError`. Used by quantizers, where the
    float-to-integer step is the one place a float enters.

    >>> round_float(np.array([-2.5, -0.5, 0.5, 2.5]), "half_away").tolist()
    [-3, -1, 1, 3]
    """
    mode = rounding_mode(rounding)
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.isfinite(a.reshape(-1)))
        idx = tuple(int(i) for i in np.unravel_index(int(bad[0]), a.shape))
        raise OperandRangeError(f"{bad.size} entries are NaN or Inf; first at index {idx}: {a[idx]}",
                                count=int(bad.size), index=idx)
    if a.size and (a.max() >= 2.0**63 or a.min() < -(2.0**63)):
        raise OperandRangeError("values beyond int64 cannot be rounded to int64", count=1)
    fl = np.floor(a)
    frac = a - fl  # exact for doubles
    q = fl.astype(np.int64)
    if mode == "floor":
        return q
    if mode in ("jam", "jam_unbiased"):
        return q | 1 if mode == "jam" else q | (frac != 0).astype(np.int64)
    # map onto the integer rule with d = 2: r encodes frac as below/at/above one half
    r = np.where(frac == 0, 0, np.where(frac < 0.5, 1, np.where(frac == 0.5, 2, 3)))
    return _round_arr(q, r, 4, mode)
