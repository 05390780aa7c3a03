"""The analytics sink against the real broker and a real SQLite analytics store.

The store is filled with analytics events first; then instructions flow through the
real runner and the test checks the store itself (the processing view, the opt-out
list, erased rows), the may-process HTTP answer, receipts and metrics. While the
database is locked nothing is lost: instructions wait, and are applied once, in order,
when it is free again.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from consumers.analytics.__main__ import build
from consumers.analytics.settings import AnalyticsSinkSettings
from consumers.analytics.sink import DESTINATION
from consumers.analytics.store import AnalyticsRecord
from consumers.runner import SinkRunner
from schemas.events import ConsentEntry, ConsentStateRecorded, PropagationReceipt, Subject
from schemas.runtime.settings import Secret
from schemas.taxonomy import Action, Choice, Outcome, Purpose, Regime, SinkFamily, SubjectKind
from tests.support.access import API_TOKEN, get

FAMILY = SinkFamily.ANALYTICS
STATS = Purpose.RESEARCH_AND_STATISTICS
COOKIES = Purpose.COOKIES_STATISTICS
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def settings(tmp_path: Path, group: str) -> AnalyticsSinkSettings:
    return AnalyticsSinkSettings(
        database=tmp_path / "analytics.sqlite",
        group_id=group,
        busy_timeout_seconds=0.2,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.5,
        poll_timeout_seconds=0.2,
        http_host="127.0.0.1",
        api_token=Secret(API_TOKEN),
    )


def fill(store: Any, subjects: list[Subject], per_subject: int = 3) -> None:
    store.add_events(
        AnalyticsRecord(
            event_id=f"{s.id}-{purpose.value}-{n}",
            subject=s,
            purpose=purpose,
            name="page_view",
            occurred_at=T0 + timedelta(minutes=n),
            payload=json.dumps({"page": f"/p/{n}"}),
        )
        for s in subjects
        for purpose in (STATS, COOKIES)
        for n in range(per_subject)
    )


def count(db: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def may_process(port: int, subject_id: str, purpose: Purpose | None = None) -> bool:
    query = {"subject_id": subject_id} | ({"purpose": purpose.value} if purpose else {})
    url = f"http://127.0.0.1:{port}/may-process?{urllib.parse.urlencode(query)}"
    answer = get(url)
    assert answer.status == 200, answer
    return bool(answer.json()["may_process"])


def metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def receipts_for(reader: Any, ids: set[str]) -> dict[str, PropagationReceipt]:
    return {
        r.instruction_id: r
        for r in reader.poll()
        if isinstance(r, PropagationReceipt) and r.instruction_id in ids
    }


def test_each_action_reaches_the_store_with_receipts_and_bootstrap(
    tmp_path: Path, sink_kit: Any, until: Callable[..., Any]
) -> None:
    acct = {n: Subject(id=f"acct-an-{n}", kind=SubjectKind.ACCOUNT) for n in "abcdef"}
    device = Subject(id="dev-an-1", kind=SubjectKind.DEVICE)
    options = settings(tmp_path, sink_kit.group)
    sink = build(options)
    fill(sink.store, [*acct.values(), device])
    db = options.database

    # acct-e withdrew cookie statistics before this sink existed: bootstrap must know.
    sink_kit.publish(
        [
            ConsentStateRecorded(
                subject=acct["e"],
                entries=(
                    ConsentEntry(
                        purpose=COOKIES,
                        regime=Regime.GDPR,
                        choice=Choice.WITHDRAWN,
                        occurred_at=T0,
                        event_id="state-e",
                    ),
                ),
                updated_at=T0,
            )
        ],
        topic=sink_kit.settings.topics.state,
    )

    def ins(subject: Subject, action: Action, purposes: tuple[Purpose, ...], minute: int) -> Any:
        made = sink_kit.instruction(
            action,
            subject=subject.id,
            purposes=purposes,
            occurred_at=T0 + timedelta(days=1, minutes=minute),
            destination=DESTINATION,
            family=FAMILY,
        )
        # sink_kit makes ACCOUNT subjects; keep the device a device.
        return made if subject.kind is SubjectKind.ACCOUNT else replace(made, subject=subject)

    suppress_a = ins(acct["a"], Action.SUPPRESS, (STATS,), 0)
    batch = [
        suppress_a,
        ins(acct["b"], Action.ERASE, (), 0),
        ins(acct["c"], Action.RESTRICT, (), 0),
        ins(acct["d"], Action.RESTRICT, (), 0),
        ins(acct["d"], Action.LIFT_RESTRICTION, (), 1),
        ins(device, Action.SUPPRESS, (), 0),
    ]
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = SinkRunner(sink, sink_kit.settings, options=options, metrics_port=0)
    with sink_kit.running(runner):
        assert runner.ready.wait(60)
        assert runner.http_port is not None
        port = runner.http_port
        sink_kit.publish(batch, topic=sink_kit.settings.topics.instructions(FAMILY))
        ids = {i.instruction_id for i in batch}
        got = until(lambda: (r := receipts_for(receipts, ids)).keys() == ids and r, timeout=60)
        assert {r.outcome for r in got.values()} == {Outcome.APPLIED}

        assert not may_process(port, acct["a"].id, STATS)
        assert may_process(port, acct["a"].id, COOKIES)
        assert not may_process(port, acct["c"].id)
        assert may_process(port, acct["d"].id)
        assert not may_process(port, device.id, COOKIES)
        assert not may_process(port, acct["e"].id, COOKIES), "seeded from the consent state"
        assert may_process(port, acct["f"].id)

        # A later ALLOW, then the old SUPPRESS delivered again: the answered duplicate
        # costs nothing (no second effect, no second receipt).
        allow_a = ins(acct["a"], Action.ALLOW, (STATS,), 5)
        sink_kit.publish([allow_a, suppress_a], topic=sink_kit.settings.topics.instructions(FAMILY))
        until(lambda: allow_a.instruction_id in receipts_for(receipts, {allow_a.instruction_id}))
        labels = {"sink_family": "ANALYTICS", "destination": DESTINATION}
        until(lambda: metric(port, "consent_relay_sink_duplicates_total", **labels) == 1)
        answers = [
            r
            for r in receipts.poll()
            if isinstance(r, PropagationReceipt) and r.instruction_id == suppress_a.instruction_id
        ]
        assert len(answers) == 1
        assert may_process(port, acct["a"].id, STATS)
        applied = metric(port, "consent_relay_sink_instructions_total", **labels, outcome="APPLIED")
        assert applied == len(batch) + 1

    assert count(db, "SELECT count(*) FROM applied_instructions") == len(batch) + 1
    assert (
        count(db, "SELECT count(*) FROM analytics_events WHERE subject_id = ?", acct["b"].id) == 0
    )
    per_subject = 6
    processable = "SELECT count(*) FROM processable_events WHERE subject_id = ?"
    assert count(db, processable, acct["a"].id) == per_subject
    assert count(db, processable, acct["c"].id) == 0
    assert count(
        db, "SELECT count(*) FROM analytics_events WHERE subject_id = ?", acct["c"].id
    ) == (per_subject), "restricted records are kept, only isolated"
    assert count(db, processable, acct["d"].id) == per_subject
    assert count(db, processable, device.id) == 0
    assert count(db, processable, acct["e"].id) == per_subject // 2
    assert count(db, processable, acct["f"].id) == per_subject


def test_locked_store_makes_instructions_wait_then_applies_them_once_in_order(
    tmp_path: Path, sink_kit: Any, until: Callable[..., Any]
) -> None:
    options = settings(tmp_path, sink_kit.group)
    sink = build(options)
    subjects = [Subject(id=f"acct-lock-{n}", kind=SubjectKind.ACCOUNT) for n in range(5)]
    fill(sink.store, subjects)
    sink.bootstrap_finished()
    batch = [
        sink_kit.instruction(
            action,
            subject=s.id,
            purposes=(STATS,),
            occurred_at=T0 + timedelta(days=1, seconds=step),
            destination=DESTINATION,
            family=FAMILY,
        )
        for s in subjects
        for step, action in enumerate((Action.SUPPRESS, Action.ALLOW, Action.SUPPRESS))
    ]
    ids = {i.instruction_id for i in batch}
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = SinkRunner(sink, sink_kit.settings, options=options, metrics_port=0)
    blocker = sqlite3.connect(options.database, isolation_level=None)
    with sink_kit.running(runner):
        assert runner.ready.wait(60)
        port = runner.http_port
        assert port is not None
        blocker.execute("BEGIN EXCLUSIVE")
        sink_kit.publish(batch, topic=sink_kit.settings.topics.instructions(FAMILY))
        retries = "consent_relay_sink_retries_total"
        until(lambda: metric(port, retries, sink_family="ANALYTICS", destination=DESTINATION) >= 3)
        gauge = "consent_relay_circuit_breaker_open"
        assert metric(port, gauge, destination=DESTINATION) == 1
        assert receipts_for(receipts, ids) == {}, "nothing may be receipted while the store is down"
        blocker.execute("ROLLBACK")
        blocker.close()

        until(lambda: receipts_for(receipts, ids).keys() == ids, timeout=60)
        assert metric(port, gauge, destination=DESTINATION) == 0
    db = options.database
    assert count(db, "SELECT count(*) FROM applied_instructions") == len(batch)
    # The last choice per subject (SUPPRESS) wins: applied in order.
    assert count(db, "SELECT count(*) FROM analytics_opt_outs WHERE opted_out = 1") == len(subjects)
    assert count(db, "SELECT count(*) FROM processable_events WHERE purpose = ?", STATS.value) == 0
