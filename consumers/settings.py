"""Settings every sink process shares, read from ``<SINK>_SINK_*`` environment variables.

A sink's own settings class extends :class:`RunnerSettings` (keyword-only fields),
so one prefix holds both the runner's knobs and the sink's, and an unknown variable
under the prefix still stops the process naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.runtime.bearer import check_token
from schemas.runtime.settings import Secret


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerSettings:
    """Consumer group, HTTP address and token, batching and retry knobs of one sink."""

    group_id: str = ""
    """Consumer group; empty means ``<CONSENT_RELAY_TOPIC_PREFIX>consent-relay.sink.<family>``
    (:mod:`consumers.groups`)."""
    static_membership: bool = False
    """Rejoin the group under the same member name after a restart: a sink killed and
    started again gets its partitions back at once instead of after the session
    timeout. A sink that stops cleanly leaves the group either way.
    Off by default: after a broker outage longer than the session, static members were
    seen never to rejoin (a sink's group left EMPTY while it polled; a worker idle for
    minutes), where a dynamic member rejoins under a new id."""
    group_instance_id: str = ""
    """The static member name (e.g. a StatefulSet pod's name); empty means
    ``<host name>#<n>``, ``n`` the lowest number not held by another live process of
    the group on this host (see :mod:`schemas.runtime.membership`)."""
    session_timeout_seconds: float = 6.0
    """How long the group waits for a member that went silent (crashed and not back,
    or cut off) before its partitions go to the others: a sink killed and started again
    takes its partitions back about this long after the kill. 6 s is the broker's
    default floor (``group.min.session.timeout.ms``); librdkafka heartbeats from a
    thread of its own, every quarter of it, however busy the sink is."""
    http_host: str = "127.0.0.1"
    """Address of /metrics and the sink's API. Only this machine by default: a deployment
    whose Prometheus is elsewhere sets ``0.0.0.0`` (deploy/ does)."""
    api_token: Secret | None = None
    """Bearer token of the sink's API (the marketing sink's /v1/may-contact): unset,
    every route but /metrics and /healthz refuses every request with 401."""
    http_port: int = 0
    """Port of /metrics and the sink's API; 0 means the family's default port."""
    batch_size: int = 500
    prefetch_kbytes: int = 8192
    """librdkafka's queued.max.messages.kbytes: a sink applies batches of hundreds, so the
    64 MiB default only costs memory (the partner sink runs one consumer per partner)."""
    poll_timeout_seconds: float = 0.5
    commit_interval_seconds: float = 1.0
    """How often librdkafka commits the offsets the runner stored (only ever those of
    work made durable: applied or dead-lettered, receipts acknowledged). A synchronous
    commit after every chunk cost each partner pipeline a broker round trip and the
    broker an OffsetCommit per instruction at low rates; a crash now redelivers at most
    this long's work, applied again idempotently and answered with the same receipt ids.
    A revocation and a clean stop still commit at once. 0 commits after every chunk."""
    backoff_initial_seconds: float = 0.1
    backoff_max_seconds: float = 5.0
    """Longest wait between retries of work a store or partner refused: a sink is back
    within about this long after its downstream returns (issue 13's 10 s target)."""
    breaker_threshold: int = 3
    """Consecutive retriable failures after which the circuit-breaker gauge shows 1."""
    duplicate_window_seconds: float = 3600.0
    """A duplicate of an instruction answered this recently is dropped without a second
    receipt; an older one is answered again (never applied twice). The stream keeps a
    subject's last 50 completed propagations: a duplicate of an event it has forgotten
    starts a new one, which must not wait forever for a receipt. 0 answers every one."""
    bootstrap_timeout_seconds: float = 300.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.commit_interval_seconds < 0:
            raise ValueError("commit_interval_seconds must not be negative")
        if self.prefetch_kbytes < 64:
            raise ValueError("prefetch_kbytes must be at least 64")
        if not 0 <= self.http_port <= 65535:
            raise ValueError("http_port must be a port number")
        if self.backoff_initial_seconds <= 0 or (
            self.backoff_max_seconds < self.backoff_initial_seconds
        ):
            raise ValueError("need 0 < backoff_initial_seconds <= backoff_max_seconds")
        if not 6 <= self.session_timeout_seconds <= 300:
            raise ValueError("session_timeout_seconds must be within 6..300")
        if self.breaker_threshold < 1:
            raise ValueError("breaker_threshold must be at least 1")
        if self.duplicate_window_seconds < 0:
            raise ValueError("duplicate_window_seconds must not be negative")
        check_token(self.api_token, "api_token")
