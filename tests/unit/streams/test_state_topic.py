"""The state table's changelog is the contract's state topic: intake writes one
ConsentStateRecorded per changed subject per batch, and the table (through its Faust
codec) and the gate read the whole state back from it."""

from __future__ import annotations

import asyncio
import io
import json
import struct
from datetime import timedelta
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from faust.serializers import codecs

from schemas.codec import EventDecoder, encode_single_object_dict, subject_name
from schemas.compatibility import releases
from schemas.converters import to_dict
from schemas.errors import InvalidEventError
from schemas.events import ConsentEntry, ConsentStateRecorded, Subject
from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from streams.engine.faust_codecs import STATE_CODEC, register_codecs
from streams.intake.agent import Intake
from streams.intake.records import consent_state
from streams.intake.resolution import HISTORY, Claim, Effect, SubjectState, apply
from streams.intake.state_topic import StateReader, StateRecordError
from streams.intake.times import from_ms

EMAIL = (Purpose.MARKETING_EMAIL, Regime.GDPR, None)
PARTNERS = (Purpose.SHARE_WITH_BUSINESS_PARTNERS, Regime.GDPR, Recipient.BUSINESS_PARTNERS)
SMS_CCPA = (Purpose.MARKETING_SMS, Regime.CCPA, None)


def rich_state() -> SubjectState:
    """Every part of a state: several keys (one limited to a recipient) with a full
    history, an expiring grant, restrictions lifted and set again, an erasure."""
    state: SubjectState | None = None
    steps: list[tuple[int, Effect]] = []
    for n in range(HISTORY + 3):
        choice = Choice.WITHDRAWN if n % 2 else Choice.GRANTED
        steps.append((1_000 + n, Effect(claims=(Claim(EMAIL, choice),))))
    steps += [
        (2_000, Effect(claims=(Claim(PARTNERS, Choice.GRANTED),), expires_ms=9_000_000)),
        (2_001, Effect(claims=(Claim(PARTNERS, Choice.WITHDRAWN),))),
        (2_002, Effect(claims=(Claim(SMS_CCPA, Choice.GRANTED),))),
        (3_000, Effect(restrict=True)),
        (3_001, Effect(restrict=False)),
        (3_002, Effect(restrict=True)),
        (4_000, Effect(erase=True)),
    ]
    for at, effect in steps:
        state = apply(state, SubjectKind.DEVICE, f"e-{at}", at, effect).state
    assert state is not None
    return state


def record_bytes(state: SubjectState, subject_id: str = "s-1", now: int = 5_000) -> bytes:
    return encode_single_object_dict(ConsentStateRecorded, consent_state(subject_id, state, now))


def reader() -> StateReader:
    return StateReader(EventDecoder(None))


def test_a_state_round_trips_through_its_record_exactly() -> None:
    state = rich_state()
    assert len(state.decisions[EMAIL]) == HISTORY
    assert state.decisions[PARTNERS][0].expires_ms == 9_000_000
    assert reader().read(record_bytes(state)) == state


def test_the_record_keeps_what_the_sinks_read() -> None:
    state = rich_state()
    decoded = EventDecoder(None).decode(record_bytes(state, "s-9", 5_000))
    assert decoded.subject == Subject(id="s-9", kind=SubjectKind.DEVICE)
    # Entries are the current choices, one limited to a recipient included, sorted.
    assert [(e.purpose, e.regime, e.recipient, e.choice) for e in decoded.entries] == [
        (Purpose.MARKETING_EMAIL, Regime.GDPR, None, Choice.GRANTED),
        (Purpose.MARKETING_SMS, Regime.CCPA, None, Choice.GRANTED),
        (
            Purpose.SHARE_WITH_BUSINESS_PARTNERS,
            Regime.GDPR,
            Recipient.BUSINESS_PARTNERS,
            Choice.WITHDRAWN,
        ),
    ]
    assert decoded.entries[-1].event_id == "e-2001"
    assert (decoded.restricted, decoded.erased) == (True, True)
    assert decoded.updated_at == from_ms(5_000)
    assert decoded.history is not None
    assert len(decoded.history.decisions) == HISTORY + 2 + 1


def test_a_record_without_history_gives_its_entries_and_withholds_more_not_less() -> None:
    old = ConsentStateRecorded(
        subject=Subject(id="s-2", kind=SubjectKind.ACCOUNT),
        entries=(
            ConsentEntry(
                purpose=Purpose.MARKETING_EMAIL,
                regime=Regime.GDPR,
                choice=Choice.WITHDRAWN,
                occurred_at=from_ms(700),
                event_id="e-700",
            ),
        ),
        restricted=True,
        erased=True,
        updated_at=from_ms(800),
    )
    avro = to_dict(old)
    del avro["history"]  # as written before the field existed
    state = reader().read(encode_single_object_dict(ConsentStateRecorded, avro))
    assert state.kind is SubjectKind.ACCOUNT
    current = state.current(EMAIL)
    assert current is not None
    assert (current.at_ms, current.choice) == (700, Choice.WITHDRAWN)
    assert state.restricted_at(0)  # restricted since an unknown time: from the start
    assert state.erasure is not None
    assert state.erasure.at_ms == 800


def test_an_unknown_symbol_or_another_event_is_an_error_not_a_silent_gap() -> None:
    avro = consent_state("s-1", rich_state(), 0)
    avro["history"][1]["decisions"][0]["purpose"] = "UNKNOWN"  # (branch name, value)
    with pytest.raises(StateRecordError):
        reader().read(encode_single_object_dict(ConsentStateRecorded, avro))
    with pytest.raises(InvalidEventError):
        reader().read(b'{"k": "ACCOUNT"}')


def test_the_faust_codec_reads_records_and_refuses_to_write() -> None:
    register_codecs(reader())
    state = rich_state()
    assert codecs.loads(STATE_CODEC, record_bytes(state)) == state
    with pytest.raises(Exception, match="written by intake"):
        codecs.dumps(STATE_CODEC, state)


def test_intake_publishes_one_state_record_per_changed_subject(harness: Any, make: Any) -> None:
    topics = harness.topics
    first = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
    again = make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL, subject=first.subject)
    messages = [
        harness.message(topics.consent, first, partition=2),
        harness.message(topics.consent, again, partition=2),
    ]
    asyncio.run(Intake(harness.ctx).handle(messages))
    on_state = [(k, v, p) for t, k, v, p in harness.sender.sent if t == topics.state]
    # Two changes of one subject in a batch: one record, on the consent partition.
    assert [(k, p) for k, _v, p in on_state] == [(first.subject.id.encode(), 2)]
    key = first.subject.id.encode()
    assert reader().read(on_state[0][1]) == harness.ctx.state[key]
    # Nothing on any other changelog of the state table.
    assert not [t for t, *_ in harness.sender.sent if "consent-state" in t]
    # The same events again change nothing: no state record at all.
    harness.sender.sent.clear()
    asyncio.run(Intake(harness.ctx).handle(messages))
    assert not [t for t, *_ in harness.sender.sent if t == topics.state]


def test_time_fields_are_exact_milliseconds() -> None:
    state = apply(
        None,
        SubjectKind.ACCOUNT,
        "e",
        1_796_613_656_123,
        Effect(claims=(Claim(EMAIL, Choice.GRANTED),), expires_ms=1_796_613_656_999),
    ).state
    read = reader().read(record_bytes(state))
    assert read == state
    decision = read.current(EMAIL)
    assert decision is not None
    assert from_ms(decision.at_ms) + timedelta(milliseconds=876) == from_ms(1_796_613_656_999)


def test_a_record_without_history_keeps_an_entry_limited_to_a_recipient() -> None:
    avro = consent_state("s-3", rich_state(), 5_000)
    avro = {**avro, "history": None}
    state = reader().read(encode_single_object_dict(ConsentStateRecorded, avro))
    current = state.current(PARTNERS)
    assert current is not None
    assert (current.at_ms, current.choice) == (2_001, Choice.WITHDRAWN)
    assert state.current((PARTNERS[0], PARTNERS[1], None)) is None


def test_a_record_of_the_last_release_still_reads() -> None:
    """Written by a writer whose ConsentEntry has no recipient (release 3's schema)."""
    registry = SchemaRegistryClient.new_client({"url": "mock://state-topic"})
    released = releases()[-1].joinpath("ConsentStateRecorded.avsc").read_text()
    schema_id = registry.register_schema(
        subject_name(ConsentStateRecorded), Schema(released, "AVRO")
    )
    avro = dict(consent_state("s-4", rich_state(), 5_000))
    # What that writer wrote: no entry limited to a recipient, none with the field.
    avro["entries"] = [
        {k: v for k, v in e.items() if k != "recipient"}
        for e in avro["entries"]
        if e["recipient"] is None
    ]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(released)), avro)
    data = b"\x00" + struct.pack(">I", schema_id) + body.getvalue()
    assert StateReader(EventDecoder(registry)).read(data) == rich_state()
    decoded = EventDecoder(registry).decode(data)
    assert [e.recipient for e in decoded.entries] == [None, None]
