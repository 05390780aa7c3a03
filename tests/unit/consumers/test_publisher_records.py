"""The receipts' Avro dicts the publisher writes are what the contract's generic
converter makes of the same records, so a field added to a receipt cannot be left out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from consumers.protocol import APPLIED, SinkResult
from consumers.publisher import answered_avro, build_receipt, receipt_avro
from schemas.converters import to_dict
from schemas.events import InstructionIssued, InstructionsAnswered, Subject, answers_id
from schemas.taxonomy import Action, Outcome, Purpose, Regime, SinkFamily, SubjectKind

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def instruction(n: int) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="ConsentChanged",
        subject=Subject(id=f"acct-{n}", kind=tuple(SubjectKind)[n % 2]),
        sink_family=SinkFamily.PARTNER_SHARING,
        destination="criteo",
        action=Action.SUPPRESS,
        purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
        regime=Regime.GDPR,
        occurred_at=T0,
        issued_at=T0,
    )


RESULTS = (
    APPLIED,
    SinkResult(Outcome.SKIPPED, "partner holds no identifier for this subject"),
    SinkResult(Outcome.FAILED, reason="PermanentSinkError: refused"),
)


def test_a_receipts_avro_dict_is_the_generic_converters() -> None:
    for n, result in enumerate(RESULTS):
        receipt = build_receipt(instruction(n), result, T0)
        assert receipt_avro(receipt) == to_dict(receipt)


def test_an_answered_batchs_avro_dict_is_the_generic_converters() -> None:
    receipts = [build_receipt(instruction(n), RESULTS[n % 3], T0) for n in range(7)]
    answered = InstructionsAnswered(
        batch_id=answers_id(r.receipt_id for r in receipts), receipts=tuple(receipts)
    )
    assert answered_avro(receipts) == to_dict(answered)
