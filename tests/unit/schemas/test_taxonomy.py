"""The taxonomy's tables are complete and consistent with each other, and the names the
team agreed on (destinations, instruction ids, topics) follow from it."""

from __future__ import annotations

import uuid

import pytest

from schemas.events import instruction_id, new_event_id
from schemas.taxonomy import (
    COOKIE_PURPOSES,
    DIRECT_MARKETING_PURPOSES,
    OPT_IN_REGIMES,
    PARTNER_DESTINATIONS,
    PURPOSE_SPECS,
    RECIPIENT_SPECS,
    REFUSABLE_PURPOSES,
    RIGHT_SPECS,
    SALE_OR_SHARING_PURPOSES,
    Channel,
    CookieCategory,
    LegalBasis,
    Purpose,
    Recipient,
    Regime,
    Right,
    SinkFamily,
)
from schemas.topics import COMPACTED, Topics

AGREED_PARTNER_DESTINATIONS = {
    "sellers",
    "business_partners",
    "group_companies",
    "google",
    "facebook",
    "instagram",
    "twitter",
    "vkontakte",
    "criteo",
    "bing",
    "yahoo",
    "mail_ru",
    "yandex",
    "google_analytics",
    "analytics_providers",
    "others_by_consent",
}


def test_every_symbol_has_a_spec() -> None:
    assert set(PURPOSE_SPECS) == set(Purpose)
    assert set(RECIPIENT_SPECS) == set(Recipient)
    assert set(RIGHT_SPECS) == set(Right)


def test_specs_cite_the_policy() -> None:
    for spec in [*PURPOSE_SPECS.values(), *RECIPIENT_SPECS.values(), *RIGHT_SPECS.values()]:
        assert spec.meaning.strip()
        assert spec.policy_ref.strip()


def test_only_consent_and_legitimate_interest_can_be_refused() -> None:
    for purpose, spec in PURPOSE_SPECS.items():
        refusable_basis = spec.basis in {LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTEREST}
        assert spec.refusable is refusable_basis, purpose
    assert {p for p, s in PURPOSE_SPECS.items() if s.refusable} == REFUSABLE_PURPOSES


def test_each_cookie_category_has_exactly_one_purpose() -> None:
    assert set(COOKIE_PURPOSES) == set(CookieCategory)
    assert COOKIE_PURPOSES[CookieCategory.ESSENTIAL] is Purpose.COOKIES_ESSENTIAL
    assert not PURPOSE_SPECS[Purpose.COOKIES_ESSENTIAL].refusable


def test_each_channel_has_one_marketing_purpose_and_it_is_direct_marketing() -> None:
    by_channel = {s.channel: p for p, s in PURPOSE_SPECS.items() if s.channel is not None}
    assert set(by_channel) == set(Channel)
    assert set(by_channel.values()) <= DIRECT_MARKETING_PURPOSES


def test_direct_marketing_and_sale_purposes_can_all_be_refused() -> None:
    assert DIRECT_MARKETING_PURPOSES <= REFUSABLE_PURPOSES
    assert SALE_OR_SHARING_PURPOSES <= REFUSABLE_PURPOSES


def test_gdpr_is_opt_in() -> None:
    assert set(OPT_IN_REGIMES) == {Regime.GDPR}


def test_agreed_partner_destinations_are_recipients() -> None:
    values = {r.value.lower() for r in Recipient}
    assert values >= AGREED_PARTNER_DESTINATIONS
    assert set(PARTNER_DESTINATIONS) == AGREED_PARTNER_DESTINATIONS
    consent_based = {r.value.lower() for r, s in RECIPIENT_SPECS.items() if s.consent_based}
    assert consent_based <= AGREED_PARTNER_DESTINATIONS


def test_account_only_rights_include_the_requests_a_device_cannot_make() -> None:
    for right in (Right.ACCESS, Right.RECTIFICATION, Right.PORTABILITY):
        assert RIGHT_SPECS[right].account_only
        assert not RIGHT_SPECS[right].propagated
    assert RIGHT_SPECS[Right.WITHDRAW_CONSENT].propagated


@pytest.mark.parametrize("family", list(SinkFamily))
def test_instruction_id_is_the_agreed_uuid5(family: SinkFamily) -> None:
    event_id = new_event_id()
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{family.value}/criteo")
    assert instruction_id(event_id, family, "criteo") == str(expected)
    assert instruction_id(event_id, family, "criteo") == instruction_id(event_id, family, "criteo")
    assert instruction_id(event_id, family, "bing") != instruction_id(event_id, family, "criteo")


def test_topics_are_prefixed_distinct_and_the_state_is_compacted() -> None:
    topics = Topics("t-1.", 3)
    specs = topics.all()
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    assert all(n.startswith("t-1.") for n in names)
    assert all(s.partitions == 3 for s in specs)
    compacted = {s.name for s in specs if s.config.items() >= COMPACTED.items()}
    assert compacted == {topics.state, topics.intake_progress}
    # The state topic is the state table's changelog too: small segments, compacted soon.
    assert next(s for s in specs if s.name == topics.state).config["segment.ms"] == "60000"
    assert topics.instructions(SinkFamily.MARKETING) == "t-1.consent.instructions.marketing"
