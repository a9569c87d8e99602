"""Bit-exact checks: :func:`assert_bit_exact` and :func:`check_against`.

:func:`check_against` property-tests a candidate implementation (a numpy or C++ model, a
kernel, anything callable from Python) against an intsim operator: hypothesis draws golden
cases (:func:`intsim.testing.strategies.golden_cases`), both compute them, and on the first
difference hypothesis shrinks the case to a minimal one, which is written as a one-case golden
suite (``intsim golden verify``/``compare`` replay it) with the candidate's output beside it.

>>> import numpy as np
>>> from intsim.testing import check_against
>>> def floor_requant(x, *, scale, out, **_):        # ">> k" where a rounding divide is specified
...     return np.clip((x.astype(np.int64) * scale.m) >> scale.k, out.min, out.max)
>>> try:
...     check_against("requantize", floor_requant, config={"mode": "dyadic", "rounding": "half_away",
...                   "zero_point": 0, "in_type": "int16"}, max_examples=50)
... except CounterexampleFound as exc:
...     print(exc.case.shape, exc.case.inputs["x"]["dist"], exc.mismatch.count, (exc.suite / "manifest.json").exists())
{'x': [1]} constant 1 True
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis.strategies import SearchStrategy

from ..core.errors import ConfigError, DTypeError, IntsimError, ShapeError
from ..core.fileio import atomic_directory, atomic_write_text, check_output_target
from ..core.inttype import IntType
from ..golden.npyio import npy_bytes
from ..golden.suite import verify_suite
from .strategies import GoldenCase, golden_cases

__all__ = ["assert_bit_exact", "BitExactMismatch", "check_against", "CounterexampleFound", "CheckReport",
           "RAISE_HANDLING"]

#: how :func:`check_against` treats a case where intsim's operator raises (an overflow under policy ``raise``)
RAISE_HANDLING = ("expect", "compare", "skip")


# --------------------------------------------------------------------------------------------------
# assert_bit_exact
# --------------------------------------------------------------------------------------------------


class BitExactMismatch(AssertionError):
    """Two integer arrays differ. ``count`` entries of ``size`` differ; ``diffs`` lists the first
    ones as ``(index, expected, actual)``; ``type`` is the declared word type."""

    def __init__(self, message: str, *, name: str, count: int, size: int, diffs: list[tuple[tuple, int, int]],
                 type: IntType | None):
        super().__init__(message)
        self.name, self.count, self.size, self.diffs, self.type = name, count, size, diffs, type


def _int_array(v: Any, what: str) -> np.ndarray:
    if hasattr(v, "values") and not isinstance(v, (np.ndarray, Mapping)):
        v = v.values  # an OpResult / GemmResult
    try:
        arr = np.asarray(v)
    except (TypeError, ValueError) as exc:
        raise DTypeError(f"{what}: not an array ({type(v).__name__}: {exc})") from None
    if arr.dtype == object:
        try:
            if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in arr.reshape(-1)):
                return arr
        except TypeError:
            pass
        raise DTypeError(f"{what}: an object array of non-integers; bit-exact comparison needs integers")
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{what}: dtype {arr.dtype}; bit-exact comparison needs an integer array "
                         f"(round explicitly, with the rounding your design uses, before comparing)")
    return arr


def _word(v: int, t: IntType | None) -> str:
    """``v`` in decimal and as a hex word of ``t``'s width (two's complement); out of range when it does not fit."""
    if t is None:
        return str(v)
    if not t.min <= v <= t.max:
        return f"{v} (outside {t.name})"
    digits = -(-t.bits // 4)
    return f"{v} (0x{v & ((1 << t.bits) - 1):0{digits}x})"


def _dtype_type(dtype: np.dtype) -> IntType:
    return IntType(dtype.itemsize * 8, signed=dtype.kind == "i")


def assert_bit_exact(actual: Any, expected: Any, *, type: IntType | str | None = None, name: str = "y",
                     max_report: int = 8) -> None:
    """Raise :class:`BitExactMismatch` (an ``AssertionError``) unless ``actual`` equals ``expected``
    entry for entry, with the same shape.

    The message names how many entries differ and, for the first ``max_report`` of them (in
    row-major order), the index, the expected and the actual value in decimal and as a hex word of
    the declared ``type`` (an :class:`~intsim.IntType` or a name; default: the type of
    ``expected``'s dtype), or "outside <type>" when the value does not fit the word. ``actual``
    and ``expected`` are integer arrays (or results with ``.values``); a float or non-numeric
    array raises :class:`~intsim.core.errors.DTypeError` (compare integers: a float that happens
    to print as an integer is not bit-exact evidence).

    >>> import numpy as np
    >>> assert_bit_exact(np.array([1, 2]), np.array([1, 2], dtype=np.int8))
    >>> try:
    ...     assert_bit_exact(np.array([[127, -4], [3, 128]]), np.array([[127, -3], [3, -128]]), type="int8")
    ... except BitExactMismatch as exc:
    ...     print(exc)
    y: 2 of 4 entries differ (int8 words):
      y[0, 1]: expected -3 (0xfd), actual -4 (0xfc)
      y[1, 1]: expected -128 (0x80), actual 128 (outside int8)
    """
    if isinstance(max_report, bool) or not isinstance(max_report, int) or max_report < 1:
        raise ConfigError(f"max_report must be a positive integer, got {max_report!r}")
    a = _int_array(actual, f"{name} (actual)")
    e = _int_array(expected, f"{name} (expected)")
    t = IntType.parse(type) if type is not None else (_dtype_type(e.dtype) if e.dtype != object else None)
    if a.shape != e.shape:
        raise BitExactMismatch(f"{name}: shape {a.shape}, expected {e.shape}", name=name, count=max(a.size, e.size),
                               size=e.size, diffs=[], type=t)
    af, ef = a.reshape(-1), e.reshape(-1)
    if af.dtype != object and ef.dtype != object and (af.dtype.kind == ef.dtype.kind or
                                                      (af.size and ef.size and af.min() >= 0 and ef.min() >= 0)):
        bad = np.flatnonzero(af != ef)
    else:  # mixed signedness (uint64 against int64) or Python ints: compare exactly
        bad = np.array([i for i in range(af.size) if int(af[i]) != int(ef[i])], dtype=np.int64)
    if not bad.size:
        return
    diffs = []
    for p in bad[:max_report].tolist():
        idx = tuple(int(i) for i in np.unravel_index(p, e.shape)) if e.ndim else ()
        diffs.append((idx, int(ef[p]), int(af[p])))
    where = f" ({t.name} words)" if t is not None else ""
    lines = [f"{name}: {bad.size} of {e.size} entries differ{where}:"]
    for idx, ev, av in diffs:
        lab = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        lines.append(f"  {lab}: expected {_word(ev, t)}, actual {_word(av, t)}")
    if bad.size > len(diffs):
        lines.append(f"  ... and {bad.size - len(diffs)} more")
    raise BitExactMismatch("\n".join(lines), name=name, count=int(bad.size), size=int(e.size), diffs=diffs, type=t)


# --------------------------------------------------------------------------------------------------
# check_against
# --------------------------------------------------------------------------------------------------


class CounterexampleFound(AssertionError):
    """The candidate differs from intsim. ``case`` is the shrunk :class:`GoldenCase`; ``mismatch``
    the :class:`BitExactMismatch` (None when the difference is an exception or a missing one);
    ``problem`` the one-paragraph description; ``out`` the directory written (``suite/``: the
    one-case golden suite, ``candidate/``: the candidate's output as a design dump);
    ``examples`` the number of the generated example that first failed (at most the profile's
    ``max_examples``); ``runs`` every case run, shrinking included."""

    def __init__(self, message: str, *, case: GoldenCase, problem: str, mismatch: BitExactMismatch | None,
                 out: Path | None, examples: int, runs: int):
        super().__init__(message)
        self.case, self.problem, self.mismatch, self.out = case, problem, mismatch, out
        self.examples, self.runs = examples, runs

    @property
    def suite(self) -> Path | None:
        """The one-case golden suite (``intsim golden verify`` it; the design's replay is compared to it)."""
        return None if self.out is None else self.out / "suite"

    @property
    def candidate_dumps(self) -> Path | None:
        """The candidate's output in the dump layout of ``intsim golden compare SUITE --dut DIR``."""
        return None if self.out is None else self.out / "candidate"


@dataclass
class CheckReport:
    """What a passing :func:`check_against` ran: the operator, the number of cases, and how many
    of them intsim's operator raised on (handled as ``on_raise`` says)."""

    operator: str
    examples: int
    raised: int = 0
    outputs: list[str] = field(default_factory=list)


class _Reject(Exception):
    """The case is not a test: intsim refuses its data, or it raises and ``on_raise="skip"``."""


class _Failure(Exception):
    def __init__(self, case: GoldenCase, problem: str, mismatch: BitExactMismatch | None,
                 produced: dict[str, np.ndarray]):
        super().__init__(problem)
        self.case, self.problem, self.mismatch, self.produced = case, problem, mismatch, produced


def _outputs_of(result: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(result, Mapping):
        missing = [n for n in names if n not in result]
        if missing:
            raise ShapeError(f"the candidate returned outputs {sorted(result)}; expected {names}")
        return {n: result[n] for n in names}
    if len(names) != 1:
        raise ShapeError(f"the operator has outputs {names}; return a mapping of them")
    return {names[0]: result}


def _call(case: GoldenCase, candidate: Callable[..., Any], on_raise: str) -> tuple[int, dict[str, np.ndarray]]:
    """Run one case; raise _Failure on a difference. Returns (1 if intsim raised, the candidate's outputs)."""
    try:
        run = case.expected()
    except IntsimError:
        raise _Reject from None  # intsim refuses this case's data (e.g. a dynamic scale beyond its mantissa)
    args = case.call_args()
    names = [d.name for d, _ in run.outputs]
    if run.raises is not None and on_raise == "skip":
        raise _Reject
    try:
        result = candidate(**args)
    except Exception as exc:  # noqa: BLE001 - any failure of the candidate is a finding
        if run.raises is not None and on_raise == "expect":
            return 1, {}
        raise _Failure(case, f"the candidate raised {type(exc).__name__}: {exc}", None, {}) from None
    if run.raises is not None and on_raise == "expect":
        raised = ", ".join(f"{k}={v}" for k, v in run.raises.items())
        raise _Failure(case, f"intsim raises here ({raised}): the design must flag this overflow, but the "
                       "candidate returned values without raising", None, {})
    try:
        produced = _outputs_of(result, names)
        arrays = {n: _int_array(v, f"{n} (candidate)") for n, v in produced.items()}
        for d, expected in run.outputs:
            assert_bit_exact(arrays[d.name], expected, type=d.type, name=d.name)
    except BitExactMismatch as exc:
        raise _Failure(case, str(exc), exc, arrays) from None
    except IntsimError as exc:
        raise _Failure(case, f"the candidate's result is not comparable: {exc}", None, {}) from None
    return (1 if run.raises is not None else 0), arrays


def _describe(case: GoldenCase) -> str:
    """The case's spec lines (operator, seed, shape, config, inputs) and its input values."""
    lines = [f"    {line}" for line in case.spec_toml().splitlines()[6:]]
    for n, a in case.arrays().items():
        shown = " ".join(np.array2string(a, separator=", ", threshold=64, edgeitems=3).split())
        lines.append(f"    {n} = {shown}")
    return "\n".join(lines)


def _write(case: GoldenCase, produced: dict[str, np.ndarray], out: Path, force: bool) -> Path:
    """The counterexample directory: ``suite/`` (the one-case golden suite, verified), ``candidate/``
    (the candidate's outputs as .npy dumps) and ``replay.txt`` (the commands), written atomically."""
    with atomic_directory(out, force=force) as tmp:
        case.write(tmp / "suite")
        cmds = [f"intsim golden verify {out / 'suite'}"]
        if produced:
            d = tmp / "candidate" / case.name
            d.mkdir(parents=True)
            for n, arr in produced.items():
                a = np.asarray(arr)
                if a.dtype == object:
                    a = a.astype(np.int64)
                (d / f"{n}.npy").write_bytes(npy_bytes(a))
            cmds.append(f"intsim golden compare {out / 'suite'} --dut {out / 'candidate'}")
        atomic_write_text(tmp / "replay.txt", "\n".join(cmds) + "\n")
    report = verify_suite(out / "suite")
    if not report.ok:  # pragma: no cover - would be an intsim bug
        raise RuntimeError(f"the counterexample suite {out / 'suite'} does not verify: {report.failed[0].problems}")
    return out


_CORNERS = ("zeros", "most_negative", "most_positive", "alternating_rows", "alternating")


def _toward_zero(v: int) -> list[int]:
    """Smaller-magnitude integers to try in place of ``v``: 0, +-1, then halving."""
    out = [0, 1, -1] if v else []
    x = v
    while abs(x) > 1:
        x = int(x / 2)
        out.append(x)
    seen: dict[int, None] = {}
    for x in out:
        if abs(x) < abs(v) or (abs(x) == abs(v) and x > v):
            seen.setdefault(x, None)
    return list(seen)


def _simpler(case: GoldenCase) -> list[GoldenCase]:
    """Simpler variants of a case, simplest kinds first: seed 0, smaller dimensions, input
    distributions replaced by a constant (one of the tensor's own values) or a corner set,
    constants and uniform ranges moved toward 0."""
    out: list[GoldenCase] = []

    def with_(**kw: Any) -> None:
        out.append(replace(case, **kw))

    if case.seed:
        with_(seed=0)
    shape = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in case.shape.items()}
    for key, v in shape.items():
        if isinstance(v, int) and v > 1:
            for nv in dict.fromkeys([1, v // 2, v - 1]):
                with_(shape={**shape, key: nv})
        elif isinstance(v, list):
            if len(v) > 1:
                with_(shape={**shape, key: v[1:]})
            for i, d in enumerate(v):
                if d > 1:
                    for nd in dict.fromkeys([1, d // 2, d - 1]):
                        with_(shape={**shape, key: v[:i] + [nd] + v[i + 1:]})
    try:
        arrays = case.arrays()
    except IntsimError:
        arrays = {}
    for name, dist in case.inputs.items():
        kind = dist.get("dist") if isinstance(dist, Mapping) else dist
        if kind != "constant":
            vals = sorted({int(v) for v in np.asarray(arrays.get(name, np.zeros(0, np.int64))).reshape(-1)[:4096]},
                          key=lambda v: (abs(v), v > 0))[:8]
            for v in vals:
                with_(inputs={**case.inputs, name: {"dist": "constant", "value": v}})
            for c in _CORNERS:
                if kind != c:
                    with_(inputs={**case.inputs, name: {"dist": c}})
            if kind == "uniform" and isinstance(dist, Mapping):
                lo, hi = int(dist.get("low", 0)), int(dist.get("high", 0))
                mid = (lo + hi) // 2
                for a, b in ((lo, mid), (mid + 1, hi), (max(lo, -1), min(hi, 1))):
                    if lo <= a <= b <= hi and (a, b) != (lo, hi):
                        with_(inputs={**case.inputs, name: {"dist": "uniform", "low": a, "high": b}})
        else:
            for v in _toward_zero(int(dist["value"])):
                with_(inputs={**case.inputs, name: {"dist": "constant", "value": v}})
    # a corner set together with a smaller shape (a structure the shape alone may need)
    shrunk_shapes = list({repr(c.shape): c.shape for c in out if c.shape != case.shape}.values())
    names = list(case.inputs)
    if shrunk_shapes and len(names) <= 2:
        choices = [[case.inputs[n]] + [{"dist": c} for c in _CORNERS] for n in names]
        for shp in shrunk_shapes:
            for combo in itertools.product(*choices):
                if any(d is not case.inputs[n] for n, d in zip(names, combo, strict=True)):
                    with_(shape=shp, inputs=dict(zip(names, combo, strict=True)))
    return out


_RANK = {"constant": 0, "zeros": 1, "most_negative": 1, "most_positive": 1, "alternating_rows": 1, "alternating": 1,
         "uniform": 2, "heavy_tailed": 3}


def _complexity(case: GoldenCase) -> tuple[int, int, int, int]:
    """A well-founded order on cases: fewer input elements, then simpler distributions (constant,
    corner set, uniform, heavy-tailed), then smaller constants and ranges, then a smaller seed."""
    elems = 0
    for v in case.shape.values():
        elems += sum(int(d) for d in v) if isinstance(v, (list, tuple)) else int(v)
    rank = mags = 0
    for dist in case.inputs.values():
        kind = dist.get("dist") if isinstance(dist, Mapping) else dist
        rank += _RANK.get(str(kind), 4)
        if kind == "constant":
            mags += abs(int(dist["value"]))
        elif kind == "uniform" and isinstance(dist, Mapping) and "low" in dist and "high" in dist:
            mags += int(dist["high"]) - int(dist["low"])
    return elems, rank, mags, int(case.seed)


def _fails(case: GoldenCase, candidate: Callable[..., Any], on_raise: str) -> _Failure | None:
    try:
        _call(case, candidate, on_raise)
    except _Failure as f:
        return f
    except (IntsimError, _Reject):
        return None  # not a valid case (or one to skip)
    return None


def _bisect_constants(best: _Failure, candidate: Callable[..., Any], on_raise: str, budget: int
                      ) -> tuple[_Failure, int]:
    """For each constant input, the smallest magnitude (same sign) that still fails, by bisection."""
    runs = 0
    for name in list(best.case.inputs):
        dist = best.case.inputs[name]
        if not (isinstance(dist, Mapping) and dist.get("dist") == "constant"):
            continue
        v = int(dist["value"])
        sign, lo, hi = (1 if v > 0 else -1), 0, abs(v)
        while hi - lo > 1 and runs < budget:
            mid = (lo + hi) // 2
            runs += 1
            f = _fails(replace(best.case, inputs={**best.case.inputs, name: {"dist": "constant", "value": sign * mid}}),
                       candidate, on_raise)
            if f is not None:
                best, hi = f, mid
            else:
                lo = mid
    return best, runs


def _simplify(first: _Failure, candidate: Callable[..., Any], on_raise: str, budget: int = 400) -> tuple[_Failure, int]:
    """Greedy simplification of hypothesis's shrunk case (:func:`_simpler`), keeping each variant
    that still fails, then bisection of constant inputs toward 0, until nothing changes or
    ``budget`` runs are spent. Returns (failure, runs)."""
    best, runs = first, 0
    while runs < budget:
        progress = True
        while progress and runs < budget:
            progress = False
            key = _complexity(best.case)
            for cand in _simpler(best.case):
                if _complexity(cand) >= key:
                    continue
                runs += 1
                f = _fails(cand, candidate, on_raise)
                if f is not None:
                    best, progress = f, True
                    break
                if runs >= budget:
                    break
        before = best.case
        best, n = _bisect_constants(best, candidate, on_raise, budget - runs)
        runs += n
        if best.case == before:
            break
    return best, runs


def check_against(op: str, candidate: Callable[..., Any], *, config: Mapping[str, Any] | None = None,
                  shape: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None,
                  cases: SearchStrategy[GoldenCase] | None = None, on_raise: str = "expect",
                  out: str | os.PathLike | None = None, force: bool = False,
                  settings: hsettings | None = None, max_examples: int | None = None,
                  simplify: bool = True) -> CheckReport:
    """Property-test ``candidate`` against intsim's operator ``op`` and return a :class:`CheckReport`,
    or raise :class:`CounterexampleFound` with the minimal failing case.

    ``op`` is a golden-suite operator: ``matmul``, ``requantize`` or a registered
    ``<family>.<name>`` (:func:`intsim.testing.strategies.operator_names`). Hypothesis draws cases
    from ``cases`` (default: :func:`~intsim.testing.strategies.golden_cases` of ``op`` with the
    ``config``, ``shape`` and ``inputs`` entries fixed; fix what your design implements, e.g.
    ``config={"overflow": "saturate", "acc_bits": 24}``). For each case it calls
    ``candidate(**case.call_args())`` (the input tensors by name and the resolved config, see
    :meth:`GoldenCase.call_args`) and compares what it returns (an integer array, a result
    with ``.values``, or a mapping by output name) with intsim's outputs bit for bit
    (:func:`assert_bit_exact`). A candidate that raises is a failure, except where intsim's
    operator raises too (an overflow under policy ``raise``): ``on_raise="expect"`` (default)
    then requires the candidate to raise (any exception), ``"compare"`` compares with the
    outputs intsim's registers hold (wrapped), ``"skip"`` discards such cases.

    On a difference hypothesis shrinks the case; then (unless ``simplify`` is False) intsim
    simplifies it further, keeping each change that still fails: seed 0, smaller dimensions, an
    input distribution replaced by a constant (one of the tensor's own values) or a corner set,
    constants moved toward 0. The minimal case is written to ``out`` (a new
    temporary directory when None): ``out/suite`` is a one-case golden suite (checked with
    ``intsim golden verify`` before returning), ``out/candidate`` the candidate's output as a
    design dump, so ``intsim golden compare out/suite --dut out/candidate`` shows the
    difference and an RTL simulation can replay ``out/suite``; ``out/replay.txt`` holds the two
    commands. An existing ``out`` is replaced only with ``force`` and only if it holds what
    intsim wrote there. The error's message shows the case (its spec lines and input values),
    the differing entries and the paths.

    ``settings`` (a ``hypothesis.settings``) defaults to the active profile (``intsim-ci`` under
    the pytest plugin) with no deadline, no example database and one reported bug;
    ``max_examples`` overrides its example budget.

    >>> from intsim import IntType, Datapath, matmul
    >>> def mac(A, B, bias, **dp):
    ...     return matmul(A, B, Datapath(**dp), bias)
    >>> check_against("matmul", mac, max_examples=20).examples
    20
    """
    if not callable(candidate):
        raise ConfigError(f"candidate must be callable, got {type(candidate).__name__}")
    if on_raise not in RAISE_HANDLING:
        raise ConfigError(f"on_raise must be one of {', '.join(RAISE_HANDLING)}, got {on_raise!r}")
    if cases is None:
        cases = golden_cases(op, config=config, shape=shape, inputs=inputs)
    elif not isinstance(cases, SearchStrategy):
        raise ConfigError(f"cases must be a hypothesis strategy of GoldenCase, got {type(cases).__name__}")
    elif config is not None or shape is not None or inputs is not None:
        raise ConfigError("give either cases= or config=/shape=/inputs=, not both")
    if out is not None:
        check_output_target(out, force)  # refuse a directory that may not be written before searching
    base = settings if settings is not None else hsettings()
    kw: dict[str, Any] = {"database": None, "report_multiple_bugs": False}
    if settings is None:
        kw["deadline"] = None
        kw["suppress_health_check"] = list(base.suppress_health_check) + [HealthCheck.too_slow,
                                                                          HealthCheck.filter_too_much]
    if max_examples is not None:
        if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
            raise ConfigError(f"max_examples must be a positive integer, got {max_examples!r}")
        kw["max_examples"] = max_examples
    run_settings = hsettings(base, **kw)
    stats = {"examples": 0, "raised": 0, "first_failure": 0}
    names: list[str] = []

    @run_settings
    @given(cases)
    def search(case: GoldenCase) -> None:
        if not isinstance(case, GoldenCase):
            raise ConfigError(f"cases must draw GoldenCase objects, drew {type(case).__name__}")
        if case.operator != op:
            raise ConfigError(f"cases drew a case of operator {case.operator!r}, not {op!r}")
        stats["examples"] += 1
        try:
            raised, produced = _call(case, candidate, on_raise)
        except _Reject:
            assume(False)
            return
        except _Failure:
            if not stats["first_failure"]:
                stats["first_failure"] = stats["examples"]
            raise
        stats["raised"] += raised
        if produced and not names:
            names.extend(produced)

    try:
        search()
    except _Failure as shrunk:
        f, runs = _simplify(shrunk, candidate, on_raise) if simplify else (shrunk, 0)
        target = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="intsim-counterexample-"))
        written = _write(f.case, f.produced, target, force)
        where = (f"\nwritten to {written}:\n  intsim golden verify {written / 'suite'}"
                 + (f"\n  intsim golden compare {written / 'suite'} --dut {written / 'candidate'}"
                    if f.produced else ""))
        label = getattr(candidate, "__qualname__", type(candidate).__name__)
        msg = (f"check_against({op!r}, {label}): the candidate differs from intsim on this case (first "
               f"failure at example {stats['first_failure']}; shrunk by hypothesis over {stats['examples']} runs"
               + (f", then simplified over {runs} more" if runs else "") + f"):\n{_describe(f.case)}\n"
               f"{f.problem}{where}")
        raise CounterexampleFound(msg, case=f.case, problem=f.problem, mismatch=f.mismatch, out=written,
                                  examples=stats["first_failure"], runs=stats["examples"] + runs) from None
    return CheckReport(op, stats["examples"], stats["raised"], names)
