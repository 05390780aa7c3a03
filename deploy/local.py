#!/usr/bin/env python3
"""Run a real Apache Kafka broker and schema registry on this machine, without Docker.

Used by developers (``make stack``), by the test suite (``tests/conftest.py`` imports this
file by path), by the demo and by CI.  Standard library only, so it works with a plain
``python3`` before the project's virtualenv exists.

Pieces:

* Apache Kafka 4.1.1 in KRaft mode, one process acting as broker and controller, listening
  on 127.0.0.1 only.  Jars come from Maven Central through ``deploy/kafka/pom.xml``; logging
  is configured by ``deploy/kafka/log4j2.properties``.
* Or, with ``--brokers 3``, a cluster of three such nodes, each broker *and* controller
  (three voters of the KRaft quorum).  That is the smallest cluster that survives the loss
  of any one node: the two left still form a quorum of the controllers and hold two of the
  three replicas of every partition, which is what ``min.insync.replicas=2`` asks for.  A
  split layout (dedicated controllers) would need six processes on one machine for the same
  guarantee.  Node *n* (1-based) listens on ``kafka-port + 2(n-1)`` and
  ``controller-port + 2(n-1)`` (19092/19093, 19094/19095, 19096/19097 by default; or give
  each port: ``--kafka-port 19092,19192,19292``), keeps its config and data in
  ``<state>/kafka-<n>/`` and logs to ``<state>/kafka-<n>.log``.  Internal topics (consumer
  offsets, transaction state) get three replicas and two in sync, as do topics created
  without a replication factor; a node that stops heartbeating is fenced (its partitions
  led elsewhere) after 3 s instead of Kafka's 9, within the relay's 6 s consumer sessions.
* Or, with ``--sasl``, clients authenticate with SASL/SCRAM-SHA-512 on the Kafka port
  (SASL_PLAINTEXT; no TLS, see :func:`sasl_properties` for the listeners and why the
  controller one stays PLAINTEXT) as one principal per process role (:data:`ROLES`), and
  the StandardAuthorizer lets each do only what ACLs allow; ``operator`` is the super
  user.  The passwords are generated on the first ``up --sasl`` into
  ``<state>/sasl/credentials.json`` (mode 0600), written into the storage as SCRAM
  credentials when it is formatted, and printed only by ``credentials ROLE``.  Needs the
  project's venv (confluent-kafka probes the SASL listener).
* Apicurio Registry 3.0.9 (``deploy/registry/pom.xml``), whose Confluent-compatible API at
  ``/apis/ccompat/v7`` is what ``confluent_kafka.schema_registry`` talks to.  Its storage is
  an H2 database file in the state directory, so schema ids survive a restart together with
  the Kafka log that refers to them.

Downloads go to ``$CONSENT_RELAY_CACHE`` (default ``~/.cache/consent-relay``), outside the
repository; everything a running stack writes (config, data, logs, pid files) goes to the
state directory (default ``var/local`` in the repository, which git ignores).

Commands::

    python3 deploy/local.py fetch
    python3 deploy/local.py up [--state-dir DIR] [--brokers 1|3] [--kafka-port N[,N...]]
                               [--controller-port N[,N...]] [--registry-port N]
                               [--env-file FILE] [--sasl]
    python3 deploy/local.py credentials [--state-dir DIR] ROLE
    python3 deploy/local.py status [--state-dir DIR]
    python3 deploy/local.py down [--state-dir DIR]

``up`` prints ``KAFKA_BOOTSTRAP=...`` (every broker, comma-separated) and
``SCHEMA_REGISTRY_URL=...`` on stdout (all other messages go to stderr), so
``eval "$(python3 deploy/local.py up)"`` works; with ``--sasl`` also
``KAFKA_SECURITY_PROTOCOL`` and ``KAFKA_SASL_MECHANISM``, and ``eval "$(... credentials
gate)"`` adds the gate's ``KAFKA_SASL_USERNAME`` and ``KAFKA_SASL_PASSWORD``.  There is
one registry whatever the number of brokers (it keeps its schemas in its own H2 file, not
in Kafka).  ``up`` on a state directory whose cluster lost a node starts that node again;
``down`` and ``status`` cover every node.

``up`` leaves broker and registry running on their own (a developer's long-lived stack).
``start(..., owned=True)``, as the tests and the benchmark call it, ties them to the calling
process instead: Linux sends them SIGTERM when it dies, however it dies (SIGKILL included).
:func:`owned_popen` starts any other child that way (the relay processes of tests and bench).

The same operations are importable: :func:`fetch`, :func:`start`, :func:`stop`,
:func:`status`, :func:`owned_popen`, plus the probes :func:`wait_for_kafka` and
:func:`wait_for_registry`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import importlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEPLOY_DIR: Final = REPO_ROOT / "deploy"
KAFKA_POM: Final = DEPLOY_DIR / "kafka" / "pom.xml"
KAFKA_LOG4J: Final = DEPLOY_DIR / "kafka" / "log4j2.properties"
REGISTRY_POM: Final = DEPLOY_DIR / "registry" / "pom.xml"

DEFAULT_STATE_DIR: Final = REPO_ROOT / "var" / "local"
DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_CONTROLLER_PORT: Final = 19093
DEFAULT_REGISTRY_PORT: Final = 18081
HOST: Final = "127.0.0.1"
CCOMPAT_PATH: Final = "/apis/ccompat/v7"

KAFKA_START_TIMEOUT_S: Final = 60.0
CLUSTER_START_TIMEOUT_S: Final = 120.0
"""Three JVMs starting at once on a small machine take longer than one."""
DEFAULT_BROKERS: Final = 1
CLUSTER_REPLICAS: Final = 3
CLUSTER_MIN_INSYNC: Final = 2
PORT_STRIDE: Final = 2
"""Node n's ports are the first node's + 2(n-1), so the defaults interleave."""
REGISTRY_START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 30.0
LOG_TAIL_LINES: Final = 60

MARKER_FILE: Final = ".complete"
STATE_FILE: Final = "stack.json"
ENV_FILE: Final = "endpoints.env"
KAFKA: Final = "kafka"
REGISTRY: Final = "registry"
COMPONENTS: Final = (KAFKA, REGISTRY)
"""The components of a single-broker stack; a cluster has ``kafka-1`` ... instead of ``kafka``."""

SASL_DIR: Final = "sasl"
CREDENTIALS_FILE: Final = "credentials.json"
SCRAM: Final = "SCRAM-SHA-512"
SASL_LISTENER: Final = "SASL_PLAINTEXT"
OPERATOR: Final = "operator"
BROKER_PRINCIPAL: Final = "broker"
"""The brokers' own principal on the SASL listener (replication between nodes)."""
ROLES: Final = (
    "producers",
    "streams",
    "marketing",
    "analytics",
    "partner_sharing",
    "gate",
    OPERATOR,
)
"""One SCRAM principal per process role, named as the role (``User:marketing``): the
producers (gateway and client services), the stream worker, each sink family, the data
gate and the operators' tools (the one super user of the relay's roles)."""
STANDARD_AUTHORIZER: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Children started by this Python process, so that stop() can reap them (no zombies, no
# "subprocess still running" ResourceWarning when called from the same process, e.g. pytest).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

Log = Callable[[str], None]


def _log_stderr(message: str) -> None:
    print(f"local.py: {message}", file=sys.stderr, flush=True)


class StackError(RuntimeError):
    """Starting, probing or fetching failed; ``log_tail`` holds the relevant output."""

    def __init__(self, message: str, log_tail: str = "", log_path: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail
        self.log_path = log_path

    def __str__(self) -> str:
        if not self.log_tail:
            return self.message
        where = f" ({self.log_path})" if self.log_path else ""
        return f"{self.message}\n--- last lines of the log{where} ---\n{self.log_tail}"


@dataclass(frozen=True)
class Artifacts:
    """Where the downloaded runtimes are."""

    kafka_libs: Path
    registry_jar: Path
    downloaded_bytes: int
    seconds: float


@dataclass(frozen=True)
class Endpoints:
    """A running local stack."""

    bootstrap: str
    registry_url: str
    state_dir: Path
    kafka_port: int
    controller_port: int
    registry_port: int
    kafka_pid: int
    registry_pid: int
    reused: bool
    # Seconds from process start (or from the call, for a reused process) until it answered.
    kafka_ready_s: float
    registry_ready_s: float
    brokers: int = 1
    # Every node's, in node order (the first is ``kafka_port`` / ``kafka_pid``).
    kafka_ports: tuple[int, ...] = ()
    controller_ports: tuple[int, ...] = ()
    kafka_pids: tuple[int, ...] = ()
    sasl: bool = False
    """Clients authenticate with SCRAM (``up --sasl``); credentials: :func:`credentials_env`."""

    def env_lines(self) -> list[str]:
        lines = [f"KAFKA_BOOTSTRAP={self.bootstrap}", f"SCHEMA_REGISTRY_URL={self.registry_url}"]
        if self.sasl:
            # No credentials here: these lines are printed and written to endpoints.env.
            lines += [f"KAFKA_SECURITY_PROTOCOL={SASL_LISTENER}", f"KAFKA_SASL_MECHANISM={SCRAM}"]
        return lines


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    port: int | None
    answers: bool
    detail: str


# --------------------------------------------------------------------------------------
# fetch


def cache_dir() -> Path:
    """``$CONSENT_RELAY_CACHE``, else ``~/.cache/consent-relay``."""
    configured = os.environ.get("CONSENT_RELAY_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "consent-relay"


def _pom_property(pom: Path, name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom).getroot()
    node = root.find(f"m:properties/m:{name}", ns)
    if node is None or not (node.text or "").strip():
        raise StackError(f"{pom} has no <properties><{name}>")
    return (node.text or "").strip()


def _pom_digest(*files: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def kafka_dist_dir(cache: Path | None = None) -> Path:
    version = _pom_property(KAFKA_POM, "kafka.version")
    return (cache or cache_dir()) / f"kafka-{version}-{_pom_digest(KAFKA_POM)}"


def registry_dist_dir(cache: Path | None = None) -> Path:
    version = _pom_property(REGISTRY_POM, "apicurio.version")
    return (cache or cache_dir()) / f"apicurio-registry-{version}-{_pom_digest(REGISTRY_POM)}"


def _registry_jar(dist: Path) -> Path:
    jars = sorted(dist.glob("apicurio-registry-app-*-runner.jar"))
    if not jars:
        raise StackError(f"no apicurio-registry-app-*-runner.jar in {dist}")
    return jars[0]


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _tail_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven ('mvn') is not on PATH; it downloads the Kafka and registry jars")
    return mvn


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StackError("Java ('java', 17 or newer) is not on PATH and JAVA_HOME is not set")
    return java


def _run_mvn(pom: Path, args: Sequence[str], what: str) -> None:
    cmd = [_mvn(), "-q", "-B", "-f", str(pom), *args]
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise StackError(
            f"downloading {what} failed (exit {proc.returncode}): {' '.join(cmd)}",
            _tail_text(proc.stdout + proc.stderr),
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _publish(tmp: Path, final: Path, size: int, seconds: float) -> None:
    (tmp / MARKER_FILE).write_text(
        json.dumps({"bytes": size, "seconds": round(seconds, 1), "fetched_at": time.time()}) + "\n"
    )
    if final.exists():  # a partial leftover without marker
        shutil.rmtree(final)
    tmp.rename(final)


def _fetch_kafka(cache: Path, log: Log) -> int:
    final = kafka_dist_dir(cache)
    if (final / MARKER_FILE).is_file():
        log(f"kafka: cached in {final}")
        return 0
    began = time.monotonic()
    tmp = _fresh_dir(cache / f".tmp-{final.name}-{os.getpid()}")
    libs = tmp / "libs"
    log(f"kafka: downloading jars with Maven ({KAFKA_POM.relative_to(REPO_ROOT)}) ...")
    _run_mvn(
        KAFKA_POM,
        [
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        "the Kafka jars",
    )
    if not list(libs.glob("kafka_2.13-*.jar")):
        raise StackError(f"Maven finished but {libs} has no kafka_2.13 jar")
    size = _tree_size(tmp)
    seconds = time.monotonic() - began
    _publish(tmp, final, size, seconds)
    count = len(list((final / "libs").glob("*.jar")))
    log(f"kafka: downloaded {count} jars, {_mb(size)} in {seconds:.1f} s -> {final}")
    return size


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            parts = Path(member.name).parts
            if Path(member.name).is_absolute() or ".." in parts:
                raise StackError(f"refusing to unpack {archive.name}: entry {member.name!r}")
            if not (member.isfile() or member.isdir()):
                raise StackError(f"refusing to unpack {archive.name}: link {member.name!r}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # Python < 3.11.4: members were checked above
            tar.extractall(dest, members=members)


def _fetch_registry(cache: Path, log: Log) -> int:
    final = registry_dist_dir(cache)
    if (final / MARKER_FILE).is_file():
        log(f"registry: cached in {final}")
        return 0
    began = time.monotonic()
    tmp = _fresh_dir(cache / f".tmp-{final.name}-{os.getpid()}")
    download = tmp / "download"
    log(f"registry: downloading Apicurio with Maven ({REGISTRY_POM.relative_to(REPO_ROOT)}) ...")
    _run_mvn(REGISTRY_POM, ["dependency:copy", f"-Ddownload.dir={download}"], "Apicurio Registry")
    archives = sorted(download.glob("*.tar.gz"))
    if not archives:
        raise StackError(f"Maven finished but {download} has no .tar.gz")
    archive_size = archives[0].stat().st_size
    _safe_extract(archives[0], tmp)
    shutil.rmtree(download)
    _registry_jar(tmp)
    size = _tree_size(tmp)
    seconds = time.monotonic() - began
    _publish(tmp, final, size, seconds)
    log(
        f"registry: downloaded {_mb(archive_size)} (unpacked {_mb(size)}) "
        f"in {seconds:.1f} s -> {final}"
    )
    return archive_size


def fetch(cache: Path | None = None, log: Log = _log_stderr) -> Artifacts:
    """Download Kafka and the registry into the cache unless already there (idempotent)."""
    root = cache or cache_dir()
    began = time.monotonic()
    with _locked(root / ".fetch.lock"):
        downloaded = _fetch_kafka(root, log) + _fetch_registry(root, log)
    return Artifacts(
        kafka_libs=kafka_dist_dir(root) / "libs",
        registry_jar=_registry_jar(registry_dist_dir(root)),
        downloaded_bytes=downloaded,
        seconds=time.monotonic() - began,
    )


def is_fetched(cache: Path | None = None) -> bool:
    root = cache or cache_dir()
    return all((d / MARKER_FILE).is_file() for d in (kafka_dist_dir(root), registry_dist_dir(root)))


# --------------------------------------------------------------------------------------
# probes


def _split_hostport(address: str) -> tuple[str, int]:
    first = address.split(",", maxsplit=1)[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_ports(count: int, host: str = HOST) -> list[int]:
    """Ports the kernel hands out as free right now (all distinct)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.extend(chunk)
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode()


def kafka_metadata_raw(host: str, port: int, timeout: float = 5.0) -> tuple[int, str | None]:
    """Send a Kafka Metadata v4 request over plain TCP; return (live brokers, cluster id).

    Version 4 is the oldest Metadata version Kafka 4.x still accepts and the newest one
    without the "flexible" (tagged-field) encoding, so it is the simplest to hand-write.
    An empty topic list asks for brokers and cluster id only.
    """
    correlation_id = 7
    client_id = b"consent-relay-local"
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body = struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation: false
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 0 < size < 64 * 1024 * 1024:
            raise ConnectionError(f"implausible Kafka response size {size}")
        reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != correlation_id:
        raise ConnectionError("Kafka response has the wrong correlation id")
    reader.take(">i")  # throttle_time_ms
    brokers = reader.take(">i")
    for _ in range(max(brokers, 0)):
        reader.take(">i")  # node_id
        reader.string()  # host
        reader.take(">i")  # port
        reader.string()  # rack
    cluster_id = reader.string()
    return max(brokers, 0), cluster_id


def _confluent_admin() -> Any | None:
    try:
        return importlib.import_module("confluent_kafka.admin")
    except ImportError:
        return None


def kafka_answers(
    bootstrap: str,
    timeout: float = 5.0,
    min_brokers: int = 1,
    as_client: Mapping[str, str] | None = None,
) -> tuple[bool, str]:
    """Does a broker at ``bootstrap`` answer a metadata request listing at least
    ``min_brokers`` brokers (a cluster's node is ready once every node registered)?

    Uses ``confluent_kafka.admin.AdminClient.list_topics`` when confluent-kafka is
    importable, else :func:`kafka_metadata_raw`.  ``as_client``: more librdkafka settings
    (a SASL listener's credentials, which only confluent-kafka can present).
    """
    host, port = _split_hostport(bootstrap)
    if not port_open(host, port, timeout=min(timeout, 2.0)):
        return False, f"nothing listens on {host}:{port}"
    admin_module = _confluent_admin()
    if admin_module is None and as_client:
        return False, "a SASL listener: probing it needs confluent-kafka (the project's venv)"
    if admin_module is not None:
        client = admin_module.AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "socket.connection.setup.timeout.ms": int(timeout * 1000),
                "log_level": 2,
                **(as_client or {}),
            }
        )
        kafka_error: type[BaseException] = importlib.import_module("confluent_kafka").KafkaException
        try:
            metadata = client.list_topics(timeout=timeout)
        except kafka_error as exc:
            return False, f"metadata request failed: {exc}"
        brokers = len(metadata.brokers)
        how = "AdminClient.list_topics"
        cluster_id = metadata.cluster_id
    else:
        try:
            brokers, cluster_id = kafka_metadata_raw(host, port, timeout)
        except (OSError, ConnectionError, struct.error) as exc:
            return False, f"metadata request failed: {exc}"
        how = "raw Metadata v4"
    if brokers < 1:
        return False, f"metadata lists no live broker yet ({how})"
    if brokers < min_brokers:
        return False, f"metadata lists {brokers} of {min_brokers} brokers ({how})"
    return True, f"{brokers} broker(s), cluster {cluster_id} ({how})"


def registry_answers(registry_url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Does ``GET {registry_url}/subjects`` return a JSON list?"""
    url = registry_url.rstrip("/") + "/subjects"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status_code = response.status
            payload = json.loads(response.read().decode() or "null")
    except urllib.error.HTTPError as exc:
        return False, f"GET {url} -> HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"GET {url} failed: {exc}"
    if status_code != 200 or not isinstance(payload, list):
        return False, f"GET {url} -> HTTP {status_code}, body is not a JSON list"
    return True, f"{len(payload)} subject(s)"


def _wait_for(probe: Callable[[], tuple[bool, str]], what: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = probe()
        if ok:
            return detail
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not answer within {timeout:.0f} s: {detail}")
        time.sleep(0.5)


def wait_for_kafka(bootstrap: str, timeout: float = 15.0) -> str:
    """Raise :class:`StackError` unless the broker answers metadata within ``timeout``."""
    return _wait_for(lambda: kafka_answers(bootstrap, 5.0), f"Kafka at {bootstrap}", timeout)


def wait_for_registry(registry_url: str, timeout: float = 15.0) -> str:
    """Raise :class:`StackError` unless the registry answers within ``timeout``."""
    return _wait_for(
        lambda: registry_answers(registry_url, 5.0), f"schema registry at {registry_url}", timeout
    )


# --------------------------------------------------------------------------------------
# processes


def _pid_file(state: Path, name: str) -> Path:
    return state / f"{name}.pid"


def _log_file(state: Path, name: str) -> Path:
    return state / f"{name}.log"


def _state_marker(state: Path) -> str:
    return f"-Dconsent.relay.stateDir={state}"


def _read_pid(state: Path, name: str) -> int | None:
    try:
        return int(_pid_file(state, name).read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int, state: Path) -> bool:
    """Is ``pid`` a live (non-zombie) process started for this state directory?"""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    proc = Path("/proc") / str(pid)
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if stat.rpartition(")")[2].split()[0] in {"Z", "X"}:
            return False
        return _state_marker(state).encode() in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_pid(state: Path, name: str) -> int | None:
    pid = _read_pid(state, name)
    if pid is not None and _pid_alive(pid, state):
        return pid
    return None


def _tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return _tail_text(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


def _rotate(path: Path) -> None:
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


_PR_SET_PDEATHSIG: Final = 1
OWNED_CHILD_SIGNAL: Final = signal.SIGTERM
"""What an owned child gets when its owner dies: the JVMs and the relay shut down cleanly."""
# Owned children are forked from this one thread: Linux sends the parent-death signal when
# the *thread* that forked a child ends, so a child started from a short-lived thread would
# die with that thread. An executor's idle worker waits for work until the process exits.
_LIFELINE_LOCK = threading.Lock()
_LIFELINE: dict[int, ThreadPoolExecutor] = {}  # by pid: a forked copy needs its own thread


def _lifeline() -> ThreadPoolExecutor:
    with _LIFELINE_LOCK:
        executor = _LIFELINE.get(os.getpid())
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="owned-children")
            _LIFELINE[os.getpid()] = executor
        return executor


def _die_with(owner: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux for :data:`OWNED_CHILD_SIGNAL` when ``owner`` dies;
    None where there is no ``prctl`` (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, in the parent: loading a library between fork and exec is not safe.
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(OWNED_CHILD_SIGNAL)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != owner:  # the owner died before the request took effect
            os.kill(os.getpid(), OWNED_CHILD_SIGNAL)

    return preexec


def owned_popen(cmd: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(cmd, **options)`` for a child that must not outlive this process.

    Linux sends the child :data:`OWNED_CHILD_SIGNAL` as soon as this process dies, however
    it dies (SIGKILL included, when no ``finally`` or ``atexit`` runs). Safe to call from
    any thread. Elsewhere the child is started plainly and outlives a killed owner.
    """
    preexec = _die_with(os.getpid())
    if preexec is None:
        plain: subprocess.Popen[bytes] = subprocess.Popen(cmd, **options)
        return plain

    def fork() -> subprocess.Popen[bytes]:
        child: subprocess.Popen[bytes] = subprocess.Popen(
            cmd,
            preexec_fn=preexec,  # noqa: PLW1509 - one prctl call, from one thread
            **options,
        )
        return child

    return _lifeline().submit(fork).result()


def _spawn(
    name: str, cmd: list[str], state: Path, cwd: Path, *, owned: bool
) -> subprocess.Popen[bytes]:
    log_path = _log_file(state, name)
    _rotate(log_path)
    with log_path.open("wb") as log_handle:
        log_handle.write(f"# {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        log_handle.flush()
        child = (owned_popen if owned else subprocess.Popen)(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[child.pid] = child
    _pid_file(state, name).write_text(f"{child.pid}\n")
    return child


def _load_state(state: Path) -> dict[str, Any]:
    """Ports (ints) and, for a cluster, each node's ports (lists of ints) as last started."""
    try:
        raw = json.loads((state / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        k: v
        for k, v in raw.items()
        if isinstance(v, int) or (isinstance(v, list) and all(isinstance(i, int) for i in v))
    }


def _save_state(state: Path, recorded: dict[str, Any]) -> None:
    (state / STATE_FILE).write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class _Node:
    """One KRaft node (broker and controller) of the stack."""

    name: str
    node_id: int
    kafka_port: int
    controller_port: int


def node_names(brokers: int) -> list[str]:
    """Component names of the Kafka nodes: ``kafka`` alone, else ``kafka-1`` ... ``kafka-n``."""
    return [KAFKA] if brokers == 1 else [f"{KAFKA}-{n}" for n in range(1, brokers + 1)]


def _nodes(kafka_ports: Sequence[int], controller_ports: Sequence[int]) -> list[_Node]:
    names = node_names(len(kafka_ports))
    return [
        _Node(name, n, k, c)
        for n, (name, k, c) in enumerate(zip(names, kafka_ports, controller_ports, strict=True), 1)
    ]


def _recorded_brokers(recorded: dict[str, Any]) -> int:
    brokers = recorded.get("brokers", DEFAULT_BROKERS)
    return brokers if isinstance(brokers, int) and brokers >= 1 else DEFAULT_BROKERS


def _kafka_components(state: Path) -> list[str]:
    """The Kafka nodes recorded for ``state``, and any other with a pid file there."""
    names = node_names(_recorded_brokers(_load_state(state)))
    for pid_file in sorted(state.glob(f"{KAFKA}*.pid")):
        name = pid_file.name.removesuffix(".pid")
        if name not in names and re.fullmatch(rf"{KAFKA}(-\d+)?", name):
            names.append(name)
    return names


def _new_cluster_id() -> str:
    # Kafka's Uuid.randomUuid(): URL-safe base64 of 16 random bytes without padding,
    # never starting with '-' (the tools would read it as an option).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


_ACTIVE_CONTROLLER = re.compile(
    r"\[QuorumController id=(\d+)\] Becoming the active controller at epoch (\d+)"
)


def active_controller(state_dir: Path | str | None = None) -> int | None:
    """The node id of a cluster's active controller, as its nodes' logs last said (the
    newest epoch wins); None before one was elected."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    newest: tuple[int, int] | None = None
    for log_path in state.glob(f"{KAFKA}*.log"):
        for match in _ACTIVE_CONTROLLER.finditer(log_path.read_text(errors="replace")):
            epoch, node = int(match.group(2)), int(match.group(1))
            if newest is None or epoch > newest[0]:
                newest = (epoch, node)
    return None if newest is None else newest[1]


def _data_dir(state: Path, name: str) -> Path:
    return state / name / "data"


def _properties_file(state: Path, name: str) -> Path:
    # A single broker keeps the path it always had.
    return state / "server.properties" if name == KAFKA else state / name / "server.properties"


def _cluster_id_file(state: Path, name: str) -> Path:
    # Every node of a cluster formats its storage with the same cluster id.
    return state / KAFKA / "cluster.id" if name == KAFKA else state / "cluster.id"


def server_properties(
    state: Path,
    kafka_port: int,
    controller_port: int,
    *,
    cluster: Sequence[_Node] = (),
    node_id: int = 1,
    sasl: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Broker settings for the single-node development cluster, or for node ``node_id``
    of ``cluster`` (every node a broker and a voter of the controller quorum); with
    ``sasl`` (every principal's password, :func:`sasl_credentials`) clients authenticate
    with SCRAM and are authorised by ACLs (:func:`sasl_properties`)."""
    name = KAFKA if not cluster else node_names(len(cluster))[node_id - 1]
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in cluster)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{kafka_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(_data_dir(state, name)),
        # Topics are auto-created on first use (left on deliberately), with 3 partitions.
        "auto.create.topics.enable": "true",
        "num.partitions": "3",
        # One broker: every internal topic must make do with one replica.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests and the demo join consumer groups constantly; don't wait 3 s each time.
        "group.initial.rebalance.delay.ms": "0",
        # Compacted topics (consent state) need the cleaner; 32 MiB of dedupe buffer is
        # plenty here (the 128 MiB default is wasted memory on a laptop or CI box).
        "log.cleaner.enable": "true",
        "log.cleaner.dedupe.buffer.size": "33554432",
    }
    if len(cluster) > 1:
        props.update(_cluster_properties(len(cluster)))
    if sasl is not None:
        props.update(sasl_properties(kafka_port, controller_port, sasl[BROKER_PRINCIPAL]))
    return props


# --------------------------------------------------------------------------------------
# SASL/SCRAM and ACLs (``up --sasl``)


def sasl_properties(kafka_port: int, controller_port: int, broker_password: str) -> dict[str, str]:
    """What ``--sasl`` changes in a node's settings.

    The client listener becomes SASL_PLAINTEXT with SCRAM-SHA-512 only; the nodes
    replicate over it too, as ``User:broker``, so no second broker port exists that a
    client could use without a password.  The controller listener stays PLAINTEXT: KRaft
    cannot check SCRAM there (the credentials live in the metadata the controllers
    serve), and a node asks the controllers for that metadata before any ACL is loaded,
    so its principal there, ``User:ANONYMOUS``, must be a super user.  That is acceptable
    only because the port listens on 127.0.0.1 of a development machine; a real cluster
    puts its controllers on SASL/PLAIN, GSSAPI or mutual TLS.  No TLS: passwords never
    cross the wire under SCRAM, but the records do, in clear, on the loopback interface.
    """
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_PRINCIPAL}" password="{broker_password}";'
    )
    listener = SASL_LISTENER.lower()
    return {
        "listeners": f"{SASL_LISTENER}://{HOST}:{kafka_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"{SASL_LISTENER}://{HOST}:{kafka_port}",
        "inter.broker.listener.name": SASL_LISTENER,
        "listener.security.protocol.map": f"{SASL_LISTENER}:{SASL_LISTENER},CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        f"listener.name.{listener}.{SCRAM.lower()}.sasl.jaas.config": jaas,
        "authorizer.class.name": STANDARD_AUTHORIZER,
        "super.users": f"User:{BROKER_PRINCIPAL};User:{OPERATOR};User:ANONYMOUS",
        # Anything no ACL allows is denied (Kafka's default, spelt out).
        "allow.everyone.if.no.acl.found": "false",
    }


def _credentials_path(state: Path) -> Path:
    return state / SASL_DIR / CREDENTIALS_FILE


def sasl_credentials(state: Path, *, create: bool = False) -> dict[str, str]:
    """Every principal's password (the roles' and the brokers'), kept in
    ``<state>/sasl/credentials.json`` (mode 0600 in a 0700 directory); generated on the
    first ``up --sasl`` of a state directory (``create``), never printed or logged."""
    path = _credentials_path(state)
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        stored = None
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read the SASL credentials in {path}: {exc}") from exc
    wanted = [BROKER_PRINCIPAL, *ROLES]
    if isinstance(stored, dict) and all(isinstance(stored.get(name), str) for name in wanted):
        return {name: stored[name] for name in wanted}
    if stored is not None or not create:
        raise StackError(
            f"no SASL credentials for every role in {path}: this state directory was not "
            "started with --sasl; run `down` and use a fresh --state-dir"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    passwords = {name: secrets.token_urlsafe(24) for name in wanted}
    # Created 0600 before anything is written: never readable by others, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(passwords, out, indent=2, sort_keys=True)
    return passwords


def _scram_arguments(credentials: Mapping[str, str]) -> list[str]:
    """``kafka-storage format`` arguments that put every principal's SCRAM credential
    into the cluster's first metadata: it exists before any listener opens, so neither
    the brokers (replicating as ``User:broker``) nor the operator ever face a window
    without one, and no admin connection is needed to create them."""
    arguments: list[str] = []
    for name, password in credentials.items():
        arguments += ["--add-scram", f"{SCRAM}=[name={name},password={password}]"]
    return arguments


def client_settings(state: Path, role: str) -> dict[str, str]:
    """librdkafka settings of ``role`` on the SASL stack of ``state``."""
    password = sasl_credentials(state).get(role)
    if role not in ROLES or password is None:
        raise StackError(f"no such role {role!r} (roles: {', '.join(ROLES)})")
    return {
        "security.protocol": SASL_LISTENER,
        "sasl.mechanism": SCRAM,
        "sasl.username": role,
        "sasl.password": password,
    }


def load_acls() -> Any:
    """``deploy/acls.py``: the ACLs are derived from the relay's own topic names and
    settings classes, so (unlike the rest of this file) it needs the project importable,
    from the repository with its venv."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("deploy.acls")


def grant_acls(
    state_dir: Path | str | None = None, topic_prefix: str = "", log: Log = _log_stderr
) -> int:
    """Create the ACLs of every role (``deploy/acls.py``) for the relay whose topics
    start with ``topic_prefix``, as the operator; the number of bindings.  Repeating it
    changes nothing; each prefix (a tenant, a test) gets its own."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    recorded = _load_state(state)
    if not recorded.get("sasl"):
        raise StackError(f"{state} was not started with --sasl: there are no ACLs to grant")
    acls = load_acls()
    topics = importlib.import_module("schemas.topics").Topics(topic_prefix)
    ports = recorded.get("kafka_ports") or [recorded["kafka_port"]]
    config = {
        "bootstrap.servers": ",".join(f"{HOST}:{port}" for port in ports),
        **client_settings(state, OPERATOR),
    }
    kafka_error = importlib.import_module("confluent_kafka").KafkaException
    try:
        count: int = acls.apply(config, acls.grants(topics))
    except kafka_error as exc:
        raise StackError(f"creating the ACLs failed: {exc}") from exc
    log(f"acls: {count} bindings for topic prefix {topic_prefix!r} (deploy/acls.py)")
    return count


def credentials_env(state_dir: Path | str | None, role: str) -> dict[str, str]:
    """The ``KAFKA_*`` settings a process of ``role`` needs on the SASL stack of
    ``state_dir`` (password included: for that process's environment only)."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    settings = client_settings(state, role)
    return {
        "KAFKA_SECURITY_PROTOCOL": settings["security.protocol"],
        "KAFKA_SASL_MECHANISM": settings["sasl.mechanism"],
        "KAFKA_SASL_USERNAME": settings["sasl.username"],
        "KAFKA_SASL_PASSWORD": settings["sasl.password"],
    }


def _cluster_properties(brokers: int) -> dict[str, str]:
    replicas = str(min(brokers, CLUSTER_REPLICAS))
    in_sync = str(min(brokers - 1, CLUSTER_MIN_INSYNC))
    return {
        # Any one node may be lost: three copies, a write needs two.
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        # A killed node's partitions get a new leader (and it leaves their ISRs) once the
        # controller fences it for missing heartbeats. That must come well within the
        # relay's consumer sessions (6 s): a consumer whose group coordinator was on the
        # lost node stays in its group only if the coordinator moves before its session
        # runs out; with 6 s here both sinks timed out, left and rejoined (8.5 s more).
        # Kafka's 9 s (beats every 2 s) would be worse; beats every 0.5 s leave six
        # chances before a slow but live node is fenced.
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        # When the lost node was the active controller, the others elect a new one first
        # (Kafka: a follower waits 2 s for the leader, then up to 1 s more), and the new
        # controller gives every broker a full session before fencing any: halved here.
        "controller.quorum.fetch.timeout.ms": "1000",
        "controller.quorum.election.timeout.ms": "500",
    }


def _write_properties(path: Path, props: dict[str, str]) -> None:
    lines = ["# Written by deploy/local.py; rewritten on every `up`."]
    lines += [f"{key}={value}" for key, value in props.items()]
    # Owner-only from the start: with --sasl the file holds the brokers' password.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(lines) + "\n")


def _kafka_jvm(state: Path) -> list[str]:
    return [
        _java(),
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
        _state_marker(state),
    ]


def _prepare_kafka(
    state: Path,
    libs: Path,
    node: _Node,
    cluster: Sequence[_Node],
    sasl: Mapping[str, str] | None = None,
) -> Path:
    data = _data_dir(state, node.name)
    data.mkdir(parents=True, exist_ok=True)
    props_path = _properties_file(state, node.name)
    props = server_properties(
        state,
        node.kafka_port,
        node.controller_port,
        cluster=cluster if len(cluster) > 1 else (),
        node_id=node.node_id,
        sasl=sasl,
    )
    _write_properties(props_path, props)
    id_file = _cluster_id_file(state, node.name)
    if not id_file.is_file():
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(_new_cluster_id() + "\n")
    if not (data / "meta.properties").is_file():
        cmd = [
            *_kafka_jvm(state),
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            id_file.read_text().strip(),
            "-c",
            str(props_path),
            "--ignore-formatted",
            *_scram_arguments(sasl or {}),
        ]
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed (exit {proc.returncode})",
                _tail_text(proc.stdout + proc.stderr),
            )
    return props_path


def _kafka_command(state: Path, libs: Path, props: Path) -> list[str]:
    return [*_kafka_jvm(state), "-cp", f"{libs}/*", "kafka.Kafka", str(props)]


def _registry_command(state: Path, jar: Path, port: int) -> list[str]:
    db = state / "registry" / "registry"
    return [
        _java(),
        "-Xms64m",
        "-Xmx512m",
        "-Djava.awt.headless=true",
        f"-Dvertx.cacheDirBase={state / 'registry' / 'vertx-cache'}",
        f"-Dquarkus.http.host={HOST}",
        f"-Dquarkus.http.port={port}",
        # Persistent H2 file instead of the default in-memory database.
        f"-Dapicurio.datasource.url=jdbc:h2:file:{db};DB_CLOSE_ON_EXIT=FALSE",
        "-Dapicurio.datasource.jdbc.initial-size=2",
        "-Dapicurio.datasource.jdbc.min-size=2",
        "-Dapicurio.datasource.jdbc.max-size=20",
        # Let tests and developers delete subjects / versions through the ccompat API.
        "-Dapicurio.rest.deletion.artifact.enabled=true",
        "-Dapicurio.rest.deletion.artifact-version.enabled=true",
        "-Dapicurio.rest.deletion.group.enabled=true",
        _state_marker(state),
        "-jar",
        str(jar),
    ]


@dataclass
class _Pending:
    name: str
    pid: int
    log_path: Path
    timeout: float
    probe: Callable[[], tuple[bool, str]]
    started: float = field(default_factory=time.monotonic)
    ready_after: float | None = None
    detail: str = ""


def _await_ready(pending: list[_Pending], state: Path) -> None:
    while True:
        waiting = [p for p in pending if p.ready_after is None]
        if not waiting:
            return
        for item in waiting:
            elapsed = time.monotonic() - item.started
            if not _pid_alive(item.pid, state):
                child = _CHILDREN.get(item.pid)
                code = child.returncode if child is not None else None
                raise StackError(
                    f"{item.name} (pid {item.pid}) exited during start-up"
                    + (f" with code {code}" if code is not None else ""),
                    _tail_file(item.log_path),
                    item.log_path,
                )
            ok, detail = item.probe()
            item.detail = detail
            if ok:
                item.ready_after = time.monotonic() - item.started
            elif elapsed > item.timeout:
                raise StackError(
                    f"{item.name} did not answer within {item.timeout:.0f} s ({detail})",
                    _tail_file(item.log_path),
                    item.log_path,
                )
        time.sleep(0.25)


def _write_env(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


PortsArg = int | Sequence[int] | None


def _node_ports(
    key: str, wanted: PortsArg, recorded: dict[str, Any], default: int, brokers: int
) -> list[int]:
    """Each node's port for ``key`` (``kafka_port`` or ``controller_port``)."""
    if wanted is None:
        listed = recorded.get(f"{key}s")
        if isinstance(listed, list) and len(listed) == brokers:
            return [int(p) for p in listed]
        first = recorded.get(key)
        wanted = first if isinstance(first, int) and brokers == 1 else default
    if isinstance(wanted, int):
        return [wanted + PORT_STRIDE * n for n in range(brokers)]
    ports = [int(p) for p in wanted]
    if len(ports) != brokers:
        raise StackError(
            f"{len(ports)} {key.replace('_', ' ')}s given for {brokers} broker(s): "
            "give one (the others follow it) or one per broker"
        )
    return ports


def start(
    state_dir: Path | str | None = None,
    kafka_port: PortsArg = None,
    controller_port: PortsArg = None,
    registry_port: int | None = None,
    env_file: Path | str | None = None,
    *,
    brokers: int | None = None,
    sasl: bool | None = None,
    topic_prefix: str = "",
    kafka_timeout: float | None = None,
    registry_timeout: float = REGISTRY_START_TIMEOUT_S,
    owned: bool = False,
    log: Log = _log_stderr,
) -> Endpoints:
    """Start (or reuse) broker(s) and registry for ``state_dir``; return their endpoints.

    A component already running from the same state directory is reused; a cluster that
    lost a node gets it started again.  ``brokers`` (default: as last started from
    ``state_dir``, else 1) Kafka nodes; ports default to the ones recorded in the state
    directory, else 19092 / 19093 / 18081, a cluster's further nodes 2 above the one
    before (or give a port per node).  ``sasl`` (default: as last started, else off):
    clients authenticate with SCRAM-SHA-512 as one of :data:`ROLES` and only the
    operator is a super user (:func:`sasl_properties`); a state directory keeps the
    choice it was first formatted with, and gets the ACLs of the relay whose topics start
    with ``topic_prefix`` (:func:`grant_acls`; call it again for another prefix).  On
    failure the processes this call started are stopped and :class:`StackError` (with the
    log tail) is raised.

    With ``owned`` the processes this call starts stop when the calling process dies,
    however it dies (see :func:`owned_popen`): a stack for tests or a benchmark.  Without,
    they run on until :func:`stop` (``up``).  A reused component keeps how it was started.
    """
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    recorded = _load_state(state)
    running_nodes = {n: _running_pid(state, n) for n in _kafka_components(state)}
    live = sorted(n for n, pid in running_nodes.items() if pid is not None)
    count = brokers or _recorded_brokers(recorded)
    if count < 1:
        raise StackError(f"--brokers must be at least 1, not {count}")
    if live and sorted(set(live) - set(node_names(count))):
        raise StackError(
            f"{', '.join(live)} already run(s) from {state}, not {count} broker(s): "
            "run `down` first or use another --state-dir"
        )
    names = node_names(count)
    running = {name: _running_pid(state, name) for name in [*names, REGISTRY]}
    if live:  # a cluster's nodes keep the ports they run on
        for key in ("kafka_port", "controller_port"):
            wanted = requested = kafka_port if key == "kafka_port" else controller_port
            ports_now = _node_ports(key, None, recorded, 0, count)
            if requested is not None:
                wanted = _node_ports(key, requested, {}, 0, count)
                if wanted != ports_now:
                    raise StackError(
                        f"{KAFKA} already runs from {state} with {key.replace('_', ' ')}(s) "
                        f"{ports_now}, not {wanted}: run `down` first or use another --state-dir"
                    )
    kafka_ports = _node_ports("kafka_port", kafka_port, recorded, DEFAULT_KAFKA_PORT, count)
    controller_ports = _node_ports(
        "controller_port", controller_port, recorded, DEFAULT_CONTROLLER_PORT, count
    )
    if running[REGISTRY] is not None and "registry_port" in recorded:
        if registry_port is not None and registry_port != recorded["registry_port"]:
            raise StackError(
                f"{REGISTRY} already runs from {state} with registry port "
                f"{recorded['registry_port']}, not {registry_port}: run `down` first or use "
                "another --state-dir"
            )
        chosen_registry = int(recorded["registry_port"])
    else:
        chosen_registry = registry_port or recorded.get("registry_port") or DEFAULT_REGISTRY_PORT
    every_port = [*kafka_ports, *controller_ports, chosen_registry]
    if len(set(every_port)) != len(every_port):
        raise StackError(
            f"ports must differ: kafka {kafka_ports}, controller {controller_ports}, "
            f"registry {chosen_registry}"
        )
    cluster = _nodes(kafka_ports, controller_ports)
    recorded_sasl = bool(recorded.get("sasl", 0))
    use_sasl = recorded_sasl if sasl is None else sasl
    formatted = any((_data_dir(state, n) / "meta.properties").is_file() for n in names)
    if use_sasl != recorded_sasl and (formatted or live):
        raise StackError(
            f"{state} was formatted {'with' if recorded_sasl else 'without'} --sasl: "
            "run `down` and use a fresh --state-dir"
        )
    if use_sasl and _confluent_admin() is None:
        raise StackError("--sasl needs confluent-kafka: run with the project's venv python")
    credentials = sasl_credentials(state, create=True) if use_sasl else None

    to_start = [name for name in [*names, REGISTRY] if running[name] is None]
    for name in [*names, REGISTRY]:
        pid = running[name]
        if pid is not None:
            log(f"{name}: already running from {state} (pid {pid}); reusing it")
    wanted_free = [(REGISTRY, "registry port", chosen_registry)]
    for node in cluster:
        wanted_free += [(node.name, "kafka port", node.kafka_port)]
        wanted_free += [(node.name, "controller port", node.controller_port)]
    for name, what, port in wanted_free:
        if name in to_start and not port_free(port):
            raise StackError(
                f"port {HOST}:{port} ({what} of {name}) is in use by a process that "
                f"was not started from {state}; stop it or choose another port"
            )

    artifacts = fetch(log=log) if to_start else None
    _save_state(
        state,
        {
            "brokers": count,
            "kafka_port": kafka_ports[0],
            "controller_port": controller_ports[0],
            "registry_port": chosen_registry,
            "kafka_ports": kafka_ports,
            "controller_ports": controller_ports,
            "sasl": int(use_sasl),
        },
    )
    if kafka_timeout is None:
        kafka_timeout = KAFKA_START_TIMEOUT_S if count == 1 else CLUSTER_START_TIMEOUT_S
    spawned: list[int] = []
    try:
        endpoints = _spawn_and_wait(
            state,
            cluster=cluster,
            registry_port=chosen_registry,
            to_start=to_start,
            running=running,
            artifacts=artifacts,
            spawned=spawned,
            timeouts=(kafka_timeout, registry_timeout),
            owned=owned,
            log=log,
            sasl=credentials,
        )
        if use_sasl:
            grant_acls(state, topic_prefix, log)
    except BaseException:
        if spawned:
            started = [n for n in [*names, REGISTRY] if _read_pid(state, n) in spawned]
            _terminate(state, started, log)
        raise
    _write_env(state / ENV_FILE, endpoints.env_lines())
    if env_file is not None:
        _write_env(Path(env_file), endpoints.env_lines())
    return endpoints


def _tie(owned: bool) -> str:
    return f" (stops when pid {os.getpid()} exits)" if owned else ""


def _spawn_and_wait(
    state: Path,
    *,
    cluster: Sequence[_Node],
    registry_port: int,
    to_start: Sequence[str],
    running: dict[str, int | None],
    artifacts: Artifacts | None,
    spawned: list[int],
    timeouts: tuple[float, float],
    owned: bool,
    log: Log,
    sasl: Mapping[str, str] | None = None,
) -> Endpoints:
    """Start the components in ``to_start`` (recording pids in ``spawned``); wait for all."""
    kafka_timeout, registry_timeout = timeouts
    bootstrap = ",".join(f"{HOST}:{node.kafka_port}" for node in cluster)
    registry_url = f"http://{HOST}:{registry_port}{CCOMPAT_PATH}"
    pids = dict(running)
    for node in cluster:
        if node.name not in to_start:
            continue
        assert artifacts is not None
        props = _prepare_kafka(state, artifacts.kafka_libs, node, cluster, sasl)
        cmd = _kafka_command(state, artifacts.kafka_libs, props)
        child = _spawn(node.name, cmd, state, state, owned=owned)
        spawned.append(child.pid)
        pids[node.name] = child.pid
        log(f"{node.name}: started pid {child.pid}{_tie(owned)}, log {_log_file(state, node.name)}")
    if REGISTRY in to_start:
        assert artifacts is not None
        workdir = state / "registry"
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = _registry_command(state, artifacts.registry_jar, registry_port)
        child = _spawn(REGISTRY, cmd, state, workdir, owned=owned)
        spawned.append(child.pid)
        pids[REGISTRY] = child.pid
        log(f"registry: started pid {child.pid}{_tie(owned)}, log {_log_file(state, REGISTRY)}")
    probe_as = client_settings(state, OPERATOR) if sasl is not None else None
    waits: list[_Pending] = []
    for node in cluster:
        pid = pids[node.name]
        assert pid is not None
        address = f"{HOST}:{node.kafka_port}"
        waits.append(
            _Pending(
                node.name,
                pid,
                _log_file(state, node.name),
                kafka_timeout,
                lambda address=address: kafka_answers(address, 3.0, len(cluster), probe_as),  # type: ignore[misc]
            )
        )
    registry_pid = pids[REGISTRY]
    assert registry_pid is not None
    registry_wait = _Pending(
        REGISTRY,
        registry_pid,
        _log_file(state, REGISTRY),
        registry_timeout,
        lambda: registry_answers(registry_url, 3.0),
    )
    _await_ready([*waits, registry_wait], state)
    for item in [*waits, registry_wait]:
        verb = "started and answered" if item.name in to_start else "answered"
        log(f"{item.name}: {verb} in {item.ready_after:.1f} s: {item.detail}")
    kafka_ready = max(w.ready_after or 0.0 for w in waits)
    assert registry_wait.ready_after is not None
    return Endpoints(
        bootstrap=bootstrap,
        registry_url=registry_url,
        state_dir=state,
        kafka_port=cluster[0].kafka_port,
        controller_port=cluster[0].controller_port,
        registry_port=registry_port,
        kafka_pid=waits[0].pid,
        registry_pid=registry_pid,
        reused=not to_start,
        kafka_ready_s=kafka_ready,
        registry_ready_s=registry_wait.ready_after,
        brokers=len(cluster),
        kafka_ports=tuple(node.kafka_port for node in cluster),
        controller_ports=tuple(node.controller_port for node in cluster),
        kafka_pids=tuple(w.pid for w in waits),
        sasl=sasl is not None,
    )


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _terminate(
    state: Path, names: Sequence[str], log: Log, timeout: float = STOP_TIMEOUT_S
) -> None:
    alive: dict[str, int] = {}
    for name in names:
        pid = _read_pid(state, name)
        if pid is not None and _pid_alive(pid, state):
            alive[name] = pid
            _signal(pid, signal.SIGTERM)
            log(f"{name}: sent SIGTERM to pid {pid}")
    began = time.monotonic()
    deadline = began + timeout
    while alive and time.monotonic() < deadline:
        for name, pid in list(alive.items()):
            if not _pid_alive(pid, state):
                log(f"{name}: stopped after {time.monotonic() - began:.1f} s")
                del alive[name]
        if alive:
            time.sleep(0.2)
    for name, pid in alive.items():
        log(f"{name}: still running after {timeout:.0f} s; sending SIGKILL to pid {pid}")
        _signal(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 10
    while any(_pid_alive(pid, state) for pid in alive.values()):
        if time.monotonic() > kill_deadline:
            raise StackError(f"could not stop {sorted(alive)}")
        time.sleep(0.1)
    for name in names:
        pid = _read_pid(state, name)
        if pid is not None:
            child = _CHILDREN.pop(pid, None)
            if child is not None:
                child.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            _pid_file(state, name).unlink()


def stop(
    state_dir: Path | str | None = None,
    timeout: float = STOP_TIMEOUT_S,
    log: Log = _log_stderr,
) -> None:
    """SIGTERM broker(s) and registry of ``state_dir``; SIGKILL what is left after ``timeout``."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    components = [*_kafka_components(state), REGISTRY]
    if not any(_pid_file(state, name).exists() for name in components):
        log(f"nothing running from {state}")
        return
    _terminate(state, components, log, timeout)


def status(state_dir: Path | str | None = None) -> list[ComponentStatus]:
    """What runs from ``state_dir`` (each Kafka node, the registry) and whether it answers."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    recorded = _load_state(state)
    names = _kafka_components(state)
    kafka_ports = recorded.get("kafka_ports") or [recorded.get("kafka_port")]
    ports: dict[str, int | None] = dict(zip(names, kafka_ports, strict=False))
    ports[REGISTRY] = recorded.get("registry_port")
    probe_as = client_settings(state, OPERATOR) if recorded.get("sasl") else None
    result: list[ComponentStatus] = []
    for name in [*names, REGISTRY]:
        pid = _read_pid(state, name)
        running = pid is not None and _pid_alive(pid, state)
        port = ports.get(name)
        answers, detail = False, "not running"
        if running and port is not None:
            if name != REGISTRY:
                answers, detail = kafka_answers(f"{HOST}:{port}", 3.0, as_client=probe_as)
            else:
                answers, detail = registry_answers(f"http://{HOST}:{port}{CCOMPAT_PATH}")
        elif pid is not None:
            detail = f"stale pid file (pid {pid} is gone)"
        result.append(ComponentStatus(name, pid, running, port, answers, detail))
    return result


# --------------------------------------------------------------------------------------
# command line


def _print_error(exc: StackError, stream: TextIO = sys.stderr) -> None:
    print(f"local.py: error: {exc.message}", file=stream)
    if exc.log_tail:
        where = f" of {exc.log_path}" if exc.log_path else ""
        print(f"--- last {LOG_TAIL_LINES} lines{where} ---", file=stream)
        print(exc.log_tail, file=stream)
        print("---", file=stream)


def _ports_arg(text: str) -> int | list[int]:
    try:
        ports = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port or a list N,N,N") from exc
    return ports[0] if len(ports) == 1 else ports


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy/local.py",
        description="Local Kafka broker + Apicurio schema registry for Consent Relay.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download the jars into the cache (idempotent)")

    def with_state(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE_DIR,
            help=f"config, data, logs and pid files (default: {DEFAULT_STATE_DIR})",
        )
        return sub

    up = with_state(commands.add_parser("up", help="start broker and registry, wait for them"))
    up.add_argument(
        "--brokers",
        type=int,
        help="Kafka nodes, each broker and controller (default: as last started, else 1; "
        "3 survives the loss of any one)",
    )
    up.add_argument(
        "--kafka-port",
        type=_ports_arg,
        help=f"default {DEFAULT_KAFKA_PORT}; a cluster's nodes +2 each, or N,N,N",
    )
    up.add_argument(
        "--controller-port",
        type=_ports_arg,
        help=f"default {DEFAULT_CONTROLLER_PORT}; a cluster's nodes +2 each, or N,N,N",
    )
    up.add_argument("--registry-port", type=int, help=f"default {DEFAULT_REGISTRY_PORT}")
    up.add_argument("--env-file", type=Path, help="also write the KEY=value lines here")
    up.add_argument(
        "--sasl",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clients authenticate with SASL/SCRAM-SHA-512, one principal per role, and "
        "ACLs apply (default: as the state directory was formatted, else off); "
        "credentials: the `credentials` command",
    )
    up.add_argument(
        "--topic-prefix",
        default=os.environ.get("CONSENT_RELAY_TOPIC_PREFIX", ""),
        help="with --sasl: the ACLs are for the relay whose topics start with this "
        "(default: $CONSENT_RELAY_TOPIC_PREFIX, else none)",
    )
    creds = with_state(
        commands.add_parser(
            "credentials",
            help="print a role's KAFKA_SECURITY_PROTOCOL/KAFKA_SASL_* lines (password "
            "included) for a --sasl stack",
        )
    )
    creds.add_argument("role", choices=ROLES)
    with_state(commands.add_parser("down", help="stop broker and registry"))
    with_state(commands.add_parser("status", help="show what runs and whether it answers"))
    return parser


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{count} {noun}s"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            artifacts = fetch()
            print(
                f"local.py: fetch done: {_mb(artifacts.downloaded_bytes)} downloaded "
                f"in {artifacts.seconds:.1f} s (cache: {cache_dir()})",
                file=sys.stderr,
            )
        elif args.command == "up":
            began = time.monotonic()
            endpoints = start(
                args.state_dir,
                args.kafka_port,
                args.controller_port,
                args.registry_port,
                args.env_file,
                brokers=args.brokers,
                sasl=args.sasl,
                topic_prefix=args.topic_prefix,
            )
            _log_stderr(
                ("reused running stack" if endpoints.reused else "stack up")
                + f" in {time.monotonic() - began:.1f} s "
                f"({_plural(endpoints.brokers, 'kafka node')} {endpoints.kafka_ready_s:.1f} s, "
                f"registry {endpoints.registry_ready_s:.1f} s); "
                f"stop with: python3 deploy/local.py down --state-dir {endpoints.state_dir}"
            )
            print("\n".join(endpoints.env_lines()), flush=True)
        elif args.command == "credentials":
            # Only on request, only to stdout: for `eval "$(... credentials gate)"`.
            env = credentials_env(args.state_dir, args.role)
            print("\n".join(f"{key}={value}" for key, value in env.items()), flush=True)
        elif args.command == "down":
            stop(args.state_dir)
        elif args.command == "status":
            report = status(args.state_dir)
            for item in report:
                state = "running" if item.running else "stopped"
                pid = f" pid {item.pid}" if item.pid is not None else ""
                port = f" port {item.port}" if item.port is not None else ""
                answers = "answers" if item.answers else "does not answer"
                print(f"{item.name}: {state}{pid}{port}, {answers}: {item.detail}")
            return 0 if all(item.answers for item in report) else 1
    except StackError as exc:
        _print_error(exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
