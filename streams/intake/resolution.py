"""The resolution rules: how one subject's consent state absorbs an event. Pure.

A subject's state keeps, per (purpose, regime, recipient) key, the few most recent
decisions in a total order: newer event time first; on a tie WITHDRAWN beats GRANTED;
then the event id breaks the tie so every worker agrees. The current choice is the
greatest decision, so applying a set of events in any order, any number of times,
gives the same state (a join), and an event older than the current decision can never
become current: a late grant never re-grants. Regimes are part of the key, so GDPR and
CCPA choices never overwrite each other. Restriction is an on/off register under the
same order (restrict beats lift on a tie); erasure remembers the latest erasure.

:func:`apply` returns the new state and which of the event's claims became current;
only those are routed, so a duplicate re-issues the same instructions (safe: their ids
are deterministic) and a superseded event issues none.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind

HISTORY = 8
"""Decisions kept per key: the current one plus enough past ones to gate late data."""

_T = TypeVar("_T", "Decision", "Toggle")

ConsentKey = tuple[Purpose, Regime, Recipient | None]
"""(purpose, regime, recipient); recipient None means every recipient of the purpose."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One event's choice on one key."""

    at_ms: int
    choice: Choice
    event_id: str
    expires_ms: int | None = None
    """End of a grant's validity, if the grant named one (not part of the order)."""

    def in_force_at(self, at_ms: int) -> bool:
        """The decision had not expired at ``at_ms``."""
        return self.expires_ms is None or at_ms < self.expires_ms

    @property
    def rank(self) -> tuple[int, bool, str]:
        """Position in the total order; the greatest decision is current."""
        return (self.at_ms, self.choice is Choice.WITHDRAWN, self.event_id)


@dataclass(frozen=True, slots=True)
class Toggle:
    """One restriction (on) or lifting of it (off)."""

    at_ms: int
    on: bool
    event_id: str

    @property
    def rank(self) -> tuple[int, bool, str]:
        """Newer first, restriction beats lifting on a tie, then event id."""
        return (self.at_ms, self.on, self.event_id)


@dataclass(frozen=True, slots=True)
class Erasure:
    """The latest erasure of the subject's data."""

    at_ms: int
    event_id: str


@dataclass(frozen=True, slots=True)
class Claim:
    """What an event says about one key."""

    key: ConsentKey
    choice: Choice


@dataclass(frozen=True, slots=True)
class Effect:
    """Everything one event asks of the state (see :mod:`streams.intake.claims`)."""

    claims: tuple[Claim, ...] = ()
    restrict: bool | None = None
    """True restricts, False lifts a restriction, None leaves it alone."""
    erase: bool = False
    expires_ms: int | None = None
    """End of validity of the event's grants."""


@dataclass(frozen=True, slots=True)
class SubjectState:
    """One subject's consent state; treat the mappings as read-only."""

    kind: SubjectKind
    decisions: Mapping[ConsentKey, tuple[Decision, ...]] = field(default_factory=dict)
    """Per key, up to :data:`HISTORY` decisions in ascending order; the last is current."""
    restrictions: tuple[Toggle, ...] = ()
    erasure: Erasure | None = None

    def current(self, key: ConsentKey) -> Decision | None:
        """The decision in force now for ``key``."""
        history = self.decisions.get(key)
        return history[-1] if history else None

    def choice_at(self, key: ConsentKey, at_ms: int) -> Decision | None:
        """The decision that was in force at ``at_ms`` (None if none is known)."""
        found = None
        for decision in self.decisions.get(key, ()):
            if decision.at_ms > at_ms:
                break
            found = decision
        return found

    def effective(
        self, purpose: Purpose, regime: Regime, recipient: Recipient | None
    ) -> Decision | None:
        """The decision in force now for ``recipient`` (a recipient-specific choice or
        the choice for every recipient, whichever is newer)."""
        general = self.current((purpose, regime, None))
        if recipient is None:
            return general
        return _greater(general, self.current((purpose, regime, recipient)))

    def effective_at(
        self, purpose: Purpose, regime: Regime, recipient: Recipient | None, at_ms: int
    ) -> Decision | None:
        """Like :meth:`effective`, as it stood at ``at_ms``."""
        general = self.choice_at((purpose, regime, None), at_ms)
        if recipient is None:
            return general
        return _greater(general, self.choice_at((purpose, regime, recipient), at_ms))

    @property
    def restricted(self) -> bool:
        """Processing is restricted now."""
        return bool(self.restrictions) and self.restrictions[-1].on

    def restricted_at(self, at_ms: int) -> bool:
        """Processing was restricted at ``at_ms``."""
        state = False
        for toggle in self.restrictions:
            if toggle.at_ms > at_ms:
                break
            state = toggle.on
        return state

    @property
    def regimes(self) -> frozenset[Regime]:
        """Regimes the subject has made any choice under."""
        return frozenset(key[1] for key in self.decisions)


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of :func:`apply`."""

    state: SubjectState
    won: tuple[Claim, ...]
    """The event's claims that are now current (routed as SUPPRESS/ALLOW)."""
    restriction_won: bool = False
    """The event's restriction or lifting is now in force."""
    erase: bool = False
    """The event erases (always routed: erasure is never superseded)."""
    changed: bool = False
    """The state differs from before (False for a duplicate or a superseded no-op)."""


def apply(
    state: SubjectState | None,
    kind: SubjectKind,
    event_id: str,
    at_ms: int,
    effect: Effect,
) -> Applied:
    """Fold one event's effect into a subject's state."""
    base = state if state is not None else SubjectState(kind=kind)
    decisions = base.decisions
    won: list[Claim] = []
    changed = False
    copied = False
    for claim in effect.claims:
        decision = Decision(at_ms, claim.choice, event_id, effect.expires_ms)
        history = decisions.get(claim.key, ())
        merged = _insert(history, decision)
        if merged is not history:
            if not copied:
                decisions = dict(decisions)
                copied = True
            decisions[claim.key] = merged  # type: ignore[index]
            changed = True
        if merged and merged[-1].event_id == event_id:
            won.append(claim)
    restrictions = base.restrictions
    restriction_won = False
    if effect.restrict is not None:
        merged_toggles = _insert(restrictions, Toggle(at_ms, effect.restrict, event_id))
        changed = changed or merged_toggles is not restrictions
        restrictions = merged_toggles
        restriction_won = restrictions[-1].event_id == event_id
    erasure = base.erasure
    if effect.erase and (erasure is None or (at_ms, event_id) > (erasure.at_ms, erasure.event_id)):
        erasure = Erasure(at_ms, event_id)
        changed = True
    if not changed and state is not None:
        return Applied(base, tuple(won), restriction_won, effect.erase, changed=False)
    new_state = SubjectState(base.kind, decisions, restrictions, erasure)
    return Applied(new_state, tuple(won), restriction_won, effect.erase, changed=True)


def _greater(a: Decision | None, b: Decision | None) -> Decision | None:
    if a is None or (b is not None and b.rank > a.rank):
        return b
    return a


def _insert(history: tuple[_T, ...], item: _T) -> tuple[_T, ...]:
    """``history`` with ``item`` in rank order, newest :data:`HISTORY` kept.

    Returns ``history`` itself when nothing changes (a duplicate, or an item too old to
    be kept), so callers can tell a no-op by identity.
    """
    for existing in history:
        if existing.event_id == item.event_id:
            return history
    position: int = bisect.bisect([h.rank for h in history], item.rank)
    if len(history) >= HISTORY and position == 0:
        return history
    merged = list(history)
    merged.insert(position, item)
    return tuple(merged[-HISTORY:])
