"""What can go wrong when publishing, in terms a caller can act on.

Invalid input never gets this far: records raise :class:`schemas.errors.ValidationError`
when they are built. These errors are about delivery: the broker did not acknowledge
(retry later, with the same event id), or the producer was closed first.
"""

from __future__ import annotations

from schemas.errors import ConsentRelayError


class PublishError(ConsentRelayError):
    """An event was not acknowledged by the broker; it may be retried with the same id."""


class BrokerUnavailableError(PublishError):
    """The broker did not acknowledge within the delivery bound, or the local queue is full."""


class ProducerClosedError(PublishError):
    """The producer was closed before the event was sent."""
