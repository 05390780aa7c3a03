"""Bytes in and out of the stream, through the one codec module (:mod:`schemas.codec`).

Input is decoded once per message with fastavro (``EventDecoder``) and validated by
building the record; output dicts are written by the same ``EventSerializer`` the
producers use, so there is exactly one way event bytes are made.
"""

from __future__ import annotations

from typing import Any, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.codec import EventDecoder, EventSerializer
from schemas.events import (
    ConsentStateRecorded,
    DeadLettered,
    FullyPropagated,
    InstructionIssued,
)

OUTPUT_TYPES: tuple[type[Any], ...] = (
    InstructionIssued,
    ConsentStateRecorded,
    FullyPropagated,
    DeadLettered,
)


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
    """An :class:`Encoder` over the schema registry (Confluent wire format)."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._serializers = {t: EventSerializer(registry, t) for t in OUTPUT_TYPES}

    def __call__(self, event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
        """The event's bytes on ``topic``; registry trouble raises typed errors."""
        return self._serializers[event_type](avro, topic)


def registry_wire(registry: SchemaRegistryClient) -> tuple[Decoder, Encoder]:
    """The production decoder and encoder."""
    return EventDecoder(registry), RegistryEncoder(registry)
