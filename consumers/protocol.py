"""The one protocol every sink implements, and the errors that tell the runner what to do.

A sink only knows its downstream system. The runner owns everything else: consuming,
retries with backoff, dead letters, receipts, offsets and metrics. ``apply`` must be
idempotent per ``instruction.instruction_id`` (the runner may deliver an instruction
again after a crash) and must return only once the effect is durable. A sink that also
:class:`RemembersAnswers` lets the runner drop an instruction it has already honoured
and answered, so a duplicate costs no second receipt and no second downstream call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

from schemas.errors import ConsentRelayError
from schemas.events import ConsentStateRecorded, InstructionIssued
from schemas.runtime.http_server import Route
from schemas.taxonomy import Outcome, SinkFamily


class SinkError(ConsentRelayError):
    """A sink could not apply an instruction."""


class RetriableSinkError(SinkError):
    """The downstream system is unavailable for now; the runner retries with backoff."""


class PermanentSinkError(SinkError):
    """The instruction can never be applied; the runner dead-letters it with the reason."""


@dataclass(frozen=True, slots=True)
class SinkResult:
    """What a sink did: APPLIED, or SKIPPED with a reason (e.g. no identifier known)."""

    outcome: Outcome
    reason: str | None = None
    applied_at: datetime | None = None
    """When the effect first became durable, if the sink remembers (a redelivered
    instruction keeps its original time); None means now."""


APPLIED = SinkResult(Outcome.APPLIED)


class Sink(Protocol):
    """A downstream system that honours instructions of one sink family."""

    family: ClassVar[SinkFamily]

    @property
    def destination(self) -> str:
        """The destination this sink instance serves (e.g. ``suppression_list``)."""
        ...

    def handles(self, instruction: InstructionIssued) -> bool:
        """Whether this sink instance is responsible for the instruction's destination."""
        ...

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        """Make the instruction's effect durable, idempotently; raise a SinkError if not."""
        ...

    def needs_bootstrap(self) -> bool:
        """True when the store is empty and must be seeded from the consent-state topic."""
        ...

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        """Seed the store from one subject's current consent state."""
        ...

    def close(self) -> None:
        """Release connections; called once after the runner has committed."""
        ...


@runtime_checkable
class AppliesBatches(Protocol):
    """Optional: a sink that makes many instructions durable in one step (one database
    transaction instead of one per instruction)."""

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        """Apply every instruction in order, all or nothing, idempotently; one result each.

        Raise a SinkError for the whole batch: retriable (the runner retries it) or
        permanent (the runner then applies one by one to find the culprit).
        """
        ...


@runtime_checkable
class RemembersAnswers(Protocol):
    """Optional: a sink that keeps, durably, the ids of the instructions it has answered.

    "Answered" means honoured (APPLIED or SKIPPED, never FAILED) *and* its receipt, if
    one was asked for, acknowledged by the broker: the runner calls :meth:`remember`
    only after the flush that acknowledged those receipts, so a crash in between
    leaves the instruction unanswered and its redelivery gets its receipt again.
    """

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``instruction_ids`` that is answered was remembered; raise a
        SinkError if the sink cannot tell."""
        ...

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record ``instruction_ids`` as answered, idempotently."""
        ...


@runtime_checkable
class FinishesBootstrap(Protocol):
    """Optional: a sink told when seeding is complete, so a crash mid-way seeds again."""

    def bootstrap_finished(self) -> None:
        """Record that every subject's state has been seeded."""
        ...


@runtime_checkable
class ServesHttp(Protocol):
    """Optional: a sink with its own HTTP API, served next to /metrics."""

    def http_routes(self) -> Mapping[str, Route]:
        """Path → GET handler."""
        ...
