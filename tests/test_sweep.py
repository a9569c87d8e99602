"""``intsim sweep``: specs, output directories, determinism across Dask engines, resuming, golden suites."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import pandas as pd  # noqa: E402

from intsim.apps.cli import main  # noqa: E402
from intsim.apps.sweep import KINDS, load_sweep_spec, parse_sweep_spec, point_key  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sweep_unpack.toml"
BIN = Path(sys.executable).parent


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet")


def _spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------------
# specs and bad input (no Dask needed)
# ------------------------------------------------------------------------------------------------


def test_kinds_are_registered_and_the_example_grid_is_ordered():
    assert {"unpack", "cost", "golden"} <= set(KINDS)
    spec = load_sweep_spec(EXAMPLE)
    plan = spec.plan()
    assert len(plan.points) == 3 * 4 * 4 * 2
    assert plan.axes == ["gemm", "bits", "strategy", "percentile"]
    first = plan.points[:3]
    assert [(p["gemm"], p["bits"], p["strategy"], p["percentile"]) for p in first] == [
        ("0.q_proj", 2, "row", 0.95), ("0.q_proj", 2, "row", 0.99), ("0.q_proj", 2, "col", 0.95)]
    keys = [point_key("unpack", p, plan.identity) for p in plan.points]
    assert len(set(keys)) == len(keys)
    assert keys == [point_key("unpack", dict(reversed(list(p.items()))), plan.identity) for p in plan.points]


@pytest.mark.parametrize("text, needle", [
    ('[sweep]\nkind = "training_nope"\n', "unknown kind"),
    ('[sweep]\nkind = "unpack"\n[grid]\nbitz = [2]\n', "grid.bitz: unknown parameter"),
    ('[sweep]\nkind = "unpack"\n[grid]\nbits = []\n', "empty"),
    ('[sweep]\nkind = "unpack"\n[grid]\nbits = [1]\n', "grid.bits[0]"),
    ('[sweep]\nkind = "unpack"\n[grid]\nstrategy = "diagonal"\n', "grid.strategy"),
    ('[sweep]\nkind = "unpack"\n[grid]\ngemm = "9.q_proj"\n', "unknown GEMM"),
    ('[sweep\nkind = "unpack"\n', "invalid TOML"),
    ('[grid]\nbits = [2]\n', "missing [sweep]"),
    ('[sweep]\nkind = "golden"\n[grid]\nspec = "nope.toml"\n', "no such file"),
    ('[sweep]\nkind = "cost"\n[grid]\nmethod = ["int9"]\n', "int9"),
    ("x = " + "[" * 100000 + "]" * 100000 + "\n", "nested too deeply"),
])
def test_bad_specs_exit_2_naming_the_problem(tmp_path, capsys, text, needle):
    spec = _spec(tmp_path, text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_an_out_holding_files_intsim_did_not_write_is_refused(tmp_path, capsys):
    spec = _spec(tmp_path, '[sweep]\nkind = "unpack"\n[grid]\ngemm = "0.scores"\nsentences = 1\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 2
    assert "not write" in capsys.readouterr().err
    (out / "parts").mkdir()  # looks like a sweep directory, but still holds a file of the user's
    assert main(["sweep", str(spec), "--out", str(out), "-q", "--force"]) == 2
    assert "'notes.txt' was not written by intsim" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_parse_is_independent_of_the_working_directory(tmp_path):
    (tmp_path / "g.toml").write_text((ROOT / "examples" / "golden_cases.toml").read_text())
    spec = _spec(tmp_path, '[sweep]\nkind = "golden"\n[grid]\nspec = "g.toml"\n', "s.toml")
    plan = load_sweep_spec(spec).plan()
    assert [p["case"] for p in plan.points][:2] == ["matmul_int8", "matmul_int4_acc12"]
    with pytest.raises(Exception, match="no such file"):
        parse_sweep_spec(spec.read_text(), base=tmp_path / "elsewhere").plan()


# ------------------------------------------------------------------------------------------------
# runs on Dask
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _dask_cluster(tmp_path: Path, nworkers: int = 2):
    """A scheduler and ``nworkers`` worker processes started with the ``dask`` command line; yields
    the scheduler file. Every process is stopped (its whole process group) whatever happens."""
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    logs = [open(tmp_path / f"dask-{n}.log", "wb") for n in ("scheduler", "worker")]
    try:
        procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(sched_file)], stdout=logs[0], stderr=logs[0],
                                      start_new_session=True))
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None, (tmp_path / "dask-scheduler.log").read_text()
            time.sleep(0.1)
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(sched_file),
                                       "--nworkers", str(nworkers), "--nthreads", "1", "--no-dashboard"],
                                      stdout=logs[1], stderr=logs[1], start_new_session=True))
        from distributed import Client

        with Client(scheduler_file=str(sched_file), timeout="30s") as c:
            c.wait_for_workers(nworkers, timeout=90)
        yield sched_file
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for f in logs:
            f.close()


def test_example_rows_are_the_same_on_a_local_cluster_and_on_a_dask_cluster(tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["sweep", str(EXAMPLE), "--out", str(local), "--workers", "2", "-q"]) == 0
    with _dask_cluster(tmp_path) as sched:
        assert main(["sweep", str(EXAMPLE), "--out", str(remote), "--scheduler", str(sched), "-q"]) == 0
    a, b = _rows(local), _rows(remote)
    assert len(a) == 96 and list(a.point) == list(range(96))
    pd.testing.assert_frame_equal(a, b)
    assert (local / "results.parquet").read_bytes() == (remote / "results.parquet").read_bytes()
    readme = (local / "README.md").read_text()
    assert "![" in readme and (local / "unpack_ratio_vs_bits.png").exists()
    assert (local / "README.md").read_bytes() == (remote / "README.md").read_bytes()
    # a rerun computes nothing and changes nothing
    before = (local / "results.parquet").read_bytes()
    capsys.readouterr()
    assert main(["sweep", str(EXAMPLE), "--out", str(local), "-q", "--workers", "1"]) == 0
    assert "(0 computed, 96 reused)" in capsys.readouterr().out
    assert (local / "results.parquet").read_bytes() == before


_KILL_SPEC = """
[sweep]
kind = "unpack"
[grid]
gemm = ["0.q_proj", "0.k_proj", "0.o_proj"]
bits = [2, 3, 4, 5]
strategy = ["row", "col", "both", "plan"]
percentile = [0.9, 0.95, 0.99]
sentences = 1
max_len = 32
"""


def _parts(out: Path) -> dict[str, tuple[int, int]]:
    d = out / "parts"
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in d.glob("*.parquet")} if d.is_dir() else {}


def test_a_killed_sweep_resumes_without_recomputing_finished_points(tmp_path):
    spec = _spec(tmp_path, _KILL_SPEC)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "intsim", "sweep", str(spec), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_parts(out)) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local cluster's processes
        proc.communicate(timeout=30)
    finished = _parts(out)
    assert 5 <= len(finished) < 144, "the sweep was not interrupted mid-way; make the grid larger"
    assert not (out / "results.parquet").exists()
    rerun = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({144 - len(finished)} computed, {len(finished)} reused)" in rerun.stdout
    after = _parts(out)
    assert all(after[name] == stamp for name, stamp in finished.items())  # not rewritten
    assert len(after) == 144
    ref = tmp_path / "ref"  # uninterrupted, and with two workers instead of one
    assert main(["sweep", str(spec), "--out", str(ref), "--workers", "2", "-q", "--no-plots"]) == 0
    pd.testing.assert_frame_equal(_rows(out), _rows(ref))
    assert not list(ref.glob("*.png"))


def test_a_golden_sweep_is_byte_identical_to_golden_generate(tmp_path):
    from intsim.golden.suite import generate_suite

    cases = ROOT / "examples" / "golden_cases.toml"
    out, ref = tmp_path / "sweep", tmp_path / "ref"
    assert main(["sweep", str(ROOT / "examples" / "sweep_golden.toml"), "--out", str(out), "--workers", "2",
                 "-q"]) == 0
    generate_suite(cases, ref)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(out / "suite") == files(ref)
    rows = _rows(out)
    assert list(rows.case) == [line.split('"')[1] for line in cases.read_text().splitlines()
                               if line.startswith("name = ") and "sweep-example" not in line]
    assert main(["golden", "verify", str(out / "suite")]) == 0
    # the sweep directory (with its suite) can be replaced by a fresh sweep with --force
    assert main(["sweep", str(ROOT / "examples" / "sweep_golden.toml"), "--out", str(out), "--workers", "1", "-q",
                 "--force"]) == 0
    assert files(out / "suite") == files(ref)


def test_cost_sweep_and_another_commands_output(tmp_path, capsys):
    spec = _spec(tmp_path, '[sweep]\nkind = "cost"\n[grid]\nprofile = ["horowitz45", "aladdin40"]\n'
                           'method = ["int8", "unpack4-row"]\nworkload = "gemm:16x64x32"\n')
    out = tmp_path / "out"
    out.mkdir()
    from intsim.core.fileio import atomic_directory

    with atomic_directory(out, force=True) as tmp:  # the output of another intsim command
        (tmp / "summary.csv").write_text("x\n")
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(out), "-q", "--force", "--workers", "2"]) == 0
    rows = _rows(out)
    assert list(zip(rows.profile, rows.method, strict=True)) == [
        ("horowitz45", "int8"), ("horowitz45", "unpack4-row"), ("aladdin40", "int8"), ("aladdin40", "unpack4-row")]
    assert (rows.total_pj > 0).all() and not (out / "summary.csv").exists()
    shutil.rmtree(out)


def test_a_sweep_leaves_the_calling_process_as_it_was(tmp_path):
    """The workers' one-thread numba setting stays in the workers: the process that ran the sweep
    keeps its environment and its numba thread pool (a parallel kernel still runs afterwards)."""
    import numba
    import numpy as np

    from intsim.ops import ibert

    env, threads = dict(os.environ), numba.get_num_threads()
    spec = _spec(tmp_path, '[sweep]\nkind = "cost"\n[grid]\nmethod = "int8"\nworkload = "gemm:8x16x8"\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "-q", "--workers", "1"]) == 0
    assert dict(os.environ) == env and numba.get_num_threads() == threads
    x = np.arange(-64, 64, dtype=np.int64).reshape(4, 32) * 10
    assert ibert.softmax(x, 0.01).values.shape == (4, 32)


def test_npy_gemms_and_a_grown_grid_computes_only_the_new_points(tmp_path, capsys):
    import numpy as np

    from intsim.hw.unpack import compare_strategies

    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 10))
    a[0, 3] = 40.0  # a heavy hitter
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", rng.normal(size=(10, 4)))
    np.save(tmp_path / "ai.npy", rng.integers(-300, 300, size=(5, 7)))
    np.save(tmp_path / "bi.npy", rng.integers(-9, 9, size=(7, 3)))
    head = ('[sweep]\nkind = "unpack"\n[[gemm]]\nname = "float"\na = "a.npy"\nb = "b.npy"\n'
            '[[gemm]]\nname = "int"\na = "ai.npy"\nb = "bi.npy"\n[grid]\nstrategy = ["row", "plan"]\n')
    spec = _spec(tmp_path, head + "bits = [2, 4]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "-q", "--no-plots"]) == 0
    rows = _rows(out)
    assert list(rows.gemm) == ["float", "int"] * 4 and "sentences" not in rows  # unlisted parameters vary fastest
    ai, bi = np.load(tmp_path / "ai.npy"), np.load(tmp_path / "bi.npy")
    want = compare_strategies(ai, bi, 4, strategies=("plan",))["plan"].work
    assert rows.loc[(rows.gemm == "int") & (rows.bits == 4) & (rows.strategy == "plan"), "unpacked_macs"].item() == want
    spec.write_text(head + "bits = [2, 3, 4]\n")
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "-q", "--no-plots"]) == 0
    assert "(4 computed, 8 reused)" in capsys.readouterr().out
    assert len(_rows(out)) == 12
    bad = _spec(tmp_path, head + "bits = 4\nsentences = 2\n", "bad.toml")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o2"), "-q"]) == 2


# ------------------------------------------------------------------------------------------------
# the training kind
# ------------------------------------------------------------------------------------------------


def test_the_training_kind_is_registered_and_its_example_plans():
    assert "training" in KINDS
    plan = load_sweep_spec(ROOT / "examples" / "sweep_training.toml").plan()
    assert len(plan.points) == 7 * 4 * 2 * 2 * 2
    assert plan.axes == ["gemm", "bits", "strategy", "acc_bits", "spill"]
    assert {p["gemm"] for p in plan.points} == {"forward", "input_grad", "weight_grad", "attention",
                                                "attention_grad", "inference", "all"}
    keys = [point_key("training", p, plan.identity) for p in plan.points]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("grid, needle", [
    ('gemm = "backward"', "grid.gemm"),
    ("bits = [4, 1]", "grid.bits[1]"),
    ('strategy = "diagonal"', "grid.strategy"),
    ("percentile = 0", "grid.percentile"),
    ("levels = 0", "grid.levels"),
    ("acc_bits = 16", "grid.acc_bits"),
    ("spill = 1", "grid.spill"),
    ("spill = -8", "grid.spill"),
    ("pairs = 0", "grid.pairs"),
    ("max_len = 1", "grid.max_len"),
    ("layers = 7", "grid.layers"),
    ("sentences = 2", "grid.sentences: unknown parameter"),
])
def test_bad_training_parameters_exit_2(tmp_path, capsys, grid, needle):
    spec = _spec(tmp_path, f'[sweep]\nkind = "training"\n[grid]\n{grid}\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_training_sweep_gives_the_training_reports_figures(tmp_path):
    """The rows equal what ``intsim report training`` computes for the same step and settings, and
    do not depend on the number of workers."""
    import argparse
    from collections import defaultdict

    from intsim.apps.reports import training as report
    from intsim.models.minilm.training import default_variants
    from intsim.models.store import model_available
    from intsim_reference.training import training_step

    if not model_available():
        pytest.skip("the MiniLM model is missing: intsim model fetch")
    wl = report.training_workload(pairs=1, max_len=16, layers=1)
    spec = _spec(tmp_path, '[sweep]\nkind = "training"\n[grid]\n'
                           'gemm = ["weight_grad", "attention", "attention_grad", "inference", "all"]\n'
                           'bits = [2, 4]\nstrategy = ["row", "plan"]\nacc_bits = [32, 40]\nspill = [0, 4]\n'
                           'pairs = 1\nmax_len = 16\nlayers = 1\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "-q", "--no-plots"]) == 0
    rows = _rows(out)
    assert len(rows) == 5 * 2 * 2 * 2 * 2
    # the report's measurements of the same step
    step = training_step(wl.model, wl.input_ids, wl.attention_mask, wl.pairs, wl.labels)
    by_key = defaultdict(list)
    for g in step.gemms:
        by_key[(g.layer, g.name, g.role)].append(g)
    variants = default_variants(acc_bits=32, spill=(4,), wide=(40,)) + default_variants(acc_bits=40, spill=(4,),
                                                                                         wide=())[1:]
    groups = {k: report._measure(m, (2, 4), argparse.Namespace(levels=15, percentile=0.95), variants)
              for k, m in by_key.items()}
    select = {"weight_grad": ("weight_grad",), "attention": ("attention",), "attention_grad": ("attention_grad",),
              "inference": ("forward", "attention"), "all": report.KIND_ORDER}
    ratios = {label: r for label, _, _, r in report._aggregates(groups, (2, 4))}
    labels = {"inference": "inference (forward + attention)", "all": "training step (all)"}
    for r in rows.itertuples():
        macs, work, count = report._kind_sums(groups, select[r.gemm])
        assert (r.gemms, r.macs, r.unpacked_macs) == (count, macs, work[(r.bits, r.strategy)]), r
        assert r.unpack_ratio == ratios[labels.get(r.gemm, r.gemm)][(r.bits, r.strategy)]
        name = f"acc{r.acc_bits}" + (f", spill every {r.spill}" if r.spill else "")
        sel = [a for a in groups.values() if a.kind in select[r.gemm]]
        assert r.accumulator == name
        assert r.outputs == sum(a.outputs for a in sel) and r.max_k == max(a.max_k for a in sel)
        assert r.overflow == sum(a.overflow[name] for a in sel), r
        assert r.overflow_fraction == r.overflow / r.outputs
        if r.acc_bits == 32:
            assert r.outside_acc == sum(a.outside for a in sel)
    int16 = {row[0]: row for row in report._int16_rows(groups, variants)}
    acc32 = rows[(rows.gemm == "attention") & (rows.acc_bits == 32) & (rows.spill == 0)]
    assert set(acc32.overflow) == {int16["attention"][6]}
    assert rows.overflow.sum() > 0  # the 32-bit register overflows somewhere on this step
    # the same rows with two workers
    again = tmp_path / "again"
    assert main(["sweep", str(spec), "--out", str(again), "--workers", "2", "-q", "--no-plots"]) == 0
    pd.testing.assert_frame_equal(rows, _rows(again))
