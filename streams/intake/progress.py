"""How far intake has applied each consent partition: the records of the progress topic.

Once an intake batch's output (instructions, state records and the tables' changelogs)
is acknowledged, intake writes one :class:`IntakeProgressed` per consent partition of
the batch to :attr:`~schemas.topics.Topics.intake_progress`, on the same partition
number and keyed by it: every consent event before ``offset`` on that partition has its
effect in the published state. The consent gate (:mod:`streams.gate`) reads it to know
when the state it has read covers a data event. Only ``streams`` writes and reads these
records, so they are compact JSON like the tables' changelogs, not a contract event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemas.errors import ConsentRelayError


class ProgressRecordError(ConsentRelayError):
    """A record on the progress topic is not one :func:`encode` wrote."""


@dataclass(frozen=True, slots=True)
class IntakeProgressed:
    """Intake has applied and published consent partition ``partition`` up to ``offset``."""

    partition: int
    offset: int
    """The next consent offset: the effects of every event before it are published."""
    at_ms: int
    """When intake wrote this (epoch ms), to tell how fresh the gate's view is."""


def encode(progress: IntakeProgressed) -> tuple[bytes, bytes]:
    """Key and value of a progress record (the key is the partition: compaction keeps the
    latest per partition)."""
    value = json.dumps({"o": progress.offset, "t": progress.at_ms}, separators=(",", ":"))
    return str(progress.partition).encode(), value.encode()


def decode(key: bytes | None, value: bytes | None) -> IntakeProgressed:
    """The record :func:`encode` made; ProgressRecordError for anything else."""
    try:
        doc = json.loads(value or b"")
        progress = IntakeProgressed(int(key or b""), doc["o"], doc["t"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ProgressRecordError(f"not an intake progress record: {exc}") from exc
    if type(progress.offset) is not int or type(progress.at_ms) is not int:
        raise ProgressRecordError("intake progress offset and time must be integers")
    return progress
