"""Integer non-linear operators against the float64 numpy reference of the same operator, in one run.

Usage:  python benchmarks/nonlinear.py [--rows 1024] [--cols 4096] [--repeat 3] [--min-time 0.5] [--only NAME,...]

Each operator runs on a rows x cols integer input (default 1024 x 4096) with taps off;
its reference is the float64 function of reference/nonlinear.py (or the float64 formula
of the same operation, for requantization and 1/(1+x)) on the dequantized input, which is
computed beforehand and not timed (as the integer input is not). Times are the minimum
over at least --repeat runs, and over at least --min-time seconds of runs, after one
warm-up call (which also loads or compiles the numba kernels); both sides get the same.
``speed-up`` is reference time / integer time: >= 1 means the emulated integer operator
is at least as fast as the float64 reference.

Operators come from BENCHES (name -> factory returning (integer call, reference call));
add entries there. An operator that raises is reported as failed (the others still run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import best_time  # noqa: E402

from intsim_reference import nonlinear as ref  # noqa: E402

Pair = tuple[Callable[[], object], Callable[[], object]]


def _logits(rng: np.random.Generator, shape: tuple, scale: float, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.rint(rng.normal(0.0, 3.0, shape) / scale), lo, hi)


# ------------------------------------------------------------------------------------------------
# entries: shape, rng -> (integer call, float64 reference call)
# ------------------------------------------------------------------------------------------------


def _exp_q526(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops.gemmlowp import exp_on_negative_values

    a = -rng.integers(0, 2**31, shape).astype(np.int32)
    x = a * 2.0**-26
    return (lambda: exp_on_negative_values(a, 5, taps=False)), (lambda: ref.exp(x))


def _one_over(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops.gemmlowp import one_over_one_plus_x_for_x_in_0_1

    a = rng.integers(0, 2**31, shape).astype(np.int32)
    x = a * 2.0**-31
    return (lambda: one_over_one_plus_x_for_x_in_0_1(a)), (lambda: 1.0 / (1.0 + x))


def _inv_sqrt(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops.gemmlowp import get_inv_sqrt_quantized_multiplier_exp

    a = rng.integers(0, 2**31, shape).astype(np.int32)
    x = a.astype(np.float64)
    return (lambda: get_inv_sqrt_quantized_multiplier_exp(a)), (lambda: ref.inv_sqrt(x))


def _softmax_tflite(single: bool) -> Callable[[tuple, np.random.Generator], Pair]:
    def make(shape: tuple, rng: np.random.Generator) -> Pair:
        from intsim.ops.gemmlowp import softmax_int8

        q = _logits(rng, shape, 0.1, -128, 127).astype(np.int8)
        x = q * 0.1
        return (lambda: softmax_int8(q, 0.1, single_rounding=single, taps=False)), (lambda: ref.softmax(x))
    return make


def _requant(mode: str) -> Callable[[tuple, np.random.Generator], Pair]:
    def make(shape: tuple, rng: np.random.Generator) -> Pair:
        from intsim.quant.requant import requantize

        a = rng.integers(-(2**24), 2**24, shape).astype(np.int32)
        s = 0.0123
        x = a.astype(np.float64)
        return (lambda: requantize(a, s, mode=mode, taps=False)), (lambda: np.clip(np.rint(x * s), -128, 127))
    return make


def _ibert_softmax(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops import ibert

    q = _logits(rng, shape, 0.1, -(2**31), 2**31 - 1).astype(np.int32)
    x = q * 0.1
    return (lambda: ibert.softmax(q, 0.1)), (lambda: ref.softmax(x))


def _ibert_gelu(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops import ibert

    q = rng.integers(-4000, 4001, shape).astype(np.int32)
    x = q * 1e-3
    return (lambda: ibert.gelu(q, 1e-3)), (lambda: ref.gelu_erf(x))


def _ibert_layernorm(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops import ibert

    q = np.rint(rng.normal(0.0, 2.0, shape) / 0.01).astype(np.int32)
    x = q * 0.01
    return (lambda: ibert.layernorm(q, 0.01)), (lambda: ref.layernorm(x, eps=0.0))


def _ibert_exp(shape: tuple, rng: np.random.Generator) -> Pair:
    from intsim.ops import ibert

    q = rng.integers(-80, 1, shape).astype(np.int32)
    x = q * 0.1
    return (lambda: ibert.i_exp(q, 0.1)), (lambda: ref.exp(x))


def _ivit(op: str) -> Callable[[tuple, np.random.Generator], Pair]:
    def make(shape: tuple, rng: np.random.Generator) -> Pair:
        from intsim.ops import ivit

        if op == "shift_exp":
            q = rng.integers(-100, 1, shape).astype(np.int32)
            x = q * 0.1
            return (lambda: ivit.shift_exp(q, 0.1)), (lambda: ref.exp(x))
        if op == "shiftmax":
            q = _logits(rng, shape, 10 / 127, -128, 127).astype(np.int8)
            x = q * (10 / 127)
            return (lambda: ivit.shiftmax(q, 10 / 127)), (lambda: ref.softmax(x))
        if op == "shiftgelu":
            q = rng.integers(-127, 128, shape).astype(np.int8)
            x = q * (4 / 127)
            return (lambda: ivit.shiftgelu(q, 4 / 127)), (lambda: ref.gelu_erf(x))
        q = np.rint(rng.normal(0.0, 2.0, shape) / 0.01).astype(np.int16)
        x = q * 0.01
        return (lambda: ivit.layernorm(q, 0.01)), (lambda: ref.layernorm(x, eps=0.0))
    return make


def _illm(op: str) -> Callable[[tuple, np.random.Generator], Pair]:
    def make(shape: tuple, rng: np.random.Generator) -> Pair:
        from intsim.ops import illm

        if op == "di_exp":
            q = rng.integers(-100, 1, shape).astype(np.int32)
            x = q * 0.1
            return (lambda: illm.di_exp(q, 0.1)), (lambda: ref.exp(x))
        if op == "clipped_softmax":
            q = _logits(rng, shape, 0.1, -(2**31), 2**31 - 1).astype(np.int32)
            x = q * 0.1
            return (lambda: illm.clipped_softmax(q, 0.1)), (lambda: ref.softmax(x))
        if op == "swiglu":
            g = rng.integers(-128, 128, shape).astype(np.int8)
            u = rng.integers(-128, 128, shape).astype(np.int8)
            xg, xu = g * 0.05, u * 0.02
            return (lambda: illm.swiglu(g, 0.05, u, 0.02)), (lambda: ref.swiglu(xg, xu))
        if op == "dynamic_requant":
            p = rng.integers(-(2**20), 2**20, shape).astype(np.int32)
            x = p * 1e-4

            def f_ref() -> object:  # per-token asymmetric 8-bit quantization in float64
                lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
                s = (hi - lo) / 255.0
                return np.rint((x - lo) / s), s
            return (lambda: illm.dynamic_requant(p, 1e-4)), f_ref
        q = np.rint(rng.normal(0.0, 2.0, shape) / 0.01).astype(np.int16)
        x = q * 0.01
        if op == "layernorm":
            return (lambda: illm.layernorm(q, 0.01)), (lambda: ref.layernorm(x, eps=0.0))
        return (lambda: illm.rmsnorm(q, 0.01)), (lambda: ref.rmsnorm(x, eps=0.0))
    return make


def _isqrt(variant: str) -> Callable[[tuple, np.random.Generator], Pair]:
    def make(shape: tuple, rng: np.random.Generator) -> Pair:
        from intsim.ops.isqrt import isqrt_op

        # LayerNorm variances: sums of squares of int8-16 values over a row, up to 2**40
        n = rng.integers(0, 2**40, shape).astype(np.int64)
        x = n.astype(np.float64)
        return (lambda: isqrt_op(n, variant=variant)), (lambda: ref.sqrt(x))
    return make


#: name -> factory
BENCHES: dict[str, Callable[[tuple, np.random.Generator], Pair]] = {
    "gemmlowp.exp_on_negative_values (Q5.26)": _exp_q526,
    "gemmlowp.one_over_one_plus_x_for_x_in_0_1": _one_over,
    "gemmlowp.get_inv_sqrt_quantized_multiplier_exp": _inv_sqrt,
    "gemmlowp.softmax_int8 (double rounding)": _softmax_tflite(False),
    "gemmlowp.softmax_int8 (single rounding)": _softmax_tflite(True),
    **{f"requantize ({m})": _requant(m)
       for m in ("dyadic", "tflite_double", "tflite_single", "onnx_ref", "ort_fp32", "gemmini_fp32")},
    "ibert.i_exp": _ibert_exp,
    "ibert.softmax": _ibert_softmax,
    "ibert.gelu": _ibert_gelu,
    "ibert.layernorm": _ibert_layernorm,
    **{f"isqrt ({p})": _isqrt(p) for p in ("newton", "fixed", "ivit")},
    **{f"ivit.{op}": _ivit(op) for op in ("shift_exp", "shiftmax", "shiftgelu", "layernorm")},
    **{f"illm.{op}": _illm(op)
       for op in ("di_exp", "clipped_softmax", "swiglu", "rmsnorm", "layernorm", "dynamic_requant")},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--cols", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5, help="seconds of timed runs per side, at least")
    p.add_argument("--only", default="", help="comma-separated substrings of operator names")
    args = p.parse_args(argv)
    shape = (args.rows, args.cols)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    print(f"input {shape[0]} x {shape[1]}, best of >= {args.repeat} runs and >= {args.min_time} s after a warm-up; "
          "speed-up = reference / integer")
    print(f"{'operator':<50} {'integer ms':>11} {'float64 ms':>11} {'speed-up':>9}")
    slower = []
    for name, factory in BENCHES.items():
        if only and not any(w in name for w in only):
            continue
        rng = np.random.default_rng(0)
        try:
            f_int, f_ref = factory(shape, rng)
            t_int = best_time(f_int, args.repeat, min_time=args.min_time)
        except Exception as exc:  # noqa: BLE001 - reported, the other operators still run
            print(f"{name:<50} failed: {type(exc).__name__}: {exc}")
            slower.append(name + " (failed)")
            continue
        t_ref = best_time(f_ref, args.repeat, min_time=args.min_time)
        ratio = t_ref / t_int
        if ratio < 1.0:
            slower.append(name)
        print(f"{name:<50} {t_int * 1e3:>11.1f} {t_ref * 1e3:>11.1f} {ratio:>8.2f}x")
    print("all at least as fast as their float64 reference" if not slower
          else f"slower than the float64 reference (or failed): {', '.join(slower)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
