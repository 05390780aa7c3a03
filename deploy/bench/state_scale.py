"""``python -m deploy.bench.state_scale --subjects N``: state at scale, timed.

Writes N subjects' :class:`~schemas.events.ConsentStateRecorded` to a fresh state topic
on the running broker (``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``), then times

* seeding a fresh marketing store and a fresh analytics store from it, through the
  same :func:`consumers.bootstrap.bootstrap` and store paths a sink runs at start;
* ``consent-relay import`` of a CSV of N rows (one consent choice per subject), run as
  the command a user runs, into a fresh consent topic.

Each line printed is ``<what>: <count> in <seconds> s (<per second>/s)``; ``--json``
adds one JSON object at the end. The scratch topics (prefix ``scale-<random>.``) are
deleted afterwards, also after a failure; the stores and the CSV live in a temporary
directory that is removed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import fastavro
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from consumers.analytics.store import AnalyticsStore
from consumers.bootstrap import bootstrap
from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.store import MarketingStore
from consumers.state_records import StateAvro
from schemas.codec import SHIPPED, EventDecoder, EventSerializer
from schemas.errors import ConsentRelayError
from schemas.events import ConsentStateRecorded, Subject
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SubjectKind

_S = TypeVar("_S")
_T0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
_MARKETING = ("MARKETING_EMAIL", "MARKETING_SMS", "PERSONALISED_MARKETING")
_ANALYTICS = ("RESEARCH_AND_STATISTICS", "COOKIES_STATISTICS")


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed step: wall seconds, and CPU seconds of the process doing it (every
    thread, librdkafka's included), which a machine shared with other work changes less;
    ``store_seconds``: of the wall time, how long the store's writes took."""

    what: str
    count: int
    seconds: float
    cpu_seconds: float
    store_seconds: float | None = None

    def line(self) -> str:
        rate = self.count / self.seconds if self.seconds > 0 else float("inf")
        cpu = self.cpu_seconds / max(1, self.count) * 1e6
        text = (
            f"{self.what}: {self.count:,} in {self.seconds:.1f} s ({rate:,.0f}/s),"
            f" {cpu:.0f} µs CPU each"
        )
        if self.store_seconds is not None:
            text += f", store writes {self.store_seconds:.1f} s"
        return text


def state_dict(index: int) -> dict[str, Any]:
    """Subject ``index``'s state as an Avro dict: a mix of grants and withdrawals over
    marketing and analytics purposes, every 20th restricted, every 100th erased; with the
    ``history`` the stream writes (each purpose's current decision and the one before it,
    the restriction, the erasure), so a seed reads records of the size it meets."""
    at = _T0 + index
    entries: list[dict[str, Any]] = [
        {
            "purpose": purpose,
            "regime": "GDPR",
            "recipient": None,
            "choice": "WITHDRAWN" if (index + n) % 3 == 0 else "GRANTED",
            "occurred_at": at - n,
            "event_id": f"00000000-0000-4000-8000-{index:08d}{n:04d}",
        }
        for n, purpose in enumerate(_MARKETING + _ANALYTICS)
    ]
    decisions: list[dict[str, Any]] = []
    for n, entry in enumerate(entries):
        earlier = "GRANTED" if entry["choice"] == "WITHDRAWN" else "WITHDRAWN"
        for choice, occurred_at, event_id in (
            (
                earlier,
                entry["occurred_at"] - 86_400_000,
                f"00000000-0000-4000-9000-{index:08d}{n:04d}",
            ),
            (entry["choice"], entry["occurred_at"], entry["event_id"]),
        ):
            decisions.append(
                {
                    "purpose": entry["purpose"],
                    "regime": "GDPR",
                    "recipient": None,
                    "choice": choice,
                    "occurred_at": occurred_at,
                    "event_id": event_id,
                    "expires_at": None,
                }
            )
    restricted, erased = index % 20 == 0, index % 100 == 99
    return {
        "subject": {"id": subject_id(index), "kind": "ACCOUNT"},
        "entries": entries,
        "restricted": restricted,
        "erased": erased,
        "updated_at": at,
        "history": {
            "decisions": decisions,
            "restrictions": (
                [{"restricted": True, "occurred_at": at, "event_id": entries[0]["event_id"]}]
                if restricted
                else []
            ),
            "erasure": {"occurred_at": at, "event_id": entries[0]["event_id"]} if erased else None,
        },
    }


def subject_id(index: int) -> str:
    """The bench's subject id for ``index``."""
    return f"scale-{index:07d}"


def write_states(
    settings: KafkaSettings,
    count: int,
    make: Callable[[int], dict[str, Any]] = state_dict,
) -> Timing:
    """Publish ``count`` states (``make(index)``) keyed by subject, framed by the relay's
    own serializer (its 5-byte header) around fastavro bodies, in large producer batches."""
    topic = settings.topics.state
    sample = ConsentStateRecorded(
        subject=Subject(id="x", kind=SubjectKind.ACCOUNT),
        entries=(),
        updated_at=datetime.now(UTC),
    )
    with settings.registry_client() as registry:
        header = EventSerializer(registry, ConsentStateRecorded)(sample, topic)[:5]
    schema = SHIPPED[ConsentStateRecorded].parsed
    producer = Producer(
        settings.producer_config(
            **{"linger.ms": 100, "batch.size": 1_000_000, "queue.buffering.max.kbytes": 262_144}
        )
    )
    began, cpu = time.monotonic(), time.process_time()
    writer = _BodyWriter(header, schema)
    for index in range(count):
        record = make(index)
        value = writer(record)
        key = str(record["subject"]["id"]).encode()
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        if index % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise ConsentRelayError("states not all acknowledged within 120 s")
    return Timing("write states", count, time.monotonic() - began, time.process_time() - cpu)


class _BodyWriter:
    def __init__(self, header: bytes, schema: Any) -> None:
        self._header = header
        self._schema = schema

    def __call__(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self._schema, record)
        return buf.getvalue()


def seed_marketing(settings: KafkaSettings, directory: Path) -> Timing:
    """Seed a fresh marketing store (SQLite) from the state topic."""
    store = MarketingStore(
        Database(f"sqlite:///{directory / 'marketing.db'}"), AddressHasher(b"k" * 32)
    )
    try:
        return _seed(
            "seed marketing", settings, store.mark_bootstrapped, on_avro=store.seed_avro_batch
        )
    finally:
        store.close()


def seed_analytics(settings: KafkaSettings, directory: Path) -> Timing:
    """Seed a fresh analytics store (SQLite) from the state topic."""
    store = AnalyticsStore(directory / "analytics.db")
    store.ensure_schema()
    try:
        return _seed("seed analytics", settings, store.mark_seeded, on_avro=store.seed_avro_many)
    finally:
        store.close()


def _seed(
    what: str,
    settings: KafkaSettings,
    finished: Callable[[], None],
    *,
    on_states: Callable[[Sequence[ConsentStateRecorded]], None] | None = None,
    on_avro: Callable[[Sequence[StateAvro]], None] | None = None,
) -> Timing:
    """Seed through whichever batch path the store has (as the runner picks it)."""

    def refuse(_message: Any, exc: Exception) -> None:
        raise ConsentRelayError(f"the bench's own state did not decode: {exc}") from exc

    store_seconds = 0.0

    def timed(write: Callable[[Sequence[_S]], None]) -> Callable[[Sequence[_S]], None]:
        def call(states: Sequence[_S]) -> None:
            nonlocal store_seconds
            started = time.monotonic()
            write(states)
            store_seconds += time.monotonic() - started

        return call

    began, cpu = time.monotonic(), time.process_time()
    with settings.registry_client() as registry:
        count = bootstrap(
            settings,
            group_id=f"state-scale-{uuid.uuid4().hex[:8]}",
            decoder=EventDecoder(registry),
            on_states=timed(on_states) if on_states is not None else None,
            on_avro=timed(on_avro) if on_avro is not None else None,
            on_invalid=refuse,
            stop=threading.Event(),
            timeout=3600,
        )
    finished()
    return Timing(what, count, time.monotonic() - began, time.process_time() - cpu, store_seconds)


def csv_rows(count: int) -> Iterator[str]:
    """The import file: a header and one ConsentChanged row per subject."""
    yield "type,subject_id,occurred_at,choice,purposes,regime,evidence_ref\n"
    for index in range(count):
        choice = "WITHDRAWN" if index % 3 == 0 else "GRANTED"
        at = datetime.fromtimestamp((_T0 + index) / 1000, UTC).isoformat().replace("+00:00", "Z")
        yield (
            f"ConsentChanged,{subject_id(index)},{at},{choice},"
            f"MARKETING_EMAIL|MARKETING_SMS,GDPR,scale:{index}\n"
        )


def run_import(settings: KafkaSettings, directory: Path, count: int) -> Timing:
    """``consent-relay import`` of ``count`` rows, as a user runs it."""
    path = directory / "scale.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(csv_rows(count))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.bootstrap,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": settings.topic_prefix,
    }
    began, cpu = time.monotonic(), _children_cpu()
    done = subprocess.run(
        [sys.executable, "-m", "producers", "import", str(path), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds, cpu = time.monotonic() - began, _children_cpu() - cpu
    if done.returncode != 0:
        raise ConsentRelayError(f"import exited {done.returncode}: {done.stderr[-2000:]}")
    published = int(json.loads(done.stdout.strip().splitlines()[-1])["published"])
    if published != count:
        raise ConsentRelayError(f"import published {published} of {count} rows")
    return Timing("consent-relay import", count, seconds, cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def delete_topics(settings: KafkaSettings) -> None:
    """Delete every topic under the bench's scratch prefix."""
    admin = AdminClient(settings.admin_config())
    names = [n for n in admin.list_topics(timeout=30).topics if n.startswith(settings.topic_prefix)]
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.state_scale")
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--skip", choices=["marketing", "analytics", "import"], action="append")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    skip = set(args.skip or ())
    base = KafkaSettings.from_env()
    settings = KafkaSettings(
        bootstrap=base.bootstrap,
        registry_url=base.registry_url,
        topic_prefix=f"scale-{uuid.uuid4().hex[:8]}.",
        partitions=base.partitions,
    )
    with settings.registry_client() as registry:
        register_all(registry)
    topics = settings.topics
    specs = tuple(s for s in topics.all() if s.name in {topics.state, topics.consent})
    timings: list[Timing] = []
    try:
        ensure_topics(settings, specs)
        timings.append(write_states(settings, args.subjects))
        print(timings[-1].line(), flush=True)
        with tempfile.TemporaryDirectory(prefix="state-scale-") as tmp:
            steps: dict[str, Callable[[], Timing]] = {
                "marketing": lambda: seed_marketing(settings, Path(tmp)),
                "analytics": lambda: seed_analytics(settings, Path(tmp)),
                "import": lambda: run_import(settings, Path(tmp), args.subjects),
            }
            for name, step in steps.items():
                if name in skip:
                    continue
                timings.append(step())
                print(timings[-1].line(), flush=True)
    finally:
        delete_topics(settings)
    if args.json:
        print(json.dumps({t.what: dataclasses.asdict(t) for t in timings}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
