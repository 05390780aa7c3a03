"""The marketing sink under the runner, in-process, against the real broker and registry:
apply, receipt, may-contact, retries while the store is locked, dead letters, bootstrap."""

from __future__ import annotations

import sqlite3
import threading
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import Contact, Decision, MarketingStore
from consumers.protocol import PermanentSinkError, RetriableSinkError, SinkResult
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import (
    ConsentEntry,
    ConsentStateRecorded,
    DeadLettered,
    InstructionIssued,
    PropagationReceipt,
    Subject,
    utc_now,
)
from schemas.partitioning import partition_for
from schemas.runtime.settings import Secret
from schemas.taxonomy import Action, Channel, Choice, Outcome, Purpose, Regime, SubjectKind
from tests.support.access import API_TOKEN, get_json

KEY = b"integration-key-0123456789"
FAST = RunnerSettings(
    poll_timeout_seconds=0.2,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.5,
    breaker_threshold=2,
    api_token=Secret(API_TOKEN),
)
EMAIL = (Channel.EMAIL, Purpose.MARKETING_EMAIL)


def open_store(path: Path, busy_timeout: float = 5.0) -> MarketingStore:
    return MarketingStore(
        Database(f"sqlite://{path}", busy_timeout=busy_timeout), AddressHasher(KEY)
    )


def runner_for(sink: Any, kit: Any) -> SinkRunner:
    return SinkRunner(sink, kit.settings, group_id=kit.group, metrics_port=0, options=FAST)


def receipts_by_instruction(reader: Any) -> dict[str, list[PropagationReceipt]]:
    found: dict[str, list[PropagationReceipt]] = {}
    for record in reader.poll(0.3):
        found.setdefault(record.instruction_id, []).append(record)
    return found


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


class RecordingSink(MarketingSink):
    """The real marketing sink, remembering the order instructions reached the store in,
    and optionally failing some of them first."""

    def __init__(
        self,
        store: MarketingStore,
        fail: Callable[[InstructionIssued, int], None] | None = None,
    ) -> None:
        super().__init__(store)
        self.calls: list[str] = []
        self.applied: list[str] = []
        self._fail = fail
        self._lock = threading.Lock()

    def _attempt(self, instruction: InstructionIssued) -> None:
        with self._lock:
            self.calls.append(instruction.instruction_id)
            attempt = self.calls.count(instruction.instruction_id)
        if self._fail is not None:
            self._fail(instruction, attempt)

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        self._attempt(instruction)
        result = super().apply(instruction)
        self.applied.append(instruction.instruction_id)
        return result

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        for instruction in instructions:
            self._attempt(instruction)  # a failure fails the whole batch, as the store would
        results = super().apply_batch(instructions)
        self.applied.extend(i.instruction_id for i in instructions)
        return results


def test_suppression_is_stored_and_receipted_and_may_contact_answers(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    store = open_store(tmp_path / "m.db")
    store.upsert_contact(Contact("subj-a", "a@example.com"))
    t0 = utc_now() - timedelta(seconds=10)
    withdrawn = sink_kit.instruction(Action.SUPPRESS, subject="subj-a", occurred_at=t0)
    other = sink_kit.instruction(
        Action.SUPPRESS, subject="subj-b", purposes=(Purpose.MARKETING_SMS,)
    )
    stale_grant = sink_kit.instruction(
        Action.ALLOW, subject="subj-a", occurred_at=t0 - timedelta(seconds=1)
    )
    not_mine = sink_kit.instruction(Action.SUPPRESS, subject="subj-c", destination="elsewhere")
    sink_kit.publish([withdrawn, other, stale_grant, not_mine])
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)

    runner = runner_for(MarketingSink(store), sink_kit)
    with sink_kit.running(runner):
        found = until(
            lambda: (r := receipts_by_instruction(receipts)) and len(r) >= 3 and r, timeout=60
        )
        assert store.may_contact("subj-a", *EMAIL) == Decision(False, "suppressed")
        assert not store.may_contact("subj-b", Channel.SMS, Purpose.MARKETING_SMS).allowed
        assert store.may_contact("subj-c", *EMAIL).allowed
        base = f"http://127.0.0.1:{runner.http_port}"
        answer = get_json(
            f"{base}/v1/may-contact?subject=subj-a&channel=EMAIL&purpose=MARKETING_EMAIL"
        )
        assert answer == {"allowed": False, "reason": "suppressed"}
        until(lambda: sink_kit.committed(sink_kit.instruction_topic) == 4, timeout=30)
        metrics = get_text(f"{base}/metrics")

    assert set(found) == {
        withdrawn.instruction_id,
        other.instruction_id,
        stale_grant.instruction_id,
    }
    first = found[withdrawn.instruction_id][0]
    assert (first.outcome, first.subject, first.event_id) == (
        Outcome.APPLIED,
        withdrawn.subject,
        withdrawn.event_id,
    )
    assert first.applied_at >= first.occurred_at
    assert found[stale_grant.instruction_id][0].outcome is Outcome.SKIPPED
    assert (
        'consent_relay_sink_instructions_total{destination="suppression_list",'
        'outcome="APPLIED",sink_family="MARKETING"} 2.0' in metrics
    )
    assert "consent_relay_propagation_seconds_count" in metrics
    assert "consent_relay_consumer_lag" in metrics
    assert "subj-a" not in metrics
    # Receipts go on their instruction's partition, the subject's, where the stream keeps
    # the subject's propagations (the topics are co-partitioned with the consent topic).
    partitions = sink_kit.settings.partitions
    for receipt, message in receipts.records:
        assert message.partition() == partition_for(receipt.subject.id.encode(), partitions)


def test_a_locked_store_holds_instructions_back_then_applies_each_once_in_order(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    db = tmp_path / "m.db"
    store = open_store(db, busy_timeout=0.05)
    sink = RecordingSink(store)
    t0 = utc_now() - timedelta(minutes=1)
    # One subject flips three times: order matters. Others just get suppressed.
    flips = [
        sink_kit.instruction(Action.SUPPRESS, subject="flipper", occurred_at=t0),
        sink_kit.instruction(
            Action.ALLOW, subject="flipper", occurred_at=t0 + timedelta(seconds=1)
        ),
        sink_kit.instruction(
            Action.SUPPRESS, subject="flipper", occurred_at=t0 + timedelta(seconds=2)
        ),
    ]
    others = [sink_kit.instruction(subject=f"other-{i}") for i in range(20)]
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = runner_for(sink, sink_kit)

    blocker = sqlite3.connect(db, isolation_level=None)
    locked = False
    try:
        with sink_kit.running(runner):
            until(runner.ready.is_set)
            blocker.execute("BEGIN EXCLUSIVE")  # the store is down (locked by another writer)
            locked = True
            sink_kit.publish(flips + others)
            until(lambda: len(sink.calls) >= 3, timeout=60)
            until(
                lambda: (
                    runner.metrics.circuit_breaker_open.labels("suppression_list")._value.get() == 1
                )
            )
            assert receipts_by_instruction(receipts) == {}
            assert sink_kit.committed(sink_kit.instruction_topic) == 0
            blocker.execute("ROLLBACK")
            locked = False
            until(lambda: len(receipts_by_instruction(receipts)) == 23, timeout=60)
            until(lambda: sink_kit.committed(sink_kit.instruction_topic) == 23, timeout=30)
            assert runner.metrics.circuit_breaker_open.labels("suppression_list")._value.get() == 0
            retries = runner.metrics.retries.labels("MARKETING", "suppression_list")._value.get()
    finally:
        if locked:
            blocker.execute("ROLLBACK")
        blocker.close()

    assert retries >= 2
    everything = flips + others
    assert sorted(sink.applied) == sorted(i.instruction_id for i in everything)  # each once
    flipper = [i for i in sink.applied if i in {f.instruction_id for f in flips}]
    assert flipper == [f.instruction_id for f in flips]
    assert store.may_contact("flipper", *EMAIL) == Decision(False, "suppressed")
    with store.database.reading() as tx:
        assert tx.rows("SELECT COUNT(*) FROM applied_instructions") == [(23,)]


def test_retriable_errors_from_the_sink_are_retried_with_backoff(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    batch = [sink_kit.instruction(subject="slow"), sink_kit.instruction(subject="slow")]

    def fail_three_times(instruction: InstructionIssued, attempt: int) -> None:
        if instruction.instruction_id == batch[0].instruction_id and attempt <= 3:
            raise RetriableSinkError("downstream timeout")

    sink = RecordingSink(open_store(tmp_path / "m.db"), fail_three_times)
    sink_kit.publish(batch)
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = runner_for(sink, sink_kit)
    with sink_kit.running(runner):
        found = until(lambda: (r := receipts_by_instruction(receipts)) and len(r) == 2 and r)
    assert sink.calls.count(batch[0].instruction_id) == 4
    assert sink.applied == [i.instruction_id for i in batch]
    assert {r[0].outcome for r in found.values()} == {Outcome.APPLIED}
    assert runner.metrics.retries.labels("MARKETING", "suppression_list")._value.get() == 3


def test_permanent_failures_and_garbage_are_dead_lettered_with_coordinates(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    def refuse(instruction: InstructionIssued, _attempt: int) -> None:
        if instruction.subject.id == "refused":
            raise PermanentSinkError("the list rejects this subject")

    sink = RecordingSink(open_store(tmp_path / "m.db"), refuse)
    bad = sink_kit.instruction(subject="refused")
    good = sink_kit.instruction(subject="fine")
    [bad_at] = sink_kit.publish([bad])
    [garbage_at] = sink_kit.publish_raw(b"some-key", b"\x00\x00\x00\x00\x07not avro")
    [good_at] = sink_kit.publish([good])
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    dead = sink_kit.reader(sink_kit.settings.topics.dead_letters)
    runner = runner_for(sink, sink_kit)
    with sink_kit.running(runner):
        letters: list[DeadLettered] = until(lambda: len(d := dead.poll(0.3)) >= 2 and d)
        found = until(lambda: (r := receipts_by_instruction(receipts)) and len(r) == 2 and r)
        until(lambda: sink_kit.committed(sink_kit.instruction_topic) == 3, timeout=30)

    by_offset = {(d.source_partition, d.source_offset): d for d in letters}
    refused = by_offset[(bad_at.partition, bad_at.offset)]
    assert refused.source_topic == bad_at.topic == sink_kit.instruction_topic
    assert refused.stage == "sink.marketing"
    assert refused.error_class == "PermanentSinkError"
    assert "rejects this subject" in refused.reason
    assert refused.original_key == b"refused"
    undecodable = by_offset[(garbage_at.partition, garbage_at.offset)]
    assert undecodable.original_value == b"\x00\x00\x00\x00\x07not avro"
    assert undecodable.error_class in {"UnknownSchemaError", "TruncatedMessageError"}
    assert undecodable.reason

    assert found[bad.instruction_id][0].outcome is Outcome.FAILED
    assert "rejects this subject" in (found[bad.instruction_id][0].reason or "")
    assert found[good.instruction_id][0].outcome is Outcome.APPLIED
    assert good_at.topic == sink_kit.instruction_topic
    assert (
        runner.metrics.dead_letters.labels("sink.marketing", "PermanentSinkError")._value.get() == 1
    )


def test_an_empty_store_is_seeded_from_the_consent_state_topic(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    t0 = utc_now() - timedelta(days=1)

    def state(subject: str, choice: Choice, **flags: bool) -> ConsentStateRecorded:
        entry = ConsentEntry(
            purpose=Purpose.MARKETING_EMAIL,
            regime=Regime.GDPR,
            choice=choice,
            occurred_at=t0,
            event_id=str(uuid.uuid4()),
        )
        return ConsentStateRecorded(
            subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
            entries=(entry,),
            updated_at=t0,
            **flags,
        )

    state_topic = sink_kit.settings.topics.state
    sink_kit.publish(
        [
            state("was-granted", Choice.GRANTED),
            state("withdrew", Choice.GRANTED),
            state("withdrew", Choice.WITHDRAWN),  # newer record for the same key
            state("restricted", Choice.GRANTED, restricted=True),
        ],
        topic=state_topic,
    )
    [garbage_at] = sink_kit.publish_raw(b"broken", b"not a state record", topic=state_topic)
    dead = sink_kit.reader(sink_kit.settings.topics.dead_letters)
    store = open_store(tmp_path / "m.db")
    assert store.needs_bootstrap()
    runner = runner_for(MarketingSink(store), sink_kit)
    with sink_kit.running(runner):
        until(runner.ready.is_set, timeout=60)
        [letter] = until(lambda: dead.poll(0.3))
        assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
            state_topic,
            garbage_at.partition,
            garbage_at.offset,
        )
        assert letter.error_class == "BadMagicByteError"
        assert not store.needs_bootstrap()
        assert store.may_contact("withdrew", *EMAIL) == Decision(False, "suppressed")
        assert store.may_contact("was-granted", *EMAIL) == Decision(True, "granted")
        assert store.may_contact("restricted", *EMAIL) == Decision(False, "restricted")
        # Instructions issued after the snapshot still apply on top of it.
        later = sink_kit.instruction(Action.ALLOW, subject="withdrew", occurred_at=utc_now())
        sink_kit.publish([later])
        until(lambda: store.may_contact("withdrew", *EMAIL).allowed, timeout=60)

    # A second start on the seeded store does not bootstrap again.
    assert not open_store(tmp_path / "m.db").needs_bootstrap()
