"""Following a relay topic, each message decoded (``consent-relay tail``).

Topics are named as in :class:`schemas.topics.Topics` (``consent``, ``receipts``,
``propagated``, ``state``, ``dead-letters``, ``data-events``, ``data-allowed``,
``instructions.marketing``, ``instructions.partner_sharing`` ...) or by their full name;
``instructions.partner_sharing.<partner>`` is that partner's legacy topic (releases 1
and 2 gave each partner one), to see what is left on it during an upgrade. Every message
becomes one JSON line with its coordinates; an undecodable one becomes a line with the
error instead of stopping the tail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from producers.jsonout import dumps
from producers.reading import partitions_of
from schemas.codec import EventDecoder
from schemas.converters import to_dict
from schemas.errors import ConsentRelayError, InvalidEventError
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily
from schemas.topics import LEGACY_TOPIC_PER_DESTINATION, Topics

INSTRUCTIONS = "instructions."
"""Short names of instruction topics start with this, then the family in lowercase."""


def topic_names(topics: Topics) -> dict[str, str]:
    """Short name → topic name, for every topic but the legacy ones."""
    names = {
        "consent": topics.consent,
        "receipts": topics.receipts,
        "propagated": topics.propagated,
        "state": topics.state,
        "dead-letters": topics.dead_letters,
        "data-events": topics.data_events,
        "data-allowed": topics.data_allowed,
    }
    for family in SinkFamily:
        names[f"{INSTRUCTIONS}{family.value.lower()}"] = topics.instructions(family)
    return names


def resolve(topics: Topics, name: str) -> list[str]:
    """The topics a short or full name means."""
    fixed = topic_names(topics)
    if name in fixed:
        return [fixed[name]]
    for family in LEGACY_TOPIC_PER_DESTINATION:
        short = f"{INSTRUCTIONS}{family.value.lower()}."
        if name.startswith(short):
            try:
                return [topics.legacy_instructions(family, name.removeprefix(short))]
            except ValueError as exc:
                raise ConsentRelayError(f"{name}: {exc}") from exc
    return [name]


def tail(
    settings: KafkaSettings,
    name: str,
    write: Callable[[str], None],
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    """Write decoded messages as JSON lines until ``max_messages`` or ``idle_timeout``."""
    consumer = Consumer(settings.consumer_config(f"consent-relay-cli-tail-{uuid.uuid4().hex[:8]}"))
    registry = settings.registry_client()
    decoder = EventDecoder(registry)
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    count = 0
    try:
        names = resolve(settings.topics, name)
        consumer.assign(
            [
                TopicPartition(topic, p, start)
                for topic in names
                for p in partitions_of(consumer, topic)
            ]
        )
        last_seen = time.monotonic()
        while max_messages is None or count < max_messages:
            if idle_timeout is not None and time.monotonic() - last_seen > idle_timeout:
                break
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ConsentRelayError(f"consuming {message.topic()} failed: {error.str()}")
            last_seen = time.monotonic()
            line: dict[str, object] = {
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
                "key": (message.key() or b"").decode(errors="replace"),
            }
            try:
                record = decoder.decode(message.value())
            except InvalidEventError as exc:
                line["error"] = f"{type(exc).__name__}: {exc}"
            else:
                line["type"] = type(record).__name__
                line["event"] = to_dict(record)
            write(dumps(line))
            count += 1
    finally:
        consumer.close()
        registry.close()
    return count
