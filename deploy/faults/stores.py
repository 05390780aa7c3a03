"""What each destination holds at the end, read from the real stores.

* Marketing: the ``suppressions`` table in PostgreSQL, one row per (subject, channel,
  purpose) with the decision and its event time (``consumers/marketing/store.py``).
* Analytics: the ``analytics_opt_outs`` table of the SQLite store
  (``consumers/analytics/schema.py``).
* Partners: every signed body the receiver recorded, as each partner was told it
  (``consumers/partners/WEBHOOK.md``), with the partner's pseudonym mapped back to the
  subject through the partner's own key from the partners file.

A cell's state is ``Cell(withdrawn, at_ms)``; :mod:`deploy.faults.reconcile` judges it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from consumers.partners.config import load_config
from consumers.partners.pseudonym import pseudonymous_id
from schemas.taxonomy import PURPOSE_SPECS, Purpose

CellKey = tuple[str, Purpose]
"""(subject id, purpose)."""


@dataclass(frozen=True, slots=True)
class Cell:
    """A decision in force: withdrawn or not, and its event time."""

    withdrawn: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One instruction as a partner received it."""

    partner: str
    subject: str | None
    """The subject behind the pseudonym, None if it belongs to nobody the run knows."""
    action: str
    purposes: tuple[str, ...]
    at_ms: int
    instruction_id: str


def marketing(url: str, purposes: Iterable[Purpose]) -> dict[CellKey, Cell]:
    """The suppression-list cells of ``purposes`` (each on its own channel)."""
    out: dict[CellKey, Cell] = {}
    with psycopg.connect(url) as conn:
        for purpose in purposes:
            channel = PURPOSE_SPECS[purpose].channel
            if channel is None:
                raise ValueError(f"{purpose} has no channel of its own")
            rows = conn.execute(
                "SELECT subject_id, suppressed, changed_at FROM suppressions"
                " WHERE channel = %s AND purpose = %s",
                (channel.value, purpose.value),
            ).fetchall()
            for subject, suppressed, changed_at in rows:
                out[(subject, purpose)] = Cell(bool(suppressed), int(changed_at))
    return out


def marketing_applied(url: str) -> set[str]:
    """Ids of every instruction the marketing store applied (or skipped)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT instruction_id FROM applied_instructions").fetchall()
    return {row[0] for row in rows}


def analytics_applied(path: Path) -> set[str]:
    """Ids of every instruction the analytics store applied."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT instruction_id FROM applied_instructions").fetchall()
    finally:
        conn.close()
    return {row[0] for row in rows}


def analytics(path: Path, purposes: Iterable[Purpose]) -> dict[CellKey, Cell]:
    """The opt-out rows of ``purposes``."""
    wanted = {p.value: p for p in purposes}
    out: dict[CellKey, Cell] = {}
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT subject_id, purpose, opted_out, occurred_at FROM analytics_opt_outs"
        ).fetchall()
    finally:
        conn.close()
    for subject, purpose, opted_out, occurred_at in rows:
        if purpose in wanted:
            out[(subject, wanted[purpose])] = Cell(bool(opted_out), int(occurred_at))
    return out


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def partner_deliveries(
    record: Path, partners_file: Path, subjects: Iterable[str]
) -> list[Delivery]:
    """Every instruction the receiver acknowledged, in the order it arrived."""
    config = load_config(partners_file)
    names = list(subjects)
    behind: dict[tuple[str, str], str] = {}
    for configured in config.partners:
        key = configured.pseudonym_key
        for subject in names:
            behind[(configured.name, pseudonymous_id(key, subject))] = subject
    out = []
    for partner, document in _documents(record):
        out.append(
            Delivery(
                partner=partner,
                subject=behind.get((partner, document["subject"]["id"])),
                action=document["action"],
                purposes=tuple(document["purposes"]),
                at_ms=_ms(document["occurred_at"]),
                instruction_id=document["instruction_id"],
            )
        )
    return out


def _documents(record: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not record.exists():
        return
    with record.open("rb") as lines:
        for line in lines:
            path, _, body = line.rstrip(b"\n").partition(b" ")
            partner = path.decode().rsplit("/", 1)[-1]
            parsed = json.loads(body)
            for document in parsed.get("instructions", [parsed]):
                yield partner, document
