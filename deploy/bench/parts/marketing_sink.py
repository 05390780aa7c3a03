"""Benchmark of the marketing sink under the runner against a real broker; prints figures.

Run with the broker and registry of ``make stack`` (or the shared dev ones)::

    KAFKA_BOOTSTRAP=127.0.0.1:29092 \\
    SCHEMA_REGISTRY_URL=http://127.0.0.1:28081/apis/ccompat/v7 \\
    .venv/bin/python -m deploy.bench.parts.marketing_sink [backlog]

1. Backlog: ``backlog`` instructions (default 20,000) already on the topic; time from
   the runner consuming to every offset committed (so every receipt acknowledged).
2. Trickle: 300 instructions sent one every 10 ms with event time = send time; the
   receipt's ``applied_at - occurred_at`` percentiles (the propagation latency).

No thresholds: the figures are for the report and for spotting regressions.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import MarketingStore
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.codec import EventDecoder, EventSerializer
from schemas.events import InstructionIssued, PropagationReceipt, Subject, utc_now
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Action, Purpose, Regime, SinkFamily, SubjectKind


def instruction(subject: str, action: Action) -> InstructionIssued:
    event_id = str(uuid.uuid4())
    now = utc_now()
    return InstructionIssued(
        instruction_id=str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/MARKETING/suppression_list")
        ),
        event_id=event_id,
        event_type="ConsentChanged",
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        sink_family=SinkFamily.MARKETING,
        destination="suppression_list",
        action=action,
        purposes=(Purpose.MARKETING_EMAIL,),
        right=None,
        regime=Regime.GDPR,
        occurred_at=now,
        issued_at=now,
    )


def committed(settings: KafkaSettings, group: str, topic: str) -> int:
    consumer = Consumer(settings.consumer_config(group))
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=30))
    finally:
        consumer.close()


def main(backlog: int) -> None:
    base = KafkaSettings.from_env()
    settings = KafkaSettings(
        bootstrap=base.bootstrap,
        registry_url=base.registry_url,
        topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
        partitions=3,
    )
    registry = settings.registry_client()
    register_all(registry)
    ensure_topics(settings)
    topic = settings.topics.instructions(SinkFamily.MARKETING)
    serialize = EventSerializer(registry, InstructionIssued)
    producer = Producer(settings.producer_config())

    def send(ins: InstructionIssued) -> None:
        producer.produce(topic, serialize(ins, topic), ins.subject.id.encode())
        producer.poll(0)

    for i in range(backlog):
        send(instruction(f"bench-{i % 2000}", Action.SUPPRESS if i % 3 else Action.ALLOW))
    producer.flush(60)

    workdir = Path(tempfile.mkdtemp(prefix="bench-marketing-"))
    store = MarketingStore(Database(f"sqlite://{workdir}/m.db"), AddressHasher(b"b" * 32))
    store.mark_bootstrapped()
    group = f"bench-{uuid.uuid4().hex[:8]}"
    runner = SinkRunner(
        MarketingSink(store),
        settings,
        group_id=group,
        metrics_port=0,
        options=RunnerSettings(poll_timeout_seconds=0.1),
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    runner.ready.wait(60)
    started = time.monotonic()
    while committed(settings, group, topic) < backlog:
        time.sleep(0.25)
    drained = time.monotonic() - started
    print(
        f"backlog: {backlog} instructions applied, receipted and committed in {drained:.1f}s "
        f"= {backlog / drained:,.0f}/s (includes partition assignment)"
    )

    reader = Consumer(settings.consumer_config(f"bench-reader-{uuid.uuid4().hex[:6]}"))
    reader.subscribe([settings.topics.receipts])
    decoder = EventDecoder(registry)
    trickle = {}
    for i in range(300):
        ins = instruction(f"trickle-{i % 50}", Action.SUPPRESS)
        trickle[ins.instruction_id] = ins
        send(ins)
        producer.flush(5)
        time.sleep(0.01)
    latencies: list[float] = []
    deadline = time.monotonic() + 120
    while len(latencies) < len(trickle) and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is None or message.error() is not None:
            continue
        receipt: PropagationReceipt = decoder.decode(message.value())
        if receipt.instruction_id in trickle:
            latencies.append((receipt.applied_at - receipt.occurred_at).total_seconds())
    reader.close()
    runner.stop()
    thread.join(60)
    registry.close()
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"trickle: {len(latencies)} instructions, event time -> applied: "
        f"p50 {cuts[49] * 1000:.0f} ms, p95 {cuts[94] * 1000:.0f} ms, "
        f"p99 {cuts[98] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
