"""The contract's rules: what makes an event impossible, named field by field.

Records call these from ``__post_init__``; every failure is a
:class:`~schemas.errors.ValidationError` carrying the field's dotted name and a reason a
person can act on. Rules come from the privacy policy via :mod:`schemas.taxonomy`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from schemas.errors import ValidationError
from schemas.taxonomy import (
    DIRECT_MARKETING_PURPOSES,
    PURPOSE_SPECS,
    RECIPIENT_SPECS,
    RIGHT_SPECS,
    Channel,
    Choice,
    CookieCategory,
    PolicyVersion,
    Purpose,
    Recipient,
    Regime,
    Requester,
    Right,
    Source,
    SubjectKind,
)

if TYPE_CHECKING:
    from schemas.events import (
        ConsentChanged,
        ConsentEvent,
        CookiePreferencesSet,
        RightsRequested,
        Subject,
    )

MAX_FUTURE_SKEW: Final = timedelta(minutes=5)
"""How far ahead of this machine's clock an event time may be."""

MAX_SUBJECT_ID_LENGTH: Final = 256
"""Longest subject or device id accepted (ids are opaque keys, not free text)."""

_UNSTORABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""C0 controls, DEL, C1 controls and lone surrogates: never part of a real key.

PostgreSQL refuses NUL in text and no store can encode a lone surrogate as UTF-8, so an
id holding one is accepted here and never honoured downstream; the others are how
keys that look equal end up different (a trailing newline, an escape sequence).
"""

_CANONICAL_UUID: Final = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""The spelling ``str(uuid.UUID(...))`` writes: an id spelled so is canonical without being
parsed (every consent event's id is checked; parsing it was about half the cost of the
envelope's checks)."""

POLICY_IN_FORCE_FROM: Final = {
    PolicyVersion.V2018_05_25: date(2018, 5, 25),
    PolicyVersion.V2019_07_15: date(2019, 7, 15),
}

_CHANNEL_RIGHTS: Final = frozenset({Right.REFUSE_MARKETING, Right.OBJECT_TO_DIRECT_MARKETING})
_STOPPING_RIGHTS: Final = frozenset(
    {
        Right.WITHDRAW_CONSENT,
        Right.OBJECT_TO_LEGITIMATE_INTEREST,
        Right.OBJECT_TO_DIRECT_MARKETING,
        Right.REFUSE_MARKETING,
    }
)


def identifier_problem(value: object) -> str | None:
    """Why ``value`` cannot be a subject or device id, or None when it can.

    The one rule for ids, wherever they come in (client, gateway, CLI, import) and
    wherever they are read back (a record built from a decoded message): a non-blank
    string of at most :data:`MAX_SUBJECT_ID_LENGTH` characters without control
    characters. The reason names a code point and a position, never the id itself.
    """
    if not isinstance(value, str) or not value.strip():
        return "must not be empty"
    if len(value) > MAX_SUBJECT_ID_LENGTH:
        return f"longer than {MAX_SUBJECT_ID_LENGTH} characters"
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"contains {what} (U+{code:04X}) at position {found.start()}"


def validate_subject(subject: Subject) -> None:
    """A subject needs an id :func:`identifier_problem` accepts and a known kind."""
    _check_identifier("subject.id", subject.id)
    _check_member("subject.kind", subject.kind, SubjectKind)


def validate_envelope(event: ConsentEvent) -> None:
    """Check the fields every consent event carries."""
    from schemas.events import Subject  # noqa: PLC0415 - events imports this module

    _check_uuid("event_id", event.event_id)
    if not isinstance(event.subject, Subject):
        raise ValidationError("subject", "must be a Subject")
    _check_time("occurred_at", event.occurred_at)
    _check_time("recorded_at", event.recorded_at)
    _check_member("source", event.source, Source)
    _check_member("regime", event.regime, Regime)
    _check_policy_version(event)
    if event.evidence_ref is not None and (
        not isinstance(event.evidence_ref, str) or not event.evidence_ref.strip()
    ):
        raise ValidationError("evidence_ref", "must be a non-blank string or absent")


def validate_consent_changed(event: ConsentChanged) -> None:
    """Purposes and recipients must exist; contract- and law-based ones cannot be withdrawn."""
    validate_envelope(event)
    _check_member("choice", event.choice, Choice)
    _check_members("purposes", event.purposes, Purpose, non_empty=True)
    _check_members("recipients", event.recipients, Recipient)
    if event.choice is Choice.WITHDRAWN:
        for purpose in event.purposes:
            spec = PURPOSE_SPECS[purpose]
            if not spec.refusable:
                raise ValidationError(
                    "purposes",
                    f"{purpose} rests on {spec.basis} and cannot be withdrawn",
                )
        for recipient in event.recipients:
            if not RECIPIENT_SPECS[recipient].consent_based:
                raise ValidationError(
                    "recipients",
                    f"sharing with {recipient} is not based on consent and cannot be withdrawn",
                )
    if event.expires_at is not None:
        _check_time("expires_at", event.expires_at, future_ok=True)
        if event.expires_at <= event.occurred_at:
            raise ValidationError("expires_at", "must be after occurred_at")


def validate_rights_requested(event: RightsRequested) -> None:
    """The right must suit the subject, the requester, the channels and the purposes."""
    validate_envelope(event)
    _check_member("right", event.right, Right)
    _check_members("purposes", event.purposes, Purpose)
    _check_members("channels", event.channels, Channel)
    _check_member("requested_by", event.requested_by, Requester)
    spec = RIGHT_SPECS[event.right]
    if spec.account_only and event.subject.kind is SubjectKind.DEVICE:
        raise ValidationError(
            "subject.kind", f"{event.right} needs an ACCOUNT subject, not a DEVICE"
        )
    if event.right is Right.ERASURE_OF_MINOR and event.requested_by is not Requester.GUARDIAN:
        raise ValidationError("requested_by", "erasure of a minor's data is asked by a GUARDIAN")
    if event.channels and event.right not in _CHANNEL_RIGHTS:
        raise ValidationError("channels", f"{event.right} does not take marketing channels")
    for purpose in event.purposes:
        if not PURPOSE_SPECS[purpose].refusable and event.right in _STOPPING_RIGHTS:
            raise ValidationError(
                "purposes",
                f"{purpose} rests on {PURPOSE_SPECS[purpose].basis}; {event.right} cannot stop it",
            )
        if event.right in _CHANNEL_RIGHTS and purpose not in DIRECT_MARKETING_PURPOSES:
            raise ValidationError(
                "purposes", f"{purpose} is not direct marketing; {event.right} does not reach it"
            )


def validate_cookie_preferences(event: CookiePreferencesSet) -> None:
    """A device, at least one choice, no contradiction, and essential cookies stay on."""
    validate_envelope(event)
    _check_identifier("device_id", event.device_id)
    _check_members("granted", event.granted, CookieCategory)
    _check_members("refused", event.refused, CookieCategory)
    if CookieCategory.ESSENTIAL in event.refused:
        raise ValidationError(
            "refused", "ESSENTIAL cookies are strictly necessary and cannot be refused"
        )
    if not event.granted and not event.refused:
        raise ValidationError("granted", "grant or refuse at least one category")
    both = set(event.granted) & set(event.refused)
    if both:
        raise ValidationError("refused", f"{sorted(both)[0]} is both granted and refused")


def _check_identifier(name: str, value: object) -> None:
    problem = identifier_problem(value)
    if problem is not None:
        raise ValidationError(name, problem)


def _check_uuid(name: str, value: object) -> None:
    # Ids are idempotency keys compared as text, so only the canonical spelling is accepted.
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return
    if not isinstance(value, str):
        raise ValidationError(name, f"{value!r} is not a UUID string")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError as exc:
        raise ValidationError(name, f"{value!r} is not a UUID") from exc
    if value != canonical:
        raise ValidationError(name, f"{value!r} is not in canonical form {canonical!r}")


def _check_time(name: str, value: object, *, future_ok: bool = False) -> None:
    if not isinstance(value, datetime):
        raise ValidationError(name, "must be a datetime")
    if value.tzinfo is None:
        raise ValidationError(name, "must be timezone-aware (UTC)")
    if not future_ok and value > datetime.now(UTC) + MAX_FUTURE_SKEW:
        raise ValidationError(name, f"is more than {MAX_FUTURE_SKEW} in the future")


def _check_policy_version(event: ConsentEvent) -> None:
    _check_member("policy_version", event.policy_version, PolicyVersion)
    since = POLICY_IN_FORCE_FROM[event.policy_version]
    if event.occurred_at.date() < since:
        raise ValidationError(
            "policy_version",
            f"{event.policy_version} was not yet in force on {event.occurred_at.date()}",
        )


def _check_member(name: str, value: object, enum: type[StrEnum]) -> None:
    if not isinstance(value, enum):
        raise ValidationError(name, f"unknown {enum.__name__} {value!r}")


def _check_members(
    name: str, values: Iterable[object], enum: type[StrEnum], *, non_empty: bool = False
) -> None:
    # A tuple keeps the frozen record hashable and stops a bare string being read as letters.
    if not isinstance(values, tuple):
        raise ValidationError(name, f"must be a tuple, got {type(values).__name__}")
    seen: set[object] = set()
    for value in values:
        _check_member(name, value, enum)
        if value in seen:
            raise ValidationError(name, f"{value} is listed twice")
        seen.add(value)
    if non_empty and not seen:
        raise ValidationError(name, "must name at least one")
