"""Shared Kafka settings: where the broker and registry are, and the client configs
every process uses so that nothing is lost.

Producers are idempotent with ``acks=all``; consumers never auto-commit and store
offsets only after the work is done (``enable.auto.offset.store=False``).
Read from ``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL`` and ``CONSENT_RELAY_TOPIC_PREFIX``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.errors import ConfigError
from schemas.topics import DEFAULT_PARTITIONS, Topics

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Broker, registry and topic naming shared by every process."""

    bootstrap: str
    registry_url: str
    topic_prefix: str = ""
    partitions: int = DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        for server in self.bootstrap.split(","):
            if not _HOST_PORT.match(server.strip()):
                raise ConfigError("KAFKA_BOOTSTRAP", f"{server!r} is not host:port")
        url = urlparse(self.registry_url)
        if url.scheme not in {"http", "https"} or not url.netloc:
            raise ConfigError("SCHEMA_REGISTRY_URL", f"{self.registry_url!r} is not an http(s) URL")
        if self.partitions < 1:
            raise ConfigError("CONSENT_RELAY_PARTITIONS", "must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        """Read the settings; a missing or malformed one raises ConfigError naming it."""
        env = os.environ if env is None else env
        for key in ("KAFKA_BOOTSTRAP", "SCHEMA_REGISTRY_URL"):
            if not env.get(key):
                raise ConfigError(key, "is required (see README: `make stack` prints it)")
        try:
            partitions = int(env.get("CONSENT_RELAY_PARTITIONS", DEFAULT_PARTITIONS))
        except ValueError as exc:
            raise ConfigError("CONSENT_RELAY_PARTITIONS", "is not an integer") from exc
        return cls(
            bootstrap=env["KAFKA_BOOTSTRAP"],
            registry_url=env["SCHEMA_REGISTRY_URL"],
            topic_prefix=env.get("CONSENT_RELAY_TOPIC_PREFIX", ""),
            partitions=partitions,
        )

    @property
    def topics(self) -> Topics:
        """The topic names under this deployment's prefix."""
        return Topics(self.topic_prefix, self.partitions)

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent, acks=all producer; nothing acknowledged is lost."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
        config.update(overrides)
        return config

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """A consumer that commits only offsets stored after the work is durable."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
        }
        config.update(overrides)
        return config

    def admin_config(self) -> dict[str, Any]:
        """Config for an AdminClient."""
        return {"bootstrap.servers": self.bootstrap}

    def registry_client(self) -> SchemaRegistryClient:
        """A client of the Confluent-compatible schema registry."""
        return SchemaRegistryClient({"url": self.registry_url})
