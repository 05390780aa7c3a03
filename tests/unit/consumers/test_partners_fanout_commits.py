"""The partner sink's one consumer commits again what a failed commit did not, without a
broker: an asynchronous commit can fail (a rebalance in progress, a coordinator moving)
and an idle partition's position then does not move to trigger another."""

from __future__ import annotations

from confluent_kafka import KafkaError, TopicPartition

from consumers.metrics import SinkMetrics
from consumers.partners.fanout import Fanout
from consumers.partners.lanes import Committed, Lanes
from consumers.settings import RunnerSettings
from schemas.runtime.kafka import KafkaSettings

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")
TOPIC = "consent.instructions.partner_sharing"


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[list[tuple[int, int]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])


def fanout_at(offset: int) -> tuple[Fanout, FakeConsumer]:
    lanes = Lanes(["criteo"], bound=10)
    lanes.assign({(TOPIC, 0): Committed(offset)})
    fanout = Fanout(
        KAFKA, RunnerSettings(), lanes, group_id="g", topic=TOPIC, metrics=SinkMetrics.create()
    )
    consumer = FakeConsumer()
    fanout._consumer = consumer  # type: ignore[assignment]
    return fanout, consumer


def test_a_failed_asynchronous_commit_is_sent_again() -> None:
    fanout, consumer = fanout_at(5)
    fanout._commit(sync=False)
    fanout._commit(sync=False)
    assert consumer.commits == [[(0, 5)]]  # nothing moved: not sent twice
    fanout._on_commit(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [TopicPartition(TOPIC, 0, 5)])
    fanout._commit(sync=False)
    assert consumer.commits == [[(0, 5)], [(0, 5)]]


def test_a_synchronous_commit_does_not_trust_an_earlier_asynchronous_one() -> None:
    fanout, consumer = fanout_at(5)
    fanout._commit(sync=False)  # its outcome is not known yet
    fanout._commit(sync=True)  # a revocation, a clean stop: the last word
    assert consumer.commits == [[(0, 5)], [(0, 5)]]
