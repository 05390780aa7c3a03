"""Reading what the relay wrote, after the run: instructions, receipts, FullyPropagated.

Every time the benchmark reports is inside the events themselves (``occurred_at``,
``applied_at``, ``completed_at``), so the topics are read once the relay has caught up
and the machine is quiet, rather than by a live consumer competing for the two cores.

Instruction and receipt topics carry more messages than there are consent events, and
only those of withdrawals matter. Their records start with UUID strings ending in
``event_id``, so a message is filtered by reading those length-prefixed strings straight
from the Avro body and decoded with fastavro only if its event is a withdrawal the load
generator sent. An InstructionsIssued (the partners': one record per event) counts as
the instruction of each of its items, one per partner, as an InstructionIssued did. The
shortcut is checked against a full decode on the first message of every writer schema
id, and that schema falls back to full decoding if the two disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from deploy.bench.offsets import TP, Offsets
from schemas.codec import SHIPPED, EventDecoder
from schemas.events import (
    InstructionIssued,
    InstructionsAnswered,
    InstructionsIssued,
    PropagationReceipt,
)
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Outcome

TRACKED = frozenset(a.value for a in Action if a is not Action.ALLOW)
"""Actions whose propagation is proven: everything but ALLOW."""
HONOURING = frozenset({Outcome.APPLIED.value, Outcome.SKIPPED.value})


@dataclass(frozen=True, slots=True)
class Instruction:
    """A tracked instruction issued for a withdrawal."""

    instruction_id: str
    event_id: str
    label: str
    action: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """The first honouring (or else the latest) receipt of an instruction."""

    label: str
    outcome: str
    occurred_ms: int
    applied_ms: int


@dataclass(frozen=True, slots=True)
class Completion:
    """A FullyPropagated event."""

    occurred_ms: int
    completed_ms: int
    labels: frozenset[str]


@dataclass(slots=True)
class Collected:
    """Everything read back for the withdrawals of a run."""

    instructions: dict[str, list[Instruction]] = field(default_factory=dict)
    """event id → its tracked instructions."""
    receipts: dict[str, Receipt] = field(default_factory=dict)
    """instruction id → its receipt."""
    completions: dict[str, Completion] = field(default_factory=dict)
    """event id → its FullyPropagated."""
    counts: dict[str, int] = field(default_factory=dict)
    """topic → messages read."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """"stage: error class" → dead letters."""
    read_seconds: float = 0.0


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _label(record: dict[str, Any]) -> str:
    return f"{record['sink_family']}/{record['destination']}"


def leading_strings(data: bytes, count: int) -> list[bytes]:
    """The first ``count`` Avro strings of a wire-format message's body."""
    pos, out = 5, []
    for _ in range(count):
        z, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            z |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        size = (z >> 1) ^ -(z & 1)
        out.append(data[pos : pos + size])
        pos += size
    return out


def _event_id_position(event_type: type[Any]) -> int:
    """How many leading string fields to read to reach ``event_id``."""
    for index, f in enumerate(SHIPPED[event_type].parsed["fields"]):
        if f["name"] == "event_id":
            return index + 1
        if f["type"] != "string":
            break
    raise ValueError(f"{event_type.__name__}: event_id is not among its leading strings")


class _Filter:
    """Cheap "is this message about one of these events?" with a checked shortcut."""

    def __init__(self, decoder: EventDecoder, event_type: type[Any], wanted: set[str]) -> None:
        self._decoder = decoder
        self._count = _event_id_position(event_type)
        self._wanted = {e.encode() for e in wanted}
        self._checked: dict[bytes, bool] = {}

    def decode_if_wanted(self, data: bytes) -> dict[str, Any] | None:
        schema_id = data[1:5]
        trusted = self._checked.get(schema_id)
        if trusted is None:
            _, record = self._decoder.decode_dict(data)
            cheap = leading_strings(data, self._count)[-1]
            trusted = self._checked[schema_id] = cheap == record["event_id"].encode()
            return record if record["event_id"].encode() in self._wanted else None
        if trusted and leading_strings(data, self._count)[-1] not in self._wanted:
            return None
        _, record = self._decoder.decode_dict(data)
        return record if record["event_id"].encode() in self._wanted else None


def instruction_topics(settings: KafkaSettings) -> list[str]:
    """Every instruction topic of the run on the broker: each family's, and, for a relay
    revision from when partners had a topic each, every partner's own."""
    prefix = settings.topics.instruction_prefix()
    listed = AdminClient(settings.admin_config()).list_topics(timeout=30).topics
    return sorted(name for name in listed if name.startswith(prefix))


def read_topic(
    settings: KafkaSettings, offsets: Offsets, topic: str, group: str
) -> Iterator[Message]:
    """Every message of ``topic`` up to its current end, partition by partition order."""
    ends: dict[TP, int] = offsets.watermarks([topic])
    pending = {tp for tp, end in ends.items() if end > 0}
    if not pending:
        return
    consumer = Consumer(
        settings.consumer_config(
            group, **{"enable.partition.eof": False, "fetch.max.bytes": 52428800}
        )
    )
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in pending])
        idle_deadline = time.monotonic() + 60
        while pending:
            batch = consumer.consume(10_000, 1.0)
            if not batch:
                if time.monotonic() > idle_deadline:
                    raise TimeoutError(f"{topic}: nothing more to read, {len(pending)} left")
                continue
            idle_deadline = time.monotonic() + 60
            for message in batch:
                if message.error() is not None:
                    continue
                tp = (message.topic() or "", message.partition() or 0)
                offset = message.offset() or 0
                if tp in pending and offset < ends[tp]:
                    yield message
                if tp in pending and offset + 1 >= ends[tp]:
                    pending.discard(tp)
    finally:
        consumer.close()


def collect(
    settings: KafkaSettings, offsets: Offsets, withdrawals: Iterable[str], group_prefix: str
) -> Collected:
    """Read back every tracked instruction, receipt and completion of ``withdrawals``."""
    started = time.monotonic()
    wanted = set(withdrawals)
    decoder = EventDecoder(settings.registry_client())
    topics = settings.topics
    out = Collected()

    def each(topic: str) -> Iterator[bytes]:
        count = 0
        for message in read_topic(settings, offsets, topic, f"{group_prefix}{time.time_ns()}"):
            count += 1
            value = message.value()
            if value:
                yield value
        out.counts[topic] = count

    filters = {
        InstructionIssued: _Filter(decoder, InstructionIssued, wanted),
        InstructionsIssued: _Filter(decoder, InstructionsIssued, wanted),
    }
    instruction_kinds: dict[bytes, type[Any]] = {}
    """Schema id → event type: one destination's instruction, or several destinations'."""
    for topic in instruction_topics(settings):
        for value in each(topic):
            kind = instruction_kinds.get(value[1:5])
            if kind is None:
                kind = instruction_kinds[value[1:5]] = decoder.decode_dict(value)[0]
            record = filters[kind].decode_if_wanted(value)
            if record is None:
                continue
            items = record.pop("instructions", None)
            for item in [record] if items is None else [{**record, **i} for i in items]:
                if item["action"] in TRACKED:
                    out.instructions.setdefault(item["event_id"], []).append(
                        Instruction(
                            item["instruction_id"], item["event_id"], _label(item), item["action"]
                        )
                    )
    receipts = _Filter(decoder, PropagationReceipt, wanted)
    kinds: dict[bytes, type[Any]] = {}
    """Schema id → event type: a sink writes single receipts or batches of them."""
    for value in each(topics.receipts):
        kind = kinds.get(value[1:5])
        if kind is None:
            kind = kinds[value[1:5]] = decoder.decode_dict(value)[0]
        if kind is InstructionsAnswered:
            found = [
                r for r in decoder.decode_dict(value)[1]["receipts"] if r["event_id"] in wanted
            ]
        else:
            single = receipts.decode_if_wanted(value)
            found = [] if single is None else [single]
        for record in found:
            _keep_receipt(out.receipts, record)
    for value in each(topics.propagated):
        _, record = decoder.decode_dict(value)
        if record["event_id"] in wanted and record["event_id"] not in out.completions:
            out.completions[record["event_id"]] = Completion(
                _ms(record["occurred_at"]),
                _ms(record["completed_at"]),
                frozenset(d["destination"] for d in record["destinations"]),
            )
    for value in each(topics.dead_letters):
        _, record = decoder.decode_dict(value)
        key = f"{record['stage']}: {record['error_class']}"
        out.dead_letters[key] = out.dead_letters.get(key, 0) + 1
    out.read_seconds = time.monotonic() - started
    return out


def _keep_receipt(receipts: dict[str, Receipt], record: dict[str, Any]) -> None:
    """Keep the earliest honouring receipt; failing that, the latest failure."""
    iid = record["instruction_id"]
    new = Receipt(
        _label(record), record["outcome"], _ms(record["occurred_at"]), _ms(record["applied_at"])
    )
    old = receipts.get(iid)
    if old is None:
        receipts[iid] = new
    elif new.outcome in HONOURING:
        if old.outcome not in HONOURING or new.applied_ms < old.applied_ms:
            receipts[iid] = new
    elif old.outcome not in HONOURING and new.applied_ms > old.applied_ms:
        receipts[iid] = new
