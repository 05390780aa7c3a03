"""The sink runner and the broker: a static member name a restart gets back, a clean
stop that hands the partitions over at once, a flush that outlasts a broker outage
(fake consumer and publisher: no network)."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from confluent_kafka import TopicPartition

from consumers import runner as runner_module
from consumers.pipeline import subscription as subscription_module
from consumers.protocol import SinkResult
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import ConsentStateRecorded, InstructionIssued
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.membership import claim
from schemas.taxonomy import SinkFamily

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")


class FakeConsumer:
    """Assigned one partition at subscribe; records what the runner asks of it."""

    made: ClassVar[list[FakeConsumer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls: list[str] = []
        self._assignment: list[Any] = []
        self._on_revoke: Any = None
        FakeConsumer.made.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.calls.append("subscribe")
        self._on_revoke = callbacks["on_revoke"]
        partition = TopicPartition(topics[0], 0)
        self._assignment = [partition]
        callbacks["on_assign"](self, [partition])

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    def incremental_assign(self, _partitions: list[Any]) -> None:
        self.calls.append("incremental_assign")

    def resume(self, _partitions: list[Any]) -> None:
        self.calls.append("resume")

    def assignment(self) -> list[Any]:
        return list(self._assignment)

    def poll(self, timeout: float) -> None:
        if "unsubscribe" in self.calls and self._assignment:
            revoked, self._assignment = self._assignment, []
            self.calls.append("revoked")
            self._on_revoke(self, revoked)
        threading.Event().wait(min(timeout, 0.01))

    def consume(self, _n: int, _timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        self.calls.append("close")


class FakePublisher:
    flushes: ClassVar[list[float]] = []

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def flush(self, timeout: float = 60.0) -> None:
        FakePublisher.flushes.append(timeout)

    def send_receipts(self) -> None:
        pass


@dataclass
class IdleSink:
    family: ClassVar[SinkFamily] = SinkFamily.MARKETING
    closed: list[bool] = field(default_factory=list)

    @property
    def destination(self) -> str:
        return "suppression_list"

    def handles(self, instruction: InstructionIssued) -> bool:
        return True

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        raise AssertionError("no instruction is expected")

    def needs_bootstrap(self) -> bool:
        return False

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        del state

    def close(self) -> None:
        self.closed.append(True)


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeConsumer.made = []
    FakePublisher.flushes = []
    monkeypatch.setattr(subscription_module, "Consumer", FakeConsumer)
    monkeypatch.setattr(runner_module, "Publisher", FakePublisher)


def run_until_ready(options: RunnerSettings) -> tuple[SinkRunner, threading.Thread]:
    runner = SinkRunner(IdleSink(), KAFKA, options=options, serve_http=False)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert runner.ready.wait(10)
    return runner, thread


def test_a_sink_joins_as_a_static_member_and_leaves_at_a_clean_stop() -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    runner, thread = run_until_ready(RunnerSettings(group_id=group, static_membership=True))
    (consumer,) = FakeConsumer.made
    assert consumer.config["group.instance.id"] == f"{socket.gethostname()}#0"
    assert consumer.config["session.timeout.ms"] == 6_000
    assert consumer.config["heartbeat.interval.ms"] == 1_500
    # While it runs its name is its own; a second sink of the group gets another.
    second = claim(group)
    assert second.name == f"{socket.gethostname()}#1"
    second.release()

    runner.stop()
    thread.join(10)
    # A static member's close() would keep its partitions until the session ends.
    assert [c for c in consumer.calls if c not in {"incremental_assign", "resume"}] == [
        "subscribe",
        "unsubscribe",
        "revoked",
        "close",
    ]
    again = claim(group)
    assert again.name == f"{socket.gethostname()}#0"  # what its restart will get
    again.release()


def test_a_configured_name_is_used_and_static_membership_can_be_off() -> None:
    runner, thread = run_until_ready(
        RunnerSettings(
            group_id=f"g-{uuid.uuid4().hex[:8]}", group_instance_id="pod-0", static_membership=True
        )
    )
    runner.stop()
    thread.join(10)
    runner, thread = run_until_ready(
        RunnerSettings(group_id=f"g-{uuid.uuid4().hex[:8]}", static_membership=False)
    )
    runner.stop()
    thread.join(10)
    named, dynamic = FakeConsumer.made
    assert named.config["group.instance.id"] == "pod-0"
    assert "group.instance.id" not in dynamic.config


def test_a_flush_outlasts_the_producers_own_delivery_timeout() -> None:
    # A minute's flush ended the sink when the broker was away longer (seen in a 65 s
    # outage); librdkafka fails an undeliverable message itself after 300 s.
    runner, thread = run_until_ready(RunnerSettings(group_id=f"g-{uuid.uuid4().hex[:8]}"))
    runner.stop()
    thread.join(10)
    assert FakePublisher.flushes
    assert min(FakePublisher.flushes) > 300
