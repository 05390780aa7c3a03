"""What one consent event costs the relay: Kafka records written, and CPU per process.

Records: the end offset of every topic named with the phase's prefix (instruction
topics, receipts, propagated, state, dead letters, the stream worker's table
changelogs, whatever the relay under test creates) is read before the phase's warm-up
and after the relay caught up; the difference is the records appended (no relay
producer is transactional, so no offset is a commit marker). The input topics the load
generator writes (consent events, data events) are shown but not counted as the
relay's. Offset commits (``__consumer_offsets``) are not counted: that topic is shared
with everything else on the broker.

CPU: the seconds each process used over the same span (:func:`deploy.bench.phases.cpu_meter`)
divided by the consent events published in the phase, in milliseconds. The whole relay
is every relay process plus the broker and the registry; the partner receiver (standing
in for the partners' own systems) and the load generator are outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from deploy.bench.offsets import Offsets

LOAD_GENERATOR: Final = "load generator (bench)"
PARTNER_RECEIVER: Final = "partner-receiver"
OUTSIDE_RELAY: Final = frozenset({LOAD_GENERATOR, PARTNER_RECEIVER})
RELAY_TOTAL: Final = "whole relay"


def topic_ends(offsets: Offsets, prefix: str) -> dict[str, int]:
    """Every ``prefix…`` topic on the broker → the sum of its partitions' end offsets."""
    ends: dict[str, int] = {}
    for (topic, _), end in offsets.watermarks(offsets.topics(prefix)).items():
        ends[topic] = ends.get(topic, 0) + end
    return ends


def records_written(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Records appended per topic between two :func:`topic_ends` (a new topic from 0)."""
    return {topic: end - before.get(topic, 0) for topic, end in sorted(after.items())}


def records_summary(
    written: Mapping[str, int], events: int, prefix: str, inputs: Iterable[str]
) -> dict[str, object]:
    """Records per topic (prefix dropped), the relay's total and its total per consent event."""
    inputs = set(inputs)
    relay = {t.removeprefix(prefix): n for t, n in written.items() if t not in inputs}
    total = sum(relay.values())
    return {
        "by_topic": relay,
        "inputs": {t.removeprefix(prefix): n for t, n in written.items() if t in inputs},
        "total": total,
        "per_event": round(total / events, 3) if events else None,
    }


def cpu_ms_per_event(
    cpu_seconds: Mapping[str, float | None], events: int
) -> dict[str, float | None]:
    """Each process's CPU ms per consent event, and :data:`RELAY_TOTAL` (relay processes,
    broker and registry; None when no process of the relay could be read)."""
    if not events:
        return {}
    out: dict[str, float | None] = {
        name: None if used is None else round(1000 * used / events, 3)
        for name, used in cpu_seconds.items()
    }
    relay = [v for k, v in cpu_seconds.items() if k not in OUTSIDE_RELAY and v is not None]
    out[RELAY_TOTAL] = round(1000 * sum(relay) / events, 3) if relay else None
    return out
