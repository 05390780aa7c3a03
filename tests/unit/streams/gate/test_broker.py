"""The gate and the broker: it waits for an absent broker at start, joins its group under a
static member name a restart gets back, and a clean stop leaves the group at once (a
closed local port as the broker and a fake data consumer: nothing is sent); partition
leaders an admin client has wrong after a broker restart get a new admin client."""

from __future__ import annotations

import socket
import threading
import uuid
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.membership import claim
from streams.gate import loop
from streams.gate.loop import Gate
from streams.gate.metrics import GateMetrics
from streams.gate.settings import GateSettings


def absent() -> KafkaSettings:
    """A broker nobody answers for, under a prefix (so a group) of this test's own."""
    return KafkaSettings(
        bootstrap="127.0.0.1:9",
        registry_url="http://127.0.0.1:9",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
    )


def gate(settings: GateSettings | None = None) -> Gate:
    return Gate(absent(), settings or GateSettings(), GateMetrics.create(CollectorRegistry()))


class FakeConsumer:
    """Assigned one partition at subscribe (no rebalance callback: that asks the broker);
    revokes it in the first poll after unsubscribe; records what the gate asks of it."""

    made: ClassVar[list[FakeConsumer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls: list[str] = []
        self._assignment: list[TopicPartition] = []
        self._on_revoke: Any = None
        FakeConsumer.made.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.calls.append("subscribe")
        self._on_revoke = callbacks["on_revoke"]
        self._assignment = [TopicPartition(topics[0], 0)]

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment)

    def poll(self, timeout: float) -> None:
        if "unsubscribe" in self.calls and self._assignment:
            revoked, self._assignment = self._assignment, []
            self.calls.append("revoked")
            self._on_revoke(self, revoked)
        threading.Event().wait(min(timeout, 0.01))

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_consumers(monkeypatch: pytest.MonkeyPatch) -> list[FakeConsumer]:
    FakeConsumer.made = []
    monkeypatch.setattr(loop, "Consumer", FakeConsumer)
    return FakeConsumer.made


def test_the_gate_joins_as_a_static_member_with_a_short_session(
    fake_consumers: list[FakeConsumer],
) -> None:
    first, second = gate(GateSettings(static_membership=True)), gate(GateSettings())
    data = fake_consumers[0].config
    assert data["group.instance.id"] == f"{socket.gethostname()}#0"
    assert data["session.timeout.ms"] == 6_000
    assert "group.instance.id" not in fake_consumers[3].config  # the second gate's
    # The state follower reads by assignment, and the end offsets client only asks:
    # no group membership to keep.
    assert "group.instance.id" not in fake_consumers[1].config
    assert "group.instance.id" not in fake_consumers[2].config
    named = gate(GateSettings(group_instance_id="gate-pod-0", static_membership=True))
    assert fake_consumers[6].config["group.instance.id"] == "gate-pod-0"
    for g in (first, second, named):
        if g.membership is not None:
            g.membership.release()


def test_a_stopped_gate_leaves_its_group_before_closing(
    fake_consumers: list[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    stopping = gate()
    monkeypatch.setattr(stopping, "prepare", lambda: None)
    stopping.stop()
    stopping.run()
    # Unsubscribing hands the partitions over at once; close() alone would keep a static
    # member's partitions until its session ran out.
    assert fake_consumers[0].calls == ["subscribe", "unsubscribe", "revoked", "close"]
    # Its name is free again for the next gate of the group on this host.
    successor = claim(stopping.group)
    assert successor.name == f"{socket.gethostname()}#0"
    successor.release()


def test_a_gate_waits_for_an_absent_broker_until_stopped() -> None:
    waiting = gate()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            waiting.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # Longer than a few attempts (0.5 + 1 + 2 s): still waiting, not exited.
    thread.join(4.0)
    assert thread.is_alive(), f"exited instead of waiting: {failures}"
    waiting.stop()
    # The attempt under way (at most 5 s) ends, then the wait does.
    thread.join(10.0)
    assert not thread.is_alive(), "a stop did not end the wait for the broker"
    assert failures == []


class FakeAdmin:
    """Answers ListOffsets with offset 7, or, for the first one made, FENCED_LEADER_EPOCH
    (librdkafka's admin client kept sending a dead broker's leader epoch)."""

    made: ClassVar[list[FakeAdmin]] = []

    def __init__(self, _config: dict[str, Any]) -> None:
        self.stale = not FakeAdmin.made
        FakeAdmin.made.append(self)

    def list_offsets(self, asked: dict[TopicPartition, Any], **_options: Any) -> dict[Any, Any]:
        answers: dict[Any, Any] = {}
        for tp in asked:
            future: Future[Any] = Future()
            if self.stale:
                error = KafkaError(KafkaError.FENCED_LEADER_EPOCH)
                future.set_exception(KafkaException(error))
            else:
                future.set_result(SimpleNamespace(offset=7))
            answers[tp] = future
        return answers


def test_stale_partition_leaders_get_a_new_admin_client(
    fake_consumers: list[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeAdmin.made = []
    monkeypatch.setattr(loop, "AdminClient", FakeAdmin)
    asking = gate()
    earliest = loop._EARLIEST
    with pytest.raises(KafkaException):  # retried by the batch's loop after a backoff
        asking._list_offsets("t-consent", [0, 1], earliest)
    assert asking._list_offsets("t-consent", [0, 1], earliest) == {0: 7, 1: 7}
    assert len(FakeAdmin.made) == 2
    if asking.membership is not None:
        asking.membership.release()


def test_the_gate_leaves_commits_to_librdkafka_every_second(
    fake_consumers: list[FakeConsumer],
) -> None:
    """A commit request per batch queued the group's heartbeats behind hundreds of
    OffsetCommits a second until the session ran out; stored offsets are committed once
    a second instead (and never before the batch is published: auto-store stays off)."""
    gate(GateSettings())
    data = fake_consumers[0].config
    assert data["enable.auto.commit"] is True
    assert data["auto.commit.interval.ms"] == loop.COMMIT_INTERVAL_MS == 1000
    assert data["enable.auto.offset.store"] is False
