"""A dependency-free progress bar on stderr for long jobs (bulk import, re-drive).

On a terminal it redraws one line; otherwise (logs, CI) it writes a plain line at most
every few seconds, and always a final one.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30


class Progress:
    """Counts work done against an optional total and shows rate and completion."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.note = ""
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval_s if interval_s is not None else (0.2 if self._tty else 5.0)
        self._started = time.monotonic()
        self._shown = self._started  # the first line after one interval, not at once

    def advance(self, amount: int = 1, note: str | None = None) -> None:
        """Record ``amount`` more units done (and an optional short note)."""
        self.update(self.done + amount, note)

    def update(self, done: int, note: str | None = None) -> None:
        """Record the absolute amount done."""
        self.done = done
        if note is not None:
            self.note = note
        now = time.monotonic()
        if now - self._shown >= self._interval:
            self._shown = now
            self._draw(final=False)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        self._draw(final=True)

    def render(self) -> str:
        """The current progress line."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * _WIDTH)
            bar = "#" * filled + "." * (_WIDTH - filled)
            text = f"{self.label} [{bar}] {fraction:4.0%} {self.done}/{self.total}{unit}"
        else:
            text = f"{self.label} {self.done}{unit}"
        text += f" {rate:,.0f}{unit}/s {elapsed:.1f}s"
        return f"{text} {self.note}".rstrip()

    def _draw(self, *, final: bool) -> None:
        line = self.render()
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
