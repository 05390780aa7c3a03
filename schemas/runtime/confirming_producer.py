"""The relay's one confirming producer: queue records, then know which ones the broker stored.

:class:`ConfirmingProducer` is an idempotent ``acks=all`` confluent-kafka producer
(:meth:`schemas.runtime.kafka.KafkaSettings.producer_config`) that the sinks' publisher,
the client library's publisher, the gate and the state upgrade write through. What
differs between them is a parameter, not a copy:

- what :meth:`~ConfirmingProducer.send` does while librdkafka's local queue is full
  (:class:`WhenFull`): serve delivery reports and try again, until the caller says stop
  (the gate, the sinks), or refuse at once with ``BufferError`` (the client library,
  whose caller must never block);
- whether the client is replaced when it forgot every broker
  (:class:`~schemas.runtime.renewing_producer.RenewingProducer`; the gate instead starts
  all its clients again);
- whether a thread of its own serves the delivery reports (a producer shared between
  callers, or one whose callers never poll).

A caller that must know its own records were stored counts them in
:class:`Confirmations` (``send(..., confirm=...)``) and asks :meth:`~ConfirmingProducer.confirm`:
flush (unless the thread serves the reports), wait, and read what was not stored, a
report without an offset included (:mod:`schemas.runtime.delivery`). Several owners can
share one producer, each waiting only for its own records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import ClusterMetadata

from schemas.runtime import delivery
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.renewing_producer import RenewingProducer

SERVE_SECONDS: Final = 0.1
"""Longest the serving thread waits in one poll; also how soon it sees :meth:`close`."""
FULL_WAIT_SECONDS: Final = 0.1
"""Longest one serving of delivery reports while the local queue is full."""

OnDelivery = Callable[[KafkaError | None, Message], None]


class WhenFull(StrEnum):
    """What :meth:`ConfirmingProducer.send` does while librdkafka's local queue is full."""

    WAIT = "wait"
    """Serve delivery reports (up to the producer's ``full_wait`` seconds) and try again,
    until the caller's ``stop()`` turns true."""
    REFUSE = "refuse"
    """Raise ``BufferError`` at once: the caller must not block."""


@dataclass(frozen=True, slots=True)
class Confirmed:
    """What :meth:`ConfirmingProducer.confirm` found of one owner's records."""

    unacknowledged: int
    """Records with no delivery report yet."""
    failures: tuple[str, ...]
    """Why each record reported as not stored was not (oldest first)."""

    @property
    def ok(self) -> bool:
        """Whether every record was stored."""
        return not self.unacknowledged and not self.failures


class Confirmations:
    """The records one owner sent and is waiting for; thread-safe (reports come on
    whichever thread serves them)."""

    def __init__(self) -> None:
        self._settled = threading.Condition()
        self._pending = 0
        self._failures: list[str] = []

    def expect(self) -> None:
        """One more record is on its way (or a hand-over that :meth:`settle` answers)."""
        with self._settled:
            self._pending += 1

    def cancel(self) -> None:
        """The record :meth:`expect` announced was never queued."""
        self.settle(None)

    def report(self, error: KafkaError | None, message: Message) -> None:
        """A delivery report (``on_delivery``): stored only with an offset."""
        self.settle(delivery.failure(error, message))

    def settle(self, failure: str | None) -> None:
        """One expected record is answered: stored (None) or not (why)."""
        with self._settled:
            if failure is not None:
                self._failures.append(failure)
            self._pending -= 1
            if self._pending == 0:
                self._settled.notify_all()

    def wait(self, timeout: float) -> Confirmed:
        """Wait up to ``timeout`` seconds until every expected record is answered; what
        was not stored (the failures are taken: the next wait sees only new ones)."""
        with self._settled:
            self._settled.wait_for(lambda: self._pending == 0, timeout)
            failures, self._failures = self._failures, []
            return Confirmed(self._pending, tuple(failures))


class ConfirmingProducer:
    """An idempotent ``acks=all`` producer whose records are confirmed, not assumed."""

    def __init__(
        self,
        kafka: KafkaSettings,
        name: str,
        *,
        config: Mapping[str, Any] | None = None,
        when_full: WhenFull = WhenFull.WAIT,
        full_wait: float = FULL_WAIT_SECONDS,
        renew: bool = True,
        on_replaced: Callable[[], None] | None = None,
        serve: str | None = None,
    ) -> None:
        """``config``: librdkafka settings over the relay's producer configuration;
        ``name`` says whose producer it is in the log; ``renew``: replace a client that
        forgot every broker (``on_replaced`` is told); ``serve``: the name of a thread
        that serves the delivery reports until :meth:`close` (None: the caller polls)."""
        settings = kafka.producer_config(**(config or {}))
        self.client: RenewingProducer | Producer = (
            RenewingProducer(settings, name, on_replaced) if renew else Producer(settings)
        )
        self._refuse = when_full is WhenFull.REFUSE
        self._full_wait = full_wait
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if serve is not None:
            self._thread = threading.Thread(target=self._serve, name=serve, daemon=True)
            self._thread.start()

    @property
    def serving(self) -> bool:
        """Whether a thread of this producer serves the delivery reports."""
        return self._thread is not None

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        on_delivery: OnDelivery | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        confirm: Confirmations | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Queue one record; ``on_delivery`` (or ``confirm``, which counts it) hears how
        it went. While the local queue is full: :class:`WhenFull`. False if ``stop()``
        turned true before it was queued."""
        if confirm is not None:
            confirm.expect()
            on_delivery = confirm.report
        where = -1 if partition is None else partition  # -1: the producer's partitioner
        client = self.client
        try:
            while True:
                try:
                    if headers is None:  # positional: the gate queues tens of thousands a second
                        client.produce(topic, value, key, where, on_delivery=on_delivery)
                    else:
                        client.produce(
                            topic, value, key, where, on_delivery=on_delivery, headers=headers
                        )
                    return True
                except BufferError:
                    if self._refuse:
                        raise
                    client.poll(self._full_wait)
                    if stop is not None and stop():
                        if confirm is not None:
                            confirm.cancel()
                        return False
        except BaseException:
            if confirm is not None:
                confirm.cancel()
            raise

    def confirm(self, confirmations: Confirmations, timeout: float) -> Confirmed:
        """Send what is queued and wait up to ``timeout`` seconds for the reports of the
        records ``confirmations`` counts; what was not stored. Without a serving thread
        the wait is a flush (it serves the reports, other owners' too)."""
        wait = timeout
        if self._thread is None:
            self.flush(timeout)
            wait = 0.0
        return confirmations.wait(wait)

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        """``Producer.produce`` as it is: a full queue raises ``BufferError`` whatever
        :class:`WhenFull` says (for a caller with its own answer to it)."""
        self.client.produce(topic, *args, **kwargs)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports for up to ``timeout`` seconds."""
        return int(self.client.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds until nothing is queued or in flight; the number
        still waiting."""
        return int(self.client.flush(timeout))

    def purge(self) -> None:
        """Fail everything queued or in flight (reports served by the next poll)."""
        self.client.purge()

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """The cluster's metadata (of ``topic`` only, if given)."""
        metadata: ClusterMetadata = self.client.list_topics(topic, timeout=timeout)
        return metadata

    def __len__(self) -> int:
        return len(self.client)

    def close(self, timeout: float) -> int:
        """Stop the serving thread, then send what is still queued; the number of records
        left unacknowledged after ``timeout`` seconds."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        return self.flush(timeout)

    def _serve(self) -> None:
        while not self._closing.is_set():
            self.client.poll(SERVE_SECONDS)
