"""One partner as a sink: skip people it does not know, else send a signed webhook.

Each instance serves exactly one partner destination (``handles`` filters on it), so
the entrypoint runs one pipeline per partner and a dead partner only stalls its own.
Before calling the partner the circuit breaker is consulted: while it is open the sink
fails fast with a retriable error and the runner backs off.
"""

from __future__ import annotations

from typing import ClassVar

from consumers.partners.breaker import CircuitBreaker
from consumers.partners.config import KnownSubjects, PartnerConfig
from consumers.partners.identities import IdentityMap, IdentityMapUnavailableError
from consumers.partners.payload import webhook_body
from consumers.partners.pseudonym import pseudonymous_id
from consumers.partners.webhook import WebhookClient
from consumers.protocol import (
    APPLIED,
    PermanentSinkError,
    RetriableSinkError,
    SinkResult,
)
from schemas.events import ConsentStateRecorded, InstructionIssued
from schemas.taxonomy import Outcome, SinkFamily

UNKNOWN_SUBJECT = "partner holds no identifier for this subject"


class PartnerSink:
    """The PARTNER_SHARING sink for one partner."""

    family: ClassVar[SinkFamily] = SinkFamily.PARTNER_SHARING

    def __init__(
        self,
        partner: PartnerConfig,
        *,
        client: WebhookClient,
        breaker: CircuitBreaker,
        identities: IdentityMap | None,
    ) -> None:
        if partner.known_subjects is KnownSubjects.MAPPED and identities is None:
            raise ValueError(f"partner {partner.name} needs an identity map")
        self.partner = partner
        self.destination = partner.name
        self.breaker = breaker
        self._client = client
        self._identities = identities

    def handles(self, instruction: InstructionIssued) -> bool:
        """Only instructions addressed to this partner."""
        return (
            instruction.sink_family is SinkFamily.PARTNER_SHARING
            and instruction.destination == self.destination
        )

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        """Tell the partner, or skip a person it has no identifier for."""
        if not self._knows(instruction.subject.id):
            return SinkResult(Outcome.SKIPPED, UNKNOWN_SUBJECT)
        if not self.breaker.allow():
            raise RetriableSinkError(
                f"circuit open for partner {self.destination}; next probe in "
                f"{self.breaker.seconds_until_probe():.1f}s"
            )
        body = webhook_body(
            instruction,
            self.destination,
            pseudonymous_id(self.partner.pseudonym_key, instruction.subject.id),
        )
        try:
            self._client.post(body, instruction.instruction_id)
        except RetriableSinkError:
            self.breaker.record_failure()
            raise
        except PermanentSinkError:
            # The partner answered, so it is up; the request itself is what it refuses.
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return APPLIED

    def needs_bootstrap(self) -> bool:
        """Partners keep no local store to seed: instructions alone drive them."""
        return False

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        """Nothing to seed (see :meth:`needs_bootstrap`)."""

    def close(self) -> None:
        """Close the partner connection kept alive between webhooks."""
        self._client.close()

    def _knows(self, subject_id: str) -> bool:
        if self.partner.known_subjects is KnownSubjects.ALL:
            return True
        assert self._identities is not None
        try:
            return self._identities.knows(self.destination, subject_id)
        except IdentityMapUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc
