"""The stream's encoder against the real registry: the producers' bytes, exactly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from schemas.codec import EventDecoder, EventSerializer
from schemas.errors import ConsentRelayError, RegistryUnavailableError
from schemas.events import (
    ConsentStateRecorded,
    DeadLettered,
    FullyPropagated,
    InstructionIssued,
)
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Channel, Choice, Purpose, Recipient, Regime, Right, SubjectKind
from streams.engine.wire import RegistryEncoder
from streams.intake.records import consent_state
from streams.intake.resolution import Decision, Erasure, SubjectState, Toggle

NOW = 1_764_000_000_000
SUBJECT = {"id": "s-wire", "kind": "ACCOUNT"}

EXAMPLES: list[tuple[type[Any], dict[str, Any]]] = [
    (
        InstructionIssued,
        {
            "instruction_id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "event_type": "RightsRequested",
            "subject": SUBJECT,
            "sink_family": "MARKETING",
            "destination": "suppression_list",
            "action": "SUPPRESS",
            # Enum members as the stream passes them, and plain symbols.
            "purposes": [Purpose.MARKETING_EMAIL, "MARKETING_SMS"],
            "channels": [Channel.EMAIL],
            "right": Right.OBJECT_TO_DIRECT_MARKETING,
            "regime": "GDPR",
            "occurred_at": NOW,
            "issued_at": NOW + 5,
            "receipt_requested": True,
        },
    ),
    (
        ConsentStateRecorded,
        {
            "subject": SUBJECT,
            "entries": [
                {
                    "purpose": "MARKETING_EMAIL",
                    "regime": "GDPR",
                    "choice": "WITHDRAWN",
                    "occurred_at": NOW,
                    "event_id": str(uuid.uuid4()),
                }
            ],
            "restricted": False,
            "erased": False,
            "updated_at": NOW,
        },
    ),
    (
        # As intake makes it: written from the state by streams.intake.state_writer.
        ConsentStateRecorded,
        consent_state(
            "s-wire",
            SubjectState(
                SubjectKind.ACCOUNT,
                {
                    (Purpose.MARKETING_EMAIL, Regime.GDPR, None): (
                        Decision(NOW - 5, Choice.GRANTED, str(uuid.uuid4()), NOW + 10**9),
                        Decision(NOW, Choice.WITHDRAWN, str(uuid.uuid4())),
                    ),
                    (Purpose.TARGETED_ADVERTISING, Regime.CCPA, Recipient.CRITEO): (
                        Decision(NOW, Choice.WITHDRAWN, str(uuid.uuid4())),
                    ),
                },
                (Toggle(NOW - 9, True, str(uuid.uuid4())),),
                Erasure(NOW - 1, str(uuid.uuid4())),
            ),
            NOW + 5,
        ),
    ),
    (
        FullyPropagated,
        {
            "event_id": str(uuid.uuid4()),
            "subject": SUBJECT,
            "occurred_at": NOW,
            "completed_at": NOW + 1000,
            "destinations": [
                {
                    "destination": "MARKETING/suppression_list",
                    "outcome": "APPLIED",
                    "applied_at": NOW,
                }
            ],
        },
    ),
    (
        DeadLettered,
        {
            "dead_letter_id": str(uuid.uuid4()),
            "stage": "stream.intake",
            "source_topic": "t",
            "source_partition": 3,
            "source_offset": 42,
            "original_key": None,
            "original_value": b"\x00junk",
            "error_class": "TruncatedMessageError",
            "field_name": None,
            "reason": "body ends early",
            "dead_lettered_at": NOW,
        },
    ),
]


@pytest.mark.parametrize(("event_type", "avro"), EXAMPLES, ids=lambda v: getattr(v, "__name__", ""))
def test_stream_bytes_equal_the_producers_serializer(
    relay_settings: KafkaSettings, event_type: type[Any], avro: dict[str, Any]
) -> None:
    with relay_settings.registry_client() as registry:
        ours = RegistryEncoder(registry)(event_type, avro, "any.topic")
        theirs = EventSerializer(registry, event_type)(avro, "any.topic")
        assert ours == theirs
        assert isinstance(EventDecoder(registry).decode(ours), event_type)


def test_a_dict_that_does_not_fit_is_a_typed_error(relay_settings: KafkaSettings) -> None:
    with relay_settings.registry_client() as registry:
        encode = RegistryEncoder(registry)
        broken = dict(EXAMPLES[0][1], action="NOT_AN_ACTION")
        with pytest.raises(ConsentRelayError, match="InstructionIssued"):
            encode(InstructionIssued, broken, "any.topic")


def test_an_unreachable_registry_is_retriable() -> None:
    settings = KafkaSettings(bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1")
    with settings.registry_client() as registry, pytest.raises(RegistryUnavailableError):
        RegistryEncoder(registry)(DeadLettered, EXAMPLES[-1][1], "any.topic")
