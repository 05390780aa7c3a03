"""Dead letters stay small enough to publish, and still identify their original."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from schemas import deadletters
from schemas.converters import to_dict
from schemas.errors import DecodeError, ValidationError
from schemas.events import DeadLettered
from streams.intake.records import dead_letter

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


def _of(error: BaseException) -> DeadLettered:
    coordinates = {"topic": "consent.events", "partition": 1, "offset": 7}
    return deadletters.of_error(
        error, stage="sink.marketing", key=b"k", value=b"v", at=AT, **coordinates
    )


def test_the_reason_says_why_and_the_field_is_named_apart() -> None:
    letter = _of(ValidationError("subject.id", "must not be empty"))
    assert (letter.error_class, letter.field_name) == ("ValidationError", "subject.id")
    assert letter.reason == "must not be empty"


def test_an_error_naming_no_field_gives_its_message() -> None:
    letter = _of(RuntimeError("store refused the row"))
    assert (letter.error_class, letter.field_name) == ("RuntimeError", None)
    assert letter.reason == "store refused the row"
    assert _of(DecodeError("not Avro")).reason == "not Avro"


def test_stream_and_sink_dead_letters_say_the_same_of_one_error() -> None:
    error = ValidationError("purposes", "unknown purpose 'x'")
    from_stream = dead_letter(
        stage="sink.marketing",
        topic="consent.events",
        partition=1,
        offset=7,
        key=b"k",
        value=b"v",
        error=error,
        now_ms=int(AT.timestamp() * 1000),
    )
    from_sink = to_dict(_of(error))
    different = {
        name
        for name in from_sink
        if name != "dead_letter_id" and from_sink[name] != from_stream[name]
    }
    assert different == set()
