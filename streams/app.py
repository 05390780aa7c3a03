"""Wiring: the Faust app with its topics, tables, agents, timer and views.

:func:`build` makes everything from validated settings. Input topics are read as raw
bytes (one fastavro decode per message in the processors), in batches of whatever is
queued (:mod:`streams.engine.taking`) whose output goes straight to the app's producer
with every delivery awaited before the batch is acknowledged. Tables are keyed by
subject with the producer's partitioner, so the consent, receipts and data topics and
the tables are co-partitioned: Faust gives one worker the same partition number of all
of them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import codec as aiokafka_codec
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import CollectorRegistry

from schemas.codec import EventDecoder
from schemas.errors import ConfigError, RegistryUnavailableError
from schemas.partitioning import partition_for
from schemas.runtime.admin import cluster_replication, ensure_topics
from schemas.runtime.backoff import RETRY
from schemas.runtime.kafka import KafkaSettings
from streams.config import StreamSettings
from streams.engine import gc_tuning, tables
from streams.engine.broker import broker_waiter
from streams.engine.context import StreamContext
from streams.engine.faust_codecs import DONE_CODEC, PENDING_CODEC, STATE_CODEC, register_codecs
from streams.engine.monitor import install_faust_metrics
from streams.engine.offsets import rewinder
from streams.engine.raw import RawMessages
from streams.engine.sending import ProducerSender
from streams.engine.staging import Changelog
from streams.engine.table_codecs import encode_done, encode_pending
from streams.engine.taking import pipelined
from streams.engine.wire import registry_wire
from streams.intake.agent import Intake
from streams.intake.routing import load_policy
from streams.intake.state_topic import StateReader
from streams.intake.times import now_ms
from streams.metrics import StreamMetrics
from streams.proof import views
from streams.proof.agent import Receipts

log = logging.getLogger("streams")

FAUST_METRICS_PREFIX = "consent_relay_faust"


@dataclass(frozen=True, slots=True)
class StreamApp:
    """The built app and what tests and the entrypoint need to reach."""

    app: faust.App
    context: StreamContext
    registry: CollectorRegistry
    settings: StreamSettings
    kafka: KafkaSettings


def build(kafka: KafkaSettings, settings: StreamSettings) -> StreamApp:
    """The worker's Faust app, ready for ``faust.Worker``; creates missing relay topics."""
    if not aiokafka_codec.has_lz4():
        # The producers compress with lz4 (schemas.runtime.kafka); without cramjam aiokafka
        # crashes on the first fetched batch instead of failing here.
        raise ConfigError("cramjam", "is not installed: aiokafka cannot read lz4 batches")
    gc_tuning.tune()
    policy = load_policy(settings.routing_file)
    topics = kafka.topics
    # Before _copartitioned reads the broker. Started before its broker (a reboot, compose
    # starting everything at once), the worker waits for it, with backoff, instead of exiting.
    ensure_topics(kafka, topics.all(), wait=True)
    # Faust creates its changelogs and its assignor topic itself: same replication.
    replication = cluster_replication(kafka)
    copartitioned = _copartitioned(kafka)
    if topics.state not in copartitioned:
        # The state table recovers from the state topic partition by partition.
        raise ConfigError(
            "CONSENT_RELAY_PARTITIONS",
            f"{topics.state} must have as many partitions as {topics.consent}",
        )
    registry_client = kafka.registry_client()
    state_reader = StateReader(EventDecoder(registry_client))
    _prefetch_state_schemas(state_reader, registry_client)
    register_codecs(state_reader)
    app_id = settings.faust_app_id(kafka.topic_prefix)
    app = faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap.split(",")],
        broker_credentials=_credentials(kafka),
        autodiscover=False,
        store="memory://",
        datadir=str(settings.data_dir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=kafka.partitions,
        topic_replication_factor=replication.factor,
        table_standby_replicas=settings.standby_replicas,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 4),
        # A restarted worker takes its partitions back at once instead of waiting for
        # its dead predecessor's session to run out (STREAMS_STATIC_MEMBERSHIP).
        consumer_group_instance_id=settings.member_name,
        producer_acks=-1,
        # A delivery that takes this long fails and the batch is retried, instead of
        # stalling the stream for Faust's default 20 minutes.
        producer_request_timeout=30.0,
        stream_wait_empty=True,
        # No leader-election topic: nothing here runs on_leader, and its empty partition
        # made the consumer's fetches hang. Faust's consumer waits up to 1.5 s for data
        # in a fetch, and aiokafka sends one fetch at a time per broker, for the
        # partitions whose fetched records are all handed over. When the input's were
        # all still buffered, the fetch held only the leader topic's partition and waited
        # the whole 1.5 s while new consent events and receipts queued on the broker: at
        # 1,000 events/s a withdrawal then took 2-3 s instead of 0.15-0.4 s.
        topic_disable_leader=True,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.advertised_host,
        **views.FAUST_VIEWS,
    )
    registry = CollectorRegistry()
    metrics = StreamMetrics.create(registry)
    install_faust_metrics(app, registry=registry, name_prefix=FAUST_METRICS_PREFIX)

    def table(name: str, codec: str, doc: str, changelog: Any = None) -> Any:
        return app.Table(
            name,
            partitions=kafka.partitions,
            key_type=bytes,
            value_type=_serialized_by(codec),
            use_partitioner=True,
            changelog_topic=changelog,
            extra_topic_configs={**tables.CHANGELOG_CONFIG, **replication.topic_config()},
            help=doc,
        )

    # The state table's changelog is the contract's state topic (created with the relay's
    # topics above): intake's one record per changed subject serves the sinks, the table's
    # recovery and standbys, and the gate (streams.intake.state_topic).
    state_changelog = app.topic(
        topics.state,
        key_type=bytes,
        value_type=_serialized_by(STATE_CODEC),
        key_serializer="raw",
        value_serializer=STATE_CODEC,
        partitions=kafka.partitions,
        compacting=True,
        acks=False,
        # Like the changelogs Faust makes itself: a deep buffer (changelog reads are not
        # committed) and tombstones delivered, not skipped.
        maxsize=131_072,
        allow_empty=True,
    )
    state = table(tables.STATE, STATE_CODEC, "Consent state per subject.", state_changelog)
    pending = table(tables.PENDING, PENDING_CODEC, "Propagations not yet honoured everywhere.")
    done = table(tables.DONE, DONE_CODEC, "Recently completed propagations per subject.")
    decoder, encode = registry_wire(registry_client)
    ctx = StreamContext(
        policy=policy,
        topics=topics,
        decoder=decoder,
        encode=encode,
        sender=ProducerSender(app),
        metrics=metrics,
        state=state.data,
        pending=pending.data,
        done=done.data,
        changelogs={
            "pending": Changelog(pending.changelog_topic.get_topic_name(), encode_pending),
            "done": Changelog(done.changelog_topic.get_topic_name(), encode_done),
        },
        copartitioned=copartitioned,
        completed_per_subject=settings.completed_per_subject,
        broker_ready=broker_waiter(kafka),
    )

    sources = (topics.consent, topics.receipts)
    app.on_rebalance_complete.connect(rewinder(kafka, app_id, sources, app))
    _add_agents(app, ctx, settings)
    _add_housekeeping(app, ctx, settings)
    views.register(app, pending, done, settings.api_token)
    return StreamApp(app, ctx, registry, settings, kafka)


def _prefetch_state_schemas(reader: StateReader, registry: SchemaRegistryClient) -> None:
    """Look up the state record's writer schemas before recovery needs them, waiting
    for the registry (a worker started with it, or before it) instead of exiting."""
    attempt = 0
    while True:
        try:
            reader.prefetch(registry)
            return
        except RegistryUnavailableError as exc:
            delay = RETRY.delay(attempt + 1)
            log.warning("schema registry not answering (%s); retrying in %.1fs", exc, delay)
            attempt += 1
            time.sleep(delay)


def _serialized_by(codec: str) -> Any:
    """A table value type for Faust: it reads the changelog codec from
    ``_options.serializer`` and, on recovery, hands the decoded value to ``from_data``,
    which here returns it as the codec made it."""

    def from_data(data: Any, *, preferred_type: Any = None) -> Any:
        return data

    return type(
        f"Serialized_{codec}",
        (),
        {"_options": SimpleNamespace(serializer=codec), "from_data": staticmethod(from_data)},
    )


def _copartitioned(kafka: KafkaSettings) -> frozenset[str]:
    """Output topics with as many partitions as the consent topic."""
    topics = kafka.topics
    metadata = AdminClient(kafka.admin_config()).list_topics(timeout=30).topics
    wanted = metadata[topics.consent].partitions
    return frozenset(name for name, meta in metadata.items() if len(meta.partitions) == len(wanted))


def _add_agents(app: faust.App, ctx: StreamContext, settings: StreamSettings) -> None:
    topics = ctx.topics
    size = settings.batch_size
    intake, receipts = Intake(ctx), Receipts(ctx)

    def raw_topic(name: str) -> Any:
        return app.topic(name, schema=RawMessages())

    @app.agent(raw_topic(topics.consent), name="intake")
    async def intake_agent(stream: Any) -> None:
        await pipelined(stream, size, intake.submit)

    @app.agent(raw_topic(topics.receipts), name="receipts")
    async def receipts_agent(stream: Any) -> None:
        await pipelined(stream, size, receipts.submit)


def _add_housekeeping(app: faust.App, ctx: StreamContext, settings: StreamSettings) -> None:
    level = getattr(logging, settings.log_level.upper())

    async def reset_root_log_level() -> None:
        # Faust's start-up spinner can leave the root logger at DEBUG, and every
        # debug call in Faust and aiokafka then builds a record (~10% of CPU).
        logging.getLogger().setLevel(level)

    async def pending_gauges() -> None:
        count, oldest = pending_summary(app, ctx)
        ctx.metrics.pending_withdrawals.set(count)
        age = 0.0 if oldest is None else max(0.0, (now_ms() - oldest) / 1000)
        ctx.metrics.oldest_pending_age.set(age)

    async def dump_tasks_on_sigusr2() -> None:
        # `kill -USR2 <pid>` logs where every task of the worker is waiting.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, _log_activity, app, ctx)

    async def freeze_startup_objects() -> None:
        gc_tuning.freeze_startup_objects()

    app.task(reset_root_log_level)
    app.task(freeze_startup_objects)
    app.task(dump_tasks_on_sigusr2)
    app.timer(settings.metrics_interval_seconds)(pending_gauges)


def _log_activity(app: faust.App, ctx: StreamContext) -> None:
    for stage, doing in sorted(ctx.activity.items()):
        log.warning("activity %s: %s", stage, doing)
    log.warning("consumer assignment: %s", sorted(app.consumer.assignment()))
    log.warning("flow control active: %s", app.flow_control.is_active())
    _log_task_stacks()


def _log_task_stacks() -> None:
    for task in asyncio.all_tasks():
        chain = []
        awaiting: Any = task.get_coro()
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
            awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
        log.warning("task %s awaits: %s", task.get_name(), " -> ".join(chain) or "?")


def pending_summary(app: faust.App, ctx: StreamContext) -> tuple[int, int | None]:
    """Pending propagations on this worker's active partitions, and the oldest event time."""
    topics = ctx.topics
    active = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.consent}
    partitions = topics.partitions
    count, oldest = 0, None
    for key, holder in list(ctx.pending.items()):
        if not holder.pending or partition_for(key, partitions) not in active:
            continue
        count += len(holder.pending)
        first = min(r.occurred_at_ms for r in holder.pending)
        oldest = first if oldest is None else min(oldest, first)
    if count:
        log.debug("pending propagations: %d", count)
    return count, oldest


def _credentials(kafka: KafkaSettings) -> faust.SASLCredentials | None:
    """Faust's (aiokafka's) side of KAFKA_SECURITY_PROTOCOL and the SASL settings; the
    worker's librdkafka clients get them from KafkaSettings' configs."""
    auth = kafka.auth
    if not auth.sasl:
        return None
    assert auth.password is not None  # ClientAuth refuses SASL without one
    return faust.SASLCredentials(
        username=auth.username,
        password=auth.password.reveal(),
        mechanism=auth.mechanism.value,
        ssl_context=ssl.create_default_context() if auth.tls else None,
    )
