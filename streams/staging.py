"""Batch-local writes to a Faust table, applied only once the batch's output is durable.

An agent reads and writes through a :class:`Staged` view while it processes a batch;
when the batch's messages have all been acknowledged by the broker it calls
:meth:`Staged.commit`, which writes each touched key once (one changelog message per
key per batch). If publishing fails, the staged writes are dropped and the batch is
processed again from the unchanged table, so outputs and state never diverge.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_DELETED = object()


class Staged(Generic[K, V]):
    """A write-behind view of one table for one batch."""

    __slots__ = ("_table", "_writes")

    def __init__(self, table: MutableMapping[K, V]) -> None:
        self._table = table
        self._writes: dict[K, object] = {}

    def get(self, key: K) -> V | None:
        """The staged value, else the table's, else None."""
        if key in self._writes:
            value = self._writes[key]
            return None if value is _DELETED else value  # type: ignore[return-value]
        return self._table.get(key)

    def __setitem__(self, key: K, value: V) -> None:
        self._writes[key] = value

    def delete(self, key: K) -> None:
        """Stage the removal of ``key``."""
        self._writes[key] = _DELETED

    def commit(self) -> int:
        """Write every staged key to the table; the number of keys written."""
        for key, value in self._writes.items():
            if value is _DELETED:
                if key in self._table:
                    del self._table[key]
            else:
                self._table[key] = value  # type: ignore[assignment]
        count = len(self._writes)
        self._writes.clear()
        return count
