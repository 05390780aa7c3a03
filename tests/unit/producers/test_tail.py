"""What a topic name given to ``consent-relay tail`` means, without a broker."""

from __future__ import annotations

import pytest

from producers.tail import resolve
from schemas.errors import ConsentRelayError
from schemas.taxonomy import SinkFamily
from schemas.topics import Topics

TOPICS = Topics("p.")


def test_short_names_of_fixed_and_family_topics() -> None:
    assert resolve(TOPICS, "receipts") == ["p.consent.receipts"]
    assert resolve(TOPICS, "instructions.marketing") == [TOPICS.instructions(SinkFamily.MARKETING)]
    assert resolve(TOPICS, "instructions.partner_sharing") == [
        "p.consent.instructions.partner_sharing"
    ]
    assert resolve(TOPICS, "some.full.name") == ["some.full.name"]


def test_a_partners_short_name_is_its_legacy_topic() -> None:
    assert resolve(TOPICS, "instructions.partner_sharing.google") == [
        "p.consent.instructions.partner_sharing.google"
    ]


def test_a_bad_destination_name_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConsentRelayError, match="had no topic"):
        resolve(TOPICS, "instructions.partner_sharing.Not-A-Name")
