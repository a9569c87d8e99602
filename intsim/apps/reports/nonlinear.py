"""Accuracy of the integer non-linear operators against their float64 references.

``intsim report nonlinear`` writes ``reports/nonlinear/`` (or ``--out``), atomically:

* ``nonlinear.md`` — one row per operator x variant x input scale: the grid, the max and
  mean absolute error against the float64 reference of :mod:`reference.nonlinear`, the
  error in output steps where the output has one step, the published figure it should
  be compared with, and whether the published bound holds (where the note gives one);
* ``nonlinear.csv`` — the same table, machine-readable;
* ``plots/<operator>__<variant>.png`` — the signed error against the input, one series
  per input scale.

Every input grid is documented in the table and is deterministic (fixed seeds), so two
runs write identical Markdown and CSV files (and, with the same matplotlib, identical PNGs).

The cases come from :data:`CASES`, one factory per operator family: to add an operator, add
its :class:`Case` list to its family's factory (or a new factory to :data:`CASES`).

Options: ``--out DIR``, ``--force`` (replace an existing report), ``--quick`` (smaller
grids), ``--no-plots``, ``--operators NAME,...`` (a subset of the registry), ``-q``/``--quiet``
(no progress lines: by default one line per case on stdout, as it finishes).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.errors import AccuracyWarning
from ...core.helptext import add_output_options

__all__ = ["Case", "Evaluation", "CASES", "add_arguments", "run", "evaluate_cases"]


@dataclass
class Evaluation:
    """One case's numbers: the abscissa to plot against, the dequantized integer result and
    the float64 reference (same shapes)."""

    x: np.ndarray
    approx: np.ndarray
    ref: np.ndarray
    xlabel: str = "input"


@dataclass(frozen=True)
class Case:
    """One operator x variant x input scale, with its documented input grid."""

    operator: str
    variant: str
    input_scale: float
    grid: str
    evaluate: Callable[[], Evaluation] = field(compare=False, repr=False)
    published: str = ""
    bound: float | None = None  # max-abs-error bound from the note / published tests, if any
    out_step: float | None = None  # the output's quantization step, for the error in steps
    relative: bool = False  # also report the max relative error (for outputs spanning decades)


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _logit_rows(name: str, scale: float, bits: int, rows: int, lengths: tuple[int, int] = (64, 128)) -> list:
    """``rows`` rows of logits ~ N(0, 3**2) with lengths drawn from ``lengths`` (inclusive),
    quantized at ``scale`` and clipped to signed ``bits``; a list of int64 arrays."""
    rng = np.random.default_rng(_seed(name, scale))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    out = []
    for _ in range(rows):
        n = int(rng.integers(lengths[0], lengths[1] + 1))
        out.append(np.clip(np.rint(rng.normal(0.0, 3.0, n) / scale), lo, hi).astype(np.int64))
    return out


def _rowwise(rows: list, call: Callable[[np.ndarray], np.ndarray], reference: Callable[[np.ndarray], np.ndarray],
             scale: float) -> Evaluation:
    """Evaluate a row operator row by row (rows may differ in length); x axis: x - max(x)."""
    xs, ap, rf = [], [], []
    for row in rows:
        xs.append((row - row.max()) * scale)
        ap.append(np.asarray(call(row[None, :])).reshape(-1))
        rf.append(reference(row * scale))
    return Evaluation(np.concatenate(xs), np.concatenate(ap), np.concatenate(rf), "x - max(x)")


# ------------------------------------------------------------------------------------------------
# case factories
# ------------------------------------------------------------------------------------------------


def _gemmlowp_cases(quick: bool) -> list[Case]:
    from intsim_reference import nonlinear as ref

    from ...ops import gemmlowp as g

    n = 1 << (12 if quick else 16)
    lsb = 2.0**-31
    cases: list[Case] = []
    for ib in (5, 2, 0):
        def ev(ib: int = ib) -> Evaluation:
            a = -np.linspace(0, 2**31, n, dtype=np.float64).astype(np.int64)
            a = np.maximum(a, -(2**31))
            x = a * 2.0 ** -(31 - ib)
            return Evaluation(x, g.exp_on_negative_values(a, ib, taps=False).dequantize(), ref.exp(x), "x")
        cases.append(Case("gemmlowp.exp_on_negative_values", f"Q{ib}.{31 - ib}", 2.0 ** -(31 - ib),
                          f"{n} raw values evenly spaced over [-{2 ** ib}, 0]", ev,
                          "note: max 489 LSB (Q5.26 sweep; exhaustive on [-1/4, 0]: 492.25); "
                          "gemmlowp tolerance 500 LSB", 500 * lsb, lsb))

    def ev_int() -> Evaluation:
        a = -np.linspace(1, 2**29, n).astype(np.int64)
        x = a * lsb
        return Evaluation(x, g.exp_on_interval_between_negative_one_quarter_and_0_excl(a).dequantize(), ref.exp(x))
    cases.append(Case("gemmlowp.exp_on_interval_between_negative_one_quarter_and_0_excl", "Q0.31", lsb,
                      f"{n} raw values evenly spaced over [-1/4, 0)", ev_int, "gemmlowp tolerance 500 LSB",
                      500 * lsb, lsb))

    def ev_one() -> Evaluation:
        a = np.linspace(0, 2**31 - 1, n).astype(np.int64)
        x = a * lsb
        return Evaluation(x, g.one_over_one_plus_x_for_x_in_0_1(a).dequantize(), 1.0 / (1.0 + x), "x")
    cases.append(Case("gemmlowp.one_over_one_plus_x_for_x_in_0_1", "Q0.31", lsb,
                      f"{n} raw values evenly spaced over [0, 1)", ev_one,
                      "about 6.7 LSB vs exact; gemmlowp tolerance 6 LSB vs rounded reference", 7 * lsb, lsb))

    for s in (1.0, 2.0**-20):
        def ev_isq(s: float = s) -> Evaluation:
            v = np.unique(np.geomspace(2, 2**31 - 1, n).astype(np.int64))
            r = g.get_inv_sqrt_quantized_multiplier_exp(v, s)
            return Evaluation(v * s, r.dequantize(), ref.inv_sqrt(v * s), "x")
        cases.append(Case("gemmlowp.get_inv_sqrt_quantized_multiplier_exp", "tflite", s,
                          f"{n} integers geometrically spaced over [2, 2**31)", ev_isq,
                          "no published figure; compare max_rel_err", relative=True))

    rows = 32 if quick else 256
    for variant, single, out in (("tflite_double", False, "int8"), ("tflite_single", True, "int8"),
                                 ("tflite_double_int16out", False, "int16")):
        for s in (0.1, 0.05, 0.02):
            def ev_sm(s: float = s, single: bool = single, out: str = out) -> Evaluation:
                xs, ap, rf = [], [], []
                for row in _logit_rows("softmax_int8", s, 8, rows):
                    r = g.softmax_int8(row.astype(np.int8), s, single_rounding=single, out_type=out, taps=False)
                    xs.append((row - row.max()) * s)
                    ap.append(r.dequantize())
                    rf.append(ref.softmax(row * s))
                return Evaluation(np.concatenate(xs), np.concatenate(ap), np.concatenate(rf), "x - max(x)")
            step = 2.0**-8 if out == "int8" else 2.0**-16
            tol = 1.0 if out == "int8" else 7.0
            cases.append(Case("gemmlowp.softmax_int8", variant, s,
                              f"{rows} rows of 64-128 logits ~ N(0, 3^2), quantized to int8 at the input scale",
                              ev_sm, f"TFLite-Micro test tolerance {tol:g} LSB", tol * step, step))
    return cases


def _requant_cases(quick: bool) -> list[Case]:
    from ...quant.requant import requantize

    n = 1 << (12 if quick else 16)
    cases = []
    for mode in ("dyadic", "tflite_double", "tflite_single", "onnx_ref", "ort_fp32"):
        for s in (0.375, 1.0 / 3.0, 0.0123):
            def ev(mode: str = mode, s: float = s) -> Evaluation:
                x = np.linspace(-(2**26), 2**26, n).astype(np.int64)
                r = requantize(x, s, mode=mode, out="int32")
                return Evaluation(x.astype(np.float64), r.values.astype(np.float64), x * s, "x (int32 accumulator)")
            cases.append(Case("requantize", mode, s, f"{n} int32 values evenly spaced over [-2**26, 2**26], out int32",
                              ev, "exact rounding: 0.5 LSB; fp32 back-ends lose precision above 2**24", None, 1.0))
    return cases


def _ibert_cases(quick: bool) -> list[Case]:
    from intsim_reference import nonlinear as ref

    from ...ops import ibert

    rows = 32 if quick else 256
    n = 1 << (12 if quick else 15)
    cases: list[Case] = []
    for variant in ("published", "corrected"):
        for s in (0.1, 0.05, 0.01):
            def ev_sm(s: float = s, variant: str = variant) -> Evaluation:
                xs, ap, rf = [], [], []
                for row in _logit_rows("ibert.softmax", s, 32, rows):
                    r = ibert.softmax(row[None, :], s, variant=variant)
                    xs.append((row - row.max()) * s)
                    ap.append(r.dequantize()[0])
                    rf.append(ref.softmax(row * s))
                return Evaluation(np.concatenate(xs), np.concatenate(ap), np.concatenate(rf), "x - max(x)")
            cases.append(Case("ibert.softmax", variant, s, f"{rows} rows of 64-128 logits ~ N(0, 3^2), int32", ev_sm,
                              "max 0.0114-0.0123, mean 6.5e-4 (published variant)", None, 2.0**-8))
        for s in (1e-3, 1e-2):
            def ev_g(s: float = s, variant: str = variant) -> Evaluation:
                xi = np.unique(np.rint(np.linspace(-4, 4, n) / s).astype(np.int64))
                with warnings.catch_warnings():  # the coarse scale's AccuracyWarning: this row measures it
                    warnings.simplefilter("ignore", AccuracyWarning)
                    y = ibert.gelu(xi, s, variant=variant).dequantize()
                return Evaluation(xi * s, y, ref.gelu_erf(xi * s), "x")
            cases.append(Case("ibert.gelu", variant, s, f"up to {n} points over [-4, 4]", ev_g,
                              "max 0.0218 at S=1e-3, 0.73 at S=1e-2 (published variant)"))
        for s in (0.05, 0.01):
            def ev_ln(s: float = s, variant: str = variant) -> Evaluation:
                rng = np.random.default_rng(_seed("ibert.layernorm", s))
                xr = rng.normal(0.0, 2.0, (8 if quick else 64, 768)) + rng.normal(0.0, 1.0, (8 if quick else 64, 1))
                xi = np.rint(xr / s).astype(np.int64)
                y = ibert.layernorm(xi, s, variant=variant).dequantize()
                return Evaluation(ref.layernorm(xi * s, eps=0.0).reshape(-1), y.reshape(-1),
                                  ref.layernorm(xi * s, eps=0.0).reshape(-1), "normalized value")
            cases.append(Case("ibert.layernorm", variant, s, "rows of D=768 values ~ N(0, 2^2) + N(0, 1) row offset",
                              ev_ln, "max 1.7e-2 at S=0.05, 3.6e-3 at S=0.01 (published variant)"))
    for s in (0.1, 0.05, 0.01):
        def ev_e(s: float = s) -> Evaluation:
            xi = np.unique(np.rint(np.linspace(-8, 0, n) / s).astype(np.int64))
            return Evaluation(xi * s, ibert.i_exp(xi, s).dequantize(), ref.exp(xi * s), "x")
        cases.append(Case("ibert.i_exp", "published", s, f"up to {n} points over [-8, 0]", ev_e,
                          "max 3.7e-3 to 4.1e-3 on [-8, 0]"))
    return cases


def _ivit_cases(quick: bool) -> list[Case]:
    from intsim_reference import nonlinear as ref

    from ...ops import ivit

    rows = 16 if quick else 128
    n = 1 << (12 if quick else 15)
    cases: list[Case] = []
    for variant in ("pytorch", "tvm"):
        for s in (0.1, 0.02):
            def ev_e(s: float = s, variant: str = variant) -> Evaluation:
                xi = np.unique(np.rint(np.linspace(-10, 0, n) / s).astype(np.int64))
                return Evaluation(xi * s, ivit.shift_exp(xi, s, variant=variant).dequantize(), ref.exp(xi * s), "x")
            cases.append(Case("ivit.shift_exp", variant, s, f"up to {n} points over [-10, 0]", ev_e,
                              "exp error on [-10, 0] <= 0.097 (pytorch)"))
    for variant in ("pytorch", "tvm", "corrected"):
        for s in (10 / 127, 0.05):
            def ev_sm(s: float = s, variant: str = variant) -> Evaluation:
                return _rowwise(_logit_rows("ivit.shiftmax", s, 8, rows, (197, 197)),
                                lambda r: ivit.shiftmax(r, s, variant=variant).dequantize(), ref.softmax, s)
            cases.append(Case("ivit.shiftmax", variant, s, f"{rows} rows of 197 int8 logits ~ N(0, 3^2)", ev_sm,
                              "max 0.048, mean 8.8e-4 at S=10/127 (pytorch)"))
        for s, bits in ((4 / 127, 8), (0.01, 16)):
            def ev_g(s: float = s, bits: int = bits, variant: str = variant) -> Evaluation:
                xi = np.unique(np.rint(np.linspace(-4, 4, n) / s).astype(np.int64))
                y = ivit.shiftgelu(xi[None, :], s, variant=variant, in_type=f"int{bits}").dequantize()[0]
                return Evaluation(xi * s, y, ref.gelu_erf(xi * s), "x")
            cases.append(Case("ivit.shiftgelu", variant, s, "one row over [-4, 4] (row max 4)", ev_g,
                              "max 0.25 at S=4/127, 0.73 at S=0.01 (pytorch)"))
        for s in (0.05, 0.01):
            def ev_ln(s: float = s, variant: str = variant) -> Evaluation:
                rng = np.random.default_rng(_seed("ivit.layernorm", s))
                nr = 8 if quick else 64
                xi = np.rint((rng.normal(0.0, 2.0, (nr, 768)) + rng.normal(0, 1, (nr, 1))) / s).astype(np.int64)
                r = ref.layernorm(xi * s, eps=0.0).reshape(-1)
                return Evaluation(r, ivit.layernorm(xi, s, variant=variant).dequantize().reshape(-1), r,
                                  "normalized value")
            cases.append(Case("ivit.layernorm", variant, s, "rows of D=768 values ~ N(0, 2^2) + N(0, 1) row offset",
                              ev_ln, ""))
    return cases


def _illm_cases(quick: bool) -> list[Case]:
    from intsim_reference import nonlinear as ref

    from ...ops import illm

    rows = 16 if quick else 128
    n = 1 << (12 if quick else 15)
    cases: list[Case] = []
    for s in (0.1, 0.02):
        def ev_e(s: float = s) -> Evaluation:
            xi = np.unique(np.rint(np.linspace(-10, 0, n) / s).astype(np.int64))
            return Evaluation(xi * s, illm.di_exp(xi[None, :], s).dequantize()[0], ref.exp(xi * s), "x")
        cases.append(Case("illm.di_exp", "default", s, f"one row, up to {n} points over [-10, 0]", ev_e,
                          "I-ViT-style: fraction max error 0.043 (linear 2**-r)"))

        def ev_sm(s: float = s) -> Evaluation:
            return _rowwise(_logit_rows("illm.clipped_softmax", s, 32, rows),
                            lambda r: illm.clipped_softmax(r, s).dequantize(), ref.softmax, s)
        cases.append(Case("illm.clipped_softmax", "default", s, f"{rows} rows of 64-128 logits ~ N(0, 3^2), int32",
                          ev_sm, "not published (intsim's construction; clip c = 15)"))
    for s in (0.05, 0.01):
        for name, f, rf in (("illm.rmsnorm", illm.rmsnorm, lambda v: ref.rmsnorm(v, eps=0.0)),
                            ("illm.layernorm", illm.layernorm, lambda v: ref.layernorm(v, eps=0.0))):
            def ev_n(s: float = s, f: Callable = f, rf: Callable = rf, name: str = name) -> Evaluation:
                rng = np.random.default_rng(_seed(name, s))
                xi = np.rint(rng.normal(0.5, 2.0, (8 if quick else 64, 1024)) / s).astype(np.int64)
                r = rf(xi * s).reshape(-1)
                return Evaluation(r, f(xi, s).dequantize().reshape(-1), r, "normalized value")
            cases.append(Case(name, "default", s, "rows of D=1024 values ~ N(0.5, 2^2), int16", ev_n,
                              "not published (intsim's construction)"))
    for s in (0.05, 0.02):
        def ev_sw(s: float = s) -> Evaluation:
            gate = np.arange(-128, 128, dtype=np.int64)[None, :]
            up = np.full_like(gate, 50)
            y = illm.swiglu(gate, s, up, 0.02).dequantize()[0]
            return Evaluation(gate[0] * s, y, ref.swiglu(gate[0] * s, up[0] * 0.02), "gate")
        cases.append(Case("illm.swiglu", "default", s, "every int8 gate, up = 50 at scale 0.02", ev_sw,
                          "not published (intsim's construction)"))
    return cases


#: operator family -> its case factory (called with ``quick``). Add entries here to extend the report.
CASES: dict[str, Callable[[bool], list[Case]]] = {
    "gemmlowp": _gemmlowp_cases,
    "requantize": _requant_cases,
    "ibert": _ibert_cases,
    "ivit": _ivit_cases,
    "illm": _illm_cases,
}


# ------------------------------------------------------------------------------------------------
# evaluation and output
# ------------------------------------------------------------------------------------------------


@dataclass
class Row:
    case: Case
    n: int
    max_abs: float
    mean_abs: float
    max_rel: float
    evaluation: Evaluation

    @property
    def max_steps(self) -> float:
        return self.max_abs / self.case.out_step if self.case.out_step else math.nan

    @property
    def within(self) -> str:
        if self.case.bound is None:
            return ""
        return "yes" if self.max_abs <= self.case.bound else "NO"


def evaluate_cases(cases: list[Case], failures: list[tuple[Case, str]] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run every case and measure its errors. With ``failures`` given, a case that raises is
    recorded there (operator, variant, scale and the error) instead of stopping the report.
    ``progress`` is called with one line per case, as it finishes."""
    rows = []
    for i, c in enumerate(cases, 1):
        t0 = time.perf_counter()
        label = f"[{i}/{len(cases)}] {c.operator} {c.variant} scale {c.input_scale:g}"
        if failures is None:
            ev = c.evaluate()
        else:
            try:
                ev = c.evaluate()
            except Exception as exc:  # noqa: BLE001 - reported in the output, and run() returns 1
                failures.append((c, f"{type(exc).__name__}: {exc}"))
                if progress:
                    progress(f"{label}: failed: {type(exc).__name__}: {exc}")
                continue
        ref = np.asarray(ev.ref, dtype=np.float64)
        err = np.abs(np.asarray(ev.approx, dtype=np.float64) - ref)
        rel = float(np.max(err / np.abs(ref))) if c.relative else math.nan
        rows.append(Row(c, int(err.size), float(err.max()), float(err.mean()), rel, ev))
        if progress:
            progress(f"{label}: max error {rows[-1].max_abs:.3e} ({time.perf_counter() - t0:.1f} s)")
    return rows


def _fmt(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3e}"


_COLUMNS = ["operator", "variant", "input_scale", "grid", "n", "max_abs_err", "mean_abs_err", "max_err_steps",
            "max_rel_err", "published", "bound", "within_bound"]


def _table(rows: list[Row]) -> list[list[str]]:
    return [[r.case.operator, r.case.variant, f"{r.case.input_scale:.6g}", r.case.grid, str(r.n), _fmt(r.max_abs),
             _fmt(r.mean_abs), "" if math.isnan(r.max_steps) else f"{r.max_steps:.3f}", _fmt(r.max_rel),
             r.case.published,
             _fmt(r.case.bound) if r.case.bound is not None else "", r.within] for r in rows]


def _csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_COLUMNS)
    w.writerows(_table(rows))
    return buf.getvalue()


def _markdown(rows: list[Row], quick: bool, plots: list[str], failures: list[tuple[Case, str]]) -> str:
    out = ["# Integer non-linear operators: accuracy against float64 references", ""]
    out.append(f"Generated by `intsim report nonlinear{' --quick' if quick else ''} --force`. "
               "Each row runs one integer operator (variant = published variant or back-end) on a documented, "
               "deterministic input grid at one input scale, dequantizes its integer output, and compares it with "
               "the float64 reference of `reference/nonlinear.py` evaluated on the *dequantized input* (so input "
               "quantization is not counted as operator error). `max_err_steps` is the max error in output "
               "quantization steps; `max_rel_err` is given for outputs that span decades. "
               "`published` quotes the paper's figure or the upstream test tolerance; "
               "`within_bound` checks the bound where one is given.")
    if quick:
        out += ["", "_Quick run: reduced grids._"]
    out += ["", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for t in _table(rows):
        out.append("| " + " | ".join(v.replace("|", "\\|") for v in t) + " |")
    failed = [r for r in rows if r.within == "NO"]
    out += ["", f"Bounds checked: {sum(1 for r in rows if r.within)}; exceeded: {len(failed)}."]
    for r in failed:
        out.append(f"- **exceeded**: {r.case.operator} / {r.case.variant} / {r.case.input_scale:g}: "
                   f"max {r.max_abs:.3e} > bound {r.case.bound:.3e}")
    if failures:
        out += ["", "## Cases that failed to run", ""]
        out += [f"- {c.operator} / {c.variant} / {c.input_scale:g}: `{err}`" for c, err in failures]
    if plots:
        out += ["", "## Plots (signed error against input)", ""]
        out += [f"- [{p}]({p})" for p in plots]
    return "\n".join(out) + "\n"


def _plot(rows: list[Row], directory: Path, progress: Callable[[str], None] | None = None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.case.operator, r.case.variant), []).append(r)
    names = []
    directory.mkdir(parents=True, exist_ok=True)
    for k, ((op, prof), grp) in enumerate(groups.items(), 1):
        if progress:
            progress(f"[{k}/{len(groups)}] plot {op} {prof}")
        # one panel per input scale, side by side on one error axis: no scale hides another
        fig, axes = plt.subplots(1, len(grp), figsize=(2.2 + 3.2 * len(grp), 3.6), dpi=100, sharey=True,
                                 squeeze=False)
        for ax, r in zip(axes[0], grp, strict=True):
            ev = r.evaluation
            x = np.asarray(ev.x, dtype=np.float64).reshape(-1)
            e = (np.asarray(ev.approx, dtype=np.float64) - np.asarray(ev.ref, dtype=np.float64)).reshape(-1)
            if x.size > 20000:
                idx = np.linspace(0, x.size - 1, 20000).astype(np.int64)
                x, e = x[idx], e[idx]
            order = np.argsort(x, kind="stable")
            ax.plot(x[order], e[order], ".", markersize=1.5, color="tab:blue")
            if r.case.bound is not None:
                for b in (r.case.bound, -r.case.bound):
                    ax.axhline(b, color="k", linewidth=0.6, linestyle="--")
            ax.set_title(f"input scale {r.case.input_scale:g}", fontsize=9)
            ax.set_xlabel(ev.xlabel)
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("integer result - float64 reference")
        bound = " (dashed: the bound checked)" if any(r.case.bound is not None for r in grp) else ""
        fig.suptitle(f"{op} ({prof}): signed error{bound}", fontsize=10)
        fig.tight_layout()
        name = f"{op}__{prof}.png".replace("/", "_")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        plt.close(fig)
        (directory / name).write_bytes(buf.getvalue())
        names.append(f"plots/{name}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intsim report nonlinear``."""
    parser.add_argument("--quick", action="store_true", help="smaller grids (for a fast check)")
    parser.add_argument("--operators", default="", help=f"comma-separated subset of: {', '.join(CASES)}")
    add_output_options(parser, out="reports/nonlinear", plots=True)


def _printer(quiet: bool) -> Callable[[str], None]:
    """Progress on stdout, one line per unit of work, flushed; nothing when ``quiet``."""
    def progress(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)
    return progress


def run(args: argparse.Namespace) -> int:
    """Write the report; returns 0, or 1 if a published bound is exceeded or a case failed to run."""
    from ...core.errors import ConfigError
    from ...core.fileio import atomic_directory

    wanted = [w.strip() for w in (args.operators or "").split(",") if w.strip()] or list(CASES)
    unknown = sorted(set(wanted) - set(CASES))
    if unknown:
        raise ConfigError(f"unknown operator families {unknown}; valid: {', '.join(CASES)}")
    cases = [c for name in wanted for c in CASES[name](bool(args.quick))]
    failures: list[tuple[Case, str]] = []
    progress = _printer(bool(getattr(args, "quiet", False)))
    with atomic_directory(Path(args.out), force=bool(args.force)) as tmp:
        rows = evaluate_cases(cases, failures, progress)
        plots = [] if getattr(args, "no_plots", False) else _plot(rows, tmp / "plots", progress)
        (tmp / "nonlinear.csv").write_text(_csv(rows), encoding="utf-8")
        (tmp / "nonlinear.md").write_text(_markdown(rows, bool(args.quick), plots, failures),
                                          encoding="utf-8")
    exceeded = [r for r in rows if r.within == "NO"]
    print(f"wrote {args.out}: {len(rows)} cases, {sum(1 for r in rows if r.within)} bounds checked, "
          f"{len(exceeded)} exceeded, {len(failures)} failed to run")
    for c, err in failures:
        print(f"  failed: {c.operator} / {c.variant} / {c.input_scale:g}: {err}")
    return 1 if exceeded or failures else 0
