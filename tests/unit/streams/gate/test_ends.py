"""The gate asks where partitions end with a consumer of its own that never fetches,
reading uncommitted (the high watermark, as the admin client did); an answer that
names no end is an error, never "empty" (fake consumer: nothing is sent)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from schemas.runtime.kafka import KafkaSettings
from streams.gate import loop
from streams.gate.ends import LATEST, EndOffsets, EndUnknownError
from streams.gate.loop import Gate
from streams.gate.metrics import GateMetrics
from streams.gate.settings import GateSettings


class Asked:
    """Answers offsets_for_times with ``answers`` (partition → offset or KafkaError)."""

    def __init__(self, answers: dict[int, int | KafkaError]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int, int]] = []

    def offsets_for_times(self, asked: list[TopicPartition], timeout: float) -> Any:
        self.asked.extend((tp.topic, tp.partition, tp.offset) for tp in asked)
        out = []
        for tp in asked:
            answer = self.answers[tp.partition]
            failed = isinstance(answer, KafkaError)
            offset = -1 if failed else answer
            error = answer if failed else None
            out.append(SimpleNamespace(partition=tp.partition, offset=offset, error=error))
        return out


def test_ends_are_asked_as_latest_and_read_off_the_answer() -> None:
    consumer = Asked({0: 12, 3: 0})
    ends = EndOffsets(consumer)  # type: ignore[arg-type]
    assert ends.ask("t-consent", [0, 3], timeout=1.0) == {0: 12, 3: 0}
    assert consumer.asked == [("t-consent", 0, LATEST), ("t-consent", 3, LATEST)]


def test_a_partition_without_an_end_fails_the_question() -> None:
    # -1 taken as an end would let a batch pass before intake applied the consent.
    with pytest.raises(EndUnknownError):
        EndOffsets(Asked({0: 12, 1: -1})).ask("t-consent", [0, 1], timeout=1.0)  # type: ignore[arg-type]
    refused = Asked({0: KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)})
    with pytest.raises(KafkaException):
        EndOffsets(refused).ask("t-consent", [0], timeout=1.0)  # type: ignore[arg-type]


class FakeConsumer:
    made: list[FakeConsumer] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        FakeConsumer.made.append(self)


def test_the_gate_asks_with_a_client_that_reads_uncommitted_and_joins_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeConsumer.made = []
    monkeypatch.setattr(loop, "Consumer", FakeConsumer)
    kafka = KafkaSettings(
        bootstrap="127.0.0.1:9",
        registry_url="http://127.0.0.1:9",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
    )
    gate = Gate(kafka, GateSettings(), GateMetrics.create(CollectorRegistry()))
    asking = gate.ends.consumer.config  # type: ignore[attr-defined]
    assert asking["isolation.level"] == "read_uncommitted"
    assert asking["group.id"] == f"{gate.group}.ends"
    assert asking["enable.auto.commit"] is False
    assert "group.instance.id" not in asking
