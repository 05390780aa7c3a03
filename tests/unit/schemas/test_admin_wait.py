"""Waiting for the broker at start-up: capped exponential backoff, a line per attempt,
no tight loop when the broker refuses connections at once (no network: a fake admin)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from schemas.errors import ConsentRelayError
from schemas.runtime import admin
from schemas.runtime.admin import (
    BrokerUnavailableError,
    ensure_topics,
    wait_for_broker,
    wait_for_topics,
)
from schemas.runtime.kafka import KafkaSettings
from schemas.topics import TopicSpec

SETTINGS = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeAdmin:
    """Refuses ``down`` metadata requests at once, then answers."""

    down = 0
    calls: list[float] = []
    error = KafkaError._TRANSPORT

    def __init__(self, _config: dict[str, Any]) -> None:
        pass

    def list_topics(self, timeout: float) -> Any:
        FakeAdmin.calls.append(timeout)
        if FakeAdmin.down > 0:
            FakeAdmin.down -= 1
            raise KafkaException(KafkaError(FakeAdmin.error))

        class Metadata:
            topics: dict[str, Any] = {"existing": None}

        return Metadata()


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.down = 0
    FakeAdmin.calls = []
    FakeAdmin.error = KafkaError._TRANSPORT
    monkeypatch.setattr(admin, "AdminClient", FakeAdmin)
    return FakeAdmin


def test_a_broker_down_at_start_is_waited_for_with_capped_exponential_backoff(
    fake_admin: type[FakeAdmin], caplog: pytest.LogCaptureFixture
) -> None:
    fake_admin.down = 8
    time = FakeTime()
    with caplog.at_level(logging.INFO, logger="schemas.runtime.admin"):
        assert wait_for_broker(SETTINGS, clock=time.clock, sleep=time.sleep)
    assert fake_admin.calls == [0.5, 1, 2, 4, 5, 5, 5, 5, 5]
    # Refused at once: the rest of each attempt's time is slept, never a tight loop.
    assert time.sleeps == [0.5, 1, 2, 4, 5, 5, 5, 5]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8
    assert "127.0.0.1:9 does not answer" in warnings[0].getMessage()
    assert "answered after 27.5 s (9 attempts)" in caplog.records[-1].getMessage()


def test_an_answering_broker_costs_one_request_and_no_log(
    fake_admin: type[FakeAdmin], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="schemas.runtime.admin"):
        assert wait_for_broker(SETTINGS)
    assert fake_admin.calls == [0.5]
    assert not caplog.records


def test_stop_ends_the_wait(fake_admin: type[FakeAdmin]) -> None:
    fake_admin.down = 1000
    stop = threading.Event()
    time = FakeTime()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.sleeps) == 3:
            stop.set()

    assert not wait_for_broker(SETTINGS, stop=stop, clock=time.clock, sleep=sleep)
    assert len(fake_admin.calls) == 3


def test_a_deadline_gives_up_naming_the_broker(fake_admin: type[FakeAdmin]) -> None:
    fake_admin.down = 1000
    time = FakeTime()
    with pytest.raises(BrokerUnavailableError, match=r"127.0.0.1:9 did not answer within 10 s"):
        wait_for_broker(SETTINGS, give_up_after=10, clock=time.clock, sleep=time.sleep)


def test_a_broker_that_refuses_us_for_good_is_not_waited_for(fake_admin: type[FakeAdmin]) -> None:
    fake_admin.down = 1000
    fake_admin.error = KafkaError.SASL_AUTHENTICATION_FAILED
    with pytest.raises(BrokerUnavailableError, match="refuses"):
        wait_for_broker(SETTINGS)
    assert len(fake_admin.calls) == 1


def test_ensure_topics_waits_for_the_broker_first(fake_admin: type[FakeAdmin]) -> None:
    fake_admin.down = 2
    assert ensure_topics(SETTINGS, (TopicSpec("existing", 1),), wait=True) == []
    assert len(fake_admin.calls) == 4  # two refused, one answered, then the listing


def test_without_wait_an_unanswering_broker_is_an_error(fake_admin: type[FakeAdmin]) -> None:
    fake_admin.down = 1
    with pytest.raises(ConsentRelayError, match="cannot list or create topics"):
        ensure_topics(SETTINGS, (TopicSpec("existing", 1),))


def test_wait_for_topics_waits_until_the_owner_created_them_and_says_what_is_missing(
    fake_admin: type[FakeAdmin],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.sleeps) == 3:  # the stream worker creates the topic meanwhile
            monkeypatch.setattr(FakeMetadata, "topics", {"existing": None, "late": None})

    class FakeMetadata:
        topics: dict[str, Any] = {"existing": None}

    monkeypatch.setattr(FakeAdmin, "list_topics", lambda _self, timeout: FakeMetadata())
    with caplog.at_level(logging.INFO, logger="schemas.runtime.admin"):
        assert wait_for_topics(SETTINGS, ("existing", "late"), clock=time.clock, sleep=sleep)
    assert time.sleeps == [0.5, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Said once (not once per attempt), naming the topic and who creates it.
    assert len(warnings) == 1
    assert "waiting for topic(s) late: the stream worker creates them" in warnings[0]


def test_wait_for_topics_ends_when_stopped(
    fake_admin: type[FakeAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()
    time = FakeTime()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        stop.set()

    assert not wait_for_topics(SETTINGS, ("never",), stop=stop, clock=time.clock, sleep=sleep)
    assert time.sleeps == [0.5]
