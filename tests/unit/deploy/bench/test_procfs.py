"""What the bench reads of a process from /proc (deploy.bench.procfs, deploy.bench.phases)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from deploy.bench import procfs
from deploy.bench.phases import cpu_meter
from deploy.bench.report import _wait_rows


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_process_reads_its_cpu_its_wait_for_a_core_and_its_peak_memory() -> None:
    first = procfs.sample(os.getpid())
    _spin(0.05)
    second = procfs.sample(os.getpid())
    assert first is not None
    assert second is not None
    assert second.cpu_seconds >= first.cpu_seconds
    assert second.peak_rss_mb > 0
    assert first.thread_waits is not None
    assert os.getpid() in first.thread_waits  # the main thread's id is the process's
    waited = procfs.longest_wait(first, second)
    assert waited is not None
    assert waited >= 0


def test_processes_competing_for_fewer_cores_than_they_need_are_seen_waiting() -> None:
    cores = len(os.sched_getaffinity(0))
    spin = "import time\nend = time.monotonic() + 0.5\nwhile time.monotonic() < end: pass"
    children = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores * 3)]
    cpu: dict[str, float | None] = {}
    peaks: dict[str, float] = {}
    waits: dict[str, float | None] = {}
    try:
        with cpu_meter({str(c.pid): c.pid for c in children}, cpu, peaks, waits=waits):
            time.sleep(0.3)
    finally:
        for child in children:
            child.wait()
    assert all(waited is not None for waited in waits.values())
    assert sum(w for w in waits.values() if w is not None) > 0
    assert sum(c for c in cpu.values() if c is not None) > 0


def test_a_process_that_has_gone_reads_as_nothing() -> None:
    assert procfs.sample(2**22 + 12345) is None
    assert procfs._waited(2**22 + 12345) is None


def test_the_longest_wait_is_the_thread_that_waited_most_and_new_threads_count_from_zero() -> None:
    before = procfs.Sample(1.0, 10.0, {1: 0.5, 2: 0.1})
    after = procfs.Sample(2.0, 10.0, {1: 0.6, 2: 0.4, 3: 0.25})
    assert procfs.longest_wait(before, after) == pytest.approx(0.3)
    assert procfs.longest_wait(procfs.Sample(1.0, 10.0), after) is None


def test_the_report_shows_each_process_wait_and_a_dash_where_unknown() -> None:
    phases = [
        {"name": "idle", "cpu_wait_percent": {"stream-worker-0": 3.2}},
        {"name": "1000/s", "cpu_wait_percent": {"stream-worker-0": 34.5, "kafka broker": None}},
    ]
    rows = _wait_rows(phases, ["stream-worker-0", "kafka broker"])
    assert rows == [["stream-worker-0", "3%", "34%"], ["kafka broker", "-", "-"]]
