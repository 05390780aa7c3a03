"""Every Prometheus collector a sink process exposes, built from one definition.

Names and labels are the team's agreed conventions (dashboards and alerts depend on
them). Labels are bounded: sink family, destination, outcome, stage and an error
class, never a person's identifier. A process creates one set (in its own
:class:`~prometheus_client.CollectorRegistry`, so several can live in one test process)
and hands it to each of its runners; they write to it only through
:mod:`consumers.pipeline.telemetry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.runtime.observability import PROPAGATION_BUCKETS

"""Seconds; shared by every latency histogram of the project."""


class SinkMetrics(NamedTuple):
    """The collectors of one sink process."""

    registry: CollectorRegistry
    instructions: Counter
    propagation_seconds: Histogram
    retries: Counter
    duplicates: Counter
    dead_letters: Counter
    circuit_breaker_open: Gauge
    consumer_lag: Gauge
    clients_replaced: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> SinkMetrics:
        """Register every collector in ``registry`` (a fresh one by default)."""
        registry = CollectorRegistry() if registry is None else registry
        return cls(
            registry=registry,
            instructions=Counter(
                "consent_relay_sink_instructions_total",
                "Instructions a sink finished, by outcome (APPLIED, SKIPPED, FAILED).",
                ["sink_family", "destination", "outcome"],
                registry=registry,
            ),
            propagation_seconds=Histogram(
                "consent_relay_propagation_seconds",
                "Event time of the consent choice to its effect being durable downstream.",
                ["sink_family", "destination"],
                buckets=PROPAGATION_BUCKETS,
                registry=registry,
            ),
            retries=Counter(
                "consent_relay_sink_retries_total",
                "Retries after a retriable downstream failure.",
                ["sink_family", "destination"],
                registry=registry,
            ),
            duplicates=Counter(
                "consent_relay_sink_duplicates_total",
                "Instructions already answered, dropped with no second effect or receipt.",
                ["sink_family", "destination"],
                registry=registry,
            ),
            dead_letters=Counter(
                "consent_relay_dead_letters_total",
                "Messages sent to the dead-letter topic, by stage and error class.",
                ["stage", "reason"],
                registry=registry,
            ),
            circuit_breaker_open=Gauge(
                "consent_relay_circuit_breaker_open",
                "1 while a destination keeps failing and instructions wait, else 0.",
                ["destination"],
                registry=registry,
            ),
            consumer_lag=Gauge(
                "consent_relay_consumer_lag",
                "Messages not yet committed by the group, summed over partitions.",
                ["group", "topic"],
                registry=registry,
            ),
            clients_replaced=Counter(
                "consent_relay_kafka_clients_replaced_total",
                "Kafka clients replaced because they had forgotten every broker "
                "(schemas.runtime.broker_loss), by client: the sink's group, or its producer.",
                ["client"],
                registry=registry,
            ),
        )


def consumer_lag(stats: Mapping[str, Any]) -> dict[str, int]:
    """Topic → summed consumer lag from librdkafka's statistics JSON (parsed).

    Partitions whose lag is unknown yet (-1) and the internal ``-1`` partition are
    left out; a topic with no known lag is absent.
    """
    lags: dict[str, int] = {}
    for topic, info in stats.get("topics", {}).items():
        known = [
            int(p.get("consumer_lag", -1))
            for name, p in info.get("partitions", {}).items()
            if name != "-1"
        ]
        known = [lag for lag in known if lag >= 0]
        if known:
            lags[topic] = sum(known)
    return lags
