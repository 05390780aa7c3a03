"""The one writer of every sink metric (:class:`~consumers.metrics.SinkMetrics`).

A process creates one :class:`~consumers.metrics.SinkMetrics` and hands it to each of its
pipelines (the partner process: one for all its partners, told apart by the
``destination`` label); each pipeline writes through its :class:`Telemetry`. The
circuit-breaker gauge is set here only, from the retries a destination needed: 1 once
``breaker_threshold`` consecutive attempts failed, 0 once one succeeds again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from prometheus_client.metrics import MetricWrapperBase

from consumers.metrics import SinkMetrics, consumer_lag
from schemas.events import InstructionIssued
from schemas.taxonomy import Outcome, SinkFamily

M = TypeVar("M", bound=MetricWrapperBase)


def record_lag(metrics: SinkMetrics, group: str, stats: Mapping[str, Any]) -> None:
    """Set the group's consumer lag per topic from librdkafka's statistics."""
    for topic, lag in consumer_lag(stats).items():
        metrics.consumer_lag.labels(group, topic).set(lag)


def replaced_counter(metrics: SinkMetrics, client: str) -> Callable[[], None]:
    """What counts one replacement of the Kafka client ``client``."""
    return metrics.clients_replaced.labels(client).inc


class Telemetry:
    """One pipeline's writes to the process's metrics."""

    def __init__(
        self, metrics: SinkMetrics, family: SinkFamily, stage: str, breaker_threshold: int
    ) -> None:
        self.metrics = metrics
        self._family = family.value
        self._stage = stage
        self._threshold = breaker_threshold
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        """Labelled metrics already looked up (:meth:`_labelled`)."""

    def finished(
        self, instruction: InstructionIssued, outcome: Outcome, applied_at: datetime
    ) -> None:
        """Count an instruction's outcome; an applied one's propagation time too."""
        family, destination = instruction.sink_family.value, instruction.destination
        self._labelled(self.metrics.instructions, family, destination, outcome.value).inc()
        if outcome is Outcome.APPLIED:
            self._labelled(self.metrics.propagation_seconds, family, destination).observe(
                max(0.0, (applied_at - instruction.occurred_at).total_seconds())
            )

    def duplicate(self, instruction: InstructionIssued) -> None:
        """Count an instruction dropped as already answered."""
        family, destination = instruction.sink_family.value, instruction.destination
        self._labelled(self.metrics.duplicates, family, destination).inc()

    def dead_lettered(self, error: Exception) -> None:
        """Count a dead letter the publisher took."""
        self.metrics.dead_letters.labels(self._stage, type(error).__name__).inc()

    def watch(self, destination: str) -> None:
        """Show ``destination``'s breaker as closed before anything happened."""
        self.metrics.circuit_breaker_open.labels(destination).set(0)

    def failed(self, destination: str, failures: int) -> None:
        """Count a retry; ``failures`` in a row open the breaker gauge at the threshold."""
        self.metrics.retries.labels(self._family, destination).inc()
        if failures >= self._threshold:
            self.metrics.circuit_breaker_open.labels(destination).set(1)

    def recovered(self, destination: str) -> None:
        """``destination`` answered again after failures: its breaker gauge closes."""
        self.metrics.circuit_breaker_open.labels(destination).set(0)

    def _labelled(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, kept: looking a child up costs more than counting."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(M, child)
