"""The subjects' consent state on the gate's partitions, rebuilt from the state changelog.

The workers keep each subject's whole :class:`~streams.resolution.SubjectState` in their
``consent-state`` table, whose changelog is compacted, keyed by subject and written on
the subject's consent partition number (which is also its data partition number). That
changelog, not ``consent.state``, is what the gate reads: the gate decides by the
decision in force *when the data was produced*, per recipient, with grant expiry,
restriction and erasure times, and only the table holds that history
(``ConsentStateRecorded`` carries each current choice, for the sinks). The bytes are
decoded by the same function the workers' table recovery uses
(:func:`streams.table_codecs.decode_state`), so there is one reader of that format.

Subjects are kept per partition, so a revoked partition's subjects go at once, and the
judge looks a subject up in one plain dict.
"""

from __future__ import annotations

from schemas.errors import ConsentRelayError
from streams.resolution import SubjectState
from streams.table_codecs import decode_state


class StateRecordError(ConsentRelayError):
    """A changelog record the workers' table could not have written."""


class ConsentStates:
    """Subject id → consent state, for the partitions this gate holds."""

    __slots__ = ("_keys", "subjects")

    def __init__(self) -> None:
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
        """One changelog record of ``partition``: a subject's new state, or (no value) its
        removal. Records of partitions not held are ignored (a revocation raced them)."""
        keys = self._keys.get(partition)
        if keys is None:
            return
        if key is None:
            raise StateRecordError(f"a state changelog record on partition {partition} has no key")
        if value is None:
            keys.discard(key)
            self.subjects.pop(key, None)
            return
        try:
            state = decode_state(value)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            # Deciding on without this subject's state could let withdrawn data through.
            raise StateRecordError(
                f"a state changelog record on partition {partition} cannot be read: {exc!r}"
            ) from exc
        keys.add(key)
        self.subjects[key] = state

    def __len__(self) -> int:
        return len(self.subjects)

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions held."""
        return frozenset(self._keys)
