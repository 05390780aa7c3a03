"""The policy digest's tables as data: every row maps to taxonomy symbols that exist and
say what the digest says (legal basis, whether it can be refused).

The rows follow /work/shared/policy/DIGEST.md section by section (plus what the French
original says and the digest summarises away, marked "FR"). ``schemas/DIGEST_MAPPING.md``
is rendered from these rows; when a test says it is stale, regenerate it with
``.venv/bin/python tests/unit/schemas/test_digest_mapping.py``.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from schemas import taxonomy
from schemas.taxonomy import (
    PURPOSE_SPECS,
    RECIPIENT_SPECS,
    LegalBasis,
    Purpose,
    Recipient,
)

MAPPING_FILE = Path(__file__).resolve().parents[3] / "schemas" / "DIGEST_MAPPING.md"
_B = LegalBasis


@dataclass(frozen=True)
class Row:
    """One promise of the digest and the contract symbols that carry it."""

    section: str
    promise: str
    symbols: tuple[str, ...]
    refusable: bool | None = None
    """What the digest says of every Purpose in ``symbols``: can the person say no?"""
    bases: frozenset[LegalBasis] | None = None
    """Legal bases the digest allows for every Purpose in ``symbols``."""
    consent_based: bool | None = None
    """What the digest says of every Recipient in ``symbols``."""
    note: str = ""


WHO = "Who the people are"
VERSIONS = "Policy versions"
PURPOSES = "Purposes of processing (B)"
CHANNELS = "Marketing channels (G, 2018 I)"
RECIPIENTS = "Recipients of personal data (C)"
COOKIES = "Cookies and trackers (E; 2018 E)"
RIGHTS = "Rights of people in the EEA (G; 2018 I)"
RULES = "Rules that shape the system"

ROWS: tuple[Row, ...] = (
    # --- versions (digest preamble) ---
    Row(
        VERSIONS,
        "Two versions: in force from 2019-07-15 (sections A-I) and from 2018-05-25 (A-J)",
        (
            "PolicyVersion.V2019_07_15",
            "PolicyVersion.V2018_05_25",
            "validation.POLICY_IN_FORCE_FROM",
        ),
        note="an event may not cite a version before it came into force",
    ),
    # --- who ---
    Row(
        WHO,
        "Buyers and sellers (businesses, their employees and representatives)",
        ("SubjectKind.ACCOUNT",),
    ),
    Row(WHO, "Plain visitors", ("SubjectKind.DEVICE",), note="a browser/device id, no account"),
    Row(
        WHO,
        "Certified bloggers/influencers",
        ("SubjectKind.ACCOUNT",),
        note="account holders with the same choices and rights",
    ),
    Row(
        WHO,
        "Minors must not be users; a parent or guardian can ask for a minor's data "
        "to be deleted (2018 F)",
        ("Right.ERASURE_OF_MINOR", "Requester.GUARDIAN"),
        note="validation requires requested_by=GUARDIAN",
    ),
    Row(
        WHO,
        "In the EEA (and the UK) the controller is a Singapore entity (G, 2018 I)",
        ("Regime.GDPR",),
        note="GDPR covers the EEA and the UK",
    ),
    # --- purposes table ---
    Row(
        PURPOSES,
        "Identity, KYC, anti-money-laundering, account security, fraud detection",
        (
            "Purpose.IDENTITY_VERIFICATION_KYC",
            "Purpose.ANTI_MONEY_LAUNDERING",
            "Purpose.ACCOUNT_SECURITY_AND_FRAUD",
        ),
        refusable=False,
        bases=frozenset({_B.LEGAL_OBLIGATION, _B.CONTRACT}),
    ),
    Row(
        PURPOSES,
        "Run the account, customer service, transactions, payments, logistics, customs",
        (
            "Purpose.ACCOUNT_MANAGEMENT",
            "Purpose.CUSTOMER_SERVICE",
            "Purpose.TRANSACTIONS_AND_PAYMENTS",
            "Purpose.LOGISTICS",
            "Purpose.CUSTOMS",
        ),
        refusable=False,
        bases=frozenset({_B.CONTRACT}),
        note="FR also lists eligibility checks and sellers' withdrawals: same purposes",
    ),
    Row(
        PURPOSES,
        "Personalised marketing and communications from browsing and order history "
        "(opt-out; objection to direct marketing is absolute)",
        ("Purpose.PERSONALISED_MARKETING", "Right.OBJECT_TO_DIRECT_MARKETING"),
        refusable=True,
        bases=frozenset({_B.CONSENT, _B.LEGITIMATE_INTEREST}),
    ),
    Row(
        PURPOSES,
        "Research and statistics to improve the platform (incl. ML on anonymised data)",
        (
            "Purpose.RESEARCH_AND_STATISTICS",
            "Right.OBJECT_TO_LEGITIMATE_INTEREST",
            "LegalBasis.LEGITIMATE_INTEREST",
        ),
        refusable=True,
        bases=frozenset({_B.LEGITIMATE_INTEREST}),
    ),
    Row(
        PURPOSES,
        "Targeted advertising via cookies, across browsers and devices",
        ("Purpose.TARGETED_ADVERTISING", "Purpose.COOKIES_MARKETING"),
        refusable=True,
        bases=frozenset({_B.CONSENT}),
    ),
    Row(
        PURPOSES,
        "Buyers: share the latest products they viewed with sellers (one switch in the "
        "buyer's privacy settings)",
        (
            "Purpose.SHARE_VIEWED_PRODUCTS_WITH_SELLERS",
            "Recipient.SELLERS",
            "Source.PRIVACY_SETTINGS",
        ),
        refusable=True,
        bases=frozenset({_B.CONSENT}),
        consent_based=True,
    ),
    Row(
        PURPOSES,
        "FR B: further compatible purposes (archiving in the public interest, scientific "
        "or historical research, statistics)",
        ("Purpose.RESEARCH_AND_STATISTICS",),
        refusable=True,
        bases=frozenset({_B.LEGITIMATE_INTEREST}),
    ),
    Row(
        PURPOSES,
        "FR B: consent is asked before marketing communications where the law requires it",
        ("OPT_IN_REGIMES", "LegalBasis.CONSENT", "Purpose.MARKETING_EMAIL"),
        refusable=True,
        bases=frozenset({_B.CONSENT}),
        note="GDPR is opt-in: no recorded consent means no consent",
    ),
    # --- channels ---
    Row(
        CHANNELS,
        "Email: unsubscribe link in every marketing email",
        ("Channel.EMAIL", "Purpose.MARKETING_EMAIL", "Source.UNSUBSCRIBE_LINK"),
        refusable=True,
    ),
    Row(
        CHANNELS,
        "Postal mail and telephone (telemarketing): by contacting the controller",
        (
            "Channel.POSTAL_MAIL",
            "Channel.TELEPHONE",
            "Purpose.MARKETING_POSTAL_MAIL",
            "Purpose.MARKETING_TELEPHONE",
            "Source.DATA_PROTECTION_CONTACT",
            "Source.CUSTOMER_SERVICE",
        ),
        refusable=True,
    ),
    Row(
        CHANNELS,
        "Refusing marketing communications is a separate right from objecting to direct "
        "marketing; both stop all direct marketing on the channel(s) concerned",
        (
            "Right.REFUSE_MARKETING",
            "Right.OBJECT_TO_DIRECT_MARKETING",
            "DIRECT_MARKETING_PURPOSES",
            "events.RightsRequested.channels",
        ),
    ),
    # --- recipients ---
    Row(
        RECIPIENTS,
        "Other platform users (sellers), when needed for a purchase or communication",
        ("Purpose.SELLER_COMMUNICATION_FOR_PURCHASE", "Recipient.SELLERS"),
        refusable=False,
        bases=frozenset({_B.CONTRACT}),
        note="only the viewed-products sharing (B) with sellers can be refused",
    ),
    Row(
        RECIPIENTS,
        "Group companies and their processors (software, messaging tools)",
        ("Recipient.GROUP_COMPANIES",),
        consent_based=False,
    ),
    Row(
        RECIPIENTS,
        "Business partners, so they can offer you discounts or offers",
        ("Recipient.BUSINESS_PARTNERS", "Purpose.SHARE_WITH_BUSINESS_PARTNERS"),
        refusable=True,
        consent_based=True,
    ),
    Row(
        RECIPIENTS,
        "Marketing and advertising platforms: Google, Twitter, Facebook, Instagram "
        "(2018 adds VKontakte)",
        (
            "Recipient.GOOGLE",
            "Recipient.TWITTER",
            "Recipient.FACEBOOK",
            "Recipient.INSTAGRAM",
            "Recipient.VKONTAKTE",
            "Purpose.SHARE_WITH_ADVERTISING_PLATFORMS",
        ),
        refusable=True,
        bases=frozenset({_B.CONSENT}),
        consent_based=True,
    ),
    Row(
        RECIPIENTS,
        "User-behaviour analytics providers, to tailor content and targeted ads",
        ("Recipient.ANALYTICS_PROVIDERS", "Purpose.SHARE_WITH_ANALYTICS_PROVIDERS"),
        refusable=True,
        consent_based=True,
    ),
    Row(
        RECIPIENTS,
        "Payment providers, risk/credit assessors, logistics partners, customs agents, cloud "
        "providers, customer-service providers, warranty providers (2018), rating/review "
        "providers, risk-control providers: contract-based, not consent",
        (
            "Recipient.PAYMENT_PROVIDERS",
            "Recipient.RISK_AND_CREDIT_ASSESSORS",
            "Recipient.LOGISTICS_PARTNERS",
            "Recipient.CUSTOMS_AGENTS",
            "Recipient.CLOUD_PROVIDERS",
            "Recipient.CUSTOMER_SERVICE_PROVIDERS",
            "Recipient.WARRANTY_PROVIDERS",
            "Recipient.RATING_AND_REVIEW_PROVIDERS",
            "Recipient.RISK_CONTROL_PROVIDERS",
        ),
        consent_based=False,
    ),
    Row(
        RECIPIENTS,
        "Advisers, law enforcement, regulators (FR adds insurers and government, and vital "
        "interests as a ground)",
        (
            "Recipient.PROFESSIONAL_ADVISERS",
            "Recipient.AUTHORITIES",
            "Recipient.INSURERS",
            "Purpose.LEGAL_COMPLIANCE",
            "LegalBasis.LEGAL_OBLIGATION",
            "LegalBasis.VITAL_INTERESTS",
        ),
        refusable=False,
        bases=frozenset({_B.LEGAL_OBLIGATION}),
        consent_based=False,
    ),
    Row(
        RECIPIENTS,
        "A buyer of the business",
        ("Recipient.BUSINESS_ACQUIRER",),
        consent_based=False,
    ),
    Row(
        RECIPIENTS,
        "Any other person with your consent",
        ("Recipient.OTHERS_BY_CONSENT", "Purpose.SHARE_WITH_OTHERS_BY_CONSENT"),
        refusable=True,
        consent_based=True,
    ),
    Row(
        RECIPIENTS,
        "Aggregated or anonymised data may go to anyone: it identifies no one",
        ("events.Subject",),
        note="only data about a Subject is governed; anonymised data has none",
    ),
    # --- cookies table ---
    Row(
        COOKIES,
        "Essential / strictly necessary (cart, login): cannot be disabled",
        (
            "CookieCategory.ESSENTIAL",
            "Purpose.COOKIES_ESSENTIAL",
            "validation.validate_cookie_preferences",
        ),
        refusable=False,
        note="refusing ESSENTIAL is a validation error",
    ),
    Row(
        COOKIES,
        "Statistics / analytics: the platform's own analytics, Google Analytics "
        "(_ga, _gat, __utma...)",
        ("CookieCategory.STATISTICS", "Purpose.COOKIES_STATISTICS", "Recipient.GOOGLE_ANALYTICS"),
        refusable=True,
        consent_based=True,
    ),
    Row(
        COOKIES,
        "Personalisation and service, incl. social cookies: language/region, remembered "
        "login, recommendations, social log-in and sharing (Google)",
        ("CookieCategory.PERSONALISATION", "Purpose.COOKIES_PERSONALISATION", "Recipient.GOOGLE"),
        refusable=True,
        consent_based=True,
        note="FR: embedded videos (YouTube) set their own cookies, outside the platform",
    ),
    Row(
        COOKIES,
        "Marketing: Facebook, Twitter, Google, Criteo, Bing, Yahoo, Mail.ru, Yandex; email "
        "open/conversion tracking; web beacons (pixels)",
        (
            "CookieCategory.MARKETING",
            "Purpose.COOKIES_MARKETING",
            "Recipient.FACEBOOK",
            "Recipient.TWITTER",
            "Recipient.GOOGLE",
            "Recipient.CRITEO",
            "Recipient.BING",
            "Recipient.YAHOO",
            "Recipient.MAIL_RU",
            "Recipient.YANDEX",
        ),
        refusable=True,
        consent_based=True,
    ),
    Row(
        COOKIES,
        "Preferences are set per browser/device (Cookie Preferences Tool) and separately "
        "per device",
        (
            "events.CookiePreferencesSet",
            "events.CookiePreferencesSet.device_id",
            "Source.COOKIE_TOOL",
        ),
    ),
    Row(
        COOKIES,
        "A visitor may be anonymous (device id, no account)",
        ("SubjectKind.DEVICE",),
        note="account-only rights are refused for DEVICE subjects",
    ),
    Row(
        COOKIES,
        "Google Analytics has its own opt-out (browser add-on); IP addresses are truncated "
        "in the EEA before storage",
        ("Recipient.GOOGLE_ANALYTICS", "Purpose.COOKIES_STATISTICS"),
        refusable=True,
        consent_based=True,
        note="the add-on acts in the browser; the relay carries the cookie-tool choice",
    ),
    # --- rights ---
    Row(
        RIGHTS,
        "Access, rectification, update, erasure",
        ("Right.ACCESS", "Right.RECTIFICATION", "Right.ERASURE"),
        note="access and rectification are requests only, not propagated",
    ),
    Row(
        RIGHTS,
        "Object to processing based on legitimate interests; separately, object to direct "
        "marketing",
        ("Right.OBJECT_TO_LEGITIMATE_INTEREST", "Right.OBJECT_TO_DIRECT_MARKETING"),
        note="an objection to direct marketing is absolute (GDPR Art 21(3)) and withdraws "
        "every direct-marketing purpose; a later explicit grant re-enables only the purpose "
        "(channel) it grants, the others stay withdrawn (REFERENCE.md, 'Objection to direct "
        "marketing')",
    ),
    Row(
        RIGHTS,
        "Restriction of processing; data portability (transfert, 2019 only)",
        ("Right.RESTRICT_PROCESSING", "Right.LIFT_RESTRICTION", "Right.PORTABILITY"),
        note="portability is a request only, not propagated",
    ),
    Row(RIGHTS, "Refuse marketing communications at any time", ("Right.REFUSE_MARKETING",)),
    Row(
        RIGHTS,
        "Withdraw consent at any time; earlier processing stays lawful, and processing on "
        "another legal basis goes on",
        ("Right.WITHDRAW_CONSENT", "Choice.WITHDRAWN", "LegalBasis.CONSENT"),
    ),
    Row(
        RIGHTS,
        "Complain to a data-protection authority",
        ("Regime.GDPR",),
        note="lodged with the authority, not the controller: nothing to propagate",
    ),
    # --- rules ---
    Row(
        RULES,
        "A withdrawal concerns only consent-based processing; contract and legal-obligation "
        "processing go on",
        (
            "validation.validate_consent_changed",
            "REFUSABLE_PURPOSES",
            "LegalBasis.CONTRACT",
            "LegalBasis.LEGAL_OBLIGATION",
        ),
        note="withdrawing a non-refusable purpose or recipient is a validation error",
    ),
    Row(
        RULES,
        "Material changes need fresh consent where the law requires it: consents are tied "
        "to the policy version they were given under",
        ("events.ConsentEvent.policy_version", "PolicyVersion.V2019_07_15"),
    ),
    Row(
        RULES,
        "Data no longer needed is deleted or anonymised; where impossible (backups) it is "
        "isolated from further processing until it can be deleted",
        ("Action.ERASE", "Action.RESTRICT", "Right.ERASURE", "Right.RESTRICT_PROCESSING"),
    ),
    Row(
        RULES,
        "In case of conflict between language versions the English one prevails",
        ("PolicyVersion",),
        note="a version names the (English) policy by the date it came into force",
    ),
)

NOT_YET_IN_THE_CONTRACT: dict[str, str] = {
    "Purpose.HEALTH_DATA_FOR_DISPUTES": (
        "FR A: end users' health data handled in complaints or disputes, only with explicit "
        "consent (Art. 9). A refusable purpose needs a destination that hears its "
        "withdrawal (streams/intake/routing.py refuses to start otherwise), and no sink holds "
        "dispute files yet: add the symbol together with that destination."
    ),
}
"""Promises of the French original the contract does not carry yet, and why; each must
not resolve (when someone adds it, the test asks for a real row instead)."""

NOT_FROM_THE_POLICY: dict[str, str] = {
    "Channel.SMS": "channel the platform may add; not named by the policy",
    "Channel.PUSH": "channel the platform may add; not named by the policy",
    "Purpose.MARKETING_SMS": "marketing on Channel.SMS",
    "Purpose.MARKETING_PUSH": "marketing on Channel.PUSH",
    "Right.OPT_OUT_OF_SALE_OR_SHARING": "CCPA/CPRA opt-out (GPC signal), not an EEA right",
    "Regime.CCPA": "California, for the GPC signal",
    "Regime.OTHER": "any other jurisdiction",
    "Source.GPC_SIGNAL": "Global Privacy Control browser signal (CCPA)",
    "Source.API": "another service's API call",
    "Source.BULK_IMPORT": "migration of choices recorded before Consent Relay",
    "Requester.SUBJECT": "the default: the person themself",
    "Requester.AUTHORISED_AGENT": "CCPA authorised agent",
    "Choice.GRANTED": "the opposite of a withdrawal",
}
"""Policy-side symbols no digest row names, and why they exist anyway."""

POLICY_ENUMS: tuple[type[StrEnum], ...] = (
    taxonomy.LegalBasis,
    taxonomy.Channel,
    taxonomy.CookieCategory,
    taxonomy.Purpose,
    taxonomy.Recipient,
    taxonomy.Right,
    taxonomy.Regime,
    taxonomy.Source,
    taxonomy.PolicyVersion,
    taxonomy.SubjectKind,
    taxonomy.Choice,
    taxonomy.Requester,
)
"""Enums that come from the policy; every member must be explained by a row or above."""

_MODULES = {"events", "validation", "taxonomy", "converters", "codec"}


def resolve(name: str) -> Any:
    """The object a symbol name denotes: ``Purpose.X`` in the taxonomy, or ``module.attr``."""
    head, *rest = name.split(".")
    if head in _MODULES:
        obj: Any = importlib.import_module(f"schemas.{head}")
        parts = rest
    else:
        obj, parts = taxonomy, [head, *rest]
    for part in parts:
        obj = getattr(obj, part)
    return obj


def render(rows: tuple[Row, ...] = ROWS) -> str:
    """The markdown mapping table."""
    out = [
        "# Policy digest → contract symbols",
        "",
        "Every promise in the policy digest (`/work/shared/policy/DIGEST.md`), plus what the",
        'French original adds ("FR"), and the symbols of `schemas` that carry it. Rendered',
        "from `tests/unit/schemas/test_digest_mapping.py`, which checks that each symbol",
        "exists and that legal bases and refusability match; regenerate with",
        "`.venv/bin/python tests/unit/schemas/test_digest_mapping.py`.",
        "",
        f"{len(rows)} rows, {len({s for r in rows for s in r.symbols})} distinct symbols.",
    ]
    section = ""
    for number, row in enumerate(rows, 1):
        if row.section != section:
            section = row.section
            out += ["", f"## {section}", "", "| # | promise | symbols | notes |"]
            out.append("|---|---|---|---|")
        symbols = "<br>".join(f"`{s}`" for s in row.symbols)
        out.append(f"| {number} | {row.promise} | {symbols} | {_notes(row)} |")
    out += [
        "",
        "## Symbols not from the policy",
        "",
        "| symbol | why it exists |",
        "|---|---|",
    ]
    out += [f"| `{s}` | {why} |" for s, why in NOT_FROM_THE_POLICY.items()]
    out += [
        "",
        "## Promises not yet in the contract",
        "",
        "| proposed symbol | promise and what it waits for |",
        "|---|---|",
    ]
    out += [f"| `{s}` | {why} |" for s, why in NOT_YET_IN_THE_CONTRACT.items()]
    return "\n".join(out) + "\n"


def _notes(row: Row) -> str:
    parts = []
    if row.bases is not None:
        parts.append("basis " + " or ".join(sorted(row.bases)))
    if row.refusable is not None:
        parts.append("refusable" if row.refusable else "cannot be refused")
    if row.consent_based is not None:
        parts.append("consent-based sharing" if row.consent_based else "sharing not by consent")
    if row.note:
        parts.append(row.note)
    return "; ".join(parts)


def _members(row: Row, enum: type[StrEnum]) -> list[Any]:
    found = (resolve(s) for s in row.symbols)
    return [m for m in found if isinstance(m, enum)]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.promise[:40])
def test_every_row_maps_to_existing_symbols(row: Row) -> None:
    assert row.symbols, f"digest row has no symbol: {row.promise}"
    for name in row.symbols:
        try:
            resolve(name)
        except (AttributeError, ModuleNotFoundError) as exc:
            pytest.fail(f"{row.promise!r} maps to {name}, which does not exist: {exc}")


@pytest.mark.parametrize("row", [r for r in ROWS if r.refusable is not None or r.bases])
def test_purposes_are_refusable_and_based_as_the_digest_says(row: Row) -> None:
    purposes = _members(row, Purpose)
    assert purposes, f"row states refusability/basis but names no purpose: {row.promise}"
    for purpose in purposes:
        spec = PURPOSE_SPECS[purpose]
        if row.refusable is not None:
            assert spec.refusable is row.refusable, f"{purpose}: digest says {row.refusable}"
        if row.bases is not None:
            assert spec.basis in row.bases, f"{purpose}: {spec.basis} not in {set(row.bases)}"


@pytest.mark.parametrize("row", [r for r in ROWS if r.consent_based is not None])
def test_recipients_are_consent_based_as_the_digest_says(row: Row) -> None:
    recipients = _members(row, Recipient)
    assert recipients, f"row states consent basis but names no recipient: {row.promise}"
    for recipient in recipients:
        assert RECIPIENT_SPECS[recipient].consent_based is row.consent_based, recipient


def test_every_policy_symbol_is_explained() -> None:
    named = {s for row in ROWS for s in row.symbols} | set(NOT_FROM_THE_POLICY)
    missing = [
        f"{enum.__name__}.{member.name}"
        for enum in POLICY_ENUMS
        for member in enum
        if f"{enum.__name__}.{member.name}" not in named
    ]
    assert not missing, f"taxonomy symbols no digest row explains: {missing}"


def test_symbols_not_from_the_policy_exist_and_are_really_unmapped() -> None:
    mapped = {s for row in ROWS for s in row.symbols}
    for name in NOT_FROM_THE_POLICY:
        resolve(name)
        assert name not in mapped, f"{name} is mapped by a row; drop it from the exceptions"


def test_promises_not_yet_in_the_contract_are_really_missing() -> None:
    for name in NOT_YET_IN_THE_CONTRACT:
        with pytest.raises(AttributeError):
            resolve(name)


def test_every_digest_table_row_is_present() -> None:
    # Row counts of the digest's own tables and lists, so that a row cannot go missing.
    counts: dict[str, int] = {}
    for row in ROWS:
        if not row.promise.startswith("FR "):
            counts[row.section] = counts.get(row.section, 0) + 1
    assert counts == {
        VERSIONS: 1,
        WHO: 5,
        PURPOSES: 6,
        CHANNELS: 3,
        RECIPIENTS: 10,
        COOKIES: 7,
        RIGHTS: 6,
        RULES: 4,
    }


def test_mapping_file_is_current() -> None:
    assert MAPPING_FILE.exists(), f"{MAPPING_FILE} is missing; run this file as a script"
    assert MAPPING_FILE.read_text() == render(), (
        f"{MAPPING_FILE} is stale: run .venv/bin/python tests/unit/schemas/test_digest_mapping.py"
    )


if __name__ == "__main__":
    MAPPING_FILE.write_text(render())
    sys.stdout.write(f"wrote {MAPPING_FILE}\n")
