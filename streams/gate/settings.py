"""The gate process's settings, read from ``GATE_*`` variables and validated at start.

Kafka and registry coordinates come from :class:`schemas.runtime.kafka.KafkaSettings`. The gate
has a prefix of its own, not ``STREAMS_``: it is another process, and the worker stops
on any ``STREAMS_*`` key it does not know. ``GATE_STREAM_APP_ID`` must be the workers'
``STREAMS_APP_ID``: it names the state table's changelog the gate rebuilds subjects
from, and the workers' consumer group whose committed consent offsets say how far
intake has got when its progress records are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.runtime.settings import load
from schemas.taxonomy import Regime
from streams.gate.rules import GatePolicy

PREFIX = "GATE_"
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR"})
MAX_INTAKE_WAIT_SECONDS = 240.0


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Everything the gate reads from ``GATE_<FIELD>``."""

    stream_app_id: str = "consent-relay-streams"
    """The stream workers' ``STREAMS_APP_ID``."""
    group_id: str = ""
    """The gate's consumer group; empty means ``<stream app id>-gate`` (the group the
    gate committed in while it was a thread of the worker, so an upgrade resumes there)."""
    http_host: str = "127.0.0.1"
    """Address of /metrics. Only this machine by default: a deployment whose Prometheus
    is elsewhere sets ``0.0.0.0`` (deploy/ does)."""
    http_port: int = 8094
    batch_size: int = 5000
    """Most data events decided, published and committed together."""
    intake_wait_seconds: float = 10.0
    """Longest a batch waits for intake to apply the consent published before it; then it
    is decided on the state read so far, with a warning and
    ``consent_relay_gate_coverage_timeouts_total`` (the state the changelog is known to
    hold is always read first)."""
    opt_out_default_allow: bool = True
    """For opt-out regimes (CCPA): let data through when no choice is recorded."""
    default_regime: Regime = Regime.GDPR
    """Regime assumed for a subject the stream knows nothing about."""
    session_timeout_seconds: float = 6.0
    """How long the group waits for a gate that went silent (crashed and not back, or
    cut off) before its partitions go to the others: a gate killed and started again
    takes its partitions back about this long after the kill. 6 s is the broker's
    default floor; librdkafka heartbeats from a thread of its own, however busy the
    gate is."""
    static_membership: bool = False
    """Rejoin the group under the same member name after a restart: a gate killed and
    started again gets its partitions back at once instead of after the session
    timeout. A gate that stops cleanly leaves the group either way.
    Off by default: after a broker outage longer than the session, static members were
    seen never to rejoin (a sink's group left EMPTY while it polled; a worker idle for
    minutes), where a dynamic member rejoins under a new id."""
    group_instance_id: str = ""
    """The static member name (e.g. a StatefulSet pod's name); empty means
    ``<host name>#<n>``, ``n`` the lowest number not held by another live gate of the
    group on this host (:mod:`schemas.runtime.membership`)."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.stream_app_id.strip():
            raise ValueError("GATE_STREAM_APP_ID must not be empty")
        if not 0 < self.http_port < 65536:
            raise ValueError(f"GATE_HTTP_PORT {self.http_port} is not a TCP port")
        if self.batch_size < 1:
            raise ValueError("GATE_BATCH_SIZE must be at least 1")
        if not 0 <= self.intake_wait_seconds <= MAX_INTAKE_WAIT_SECONDS:
            # A longer wait would outlast the group's poll interval (300 s).
            raise ValueError(
                f"GATE_INTAKE_WAIT_SECONDS must be within 0..{MAX_INTAKE_WAIT_SECONDS:g}"
            )
        if not 6 <= self.session_timeout_seconds <= 300:
            raise ValueError("GATE_SESSION_TIMEOUT_SECONDS must be within 6..300")
        if self.group_instance_id != self.group_instance_id.strip():
            raise ValueError("GATE_GROUP_INSTANCE_ID must not start or end with blanks")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"GATE_LOG_LEVEL must be one of {sorted(LOG_LEVELS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GateSettings:
        """Read and validate; an unknown or bad ``GATE_*`` key raises ConfigError."""
        return load(cls, PREFIX, env)

    @property
    def policy(self) -> GatePolicy:
        """The decision's configurable defaults."""
        return GatePolicy(self.opt_out_default_allow, self.default_regime)

    def stream_group(self, topic_prefix: str) -> str:
        """The workers' consumer group (their Faust app id)."""
        return f"{topic_prefix}{self.stream_app_id}"

    def group(self, topic_prefix: str) -> str:
        """The gate's consumer group."""
        return self.group_id or f"{self.stream_group(topic_prefix)}-gate"
