"""Values derived from immutable objects, kept by the objects' identity.

A subject's state replaces a key's history tuple when the key changes and shares the
unchanged ones with the state before, so whatever is derived from a history (its dicts
for a state record, its encoded bytes) can be kept by the tuple's identity and made
again only for the keys that changed. Identity, not equality: comparing two histories
costs about what deriving from one does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """Up to ``capacity`` values, the least recently used dropped first.

    Each object is held with its value, so its ``id`` cannot be reused by another object
    while the value is kept: a hit is always for the very object the value came from.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._kept: OrderedDict[int, tuple[K, V]] = OrderedDict()

    def get(self, obj: K) -> V | None:
        """The value kept for ``obj``, if any."""
        found = self._kept.get(id(obj))
        if found is None or found[0] is not obj:
            return None
        self._kept.move_to_end(id(obj))
        return found[1]

    def put(self, obj: K, value: V) -> V:
        """Keep ``value`` for ``obj``; returns it."""
        self._kept[id(obj)] = (obj, value)
        self._kept.move_to_end(id(obj))
        if len(self._kept) > self._capacity:
            self._kept.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._kept)
