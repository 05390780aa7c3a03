"""A subject's current consent, read from the compacted ``Topics.state`` topic.

The stream keeps one :class:`~schemas.events.ConsentStateRecorded` per subject, keyed by
subject id. Only the key's partition is read (see :mod:`schemas.partitioning`), from
the start to its end; the last value for the key wins, a tombstone means no state.
"""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from producers.reading import partitions_of, read_to_end
from schemas.codec import EventDecoder
from schemas.errors import DecodeError
from schemas.events import ConsentStateRecorded
from schemas.partitioning import partition_for
from schemas.runtime.kafka import KafkaSettings


def current_state(
    settings: KafkaSettings, subject_id: str, *, timeout: float = 60.0
) -> ConsentStateRecorded | None:
    """The latest recorded state of ``subject_id``, or None if there is none."""
    topic = settings.topics.state
    key = subject_id.encode()
    consumer = Consumer(settings.consumer_config(f"consent-relay-cli-state-{uuid.uuid4().hex[:8]}"))
    try:
        partition = partition_for(key, len(partitions_of(consumer, topic)))
        latest: bytes | None = None
        for message in read_to_end(
            consumer, [TopicPartition(topic, partition, -2)], timeout=timeout
        ):
            if message.key() == key:
                latest = message.value()
    finally:
        consumer.close()
    if latest is None:
        return None
    with settings.registry_client() as registry:
        record = EventDecoder(registry).decode(latest)
    if not isinstance(record, ConsentStateRecorded):
        raise DecodeError(f"the state topic holds a {type(record).__name__}, not a state")
    return record
