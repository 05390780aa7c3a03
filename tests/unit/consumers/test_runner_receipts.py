"""The runner answers only the instructions whose event the stream tracks.

A grant's instruction (``receipt_requested=False``) is applied, counted and, if it
fails for good, dead-lettered like any other, but no receipt is published; a
withdrawal's (``True``) gets one, FAILED included. Driven through the runner's chunk
processing with an in-memory sink and publisher: no broker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from consumers.protocol import APPLIED, PermanentSinkError, SinkResult
from consumers.runner import SinkRunner
from schemas.events import (
    ConsentStateRecorded,
    DeadLettered,
    InstructionIssued,
    PropagationReceipt,
    Subject,
)
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Outcome, Purpose, Regime, SinkFamily, SubjectKind

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KAFKA = KafkaSettings(bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1")
TOPIC = KAFKA.topics.instructions(SinkFamily.MARKETING)


@dataclass
class FakeMessage:
    """What the runner reads of a consumed message."""

    at: int
    topic_name: str = TOPIC

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def error(self) -> None:
        return None

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def key(self) -> bytes:
        return b"subject-1"

    def value(self) -> bytes:
        return b"instruction"


@dataclass
class FakePublisher:
    """Keeps what would have been produced."""

    receipts: list[PropagationReceipt] = field(default_factory=list)
    dead_letters: list[DeadLettered] = field(default_factory=list)

    def receipt(self, receipt: PropagationReceipt, source: Any = None) -> None:
        self.receipts.append(receipt)

    def send_receipts(self) -> None:
        pass

    def dead_letter(self, dead: DeadLettered) -> None:
        self.dead_letters.append(dead)

    def flush(self, timeout: float = 60.0) -> None:
        del timeout


@dataclass
class FakeSink:
    """Applies everything except the instruction ids it is told to refuse for good."""

    family: ClassVar[SinkFamily] = SinkFamily.MARKETING
    refused: set[str] = field(default_factory=set)
    applied: list[str] = field(default_factory=list)

    @property
    def destination(self) -> str:
        return "suppression_list"

    def handles(self, instruction: InstructionIssued) -> bool:
        return instruction.destination == self.destination

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        if instruction.instruction_id in self.refused:
            raise PermanentSinkError("refused")
        self.applied.append(instruction.instruction_id)
        return APPLIED

    def needs_bootstrap(self) -> bool:
        return False

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        del state

    def close(self) -> None:
        return None


def instruction(*, receipt_requested: bool) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=Subject(id="subject-1", kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=Action.SUPPRESS if receipt_requested else Action.ALLOW,
        purposes=(Purpose.MARKETING_EMAIL,),
        regime=Regime.GDPR,
        occurred_at=T0,
        issued_at=T0,
        receipt_requested=receipt_requested,
    )


def process(
    sink: FakeSink, instructions: list[InstructionIssued]
) -> tuple[SinkRunner, FakePublisher]:
    """Run one chunk of ``instructions`` (offsets 0, 1, ...) through a runner."""
    runner = SinkRunner(sink, KAFKA, serve_http=False)
    publisher = FakePublisher()
    runner.answering.publisher = cast(Any, publisher)
    runner.progress.assigned.add((TOPIC, 0))
    by_offset = dict(enumerate(instructions))
    runner.applier.decode = lambda message: (by_offset[message.offset()],)  # type: ignore[method-assign]
    runner.applier.process([cast(Any, FakeMessage(i)) for i in range(len(instructions))])
    return runner, publisher


def counted(runner: SinkRunner, outcome: Outcome) -> float:
    value = runner.metrics.registry.get_sample_value(
        "consent_relay_sink_instructions_total",
        {"sink_family": "MARKETING", "destination": "suppression_list", "outcome": outcome.value},
    )
    return value or 0.0


def test_a_grant_is_applied_and_counted_without_a_receipt() -> None:
    sink = FakeSink()
    grant = instruction(receipt_requested=False)
    runner, publisher = process(sink, [grant])
    assert sink.applied == [grant.instruction_id]
    assert publisher.receipts == []
    assert counted(runner, Outcome.APPLIED) == 1
    assert runner.progress.done == {(TOPIC, 0): 1}


def test_a_withdrawal_gets_its_receipt() -> None:
    sink = FakeSink()
    grant, withdrawal = instruction(receipt_requested=False), instruction(receipt_requested=True)
    runner, publisher = process(sink, [grant, withdrawal])
    assert sink.applied == [grant.instruction_id, withdrawal.instruction_id]
    assert [(r.instruction_id, r.outcome) for r in publisher.receipts] == [
        (withdrawal.instruction_id, Outcome.APPLIED)
    ]
    assert counted(runner, Outcome.APPLIED) == 2
    assert runner.progress.done == {(TOPIC, 0): 2}


def test_a_refused_grant_is_dead_lettered_without_a_receipt() -> None:
    grant, withdrawal = instruction(receipt_requested=False), instruction(receipt_requested=True)
    sink = FakeSink(refused={grant.instruction_id, withdrawal.instruction_id})
    runner, publisher = process(sink, [grant, withdrawal])
    assert [d.source_offset for d in publisher.dead_letters] == [0, 1]
    assert [(r.instruction_id, r.outcome) for r in publisher.receipts] == [
        (withdrawal.instruction_id, Outcome.FAILED)
    ]
    assert counted(runner, Outcome.FAILED) == 2
    assert runner.progress.done == {(TOPIC, 0): 2}


def test_an_instruction_written_before_the_flag_still_wants_its_receipt() -> None:
    # Release 1 had no receipt_requested: its default keeps old instructions answered.
    old = {f: getattr(instruction(receipt_requested=True), f) for f in InstructionIssued.__slots__}
    del old["receipt_requested"]
    assert InstructionIssued(**old).receipt_requested is True
