"""What each partner was told, remembered: in a SQLite file across restarts, or in memory.

And the partner sink never tells a partner an instruction it has answered before, even
when the runner hands it an old duplicate to answer again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consumers.partners.answers import RecentAnswers, SqliteAnswers
from consumers.partners.breaker import CircuitBreaker
from consumers.partners.config import KnownSubjects
from consumers.partners.sink import PartnerSink
from schemas.taxonomy import Outcome
from tests.unit.consumers.test_partners_sink import Client, instruction, partner


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def test_the_file_keeps_each_partners_answers_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "partner-state.sqlite"
    told = ids(1200)  # more than one IN (...) lookup
    criteo, google = SqliteAnswers(path, "criteo"), SqliteAnswers(path, "google")
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    criteo.remember(told[:1000])
    google.remember(told[1000:])
    criteo.close()
    google.close()
    restarted = SqliteAnswers(path, "criteo")
    try:
        found = restarted.answered(told)
    finally:
        restarted.close()
    assert set(found) == set(told[:1000])
    assert all(before <= at <= datetime.now(UTC) for at in found.values())


def test_memory_keeps_the_most_recent_answers_only() -> None:
    answers = RecentAnswers(limit=3)
    first, second = ids(3), ids(2)
    answers.remember(first)
    answers.remember(first[:1])  # answered again: now the most recent
    answers.remember(second)
    assert set(answers.answered([*first, *second])) == {first[0], *second}


def test_an_instruction_answered_before_is_not_posted_again(tmp_path: Path) -> None:
    client = Client()
    answers = SqliteAnswers(tmp_path / "partner-state.sqlite", "criteo")
    sink = PartnerSink(
        partner(KnownSubjects.ALL),
        client=client,  # type: ignore[arg-type]
        breaker=CircuitBreaker(failure_threshold=2, reset_seconds=60),
        identities=None,
        answers=answers,
    )
    told, new = instruction("acct-1"), instruction("acct-2")
    [first] = sink.apply_batch([told])
    assert first.outcome is Outcome.APPLIED
    sink.remember([told.instruction_id])  # the runner, once its receipt is acknowledged
    again = sink.apply_batch([told, new])
    assert [key for _, key in client.sent] == [told.instruction_id, new.instruction_id]
    assert [r.outcome for r in again] == [Outcome.APPLIED, Outcome.APPLIED]
    assert again[0].applied_at == sink.answered([told.instruction_id])[told.instruction_id]
    assert sink.apply(told).outcome is Outcome.APPLIED
    assert len(client.sent) == 2
    answers.close()
