"""Seeding in batches gives the stores exactly what seeding one state at a time gave,
and the bulk decoder refuses exactly what the full decode refuses (no network)."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers import state_records
from consumers.analytics.store import AnalyticsStore
from consumers.decoding import decode_as
from consumers.marketing.database import (
    BULK_CACHE_KIB,
    BULK_CHECKPOINT_PAGES,
    PAGE_BYTES,
    Database,
)
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.store import _SUPPRESSIONS, Contact, MarketingStore, _seed_ms, to_ms
from consumers.state_records import (
    decode_state,
    decode_state_avro,
    from_epoch_ms,
    state_avro,
    state_from_avro,
    typed_state,
)
from schemas.codec import EventDecoder, encode_single_object, encode_single_object_dict
from schemas.converters import to_dict
from schemas.errors import InvalidEventError
from schemas.events import (
    ConsentChanged,
    ConsentEntry,
    ConsentHistory,
    ConsentStateRecorded,
    ErasureRecorded,
    PastDecision,
    RestrictionToggled,
    Subject,
)
from schemas.examples import example
from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = b"unit-test-key-0123456789"
PURPOSES = (
    Purpose.MARKETING_EMAIL,
    Purpose.MARKETING_SMS,
    Purpose.PERSONALISED_MARKETING,
    Purpose.RESEARCH_AND_STATISTICS,
    Purpose.COOKIES_STATISTICS,
    Purpose.ACCOUNT_MANAGEMENT,
)

PARTNER_ONLY = (
    (Purpose.MARKETING_EMAIL, Recipient.CRITEO),
    (Purpose.RESEARCH_AND_STATISTICS, Recipient.GOOGLE_ANALYTICS),
)


def state(index: int, *, at: datetime = T0) -> ConsentStateRecorded:
    """A varied state: choices, kinds, restrictions and erasures all differ by index."""
    return ConsentStateRecorded(
        subject=Subject(
            id=f"s-{index % 40}", kind=SubjectKind.DEVICE if index % 7 == 0 else SubjectKind.ACCOUNT
        ),
        entries=tuple(
            ConsentEntry(
                purpose=p,
                regime=Regime.GDPR,
                choice=Choice.WITHDRAWN if (index + n) % 3 == 0 else Choice.GRANTED,
                occurred_at=at + timedelta(seconds=index - n),
                event_id=str(uuid.UUID(int=index * 100 + n)),
            )
            for n, p in enumerate(PURPOSES[: 1 + index % len(PURPOSES)])
        )
        # Every third subject also withdrew a purpose both stores hear from one partner
        # only: routed to that partner alone, so neither store takes it.
        + tuple(
            ConsentEntry(
                purpose=p,
                regime=Regime.GDPR,
                recipient=r,
                choice=Choice.WITHDRAWN,
                occurred_at=at + timedelta(seconds=index + 1),
                event_id=str(uuid.UUID(int=index * 100 + 90 + n)),
            )
            for n, (p, r) in enumerate(PARTNER_ONLY)
            if index % 3 == 1
        ),
        restricted=index % 5 == 0,
        erased=index % 11 == 10,
        updated_at=at + timedelta(seconds=index),
    )


# The newest state of each of 40 subjects, as one seed batch holds them.
STATES = list({s.subject.id: s for s in (state(i) for i in range(120))}.values())


def dump(path: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}")) for t in tables}


@pytest.fixture
def marketing(tmp_path: Path) -> Iterator[tuple[MarketingStore, MarketingStore]]:
    one = MarketingStore(Database(f"sqlite:///{tmp_path / 'one.db'}"), AddressHasher(KEY))
    many = MarketingStore(Database(f"sqlite:///{tmp_path / 'many.db'}"), AddressHasher(KEY))
    yield one, many
    one.close()
    many.close()


MARKETING_TABLES = (
    "suppressions",
    "restrictions",
    "contacts",
    "erased_subjects",
    "erased_addresses",
)


def test_marketing_batch_seed_equals_one_by_one(
    tmp_path: Path, marketing: tuple[MarketingStore, MarketingStore]
) -> None:
    one, many = marketing
    for store in marketing:
        store.upsert_contact(Contact("s-10", "ten@example.com", "+4900010"))
    for s in STATES:
        one.bootstrap(s)
    many.bootstrap_batch(STATES[:17])
    many.bootstrap_batch(STATES[17:])
    assert dump(tmp_path / "many.db", MARKETING_TABLES) == dump(
        tmp_path / "one.db", MARKETING_TABLES
    )
    assert dump(tmp_path / "many.db", ("suppressions",))["suppressions"]  # not trivially equal


def test_marketing_seed_gives_no_cells_to_a_subject_erased_earlier(
    tmp_path: Path, marketing: tuple[MarketingStore, MarketingStore]
) -> None:
    _, store = marketing
    erased = state(10)  # erased
    later = ConsentStateRecorded(
        subject=erased.subject,
        entries=state(3).entries,
        restricted=True,
        updated_at=erased.updated_at + timedelta(seconds=1),
    )
    store.bootstrap_batch([erased])
    store.bootstrap_batch([later])
    tables = dump(tmp_path / "many.db", ("suppressions", "restrictions", "erased_subjects"))
    assert tables["suppressions"] == []
    assert tables["restrictions"] == []
    assert len(tables["erased_subjects"]) == 1


def test_marketing_seed_after_an_interrupted_one_honours_its_erasures(
    tmp_path: Path, marketing: tuple[MarketingStore, MarketingStore]
) -> None:
    _, store = marketing
    erased = state(10)
    store.bootstrap_batch([erased])
    store.close()
    again = MarketingStore(Database(f"sqlite:///{tmp_path / 'many.db'}"), AddressHasher(KEY))
    again.bootstrap_batch(
        [ConsentStateRecorded(subject=erased.subject, entries=state(3).entries, updated_at=T0)]
    )
    assert dump(tmp_path / "many.db", ("suppressions",))["suppressions"] == []
    again.close()


def test_analytics_batch_seed_equals_one_by_one(tmp_path: Path) -> None:
    one, many = AnalyticsStore(tmp_path / "one.db"), AnalyticsStore(tmp_path / "many.db")
    for store in (one, many):
        store.ensure_schema()
    for s in STATES:
        one.seed(s)
    many.seed_many(STATES[:13])
    many.seed_many(STATES[13:])
    tables = ("analytics_opt_outs", "analytics_restrictions")
    assert dump(tmp_path / "many.db", tables) == dump(tmp_path / "one.db", tables)
    assert dump(tmp_path / "many.db", tables)["analytics_opt_outs"]
    one.close()
    many.close()


def test_bulk_decode_equals_the_full_decode() -> None:
    decoder = EventDecoder(None)
    for s in (state(i) for i in range(60)):
        data = encode_single_object(s)
        assert decode_state(decoder, data) == decode_as(decoder, data, ConsentStateRecorded) == s


def test_avro_decode_hands_over_what_the_full_decode_reads() -> None:
    decoder = EventDecoder(None)
    for s in (state(i) for i in range(60)):
        data = encode_single_object(s)
        assert typed_state(decode_state_avro(decoder, data)) == s
        read = dict(decode_state_avro(decoder, data))
        # The state topic's schema has the stream's history too (None here): not read.
        assert read.pop("history", None) is None
        assert read == state_avro(s)


FULL = "full"
BULK = "bulk"
AVRO = "avro"
DECODERS: dict[str, Any] = {
    FULL: lambda d, b: decode_as(d, b, ConsentStateRecorded),
    BULK: decode_state,
    AVRO: decode_state_avro,
}


def refusal(decoder: EventDecoder, data: bytes, how: str) -> str:
    with pytest.raises(InvalidEventError) as caught:
        DECODERS[how](decoder, data)
    return f"{type(caught.value).__name__}: {caught.value}"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["entries"][0].update(purpose="UNKNOWN"),
        lambda d: d["entries"][0].update(choice="UNKNOWN"),
        lambda d: d["entries"][0].update(regime="UNKNOWN"),
        lambda d: d["subject"].update(kind="UNKNOWN"),
        lambda d: d["subject"].update(id="a\x00b"),
        lambda d: d["subject"].update(id=""),
    ],
)
def test_bulk_decode_refuses_what_the_full_decode_refuses(spoil: Any) -> None:
    avro = to_dict(state(2))
    spoil(avro)
    data = encode_single_object_dict(ConsentStateRecorded, avro)
    decoder = EventDecoder(None)
    full = refusal(decoder, data, FULL)
    assert refusal(decoder, data, BULK) == refusal(decoder, data, AVRO) == full


def test_bulk_decode_takes_a_record_with_history_the_fast_way_without_reading_history() -> None:
    # The stream writes every state with its decision history; sinks do not use it, and
    # the fast path must still take such records (not fall back to from_dict for each).
    history = ConsentHistory(
        decisions=(
            PastDecision(
                purpose=Purpose.MARKETING_EMAIL,
                regime=Regime.GDPR,
                recipient=Recipient.BUSINESS_PARTNERS,
                choice=Choice.WITHDRAWN,
                occurred_at=T0,
                event_id=str(uuid.UUID(int=7)),
                expires_at=T0 + timedelta(days=1),
            ),
        ),
        restrictions=(RestrictionToggled(restricted=True, occurred_at=T0, event_id="r"),),
        erasure=ErasureRecorded(occurred_at=T0, event_id="e"),
    )
    full = dataclasses.replace(state(3), history=history)
    data = encode_single_object(full)
    decoder = EventDecoder(None)
    assert decode_as(decoder, data, ConsentStateRecorded) == full
    assert decode_state(decoder, data) == dataclasses.replace(full, history=None)
    # The Avro-dict path too: the record as decoded, not the full decode's (slow) answer,
    # and its history, the record's last field, not even read.
    _, record = decoder.decode_dict(data, epoch_ms=True)
    assert state_records._plain_avro(record)
    _, unread = decoder.decode_dict(data, epoch_ms=True, unread=frozenset({"history"}))
    assert "history" not in unread
    assert decode_state_avro(decoder, data) == unread
    assert {k: v for k, v in record.items() if k != "history"} == unread


@pytest.mark.parametrize("how", [BULK, AVRO])
def test_bulk_decode_refuses_another_event_type(how: str) -> None:
    data = encode_single_object(example(ConsentChanged))
    decoder = EventDecoder(None)
    assert refusal(decoder, data, how) == refusal(decoder, data, FULL)


def test_state_from_avro_checks_types_from_dict_would() -> None:
    avro = to_dict(state(2))
    avro["updated_at"] = int(T0.timestamp() * 1000)  # epoch ms: from_dict converts it
    assert state_from_avro(avro).updated_at == T0


@pytest.mark.parametrize("ms", [-62135596800001, 253402300800000, 2**62])
def test_avro_decode_refuses_a_time_beyond_datetime_as_the_full_decode(ms: int) -> None:
    avro = to_dict(state(2))
    avro["entries"][1]["occurred_at"] = ms  # a long fastavro cannot make a datetime of
    data = encode_single_object_dict(ConsentStateRecorded, avro)
    decoder = EventDecoder(None)
    full = refusal(decoder, data, FULL)
    assert refusal(decoder, data, AVRO) == full
    assert "corrupt" in full


@pytest.mark.parametrize("ms", [-62135596800000, -1, 0, 1, 1735689600123, 253402300799999])
def test_avro_decode_keeps_every_time_the_full_decode_reads(ms: int) -> None:
    avro = to_dict(state(2))
    avro["updated_at"] = avro["entries"][0]["occurred_at"] = ms
    data = encode_single_object_dict(ConsentStateRecorded, avro)
    decoder = EventDecoder(None)
    full = decode_as(decoder, data, ConsentStateRecorded)
    assert full.updated_at == from_epoch_ms(ms)
    assert typed_state(decode_state_avro(decoder, data)) == full


def test_seeded_times_are_those_instructions_are_stored_with() -> None:
    """The store keeps times as :func:`to_ms` of the datetime (a float round trip that
    truncates some to the millisecond before); the seed, from wire milliseconds, must
    land on the same value, or an equal-time withdrawal could lose to a grant."""
    rng = random.Random(7)
    for ms in [rng.randrange(-62135596800000, 253402300799999) for _ in range(20_000)]:
        assert _seed_ms(ms) == to_ms(from_epoch_ms(ms))


def test_marketing_seed_syncs_at_its_end_not_every_commit(
    marketing: tuple[MarketingStore, MarketingStore],
) -> None:
    _, store = marketing

    def pragmas() -> tuple[int, int, int]:
        with store.database.reading() as tx:
            return tuple(  # type: ignore[return-value]
                int(tx.rows(f"PRAGMA {name}")[0][0])
                for name in ("synchronous", "wal_autocheckpoint", "cache_size")
            )

    normal = pragmas()
    assert normal == (2, 1000, -2000)  # FULL, SQLite's defaults
    store.bootstrap_batch(STATES)
    assert pragmas() == (1, BULK_CHECKPOINT_PAGES, -BULK_CACHE_KIB)  # NORMAL while seeding
    store.mark_bootstrapped()
    assert pragmas() == normal


def test_a_new_sqlite_store_keeps_its_cells_in_the_key_order_tree(
    marketing: tuple[MarketingStore, MarketingStore],
) -> None:
    _, store = marketing
    with store.database.reading() as tx:
        ddl = tx.rows("SELECT sql FROM sqlite_master WHERE name = 'suppressions'")[0][0]
        page = tx.rows("PRAGMA page_size")[0][0]
    assert ddl.endswith("WITHOUT ROWID")
    assert page == PAGE_BYTES


def test_a_store_created_with_a_rowid_table_seeds_the_same(
    tmp_path: Path, marketing: tuple[MarketingStore, MarketingStore]
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(_SUPPRESSIONS)  # the layout of stores created before
    old = MarketingStore(Database(f"sqlite:///{path}"), AddressHasher(KEY))
    _, new = marketing
    for store in (old, new):
        store.bootstrap_batch(STATES)
        store.mark_bootstrapped()
    old.close()
    with sqlite3.connect(path) as conn:
        (ddl,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'suppressions'"
        ).fetchone()
        (page,) = conn.execute("PRAGMA page_size").fetchone()
    assert "WITHOUT ROWID" not in ddl
    assert page == 4096  # its pages as created
    tables = ("suppressions", "restrictions", "erased_subjects")
    assert dump(path, tables) == dump(tmp_path / "many.db", tables)


def wire_states() -> list[Any]:
    """STATES as the seed reads them off the topic (checked Avro dicts, times in ms)."""
    decoder = EventDecoder(None)
    return [decode_state_avro(decoder, encode_single_object(s)) for s in STATES]


def test_marketing_seed_from_the_wire_equals_the_typed_seed(
    tmp_path: Path, marketing: tuple[MarketingStore, MarketingStore]
) -> None:
    typed, wire = marketing
    typed.bootstrap_batch(STATES)
    wire.seed_avro_batch(wire_states())
    tables = ("suppressions", "restrictions", "erased_subjects")
    assert dump(tmp_path / "many.db", tables) == dump(tmp_path / "one.db", tables)


def test_analytics_seed_from_the_wire_equals_the_typed_seed(tmp_path: Path) -> None:
    typed, wire = AnalyticsStore(tmp_path / "one.db"), AnalyticsStore(tmp_path / "many.db")
    for store in (typed, wire):
        store.ensure_schema()
    typed.seed_many(STATES)
    wire.seed_avro_many(wire_states())
    tables = ("analytics_opt_outs", "analytics_restrictions")
    assert dump(tmp_path / "many.db", tables) == dump(tmp_path / "one.db", tables)
    typed.close()
    wire.close()


def test_a_choice_limited_to_a_partner_seeds_neither_store(tmp_path: Path) -> None:
    """What the stream routes to a partner only: a store that saw every instruction never
    got it, so a store seeded from the state does not take it either."""
    with_partner = [s for s in STATES if any(e.recipient for e in s.entries)]
    assert with_partner
    without = [
        dataclasses.replace(s, entries=tuple(e for e in s.entries if e.recipient is None))
        for s in with_partner
    ]
    stores = [
        MarketingStore(Database(f"sqlite:///{tmp_path / f'{n}.db'}"), AddressHasher(KEY))
        for n in ("with", "without")
    ]
    stores[0].seed_avro_batch([state_avro(s) for s in with_partner])
    stores[1].bootstrap_batch(without)
    tables = ("suppressions",)
    assert dump(tmp_path / "with.db", tables) == dump(tmp_path / "without.db", tables)
    analytics = [AnalyticsStore(tmp_path / f"a-{n}.db") for n in ("with", "without")]
    for store in analytics:
        store.ensure_schema()
    analytics[0].seed_avro_many([state_avro(s) for s in with_partner])
    analytics[1].seed_many(without)
    tables = ("analytics_opt_outs",)
    assert dump(tmp_path / "a-with.db", tables) == dump(tmp_path / "a-without.db", tables)
    for closing in (*stores, *analytics):
        closing.close()


def test_the_wire_keeps_each_entry_s_recipient() -> None:
    decoder = EventDecoder(None)
    for s, avro in zip(STATES, wire_states(), strict=True):
        assert [e["recipient"] for e in avro["entries"]] == [
            None if e.recipient is None else e.recipient.value for e in s.entries
        ]
        assert decode_state(decoder, encode_single_object(s)) == s
        assert typed_state(avro) == s


def entry(recipient: str | None, choice: str, ms: int, event_id: str) -> Any:
    return {
        "purpose": "TARGETED_ADVERTISING",
        "regime": "GDPR",
        "recipient": recipient,
        "choice": choice,
        "occurred_at": ms,
        "event_id": event_id,
    }


def test_in_force_gives_a_partner_its_own_choice_where_it_is_the_newer() -> None:
    general = entry(None, "GRANTED", 1_000, "e-1")
    criteo = entry("CRITEO", "WITHDRAWN", 2_000, "e-2")
    bing = entry("BING", "WITHDRAWN", 500, "e-3")
    entries = [general, bing, criteo]
    assert state_records.in_force(entries, None) == [general]
    assert state_records.in_force(entries, "CRITEO") == [criteo]
    assert state_records.in_force(entries, "BING") == [general]  # the newer grant for all
    assert state_records.in_force(entries, "GOOGLE") == [general]
    # On a tie of times, the withdrawal ranks higher, as in the stream.
    tie = entry("GOOGLE", "WITHDRAWN", 1_000, "e-0")
    assert state_records.in_force([general, tie], "GOOGLE") == [tie]
    # A partner's own choice with no choice for every recipient.
    assert state_records.in_force([criteo], "CRITEO") == [criteo]
    assert state_records.in_force([criteo], "BING") == []
