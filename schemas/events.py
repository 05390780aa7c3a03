"""The events Consent Relay carries: typed, frozen records named in the past tense.

Every consent event shares an envelope (event id, subject, event time, recording time,
source, regime, policy version, evidence reference). Each field's metadata holds its
documentation and whether it is personal data; the `.avsc` files in ``schemas/avro``
are generated from these records (``python -m schemas.generate``) and a test keeps
them in step. Construction validates (see :mod:`schemas.validation`), so a record
that exists is a record that may be published.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from schemas.ids import uuid5
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
from schemas.validation import (
    validate_consent_changed,
    validate_cookie_preferences,
    validate_envelope,
    validate_rights_requested,
    validate_subject,
)

NAMESPACE = "io.consentrelay.events"


def doc(text: str, *, pii: bool = False, default: Any = MISSING, factory: Any = None) -> Any:
    """Declare a documented field; ``pii`` tags it ``"confluent:tags": ["PII"]``.

    A field with a ``default`` (``None`` for optional ones) or a ``factory`` gets the
    same default in its Avro schema, which is what lets it be added compatibly.
    """
    meta = {"doc": text, "pii": pii}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if default is not MISSING:
        return field(default=default, metadata=meta)
    return field(metadata=meta)


def new_event_id() -> str:
    """A fresh random event id (UUID v4 text)."""
    return str(uuid.uuid4())


def instruction_id(event_id: str, sink_family: SinkFamily, destination: str) -> str:
    """The deterministic id of the instruction for one destination of one event.

    ``uuid5(NAMESPACE_URL, "<event_id>/<SINK_FAMILY>/<destination>")``: re-processing the
    same event issues the same id, so sinks and the receipt tracker deduplicate on it.
    """
    return uuid5(f"{event_id}/{sink_family.value}/{destination}")


def answers_id(receipt_ids: Iterable[str]) -> str:
    """The deterministic id of an InstructionsAnswered: ``uuid5(NAMESPACE_URL,
    "answers/<receipt ids, sorted, comma-separated>")``."""
    return uuid5("answers/" + ",".join(sorted(receipt_ids)))


def utc_now() -> datetime:
    """Now, in UTC, at millisecond precision (what Avro timestamp-millis keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """The person (account) or anonymous browser/device a choice belongs to."""

    id: str = doc(
        "Internal subject identifier (Kantara CR 'piiPrincipalId', ISO/IEC TS 27560 'PII"
        " principal identifier'); never leaves Consent Relay, partners get a pseudonym.",
        pii=True,
    )
    kind: SubjectKind = doc(
        "ACCOUNT for a known user, DEVICE for a browser/device id (a visitor without an account)."
    )

    def __post_init__(self) -> None:
        validate_subject(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentEvent:
    """Fields every consent event carries (the envelope)."""

    event_id: str = doc(
        "Canonical UUID of this event (Kantara CR 'consentReceiptID', ISO/IEC TS 27560 'record"
        " identifier'); the idempotency key everywhere downstream."
    )
    subject: Subject = doc("Whose choice this is (the PII principal).")
    occurred_at: datetime = doc(
        "When the person made the choice: event time, UTC ms (Kantara CR 'consentTimestamp',"
        " ISO/IEC TS 27560 event time)."
    )
    recorded_at: datetime = doc("When the emitting service recorded it (UTC ms).")
    source: Source = doc(
        "How the choice was collected (Kantara CR 'collectionMethod', ISO/IEC TS 27560"
        " collection method)."
    )
    regime: Regime = doc(
        "Legal regime of the choice (Kantara CR 'jurisdiction', ISO/IEC TS 27560 jurisdiction)."
    )
    policy_version: PolicyVersion = doc(
        "Privacy-policy version in force when given (Kantara CR 'policyUrl', ISO/IEC TS 27560"
        " notice reference); a material policy change may need fresh consent."
    )
    evidence_ref: str | None = doc(
        "Optional reference to the stored proof of collection, e.g. form, log or recording"
        " (ISO/IEC TS 27560 evidence).",
        pii=True,
        default=None,
    )

    TOPIC_KIND: ClassVar[str] = "consent"

    def __post_init__(self) -> None:
        validate_envelope(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentChanged(ConsentEvent):
    """A person granted or withdrew consent for one or more purposes."""

    choice: Choice = doc(
        "GRANTED or WITHDRAWN (ISO/IEC TS 27560 consent state: given or withdrawn)."
    )
    purposes: tuple[Purpose, ...] = doc(
        "Purposes the choice covers (Kantara CR 'purposes', ISO/IEC TS 27560 purposes)."
    )
    recipients: tuple[Recipient, ...] = doc(
        "Recipients the choice is limited to; empty means every recipient of the purposes"
        " (Kantara CR 'thirdPartyName', ISO/IEC TS 27560 recipients).",
        factory=tuple,
    )
    expires_at: datetime | None = doc(
        "Optional end of a grant's validity, UTC ms (Kantara CR 'termination', ISO/IEC TS 27560"
        " duration).",
        default=None,
    )

    def __post_init__(self) -> None:
        validate_consent_changed(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RightsRequested(ConsentEvent):
    """A person exercised a data-subject right (objection, restriction, erasure, ...)."""

    right: Right = doc("The right exercised.")
    purposes: tuple[Purpose, ...] = doc(
        "Purposes the request is limited to (Kantara CR 'purposes', ISO/IEC TS 27560"
        " purposes); empty means every purpose the right reaches.",
        factory=tuple,
    )
    channels: tuple[Channel, ...] = doc(
        "Marketing channels a refusal of marketing names; empty means every channel.",
        factory=tuple,
    )
    requested_by: Requester = doc(
        "Who asked: the subject, a guardian (minor's erasure) or an authorised agent.",
        default=Requester.SUBJECT,
    )

    def __post_init__(self) -> None:
        validate_rights_requested(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class CookiePreferencesSet(ConsentEvent):
    """Cookie preferences saved in the Cookie Preferences Tool for one browser/device."""

    device_id: str = doc("The browser/device the preferences apply to.", pii=True)
    granted: tuple[CookieCategory, ...] = doc("Categories allowed.", factory=tuple)
    refused: tuple[CookieCategory, ...] = doc(
        "Categories refused; ESSENTIAL cannot be refused.", factory=tuple
    )

    def __post_init__(self) -> None:
        validate_cookie_preferences(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstructionIssued:
    """The stream told one destination what to do for one consent event."""

    instruction_id: str = doc(
        "Deterministic id: uuid5(NAMESPACE_URL, '<event_id>/<sink_family>/<destination>')."
    )
    event_id: str = doc("The consent event this instruction carries out.")
    event_type: str = doc("Record name of that event (ConsentChanged, RightsRequested, ...).")
    subject: Subject = doc("Whose data the instruction concerns.")
    sink_family: SinkFamily = doc("Which kind of sink must act.")
    destination: str = doc(
        "The destination within the family: 'suppression_list', 'analytics_store', or a"
        " partner's lowercase Recipient (e.g. 'criteo')."
    )
    action: Action = doc("What to do.")
    purposes: tuple[Purpose, ...] = doc("Purposes the action covers.")
    channels: tuple[Channel, ...] = doc("Marketing channels concerned.", factory=tuple)
    right: Right | None = doc("Optional right that triggered the instruction.", default=None)
    regime: Regime = doc("Regime of the originating choice.")
    occurred_at: datetime = doc("Event time of the originating choice (UTC ms).")
    issued_at: datetime = doc("When the stream issued the instruction (UTC ms).")
    receipt_requested: bool = doc(
        "The stream tracks this event's propagation (a withdrawal or a rights request) and"
        " wants a PropagationReceipt for the instruction; false for the instructions of an"
        " untracked event (a grant), which the sink applies without answering.",
        default=True,
    )

    TOPIC_KIND: ClassVar[str] = "instruction"


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationInstruction:
    """What one destination of an InstructionsIssued must do."""

    instruction_id: str = doc(
        "Deterministic id: uuid5(NAMESPACE_URL, '<event_id>/<sink_family>/<destination>'),"
        " as an InstructionIssued for this destination would carry it."
    )
    destination: str = doc("The destination within the family (e.g. 'criteo').")
    action: Action = doc("What to do.")
    purposes: tuple[Purpose, ...] = doc("Purposes the action covers.")
    channels: tuple[Channel, ...] = doc("Marketing channels concerned.", factory=tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstructionsIssued:
    """The stream told several destinations of one family what to do for one consent event."""

    # One record per consent event and family instead of one per destination: a
    # withdrawal that reaches a dozen partners costs the stream one send, the broker one
    # record and each partner pipeline one fetched message, which it skips undecoded
    # unless the destination header names it. What is common to every destination is
    # carried once; each item is what differs, and together they make exactly the
    # InstructionIssued the destination would otherwise get (see instructions_in).

    event_id: str = doc("The consent event these instructions carry out.")
    event_type: str = doc("Record name of that event (ConsentChanged, RightsRequested, ...).")
    subject: Subject = doc("Whose data the instructions concern.")
    sink_family: SinkFamily = doc("Which kind of sink must act.")
    instructions: tuple[DestinationInstruction, ...] = doc(
        "One per destination and action, in routing order; a destination named twice gets"
        " two actions of the same event (e.g. cookie preferences refusing one category and"
        " granting another)."
    )
    right: Right | None = doc("Optional right that triggered the instructions.", default=None)
    regime: Regime = doc("Regime of the originating choice.")
    occurred_at: datetime = doc("Event time of the originating choice (UTC ms).")
    issued_at: datetime = doc("When the stream issued the instructions (UTC ms).")
    receipt_requested: bool = doc(
        "The stream tracks this event's propagation and wants a PropagationReceipt for each"
        " instruction; false for an untracked event (a grant).",
        default=True,
    )

    TOPIC_KIND: ClassVar[str] = "instruction"

    def issued(self, item: DestinationInstruction) -> InstructionIssued:
        """The InstructionIssued that ``item`` stands for."""
        return InstructionIssued(
            instruction_id=item.instruction_id,
            event_id=self.event_id,
            event_type=self.event_type,
            subject=self.subject,
            sink_family=self.sink_family,
            destination=item.destination,
            action=item.action,
            purposes=item.purposes,
            channels=item.channels,
            right=self.right,
            regime=self.regime,
            occurred_at=self.occurred_at,
            issued_at=self.issued_at,
            receipt_requested=self.receipt_requested,
        )


def issued_together(instructions: Sequence[InstructionIssued]) -> InstructionsIssued:
    """The InstructionsIssued carrying ``instructions`` (of one event and family, in order):
    the inverse of :func:`instructions_in`."""
    first = instructions[0]
    return InstructionsIssued(
        event_id=first.event_id,
        event_type=first.event_type,
        subject=first.subject,
        sink_family=first.sink_family,
        instructions=tuple(
            DestinationInstruction(
                instruction_id=i.instruction_id,
                destination=i.destination,
                action=i.action,
                purposes=i.purposes,
                channels=i.channels,
            )
            for i in instructions
        ),
        right=first.right,
        regime=first.regime,
        occurred_at=first.occurred_at,
        issued_at=first.issued_at,
        receipt_requested=first.receipt_requested,
    )


def instructions_in(record: Any, destination: str | None = None) -> tuple[InstructionIssued, ...]:
    """The instructions a record of an instruction topic carries (those for
    ``destination`` only, if given): an InstructionIssued's own, an InstructionsIssued's
    items, none for anything else."""
    if isinstance(record, InstructionsIssued):
        return tuple(
            record.issued(item)
            for item in record.instructions
            if destination is None or item.destination == destination
        )
    if isinstance(record, InstructionIssued):
        return (record,) if destination in (None, record.destination) else ()
    return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PropagationReceipt:
    """A destination reports what it did with an instruction (proof of propagation)."""

    receipt_id: str = doc("UUID of this receipt.")
    instruction_id: str = doc("The instruction answered.")
    event_id: str = doc("The consent event the instruction came from.")
    subject: Subject = doc("Whose data it concerned.")
    sink_family: SinkFamily = doc("Sink family that acted.")
    destination: str = doc("Destination that acted.")
    outcome: Outcome = doc("APPLIED, SKIPPED (with reason) or FAILED (with reason).")
    occurred_at: datetime = doc("Event time of the originating choice (UTC ms).")
    applied_at: datetime = doc("When the effect became durable downstream (UTC ms).")
    reason: str | None = doc("Optional explanation for SKIPPED or FAILED.", default=None)

    TOPIC_KIND: ClassVar[str] = "receipt"


@dataclass(frozen=True, slots=True, kw_only=True)
class InstructionsAnswered:
    """A sink's receipts for a batch of instructions on one partition, as one record."""

    # A sink answers many instructions at a time: one record per batch and partition
    # costs the stream one message to read instead of one per destination. Every
    # receipt in it concerns a subject whose events are on this record's partition (the
    # instruction topics and the receipts topic are co-partitioned with the consent
    # topic), so the stream applies each exactly as it would a PropagationReceipt.

    batch_id: str = doc("Deterministic UUID of this batch (from its receipts' ids).")
    receipts: tuple[PropagationReceipt, ...] = doc(
        "The receipts, at most 500, each as a PropagationReceipt would carry it."
    )

    TOPIC_KIND: ClassVar[str] = "receipt"


def receipts_in(record: Any) -> tuple[PropagationReceipt, ...]:
    """The receipts a record of the receipts topic carries: a PropagationReceipt's own,
    an InstructionsAnswered's, none for anything else."""
    if isinstance(record, InstructionsAnswered):
        return record.receipts
    if isinstance(record, PropagationReceipt):
        return (record,)
    return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationStatus:
    """One destination's part in a propagation."""

    destination: str = doc("Destination name, '<family>/<destination>'.")
    outcome: Outcome = doc("What the destination did.")
    applied_at: datetime = doc("When it did it (UTC ms).")


@dataclass(frozen=True, slots=True, kw_only=True)
class FullyPropagated:
    """Every destination that had to honour a consent event has answered."""

    event_id: str = doc("The consent event.")
    subject: Subject = doc("Whose event it was.")
    occurred_at: datetime = doc("Its event time (UTC ms).")
    completed_at: datetime = doc("When the last receipt arrived (UTC ms).")
    destinations: tuple[DestinationStatus, ...] = doc("Each destination's receipt.")

    TOPIC_KIND: ClassVar[str] = "propagation"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentEntry:
    """The current choice for one (purpose, regime, recipient) of a subject."""

    purpose: Purpose = doc("The purpose (Kantara CR 'purpose').")
    regime: Regime = doc("The regime the choice was made under (Kantara CR 'jurisdiction').")
    recipient: Recipient | None = doc(
        "Optional recipient the choice is limited to (Kantara CR 'thirdPartyName'); absent:"
        " every recipient of the purpose (absent in records written before this field was"
        " added, which held only such choices).",
        default=None,
    )
    choice: Choice = doc("The winning choice (ISO/IEC TS 27560 consent state).")
    occurred_at: datetime = doc("Event time of the winning event (UTC ms).")
    event_id: str = doc("The winning event.")


@dataclass(frozen=True, slots=True, kw_only=True)
class PastDecision:
    """One consent decision a subject's state keeps, current or past."""

    purpose: Purpose = doc("The purpose decided on.")
    regime: Regime = doc("The regime it was decided under.")
    recipient: Recipient | None = doc(
        "Optional recipient the decision is limited to; absent: every recipient of the purpose.",
        default=None,
    )
    choice: Choice = doc("The choice made.")
    occurred_at: datetime = doc("Event time of the deciding event (UTC ms).")
    event_id: str = doc("The deciding event.")
    expires_at: datetime | None = doc(
        "Optional end of a grant's validity, if the grant named one (UTC ms).", default=None
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RestrictionToggled:
    """One restriction of processing, or the lifting of one."""

    restricted: bool = doc("True: processing restricted; false: a restriction lifted.")
    occurred_at: datetime = doc("Event time (UTC ms).")
    event_id: str = doc("The event.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureRecorded:
    """The latest erasure of a subject's data."""

    occurred_at: datetime = doc("Event time of the erasure request (UTC ms).")
    event_id: str = doc("The erasure request.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentHistory:
    """The decisions behind a subject's state, with their times: enough to tell which
    choice was in force at any recent moment (the consent gate judges data by the time
    it was produced), and the whole state the stream's table keeps."""

    decisions: tuple[PastDecision, ...] = doc(
        "Per (purpose, regime, recipient), the most recent decisions, oldest first; the"
        " last of each is the current one."
    )
    restrictions: tuple[RestrictionToggled, ...] = doc(
        "The most recent restrictions and liftings, oldest first; the last is in force."
    )
    erasure: ErasureRecorded | None = doc("Optional latest erasure.", default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentStateRecorded:
    """A subject's whole current consent state (compacted topic, keyed by subject)."""

    subject: Subject = doc("Whose state this is.")
    entries: tuple[ConsentEntry, ...] = doc(
        "Current choice per (purpose, regime, recipient), sorted by them (a choice for every"
        " recipient first); a recipient's own choice applies to that recipient where it is"
        " newer than the choice for every recipient."
    )
    restricted: bool = doc("Processing is restricted until lifted.", default=False)
    erased: bool = doc("The subject's data was erased.", default=False)
    updated_at: datetime = doc("When this state was computed (UTC ms).")
    history: ConsentHistory | None = doc(
        "Optional decisions behind the state, with their times (absent in records written"
        " before this field was added). The stream's state table recovers from these.",
        default=None,
    )

    TOPIC_KIND: ClassVar[str] = "state"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataEventCaptured:
    """A piece of personal data on its way to a downstream system (the gate's input)."""

    event_id: str = doc("UUID of the data event.")
    subject: Subject = doc("Whose data it is.")
    occurred_at: datetime = doc("When the data was produced (UTC ms).")
    purpose: Purpose = doc("The processing the data is bound for (Kantara CR 'purpose').")
    recipient: Recipient | None = doc(
        "Optional recipient the data is bound for (Kantara CR 'thirdPartyName').", default=None
    )
    payload: bytes = doc("The data itself, opaque to Consent Relay.", pii=True)

    TOPIC_KIND: ClassVar[str] = "data"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLettered:
    """Something that could not be processed, kept with why and where it came from."""

    dead_letter_id: str = doc("UUID of this dead letter.")
    stage: str = doc("The process that gave up (e.g. 'stream.intake', 'sink.marketing').")
    source_topic: str = doc("Topic of the original message.")
    source_partition: int = doc("Partition of the original message.")
    source_offset: int = doc("Offset of the original message.")
    original_key: bytes | None = doc(
        "Optional original key bytes: whole up to 1,024 bytes, else its first 1,024.",
        pii=True,
        default=None,
    )
    original_value: bytes | None = doc(
        "Optional original value bytes: whole up to 4,096 bytes, else its first 4,096.",
        pii=True,
        default=None,
    )
    error_class: str = doc("Exception class that stopped processing.")
    field_name: str | None = doc("Optional name of the offending field.", default=None)
    reason: str = doc("Human-readable reason.")
    dead_lettered_at: datetime = doc("When it was dead-lettered (UTC ms).")
    original_size: int | None = doc(
        "Optional size in bytes of the whole original value (original_value may be an "
        "excerpt of it).",
        default=None,
    )
    original_sha256: str | None = doc(
        "Optional SHA-256 of the whole original value, hex: identifies it at its source "
        "coordinates when original_value is only an excerpt.",
        default=None,
    )

    TOPIC_KIND: ClassVar[str] = "dead_letter"


CONSENT_EVENT_TYPES: tuple[type[ConsentEvent], ...] = (
    ConsentChanged,
    RightsRequested,
    CookiePreferencesSet,
)
"""Events services publish on the consent topic."""

EVENT_TYPES: tuple[type[Any], ...] = (
    *CONSENT_EVENT_TYPES,
    InstructionIssued,
    PropagationReceipt,
    InstructionsAnswered,
    FullyPropagated,
    ConsentStateRecorded,
    DataEventCaptured,
    DeadLettered,
    InstructionsIssued,
)
"""Every top-level record with its own `.avsc` and registry subject."""
