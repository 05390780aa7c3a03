"""Topic names and their shapes: the only place a topic is spelled.

A :class:`Topics` carries an optional prefix so tests (and tenants) get their own
set on a shared broker. Consent events, instructions and receipts are keyed by
subject id, so one subject's events stay in order on one partition.

Instructions go to one topic per sink family. The families in
:data:`ONE_RECORD_PER_EVENT` (the sixteen partners) get one InstructionsIssued per
consent event naming every destination that must act, instead of one record per
destination: a withdrawal reaching a dozen partners was a dozen records to send, store
and fetch. The partner sink fetches the family topic once for every partner and hands
each record, by the :data:`DESTINATION_HEADER` and without decoding it, to the
partners it names (``consumers/partners/fanout.py``). Until
release 3 of the contract each partner had a topic of its own
(:meth:`Topics.legacy_instructions`); the partner sink reads it no more (see the
upgrade order in ``consumers/partners/WEBHOOK.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from schemas.taxonomy import SinkFamily

DEFAULT_PARTITIONS: Final = 6

COMPACTED: Final = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}

STATE_CONFIG: Final = {**COMPACTED, "segment.ms": "60000", "delete.retention.ms": "600000"}
"""The state topic is also the stream's state table's changelog, which a worker replays
when it starts or takes a partition over: segments of a minute let Kafka compact it to
about one record per subject plus the last minute's (see streams/engine/tables.py)."""

DESTINATION_HEADER: Final = "consent-relay-destination"
"""Header naming the destinations an instruction record concerns (UTF-8, comma-separated:
an InstructionIssued's one, every one an InstructionsIssued names), so a sink skips the
records of other destinations on its family's topic without decoding them."""

ONE_RECORD_PER_EVENT: Final = frozenset({SinkFamily.PARTNER_SHARING})
"""Sink families whose instructions for one consent event travel as one
InstructionsIssued (an item per destination); the others' as an InstructionIssued per
destination (each of them has a single destination today)."""

LEGACY_TOPIC_PER_DESTINATION: Final = frozenset({SinkFamily.PARTNER_SHARING})
"""Families that had a topic per destination (``consent.instructions.<family>.<destination>``)
before release 3 of the contract; nothing writes or reads them any more."""

_DESTINATION: Final = re.compile(r"[a-z0-9_]+")
"""A destination name as the routing policy allows it, which is also a legal topic part."""


def destinations_header(destinations: Iterable[str]) -> bytes:
    """The :data:`DESTINATION_HEADER` value naming ``destinations`` (each once, in order)."""
    return ",".join(dict.fromkeys(destinations)).encode()


def names_destination(header: bytes, destination: str) -> bool:
    """Whether a :data:`DESTINATION_HEADER` value names ``destination``."""
    return destination.encode() in header.split(b",")


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
        """What the destinations of ``family`` must do, keyed by subject."""
        return self.instruction_prefix(family).removesuffix(".")

    def legacy_instructions(self, family: SinkFamily, destination: str) -> str:
        """The topic of one destination of a family in :data:`LEGACY_TOPIC_PER_DESTINATION`,
        which releases 1 and 2 wrote its instructions to (to find what is left on it)."""
        if family not in LEGACY_TOPIC_PER_DESTINATION or not _DESTINATION.fullmatch(destination):
            raise ValueError(f"{family} had no topic for destination {destination!r}")
        return f"{self.instruction_prefix(family)}{destination}"

    def instruction_prefix(self, family: SinkFamily | None = None) -> str:
        """What every instruction topic of ``family`` (default: of any family) starts
        with, ending with a dot, to find instruction topics by listing the broker's
        (a legacy per-destination topic too)."""
        family_part = "" if family is None else f"{family.value.lower()}."
        return f"{self.prefix}consent.instructions.{family_part}"

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
        """Compacted current consent state, keyed by subject, written by the stream only:
        sinks bootstrap from it, and it is the stream's state table's changelog, which the
        workers recover from and the consent gate follows (each record's history)."""
        return f"{self.prefix}consent.state"

    @property
    def intake_progress(self) -> str:
        """How far the stream's intake has applied each consent partition: on partition
        *p*, keyed by *p*, the next consent offset whose effects are published (compacted;
        written and read by ``streams`` only, for the consent gate; not a contract event)."""
        return f"{self.prefix}consent.intake.progress"

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
            TopicSpec(self.state, self.partitions, dict(STATE_CONFIG)),
            TopicSpec(self.intake_progress, self.partitions, dict(COMPACTED)),
        )
