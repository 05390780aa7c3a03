"""The producers' Prometheus metrics, defined once.

Names and labels are the team's agreed ones; labels are bounded (event type, source,
route template, status code) and never carry a subject, token or any other identifier.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from schemas.runtime.observability import LATENCY_BUCKETS

_created: dict[int, ProducerMetrics] = {}


class ProducerMetrics(NamedTuple):
    """Every collector a producer process exports."""

    events_published: Counter
    gateway_requests: Counter
    gateway_request_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry = REGISTRY) -> ProducerMetrics:
        """The collectors registered in ``registry`` (created once per registry)."""
        existing = _created.get(id(registry))
        if existing is not None:
            return existing
        metrics = cls(
            events_published=Counter(
                "consent_relay_events_published",
                "Consent events the broker acknowledged, by event type and collection source.",
                ["event_type", "source"],
                registry=registry,
            ),
            gateway_requests=Counter(
                "consent_relay_gateway_requests",
                "HTTP gateway requests by route template and status code.",
                ["route", "status"],
                registry=registry,
            ),
            gateway_request_seconds=Histogram(
                "consent_relay_gateway_request_seconds",
                "HTTP gateway request duration by route template (includes the broker ack).",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
        _created[id(registry)] = metrics
        return metrics
