"""The JSON body a partner receives: what to do, about whom (pseudonymously), and why.

Only the partner's pseudonymous id of the subject is sent, never the internal id.
Keys are sorted and separators fixed so a body is the same bytes on every retry.
"""

from __future__ import annotations

import json
from typing import Any

from schemas.events import InstructionIssued


def webhook_body(instruction: InstructionIssued, partner: str, pseudonymous_id: str) -> bytes:
    """The UTF-8 JSON body of the webhook for ``instruction`` sent to ``partner``."""
    document: dict[str, Any] = {
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
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
