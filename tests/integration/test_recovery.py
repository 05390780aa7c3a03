"""Recovery after faults: how long until the next withdrawal is honoured again.

Each test runs a stream worker and a marketing sink as processes, injects one fault,
then publishes a withdrawal and waits for the marketing sink's APPLIED receipt for it:
(a) the worker SIGKILLed and restarted, (b) the sink SIGKILLed and restarted, (c) the
broker stopped for 65 s and started with the relay running under a steady load, (d) the
worker and the sink started while the broker is down, the broker started after them. The
tests assert the effect within a generous bound; the seconds it took (the target is 10)
are printed, not asserted, so a busy machine cannot make them flaky. What made the
recovery quick is asserted as state: the restarted process is its group's one member
(a and b; static membership is off by default, see the settings); the relay wrote
few log lines while the broker was down (c; it printed thousands a second before), and
its processes stayed up (c, d).

They stop the broker, so they run on a private broker + registry of their own (started
once for this module on free ports), never the shared one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from producers import builders
from producers.client import ConsentClient
from schemas.admin import ensure_topics
from schemas.codec import EventDecoder
from schemas.events import receipts_in
from schemas.kafka import KafkaSettings
from schemas.registry import register_all
from schemas.taxonomy import Outcome, Purpose, SinkFamily, Source
from tests.support.processes import free_port, load_local_stack, log_tail

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 60.0
"""Generous: the assertion is "honoured at all"; the 10 s target is reported."""
OUTAGE_S = 35.0
"""Longer than any client's single request or metadata timeout (30 s)."""
LONG_OUTAGE_S = 65.0
"""Longer than a minute's wait for a flush or a delivery, too."""
MAX_LOG_LINES_PER_SECOND = 50
"""Generous too: a few lines a minute are expected while the broker is away."""

_PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies, so no relay process outlives it."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class PrivateStack:
    """A broker + registry this module may stop and start."""

    local: Any
    state_dir: Path
    bootstrap: str
    registry_url: str

    def stop_broker(self) -> None:
        """SIGTERM the broker (a clean stop; its data stays) and wait until it is gone."""
        pid = self._broker().pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while self._broker().running:
            assert time.monotonic() < deadline, "the broker did not stop within 60 s"
            time.sleep(0.2)

    def start_broker(self) -> None:
        """Start the broker again from its state directory (the registry is reused)."""
        self.local.start(self.state_dir, log=lambda _message: None)

    def _broker(self) -> Any:
        (broker,) = [s for s in self.local.status(self.state_dir) if s.name == self.local.KAFKA]
        return broker


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    local = load_local_stack()
    state_dir = tmp_path_factory.mktemp("recovery-stack")
    kafka_port, controller_port, registry_port = local.pick_free_ports(3)
    endpoints = local.start(state_dir, kafka_port, controller_port, registry_port, log=print)
    try:
        settings = KafkaSettings(bootstrap=endpoints.bootstrap, registry_url=endpoints.registry_url)
        with settings.registry_client() as client:
            register_all(client)
        yield PrivateStack(local, state_dir, endpoints.bootstrap, endpoints.registry_url)
    finally:
        local.stop(state_dir, log=print)


def _inherited() -> dict[str, str]:
    """This environment without relay settings, which each process gets explicitly."""
    ours = ("STREAMS_", "MARKETING_SINK_", "KAFKA_", "SCHEMA_REGISTRY_", "CONSENT_RELAY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)}


@dataclass
class Process:
    """``python -m <module>`` with a fixed environment, restartable after a kill."""

    module: str
    env: dict[str, str]
    log_dir: Path
    child: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"{self.module}-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.child = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env={**_inherited(), **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call
            )

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill()
        self.child.wait(10)

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(10)

    def check_alive(self) -> None:
        assert self.child is not None
        if self.child.poll() is not None:
            pytest.fail(
                f"{self.module} exited with {self.child.returncode}:\n{log_tail(self.logs[-1])}"
            )

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the running process (Linux /proc)."""
        assert self.child is not None
        fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def lines(self) -> int:
        """Lines its logs hold so far."""
        return sum(path.read_bytes().count(b"\n") for path in self.logs if path.exists())


@dataclass
class Relay:
    """A worker and a marketing sink on this test's topics, and a way to withdraw."""

    settings: KafkaSettings
    worker: Process
    sink: Process

    def check_alive(self) -> None:
        self.worker.check_alive()
        self.sink.check_alive()

    def withdraw(self) -> str:
        """Publish a withdrawal (marketing e-mail) of a fresh subject; its event id."""
        with ConsentClient(self.settings) as client:
            subject = f"recovery-{uuid.uuid4().hex[:10]}"
            published = client.withdraw(
                subject, [Purpose.MARKETING_EMAIL], source=Source.UNSUBSCRIBE_LINK
            )
        return published.event_id

    def await_honoured(self, event_id: str, since: float, what: str) -> float:
        """Seconds from ``since`` (monotonic) until the sink's APPLIED receipt of
        ``event_id`` is on the receipts topic; fails after :data:`BOUND_S`."""
        with ReceiptWatch(self.settings) as watch:
            while time.monotonic() < since + BOUND_S:
                self.check_alive()
                if watch.applied(event_id):
                    taken = time.monotonic() - since
                    print(f"\nRECOVERY {what}: withdrawal honoured {taken:.1f} s after the return")
                    return taken
        pytest.fail(f"{what}: the withdrawal was not honoured within {BOUND_S:g} s")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds the worker and the sink have used so far."""
        return self.worker.cpu_seconds(), self.sink.cpu_seconds()

    def lines(self) -> tuple[int, int]:
        """Lines the worker's and the sink's logs hold so far."""
        return self.worker.lines(), self.sink.lines()

    def stop(self) -> None:
        self.worker.stop()
        self.sink.stop()


@pytest.fixture
def relay(private_stack: PrivateStack, tmp_path: Path) -> Iterator[Relay]:
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    settings = KafkaSettings(
        bootstrap=private_stack.bootstrap,
        registry_url=private_stack.registry_url,
        topic_prefix=prefix,
        partitions=3,
    )
    ensure_topics(settings)
    common = {
        "KAFKA_BOOTSTRAP": settings.bootstrap,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": prefix,
        "CONSENT_RELAY_PARTITIONS": "3",
    }
    worker = Process(
        "streams",
        {
            **common,
            "STREAMS_APP_ID": "recovery",
            "STREAMS_WEB_PORT": str(free_port()),
            "STREAMS_WEB_HOST": "127.0.0.1",
            "STREAMS_WEB_BIND": "127.0.0.1",
            "STREAMS_DATA_DIR": str(tmp_path / "streams"),
        },
        tmp_path,
    )
    sink = Process(
        "consumers.marketing",
        {
            **common,
            "MARKETING_SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
            "MARKETING_SINK_HASH_KEY": "recovery-test-hash-key",
            "MARKETING_SINK_HTTP_PORT": str(free_port()),
            "MARKETING_SINK_HTTP_HOST": "127.0.0.1",
            "MARKETING_SINK_GROUP_ID": f"recovery-{uuid.uuid4().hex[:8]}",
        },
        tmp_path,
    )
    relay = Relay(settings, worker, sink)
    try:
        yield relay
    finally:
        relay.stop()


def _running(relay: Relay) -> None:
    """Start both processes and see one withdrawal honoured, so both are warm."""
    relay.worker.start()
    relay.sink.start()
    began = time.monotonic()
    relay.await_honoured(relay.withdraw(), began, "first start (warm-up)")


def test_a_killed_worker_is_back_in_seconds(relay: Relay) -> None:
    _running(relay)
    relay.worker.kill()
    restarted = time.monotonic()
    relay.worker.start()
    relay.await_honoured(relay.withdraw(), restarted, "(a) worker SIGKILLed and restarted")
    # Its predecessor is gone from the group: one (dynamic) member left.
    group = relay.settings.topic_prefix + relay.worker.env["STREAMS_APP_ID"]
    assert _members(relay.settings, group) == [None]


def test_a_killed_sink_is_back_in_seconds(relay: Relay) -> None:
    _running(relay)
    relay.sink.kill()
    restarted = time.monotonic()
    relay.sink.start()
    relay.await_honoured(relay.withdraw(), restarted, "(b) marketing sink SIGKILLed and restarted")
    group = relay.sink.env["MARKETING_SINK_GROUP_ID"]
    assert _members(relay.settings, group) == [None]


def test_the_relay_moves_again_soon_after_the_broker_returns(
    relay: Relay, private_stack: PrivateStack
) -> None:
    _running(relay)
    with steady_load(relay.settings, per_second=100):
        time.sleep(5)
        before, cpu_before = relay.lines(), relay.cpu_seconds()
        stopped = time.monotonic()
        private_stack.stop_broker()
        time.sleep(LONG_OUTAGE_S)
        down = time.monotonic() - stopped
        rates = [(lines - was) / down for lines, was in zip(relay.lines(), before, strict=True)]
        cpu = [(now - was) / down for now, was in zip(relay.cpu_seconds(), cpu_before, strict=True)]
        print(
            f"\nRECOVERY while the broker was down ({down:.0f} s, 100 withdrawals/s offered): "
            f"log lines worker {rates[0]:.1f}/s, marketing sink {rates[1]:.1f}/s; "
            f"CPU worker {cpu[0]:.0%}, marketing sink {cpu[1]:.0%} of a core"
        )
        private_stack.start_broker()
        returned = time.monotonic()
        relay.await_honoured(relay.withdraw(), returned, "(c) broker stopped and started")
    # Thousands of identical lines a second were written before; a few a minute now.
    assert max(rates) < MAX_LOG_LINES_PER_SECOND


def test_processes_started_while_the_broker_is_down_wait_for_it(
    relay: Relay, private_stack: PrivateStack
) -> None:
    private_stack.stop_broker()
    try:
        relay.worker.start()
        relay.sink.start()
        time.sleep(OUTAGE_S)
        relay.check_alive()
    finally:
        private_stack.start_broker()
    returned = time.monotonic()
    relay.await_honoured(relay.withdraw(), returned, "(d) started while the broker was down")


@contextmanager
def steady_load(settings: KafkaSettings, per_second: int) -> Iterator[None]:
    """Withdrawals of fresh subjects published at ``per_second`` in a thread (queued by
    the client while the broker is away), as in production."""
    stop = threading.Event()

    def publish() -> None:
        with ConsentClient(settings) as client:
            while not stop.wait(1 / per_second):
                subject = f"load-{uuid.uuid4().hex[:10]}"
                client.send(builders.withdraw(subject, [Purpose.MARKETING_EMAIL]))

    thread = threading.Thread(target=publish, name="load", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def _members(settings: KafkaSettings, group: str) -> list[str | None]:
    """The static member names of ``group``'s members (None for a dynamic member)."""
    admin = AdminClient(settings.admin_config())
    described = admin.describe_consumer_groups([group])[group].result(30)
    return sorted((m.group_instance_id for m in described.members), key=str)


class ReceiptWatch:
    """Reads the receipts topic from the beginning, looking for one APPLIED receipt."""

    def __init__(self, settings: KafkaSettings) -> None:
        topic = settings.topics.receipts
        group = f"recovery-reader-{uuid.uuid4().hex[:8]}"
        self._consumer = Consumer(settings.consumer_config(group, **{"fetch.wait.max.ms": 20}))
        meta = self._consumer.list_topics(topic, timeout=30).topics[topic]
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        self._registry = settings.registry_client()
        self._decoder = EventDecoder(self._registry)
        self._seen: set[str] = set()

    def applied(self, event_id: str) -> bool:
        """Whether the marketing sink's APPLIED receipt of ``event_id`` has been read."""
        for message in self._consumer.consume(500, timeout=0.2):
            if message.error() is not None:
                continue
            for receipt in receipts_in(self._decoder.decode(message.value())):
                if (
                    receipt.sink_family is SinkFamily.MARKETING
                    and receipt.outcome is Outcome.APPLIED
                ):
                    self._seen.add(receipt.event_id)
        return event_id in self._seen

    def __enter__(self) -> ReceiptWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._consumer.close()
        self._registry.close()
