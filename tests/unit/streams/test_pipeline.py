"""Batches processed while the batch before is still being delivered
(streams.engine.batch.submit): they read the tables as it leaves them, hand their output
over only once it has committed, and are processed again if it had to be."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas.taxonomy import Choice, Purpose
from streams.intake.agent import Intake
from streams.proof.agent import Receipts

from .conftest import RecordingSender, _decode


class HeldSender(RecordingSender):
    """Holds every delivery until :meth:`release` (while ``holding``)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = True
        self.handed: list[str] = []
        """The topic of every record handed over, in order."""
        self.held: list[tuple[asyncio.Future[None], tuple[Any, ...], Any]] = []

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Any:
        self.handed.append(topic)
        if not self.holding:
            return await super().send(topic, key, value, partition, timestamp, headers)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append((future, (topic, key, value, partition), headers))
        return future

    def held_on(self, prefix: str) -> list[dict[str, Any]]:
        """The held records on topics starting with ``prefix``, decoded."""
        return [_decode(r[2]) for _f, r, _h in self.held if r[0].startswith(prefix)]

    def release(self, *, fail: bool = False) -> None:
        self.holding = False
        for future, record, headers in self.held:
            if fail:
                future.set_exception(ConnectionError("broker away"))
            else:
                self.sent.append(record)
                self.headers.append(headers)
                future.set_result(None)
        self.held.clear()


async def _turns(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def _receipts_for(harness: Any, make: Any, instructions: list[dict[str, Any]]) -> list[Any]:
    items = []
    for record in instructions:
        for item in record.pop("instructions", None) or [{}]:
            items.append({**record, **item})
    return [harness.message(harness.topics.receipts, make.receipt(i)) for i in items]


def test_the_next_batch_reads_the_last_ones_writes_and_is_sent_after_it_commits(
    harness: Any, make: Any
) -> None:
    sender = harness.ctx.sender = harness.sender = HeldSender()
    topics = harness.topics
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.COOKIES_STATISTICS)
    key = withdrawal.subject.id.encode()

    async def main() -> None:
        first = await Intake(harness.ctx).submit([harness.message(topics.consent, withdrawal)])
        handed_first = len(sender.handed)
        answers = _receipts_for(harness, make, sender.held_on(topics.instruction_prefix()))
        assert len(answers) == 2
        second = asyncio.ensure_future(Receipts(harness.ctx).submit(answers))
        await _turns()
        # Processed (it found the withdrawal's propagation, staged only), but nothing of
        # it is handed over before the first batch has committed.
        assert not second.done()
        assert len(sender.handed) == handed_first
        assert harness.ctx.pending == {}
        sender.release()
        await (await second)
        await first

    asyncio.run(main())
    [done] = sender.on(topics.propagated)
    assert done["event_id"] == withdrawal.event_id
    assert topics.propagated not in sender.handed[: sender.handed.index(topics.state)]
    assert key not in harness.ctx.pending
    assert [r.event_id for r in harness.ctx.done[key]] == [withdrawal.event_id]


def test_a_late_grant_in_the_next_batch_sees_the_withdrawal_still_in_flight(
    harness: Any, make: Any
) -> None:
    sender = harness.ctx.sender = harness.sender = HeldSender()
    topics = harness.topics
    subject = make.subject()
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL, subject=subject)
    late = make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL, subject=subject, at=make.ago(60))
    intake = Intake(harness.ctx)

    async def main() -> None:
        first = await intake.submit([harness.message(topics.consent, withdrawal)])
        second = asyncio.ensure_future(intake.submit([harness.message(topics.consent, late)]))
        await _turns()
        sender.release()
        await (await second)
        await first

    asyncio.run(main())
    # Read from the table alone, the grant would have found no choice and granted; and
    # its commit would have put a state without the withdrawal in the table.
    assert [i["action"] for i in harness.instructions()] == ["SUPPRESS"]
    state = harness.ctx.state[subject.id.encode()]
    [(key, history)] = state.decisions.items()
    assert [d.choice for d in history] == [Choice.GRANTED, Choice.WITHDRAWN]
    assert state.current(key).event_id == withdrawal.event_id


def test_when_the_last_batch_fails_the_next_is_processed_again_after_it(
    harness: Any, make: Any
) -> None:
    sender = harness.ctx.sender = harness.sender = HeldSender()
    topics = harness.topics
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.COOKIES_STATISTICS)
    key = withdrawal.subject.id.encode()

    async def main() -> None:
        first = await Intake(harness.ctx).submit([harness.message(topics.consent, withdrawal)])
        answers = _receipts_for(harness, make, sender.held_on(topics.instruction_prefix()))
        second = asyncio.ensure_future(Receipts(harness.ctx).submit(answers))
        await _turns()
        sender.release(fail=True)  # the first batch's output: none of it delivered
        await (await second)
        await first

    asyncio.run(main())
    # The withdrawal was processed again and committed once, then the receipts, which
    # had read its first (discarded) attempt, were processed again and completed it.
    events = harness.ctx.metrics.events
    assert events.labels("ConsentChanged", "applied")._value.get() == 1
    assert events.labels("PropagationReceipt", "applied")._value.get() == 2
    [done] = sender.on(topics.propagated)
    assert done["event_id"] == withdrawal.event_id
    assert key not in harness.ctx.pending
    assert key in harness.ctx.state
    sent = [t for t, *_ in sender.sent]
    assert sent.index(topics.state) < sent.index(topics.propagated)


def test_a_batch_waiting_on_one_whose_commit_failed_fails_too_instead_of_waiting_forever(
    harness: Any, make: Any
) -> None:
    class Broken(dict[bytes, Any]):
        def __setitem__(self, key: bytes, value: Any) -> None:
            raise RuntimeError("a bug in the table")

    sender = harness.ctx.sender = harness.sender = HeldSender()
    harness.ctx.pending = Broken()
    topics = harness.topics
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.COOKIES_STATISTICS)

    async def main() -> tuple[BaseException | None, BaseException | None]:
        first = await Intake(harness.ctx).submit([harness.message(topics.consent, withdrawal)])
        answers = _receipts_for(harness, make, sender.held_on(topics.instruction_prefix()))
        second = asyncio.ensure_future(Receipts(harness.ctx).submit(answers))
        await _turns()
        sender.release()
        done, _ = await asyncio.wait({first, second}, timeout=5)
        assert done == {first, second}
        return first.exception(), second.exception()

    first_error, second_error = asyncio.run(main())
    assert isinstance(first_error, RuntimeError)
    assert isinstance(second_error, RuntimeError)
