"""compile every numba kernel of intsim ahead of time (or load it from the cache), with a progress bar

numba compiles intsim's kernels the first time a process calls them and keeps the machine code
in its on-disk cache; on a cold cache the first ``intsim demo`` spends about two minutes
compiling. ``intsim compile`` does that work up front: it calls every kernel through intsim's
public functions on tiny inputs, covering the argument types intsim passes them (the GEMM
kernels with their int64 operands, the operators of intsim.ops.ibert, intsim.ops.ivit, intsim.ops.illm and
intsim.ops.gemmlowp for each variant, input word (int8, int16, int32, int64) and overflow policy,
requantization in every mode, the square roots, IM-Unpack for every strategy pair, ONNX Runtime's
float kernels of intsim.onnx, and one
short sentence through the integer MiniLM for every configuration and non-linear family when the model
package is installed). Kernels already in the cache are loaded, not compiled.

Afterwards ``intsim demo`` (any configuration and non-linear family), the golden suites and the
operators on 8- to 64-bit inputs load every kernel from the cache. A cold run of every group
takes about 6 minutes of one core; ``--only gemm --only minilm`` compiles what ``intsim demo``
needs (int64 operator inputs, every non-linear family) in about 3 minutes.

Progress goes to stderr: a bar redrawn in place on a terminal, one line per step otherwise,
then a summary line (kernel signatures compiled and loaded, elapsed time, cache directory) and,
if a kernel defined in intsim was reached by no step, a line naming it. ``--only GROUP``
(repeatable) restricts the work to some groups; ``--list`` prints the steps; ``-q``/``--quiet``
hides the bar.

Exit status: 0 done, 1 a step failed (the message names it; the other steps still run).
The cache directory is numba's: ``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` next to
intsim's sources (or the user cache directory when that is not writable).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from ..core.helptext import plain
from ..core.progress import Progress

__all__ = ["GROUPS", "Step", "Summary", "steps", "precompile", "kernels", "add_arguments", "run", "main"]

_WORDS = (np.int8, np.int16, np.int32, np.int64)
_POLICIES = ("raise", "wrap", "saturate")
_TENSORS = ("x", "p", "gate", "up")


@dataclass(frozen=True)
class Step:
    """One unit of work: ``group.name``, a callable that exercises some kernels."""

    group: str
    name: str
    fn: Callable[[], None]

    @property
    def label(self) -> str:
        return f"{self.group}.{self.name}"


def _try(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)``; an intsim error (an overflow under ``raise``, an option the operator
    refuses for these inputs) is fine: the kernels it reached are compiled either way. Anything
    else propagates (a failed step)."""
    from ..core.errors import IntsimError

    try:
        fn(*args, **kwargs)
    except IntsimError:
        pass


def _wider_register(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn`` with its first signed register (``OpResult.registers``) declared 8 bits wider than
    its default: operators with fast kernels for the default widths switch to their checked ones."""
    from ..core.errors import IntsimError

    try:
        res = fn(*args, **kwargs)
    except IntsimError:
        return
    for name, t in getattr(getattr(res, "registers", None), "widths", {}).items():
        if t.signed and t.bits <= 56:
            _try(fn, *args, registers={name: t.bits + 8}, **kwargs)
            return


def _rows(dtype: Any, shape: tuple[int, int] = (2, 8), lo: int = -4, hi: int = 4) -> np.ndarray:
    """A small deterministic array of ``dtype`` with values in [lo, hi]."""
    n = shape[0] * shape[1]
    return (np.arange(n, dtype=np.int64) % (hi - lo + 1) + lo).astype(dtype).reshape(shape)


# ---- the groups ----------------------------------------------------------------------------------
def _gemm() -> list[Step]:
    def kernels_direct() -> None:
        from ..hw import gemm_kernels as _kernels

        _kernels.warm_up()

    def matmul_paths() -> None:
        from ..core.inttype import IntType
        from ..hw.datapath import Datapath
        from ..hw.gemm import matmul, trace_output

        rng = np.random.default_rng(0)
        for bits, acc in ((4, 10), (8, 16), (16, 32), (32, 64)):
            t = IntType(bits)
            A = rng.integers(t.min, t.max + 1, (6, 16)).astype(t.dtype)
            B = rng.integers(t.min, t.max + 1, (16, 5)).astype(t.dtype)
            for pol in _POLICIES:
                for k_chunk, chunk_bits in ((1, None), (4, None), (4, acc - 2)):
                    dp = Datapath(a=t, b=t, acc_bits=acc, overflow=pol, k_chunk=k_chunk, chunk_bits=chunk_bits,
                                  chunk_overflow=None if chunk_bits is None else pol)
                    _try(matmul, A, B, dp, bias=np.ones(5, np.int64))
                    _try(matmul, A[:1], B, dp)
            _try(trace_output, A, B, Datapath(a=t, b=t, acc_bits=acc, overflow="wrap"), 0, 0)

    def llm_int8() -> None:
        from ..quant.llmint8 import llm_int8_matmul

        rng = np.random.default_rng(1)
        X = rng.normal(size=(4, 16))
        X[:, 3] *= 20
        _try(llm_int8_matmul, X, rng.normal(size=(16, 5)))

    return [Step("gemm", "kernels", kernels_direct), Step("gemm", "matmul", matmul_paths),
            Step("gemm", "llm_int8", llm_int8)]


def _unpack() -> list[Step]:
    def pairs() -> None:
        from ..core.inttype import IntType
        from ..hw.datapath import Datapath
        from ..hw.unpack import STRATEGIES, compare_strategies, unpack_matmul

        rng = np.random.default_rng(2)
        A = rng.integers(-128, 128, (6, 12)).astype(np.int8)
        B = rng.integers(-128, 128, (12, 5)).astype(np.int8)
        A[0, 0], B[0, 0] = -128, 127  # outliers beyond the 4-bit multipliers
        dp = Datapath(a=IntType(4), b=IntType(4), acc_bits=32)
        for sa in STRATEGIES:
            for sb in STRATEGIES:
                _try(unpack_matmul, A, B, dp, sa, sb)
        _try(compare_strategies, A, B, 4)
        _try(compare_strategies, A.astype(np.int64), B.astype(np.int64), (4, 3), admit_min=True)

    return [Step("unpack", "strategies", pairs)]


def _requant() -> list[Step]:
    def modes() -> None:
        from ..core.dyadic import Dyadic
        from ..quant import requant as rq

        x32 = (_rows(np.int64, (3, 8), -40000, 40000) * 997).astype(np.int32)
        per_ch = np.linspace(0.001, 0.02, 8)
        for mode in rq.REQUANT_MODES:
            for x in (x32, x32.astype(np.int64), x32.astype(np.int16), x32.astype(np.int8)):
                for scale in (0.0123, per_ch):
                    for order in rq.REQUANT_ORDERS:
                        for pol in _POLICIES:
                            for taps in (False, True):  # without taps: the fused fast kernels
                                _try(rq.requantize, x, scale, mode=mode, order=order, overflow=pol, taps=taps,
                                     zero_point=0 if mode == "gemmini_fp32" else 3)  # (Gemmini has none)
            _try(rq.requantize, x32, Dyadic(77, 13), mode=mode, out="int16")
        big = np.array([2**62, -(2**61), 12345], np.int64)
        for rounding in ("half_even", "half_away", "floor", "ceil", "half_up", "trunc"):
            _try(rq.mul_shift_round, big, np.array([2**31 - 1, 3, 5]), 40, rounding)
        v = np.array([2**31 - 1, -(2**31), 5, -7], np.int64)
        _try(rq.saturating_rounding_doubling_high_mul, v, v[::-1].copy())
        _try(rq.rounding_divide_by_pot, v, np.array([1, 2, 3, 31]))
        _try(rq.saturating_rounding_multiply_by_pot, v, 3)
        _try(rq.rounding_half_sum, v, v)
        for single in (False, True):
            for pol in _POLICIES:
                _try(rq.multiply_by_quantized_multiplier, v, 1 << 30, np.array([-3, 2, 0, -31]),
                     single_rounding=single, overflow=pol)
        _try(rq.multiply_by_quantized_multiplier_int64, v, 1 << 30, -3)

    return [Step("requant", "modes", modes)]


def _isqrt() -> list[Step]:
    def methods() -> None:
        m = importlib.import_module("intsim.ops.isqrt")  # the package attribute is the function isqrt

        vals = np.array([0, 1, 15, 16, 2**40 + 3, 2**62], np.int64)
        for arr in (vals, vals.astype(np.uint64), vals[:4].astype(np.int32), vals[:4].astype(np.uint8)):
            _try(m.isqrt, arr)
            _try(m.isqrt_ivit, arr)
            _try(m.isqrt_fixed, arr)
            _try(m.isqrt_fixed, arr, steps=3)
        big = np.arange(5000, dtype=np.int64) * 7919  # long enough for the block kernels
        for variant in m.METHODS:
            for taps in (False, True):
                for pol in _POLICIES:
                    _try(m.isqrt_op, vals, variant=variant, taps=taps, overflow=pol)
                    _try(m.isqrt_op, big, variant=variant, taps=taps, overflow=pol)

    return [Step("isqrt", "methods", methods)]


def _gemmlowp() -> list[Step]:
    def ops() -> None:
        from ..ops import gemmlowp as g

        a = np.array([-(2**31), -(2**29), -12345, -1, 0], np.int64)
        pos = np.array([0, 1, 2**20, 2**30, 2**31 - 1], np.int64)
        # each with the default registers (fast kernels) and one register widened (checked kernels)
        for pol in (*_POLICIES, "record"):
            for call in (_try, _wider_register):
                for arr in (a, a.astype(np.int32)):
                    call(g.exp_on_interval_between_negative_one_quarter_and_0_excl,
                         np.clip(arr, -(2**29), -1).astype(arr.dtype), overflow=pol)
                    for ib in (0, 1, 3, 5, 6):
                        for taps in (False, True):
                            call(g.exp_on_negative_values, arr, ib, overflow=pol, taps=taps)
                for arr in (pos, pos.astype(np.int32)):
                    call(g.one_over_one_plus_x_for_x_in_0_1, arr, overflow=pol)
                    for rs in (-1, 1):
                        call(g.get_inv_sqrt_quantized_multiplier_exp, np.maximum(arr, 1), reverse_shift=rs,
                             overflow=pol)
        rows = _rows(np.int8, (3, 10), -128, 127)
        for in_t, x in (("int8", rows), ("uint8", (rows.astype(np.int16) + 128).astype(np.uint8)),
                        ("int16", rows.astype(np.int16) * 50)):
            for out_t in ("int8", "uint8", "int16"):
                for single in (False, True):
                    for f32 in (True, False):
                        for pol in _POLICIES:
                            for taps in (False, True):
                                _try(g.softmax_int8, x, 0.05, in_type=in_t, out_type=out_t, single_rounding=single,
                                     float32_params=f32, overflow=pol, taps=taps)
                        _wider_register(g.softmax_int8, x, 0.05, in_type=in_t, out_type=out_t,
                                        single_rounding=single)

    return [Step("gemmlowp", "operators", ops)]


def _operator_family(family: str) -> list[Step]:
    """One step per operator of ``family`` in :mod:`intsim.ops.registry`: every variant, input word,
    policy, taps."""
    from ..ops.registry import operators

    gamma, beta = np.linspace(0.5, 1.5, 16), np.linspace(-0.1, 0.1, 16)
    out = []
    for name, spec in operators().items():
        if name.split(".")[0] != family:
            continue

        def exercise(spec: Any = spec) -> None:
            params = inspect.signature(spec.fn).parameters
            for variant in spec.variants or (None,):
                kw = {} if variant is None else {"variant": variant}
                for word in _WORDS:
                    # tensors (x, p, gate, up) of this word with values in [-7, 0] (the exponentials
                    # take x <= 0), every other input (a scale) a float
                    args = [_rows(word, (3, 16), -7, 0) if n in _TENSORS else 0.05 - 0.01 * i
                            for i, n in enumerate(spec.inputs)]
                    for pol in _POLICIES:
                        for taps in (False, True):
                            _try(spec.fn, *args, **kw, overflow=pol, taps=taps)
                if "gamma" in params:  # with the affine parameters too
                    affine = (gamma, beta) if "beta" in params else (gamma,)
                    _try(spec.fn, _rows(np.int32, (3, 16), -7, 0), 0.05, *affine, **kw)
        out.append(Step(family, spec.name, exercise))
    return out


def _minilm() -> list[Step]:
    """One short sentence through the integer MiniLM, per configuration and available non-linear family."""
    from ..models.minilm import CONFIGURATIONS, available_nonlinear

    out = []
    for nonlinear in available_nonlinear():
        for config in CONFIGURATIONS:
            def embed(config: str = config, nonlinear: str = nonlinear) -> None:
                from ..models.minilm import load_int_minilm

                load_int_minilm(config, nonlinear).embed(["A cat sleeps on the warm windowsill."])
            out.append(Step("minilm", f"{config}.{nonlinear}", embed))
    return out


def _onnx() -> list[Step]:
    """ONNX Runtime's float kernels (intsim.onnx.mlas) and its SGEMM (intsim.onnx.sgemm) on tiny inputs."""
    def mlas() -> None:
        from ..onnx import mlas as m

        m.warm_up()

    def sgemm() -> None:
        from ..onnx.sgemm import matmul_f32, reduce_sum_krk

        x = np.linspace(-1, 1, 60, dtype=np.float32)
        for a, b in ((x.reshape(3, 20), x.reshape(20, 3)), (x[:20], x.reshape(20, 3)), (x.reshape(3, 20), x[:20])):
            matmul_f32(a, b)
        matmul_f32(x.reshape(3, 20), x.reshape(20, 3), b_constant=True)
        matmul_f32(x[:20].reshape(1, 20), x.reshape(3, 20), trans_b=True)
        reduce_sum_krk(x.reshape(3, 4, 5))
    return [Step("onnx", "mlas", mlas), Step("onnx", "sgemm", sgemm)]


GROUPS: dict[str, Callable[[], list[Step]]] = {
    "gemm": _gemm,
    "unpack": _unpack,
    "requant": _requant,
    "isqrt": _isqrt,
    "gemmlowp": _gemmlowp,
    "ibert": lambda: _operator_family("ibert"),
    "ivit": lambda: _operator_family("ivit"),
    "illm": lambda: _operator_family("illm"),
    "onnx": _onnx,
    "minilm": _minilm,
}
#: the module whose kernels each group is meant to reach (for the "not exercised" check)
_GROUP_MODULES = {"gemm": "intsim.hw.gemm_kernels", "unpack": "intsim.hw.unpack.kernels",
                  "requant": "intsim.quant.requant.kernels", "isqrt": "intsim.ops.isqrt",
                  "gemmlowp": "intsim.ops.gemmlowp", "ibert": "intsim.ops.ibert", "ivit": "intsim.ops.ivit",
                  "illm": "intsim.ops.illm", "onnx": "intsim.onnx.mlas"}  # and intsim.onnx.sgemm


def steps(groups: Sequence[str] | None = None) -> list[Step]:
    """The steps of ``groups`` (all of :data:`GROUPS` when None), in :data:`GROUPS` order.

    Raises :class:`~intsim.core.errors.ConfigError` for an unknown group name."""
    from ..core.errors import ConfigError

    chosen = list(GROUPS) if groups is None else list(dict.fromkeys(groups))
    bad = [g for g in chosen if g not in GROUPS]
    if bad:
        raise ConfigError(f"unknown group(s) {', '.join(map(repr, bad))}; valid: {', '.join(GROUPS)}")
    return [s for g in GROUPS if g in chosen for s in GROUPS[g]()]


# ---- the kernels ---------------------------------------------------------------------------------
def kernels() -> dict[str, Any]:
    """Every numba dispatcher defined in intsim, by ``module.name``: imports every module under
    intsim (except ``__main__`` modules) and collects the ``CPUDispatcher`` objects whose Python
    function's module starts with ``intsim``."""
    from numba.core.registry import CPUDispatcher

    import intsim

    found: dict[str, Any] = {}
    for info in pkgutil.walk_packages(intsim.__path__, "intsim."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__.startswith("intsim"):
                found.setdefault(f"{obj.py_func.__module__}.{obj.py_func.__name__}", obj)
    return found


def _entry_points(ks: dict[str, Any]) -> dict[str, Any]:
    """The dispatchers Python code calls: not inlined (``inline="always"``) and not called by
    another kernel (those are compiled into their callers' machine code and cached with them).
    A kernel calls what its global names (or attributes of a module it names) resolve to."""
    ids = {id(d): k for k, d in ks.items()}
    called: set[str] = set()
    for d in ks.values():
        names = d.py_func.__code__.co_names
        for n in names:
            obj = d.py_func.__globals__.get(n)
            if id(obj) in ids:
                called.add(ids[id(obj)])
            elif isinstance(obj, type(sys)):
                called.update(ids[id(a)] for m in names if id(a := getattr(obj, m, None)) in ids)
    return {k: d for k, d in ks.items() if d.targetoptions.get("inline", "never") != "always" and k not in called}


def _cache_dirs(ks: dict[str, Any]) -> list[str]:
    return sorted({str(d._cache.cache_path) for d in ks.values() if getattr(d._cache, "cache_path", None)})


def _loaded(ks: dict[str, Any]) -> int:
    return sum(sum(d.stats.cache_hits.values()) for d in ks.values())


# ---- running -------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What :func:`precompile` did: ``steps`` run, ``compiled`` kernel compiles (each signature of
    each kernel, kernels compiled inside another's compile included), ``loaded`` signatures loaded
    from the cache, ``seconds`` elapsed, the ``cache_dirs``, ``failures`` (step label, error
    message), ``skipped`` (group, reason: the MiniLM model is not installed) and ``unexercised``
    (entry kernels of the selected groups that no step reached; not computed when a group was
    skipped)."""

    steps: int = 0
    compiled: int = 0
    loaded: int = 0
    seconds: float = 0.0
    cache_dirs: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    unexercised: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def precompile(groups: Sequence[str] | None = None, *, stream: TextIO | None = None) -> Summary:
    """Run the steps of ``groups`` (all when None), showing progress on ``stream`` (None: no output).

    Kernels in the cache are loaded, the others compiled and written to it. A step raising
    anything but an intsim error is recorded in :attr:`Summary.failures` and the others still
    run; when a step finds the MiniLM model not installed, the rest of its group is skipped and
    recorded in ``skipped``.
    Prints nothing itself besides the progress (see :func:`run` for the summary lines) and
    silences the first-compile notice of :mod:`intsim.core.jitcache` for the rest of the process.
    """
    from ..core import jitcache as _jitcache
    from ..core.errors import ModelNotInstalledError

    _jitcache.suppress_compile_notice()
    t0 = time.perf_counter()
    todo = steps(groups)
    ks = kernels()
    compiled0, loaded0 = _jitcache.compile_count(), _loaded(ks)
    summary = Summary(steps=len(todo))
    bar = Progress(len(todo), stream) if stream is not None else None
    skip: dict[str, str] = {}
    for step in todo:
        if bar:
            bar.show(step.label)
        t = time.perf_counter()
        note = ""
        try:
            if step.group in skip:
                note = " skipped"
            else:
                step.fn()
        except ModelNotInstalledError as exc:  # the rest of the group needs it too
            skip[step.group] = str(exc)
            summary.skipped.append((step.group, str(exc)))
            note = " skipped: model not installed"
        except Exception as exc:  # a bug: keep going, report at the end
            summary.failures.append((step.label, f"{type(exc).__name__}: {exc}"))
            note = f" FAILED: {type(exc).__name__}"
        if bar:
            bar.step(f"{step.label} ({time.perf_counter() - t:.1f} s){note}")
    if bar:
        bar.close()
    summary.compiled = _jitcache.compile_count() - compiled0
    summary.loaded = _loaded(ks) - loaded0
    summary.seconds = time.perf_counter() - t0
    summary.cache_dirs = _cache_dirs(ks)
    chosen = set(GROUPS if groups is None else groups)
    if not summary.skipped:
        mods = {_GROUP_MODULES[g] for g in chosen if g in _GROUP_MODULES}
        summary.unexercised = sorted(k for k, d in _entry_points(ks).items()
                                     if d.py_func.__module__ in mods and not d.signatures)
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``intsim compile`` options."""
    p.add_argument("--only", action="append", choices=list(GROUPS), metavar="GROUP",
                   help=f"compile only this group (repeatable): {', '.join(GROUPS)}")
    p.add_argument("--list", action="store_true", help="list the steps and exit")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (the summary, warnings and errors still print)")


def run(args: argparse.Namespace) -> int:
    """``intsim compile``: run :func:`precompile` with a progress bar on stderr and print the summary
    there. Returns 0, or 1 if a step failed. With numba's JIT disabled (``NUMBA_DISABLE_JIT=1``)
    there is nothing to compile: says so and returns 0."""
    from numba.core import config

    if args.list:
        for s in steps(args.only):
            print(s.label)
        return 0
    err = sys.stderr
    if config.DISABLE_JIT:
        print("intsim: numba's JIT is disabled (NUMBA_DISABLE_JIT): nothing to compile", file=err)
        return 0
    s = precompile(args.only, stream=None if getattr(args, "quiet", False) else err)
    where = ", ".join(s.cache_dirs) or "nowhere (numba's on-disk cache is unavailable)"
    print(f"intsim: {s.steps} steps: {s.compiled} kernel signatures compiled, {s.loaded} loaded from the cache, "
          f"in {s.seconds:.1f} s; cache: {where}", file=err)
    for group, why in s.skipped:
        print(f"intsim: skipped the {group} steps: {why}", file=err)
    if s.unexercised:
        print(f"intsim: kernels no step reached (compiled on first use): {', '.join(s.unexercised)}", file=err)
    for label, why in s.failures:
        print(f"intsim: error: step {label} failed: {why}", file=err)
    return 1 if s.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (the ``intsim compile`` options; default ``sys.argv[1:]``) and :func:`run`."""
    parser = argparse.ArgumentParser(prog="intsim compile", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
