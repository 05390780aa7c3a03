"""Fixtures for the stream's unit tests (no network): the packaged routing policy,
event factories, and a context whose codec is single-object Avro and whose producer
records what it was asked to send."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.codec import EventDecoder, encode_single_object, encode_single_object_dict
from schemas.events import (
    ConsentChanged,
    CookiePreferencesSet,
    DataEventCaptured,
    PropagationReceipt,
    RightsRequested,
    Subject,
    new_event_id,
    utc_now,
)
from schemas.taxonomy import (
    Channel,
    Choice,
    CookieCategory,
    Outcome,
    PolicyVersion,
    Purpose,
    Recipient,
    Regime,
    Right,
    SinkFamily,
    Source,
    SubjectKind,
)
from schemas.topics import Topics
from streams.engine.context import StreamContext
from streams.intake.records import StateAvro, consent_state
from streams.intake.routing import RoutingPolicy, load_policy
from streams.metrics import StreamMetrics


class Make:
    """Valid events with defaults; times are relative to now."""

    @staticmethod
    def ago(seconds: float) -> datetime:
        return utc_now() - timedelta(seconds=seconds)

    @staticmethod
    def subject(kind: SubjectKind = SubjectKind.ACCOUNT) -> Subject:
        return Subject(id=f"s-{uuid.uuid4().hex[:10]}", kind=kind)

    def _envelope(
        self, subject: Subject | None, at: datetime | None, regime: Regime
    ) -> dict[str, Any]:
        return {
            "event_id": new_event_id(),
            "subject": subject or self.subject(),
            "occurred_at": at or utc_now(),
            "recorded_at": utc_now(),
            "source": Source.API,
            "regime": regime,
            "policy_version": PolicyVersion.V2019_07_15,
        }

    def changed(
        self,
        choice: Choice,
        *purposes: Purpose,
        subject: Subject | None = None,
        at: datetime | None = None,
        regime: Regime = Regime.GDPR,
        recipients: tuple[Recipient, ...] = (),
        expires_at: datetime | None = None,
    ) -> ConsentChanged:
        return ConsentChanged(
            **self._envelope(subject, at, regime),
            choice=choice,
            purposes=purposes,
            recipients=recipients,
            expires_at=expires_at,
        )

    def right(
        self,
        right: Right,
        *,
        subject: Subject | None = None,
        at: datetime | None = None,
        regime: Regime = Regime.GDPR,
        channels: tuple[Channel, ...] = (),
        purposes: tuple[Purpose, ...] = (),
    ) -> RightsRequested:
        return RightsRequested(
            **self._envelope(subject, at, regime),
            right=right,
            channels=channels,
            purposes=purposes,
        )

    def cookies(
        self,
        *,
        subject: Subject | None = None,
        granted: tuple[CookieCategory, ...] = (),
        refused: tuple[CookieCategory, ...] = (),
    ) -> CookiePreferencesSet:
        return CookiePreferencesSet(
            **self._envelope(subject or self.subject(SubjectKind.DEVICE), None, Regime.GDPR),
            device_id="device-1",
            granted=granted,
            refused=refused,
        )

    @staticmethod
    def data(
        subject: Subject, purpose: Purpose, *, at: datetime | None = None
    ) -> DataEventCaptured:
        return DataEventCaptured(
            event_id=new_event_id(),
            subject=subject,
            occurred_at=at or utc_now(),
            purpose=purpose,
            recipient=None,
            payload=b"x",
        )

    @staticmethod
    def receipt(
        instruction: dict[str, Any], outcome: Outcome = Outcome.APPLIED
    ) -> PropagationReceipt:
        return PropagationReceipt(
            receipt_id=new_event_id(),
            instruction_id=instruction["instruction_id"],
            event_id=instruction["event_id"],
            subject=Subject(
                id=instruction["subject"]["id"], kind=SubjectKind(instruction["subject"]["kind"])
            ),
            sink_family=SinkFamily(instruction["sink_family"]),
            destination=instruction["destination"],
            outcome=outcome,
            occurred_at=utc_now(),
            applied_at=utc_now(),
            reason=None,
        )


@dataclass
class Message:
    """A Kafka message as the processors read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class RefusedError(Exception):
    """A refusal no retry fixes (Faust's ProducerSendError for a record too large)."""


class RecordingSender:
    """Records sends; can be told to fail the next ``fail`` deliveries (a message sent
    alone, or a topic partition's records sent as a batch)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.headers: list[Any] = []
        """Each sent record's headers, in the order of ``sent``."""
        self.fail = 0
        self.refuse: Callable[[str, bytes | None], bool] = lambda _topic, _value: False
        """Which records the broker refuses for good (as it does one that is too large)."""

    def _delivery(
        self, sent: list[tuple[str, bytes | None, bytes | None, int | None]], headers: list[Any]
    ) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if any(self.refuse(topic, value) for topic, _k, value, _p in sent):
            future.set_exception(RefusedError("the broker refuses this record"))
        elif self.fail:
            self.fail -= 1
            future.set_exception(ConnectionError("broker away"))
        else:
            self.sent.extend(sent)
            self.headers.extend(headers)
            future.set_result(None)
        return future

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]:
        return self._delivery([(topic, key, value, partition)], [headers])

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The decoded Avro dicts sent to ``topic``."""
        return [_decode(value) for t, _k, value, _p in self.sent if t == topic]

    def raw_on(self, topic: str) -> list[bytes | None]:
        return [value for t, _k, value, _p in self.sent if t == topic]


def _decode(value: bytes | None) -> dict[str, Any]:
    assert value is not None
    return EventDecoder(None).decode_dict(value)[1]


def single_object(event_type: type[Any], avro: dict[str, Any], topic: str) -> bytes:
    """An Encoder without a registry: Avro single-object encoding. A state record made
    for the stream's own encoder (records.state_record) is written whole, as
    records.consent_state makes it."""
    if isinstance(avro, StateAvro) and "entries" not in avro:
        avro = consent_state(avro["subject"]["id"], avro.state, avro["updated_at"])
    return encode_single_object_dict(event_type, avro)


@dataclass
class Harness:
    """A stream context over dicts, plus helpers to feed it messages."""

    ctx: StreamContext
    sender: RecordingSender
    topics: Topics
    offsets: dict[str, int] = field(default_factory=dict)

    def message(
        self, topic: str, event: Any, *, key: bytes | None = None, partition: int = 0
    ) -> Message:
        value = encode_single_object(event) if not isinstance(event, bytes) else event
        if key is None and not isinstance(event, bytes):
            key = event.subject.id.encode()
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        return Message(topic, partition, offset, key, value)

    def instructions(self) -> list[dict[str, Any]]:
        """Every instruction sent, on whichever instruction topic, in send order: an
        InstructionsIssued as the InstructionIssued dict of each of its items."""
        prefix = self.topics.instruction_prefix()
        out: list[dict[str, Any]] = []
        for t, _k, v, _p in self.sender.sent:
            if t.startswith(prefix):
                record = _decode(v)
                items = record.pop("instructions", None)
                out += [record] if items is None else [{**record, **item} for item in items]
        return out


@pytest.fixture(scope="session")
def policy() -> RoutingPolicy:
    """The packaged routing policy."""
    return load_policy()


@pytest.fixture
def make() -> Make:
    return Make()


@pytest.fixture
def harness(policy: RoutingPolicy) -> Harness:
    topics = Topics("unit.", 3)
    sender = RecordingSender()

    async def no_sleep(_seconds: float) -> None:
        return None

    ctx = StreamContext(
        policy=policy,
        topics=topics,
        decoder=EventDecoder(None),
        encode=single_object,
        sender=sender,
        metrics=StreamMetrics.create(CollectorRegistry()),
        state={},
        pending={},
        done={},
        copartitioned=frozenset(spec.name for spec in topics.all()),
        sleep=no_sleep,
    )
    return Harness(ctx, sender, topics)
