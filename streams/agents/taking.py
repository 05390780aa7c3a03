"""Batches from a Faust stream: every event already queued, with no window to wait out.

Faust's ``take_events(n, within)`` yields what its buffer holds once ``within`` runs out,
but its stream moves events from the agent's queue into that buffer one event-loop turn
at a time. With a 5 ms window and a worker whose loop turns take a millisecond or more
(the other agent, the fetcher, the producer), a batch held ~5 events while hundreds
waited in the queue; each batch then paid a whole publish round trip, so the queue grew
and a withdrawal waited seconds at 200 events/s with no process busy (measured per hop:
consent event to intake 1.9 s, receipt to the receipts agent 5.6 s, all of it in the
queue). :func:`queued_batches` instead ends a batch when the queue is empty (or the batch
is full): a lone event goes at once, and a backlog goes in batches as large as it is.

Acknowledgements stay manual, as with ``take_events``: a batch's events are acknowledged
only after the caller has finished with it (its output published), and not at all if the
caller stops mid-batch (cancelled at shutdown), so they are read again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def queued_batches(stream: Any, max_size: int) -> AsyncIterator[list[Any]]:
    """Faust events of ``stream`` in batches of at most ``max_size``: each batch ends
    with the last event already in the stream's queue."""
    manual = stream.noack()
    queue = manual.channel.queue
    batch: list[Any] = []
    async for event in manual.events():
        batch.append(event)
        if len(batch) < max_size and not queue.empty():
            continue
        taken, batch = batch, []
        yield taken
        for each in taken:
            await manual.ack(each)
