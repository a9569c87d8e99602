"""GEMM throughput of intsim.matmul against numpy int64 matmul and float64 BLAS, in one run.

Usage:  python benchmarks/gemm.py [--quick] [--repeat N]

For each shape, the same int8 operands are multiplied by
  * intsim.matmul on an int8 x int8 datapath with a 32-bit accumulator
    (overflow="raise" and overflow="wrap"), operands passed as int8 arrays;
  * numpy's int64 matmul (operands converted to int64 beforehand, not timed);
  * float64 BLAS matmul (operands converted to float64 beforehand, not timed).
Times are the minimum over --repeat runs after one warm-up call; GMAC/s = M*K*N / time.

The overflow case: the same data with a per-column bias of 2**31 - 1 (the register's
maximum) on 1% of the columns (wrap policy): nearly every output of those columns,
about 1% of all outputs, overflows the accumulator (any partial sum above zero does).
The outputs of those columns are emulated add by add, with their first-overflow k
recorded.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_time

import intsim


def measure(M: int, K: int, N: int, rng: np.random.Generator, repeat: int) -> tuple:
    dp_raise = intsim.Datapath(acc_bits=32, overflow="raise")
    dp_wrap = intsim.Datapath(acc_bits=32, overflow="wrap")
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    A[0, 0] = B[0, 0] = -128
    macs = M * K * N
    A64, B64 = A.astype(np.int64), B.astype(np.int64)
    Af, Bf = A.astype(np.float64), B.astype(np.float64)
    reps = max(1, repeat // (2 if macs > 2**31 else 1))
    t_raise = best_time(lambda: intsim.matmul(A, B, dp_raise), reps)
    t_wrap = best_time(lambda: intsim.matmul(A, B, dp_wrap), reps)
    t_blas = best_time(lambda: Af @ Bf, reps)
    t_np = best_time(lambda: A64 @ B64, 1)
    bias = np.zeros(N, np.int64)
    hot = rng.choice(N, size=max(1, N // 100), replace=False)
    bias[hot] = 2**31 - 1  # any positive partial sum overflows
    res = intsim.matmul(A, B, dp_wrap, bias=bias)
    t_over = best_time(lambda: intsim.matmul(A, B, dp_wrap, bias=bias), reps)
    exact_ok = np.array_equal(intsim.matmul(A, B, dp_raise).values, A64 @ B64)
    return (M, K, N, macs, t_raise, t_wrap, t_np, t_blas, t_over, res.n_overflow, exact_ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only M=N=K=1024, fewer repeats")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    shapes = [(1024, 1024, 1024)] if args.quick else [(1024, 1024, 1024), (512, 4096, 4096)]
    rng = np.random.default_rng(0)
    rows = [measure(M, K, N, rng, args.repeat) for M, K, N in shapes]
    print(f"{'shape':>16} {'intsim raise':>13} {'intsim wrap':>12} {'numpy int64':>12} {'float64 BLAS':>13}"
          f" {'x numpy':>8} {'x BLAS':>7} {'1% ovf':>9} {'ovf/clean':>9}")
    for M, K, N, macs, t_raise, t_wrap, t_np, t_blas, t_over, n_over, ok in rows:
        g = lambda t, macs=macs: f"{macs / t / 1e9:8.2f} GMAC/s"  # noqa: E731
        print(f"{M}x{K}x{N:>5} {g(t_raise):>13} {g(t_wrap):>12} {g(t_np):>12} {g(t_blas):>13}"
              f" {t_np / t_raise:7.0f}x {t_blas / t_raise:6.2f}x {t_over * 1e3:7.1f}ms {t_over / t_raise:8.2f}x")
        print(f"{'':>16} times: raise {t_raise * 1e3:.1f} ms, wrap {t_wrap * 1e3:.1f} ms, numpy int64 "
              f"{t_np * 1e3:.0f} ms, float64 BLAS {t_blas * 1e3:.1f} ms; overflow case: {n_over} of {M * N} "
              f"outputs overflow ({100 * n_over / (M * N):.2f}%); exact: {ok}")


if __name__ == "__main__":
    main()
