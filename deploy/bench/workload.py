"""The load: a realistic mix of consent events, encoded ahead of time, stamped when sent.

70% grants (consent to one or two purposes, cookie banners accepting categories) and 30%
withdrawals and rights requests (withdrawals, unsubscribes, cookie refusals, refusing or
objecting to marketing, GPC opt-outs, restriction and its lifting, erasure), across every
refusable purpose. Subjects are drawn from a Zipf-like distribution (weight of the n-th
subject ∝ 1/n^s), so a few people change their minds often and most rarely.

Each event is built as a validated record and serialized once with
:class:`schemas.codec.EventSerializer` (the one way bytes are made), with a sentinel
event time. Avro writes a ``timestamp-millis`` as a zig-zag varint, six bytes for any
time between 2004 and 2039, and no string or enum of an event contains a byte ≥ 0x80,
so the sentinel's six bytes occur exactly where ``occurred_at`` and ``recorded_at``
are. At send time they are replaced with the current time, which makes every event's
event time the moment it was published, at the cost of a ``bytes.join``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.codec import EventSerializer
from schemas.events import (
    ConsentChanged,
    ConsentEvent,
    CookiePreferencesSet,
    DataEventCaptured,
    RightsRequested,
    Subject,
    new_event_id,
)
from schemas.taxonomy import (
    REFUSABLE_PURPOSES,
    Channel,
    Choice,
    CookieCategory,
    PolicyVersion,
    Purpose,
    Recipient,
    Regime,
    Requester,
    Right,
    Source,
    SubjectKind,
)

STAMP_BYTES: Final = 6
PURPOSES: Final = tuple(sorted(REFUSABLE_PURPOSES))
CATEGORIES: Final = (
    CookieCategory.STATISTICS,
    CookieCategory.PERSONALISATION,
    CookieCategory.MARKETING,
)
CHANNELS: Final = tuple(Channel)

Build = Callable[[random.Random, str, datetime], ConsentEvent]


class WorkloadError(RuntimeError):
    """An encoded event does not hold its event time where the stamping expects it."""


def zigzag_varint(value: int) -> bytes:
    """Avro's encoding of a ``long``."""
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def stamp(ms: int) -> bytes:
    """The six bytes of a ``timestamp-millis`` of this era."""
    data = zigzag_varint(ms)
    if len(data) != STAMP_BYTES:
        raise WorkloadError(f"timestamp {ms} does not encode in {STAMP_BYTES} bytes")
    return data


@dataclass(frozen=True, slots=True)
class Prepared:
    """One encoded event, its time fields cut out."""

    key: bytes
    parts: tuple[bytes, ...]
    event_id: str
    kind: str
    withdrawal: bool

    def value(self, stamp_bytes: bytes) -> bytes:
        """The event's bytes with ``stamp_bytes`` as its event and recording time."""
        return stamp_bytes.join(self.parts)


def _envelope(rng: random.Random, subject: Subject, at: datetime, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": new_event_id(),
        "subject": subject,
        "occurred_at": at,
        "recorded_at": at,
        "source": Source.PRIVACY_SETTINGS,
        "regime": Regime.GDPR if rng.random() < 0.9 else Regime.CCPA,
        "policy_version": PolicyVersion.V2019_07_15,
    }
    base.update(extra)
    return base


def _account(sid: str) -> Subject:
    return Subject(id=f"acct-{sid}", kind=SubjectKind.ACCOUNT)


def _purposes(rng: random.Random) -> tuple[Purpose, ...]:
    return tuple(rng.sample(PURPOSES, rng.choice((1, 1, 2))))


def grant(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """Consent to one or two purposes."""
    return ConsentChanged(
        **_envelope(
            rng, _account(sid), at, source=rng.choice((Source.PRIVACY_SETTINGS, Source.API))
        ),
        choice=Choice.GRANTED,
        purposes=_purposes(rng),
    )


def withdraw(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """Withdrawal of one or two purposes (an unsubscribe link for marketing email)."""
    purposes = _purposes(rng)
    source = (
        Source.UNSUBSCRIBE_LINK
        if purposes == (Purpose.MARKETING_EMAIL,)
        else Source.PRIVACY_SETTINGS
    )
    return ConsentChanged(
        **_envelope(rng, _account(sid), at, source=source),
        choice=Choice.WITHDRAWN,
        purposes=purposes,
    )


def _cookies(rng: random.Random, sid: str, at: datetime, *, refuse: bool) -> ConsentEvent:
    cut = rng.randint(1, len(CATEGORIES)) if refuse else 0
    shuffled = rng.sample(CATEGORIES, len(CATEGORIES))
    refused, granted = tuple(shuffled[:cut]), tuple(shuffled[cut:])
    device = f"dev-{sid}"
    return CookiePreferencesSet(
        **_envelope(
            rng, Subject(id=device, kind=SubjectKind.DEVICE), at, source=Source.COOKIE_TOOL
        ),
        device_id=device,
        granted=(CookieCategory.ESSENTIAL, *granted),
        refused=refused,
    )


def cookies_accepted(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """A cookie banner accepting every category."""
    return _cookies(rng, sid, at, refuse=False)


def cookies_refused(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """A cookie banner refusing one or more categories."""
    return _cookies(rng, sid, at, refuse=True)


def _right(right: Right, **extra: Any) -> Build:
    def build(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
        fields = dict(extra)
        if right is Right.REFUSE_MARKETING and rng.random() < 0.5:
            fields["channels"] = tuple(rng.sample(CHANNELS, rng.randint(1, 2)))
        if right is Right.WITHDRAW_CONSENT:
            fields["purposes"] = _purposes(rng)
        regime = fields.pop("regime", None)
        envelope = _envelope(rng, _account(sid), at, source=fields.pop("source", Source.API))
        if regime is not None:
            envelope["regime"] = regime
        return RightsRequested(**envelope, right=right, **fields)

    build.__name__ = right.value.lower()
    return build


MIX: Final[tuple[tuple[str, float, bool, Build], ...]] = (
    # kind, share, is a withdrawal or rights request, builder
    ("grant", 0.60, False, grant),
    ("cookies_accepted", 0.10, False, cookies_accepted),
    ("withdraw", 0.13, True, withdraw),
    ("cookies_refused", 0.05, True, cookies_refused),
    ("refuse_marketing", 0.04, True, _right(Right.REFUSE_MARKETING)),
    ("object_to_direct_marketing", 0.02, True, _right(Right.OBJECT_TO_DIRECT_MARKETING)),
    (
        "opt_out_of_sale_or_sharing",
        0.02,
        True,
        _right(Right.OPT_OUT_OF_SALE_OR_SHARING, regime=Regime.CCPA, source=Source.GPC_SIGNAL),
    ),
    ("withdraw_consent", 0.01, True, _right(Right.WITHDRAW_CONSENT)),
    ("object_to_legitimate_interest", 0.01, True, _right(Right.OBJECT_TO_LEGITIMATE_INTEREST)),
    ("restrict_processing", 0.008, True, _right(Right.RESTRICT_PROCESSING)),
    ("lift_restriction", 0.004, True, _right(Right.LIFT_RESTRICTION)),
    ("erasure", 0.006, True, _right(Right.ERASURE)),
    (
        "erasure_of_minor",
        0.002,
        True,
        _right(Right.ERASURE_OF_MINOR, requested_by=Requester.GUARDIAN),
    ),
)
"""The event mix; shares sum to 1 (70% grants, 30% withdrawals and rights requests)."""

REACHES_MARKETING_AND_PARTNERS: Final = (Purpose.TARGETED_ADVERTISING, Purpose.COOKIES_MARKETING)
REACHES_ANALYTICS: Final = (
    Purpose.RESEARCH_AND_STATISTICS,
    Purpose.COOKIES_STATISTICS,
    Purpose.COOKIES_PERSONALISATION,
)
"""Purposes heard by the marketing family and partners, and by the analytics family
(streams/intake/routing.toml): one of each makes a withdrawal reach all three families."""


def _everywhere(rng: random.Random) -> tuple[Purpose, ...]:
    return (rng.choice(REACHES_MARKETING_AND_PARTNERS), rng.choice(REACHES_ANALYTICS))


def withdraw_everywhere(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """A withdrawal in the privacy settings of purposes all three families hear."""
    return ConsentChanged(
        **_envelope(rng, _account(sid), at),
        choice=Choice.WITHDRAWN,
        purposes=_everywhere(rng),
    )


def withdraw_consent_everywhere(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """The right to withdraw consent, for purposes all three families hear."""
    return RightsRequested(
        **_envelope(rng, _account(sid), at, source=Source.API),
        right=Right.WITHDRAW_CONSENT,
        purposes=_everywhere(rng),
    )


def cookies_refused_all(rng: random.Random, sid: str, at: datetime) -> ConsentEvent:
    """A cookie banner refusing every category but the essential one."""
    device = f"dev-{sid}"
    return CookiePreferencesSet(
        **_envelope(
            rng, Subject(id=device, kind=SubjectKind.DEVICE), at, source=Source.COOKIE_TOOL
        ),
        device_id=device,
        granted=(CookieCategory.ESSENTIAL,),
        refused=CATEGORIES,
    )


IDLE_MIX: Final[tuple[tuple[str, float, bool, Build], ...]] = (
    ("withdraw", 0.13, True, withdraw_everywhere),
    ("cookies_refused", 0.05, True, cookies_refused_all),
    ("withdraw_consent", 0.01, True, withdraw_consent_everywhere),
    ("restrict_processing", 0.008, True, _right(Right.RESTRICT_PROCESSING)),
    ("erasure", 0.006, True, _right(Right.ERASURE)),
    (
        "erasure_of_minor",
        0.002,
        True,
        _right(Right.ERASURE_OF_MINOR, requested_by=Requester.GUARDIAN),
    ),
)
"""The idle phase's withdrawals: the mix's kinds that can reach every sink family, in
the mix's proportions, each scoped so that it does (the bench reports how many did)."""


ALL_PURPOSES: Final = tuple(Purpose)
RECIPIENTS_OF_DATA: Final = (
    None,
    None,
    None,
    Recipient.GOOGLE,
    Recipient.CRITEO,
    Recipient.SELLERS,
)


def _sentinel() -> tuple[datetime, bytes]:
    now_ms = int(time.time() * 1000)
    return datetime.fromtimestamp(now_ms / 1000, UTC), stamp(now_ms)


def _cut(data: bytes, sentinel: bytes, times: int, event: object) -> tuple[bytes, ...]:
    parts = tuple(data.split(sentinel))
    if len(parts) != times + 1:
        raise WorkloadError(
            f"{type(event).__name__}: event time found {len(parts) - 1} times, not {times}"
        )
    return parts


class Workload:
    """Prepares encoded events for one topic from a seeded random mix."""

    def __init__(
        self,
        registry: SchemaRegistryClient,
        topic: str,
        data_topic: str,
        *,
        subjects: int,
        zipf: float,
        seed: int,
    ) -> None:
        self.topic = topic
        self.data_topic = data_topic
        self._rng = random.Random(seed)
        self._subjects = subjects
        self._cum = list(accumulate(1.0 / (n + 1) ** zipf for n in range(subjects)))
        self._serializers: dict[type[Any], EventSerializer] = {
            t: EventSerializer(registry, t)
            for t in (ConsentChanged, RightsRequested, CookiePreferencesSet, DataEventCaptured)
        }
        self._idle_subjects = 0

    def prepare(self, count: int) -> list[Prepared]:
        """``count`` encoded consent events in sending order."""
        ids = self._rng.choices(range(self._subjects), cum_weights=self._cum, k=count)
        return self._encode(MIX, [str(i) for i in ids])

    def prepare_idle(self, count: int) -> list[Prepared]:
        """``count`` withdrawals to every sink family (:data:`IDLE_MIX`), one per subject,
        none of whom the other phases use: each is a first, unsuperseded decision."""
        first = self._idle_subjects
        self._idle_subjects += count
        return self._encode(IDLE_MIX, [f"idle{n}" for n in range(first, first + count)])

    def _encode(
        self, mix: Sequence[tuple[str, float, bool, Build]], subjects: Sequence[str]
    ) -> list[Prepared]:
        rng = self._rng
        sentinel_at, sentinel = _sentinel()
        by_kind = {m[0]: m for m in mix}
        kinds = rng.choices(list(by_kind), weights=[m[1] for m in mix], k=len(subjects))
        out = []
        for sid, kind in zip(subjects, kinds, strict=True):
            _, _, is_withdrawal, build = by_kind[kind]
            event = build(rng, sid, sentinel_at)
            data = self._serializers[type(event)](event, self.topic)
            out.append(
                Prepared(
                    event.subject.id.encode(),
                    _cut(data, sentinel, 2, event),
                    event.event_id,
                    kind,
                    is_withdrawal,
                )
            )
        return out

    def prepare_data(self, count: int) -> list[Prepared]:
        """``count`` encoded data events (the consent gate's input) in sending order."""
        rng = self._rng
        sentinel_at, sentinel = _sentinel()
        ids = rng.choices(range(self._subjects), cum_weights=self._cum, k=count)
        out = []
        for sid in ids:
            purpose = rng.choice(ALL_PURPOSES)
            event = DataEventCaptured(
                event_id=new_event_id(),
                subject=_account(str(sid)),
                occurred_at=sentinel_at,
                purpose=purpose,
                recipient=rng.choice(RECIPIENTS_OF_DATA),
                payload=b'{"page": "/product/%d", "action": "view"}' % rng.randrange(10**6),
            )
            data = self._serializers[DataEventCaptured](event, self.data_topic)
            out.append(
                Prepared(
                    event.subject.id.encode(),
                    _cut(data, sentinel, 1, event),
                    event.event_id,
                    purpose.value,
                    False,
                )
            )
        return out

    @staticmethod
    def shares() -> dict[str, float]:
        """Each kind's share of the mix."""
        return {m[0]: m[1] for m in MIX}


def withdrawal_share(mix: Sequence[tuple[str, float, bool, Build]] = MIX) -> float:
    """Share of withdrawals and rights requests in the mix."""
    return sum(m[1] for m in mix if m[2])
