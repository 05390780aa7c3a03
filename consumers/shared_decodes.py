"""Decoded instruction records shared by the sink runners of one process.

The partner sink runs a runner per partner, all fed by one consumer of the same topic
(:mod:`consumers.partners.fanout`), and a record naming six partners is taken by six of
them. Each decoding the whole
Avro body for itself was the largest part of the process's work; through this, the first
runner to reach a record decodes it and the others take what it made of it (its
instructions, :class:`consumers.instruction_records.SharedInstructions`). A runner far
behind the others (a partner that is down) finds its records evicted and decodes them
itself, so the memory stays bounded and nobody waits for anybody.

Only a successful decode is kept: a record that cannot be decoded, or a registry that
cannot be reached, fails each runner on its own, as it would without sharing. What is
kept is shared read-only (:mod:`consumers.instruction_records` never mutates it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, TypeVar

Coordinates = tuple[str, int, int]
"""Topic, partition, offset."""
V = TypeVar("V")
"""A record's decoded form."""

DEFAULT_SIZE: Final = 4096
"""Records kept: several seconds of the partners' topic at a thousand consent events a
second, a few megabytes."""


class SharedDecodes(Generic[V]):
    """A bounded map of record coordinates to their decoded form, safe across threads."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        # Each call on it is one step under the GIL: no lock for the runners to queue on.
        self._kept: OrderedDict[Coordinates, V] = OrderedDict()

    def get(self, where: Coordinates, decode: Callable[[], V]) -> V:
        """The record at ``where``, decoded by ``decode()`` unless another runner has."""
        kept = self._kept.get(where)
        if kept is not None:
            return kept
        decoded = decode()
        self._kept[where] = decoded
        while len(self._kept) > self._size:
            # Oldest first: the runners that share most are the ones keeping up.
            try:
                self._kept.popitem(last=False)
            except KeyError:
                break  # another runner emptied it meanwhile
        return decoded
