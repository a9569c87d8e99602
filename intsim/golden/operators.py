"""The operators a golden suite can hold: a registry of small adapters.

An adapter (:class:`GoldenOperator`) does three things for one intsim operator:

* ``resolve(spec)``: validate a case's ``shape``, ``config`` and ``inputs`` tables,
  fill in every default and return a :class:`Case` (what the manifest records);
* ``input_decls``: declare each input tensor's shape and word type (in the Case);
* ``run(case, inputs)``: call intsim and return an :class:`OpRun`: the output
  tensors, the taps (named intermediate registers) and, for policy ``raise``, the
  error the operator raised.

Built in:

``matmul``
    :func:`intsim.matmul`. shape ``M, K, N``; config ``a``, ``b`` (type names,
    default ``int8``), ``acc_bits`` (32), ``overflow`` (``raise``), ``k_chunk`` (1),
    ``chunk_bits``, ``chunk_overflow`` (absent: exact adder tree), ``bias`` (false),
    ``trace_samples`` (4); inputs ``A`` (M x K), ``B`` (K x N), ``bias`` (N, at
    ``acc_bits``). Output ``C`` (M x N, ``acc_bits``). Taps: ``overflow`` (uint1 flag
    per output), ``first_overflow_k`` (the k of the first overflowing add, -1 if
    none), ``trace_ij`` (the sampled outputs (i, j)) and ``acc_trace`` (the
    accumulator of each sampled output after each ``k_chunk`` add,
    :func:`intsim.trace_output`). The samples are (0, 0), the first overflowing
    output in row-major order, (M-1, N-1), then seeded random outputs. Under
    ``overflow = "raise"`` (accumulator or adder tree) ``C`` and the taps hold what
    the registers hold when they wrap, and the case records the
    :class:`~intsim.core.errors.AccumulatorOverflow` matmul raises (``raises``): the
    design must flag that overflow.
``requantize``
    :func:`intsim.quant.requant.requantize`. shape ``x = [dims...]``; config ``mode``,
    ``scale`` (a float, ``{m = .., k = ..}`` for a Dyadic, or a list of either for
    per-channel scales along the last axis), ``rounding``, ``out`` (int8),
    ``in_type`` (int32), ``zero_point`` (0), ``order``, ``allow_negative``,
    ``overflow``; input ``x`` (``in_type``). Output ``y`` (``out``); taps: the
    operator's ``OpResult.taps`` (declared register widths, else 64 bits).

``unpack_matmul``
    :func:`intsim.hw.unpack.unpack_matmul`: see
    :mod:`intsim.golden.unpack_op`; its taps are the unpacked operand streams, index maps,
    shifts and the low-bit GEMM accumulators.
``<family>.<name>``
    every operator of :mod:`intsim.ops.registry` (``ibert.softmax``, ``ivit.shiftmax``,
    ``illm.swiglu``, ``isqrt.isqrt``...), through :class:`OpResultOperator`: every register of
    ``OpResult.taps`` becomes a tap.

Sizes and work: every adapter declares a :class:`~intsim.golden.spec.Budget` (each
tensor's element count, the multiply-accumulates and one-at-a-time steps) that the spec
checks against the caps of :mod:`intsim.golden.spec` before anything is computed; what an
adapter's ``run`` returns is checked against the tensor and case caps again before
anything is written.

What a user needs to write a case: ``intsim golden operators NAME`` prints :func:`operator_help`
(from the adapter's :meth:`GoldenOperator.describe`, an :class:`OperatorDoc`: every shape, config
and inputs key with its default and valid values, the outputs and taps, and an example case that
:func:`example_spec` writes as a complete spec).

Adding an operator is one entry: subclass :class:`GoldenOperator` (or use
:class:`OpResultOperator` for any callable returning an
:class:`~intsim.regs.opresult.OpResult`) and pass an instance to :func:`register`.
Every operator of :mod:`intsim.ops.registry` (the ``OPS`` table of its family's module) is
picked up automatically as ``<family>.<name>`` through :class:`OpResultOperator`.

>>> sorted(k for k in available_operators() if "." not in k)[:2]
['matmul', 'requantize']
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..core.dyadic import Dyadic
from ..core.errors import AccumulatorOverflow, ConfigError, IntsimError, RegisterOverflow
from ..core.helptext import plain, summary
from ..core.inttype import IntType
from ..hw.datapath import Datapath
from ..hw.gemm import matmul, trace_output
from ..ops.registry import operators
from .datagen import DISTRIBUTIONS, stream, uniform_ints
from .keys import (
    MAX_DIM,
    MAX_TENSOR_ELEMENTS,
    MAX_TRACE_SAMPLES,
    OPRESULT_EXPANSION,
    Budget,
    TensorBudget,
    bool_key,
    brief,
    check_budget,
    check_keys,
    check_name,
    int_key,
    key_text,
    type_key,
)
from .opbase import REQUIRED, Case, CaseSpec, GoldenOperator, KeyDoc, OperatorDoc, OpRun, TensorDecl, input_budget
from .unpack_op import UnpackMatmulOperator

__all__ = [
    "TensorDecl", "Case", "OpRun", "GoldenOperator", "MatmulOperator", "RequantizeOperator",
    "OpResultOperator", "ADAPTERS", "register", "get_operator", "available_operators", "describe_operator",
    "example_spec", "operator_help", "KeyDoc", "OperatorDoc",
]

# the caps on sizes and work live in intsim.golden.spec (module docs: limits)
#: bounds of a Dyadic scale {m = .., k = ..} in a spec: m a 64-bit signed integer, 0 <= k <= _MAX_SHIFT
_MAX_SHIFT = 127
_M_MIN, _M_MAX = -(1 << 63), (1 << 63) - 1


def _dims(v: Any, where: str) -> list[int]:
    """A shape written as a list of 1 to 4 dimensions from 1 to MAX_DIM."""
    if not isinstance(v, list) or not 1 <= len(v) <= 4 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DIM for d in v):
        raise ConfigError(f"{where}: must be a list of 1 to 4 dimensions from 1 to {MAX_DIM} (MAX_DIM), "
                          f"got {brief(v)}")
    return list(v)


def _estimated_budget(decls: Any) -> Budget:
    """Inputs plus OPRESULT_EXPANSION output and tap elements per input element (before a dry run)."""
    inputs = input_budget(decls)
    n = sum(t.elements for t in inputs)
    return Budget(tuple(inputs) + (TensorBudget("outputs and taps (estimate before the dry run: "
                                                f"OPRESULT_EXPANSION = {OPRESULT_EXPANSION} per input element)",
                                                "output", OPRESULT_EXPANSION * n),))


# --------------------------------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------------------------------


class MatmulOperator(GoldenOperator):
    """``intsim.matmul`` on a :class:`~intsim.Datapath` (see the module docs)."""

    name = "matmul"
    summary = "A (M x K) @ B (K x N) on a b-bit multiplier / accumulator datapath"
    CONFIG = {"a": "int8", "b": "int8", "acc_bits": 32, "overflow": "raise", "k_chunk": 1, "chunk_bits": None,
              "chunk_overflow": None, "bias": False, "trace_samples": 4}

    def describe(self) -> OperatorDoc:
        return _matmul_doc(self)

    @staticmethod
    def datapath(case: Case) -> Datapath:
        c = case.config
        return Datapath(a=IntType.parse(c["a"]), b=IntType.parse(c["b"]), acc_bits=c["acc_bits"],
                        overflow=c["overflow"], k_chunk=c["k_chunk"], chunk_bits=c["chunk_bits"],
                        chunk_overflow=c["chunk_overflow"])

    def resolve(self, spec: CaseSpec) -> Case:
        where = spec.where
        check_keys(spec.shape, {"M", "K", "N"}, f"{where}: shape")
        M = int_key(spec.shape, "M", f"{where}: shape", 1, MAX_DIM)
        K = int_key(spec.shape, "K", f"{where}: shape", 1, MAX_DIM)
        N = int_key(spec.shape, "N", f"{where}: shape", 1, MAX_DIM)
        check_keys(spec.config, self.CONFIG, f"{where}: config")
        cfg = dict(self.CONFIG)
        cfg.update(spec.config)
        a = type_key(cfg["a"], f"{where}: config.a")
        b = type_key(cfg["b"], f"{where}: config.b")
        for key in ("acc_bits", "k_chunk", "chunk_bits"):
            v = cfg[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ConfigError(f"{where}: config.{key}: must be an integer, got {brief(v)}")
        for key in ("overflow", "chunk_overflow"):
            if cfg[key] is not None and not isinstance(cfg[key], str):
                raise ConfigError(f"{where}: config.{key}: must be a policy name, got {brief(cfg[key])}")
        try:
            dp = Datapath(a=a, b=b, acc_bits=cfg["acc_bits"], overflow=cfg["overflow"], k_chunk=cfg["k_chunk"],
                          chunk_bits=cfg["chunk_bits"], chunk_overflow=cfg["chunk_overflow"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: config: {exc}") from None
        bias = bool_key(cfg["bias"], f"{where}: config.bias")
        ts = int_key(cfg, "trace_samples", f"{where}: config", 0, MAX_TRACE_SAMPLES)
        config = {"a": dp.a.name, "b": dp.b.name, "acc_bits": dp.acc_bits, "overflow": dp.overflow,
                  "k_chunk": dp.k_chunk, "chunk_bits": dp.chunk_bits, "chunk_overflow": dp.chunk_overflow,
                  "bias": bias, "trace_samples": ts}
        decls = [TensorDecl("A", "input", (M, K), dp.a), TensorDecl("B", "input", (K, N), dp.b)]
        if bias:
            decls.append(TensorDecl("bias", "input", (N,), dp.acc))
        elif "bias" in spec.inputs:
            raise ConfigError(f"{where}: inputs.bias: given, but config.bias is false")
        budget = self._budget(M, K, N, bias, ts, dp)
        check_budget(where, budget)
        overflow_as = {"A": "alternating_rows" if dp.a.signed else "most_positive",
                       "B": "most_negative" if dp.b.signed else "most_positive",
                       "bias": "most_positive"}
        inputs = self._inputs(spec, decls, overflow_as)
        if any(d["dist"] == "overflow" for d in inputs.values()):
            pmax = max(abs(dp.a.min), dp.a.max) * max(abs(dp.b.min), dp.b.max)
            group = min(dp.k_chunk, K)
            bias_max = dp.acc.max + 1 if bias else 0
            acc_can = bias_max + pmax * K > dp.acc.max
            chunk_can = dp.chunk_bits is not None and group * pmax > (1 << (dp.chunk_bits - 1)) - 1
            if not (acc_can or chunk_can):
                need = dp.acc.max // pmax + 1
                raise ConfigError(f"{where}: inputs: distribution 'overflow' cannot overflow this datapath: "
                                  f"K * max|a*b| = {K} * {pmax} fits the {dp.acc_bits}-bit accumulator; "
                                  f"use K >= {need} or a narrower acc_bits")
        return Case(spec.name, self.name, spec.seed, {"M": M, "K": K, "N": N}, config, inputs, tuple(decls),
                    spec.description, budget)

    @staticmethod
    def _budget(M: int, K: int, N: int, bias: bool, trace_samples: int, dp: Datapath) -> Budget:
        """Every tensor of the case exactly; work M*K*N MACs (twice under a raise policy) and S*K traced steps."""
        S = min(trace_samples, M * N)
        tensors = [TensorBudget("A", "input", M * K), TensorBudget("B", "input", K * N)]
        if bias:
            tensors.append(TensorBudget("bias", "input", N))
        tensors += [TensorBudget("C", "output", M * N), TensorBudget("overflow", "tap", M * N),
                    TensorBudget("first_overflow_k", "tap", M * N), TensorBudget("trace_ij", "tap", S * 2),
                    TensorBudget("acc_trace", "tap", S * -(-K // dp.k_chunk))]
        raises = dp.overflow == "raise" or (dp.chunk_bits is not None and dp.chunk_policy == "raise")
        return Budget(tuple(tensors), macs=M * K * N * (2 if raises else 1), steps=S * K)

    def run(self, case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:
        dp = self.datapath(case)
        A, B = inputs["A"], inputs["B"]
        bias = inputs.get("bias")
        raises = None
        run_dp = dp
        if dp.overflow == "raise" or (dp.chunk_bits is not None and dp.chunk_policy == "raise"):
            try:
                matmul(A, B, dp, bias)
            except AccumulatorOverflow as exc:
                raises = {"error": type(exc).__name__, "index": list(exc.index), "k": exc.k,
                          "value": exc.value, "bits": exc.bits}
            run_dp = replace(dp, overflow="wrap" if dp.overflow == "raise" else dp.overflow,
                             chunk_overflow=("wrap" if dp.chunk_bits is not None and dp.chunk_policy == "raise"
                                             else dp.chunk_overflow))
        r = matmul(A, B, run_dp, bias)
        M, N = r.values.shape
        K = A.shape[1]
        if r.n_overflow == 0 and any(d["dist"] == "overflow" for d in case.inputs.values()):
            raise ConfigError(f"case {case.name!r}: inputs use distribution 'overflow' but no output overflowed")
        picks = self._samples(case, r.overflow)
        trace = self._traces(A, B, bias, run_dp, r.values, r.overflow, picks, case.name)
        kt = IntType(max(2, K.bit_length() + 1))
        acc = dp.acc
        outputs = [(TensorDecl("C", "output", (M, N), acc), r.values.astype(acc.dtype))]
        taps = [
            (TensorDecl("overflow", "tap", (M, N), IntType(1, signed=False)), r.overflow.astype(np.uint8)),
            (TensorDecl("first_overflow_k", "tap", (M, N), kt), r.first_overflow_k.astype(kt.dtype)),
            (TensorDecl("trace_ij", "tap", (len(picks), 2), IntType(32, signed=False)),
             np.array(picks, dtype=np.uint32).reshape(len(picks), 2)),
            (TensorDecl("acc_trace", "tap", (len(picks), -(-K // dp.k_chunk)), acc), trace.astype(acc.dtype)),
        ]
        return OpRun(outputs, taps, raises)

    @staticmethod
    def _traces(A: np.ndarray, B: np.ndarray, bias: np.ndarray | None, dp: Datapath, values: np.ndarray,
                overflow: np.ndarray, picks: list[tuple[int, int]], name: str) -> np.ndarray:
        """The accumulator after each add for the sampled outputs.

        An output without any overflow holds its exact partial sums (bias plus the cumulative
        sums of the k_chunk groups), computed in int64; an output with an overflow is traced
        add by add by :func:`intsim.trace_output`. Each trace must end at the output's value.
        """
        K = A.shape[1]
        groups = -(-K // dp.k_chunk)
        trace = np.zeros((len(picks), groups), dtype=np.int64)
        for s, (i, j) in enumerate(picks):
            if not overflow[i, j]:
                prods = A[i].astype(np.int64) * B[:, j].astype(np.int64)
                sums = np.add.reduceat(prods, np.arange(0, K, dp.k_chunk))
                trace[s] = np.cumsum(sums) + (int(bias[j]) if bias is not None else 0)
            if overflow[i, j] or int(trace[s, -1]) != int(values[i, j]):  # int64 group sums may not hold
                trace[s] = trace_output(A, B, dp, i, j, bias)
            if int(trace[s, -1]) != int(values[i, j]):  # pragma: no cover - would be an intsim bug
                raise RuntimeError(f"case {name!r}: the accumulator trace and matmul disagree at ({i}, {j})")
        return trace

    @staticmethod
    def _samples(case: Case, overflow: np.ndarray) -> list[tuple[int, int]]:
        """(0, 0), the first overflowing output, (M-1, N-1), then outputs drawn from the case's
        ``trace`` stream (uniform, repeats skipped), up to ``trace_samples``; sorted row-major."""
        M, N = overflow.shape
        total = M * N
        want = min(case.config["trace_samples"], total)
        if want == 0:
            return []
        ov = np.flatnonzero(overflow.reshape(-1))
        picks: dict[int, None] = dict.fromkeys([0] + ([int(ov[0])] if ov.size else []) + [total - 1])
        bitgen = stream(case.seed, "trace")
        while len(picks) < want:
            draws = uniform_ints(bitgen.random_raw(4 * want), 0, total - 1, IntType(64))
            for p in draws.tolist():
                picks.setdefault(p, None)
                if len(picks) == want:
                    break
        return [divmod(p, N) for p in sorted(list(picks)[:want])]


# --------------------------------------------------------------------------------------------------
# operators returning an OpResult
# --------------------------------------------------------------------------------------------------


def _scale_from_config(v: Any, where: str, *, nested: bool = False) -> Any:
    """A TOML scale: a float, ``{m, k}`` (a Dyadic: m a 64-bit signed integer, 0 <= k <= 127) or a
    flat list of either (at most MAX_DIM entries)."""
    if isinstance(v, list):
        if nested:
            raise ConfigError(f"{where}: a list inside a list of scales; per-channel scales are a flat list")
        if not v:
            raise ConfigError(f"{where}: an empty list")
        if len(v) > MAX_DIM:
            raise ConfigError(f"{where}: {len(v)} scales is more than MAX_DIM = {MAX_DIM}")
        return [_scale_from_config(x, f"{where}[{n}]", nested=True) for n, x in enumerate(v)]
    if isinstance(v, Mapping):
        check_keys(v, {"m", "k"}, where)
        if "m" not in v or "k" not in v:
            raise ConfigError(f"{where}: a Dyadic needs both m and k")
        m, k = v["m"], v["k"]
        for key, x, lo, hi in (("m", m, _M_MIN, _M_MAX), ("k", k, 0, _MAX_SHIFT)):
            if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
                raise ConfigError(f"{where}.{key}: must be an integer from {lo} to {hi}, got {brief(x)}")
        try:
            return Dyadic(m, k)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if not _finite_number(v):
        raise ConfigError(f"{where}: must be a finite number, a table {{m = .., k = ..}} or a list, got {brief(v)}")
    return float(v)


def _finite_number(v: Any) -> bool:
    """An int or float (not a bool) that is finite as a float64."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer beyond float64
        return False


def _config_error(exc: BaseException, where: str, op: str) -> ConfigError:
    """A failure of a dry run on zeros, as the ConfigError it stands for."""
    if isinstance(exc, ConfigError):
        return ConfigError(f"{where}: {exc}")
    return ConfigError(f"{where}: {op}: {type(exc).__name__}: {exc}")


def _dry_run(call: Callable[[], Any], where: str, op: str) -> Any:
    """``call()``; None when it overflows a register (data-dependent); any other failure a ConfigError."""
    try:
        return call()
    except (RegisterOverflow, AccumulatorOverflow):
        return None
    except Exception as exc:  # noqa: BLE001 - any failure on zeros is a configuration problem
        raise _config_error(exc, where, op) from None


def _scaled_budget(decls: Any, res: Any, probe_elements: int, elements: int) -> Budget:
    """The budget of an elementwise or row-wise operator from its dry run (an OpResult) on
    ``probe_elements`` input elements, scaled to the case's ``elements``: output ``y`` and every
    tap; the OPRESULT_EXPANSION estimate when the dry run gave no result."""
    if res is None:
        return _estimated_budget(decls)
    factor = -(-elements // max(1, probe_elements))
    tensors = input_budget(decls)
    tensors.append(TensorBudget("y", "output", max(1, int(np.size(getattr(res, "values", 0)))) * factor))
    for tname, arr in (getattr(res, "taps", None) or {}).items():
        tensors.append(TensorBudget(str(tname), "tap", max(1, int(np.size(arr))) * factor))
    return Budget(tuple(tensors))


def _taps_from_opresult(res: Any, where: str) -> list[tuple[TensorDecl, np.ndarray]]:
    regs = getattr(res, "registers", None)
    declared = dict(regs.widths) if regs is not None else {}
    taps = []
    for tname, arr in (res.taps or {}).items():
        check_name(tname, f"{where}: tap name")
        a = np.asarray(arr)
        if a.dtype.kind not in "iu":
            raise ConfigError(f"{where}: tap {tname!r} is a {a.dtype} array; golden taps must be integers")
        t = declared.get(tname, IntType(64))
        if a.size and not bool(np.all(t.contains(a))):
            t = IntType(64)
        # np.array, not np.ascontiguousarray: the latter turns a 0-d tap (a per-row scalar of a 1-D
        # input) into shape (1,), which then contradicts its own declaration
        taps.append((TensorDecl(tname, "tap", tuple(a.shape), t), np.array(a, dtype=t.dtype, order="C")))
    return taps


class RequantizeOperator(GoldenOperator):
    """:func:`intsim.quant.requant.requantize` (see the module docs)."""

    name = "requantize"
    summary = "integer requantization by a scale, as TFLite / ONNX / onnxruntime / Gemmini / exact dyadic do it"
    CONFIG = {"mode": "dyadic", "scale": None, "rounding": None, "out": "int8", "in_type": "int32",
              "zero_point": 0, "order": "round_then_saturate", "allow_negative": False, "overflow": "raise"}

    def describe(self) -> OperatorDoc:
        return _requantize_doc(self)

    def resolve(self, spec: CaseSpec) -> Case:
        where = spec.where
        check_keys(spec.shape, {"x"}, f"{where}: shape")
        dims = _dims(spec.shape.get("x"), f"{where}: shape.x")
        check_keys(spec.config, self.CONFIG, f"{where}: config")
        cfg = dict(self.CONFIG)
        cfg.update(spec.config)
        if cfg["scale"] is None:
            raise ConfigError(f"{where}: config.scale: missing (a float, {{m = .., k = ..}} or a list)")
        scale = _scale_from_config(cfg["scale"], f"{where}: config.scale")
        if isinstance(scale, list) and len(scale) != dims[-1]:
            raise ConfigError(f"{where}: config.scale: {len(scale)} per-channel scales, but the channel "
                              f"dimension (the last of shape.x = {dims}) is {dims[-1]}")
        in_t = type_key(cfg["in_type"], f"{where}: config.in_type")
        out_t = type_key(cfg["out"], f"{where}: config.out")
        cfg["in_type"], cfg["out"] = in_t.name, out_t.name
        for key in ("mode", "order", "overflow") + (("rounding",) if cfg["rounding"] is not None else ()):
            if not isinstance(cfg[key], str):
                raise ConfigError(f"{where}: config.{key}: must be a string, got {brief(cfg[key])}")
        zp = cfg["zero_point"]
        if isinstance(zp, bool) or not isinstance(zp, int) or not _M_MIN <= zp <= _M_MAX:
            raise ConfigError(f"{where}: config.zero_point: must be a 64-bit integer, got {brief(zp)}")
        bool_key(cfg["allow_negative"], f"{where}: config.allow_negative")
        decls = [TensorDecl("x", "input", tuple(dims), in_t)]
        check_budget(where, Budget(tuple(input_budget(decls))))
        inputs = self._inputs(spec, decls, {"x": "alternating"})
        case = Case(spec.name, self.name, spec.seed, {"x": list(dims)}, cfg, inputs, tuple(decls),
                    spec.description)
        # validate the remaining options (mode, rounding, zero point, ...) by a dry run on one row of
        # zeros (one channel vector), which also gives the taps the case will have
        probe = np.zeros((1,) * (len(dims) - 1) + (dims[-1],), dtype=np.int64)
        res = None
        try:
            res = self._call(case, probe)
        except RegisterOverflow:
            res = _dry_run(lambda: self._call(replace(case, config={**case.config, "overflow": "wrap"}), probe),
                           f"{where}: config", self.name)
        except Exception as exc:  # noqa: BLE001 - any failure on zeros is a configuration problem
            raise _config_error(exc, f"{where}: config", self.name) from None
        budget = _scaled_budget(decls, res, probe.size, math.prod(dims))
        check_budget(where, budget)
        return replace(case, budget=budget)

    @staticmethod
    def _call(case: Case, x: np.ndarray) -> Any:
        from ..quant.requant import requantize

        c = case.config
        return requantize(x, _scale_from_config(c["scale"], "scale"), c["rounding"], c["out"], mode=c["mode"],
                          in_type=c["in_type"], zero_point=c["zero_point"], order=c["order"],
                          allow_negative=c["allow_negative"], overflow=c["overflow"], taps=True)

    def run(self, case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:
        out_t = IntType.parse(case.config["out"])
        x = inputs["x"]
        raises = None
        try:
            res = self._call(case, x)
        except RegisterOverflow as exc:
            raises = {"error": type(exc).__name__, "op": exc.op, "step": exc.step, "value": exc.value,
                      "bits": exc.bits}
            res = self._call(replace(case, config={**case.config, "overflow": "wrap"}), x)
        where = f"case {case.name!r}"
        outputs = [(TensorDecl("y", "output", tuple(x.shape), out_t), np.asarray(res.values).astype(out_t.dtype))]
        return OpRun(outputs, _taps_from_opresult(res, where), raises)


def _check_scalar(v: Any, where: str) -> None:
    """A scalar keyword argument: a finite float, an integer of at most 64 bits, a bool or a string;
    tables are passed on (checked by the operator) when their values are such scalars."""
    if isinstance(v, Mapping):
        for key, x in v.items():
            if isinstance(x, (Mapping, list)):
                raise ConfigError(f"{where}.{key}: must be a number, a string or true/false, got {brief(x)}")
            _check_scalar(x, f"{where}.{key}")
    elif isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(f"{where}: must be a finite number, got {v!r}")
    elif isinstance(v, int) and not isinstance(v, bool) and not _M_MIN <= v <= (1 << 64) - 1:
        raise ConfigError(f"{where}: must be an integer of at most 64 bits, got {brief(v)}")


def _number_array(v: list[Any], where: str) -> np.ndarray:
    """A list of numbers (nested lists must be rectangular), as an array: finite, at most 64-bit integers."""
    if len(v) > MAX_TENSOR_ELEMENTS:
        raise ConfigError(f"{where}: a list of {len(v)} entries is more than MAX_TENSOR_ELEMENTS")
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is None or arr.dtype.kind not in "iuf" or not bool(np.all(np.isfinite(arr))):
        raise ConfigError(f"{where}: a list must hold finite numbers only (nested lists of equal lengths), "
                          f"got {brief(v)}")
    return arr


def _doc_summary(fn: Any) -> str:
    """The first paragraph of a callable's docstring as plain text on one line (never cut mid-sentence)."""
    return summary(getattr(fn, "__doc__", "") or "")


def _delegate(fn: Any) -> Any:
    """The function a ``**kw`` wrapper forwards to: the first ``:func:`name``` of its docstring, looked
    up in its module; None when there is none."""
    m = re.search(r":func:`~?([\w.]+)`", getattr(fn, "__doc__", "") or "")
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if m is None or module is None:
        return None
    target: Any = module
    for part in m.group(1).split("."):
        target = getattr(target, part, None)
    return target if callable(target) else None


class OpResultOperator(GoldenOperator):
    """Any callable ``fn(<tensors>, **config) -> OpResult`` on integer input tensors.

    This is the adapter of every operator of :mod:`intsim.ops.registry`, whose operators share
    the convention ``fn(x, scale, *, in_type, widths, overflow, taps, variant, ...)``.

    Spec: ``shape`` names the tensor inputs and their dimensions, by the callable's
    parameter names (``shape = { x = [4, 16] }``; ``{ gate = [..], up = [..] }`` for a
    two-tensor operator). ``config`` holds the keyword arguments, passed through
    (``in_type`` is also the word type of every input tensor; lists become numpy arrays,
    ``{m = .., k = ..}`` tables Dyadics), plus two reserved keys: ``input_types``
    (``{name = "int8"}``, per-tensor types overriding ``in_type``) and ``out_type`` (the
    output word type, default ``int32``; the outputs must fit it). ``taps=True`` is passed
    when the callable takes it. Output ``y``; taps: ``OpResult.taps`` at their registers'
    declared widths (64 bits when undeclared). A RegisterOverflow under the default
    ``overflow="raise"`` is recorded in ``raises`` and the outputs are those of
    ``overflow="wrap"``.
    """

    RESERVED = ("out_type", "input_types")

    def __init__(self, name: str, fn: Callable[..., Any], summary: str = "", *, variants: Sequence[str] = (),
                 tensors: Sequence[str] | None = None):
        self.name = name
        self.fn = fn
        self.summary = summary or _doc_summary(fn)
        #: the values of ``variant=`` (documentation; the operator itself checks them)
        self.variants = tuple(variants)
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            params = {}
        self._params = {k for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        self._varkw = any(p.kind == p.VAR_KEYWORD for p in params.values())
        self._declared = tensors is not None
        if tensors is None:  # the positional parameters without a default that are not scales
            tensors = [k for k, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                       and p.default is p.empty and not _is_scale(k)]
        self._tensors = tuple(tensors)

    def describe(self) -> OperatorDoc:
        return _opresult_doc(self)

    def _missing(self, shape: Mapping[str, Any], cfg: Mapping[str, Any], types: Mapping[str, Any]) -> list[str]:
        """What a case lacks: tensor inputs (when the registry declared them), the input word type and
        the scales without a default, one ``key: missing (...)`` each."""
        out = []
        if self._declared:
            out += [f"shape.{t}: missing (tensor input {t}: its dimensions, e.g. [4, 16])"
                    for t in self._tensors if t not in shape]
        tensors = set(shape) | (set(self._tensors) if self._declared else set())
        if "in_type" not in cfg and not tensors <= set(types):
            out.append("config.in_type: missing (the word type of the inputs, e.g. 'int8')")
        if self._declared:
            params = self._signature()
            out += [f"config.{k}: missing (a number, or {{m = .., k = ..}} for a dyadic)" for k, p in params.items()
                    if k not in self._tensors and p.default is p.empty and k not in cfg and _is_scale(k)]
        return out

    def _tensor_names(self) -> tuple[str, ...]:
        """The tensor inputs (the keys of a case's ``shape`` table)."""
        return self._tensors

    def _signature(self) -> dict[str, inspect.Parameter]:
        """The callable's named parameters; for one that forwards ``**kw`` to a function its docstring's
        first paragraph names (``:func:`di_norm```), that function's keyword parameters it does not set."""
        try:
            params = dict(inspect.signature(self.fn).parameters)
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            return {}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return params
        out = {k: p for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        target = _delegate(self.fn)
        if target is not None:
            try:
                source = inspect.getsource(self.fn)
            except (OSError, TypeError):  # pragma: no cover - no source: list every keyword
                source = ""
            for k, p in inspect.signature(target).parameters.items():
                if p.kind == p.KEYWORD_ONLY and k not in out and f"{k}=" not in source:
                    out[k] = p
        return out

    def _takes(self, name: str) -> bool:
        return name in self._params or self._varkw

    def _raises(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether the call runs under overflow policy ``raise`` (rerun under ``wrap`` on an overflow)."""
        policy = kwargs.get("overflow", "raise")
        return self._takes("overflow") and isinstance(policy, str) and policy == "raise"

    def _kwargs(self, config: Mapping[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "profile" in config and "variant" in config:
            raise ConfigError(f"{where}: config.profile is the old name of config.variant; give one of them")
        for k, v in config.items():
            if k in self.RESERVED:
                continue
            if k == "profile":  # the old name of variant=, still read from suites written with it
                k = "variant"
            if isinstance(v, Mapping) and set(v) == {"m", "k"}:
                out[k] = _scale_from_config(v, f"{where}.{k}")
            elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
                out[k] = _scale_from_config(v, f"{where}.{k}")
            elif isinstance(v, list):
                out[k] = _number_array(v, f"{where}.{k}")
            else:
                _check_scalar(v, f"{where}.{k}")
                out[k] = v
        if self._takes("taps"):
            out["taps"] = True
        return out

    def resolve(self, spec: CaseSpec) -> Case:
        where = spec.where
        hint = f"intsim golden operators {self.name} lists every key, with an example case"
        if not spec.shape:
            raise ConfigError(f"{where}: shape: missing; name each tensor input with its dimensions, "
                              f"e.g. shape = {{ {self._tensors[0] if self._tensors else 'x'} = [4, 16] }} ({hint})")
        cfg = dict(spec.config)
        if "taps" in cfg:
            raise ConfigError(f"{where}: config.taps: reserved (golden cases always record the taps)")
        types = cfg.get("input_types", {})
        if not isinstance(types, Mapping):
            raise ConfigError(f"{where}: config.input_types: must be a table of type names")
        missing = self._missing(spec.shape, cfg, types)
        if missing:  # every missing key at once, not one per attempt
            raise ConfigError(f"{where}: {'; '.join(missing)} ({hint})")
        check_keys(types, set(spec.shape), f"{where}: config.input_types")
        decls = []
        for tname, dims in spec.shape.items():
            if self._params and tname not in self._params:
                raise ConfigError(f"{where}: shape.{key_text(tname)}: not an input of {self.name} (its parameters: "
                                  f"{', '.join(sorted(self._params))})")
            if tname in cfg:
                raise ConfigError(f"{where}: config.{tname}: {tname} is a tensor input (given in shape)")
            dims = _dims(dims, f"{where}: shape.{tname}")
            if tname not in types and "in_type" not in cfg:
                raise ConfigError(f"{where}: config.in_type: missing (the word type of the inputs, e.g. 'int8')")
            key = f"config.input_types.{tname}" if tname in types else "config.in_type"
            t = type_key(types.get(tname, cfg.get("in_type")), f"{where}: {key} (the type of {tname})")
            decls.append(TensorDecl(check_name(tname, f"{where}: shape key"), "input", tuple(dims), t))
        if "in_type" in cfg:
            cfg["in_type"] = type_key(cfg["in_type"], f"{where}: config.in_type").name
        if types:
            cfg["input_types"] = {k: type_key(v, f"{where}: config.input_types.{k}").name for k, v in types.items()}
        cfg["out_type"] = type_key(cfg.get("out_type", "int32"), f"{where}: config.out_type").name
        kwargs = self._kwargs(cfg, f"{where}: config")
        inputs = self._inputs(spec, decls, {d.name: "alternating" for d in decls})
        check_budget(where, _estimated_budget(decls))  # bounds the dry run below
        zeros = {d.name: np.zeros(d.shape, dtype=np.int64) for d in decls}
        # validate the keyword arguments by a dry run on zeros; it also gives the output and tap shapes
        res = _dry_run(lambda: self.fn(**zeros, **kwargs), f"{where}: config", self.name)
        if res is None and self._raises(kwargs):
            res = _dry_run(lambda: self.fn(**zeros, **{**kwargs, "overflow": "wrap"}), f"{where}: config",
                           self.name)
        n = sum(math.prod(d.shape) for d in decls)
        budget = _scaled_budget(decls, res, n, n)  # the dry run was on the case's shapes: exact
        check_budget(where, budget)
        shape = {d.name: list(d.shape) for d in decls}
        return Case(spec.name, self.name, spec.seed, shape, cfg, inputs, tuple(decls), spec.description, budget)

    def run(self, case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:
        where = f"case {case.name!r}"
        out_t = IntType.parse(case.config["out_type"])
        tensors = {d.name: inputs[d.name] for d in case.input_decls}
        kwargs = self._kwargs(case.config, f"{where}: config")
        raises = None
        try:
            try:
                res = self.fn(**tensors, **kwargs)
            except RegisterOverflow as exc:
                if not self._raises(kwargs):
                    raise
                raises = {"error": type(exc).__name__, "op": exc.op, "step": exc.step, "value": exc.value,
                          "bits": exc.bits}
                res = self.fn(**tensors, **{**kwargs, "overflow": "wrap"})
        except (ArithmeticError, ValueError, TypeError) as exc:
            if isinstance(exc, IntsimError):
                raise
            raise ConfigError(f"{where}: {self.name} failed on the case's data: {type(exc).__name__}: {exc}") from None
        values = np.asarray(res.values)
        if values.dtype.kind not in "iu":
            raise ConfigError(f"{where}: {self.name} returned {values.dtype} values; golden outputs are integers")
        if values.size and (int(values.min()) < out_t.min or int(values.max()) > out_t.max):
            raise ConfigError(f"{where}: output values [{int(values.min())}, {int(values.max())}] do not fit "
                              f"out_type {out_t.name}; set config.out_type")
        outputs = [(TensorDecl("y", "output", tuple(values.shape), out_t), values.astype(out_t.dtype))]
        return OpRun(outputs, _taps_from_opresult(res, where), raises)


# --------------------------------------------------------------------------------------------------
# what `intsim golden operators NAME` prints: each adapter's keys, taps and an example case
# --------------------------------------------------------------------------------------------------

_TYPES = "a type name: int1 ... int64, uint1 ... uint64"
_DISTS = "a distribution (see Distributions)"
_SCALE = ("a number, { m = .., k = .. } for the dyadic m / 2**k, or a list of them (one per row) where the "
          "operator takes per-row scales")
_GEMM_POLICY = "wrap, saturate or raise"


def _gemm_keys() -> tuple[KeyDoc, ...]:
    """The datapath keys matmul and unpack_matmul share."""
    return (
        KeyDoc("acc_bits", "accumulator width in bits", 32, "an integer, at least the product width"),
        KeyDoc("overflow", "what the accumulator does on overflow; raise: the case records the "
                           "AccumulatorOverflow and C and the taps hold what wrapping registers hold", "raise",
               _GEMM_POLICY),
        KeyDoc("k_chunk", "products summed by an adder tree before each accumulator add", 1, "an integer >= 1"),
        KeyDoc("chunk_bits", "width of the adder tree's registers (absent: an exact adder tree)", None,
               "an integer"),
        KeyDoc("chunk_overflow", "the adder tree's overflow policy (absent: that of the accumulator)", None,
               _GEMM_POLICY),
    )


def _matmul_doc(op: MatmulOperator) -> OperatorDoc:
    return OperatorDoc(
        op.name, op.summary,
        shape=(KeyDoc("M", "rows of A and C", REQUIRED, f"1 to {MAX_DIM}"),
               KeyDoc("K", "columns of A, rows of B (the reduction)", REQUIRED, f"1 to {MAX_DIM}"),
               KeyDoc("N", "columns of B and C", REQUIRED, f"1 to {MAX_DIM}")),
        config=(KeyDoc("a", "word type of A (the multiplier's first operand)", "int8", _TYPES),
                KeyDoc("b", "word type of B", "int8", _TYPES),
                *_gemm_keys(),
                KeyDoc("bias", "add a per-column bias (input bias, N words at acc_bits) before the products",
                       False, "true or false"),
                KeyDoc("trace_samples", "outputs whose accumulator is traced add by add (tap acc_trace)", 4,
                       f"0 to {MAX_TRACE_SAMPLES}")),
        inputs=(KeyDoc("A", "M x K, type config.a", "uniform", _DISTS),
                KeyDoc("B", "K x N, type config.b", "uniform", _DISTS),
                KeyDoc("bias", "N, at acc_bits; only with config.bias = true", "uniform", _DISTS)),
        outputs=(KeyDoc("C", "M x N at acc_bits: A @ B (+ bias) as the accumulator holds it"),),
        taps=(KeyDoc("overflow", "M x N uint1: 1 where the output's accumulation overflowed"),
              KeyDoc("first_overflow_k", "M x N: the k of the first overflowing add, -1 if none"),
              KeyDoc("trace_ij", "S x 2: the traced outputs (i, j): (0, 0), the first overflowing output, "
                                 "(M-1, N-1), then seeded random ones"),
              KeyDoc("acc_trace", "S x ceil(K / k_chunk): each traced accumulator after each add")),
        example={"name": "matmul_example", "operator": op.name, "shape": {"M": 2, "K": 8, "N": 3},
                 "config": {"a": "int8", "b": "int8", "acc_bits": 32, "overflow": "wrap"},
                 "inputs": {"A": "uniform", "B": {"dist": "heavy_tailed", "outlier_rate": 0.1}}},
        about="Runs intsim.matmul on the Datapath the config describes. Inputs named overflow are "
              "corner data chosen to overflow the accumulator.")


def _requantize_doc(op: RequantizeOperator) -> OperatorDoc:
    from ..core.rounding import ROUNDING_MODES
    from ..quant.requant import requantize
    from ..quant.requant.common import REQUANT_MODES, REQUANT_ORDERS
    from ..regs.registers import REGISTER_POLICIES

    taps: dict[str, dict[str, str]] = {}
    for mode in REQUANT_MODES:  # the taps each back-end records (a dry run on zeros)
        res = requantize(np.zeros((1, 4), np.int64), 0.5, None, "int8", mode=mode, overflow="wrap", taps=True)
        for tap in _tap_widths(res):
            taps.setdefault(tap[0], {})[mode] = tap[1]
    return OperatorDoc(
        op.name, op.summary,
        shape=(KeyDoc("x", "the dimensions of x: a list of 1 to 4 (the last is the channel axis)", REQUIRED,
                      f"e.g. [4, 16]; each 1 to {MAX_DIM}"),),
        config=(KeyDoc("scale", "the requantization scale s: y = sat(round(x * s) + zero_point); a list gives "
                                "one scale per channel (last axis)", REQUIRED,
                       "a number, { m = .., k = .. } for the dyadic m / 2**k, or a list of either"),
                KeyDoc("mode", "the back-end whose arithmetic is reproduced", "dyadic", ", ".join(REQUANT_MODES)),
                KeyDoc("rounding", "rounding of x * s (only mode dyadic takes one; absent: half_even there, the "
                                   "back-end's own elsewhere)", None, ", ".join(ROUNDING_MODES)),
                KeyDoc("out", "word type of y", "int8", _TYPES),
                KeyDoc("in_type", "word type of x", "int32", _TYPES),
                KeyDoc("zero_point", "added after rounding", 0, "a 64-bit integer"),
                KeyDoc("order", "round then saturate, or clamp then round", "round_then_saturate",
                       ", ".join(REQUANT_ORDERS)),
                KeyDoc("allow_negative", "accept negative scales", False, "true or false"),
                KeyDoc("overflow", "what an overflowing register does; raise: the case records the "
                                   "RegisterOverflow and y holds the wrap result", "raise",
                       ", ".join(REGISTER_POLICIES))),
        inputs=(KeyDoc("x", "shape.x, type config.in_type", "uniform", _DISTS),),
        outputs=(KeyDoc("y", "the shape of x, type config.out"),),
        taps=tuple(KeyDoc(name, _by_variant(widths, len(REQUANT_MODES), "mode")) for name, widths in taps.items()),
        example={"name": "requantize_example", "operator": op.name, "shape": {"x": [2, 8]},
                 "config": {"mode": "dyadic", "scale": 0.0123, "rounding": "half_even", "in_type": "int32",
                            "out": "int8", "zero_point": -3},
                 "inputs": {"x": "heavy_tailed"}},
        about="Runs intsim.quant.requant.requantize (help(intsim.quant.requant) gives every mode's arithmetic).")


def _unpack_doc(op: GoldenOperator) -> OperatorDoc:
    from ..hw.unpack import STRATEGIES

    strategies = ", ".join(STRATEGIES)
    return OperatorDoc(
        op.name, op.summary,
        shape=(KeyDoc("M", "rows of A", REQUIRED, "1 to 4096"), KeyDoc("K", "the reduction", REQUIRED, "1 to 4096"),
               KeyDoc("N", "columns of B", REQUIRED, "1 to 4096")),
        config=(KeyDoc("in_a", "word type of the large-integer input A", "int16", _TYPES),
                KeyDoc("in_b", "word type of the large-integer input B", "int16", _TYPES),
                KeyDoc("a", "the low-bit datapath's first operand type (signed)", "int8", _TYPES),
                KeyDoc("b", "the low-bit datapath's second operand type (signed)", "int8", _TYPES),
                *_gemm_keys(),
                KeyDoc("strategy_a", "how A is unpacked", "row", strategies),
                KeyDoc("strategy_b", "how B is unpacked", "row", strategies),
                KeyDoc("bits", "digit widths (absent: the datapath widths)", None,
                       "an integer or [bits_a, bits_b]"),
                KeyDoc("admit_min", "admit -2**(b-1) as an in-range digit", False, "true or false")),
        inputs=(KeyDoc("A", "M x K, type config.in_a", "uniform", _DISTS),
                KeyDoc("B", "K x N, type config.in_b", "uniform", _DISTS)),
        outputs=(KeyDoc("C", "M x N int64: the reassembled exact product"),),
        taps=(KeyDoc("a_unpacked", "M' x K'', datapath a: the unpacked A stream"),
              KeyDoc("b_unpacked", "K'' x N', datapath b: the unpacked B stream"),
              KeyDoc("a_index", "M' uint32: the source row of each unpacked row"),
              KeyDoc("a_shift", "M' uint32: its left shift (scale 2**shift)"),
              KeyDoc("b_index", "N' uint32: the source column of each unpacked column"),
              KeyDoc("b_shift", "N' uint32: its left shift"),
              KeyDoc("k_shift", "K'' uint32: the shift of each inner line"),
              KeyDoc("overflow", "M x N uint1: 1 where a low-bit accumulation overflowed"),
              KeyDoc("lowbit_s<t>", "M' x N' at acc_bits, one per distinct inner shift t: the low-bit GEMM's "
                                    "accumulators over the inner lines with k_shift == t")),
        example={"name": "unpack_matmul_example", "operator": op.name, "shape": {"M": 2, "K": 4, "N": 2},
                 "config": {"in_a": "int16", "in_b": "int16", "a": "int8", "b": "int8", "acc_bits": 32,
                            "overflow": "raise", "strategy_a": "row", "strategy_b": "row"},
                 "inputs": {"A": {"dist": "heavy_tailed", "outlier_rate": 0.1}, "B": "heavy_tailed"}},
        about="Runs intsim.hw.unpack.unpack_matmul. The unpacked shapes depend on the data; the streams "
              "are checked at generation (the low-bit GEMMs on them, reassembled, give C exactly).")


def _encoder_layer_doc(op: GoldenOperator) -> OperatorDoc:
    from ..models.minilm import CONFIGURATIONS, DEFAULT_CONFIG, DEFAULT_NONLINEAR, NONLINEAR

    return OperatorDoc(
        op.name, op.summary,
        shape=(KeyDoc("T", "tokens of the sentence", REQUIRED, "1 to 64"),),
        config=(KeyDoc("configuration", "the quantization configuration", DEFAULT_CONFIG, ", ".join(CONFIGURATIONS)),
                KeyDoc("nonlinear", "the family of integer softmax / GELU / LayerNorm (profile: its old name)",
                       DEFAULT_NONLINEAR, ", ".join(NONLINEAR)),
                KeyDoc("layer", "which encoder layer", 0, "0 to 5")),
        inputs=(KeyDoc("x", "T x 384: the residual-stream integers (type from the configuration)",
                       "heavy_tailed (scale_bits 11, 1% outliers, 2 outlier channels: like the real stream)", _DISTS),),
        outputs=(KeyDoc("y", "T x 384: the next layer's residual-stream input"),),
        taps=(KeyDoc("<intermediate>", "every intermediate integer tensor of the layer, in order"),
              KeyDoc("param_*", "the layer's integer parameters: weights, biases, requantization mantissas m and "
                                "shifts k")),
        example={"name": "encoder_layer_example", "operator": op.name, "shape": {"T": 4},
                 "config": {"configuration": DEFAULT_CONFIG, "nonlinear": DEFAULT_NONLINEAR, "layer": 0}},
        needs="the MiniLM model (intsim model fetch, or intsim --model-dir DIR)")


#: example cases of the registry's operators: shape, config and inputs (a fallback covers the others)
_EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "ibert.i_exp": ({"x": [2, 8]}, {"in_type": "int32", "scale": 0.001, "out_type": "int64"},
                    {"x": {"dist": "uniform", "low": -30000, "high": 0}}),
    "ibert.softmax": ({"x": [2, 8]}, {"in_type": "int32", "scale": 0.01, "variant": "published", "out_type": "int16"},
                      {"x": {"dist": "heavy_tailed", "scale_bits": 8, "outlier_rate": 0.05}}),
    "ibert.gelu": ({"x": [2, 8]}, {"in_type": "int32", "scale": 0.001, "variant": "published"},
                   {"x": {"dist": "uniform", "low": -5000, "high": 5000}}),
    "ibert.layernorm": ({"x": [2, 8]}, {"in_type": "int22", "scale": 0.01, "variant": "published"},
                        {"x": {"dist": "heavy_tailed", "scale_bits": 8, "outlier_rate": 0.0}}),
    "ibert.fixedpoint_mul": ({"x": [2, 8]}, {"in_type": "int32", "in_scale": 0.0003, "out_scale": 0.05, "bits": 8,
                                             "out_type": "int8"}, {"x": {"dist": "heavy_tailed", "scale_bits": 12}}),
    "ivit.shift_exp": ({"x": [2, 8]}, {"in_type": "int32", "scale": 0.01, "variant": "pytorch", "out_type": "int64"},
                       {"x": {"dist": "uniform", "low": -3000, "high": 0}}),
    "ivit.shiftmax": ({"x": [2, 8]}, {"in_type": "int8", "scale": 0.05, "variant": "pytorch", "out_type": "int16"},
                      {"x": "uniform"}),
    "ivit.shiftgelu": ({"x": [2, 8]}, {"in_type": "int8", "scale": 0.05, "variant": "pytorch"}, {"x": "uniform"}),
    "ivit.layernorm": ({"x": [2, 8]}, {"in_type": "int16", "scale": 0.01, "variant": "pytorch"},
                       {"x": {"dist": "heavy_tailed", "scale_bits": 6, "outlier_rate": 0.05}}),
    "illm.di_exp": ({"x": [2, 8]}, {"in_type": "int32", "scale": 0.01},
                    {"x": {"dist": "uniform", "low": -2000, "high": 0}}),
    "illm.clipped_softmax": ({"x": [2, 8]}, {"in_type": "int32", "scale": [0.01, 0.05]},
                             {"x": {"dist": "uniform", "low": -100000, "high": 100000}}),
    "illm.rmsnorm": ({"x": [2, 8]}, {"in_type": "int16", "scale": 0.05},
                     {"x": {"dist": "heavy_tailed", "scale_bits": 6, "outlier_rate": 0.05}}),
    "illm.layernorm": ({"x": [2, 8]}, {"in_type": "int16", "scale": 0.05}, {"x": "alternating"}),
    "illm.swiglu": ({"gate": [2, 8], "up": [2, 8]},
                    {"in_type": "int8", "scale": 0.05, "up_scale": 0.02, "out_type": "int64"},
                    {"gate": "uniform", "up": "uniform"}),
    "illm.dynamic_requant": ({"p": [2, 8]}, {"in_type": "int32", "scale": 0.001, "bits": 8},
                             {"p": {"dist": "heavy_tailed", "scale_bits": 10, "outlier_rate": 0.0}}),
    "isqrt.isqrt": ({"n": [2, 8]}, {"in_type": "uint32", "variant": "newton"}, {"n": "uniform"}),
}

#: what the keys every registry operator shares mean
_COMMON_KEYS: dict[str, tuple[str, str]] = {
    "variant": ("which form of the operator (the published code, a fix, ...)", ""),
    "widths": ("register widths overriding the declared ones: { register = bits }",
               "a table of register names (the taps below) to 1 ... 64 bits or a type name"),
    "overflow": ("what a register that overflows does; raise: the case records the RegisterOverflow and its "
                 "outputs and taps are those of wrap", ""),
    "gamma": ("per-channel affine weight (absent: none)", "a list of numbers, one per channel (last axis)"),
    "beta": ("per-channel affine bias (absent: none)", "a list of numbers, one per channel (last axis)"),
    "rounding": ("rounding of the output", ""),
}


def _is_scale(name: str) -> bool:
    """Whether a positional input of a registry operator is a scale (config), not a tensor (shape)."""
    return name == "scale" or name.endswith("_scale")


def _toml_value(v: Any) -> str:
    """``v`` written as a TOML value (inline tables and arrays)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, IntType):
        return json.dumps(v.name)
    if isinstance(v, (int, str)):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def _toml_key(k: Any) -> str:
    return k if isinstance(k, str) and k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(str(k))


def _tap_widths(res: Any) -> list[tuple[str, str]]:
    """(tap, type name) of an OpResult's taps at their declared widths (64 bits when undeclared)."""
    regs = getattr(res, "registers", None)
    declared = dict(regs.widths) if regs is not None else {}
    return [(str(k), IntType.parse(declared.get(k, IntType(64))).name) for k in (res.taps or {})]


def _by_variant(widths: Mapping[str, str], n_variants: int, what: str = "variant") -> str:
    """``int32`` when every variant (or mode) has the tap at one width, else which ones have what."""
    kinds: dict[str, list[str]] = {}
    for variant, t in widths.items():
        kinds.setdefault(t, []).append(variant)
    if len(kinds) == 1 and len(widths) == n_variants:
        return next(iter(kinds))
    return "; ".join(f"{t} ({what} {', '.join(vs)})" for t, vs in kinds.items())


def _opresult_doc(op: OpResultOperator) -> OperatorDoc:
    fn = op.fn
    params = op._signature()
    tensors = op._tensor_names()
    example = _EXAMPLES.get(op.name) or _fallback_example(op, params, tensors)
    shape_ex, config_ex, inputs_ex = example
    where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__name__', '?')}"
    own = set(inspect.signature(fn).parameters)
    delegate = _delegate(fn) if any(p not in own for p in params) else None
    shape = tuple(KeyDoc(t, f"the dimensions of tensor input {t}: a list of 1 to 4", REQUIRED,
                         f"e.g. {_toml_value(shape_ex.get(t, [2, 8]))}; each 1 to {MAX_DIM}") for t in tensors)
    in_default = params.get("in_type", inspect.Parameter.empty)
    in_text = "word type of every tensor input" + (
        f" (the operator's usual input is {IntType.parse(in_default).name})"
        if isinstance(in_default, (IntType, str)) else "")
    config: list[KeyDoc] = [KeyDoc("in_type", in_text, REQUIRED, _TYPES)]
    for name, p in params.items():
        if name in tensors or name in ("taps", "in_type"):
            continue
        default = REQUIRED if p.default is inspect.Parameter.empty else p.default
        text, valid = _COMMON_KEYS.get(name, ("", ""))
        if _is_scale(name):
            text = text or ("the real value of one input step" if name == "scale" else f"the scale {name}")
            valid = _SCALE
        elif name == "variant":
            valid = ", ".join(op.variants) if op.variants else str(default)
        elif name == "overflow":
            from ..regs.registers import REGISTER_POLICIES

            valid = ", ".join(REGISTER_POLICIES)
        elif name == "rounding":
            from ..core.rounding import ROUNDING_MODES

            valid = ", ".join(ROUNDING_MODES)
        if not text:
            owner = where if name in own else f"{getattr(delegate, '__module__', '?')}.{delegate.__name__}"
            text = f"keyword argument {name} of {owner} (see About)"
        if not valid and default is not REQUIRED and default is not None:
            valid = ("true or false" if isinstance(default, bool) else "an integer" if isinstance(default, int)
                     else "a number" if isinstance(default, float) else "")
        if isinstance(default, tuple):
            default = [list(x) if isinstance(x, tuple) else x for x in default]
        config.append(KeyDoc(name, text, default, valid))
    config += [KeyDoc("out_type", "word type of the output y; the outputs must fit it", "int32", _TYPES),
               KeyDoc("input_types", "per-tensor word types overriding in_type (absent: in_type for every tensor)",
                      None, "{ " + ", ".join(f'{t} = "int8"' for t in tensors) + " }")]
    return OperatorDoc(
        op.name, op.summary, shape=shape, config=tuple(config),
        inputs=tuple(KeyDoc(t, f"shape.{t}, type config.in_type (or config.input_types.{t})", "uniform", _DISTS)
                     for t in tensors),
        outputs=(KeyDoc("y", "the operator's integer output (OpResult.values), type config.out_type"),),
        taps=_opresult_taps(op, shape_ex, config_ex),
        example={"name": op.name.replace(".", "_") + "_example", "operator": op.name, "shape": shape_ex,
                 "config": config_ex, "inputs": inputs_ex},
        about=f"Runs {where}; its documentation (help({where})):\n\n" + plain(getattr(fn, "__doc__", "") or "")
        + ("" if delegate is None else f"\n\n{delegate.__module__}.{delegate.__name__}:\n\n" + plain(delegate.__doc__)))


def _fallback_example(op: OpResultOperator, params: Mapping[str, inspect.Parameter], tensors: tuple[str, ...]
                      ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An example for a registry operator without one in _EXAMPLES: 2 x 8 tensors of its usual input
    type, every required scale 0.05, its first variant, 64-bit outputs."""
    p = params.get("in_type")
    in_type = IntType.parse(p.default).name if p is not None and isinstance(p.default, (IntType, str)) else "int32"
    config: dict[str, Any] = {"in_type": in_type}
    for name, q in params.items():
        if name not in tensors and q.default is inspect.Parameter.empty:
            config[name] = 0.05
    if op.variants:
        config["variant"] = op.variants[0]
    config["out_type"] = "int64"
    return {t: [2, 8] for t in tensors}, config, {t: "uniform" for t in tensors}


def _opresult_taps(op: OpResultOperator, shape: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[KeyDoc, ...]:
    """The taps of a dry run on zeros of the example's shapes, for every variant."""
    variants = op.variants or (None,)
    widths: dict[str, dict[str, str]] = {}
    for variant in variants:
        cfg = {k: v for k, v in config.items() if k not in ("in_type", "variant")}
        if variant is not None:
            cfg["variant"] = variant
        if op._takes("overflow"):
            cfg["overflow"] = "wrap"
        try:
            kwargs = op._kwargs(cfg, "example")
            zeros = {t: np.zeros(tuple(d), dtype=np.int64) for t, d in shape.items()}
            res = op.fn(**zeros, **kwargs, in_type=config["in_type"]) if op._takes("in_type") else op.fn(
                **zeros, **kwargs)
        except Exception as exc:  # noqa: BLE001 - documentation must not fail; say why the taps are unknown
            return (KeyDoc("(unknown)", f"the dry run of the example failed: {type(exc).__name__}: {exc}"),)
        for name, t in _tap_widths(res):
            widths.setdefault(name, {})[str(variant)] = t
    return tuple(KeyDoc(name, _by_variant(w, len(variants))) for name, w in widths.items())


def describe_operator(name: str) -> OperatorDoc:
    """What ``intsim golden operators NAME`` prints about operator ``name`` (ConfigError listing the
    valid names when unknown).

    >>> d = describe_operator("ibert.softmax")
    >>> [k.name for k in d.shape], [k.name for k in d.config if k.required]
    (['x'], ['in_type', 'scale'])
    """
    op = get_operator(name, "intsim golden operators")
    from .minilm_op import EncoderLayerOperator

    if isinstance(op, EncoderLayerOperator):
        return _encoder_layer_doc(op)
    if isinstance(op, UnpackMatmulOperator):
        return _unpack_doc(op)
    return op.describe()


def example_spec(name: str) -> str:
    """A complete spec file (TOML) with operator ``name``'s example case: ``intsim golden generate``
    accepts it as written.

    >>> print(example_spec("matmul").splitlines()[-3])
    shape = { M = 2, K = 8, N = 3 }
    """
    doc = describe_operator(name)
    case = dict(doc.example)
    if not case:
        raise ConfigError(f"operator {name!r} documents no example case")
    lines = [f"# an example case of {name}; write it to spec.toml, then run", "#   intsim golden generate spec.toml "
             "--out DIR   and   intsim golden verify DIR", "", "[suite]",
             f"name = {_toml_value('example-' + name.replace('.', '-').replace('_', '-'))}", "", "[[case]]"]
    for key in ("name", "operator", "description", "seed", "shape", "config", "inputs"):
        if key in case:
            lines.append(f"{key} = {_toml_value(case[key])}")
    return "\n".join(lines) + "\n"


def _key_lines(keys: Sequence[KeyDoc], with_default: bool = True) -> list[str]:
    width = max((len(k.name) for k in keys), default=0)
    out = []
    for k in keys:
        parts = [_default_text(k)] if with_default else []
        if k.text:
            parts.append(k.text)
        if k.valid:
            parts.append(f"valid: {k.valid}")
        out.append(f"  {k.name:<{width}}  " + "; ".join(parts))
    return out


def _dist_lines() -> list[str]:
    """One line per distribution of :data:`intsim.golden.datagen.DISTRIBUTIONS`, with its table form."""
    width = max(len(d) for d in DISTRIBUTIONS)
    out = []
    for name, params in DISTRIBUTIONS.items():
        table = {"dist": name, **{k: (".." if v is None else v) for k, v in params.items()}}
        text = _toml_value(table).replace('".."', "..")
        out.append(f"  {name:<{width}}  {text}")
    return out


def _default_text(k: KeyDoc) -> str:
    if k.required:
        return "required"
    if k.default is None:
        return "optional"
    if isinstance(k.default, str) and " " in k.default:  # a description, not a value
        return f"default {k.default}"
    return f"default {_toml_value(k.default)}"


def operator_help(name: str) -> str:
    """The text ``intsim golden operators NAME`` prints: the operator's shape, config and inputs keys
    (required ones, defaults, valid values), its outputs and taps, what it computes and, last, a
    complete example spec (:func:`example_spec`)."""
    doc = describe_operator(name)
    out = [f"{doc.name}: {doc.summary}", ""]
    if doc.needs:
        out += [f"Needs {doc.needs}.", ""]
    out += ["Shape (the case's shape table):"] + (_key_lines(doc.shape) or ["  (none)"])
    out += ["", "Config (the case's config table; unknown keys are errors):"] + (_key_lines(doc.config) or ["  (none)"])
    out += ["", "Inputs (the case's inputs table: one distribution per input tensor):"] + _key_lines(doc.inputs)
    if doc.inputs:
        out += ["", "Distributions (a name, or a table with dist and parameters; .. : from the input's type; "
                    "help(intsim.golden.datagen) explains each):"] + _dist_lines()
    out += ["", "Outputs:"] + _key_lines(doc.outputs, with_default=False)
    out += ["", "Taps (intermediate registers, written for every case):"] + (
        _key_lines(doc.taps, with_default=False) or ["  (none)"])
    if doc.about:
        out += ["", "About:"] + [f"  {line}" if line.strip() else "" for line in plain(doc.about).splitlines()]
    out += ["", "Example case (a complete spec file; intsim golden operators NAME --example prints it alone):", ""]
    return "\n".join(out) + "\n" + example_spec(name)




# --------------------------------------------------------------------------------------------------
# the adapters, by operator name
# --------------------------------------------------------------------------------------------------

#: operator name (as golden suites spell it) -> the adapter that resolves, runs and budgets its cases
ADAPTERS: dict[str, GoldenOperator] = {}


def register(op: GoldenOperator) -> GoldenOperator:
    """Add an adapter to :data:`ADAPTERS` under ``op.name`` (refuses a duplicate name)."""
    if not op.name or op.name in ADAPTERS:
        raise ConfigError(f"cannot register golden operator {op.name!r}: empty or already registered")
    ADAPTERS[op.name] = op
    return op


@functools.cache
def _discover() -> None:
    """Register the operators of :mod:`intsim.ops.registry` and the MiniLM layer (once, on first
    use: importing them compiles nothing, but the MiniLM adapter pulls in the model code)."""
    for name, spec in operators().items():
        if name not in ADAPTERS:
            ADAPTERS[name] = OpResultOperator(name, spec.fn, variants=spec.variants,
                                              tensors=[i for i in spec.inputs if not _is_scale(i)])
    from .minilm_op import EncoderLayerOperator

    if EncoderLayerOperator.name not in ADAPTERS:
        register(EncoderLayerOperator())


def available_operators() -> dict[str, str]:
    """Operator name -> one-line summary, for every operator a suite can use."""
    _discover()
    return {k: ADAPTERS[k].summary for k in sorted(ADAPTERS)}


def get_operator(name: Any, where: str = "operator") -> GoldenOperator:
    """The adapter registered as ``name``; ConfigError naming ``where`` and listing the valid names."""
    if isinstance(name, str) and name in ADAPTERS:
        return ADAPTERS[name]
    _discover()
    if isinstance(name, str) and name in ADAPTERS:
        return ADAPTERS[name]
    raise ConfigError(f"{where}: unknown operator {brief(name)}; available: {', '.join(sorted(ADAPTERS))}")


register(MatmulOperator())
register(RequantizeOperator())
register(UnpackMatmulOperator())
