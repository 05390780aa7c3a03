"""The partner sink in batches: body shape, one signature per request, idempotency keys,
chunking at ``batch_size``, skipped subjects and the breaker (no network: the webhook
client's socket exchange is replaced by a recorder)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.partners.breaker import BreakerState, CircuitBreaker
from consumers.partners.config import KnownSubjects, PartnerConfig
from consumers.partners.identities import IdentityMap
from consumers.partners.payload import batch_idempotency_key, webhook_body
from consumers.partners.pseudonym import pseudonymous_id
from consumers.partners.sink import UNKNOWN_SUBJECT, PartnerSink
from consumers.partners.webhook import WebhookClient
from consumers.protocol import AppliesBatches, PermanentSinkError, RetriableSinkError
from schemas.events import InstructionIssued, Subject
from schemas.taxonomy import Action, Outcome, Purpose, Regime, SinkFamily, SubjectKind

KEY = b"criteo-pseudonym-key-0123456789"
SECRET = b"criteo-webhook-secret-0123456789"
NOW = 1_800_000_000


class Recorder(WebhookClient):
    """A real webhook client (headers, signing) whose exchange is recorded, not sent."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1/hook", SECRET, clock=lambda: NOW + 0.4)
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []

    def _send(self, body: bytes, headers: dict[str, str]) -> int:
        self.seen.append((headers, body))
        return self.statuses.pop(0) if self.statuses else 204

    def documents(self) -> list[list[dict[str, Any]]]:
        """Each request's instruction objects."""
        return [json.loads(body)["instructions"] for _, body in self.seen]


def instruction(subject_id: str, n: int = 0) -> InstructionIssued:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return InstructionIssued(
        instruction_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subject_id}/{n}/criteo")),
        event_id=f"evt-{n}",
        event_type="ConsentChanged",
        subject=Subject(id=subject_id, kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.PARTNER_SHARING,
        destination="criteo",
        action=Action.SUPPRESS if n % 2 == 0 else Action.ALLOW,
        purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=when,
        issued_at=when,
    )


def many(count: int) -> list[InstructionIssued]:
    return [instruction(f"acct-{n}", n) for n in range(count)]


def make(batch_size: int, identities: IdentityMap | None = None) -> tuple[PartnerSink, Recorder]:
    client = Recorder()
    known = KnownSubjects.ALL if identities is None else KnownSubjects.MAPPED
    config = PartnerConfig(
        name="criteo",
        url="http://127.0.0.1:1/hook",
        secret=SECRET,
        pseudonym_key=KEY,
        known_subjects=known,
        failure_threshold=2,
        reset_seconds=60,
        batch_size=batch_size,
    )
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=60)
    return PartnerSink(config, client=client, breaker=breaker, identities=identities), client


def test_the_sink_offers_batches_to_the_runner() -> None:
    sink, _ = make(3)
    assert isinstance(sink, AppliesBatches)


def test_batch_body_wraps_the_single_bodies_in_order() -> None:
    sink, client = make(10)
    batch = many(3)
    assert [r.outcome for r in sink.apply_batch(batch)] == [Outcome.APPLIED] * 3
    [(headers, body)] = client.seen
    assert body.startswith(b'{"instructions":[')
    singles = [
        json.loads(webhook_body(i, "criteo", pseudonymous_id(KEY, i.subject.id))) for i in batch
    ]
    assert json.loads(body) == {"instructions": singles}
    assert b"acct-" not in body, "only pseudonyms leave the relay"
    assert headers["Content-Type"] == "application/json"


def test_one_signature_covers_the_whole_batch() -> None:
    sink, client = make(10)
    sink.apply_batch(many(4))
    [(headers, body)] = client.seen
    assert headers["X-ConsentRelay-Timestamp"] == str(NOW)
    mac = hmac.new(SECRET, f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-ConsentRelay-Signature"] == f"sha256={mac}"


def test_idempotency_key_depends_only_on_the_set_of_instruction_ids() -> None:
    batch = many(5)
    first, again = make(10), make(10)
    first[0].apply_batch(batch)
    again[0].apply_batch(list(reversed(batch)))
    [(headers, _)] = first[1].seen
    [(redelivered, _)] = again[1].seen
    key = headers["Idempotency-Key"]
    assert key == redelivered["Idempotency-Key"]
    assert key == batch_idempotency_key(i.instruction_id for i in batch)
    assert key.startswith("batch-")
    assert key != batch_idempotency_key(i.instruction_id for i in batch[:4])
    assert key not in {i.instruction_id for i in batch}


def test_instructions_go_out_in_chunks_of_batch_size_in_order() -> None:
    sink, client = make(3)
    batch = many(7)
    results = sink.apply_batch(batch)
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 7
    sent = client.documents()
    assert [len(request) for request in sent] == [3, 3, 1]
    ids = [doc["instruction_id"] for request in sent for doc in request]
    assert ids == [i.instruction_id for i in batch]
    keys = [headers["Idempotency-Key"] for headers, _ in client.seen]
    assert keys[0] == batch_idempotency_key(i.instruction_id for i in batch[:3])
    assert len(set(keys)) == 3


def test_unknown_subjects_are_skipped_and_never_sent(tmp_path: Path) -> None:
    identities = IdentityMap(tmp_path / "ids.sqlite")
    identities.record("criteo", ["acct-0", "acct-2", "acct-3"])
    identities.record("google", ["acct-1"])
    sink, client = make(2, identities)
    batch = many(5)
    results = sink.apply_batch(batch)
    assert [r.outcome for r in results] == [
        Outcome.APPLIED,
        Outcome.SKIPPED,
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.SKIPPED,
    ]
    assert {r.reason for r in results if r.outcome is Outcome.SKIPPED} == {UNKNOWN_SUBJECT}
    sent = [doc["instruction_id"] for request in client.documents() for doc in request]
    assert sent == [batch[n].instruction_id for n in (0, 2, 3)]
    assert [len(request) for request in client.documents()] == [2, 1]


def test_a_batch_nobody_knows_calls_no_one_even_with_the_breaker_open(tmp_path: Path) -> None:
    identities = IdentityMap(tmp_path / "ids.sqlite")
    identities.record("google", ["acct-0"])
    sink, client = make(5, identities)
    sink.breaker.record_failure()
    sink.breaker.record_failure()
    assert [r.outcome for r in sink.apply_batch(many(3))] == [Outcome.SKIPPED] * 3
    assert client.seen == []


def test_unreadable_identity_map_fails_the_batch_retriably(tmp_path: Path) -> None:
    sink, client = make(5, IdentityMap(tmp_path / "missing" / "ids.sqlite"))
    with pytest.raises(RetriableSinkError, match="identity map"):
        sink.apply_batch(many(3))
    assert client.seen == []


def test_open_breaker_fails_the_batch_fast_and_retriably() -> None:
    sink, client = make(5)
    client.statuses = [500, 503]
    for _ in range(2):
        with pytest.raises(RetriableSinkError, match="HTTP 5"):
            sink.apply_batch(many(3))
    assert sink.breaker.state is BreakerState.OPEN
    with pytest.raises(RetriableSinkError, match="circuit open"):
        sink.apply_batch(many(3))
    assert len(client.seen) == 2, "one failed POST is one breaker failure; open means no call"


def test_a_retried_batch_does_not_resend_what_the_partner_acknowledged() -> None:
    sink, client = make(2)
    batch = many(5)
    client.statuses = [204, 503]
    with pytest.raises(RetriableSinkError):
        sink.apply_batch(batch)
    assert [r.outcome for r in sink.apply_batch(batch)] == [Outcome.APPLIED] * 5
    sizes = [len(request) for request in client.documents()]
    assert sizes == [2, 2, 2, 1], "first chunk once, the failed one again, then the rest"
    # Finished batches are forgotten: the same batch delivered again is sent again.
    sink.apply_batch(batch)
    assert len(client.seen) == 7


def test_permanent_refusal_fails_the_batch_and_keeps_the_breaker_closed() -> None:
    sink, client = make(5)
    client.statuses = [413]
    with pytest.raises(PermanentSinkError, match="413"):
        sink.apply_batch(many(3))
    assert sink.breaker.state is BreakerState.CLOSED


def test_batch_size_one_keeps_the_single_body_and_instruction_id_key() -> None:
    sink, client = make(1)
    batch = many(3)
    assert [r.outcome for r in sink.apply_batch(batch)] == [Outcome.APPLIED] * 3
    assert [h["Idempotency-Key"] for h, _ in client.seen] == [i.instruction_id for i in batch]
    for (_, body), sent in zip(client.seen, batch, strict=True):
        assert body == webhook_body(sent, "criteo", pseudonymous_id(KEY, sent.subject.id))
    sink.apply(batch[0])
    assert client.seen[-1][1] == client.seen[0][1]


def test_a_batching_partner_gets_the_batch_shape_for_a_lone_instruction() -> None:
    sink, client = make(50)
    lone = instruction("acct-9", 9)
    assert sink.apply(lone).outcome is Outcome.APPLIED
    [(headers, _)] = client.seen
    assert [d["instruction_id"] for d in client.documents()[0]] == [lone.instruction_id]
    assert headers["Idempotency-Key"] == batch_idempotency_key([lone.instruction_id])
