"""What a sink says back: receipts, dead letters, and the ids it has answered.

Receipts and dead letters go through the runner's :class:`~consumers.publisher.Publisher`
(queued, then flushed: only an acknowledged flush lets offsets move); queuing waits out
a registry that is unreachable (:mod:`.retrying`).

Duplicates cost nothing downstream. The same instruction id can arrive again: a
producer re-sending an event, a stream re-processing a batch, a redelivery after a
crash. Copies within a chunk are one instruction (applied and answered once, at its
first position). Across chunks, a sink that :class:`~consumers.protocol.RemembersAnswers`
is asked which of the chunk's ids it has *answered*, and those get no second effect
(no second partner call) and no second receipt, only a count in
``consent_relay_sink_duplicates_total``.

Why "answered" and not "applied": the receipt is what proves propagation, and a sink
that crashed after applying but before the broker acknowledged the receipt must
still send it when the instruction comes back. So an instruction is remembered as
answered only after the flush that acknowledged its receipt (grants, which want
none, after the same flush), and only if it was APPLIED or SKIPPED: a FAILED one
(dead-lettered) is attempted again normally when it returns, e.g. redriven. A crash
between that flush and ``remember`` loses nothing: the instruction is not
remembered, so its redelivery is applied again idempotently (the store answers its
first result, a partner is not called twice) and answered again with the same
receipt id, which the stream counts once. Remembering that fails is logged and has
the same effect. Only a *recent* answer (``duplicate_window_seconds``, an hour by
default) silences a duplicate: the stream keeps a subject's last 50 completed
propagations, and a duplicate of an event it has forgotten starts a new one that
waits for receipts, so an older duplicate is answered again, still without a second
effect.
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
