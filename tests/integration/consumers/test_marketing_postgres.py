"""The marketing store on a real PostgreSQL server (started privately for this module),
and the sink on it under the runner against the real broker.

PostgreSQL 15 binaries (``initdb``, ``pg_ctl``) must be on the machine; when they are
not, these tests fail: the brief is "real parts only, never skipped".
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from consumers.marketing.database import Database, StoreUnavailableError
from consumers.marketing.export import write_csv
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import Contact, Decision, MarketingStore
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import (
    ConsentEntry,
    ConsentStateRecorded,
    InstructionIssued,
    PropagationReceipt,
    Subject,
)
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

KEY = b"postgres-test-key-0123456789"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EMAIL = (Channel.EMAIL, Purpose.MARKETING_EMAIL)


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster under a temp directory."""

    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *argv: str) -> None:
        command = list(argv)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                pytest.fail(f"PostgreSQL's {tool} is not installed", pytrace=False)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._as_owner("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._as_owner(
            "pg_ctl", "-D", str(self.root / "data"), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_owner("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def fresh_database(self) -> str:
        name = f"m_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="consent-relay-pg-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = PostgresServer(root, port)
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_store(postgres: PostgresServer) -> Iterator[MarketingStore]:
    store = MarketingStore(Database(postgres.fresh_database()), AddressHasher(KEY))
    yield store
    store.close()


def instruction(action: Action, subject: str = "s-1", at: datetime = T0) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=action,
        purposes=(Purpose.MARKETING_EMAIL,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=at,
        issued_at=at,
    )


def test_store_semantics_hold_on_postgresql(pg_store: MarketingStore) -> None:
    store = pg_store
    store.upsert_contact(Contact("s-1", "pg@example.com", "+1 555 0100"))
    suppress = instruction(Action.SUPPRESS)
    first = store.apply(suppress)
    assert first.outcome is Outcome.APPLIED
    assert store.apply(suppress) == first
    assert store.may_contact("s-1", *EMAIL) == Decision(False, "suppressed")
    assert store.apply(instruction(Action.ALLOW, at=T0)).outcome is Outcome.SKIPPED
    grant, again = store.apply_batch(
        [instruction(Action.ALLOW, at=T0 + timedelta(seconds=1)), suppress]
    )
    assert (grant.outcome, again) == (Outcome.APPLIED, first)
    assert store.may_contact("s-1", *EMAIL) == Decision(True, "granted")

    store.apply(instruction(Action.SUPPRESS, at=T0 + timedelta(seconds=2)))
    out = io.StringIO()
    assert write_csv(store, out) == 1
    store.apply(instruction(Action.ERASE, at=T0 + timedelta(seconds=3)))
    assert store.contact("s-1") is None
    assert store.may_contact("s-1", *EMAIL) == Decision(False, "erased")
    store.upsert_contact(Contact("s-2", "PG@example.com"))
    assert store.may_contact("s-2", *EMAIL) == Decision(False, "address erased")
    with store.database.reading() as tx:
        assert tx.rows("SELECT COUNT(*) FROM applied_instructions") == [(5,)]
        assert tx.rows("SELECT COUNT(*) FROM suppressions") == [(0,)]


def test_a_stopped_server_is_retriable_and_the_store_reconnects(
    postgres: PostgresServer, pg_store: MarketingStore
) -> None:
    assert pg_store.apply(instruction(Action.SUPPRESS)).outcome is Outcome.APPLIED
    postgres.stop()
    try:
        with pytest.raises(StoreUnavailableError):
            pg_store.apply(instruction(Action.SUPPRESS, subject="s-2"))
    finally:
        postgres.start()
    assert pg_store.apply(instruction(Action.SUPPRESS, subject="s-2")).outcome is Outcome.APPLIED
    assert not pg_store.may_contact("s-2", *EMAIL).allowed


def test_the_sink_runs_on_postgresql(postgres: PostgresServer, sink_kit: Any, until: Any) -> None:
    store = MarketingStore(Database(postgres.fresh_database()), AddressHasher(KEY))
    batch = [sink_kit.instruction(subject=f"pg-{i}") for i in range(50)]
    sink_kit.publish(batch)
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = SinkRunner(
        MarketingSink(store),
        sink_kit.settings,
        group_id=sink_kit.group,
        metrics_port=0,
        options=RunnerSettings(poll_timeout_seconds=0.2),
    )
    with sink_kit.running(runner):
        got: list[PropagationReceipt] = until(lambda: len(r := receipts.poll(0.3)) >= 50 and r)
        assert all(not store.may_contact(f"pg-{i}", *EMAIL).allowed for i in range(50))
    assert {r.instruction_id for r in got} == {i.instruction_id for i in batch}
    assert {r.outcome for r in got} == {Outcome.APPLIED}


def test_a_batch_seed_on_postgresql_equals_the_one_on_sqlite(
    pg_store: MarketingStore, tmp_path: Path
) -> None:
    entries = tuple(
        ConsentEntry(
            purpose=purpose,
            regime=Regime.GDPR,
            choice=Choice.WITHDRAWN if n % 2 else Choice.GRANTED,
            occurred_at=T0 + timedelta(seconds=n),
            event_id=str(uuid.UUID(int=n)),
        )
        for n, purpose in enumerate(
            (Purpose.MARKETING_EMAIL, Purpose.PERSONALISED_MARKETING, Purpose.MARKETING_SMS)
        )
    )
    states = [
        ConsentStateRecorded(
            subject=Subject(id=f"s-{i}", kind=SubjectKind.ACCOUNT),
            entries=entries[: 1 + i % 3],
            restricted=i % 4 == 0,
            erased=i % 9 == 8,
            updated_at=T0 + timedelta(minutes=i),
        )
        for i in range(50)
    ]
    lite = MarketingStore(Database(f"sqlite:///{tmp_path / 'm.db'}"), AddressHasher(KEY))
    for store in (pg_store, lite):
        store.upsert_contact(Contact("s-8", "eight@example.com"))
        store.bootstrap_batch(states[:20])
        store.bootstrap_batch(states[20:])
        store.mark_bootstrapped()
    tables = ("suppressions", "restrictions", "contacts", "erased_subjects", "erased_addresses")

    def dump(store: MarketingStore) -> list[list[tuple[Any, ...]]]:
        with store.database.reading() as tx:
            return [sorted(tx.rows(f"SELECT * FROM {t}")) for t in tables]

    assert dump(pg_store) == dump(lite)
    assert dump(lite)[0]
    lite.close()
