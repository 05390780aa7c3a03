"""Topics just created are handed over only once every partition is led (no network: a
fake admin whose new partitions refuse ListOffsets with NOT_LEADER for a while)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from schemas.errors import ConsentRelayError
from schemas.runtime import admin
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.topics import TopicSpec

SETTINGS = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")


def _done(result: Any = None, error: int | None = None) -> Future[Any]:
    future: Future[Any] = Future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(KafkaException(KafkaError(error)))
    return future


class NewPartitionsAdmin:
    """Creates any topic; partition 1 refuses ListOffsets ``refusals`` times."""

    refusals = 0
    error = KafkaError.NOT_LEADER_FOR_PARTITION
    asked: list[set[tuple[str, int]]] = []

    def __init__(self, _config: dict[str, Any]) -> None:
        pass

    def list_topics(self, timeout: float) -> Any:
        class Metadata:
            topics: dict[str, Any] = {}
            brokers = {1: None}

        return Metadata()

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[Any]]:
        return {t.topic: _done() for t in topics}

    def list_offsets(
        self, asked: dict[TopicPartition, Any], request_timeout: float
    ) -> dict[TopicPartition, Future[Any]]:
        NewPartitionsAdmin.asked.append({(tp.topic, tp.partition) for tp in asked})
        answers = {}
        for tp in asked:
            if tp.partition == 1 and NewPartitionsAdmin.refusals > 0:
                NewPartitionsAdmin.refusals -= 1
                answers[tp] = _done(error=NewPartitionsAdmin.error)
            else:
                answers[tp] = _done(result=0)
        return answers


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[NewPartitionsAdmin]:
    NewPartitionsAdmin.refusals = 0
    NewPartitionsAdmin.error = KafkaError.NOT_LEADER_FOR_PARTITION
    NewPartitionsAdmin.asked = []
    monkeypatch.setattr(admin, "AdminClient", NewPartitionsAdmin)
    return NewPartitionsAdmin


def test_created_topics_return_once_each_partition_is_led(
    fake_admin: type[NewPartitionsAdmin],
) -> None:
    fake_admin.refusals = 2
    assert ensure_topics(SETTINGS, (TopicSpec("fresh", 3),)) == ["fresh"]
    assert fake_admin.asked == [
        {("fresh", 0), ("fresh", 1), ("fresh", 2)},
        {("fresh", 1)},
        {("fresh", 1)},
    ]


def test_a_partition_refused_for_good_stops_the_start(
    fake_admin: type[NewPartitionsAdmin],
) -> None:
    fake_admin.refusals = 1
    fake_admin.error = KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(ConsentRelayError, match=r"fresh \[1\] has no leader"):
        ensure_topics(SETTINGS, (TopicSpec("fresh", 3),))


def test_partitions_never_led_are_waited_for_a_bounded_time_with_a_warning(
    fake_admin: type[NewPartitionsAdmin],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(admin, "LEADER_WAIT_SECONDS", 0.05)
    fake_admin.refusals = 10**6
    fake_admin.error = KafkaError._NOENT  # librdkafka: "No leaders found"
    assert ensure_topics(SETTINGS, (TopicSpec("fresh", 3),)) == ["fresh"]
    assert "1 new partition(s) not led after 0 s" in caplog.text
    assert "(first: fresh [1])" in caplog.text


def test_a_broker_that_keeps_refusing_at_once_is_asked_less_and_less_often(
    fake_admin: type[NewPartitionsAdmin],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each attempt builds an admin client (a connection to the cluster): a partition
    refused within milliseconds for the whole wait must not cost one every 20 ms."""
    monkeypatch.setattr(admin, "LEADER_WAIT_SECONDS", 1.0)
    fake_admin.refusals = 10**6
    fake_admin.error = KafkaError.LEADER_NOT_AVAILABLE
    assert ensure_topics(SETTINGS, (TopicSpec("fresh", 3),)) == ["fresh"]
    assert 4 <= len(fake_admin.asked) <= 10  # 20 ms doubling to 0.5 s: 7 or 8 in 1 s
