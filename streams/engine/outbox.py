"""What one batch publishes, sent together with every delivery awaited.

Agents collect their output here while they process a batch; :meth:`Outbox.flush` then
hands each message to the app's producer (Faust's public ``producer.send``) and waits
for the broker's acknowledgement of every one; only then are the batch's source
offsets acknowledged. Outputs co-partitioned with the input carry the input's
partition, so the producer's partitioner does not run for them; the few without one
(dead letters, re-keyed input) are partitioned by the producer. Table changes are here
too (:mod:`streams.engine.staging`), so they are acknowledged with the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

Headers = list[tuple[str, bytes]] | None
"""Kafka message headers, as Faust's producer takes them."""

Message = tuple[str, bytes | None, bytes | None, int | None, Headers]
"""Topic, key, value (None: a tombstone), partition (None: the producer's partitioner)
and headers."""


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


class Outbox:
    """Messages to publish for one batch, in the order they were added."""

    __slots__ = ("messages",)

    def __init__(self) -> None:
        self.messages: list[Message] = []

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

    async def hand_over(self, sender: Sender) -> asyncio.Future[Any]:
        """Hand every message to the producer; the returned future resolves once the
        broker has acknowledged all of them (or fails with the first failure)."""
        deliveries: list[Awaitable[Any]] = []
        for topic, key, value, partition, headers in self.messages:
            deliveries.append(await sender.send(topic, key, value, partition, None, headers))
        self.messages.clear()
        return asyncio.gather(*deliveries)

    async def flush(self, sender: Sender) -> None:
        """Send every message and wait until the broker has acknowledged all of them."""
        await (await self.hand_over(sender))
