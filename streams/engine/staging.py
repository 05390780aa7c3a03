"""Batch-local writes to a table, made durable together with the batch's output.

An agent reads and writes through a :class:`Staged` view while it processes a batch.
A view may read through the view of the batch published just before it, whose
output is still on its way to the broker (:mod:`streams.engine.batch` processes the
next batch meanwhile): that batch's writes are what the table will hold once it
commits. Before publishing, :meth:`Staged.publish` adds one changelog message per touched key
to the batch's outbox (explicit partition: the partition of the message that touched
the key, which the table shares with its input topics), so the changelog is written
and acknowledged with everything else the batch produces. Only then does
:meth:`Staged.commit` update the table's local data. If publishing fails, the staged
writes are dropped and the batch is processed again from the unchanged table.

This bypasses Faust's per-key ``send_soon`` (a future, a callback and sensors per
write); the changelog topic and its bytes are exactly what Faust itself writes and
reads back on recovery.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streams.engine.outbox import Outbox

K = TypeVar("K")
V = TypeVar("V")

_DELETED = object()


@dataclass(frozen=True, slots=True)
class Changelog:
    """Where a table's changes go, and how its values are written."""

    topic: str
    encode: Callable[[Any], bytes]


class Staged(Generic[K, V]):
    """A write-behind view of one table for one batch."""

    __slots__ = ("_base", "_changelog", "_table", "_writes")

    def __init__(
        self,
        table: MutableMapping[K, V],
        changelog: Changelog | None = None,
        base: Staged[K, V] | None = None,
    ) -> None:
        self._table = table
        self._changelog = changelog
        self._base = base
        """The same table's view in the batch before this one, while its output is in
        flight (None: read the table)."""
        self._writes: dict[K, tuple[object, int | None]] = {}

    def get(self, key: K) -> V | None:
        """The staged value, else the earlier batch's, else the table's, else None."""
        staged = self._writes.get(key)
        if staged is not None:
            value = staged[0]
            return None if value is _DELETED else value  # type: ignore[return-value]
        if self._base is not None:
            return self._base.get(key)
        return self._table.get(key)

    def put(self, key: K, value: V, partition: int | None) -> None:
        """Stage ``value`` for ``key`` (on ``partition`` of the changelog)."""
        self._writes[key] = (value, partition)

    def delete(self, key: K, partition: int | None) -> None:
        """Stage the removal of ``key``."""
        self._writes[key] = (_DELETED, partition)

    def written(self) -> list[tuple[K, V, int | None]]:
        """The staged values (not the removals), with their partitions."""
        return [
            (key, value, partition)  # type: ignore[misc]
            for key, (value, partition) in self._writes.items()
            if value is not _DELETED
        ]

    def publish(self, outbox: Outbox) -> None:
        """Queue one changelog message per staged key (a tombstone for a removal)."""
        if self._changelog is None:
            return
        topic, encode = self._changelog.topic, self._changelog.encode
        for key, (value, partition) in self._writes.items():
            body = None if value is _DELETED else encode(value)
            outbox.add(topic, key, body, partition)  # type: ignore[arg-type]

    def commit(self) -> int:
        """Apply the staged writes to the table's data; the number of keys written.
        The earlier batch has committed by now: from here on this view reads the table."""
        self._base = None
        for key, (value, _partition) in self._writes.items():
            if value is _DELETED:
                self._table.pop(key, None)
            else:
                self._table[key] = value  # type: ignore[assignment]
        count = len(self._writes)
        self._writes.clear()
        return count

    def discard(self) -> None:
        """Drop the staged writes (the batch is processed again from the table)."""
        self._base = None
        self._writes.clear()
