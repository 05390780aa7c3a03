"""Batches from a Faust stream: every event already fetched, with no window to wait out.

Faust's ``take_events(n, within)`` yields what its buffer holds once ``within`` runs out,
but its stream moves events from the agent's queue into that buffer one event-loop turn
at a time. With a 5 ms window and a worker whose loop turns take a millisecond or more
(the other agent, the fetcher, the producer), a batch held ~5 events while hundreds
waited in the queue; each batch then paid a whole publish round trip, so the queue grew
and a withdrawal waited seconds at 200 events/s with no process busy (measured per hop:
consent event to intake 1.9 s, receipt to the receipts agent 5.6 s, all of it in the
queue). :func:`queued_batches` instead ends a batch when nothing more is handed over (or
the batch is full): a lone event goes at once, and a backlog goes in batches as large as
it is.

"Nothing more handed over" is not "the queue is empty". Faust's fetcher hands the agent
one fetched message per event-loop turn or two (it awaits each delivery before taking
the next), so the queue is empty after almost every event even with thousands fetched
behind it. Ended there, batches over a 20,000-event backlog held 10-40
events, and each paid a batch's fixed costs (a publish round trip, a progress record per
partition, a changelog record per changed key, smaller sink batches and so more
receipts): the worker kept 744 events/s (`deploy.bench --rates max`, 2 cores). Letting
the loop turn a few times (:data:`HANDOVER_TURNS`) before ending a batch costs a lone
event microseconds, and lets a backlog fill batches up to ``max_size``: with 4 turns,
1,635-1,793 events/s on the same machine, 0.55 ms of worker CPU per event instead of
0.88. With 16, back to back against 4 (``--rates idle,1000,max``): 1,000/s kept 943-990
events/s against 828, max 1,772-2,097 against 1,149, worker 0.45-0.52 ms CPU per event
at max against 0.68; 32 did no better.

Acknowledgements stay manual, as with ``take_events``: :func:`pipelined` acknowledges a
batch's events only once the batch has committed (its output published), and not at all
if the agent stops first (cancelled at shutdown), so they are read again. It takes the
next batch while the last one's output is still being delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from streams.engine.context import RawMessage

log = logging.getLogger("streams")

HANDOVER_TURNS = 16
"""Event-loop turns a batch waits, its queue empty, for Faust's fetcher to hand over one
more message: a delivery takes two or three (a task, then the fetcher's wake-up), and
the other tasks ready in the loop (the other agent, the producer, the fetch) take turns
in between."""

Submit = Callable[[Sequence[RawMessage]], Awaitable[Awaitable[Any]]]
"""Processes a batch and hands its output over; returns what resolves once it committed."""


async def queued_batches(stream: Any, max_size: int) -> AsyncIterator[list[Any]]:
    """Faust events of ``stream`` (``noack()``-ed by the caller) in batches of at most
    ``max_size``: each batch ends once the stream's queue is empty and stays empty for
    :data:`HANDOVER_TURNS` turns of the event loop."""
    queue = stream.channel.queue
    batch: list[Any] = []
    async for event in stream.events():
        batch.append(event)
        if len(batch) < max_size and (not queue.empty() or await _handed_over(queue)):
            continue
        taken, batch = batch, []
        yield taken


async def _handed_over(queue: Any) -> bool:
    """Whether the fetcher puts another message in ``queue`` within a few loop turns."""
    for _ in range(HANDOVER_TURNS):
        await asyncio.sleep(0)
        if not queue.empty():
            return True
    return False


async def pipelined(stream: Any, max_size: int, submit: Submit) -> None:
    """Hand each batch of ``stream`` to ``submit`` and acknowledge its events once the
    batch has committed, taking the next batch meanwhile."""
    manual = stream.noack()
    settling: set[asyncio.Future[None]] = set()
    try:
        async for taken in queued_batches(manual, max_size):
            committed = await submit([event.message for event in taken])
            acked: asyncio.Future[None] = asyncio.ensure_future(
                _acknowledge(manual, taken, committed)
            )
            settling.add(acked)
            acked.add_done_callback(settling.discard)
    finally:
        # Stopping: a batch not yet committed is not acknowledged, so it is read again.
        for acked in settling:
            acked.cancel()


async def _acknowledge(stream: Any, events: list[Any], committed: Awaitable[Any]) -> None:
    try:
        await committed
    except asyncio.CancelledError:
        raise
    except Exception:
        # Not expected (batch.run isolates failures); unacknowledged, the events hold
        # the partition's commits back instead of being skipped.
        log.exception("a batch failed after it was handed over; its events stay unacknowledged")
        raise
    for event in events:
        await stream.ack(event)
