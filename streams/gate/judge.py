"""The consent gate's decision on one batch of data events, without any Kafka I/O.

:class:`GateJudge` decodes each data event, decides it (:mod:`streams.gate.rules`: the
data's event time against the decisions' times, in the subject's state as
:mod:`streams.gate.state` rebuilt it) and says what to publish: the allowed events'
bytes untouched, on the data partition's number of the allowed topic; events keyed by
something other than their subject, re-published keyed by it; anything undecodable or
invalid, dead-lettered with field, reason and source coordinates. The caller publishes
that and only then counts it. Whether the state is complete enough to decide at all is
:mod:`streams.gate.coverage`'s question, answered before this runs.

Decoding takes a cheap path: the Avro dict is checked for exactly what the contract
would reject in the fields the gate reads, and only an event failing that check is built
as a record, so its dead letter names the same field and reason as a full decode would.
"""

from __future__ import annotations

import logging
from collections import Counter as Counts
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from confluent_kafka import Message

from schemas.converters import from_dict
from schemas.errors import ConsentRelayError, InvalidEventError
from schemas.events import DataEventCaptured, DeadLettered
from schemas.taxonomy import Purpose, Recipient, SubjectKind
from schemas.topics import Topics
from schemas.validation import identifier_problem
from streams.engine.wire import Encoder
from streams.gate.rules import GatePolicy, decide
from streams.intake import records
from streams.intake.resolution import SubjectState
from streams.intake.times import now_ms, to_ms

log = logging.getLogger("streams.gate")

STAGE = "stream.gate"
"""The gate's name in dead letters and metrics (unchanged since it ran in the worker)."""
EVENT_TYPE = DataEventCaptured.__name__

_PURPOSES = {p.value: p for p in Purpose}
_RECIPIENTS = {r.value: r for r in Recipient}
_KINDS = frozenset(k.value for k in SubjectKind)
_FIELDS = 6
"""Fields of a DataEventCaptured dict (the shipped schema is the reader's)."""


class PublishError(ConsentRelayError):
    """A batch's output could not be encoded or delivered; the batch is decided again."""


class UnexpectedEventError(InvalidEventError):
    """A well-formed event of a type that does not belong on the data topic."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"{event_type} does not belong on the data events topic")
        self.field_name = None
        self.reason = f"{event_type} does not belong on the data events topic"


class DictDecoder(Protocol):
    """Reads one message into its event type and Avro dict (``schemas.codec.EventDecoder``)."""

    def decode_dict(self, data: bytes | None) -> tuple[type[Any], dict[str, Any]]:
        """Raises InvalidEventError subclasses, or RegistryUnavailableError."""
        ...


class DataEvent(NamedTuple):
    """What the gate reads of a data event."""

    key: bytes
    purpose: Purpose
    recipient: Recipient | None
    at_ms: int


def read_data_event(decoder: DictDecoder, value: bytes | None) -> DataEvent:
    """The fields the gate decides on; raises InvalidEventError as a full decode would."""
    event_type, fields = decoder.decode_dict(value)
    if event_type is not DataEventCaptured:
        raise UnexpectedEventError(event_type.__name__)
    subject = fields.get("subject")
    recipient_name = fields.get("recipient")
    purpose = _PURPOSES.get(fields.get("purpose"))  # type: ignore[arg-type]
    recipient = None if recipient_name is None else _RECIPIENTS.get(recipient_name)
    at = fields.get("occurred_at")
    if (
        purpose is not None
        and (recipient is not None or recipient_name is None)
        and type(at) is datetime
        and len(fields) == _FIELDS
        and type(fields.get("event_id")) is str
        and type(fields.get("payload")) is bytes
        and type(subject) is dict
        and len(subject) == 2  # id and kind
        and subject.get("kind") in _KINDS
    ):
        subject_id = subject.get("id")
        # The contract's one id rule (no control characters, ...), not a copy of part of
        # it: an id the full decode refuses must be dead-lettered here too, never passed.
        if type(subject_id) is str and identifier_problem(subject_id) is None:
            return DataEvent(subject_id.encode(), purpose, recipient, to_ms(at))
    # Not the common case: build the record, which raises what the contract says.
    event = from_dict(DataEventCaptured, fields)
    return DataEvent(
        event.subject.id.encode(), event.purpose, event.recipient, to_ms(event.occurred_at)
    )


Output = tuple[str, bytes | None, bytes, int | None]
"""Topic, key, value and partition (None: the producer's partitioner) of one message."""


class GateBatch:
    """What one batch comes to: messages to publish, and counts for once they are out."""

    __slots__ = ("dead_letters", "delays", "events", "gate", "out")

    def __init__(self) -> None:
        self.out: list[Output] = []
        self.events: Counts[tuple[str, str]] = Counts()
        """(event type, what became of it) → count, for the stream's events counter."""
        self.gate: Counts[tuple[str, str]] = Counts()
        """(decision, purpose) → count."""
        self.dead_letters: Counts[tuple[str, str]] = Counts()
        """(stage, error class) → count."""
        self.delays: list[float] = []
        """Seconds from each decided data event's time to its decision."""


class GateJudge:
    """Decides batches of data events against the subjects' consent state.

    ``state`` maps a subject id to its :class:`~streams.intake.resolution.SubjectState`; the
    gate's loop updates it between batches, never while one is decided. The gate's own
    (:class:`~streams.gate.state.SubjectStates`) reads a subject's record on lookup: one
    that cannot be read raises an InvalidEventError there, and the data event is
    dead-lettered like any event that cannot be decided.
    """

    def __init__(
        self,
        *,
        policy: GatePolicy,
        topics: Topics,
        state: Mapping[bytes, SubjectState],
        decoder: DictDecoder,
        encode: Encoder,
        copartitioned: frozenset[str],
    ) -> None:
        self.policy = policy
        self.topics = topics
        self.state = state
        self.decoder = decoder
        self.encode = encode
        self.allowed_copartitioned = topics.data_allowed in copartitioned

    def judge(self, messages: Sequence[Message]) -> GateBatch:
        """Decide every message; raises only what a retry can fix (registry, encoding)."""
        batch = GateBatch()
        now = now_ms()
        for message in messages:
            try:
                self._add(batch, message, now)
            except InvalidEventError as exc:
                self._dead_letter(batch, message, exc, now)
            except ConsentRelayError:
                raise  # the registry is away: the batch is retried
            except Exception as exc:  # noqa: BLE001 - dead-lettered, never dropped
                # A bug on one message must not stop the gate; the message goes to the
                # dead letters with the error and can be replayed once fixed.
                self._dead_letter(batch, message, exc, now)
        return batch

    def _add(self, batch: GateBatch, message: Message, now: int) -> None:
        value = message.value()
        data = read_data_event(self.decoder, value)
        topics = self.topics
        if message.key() != data.key:
            batch.out.append((topics.data_events, data.key, value or b"", None))
            batch.events[(EVENT_TYPE, "rekeyed")] += 1
            return
        verdict = decide(
            self.policy, self.state.get(data.key), data.purpose, data.recipient, data.at_ms
        )
        if verdict.allowed:
            partition = message.partition() if self.allowed_copartitioned else None
            batch.out.append((topics.data_allowed, data.key, value or b"", partition))
            batch.events[(EVENT_TYPE, "allowed")] += 1
        else:
            batch.events[(EVENT_TYPE, "dropped")] += 1
        batch.gate[(verdict.value, data.purpose.value)] += 1
        batch.delays.append(max(0.0, (now - data.at_ms) / 1000))

    def _dead_letter(
        self, batch: GateBatch, message: Message, error: BaseException, now: int
    ) -> None:
        topic, partition, offset = message.topic() or "", message.partition(), message.offset()
        avro = records.dead_letter(
            stage=STAGE,
            topic=topic,
            partition=partition if partition is not None else -1,
            offset=offset if offset is not None else -1,
            key=message.key(),
            value=message.value(),
            error=error,
            now_ms=now,
        )
        target = self.topics.dead_letters
        try:
            encoded = self.encode(DeadLettered, avro, target)
        except ConsentRelayError as exc:
            raise PublishError(f"cannot encode DeadLettered: {exc}") from exc
        batch.out.append((target, avro["original_key"], encoded, None))
        reason = type(error).__name__
        batch.dead_letters[(STAGE, reason)] += 1
        batch.events[("unknown", "dead_lettered")] += 1
        log.warning(
            "%s: dead-lettered %s[%s]@%s: %s (field %s)",
            STAGE,
            topic,
            partition,
            offset,
            reason,
            getattr(error, "field_name", None),
        )
