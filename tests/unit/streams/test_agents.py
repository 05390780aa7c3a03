"""The batch processors without Kafka: single-object Avro in, a recording producer out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from schemas.events import InstructionsAnswered, answers_id, instruction_id
from schemas.taxonomy import Choice, Outcome, Purpose, Right, SinkFamily
from schemas.topics import DESTINATION_HEADER
from streams.intake.agent import Intake
from streams.intake.progress import decode
from streams.proof.agent import Receipts


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_intake_routes_tracks_and_publishes_state(harness: Any, make: Any) -> None:
    topics = harness.topics
    objection = make.right(Right.OBJECT_TO_DIRECT_MARKETING)
    grant = make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL)
    run(
        Intake(harness.ctx).handle(
            [
                harness.message(topics.consent, objection, partition=2),
                harness.message(topics.consent, grant, partition=1),
            ]
        )
    )
    instructions = harness.instructions()
    assert len([i for i in instructions if i["event_id"] == objection.event_id]) == 11
    assert [i["action"] for i in instructions if i["event_id"] == grant.event_id] == ["ALLOW"]
    # Explicit partitions: the consent partition, since the topics are co-partitioned.
    assert {p for t, _k, _v, p in harness.sender.sent if t.endswith("marketing")} == {1, 2}
    key = objection.subject.id.encode()
    holder = harness.ctx.pending[key]
    assert len(holder.pending[0].required) == 11
    assert grant.subject.id.encode() not in harness.ctx.pending
    states = harness.sender.on(topics.state)
    assert {s["subject"]["id"] for s in states} == {objection.subject.id, grant.subject.id}
    # Then how far intake got, per partition, on that partition: after everything else.
    sent = harness.sender.sent
    reports = [(k, v, p) for t, k, v, p in sent if t == topics.intake_progress]
    assert {decode(k, v).partition: (decode(k, v).offset, p) for k, v, p in reports} == {
        2: (1, 2),
        1: (2, 1),
    }
    assert [t for t, *_ in sent[-2:]] == [topics.intake_progress] * 2


def test_an_events_partner_instructions_are_one_record_naming_them_all(
    harness: Any, make: Any
) -> None:
    topics = harness.topics
    opt_out = make.right(Right.OPT_OUT_OF_SALE_OR_SHARING)
    run(Intake(harness.ctx).handle([harness.message(topics.consent, opt_out, partition=2)]))
    prefix = topics.instruction_prefix()
    sent = [
        (t, h, p)
        for (t, _k, _v, p), h in zip(harness.sender.sent, harness.sender.headers, strict=True)
        if t.startswith(prefix)
    ]
    partners = topics.instructions(SinkFamily.PARTNER_SHARING)
    (record,) = harness.sender.on(partners)
    assert record["sink_family"] == SinkFamily.PARTNER_SHARING
    assert record["event_id"] == opt_out.event_id
    names = [i["destination"] for i in record["instructions"]]
    assert len(names) > 1
    for item in record["instructions"]:
        assert item["instruction_id"] == instruction_id(
            opt_out.event_id, SinkFamily.PARTNER_SHARING, item["destination"]
        )
    # The header names every partner of the record, so the others skip it undecoded.
    ((header,),) = {tuple(h) for t, h, _p in sent if t == partners}
    assert header == (DESTINATION_HEADER, ",".join(names).encode())
    # The other families still get a record per destination, named in the same header.
    for topic, headers, _p in sent:
        if topic != partners:
            (instruction,) = [
                i for i in harness.sender.on(topic) if i["destination"] == headers[0][1].decode()
            ]
            assert topic == topics.instructions(SinkFamily(instruction["sink_family"]))
    # Every instruction topic is co-partitioned: the consent partition is theirs.
    assert {p for _t, _h, p in sent} == {2}
    # Read as instructions, the record is one per partner.
    assert [i["destination"] for i in harness.instructions() if i["destination"] in names] == (
        names
    )


def test_intake_asks_receipts_only_for_tracked_events(harness: Any, make: Any) -> None:
    topics = harness.topics
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_SMS)
    objection = make.right(Right.OBJECT_TO_DIRECT_MARKETING)
    grant = make.changed(Choice.GRANTED, Purpose.MARKETING_EMAIL)
    run(
        Intake(harness.ctx).handle(
            [harness.message(topics.consent, e) for e in (withdrawal, objection, grant)]
        )
    )
    asked: dict[str, set[bool]] = {}
    for i in harness.instructions():
        asked.setdefault(i["event_id"], set()).add(i["receipt_requested"])
    assert asked == {
        withdrawal.event_id: {True},
        objection.event_id: {True},
        grant.event_id: {False},
    }


def test_intake_dead_letters_and_rekeys(harness: Any, make: Any) -> None:
    topics = harness.topics
    misrouted = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_SMS)
    receipt_on_consent = make.receipt(
        {
            "instruction_id": "i",
            "event_id": misrouted.event_id,
            "subject": {"id": "s", "kind": "ACCOUNT"},
            "sink_family": "MARKETING",
            "destination": "suppression_list",
        }
    )
    run(
        Intake(harness.ctx).handle(
            [
                harness.message(topics.consent, b"\x01garbage", key=b"k"),
                harness.message(topics.consent, misrouted, key=b"someone-else"),
                harness.message(topics.consent, receipt_on_consent),
            ]
        )
    )
    letters = harness.sender.on(topics.dead_letters)
    assert [d["error_class"] for d in letters] == ["BadMagicByteError", "UnexpectedEventError"]
    assert letters[0]["original_value"] == b"\x01garbage"
    assert letters[0]["source_offset"] == 0
    assert letters[1]["reason"] == "PropagationReceipt does not belong on the consent topic"
    # Re-keyed by subject, not processed under the wrong key.
    rekeyed = [(k, v) for t, k, v, _p in harness.sender.sent if t == topics.consent]
    assert rekeyed == [
        (misrouted.subject.id.encode(), harness.message(topics.consent, misrouted).value)
    ]
    assert harness.instructions() == []
    assert harness.ctx.state == {}


def test_a_failed_publish_is_retried_without_applying_twice(harness: Any, make: Any) -> None:
    topics = harness.topics
    harness.sender.fail = 1
    withdrawal = make.right(Right.ERASURE)
    run(Intake(harness.ctx).handle([harness.message(topics.consent, withdrawal)]))
    instructions = harness.instructions()
    holders = {d.label for d in harness.ctx.policy.destinations if d.holds_personal_data}
    # The failed attempt may have delivered part of its output: duplicates, same ids.
    assert len({i["instruction_id"] for i in instructions}) == len(holders)
    assert len(instructions) > len(holders)
    assert len(harness.ctx.pending[withdrawal.subject.id.encode()].pending) == 1
    assert harness.ctx.metrics.events.labels("RightsRequested", "applied")._value.get() == 1


def test_a_failed_publish_waits_for_the_broker_before_the_producer_gets_it_again(
    harness: Any, make: Any
) -> None:
    # While the broker is away the producer spins on metadata for as long as it holds
    # output: a retried batch is handed over again only once the broker answers.
    topics = harness.topics
    harness.sender.fail = 1
    delivered_when_waiting: list[int] = []

    async def broker_ready() -> None:
        delivered_when_waiting.append(len(harness.sender.sent))

    harness.ctx.broker_ready = broker_ready
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
    run(Intake(harness.ctx).handle([harness.message(topics.consent, withdrawal)]))
    (before_the_retry,) = delivered_when_waiting  # one failure, one wait
    assert len(harness.sender.sent) > before_the_retry  # the retry's output came after it


def test_receipts_complete_and_publish_fully_propagated(harness: Any, make: Any) -> None:
    topics = harness.topics
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.COOKIES_STATISTICS)
    run(Intake(harness.ctx).handle([harness.message(topics.consent, withdrawal)]))
    issued = harness.instructions()
    assert {i["destination"] for i in issued} == {"analytics_store", "google_analytics"}
    receipts = Receipts(harness.ctx)
    run(receipts.handle([harness.message(topics.receipts, make.receipt(issued[0]))]))
    assert harness.sender.on(topics.propagated) == []
    run(
        receipts.handle(
            [
                harness.message(topics.receipts, make.receipt(issued[1], Outcome.SKIPPED)),
                harness.message(topics.receipts, make.receipt(issued[1])),
            ]
        )
    )
    [done] = harness.sender.on(topics.propagated)
    assert done["event_id"] == withdrawal.event_id
    assert len(done["destinations"]) == 2
    key = withdrawal.subject.id.encode()
    assert key not in harness.ctx.pending
    assert [r.event_id for r in harness.ctx.done[key]] == [withdrawal.event_id]
    # The same withdrawal again is recognised: no second record, no second proof.
    run(Intake(harness.ctx).handle([harness.message(topics.consent, withdrawal)]))
    assert key not in harness.ctx.pending
    assert len(harness.sender.on(topics.propagated)) == 1


def test_a_receipt_before_its_record_is_parked_then_adopted(harness: Any, make: Any) -> None:
    topics = harness.topics
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.SHARE_WITH_OTHERS_BY_CONSENT)
    # The receipt for what intake will issue arrives before intake has (re)processed it.
    instruction = {
        "instruction_id": instruction_id(
            withdrawal.event_id, SinkFamily.PARTNER_SHARING, "others_by_consent"
        ),
        "event_id": withdrawal.event_id,
        "subject": {"id": withdrawal.subject.id, "kind": "ACCOUNT"},
        "sink_family": "PARTNER_SHARING",
        "destination": "others_by_consent",
    }
    run(Receipts(harness.ctx).handle([harness.message(topics.receipts, make.receipt(instruction))]))
    key = withdrawal.subject.id.encode()
    assert len(harness.ctx.pending[key].orphans) == 1
    run(Intake(harness.ctx).handle([harness.message(topics.consent, withdrawal)]))
    [done] = harness.sender.on(topics.propagated)
    assert done["event_id"] == withdrawal.event_id
    assert key not in harness.ctx.pending


def test_metrics_are_counted_per_batch(harness: Any, make: Any) -> None:
    topics = harness.topics
    run(
        Intake(harness.ctx).handle(
            [
                harness.message(
                    topics.consent, make.changed(Choice.WITHDRAWN, Purpose.MARKETING_PUSH)
                )
            ]
        )
    )
    metrics = harness.ctx.metrics
    assert (
        metrics.instructions.labels("MARKETING", "suppression_list", "SUPPRESS")._value.get() == 1
    )
    assert metrics.events.labels("ConsentChanged", "applied")._value.get() == 1
    assert SinkFamily.MARKETING.value == "MARKETING"


def test_a_bug_on_one_message_dead_letters_it_and_keeps_the_rest(
    harness: Any, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.intake import agent as intake_module  # noqa: PLC0415

    topics = harness.topics
    poisoned = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
    healthy = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_SMS)
    real = intake_module.effect_of

    def effect_of(event: Any, policy: Any) -> Any:
        if event.event_id == poisoned.event_id:
            raise KeyError("a bug")
        return real(event, policy)

    monkeypatch.setattr(intake_module, "effect_of", effect_of)
    run(
        Intake(harness.ctx).handle(
            [harness.message(topics.consent, e) for e in (poisoned, healthy)]
        )
    )
    [letter] = harness.sender.on(topics.dead_letters)
    assert letter["error_class"] == "KeyError"
    assert [i["event_id"] for i in harness.instructions()] == [healthy.event_id]


def test_output_refused_for_good_dead_letters_that_message_and_keeps_the_rest(
    harness: Any, make: Any
) -> None:
    topics = harness.topics
    first, refused, last = (
        make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL) for _ in range(3)
    )
    marker = refused.subject.id.encode()
    harness.sender.refuse = lambda topic, value: (
        topic != topics.dead_letters and value is not None and marker in value
    )
    run(
        Intake(harness.ctx).handle(
            [harness.message(topics.consent, e) for e in (first, refused, last)]
        )
    )
    [letter] = harness.sender.on(topics.dead_letters)
    assert letter["error_class"] == "RefusedError"
    assert letter["source_offset"] == 1
    routed = {i["event_id"] for i in harness.instructions()}
    assert routed == {first.event_id, last.event_id}
    assert refused.subject.id.encode() not in harness.ctx.state
    assert last.subject.id.encode() in harness.ctx.state


def test_a_refusal_that_passes_never_moves_past_the_message(harness: Any, make: Any) -> None:
    topics = harness.topics
    refusals = {"left": 5}

    def refuse(_topic: str, _value: bytes | None) -> bool:
        refusals["left"] -= 1
        return refusals["left"] >= 0

    harness.sender.refuse = refuse
    withdrawal = make.changed(Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
    run(Intake(harness.ctx).handle([harness.message(topics.consent, withdrawal)]))
    # Neither applied nor dead-lettered while everything is refused; applied after.
    assert withdrawal.event_id in {i["event_id"] for i in harness.instructions()}
    assert harness.sender.on(topics.dead_letters) == []


def test_a_sinks_batch_of_receipts_is_one_message(harness: Any, make: Any) -> None:
    topics = harness.topics
    withdrawals = [make.right(Right.ERASURE) for _ in range(3)]
    run(Intake(harness.ctx).handle([harness.message(topics.consent, w) for w in withdrawals]))
    issued = harness.instructions()
    receipts = tuple(make.receipt(i) for i in issued)
    answered = InstructionsAnswered(
        batch_id=answers_id(r.receipt_id for r in receipts), receipts=receipts
    )
    run(Receipts(harness.ctx).handle([harness.message(topics.receipts, answered, key=b"")]))
    done = harness.sender.on(topics.propagated)
    assert {d["event_id"] for d in done} == {w.event_id for w in withdrawals}
    assert harness.ctx.pending == {}
    counted = harness.ctx.metrics.events.labels("PropagationReceipt", "applied")._value.get()
    assert counted == len(issued)
