"""The one runner behind every sink: consume instructions, apply, receipt, commit.

Messages of the sink's family's instruction topic (``Topics.instructions(family)``)
are taken in chunks (whatever has been fetched, up to ``batch_size``), in partition
order: those whose destination header does not name the sink's destination are
skipped undecoded (a shared topic), undecodable ones are dead-lettered; a message is an
InstructionIssued, or an InstructionsIssued of which the sink takes only its own
destination's items (the partners' topic, whose one consumer feeds every partner's
runner: :mod:`consumers.partners.fanout`); the instructions the sink handles are applied, in
one call to ``apply_batch`` when the sink offers it (one database transaction), else
one by one;
then each whose ``receipt_requested`` is set (the stream tracks the event: a
withdrawal or a rights request) gets its :class:`~schemas.events.PropagationReceipt`
(APPLIED, SKIPPED or FAILED), sent with the chunk's others as one
:class:`~schemas.events.InstructionsAnswered` per partition; a grant's instruction is
applied and counted but not answered, since nothing waits for its proof. Only once
every receipt and dead letter is acknowledged are offsets stored and committed
(at-least-once; sinks are idempotent per instruction id). A retriable failure pauses
consumption and retries the same work with jittered exponential backoff until it
succeeds, so nothing is committed past it;
a permanent failure is dead-lettered with its coordinates (and, if a receipt was
requested, answered with a FAILED one). An empty store is first seeded from the
consent-state topic. :meth:`SinkRunner.stop` (SIGTERM in :func:`run_sink`) finishes
the chunk in flight, flushes, commits, closes. Duplicates cost nothing downstream
(:mod:`consumers.pipeline.answering`).

Each job is a part of its own in :mod:`consumers.pipeline` (consuming, applying,
answering, retrying, checkpoints, rebalances, seeding, telemetry); the runner builds
them, runs them and shuts them down. Its metrics are injected: a process running
several runners hands each the same :class:`~consumers.metrics.SinkMetrics`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import ClassVar, TypeVar

from confluent_kafka.schema_registry import SchemaRegistryClient

from consumers.groups import adopt_legacy_group, default_group, legacy_group
from consumers.instruction_records import SharedInstructions
from consumers.metrics import SinkMetrics
from consumers.pipeline.answering import Answering
from consumers.pipeline.applying import Applier
from consumers.pipeline.checkpoints import Checkpoints
from consumers.pipeline.loop import ConsumeLoop
from consumers.pipeline.progress import Progress
from consumers.pipeline.rebalance import Rebalance
from consumers.pipeline.retrying import AbandonedError, GroupWait, Retrier, Waits
from consumers.pipeline.seeding import seed
from consumers.pipeline.subscription import Subscription
from consumers.pipeline.telemetry import Telemetry, replaced_counter
from consumers.protocol import RemembersAnswers, ServesHttp, Sink
from consumers.publisher import Publisher
from consumers.settings import RunnerSettings
from consumers.shared_decodes import SharedDecodes
from consumers.shared_producer import SharedProducer
from schemas.codec import EventDecoder
from schemas.errors import ConfigError, ConsentRelayError
from schemas.runtime.backoff import Backoff
from schemas.runtime.http_server import HttpServer, Route, open_routes
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.observability import configure_logging
from schemas.runtime.settings import load
from schemas.taxonomy import SinkFamily

log = logging.getLogger(__name__)

S = TypeVar("S", bound=RunnerSettings)

DEFAULT_PORTS: Mapping[SinkFamily, int] = {
    SinkFamily.MARKETING: 8091,
    SinkFamily.ANALYTICS: 8092,
    SinkFamily.PARTNER_SHARING: 8093,
}
"""Each family's default port for /metrics and its API."""


class SinkRunner:
    """Drives one sink from its instruction topic until :meth:`stop` is called."""

    _applier_type: ClassVar[type[Applier]] = Applier
    """What applies its chunks (a partner's pipeline applies its lane's)."""

    def __init__(
        self,
        sink: Sink,
        settings: KafkaSettings,
        *,
        group_id: str | None = None,
        family: SinkFamily | None = None,
        metrics_port: int | None = None,
        options: RunnerSettings | None = None,
        routes: Mapping[str, Route] | None = None,
        serve_http: bool = True,
        backoff: Backoff | None = None,
        producer: SharedProducer | None = None,
        decodes: SharedDecodes[SharedInstructions] | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        """Build a runner; nothing connects until :meth:`run`.

        ``metrics_port`` None means ``options.http_port`` or the family's default;
        0 picks a free port (see :attr:`http_port`). ``routes`` are served next to
        ``/metrics`` and ``/healthz``, as are the sink's own if it has
        :class:`~consumers.protocol.ServesHttp`. ``producer``: receipts and dead letters
        go through that one, shared with other runners of the process, instead of a
        producer of this runner's own. ``decodes``: records another runner of the process
        has decoded already are taken from there. ``metrics``: the process's collectors,
        shared with its other runners (a fresh set by default).
        """
        self.sink = sink
        self.settings = settings
        self.options = options = options or RunnerSettings()
        self.family = family or sink.family
        chosen = group_id or options.group_id
        self.group_id = chosen or default_group(self.family, settings.topic_prefix)
        self._legacy_group = None if chosen else legacy_group(self.family)
        """The name this group had before it took the topic prefix (when it is the default)."""
        self.topic = settings.topics.instructions(self.family)
        self.stage = f"sink.{self.family.value.lower()}"
        self.metrics = SinkMetrics.create() if metrics is None else metrics
        self.backoff = backoff or Backoff(
            options.backoff_initial_seconds, options.backoff_max_seconds
        )
        port = options.http_port or DEFAULT_PORTS[self.family]
        self._port = port if metrics_port is None else metrics_port
        self._routes: dict[str, Route] = open_routes(self.metrics.registry)
        if isinstance(sink, ServesHttp):
            self._routes.update(sink.http_routes())
        self._routes.update(routes or {})
        self._serve_http = serve_http
        self._http: HttpServer | None = None
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once bootstrap is over and the runner consumes instructions."""
        self.producer = producer
        self._registry: SchemaRegistryClient | None = None

        # The parts, each with one job (consumers.pipeline).
        self.progress = Progress()
        self.telemetry = Telemetry(self.metrics, self.family, self.stage, options.breaker_threshold)
        self.retrier = Retrier(
            self.backoff,
            self.telemetry,
            self._waits(),
            before_wait=self._make_durable,
            after_recovery=self.progress.resume,
        )
        self.answering = Answering(
            self.stage,
            self.telemetry,
            self.retrier,
            sink if isinstance(sink, RemembersAnswers) else None,
            options.duplicate_window_seconds,
        )
        self.checkpoints: Checkpoints = self._checkpoints()
        self.applier = self._applier(decodes)
        self.subscription = Subscription(
            settings,
            options,
            self.progress,
            Rebalance(self.progress, self.checkpoints),
            self.metrics,
            group_id=self.group_id,
            topic=self.topic,
        )

    @property
    def http_port(self) -> int | None:
        """The port /metrics is served on, once :meth:`run` has started it."""
        return self._http.port if self._http is not None else None

    def stop(self) -> None:
        """Ask the runner to finish the chunk in flight, commit and return; a retry
        wait is cut short, leaving its work uncommitted for the next run.

        Safe to call from a signal handler or another thread.
        """
        self._stop.set()

    def run(self) -> None:
        """Consume and apply until :meth:`stop`; raises on a fatal error, uncommitted."""
        if self._serve_http:
            self._http = HttpServer(
                self.options.http_host, self._port, self._routes, token=self.options.api_token
            ).start()
        clean = False
        try:
            self.connect(self.settings.registry_client())
            try:
                seed(
                    self.sink,
                    self.settings,
                    group_id=self.group_id,
                    decoder=self.applier.decoder,
                    retrier=self.retrier,
                    answering=self.answering,
                    stop=self._stop,
                    timeout=self.options.bootstrap_timeout_seconds,
                )
                if not self._stop.is_set():
                    self._consume()
            except AbandonedError:
                log.info("stopped while waiting for a retry")
            clean = True
        finally:
            self._shutdown(clean)

    def connect(self, registry: SchemaRegistryClient) -> None:
        """Decode with ``registry`` and publish receipts and dead letters (what
        :meth:`run` sets up first)."""
        self._registry = registry
        self.applier.decoder = EventDecoder(registry)
        self.answering.publisher = Publisher(
            self.settings,
            registry,
            self.producer,
            on_replaced=replaced_counter(self.metrics, f"{self.group_id} producer"),
        )

    def _make_durable(self) -> None:
        """Checkpoint what is done (before a retry waits, possibly long)."""
        self.checkpoints.checkpoint()

    # -- the parts a pipeline fed otherwise replaces (consumers.partners.lane) -------

    def _waits(self) -> Waits:
        return GroupWait(self.progress, self._stop)

    def _checkpoints(self) -> Checkpoints:
        return Checkpoints(
            self.progress,
            self.answering,
            in_background=self.options.commit_interval_seconds > 0,
        )

    def _applier(self, decodes: SharedDecodes[SharedInstructions] | None) -> Applier:
        return self._applier_type(
            self.sink,
            self.progress,
            retrier=self.retrier,
            answering=self.answering,
            checkpoints=self.checkpoints,
            telemetry=self.telemetry,
            duplicate_window_seconds=self.options.duplicate_window_seconds,
            decodes=decodes,
        )

    def _consume(self) -> None:
        if self._legacy_group is not None:
            adopt_legacy_group(
                self.settings, self.group_id, self._legacy_group, self.topic, stop=self._stop
            )
        ConsumeLoop(
            self.progress,
            self.subscription,
            self.applier,
            self.checkpoints,
            self.answering,
            options=self.options,
            backoff=self.backoff,
            stop=self._stop,
            ready=self.ready,
            replaced=replaced_counter(self.metrics, self.group_id),
        ).run()

    # -- shutdown ------------------------------------------------------------------

    def _shutdown(self, clean: bool) -> None:
        """After a clean run: commit what is durable and leave the group; always: close
        the consumer, the sink, the registry client and the HTTP server."""
        try:
            if clean:
                self.checkpoints.checkpoint(commit=True)
                self.subscription.leave_group()
        finally:
            self.subscription.end()
            self.sink.close()
            if self._registry is not None:
                self._registry.close()
            if self._http is not None:
                self._http.stop()
            log.info("sink runner stopped (%s)", "clean" if clean else "after an error")


def run_sink(
    build: Callable[[S], Sink],
    settings_cls: type[S],
    *,
    prefix: str,
    family: SinkFamily,
    env: Mapping[str, str] | None = None,
) -> int:
    """Entrypoint body for ``python -m consumers.<sink>``; returns the exit status.

    Reads :class:`~schemas.runtime.kafka.KafkaSettings` and ``settings_cls`` (a
    :class:`~consumers.settings.RunnerSettings` subclass) from ``prefix``-ed variables,
    builds the sink with ``build(settings)``, runs it until SIGTERM or SIGINT.
    """
    env = os.environ if env is None else env
    try:
        kafka = KafkaSettings.from_env(env)
        options = load(settings_cls, prefix, env)
    except ConfigError as exc:
        configure_logging()
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    configure_logging(options.log_level)
    try:
        sink = build(options)
    except ConfigError as exc:
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    except ConsentRelayError as exc:
        log.error("cannot start the sink: %s: %s", type(exc).__name__, exc)
        return 1
    runner = SinkRunner(sink, kafka, family=family, options=options, metrics=SinkMetrics.create())

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the instruction in flight", signum)
        runner.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.run()
    return 0


__all__ = ["DEFAULT_PORTS", "SinkRunner", "run_sink"]
