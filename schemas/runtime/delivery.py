"""Queueing a record, and what a librdkafka delivery report proves: the rules every relay
producer on confluent-kafka applies (:func:`queue`, :func:`stored_offset`).

A producer's local queue fills when the broker is slow or away; :func:`queue` then
serves delivery reports until there is room (or the caller gives up), instead of each
producer writing that loop.

An ``acks=all`` record the broker stored comes back with its offset. librdkafka's
idempotent producer also reports records as delivered (no error) *without* an offset:
those it "implicitly acked" because a later batch of the same partition was accepted.
The broker may never have stored them: on a partition just created, a first batch
refused with NOT_LEADER is acknowledged this way when the next batch, already in
flight, succeeds (seen on a private broker: 2 of 720 records lost, each exactly one
reported without an offset), and upstream reports the same on a leader change
(confluent-kafka-go#921). So a report without an offset is a failed delivery: the
record is sent again (every relay record carries an id that makes a duplicate
harmless) instead of being counted as stored.

A producer that wants this check must ask for every report, not only failed ones
(``delivery.report.only.error`` off): librdkafka reports an implicit ack as a success.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import KafkaError, Message

NOT_STORED: Final = "acknowledged without an offset: the broker may not hold it; send it again"
"""Why a delivery without an offset is a failure, as publishers say it."""


def stored_offset(message: Message) -> int | None:
    """Where an error-free report says the broker stored ``message``; None when the
    report does not prove it stored."""
    offset = message.offset()
    return offset if offset is not None and offset >= 0 else None


def failure(error: KafkaError | None, message: Message) -> str | None:
    """Why the report ``(error, message)`` does not prove the record stored; None if it
    does."""
    if error is not None:
        return str(error)
    return None if stored_offset(message) is not None else NOT_STORED


def queue(
    producer: Any,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    partition: int | None = None,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    wait: float = 0.1,
    stop: Callable[[], bool] | None = None,
) -> bool:
    """Queue one record on ``producer`` (a confluent-kafka producer, or one that wraps
    it); while its local queue is full, serve delivery reports for up to ``wait``
    seconds at a time and try again. False if ``stop()`` turned true first."""
    where = -1 if partition is None else partition  # -1: the producer's partitioner
    while True:
        try:
            if headers is None:  # positional: the gate queues tens of thousands a second
                producer.produce(topic, value, key, where, on_delivery=on_delivery)
            else:
                producer.produce(topic, value, key, where, on_delivery=on_delivery, headers=headers)
            return True
        except BufferError:
            producer.poll(wait)
            if stop is not None and stop():
                return False
