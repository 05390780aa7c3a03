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

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.runtime.settings import (
    LogLevel,
    MemberName,
    NonBlank,
    Port,
    SessionTimeout,
    Settings,
    load,
)
from schemas.taxonomy import Regime
from streams.gate.rules import GatePolicy

PREFIX = "GATE_"
MAX_INTAKE_WAIT_SECONDS = 240.0
"""A longer wait would outlast the group's poll interval (300 s)."""


class GateSettings(Settings):
    """Everything the gate reads from ``GATE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    stream_app_id: NonBlank = Field(
        "consent-relay-streams",
        description="The stream workers' `STREAMS_APP_ID`: names the state table's changelog "
        "the gate rebuilds subjects from and the workers' consumer group.",
    )
    group_id: str = Field(
        "",
        description="The gate's consumer group; empty means `<stream app id>-gate` (the "
        "group the gate committed in while it was a thread of the worker, so an upgrade "
        "resumes there).",
    )
    http_host: str = Field(
        "127.0.0.1",
        description="Address of /metrics. Only this machine by default: a deployment whose "
        "Prometheus is elsewhere sets `0.0.0.0` (deploy/ does).",
    )
    http_port: Port = Field(8094, description="Port of /metrics.")
    batch_size: int = Field(
        5000, ge=1, description="Most data events decided, published and committed together."
    )
    intake_wait_seconds: float = Field(
        10.0,
        ge=0,
        le=MAX_INTAKE_WAIT_SECONDS,
        description="Longest a batch waits for intake to apply the consent published before "
        "it; then it is decided on the state read so far, with a warning and "
        "`consent_relay_gate_coverage_timeouts_total`.",
    )
    opt_out_default_allow: bool = Field(
        True,
        description="For opt-out regimes (CCPA): let data through when no choice is recorded.",
    )
    default_regime: Regime = Field(
        Regime.GDPR, description="Regime assumed for a subject the stream knows nothing about."
    )
    session_timeout_seconds: SessionTimeout = Field(
        6.0,
        description="How long the group waits for a gate that went silent before its "
        "partitions go to the others (6..300 s; 6 s is the broker's default floor); "
        "librdkafka heartbeats from a thread of its own, however busy the gate is.",
    )
    static_membership: bool = Field(
        False,
        description="Rejoin the group under the same member name after a restart: a gate "
        "killed and started again gets its partitions back at once instead of after the "
        "session timeout; a gate that stops cleanly leaves the group either way. Off by "
        "default: after a broker outage longer than the session, static members were seen "
        "never to rejoin, where a dynamic member rejoins under a new id.",
    )
    group_instance_id: MemberName = Field(
        "",
        description="The static member name (e.g. a StatefulSet pod's name); empty means "
        "`<host name>#<n>`, `n` the lowest number not held by another live gate of the "
        "group on this host.",
    )
    log_level: LogLevel = Field("INFO", description="Logging level.")

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
