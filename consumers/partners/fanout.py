"""The partner sink's one consumer: fetch each instruction record once, hand it to the
partners it names, commit what every one of them has made durable.

One consumer group (``PARTNER_SINK_GROUP_ID``, ``<prefix>consent-relay.sink.partner_sharing`` by
default) spreads the partners' topic over the sink's processes; in each, this consumer
fetches every record of its partitions once and dispatches it to the lanes its
destination header names (:class:`~consumers.partners.lanes.Lanes`); each partner's
pipeline (:class:`~consumers.partners.lane.LaneRunner`) applies, answers and
dead-letters its own items as before. Sixteen consumers fetching the same records, most
of them to skip, cost the process more than anything else it did.

Offsets: every ``commit_interval_seconds`` (and on a revocation and a clean stop) it
commits, per partition, the lowest position over every partner, with the positions of
the partners ahead in the commit's metadata (:meth:`Lanes.commits`); when a partition is
assigned, each partner starts from its own position again (:meth:`Lanes.assign`). So a
restart, a rebalance or a SIGKILL resumes every partner where it was, skipping nothing
one of them has not made durable and handing none of them again what it has answered. A
revocation first lets the partners finish the chunks they are working on with records
of the partitions going (bounded by :data:`SETTLE_TIMEOUT_SECONDS`), so the next owner
starts after them instead of calling a partner again, or ahead of a call still in flight.
A partition handed back is given the consumer's current pause state: librdkafka keeps a
partition's pause across its revocation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import (
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from consumers.committed import read_committed
from consumers.metrics import SinkMetrics
from consumers.partners.lanes import TP, Committed, Lanes, decode_positions
from consumers.pipeline.telemetry import record_lag, replaced_counter
from consumers.settings import RunnerSettings
from schemas.runtime.broker_loss import BrokerWatch, close_lost, unsteady_limit
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.membership import Membership, claim

log = logging.getLogger(__name__)

BLOCKED_WAIT_SECONDS: Final = 0.05
"""How long the paused dispatcher waits for a lane to take records before looking again."""
COMMITTED_TIMEOUT_SECONDS: Final = 30.0
"""Longest an assignment waits to read the committed offsets (a coordinator loading)."""
LEAVE_TIMEOUT_SECONDS: Final = 10.0
"""Longest a clean stop waits for the group to take this member's partitions back."""
SETTLE_TIMEOUT_SECONDS: Final = 30.0
"""Longest a revocation waits for the partners' chunks in flight on the partitions going
(a webhook call of a few seconds, its receipts' acknowledgement), well below the group's
rebalance timeout (``max.poll.interval.ms``, 300 s)."""


class Fanout:
    """Fetches the partners' topic once for every lane of the process; see the module doc."""

    def __init__(
        self,
        kafka: KafkaSettings,
        options: RunnerSettings,
        lanes: Lanes,
        *,
        group_id: str,
        topic: str,
        metrics: SinkMetrics,
    ) -> None:
        self.kafka = kafka
        self.options = options
        self.lanes = lanes
        self.group_id = group_id
        self.topic = topic
        self.metrics = metrics
        self.ready = threading.Event()
        """Set once the consumer has subscribed."""
        self._stop = threading.Event()
        self._lanes_stopped = threading.Event()
        self._consumer: Consumer | None = None
        self._membership: Membership | None = None
        self._committed: dict[TP, tuple[int, str]] = {}
        self._commit_at = 0.0
        self._paused = False
        self._watch: BrokerWatch | None = None

    def stop(self) -> None:
        """Stop fetching; the last commit waits for :meth:`lanes_stopped`."""
        self._stop.set()

    def lanes_stopped(self) -> None:
        """Every lane has finished and reported its last work: commit it and leave."""
        self._lanes_stopped.set()

    def run(self) -> None:
        """Fetch and dispatch until :meth:`stop`, then (once the lanes have stopped)
        commit and leave the group; raises on a fatal consumer error."""
        consumer = self._subscribe()
        try:
            self.ready.set()
            log.info("consuming %s once for every partner, as group %s", self.topic, self.group_id)
            while not self._stop.is_set():
                if self._watch is not None and self._watch.lost:
                    replaced_counter(self.metrics, self.group_id)()
                    consumer = self._start_over(consumer)
                self._step(consumer)
            # The lanes report their last durable work as they stop: commit it, then leave.
            self._lanes_stopped.wait()
            self._commit(sync=True)
            self._leave_group(consumer)
        finally:
            self._consumer = None
            if self._watch is not None:
                self._watch.close(consumer)
            else:
                consumer.close()
            if self._membership is not None:
                self._membership.release()

    def _subscribe(self) -> Consumer:
        """A new consumer in the group, watched for the loss of every broker."""
        consumer = self._consumer = Consumer(self._config())
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        return consumer

    def _start_over(self, consumer: Consumer) -> Consumer:
        """A new consumer in place of one that forgot every broker or stays unsteady in
        its group (:mod:`schemas.runtime.broker_loss`, as the runner does). Its partitions count as
        lost: whoever is assigned them next (this process, usually) starts every partner
        from the last commit, which never passed what a partner had not made durable."""
        self._forget(self.lanes.assigned())
        self._paused = False
        self._consumer = None  # its callbacks are ignored from now on
        close_lost(consumer, f"partner sink {self.group_id}")
        return self._subscribe()

    def _step(self, consumer: Consumer) -> None:
        detached = self.lanes.detach_full()
        if detached:
            log.warning("partner(s) %s far behind: reading on by themselves", ", ".join(detached))
        if self.lanes.blocked():
            # A lane is full: fetch nothing more until it takes some or is detached.
            # Polling keeps the membership and runs rebalances; paused, it delivers none
            # (one fetched before the pause is dispatched: a bound a few over is fine).
            consumer.pause(consumer.assignment())
            self._paused = True
            polled = consumer.poll(0)
            if polled is not None and usable(polled):
                self.lanes.dispatch([polled])
            self.lanes.wait_for_room(BLOCKED_WAIT_SECONDS)
        else:
            if self._paused:
                consumer.resume(consumer.assignment())
                self._paused = False
            self._fetch(consumer)
        if time.monotonic() >= self._commit_at:
            self._commit(sync=False)

    def _fetch(self, consumer: Consumer) -> None:
        """Wait for the first record, then take whatever else is fetched already."""
        first = consumer.poll(self.options.poll_timeout_seconds)
        if first is None:
            return
        batch = [first]
        if self.options.batch_size > 1:
            batch.extend(consumer.consume(self.options.batch_size - 1, 0))
        self.lanes.dispatch([m for m in batch if usable(m)])

    def _commit(self, *, sync: bool, only: set[TP] | None = None) -> None:
        """Commit every partition whose lowest position moved (or ``only`` those); a
        synchronous commit (a revocation, a stop) sends every position, moved or not,
        since an earlier asynchronous one may have failed unseen."""
        self._commit_at = time.monotonic() + self.options.commit_interval_seconds
        consumer = self._consumer
        if consumer is None:
            return
        due = {
            tp: commit
            for tp, commit in self.lanes.commits().items()
            if (only is None or tp in only) and (sync or self._committed.get(tp) != commit)
        }
        if not due:
            return
        offsets = [TopicPartition(t, p, o, metadata) for (t, p), (o, metadata) in due.items()]
        try:
            if sync:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # Uncommitted work is handed over again, and each partner drops what it answered.
            log.warning("commit failed, will be redelivered: %s", exc)
            return
        self._committed.update(due)

    # -- rebalancing -----------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return  # a consumer being thrown away (_start_over)
        committed: dict[TP, Committed | None] = {}
        for tp in read_committed(consumer, partitions, COMMITTED_TIMEOUT_SECONDS):
            key = (tp.topic, tp.partition)
            committed[key] = (
                Committed(tp.offset, decode_positions(tp.metadata)) if tp.offset >= 0 else None
            )
        starts = self.lanes.assign(committed)
        assigned = [
            TopicPartition(t, p, OFFSET_STORED if start is None else start)
            for (t, p), start in starts.items()
        ]
        consumer.incremental_assign(assigned)
        # librdkafka keeps a partition's pause across its revocation and a later assignment:
        # one paused while a lane was full, taken away, and handed back after the consumer
        # resumed what it held would never be fetched again. Give it the current state.
        if self._paused:
            consumer.pause(assigned)
        else:
            consumer.resume(assigned)
        log.info("assigned %s", sorted(p for _, p in starts))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        gone = {(tp.topic, tp.partition) for tp in partitions}
        # A partner's pipeline may be calling its partner with records of these right now
        # (it runs in its own thread, unlike a runner's own consumer, whose callbacks run
        # between its chunks). Committed before they finish, they would be handed to the
        # next owner while the call goes on: the partner called twice, and a later
        # instruction for the same person could reach it before this earlier one.
        self.lanes.release(gone)
        if not self.lanes.wait_settled(gone, SETTLE_TIMEOUT_SECONDS):
            log.warning(
                "revoked partitions still in a partner's work after %.0f s: "
                "committing what is finished",
                SETTLE_TIMEOUT_SECONDS,
            )
        self._commit(sync=True, only=gone)
        self._forget(gone)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        self._forget({(tp.topic, tp.partition) for tp in partitions})

    def _forget(self, gone: set[TP]) -> None:
        self.lanes.revoke(gone)
        for key in gone:
            self._committed.pop(key, None)

    def _leave_group(self, consumer: Consumer) -> None:
        """Hand the partitions over now (a static member's close() would not)."""
        consumer.unsubscribe()
        deadline = time.monotonic() + LEAVE_TIMEOUT_SECONDS
        while consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.1)
        consumer.poll(0.2)

    def _config(self) -> dict[str, object]:
        options = self.options
        watch = self._watch = BrokerWatch(
            f"partner sink {self.group_id}",
            self._on_stats,
            unsteady_after=unsteady_limit(options.session_timeout_seconds),
        )
        overrides: dict[str, object] = {
            **watch.config(),
            "on_commit": self._on_commit,
            "queued.max.messages.kbytes": options.prefetch_kbytes,
        }
        if options.static_membership:
            if self._membership is None:
                self._membership = claim(self.group_id, options.group_instance_id)
            overrides["group.instance.id"] = self._membership.name
        return self.kafka.consumer_config(
            self.group_id, session_timeout_seconds=options.session_timeout_seconds, **overrides
        )

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """An asynchronous commit's outcome: one that failed (a rebalance in progress, a
        coordinator moving) is sent again at the next commit, even if nothing moved."""
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        if not failed:
            return
        log.warning(
            "commit of %d partition(s) failed, will be sent again: %s",
            len(failed),
            error.str() if error is not None else failed[0].error,
        )
        for tp in failed:
            self._committed.pop((tp.topic, tp.partition), None)

    def _on_stats(self, stats: Mapping[str, Any]) -> None:
        record_lag(self.metrics, self.group_id, stats)


def usable(message: Message) -> bool:
    """Whether ``message`` is a record (not an error event); raises on a fatal error."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", error)
    return False
