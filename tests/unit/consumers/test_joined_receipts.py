"""Receipts of runners sharing a producer leave joined, one record per partition and
round: a lone hand-over at once, what comes while a round is in flight together in the
next; each runner is told the outcome of its own receipts only (fake producer: no
network)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.joined_receipts import JoinedReceipts
from consumers.protocol import APPLIED
from consumers.publisher import Publisher, build_receipt
from schemas.events import InstructionIssued, InstructionsAnswered, PropagationReceipt, Subject
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Purpose, Regime, SinkFamily, SubjectKind

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TOPIC = "consent.receipts"


def receipts(count: int, partner: str = "criteo") -> list[PropagationReceipt]:
    return [
        build_receipt(
            InstructionIssued(
                instruction_id=str(uuid.uuid4()),
                event_id=str(uuid.uuid4()),
                event_type="ConsentChanged",
                subject=Subject(id=f"acct-{n}", kind=SubjectKind.ACCOUNT),
                sink_family=SinkFamily.PARTNER_SHARING,
                destination=partner,
                action=Action.SUPPRESS,
                purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
                regime=Regime.GDPR,
                occurred_at=T0,
                issued_at=T0,
            ),
            APPLIED,
            T0,
        )
        for n in range(count)
    ]


def encode(batch: list[PropagationReceipt]) -> bytes:
    """A stand-in for the wire bytes: the receipt ids, so a test can read a record back."""
    return "|".join(r.receipt_id for r in batch).encode()


class Message:
    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


class Producer:
    """Keeps each produced record and its delivery report until the test answers it."""

    def __init__(self, refuse: type[Exception] | None = None) -> None:
        self.records: list[tuple[str, int, list[str], Any]] = []
        self.refuse = refuse

    def produce(self, topic: str, *, value: bytes, partition: int, on_delivery: Any) -> None:
        if self.refuse is not None:
            raise self.refuse("Local: Queue full")
        self.records.append((topic, partition, value.decode().split("|"), on_delivery))

    def answer(self, index: int, error: Any = None, offset: int | None = 7) -> None:
        self.records[index][3](error, Message(None if error else offset))


class Told:
    """Collects what a runner is told, once per hand-over."""

    def __init__(self) -> None:
        self.outcomes: list[str | None] = []

    def __call__(self, failure: str | None) -> None:
        self.outcomes.append(failure)


def ids(batch: list[PropagationReceipt]) -> list[str]:
    return [r.receipt_id for r in batch]


def test_a_lone_hand_over_leaves_at_once_and_is_told_once_acknowledged() -> None:
    producer = Producer()
    joined = JoinedReceipts(lambda: producer, TOPIC)
    told = Told()
    mine = receipts(3)
    joined.send(2, mine, told, encode)
    assert [(t, p, r) for t, p, r, _ in producer.records] == [(TOPIC, 2, ids(mine))]
    assert told.outcomes == []
    producer.answer(0)
    assert told.outcomes == [None]


def test_hand_overs_during_a_round_leave_together_in_the_next() -> None:
    producer = Producer()
    joined = JoinedReceipts(lambda: producer, TOPIC)
    first, second, third = Told(), Told(), Told()
    a, b, c = receipts(1, "criteo"), receipts(2, "google"), receipts(1, "bing")
    joined.send(0, a, first, encode)
    joined.send(0, b, second, encode)
    joined.send(0, c, third, encode)
    other = Told()
    joined.send(1, receipts(1), other, encode)  # another partition is not held back
    assert [(p, len(r)) for _, p, r, _ in producer.records] == [(0, 1), (1, 1)]
    producer.answer(0)
    assert first.outcomes == [None]
    assert [(p, r) for _, p, r, _ in producer.records[2:]] == [(0, ids(b) + ids(c))]
    assert second.outcomes == third.outcomes == []
    producer.answer(2)
    assert second.outcomes == third.outcomes == [None]
    assert other.outcomes == []
    # Idle again: the next hand-over leaves at once.
    joined.send(0, receipts(1), Told(), encode)
    assert len(producer.records) == 4


def test_a_failed_record_fails_only_the_hand_overs_it_carried() -> None:
    producer = Producer()
    joined = JoinedReceipts(lambda: producer, TOPIC)
    first, second, third = Told(), Told(), Told()
    joined.send(0, receipts(1), first, encode)
    joined.send(0, receipts(1), second, encode)
    producer.answer(0, error="broker said no")
    assert first.outcomes == ["broker said no"]
    producer.answer(1, offset=None)  # acknowledged without an offset: not proof
    assert len(second.outcomes) == 1
    assert second.outcomes[0] is not None
    joined.send(0, receipts(1), third, encode)
    producer.answer(2)
    assert third.outcomes == [None]


def test_a_big_hand_over_is_split_and_told_once_every_piece_is_acknowledged() -> None:
    producer = Producer()
    joined = JoinedReceipts(lambda: producer, TOPIC, per_record=4)
    blocker, big, small, last = Told(), Told(), Told(), Told()
    joined.send(0, receipts(1), blocker, encode)
    joined.send(0, receipts(6), big, encode)
    joined.send(0, receipts(2), small, encode)
    joined.send(0, receipts(3), last, encode)
    producer.answer(0)
    sizes = [len(r) for _, _, r, _ in producer.records[1:]]
    assert sizes == [4, 4, 3]  # big's 4 | big's 2 + small's 2 | last's 3: none over 4
    producer.answer(1)
    assert big.outcomes == []
    producer.answer(2)
    assert big.outcomes == small.outcomes == [None]
    assert last.outcomes == []
    producer.answer(3)
    assert last.outcomes == [None]


def test_a_record_the_producer_refuses_fails_its_hand_overs_and_frees_the_partition() -> None:
    producer = Producer(refuse=BufferError)
    joined = JoinedReceipts(lambda: producer, TOPIC)
    told = Told()
    joined.send(0, receipts(2), told, encode)
    assert told.outcomes == ["receipts not sent: Local: Queue full"]
    producer.refuse = None
    again = Told()
    joined.send(0, receipts(2), again, encode)
    producer.answer(0)
    assert again.outcomes == [None]


def test_hand_overs_from_many_threads_are_each_told_once() -> None:
    producer = Producer()
    lock = threading.Lock()

    class Locked:
        def produce(self, topic: str, *, value: bytes, partition: int, on_delivery: Any) -> None:
            with lock:
                producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)

    joined = JoinedReceipts(Locked, TOPIC)
    told = [Told() for _ in range(16)]
    threads = [
        threading.Thread(target=joined.send, args=(n % 3, receipts(2), told[n], encode))
        for n in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answered = 0
    while answered < len(producer.records):
        producer.answer(answered)
        answered += 1
    assert [t.outcomes for t in told] == [[None]] * 16
    assert answered <= 6  # two rounds per partition at most
    assert sum(len(r) for _, _, r, _ in producer.records) == 32


class SharedStandIn:
    """A SharedProducer's part a publisher uses, over the fake producer."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.receipts = JoinedReceipts(lambda: producer, TOPIC)

    def producer(self) -> Producer:
        return self._producer


class Encoder:
    def header(self, event_type: type[Any]) -> bytes:
        assert event_type is InstructionsAnswered
        return b"\0\0\0\0\1"

    def __call__(self, event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
        return "|".join(r["receipt_id"] for r in avro["receipts"]).encode()


@pytest.fixture
def publishers(monkeypatch: pytest.MonkeyPatch) -> tuple[Producer, Publisher, Publisher]:
    producer = Producer()
    shared: Any = SharedStandIn(producer)
    made = []
    for _ in range(2):
        publisher = Publisher(
            KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9"),
            registry=None,  # type: ignore[arg-type]
            shared=shared,
        )
        monkeypatch.setattr(publisher, "_encode", Encoder())
        monkeypatch.setattr(publisher, "_copartitioned", lambda topic: True)
        made.append(publisher)
    return producer, made[0], made[1]


def test_publishers_sharing_a_producer_flush_on_their_own_joined_receipts(
    publishers: tuple[Producer, Publisher, Publisher],
) -> None:
    producer, criteo, google = publishers
    ours, theirs = receipts(2, "criteo"), receipts(2, "google")
    first = receipts(1, "bing")
    criteo.receipt(first[0], ("consent.instructions.partner_sharing", 0))
    criteo.send_receipts()
    for receipt in ours:
        criteo.receipt(receipt, ("consent.instructions.partner_sharing", 0))
    for receipt in theirs:
        google.receipt(receipt, ("consent.instructions.partner_sharing", 0))
    criteo.send_receipts()
    google.send_receipts()
    producer.answer(0)
    assert [r for _, _, r, _ in producer.records[1:]] == [ids(ours) + ids(theirs)]
    producer.answer(1, error="broker said no")
    with pytest.raises(Exception, match="broker said no"):
        google.flush(timeout=1)
    with pytest.raises(Exception, match="broker said no"):
        criteo.flush(timeout=1)
