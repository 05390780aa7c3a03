"""One valid example record of every event type, for tests, demos and documentation.

``example(EventType, **overrides)`` builds a record whose every field is set (optional
ones too, so a round trip exercises them) at millisecond precision, which is what Avro's
``timestamp-millis`` keeps; ``overrides`` replace fields, and the record validates as
usual, so an example is always a publishable event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from schemas.events import (
    EVENT_TYPES,
    ConsentChanged,
    ConsentEntry,
    ConsentStateRecorded,
    CookiePreferencesSet,
    DataEventCaptured,
    DeadLettered,
    DestinationInstruction,
    DestinationStatus,
    FullyPropagated,
    InstructionIssued,
    InstructionsAnswered,
    InstructionsIssued,
    PropagationReceipt,
    RightsRequested,
    Subject,
    answers_id,
    instruction_id,
    new_event_id,
    utc_now,
)
from schemas.taxonomy import (
    Action,
    Channel,
    Choice,
    CookieCategory,
    Outcome,
    PolicyVersion,
    Purpose,
    Recipient,
    Regime,
    Requester,
    Right,
    SinkFamily,
    Source,
    SubjectKind,
)

T = TypeVar("T")


def example(event_type: type[T], **overrides: Any) -> T:
    """A valid ``event_type`` record with every field set; ``overrides`` replace fields."""
    now = utc_now()
    fields = _FIELDS[event_type](now)
    fields.update(overrides)
    return event_type(**fields)


def examples() -> list[Any]:
    """One example of each event type, in :data:`~schemas.events.EVENT_TYPES` order."""
    return [example(t) for t in EVENT_TYPES]


def _subject(kind: SubjectKind = SubjectKind.ACCOUNT) -> Subject:
    return Subject(id=f"example-{new_event_id()}", kind=kind)


def _envelope(now: datetime) -> dict[str, Any]:
    return {
        "event_id": new_event_id(),
        "subject": _subject(),
        "occurred_at": now - timedelta(seconds=2),
        "recorded_at": now,
        "source": Source.PRIVACY_SETTINGS,
        "regime": Regime.GDPR,
        "policy_version": PolicyVersion.V2019_07_15,
        "evidence_ref": "evidence/example",
    }


def _consent_changed(now: datetime) -> dict[str, Any]:
    return {
        **_envelope(now),
        "choice": Choice.GRANTED,
        "purposes": (Purpose.MARKETING_EMAIL, Purpose.SHARE_WITH_ADVERTISING_PLATFORMS),
        "recipients": (Recipient.CRITEO,),
        "expires_at": now + timedelta(days=365),
    }


def _rights_requested(now: datetime) -> dict[str, Any]:
    return {
        **_envelope(now),
        "right": Right.REFUSE_MARKETING,
        "purposes": (Purpose.MARKETING_EMAIL,),
        "channels": (Channel.EMAIL,),
        "requested_by": Requester.SUBJECT,
    }


def _cookie_preferences(now: datetime) -> dict[str, Any]:
    device = _subject(SubjectKind.DEVICE)
    return {
        **_envelope(now),
        "subject": device,
        "source": Source.COOKIE_TOOL,
        "device_id": device.id,
        "granted": (CookieCategory.ESSENTIAL, CookieCategory.STATISTICS),
        "refused": (CookieCategory.MARKETING, CookieCategory.PERSONALISATION),
    }


def _instruction(now: datetime) -> dict[str, Any]:
    event_id = new_event_id()
    return {
        "instruction_id": instruction_id(event_id, SinkFamily.PARTNER_SHARING, "criteo"),
        "event_id": event_id,
        "event_type": ConsentChanged.__name__,
        "subject": _subject(),
        "sink_family": SinkFamily.PARTNER_SHARING,
        "destination": "criteo",
        "action": Action.SUPPRESS,
        "purposes": (Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
        "channels": (),
        "right": Right.WITHDRAW_CONSENT,
        "regime": Regime.GDPR,
        "occurred_at": now - timedelta(seconds=2),
        "issued_at": now,
    }


def _instructions(now: datetime) -> dict[str, Any]:
    event_id = new_event_id()
    family = SinkFamily.PARTNER_SHARING
    return {
        "event_id": event_id,
        "event_type": ConsentChanged.__name__,
        "subject": _subject(),
        "sink_family": family,
        "instructions": tuple(
            DestinationInstruction(
                instruction_id=instruction_id(event_id, family, partner),
                destination=partner,
                action=Action.SUPPRESS,
                purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
                channels=(),
            )
            for partner in ("criteo", "google")
        ),
        "right": Right.WITHDRAW_CONSENT,
        "regime": Regime.GDPR,
        "occurred_at": now - timedelta(seconds=2),
        "issued_at": now,
        "receipt_requested": True,
    }


def _receipt(now: datetime) -> dict[str, Any]:
    event_id = new_event_id()
    return {
        "receipt_id": new_event_id(),
        "instruction_id": instruction_id(event_id, SinkFamily.MARKETING, "suppression_list"),
        "event_id": event_id,
        "subject": _subject(),
        "sink_family": SinkFamily.MARKETING,
        "destination": "suppression_list",
        "outcome": Outcome.SKIPPED,
        "occurred_at": now - timedelta(seconds=2),
        "applied_at": now,
        "reason": "already suppressed",
    }


def _answered(now: datetime) -> dict[str, Any]:
    receipts = (PropagationReceipt(**_receipt(now)), PropagationReceipt(**_receipt(now)))
    return {
        "batch_id": answers_id(r.receipt_id for r in receipts),
        "receipts": receipts,
    }


def _fully_propagated(now: datetime) -> dict[str, Any]:
    return {
        "event_id": new_event_id(),
        "subject": _subject(),
        "occurred_at": now - timedelta(seconds=2),
        "completed_at": now,
        "destinations": (
            DestinationStatus(
                destination="MARKETING/suppression_list", outcome=Outcome.APPLIED, applied_at=now
            ),
            DestinationStatus(
                destination="ANALYTICS/analytics_store", outcome=Outcome.SKIPPED, applied_at=now
            ),
        ),
    }


def _state(now: datetime) -> dict[str, Any]:
    return {
        "subject": _subject(),
        "entries": (
            ConsentEntry(
                purpose=Purpose.MARKETING_EMAIL,
                regime=Regime.GDPR,
                choice=Choice.WITHDRAWN,
                occurred_at=now - timedelta(seconds=2),
                event_id=new_event_id(),
            ),
        ),
        "restricted": True,
        "erased": False,
        "updated_at": now,
    }


def _data_event(now: datetime) -> dict[str, Any]:
    return {
        "event_id": new_event_id(),
        "subject": _subject(),
        "occurred_at": now,
        "purpose": Purpose.RESEARCH_AND_STATISTICS,
        "recipient": Recipient.ANALYTICS_PROVIDERS,
        "payload": b'{"page": "/example"}',
    }


def _dead_letter(now: datetime) -> dict[str, Any]:
    return {
        "dead_letter_id": new_event_id(),
        "stage": "stream.intake",
        "source_topic": "consent.events",
        "source_partition": 2,
        "source_offset": 41,
        "original_key": b"example-key",
        "original_value": b"\x00\x00\x00\x00\x01",
        "error_class": "TruncatedMessageError",
        "field_name": "purposes",
        "reason": "body ends early",
        "dead_lettered_at": now,
    }


_FIELDS = {
    ConsentChanged: _consent_changed,
    RightsRequested: _rights_requested,
    CookiePreferencesSet: _cookie_preferences,
    InstructionIssued: _instruction,
    PropagationReceipt: _receipt,
    InstructionsAnswered: _answered,
    FullyPropagated: _fully_propagated,
    ConsentStateRecorded: _state,
    DataEventCaptured: _data_event,
    DeadLettered: _dead_letter,
    InstructionsIssued: _instructions,
}
