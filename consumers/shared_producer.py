"""One Kafka producer for several sink runners of a process.

The partner sink runs a runner per partner. With a producer each, one withdrawal's
receipts left as sixteen produce requests from sixteen clients (sixteen idempotent
producer ids, each with its own threads and broker connection); shared, the receipts
written while an earlier request is in flight leave together in the next one (the
relay's producers do not linger: :meth:`schemas.runtime.kafka.KafkaSettings.producer_config`).
Each runner's
:class:`~consumers.publisher.Publisher` still waits only for the acknowledgements of
what it produced itself, never for another partner's, so a runner's flush means what
it meant with a producer of its own. Delivery reports are served by one thread of this
producer, not by whichever runner happens to wait. The runners' receipts are joined
too (:mod:`consumers.joined_receipts`): one record per receipts partition for what they
answer at about the same time, not one per runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from consumers.joined_receipts import JoinedReceipts
from schemas.runtime.confirming_producer import ConfirmingProducer
from schemas.runtime.kafka import KafkaSettings


class SharedProducer:
    """A producer created at first use, with a thread serving its delivery reports."""

    def __init__(
        self, settings: KafkaSettings, on_replaced: Callable[[], None] | None = None
    ) -> None:
        """``on_replaced``: called each time the producer replaced a client that forgot
        every broker (:mod:`schemas.runtime.renewing_producer`; its thread does it)."""
        self._settings = settings
        self._on_replaced = on_replaced
        self._lock = threading.Lock()
        self._producer: ConfirmingProducer | None = None
        self.receipts = JoinedReceipts(self.producer, settings.topics.receipts)
        """The runners' receipts, joined per partition, written through this producer."""

    def producer(self) -> ConfirmingProducer:
        """The producer (connecting on the first call); its delivery callbacks run on
        its own thread."""
        with self._lock:
            if self._producer is None:
                self._producer = ConfirmingProducer(
                    self._settings,
                    "shared sink producer",
                    on_replaced=self._on_replaced,
                    serve="delivery-reports",
                )
            return self._producer

    def close(self, timeout: float = 30.0) -> int:
        """Send what is still queued (each runner has flushed its own already) and stop
        serving; the number of messages left unacknowledged."""
        return self._producer.close(timeout) if self._producer is not None else 0
