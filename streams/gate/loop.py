"""The gate process's consume → cover → decide → publish → commit loop.

One thread, four confluent-kafka clients (the data consumer, the state follower, the
producer, and a consumer that only asks where partitions end, :mod:`streams.gate.ends`)
and an admin client. The data consumer is a member of the gate's own group
(cooperative-sticky), subscribed to ``data.events``. When the group assigns it data
partition *p*, the :class:`StateFollower` starts reading partition *p* of the state
topic (the workers' state table's changelog, with each subject's decision history) and
of intake's progress from their start, and the workers' committed offset of consent
partition *p* (else its first offset) is taken as applied by intake; when *p* is
revoked, what is published is committed and *p*'s subjects are forgotten. Assignment
changes happen inside the data consumer's poll, so never while a batch is in hand.

A batch is whatever has arrived, up to ``GATE_BATCH_SIZE``: waiting for more would only
add delay, and a backlog fills batches anyway. For each batch the loop asks the broker
where its consent partitions end, waits until the state covers them
(:mod:`streams.gate.coverage`; the wait for intake is bounded by
``GATE_INTAKE_WAIT_SECONDS``, and asks the workers' committed offsets again every half
second in case intake's progress records were lost; the reading of the changelog is
not bounded), decides (:class:`~streams.gate.judge.GateJudge`), produces with explicit
partitions and goes on to the next batch without waiting for the broker: a batch's
offsets are stored for commit, and its metrics counted, once every one of its deliveries
and every earlier batch's is confirmed (:mod:`streams.gate.flights`). Nothing is lost,
and after a crash some events are forwarded twice at most. A batch that cannot be
decided, or whose output is not confirmed, is decided or published again after a
backoff, for as long as it takes (the batches after it wait); a stop abandons it
uncommitted.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from prometheus_client import Counter

from schemas.codec import EventDecoder
from schemas.errors import ConfigError, ConsentRelayError
from schemas.runtime.admin import wait_for_broker, wait_for_topics
from schemas.runtime.backoff import RETRY
from schemas.runtime.broker_loss import BrokerWatch, unsteady_limit
from schemas.runtime.confirming_producer import ConfirmingProducer
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.membership import Membership, claim
from streams.engine.wire import RegistryEncoder
from streams.gate.coverage import Coverage, Need
from streams.gate.ends import EndOffsets
from streams.gate.flights import Flight, Flights
from streams.gate.follower import StateFollower
from streams.gate.judge import GateBatch, GateJudge, PublishError
from streams.gate.metrics import GateMetrics
from streams.gate.settings import GateSettings
from streams.gate.state import ConsentStates
from streams.intake.state_topic import StateReader

log = logging.getLogger("streams.gate")

POLL_SECONDS = 0.1
"""Longest a data poll blocks, so a stop and the state's growth are seen promptly."""
LANDING_POLL_SECONDS = 0.005
"""Longest a data poll blocks while published batches wait for their acknowledgements,
so their offsets are stored soon after the broker confirms them."""
COVER_SLICE_SECONDS = 0.002
"""Longest one wait for state or progress records blocks while a batch waits."""
FLOOR_EVERY_SECONDS = 0.5
"""How often a batch waiting for intake asks the workers' committed offsets."""
ADMIN_TIMEOUT_SECONDS = 30.0
DELIVERY_TIMEOUT_SECONDS = 30.0
"""A batch not acknowledged within this is published again."""
CLOSE_TIMEOUT_SECONDS = 30.0
LEAVE_TIMEOUT_SECONDS = 10.0
"""Longest a clean stop waits for the group to take this gate's partitions back."""
TOPIC_WAIT_LOG_SECONDS = 30.0
READING_LOG_SECONDS = 30.0
"""How often a batch waiting for the state to be read says so (that wait has no bound:
deciding on a partly read state could let a restricted subject's data through)."""
FREEZE_EVERY_RECORDS = 10_000
"""State records read between two ``gc.freeze()`` calls. Subjects' states live until
their partition is revoked and hold no reference cycles (reference counting frees them
whatever their generation), so the collector need not walk them again and again: with
~20,000 subjects a full collection took up to 370 ms, a pause in every waiting data
event's delay."""
RETRIABLE = (PublishError, ConsentRelayError, KafkaException, OSError, TimeoutError)
STALE_LEADERS = frozenset(
    {
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)
"""Answers to an admin request that name a partition leader the admin client no longer
has right. After a broker restart librdkafka's admin ListOffsets kept sending the old
leader epoch (FENCED_LEADER_EPOCH for over a minute, until the gate was stopped): a new
admin client asks for fresh metadata."""
_EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


COMMIT_INTERVAL_MS = 1000
"""How often librdkafka commits the offsets stored after each published batch (a
revocation and a stop commit at once): a crash forwards at most this much again."""


class Interrupted(Exception):  # noqa: N818 - a signal between methods, not an error
    """The batch in hand is abandoned: the gate is stopping, or starting again with new
    Kafka clients (:attr:`Gate.lost_broker`)."""


class Gate:
    """The gate: build with settings, :meth:`run` until :meth:`stop`."""

    def __init__(self, kafka: KafkaSettings, settings: GateSettings, metrics: GateMetrics) -> None:
        self.kafka = kafka
        self.topics = kafka.topics
        self.settings = settings
        self.metrics = metrics
        prefix = kafka.topic_prefix
        self.group = settings.group(prefix)
        self.stream_group = settings.stream_group(prefix)
        self.changelog = self.topics.state
        self.registry = kafka.registry_client()
        self.state_reader = StateReader(EventDecoder(self.registry))
        self.states = ConsentStates(self.state_reader.read)
        self.coverage: dict[int, Coverage] = {}
        self.uncommitted: dict[int, int] = {}
        """Data partition → next offset, of batches landed but not yet committed."""
        self.flights = Flights()
        """Batches published whose deliveries are not all confirmed yet."""
        self._stopping = threading.Event()
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self.admin = AdminClient(kafka.admin_config())
        # A static member name: a gate killed and started again gets its partitions back
        # at once instead of after its predecessor's session (GATE_STATIC_MEMBERSHIP).
        self.membership: Membership | None = (
            claim(self.group, settings.group_instance_id) if settings.static_membership else None
        )
        member = {"group.instance.id": self.membership.name} if self.membership else {}
        self._watches = {
            "consumer": BrokerWatch(
                "gate consumer", unsteady_after=unsteady_limit(settings.session_timeout_seconds)
            ),
            "follower": BrokerWatch("gate follower"),
            "producer": BrokerWatch("gate producer"),
            "ends": BrokerWatch("gate end offsets"),
        }
        self.consumer = Consumer(
            kafka.consumer_config(
                self.group,
                session_timeout_seconds=settings.session_timeout_seconds,
                **{"enable.auto.commit": True, "auto.commit.interval.ms": COMMIT_INTERVAL_MS},
                **member,
                **self._watches["consumer"].config(),
            )
        )
        self._subscribed = False
        self.follower = StateFollower(
            Consumer(
                kafka.consumer_config(f"{self.group}.state", **self._watches["follower"].config())
            ),
            self.changelog,
            self.topics.intake_progress,
            self.states,
            self.coverage,
        )
        # Every delivery calls back (each record names its batch's Flight), not only
        # failed ones: librdkafka reports a record it acknowledged implicitly, which the
        # broker may not hold, as a success without an offset (schemas.runtime.delivery), and
        # only a report per record shows that.
        # Not renewed when it forgets every broker: the gate then starts every client again.
        self.producer = ConfirmingProducer(
            kafka,
            "gate producer",
            config=self._watches["producer"].config(),
            full_wait=0.05,
            renew=False,
        )
        asking: dict[str, Any] = {"isolation.level": "read_uncommitted"}
        asking.update(self._watches["ends"].config())
        self.ends = EndOffsets(Consumer(kafka.consumer_config(f"{self.group}.ends", **asking)))
        self.judge: GateJudge | None = None

    # ------------------------------------------------------------- other threads

    def stop(self) -> None:
        """Finish or abandon the batch in hand, commit what is published, close."""
        self._stopping.set()

    @property
    def lost_broker(self) -> bool:
        """Whether one of the gate's Kafka clients forgot every broker
        (:mod:`schemas.runtime.broker_loss`): :meth:`run` then returns, its batch in hand
        uncommitted, for the caller to start a new gate with new clients."""
        return any(watch.lost for watch in self._watches.values())

    def _ending(self) -> bool:
        return self._stopping.is_set() or self.lost_broker

    # ------------------------------------------------------------------- start

    def prepare(self) -> None:
        """Wait for the topics the gate reads and writes (the stream worker creates
        them), check that everything the gate reads is co-partitioned; ConfigError if
        it is not.

        A gate started before its broker or its topics waits for them; :meth:`stop`
        ends the wait."""
        topics = self.topics
        used = (
            topics.consent,
            topics.data_events,
            topics.data_allowed,
            topics.dead_letters,
            topics.intake_progress,
            topics.state,
        )
        if not wait_for_topics(self.kafka, used, stop=self._stopping):
            raise Interrupted
        counts = self._wait_for_changelog()
        wanted = counts[topics.consent]
        together = (topics.consent, topics.data_events, topics.intake_progress, self.changelog)
        odd = {t: counts.get(t) for t in together if counts.get(t) != wanted}
        if odd:
            raise ConfigError(
                "CONSENT_RELAY_PARTITIONS",
                f"{topics.consent} has {wanted} partitions but {odd}: the gate needs them "
                "co-partitioned",
            )
        registry = self.registry
        # Every state record's writer schema before the follower reads the first one.
        self.state_reader.prefetch(registry)
        copartitioned = {name for name, n in counts.items() if n == wanted}
        self.judge = GateJudge(
            policy=self.settings.policy,
            topics=topics,
            state=self.states.subjects,
            decoder=EventDecoder(registry),
            encode=RegistryEncoder(registry),
            copartitioned=frozenset(copartitioned),
        )

    def _wait_for_changelog(self) -> dict[str, int]:
        """Topic → partitions, once the state topic exists (created just before, unless
        the operator's ACLs leave creating it to someone else)."""
        told: float | None = None
        while True:
            try:
                metadata = self.admin.list_topics(timeout=ADMIN_TIMEOUT_SECONDS).topics
            except KafkaException as exc:
                log.warning("gate: no answer from the broker (%s); waiting for it", exc)
                if not wait_for_broker(self.kafka, stop=self._stopping):
                    raise Interrupted from exc
                continue
            if self.changelog in metadata:
                return {name: len(meta.partitions) for name, meta in metadata.items()}
            now = time.monotonic()
            if told is None or now - told >= TOPIC_WAIT_LOG_SECONDS:
                told = now
                log.info("waiting for %s to be created", self.changelog)
            if self._stopping.wait(1.0):
                raise Interrupted

    # ------------------------------------------------------------------- loop

    def run(self) -> None:
        """Process batches until stopped."""
        try:
            try:
                self.prepare()
            except Interrupted:
                return
            self.consumer.subscribe(
                [self.topics.data_events],
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._lost,
            )
            self._subscribed = True
            log.info(
                "gate: group %s as %s, state from %s",
                self.group,
                self.membership.name if self.membership else "a dynamic member",
                self.changelog,
            )
            # What start-up made (modules, clients, the state read so far) lives as long
            # as the process: frozen, full collections no longer walk it. Unfrozen, each
            # paused the gate 32-40 ms (three in 20 s at 2,000 data events/s, logged from
            # a scratch copy), every data event waiting meanwhile delayed as much.
            gc.freeze()
            frozen_at = 0
            while not self._ending():
                self._land()
                self.ends.serve()
                messages = self._next_batch()
                self.follower.drain()
                if messages:
                    self._process(messages)
                self.metrics.subjects.set(len(self.states))
                if self.follower.applied - frozen_at >= FREEZE_EVERY_RECORDS:
                    frozen_at = self.follower.applied
                    gc.freeze()
        except Interrupted:
            log.info("gate: stopping with batches unconfirmed; they are left uncommitted")
        finally:
            self._close()

    def _next_batch(self) -> list[Message]:
        """Whatever has arrived, up to the batch size; waits only for the first one."""
        first = self.consumer.poll(LANDING_POLL_SECONDS if self.flights else POLL_SECONDS)
        if first is None:
            return []
        polled = [first, *self.consumer.consume(self.settings.batch_size - 1, timeout=0)]
        messages = []
        for message in polled:
            error = message.error()
            if error is None:
                # A revocation inside the second call leaves the first call's messages
                # of that partition to its next owner (they are not committed).
                if (message.partition() or 0) in self.coverage:
                    messages.append(message)
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("gate: consumer: %s", error)
        return messages

    def _process(self, messages: list[Message]) -> None:
        """Decide a batch and hand its output to the producer (:meth:`_land` confirms it).
        A batch read once the gate is ending is left uncommitted: after a batch abandoned
        unconfirmed, none may land (its offsets would pass the abandoned one's)."""
        assert self.judge is not None
        if self._ending():
            return
        partitions = {m.partition() or 0 for m in messages}
        offsets: dict[int, int] = {}
        for message in messages:
            offsets[message.partition() or 0] = (message.offset() or 0) + 1
        attempt = 0
        while True:
            try:
                self._await_coverage(partitions)
                batch = self.judge.judge(messages)
                flight = self._send(batch, offsets)
            except Interrupted:
                log.info("gate: a batch of %d is left uncommitted", len(messages))
                return
            except RETRIABLE as exc:
                attempt += 1
                if not self._back_off(f"batch of {len(messages)} not published", exc, attempt):
                    log.info("gate: a batch of %d is left uncommitted", len(messages))
                    return
                continue
            break
        self.flights.add(flight)

    def _back_off(self, what: str, exc: BaseException | str, attempt: int) -> bool:
        """Say why, and wait before the ``attempt``-th try again; False if the gate is
        ending instead."""
        delay = RETRY.delay(attempt)
        why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        log.warning("gate: %s (%s); again in %.1fs", what, why, delay)
        return not (self._stopping.wait(delay) or self.lost_broker)

    # --------------------------------------------------------------- coverage

    def _await_coverage(self, partitions: set[int]) -> None:
        """Until the state covers what was on these consent partitions (bounded)."""
        started = asked_floor = told = time.monotonic()
        ends = self._ends(self.topics.consent, partitions)
        while True:
            self.follower.drain()
            needs = {p: self.coverage[p].need(ends[p]) for p in partitions}
            asking = [p for p, need in needs.items() if need is Need.STATE_END]
            if asking:
                applied = {p: self.coverage[p].applied for p in asking}
                for p, end in self._ends(self.changelog, asking).items():
                    self.coverage[p].asked_end(max(end, 0), applied[p])
                continue
            blocked = {p: need for p, need in needs.items() if need is not None}
            waited = time.monotonic() - started
            if not blocked:
                self.metrics.coverage_wait.observe(waited)
                return
            reading = sorted(p for p, need in blocked.items() if need is not Need.INTAKE)
            if waited >= self.settings.intake_wait_seconds and not reading:
                log.warning(
                    "gate: intake has not applied the consent published on partitions %s "
                    "after %.1fs; deciding on the state read so far",
                    sorted(blocked),
                    waited,
                )
                self.metrics.coverage_timeouts.inc()
                self.metrics.coverage_wait.observe(waited)
                return
            if reading and time.monotonic() - told >= READING_LOG_SECONDS:
                told = time.monotonic()
                log.info("gate: still reading the consent state of partitions %s", reading)
            if self._ending():
                raise Interrupted
            behind = [p for p, need in blocked.items() if need is Need.INTAKE]
            if behind and time.monotonic() - asked_floor >= FLOOR_EVERY_SECONDS:
                asked_floor = time.monotonic()
                for p, offset in self._intake_floor(behind).items():
                    self.coverage[p].intake_reached(offset)
                continue
            self.follower.sync_positions(p for p, need in blocked.items() if need is Need.STATE)
            self.follower.drain(COVER_SLICE_SECONDS)

    def _ends(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """Partition → end offset of ``topic``, asked of the broker now."""
        return self.ends.ask(topic, partitions, ADMIN_TIMEOUT_SECONDS)

    def _list_offsets(self, topic: str, partitions: Iterable[int], spec: Any) -> dict[int, int]:
        asked = {TopicPartition(topic, p): spec for p in partitions}
        futures = self.admin.list_offsets(asked, request_timeout=ADMIN_TIMEOUT_SECONDS)
        try:
            return {tp.partition: future.result().offset for tp, future in futures.items()}
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in STALE_LEADERS:
                log.warning("gate: partition leaders out of date (%s); new admin client", error)
                self.admin = AdminClient(self.kafka.admin_config())
            raise

    def _intake_floor(self, partitions: Iterable[int]) -> dict[int, int]:
        """Consent partition → offset before which intake has applied everything, by the
        workers' committed offsets (intake commits only after publishing); a partition
        with none committed is applied up to its first offset (nothing before it exists)."""
        wanted = sorted(partitions)
        asked = [TopicPartition(self.topics.consent, p) for p in wanted]
        request = [ConsumerGroupTopicPartitions(self.stream_group, asked)]
        futures = self.admin.list_consumer_group_offsets(
            request, request_timeout=ADMIN_TIMEOUT_SECONDS
        )
        found = futures[self.stream_group].result().topic_partitions or []
        floor = {tp.partition: tp.offset for tp in found if tp.offset >= 0}
        missing = [p for p in wanted if p not in floor]
        if missing:
            floor.update(self._list_offsets(self.topics.consent, missing, _EARLIEST))
        return floor

    # ------------------------------------------------------------ rebalances

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        added = sorted(tp.partition for tp in partitions)
        if not added:
            return
        try:
            floor = self._intake_floor(added)
        except (KafkaException, OSError) as exc:
            # Not fatal: a batch waiting for intake asks again every half second.
            log.warning("gate: workers' committed offsets not readable (%s)", exc)
            floor = {}
        for p in added:
            coverage = self.coverage[p] = Coverage()
            coverage.intake_reached(floor.get(p, -1))
        self.follower.follow(added)
        self.metrics.partitions.set(len(self.coverage))
        log.info("gate: assigned %s; rebuilding their consent state", added)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = sorted(tp.partition for tp in partitions)
        # What is published of them is confirmed and committed before they go.
        self._land_all()
        self._commit(asynchronous=False, only=gone)
        self._forget(gone)
        log.info("gate: revoked %s", gone)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = sorted(tp.partition for tp in partitions)
        for p in gone:
            self.uncommitted.pop(p, None)
        # Their batches still in flight land without storing their offsets (_landed
        # stores only the partitions held).
        self._forget(gone)
        log.warning("gate: lost %s (their published batches may be forwarded again)", gone)

    def _forget(self, partitions: list[int]) -> None:
        held = [p for p in partitions if p in self.coverage]
        self.follower.unfollow(held)
        for p in held:
            del self.coverage[p]
        self.metrics.partitions.set(len(self.coverage))
        self.metrics.subjects.set(len(self.states))

    # ---------------------------------------------------------------- output

    def _send(self, batch: GateBatch, offsets: dict[int, int]) -> Flight:
        """Hand every message of ``batch`` to the producer; its Flight hears how each went."""
        flight = Flight(batch, offsets, time.monotonic())
        send = self.producer.send
        for topic, key, value, partition in batch.out:
            if not send(
                topic, value, key, partition=partition, on_delivery=flight, stop=self._ending
            ):
                raise Interrupted
            flight.sent()
        return flight

    def _land(self, *, wait: bool = False) -> None:
        """Store the offsets of, and count, every batch whose deliveries are confirmed
        and that follows none still unconfirmed. A batch with a failed delivery, or none
        confirmed within DELIVERY_TIMEOUT_SECONDS, is published again (the batches after
        it wait). ``wait``: until every batch published has landed.

        Raises Interrupted if the gate ends before a batch published again is confirmed:
        that batch and every later one are left uncommitted."""
        producer = self.producer
        if wait:
            producer.flush(DELIVERY_TIMEOUT_SECONDS)
        else:
            producer.poll(0)
        flights = self.flights
        self._landed(flights.landed())
        first = flights.first
        if first is None:
            return
        overdue = time.monotonic() - first.sent_at >= DELIVERY_TIMEOUT_SECONDS
        if wait or first.failures or overdue:
            self._send_again(flights.take_all())

    def _send_again(self, flights: list[Flight]) -> None:
        """Publish again, in order, each of these batches not confirmed, then land it
        (and each confirmed one) in turn; Interrupted if the gate ends first."""
        # Every report of the batches after the failed one, before any of them lands.
        self.producer.flush(DELIVERY_TIMEOUT_SECONDS)
        for first in flights:
            flight, attempt = first, 0
            while not flight.stored:
                attempt += 1
                size = len(flight.batch.out)
                why = (
                    flight.failures[0]
                    if flight.failures
                    else f"{flight.unreported} of {size} not acknowledged"
                )
                if not self._back_off(f"batch of {size} not confirmed", why, attempt):
                    raise Interrupted
                try:
                    flight = self._send(first.batch, first.offsets)
                except RETRIABLE as exc:
                    log.warning("gate: %s: %s", type(exc).__name__, exc)
                    continue
                self.producer.flush(DELIVERY_TIMEOUT_SECONDS)
            self._landed([flight])

    def _landed(self, flights: list[Flight]) -> None:
        """These batches, oldest first, are published and confirmed: store their offsets
        (for the partitions still held) and count them."""
        if not flights:
            return
        done: dict[int, int] = {}
        for flight in flights:
            done.update(flight.offsets)
            self._count(flight.batch)
        held = {p: o for p, o in done.items() if p in self.coverage}
        if not held:
            return
        self.uncommitted.update(held)
        # Stored, not committed: librdkafka commits the stored offsets every
        # COMMIT_INTERVAL_MS. An asynchronous commit per batch queued hundreds of
        # OffsetCommit requests a second at 2,000 data events/s, and the group
        # coordinator's heartbeats waited behind them until the session ran out: the
        # gate lost its partitions for ~30 s in the bench (librdkafka: "HeartbeatRequest
        # ... possibly held back by preceding OffsetCommitRequest").
        topic = self.topics.data_events
        self.consumer.store_offsets(offsets=[TopicPartition(topic, p, o) for p, o in held.items()])

    def _commit(self, *, asynchronous: bool, only: Iterable[int] | None = None) -> None:
        chosen = self.uncommitted if only is None else set(only) & set(self.uncommitted)
        if not chosen:
            return
        topic = self.topics.data_events
        offsets = [TopicPartition(topic, p, self.uncommitted.pop(p)) for p in list(chosen)]
        if asynchronous:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        else:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def _count(self, batch: GateBatch) -> None:
        """Add a published batch's counts to the metrics."""
        metrics = self.metrics
        for counts, counter in (
            (batch.events, metrics.events),
            (batch.dead_letters, metrics.dead_letters),
            (batch.gate, metrics.decisions),
        ):
            for labels, n in counts.items():
                child = self._children.get((counter, labels))
                if child is None:
                    child = self._children[(counter, labels)] = counter.labels(*labels)
                child.inc(n)
        observe = metrics.delay.observe
        for seconds in batch.delays:
            observe(seconds)

    def _leave_group(self) -> None:
        """Hand the partitions over now. A static member's close() does not leave the
        group (Kafka keeps its partitions for its return until the session times out);
        unsubscribing does, once the revocation (which commits) has run in a poll."""
        if not self._subscribed:
            return
        self.consumer.unsubscribe()
        deadline = time.monotonic() + LEAVE_TIMEOUT_SECONDS
        # A message these polls return is not decided: uncommitted, its next owner has it.
        while self.consumer.assignment() and time.monotonic() < deadline:
            self.consumer.poll(POLL_SECONDS)
        # The LeaveGroup request goes out after the revocation, from librdkafka's thread.
        self.consumer.poll(0.2)

    def _land_all(self) -> None:
        """Wait until every batch published has landed (:meth:`_land`); if the gate ends
        first, the ones that have not are left uncommitted."""
        try:
            self._land(wait=True)
        except Interrupted:
            log.info("gate: stopping with batches unconfirmed; they are left uncommitted")

    def _close(self) -> None:
        # A consumer that forgot every broker can neither commit nor leave: what it
        # published and did not commit is forwarded again by the next gate.
        if not self._watches["consumer"].lost:
            if not self._watches["producer"].lost:
                self._land_all()
            try:
                self._commit(asynchronous=False)
            except KafkaException as exc:
                log.warning("gate: last commit failed (%s); those events will be read again", exc)
            try:
                self._leave_group()
            except KafkaException as exc:
                log.warning("gate: leaving the group failed (%s); it waits for the session", exc)
        try:
            self._watches["consumer"].close(self.consumer)
        finally:
            if self.membership is not None:
                self.membership.release()
        self._watches["follower"].close(self.follower.consumer)
        self._watches["ends"].close(self.ends.consumer)
        if self._watches["producer"].lost:
            # Nothing it holds can be delivered; every batch in it is uncommitted.
            self.producer.purge()
            self.producer.flush(0)
            return
        left = self.producer.flush(CLOSE_TIMEOUT_SECONDS)
        if left:
            log.warning("gate: %d messages not delivered at close", left)
