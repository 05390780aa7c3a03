"""The suppression export email service providers import, as CSV.

Columns: ``email_hash`` (HMAC-SHA256 of the normalised address under the sink's
key, the same hash erasure keeps, so erased addresses are in the list too),
``channel``, ``purpose`` (``ALL`` for a restricted or erased person) and
``suppressed_at`` (ISO-8601 UTC event time of the suppression). No plain address and
no subject id leaves the marketing database this way.
"""

from __future__ import annotations

import csv
from typing import TextIO

from consumers.marketing.store import MarketingStore

COLUMNS = ("email_hash", "channel", "purpose", "suppressed_at")


def write_csv(store: MarketingStore, out: TextIO) -> int:
    """Write every suppression to ``out``; returns the number of rows (header excluded)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in store.export_rows():
        at = row.suppressed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        writer.writerow((row.email_hash, row.channel, row.purpose, at))
        count += 1
    return count
