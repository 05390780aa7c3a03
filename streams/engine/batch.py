"""One batch's work area and the publish-or-retry loop every processor uses.

A :class:`Batch` stages table writes, collects output in an :class:`~streams.engine.outbox.Outbox`
and counts metrics. :func:`submit` processes a batch's messages and hands its output to
the producer; the batch commits its staged writes and counts once every delivery is
acknowledged, and meanwhile the next batch is processed, reading the tables as this one
leaves them (its staged writes), and waits for this one's commit before handing its own
output over: the stream computes while the broker acknowledges, and output stays in order.
If this one's output fails, the next is processed again once this one has been.
:func:`run` is the same without the overlap: processes the messages, publishes the output with
every delivery awaited, and only then commits the staged writes and the counts. If the
registry or the broker fails while publishing, the staged work is thrown away and the
batch is processed again from the unchanged tables after a backoff, for as long as it
takes: the stream stalls rather than drop or half-apply anything. A message that raises
anything else (a bug) is dead-lettered with its error class, never silently dropped, and
so is a message whose output the broker refuses for good (a batch that fails that way
is sent again one message at a time to find it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka.errors import KafkaError

from schemas.errors import ConsentRelayError, InvalidEventError, RegistryUnavailableError
from schemas.events import DeadLettered, FullyPropagated, InstructionIssued, InstructionsIssued
from schemas.runtime.backoff import RETRY
from schemas.taxonomy import SinkFamily
from schemas.topics import DESTINATION_HEADER, ONE_RECORD_PER_EVENT, destinations_header
from streams.engine.context import (
    InFlight,
    RawMessage,
    StreamContext,
)
from streams.engine.outbox import Headers, Outbox
from streams.engine.staging import Staged
from streams.intake import records
from streams.intake.fanout import Route
from streams.intake.times import now_ms
from streams.metrics import Tally
from streams.proof.propagation import Propagation, SubjectPropagations

log = logging.getLogger("streams")


class PublishError(ConsentRelayError):
    """Output could not be encoded or delivered; the batch is retried."""


class UnexpectedEventError(InvalidEventError):
    """A well-formed event of a type that does not belong on this topic."""

    def __init__(self, event_type: str, topic_kind: str) -> None:
        super().__init__(f"{event_type} does not belong on the {topic_kind} topic")
        self.field_name = None
        self.reason = f"{event_type} does not belong on the {topic_kind} topic"


RETRIABLE = (PublishError, RegistryUnavailableError, KafkaError, OSError, TimeoutError)


class Batch:
    """Staged tables, output and counts of one attempt at a batch."""

    stage = "stream"

    def __init__(self, ctx: StreamContext, after: Batch | None = None) -> None:
        """``after``: the batch published just before this one, its output still in
        flight; this one reads the tables as that one leaves them."""
        self.ctx = ctx
        self.now = now_ms()
        self.outbox = Outbox()
        self.tally = Tally()
        self.pending: Staged[bytes, SubjectPropagations] = Staged(
            ctx.pending, ctx.changelogs.get("pending"), after.pending if after else None
        )
        self.done: Staged[bytes, tuple[Propagation, ...]] = Staged(
            ctx.done, ctx.changelogs.get("done"), after.done if after else None
        )
        self.completions: list[float] = []

    def add(self, message: RawMessage) -> None:
        """Process one message into the staged state and the outbox."""
        raise NotImplementedError

    def finish(self) -> None:
        """Called after the last message, before publishing."""

    def staged(self) -> tuple[Staged[Any, Any], ...]:
        """The tables this batch writes."""
        return (self.pending, self.done)

    def commit(self) -> None:
        """Apply the staged writes and counts; the output is durable by now."""
        for table in self.staged():
            table.commit()
        self.tally.flush(self.ctx.metrics)
        for seconds in self.completions:
            self.ctx.metrics.fully_propagated.observe(seconds)

    def discard(self) -> None:
        """Drop the staged writes: the batch is processed again from the tables."""
        for table in self.staged():
            table.discard()

    def publish(
        self,
        event_type: type[Any],
        avro: dict[str, Any],
        topic: str,
        key: bytes | None,
        partition: int | None,
        *,
        headers: Headers = None,
    ) -> None:
        """Encode and queue one output message."""
        try:
            value = self.ctx.encode(event_type, avro, topic)
        except ConsentRelayError as exc:
            raise PublishError(f"cannot encode {event_type.__name__}: {exc}") from exc
        self.outbox.add(topic, key, value, partition, headers)

    def instructions(
        self, routes: Sequence[Route], issue: records.Issue, key: bytes, source_partition: int
    ) -> None:
        """Queue an event's instructions on their families' topics: one InstructionsIssued
        for the routes of a family in :data:`~schemas.topics.ONE_RECORD_PER_EVENT`, an
        InstructionIssued per route for the others; the destinations named in a header,
        so a sink skips what is not for it without decoding it."""
        grouped: dict[SinkFamily, list[Route]] = {}
        for route in routes:
            family = route.destination.family
            if family in ONE_RECORD_PER_EVENT:
                grouped.setdefault(family, []).append(route)
            else:
                self._publish_instruction(
                    InstructionIssued,
                    records.instruction(route, issue),
                    family,
                    (route.destination.name,),
                    key=key,
                    source_partition=source_partition,
                )
            self.tally.instructions[(family, route.destination.name, route.action)] += 1
        for family, family_routes in grouped.items():
            self._publish_instruction(
                InstructionsIssued,
                records.instructions(family_routes, issue),
                family,
                (route.destination.name for route in family_routes),
                key=key,
                source_partition=source_partition,
            )

    def _publish_instruction(
        self,
        event_type: type[Any],
        avro: dict[str, Any],
        family: SinkFamily,
        destinations: Iterable[str],
        *,
        key: bytes,
        source_partition: int,
    ) -> None:
        topic = self.ctx.instruction_topics[family]
        self.publish(
            event_type,
            avro,
            topic,
            key,
            self.ctx.partition_for(topic, source_partition),
            headers=[(DESTINATION_HEADER, destinations_header(destinations))],
        )

    def dead_letter(self, message: RawMessage, error: BaseException) -> None:
        """Queue a DeadLettered for a message this stage cannot process."""
        avro = records.dead_letter(
            stage=self.stage,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            error=error,
            now_ms=self.now,
        )
        self.publish(DeadLettered, avro, self.ctx.topics.dead_letters, avro["original_key"], None)
        reason = type(error).__name__
        self.tally.dead_letters[(self.stage, reason)] += 1
        self.tally.events[("unknown", "dead_lettered")] += 1
        log.warning(
            "%s: dead-lettered %s[%d]@%d: %s (field %s)",
            self.stage,
            message.topic,
            message.partition,
            message.offset,
            reason,
            getattr(error, "field_name", None),
        )

    def complete(
        self, key: bytes, subject: dict[str, Any], record: Propagation, source_partition: int
    ) -> None:
        """Keep a completed propagation for queries and publish FullyPropagated."""
        kept = (*(self.done.get(key) or ()), record)[-self.ctx.completed_per_subject :]
        self.done.put(key, kept, source_partition)
        topic = self.ctx.topics.propagated
        self.publish(
            FullyPropagated,
            records.fully_propagated(subject, record),
            topic,
            key,
            self.ctx.partition_for(topic, source_partition),
        )
        assert record.completed_at_ms is not None
        self.completions.append(max(0.0, (record.completed_at_ms - record.occurred_at_ms) / 1000))


Make = Callable[["Batch | None"], "Batch"]
"""A new batch attempt, reading the tables as the given earlier batch leaves them."""


async def submit(
    ctx: StreamContext, messages: Sequence[RawMessage], make: Make
) -> asyncio.Future[Batch]:
    """Process ``messages`` and hand their output to the producer; the returned future
    resolves with the batch once its output is durable and the batch committed.

    Batches are processed one at a time (``ctx.lock``), while the one before is still
    being delivered (``ctx.in_flight``): a batch reads the tables through that one's
    staged writes, and hands its own output over only after that one has committed,
    so the broker receives the stream's output in the order it was computed. If that
    one's output failed and it was processed again, so is this one, from the tables,
    before anything of it is sent. A batch that cannot even be processed (the registry
    away, a bug) goes the way :func:`run` handles it, with nothing in flight.
    """
    async with ctx.lock:
        before = ctx.in_flight
        if before is not None and before.settled.done():
            before = None
        batch = _prepared(ctx, messages, make(before.batch if before else None))
        if before is not None and not await asyncio.shield(before.settled):
            # It read what the batch before staged, which was processed again since.
            batch = batch and _prepared(ctx, messages, make(None))
        delivered = None
        if batch is not None:
            try:
                ctx.activity[batch.stage] = f"handing {len(batch.outbox)} messages over"
                delivered = await batch.outbox.hand_over(ctx.sender)
            except Exception as exc:  # noqa: BLE001 - run() retries or isolates it
                log.warning(
                    "%s: output not handed over (%s); publishing it again", batch.stage, exc
                )
        if batch is None or delivered is None:
            finished = asyncio.get_running_loop().create_future()
            finished.set_result(await run(ctx, messages, lambda: make(None)))
            return finished
        entry = InFlight(batch, asyncio.get_running_loop().create_future())
        ctx.in_flight = entry
    return asyncio.ensure_future(_settle(ctx, entry, delivered, messages, make))


def _prepared(ctx: StreamContext, messages: Sequence[RawMessage], batch: Batch) -> Batch | None:
    """``batch`` with ``messages`` processed and its output in its outbox, or None when
    that failed (for :func:`run` to handle, with its retries and dead letters)."""
    ctx.activity[batch.stage] = f"processing {len(messages)} messages"
    try:
        _process_all(batch, messages, _process)
    except Exception:  # noqa: BLE001 - run() processes them again and handles it
        return None
    return batch


async def _settle(
    ctx: StreamContext,
    entry: InFlight,
    delivered: asyncio.Future[Any],
    messages: Sequence[RawMessage],
    make: Make,
) -> Batch:
    """Commit ``entry``'s batch once its output is durable; if it is not, process the
    messages again from the tables (:func:`run`) first. Settles ``entry`` either way."""
    batch: Batch = entry.batch
    try:
        try:
            await delivered
        except RETRIABLE as exc:
            failure: Exception | None = exc
        except Exception as exc:  # noqa: BLE001 - run() sends them one by one
            failure = exc
        else:
            failure = None
        if failure is None:
            batch.commit()
            entry.settled.set_result(True)
            ctx.activity[batch.stage] = "committed a batch"
            return batch
        batch.discard()
        # The batch after this one (if any) waits for this to settle before sending.
        if isinstance(failure, RETRIABLE) and getattr(failure, "retriable", True):
            delay = RETRY.delay(1)
            log.warning(
                "%s: batch of %d not published (%s: %s); processing it again in %.1fs",
                batch.stage,
                len(messages),
                type(failure).__name__,
                failure,
                delay,
            )
            await ctx.sleep(delay)
            # Handed to the producer while the broker is away, the output would keep it
            # asking for metadata in a tight loop until the broker is back.
            await ctx.broker_ready()
            again = await run(ctx, messages, lambda: make(None))
        else:
            again = await run(ctx, messages, lambda: make(None), failed=failure)
        entry.settled.set_result(False)
        return again
    except asyncio.CancelledError:
        # The worker is stopping: whatever waits for this batch stops too.
        entry.settled.cancel()
        raise
    except BaseException as exc:
        # A bug: whatever waits for this batch fails with it rather than wait forever.
        if not entry.settled.done():
            entry.settled.set_exception(exc)
        raise
    finally:
        if ctx.in_flight is entry:
            ctx.in_flight = None


async def run(
    ctx: StreamContext,
    messages: Sequence[RawMessage],
    make: Callable[[], Batch],
    failed: Exception | None = None,
) -> Batch:
    """Process ``messages`` until their output is published, then commit; the batch.

    This returns only once every message is durable: applied, or dead-lettered. Faust
    acknowledges a batch's messages however its handler ends, so nothing may escape
    from here but cancellation. A failure a retry can fix is retried with a backoff.
    Any other failure of a batch (the broker refusing a record for good, a bug) sends
    its messages through one at a time, and the one whose output cannot be published
    is dead-lettered in its place, with the error as the reason. ``failed``: the whole
    batch already failed so (:func:`submit`'s attempt), go one at a time at once.
    """
    whole = failed or await _until_published(ctx, messages, make, _process)
    if isinstance(whole, Batch):
        return whole
    log.error(
        "a batch of %d cannot be published (%s: %s); sending its messages one by one",
        len(messages),
        type(whole).__name__,
        whole,
    )
    last: Batch | Exception = whole
    for message in messages:
        attempt = 0
        while True:
            last = await _until_published(ctx, (message,), make, _process)
            if isinstance(last, Batch):
                break
            failure = last

            def instead(batch: Batch, message: RawMessage, failure: Exception = failure) -> None:
                batch.dead_letter(message, failure)

            last = await _until_published(ctx, (message,), make, instead)
            if isinstance(last, Batch):
                break
            # Not even its bounded dead letter can be written: never move past it.
            delay = RETRY.delay(attempt + 1)
            log.error("cannot apply or dead-letter a message (%s); retrying in %.1fs", last, delay)
            attempt += 1
            await ctx.sleep(delay)
    assert isinstance(last, Batch)
    return last


def _process(batch: Batch, message: RawMessage) -> None:
    batch.add(message)


async def _until_published(
    ctx: StreamContext,
    messages: Sequence[RawMessage],
    make: Callable[[], Batch],
    handle: Callable[[Batch, RawMessage], None],
) -> Batch | Exception:
    """One batch, retried until published (then committed and returned), or the
    failure that a retry cannot fix."""
    attempt = 0
    while True:
        batch = make()
        ctx.activity[batch.stage] = f"processing {len(messages)} messages (attempt {attempt + 1})"
        try:
            _process_all(batch, messages, handle)
            ctx.activity[batch.stage] = f"publishing {len(batch.outbox)} messages"
            await batch.outbox.flush(ctx.sender)
        except RETRIABLE as exc:
            if not getattr(exc, "retriable", True):
                return exc
            delay = RETRY.delay(attempt + 1)
            log.warning(
                "%s: batch of %d not published (%s: %s); retrying in %.1fs",
                batch.stage,
                len(messages),
                type(exc).__name__,
                exc,
                delay,
            )
            attempt += 1
            await ctx.sleep(delay)
            # Handed to the producer while the broker is away, the output would keep it
            # asking for metadata in a tight loop until the broker is back.
            await ctx.broker_ready()
            continue
        except Exception as exc:  # noqa: BLE001 - isolated by the caller, never acknowledged
            return exc
        batch.commit()
        ctx.activity[batch.stage] = "committed a batch"
        return batch


def _process_all(
    batch: Batch, messages: Sequence[RawMessage], handle: Callable[[Batch, RawMessage], None]
) -> None:
    """Every message into ``batch``, then its table changes into its outbox."""
    for message in messages:
        try:
            handle(batch, message)
        except RETRIABLE:
            raise
        except Exception as exc:  # noqa: BLE001 - dead-lettered, never dropped
            # A bug on one message must not take the batch down: Faust would
            # acknowledge the whole batch as the agent failed. The message goes
            # to the dead letters with the error, and can be replayed once fixed.
            batch.dead_letter(message, exc)
    batch.finish()
    for table in batch.staged():
        table.publish(batch.outbox)
