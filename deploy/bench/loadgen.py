"""Publishing prepared events at a fixed offered rate, or as fast as the producer can.

A plain confluent-kafka ``Producer`` with the relay's producer settings (idempotent,
``acks=all``), keyed by subject id. Pacing is by schedule, not by sleep per event:
at any moment the generator has sent ``rate * elapsed`` events, so a slow moment is
caught up rather than lost. Each event is stamped with the wall-clock millisecond at
which it is handed to the producer. Withdrawals count as sent only once acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from deploy.bench.workload import Prepared, stamp
from schemas.runtime.kafka import KafkaSettings

_TICK_S = 0.002


@dataclass(frozen=True, slots=True)
class SentWithdrawal:
    """A withdrawal or rights request the broker acknowledged."""

    kind: str
    sent_ms: int
    measured: bool
    """Sent in the measured part of its phase (not during the warm-up)."""


@dataclass(slots=True)
class SendReport:
    """What one call of :meth:`LoadGenerator.send` did."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    started: float = 0.0
    finished: float = 0.0
    withdrawals: dict[str, SentWithdrawal] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float:
        """Events handed to the producer per second."""
        span = self.finished - self.started
        return self.sent / span if span > 0 else 0.0


class LoadGenerator:
    """Sends prepared events to one topic."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            settings.producer_config(**{"queue.buffering.max.messages": 500_000})
        )
        self._report = SendReport()
        self._stamps: dict[int, bytes] = {}

    def send(self, events: Sequence[Prepared], rate: float | None, *, measured: bool) -> SendReport:
        """Send ``events`` at ``rate`` per second (None: as fast as possible), then flush."""
        report = self._report = SendReport(started=time.time())
        producer = self._producer
        produce = producer.produce
        topic = self.topic
        counted = self._counted
        start = time.perf_counter()
        index, total = 0, len(events)
        while index < total:
            if rate is None:
                due = total
            else:
                due = min(total, int((time.perf_counter() - start) * rate) + 1)
                if due <= index:
                    time.sleep(_TICK_S)
                    continue
            now_ms = int(time.time() * 1000)
            stamp_bytes = self._stamp(now_ms)
            while index < due:
                event = events[index]
                callback = (
                    partial(self._withdrawal_delivered, event, now_ms, measured)
                    if event.withdrawal
                    else counted
                )
                try:
                    produce(topic, event.value(stamp_bytes), event.key, on_delivery=callback)
                except BufferError:
                    producer.poll(0.05)
                    break
                index += 1
                if rate is None and index % 1000 == 0:
                    producer.poll(0)
                    break  # fresh stamp every thousand events
            report.sent = index
            producer.poll(0)
        report.finished = time.time()
        remaining = producer.flush(60)
        report.failed += remaining
        return report

    def close(self) -> None:
        """Flush whatever is left."""
        self._producer.flush(30)

    def _stamp(self, ms: int) -> bytes:
        cached = self._stamps.get(ms)
        if cached is None:
            if len(self._stamps) > 10_000:
                self._stamps.clear()
            cached = self._stamps[ms] = stamp(ms)
        return cached

    def _counted(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self._report.acked += 1
        else:
            self._report.failed += 1

    def _withdrawal_delivered(
        self,
        event: Prepared,
        sent_ms: int,
        measured: bool,
        err: KafkaError | None,
        _msg: Message,
    ) -> None:
        if err is not None:
            self._report.failed += 1
            return
        self._report.acked += 1
        self._report.withdrawals[event.event_id] = SentWithdrawal(event.kind, sent_ms, measured)
