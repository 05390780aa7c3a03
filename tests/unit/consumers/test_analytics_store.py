"""The analytics store against a real SQLite file: each action, idempotence, event-time order."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.analytics.store import (
    AnalyticsRecord,
    AnalyticsStore,
    ErasureMode,
    StoreUnavailableError,
)
from schemas.events import ConsentEntry, ConsentStateRecorded, InstructionIssued, Subject
from schemas.taxonomy import Action, Choice, Purpose, Regime, SinkFamily, SubjectKind

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = Subject(id="acct-alice", kind=SubjectKind.ACCOUNT)
BOB = Subject(id="acct-bob", kind=SubjectKind.ACCOUNT)
DEVICE = Subject(id="dev-123", kind=SubjectKind.DEVICE)
STATS = Purpose.RESEARCH_AND_STATISTICS
COOKIES = Purpose.COOKIES_STATISTICS


def instruction(
    subject: Subject,
    action: Action,
    purposes: tuple[Purpose, ...] = (STATS,),
    at: datetime = T0,
) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="RightsRequested",
        subject=subject,
        sink_family=SinkFamily.ANALYTICS,
        destination="analytics_store",
        action=action,
        purposes=purposes,
        right=None,
        regime=Regime.GDPR,
        occurred_at=at,
        issued_at=at,
    )


def records(subject: Subject, count: int, purpose: Purpose = STATS) -> list[AnalyticsRecord]:
    return [
        AnalyticsRecord(
            event_id=f"{subject.id}-{purpose.value}-{n}",
            subject=subject,
            purpose=purpose,
            name="page_view",
            occurred_at=T0 - timedelta(days=1, minutes=n),
            payload=f'{{"page": "/p/{n}"}}',
        )
        for n in range(count)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AnalyticsStore]:
    s = AnalyticsStore(tmp_path / "analytics.sqlite", busy_timeout_seconds=0.2)
    s.ensure_schema()
    s.add_events(records(ALICE, 3) + records(ALICE, 2, COOKIES) + records(BOB, 4))
    s.add_events(records(DEVICE, 2, COOKIES))
    yield s
    s.close()


def rows(store: AnalyticsStore, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(store.path) as conn:
        return conn.execute(sql).fetchall()


def processable(store: AnalyticsStore, subject: Subject) -> int:
    [(count,)] = rows(
        store, f"SELECT count(*) FROM processable_events WHERE subject_id = '{subject.id}'"
    )
    return int(count)  # type: ignore[call-overload]


def test_fresh_store_allows_everyone(store: AnalyticsStore) -> None:
    assert store.may_process(ALICE.id)
    assert store.may_process("never-seen")
    assert processable(store, ALICE) == 5


def test_suppress_puts_the_purpose_on_the_opt_out_list(store: AnalyticsStore) -> None:
    store.apply(instruction(ALICE, Action.SUPPRESS, (STATS,)))
    assert not store.may_process(ALICE.id)
    assert not store.may_process(ALICE.id, STATS)
    assert store.may_process(ALICE.id, COOKIES)
    assert processable(store, ALICE) == 2, "only the cookie-statistics records stay processable"
    assert processable(store, BOB) == 4


def test_suppress_without_purposes_covers_every_analytics_purpose(store: AnalyticsStore) -> None:
    store.apply(instruction(DEVICE, Action.SUPPRESS, ()))
    assert not store.may_process(DEVICE.id, STATS)
    assert not store.may_process(DEVICE.id, COOKIES)
    assert processable(store, DEVICE) == 0
    assert rows(store, "SELECT DISTINCT subject_kind FROM analytics_opt_outs") == [("DEVICE",)]


def test_allow_takes_the_purpose_off_the_list(store: AnalyticsStore) -> None:
    store.apply(instruction(ALICE, Action.SUPPRESS, (), at=T0))
    store.apply(instruction(ALICE, Action.ALLOW, (), at=T0 + timedelta(seconds=1)))
    assert store.may_process(ALICE.id)
    assert processable(store, ALICE) == 5


def test_an_older_choice_never_overwrites_a_newer_one(store: AnalyticsStore) -> None:
    store.apply(instruction(ALICE, Action.SUPPRESS, at=T0 + timedelta(minutes=5)))
    store.apply(instruction(ALICE, Action.ALLOW, at=T0))
    assert not store.may_process(ALICE.id, STATS)
    store.apply(instruction(ALICE, Action.RESTRICT, at=T0 + timedelta(minutes=5)))
    store.apply(instruction(ALICE, Action.LIFT_RESTRICTION, at=T0))
    assert not store.may_process(ALICE.id, COOKIES)


def test_restrict_isolates_every_record_until_lifted(store: AnalyticsStore) -> None:
    store.apply(instruction(BOB, Action.RESTRICT, ()))
    assert not store.may_process(BOB.id)
    assert not store.may_process(BOB.id, COOKIES)
    assert processable(store, BOB) == 0
    assert rows(store, f"SELECT count(*) FROM analytics_events WHERE subject_id='{BOB.id}'") == [
        (4,)
    ], "restriction keeps the records, it only isolates them"
    store.apply(instruction(BOB, Action.LIFT_RESTRICTION, (), at=T0 + timedelta(seconds=1)))
    assert store.may_process(BOB.id)
    assert processable(store, BOB) == 4


def test_erase_deletes_the_persons_records_only(store: AnalyticsStore) -> None:
    store.apply(instruction(ALICE, Action.ERASE, ()))
    assert rows(store, f"SELECT count(*) FROM analytics_events WHERE subject_id='{ALICE.id}'") == [
        (0,)
    ]
    assert rows(store, "SELECT count(*) FROM analytics_events") == [(6,)]


def test_erase_in_anonymise_mode_strips_subject_and_payload(tmp_path: Path) -> None:
    store = AnalyticsStore(tmp_path / "a.sqlite", erasure_mode=ErasureMode.ANONYMISE)
    store.ensure_schema()
    store.add_events(records(ALICE, 3) + records(BOB, 1))
    store.apply(instruction(ALICE, Action.ERASE, ()))
    assert rows(
        store, "SELECT count(*) FROM analytics_events WHERE subject_id IS NULL AND anonymised = 1"
    ) == [(3,)]
    assert rows(
        store, "SELECT count(*) FROM analytics_events WHERE anonymised = 1 AND payload IS NOT NULL"
    ) == [(0,)]
    assert rows(store, "SELECT count(*) FROM processable_events") == [(4,)]
    store.close()


def test_same_instruction_twice_changes_nothing_and_keeps_first_time(
    store: AnalyticsStore,
) -> None:
    suppress = instruction(ALICE, Action.SUPPRESS)
    first = store.apply(suppress)
    store.apply(instruction(ALICE, Action.ALLOW, at=T0 + timedelta(seconds=1)))
    again = store.apply(suppress)
    assert again == first
    assert store.may_process(ALICE.id), "a redelivered SUPPRESS must not undo the later ALLOW"
    assert rows(store, "SELECT count(*) FROM applied_instructions") == [(2,)]


def test_applied_instructions_hold_no_personal_identifier(store: AnalyticsStore) -> None:
    store.apply(instruction(ALICE, Action.SUPPRESS))
    [row] = rows(store, "SELECT * FROM applied_instructions")
    assert ALICE.id not in repr(row)


def test_seed_from_consent_state(store: AnalyticsStore) -> None:
    assert not store.is_seeded()
    state = ConsentStateRecorded(
        subject=BOB,
        entries=(
            ConsentEntry(
                purpose=COOKIES,
                regime=Regime.GDPR,
                choice=Choice.WITHDRAWN,
                occurred_at=T0,
                event_id="e1",
            ),
            ConsentEntry(
                purpose=STATS,
                regime=Regime.GDPR,
                choice=Choice.GRANTED,
                occurred_at=T0,
                event_id="e2",
            ),
            ConsentEntry(
                purpose=Purpose.MARKETING_EMAIL,
                regime=Regime.GDPR,
                choice=Choice.WITHDRAWN,
                occurred_at=T0,
                event_id="e3",
            ),
        ),
        restricted=True,
        updated_at=T0,
    )
    store.seed(state)
    store.mark_seeded()
    assert store.is_seeded()
    assert not store.may_process(BOB.id)
    assert rows(store, "SELECT purpose, opted_out FROM analytics_opt_outs ORDER BY purpose") == [
        ("COOKIES_STATISTICS", 1),
        ("RESEARCH_AND_STATISTICS", 0),
    ]


def test_locked_database_is_unavailable_then_recovers(store: AnalyticsStore) -> None:
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    suppress = instruction(ALICE, Action.SUPPRESS)
    with pytest.raises(StoreUnavailableError, match="locked"):
        store.apply(suppress)
    blocker.execute("ROLLBACK")
    blocker.close()
    store.apply(suppress)
    assert not store.may_process(ALICE.id, STATS)


def test_reads_never_create_a_missing_database(tmp_path: Path) -> None:
    store = AnalyticsStore(tmp_path / "absent.sqlite")
    with pytest.raises(StoreUnavailableError):
        store.may_process(ALICE.id)
    assert not (tmp_path / "absent.sqlite").exists()


def test_answered_instructions_are_remembered_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "answered.sqlite"
    ids = [str(uuid.uuid4()) for _ in range(1200)]  # more than one IN (...) lookup
    store = AnalyticsStore(path)
    store.ensure_schema()
    assert store.answered(ids) == {}
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    store.remember(ids[:1000])
    store.remember(ids[:1])
    store.close()
    reopened = AnalyticsStore(path)
    reopened.ensure_schema()
    try:
        found = reopened.answered(ids)
    finally:
        reopened.close()
    assert set(found) == set(ids[:1000])
    assert all(before <= at <= datetime.now(UTC) for at in found.values())
