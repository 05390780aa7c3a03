"""A partner's runner on the partners' family topic: of each InstructionsIssued it takes
only its own items, and records whose destination header does not name it are skipped
without being decoded. Driven through the runner's chunk processing with real
single-object encoded records and an in-memory sink and publisher: no broker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from consumers.protocol import APPLIED, SinkResult
from consumers.runner import SinkRunner
from consumers.shared_decodes import SharedDecodes
from schemas.codec import encode_single_object
from schemas.events import (
    ConsentStateRecorded,
    DeadLettered,
    DestinationInstruction,
    InstructionIssued,
    InstructionsIssued,
    PropagationReceipt,
    instruction_id,
)
from schemas.examples import example
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Purpose, SinkFamily
from schemas.topics import DESTINATION_HEADER, destinations_header

KAFKA = KafkaSettings(bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1")
FAMILY = SinkFamily.PARTNER_SHARING
TOPIC = KAFKA.topics.instructions(FAMILY)


@dataclass
class FakeMessage:
    """What the runner reads of a consumed message."""

    at: int
    data: bytes
    names: list[str]

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def error(self) -> None:
        return None

    def headers(self) -> list[tuple[str, bytes]]:
        return [(DESTINATION_HEADER, destinations_header(self.names))]

    def key(self) -> bytes:
        return b"subject-1"

    def value(self) -> bytes:
        return self.data


@dataclass
class FakePublisher:
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
class FakePartner:
    family: ClassVar[SinkFamily] = FAMILY
    applied: list[InstructionIssued] = field(default_factory=list)

    @property
    def destination(self) -> str:
        return "google"

    def handles(self, instruction: InstructionIssued) -> bool:
        return instruction.destination == self.destination

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        self.applied.append(instruction)
        return APPLIED

    def needs_bootstrap(self) -> bool:
        return False

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        del state

    def close(self) -> None:
        return None


def item(event_id: str, partner: str, action: Action = Action.SUPPRESS) -> DestinationInstruction:
    return DestinationInstruction(
        # A second action for the same partner has an id of its own (streams.intake.fanout).
        instruction_id=instruction_id(event_id, FAMILY, partner)
        if action is Action.SUPPRESS
        else str(uuid.uuid4()),
        destination=partner,
        action=action,
        purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
    )


def record(*items_of: tuple[str, Action]) -> InstructionsIssued:
    base = example(InstructionsIssued)
    return example(
        InstructionsIssued,
        instructions=tuple(item(base.event_id, p, a) for p, a in items_of),
        event_id=base.event_id,
    )


def process(
    messages: list[FakeMessage], sink: FakePartner | None = None, decodes: Any = None
) -> tuple[FakePartner, FakePublisher]:
    sink = sink or FakePartner()
    runner = SinkRunner(sink, KAFKA, serve_http=False, decodes=decodes)
    publisher = FakePublisher()
    runner.answering.publisher = cast(Any, publisher)
    runner.progress.assigned.add((TOPIC, 0))
    runner.applier.process([cast(Any, m) for m in messages])
    assert runner.progress.done == {(TOPIC, 0): len(messages)}
    return sink, publisher


def test_a_partner_takes_only_its_own_items_and_answers_them() -> None:
    both = record(("criteo", Action.SUPPRESS), ("google", Action.SUPPRESS))
    sink, publisher = process([FakeMessage(0, encode_single_object(both), ["criteo", "google"])])
    assert [i.destination for i in sink.applied] == ["google"]
    (mine,) = [i for i in both.instructions if i.destination == "google"]
    assert sink.applied[0].instruction_id == mine.instruction_id
    assert sink.applied[0].event_id == both.event_id
    assert [(r.instruction_id, r.destination) for r in publisher.receipts] == [
        (mine.instruction_id, "google")
    ]


def test_a_record_for_others_only_is_skipped_undecoded() -> None:
    # Garbage that would be dead-lettered if it were decoded.
    sink, publisher = process([FakeMessage(0, b"not avro", ["criteo", "bing"])])
    assert sink.applied == []
    assert publisher.dead_letters == []
    assert publisher.receipts == []


def test_two_actions_for_one_partner_are_both_applied_in_order() -> None:
    two = record(("google", Action.SUPPRESS), ("google", Action.ALLOW), ("bing", Action.ALLOW))
    sink, publisher = process([FakeMessage(0, encode_single_object(two), ["google", "bing"])])
    assert [i.action for i in sink.applied] == [Action.SUPPRESS, Action.ALLOW]
    assert len(publisher.receipts) == 2


@dataclass
class OtherPartner(FakePartner):
    @property
    def destination(self) -> str:
        return "criteo"


def test_runners_sharing_decodes_decode_a_record_once_and_each_take_their_own() -> None:
    both = record(("criteo", Action.SUPPRESS), ("google", Action.SUPPRESS))
    message = FakeMessage(0, encode_single_object(both), ["criteo", "google"])
    decodes = SharedDecodes()
    google, _ = process([message], FakePartner(), decodes)
    # The second runner never decodes the bytes: they are gone.
    message.data = b"not avro any more"
    criteo, publisher = process([message], OtherPartner(), decodes)
    assert [i.destination for i in google.applied] == ["google"]
    assert [i.destination for i in criteo.applied] == ["criteo"]
    assert [r.destination for r in publisher.receipts] == ["criteo"]
