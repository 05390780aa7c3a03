"""The Confluent wire format for real: every event type is registered in the registry,
produced with EventSerializer through Kafka, consumed and decoded back to an equal record;
and bad bytes on a real topic decode to typed errors, never a crash."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Message
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from schemas.codec import (
    EventDecoder,
    EventSerializer,
    RegistryEncoder,
    schema_text,
    subject_name,
)
from schemas.converters import to_dict
from schemas.errors import (
    BadMagicByteError,
    DecodeError,
    RegistryUnavailableError,
    TruncatedMessageError,
    UnknownSchemaError,
    ValidationError,
)
from schemas.events import (
    EVENT_TYPES,
    ConsentChanged,
    ConsentStateRecorded,
    CookiePreferencesSet,
    DataEventCaptured,
    DeadLettered,
    FullyPropagated,
    InstructionIssued,
    InstructionsAnswered,
    InstructionsIssued,
    PropagationReceipt,
    RightsRequested,
)
from schemas.examples import example, examples
from schemas.runtime.kafka import KafkaSettings

Roundtrip = Callable[[list[tuple[str, bytes, bytes]]], list[Message]]


def topic_of(settings: KafkaSettings, event: Any) -> str:
    """The topic each event type travels on."""
    topics = settings.topics
    by_type: dict[type[Any], str] = {
        ConsentChanged: topics.consent,
        RightsRequested: topics.consent,
        CookiePreferencesSet: topics.consent,
        PropagationReceipt: topics.receipts,
        InstructionsAnswered: topics.receipts,
        FullyPropagated: topics.propagated,
        ConsentStateRecorded: topics.state,
        DataEventCaptured: topics.data_events,
        DeadLettered: topics.dead_letters,
    }
    if isinstance(event, InstructionIssued | InstructionsIssued):
        return topics.instructions(event.sink_family)
    return by_type[type(event)]


def key_of(event: Any) -> bytes:
    subject = getattr(event, "subject", None)
    if subject is not None:
        return str(subject.id).encode()
    return str(getattr(event, "dead_letter_id", None) or event.batch_id).encode()


def test_every_event_type_round_trips_through_kafka(
    relay_settings: KafkaSettings, registered_schemas: dict[str, int], roundtrip: Roundtrip
) -> None:
    sent = examples()
    assert {type(e) for e in sent} == set(EVENT_TYPES)
    with relay_settings.registry_client() as registry:
        serializers = {t: EventSerializer(registry, t) for t in EVENT_TYPES}
        messages = []
        for event in sent:
            topic = topic_of(relay_settings, event)
            messages.append((topic, key_of(event), serializers[type(event)](event, topic)))
        received = roundtrip(messages)
        decoder = EventDecoder(registry)
        decoded = {}
        for msg in received:
            value = msg.value()
            assert value is not None
            assert value[0] == 0
            event_type, _ = decoder.decode_dict(value)
            (schema_id,) = struct.unpack(">I", value[1:5])
            assert schema_id == registered_schemas[subject_name(event_type)]
            record = decoder.decode(value)
            assert msg.key() == key_of(record)
            decoded[type(record)] = record
    for event in sent:
        assert decoded[type(event)] == event


def test_the_registry_encoder_writes_what_the_serializer_writes(
    relay_settings: KafkaSettings, registered_schemas: dict[str, int]
) -> None:
    with relay_settings.registry_client() as registry:
        encode = RegistryEncoder(registry)
        for event in examples():
            topic = topic_of(relay_settings, event)
            theirs = EventSerializer(registry, type(event))(event, topic)
            ours = encode(type(event), to_dict(event), topic)
            assert ours == theirs
            assert struct.unpack(">I", ours[1:5]) == (
                registered_schemas[subject_name(type(event))],
            )


def test_bad_bytes_on_a_real_topic_are_typed_errors(
    relay_settings: KafkaSettings,
    registry: SchemaRegistryClient,
    registered_schemas: dict[str, int],
    roundtrip: Roundtrip,
) -> None:
    topic = relay_settings.topics.consent
    good = EventSerializer(registry, RightsRequested)(example(RightsRequested), topic)
    unknown_id = b"\x00" + struct.pack(">I", 2**31 - 7) + good[5:]
    cases: list[tuple[bytes, type[Exception] | None]] = [
        (good, None),
        (good[: len(good) // 2], TruncatedMessageError),
        (good[:3], TruncatedMessageError),
        (b"\x01" + good[1:], BadMagicByteError),
        (b'{"choice": "WITHDRAWN"}', BadMagicByteError),
        (unknown_id, UnknownSchemaError),
    ]
    # One key: one partition, so the messages come back in the order they were sent.
    received = roundtrip([(topic, b"same-subject", data) for data, _ in cases])
    decoder = EventDecoder(registry)
    for msg, (data, error) in zip(received, cases, strict=True):
        assert msg.value() == data
        if error is None:
            assert isinstance(decoder.decode(msg.value()), RightsRequested)
        else:
            with pytest.raises(error) as caught:
                decoder.decode(msg.value())
            assert isinstance(caught.value, DecodeError)


def test_an_unknown_schema_id_is_typed(registry: SchemaRegistryClient) -> None:
    with pytest.raises(UnknownSchemaError, match="is not in the registry"):
        EventDecoder(registry).decode(b"\x00" + struct.pack(">I", 2**31 - 7) + b"\x02")


def test_a_schema_id_that_is_not_a_relay_event_is_typed(
    registry: SchemaRegistryClient, scratch_subject: Callable[[str], str]
) -> None:
    subject = scratch_subject("shop.Order")
    foreign = '{"type": "record", "name": "Order", "namespace": "shop", "doc": "x", "fields": []}'
    schema_id = registry.register_schema(subject, Schema(foreign, "AVRO"))
    with pytest.raises(UnknownSchemaError, match=r"'shop\.Order', not a Consent Relay event"):
        EventDecoder(registry).decode(b"\x00" + struct.pack(">I", schema_id))


def test_serializing_with_an_unregistered_subject_fails_with_a_typed_error(
    registry: SchemaRegistryClient, scratch_subject: Callable[[str], str]
) -> None:
    subject = scratch_subject(subject_name(ConsentChanged))
    serializer = EventSerializer(registry, ConsentChanged, subject=subject)
    with pytest.raises(UnknownSchemaError, match="has no version equal to the shipped schema"):
        serializer(example(ConsentChanged), "consent.events")
    assert subject not in registry.get_subjects(), "the serializer must not auto-register"


def test_serializing_a_schema_the_registry_does_not_hold_fails(
    registry: SchemaRegistryClient,
    registered_schemas: dict[str, int],
    scratch_subject: Callable[[str], str],
) -> None:
    # The subject exists but holds another schema: the shipped one is looked up, not added.
    subject = scratch_subject(subject_name(ConsentChanged))
    other = schema_text(ConsentChanged).replace('"doc": "GRANTED', '"doc": "Older doc. GRANTED')
    registry.register_schema(subject, Schema(other, "AVRO"))
    with pytest.raises(UnknownSchemaError):
        EventSerializer(registry, ConsentChanged, subject=subject)(example(ConsentChanged), "t")
    assert registry.get_versions(subject) == [1]


def test_decoding_a_rule_breaking_event_is_a_validation_error(
    registry: SchemaRegistryClient, registered_schemas: dict[str, int]
) -> None:
    record = to_dict(example(CookiePreferencesSet))
    record["refused"] = ["ESSENTIAL"]
    record["granted"] = []
    data = EventSerializer(registry, CookiePreferencesSet)(record, "consent.events")
    with pytest.raises(ValidationError, match="ESSENTIAL cookies") as caught:
        EventDecoder(registry).decode(data)
    assert caught.value.field_name == "refused"


def test_an_unreachable_registry_is_a_typed_error(registered_schemas: dict[str, int]) -> None:
    data = b"\x00" + struct.pack(">I", registered_schemas[subject_name(ConsentChanged)]) + b"\x00"
    with SchemaRegistryClient({"url": "http://127.0.0.1:1", "max.retries": 0}) as nowhere:
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            EventDecoder(nowhere).decode(data)
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            EventSerializer(nowhere, ConsentChanged)(example(ConsentChanged), "t")
