"""The asyncio Python client: ``await client.withdraw(...)`` returns after the broker ack.

Serializing and queueing happen on one worker thread, in call order, so the event loop
never blocks on the schema registry and one subject's events keep their order. Delivery
reports come back to the loop thread-safely. ``send`` returns an ``asyncio.Future`` at once
for batch use; ``async with`` flushes and closes.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from producers.envelope import EnvelopeDefaults
from producers.errors import PublishError
from producers.metrics import ProducerMetrics
from producers.publisher import DEFAULT_DELIVERY_TIMEOUT_S, Published
from producers.verbs import ConsentVerbs
from schemas.errors import ConsentRelayError
from schemas.events import ConsentEvent
from schemas.runtime.kafka import KafkaSettings


class AsyncConsentClient(ConsentVerbs["asyncio.Future[Published]"]):
    """Publishes consent events from asyncio code."""

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        defaults: EnvelopeDefaults | None = None,
        delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
        metrics: ProducerMetrics | None = None,
        **producer_overrides: Any,
    ) -> None:
        super().__init__(
            settings,
            defaults=defaults,
            delivery_timeout_s=delivery_timeout_s,
            metrics=metrics,
            **producer_overrides,
        )
        # One worker keeps submission order: per-subject order survives the thread hop.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consent-relay-send")

    def send(self, event: ConsentEvent) -> asyncio.Future[Published]:
        """Queue ``event``; the future resolves to its acknowledgement or a PublishError."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Published] = loop.create_future()

        def done(published: Published | None, error: PublishError | None) -> None:
            loop.call_soon_threadsafe(_settle, future, published, error)

        def queue() -> None:
            try:
                self._publisher.produce(event, done)
            except ConsentRelayError as exc:
                loop.call_soon_threadsafe(_settle, future, None, exc)

        self._worker.submit(queue)
        return future

    async def publish(self, event: ConsentEvent) -> Published:
        """Publish ``event`` and wait for the broker's acknowledgement."""
        return await self.send(event)

    def _emit(self, event: ConsentEvent) -> asyncio.Future[Published]:
        return self.send(event)

    async def flush(self, timeout: float | None = None) -> int:
        """Wait for everything sent; returns how many events are still unacknowledged."""
        await asyncio.wrap_future(self._worker.submit(_nothing))  # every earlier send queued
        return await asyncio.to_thread(self._publisher.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Flush and close; unacknowledged futures fail rather than vanish."""
        await asyncio.to_thread(self._worker.shutdown, wait=True, cancel_futures=False)
        await asyncio.to_thread(self._publisher.close, timeout)

    async def __aenter__(self) -> AsyncConsentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _nothing() -> None:
    return None


def _settle(
    future: asyncio.Future[Published], published: Published | None, error: BaseException | None
) -> None:
    if future.done():
        return
    if published is not None:
        future.set_result(published)
    else:
        future.set_exception(error or PublishError("delivery failed"))
