"""Dead letters that always fit: what every stage writes when it gives up on a message.

A dead letter keeps why a message failed and where it came from, so that it can be
fixed and replayed. It used to copy the whole original value; a value of nearly the
broker's limit then made a dead letter larger than a producer may send, and the stage
that could not write it lost the messages behind it. Here the original key and value
are kept whole when they are small, and otherwise as a bounded excerpt together with
the original's size and SHA-256 digest: the source topic, partition and offset say
where to fetch the whole of it, and the digest proves it is the same message.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from schemas.events import DeadLettered

EXCERPT_BYTES = 4096
"""The most of an original value a dead letter keeps."""

KEY_EXCERPT_BYTES = 1024
"""The most of an original key a dead letter keeps (it is also the dead letter's key)."""

REASON_CHARS = 2000
"""The longest reason kept; an error's text can quote what it failed on."""


def excerpt(data: bytes | None, limit: int) -> bytes | None:
    """``data`` if it is at most ``limit`` bytes, else its first ``limit`` bytes."""
    if data is None or len(data) <= limit:
        return data
    return data[:limit]


def reason_of(error: BaseException) -> str:
    """What a dead letter's ``reason`` says of ``error``: why, without the field, which
    is the dead letter's ``field_name`` (an :class:`~schemas.errors.InvalidEventError`'s
    ``reason``); for an error that names no field, its message."""
    return getattr(error, "reason", "") or str(error)


def of_error(
    error: BaseException,
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    at: datetime,
) -> DeadLettered:
    """The dead letter of the message at ``topic[partition]@offset`` that ``stage`` gave
    up on with ``error``: the one way every stage and sink builds one."""
    return build(
        stage=stage,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        error_class=type(error).__name__,
        field_name=getattr(error, "field_name", None),
        reason=reason_of(error),
        at=at,
    )


def build(
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error_class: str,
    field_name: str | None,
    reason: str,
    at: datetime,
) -> DeadLettered:
    """The dead letter of the message at ``topic[partition]@offset``, bounded in size."""
    notes = []
    if key is not None and len(key) > KEY_EXCERPT_BYTES:
        notes.append(f"key of {len(key)} bytes cut to its first {KEY_EXCERPT_BYTES}")
    if value is not None and len(value) > EXCERPT_BYTES:
        notes.append(
            f"value of {len(value)} bytes kept as an excerpt of its first {EXCERPT_BYTES} "
            "(whole at the source coordinates; original_sha256 identifies it)"
        )
    reason = reason or error_class
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    if notes:
        reason = f"{reason} [{'; '.join(notes)}]"
    return DeadLettered(
        dead_letter_id=str(uuid.uuid4()),
        stage=stage,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        original_key=excerpt(key, KEY_EXCERPT_BYTES),
        original_value=excerpt(value, EXCERPT_BYTES),
        error_class=error_class,
        field_name=field_name[:REASON_CHARS] if field_name else field_name,
        reason=reason,
        dead_lettered_at=at,
        original_size=None if value is None else len(value),
        original_sha256=None if value is None else hashlib.sha256(value).hexdigest(),
    )
