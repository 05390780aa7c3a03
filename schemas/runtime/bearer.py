"""Bearer tokens on the relay's read endpoints: one rule for every server (RFC 6750).

The stream worker's ``/propagation`` views and a sink's API (the marketing sink's
``/v1/may-contact``) answer about a person, so each asks a :class:`BearerGuard` before
answering; ``/metrics`` and health endpoints stay open. A missing token and a wrong one
both get 401 with a ``WWW-Authenticate: Bearer`` challenge. A server with no token
configured refuses every such request the same way: closed, never open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import AfterValidator

from schemas.runtime.settings import Secret

REALM: Final = "consent-relay"
MIN_TOKEN_CHARS: Final = 16
"""Shortest API token a process accepts: a guessable token protects nothing."""


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request is refused, and what the answer carries."""

    challenge: str
    """The ``WWW-Authenticate`` header value."""
    reason: str
    status: int = 401

    def body(self) -> dict[str, str]:
        """The JSON body of the answer."""
        return {"error": self.reason}


_MISSING = Denial(f'Bearer realm="{REALM}"', "a bearer token is required")
_INVALID = Denial(f'Bearer realm="{REALM}", error="invalid_token"', "the bearer token is not valid")
_CLOSED = Denial(
    f'Bearer realm="{REALM}", error="invalid_token"',
    "no API token is configured on this server, so it answers no one",
)


@dataclass(frozen=True, slots=True)
class BearerGuard:
    """Checks a request's ``Authorization`` header against the configured token."""

    token: Secret | None

    def check(self, authorization: str | None) -> Denial | None:
        """None if the request may be answered, else the refusal to send."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        presented = credentials.strip()
        # RFC 7235: the scheme is case-insensitive. A request without credentials is
        # told a token is needed before anything is said about this server's set-up.
        if scheme.lower() != "bearer" or not presented:
            return _MISSING
        if self.token is None:
            return _CLOSED
        if not self.token.matches(presented):
            return _INVALID
        return None


def _long_enough(token: Secret | None) -> Secret | None:
    """Refuse a configured token too short to be secret (without showing it)."""
    if token is not None and len(token.reveal()) < MIN_TOKEN_CHARS:
        raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters")
    return token


ApiToken = Annotated[Secret | None, AfterValidator(_long_enough)]
"""The type of a settings field holding a server's API token: unset, the server answers
no one (:class:`BearerGuard`); set, it is at least :data:`MIN_TOKEN_CHARS` long."""


def authorization(token: Secret) -> dict[str, str]:
    """The header a client sends with ``token``."""
    return {"Authorization": f"Bearer {token.reveal()}"}
