"""IM-Unpack speed: unpack_matmul against one float64 BLAS GEMM of the original shape, in one run.

Usage:  python benchmarks/unpack.py [--quick] [--repeat N]

For each case, integer operands with heavy hitters are multiplied exactly by
``intsim.hw.unpack.unpack_matmul`` on an int8 x int8 datapath with a 32-bit accumulator
(overflow="raise"), with every strategy on both operands. The same run times
  * one float64 BLAS GEMM of the original shape (operands converted beforehand);
  * one ``intsim.matmul`` of the original shape on in-range int8 data (no unpacking),
    so ``unpack_matmul - plain`` is what unpacking, the extra low-bit work and the
    reassembly cost.
Times are the minimum over --repeat runs after one warm-up call (numba compiles on
a cold cache). Acceptance: where the unpack ratio is at most 1.5, the whole
``unpack_matmul`` takes at most 3x the float64 GEMM. Each result is also checked
against the exact product (numpy int64 matmul; the values fit).

Cases (b = 8, entries outside [-127, 127] need unpacking):
  outlier-cols   A: 1% of its columns (feature channels) x20; B: int8-range weights
  outlier-rows   A: 2% of its rows (tokens) x20; B: int8-range weights
  scattered      A and B: 0.05% of entries x30 at random places
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_time

import intsim
from intsim.hw.unpack import STRATEGIES, unpack_matmul


def operands(case: str, M: int, K: int, N: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    A = np.clip(np.rint(rng.standard_normal((M, K)) * 30), -127, 127).astype(np.int64)
    B = np.clip(np.rint(rng.standard_normal((K, N)) * 30), -127, 127).astype(np.int64)
    if case == "outlier-cols":
        cols = rng.choice(K, size=max(1, K // 100), replace=False)
        A[:, cols] *= 20
    elif case == "outlier-rows":
        rows = rng.choice(M, size=max(1, M // 50), replace=False)
        A[rows] *= 20
    else:
        for X in (A, B):
            flat = X.reshape(-1)
            hit = rng.choice(flat.size, size=max(1, flat.size // 2000), replace=False)
            flat[hit] *= 30
    return A, B


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only 512x1024x1024")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    shapes = [(512, 1024, 1024)] if args.quick else [(512, 1024, 1024), (1024, 1024, 1024)]
    dp = intsim.Datapath(acc_bits=32, overflow="raise")
    rng = np.random.default_rng(0)
    print(f"{'shape':>15} {'case':>13} {'strategy':>8} {'ratio':>6} {'GEMMs':>5} {'f64 BLAS':>9} {'plain':>8} "
          f"{'unpack_mm':>10} {'x BLAS':>7} {'x plain':>7}  check")
    worst = 0.0
    for M, K, N in shapes:
        plain_a = rng.integers(-127, 128, (M, K)).astype(np.int8)
        plain_b = rng.integers(-127, 128, (K, N)).astype(np.int8)
        t_plain = best_time(lambda a=plain_a, b=plain_b: intsim.matmul(a, b, dp), args.repeat)
        Af = rng.standard_normal((M, K))
        Bf = rng.standard_normal((K, N))
        t_blas = best_time(lambda a=Af, b=Bf: a @ b, args.repeat)
        for case in ("outlier-cols", "outlier-rows", "scattered"):
            A, B = operands(case, M, K, N, rng)
            exact = A @ B
            for s in STRATEGIES:
                r = unpack_matmul(A, B, dp, s, s)
                ok = bool(np.array_equal(r.values, exact)) and r.n_overflow == 0
                t = best_time(lambda A=A, B=B, s=s: unpack_matmul(A, B, dp, s, s), args.repeat)
                x = t / t_blas
                verdict = ""
                if r.unpack_ratio <= 1.5:
                    worst = max(worst, x)
                    verdict = "  <=3x: " + ("yes" if x <= 3 else "NO")
                print(f"{M}x{K}x{N:>5} {case:>13} {s:>8} {r.unpack_ratio:6.3f} {r.n_gemms:5d} "
                      f"{t_blas * 1e3:7.1f}ms {t_plain * 1e3:6.1f}ms {t * 1e3:8.1f}ms {x:6.2f}x "
                      f"{t / t_plain:6.2f}x  {'exact' if ok else 'WRONG'}{verdict}", flush=True)
    print(f"acceptance (ratio <= 1.5): worst unpack_matmul / float64 BLAS = {worst:.2f}x "
          f"({'met' if worst <= 3 else 'NOT met'}: target <= 3x)")


if __name__ == "__main__":
    main()
