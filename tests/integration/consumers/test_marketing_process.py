"""``python -m consumers.marketing`` as a real process against the real broker:
SIGKILL mid-batch then restart loses nothing and applies each instruction once in
effect; SIGTERM finishes the instruction in flight, commits and exits 0."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.events import InstructionIssued, utc_now
from schemas.taxonomy import Action, Purpose
from tests.support.processes import free_port

KEY = "process-test-key-0123456789"


def applied_count(db: Path) -> int:
    """Instructions the sink has committed to its database (read from outside)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM applied_instructions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # tables not created yet
    finally:
        conn.close()


def suppressed_subjects(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT subject_id FROM suppressions WHERE suppressed = 1"
            " AND channel = 'EMAIL' AND purpose = 'MARKETING_EMAIL'"
        ).fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}


class SinkProcess:
    """One ``python -m consumers.marketing`` process with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumers.marketing"],
            env=env,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._handle.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(30)


@pytest.fixture
def sink_env(relay_env: dict[str, str], unique_group: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETING_SINK_")}
    env.update(relay_env)
    env.update(
        {
            "MARKETING_SINK_DATABASE_URL": f"sqlite://{tmp_path}/marketing.db",
            "MARKETING_SINK_HASH_KEY": KEY,
            "MARKETING_SINK_HTTP_PORT": str(free_port()),
            "MARKETING_SINK_HTTP_HOST": "127.0.0.1",
            "MARKETING_SINK_GROUP_ID": unique_group,
            # A restarted pod keeps its name: static membership gives its partitions back
            # at once instead of after the dead member's session timeout.
            "MARKETING_SINK_GROUP_INSTANCE_ID": f"{unique_group}-0",
            "MARKETING_SINK_POLL_TIMEOUT_SECONDS": "0.2",
            "MARKETING_SINK_BATCH_SIZE": "200",
        }
    )
    return env


@pytest.fixture
def processes() -> Iterator[list[SinkProcess]]:
    started: list[SinkProcess] = []
    yield started
    for process in started:
        process.stop()


def flipping_instructions(kit: Any, subjects: int, per_subject: int) -> list[InstructionIssued]:
    """Each subject alternates SUPPRESS/ALLOW with rising event times; interleaved."""
    t0 = utc_now() - timedelta(hours=1)
    out = []
    for step in range(per_subject):
        for s in range(subjects):
            action = Action.SUPPRESS if step % 2 == 0 else Action.ALLOW
            out.append(
                kit.instruction(
                    action,
                    subject=f"kill-{s:03d}",
                    purposes=(Purpose.MARKETING_EMAIL,),
                    occurred_at=t0 + timedelta(seconds=step),
                )
            )
    return out


def expected_suppressed(instructions: list[InstructionIssued]) -> set[str]:
    last: dict[str, Action] = {}
    for ins in instructions:  # event times rise with list order per subject
        last[ins.subject.id] = ins.action
    return {s for s, a in last.items() if a is Action.SUPPRESS}


def test_sigkill_mid_batch_then_restart_loses_nothing_and_applies_once(
    sink_kit: Any,
    sink_env: dict[str, str],
    processes: list[SinkProcess],
    until: Any,
    tmp_path: Path,
) -> None:
    db = tmp_path / "marketing.db"
    # 80 subjects x 25 steps; an odd step count leaves each subject suppressed... except
    # those we give one more grant below, so the final state is not uniform.
    instructions = flipping_instructions(sink_kit, subjects=80, per_subject=25)
    extra = [
        sink_kit.instruction(
            Action.ALLOW,
            subject=f"kill-{s:03d}",
            occurred_at=utc_now() - timedelta(minutes=1),
        )
        for s in range(0, 80, 3)
    ]
    instructions += extra
    total = len(instructions)
    sink_kit.publish(instructions)
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)

    first = SinkProcess(sink_env, tmp_path / "sink-1.log")
    processes.append(first)
    until(lambda: applied_count(db) >= 300, timeout=120, interval=0.02)
    first.signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL
    at_kill = applied_count(db)
    committed_at_kill = sink_kit.committed(sink_kit.instruction_topic)
    assert at_kill < total, "the kill came after everything was applied: raise the volume"
    # Nothing committed that is not applied (commit only after the effect is durable).
    assert committed_at_kill <= at_kill

    started = time.monotonic()
    second = SinkProcess(sink_env, tmp_path / "sink-2.log")
    processes.append(second)
    until(lambda: applied_count(db) == total, timeout=180, interval=0.2)
    catch_up = time.monotonic() - started
    until(lambda: sink_kit.committed(sink_kit.instruction_topic) == total, timeout=60)
    ids = {i.instruction_id for i in instructions}
    until(lambda: {r.instruction_id for r in receipts.poll(0.5)} >= ids, timeout=60)

    second.signal(signal.SIGTERM)
    assert second.wait(60) == 0

    assert applied_count(db) == total  # once each in the idempotency table
    assert {r.instruction_id for r in receipts.poll(0.5)} == ids
    assert suppressed_subjects(db) == expected_suppressed(instructions)
    print(
        f"\nkill test: {total} instructions, {at_kill} applied and {committed_at_kill} "
        f"committed at SIGKILL, restart caught up in {catch_up:.1f}s, "
        f"{len(receipts.records)} receipts for {len(ids)} instructions"
    )


def test_sigterm_finishes_in_flight_commits_and_exits_cleanly(
    sink_kit: Any,
    sink_env: dict[str, str],
    processes: list[SinkProcess],
    until: Any,
    tmp_path: Path,
) -> None:
    db = tmp_path / "marketing.db"
    instructions = flipping_instructions(sink_kit, subjects=50, per_subject=30)
    sink_kit.publish(instructions)
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)

    process = SinkProcess(sink_env, tmp_path / "sink.log")
    processes.append(process)
    until(lambda: applied_count(db) >= 200, timeout=120, interval=0.02)
    process.signal(signal.SIGTERM)
    stopping = time.monotonic()
    assert process.wait(60) == 0
    stop_seconds = time.monotonic() - stopping

    applied = applied_count(db)
    committed = sink_kit.committed(sink_kit.instruction_topic)
    # Every applied instruction was receipted and committed; nothing beyond it.
    assert committed == applied
    until(lambda: len({r.instruction_id for r in receipts.poll(0.5)}) >= applied, timeout=30)
    assert len({r.instruction_id for r in receipts.poll(0.2)}) == applied
    assert "sink runner stopped (clean)" in (tmp_path / "sink.log").read_text()
    print(
        f"\nsigterm test: stopped {stop_seconds:.2f}s after SIGTERM with {applied}/"
        f"{len(instructions)} applied and committed"
    )
