"""A broker lost mid-stream: on a three-broker cluster, SIGKILL the leader of the consent
topic's partition 0 while withdrawals flow, and lose and misapply nothing.

The cluster is this module's own (``deploy/local.py`` with three nodes on free ports,
started once and owned by the test process), never the shared broker. The relay's
topics on it have three replicas and ``min.insync.replicas=2`` (derived from the
cluster); the stream worker, the marketing sink and the partner sink (webhooks to a
local receiver) run as processes, as in ``test_recovery.py``, whose helpers this reuses.

A publisher sends, for a fresh subject at a time, a grant and then a withdrawal of
marketing e-mail and sharing with business partners (idempotent, ``acks=all``: the
client of ``producers.client``). Five seconds in, the broker leading consent partition
0 is SIGKILLed; publishing goes on. The test then asserts that every acknowledged
withdrawal was honoured by both sinks (an APPLIED receipt from each), that the marketing
store holds every subject suppressed (a grant in force would be a misapplication, a
missing row a loss), that no publish failed and that every relay process ran through
without a restart. It prints the seconds from the kill to the next withdrawal honoured
(the target is 10 s; a generous 60 s is asserted) and the longest wait of any
withdrawal. The seconds are as seen by a reader of the receipts topic, which rides the
same failover, so they include its own.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from producers import builders
from producers.client import ConsentClient
from producers.publisher import Published
from schemas.registry import register_all
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import PURPOSE_SPECS, Purpose, SinkFamily
from tests.integration.test_recovery import (  # noqa: F401 - fixtures used by name
    BOUND_S,
    PARTNER_PURPOSE,
    PrivateStack,
    Relay,
    Watch,
    _running,
    receiver,
    relay,
)
from tests.support.processes import load_local_stack

BROKERS = 3
PER_SECOND = 10
"""Subjects a second, each a grant and a withdrawal: a steady stream, light on 2 cores."""
BEFORE_KILL_S = 5.0
AFTER_KILL_S = 20.0
"""Longer than the controller's 6 s fencing of the lost node plus the clients' reaction."""
TARGET_S = 10.0
PURPOSES = (Purpose.MARKETING_EMAIL, PARTNER_PURPOSE)
FAMILIES = (SinkFamily.MARKETING, SinkFamily.PARTNER_SHARING)


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    """Three KRaft nodes and a registry of this module's own (overrides the one-broker
    stack the imported ``relay`` fixture would otherwise get)."""
    local = load_local_stack()
    state_dir = tmp_path_factory.mktemp("cluster-stack")
    ports = local.pick_free_ports(2 * BROKERS + 1)
    endpoints = local.start(
        state_dir,
        ports[:BROKERS],
        ports[BROKERS : 2 * BROKERS],
        ports[-1],
        brokers=BROKERS,
        owned=True,
        log=print,
    )
    try:
        settings = KafkaSettings(bootstrap=endpoints.bootstrap, registry_url=endpoints.registry_url)
        with settings.registry_client() as client:
            register_all(client)
        yield PrivateStack(local, state_dir, endpoints.bootstrap, endpoints.registry_url)
    finally:
        local.stop(state_dir, log=print)


@dataclass
class Sent:
    """One subject's withdrawal: when it was handed to the client, and its acknowledgement."""

    subject: str
    at: float
    withdrawal: Future[Published]
    acked: list[float] = field(default_factory=list)
    """When the broker acknowledged it (monotonic), once it has."""

    def __post_init__(self) -> None:
        self.withdrawal.add_done_callback(lambda _f: self.acked.append(time.monotonic()))


@dataclass
class Publisher:
    """Grants then withdrawals of fresh subjects, :data:`PER_SECOND` a second, in a thread."""

    settings: KafkaSettings
    sent: list[Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Publisher:
        self._thread = threading.Thread(target=self._publish, name="publisher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(120)

    def _publish(self) -> None:
        with ConsentClient(self.settings) as client:
            while not self._stop.wait(1 / PER_SECOND):
                subject = f"cluster-{uuid.uuid4().hex[:10]}"
                client.send(builders.grant(subject, PURPOSES))
                at = time.monotonic()
                self.sent.append(
                    Sent(subject, at, client.send(builders.withdraw(subject, PURPOSES)))
                )


def _leader(settings: KafkaSettings, topic: str, partition: int) -> int:
    metadata = AdminClient(settings.admin_config()).list_topics(topic, timeout=30)
    return int(metadata.topics[topic].partitions[partition].leader)


def _replication(settings: KafkaSettings, topic: str) -> dict[int, list[int]]:
    """Partition → its replicas."""
    metadata = AdminClient(settings.admin_config()).list_topics(topic, timeout=30)
    return {n: list(p.replicas) for n, p in metadata.topics[topic].partitions.items()}


def _node_pid(stack: PrivateStack, node_id: int) -> int:
    name = stack.local.node_names(BROKERS)[node_id - 1]
    (node,) = [s for s in stack.local.status(stack.state_dir) if s.name == name]
    assert node.running, f"{name} is not running"
    return int(node.pid)


def _marketing_cells(database: Path, subjects: list[str]) -> dict[str, bool]:
    """Subject → whether marketing e-mail is suppressed, for subjects the store holds."""
    channel = PURPOSE_SPECS[Purpose.MARKETING_EMAIL].channel
    assert channel is not None
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT subject_id, suppressed FROM suppressions WHERE channel = ? AND purpose = ?",
            (channel.value, Purpose.MARKETING_EMAIL.value),
        ).fetchall()
    wanted = set(subjects)
    return {subject: bool(suppressed) for subject, suppressed in rows if subject in wanted}


def test_a_broker_lost_mid_stream_loses_and_misapplies_nothing(
    relay: Relay,  # noqa: F811 - the fixture imported above
    private_stack: PrivateStack,
    tmp_path: Path,
) -> None:
    settings = relay.settings
    _running(relay, relay.worker, relay.sink, relay.partners)
    # After the warm-up: right after creation a broker may not list the topic yet.
    replicas = _replication(settings, settings.topics.consent)
    assert {len(r) for r in replicas.values()} == {BROKERS}, replicas
    with Watch(settings) as watch:
        with Publisher(settings) as publisher:
            until = time.monotonic() + BEFORE_KILL_S
            while time.monotonic() < until:
                watch.read()
            leader = _leader(settings, settings.topics.consent, 0)
            controller = private_stack.local.active_controller(private_stack.state_dir)
            os.kill(_node_pid(private_stack, leader), signal.SIGKILL)
            killed = time.monotonic()
            role = "and active controller" if leader == controller else f"(controller {controller})"
            print(f"\nCLUSTER killed node {leader}, leader of consent partition 0 {role}")
            while time.monotonic() < killed + AFTER_KILL_S:
                relay.check_alive()
                watch.read()
        acknowledged = [s for s in publisher.sent if s.withdrawal.done()]
        failed = [s for s in acknowledged if s.withdrawal.exception() is not None]
        assert len(acknowledged) == len(publisher.sent), "the client did not flush at close"
        assert not failed, f"{len(failed)} publishes failed: {failed[0].withdrawal.exception()}"
        published = {s.subject: s.withdrawal.result() for s in publisher.sent}

        def keys(s: Sent) -> list[str]:
            return [Watch.receipt(f, published[s.subject].event_id) for f in FAMILIES]

        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            relay.check_alive()
            watch.read()
            if all(k in watch.seen for s in publisher.sent for k in keys(s)):
                break
    lost = [s for s in publisher.sent if not all(k in watch.seen for k in keys(s))]
    cells = _marketing_cells(tmp_path / "marketing.sqlite", [s.subject for s in publisher.sent])
    misapplied = sorted(subject for subject, suppressed in cells.items() if not suppressed)
    not_in_store = len(publisher.sent) - len(cells)

    def honoured(s: Sent) -> float:
        return max(watch.seen[k] for k in keys(s))

    done = [s for s in publisher.sent if s not in lost]
    after = [s for s in done if s.at >= killed]
    on_lost_leader = [s for s in after if published[s.subject].partition == 0]
    next_any = min((honoured(s) for s in after), default=float("inf")) - killed
    first_ack = min((s.acked[0] for s in on_lost_leader), default=float("inf")) - killed
    next_by_family = {
        f.value: min(
            (watch.seen[Watch.receipt(f, published[s.subject].event_id)] for s in after),
            default=float("inf"),
        )
        - killed
        for f in FAMILIES
    }
    next_p0 = min((honoured(s) for s in on_lost_leader), default=float("inf")) - killed
    worst = max((honoured(s) - s.at for s in done), default=float("inf"))
    print(
        f"\nCLUSTER broker lost mid-stream: {len(publisher.sent)} withdrawals sent "
        f"({PER_SECOND}/s, {len(after)} after the kill), lost {len(lost)}, misapplied "
        f"{len(misapplied)}, missing from the marketing store {not_in_store}; next withdrawal "
        f"honoured {next_any:.1f} s after the kill (on the lost leader's partition "
        f"{next_p0:.1f} s; target {TARGET_S:g} s); longest wait of any withdrawal {worst:.1f} s; "
        f"first acknowledged on the lost leader's partition {first_ack:.1f} s after the kill, "
        f"next honoured by family {', '.join(f'{k} {v:.1f} s' for k, v in next_by_family.items())}"
    )
    assert not lost, f"{len(lost)} withdrawals not honoured by both sinks"
    assert not misapplied, f"{len(misapplied)} subjects hold the grant in the marketing store"
    assert not_in_store == 0
    assert next_p0 < BOUND_S
    # No process needed a restart: each ran once, and still runs.
    relay.check_alive()
    assert [p.starts for p in relay.started()] == [1, 1, 1]
