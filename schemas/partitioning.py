"""Which partition a keyed record lands on: Kafka's default partitioner, in one place.

Every producer of the relay places a keyed record as the Java client does: librdkafka's
``murmur2_random`` (the producers', sinks' and gate's; see
:meth:`~schemas.runtime.kafka.KafkaSettings.producer_config`) and aiokafka's default (the stream
worker's) both put it on
``(murmur2(key) & 0x7fffffff) % partitions``. So one subject's records, table rows and
state sit on the same partition of every co-partitioned topic, and reading one subject's
state needs only :func:`partition_for`'s partition. The hash is aiokafka's (the worker's
Kafka client, a dependency of every install), used as a plain function: no client.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["murmur2", "partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a record keyed ``key`` goes to among ``partitions``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions
