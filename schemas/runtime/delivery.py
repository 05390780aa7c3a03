"""What a librdkafka delivery report proves: the rule every relay producer on
confluent-kafka applies (:func:`stored_offset`, :func:`failure`; the producer that
applies it is :mod:`schemas.runtime.confirming_producer`).

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

from typing import Final

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
