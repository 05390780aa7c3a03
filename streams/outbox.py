"""What one batch publishes, sent together with every delivery awaited.

Agents collect their output here while they process a batch, then :meth:`Outbox.flush`
hands it all to the app's producer at once and waits for the broker's acknowledgement
of each message; only then are the batch's source offsets acknowledged.

Messages whose partition is known (nearly all: outputs are co-partitioned with the
input, changelogs share the table's partition) are grouped per topic partition, in the
order they were added, and sent as whole record batches: one delivery to await per
batch instead of per message, and no partitioner. The few without one (dead letters,
re-keyed input) are sent one by one and partitioned by the producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

Headers = list[tuple[str, bytes]] | None
"""Kafka message headers, as Faust's producer takes them."""

Record = tuple[bytes | None, bytes | None, Headers]
"""Key, value (None: a tombstone) and headers of one message."""

Message = tuple[str, bytes | None, bytes | None, int | None, Headers]
"""Topic, key, value, partition (None: the producer's partitioner) and headers."""


class Sender(Protocol):
    """The app's producer, as the outbox uses it."""

    async def send(  # noqa: PLR0917 - Faust's producer signature
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]:
        """Queue one message; the returned awaitable resolves once it is delivered."""
        ...

    async def send_batches(
        self, batches: Mapping[tuple[str, int], Sequence[Record]]
    ) -> list[Awaitable[Any]]:
        """Queue each topic partition's records, in order; awaitables that resolve once
        every one of them is delivered."""
        ...


class Outbox:
    """Messages to publish for one batch."""

    __slots__ = ("_count", "partitioned", "unpartitioned")

    def __init__(self) -> None:
        self.partitioned: dict[tuple[str, int], list[Record]] = {}
        self.unpartitioned: list[tuple[str, Record]] = []
        self._count = 0

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: Headers = None,
    ) -> None:
        """Queue one message (a None value is a tombstone)."""
        self._count += 1
        if partition is None:
            self.unpartitioned.append((topic, (key, value, headers)))
            return
        records = self.partitioned.get((topic, partition))
        if records is None:
            self.partitioned[(topic, partition)] = [(key, value, headers)]
        else:
            records.append((key, value, headers))

    def __len__(self) -> int:
        return self._count

    @property
    def messages(self) -> list[Message]:
        """Every queued message: each topic partition's in the order added, then those
        without a partition."""
        grouped: list[Message] = [
            (topic, key, value, partition, headers)
            for (topic, partition), records in self.partitioned.items()
            for key, value, headers in records
        ]
        grouped.extend((topic, k, v, None, h) for topic, (k, v, h) in self.unpartitioned)
        return grouped

    async def flush(self, sender: Sender) -> None:
        """Send every message and wait until the broker has acknowledged all of them."""
        deliveries = await sender.send_batches(self.partitioned) if self.partitioned else []
        for topic, (key, value, headers) in self.unpartitioned:
            deliveries.append(await sender.send(topic, key, value, None, None, headers))
        if deliveries:
            await asyncio.gather(*deliveries)
        self.partitioned.clear()
        self.unpartitioned.clear()
        self._count = 0
