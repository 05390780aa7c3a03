"""Consent-state records read in bulk: the contract's checks without its generic walk.

Seeding a sink reads every subject's :class:`~schemas.events.ConsentStateRecorded`
once; through :func:`schemas.converters.from_dict` two thirds of the time per record
went to the generic field walk (a plan per nested record, a set of unknown keys, a
dotted name per field), none of which can fail on a body fastavro has already read
against the shipped schema: the fields are there and have their Avro types. What can
still be wrong is kept: an enum symbol this code does not know (``UNKNOWN``) and a
subject id the contract refuses (``Subject.__post_init__``). On any doubt the record
goes through ``from_dict`` after all, so a refusal names the same field for the same
reason as the full decode does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from consumers.decoding import UnexpectedEventError
from schemas.codec import EventDecoder
from schemas.converters import from_dict
from schemas.events import ConsentEntry, ConsentStateRecorded, Subject
from schemas.taxonomy import Choice, Purpose, Regime, SubjectKind

_PURPOSES: Final = {m.value: m for m in Purpose}
_REGIMES: Final = {m.value: m for m in Regime}
_CHOICES: Final = {m.value: m for m in Choice}
_KINDS: Final = {m.value: m for m in SubjectKind}


def decode_state(decoder: EventDecoder, data: bytes | None) -> ConsentStateRecorded:
    """The state record in ``data``; InvalidEventError exactly where the full decode
    (:func:`consumers.decoding.decode_as`) raises one."""
    event_type, record = decoder.decode_dict(data)
    if event_type is not ConsentStateRecorded:
        raise UnexpectedEventError(
            f"{event_type.__name__} where {ConsentStateRecorded.__name__} was expected"
        )
    return state_from_avro(record)


def state_from_avro(record: dict[str, Any]) -> ConsentStateRecorded:
    """The record of an Avro dict in the shipped schema's layout (what fastavro reads)."""
    try:
        subject = record["subject"]
        entries = tuple(
            ConsentEntry(
                purpose=_PURPOSES[entry["purpose"]],
                regime=_REGIMES[entry["regime"]],
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
    if len(record) != _FIELDS or not _plain(state):
        return from_dict(ConsentStateRecorded, record)
    return state


_FIELDS: Final = 6
"""The shipped schema's fields. ``history`` (the stream's decision history, for its
table and the consent gate) is not read here: no sink uses it, and skipping it keeps
seeding as fast as before it was added; the record leaves it None."""


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
