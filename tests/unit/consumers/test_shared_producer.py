"""Publishers sharing one producer: each flush waits for its own messages only, a failed
delivery (an error, or no offset) fails only its own publisher's flush, and the partner
process gives every pipeline the same producer (fake librdkafka producer: no network)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from consumers.partners.config import KnownSubjects, PartnerConfig, PartnersConfig
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from consumers.publisher import DeliveryError, Publisher
from consumers.shared_producer import SharedProducer
from schemas.runtime import renewing_producer as renewing_module
from schemas.runtime.kafka import KafkaSettings

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")


class FakeError:
    def __str__(self) -> str:
        return "broker said no"


class FakeMessage:
    """The parts of a confluent_kafka.Message a delivery report is read through."""

    def __init__(self, topic: str, offset: int | None) -> None:
        self._topic = topic
        self._offset = offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int | None:
        return self._offset


class FakeProducer:
    """Holds each message's delivery report until the test releases it."""

    made: list[FakeProducer] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._held: dict[bytes, tuple[str, Any]] = {}
        self._released: list[tuple[Any, Any, FakeMessage]] = []
        self._offset = 0
        FakeProducer.made.append(self)

    def produce(
        self, topic: str, value: bytes, key: bytes | None, partition: int, *, on_delivery: Any
    ) -> None:
        with self._lock:
            self._held[value] = (topic, on_delivery)

    def release(self, value: bytes, error: Any = None, *, stored: bool = True) -> None:
        """Report ``value``: with ``error``, or delivered at the next offset, or (not
        ``stored``) delivered without an offset, as librdkafka reports an implicit ack."""
        with self._lock:
            topic, report = self._held.pop(value)
            offset = None if error is not None or not stored else self._offset
            self._offset += offset is not None
            self._released.append((report, error, FakeMessage(topic, offset)))

    def poll(self, timeout: float) -> int:
        with self._lock:
            ready, self._released = self._released, []
        for report, error, message in ready:
            report(error, message)
        if not ready:
            time.sleep(min(timeout, 0.01))
        return len(ready)

    def flush(self, timeout: float) -> int:
        return len(self._held)


@pytest.fixture(autouse=True)
def fake_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeProducer.made = []
    monkeypatch.setattr(renewing_module, "Producer", FakeProducer)


def publishers(shared: SharedProducer) -> tuple[Publisher, Publisher, FakeProducer]:
    first, second = (Publisher(KAFKA, None, shared) for _ in range(2))  # type: ignore[arg-type]
    (producer,) = FakeProducer.made
    return first, second, producer


def test_a_flush_waits_for_its_own_messages_not_the_other_publishers() -> None:
    shared = SharedProducer(KAFKA)
    first, second, producer = publishers(shared)
    first._produce("receipts", None, b"first")
    second._produce("receipts", None, b"second")
    producer.release(b"first")
    started = time.monotonic()
    first.flush(5.0)  # the other publisher's message is still in flight
    assert time.monotonic() - started < 2.0
    with pytest.raises(DeliveryError, match="1 message"):
        second.flush(0.2)
    producer.release(b"second")
    second.flush(5.0)
    assert shared.close() == 0


def test_a_failed_delivery_fails_only_its_own_publishers_flush() -> None:
    shared = SharedProducer(KAFKA)
    first, second, producer = publishers(shared)
    first._produce("receipts", None, b"first")
    second._produce("receipts", None, b"second")
    producer.release(b"second", FakeError())
    producer.release(b"first")
    first.flush(5.0)
    with pytest.raises(DeliveryError, match="broker said no"):
        second.flush(5.0)
    shared.close()


def test_a_delivery_without_an_offset_fails_its_publishers_flush() -> None:
    """librdkafka reports a record it acknowledged implicitly (a later batch accepted)
    with no error and no offset; the broker may never have stored it."""
    shared = SharedProducer(KAFKA)
    first, second, producer = publishers(shared)
    first._produce("receipts", None, b"first")
    second._produce("receipts", None, b"second")
    producer.release(b"second", stored=False)
    producer.release(b"first")
    first.flush(5.0)
    with pytest.raises(DeliveryError, match="without an offset"):
        second.flush(5.0)
    second._produce("receipts", None, b"again")  # the runner answers again: it counts
    producer.release(b"again")
    second.flush(5.0)
    shared.close()


def test_every_partner_pipeline_writes_through_one_producer(tmp_path: Path) -> None:
    partners = tuple(
        PartnerConfig(
            name=name,
            url="http://127.0.0.1:9/hook",
            secret=b"s" * 32,
            pseudonym_key=b"k" * 32,
            known_subjects=KnownSubjects.ALL,
        )
        for name in ("criteo", "google", "yahoo")
    )
    process = PartnerSinkProcess(
        KAFKA,
        PartnerSinkSettings(config=tmp_path / "partners.toml"),
        PartnersConfig(partners=partners),
        metrics_port=0,
    )
    producers = {id(runner.producer) for runner in process.runners.values()}
    assert len(producers) == 1
    assert None not in {runner.producer for runner in process.runners.values()}
