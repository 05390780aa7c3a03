"""Webhook signatures: the documented scheme, checked against an independent vector."""

from __future__ import annotations

from consumers.partners.signing import SCHEME, signature, verify

SECRET = b"topsecret-topsecret"
BODY = b'{"a":1}'
# printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'topsecret-topsecret'
OPENSSL_VECTOR = "ed9a96ae88fc6cd9e1605a5c26b8d6b4c9de0c2fbd86f73745fcb3dc3ff993ba"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    assert signature(SECRET, 1_700_000_000, BODY) == SCHEME + OPENSSL_VECTOR


def test_verify_accepts_our_signature_within_tolerance() -> None:
    header = signature(SECRET, 1_700_000_000, BODY)
    assert verify(SECRET, 1_700_000_000, BODY, header, now=1_700_000_100)


def test_verify_rejects_wrong_secret_body_timestamp_or_age() -> None:
    header = signature(SECRET, 1_700_000_000, BODY)
    assert not verify(b"another-secret-value", 1_700_000_000, BODY, header, now=1_700_000_000)
    assert not verify(SECRET, 1_700_000_000, b'{"a":2}', header, now=1_700_000_000)
    assert not verify(SECRET, 1_700_000_001, BODY, header, now=1_700_000_001)
    assert not verify(SECRET, 1_700_000_000, BODY, header, now=1_700_000_301)


def test_signature_changes_with_timestamp() -> None:
    assert signature(SECRET, 1, BODY) != signature(SECRET, 2, BODY)
