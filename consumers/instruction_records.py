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

The partner sink's pipelines share each record's decode (:mod:`consumers.shared_decodes`)
as a :class:`SharedInstructions`: the first to read a record turns every item into its
instruction at once (the common part read and checked once, not once per partner), and
each pipeline takes its destination's. A record any of whose items would take the
generic walk is left to each pipeline's own :func:`instructions_of`, so a refusal is
raised, for the same reason, by the pipelines it concerns only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final

from consumers.decoding import UnexpectedEventError
from schemas.codec import EventDecoder
from schemas.converters import from_dict
from schemas.errors import InvalidEventError
from schemas.events import (
    DestinationInstruction,
    InstructionIssued,
    InstructionsIssued,
    Subject,
    instructions_in,
)
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
_COMMON_KEYS: Final = frozenset(f.name for f in fields(InstructionsIssued))
_ITEM_KEYS: Final = frozenset(f.name for f in fields(DestinationInstruction))


@dataclass(frozen=True, slots=True)
class SharedInstructions:
    """A decoded record as the pipelines of a process share it (read only)."""

    event_type: type[Any]
    record: dict[str, Any]
    by_destination: Mapping[str, tuple[InstructionIssued, ...]] | None
    """Every destination's instructions, or None: each pipeline converts its own."""

    def instructions_for(self, destination: str) -> tuple[InstructionIssued, ...]:
        """What :func:`instructions_of` gives for ``destination``."""
        if self.by_destination is None:
            return instructions_of(self.event_type, self.record, destination)
        return self.by_destination.get(destination, ())


def shared_instructions(event_type: type[Any], record: dict[str, Any]) -> SharedInstructions:
    """``record`` of ``event_type`` (as EventDecoder.decode_dict gives it), with every
    destination's instructions when that is the same as each taking its own."""
    by_destination = None
    if event_type is InstructionsIssued:
        by_destination = _by_destination(record)
    return SharedInstructions(event_type, record, by_destination)


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


def _by_destination(record: dict[str, Any]) -> dict[str, tuple[InstructionIssued, ...]] | None:
    """Every item of an InstructionsIssued's Avro dict as its InstructionIssued, grouped by
    destination in item order; None unless :func:`instruction_from_avro` would build each
    on its fast path (the same checks, the common ones once)."""
    items = record.get("instructions")
    if record.keys() != _COMMON_KEYS or type(items) is not list or not items:
        return None
    first = items[0]
    if type(first) is not dict or first.keys() != _ITEM_KEYS:
        return None
    # The first item as the per-item path sees it checks everything the items share.
    if not _plain({**{k: v for k, v in record.items() if k != "instructions"}, **first}):
        return None
    purpose, channel = _PURPOSES.__getitem__, _CHANNELS.__getitem__
    out: dict[str, list[InstructionIssued]] = {}
    try:
        subject = record["subject"]
        right = record["right"]
        shared = {
            "event_id": record["event_id"],
            "event_type": record["event_type"],
            "subject": Subject(id=subject["id"], kind=_KINDS[subject["kind"]]),
            "sink_family": _FAMILIES[record["sink_family"]],
            "right": None if right is None else _RIGHTS[right],
            "regime": _REGIMES[record["regime"]],
            "occurred_at": record["occurred_at"],
            "issued_at": record["issued_at"],
            "receipt_requested": record["receipt_requested"],
        }
        for item in items:
            if type(item) is not dict or item.keys() != _ITEM_KEYS:
                return None
            destination, purposes, channels = (
                item["destination"],
                item["purposes"],
                item["channels"],
            )
            if (
                type(item["instruction_id"]) is not str
                or type(destination) is not str
                or type(purposes) is not list
                or type(channels) is not list
            ):
                return None
            instruction = InstructionIssued(
                instruction_id=item["instruction_id"],
                destination=destination,
                action=_ACTIONS[item["action"]],
                purposes=tuple(map(purpose, purposes)),
                channels=tuple(map(channel, channels)),
                **shared,
            )
            found = out.get(destination)
            if found is None:
                out[destination] = [instruction]
            else:
                found.append(instruction)
    except (KeyError, TypeError, InvalidEventError):
        # Whatever would fail is each pipeline's to raise, as without sharing.
        return None
    return {destination: tuple(found) for destination, found in out.items()}


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
