"""Where a withdrawal's time goes, hop by hop, read from a kept phase's topics.

``python -m deploy.bench.hops <topic prefix>`` reads the topics a bench phase left on
the broker (``--keep-topics``; the prefix is printed as "starting the relay on prefix
..."): the consent events, every instruction topic, the receipts and the
FullyPropagated records. Each record carries two clocks: its Kafka timestamp (set when
its producer was handed it) and the times inside the event (``occurred_at``,
``issued_at`` when intake began the batch, ``applied_at`` when the sink applied it,
``completed_at`` when the receipts batch that completed it began). Between them they
split publish → FullyPropagated into hops (every process runs on the same machine's
clock):

1. event → consent record's timestamp: the load generator hands the record over;
2. → intake's batch begins (``issued_at``): the producer's ``linger.ms``, the broker,
   the stream worker's fetch, its queue, the tables' lock;
3. → the last instruction record's timestamp: intake's work on the batch;
4. → the family's last destination applied it: the sink's fetch, decode and apply;
5. → the family's last receipt record's timestamp: the sink's receipt;
6. last receipt's timestamp → ``completed_at``: the receipt producer's ``linger.ms``,
   the broker, the worker's fetch, queue and lock, earlier receipts batches;
7. ``completed_at`` → the FullyPropagated record's timestamp: the receipts batch's work.

The bench's "fully propagated" is ``completed_at - occurred_at``: hops 1 to 6 along the
family that answered last. Withdrawals are taken in event-time order and the first
``--skip`` (the warm-up's, 50 by default at idle) are left out.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from deploy.bench.analysis import percentiles
from schemas.codec import EventDecoder
from schemas.runtime.kafka import KafkaSettings

READ_IDLE_SECONDS = 10.0
"""A topic is read until no record came for this long or every partition reached its end."""


@dataclass(slots=True)
class Trail:
    """One withdrawal's times (epoch ms) along the relay."""

    occurred: int
    published: int
    issued: dict[str, tuple[int, int]] = field(default_factory=dict)
    """family → (issued_at, the instruction record's timestamp)."""
    receipts: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """family → [(applied_at, the receipt record's timestamp)]."""
    completed: tuple[int, int] | None = None
    """(completed_at, the FullyPropagated record's timestamp)."""


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def _records(settings: KafkaSettings, topic: str) -> Iterator[tuple[dict[str, Any], int]]:
    """Every record of ``topic`` with its Kafka timestamp (ms), decoded."""
    listed = AdminClient(settings.admin_config()).list_topics(topic, timeout=30).topics
    meta = listed.get(topic)
    if meta is None or meta.error is not None:
        return
    decoder = EventDecoder(settings.registry_client())
    consumer = Consumer(
        settings.consumer_config(f"bench-hops-{time.time_ns()}", **{"enable.partition.eof": True})
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        left = set(meta.partitions)
        deadline = time.monotonic() + READ_IDLE_SECONDS
        while left and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        # Hops from part of a phase's records would read as its figures.
                        raise KafkaException(error)
                    left.discard(message.partition() or 0)
                    continue
                deadline = time.monotonic() + READ_IDLE_SECONDS
                value = message.value()
                if value:
                    yield decoder.decode_dict(value, epoch_ms=True)[1], message.timestamp()[1]
    finally:
        consumer.close()


def trails(settings: KafkaSettings) -> dict[str, Trail]:
    """Every withdrawal's trail, by event id, from the topics under ``settings``' prefix."""
    topics = settings.topics
    found: dict[str, Trail] = {}
    for record, stamp in _records(settings, topics.consent):
        found[record["event_id"]] = Trail(_ms(record["occurred_at"]), stamp)
    listed = AdminClient(settings.admin_config()).list_topics(timeout=30).topics
    for name in sorted(n for n in listed if n.startswith(topics.instruction_prefix())):
        for record, stamp in _records(settings, name):
            trail = found.get(record["event_id"])
            if trail is not None and record.get("receipt_requested"):
                trail.issued.setdefault(record["sink_family"], (_ms(record["issued_at"]), stamp))
    for record, stamp in _records(settings, topics.receipts):
        for receipt in record.get("receipts") or [record]:
            trail = found.get(receipt["event_id"])
            if trail is not None:
                trail.receipts.setdefault(receipt["sink_family"], []).append(
                    (_ms(receipt["applied_at"]), stamp)
                )
    for record, stamp in _records(settings, topics.propagated):
        trail = found.get(record["event_id"])
        if trail is not None and trail.completed is None:
            trail.completed = (_ms(record["completed_at"]), stamp)
    return found


def hops(found: dict[str, Trail], skip: int) -> dict[str, list[float]]:
    """Hop name → its durations (ms) over the completed withdrawals after the first ``skip``."""
    done = sorted(
        (t for t in found.values() if t.completed is not None and t.issued and t.receipts),
        key=lambda t: t.occurred,
    )[skip:]
    out: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    for t in done:
        assert t.completed is not None
        issued = min(i for i, _ in t.issued.values())
        add("1 event → consent record", t.published - t.occurred)
        add("2 → intake batch begins", issued - t.published)
        add("3 → last instruction record", max(s for _, s in t.issued.values()) - issued)
        last_receipt = 0
        for family, answers in sorted(t.receipts.items()):
            applied = max(a for a, _ in answers)
            receipted = max(s for _, s in answers)
            last_receipt = max(last_receipt, receipted)
            sent = t.issued.get(family, (issued, issued))[1]
            add(f"4 {family}: instruction → last applied", applied - sent)
            add(f"5 {family}: applied → last receipt record", receipted - applied)
        add("6 last receipt record → completed_at", t.completed[0] - last_receipt)
        add("7 completed_at → FullyPropagated record", t.completed[1] - t.completed[0])
        add("= event → completed_at (the bench's figure)", t.completed[0] - t.occurred)
    return out


def main() -> None:
    """Print each hop's p50 / p90 / p99 / mean for one kept phase."""
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.hops", description=__doc__)
    parser.add_argument("prefix", help="the phase's topic prefix, e.g. bench-<run>-p1-idle.")
    parser.add_argument("--skip", type=int, default=50, help="first withdrawals left out")
    args = parser.parse_args()
    env = {**os.environ, "CONSENT_RELAY_TOPIC_PREFIX": args.prefix}
    settings = KafkaSettings.from_env(env)
    measured = hops(trails(settings), args.skip)
    count = len(measured.get("= event → completed_at (the bench's figure)", []))
    print(f"{args.prefix}: {count} withdrawals; ms p50 / p90 / p99 / mean")
    for name in sorted(measured):
        p = percentiles(measured[name])
        print(f"  {name:48s} {p['p50']:>6} {p['p90']:>6} {p['p99']:>6} {p['mean']:>8}")


if __name__ == "__main__":
    main()
