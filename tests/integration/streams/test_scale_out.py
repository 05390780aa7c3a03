"""Two workers share the partitions; one is SIGKILLed mid-stream. Every withdrawal still
reaches every instruction topic it must, and is recorded exactly once in effect:
duplicates may appear on the topics (at-least-once), but deduplicated by instruction id
nothing is missing and nothing extra, and each withdrawal has one propagation record.

"Mid-stream" holds however slowly the workers start (a busy machine): publishing begins
once both own consent partitions, and the last part of the stream is published only
after the kill."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from schemas.taxonomy import Choice, Purpose, Right
from streams.proof import query

WITHDRAWALS = 400
OBJECTIONS = 40
OBJECTION_DESTINATIONS = 11
PACE_SECONDS = 12.0
HELD_BACK = 100
"""Events of the stream published only after the kill."""


def _iid(event_id: str, family: str, destination: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{family}/{destination}"))


def test_sigkill_of_one_worker_loses_nothing(stream_kit: Any, events: Any) -> None:
    kit = stream_kit
    topics = kit.topics
    withdrawals = [
        events.changed(events.subject(), Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
        for _ in range(WITHDRAWALS)
    ]
    objections = [
        events.right(events.subject(), Right.OBJECT_TO_DIRECT_MARKETING) for _ in range(OBJECTIONS)
    ]
    stream = withdrawals + objections
    stream.sort(key=lambda e: e.event_id)  # interleave the two kinds
    expected = {_iid(e.event_id, "MARKETING", "suppression_list") for e in withdrawals}
    partners: tuple[str, ...] = ("google", "facebook", "instagram", "twitter", "vkontakte")
    partners += ("criteo", "bing", "yahoo", "mail_ru", "yandex")
    for e in objections:
        expected.add(_iid(e.event_id, "MARKETING", "suppression_list"))
        expected.update(_iid(e.event_id, "PARTNER_SHARING", p) for p in partners)
    assert len(expected) == WITHDRAWALS + OBJECTIONS * OBJECTION_DESTINATIONS

    victim = kit.start_worker()
    survivor = kit.start_worker()
    # Both own consent partitions before anything is published, so both get some of it.
    admin = AdminClient(kit.settings.admin_config())
    kit.wait_until(lambda: _consent_owners(admin, kit.app_id_full, topics.consent) == 2)
    published = threading.Event()
    killed = threading.Event()

    def publish_paced() -> None:
        chunk = 10
        for start in range(0, len(stream), chunk):
            if start == len(stream) - HELD_BACK:
                # The rest once a worker is killed: the kill lands while the stream
                # flows, however long the workers took to start processing it.
                killed.wait(300)
            kit.publish(*stream[start : start + chunk])
            time.sleep(PACE_SECONDS * chunk / len(stream))
        published.set()

    publisher = threading.Thread(target=publish_paced, daemon=True)
    publisher.start()

    def processed(worker: Any) -> float:
        return sum(
            kit.metric(
                worker.url, "consent_relay_stream_events_total", event_type=t, status="applied"
            )
            or 0
            for t in ("ConsentChanged", "RightsRequested")
        )

    # Both workers own partitions and are processing: kill one mid-stream.
    kit.wait_until(lambda: processed(victim) > 0 and processed(survivor) > 0)
    assert not published.is_set()
    victim.kill()
    killed.set()

    readers = [kit.instruction_reader()]
    by_iid = {}
    for e in stream:
        for f, d in [
            ("MARKETING", "suppression_list"),
            *(("PARTNER_SHARING", p) for p in partners),
        ]:
            by_iid[_iid(e.event_id, f, d)] = e.event_id

    def where(missing: set[str]) -> list[tuple[int, int]]:
        consent = kit.reader(topics.consent)
        consent.poll(3)
        offsets = {}
        for record, (partition, offset) in zip(consent.records, consent.coordinates, strict=True):
            offsets[record.event_id] = (partition, offset)
        return sorted({offsets[by_iid[i]] for i in missing if by_iid[i] in offsets})

    def seen() -> Counter[str]:
        return Counter(i.instruction_id for r in readers for i in r.poll(0.3))

    kit.wait_until(published.is_set)
    publisher.join(10)
    kit.wait_until(
        lambda: expected <= set(seen()),
        timeout=120,
        describe=lambda: (
            f"{len(expected - set(seen()))} of {len(expected)} instructions "
            f"missing; the survivor processed {processed(survivor)} events; "
            f"missing events at {where(expected - set(seen()))}; "
            f"its tasks:\n{survivor.dump_tasks()}"
        ),
    )
    counts = seen()
    assert set(counts) == expected, "instructions that no withdrawal asked for"
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\n{len(expected)} instructions, {duplicates} duplicates on the topics after SIGKILL")

    # Each withdrawal is recorded once in the propagation table the survivor now owns.
    def records() -> Counter[str] | None:
        pending, _done = query.read_changelogs(kit.settings, kit.app_id_full)
        found = Counter(r.event_id for holder in pending.values() for r in holder.pending)
        return found if len(found) == len(stream) else None

    recorded = kit.wait_until(records)
    assert set(recorded) == {e.event_id for e in stream}
    assert set(recorded.values()) == {1}
    assert kit.metric(survivor.url, "consent_relay_pending_withdrawals") is not None


def _consent_owners(admin: AdminClient, group: str, consent: str) -> int:
    """How many members of the workers' group hold partitions of the consent topic."""
    try:
        described = admin.describe_consumer_groups([group])[group].result(30)
    except KafkaException:
        return 0  # not there yet: no worker has joined
    return sum(
        any(tp.topic == consent for tp in member.assignment.topic_partitions)
        for member in described.members
    )
