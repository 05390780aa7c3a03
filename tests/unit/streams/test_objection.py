"""What an objection to direct marketing covers, and what a later explicit grant of one
channel does (``schemas/REFERENCE.md``, "Objection to direct marketing"; GDPR Art 21(3)).

The objection withdraws every direct-marketing purpose, whatever the request names; a
later ConsentChanged granting one purpose re-enables that purpose only, and only its
destinations are told ALLOW; a grant older than the objection changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from schemas.events import ConsentChanged, ConsentEvent, RightsRequested, utc_now
from schemas.examples import example
from schemas.taxonomy import (
    DIRECT_MARKETING_PURPOSES,
    Action,
    Channel,
    Choice,
    Purpose,
    Regime,
    Right,
    SubjectKind,
)
from streams.intake.claims import effect_of
from streams.intake.fanout import routes
from streams.intake.resolution import Applied, SubjectState, apply
from streams.intake.routing import RoutingPolicy, load_policy
from streams.intake.times import to_ms

POLICY = load_policy()
NOW = utc_now() - timedelta(days=1)


def objection(
    at_seconds: int, purposes: tuple[Purpose, ...] = (), channels: tuple[Channel, ...] = ()
) -> RightsRequested:
    return example(
        RightsRequested,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"object-{at_seconds}")),
        right=Right.OBJECT_TO_DIRECT_MARKETING,
        purposes=purposes,
        channels=channels,
        occurred_at=NOW + timedelta(seconds=at_seconds),
        recorded_at=NOW + timedelta(seconds=at_seconds),
    )


def grant(at_seconds: int, *purposes: Purpose) -> ConsentChanged:
    return example(
        ConsentChanged,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"grant-{at_seconds}")),
        choice=Choice.GRANTED,
        purposes=purposes,
        recipients=(),
        expires_at=None,
        occurred_at=NOW + timedelta(seconds=at_seconds),
        recorded_at=NOW + timedelta(seconds=at_seconds),
    )


def fold(*events: ConsentEvent, policy: RoutingPolicy = POLICY) -> tuple[SubjectState, Applied]:
    state: SubjectState | None = None
    applied: Applied | None = None
    for event in events:
        applied = apply(
            state,
            SubjectKind.ACCOUNT,
            event.event_id,
            to_ms(event.occurred_at),
            effect_of(event, policy),
        )
        state = applied.state
    assert state is not None
    assert applied is not None
    return state, applied


def choices(state: SubjectState) -> dict[Purpose, Choice]:
    found = {}
    for purpose in DIRECT_MARKETING_PURPOSES:
        current = state.current((purpose, Regime.GDPR, None))
        assert current is not None, purpose
        found[purpose] = current.choice
    return found


def test_the_objection_withdraws_every_direct_marketing_purpose() -> None:
    state, _ = fold(objection(1))
    assert choices(state) == dict.fromkeys(DIRECT_MARKETING_PURPOSES, Choice.WITHDRAWN)


def test_the_objection_is_absolute_whatever_purposes_or_channels_it_names() -> None:
    narrowed = objection(1, purposes=(Purpose.MARKETING_EMAIL,), channels=(Channel.EMAIL,))
    state, _ = fold(narrowed)
    assert choices(state) == dict.fromkeys(DIRECT_MARKETING_PURPOSES, Choice.WITHDRAWN)


def test_a_later_grant_of_one_channel_re_enables_that_channel_only() -> None:
    state, applied = fold(objection(1), grant(2, Purpose.MARKETING_EMAIL))
    expected = dict.fromkeys(DIRECT_MARKETING_PURPOSES, Choice.WITHDRAWN)
    expected[Purpose.MARKETING_EMAIL] = Choice.GRANTED
    assert choices(state) == expected
    # Only the email destinations are told to allow again; nothing else is routed.
    later = grant(2, Purpose.MARKETING_EMAIL)
    told = routes(POLICY, later.event_id, effect_of(later, POLICY), applied)
    assert told
    assert {r.action for r in told} == {Action.ALLOW}
    assert {p for r in told for p in r.purposes} == {Purpose.MARKETING_EMAIL}


@pytest.mark.parametrize("at_seconds", [0, 1])
def test_a_grant_not_newer_than_the_objection_changes_nothing(at_seconds: int) -> None:
    # Older (arriving late) or at the same time (a tie goes to the withdrawal).
    state, applied = fold(objection(1), grant(at_seconds, Purpose.MARKETING_EMAIL))
    assert choices(state) == dict.fromkeys(DIRECT_MARKETING_PURPOSES, Choice.WITHDRAWN)
    assert applied.won == ()


def test_a_new_objection_after_the_grant_withdraws_the_channel_again() -> None:
    state, _ = fold(objection(1), grant(2, Purpose.MARKETING_EMAIL), objection(3))
    assert choices(state) == dict.fromkeys(DIRECT_MARKETING_PURPOSES, Choice.WITHDRAWN)
