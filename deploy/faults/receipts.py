"""Watching the sinks' receipts live, to see when each destination honours again.

A thread reads the receipts topic from the beginning as the sinks write it and keeps,
per receipt that honours an instruction (APPLIED or SKIPPED, the bench's definition),
the destination, the event and the time the sink says the effect became durable. Only
withdrawals ask for receipts, so each one is a withdrawal honoured. A recovery is read
off this list: the first honoured withdrawal at a destination at or after a moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from deploy.bench.collect import HONOURING
from schemas.codec import EventDecoder
from schemas.errors import ConsentRelayError
from schemas.runtime.kafka import KafkaSettings


@dataclass(frozen=True, slots=True)
class Honoured:
    """A withdrawal a destination honoured."""

    label: str
    event_id: str
    applied_ms: int


class ReceiptWatch(threading.Thread):
    """Tails the receipts topic until :meth:`stop`."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(name="faults-receipts", daemon=True)
        self._settings = settings
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._honoured: list[Honoured] = []
        self.undecodable = 0

    def run(self) -> None:
        """Read until stopped (a broker outage only pauses it)."""
        settings = self._settings
        decoder = EventDecoder(settings.registry_client())
        consumer = Consumer(
            settings.consumer_config(
                f"{settings.topic_prefix}faults.receipts", **{"enable.partition.eof": False}
            )
        )
        topic = settings.topics.receipts
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)]
        )
        try:
            while not self._halt.is_set():
                for message in consumer.consume(500, 0.2):
                    if message.error() is not None:
                        continue
                    try:
                        _, record = decoder.decode_dict(message.value())
                    except ConsentRelayError:
                        self.undecodable += 1
                        continue
                    # A sink's batch of receipts (InstructionsAnswered), or one receipt.
                    honoured = [
                        Honoured(
                            f"{r['sink_family']}/{r['destination']}",
                            r["event_id"],
                            int(r["applied_at"].timestamp() * 1000),
                        )
                        for r in record.get("receipts", (record,))
                        if r["outcome"] in HONOURING
                    ]
                    with self._lock:
                        self._honoured.extend(honoured)
        finally:
            consumer.close()

    def since(self, moment_ms: int) -> list[Honoured]:
        """Honoured withdrawals with an effect at or after ``moment_ms``."""
        with self._lock:
            return [h for h in self._honoured if h.applied_ms >= moment_ms]

    def stop(self) -> None:
        """End the thread."""
        self._halt.set()
        self.join(10)
