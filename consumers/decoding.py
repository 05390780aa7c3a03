"""Reading one expected event type off a topic, or a typed reason why not.

Anything that is not a valid record of the expected type raises an
:class:`~schemas.errors.InvalidEventError`, which the runner dead-letters; a registry
outage raises :class:`~schemas.errors.RegistryUnavailableError`, which it retries.
"""

from __future__ import annotations

from typing import Any, TypeVar

from schemas.codec import EventDecoder
from schemas.errors import InvalidEventError

T = TypeVar("T")


class UnexpectedEventError(InvalidEventError):
    """A valid event, but not of the type this topic carries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_as(decoder: EventDecoder, data: bytes | None, expected: type[T]) -> T:
    """The record of type ``expected`` in ``data``; InvalidEventError otherwise."""
    record: Any = decoder.decode(data)
    if not isinstance(record, expected):
        raise UnexpectedEventError(
            f"{type(record).__name__} where {expected.__name__} was expected"
        )
    return record
