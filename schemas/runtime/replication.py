"""How many copies of each relay topic the cluster keeps, and how many must hold a write.

Two Kafka settings say it (read by :class:`~schemas.runtime.kafka.KafkaSettings`):
``KAFKA_REPLICATION_FACTOR`` and ``KAFKA_MIN_INSYNC_REPLICAS``. Unset, they follow the
cluster: with three brokers or more every topic gets three replicas and a write needs
two of them (the producers' ``acks=all``), so one broker lost loses no acknowledged
event and stops no writer; with fewer brokers, as many replicas as brokers and one
in-sync replica (a development broker). :func:`resolve` turns the settings into a
:class:`Replication` for the number of brokers the cluster reports when topics are
created, refusing a factor the cluster cannot place with an error naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.errors import ConfigError

FACTOR_KEY: Final = "KAFKA_REPLICATION_FACTOR"
MIN_INSYNC_KEY: Final = "KAFKA_MIN_INSYNC_REPLICAS"
CLUSTER_FACTOR: Final = 3
"""Replicas per partition once the cluster has this many brokers."""
CLUSTER_MIN_INSYNC: Final = 2
"""In-sync replicas a write needs on such a cluster: one broker may be lost at any time."""


@dataclass(frozen=True, slots=True)
class Replication:
    """Replicas per partition and the in-sync replicas an ``acks=all`` write needs."""

    factor: int
    min_insync: int

    def topic_config(self) -> dict[str, str]:
        """The topic-level config that carries :attr:`min_insync`."""
        return {"min.insync.replicas": str(self.min_insync)}


def validate(factor: int | None, min_insync: int | None) -> None:
    """Refuse settings wrong whatever the cluster (None: derived from the cluster)."""
    if factor is not None and factor < 1:
        raise ConfigError(FACTOR_KEY, f"must be at least 1, not {factor}")
    if min_insync is not None and min_insync < 1:
        raise ConfigError(MIN_INSYNC_KEY, f"must be at least 1, not {min_insync}")
    if factor is not None and min_insync is not None and min_insync > factor:
        raise ConfigError(
            MIN_INSYNC_KEY,
            f"{min_insync} is more than {FACTOR_KEY}={factor}: no write could ever succeed",
        )


def resolve(factor: int | None, min_insync: int | None, brokers: int) -> Replication:
    """The replication of a topic created on a cluster reporting ``brokers`` brokers."""
    validate(factor, min_insync)
    if brokers < 1:
        raise ConfigError(FACTOR_KEY, "the cluster reports no broker to place replicas on")
    if factor is None:
        factor = CLUSTER_FACTOR if brokers >= CLUSTER_FACTOR else brokers
    elif factor > brokers:
        raise ConfigError(
            FACTOR_KEY,
            f"{factor} replicas asked for, but the cluster reports {brokers} broker(s)",
        )
    if min_insync is None:
        min_insync = CLUSTER_MIN_INSYNC if factor >= CLUSTER_FACTOR else 1
    elif min_insync > factor:
        raise ConfigError(
            MIN_INSYNC_KEY,
            f"{min_insync} is more than the {factor} replica(s) of a topic on this cluster "
            f"({brokers} broker(s); set {FACTOR_KEY} or lower it)",
        )
    return Replication(factor, min_insync)
