"""The gate's consent state rebuilt from the state topic (the workers' state table's
changelog) and intake's progress, without Kafka: a fake consumer hands the follower the
records."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from schemas.codec import EventDecoder, encode_single_object_dict
from schemas.errors import InvalidEventError
from schemas.events import ConsentStateRecorded
from schemas.taxonomy import Choice, Purpose, Regime, SubjectKind
from streams.gate.coverage import Coverage
from streams.gate.follower import StateFollower
from streams.gate.state import ConsentStates, StateRecordError, UnreadableStateError
from streams.intake.progress import IntakeProgressed, encode
from streams.intake.records import consent_state
from streams.intake.resolution import Claim, Effect, SubjectState, apply
from streams.intake.state_topic import StateReader

CHANGELOG = "consent.state"
PROGRESS = "consent.intake.progress"
EMAIL = Purpose.MARKETING_EMAIL


def encode_state(state: SubjectState) -> bytes:
    """The state record intake publishes (single-object encoded: no registry here)."""
    return encode_single_object_dict(ConsentStateRecorded, consent_state("s-1", state, 0))


def states_read() -> ConsentStates:
    return ConsentStates(StateReader(EventDecoder(None)).read)


def state(*choices: tuple[int, Choice]) -> SubjectState:
    current = None
    for at, choice in choices:
        effect = Effect(claims=(Claim((EMAIL, Regime.GDPR, None), choice),))
        current = apply(current, SubjectKind.ACCOUNT, f"e-{at}", at, effect).state
    assert current is not None
    return current


def test_states_are_rebuilt_per_partition_and_dropped_with_it() -> None:
    states = states_read()
    states.hold(1)
    states.hold(2)
    withdrawn = state((100, Choice.GRANTED), (200, Choice.WITHDRAWN))
    states.apply(1, b"a", encode_state(state((100, Choice.GRANTED))))
    states.apply(1, b"a", encode_state(withdrawn))  # the newer record wins
    states.apply(2, b"b", encode_state(state((50, Choice.GRANTED))))
    states.apply(3, b"c", encode_state(withdrawn))  # not held: a revocation raced it
    assert states.subjects[b"a"] == withdrawn
    assert set(states.subjects) == {b"a", b"b"}
    states.apply(2, b"b", None)  # a tombstone
    assert set(states.subjects) == {b"a"}
    assert states.drop(1) == 1
    assert len(states) == 0
    assert states.partitions == frozenset({2})


def test_a_record_is_read_only_when_its_subject_is_looked_up_and_once() -> None:
    reads: list[bytes] = []
    reader = StateReader(EventDecoder(None))

    def read(value: bytes) -> SubjectState:
        reads.append(value)
        return reader.read(value)

    states = ConsentStates(read)
    states.hold(0)
    granted, withdrawn = (
        state((100, Choice.GRANTED)),
        state((100, Choice.GRANTED), (200, Choice.WITHDRAWN)),
    )
    states.apply(0, b"a", encode_state(granted))
    states.apply(0, b"a", encode_state(withdrawn))  # replaces the first, never read
    states.apply(0, b"b", encode_state(granted))  # no data of b: never read
    assert reads == []
    assert states.subjects.get(b"a") == withdrawn
    assert states.subjects.get(b"a") == withdrawn
    assert states.subjects.get(b"zz") is None
    assert reads == [encode_state(withdrawn)]


def test_an_unreadable_record_fails_its_subject_only_until_replaced() -> None:
    states = states_read()
    states.hold(0)
    states.apply(0, b"a", b'{"k": "ACCOUNT"}')
    states.apply(0, b"b", encode_state(state((1, Choice.GRANTED))))
    with pytest.raises(UnreadableStateError) as raised:
        states.subjects.get(b"a")
    assert isinstance(raised.value, InvalidEventError)  # the judge dead-letters the data
    with pytest.raises(UnreadableStateError):
        states.subjects.get(b"a")  # still held as it came, never taken as "no state"
    assert states.subjects.get(b"b") == state((1, Choice.GRANTED))
    states.apply(0, b"a", encode_state(state((2, Choice.WITHDRAWN))))
    assert states.subjects.get(b"a") == state((2, Choice.WITHDRAWN))
    with pytest.raises(StateRecordError):
        states.apply(0, None, encode_state(state((1, Choice.GRANTED))))


class FakeConsumer:
    """Hands out queued messages; records assignments."""

    def __init__(self) -> None:
        self.queue: list[Message] = []
        self.assigned: set[tuple[str, int]] = set()
        self.positions: dict[tuple[str, int], int] = {}

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def consume(self, num: int, timeout: float) -> list[Message]:
        taken, self.queue = self.queue[:num], self.queue[num:]
        return taken

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1))
            for tp in partitions
        ]


def follower_with(coverage: dict[int, Coverage]) -> tuple[StateFollower, FakeConsumer]:
    consumer = FakeConsumer()
    fake: Any = consumer
    return StateFollower(fake, CHANGELOG, PROGRESS, states_read(), coverage), consumer


def test_the_follower_reads_state_and_progress_of_the_held_partitions() -> None:
    coverage = {1: Coverage()}
    follower, consumer = follower_with(coverage)
    follower.follow([1])
    assert consumer.assigned == {(CHANGELOG, 1), (PROGRESS, 1)}
    withdrawn = state((100, Choice.GRANTED), (200, Choice.WITHDRAWN))
    key, value = encode(IntakeProgressed(1, 42, 7))
    other_key, other_value = encode(IntakeProgressed(0, 99, 7))
    consumer.queue = [
        Message(topic=CHANGELOG, partition=1, offset=7, key=b"a", value=encode_state(withdrawn)),
        Message(topic=PROGRESS, partition=1, offset=3, key=key, value=value),
        Message(topic=PROGRESS, partition=1, offset=4, key=b"1", value=b"garbage"),
        Message(topic=PROGRESS, partition=1, offset=5, key=other_key, value=other_value),
        Message(error=KafkaError(KafkaError._TRANSPORT)),
        Message(topic=CHANGELOG, partition=2, offset=0, key=b"z", value=encode_state(withdrawn)),
    ]
    assert follower.drain() == 6
    assert follower.applied == 6
    assert follower.states.subjects == {b"a": withdrawn}
    # Garbage and a record naming another partition are skipped, not taken as progress.
    assert (coverage[1].applied, coverage[1].state_read) == (42, 8)
    consumer.positions[(CHANGELOG, 1)] = 11  # past offsets holding no record
    follower.sync_positions([1])
    assert coverage[1].state_read == 11
    follower.unfollow([1])
    assert consumer.assigned == set()
    assert follower.states.subjects == {}


def test_an_unreadable_record_loses_none_of_the_records_fetched_after_it() -> None:
    coverage = {1: Coverage()}
    follower, consumer = follower_with(coverage)
    follower.follow([1])
    withdrawn = state((100, Choice.GRANTED), (200, Choice.WITHDRAWN))
    consumer.queue = [
        Message(topic=CHANGELOG, partition=1, offset=0, key=b"a", value=b"not a state"),
        Message(topic=CHANGELOG, partition=1, offset=1, key=b"b", value=encode_state(withdrawn)),
    ]
    follower.drain()
    assert follower.states.subjects.get(b"b") == withdrawn
    assert coverage[1].state_read == 2


def test_a_fatal_consumer_error_stops_the_follower() -> None:
    follower, consumer = follower_with({})
    consumer.queue = [Message(error=KafkaError(KafkaError._FATAL, fatal=True))]
    with pytest.raises(Exception, match="FATAL"):
        follower.drain()
