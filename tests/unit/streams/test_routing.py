"""The routing file: the packaged one is valid and follows the policy; bad entries are
refused with a message naming them."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from schemas.taxonomy import (
    DIRECT_MARKETING_PURPOSES,
    PURPOSE_SPECS,
    REFUSABLE_PURPOSES,
    SALE_OR_SHARING_PURPOSES,
    Recipient,
    Right,
    SinkFamily,
)
from streams.intake.routing import (
    RightEffect,
    RoutingError,
    RoutingPolicy,
    load_policy,
    parse_policy,
)

PACKAGED = Path(__file__).resolve().parents[3] / "streams" / "intake" / "routing.toml"
AGREED_PARTNERS = {
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


@pytest.fixture
def raw() -> dict[str, Any]:
    return tomllib.loads(PACKAGED.read_text())


def test_packaged_policy_uses_the_agreed_destination_names(policy: RoutingPolicy) -> None:
    names = {(d.family, d.name) for d in policy.destinations}
    assert names == {
        (SinkFamily.MARKETING, "suppression_list"),
        (SinkFamily.ANALYTICS, "analytics_store"),
        *((SinkFamily.PARTNER_SHARING, n) for n in AGREED_PARTNERS),
    }
    assert all(
        d.recipient is Recipient(d.name.upper())
        for d in policy.destinations
        if d.family is SinkFamily.PARTNER_SHARING
    )


def test_packaged_policy_follows_the_privacy_policy(policy: RoutingPolicy) -> None:
    objection = policy.rights[Right.OBJECT_TO_DIRECT_MARKETING]
    assert objection.absolute
    assert objection.purposes >= DIRECT_MARKETING_PURPOSES
    assert policy.rights[Right.OPT_OUT_OF_SALE_OR_SHARING].purposes >= SALE_OR_SHARING_PURPOSES
    routed = set().union(*(d.purposes for d in policy.destinations))
    assert routed <= REFUSABLE_PURPOSES
    assert routed | set(policy.unrouted) >= REFUSABLE_PURPOSES
    for right in (Right.ERASURE, Right.ERASURE_OF_MINOR):
        assert policy.rights[right].effect is RightEffect.ERASE
    assert policy.rights[Right.RESTRICT_PROCESSING].effect is RightEffect.RESTRICT
    assert Right.ACCESS not in policy.rights
    assert all(d.holds_personal_data for d in policy.destinations)
    assert policy.version == "1"


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(PACKAGED.read_text())
    assert load_policy(path).destinations == load_policy().destinations


def test_unreadable_or_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match=r"missing\.toml"):
        load_policy(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("version = = 1")
    with pytest.raises(RoutingError, match="not valid TOML"):
        load_policy(broken)


def _expect(raw: dict[str, Any], entry: str, reason: str) -> None:
    with pytest.raises(RoutingError) as caught:
        parse_policy(raw)
    assert caught.value.entry.startswith(entry), caught.value
    assert reason in caught.value.reason, caught.value


def _destination(raw: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in raw["destinations"] if d["name"] == name)
    return found


def test_a_contract_purpose_is_refused(raw: dict[str, Any]) -> None:
    _destination(raw, "sellers")["purposes"].append("LOGISTICS")
    _expect(raw, "destinations[2] (PARTNER_SHARING/sellers)", "rests on CONTRACT")


def test_a_partner_must_be_a_recipient(raw: dict[str, Any]) -> None:
    _destination(raw, "criteo")["name"] = "acme_ads"
    _expect(raw, "destinations[", "a partner destination is one of sellers, business_partners")


def test_a_recipient_that_is_no_partner_is_refused(raw: dict[str, Any]) -> None:
    # A recipient the contract does not list among the partners (a service provider).
    _destination(raw, "criteo")["name"] = "cloud_providers"
    _expect(raw, "destinations[", "a partner destination is one of")


def test_unknown_family_purpose_and_keys(raw: dict[str, Any]) -> None:
    bad = copy.deepcopy(raw)
    bad["destinations"][0]["family"] = "BILLING"
    _expect(bad, "destinations[0]", "not a SinkFamily")
    bad = copy.deepcopy(raw)
    bad["destinations"][0]["purposes"].append("MIND_READING")
    _expect(bad, "destinations[0] (MARKETING/suppression_list)", "not a Purpose")
    bad = copy.deepcopy(raw)
    bad["destinations"][0]["colour"] = "red"
    _expect(bad, "destinations[0] (MARKETING/suppression_list).colour", "unknown key")
    bad = copy.deepcopy(raw)
    bad["extra"] = 1
    _expect(bad, "extra", "unknown key (known: destinations, rights")


def test_duplicates_are_refused(raw: dict[str, Any]) -> None:
    raw["destinations"].append(copy.deepcopy(raw["destinations"][0]))
    _expect(raw, "destinations[", "listed twice")


def test_every_refusable_purpose_needs_a_destination_or_a_reason(raw: dict[str, Any]) -> None:
    for dest in raw["destinations"]:
        if "RESEARCH_AND_STATISTICS" in dest["purposes"]:
            dest["purposes"].remove("RESEARCH_AND_STATISTICS")
    _expect(raw, "destinations", "RESEARCH_AND_STATISTICS")
    raw["unrouted"] = {"RESEARCH_AND_STATISTICS": "kept in the data warehouse only"}
    assert "RESEARCH_AND_STATISTICS" in {p.value for p in parse_policy(raw).unrouted}


def test_unrouted_entries_are_checked(raw: dict[str, Any]) -> None:
    raw["unrouted"] = {"MARKETING_EMAIL": "because"}
    _expect(raw, "unrouted.MARKETING_EMAIL", "is routed")
    raw["unrouted"] = {"MARKETING_EMAIL": ""}
    _expect(raw, "unrouted.MARKETING_EMAIL", "needs the reason")


def test_the_objection_must_stay_absolute_and_complete(raw: dict[str, Any]) -> None:
    bad = copy.deepcopy(raw)
    bad["rights"]["OBJECT_TO_DIRECT_MARKETING"]["absolute"] = False
    _expect(bad, "rights.OBJECT_TO_DIRECT_MARKETING", "must be absolute")
    bad = copy.deepcopy(raw)
    bad["rights"]["OBJECT_TO_DIRECT_MARKETING"]["purposes"].remove("TARGETED_ADVERTISING")
    _expect(bad, "rights.OBJECT_TO_DIRECT_MARKETING", "must cover TARGETED_ADVERTISING")
    bad = copy.deepcopy(raw)
    bad["rights"]["OPT_OUT_OF_SALE_OR_SHARING"]["purposes"].remove("SHARE_WITH_BUSINESS_PARTNERS")
    _expect(bad, "rights.OPT_OUT_OF_SALE_OR_SHARING", "must cover SHARE_WITH_BUSINESS_PARTNERS")


def test_rights_are_checked(raw: dict[str, Any]) -> None:
    bad = copy.deepcopy(raw)
    del bad["rights"]["ERASURE"]
    _expect(bad, "rights.ERASURE", "is missing")
    bad = copy.deepcopy(raw)
    bad["rights"]["ACCESS"] = {"effect": "erase"}
    _expect(bad, "rights.ACCESS", "not propagated")
    bad = copy.deepcopy(raw)
    bad["rights"]["ERASURE"]["purposes"] = ["MARKETING_EMAIL"]
    _expect(bad, "rights.ERASURE", "takes no purposes")
    bad = copy.deepcopy(raw)
    bad["rights"]["REFUSE_MARKETING"]["effect"] = "forget"
    _expect(bad, "rights.REFUSE_MARKETING.effect", "must be one of withdraw")
    bad = copy.deepcopy(raw)
    bad["rights"]["REFUSE_MARKETING"]["purposes"] = ["ACCOUNT_MANAGEMENT"]
    _expect(bad, "rights.REFUSE_MARKETING", "rests on CONTRACT")
    bad = copy.deepcopy(raw)
    bad["rights"]["NOT_A_RIGHT"] = {"effect": "erase"}
    _expect(bad, "rights.NOT_A_RIGHT", "is not a Right")


def test_version_is_required(raw: dict[str, Any]) -> None:
    del raw["version"]
    _expect(raw, "version", "is required")


def test_no_refusable_purpose_rests_on_contract_or_law() -> None:
    # The loader's contract rule relies on the taxonomy's flag.
    assert all(PURPOSE_SPECS[p].refusable for p in REFUSABLE_PURPOSES)
