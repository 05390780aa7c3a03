"""A sink runner whose consumer forgot every broker replaces it and loses nothing.

librdkafka can forget every broker when one in controlled shutdown answers its metadata
with none (schemas/runtime/broker_loss.py; seen on a real broker restart, but only now and then,
so the loss is reported to the runner here with statistics of such a client, trimmed
from a real one). The runner must then close that consumer, take a new one into the
group, and apply every instruction published before and after, answering each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import MarketingStore
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings

FORGOT_EVERY_BROKER = {
    "name": "sink#consumer-1",
    "brokers": {"GroupCoordinator": {"nodeid": -1, "source": "logical", "state": "TRY_CONNECT"}},
    "cgrp": {"state": "query-coord", "join_state": "init", "stateage": 52063},
}


def test_a_consumer_that_forgot_every_broker_is_replaced_and_nothing_is_lost(
    sink_kit: Any, until: Any, tmp_path: Path
) -> None:
    store = MarketingStore(
        Database(f"sqlite://{tmp_path / 'm.db'}"), AddressHasher(b"integration-key-0123456789")
    )
    sink = MarketingSink(store)
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    runner = SinkRunner(
        sink,
        sink_kit.settings,
        group_id=sink_kit.group,
        options=RunnerSettings(poll_timeout_seconds=0.2),
    )
    answered: set[str] = set()

    def all_answered(wanted: set[str]) -> bool:
        answered.update(r.instruction_id for r in receipts.poll())
        return wanted <= answered

    replaced = runner.metrics.clients_replaced.labels(sink_kit.group)
    with sink_kit.running(runner):
        before = [sink_kit.instruction(subject=f"before-{n}") for n in range(12)]
        sink_kit.publish(before)
        until(lambda: all_answered({i.instruction_id for i in before}), timeout=60)
        watch = runner.subscription.watch
        assert watch is not None
        watch(json.dumps(FORGOT_EVERY_BROKER))  # as librdkafka's stats thread would
        # The new consumer has a watch of its own.
        until(lambda: runner.subscription.watch is not watch, timeout=30)
        assert replaced._value.get() == 1
        after = [sink_kit.instruction(subject=f"after-{n}") for n in range(30)]
        landed = sink_kit.publish(after)
        assert {d.partition for d in landed} == set(range(sink_kit.settings.partitions))
        until(lambda: all_answered({i.instruction_id for i in after}), timeout=60)
    assert replaced._value.get() == 1
