"""The consent gate as its own process (``python -m streams.gate``) beside a stream worker,
against the real broker: data flows only where consent allowed it at the time the data
was produced, it waits until intake has applied the consent published before the data,
and the rule holds across a kill, a restart without the worker and a rebalance."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from schemas.events import DeadLettered
from schemas.taxonomy import Choice, Purpose, Regime, Right
from tests.support.processes import free_port, log_tail, relay_process

DATA = "DataEventCaptured"
EMAIL = Purpose.MARKETING_EMAIL


@dataclass
class GateProcess:
    """One ``python -m streams.gate``."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Any

    def kill(self) -> None:
        """SIGKILL: no chance to commit or flush anything."""
        self.popen.kill()
        self.popen.wait(10)


class Gates:
    """Starts gate processes on a stream kit's topics; stops them at the end."""

    def __init__(self, kit: Any, stack: ExitStack) -> None:
        self.kit = kit
        self.stack = stack
        self.started: list[GateProcess] = []

    def start(self, **extra_env: str) -> GateProcess:
        port = free_port()
        log = self.kit.tmp / f"gate-{len(self.started)}-{port}.log"
        env = {
            **self.kit.env,
            "GATE_STREAM_APP_ID": self.kit.app_id,
            "GATE_HTTP_PORT": str(port),
            "GATE_SESSION_TIMEOUT_SECONDS": "8",
            **extra_env,
        }
        url = f"http://127.0.0.1:{port}"
        popen = self.stack.enter_context(
            relay_process("streams.gate", env, log, ready_url=f"{url}/metrics")
        )
        gate = GateProcess(popen, url, log)
        self.started.append(gate)
        return gate

    def counted(self, *statuses: str) -> float:
        """Data events the running gates have counted with these statuses."""
        total = 0.0
        for gate in self.started:
            if gate.popen.poll() is None:
                for status in statuses:
                    found = self.kit.metric(
                        gate.url,
                        "consent_relay_stream_events_total",
                        event_type=DATA,
                        status=status,
                    )
                    total += found or 0
        return total

    def check(self) -> None:
        """Fail at once if a gate died that nobody killed."""
        for gate in self.started:
            code = gate.popen.poll()
            if code not in (None, -9):
                pytest.fail(f"gate exited with {code}:\n{log_tail(gate.log)}")


@pytest.fixture
def gates(stream_kit: Any) -> Iterator[Gates]:
    with ExitStack() as stack:
        yield Gates(stream_kit, stack)


def test_gate_lets_through_only_consented_data(stream_kit: Any, gates: Gates, events: Any) -> None:
    kit = stream_kit
    topics = kit.topics
    ago = events.ago
    gdpr = events.subject()
    stranger = events.subject()
    ccpa = events.subject()
    restricted = events.subject()

    consent = [
        events.changed(gdpr, Choice.GRANTED, EMAIL, at=ago(100)),
        events.changed(gdpr, Choice.WITHDRAWN, EMAIL, at=ago(50)),
        events.changed(ccpa, Choice.GRANTED, Purpose.COOKIES_STATISTICS, regime=Regime.CCPA),
        events.right(ccpa, Right.OPT_OUT_OF_SALE_OR_SHARING, regime=Regime.CCPA, at=ago(40)),
        events.right(restricted, Right.RESTRICT_PROCESSING, at=ago(30)),
    ]
    allowed = {
        "while granted": events.data(gdpr, EMAIL, at=ago(80)),
        "contract, unknown subject": events.data(stranger, Purpose.ACCOUNT_MANAGEMENT),
        "legitimate interest, not objected": events.data(stranger, Purpose.RESEARCH_AND_STATISTICS),
        "opt-out regime, nothing recorded": events.data(ccpa, Purpose.MARKETING_SMS),
        "before the opt-out": events.data(ccpa, Purpose.SHARE_WITH_BUSINESS_PARTNERS, at=ago(45)),
        "before the restriction": events.data(restricted, Purpose.ACCOUNT_MANAGEMENT, at=ago(60)),
    }
    dropped = {
        "after the withdrawal": events.data(gdpr, EMAIL, at=ago(10)),
        "before any grant (opt-in)": events.data(gdpr, EMAIL, at=ago(200)),
        "unknown subject, opt-in default": events.data(stranger, EMAIL),
        "after the opt-out": events.data(ccpa, Purpose.SHARE_WITH_BUSINESS_PARTNERS),
        "while restricted": events.data(restricted, Purpose.ACCOUNT_MANAGEMENT, at=ago(5)),
    }
    kit.start_worker()
    gate = gates.start()
    # Consent and data arrive together: the gate must still see the withdrawals first.
    kit.publish(*consent)
    kit.publish(*allowed.values(), *dropped.values(), topic=topics.data_events)
    kit.publish_raw(topics.data_events, b"\x00\x7f\xff\xff\xf0garbage", key=b"x")

    out = kit.reader(topics.data_allowed)
    dead = kit.reader(topics.dead_letters)
    wanted = {e.event_id for e in allowed.values()}
    kit.wait_until(lambda: gates.check() or wanted <= {e.event_id for e in out.poll(0.3)})
    kit.wait_until(lambda: dead.poll(0.3))
    total = len(allowed) + len(dropped)
    kit.wait_until(lambda: gates.counted("allowed", "dropped") == total)
    passed = {e.event_id: e for e in out.poll(0.5)}
    leaked = [name for name, e in dropped.items() if e.event_id in passed]
    assert leaked == []
    assert set(passed) == wanted
    letter: DeadLettered = dead.records[0]
    assert letter.stage == "stream.gate"
    assert letter.source_topic == topics.data_events
    withdrawn = {"decision": "withdrawn", "purpose": EMAIL.value}
    assert kit.metric(gate.url, "consent_relay_gate_events_total", **withdrawn) == 1
    assert kit.metric(gate.url, "consent_relay_gate_delay_seconds_count") == total
    assert (kit.metric(gate.url, "consent_relay_gate_coverage_wait_seconds_count") or 0) >= 1
    assert kit.metric(gate.url, "consent_relay_gate_partitions") == kit.settings.partitions


def test_data_after_a_withdrawal_waits_until_intake_has_applied_it(
    stream_kit: Any, gates: Gates, events: Any
) -> None:
    kit = stream_kit
    topics = kit.topics
    ago = events.ago
    subject = events.subject()
    worker = kit.start_worker()
    gates.start(GATE_INTAKE_WAIT_SECONDS="120")
    out = kit.reader(topics.data_allowed)
    kit.publish(events.changed(subject, Choice.GRANTED, EMAIL, at=ago(100)))
    state = kit.reader(topics.state)
    kit.wait_until(lambda: state.poll(0.3))  # the grant is applied: the gate can have it
    granted = events.data(subject, EMAIL, at=ago(90))
    kit.publish(granted, topic=topics.data_events)
    kit.wait_until(lambda: gates.check() or granted.event_id in {e.event_id for e in out.poll(0.3)})

    # Intake stops; a withdrawal is published, then data produced after it and before it.
    worker.stop()
    kit.publish(events.changed(subject, Choice.WITHDRAWN, EMAIL, at=ago(50)))
    after = events.data(subject, EMAIL)
    before = events.data(subject, EMAIL, at=ago(60))
    kit.publish(after, before, topic=topics.data_events)
    # The gate's state still says "granted", but it has not seen the withdrawal applied.
    time.sleep(4)
    assert {e.event_id for e in out.poll(0.5)} == {granted.event_id}
    kit.start_worker()
    kit.wait_until(lambda: gates.check() or before.event_id in {e.event_id for e in out.poll(0.3)})
    kit.wait_until(lambda: gates.counted("allowed", "dropped") == 3)
    assert after.event_id not in {e.event_id for e in out.poll(1.0)}


def test_a_killed_gate_loses_nothing_and_its_successors_keep_the_rule(
    stream_kit: Any, gates: Gates, events: Any
) -> None:
    kit = stream_kit
    topics = kit.topics
    ago = events.ago
    withdrawn, consenting = events.subject(), events.subject()
    kit.publish(
        events.changed(withdrawn, Choice.GRANTED, EMAIL, at=ago(100)),
        events.changed(withdrawn, Choice.WITHDRAWN, EMAIL, at=ago(50)),
        events.changed(consenting, Choice.GRANTED, EMAIL, at=ago(100)),
    )
    worker = kit.start_worker()
    # One event a batch, so the kill below lands while the backlog is being worked
    # through (the gate does not wait for a batch's acknowledgements before the next:
    # ten at a time, it was through the backlog before the kill).
    first = gates.start(GATE_BATCH_SIZE="1")
    kit.publish(
        events.data(withdrawn, EMAIL), events.data(consenting, EMAIL), topic=topics.data_events
    )
    kit.publish_raw(topics.data_events, b"\x00\x7f\xff\xff\xf0garbage", key=b"bad")
    source = kit.reader(topics.data_events, decode=False)
    kit.wait_until(lambda: len(source.poll(0.3)) == 3)
    garbage_at = source.coordinates[source.records.index(b"\x00\x7f\xff\xff\xf0garbage")]
    dead = kit.reader(topics.dead_letters)
    kit.wait_until(lambda: gates.check() or dead.poll(0.3))
    letter: DeadLettered = dead.records[0]
    assert (letter.stage, letter.source_topic) == ("stream.gate", topics.data_events)
    assert (letter.source_partition, letter.source_offset) == garbage_at
    assert letter.original_value == b"\x00\x7f\xff\xff\xf0garbage"

    # A backlog, and the gate SIGKILLed while it works through it.
    backlog = [events.data(s, EMAIL) for _ in range(1500) for s in (withdrawn, consenting)]
    out = kit.reader(topics.data_allowed)
    kit.wait_until(lambda: len(out.poll(0.3)) == 1)
    kit.publish(*backlog, topic=topics.data_events)
    kit.wait_until(lambda: len(out.poll(0.1)) > 1)
    first.kill()
    seen_before_kill = len(out.records)
    # The workers stop too: the successors know consent only from the state changelog.
    worker.stop()
    gates.start(GATE_BATCH_SIZE="10")
    gates.start(GATE_BATCH_SIZE="10")  # and share the partitions: a rebalance

    wanted = {e.event_id for e in backlog if e.subject == consenting}
    kit.wait_until(
        lambda: gates.check() or wanted <= {e.event_id for e in out.poll(0.5)},
        timeout=120,
        describe=lambda: f"{len(wanted - {e.event_id for e in out.records})} missing",
    )
    assert {e.subject.id for e in out.poll(1.0)} == {consenting.id}
    assert seen_before_kill < len(wanted)  # the successors did part of it
    # The gate's group has committed exactly past every data event, garbage included.
    admin = AdminClient(kit.settings.admin_config())
    group = f"{kit.app_id_full}-gate"

    def committed() -> int:
        request = [ConsumerGroupTopicPartitions(group)]
        found = admin.list_consumer_group_offsets(request)[group].result().topic_partitions
        return sum(tp.offset for tp in found or () if tp.topic == topics.data_events)

    kit.wait_until(lambda: committed() == 3 + len(backlog), describe=lambda: str(committed()))
