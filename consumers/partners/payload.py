"""The JSON bodies a partner receives: what to do, about whom (pseudonymously), and why.

One instruction is one JSON object (:func:`instruction_document`); a partner with
``batch_size`` 1 receives it as the whole body, a partner taking batches receives
``{"instructions": [<object>, ...]}``. Only the partner's pseudonymous id of the subject
is sent, never the internal id. Keys are sorted and separators fixed so a body is the
same bytes on every retry. The formats are described for partners in ``WEBHOOK.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
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


def webhook_body(instruction: InstructionIssued, partner: str, pseudonymous_id: str) -> bytes:
    """The UTF-8 JSON body of the webhook for ``instruction`` sent to ``partner``."""
    return _encode(instruction_document(instruction, partner, pseudonymous_id))


def batch_body(documents: Sequence[dict[str, Any]]) -> bytes:
    """The UTF-8 JSON body carrying several instruction objects, in the given order."""
    return _encode({"instructions": list(documents)})


def batch_idempotency_key(instruction_ids: Iterable[str]) -> str:
    """``batch-<hex SHA-256 of the sorted ids, newline-joined>``: the same for the same set
    of instructions, so a partner recognises a redelivered batch whatever the order."""
    joined = "\n".join(sorted(instruction_ids)).encode("utf-8")
    return BATCH_KEY_PREFIX + hashlib.sha256(joined).hexdigest()


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
