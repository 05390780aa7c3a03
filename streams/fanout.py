"""Which destinations must act on an applied event, and how. Pure.

For every destination, a claim of the event is routed when the destination hears the
purpose (and is the named recipient, for a recipient-limited choice) and the event's
decision is the one in force *for that destination* after resolution: a withdrawal
that an even newer grant superseded, or an old grant that a newer withdrawal beat,
is not routed. Erasure and restriction (or lifting it) go to every destination that
holds personal data. Each destination gets at most one route per action.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from schemas.events import instruction_id as schema_instruction_id
from schemas.taxonomy import Action, Choice, Purpose
from streams.resolution import Applied, Effect
from streams.routing import Destination, RoutingPolicy

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
    """The deterministic instruction id: ``uuid5(URL, "<event>/<FAMILY>/<destination>")``.

    When one event sends a destination two actions (cookie preferences that refuse one
    category and grant another), the second carries ``/<ACTION>`` as a suffix.
    """
    canonical = schema_instruction_id(event_id, destination.family, destination.name)
    if action is None:
        return canonical
    name = f"{event_id}/{destination.family.value}/{destination.name}/{action.value}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def routes(
    policy: RoutingPolicy, event_id: str, effect: Effect, applied: Applied
) -> tuple[Route, ...]:
    """The instructions an event issues once ``effect`` has been applied."""
    state = applied.state
    out: list[Route] = []
    for dest in policy.destinations:
        by_action: dict[Action, list[Purpose]] = {}
        for claim in effect.claims:
            purpose, regime, recipient = claim.key
            if purpose not in dest.purposes or (
                recipient is not None and recipient is not dest.recipient
            ):
                continue
            decision = state.effective(purpose, regime, dest.recipient)
            if decision is None or decision.event_id != event_id:
                continue
            action = Action.SUPPRESS if claim.choice is Choice.WITHDRAWN else Action.ALLOW
            purposes = by_action.setdefault(action, [])
            if purpose not in purposes:
                purposes.append(purpose)
        if dest.holds_personal_data:
            if applied.erase:
                by_action[Action.ERASE] = []
            if applied.restriction_won:
                action = Action.RESTRICT if state.restricted else Action.LIFT_RESTRICTION
                by_action[action] = []
        primary = True
        for action in _PRIMARY_ORDER:
            if action in by_action:
                iid = instruction_id(event_id, dest, None if primary else action)
                out.append(Route(dest, action, tuple(sorted(by_action[action])), iid))
                primary = False
    return tuple(out)
