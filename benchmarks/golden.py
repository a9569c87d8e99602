"""Cost of writing a golden suite over computing its cases.

Usage:  python benchmarks/golden.py [--cases 100] [--size 256] [--out DIR]

The spec: ``--cases`` matmul cases of ``size x size x size``, int8 x int8 into a
32-bit wrapping accumulator, uniform operands, 4 accumulator traces per case
(the defaults), each case with its own seed.

* compute: for every case, draw the inputs from the case seed and run
  ``intsim.matmul`` (what any use of the cases costs);
* generate: ``intsim.golden.generate_suite`` of the same spec, which also takes the
  accumulator traces and writes A, B, C and the taps as ``.npy`` and ``$readmemh``
  hex plus the manifest with every SHA-256 (into a temporary directory unless
  ``--out``), atomically.

The overhead is generate minus compute. The script checks that the generated C of
every case equals the computed one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import intsim
from intsim.golden import generate_suite, spec_from_dict
from intsim.golden.suite import make_inputs


def spec(cases: int, size: int):
    doc = {"suite": {"name": "bench", "seed": 1},
           "case": [{"name": f"mm{i:03d}", "operator": "matmul", "shape": {"M": size, "K": size, "N": size},
                     "config": {"a": "int8", "b": "int8", "acc_bits": 32, "overflow": "wrap"}}
                    for i in range(cases)]}
    return spec_from_dict(doc, "benchmark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", type=Path, help="write the suite here (default: a temporary directory)")
    args = ap.parse_args()
    s = spec(args.cases, args.size)
    dp = intsim.Datapath(acc_bits=32, overflow="wrap")
    warm = make_inputs(s.cases[0])
    intsim.matmul(warm["A"], warm["B"], dp)  # warm-up (numba / BLAS initialization)

    t0 = time.perf_counter()
    computed = []
    for case in s.cases:
        x = make_inputs(case)
        computed.append(intsim.matmul(x["A"], x["B"], dp).values)
    t_compute = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "suite"
        t0 = time.perf_counter()
        rep = generate_suite(s, out, force=args.out is not None)
        t_generate = time.perf_counter() - t0
        for case, c in zip(s.cases, computed, strict=True):
            assert np.array_equal(np.load(out / case.name / "C.npy"), c), case.name
    n = args.cases
    print(f"{n} matmul cases of {args.size}x{args.size}x{args.size} (int8 x int8 -> acc32, wrap)")
    print(f"  compute (inputs + intsim.matmul):  {t_compute:7.2f} s")
    print(f"  generate suite ({rep.files} files, {rep.bytes / 1e6:.0f} MB):  {t_generate:7.2f} s")
    print(f"  overhead of writing the suite:     {t_generate - t_compute:7.2f} s "
          f"({(t_generate - t_compute) / n * 1e3:.0f} ms per case)")


if __name__ == "__main__":
    main()
