"""Consumer groups' progress, read from the broker: committed offsets, watermarks and lag.

Everything here asks the broker (``AdminClient``), never the processes, so it measures
what is durable: an event counts as consumed once its group committed past it. A
group's lag is summed over every partition it is assigned or has committed, so a
partition the group has not committed yet counts from its first offset.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from schemas.runtime.kafka import KafkaSettings

_TIMEOUT_S = 30.0
_ATTEMPTS = 10
_TRANSIENT = frozenset(
    (
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
    )
)
TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One group's lag per topic (summed over partitions) at one moment."""

    group: str
    by_topic: dict[str, int]

    @property
    def total(self) -> int:
        """Lag over every topic."""
        return sum(self.by_topic.values())


class Offsets:
    """Reads offsets of the run's topics and groups."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._admin = AdminClient(settings.admin_config())
        self._partitions: dict[str, int] = {}

    def groups(self, prefix: str) -> list[str]:
        """Consumer groups whose id starts with ``prefix``."""
        result = self._admin.list_consumer_groups(request_timeout=_TIMEOUT_S).result()
        return sorted(g.group_id for g in result.valid if g.group_id.startswith(prefix))

    def topics(self, prefix: str) -> list[str]:
        """Topics whose name starts with ``prefix``."""
        listed = self._admin.list_topics(timeout=_TIMEOUT_S).topics
        return sorted(t for t in listed if t.startswith(prefix))

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (cached)."""
        known = self._partitions.get(topic)
        if known is None:
            meta = self._admin.list_topics(topic, timeout=_TIMEOUT_S)
            known = len(meta.topics[topic].partitions)
            self._partitions[topic] = known
        return known

    def watermarks(self, topics: Iterable[str], *, earliest: bool = False) -> dict[TP, int]:
        """Latest (or earliest) offset of every partition of ``topics``."""
        spec = OffsetSpec.earliest() if earliest else OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {
            TopicPartition(topic, p): spec
            for topic in topics
            for p in range(self.partitions(topic))
        }
        if not request:
            return {}
        for attempt in range(_ATTEMPTS):
            futures = self._admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=_TIMEOUT_S
            )
            try:
                return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
            except KafkaException as exc:
                # A broker that just started or just created the topic may still be
                # moving leader epochs (FENCED_LEADER_EPOCH, NOT_LEADER...): ask again.
                error = exc.args[0]
                transient = error.retriable() or error.code() in _TRANSIENT
                if attempt + 1 == _ATTEMPTS or not transient:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def committed(self, group: str, topics: Iterable[str] | None = None) -> dict[TP, int]:
        """The group's committed offsets (only partitions it has committed)."""
        request = ConsumerGroupTopicPartitions(group)
        if topics is not None:
            request = ConsumerGroupTopicPartitions(
                group,
                [TopicPartition(t, p) for t in topics for p in range(self.partitions(t))],
            )
        futures = self._admin.list_consumer_group_offsets([request], request_timeout=_TIMEOUT_S)
        result = futures[group].result()
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or []
            if tp.offset >= 0 and tp.error is None
        }

    def assigned_topics(self, group: str) -> set[str]:
        """Topics the group's current members are assigned."""
        try:
            description = self._admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)[
                group
            ].result()
        except KafkaException:
            return set()
        return {
            tp.topic
            for member in description.members
            for tp in (member.assignment.topic_partitions if member.assignment else [])
        }

    def lag(self, group: str, only: Iterable[str] | None = None) -> GroupLag:
        """The group's lag per topic now, counting only the topics in ``only`` if given.

        Faust also assigns its table changelogs to the group's
        members, but reads them for recovery and never commits them: they are not input.
        """
        committed = self.committed(group)
        topics = self.assigned_topics(group) | {t for t, _ in committed}
        if only is not None:
            topics &= set(only)
        committed = {tp: o for tp, o in committed.items() if tp[0] in topics}
        latest = self.watermarks(topics)
        earliest = self.watermarks(topics, earliest=True)
        by_topic: dict[str, int] = {}
        for tp, end in latest.items():
            start = committed.get(tp, earliest[tp])
            by_topic[tp[0]] = by_topic.get(tp[0], 0) + max(0, end - start)
        return GroupLag(group, by_topic)

    def delete_all(self, prefix: str) -> tuple[int, int]:
        """Delete every topic and consumer group named ``prefix…``; (topics, groups) asked."""
        topics = self.topics(prefix)
        groups = self.groups(prefix)
        for future in (self._admin.delete_topics(topics) if topics else {}).values():
            future.result()
        if groups:
            for future in self._admin.delete_consumer_groups(groups).values():
                future.result()
        return len(topics), len(groups)

    def consumed(self, groups: Iterable[str], topic: str) -> int:
        """Events of ``topic`` the groups have committed past, summed over partitions.

        With several groups on the same topic (never the case here) this would double
        count; the stream workers share one group.
        """
        return sum(sum(self.committed(g, [topic]).values()) for g in groups)
