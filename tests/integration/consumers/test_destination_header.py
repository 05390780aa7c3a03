"""A sink skips instructions whose destination header names another destination,
without decoding them, and commits past them; its own are applied as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import MarketingStore
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from schemas.events import PropagationReceipt
from schemas.taxonomy import Channel, Purpose
from schemas.topics import DESTINATION_HEADER

from .conftest import wait_until

FAST = RunnerSettings(poll_timeout_seconds=0.2, backoff_initial_seconds=0.05)


def test_other_destinations_are_skipped_undecoded(sink_kit: Any, tmp_path: Path) -> None:
    topic = sink_kit.instruction_topic
    producer = Producer(sink_kit.settings.producer_config())
    # Not decodable at all: a sink that decoded it would dead-letter it.
    producer.produce(
        topic,
        b"garbage",
        key=b"s-1",
        headers=[(DESTINATION_HEADER, b"elsewhere,suppression_lists")],
    )
    assert producer.flush(30) == 0
    mine = sink_kit.instruction(subject="s-1")
    sink_kit.publish([mine])

    store = MarketingStore(
        Database(f"sqlite://{tmp_path / 'm.sqlite'}"), AddressHasher(b"header-test-key-0123")
    )
    runner = SinkRunner(
        MarketingSink(store),
        sink_kit.settings,
        group_id=sink_kit.group,
        metrics_port=0,
        options=FAST,
    )
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    with sink_kit.running(runner):
        wait_until(
            lambda: any(
                isinstance(r, PropagationReceipt) and r.instruction_id == mine.instruction_id
                for r in receipts.poll(0.3)
            )
        )
        wait_until(lambda: sink_kit.committed(topic) == 2)
    assert not store.may_contact("s-1", Channel.EMAIL, Purpose.MARKETING_EMAIL).allowed
    assert sink_kit.reader(sink_kit.settings.topics.dead_letters).poll(2.0) == []
