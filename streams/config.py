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
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.errors import ConfigError
from schemas.runtime.bearer import ApiToken
from schemas.runtime.settings import (
    LogLevel,
    MemberName,
    NonBlank,
    Port,
    SessionTimeout,
    Settings,
    load,
)

PREFIX = "STREAMS_"
MOVED_TO_GATE = "STREAMS_GATE_"
"""The worker's former gate settings: the gate is its own process, read from ``GATE_*``."""


class StreamSettings(Settings):
    """Everything the worker reads from ``STREAMS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    app_id: NonBlank = Field(
        "consent-relay-streams",
        description="The Faust app id, after the topic prefix: the workers' consumer group "
        "and the prefix of their changelog topics.",
    )
    web_port: Port = Field(6066, description="Port of the web server (/metrics, /propagation).")
    web_bind: str = Field(
        "127.0.0.1",
        description="Address the web server listens on. Only this machine by default: a "
        "deployment whose Prometheus or peer workers are elsewhere sets `0.0.0.0` "
        "(deploy/ does).",
    )
    api_token: ApiToken = Field(
        None,
        description="Bearer token (at least 16 characters) of `/propagation` (every worker "
        "of a deployment shares it); unset, those views refuse every request with 401. "
        "`/metrics` needs none.",
    )
    web_host: str = Field(
        "",
        description="Host name other workers use to reach this one; empty means this "
        "machine's name (or the bind address if it is a loopback one).",
    )
    data_dir: Path = Field(
        Path("var/streams"), description="The worker's data directory (Faust's datadir)."
    )
    routing_file: Path | None = Field(
        None,
        description="The routing policy; empty means the packaged `streams/intake/routing.toml`.",
    )
    batch_size: int = Field(
        2000,
        ge=1,
        description="Most events an agent takes at once: it takes every event already "
        "fetched, up to this, and waits for none.",
    )
    session_timeout_seconds: SessionTimeout = Field(
        6.0,
        description="How long the group waits for a worker that went silent before its "
        "partitions go to the others (6..300 s). Heartbeats go every quarter of it from the "
        "worker's event loop, which a full batch holds for about a second on a busy "
        "machine: raise it with the batch size or on a slower one.",
    )
    static_membership: bool = Field(
        False,
        description="Rejoin the group under the member name after a restart: a worker "
        "killed and started again gets its partitions back at once instead of after the "
        "session timeout; a worker stopped for good keeps its partitions for one session "
        "timeout. Off by default: after a broker outage longer than the session, static "
        "members were seen never to rejoin, where a dynamic member rejoins under a new id.",
    )
    group_instance_id: MemberName = Field(
        "",
        description="The worker's static member name; empty means `<host name>:<web port>`. "
        "Two live workers of one app under one name fence each other off.",
    )
    standby_replicas: int = Field(
        1, ge=0, description="Standby copies of each state table kept by other workers."
    )
    completed_per_subject: int = Field(
        50,
        ge=1,
        description="Completed propagations kept per subject for queries (FullyPropagated "
        "keeps all).",
    )
    metrics_interval_seconds: float = Field(
        5.0, gt=0, description="How often the worker's gauges are refreshed."
    )
    log_level: LogLevel = Field("INFO", description="Logging level.")

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
