"""The known workload: grants and withdrawals whose right final state is computable.

Every event is a ConsentChanged under GDPR about one or two of four purposes, chosen so
that between them they reach every sink family (marketing email → the marketing
suppression list, research and statistics → the analytics store, sharing viewed products
→ the ``sellers`` partner, sharing with analytics providers → two more partners). Most
events are fresh decisions, each newer than the last; some repeat the subject's newest
event time with the opposite choice (a tie, which the withdrawal must win), some are
older than the subject's newest decision and arrive late (mostly grants, which must
never re-grant), and some are sent twice, byte for byte. Event times are an hour in the
past, at least 5 ms apart, so no store's millisecond rounding can merge two of them.

Events are encoded once, with the relay's own serializer, into the benchmark's
:class:`~deploy.bench.workload.Prepared` with a single part: the bench's load generator
then sends them as they are (there is no time to stamp) at the planned rate.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from deploy.bench.workload import Prepared
from schemas.codec import EventSerializer
from schemas.events import ConsentChanged, Subject
from schemas.taxonomy import Choice, PolicyVersion, Purpose, Regime, Source, SubjectKind

PURPOSES: Final = (
    Purpose.MARKETING_EMAIL,
    Purpose.RESEARCH_AND_STATISTICS,
    Purpose.SHARE_VIEWED_PRODUCTS_WITH_SELLERS,
    Purpose.SHARE_WITH_ANALYTICS_PROVIDERS,
)
WITHDRAW_SHARE: Final = 0.45
TIE_SHARE: Final = 0.08
LATE_SHARE: Final = 0.06
LATE_WITHDRAWAL_SHARE: Final = 0.2
DUPLICATE_SHARE: Final = 0.05
DUPLICATE_WINDOW: Final = 500
"""A duplicate repeats one of the last this many distinct events."""
STEP_MS: Final = (5, 30)


@dataclass(frozen=True, slots=True)
class Decision:
    """One consent event of the workload, as the reconciliation needs it."""

    event_id: str
    subject: str
    purposes: tuple[Purpose, ...]
    withdrawn: bool
    at_ms: int
    kind: str
    """``fresh``, ``tie``, ``late`` or ``probe``."""

    def event(self) -> ConsentChanged:
        """The record the relay receives."""
        at = datetime.fromtimestamp(self.at_ms / 1000, UTC)
        return ConsentChanged(
            event_id=self.event_id,
            subject=Subject(id=self.subject, kind=SubjectKind.ACCOUNT),
            occurred_at=at,
            recorded_at=at,
            source=Source.PRIVACY_SETTINGS,
            regime=Regime.GDPR,
            policy_version=PolicyVersion.V2019_07_15,
            choice=Choice.WITHDRAWN if self.withdrawn else Choice.GRANTED,
            purposes=self.purposes,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """The distinct events and the order they are sent in (duplicates repeat an index)."""

    decisions: tuple[Decision, ...]
    order: tuple[int, ...]

    @property
    def duplicates(self) -> int:
        """Sends that repeat an event already sent."""
        return len(self.order) - len(self.decisions)


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def plan(events: int, subjects: int, seed: int, now_ms: int) -> Plan:
    """``events`` sends over ``subjects`` subjects, reproducible from ``seed``."""
    rng = random.Random(seed)
    clock = now_ms - 3_600_000
    newest: dict[str, Decision] = {}
    decisions: list[Decision] = []
    order: list[int] = []
    while len(order) < events:
        if decisions and rng.random() < DUPLICATE_SHARE:
            order.append(rng.randrange(max(0, len(decisions) - DUPLICATE_WINDOW), len(decisions)))
            continue
        subject = f"faults-{rng.randrange(subjects):05d}"
        last = newest.get(subject)
        roll = rng.random()
        if last is not None and roll < TIE_SHARE:
            decision = Decision(
                _event_id(rng), subject, last.purposes, not last.withdrawn, last.at_ms, "tie"
            )
        elif last is not None and roll < TIE_SHARE + LATE_SHARE:
            decision = Decision(
                _event_id(rng),
                subject,
                last.purposes,
                rng.random() < LATE_WITHDRAWAL_SHARE,
                last.at_ms - rng.randint(1_000, 60_000),
                "late",
            )
        else:
            clock += rng.randint(*STEP_MS)
            decision = Decision(
                _event_id(rng),
                subject,
                tuple(rng.sample(PURPOSES, rng.choice((1, 1, 1, 2)))),
                rng.random() < WITHDRAW_SHARE,
                clock,
                "fresh",
            )
            newest[subject] = decision
        decisions.append(decision)
        order.append(len(decisions) - 1)
    return Plan(tuple(decisions), tuple(order))


def probe(number: int, now_ms: int) -> Decision:
    """A withdrawal of every workload purpose by a subject of its own, timed now."""
    return Decision(
        str(uuid.uuid4()), f"faults-probe-{number:04d}", PURPOSES, True, now_ms, "probe"
    )


class Encoder:
    """Encodes decisions with the relay's serializer, remembering which bytes are which."""

    def __init__(self, serializer: EventSerializer, topic: str) -> None:
        self._serializer = serializer
        self._topic = topic
        self.by_value: dict[bytes, Decision] = {}

    def prepared(self, decision: Decision) -> Prepared:
        """The decision as the load generator sends it."""
        value = self._serializer(decision.event(), self._topic)
        self.by_value[value] = decision
        kind = "withdraw" if decision.withdrawn else "grant"
        return Prepared(
            decision.subject.encode(), (value,), decision.event_id, kind, decision.withdrawn
        )

    def sends(self, the_plan: Plan) -> list[Prepared]:
        """Every send of the plan, in order (a duplicate is the same bytes again)."""
        encoded = [self.prepared(d) for d in the_plan.decisions]
        return [encoded[i] for i in the_plan.order]
