"""The relay under test, as the operators run it: one OS process per entrypoint.

Started in this order, each waited for on its ``/metrics`` before the next: the local
partner receiver (``python -m deploy.bench.receiver``), the marketing, analytics and
partner-sharing sinks (``python -m consumers.<family>`` with real SQLite stores and
real webhooks), the stream worker(s) (``python -m streams worker``, optionally under
pyinstrument), then the consent gate (``python -m streams.gate``) if the relay's code
has one (before it had, the gate was a thread of the worker). Every process gets free
ports, its own state directory, and consumer groups under the run's topic prefix; logs
go to ``<results>/logs``. Stopping sends SIGTERM (the processes commit and flush) and
waits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from deploy import local
from deploy.bench import procfs
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily

PARTNER_SECRET: Final = "bench-partner-secret-0123456789"
PARTNERS: Final = (
    "sellers",
    "business_partners",
    "group_companies",
    "google",
    "facebook",
    "instagram",
    "twitter",
    "vkontakte",
    "criteo",
    "bing",
    "yahoo",
    "mail_ru",
    "yandex",
    "google_analytics",
    "analytics_providers",
    "others_by_consent",
)
"""The agreed partner destinations (lowercase Recipient values)."""
STREAM_APP_ID: Final = "consent-relay-streams"
PARTNER_BATCH_SIZE: Final = 500
"""Most instructions per partner webhook (see consumers/partners/WEBHOOK.md)."""


class RelayError(RuntimeError):
    """A relay process did not start or died; the message carries its log tail."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class Child:
    """One started process."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    metrics_url: str | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """How it was started, so that :meth:`Relay.restart` starts it again the same way."""

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.popen.pid

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass(slots=True)
class Relay:
    """Starts and stops the relay's processes for one run."""

    settings: KafkaSettings
    state_dir: Path
    log_dir: Path
    workers: int = 1
    profile_dir: Path | None = None
    source_dir: Path = field(default_factory=Path.cwd)
    """Where the relay's code is imported from (the working tree, or a snapshot)."""
    children: list[Child] = field(default_factory=list)
    receiver_stats: Path | None = None
    marketing_database_url: str | None = None
    """The marketing sink's database (default: a SQLite file in :attr:`state_dir`)."""
    receiver_args: tuple[str, ...] = ()
    """More options for the partner receiver (``--record``, ``--fail-file``)."""

    @property
    def stream_group(self) -> str:
        """The stream workers' consumer group (the Faust app id)."""
        return f"{self.settings.topic_prefix}{STREAM_APP_ID}"

    def sink_group(self, family: SinkFamily) -> str:
        """A sink family's consumer group (partners append ``.<partner>``)."""
        return f"{self.settings.topic_prefix}sink.{family.value.lower()}"

    def base_env(self) -> dict[str, str]:
        """The environment every relay process shares."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP": self.settings.bootstrap,
            "SCHEMA_REGISTRY_URL": self.settings.registry_url,
            "CONSENT_RELAY_TOPIC_PREFIX": self.settings.topic_prefix,
            "CONSENT_RELAY_PARTITIONS": str(self.settings.partitions),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(self.source_dir),
        }

    def start(self, timeout: float) -> None:
        """Start everything; raises RelayError (after stopping what started) on failure."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._check_source()
        try:
            port = self._start_receiver(timeout)
            self._start_sinks(port, timeout)
            for index in range(self.workers):
                self._start_worker(index, timeout)
            if self.has_gate_process:
                self._start_gate(timeout)
        except BaseException:
            self.stop()
            raise

    def _check_source(self) -> None:
        """The relay's packages must come from :attr:`source_dir` (not the editable install)."""
        probe = subprocess.run(
            [sys.executable, "-c", "import consumers, streams; print(streams.__file__)"],
            env=self.base_env(),
            cwd=self.source_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        where = Path(probe.stdout.strip() or "?").resolve()
        if self.source_dir.resolve() not in where.parents:
            raise RelayError(f"relay code would load from {where}, not {self.source_dir}")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], mode: str = "wb") -> Child:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open(mode)
        # Owned: a benchmark killed mid-run (even by SIGKILL) leaves no relay process behind.
        popen: subprocess.Popen[bytes] = local.owned_popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.source_dir
        )
        child = Child(name, popen, log_path, log, argv=argv, env=env)
        self.children.append(child)
        return child

    def restart(self, name: str, timeout: float) -> Child:
        """Start the exited process ``name`` again as before (same ports, state, log file)."""
        [old] = [c for c in self.children if c.name == name]
        if old.popen.poll() is None:
            raise RelayError(f"{name} is still running (pid {old.pid})")
        old.log.close()
        self.children.remove(old)
        child = self._spawn(name, old.argv, old.env, mode="ab")
        child.metrics_url = old.metrics_url
        if child.metrics_url is not None:
            _wait_http(child, timeout)
        return child

    def _start_receiver(self, timeout: float) -> int:
        port_file = self.state_dir / "receiver.port"
        self.receiver_stats = self.log_dir / "partner-receiver.json"
        child = self._spawn(
            "partner-receiver",
            [
                sys.executable,
                "-m",
                "deploy.bench.receiver",
                "--secret",
                PARTNER_SECRET,
                "--port-file",
                str(port_file),
                "--stats-file",
                str(self.receiver_stats),
                *self.receiver_args,
            ],
            self.base_env(),
        )
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if child.popen.poll() is not None or time.monotonic() > deadline:
                raise RelayError(f"partner receiver did not start:\n{child.tail()}")
            time.sleep(0.1)
        return int(port_file.read_text())

    def _partner_config(self, receiver_port: int) -> Path:
        config = {
            "pseudonym_key": "bench-pseudonym-master-key-0123456789",
            "partners": {
                name: {
                    "url": f"http://127.0.0.1:{receiver_port}/hooks/{name}",
                    "secret": PARTNER_SECRET,
                    "known_subjects": "all",
                    # Partner APIs take many ids per call: one signed POST per batch.
                    "batch_size": PARTNER_BATCH_SIZE,
                }
                for name in PARTNERS
            },
        }
        path = self.state_dir / "partners.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _start_sinks(self, receiver_port: int, timeout: float) -> None:
        sinks = {
            "marketing-sink": (
                "consumers.marketing",
                "MARKETING_SINK_",
                SinkFamily.MARKETING,
                {
                    "DATABASE_URL": self.marketing_database_url
                    or f"sqlite:///{self.state_dir / 'marketing.sqlite'}",
                    "HASH_KEY": "bench-marketing-hash-key-0123456789",
                },
            ),
            "analytics-sink": (
                "consumers.analytics",
                "ANALYTICS_SINK_",
                SinkFamily.ANALYTICS,
                {"DATABASE": str(self.state_dir / "analytics.sqlite")},
            ),
            "partner-sink": (
                "consumers.partners",
                "PARTNER_SINK_",
                SinkFamily.PARTNER_SHARING,
                {"CONFIG": str(self._partner_config(receiver_port))},
            ),
        }
        for name, (module, prefix, family, own) in sinks.items():
            port = free_port()
            env = {
                **self.base_env(),
                **{prefix + k: v for k, v in own.items()},
                prefix + "HTTP_PORT": str(port),
                prefix + "HTTP_HOST": "127.0.0.1",
                prefix + "GROUP_ID": self.sink_group(family),
            }
            child = self._spawn(name, [sys.executable, "-m", module], env)
            child.metrics_url = f"http://127.0.0.1:{port}/metrics"
            _wait_http(child, timeout)

    def _start_worker(self, index: int, timeout: float) -> None:
        port = free_port()
        name = f"stream-worker-{index}"
        env = {
            **self.base_env(),
            "STREAMS_WEB_PORT": str(port),
            "STREAMS_WEB_BIND": "127.0.0.1",
            "STREAMS_WEB_HOST": "127.0.0.1",
            "STREAMS_DATA_DIR": str(self.state_dir / name),
            "STREAMS_APP_ID": STREAM_APP_ID,
        }
        argv = [sys.executable, "-m", "streams", "worker"]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            out = self.profile_dir / f"{name}.txt"
            argv = [
                sys.executable,
                "-m",
                "pyinstrument",
                "-r",
                "text",
                "-o",
                str(out),
                "-m",
                "streams",
                "worker",
            ]
        child = self._spawn(name, argv, env)
        child.metrics_url = f"http://127.0.0.1:{port}/metrics"
        _wait_http(child, timeout)

    @property
    def has_gate_process(self) -> bool:
        """The relay's code runs the consent gate as a process of its own."""
        return (self.source_dir / "streams" / "gate" / "__main__.py").exists()

    def _start_gate(self, timeout: float) -> None:
        port = free_port()
        env = {
            **self.base_env(),
            "GATE_HTTP_PORT": str(port),
            "GATE_HTTP_HOST": "127.0.0.1",
            "GATE_STREAM_APP_ID": STREAM_APP_ID,
        }
        child = self._spawn("stream-gate", [sys.executable, "-m", "streams.gate"], env)
        child.metrics_url = f"http://127.0.0.1:{port}/metrics"
        _wait_http(child, timeout)

    @property
    def workers_children(self) -> list[Child]:
        """The stream worker processes."""
        return [c for c in self.children if c.name.startswith("stream-worker")]

    @property
    def stream_children(self) -> list[Child]:
        """The processes counting stream events: the workers, and the gate process."""
        return [c for c in self.children if c.name.startswith("stream-")]

    @property
    def gate_group(self) -> str:
        """The consent gate's consumer group (as a process, or as a thread before)."""
        return f"{self.stream_group}-gate"

    def check_alive(self) -> None:
        """Raise RelayError if any process has exited."""
        for child in self.children:
            if child.popen.poll() is not None:
                raise RelayError(
                    f"{child.name} exited with {child.popen.returncode}:\n{child.tail()}"
                )

    def samples(self) -> dict[str, procfs.Sample | None]:
        """CPU and peak memory of every process now."""
        return {c.name: procfs.sample(c.pid) for c in self.children}

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every process (workers first), wait, kill what is left."""
        for child in sorted(self.children, key=lambda c: not c.name.startswith("stream")):
            if child.popen.poll() is None:
                child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait(10)
            child.log.close()
        self.children.clear()

    def receiver_counts(self) -> dict[str, int]:
        """Webhooks the receiver got per path (written when it stopped)."""
        if self.receiver_stats is None or not self.receiver_stats.exists():
            return {}
        counts: dict[str, int] = json.loads(self.receiver_stats.read_text())
        return counts


def _wait_http(child: Child, timeout: float) -> None:
    assert child.metrics_url is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            break
        try:
            with urllib.request.urlopen(child.metrics_url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RelayError(f"{child.name} did not serve {child.metrics_url}:\n{child.tail()}")


Sample = tuple[str, dict[str, str], float]


def scrape(url: str) -> list[Sample]:
    """Every sample on a Prometheus text page as (name, labels, value); [] if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return []
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = {}
        for pair in rest.rstrip("}").split(","):
            key, sep, raw = pair.partition("=")
            if sep:
                labels[key.strip()] = raw.strip().strip('"')
        try:
            samples.append((name, labels, float(value)))
        except ValueError:
            continue
    return samples
