"""The marketing store's database connection: SQLite by default, PostgreSQL by URL.

``sqlite:///abs/path.db`` (or ``sqlite://relative.db``) opens a SQLite file in WAL
mode with ``synchronous=FULL``, so a committed transaction survives a crash;
``postgresql://...`` connects with psycopg. SQL is written once with ``?``
placeholders and upserts both engines understand. A database that cannot be reached,
is locked or read-only raises :class:`StoreUnavailableError` (the runner retries);
anything that can never succeed raises :class:`StoreRejectedError` (dead letter).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from consumers.protocol import PermanentSinkError, RetriableSinkError
from schemas.errors import ConfigError

Row = tuple[Any, ...]

PAGE_BYTES = 16_384
"""SQLite page size of a new store (SQLite's default is 4,096): a million subjects'
suppression cells seed with ~20 % less CPU and fewer page splits; a store created
before keeps its pages."""
BULK_CHECKPOINT_PAGES = 10_000
"""WAL pages between checkpoints while a seed runs (160 MB of 16 KiB pages): each
checkpoint is two fsyncs."""
BULK_CACHE_KIB = 256 * 1024
"""SQLite's page cache while a seed runs (256 MiB, from its default 2 MiB)."""
_DEFAULT_CHECKPOINT_PAGES = 1000
_DEFAULT_CACHE = -2000


class StoreUnavailableError(RetriableSinkError):
    """The database is down, locked or read-only for now."""


class StoreRejectedError(PermanentSinkError):
    """The database refused the change for good (constraint, bad data)."""


class Executor(Protocol):
    """Runs statements inside one transaction (or one read)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All result rows."""
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a change; the number of rows it touched."""
        ...

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute a change once per row of parameters, in one round of the driver
        (SQLite's executemany; psycopg's pipelined executemany)."""
        ...


class _Cursor:
    def __init__(self, cursor: Any, postgres: bool) -> None:
        self._cursor = cursor
        self._postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self._sql(sql), tuple(params))
        return [tuple(r) for r in self._cursor.fetchall()]

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._sql(sql), tuple(params))
        return int(self._cursor.rowcount)

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(self._sql(sql), rows)


class Database:
    """One connection, used by one thread at a time (the runner and HTTP readers)."""

    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if not self.postgres and not url.startswith("sqlite://"):
            raise ConfigError(
                "MARKETING_SINK_DATABASE_URL", "must be sqlite://... or postgresql://..."
            )
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._conn: Any = None

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file (None for PostgreSQL)."""
        if self.postgres:
            return None
        path = self.url[len("sqlite://") :]
        return path[1:] if path.startswith("//") else path

    @contextmanager
    def transaction(self) -> Iterator[Executor]:
        """A write transaction, committed on exit (rolled back on error)."""
        with self._lock, _mapped_errors():
            conn = self._connection()
            if self.postgres:
                with conn.transaction():
                    yield _Cursor(conn.cursor(), postgres=True)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Cursor(conn.cursor(), postgres=False)
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (busy, read-only, disk full) leaves the transaction open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self) -> Iterator[Executor]:
        """A consistent read (no writes)."""
        with self._lock, _mapped_errors():
            conn = self._connection()
            if self.postgres:
                with conn.transaction():
                    yield _Cursor(conn.cursor(), postgres=True)
                return
            conn.execute("BEGIN")
            try:
                yield _Cursor(conn.cursor(), postgres=False)
            finally:
                conn.execute("COMMIT")

    def bulk_load(self, active: bool) -> None:
        """SQLite: settings for a seed of many rows in many commits, or back to those of
        normal operation. PostgreSQL: nothing.

        While active, commits are fsynced only at WAL checkpoints (``synchronous=NORMAL``
        instead of ``FULL``): WAL with NORMAL is never corrupted, a power cut may only
        take the last commits, and one FULL commit after them makes them all durable,
        since the WAL is synced as a whole. Checkpoints (each one two fsyncs) come every
        :data:`BULK_CHECKPOINT_PAGES` pages instead of SQLite's 1,000, and the page cache
        holds :data:`BULK_CACHE_KIB` so the index pages a seed keeps returning to stay in
        memory: a million subjects' suppression cells are ~700 MB.
        """
        if self.postgres:
            return
        pragmas = (
            ("NORMAL", BULK_CHECKPOINT_PAGES, -BULK_CACHE_KIB)
            if active
            else ("FULL", _DEFAULT_CHECKPOINT_PAGES, _DEFAULT_CACHE)
        )
        with self._lock, _mapped_errors():
            conn = self._connection()
            synchronous, checkpoint_pages, cache = pragmas
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
            conn.execute(f"PRAGMA cache_size={cache}")

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> Any:
        if self._conn is not None and not _broken(self._conn):
            return self._conn
        if self.postgres:
            import psycopg  # noqa: PLC0415 - optional: only with the postgres extra

            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=int(max(1, self._busy_timeout))
            )
        else:
            conn = sqlite3.connect(
                self.sqlite_path or ":memory:",
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            # Takes effect only on a new, empty file (before WAL mode is set).
            conn.execute(f"PRAGMA page_size={PAGE_BYTES}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._conn = conn
        return self._conn


def _broken(conn: Any) -> bool:
    return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Turn driver errors into retriable or permanent store errors."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError) as exc:
        raise StoreRejectedError(f"database refused: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"database unavailable: {exc}") from exc
    except Exception as exc:
        # psycopg is optional: classify its errors by their DB-API base classes.
        kind = type(exc).__mro__
        names = {c.__name__ for c in kind}
        if not any(c.__module__.startswith("psycopg") for c in kind):
            raise
        if names & {"IntegrityError", "DataError", "ProgrammingError"}:
            raise StoreRejectedError(f"database refused: {exc}") from exc
        raise StoreUnavailableError(f"database unavailable: {exc}") from exc
