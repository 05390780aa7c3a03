"""How fast the consent gate goes on a backlog: prints data events/s and CPU per event.

``python -m streams.bench_gate`` (needs ``KAFKA_BOOTSTRAP`` and ``SCHEMA_REGISTRY_URL``)
creates fresh topics, publishes some consent events (so subjects have state and every
consent partition has intake progress to wait for) and a backlog of data events, then
starts ``python -m streams worker`` on them. It samples the worker's data-event counter
(``/metrics``) and CPU time (``/proc``) and reports the middle 80% of the backlog, after
intake's consent work is long done; then it deletes the topics. ``--source DIR`` runs the
worker from another tree (e.g. an exported older revision) to compare. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from schemas.admin import ensure_topics
from schemas.codec import EventSerializer
from schemas.events import ConsentChanged, DataEventCaptured, Subject, new_event_id, utc_now
from schemas.kafka import KafkaSettings
from schemas.registry import register_all
from schemas.taxonomy import Choice, PolicyVersion, Purpose, Regime, Source, SubjectKind
from streams.benchkit import cpu_seconds, delete_run, die_with_parent, events_counted, free_port

DATA_TYPE = DataEventCaptured.__name__
CONSENTED = (Purpose.MARKETING_EMAIL, Purpose.MARKETING_SMS, Purpose.TARGETED_ADVERTISING)
DATA_PURPOSES = (*CONSENTED, Purpose.ACCOUNT_MANAGEMENT, Purpose.RESEARCH_AND_STATISTICS)
SAMPLE_SECONDS = 0.2


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


def data_events(count: int, subjects: int, rng: random.Random) -> Iterator[DataEventCaptured]:
    """Data events now, for the same subjects, bound for a mix of purposes."""
    now = utc_now()
    for _ in range(count):
        yield DataEventCaptured(
            event_id=new_event_id(),
            subject=_subject(rng.randrange(subjects)),
            occurred_at=now,
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


def run(args: argparse.Namespace) -> None:
    """Publish, start the worker, time it, clean up."""
    base = KafkaSettings.from_env()
    prefix = f"bench-gate-{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(base.bootstrap, base.registry_url, prefix, args.partitions)
    ensure_topics(kafka)
    register_all(kafka.registry_client())
    rng = random.Random(args.seed)
    topics = kafka.topics
    publish(kafka, topics.consent, consent_events(args.consent, args.subjects, rng))
    count = publish(kafka, topics.data_events, data_events(args.events, args.subjects, rng))
    sys.stdout.write(f"published {args.consent} consent and {count} data events\n")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _run_worker(kafka, args, Path(tmp), count)
    finally:
        delete_run(kafka, prefix, groups=True)


def _run_worker(kafka: KafkaSettings, args: argparse.Namespace, tmp: Path, count: int) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")},
        "CONSENT_RELAY_TOPIC_PREFIX": kafka.topic_prefix,
        "CONSENT_RELAY_PARTITIONS": str(kafka.partitions),
        "STREAMS_WEB_PORT": str(port),
        "STREAMS_WEB_HOST": "127.0.0.1",
        "STREAMS_WEB_BIND": "127.0.0.1",
        "STREAMS_DATA_DIR": str(tmp),
        "STREAMS_METRICS_INTERVAL_SECONDS": "60",
        "PYTHONPATH": str(args.source),
    }
    with (tmp / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            cwd=args.source,
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call
        )
        try:
            samples = _sample(worker, port, count)
        finally:
            worker.terminate()
            worker.wait(60)
    _report(samples, count)


def _sample(worker: subprocess.Popen[bytes], port: int, count: int) -> list[tuple[float, ...]]:
    """(time, worker CPU seconds, data events counted) until all are counted."""
    samples: list[tuple[float, ...]] = []
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"worker exited with {worker.returncode}")
        done = events_counted(port, DATA_TYPE)
        samples.append((time.monotonic(), cpu_seconds(worker.pid), done))
        if done >= count:
            return samples
        time.sleep(SAMPLE_SECONDS)
    raise SystemExit("the worker did not finish within 30 minutes")


def _report(samples: list[tuple[float, ...]], count: int) -> None:
    low = next(s for s in samples if s[2] >= 0.1 * count)
    high = next(s for s in samples if s[2] >= 0.9 * count)
    events, wall, cpu = high[2] - low[2], high[0] - low[0], high[1] - low[1]
    if wall <= 0 or events <= 0:
        raise SystemExit("too few samples: use a bigger backlog")
    sys.stdout.write(
        f"gate: {events:.0f} data events (middle of {count}) in {wall:.2f} s = "
        f"{events / wall:,.0f} events/s; worker CPU {cpu:.2f} s = "
        f"{cpu / events * 1e6:,.0f} µs/event\n"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run one measurement."""
    parser = argparse.ArgumentParser(prog="python -m streams.bench_gate")
    parser.add_argument("--events", type=int, default=100_000, help="data events in the backlog")
    parser.add_argument("--consent", type=int, default=2_000, help="consent events first")
    parser.add_argument("--subjects", type=int, default=5_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="tree the worker runs from")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
