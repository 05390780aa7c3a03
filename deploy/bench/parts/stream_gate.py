"""How fast the consent gate goes and how much delay it adds; prints figures, asserts nothing.

``python -m deploy.bench.parts.stream_gate`` (needs ``KAFKA_BOOTSTRAP`` and ``SCHEMA_REGISTRY_URL``)
creates fresh topics, publishes some consent events (so subjects have state and every
consent partition has intake progress to wait for) and a backlog of data events, then
starts ``python -m streams worker`` and, if the tree has one, the gate process
``python -m streams.gate`` (older trees gate in a thread of the worker). It reports:

- **backlog**: data events/s over the middle 80% of the backlog, from the data-event
  counter on ``/metrics`` sampled every 0.2 s, and the gate's CPU per event from
  ``/proc`` (the gate process's, else the worker's: its consent work is done by then);
- **delay at a fixed rate** (``--rate``, default 2,000/s, for ``--seconds``): each data
  event is stamped with the wall-clock time it is handed to the producer, and its
  delay is the allowed copy's Kafka timestamp (set when the gate produced it) minus
  that stamp; p50, p99 and max over the allowed ones.

Then it deletes the topics. ``--source DIR`` runs the relay from another tree (e.g. an
exported older revision) to compare the same measurement back to back.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from deploy.bench.parts.kit import (
    cpu_seconds,
    delete_run,
    die_with_parent,
    events_counted,
    free_port,
)
from schemas.codec import EventDecoder, EventSerializer
from schemas.events import ConsentChanged, DataEventCaptured, Subject, new_event_id, utc_now
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Choice, PolicyVersion, Purpose, Regime, Source, SubjectKind

DATA_TYPE = DataEventCaptured.__name__
CONSENTED = (Purpose.MARKETING_EMAIL, Purpose.MARKETING_SMS, Purpose.TARGETED_ADVERTISING)
DATA_PURPOSES = (*CONSENTED, Purpose.ACCOUNT_MANAGEMENT, Purpose.RESEARCH_AND_STATISTICS)
SAMPLE_SECONDS = 0.2
APP_ID = "bench-streams"


def _subject(n: int) -> Subject:
    return Subject(id=f"bench-{n:08d}", kind=SubjectKind.ACCOUNT)


def consent_events(count: int, subjects: int, rng: random.Random) -> Iterator[ConsentChanged]:
    """Grants and withdrawals of consent-based purposes, an hour old."""
    at = utc_now() - timedelta(hours=1)
    for _ in range(count):
        yield ConsentChanged(
            event_id=new_event_id(),
            subject=_subject(rng.randrange(subjects)),
            occurred_at=at,
            recorded_at=at,
            source=Source.API,
            regime=Regime.GDPR,
            policy_version=PolicyVersion.V2019_07_15,
            choice=Choice.WITHDRAWN if rng.random() < 0.4 else Choice.GRANTED,
            purposes=(rng.choice(CONSENTED),),
        )


def data_event(subjects: int, rng: random.Random, at: datetime) -> DataEventCaptured:
    """A data event for one of the subjects, bound for one of a mix of purposes."""
    return DataEventCaptured(
        event_id=new_event_id(),
        subject=_subject(rng.randrange(subjects)),
        occurred_at=at,
        purpose=rng.choice(DATA_PURPOSES),
        payload=b'{"page": "/product/%d", "action": "view"}' % rng.randrange(10**6),
    )


def publish(kafka: KafkaSettings, topic: str, events: Iterator[Any]) -> int:
    """Publish records keyed by subject, as the producers do; how many."""
    producer = Producer(kafka.producer_config(**{"linger.ms": 50}))
    registry = kafka.registry_client()
    serializers: dict[type[Any], EventSerializer] = {}
    sent = 0
    for event in events:
        serializer = serializers.get(type(event))
        if serializer is None:
            serializer = serializers[type(event)] = EventSerializer(registry, type(event))
        value = serializer(event, topic)
        while True:
            try:
                producer.produce(topic, value, key=event.subject.id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise SystemExit("not every event was delivered")
    registry.close()
    return sent


@dataclass
class Relay:
    """The processes under test and where their counters are."""

    worker: subprocess.Popen[bytes]
    ports: list[int]
    gate: subprocess.Popen[bytes] | None

    @property
    def gate_pid(self) -> int:
        """The process that gates: its own, or the worker (older trees)."""
        return (self.gate or self.worker).pid

    def counted(self) -> float:
        """Data events counted so far on every /metrics."""
        return sum(events_counted(port, DATA_TYPE) for port in self.ports)

    def check(self) -> None:
        """Stop the run if a process died."""
        for name, child in (("worker", self.worker), ("gate", self.gate)):
            if child is not None and child.poll() is not None:
                raise SystemExit(f"the {name} exited with {child.returncode}")


def run(args: argparse.Namespace) -> None:
    """Publish, start the relay, time it, clean up."""
    base = KafkaSettings.from_env()
    prefix = f"bench-gate-{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(
        bootstrap=base.bootstrap,
        registry_url=base.registry_url,
        topic_prefix=prefix,
        partitions=args.partitions,
    )
    ensure_topics(kafka)
    register_all(kafka.registry_client())
    rng = random.Random(args.seed)
    topics = kafka.topics
    publish(kafka, topics.consent, consent_events(args.consent, args.subjects, rng))
    now = utc_now()
    backlog = (data_event(args.subjects, rng, now) for _ in range(args.events))
    count = publish(kafka, topics.data_events, backlog)
    sys.stdout.write(f"published {args.consent} consent and {count} data events\n")
    try:
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            relay = _start(kafka, args, Path(tmp), stack)
            samples = _sample(relay, count)
            _report_backlog(samples, count, "gate process" if relay.gate else "worker")
            delays = _paced(kafka, relay, args, rng, count)
            _report_delay(delays, args.rate, args.seconds)
    finally:
        delete_run(kafka, prefix, groups=True)


def _start(kafka: KafkaSettings, args: argparse.Namespace, tmp: Path, stack: ExitStack) -> Relay:
    source = Path(args.source).resolve()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STREAMS_", "GATE_"))},
        "CONSENT_RELAY_TOPIC_PREFIX": kafka.topic_prefix,
        "CONSENT_RELAY_PARTITIONS": str(kafka.partitions),
        "PYTHONPATH": str(source),
    }
    worker_port = free_port()
    worker = _spawn(
        ["streams", "worker"],
        {
            **base,
            "STREAMS_APP_ID": APP_ID,
            "STREAMS_WEB_PORT": str(worker_port),
            "STREAMS_WEB_HOST": "127.0.0.1",
            "STREAMS_WEB_BIND": "127.0.0.1",
            "STREAMS_DATA_DIR": str(tmp / "worker"),
            "STREAMS_METRICS_INTERVAL_SECONDS": "60",
        },
        tmp / "worker.log",
        source,
        stack,
    )
    ports, gate = [worker_port], None
    if (source / "streams" / "gate" / "__main__.py").exists():
        gate_port = free_port()
        ports.append(gate_port)
        gate = _spawn(
            ["streams.gate"],
            {**base, "GATE_STREAM_APP_ID": APP_ID, "GATE_HTTP_PORT": str(gate_port)},
            tmp / "gate.log",
            source,
            stack,
        )
    return Relay(worker, ports, gate)


def _spawn(
    argv: list[str], env: dict[str, str], log_path: Path, cwd: Path, stack: ExitStack
) -> subprocess.Popen[bytes]:
    log = stack.enter_context(log_path.open("wb"))
    child = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=log,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call
    )

    def stop() -> None:
        child.terminate()
        child.wait(60)

    stack.callback(stop)
    return child


def _sample(relay: Relay, count: int) -> list[tuple[float, ...]]:
    """(time, gate CPU seconds, data events counted) until all are counted."""
    samples: list[tuple[float, ...]] = []
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        relay.check()
        done = relay.counted()
        samples.append((time.monotonic(), cpu_seconds(relay.gate_pid), done))
        if done >= count:
            return samples
        time.sleep(SAMPLE_SECONDS)
    raise SystemExit("the backlog was not worked through within 30 minutes")


def _report_backlog(samples: list[tuple[float, ...]], count: int, who: str) -> None:
    low = next(s for s in samples if s[2] >= 0.1 * count)
    high = next(s for s in samples if s[2] >= 0.9 * count)
    events, wall, cpu = high[2] - low[2], high[0] - low[0], high[1] - low[1]
    if wall <= 0 or events <= 0:
        raise SystemExit("too few samples: use a bigger backlog")
    sys.stdout.write(
        f"gate backlog: {events:.0f} data events (middle of {count}) in {wall:.2f} s = "
        f"{events / wall:,.0f} events/s; {who} CPU {cpu:.2f} s = "
        f"{cpu / events * 1e6:,.0f} µs/event\n"
    )


def _paced(
    kafka: KafkaSettings,
    relay: Relay,
    args: argparse.Namespace,
    rng: random.Random,
    before: int,
) -> list[float]:
    """Data events at ``args.rate`` for ``args.seconds``; delays (ms) of the allowed ones."""
    topic = kafka.topics.data_events
    producer = Producer(kafka.producer_config())
    registry = kafka.registry_client()
    serialize = EventSerializer(registry, DataEventCaptured)
    total = int(args.rate * args.seconds)
    stamped: dict[str, int] = {}
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * args.rate) + 1)
        if due <= sent:
            time.sleep(0.001)
            continue
        now_ms = time.time_ns() // 1_000_000
        at = datetime.fromtimestamp(now_ms / 1000, UTC)
        while sent < due:
            event = data_event(args.subjects, rng, at)
            producer.produce(topic, serialize(event, topic), key=event.subject.id.encode())
            stamped[event.event_id] = now_ms
            sent += 1
        producer.poll(0)
    if producer.flush(60):
        raise SystemExit("not every paced event was delivered")
    deadline = time.monotonic() + 300
    while relay.counted() < before + total:
        relay.check()
        if time.monotonic() > deadline:
            raise SystemExit("the paced events were not all decided within 5 minutes")
        time.sleep(SAMPLE_SECONDS)
    delays = [
        float(written - stamped[event_id])
        for event_id, written in _allowed(kafka, registry)
        if event_id in stamped
    ]
    registry.close()
    return delays


def _allowed(kafka: KafkaSettings, registry: Any) -> Iterator[tuple[str, int]]:
    """(event id, Kafka timestamp) of every message on the allowed topic now."""
    topic = kafka.topics.data_allowed
    decoder = EventDecoder(registry)
    consumer = Consumer(kafka.consumer_config(f"{kafka.topic_prefix}bench.read"))
    try:
        ends = {}
        for p in range(kafka.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > 0:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            for message in consumer.consume(5000, timeout=1.0):
                if message.error() is not None:
                    continue
                _type, record = decoder.decode_dict(message.value())
                yield record["event_id"], message.timestamp()[1]
                partition, offset = message.partition() or 0, message.offset() or 0
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
    finally:
        consumer.close()


def _report_delay(delays: list[float], rate: float, seconds: float) -> None:
    if not delays:
        raise SystemExit("no paced data event was allowed")
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    sys.stdout.write(
        f"gate delay at {rate:,.0f}/s for {seconds:g} s ({len(ordered)} allowed): "
        f"p50 {statistics.median(ordered):.0f} ms, p99 {p99:.0f} ms, max {ordered[-1]:.0f} ms\n"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run one measurement."""
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.parts.stream_gate")
    parser.add_argument("--events", type=int, default=100_000, help="data events in the backlog")
    parser.add_argument("--consent", type=int, default=2_000, help="consent events first")
    parser.add_argument("--subjects", type=int, default=5_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=float, default=2000, help="data events/s for the delay")
    parser.add_argument("--seconds", type=float, default=10, help="how long at that rate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="tree the relay runs from")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
