"""Retry work a downstream refused for now, with jittered exponential backoff.

A retriable failure (:data:`RETRIABLE`) makes what is already done durable first (the
wait may be long), then waits (:class:`Waits`) and tries the same work again, until it
succeeds: nothing is committed past it. A stop, or the chunk's partitions going to
another member, cut the wait short with :class:`AbandonedError`: the work is left
uncommitted for whoever runs it next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from confluent_kafka import Message

from consumers.pipeline.progress import Progress, partition_of
from consumers.pipeline.telemetry import Telemetry
from consumers.protocol import RetriableSinkError
from schemas.errors import RegistryUnavailableError
from schemas.runtime.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIABLE = (RetriableSinkError, RegistryUnavailableError)
"""Failures that mean "not now": wait and try the same message again."""


class AbandonedError(Exception):
    """The work in flight must be left uncommitted (stopping, or partition revoked)."""


class Waits(Protocol):
    """How a retry waits: ``wait(delay, chunk)`` sleeps, or raises :class:`AbandonedError`."""

    def wait(self, delay: float, chunk: Sequence[Message]) -> None:
        """Sleep ``delay`` seconds unless the work on ``chunk`` must be abandoned."""


class GroupWait:
    """Waits while staying in the group: the consumer paused, polled for its membership."""

    def __init__(self, progress: Progress, stop: threading.Event) -> None:
        self._progress = progress
        self._stop = stop

    def wait(self, delay: float, chunk: Sequence[Message]) -> None:
        """Sleep ``delay`` seconds; abandon on stop or when a chunk's partition is revoked."""
        progress = self._progress
        consumer = progress.consumer
        if consumer is None:
            if self._stop.wait(delay):
                raise AbandonedError
            return
        deadline = time.monotonic() + delay
        while True:
            # Paused partitions deliver nothing, yet polling keeps the membership alive
            # and runs rebalance callbacks; re-pausing covers newly assigned partitions.
            consumer.pause(consumer.assignment())
            progress.paused = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = consumer.poll(min(remaining, 0.5))
            if polled is not None:
                progress.pending.append(polled)
            if self._stop.is_set():
                raise AbandonedError
            if any(partition_of(m) not in progress.assigned for m in chunk):
                raise AbandonedError


class Retrier:
    """``retrier(attempt, destination, chunk)``: ``attempt()`` until it stops raising a
    retriable error, waiting in between."""

    def __init__(
        self,
        backoff: Backoff,
        telemetry: Telemetry,
        waits: Waits,
        *,
        before_wait: Callable[[], None],
        after_recovery: Callable[[], None],
    ) -> None:
        """``before_wait`` makes done work durable at a first failure; ``after_recovery``
        undoes what the waits did (e.g. resume paused partitions)."""
        self.backoff = backoff
        self._telemetry = telemetry
        self._waits = waits
        self._before_wait = before_wait
        self._after_recovery = after_recovery

    def __call__(
        self,
        attempt: Callable[[], T],
        destination: str,
        chunk: Sequence[Message] | None = None,
    ) -> T:
        """``attempt()``'s value, once it stops failing with a retriable error."""
        failures = 0
        while True:
            try:
                value = attempt()
            except RETRIABLE as exc:
                failures += 1
                self._telemetry.failed(destination, failures)
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "%s unavailable (%s), retry %d: %s",
                        destination,
                        type(exc).__name__,
                        failures,
                        exc,
                    )
                if failures == 1:
                    # Make what is already done durable before waiting, possibly long.
                    self._before_wait()
                self._waits.wait(self.backoff.delay(failures), chunk or [])
                continue
            if failures:
                self._telemetry.recovered(destination)
                log.info("%s available again", destination)
                self._after_recovery()
            return value
