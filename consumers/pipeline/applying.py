"""One chunk through the sink: decode, filter, leave out what is answered, apply, answer.

Messages whose destination header names other destinations only are skipped undecoded;
undecodable ones are dead-lettered. Copies of an instruction id within the chunk are
one instruction (applied and answered once, at its first position); ids the sink
answered recently (:class:`~consumers.protocol.RemembersAnswers`) get no second effect,
only a count. The rest are applied in one ``apply_batch`` when the sink offers it (one
culprit refusing the batch is isolated one by one), else one by one; a permanent
failure is dead-lettered (and answered FAILED if a receipt was requested). Each message
is marked done once its effect is durable (:mod:`.checkpoints`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message

from consumers.instruction_records import (
    SharedInstructions,
    decode_instructions,
    shared_instructions,
)
from consumers.pipeline.answering import REGISTRY, Answering
from consumers.pipeline.checkpoints import Checkpoints
from consumers.pipeline.progress import Progress, coordinates, partition_of
from consumers.pipeline.retrying import Retrier
from consumers.pipeline.telemetry import Telemetry
from consumers.protocol import (
    AppliesBatches,
    PermanentSinkError,
    RemembersAnswers,
    Sink,
    SinkResult,
)
from consumers.shared_decodes import SharedDecodes
from schemas.codec import EventDecoder
from schemas.errors import InvalidEventError
from schemas.events import InstructionIssued, utc_now
from schemas.taxonomy import Outcome
from schemas.topics import DESTINATION_HEADER, names_destination

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Item:
    """One accepted message of a chunk: its instructions this sink handles, or the
    reason it cannot be decoded."""

    message: Message
    instructions: tuple[InstructionIssued, ...]
    error: InvalidEventError | None


class Applier:
    """Processes a chunk for one sink; see the module doc."""

    def __init__(
        self,
        sink: Sink,
        progress: Progress,
        *,
        retrier: Retrier,
        answering: Answering,
        checkpoints: Checkpoints,
        telemetry: Telemetry,
        duplicate_window_seconds: float,
        decodes: SharedDecodes[SharedInstructions] | None = None,
    ) -> None:
        """``decodes``: records another pipeline of the process decoded already are
        taken from there."""
        self.sink = sink
        # What the sink offers, asked once: a check against a protocol costs tens of
        # microseconds, and chunks come by the thousand.
        self._batches = sink if isinstance(sink, AppliesBatches) else None
        self._remembers = sink if isinstance(sink, RemembersAnswers) else None
        self.progress = progress
        self._retrying = retrier
        self._answering = answering
        self._checkpoints = checkpoints
        self._telemetry = telemetry
        self._window = duplicate_window_seconds
        self._decodes = decodes
        self.decoder = EventDecoder(None)
        """The registry's decoder, once the runner runs."""

    def process(self, chunk: list[Message]) -> None:
        """Decode, leave out what is already answered, apply the rest (as one batch when
        the sink can), then answer each in order."""
        items: list[_Item] = []
        for message in chunk:
            if not self.accept(message):
                continue
            if self.addressed_elsewhere(message):
                items.append(_Item(message, (), None))
                continue
            try:
                decoded = self._retrying(partial(self.decode, message), REGISTRY, chunk)
            except InvalidEventError as exc:
                items.append(_Item(message, (), exc))
                continue
            handled = tuple(i for i in decoded if self.sink.handles(i))
            items.append(_Item(message, handled, None))
        ours = [instruction for item in items for instruction in item.instructions]
        answered = self._answered_before(ours, chunk)
        todo: dict[str, InstructionIssued] = {}
        for instruction in ours:
            if instruction.instruction_id not in answered:
                todo.setdefault(instruction.instruction_id, instruction)
        results = self._apply_all(list(todo.values()), chunk)
        # One clock reading for the chunk: its effects were all made durable by now.
        applied_at = utc_now()
        outcomes = dict(zip(todo, results, strict=True))
        for item in items:
            if item.error is not None:
                self._answering.dead_letter(item.message, item.error, "decode", chunk)
            for instruction in item.instructions:
                # The first copy takes the outcome; any other is a duplicate.
                outcome = outcomes.pop(instruction.instruction_id, None)
                if outcome is None:
                    self._telemetry.duplicate(instruction)
                else:
                    result, error = outcome
                    if error is not None:
                        self._answering.dead_letter(item.message, error, "apply", chunk)
                    # When the sink answered, unless it says.
                    at = result.applied_at or applied_at
                    self._answering.answer(item.message, instruction, result, at, chunk)
            self._checkpoints.mark_done(item.message)
        self._answering.send_receipts(chunk)

    def accept(self, message: Message) -> bool:
        """Whether ``message`` is a record of a partition this member still holds."""
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return False
        return partition_of(message) in self.progress.assigned

    def addressed_elsewhere(self, message: Message) -> bool:
        """True when the stream's header names other destinations only: skip, don't decode."""
        headers = cast(list[tuple[str, bytes | None]], message.headers() or [])
        for name, value in headers:
            if name == DESTINATION_HEADER and value is not None:
                return not names_destination(value, self.sink.destination)
        return False

    def decode(self, message: Message) -> tuple[InstructionIssued, ...]:
        """The instructions of ``message`` for this sink's destination."""
        if self._decodes is None:
            return decode_instructions(self.decoder, message.value(), self.sink.destination)
        shared = self._decodes.get(
            coordinates(message),
            lambda: shared_instructions(*self.decoder.decode_dict(message.value())),
        )
        return shared.instructions_for(self.sink.destination)

    def _answered_before(
        self, instructions: list[InstructionIssued], chunk: list[Message]
    ) -> set[str]:
        """The ids of ``instructions`` the sink answered within the duplicate window (none
        if it cannot say)."""
        sink = self._remembers
        window = self._window
        if not instructions or not window or sink is None:
            return set()
        ids = [i.instruction_id for i in instructions]
        try:
            answered = self._retrying(
                lambda: sink.answered(ids), instructions[0].destination, chunk
            )
        except PermanentSinkError as exc:
            # Not knowing is safe: the instructions are applied (idempotently) and answered.
            log.warning("cannot tell which were answered (%s): answering all", exc)
            return set()
        since = utc_now() - timedelta(seconds=window)
        return {i for i, at in answered.items() if at >= since}

    def _apply_all(
        self, instructions: list[InstructionIssued], chunk: list[Message]
    ) -> list[tuple[SinkResult, Exception | None]]:
        """Each instruction's result, and the permanent error that failed it if any."""
        sink = self._batches
        if len(instructions) > 1 and sink is not None:
            destination = instructions[0].destination
            try:
                results = self._retrying(lambda: sink.apply_batch(instructions), destination, chunk)
                if len(results) != len(instructions):
                    raise PermanentSinkError(
                        f"apply_batch answered {len(results)} of {len(instructions)}"
                    )
                return [(result, None) for result in results]
            except (PermanentSinkError, InvalidEventError) as exc:
                # Nothing of the batch was applied: one by one isolates the culprit.
                log.warning("batch refused (%s); applying one by one", type(exc).__name__)
        return [self._apply_one(instruction, chunk) for instruction in instructions]

    def _apply_one(
        self, instruction: InstructionIssued, chunk: list[Message]
    ) -> tuple[SinkResult, Exception | None]:
        try:
            result = self._retrying(
                lambda: self.sink.apply(instruction), instruction.destination, chunk
            )
        except (PermanentSinkError, InvalidEventError) as exc:
            return SinkResult(Outcome.FAILED, reason=f"{type(exc).__name__}: {exc}"), exc
        return result, None
