"""The partner sink's decisions, with a recording stand-in for the webhook client."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.partners.breaker import BreakerState, CircuitBreaker
from consumers.partners.config import KnownSubjects, PartnerConfig
from consumers.partners.identities import IdentityMap
from consumers.partners.pseudonym import pseudonymous_id
from consumers.partners.sink import UNKNOWN_SUBJECT, PartnerSink
from consumers.protocol import PermanentSinkError, RetriableSinkError
from schemas.events import InstructionIssued, Subject
from schemas.taxonomy import Action, Outcome, Purpose, Regime, SinkFamily, SubjectKind

KEY = b"criteo-pseudonym-key-0123456789"


class Client:
    """Records bodies; raises what it is told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []
        self.error: Exception | None = None

    def post(self, body: bytes, idempotency_key: str) -> int:
        self.sent.append((body, idempotency_key))
        if self.error is not None:
            raise self.error
        return 204


def instruction(subject_id: str = "acct-1", destination: str = "criteo") -> InstructionIssued:
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return InstructionIssued(
        instruction_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subject_id}/{destination}")),
        event_id="evt-1",
        event_type="ConsentChanged",
        subject=Subject(id=subject_id, kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.PARTNER_SHARING,
        destination=destination,
        action=Action.SUPPRESS,
        purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=now,
        issued_at=now,
    )


def partner(known: KnownSubjects = KnownSubjects.MAPPED) -> PartnerConfig:
    return PartnerConfig(
        name="criteo",
        url="http://127.0.0.1:1/",
        secret=b"s" * 20,
        pseudonym_key=KEY,
        known_subjects=known,
        failure_threshold=2,
        reset_seconds=60,
    )


@pytest.fixture
def identities(tmp_path: Path) -> IdentityMap:
    ids = IdentityMap(tmp_path / "ids.sqlite")
    ids.record("criteo", ["acct-1"])
    ids.record("google", ["acct-2"])
    return ids


def make(
    identities: IdentityMap | None, known: KnownSubjects = KnownSubjects.MAPPED
) -> tuple[PartnerSink, Client]:
    client = Client()
    sink = PartnerSink(
        partner(known),
        client=client,  # type: ignore[arg-type]
        breaker=CircuitBreaker(failure_threshold=2, reset_seconds=60),
        identities=identities,
    )
    return sink, client


def test_handles_only_its_own_destination(identities: IdentityMap) -> None:
    sink, _ = make(identities)
    assert sink.handles(instruction(destination="criteo"))
    assert not sink.handles(instruction(destination="google"))


def test_known_subject_gets_a_webhook_with_pseudonym_only(identities: IdentityMap) -> None:
    sink, client = make(identities)
    result = sink.apply(instruction("acct-1"))
    assert result.outcome is Outcome.APPLIED
    [(body, key)] = client.sent
    assert key == instruction("acct-1").instruction_id
    assert b"acct-1" not in body
    document = json.loads(body)
    assert document["subject"] == {"id": pseudonymous_id(KEY, "acct-1"), "kind": "ACCOUNT"}
    assert document["action"] == "SUPPRESS"
    assert document["purposes"] == ["SHARE_WITH_ADVERTISING_PLATFORMS"]
    assert document["instruction_id"] == key
    assert document["occurred_at"] == "2026-01-02T03:04:05.678000+00:00"


def test_unknown_subject_is_skipped_with_reason_and_not_sent(identities: IdentityMap) -> None:
    sink, client = make(identities)
    result = sink.apply(instruction("acct-2"))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, UNKNOWN_SUBJECT)
    assert client.sent == []


def test_partner_knowing_everyone_needs_no_map() -> None:
    sink, client = make(None, KnownSubjects.ALL)
    assert sink.apply(instruction("acct-9")).outcome is Outcome.APPLIED
    assert len(client.sent) == 1


def test_mapped_partner_without_map_is_refused() -> None:
    with pytest.raises(ValueError, match="identity map"):
        make(None)


def test_unreadable_identity_map_is_retriable(tmp_path: Path) -> None:
    sink, client = make(IdentityMap(tmp_path / "missing" / "ids.sqlite"))
    with pytest.raises(RetriableSinkError, match="identity map"):
        sink.apply(instruction())
    assert client.sent == []


def test_failures_open_the_breaker_then_calls_fail_fast(identities: IdentityMap) -> None:
    sink, client = make(identities)
    client.error = RetriableSinkError("partner answered HTTP 500")
    for _ in range(2):
        with pytest.raises(RetriableSinkError, match="500"):
            sink.apply(instruction())
    assert sink.breaker.state is BreakerState.OPEN
    with pytest.raises(RetriableSinkError, match="circuit open"):
        sink.apply(instruction())
    assert len(client.sent) == 2, "an open breaker must not call the partner"


def test_permanent_refusal_is_raised_and_keeps_the_breaker_closed(
    identities: IdentityMap,
) -> None:
    sink, client = make(identities)
    client.error = PermanentSinkError("partner refused the request: HTTP 401")
    for _ in range(3):
        with pytest.raises(PermanentSinkError):
            sink.apply(instruction())
    assert sink.breaker.state is BreakerState.CLOSED


def test_partners_keep_no_store_to_bootstrap(identities: IdentityMap) -> None:
    sink, _ = make(identities)
    assert not sink.needs_bootstrap()
