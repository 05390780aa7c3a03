"""The consent gate: data events in; the ones consent allows out, bytes untouched.

The data topic is co-partitioned with the consent topic, so a subject's consent state
is local. Before deciding a batch, the gate waits (briefly, bounded) until intake has
applied every consent event already on the matching consent partition, so a
withdrawal published before the data is in force when the data is judged; the
decision itself compares the data's event time with the decisions' times
(:mod:`streams.gate`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from schemas.errors import InvalidEventError
from schemas.events import DataEventCaptured
from streams.agents.batch import Batch, UnexpectedEventError, run
from streams.agents.context import RawMessage, StreamContext, log
from streams.gate import decide
from streams.times import to_ms

STAGE = "stream.gate"
EVENT_TYPE = DataEventCaptured.__name__
UNKNOWN_PROGRESS_GRACE_SECONDS = 1.0
"""How long to wait for intake to report progress on a partition it has said nothing
about (it is either idle, i.e. caught up, or about to report its first batch)."""
POLL_SECONDS = 0.02

EndOffsets = Callable[[set[int]], Awaitable[dict[int, int | None]]]
"""Consent partition numbers → their end offsets (next offset to be written)."""


class Gate:
    """Processes batches of the data-events topic."""

    def __init__(
        self, ctx: StreamContext, end_offsets: EndOffsets, max_wait_seconds: float = 10.0
    ) -> None:
        self.ctx = ctx
        self.end_offsets = end_offsets
        self.max_wait_seconds = max_wait_seconds

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Wait for intake to catch up, then decide and forward one batch."""
        self.ctx.activity[STAGE] = "waiting for intake to catch up"
        await self.wait_for_intake({m.partition for m in messages})
        await run(self.ctx, messages, lambda: GateBatch(self.ctx))

    async def wait_for_intake(self, partitions: set[int]) -> None:
        """Until intake has processed what is on these consent partitions now (bounded)."""
        ends = await self.end_offsets(partitions)
        started = time.monotonic()
        progress = self.ctx.intake_progress
        while True:
            waited = time.monotonic() - started
            behind = [
                p
                for p, end in ends.items()
                if end is not None
                and progress.get(p, -1) < end - 1
                and (p in progress or waited < UNKNOWN_PROGRESS_GRACE_SECONDS)
            ]
            if not behind:
                return
            if waited >= self.max_wait_seconds:
                log.warning(
                    "%s: intake still behind on consent partitions %s after %.0fs; deciding",
                    STAGE,
                    sorted(behind),
                    waited,
                )
                return
            await self.ctx.sleep(POLL_SECONDS)


class GateBatch(Batch):
    """One attempt at a gate batch."""

    stage = STAGE

    def add(self, message: RawMessage) -> None:
        """Decide one data event and forward it if allowed."""
        try:
            data = self.ctx.decoder.decode(message.value)
            if not isinstance(data, DataEventCaptured):
                raise UnexpectedEventError(type(data).__name__, "data events")
        except InvalidEventError as exc:
            self.dead_letter(message, exc)
            return
        key = data.subject.id.encode()
        if message.key != key:
            self.outbox.add(self.ctx.topics.data_events, key, message.value or b"", None)
            self.tally.events[(EVENT_TYPE, "rekeyed")] += 1
            return
        at_ms = to_ms(data.occurred_at)
        verdict = decide(
            self.ctx.gate_policy, self.ctx.state.get(key), data.purpose, data.recipient, at_ms
        )
        if verdict.allowed:
            topic = self.ctx.topics.data_allowed
            self.outbox.add(
                topic, key, message.value or b"", self.ctx.partition_for(topic, message.partition)
            )
        self.tally.gate[(verdict.value, data.purpose.value)] += 1
        self.tally.events[(EVENT_TYPE, "allowed" if verdict.allowed else "dropped")] += 1
        self.delays.append(max(0.0, (self.now - at_ms) / 1000))

    def __init__(self, ctx: StreamContext) -> None:
        super().__init__(ctx)
        self.delays: list[float] = []

    def commit(self) -> None:
        """Record the gate delays too."""
        super().commit()
        for seconds in self.delays:
            self.ctx.metrics.gate_delay.observe(seconds)
