"""The dead letters, read back and matched to the malformed records by coordinates.

A malformed record counts as dead-lettered when some dead letter names its topic,
partition and offset as its source: not by count, so a record dead-lettered twice
(after a restart) cannot stand in for one that was dropped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from deploy.bench.collect import read_topic
from deploy.bench.offsets import Offsets
from deploy.faults.burst import Landed
from schemas.codec import EventDecoder
from schemas.errors import ConsentRelayError
from schemas.runtime.kafka import KafkaSettings

Coordinates = tuple[str, int, int]


@dataclass(slots=True)
class DeadLetters:
    """Every dead letter of the run, by source coordinates."""

    sources: dict[Coordinates, str] = field(default_factory=dict)
    """(source topic, partition, offset) → ``stage: error class`` of its first dead letter."""
    by_reason: Counter[str] = field(default_factory=Counter)
    """``stage: error class`` → dead letters."""
    total: int = 0
    undecodable: int = 0


def read(settings: KafkaSettings, offsets: Offsets) -> DeadLetters:
    """Read the dead-letter topic from the beginning to its end now."""
    decoder = EventDecoder(settings.registry_client())
    out = DeadLetters()
    group = f"{settings.topic_prefix}faults.deadletters.{time.time_ns()}"
    for message in read_topic(settings, offsets, settings.topics.dead_letters, group):
        out.total += 1
        try:
            _, record = decoder.decode_dict(message.value())
        except ConsentRelayError:
            out.undecodable += 1
            continue
        reason = f"{record['stage']}: {record['error_class']}"
        out.by_reason[reason] += 1
        where = (record["source_topic"], record["source_partition"], record["source_offset"])
        out.sources.setdefault(where, reason)
    return out


@dataclass(frozen=True, slots=True)
class Matched:
    """The malformed records against the dead letters."""

    sent: int
    dead_lettered: int
    by_kind: dict[str, dict[str, Any]]
    """kind → sent, dead-lettered, and the reasons given."""

    @property
    def percent(self) -> float:
        """Share of malformed records dead-lettered, in percent."""
        return 100.0 * self.dead_lettered / self.sent if self.sent else 100.0


def match(topic: str, landed: list[Landed], letters: DeadLetters) -> Matched:
    """Which malformed records of ``topic`` have a dead letter."""
    by_kind: dict[str, dict[str, Any]] = {}
    found = 0
    for record in landed:
        entry = by_kind.setdefault(record.kind, {"sent": 0, "dead_lettered": 0, "reasons": {}})
        entry["sent"] += 1
        reason = letters.sources.get((topic, record.partition, record.offset))
        if reason is not None:
            found += 1
            entry["dead_lettered"] += 1
            entry["reasons"][reason] = entry["reasons"].get(reason, 0) + 1
    return Matched(len(landed), found, dict(sorted(by_kind.items())))
