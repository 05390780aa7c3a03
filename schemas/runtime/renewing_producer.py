"""A producer that replaces its librdkafka client when that client forgot every broker.

A producer can lose every broker in a broker's controlled shutdown and never find one
again (:mod:`schemas.runtime.broker_loss`): on a private broker, 16 producers through 6 s
broker restarts, one or two of them delivered nothing any more in 2 of 5 restarts.
:class:`RenewingProducer` offers the calls the relay makes of a confluent-kafka
``Producer`` and sends each to its current client; :meth:`~RenewingProducer.poll` and
:meth:`~RenewingProducer.flush` first replace a client that lost every broker. The old
client's queued and in-flight messages are purged, so each one's delivery callback
reports a failure (``_PURGE_QUEUE`` or ``_PURGE_INFLIGHT``) and its owner sends it again
or does not commit past it, exactly as after any failed delivery; a new client with the
same configuration takes over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import ClusterMetadata

from schemas.runtime.broker_loss import BrokerWatch

FLUSH_SLICE_SECONDS = 1.0
"""Longest one wait inside :meth:`RenewingProducer.flush`: how late it sees a loss."""


class RenewingProducer:
    """A confluent-kafka producer, replaced when it forgot every broker; thread-safe."""

    def __init__(
        self,
        config: dict[str, Any],
        name: str,
        on_replaced: Callable[[], None] | None = None,
    ) -> None:
        """``config``: the librdkafka configuration (its ``stats_cb`` is this object's
        watch); ``name`` says whose producer it is in the log; ``on_replaced`` is
        called after each replacement (a metric)."""
        self._config = config
        self._name = name
        self._on_replaced = on_replaced
        self._lock = threading.Lock()
        self._watch: BrokerWatch
        self._producer = self._new()
        self.replacements = 0

    def _new(self) -> Producer:
        self._watch = BrokerWatch(self._name)
        return Producer({**self._config, **self._watch.config()})

    @property
    def lost_broker(self) -> bool:
        """Whether the current client forgot every broker (replaced at the next poll
        or flush)."""
        return self._watch.lost

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        """``Producer.produce`` on the current client."""
        with self._lock:
            self._producer.produce(topic, *args, **kwargs)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks, after replacing a client that lost every broker."""
        self.renew_if_lost()
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds until nothing is queued or in flight; the
        number still waiting. A client that loses every broker meanwhile is replaced
        (its messages fail) within :data:`FLUSH_SLICE_SECONDS`."""
        deadline = time.monotonic() + timeout
        while True:
            self.renew_if_lost()
            wait = min(FLUSH_SLICE_SECONDS, max(0.0, deadline - time.monotonic()))
            left = int(self._producer.flush(wait))
            if not left or time.monotonic() >= deadline:
                return left

    def purge(self) -> None:
        """Fail everything queued or in flight (callbacks served by the next poll)."""
        self._producer.purge()

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """``Producer.list_topics`` on the current client."""
        metadata: ClusterMetadata = self._producer.list_topics(topic, timeout=timeout)
        return metadata

    def __len__(self) -> int:
        return len(self._producer)

    def renew_if_lost(self) -> bool:
        """Replace the client if it forgot every broker; whether it was replaced."""
        if not self._watch.lost:
            return False
        with self._lock:
            if not self._watch.lost:
                return False  # another thread replaced it meanwhile
            old = self._producer
            self._producer = self._new()
            self.replacements += 1
        old.purge()
        old.flush(0)  # serves the purged messages' delivery callbacks: they failed
        if self._on_replaced is not None:
            self._on_replaced()
        return True
