"""The typed builders: one record per change, validated before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from producers import builders
from producers.envelope import EnvelopeDefaults
from schemas.errors import ValidationError
from schemas.events import ConsentChanged, CookiePreferencesSet, RightsRequested, Subject
from schemas.taxonomy import (
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


def test_grant_and_withdraw_fill_the_envelope() -> None:
    granted = builders.grant("u-1", [Purpose.MARKETING_EMAIL], recipients=["GOOGLE"])
    assert isinstance(granted, ConsentChanged)
    assert granted.choice is Choice.GRANTED
    assert granted.subject == Subject(id="u-1", kind=SubjectKind.ACCOUNT)
    assert granted.recipients == (Recipient.GOOGLE,)
    assert granted.source is Source.API
    assert granted.regime is Regime.GDPR
    assert granted.policy_version is PolicyVersion.V2019_07_15
    assert granted.occurred_at.tzinfo is not None

    withdrawn = builders.withdraw("u-1", ["MARKETING_EMAIL", "MARKETING_SMS"])
    assert withdrawn.choice is Choice.WITHDRAWN
    assert withdrawn.purposes == (Purpose.MARKETING_EMAIL, Purpose.MARKETING_SMS)
    assert withdrawn.event_id != granted.event_id


def test_overrides_and_service_defaults() -> None:
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    defaults = EnvelopeDefaults(source=Source.PRIVACY_SETTINGS, regime=Regime.CCPA)
    event = builders.grant(
        "u-2",
        [Purpose.MARKETING_PUSH],
        defaults=defaults,
        event_id="6f0c3b7e-2a55-4c1b-9a3e-0f6f3c2d1b10",
        occurred_at=when,
        evidence_ref="form-17",
        expires_at=when + timedelta(days=365),
    )
    assert event.event_id == "6f0c3b7e-2a55-4c1b-9a3e-0f6f3c2d1b10"
    assert event.occurred_at == when
    assert event.source is Source.PRIVACY_SETTINGS
    assert event.regime is Regime.CCPA
    assert event.evidence_ref == "form-17"


@pytest.mark.parametrize(
    ("build", "right"),
    [
        (lambda: builders.refuse_marketing("u", [Channel.EMAIL]), Right.REFUSE_MARKETING),
        (lambda: builders.object_to_direct_marketing("u"), Right.OBJECT_TO_DIRECT_MARKETING),
        (
            lambda: builders.object_to_legitimate_interest("u", [Purpose.RESEARCH_AND_STATISTICS]),
            Right.OBJECT_TO_LEGITIMATE_INTEREST,
        ),
        (lambda: builders.request_erasure("u"), Right.ERASURE),
        (lambda: builders.restrict_processing("u"), Right.RESTRICT_PROCESSING),
        (lambda: builders.lift_restriction("u"), Right.LIFT_RESTRICTION),
        (lambda: builders.request_access("u"), Right.ACCESS),
        (lambda: builders.request_portability("u"), Right.PORTABILITY),
        (lambda: builders.request_rectification("u"), Right.RECTIFICATION),
    ],
)
def test_each_right_has_a_builder(build: object, right: Right) -> None:
    event = build()  # type: ignore[operator]
    assert isinstance(event, RightsRequested)
    assert event.right is right
    assert event.requested_by is Requester.SUBJECT


def test_minor_erasure_is_asked_by_a_guardian() -> None:
    event = builders.request_erasure_of_minor("child-1")
    assert event.right is Right.ERASURE_OF_MINOR
    assert event.requested_by is Requester.GUARDIAN
    with pytest.raises(ValidationError) as caught:
        builders.rights_requested("child-1", Right.ERASURE_OF_MINOR)
    assert caught.value.field_name == "requested_by"


def test_gpc_signal_is_a_ccpa_opt_out_from_gpc() -> None:
    event = builders.record_gpc_signal(Subject(id="dev-9", kind=SubjectKind.DEVICE))
    assert event.right is Right.OPT_OUT_OF_SALE_OR_SHARING
    assert event.source is Source.GPC_SIGNAL
    assert event.regime is Regime.CCPA
    assert builders.opt_out_of_sale_or_sharing("u").source is Source.API


def test_cookie_preferences_belong_to_the_device_by_default() -> None:
    event = builders.set_cookie_preferences(
        "dev-1", granted=[CookieCategory.STATISTICS], refused=["MARKETING"]
    )
    assert isinstance(event, CookiePreferencesSet)
    assert event.subject == Subject(id="dev-1", kind=SubjectKind.DEVICE)
    assert event.refused == (CookieCategory.MARKETING,)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: builders.withdraw("u", [Purpose.ACCOUNT_MANAGEMENT]), "purposes"),
        (lambda: builders.withdraw("u", ["NO_SUCH_PURPOSE"]), "purposes"),
        (lambda: builders.withdraw("u", []), "purposes"),
        (lambda: builders.withdraw("", [Purpose.MARKETING_EMAIL]), "subject.id"),
        (lambda: builders.withdraw("u\x00-1", [Purpose.MARKETING_EMAIL]), "subject.id"),
        (lambda: builders.request_erasure("u-1\n"), "subject.id"),
        (
            lambda: builders.set_cookie_preferences("d\x7f", subject="u-1", granted=["MARKETING"]),
            "device_id",
        ),
        (lambda: builders.grant("u", [Purpose.MARKETING_EMAIL], event_id="nope"), "event_id"),
        (lambda: builders.refuse_marketing("u", ["FAX"]), "channels"),
        (lambda: builders.set_cookie_preferences("d", refused=["ESSENTIAL"]), "refused"),
        (lambda: builders.set_cookie_preferences("d"), "granted"),
        (
            lambda: builders.request_access(Subject(id="d", kind=SubjectKind.DEVICE)),
            "subject.kind",
        ),
        (
            lambda: builders.grant(
                "u",
                [Purpose.MARKETING_EMAIL],
                occurred_at=datetime(2019, 1, 1, tzinfo=UTC),
            ),
            "policy_version",
        ),
    ],
)
def test_invalid_input_names_the_field(build: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field_name == field
