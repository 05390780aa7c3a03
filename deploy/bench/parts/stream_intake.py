"""How fast intake goes: prints events per second and CPU per event; asserts nothing.

``python -m deploy.bench.parts.stream_intake`` (needs ``KAFKA_BOOTSTRAP`` and
``SCHEMA_REGISTRY_URL``)
publishes a backlog of consent events on fresh topics, starts ``python -m streams
worker`` on them and times it from its first processed event to the last, reading the
worker's own counters from ``/metrics`` and its CPU time from ``/proc``; then it
deletes the topics. ``--offline`` instead drives the intake processor in this process
with the stream's own encoder (made-up schema ids instead of the registry's), the
worker's garbage-collector settings and a producer that only counts: the cost of our
Python per event, without Faust or Kafka.

Subjects are drawn uniformly, or with ``--zipf S`` from a Zipf-like distribution (weight
of the n-th subject ∝ 1/n^S) as ``deploy.bench`` draws them, so that a few subjects
change their minds often and their states carry long histories; ``--warmup N`` events
are processed first, untimed, so that those histories are as long as in a running relay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from deploy.bench.parts.kit import (
    cpu_seconds,
    delete_run,
    die_with_parent,
    events_counted,
    free_port,
    peak_rss_mib,
)
from schemas.codec import WIRE_MAGIC, EventDecoder, EventSerializer, encode_single_object
from schemas.events import (
    ConsentChanged,
    ConsentEvent,
    CookiePreferencesSet,
    RightsRequested,
    Subject,
    utc_now,
)
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import (
    Choice,
    CookieCategory,
    PolicyVersion,
    Purpose,
    Regime,
    Right,
    Source,
    SubjectKind,
)
from schemas.topics import Topics
from streams.engine import gc_tuning
from streams.engine.context import StreamContext
from streams.engine.wire import RegistryEncoder
from streams.intake.agent import Intake
from streams.intake.routing import load_policy
from streams.metrics import StreamMetrics

MARKETING = (Purpose.MARKETING_EMAIL, Purpose.MARKETING_SMS, Purpose.MARKETING_TELEPHONE)


def consent_events(
    count: int, subjects: int, seed: int = 7, zipf: float = 0.0
) -> Iterator[ConsentEvent]:
    """A realistic mix: mostly single-purpose choices, some cookies and rights; subjects
    uniform, or skewed with exponent ``zipf``."""
    rng = random.Random(seed)
    now = utc_now()
    weights = list(accumulate(1.0 / (n + 1) ** zipf for n in range(subjects))) if zipf else None
    for n in range(count):
        number = (
            rng.randrange(subjects)
            if weights is None
            else rng.choices(range(subjects), cum_weights=weights)[0]
        )
        subject = Subject(id=f"bench-{number:08d}", kind=SubjectKind.ACCOUNT)
        common: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "subject": subject,
            "occurred_at": now,
            "recorded_at": now,
            "source": Source.API,
            "regime": Regime.GDPR,
            "policy_version": PolicyVersion.V2019_07_15,
        }
        kind = n % 10
        if kind < 8:
            yield ConsentChanged(
                **common,
                choice=Choice.WITHDRAWN if rng.random() < 0.6 else Choice.GRANTED,
                purposes=(rng.choice(MARKETING),),
            )
        elif kind == 8:
            yield CookiePreferencesSet(
                **common,
                device_id="d",
                granted=(CookieCategory.STATISTICS,),
                refused=(CookieCategory.MARKETING,),
            )
        else:
            yield RightsRequested(**common, right=Right.OBJECT_TO_DIRECT_MARKETING)


# ------------------------------------------------------------------ offline


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _CountingSender:
    def __init__(self) -> None:
        self.count = 0
        self._done: asyncio.Future[None] | None = None

    def _delivered(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            self._done.set_result(None)
        return self._done

    async def send(  # noqa: PLR0917 - Faust's producer signature
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]:
        self.count += 1
        return self._delivered()


class _OfflineEncoder(RegistryEncoder):
    """The stream's encoder, with a made-up schema id instead of asking a registry."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type] # never asked: _header is ours

    def _header(self, event_type: type[Any]) -> bytes:
        return struct.pack(">BI", WIRE_MAGIC, 1)


def offline(count: int, subjects: int, batch: int, *, zipf: float, warmup: int) -> None:
    """Intake's own cost per event, in this process."""
    topics = Topics("bench.", 6)
    messages = [
        _Message(topics.consent, 0, n, e.subject.id.encode(), encode_single_object(e))
        for n, e in enumerate(consent_events(warmup + count, subjects, zipf=zipf))
    ]
    sender = _CountingSender()
    ctx = StreamContext(
        policy=load_policy(),
        topics=topics,
        decoder=EventDecoder(None),
        encode=_OfflineEncoder(),
        sender=sender,
        metrics=StreamMetrics.create(CollectorRegistry()),
        state={},
        pending={},
        done={},
        copartitioned=frozenset(s.name for s in topics.all()),
    )
    intake = Intake(ctx)
    # As the worker does (streams.app): with CPython's default young generation, a
    # batch's garbage is promoted and full collections of every tracked object follow.
    gc_tuning.tune()

    async def go() -> tuple[float, float]:
        for start in range(0, warmup, batch):
            await intake.handle(messages[start : min(start + batch, warmup)])
        sender.count = 0
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(warmup, len(messages), batch):
            await intake.handle(messages[start : start + batch])
        return time.perf_counter() - started, time.process_time() - cpu

    wall, cpu = asyncio.run(go())
    _report("offline intake", count, wall, cpu, sender.count)


# ------------------------------------------------------------------- broker


def on_broker(
    count: int, subjects: int, partitions: int, extra_env: dict[str, str], zipf: float = 0.0
) -> None:
    """The worker process end to end on the real broker."""
    base = KafkaSettings.from_env()
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(
        bootstrap=base.bootstrap,
        registry_url=base.registry_url,
        topic_prefix=prefix,
        partitions=partitions,
    )
    ensure_topics(kafka)
    register_all(kafka.registry_client())
    sys.stdout.write(f"publishing {count} events on {kafka.topics.consent} ...\n")
    _publish(kafka, count, subjects, zipf)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")},
        "CONSENT_RELAY_TOPIC_PREFIX": prefix,
        "CONSENT_RELAY_PARTITIONS": str(partitions),
        "STREAMS_WEB_PORT": str(port),
        "STREAMS_WEB_HOST": "127.0.0.1",
        "STREAMS_WEB_BIND": "127.0.0.1",
        "STREAMS_METRICS_INTERVAL_SECONDS": "60",
        **extra_env,
    }
    with tempfile.TemporaryDirectory() as tmp:
        env["STREAMS_DATA_DIR"] = tmp
        log = open(os.path.join(tmp, "worker.log"), "wb")  # noqa: SIM115
        profile = os.environ.get("BENCH_PROFILE")  # a path: cProfile the worker into it
        command = [sys.executable, "-m", "streams", "worker"]
        if profile:
            command[1:1] = ["-m", "cProfile", "-o", profile]
        worker = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call
        )
        try:
            _time_worker(worker, port, count)
        finally:
            worker.terminate()
            worker.wait(60)
            log.close()
    delete_run(kafka, prefix)


def _publish(kafka: KafkaSettings, count: int, subjects: int, zipf: float) -> None:
    producer = Producer(kafka.producer_config(**{"linger.ms": 50}))
    registry = kafka.registry_client()
    serializers: dict[type[Any], EventSerializer] = {
        t: EventSerializer(registry, t)
        for t in (ConsentChanged, CookiePreferencesSet, RightsRequested)
    }
    topic = kafka.topics.consent
    for n, event in enumerate(consent_events(count, subjects, zipf=zipf)):
        value = serializers[type(event)](event, topic)
        while True:
            try:
                producer.produce(topic, value, key=event.subject.id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


def _time_worker(worker: subprocess.Popen[bytes], port: int, count: int) -> None:
    first: tuple[float, float, float] | None = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"worker exited with {worker.returncode}")
        done = events_counted(port)
        if done and first is None:
            first = (time.monotonic(), cpu_seconds(worker.pid), done)
        if done >= count and first is not None:
            wall = time.monotonic() - first[0]
            cpu = cpu_seconds(worker.pid) - first[1]
            _report("worker on the broker", int(count - first[2]), wall, cpu, None)
            sys.stdout.write(f"worker peak RSS {peak_rss_mib(worker.pid):,.0f} MiB\n")
            return
        time.sleep(0.2)
    raise SystemExit("worker did not finish within 900 s")


def _report(what: str, events: int, wall: float, cpu: float, outputs: int | None) -> None:
    line = (
        f"{what}: {events} events in {wall:.2f} s = {events / wall:,.0f} events/s; "
        f"CPU {cpu:.2f} s = {cpu / events * 1e6:,.0f} µs/event"
    )
    if outputs is not None:
        line += f"; {outputs} messages produced"
    sys.stdout.write(line + "\n")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run one measurement."""
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.parts.stream_intake")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--zipf", type=float, default=0.0, help="subject skew (0: uniform)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed events first (offline)")
    args = parser.parse_args(argv)
    if args.offline:
        offline(args.events, args.subjects, args.batch, zipf=args.zipf, warmup=args.warmup)
    else:
        on_broker(
            args.events,
            args.subjects,
            args.partitions,
            {"STREAMS_BATCH_SIZE": str(args.batch)},
            args.zipf,
        )


if __name__ == "__main__":
    main()
