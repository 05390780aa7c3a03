"""The worker's Faust monitor exports exactly what Faust's Prometheus monitor does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from streams.engine.monitor import RelayMonitor


class FakeTask:
    pass


class FakeStream:
    shortlabel = "Stream: Topic: bench.consent.events"
    task_owner = FakeTask()


def feed(monitor: PrometheusMonitor) -> None:
    """The calls Faust makes for fetched, streamed and sent messages, with a
    rebalance (which drops the topic and partition series) in the middle."""
    app = SimpleNamespace(rebalancing_count=1)
    stream = FakeStream()

    def traffic(first: int) -> None:
        for offset in range(first, first + 5):
            for partition in (0, 3):
                tp = TP("t.consent.events", partition)
                monitor.track_tp_end_offset(tp, offset + 10)
                monitor.on_message_in(tp, offset, SimpleNamespace(time_in=None))
                monitor.on_stream_event_in(tp, offset, stream, Any)  # type: ignore[arg-type]
                monitor.on_send_initiated(None, "t.consent.state", None, 3, 40)  # type: ignore[arg-type]

    traffic(0)
    state = monitor.on_rebalance_start(app)  # type: ignore[arg-type]
    traffic(5)
    monitor.on_rebalance_end(app, state)  # type: ignore[arg-type]
    traffic(10)


def exported(monitor_type: type[PrometheusMonitor]) -> list[str]:
    registry = CollectorRegistry()
    feed(monitor_type(metrics=FaustMetrics.create(registry, "x")))
    lines = generate_latest(registry).decode().splitlines()
    # Latency histograms observe wall-clock times; compare everything else.
    return [line for line in lines if "latency" not in line and "_created" not in line]


def test_same_series_and_values_as_faust_prometheus_monitor() -> None:
    ours = exported(RelayMonitor)
    assert ours == exported(PrometheusMonitor)
    # Only what came after the rebalance's end: the series were dropped twice.
    assert 'x_messages_received_per_topic_total{topic="t.consent.events"} 10.0' in ours
    assert 'x_topic_partition_end_offset{partition="3",topic="t.consent.events"} 24.0' in ours
    assert (
        'x_total_events_per_stream_total{stream="stream.topic_bench.consent.events.events"} 30.0'
        in ours
    )
