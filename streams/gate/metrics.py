"""Every Prometheus metric the gate process exports, built from one definition.

The names the gate had as a thread of the worker are kept (dashboards and the bench read
them): its data events in ``consent_relay_stream_events_total{event_type="DataEventCaptured"}``,
its dead letters under ``stage="stream.gate"``, its decisions and delay. The rest say
how long batches wait for the consent state and how much of it the gate holds. Labels
are bounded enums, never a person's identifier.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.runtime.observability import LATENCY_BUCKETS


class GateMetrics(NamedTuple):
    """The gate's collectors."""

    events: Counter
    dead_letters: Counter
    decisions: Counter
    delay: Histogram
    coverage_wait: Histogram
    coverage_timeouts: Counter
    subjects: Gauge
    partitions: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GateMetrics:
        """Register every collector in ``registry``."""
        return cls(
            events=Counter(
                "consent_relay_stream_events_total",
                "Events the stream consumed, by type and what became of them.",
                ["event_type", "status"],
                registry=registry,
            ),
            dead_letters=Counter(
                "consent_relay_dead_letters_total",
                "Messages dead-lettered, by stage and error class.",
                ["stage", "reason"],
                registry=registry,
            ),
            decisions=Counter(
                "consent_relay_gate_events_total",
                "Data events the consent gate decided, by decision and purpose.",
                ["decision", "purpose"],
                registry=registry,
            ),
            delay=Histogram(
                "consent_relay_gate_delay_seconds",
                "From a data event's time to the gate's decision.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            coverage_wait=Histogram(
                "consent_relay_gate_coverage_wait_seconds",
                "How long a batch waited for the consent state to cover it.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            coverage_timeouts=Counter(
                "consent_relay_gate_coverage_timeouts_total",
                "Batches decided before intake had applied the consent published before "
                "them (GATE_INTAKE_WAIT_SECONDS passed).",
                registry=registry,
            ),
            subjects=Gauge(
                "consent_relay_gate_subjects",
                "Subjects whose consent state the gate holds (its partitions).",
                registry=registry,
            ),
            partitions=Gauge(
                "consent_relay_gate_partitions",
                "Data partitions assigned to this gate.",
                registry=registry,
            ),
        )
