"""Dead letters stay small enough to publish, and still identify their original."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from schemas import deadletters
from schemas.converters import to_dict
from schemas.events import DeadLettered

AT = datetime(2026, 12, 6, tzinfo=UTC)


def _build(key: bytes | None, value: bytes | None, reason: str = "bad") -> DeadLettered:
    return deadletters.build(
        stage="stream.intake",
        topic="consent.events",
        partition=3,
        offset=41,
        key=key,
        value=value,
        error_class="DecodeError",
        field_name=None,
        reason=reason,
        at=AT,
    )


def test_a_small_original_is_kept_whole() -> None:
    letter = _build(b"user-1", b"\x00abc")
    assert letter.original_key == b"user-1"
    assert letter.original_value == b"\x00abc"
    assert letter.original_size == 4
    assert letter.original_sha256 == hashlib.sha256(b"\x00abc").hexdigest()
    assert letter.reason == "bad"


def test_a_huge_original_is_an_excerpt_with_its_size_and_digest() -> None:
    value = bytes(range(256)) * 4000
    letter = _build(b"k" * 5000, value, reason="x" * 10_000)
    assert letter.original_value == value[: deadletters.EXCERPT_BYTES]
    assert letter.original_key == b"k" * deadletters.KEY_EXCERPT_BYTES
    assert letter.original_size == len(value)
    assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
    assert len(letter.reason) < deadletters.REASON_CHARS + 400
    assert "excerpt" in letter.reason
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "consent.events",
        3,
        41,
    )
    assert len(repr(to_dict(letter))) < 40_000


def test_no_value_has_no_size_or_digest() -> None:
    letter = _build(None, None)
    assert (letter.original_size, letter.original_sha256) == (None, None)
