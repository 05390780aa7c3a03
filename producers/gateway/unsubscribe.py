"""Signed one-click unsubscribe links (RFC 8058).

A marketing email carries ``List-Unsubscribe: <https://.../v1/unsubscribe?s=<subject>&
sig=<hmac>>`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The signature is
HMAC-SHA256 of the subject id under ``GATEWAY_UNSUBSCRIBE_KEY``, in hex, so only links
the platform issued withdraw anything.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlencode

from schemas.errors import ValidationError
from schemas.validation import identifier_problem

PATH: Final = "/v1/unsubscribe"
ONE_CLICK_FIELD: Final = "List-Unsubscribe"
ONE_CLICK_VALUE: Final = "One-Click"


def sign(key: str, subject_id: str) -> str:
    """The link signature for ``subject_id``."""
    return hmac.new(key.encode(), subject_id.encode(), hashlib.sha256).hexdigest()


def verify(key: str, subject_id: str, signature: str) -> bool:
    """Whether ``signature`` was made with ``key`` for ``subject_id`` (constant time)."""
    return hmac.compare_digest(sign(key, subject_id).encode(), signature.lower().encode())


def link(base_url: str, key: str, subject_id: str) -> str:
    """The full one-click unsubscribe URL for ``subject_id`` on the gateway at ``base_url``.

    An id the contract refuses raises ValidationError: the gateway would refuse the
    withdrawal such a link asks for, so the link is never issued.
    """
    problem = identifier_problem(subject_id)
    if problem is not None:
        raise ValidationError("subject.id", problem)
    query = urlencode({"s": subject_id, "sig": sign(key, subject_id)})
    return f"{base_url.rstrip('/')}{PATH}?{query}"
