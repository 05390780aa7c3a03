"""Instruction topics: a family's shared one, or a topic per destination."""

from __future__ import annotations

import pytest

from schemas.taxonomy import SinkFamily
from schemas.topics import TOPIC_PER_DESTINATION, Topics

TOPICS = Topics("t-1.", 3)


def test_partners_have_a_topic_each_and_the_others_share_their_familys() -> None:
    assert {SinkFamily.PARTNER_SHARING} == TOPIC_PER_DESTINATION
    partners = SinkFamily.PARTNER_SHARING
    assert TOPICS.instructions(partners, "google") == (
        "t-1.consent.instructions.partner_sharing.google"
    )
    assert TOPICS.instructions(partners, "mail_ru") != TOPICS.instructions(partners, "google")
    # A shared family ignores the destination.
    marketing = "t-1.consent.instructions.marketing"
    assert TOPICS.instructions(SinkFamily.MARKETING) == marketing
    assert TOPICS.instructions(SinkFamily.MARKETING, "suppression_list") == marketing


@pytest.mark.parametrize("destination", [None, "", "Google", "a.b", "x y", "../x"])
def test_a_partner_topic_needs_a_destination_name(destination: str | None) -> None:
    with pytest.raises(ValueError, match="topic per destination"):
        TOPICS.instructions(SinkFamily.PARTNER_SHARING, destination)


def test_every_instruction_topic_starts_with_the_instruction_prefixes() -> None:
    google = TOPICS.instructions(SinkFamily.PARTNER_SHARING, "google")
    assert google.startswith(TOPICS.instruction_prefix(SinkFamily.PARTNER_SHARING))
    assert not google.startswith(TOPICS.instruction_prefix(SinkFamily.ANALYTICS))
    for family in SinkFamily:
        name = TOPICS.instructions(family, "google")
        assert name.startswith(TOPICS.instruction_prefix())
    assert not TOPICS.consent.startswith(TOPICS.instruction_prefix())


def test_all_has_no_partner_family_topic_but_the_given_destinations_topics() -> None:
    names = [s.name for s in TOPICS.all()]
    assert "t-1.consent.instructions.partner_sharing" not in names
    assert "t-1.consent.instructions.analytics" in names
    destinations = [
        (SinkFamily.PARTNER_SHARING, "google"),
        (SinkFamily.MARKETING, "suppression_list"),
        (SinkFamily.PARTNER_SHARING, "bing"),
        (SinkFamily.PARTNER_SHARING, "google"),
    ]
    own = TOPICS.destination_topics(destinations)
    assert [s.name for s in own] == [
        "t-1.consent.instructions.partner_sharing.google",
        "t-1.consent.instructions.partner_sharing.bing",
    ]
    assert all(s.partitions == 3 and not s.config for s in own)
    assert TOPICS.all(destinations) == (*TOPICS.all(), *own)
