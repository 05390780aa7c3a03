"""A consumer group's committed offsets, read by a consumer of that group that never
subscribes (so never joins it), asked again while the broker answers "not now".

Sinks read committed offsets at start (:mod:`consumers.groups`,
:mod:`consumers.partners.legacy`, :mod:`consumers.partners.upgrade`) and the partner sink
when partitions are assigned (:mod:`consumers.partners.fanout`). Right after a broker
starts, the group coordinator is still loading or moving, and librdkafka reports
NOT_COORDINATOR without marking it retriable: it is a "not now" all the same. (The admin
client's ListConsumerGroupOffsets is not used: it crashes the process on that very
answer, librdkafka#5040.)
"""

from __future__ import annotations

import logging
import time
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger(__name__)

RETRY_SECONDS: Final = 0.5
"""Pause between two attempts."""

NOT_NOW: Final = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)
"""Coordinator answers that mean "ask again shortly", retriable or not by librdkafka."""


def read_committed(
    consumer: Consumer, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    """``consumer``'s group's committed offsets (and metadata) of ``partitions``, asked
    again while the broker answers "not now", for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.committed(partitions, timeout)
        except KafkaException as exc:
            error = exc.args[0]
            not_now = error.retriable() or error.code() in NOT_NOW
            if not not_now or time.monotonic() > deadline:
                raise
            log.info("committed offsets not readable yet (%s); asking again", error.str())
            time.sleep(RETRY_SECONDS)


def held(
    consumer: Consumer, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    """The consumer's group's committed offsets (and metadata) among ``partitions``, only
    those it has."""
    return [tp for tp in read_committed(consumer, partitions, timeout) if tp.offset >= 0]


def held_by(
    kafka: KafkaSettings, group: str, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    """``group``'s committed offsets among ``partitions`` (see :func:`held`), read by a
    consumer of that group that never joins it."""
    consumer = Consumer(kafka.consumer_config(group))
    try:
        return held(consumer, partitions, timeout)
    finally:
        consumer.close()
