"""Delivering one signed webhook to a partner, and saying whether a failure is worth a retry.

A 2xx answer is success. 5xx, 408, 429, timeouts and connection failures raise
:class:`~consumers.protocol.RetriableSinkError` (the partner is unwell; try again later);
any other answer raises :class:`~consumers.protocol.PermanentSinkError` (the partner
refuses this request and will keep refusing it). Redirects are not followed: a signed
request goes only where it was configured to go. Every request carries the instruction
id as ``Idempotency-Key`` so the partner can drop a redelivery.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from urllib.parse import urlparse

from consumers.partners.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)
from consumers.protocol import PermanentSinkError, RetriableSinkError

_RETRIABLE_4XX = {408, 429}
USER_AGENT = "consent-relay-partner-sink/1"


class WebhookClient:
    """POSTs signed JSON bodies to one partner's endpoint."""

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
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        self._secret = secret
        self._timeout = timeout_seconds
        self._clock = clock
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, idempotency_key: str) -> int:
        """Deliver ``body``; the 2xx status on success, else a SinkError."""
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key,
        }
        try:
            status = self._send(body, headers)
        except TimeoutError as exc:
            self.close()
            raise RetriableSinkError(f"partner did not answer within {self._timeout}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RetriableSinkError(f"partner unreachable: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _RETRIABLE_4XX:
            raise RetriableSinkError(f"partner answered HTTP {status}")
        raise PermanentSinkError(f"partner refused the request: HTTP {status}")

    def close(self) -> None:
        """Close the kept-alive connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, body: bytes, headers: dict[str, str]) -> int:
        """POST on the kept-alive connection; a connection the partner closed while idle
        is replaced once (the idempotency key makes a repeat harmless)."""
        reused = self._conn is not None
        try:
            return self._exchange(body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            return self._exchange(body, headers)

    def _exchange(self, body: bytes, headers: dict[str, str]) -> int:
        if self._conn is None:
            self._conn = self._connection()
        self._conn.request("POST", self._path, body=body, headers=headers)
        response = self._conn.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return response.status

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
