"""A ConsentStateRecorded's bytes, written from the state with each key's part encoded once.

Intake publishes a subject's whole state, with every kept decision in ``history``
(:func:`streams.intake.records.consent_state`), once per batch that changes it. Subjects are
skewed: a busy one keeps up to :data:`~streams.intake.resolution.HISTORY` decisions for each of
its dozens of keys and is published again in nearly every batch, for the one key that
changed; fastavro spends about a microsecond per record it writes, five per decision,
so such a state (256 decisions in the bench's mix) took over a millisecond to encode.
A key's history is an immutable tuple that a change replaces, so its encoded decisions
and ConsentEntry are kept by the tuple's identity (:mod:`streams.intake.by_identity`), and only
a changed key is encoded again; so are the restrictions.

The Avro binary encoding is written here, for this one record, from the shipped schema:
enum symbols' indexes and union branches are read from it, and the field order it was
written for is checked against it. At construction a sample state holding every part
of the record is written both here and by fastavro, and any difference (a schema that
changed in a way this writer does not know) stops the writer from being built: the
bytes are always fastavro's (tests/unit/streams/test_state_writer.py compares them over
generated states).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import fastavro

from schemas.codec import SHIPPED, schema_text
from schemas.errors import ConsentRelayError
from schemas.events import ConsentStateRecorded
from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from streams.intake.by_identity import ByIdentity
from streams.intake.records import StateAvro, consent_state
from streams.intake.resolution import ConsentKey, Decision, Erasure, SubjectState, Toggle

CACHED: Final = 20_000
"""Keys (and restriction lists) whose bytes are kept: about two batches' worth, which
keeps the busy subjects' (about 50 bytes per decision); one evicted is only encoded
again. Each costs the garbage collector two more tracked objects to traverse."""

_RECORDS: Final = {
    "ConsentStateRecorded": (
        "subject",
        "entries",
        "restricted",
        "erased",
        "updated_at",
        "history",
    ),
    "Subject": ("id", "kind"),
    "ConsentEntry": ("purpose", "regime", "recipient", "choice", "occurred_at", "event_id"),
    "ConsentHistory": ("decisions", "restrictions", "erasure"),
    "PastDecision": (
        "purpose",
        "regime",
        "recipient",
        "choice",
        "occurred_at",
        "event_id",
        "expires_at",
    ),
    "RestrictionToggled": ("restricted", "occurred_at", "event_id"),
    "ErasureRecorded": ("occurred_at", "event_id"),
}
"""Every record of the schema and the order of the fields this writer writes."""

_NULL: Final = b"\x00"
_FALSE, _TRUE = b"\x00", b"\x01"


class StateSchemaError(ConsentRelayError):
    """The shipped ConsentStateRecorded is not the one this writer was written for."""


@dataclass(frozen=True, slots=True)
class _Key:
    """One key's part of a state record."""

    key: ConsentKey
    decisions: bytes
    """Its history's PastDecision items, without the array's framing."""
    entry: bytes | None
    """The current choice's ConsentEntry (None for an empty history)."""


class StateWriter:
    """Writes the Avro body of a :class:`~streams.intake.records.StateAvro`."""

    def __init__(self, capacity: int = CACHED) -> None:
        raw = json.loads(schema_text(ConsentStateRecorded))
        records: dict[str, dict[str, Any]] = {}
        enums: dict[str, list[str]] = {}
        _collect(raw, records, enums)
        for name, expected in _RECORDS.items():
            found = tuple(f["name"] for f in records[name]["fields"])
            if found != expected:
                raise StateSchemaError(f"{name} has fields {found}; this writer writes {expected}")

        def symbols(enum: type[Any]) -> dict[str, bytes]:
            return {s: _long(i) for i, s in enumerate(enums[enum.__name__])}

        self._purposes = symbols(Purpose)
        self._regimes = symbols(Regime)
        self._choices = symbols(Choice)
        self._recipients = symbols(Recipient)
        self._kinds = symbols(SubjectKind)
        fields = {f["name"]: f["type"] for f in records["ConsentStateRecorded"]["fields"]}
        past = {f["name"]: f["type"] for f in records["PastDecision"]["fields"]}
        entry = {f["name"]: f["type"] for f in records["ConsentEntry"]["fields"]}
        history = {f["name"]: f["type"] for f in records["ConsentHistory"]["fields"]}
        self._history = _branch(fields["history"], "ConsentHistory")
        self._no_history = _branch(fields["history"], "null")
        self._recipient = _branch(past["recipient"], "Recipient")
        self._no_recipient = _branch(past["recipient"], "null")
        self._entry_recipient = _branch(entry["recipient"], "Recipient")
        self._entry_no_recipient = _branch(entry["recipient"], "null")
        self._expires = _branch(past["expires_at"], "long")
        self._no_expiry = _branch(past["expires_at"], "null")
        self._erasure = _branch(history["erasure"], "ErasureRecorded")
        self._no_erasure = _branch(history["erasure"], "null")
        self._keys: ByIdentity[tuple[Decision, ...], _Key] = ByIdentity(capacity)
        self._toggles: ByIdentity[tuple[Toggle, ...], bytes] = ByIdentity(capacity)
        self._last_time = (0, _long(0))
        self._check()

    def body(self, avro: StateAvro) -> bytes:
        """The Avro body of ``avro`` (:func:`~streams.intake.records.consent_state` or
        :func:`~streams.intake.records.state_record`): its subject, flags and time from the
        dict, its entries and history from its state (a whole dict's were made from it)."""
        state = avro.state
        subject: Mapping[str, Any] = avro["subject"]
        entries: list[tuple[str, str, str, bytes]] = []
        items: list[bytes] = []
        count = 0
        for key, history in state.decisions.items():
            part = self._keys.get(history)
            if part is None or part.key != key:
                part = self._keys.put(history, self._key(key, history))
            count += len(history)
            items.append(part.decisions)
            if part.entry is not None:
                entries.append((key[0], key[1], key[2] or "", part.entry))
        # As records.consent_state orders its entries (records.entry_order): by purpose,
        # regime, then recipient, none first; the keys are unique by those three.
        entries.sort()
        restrictions = self._toggles.get(state.restrictions)
        if restrictions is None:
            restrictions = self._toggles.put(state.restrictions, self._restricted(state))
        return b"".join(
            (
                _string(subject["id"]),
                self._kinds[subject["kind"]],
                _array(len(entries), [e[3] for e in entries]),
                _TRUE if avro["restricted"] else _FALSE,
                _TRUE if avro["erased"] else _FALSE,
                self._time(avro["updated_at"]),
                self._history,
                _array(count, items),
                restrictions,
                self._erased(state.erasure),
            )
        )

    def _key(self, key: ConsentKey, history: tuple[Decision, ...]) -> _Key:
        purpose, regime, recipient = key
        prefix = self._purposes[purpose] + self._regimes[regime]
        if recipient is None:
            each = prefix + self._no_recipient
            entry_prefix = prefix + self._entry_no_recipient
        else:
            symbol = self._recipients[recipient]
            each = prefix + self._recipient + symbol
            entry_prefix = prefix + self._entry_recipient + symbol
        # choice, time and event id: a decision's and, for the current one, its entry's.
        chosen = [self._choices[d.choice] + _long(d.at_ms) + _string(d.event_id) for d in history]
        decisions = b"".join(
            each
            + choice
            + (self._no_expiry if d.expires_ms is None else self._expires + _long(d.expires_ms))
            for d, choice in zip(history, chosen, strict=True)
        )
        entry = entry_prefix + chosen[-1] if history else None
        return _Key(key, decisions, entry)

    def _time(self, now_ms: int) -> bytes:
        # A batch's records share their time.
        if self._last_time[0] != now_ms:
            self._last_time = (now_ms, _long(now_ms))
        return self._last_time[1]

    def _restricted(self, state: SubjectState) -> bytes:
        return _array(
            len(state.restrictions),
            [
                (_TRUE if t.on else _FALSE) + _long(t.at_ms) + _string(t.event_id)
                for t in state.restrictions
            ],
        )

    def _erased(self, erasure: Erasure | None) -> bytes:
        if erasure is None:
            return self._no_erasure
        return self._erasure + _long(erasure.at_ms) + _string(erasure.event_id)

    def _check(self) -> None:
        """Write a state with every part both ways; a difference is a schema change."""
        sample = _sample()
        avro = consent_state("sample-ü", sample, 1_700_000_000_000)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, SHIPPED[ConsentStateRecorded].parsed, avro)
        if self.body(avro) != buf.getvalue():
            raise StateSchemaError("this writer's bytes differ from fastavro's for the schema")


def _sample() -> SubjectState:
    return SubjectState(
        SubjectKind.DEVICE,
        {
            (Purpose.MARKETING_SMS, Regime.CCPA, None): (
                Decision(-5, Choice.GRANTED, "g-1", 1 << 40),
                Decision(70, Choice.WITHDRAWN, "w-1"),
            ),
            (Purpose.MARKETING_EMAIL, Regime.GDPR, Recipient.CRITEO): (
                Decision(1 << 41, Choice.GRANTED, "ü" * 70),
            ),
            (Purpose.MARKETING_EMAIL, Regime.GDPR, None): (Decision(3, Choice.GRANTED, "g-2"),),
        },
        (Toggle(1, True, "r-1"), Toggle(2, False, "l-1")),
        Erasure(9, "e-1"),
    )


def _collect(schema: Any, records: dict[str, dict[str, Any]], enums: dict[str, list[str]]) -> None:
    """Every record and enum the schema defines, by short name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, records, enums)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            records[schema["name"]] = schema
            for field in schema["fields"]:
                _collect(field["type"], records, enums)
        elif kind == "enum":
            enums[schema["name"]] = schema["symbols"]
        elif kind == "array":
            _collect(schema["items"], records, enums)
        elif isinstance(kind, (dict, list)):
            _collect(kind, records, enums)


def _branch(union: Any, name: str) -> bytes:
    """The encoded index of the branch of ``union`` named ``name`` (short, primitive,
    or the type the branch's logical type is on)."""
    for index, branch in enumerate(union):
        named = branch.get("name") or branch.get("type") if isinstance(branch, dict) else branch
        if isinstance(named, str) and named.rsplit(".", 1)[-1] == name:
            return _long(index)
    raise StateSchemaError(f"no {name} branch in {union}")


def _array(count: int, items: list[bytes]) -> bytes:
    """One block, as fastavro writes it: the count, the items, then 0 (empty: just 0)."""
    if not count:
        return _NULL
    return b"".join((_long(count), *items, _NULL))


def _string(value: str) -> bytes:
    data = value.encode()
    return _long(len(data)) + data


def _long(value: int) -> bytes:
    """Avro's long: zig-zag, then a base-128 varint."""
    z = (value << 1) ^ (value >> 63)
    if z < 0x80:
        return _ONE_BYTE[z]
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_ONE_BYTE: Final = tuple(bytes((z,)) for z in range(0x80))
