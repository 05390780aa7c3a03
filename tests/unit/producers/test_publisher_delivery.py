"""How the publisher reads librdkafka's delivery reports (no broker: a fake producer
answers each produce at once with the report under test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError

from producers.errors import BrokerUnavailableError, ProducerClosedError, PublishError
from producers.publisher import Delivery, Publisher
from schemas.runtime import renewing_producer as module
from schemas.runtime.kafka import KafkaSettings


class _Report:
    """The parts of a confluent_kafka.Message a delivery report is read through."""

    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "consent.events"

    def partition(self) -> int:
        return 4

    def offset(self) -> int | None:
        return self._offset


class _AnsweringProducer:
    """Reports every produce at once with the offset the test chose."""

    offset: int | None = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def produce(self, *_: Any, on_delivery: Callable[[Any, Any], None], **__: Any) -> None:
        on_delivery(None, _Report(self.offset))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> Iterator[Publisher]:
    monkeypatch.setattr(module, "Producer", _AnsweringProducer)
    settings = KafkaSettings(bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1")
    built = Publisher(settings)
    yield built
    built.close(0)


def _send(publisher: Publisher) -> tuple[Delivery | None, PublishError | None]:
    answers: list[tuple[Delivery | None, PublishError | None]] = []
    publisher.produce_raw("consent.events", b"k", b"v", lambda d, e: answers.append((d, e)))
    assert len(answers) == 1
    return answers[0]


def test_a_report_with_an_offset_is_a_delivery(publisher: Publisher) -> None:
    _AnsweringProducer.offset = 17
    assert _send(publisher) == (Delivery("consent.events", 4, 17), None)


@pytest.mark.parametrize("offset", [None, -1001])
def test_a_report_without_an_offset_is_a_failure_to_resend(
    publisher: Publisher, offset: int | None
) -> None:
    # librdkafka's "implicitly acked by subsequent batch success": no error, no offset,
    # and on a partition just created possibly never stored (confluent-kafka-go#921).
    _AnsweringProducer.offset = offset
    delivery, error = _send(publisher)
    assert delivery is None
    assert isinstance(error, PublishError)
    assert "without an offset" in str(error)


def test_a_message_failed_by_a_replaced_client_is_to_be_sent_again(publisher: Publisher) -> None:
    # A client that forgot every broker is replaced and what it held is purged
    # (schemas.runtime.renewing_producer): the caller must send again, not give up.
    purged = KafkaError(KafkaError._PURGE_QUEUE)
    assert isinstance(publisher._error(purged), BrokerUnavailableError)
    publisher.close(0)
    assert isinstance(publisher._error(purged), ProducerClosedError)
