"""Keyed hashes of contact addresses, the only trace of a person kept after erasure.

Addresses are normalised first (case, spaces, phone punctuation) so the same address
typed differently hashes the same, then HMAC-SHA256-ed with a secret key: without the
key the hashes cannot be matched against a list of guessed addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum


class AddressKind(StrEnum):
    """Which contact field an address came from."""

    EMAIL = "email"
    PHONE = "phone"
    POSTAL = "postal"
    SUBJECT = "subject"


_SPACES = re.compile(r"\s+")
_NOT_DIGIT = re.compile(r"[^0-9]")

MIN_KEY_BYTES = 16


def normalise(kind: AddressKind, address: str) -> str:
    """The canonical spelling of ``address`` for hashing."""
    if kind is AddressKind.EMAIL:
        return address.strip().lower()
    if kind is AddressKind.PHONE:
        digits = _NOT_DIGIT.sub("", address)
        return ("+" if address.strip().startswith("+") else "") + digits
    if kind is AddressKind.POSTAL:
        return _SPACES.sub(" ", address).strip().casefold()
    return address


@dataclass(frozen=True, slots=True)
class AddressHasher:
    """HMAC-SHA256 of normalised addresses under one secret key."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"hash key must be at least {MIN_KEY_BYTES} bytes")

    def __call__(self, kind: AddressKind, address: str) -> str:
        """Hex HMAC of the kind-tagged normalised address."""
        message = f"{kind.value}:{normalise(kind, address)}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()
