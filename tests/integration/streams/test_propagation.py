"""Proof of propagation against the real broker: receipts complete a withdrawal,
FullyPropagated is published, and the HTTP views, the changelog query and the metrics
all tell the same story."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from schemas.events import FullyPropagated, InstructionIssued
from schemas.taxonomy import Choice, Outcome, Purpose, Right, SinkFamily
from streams.proof import query


def test_receipts_complete_a_withdrawal(stream_kit: Any, events: Any) -> None:
    kit = stream_kit
    topics = kit.topics
    objector = events.subject()
    granter = events.subject()
    objection = events.right(objector, Right.OBJECT_TO_DIRECT_MARKETING)
    grant = events.changed(granter, Choice.GRANTED, Purpose.MARKETING_EMAIL)
    worker = kit.start_worker()
    kit.publish(objection, grant)

    readers = [kit.instruction_reader()]
    propagated = kit.reader(topics.propagated)

    def instructions_for(event_id: str) -> list[InstructionIssued]:
        found = {
            i.instruction_id: i for r in readers for i in r.poll(0.3) if i.event_id == event_id
        }
        return list(found.values())

    issued = kit.wait_until(
        lambda: len(found := instructions_for(objection.event_id)) == 11 and found
    )
    by_event = f"{worker.url}/propagation/{objection.event_id}"
    status, pending = kit.wait_until(lambda: (r := kit.get(by_event))[0] == 200 and r)
    assert not pending["complete"]
    assert len(pending["pending"]) == 11
    assert pending["honoured"] == []
    kit.wait_until(lambda: kit.metric(worker.url, "consent_relay_pending_withdrawals") == 1)
    assert kit.metric(worker.url, "consent_relay_oldest_pending_withdrawal_age_seconds") > 0

    # A failure is recorded but honours nothing; APPLIED and SKIPPED do.
    marketing = next(i for i in issued if i.sink_family is SinkFamily.MARKETING)
    kit.publish(events.receipt(marketing, Outcome.FAILED), topic=topics.receipts)
    kit.wait_until(
        lambda: any(d["outcome"] == "FAILED" for d in kit.get(by_event)[1]["destinations"])
    )
    assert "MARKETING/suppression_list" in kit.get(by_event)[1]["pending"]
    others = [i for i in issued if i is not marketing]
    kit.publish(
        events.receipt(marketing),
        *(events.receipt(i) for i in others[:-1]),
        events.receipt(others[-1], Outcome.SKIPPED),
        events.receipt(others[0]),  # a duplicate receipt changes nothing
        topic=topics.receipts,
    )

    done: FullyPropagated = kit.wait_until(
        lambda: next((p for p in propagated.poll(0.3) if p.event_id == objection.event_id), None)
    )
    assert done.subject == objector
    assert {d.destination for d in done.destinations} == {
        f"{i.sink_family.value}/{i.destination}" for i in issued
    }
    assert done.completed_at >= done.occurred_at
    status, complete = kit.wait_until(lambda: (r := kit.get(by_event))[1].get("complete") and r)
    assert status == 200
    assert complete["pending"] == []
    assert len(complete["honoured"]) == 11
    status, by_subject = kit.get(f"{worker.url}/propagation?subject={objector.id}")
    assert status == 200
    assert [p["event_id"] for p in by_subject["propagations"]] == [objection.event_id]
    # Grants are routed (ALLOW) but their propagation is not tracked.
    assert kit.get(f"{worker.url}/propagation/{grant.event_id}")[0] == 404

    kit.wait_until(lambda: kit.metric(worker.url, "consent_relay_pending_withdrawals") == 0)
    assert kit.metric(worker.url, "consent_relay_fully_propagated_seconds_count") == 1
    assert (
        kit.metric(
            worker.url,
            "consent_relay_instructions_total",
            sink_family="MARKETING",
            destination="suppression_list",
            action="SUPPRESS",
        )
        == 1
    )
    assert kit.metric(worker.url, "consent_relay_faust_messages_received_total") is not None
    assert len(propagated.poll(0.5)) == 1

    # The same answer from the changelog topics, without asking the worker.
    def from_changelog() -> dict[str, Any] | None:
        pending_table, done_table = query.read_changelogs(kit.settings, kit.app_id_full)
        return query.for_event(pending_table, done_table, objection.event_id)

    assert kit.wait_until(lambda: (a := from_changelog()) is not None and a["complete"])
    cli = subprocess.run(
        [sys.executable, "-m", "streams", "propagation", "--subject", objector.id],
        env={**os.environ, **kit.env, "STREAMS_APP_ID": kit.app_id},
        capture_output=True,
        check=True,
        timeout=60,
    )
    answers = json.loads(cli.stdout)
    assert [a["event_id"] for a in answers] == [objection.event_id]
    assert answers[0]["complete"]
