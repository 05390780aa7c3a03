"""The CSV suppression export (library call and ``python -m consumers.marketing export``)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from consumers.marketing.database import Database
from consumers.marketing.export import COLUMNS, write_csv
from consumers.marketing.hashing import AddressHasher, AddressKind
from consumers.marketing.store import Contact, MarketingStore
from schemas.events import InstructionIssued, Subject
from schemas.taxonomy import Action, Channel, Purpose, Regime, SinkFamily, SubjectKind

KEY = "export-test-key-0123456789"
T0 = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def instruction(action: Action, subject: str, *purposes: Purpose) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="RightsRequested",
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=action,
        purposes=purposes,
        channels=(Channel.EMAIL,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=T0,
        issued_at=T0,
    )


def filled_store(path: Path) -> MarketingStore:
    store = MarketingStore(Database(f"sqlite://{path}"), AddressHasher(KEY.encode()))
    store.upsert_contact(Contact("s-1", "one@example.com"))
    store.upsert_contact(Contact("s-2", "two@example.com"))
    store.upsert_contact(Contact("s-3", None, "+1 555"))
    store.apply(instruction(Action.SUPPRESS, "s-1", Purpose.MARKETING_EMAIL))
    store.apply(instruction(Action.SUPPRESS, "s-3", Purpose.MARKETING_EMAIL))  # no email
    store.apply(instruction(Action.ERASE, "s-2"))
    return store


def test_export_lists_hashed_emails_with_channel_purpose_and_time(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "m.db")
    out = io.StringIO()
    assert write_csv(store, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    hasher = AddressHasher(KEY.encode())
    assert tuple(rows[0].keys()) == COLUMNS
    assert sorted((r["email_hash"], r["channel"], r["purpose"]) for r in rows) == sorted(
        [
            (hasher(AddressKind.EMAIL, "one@example.com"), "EMAIL", "MARKETING_EMAIL"),
            (hasher(AddressKind.EMAIL, "two@example.com"), "ALL", "ALL"),
        ]
    )
    assert {r["suppressed_at"] for r in rows} == {"2024-05-01T12:00:00.250Z"}
    assert "example.com" not in out.getvalue()
    store.close()


def test_export_command_writes_the_file(tmp_path: Path) -> None:
    filled_store(tmp_path / "m.db").close()
    target = tmp_path / "suppressions.csv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETING_SINK_")},
        "MARKETING_SINK_DATABASE_URL": f"sqlite://{tmp_path}/m.db",
        "MARKETING_SINK_HASH_KEY": KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumers.marketing", "export", "--out", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = target.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 3


def test_export_command_names_a_missing_key(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETING_SINK_")},
        "MARKETING_SINK_DATABASE_URL": f"sqlite://{tmp_path}/m.db",
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumers.marketing", "export", "--out", "-"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "MARKETING_SINK_HASH_KEY" in done.stderr
