"""Profiles of the relay's processes while they are under load, and their hot spots.

With ``--profile`` and py-spy installed in the virtualenv (``.venv/bin/pip install
py-spy``; it is not a project dependency), every relay process is sampled from outside
during each phase's measured window: ``py-spy record --gil --format raw`` writes
collapsed stacks of whichever thread holds the GIL (so waiting on sockets, locks and
librdkafka does not count; Python CPU does), and :func:`summarize` ranks functions by
self time and by inclusive time. Without py-spy, the stream worker runs under
``pyinstrument -r text`` instead (main thread only; written when it stops).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_RATE = 200
"""Samples per second py-spy takes."""


def py_spy() -> str | None:
    """The py-spy next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    """Samples, and the top functions by self and inclusive share, from collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        # The first frame names the process/thread in py-spy's raw output.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def ranked(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "share": round(n / total, 3)} for name, n in counter.most_common(top)
        ]

    return {"samples": total, "self": ranked(own), "inclusive": ranked(inclusive)}


def as_text(name: str, summary: dict[str, Any]) -> str:
    """A readable hot-spot list."""
    lines = [f"{name}: {summary['samples']} samples holding the GIL", "  self time:"]
    lines += [f"    {e['share']:6.1%}  {e['function']}" for e in summary["self"]]
    lines.append("  inclusive time:")
    lines += [f"    {e['share']:6.1%}  {e['function']}" for e in summary["inclusive"]]
    return "\n".join(lines)


@dataclass(slots=True)
class Recorder:
    """Runs py-spy against a set of processes for one window."""

    exe: str
    out_dir: Path
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def start(self, label: str, pids: dict[str, int], seconds: float) -> None:
        """Start sampling each process for ``seconds``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            raw = self.out_dir / f"{label}-{name}.raw.txt"
            popen = subprocess.Popen(
                [
                    self.exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(SAMPLE_RATE),
                    "--duration",
                    str(max(1, int(seconds))),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--gil",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.running[f"{label}-{name}"] = (popen, raw)

    def finish(self) -> dict[str, Any]:
        """Wait for the recordings; summaries by ``<label>-<process>``, also as text files."""
        summaries = {}
        for key, (popen, raw) in self.running.items():
            try:
                popen.wait(60)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)
            if raw.exists():
                summary = summarize(raw)
                summaries[key] = summary
                (self.out_dir / f"{key}.top.txt").write_text(as_text(key, summary) + "\n")
        self.running.clear()
        return summaries
