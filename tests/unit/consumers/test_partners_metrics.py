"""One /metrics page for several partner pipelines: families once, same series summed."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumers.metrics import SinkMetrics
from consumers.partners.metrics import merged_registry


def test_merged_registry_lists_each_family_once_and_sums_shared_series() -> None:
    a, b = SinkMetrics.create(), SinkMetrics.create()
    a.instructions.labels("PARTNER_SHARING", "criteo", "APPLIED").inc(2)
    b.instructions.labels("PARTNER_SHARING", "google", "APPLIED").inc(3)
    a.dead_letters.labels("sink.partner_sharing", "DecodeError").inc()
    b.dead_letters.labels("sink.partner_sharing", "DecodeError").inc()
    a.circuit_breaker_open.labels("criteo").set(1)
    b.circuit_breaker_open.labels("google").set(0)
    a.propagation_seconds.labels("PARTNER_SHARING", "criteo").observe(0.2)

    text = generate_latest(merged_registry([a.registry, b.registry])).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.count("# TYPE consent_relay_sink_instructions_total") == 1

    def value(family: str, name: str, **labels: str) -> float:
        return next(
            s.value for s in families[family].samples if s.name == name and s.labels == labels
        )

    instructions = "consent_relay_sink_instructions"
    assert (
        value(
            instructions,
            instructions + "_total",
            sink_family="PARTNER_SHARING",
            destination="google",
            outcome="APPLIED",
        )
        == 3
    )
    dead = "consent_relay_dead_letters"
    assert value(dead, dead + "_total", stage="sink.partner_sharing", reason="DecodeError") == 2
    gauge = "consent_relay_circuit_breaker_open"
    assert value(gauge, gauge, destination="criteo") == 1
    assert value(gauge, gauge, destination="google") == 0
    histogram = "consent_relay_propagation_seconds"
    assert (
        value(
            histogram,
            histogram + "_count",
            sink_family="PARTNER_SHARING",
            destination="criteo",
        )
        == 1
    )
