"""Topic names and their shapes: the only place a topic is spelled.

A :class:`Topics` carries an optional prefix so tests (and tenants) get their own
set on a shared broker. Consent events, instructions and receipts are keyed by
subject id, so one subject's events stay in order on one partition.

Instructions go to one topic per sink family, except for the families in
:data:`TOPIC_PER_DESTINATION`, whose every destination has a topic of its own: the
sixteen partners are independent downstreams, and on a shared topic each partner's
consumer fetched and skipped the fifteen others' instructions, its batches were mostly
someone else's, and one hung partner's lag could not be told apart on the topic.
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
about one record per subject plus the last minute's (see streams/tables.py)."""

DESTINATION_HEADER: Final = "consent-relay-destination"
"""Header naming an instruction's destination (UTF-8), so a sink skips the instructions
of other destinations on a shared family topic without decoding them."""

TOPIC_PER_DESTINATION: Final = frozenset({SinkFamily.PARTNER_SHARING})
"""Sink families whose every destination gets its own instruction topic
(``consent.instructions.<family>.<destination>``); the others share their family's
topic (``consent.instructions.<family>``). Such a family has no family topic at all:
nothing writes one, so none is created (see :meth:`Topics.all`)."""

_DESTINATION: Final = re.compile(r"[a-z0-9_]+")
"""A destination name as the routing policy allows it, which is also a legal topic part."""

Destinations = Iterable[tuple[SinkFamily, str]]
"""(family, destination name) pairs, e.g. from the routing policy or a partners file."""


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

    def instructions(self, family: SinkFamily, destination: str | None = None) -> str:
        """What ``destination`` of ``family`` must do, keyed by subject.

        The family's topic, or the destination's own if the family is in
        :data:`TOPIC_PER_DESTINATION` (then ``destination`` is required: a sink of such
        a family reading a family topic would silently read nothing).
        """
        name = self.instruction_prefix(family)
        if family not in TOPIC_PER_DESTINATION:
            return name.removesuffix(".")
        if destination is None or not _DESTINATION.fullmatch(destination):
            raise ValueError(f"{family} has a topic per destination, not {destination!r}")
        return f"{name}{destination}"

    def instruction_prefix(self, family: SinkFamily | None = None) -> str:
        """What every instruction topic of ``family`` (default: of any family) starts
        with, ending with a dot, to find a per-destination family's topics by listing
        the broker's: a reader need not know which destinations the relay has."""
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

    def all(self, destinations: Destinations = ()) -> tuple[TopicSpec, ...]:
        """Every topic with its partitions and configs, for creation: the fixed ones,
        then the own instruction topics of ``destinations`` (see :meth:`destination_topics`).

        A family in :data:`TOPIC_PER_DESTINATION` has no family topic here: its
        destinations are only known from the routing policy or a partners file, so
        whoever knows them (the stream, the partner sink) creates theirs at start.
        """
        plain = [
            self.consent,
            *(self.instructions(f) for f in SinkFamily if f not in TOPIC_PER_DESTINATION),
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
            *self.destination_topics(destinations),
        )

    def destination_topics(self, destinations: Destinations) -> tuple[TopicSpec, ...]:
        """The own instruction topics of ``destinations`` (those of a family sharing
        a topic are left out: :meth:`all` has it), each once, in the order given."""
        names = dict.fromkeys(
            self.instructions(family, name)
            for family, name in destinations
            if family in TOPIC_PER_DESTINATION
        )
        return tuple(TopicSpec(name, self.partitions) for name in names)
