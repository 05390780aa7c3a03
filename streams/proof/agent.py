"""Receipts: sinks' PropagationReceipts in; FullyPropagated out.

Each receipt answers one instruction of a pending propagation. A sink sends a batch's
receipts as one InstructionsAnswered per partition (a single PropagationReceipt, as
older sinks send, is read the same way). When the last
destination has honoured the event, the propagation moves to the subject's completed
records and FullyPropagated is published. A receipt whose propagation is not known yet
(its consent event is being processed again after a crash) is parked and applied when
the record appears; one for an instruction that is not tracked (a grant) expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from schemas.errors import InvalidEventError
from schemas.events import InstructionsAnswered, PropagationReceipt
from streams.engine.batch import Batch, UnexpectedEventError, submit
from streams.engine.context import RawMessage, StreamContext
from streams.intake import records
from streams.intake.times import to_ms
from streams.proof import propagation
from streams.proof.propagation import Orphan, SubjectPropagations

STAGE = "stream.receipts"
EVENT_TYPE = PropagationReceipt.__name__


class Receipts:
    """Processes batches of the receipts topic."""

    def __init__(self, ctx: StreamContext) -> None:
        self.ctx = ctx

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Process, publish and commit one batch."""
        await (await self.submit(messages))

    async def submit(self, messages: Sequence[RawMessage]) -> asyncio.Future[Batch]:
        """Process one batch and hand its output over (:func:`~streams.engine.batch.submit`);
        the returned future resolves once it is committed."""
        self.ctx.activity[STAGE] = "waiting for the tables"
        return await submit(self.ctx, messages, lambda after: ReceiptsBatch(self.ctx, after))


class ReceiptsBatch(Batch):
    """One attempt at a receipts batch."""

    stage = STAGE

    def add(self, message: RawMessage) -> None:
        """Apply one receipt, or each receipt of a sink's batch, to its propagation."""
        try:
            decoded = self.ctx.decoder.decode(message.value)
            if isinstance(decoded, InstructionsAnswered):
                receipts: tuple[PropagationReceipt, ...] = decoded.receipts
            elif isinstance(decoded, PropagationReceipt):
                receipts = (decoded,)
            else:
                raise UnexpectedEventError(type(decoded).__name__, "receipts")
        except InvalidEventError as exc:
            self.dead_letter(message, exc)
            return
        for receipt in receipts:
            self._apply(receipt, message.partition)

    def _apply(self, receipt: PropagationReceipt, partition: int) -> None:
        key = receipt.subject.id.encode()
        holder = self.pending.get(key) or SubjectPropagations()
        record = holder.find(receipt.event_id)
        applied_ms = to_ms(receipt.applied_at)
        if record is None:
            if any(r.event_id == receipt.event_id for r in self.done.get(key) or ()):
                self.tally.events[(EVENT_TYPE, "duplicate")] += 1
                return
            orphan = Orphan(
                receipt.event_id, receipt.instruction_id, receipt.outcome, applied_ms, self.now
            )
            self.pending.put(key, holder.with_orphan(orphan, self.now), partition)
            self.tally.events[(EVENT_TYPE, "parked")] += 1
            return
        updated = propagation.answer(
            record, receipt.instruction_id, receipt.outcome, applied_ms, self.now
        )
        if updated is None:
            self.tally.events[(EVENT_TYPE, "unchanged")] += 1
            return
        holder = holder.replacing(updated)
        if holder:
            self.pending.put(key, holder, partition)
        else:
            self.pending.delete(key, partition)
        if updated.complete:
            self.complete(key, records.subject_dict(receipt.subject), updated, partition)
        self.tally.events[(EVENT_TYPE, "applied")] += 1
