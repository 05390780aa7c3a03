"""A duplicate instruction costs nothing downstream, and a receipt is never lost for it.

Driven through the runner's chunk processing and checkpoint with in-memory sinks and
publishers (the fakes of ``test_runner_receipts``): no broker. "Answered" is remembered
only after the flush that acknowledged the receipt, so a flush that fails (a crash
before the broker acknowledged) leaves the instruction to be answered again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from consumers.protocol import SinkError
from consumers.publisher import DeliveryError
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import InstructionIssued, utc_now
from schemas.taxonomy import Outcome
from tests.unit.consumers.test_runner_receipts import (
    KAFKA,
    TOPIC,
    FakeMessage,
    FakePublisher,
    FakeSink,
    counted,
    instruction,
)


@dataclass
class RememberingSink(FakeSink):
    """A fake sink that keeps answered ids like the real stores do."""

    remembered: dict[str, datetime] = field(default_factory=dict)
    unavailable: bool = False

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        return {i: self.remembered[i] for i in instruction_ids if i in self.remembered}

    def remember(self, instruction_ids: Collection[str]) -> None:
        if self.unavailable:
            raise SinkError("store is read-only")
        self.remembered.update(dict.fromkeys(instruction_ids, utc_now()))


@dataclass
class LosingPublisher(FakePublisher):
    """Its flush fails: the broker never acknowledged what was queued."""

    def flush(self, timeout: float = 60.0) -> None:
        raise DeliveryError("1 message(s) not delivered: broker down")


class Relay:
    """One runner fed chunk after chunk, offsets continuing on partition 0."""

    def __init__(self, sink: FakeSink, publisher: FakePublisher | None = None, **options: Any):
        self.runner = SinkRunner(sink, KAFKA, serve_http=False, options=RunnerSettings(**options))
        self.publisher = publisher or FakePublisher()
        self.runner.answering.publisher = cast(Any, self.publisher)
        self.runner.progress.assigned.add((TOPIC, 0))
        self._by_offset: dict[int, InstructionIssued] = {}
        self.runner.applier.decode = lambda message: (self._by_offset[message.offset()],)  # type: ignore[method-assign]

    def chunk(self, *instructions: InstructionIssued) -> None:
        """Process ``instructions`` as one chunk, then checkpoint (flush, remember)."""
        start = len(self._by_offset)
        for n, item in enumerate(instructions):
            self._by_offset[start + n] = item
        messages = [FakeMessage(start + n) for n in range(len(instructions))]
        self.runner.applier.process(cast(Any, messages))
        self.runner.checkpoints.checkpoint()

    def duplicates(self) -> float:
        value = self.runner.metrics.registry.get_sample_value(
            "consent_relay_sink_duplicates_total",
            {"sink_family": "MARKETING", "destination": "suppression_list"},
        )
        return value or 0.0


def receipts(publisher: FakePublisher) -> list[tuple[str, Outcome]]:
    return [(r.instruction_id, r.outcome) for r in publisher.receipts]


def test_copies_in_one_chunk_are_applied_and_answered_once() -> None:
    sink = FakeSink()  # remembers nothing: the chunk alone decides
    relay = Relay(sink)
    withdrawal, other = instruction(receipt_requested=True), instruction(receipt_requested=True)
    relay.chunk(withdrawal, withdrawal, other, withdrawal, withdrawal, withdrawal)
    assert sink.applied == [withdrawal.instruction_id, other.instruction_id]
    assert receipts(relay.publisher) == [
        (withdrawal.instruction_id, Outcome.APPLIED),
        (other.instruction_id, Outcome.APPLIED),
    ]
    assert relay.duplicates() == 4
    assert counted(relay.runner, Outcome.APPLIED) == 2
    assert relay.runner.progress.finished == {(TOPIC, 0, n) for n in range(6)}


def test_an_answered_instruction_gets_no_second_effect_or_receipt() -> None:
    sink = RememberingSink()
    relay = Relay(sink)
    withdrawal, grant = instruction(receipt_requested=True), instruction(receipt_requested=False)
    relay.chunk(withdrawal, grant)
    assert set(sink.remembered) == {withdrawal.instruction_id, grant.instruction_id}
    for _ in range(4):
        relay.chunk(withdrawal, grant)
    assert sink.applied == [withdrawal.instruction_id, grant.instruction_id]
    assert receipts(relay.publisher) == [(withdrawal.instruction_id, Outcome.APPLIED)]
    assert relay.duplicates() == 8


def test_a_receipt_the_broker_did_not_acknowledge_is_sent_again() -> None:
    # Applied, receipt queued, then the flush fails: the sink "crashes" before the
    # receipt is acknowledged, and nothing is remembered as answered.
    sink = RememberingSink()
    withdrawal = instruction(receipt_requested=True)
    crashed = Relay(sink, LosingPublisher())
    with pytest.raises(DeliveryError):
        crashed.chunk(withdrawal)
    assert sink.remembered == {}
    # The restarted sink gets the same instruction again: applied again (idempotent in
    # a real store) and, above all, answered.
    restarted = Relay(sink)
    restarted.chunk(withdrawal)
    assert receipts(restarted.publisher) == [(withdrawal.instruction_id, Outcome.APPLIED)]
    assert set(sink.remembered) == {withdrawal.instruction_id}
    assert restarted.duplicates() == 0


def test_an_instruction_that_failed_is_attempted_again() -> None:
    withdrawal = instruction(receipt_requested=True)
    sink = RememberingSink(refused={withdrawal.instruction_id})
    relay = Relay(sink)
    relay.chunk(withdrawal)
    assert sink.remembered == {}
    assert len(relay.publisher.dead_letters) == 1
    sink.refused.clear()  # e.g. redriven once the cause is fixed
    relay.chunk(withdrawal)
    assert sink.applied == [withdrawal.instruction_id]
    assert receipts(relay.publisher) == [
        (withdrawal.instruction_id, Outcome.FAILED),
        (withdrawal.instruction_id, Outcome.APPLIED),
    ]


def test_an_old_duplicate_is_answered_again() -> None:
    # The stream keeps a subject's last 50 completed propagations; a duplicate of an
    # event it has forgotten waits for receipts again, so an old answer is repeated.
    withdrawal = instruction(receipt_requested=True)
    long_ago = utc_now() - timedelta(hours=2)
    sink = RememberingSink(remembered={withdrawal.instruction_id: long_ago})
    relay = Relay(sink, duplicate_window_seconds=3600)
    relay.chunk(withdrawal)
    assert receipts(relay.publisher) == [(withdrawal.instruction_id, Outcome.APPLIED)]
    assert sink.remembered[withdrawal.instruction_id] > long_ago
    relay.chunk(withdrawal)
    assert len(relay.publisher.receipts) == 1
    assert relay.duplicates() == 1


def test_a_zero_window_answers_every_copy_in_another_chunk() -> None:
    withdrawal = instruction(receipt_requested=True)
    sink = RememberingSink()
    relay = Relay(sink, duplicate_window_seconds=0)
    relay.chunk(withdrawal)
    relay.chunk(withdrawal)
    assert len(relay.publisher.receipts) == 2
    assert sink.remembered == {}


def test_remembering_that_fails_only_costs_a_repeated_receipt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    withdrawal = instruction(receipt_requested=True)
    sink = RememberingSink(unavailable=True)
    relay = Relay(sink)
    relay.chunk(withdrawal)
    assert "could not remember 1 answered instruction(s)" in caplog.text
    sink.unavailable = False
    relay.chunk(withdrawal)
    assert len(relay.publisher.receipts) == 2
    relay.chunk(withdrawal)
    assert len(relay.publisher.receipts) == 2


def test_the_window_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="duplicate_window_seconds"):
        RunnerSettings(duplicate_window_seconds=-1)
