"""What a consent event claims about a subject's consent, as an :class:`Effect`. Pure.

- ConsentChanged: its choice on each purpose (per named recipient, if it names any).
- CookiePreferencesSet: granted categories grant, refused ones withdraw, their cookie
  purposes (``taxonomy.COOKIE_PURPOSES``); essential cookies are not consent-based.
- RightsRequested: what the routing policy says the right reaches. A withdrawing right
  withdraws its purposes, narrowed by the request's purposes and channels unless the
  right is absolute; erasure, restriction and its lifting act on the whole subject.
  Rights that are not propagated (access, rectification, portability) claim nothing.

Purposes resting on contract or law never appear in a claim.
"""

from __future__ import annotations

from schemas.events import ConsentChanged, ConsentEvent, CookiePreferencesSet, RightsRequested
from schemas.taxonomy import COOKIE_PURPOSES, PURPOSE_SPECS, REFUSABLE_PURPOSES, Choice, Purpose
from streams.intake.resolution import Claim, Effect
from streams.intake.routing import RightEffect, RoutingPolicy
from streams.intake.times import to_ms

NOTHING = Effect()


def effect_of(event: ConsentEvent, policy: RoutingPolicy) -> Effect:
    """The effect ``event`` has on its subject's consent state."""
    if isinstance(event, ConsentChanged):
        return _consent_changed(event)
    if isinstance(event, CookiePreferencesSet):
        return _cookie_preferences(event)
    if isinstance(event, RightsRequested):
        return _rights_requested(event, policy)
    return NOTHING


def _consent_changed(event: ConsentChanged) -> Effect:
    recipients = event.recipients or (None,)
    expires = event.expires_at
    return Effect(
        claims=tuple(
            Claim((purpose, event.regime, recipient), event.choice)
            for purpose in event.purposes
            if purpose in REFUSABLE_PURPOSES
            for recipient in recipients
        ),
        expires_ms=None if expires is None else to_ms(expires),
    )


def _cookie_preferences(event: CookiePreferencesSet) -> Effect:
    claims = [
        Claim((COOKIE_PURPOSES[category], event.regime, None), choice)
        for categories, choice in (
            (event.refused, Choice.WITHDRAWN),
            (event.granted, Choice.GRANTED),
        )
        for category in categories
        if COOKIE_PURPOSES[category] in REFUSABLE_PURPOSES
    ]
    return Effect(claims=tuple(claims))


def _rights_requested(event: RightsRequested, policy: RoutingPolicy) -> Effect:
    scope = policy.rights.get(event.right)
    if scope is None:
        return NOTHING
    if scope.effect is RightEffect.ERASE:
        return Effect(erase=True)
    if scope.effect is RightEffect.RESTRICT:
        return Effect(restrict=True)
    if scope.effect is RightEffect.LIFT_RESTRICTION:
        return Effect(restrict=False)
    purposes: frozenset[Purpose] = scope.purposes
    if not scope.absolute:
        if event.purposes:
            purposes = purposes & frozenset(event.purposes)
        if event.channels:
            channels = frozenset(event.channels)
            purposes = frozenset(p for p in purposes if PURPOSE_SPECS[p].channel in channels)
    return Effect(
        claims=tuple(
            Claim((purpose, event.regime, None), Choice.WITHDRAWN) for purpose in sorted(purposes)
        )
    )
