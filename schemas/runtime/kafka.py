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

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlparse

from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.errors import ConfigError
from schemas.runtime.kafka_auth import KEYS as AUTH_KEYS
from schemas.runtime.kafka_auth import ClientAuth
from schemas.runtime.replication import FACTOR_KEY, MIN_INSYNC_KEY, Replication, resolve, validate
from schemas.runtime.settings import documented
from schemas.topics import DEFAULT_PARTITIONS, Topics

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
MAX_PREFIX_LENGTH = 100
"""Leaves room under Kafka's 249-character topic-name limit for the longest suffix."""

KNOWN_KEYS = (
    "KAFKA_BOOTSTRAP",
    "SCHEMA_REGISTRY_URL",
    "CONSENT_RELAY_TOPIC_PREFIX",
    "CONSENT_RELAY_PARTITIONS",
    FACTOR_KEY,
    MIN_INSYNC_KEY,
    *AUTH_KEYS,
)
_MISSPELLING_CUTOFF = 0.75

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


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Broker, registry and topic naming shared by every process."""

    bootstrap: str = documented(
        "KAFKA_BOOTSTRAP", "The Kafka brokers, `host:port[,host:port...]` (required)."
    )
    registry_url: str = documented(
        "SCHEMA_REGISTRY_URL",
        "The Confluent-compatible schema registry's http(s) URL (required).",
    )
    topic_prefix: str = documented(
        "CONSENT_RELAY_TOPIC_PREFIX",
        "Prefix of every topic and consumer group of this deployment (at most 100 of "
        "A-Z a-z 0-9 . _ -), so deployments sharing a broker share nothing.",
        default="",
    )
    partitions: int = documented(
        "CONSENT_RELAY_PARTITIONS",
        "Partitions of each relay topic the relay creates.",
        default=DEFAULT_PARTITIONS,
    )
    replication_factor: int | None = documented(
        FACTOR_KEY,
        "Replicas of each relay topic; unset: 3 on a cluster of three brokers or more, else "
        "one per broker.",
        default=None,
    )
    min_insync_replicas: int | None = documented(
        MIN_INSYNC_KEY,
        "In-sync replicas an `acks=all` write needs; unset: 2 with 3 replicas, else 1.",
        default=None,
    )
    auth: ClientAuth = ClientAuth()
    """The security protocol and SASL credentials of every client (PLAINTEXT: none)."""

    def __post_init__(self) -> None:
        for server in self.bootstrap.split(","):
            if not _HOST_PORT.match(server.strip()):
                raise ConfigError("KAFKA_BOOTSTRAP", f"{server!r} is not host:port")
        url = urlparse(self.registry_url)
        if url.scheme not in {"http", "https"} or not url.netloc:
            raise ConfigError("SCHEMA_REGISTRY_URL", f"{self.registry_url!r} is not an http(s) URL")
        if not _TOPIC_CHARS.match(self.topic_prefix) or len(self.topic_prefix) > MAX_PREFIX_LENGTH:
            raise ConfigError(
                "CONSENT_RELAY_TOPIC_PREFIX",
                f"{self.topic_prefix!r} must be at most {MAX_PREFIX_LENGTH} of A-Z a-z 0-9 . _ -",
            )
        if self.partitions < 1:
            raise ConfigError("CONSENT_RELAY_PARTITIONS", "must be at least 1")
        validate(self.replication_factor, self.min_insync_replicas)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        """Read the settings; a missing or malformed one raises ConfigError naming it."""
        env = os.environ if env is None else env
        _refuse_unknown(env)
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
            replication_factor=_optional_int(env, FACTOR_KEY),
            min_insync_replicas=_optional_int(env, MIN_INSYNC_KEY),
            auth=ClientAuth.from_env(env),
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


def _optional_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(key, f"{raw!r} is not an integer") from exc


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """Stop on a key that is evidently meant to be one of ours but is not."""
    for key in sorted(env):
        if key in KNOWN_KEYS:
            continue
        if key.startswith("SCHEMA_REGISTRY_"):
            raise ConfigError(key, f"unknown setting (known: {', '.join(KNOWN_KEYS)})")
        if key.startswith(("KAFKA_", "CONSENT_RELAY_")):
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=_MISSPELLING_CUTOFF)
            if close:
                raise ConfigError(key, f"unknown setting; did you mean {close[0]}?")
