"""What one runner holds between a fetch and its commit, shared by its parts.

The pending messages, what is finished (durable) per partition, the partitions this
member holds, and its consumer with its pause state. Nothing here talks to a broker
except :meth:`Progress.resume`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message

TP = tuple[str, int]
"""A partition: topic and number."""
Coordinates = tuple[str, int, int]
"""A message's topic, partition and offset."""


def partition_of(message: Message) -> TP:
    """The partition ``message`` came from."""
    return message.topic() or "", message.partition() or 0


def coordinates(message: Message) -> Coordinates:
    """Where ``message`` sits: topic, partition, offset."""
    return message.topic() or "", message.partition() or 0, message.offset() or 0


@dataclass(slots=True)
class Progress:
    """The runner's position; see the module doc."""

    pending: deque[Message] = field(default_factory=deque)
    """Fetched and not yet taken into a chunk, in partition order."""
    done: dict[TP, int] = field(default_factory=dict)
    """Per partition, the offset after the last durable message, not yet stored."""
    finished: set[Coordinates] = field(default_factory=set)
    """The chunk in hand's messages that are done (applied or dead-lettered)."""
    assigned: set[TP] = field(default_factory=set)
    """The partitions this member holds."""
    consumer: Consumer | None = None
    """The group's consumer while consuming; None while bootstrapping, stopping, or
    between a consumer thrown away and its replacement (its callbacks are ignored)."""
    paused: bool = False
    """Whether the consumer's partitions are paused (a retry wait)."""

    def forget(self, gone: set[TP]) -> None:
        """Drop what is held of the partitions ``gone``: not ours to commit any more."""
        self.assigned -= gone
        for key in gone:
            self.done.pop(key, None)
        self.pending = deque(m for m in self.pending if partition_of(m) not in gone)

    def resume(self) -> None:
        """Resume the consumer's partitions after a retry wait paused them."""
        consumer = self.consumer
        if self.paused and consumer is not None:
            consumer.resume(consumer.assignment())
            self.paused = False
