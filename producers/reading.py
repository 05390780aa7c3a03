"""Reading a topic up to where it ended when we started: the CLI's one-shot consumers.

:func:`read_to_end` assigns the given partitions (no group rebalancing), snapshots each
one's high watermark, and yields messages until every partition has reached it, so a
command that scans a topic always terminates even while producers keep writing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from schemas.errors import ConsentRelayError


class ReadTimeoutError(ConsentRelayError):
    """The broker did not deliver up to the end of the topic in time."""


def partitions_of(consumer: Consumer, topic: str, timeout: float = 10.0) -> list[int]:
    """The partition numbers of ``topic``; raises if it does not exist."""
    metadata = consumer.list_topics(topic, timeout=timeout)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error.str() if info is not None and info.error else "no partitions"
        raise ConsentRelayError(f"topic {topic} is not available: {reason}")
    return sorted(info.partitions)


def read_to_end(
    consumer: Consumer,
    starts: list[TopicPartition],
    *,
    timeout: float = 60.0,
) -> Iterator[Message]:
    """Messages from each ``starts`` offset up to the high watermark seen at the start."""
    targets: dict[tuple[str, int], int] = {}
    assigned: list[TopicPartition] = []
    for tp in starts:
        low, high = consumer.get_watermark_offsets(tp, timeout=10.0)
        begin = low if tp.offset < 0 else max(tp.offset, low)
        if begin < high:
            targets[(tp.topic, tp.partition)] = high
            assigned.append(TopicPartition(tp.topic, tp.partition, begin))
    if not targets:
        return
    consumer.assign(assigned)
    deadline = time.monotonic() + timeout
    try:
        while targets:
            if time.monotonic() > deadline:
                raise ReadTimeoutError(f"could not read to the end of {sorted(targets)} in time")
            message = consumer.poll(0.2)
            if message is not None:
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise ConsentRelayError(f"consuming failed: {error.str()}")
                key = (str(message.topic()), int(message.partition() or 0))
                end = targets.get(key)
                if error is None and end is not None and int(message.offset() or 0) < end:
                    yield message
            # Positions, not offsets, decide the end: compaction and transaction markers
            # leave offsets that are never delivered.
            remaining = [TopicPartition(t, p) for (t, p) in targets]
            for tp in consumer.position(remaining):
                if tp.offset >= targets[(tp.topic, tp.partition)]:
                    del targets[(tp.topic, tp.partition)]
    finally:
        consumer.unassign()


def from_beginning(topic: str, partitions: list[int]) -> list[TopicPartition]:
    """Start positions at the beginning of each partition."""
    return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
