"""The gate counts a batch published only when every record's delivery report carries an
offset: librdkafka reports a record it acknowledged implicitly (the broker may not hold
it) as a success without one (fake producer and consumers: nothing is sent)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.kafka import KafkaSettings
from streams.gate import loop
from streams.gate.judge import PublishError
from streams.gate.loop import Gate
from streams.gate.metrics import GateMetrics
from streams.gate.settings import GateSettings


class FakeMessage:
    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


class FakeProducer:
    """Reports each record at flush like librdkafka: with the offset the test chose for
    it, and (``delivery.report.only.error``) not at all when nothing failed."""

    offsets: list[int | None] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self._report = config["on_delivery"]
        self._only_errors = config.get("delivery.report.only.error", False)
        self._queued = 0

    def produce(self, *_: Any) -> None:
        self._queued += 1

    def flush(self, timeout: float) -> int:
        for offset in FakeProducer.offsets[: self._queued]:
            if not self._only_errors:  # an implicit ack is reported as no error
                self._report(None, FakeMessage(offset))
        self._queued = 0
        return 0


class FakeConsumer:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(loop, "Producer", FakeProducer)
    monkeypatch.setattr(loop, "Consumer", FakeConsumer)
    kafka = KafkaSettings(
        bootstrap="127.0.0.1:9",
        registry_url="http://127.0.0.1:9",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
    )
    built = Gate(kafka, GateSettings(), GateMetrics.create(CollectorRegistry()))
    yield built
    if built.membership is not None:
        built.membership.release()


OUT = [("t-data", b"k", b"v", 0), ("t-data", b"k", b"w", 0)]


def test_a_batch_whose_records_all_have_offsets_is_published(gate: Gate) -> None:
    FakeProducer.offsets = [41, 42]
    gate._publish(OUT)  # type: ignore[arg-type]


def test_a_record_acknowledged_without_an_offset_fails_the_batch(gate: Gate) -> None:
    FakeProducer.offsets = [None, 42]
    with pytest.raises(PublishError, match="without an offset"):
        gate._publish(OUT)  # type: ignore[arg-type]
    FakeProducer.offsets = [43, 44]  # decided and published again
    gate._publish(OUT)  # type: ignore[arg-type]
