"""Replication from the Kafka settings: validated at start, resolved against the brokers
the cluster reports when topics are created (no network: a fake admin client)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.errors import ConfigError
from schemas.runtime import admin
from schemas.runtime.admin import cluster_replication, ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.replication import Replication, resolve
from schemas.topics import TopicSpec

GOOD = {"KAFKA_BOOTSTRAP": "127.0.0.1:9092", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081"}


def refused(env: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.from_env({**GOOD, **env})
    assert caught.value.key == key
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [
        (1, Replication(1, 1)),
        (2, Replication(2, 1)),
        (3, Replication(3, 2)),
        (5, Replication(3, 2)),
    ],
)
def test_unset_replication_follows_the_cluster(brokers: int, expected: Replication) -> None:
    assert KafkaSettings.from_env(GOOD).replication(brokers) == expected


def test_set_replication_is_used_as_it_is() -> None:
    env = {**GOOD, "KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "2"}
    assert KafkaSettings.from_env(env).replication(3) == Replication(2, 2)
    only_factor = KafkaSettings.from_env({**GOOD, "KAFKA_REPLICATION_FACTOR": "3"})
    assert only_factor.replication(4) == Replication(3, 2)
    only_isr = KafkaSettings.from_env({**GOOD, "KAFKA_MIN_INSYNC_REPLICAS": "3"})
    assert only_isr.replication(3) == Replication(3, 3)


@pytest.mark.parametrize(
    ("env", "key", "reason"),
    [
        ({"KAFKA_REPLICATION_FACTOR": "0"}, "KAFKA_REPLICATION_FACTOR", "at least 1"),
        ({"KAFKA_REPLICATION_FACTOR": "three"}, "KAFKA_REPLICATION_FACTOR", "not an integer"),
        ({"KAFKA_MIN_INSYNC_REPLICAS": "0"}, "KAFKA_MIN_INSYNC_REPLICAS", "at least 1"),
        (
            {"KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "3"},
            "KAFKA_MIN_INSYNC_REPLICAS",
            "more than KAFKA_REPLICATION_FACTOR=2",
        ),
        ({"KAFKA_REPLICATION_FACTR": "3"}, "KAFKA_REPLICATION_FACTR", "did you mean"),
    ],
)
def test_wrong_replication_settings_stop_the_process_naming_the_key(
    env: dict[str, str], key: str, reason: str
) -> None:
    refused(env, key, reason)


def test_a_factor_above_the_brokers_is_refused_naming_the_setting() -> None:
    settings = KafkaSettings.from_env({**GOOD, "KAFKA_REPLICATION_FACTOR": "3"})
    with pytest.raises(ConfigError) as caught:
        settings.replication(1)
    assert caught.value.key == "KAFKA_REPLICATION_FACTOR"
    assert "3 replicas asked for, but the cluster reports 1 broker(s)" in caught.value.reason


def test_a_min_isr_above_the_derived_factor_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(None, 2, 1)
    assert caught.value.key == "KAFKA_MIN_INSYNC_REPLICAS"
    assert "more than the 1 replica(s)" in caught.value.reason


def test_no_broker_reported_is_refused() -> None:
    with pytest.raises(ConfigError, match="no broker"):
        resolve(None, None, 0)


class FakeAdmin:
    """A cluster of ``brokers`` brokers holding no topic; records what it is asked to create."""

    brokers = 3
    created: list[Any] = []

    def __init__(self, _config: dict[str, Any]) -> None:
        pass

    def list_topics(self, timeout: float) -> Any:
        class Metadata:
            topics: dict[str, Any] = {}
            brokers = dict.fromkeys(range(FakeAdmin.brokers))

        return Metadata()

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
        FakeAdmin.created.extend(topics)

        class Done:
            def result(self, timeout: float) -> None:
                return None

        return {t.topic: Done() for t in topics}

    def list_offsets(self, asked: dict[Any, Any], request_timeout: float) -> dict[Any, Any]:
        """Every new partition is led at once (waiting for leaders: test_admin_leaders)."""

        class Led:
            def result(self) -> int:
                return 0

        return {partition: Led() for partition in asked}


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.brokers = 3
    FakeAdmin.created = []
    monkeypatch.setattr(admin, "AdminClient", FakeAdmin)
    return FakeAdmin


def test_topics_on_three_brokers_get_three_replicas_and_two_in_sync(
    fake_admin: type[FakeAdmin],
) -> None:
    specs = (TopicSpec("consent", 3, {"cleanup.policy": "delete"}),)
    assert ensure_topics(KafkaSettings.from_env(GOOD), specs) == ["consent"]
    (topic,) = fake_admin.created
    assert topic.replication_factor == 3
    assert topic.config == {"cleanup.policy": "delete", "min.insync.replicas": "2"}


def test_topics_on_one_broker_get_one_replica(fake_admin: type[FakeAdmin]) -> None:
    fake_admin.brokers = 1
    ensure_topics(KafkaSettings.from_env(GOOD), (TopicSpec("consent", 3),))
    (topic,) = fake_admin.created
    assert topic.replication_factor == 1
    assert topic.config == {"min.insync.replicas": "1"}


def test_creating_topics_the_cluster_cannot_replicate_names_the_setting(
    fake_admin: type[FakeAdmin],
) -> None:
    fake_admin.brokers = 2
    settings = KafkaSettings.from_env({**GOOD, "KAFKA_REPLICATION_FACTOR": "3"})
    with pytest.raises(ConfigError, match="KAFKA_REPLICATION_FACTOR: 3 replicas asked for"):
        ensure_topics(settings, (TopicSpec("consent", 3),), wait=True)
    assert not fake_admin.created


def test_faust_topics_follow_the_same_replication(fake_admin: type[FakeAdmin]) -> None:
    assert cluster_replication(KafkaSettings.from_env(GOOD)) == Replication(3, 2)
