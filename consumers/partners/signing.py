"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"`` with the partner's secret.

The timestamp is signed with the body so a captured request cannot be replayed later
with a fresh timestamp; partners reject requests whose timestamp is too old.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "X-ConsentRelay-Signature"
TIMESTAMP_HEADER: Final = "X-ConsentRelay-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
SCHEME: Final = "sha256="


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value: ``sha256=<hex of HMAC(secret, "<timestamp>.<body>")>``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp: int,
    body: bytes,
    header: str,
    *,
    now: int,
    tolerance_seconds: int = 300,
) -> bool:
    """Whether ``header`` signs ``body`` at ``timestamp``, which is within the tolerance."""
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)
