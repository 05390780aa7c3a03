"""The one runner behind every sink: consume instructions, apply, receipt, commit.

Messages of the sink's family's instruction topic (``Topics.instructions(family)``)
are taken in chunks (whatever has been fetched, up to ``batch_size``), in partition
order: those whose destination header does not name the sink's destination are
skipped undecoded (a shared topic), undecodable ones are dead-lettered; a message is an
InstructionIssued, or an InstructionsIssued of which the sink takes only its own
destination's items (the partners' topic, whose one consumer feeds every partner's
runner: :mod:`consumers.partners.fanout`); the instructions the sink handles are applied, in
one call to ``apply_batch`` when the sink offers it (one database transaction), else
one by one;
then each whose ``receipt_requested`` is set (the stream tracks the event: a
withdrawal or a rights request) gets its :class:`~schemas.events.PropagationReceipt`
(APPLIED, SKIPPED or FAILED), sent with the chunk's others as one
:class:`~schemas.events.InstructionsAnswered` per partition; a grant's instruction is
applied and counted but not answered, since nothing waits for its proof. Only once
every receipt and dead letter is acknowledged are offsets stored and committed
(at-least-once; sinks are idempotent per instruction id). A retriable failure pauses
consumption and retries the same work with jittered exponential backoff until it
succeeds, so nothing is committed past it;
a permanent failure is dead-lettered with its coordinates (and, if a receipt was
requested, answered with a FAILED one). An empty store is first seeded from the
consent-state topic. :meth:`SinkRunner.stop` (SIGTERM in :func:`run_sink`) finishes
the chunk in flight, flushes, commits, closes.

Duplicates cost nothing downstream. The same instruction id can arrive again: a
producer re-sending an event, a stream re-processing a batch, a redelivery after a
crash. Copies within a chunk are one instruction (applied and answered once, at its
first position). Across chunks, a sink that :class:`~consumers.protocol.RemembersAnswers`
is asked which of the chunk's ids it has *answered*, and those get no second effect
(no second partner call) and no second receipt, only a count in
``consent_relay_sink_duplicates_total``.

Why "answered" and not "applied": the receipt is what proves propagation, and a sink
that crashed after applying but before the broker acknowledged the receipt must
still send it when the instruction comes back. So an instruction is remembered as
answered only after the flush that acknowledged its receipt (grants, which want
none, after the same flush), and only if it was APPLIED or SKIPPED: a FAILED one
(dead-lettered) is attempted again normally when it returns, e.g. redriven. A crash
between that flush and ``remember`` loses nothing: the instruction is not
remembered, so its redelivery is applied again idempotently (the store answers its
first result, a partner is not called twice) and answered again with the same
receipt id, which the stream counts once. Remembering that fails is logged and has
the same effect. Only a *recent* answer (``duplicate_window_seconds``, an hour by
default) silences a duplicate: the stream keeps a subject's last 50 completed
propagations, and a duplicate of an event it has forgotten starts a new one that
waits for receipts, so an older duplicate is answered again, still without a second
effect.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from types import FrameType
from typing import Any, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client.metrics import MetricWrapperBase

from consumers.bootstrap import SeedsFromAvro, SeedsInBatches, bootstrap
from consumers.groups import adopt_legacy_group, default_group, legacy_group
from consumers.instruction_records import (
    SharedInstructions,
    decode_instructions,
    shared_instructions,
)
from consumers.metrics import SinkMetrics, consumer_lag
from consumers.protocol import (
    AppliesBatches,
    FinishesBootstrap,
    PermanentSinkError,
    RemembersAnswers,
    RetriableSinkError,
    ServesHttp,
    Sink,
    SinkError,
    SinkResult,
)
from consumers.publisher import DeliveryError, Publisher, build_dead_letter, build_receipt
from consumers.settings import RunnerSettings
from consumers.shared_decodes import SharedDecodes
from consumers.shared_producer import SharedProducer
from schemas.codec import EventDecoder
from schemas.errors import (
    ConfigError,
    ConsentRelayError,
    InvalidEventError,
    RegistryUnavailableError,
)
from schemas.events import InstructionIssued, utc_now
from schemas.runtime.backoff import Backoff
from schemas.runtime.broker_loss import BrokerWatch, unsteady_limit
from schemas.runtime.http_server import HttpServer, Route, health_route, metrics_route
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.membership import Membership, claim
from schemas.runtime.observability import configure_logging
from schemas.runtime.settings import load
from schemas.taxonomy import Outcome, SinkFamily
from schemas.topics import DESTINATION_HEADER, names_destination

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=MetricWrapperBase)
S = TypeVar("S", bound=RunnerSettings)

DEFAULT_PORTS: Mapping[SinkFamily, int] = {
    SinkFamily.MARKETING: 8091,
    SinkFamily.ANALYTICS: 8092,
    SinkFamily.PARTNER_SHARING: 8093,
}
"""Each family's default port for /metrics and its API."""

RETRIABLE = (RetriableSinkError, RegistryUnavailableError)
"""Failures that mean "not now": wait and try the same message again."""

FLUSH_TIMEOUT_SECONDS = 330.0
"""Longest a flush waits for receipts and dead letters to be acknowledged. The
producer's own delivery timeout (librdkafka's message.timeout.ms, 300 s) fails a
message first, so a broker outage shorter than that stalls the sink, as it must,
instead of ending it as an unacknowledged flush."""

LEAVE_TIMEOUT_SECONDS = 10.0
"""Longest a clean stop waits for the group to take this member's partitions back."""

STORE = "store"
"""Destination label of retries while bootstrapping (no instruction, the sink's store)."""
REGISTRY = "schema_registry"
"""Destination label of retries while the schema registry is unreachable."""


@dataclass(frozen=True, slots=True)
class _Item:
    """One accepted message of a chunk: its instructions this sink handles, or the
    reason it cannot be decoded."""

    message: Message
    instructions: tuple[InstructionIssued, ...]
    error: InvalidEventError | None


def _partition(message: Message) -> tuple[str, int]:
    return message.topic() or "", message.partition() or 0


def _coordinates(message: Message) -> tuple[str, int, int]:
    return message.topic() or "", message.partition() or 0, message.offset() or 0


class _AbandonedError(Exception):
    """The message in flight must be left uncommitted (stopping, or partition revoked)."""


class SinkRunner:
    """Drives one sink from its instruction topic until :meth:`stop` is called."""

    def __init__(
        self,
        sink: Sink,
        settings: KafkaSettings,
        *,
        group_id: str | None = None,
        family: SinkFamily | None = None,
        metrics_port: int | None = None,
        options: RunnerSettings | None = None,
        routes: Mapping[str, Route] | None = None,
        serve_http: bool = True,
        backoff: Backoff | None = None,
        producer: SharedProducer | None = None,
        decodes: SharedDecodes[SharedInstructions] | None = None,
    ) -> None:
        """Build a runner; nothing connects until :meth:`run`.

        ``metrics_port`` None means ``options.http_port`` or the family's default;
        0 picks a free port (see :attr:`http_port`). ``routes`` are served next to
        ``/metrics`` and ``/healthz``, as are the sink's own if it has
        :class:`~consumers.protocol.ServesHttp`. ``producer``: receipts and dead letters
        go through that one, shared with other runners of the process, instead of a
        producer of this runner's own. ``decodes``: records another runner of the process
        has decoded already are taken from there.
        """
        self.sink = sink
        # What the sink offers, asked once: a check against a protocol costs tens of
        # microseconds, and chunks come by the thousand.
        self._batches = sink if isinstance(sink, AppliesBatches) else None
        self._remembers = sink if isinstance(sink, RemembersAnswers) else None
        self.settings = settings
        self.options = options or RunnerSettings()
        self.family = family or sink.family
        chosen = group_id or self.options.group_id
        self.group_id = chosen or default_group(self.family, settings.topic_prefix)
        self._legacy_group = None if chosen else legacy_group(self.family)
        """The name this group had before it took the topic prefix (when it is the default)."""
        self.topic = settings.topics.instructions(self.family)
        self.stage = f"sink.{self.family.value.lower()}"
        self.metrics = SinkMetrics.create()
        self.backoff = backoff or Backoff(
            self.options.backoff_initial_seconds, self.options.backoff_max_seconds
        )
        port = self.options.http_port or DEFAULT_PORTS[self.family]
        self._port = port if metrics_port is None else metrics_port
        self._routes: dict[str, Route] = {
            "/metrics": metrics_route(self.metrics.registry),
            "/healthz": health_route,
        }
        if isinstance(sink, ServesHttp):
            self._routes.update(sink.http_routes())
        self._routes.update(routes or {})
        self._serve_http = serve_http
        self._http: HttpServer | None = None
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._membership: Membership | None = None
        self._publisher: Publisher | None = None
        self._shared_producer = producer
        self._decodes = decodes
        self._registry: SchemaRegistryClient | None = None
        self._decoder = EventDecoder(None)
        self._pending: deque[Message] = deque()
        self._done: dict[tuple[str, int], int] = {}
        self._finished: set[tuple[str, int, int]] = set()
        self._answered: list[str] = []
        """Ids answered since the last flush: remembered once their receipts are acked."""
        self._assigned: set[tuple[str, int]] = set()
        self._paused = False
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        """Labelled metrics already looked up (:meth:`_labelled`)."""
        self._broker_watch: BrokerWatch | None = None
        self._stored = False
        """Offsets stored since the last commit this runner asked for."""
        self.ready = threading.Event()
        """Set once bootstrap is over and the runner consumes instructions."""

    @property
    def http_port(self) -> int | None:
        """The port /metrics is served on, once :meth:`run` has started it."""
        return self._http.port if self._http is not None else None

    def stop(self) -> None:
        """Ask the runner to finish the chunk in flight, commit and return; a retry
        wait is cut short, leaving its work uncommitted for the next run.

        Safe to call from a signal handler or another thread.
        """
        self._stop.set()

    def run(self) -> None:
        """Consume and apply until :meth:`stop`; raises on a fatal error, uncommitted."""
        if self._serve_http:
            self._http = HttpServer(
                self.options.http_host, self._port, self._routes, token=self.options.api_token
            ).start()
        clean = False
        try:
            self._registry = self.settings.registry_client()
            self._decoder = EventDecoder(self._registry)
            self._publisher = Publisher(
                self.settings,
                self._registry,
                self._shared_producer,
                on_replaced=self.metrics.clients_replaced.labels(f"{self.group_id} producer").inc,
            )
            try:
                if self._retrying(self.sink.needs_bootstrap, STORE):
                    self._bootstrap()
                if not self._stop.is_set():
                    self._consume()
            except _AbandonedError:
                log.info("stopped while waiting for a retry")
            clean = True
        finally:
            self._shutdown(clean)

    # -- bootstrap -----------------------------------------------------------------

    def _bootstrap(self) -> None:
        log.info("store is empty: seeding it from %s", self.settings.topics.state)
        try:
            sink = self.sink
            count = bootstrap(
                self.settings,
                group_id=self.group_id,
                decoder=self._decoder,
                on_state=lambda state: self._retrying(lambda: sink.bootstrap(state), STORE),
                on_states=(
                    (lambda states: self._retrying(lambda: sink.bootstrap_batch(states), STORE))
                    if isinstance(sink, SeedsInBatches)
                    else None
                ),
                on_avro=(
                    (lambda states: self._retrying(lambda: sink.seed_avro_batch(states), STORE))
                    if isinstance(sink, SeedsFromAvro)
                    else None
                ),
                on_invalid=lambda message, exc: self._dead_letter(message, exc, "bootstrap"),
                stop=self._stop,
                timeout=self.options.bootstrap_timeout_seconds,
            )
            self._flush()
            if self._stop.is_set():
                log.info("stopped during bootstrap after %d state record(s)", count)
                return
            if isinstance(self.sink, FinishesBootstrap):
                self._retrying(self.sink.bootstrap_finished, STORE)
        except _AbandonedError:
            log.info("stopped during bootstrap")
            return
        log.info("bootstrap done: %d state record(s)", count)

    # -- consuming -----------------------------------------------------------------

    def _consume(self) -> None:
        if self._legacy_group is not None:
            adopt_legacy_group(
                self.settings, self.group_id, self._legacy_group, self.topic, stop=self._stop
            )
        consumer = self._subscribe()
        self.ready.set()
        log.info("consuming %s as group %s", self.topic, self.group_id)
        undelivered = 0
        while not self._stop.is_set():
            if self._broker_watch is not None and self._broker_watch.lost:
                self.metrics.clients_replaced.labels(self.group_id).inc()
                consumer = self._start_over(consumer)
            try:
                self._step(consumer)
                undelivered = 0
            except DeliveryError as exc:
                # A receipt or dead letter the broker did not take (a producer that forgot
                # every broker fails all it held): nothing past it was committed, so read
                # again from the last commit, as after a crash, without one.
                self._drop_uncommitted()
                undelivered += 1
                delay = self.backoff.delay(undelivered)
                log.warning("%s; reading again from the last commit in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    raise _AbandonedError from exc
                consumer = self._start_over(consumer)

    def _step(self, consumer: Consumer) -> None:
        """Fetch if nothing is pending, process a chunk, make it durable."""
        if not self._pending:
            self._fetch(consumer)
        chunk = [
            self._pending.popleft() for _ in range(min(len(self._pending), self.options.batch_size))
        ]
        self._finished.clear()
        try:
            self._process(chunk)
        except _AbandonedError:
            # Put back what is unfinished on partitions still ours, ahead of later
            # messages, so nothing is skipped and per-partition order holds.
            keep = [
                m
                for m in chunk
                if _coordinates(m) not in self._finished and _partition(m) in self._assigned
            ]
            self._pending.extendleft(reversed(keep))
            self._resume()
        self._checkpoint()

    def _drop_uncommitted(self) -> None:
        """Forget what was fetched, finished or answered and not committed: none of it
        may be committed now (a stop commits what is finished)."""
        self._forget([TopicPartition(t, p) for t, p in self._assigned])
        self._answered.clear()  # their receipts were not acknowledged

    def _subscribe(self) -> Consumer:
        """A new consumer in the group, watched for the loss of every broker."""
        watch = self._broker_watch = BrokerWatch(
            f"sink {self.group_id}",
            self._on_stats,
            unsteady_after=unsteady_limit(self.options.session_timeout_seconds),
        )
        overrides: dict[str, object] = {
            **watch.config(),
            "queued.max.messages.kbytes": self.options.prefetch_kbytes,
        }
        if self._commits_in_background:
            # Still only the offsets stored by _checkpoint, i.e. of durable work.
            overrides["enable.auto.commit"] = True
            overrides["auto.commit.interval.ms"] = round(
                self.options.commit_interval_seconds * 1000
            )
        if self.options.static_membership:
            if self._membership is None:
                self._membership = claim(self.group_id, self.options.group_instance_id)
            overrides["group.instance.id"] = self._membership.name
        config = self.settings.consumer_config(
            self.group_id,
            session_timeout_seconds=self.options.session_timeout_seconds,
            **overrides,
        )
        consumer = self._consumer = Consumer(config)
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        return consumer

    def _start_over(self, consumer: Consumer) -> Consumer:
        """A new consumer in place of ``consumer``, which forgot every broker
        (:mod:`schemas.runtime.broker_loss`) or holds work whose receipts were not delivered.

        Its partitions count as lost: what was fetched and not yet committed is dropped
        here and fetched again by whoever is assigned them (this member, usually), to be
        applied again idempotently and answered again, as after a crash."""
        self._drop_uncommitted()
        self._paused = False
        self._consumer = None  # its callbacks are ignored from now on
        try:
            self._close(consumer)
        except KafkaException as exc:
            log.warning("closing the old consumer: %s", exc)
        return self._subscribe()

    def _close(self, consumer: Consumer) -> None:
        """Close ``consumer`` as its watch says (:meth:`BrokerWatch.close`)."""
        if self._broker_watch is not None:
            self._broker_watch.close(consumer)
        else:
            consumer.close()

    def _fetch(self, consumer: Consumer) -> None:
        """Wait for the first message, then take whatever else is already fetched.

        ``consume(n, timeout)`` would hold a lone message until ``n`` arrive or the
        timeout ends; this keeps a trickle fast and a backlog batched.
        """
        first = consumer.poll(self.options.poll_timeout_seconds)
        if first is None:
            return
        self._pending.append(first)
        if self.options.batch_size > 1:
            self._pending.extend(consumer.consume(self.options.batch_size - 1, 0))

    def _process(self, chunk: list[Message]) -> None:
        """Decode, leave out what is already answered, apply the rest (as one batch when
        the sink can), then answer each in order."""
        items: list[_Item] = []
        for message in chunk:
            if not self._accept(message):
                continue
            if self._addressed_elsewhere(message):
                items.append(_Item(message, (), None))
                continue
            try:
                decoded = self._retrying(partial(self._decode, message), REGISTRY, chunk)
            except InvalidEventError as exc:
                items.append(_Item(message, (), exc))
                continue
            handled = tuple(i for i in decoded if self.sink.handles(i))
            items.append(_Item(message, handled, None))
        ours = [instruction for item in items for instruction in item.instructions]
        answered = self._answered_before(ours, chunk)
        todo: dict[str, InstructionIssued] = {}
        for instruction in ours:
            if instruction.instruction_id not in answered:
                todo.setdefault(instruction.instruction_id, instruction)
        results = self._apply_all(list(todo.values()), chunk)
        # One clock reading for the chunk: its effects were all made durable by now.
        applied_at = utc_now()
        outcomes = dict(zip(todo, results, strict=True))
        for item in items:
            if item.error is not None:
                self._dead_letter(item.message, item.error, "decode", chunk)
            for instruction in item.instructions:
                # The first copy takes the outcome; any other is a duplicate.
                outcome = outcomes.pop(instruction.instruction_id, None)
                if outcome is None:
                    self._count_duplicate(instruction)
                else:
                    result, error = outcome
                    if error is not None:
                        self._dead_letter(item.message, error, "apply", chunk)
                    self._answer(item.message, instruction, result, chunk, applied_at)
            self._mark_done(item.message)
        publisher = self._require_publisher()
        self._retrying(publisher.send_receipts, REGISTRY, chunk)

    def _answered_before(
        self, instructions: list[InstructionIssued], chunk: list[Message]
    ) -> set[str]:
        """The ids of ``instructions`` the sink answered within the duplicate window (none
        if it cannot say)."""
        sink = self._remembers
        window = self.options.duplicate_window_seconds
        if not instructions or not window or sink is None:
            return set()
        ids = [i.instruction_id for i in instructions]
        try:
            answered = self._retrying(
                lambda: sink.answered(ids), instructions[0].destination, chunk
            )
        except PermanentSinkError as exc:
            # Not knowing is safe: the instructions are applied (idempotently) and answered.
            log.warning("cannot tell which were answered (%s): answering all", exc)
            return set()
        since = utc_now() - timedelta(seconds=window)
        return {i for i, at in answered.items() if at >= since}

    def _addressed_elsewhere(self, message: Message) -> bool:
        """True when the stream's header names other destinations only: skip, don't decode."""
        headers = cast(list[tuple[str, bytes | None]], message.headers() or [])
        for name, value in headers:
            if name == DESTINATION_HEADER and value is not None:
                return not names_destination(value, self.sink.destination)
        return False

    def _decode(self, message: Message) -> tuple[InstructionIssued, ...]:
        if self._decodes is None:
            return decode_instructions(self._decoder, message.value(), self.sink.destination)
        shared = self._decodes.get(
            _coordinates(message),
            lambda: shared_instructions(*self._decoder.decode_dict(message.value())),
        )
        return shared.instructions_for(self.sink.destination)

    def _accept(self, message: Message) -> bool:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return False
        return _partition(message) in self._assigned

    def _apply_all(
        self, instructions: list[InstructionIssued], chunk: list[Message]
    ) -> list[tuple[SinkResult, Exception | None]]:
        """Each instruction's result, and the permanent error that failed it if any."""
        sink = self._batches
        if len(instructions) > 1 and sink is not None:
            destination = instructions[0].destination
            try:
                results = self._retrying(lambda: sink.apply_batch(instructions), destination, chunk)
                if len(results) != len(instructions):
                    raise PermanentSinkError(
                        f"apply_batch answered {len(results)} of {len(instructions)}"
                    )
                return [(result, None) for result in results]
            except (PermanentSinkError, InvalidEventError) as exc:
                # Nothing of the batch was applied: one by one isolates the culprit.
                log.warning("batch refused (%s); applying one by one", type(exc).__name__)
        return [self._apply_one(instruction, chunk) for instruction in instructions]

    def _apply_one(
        self, instruction: InstructionIssued, chunk: list[Message]
    ) -> tuple[SinkResult, Exception | None]:
        try:
            result = self._retrying(
                lambda: self.sink.apply(instruction), instruction.destination, chunk
            )
        except (PermanentSinkError, InvalidEventError) as exc:
            return SinkResult(Outcome.FAILED, reason=f"{type(exc).__name__}: {exc}"), exc
        return result, None

    def _answer(
        self,
        message: Message,
        instruction: InstructionIssued,
        result: SinkResult,
        chunk: list[Message],
        now: datetime,
    ) -> None:
        """Queue the receipt if the stream asked for one (sent with the chunk's others),
        and count the outcome; ``now``: when the sink answered, unless it says."""
        applied_at = result.applied_at or now
        if instruction.receipt_requested:
            receipt = build_receipt(instruction, result, applied_at)
            publisher = self._require_publisher()
            source = (message.topic() or "", message.partition() or 0)
            self._retrying(lambda: publisher.receipt(receipt, source), REGISTRY, chunk)
        if result.outcome is not Outcome.FAILED:
            self._answered.append(instruction.instruction_id)
        family, destination = instruction.sink_family.value, instruction.destination
        self._labelled(self.metrics.instructions, family, destination, result.outcome.value).inc()
        if result.outcome is Outcome.APPLIED:
            self._labelled(self.metrics.propagation_seconds, family, destination).observe(
                _seconds_between(instruction.occurred_at, applied_at)
            )

    def _labelled(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, kept: looking a child up costs more than counting."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(M, child)

    def _count_duplicate(self, instruction: InstructionIssued) -> None:
        family, destination = instruction.sink_family.value, instruction.destination
        self._labelled(self.metrics.duplicates, family, destination).inc()

    def _remember_answered(self) -> None:
        """Tell the sink which instructions are answered, now that their receipts are acked."""
        ids, self._answered = self._answered, []
        sink = self._remembers
        window = self.options.duplicate_window_seconds
        if not ids or not window or sink is None:
            return
        try:
            sink.remember(ids)
        except SinkError as exc:
            # Safe to go on: a duplicate of these is answered again, with the same receipt id.
            log.warning("could not remember %d answered instruction(s): %s", len(ids), exc)

    def _dead_letter(
        self, message: Message, error: Exception, step: str, chunk: list[Message] | None = None
    ) -> None:
        log.warning(
            "dead-lettering %s[%s]@%s at %s: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            step,
            type(error).__name__,
        )
        dead = build_dead_letter(stage=self.stage, message=message, error=error)
        publisher = self._require_publisher()
        self._retrying(lambda: publisher.dead_letter(dead), REGISTRY, chunk)
        self.metrics.dead_letters.labels(self.stage, type(error).__name__).inc()

    # -- retries -------------------------------------------------------------------

    def _retrying(
        self,
        attempt: Callable[[], T],
        destination: str,
        chunk: list[Message] | None = None,
    ) -> T:
        """``attempt()`` until it stops raising a retriable error, waiting in between."""
        failures = 0
        while True:
            try:
                value = attempt()
            except RETRIABLE as exc:
                failures += 1
                self._note_failure(destination, failures, exc)
                if failures == 1:
                    # Make what is already done durable before waiting, possibly long.
                    self._checkpoint()
                self._wait(self.backoff.delay(failures), chunk or [])
                continue
            if failures:
                self._note_recovery(destination)
            return value

    def _note_failure(self, destination: str, failures: int, exc: Exception) -> None:
        self.metrics.retries.labels(self.family.value, destination).inc()
        if failures >= self.options.breaker_threshold:
            self.metrics.circuit_breaker_open.labels(destination).set(1)
        if failures == 1 or failures % 10 == 0:
            log.warning(
                "%s unavailable (%s), retry %d: %s",
                destination,
                type(exc).__name__,
                failures,
                exc,
            )

    def _note_recovery(self, destination: str) -> None:
        self.metrics.circuit_breaker_open.labels(destination).set(0)
        log.info("%s available again", destination)
        self._resume()

    def _resume(self) -> None:
        consumer = self._consumer
        if self._paused and consumer is not None:
            consumer.resume(consumer.assignment())
            self._paused = False

    def _wait(self, delay: float, chunk: list[Message]) -> None:
        """Sleep ``delay`` seconds, staying in the group; abandon on stop or revoke."""
        consumer = self._consumer
        if consumer is None:
            if self._stop.wait(delay):
                raise _AbandonedError
            return
        deadline = time.monotonic() + delay
        while True:
            # Paused partitions deliver nothing, yet polling keeps the membership alive
            # and runs rebalance callbacks; re-pausing covers newly assigned partitions.
            consumer.pause(consumer.assignment())
            self._paused = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = consumer.poll(min(remaining, 0.5))
            if polled is not None:
                self._pending.append(polled)
            if self._stop.is_set():
                raise _AbandonedError
            if any(_partition(m) not in self._assigned for m in chunk):
                raise _AbandonedError

    # -- offsets -------------------------------------------------------------------

    def _mark_done(self, message: Message) -> None:
        self._finished.add(_coordinates(message))
        key = _partition(message)
        if key in self._assigned:
            self._done[key] = (message.offset() or 0) + 1

    @property
    def _commits_in_background(self) -> bool:
        return self.options.commit_interval_seconds > 0

    def _checkpoint(self, *, commit: bool = False) -> None:
        """Flush receipts and dead letters, remember what they answered, then store the
        finished offsets: librdkafka commits them within ``commit_interval_seconds``, or
        now when ``commit`` is set (a revocation, a stop) or the interval is 0."""
        self._flush()
        self._remember_answered()
        consumer = self._consumer
        done = {k: v for k, v in self._done.items() if k in self._assigned}
        self._done.clear()
        if consumer is None:
            return
        try:
            if done:
                consumer.store_offsets(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()]
                )
                self._stored = True
            if self._stored and (commit or not self._commits_in_background):
                self._stored = False
                consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # librdkafka committed them in the background already
            # Uncommitted work is redelivered and applied again idempotently.
            log.warning("commit failed, will be redelivered: %s", exc)

    def _flush(self) -> None:
        if self._publisher is not None:
            self._publisher.flush(FLUSH_TIMEOUT_SECONDS)

    def _require_publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("runner is not running")
        return self._publisher

    # -- rebalancing and stats -------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return  # a consumer being thrown away (_start_over)
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        if not partitions:
            return
        # librdkafka keeps a partition's pause across its revocation and a later assignment:
        # one paused during a retry wait, taken away, and handed back after the runner
        # resumed what it held would never be fetched again. Take the assignment here (the
        # group is cooperative: incremental) and give it the runner's current pause state.
        consumer.incremental_assign(partitions)
        if self._paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        self._checkpoint(commit=True)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        for key in gone:
            self._done.pop(key, None)
        kept = [m for m in self._pending if (m.topic(), m.partition()) not in gone]
        self._pending = deque(kept)

    def _on_stats(self, stats: Mapping[str, Any]) -> None:
        for topic, lag in consumer_lag(stats).items():
            self.metrics.consumer_lag.labels(self.group_id, topic).set(lag)

    # -- shutdown ------------------------------------------------------------------

    def _leave_group(self) -> None:
        """Hand this member's partitions over now. A static member's close() does not
        leave the group (Kafka keeps its partitions for its return until the session
        times out); unsubscribing does, once the revocation has run in a poll."""
        consumer = self._consumer
        if consumer is None:
            return
        consumer.unsubscribe()
        deadline = time.monotonic() + LEAVE_TIMEOUT_SECONDS
        while consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.1)
        # The LeaveGroup request goes out after the revocation, from librdkafka's thread.
        consumer.poll(0.2)

    def _shutdown(self, clean: bool) -> None:
        try:
            if clean:
                self._checkpoint(commit=True)
                self._leave_group()
        finally:
            consumer = self._consumer
            if consumer is not None:
                if self._broker_watch is not None and self._broker_watch.lost:
                    self._consumer = None  # its callbacks are ignored from now on
                self._close(consumer)
                self._consumer = None
            if self._membership is not None:
                self._membership.release()
                self._membership = None
            self.sink.close()
            if self._registry is not None:
                self._registry.close()
            if self._http is not None:
                self._http.stop()
            log.info("sink runner stopped (%s)", "clean" if clean else "after an error")


def _seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def run_sink(
    build: Callable[[S], Sink],
    settings_cls: type[S],
    *,
    prefix: str,
    family: SinkFamily,
    env: Mapping[str, str] | None = None,
) -> int:
    """Entrypoint body for ``python -m consumers.<sink>``; returns the exit status.

    Reads :class:`~schemas.runtime.kafka.KafkaSettings` and ``settings_cls`` (a
    :class:`~consumers.settings.RunnerSettings` subclass) from ``prefix``-ed variables,
    builds the sink with ``build(settings)``, runs it until SIGTERM or SIGINT.
    """
    env = os.environ if env is None else env
    try:
        kafka = KafkaSettings.from_env(env)
        options = load(settings_cls, prefix, env)
    except ConfigError as exc:
        configure_logging()
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    configure_logging(options.log_level)
    try:
        sink = build(options)
    except ConfigError as exc:
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    except ConsentRelayError as exc:
        log.error("cannot start the sink: %s: %s", type(exc).__name__, exc)
        return 1
    runner = SinkRunner(sink, kafka, family=family, options=options)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the instruction in flight", signum)
        runner.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.run()
    return 0


__all__ = ["DEFAULT_PORTS", "SinkRunner", "run_sink"]
