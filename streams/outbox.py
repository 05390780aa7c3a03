"""What one batch publishes, sent together with every delivery awaited.

Agents collect their output here while they process a batch, then :meth:`Outbox.flush`
hands it all to the app's producer at once and waits for the broker's acknowledgement
of each message; only then are the batch's source offsets acknowledged. Partitions are
passed explicitly when they are known, which also spares the partitioner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

Headers = list[tuple[str, bytes]] | None
"""Kafka message headers, as Faust's producer takes them."""


class Sender(Protocol):
    """The shape of Faust's ``app.producer.send``."""

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


class Outbox:
    """Messages to publish for one batch."""

    __slots__ = ("messages",)

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, bytes | None, int | None, Headers]] = []

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: Headers = None,
    ) -> None:
        """Queue one message (a None value is a tombstone)."""
        self.messages.append((topic, key, value, partition, headers))

    def __len__(self) -> int:
        return len(self.messages)

    async def flush(self, sender: Sender) -> None:
        """Send every message and wait until the broker has acknowledged all of them."""
        deliveries = [
            await sender.send(topic, key, value, partition, None, headers)
            for topic, key, value, partition, headers in self.messages
        ]
        if deliveries:
            await asyncio.gather(*deliveries)
        self.messages.clear()
