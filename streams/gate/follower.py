"""Following the consent state of the gate's partitions: the state changelog and intake's
progress, read from their start and kept up with as they grow.

One assign-only consumer (it never joins a group or commits: the gate always rebuilds
from the start) reads, for every data partition the gate holds, the same partition of
the workers' state changelog (into :class:`~streams.gate.state.ConsentStates`) and of
the intake progress topic (into that partition's
:class:`~streams.gate.coverage.Coverage`). The gate's loop calls :meth:`drain` between
batches and while a batch waits for coverage; nothing here runs on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from streams.gate.coverage import Coverage
from streams.gate.state import ConsentStates
from streams.intake import progress

log = logging.getLogger("streams.gate")

DRAIN_CHUNK = 5000
"""Records taken per consume call: bounds how long one call holds the loop."""
DRAIN_MOST = 50_000
"""Records applied per :meth:`StateFollower.drain` call, so a partition being rebuilt
(a million subjects) does not keep the loop from the other partitions' data for long."""


class StateFollower:
    """Keeps :class:`ConsentStates` and each partition's :class:`Coverage` up to date."""

    def __init__(
        self,
        consumer: Consumer,
        changelog: str,
        progress_topic: str,
        states: ConsentStates,
        coverage: Mapping[int, Coverage],
    ) -> None:
        self.consumer = consumer
        self.changelog = changelog
        self.progress_topic = progress_topic
        self.states = states
        self.coverage = coverage
        self.applied = 0
        """Records read since the start (the loop freezes the collector's view by it)."""

    def _pairs(self, partitions: Iterable[int]) -> list[TopicPartition]:
        return [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for p in sorted(partitions)
            for topic in (self.changelog, self.progress_topic)
        ]

    def follow(self, partitions: Iterable[int]) -> None:
        """Read these partitions' state and progress from their start, from now on (the
        caller has put a fresh Coverage for each into ``coverage``)."""
        wanted = self._pairs(partitions)
        for tp in wanted:
            if tp.topic == self.changelog:
                self.states.hold(tp.partition)
        if wanted:
            self.consumer.incremental_assign(wanted)

    def unfollow(self, partitions: Iterable[int]) -> None:
        """Stop reading these partitions and forget their subjects."""
        dropped = self._pairs(partitions)
        if dropped:
            self.consumer.incremental_unassign(dropped)
        for p in {tp.partition for tp in dropped}:
            self.states.drop(p)

    def drain(self, timeout: float = 0.0) -> int:
        """Apply what has arrived (waiting up to ``timeout`` for the first record);
        how many records were applied."""
        applied = 0
        wait = timeout
        while applied < DRAIN_MOST:
            messages = self.consumer.consume(DRAIN_CHUNK, timeout=wait)
            if not messages:
                break
            for message in messages:
                self._apply(message)
            applied += len(messages)
            wait = 0.0
        self.applied += applied
        return applied

    def _apply(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("state follower: %s", error)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        coverage = self.coverage.get(partition)
        if coverage is None:
            return  # revoked since it was fetched
        if message.topic() == self.changelog:
            self.states.apply(partition, message.key(), message.value())
            coverage.read_to(offset + 1)
            return
        try:
            record = progress.decode(message.key(), message.value())
        except progress.ProgressRecordError as exc:
            log.warning("intake progress partition %d offset %d: %s", partition, offset, exc)
            return
        if record.partition == partition:
            coverage.intake_reached(record.offset)

    def sync_positions(self, partitions: Iterable[int]) -> None:
        """Take the consumer's position on these partitions' changelog as read (it passes
        offsets that hold no record for the gate, e.g. removed by compaction)."""
        asked = [TopicPartition(self.changelog, p) for p in partitions]
        if not asked:
            return
        for tp in self.consumer.position(asked):
            coverage = self.coverage.get(tp.partition)
            if coverage is not None and tp.offset >= 0:
                coverage.read_to(tp.offset)

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()
