"""When the runner commits: offsets are stored once a chunk's work is durable and
committed by librdkafka in the background, not by a broker round trip per chunk; a
revocation and a clean stop commit at once (fake consumer and publisher: no network)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from confluent_kafka import TopicPartition

from consumers import runner as runner_module
from consumers.pipeline import subscription as subscription_module
from consumers.protocol import APPLIED, SinkResult
from consumers.publisher import DeliveryError
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import ConsentStateRecorded, InstructionIssued, Subject
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Purpose, Regime, SinkFamily, SubjectKind

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")
TOPIC = KAFKA.topics.instructions(SinkFamily.MARKETING)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CHUNKS = 5


@dataclass
class FakeMessage:
    at: int

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def error(self) -> None:
        return None

    def headers(self) -> list[tuple[str, bytes]]:
        return []


class FakeConsumer:
    """Hands out one message per poll (one chunk each), then nothing."""

    made: ClassVar[list[FakeConsumer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls: list[str] = []
        self.stored: list[int] = []
        self.handed = 0
        self._assignment: list[TopicPartition] = []
        self._on_revoke: Any = None
        FakeConsumer.made.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._on_revoke = callbacks["on_revoke"]
        self._assignment = [TopicPartition(topics[0], 0)]
        callbacks["on_assign"](self, list(self._assignment))

    def poll(self, timeout: float) -> FakeMessage | None:
        if "unsubscribe" in self.calls and self._assignment:
            revoked, self._assignment = self._assignment, []
            self.calls.append("revoked")
            self._on_revoke(self, revoked)
        if self.handed < CHUNKS:
            self.handed += 1
            return FakeMessage(self.handed - 1)
        threading.Event().wait(min(timeout, 0.01))
        return None

    def consume(self, _n: int, _timeout: float) -> list[Any]:
        return []

    def store_offsets(self, *, offsets: list[TopicPartition]) -> None:
        self.calls.append("store")
        self.stored.extend(tp.offset for tp in offsets)

    def commit(self, *, asynchronous: bool) -> None:
        assert not asynchronous
        self.calls.append("commit")

    def incremental_assign(self, _partitions: list[TopicPartition]) -> None:
        pass

    def resume(self, _partitions: list[TopicPartition]) -> None:
        pass

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment)

    def close(self) -> None:
        self.calls.append("close")


class FakePublisher:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def receipt(self, *_args: Any) -> None:
        pass

    def send_receipts(self) -> None:
        pass

    def flush(self, timeout: float = 60.0) -> None:
        del timeout


@dataclass
class CountingSink:
    family: ClassVar[SinkFamily] = SinkFamily.MARKETING
    applied: list[str] = field(default_factory=list)

    @property
    def destination(self) -> str:
        return "suppression_list"

    def handles(self, instruction: InstructionIssued) -> bool:
        return True

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        self.applied.append(instruction.instruction_id)
        return APPLIED

    def needs_bootstrap(self) -> bool:
        return False

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        del state

    def close(self) -> None:
        pass


def instruction(_message: Any) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=Subject(id="subject-1", kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=Action.SUPPRESS,
        purposes=(Purpose.MARKETING_EMAIL,),
        regime=Regime.GDPR,
        occurred_at=T0,
        issued_at=T0,
    )


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeConsumer.made = []
    monkeypatch.setattr(subscription_module, "Consumer", FakeConsumer)
    monkeypatch.setattr(runner_module, "Publisher", FakePublisher)


def run_chunks(options: RunnerSettings) -> tuple[FakeConsumer, CountingSink]:
    """Run until every chunk is applied, then stop cleanly."""
    sink = CountingSink()
    runner = SinkRunner(sink, KAFKA, options=options, serve_http=False)
    runner.applier.decode = lambda message: (instruction(message),)  # type: ignore[method-assign]
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert runner.ready.wait(10)
    (consumer,) = FakeConsumer.made
    for _ in range(500):
        if consumer.stored[-1:] == [CHUNKS]:
            break
        threading.Event().wait(0.01)
    runner.stop()
    thread.join(10)
    assert len(sink.applied) == CHUNKS
    return consumer, sink


def test_chunks_store_offsets_and_librdkafka_commits_them_in_the_background() -> None:
    consumer, _ = run_chunks(RunnerSettings(group_id="g"))
    assert consumer.config["enable.auto.commit"] is True
    assert consumer.config["auto.commit.interval.ms"] == 1000
    assert consumer.config["enable.auto.offset.store"] is False
    assert consumer.stored == [1, 2, 3, 4, 5]
    # One commit, at the clean stop, not one broker round trip per chunk.
    assert consumer.calls == ["store"] * CHUNKS + ["commit", "unsubscribe", "revoked", "close"]


def test_an_interval_of_zero_commits_after_every_chunk() -> None:
    consumer, _ = run_chunks(RunnerSettings(group_id="g", commit_interval_seconds=0))
    assert consumer.config["enable.auto.commit"] is False
    assert consumer.calls == ["store", "commit"] * CHUNKS + ["unsubscribe", "revoked", "close"]


def test_the_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="commit_interval_seconds"):
        RunnerSettings(commit_interval_seconds=-1)


class FailingOncePublisher(FakePublisher):
    """Its third flush finds a receipt the broker did not take (a purged producer)."""

    flushes = 0

    def flush(self, timeout: float = 60.0) -> None:
        FailingOncePublisher.flushes += 1
        if FailingOncePublisher.flushes == 3:
            raise DeliveryError("1 message(s) not delivered: Local: Purged in queue")


def test_an_undelivered_receipt_starts_over_from_the_last_commit_without_committing_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FailingOncePublisher.flushes = 0
    monkeypatch.setattr(runner_module, "Publisher", FailingOncePublisher)
    sink = CountingSink()
    options = RunnerSettings(group_id="g", backoff_initial_seconds=0.01, backoff_max_seconds=0.02)
    runner = SinkRunner(sink, KAFKA, options=options, serve_http=False)
    runner.applier.decode = lambda message: (instruction(message),)  # type: ignore[method-assign]
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    for _ in range(500):
        if len(FakeConsumer.made) == 2 and FakeConsumer.made[1].stored[-1:] == [CHUNKS]:
            break
        threading.Event().wait(0.01)
    runner.stop()
    thread.join(10)
    first, second = FakeConsumer.made
    # The third chunk's receipt was not delivered: its offset is never stored, the
    # consumer is closed, and a new one reads again from the last commit.
    assert first.stored == [1, 2]
    assert first.calls[-1] == "close"
    assert second.stored == [1, 2, 3, 4, 5]
    assert len(sink.applied) == 3 + CHUNKS  # applied again, idempotently, downstream
