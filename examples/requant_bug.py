"""End-to-end: property-test a numpy requantizer against intsim, find its bug, replay the counterexample.

The design under test is a small numpy model of an int8 requantizer, y = sat(round(x * m / 2**k) + zp),
specified with rounding half away from zero (gemmlowp's RoundingDivideByPOT). The model adds half and
shifts right: ties go up, which is wrong for negative ties. check_against finds it, shrinks the case and
writes it as a one-case golden suite; the model is then run on the suite's stored inputs (as an RTL
simulation would read them with $readmemh), its output dumped, and `intsim golden compare` checks it.

Run:  python examples/requant_bug.py [OUT_DIR]      (default: a directory under the system temp dir)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from intsim.testing import CounterexampleFound, check_against, load_profile


def model_requant(x: np.ndarray, m: int, k: int, zero_point: int, *, fixed: bool = False) -> np.ndarray:
    """The team's numpy model: int32 x, multiplier m / 2**k, int8 output."""
    p = x.astype(np.int64) * m                   # |x| < 2**31, m < 2**31: fits int64
    if k == 0:
        r = p
    elif fixed:                                  # half away from zero: round the magnitude
        r = np.sign(p) * ((np.abs(p) + (1 << (k - 1))) >> k)
    else:                                        # BUG: (p + half) >> k rounds ties up, also negative ones
        r = (p + (1 << (k - 1))) >> k
    return np.clip(r + zero_point, -128, 127)


def candidate(x, *, scale, zero_point, **_):
    """What check_against calls: the input tensor and the case's configuration by name."""
    return model_requant(x, scale.m, scale.k, zero_point)


def main(out: Path) -> int:
    load_profile("intsim-ci")                    # derandomized, 200 examples: the same result every run
    spec = {"mode": "dyadic", "rounding": "half_away", "out": "int8", "in_type": "int32",
            "order": "round_then_saturate", "overflow": "wrap"}
    try:
        check_against("requantize", candidate, config=spec, out=out, force=True)
    except CounterexampleFound as exc:
        print(exc)
        case = exc.case
    else:
        print("no difference found")
        return 0

    # Replay, as a testbench would: read the stored input and the case's configuration from the
    # suite, run the design, dump its output in the layout `intsim golden compare` reads.
    suite = out / "suite"
    manifest = json.loads((suite / "manifest.json").read_text())
    cfg = manifest["cases"][0]["config"]
    x = np.load(suite / case.name / "x.npy")
    for label, fixed in (("buggy", False), ("fixed", True)):
        dumps = out.parent / f"{out.name}-{label}-dumps"
        (dumps / case.name).mkdir(parents=True, exist_ok=True)
        y = model_requant(x, cfg["scale"]["m"], cfg["scale"]["k"], cfg["zero_point"], fixed=fixed)
        np.save(dumps / case.name / "y.npy", y.astype(np.int8))
        r = subprocess.run([sys.executable, "-m", "intsim.golden", "compare", str(suite), "--dut", str(dumps)],
                           capture_output=True, text=True)
        print(f"\n$ intsim golden compare {suite} --dut {dumps}     # the {label} model\n{r.stdout.rstrip()}"
              f"\n(exit status {r.returncode})")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "intsim-requant-counterexample"
    raise SystemExit(main(target.resolve()))
