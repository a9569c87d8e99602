"""Output directories are written safely: a user's file is never deleted or replaced.

Every command that writes a directory goes through :func:`intsim.core.fileio.atomic_directory`; these
tests put user files, fake records, concurrent runs, directories created mid-run and kills at each
step of the swap in its way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import intsim.core.fileio as fileio
from intsim.apps.cli import main
from intsim.core.errors import ConfigError
from intsim.core.fileio import RECORD, atomic_directory, check_output_target


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (hidden ones too) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_output(target: Path, content: str, force: bool = True) -> None:
    with atomic_directory(target, force=force) as tmp:
        (tmp / "a.txt").write_text(content)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text(content * 2)


def test_new_output_has_a_record_and_no_leftovers(tmp_path):
    write_output(tmp_path / "out", "one", force=False)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    rec = json.loads((tmp_path / "out" / RECORD).read_text())
    assert rec["format"] == "intsim-output" and sorted(rec["files"]) == ["a.txt", "sub/b.txt"]
    assert rec["files"]["a.txt"]["bytes"] == 3


def test_replaces_its_own_output_only_with_force(tmp_path):
    out = tmp_path / "out"
    write_output(out, "one")
    with pytest.raises(ConfigError, match="already exists"):
        write_output(out, "two", force=False)
    write_output(out, "two")
    assert (out / "a.txt").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_an_empty_directory_is_used_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    write_output(tmp_path / "out", "one", force=False)
    assert (tmp_path / "out" / "a.txt").read_text() == "one"


@pytest.mark.parametrize("intruder", ["top", "nested", "modified", "symlink", "no_record", "fake_record"])
def test_refuses_a_directory_holding_anything_else(tmp_path, intruder):
    out = tmp_path / "out"
    write_output(out, "one")
    if intruder == "top":
        (out / "thesis.txt").write_text("years of work")
    elif intruder == "nested":
        (out / "sub" / "notes.txt").write_text("mine")
    elif intruder == "modified":
        (out / "a.txt").write_text("edited by hand")
    elif intruder == "symlink":
        (out / "link").symlink_to(tmp_path)
    elif intruder == "no_record":
        (out / RECORD).unlink()
    else:  # a record that lists a user's file with made-up hashes
        (out / "thesis.txt").write_text("years of work")
        rec = json.loads((out / RECORD).read_text())
        rec["files"]["thesis.txt"] = {"bytes": 13, "sha256": "0" * 64}
        (out / RECORD).write_text(json.dumps(rec))
    before = tree(tmp_path)
    with pytest.raises(ConfigError, match="refusing to replace"):
        write_output(out, "two")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("kind", ["file", "symlink", "cwd", "parent_of_cwd"])
def test_refuses_targets_that_are_not_output_directories(tmp_path, monkeypatch, kind):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    target = {"file": tmp_path / "f", "symlink": tmp_path / "l", "cwd": Path("."), "parent_of_cwd": Path("..")}[kind]
    if kind == "file":
        target.write_text("data")
    if kind == "symlink":
        target.symlink_to(tmp_path / "work")
    before = tree(tmp_path)
    with pytest.raises(ConfigError):
        write_output(target, "x")
    assert tree(tmp_path) == before


def test_directory_created_during_the_run_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    for force in (False, True):
        with pytest.raises(ConfigError, match="already exists|refusing to replace"):
            with atomic_directory(out, force=force) as tmp:
                (tmp / "a.txt").write_text("new")
                out.mkdir(exist_ok=True)  # someone else's directory appears while we work
                (out / "theirs.txt").write_text("theirs")
        assert tree(out) == {"theirs.txt": b"theirs"}
        assert sorted(os.listdir(tmp_path)) == ["out"]


def test_concurrent_run_fails_with_a_clear_message(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("first")
        with pytest.raises(ConfigError, match=rf"another intsim run \(process {os.getpid()}\)"):
            write_output(out, "second")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_concurrent_runs_in_threads_never_mix(tmp_path):
    out = tmp_path / "out"
    results: list[str] = []

    def run(tag: str) -> None:
        try:
            with atomic_directory(out, force=True) as tmp:
                for i in range(20):
                    (tmp / f"f{i}.txt").write_text(tag)
            results.append(tag)
        except ConfigError as exc:
            results.append(f"refused: {exc}")

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(not r.startswith("refused") for r in results)
    assert all(r.startswith("t") or "another intsim run" in r for r in results)
    contents = {p.read_text() for p in out.glob("f*.txt")}
    assert len(contents) == 1  # one complete output, never a mixture
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failure_inside_the_build_leaves_the_old_output(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    before = tree(out)
    with pytest.raises(ZeroDivisionError):
        with atomic_directory(out, force=True) as tmp:
            (tmp / "a.txt").write_text("new")
            raise ZeroDivisionError("simulated failure")
    assert tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("step", ["created", "built", "synced", "locked", "exchanged", "removed_old"])
def test_injected_failure_at_each_step(tmp_path, monkeypatch, step):
    out = tmp_path / "out"
    write_output(out, "old")
    old = tree(out)

    def hook(s: str) -> None:
        if s == step:
            raise OSError(5, "injected failure")

    monkeypatch.setattr(fileio, "_fault_hook", hook)
    with pytest.raises(OSError, match="injected"):
        write_output(out, "new")
    got = tree(out)
    assert got == old or (got["a.txt"] == b"new" and got["sub/b.txt"] == b"newnew")
    monkeypatch.setattr(fileio, "_fault_hook", None)
    write_output(out, "next")  # the next run heals whatever was left
    assert (out / "a.txt").read_text() == "next"
    assert sorted(os.listdir(tmp_path)) == ["out"]


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import intsim.core.fileio as f
    target, step, mode, content = sys.argv[1:5]
    if mode == "two_renames":
        f._renameat2 = None  # the portable path: two renames
    def hook(s):
        if s == step:
            os.kill(os.getpid(), signal.SIGKILL)
    f._fault_hook = hook
    with f.atomic_directory(target, force=True) as tmp:
        (tmp / "a.txt").write_text(content)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text(content * 2)
""")

_STEPS = {"exchange": ["created", "built", "synced", "locked", "exchanged", "removed_old"],
          "two_renames": ["created", "built", "synced", "locked", "moved_old", "renamed", "removed_old"]}


@pytest.mark.parametrize("mode,step", [(m, s) for m, steps in _STEPS.items() for s in steps])
def test_kill_at_each_step_of_the_swap(tmp_path, mode, step):
    out = tmp_path / "out"
    write_output(out, "old")
    old, user = tree(out), tmp_path / "user.txt"
    user.write_text("a user's file beside the output")
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(out), step, mode, "new"], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    if not (mode == "two_renames" and step == "moved_old"):  # the one documented gap of the portable path
        got = tree(out)
        assert got == old or (got["a.txt"] == b"new" and got["sub/b.txt"] == b"newnew"), sorted(got)
    # the next run restores or removes every leftover, and writes its own output
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(out), "none", mode, "next"], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (out / "a.txt").read_text() == "next"
    assert sorted(os.listdir(tmp_path)) == ["out", "user.txt"]
    assert user.read_text() == "a user's file beside the output"


def test_two_renames_killed_between_them_puts_the_old_output_back(tmp_path):
    out = tmp_path / "out"
    write_output(out, "old")
    old = tree(out)
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(out), "moved_old", "two_renames", "new"])
    assert proc.returncode == -9 and not out.exists()
    with pytest.raises(ConfigError):  # a reader would see no output; the next writer restores it first
        with atomic_directory(out, force=False):
            pass
    assert tree(out) == old


def test_file_dropped_into_the_old_output_during_the_swap_is_kept(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    write_output(out, "old")

    def hook(s: str) -> None:
        if s == "locked":  # after the last check, before the exchange: a user's file lands in the old output
            (out / "late.txt").write_text("late")

    monkeypatch.setattr(fileio, "_fault_hook", hook)
    monkeypatch.setattr(fileio, "check_output_target", lambda *a, **k: fileio.owned_listing(out))
    write_output(out, "new")
    assert (out / "a.txt").read_text() == "new"
    kept = [p for p in tmp_path.iterdir() if p.name != "out"]
    assert len(kept) == 1 and (kept[0] / "late.txt").read_text() == "late"
    assert "intsim did not write" in capsys.readouterr().err


def test_check_output_target_is_cheap_to_call_early(tmp_path):
    assert check_output_target(tmp_path / "absent") is None
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x").write_text("x")
    with pytest.raises(ConfigError, match="already exists"):
        check_output_target(tmp_path / "mine")


# --------------------------------------------------------------------------------------------------
# the commands
# --------------------------------------------------------------------------------------------------


def error_lines(err: str) -> list[str]:
    """The error lines of a command's stderr (a first run may also print a line about compiling)."""
    assert "Traceback" not in err
    return [line for line in err.splitlines() if not line.startswith("intsim: compiling")]


def _thesis(tmp_path: Path) -> Path:
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "thesis.txt").write_text("x\n")
    return d


@pytest.mark.parametrize("argv", [
    ["report", "cost", "--workload", "gemm:16x16x16", "--no-plots"],
    ["report", "nonlinear", "--quick", "--operators", "gemmlowp", "--no-plots"],
    ["golden", "generate", "SPEC"],
])
def test_commands_never_delete_a_users_directory(tmp_path, capsys, argv):
    spec = tmp_path / "s.toml"
    spec.write_text('[[case]]\nname = "t"\noperator = "matmul"\nshape = { M = 2, K = 3, N = 2 }\n')
    argv = [str(spec) if a == "SPEC" else a for a in argv]
    d = _thesis(tmp_path)
    before = tree(tmp_path)
    assert main([*argv, "--out", str(d), "--force"]) == 2
    err = capsys.readouterr().err
    assert "refusing to replace" in err and "thesis.txt" in err
    assert len(error_lines(err)) == 1
    assert tree(tmp_path) == before


def test_golden_force_keeps_files_beside_a_real_suite(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[[case]]\nname = "t"\noperator = "matmul"\nshape = { M = 2, K = 3, N = 2 }\n')
    out = tmp_path / "suite"
    assert main(["golden", "generate", str(spec), "--out", str(out), "-q"]) == 0
    assert not (out / RECORD).exists()  # a suite's manifest is its record
    assert main(["golden", "generate", str(spec), "--out", str(out), "--force", "-q"]) == 0
    (out / "junit.xml").write_text("<testsuites/>")
    before = tree(tmp_path)
    assert main(["golden", "generate", str(spec), "--out", str(out), "--force", "-q"]) == 2
    assert "junit.xml" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_out_dot_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep")
    assert main(["report", "cost", "--workload", "gemm:16x16x16", "--no-plots", "--out", ".", "--force"]) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "current directory" in err
    assert (tmp_path / "keep.txt").read_text() == "keep"


def test_os_error_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fileio.os, "mkdir", refuse)
    out = tmp_path / "ro" / "out"
    assert main(["report", "cost", "--workload", "gemm:16x16x16", "--no-plots", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert line.startswith("intsim: error: permission denied: ") and str(tmp_path) in line


def test_an_output_written_inside_an_output_being_built(tmp_path):
    """The demo writes its golden suite inside its own report directory: no self-deadlock."""
    out = tmp_path / "report"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("report")
        write_output(tmp / "inner", "inner", force=False)
    assert (out / "a.txt").read_text() == "report" and (out / "inner" / "a.txt").read_text() == "inner"
    assert sorted(os.listdir(tmp_path)) == ["report"]
    assert sorted(os.listdir(out)) == [RECORD, "a.txt", "inner"]
