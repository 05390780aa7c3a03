"""What a sink says back: receipts, dead letters, and the ids it has answered.

Receipts and dead letters go through the runner's :class:`~consumers.publisher.Publisher`
(queued, then flushed: only an acknowledged flush lets offsets move). An instruction is
remembered as answered (:class:`~consumers.protocol.RemembersAnswers`) only after the
flush that acknowledged its receipt, and only if it was APPLIED or SKIPPED: a FAILED one
is attempted again when it returns. Queuing waits out a registry that is unreachable
(:mod:`.retrying`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from confluent_kafka import Message

from consumers.pipeline.retrying import Retrier
from consumers.pipeline.telemetry import Telemetry
from consumers.protocol import RemembersAnswers, SinkError, SinkResult
from consumers.publisher import Publisher, build_dead_letter, build_receipt
from schemas.events import InstructionIssued
from schemas.taxonomy import Outcome

log = logging.getLogger(__name__)

REGISTRY = "schema_registry"
"""Destination label of retries while the schema registry is unreachable."""

FLUSH_TIMEOUT_SECONDS = 330.0
"""Longest a flush waits for receipts and dead letters to be acknowledged. The
producer's own delivery timeout (librdkafka's message.timeout.ms, 300 s) fails a
message first, so a broker outage shorter than that stalls the sink, as it must,
instead of ending it as an unacknowledged flush."""


class Answering:
    """One pipeline's receipts, dead letters and answered ids; see the module doc."""

    def __init__(
        self,
        stage: str,
        telemetry: Telemetry,
        retrier: Retrier,
        remembers: RemembersAnswers | None,
        duplicate_window_seconds: float,
    ) -> None:
        self.stage = stage
        self.publisher: Publisher | None = None
        """Set while the runner runs."""
        self.answered: list[str] = []
        """Ids answered since the last flush: remembered once their receipts are acked."""
        self._telemetry = telemetry
        self._retrying = retrier
        self._remembers = remembers
        self._window = duplicate_window_seconds

    def answer(
        self,
        message: Message,
        instruction: InstructionIssued,
        result: SinkResult,
        at: datetime,
        chunk: Sequence[Message],
    ) -> None:
        """Queue the receipt if the stream asked for one (sent with the chunk's others),
        and count the outcome; an APPLIED or SKIPPED one is remembered after the next
        flush."""
        if instruction.receipt_requested:
            receipt = build_receipt(instruction, result, at)
            publisher = self._require_publisher()
            source = (message.topic() or "", message.partition() or 0)
            self._retrying(lambda: publisher.receipt(receipt, source), REGISTRY, chunk)
        if result.outcome is not Outcome.FAILED:
            self.answered.append(instruction.instruction_id)
        self._telemetry.finished(instruction, result.outcome, at)

    def send_receipts(self, chunk: Sequence[Message]) -> None:
        """Send the receipts queued for the chunk."""
        self._retrying(self._require_publisher().send_receipts, REGISTRY, chunk)

    def dead_letter(
        self,
        message: Message,
        error: Exception,
        step: str,
        chunk: Sequence[Message] | None = None,
    ) -> None:
        """Queue ``message`` as a dead letter with ``error`` as its reason and count it."""
        log.warning(
            "dead-lettering %s[%s]@%s at %s: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            step,
            type(error).__name__,
        )
        dead = build_dead_letter(stage=self.stage, message=message, error=error)
        publisher = self._require_publisher()
        self._retrying(lambda: publisher.dead_letter(dead), REGISTRY, chunk)
        self._telemetry.dead_lettered(error)

    def flush(self) -> None:
        """Wait until the broker acknowledged every receipt and dead letter queued."""
        if self.publisher is not None:
            self.publisher.flush(FLUSH_TIMEOUT_SECONDS)

    def remember_answered(self) -> None:
        """Tell the sink which instructions are answered, now that their receipts are acked."""
        ids, self.answered = self.answered, []
        sink = self._remembers
        if not ids or not self._window or sink is None:
            return
        try:
            sink.remember(ids)
        except SinkError as exc:
            # Safe to go on: a duplicate of these is answered again, with the same receipt id.
            log.warning("could not remember %d answered instruction(s): %s", len(ids), exc)

    def _require_publisher(self) -> Publisher:
        if self.publisher is None:
            raise RuntimeError("runner is not running")
        return self.publisher
