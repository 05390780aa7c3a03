"""The analytics store's tables and the processing view, as SQL run at start (idempotent).

Analytics jobs write ``analytics_events`` and read ``processable_events``; the analytics
sink owns every other table. Times are epoch milliseconds (UTC). Kept as a Python
string rather than a ``.sql`` file so it ships with the package as it is.
"""

from __future__ import annotations

from typing import Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS analytics_events (
    event_id     TEXT PRIMARY KEY,
    subject_id   TEXT,              -- NULL once the record is anonymised
    subject_kind TEXT,              -- ACCOUNT or DEVICE; NULL once anonymised
    purpose      TEXT NOT NULL,     -- the processing the record was collected for
    name         TEXT NOT NULL,     -- what happened (page_view, search, ...)
    occurred_at  INTEGER NOT NULL,
    payload      TEXT,              -- personal detail; NULL once anonymised
    anonymised   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS analytics_events_by_subject ON analytics_events (subject_id);

-- One row per (person, purpose) the sink has heard of; opted_out = 1 is the opt-out list.
-- occurred_at is the event time of the choice, so an older choice never overwrites a newer.
CREATE TABLE IF NOT EXISTS analytics_opt_outs (
    subject_id   TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    opted_out    INTEGER NOT NULL,
    occurred_at  INTEGER NOT NULL,
    PRIMARY KEY (subject_id, purpose)
) WITHOUT ROWID;

-- restricted = 1 isolates every record of the person from processing until lifted.
CREATE TABLE IF NOT EXISTS analytics_restrictions (
    subject_id   TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    restricted   INTEGER NOT NULL,
    occurred_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Instructions already applied, written in the same transaction as their effect.
CREATE TABLE IF NOT EXISTS applied_instructions (
    instruction_id TEXT PRIMARY KEY,
    action         TEXT NOT NULL,
    applied_at     INTEGER NOT NULL
) WITHOUT ROWID;

-- Instructions the runner has answered (applied or skipped, receipt acknowledged):
-- a duplicate of one is dropped with no second receipt.
CREATE TABLE IF NOT EXISTS answered_instructions (
    instruction_id TEXT PRIMARY KEY,
    answered_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- The sink's own bookkeeping (e.g. when seeding from the consent state finished).
CREATE TABLE IF NOT EXISTS sink_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- What analytics processing may read: nobody restricted, no purpose opted out of.
CREATE VIEW IF NOT EXISTS processable_events AS
SELECT e.event_id, e.subject_id, e.subject_kind, e.purpose, e.name, e.occurred_at, e.payload
FROM analytics_events AS e
WHERE e.subject_id IS NULL
   OR (NOT EXISTS (SELECT 1 FROM analytics_restrictions AS r
                   WHERE r.subject_id = e.subject_id AND r.restricted = 1)
       AND NOT EXISTS (SELECT 1 FROM analytics_opt_outs AS o
                       WHERE o.subject_id = e.subject_id AND o.purpose = e.purpose
                         AND o.opted_out = 1));
"""
