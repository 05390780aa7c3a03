"""Registering the contract in the schema registry.

Subjects follow the record-name strategy (``io.consentrelay.events.<Event>``) and are
set to a compatibility mode before the shipped schema is registered. Production
serializers never auto-register: deploying a new schema is this explicit step
(``consent-relay schemas register``), run once per release.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.codec import schema_text, subject_name
from schemas.errors import RegistryUnavailableError, UnknownSchemaError
from schemas.events import EVENT_TYPES

COMPATIBILITY = "FULL_TRANSITIVE"
"""New schemas must read old data and old readers must read new data, across releases."""


def register_all(
    registry: SchemaRegistryClient, compatibility: str = COMPATIBILITY
) -> dict[str, int]:
    """Set each subject's compatibility and register the shipped schema; subject → id."""
    ids: dict[str, int] = {}
    for event_type in EVENT_TYPES:
        ids[subject_name(event_type)] = register(registry, event_type, compatibility)
    return ids


def register(
    registry: SchemaRegistryClient, event_type: type[Any], compatibility: str = COMPATIBILITY
) -> int:
    """Register one event type's shipped schema under its subject; returns its id."""
    subject = subject_name(event_type)
    try:
        registry.set_compatibility(subject_name=subject, level=compatibility)
        return registry.register_schema(subject, Schema(schema_text(event_type), "AVRO"))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 409:
            raise UnknownSchemaError(
                f"{subject}: incompatible with the registered one: {exc}"
            ) from exc
        raise RegistryUnavailableError(f"{subject}: registry refused: {exc}") from exc
    except OSError as exc:
        raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc


def is_compatible(registry: SchemaRegistryClient, event_type: type[Any], text: str) -> bool:
    """Ask the registry whether ``text`` may become the next version of the subject."""
    return bool(registry.test_compatibility(subject_name(event_type), Schema(text, "AVRO")))
