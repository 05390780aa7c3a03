"""Consuming: fetch a chunk, process it, make it durable, until stopped.

A chunk is whatever has been fetched, up to ``batch_size``, in partition order. Work a
retry wait abandoned (a stop, a revocation) goes back ahead of later messages, so
nothing is skipped and per-partition order holds. A receipt or dead letter the broker
did not take (:class:`~consumers.publisher.DeliveryError`) commits nothing past it: the
runner reads again from the last commit, as after a crash, with a new consumer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, Message

from consumers.pipeline.answering import Answering
from consumers.pipeline.applying import Applier
from consumers.pipeline.checkpoints import Checkpoints
from consumers.pipeline.progress import Progress, coordinates, partition_of
from consumers.pipeline.retrying import AbandonedError
from consumers.pipeline.subscription import Subscription
from consumers.publisher import DeliveryError
from consumers.settings import RunnerSettings
from schemas.runtime.backoff import Backoff

log = logging.getLogger(__name__)


class ConsumeLoop:
    """The consume loop of a runner that has a consumer of its own."""

    def __init__(
        self,
        progress: Progress,
        subscription: Subscription,
        applier: Applier,
        checkpoints: Checkpoints,
        answering: Answering,
        *,
        options: RunnerSettings,
        backoff: Backoff,
        stop: threading.Event,
        ready: threading.Event,
        replaced: Callable[[], None],
    ) -> None:
        """``replaced`` counts a consumer replaced because it forgot every broker."""
        self._progress = progress
        self._subscription = subscription
        self._applier = applier
        self._checkpoints = checkpoints
        self._answering = answering
        self._options = options
        self._backoff = backoff
        self._stop = stop
        self._ready = ready
        self._replaced = replaced

    def run(self) -> None:
        """Consume until stopped; raises :class:`AbandonedError` if stopped while waiting to
        read again after an undelivered receipt."""
        subscription = self._subscription
        consumer = subscription.subscribe()
        self._ready.set()
        log.info("consuming %s as group %s", subscription.topic, subscription.group_id)
        undelivered = 0
        while not self._stop.is_set():
            if subscription.lost:
                self._replaced()
                consumer = self._start_over(consumer)
            try:
                self.step(consumer)
                undelivered = 0
            except DeliveryError as exc:
                # A receipt or dead letter the broker did not take (a producer that forgot
                # every broker fails all it held): nothing past it was committed, so read
                # again from the last commit, as after a crash, without one.
                self.drop_uncommitted()
                undelivered += 1
                delay = self._backoff.delay(undelivered)
                log.warning("%s; reading again from the last commit in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    raise AbandonedError from exc
                consumer = self._start_over(consumer)

    def step(self, consumer: Consumer) -> None:
        """Fetch if nothing is pending, process a chunk, make it durable."""
        progress = self._progress
        if not progress.pending:
            self._fetch(consumer)
        size = min(len(progress.pending), self._options.batch_size)
        chunk = [progress.pending.popleft() for _ in range(size)]
        progress.finished.clear()
        try:
            self._applier.process(chunk)
        except AbandonedError:
            # Put back what is unfinished on partitions still ours, ahead of later
            # messages, so nothing is skipped and per-partition order holds.
            keep = [
                m
                for m in chunk
                if coordinates(m) not in progress.finished and partition_of(m) in progress.assigned
            ]
            progress.pending.extendleft(reversed(keep))
            progress.resume()
        self._checkpoints.checkpoint()

    def drop_uncommitted(self) -> None:
        """Forget what was fetched, finished or answered and not committed: none of it
        may be committed now (a stop commits what is finished)."""
        self._progress.forget(set(self._progress.assigned))
        self._answering.answered.clear()  # their receipts were not acknowledged

    def _start_over(self, consumer: Consumer) -> Consumer:
        """A new consumer in place of ``consumer``, which forgot every broker
        (:mod:`schemas.runtime.broker_loss`) or holds work whose receipts were not delivered.

        Its partitions count as lost: what was fetched and not yet committed is dropped
        here and fetched again by whoever is assigned them (this member, usually), to be
        applied again idempotently and answered again, as after a crash."""
        self.drop_uncommitted()
        return self._subscription.start_over(consumer)

    def _fetch(self, consumer: Consumer) -> None:
        """Wait for the first message, then take whatever else is already fetched.

        ``consume(n, timeout)`` would hold a lone message until ``n`` arrive or the
        timeout ends; this keeps a trickle fast and a backlog batched.
        """
        first: Message | None = consumer.poll(self._options.poll_timeout_seconds)
        if first is None:
            return
        self._progress.pending.append(first)
        if self._options.batch_size > 1:
            self._progress.pending.extend(consumer.consume(self._options.batch_size - 1, 0))
