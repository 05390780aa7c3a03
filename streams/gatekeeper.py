"""The consent gate as a plain confluent-kafka loop in a thread of the worker process.

Faust pushes every event through per-event machinery (tasks, futures, sensors); the gate
needs none of it: it reads data events, looks consent up in the worker's state table and
forwards bytes. So it runs here, in its own thread, with its own consumer and an
idempotent ``acks=all`` producer. Which data partitions it reads is Faust's decision:
:meth:`Gatekeeper.assign` is given the consent partitions Faust assigned this worker
(co-partitioning puts a subject's data and state there) and starts each at the
committed offset of the gate's own consumer group, else at the earliest offset;
:meth:`Gatekeeper.release` gives them up when Faust revokes them. Both only take effect
between batches, in this thread, which alone touches the clients.

A batch is whatever has arrived, up to ``batch_size``: waiting for more would only add
delay, and a backlog fills batches anyway. For each batch the loop waits (bounded) for
intake to apply the consent already published on those partitions, decides
(:class:`~streams.agents.gate.GateJudge`), produces with explicit partitions, flushes,
confirms every delivery, and only then commits the batch's offsets and counts its
metrics: nothing is lost, and after a crash some events are forwarded twice at most.
A batch whose output cannot be published is decided again after a backoff, for as long
as it takes, unless its partitions are taken away first (then it is left uncommitted
for their next owner).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from prometheus_client import Counter

from schemas.errors import ConsentRelayError
from schemas.kafka import KafkaSettings
from streams.agents.batch import PublishError
from streams.agents.context import RETRY_BACKOFF_SECONDS, log
from streams.agents.gate import STAGE, GateBatch, GateJudge, Output, intake_behind
from streams.metrics import StreamMetrics

POLL_SECONDS = 0.1
"""Longest a consume call blocks, so assignment changes and stops are seen promptly."""
INTAKE_POLL_SECONDS = 0.005
DELIVERY_TIMEOUT_SECONDS = 30.0
"""A batch not acknowledged within this is published again (the stream's own bound)."""
CLOSE_TIMEOUT_SECONDS = 30.0
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]
RETRIABLE = (PublishError, ConsentRelayError, KafkaException, OSError, TimeoutError)


class Interrupted(Exception):  # noqa: N818 - a signal between methods, not an error
    """The batch in hand is abandoned: its partitions are being released or we stop."""


class Gatekeeper(threading.Thread):
    """The gate's consume → decide → publish → commit loop."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        judge: GateJudge,
        metrics: StreamMetrics,
        progress: Mapping[int, int],
        *,
        batch_size: int,
        intake_wait_seconds: float,
        stream_group: str | None = None,
        activity: dict[str, str] | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(name="consent-gate", daemon=True)
        self.topics = kafka.topics
        self.judge = judge
        self.metrics = metrics
        self.progress = progress
        self.batch_size = batch_size
        self.intake_wait_seconds = intake_wait_seconds
        self.activity = activity if activity is not None else {}
        self.on_crash = on_crash
        self.stream_group = stream_group
        """The Faust app's group: intake's committed consent offsets, and the gate's own
        data offsets from when it was a Faust agent."""
        self.applied: dict[int, int] = {}
        """Consent partition → last offset intake had committed when we took it over."""
        self.consumer = Consumer(kafka.consumer_config(group_id))
        # Only failed deliveries call back: a flush that leaves nothing and reports no
        # failure means every message of the batch was acknowledged.
        self.producer = Producer(
            kafka.producer_config(
                on_delivery=self._delivered, **{"delivery.report.only.error": True}
            )
        )
        self.admin = AdminClient(kafka.admin_config())
        self.assigned: frozenset[int] = frozenset()
        self.uncommitted: dict[int, int] = {}
        """Data partition → next offset, of batches published but not yet committed."""
        self._requests: queue.Queue[tuple[frozenset[int], threading.Event]] = queue.Queue()
        self._interrupt = threading.Event()
        self._stopping = threading.Event()
        self._failed: list[KafkaError] = []
        self._claimed: set[int] = set()
        """Partitions the gate's group has a committed offset for."""
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}

    # ------------------------------------------------------------ other threads

    def assign(self, partitions: Iterable[int], timeout: float | None = None) -> bool:
        """Read these data partitions from now on; whether the loop took it in time."""
        return self._request(frozenset(partitions), timeout)

    def release(self, timeout: float | None = None) -> bool:
        """Stop reading every partition, committing what is published; whether done in time."""
        return self._request(frozenset(), timeout)

    def stop(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Finish or abandon the batch in hand, commit what is published, close."""
        self._stopping.set()
        self._interrupt.set()
        if self.is_alive():
            self.join(timeout)

    def _request(self, partitions: frozenset[int], timeout: float | None) -> bool:
        done = threading.Event()
        if partitions != self.assigned:
            self._interrupt.set()
        self._requests.put((partitions, done))
        if not self.is_alive():
            return False
        return done.wait(timeout)

    # ------------------------------------------------------------- this thread

    def run(self) -> None:
        """Process batches until stopped; a failure that no retry can fix ends the worker."""
        try:
            while not self._stopping.is_set():
                self._take_requests()
                if not self.assigned:
                    self.activity[STAGE] = "no partitions assigned"
                    self._stopping.wait(POLL_SECONDS)
                    continue
                self.activity[STAGE] = "waiting for a batch"
                messages = self._next_batch()
                if messages:
                    self._process(messages)
        except Exception as exc:  # noqa: BLE001 - a dead gate must take the worker down
            log.exception("%s: the gate loop failed", STAGE)
            if self.on_crash is not None:
                self.on_crash(exc)
        finally:
            self._close()

    def _take_requests(self) -> None:
        while True:
            try:
                partitions, done = self._requests.get_nowait()
            except queue.Empty:
                return
            if partitions != self.assigned:
                self._reassign(partitions)
            done.set()

    def _reassign(self, partitions: frozenset[int]) -> None:
        self._commit(asynchronous=False)
        if self.assigned:
            self.consumer.unassign()
        if not self._stopping.is_set():
            self._interrupt.clear()
        self.assigned = partitions
        if not partitions:
            log.info("%s: released every data partition", STAGE)
            return
        topic = self.topics.data_events
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.applied = self._intake_committed(partitions)
        start = self._start_offsets(wanted)
        self.consumer.assign(start)
        self._claim(start)
        log.info(
            "%s: reading %s from %s",
            STAGE,
            topic,
            {tp.partition: tp.offset for tp in start},
        )

    def _start_offsets(self, wanted: list[TopicPartition]) -> list[TopicPartition]:
        """The gate group's committed offsets; else the Faust group's, from when the gate
        was a Faust agent (so an upgrade does not forward the whole topic again); else
        the earliest."""
        found = {tp.partition: tp.offset for tp in self._committed(wanted)}
        self._claimed = {p for p, o in found.items() if o >= 0}
        missing = [tp for tp in wanted if found.get(tp.partition, -1) < 0]
        if missing and self.stream_group:
            request = [ConsumerGroupTopicPartitions(self.stream_group, missing)]
            futures = self.admin.list_consumer_group_offsets(
                request, request_timeout=CLOSE_TIMEOUT_SECONDS
            )
            legacy = futures[self.stream_group].result().topic_partitions or []
            found.update({tp.partition: tp.offset for tp in legacy if tp.offset >= 0})
        offsets = {p: o if o >= 0 else OFFSET_BEGINNING for p, o in found.items()}
        topic = self.topics.data_events
        return [
            TopicPartition(topic, tp.partition, offsets.get(tp.partition, OFFSET_BEGINNING))
            for tp in wanted
        ]

    def _intake_committed(self, partitions: frozenset[int]) -> dict[int, int]:
        """Consent partition → last offset intake's group has committed (-1: none).
        Tables are recovered before partitions are handed over, so the state holds its
        effects even if intake has processed nothing since this worker started."""
        if not self.stream_group:
            return {}
        asked = [TopicPartition(self.topics.consent, p) for p in sorted(partitions)]
        request = [ConsumerGroupTopicPartitions(self.stream_group, asked)]
        futures = self.admin.list_consumer_group_offsets(
            request, request_timeout=CLOSE_TIMEOUT_SECONDS
        )
        found = futures[self.stream_group].result().topic_partitions or []
        # A partition with nothing committed is known too: intake will read it from the
        # start and report, so the gate waits for that instead of a grace period.
        applied = dict.fromkeys(partitions, -1)
        applied.update({tp.partition: tp.offset - 1 for tp in found if tp.offset > 0})
        return applied

    def _claim(self, start: list[TopicPartition]) -> None:
        """Commit where a partition starts if the gate's group has no offset for it yet, so
        the group shows the gate's lag from the first assignment (tools list a group by
        its committed offsets: with partitions assigned by hand it has no members)."""
        fresh = []
        for tp in start:
            if tp.partition in self._claimed:
                continue
            offset = tp.offset
            if offset == OFFSET_BEGINNING:
                offset, _end = self.consumer.get_watermark_offsets(
                    tp, timeout=CLOSE_TIMEOUT_SECONDS, cached=False
                )
            fresh.append(TopicPartition(tp.topic, tp.partition, offset))
        if fresh:
            self.consumer.commit(offsets=fresh, asynchronous=False)
        self._claimed.update(tp.partition for tp in start)

    def _committed(self, wanted: list[TopicPartition]) -> list[TopicPartition]:
        for delay in RETRY_BACKOFF_SECONDS:
            try:
                found: list[TopicPartition] = self.consumer.committed(
                    wanted, timeout=CLOSE_TIMEOUT_SECONDS
                )
            except KafkaException as exc:
                log.warning("%s: committed offsets not readable (%s); again", STAGE, exc)
                time.sleep(delay)
                continue
            return found
        return list(self.consumer.committed(wanted, timeout=CLOSE_TIMEOUT_SECONDS))

    def _next_batch(self) -> list[Message]:
        """Whatever has arrived, up to the batch size; waits only for the first one."""
        first = self.consumer.poll(POLL_SECONDS)
        if first is None:
            return []
        polled = [first, *self.consumer.consume(self.batch_size - 1, timeout=0)]
        messages = []
        for message in polled:
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("%s: consumer: %s", STAGE, error)
        return messages

    def _process(self, messages: list[Message]) -> None:
        attempt = 0
        while True:
            try:
                self._wait_for_intake({m.partition() or 0 for m in messages})
                self.activity[STAGE] = f"deciding {len(messages)} data events"
                batch = self.judge.judge(messages)
                self.activity[STAGE] = f"publishing {len(batch.out)} messages"
                self._publish(batch.out)
            except Interrupted:
                log.info(
                    "%s: batch of %d left for the partitions' next owner", STAGE, len(messages)
                )
                return
            except RETRIABLE as exc:
                delay = RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS) - 1)]
                log.warning(
                    "%s: batch of %d not published (%s: %s); retrying in %.1fs",
                    STAGE,
                    len(messages),
                    type(exc).__name__,
                    exc,
                    delay,
                )
                attempt += 1
                if self._interrupt.wait(delay):
                    return
                continue
            break
        for message in messages:
            self.uncommitted[message.partition() or 0] = (message.offset() or 0) + 1
        self._commit(asynchronous=True)
        self._count(batch)
        self.activity[STAGE] = "committed a batch"

    def _wait_for_intake(self, partitions: set[int]) -> None:
        """Until intake has applied what is on these consent partitions now (bounded)."""
        self.activity[STAGE] = "waiting for intake to catch up"
        topic = self.topics.consent
        asked = {TopicPartition(topic, p): _LATEST for p in partitions}
        futures = self.admin.list_offsets(asked, request_timeout=DELIVERY_TIMEOUT_SECONDS)
        ends: dict[int, int | None] = {
            tp.partition: future.result().offset for tp, future in futures.items()
        }
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            behind = intake_behind(ends, self.progress, waited, self.applied)
            if not behind:
                return
            if waited >= self.intake_wait_seconds:
                log.warning(
                    "%s: intake still behind on consent partitions %s after %.0fs; deciding",
                    STAGE,
                    sorted(behind),
                    waited,
                )
                return
            if self._interrupt.wait(INTAKE_POLL_SECONDS):
                raise Interrupted

    def _publish(self, out: list[Output]) -> None:
        """Produce every message and wait until the broker has acknowledged each."""
        self._failed.clear()
        produce = self.producer.produce
        for topic, key, value, partition in out:
            while True:
                try:
                    produce(topic, value, key, -1 if partition is None else partition)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        left = self.producer.flush(DELIVERY_TIMEOUT_SECONDS)
        if left or self._failed:
            first = self._failed[0] if self._failed else None
            raise PublishError(f"{left} not acknowledged, {len(self._failed)} failed ({first})")

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failed.append(error)

    def _commit(self, *, asynchronous: bool) -> None:
        if not self.uncommitted:
            return
        topic = self.topics.data_events
        offsets = [TopicPartition(topic, p, o) for p, o in self.uncommitted.items()]
        if asynchronous:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        else:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        self.uncommitted.clear()

    def _count(self, batch: GateBatch) -> None:
        """Add a published batch's counts to the worker's metrics."""
        metrics = self.metrics
        for counts, counter in (
            (batch.events, metrics.events),
            (batch.dead_letters, metrics.dead_letters),
            (batch.gate, metrics.gate_events),
        ):
            for labels, n in counts.items():
                child = self._children.get((counter, labels))
                if child is None:
                    child = self._children[(counter, labels)] = counter.labels(*labels)
                child.inc(n)
        observe = metrics.gate_delay.observe
        for seconds in batch.delays:
            observe(seconds)

    def _close(self) -> None:
        try:
            self._commit(asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: last commit failed (%s); those events will be read again", STAGE, exc)
        self.consumer.close()
        left = self.producer.flush(CLOSE_TIMEOUT_SECONDS)
        if left:
            log.warning("%s: %d messages not delivered at close", STAGE, left)
        self.activity[STAGE] = "stopped"
