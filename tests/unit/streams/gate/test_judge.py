"""The consent gate's batch work without Kafka: decoding, deciding, dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import Message

from schemas.codec import EventDecoder, encode_single_object
from schemas.converters import from_dict, to_dict
from schemas.errors import InvalidEventError, ValidationError
from schemas.events import DataEventCaptured
from schemas.taxonomy import Choice, Purpose, Recipient
from streams.gate.judge import GateJudge, UnexpectedEventError, read_data_event
from streams.gate.rules import GatePolicy
from streams.gate.state import SubjectStates
from streams.intake.agent import Intake
from streams.intake.state_topic import StateReader
from streams.intake.times import to_ms

DECODER = EventDecoder(None)


def judge_for(harness: Any) -> GateJudge:
    ctx = harness.ctx
    return GateJudge(
        policy=GatePolicy(),
        topics=ctx.topics,
        state=ctx.state,
        decoder=DECODER,
        encode=ctx.encode,
        copartitioned=ctx.copartitioned,
    )


def kafka_message(topic: str, value: bytes, key: bytes | None, partition: int, offset: int) -> Any:
    return Message(topic=topic, partition=partition, offset=offset, key=key, value=value)


def data_message(harness: Any, event: DataEventCaptured, partition: int = 0, **kw: Any) -> Any:
    key = kw.get("key", event.subject.id.encode())
    offset = harness.offsets.get("data", 0)
    harness.offsets["data"] = offset + 1
    return kafka_message(
        harness.topics.data_events, encode_single_object(event), key, partition, offset
    )


def test_allowed_bytes_go_untouched_to_the_same_partition(harness: Any, make: Any) -> None:
    topics = harness.topics
    subject = make.subject()
    consent = [
        make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL, subject=subject, at=make.ago(100)),
        make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL, subject=subject, at=make.ago(5)),
    ]
    asyncio.run(Intake(harness.ctx).handle([harness.message(topics.consent, e) for e in consent]))
    allowed = make.data(subject, Purpose.MARKETING_EMAIL, at=make.ago(60))
    dropped = make.data(subject, Purpose.MARKETING_EMAIL)
    messages = [data_message(harness, e, partition=2) for e in (allowed, dropped)]

    batch = judge_for(harness).judge(messages)

    assert batch.out == [(topics.data_allowed, subject.id.encode(), messages[0].value(), 2)]
    assert batch.events == {
        ("DataEventCaptured", "allowed"): 1,
        ("DataEventCaptured", "dropped"): 1,
    }
    assert batch.gate == {("allowed", "MARKETING_EMAIL"): 1, ("withdrawn", "MARKETING_EMAIL"): 1}
    assert len(batch.delays) == 2


def test_bad_input_is_dead_lettered_with_its_coordinates(harness: Any, make: Any) -> None:
    topics = harness.topics
    garbage = kafka_message(topics.data_events, b"\x00\x7f\xff\xff\xf0junk", b"k", 1, 41)
    consent = make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL)
    wrong_type = kafka_message(topics.data_events, encode_single_object(consent), b"k", 1, 42)

    batch = judge_for(harness).judge([garbage, wrong_type])

    letters = [(t, k, DECODER.decode(v)) for t, k, v, _p in batch.out]
    assert [t for t, _k, _l in letters] == [topics.dead_letters] * 2
    first, second = (letter for _t, _k, letter in letters)
    assert (first.stage, first.source_topic, first.source_partition, first.source_offset) == (
        "stream.gate",
        topics.data_events,
        1,
        41,
    )
    assert first.original_value == garbage.value()
    assert first.error_class == "UnknownSchemaError"
    assert second.source_offset == 42
    assert second.error_class == "UnexpectedEventError"
    assert batch.dead_letters == {
        ("stream.gate", "UnknownSchemaError"): 1,
        ("stream.gate", "UnexpectedEventError"): 1,
    }
    assert batch.events == {("unknown", "dead_lettered"): 2}


def test_a_message_keyed_by_something_else_is_republished_by_subject(
    harness: Any, make: Any
) -> None:
    event = make.data(make.subject(), Purpose.ACCOUNT_MANAGEMENT)
    message = data_message(harness, event, key=b"not-the-subject")

    batch = judge_for(harness).judge([message])

    topic = harness.topics.data_events
    assert batch.out == [(topic, event.subject.id.encode(), message.value(), None)]
    assert batch.events == {("DataEventCaptured", "rekeyed"): 1}


def _fields(make: Any, **changes: Any) -> dict[str, Any]:
    fields = to_dict(make.data(make.subject(), Purpose.MARKETING_EMAIL))
    fields["recipient"] = Recipient.GOOGLE.value
    fields.update(changes)
    return fields


class DictsDecoder:
    """Hands out prepared Avro dicts, as fastavro would have read them."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def decode_dict(self, data: bytes | None) -> tuple[type[Any], dict[str, Any]]:
        return DataEventCaptured, dict(self.fields)


def test_the_cheap_decode_reads_what_a_full_decode_reads(make: Any) -> None:
    fields = _fields(make)
    fast = read_data_event(DictsDecoder(fields), b"")
    full = from_dict(DataEventCaptured, fields)
    assert fast.key == full.subject.id.encode()
    assert (fast.purpose, fast.recipient) == (full.purpose, full.recipient)
    assert fast.at_ms == to_ms(full.occurred_at)
    assert read_data_event(DictsDecoder(_fields(make, recipient=None)), b"").recipient is None


@pytest.mark.parametrize(
    "changes",
    [
        {"purpose": "UNKNOWN"},
        {"recipient": "UNKNOWN"},
        {"subject": {"id": "   ", "kind": "ACCOUNT"}},
        {"subject": {"id": "x" * 257, "kind": "ACCOUNT"}},
        {"subject": {"id": "s\x00t", "kind": "ACCOUNT"}},
        {"subject": {"id": "s\n", "kind": "ACCOUNT"}},
        {"subject": {"id": "s\x85", "kind": "ACCOUNT"}},
        {"subject": {"id": "s\ud800", "kind": "ACCOUNT"}},
        {"subject": {"id": "s", "kind": "UNKNOWN"}},
        {"subject": {"id": "s"}},
        {"occurred_at": "yesterday"},
        {"event_id": 7},
        {"surprise": 1},
    ],
)
def test_the_cheap_decode_rejects_exactly_as_a_full_decode(
    make: Any, changes: dict[str, Any]
) -> None:
    fields = _fields(make, **changes)
    with pytest.raises(ValidationError) as full:
        from_dict(DataEventCaptured, fields)
    with pytest.raises(ValidationError) as fast:
        read_data_event(DictsDecoder(fields), b"")
    assert (fast.value.field_name, fast.value.reason) == (
        full.value.field_name,
        full.value.reason,
    )


def test_a_subject_id_with_a_nul_is_dead_lettered_not_passed(harness: Any, make: Any) -> None:
    # The id rule of the contract (schemas.validation.identifier_problem) holds on the
    # gate's cheap path too: a NUL-bearing id would be accepted by nothing downstream.
    subject_id = "s-nul\x00id"
    fields = _fields(make, subject={"id": subject_id, "kind": "ACCOUNT"})
    judge = judge_for(harness)
    judge.decoder = DictsDecoder(fields)
    message = kafka_message(harness.topics.data_events, b"v", subject_id.encode(), 0, 7)

    batch = judge.judge([message])

    ((topic, _key, value, _partition),) = batch.out
    assert topic == harness.topics.dead_letters
    letter = DECODER.decode(value)
    assert (letter.error_class, letter.source_offset) == ("ValidationError", 7)
    assert batch.events == {("unknown", "dead_lettered"): 1}
    assert not batch.gate


def test_only_data_events_belong_on_the_data_topic(make: Any) -> None:
    consent = encode_single_object(make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL))
    with pytest.raises(UnexpectedEventError):
        read_data_event(DECODER, consent)
    with pytest.raises(InvalidEventError):
        read_data_event(DECODER, b"")


def test_data_of_a_subject_whose_state_record_cannot_be_read_is_dead_lettered(
    harness: Any, make: Any
) -> None:
    topics = harness.topics
    subject = make.subject()
    states = SubjectStates(StateReader(DECODER).read)
    states.put(subject.id.encode(), b"not a state record")
    judge = GateJudge(
        policy=GatePolicy(),
        topics=topics,
        state=states,
        decoder=DECODER,
        encode=harness.ctx.encode,
        copartitioned=harness.ctx.copartitioned,
    )
    message = data_message(harness, make.data(subject, Purpose.MARKETING_EMAIL), partition=3)

    batch = judge.judge([message])

    ((topic, _key, value, _partition),) = batch.out
    assert topic == topics.dead_letters
    letter = DECODER.decode(value)
    assert letter.error_class == "UnreadableStateError"
    assert letter.original_value == message.value()
    assert batch.events == {("unknown", "dead_lettered"): 1}
