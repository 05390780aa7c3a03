"""A producer whose client forgot every broker is replaced, and what it held fails.

Fake librdkafka producers (no network): each remembers its messages' delivery callbacks;
purge fails them all, as librdkafka's does.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from schemas.runtime import renewing_producer as module
from schemas.runtime.renewing_producer import RenewingProducer

LOST = json.dumps({"brokers": {"GroupCoordinator": {"nodeid": -1, "source": "logical"}}})
FINE = json.dumps({"brokers": {"127.0.0.1:9/1": {"nodeid": 1, "source": "learned"}}})


class FakeProducer:
    made: list[FakeProducer] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.waiting: list[Any] = []
        self.reports: list[tuple[Any, str]] = []
        self.purged = False
        FakeProducer.made.append(self)

    def stats(self, raw: str) -> None:
        self.config["stats_cb"](raw)

    def produce(self, topic: str, value: bytes, on_delivery: Any) -> None:
        self.waiting.append(on_delivery)

    def purge(self) -> None:
        self.purged = True
        self.reports += [(report, "_PURGE_QUEUE") for report in self.waiting]
        self.waiting = []

    def poll(self, timeout: float) -> int:
        served, self.reports = self.reports, []
        for report, error in served:
            report(error, None)
        return len(served)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return len(self.waiting)

    def __len__(self) -> int:
        return len(self.waiting)


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeProducer.made = []
    monkeypatch.setattr(module, "Producer", FakeProducer)


def test_a_client_that_lost_every_broker_is_replaced_and_what_it_held_fails() -> None:
    replaced: list[int] = []
    producer = RenewingProducer({"acks": "all"}, "test", lambda: replaced.append(1))
    (first,) = FakeProducer.made
    assert first.config["acks"] == "all"
    assert first.config["statistics.interval.ms"] > 0
    outcomes: list[str | None] = []
    producer.produce("t", b"held", on_delivery=lambda err, _m: outcomes.append(err))
    first.stats(FINE)
    assert producer.poll(0) == 0
    assert len(FakeProducer.made) == 1
    first.stats(LOST)
    assert producer.lost_broker
    producer.poll(0)
    assert len(FakeProducer.made) == 2, "a new client"
    assert first.purged
    assert outcomes == ["_PURGE_QUEUE"], "the old client's message failed"
    assert replaced == [1]
    assert producer.replacements == 1
    assert not producer.lost_broker
    producer.produce("t", b"next", on_delivery=lambda err, _m: outcomes.append(err))
    assert len(FakeProducer.made[1]) == 1, "sent by the new client"
    assert len(first) == 0
    assert len(producer) == 1


def test_a_flush_sees_the_loss_and_ends_with_the_messages_failed() -> None:
    producer = RenewingProducer({}, "test")
    first = FakeProducer.made[0]
    failed = threading.Event()
    producer.produce("t", b"held", on_delivery=lambda err, _m: err and failed.set())
    first.stats(LOST)
    assert producer.flush(30) == 0
    assert failed.is_set()


def test_two_threads_that_see_the_loss_replace_the_client_once() -> None:
    producer = RenewingProducer({}, "test")
    FakeProducer.made[0].stats(LOST)
    results = [producer.renew_if_lost(), producer.renew_if_lost()]
    assert results == [True, False]
    assert len(FakeProducer.made) == 2
