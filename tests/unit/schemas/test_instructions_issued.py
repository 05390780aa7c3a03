"""InstructionsIssued: one record for several destinations of one event, read as the
InstructionIssued each destination would otherwise get."""

from __future__ import annotations

from schemas.codec import EventDecoder, encode_single_object
from schemas.events import (
    InstructionIssued,
    InstructionsIssued,
    PropagationReceipt,
    instructions_in,
    issued_together,
)
from schemas.examples import example


def test_each_item_reads_as_the_instruction_issued_of_its_destination() -> None:
    record = example(InstructionsIssued)
    issued = instructions_in(record)
    assert [i.destination for i in issued] == ["criteo", "google"]
    for item, instruction in zip(record.instructions, issued, strict=True):
        assert instruction == InstructionIssued(
            instruction_id=item.instruction_id,
            event_id=record.event_id,
            event_type=record.event_type,
            subject=record.subject,
            sink_family=record.sink_family,
            destination=item.destination,
            action=item.action,
            purposes=item.purposes,
            channels=item.channels,
            right=record.right,
            regime=record.regime,
            occurred_at=record.occurred_at,
            issued_at=record.issued_at,
            receipt_requested=record.receipt_requested,
        )


def test_a_destination_takes_only_its_own_items() -> None:
    record = example(InstructionsIssued)
    (google,) = instructions_in(record, "google")
    assert google.destination == "google"
    assert instructions_in(record, "bing") == ()


def test_a_single_instruction_and_other_records_read_as_before() -> None:
    single = example(InstructionIssued)
    assert instructions_in(single) == (single,)
    assert instructions_in(single, single.destination) == (single,)
    assert instructions_in(single, "someone_else") == ()
    assert instructions_in(example(PropagationReceipt)) == ()


def test_it_survives_the_wire() -> None:
    record = example(InstructionsIssued)
    assert EventDecoder(None).decode(encode_single_object(record)) == record


def test_instructions_of_one_event_issued_together_read_back_as_themselves() -> None:
    record = example(InstructionsIssued)
    assert issued_together(instructions_in(record)) == record
