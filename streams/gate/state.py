"""The subjects' consent state on the gate's partitions, rebuilt from the state topic.

The workers keep each subject's whole :class:`~streams.resolution.SubjectState` in their
``consent-state`` table, whose changelog is the contract's compacted state topic
(``consent.state``), keyed by subject and written on the subject's consent partition
number (which is also its data partition number). The gate decides by the decision in
force *when the data was produced*, per recipient, with grant expiry, restriction and
erasure times: each ``ConsentStateRecorded`` carries that history beside the current
choices the sinks read. The records are read by the same reader the workers' table
recovery uses (:class:`streams.state_topic.StateReader`), so there is one reader of them.

Subjects are kept per partition, so a revoked partition's subjects go at once, and the
judge looks a subject up in one plain dict.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.errors import InvalidEventError, RegistryUnavailableError
from streams.resolution import SubjectState
from streams.state_topic import StateRecordError

__all__ = ["ConsentStates", "StateRecordError"]


class ConsentStates:
    """Subject id → consent state, for the partitions this gate holds."""

    __slots__ = ("_keys", "_read", "subjects")

    def __init__(self, read: Callable[[bytes], SubjectState]) -> None:
        self._read = read
        """A state record's subject state (:meth:`streams.state_topic.StateReader.read`)."""
        self.subjects: dict[bytes, SubjectState] = {}
        """Every held subject's state (read by the judge; written only here)."""
        self._keys: dict[int, set[bytes]] = {}

    def hold(self, partition: int) -> None:
        """Start holding ``partition`` (its changelog is about to be read from the start)."""
        self.drop(partition)
        self._keys[partition] = set()

    def drop(self, partition: int) -> int:
        """Forget ``partition``'s subjects; how many there were."""
        keys = self._keys.pop(partition, set())
        subjects = self.subjects
        for key in keys:
            subjects.pop(key, None)
        return len(keys)

    def apply(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        """One state record of ``partition``: a subject's new state, or (no value) its
        removal. Records of partitions not held are ignored (a revocation raced them)."""
        keys = self._keys.get(partition)
        if keys is None:
            return
        if key is None:
            raise StateRecordError(f"a state record on partition {partition} has no key")
        if value is None:
            keys.discard(key)
            self.subjects.pop(key, None)
            return
        try:
            state = self._read(value)
        except (InvalidEventError, RegistryUnavailableError, StateRecordError) as exc:
            # Deciding on without this subject's state could let withdrawn data through.
            raise StateRecordError(
                f"a state record on partition {partition} cannot be read: {exc}"
            ) from exc
        keys.add(key)
        self.subjects[key] = state

    def __len__(self) -> int:
        return len(self.subjects)

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions held."""
        return frozenset(self._keys)
