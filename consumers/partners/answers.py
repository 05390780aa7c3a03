"""What each partner has been told, kept so that a duplicate instruction is not sent again.

The runner remembers an instruction as answered once the partner acknowledged it (or
it was skipped) and its receipt is acknowledged too
(:class:`~consumers.protocol.RemembersAnswers`): a recent duplicate is then dropped
before any POST, and an older one is answered again by the sink without a POST.
:class:`SqliteAnswers` keeps the ids in a SQLite file (``PARTNER_SINK_DATABASE``), one
row per partner and instruction, so this holds across restarts; every partner pipeline
has its own connection to the shared file. :class:`RecentAnswers`, used when no file is
configured, keeps each pipeline's most recent ids in memory only: a duplicate arriving
after a restart, or after that many other instructions, is sent once more with the
same ``Idempotency-Key``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from schemas.errors import ConsentRelayError
from schemas.events import utc_now

MEMORY_LIMIT = 10_000
"""Instruction ids one pipeline remembers without a file (~1.5 MB)."""
_IDS_PER_QUERY = 500
"""Instruction ids per ``IN (...)`` lookup, well under SQLite's parameter limit."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS answered_instructions (
    partner TEXT NOT NULL,
    instruction_id TEXT NOT NULL,
    answered_at INTEGER NOT NULL,
    PRIMARY KEY (partner, instruction_id)
) WITHOUT ROWID
"""


class AnswersUnavailableError(ConsentRelayError):
    """The file of answered instructions cannot be read or written right now."""


class Answers(Protocol):
    """The instruction ids one partner's pipeline has answered."""

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``instruction_ids`` already answered was last answered."""
        ...

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record ``instruction_ids`` as answered now."""
        ...

    def close(self) -> None:
        """Release the file, if any."""
        ...


class RecentAnswers:
    """The last ``limit`` answered ids, in memory (lost on restart)."""

    def __init__(self, limit: int = MEMORY_LIMIT) -> None:
        self._limit = limit
        self._ids: dict[str, datetime] = {}

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``instruction_ids`` still remembered was last answered."""
        return {i: self._ids[i] for i in instruction_ids if i in self._ids}

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Remember ``instruction_ids``, forgetting the oldest beyond the limit."""
        now = utc_now()
        for instruction_id in instruction_ids:
            # Re-inserted at the end: the oldest answer is the first forgotten.
            self._ids.pop(instruction_id, None)
            self._ids[instruction_id] = now
        while len(self._ids) > self._limit:
            del self._ids[next(iter(self._ids))]

    def close(self) -> None:
        """Nothing to release."""


class SqliteAnswers:
    """One partner's answered ids in a SQLite file shared by every partner pipeline."""

    def __init__(self, path: Path, partner: str, *, timeout_seconds: float = 5.0) -> None:
        self.path = path
        self.partner = partner
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """When each of ``instruction_ids`` this partner's pipeline answered was last
        answered."""
        wanted = list(dict.fromkeys(instruction_ids))
        found: dict[str, datetime] = {}
        with self._connection() as conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                part = wanted[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    "SELECT instruction_id, answered_at FROM answered_instructions"  # noqa: S608
                    f" WHERE partner = ? AND instruction_id IN ({marks})",
                    (self.partner, *part),
                )
                found.update((i, datetime.fromtimestamp(at / 1000, UTC)) for i, at in rows)
        return found

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record ``instruction_ids`` as answered now for this partner."""
        now = int(utc_now().timestamp() * 1000)
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR REPLACE INTO answered_instructions"
                " (partner, instruction_id, answered_at) VALUES (?, ?, ?)",
                ((self.partner, i, now) for i in dict.fromkeys(instruction_ids)),
            )
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close this pipeline's connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
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
                # A broken connection is opened again on the next call.
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise AnswersUnavailableError(f"answered instructions: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # WAL: sixteen pipelines read and write the one file without blocking each
            # other's reads. NORMAL durability is enough: an id lost to a power cut only
            # means its duplicate is sent once more, with the same Idempotency-Key.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        return conn
