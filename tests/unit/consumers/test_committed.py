"""Reading a group's committed offsets right after a broker starts: NOT_COORDINATOR
(which librdkafka does not mark retriable) is asked again, a real error is not."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.committed import read_committed

TOPIC = "consent.instructions.partner_sharing"


class FakeConsumer:
    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.asked = 0

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.asked += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return [TopicPartition(tp.topic, tp.partition, 7) for tp in partitions]


def test_a_coordinator_not_ready_yet_is_asked_again() -> None:
    consumer = FakeConsumer(KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    got = read_committed(consumer, [TopicPartition(TOPIC, 0)], 10)  # type: ignore[arg-type]
    assert [tp.offset for tp in got] == [7]
    assert consumer.asked == 3


def test_another_error_is_raised_at_once() -> None:
    consumer = FakeConsumer(KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        read_committed(consumer, [TopicPartition(TOPIC, 0)], 10)  # type: ignore[arg-type]
    assert consumer.asked == 1
