"""CPU time, time waiting for a CPU and peak memory of a process, read from ``/proc``
(Linux; no psutil).

``/proc/<pid>/stat`` gives user and system CPU in clock ticks (all threads);
``/proc/<pid>/task/<tid>/schedstat`` gives each thread's time spent ready to run but
waiting for a core (its second field, ns): on a machine whose cores the broker, the
relay and the load generator share, the part of a process's latency that is nobody's
code; ``/proc/<pid>/status`` gives ``VmHWM``, the peak resident set size. A process that
has gone away reads as ``None`` rather than an error: the report says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_TICKS: Final = os.sysconf("SC_CLK_TCK")
_UTIME: Final = 11
"""utime is field 14 of /proc/<pid>/stat and stime field 15; after ``(comm)`` the split
fields start at field 3 (state)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A process's cumulative CPU seconds and peak RSS at one moment."""

    cpu_seconds: float
    peak_rss_mb: float
    thread_waits: Mapping[int, float] | None = None
    """Thread id → seconds it has spent ready to run, waiting for a core (None: the
    kernel keeps no scheduler statistics)."""


def sample(pid: int) -> Sample | None:
    """CPU seconds so far and peak RSS of ``pid``; None if it no longer exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[_UTIME]), int(fields[_UTIME + 1])
    peak_kb = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
            break
    return Sample((utime + stime) / _TICKS, peak_kb / 1024, _waited(pid))


def _waited(pid: int) -> dict[int, float] | None:
    """Thread id → seconds that thread of ``pid`` has spent runnable, waiting for a core."""
    waits = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return None
    for task in tasks:
        try:
            waits[int(task.name)] = int((task / "schedstat").read_text().split()[1]) / 1e9
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        except (IndexError, ValueError):
            return None
    return waits


def longest_wait(before: Sample, after: Sample) -> float | None:
    """Seconds the thread that waited most between two samples of a process spent ready
    to run but waiting for a core (a thread started in between counts from zero); None
    without scheduler statistics.

    The busiest thread, not the sum: a process of many threads (a sink's pipelines, the
    broker's handlers) would otherwise add up waits that overlap in time, and the
    latency of a path through it is the wait of the thread that carries it.
    """
    if before.thread_waits is None or after.thread_waits is None:
        return None
    start = before.thread_waits
    return max(
        (waited - start.get(tid, 0.0) for tid, waited in after.thread_waits.items()),
        default=0.0,
    )


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (any address), if we may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
    return None
