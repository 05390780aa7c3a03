"""The one confirming producer: the full-queue policy, and what a confirmation reports
(no broker: a stand-in client answers at the next poll or flush)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.runtime import confirming_producer as module
from schemas.runtime import delivery
from schemas.runtime.confirming_producer import Confirmations, ConfirmingProducer, WhenFull
from schemas.runtime.kafka import KafkaSettings

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")


class Report:
    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


class StandIn:
    """A client whose queue holds ``room`` records; reports them at the next poll/flush
    with an offset, or without one for the values in ``implicit``."""

    made: list[StandIn] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.room = 10
        self.implicit: set[bytes] = set()
        self.errors: dict[bytes, str] = {}
        self.queued: list[tuple[bytes | None, Callable[[Any, Any], None]]] = []
        self.polls = 0
        StandIn.made.append(self)

    def produce(self, topic: str, value: bytes, key: Any, partition: int, **kw: Any) -> None:
        if len(self.queued) >= self.room:
            raise BufferError("Local: Queue full")
        self.queued.append((value, kw["on_delivery"]))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        queued, self.queued = self.queued, []
        for n, (value, report) in enumerate(queued):
            if report is None:
                continue
            stored = value not in self.implicit
            report(self.errors.get(value or b""), Report(n if stored else None))
        return len(queued)

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return 0


@pytest.fixture(autouse=True)
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    StandIn.made = []
    monkeypatch.setattr(module, "Producer", StandIn)


def make(**kw: Any) -> tuple[ConfirmingProducer, StandIn]:
    producer = ConfirmingProducer(KAFKA, "test", renew=False, **kw)
    (client,) = StandIn.made
    return producer, client


def test_the_relay_configuration_is_idempotent_and_acks_all() -> None:
    _, client = make(config={"linger.ms": 7})
    assert client.config["enable.idempotence"] is True
    assert client.config["acks"] == "all"
    assert client.config["linger.ms"] == 7


def test_a_full_queue_is_served_and_tried_again_when_waiting() -> None:
    producer, client = make(full_wait=0.0)
    client.room = 1
    assert producer.send("t", b"a")
    assert producer.send("t", b"b")  # the queue was full: served, then queued
    assert client.polls == 1
    assert [v for v, _ in client.queued] == [b"b"]


def test_a_full_queue_gives_up_when_told_to_stop() -> None:
    producer, client = make(full_wait=0.0)
    client.room = 0
    confirmations = Confirmations()
    assert not producer.send("t", b"a", confirm=confirmations, stop=lambda: True)
    assert confirmations.wait(0).unacknowledged == 0, "nothing queued, nothing awaited"


def test_a_full_queue_is_refused_at_once_when_refusing() -> None:
    producer, client = make(when_full=WhenFull.REFUSE)
    client.room = 0
    confirmations = Confirmations()
    with pytest.raises(BufferError):
        producer.send("t", b"a", confirm=confirmations)
    assert client.polls == 0
    assert confirmations.wait(0).ok


def test_confirm_reports_failures_and_reports_without_an_offset() -> None:
    producer, client = make()
    client.implicit.add(b"b")
    client.errors[b"c"] = "Broker: Not leader for partition"
    confirmations = Confirmations()
    for value in (b"a", b"b", b"c"):
        producer.send("t", value, confirm=confirmations)
    confirmed = producer.confirm(confirmations, 1.0)
    assert confirmed.unacknowledged == 0
    assert confirmed.failures == (delivery.NOT_STORED, "Broker: Not leader for partition")
    assert producer.confirm(confirmations, 1.0).ok, "failures are reported once"


def test_confirm_counts_only_its_owners_records() -> None:
    producer, _ = make()
    mine, theirs = Confirmations(), Confirmations()
    producer.send("t", b"a", confirm=mine)
    theirs.expect()  # a hand-over not answered yet
    assert producer.confirm(mine, 1.0).ok
    assert producer.confirm(theirs, 0.01).unacknowledged == 1


def test_a_serving_thread_answers_the_reports_and_stops_at_close() -> None:
    producer, _ = make(serve="test-reports")
    confirmations = Confirmations()
    producer.send("t", b"a", confirm=confirmations)
    assert producer.confirm(confirmations, 5.0).ok
    assert producer.close(1.0) == 0
    assert not producer._thread.is_alive()  # type: ignore[union-attr]
