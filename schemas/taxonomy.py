"""The consent taxonomy: every purpose, recipient, cookie category and right the policy names.

Each enum's value is also its Avro enum symbol, so the Python records, the `.avsc`
files and the generated reference share one spelling. The ``*_SPECS`` tables say what
the privacy policy says about each symbol (legal basis, whether a person can refuse it,
which section promises it); the stream's routing and the records' validation read them,
nothing else hard-codes the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class LegalBasis(StrEnum):
    """GDPR Art. 6 ground a processing rests on (ISO/IEC TS 27560 "lawful basis").

    VITAL_INTERESTS covers disclosures to protect someone's vital interests (policy C).
    """

    CONSENT = "CONSENT"
    CONTRACT = "CONTRACT"
    LEGAL_OBLIGATION = "LEGAL_OBLIGATION"
    LEGITIMATE_INTEREST = "LEGITIMATE_INTEREST"
    VITAL_INTERESTS = "VITAL_INTERESTS"


class Channel(StrEnum):
    """A direct-marketing channel."""

    EMAIL = "EMAIL"
    POSTAL_MAIL = "POSTAL_MAIL"
    TELEPHONE = "TELEPHONE"
    SMS = "SMS"
    PUSH = "PUSH"


class CookieCategory(StrEnum):
    """Cookie and tracker categories of the Cookie Preferences Tool (policy E)."""

    ESSENTIAL = "ESSENTIAL"
    STATISTICS = "STATISTICS"
    PERSONALISATION = "PERSONALISATION"
    MARKETING = "MARKETING"


class Purpose(StrEnum):
    """A purpose of processing (policy B, C, E)."""

    MARKETING_EMAIL = "MARKETING_EMAIL"
    MARKETING_POSTAL_MAIL = "MARKETING_POSTAL_MAIL"
    MARKETING_TELEPHONE = "MARKETING_TELEPHONE"
    MARKETING_SMS = "MARKETING_SMS"
    MARKETING_PUSH = "MARKETING_PUSH"
    PERSONALISED_MARKETING = "PERSONALISED_MARKETING"
    TARGETED_ADVERTISING = "TARGETED_ADVERTISING"
    RESEARCH_AND_STATISTICS = "RESEARCH_AND_STATISTICS"
    COOKIES_STATISTICS = "COOKIES_STATISTICS"
    COOKIES_PERSONALISATION = "COOKIES_PERSONALISATION"
    COOKIES_MARKETING = "COOKIES_MARKETING"
    SHARE_VIEWED_PRODUCTS_WITH_SELLERS = "SHARE_VIEWED_PRODUCTS_WITH_SELLERS"
    SHARE_WITH_BUSINESS_PARTNERS = "SHARE_WITH_BUSINESS_PARTNERS"
    SHARE_WITH_ADVERTISING_PLATFORMS = "SHARE_WITH_ADVERTISING_PLATFORMS"
    SHARE_WITH_ANALYTICS_PROVIDERS = "SHARE_WITH_ANALYTICS_PROVIDERS"
    SHARE_WITH_OTHERS_BY_CONSENT = "SHARE_WITH_OTHERS_BY_CONSENT"
    COOKIES_ESSENTIAL = "COOKIES_ESSENTIAL"
    ACCOUNT_MANAGEMENT = "ACCOUNT_MANAGEMENT"
    CUSTOMER_SERVICE = "CUSTOMER_SERVICE"
    TRANSACTIONS_AND_PAYMENTS = "TRANSACTIONS_AND_PAYMENTS"
    LOGISTICS = "LOGISTICS"
    CUSTOMS = "CUSTOMS"
    SELLER_COMMUNICATION_FOR_PURCHASE = "SELLER_COMMUNICATION_FOR_PURCHASE"
    IDENTITY_VERIFICATION_KYC = "IDENTITY_VERIFICATION_KYC"
    ANTI_MONEY_LAUNDERING = "ANTI_MONEY_LAUNDERING"
    ACCOUNT_SECURITY_AND_FRAUD = "ACCOUNT_SECURITY_AND_FRAUD"
    LEGAL_COMPLIANCE = "LEGAL_COMPLIANCE"


class RecipientKind(StrEnum):
    """What kind of downstream system a recipient is."""

    PLATFORM_USER = "PLATFORM_USER"
    GROUP_COMPANY = "GROUP_COMPANY"
    BUSINESS_PARTNER = "BUSINESS_PARTNER"
    ADVERTISING_PLATFORM = "ADVERTISING_PLATFORM"
    ANALYTICS_PROVIDER = "ANALYTICS_PROVIDER"
    SERVICE_PROVIDER = "SERVICE_PROVIDER"
    AUTHORITY = "AUTHORITY"
    OTHER = "OTHER"


class Recipient(StrEnum):
    """A recipient of personal data (policy C, E; 2018 C)."""

    SELLERS = "SELLERS"
    BUSINESS_PARTNERS = "BUSINESS_PARTNERS"
    GROUP_COMPANIES = "GROUP_COMPANIES"
    GOOGLE = "GOOGLE"
    FACEBOOK = "FACEBOOK"
    INSTAGRAM = "INSTAGRAM"
    TWITTER = "TWITTER"
    VKONTAKTE = "VKONTAKTE"
    CRITEO = "CRITEO"
    BING = "BING"
    YAHOO = "YAHOO"
    MAIL_RU = "MAIL_RU"
    YANDEX = "YANDEX"
    GOOGLE_ANALYTICS = "GOOGLE_ANALYTICS"
    ANALYTICS_PROVIDERS = "ANALYTICS_PROVIDERS"
    PAYMENT_PROVIDERS = "PAYMENT_PROVIDERS"
    RISK_AND_CREDIT_ASSESSORS = "RISK_AND_CREDIT_ASSESSORS"
    LOGISTICS_PARTNERS = "LOGISTICS_PARTNERS"
    CUSTOMS_AGENTS = "CUSTOMS_AGENTS"
    CLOUD_PROVIDERS = "CLOUD_PROVIDERS"
    CUSTOMER_SERVICE_PROVIDERS = "CUSTOMER_SERVICE_PROVIDERS"
    WARRANTY_PROVIDERS = "WARRANTY_PROVIDERS"
    RATING_AND_REVIEW_PROVIDERS = "RATING_AND_REVIEW_PROVIDERS"
    RISK_CONTROL_PROVIDERS = "RISK_CONTROL_PROVIDERS"
    PROFESSIONAL_ADVISERS = "PROFESSIONAL_ADVISERS"
    AUTHORITIES = "AUTHORITIES"
    BUSINESS_ACQUIRER = "BUSINESS_ACQUIRER"
    OTHERS_BY_CONSENT = "OTHERS_BY_CONSENT"
    INSURERS = "INSURERS"


class Right(StrEnum):
    """A data-subject right a person can exercise (policy G "Vos droits"; CCPA)."""

    WITHDRAW_CONSENT = "WITHDRAW_CONSENT"
    REFUSE_MARKETING = "REFUSE_MARKETING"
    OBJECT_TO_DIRECT_MARKETING = "OBJECT_TO_DIRECT_MARKETING"
    OBJECT_TO_LEGITIMATE_INTEREST = "OBJECT_TO_LEGITIMATE_INTEREST"
    RESTRICT_PROCESSING = "RESTRICT_PROCESSING"
    LIFT_RESTRICTION = "LIFT_RESTRICTION"
    ERASURE = "ERASURE"
    ERASURE_OF_MINOR = "ERASURE_OF_MINOR"
    OPT_OUT_OF_SALE_OR_SHARING = "OPT_OUT_OF_SALE_OR_SHARING"
    ACCESS = "ACCESS"
    RECTIFICATION = "RECTIFICATION"
    PORTABILITY = "PORTABILITY"


class Regime(StrEnum):
    """The legal regime a choice was made under (Kantara "jurisdiction").

    GDPR covers the EEA and the United Kingdom (policy G; 2018 I).
    """

    GDPR = "GDPR"
    CCPA = "CCPA"
    OTHER = "OTHER"


class Source(StrEnum):
    """How the choice was collected (Kantara "collection method").

    DATA_PROTECTION_CONTACT is a request sent to the data-protection address the policy
    gives for exercising rights and refusing postal or telephone marketing (H; 2018 J).
    """

    UNSUBSCRIBE_LINK = "UNSUBSCRIBE_LINK"
    PRIVACY_SETTINGS = "PRIVACY_SETTINGS"
    COOKIE_TOOL = "COOKIE_TOOL"
    CUSTOMER_SERVICE = "CUSTOMER_SERVICE"
    GPC_SIGNAL = "GPC_SIGNAL"
    API = "API"
    BULK_IMPORT = "BULK_IMPORT"
    DATA_PROTECTION_CONTACT = "DATA_PROTECTION_CONTACT"


class PolicyVersion(StrEnum):
    """The privacy-policy version a choice was given under (Kantara "policy reference").

    Each names the policy by the date it came into force; where language versions
    differ the English text prevails (policy I).
    """

    V2018_05_25 = "V2018_05_25"
    V2019_07_15 = "V2019_07_15"


class SubjectKind(StrEnum):
    """Whether a subject is a known account or an anonymous device/browser."""

    ACCOUNT = "ACCOUNT"
    DEVICE = "DEVICE"


class Choice(StrEnum):
    """A consent decision; WITHDRAWN is the more restrictive one."""

    GRANTED = "GRANTED"
    WITHDRAWN = "WITHDRAWN"


class Requester(StrEnum):
    """Who exercised a right on the subject's behalf."""

    SUBJECT = "SUBJECT"
    GUARDIAN = "GUARDIAN"
    AUTHORISED_AGENT = "AUTHORISED_AGENT"


class SinkFamily(StrEnum):
    """The kinds of downstream system Consent Relay drives."""

    MARKETING = "MARKETING"
    ANALYTICS = "ANALYTICS"
    PARTNER_SHARING = "PARTNER_SHARING"


class Action(StrEnum):
    """What a sink must do for one instruction."""

    SUPPRESS = "SUPPRESS"
    ALLOW = "ALLOW"
    ERASE = "ERASE"
    RESTRICT = "RESTRICT"
    LIFT_RESTRICTION = "LIFT_RESTRICTION"


class Outcome(StrEnum):
    """How a destination dealt with an instruction."""

    APPLIED = "APPLIED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class PurposeSpec:
    """What the policy says about one purpose."""

    basis: LegalBasis
    refusable: bool
    meaning: str
    policy_ref: str
    channel: Channel | None = None
    cookie_category: CookieCategory | None = None
    direct_marketing: bool = False


_P = Purpose
_B = LegalBasis
PURPOSE_SPECS: Final = MappingProxyType(
    {
        _P.MARKETING_EMAIL: PurposeSpec(
            _B.CONSENT,
            True,
            "Marketing emails; unsubscribe link in every one.",
            "B, G",
            channel=Channel.EMAIL,
            direct_marketing=True,
        ),
        _P.MARKETING_POSTAL_MAIL: PurposeSpec(
            _B.CONSENT,
            True,
            "Marketing by postal mail.",
            "G; 2018 I",
            channel=Channel.POSTAL_MAIL,
            direct_marketing=True,
        ),
        _P.MARKETING_TELEPHONE: PurposeSpec(
            _B.CONSENT,
            True,
            "Telemarketing calls.",
            "G; 2018 I",
            channel=Channel.TELEPHONE,
            direct_marketing=True,
        ),
        _P.MARKETING_SMS: PurposeSpec(
            _B.CONSENT,
            True,
            "Marketing text messages, where the platform sends them.",
            "G",
            channel=Channel.SMS,
            direct_marketing=True,
        ),
        _P.MARKETING_PUSH: PurposeSpec(
            _B.CONSENT,
            True,
            "Marketing push notifications, where the apps send them.",
            "G",
            channel=Channel.PUSH,
            direct_marketing=True,
        ),
        _P.PERSONALISED_MARKETING: PurposeSpec(
            _B.LEGITIMATE_INTEREST,
            True,
            "Marketing personalised from browsing and order history; objection is absolute.",
            "B",
            direct_marketing=True,
        ),
        _P.TARGETED_ADVERTISING: PurposeSpec(
            _B.CONSENT,
            True,
            "Targeted advertising via cookies across browsers and devices.",
            "B, E",
            direct_marketing=True,
        ),
        _P.RESEARCH_AND_STATISTICS: PurposeSpec(
            _B.LEGITIMATE_INTEREST,
            True,
            "Research and statistics to improve the platform (incl. ML on anonymised data).",
            "B",
        ),
        _P.COOKIES_STATISTICS: PurposeSpec(
            _B.CONSENT,
            True,
            "Statistics/analytics cookies, incl. Google Analytics.",
            "E",
            cookie_category=CookieCategory.STATISTICS,
        ),
        _P.COOKIES_PERSONALISATION: PurposeSpec(
            _B.CONSENT,
            True,
            "Personalisation and service cookies, incl. social log-in and sharing.",
            "E",
            cookie_category=CookieCategory.PERSONALISATION,
        ),
        _P.COOKIES_MARKETING: PurposeSpec(
            _B.CONSENT,
            True,
            "Marketing cookies, email open/conversion tracking and web beacons.",
            "E",
            cookie_category=CookieCategory.MARKETING,
            direct_marketing=True,
        ),
        _P.SHARE_VIEWED_PRODUCTS_WITH_SELLERS: PurposeSpec(
            _B.CONSENT,
            True,
            "Share a buyer's recently viewed products with sellers so they can make contact.",
            "B (privacy settings)",
        ),
        _P.SHARE_WITH_BUSINESS_PARTNERS: PurposeSpec(
            _B.CONSENT, True, "Share with business partners so they can offer discounts.", "C"
        ),
        _P.SHARE_WITH_ADVERTISING_PLATFORMS: PurposeSpec(
            _B.CONSENT,
            True,
            "Share with marketing/advertising platforms to tailor content and ads.",
            "C",
            direct_marketing=True,
        ),
        _P.SHARE_WITH_ANALYTICS_PROVIDERS: PurposeSpec(
            _B.CONSENT, True, "Share with user-behaviour analytics providers.", "C"
        ),
        _P.SHARE_WITH_OTHERS_BY_CONSENT: PurposeSpec(
            _B.CONSENT, True, "Share with any other person the subject consented to.", "C"
        ),
        _P.COOKIES_ESSENTIAL: PurposeSpec(
            _B.CONTRACT,
            False,
            "Strictly necessary cookies (cart, login); cannot be disabled.",
            "E",
            cookie_category=CookieCategory.ESSENTIAL,
        ),
        _P.ACCOUNT_MANAGEMENT: PurposeSpec(_B.CONTRACT, False, "Run the account.", "B"),
        _P.CUSTOMER_SERVICE: PurposeSpec(_B.CONTRACT, False, "Customer service.", "B"),
        _P.TRANSACTIONS_AND_PAYMENTS: PurposeSpec(
            _B.CONTRACT, False, "Transactions and payments.", "B"
        ),
        _P.LOGISTICS: PurposeSpec(_B.CONTRACT, False, "Delivery and logistics.", "B"),
        _P.CUSTOMS: PurposeSpec(_B.CONTRACT, False, "Customs clearance.", "B"),
        _P.SELLER_COMMUNICATION_FOR_PURCHASE: PurposeSpec(
            _B.CONTRACT, False, "Share with sellers what a purchase or message needs.", "C"
        ),
        _P.IDENTITY_VERIFICATION_KYC: PurposeSpec(
            _B.LEGAL_OBLIGATION, False, "Identity verification (KYC).", "B"
        ),
        _P.ANTI_MONEY_LAUNDERING: PurposeSpec(
            _B.LEGAL_OBLIGATION, False, "Anti-money-laundering checks.", "B"
        ),
        _P.ACCOUNT_SECURITY_AND_FRAUD: PurposeSpec(
            _B.LEGAL_OBLIGATION, False, "Account security and fraud detection.", "B"
        ),
        _P.LEGAL_COMPLIANCE: PurposeSpec(
            _B.LEGAL_OBLIGATION,
            False,
            "Disclosures to advisers, insurers, authorities and regulators.",
            "C",
        ),
    }
)


@dataclass(frozen=True, slots=True)
class RecipientSpec:
    """What the policy says about one recipient."""

    kind: RecipientKind
    consent_based: bool
    meaning: str
    policy_ref: str


_R = Recipient
_K = RecipientKind
RECIPIENT_SPECS: Final = MappingProxyType(
    {
        _R.SELLERS: RecipientSpec(_K.PLATFORM_USER, True, "Sellers on the platform.", "B, C"),
        _R.BUSINESS_PARTNERS: RecipientSpec(
            _K.BUSINESS_PARTNER, True, "Business partners offering discounts.", "C"
        ),
        _R.GROUP_COMPANIES: RecipientSpec(
            _K.GROUP_COMPANY, False, "Group companies and their processors.", "C"
        ),
        _R.GOOGLE: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Google advertising.", "C, E"),
        _R.FACEBOOK: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Facebook advertising.", "C, E"),
        _R.INSTAGRAM: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Instagram advertising.", "C"),
        _R.TWITTER: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Twitter advertising.", "C, E"),
        _R.VKONTAKTE: RecipientSpec(
            _K.ADVERTISING_PLATFORM, True, "VKontakte advertising.", "2018 C"
        ),
        _R.CRITEO: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Criteo marketing cookies.", "E"),
        _R.BING: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Bing marketing cookies.", "E"),
        _R.YAHOO: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Yahoo marketing cookies.", "E"),
        _R.MAIL_RU: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Mail.ru marketing cookies.", "E"),
        _R.YANDEX: RecipientSpec(_K.ADVERTISING_PLATFORM, True, "Yandex marketing cookies.", "E"),
        _R.GOOGLE_ANALYTICS: RecipientSpec(
            _K.ANALYTICS_PROVIDER, True, "Google Analytics (own opt-out add-on).", "E"
        ),
        _R.ANALYTICS_PROVIDERS: RecipientSpec(
            _K.ANALYTICS_PROVIDER, True, "User-behaviour analytics providers.", "C"
        ),
        _R.PAYMENT_PROVIDERS: RecipientSpec(_K.SERVICE_PROVIDER, False, "Payment providers.", "C"),
        _R.RISK_AND_CREDIT_ASSESSORS: RecipientSpec(
            _K.SERVICE_PROVIDER, False, "Risk and credit assessors.", "C"
        ),
        _R.LOGISTICS_PARTNERS: RecipientSpec(
            _K.SERVICE_PROVIDER, False, "Logistics partners.", "C"
        ),
        _R.CUSTOMS_AGENTS: RecipientSpec(_K.SERVICE_PROVIDER, False, "Customs agents.", "C"),
        _R.CLOUD_PROVIDERS: RecipientSpec(_K.SERVICE_PROVIDER, False, "Cloud providers.", "C"),
        _R.CUSTOMER_SERVICE_PROVIDERS: RecipientSpec(
            _K.SERVICE_PROVIDER, False, "Customer-service providers.", "C"
        ),
        _R.WARRANTY_PROVIDERS: RecipientSpec(
            _K.SERVICE_PROVIDER, False, "Warranty providers.", "2018 C"
        ),
        _R.RATING_AND_REVIEW_PROVIDERS: RecipientSpec(
            _K.SERVICE_PROVIDER, False, "Rating and review providers.", "C"
        ),
        _R.RISK_CONTROL_PROVIDERS: RecipientSpec(
            _K.SERVICE_PROVIDER, False, "Risk-control providers.", "C"
        ),
        _R.PROFESSIONAL_ADVISERS: RecipientSpec(_K.OTHER, False, "Professional advisers.", "C"),
        _R.AUTHORITIES: RecipientSpec(_K.AUTHORITY, False, "Law enforcement and regulators.", "C"),
        _R.BUSINESS_ACQUIRER: RecipientSpec(_K.OTHER, False, "A buyer of the business.", "C"),
        _R.OTHERS_BY_CONSENT: RecipientSpec(
            _K.OTHER, True, "Any other person, with the subject's consent.", "C"
        ),
        _R.INSURERS: RecipientSpec(
            _K.OTHER, False, "Insurers, where the law or legal claims need it.", "C; 2018 C"
        ),
    }
)

PARTNERS: Final = (
    _R.SELLERS,
    _R.BUSINESS_PARTNERS,
    _R.GROUP_COMPANIES,
    _R.GOOGLE,
    _R.FACEBOOK,
    _R.INSTAGRAM,
    _R.TWITTER,
    _R.VKONTAKTE,
    _R.CRITEO,
    _R.BING,
    _R.YAHOO,
    _R.MAIL_RU,
    _R.YANDEX,
    _R.GOOGLE_ANALYTICS,
    _R.ANALYTICS_PROVIDERS,
    _R.OTHERS_BY_CONSENT,
)
"""The recipients the PARTNER_SHARING family shares data with, one destination each:
the stream's routing policy, the partner sink's configuration and the demo name no
other."""

PARTNER_DESTINATIONS: Final = tuple(r.value.lower() for r in PARTNERS)
"""Each partner's destination name (``InstructionIssued.destination``): its
:class:`Recipient`'s value in lowercase."""


@dataclass(frozen=True, slots=True)
class RightSpec:
    """What exercising a right means for propagation."""

    propagated: bool
    account_only: bool
    meaning: str
    policy_ref: str


RIGHT_SPECS: Final = MappingProxyType(
    {
        Right.WITHDRAW_CONSENT: RightSpec(
            True, False, "Withdraw consent; earlier processing stays lawful.", "G"
        ),
        Right.REFUSE_MARKETING: RightSpec(
            True, True, "Refuse marketing communications on the channels named.", "G"
        ),
        Right.OBJECT_TO_DIRECT_MARKETING: RightSpec(
            True, False, "Object to direct marketing: absolute, every channel and ads.", "G"
        ),
        Right.OBJECT_TO_LEGITIMATE_INTEREST: RightSpec(
            True, False, "Object to processing based on legitimate interests.", "G"
        ),
        Right.RESTRICT_PROCESSING: RightSpec(
            True, False, "Restrict processing: isolate the data from further use.", "G, D"
        ),
        Right.LIFT_RESTRICTION: RightSpec(True, False, "Lift an earlier restriction.", "G"),
        Right.ERASURE: RightSpec(True, False, "Erase the subject's personal data.", "G"),
        Right.ERASURE_OF_MINOR: RightSpec(
            True, True, "A guardian asks for a minor's data to be deleted.", "2018 F"
        ),
        Right.OPT_OUT_OF_SALE_OR_SHARING: RightSpec(
            True, False, "CCPA/CPRA opt-out of sale/sharing (e.g. a GPC signal).", "CCPA"
        ),
        Right.ACCESS: RightSpec(False, True, "Access to the personal data held.", "G"),
        Right.RECTIFICATION: RightSpec(False, True, "Rectify or update personal data.", "G"),
        Right.PORTABILITY: RightSpec(False, True, "Data portability (2019 only).", "G"),
    }
)

OPT_IN_REGIMES: Final = frozenset({Regime.GDPR})
"""Regimes where no recorded consent means no consent."""

COOKIE_PURPOSES: Final = MappingProxyType(
    {
        spec.cookie_category: purpose
        for purpose, spec in PURPOSE_SPECS.items()
        if spec.cookie_category is not None
    }
)

DIRECT_MARKETING_PURPOSES: Final = frozenset(
    p for p, s in PURPOSE_SPECS.items() if s.direct_marketing
)

REFUSABLE_PURPOSES: Final = frozenset(p for p, s in PURPOSE_SPECS.items() if s.refusable)

SALE_OR_SHARING_PURPOSES: Final = frozenset(
    {
        Purpose.SHARE_VIEWED_PRODUCTS_WITH_SELLERS,
        Purpose.SHARE_WITH_BUSINESS_PARTNERS,
        Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,
        Purpose.SHARE_WITH_ANALYTICS_PROVIDERS,
        Purpose.SHARE_WITH_OTHERS_BY_CONSENT,
        Purpose.TARGETED_ADVERTISING,
    }
)
"""What a CCPA opt-out of sale/sharing (and a GPC signal) covers."""
