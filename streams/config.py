"""The stream worker's settings, read from ``STREAMS_*`` variables and validated at start.

Kafka and registry coordinates come from :class:`schemas.runtime.kafka.KafkaSettings`; these are
the worker's own knobs. The Faust app id is prefixed with the topic prefix so that test
runs (and tenants) sharing a broker never share consumer groups or changelog topics.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigError
from schemas.runtime.bearer import check_token
from schemas.runtime.settings import Secret, load

PREFIX = "STREAMS_"
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})
MOVED_TO_GATE = "STREAMS_GATE_"
"""The worker's former gate settings: the gate is its own process, read from ``GATE_*``."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Everything the worker reads from ``STREAMS_<FIELD>``."""

    app_id: str = "consent-relay-streams"
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    """Address the web server listens on. Only this machine by default: a deployment
    whose Prometheus or peer workers are elsewhere sets ``0.0.0.0`` (deploy/ does)."""
    api_token: Secret | None = None
    """Bearer token of ``/propagation`` (every worker of a deployment shares it); unset,
    those views refuse every request with 401. ``/metrics`` needs none."""
    web_host: str = ""
    """Host name other workers use to reach this one; empty means this machine's name."""
    data_dir: Path = Path("var/streams")
    routing_file: Path | None = None
    """The routing policy; empty means the packaged ``streams/intake/routing.toml``."""
    batch_size: int = 2000
    """Most events an agent takes at once. It takes every event already fetched, up to
    this, and waits for none (:mod:`streams.engine.taking`): a lone withdrawal goes at
    once, a backlog in batches as large as it is."""
    session_timeout_seconds: float = 6.0
    """How long the group waits for a worker that went silent (crashed and not back, or
    cut off) before its partitions go to the others: a worker killed and started again
    takes its partitions back about this long after the kill. 6 s is the broker's
    default floor. Heartbeats go every quarter of it (1.5 s) from the worker's event
    loop (aiokafka), which a full batch (``batch_size``) holds for about a second on a
    busy machine: raise it with the batch size or on a slower one."""
    static_membership: bool = False
    """Rejoin the group under :attr:`member_name` after a restart: a worker killed and
    started again gets its partitions back at once instead of after the session
    timeout. The price: a worker stopped for good (scaled down) keeps its partitions
    for one session timeout, as Faust's Kafka client (aiokafka) does not leave the
    group on close as a static member. Off: a stopped worker leaves at once, and a
    restarted one waits for its predecessor's session to run out.
    Off by default: after a broker outage longer than the session, static members were
    seen never to rejoin (a sink's group left EMPTY while it polled; a worker idle for
    minutes), where a dynamic member rejoins under a new id."""
    group_instance_id: str = ""
    """The worker's static member name; empty means ``<host name>:<web port>``, unique
    as long as each worker on a host has a port of its own (it must) and stable across
    restarts. Two live workers of one app under one name fence each other off."""
    standby_replicas: int = 1
    completed_per_subject: int = 50
    """Completed propagations kept per subject for queries (FullyPropagated keeps all)."""
    metrics_interval_seconds: float = 5.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.app_id.strip():
            raise ValueError("STREAMS_APP_ID must not be empty")
        if not 0 < self.web_port < 65536:
            raise ValueError(f"STREAMS_WEB_PORT {self.web_port} is not a TCP port")
        if self.batch_size < 1:
            raise ValueError("STREAMS_BATCH_SIZE must be > 0")
        if not 6 <= self.session_timeout_seconds <= 300:
            raise ValueError("STREAMS_SESSION_TIMEOUT_SECONDS must be within 6..300")
        if self.group_instance_id != self.group_instance_id.strip():
            raise ValueError("STREAMS_GROUP_INSTANCE_ID must not start or end with blanks")
        if self.standby_replicas < 0 or self.completed_per_subject < 1:
            raise ValueError("STREAMS_STANDBY_REPLICAS >= 0, STREAMS_COMPLETED_PER_SUBJECT >= 1")
        if self.metrics_interval_seconds <= 0:
            raise ValueError("STREAMS_METRICS_INTERVAL_SECONDS must be > 0")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"STREAMS_LOG_LEVEL must be one of {sorted(LOG_LEVELS)}")
        check_token(self.api_token, "STREAMS_API_TOKEN")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        """Read and validate; an unknown or bad ``STREAMS_*`` key raises ConfigError."""
        env = os.environ if env is None else env
        moved = sorted(k for k in env if k.startswith(MOVED_TO_GATE))
        if moved:
            # Unknown like any other key, but a deployment upgraded from the worker's own
            # gate thread has them: say where they went, not just what is known.
            gate_key = "GATE_" + moved[0].removeprefix(MOVED_TO_GATE)
            raise ConfigError(
                moved[0], f"the consent gate is its own process: set {gate_key} for it instead"
            )
        return load(cls, PREFIX, env)

    @property
    def advertised_host(self) -> str:
        """The host in this worker's canonical URL: :attr:`web_host`, else the bind
        address if that is a loopback one (peers on this machine must reach it there),
        else this machine's name."""
        if self.web_host:
            return self.web_host
        return self.web_bind if _is_loopback(self.web_bind) else socket.gethostname()

    @property
    def member_name(self) -> str | None:
        """The static group member name, or None without static membership."""
        if not self.static_membership:
            return None
        return self.group_instance_id or f"{socket.gethostname()}:{self.web_port}"

    def faust_app_id(self, topic_prefix: str) -> str:
        """The Faust app id (consumer group, changelog topic prefix) for a deployment."""
        return f"{topic_prefix}{self.app_id}"


def _is_loopback(address: str) -> bool:
    """An IPv4 loopback address or ``localhost`` (an IPv6 one would need brackets in
    the canonical URL; such a worker advertises its host name)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address == "localhost"
    return ip.version == 4 and ip.is_loopback
