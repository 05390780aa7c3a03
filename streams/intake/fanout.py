"""Which destinations must act on an applied event, and how. Pure.

For every destination, a claim of the event is routed when the destination hears the
purpose (and is the named recipient, for a recipient-limited choice) and the event's
decision is the one in force *for that destination* after resolution: a withdrawal
that an even newer grant superseded, or an old grant that a newer withdrawal beat,
is not routed. Erasure and restriction (or lifting it) go to every destination that
holds personal data. Each destination gets at most one route per action.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.ids import uuid5
from schemas.taxonomy import Action, Choice, Purpose
from streams.intake.resolution import Applied, Effect
from streams.intake.routing import Destination, RoutingPolicy

TRACKED_ACTIONS = frozenset(
    {Action.SUPPRESS, Action.ERASE, Action.RESTRICT, Action.LIFT_RESTRICTION}
)
"""Actions whose propagation is proven (grants, ALLOW, are routed but not tracked)."""

_PRIMARY_ORDER = (
    Action.ERASE,
    Action.RESTRICT,
    Action.LIFT_RESTRICTION,
    Action.SUPPRESS,
    Action.ALLOW,
)


@dataclass(frozen=True, slots=True)
class Route:
    """One instruction to issue."""

    destination: Destination
    action: Action
    purposes: tuple[Purpose, ...]
    instruction_id: str


def instruction_id(event_id: str, destination: Destination, action: Action | None = None) -> str:
    """The deterministic instruction id: ``uuid5(URL, "<event>/<FAMILY>/<destination>")``
    (:func:`schemas.events.instruction_id`, from the destination the routing names).

    When one event sends a destination two actions (cookie preferences that refuse one
    category and grant another), the second carries ``/<ACTION>`` as a suffix.
    """
    # StrEnums format as their values (without the ``.value`` property lookup).
    name = f"{event_id}/{destination.family}/{destination.name}"
    if action is not None:
        name = f"{name}/{action}"
    return uuid5(name)


def routes(
    policy: RoutingPolicy, event_id: str, effect: Effect, applied: Applied
) -> tuple[Route, ...]:
    """The instructions an event issues once ``effect`` has been applied."""
    state = applied.state
    # Keyed by id(): a Destination is a dataclass whose hash hashes every field, and
    # each event looked every destination up (a tenth of intake's own CPU per event).
    wanted: dict[int, dict[Action, list[Purpose]]] = {}
    # Without a choice limited to a recipient, every destination's decision in force is
    # the one for all recipients: look it up once per claim, not once per destination.
    by_recipient = any(key[2] is not None for key in state.decisions)
    for claim in effect.claims:
        purpose, regime, recipient = claim.key
        action = Action.SUPPRESS if claim.choice is Choice.WITHDRAWN else Action.ALLOW
        general = state.current((purpose, regime, None))
        if not by_recipient and (general is None or general.event_id != event_id):
            continue
        for dest in policy.hearing(purpose):
            if recipient is not None and recipient is not dest.recipient:
                continue
            decision = state.effective(purpose, regime, dest.recipient) if by_recipient else general
            if decision is None or decision.event_id != event_id:
                continue
            by_action = wanted.get(id(dest))
            if by_action is None:
                by_action = wanted[id(dest)] = {}
            purposes = by_action.setdefault(action, [])
            if purpose not in purposes:
                purposes.append(purpose)
    if applied.erase or applied.restriction_won:
        for dest in policy.holders:
            by_action = wanted.setdefault(id(dest), {})
            if applied.erase:
                by_action[Action.ERASE] = []
            if applied.restriction_won:
                by_action[Action.RESTRICT if state.restricted else Action.LIFT_RESTRICTION] = []
    if not wanted:
        return ()
    out: list[Route] = []
    for dest in policy.destinations:
        actions = wanted.get(id(dest))
        if not actions:
            continue
        primary = True
        for action in _PRIMARY_ORDER:
            if action in actions:
                iid = instruction_id(event_id, dest, None if primary else action)
                out.append(Route(dest, action, tuple(sorted(actions[action])), iid))
                primary = False
    return tuple(out)
