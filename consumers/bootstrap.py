"""Seeding an empty sink store from the compacted consent-state topic.

Reads every partition of ``Topics.state`` from the beginning up to the end it had
when seeding began, without joining a consumer group or committing anything, and
hands each subject's :class:`~schemas.events.ConsentStateRecorded` to the sink.
A sink started before its broker waits for it (capped exponential backoff, a line per
attempt) for as long as it takes, until stopped; the read itself must finish within
the bootstrap timeout.

A million subjects should seed within a minute, so records are fetched
:data:`BATCH` at a time, decoded with :func:`consumers.state_records.decode_state_avro`
(the full contract checks, without the generic record walk, and without reading the
stream's ``history``, which no sink uses) and handed over a batch
at a time, for the store to write in one transaction: as the checked Avro dicts to
``on_avro`` (a store that needs a few fields of each, :class:`SeedsFromAvro`), else
as typed records to ``on_states``.
Compaction may not have run yet, so a subject can appear more than once: a batch
carries only the newest state of each of its subjects, and batches are handed over
in offset order, so the newest state is the one that stays. Reading and decoding stay
on the caller's thread: on a reader thread a batch ahead, the GIL handoffs slowed the
store's ``executemany`` more than the overlap gained (60,000 subjects into SQLite:
6.8 and 9.2 s in turn, 14.1 and 10.8 s with the reader thread).
"""

from __future__ import annotations

import logging
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

from consumers.state_records import StateAvro, decode_state_avro, typed_state
from schemas.codec import EventDecoder
from schemas.errors import ConsentRelayError, InvalidEventError
from schemas.events import ConsentStateRecorded
from schemas.runtime.admin import attempt_seconds
from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger(__name__)


BATCH: Final = 10_000
"""State records fetched, decoded and handed to the store at a time: large enough that
a transaction's commit and a fetch's round trip cost little per subject, small enough
that a batch's records (a few MB) are nothing to hold."""

OnStates = Callable[[Sequence[ConsentStateRecorded]], None]
"""Takes a batch of states (the newest per subject) and makes them durable together."""

OnAvro = Callable[[Sequence[StateAvro]], None]
""":data:`OnStates` for the states' checked Avro dicts (no typed records built)."""


@runtime_checkable
class SeedsInBatches(Protocol):
    """Optional for a sink: seeds a batch of states in one step (one transaction)."""

    def bootstrap_batch(self, states: Sequence[ConsentStateRecorded]) -> None:
        """Seed every state (each subject at most once), all or nothing, idempotently;
        a RetriableSinkError lets the runner try the whole batch again."""
        ...


@runtime_checkable
class SeedsFromAvro(Protocol):
    """Optional for a sink, preferred over :class:`SeedsInBatches`: seeds a batch from
    the states' checked Avro dicts, for a store that needs only a few of their fields."""

    def seed_avro_batch(self, states: Sequence[StateAvro]) -> None:
        """As :meth:`SeedsInBatches.bootstrap_batch`, from :class:`StateAvro` dicts."""
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
    on_avro: OnAvro | None = None,
    on_invalid: Callable[[Message, InvalidEventError], None],
    stop: threading.Event,
    timeout: float = 300.0,
) -> int:
    """Feed every state record to ``on_avro`` or ``on_states`` in batches (or, without
    either, one at a time to ``on_state``); returns how many records were read and valid.

    ``on_invalid`` receives records that cannot be decoded (to dead-letter them), before
    their batch is handed over. Returns early, without finishing, when ``stop`` is set.
    """
    if on_avro is None and on_states is None:
        if on_state is None:
            raise TypeError("bootstrap needs on_avro, on_states or on_state")
        one = on_state

        def on_states(states: Sequence[ConsentStateRecorded]) -> None:
            for state in states:
                one(state)

    topic = settings.topics.state
    consumer = Consumer(
        settings.consumer_config(
            f"{group_id}.bootstrap",
            # Bigger fetches: fewer round trips to read a million records.
            **{"max.partition.fetch.bytes": 8 << 20},
        )
    )
    applied = 0
    try:
        ends = _end_offsets_waiting(consumer, topic, stop)
        if not ends:
            return 0
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends and not stop.is_set():
            if time.monotonic() > deadline:
                raise BootstrapError(f"{topic} not read to its end within {timeout}s")
            # consume(n, t) waits for all n or the whole t: wait for the first record
            # only, then take what librdkafka has already fetched.
            messages = consumer.consume(1, 0.5)
            if messages:
                messages += consumer.consume(BATCH - 1, 0)
            if not messages:
                # Under read_committed a trailing transaction marker is never delivered:
                # the position passing the end also means the partition is done.
                _drop_finished(consumer, topic, ends)
                continue
            batch = _read(messages, ends, decoder, topic)
            for message, exc in batch.invalid:
                on_invalid(message, exc)
            if batch.states:
                if on_avro is not None:
                    on_avro(list(batch.states.values()))
                elif on_states is not None:
                    on_states([typed_state(s) for s in batch.states.values()])
            applied += batch.valid
    except KafkaException as exc:
        raise BootstrapError(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()
    log.info("bootstrap read %d state record(s) from %s", applied, topic)
    return applied


def _read(
    messages: list[Message], ends: dict[int, int], decoder: EventDecoder, topic: str
) -> _Batch:
    """One fetch's records up to each partition's end, decoded; a partition whose end
    is reached leaves ``ends``."""
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
        value = message.value()
        if value is not None:
            batch.add(decoder, message, value)
    return batch


class _Batch:
    """The newest valid state per subject among one fetch's records, and the invalid."""

    def __init__(self) -> None:
        self.states: dict[str, StateAvro] = {}
        self.invalid: list[tuple[Message, InvalidEventError]] = []
        self.valid = 0

    def add(self, decoder: EventDecoder, message: Message, value: bytes) -> None:
        try:
            state = decode_state_avro(decoder, value)
        except InvalidEventError as exc:
            self.invalid.append((message, exc))
            return
        self.valid += 1
        subject = state["subject"]["id"]
        held = self.states.get(subject)
        # Offset order within a partition; the time decides should a subject ever have
        # been written to two partitions (a changed partition count).
        if held is None or state["updated_at"] >= held["updated_at"]:
            self.states[subject] = state


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
