"""Malformed records of many kinds, each of which the stream must dead-letter.

Every kind is a small builder of (key, value) from a valid ConsentChanged taken apart:
bytes that are no Avro at all, Avro framing that lies (bad magic, unknown or wrong
schema id, an unknown fingerprint, a record of another type), bodies that end early or
carry an enum index or UTF-8 that cannot be, and well-formed Avro whose values the
contract forbids (an id that is not a UUID, an event time in the future, control
characters or nothing in a subject id, a purpose withdrawn that rests on contract,
no purposes, a purpose twice, a grant expiring before it was given). Two kinds are
about 1 MB (the broker takes them; a dead letter copying the whole value would not
fit the producer's limit). Values are built with fastavro and the shipped schemas,
bypassing the records' own validation, as a buggy or hostile producer would.
"""

from __future__ import annotations

import io
import json
import random
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import fastavro

from schemas.codec import SHIPPED, SINGLE_OBJECT_MAGIC, subject_name
from schemas.converters import to_dict
from schemas.events import (
    ConsentChanged,
    DataEventCaptured,
    PropagationReceipt,
    Subject,
)
from schemas.taxonomy import (
    Choice,
    PolicyVersion,
    Purpose,
    Regime,
    Source,
    SubjectKind,
)

OVERSIZED_BYTES: Final = 1_000_000
"""About the size of an oversized value: under the broker's 1 MiB record limit, over what
a dead letter carrying it whole may be."""
CONTROL_CHARACTERS: Final = ("\x00", "\x07", "\x08", "\x1b", "\n", "\r", "\t", "\x7f", "\x85")

Record = tuple[bytes | None, bytes | None]
"""A key and a value as published (either may be None)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What the builders need: the registered schema ids and a way to a valid base."""

    consent_id: int
    receipt_id: int
    data_event_id: int
    now: datetime

    def base(self, rng: random.Random) -> dict[str, Any]:
        """The Avro dict of a valid withdrawal of marketing email by a fresh subject."""
        at = self.now - timedelta(minutes=rng.randint(1, 50))
        event = ConsentChanged(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            subject=Subject(id=f"faults-bad-{rng.getrandbits(40):010x}", kind=SubjectKind.ACCOUNT),
            occurred_at=at,
            recorded_at=at,
            source=Source.PRIVACY_SETTINGS,
            regime=Regime.GDPR,
            policy_version=PolicyVersion.V2019_07_15,
            choice=Choice.WITHDRAWN,
            purposes=(Purpose.MARKETING_EMAIL,),
        )
        return to_dict(event)

    def wire(self, avro: dict[str, Any], schema_id: int | None = None) -> bytes:
        """Confluent wire format of a ConsentChanged dict (no validation)."""
        return _header(self.consent_id if schema_id is None else schema_id) + body(avro)


def _header(schema_id: int) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id)


def body(avro: dict[str, Any], event_type: type[Any] = ConsentChanged) -> bytes:
    """The Avro body of ``avro`` under the shipped schema of ``event_type``."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, SHIPPED[event_type].parsed, avro)
    return buf.getvalue()


def _symbols(field: str) -> int:
    """How many symbols an enum field of ConsentChanged has on the wire (the schema may
    keep more than the Python enum, e.g. Choice's UNKNOWN)."""
    schema = json.loads(SHIPPED[ConsentChanged].text)
    [found] = [f["type"]["symbols"] for f in schema["fields"] if f["name"] == field]
    return len(found)


def _key(avro: dict[str, Any]) -> bytes:
    return str(avro["subject"]["id"]).encode()


def _garbage(rng: random.Random, size: int) -> bytes:
    # Never a magic byte: the record must be garbage, not a lucky valid frame.
    first = rng.choice([b for b in range(256) if b not in (0x00, 0xC3)])
    return bytes([first]) + rng.randbytes(size - 1)


def _with(ctx: Context, rng: random.Random, **fields: Any) -> Record:
    avro = ctx.base(rng)
    for name, value in fields.items():
        if name == "subject_id":
            avro["subject"]["id"] = value
        else:
            avro[name] = value
    return _key(avro), ctx.wire(avro)


def garbage(ctx: Context, rng: random.Random) -> Record:
    """Random bytes."""
    return b"faults-garbage", _garbage(rng, rng.randint(1, 300))


def empty(ctx: Context, rng: random.Random) -> Record:
    """An empty value."""
    return b"faults-empty", b""


def tombstone(ctx: Context, rng: random.Random) -> Record:
    """A null value (a tombstone on a topic that is not compacted)."""
    return b"faults-tombstone", None


def keyless(ctx: Context, rng: random.Random) -> Record:
    """Random bytes without a key."""
    return None, _garbage(rng, rng.randint(5, 300))


def short_header(ctx: Context, rng: random.Random) -> Record:
    """A wire-format magic byte and less than a schema id."""
    return b"faults-short", b"\x00" + rng.randbytes(rng.randint(0, 3))


def bad_magic(ctx: Context, rng: random.Random) -> Record:
    """A valid event whose magic byte is neither wire format nor single-object."""
    avro = ctx.base(rng)
    return _key(avro), b"\x01" + ctx.wire(avro)[1:]


def unknown_schema_id(ctx: Context, rng: random.Random) -> Record:
    """A schema id the registry never issued."""
    avro = ctx.base(rng)
    return _key(avro), ctx.wire(avro, 2_000_000_000 + rng.randrange(50))


def wrong_schema_id(ctx: Context, rng: random.Random) -> Record:
    """A ConsentChanged body framed with the id of the PropagationReceipt schema."""
    avro = ctx.base(rng)
    return _key(avro), ctx.wire(avro, ctx.receipt_id)


def unknown_fingerprint(ctx: Context, rng: random.Random) -> Record:
    """Single-object encoding with a fingerprint of no shipped schema."""
    avro = ctx.base(rng)
    return _key(avro), SINGLE_OBJECT_MAGIC + rng.randbytes(8) + body(avro)


def unknown_type(ctx: Context, rng: random.Random) -> Record:
    """A valid record of a type that does not belong on the consent topic."""
    avro = ctx.base(rng)
    data = DataEventCaptured(
        event_id=avro["event_id"],
        subject=Subject(id=avro["subject"]["id"], kind=SubjectKind.ACCOUNT),
        occurred_at=ctx.now,
        purpose=Purpose.MARKETING_EMAIL,
        payload=b"{}",
    )
    return _key(avro), _header(ctx.data_event_id) + body(to_dict(data), DataEventCaptured)


def truncated(ctx: Context, rng: random.Random) -> Record:
    """A valid event cut short."""
    avro = ctx.base(rng)
    whole = ctx.wire(avro)
    return _key(avro), whole[: rng.randint(5, len(whole) - 1)]


def enum_out_of_range(ctx: Context, rng: random.Random) -> Record:
    """A valid event whose choice is an enum index past the last symbol."""
    avro = ctx.base(rng)
    withdrawn = ctx.wire(avro)
    granted = ctx.wire({**avro, "choice": Choice.GRANTED.value})
    [at] = [i for i, (a, b) in enumerate(zip(withdrawn, granted, strict=True)) if a != b]
    index = rng.randint(_symbols("choice"), 63)  # zig-zag of <= 63 is one byte
    return _key(avro), withdrawn[:at] + bytes([index << 1]) + withdrawn[at + 1 :]


def invalid_utf8(ctx: Context, rng: random.Random) -> Record:
    """A subject id whose bytes are not UTF-8."""
    avro = ctx.base(rng)
    placeholder = avro["subject"]["id"].encode()
    value = ctx.wire(avro).replace(placeholder, placeholder[:-2] + b"\xff\xfe", 1)
    return placeholder, value


def not_a_uuid(ctx: Context, rng: random.Random) -> Record:
    """An event id that is not a UUID."""
    return _with(ctx, rng, event_id=f"not-a-uuid-{rng.getrandbits(32)}")


def future_time(ctx: Context, rng: random.Random) -> Record:
    """An event time a day or more ahead of every clock."""
    later = ctx.now + timedelta(days=rng.randint(1, 3650))
    return _with(ctx, rng, occurred_at=later, recorded_at=later)


def control_character(ctx: Context, rng: random.Random) -> Record:
    """A control character in the subject id (and so in the key)."""
    char = rng.choice(CONTROL_CHARACTERS)
    subject = f"faults-ctl-{rng.getrandbits(24):06x}"
    at = rng.randint(0, len(subject))
    return _with(ctx, rng, subject_id=subject[:at] + char + subject[at:])


def blank_subject(ctx: Context, rng: random.Random) -> Record:
    """An empty or blank subject id."""
    return _with(ctx, rng, subject_id=rng.choice(("", " ", "   ")))


def unrefusable_purpose(ctx: Context, rng: random.Random) -> Record:
    """A withdrawal of a purpose that rests on contract or law."""
    purpose = rng.choice((Purpose.ACCOUNT_MANAGEMENT, Purpose.LEGAL_COMPLIANCE, Purpose.CUSTOMS))
    return _with(ctx, rng, purposes=[purpose.value])


def no_purposes(ctx: Context, rng: random.Random) -> Record:
    """A choice about no purpose at all."""
    return _with(ctx, rng, purposes=[])


def repeated_purpose(ctx: Context, rng: random.Random) -> Record:
    """The same purpose listed twice."""
    return _with(ctx, rng, purposes=[Purpose.MARKETING_EMAIL.value] * 2)


def expired_grant(ctx: Context, rng: random.Random) -> Record:
    """A grant that expires before it was given."""
    avro = ctx.base(rng)
    return _with(
        ctx,
        rng,
        choice=Choice.GRANTED.value,
        occurred_at=avro["occurred_at"],
        expires_at=avro["occurred_at"] - timedelta(seconds=rng.randint(1, 3600)),
    )


def oversized_id(ctx: Context, rng: random.Random) -> Record:
    """A well-framed event of about 1 MB: its subject id is most of it."""
    avro = ctx.base(rng)
    filler = OVERSIZED_BYTES - len(ctx.wire(avro)) - rng.randint(0, 2000)
    avro["subject"]["id"] += "x" * filler
    return b"faults-oversized-id", ctx.wire(avro)


def oversized_garbage(ctx: Context, rng: random.Random) -> Record:
    """About 1 MB of random bytes."""
    return b"faults-oversized-garbage", _garbage(rng, OVERSIZED_BYTES - rng.randint(0, 2000))


Builder = Callable[[Context, random.Random], Record]
KINDS: Final[dict[str, Builder]] = {
    "garbage bytes": garbage,
    "empty value": empty,
    "null value": tombstone,
    "keyless garbage": keyless,
    "short header": short_header,
    "bad magic byte": bad_magic,
    "unknown schema id": unknown_schema_id,
    "wrong schema id": wrong_schema_id,
    "unknown fingerprint": unknown_fingerprint,
    "unknown type": unknown_type,
    "truncated avro": truncated,
    "enum index out of range": enum_out_of_range,
    "invalid utf-8": invalid_utf8,
    "event id not a uuid": not_a_uuid,
    "event time in the future": future_time,
    "control character in id": control_character,
    "blank subject id": blank_subject,
    "unrefusable purpose withdrawn": unrefusable_purpose,
    "no purposes": no_purposes,
    "purpose listed twice": repeated_purpose,
    "grant expiring before given": expired_grant,
}
"""Kinds of ordinary size, published in equal shares."""
OVERSIZED: Final[dict[str, Builder]] = {
    "oversized id (~1 MB)": oversized_id,
    "oversized garbage (~1 MB)": oversized_garbage,
}


def context(schema_ids: dict[str, int], now: datetime | None = None) -> Context:
    """A builder context from the registry's ids (``register_all``'s answer)."""
    return Context(
        consent_id=schema_ids[subject_name(ConsentChanged)],
        receipt_id=schema_ids[subject_name(PropagationReceipt)],
        data_event_id=schema_ids[subject_name(DataEventCaptured)],
        now=now or datetime.now(UTC).replace(microsecond=0),
    )


def burst(ctx: Context, total: int, oversized: int, seed: int) -> list[tuple[str, Record]]:
    """``total`` malformed records (``oversized`` of them ~1 MB), kinds interleaved."""
    rng = random.Random(seed)
    names = list(KINDS)
    out = [(names[i % len(names)], KINDS[names[i % len(names)]]) for i in range(total - oversized)]
    big = list(OVERSIZED.items())
    out += [big[i % len(big)] for i in range(oversized)]
    rng.shuffle(out)
    return [(name, build(ctx, rng)) for name, build in out]
