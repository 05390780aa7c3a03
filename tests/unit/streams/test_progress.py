"""Intake's progress records: what intake writes is what the gate reads, and nothing else
passes for one."""

from __future__ import annotations

import pytest

from streams.intake.progress import IntakeProgressed, ProgressRecordError, decode, encode


def test_a_record_reads_back_as_written() -> None:
    record = IntakeProgressed(partition=4, offset=1_234_567_890_123, at_ms=1_700_000_000_000)
    key, value = encode(record)
    assert key == b"4"
    assert decode(key, value) == record


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, b'{"o":1,"t":2}'),
        (b"x", b'{"o":1,"t":2}'),
        (b"1", None),
        (b"1", b"not json"),
        (b"1", b'{"o":1}'),
        (b"1", b'{"o":"1","t":2}'),
        (b"1", b'{"o":1.5,"t":2}'),
        (b"1", b"[1, 2]"),
    ],
)
def test_anything_else_is_refused(key: bytes | None, value: bytes | None) -> None:
    with pytest.raises(ProgressRecordError):
        decode(key, value)
