"""A failed batch's wait for the broker (local TCP listeners stand in for it): no wait
while it accepts connections, a wait while nothing does, and back within about a
second once it does again."""

from __future__ import annotations

import asyncio
import socket
import time

from schemas.runtime.kafka import KafkaSettings
from streams.engine.broker import broker_waiter


def settings(port: int) -> KafkaSettings:
    return KafkaSettings(bootstrap=f"127.0.0.1:{port}", registry_url="http://127.0.0.1:9")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _ignore(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def test_a_broker_that_accepts_is_not_waited_for() -> None:
    async def check() -> float:
        server = await asyncio.start_server(_ignore, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            began = time.monotonic()
            await broker_waiter(settings(port))()
            return time.monotonic() - began

    assert asyncio.run(check()) < 0.5


def test_the_wait_lasts_while_the_broker_is_away_and_ends_soon_after_it_returns() -> None:
    port = closed_port()

    async def check() -> tuple[bool, float]:
        waiting = asyncio.ensure_future(broker_waiter(settings(port))())
        await asyncio.sleep(2.0)  # several attempts, refused at once
        still_waiting = not waiting.done()
        server = await asyncio.start_server(_ignore, "127.0.0.1", port)
        returned = time.monotonic()
        async with server:
            await asyncio.wait_for(waiting, 10)
            return still_waiting, time.monotonic() - returned

    still_waiting, after_return = asyncio.run(check())
    assert still_waiting
    assert after_return < 2.0  # attempts are at most a second apart
