"""Fixtures for the stream worker against the real broker and registry.

``stream_kit`` gives a test: a publisher of consent events, receipts, data events and raw
bytes (the producers' serializer, keyed by subject); readers that decode a topic from
the beginning; and ``start_worker()``, which runs ``python -m streams worker`` as a
subprocess on this test's topics with its own app id and web port, and stops it (or
lets the test SIGKILL it) at the end.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas.codec import EventDecoder, EventSerializer
from schemas.events import (
    ConsentChanged,
    CookiePreferencesSet,
    DataEventCaptured,
    InstructionIssued,
    PropagationReceipt,
    RightsRequested,
    Subject,
    instructions_in,
    new_event_id,
    receipts_in,
    utc_now,
)
from schemas.runtime.kafka import KafkaSettings
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
from tests.support.access import API_TOKEN

REPO = Path(__file__).resolve().parents[3]


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 90.0,
    interval: float = 0.2,
    describe: Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` until it is truthy; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f": {describe()}" if describe else ""
            pytest.fail(f"condition not met within {timeout}s{detail}")
        time.sleep(interval)


_PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no worker outlives it.

    Only a libc call, resolved in the parent: safe between fork and exec."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str) -> tuple[int, Any]:
    """GET ``url`` with the workers' API token; (status, parsed JSON body)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def http_text(url: str) -> str:
    """GET ``url``'s body as text."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


@dataclass
class TopicReader:
    """Reads a topic (and ``more_topics``) from the beginning; values decoded with the
    registry (or raw)."""

    settings: KafkaSettings
    topic: str
    decode: bool = True
    more_topics: tuple[str, ...] = ()
    records: list[Any] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    coordinates: list[tuple[int, int]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    """The topic of each record."""
    headers: list[list[tuple[str, bytes]]] = field(default_factory=list)
    """The headers of each record's message."""

    def __post_init__(self) -> None:
        self._consumer = Consumer(self.settings.consumer_config(f"reader-{uuid.uuid4().hex}"))
        assigned = []
        for topic in (self.topic, *self.more_topics):
            meta = self._consumer.list_topics(topic, timeout=30).topics[topic]
            assigned += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self._consumer.assign(assigned)
        self._registry = self.settings.registry_client()
        self._decoder = EventDecoder(self._registry)

    def poll(self, seconds: float = 0.5) -> list[Any]:
        """Read what arrived within ``seconds``; every record read so far."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self._consumer.consume(500, timeout=0.2):
                if message.error() is not None:
                    continue
                value = message.value()
                record = self._decoder.decode(value) if self.decode else value
                # A sink's batch of receipts reads as its receipts, one by one, and the
                # partners' instructions of one event as each partner's InstructionIssued.
                flat = (receipts_in(record) or instructions_in(record)) if self.decode else ()
                for each in flat or (record,):
                    self.records.append(each)
                    self.keys.append(message.key())
                    self.coordinates.append((message.partition() or 0, message.offset() or 0))
                    self.topics.append(message.topic() or "")
                    self.headers.append(message.headers() or [])
        return self.records

    def close(self) -> None:
        self._consumer.close()
        self._registry.close()


@dataclass
class Worker:
    """One ``python -m streams worker`` subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    killed: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it does not stop within ``timeout``; the exit code."""
        self.killed = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to commit or flush anything."""
        self.killed = True
        self.process.kill()
        self.process.wait(10)

    def dump_tasks(self) -> str:
        """Ask the worker to log its tasks' stacks (SIGUSR2); the log's tail, then every
        thread's stack as py-spy reads it (Faust's consumer thread among them)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR2)
            time.sleep(1)
        return f"{self.log(400)}\n{self.threads()}"

    def threads(self) -> str:
        """Every thread's Python stack, read from outside the process."""
        if self.process.poll() is not None:
            return "(the worker has exited)"
        try:
            found = subprocess.run(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "dump",
                    "--pid",
                    str(self.process.pid),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"py-spy dump failed: {exc}"
        return found.stdout + found.stderr

    def log(self, tail: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])


@dataclass
class StreamKit:
    """What a stream test needs on its own topics."""

    settings: KafkaSettings
    env: dict[str, str]
    tmp: Path
    app_id: str = field(default_factory=lambda: f"streams-{uuid.uuid4().hex[:8]}")
    workers: list[Worker] = field(default_factory=list)
    readers: list[TopicReader] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = self.settings.topics
        self.registry = self.settings.registry_client()
        self.producer = Producer(self.settings.producer_config())
        self._serializers: dict[type[Any], EventSerializer] = {}

    def publish(self, *events: Any, topic: str | None = None) -> None:
        """Publish records on the consent topic (or ``topic``), keyed by subject id."""
        for event in events:
            serializer = self._serializers.get(type(event))
            if serializer is None:
                serializer = self._serializers[type(event)] = EventSerializer(
                    self.registry, type(event)
                )
            target = topic or self.topics.consent
            self.producer.produce(target, serializer(event, target), key=event.subject.id.encode())
        self.flush()

    def publish_raw(self, topic: str, value: bytes, key: bytes | None = b"raw") -> None:
        """Publish bytes as they are."""
        self.producer.produce(topic, value, key=key)
        self.flush()

    def publish_dict(self, event_type: type[Any], avro: dict[str, Any], key: bytes) -> None:
        """Publish an Avro dict the registry accepts but the contract may reject."""
        serializer = EventSerializer(self.registry, event_type)
        topic = self.topics.consent
        self.producer.produce(topic, serializer(avro, topic), key=key)
        self.flush()

    def flush(self) -> None:
        remaining = self.producer.flush(30)
        assert remaining == 0, f"{remaining} messages not delivered"

    def reader(self, topic: str, *, decode: bool = True) -> TopicReader:
        reader = TopicReader(self.settings, topic, decode)
        self.readers.append(reader)
        return reader

    def instruction_reader(self) -> TopicReader:
        """One reader of every family's instruction topic."""
        first, *more = (self.topics.instructions(f) for f in SinkFamily)
        reader = TopicReader(self.settings, first, more_topics=tuple(more))
        self.readers.append(reader)
        return reader

    def start_worker(self, **extra_env: str) -> Worker:
        """Start a worker on this test's topics; stopped at the end of the test."""
        port = free_port()
        log_path = self.tmp / f"worker-{len(self.workers)}-{port}.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")},
            **self.env,
            "STREAMS_APP_ID": self.app_id,
            "STREAMS_WEB_PORT": str(port),
            "STREAMS_WEB_HOST": "127.0.0.1",
            "STREAMS_API_TOKEN": API_TOKEN,
            "STREAMS_DATA_DIR": str(self.tmp / f"data-{port}"),
            "STREAMS_SESSION_TIMEOUT_SECONDS": "8",
            "STREAMS_METRICS_INTERVAL_SECONDS": "1",
            **extra_env,
        }
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                cwd=self.tmp,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call
            )
        worker = Worker(process, port, log_path)
        self.workers.append(worker)
        return worker

    @property
    def app_id_full(self) -> str:
        """The Faust app id the workers use (topic prefix + app id)."""
        return f"{self.settings.topic_prefix}{self.app_id}"

    @staticmethod
    def get(url: str) -> tuple[int, Any]:
        """GET JSON: (status, body)."""
        return http_json(url)

    @staticmethod
    def metric(base_url: str, name: str, **labels: str) -> float | None:
        """A sample's value from a worker's /metrics (None if absent or not serving yet)."""
        try:
            text = http_text(f"{base_url}/metrics")
        except (urllib.error.URLError, ConnectionError):
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return None

    def wait_until(
        self,
        predicate: Callable[[], Any],
        timeout: float = 90.0,
        describe: Callable[[], str] | None = None,
    ) -> Any:
        """See :func:`wait_until`; also fails at once if a worker died unexpectedly."""

        def check() -> Any:
            for worker in self.workers:
                if worker.process.poll() is not None and not worker.killed:
                    pytest.fail(f"worker exited with {worker.process.returncode}:\n{worker.log()}")
            return predicate()

        return wait_until(check, timeout, describe=describe)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        for reader in self.readers:
            reader.close()
        self.flush()
        self.registry.close()


@pytest.fixture
def stream_kit(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> Iterator[StreamKit]:
    """Publishers, readers and worker processes on this test's fresh topics."""
    kit = StreamKit(relay_settings, relay_env, tmp_path)
    try:
        yield kit
    finally:
        kit.close()


class Events:
    """Valid consent, receipt and data events with sensible defaults."""

    @staticmethod
    def ago(seconds: float) -> datetime:
        """A UTC time ``seconds`` ago."""
        return ago(seconds)

    @staticmethod
    def subject(kind: SubjectKind = SubjectKind.ACCOUNT) -> Subject:
        return Subject(id=f"subj-{uuid.uuid4().hex[:12]}", kind=kind)

    @staticmethod
    def _envelope(
        subject: Subject, at: datetime | None, regime: Regime, source: Source
    ) -> dict[str, Any]:
        return {
            "event_id": new_event_id(),
            "subject": subject,
            "occurred_at": at or utc_now(),
            "recorded_at": utc_now(),
            "source": source,
            "regime": regime,
            "policy_version": PolicyVersion.V2019_07_15,
        }

    def changed(
        self,
        subject: Subject,
        choice: Choice,
        *purposes: Purpose,
        at: datetime | None = None,
        regime: Regime = Regime.GDPR,
        recipients: tuple[Recipient, ...] = (),
    ) -> ConsentChanged:
        return ConsentChanged(
            **self._envelope(subject, at, regime, Source.PRIVACY_SETTINGS),
            choice=choice,
            purposes=purposes,
            recipients=recipients,
        )

    def right(
        self,
        subject: Subject,
        right: Right,
        *,
        at: datetime | None = None,
        regime: Regime = Regime.GDPR,
        channels: tuple[Channel, ...] = (),
        purposes: tuple[Purpose, ...] = (),
        source: Source = Source.PRIVACY_SETTINGS,
    ) -> RightsRequested:
        return RightsRequested(
            **self._envelope(subject, at, regime, source),
            right=right,
            channels=channels,
            purposes=purposes,
        )

    def cookies(
        self,
        subject: Subject,
        *,
        granted: tuple[CookieCategory, ...] = (),
        refused: tuple[CookieCategory, ...] = (),
        at: datetime | None = None,
    ) -> CookiePreferencesSet:
        return CookiePreferencesSet(
            **self._envelope(subject, at, Regime.GDPR, Source.COOKIE_TOOL),
            device_id=f"device-{uuid.uuid4().hex[:8]}",
            granted=granted,
            refused=refused,
        )

    @staticmethod
    def receipt(instruction: InstructionIssued, outcome: Outcome = Outcome.APPLIED) -> Any:
        return PropagationReceipt(
            receipt_id=new_event_id(),
            instruction_id=instruction.instruction_id,
            event_id=instruction.event_id,
            subject=instruction.subject,
            sink_family=instruction.sink_family,
            destination=instruction.destination,
            outcome=outcome,
            occurred_at=instruction.occurred_at,
            applied_at=utc_now(),
            reason=None if outcome is Outcome.APPLIED else "test",
        )

    @staticmethod
    def data(
        subject: Subject,
        purpose: Purpose,
        *,
        at: datetime | None = None,
        recipient: Recipient | None = None,
    ) -> DataEventCaptured:
        return DataEventCaptured(
            event_id=new_event_id(),
            subject=subject,
            occurred_at=at or utc_now(),
            purpose=purpose,
            recipient=recipient,
            payload=b"opaque",
        )


def ago(seconds: float) -> datetime:
    """A UTC time ``seconds`` ago, at millisecond precision."""
    return utc_now() - timedelta(seconds=seconds)


@pytest.fixture
def events() -> Events:
    """Factories of valid events."""
    return Events()
