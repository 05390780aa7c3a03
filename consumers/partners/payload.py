"""The JSON bodies a partner receives: what to do, about whom (pseudonymously), and why.

One instruction is one JSON object (:func:`instruction_document`); a partner with
``batch_size`` 1 receives it as the whole body, a partner taking batches receives
``{"instructions": [<object>, ...]}``. Only the partner's pseudonymous id of the subject
is sent, never the internal id. Keys are sorted and separators fixed so a body is the
same bytes on every retry. The formats are described for partners in ``WEBHOOK.md``.

Bodies are written by :func:`instruction_json`: the very text ``json.dumps`` makes of
:func:`instruction_document` (sorted keys, no spaces, ASCII; each string quoted by the
same C function ``json.dumps`` quotes it with), put together directly, because building
the dict and sorting its keys for every instruction of every partner was a sixth of
the partner sink's work (tests compare the two on many instructions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from schemas.events import InstructionIssued

BATCH_KEY_PREFIX: Final = "batch-"


def instruction_document(
    instruction: InstructionIssued, partner: str, pseudonymous_id: str
) -> dict[str, Any]:
    """The JSON object that tells ``partner`` about one instruction."""
    return {
        "instruction_id": instruction.instruction_id,
        "partner": partner,
        "subject": {"id": pseudonymous_id, "kind": instruction.subject.kind.value},
        "action": instruction.action.value,
        "purposes": [p.value for p in instruction.purposes],
        "channels": [c.value for c in instruction.channels],
        "right": instruction.right.value if instruction.right is not None else None,
        "regime": instruction.regime.value,
        "occurred_at": instruction.occurred_at.isoformat(),
        "issued_at": instruction.issued_at.isoformat(),
    }


def instruction_json(instruction: InstructionIssued, partner: str, pseudonymous_id: str) -> str:
    """The JSON text of :func:`instruction_document`, exactly as ``json.dumps`` writes it
    with sorted keys and no spaces."""
    right = instruction.right
    return (
        f'{{"action":{_enum(instruction.action)}'
        f',"channels":[{",".join([_enum(c) for c in instruction.channels])}]'
        f',"instruction_id":{_quote(instruction.instruction_id)}'
        f',"issued_at":{_quote(instruction.issued_at.isoformat())}'
        f',"occurred_at":{_quote(instruction.occurred_at.isoformat())}'
        f',"partner":{_quote(partner)}'
        f',"purposes":[{",".join([_enum(p) for p in instruction.purposes])}]'
        f',"regime":{_enum(instruction.regime)}'
        f',"right":{"null" if right is None else _enum(right)}'
        f',"subject":{{"id":{_quote(pseudonymous_id)},"kind":{_enum(instruction.subject.kind)}}}}}'
    )


def webhook_body(instruction: InstructionIssued, partner: str, pseudonymous_id: str) -> bytes:
    """The UTF-8 JSON body of the webhook for ``instruction`` sent to ``partner``."""
    return instruction_json(instruction, partner, pseudonymous_id).encode()


def batch_body(objects: Sequence[str]) -> bytes:
    """The UTF-8 JSON body carrying several instructions' JSON objects
    (:func:`instruction_json`), in the given order."""
    return ('{"instructions":[' + ",".join(objects) + "]}").encode()


def batch_idempotency_key(instruction_ids: Iterable[str]) -> str:
    """``batch-<hex SHA-256 of the sorted ids, newline-joined>``: the same for the same set
    of instructions, so a partner recognises a redelivered batch whatever the order."""
    joined = "\n".join(sorted(instruction_ids)).encode("utf-8")
    return BATCH_KEY_PREFIX + hashlib.sha256(joined).hexdigest()


_quote = encode_basestring_ascii
"""A JSON string literal, as ``json.dumps`` (``ensure_ascii``) writes one."""
_QUOTED: dict[StrEnum, str] = {}


def _enum(member: StrEnum) -> str:
    """A member's value as a JSON string literal (each member's quoted once)."""
    quoted = _QUOTED.get(member)
    if quoted is None:
        quoted = _QUOTED[member] = _quote(member.value)
    return quoted
