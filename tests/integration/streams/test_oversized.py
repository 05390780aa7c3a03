"""Oversized records never cost the withdrawals behind them (issue 13, item 1).

A consent record of nearly a megabyte is accepted by the broker, but a dead letter that
copied it whole would be larger than the worker's producer may send. The worker once
died on it, restarted, and moved its committed offsets past every record of the batch:
the withdrawals behind it were never applied and never dead-lettered. Now the dead
letter carries a bounded excerpt, the original's size and digest, and its coordinates.

The test first makes sure every oversized record is really stored, by reading the topic
back: a delivery report is not proof enough on a topic just created. When a partition's
leader is not ready yet, the broker refuses the producer's first batch (NOT_LEADER), the
next one, already in flight, is accepted, and librdkafka's idempotent producer then
reports the refused one as delivered too, with no offset ("implicitly acked";
confluentinc/confluent-kafka-go#921). Under load that took one of the records now and
then; the worker rightly dead-lettered the ones it had, and the test waited for a dead
letter that could never come.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from schemas.deadletters import EXCERPT_BYTES
from schemas.events import DeadLettered, InstructionIssued
from schemas.taxonomy import Choice, Purpose

OVERSIZED = 6
WITHDRAWALS = 200
SIZE = 1_040_000
BIG = 2_000_000
"""Message and fetch limit of the test's own clients, above the records' size."""


def store_oversized(kit: Any, values: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Produce ``values`` (each its own key) until the topic, read back, holds each of
    them; (partition, offset) -> value of every record it holds."""
    topic = kit.topics.consent
    big = Producer(kit.settings.producer_config(**{"message.max.bytes": BIG}))
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    stored: dict[tuple[int, int], bytes] = {}
    for _attempt in range(5):
        missing = [(n, v) for n, v in enumerate(values) if v not in stored.values()]
        if not missing:
            return stored
        for n, value in missing:
            big.produce(topic, value, key=f"huge-{n}".encode(), on_delivery=on_delivery)
        assert big.flush(30) == 0
        stored = _read_all(kit, topic)
    raise AssertionError(
        f"oversized records not stored: {len(stored)} of {len(values)}; {failures}"
    )


def _read_all(kit: Any, topic: str) -> dict[tuple[int, int], bytes]:
    """Every record of ``topic`` up to its end now; (partition, offset) -> value."""
    check = Consumer(
        kit.settings.consumer_config(
            f"oversized-check-{uuid.uuid4().hex}",
            **{"fetch.message.max.bytes": BIG, "fetch.max.bytes": BIG},
        )
    )
    try:
        partitions = check.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: check.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        check.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: dict[tuple[int, int], bytes] = {}
        deadline = time.monotonic() + 60
        while len(found) < sum(ends.values()) and time.monotonic() < deadline:
            for message in check.consume(100, timeout=0.5):
                if message.error() is None:
                    found[(message.partition() or 0, message.offset() or 0)] = (
                        message.value() or b""
                    )
        return found
    finally:
        check.close()


def test_oversized_records_are_dead_lettered_and_nothing_behind_them_is_lost(
    stream_kit: Any, events: Any
) -> None:
    kit = stream_kit
    topics = kit.topics
    # Same key as nothing else: each lands where the hash puts it, before the
    # withdrawals of every partition.
    stored = store_oversized(kit, [os.urandom(SIZE) for _ in range(OVERSIZED)])
    withdrawals = [
        events.changed(events.subject(), Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
        for _ in range(WITHDRAWALS)
    ]
    kit.publish(*withdrawals)
    kit.start_worker()

    reader = kit.instruction_reader()
    dead = kit.reader(topics.dead_letters)
    wanted = {w.event_id for w in withdrawals}

    def honoured() -> set[str]:
        return {i.event_id for i in reader.poll(0.3) if isinstance(i, InstructionIssued)} & wanted

    kit.wait_until(
        lambda: honoured() == wanted,
        describe=lambda: f"{len(honoured())} of {WITHDRAWALS} withdrawals routed",
    )

    def dead_lettered() -> dict[tuple[int, int], DeadLettered]:
        return {(d.source_partition, d.source_offset): d for d in dead.poll(0.3)}

    kit.wait_until(
        lambda: dead_lettered().keys() >= stored.keys(),
        describe=lambda: (
            f"no dead letter for {sorted(stored.keys() - dead_lettered().keys())}"
            f" of the oversized records at {sorted(stored)}"
        ),
    )
    letters = dead.poll(0.3)
    assert len(letters) == len(stored)
    for letter in letters:
        original = stored[(letter.source_partition, letter.source_offset)]
        assert letter.source_topic == topics.consent
        assert letter.stage == "stream.intake"
        assert letter.original_size == SIZE
        assert letter.original_sha256 == hashlib.sha256(original).hexdigest()
        assert letter.original_value == original[:EXCERPT_BYTES]
        assert "excerpt" in letter.reason
