"""Pure functions that build one consent event per change a person can make.

Each returns a :mod:`schemas.events` record; the record's constructor validates it, so
an impossible change (withdrawing a contract-based purpose, a minor's erasure not asked
by a guardian, refusing essential cookies, ...) raises
:class:`~schemas.errors.ValidationError` naming the field before anything is sent.
Enum arguments may be given as members or as their names.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import TypeVar, Unpack

from producers.envelope import Envelope, EnvelopeDefaults, as_subject
from schemas.errors import ValidationError
from schemas.events import ConsentChanged, CookiePreferencesSet, RightsRequested, Subject
from schemas.taxonomy import (
    Channel,
    Choice,
    CookieCategory,
    Purpose,
    Recipient,
    Regime,
    Requester,
    Right,
    Source,
    SubjectKind,
)

E = TypeVar("E", bound=StrEnum)
SubjectLike = Subject | str

_DEFAULTS = EnvelopeDefaults()


def members(field_name: str, values: Iterable[E | str], enum: type[E]) -> tuple[E, ...]:
    """``values`` as members of ``enum``; an unknown name raises ValidationError."""
    if isinstance(values, str):
        values = (values,)
    return tuple(member(field_name, value, enum) for value in values)


def member(field_name: str, value: E | str, enum: type[E]) -> E:
    """``value`` as a member of ``enum``; an unknown name raises ValidationError."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        raise ValidationError(field_name, f"unknown {enum.__name__} {value!r}") from None


def consent_changed(
    subject: SubjectLike,
    choice: Choice | str,
    purposes: Iterable[Purpose | str],
    *,
    recipients: Iterable[Recipient | str] = (),
    expires_at: datetime | None = None,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> ConsentChanged:
    """A grant or withdrawal of consent for ``purposes`` (optionally limited to recipients)."""
    return ConsentChanged(
        **defaults.fill(envelope),  # type: ignore[arg-type]
        subject=as_subject(subject),
        choice=member("choice", choice, Choice),
        purposes=members("purposes", purposes, Purpose),
        recipients=members("recipients", recipients, Recipient),
        expires_at=expires_at,
    )


def grant(
    subject: SubjectLike,
    purposes: Iterable[Purpose | str],
    *,
    recipients: Iterable[Recipient | str] = (),
    expires_at: datetime | None = None,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> ConsentChanged:
    """The person gives consent for ``purposes`` (until ``expires_at`` if given)."""
    return consent_changed(
        subject,
        Choice.GRANTED,
        purposes,
        recipients=recipients,
        expires_at=expires_at,
        defaults=defaults,
        **envelope,
    )


def withdraw(
    subject: SubjectLike,
    purposes: Iterable[Purpose | str],
    *,
    recipients: Iterable[Recipient | str] = (),
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> ConsentChanged:
    """The person withdraws consent for ``purposes``; contract/legal bases are refused."""
    return consent_changed(
        subject, Choice.WITHDRAWN, purposes, recipients=recipients, defaults=defaults, **envelope
    )


def rights_requested(
    subject: SubjectLike,
    right: Right | str,
    *,
    purposes: Iterable[Purpose | str] = (),
    channels: Iterable[Channel | str] = (),
    requested_by: Requester | str = Requester.SUBJECT,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """The person (or a guardian / authorised agent) exercises ``right``."""
    return RightsRequested(
        **defaults.fill(envelope),  # type: ignore[arg-type]
        subject=as_subject(subject),
        right=member("right", right, Right),
        purposes=members("purposes", purposes, Purpose),
        channels=members("channels", channels, Channel),
        requested_by=member("requested_by", requested_by, Requester),
    )


def refuse_marketing(
    subject: SubjectLike,
    channels: Iterable[Channel | str] = (),
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Refuse marketing communications on ``channels`` (every channel when empty)."""
    return rights_requested(
        subject, Right.REFUSE_MARKETING, channels=channels, defaults=defaults, **envelope
    )


def object_to_direct_marketing(
    subject: SubjectLike,
    channels: Iterable[Channel | str] = (),
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Object to direct marketing: absolute, every channel and targeted ads."""
    return rights_requested(
        subject, Right.OBJECT_TO_DIRECT_MARKETING, channels=channels, defaults=defaults, **envelope
    )


def object_to_legitimate_interest(
    subject: SubjectLike,
    purposes: Iterable[Purpose | str] = (),
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Object to processing based on legitimate interests (``purposes``, or all of them)."""
    return rights_requested(
        subject,
        Right.OBJECT_TO_LEGITIMATE_INTEREST,
        purposes=purposes,
        defaults=defaults,
        **envelope,
    )


def request_erasure(
    subject: SubjectLike,
    *,
    requested_by: Requester | str = Requester.SUBJECT,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Erase the subject's personal data."""
    return rights_requested(
        subject, Right.ERASURE, requested_by=requested_by, defaults=defaults, **envelope
    )


def request_erasure_of_minor(
    subject: SubjectLike,
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """A parent or guardian asks for a minor's account data to be deleted (2018 F)."""
    return rights_requested(
        subject,
        Right.ERASURE_OF_MINOR,
        requested_by=Requester.GUARDIAN,
        defaults=defaults,
        **envelope,
    )


def restrict_processing(
    subject: SubjectLike,
    purposes: Iterable[Purpose | str] = (),
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Isolate the subject's data from further processing until the restriction is lifted."""
    return rights_requested(
        subject, Right.RESTRICT_PROCESSING, purposes=purposes, defaults=defaults, **envelope
    )


def lift_restriction(
    subject: SubjectLike,
    purposes: Iterable[Purpose | str] = (),
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Lift an earlier restriction of processing."""
    return rights_requested(
        subject, Right.LIFT_RESTRICTION, purposes=purposes, defaults=defaults, **envelope
    )


def opt_out_of_sale_or_sharing(
    subject: SubjectLike,
    purposes: Iterable[Purpose | str] = (),
    *,
    requested_by: Requester | str = Requester.SUBJECT,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """CCPA/CPRA opt-out of sale or sharing (regime CCPA unless overridden)."""
    envelope.setdefault("regime", Regime.CCPA)
    return rights_requested(
        subject,
        Right.OPT_OUT_OF_SALE_OR_SHARING,
        purposes=purposes,
        requested_by=requested_by,
        defaults=defaults,
        **envelope,
    )


def record_gpc_signal(
    subject: SubjectLike,
    *,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """A Global Privacy Control signal (``Sec-GPC: 1``): an opt-out of sale/sharing."""
    envelope.setdefault("source", Source.GPC_SIGNAL)
    return opt_out_of_sale_or_sharing(subject, defaults=defaults, **envelope)


def request_access(
    subject: SubjectLike,
    *,
    requested_by: Requester | str = Requester.SUBJECT,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Access to the personal data held (recorded; not propagated to sinks)."""
    return rights_requested(
        subject, Right.ACCESS, requested_by=requested_by, defaults=defaults, **envelope
    )


def request_portability(
    subject: SubjectLike,
    *,
    requested_by: Requester | str = Requester.SUBJECT,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """A copy of the data in a portable format (recorded; not propagated to sinks)."""
    return rights_requested(
        subject, Right.PORTABILITY, requested_by=requested_by, defaults=defaults, **envelope
    )


def request_rectification(
    subject: SubjectLike,
    *,
    requested_by: Requester | str = Requester.SUBJECT,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> RightsRequested:
    """Rectify or update personal data (recorded; not propagated to sinks)."""
    return rights_requested(
        subject, Right.RECTIFICATION, requested_by=requested_by, defaults=defaults, **envelope
    )


def set_cookie_preferences(
    device_id: str,
    *,
    granted: Iterable[CookieCategory | str] = (),
    refused: Iterable[CookieCategory | str] = (),
    subject: SubjectLike | None = None,
    defaults: EnvelopeDefaults = _DEFAULTS,
    **envelope: Unpack[Envelope],
) -> CookiePreferencesSet:
    """Cookie preferences for one browser/device (the subject is that device unless given)."""
    owner = as_subject(device_id, SubjectKind.DEVICE) if subject is None else as_subject(subject)
    return CookiePreferencesSet(
        **defaults.fill(envelope),  # type: ignore[arg-type]
        subject=owner,
        device_id=device_id,
        granted=members("granted", granted, CookieCategory),
        refused=members("refused", refused, CookieCategory),
    )
