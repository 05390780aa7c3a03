"""The app's producer as the outbox's sender.

Faust starts its producer with the worker; this hands each message to it through its
public ``send``, which returns the delivery to await.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust


class ProducerSender:
    """The outbox's :class:`~streams.engine.outbox.Sender` over Faust's producer (once it runs)."""

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
