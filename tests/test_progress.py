"""intsim.core.progress: the progress bar of demo, compile and sweep."""

from __future__ import annotations

import io

import pytest

from intsim.core import progress as pg
from intsim.core.progress import Progress, hms


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_redraws_one_line():
    out = Tty()
    bar = Progress(4, out)
    bar.show("gemm.kernels")
    bar.step("gemm.kernels (1.0 s)")
    bar.show("ibert.softmax")
    bar.close()
    text = out.getvalue()
    assert text.startswith("\r[" + "." * 30 + "] 0/4 gemm.kernels")
    assert "\r[#######" + "." * 23 + "] 1/4 ibert.softmax" in text
    assert text.endswith("\n") and text.count("\n") == 1 and "\r[#######" + "." * 23 + "] 1/4 done" in text

    plain = io.StringIO()
    bar = Progress(2, plain)
    bar.show("a.b")
    bar.step("a.b (0.2 s)")
    bar.step("c.d (1.5 s) FAILED: KeyError")
    bar.close()
    assert plain.getvalue().splitlines() == ["[" + "#" * 15 + "." * 15 + "] 1/2 a.b (0.2 s)",
                                             "[" + "#" * 30 + "] 2/2 c.d (1.5 s) FAILED: KeyError"]


def test_quiet_prints_nothing_and_still_counts():
    for stream in (io.StringIO(), Tty()):
        bar = Progress(3, stream, quiet=True)
        bar.show("a")
        bar.step("a")
        bar.close()
        assert stream.getvalue() == "" and bar.done == 1


def test_time_left_from_the_rate_since_the_first_step(monkeypatch):
    clock = iter([0.0, 100.0, 110.0, 120.0, 130.0, 140.0])  # start-up 100 s, then 10 s per step
    monkeypatch.setattr(pg.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = Progress(4, out, eta=True, unit="points")
    bar.step()
    bar.step()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("1/4 points, 1:40 elapsed, ~? left")
    assert lines[1].endswith("2/4 points, 1:50 elapsed, ~0:20 left")


def test_a_pipe_gets_at_most_one_line_per_interval_and_always_the_last(monkeypatch):
    clock = iter([0.0] + [0.1 * i for i in range(1, 20)])
    monkeypatch.setattr(pg.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = Progress(5, out, min_interval=1.0)
    for k in range(5):
        bar.step(f"s{k}")
    assert [ln.split()[-1] for ln in out.getvalue().splitlines()] == ["s0", "s4"]


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (75.4, "1:15"), (3599.6, "1:00:00"), (3725, "1:02:05")])
def test_hms(seconds, text):
    assert hms(seconds) == text
