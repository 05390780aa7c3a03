"""Deterministic ids: the one way every package derives an id from a name.

An instruction's id, its receipt's, a batch of answers' and an imported row's event id
are UUID version 5 (RFC 4122: SHA-1 of a namespace and a name), so processing the same
input again yields the same id and every consumer deduplicates on it. :func:`uuid5`
returns the text form ``str(uuid.uuid5(namespace, name))`` does, at a third of its cost
(no UUID object on the way): the stream derives one per destination of every event.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

URL: Final = uuid.NAMESPACE_URL
"""The namespace of the relay's own ids (instructions, receipts, answers)."""


def uuid5(name: str, namespace: uuid.UUID = URL) -> str:
    """``str(uuid.uuid5(namespace, name))``, computed on the bytes."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])  # noqa: S324 - RFC 4122 v5
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
