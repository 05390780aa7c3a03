"""Re-driving dead letters after a fix: put each original message back where it came from.

Reads :class:`~schemas.events.DeadLettered` records from ``Topics.dead_letters`` up to
where the topic ended at the start, and re-publishes each ``original_value`` (with its
original key) to its ``source_topic``. The checkpoint is the consumer group's committed
offset, committed only after every message of a batch was acknowledged, so a re-run
continues after the last re-driven dead letter and never re-drives one twice unless a
batch failed midway. Only topics of this deployment are written to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from producers.errors import PublishError
from producers.progress import Progress
from producers.publisher import Delivery, Publisher
from producers.reading import partitions_of, read_to_end
from schemas.codec import EventDecoder
from schemas.errors import ConsentRelayError, InvalidEventError
from schemas.events import DeadLettered
from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger(__name__)

DEFAULT_GROUP: Final = "consent-relay.redrive"
HEADER: Final = "consent_relay_redriven_from"


@dataclass(slots=True)
class RedriveSummary:
    """What a re-drive run did."""

    redriven: int = 0
    skipped: list[str] = field(default_factory=list)


def _own_topics(settings: KafkaSettings) -> set[str]:
    """This deployment's topics: the fixed ones, and every instruction topic on the
    broker (a partner's own topic is not among the fixed ones)."""
    prefix = settings.topics.instruction_prefix()
    listed = AdminClient(settings.admin_config()).list_topics(timeout=30).topics
    return {s.name for s in settings.topics.all()} | {n for n in listed if n.startswith(prefix)}


def redrive(
    settings: KafkaSettings,
    publisher: Publisher,
    *,
    group: str = DEFAULT_GROUP,
    stage: str | None = None,
    dry_run: bool = False,
    batch_size: int = 200,
    progress: Progress | None = None,
    on_item: Callable[[DeadLettered | None, str], None] = lambda _dl, _what: None,
) -> RedriveSummary:
    """Re-publish dead letters (optionally of one ``stage``) not yet re-driven by ``group``."""
    topic = settings.topics.dead_letters
    summary = RedriveSummary()
    allowed = _own_topics(settings) - {topic}
    consumer = Consumer(settings.consumer_config(group))
    registry = settings.registry_client()
    driver = _Redriver(
        publisher,
        EventDecoder(registry),
        allowed=allowed,
        stage=stage,
        dry_run=dry_run,
    )
    try:
        starts = _committed(consumer, topic)
        if progress is not None:
            progress.total = _backlog(consumer, starts)
        for message in read_to_end(consumer, starts):
            dead, what = driver.handle(message)
            on_item(dead, what)
            if what in {REDRIVEN, WOULD_REDRIVE}:
                summary.redriven += 1
            else:
                summary.skipped.append(f"offset {message.offset()}: {what}")
            if progress is not None:
                progress.advance(note=f"{summary.redriven} re-driven")
            if len(driver.batch) >= batch_size:
                driver.checkpoint(consumer)
        driver.checkpoint(consumer)
        if progress is not None:
            progress.finish()
    finally:
        consumer.close()
        registry.close()
    return summary


REDRIVEN: Final = "re-driven"
WOULD_REDRIVE: Final = "would re-drive (dry run)"


class _Redriver:
    """Decides, publishes and checkpoints one dead letter at a time."""

    def __init__(
        self,
        publisher: Publisher,
        decoder: EventDecoder,
        *,
        allowed: set[str],
        stage: str | None,
        dry_run: bool,
    ) -> None:
        self.publisher = publisher
        self.decoder = decoder
        self.allowed = allowed
        self.stage = stage
        self.dry_run = dry_run
        self.batch: list[Future[Delivery]] = []
        self.positions: dict[tuple[str, int], int] = {}

    def handle(self, message: Message) -> tuple[DeadLettered | None, str]:
        """Re-publish one dead letter if it qualifies; (record, what happened)."""
        self.positions[(str(message.topic()), int(message.partition() or 0))] = (
            int(message.offset() or 0) + 1
        )
        try:
            dead = self.decoder.decode(message.value())
        except InvalidEventError as exc:
            return None, f"not a readable dead letter ({exc})"
        if not isinstance(dead, DeadLettered):
            return None, f"a {type(dead).__name__}, not a dead letter"
        if self.stage is not None and dead.stage != self.stage:
            return dead, f"stage {dead.stage}, not {self.stage}"
        if dead.source_topic not in self.allowed:
            return dead, f"source topic {dead.source_topic} is not one of this deployment's"
        if dead.original_value is None:
            return dead, "no original value kept"
        if self.dry_run:
            return dead, WOULD_REDRIVE
        future: Future[Delivery] = Future()
        future.set_running_or_notify_cancel()

        def done(delivery: Delivery | None, error: PublishError | None) -> None:
            if delivery is not None:
                future.set_result(delivery)
            else:
                future.set_exception(error or PublishError("delivery failed"))

        self.publisher.produce_raw(
            dead.source_topic,
            dead.original_key,
            dead.original_value,
            done,
            headers=[(HEADER, dead.dead_letter_id.encode())],
        )
        self.batch.append(future)
        return dead, REDRIVEN

    def checkpoint(self, consumer: Consumer) -> None:
        """Wait for the batch's acks, then commit past every handled dead letter."""
        try:
            for future in self.batch:
                future.result()
        finally:
            self.batch.clear()
        if self.dry_run or not self.positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ConsentRelayError(f"cannot record the re-drive checkpoint: {exc}") from exc
        self.positions.clear()


def _committed(consumer: Consumer, topic: str) -> list[TopicPartition]:
    partitions = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
    try:
        return list(consumer.committed(partitions, timeout=10.0))
    except KafkaException as exc:
        raise ConsentRelayError(f"cannot read the re-drive checkpoint: {exc}") from exc


def _backlog(consumer: Consumer, starts: list[TopicPartition]) -> int:
    total = 0
    for tp in starts:
        low, high = consumer.get_watermark_offsets(tp, timeout=10.0)
        total += high - (low if tp.offset < 0 else max(tp.offset, low))
    return total
