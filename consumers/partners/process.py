"""Every configured partner as its own pipeline, fed by one consumer, in one process with one
/metrics page.

The process reads the partners' instruction topic (``consent.instructions.partner_sharing``,
created at start if missing: one InstructionsIssued per consent event, an item per partner
that must act) with ONE consumer in ONE group (:mod:`consumers.partners.fanout`): each
record is fetched once and handed to the partners its destination header names. Each
partner has its own pipeline (:class:`~consumers.partners.lane.LaneRunner`, the runner
every sink runs, in its own thread), webhook client, retries and circuit breaker, and
takes only its own items; the offsets committed are those every partner has made durable,
with each partner's own position kept in the commit (:mod:`consumers.partners.lanes`).
A partner that is down or hangs holds up nobody: when its buffer is full it reads on by
itself, from its own position. Receipts go out through one producer shared by every
pipeline, each awaiting only its own (a withdrawal's receipts from every partner leave in
one produce request), and a record is decoded once for every pipeline it names
(:mod:`consumers.shared_decodes`). One set of collectors serves every pipeline and the
consumer (:class:`~consumers.metrics.SinkMetrics`, series told apart by their
``destination`` label); ``consent_relay_circuit_breaker_open{destination}`` shows 1 once
a partner failed ``failure_threshold`` times in a row, as its breaker opens.

Before consuming, the process checks that no partner's legacy topic (one per partner,
releases 1 and 2) still holds instructions its group has not read
(:mod:`consumers.partners.legacy`): it refuses to start rather than skip them. On the
first start of the one group, each partner resumes from the offsets of the group it had
of its own in earlier versions (``<group>.<partner>``, :mod:`consumers.partners.upgrade`).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from consumers.groups import adopt_legacy_group, default_group, legacy_group
from consumers.instruction_records import SharedInstructions
from consumers.metrics import SinkMetrics
from consumers.partners.answers import Answers, RecentAnswers, SqliteAnswers
from consumers.partners.breaker import BreakerState, CircuitBreaker
from consumers.partners.config import PartnerConfig, PartnersConfig
from consumers.partners.fanout import Fanout
from consumers.partners.identities import IdentityMap
from consumers.partners.lane import LaneRunner
from consumers.partners.lanes import Lanes
from consumers.partners.legacy import refuse_legacy_backlog
from consumers.partners.settings import PartnerSinkSettings
from consumers.partners.sink import PartnerSink
from consumers.partners.upgrade import adopt_partner_groups
from consumers.partners.webhook import WebhookClient
from consumers.runner import DEFAULT_PORTS
from consumers.shared_decodes import SharedDecodes
from consumers.shared_producer import SharedProducer
from schemas.errors import ConsentRelayError
from schemas.runtime.admin import wait_for_topics
from schemas.runtime.http_server import HttpServer, open_routes
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily

log = logging.getLogger(__name__)

FAMILY = SinkFamily.PARTNER_SHARING


class PartnerSinkProcess:
    """Runs one pipeline per partner, fed by one consumer, until :meth:`stop`."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: PartnerSinkSettings,
        config: PartnersConfig,
        *,
        metrics_port: int | None = None,
    ) -> None:
        """Build every partner's pipeline; nothing connects until :meth:`run`.

        ``metrics_port`` None means ``settings.http_port`` or 8093; 0 picks a free port.
        """
        self.settings = settings
        self.kafka = kafka
        identities = IdentityMap(config.identity_map) if config.identity_map else None
        self.group_id = settings.group_id or default_group(FAMILY, kafka.topic_prefix)
        """The sink's consumer group."""
        self.legacy_group = settings.group_id or legacy_group(FAMILY)
        """The group's name before it took the topic prefix (:mod:`consumers.groups`);
        ``<legacy_group>.<partner>`` were the per-partner groups."""
        # One producer for every pipeline's receipts: a withdrawal's sixteen receipts leave
        # in one produce request, not sixteen (each pipeline still awaits only its own).
        self._producer = SharedProducer(kafka)
        # A record naming several partners is decoded once, by the first pipeline to read it.
        self._decodes: SharedDecodes[SharedInstructions] = SharedDecodes()
        self.lanes = Lanes([p.name for p in config.partners], bound=settings.lane_records)
        """Which partner has finished what (:mod:`consumers.partners.lanes`)."""
        self.metrics = SinkMetrics.create()
        """The process's collectors, shared by every pipeline and the consumer."""
        self.runners: dict[str, LaneRunner] = {}
        for partner in config.partners:
            self.runners[partner.name] = self._runner(partner, kafka, identities)
        self._fanout = Fanout(
            kafka,
            settings,
            self.lanes,
            group_id=self.group_id,
            topic=kafka.topics.instructions(FAMILY),
            metrics=self.metrics,
        )
        default = settings.http_port or DEFAULT_PORTS[FAMILY]
        self._port = default if metrics_port is None else metrics_port
        self._http: HttpServer | None = None
        self._stop = threading.Event()

    @property
    def http_port(self) -> int | None:
        """The port /metrics is served on, once :meth:`run` has started it."""
        return self._http.port if self._http is not None else None

    @property
    def partner_groups(self) -> dict[str, str]:
        """Each partner's consumer group of earlier versions (name → group)."""
        return {name: f"{self.legacy_group}.{name}" for name in self.runners}

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the consumer has subscribed and every pipeline takes instructions."""
        return self._fanout.ready.wait(timeout) and all(
            r.ready.wait(timeout) for r in self.runners.values()
        )

    def stop(self) -> None:
        """Ask every pipeline to finish its instructions in flight, then commit and return."""
        self._stop.set()
        self._fanout.stop()
        for runner in self.runners.values():
            runner.stop()

    def run(self) -> None:
        """Run every pipeline until :meth:`stop`; re-raises the first pipeline's failure."""
        # The stream worker creates the partners' topic (its one owner); this process
        # waits for it, and for its broker (a stop ends the wait).
        topics = self.kafka.topics
        if not wait_for_topics(self.kafka, (topics.instructions(FAMILY),), stop=self._stop):
            self._producer.close()
            return
        try:
            # Whichever name the group had before, its offsets carry over: the one group
            # without the prefix, else each partner's group of the versions before it.
            adopt_legacy_group(
                self.kafka,
                self.group_id,
                self.legacy_group,
                topics.instructions(FAMILY),
                stop=self._stop,
            )
            refuse_legacy_backlog(self.kafka, self.partner_groups)
            adopt_partner_groups(
                self.kafka, self.group_id, self.partner_groups, topics.instructions(FAMILY)
            )
        except ConsentRelayError:
            self._producer.close()
            raise
        routes = open_routes(self.metrics.registry)
        self._http = HttpServer(self.settings.http_host, self._port, routes).start()
        try:
            with ThreadPoolExecutor(len(self.runners) + 1, thread_name_prefix="partner") as pool:
                fetching = pool.submit(self._fanout.run)
                pipelines: list[Future[None]] = [
                    pool.submit(runner.run) for runner in self.runners.values()
                ]
                wait([fetching, *pipelines], return_when=FIRST_COMPLETED)
                # One ended: by stop(), or by a fatal error; end the others too. The
                # consumer commits last, once every pipeline has reported what is durable.
                self.stop()
                wait(pipelines)
                self._fanout.lanes_stopped()
                for future in [*pipelines, fetching]:
                    future.result()
        finally:
            self._fanout.lanes_stopped()
            self._producer.close()
            self._http.stop()

    def _runner(
        self,
        partner: PartnerConfig,
        kafka: KafkaSettings,
        identities: IdentityMap | None,
    ) -> LaneRunner:
        breaker = CircuitBreaker(
            failure_threshold=partner.failure_threshold, reset_seconds=partner.reset_seconds
        )
        sink = PartnerSink(
            partner,
            client=WebhookClient(
                partner.url, partner.secret, timeout_seconds=partner.timeout_seconds
            ),
            breaker=breaker,
            identities=identities,
            answers=self._answers(partner.name),
        )
        runner = LaneRunner(
            sink,
            kafka,
            group_id=self.group_id,
            family=FAMILY,
            # The runner's own "keeps failing" gauge agrees with the breaker's threshold.
            options=self.settings.model_copy(
                update={"breaker_threshold": partner.failure_threshold}
            ),
            serve_http=False,
            producer=self._producer,
            decodes=self._decodes,
            metrics=self.metrics,
            lanes=self.lanes,
        )
        runner.telemetry.watch(partner.name)

        def on_change(state: BreakerState) -> None:
            log.warning("partner %s: circuit %s", partner.name, state.value)

        breaker.on_change = on_change
        return runner

    def _answers(self, partner: str) -> Answers:
        if self.settings.database is None:
            return RecentAnswers()
        return SqliteAnswers(self.settings.database, partner)
