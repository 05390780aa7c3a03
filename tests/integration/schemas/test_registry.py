"""The contract in the real schema registry: registered FULL_TRANSITIVE under the
record-name strategy, and the registry's own compatibility check agrees with ours:
it accepts the shipped schema after the release and rejects incompatible changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import compatibility
from schemas.codec import schema_text, subject_name
from schemas.errors import IncompatibleSchemaError, RegistryUnavailableError
from schemas.events import EVENT_TYPES, ConsentChanged, DeadLettered, RightsRequested
from schemas.registry import COMPATIBILITY, is_compatible, register, register_all

Scratch = Callable[[str], str]


def released(event_type: type[Any]) -> str:
    """The text of an event type's schema in the last release."""
    latest = compatibility.releases()[-1]
    return latest.joinpath(f"{event_type.__name__}.avsc").read_text()


def edited(event_type: type[Any], edit: Callable[[dict[str, Any]], None]) -> str:
    schema = json.loads(schema_text(event_type))
    edit(schema)
    return json.dumps(schema)


def add_required_field(schema: dict[str, Any]) -> None:
    schema["fields"].append({"name": "channel", "type": "string", "doc": "New, no default."})


def change_a_type(schema: dict[str, Any]) -> None:
    next(f for f in schema["fields"] if f["name"] == "evidence_ref")["type"] = ["null", "long"]


def remove_a_required_field(schema: dict[str, Any]) -> None:
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "choice"]


def test_every_subject_is_full_transitive_with_the_shipped_schema_latest(
    registry: SchemaRegistryClient, registered_schemas: dict[str, int]
) -> None:
    assert set(registered_schemas) == {subject_name(t) for t in EVENT_TYPES}
    for event_type in EVENT_TYPES:
        subject = subject_name(event_type)
        assert registry.get_compatibility(subject) == COMPATIBILITY
        latest = registry.get_latest_version(subject)
        assert json.loads(latest.schema.schema_str) == json.loads(schema_text(event_type))
        assert latest.schema_id == registered_schemas[subject]


def test_registering_again_is_idempotent(
    registry: SchemaRegistryClient, registered_schemas: dict[str, int]
) -> None:
    assert register_all(registry) == registered_schemas


def test_the_registry_accepts_the_shipped_schema_after_the_release(
    registry: SchemaRegistryClient, scratch_subject: Scratch
) -> None:
    subject = scratch_subject(subject_name(ConsentChanged))
    register(registry, ConsentChanged, subject=subject, text=released(ConsentChanged))
    assert registry.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert is_compatible(registry, ConsentChanged, schema_text(ConsentChanged), subject=subject)
    register(registry, ConsentChanged, subject=subject)
    changed = released(ConsentChanged) != schema_text(ConsentChanged)
    assert registry.get_versions(subject) == ([1, 2] if changed else [1])


@pytest.mark.parametrize(
    "edit",
    [add_required_field, change_a_type, remove_a_required_field],
    ids=["new required field", "type change", "removed required field"],
)
def test_the_registry_rejects_an_incompatible_change(
    registry: SchemaRegistryClient, scratch_subject: Scratch, edit: Callable[[dict[str, Any]], None]
) -> None:
    subject = scratch_subject(subject_name(ConsentChanged))
    register(registry, ConsentChanged, subject=subject)
    broken = edited(ConsentChanged, edit)
    assert not is_compatible(registry, ConsentChanged, broken, subject=subject)
    with pytest.raises(IncompatibleSchemaError, match=subject):
        register(registry, ConsentChanged, subject=subject, text=broken)
    assert registry.get_versions(subject) == [1]
    # Our offline check finds the same break against the same base schema.
    shipped = {f"{t.__name__}.avsc": schema_text(t) for t in EVENT_TYPES}
    problems = compatibility.check({**shipped, "ConsentChanged.avsc": broken})
    assert problems
    assert all(p.startswith("ConsentChanged: ") for p in problems)


def test_full_transitive_checks_every_earlier_version(
    registry: SchemaRegistryClient, scratch_subject: Scratch
) -> None:
    # v1 → v2 (adds an optional field) → v3 (makes it required): v3 fits v2 in one
    # direction, but FULL_TRANSITIVE also holds it against v1, which lacks the field.
    subject = scratch_subject(subject_name(DeadLettered))
    register(registry, DeadLettered, subject=subject)

    def optional(schema: dict[str, Any]) -> None:
        schema["fields"].append(
            {"name": "attempts", "type": ["null", "long"], "default": None, "doc": "Tries."}
        )

    def required(schema: dict[str, Any]) -> None:
        schema["fields"].append({"name": "attempts", "type": "long", "doc": "Tries."})

    register(registry, DeadLettered, subject=subject, text=edited(DeadLettered, optional))
    assert not is_compatible(
        registry, DeadLettered, edited(DeadLettered, required), subject=subject
    )


def test_an_invalid_schema_is_refused_with_a_typed_error(
    registry: SchemaRegistryClient, scratch_subject: Scratch
) -> None:
    subject = scratch_subject(subject_name(RightsRequested))
    register(registry, RightsRequested, subject=subject)
    with pytest.raises(IncompatibleSchemaError):
        is_compatible(registry, RightsRequested, '{"type": "record"', subject=subject)


def test_an_unreachable_registry_is_a_typed_error() -> None:
    with SchemaRegistryClient({"url": "http://127.0.0.1:1", "max.retries": 0}) as nowhere:
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            register(nowhere, ConsentChanged)
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            is_compatible(nowhere, ConsentChanged, schema_text(ConsentChanged))
