"""The app's producer as the outbox's sender: whole record batches per topic partition.

aiokafka's per-message ``send`` costs a coroutine, a partition lookup, a future and a
callback per message, and Faust's wrapper adds a signal; for a batch of thousands of
messages that was a fifth of the worker's CPU. Here each topic partition's records are
appended to aiokafka ``BatchBuilder``\\ s (its public batch API: ``create_batch`` /
``send_batch``), so a delivery is one future per record batch. Batches are submitted a
round at a time across partitions, so each produce request carries one batch of every
partition; aiokafka keeps one request in flight per broker, so a partition's batches
are written in order. The bytes on the topic are the same records, uncompressed as
Faust's producer writes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from streams.outbox import Record


class ProducerSender:
    """The outbox's :class:`~streams.outbox.Sender` over Faust's producer (once it runs)."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(  # noqa: PLR0917 - Faust's producer signature
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]:
        """One message through Faust's producer (its partitioner if ``partition`` is None)."""
        sent: Awaitable[Any] = await self._app.producer.send(
            topic, key, value, partition, timestamp, headers
        )
        return sent

    async def send_batches(
        self, batches: Mapping[tuple[str, int], Sequence[Record]]
    ) -> list[Awaitable[Any]]:
        """Every partition's records as record batches; one delivery per batch."""
        # Faust has no public accessor for the aiokafka producer it started.
        faust_producer: Any = self._app.producer
        producer: AIOKafkaProducer = faust_producer._ensure_producer()
        built = [(tp, _build(producer, records)) for tp, records in batches.items()]
        deliveries: list[Awaitable[Any]] = []
        for depth in range(max((len(builders) for _tp, builders in built), default=0)):
            for (topic, partition), builders in built:
                if depth < len(builders):
                    deliveries.append(
                        await producer.send_batch(builders[depth], topic, partition=partition)
                    )
        return deliveries


def _build(producer: AIOKafkaProducer, records: Sequence[Record]) -> list[Any]:
    """``records`` in as many of the producer's batch builders as their size needs."""
    builder = producer.create_batch()
    builders = [builder]
    for key, value, headers in records:
        # append() refuses a record only when the builder already holds one.
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            builder = producer.create_batch()
            builders.append(builder)
            builder.append(timestamp=None, key=key, value=value, headers=headers)
    for done in builders:
        done.close()
    return builders
