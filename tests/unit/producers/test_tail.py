"""What a topic name given to ``consent-relay tail`` means, without a broker."""

from __future__ import annotations

import pytest

from producers.tail import resolve
from schemas.errors import ConsentRelayError
from schemas.taxonomy import SinkFamily
from schemas.topics import Topics

TOPICS = Topics("p.")
ON_BROKER = [
    "p.consent.instructions.partner_sharing.google",
    "p.consent.instructions.marketing",
    "q.consent.instructions.partner_sharing.bing",
    "p.consent.instructions.partner_sharing.bing",
    "p.consent.events",
]


def nothing_listed() -> list[str]:
    raise AssertionError("the broker is asked only for a whole per-destination family")


def test_short_names_of_fixed_and_destination_topics() -> None:
    assert resolve(TOPICS, "receipts", nothing_listed) == ["p.consent.receipts"]
    assert resolve(TOPICS, "instructions.marketing", nothing_listed) == [
        TOPICS.instructions(SinkFamily.MARKETING)
    ]
    assert resolve(TOPICS, "instructions.partner_sharing.google", nothing_listed) == [
        "p.consent.instructions.partner_sharing.google"
    ]
    assert resolve(TOPICS, "some.full.name", nothing_listed) == ["some.full.name"]


def test_a_per_destination_family_means_every_such_topic_on_the_broker() -> None:
    assert resolve(TOPICS, "instructions.partner_sharing", lambda: ON_BROKER) == [
        "p.consent.instructions.partner_sharing.bing",
        "p.consent.instructions.partner_sharing.google",
    ]
    with pytest.raises(ConsentRelayError, match="no instruction topic"):
        resolve(TOPICS, "instructions.partner_sharing", lambda: ["p.consent.events"])


def test_a_bad_destination_name_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConsentRelayError, match="topic per destination"):
        resolve(TOPICS, "instructions.partner_sharing.Not-A-Name", nothing_listed)
