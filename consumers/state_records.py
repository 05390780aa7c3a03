"""Consent-state records read in bulk: the contract's checks without its generic walk.

Seeding a sink reads every subject's :class:`~schemas.events.ConsentStateRecorded`
once. Through :func:`schemas.converters.from_dict` two thirds of the time per record
went to the generic field walk (a plan per nested record, a set of unknown keys, a
dotted name per field), none of which can fail on a body fastavro has already read
against the shipped schema: the fields are there and have their Avro types. What can
still be wrong is checked here: an enum symbol this code does not know (``UNKNOWN``)
and a subject id the contract refuses (``Subject.__post_init__``). On any doubt the
record goes through ``from_dict`` after all, so a refusal names the same field for the
same reason as the full decode does.

A store that needs only a few fields of each state can take the checked Avro dict
itself (:class:`StateAvro`, :func:`decode_state_avro`), its times the epoch
milliseconds on the wire: at a million subjects, building the typed records (a frozen
dataclass per entry) cost as much as reading the bytes, and a datetime per time a
fifth of the read, for fields the store then took apart again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypedDict, cast

from consumers.decoding import UnexpectedEventError
from schemas.codec import EventDecoder
from schemas.converters import from_dict
from schemas.errors import InvalidEventError
from schemas.events import ConsentEntry, ConsentStateRecorded, Subject
from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from schemas.validation import identifier_problem

_PURPOSES: Final = {m.value: m for m in Purpose}
_REGIMES: Final = {m.value: m for m in Regime}
_RECIPIENTS: Final = {m.value: m for m in Recipient}
_CHOICES: Final = {m.value: m for m in Choice}
_WITHDRAWN: Final = Choice.WITHDRAWN.value
_KINDS: Final = {m.value: m for m in SubjectKind}


class SubjectAvro(TypedDict):
    """``ConsentStateRecorded.subject`` as fastavro reads it."""

    id: str
    kind: str


class EntryAvro(TypedDict):
    """One ``ConsentStateRecorded.entries`` item as fastavro reads it (times in ms)."""

    purpose: str
    regime: str
    recipient: str | None
    """The recipient the choice is limited to; None: every recipient of the purpose."""
    choice: str
    occurred_at: int
    event_id: str


class StateAvro(TypedDict):
    """A :class:`~schemas.events.ConsentStateRecorded` as fastavro reads it with times
    as epoch milliseconds, checked (:func:`decode_state_avro`): every value is one the
    typed record accepts, enum symbols are members' values. Read-only by convention: it
    is the decoder's own dict. Fields a newer schema adds may be present too; nothing
    here reads them."""

    subject: SubjectAvro
    entries: list[EntryAvro]
    restricted: bool
    erased: bool
    updated_at: int


def in_force(entries: Sequence[EntryAvro], recipient: str | None) -> list[EntryAvro]:
    """The entries a destination honours, as the stream routes choices to it: one per
    (purpose, regime). A destination that is no recipient (``None``: the marketing and
    analytics stores) honours the choices for every recipient only; a partner (its
    :class:`~schemas.taxonomy.Recipient`'s symbol) also its own choices, each where it
    ranks above the choice for every recipient as the stream ranks decisions (newer,
    then a withdrawal, then the greater event id), and never another recipient's."""
    if recipient is None:
        return [e for e in entries if e["recipient"] is None]
    chosen: dict[tuple[str, str], EntryAvro] = {}
    for entry in entries:
        if entry["recipient"] is not None and entry["recipient"] != recipient:
            continue
        key = (entry["purpose"], entry["regime"])
        held = chosen.get(key)
        if held is None or _rank(entry) > _rank(held):
            chosen[key] = entry
    return list(chosen.values())


def _rank(entry: EntryAvro) -> tuple[int, bool, str]:
    """The stream's order of decisions (``streams.intake.resolution.Decision.rank``)."""
    return (entry["occurred_at"], entry["choice"] == _WITHDRAWN, entry["event_id"])


def decode_state(decoder: EventDecoder, data: bytes | None) -> ConsentStateRecorded:
    """The state record in ``data``; InvalidEventError exactly where the full decode
    (:func:`consumers.decoding.decode_as`) raises one."""
    return state_from_avro(_state_dict(decoder, data))


def decode_state_avro(decoder: EventDecoder, data: bytes | None) -> StateAvro:
    """The checked Avro dict of the state record in ``data``, times in epoch ms;
    InvalidEventError exactly where the full decode (:func:`consumers.decoding.decode_as`)
    raises one."""
    try:
        event_type, record = decoder.decode_dict(data, epoch_ms=True, unread=_UNREAD)
        if event_type is ConsentStateRecorded and _plain_avro(record):
            return cast(StateAvro, record)
    except (InvalidEventError, KeyError, TypeError):
        pass
    # Anything doubtful goes the full way, which refuses it as it always has (naming
    # the field and the reason) or gives the record, in another spelling say.
    return state_avro(decode_state(decoder, data))


def _state_dict(decoder: EventDecoder, data: bytes | None) -> dict[str, Any]:
    event_type, record = decoder.decode_dict(data)
    if event_type is not ConsentStateRecorded:
        raise UnexpectedEventError(
            f"{event_type.__name__} where {ConsentStateRecorded.__name__} was expected"
        )
    return record


def state_avro(state: ConsentStateRecorded) -> StateAvro:
    """The :class:`StateAvro` of a typed state record (what the wire carries for it)."""
    return {
        "subject": {"id": state.subject.id, "kind": state.subject.kind.value},
        "entries": [
            {
                "purpose": entry.purpose.value,
                "regime": entry.regime.value,
                "recipient": None if entry.recipient is None else entry.recipient.value,
                "choice": entry.choice.value,
                "occurred_at": epoch_ms(entry.occurred_at),
                "event_id": entry.event_id,
            }
            for entry in state.entries
        ],
        "restricted": state.restricted,
        "erased": state.erased,
        "updated_at": epoch_ms(state.updated_at),
    }


def typed_state(state: StateAvro) -> ConsentStateRecorded:
    """The typed record of a checked :class:`StateAvro` (the full decode's record)."""
    subject = state["subject"]
    return ConsentStateRecorded(
        subject=Subject(id=subject["id"], kind=_KINDS[subject["kind"]]),
        entries=tuple(
            ConsentEntry(
                purpose=_PURPOSES[entry["purpose"]],
                regime=_REGIMES[entry["regime"]],
                recipient=_recipient(entry["recipient"]),
                choice=_CHOICES[entry["choice"]],
                occurred_at=from_epoch_ms(entry["occurred_at"]),
                event_id=entry["event_id"],
            )
            for entry in state["entries"]
        ),
        restricted=state["restricted"],
        erased=state["erased"],
        updated_at=from_epoch_ms(state["updated_at"]),
    )


def _recipient(symbol: str | None) -> Recipient | None:
    return None if symbol is None else _RECIPIENTS[symbol]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MIN_MS: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_MAX_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _ONE_MS


def from_epoch_ms(value: int) -> datetime:
    """The datetime fastavro reads for a ``timestamp-millis`` of ``value``."""
    return _EPOCH + timedelta(milliseconds=value)


def epoch_ms(moment: datetime) -> int:
    """The ``timestamp-millis`` of a datetime (whole milliseconds, floored)."""
    return (moment - _EPOCH) // _ONE_MS


def _time(value: object) -> bool:
    """An epoch-ms long fastavro would have turned into a datetime (not overflowed)."""
    return type(value) is int and _MIN_MS <= value <= _MAX_MS


def _plain_avro(record: dict[str, Any]) -> bool:
    subject = record["subject"]
    return (
        identifier_problem(subject["id"]) is None
        and subject["kind"] in _KINDS
        and len(subject) == _SUBJECT_FIELDS
        and type(record["restricted"]) is bool
        and type(record["erased"]) is bool
        and _time(record["updated_at"])
        and type(record["entries"]) is list
        and all(
            entry["purpose"] in _PURPOSES
            and entry["regime"] in _REGIMES
            and entry["choice"] in _CHOICES
            and (entry["recipient"] is None or entry["recipient"] in _RECIPIENTS)
            and _time(entry["occurred_at"])
            and type(entry["event_id"]) is str
            and len(entry) == _ENTRY_FIELDS
            for entry in record["entries"]
        )
        and _known_layout(record)
    )


_FIELDS: Final = frozenset(("subject", "entries", "restricted", "erased", "updated_at"))
_SUBJECT_FIELDS: Final = 2
_ENTRY_FIELDS: Final = 6


_UNREAD: Final = frozenset(("history",))
"""Fields no sink reads: ``history`` is the stream's whole decision history (its state
table and the consent gate recover from it), on nearly every record and the last field
of it, so it is not even read here (``EventDecoder.decode_dict``'s ``unread``): it is
most of a record's bytes, and reading it was most of a seed's decoding (10 vs 37 µs per
state of five purposes with two decisions each). A record from an older writer that
holds it elsewhere than last has it read and taken as it comes."""

_OPTIONAL: Final = (
    frozenset(f.name for f in dataclasses.fields(ConsentStateRecorded)) - _FIELDS - _UNREAD
)
"""Other fields the record has beyond those read here (none today)."""


def _known_layout(record: Mapping[str, Any]) -> bool:
    """Today's fields (plus the unread ones), and any other field of the record only when
    absent (None): an optional field a newer schema adds is checked by ``from_dict``
    whenever it carries a value, and a key that is no field at all is refused by it."""
    if len(record) == len(_FIELDS):
        return record.keys() == _FIELDS
    return all(key in record for key in _FIELDS) and all(
        key in _UNREAD or (key in _OPTIONAL and value is None)
        for key, value in record.items()
        if key not in _FIELDS
    )


def state_from_avro(record: Mapping[str, Any]) -> ConsentStateRecorded:
    """The record of an Avro dict in the shipped schema's layout (what fastavro reads)."""
    try:
        subject = record["subject"]
        entries = tuple(
            ConsentEntry(
                purpose=_PURPOSES[entry["purpose"]],
                regime=_REGIMES[entry["regime"]],
                recipient=_recipient(entry["recipient"]),
                choice=_CHOICES[entry["choice"]],
                occurred_at=entry["occurred_at"],
                event_id=entry["event_id"],
            )
            for entry in record["entries"]
        )
        # Subject() applies the contract's identifier rule itself.
        state = ConsentStateRecorded(
            subject=Subject(id=subject["id"], kind=_KINDS[subject["kind"]]),
            entries=entries,
            restricted=record["restricted"],
            erased=record["erased"],
            updated_at=record["updated_at"],
        )
    except (KeyError, TypeError):
        # An unknown symbol or a missing field: let the generic walk name it.
        return from_dict(ConsentStateRecorded, record)
    if not _known_layout(record) or not _plain(state):
        return from_dict(ConsentStateRecorded, record)
    return state


def _plain(state: ConsentStateRecorded) -> bool:
    """Whether the values have the types from_dict insists on (Avro's own types)."""
    return (
        type(state.subject.id) is str
        and type(state.restricted) is bool
        and type(state.erased) is bool
        and isinstance(state.updated_at, datetime)
        and all(
            type(e.event_id) is str and isinstance(e.occurred_at, datetime) for e in state.entries
        )
    )
