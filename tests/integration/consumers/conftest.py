"""Fixtures for sink tests against the real broker and registry.

``sink_kit`` bundles what every sink test needs on a fresh set of topics: publish
instructions, consent states or raw bytes; read a topic back as records; run a
:class:`~consumers.runner.SinkRunner` in a thread; wait for a condition.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from consumers.runner import SinkRunner
from schemas.codec import EventDecoder, EventSerializer
from schemas.events import (
    InstructionIssued,
    Subject,
    issued_together,
    new_event_id,
    receipts_in,
    utc_now,
)
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Channel, Purpose, Regime, SinkFamily, SubjectKind
from schemas.topics import DESTINATION_HEADER, ONE_RECORD_PER_EVENT, destinations_header
from tests.support.threads import running_in_thread


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until truthy; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass(frozen=True)
class Delivered:
    """Where a published message landed."""

    topic: str
    partition: int
    offset: int


@dataclass
class TopicReader:
    """Reads a whole topic from the beginning, decoding values (or keeping raw bytes)."""

    settings: KafkaSettings
    topic: str
    records: list[tuple[Any, Message]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._consumer = Consumer(self.settings.consumer_config(f"reader-{uuid.uuid4().hex}"))
        meta = self._consumer.list_topics(self.topic, timeout=30).topics[self.topic]
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        )
        self._registry = self.settings.registry_client()
        self._decoder = EventDecoder(self._registry)

    def poll(self, seconds: float = 0.5) -> list[Any]:
        """Read whatever arrived within ``seconds``; returns every record so far."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            record = self._decoder.decode(message.value())
            # A sink's batch of receipts reads as its receipts, one by one.
            for each in receipts_in(record) or (record,):
                self.records.append((each, message))
        return [r for r, _ in self.records]

    def close(self) -> None:
        self._consumer.close()
        self._registry.close()


@dataclass
class SinkKit:
    """Publishing, reading and running helpers bound to one test's topics."""

    settings: KafkaSettings
    group: str
    _readers: list[TopicReader] = field(default_factory=list)
    _producer: Producer | None = None

    def __post_init__(self) -> None:
        self._producer = Producer(self.settings.producer_config())
        registry = self.settings.registry_client()
        self._serializers: dict[type[Any], EventSerializer] = {}
        self._registry = registry

    @property
    def instruction_topic(self) -> str:
        return self.settings.topics.instructions(SinkFamily.MARKETING)

    def instruction(
        self,
        action: Action = Action.SUPPRESS,
        *,
        subject: str | None = None,
        purposes: tuple[Purpose, ...] = (Purpose.MARKETING_EMAIL,),
        channels: tuple[Channel, ...] = (),
        occurred_at: datetime | None = None,
        destination: str = "suppression_list",
        family: SinkFamily = SinkFamily.MARKETING,
        event_id: str | None = None,
    ) -> InstructionIssued:
        """An instruction as the stream would issue it (deterministic id), of a new event
        unless ``event_id`` is given."""
        event_id = event_id or new_event_id()
        return InstructionIssued(
            instruction_id=str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{family.value}/{destination}")
            ),
            event_id=event_id,
            event_type="ConsentChanged",
            subject=Subject(id=subject or f"subj-{uuid.uuid4().hex[:8]}", kind=SubjectKind.ACCOUNT),
            sink_family=family,
            destination=destination,
            action=action,
            purposes=purposes,
            channels=channels,
            right=None,
            regime=Regime.GDPR,
            occurred_at=occurred_at or utc_now() - timedelta(milliseconds=50),
            issued_at=utc_now(),
        )

    def publish(self, records: list[Any], topic: str | None = None) -> list[Delivered]:
        """Publish records keyed by subject id, in order; returns where each landed."""
        target = topic or self.instruction_topic
        batch = []
        for record in records:
            kind = type(record)
            serializer = self._serializers.setdefault(kind, EventSerializer(self._registry, kind))
            batch.append((record.subject.id.encode(), serializer(record, target)))
        return self._send(batch, target)

    def publish_routed(self, instructions: list[InstructionIssued]) -> list[Delivered]:
        """Publish ``instructions`` as the stream does: on their family's topic (created
        first if missing), those of one event for a family in ONE_RECORD_PER_EVENT as one
        InstructionsIssued (placed where the event's first one is), each record naming its
        destinations in the destination header; where each instruction landed."""
        topics = self.settings.topics
        ensure_topics(self.settings)
        records: dict[tuple[SinkFamily, str], list[int]] = {}
        for index, i in enumerate(instructions):
            together = i.sink_family in ONE_RECORD_PER_EVENT
            records.setdefault((i.sink_family, i.event_id if together else str(index)), []).append(
                index
            )
        by_topic: dict[str, list[tuple[list[int], bytes, bytes, list[tuple[str, bytes]]]]] = {}
        for (family, _), indexes in records.items():
            members = [instructions[n] for n in indexes]
            record: Any = issued_together(members) if family in ONE_RECORD_PER_EVENT else members[0]
            topic = topics.instructions(family)
            serializer = self._serializers.setdefault(
                type(record), EventSerializer(self._registry, type(record))
            )
            header = (DESTINATION_HEADER, destinations_header(m.destination for m in members))
            by_topic.setdefault(topic, []).append(
                (indexes, record.subject.id.encode(), serializer(record, topic), [header])
            )
        landed: dict[int, Delivered] = {}
        for topic, sent in by_topic.items():
            delivered = self._send(
                [(key, value) for _, key, value, _ in sent], topic, [h for *_, h in sent]
            )
            for (indexes, *_), where in zip(sent, delivered, strict=True):
                landed.update(dict.fromkeys(indexes, where))
        return [landed[n] for n in range(len(instructions))]

    def publish_raw(
        self, key: bytes | None, value: bytes, topic: str | None = None
    ) -> list[Delivered]:
        """Publish raw bytes (e.g. garbage); returns where it landed once acknowledged."""
        return self._send([(key, value)], topic or self.instruction_topic)

    def _send(
        self,
        batch: list[tuple[bytes | None, bytes]],
        topic: str,
        headers: list[list[tuple[str, bytes]]] | None = None,
    ) -> list[Delivered]:
        """Produce ``batch`` (with each message's ``headers``, if given) and wait for it."""
        assert self._producer is not None
        landed: dict[int, Delivered] = {}

        def delivered(index: int) -> Callable[[Any, Message], None]:
            def report(error: Any, message: Message) -> None:
                assert error is None, error
                landed[index] = Delivered(
                    message.topic() or "", message.partition() or 0, message.offset() or 0
                )

            return report

        for index, (key, value) in enumerate(batch):
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=None if headers is None else headers[index],
                on_delivery=delivered(index),
            )
            self._producer.poll(0)
        assert self._producer.flush(60) == 0
        return [landed[i] for i in range(len(batch))]

    def reader(self, topic: str) -> TopicReader:
        """A reader of ``topic`` from its beginning (closed after the test)."""
        reader = TopicReader(self.settings, topic)
        self._readers.append(reader)
        return reader

    def committed(self, topic: str, group: str | None = None) -> int:
        """Offsets committed by ``group`` on ``topic``, summed over partitions."""
        consumer = Consumer(self.settings.consumer_config(group or self.group))
        try:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            parts = consumer.committed(
                [TopicPartition(topic, p) for p in meta.partitions], timeout=30
            )
            return sum(max(tp.offset, 0) for tp in parts)
        finally:
            consumer.close()

    def running(self, runner: SinkRunner) -> AbstractContextManager[SinkRunner]:
        """Run ``runner`` in a thread; stop it and re-raise its error on exit."""
        return running_in_thread(runner, name="sink-runner")

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        if self._producer is not None:
            self._producer.flush(10)
        self._registry.close()


@pytest.fixture
def sink_kit(relay_settings: KafkaSettings, unique_group: str) -> Iterator[SinkKit]:
    """Helpers for one sink test on its own topics and consumer group."""
    kit = SinkKit(relay_settings, unique_group)
    yield kit
    kit.close()


@pytest.fixture
def until() -> Callable[..., Any]:
    """``until(predicate, timeout=60)``: wait for a condition, fail after the bound."""
    return wait_until
