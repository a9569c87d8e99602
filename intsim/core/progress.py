"""The progress bar of intsim's long-running commands (demo, compile, sweep).

``[#########.....................] 12/40 0:07 elapsed, ~0:16 left  label``: on a terminal one
line redrawn in place (a newline only at :meth:`Progress.close`); on a pipe or a file one line per
update, at most every ``min_interval`` seconds (the last step always prints), so logs stay short.
The time left is estimated from the rate since the first finished step (start-up is not work).
``quiet`` silences it; warnings, errors and results are printed elsewhere and stay.

>>> import io
>>> out = io.StringIO()
>>> bar = Progress(2, out)
>>> bar.step("first")
>>> bar.step("second")
>>> print(out.getvalue(), end="")
[###############...............] 1/2 first
[##############################] 2/2 second
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "hms"]


def hms(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss`` from an hour on), rounded to the second: ``hms(75.4) == '1:15'``."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """A progress bar over ``total`` steps on ``stream`` (default stderr).

    ``eta``: show the elapsed time and an estimate of the time left; ``unit`` names what is counted
    (``12/40 points``). ``min_interval``: on a pipe
    or file, print at most one line per that many seconds (0: one per update). ``quiet``: print
    nothing. ``stream`` decides by its ``isatty()`` whether to redraw in place.
    """

    def __init__(self, total: int, stream: TextIO | None = None, *, quiet: bool = False, eta: bool = False,
                 min_interval: float = 0.0, width: int = 30, unit: str = "") -> None:
        self.total = max(0, int(total))
        self.stream = sys.stderr if stream is None else stream
        self.quiet, self.eta, self.min_interval, self.width = quiet, eta, float(min_interval), width
        self.unit = f" {unit}" if unit else ""
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.t0 = time.monotonic()
        self.t_first: float | None = None
        self.t_last = float("-inf")
        self.drawn = 0  # length of the line on a terminal, to blank what a shorter one leaves

    def _line(self, label: str, now: float) -> str:
        filled = self.width * min(self.done, self.total) // max(self.total, 1)
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}{self.unit}"
        if self.eta:
            rate = (now - self.t_first) / (self.done - 1) if self.t_first is not None and self.done > 1 else None
            left = "?" if rate is None else hms(rate * max(0, self.total - self.done))
            text += f", {hms(now - self.t0)} elapsed, ~{left} left"
        return f"{text} {label}".rstrip()

    def _draw(self, label: str, now: float | None = None) -> None:
        line = self._line(label, time.monotonic() if now is None else now)
        self.stream.write("\r" + line + " " * max(0, self.drawn - len(line)))
        self.drawn = len(line)
        self.stream.flush()

    def show(self, label: str) -> None:
        """Say what is being done now, without advancing (redrawn on a terminal; nothing on a pipe)."""
        if not self.quiet and self.tty:
            self._draw(label)

    def step(self, label: str = "", n: int = 1) -> None:
        """Advance by ``n`` (0: only a new label) and show ``label``."""
        self.done += n
        now = time.monotonic()
        if n and self.t_first is None:
            self.t_first = now
        if self.quiet:
            return
        if self.tty:
            self._draw(label, now)
            return
        if self.done < self.total and now - self.t_last < self.min_interval:
            return
        self.t_last = now
        self.stream.write(self._line(label, now) + "\n")
        self.stream.flush()

    def close(self, label: str = "done") -> None:
        """End the bar: on a terminal, a last redraw with ``label`` and the newline."""
        if not self.quiet and self.tty and self.drawn:
            self._draw(label)
            self.stream.write("\n")
            self.stream.flush()
