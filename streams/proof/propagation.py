"""Proof of propagation: which destinations must honour an event, and which have. Pure.

When the stream routes a withdrawal or a rights request it records a
:class:`Propagation` naming every instruction whose action must be proven (SUPPRESS,
ERASE, RESTRICT, LIFT_RESTRICTION) and the destination it went to. Receipts answer
instructions; APPLIED and SKIPPED honour the destination, FAILED is kept (so the
query shows it) but leaves it pending, since the effect is not in place. When nothing
is pending the propagation is complete and the stream publishes FullyPropagated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.taxonomy import Outcome, SubjectKind
from streams.intake.fanout import TRACKED_ACTIONS, Route
from streams.intake.times import from_ms

HONOURING = frozenset({Outcome.APPLIED, Outcome.SKIPPED})
ORPHAN_TTL_MS = 3_600_000
MAX_ORPHANS = 64


@dataclass(frozen=True, slots=True)
class Answer:
    """A destination's latest receipt."""

    outcome: Outcome
    applied_at_ms: int
    instruction_id: str


@dataclass(frozen=True, slots=True)
class Propagation:
    """One event's propagation to the destinations that must honour it."""

    event_id: str
    event_type: str
    subject_kind: SubjectKind
    occurred_at_ms: int
    issued_at_ms: int
    required: Mapping[str, str]
    """instruction id → destination label (``FAMILY/name``)."""
    answers: Mapping[str, Answer] = field(default_factory=dict)
    """destination label → its latest answer."""
    completed_at_ms: int | None = None

    @property
    def pending(self) -> tuple[str, ...]:
        """Destinations that have not honoured the event yet, sorted."""
        return tuple(
            sorted(
                label
                for label in set(self.required.values())
                if (a := self.answers.get(label)) is None or a.outcome not in HONOURING
            )
        )

    @property
    def complete(self) -> bool:
        """Every destination honoured the event."""
        return self.completed_at_ms is not None


@dataclass(frozen=True, slots=True)
class Orphan:
    """A receipt that arrived before the record it answers (e.g. after a crash the
    receipt was consumed before the consent event was processed again); it is applied
    when the record appears, or dropped after :data:`ORPHAN_TTL_MS`. Receipts for
    grants (ALLOW is not tracked) also end up here and expire."""

    event_id: str
    instruction_id: str
    outcome: Outcome
    applied_at_ms: int
    received_at_ms: int


@dataclass(frozen=True, slots=True)
class SubjectPropagations:
    """A subject's pending propagations and early receipts (one table value)."""

    pending: tuple[Propagation, ...] = ()
    orphans: tuple[Orphan, ...] = ()

    def find(self, event_id: str) -> Propagation | None:
        """The pending record of ``event_id``."""
        for record in self.pending:
            if record.event_id == event_id:
                return record
        return None

    def replacing(self, record: Propagation) -> SubjectPropagations:
        """With ``record`` (pending) replacing its earlier version, or dropped if complete."""
        kept = tuple(r for r in self.pending if r.event_id != record.event_id)
        if not record.complete:
            kept = (*kept, record)
        return SubjectPropagations(kept, self.orphans)

    def with_orphan(self, orphan: Orphan, now_ms: int) -> SubjectPropagations:
        """With ``orphan`` parked and expired ones dropped."""
        fresh = tuple(o for o in self.orphans if now_ms - o.received_at_ms < ORPHAN_TTL_MS)
        return SubjectPropagations(self.pending, (*fresh, orphan)[-MAX_ORPHANS:])

    def adopting(self, record: Propagation, now_ms: int) -> tuple[Propagation, SubjectPropagations]:
        """``record`` with any parked receipts for it applied, and the orphans left."""
        left = []
        for orphan in self.orphans:
            if orphan.event_id != record.event_id:
                left.append(orphan)
                continue
            updated = answer(
                record, orphan.instruction_id, orphan.outcome, orphan.applied_at_ms, now_ms
            )
            record = updated or record
        return record, SubjectPropagations(self.pending, tuple(left))

    def __bool__(self) -> bool:
        return bool(self.pending or self.orphans)


def start(
    *,
    event_id: str,
    event_type: str,
    subject_kind: SubjectKind,
    occurred_at_ms: int,
    now_ms: int,
    routes: Iterable[Route],
) -> Propagation:
    """The record for a newly routed event; complete at once if nothing must act."""
    required = {
        r.instruction_id: r.destination.label for r in routes if r.action in TRACKED_ACTIONS
    }
    return Propagation(
        event_id,
        event_type,
        subject_kind,
        occurred_at_ms,
        now_ms,
        required,
        completed_at_ms=None if required else now_ms,
    )


def answer(
    record: Propagation, instruction_id: str, outcome: Outcome, applied_at_ms: int, now_ms: int
) -> Propagation | None:
    """``record`` with a receipt applied, or None when the receipt changes nothing."""
    label = record.required.get(instruction_id)
    if label is None or record.complete:
        return None
    previous = record.answers.get(label)
    if previous is not None and previous.outcome in HONOURING:
        return None
    answers = {**record.answers, label: Answer(outcome, applied_at_ms, instruction_id)}
    # Complete when every destination's latest answer honours the event (what
    # ``pending`` says, without sorting the labels for each of a record's receipts).
    complete = outcome in HONOURING and all(
        (got := answers.get(each)) is not None and got.outcome in HONOURING
        for each in record.required.values()
    )
    # Built directly: dataclasses.replace introspects the fields on every call, and a
    # batch applies a receipt per destination of every withdrawal.
    return Propagation(
        event_id=record.event_id,
        event_type=record.event_type,
        subject_kind=record.subject_kind,
        occurred_at_ms=record.occurred_at_ms,
        issued_at_ms=record.issued_at_ms,
        required=record.required,
        answers=answers,
        completed_at_ms=now_ms if complete else None,
    )


def is_tracked(routes: Iterable[Route]) -> bool:
    """The event is a withdrawal or a rights request whose propagation is proven."""
    return any(r.action in TRACKED_ACTIONS for r in routes)


def describe(record: Propagation) -> dict[str, Any]:
    """The JSON answer to "which destinations honoured it, when, and which are pending"."""
    pending = set(record.pending)
    destinations = []
    for iid, label in sorted(record.required.items(), key=lambda item: item[1]):
        got = record.answers.get(label)
        destinations.append(
            {
                "destination": label,
                "instruction_id": iid,
                "status": "pending" if label in pending else "honoured",
                "outcome": None if got is None else got.outcome.value,
                "applied_at": None if got is None else from_ms(got.applied_at_ms).isoformat(),
            }
        )
    return {
        "event_id": record.event_id,
        "event_type": record.event_type,
        "occurred_at": from_ms(record.occurred_at_ms).isoformat(),
        "issued_at": from_ms(record.issued_at_ms).isoformat(),
        "complete": record.complete,
        "completed_at": None
        if record.completed_at_ms is None
        else from_ms(record.completed_at_ms).isoformat(),
        "pending": sorted(pending),
        "honoured": sorted(set(record.required.values()) - pending),
        "destinations": destinations,
    }
