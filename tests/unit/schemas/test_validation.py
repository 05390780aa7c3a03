"""Every rule of schemas/validation.py: an impossible event is refused, naming the field
and the reason; a possible one is accepted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ConsentRelayError, InvalidEventError, ValidationError
from schemas.events import (
    CONSENT_EVENT_TYPES,
    ConsentChanged,
    CookiePreferencesSet,
    RightsRequested,
    Subject,
)
from schemas.examples import example, examples
from schemas.taxonomy import (
    PURPOSE_SPECS,
    RECIPIENT_SPECS,
    RIGHT_SPECS,
    Channel,
    Choice,
    CookieCategory,
    PolicyVersion,
    Purpose,
    Recipient,
    Requester,
    Right,
    SubjectKind,
)
from schemas.validation import MAX_FUTURE_SKEW, MAX_SUBJECT_ID_LENGTH, identifier_problem

NOW = datetime.now(UTC)
DEVICE = Subject(id="device-1", kind=SubjectKind.DEVICE)
NOT_REFUSABLE = sorted(p for p, s in PURPOSE_SPECS.items() if not s.refusable)
NOT_CONSENT_RECIPIENTS = sorted(r for r, s in RECIPIENT_SPECS.items() if not s.consent_based)
ACCOUNT_ONLY_RIGHTS = sorted(r for r, s in RIGHT_SPECS.items() if s.account_only)
STOPPING_RIGHTS = (
    Right.WITHDRAW_CONSENT,
    Right.OBJECT_TO_LEGITIMATE_INTEREST,
    Right.OBJECT_TO_DIRECT_MARKETING,
    Right.REFUSE_MARKETING,
)


def refused(event_type: type[Any], field: str, reason: str, **overrides: Any) -> None:
    """Building ``event_type`` with ``overrides`` fails on ``field`` with ``reason``."""
    with pytest.raises(ValidationError) as caught:
        example(event_type, **overrides)
    assert caught.value.field_name == field, caught.value
    assert reason in caught.value.reason, caught.value
    assert str(caught.value) == f"{field}: {caught.value.reason}"


def test_examples_are_valid() -> None:
    assert [type(e) for e in examples()]


def test_validation_error_is_typed() -> None:
    error = ValidationError("purposes", "must name at least one")
    assert isinstance(error, InvalidEventError)
    assert isinstance(error, ConsentRelayError)
    assert isinstance(error, ValueError)
    assert (error.field_name, error.reason) == ("purposes", "must name at least one")


# --- Subject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject_id", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (42, "must not be empty"),
        ("x" * (MAX_SUBJECT_ID_LENGTH + 1), f"longer than {MAX_SUBJECT_ID_LENGTH}"),
    ],
)
def test_subject_id_must_be_a_bounded_non_blank_string(subject_id: Any, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        Subject(id=subject_id, kind=SubjectKind.ACCOUNT)
    assert caught.value.field_name == "subject.id"


def test_subject_id_at_the_limit_is_accepted() -> None:
    Subject(id="x" * MAX_SUBJECT_ID_LENGTH, kind=SubjectKind.ACCOUNT)


# Control characters: PostgreSQL refuses NUL in text, so such an id could never be honoured;
# none of the others is a character a real key holds. Lone surrogates are not UTF-8 at all.
UNSTORABLE = [
    ("a\x00b", "U+0000"),
    ("\x00", "U+0000"),
    ("user-1\n", "U+000A"),
    ("user\t1", "U+0009"),
    ("\x1b[31muser", "U+001B"),
    ("user\x7f", "U+007F"),
    ("user\x85", "U+0085"),
    ("user\x9f", "U+009F"),
    ("user\ud800", "U+D800"),
]


@pytest.mark.parametrize(("subject_id", "code_point"), UNSTORABLE)
def test_subject_id_must_not_hold_control_characters(subject_id: str, code_point: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Subject(id=subject_id, kind=SubjectKind.ACCOUNT)
    assert caught.value.field_name == "subject.id"
    assert code_point in caught.value.reason
    assert "user" not in caught.value.reason  # the reason never carries the id


@pytest.mark.parametrize(("device_id", "code_point"), UNSTORABLE)
def test_device_id_must_not_hold_control_characters(device_id: str, code_point: str) -> None:
    refused(CookiePreferencesSet, "device_id", code_point, device_id=device_id)


@pytest.mark.parametrize(
    "identifier", ["user-42", "alice@example.com", "Zoë Ünïcode ✓", "a b", "x" * 256, "0"]
)
def test_printable_identifiers_are_accepted(identifier: str) -> None:
    assert identifier_problem(identifier) is None
    Subject(id=identifier, kind=SubjectKind.ACCOUNT)


def test_identifier_problem_is_the_subject_rule() -> None:
    # The one rule, also for code that checks a raw dict before building a record.
    assert identifier_problem("a\x00b") == "contains a control character (U+0000) at position 1"
    assert identifier_problem("") == "must not be empty"
    assert identifier_problem(None) == "must not be empty"
    assert identifier_problem("x" * 257) == f"longer than {MAX_SUBJECT_ID_LENGTH} characters"
    assert identifier_problem("\udfff") == "contains a lone surrogate (U+DFFF) at position 0"


def test_subject_kind_must_be_a_member() -> None:
    with pytest.raises(ValidationError, match="unknown SubjectKind") as caught:
        Subject(id="a", kind="ROBOT")  # type: ignore[arg-type]
    assert caught.value.field_name == "subject.kind"


def test_errors_never_carry_the_identifier() -> None:
    secret = "alice@example.com" + "x" * MAX_SUBJECT_ID_LENGTH
    with pytest.raises(ValidationError) as subject_error:
        Subject(id=secret, kind=SubjectKind.ACCOUNT)
    with pytest.raises(ValidationError) as device_error:
        example(CookiePreferencesSet, device_id=secret)
    for error in (subject_error.value, device_error.value):
        assert "alice" not in str(error)


# --- Envelope (every consent event) ------------------------------------------------------


@pytest.mark.parametrize("event_type", CONSENT_EVENT_TYPES)
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_id", "not-a-uuid", "is not a UUID"),
        ("event_id", uuid.uuid4(), "is not a UUID string"),
        ("event_id", str(uuid.uuid4()).upper(), "canonical form"),
        ("event_id", uuid.uuid4().hex, "canonical form"),
        ("subject", "user-1", "must be a Subject"),
        ("occurred_at", "2024-01-01T00:00:00Z", "must be a datetime"),
        ("occurred_at", datetime(2024, 1, 1), "must be timezone-aware"),
        ("occurred_at", NOW + MAX_FUTURE_SKEW + timedelta(hours=6), "in the future"),
        ("recorded_at", 1_700_000_000_000, "must be a datetime"),
        ("recorded_at", datetime(2024, 1, 1), "must be timezone-aware"),
        ("recorded_at", NOW + timedelta(days=1), "in the future"),
        ("source", "CARRIER_PIGEON", "unknown Source"),
        ("regime", "MARS", "unknown Regime"),
        ("policy_version", "V2030_01_01", "unknown PolicyVersion"),
        ("evidence_ref", "   ", "non-blank"),
        ("evidence_ref", 7, "non-blank"),
    ],
)
def test_envelope_rules(event_type: type[Any], field: str, value: Any, reason: str) -> None:
    refused(event_type, field, reason, **{field: value})


def canonical(value: str) -> bool:
    """The rule, plainly: the id is what ``uuid`` itself writes for it."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


SPELLINGS = (
    str,
    lambda u: str(u).upper(),
    lambda u: u.hex,
    lambda u: "{" + str(u) + "}",
    lambda u: u.urn,
    lambda u: str(u) + "\n",
    lambda u: str(u).replace("0", "\u0660"),  # an Arabic-Indic zero: int() reads it as 0
)


ARABIC_INDIC = str.maketrans(
    "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
)


@st.composite
def event_ids(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:
        # Decimal digits only, some of them written in another script.
        digits = draw(st.text(alphabet="0123456789", min_size=32, max_size=32))
        text = "-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))
        return text.translate(ARABIC_INDIC) if draw(st.booleans()) else text
    spelled: str = draw(st.sampled_from(SPELLINGS))(draw(st.uuids()))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(spelled) - 1))
        spelled = spelled[:at] + draw(st.characters()) + spelled[at + 1 :]
    return spelled


@settings(max_examples=400, deadline=None)
@given(event_ids())
def test_event_ids_are_accepted_exactly_when_canonical(value: str) -> None:
    if canonical(value):
        assert example(ConsentChanged, event_id=value).event_id == value
    else:
        with pytest.raises(ValidationError) as caught:
            example(ConsentChanged, event_id=value)
        assert caught.value.field_name == "event_id"


@pytest.mark.parametrize("event_type", CONSENT_EVENT_TYPES)
def test_policy_version_must_be_in_force_when_the_choice_was_made(event_type: type[Any]) -> None:
    before_2019 = datetime(2019, 7, 14, 23, 0, tzinfo=UTC)
    refused(
        event_type,
        "policy_version",
        "was not yet in force on 2019-07-14",
        occurred_at=before_2019,
        policy_version=PolicyVersion.V2019_07_15,
    )
    refused(
        event_type,
        "policy_version",
        "not yet in force",
        occurred_at=datetime(2018, 5, 24, tzinfo=UTC),
        policy_version=PolicyVersion.V2018_05_25,
    )
    example(event_type, occurred_at=before_2019, policy_version=PolicyVersion.V2018_05_25)


@pytest.mark.parametrize("event_type", CONSENT_EVENT_TYPES)
def test_small_clock_skew_and_missing_evidence_are_accepted(event_type: type[Any]) -> None:
    example(event_type, occurred_at=NOW + MAX_FUTURE_SKEW / 2, evidence_ref=None)


# --- ConsentChanged ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"choice": "MAYBE"}, "choice", "unknown Choice"),
        ({"purposes": ()}, "purposes", "must name at least one"),
        ({"purposes": ("MARKETING_CARRIER_PIGEON",)}, "purposes", "unknown Purpose"),
        (
            {"purposes": (Purpose.MARKETING_EMAIL, Purpose.MARKETING_EMAIL)},
            "purposes",
            "listed twice",
        ),
        ({"purposes": [Purpose.MARKETING_EMAIL]}, "purposes", "must be a tuple, got list"),
        ({"purposes": "MARKETING_EMAIL"}, "purposes", "must be a tuple, got str"),
        ({"recipients": ("ACME_ADS",)}, "recipients", "unknown Recipient"),
        ({"recipients": (Recipient.CRITEO, Recipient.CRITEO)}, "recipients", "listed twice"),
        ({"recipients": {Recipient.CRITEO}}, "recipients", "must be a tuple"),
        ({"expires_at": "tomorrow"}, "expires_at", "must be a datetime"),
        ({"expires_at": datetime(2030, 1, 1)}, "expires_at", "timezone-aware"),
        ({"expires_at": NOW - timedelta(days=1)}, "expires_at", "must be after occurred_at"),
    ],
)
def test_consent_changed_rules(overrides: dict[str, Any], field: str, reason: str) -> None:
    refused(ConsentChanged, field, reason, **overrides)


def test_expiry_equal_to_the_choice_is_refused() -> None:
    at = NOW - timedelta(minutes=1)
    refused(ConsentChanged, "expires_at", "after occurred_at", occurred_at=at, expires_at=at)


def test_expiry_far_in_the_future_is_fine() -> None:
    example(ConsentChanged, expires_at=NOW + timedelta(days=3650))


@pytest.mark.parametrize("purpose", NOT_REFUSABLE)
def test_withdrawing_a_purpose_that_is_not_consent_based_is_refused(purpose: Purpose) -> None:
    refused(
        ConsentChanged,
        "purposes",
        f"{purpose} rests on {PURPOSE_SPECS[purpose].basis} and cannot be withdrawn",
        choice=Choice.WITHDRAWN,
        purposes=(Purpose.MARKETING_EMAIL, purpose),
        recipients=(),
    )


def test_withdrawing_essential_cookies_is_refused() -> None:
    refused(
        ConsentChanged,
        "purposes",
        "COOKIES_ESSENTIAL rests on CONTRACT",
        choice=Choice.WITHDRAWN,
        purposes=(Purpose.COOKIES_ESSENTIAL,),
        recipients=(),
    )


@pytest.mark.parametrize("recipient", NOT_CONSENT_RECIPIENTS)
def test_withdrawing_from_a_recipient_that_is_not_consent_based_is_refused(
    recipient: Recipient,
) -> None:
    refused(
        ConsentChanged,
        "recipients",
        f"sharing with {recipient} is not based on consent",
        choice=Choice.WITHDRAWN,
        recipients=(recipient,),
    )


def test_granting_is_not_limited_to_refusable_purposes() -> None:
    # Recording that someone agreed to a contract purpose is odd but not impossible.
    example(ConsentChanged, purposes=(Purpose.ACCOUNT_MANAGEMENT,), recipients=())


@pytest.mark.parametrize("purpose", sorted(p for p, s in PURPOSE_SPECS.items() if s.refusable))
def test_every_refusable_purpose_can_be_withdrawn(purpose: Purpose) -> None:
    example(ConsentChanged, choice=Choice.WITHDRAWN, purposes=(purpose,), recipients=())


# --- RightsRequested ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"right": "TO_BE_FORGOTTEN_TWICE"}, "right", "unknown Right"),
        ({"purposes": ("NOPE",)}, "purposes", "unknown Purpose"),
        (
            {"purposes": (Purpose.MARKETING_EMAIL, Purpose.MARKETING_EMAIL)},
            "purposes",
            "listed twice",
        ),
        ({"channels": ("PIGEON",)}, "channels", "unknown Channel"),
        ({"channels": (Channel.EMAIL, Channel.EMAIL)}, "channels", "listed twice"),
        ({"channels": [Channel.EMAIL]}, "channels", "must be a tuple"),
        ({"requested_by": "NEIGHBOUR"}, "requested_by", "unknown Requester"),
        (
            {"right": Right.ERASURE, "channels": (Channel.EMAIL,), "purposes": ()},
            "channels",
            "ERASURE does not take marketing channels",
        ),
        (
            {"right": Right.ERASURE_OF_MINOR, "channels": (), "purposes": ()},
            "requested_by",
            "asked by a GUARDIAN",
        ),
        (
            {"right": Right.REFUSE_MARKETING, "purposes": (Purpose.RESEARCH_AND_STATISTICS,)},
            "purposes",
            "RESEARCH_AND_STATISTICS is not direct marketing; REFUSE_MARKETING does not reach",
        ),
        (
            {
                "right": Right.OBJECT_TO_DIRECT_MARKETING,
                "purposes": (Purpose.SHARE_WITH_BUSINESS_PARTNERS,),
            },
            "purposes",
            "is not direct marketing",
        ),
    ],
)
def test_rights_requested_rules(overrides: dict[str, Any], field: str, reason: str) -> None:
    refused(RightsRequested, field, reason, **overrides)


@pytest.mark.parametrize("right", ACCOUNT_ONLY_RIGHTS)
def test_a_device_cannot_ask_for_account_only_rights(right: Right) -> None:
    refused(
        RightsRequested,
        "subject.kind",
        f"{right} needs an ACCOUNT subject, not a DEVICE",
        subject=DEVICE,
        right=right,
        purposes=(),
        channels=(),
        requested_by=Requester.GUARDIAN,
    )


@pytest.mark.parametrize("right", sorted(r for r, s in RIGHT_SPECS.items() if not s.account_only))
def test_a_device_may_ask_for_the_other_rights(right: Right) -> None:
    example(RightsRequested, subject=DEVICE, right=right, purposes=(), channels=())


@pytest.mark.parametrize("right", STOPPING_RIGHTS)
@pytest.mark.parametrize("purpose", NOT_REFUSABLE)
def test_rights_that_stop_processing_cannot_reach_purposes_that_are_not_refusable(
    right: Right, purpose: Purpose
) -> None:
    refused(
        RightsRequested,
        "purposes",
        f"{purpose} rests on {PURPOSE_SPECS[purpose].basis}; {right} cannot stop it",
        right=right,
        purposes=(purpose,),
        channels=(),
    )


@pytest.mark.parametrize("right", [Right.ERASURE, Right.RESTRICT_PROCESSING, Right.ACCESS])
def test_rights_that_do_not_stop_processing_may_name_any_purpose(right: Right) -> None:
    example(RightsRequested, right=right, purposes=(Purpose.LOGISTICS,), channels=())


def test_a_guardian_asks_for_a_minors_erasure() -> None:
    example(
        RightsRequested,
        right=Right.ERASURE_OF_MINOR,
        purposes=(),
        channels=(),
        requested_by=Requester.GUARDIAN,
    )


@pytest.mark.parametrize("right", [Right.REFUSE_MARKETING, Right.OBJECT_TO_DIRECT_MARKETING])
def test_marketing_rights_take_channels_and_direct_marketing_purposes(right: Right) -> None:
    example(
        RightsRequested,
        right=right,
        channels=(Channel.POSTAL_MAIL, Channel.TELEPHONE),
        purposes=(Purpose.MARKETING_POSTAL_MAIL, Purpose.TARGETED_ADVERTISING),
    )


# --- CookiePreferencesSet ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"device_id": ""}, "device_id", "must not be empty"),
        ({"device_id": "  "}, "device_id", "must not be empty"),
        ({"device_id": None}, "device_id", "must not be empty"),
        ({"device_id": "d" * (MAX_SUBJECT_ID_LENGTH + 1)}, "device_id", "longer than"),
        ({"granted": ("FLAVOUR",)}, "granted", "unknown CookieCategory"),
        (
            {"granted": (CookieCategory.STATISTICS, CookieCategory.STATISTICS)},
            "granted",
            "listed twice",
        ),
        ({"refused": ("CHOCOLATE_CHIP",)}, "refused", "unknown CookieCategory"),
        ({"refused": [CookieCategory.MARKETING]}, "refused", "must be a tuple"),
        (
            {"refused": (CookieCategory.ESSENTIAL,), "granted": ()},
            "refused",
            "ESSENTIAL cookies are strictly necessary and cannot be refused",
        ),
        ({"granted": (), "refused": ()}, "granted", "grant or refuse at least one"),
        (
            {
                "granted": (CookieCategory.MARKETING,),
                "refused": (CookieCategory.MARKETING,),
            },
            "refused",
            "MARKETING is both granted and refused",
        ),
    ],
)
def test_cookie_preferences_rules(overrides: dict[str, Any], field: str, reason: str) -> None:
    refused(CookiePreferencesSet, field, reason, **overrides)


def test_an_account_may_set_cookie_preferences_for_one_of_its_devices() -> None:
    example(
        CookiePreferencesSet,
        subject=Subject(id="user-1", kind=SubjectKind.ACCOUNT),
        device_id="browser-7",
        granted=(),
        refused=(CookieCategory.MARKETING,),
    )
