"""Golden adapter for :func:`intsim.hw.unpack.unpack_matmul` (IM-Unpack on a low-bit datapath).

Case tables:

* ``shape``: ``M, K, N``;
* ``config``: ``in_a``, ``in_b`` (types of the large-integer inputs, default ``int16``),
  the low-bit datapath ``a``, ``b`` (signed, default ``int8``), ``acc_bits`` (32),
  ``overflow`` (``raise``), ``k_chunk`` (1), ``chunk_bits``, ``chunk_overflow``, and the
  unpacking: ``strategy_a``, ``strategy_b`` (``row``), ``bits`` (absent: the datapath
  widths; an integer or ``[bits_a, bits_b]``), ``admit_min`` (false);
* ``inputs``: ``A`` (M x K, ``in_a``), ``B`` (K x N, ``in_b``).

Output ``C`` (M x N, int64): the reassembled result. Taps, exactly as the low-bit
hardware sees them: ``a_unpacked`` (M' x K'', datapath a) and ``b_unpacked``
(K'' x N', datapath b), the operand streams; ``a_index``/``a_shift`` (M'), the source
row and the left shift (scale ``2**shift``) of each unpacked row; ``b_index``/``b_shift``
(N'), the same for the unpacked columns; ``k_shift`` (K''), the shift of each inner
line; ``overflow`` (M x N uint1); and, per distinct inner shift ``t``, ``lowbit_s<t>``
(M' x N', the low-bit GEMM's accumulators over the inner lines with ``k_shift == t``).
The streams are checked at generation: re-running the low-bit GEMMs on them and
reassembling must give ``C`` (and the same overflow flags) exactly.

Sizes (checked against the caps of :mod:`intsim.golden.spec` before anything is computed):
the unpacked shapes depend on the data, so the case declares upper bounds. An entry of
type ``in_a`` needs at most ``L_A`` floor digits at ``bits_a`` bits (the larger of the
counts of the type's two extremes), so M' <= M*L_A, N' <= N*L_B, K'' <= K*L_A*L_B, and
there are at most min(L_A*L_B, K'') distinct inner shifts, each a low-bit accumulator tap
of M'*N'. Work: 3*M'*K''*N' multiply-accumulates (the GEMMs, run again under a raise
policy, and their check) and (L_A*L_B + 1)*M'*N' reassembly-check steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..core.errors import AccumulatorOverflow, ConfigError
from ..core.inttype import IntType
from ..hw.datapath import Datapath
from ..hw.gemm import matmul
from .keys import Budget, TensorBudget, bool_key, brief, check_budget, check_keys, int_key, type_key
from .opbase import Case, CaseSpec, GoldenOperator, OpRun, TensorDecl

__all__ = ["UnpackMatmulOperator"]

_U32 = IntType(32, signed=False)
_MAX_SIDE = 4096  # M, K and N of an unpack case


def _levels(t: IntType, bits: int, admit_min: bool) -> int:
    """The most floor digits (base 2**(bits-1)) an entry of type ``t`` can need: the larger of its extremes'."""
    s = 1 << (bits - 1)
    lo, hi = (-s if admit_min else -(s - 1)), s - 1
    most = 1
    for x in (t.min, t.max):
        n = 1
        while not lo <= x // s ** (n - 1) <= hi:
            n += 1
        most = max(most, n)
    return most


def _bits_pair(bits: Any, dp: Datapath) -> tuple[int, int]:
    """(bits_a, bits_b) of a validated config: the datapath widths, an integer or a pair."""
    if bits is None:
        return dp.a.bits, dp.b.bits
    if isinstance(bits, (list, tuple)):
        return int(bits[0]), int(bits[1])
    return int(bits), int(bits)


class UnpackMatmulOperator(GoldenOperator):
    """``intsim.hw.unpack.unpack_matmul`` (see the module docs)."""

    name = "unpack_matmul"
    summary = "IM-Unpack: exact A @ B of large integers as low-bit GEMMs plus shift-and-add reassembly"
    CONFIG = {"in_a": "int16", "in_b": "int16", "a": "int8", "b": "int8", "acc_bits": 32, "overflow": "raise",
              "k_chunk": 1, "chunk_bits": None, "chunk_overflow": None, "strategy_a": "row", "strategy_b": "row",
              "bits": None, "admit_min": False}

    @staticmethod
    def datapath(c: Mapping[str, Any]) -> Datapath:
        return Datapath(a=IntType.parse(c["a"]), b=IntType.parse(c["b"]), acc_bits=c["acc_bits"],
                        overflow=c["overflow"], k_chunk=c["k_chunk"], chunk_bits=c["chunk_bits"],
                        chunk_overflow=c["chunk_overflow"])

    def resolve(self, spec: CaseSpec) -> Case:
        from ..hw.unpack import STRATEGIES

        where = spec.where
        check_keys(spec.shape, {"M", "K", "N"}, f"{where}: shape")
        dims = {k: int_key(spec.shape, k, f"{where}: shape", 1, _MAX_SIDE) for k in ("M", "K", "N")}
        check_keys(spec.config, self.CONFIG, f"{where}: config")
        cfg = dict(self.CONFIG)
        cfg.update(spec.config)
        in_a = type_key(cfg["in_a"], f"{where}: config.in_a")
        in_b = type_key(cfg["in_b"], f"{where}: config.in_b")
        for key in ("a", "b"):
            type_key(cfg[key], f"{where}: config.{key}")
        try:
            dp = self.datapath(cfg)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{where}: config: {exc}") from None
        for key in ("strategy_a", "strategy_b"):
            if not isinstance(cfg[key], str) or cfg[key] not in STRATEGIES:
                raise ConfigError(f"{where}: config.{key}: must be one of {', '.join(STRATEGIES)}, "
                                  f"got {brief(cfg[key])}")
        bits = cfg["bits"]
        if isinstance(bits, list):
            if len(bits) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bits):
                raise ConfigError(f"{where}: config.bits: must be an integer or a pair [bits_a, bits_b], "
                                  f"got {brief(bits)}")
            bits = tuple(bits)
        elif bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)):
            raise ConfigError(f"{where}: config.bits: must be an integer or a pair [bits_a, bits_b], got {brief(bits)}")
        bool_key(cfg["admit_min"], f"{where}: config.admit_min")
        config = {"in_a": in_a.name, "in_b": in_b.name, "a": dp.a.name, "b": dp.b.name, "acc_bits": dp.acc_bits,
                  "overflow": dp.overflow, "k_chunk": dp.k_chunk, "chunk_bits": dp.chunk_bits,
                  "chunk_overflow": dp.chunk_overflow, "strategy_a": cfg["strategy_a"],
                  "strategy_b": cfg["strategy_b"], "bits": list(bits) if isinstance(bits, tuple) else bits,
                  "admit_min": cfg["admit_min"]}
        M, K, N = dims["M"], dims["K"], dims["N"]
        decls = [TensorDecl("A", "input", (M, K), in_a), TensorDecl("B", "input", (K, N), in_b)]
        inputs = self._inputs(spec, decls, {"A": "alternating_rows", "B": "most_negative"})
        case = Case(spec.name, self.name, spec.seed, dims, config, inputs, tuple(decls), spec.description)
        try:  # validate datapath/bits/strategy combinations on a 1x1 problem
            self._call(case, np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64))
        except ConfigError as exc:
            raise ConfigError(f"{where}: config: {exc}") from None
        budget = self._budget(M, K, N, in_a, in_b, dp, _bits_pair(bits, dp), cfg["admit_min"])
        check_budget(where, budget)
        return replace(case, budget=budget)

    @staticmethod
    def _budget(M: int, K: int, N: int, in_a: IntType, in_b: IntType, dp: Datapath, bits: tuple[int, int],
                admit_min: bool) -> Budget:
        """Upper bounds of every tensor and of the work (see the module docs)."""
        la, lb = _levels(in_a, bits[0], admit_min), _levels(in_b, bits[1], admit_min)
        Mp, Np, Kpp = M * la, N * lb, K * la * lb
        shifts = min(la * lb, Kpp)
        tensors = (
            TensorBudget("A", "input", M * K), TensorBudget("B", "input", K * N), TensorBudget("C", "output", M * N),
            TensorBudget("a_unpacked", "tap", Mp * Kpp), TensorBudget("b_unpacked", "tap", Kpp * Np),
            TensorBudget("a_index", "tap", Mp), TensorBudget("a_shift", "tap", Mp), TensorBudget("b_index", "tap", Np),
            TensorBudget("b_shift", "tap", Np), TensorBudget("k_shift", "tap", Kpp),
            TensorBudget("overflow", "tap", M * N), TensorBudget("lowbit_s<t>", "tap", Mp * Np, copies=shifts),
        )
        return Budget(tensors, macs=3 * Mp * Kpp * Np, steps=(shifts + 1) * Mp * Np)

    @staticmethod
    def _options(c: Mapping[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
        """The strategies and keyword options of the case's unpack_matmul / unpack_operands call."""
        bits = tuple(c["bits"]) if isinstance(c["bits"], list) else c["bits"]
        return (c["strategy_a"], c["strategy_b"]), {"bits": bits, "admit_min": c["admit_min"]}

    def _call(self, case: Case, A: np.ndarray, B: np.ndarray, dp: Datapath | None = None) -> Any:
        from ..hw.unpack import unpack_matmul

        strategies, options = self._options(case.config)
        return unpack_matmul(A, B, dp or self.datapath(case.config), *strategies, **options)

    def _pair(self, case: Case, A: np.ndarray, B: np.ndarray, dp: Datapath) -> Any:
        from ..hw.unpack import unpack_operands

        strategies, options = self._options(case.config)
        return unpack_operands(A, B, dp, *strategies, **options)

    def run(self, case: Case, inputs: Mapping[str, np.ndarray]) -> OpRun:
        dp = self.datapath(case.config)
        A, B = inputs["A"], inputs["B"]
        raises = None
        run_dp = dp
        if dp.overflow == "raise" or (dp.chunk_bits is not None and dp.chunk_policy == "raise"):
            try:
                self._call(case, A, B, dp)
            except AccumulatorOverflow as exc:
                raises = {"error": type(exc).__name__, "index": list(exc.index), "k": exc.k, "value": exc.value,
                          "bits": exc.bits}
            run_dp = replace(dp, overflow="wrap" if dp.overflow == "raise" else dp.overflow,
                             chunk_overflow=("wrap" if dp.chunk_bits is not None and dp.chunk_policy == "raise"
                                             else dp.chunk_overflow))
        r = self._call(case, A, B, run_dp)
        where = f"case {case.name!r}"
        if r.values.dtype == object:
            raise ConfigError(f"{where}: some results do not fit 64 bits; golden outputs are at most 64-bit words")
        pair = self._pair(case, A, B, run_dp)
        a_p, b_p = pair.a.astype(dp.a.dtype), pair.b.astype(dp.b.dtype)
        M, N = r.values.shape
        # the streams must reproduce the result: low-bit GEMMs per inner shift, then shift-and-add
        check = [[0] * N for _ in range(M)]
        overflow = np.zeros((M, N), bool)
        lowbit = []
        for t in np.unique(pair.inner_shift).tolist():
            idx = np.flatnonzero(pair.inner_shift == t)
            g = matmul(a_p[:, idx], b_p[idx], run_dp)
            lowbit.append((int(t), g.values))
            rr, qq = np.nonzero(g.overflow)
            overflow[pair.a_src[rr], pair.b_src[qq]] = True
            for p in range(g.values.shape[0]):
                for q in range(g.values.shape[1]):
                    sh = int(t) + int(pair.a_shift[p]) + int(pair.b_shift[q])
                    check[int(pair.a_src[p])][int(pair.b_src[q])] += int(g.values[p, q]) << sh
        if check != r.values.tolist() or not np.array_equal(overflow, r.overflow):
            raise RuntimeError(f"{where}: the streams of unpack_operands do not reproduce unpack_matmul's "
                               "result (intsim.hw.unpack: the two must unpack alike)")
        acc = dp.acc
        outputs = [(TensorDecl("C", "output", (M, N), IntType(64)), r.values.astype(np.int64))]
        taps = [
            (TensorDecl("a_unpacked", "tap", a_p.shape, dp.a), a_p),
            (TensorDecl("b_unpacked", "tap", b_p.shape, dp.b), b_p),
            (TensorDecl("a_index", "tap", pair.a_src.shape, _U32), pair.a_src.astype(np.uint32)),
            (TensorDecl("a_shift", "tap", pair.a_shift.shape, _U32), pair.a_shift.astype(np.uint32)),
            (TensorDecl("b_index", "tap", pair.b_src.shape, _U32), pair.b_src.astype(np.uint32)),
            (TensorDecl("b_shift", "tap", pair.b_shift.shape, _U32), pair.b_shift.astype(np.uint32)),
            (TensorDecl("k_shift", "tap", pair.inner_shift.shape, _U32), pair.inner_shift.astype(np.uint32)),
            (TensorDecl("overflow", "tap", (M, N), IntType(1, signed=False)), r.overflow.astype(np.uint8)),
        ]
        taps += [(TensorDecl(f"lowbit_s{t}", "tap", v.shape, acc), v.astype(acc.dtype)) for t, v in lowbit]
        return OpRun(outputs, taps, raises)
