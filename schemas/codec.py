"""The one way event bytes are made and read.

On Kafka, events travel in the Confluent wire format (magic byte 0, the registry's
4-byte schema id, the Avro body), written by confluent-kafka's ``AvroSerializer``
against the schema registry with the record-name subject strategy, so one topic can
carry several event types in per-subject order (:class:`EventSerializer`; processes
writing many records write the same bytes through :class:`RegistryEncoder`). Offline
(files, tests without a registry) they use Avro single-object encoding (``C3 01``, the
schema's CRC-64-AVRO fingerprint, the body). :class:`EventDecoder` reads both with
fastavro and raises a typed :class:`~schemas.errors.DecodeError` on anything else, never
a bare exception.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from importlib import resources
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from schemas.converters import from_dict, to_dict
from schemas.errors import (
    BadMagicByteError,
    ConsentRelayError,
    IndexOutOfRangeError,
    RegistryUnavailableError,
    TruncatedMessageError,
    UnknownSchemaError,
)
from schemas.events import EVENT_TYPES, NAMESPACE

WIRE_MAGIC = 0
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_BY_NAME: dict[str, type[Any]] = {t.__name__: t for t in EVENT_TYPES}

REGISTRY_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (OSError, httpx.TransportError)
"""What the registry client raises when the registry cannot be reached at all."""

_BODY_ERRORS = (EOFError, StopIteration, IndexError, KeyError, struct.error)
_CORRUPT_ERRORS = (
    ValueError,  # includes UnicodeDecodeError
    OverflowError,  # a timestamp-millis beyond datetime's range
    fastavro.read.SchemaResolutionError,
)


def subject_name(event_type: type[Any]) -> str:
    """Registry subject of an event type (record-name strategy)."""
    return f"{NAMESPACE}.{event_type.__name__}"


@dataclass(frozen=True, slots=True)
class ShippedSchema:
    """An event type's `.avsc` as shipped in ``schemas/avro``, parsed and fingerprinted."""

    text: str
    parsed: Any
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form, little-endian as single-object encoding stores it."""


def _load(event_type: type[Any]) -> ShippedSchema:
    text = resources.files("schemas").joinpath(f"avro/{event_type.__name__}.avsc").read_text()
    parsed = fastavro.parse_schema(json.loads(text))
    canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    value = fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
    return ShippedSchema(text, parsed, int(value, 16).to_bytes(8, "little"))


SHIPPED: dict[type[Any], ShippedSchema] = {t: _load(t) for t in EVENT_TYPES}
"""Every event type's shipped schema."""


def schema_text(event_type: type[Any]) -> str:
    """The shipped `.avsc` text of an event type."""
    return SHIPPED[event_type].text


class EventSerializer:
    """Serializes records (or their Avro dicts) of one type in the Confluent wire format.

    The shipped schema must already be registered under the event type's subject (or
    ``subject``): production code never auto-registers, so an unregistered schema is an
    :class:`~schemas.errors.UnknownSchemaError`, not a silent new version.
    """

    def __init__(
        self,
        registry: SchemaRegistryClient,
        event_type: type[Any],
        *,
        auto_register: bool = False,
        subject: str | None = None,
    ) -> None:
        self.event_type = event_type
        self.subject = subject or subject_name(event_type)
        self._serializer = AvroSerializer(
            registry,
            # A Schema, not a str: the serializer rewrites str schemas, and Apicurio's
            # lookup compares the text exactly, so it must be the registered text.
            Schema(schema_text(event_type), "AVRO"),
            to_dict=_to_avro_dict,
            conf={
                "auto.register.schemas": auto_register,
                "normalize.schemas": False,
                "subject.name.strategy": lambda _ctx, _name: self.subject,
            },
        )

    def __call__(self, event: Any, topic: str) -> bytes:
        """Bytes for ``event`` on ``topic``; registry problems raise typed errors."""
        if not isinstance(event, dict | self.event_type):
            raise ConsentRelayError(
                f"{self.event_type.__name__} serializer got a {type(event).__name__}"
            )
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            data = self._serializer(event, ctx)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaError(
                    f"{self.subject} has no version equal to the shipped schema: {exc}"
                ) from exc
            raise RegistryUnavailableError(f"{self.subject}: registry error: {exc}") from exc
        except (SerializationError, ValueError, TypeError, KeyError) as exc:
            # fastavro says which field does not fit the schema (an Avro dict's mistake).
            raise ConsentRelayError(f"cannot serialize {self.event_type.__name__}: {exc}") from exc
        except REGISTRY_TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc
        if data is None:
            raise ConsentRelayError(f"cannot serialize {self.event_type.__name__}: no bytes")
        return bytes(data)


_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
"""What fastavro raises for an Avro dict that does not fit its schema."""


class RegistryEncoder:
    """Writes Avro dicts in the Confluent wire format, byte for byte what
    :class:`EventSerializer` writes, for a process that writes many records.

    EventSerializer goes through confluent-kafka's ``AvroSerializer`` per record, whose
    subject and rule bookkeeping and record walk cost as much again as the write. This
    asks the registry for each type's schema id once, on first use, exactly as
    EventSerializer asks it (record-name subject, the shipped text, never registering),
    and writes the dict with fastavro against the shipped schema.
    """

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._headers: dict[type[Any], bytes] = {}

    def __call__(self, event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
        """The bytes of ``avro``, a dict of ``event_type``, on ``topic`` (the subject does
        not depend on it); registry trouble raises typed errors."""
        del topic
        buf = io.BytesIO()
        buf.write(self.header(event_type))
        try:
            fastavro.schemaless_writer(buf, SHIPPED[event_type].parsed, avro)
        except _WRITE_ERRORS as exc:
            # fastavro says which field does not fit the schema (an Avro dict's mistake).
            raise ConsentRelayError(f"cannot serialize {event_type.__name__}: {exc}") from exc
        return buf.getvalue()

    def header(self, event_type: type[Any]) -> bytes:
        """The wire format's magic byte and the shipped schema's id (asked once)."""
        header = self._headers.get(event_type)
        if header is None:
            header = self._headers[event_type] = self._header(event_type)
        return header

    def _header(self, event_type: type[Any]) -> bytes:
        """Magic byte and schema id of the shipped schema, looked up in the registry."""
        subject = subject_name(event_type)
        try:
            registered = self._registry.lookup_schema(
                subject, Schema(schema_text(event_type), "AVRO"), normalize_schemas=False
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaError(
                    f"{subject} has no version equal to the shipped schema: {exc}"
                ) from exc
            raise RegistryUnavailableError(f"{subject}: registry error: {exc}") from exc
        except REGISTRY_TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc
        if registered.schema_id is None:
            raise RegistryUnavailableError(f"{subject}: the registry answered without an id")
        return struct.pack(">BI", WIRE_MAGIC, registered.schema_id)


def _to_avro_dict(obj: Any, _ctx: SerializationContext | None) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else to_dict(obj)


def encode_single_object(event: Any) -> bytes:
    """Avro single-object encoding of a record, for use without a registry."""
    return encode_single_object_dict(type(event), to_dict(event))


def encode_single_object_dict(event_type: type[Any], avro: dict[str, Any]) -> bytes:
    """Avro single-object encoding of an Avro dict of ``event_type``."""
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC)
    buf.write(SHIPPED[event_type].fingerprint)
    fastavro.schemaless_writer(buf, SHIPPED[event_type].parsed, avro)
    return buf.getvalue()


class EventDecoder:
    """Decodes wire-format or single-object bytes into (event type, Avro dict) or records.

    Writer schemas are fetched from the registry by id once and cached; the shipped
    schema is the reader schema, so older and newer writers resolve to what this code
    understands.
    """

    def __init__(self, registry: SchemaRegistryClient | None) -> None:
        self._registry = registry
        self._by_id: dict[int, tuple[type[Any], Any, Any]] = {}
        self._by_fingerprint = {s.fingerprint: t for t, s in SHIPPED.items()}
        self._text_by_id: dict[int, str] = {}
        self._epoch_ms: dict[tuple[int | bytes, frozenset[str]], tuple[Any, Any]] = {}

    def decode_dict(
        self,
        data: bytes | None,
        *,
        epoch_ms: bool = False,
        unread: frozenset[str] = frozenset(),
    ) -> tuple[type[Any], dict[str, Any]]:
        """The event type and its Avro dict; raises DecodeError subclasses.

        ``epoch_ms``: times stay the Avro longs (epoch milliseconds) instead of becoming
        datetimes, for a bulk reader that keeps milliseconds anyway (the datetimes cost
        a fifth of reading a consent state); a time beyond datetime's range is then not
        refused here, the caller checks.

        ``unread`` (with ``epoch_ms``): fields the caller never reads. Those among the
        writer's last fields are not read at all: Avro writes a record's fields in order,
        so the bytes after the last field read are simply left (a consent state's
        ``history``, its last field, is three quarters of its bytes and of its reading
        time). Left unread, they are not checked either; elsewhere they are read and
        checked as usual.
        """
        if unread and not epoch_ms:
            raise ValueError("unread fields are skipped on the epoch-ms path only")
        if not data:
            raise TruncatedMessageError("empty message")
        if data[0] == WIRE_MAGIC:
            if len(data) < 5:
                raise TruncatedMessageError(f"{len(data)} bytes, shorter than the 5-byte header")
            (schema_id,) = struct.unpack(">I", data[1:5])
            event_type, writer, reader = self._writer_schema(schema_id)
            if epoch_ms:
                writer, reader = self._epoch_ms_schemas(
                    schema_id, event_type, reader is not None, unread
                )
            return event_type, self._read(data, 5, writer, reader, event_type)
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < 10:
                raise TruncatedMessageError(f"{len(data)} bytes, shorter than the 10-byte header")
            fingerprint = data[2:10]
            known = self._by_fingerprint.get(fingerprint)
            if known is None:
                raise UnknownSchemaError(f"unknown schema fingerprint {fingerprint.hex()}")
            writer = SHIPPED[known].parsed
            if epoch_ms:
                writer, _ = self._epoch_ms_schemas(fingerprint, known, False, unread)
            return known, self._read(data, 10, writer, None, known)
        raise BadMagicByteError(f"magic byte {data[0]:#04x} is neither 0x00 nor 0xc3 0x01")

    def prefetch(self, schema_id: int) -> type[Any]:
        """Look writer schema ``schema_id`` up now (cached like any other), so a later
        decode of it needs no registry call; the event type it is a schema of."""
        return self._writer_schema(schema_id)[0]

    def _epoch_ms_schemas(
        self,
        key: int | bytes,
        event_type: type[Any],
        resolve: bool,
        unread: frozenset[str] = frozenset(),
    ) -> tuple[Any, Any]:
        """The writer schema of ``key`` (a registry id, else the shipped schema's
        fingerprint) and, to ``resolve`` against, the shipped one, each with its
        timestamps as plain longs and without the writer's last fields named in
        ``unread``; cached."""
        cached = self._epoch_ms.get((key, unread))
        if cached is None:
            shipped = SHIPPED[event_type].text
            writer = self._text_by_id.get(key, shipped) if isinstance(key, int) else shipped
            writer_json = _plain_times(json.loads(writer))
            left = _without_unread_tail(writer_json, unread)
            reader_json = None
            if resolve:
                reader_json = _plain_times(json.loads(shipped))
                reader_json["fields"] = [f for f in reader_json["fields"] if f["name"] not in left]
            cached = self._epoch_ms[(key, unread)] = (
                fastavro.parse_schema(writer_json),
                fastavro.parse_schema(reader_json) if reader_json is not None else None,
            )
        return cached

    def decode(self, data: bytes | None) -> Any:
        """The validated record; raises DecodeError or ValidationError."""
        event_type, record = self.decode_dict(data)
        return from_dict(event_type, record)

    def _read(
        self, data: bytes, offset: int, writer: Any, reader: Any, event_type: type[Any]
    ) -> Any:
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            return fastavro.schemaless_reader(buf, writer, reader)
        except IndexError as exc:
            # fastavro reports an enum or union index beyond the schema as a bare
            # IndexError; find which field held it (only now: it costs a second read).
            bad_index = _IndexWalk(data, offset, writer).find()
            if bad_index is not None:
                raise bad_index from exc
            raise TruncatedMessageError(f"{event_type.__name__} body ends early") from exc
        except _BODY_ERRORS as exc:
            raise TruncatedMessageError(f"{event_type.__name__} body ends early") from exc
        except _CORRUPT_ERRORS as exc:
            raise TruncatedMessageError(f"{event_type.__name__} body is corrupt: {exc}") from exc

    def _writer_schema(self, schema_id: int) -> tuple[type[Any], Any, Any]:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        if self._registry is None:
            raise UnknownSchemaError(f"schema id {schema_id}: no registry configured")
        try:
            schema: Schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaError(f"schema id {schema_id} is not in the registry") from exc
            raise RegistryUnavailableError(f"registry error for id {schema_id}: {exc}") from exc
        except REGISTRY_TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc
        event_type, raw = _event_schema(schema_id, schema)
        try:
            writer = fastavro.parse_schema(raw)
        except (fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
            raise UnknownSchemaError(f"schema id {schema_id} does not parse: {exc}") from exc
        looped = _recursive_type(writer, ())
        if looped is not None:
            # Such bytes could nest deeper than fastavro's C stack and kill the process.
            raise UnknownSchemaError(
                f"schema id {schema_id}: {looped} contains itself, which no relay event does"
            )
        shipped = SHIPPED[event_type].parsed
        # Schema resolution costs as much again as the read; skip it when the writer
        # used exactly the shipped schema.
        same = fastavro.schema.to_parsing_canonical_form(
            writer
        ) == fastavro.schema.to_parsing_canonical_form(shipped)
        entry = (event_type, writer, None if same else shipped)
        self._text_by_id[schema_id] = str(schema.schema_str)
        self._by_id[schema_id] = entry
        return entry


def _without_unread_tail(record: dict[str, Any], unread: frozenset[str]) -> frozenset[str]:
    """Drop from ``record`` (an Avro record schema's JSON) its last fields while they are
    named in ``unread``; the names dropped. A field after them that is read keeps them
    all: only the end of a record can be left unread."""
    fields = list(record.get("fields", ()))
    dropped = set()
    while fields and fields[-1].get("name") in unread:
        dropped.add(fields.pop()["name"])
    record["fields"] = fields
    return frozenset(dropped)


def _plain_times(schema: Any) -> Any:
    """A copy of an Avro schema (JSON) whose ``timestamp-millis`` longs are plain longs."""
    if isinstance(schema, dict):
        return {
            key: _plain_times(value)
            for key, value in schema.items()
            if not (key == "logicalType" and value == "timestamp-millis")
        }
    if isinstance(schema, list):
        return [_plain_times(value) for value in schema]
    return schema


def _event_schema(schema_id: int, schema: Schema) -> tuple[type[Any], dict[str, Any]]:
    """The event type an Avro record schema from the registry describes, and its JSON."""
    if (schema.schema_type or "AVRO") != "AVRO" or not schema.schema_str:
        raise UnknownSchemaError(f"schema id {schema_id} is not an Avro schema")
    try:
        raw = json.loads(schema.schema_str)
    except json.JSONDecodeError as exc:
        raise UnknownSchemaError(f"schema id {schema_id} is not Avro JSON") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise UnknownSchemaError(f"schema id {schema_id} is not an Avro record")
    name = str(raw.get("name", ""))
    full = name if "." in name else f"{raw.get('namespace', '')}.{name}"
    namespace, _, short = full.rpartition(".")
    event_type = _BY_NAME.get(short)
    if event_type is None or namespace != NAMESPACE:
        raise UnknownSchemaError(f"schema id {schema_id} is {full!r}, not a Consent Relay event")
    return event_type, raw


def _recursive_type(schema: Any, enclosing: tuple[str, ...]) -> str | None:
    """The first named type of a parsed schema that refers to itself, or None.

    A parsed schema defines each named type where it first appears and refers to it by
    name after that, so a type contains itself exactly when its name turns up inside
    its own definition.
    """
    if isinstance(schema, str):
        return schema if schema in enclosing else None
    if isinstance(schema, list):
        return next((n for b in schema if (n := _recursive_type(b, enclosing))), None)
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, dict | list):
        return _recursive_type(kind, enclosing)
    if kind in ("record", "error"):
        inner = (*enclosing, str(schema.get("name")))
        fields = schema.get("fields") or ()
        return next((n for f in fields if (n := _recursive_type(f.get("type"), inner))), None)
    if kind in ("array", "map"):
        return _recursive_type(schema.get("items", schema.get("values")), enclosing)
    return None


_FIXED_WIDTH = {"null": 0, "boolean": 1, "float": 4, "double": 8}
_NAMED = frozenset({"record", "error", "enum", "fixed"})


class _IndexWalk:
    """Reads an Avro body against its writer schema only to find the first enum symbol or
    union branch index the schema does not have, and the dotted field that holds it.

    Any other trouble (the body ends, a length is negative, the walk runs too long)
    means the index was not the problem: :meth:`find` then answers None.
    """

    def __init__(self, data: bytes, offset: int, schema: Any) -> None:
        self._data = data
        self._pos = offset
        self._schema = schema
        self._named: dict[str, Any] = {}
        self._steps = 64 + 8 * len(data)  # items of no width (nulls) cannot loop for ever
        self._name_all(schema)

    def find(self) -> IndexOutOfRangeError | None:
        try:
            return self._walk(self._schema, "")
        except (IndexError, KeyError, TypeError, ValueError, RecursionError):
            return None

    def _name_all(self, schema: Any) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._name_all(branch)
        elif isinstance(schema, dict):
            if isinstance(schema.get("type"), dict | list):
                self._name_all(schema["type"])
            elif schema.get("type") in _NAMED:
                self._named[schema["name"]] = schema
            for field in schema.get("fields", ()):
                self._name_all(field["type"])
            for key in ("items", "values"):
                self._name_all(schema.get(key))

    def _long(self) -> int:
        shift = value = 0
        while True:
            byte = self._data[self._pos]  # IndexError past the end
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1)
            shift += 7
            if shift > 63:
                raise ValueError("varint longer than 10 bytes")

    def _skip(self, size: int) -> None:
        if size < 0 or self._pos + size > len(self._data):
            raise ValueError("length outside the body")
        self._pos += size

    def _walk(self, schema: Any, field: str) -> IndexOutOfRangeError | None:
        self._steps -= 1
        if self._steps < 0:
            raise ValueError("too many steps")
        if isinstance(schema, list):
            index = self._long()
            if not 0 <= index < len(schema):
                return IndexOutOfRangeError(
                    field,
                    f"union branch {index} is out of range: the union has {len(schema)} branches",
                )
            return self._walk(schema[index], field)
        if isinstance(schema, str):
            schema = self._named.get(schema, {"type": schema})
        kind = schema["type"]
        if isinstance(kind, dict | list):  # {"type": {"type": "enum", ...}}
            return self._walk(kind, field)
        if kind in ("record", "error"):
            for f in schema["fields"]:
                found = self._walk(f["type"], f"{field}.{f['name']}" if field else f["name"])
                if found is not None:
                    return found
        elif kind == "enum":
            index, symbols = self._long(), schema["symbols"]
            if not 0 <= index < len(symbols):
                name = schema["name"].rpartition(".")[2]
                return IndexOutOfRangeError(
                    field,
                    f"enum index {index} is out of range: {name} has {len(symbols)} symbols",
                )
        elif kind in ("array", "map"):
            return self._blocks(schema, field)
        elif kind in ("int", "long"):
            self._long()
        elif kind in ("string", "bytes"):
            self._skip(self._long())
        elif kind == "fixed":
            self._skip(schema["size"])
        else:
            self._skip(_FIXED_WIDTH[kind])
        return None

    def _blocks(self, schema: dict[str, Any], field: str) -> IndexOutOfRangeError | None:
        count = self._long()
        while count:
            if count < 0:  # a negative count is followed by the block's size in bytes
                count = -count
                self._long()
            for _ in range(count):
                if schema["type"] == "map":
                    self._skip(self._long())
                found = self._walk(schema.get("items", schema.get("values")), field)
                if found is not None:
                    return found
            count = self._long()
        return None
