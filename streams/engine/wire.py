"""Bytes in and out of the stream, through the one codec module (:mod:`schemas.codec`).

Input is decoded once per message with fastavro (``EventDecoder``) and validated by
building the record. Output dicts are written in the Confluent wire format (magic byte
0, the registry's 4-byte schema id, the Avro body) with the shipped schemas the
producers' ``EventSerializer`` writes with, byte for byte the same
(tests/integration/streams/test_wire.py). The stream does not go through
``EventSerializer`` per message: its subject and rule bookkeeping cost a third of the
encoding, and the stream writes several messages per event. A state record (a
:class:`~streams.intake.records.StateAvro`) is written by :mod:`streams.intake.state_writer`, which
keeps each key's encoded decisions, into the same bytes. The registry is asked for
each schema's id once, on first use, exactly as ``EventSerializer`` asks it
(record-name subject, shipped text, never auto-registering).
"""

from __future__ import annotations

from typing import Any, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.codec import EventDecoder
from schemas.codec import RegistryEncoder as ContractEncoder
from schemas.errors import ConsentRelayError
from streams.intake.records import StateAvro
from streams.intake.state_writer import StateWriter

_WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
"""What the state writer (like fastavro) raises for a record that does not fit its schema."""


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


class RegistryEncoder(ContractEncoder):
    """An :class:`Encoder` in the Confluent wire format, ids from the schema registry
    (the contract's encoder), with state records written by :mod:`streams.intake.state_writer`."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        super().__init__(registry)
        self._state = StateWriter()

    def __call__(self, event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
        """The event's bytes on ``topic``; registry trouble raises typed errors."""
        if type(avro) is not StateAvro:
            return super().__call__(event_type, avro, topic)
        header = self.header(event_type)
        try:
            return header + self._state.body(avro)
        except _WRITE_ERRORS as exc:
            raise ConsentRelayError(f"cannot serialize {event_type.__name__}: {exc}") from exc


def registry_wire(registry: SchemaRegistryClient) -> tuple[Decoder, Encoder]:
    """The production decoder and encoder."""
    return EventDecoder(registry), RegistryEncoder(registry)
