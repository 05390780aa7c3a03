"""Seeding an empty sink store from the compacted consent-state topic.

Reads every partition of ``Topics.state`` from the beginning up to the end it had
when seeding began, without joining a consumer group or committing anything, and
hands each subject's :class:`~schemas.events.ConsentStateRecorded` to the sink.
A sink started before its broker waits for it (capped exponential backoff, a line per
attempt) for as long as it takes, until stopped; the read itself must finish within
the bootstrap timeout.

A million subjects must seed in well under a minute, so records are fetched
:data:`BATCH` at a time, decoded with :func:`consumers.state_records.decode_state`
(the full contract checks, without the generic record walk) and handed to
``on_states`` a batch at a time, for the store to write in one transaction.
Compaction may not have run yet, so a subject can appear more than once: a batch
carries only the newest state of each of its subjects, and batches are handed over
in offset order, so the newest state is the one that stays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol, runtime_checkable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from consumers.state_records import decode_state
from schemas.admin import attempt_seconds
from schemas.codec import EventDecoder
from schemas.errors import ConsentRelayError, InvalidEventError
from schemas.events import ConsentStateRecorded
from schemas.kafka import KafkaSettings

log = logging.getLogger(__name__)


BATCH: Final = 10_000
"""State records fetched, decoded and handed to the store at a time: large enough that
a transaction's commit and a fetch's round trip cost little per subject, small enough
that a batch's records (a few MB) are nothing to hold."""

OnStates = Callable[[Sequence[ConsentStateRecorded]], None]
"""Takes a batch of states (the newest per subject) and makes them durable together."""


@runtime_checkable
class SeedsInBatches(Protocol):
    """Optional for a sink: seeds a batch of states in one step (one transaction)."""

    def bootstrap_batch(self, states: Sequence[ConsentStateRecorded]) -> None:
        """Seed every state (each subject at most once), all or nothing, idempotently;
        a RetriableSinkError lets the runner try the whole batch again."""
        ...


class BootstrapError(ConsentRelayError):
    """The consent-state topic could not be read to its end."""


def bootstrap(
    settings: KafkaSettings,
    *,
    group_id: str,
    decoder: EventDecoder,
    on_state: Callable[[ConsentStateRecorded], None] | None = None,
    on_states: OnStates | None = None,
    on_invalid: Callable[[Message, InvalidEventError], None],
    stop: threading.Event,
    timeout: float = 300.0,
) -> int:
    """Feed every state record to ``on_states`` in batches (or, without it, one at a
    time to ``on_state``); returns how many records were read and valid.

    ``on_invalid`` receives records that cannot be decoded (to dead-letter them), before
    their batch is handed over. Returns early, without finishing, when ``stop`` is set.
    """
    if on_states is None:
        if on_state is None:
            raise TypeError("bootstrap needs on_states or on_state")
        one = on_state

        def on_states(states: Sequence[ConsentStateRecorded]) -> None:
            for state in states:
                one(state)

    reader = _Reader(settings, group_id, decoder, stop, timeout)
    thread = threading.Thread(target=reader.run, name="consent-relay-seed-reader", daemon=True)
    thread.start()
    applied = 0
    try:
        while (batch := reader.take()) is not None:
            for message, exc in batch.invalid:
                on_invalid(message, exc)
            if batch.states:
                on_states(list(batch.states.values()))
            applied += batch.valid
    finally:
        reader.quit.set()
        thread.join()
    log.info("bootstrap read %d state record(s) from %s", applied, settings.topics.state)
    return applied


class _Batch:
    """The newest valid state per subject among one fetch's records, and the invalid."""

    def __init__(self) -> None:
        self.states: dict[str, ConsentStateRecorded] = {}
        self.invalid: list[tuple[Message, InvalidEventError]] = []
        self.valid = 0

    def add(self, decoder: EventDecoder, message: Message) -> None:
        try:
            state = decode_state(decoder, message.value())
        except InvalidEventError as exc:
            self.invalid.append((message, exc))
            return
        self.valid += 1
        subject = state.subject.id
        held = self.states.get(subject)
        # Offset order within a partition; the time decides should a subject ever have
        # been written to two partitions (a changed partition count).
        if held is None or state.updated_at >= held.updated_at:
            self.states[subject] = state


class _Reader:
    """Reads and decodes the state topic on a thread of its own, a batch ahead of the
    store: decoding holds the GIL, while SQLite and psycopg let go of it as they write,
    so the two overlap. The caller's thread alone calls the callbacks."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        decoder: EventDecoder,
        stop: threading.Event,
        timeout: float,
    ) -> None:
        self._settings = settings
        self._group_id = group_id
        self._decoder = decoder
        self._stop = stop
        self._timeout = timeout
        self._batches: queue.Queue[_Batch | BaseException | None] = queue.Queue(maxsize=2)
        self.quit = threading.Event()
        """Set by the caller when it takes no more batches (done, stopped or failed)."""

    def take(self) -> _Batch | None:
        """The next batch; None once the topic is read to its end (or ``stop`` is set)."""
        item = self._batches.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def run(self) -> None:
        outcome: BaseException | None = None
        try:
            self._read()
        except KafkaException as exc:
            outcome = BootstrapError(f"reading {self._settings.topics.state}: {exc}")
            outcome.__cause__ = exc
        except BaseException as exc:  # noqa: BLE001 - the caller's thread raises it
            outcome = exc
        self._put(outcome)

    def _put(self, item: _Batch | BaseException | None) -> bool:
        while not self.quit.is_set():
            try:
                self._batches.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _read(self) -> None:
        topic = self._settings.topics.state
        consumer = Consumer(self._settings.consumer_config(f"{self._group_id}.bootstrap"))
        try:
            ends = _end_offsets_waiting(consumer, topic, self._stop)
            if not ends:
                return
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            deadline = time.monotonic() + self._timeout
            while ends and not self._stop.is_set() and not self.quit.is_set():
                if time.monotonic() > deadline:
                    raise BootstrapError(f"{topic} not read to its end within {self._timeout}s")
                messages = consumer.consume(BATCH, 0.5)
                if not messages:
                    # Under read_committed a trailing transaction marker is never
                    # delivered: the position passing the end also means it is done.
                    _drop_finished(consumer, topic, ends)
                    continue
                batch = _Batch()
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.fatal():
                            raise BootstrapError(f"reading {topic}: {error}")
                        # The broker away for a moment: librdkafka reconnects on its own.
                        log.warning("reading %s: %s", topic, error)
                        continue
                    partition, offset = message.partition() or 0, message.offset() or 0
                    end = ends.get(partition)
                    if end is None or offset >= end:
                        continue  # written after seeding began: the instructions cover it
                    if offset + 1 >= end:
                        ends.pop(partition, None)
                    if message.value() is not None:
                        batch.add(self._decoder, message)
                if (batch.states or batch.invalid) and not self._put(batch):
                    return
        finally:
            consumer.close()


def _drop_finished(consumer: Consumer, topic: str, ends: dict[int, int]) -> None:
    positions = consumer.position([TopicPartition(topic, p) for p in ends])
    for tp in positions:
        if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, 0):
            ends.pop(tp.partition, None)


_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
    }
)
"""Broker answers that mean "not yet", e.g. for a topic created a moment ago."""


def _end_offsets_waiting(
    consumer: Consumer, topic: str, stop: threading.Event
) -> dict[int, int] | None:
    """:func:`_end_offsets`, tried again while the broker is away or answers "not yet"
    (a leader not yet elected for a topic created a moment ago, say), each attempt
    longer up to 5 s; None if ``stop`` is set first."""
    attempt = 0
    while not stop.is_set():
        attempt += 1
        allowed = attempt_seconds(attempt)
        started = time.monotonic()
        try:
            return _end_offsets(consumer, topic, allowed)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not (error.retriable() or error.code() in _TRANSIENT):
                raise
            log.warning(
                "end offsets of %s not available yet (%s); attempt %d, trying again",
                topic,
                error.str(),
                attempt,
            )
            stop.wait(max(0.0, allowed - (time.monotonic() - started)))
    return None


def _end_offsets(consumer: Consumer, topic: str, timeout: float) -> dict[int, int]:
    """Partition → high watermark, for partitions that hold anything."""
    metadata = consumer.list_topics(topic, timeout=timeout)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise BootstrapError(f"topic {topic} is not available: {info and info.error}")
    ends: dict[int, int] = {}
    for partition in info.partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout
        )
        if high > low:
            ends[partition] = high
    return ends
