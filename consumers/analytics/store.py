"""The analytics store (SQLite): apply instructions idempotently, answer ``may_process``.

Every effect and the id of the instruction that caused it are written in one
transaction, so a redelivered instruction is recognised and changes nothing. Choices
carry their event time and an older one never overwrites a newer one, so even an
out-of-order delivery cannot reopen processing that a later withdrawal closed.

* SUPPRESS / ALLOW put a (person, purpose) on or off the opt-out list (no purposes
  means every analytics purpose).
* RESTRICT / LIFT_RESTRICTION isolate or release every record of the person: the
  ``processable_events`` view leaves restricted people out.
* ERASE deletes the person's records (or, in ``anonymise`` mode, strips the subject
  and payload from them so only anonymous statistics remain).

The store also keeps the ids of the instructions the runner has answered (their
receipt acknowledged), so a duplicate is dropped without a second receipt. Database
errors surface as :class:`StoreUnavailableError`; the sink makes them retriable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

from consumers.analytics.schema import SCHEMA
from consumers.state_records import StateAvro, in_force, state_avro
from schemas.errors import ConsentRelayError
from schemas.events import ConsentStateRecorded, InstructionIssued, Subject, utc_now
from schemas.taxonomy import Action, Choice, Purpose

ANALYTICS_PURPOSES: Final = (
    Purpose.RESEARCH_AND_STATISTICS,
    Purpose.COOKIES_STATISTICS,
    Purpose.COOKIES_PERSONALISATION,
)
"""The purposes the stream routes to the analytics store (streams/intake/routing.toml): what an
instruction with no purposes covers, and what bootstrap reads from the consent state."""

_ANALYTICS_SET: Final = frozenset(ANALYTICS_PURPOSES)
_ANALYTICS_SYMBOLS: Final = frozenset(p.value for p in ANALYTICS_PURPOSES)
_WITHDRAWN: Final = Choice.WITHDRAWN.value

_UPSERT_OPT_OUT: Final = (
    "INSERT INTO analytics_opt_outs "
    "(subject_id, subject_kind, purpose, opted_out, occurred_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (subject_id, purpose) DO UPDATE SET "
    "opted_out = excluded.opted_out, occurred_at = excluded.occurred_at "
    "WHERE excluded.occurred_at >= analytics_opt_outs.occurred_at"
)
_UPSERT_RESTRICTION: Final = (
    "INSERT INTO analytics_restrictions "
    "(subject_id, subject_kind, restricted, occurred_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (subject_id) DO UPDATE SET "
    "restricted = excluded.restricted, occurred_at = excluded.occurred_at "
    "WHERE excluded.occurred_at >= analytics_restrictions.occurred_at"
)

_SEEDED = "seeded_at"
_IDS_PER_QUERY = 500
"""Instruction ids per ``IN (...)`` lookup, well under SQLite's parameter limit."""


class StoreUnavailableError(ConsentRelayError):
    """The analytics database cannot be read or written right now."""


class UnsupportedInstructionError(ConsentRelayError):
    """An instruction this store cannot carry out (e.g. an action added after it was built)."""


class ErasureMode(StrEnum):
    """What erasure does to a person's stored analytics records."""

    DELETE = "delete"
    ANONYMISE = "anonymise"


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsRecord:
    """One analytics event as the analytics side stores it."""

    event_id: str
    subject: Subject
    purpose: Purpose
    name: str
    occurred_at: datetime
    payload: str | None = None


def epoch_ms(moment: datetime) -> int:
    """A timezone-aware time as epoch milliseconds."""
    return round(moment.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    """Epoch milliseconds as a UTC time."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class AnalyticsStore:
    """The analytics database, seen by the sink (writes) and the analytics side (reads)."""

    def __init__(
        self,
        path: Path,
        *,
        erasure_mode: ErasureMode = ErasureMode.DELETE,
        busy_timeout_seconds: float = 5.0,
    ) -> None:
        self.path = path
        self.erasure_mode = erasure_mode
        self._timeout = busy_timeout_seconds
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def ensure_schema(self) -> None:
        """Create the tables and the processing view if they are missing."""
        with self._write() as conn:
            # WAL lets the analytics side read while the sink writes.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)

    def apply(self, instruction: InstructionIssued) -> datetime:
        """Apply once; returns when it was first applied (earlier, if a redelivery)."""
        return self.apply_many([instruction])[0]

    def apply_many(self, instructions: Sequence[InstructionIssued]) -> list[datetime]:
        """Apply in order in one transaction, each once; when each was first applied."""
        now = epoch_ms(utc_now())
        applied_at: list[datetime] = []
        with self._write() as conn:
            conn.execute("BEGIN IMMEDIATE")
            for instruction in instructions:
                seen = conn.execute(
                    "SELECT applied_at FROM applied_instructions WHERE instruction_id = ?",
                    (instruction.instruction_id,),
                ).fetchone()
                if seen is not None:
                    applied_at.append(from_epoch_ms(seen[0]))
                    continue
                self._effect(conn, instruction)
                conn.execute(
                    "INSERT INTO applied_instructions (instruction_id, action, applied_at) "
                    "VALUES (?, ?, ?)",
                    (instruction.instruction_id, instruction.action.value, now),
                )
                applied_at.append(from_epoch_ms(now))
            conn.execute("COMMIT")
        return applied_at

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``instruction_ids`` the runner has answered (receipt acknowledged)
        was last answered."""
        wanted = list(dict.fromkeys(instruction_ids))
        found: dict[str, datetime] = {}
        # The writer's connection: it sees what it committed, and a reader would open
        # the file once per chunk.
        with self._write() as conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                part = wanted[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    "SELECT instruction_id, answered_at FROM answered_instructions"  # noqa: S608
                    f" WHERE instruction_id IN ({marks})",
                    part,
                )
                found.update((i, from_epoch_ms(at)) for i, at in rows)
        return found

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record ``instruction_ids`` as answered now."""
        now = epoch_ms(utc_now())
        with self._write() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR REPLACE INTO answered_instructions (instruction_id, answered_at) "
                "VALUES (?, ?)",
                ((i, now) for i in dict.fromkeys(instruction_ids)),
            )
            conn.execute("COMMIT")

    def is_seeded(self) -> bool:
        """Whether seeding from the consent state has finished once."""
        with self._read() as conn:
            row = conn.execute("SELECT 1 FROM sink_state WHERE key = ?", (_SEEDED,)).fetchone()
        return row is not None

    def mark_seeded(self) -> None:
        """Record that every subject's consent state has been seeded."""
        with self._write() as conn:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(
                "INSERT OR REPLACE INTO sink_state (key, value) VALUES (?, ?)",
                (_SEEDED, utc_now().isoformat()),
            )

    def seed(self, state: ConsentStateRecorded) -> None:
        """Bring one person's opt-outs and restriction in line with their consent state."""
        self.seed_many([state])

    def seed_many(self, states: Sequence[ConsentStateRecorded]) -> None:
        """Seed many people (each at most once) in one transaction: as
        :meth:`seed_avro_many`, from typed records."""
        self.seed_avro_many([state_avro(state) for state in states])

    def seed_avro_many(self, states: Sequence[StateAvro]) -> None:
        """Seed many people (each at most once) from their states' checked Avro dicts
        (times in epoch ms, as :func:`epoch_ms` gives them), in one transaction, one
        ``executemany`` per table: a million people seed in seconds, not minutes."""
        opt_outs: list[tuple[str, str, str, int, int]] = []
        restrictions: list[tuple[str, str, int, int]] = []
        erased: list[tuple[str]] = []
        for state in states:
            subject = state["subject"]
            subject_id, kind = subject["id"], subject["kind"]
            # A choice limited to a partner is routed to that partner only.
            for entry in in_force(state["entries"], None):
                purpose = entry["purpose"]
                if purpose in _ANALYTICS_SYMBOLS:
                    opted_out = int(entry["choice"] == _WITHDRAWN)
                    opt_outs.append((subject_id, kind, purpose, opted_out, entry["occurred_at"]))
            if state["restricted"]:
                restrictions.append((subject_id, kind, 1, state["updated_at"]))
            if state["erased"]:
                erased.append((subject_id,))
        # In key order, each index page is visited once per batch, not once per row.
        opt_outs.sort()
        restrictions.sort()
        with self._write() as conn:
            # Until mark_seeded, whose FULL commit makes these durable too (the WAL is
            # synced as a whole); WAL with NORMAL is never corrupted, a power cut only
            # takes the last commits, and an unfinished seed starts again.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_UPSERT_OPT_OUT, opt_outs)
            conn.executemany(_UPSERT_RESTRICTION, restrictions)
            conn.executemany(self._erase_sql(), erased)
            conn.execute("COMMIT")

    def may_process(self, subject_id: str, purpose: Purpose | None = None) -> bool:
        """Whether analytics may process this person (for ``purpose``, or for any purpose)."""
        with self._read() as conn:
            if conn.execute(
                "SELECT 1 FROM analytics_restrictions WHERE subject_id = ? AND restricted = 1",
                (subject_id,),
            ).fetchone():
                return False
            if purpose is None:
                opted_out = conn.execute(
                    "SELECT 1 FROM analytics_opt_outs WHERE subject_id = ? AND opted_out = 1",
                    (subject_id,),
                ).fetchone()
            else:
                opted_out = conn.execute(
                    "SELECT 1 FROM analytics_opt_outs "
                    "WHERE subject_id = ? AND purpose = ? AND opted_out = 1",
                    (subject_id, purpose.value),
                ).fetchone()
            return opted_out is None

    def add_events(self, records: Iterable[AnalyticsRecord]) -> None:
        """Store analytics events (what the analytics side does; tests use it to fill)."""
        with self._write() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR IGNORE INTO analytics_events "
                "(event_id, subject_id, subject_kind, purpose, name, occurred_at, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        r.event_id,
                        r.subject.id,
                        r.subject.kind.value,
                        r.purpose.value,
                        r.name,
                        epoch_ms(r.occurred_at),
                        r.payload,
                    )
                    for r in records
                ),
            )
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the writer connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _effect(self, conn: sqlite3.Connection, instruction: InstructionIssued) -> None:
        subject, at = instruction.subject, epoch_ms(instruction.occurred_at)
        action = instruction.action
        if action in (Action.SUPPRESS, Action.ALLOW):
            for purpose in instruction.purposes or ANALYTICS_PURPOSES:
                self._set_opt_out(
                    conn, subject, purpose, opted_out=action is Action.SUPPRESS, at=at
                )
        elif action in (Action.RESTRICT, Action.LIFT_RESTRICTION):
            self._set_restricted(conn, subject, restricted=action is Action.RESTRICT, at=at)
        elif action is Action.ERASE:
            self._erase(conn, subject.id)
        else:
            raise UnsupportedInstructionError(f"the analytics store cannot {action}")

    @staticmethod
    def _set_opt_out(
        conn: sqlite3.Connection, subject: Subject, purpose: Purpose, *, opted_out: bool, at: int
    ) -> None:
        conn.execute(
            _UPSERT_OPT_OUT, (subject.id, subject.kind.value, purpose.value, int(opted_out), at)
        )

    @staticmethod
    def _set_restricted(
        conn: sqlite3.Connection, subject: Subject, *, restricted: bool, at: int
    ) -> None:
        conn.execute(_UPSERT_RESTRICTION, (subject.id, subject.kind.value, int(restricted), at))

    def _erase(self, conn: sqlite3.Connection, subject_id: str) -> None:
        conn.execute(self._erase_sql(), (subject_id,))

    def _erase_sql(self) -> str:
        if self.erasure_mode is ErasureMode.DELETE:
            return "DELETE FROM analytics_events WHERE subject_id = ?"
        return (
            "UPDATE analytics_events SET subject_id = NULL, subject_kind = NULL, "
            "payload = NULL, anonymised = 1 WHERE subject_id = ?"
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                conn = self._conn
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                # A broken connection is rebuilt on the next call.
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise StoreUnavailableError(f"analytics store: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect(read_only=True)) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"analytics store: {exc}") from exc

    def _connect(self, *, read_only: bool = False) -> sqlite3.Connection:
        # Readers must not create an empty database where the real one is missing.
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
        conn = sqlite3.connect(
            uri, uri=True, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        return conn
