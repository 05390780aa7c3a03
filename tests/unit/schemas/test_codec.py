"""The codec without a network: Avro single-object encoding round-trips every event, and
every kind of bad bytes is a typed DecodeError, never a crash. The wire-format serializer
is exercised against confluent-kafka's in-process ``mock://`` registry."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import (
    SHIPPED,
    SINGLE_OBJECT_MAGIC,
    EventDecoder,
    EventSerializer,
    RegistryEncoder,
    encode_single_object,
    schema_text,
    subject_name,
)
from schemas.converters import to_dict
from schemas.errors import (
    BadMagicByteError,
    ConsentRelayError,
    DecodeError,
    IndexOutOfRangeError,
    InvalidEventError,
    RegistryUnavailableError,
    TruncatedMessageError,
    UnknownSchemaError,
    ValidationError,
)
from schemas.events import EVENT_TYPES, ConsentChanged, RightsRequested, Subject
from schemas.examples import example, examples
from schemas.taxonomy import Purpose, SubjectKind

OFFLINE = EventDecoder(None)


def mock_registry() -> SchemaRegistryClient:
    """A fresh in-process registry (mock:// clients never open a socket)."""
    client: SchemaRegistryClient = SchemaRegistryClient.new_client({"url": "mock://unit"})
    return client


@pytest.mark.parametrize("event", examples(), ids=lambda e: type(e).__name__)
def test_single_object_round_trip(event: Any) -> None:
    data = encode_single_object(event)
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == SHIPPED[type(event)].fingerprint
    assert OFFLINE.decode_dict(data)[0] is type(event)
    assert OFFLINE.decode(data) == event


def test_fingerprints_are_distinct() -> None:
    assert len({s.fingerprint for s in SHIPPED.values()}) == len(EVENT_TYPES)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (None, TruncatedMessageError, "empty message"),
        (b"", TruncatedMessageError, "empty message"),
        (b"\x01\x02\x03", BadMagicByteError, "magic byte 0x01"),
        (b"{json}", BadMagicByteError, "magic byte 0x7b"),
        (b"\xc3", BadMagicByteError, "magic byte 0xc3"),
        (b"\xc3\x02" + bytes(8), BadMagicByteError, "magic byte 0xc3"),
        (b"\xc3\x01\x00\x01", TruncatedMessageError, "shorter than the 10-byte header"),
        (
            SINGLE_OBJECT_MAGIC + bytes(8) + b"\x00",
            UnknownSchemaError,
            "unknown schema fingerprint",
        ),
        (b"\x00\x00\x00", TruncatedMessageError, "shorter than the 5-byte header"),
        (b"\x00\x00\x00\x00\x07\x00", UnknownSchemaError, "no registry configured"),
    ],
)
def test_bad_bytes_raise_typed_errors(
    data: bytes | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        OFFLINE.decode(data)
    assert isinstance(caught.value, DecodeError)
    assert isinstance(caught.value, InvalidEventError)


@pytest.mark.parametrize("event", examples(), ids=lambda e: type(e).__name__)
def test_truncated_body_is_a_truncated_message(event: Any) -> None:
    data = encode_single_object(event)
    with pytest.raises(TruncatedMessageError, match=f"{type(event).__name__} body"):
        OFFLINE.decode(data[: 10 + (len(data) - 10) // 2])


def test_a_known_fingerprint_with_a_foreign_body_is_typed() -> None:
    header = SINGLE_OBJECT_MAGIC + SHIPPED[ConsentChanged].fingerprint
    with pytest.raises(DecodeError):
        OFFLINE.decode(header + b"\xff" * 40)


def test_a_decodable_but_impossible_event_is_a_validation_error() -> None:
    # Bytes can be well-formed Avro and still carry a rule-breaking event.
    event = example(RightsRequested)
    data = bytearray(encode_single_object(event))
    # Rebuild the body with an UNKNOWN right (the reader's fallback for a newer symbol).
    record = to_dict(event)
    record["right"] = "UNKNOWN"
    body = io.BytesIO()
    fastavro.schemaless_writer(body, SHIPPED[RightsRequested].parsed, record)
    data = bytearray(data[:10]) + body.getvalue()
    with pytest.raises(ValidationError, match="unknown Right 'UNKNOWN'") as caught:
        OFFLINE.decode(bytes(data))
    assert caught.value.field_name == "right"


def foreign_bytes(event: Any, widen: Callable[[dict[str, Any]], None], **avro: Any) -> bytes:
    """What a producer outside the project might send: ``event`` (with ``avro`` fields
    replaced) written with a widened schema, under the shipped schema's fingerprint."""
    schema = json.loads(schema_text(type(event)))
    widen(schema)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), {**to_dict(event), **avro})
    return SINGLE_OBJECT_MAGIC + SHIPPED[type(event)].fingerprint + body.getvalue()


def nodes(schema: Any) -> list[dict[str, Any]]:
    """Every JSON object in a schema document."""
    if isinstance(schema, list):
        return [n for item in schema for n in nodes(item)]
    if isinstance(schema, dict):
        return [schema, *(n for value in schema.values() for n in nodes(value))]
    return []


def more_symbols(enum: str) -> Callable[[dict[str, Any]], None]:
    def widen(schema: dict[str, Any]) -> None:
        for node in nodes(schema):
            if node.get("type") == "enum" and node["name"] == enum:
                node["symbols"] += [f"NEWER_{n}" for n in range(60)]

    return widen


def more_branches(field: str) -> Callable[[dict[str, Any]], None]:
    def widen(schema: dict[str, Any]) -> None:
        for node in nodes(schema):
            if node.get("name") == field and isinstance(node.get("type"), list):
                node["type"].append("long")

    return widen


@pytest.mark.parametrize(
    ("avro", "widen", "field", "reason"),
    [
        (
            {"subject": {"id": "s-1", "kind": "NEWER_54"}},
            more_symbols("SubjectKind"),
            "subject.kind",
            "enum index 57 is out of range: SubjectKind has 3 symbols",
        ),
        (
            {"purposes": ["MARKETING_EMAIL", "NEWER_0"]},
            more_symbols("Purpose"),
            "purposes",
            # The schema's symbols are the enum's and UNKNOWN, the readers' fallback.
            f"enum index {len(Purpose) + 1} is out of range: Purpose has {len(Purpose) + 1}"
            " symbols",
        ),
        (
            {"evidence_ref": 7},
            more_branches("evidence_ref"),
            "evidence_ref",
            "union branch 2 is out of range: the union has 2 branches",
        ),
    ],
)
def test_an_index_outside_the_schema_is_named_not_truncation(
    avro: dict[str, Any], widen: Callable[[dict[str, Any]], None], field: str, reason: str
) -> None:
    data = foreign_bytes(example(ConsentChanged), widen, **avro)
    with pytest.raises(IndexOutOfRangeError) as caught:
        OFFLINE.decode(data)
    assert isinstance(caught.value, DecodeError)
    assert not isinstance(caught.value, TruncatedMessageError)
    assert (caught.value.field_name, caught.value.reason) == (field, reason)
    assert str(caught.value) == f"{field}: {reason}"


def test_an_id_the_contract_refuses_is_a_validation_error_when_decoded() -> None:
    # A producer outside the project can put a NUL in an id; the decoded record is built,
    # so the stream dead-letters it with the same field and reason a producer would get.
    event = example(ConsentChanged, subject=Subject(id="s-1", kind=SubjectKind.ACCOUNT))
    data = foreign_bytes(event, lambda _schema: None, subject={"id": "s\x00-1", "kind": "ACCOUNT"})
    with pytest.raises(ValidationError) as caught:
        OFFLINE.decode(data)
    assert caught.value.field_name == "subject.id"
    assert caught.value.reason == "contains a control character (U+0000) at position 1"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_index=st.integers(0, len(EVENT_TYPES) - 1),
    cut=st.integers(0, 400),
    noise=st.binary(max_size=64),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
)
def test_corrupt_bytes_never_crash(
    event_index: int, cut: int, noise: bytes, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(encode_single_object(example(EVENT_TYPES[event_index])))
    for position, value in flips:
        if 10 <= position < len(data):
            data[position] = value
    data = data[: max(10, min(cut, len(data)))] + noise
    with contextlib.suppress(DecodeError, ValidationError):
        OFFLINE.decode(bytes(data))


@given(st.binary(max_size=40))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        OFFLINE.decode(data)


# --- wire format against the in-process mock registry ------------------------------------


def test_serializing_an_unregistered_type_fails_with_a_typed_error() -> None:
    serializer = EventSerializer(mock_registry(), ConsentChanged)
    with pytest.raises(UnknownSchemaError, match="has no version equal to the shipped schema"):
        serializer(example(ConsentChanged), "consent.events")


def test_auto_register_is_off_by_default() -> None:
    registry = mock_registry()
    with pytest.raises(UnknownSchemaError):
        EventSerializer(registry, RightsRequested)(example(RightsRequested), "t")
    assert registry.get_subjects() == []


def test_wire_format_round_trip_with_a_registered_schema() -> None:
    registry = mock_registry()
    schema_id = registry.register_schema(
        subject_name(ConsentChanged), Schema(schema_text(ConsentChanged), "AVRO")
    )
    event = example(ConsentChanged)
    data = EventSerializer(registry, ConsentChanged)(event, "consent.events")
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5]) == (schema_id,)
    assert EventDecoder(registry).decode(data) == event
    # An Avro dict serializes the same way as the record.
    as_dict = EventSerializer(registry, ConsentChanged)(to_dict(event), "consent.events")
    assert EventDecoder(registry).decode(as_dict) == event


def test_serializing_a_record_of_the_wrong_shape_is_typed() -> None:
    registry = mock_registry()
    registry.register_schema(
        subject_name(ConsentChanged), Schema(schema_text(ConsentChanged), "AVRO")
    )
    with pytest.raises(ConsentRelayError, match="cannot serialize ConsentChanged"):
        EventSerializer(registry, ConsentChanged)({"choice": "GRANTED"}, "t")
    with pytest.raises(ConsentRelayError, match="serializer got a RightsRequested"):
        EventSerializer(registry, ConsentChanged)(example(RightsRequested), "t")


def test_an_unknown_schema_id_is_typed() -> None:
    with pytest.raises(UnknownSchemaError, match="schema id 4242 is not in the registry"):
        EventDecoder(mock_registry()).decode(b"\x00" + struct.pack(">I", 4242) + b"\x00")


def test_a_schema_that_is_not_a_relay_event_is_typed() -> None:
    registry = mock_registry()
    foreign = '{"type": "record", "name": "Order", "namespace": "shop", "fields": []}'
    schema_id = registry.register_schema("shop.Order", Schema(foreign, "AVRO"))
    with pytest.raises(UnknownSchemaError, match=r"'shop\.Order', not a Consent Relay event"):
        EventDecoder(registry).decode(b"\x00" + struct.pack(">I", schema_id))


def test_an_event_name_in_another_namespace_is_not_ours() -> None:
    registry = mock_registry()
    lookalike = schema_text(ConsentChanged).replace("io.consentrelay.events", "io.other")
    schema_id = registry.register_schema("io.other.ConsentChanged", Schema(lookalike, "AVRO"))
    with pytest.raises(UnknownSchemaError, match=r"'io\.other\.ConsentChanged'"):
        EventDecoder(registry).decode(b"\x00" + struct.pack(">I", schema_id))


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ('{"type": "object"}', "JSON", "is not an Avro schema"),
        ('"string"', "AVRO", "is not an Avro record"),
        ('["null", "string"]', "AVRO", "is not an Avro record"),
        (
            '{"type": "record", "name": "ConsentChanged", "namespace": "io.consentrelay.events",'
            ' "fields": [{"name": "x", "type": "NoSuchType"}]}',
            "AVRO",
            "does not parse",
        ),
    ],
)
def test_registry_schemas_that_are_not_relay_records_are_typed(
    text: str, kind: str, message: str
) -> None:
    registry = mock_registry()
    schema_id = registry.register_schema("odd", Schema(text, kind))
    with pytest.raises(UnknownSchemaError, match=message):
        EventDecoder(registry).decode(b"\x00" + struct.pack(">I", schema_id) + b"\x00")


def test_a_recursive_writer_schema_is_refused_before_any_body_is_read() -> None:
    # No relay event nests itself; a registered schema that does lets 20 KB of bytes
    # nest deeper than fastavro's C stack (the process died with SIGSEGV).
    recursive = json.loads(schema_text(ConsentChanged))
    node = "io.consentrelay.events.Node"
    recursive["fields"].insert(
        0,
        {
            "name": "chain",
            "type": {
                "type": "record",
                "name": node,
                "fields": [{"name": "next", "type": ["null", node]}],
            },
        },
    )
    registry = mock_registry()
    schema_id = registry.register_schema("anything", Schema(json.dumps(recursive), "AVRO"))
    data = b"\x00" + struct.pack(">I", schema_id) + b"\x02" * 50_000 + b"\x00"
    with pytest.raises(UnknownSchemaError, match=f"{node} contains itself"):
        EventDecoder(registry).decode(data)


class FailingRegistry:
    """A registry whose every call answers HTTP 500 (the server's fault, not the schema's)."""

    def get_schema(self, *_args: Any, **_kwargs: Any) -> Any:
        raise SchemaRegistryError(500, 50001, "boom")

    def lookup_schema(self, *_args: Any, **_kwargs: Any) -> Any:
        raise SchemaRegistryError(500, 50001, "boom")

    def register_schema(self, *_args: Any, **_kwargs: Any) -> Any:
        raise SchemaRegistryError(500, 50001, "boom")

    def get_latest_version(self, *_args: Any, **_kwargs: Any) -> Any:
        raise SchemaRegistryError(500, 50001, "boom")


def test_registry_server_errors_are_retriable_not_unknown_schemas() -> None:
    failing: Any = FailingRegistry()
    with pytest.raises(RegistryUnavailableError, match="registry error for id 9"):
        EventDecoder(failing).decode(b"\x00" + struct.pack(">I", 9) + b"\x00")
    with pytest.raises(RegistryUnavailableError, match="registry error"):
        EventSerializer(failing, ConsentChanged)(example(ConsentChanged), "t")


def as_epoch_ms(value: Any) -> Any:
    """``value`` with every datetime as its epoch milliseconds."""
    if isinstance(value, datetime):
        return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: as_epoch_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_epoch_ms(v) for v in value]
    return value


@pytest.mark.parametrize("widened", [False, True])
def test_epoch_ms_reads_the_same_record_with_times_as_longs(widened: bool) -> None:
    registry = mock_registry()
    writer = json.loads(schema_text(ConsentChanged))
    if widened:  # a writer unlike the shipped schema: the decoder resolves it
        writer["fields"].append({"name": "extra", "type": "long", "default": 0})
    registry.register_schema(subject_name(ConsentChanged), Schema(json.dumps(writer), "AVRO"))
    event = example(ConsentChanged)
    wire = foreign_wire(registry, writer, {**to_dict(event), "extra": 7})
    decoder = EventDecoder(registry)
    event_type, plain = decoder.decode_dict(wire)
    assert (event_type, plain.get("extra")) == (ConsentChanged, None)
    assert decoder.decode_dict(wire, epoch_ms=True) == (ConsentChanged, as_epoch_ms(plain))
    assert isinstance(decoder.decode_dict(wire, epoch_ms=True)[1]["occurred_at"], int)
    single = encode_single_object(event)
    assert decoder.decode_dict(single, epoch_ms=True) == (
        ConsentChanged,
        as_epoch_ms(decoder.decode_dict(single)[1]),
    )
    assert decoder.decode(wire) == event  # the plain read is unchanged


def test_unread_last_fields_are_not_read_at_all() -> None:
    # A newer writer with a last field this code does not know: resolved away on a full
    # read, and with ``unread`` not even read.
    registry = mock_registry()
    writer = json.loads(schema_text(ConsentChanged))
    writer["fields"].append({"name": "notes", "type": "long", "default": 0})
    registry.register_schema(subject_name(ConsentChanged), Schema(json.dumps(writer), "AVRO"))
    wire = foreign_wire(registry, writer, {**to_dict(example(ConsentChanged)), "notes": 2**60})
    decoder = EventDecoder(registry)
    everything = decoder.decode_dict(wire, epoch_ms=True)
    assert decoder.decode_dict(wire, epoch_ms=True, unread=frozenset({"notes"})) == everything
    # Its bytes cut short (the middle of its varint): only a read of them notices.
    cut = wire[:-3]
    with pytest.raises(TruncatedMessageError):
        decoder.decode_dict(cut, epoch_ms=True)
    assert decoder.decode_dict(cut, epoch_ms=True, unread=frozenset({"notes"})) == everything


def test_an_unread_field_followed_by_one_that_is_read_is_read_as_usual() -> None:
    decoder = EventDecoder(None)
    single = encode_single_object(example(ConsentChanged))
    first = json.loads(schema_text(ConsentChanged))["fields"][0]["name"]
    assert decoder.decode_dict(single, epoch_ms=True, unread=frozenset({first})) == (
        decoder.decode_dict(single, epoch_ms=True)
    )
    with pytest.raises(ValueError, match="epoch-ms path only"):
        decoder.decode_dict(single, unread=frozenset({first}))


def foreign_wire(registry: SchemaRegistryClient, writer: dict[str, Any], avro: Any) -> bytes:
    """Wire-format bytes of ``avro`` written with ``writer`` (registered in ``registry``)."""
    schema_id = registry.lookup_schema(
        subject_name(ConsentChanged), Schema(json.dumps(writer), "AVRO")
    ).schema_id
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), avro)
    return buf.getvalue()


def test_the_registry_encoder_writes_the_serializers_bytes_for_every_event_type() -> None:
    registry = mock_registry()
    for event_type in EVENT_TYPES:
        registry.register_schema(subject_name(event_type), Schema(schema_text(event_type), "AVRO"))
    encode = RegistryEncoder(registry)
    for event in examples():
        theirs = EventSerializer(registry, type(event))(event, "any.topic")
        assert encode(type(event), to_dict(event), "any.topic") == theirs


def test_the_registry_encoder_refuses_what_the_serializer_refuses_with_the_same_types() -> None:
    with pytest.raises(UnknownSchemaError, match="has no version equal to the shipped schema"):
        RegistryEncoder(mock_registry())(ConsentChanged, to_dict(example(ConsentChanged)), "t")
    failing: Any = FailingRegistry()
    with pytest.raises(RegistryUnavailableError, match="registry error"):
        RegistryEncoder(failing)(ConsentChanged, to_dict(example(ConsentChanged)), "t")
    registry = mock_registry()
    registry.register_schema(
        subject_name(ConsentChanged), Schema(schema_text(ConsentChanged), "AVRO")
    )
    with pytest.raises(ConsentRelayError, match="cannot serialize ConsentChanged"):
        RegistryEncoder(registry)(ConsentChanged, {"choice": "GRANTED"}, "t")
