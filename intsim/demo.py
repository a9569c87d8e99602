"""The main job: seeded GEMMs on the emulated integer datapath, checked bit for bit.

Runs an int8 x int8 GEMM into a 32-bit accumulator and an int4 x int4 GEMM into a
narrow accumulator (where some outputs overflow, with provenance), checks every
register against the exact product computed with Python-int-exact arithmetic,
and prints overflow and op-count figures. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .datapath import Datapath
from .gemm import matmul
from .inttype import IntType

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=2024, help="random seed (default: 2024)")
    p.add_argument("--shape", type=int, nargs=3, metavar=("M", "K", "N"), default=(256, 1024, 256),
                   help="GEMM shape (default: 256 1024 256)")
    p.add_argument("--int4-acc-bits", type=int, default=12,
                   help="accumulator width of the int4 run, narrow enough to overflow (default: 12)")


def _exact(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Exact A @ B via int64 (the operands are at most 8-bit, K at most 2**40: no int64 overflow)."""
    return A.astype(np.int64) @ B.astype(np.int64)


def _case(title: str, A, B, dp: Datapath, out) -> bool:
    t0 = time.perf_counter()
    r = matmul(A, B, dp)
    dt = time.perf_counter() - t0
    exact = _exact(A, B)
    clean = ~r.overflow
    ok_clean = bool(np.array_equal(r.values[clean], exact[clean]))
    # Overflowing outputs: under wrap, the register is the exact sum modulo 2**acc_bits.
    wrapped = np.asarray(dp.acc.wrap(exact[r.overflow]))
    ok_over = dp.overflow != "wrap" or bool(np.array_equal(r.values[r.overflow], wrapped))
    M, K = A.shape
    N = B.shape[1]
    print(f"{title}: {M}x{K} @ {K}x{N} on {dp.describe()}", file=out)
    print(f"  computed in {dt * 1e3:.1f} ms ({r.method}, {r.n_scanned} outputs emulated add by add)", file=out)
    print(f"  outputs that overflowed: {r.n_overflow} of {M * N}", file=out)
    if r.n_overflow:
        ks = r.first_overflow_k[r.overflow]
        i, j = map(int, np.argwhere(r.overflow)[0])
        print(f"  first overflow k: min {int(ks.min())}, median {int(np.median(ks))}, max {int(ks.max())}; "
              f"e.g. output ({i}, {j}) at k={int(r.first_overflow_k[i, j])}", file=out)
    for _, row in r.ops.to_frame().iterrows():
        print(f"  ops {row['kind']:>6} {row['widths']:>10}: {row['count']:,}", file=out)
    verdict = "bit-exact" if ok_clean and ok_over else "MISMATCH"
    print(f"  check against the exact product: {verdict}", file=out)
    return ok_clean and ok_over


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    rng = np.random.default_rng(args.seed)
    M, K, N = args.shape
    i8 = IntType(8)
    A8 = rng.integers(i8.min, i8.max + 1, (M, K), dtype=np.int8)
    B8 = rng.integers(i8.min, i8.max + 1, (K, N), dtype=np.int8)
    ok = _case("int8 GEMM", A8, B8, Datapath(a=i8, b=i8, acc_bits=32, overflow="raise"), out)
    i4 = IntType(4)
    A4 = rng.integers(i4.min, i4.max + 1, (M, K), dtype=np.int8)
    B4 = rng.integers(i4.min, i4.max + 1, (K, N), dtype=np.int8)
    # A few heavy rows push some outputs past the narrow accumulator.
    A4[:: max(1, M // 8)] = i4.max
    B4[:, :: max(1, N // 8)] = i4.max
    dp4 = Datapath(a=i4, b=i4, acc_bits=args.int4_acc_bits, overflow="wrap")
    ok &= _case("int4 GEMM", A4, B4, dp4, out)
    print("all checks passed" if ok else "SOME CHECKS FAILED", file=out)
    return 0 if ok else 1
