"""Every way a service emits consent: a Python client, an HTTP gateway, a CLI, bulk import.

All of them build :mod:`schemas.events` records (so invalid input is rejected, naming the
field, before anything is sent) and publish them through one :class:`~producers.publisher.
Publisher`: an idempotent ``acks=all`` producer writing the Confluent wire format to
``Topics.consent``, keyed by subject id so one person's choices stay in order.

The client is :class:`producers.client.ConsentClient` (blocking) and
:class:`producers.aio.AsyncConsentClient` (asyncio); the gateway runs with
``python -m producers.gateway``; the CLI is ``consent-relay`` (:mod:`producers.cli`).
"""

from producers.aio import AsyncConsentClient
from producers.client import ConsentClient
from producers.errors import BrokerUnavailableError, PublishError
from producers.publisher import Published

__all__ = [
    "AsyncConsentClient",
    "BrokerUnavailableError",
    "ConsentClient",
    "PublishError",
    "Published",
]
