"""Oversized records never cost the withdrawals behind them (issue 13, item 1).

A consent record of nearly a megabyte is accepted by the broker, but a dead letter that
copied it whole would be larger than the worker's producer may send. The worker once
died on it, restarted, and moved its committed offsets past every record of the batch:
the withdrawals behind it were never applied and never dead-lettered. Now the dead
letter carries a bounded excerpt, the original's size and digest, and its coordinates.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from confluent_kafka import Producer

from schemas.deadletters import EXCERPT_BYTES
from schemas.events import DeadLettered, InstructionIssued
from schemas.taxonomy import Choice, Purpose

OVERSIZED = 6
WITHDRAWALS = 200
SIZE = 1_040_000


def test_oversized_records_are_dead_lettered_and_nothing_behind_them_is_lost(
    stream_kit: Any, events: Any
) -> None:
    kit = stream_kit
    topics = kit.topics
    big = Producer(kit.settings.producer_config(**{"message.max.bytes": 2_000_000}))
    values = [os.urandom(SIZE) for _ in range(OVERSIZED)]
    for n, value in enumerate(values):
        # Same key as nothing else: each lands where the hash puts it, before the
        # withdrawals of every partition.
        big.produce(topics.consent, value, key=f"huge-{n}".encode())
    assert big.flush(30) == 0
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
    letters: list[DeadLettered] = kit.wait_until(
        lambda: (found := dead.poll(0.3)) and len(found) >= OVERSIZED and found
    )
    assert len(letters) == OVERSIZED
    digests = {hashlib.sha256(v).hexdigest(): v for v in values}
    for letter in letters:
        assert letter.source_topic == topics.consent
        assert letter.stage == "stream.intake"
        assert letter.original_size == SIZE
        assert letter.original_sha256 in digests
        original = digests[letter.original_sha256]
        assert letter.original_value == original[:EXCERPT_BYTES]
        assert "excerpt" in letter.reason
    assert sorted(v for v in digests) == sorted(d.original_sha256 for d in letters)
