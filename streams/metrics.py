"""Every Prometheus metric the stream worker exports, built from one definition.

Names and labels are the team's agreed ones (operators' dashboards depend on them);
labels are bounded enums or routing-file names, never a person's identifier. Hot paths
count into a :class:`Tally` per batch and add it once, instead of a labelled increment
per event.
"""

from __future__ import annotations

from collections import Counter as Counts
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.runtime.observability import PROPAGATION_BUCKETS

"""Full propagation waits on every sink, so it also gets minute-scale buckets."""


class StreamMetrics(NamedTuple):
    """The stream worker's collectors."""

    events: Counter
    instructions: Counter
    dead_letters: Counter
    pending_withdrawals: Gauge
    oldest_pending_age: Gauge
    fully_propagated: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StreamMetrics:
        """Register every collector in ``registry``."""
        return cls(
            events=Counter(
                "consent_relay_stream_events_total",
                "Events the stream consumed, by type and what became of them.",
                ["event_type", "status"],
                registry=registry,
            ),
            instructions=Counter(
                "consent_relay_instructions_total",
                "Instructions issued to sink destinations.",
                ["sink_family", "destination", "action"],
                registry=registry,
            ),
            dead_letters=Counter(
                "consent_relay_dead_letters_total",
                "Messages dead-lettered, by stage and error class.",
                ["stage", "reason"],
                registry=registry,
            ),
            pending_withdrawals=Gauge(
                "consent_relay_pending_withdrawals",
                "Withdrawals and rights requests not yet honoured by every destination"
                " (this worker's partitions).",
                registry=registry,
            ),
            oldest_pending_age=Gauge(
                "consent_relay_oldest_pending_withdrawal_age_seconds",
                "Event-time age of the oldest pending withdrawal (this worker's partitions).",
                registry=registry,
            ),
            fully_propagated=Histogram(
                "consent_relay_fully_propagated_seconds",
                "From a withdrawal's event time to its FullyPropagated.",
                buckets=PROPAGATION_BUCKETS,
                registry=registry,
            ),
        )


class Tally:
    """Per-batch counts, added to the collectors in one go."""

    __slots__ = ("dead_letters", "events", "instructions")

    def __init__(self) -> None:
        self.events: Counts[tuple[str, str]] = Counts()
        self.instructions: Counts[tuple[str, str, str]] = Counts()
        self.dead_letters: Counts[tuple[str, str]] = Counts()

    def flush(self, metrics: StreamMetrics) -> None:
        """Add the counts to ``metrics`` and reset."""
        for counts, counter in (
            (self.events, metrics.events),
            (self.instructions, metrics.instructions),
            (self.dead_letters, metrics.dead_letters),
        ):
            for labels, n in counts.items():
                counter.labels(*labels).inc(n)
            counts.clear()
