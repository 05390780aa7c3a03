"""The one HTTP client of the relay's processes: httpx, configured once.

A :func:`client` (synchronous: the partner sink's webhooks, the CLI's propagation
query) or an :func:`async_client` (the stream worker asking its peers) has one timeout
for connecting, sending and each read, sends the relay's ``User-Agent``, keeps its
connections alive for the next request to the same server, follows no redirect (a signed
or token-bearing request goes only where it was configured to go), and adds no retry of
its own (the caller decides, with :mod:`schemas.runtime.backoff`). It reads nothing from
the environment (no proxy variables, no ``.netrc``) and trusts the system's CA store, as
the standard library's clients did, rather than a bundled one.

Transport failures leave a :func:`reaching` block as the project's errors, raised from
the library's: :class:`NoAnswerError` when the server took longer than the timeout,
:class:`UnreachableError` otherwise (refused, reset, closed, a broken reply, a URL that
names no server). An HTTP
status is never an error here: each caller says which statuses it can live with.
Requests are not logged (httpx's request log is raised to WARNING): their URLs may name
a person.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import httpx

from schemas.errors import ConsentRelayError

PRODUCT: Final = "consent-relay"

# httpx logs every request's URL at INFO, and a URL may carry a person's id (the
# propagation query by subject) or a partner's credentials; failures reach our own logs.
logging.getLogger("httpx").setLevel(logging.WARNING)

_DROPPED: Final = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""What a kept-alive connection the server closed while idle fails with on reuse."""


class UnreachableError(ConsentRelayError):
    """The server could not be reached, or broke off the exchange."""

    def __init__(self, target: str, cause: Exception) -> None:
        super().__init__(f"{target} does not answer: {type(cause).__name__}: {cause}")
        self.cause_name = type(cause).__name__
        self.dropped = isinstance(cause, _DROPPED)
        """The connection was closed under the request: on a kept-alive connection, the
        server's idle timeout; a repeat on a new connection may succeed."""


class NoAnswerError(UnreachableError):
    """The server did not answer within the client's timeout."""


def user_agent(component: str) -> str:
    """The ``User-Agent`` of ``component`` (``consent-relay-partner-sink/1``)."""
    return f"{PRODUCT}-{component}/1"


def client(
    component: str, timeout_seconds: float, headers: Mapping[str, str] | None = None
) -> httpx.Client:
    """A synchronous client for ``component``; close it (or use it as a context manager)."""
    return httpx.Client(**_options(component, timeout_seconds, headers))


def async_client(
    component: str, timeout_seconds: float, headers: Mapping[str, str] | None = None
) -> httpx.AsyncClient:
    """An asyncio client for ``component``; ``aclose`` it (or ``async with``)."""
    return httpx.AsyncClient(**_options(component, timeout_seconds, headers))


def _options(
    component: str, timeout_seconds: float, headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """What both clients are built with: one timeout, the relay's headers, no redirects,
    nothing from the environment (proxies, .netrc), the system's CA store."""
    return {
        "timeout": httpx.Timeout(timeout_seconds),
        "headers": _headers(component, headers),
        "follow_redirects": False,
        "trust_env": False,
        "verify": ssl.create_default_context(),
    }


@contextmanager
def reaching(target: str) -> Iterator[None]:
    """Turn httpx's transport failures inside the block into :class:`UnreachableError` /
    :class:`NoAnswerError` naming ``target`` (e.g. ``the stream worker at <url>``)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise NoAnswerError(target, exc) from exc
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise UnreachableError(target, exc) from exc


def _headers(component: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    return {"User-Agent": user_agent(component), **(headers or {})}
