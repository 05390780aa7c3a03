"""Publishing the malformed burst, remembering where each record landed.

A producer of its own with the relay's producer settings, allowed values of up to
about 1 MiB (the broker's default record limit) so the oversized kinds reach the topic.
The partition and offset of every acknowledged record are what its dead letter must
name (``source_partition``, ``source_offset``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from deploy.faults.malformed import Record
from schemas.runtime import delivery
from schemas.runtime.kafka import KafkaSettings

MAX_MESSAGE_BYTES = 1_048_000
"""Under the broker's ``message.max.bytes`` (1,048,588), over a ~1 MB value."""


@dataclass(frozen=True, slots=True)
class Landed:
    """A malformed record on the topic."""

    kind: str
    partition: int
    offset: int


@dataclass(slots=True)
class BurstResult:
    """What the broker acknowledged, and what it refused."""

    landed: list[Landed] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    """Kind → records the broker did not take (with the first error)."""
    errors: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0


def publish(settings: KafkaSettings, topic: str, records: list[tuple[str, Record]]) -> BurstResult:
    """Send every record as fast as the producer takes them; wait for every answer."""
    producer = Producer(
        settings.producer_config(
            **{"message.max.bytes": MAX_MESSAGE_BYTES, "queue.buffering.max.messages": 200_000}
        )
    )
    result = BurstResult(started=time.time())

    def answered(kind: str) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, msg: Message) -> None:
            # A report without an offset does not prove the record stored
            # (schemas.runtime.delivery): it is not counted as landed, so no dead letter is
            # expected at a made-up offset.
            offset = delivery.stored_offset(msg) if err is None else None
            if offset is not None:
                result.landed.append(Landed(kind, msg.partition() or 0, offset))
            else:
                result.refused[kind] = result.refused.get(kind, 0) + 1
                result.errors.setdefault(kind, delivery.failure(err, msg) or "")

        return report

    for kind, (key, value) in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=answered(kind))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left:
        result.refused["(no answer)"] = left
    result.finished = time.time()
    return result
