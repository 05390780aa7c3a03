"""The typed methods both clients share: one per change the contract defines.

:class:`ConsentVerbs` is generic in what a call returns: the blocking client returns the
acknowledgement itself, the asyncio client an awaitable of it. Each method builds the
record with :mod:`producers.builders` (validating it, so bad input raises
:class:`~schemas.errors.ValidationError` before anything is sent) and hands it to
``_emit``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar, Unpack

from producers import builders
from producers.builders import SubjectLike
from producers.envelope import Envelope, EnvelopeDefaults
from producers.metrics import ProducerMetrics
from producers.publisher import DEFAULT_DELIVERY_TIMEOUT_S, Publisher
from schemas.events import ConsentEvent
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Channel, CookieCategory, Purpose, Recipient, Requester, Right

R = TypeVar("R")


class ConsentVerbs(ABC, Generic[R]):
    """Grant, withdraw, object, erase, restrict, opt out, set cookies, ... for one subject."""

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        defaults: EnvelopeDefaults | None = None,
        delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
        metrics: ProducerMetrics | None = None,
        **producer_overrides: Any,
    ) -> None:
        self.defaults = defaults or EnvelopeDefaults()
        self._publisher = Publisher(
            settings or KafkaSettings.from_env(),
            delivery_timeout_s=delivery_timeout_s,
            metrics=metrics or ProducerMetrics.create(),
            **producer_overrides,
        )

    @property
    def publisher(self) -> Publisher:
        """The underlying publisher (topic, encoder, health)."""
        return self._publisher

    @abstractmethod
    def _emit(self, event: ConsentEvent) -> R:
        """Publish a built event."""

    def grant(
        self,
        subject: SubjectLike,
        purposes: Iterable[Purpose | str],
        *,
        recipients: Iterable[Recipient | str] = (),
        expires_at: datetime | None = None,
        **envelope: Unpack[Envelope],
    ) -> R:
        """The person consents to ``purposes`` (optionally only for ``recipients``)."""
        return self._emit(
            builders.grant(
                subject,
                purposes,
                recipients=recipients,
                expires_at=expires_at,
                defaults=self.defaults,
                **envelope,
            )
        )

    def withdraw(
        self,
        subject: SubjectLike,
        purposes: Iterable[Purpose | str],
        *,
        recipients: Iterable[Recipient | str] = (),
        **envelope: Unpack[Envelope],
    ) -> R:
        """The person withdraws consent for ``purposes``."""
        return self._emit(
            builders.withdraw(
                subject, purposes, recipients=recipients, defaults=self.defaults, **envelope
            )
        )

    def refuse_marketing(
        self,
        subject: SubjectLike,
        channels: Iterable[Channel | str] = (),
        **envelope: Unpack[Envelope],
    ) -> R:
        """The person refuses marketing on ``channels`` (all when empty)."""
        return self._emit(
            builders.refuse_marketing(subject, channels, defaults=self.defaults, **envelope)
        )

    def object_to_direct_marketing(
        self,
        subject: SubjectLike,
        channels: Iterable[Channel | str] = (),
        **envelope: Unpack[Envelope],
    ) -> R:
        """The person objects to direct marketing (absolute)."""
        return self._emit(
            builders.object_to_direct_marketing(
                subject, channels, defaults=self.defaults, **envelope
            )
        )

    def object_to_legitimate_interest(
        self,
        subject: SubjectLike,
        purposes: Iterable[Purpose | str] = (),
        **envelope: Unpack[Envelope],
    ) -> R:
        """The person objects to processing based on legitimate interests."""
        return self._emit(
            builders.object_to_legitimate_interest(
                subject, purposes, defaults=self.defaults, **envelope
            )
        )

    def request_erasure(
        self,
        subject: SubjectLike,
        *,
        requested_by: Requester | str = Requester.SUBJECT,
        **envelope: Unpack[Envelope],
    ) -> R:
        """Erase the subject's personal data."""
        return self._emit(
            builders.request_erasure(
                subject, requested_by=requested_by, defaults=self.defaults, **envelope
            )
        )

    def request_erasure_of_minor(self, subject: SubjectLike, **envelope: Unpack[Envelope]) -> R:
        """A guardian asks for a minor's data to be deleted."""
        return self._emit(
            builders.request_erasure_of_minor(subject, defaults=self.defaults, **envelope)
        )

    def restrict_processing(
        self,
        subject: SubjectLike,
        purposes: Iterable[Purpose | str] = (),
        **envelope: Unpack[Envelope],
    ) -> R:
        """Restrict processing until lifted."""
        return self._emit(
            builders.restrict_processing(subject, purposes, defaults=self.defaults, **envelope)
        )

    def lift_restriction(
        self,
        subject: SubjectLike,
        purposes: Iterable[Purpose | str] = (),
        **envelope: Unpack[Envelope],
    ) -> R:
        """Lift an earlier restriction."""
        return self._emit(
            builders.lift_restriction(subject, purposes, defaults=self.defaults, **envelope)
        )

    def opt_out_of_sale_or_sharing(
        self,
        subject: SubjectLike,
        purposes: Iterable[Purpose | str] = (),
        *,
        requested_by: Requester | str = Requester.SUBJECT,
        **envelope: Unpack[Envelope],
    ) -> R:
        """CCPA/CPRA opt-out of sale or sharing (regime CCPA unless overridden)."""
        return self._emit(
            builders.opt_out_of_sale_or_sharing(
                subject, purposes, requested_by=requested_by, defaults=self.defaults, **envelope
            )
        )

    def record_gpc_signal(self, subject: SubjectLike, **envelope: Unpack[Envelope]) -> R:
        """A Global Privacy Control signal: opt-out of sale/sharing, source GPC_SIGNAL, CCPA."""
        return self._emit(builders.record_gpc_signal(subject, defaults=self.defaults, **envelope))

    def request_access(
        self,
        subject: SubjectLike,
        *,
        requested_by: Requester | str = Requester.SUBJECT,
        **envelope: Unpack[Envelope],
    ) -> R:
        """Access to the data held."""
        return self._emit(
            builders.request_access(
                subject, requested_by=requested_by, defaults=self.defaults, **envelope
            )
        )

    def request_portability(
        self,
        subject: SubjectLike,
        *,
        requested_by: Requester | str = Requester.SUBJECT,
        **envelope: Unpack[Envelope],
    ) -> R:
        """A portable copy of the data."""
        return self._emit(
            builders.request_portability(
                subject, requested_by=requested_by, defaults=self.defaults, **envelope
            )
        )

    def request_rectification(
        self,
        subject: SubjectLike,
        *,
        requested_by: Requester | str = Requester.SUBJECT,
        **envelope: Unpack[Envelope],
    ) -> R:
        """Rectify or update data."""
        return self._emit(
            builders.request_rectification(
                subject, requested_by=requested_by, defaults=self.defaults, **envelope
            )
        )

    def exercise_right(
        self,
        subject: SubjectLike,
        right: Right | str,
        *,
        purposes: Iterable[Purpose | str] = (),
        channels: Iterable[Channel | str] = (),
        requested_by: Requester | str = Requester.SUBJECT,
        **envelope: Unpack[Envelope],
    ) -> R:
        """Any right, named at run time."""
        return self._emit(
            builders.rights_requested(
                subject,
                right,
                purposes=purposes,
                channels=channels,
                requested_by=requested_by,
                defaults=self.defaults,
                **envelope,
            )
        )

    def set_cookie_preferences(
        self,
        device_id: str,
        *,
        granted: Iterable[CookieCategory | str] = (),
        refused: Iterable[CookieCategory | str] = (),
        subject: SubjectLike | None = None,
        **envelope: Unpack[Envelope],
    ) -> R:
        """Cookie preferences for one browser/device."""
        return self._emit(
            builders.set_cookie_preferences(
                device_id,
                granted=granted,
                refused=refused,
                subject=subject,
                defaults=self.defaults,
                **envelope,
            )
        )
