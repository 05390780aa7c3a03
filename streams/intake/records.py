"""The Avro dicts of what the stream publishes: instructions (one InstructionIssued per
destination, or one InstructionsIssued for a family's destinations), consent state,
proofs of propagation and dead letters.

They are built straight as the dicts the codec writes (field names from
``schemas/avro``), not as records first: the stream makes them from already validated
data, and skipping the record round trip is one less object per event on the hot path.
Times are epoch milliseconds, which Avro's timestamp-millis takes as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from schemas import deadletters
from schemas.converters import to_dict
from schemas.events import NAMESPACE, ConsentHistory, Subject
from schemas.taxonomy import PURPOSE_SPECS, Channel, Purpose, Right
from streams.intake.fanout import Route
from streams.intake.resolution import SubjectState
from streams.proof.propagation import HONOURING, Propagation

_HISTORY = f"{NAMESPACE}.{ConsentHistory.__name__}"


def subject_dict(subject: Subject) -> dict[str, Any]:
    """The Avro dict of a subject."""
    return {"id": subject.id, "kind": subject.kind.value}


@dataclass(frozen=True, slots=True)
class Issue:
    """What every instruction of one consent event shares."""

    event_id: str
    event_type: str
    subject: dict[str, Any]
    regime: str
    right: Right | None
    occurred_at_ms: int
    issued_at_ms: int
    receipt_requested: bool
    """Whether the stream tracks the event's propagation: a sink answers only those
    instructions, so grants cost no receipt round trip."""


def instruction(route: Route, issue: Issue) -> dict[str, Any]:
    """An InstructionIssued for one route."""
    return {
        "instruction_id": route.instruction_id,
        "event_id": issue.event_id,
        "event_type": issue.event_type,
        "subject": issue.subject,
        "sink_family": route.destination.family,
        "destination": route.destination.name,
        "action": route.action,
        "purposes": list(route.purposes),
        "channels": _channels(route),
        "right": issue.right,
        "regime": issue.regime,
        "occurred_at": issue.occurred_at_ms,
        "issued_at": issue.issued_at_ms,
        "receipt_requested": issue.receipt_requested,
    }


def instructions(routes: Sequence[Route], issue: Issue) -> dict[str, Any]:
    """One InstructionsIssued for ``routes``, all of one family, in their order."""
    return {
        "event_id": issue.event_id,
        "event_type": issue.event_type,
        "subject": issue.subject,
        "sink_family": routes[0].destination.family,
        "instructions": [
            {
                "instruction_id": route.instruction_id,
                "destination": route.destination.name,
                "action": route.action,
                "purposes": list(route.purposes),
                "channels": _channels(route),
            }
            for route in routes
        ],
        "right": issue.right,
        "regime": issue.regime,
        "occurred_at": issue.occurred_at_ms,
        "issued_at": issue.issued_at_ms,
        "receipt_requested": issue.receipt_requested,
    }


def _channels(route: Route) -> list[Channel]:
    return list(_channels_of(route.purposes))


@lru_cache(maxsize=1024)
def _channels_of(purposes: tuple[Purpose, ...]) -> tuple[Channel, ...]:
    """The purposes' channels in order, once per combination (routes repeat a few)."""
    # Enum members are str: fastavro writes them as their symbols, no .value needed.
    channels: list[Channel] = []
    for purpose in purposes:
        channel = PURPOSE_SPECS[purpose].channel
        if channel is not None and channel not in channels:
            channels.append(channel)
    return tuple(channels)


class StateAvro(dict[str, Any]):
    """A ConsentStateRecorded's Avro dict that also holds the state it was made from: the
    stream's encoder writes its entries and decisions from the state's histories with
    their bytes kept per key (:mod:`streams.intake.state_writer`), not from this dict's lists."""

    __slots__ = ("state",)

    def __init__(self, state: SubjectState, avro: dict[str, Any]) -> None:
        super().__init__(avro)
        self.state = state


def entry_order(entry: dict[str, Any]) -> tuple[str, str, str]:
    """How a state record orders its entries: by purpose, regime, then recipient, the
    choice for every recipient (no recipient) first."""
    return (entry["purpose"], entry["regime"], entry["recipient"] or "")


def state_record(subject_id: str, state: SubjectState, now_ms: int) -> StateAvro:
    """A ConsentStateRecorded for the stream's encoder only: the fields not made from the
    histories (subject, flags, time) and the state, from which :mod:`streams.intake.state_writer`
    writes the entries and the history, so they are not built as dicts (half the cost of
    a busy subject's record once its bytes are cached). Not a whole Avro dict: fastavro
    refuses it (``entries`` is missing); anything else takes :func:`consent_state`."""
    return StateAvro(
        state,
        {
            "subject": {"id": subject_id, "kind": state.kind},
            "restricted": state.restricted,
            "erased": state.erasure is not None,
            "updated_at": now_ms,
        },
    )


def consent_state(subject_id: str, state: SubjectState, now_ms: int) -> StateAvro:
    """A ConsentStateRecorded: the current choice per (purpose, regime, recipient) for
    the sinks, choices limited to one recipient included, and in ``history`` the whole
    state, which the state table recovers from (:mod:`streams.intake.state_topic` reads
    it back) and the consent gate judges by."""
    entries = []
    decisions = []
    for (purpose, regime, recipient), history in state.decisions.items():
        for d in history:
            decisions.append(
                {
                    "purpose": purpose,
                    "regime": regime,
                    "recipient": recipient,
                    "choice": d.choice,
                    "occurred_at": d.at_ms,
                    "event_id": d.event_id,
                    "expires_at": d.expires_ms,
                }
            )
        if not history:
            continue
        current = history[-1]
        # The members themselves: fastavro writes a StrEnum as its symbol (``.value``
        # is a property lookup, three per entry of every state record).
        entries.append(
            {
                "purpose": purpose,
                "regime": regime,
                "recipient": recipient,
                "choice": current.choice,
                "occurred_at": current.at_ms,
                "event_id": current.event_id,
            }
        )
    entries.sort(key=entry_order)
    erasure = state.erasure
    avro = {
        "subject": {"id": subject_id, "kind": state.kind},
        "entries": entries,
        "restricted": state.restricted,
        "erased": erasure is not None,
        "updated_at": now_ms,
        # (name, value): fastavro's notation for a union's branch. Without it, fastavro
        # finds the branch by validating the whole history against it first, which made
        # encoding a state record twice as slow.
        "history": (
            _HISTORY,
            {
                "decisions": decisions,
                "restrictions": [
                    {"restricted": t.on, "occurred_at": t.at_ms, "event_id": t.event_id}
                    for t in state.restrictions
                ],
                "erasure": None
                if erasure is None
                else {"occurred_at": erasure.at_ms, "event_id": erasure.event_id},
            },
        ),
    }
    return StateAvro(state, avro)


def fully_propagated(subject: dict[str, Any], record: Propagation) -> dict[str, Any]:
    """A FullyPropagated for a complete propagation."""
    assert record.completed_at_ms is not None
    return {
        "event_id": record.event_id,
        "subject": subject,
        "occurred_at": record.occurred_at_ms,
        "completed_at": record.completed_at_ms,
        "destinations": [
            {"destination": label, "outcome": a.outcome.value, "applied_at": a.applied_at_ms}
            for label, a in sorted(record.answers.items())
            if a.outcome in HONOURING
        ],
    }


def dead_letter(
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: BaseException,
    now_ms: int,
) -> dict[str, Any]:
    """A DeadLettered for a message that could not be processed; bounded in size
    (:mod:`schemas.deadletters`), so it can always be published."""
    return to_dict(
        deadletters.of_error(
            error,
            stage=stage,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            at=datetime.fromtimestamp(now_ms / 1000, UTC),
        )
    )
