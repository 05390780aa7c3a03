"""The one producer behind every way in: serialize, send keyed by subject, report the ack.

:class:`Publisher` owns an idempotent ``acks=all`` confluent-kafka producer
(:meth:`schemas.runtime.kafka.KafkaSettings.producer_config`), one
:class:`~schemas.codec.EventSerializer` per consent event type (never auto-registering),
and a thread that serves delivery reports. :meth:`Publisher.produce` returns at once; its
callback later receives either the broker's acknowledgement (:class:`Published`) or a
:class:`~producers.errors.PublishError`. A delivery that is not acknowledged within
``delivery_timeout_s`` fails with :class:`~producers.errors.BrokerUnavailableError`, so
callers never mistake "queued" for "stored"; nor does a report without an offset, which
librdkafka gives a record it never saw stored (:mod:`schemas.runtime.delivery`). Closing flushes
what is queued and fails whatever still is not acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from producers.errors import BrokerUnavailableError, ProducerClosedError, PublishError
from producers.metrics import ProducerMetrics
from schemas.codec import EventSerializer
from schemas.events import CONSENT_EVENT_TYPES, ConsentEvent
from schemas.runtime import delivery
from schemas.runtime.confirming_producer import ConfirmingProducer, WhenFull
from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger(__name__)

DEFAULT_DELIVERY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker stored a message."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Published:
    """A consent event the broker acknowledged (``acks=all``)."""

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int


OnDelivery = Callable[[Delivery | None, PublishError | None], None]
OnPublished = Callable[[Published | None, PublishError | None], None]


class Publisher:
    """Thread-safe producer of consent events and raw messages, with a delivery thread."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
        metrics: ProducerMetrics | None = None,
        **producer_overrides: Any,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.consent
        self.delivery_timeout_s = delivery_timeout_s
        self._metrics = metrics
        self._registry = settings.registry_client()
        self._serializers = {t: EventSerializer(self._registry, t) for t in CONSENT_EVENT_TYPES}
        timeout_ms = max(1, int(delivery_timeout_s * 1000))
        self._fatal: str | None = None
        self._closed = False
        # Replaced when it forgets every broker (schemas.runtime.renewing_producer): what it
        # held fails with BrokerUnavailableError, for the caller to send again. A full
        # local queue is refused at once: the caller must never block.
        self._producer = ConfirmingProducer(
            settings,
            "publisher",
            config={
                "delivery.timeout.ms": timeout_ms,
                "request.timeout.ms": min(timeout_ms, 30_000),
                "error_cb": self._on_error,
                "logger": logging.getLogger("producers.librdkafka"),
                **producer_overrides,
            },
            when_full=WhenFull.REFUSE,
            serve="consent-relay-delivery",
        )

    def encode(self, event: ConsentEvent) -> bytes:
        """The wire-format bytes of ``event`` on the consent topic."""
        return self._serializers[type(event)](event, self.topic)

    def produce(self, event: ConsentEvent, on_done: OnPublished) -> None:
        """Queue ``event`` keyed by its subject id; ``on_done`` gets the ack or the error.

        Raises at once (nothing queued) when the registry refuses the schema, the local
        queue is full, or the producer is closed or broken.
        """
        value = self.encode(event)
        event_type = type(event).__name__
        source = event.source.value

        def done(delivery: Delivery | None, error: PublishError | None) -> None:
            if delivery is None:
                on_done(None, error)
                return
            if self._metrics is not None:
                self._metrics.events_published.labels(event_type, source).inc()
            on_done(
                Published(
                    event.event_id,
                    event_type,
                    delivery.topic,
                    delivery.partition,
                    delivery.offset,
                ),
                None,
            )

        self.produce_raw(
            self.topic,
            event.subject.id.encode(),
            value,
            done,
            headers=[("event_type", event_type.encode())],
        )

    def produce_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_done: OnDelivery,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue already-encoded bytes (re-driving dead letters); same guarantees."""
        if self._closed:
            raise ProducerClosedError("the producer is closed")
        if self._fatal is not None:
            raise PublishError(f"the producer failed fatally ({self._fatal}); restart it")

        def report(err: KafkaError | None, msg: Message) -> None:
            offset = delivery.stored_offset(msg)
            if err is not None:
                _call(on_done, None, self._error(err))
            elif offset is None:
                # Implicitly acked, maybe never stored (schemas.runtime.delivery): a retry with
                # the same event id may duplicate, silence may lose it.
                _call(on_done, None, PublishError(delivery.NOT_STORED))
            else:
                _call(on_done, Delivery(str(msg.topic()), int(msg.partition() or 0), offset), None)

        try:
            self._producer.send(topic, value, key, headers=headers, on_delivery=report)
        except BufferError as exc:
            raise BrokerUnavailableError(f"local queue full, broker not keeping up: {exc}") from exc
        except KafkaException as exc:
            raise PublishError(f"cannot queue message: {exc}") from exc

    def in_flight(self) -> int:
        """Messages queued or awaiting acknowledgement."""
        return len(self._producer)

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        """Whether the broker answers a metadata request for the consent topic."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException:
            return False
        topic = metadata.topics.get(self.topic)
        return self._fatal is None and topic is not None and topic.error is None

    def flush(self, timeout: float | None = None) -> int:
        """Wait for queued messages to be acknowledged; returns how many are still pending."""
        return int(self._producer.flush(self.delivery_timeout_s if timeout is None else timeout))

    def close(self, timeout: float | None = None) -> None:
        """Flush, then fail (never silently drop) whatever was not acknowledged; idempotent."""
        if self._closed:
            return
        self._closed = True
        remaining = self._producer.close(self.delivery_timeout_s if timeout is None else timeout)
        if remaining:
            log.warning("closing with %d unacknowledged message(s); failing them", remaining)
            self._producer.purge()
            self._producer.flush(0)
        self._registry.close()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            log.error("producer fatal error: %s", err.str())
        else:
            log.warning("producer: %s", err.str())

    def _error(self, err: KafkaError) -> PublishError:
        code = err.code()
        if code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            if not self._closed:
                return BrokerUnavailableError(
                    f"the producer lost every broker and was replaced; send again: {err.str()}"
                )
            return ProducerClosedError(f"closed before acknowledgement: {err.str()}")
        if code == KafkaError._MSG_TIMED_OUT:
            return BrokerUnavailableError(
                f"not acknowledged within {self.delivery_timeout_s:g} s: {err.str()}"
            )
        if err.fatal():
            self._fatal = err.str()
        return PublishError(f"delivery failed: {err.str()}")


def _call(on_done: OnDelivery, delivery: Delivery | None, error: PublishError | None) -> None:
    # A callback error must not kill the delivery thread (every other caller's acks ride on
    # it), so it is logged with its traceback and the thread goes on.
    try:
        on_done(delivery, error)
    except Exception:
        log.exception("delivery callback failed")
