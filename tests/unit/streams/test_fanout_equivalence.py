"""fanout.routes against the rule it implements, written the plain way from the events
themselves (not from the resolved state): for every destination that hears a claim's
purpose (and is its recipient, if it names one), route the claim when the event's
decision is the one in force for that destination: of every decision any event so far
made on the purpose and regime for all recipients or for that destination's recipient,
the newest event time wins, a withdrawal beats a grant on a tie, then the greater event
id. Erasure, and a restriction or its lifting that is in force, go to every destination
holding personal data. Duplicates (an event sent again) are part of the histories."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.taxonomy import Action, Choice, Purpose, Recipient, Regime, SubjectKind
from streams.intake.fanout import routes
from streams.intake.resolution import Claim, Effect, SubjectState, apply
from streams.intake.routing import Destination, RoutingPolicy, load_policy

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

Logged = tuple[str, int, Effect]
"""An event as the worker read it: id, event time, what it says."""


def in_force(log: list[Logged], purpose: Purpose, regime: Regime, dest: Destination) -> str | None:
    """The id of the event whose decision is in force for ``dest``."""
    best: tuple[int, bool, str] | None = None
    for event_id, at, effect in log:
        for claim in effect.claims:
            p, r, recipient = claim.key
            if p is not purpose or r is not regime:
                continue
            if recipient is not None and recipient is not dest.recipient:
                continue
            rank = (at, claim.choice is Choice.WITHDRAWN, event_id)
            if best is None or rank > best:
                best = rank
    return best[2] if best else None


def restriction_in_force(log: list[Logged]) -> tuple[str, bool] | None:
    """The event whose restriction (True) or lifting (False) is in force: newest,
    restriction beats lifting on a tie, then the greater event id."""
    best = max(
        (
            (at, effect.restrict, event_id)
            for event_id, at, effect in log
            if effect.restrict is not None
        ),
        default=None,
    )
    return (best[2], best[1]) if best else None


def plain_id(event_id: str, dest: Destination, action: Action | None) -> str:
    name = f"{event_id}/{dest.family.value}/{dest.name}"
    if action is not None:
        name += f"/{action.value}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def reference(
    policy: RoutingPolicy, log: list[Logged]
) -> list[tuple[str, Action, tuple[Purpose, ...], str]]:
    """The routes of the log's last event."""
    event_id, _, effect = log[-1]
    wanted: dict[str, dict[Action, list[Purpose]]] = {}
    for claim in effect.claims:
        purpose, regime, recipient = claim.key
        action = Action.SUPPRESS if claim.choice is Choice.WITHDRAWN else Action.ALLOW
        for dest in policy.destinations:
            if purpose not in dest.purposes:
                continue
            if recipient is not None and recipient is not dest.recipient:
                continue
            if in_force(log, purpose, regime, dest) != event_id:
                continue
            purposes = wanted.setdefault(dest.label, {}).setdefault(action, [])
            if purpose not in purposes:
                purposes.append(purpose)
    restriction = restriction_in_force(log)
    toggled: Action | None = None
    if effect.restrict is not None and restriction is not None and restriction[0] == event_id:
        toggled = Action.RESTRICT if restriction[1] else Action.LIFT_RESTRICTION
    for dest in policy.destinations:
        if not dest.holds_personal_data:
            continue
        if effect.erase:
            wanted.setdefault(dest.label, {})[Action.ERASE] = []
        if toggled is not None:
            wanted.setdefault(dest.label, {})[toggled] = []
    out = []
    for dest in policy.destinations:
        actions = wanted.get(dest.label, {})
        primary = True
        for action in ORDER:
            if action in actions:
                iid = plain_id(event_id, dest, None if primary else action)
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


@st.composite
def logs(draw: st.DrawFn) -> list[Logged]:
    """Events with few distinct times (ties), some of them sent again later."""
    log: list[Logged] = []
    for n in range(draw(st.integers(1, 12))):
        if log and draw(st.integers(0, 4)) == 0:
            log.append(draw(st.sampled_from(log)))
        else:
            log.append((f"ev-{n:02}", draw(st.integers(0, 5)), draw(effects())))
    return log


@settings(max_examples=400, deadline=None)
@given(logs())
def test_routes_match_the_plain_rule(log: list[Logged]) -> None:
    state: SubjectState | None = None
    for n, (event_id, at, effect) in enumerate(log):
        applied = apply(state, SubjectKind.ACCOUNT, event_id, at, effect)
        state = applied.state
        got = [
            (r.destination.label, r.action, r.purposes, r.instruction_id)
            for r in routes(POLICY, event_id, effect, applied)
        ]
        assert got == reference(POLICY, log[: n + 1])
