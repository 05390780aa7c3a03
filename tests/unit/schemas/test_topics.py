"""Instruction topics: one per family; the partners' legacy topic per destination; the
destination header."""

from __future__ import annotations

import pytest

from schemas.taxonomy import SinkFamily
from schemas.topics import (
    LEGACY_TOPIC_PER_DESTINATION,
    ONE_RECORD_PER_EVENT,
    Topics,
    destinations_header,
    names_destination,
)

TOPICS = Topics("t-1.", 3)


def test_every_family_has_one_topic_and_the_partners_one_record_per_event() -> None:
    assert {SinkFamily.PARTNER_SHARING} == ONE_RECORD_PER_EVENT
    assert TOPICS.instructions(SinkFamily.PARTNER_SHARING) == (
        "t-1.consent.instructions.partner_sharing"
    )
    assert TOPICS.instructions(SinkFamily.MARKETING) == "t-1.consent.instructions.marketing"
    names = [s.name for s in TOPICS.all()]
    for family in SinkFamily:
        assert TOPICS.instructions(family) in names
    assert all(s.partitions == 3 for s in TOPICS.all())


def test_the_partners_legacy_topics_are_named_per_destination() -> None:
    assert {SinkFamily.PARTNER_SHARING} == LEGACY_TOPIC_PER_DESTINATION
    partners = SinkFamily.PARTNER_SHARING
    assert TOPICS.legacy_instructions(partners, "google") == (
        "t-1.consent.instructions.partner_sharing.google"
    )
    assert TOPICS.legacy_instructions(partners, "google").startswith(
        TOPICS.instruction_prefix(partners)
    )
    assert not any(s.name.startswith(TOPICS.instruction_prefix(partners)) for s in TOPICS.all())


@pytest.mark.parametrize("destination", ["", "Google", "a.b", "x y", "../x"])
def test_a_legacy_topic_needs_a_destination_name(destination: str) -> None:
    with pytest.raises(ValueError, match="had no topic"):
        TOPICS.legacy_instructions(SinkFamily.PARTNER_SHARING, destination)


def test_only_the_partners_had_legacy_topics() -> None:
    with pytest.raises(ValueError, match="had no topic"):
        TOPICS.legacy_instructions(SinkFamily.MARKETING, "suppression_list")


def test_every_instruction_topic_starts_with_the_instruction_prefix() -> None:
    for family in SinkFamily:
        assert TOPICS.instructions(family).startswith(TOPICS.instruction_prefix())
    assert not TOPICS.consent.startswith(TOPICS.instruction_prefix())


def test_the_destination_header_lists_each_destination_once() -> None:
    header = destinations_header(["google", "bing", "google", "mail_ru"])
    assert header == b"google,bing,mail_ru"
    assert names_destination(header, "bing")
    assert names_destination(header, "mail_ru")
    assert not names_destination(header, "mail")
    assert not names_destination(header, "ru")
    assert names_destination(destinations_header(["suppression_list"]), "suppression_list")
