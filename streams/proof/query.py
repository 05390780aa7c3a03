"""Answering "which destinations honoured this withdrawal, when, and which are pending".

:func:`for_event` and :func:`for_subject` answer from the propagation tables (the
worker's views use them on its own partitions). :func:`read_changelogs` rebuilds the
same tables from their compacted changelog topics with a plain consumer, so an
operator or a test can ask without a worker, e.g. ``python -m streams propagation
--event-id ...``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.errors import ConsentRelayError
from schemas.runtime.kafka import KafkaSettings
from streams.engine import tables
from streams.engine.table_codecs import decode_done, decode_pending
from streams.proof.propagation import Propagation, SubjectPropagations, describe

Pending = Mapping[bytes, SubjectPropagations]
Done = Mapping[bytes, tuple[Propagation, ...]]


def for_event(pending: Pending, done: Done, event_id: str) -> dict[str, Any] | None:
    """The propagation of ``event_id``, or None if these tables do not hold it."""
    for holder in pending.values():
        record = holder.find(event_id)
        if record is not None:
            return describe(record)
    for completed in done.values():
        for record in completed:
            if record.event_id == event_id:
                return describe(record)
    return None


def for_subject(pending: Pending, done: Done, subject_id: str) -> list[dict[str, Any]]:
    """Every propagation these tables hold for a subject, oldest event first."""
    key = subject_id.encode()
    holder = pending.get(key)
    found: list[Propagation] = [*(holder.pending if holder else ()), *(done.get(key) or ())]
    found.sort(key=lambda r: (r.occurred_at_ms, r.event_id))
    return [describe(r) for r in found]


def read_changelogs(
    kafka: KafkaSettings, app_id: str, timeout: float = 30.0
) -> tuple[dict[bytes, SubjectPropagations], dict[bytes, tuple[Propagation, ...]]]:
    """The pending and completed tables as their changelog topics hold them now."""
    pending_raw = read_compacted(kafka, tables.changelog_topic(app_id, tables.PENDING), timeout)
    done_raw = read_compacted(kafka, tables.changelog_topic(app_id, tables.DONE), timeout)
    return (
        {k: decode_pending(v) for k, (_, v) in pending_raw.items()},
        {k: decode_done(v) for k, (_, v) in done_raw.items()},
    )


def read_compacted(
    kafka: KafkaSettings, topic: str, timeout: float
) -> dict[bytes, tuple[int, bytes]]:
    """Latest (partition, value) per key of a compacted topic, read up to its current
    end; empty if the topic does not exist. ConsentRelayError if the end is not reached
    within ``timeout``, KafkaException if the broker refuses."""
    consumer = Consumer(
        kafka.consumer_config(f"streams-query-{uuid.uuid4()}", **{"enable.partition.eof": True})
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return {}
        parts = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {}
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high > low:
                ends[tp.partition] = high
        if not ends:
            return {}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        return _drain(consumer, ends, timeout)
    finally:
        consumer.close()


def _drain(
    consumer: Consumer, ends: dict[int, int], timeout: float
) -> dict[bytes, tuple[int, bytes]]:
    latest: dict[bytes, tuple[int, bytes]] = {}
    deadline = time.monotonic() + timeout
    remaining = dict(ends)
    while remaining:
        if time.monotonic() > deadline:
            raise ConsentRelayError(f"changelog not read to its end within {timeout}s")
        for msg in consumer.consume(500, timeout=1.0):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.pop(msg.partition() or 0, None)
                continue
            key, value = msg.key(), msg.value()
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if key is not None:
                if value is None:
                    latest.pop(key, None)
                else:
                    latest[key] = (partition, value)
            if offset >= remaining.get(partition, 0) - 1:
                remaining.pop(partition, None)
    return latest


def find(
    pending: Pending, done: Done, *, event_id: str | None = None, subject: str | None = None
) -> Iterable[dict[str, Any]]:
    """Answers for an event id or a subject (whichever is given)."""
    if event_id is not None:
        answer = for_event(pending, done, event_id)
        return [] if answer is None else [answer]
    if subject is not None:
        return for_subject(pending, done, subject)
    raise ValueError("give an event id or a subject")
