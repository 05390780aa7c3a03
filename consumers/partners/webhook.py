"""Delivering one signed webhook to a partner, and saying whether a failure is worth a retry.

A 2xx answer is success. 5xx, 408, 429, timeouts and connection failures raise
:class:`~consumers.protocol.RetriableSinkError` (the partner is unwell; try again later);
any other answer raises :class:`~consumers.protocol.PermanentSinkError` (the partner
refuses this request and will keep refusing it). Redirects are not followed: a signed
request goes only where it was configured to go. Every request carries the instruction
id as ``Idempotency-Key`` so the partner can drop a redelivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlparse

import httpx

from consumers.partners.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)
from consumers.protocol import PermanentSinkError, RetriableSinkError
from schemas.runtime import http_client
from schemas.runtime.http_client import NoAnswerError, UnreachableError

_RETRIABLE_4XX = {408, 429}
COMPONENT = "partner-sink"
USER_AGENT = http_client.user_agent(COMPONENT)


class WebhookClient:
    """POSTs signed JSON bodies to one partner's endpoint, on one kept-alive connection."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        # Credentials in the URL are not sent (as before): the signature authenticates.
        self._url = httpx.URL(url).copy_with(userinfo=b"", fragment=None)
        self._secret = secret
        self._timeout = timeout_seconds
        self._clock = clock
        self._http: httpx.Client | None = None
        self._kept_alive = False
        """Whether the last exchange left its connection open for the next request."""

    def post(self, body: bytes, idempotency_key: str) -> int:
        """Deliver ``body``; the 2xx status on success, else a SinkError."""
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key,
        }
        try:
            status = self._send(body, headers)
        except NoAnswerError as exc:
            self.close()
            raise RetriableSinkError(f"partner did not answer within {self._timeout}s") from exc
        except UnreachableError as exc:
            self.close()
            raise RetriableSinkError(f"partner unreachable: {exc.cause_name}") from exc
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _RETRIABLE_4XX:
            raise RetriableSinkError(f"partner answered HTTP {status}")
        raise PermanentSinkError(f"partner refused the request: HTTP {status}")

    def close(self) -> None:
        """Close the kept-alive connection, if any."""
        if self._http is not None:
            self._http.close()
            self._http = None
        self._kept_alive = False

    def _send(self, body: bytes, headers: dict[str, str]) -> int:
        """POST on the kept-alive connection; a connection the partner closed while idle
        is replaced once (the idempotency key makes a repeat harmless)."""
        reused = self._kept_alive
        try:
            return self._exchange(body, headers)
        except UnreachableError as exc:
            self.close()
            if not reused or not exc.dropped or isinstance(exc, NoAnswerError):
                raise
            return self._exchange(body, headers)

    def _exchange(self, body: bytes, headers: dict[str, str]) -> int:
        if self._http is None:
            self._http = http_client.client(COMPONENT, self._timeout)
        with http_client.reaching("the partner"):
            response = self._http.post(self._url, content=body, headers=headers)
        # HTTP/1.0, or "Connection: close": the partner closes after this answer.
        self._kept_alive = response.http_version != "HTTP/1.0" and (
            response.headers.get("Connection", "").lower() != "close"
        )
        return response.status_code
