"""Batches of whatever is queued (streams.engine.taking) on a Faust in-memory channel."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import faust
from faust.types.tuples import Message

from streams.engine.taking import pipelined, queued_batches

T = TypeVar("T")

LOOP_TURN_SECONDS = 0.001
"""A worker's event loop under load: each turn runs other tasks for about this long."""


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(main())``, then the app's unstarted consumer thread's event loop
    (made when the stream first touches ``app.consumer``; a worker closes it when it
    stops) is collected here, without the ResourceWarning of its unclosed sockets."""
    result = asyncio.run(main())  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return result


async def _queued_stream(count: int, *, deliver: bool = True) -> tuple[Any, list[Message]]:
    """A stream over an in-memory channel already holding ``count`` events, each
    message referenced once (as Faust's conductor does for one subscribing agent);
    with ``deliver=False`` the messages are made and not delivered yet."""
    app = faust.App("taking-test", store="memory://", autodiscover=False)
    app.flow_control.resume()  # a worker resumes it once partitions are assigned
    stream = app.stream(app.channel())
    messages = []
    for offset in range(count):
        message = Message(
            "consent",
            0,
            offset,
            time.time(),
            None,
            None,
            b"key",
            str(offset).encode(),
            None,
            generation_id=app.consumer_generation_id,
        )
        message.incref()
        messages.append(message)
        if deliver:
            await stream.channel.deliver(message)
    return stream, messages


async def _with_busy_loop(work: Callable[[], Awaitable[Any]]) -> Any:
    stop = asyncio.Event()

    async def busy() -> None:
        while not stop.is_set():
            time.sleep(LOOP_TURN_SECONDS)  # a loop turn that takes time
            await asyncio.sleep(0)

    other = asyncio.ensure_future(busy())
    try:
        return await work()
    finally:
        stop.set()
        await other


async def _sizes(batches: AsyncIterator[list[Any]], total: int) -> list[int]:
    sizes: list[int] = []
    async for batch in batches:
        sizes.append(len(batch))
        if sum(sizes) >= total:
            break
    return sizes


def test_a_batch_takes_every_queued_event_however_busy_the_loop() -> None:
    # Faust's take_events(2000, within=0.005) yielded 5-7 events per batch here while
    # the rest waited in the queue: at 200 events/s a withdrawal waited seconds.
    async def main() -> list[int]:
        stream, _ = await _queued_stream(300)
        return await _with_busy_loop(lambda: _sizes(queued_batches(stream.noack(), 2000), 300))

    assert _run(main) == [300]


def test_a_batch_takes_what_the_fetcher_hands_over_one_loop_turn_at_a_time() -> None:
    # Faust's fetcher delivers a fetched message per loop turn or two (it awaits each
    # delivery): ended at the first empty queue, a backlog went in batches of 10-40.
    async def main() -> list[int]:
        stream, messages = await _queued_stream(500, deliver=False)

        async def fetcher() -> None:
            for message in messages:
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                await stream.channel.deliver(message)

        fetching = asyncio.ensure_future(fetcher())
        try:
            return await _sizes(queued_batches(stream.noack(), 2000), 500)
        finally:
            await fetching

    assert _run(main) == [500]


def test_batches_are_at_most_max_size() -> None:
    async def main() -> list[int]:
        stream, _ = await _queued_stream(250)
        return await _sizes(queued_batches(stream.noack(), 100), 250)

    assert _run(main) == [100, 100, 50]


def test_a_lone_event_is_taken_without_waiting_for_more() -> None:
    async def main() -> float:
        stream, _ = await _queued_stream(1)
        started = time.monotonic()
        batches = queued_batches(stream.noack(), 2000)
        async for batch in batches:
            assert len(batch) == 1
            break
        await batches.aclose()  # type: ignore[attr-defined]
        return time.monotonic() - started

    assert _run(main) < 0.5


def test_events_are_acknowledged_once_their_batch_has_committed() -> None:
    # The next batch is taken while the last one's output is still being delivered;
    # each batch's events are acknowledged when it commits, none if the agent stops first.
    async def main() -> tuple[list[list[int]], list[bool], list[bool], list[bool]]:
        stream, messages = await _queued_stream(4)
        taken: list[list[int]] = []
        commits: list[asyncio.Future[None]] = []

        async def submit(batch: Any) -> asyncio.Future[None]:
            taken.append([m.offset for m in batch])
            commits.append(asyncio.get_running_loop().create_future())
            return commits[-1]

        agent = asyncio.ensure_future(pipelined(stream, 2, submit))
        while len(commits) < 2:
            await asyncio.sleep(0.001)
        during = [m.acked for m in messages]
        commits[0].set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        after_first = [m.acked for m in messages]
        # Stopping before the second batch commits acknowledges nothing more.
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
        assert commits[1].cancelled()  # what awaited it was cancelled with the agent
        return taken, during, after_first, [m.acked for m in messages]

    taken, during, after_first, after_stop = _run(main)
    assert taken == [[0, 1], [2, 3]]
    assert during == [False, False, False, False]
    assert after_first == [True, True, False, False]
    assert after_stop == [True, True, False, False]
