"""Intake: consent events in; state, instructions and propagation records out.

For each message of the consent topic: decode and validate (anything else is
dead-lettered with the reason and its coordinates), turn the event into its effect on
the subject's consent (:mod:`streams.intake.claims`), fold it into the subject's state
(:mod:`streams.intake.resolution`), route what is now in force (:mod:`streams.intake.fanout`) as
instructions (the partners' as one record per event: :meth:`Batch.instructions`), and
for a withdrawal or a rights request record which destinations must honour it
(:mod:`streams.proof.propagation`). Each subject whose state changed is published once per
batch to the compacted state topic, which is also the state table's changelog
(:mod:`streams.intake.state_topic`).

A message whose key is not its subject's id would put the subject's events on two
partitions (and two workers); it is re-published keyed by the subject instead, so it
still takes effect, in order with that subject's other events.

After a batch is published (every delivery acknowledged, the state changelog's
included), intake writes how far it got on each of the batch's consent partitions to
the progress topic (:mod:`streams.intake.progress`): the consent gate, its own process, waits
on it before deciding data against the state. It must come after those
acknowledgements, not with them, or the gate could read the progress before the state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from schemas.errors import InvalidEventError
from schemas.events import (
    CONSENT_EVENT_TYPES,
    ConsentEvent,
    ConsentStateRecorded,
    RightsRequested,
)
from schemas.taxonomy import Choice
from streams.engine.batch import Batch, UnexpectedEventError, submit
from streams.engine.context import RawMessage, StreamContext
from streams.engine.staging import Staged
from streams.intake import fanout, progress, records
from streams.intake.claims import effect_of
from streams.intake.resolution import Effect, SubjectState, apply
from streams.intake.times import now_ms, to_ms
from streams.proof import propagation
from streams.proof.propagation import SubjectPropagations

log = logging.getLogger("streams")

STAGE = "stream.intake"


class Intake:
    """Processes batches of the consent topic."""

    def __init__(self, ctx: StreamContext) -> None:
        self.ctx = ctx

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Process, publish and commit one batch, then report the progress."""
        await (await self.submit(messages))

    async def submit(self, messages: Sequence[RawMessage]) -> asyncio.Future[None]:
        """Process one batch and hand its output over (:func:`~streams.engine.batch.submit`);
        the returned future resolves once it is committed and its progress reported."""
        self.ctx.activity[STAGE] = "waiting for the tables"
        committed = await submit(self.ctx, messages, lambda after: IntakeBatch(self.ctx, after))
        return asyncio.ensure_future(self._committed(committed, messages))

    async def _committed(
        self, committed: asyncio.Future[Batch], messages: Sequence[RawMessage]
    ) -> None:
        await committed
        await self._report_progress(messages)

    async def _report_progress(self, messages: Sequence[RawMessage]) -> None:
        """One progress record per consent partition of the published batch. Not awaited:
        a lost one only makes the gate wait for the workers' next commit instead."""
        topic = self.ctx.topics.intake_progress
        reached: dict[int, int] = {}
        for message in messages:
            reached[message.partition] = max(reached.get(message.partition, 0), message.offset + 1)
        at = now_ms()
        for partition, offset in reached.items():
            target = self.ctx.partition_for(topic, partition)
            if target is None:
                continue  # not co-partitioned: the gate refuses to run on such topics
            key, value = progress.encode(progress.IntakeProgressed(partition, offset, at))
            sent = await self.ctx.sender.send(topic, key, value, target, None, None)
            asyncio.ensure_future(sent).add_done_callback(_progress_delivered)


def _progress_delivered(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.warning("intake progress not delivered: %s", delivery.exception())


def is_tracked(effect: Effect) -> bool:
    """A withdrawal or a rights request: its propagation must be proven."""
    return (
        effect.erase
        or effect.restrict is not None
        or any(c.choice is Choice.WITHDRAWN for c in effect.claims)
    )


class IntakeBatch(Batch):
    """One attempt at an intake batch."""

    stage = STAGE

    def __init__(self, ctx: StreamContext, after: Batch | None = None) -> None:
        super().__init__(ctx, after)
        # No changelog of its own: finish() publishes the state records.
        self.state: Staged[bytes, SubjectState] = Staged(
            ctx.state, None, after.state if isinstance(after, IntakeBatch) else None
        )

    def add(self, message: RawMessage) -> None:
        """Decode, resolve, route and track one consent event."""
        try:
            event = self.ctx.decoder.decode(message.value)
            if not isinstance(event, CONSENT_EVENT_TYPES):
                raise UnexpectedEventError(type(event).__name__, "consent")
        except InvalidEventError as exc:
            self.dead_letter(message, exc)
            return
        event_type = type(event).__name__
        key = event.subject.id.encode()
        if message.key != key:
            self.outbox.add(self.ctx.topics.consent, key, message.value or b"", None)
            self.tally.events[(event_type, "rekeyed")] += 1
            return
        effect = effect_of(event, self.ctx.policy)
        if not effect.claims and not effect.erase and effect.restrict is None:
            self.tally.events[(event_type, "not_propagated")] += 1
            return
        self._apply(event, event_type, key, effect, message.partition)

    def _apply(
        self, event: ConsentEvent, event_type: str, key: bytes, effect: Effect, partition: int
    ) -> None:
        at_ms = to_ms(event.occurred_at)
        applied = apply(self.state.get(key), event.subject.kind, event.event_id, at_ms, effect)
        if applied.changed:
            self.state.put(key, applied.state, partition)
        subject = records.subject_dict(event.subject)
        routes = fanout.routes(self.ctx.policy, event.event_id, effect, applied)
        right = event.right if isinstance(event, RightsRequested) else None
        tracked = is_tracked(effect)
        issue = records.Issue(
            event_id=event.event_id,
            event_type=event_type,
            subject=subject,
            regime=event.regime.value,
            right=right,
            occurred_at_ms=at_ms,
            issued_at_ms=self.now,
            receipt_requested=tracked,
        )
        self.instructions(routes, issue, key, partition)
        if tracked:
            self._track(
                event=event,
                event_type=event_type,
                key=key,
                subject=subject,
                at_ms=at_ms,
                routes=routes,
                partition=partition,
            )
        status = "applied" if applied.changed else "unchanged"
        self.tally.events[(event_type, status)] += 1

    def _track(
        self,
        *,
        event: ConsentEvent,
        event_type: str,
        key: bytes,
        subject: dict[str, Any],
        at_ms: int,
        routes: tuple[fanout.Route, ...],
        partition: int,
    ) -> None:
        holder = self.pending.get(key) or SubjectPropagations()
        if holder.find(event.event_id) is not None:
            return
        if any(r.event_id == event.event_id for r in self.done.get(key) or ()):
            return
        record = propagation.start(
            event_id=event.event_id,
            event_type=event_type,
            subject_kind=event.subject.kind,
            occurred_at_ms=at_ms,
            now_ms=self.now,
            routes=routes,
        )
        record, holder = holder.adopting(record, self.now)
        holder = holder.replacing(record)
        if holder:
            self.pending.put(key, holder, partition)
        else:
            self.pending.delete(key, partition)
        if record.complete:
            self.complete(key, subject, record, partition)

    def finish(self) -> None:
        """Publish each changed subject's state once, on the partition the table's
        changelog keeps it on (the consent partition: the topics are co-partitioned)."""
        topic = self.ctx.topics.state
        for key, state, partition in self.state.written():
            self.publish(
                ConsentStateRecorded,
                records.state_record(key.decode(), state, self.now),
                topic,
                key,
                partition,
            )

    def staged(self) -> tuple[Staged[Any, Any], ...]:
        """The state table too."""
        return (self.state, self.pending, self.done)
