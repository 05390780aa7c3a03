"""Instructions read by a sink: the contract's checks without its generic record walk.

A record of an instruction topic is an :class:`~schemas.events.InstructionIssued` (one
destination's) or an :class:`~schemas.events.InstructionsIssued` (several destinations'
of one event, the partners'), and a sink takes from it only its own destination's
instructions (:func:`decode_instructions`). Every sink decodes each record it
consumes, and the partner sink does so once per partner pipeline the record names.
Through
:func:`schemas.converters.from_dict` most of a decode went to the generic field walk (a
plan per nested record, a set of unknown keys, a dotted name per field), none of which
can fail on a body fastavro has already read against the shipped schema. What can still
be wrong is kept: an enum symbol this code does not know (``UNKNOWN``) and a subject id
the contract refuses (``Subject.__post_init__``). On any doubt the record goes through
``from_dict`` after all, so a refusal names the same field for the same reason as the
full decode (:func:`consumers.decoding.decode_as`) does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from consumers.decoding import UnexpectedEventError
from schemas.codec import EventDecoder
from schemas.converters import from_dict
from schemas.events import InstructionIssued, InstructionsIssued, Subject, instructions_in
from schemas.taxonomy import Action, Channel, Purpose, Regime, Right, SinkFamily, SubjectKind

_ACTIONS: Final = {m.value: m for m in Action}
_CHANNELS: Final = {m.value: m for m in Channel}
_FAMILIES: Final = {m.value: m for m in SinkFamily}
_KINDS: Final = {m.value: m for m in SubjectKind}
_PURPOSES: Final = {m.value: m for m in Purpose}
_REGIMES: Final = {m.value: m for m in Regime}
_RIGHTS: Final = {m.value: m for m in Right}
_FIELDS: Final = 14
_STRINGS: Final = ("instruction_id", "event_id", "event_type", "destination")


def decode_instructions(
    decoder: EventDecoder, data: bytes | None, destination: str
) -> tuple[InstructionIssued, ...]:
    """The instructions for ``destination`` in ``data`` (none if it names others only);
    InvalidEventError exactly where the full decode raises one."""
    return instructions_of(*decoder.decode_dict(data), destination)


def instructions_of(
    event_type: type[Any], record: dict[str, Any], destination: str
) -> tuple[InstructionIssued, ...]:
    """The instructions for ``destination`` in a decoded record (``record`` is only read:
    the partner sink's runners share it)."""
    if event_type is InstructionIssued:
        return (instruction_from_avro(record),)
    if event_type is InstructionsIssued:
        return instructions_from_avro(record, destination)
    raise UnexpectedEventError(
        f"{event_type.__name__} where {InstructionIssued.__name__} or "
        f"{InstructionsIssued.__name__} was expected"
    )


def instructions_from_avro(
    record: dict[str, Any], destination: str
) -> tuple[InstructionIssued, ...]:
    """``destination``'s instructions of an InstructionsIssued's Avro dict, each as the
    InstructionIssued it stands for. Only the items for ``destination`` are built: the
    others are some other pipeline's."""
    items = record.get("instructions")
    if type(items) is not list or not all(type(i) is dict for i in items):
        return instructions_in(from_dict(InstructionsIssued, record), destination)
    common = {k: v for k, v in record.items() if k != "instructions"}
    return tuple(
        instruction_from_avro({**common, **item})
        for item in items
        if item.get("destination") == destination
    )


def instruction_from_avro(record: dict[str, Any]) -> InstructionIssued:
    """The record of an Avro dict in the shipped schema's layout (what fastavro reads)."""
    if len(record) != _FIELDS or not _plain(record):
        return from_dict(InstructionIssued, record)
    try:
        subject = record["subject"]
        right = record["right"]
        # Subject() applies the contract's identifier rule itself.
        return InstructionIssued(
            instruction_id=record["instruction_id"],
            event_id=record["event_id"],
            event_type=record["event_type"],
            subject=Subject(id=subject["id"], kind=_KINDS[subject["kind"]]),
            sink_family=_FAMILIES[record["sink_family"]],
            destination=record["destination"],
            action=_ACTIONS[record["action"]],
            purposes=tuple(_PURPOSES[p] for p in record["purposes"]),
            channels=tuple(_CHANNELS[c] for c in record["channels"]),
            right=None if right is None else _RIGHTS[right],
            regime=_REGIMES[record["regime"]],
            occurred_at=record["occurred_at"],
            issued_at=record["issued_at"],
            receipt_requested=record["receipt_requested"],
        )
    except (KeyError, TypeError):
        # An unknown symbol or a missing field: let the generic walk name it.
        return from_dict(InstructionIssued, record)


def _plain(record: dict[str, Any]) -> bool:
    """Whether the values have the types from_dict insists on (Avro's own types)."""
    subject = record.get("subject")
    return (
        all(type(record.get(name)) is str for name in _STRINGS)
        and type(subject) is dict
        and len(subject) == 2
        and type(subject.get("id")) is str
        and type(record.get("purposes")) is list
        and type(record.get("channels")) is list
        and isinstance(record.get("occurred_at"), datetime)
        and isinstance(record.get("issued_at"), datetime)
        and type(record.get("receipt_requested")) is bool
    )
