"""The ANALYTICS sink: applies instructions to the analytics store, answers may-process.

A batch of instructions is applied in one transaction (``apply_batch``), which keeps a
backlog fast on SQLite. Store errors (a locked or unreachable database) are retriable:
the runner waits and tries again, so nothing is skipped while the store is down. An
action the store does not know is permanent (dead-lettered, FAILED receipt).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import ClassVar

from consumers.analytics.store import (
    AnalyticsStore,
    StoreUnavailableError,
    UnsupportedInstructionError,
)
from consumers.protocol import PermanentSinkError, RetriableSinkError, SinkResult
from consumers.state_records import StateAvro
from schemas.events import ConsentStateRecorded, InstructionIssued
from schemas.runtime.http_server import BadRequestError, Response, Route, identifier_param
from schemas.taxonomy import Outcome, Purpose, SinkFamily

DESTINATION = "analytics_store"


class AnalyticsSink:
    """Keeps the analytics store's opt-outs, restrictions and erasures up to date."""

    destination: ClassVar[str] = DESTINATION
    family: ClassVar[SinkFamily] = SinkFamily.ANALYTICS

    def __init__(self, store: AnalyticsStore) -> None:
        self.store = store

    def handles(self, instruction: InstructionIssued) -> bool:
        """Instructions for the analytics store."""
        return (
            instruction.sink_family is SinkFamily.ANALYTICS
            and instruction.destination == DESTINATION
        )

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        """Apply in one transaction with the instruction id; a redelivery changes nothing."""
        return self.apply_batch([instruction])[0]

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        """Apply many in order in one transaction (all or nothing), one result each."""
        try:
            times = self.store.apply_many(instructions)
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc
        except UnsupportedInstructionError as exc:
            raise PermanentSinkError(str(exc)) from exc
        return [SinkResult(Outcome.APPLIED, applied_at=at) for at in times]

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """Those already answered: the runner drops their duplicates."""
        try:
            return self.store.answered(instruction_ids)
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record them as answered (their receipts are acknowledged)."""
        try:
            self.store.remember(instruction_ids)
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def needs_bootstrap(self) -> bool:
        """True until seeding from the consent state has finished once."""
        try:
            return not self.store.is_seeded()
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        """Seed one person's opt-outs and restriction from their consent state."""
        try:
            self.store.seed(state)
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def bootstrap_batch(self, states: Sequence[ConsentStateRecorded]) -> None:
        """Seed many people's opt-outs and restrictions in one transaction."""
        try:
            self.store.seed_many(states)
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def seed_avro_batch(self, states: Sequence[StateAvro]) -> None:
        """The same from the states' checked Avro dicts (the bootstrap's fast path)."""
        try:
            self.store.seed_avro_many(states)
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def bootstrap_finished(self) -> None:
        """Remember that seeding is complete, so a restart does not seed again."""
        try:
            self.store.mark_seeded()
        except StoreUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def http_routes(self) -> Mapping[str, Route]:
        """``GET /may-process?subject_id=...[&purpose=...]`` next to /metrics."""
        return {"/may-process": self._may_process}

    def close(self) -> None:
        """Close the store's connection."""
        self.store.close()

    def _may_process(self, query: Mapping[str, str]) -> Response:
        subject_id = identifier_param(query, "subject_id")
        purpose = None
        if query.get("purpose"):
            try:
                purpose = Purpose(query["purpose"])
            except ValueError as exc:
                raise BadRequestError("purpose is not a known purpose") from exc
        allowed = self.store.may_process(subject_id, purpose)
        return Response.json(200, {"may_process": allowed})
