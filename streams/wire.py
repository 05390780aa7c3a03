"""Bytes in and out of the stream, through the one codec module (:mod:`schemas.codec`).

Input is decoded once per message with fastavro (``EventDecoder``) and validated by
building the record. Output dicts are written in the Confluent wire format (magic byte
0, the registry's 4-byte schema id, the Avro body) with the shipped schemas the
producers' ``EventSerializer`` writes with, byte for byte the same
(tests/integration/streams/test_wire.py). The stream does not go through
``EventSerializer`` per message: its subject and rule bookkeeping cost a third of the
encoding, and the stream writes several messages per event. A state record (a
:class:`~streams.records.StateAvro`) is written by :mod:`streams.state_writer`, which
keeps each key's encoded decisions, into the same bytes. The registry is asked for
each schema's id once, on first use, exactly as ``EventSerializer`` asks it
(record-name subject, shipped text, never auto-registering).
"""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.codec import (
    REGISTRY_TRANSPORT_ERRORS,
    SHIPPED,
    WIRE_MAGIC,
    EventDecoder,
    schema_text,
    subject_name,
)
from schemas.errors import ConsentRelayError, RegistryUnavailableError, UnknownSchemaError
from schemas.events import (
    ConsentStateRecorded,
    DeadLettered,
    FullyPropagated,
    InstructionIssued,
    InstructionsIssued,
)
from streams.records import StateAvro
from streams.state_writer import StateWriter

OUTPUT_TYPES: tuple[type[Any], ...] = (
    InstructionIssued,
    InstructionsIssued,
    ConsentStateRecorded,
    FullyPropagated,
    DeadLettered,
)

_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
"""What fastavro raises for an Avro dict that does not fit its schema."""


class Encoder(Protocol):
    """Writes one output event's Avro dict for a topic."""

    def __call__(self, event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
        """The event's bytes on ``topic``."""
        ...


class Decoder(Protocol):
    """Reads and validates one input message."""

    def decode(self, data: bytes | None) -> Any:
        """The validated record; raises InvalidEventError or RegistryUnavailableError."""
        ...


class RegistryEncoder:
    """An :class:`Encoder` in the Confluent wire format, ids from the schema registry."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._schemas = {t: SHIPPED[t].parsed for t in OUTPUT_TYPES}
        self._headers: dict[type[Any], bytes] = {}
        self._state = StateWriter()

    def __call__(self, event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
        """The event's bytes on ``topic``; registry trouble raises typed errors."""
        schema = self._schemas[event_type]
        header = self._headers.get(event_type)
        if header is None:
            header = self._headers[event_type] = self._header(event_type)
        buf = io.BytesIO()
        buf.write(header)
        try:
            if type(avro) is StateAvro:
                buf.write(self._state.body(avro))
            else:
                fastavro.schemaless_writer(buf, schema, avro)
        except _WRITE_ERRORS as exc:
            # fastavro says which field does not fit the schema (an Avro dict's mistake).
            raise ConsentRelayError(f"cannot serialize {event_type.__name__}: {exc}") from exc
        return buf.getvalue()

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


def registry_wire(registry: SchemaRegistryClient) -> tuple[Decoder, Encoder]:
    """The production decoder and encoder."""
    return EventDecoder(registry), RegistryEncoder(registry)
