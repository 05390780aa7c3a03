"""One partner as a sink: skip people it does not know, else send signed webhooks.

Each instance serves exactly one partner destination (``handles`` filters on it), so
the entrypoint runs one pipeline per partner and a dead partner only stalls its own.
A batch of instructions goes out in POSTs of at most the partner's ``batch_size``
(one instruction per POST, today's body, when it is 1). Before every POST the circuit
breaker is consulted: while it is open the sink fails fast with a retriable error and
the runner backs off. The ids it has answered (:mod:`consumers.partners.answers`) let
the runner drop a recent duplicate instruction before any POST, and keep the sink from
telling a partner the same instruction twice when an older duplicate is answered again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import ClassVar, Final

from consumers.partners.answers import Answers, AnswersUnavailableError, RecentAnswers
from consumers.partners.breaker import CircuitBreaker
from consumers.partners.config import KnownSubjects, PartnerConfig
from consumers.partners.identities import IdentityMap, IdentityMapUnavailableError
from consumers.partners.payload import (
    batch_body,
    batch_idempotency_key,
    instruction_json,
    webhook_body,
)
from consumers.partners.pseudonym import Pseudonyms
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
SKIPPED: Final = SinkResult(Outcome.SKIPPED, UNKNOWN_SUBJECT)
_REMEMBERED_LIMIT = 10_000
"""Most acknowledged requests remembered between a failed batch and its retry."""


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
        answers: Answers | None = None,
    ) -> None:
        if partner.known_subjects is KnownSubjects.MAPPED and identities is None:
            raise ValueError(f"partner {partner.name} needs an identity map")
        self.partner = partner
        self.destination = partner.name
        self.breaker = breaker
        self._client = client
        self._identities = identities
        self._pseudonyms = Pseudonyms(partner.pseudonym_key)
        self._answers: Answers = answers if answers is not None else RecentAnswers()
        self._delivered: set[str] = set()
        """Idempotency keys the partner acknowledged in a batch not yet finished."""

    def handles(self, instruction: InstructionIssued) -> bool:
        """Only instructions addressed to this partner."""
        return (
            instruction.sink_family is SinkFamily.PARTNER_SHARING
            and instruction.destination == self.destination
        )

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        """Tell the partner, or skip a person it has no identifier for."""
        return self.apply_batch([instruction])[0]

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        """Tell the partner in POSTs of at most ``batch_size`` instructions, in order.

        A failed POST fails the whole call (the runner retries it, or splits it on a
        permanent refusal); the POSTs the partner already acknowledged in this call are
        not sent again on the retry, nor instructions answered before (a duplicate).
        """
        unknown = self._unknown(instructions)
        told = self.answered([i.instruction_id for i in instructions])
        todo = [
            i for i in instructions if i.subject.id not in unknown and i.instruction_id not in told
        ]
        size = self.partner.batch_size
        for start in range(0, len(todo), size):
            self._deliver(todo[start : start + size], remember=True)
        self._delivered.clear()
        return [self._result(i, unknown, told) for i in instructions]

    def answered(self, instruction_ids: Collection[str]) -> dict[str, datetime]:
        """Those this partner was already told (or skipped) and answered for."""
        try:
            return self._answers.answered(instruction_ids)
        except AnswersUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def remember(self, instruction_ids: Collection[str]) -> None:
        """Record them as answered (their receipts are acknowledged)."""
        try:
            self._answers.remember(instruction_ids)
        except AnswersUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc

    def needs_bootstrap(self) -> bool:
        """Partners keep no local store to seed: instructions alone drive them. (What a
        state says for one partner, its own choices included, is
        :func:`consumers.state_records.in_force` for its recipient.)"""
        return False

    def bootstrap(self, state: ConsentStateRecorded) -> None:
        """Nothing to seed (see :meth:`needs_bootstrap`)."""

    def close(self) -> None:
        """Close the partner connection kept alive between webhooks, and the answers."""
        self._client.close()
        self._answers.close()

    def _deliver(self, chunk: Sequence[InstructionIssued], *, remember: bool = False) -> None:
        """One signed POST of ``chunk``, through the breaker; skipped if the partner already
        acknowledged the same request earlier in an unfinished batch."""
        key = self._idempotency_key(chunk)
        if key in self._delivered:
            return
        if not self.breaker.allow():
            raise RetriableSinkError(
                f"circuit open for partner {self.destination}; next probe in "
                f"{self.breaker.seconds_until_probe():.1f}s"
            )
        try:
            self._client.post(self._body(chunk), key)
        except RetriableSinkError:
            self.breaker.record_failure()
            raise
        except PermanentSinkError:
            # The partner answered, so it is up; the request itself is what it refuses.
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        if remember:
            if len(self._delivered) >= _REMEMBERED_LIMIT:
                self._delivered.clear()
            self._delivered.add(key)

    @staticmethod
    def _result(
        instruction: InstructionIssued, unknown: set[str], told: dict[str, datetime]
    ) -> SinkResult:
        if instruction.subject.id in unknown:
            return SKIPPED
        earlier = told.get(instruction.instruction_id)
        # A duplicate answered again keeps (about) its first time, as the stores do.
        return APPLIED if earlier is None else SinkResult(Outcome.APPLIED, applied_at=earlier)

    def _idempotency_key(self, chunk: Sequence[InstructionIssued]) -> str:
        if self.partner.batch_size == 1:
            [instruction] = chunk
            return instruction.instruction_id
        return batch_idempotency_key(i.instruction_id for i in chunk)

    def _body(self, chunk: Sequence[InstructionIssued]) -> bytes:
        pseudonym = self._pseudonyms
        if self.partner.batch_size == 1:
            [instruction] = chunk
            return webhook_body(instruction, self.destination, pseudonym(instruction.subject.id))
        return batch_body(
            [instruction_json(i, self.destination, pseudonym(i.subject.id)) for i in chunk]
        )

    def _unknown(self, instructions: Sequence[InstructionIssued]) -> set[str]:
        """The subjects of ``instructions`` the partner holds no identifier for."""
        if self.partner.known_subjects is KnownSubjects.ALL:
            return set()
        assert self._identities is not None
        subjects = {i.subject.id for i in instructions}
        try:
            return subjects - self._identities.known(self.destination, subjects)
        except IdentityMapUnavailableError as exc:
            raise RetriableSinkError(str(exc)) from exc
