"""The identity map: which subjects each partner has an identifier for.

Whoever shares data with a partner records it here (one row per partner and subject);
this sink only reads it. A partner with no row for a person never received their data,
so an instruction about that person is skipped with a reason instead of sent.
The map is a SQLite file: ``partner_subjects(partner, subject_id)``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from contextlib import closing
from pathlib import Path

from schemas.errors import ConsentRelayError

_LOOKUP_CHUNK = 500
"""Subject ids per ``IN (...)`` query, well under SQLite's bound-variable limit."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS partner_subjects (
    partner TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (partner, subject_id)
) WITHOUT ROWID
"""


class IdentityMapUnavailableError(ConsentRelayError):
    """The identity map cannot be read right now."""


class IdentityMap:
    """Read (and, for the sharing side, write) the partner identity map."""

    def __init__(self, path: Path, *, timeout_seconds: float = 5.0) -> None:
        self.path = path
        self._timeout = timeout_seconds

    def knows(self, partner: str, subject_id: str) -> bool:
        """Whether ``partner`` has an identifier for ``subject_id``."""
        try:
            with closing(self._connect(read_only=True)) as conn:
                row = conn.execute(
                    "SELECT 1 FROM partner_subjects WHERE partner = ? AND subject_id = ?",
                    (partner, subject_id),
                ).fetchone()
        except sqlite3.Error as exc:
            raise IdentityMapUnavailableError(f"identity map unreadable: {exc}") from exc
        return row is not None

    def known(self, partner: str, subject_ids: Collection[str]) -> set[str]:
        """Which of ``subject_ids`` ``partner`` has an identifier for, on one connection
        (a batch of instructions must not open the file once per person)."""
        wanted = list(dict.fromkeys(subject_ids))
        found: set[str] = set()
        try:
            with closing(self._connect(read_only=True)) as conn:
                for start in range(0, len(wanted), _LOOKUP_CHUNK):
                    chunk = wanted[start : start + _LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        "SELECT subject_id FROM partner_subjects"  # noqa: S608 - only "?" marks
                        f" WHERE partner = ? AND subject_id IN ({marks})",
                        (partner, *chunk),
                    )
                    found.update(row[0] for row in rows)
        except sqlite3.Error as exc:
            raise IdentityMapUnavailableError(f"identity map unreadable: {exc}") from exc
        return found

    def record(self, partner: str, subject_ids: Iterable[str]) -> None:
        """Note that ``partner`` now holds data about each of ``subject_ids``."""
        try:
            with closing(self._connect(read_only=False)) as conn, conn:
                conn.execute(SCHEMA)
                conn.executemany(
                    "INSERT OR IGNORE INTO partner_subjects (partner, subject_id) VALUES (?, ?)",
                    ((partner, s) for s in subject_ids),
                )
        except sqlite3.Error as exc:
            raise IdentityMapUnavailableError(f"identity map not writable: {exc}") from exc

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
        return sqlite3.connect(uri, uri=True, timeout=self._timeout)
