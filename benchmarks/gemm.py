"""GEMM throughput of intsim.matmul beside ONNX Runtime's MatMulInteger and float32 BLAS, in one run.

Usage:  python benchmarks/gemm.py [--quick] [--repeat N] [--engine SPEC]

For each shape and operand width (int8, and 4-bit values in [-8, 7]), the same operands are
multiplied by
  * intsim.matmul on an int8 x int8 (or int4 x int4) datapath with a 32-bit accumulator,
    overflow="raise" and overflow="wrap" (no output overflows), operands passed as int8 arrays;
    the engine it used is printed (GemmResult.method; --engine sets INTSIM_GEMM_ENGINE);
  * ONNX Runtime's MatMulInteger, u8 x s8 -> int32 (A + 128 as uint8 with a_zero_point 128, so
    its result is the same exact A @ B), on a session with one intra-op thread per core; the
    column is skipped with a note when onnxruntime / onnx are not installed
    (``pip install onnxruntime onnx``);
  * float32 BLAS (operands converted beforehand, not timed), and float64 BLAS for the
    unpack_matmul rows.
Times are the minimum over --repeat runs after one warm-up call (at least 0.3 s of calls);
GMAC/s = M*K*N / time. Every intsim and ONNX Runtime result is checked against numpy int64.

The overflow case: the same int8 data with a per-column bias of 2**31 - 1 (the register's
maximum) on 1% of the columns (wrap policy): nearly every output of those columns, about 1%
of all outputs, overflows the accumulator and is emulated add by add; its time is printed
over the no-overflow time (acceptance: at most 3x).

unpack_matmul: int64 operands with 1% of A's columns scaled by 20 (outlier feature channels),
on the int8 datapath; strategy pairs whose unpack ratio is at most 1.5, timed over one float64
BLAS GEMM of the original shape (acceptance: at most 1.5x).

Acceptance printed at the end: intsim (overflow="raise") at least 0.6x ONNX Runtime at 1024^3
for int8 and 4-bit operands, exact.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _timing import best_time


def ort_matmul_integer(M: int, K: int, N: int):
    """A callable (A_u8, B_s8) -> int32 A @ B by ONNX Runtime's MatMulInteger, or a note why not."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError as exc:
        return None, f"ONNX Runtime column skipped: {exc.name} is not installed (pip install onnxruntime onnx)"
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zero_point"], ["Y"])
    graph = helper.make_graph(
        [node], "mmi",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [M, K]),
         helper.make_tensor_value_info("B", TensorProto.INT8, [K, N])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [M, N])],
        initializer=[helper.make_tensor("a_zero_point", TensorProto.UINT8, [], [128])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return (lambda a, b: sess.run(None, {"A": a, "B": b})[0]), f"onnxruntime {ort.__version__}"


def measure(M: int, K: int, N: int, bits: int, rng: np.random.Generator, repeat: int, overflow_case: bool):
    import intsim

    t = intsim.IntType(bits)
    dp_raise = intsim.Datapath(a=t, b=t, acc_bits=32, overflow="raise")
    dp_wrap = intsim.Datapath(a=t, b=t, acc_bits=32, overflow="wrap")
    A = rng.integers(t.min, t.max + 1, (M, K), dtype=np.int8)
    B = rng.integers(t.min, t.max + 1, (K, N), dtype=np.int8)
    A[0, 0] = B[0, 0] = t.min
    macs = M * K * N
    exact = A.astype(np.int64) @ B.astype(np.int64)
    row = {"shape": (M, K, N), "bits": bits, "macs": macs}
    r = intsim.matmul(A, B, dp_raise)
    row["method"] = r.method
    row["exact"] = bool(np.array_equal(r.values, exact))
    row["raise"] = best_time(lambda: intsim.matmul(A, B, dp_raise), repeat, min_time=0.3)
    row["wrap"] = best_time(lambda: intsim.matmul(A, B, dp_wrap), repeat, min_time=0.3)
    a32, b32 = A.astype(np.float32), B.astype(np.float32)
    row["f32"] = best_time(lambda: a32 @ b32, repeat, min_time=0.3)
    run, note = ort_matmul_integer(M, K, N)
    row["ort_note"] = note
    if run is not None:
        au8 = (A.astype(np.int16) + 128).astype(np.uint8)
        row["ort_exact"] = bool(np.array_equal(run(au8, B), exact))
        row["ort"] = best_time(lambda: run(au8, B), repeat, min_time=0.3)
    if overflow_case:
        bias = np.zeros(N, np.int64)
        hot = rng.choice(N, size=max(1, N // 100), replace=False)
        bias[hot] = 2**31 - 1  # any positive partial sum overflows
        res = intsim.matmul(A, B, dp_wrap, bias=bias)
        row["n_over"] = res.n_overflow
        row["over"] = best_time(lambda: intsim.matmul(A, B, dp_wrap, bias=bias), repeat, min_time=0.3)
    return row


def measure_unpack(M: int, K: int, N: int, rng: np.random.Generator, repeat: int) -> list[tuple]:
    import intsim
    from intsim.hw.unpack import STRATEGIES, unpack_matmul

    dp = intsim.Datapath(acc_bits=32, overflow="raise")
    A = np.clip(np.rint(rng.standard_normal((M, K)) * 30), -127, 127).astype(np.int64)
    B = np.clip(np.rint(rng.standard_normal((K, N)) * 30), -127, 127).astype(np.int64)
    A[:, rng.choice(K, size=max(1, K // 100), replace=False)] *= 20
    exact = A @ B
    Af, Bf = A.astype(np.float64), B.astype(np.float64)
    t_blas = best_time(lambda: Af @ Bf, repeat, min_time=0.3)
    rows = []
    for sa in STRATEGIES:
        for sb in STRATEGIES:
            r = unpack_matmul(A, B, dp, sa, sb)
            if r.unpack_ratio > 1.5:
                continue
            ok = bool(np.array_equal(r.values, exact))
            t = best_time(lambda sa=sa, sb=sb: unpack_matmul(A, B, dp, sa, sb), repeat, min_time=0.3)
            rows.append((sa, sb, r.unpack_ratio, r.n_gemms, "/".join(sorted({g.method for g in r.gemms})), t,
                         t_blas, ok))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only M=N=K=1024")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engine", default=None, help="INTSIM_GEMM_ENGINE for this run (auto, float, vnni512, ...)")
    args = ap.parse_args()
    if args.engine is not None:
        os.environ["INTSIM_GEMM_ENGINE"] = args.engine
    shapes = [(1024, 1024, 1024)] if args.quick else [(1024, 1024, 1024), (512, 4096, 4096)]
    rng = np.random.default_rng(0)
    rows = []
    load0 = os.getloadavg()[0]
    for M, K, N in shapes:
        for bits in (8, 4):
            rows.append(measure(M, K, N, bits, rng, args.repeat, overflow_case=bits == 8))
    g = lambda t, macs: f"{macs / t / 1e9:7.1f}"  # noqa: E731
    print(rows[0]["ort_note"], f"; {os.cpu_count()} CPUs, load average at the start {load0:.2f}")
    print("GMAC/s (higher is better); ratios are times of the other over intsim's")
    print(f"{'shape':>15} {'bits':>4} {'engine':>12} {'raise':>7} {'wrap':>7} {'ORT MMI':>7} {'f32 BLAS':>8}"
          f" {'x ORT':>6} {'x f32':>6} {'1% ovf':>8} {'ovf/clean':>9}  exact")
    verdicts = []
    for r in rows:
        M, K, N = r["shape"]
        macs = r["macs"]
        has_ort = "ort" in r
        x_ort = r["ort"] / r["raise"] if has_ort else float("nan")
        ovf = f"{r['over'] * 1e3:6.1f}ms {r['over'] / r['raise']:8.2f}x" if "over" in r else f"{'':>8} {'':>9}"
        ok = r["exact"] and r.get("ort_exact", True)
        print(f"{M}x{K}x{N:<5} {r['bits']:>4} {r['method']:>12} {g(r['raise'], macs)} {g(r['wrap'], macs)} "
              f"{g(r['ort'], macs) if has_ort else '   skip'} {g(r['f32'], macs):>8} {x_ort:6.2f} "
              f"{r['f32'] / r['raise']:6.2f} {ovf}  {ok}")
        if r["shape"] == (1024, 1024, 1024):
            if has_ort:
                verdicts.append(f"{r['bits']}-bit 1024^3: intsim / ONNX Runtime speed = {x_ort:.2f}x "
                                f"({'met' if x_ort >= 0.6 and ok else 'NOT met'}: target >= 0.6x, exact)")
            if "over" in r:
                x = r["over"] / r["raise"]
                verdicts.append(f"1% overflow / no overflow time = {x:.2f}x ({'met' if x <= 3 else 'NOT met'}: "
                                f"target <= 3x; {r['n_over']} of {M * N} outputs overflow)")
    M, K, N = shapes[0]
    urows = measure_unpack(M, K, N, rng, args.repeat)
    print(f"\nunpack_matmul {M}x{K}x{N}, 1% of A's columns x20, int8 datapath (unpack ratio <= 1.5):")
    print(f"{'strategies':>12} {'ratio':>6} {'GEMMs':>5} {'engine':>14} {'unpack_mm':>10} {'f64 BLAS':>9} "
          f"{'x BLAS':>7}  exact")
    worst = 0.0
    for sa, sb, ratio, n_g, meth, t, t_blas, ok in urows:
        worst = max(worst, t / t_blas)
        print(f"{sa + '/' + sb:>12} {ratio:6.3f} {n_g:5d} {meth:>14} {t * 1e3:8.1f}ms {t_blas * 1e3:7.1f}ms "
              f"{t / t_blas:6.2f}x  {ok}")
    if urows:
        verdicts.append(f"unpack_matmul (ratio <= 1.5) / float64 BLAS = {worst:.2f}x at worst "
                        f"({'met' if worst <= 1.5 else 'NOT met'}: target <= 1.5x)")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (ratios are within one run; a loaded machine "
          "gives the threads of both sides less than one core each)")
    print("\nacceptance:")
    for v in verdicts:
        print("  " + v)


if __name__ == "__main__":
    main()
