"""How long after a fault each affected destination honours a withdrawal again.

From the fault's end (a process restarted, the broker, PostgreSQL or the partner back)
to the first withdrawal that every affected destination honoured with an effect at or
after that moment; when the stream worker itself was the fault, only withdrawals
published after it was killed count (earlier ones may have been routed by the dead
worker). All through the faults a probe withdrawal of every workload purpose is
published every second (:class:`Heartbeat`), so every outage has withdrawals waiting
in it and a recovery is measured even where the workload has paused.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from deploy.faults.load import Load
from deploy.faults.receipts import ReceiptWatch
from deploy.faults.sender import Sender
from deploy.faults.workload import Encoder, probe
from schemas.runtime.kafka import KafkaSettings

PROBE_EVERY_S = 1.0
POLL_S = 0.25
SETTLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Injected:
    """A fault as it happened."""

    name: str
    labels: tuple[str, ...]
    """Destinations that must honour withdrawals again."""
    began: float
    back: float
    """The restart, or the broker's, PostgreSQL's or the partner's return (wall time)."""
    fresh_since: float | None = None
    """Only withdrawals published after this count (wall time)."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """Seconds from :attr:`Injected.back` to every affected destination honouring again."""

    fault: Injected
    seconds: float | None
    """None: not within the timeout."""
    by_label: dict[str, float | None]


class Heartbeat(threading.Thread):
    """Publishes a probe withdrawal every second until :meth:`stop`, remembering when."""

    def __init__(self, settings: KafkaSettings, encoder: Encoder) -> None:
        super().__init__(name="faults-heartbeat", daemon=True)
        self.sender = Sender(settings, "probes")
        self._encoder = encoder
        self._published: dict[str, int] = {}
        self._halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        """Send; a broker outage holds a probe until the broker takes it."""
        while not self._halt.wait(PROBE_EVERY_S):
            now_ms = int(time.time() * 1000)
            decision = probe(self.sent, now_ms)
            self.sent += 1
            prepared = self._encoder.prepared(decision)
            self._published[decision.event_id] = now_ms
            self.sender.send([prepared], None)

    def published_ms(self, event_id: str) -> int | None:
        """When a probe was published."""
        return self._published.get(event_id)

    def stop(self) -> None:
        """End the thread (after the probe in flight) and close its producers."""
        self._halt.set()
        self.join(90)
        self.sender.close()


def measure(
    fault: Injected, watch: ReceiptWatch, load: Load, heartbeat: Heartbeat, timeout: float
) -> Recovery:
    """Wait until every affected destination honoured a qualifying withdrawal."""
    back_ms = int(fault.back * 1000)
    fresh_ms = None if fault.fresh_since is None else int(fault.fresh_since * 1000)
    firsts: dict[str, int] = {}
    while time.time() < fault.back + timeout:
        firsts = _firsts(
            fault, watch=watch, load=load, heartbeat=heartbeat, back_ms=back_ms, fresh_ms=fresh_ms
        )
        if len(firsts) == len(fault.labels):
            # Receipts arrive in batches, not in the order of their effects: read once
            # more after a moment for an earlier one still on its way.
            time.sleep(SETTLE_S)
            firsts = _firsts(
                fault,
                watch=watch,
                load=load,
                heartbeat=heartbeat,
                back_ms=back_ms,
                fresh_ms=fresh_ms,
            )
            break
        time.sleep(POLL_S)
    by_label = {
        label: None if label not in firsts else round((firsts[label] - back_ms) / 1000, 2)
        for label in fault.labels
    }
    done = [s for s in by_label.values() if s is not None]
    seconds = max(done) if len(done) == len(by_label) else None
    return Recovery(fault, seconds, by_label)


def _firsts(
    fault: Injected,
    *,
    watch: ReceiptWatch,
    load: Load,
    heartbeat: Heartbeat,
    back_ms: int,
    fresh_ms: int | None,
) -> dict[str, int]:
    """Per affected destination, the earliest qualifying honoured withdrawal so far."""
    firsts: dict[str, int] = {}
    for honoured in watch.since(back_ms):
        if honoured.label not in fault.labels:
            continue
        if fresh_ms is not None:
            published = heartbeat.published_ms(honoured.event_id) or load.published_ms(
                honoured.event_id
            )
            if published is None or published < fresh_ms:
                continue
        first = firsts.get(honoured.label)
        if first is None or honoured.applied_ms < first:
            firsts[honoured.label] = honoured.applied_ms
    return firsts
