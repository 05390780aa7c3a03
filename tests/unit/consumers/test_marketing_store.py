"""Marketing store semantics on a real SQLite file: suppression, idempotency, event-time
order (withdrawal wins), restriction, erasure hashing, bootstrap."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher, AddressKind
from consumers.marketing.scope import cells
from consumers.marketing.store import Contact, Decision, MarketingStore
from consumers.protocol import RetriableSinkError
from schemas.events import ConsentEntry, ConsentStateRecorded, InstructionIssued, Subject
from schemas.taxonomy import (
    Action,
    Channel,
    Choice,
    Outcome,
    Purpose,
    Regime,
    SinkFamily,
    SubjectKind,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = b"unit-test-key-0123456789"
EMAIL = (Channel.EMAIL, Purpose.MARKETING_EMAIL)


def instruction(
    action: Action,
    *,
    subject: str = "s-1",
    at: datetime = T0,
    purposes: tuple[Purpose, ...] = (Purpose.MARKETING_EMAIL,),
    channels: tuple[Channel, ...] = (),
) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=action,
        purposes=purposes,
        channels=channels,
        right=None,
        regime=Regime.GDPR,
        occurred_at=at,
        issued_at=at,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MarketingStore]:
    opened = MarketingStore(Database(f"sqlite://{tmp_path}/m.db"), AddressHasher(KEY))
    yield opened
    opened.close()


def may(
    store: MarketingStore, subject: str = "s-1", cell: tuple[Channel, Purpose] = EMAIL
) -> Decision:
    return store.may_contact(subject, *cell)


def test_unknown_subject_may_be_contacted(store: MarketingStore) -> None:
    assert may(store) == Decision(True, "not suppressed")


def test_suppress_blocks_exactly_the_channel_and_purpose(store: MarketingStore) -> None:
    assert store.apply(instruction(Action.SUPPRESS)).outcome is Outcome.APPLIED
    assert may(store) == Decision(False, "suppressed")
    assert may(store, cell=(Channel.SMS, Purpose.MARKETING_SMS)).allowed
    assert may(store, subject="s-2").allowed


def test_a_redelivered_instruction_changes_nothing_and_answers_the_same(
    store: MarketingStore,
) -> None:
    ins = instruction(Action.SUPPRESS)
    first = store.apply(ins)
    later_grant = instruction(Action.ALLOW, at=T0 + timedelta(hours=1))
    store.apply(later_grant)
    again = store.apply(ins)
    assert again == first
    assert first.applied_at is not None
    assert may(store).allowed  # the redelivery did not re-suppress
    with store.database.reading() as tx:
        assert tx.rows("SELECT COUNT(*) FROM applied_instructions") == [(2,)]


def test_grant_lifts_only_a_strictly_older_suppression(store: MarketingStore) -> None:
    store.apply(instruction(Action.SUPPRESS, at=T0))
    same_time = store.apply(instruction(Action.ALLOW, at=T0))
    older = store.apply(instruction(Action.ALLOW, at=T0 - timedelta(seconds=1)))
    assert (same_time.outcome, older.outcome) == (Outcome.SKIPPED, Outcome.SKIPPED)
    assert not may(store).allowed
    assert store.apply(instruction(Action.ALLOW, at=T0 + timedelta(milliseconds=1))).outcome is (
        Outcome.APPLIED
    )
    assert may(store) == Decision(True, "granted")


def test_a_late_older_withdrawal_does_not_undo_a_newer_grant(store: MarketingStore) -> None:
    store.apply(instruction(Action.ALLOW, at=T0))
    late = store.apply(instruction(Action.SUPPRESS, at=T0 - timedelta(minutes=1)))
    assert late.outcome is Outcome.SKIPPED
    assert may(store).allowed
    assert store.apply(instruction(Action.SUPPRESS, at=T0)).outcome is Outcome.APPLIED
    assert not may(store).allowed


def test_a_purpose_without_its_own_channel_covers_every_named_channel(
    store: MarketingStore,
) -> None:
    store.apply(
        instruction(
            Action.SUPPRESS,
            purposes=(Purpose.PERSONALISED_MARKETING,),
            channels=(Channel.SMS, Channel.PUSH),
        )
    )
    assert not may(store, cell=(Channel.SMS, Purpose.PERSONALISED_MARKETING)).allowed
    assert not may(store, cell=(Channel.PUSH, Purpose.PERSONALISED_MARKETING)).allowed
    assert may(store, cell=(Channel.EMAIL, Purpose.PERSONALISED_MARKETING)).allowed


def test_scope_of_purposes_and_channels() -> None:
    assert cells([Purpose.MARKETING_EMAIL], []) == {EMAIL}
    assert cells([Purpose.MARKETING_EMAIL], [Channel.SMS]) == frozenset()
    assert cells([Purpose.PERSONALISED_MARKETING], []) == {
        (c, Purpose.PERSONALISED_MARKETING) for c in Channel
    }
    everything = cells([], [Channel.TELEPHONE])
    assert (Channel.TELEPHONE, Purpose.MARKETING_TELEPHONE) in everything
    assert all(channel is Channel.TELEPHONE for channel, _ in everything)


def test_an_instruction_with_nothing_in_scope_is_skipped(store: MarketingStore) -> None:
    result = store.apply(
        instruction(Action.SUPPRESS, purposes=(Purpose.MARKETING_EMAIL,), channels=(Channel.SMS,))
    )
    assert result.outcome is Outcome.SKIPPED
    assert result.reason


def test_restriction_blocks_every_channel_until_a_newer_lift(store: MarketingStore) -> None:
    store.apply(instruction(Action.RESTRICT, at=T0))
    assert may(store) == Decision(False, "restricted")
    assert may(store, cell=(Channel.PUSH, Purpose.MARKETING_PUSH)) == Decision(False, "restricted")
    assert store.apply(instruction(Action.LIFT_RESTRICTION, at=T0)).outcome is Outcome.SKIPPED
    store.apply(instruction(Action.LIFT_RESTRICTION, at=T0 + timedelta(seconds=1)))
    assert may(store).allowed


def test_erasure_keeps_only_keyed_hashes_that_keep_suppressing(store: MarketingStore) -> None:
    store.upsert_contact(Contact("s-1", "Ann@Example.com", "+33 6 12 34 56 78", "1 Rue X"))
    store.apply(instruction(Action.SUPPRESS))
    store.apply(instruction(Action.RESTRICT))
    assert store.apply(instruction(Action.ERASE)).outcome is Outcome.APPLIED

    assert store.contact("s-1") is None
    with store.database.reading() as tx:
        for table in ("contacts", "suppressions", "restrictions"):
            assert tx.rows(f"SELECT COUNT(*) FROM {table}") == [(0,)]
        kept = tx.rows("SELECT address_hash, kind FROM erased_addresses ORDER BY kind")
        dump = repr(tx.rows("SELECT * FROM erased_subjects")) + repr(kept)
    hasher = AddressHasher(KEY)
    assert kept == sorted(
        [
            (hasher(AddressKind.EMAIL, "ann@example.com"), "email"),
            (hasher(AddressKind.PHONE, "+33612345678"), "phone"),
            (hasher(AddressKind.POSTAL, "1 rue x"), "postal"),
        ],
        key=lambda r: r[1],
    )
    for plain in ("Ann@Example.com", "ann@example.com", "s-1", "+33", "Rue"):
        assert plain not in dump
    assert may(store) == Decision(False, "erased")

    # The same address re-imported later, typed differently, for a new account.
    store.upsert_contact(Contact("s-9", " ANN@example.COM", "+33 (6) 12-34-56-78"))
    assert may(store, subject="s-9") == Decision(False, "address erased")
    assert not may(store, subject="s-9", cell=(Channel.SMS, Purpose.MARKETING_SMS)).allowed
    assert may(store, subject="s-9", cell=(Channel.PUSH, Purpose.MARKETING_PUSH)).allowed
    assert store.address_suppressed(AddressKind.EMAIL, "ann@example.com")


def test_after_erasure_suppress_is_applied_and_grants_are_skipped(store: MarketingStore) -> None:
    store.apply(instruction(Action.ERASE))
    assert store.apply(instruction(Action.SUPPRESS)).outcome is Outcome.APPLIED
    later = instruction(Action.ALLOW, at=T0 + timedelta(days=1))
    assert store.apply(later).outcome is Outcome.SKIPPED
    with store.database.reading() as tx:
        assert tx.rows("SELECT COUNT(*) FROM suppressions") == [(0,)]
    assert not may(store).allowed


def test_the_hash_depends_on_the_key() -> None:
    one = AddressHasher(KEY)(AddressKind.EMAIL, "a@b.c")
    other = AddressHasher(b"another-key-0123456")(AddressKind.EMAIL, "a@b.c")
    assert one != other
    assert len(one) == 64
    with pytest.raises(ValueError, match="16 bytes"):
        AddressHasher(b"short")


def state(
    subject: str,
    *entries: tuple[Purpose, Choice, datetime],
    restricted: bool = False,
    erased: bool = False,
) -> ConsentStateRecorded:
    return ConsentStateRecorded(
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        entries=tuple(
            ConsentEntry(
                purpose=p, regime=Regime.GDPR, choice=c, occurred_at=t, event_id=str(uuid.uuid4())
            )
            for p, c, t in entries
        ),
        restricted=restricted,
        erased=erased,
        updated_at=T0 + timedelta(days=1),
    )


def test_bootstrap_seeds_withdrawals_restrictions_and_erasures(store: MarketingStore) -> None:
    assert store.needs_bootstrap()
    store.upsert_contact(Contact("s-3", "c@example.com"))
    store.bootstrap(
        state(
            "s-1",
            (Purpose.MARKETING_EMAIL, Choice.WITHDRAWN, T0),
            (Purpose.MARKETING_SMS, Choice.GRANTED, T0),
            (Purpose.ACCOUNT_MANAGEMENT, Choice.WITHDRAWN, T0),
        )
    )
    store.bootstrap(state("s-2", restricted=True))
    store.bootstrap(state("s-3", erased=True))
    assert store.needs_bootstrap()  # until told it finished
    store.mark_bootstrapped()
    assert not store.needs_bootstrap()

    assert may(store) == Decision(False, "suppressed")
    assert may(store, cell=(Channel.SMS, Purpose.MARKETING_SMS)) == Decision(True, "granted")
    assert may(store, subject="s-2") == Decision(False, "restricted")
    assert may(store, subject="s-3") == Decision(False, "erased")
    assert store.address_suppressed(AddressKind.EMAIL, "c@example.com")
    # An instruction older than the seeded state does not undo it.
    store.apply(instruction(Action.ALLOW, at=T0 - timedelta(seconds=1)))
    assert not may(store).allowed


def test_a_locked_database_is_a_retriable_failure(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/locked.db"
    store = MarketingStore(Database(url, busy_timeout=0.05), AddressHasher(KEY))
    blocker = sqlite3.connect(f"{tmp_path}/locked.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RetriableSinkError):
            store.apply(instruction(Action.SUPPRESS))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.apply(instruction(Action.SUPPRESS)).outcome is Outcome.APPLIED
    store.close()


def test_a_batch_applies_in_order_in_one_transaction_and_dedups(store: MarketingStore) -> None:
    suppress = instruction(Action.SUPPRESS, at=T0)
    grant = instruction(Action.ALLOW, at=T0 + timedelta(seconds=1))
    results = store.apply_batch([suppress, grant, suppress])
    assert [r.outcome for r in results] == [Outcome.APPLIED, Outcome.APPLIED, Outcome.APPLIED]
    assert results[2] == results[0]  # the duplicate got the first answer
    assert may(store) == Decision(True, "granted")
    with store.database.reading() as tx:
        assert tx.rows("SELECT COUNT(*) FROM applied_instructions") == [(2,)]


def test_a_batch_that_cannot_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    store = MarketingStore(
        Database(f"sqlite://{tmp_path}/b.db", busy_timeout=0.05), AddressHasher(KEY)
    )
    blocker = sqlite3.connect(f"{tmp_path}/b.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RetriableSinkError):
            store.apply_batch([instruction(Action.SUPPRESS), instruction(Action.RESTRICT)])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert may(store).allowed
    with store.database.reading() as tx:
        assert tx.rows("SELECT COUNT(*) FROM applied_instructions") == [(0,)]
    store.close()


def test_answered_instructions_are_remembered_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/answered.db"
    ids = [str(uuid.uuid4()) for _ in range(1200)]  # more than one IN (...) lookup
    store = MarketingStore(Database(url), AddressHasher(KEY))
    assert store.answered(ids) == {}
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    store.remember(ids[:1000])
    store.remember(ids[:1])  # again: the latest time is kept
    store.close()
    reopened = MarketingStore(Database(url), AddressHasher(KEY))
    try:
        found = reopened.answered([*ids, ids[0]])
    finally:
        reopened.close()
    assert set(found) == set(ids[:1000])
    assert all(before <= at <= datetime.now(UTC) for at in found.values())
