"""A sink runner that waits out a failing store keeps consuming after its group rebalances.

While it waits between retries the runner pauses its partitions (it stays in the group
without fetching). librdkafka keeps a partition's pause across a revocation and a new
assignment of the same partition, so a partition taken away while paused and handed back
after the runner resumed would never be fetched again: its instructions would wait,
uncommitted and unapplied, with nothing logged. Here a second member joins the group
while the store fails (taking partitions away), the store recovers, the member leaves
(handing them back), and every instruction published afterwards must still be applied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import MarketingStore
from consumers.protocol import RetriableSinkError, SinkResult
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import InstructionIssued

FAST = RunnerSettings(
    poll_timeout_seconds=0.2,
    backoff_initial_seconds=0.2,
    backoff_max_seconds=0.5,
    breaker_threshold=2,
)


class GatedSink(MarketingSink):
    """The marketing sink, answering "not now" until ``healthy`` is set."""

    def __init__(self, store: MarketingStore) -> None:
        super().__init__(store)
        self.healthy = threading.Event()
        self.refused = 0

    def _gate(self) -> None:
        if not self.healthy.is_set():
            self.refused += 1
            raise RetriableSinkError("store unavailable")

    def apply(self, instruction: InstructionIssued) -> SinkResult:
        self._gate()
        return super().apply(instruction)

    def apply_batch(self, instructions: Sequence[InstructionIssued]) -> list[SinkResult]:
        self._gate()
        return super().apply_batch(instructions)


def test_partitions_handed_back_after_a_paused_wait_are_consumed_again(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    store = MarketingStore(
        Database(f"sqlite://{tmp_path / 'm.db'}"), AddressHasher(b"integration-key-0123456789")
    )
    sink = GatedSink(store)
    topic = sink_kit.instruction_topic
    first = sink_kit.instruction(subject="waiting")
    sink_kit.publish([first])
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = SinkRunner(sink, sink_kit.settings, group_id=sink_kit.group, options=FAST)
    with sink_kit.running(runner):
        until(lambda: sink.refused >= 2, timeout=60)  # waiting, its partitions paused
        # A second member: it takes partitions away from the paused runner. It never
        # commits, so nothing it happens to fetch is lost to the runner.
        other = Consumer(sink_kit.settings.consumer_config(sink_kit.group))
        try:
            other.subscribe([topic])
            deadline = time.monotonic() + 60
            while not other.assignment() and time.monotonic() < deadline:
                other.poll(0.2)
            assert other.assignment(), "the second member never got a partition"
            # The runner resumes what it holds now: at its next attempt, or at once if the
            # waiting instruction's partition went to the other member.
            sink.healthy.set()
            time.sleep(3 * FAST.backoff_max_seconds)
        finally:
            other.close()  # leaves the group: its partitions go back to the runner
        later = [sink_kit.instruction(subject=f"later-{n}") for n in range(30)]
        landed = sink_kit.publish(later)
        assert {d.partition for d in landed} == set(range(sink_kit.settings.partitions))
        wanted = {i.instruction_id for i in [first, *later]}

        def all_answered() -> bool:
            return wanted <= {r.instruction_id for r in receipts.poll()}

        until(all_answered, timeout=60)
