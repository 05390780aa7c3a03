"""fanout.routes against the rule it implements, written the plain way: for every
destination that hears a claim's purpose (and is its recipient, if it names one), route
the claim when the event's decision is the one in force for that destination now."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.taxonomy import Action, Choice, Purpose, Recipient, Regime, SubjectKind
from streams.fanout import instruction_id, routes
from streams.resolution import Applied, Claim, Effect, SubjectState, apply
from streams.routing import Destination, RoutingPolicy, load_policy

POLICY = load_policy()
KEYS = [
    (Purpose.TARGETED_ADVERTISING, Regime.GDPR, None),
    (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.CRITEO),
    (Purpose.TARGETED_ADVERTISING, Regime.CCPA, None),
    (Purpose.MARKETING_EMAIL, Regime.GDPR, None),
    (Purpose.SHARE_WITH_ADVERTISING_PLATFORMS, Regime.GDPR, Recipient.GOOGLE),
    (Purpose.SHARE_WITH_ADVERTISING_PLATFORMS, Regime.GDPR, None),
]
ORDER = (Action.ERASE, Action.RESTRICT, Action.LIFT_RESTRICTION, Action.SUPPRESS, Action.ALLOW)


def reference(
    policy: RoutingPolicy, event_id: str, effect: Effect, applied: Applied
) -> list[tuple[str, Action, tuple[Purpose, ...], str]]:
    state = applied.state
    wanted: dict[Destination, dict[Action, list[Purpose]]] = {}
    for claim in effect.claims:
        purpose, regime, recipient = claim.key
        action = Action.SUPPRESS if claim.choice is Choice.WITHDRAWN else Action.ALLOW
        for dest in policy.destinations:
            if purpose not in dest.purposes:
                continue
            if recipient is not None and recipient is not dest.recipient:
                continue
            decision = state.effective(purpose, regime, dest.recipient)
            if decision is None or decision.event_id != event_id:
                continue
            purposes = wanted.setdefault(dest, {}).setdefault(action, [])
            if purpose not in purposes:
                purposes.append(purpose)
    if applied.erase or applied.restriction_won:
        for dest in policy.destinations:
            if not dest.holds_personal_data:
                continue
            if applied.erase:
                wanted.setdefault(dest, {})[Action.ERASE] = []
            if applied.restriction_won:
                action = Action.RESTRICT if state.restricted else Action.LIFT_RESTRICTION
                wanted.setdefault(dest, {})[action] = []
    out = []
    for dest in policy.destinations:
        actions = wanted.get(dest, {})
        primary = True
        for action in ORDER:
            if action in actions:
                iid = instruction_id(event_id, dest, None if primary else action)
                out.append((dest.label, action, tuple(sorted(actions[action])), iid))
                primary = False
    return out


@st.composite
def effects(draw: st.DrawFn) -> Effect:
    kind = draw(st.sampled_from(["choice", "choice", "choice", "restrict", "erase"]))
    if kind == "restrict":
        return Effect(restrict=draw(st.booleans()))
    if kind == "erase":
        return Effect(erase=True)
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    return Effect(claims=tuple(Claim(k, draw(st.sampled_from(list(Choice)))) for k in keys))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), effects()), min_size=1, max_size=12))
def test_routes_match_the_plain_rule(events: list[tuple[int, Effect]]) -> None:
    state: SubjectState | None = None
    for n, (at, effect) in enumerate(events):
        event_id = f"ev-{n:02}"
        applied = apply(state, SubjectKind.ACCOUNT, event_id, at, effect)
        state = applied.state
        got = [
            (r.destination.label, r.action, r.purposes, r.instruction_id)
            for r in routes(POLICY, event_id, effect, applied)
        ]
        assert got == reference(POLICY, event_id, effect, applied)
