"""Shared Kafka settings: where the broker and registry are, and the client configs
every process uses so that nothing is lost.

Producers are idempotent with ``acks=all``; consumers never auto-commit and store
offsets only after the work is done (``enable.auto.offset.store=False``). Every client
reconnects to a broker that went away at most a second after it is back, without
flooding the log meanwhile (:data:`RECONNECT`).
Read from ``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``, ``CONSENT_RELAY_TOPIC_PREFIX``,
``CONSENT_RELAY_PARTITIONS`` and the optional ``KAFKA_REPLICATION_FACTOR`` and
``KAFKA_MIN_INSYNC_REPLICAS`` (unset: derived from the cluster, :mod:`schemas.runtime.replication`),
and how clients authenticate: ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``,
``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD`` (:mod:`schemas.runtime.kafka_auth`; every
librdkafka config below carries them, so no client can be built without them).
Those families are shared with other tools (``KAFKA_HEAP_OPTS``, ``CONSENT_RELAY_CACHE``),
so an unknown key is refused only when it is evidently a misspelt one of ours
(``KAFKA_BOOTSTRAP_SERVERS``, ``CONSENT_RELAY_PREFIX``) or any other ``SCHEMA_REGISTRY_*``
key, which nothing here would read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final
from urllib.parse import urlparse

from confluent_kafka.schema_registry import SchemaRegistryClient
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from schemas.errors import ConfigError
from schemas.runtime.kafka_auth import ClientAuth
from schemas.runtime.replication import FACTOR_KEY, MIN_INSYNC_KEY, Replication, resolve
from schemas.runtime.settings import SharedSettings, closest, unknown_reason
from schemas.topics import DEFAULT_PARTITIONS, Topics

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
MAX_PREFIX_LENGTH = 100
"""Leaves room under Kafka's 249-character topic-name limit for the longest suffix."""

RECONNECT: Final[dict[str, Any]] = {
    # librdkafka's default lets the gap between reconnects grow to 10 s, so a client
    # could notice a returned broker 10 s late; 1 s bounds that, and one connection
    # attempt a second per broker costs nothing.
    "reconnect.backoff.max.ms": 1000,
    # With every known broker down, librdkafka's default "rebootstrap" recovery
    # re-adds the bootstrap brokers every 50 ms, each retried at once and logged (20+
    # lines a second per client): the backoff above never applies. A deployment whose
    # brokers keep their advertised addresses, as ours do, needs no re-bootstrap.
    "metadata.recovery.strategy": "none",
}
"""How every librdkafka client reconnects after a broker outage."""


def _brokers(value: str) -> str:
    for server in value.split(","):
        if not _HOST_PORT.match(server.strip()):
            raise ValueError(f"{server!r} is not host:port")
    return value


def _http_url(value: str) -> str:
    url = urlparse(value)
    if url.scheme not in {"http", "https"} or not url.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _topic_prefix(value: str) -> str:
    if not _TOPIC_CHARS.match(value) or len(value) > MAX_PREFIX_LENGTH:
        raise ValueError(f"{value!r} must be at most {MAX_PREFIX_LENGTH} of A-Z a-z 0-9 . _ -")
    return value


def _at_least_one(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return value


def _blank_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Brokers = Annotated[str, AfterValidator(_brokers)]
"""``host:port[,host:port...]``."""
HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An http(s) URL with a host, kept as written (the registry client is given it)."""
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
"""At most :data:`MAX_PREFIX_LENGTH` characters a topic name may hold."""
Count = Annotated[int, AfterValidator(_at_least_one)]
"""A number of partitions or replicas: 1 or more."""
OptionalCount = Annotated[Count | None, BeforeValidator(_blank_is_unset)]
"""A count, or None (blank too) when the cluster decides it."""


class KafkaSettings(SharedSettings):
    """Broker, registry and topic naming shared by every process."""

    required_hint = "see README: `make stack` prints it"

    bootstrap: Brokers = Field(
        validation_alias="KAFKA_BOOTSTRAP",
        description="The Kafka brokers, `host:port[,host:port...]` (required).",
    )
    registry_url: HttpUrl = Field(
        validation_alias="SCHEMA_REGISTRY_URL",
        description="The Confluent-compatible schema registry's http(s) URL (required).",
    )
    topic_prefix: TopicPrefix = Field(
        "",
        validation_alias="CONSENT_RELAY_TOPIC_PREFIX",
        description="Prefix of every topic and consumer group of this deployment (at most "
        "100 of A-Z a-z 0-9 . _ -), so deployments sharing a broker share nothing.",
    )
    partitions: Count = Field(
        DEFAULT_PARTITIONS,
        validation_alias="CONSENT_RELAY_PARTITIONS",
        description="Partitions of each relay topic the relay creates.",
    )
    replication_factor: OptionalCount = Field(
        None,
        validation_alias=FACTOR_KEY,
        description="Replicas of each relay topic; unset: 3 on a cluster of three brokers or "
        "more, else one per broker.",
    )
    min_insync_replicas: OptionalCount = Field(
        None,
        validation_alias=MIN_INSYNC_KEY,
        description="In-sync replicas an `acks=all` write needs; unset: 2 with 3 replicas, else 1.",
    )
    auth: ClientAuth = Field(
        ClientAuth(),
        description="The security protocol and SASL credentials of every client (PLAINTEXT: none).",
    )

    @field_validator("min_insync_replicas")
    @classmethod
    def _writable(cls, value: int | None, info: ValidationInfo) -> int | None:
        factor = info.data.get("replication_factor")
        if value is not None and factor is not None and value > factor:
            raise ValueError(
                f"{value} is more than {FACTOR_KEY}={factor}: no write could ever succeed"
            )
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        """Read the settings (an empty one is unset); a missing or malformed one raises
        ConfigError naming it."""
        env = os.environ if env is None else env
        _refuse_unknown(env)
        auth = ClientAuth.from_env(env)
        return cls.model_validate(
            {**{k: env[k] for k in cls.variables() if env.get(k)}, "auth": auth}
        )

    def replication(self, brokers: int) -> Replication:
        """This deployment's replication on a cluster reporting ``brokers`` brokers;
        ConfigError naming the setting when the cluster cannot place it."""
        return resolve(self.replication_factor, self.min_insync_replicas, brokers)

    @property
    def topics(self) -> Topics:
        """The topic names under this deployment's prefix."""
        return Topics(self.topic_prefix, self.partitions)

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent, acks=all producer that sends at once; nothing acknowledged is lost.

        ``linger.ms`` 0 (librdkafka's default is 5): every record the relay's producers
        write is on a withdrawal's way (the consent event, a sink's receipts), and a
        record held back 5 ms waited 15-20 ms for its acknowledgement on the loaded dev
        machine instead of 3-8 ms (single records, interleaved). Records still share
        requests: those written while earlier ones are in flight (at most 5 requests
        per broker) go in the next one, and callers that write a batch and then flush
        send it at once whatever ``linger.ms`` says.
        """
        config: dict[str, Any] = {
            **self._connection(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
        config.update(overrides)
        return config

    def consumer_config(
        self, group_id: str, *, session_timeout_seconds: float | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """A consumer that commits only offsets stored after the work is durable.

        ``session_timeout_seconds``: how long the group waits for a member gone silent;
        heartbeats go every quarter of it (at most every 3 s), so one lost heartbeat
        never costs the membership.
        """
        config: dict[str, Any] = {
            **self._connection(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
        }
        if session_timeout_seconds is not None:
            config["session.timeout.ms"] = round(session_timeout_seconds * 1000)
            config["heartbeat.interval.ms"] = round(min(3.0, session_timeout_seconds / 4) * 1000)
        config.update(overrides)
        return config

    def admin_config(self) -> dict[str, Any]:
        """Config for an AdminClient."""
        return self._connection()

    def _connection(self) -> dict[str, Any]:
        """Where the brokers are, how to reconnect and who this client is: the one
        place every librdkafka config gets them from."""
        return {"bootstrap.servers": self.bootstrap, **RECONNECT, **self.auth.librdkafka()}

    def registry_client(self) -> SchemaRegistryClient:
        """A client of the Confluent-compatible schema registry."""
        return SchemaRegistryClient({"url": self.registry_url})


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """Stop on a key that is evidently meant to be one of ours but is not."""
    for key in sorted(env):
        if key in KNOWN_KEYS:
            continue
        if key.startswith("SCHEMA_REGISTRY_") or (
            key.startswith(("KAFKA_", "CONSENT_RELAY_")) and closest(key, KNOWN_KEYS)
        ):
            raise ConfigError(key, unknown_reason(key, KNOWN_KEYS))


KNOWN_KEYS: Final = (*KafkaSettings.variables(), *ClientAuth.variables())
"""Every variable the shared settings read."""
