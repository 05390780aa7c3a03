"""What events claim, and which destinations hear what (pure)."""

from __future__ import annotations

import uuid
from typing import Any

from schemas.events import instruction_id
from schemas.taxonomy import (
    Action,
    Channel,
    Choice,
    CookieCategory,
    Purpose,
    Recipient,
    Regime,
    Right,
    SinkFamily,
)
from streams.intake.claims import effect_of
from streams.intake.fanout import routes
from streams.intake.resolution import apply
from streams.intake.routing import RoutingPolicy
from streams.intake.times import to_ms


def route_set(policy: RoutingPolicy, *events: Any) -> list[set[tuple[str, str, tuple[str, ...]]]]:
    """Fold events in order; each one's routes as (destination, action, purposes)."""
    state = None
    out = []
    for event in events:
        effect = effect_of(event, policy)
        applied = apply(state, event.subject.kind, event.event_id, to_ms(event.occurred_at), effect)
        state = applied.state
        out.append(
            {
                (r.destination.label, r.action.value, tuple(p.value for p in r.purposes))
                for r in routes(policy, event.event_id, effect, applied)
            }
        )
    return out


def test_consent_changed_claims_each_purpose_and_recipient(
    policy: RoutingPolicy, make: Any
) -> None:
    event = make.changed(
        Choice.WITHDRAWN,
        Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,
        recipients=(Recipient.GOOGLE, Recipient.TWITTER),
    )
    claims = effect_of(event, policy).claims
    assert {c.key for c in claims} == {
        (Purpose.SHARE_WITH_ADVERTISING_PLATFORMS, Regime.GDPR, Recipient.GOOGLE),
        (Purpose.SHARE_WITH_ADVERTISING_PLATFORMS, Regime.GDPR, Recipient.TWITTER),
    }
    # Only the named partners hear a recipient-limited withdrawal.
    [routed] = route_set(policy, event)
    assert {d for d, _a, _p in routed} == {"PARTNER_SHARING/google", "PARTNER_SHARING/twitter"}


def test_refusing_marketing_on_one_channel_stops_only_that_channel(
    policy: RoutingPolicy, make: Any
) -> None:
    event = make.right(Right.REFUSE_MARKETING, channels=(Channel.POSTAL_MAIL,))
    [routed] = route_set(policy, event)
    assert routed == {("MARKETING/suppression_list", "SUPPRESS", ("MARKETING_POSTAL_MAIL",))}


def test_objection_to_direct_marketing_ignores_narrowing(policy: RoutingPolicy, make: Any) -> None:
    narrow = make.right(Right.OBJECT_TO_DIRECT_MARKETING, channels=(Channel.EMAIL,))
    purposes = {c.key[0] for c in effect_of(narrow, policy).claims}
    assert Purpose.TARGETED_ADVERTISING in purposes
    assert Purpose.MARKETING_TELEPHONE in purposes


def test_withdraw_consent_narrowed_by_purposes(policy: RoutingPolicy, make: Any) -> None:
    event = make.right(Right.WITHDRAW_CONSENT, purposes=(Purpose.COOKIES_STATISTICS,))
    [routed] = route_set(policy, event)
    assert routed == {
        ("ANALYTICS/analytics_store", "SUPPRESS", ("COOKIES_STATISTICS",)),
        ("PARTNER_SHARING/google_analytics", "SUPPRESS", ("COOKIES_STATISTICS",)),
    }


def test_rights_that_are_not_propagated_claim_nothing(policy: RoutingPolicy, make: Any) -> None:
    effect = effect_of(make.right(Right.ACCESS), policy)
    assert not effect.claims
    assert not effect.erase
    assert effect.restrict is None


def test_erasure_and_restriction_reach_every_holder(policy: RoutingPolicy, make: Any) -> None:
    subject = make.subject()
    erase, restrict, lift = route_set(
        policy,
        make.right(Right.ERASURE, subject=subject, at=make.ago(30)),
        make.right(Right.RESTRICT_PROCESSING, subject=subject, at=make.ago(20)),
        make.right(Right.LIFT_RESTRICTION, subject=subject, at=make.ago(10)),
    )
    holders = {d.label for d in policy.destinations if d.holds_personal_data}
    assert {d for d, a, _ in erase if a == "ERASE"} == holders
    assert {d for d, a, _ in restrict if a == "RESTRICT"} == holders
    assert {d for d, a, _ in lift if a == "LIFT_RESTRICTION"} == holders


def test_a_superseded_lift_is_not_routed(policy: RoutingPolicy, make: Any) -> None:
    subject = make.subject()
    _restrict, old_lift = route_set(
        policy,
        make.right(Right.RESTRICT_PROCESSING, subject=subject, at=make.ago(10)),
        make.right(Right.LIFT_RESTRICTION, subject=subject, at=make.ago(20)),
    )
    assert old_lift == set()


def test_cookie_preferences_split_into_suppress_and_allow(policy: RoutingPolicy, make: Any) -> None:
    event = make.cookies(
        granted=(CookieCategory.PERSONALISATION,), refused=(CookieCategory.MARKETING,)
    )
    effect = effect_of(event, policy)
    applied = apply(None, event.subject.kind, event.event_id, to_ms(event.occurred_at), effect)
    google = [
        r for r in routes(policy, event.event_id, effect, applied) if r.destination.name == "google"
    ]
    assert [(r.action, r.purposes) for r in google] == [
        (Action.SUPPRESS, (Purpose.COOKIES_MARKETING,)),
        (Action.ALLOW, (Purpose.COOKIES_PERSONALISATION,)),
    ]
    # The withdrawal carries the agreed id; the grant a suffixed one.
    assert google[0].instruction_id == instruction_id(
        event.event_id, SinkFamily.PARTNER_SHARING, "google"
    )
    assert google[1].instruction_id == str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{event.event_id}/PARTNER_SHARING/google/ALLOW")
    )


def test_essential_cookies_claim_nothing(policy: RoutingPolicy, make: Any) -> None:
    event = make.cookies(granted=(CookieCategory.ESSENTIAL,))
    assert effect_of(event, policy).claims == ()


def test_an_old_grant_is_not_routed_after_a_newer_withdrawal(
    policy: RoutingPolicy, make: Any
) -> None:
    subject = make.subject()
    withdrawal, old_grant, new_grant = route_set(
        policy,
        make.changed(Choice.WITHDRAWN, Purpose.MARKETING_SMS, subject=subject, at=make.ago(10)),
        make.changed(Choice.GRANTED, Purpose.MARKETING_SMS, subject=subject, at=make.ago(20)),
        make.changed(Choice.GRANTED, Purpose.MARKETING_SMS, subject=subject, at=make.ago(1)),
    )
    assert withdrawal == {("MARKETING/suppression_list", "SUPPRESS", ("MARKETING_SMS",))}
    assert old_grant == set()
    assert new_grant == {("MARKETING/suppression_list", "ALLOW", ("MARKETING_SMS",))}


def test_a_general_grant_does_not_reach_a_partner_with_a_newer_specific_withdrawal(
    policy: RoutingPolicy, make: Any
) -> None:
    subject = make.subject()
    _no_criteo, yes_all = route_set(
        policy,
        make.changed(
            Choice.WITHDRAWN,
            Purpose.TARGETED_ADVERTISING,
            subject=subject,
            at=make.ago(10),
            recipients=(Recipient.CRITEO,),
        ),
        make.changed(
            Choice.GRANTED, Purpose.TARGETED_ADVERTISING, subject=subject, at=make.ago(20)
        ),
    )
    reached = {d for d, _a, _p in yes_all}
    assert "PARTNER_SHARING/criteo" not in reached
    assert "PARTNER_SHARING/bing" in reached
    assert "MARKETING/suppression_list" in reached


def test_marketing_instructions_name_their_channels(policy: RoutingPolicy, make: Any) -> None:
    from streams.intake import records  # noqa: PLC0415

    event = make.right(Right.OBJECT_TO_DIRECT_MARKETING)
    effect = effect_of(event, policy)
    applied = apply(None, event.subject.kind, event.event_id, to_ms(event.occurred_at), effect)
    marketing = next(
        r
        for r in routes(policy, event.event_id, effect, applied)
        if r.destination.name == "suppression_list"
    )
    avro = records.instruction(
        marketing,
        records.Issue(
            event_id=event.event_id,
            event_type="RightsRequested",
            subject=records.subject_dict(event.subject),
            regime="GDPR",
            right=event.right,
            occurred_at_ms=1,
            issued_at_ms=2,
            receipt_requested=True,
        ),
    )
    assert set(avro["channels"]) == {c.value for c in Channel}
    assert avro["right"] == "OBJECT_TO_DIRECT_MARKETING"
