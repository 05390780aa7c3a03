"""The worker's three tables, their names and their changelog topics.

All are keyed by subject id (utf-8 bytes, exactly the consent topic's key) and use the
producer's partitioner for their changelogs, so a subject's table rows live on the
same partition number as its consent events, receipts and data events: one worker
owns all of a subject.
"""

from __future__ import annotations

from typing import Final

STATE: Final = "consent-state"
"""Subject → :class:`~streams.resolution.SubjectState`."""
PENDING: Final = "propagation-pending"
"""Subject → :class:`~streams.propagation.SubjectPropagations` (not yet honoured)."""
DONE: Final = "propagation-done"
"""Subject → its most recent completed :class:`~streams.propagation.Propagation` s."""


def changelog_topic(app_id: str, table: str) -> str:
    """The compacted topic Faust keeps ``table``'s changes in."""
    return f"{app_id}-{table}-changelog"
