"""Pieces of the sink runner that need no broker: receipts, settings, metrics, ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from consumers.groups import default_group, legacy_group
from consumers.metrics import SinkMetrics, consumer_lag
from consumers.protocol import APPLIED, SinkResult
from consumers.publisher import build_receipt, receipt_id
from consumers.runner import DEFAULT_PORTS
from consumers.settings import RunnerSettings
from schemas.errors import ConfigError
from schemas.events import InstructionIssued, Subject
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
