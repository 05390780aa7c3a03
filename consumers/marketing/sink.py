"""The marketing sink: instructions of the MARKETING family onto the suppression list.

A thin adapter between :class:`~consumers.protocol.Sink` and
:class:`~consumers.marketing.store.MarketingStore`; the runner does the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import ClassVar

from consumers.marketing import DESTINATION, api
from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.settings import MarketingSettings
from consumers.marketing.store import MarketingStore
from consumers.protocol import SinkResult
from consumers.state_records import StateAvro
from schemas.events import ConsentStateRecorded, InstructionIssued
from schemas.runtime.http_server import Route
from schemas.taxonomy import SinkFamily


class MarketingSink:
    """Honours SUPPRESS, ALLOW, ERASE, RESTRICT and LIFT_RESTRICTION for marketing."""

    destination: ClassVar[str] = DESTINATION
    family: ClassVar[SinkFamily] = SinkFamily.MARKETING

    def __init__(self, store: MarketingStore) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: MarketingSettings) -> MarketingSink:
        """The sink over the configured database."""
        return cls(open_store(settings))

    def handles(self, instruction: InstructionIssued) -> bool:
        """Marketing instructions for the suppression list."""
        return (
            instruction.sink_family is SinkFamily.MARKETING
            and instruction.destination == DESTINATION
        )

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        """Apply in one transaction with its idempotency row."""
        return self.store.apply(instruction)

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        """Apply many in one transaction (the runner's fast path)."""
        return self.store.apply_batch(instructions)

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """Those already answered: the runner drops their duplicates."""
        return self.store.answered(instruction_ids)

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record them as answered (their receipts are acknowledged)."""
        self.store.remember(instruction_ids)

    def needs_bootstrap(self) -> bool:
        """True until a bootstrap has finished on this database."""
        return self.store.needs_bootstrap()

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        """Seed one subject from the consent-state topic."""
        self.store.bootstrap(state)

    def bootstrap_batch(self, states: Sequence[ConsentStateRecorded]) -> None:
        """Seed many subjects' suppressions and restrictions in one transaction."""
        self.store.bootstrap_batch(states)

    def seed_avro_batch(self, states: Sequence[StateAvro]) -> None:
        """The same from the states' checked Avro dicts (the bootstrap's fast path)."""
        self.store.seed_avro_batch(states)

    def bootstrap_finished(self) -> None:
        """Remember the bootstrap is complete."""
        self.store.mark_bootstrapped()

    def http_routes(self) -> Mapping[str, Route]:
        """``/v1/may-contact``."""
        return api.routes(self.store)

    def close(self) -> None:
        """Close the database."""
        self.store.close()


def open_store(settings: MarketingSettings) -> MarketingStore:
    """The marketing store the settings point at (tables created if missing)."""
    database = Database(settings.database_url, busy_timeout=settings.busy_timeout_seconds)
    return MarketingStore(database, AddressHasher(settings.hash_key.encode()))
