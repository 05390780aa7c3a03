"""What actually reached the consent topic, read back after the run.

The rule is applied to the events the broker holds, not to what the harness meant to
send: an event whose delivery report was lost in a broker outage may still be on the
topic (and must then be honoured). Valid events are recognised by their exact bytes
(each carries its own event id), malformed records by the coordinates the burst's
delivery reports gave.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from deploy.bench.collect import read_topic
from deploy.bench.offsets import Offsets
from deploy.faults.workload import Decision, Encoder
from schemas.runtime.kafka import KafkaSettings


@dataclass(slots=True)
class OnTopic:
    """The consent topic's records, sorted out."""

    sends: int = 0
    """Valid records (workload and probes, a duplicate counted each time)."""
    probes: int = 0
    decisions: dict[str, Decision] = field(default_factory=dict)
    """Distinct valid events by event id."""
    valid_at: list[tuple[int, int]] = field(default_factory=list)
    """(partition, offset) of every valid record."""
    malformed: int = 0
    unknown: int = 0
    """Records that are neither (the stream re-publishing under another key, say)."""
    kinds: Counter[str] = field(default_factory=Counter)
    """Distinct valid events by kind (fresh, tie, late, probe)."""

    @property
    def duplicates(self) -> int:
        """Valid records repeating an event already on the topic."""
        return self.sends - len(self.decisions)


def consent_topic(
    settings: KafkaSettings, offsets: Offsets, encoder: Encoder, malformed: set[tuple[int, int]]
) -> OnTopic:
    """Read the consent topic from the beginning to its end now."""
    out = OnTopic()
    group = f"{settings.topic_prefix}bench.faults.readback.{time.time_ns()}"
    for message in read_topic(settings, offsets, settings.topics.consent, group):
        where = (message.partition() or 0, message.offset() or 0)
        decision = encoder.by_value.get(message.value() or b"")
        if decision is not None:
            out.sends += 1
            out.probes += decision.kind == "probe"
            if decision.event_id not in out.decisions:
                out.decisions[decision.event_id] = decision
                out.kinds[decision.kind] += 1
            out.valid_at.append(where)
        elif where in malformed:
            out.malformed += 1
        else:
            out.unknown += 1
    return out
