"""Creating Consent Relay's topics on a broker (idempotent), and waiting for the broker.

A relay process that starts before its broker (a node reboot, a compose file starting
everything at once) must wait for it, not exit: :func:`wait_for_broker` asks for the
cluster's metadata until it answers, each attempt longer than the one before up to 5 s
(:data:`~schemas.runtime.backoff.STARTUP`), with one log line per attempt. An attempt
returns as soon as the broker answers, so a process is on its way within about a second
of the broker's return however long it waited. ``ensure_topics(..., wait=True)`` waits like
that before creating topics, and again if the broker goes away while it does.

The topics have one owner: the stream worker creates every missing one at start
(:func:`ensure_topics`), as does ``python -m producers topics create`` for an operator
who creates them first; the gate and the partner sink wait for theirs
(:func:`wait_for_topics`) and never create one.

Topics are created with the deployment's replication (:mod:`schemas.runtime.replication`)
resolved against the brokers the cluster reports at that moment: three replicas and
``min.insync.replicas=2`` on a cluster of three brokers or more unless the Kafka
settings say otherwise. Topics that exist are left as they are; topics created return
only once each partition's leader serves it (:func:`_wait_until_led`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Final

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from schemas.errors import ConsentRelayError
from schemas.runtime.backoff import STARTUP
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.replication import Replication
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)

LEADER_WAIT_SECONDS: Final = 10.0
"""Longest wait for topics just created to be led (they take tens of ms)."""
TOPIC_WAIT_LOG_SECONDS: Final = 30.0
"""How often :func:`wait_for_topics` says again which topics it waits for."""
_LEADER_ATTEMPT_SECONDS: Final = 1.0
_LEADER_POLL_SECONDS: Final = 0.02
_LEADER_POLL_MAX_SECONDS: Final = 0.5

_FATAL: Final = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.INVALID_CONFIG,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.POLICY_VIOLATION,
    }
)
"""Answers that waiting will not change."""


class BrokerUnavailableError(ConsentRelayError):
    """The broker did not answer within the time the caller was willing to wait."""


def wait_for_broker(
    settings: KafkaSettings,
    *,
    stop: threading.Event | None = None,
    give_up_after: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] | None = None,
) -> bool:
    """Block until the broker answers a metadata request; False if ``stop`` is set first.

    Attempts take 0.5, 1, 2, 4, then 5 s at most (:data:`~schemas.runtime.backoff.STARTUP`), each
    logged. Raises :class:`BrokerUnavailableError` when the broker refuses us for good
    (authentication, say) or, with ``give_up_after``, when that many seconds passed.
    ``clock`` and ``sleep`` (default: ``stop.wait``, or ``time.sleep``) are for tests.
    """
    pause = sleep or (stop.wait if stop is not None else time.sleep)
    admin = AdminClient(settings.admin_config())
    began = clock()
    attempt = 0
    while stop is None or not stop.is_set():
        attempt += 1
        allowed = attempt_seconds(attempt)
        started = clock()
        try:
            admin.list_topics(timeout=allowed)
        except KafkaException as exc:
            _give_up_if(exc, settings, began, give_up_after, clock)
            log.warning(
                "broker %s does not answer (%s); attempt %d, waiting up to %.1f s for it",
                settings.bootstrap,
                _describe(exc),
                attempt,
                attempt_seconds(attempt + 1),
            )
            # An attempt may fail at once (a refused connection): never retry faster
            # than the backoff allows.
            remaining = allowed - (clock() - started)
            if remaining > 0:
                pause(remaining)
            continue
        if attempt > 1:
            log.info(
                "broker %s answered after %.1f s (%d attempts)",
                settings.bootstrap,
                clock() - began,
                attempt,
            )
        return True
    return False


def ensure_topics(
    settings: KafkaSettings,
    specs: tuple[TopicSpec, ...] | None = None,
    timeout: float = 30.0,
    *,
    wait: bool = False,
    stop: threading.Event | None = None,
) -> list[str]:
    """Create whichever of ``specs`` (default: every topic) is missing; names created.

    With ``wait`` a process's start-up waits for the broker (:func:`wait_for_broker`)
    and retries while the broker answers "not now"; nothing is created if ``stop`` is
    set first. Without, a broker that does not answer within ``timeout`` raises.
    """
    specs = settings.topics.all() if specs is None else specs
    while True:
        if wait and not wait_for_broker(settings, stop=stop):
            return []
        try:
            return _create_missing(settings, specs, timeout)
        except KafkaException as exc:
            if not wait or not _transient(exc):
                raise ConsentRelayError(f"cannot list or create topics: {exc}") from exc
            log.warning("creating topics failed for now (%s); waiting for the broker", exc)


def wait_for_topics(
    settings: KafkaSettings,
    names: Collection[str],
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] | None = None,
) -> bool:
    """Block until every topic of ``names`` exists; False if ``stop`` is set first.

    The relay's topics have one owner: the stream worker creates them at start
    (:func:`ensure_topics`), or an operator before any process, with ``python -m producers
    topics create``. The gate and the partner sink only wait for theirs, with a log line
    now and then that names what is missing and who creates it. A broker that does not
    answer is waited for as :func:`wait_for_broker` does.
    """
    pause = sleep or (stop.wait if stop is not None else time.sleep)
    wanted = frozenset(names)
    attempt = 0
    said = -TOPIC_WAIT_LOG_SECONDS
    while stop is None or not stop.is_set():
        if not wait_for_broker(settings, stop=stop, clock=clock, sleep=sleep):
            return False
        try:
            existing = AdminClient(settings.admin_config()).list_topics(timeout=30.0).topics
        except KafkaException as exc:
            if not _transient(exc):
                raise ConsentRelayError(f"cannot list topics: {exc}") from exc
            continue
        missing = sorted(wanted.difference(existing))
        if not missing:
            return True
        attempt += 1
        if clock() - said >= TOPIC_WAIT_LOG_SECONDS:
            said = clock()
            log.warning(
                "waiting for topic(s) %s: the stream worker creates them at start, or "
                "`python -m producers topics create`",
                ", ".join(missing),
            )
        pause(STARTUP.ceiling(attempt))
    return False


def _create_missing(
    settings: KafkaSettings, specs: tuple[TopicSpec, ...], timeout: float
) -> list[str]:
    admin = AdminClient(settings.admin_config())
    metadata = admin.list_topics(timeout=timeout)
    existing = set(metadata.topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    replication = settings.replication(len(metadata.brokers))
    wanted = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=replication.factor,
            config={**s.config, **replication.topic_config()},
        )
        for s in missing
    ]
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if _transient(exc):
                raise
            raise ConsentRelayError(f"cannot create topic {name}: {exc}") from exc
    _wait_until_led(settings, missing)
    return created


def _wait_until_led(settings: KafkaSettings, specs: list[TopicSpec]) -> None:
    """Return once every partition of ``specs`` answers a ListOffsets request, or after
    :data:`LEADER_WAIT_SECONDS` with a warning (publishers check their acks too).

    CreateTopics returns, and metadata names each partition's leader, some tens of
    milliseconds before that broker leads it (it refuses with NOT_LEADER until then).
    librdkafka's idempotent producer can report a record whose first batch was refused
    so as delivered when its next batch, already in flight, is accepted: the record is
    lost (confluent-kafka-go#921). ListOffsets is answered by the leader only once it
    leads, and writes nothing.
    """
    waiting = {TopicPartition(s.name, p) for s in specs for p in range(s.partitions)}
    deadline = time.monotonic() + LEADER_WAIT_SECONDS
    pause = _LEADER_POLL_SECONDS
    while waiting:
        # A client of its own each attempt: one that saw a new topic without leaders
        # may keep answering "No leaders found" from its cache for many seconds.
        admin = AdminClient(settings.admin_config())
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        asked = {tp: latest for tp in waiting}
        # Short attempts: librdkafka fails one with "No leaders found" only when its
        # request timeout ends.
        answers = admin.list_offsets(asked, request_timeout=_LEADER_ATTEMPT_SECONDS)
        for partition, future in answers.items():
            try:
                future.result()
            except KafkaException as exc:
                if not _transient(exc):
                    raise ConsentRelayError(
                        f"{partition.topic} [{partition.partition}] has no leader: {exc}"
                    ) from exc
                continue
            waiting.discard(partition)
        if waiting and time.monotonic() >= deadline:
            log.warning(
                "%d new partition(s) not led after %.0f s, going on (first: %s [%d])",
                len(waiting),
                LEADER_WAIT_SECONDS,
                *min((tp.topic, tp.partition) for tp in waiting),
            )
            return
        if waiting:
            # New partitions are led within tens of ms; a broker refusing for longer
            # (no leader it can elect) is asked less often, each time by a new client.
            time.sleep(pause)
            pause = min(pause * 2, _LEADER_POLL_MAX_SECONDS)


def cluster_replication(settings: KafkaSettings, timeout: float = 30.0) -> Replication:
    """The replication topics created now get (for topics a library creates itself,
    such as Faust's changelogs); ConfigError when the cluster cannot place it."""
    try:
        metadata = AdminClient(settings.admin_config()).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConsentRelayError(f"cannot ask the cluster for its brokers: {exc}") from exc
    return settings.replication(len(metadata.brokers))


def attempt_seconds(attempt: int) -> float:
    """How long start-up attempt ``attempt`` (1-based) may take: 0.5, 1, 2, 4, then 5 s."""
    return STARTUP.ceiling(attempt)


def _transient(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return False
    return not error.fatal() and error.code() not in _FATAL


def _describe(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _give_up_if(
    exc: KafkaException,
    settings: KafkaSettings,
    began: float,
    give_up_after: float | None,
    clock: Callable[[], float],
) -> None:
    if not _transient(exc):
        raise BrokerUnavailableError(f"broker {settings.bootstrap} refuses: {exc}") from exc
    if give_up_after is not None and clock() - began >= give_up_after:
        raise BrokerUnavailableError(
            f"broker {settings.bootstrap} did not answer within {give_up_after:g} s: "
            f"{_describe(exc)}"
        ) from exc
