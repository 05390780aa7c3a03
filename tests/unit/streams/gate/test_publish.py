"""The gate hands a batch's output to the producer and takes the next batch without
waiting for the broker; a batch's offsets are stored, and its events counted, only once
every record of it and of every earlier batch is reported stored. librdkafka reports a
record it acknowledged implicitly (the broker may not hold it) as a success without an
offset: such a batch is published again first (fake clients: nothing is sent)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from schemas.runtime import confirming_producer as confirming_module
from schemas.runtime.backoff import Backoff
from schemas.runtime.kafka import KafkaSettings
from streams.gate import loop
from streams.gate.coverage import Coverage
from streams.gate.judge import GateBatch
from streams.gate.loop import Gate
from streams.gate.metrics import GateMetrics
from streams.gate.settings import GateSettings


class Report:
    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


class FakeProducer:
    """Reports every record handed to it at the next poll or flush, with an offset, or
    without one (an implicit acknowledgement) for the records numbered in ``implicit``."""

    made: list[FakeProducer] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.produced: list[bytes] = []
        self.flushes = 0
        self.implicit: set[int] = set()
        self._unreported: list[tuple[int, Any]] = []
        FakeProducer.made.append(self)

    def produce(self, topic: str, value: bytes, key: bytes, partition: int, **kw: Any) -> None:
        self._unreported.append((len(self.produced), kw["on_delivery"]))
        self.produced.append(value)

    def poll(self, timeout: float) -> int:
        reports, self._unreported = self._unreported, []
        for n, report in reports:
            report(None, Report(None if n in self.implicit else 100 + n))
        return len(reports)

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        self.poll(timeout)
        return 0


class FakeConsumer:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.stored: list[list[tuple[int, int]]] = []

    def store_offsets(self, *, offsets: list[TopicPartition]) -> None:
        self.stored.append([(tp.partition, tp.offset) for tp in offsets])


class Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class Judge:
    """Allows every data event: one output record per message, its offset as the value."""

    def judge(self, messages: list[Message]) -> GateBatch:
        batch = GateBatch()
        for m in messages:
            batch.out.append(("t-allowed", b"k", f"{m.offset()}".encode(), m.partition()))
            batch.events[("DataEventCaptured", "allowed")] += 1
        return batch


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    FakeProducer.made = []
    monkeypatch.setattr(confirming_module, "Producer", FakeProducer)
    monkeypatch.setattr(loop, "Consumer", FakeConsumer)
    monkeypatch.setattr(loop, "RETRY", Backoff(initial=0.001, maximum=0.001))
    kafka = KafkaSettings(
        bootstrap="127.0.0.1:9",
        registry_url="http://127.0.0.1:9",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
    )
    built = Gate(kafka, GateSettings(), GateMetrics.create(CollectorRegistry()))
    built.judge = Judge()  # type: ignore[assignment]
    monkeypatch.setattr(built, "_await_coverage", lambda partitions: None)
    for p in (0, 1):
        built.coverage[p] = Coverage()
    yield built
    if built.membership is not None:
        built.membership.release()


def producer(gate: Gate) -> FakeProducer:
    return gate.producer.client  # type: ignore[return-value]


def stored(gate: Gate) -> list[list[tuple[int, int]]]:
    return gate.consumer.stored  # type: ignore[attr-defined,no-any-return]


def allowed(gate: Gate) -> float:
    counted = gate.metrics.events.labels("DataEventCaptured", "allowed")._value.get()
    return float(counted)


def test_the_next_batch_is_taken_without_waiting_for_the_last_ones_acknowledgements(
    gate: Gate,
) -> None:
    gate._process([Message(0, 4), Message(1, 7)])  # type: ignore[list-item]
    gate._process([Message(0, 5)])  # type: ignore[list-item]
    # No round trip to the broker between two batches.
    assert producer(gate).flushes == 0
    assert stored(gate) == []
    assert allowed(gate) == 0  # counted once published, not before
    gate._land()
    assert stored(gate) == [[(0, 6), (1, 8)]]
    assert gate.uncommitted == {0: 6, 1: 8}
    assert allowed(gate) == 3


def test_a_record_acknowledged_without_an_offset_is_published_again_first(gate: Gate) -> None:
    producer(gate).implicit = {0}  # the first batch's first record
    gate._process([Message(0, 4), Message(0, 5)])  # type: ignore[list-item]
    gate._process([Message(0, 6)])  # type: ignore[list-item]
    gate._land()
    # The first batch again (both its records), and only then both batches' offsets.
    assert producer(gate).produced == [b"4", b"5", b"6", b"4", b"5"]
    assert stored(gate) == [[(0, 6)], [(0, 7)]]
    assert allowed(gate) == 3


def test_a_stop_leaves_an_unconfirmed_batch_and_every_later_one_uncommitted(
    gate: Gate,
) -> None:
    producer(gate).implicit = {0}
    gate._process([Message(0, 4)])  # type: ignore[list-item]
    gate._process([Message(1, 9)])  # type: ignore[list-item]
    gate.stop()
    with pytest.raises(loop.Interrupted):
        gate._land()
    assert stored(gate) == []
    assert len(gate.flights) == 0
    gate._process([Message(1, 10)])  # type: ignore[list-item]
    assert len(gate.flights) == 0  # read once ending: never published, never stored


def test_a_revoked_partitions_published_batches_are_confirmed_and_committed_first(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed: list[list[tuple[int, int]]] = []

    def commit(*, offsets: list[TopicPartition], asynchronous: bool) -> None:
        committed.append([(tp.partition, tp.offset) for tp in offsets])

    monkeypatch.setattr(gate.consumer, "commit", commit, raising=False)
    monkeypatch.setattr(gate.follower, "unfollow", lambda partitions: None)
    gate._process([Message(0, 4), Message(1, 7)])  # type: ignore[list-item]
    gate._revoked(gate.consumer, [TopicPartition("t-data", 1)])
    assert committed == [[(1, 8)]]
    assert gate.uncommitted == {0: 5}
    assert 1 not in gate.coverage
