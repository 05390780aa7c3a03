"""Pieces of the sink runner that need no broker: receipts, settings, metrics, ports,
retries and the one writer of each metric."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message
from prometheus_client import generate_latest

import consumers
from consumers.groups import default_group, legacy_group
from consumers.metrics import SinkMetrics, consumer_lag
from consumers.pipeline.retrying import Retrier
from consumers.pipeline.telemetry import Telemetry
from consumers.protocol import APPLIED, RetriableSinkError, SinkResult
from consumers.publisher import build_receipt, receipt_id
from consumers.runner import DEFAULT_PORTS
from consumers.settings import RunnerSettings
from schemas.errors import ConfigError
from schemas.events import InstructionIssued, Subject
from schemas.runtime.backoff import Backoff
from schemas.runtime.settings import load
from schemas.taxonomy import Action, Outcome, Purpose, Regime, SinkFamily, SubjectKind

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def instruction() -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=Subject(id="subject-1", kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=Action.SUPPRESS,
        purposes=(Purpose.MARKETING_EMAIL,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=T0,
        issued_at=T0,
    )


def test_receipt_carries_the_instruction_and_the_outcome() -> None:
    ins = instruction()
    applied_at = T0 + timedelta(seconds=2)
    receipt = build_receipt(ins, SinkResult(Outcome.SKIPPED, "nothing to do"), applied_at)
    assert receipt.instruction_id == ins.instruction_id
    assert receipt.event_id == ins.event_id
    assert receipt.subject == ins.subject
    assert (receipt.sink_family, receipt.destination) == (SinkFamily.MARKETING, "suppression_list")
    assert (receipt.outcome, receipt.reason) == (Outcome.SKIPPED, "nothing to do")
    assert (receipt.occurred_at, receipt.applied_at) == (T0, applied_at)


def test_receipt_id_is_stable_across_redeliveries_and_differs_by_outcome() -> None:
    ins = instruction()
    first = build_receipt(ins, APPLIED, T0)
    again = build_receipt(ins, APPLIED, T0 + timedelta(minutes=5))
    assert first.receipt_id == again.receipt_id == receipt_id(ins.instruction_id, Outcome.APPLIED)
    assert receipt_id(ins.instruction_id, Outcome.FAILED) != first.receipt_id
    uuid.UUID(first.receipt_id)


def test_runner_settings_load_from_env_and_name_bad_keys() -> None:
    loaded = load(RunnerSettings, "X_SINK_", {"X_SINK_BATCH_SIZE": "10", "X_SINK_HTTP_PORT": "9"})
    assert (loaded.batch_size, loaded.http_port) == (10, 9)
    with pytest.raises(ConfigError) as unknown:
        load(RunnerSettings, "X_SINK_", {"X_SINK_BATCHSIZE": "10"})
    assert unknown.value.key == "X_SINK_BATCHSIZE"
    with pytest.raises(ConfigError) as invalid:
        load(RunnerSettings, "X_SINK_", {"X_SINK_BATCH_SIZE": "ten"})
    assert invalid.value.key == "X_SINK_BATCH_SIZE"
    with pytest.raises(ConfigError, match="X_SINK_BATCH_SIZE"):
        load(RunnerSettings, "X_SINK_", {"X_SINK_BATCH_SIZE": "0"})


def test_every_family_has_its_agreed_port_and_group() -> None:
    assert DEFAULT_PORTS == {
        SinkFamily.MARKETING: 8091,
        SinkFamily.ANALYTICS: 8092,
        SinkFamily.PARTNER_SHARING: 8093,
    }
    assert default_group(SinkFamily.PARTNER_SHARING) == "consent-relay.sink.partner_sharing"


def test_a_deployments_prefix_names_its_sinks_groups() -> None:
    # Two deployments sharing a broker never share a sink's group; without a prefix the
    # name is the one earlier versions used for every deployment.
    assert (
        default_group(SinkFamily.MARKETING, "tenant-a.") == "tenant-a.consent-relay.sink.marketing"
    )
    assert legacy_group(SinkFamily.MARKETING) == default_group(SinkFamily.MARKETING)


def test_metrics_use_the_agreed_names_and_bounded_labels() -> None:
    metrics = SinkMetrics.create()
    metrics.instructions.labels("MARKETING", "suppression_list", "APPLIED").inc()
    metrics.propagation_seconds.labels("MARKETING", "suppression_list").observe(0.2)
    metrics.retries.labels("MARKETING", "suppression_list").inc()
    metrics.dead_letters.labels("sink.marketing", "DecodeError").inc()
    metrics.circuit_breaker_open.labels("suppression_list").set(1)
    metrics.consumer_lag.labels("group", "topic").set(3)
    text = generate_latest(metrics.registry).decode()
    for name in (
        "consent_relay_sink_instructions_total",
        "consent_relay_propagation_seconds_bucket",
        "consent_relay_sink_retries_total",
        "consent_relay_dead_letters_total",
        "consent_relay_circuit_breaker_open",
        "consent_relay_consumer_lag",
    ):
        assert name in text
    assert 'le="60.0"' in text
    # Two runners in one process must not collide in a global registry.
    SinkMetrics.create()


def test_consumer_lag_sums_known_partitions_from_librdkafka_stats() -> None:
    stats = {
        "topics": {
            "t.instructions": {
                "partitions": {
                    "0": {"consumer_lag": 5},
                    "1": {"consumer_lag": 7},
                    "2": {"consumer_lag": -1},
                    "-1": {"consumer_lag": 99},
                }
            },
            "t.unknown": {"partitions": {"0": {"consumer_lag": -1}}},
        }
    }
    assert consumer_lag(stats) == {"t.instructions": 12}
    assert consumer_lag({}) == {}


def telemetry(threshold: int = 3) -> Telemetry:
    return Telemetry(SinkMetrics.create(), SinkFamily.MARKETING, "sink.marketing", threshold)


def gauge(t: Telemetry, destination: str) -> float | None:
    return t.metrics.registry.get_sample_value(
        "consent_relay_circuit_breaker_open", {"destination": destination}
    )


class NoWait:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def wait(self, delay: float, chunk: Sequence[Message]) -> None:
        self.delays.append(delay)


def test_the_breaker_gauge_opens_at_the_threshold_and_closes_on_success() -> None:
    t = telemetry(threshold=3)
    outcomes = iter([RetriableSinkError("down")] * 4 + [None])
    seen: list[float | None] = []

    def attempt() -> str:
        seen.append(gauge(t, "suppression_list"))
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return "done"

    durable, resumed, waits = [], [], NoWait()
    retrier = Retrier(
        Backoff(0.01, 0.02),
        t,
        waits,
        before_wait=lambda: durable.append(1),
        after_recovery=lambda: resumed.append(1),
    )
    assert retrier(attempt, "suppression_list") == "done"
    # No series before the threshold, 1 from the third failure on, 0 once it answered.
    assert seen == [None, None, None, 1, 1]
    assert gauge(t, "suppression_list") == 0
    assert len(waits.delays) == 4
    assert (durable, resumed) == ([1], [1])  # made durable once, before the first wait
    retries = t.metrics.registry.get_sample_value(
        "consent_relay_sink_retries_total",
        {"sink_family": "MARKETING", "destination": "suppression_list"},
    )
    assert retries == 4


def test_only_telemetry_writes_a_sink_metric() -> None:
    # One writer per metric: no other module of consumers/ sets, counts or observes one.
    root = Path(consumers.__file__).parent
    writes = re.compile(
        r"\.(instructions|propagation_seconds|retries|duplicates|dead_letters|"
        r"circuit_breaker_open|consumer_lag|clients_replaced)\.labels\("
    )
    writers = {
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if writes.search(path.read_text(encoding="utf-8"))
    }
    assert writers == {"pipeline/telemetry.py"}
