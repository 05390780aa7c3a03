"""Publishing what a sink did: propagation receipts and dead letters.

One idempotent ``acks=all`` producer writes both. A receipt's id is derived from the
instruction and the outcome, so a receipt re-sent after a crash carries the same id
and the stream can count it once. :meth:`Publisher.flush` raises if any message was
not acknowledged, so the runner never commits offsets past a lost receipt.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumers.protocol import SinkResult
from schemas import deadletters
from schemas.codec import EventSerializer
from schemas.errors import ConsentRelayError, InvalidEventError
from schemas.events import DeadLettered, InstructionIssued, PropagationReceipt, utc_now
from schemas.kafka import KafkaSettings
from schemas.taxonomy import Outcome


class DeliveryError(ConsentRelayError):
    """The broker did not acknowledge a receipt or dead letter; offsets must not move."""


def receipt_id(instruction_id: str, outcome: Outcome) -> str:
    """The deterministic id of the receipt answering ``instruction_id`` with ``outcome``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instruction_id}/receipt/{outcome.value}"))


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
    return deadletters.build(
        stage=stage,
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),  # type: ignore[arg-type]
        value=message.value(),  # type: ignore[arg-type]
        error_class=type(error).__name__,
        field_name=error.field_name if isinstance(error, InvalidEventError) else None,
        reason=str(error),
        at=utc_now(),
    )


class Publisher:
    """Writes receipts and dead letters; :meth:`flush` confirms every one was acknowledged."""

    def __init__(self, settings: KafkaSettings, registry: SchemaRegistryClient) -> None:
        self._topics = settings.topics
        self._producer = Producer(settings.producer_config())
        self._receipts = EventSerializer(registry, PropagationReceipt)
        self._dead_letters = EventSerializer(registry, DeadLettered)
        self._failures: list[str] = []

    def receipt(self, receipt: PropagationReceipt) -> None:
        """Queue ``receipt`` on the receipts topic, keyed by subject id."""
        topic = self._topics.receipts
        self._produce(topic, receipt.subject.id.encode(), self._receipts(receipt, topic))

    def dead_letter(self, dead: DeadLettered) -> None:
        """Queue ``dead`` on the dead-letter topic, keyed like the original message."""
        topic = self._topics.dead_letters
        self._produce(topic, dead.original_key, self._dead_letters(dead, topic))

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued message is acknowledged; raise DeliveryError if not."""
        remaining = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        if remaining:
            raise DeliveryError(f"{remaining} message(s) unacknowledged after {timeout}s")
        if failures:
            raise DeliveryError(f"{len(failures)} message(s) not delivered: {failures[0]}")

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))
