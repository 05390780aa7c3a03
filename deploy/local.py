#!/usr/bin/env python3
"""Run a real Apache Kafka broker and schema registry on this machine, without Docker.

Used by developers (``make stack``), by the test suite (``tests/conftest.py`` imports this
file by path), by the demo and by CI.  Standard library only, so it works with a plain
``python3`` before the project's virtualenv exists.

Pieces:

* Apache Kafka 4.1.1 in KRaft mode, one process acting as broker and controller, listening
  on 127.0.0.1 only.  Jars come from Maven Central through ``deploy/kafka/pom.xml``; logging
  is configured by ``deploy/kafka/log4j2.properties``.
* Apicurio Registry 3.0.9 (``deploy/registry/pom.xml``), whose Confluent-compatible API at
  ``/apis/ccompat/v7`` is what ``confluent_kafka.schema_registry`` talks to.  Its storage is
  an H2 database file in the state directory, so schema ids survive a restart together with
  the Kafka log that refers to them.

Downloads go to ``$CONSENT_RELAY_CACHE`` (default ``~/.cache/consent-relay``), outside the
repository; everything a running stack writes (config, data, logs, pid files) goes to the
state directory (default ``var/local`` in the repository, which git ignores).

Commands::

    python3 deploy/local.py fetch
    python3 deploy/local.py up [--state-dir DIR] [--kafka-port N] [--controller-port N]
                               [--registry-port N] [--env-file FILE]
    python3 deploy/local.py status [--state-dir DIR]
    python3 deploy/local.py down [--state-dir DIR]

``up`` prints ``KAFKA_BOOTSTRAP=...`` and ``SCHEMA_REGISTRY_URL=...`` on stdout (all other
messages go to stderr), so ``eval "$(python3 deploy/local.py up)"`` works.

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
from collections.abc import Callable, Iterator, Sequence
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
REGISTRY_START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 30.0
LOG_TAIL_LINES: Final = 60

MARKER_FILE: Final = ".complete"
STATE_FILE: Final = "stack.json"
ENV_FILE: Final = "endpoints.env"
KAFKA: Final = "kafka"
REGISTRY: Final = "registry"
COMPONENTS: Final = (KAFKA, REGISTRY)

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

    def env_lines(self) -> list[str]:
        return [f"KAFKA_BOOTSTRAP={self.bootstrap}", f"SCHEMA_REGISTRY_URL={self.registry_url}"]


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


def kafka_answers(bootstrap: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Does a broker at ``bootstrap`` answer a metadata request listing at least one broker?

    Uses ``confluent_kafka.admin.AdminClient.list_topics`` when confluent-kafka is
    importable, else :func:`kafka_metadata_raw`.
    """
    host, port = _split_hostport(bootstrap)
    if not port_open(host, port, timeout=min(timeout, 2.0)):
        return False, f"nothing listens on {host}:{port}"
    admin_module = _confluent_admin()
    if admin_module is not None:
        client = admin_module.AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "socket.connection.setup.timeout.ms": int(timeout * 1000),
                "log_level": 2,
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


def _load_state(state: Path) -> dict[str, int]:
    try:
        raw = json.loads((state / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: int(v) for k, v in raw.items() if isinstance(v, int)}


def _save_state(state: Path, ports: dict[str, int]) -> None:
    (state / STATE_FILE).write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")


def _new_cluster_id() -> str:
    # Kafka's Uuid.randomUuid(): URL-safe base64 of 16 random bytes without padding,
    # never starting with '-' (the tools would read it as an option).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(state: Path, kafka_port: int, controller_port: int) -> dict[str, str]:
    """Broker settings for the single-node development cluster."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{kafka_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(state / "kafka" / "data"),
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


def _write_properties(path: Path, props: dict[str, str]) -> None:
    lines = ["# Written by deploy/local.py; rewritten on every `up`."]
    lines += [f"{key}={value}" for key, value in props.items()]
    path.write_text("\n".join(lines) + "\n")


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


def _prepare_kafka(state: Path, libs: Path, kafka_port: int, controller_port: int) -> Path:
    kafka_dir = state / "kafka"
    (kafka_dir / "data").mkdir(parents=True, exist_ok=True)
    props_path = state / "server.properties"
    _write_properties(props_path, server_properties(state, kafka_port, controller_port))
    id_file = kafka_dir / "cluster.id"
    if not id_file.is_file():
        id_file.write_text(_new_cluster_id() + "\n")
    if not (kafka_dir / "data" / "meta.properties").is_file():
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


def _endpoint_urls(ports: dict[str, int]) -> tuple[str, str]:
    return (
        f"{HOST}:{ports['kafka_port']}",
        f"http://{HOST}:{ports['registry_port']}{CCOMPAT_PATH}",
    )


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


def start(
    state_dir: Path | str | None = None,
    kafka_port: int | None = None,
    controller_port: int | None = None,
    registry_port: int | None = None,
    env_file: Path | str | None = None,
    *,
    kafka_timeout: float = KAFKA_START_TIMEOUT_S,
    registry_timeout: float = REGISTRY_START_TIMEOUT_S,
    owned: bool = False,
    log: Log = _log_stderr,
) -> Endpoints:
    """Start (or reuse) broker and registry for ``state_dir``; return their endpoints.

    A component already running from the same state directory is reused.  Ports default
    to the ones recorded in the state directory, else 19092 / 19093 / 18081.  On failure
    the processes this call started are stopped and :class:`StackError` (with the log tail)
    is raised.

    With ``owned`` the processes this call starts stop when the calling process dies,
    however it dies (see :func:`owned_popen`): a stack for tests or a benchmark.  Without,
    they run on until :func:`stop` (``up``).  A reused component keeps how it was started.
    """
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    recorded = _load_state(state)
    running = {name: _running_pid(state, name) for name in COMPONENTS}
    requested = {
        "kafka_port": kafka_port,
        "controller_port": controller_port,
        "registry_port": registry_port,
    }
    defaults = {
        "kafka_port": DEFAULT_KAFKA_PORT,
        "controller_port": DEFAULT_CONTROLLER_PORT,
        "registry_port": DEFAULT_REGISTRY_PORT,
    }
    owner = {"kafka_port": KAFKA, "controller_port": KAFKA, "registry_port": REGISTRY}
    ports: dict[str, int] = {}
    for key, default in defaults.items():
        wanted = requested[key]
        if running[owner[key]] is not None and key in recorded:
            if wanted is not None and wanted != recorded[key]:
                raise StackError(
                    f"{owner[key]} already runs from {state} with {key.replace('_', ' ')} "
                    f"{recorded[key]}, not {wanted}: run `down` first or use another --state-dir"
                )
            ports[key] = recorded[key]
        else:
            ports[key] = wanted or recorded.get(key) or default
    if len(set(ports.values())) != len(ports):
        raise StackError(f"ports must differ: {ports}")

    to_start = [name for name in COMPONENTS if running[name] is None]
    for name in COMPONENTS:
        pid = running[name]
        if pid is not None:
            log(f"{name}: already running from {state} (pid {pid}); reusing it")
    for key, port in ports.items():
        if owner[key] in to_start and not port_free(port):
            raise StackError(
                f"port {HOST}:{port} ({key.replace('_', ' ')}) is in use by a process that "
                f"was not started from {state}; stop it or choose another port"
            )

    artifacts = fetch(log=log) if to_start else None
    _save_state(state, ports)
    spawned: list[int] = []
    try:
        endpoints = _spawn_and_wait(
            state,
            ports=ports,
            to_start=to_start,
            running=running,
            artifacts=artifacts,
            spawned=spawned,
            timeouts=(kafka_timeout, registry_timeout),
            owned=owned,
            log=log,
        )
    except BaseException:
        if spawned:
            _terminate(state, [n for n in COMPONENTS if _read_pid(state, n) in spawned], log)
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
    ports: dict[str, int],
    to_start: Sequence[str],
    running: dict[str, int | None],
    artifacts: Artifacts | None,
    spawned: list[int],
    timeouts: tuple[float, float],
    owned: bool,
    log: Log,
) -> Endpoints:
    """Start the components in ``to_start`` (recording pids in ``spawned``); wait for all."""
    kafka_timeout, registry_timeout = timeouts
    bootstrap, registry_url = _endpoint_urls(ports)
    pids = dict(running)
    if KAFKA in to_start:
        assert artifacts is not None
        props = _prepare_kafka(
            state, artifacts.kafka_libs, ports["kafka_port"], ports["controller_port"]
        )
        cmd = _kafka_command(state, artifacts.kafka_libs, props)
        child = _spawn(KAFKA, cmd, state, state, owned=owned)
        spawned.append(child.pid)
        pids[KAFKA] = child.pid
        log(f"kafka: started pid {child.pid}{_tie(owned)}, log {_log_file(state, KAFKA)}")
    if REGISTRY in to_start:
        assert artifacts is not None
        workdir = state / "registry"
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = _registry_command(state, artifacts.registry_jar, ports["registry_port"])
        child = _spawn(REGISTRY, cmd, state, workdir, owned=owned)
        spawned.append(child.pid)
        pids[REGISTRY] = child.pid
        log(f"registry: started pid {child.pid}{_tie(owned)}, log {_log_file(state, REGISTRY)}")
    kafka_pid, registry_pid = pids[KAFKA], pids[REGISTRY]
    assert kafka_pid is not None
    assert registry_pid is not None
    kafka_wait = _Pending(
        KAFKA,
        kafka_pid,
        _log_file(state, KAFKA),
        kafka_timeout,
        lambda: kafka_answers(bootstrap, 3.0),
    )
    registry_wait = _Pending(
        REGISTRY,
        registry_pid,
        _log_file(state, REGISTRY),
        registry_timeout,
        lambda: registry_answers(registry_url, 3.0),
    )
    _await_ready([kafka_wait, registry_wait], state)
    assert kafka_wait.ready_after is not None
    assert registry_wait.ready_after is not None
    for item in (kafka_wait, registry_wait):
        verb = "started and answered" if item.name in to_start else "answered"
        log(f"{item.name}: {verb} in {item.ready_after:.1f} s: {item.detail}")
    return Endpoints(
        bootstrap=bootstrap,
        registry_url=registry_url,
        state_dir=state,
        kafka_port=ports["kafka_port"],
        controller_port=ports["controller_port"],
        registry_port=ports["registry_port"],
        kafka_pid=kafka_pid,
        registry_pid=registry_pid,
        reused=not to_start,
        kafka_ready_s=kafka_wait.ready_after,
        registry_ready_s=registry_wait.ready_after,
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
    """SIGTERM broker and registry of ``state_dir``; SIGKILL what is left after ``timeout``."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    if not any(_pid_file(state, name).exists() for name in COMPONENTS):
        log(f"nothing running from {state}")
        return
    _terminate(state, COMPONENTS, log, timeout)


def status(state_dir: Path | str | None = None) -> list[ComponentStatus]:
    """What runs from ``state_dir`` and whether it answers."""
    state = Path(state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
    ports = _load_state(state)
    result: list[ComponentStatus] = []
    for name in COMPONENTS:
        pid = _read_pid(state, name)
        running = pid is not None and _pid_alive(pid, state)
        port = ports.get("kafka_port" if name == KAFKA else "registry_port")
        answers, detail = False, "not running"
        if running and port is not None:
            if name == KAFKA:
                answers, detail = kafka_answers(f"{HOST}:{port}", 3.0)
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
    up.add_argument("--kafka-port", type=int, help=f"default {DEFAULT_KAFKA_PORT}")
    up.add_argument("--controller-port", type=int, help=f"default {DEFAULT_CONTROLLER_PORT}")
    up.add_argument("--registry-port", type=int, help=f"default {DEFAULT_REGISTRY_PORT}")
    up.add_argument("--env-file", type=Path, help="also write the KEY=value lines here")
    with_state(commands.add_parser("down", help="stop broker and registry"))
    with_state(commands.add_parser("status", help="show what runs and whether it answers"))
    return parser


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
            )
            _log_stderr(
                ("reused running stack" if endpoints.reused else "stack up")
                + f" in {time.monotonic() - began:.1f} s "
                f"(kafka {endpoints.kafka_ready_s:.1f} s, "
                f"registry {endpoints.registry_ready_s:.1f} s); "
                f"stop with: python3 deploy/local.py down --state-dir {endpoints.state_dir}"
            )
            print("\n".join(endpoints.env_lines()), flush=True)
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
