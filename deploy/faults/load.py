"""The workload, flowing in the background while faults are injected.

The bench's :class:`~deploy.bench.loadgen.LoadGenerator` (through
:class:`~deploy.faults.sender.Sender`) sends it at a fixed rate, one
second's worth per call, so the moment every acknowledged withdrawal was published is
known while the run goes on (a recovery after a stream worker restart only counts
withdrawals the dead worker cannot have seen). While the broker is down a call waits
for the producer to deliver, so the load pauses with it and resumes after.

Events are released in slices, one as each fault begins: however long recoveries take,
every fault meets workload in flight rather than an idle relay after the load ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from deploy.bench.workload import Prepared
from deploy.faults.sender import Sender
from schemas.runtime.kafka import KafkaSettings


class Load(threading.Thread):
    """Sends prepared events at ``rate`` per second until all are sent or :meth:`stop`."""

    def __init__(self, settings: KafkaSettings, events: Sequence[Prepared], rate: float) -> None:
        super().__init__(name="faults-load", daemon=True)
        self.sender = Sender(settings, "load")
        self._events = events
        self._rate = rate
        self._halt = threading.Event()
        self._more = threading.Condition()
        self._released = 0
        self._lock = threading.Lock()
        self._published: dict[str, int] = {}
        self.handed = 0
        """Events handed to the producer so far."""
        self.finished_at: float | None = None

    @property
    def total(self) -> int:
        """Events to send in all."""
        return len(self._events)

    def release(self, count: int | None = None) -> None:
        """Let ``count`` more events go (None: all of them)."""
        with self._more:
            total = len(self._events)
            self._released = total if count is None else min(total, self._released + count)
            self._more.notify_all()

    def run(self) -> None:
        """Send released events in one-second chunks."""
        step = max(1, int(self._rate))
        start = 0
        try:
            while start < len(self._events) and not self._halt.is_set():
                with self._more:
                    while self._released <= start and not self._halt.is_set():
                        self._more.wait(1.0)
                    end = min(start + step, self._released)
                if end <= start:
                    break
                chunk = self._events[start:end]
                start = end
                report = self.sender.send(chunk, self._rate)
                with self._lock:
                    for event_id, sent in report.withdrawals.items():
                        self._published.setdefault(event_id, sent.sent_ms)
                self.handed += report.sent
        finally:
            self.sender.close()
            self.finished_at = time.time()

    def published_ms(self, event_id: str) -> int | None:
        """When an acknowledged workload withdrawal was handed to the producer."""
        with self._lock:
            return self._published.get(event_id)

    def stop(self) -> None:
        """Stop after the current chunk."""
        self._halt.set()
        with self._more:
            self._more.notify_all()
