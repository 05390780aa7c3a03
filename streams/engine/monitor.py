"""Faust's own metrics (``consent_relay_faust_*``), at a fraction of their cost per message.

Faust calls its monitor several times for every message it reads (fetched, handed to a
stream, taken, acknowledged) and for every message it sends. Faust's
``PrometheusMonitor`` looks up a labelled child (``.labels(...)``: label checks, a
tuple, a lock) on most of those calls and normalises the stream's name with a regular
expression on every event: in the worker's profile at full speed, about a tenth of its
CPU. :class:`RelayMonitor` publishes the same metrics under the same names and labels,
but keeps each labelled child it has used and reuses it; the children are forgotten
whenever Faust removes its topic and partition series (at the start and the end of a
rebalance), so nothing is written to a series Faust has dropped.

:func:`install_faust_metrics` puts it on the app and serves the registry on ``/metrics``, as Faust's
``setup_prometheus_sensors`` does (which would install the uncached monitor).
"""

from __future__ import annotations

from typing import Any, cast

import faust
from aiohttp.web import Response
from faust import web
from faust.sensors.monitor import RE_NORMALIZE, RE_NORMALIZE_SUBSTITUTION, Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, AppT, EventT, Message, PendingMessage, StreamT
from faust.types.transports import ProducerT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class RelayMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor with its labelled children kept between calls."""

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self.relay_metrics = metrics
        self.relay_children: dict[tuple[str, Any], Any] = {}

    def relay_child(self, metric: str, labels: tuple[tuple[str, Any], ...]) -> Any:
        """The child of ``metric`` (a FaustMetrics field) for ``labels``, kept."""
        child = self.relay_children.get((metric, labels))
        if child is None:
            child = getattr(self.relay_metrics, metric).labels(**dict(labels))
            self.relay_children[(metric, labels)] = child
        return child

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        """A message is about to be handed to the streams."""
        Monitor.on_message_in(self, tp, offset, message)
        metrics = self.relay_metrics
        metrics.messages_received.inc()
        metrics.active_messages.inc()
        self.relay_child("messages_received_per_topics", (("topic", tp.topic),)).inc()
        self.relay_child(
            "messages_received_per_topics_partition",
            (("topic", tp.topic), ("partition", tp.partition)),
        ).set(offset)

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        """A stream starts on an event."""
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        metrics = self.relay_metrics
        metrics.total_events.inc()
        metrics.total_active_events.inc()
        child = self.relay_children.get(("total_events_per_stream", stream))
        if child is None:
            # PrometheusMonitor's label, made once per stream instead of once per event.
            name = RE_NORMALIZE.sub(RE_NORMALIZE_SUBSTITUTION, stream.shortlabel.lstrip("Stream:"))
            label = name.strip("_").lower()
            child = metrics.total_events_per_stream.labels(stream=f"stream.{label}.events")
            self.relay_children[("total_events_per_stream", stream)] = child
        child.inc()
        return state

    def on_send_initiated(
        self,
        producer: ProducerT,
        topic: str,
        message: PendingMessage,
        keysize: int,
        valsize: int,
    ) -> Any:
        """A message is handed to the producer."""
        self.relay_child("topic_messages_sent", (("topic", f"topic.{topic}"),)).inc()
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        """The end offset of a partition, seen with each fetched message."""
        Monitor.track_tp_end_offset(self, tp, offset)
        self.relay_child(
            "topic_partition_end_offset", (("topic", tp.topic), ("partition", tp.partition))
        ).set(offset)

    def on_rebalance_start(self, app: AppT) -> dict[str, Any]:
        """Faust removes its topic and partition series here: forget their children."""
        state: dict[str, Any] = super().on_rebalance_start(app)
        self.relay_children.clear()
        return state

    def on_rebalance_end(self, app: AppT, state: dict[str, Any]) -> None:
        """And here again."""
        super().on_rebalance_end(app, state)
        self.relay_children.clear()


def install_faust_metrics(
    app: faust.App, *, registry: CollectorRegistry, name_prefix: str
) -> RelayMonitor:
    """Put a :class:`RelayMonitor` on ``app`` and serve ``registry`` on ``/metrics``."""
    monitor = RelayMonitor(metrics=FaustMetrics.create(registry, name_prefix))
    app.monitor = monitor

    @app.page("/metrics")
    async def metrics_handler(self: web.View, request: web.Request) -> web.Response:
        body = generate_latest(registry)
        # aiohttp's Response is what Faust's aiohttp web driver serves (as Faust's
        # own setup_prometheus_sensors returns it).
        return cast(
            web.Response,
            Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}, status=200),
        )

    return monitor
