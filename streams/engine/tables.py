"""The worker's three tables, their names and their changelog topics.

All are keyed by subject id (utf-8 bytes, exactly the consent topic's key) and use the
producer's partitioner for their changelogs, so a subject's table rows live on the
same partition number as its consent events, receipts and data events: one worker
owns all of a subject.
"""

from __future__ import annotations

from typing import Final

STATE: Final = "consent-state"
"""Subject → :class:`~streams.intake.resolution.SubjectState`; its changelog is the state topic
(``consent.state``, :mod:`streams.intake.state_topic`), not one named by :func:`changelog_topic`."""
PENDING: Final = "propagation-pending"
"""Subject → :class:`~streams.proof.propagation.SubjectPropagations` (not yet honoured)."""
DONE: Final = "propagation-done"
"""Subject → its most recent completed :class:`~streams.proof.propagation.Propagation` s."""


CHANGELOG_CONFIG: Final = {"segment.ms": "60000", "delete.retention.ms": "600000"}
"""Topic configs of the tables' changelogs, beside Faust's ``cleanup.policy=compact``.

The tables live in memory, so a worker that starts (or takes a partition over) replays
its changelog partitions, and the replay is as long as the changelog. Kafka compacts only
closed segments: with its 7-day default a changelog kept every change of the last week
(20,000 events made ~16,000 changelog records to replay, 2-7 s of a killed worker's
recovery). Segments of a minute let the cleaner keep about one record per live key
plus the last minute's changes, and a deleted row's tombstone is dropped 10 minutes
after compaction (a replica reading the changelog more than 10 minutes behind could
miss a delete; standbys stay seconds behind). Faust creates the changelogs with these; an
existing deployment sets them once with ``kafka-configs --alter`` (streams/README.md)."""


def changelog_topic(app_id: str, table: str) -> str:
    """The compacted topic Faust keeps ``table``'s changes in."""
    return f"{app_id}-{table}-changelog"
