"""``python -m consumers.marketing`` as a real process against the real broker:
SIGKILL mid-batch then restart loses nothing and applies each instruction once in
effect; SIGTERM finishes the instruction in flight, commits and exits 0."""

from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from schemas.events import InstructionIssued, utc_now
from schemas.taxonomy import Action, Outcome, Purpose
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


class RegistryProxy:
    """A pass-through to the real schema registry that can hold the receipt's schema
    lookup: the sink has applied the instruction and not yet sent its receipt."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._base = parts.path
        self.holding = threading.Event()
        self.held = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._base}"

    def __enter__(self) -> RegistryProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.holding.clear()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receipt = "PropagationReceipt" in self.path or "InstructionsAnswered" in self.path
                if receipt and proxy.holding.is_set():
                    proxy.held.set()
                    deadline = time.monotonic() + 60
                    while proxy.holding.is_set() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.send_error(503)
                    return
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS
                    }
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    payload = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type") or "")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


FORWARDED_HEADERS = {"content-type", "accept", "authorization"}


def answered_count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM answered_instructions").fetchone()[0])
    finally:
        conn.close()


def test_killed_after_applying_before_its_receipt_the_restart_still_answers_it(
    sink_kit: Any,
    sink_env: dict[str, str],
    processes: list[SinkProcess],
    until: Any,
    tmp_path: Path,
) -> None:
    """SIGKILL lands after the instruction is durable in the store and before its receipt
    was sent: the restarted sink answers the redelivery (the receipt proves
    propagation), without applying it twice; a later duplicate gets nothing more."""
    db = tmp_path / "marketing.db"
    withdrawal = sink_kit.instruction(Action.SUPPRESS, subject="kill-after-apply")
    topic = sink_kit.instruction_topic
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    sink_kit.publish([withdrawal])
    with RegistryProxy(sink_kit.settings.registry_url) as registry:
        registry.holding.set()
        first = SinkProcess(
            {**sink_env, "SCHEMA_REGISTRY_URL": registry.url}, tmp_path / "sink-1.log"
        )
        processes.append(first)
        until(registry.held.is_set, timeout=120, interval=0.05)
        assert applied_count(db) == 1  # applied, and its receipt is being prepared
        first.signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    assert answered_count(db) == 0
    assert sink_kit.committed(topic) == 0
    assert receipts.poll(1.0) == []

    second = SinkProcess(sink_env, tmp_path / "sink-2.log")
    processes.append(second)
    [receipt] = until(lambda: receipts.poll(0.5), timeout=120)
    assert (receipt.instruction_id, receipt.outcome) == (withdrawal.instruction_id, Outcome.APPLIED)
    until(lambda: sink_kit.committed(topic) == 1, timeout=60)
    assert answered_count(db) == 1
    assert applied_count(db) == 1

    sink_kit.publish([withdrawal])  # the same instruction again
    until(lambda: sink_kit.committed(topic) == 2, timeout=60)
    second.signal(signal.SIGTERM)
    assert second.wait(60) == 0
    assert receipts.poll(1.0) == [receipt]
