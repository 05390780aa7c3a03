"""JSON drafts → records: defaults filled, every problem named by field."""

from __future__ import annotations

from typing import Any

import pytest

from producers import drafts
from producers.envelope import EnvelopeDefaults
from schemas.errors import ValidationError
from schemas.events import ConsentChanged, RightsRequested
from schemas.taxonomy import Regime, Source

SUBJECT = {"id": "u-1", "kind": "ACCOUNT"}


def test_defaults_are_filled_and_given_fields_kept() -> None:
    event = drafts.build(
        ConsentChanged,
        {"subject": SUBJECT, "choice": "WITHDRAWN", "purposes": ["MARKETING_EMAIL"]},
        EnvelopeDefaults(regime=Regime.CCPA),
    )
    assert isinstance(event, ConsentChanged)
    assert event.regime is Regime.CCPA
    assert event.source is Source.API
    assert event.event_id


def test_forced_fields_win_over_the_draft() -> None:
    event = drafts.build(
        ConsentChanged,
        {"subject": SUBJECT, "choice": "GRANTED", "purposes": ["MARKETING_SMS"], "source": "API"},
        forced={"source": "BULK_IMPORT"},
    )
    assert event.source is Source.BULK_IMPORT


def test_typed_draft_picks_the_record() -> None:
    event = drafts.build_typed({"type": "RightsRequested", "subject": SUBJECT, "right": "ERASURE"})
    assert isinstance(event, RightsRequested)


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        ({"type": "Nope"}, "type"),
        ({"type": "ConsentChanged", "subject": "u-1"}, "subject"),
        ({"type": "ConsentChanged", "subject": {"id": "u-1"}}, "subject.kind"),
        (
            {
                "type": "ConsentChanged",
                "subject": {"id": "u\u0000-1", "kind": "ACCOUNT"},
                "choice": "WITHDRAWN",
                "purposes": ["MARKETING_EMAIL"],
            },
            "subject.id",
        ),
        (
            {"type": "ConsentChanged", "subject": SUBJECT, "choice": "MAYBE", "purposes": []},
            "choice",
        ),
        (
            {
                "type": "ConsentChanged",
                "subject": SUBJECT,
                "choice": "GRANTED",
                "purposes": ["MARKETING_EMAIL"],
                "colour": "blue",
            },
            "colour",
        ),
        (
            {
                "type": "ConsentChanged",
                "subject": SUBJECT,
                "choice": "GRANTED",
                "purposes": ["MARKETING_EMAIL"],
                "occurred_at": "yesterday",
            },
            "occurred_at",
        ),
    ],
)
def test_problems_name_the_field(draft: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        drafts.build_typed(draft)
    assert caught.value.field_name == field
