"""Deterministic test data for golden vectors: value distributions and corner sets.

Every input tensor of a case is drawn from its own PCG64 stream, seeded with
``SeedSequence([case_seed, crc32(tensor_name)])``, and only the stream's raw 64-bit
words are used (``PCG64.random_raw``), turned into integers by integer
arithmetic alone. Both SeedSequence and the PCG64 raw stream are frozen by
numpy's stability policy (NEP 19), so a case produces the same data on every
machine and numpy version; no float maths (libm) is involved.

Distributions (``dist``) over an input of integer type T = [lo, hi]:

==================  ===========================================================================
``uniform``         uniform on [low, high] (default: the whole type), both ends included
``heavy_tailed``    a power-law body plus heavy hitters: magnitude bit-length
                    ``min(scale_bits + G, mbits)`` with G geometric (P(G = g) = 2**-(g+1)), the
                    magnitude uniform below ``2**that``, a random sign (signed types only); then a
                    fraction ``outlier_rate`` of the entries, and every entry of
                    ``outlier_channels`` randomly chosen channels (last axis), is replaced by a
                    heavy hitter, uniform on [hi // 2, hi] or [lo, lo // 2] (sign at random)
``most_negative``   every entry ``lo`` (0 for unsigned types)
``most_positive``   every entry ``hi``
``zeros``           every entry 0
``constant``        every entry ``value``
``alternating``     checkerboard of the extremes: ``lo`` where the index sum is even, else ``hi``
``alternating_rows`` ``lo`` on even rows (first axis), ``hi`` on odd rows
``overflow``        data chosen by the operator to force its accumulator to overflow; the
                    operator records the pattern it uses in ``as`` (one of the corner sets)
``file``            the values of an integer ``.npy`` file instead of a distribution, written
                    ``{ file = "A.npy" }`` (or with ``dist = "file"``); see "Inputs from files"
==================  ===========================================================================

``mbits`` is the number of magnitude bits (``bits - 1`` signed, ``bits`` unsigned).
``outlier_channels`` is at most ``MAX_DIM`` (2**20; more than the channels means all of them).

**Inputs from files.** ``{ file = "A.npy" }`` takes an input's values from a ``.npy`` file (a
path relative to the spec file's folder, or absolute; ``../data/A.npy`` is fine). Optional keys
pin the file: ``sha256`` (64 hex digits) and ``bytes`` (its size); a file that differs from a
pin is refused. :func:`normalize_dist` only checks these keys and returns
``{"dist": "file", "file": ..., "sha256": ..., "bytes": ...}``; the spec reader
(:func:`intsim.golden.spec.spec_from_dict`) reads the file once the operator has declared the
input (:func:`intsim.core.npyfile.read_npy`: a regular file or a symbolic link to one, never a
FIFO or device; no pickles; size caps before reading; a truncated or corrupted file is a
FileFormatError), checks it against the declared input (an integer dtype, else DTypeError; the
declared shape exactly, else ShapeError; every value within the input's type, else
OperandRangeError; each message names the case, the input and the file) and fills in the
SHA-256 and size of the bytes it read, which the manifest records. :func:`generate` has
nothing to draw for such an input (ConfigError): its values are the file's.

>>> from intsim import IntType
>>> normalize_dist({"file": "data/A.npy"}, IntType(8), "case 'x': inputs.A")
{'dist': 'file', 'file': 'data/A.npy', 'sha256': None, 'bytes': None}
>>> generate(IntType(4), (2, 3), {"dist": "alternating"}, seed=1, name="A").tolist()
[[-8, 7, -8], [7, -8, 7]]
>>> a = generate(IntType(8), (1000,), {"dist": "uniform", "low": -3, "high": 3}, seed=7, name="A")
>>> int(a.min()), int(a.max())
(-3, 3)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.inttype import IntType
from ..core.npyfile import MAX_FILE_BYTES
from .keys import MAX_DIM, brief

__all__ = ["DISTRIBUTIONS", "normalize_dist", "generate", "uniform_ints", "stream", "MAX_FILE_PATH_CHARS"]

#: longest ``file`` path a spec may give (characters)
MAX_FILE_PATH_CHARS = 4096
_SHA256_HEX = frozenset("0123456789abcdef")

#: distribution name -> {parameter: default}; ``None`` marks a parameter computed from the type.
DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "uniform": {"low": None, "high": None},
    "heavy_tailed": {"scale_bits": None, "outlier_rate": 0.01, "outlier_channels": 0},
    "most_negative": {},
    "most_positive": {},
    "zeros": {},
    "constant": {"value": 0},
    "alternating": {},
    "alternating_rows": {},
    "overflow": {"as": None},
    "file": {"file": None, "sha256": None, "bytes": None},
}

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def normalize_dist(value: Any, t: IntType, where: str) -> dict[str, Any]:
    """Validate a distribution (a name or a table with ``dist`` and parameters) for type ``t``.

    Returns a dict with ``dist`` and every parameter, defaults filled in; raises
    :class:`~intsim.core.errors.ConfigError` naming ``where`` (e.g. ``case 'x': inputs.A``) and
    the offending key.
    """
    if isinstance(value, str):
        table: dict[str, Any] = {"dist": value}
    elif isinstance(value, Mapping):
        table = dict(value)
    else:
        raise ConfigError(f"{where}: must be a distribution name or a table with 'dist', got {brief(value)}")
    name = table.pop("dist", "file" if "file" in table else None)
    if "file" in table and name != "file":
        raise ConfigError(f"{where}.file: an input comes from a file or from a distribution, not both "
                          f"(dist = {brief(name)})")
    if not isinstance(name, str) or name not in DISTRIBUTIONS:
        raise ConfigError(f"{where}.dist: unknown distribution {brief(name)}; valid: {', '.join(DISTRIBUTIONS)}")
    defaults = DISTRIBUTIONS[name]
    unknown = sorted(str(k) for k in set(table) - set(defaults))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown parameter of distribution {name!r}; "
                          f"valid: {', '.join(defaults) or '(none)'}")
    out: dict[str, Any] = {"dist": name}
    for key, default in defaults.items():
        out[key] = table.get(key, default)
    mbits = t.bits - 1 if t.signed else t.bits
    if name == "uniform":
        for key, dflt in (("low", t.min), ("high", t.max)):
            v = out[key] if out[key] is not None else dflt
            if not _is_int(v) or not t.min <= v <= t.max:
                raise ConfigError(f"{where}.{key}: must be an integer in {t.name} [{t.min}, {t.max}], got {brief(v)}")
            out[key] = v
        if out["low"] > out["high"]:
            raise ConfigError(f"{where}: low ({out['low']}) is greater than high ({out['high']})")
    elif name == "heavy_tailed":
        sb = out["scale_bits"] if out["scale_bits"] is not None else max(1, mbits // 4)
        if not _is_int(sb) or not 0 <= sb <= mbits:
            raise ConfigError(f"{where}.scale_bits: must be an integer from 0 to {mbits}, got {brief(sb)}")
        out["scale_bits"] = sb
        rate = out["outlier_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or not 0 <= rate <= 1:
            raise ConfigError(f"{where}.outlier_rate: must be a number from 0 to 1, got {brief(rate)}")
        out["outlier_rate"] = float(rate)
        ch = out["outlier_channels"]
        if not _is_int(ch) or not 0 <= ch <= MAX_DIM:
            raise ConfigError(f"{where}.outlier_channels: must be an integer from 0 to {MAX_DIM} (MAX_DIM), "
                              f"got {brief(ch)}")
    elif name == "constant":
        v = out["value"]
        if not _is_int(v) or not t.min <= v <= t.max:
            raise ConfigError(f"{where}.value: must be an integer in {t.name} [{t.min}, {t.max}], got {brief(v)}")
    elif name == "file":
        _check_file_keys(out, where)
    elif name == "overflow":
        pattern = out["as"]
        corner = ("most_negative", "most_positive", "alternating", "alternating_rows")
        if pattern is not None and (not isinstance(pattern, str) or pattern not in corner):
            raise ConfigError(f"{where}.as: must be one of {', '.join(corner)}, got {brief(pattern)}")
    return out


def _check_file_keys(out: dict[str, Any], where: str) -> None:
    """The keys of a ``file`` input (in place: a pinned SHA-256 is lower-cased)."""
    path = out["file"]
    if not isinstance(path, str) or not path or "\x00" in path or len(path) > MAX_FILE_PATH_CHARS:
        raise ConfigError(f"{where}.file: must be the path of a .npy file (a non-empty string of at most "
                          f"{MAX_FILE_PATH_CHARS} characters, no NUL), got {brief(path)}")
    sha = out["sha256"]
    if sha is not None:
        if not isinstance(sha, str) or len(sha) != 64 or not set(sha.lower()) <= _SHA256_HEX:
            raise ConfigError(f"{where}.sha256: must be 64 hex digits (the file's SHA-256), got {brief(sha)}")
        out["sha256"] = sha.lower()
    size = out["bytes"]
    if size is not None and (not _is_int(size) or not 0 <= size <= MAX_FILE_BYTES):
        raise ConfigError(f"{where}.bytes: must be the file's size, an integer from 0 to {MAX_FILE_BYTES}, "
                          f"got {brief(size)}")


def stream(seed: int, name: str) -> np.random.PCG64:
    """The PCG64 stream of tensor (or purpose) ``name`` in the case with ``seed``."""
    return np.random.PCG64(np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))]))


def _mulhi(a: np.ndarray, b: int) -> np.ndarray:
    """High 64 bits of the 128-bit products a * b (a uint64 array, 0 <= b < 2**64)."""
    b_lo, b_hi = np.uint64(b & 0xFFFFFFFF), np.uint64(b >> 32)
    a_lo, a_hi = a & _M32, a >> _S32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)
    return p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)


def uniform_ints(raw: np.ndarray, lo: int, hi: int, t: IntType) -> np.ndarray:
    """Map raw uint64 words to integers on [lo, hi] (``span = hi - lo + 1``), by integer arithmetic only.

    ``span <= 2**32``: ``lo + (((raw >> 32) * span) >> 32)``; larger spans:
    ``lo + floor(raw * span / 2**64)`` (128-bit product). The result has dtype ``t.dtype``.
    """
    span = hi - lo + 1
    if span <= 1 << 32:
        off = ((raw >> _S32) * np.uint64(span)) >> _S32
    elif span == 1 << 64:
        off = raw
    else:
        off = _mulhi(raw, span)
    u = off + np.uint64(lo % (1 << 64))  # modulo 2**64; the true value lies in [lo, hi]
    if t.signed:
        return u.view(np.int64).astype(t.dtype)
    return u.astype(t.dtype)


def _trailing_zeros(raw: np.ndarray) -> np.ndarray:
    """Number of trailing zero bits of each word (64 for 0)."""
    tz = np.zeros(raw.shape, dtype=np.int64)
    x = raw.copy()
    zero = x == 0
    x[zero] = 1
    for s in (32, 16, 8, 4, 2, 1):
        mask = np.uint64((1 << s) - 1)
        low_zero = (x & mask) == 0
        tz += np.where(low_zero, s, 0)
        x = np.where(low_zero, x >> np.uint64(s), x)
    tz[zero] = 64
    return tz


def _corner(t: IntType, shape: tuple[int, ...], dist: str) -> np.ndarray:
    lo, hi = t.min, t.max
    if dist == "most_negative":
        return np.full(shape, lo, dtype=t.dtype)
    if dist == "most_positive":
        return np.full(shape, hi, dtype=t.dtype)
    if dist == "zeros":
        return np.zeros(shape, dtype=t.dtype)
    if dist == "alternating":
        parity = np.indices(shape).sum(axis=0) % 2 if shape else np.zeros((), np.int64)
        return np.where(parity == 0, lo, hi).astype(t.dtype)
    if dist == "alternating_rows":
        if not shape:
            return np.full(shape, lo, dtype=t.dtype)
        rows = np.arange(shape[0]).reshape((shape[0],) + (1,) * (len(shape) - 1)) % 2
        return np.broadcast_to(np.where(rows == 0, lo, hi), shape).astype(t.dtype)
    raise AssertionError(dist)


def generate(t: IntType, shape: tuple[int, ...], dist: Mapping[str, Any], seed: int, name: str) -> np.ndarray:
    """Draw a tensor of type ``t`` and ``shape`` from a normalized distribution (see the module docs).

    ``seed`` is the case seed and ``name`` the tensor name; together they select the
    tensor's PCG64 stream. The result has dtype ``t.dtype`` and C order.
    """
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    kind = dist["dist"]
    if kind in ("most_negative", "most_positive", "zeros", "alternating", "alternating_rows"):
        return _corner(t, shape, kind)
    if kind == "overflow":
        if dist.get("as") is None:
            raise ConfigError(f"tensor {name}: distribution 'overflow' needs the operator to choose a pattern")
        return _corner(t, shape, dist["as"])
    if kind == "constant":
        return np.full(shape, dist["value"], dtype=t.dtype)
    if kind == "file":
        raise ConfigError(f"tensor {name}: its values come from the file {dist.get('file')!r}, there is nothing "
                          "to draw (intsim.golden.spec reads the file; generate_suite stores its values)")
    bitgen = stream(seed, name)
    if kind == "uniform":
        return uniform_ints(bitgen.random_raw(n), dist["low"], dist["high"], t).reshape(shape)
    if kind == "heavy_tailed":
        return _heavy_tailed(bitgen, t, shape, dist)
    raise ConfigError(f"tensor {name}: unknown distribution {kind!r}")  # normalize_dist prevents this


def _heavy_tailed(bitgen: np.random.PCG64, t: IntType, shape: tuple[int, ...], dist: Mapping[str, Any]) -> np.ndarray:
    n = math.prod(shape)
    mbits = t.bits - 1 if t.signed else t.bits
    raw = bitgen.random_raw(4 * n).reshape(4, n) if n else np.zeros((4, 0), np.uint64)
    g = _trailing_zeros(raw[0])
    e = np.minimum(dist["scale_bits"] + g, mbits).astype(np.uint64)
    mag = np.where(e >= 64, raw[1], raw[1] & ((np.uint64(1) << np.minimum(e, 63)) - np.uint64(1)))
    if t.signed:
        neg = (raw[2] >> np.uint64(63)) == 1
        body = np.where(neg, -mag.astype(np.int64), mag.astype(np.int64))  # mag < 2**63 for signed
    else:
        body = mag
    # heavy hitters: uniform on [hi // 2, hi] or [lo, lo // 2]
    pos_hit = uniform_ints(raw[3], t.max // 2, t.max, t)
    if t.signed:
        neg_hit = uniform_ints(raw[3], t.min, t.min // 2, t)
        hit = np.where((raw[2] >> np.uint64(62)) & np.uint64(1) == 1, neg_hit, pos_hit)
    else:
        hit = pos_hit
    rate = dist["outlier_rate"]
    if rate >= 1.0:
        is_hit = np.ones(n, dtype=bool)
    else:
        # bits 63 and 62 of raw[2] are the two signs above; its other 62 bits decide the hit
        threshold = int(rate * 2.0**64)  # exact: a float times a power of two, then truncation
        is_hit = (raw[2] << np.uint64(2)) < np.uint64(threshold)
    out = np.where(is_hit, hit.astype(body.dtype), body).astype(t.dtype).reshape(shape)
    channels = dist["outlier_channels"]
    if channels and shape:
        width = shape[-1]
        order = np.argsort(bitgen.random_raw(width), kind="stable")
        chosen = np.sort(order[:min(channels, width)])
        hits2 = hit.astype(t.dtype).reshape(shape)
        out[..., chosen] = hits2[..., chosen]
    return out

