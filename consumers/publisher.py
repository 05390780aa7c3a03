"""Publishing what a sink did: propagation receipts and dead letters.

One idempotent ``acks=all`` producer writes both. A receipt's id is derived from the
instruction and the outcome, so a receipt re-sent after a crash carries the same id
and the stream can count it once. :meth:`Publisher.flush` raises if any message was
not acknowledged, or acknowledged without an offset (:mod:`schemas.runtime.delivery`), so the
runner never commits offsets past a lost receipt.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaException, Message
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumers.joined_receipts import RECEIPTS_PER_RECORD
from consumers.protocol import RetriableSinkError, SinkResult
from consumers.shared_producer import SharedProducer
from schemas import deadletters
from schemas.codec import EventSerializer, RegistryEncoder
from schemas.errors import ConsentRelayError
from schemas.events import (
    DeadLettered,
    InstructionIssued,
    InstructionsAnswered,
    PropagationReceipt,
    answers_id,
    utc_now,
)
from schemas.ids import uuid5
from schemas.runtime.confirming_producer import Confirmations, ConfirmingProducer
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Outcome


class DeliveryError(ConsentRelayError):
    """The broker did not acknowledge a receipt or dead letter; offsets must not move."""


def receipt_id(instruction_id: str, outcome: Outcome) -> str:
    """The deterministic id of the receipt answering ``instruction_id`` with ``outcome``."""
    return uuid5(f"{instruction_id}/receipt/{outcome.value}")


def build_receipt(
    instruction: InstructionIssued, result: SinkResult, applied_at: datetime
) -> PropagationReceipt:
    """The receipt for ``instruction`` after the sink answered ``result``."""
    return PropagationReceipt(
        receipt_id=receipt_id(instruction.instruction_id, result.outcome),
        instruction_id=instruction.instruction_id,
        event_id=instruction.event_id,
        subject=instruction.subject,
        sink_family=instruction.sink_family,
        destination=instruction.destination,
        outcome=result.outcome,
        occurred_at=instruction.occurred_at,
        applied_at=applied_at,
        reason=result.reason,
    )


def build_dead_letter(
    *,
    stage: str,
    message: Message,
    error: Exception,
) -> DeadLettered:
    """A dead letter for ``message`` that failed with ``error`` at ``stage`` (bounded in
    size: :mod:`schemas.deadletters`)."""
    return deadletters.of_error(
        error,
        stage=stage,
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        at=utc_now(),
    )


class Publisher:
    """Writes receipts and dead letters; :meth:`flush` confirms every one was acknowledged.

    A batch's receipts go out as one InstructionsAnswered per receipts partition: the
    stream then reads one message per partition and batch instead of one per
    instruction. That needs the instruction's topic to be co-partitioned with the
    receipts topic (as many partitions, keyed by subject), which every relay topic is;
    a receipt for an instruction from a topic that is not goes out alone, keyed by its
    subject.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        registry: SchemaRegistryClient,
        shared: SharedProducer | None = None,
        on_replaced: Callable[[], None] | None = None,
    ) -> None:
        """``shared``: write through that producer (its thread serves the delivery
        reports) instead of one of this publisher's own; ``on_replaced``: called when
        this publisher's own producer replaced a client that forgot every broker
        (:mod:`schemas.runtime.renewing_producer`)."""
        self._topics = settings.topics
        self._shared = shared
        self._producer = (
            shared.producer()
            if shared is not None
            else ConfirmingProducer(settings, "sink publisher", on_replaced=on_replaced)
        )
        self._confirmations = Confirmations()
        """This publisher's messages: another runner's may stay in flight."""
        self._receipts = EventSerializer(registry, PropagationReceipt)
        self._encode = RegistryEncoder(registry)
        self._dead_letters = EventSerializer(registry, DeadLettered)
        self._queued: dict[int, list[PropagationReceipt]] = {}
        self._partition_counts: dict[str, int] = {}

    def receipt(self, receipt: PropagationReceipt, source: tuple[str, int] | None = None) -> None:
        """Queue ``receipt``: with its instruction's ``(topic, partition)``, for
        :meth:`send_receipts` to batch; else now, on its own, keyed by subject id."""
        if source is not None and self._copartitioned(source[0]):
            self._queued.setdefault(source[1], []).append(receipt)
            return
        topic = self._topics.receipts
        self._produce(topic, receipt.subject.id.encode(), self._receipts(receipt, topic))

    def send_receipts(self) -> None:
        """Send the queued receipts, one InstructionsAnswered per partition and
        :data:`RECEIPTS_PER_RECORD`; all are serialized before any is sent, so a registry
        failure leaves them queued for a retry. With a shared producer they go with the
        other runners' receipts (:mod:`consumers.joined_receipts`), after the schema id
        is known (the same retry)."""
        topic = self._topics.receipts
        if self._shared is not None:
            if self._queued:
                self._encode.header(InstructionsAnswered)
            queued, self._queued = self._queued, {}
            for partition, receipts in queued.items():
                self._confirmations.expect()
                self._shared.receipts.send(
                    partition, receipts, self._confirmations.settle, self._answers
                )
            return
        records = [
            (
                partition,
                self._encode(
                    InstructionsAnswered,
                    answered_avro(receipts[n : n + RECEIPTS_PER_RECORD]),
                    topic,
                ),
            )
            for partition, receipts in self._queued.items()
            for n in range(0, len(receipts), RECEIPTS_PER_RECORD)
        ]
        for partition, value in records:
            self._produce(topic, None, value, partition)
        self._queued.clear()

    def dead_letter(self, dead: DeadLettered) -> None:
        """Queue ``dead`` on the dead-letter topic, keyed like the original message."""
        topic = self._topics.dead_letters
        self._produce(topic, dead.original_key, self._dead_letters(dead, topic))

    def flush(self, timeout: float = 60.0) -> None:
        """Send what is queued, then wait until every message is acknowledged; raise
        DeliveryError if one was not."""
        self.send_receipts()
        if self._shared is None:
            confirmed = self._producer.confirm(self._confirmations, timeout)
        else:  # the shared producer's thread serves the reports: only wait for ours
            confirmed = self._confirmations.wait(timeout)
        if confirmed.unacknowledged:
            raise DeliveryError(
                f"{confirmed.unacknowledged} message(s) unacknowledged after {timeout}s"
            )
        if confirmed.failures:
            failures = confirmed.failures
            raise DeliveryError(f"{len(failures)} message(s) not delivered: {failures[0]}")

    def _copartitioned(self, topic: str) -> bool:
        return self._partitions(topic) == self._partitions(self._topics.receipts)

    def _partitions(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            try:
                metadata = self._producer.list_topics(topic, timeout=10).topics[topic]
            except KafkaException as exc:
                raise RetriableSinkError(f"no metadata for {topic}: {exc}") from exc
            if metadata.error is not None or not metadata.partitions:
                raise RetriableSinkError(f"no metadata for {topic}: {metadata.error}")
            count = self._partition_counts[topic] = len(metadata.partitions)
        return count

    def _produce(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        # Without an offset the broker may not hold it (schemas.runtime.delivery): a
        # failure like an error, so flush raises and the offsets of what it answered
        # are not committed.
        self._producer.send(topic, value, key, partition=partition, confirm=self._confirmations)
        if self._shared is None:
            self._producer.poll(0)

    def _answers(self, receipts: list[PropagationReceipt]) -> bytes:
        """The bytes of one InstructionsAnswered carrying ``receipts``."""
        return self._encode(InstructionsAnswered, answered_avro(receipts), self._topics.receipts)


def answered_avro(receipts: list[PropagationReceipt]) -> dict[str, Any]:
    """The Avro dict of the InstructionsAnswered carrying ``receipts``: what
    :func:`schemas.converters.to_dict` makes of it, written out (its generic walk of every
    receipt cost more than the write; a test compares the two)."""
    return {
        "batch_id": answers_id(r.receipt_id for r in receipts),
        "receipts": [receipt_avro(r) for r in receipts],
    }


def receipt_avro(receipt: PropagationReceipt) -> dict[str, Any]:
    """The Avro dict of ``receipt``, as :func:`schemas.converters.to_dict` makes it."""
    subject = receipt.subject
    return {
        "receipt_id": receipt.receipt_id,
        "instruction_id": receipt.instruction_id,
        "event_id": receipt.event_id,
        "subject": {"id": subject.id, "kind": subject.kind},
        "sink_family": receipt.sink_family,
        "destination": receipt.destination,
        "outcome": receipt.outcome,
        "occurred_at": receipt.occurred_at,
        "applied_at": receipt.applied_at,
        "reason": receipt.reason,
    }
