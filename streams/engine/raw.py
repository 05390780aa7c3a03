"""The schema of the topics the agents read: the Kafka message as it came, undecoded.

The processors read ``event.message`` (its key and value bytes, partition and offset)
and decode each value once themselves (:mod:`streams.engine.wire`). Faust's own schema would
first pass every key and value through its serializer registry (codec lookups and calls
per message, for bytes nobody reads); :class:`RawMessages` overrides the two ``loads_*``
hooks Faust documents for extending a schema ("Schemas" in Faust's models guide) to hand
the bytes through as they are.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AppT, Message


class RawMessages(faust.Schema[bytes | None, bytes | None]):
    """Keys and values stay the message's bytes (``None`` for an absent key or a
    tombstone, as Faust's ``raw`` serializer gives them)."""

    def __init__(self) -> None:
        # bytes types: anything sent through the topic is written by the raw codec too.
        super().__init__(key_type=bytes, value_type=bytes)

    def loads_key(
        self,
        app: AppT,
        message: Message,
        *,
        loads: Any = None,
        serializer: Any = None,
    ) -> bytes | None:
        """The key's bytes."""
        return message.key

    def loads_value(
        self,
        app: AppT,
        message: Message,
        *,
        loads: Any = None,
        serializer: Any = None,
    ) -> bytes | None:
        """The value's bytes."""
        return message.value
