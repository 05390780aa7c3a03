"""Settings every sink process shares, read from ``<SINK>_SINK_*`` environment variables.

A sink's own settings class extends :class:`RunnerSettings`, so one prefix holds both
the runner's knobs and the sink's, and an unknown variable under the prefix still stops
the process naming it.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from schemas.runtime.bearer import ApiToken
from schemas.runtime.settings import LogLevel, MemberName, SessionTimeout, Settings


class RunnerSettings(Settings):
    """Consumer group, HTTP address and token, batching and retry knobs of one sink."""

    group_id: str = Field(
        "",
        description="Consumer group; empty means "
        "`<CONSENT_RELAY_TOPIC_PREFIX>consent-relay.sink.<family>` (consumers.groups).",
    )
    static_membership: bool = Field(
        False,
        description="Rejoin the group under the same member name after a restart: a sink "
        "killed and started again gets its partitions back at once instead of after the "
        "session timeout; a sink that stops cleanly leaves the group either way. Off by "
        "default: after a broker outage longer than the session, static members were seen "
        "never to rejoin, where a dynamic member rejoins under a new id.",
    )
    group_instance_id: MemberName = Field(
        "",
        description="The static member name (e.g. a StatefulSet pod's name); empty means "
        "`<host name>#<n>`, `n` the lowest number not held by another live process of the "
        "group on this host (schemas.runtime.membership).",
    )
    session_timeout_seconds: SessionTimeout = Field(
        6.0,
        description="How long the group waits for a member that went silent before its "
        "partitions go to the others (6..300 s; 6 s is the broker's default floor); "
        "librdkafka heartbeats every quarter of it from a thread of its own.",
    )
    http_host: str = Field(
        "127.0.0.1",
        description="Address of /metrics and the sink's API. Only this machine by default: "
        "a deployment whose Prometheus is elsewhere sets `0.0.0.0` (deploy/ does).",
    )
    api_token: ApiToken = Field(
        None,
        description="Bearer token (at least 16 characters) of the sink's API (the marketing "
        "sink's /v1/may-contact): unset, every route but /metrics and /healthz refuses "
        "every request with 401.",
    )
    http_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of /metrics and the sink's API; 0 means the family's default port "
        "(marketing 8091, analytics 8092, partners 8093).",
    )
    batch_size: int = Field(500, ge=1, description="Most records applied together.")
    prefetch_kbytes: int = Field(
        8192,
        ge=64,
        description="librdkafka's queued.max.messages.kbytes: a sink applies batches of "
        "hundreds, so the 64 MiB default only costs memory (the partner sink runs one "
        "consumer per partner).",
    )
    poll_timeout_seconds: float = Field(
        0.5, description="Longest one poll of the consumer waits for records."
    )
    commit_interval_seconds: float = Field(
        1.0,
        ge=0,
        description="How often librdkafka commits the offsets the runner stored (only of work "
        "made durable); a crash redelivers at most this long's work, applied again "
        "idempotently. A revocation and a clean stop commit at once. 0 commits after "
        "every chunk.",
    )
    backoff_initial_seconds: float = Field(
        0.1, gt=0, description="First wait before retrying work a store or partner refused."
    )
    backoff_max_seconds: float = Field(
        5.0,
        description="Longest wait between retries of work a store or partner refused (at "
        "least backoff_initial_seconds): a sink is back within about this long after its "
        "downstream returns.",
    )
    breaker_threshold: int = Field(
        3,
        ge=1,
        description="Consecutive retriable failures after which the circuit-breaker gauge shows 1.",
    )
    duplicate_window_seconds: float = Field(
        3600.0,
        ge=0,
        description="A duplicate of an instruction answered this recently is dropped without "
        "a second receipt; an older one is answered again (never applied twice). 0 answers "
        "every one.",
    )
    bootstrap_timeout_seconds: float = Field(
        300.0,
        description="How long a starting sink waits for the broker, registry and its topics.",
    )
    log_level: LogLevel = Field("INFO", description="Logging level.")

    @model_validator(mode="after")
    def _backoff_grows(self) -> Self:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_initial_seconds")
        return self
