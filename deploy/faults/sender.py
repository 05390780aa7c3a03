"""The bench's load generator, replaced by a fresh one when it stops delivering.

After a broker restart a long-lived idempotent producer (librdkafka 2.16) was seen to
deliver nothing more, ever, while a new producer on the same broker delivered at once.
The harness's own traffic must not hang on that: a send whose events are not all
delivered within the generator's minute of flushing hands over to a new generator. The
old one is kept open (destroying it could block), and whatever it still delivers is on
the topic, where the read-back finds it.
"""

from __future__ import annotations

from collections.abc import Sequence

from deploy.bench.loadgen import LoadGenerator, SendReport
from deploy.bench.workload import Prepared
from deploy.faults.say import say
from schemas.runtime.kafka import KafkaSettings


class Sender:
    """Sends prepared events to the consent topic through a generator that delivers."""

    def __init__(self, settings: KafkaSettings, name: str) -> None:
        self._settings = settings
        self._name = name
        self._gen = self._new()
        self._retired: list[LoadGenerator] = []
        self.undelivered = 0
        """Events not delivered within a send (they may still arrive later)."""

    def _new(self) -> LoadGenerator:
        return LoadGenerator(self._settings, self._settings.topics.consent)

    @property
    def replaced(self) -> int:
        """How many generators stopped delivering."""
        return len(self._retired)

    def send(self, events: Sequence[Prepared], rate: float | None) -> SendReport:
        """Send (``rate`` per second, None: at once) and wait for delivery."""
        report = self._gen.send(events, rate, measured=True)
        if report.failed:
            self.undelivered += report.failed
            say(f"  {self._name}: {report.failed} events not delivered; a new producer takes over")
            self._retired.append(self._gen)
            self._gen = self._new()
        return report

    def close(self) -> None:
        """Flush and close every generator."""
        for gen in (self._gen, *self._retired):
            gen.close()
