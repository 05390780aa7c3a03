"""Topic names and their shapes: the only place a topic is spelled.

A :class:`Topics` carries an optional prefix so tests (and tenants) get their own
set on a shared broker. Consent events, instructions and receipts are keyed by
subject id, so one subject's events stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from schemas.taxonomy import SinkFamily

DEFAULT_PARTITIONS: Final = 6

COMPACTED: Final = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}

DESTINATION_HEADER: Final = "consent-relay-destination"
"""Header naming an instruction's destination (UTF-8), so a sink skips the instructions
of other destinations on a shared family topic without decoding them."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partition count, and topic-level configs."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic Consent Relay uses, under one prefix."""

    prefix: str = ""
    partitions: int = DEFAULT_PARTITIONS

    @property
    def consent(self) -> str:
        """Consent changes, rights requests and cookie preferences, keyed by subject."""
        return f"{self.prefix}consent.events"

    def instructions(self, family: SinkFamily) -> str:
        """What one sink family must do, keyed by subject."""
        return f"{self.prefix}consent.instructions.{family.value.lower()}"

    @property
    def receipts(self) -> str:
        """Sinks' propagation receipts, keyed by subject."""
        return f"{self.prefix}consent.receipts"

    @property
    def propagated(self) -> str:
        """FullyPropagated events, keyed by subject."""
        return f"{self.prefix}consent.propagated"

    @property
    def state(self) -> str:
        """Compacted current consent state, keyed by subject (sinks bootstrap from it)."""
        return f"{self.prefix}consent.state"

    @property
    def dead_letters(self) -> str:
        """Anything that could not be processed, with reason and source coordinates."""
        return f"{self.prefix}consent.deadletters"

    @property
    def data_events(self) -> str:
        """Personal data on its way downstream, before the consent gate."""
        return f"{self.prefix}data.events"

    @property
    def data_allowed(self) -> str:
        """Data events the consent gate let through."""
        return f"{self.prefix}data.events.allowed"

    def all(self) -> tuple[TopicSpec, ...]:
        """Every topic with its partitions and configs, for creation."""
        plain = [
            self.consent,
            *(self.instructions(f) for f in SinkFamily),
            self.receipts,
            self.propagated,
            self.dead_letters,
            self.data_events,
            self.data_allowed,
        ]
        return (
            *(TopicSpec(name, self.partitions) for name in plain),
            TopicSpec(self.state, self.partitions, dict(COMPACTED)),
        )
