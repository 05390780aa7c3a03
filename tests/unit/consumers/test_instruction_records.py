"""A sink's instruction decode gives what the full decode gives, and refuses what it
refuses, with the same reason (no broker: single-object encoding); of an
InstructionsIssued it takes the destination's own items, each read and refused as the
InstructionIssued it stands for."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.decoding import decode_as
from consumers.instruction_records import (
    SharedInstructions,
    decode_instructions,
    instruction_from_avro,
    shared_instructions,
)
from schemas.codec import EventDecoder, encode_single_object, encode_single_object_dict
from schemas.converters import to_dict
from schemas.errors import InvalidEventError
from schemas.events import (
    ConsentChanged,
    InstructionIssued,
    InstructionsIssued,
    Subject,
    instructions_in,
    issued_together,
)
from schemas.examples import example
from schemas.taxonomy import (
    Action,
    Channel,
    Purpose,
    Regime,
    Right,
    SinkFamily,
    SubjectKind,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def instruction(n: int) -> InstructionIssued:
    purposes = tuple(Purpose)[n % 3 : n % 3 + 1 + n % 2]
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="RightsRequested" if n % 4 == 0 else "ConsentChanged",
        subject=Subject(id=f"subject-{n}", kind=tuple(SubjectKind)[n % 2]),
        sink_family=tuple(SinkFamily)[n % 3],
        destination=("suppression_list", "analytics_store", "criteo")[n % 3],
        action=tuple(Action)[n % len(Action)],
        purposes=purposes,
        channels=(Channel.EMAIL, Channel.SMS)[: n % 3],
        right=tuple(Right)[n % len(Right)] if n % 4 == 0 else None,
        regime=tuple(Regime)[n % len(Regime)],
        occurred_at=T0 + timedelta(milliseconds=n),
        issued_at=T0 + timedelta(seconds=1, milliseconds=n),
        receipt_requested=n % 5 != 0,
    )


def test_the_sinks_decode_equals_the_full_decode() -> None:
    decoder = EventDecoder(None)
    for i in (instruction(n) for n in range(40)):
        data = encode_single_object(i)
        full = decode_as(decoder, data, InstructionIssued)
        assert decode_instructions(decoder, data, i.destination) == (full,)
        assert full == i


def refusal(decoder: EventDecoder, data: bytes, fast: bool) -> str:
    decode: Any = (
        (lambda d, b: decode_instructions(d, b, "criteo"))
        if fast
        else (lambda d, b: decode_as(d, b, InstructionIssued))
    )
    with pytest.raises(InvalidEventError) as caught:
        decode(decoder, data)
    return f"{type(caught.value).__name__}: {caught.value}"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.update(action="UNKNOWN"),
        lambda d: d.update(sink_family="UNKNOWN"),
        lambda d: d.update(regime="UNKNOWN"),
        lambda d: d.update(right="UNKNOWN"),
        lambda d: d.update(purposes=["MARKETING_EMAIL", "UNKNOWN"]),
        lambda d: d.update(channels=["UNKNOWN"]),
        lambda d: d["subject"].update(kind="UNKNOWN"),
        lambda d: d["subject"].update(id="a\x00b"),
        lambda d: d["subject"].update(id=""),
    ],
)
def test_the_sinks_decode_refuses_what_the_full_decode_refuses(spoil: Any) -> None:
    avro = to_dict(instruction(4))
    spoil(avro)
    data = encode_single_object_dict(InstructionIssued, avro)
    decoder = EventDecoder(None)
    assert refusal(decoder, data, fast=True) == refusal(decoder, data, fast=False)


def test_the_sinks_decode_refuses_another_event_type() -> None:
    data = encode_single_object(example(ConsentChanged))
    decoder = EventDecoder(None)
    assert refusal(decoder, data, fast=True) == (
        "UnexpectedEventError: ConsentChanged where InstructionIssued or InstructionsIssued"
        " was expected"
    )


def test_of_many_destinations_a_sink_takes_its_own_as_the_full_decode_reads_them() -> None:
    decoder = EventDecoder(None)
    record = example(InstructionsIssued)
    data = encode_single_object(record)
    for destination in ("criteo", "google", "bing"):
        fast = decode_instructions(decoder, data, destination)
        assert fast == instructions_in(decoder.decode(data), destination)
        assert [i.destination for i in fast] == [destination][: len(fast)]
    assert decode_instructions(decoder, data, "bing") == ()


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.update(action="UNKNOWN"),
        lambda d: d.update(purposes=["UNKNOWN"]),
        lambda d: d.update(channels=["UNKNOWN"]),
    ],
)
def test_a_spoilt_item_is_refused_as_its_instruction_and_only_by_its_destination(
    spoil: Any,
) -> None:
    record = example(InstructionsIssued)
    avro = to_dict(record)
    spoil(avro["instructions"][0])
    data = encode_single_object_dict(InstructionsIssued, avro)
    decoder = EventDecoder(None)
    with pytest.raises(InvalidEventError) as caught:
        decode_instructions(decoder, data, "criteo")
    (criteo,) = instructions_in(record, "criteo")
    alone = to_dict(criteo)
    spoil(alone)
    single = encode_single_object_dict(InstructionIssued, alone)
    assert f"{type(caught.value).__name__}: {caught.value}" == refusal(decoder, single, fast=False)
    # The other partner's pipeline takes its own item as usual.
    assert decode_instructions(decoder, data, "google") == instructions_in(record, "google")


def test_values_from_dict_would_convert_or_refuse_take_its_path() -> None:
    avro = to_dict(instruction(1))
    avro["occurred_at"] = int(T0.timestamp() * 1000)  # epoch ms: from_dict converts it
    assert instruction_from_avro(avro).occurred_at == T0
    avro["destination"] = 7
    with pytest.raises(InvalidEventError, match="destination"):
        instruction_from_avro(avro)


def outcome(take: Any) -> Any:
    """What ``take()`` gives, or the refusal it raises (type and reason)."""
    try:
        return take()
    except InvalidEventError as exc:
        return f"{type(exc).__name__}: {exc}"


def same_for_every_destination(data: bytes) -> SharedInstructions:
    """The shared decode of ``data`` gives each destination what its own decode gives."""
    decoder = EventDecoder(None)
    event_type, avro = decoder.decode_dict(data)
    shared = shared_instructions(event_type, avro)
    for destination in ("criteo", "google", "bing", "suppression_list"):
        assert outcome(lambda d=destination: shared.instructions_for(d)) == outcome(
            lambda d=destination: decode_instructions(decoder, data, d)
        )
    return shared


def test_the_shared_decode_converts_every_item_once_as_each_destination_would() -> None:
    record = example(InstructionsIssued)
    shared = same_for_every_destination(encode_single_object(record))
    assert shared.by_destination is not None
    for n in range(20):
        many = issued_together(
            [
                replace(instruction(n), destination=d, instruction_id=str(uuid.uuid4()))
                for d in ("criteo", "google", "criteo")[: 1 + n % 3]
            ]
        )
        assert same_for_every_destination(encode_single_object(many)).by_destination is not None


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["instructions"][0].update(action="UNKNOWN"),
        lambda d: d["instructions"][1].update(purposes=["UNKNOWN"]),
        lambda d: d["instructions"][0].update(channels=["UNKNOWN"]),
        lambda d: d.update(regime="UNKNOWN"),
        lambda d: d.update(right="UNKNOWN"),
        lambda d: d["subject"].update(id="a\x00b"),
        lambda d: d["subject"].update(kind="UNKNOWN"),
        lambda d: d.update(instructions=[]),
    ],
)
def test_the_shared_decode_leaves_a_spoilt_record_to_each_destination(spoil: Any) -> None:
    avro = to_dict(example(InstructionsIssued))
    spoil(avro)
    shared = same_for_every_destination(encode_single_object_dict(InstructionsIssued, avro))
    assert shared.by_destination is None


def test_the_shared_decode_of_one_instruction_or_another_type_is_each_destinations() -> None:
    for record in (instruction(2), example(ConsentChanged)):
        shared = same_for_every_destination(encode_single_object(record))
        assert shared.by_destination is None
