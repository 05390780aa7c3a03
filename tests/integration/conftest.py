"""Fixtures shared by the integration tests: the contract registered in the real
registry once per session, and a per-test set of topics on the real broker."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings


@pytest.fixture(scope="session")
def registered_schemas(kafka: Any) -> dict[str, int]:
    """Every shipped schema registered (subject → id) in the session's registry."""
    settings = KafkaSettings(bootstrap=kafka.bootstrap, registry_url=kafka.registry_url)
    with settings.registry_client() as client:
        return register_all(client)


@pytest.fixture
def relay_settings(
    kafka: Any, topic_prefix: str, registered_schemas: dict[str, int]
) -> KafkaSettings:
    """Kafka settings under a fresh topic prefix, with every relay topic created."""
    settings = KafkaSettings(
        bootstrap=kafka.bootstrap,
        registry_url=kafka.registry_url,
        topic_prefix=topic_prefix,
        partitions=3,
    )
    ensure_topics(settings)
    return settings


@pytest.fixture
def relay_env(relay_settings: KafkaSettings) -> dict[str, str]:
    """Environment variables that point a relay process at this test's topics."""
    return {
        "KAFKA_BOOTSTRAP": relay_settings.bootstrap,
        "SCHEMA_REGISTRY_URL": relay_settings.registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": relay_settings.topic_prefix,
        "CONSENT_RELAY_PARTITIONS": str(relay_settings.partitions),
    }
