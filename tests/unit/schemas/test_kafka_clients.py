"""Every client the relay builds reconnects promptly after a broker outage, quietly."""

from __future__ import annotations

from schemas.runtime.kafka import RECONNECT, KafkaSettings

SETTINGS = KafkaSettings(bootstrap="127.0.0.1:9092", registry_url="http://127.0.0.1:8081")


def test_every_client_reconnects_within_a_second_and_does_not_rebootstrap() -> None:
    for config in (
        SETTINGS.producer_config(),
        SETTINGS.consumer_config("g"),
        SETTINGS.admin_config(),
    ):
        assert config["reconnect.backoff.max.ms"] == 1000
        assert config["metadata.recovery.strategy"] == "none"


def test_a_caller_may_still_override_the_reconnect_settings() -> None:
    assert (
        SETTINGS.consumer_config("g", **{"reconnect.backoff.max.ms": 5000})[
            "reconnect.backoff.max.ms"
        ]
        == 5000
    )
    assert set(RECONNECT) == {"reconnect.backoff.max.ms", "metadata.recovery.strategy"}


def test_producers_send_at_once_unless_a_caller_asks_to_wait() -> None:
    # Every record the relay's producers write is on a withdrawal's way: librdkafka's
    # default 5 ms linger held each one back, 15-20 ms per record on a loaded machine.
    assert SETTINGS.producer_config()["linger.ms"] == 0
    assert SETTINGS.producer_config(**{"linger.ms": 50})["linger.ms"] == 50
