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

from schemas.codec import REGISTRY_TRANSPORT_ERRORS, schema_text, subject_name
from schemas.errors import IncompatibleSchemaError, RegistryUnavailableError
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
    registry: SchemaRegistryClient,
    event_type: type[Any],
    compatibility: str = COMPATIBILITY,
    *,
    subject: str | None = None,
    text: str | None = None,
) -> int:
    """Register one event type's schema (default: as shipped) under its subject (default:
    record-name strategy) after setting the subject's compatibility; returns its id."""
    subject = subject or subject_name(event_type)
    text = schema_text(event_type) if text is None else text
    try:
        registry.set_compatibility(subject_name=subject, level=compatibility)
        return registry.register_schema(subject, Schema(text, "AVRO"))
    except SchemaRegistryError as exc:
        raise _refusal(subject, exc) from exc
    except REGISTRY_TRANSPORT_ERRORS as exc:
        raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc


def is_compatible(
    registry: SchemaRegistryClient,
    event_type: type[Any],
    text: str,
    *,
    subject: str | None = None,
) -> bool:
    """Ask the registry whether ``text`` may become the next version of the event type's
    subject (or of ``subject``), under that subject's compatibility level."""
    subject = subject or subject_name(event_type)
    try:
        return bool(registry.test_compatibility(subject, Schema(text, "AVRO")))
    except SchemaRegistryError as exc:
        raise _refusal(subject, exc) from exc
    except REGISTRY_TRANSPORT_ERRORS as exc:
        raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc


def _refusal(subject: str, exc: SchemaRegistryError) -> Exception:
    """409 (incompatible) and 422 (invalid) are the schema's fault; the rest, the registry's."""
    if exc.http_status_code in (409, 422):
        return IncompatibleSchemaError(f"{subject}: the registry refused the schema: {exc}")
    return RegistryUnavailableError(f"{subject}: registry error: {exc}")
