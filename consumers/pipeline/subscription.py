"""The group's consumer over its life: join, replace when it forgot every broker, leave.

A consumer is watched for the loss of every broker (:mod:`schemas.runtime.broker_loss`);
one that lost them, or holds work whose receipts were not delivered, is replaced by a
new one (:meth:`Subscription.start_over`), its partitions counted as lost. Offsets are
committed by librdkafka in the background only once stored (``enable.auto.offset.store``
stays off): only those of durable work (:mod:`.checkpoints`). A clean stop leaves the
group at once, so the partitions move without waiting for the session to time out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException

from consumers.metrics import SinkMetrics
from consumers.pipeline.progress import Progress
from consumers.pipeline.rebalance import Rebalance
from consumers.pipeline.telemetry import record_lag
from consumers.settings import RunnerSettings
from schemas.runtime.broker_loss import BrokerWatch, unsteady_limit
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.membership import Membership, claim

log = logging.getLogger(__name__)

LEAVE_TIMEOUT_SECONDS = 10.0
"""Longest a clean stop waits for the group to take this member's partitions back."""


class Subscription:
    """Makes, replaces and closes the group's consumer; see the module doc."""

    def __init__(
        self,
        settings: KafkaSettings,
        options: RunnerSettings,
        progress: Progress,
        rebalance: Rebalance,
        metrics: SinkMetrics,
        *,
        group_id: str,
        topic: str,
    ) -> None:
        self._settings = settings
        self._options = options
        self._progress = progress
        self._rebalance = rebalance
        self._metrics = metrics
        self.group_id = group_id
        self.topic = topic
        self.watch: BrokerWatch | None = None
        """The current consumer's watch for the loss of every broker."""
        self._membership: Membership | None = None

    @property
    def lost(self) -> bool:
        """Whether the current consumer has forgotten every broker."""
        return self.watch is not None and self.watch.lost

    def subscribe(self) -> Consumer:
        """A new consumer in the group, watched for the loss of every broker."""
        options = self._options
        watch = self.watch = BrokerWatch(
            f"sink {self.group_id}",
            self._on_stats,
            unsteady_after=unsteady_limit(options.session_timeout_seconds),
        )
        overrides: dict[str, object] = {
            **watch.config(),
            "queued.max.messages.kbytes": options.prefetch_kbytes,
        }
        if options.commit_interval_seconds > 0:
            # Still only the offsets stored by a checkpoint, i.e. of durable work.
            overrides["enable.auto.commit"] = True
            overrides["auto.commit.interval.ms"] = round(options.commit_interval_seconds * 1000)
        if options.static_membership:
            if self._membership is None:
                self._membership = claim(self.group_id, options.group_instance_id)
            overrides["group.instance.id"] = self._membership.name
        config = self._settings.consumer_config(
            self.group_id,
            session_timeout_seconds=options.session_timeout_seconds,
            **overrides,
        )
        consumer = self._progress.consumer = Consumer(config)
        consumer.subscribe(
            [self.topic],
            on_assign=self._rebalance.on_assign,
            on_revoke=self._rebalance.on_revoke,
            on_lost=self._rebalance.on_lost,
        )
        return consumer

    def start_over(self, consumer: Consumer) -> Consumer:
        """A new consumer in place of ``consumer``, whose partitions count as lost (the
        caller dropped what was fetched and not committed)."""
        self._progress.paused = False
        self._progress.consumer = None  # its callbacks are ignored from now on
        try:
            self.close(consumer)
        except KafkaException as exc:
            log.warning("closing the old consumer: %s", exc)
        return self.subscribe()

    def close(self, consumer: Consumer) -> None:
        """Close ``consumer`` as its watch says (:meth:`BrokerWatch.close`)."""
        if self.watch is not None:
            self.watch.close(consumer)
        else:
            consumer.close()

    def leave_group(self) -> None:
        """Hand this member's partitions over now. A static member's close() does not
        leave the group (Kafka keeps its partitions for its return until the session
        times out); unsubscribing does, once the revocation has run in a poll."""
        consumer = self._progress.consumer
        if consumer is None:
            return
        consumer.unsubscribe()
        deadline = time.monotonic() + LEAVE_TIMEOUT_SECONDS
        while consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.1)
        # The LeaveGroup request goes out after the revocation, from librdkafka's thread.
        consumer.poll(0.2)

    def end(self) -> None:
        """Close the consumer, if any, and give the static member's name back."""
        progress = self._progress
        consumer = progress.consumer
        if consumer is not None:
            if self.lost:
                progress.consumer = None  # its callbacks are ignored from now on
            self.close(consumer)
            progress.consumer = None
        if self._membership is not None:
            self._membership.release()
            self._membership = None

    def _on_stats(self, stats: Mapping[str, Any]) -> None:
        record_lag(self._metrics, self.group_id, stats)
