"""The subjects' consent state on the gate's partitions, rebuilt from the state topic.

The workers keep each subject's whole :class:`~streams.intake.resolution.SubjectState` in their
``consent-state`` table, whose changelog is the contract's compacted state topic
(``consent.state``), keyed by subject and written on the subject's consent partition
number (which is also its data partition number). The gate decides by the decision in
force *when the data was produced*, per recipient, with grant expiry, restriction and
erasure times: each ``ConsentStateRecorded`` carries that history beside the current
choices the sinks read. The records are read by the same reader the workers' table
recovery uses (:class:`streams.intake.state_topic.StateReader`), so there is one reader of them.

A record is kept as it came and read only when a data event of its subject is judged,
once per record (:class:`SubjectStates`). Most state records are never looked at: a
subject's next change replaces its record first, or no data of it arrives, and a gate
rebuilding a partition of a million subjects would otherwise decode a million records
(tens of µs each or more, growing with the history: ``streams/README.md``) before
deciding anything. A record that cannot be
read fails the data events of its subject only (they are dead-lettered, and a newer
record of the subject replaces it), never the records that came after it in the same
fetch: the follower applied a fetch's records one by one and stopped at the first
unreadable one, so the withdrawals after it in that fetch were never applied.

Subjects are kept per partition, so a revoked partition's subjects go at once, and the
judge looks a subject up in one dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from schemas.errors import InvalidEventError
from streams.intake.resolution import SubjectState
from streams.intake.state_topic import StateRecordError

__all__ = ["ConsentStates", "StateRecordError", "SubjectStates", "UnreadableStateError"]


class UnreadableStateError(InvalidEventError):
    """The state record of a data event's subject cannot be read: the event cannot be
    decided, so it is dead-lettered (never let through)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the subject's state record cannot be read: {cause}")
        self.field_name = None
        self.reason = f"the subject's state record cannot be read: {cause}"


class SubjectStates(Mapping[bytes, SubjectState]):
    """Subject id → state, each read from its record on first use.

    :meth:`get` raises :class:`UnreadableStateError` for a record that is not a state
    this code can apply, and lets RegistryUnavailableError through (the batch is
    decided again once the registry answers).
    """

    __slots__ = ("_held", "_read")

    def __init__(self, read: Callable[[bytes], SubjectState]) -> None:
        self._read = read
        self._held: dict[bytes, SubjectState | bytes] = {}
        """A subject's state once read, else its record's bytes."""

    def put(self, key: bytes, record: bytes) -> None:
        """The subject's newest record (read when first asked for)."""
        self._held[key] = record

    def discard(self, key: bytes) -> None:
        """Forget the subject."""
        self._held.pop(key, None)

    def get(self, key: bytes, default: SubjectState | None = None) -> SubjectState | None:  # type: ignore[override]
        """The subject's state, or ``default`` if no record of it is held."""
        held = self._held.get(key)
        if held is None:
            return default
        if type(held) is bytes:
            return self._read_held(key, held)
        return held  # type: ignore[return-value]

    def _read_held(self, key: bytes, record: bytes) -> SubjectState:
        try:
            state = self._read(record)
        except (InvalidEventError, StateRecordError) as exc:
            # Kept as it is: the subject's next record replaces it.
            raise UnreadableStateError(exc) from exc
        self._held[key] = state
        return state

    def __getitem__(self, key: bytes) -> SubjectState:
        state = self.get(key)
        if state is None:
            raise KeyError(key)
        return state

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)


class ConsentStates:
    """Subject id → consent state, for the partitions this gate holds."""

    __slots__ = ("_keys", "subjects")

    def __init__(self, read: Callable[[bytes], SubjectState]) -> None:
        self.subjects = SubjectStates(read)
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
            subjects.discard(key)
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
            self.subjects.discard(key)
            return
        keys.add(key)
        self.subjects.put(key, value)

    def __len__(self) -> int:
        return len(self.subjects)

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions held."""
        return frozenset(self._keys)
