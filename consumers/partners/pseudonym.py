"""Per-partner pseudonymous ids: what a partner is told instead of the internal subject id.

The id is ``hex(HMAC-SHA256(partner_key, subject_id))``. Each partner has its own key
(by default derived from one master key and the partner's name), so two partners
cannot join their data on our ids, and no partner can recover the internal id.
"""

from __future__ import annotations

import hashlib
import hmac


def partner_key(master_key: bytes, partner: str) -> bytes:
    """The key of one partner, derived from the master key and the partner's name."""
    label = b"consent-relay/partner/" + partner.encode("utf-8")
    return hmac.new(master_key, label, hashlib.sha256).digest()


def pseudonymous_id(key: bytes, subject_id: str) -> str:
    """The id a partner keyed with ``key`` knows this subject by (64 hex characters)."""
    return hmac.new(key, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()


class Pseudonyms:
    """:func:`pseudonymous_id` under one partner's key, keyed once: each id then costs a
    copy of the keyed HMAC instead of keying a new one (a pipeline computes one per
    instruction). Not shared across threads: a partner's pipeline has its own."""

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, subject_id: str) -> str:
        """The id the partner knows this subject by."""
        mac = self._keyed.copy()
        mac.update(subject_id.encode("utf-8"))
        return mac.hexdigest()
