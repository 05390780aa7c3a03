"""The analytics sink over a real SQLite file: receipts' results, retries, the may-process API."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.analytics.__main__ import build
from consumers.analytics.settings import AnalyticsSinkSettings
from consumers.analytics.sink import AnalyticsSink
from consumers.protocol import (
    FinishesBootstrap,
    PermanentSinkError,
    RetriableSinkError,
    ServesHttp,
)
from schemas.events import InstructionIssued, Subject
from schemas.runtime.http_server import BadRequestError
from schemas.taxonomy import Action, Outcome, Purpose, Regime, SinkFamily, SubjectKind

ALICE = Subject(id="acct-alice", kind=SubjectKind.ACCOUNT)


def instruction(action: Action, destination: str = "analytics_store") -> InstructionIssued:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=ALICE,
        sink_family=SinkFamily.ANALYTICS,
        destination=destination,
        action=action,
        purposes=(Purpose.RESEARCH_AND_STATISTICS,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=now,
        issued_at=now,
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[AnalyticsSink]:
    built = build(AnalyticsSinkSettings(database=tmp_path / "a.sqlite", busy_timeout_seconds=0.1))
    yield built
    built.close()


def test_optional_protocols_are_implemented(sink: AnalyticsSink) -> None:
    assert isinstance(sink, ServesHttp)
    assert isinstance(sink, FinishesBootstrap)


def test_handles_only_the_analytics_store(sink: AnalyticsSink) -> None:
    assert sink.handles(instruction(Action.SUPPRESS))
    assert not sink.handles(instruction(Action.SUPPRESS, destination="other"))


def test_redelivery_reports_the_first_application_time(sink: AnalyticsSink) -> None:
    suppress = instruction(Action.SUPPRESS)
    first = sink.apply(suppress)
    again = sink.apply(suppress)
    assert first.outcome is Outcome.APPLIED
    assert again.applied_at == first.applied_at


def test_locked_store_is_retriable(sink: AnalyticsSink) -> None:
    blocker = sqlite3.connect(sink.store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RetriableSinkError):
            sink.apply(instruction(Action.SUPPRESS))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_bootstrap_is_needed_until_finished(sink: AnalyticsSink) -> None:
    assert sink.needs_bootstrap()
    sink.bootstrap_finished()
    assert not sink.needs_bootstrap()


def test_may_process_route(sink: AnalyticsSink) -> None:
    route = sink.http_routes()["/may-process"]
    sink.apply(instruction(Action.SUPPRESS))

    def ask(**query: str) -> object:
        response = route(query)
        assert response.status == 200
        return json.loads(response.body)

    assert ask(subject_id=ALICE.id) == {"may_process": False}
    assert ask(subject_id=ALICE.id, purpose="COOKIES_STATISTICS") == {"may_process": True}
    assert ask(subject_id="someone-else") == {"may_process": True}
    with pytest.raises(BadRequestError):
        route({})
    with pytest.raises(BadRequestError):
        route({"subject_id": "x", "purpose": "NOPE"})


def test_a_batch_is_applied_in_order_in_one_transaction(sink: AnalyticsSink) -> None:
    suppress, allow = instruction(Action.SUPPRESS), instruction(Action.ALLOW)
    later = allow.occurred_at.replace(second=1)
    allow = replace(allow, occurred_at=later)
    results = sink.apply_batch([suppress, allow, suppress])
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 3
    assert results[2].applied_at == results[0].applied_at
    assert sink.store.may_process(ALICE.id)


def test_a_locked_store_applies_none_of_the_batch(sink: AnalyticsSink) -> None:
    blocker = sqlite3.connect(sink.store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RetriableSinkError):
            sink.apply_batch([instruction(Action.SUPPRESS), instruction(Action.RESTRICT)])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert sink.store.may_process(ALICE.id)


def test_an_action_the_store_cannot_carry_out_is_permanent(sink: AnalyticsSink) -> None:
    odd = instruction(Action.SUPPRESS)
    object.__setattr__(odd, "action", "FORGET_EVERYTHING")
    with pytest.raises(PermanentSinkError, match="cannot"):
        sink.apply(odd)
