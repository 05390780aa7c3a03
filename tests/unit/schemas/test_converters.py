"""The pure converters: every record round-trips through its Avro dict and its JSON form,
and every way a dict can be wrong is a ValidationError naming the dotted field."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.converters import UNKNOWN_SYMBOL, from_dict, to_dict
from schemas.errors import ValidationError
from schemas.events import (
    EVENT_TYPES,
    ConsentChanged,
    DataEventCaptured,
    DeadLettered,
    FullyPropagated,
    InstructionIssued,
    Subject,
)
from schemas.examples import example, examples


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(value)


def as_json(event: Any) -> dict[str, Any]:
    """What a JSON API would send: ISO times, no bytes."""
    loaded: dict[str, Any] = json.loads(json.dumps(to_dict(event), default=_json_default))
    return loaded


def consent_dict(**changes: Any) -> dict[str, Any]:
    data = to_dict(example(ConsentChanged))
    data.update(changes)
    return data


def refused(cls: type[Any], data: Any, field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        from_dict(cls, data)
    assert caught.value.field_name == field, caught.value
    assert reason in caught.value.reason, caught.value


@pytest.mark.parametrize("event", examples(), ids=lambda e: type(e).__name__)
def test_avro_dict_round_trip(event: Any) -> None:
    assert from_dict(type(event), to_dict(event)) == event


@pytest.mark.parametrize(
    "event",
    [e for e in examples() if not isinstance(e, DataEventCaptured | DeadLettered)],
    ids=lambda e: type(e).__name__,
)
def test_json_round_trip_with_iso_times(event: Any) -> None:
    assert from_dict(type(event), as_json(event)) == event


def test_to_dict_is_plain_data() -> None:
    data = to_dict(example(FullyPropagated))
    assert isinstance(data["subject"], dict)
    assert isinstance(data["destinations"], list)
    assert isinstance(data["destinations"][0], dict)
    assert type(data["destinations"][0]["outcome"]) is not dict


def test_optional_fields_may_be_absent_or_null() -> None:
    data = consent_dict()
    del data["evidence_ref"]
    data["expires_at"] = None
    del data["recipients"]
    event = from_dict(ConsentChanged, data)
    assert (event.evidence_ref, event.expires_at, event.recipients) == (None, None, ())


def test_epoch_milliseconds_are_times() -> None:
    at = datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    data = consent_dict(occurred_at=int(at.timestamp() * 1000), expires_at=None)
    assert from_dict(ConsentChanged, data).occurred_at == at


def test_iso_times_with_an_offset_become_utc() -> None:
    data = consent_dict(occurred_at="2024-03-01T14:00:00+02:00", expires_at=None)
    occurred = from_dict(ConsentChanged, data).occurred_at
    assert occurred == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert occurred.utcoffset() == timedelta(0)


def test_aware_datetimes_pass_through() -> None:
    paris = timezone(timedelta(hours=1))
    at = datetime(2024, 3, 1, 13, 0, tzinfo=paris)
    assert (
        from_dict(ConsentChanged, consent_dict(occurred_at=at, expires_at=None)).occurred_at == at
    )


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"occurred_at": "yesterday"}, "occurred_at", "is not an ISO-8601 time"),
        ({"occurred_at": "2024-03-01T12:00:00"}, "occurred_at", "must carry a timezone"),
        ({"occurred_at": 1.5}, "occurred_at", "must be a time"),
        ({"occurred_at": True}, "occurred_at", "must be a time"),
        ({"occurred_at": 10**20}, "occurred_at", "outside the supported time range"),
        ({"recorded_at": None}, "recorded_at", "is required"),
        ({"choice": "MAYBE"}, "choice", "unknown Choice 'MAYBE'"),
        ({"choice": UNKNOWN_SYMBOL}, "choice", "unknown Choice 'UNKNOWN'"),
        ({"choice": ["GRANTED"]}, "choice", "unknown Choice"),
        ({"purposes": "MARKETING_EMAIL"}, "purposes", "must be a list"),
        ({"purposes": [UNKNOWN_SYMBOL]}, "purposes", "unknown Purpose"),
        ({"purposes": []}, "purposes", "must name at least one"),
        ({"evidence_ref": 12}, "evidence_ref", "must be str, got int"),
        ({"event_id": b"abc"}, "event_id", "must be str, got bytes"),
        ({"subject": "user-1"}, "subject", "must be an object"),
        ({"subject": {"id": "u", "kind": "ROBOT"}}, "subject.kind", "unknown SubjectKind"),
        ({"subject": {"id": "", "kind": "ACCOUNT"}}, "subject.id", "must not be empty"),
        ({"subject": {"kind": "ACCOUNT"}}, "subject.id", "is required"),
        (
            {"subject": {"id": "u", "kind": "ACCOUNT", "email": "x"}},
            "subject.email",
            "is not a field of Subject",
        ),
        ({"colour": "blue"}, "colour", "is not a field of ConsentChanged"),
        ({"choice": "WITHDRAWN", "purposes": ["CUSTOMS"]}, "purposes", "cannot be withdrawn"),
    ],
)
def test_from_dict_error_paths(changes: dict[str, Any], field: str, reason: str) -> None:
    refused(ConsentChanged, consent_dict(**changes), field, reason)


def test_missing_required_field() -> None:
    data = consent_dict()
    del data["choice"]
    refused(ConsentChanged, data, "choice", "is required")


def test_not_a_mapping() -> None:
    refused(ConsentChanged, ["not", "a", "dict"], "ConsentChanged", "must be an object")


def test_non_text_keys_are_named() -> None:
    refused(Subject, {"id": "u", "kind": "ACCOUNT", 7: "x"}, "7", "is not a field of Subject")


def test_nested_list_records_name_their_field() -> None:
    data = to_dict(example(FullyPropagated))
    data["destinations"][0]["outcome"] = "MAYBE"
    refused(FullyPropagated, data, "destinations.outcome", "unknown Outcome")
    data["destinations"] = [7]
    refused(FullyPropagated, data, "destinations", "must be an object")


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"source_offset": "41"}, "source_offset", "must be int, got str"),
        ({"source_offset": True}, "source_offset", "must be int, got bool"),
        ({"original_key": "text"}, "original_key", "must be bytes, got str"),
    ],
)
def test_primitive_types_are_exact(changes: dict[str, Any], field: str, reason: str) -> None:
    data = to_dict(example(DeadLettered))
    data.update(changes)
    refused(DeadLettered, data, field, reason)


def test_optional_enum_may_be_null() -> None:
    data = to_dict(example(InstructionIssued))
    data["right"] = None
    assert from_dict(InstructionIssued, data).right is None


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_field_of_every_record_is_converted(event_type: type[Any]) -> None:
    event = example(event_type)
    assert set(to_dict(event)) == {f.name for f in dataclasses.fields(event_type)}
