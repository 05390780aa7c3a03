"""Upgrading from a topic per partner: the partner sink refuses to start while a
partner's legacy topic holds instructions its group has not read, and starts once the
group has read them all (consumers/partners/WEBHOOK.md, "Upgrading from a topic per
partner")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.partners.config import load_config
from consumers.partners.legacy import LegacyBacklogError
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from schemas.events import InstructionIssued
from schemas.examples import example
from schemas.runtime.admin import ensure_topics
from schemas.taxonomy import SinkFamily
from schemas.topics import TopicSpec
from tests.support.threads import running_in_thread

from .test_partners_batches import write_config

FAMILY = SinkFamily.PARTNER_SHARING


def test_unread_legacy_instructions_stop_the_sink_until_its_group_has_read_them(
    tmp_path: Path, sink_kit: Any
) -> None:
    settings = sink_kit.settings
    topics = settings.topics
    legacy = topics.legacy_instructions(FAMILY, "criteo")
    ensure_topics(settings, (TopicSpec(legacy, topics.partitions),))
    left = [replace(example(InstructionIssued), destination="criteo") for _ in range(3)]
    landed = sink_kit.publish(left, topic=legacy)
    # bing has no legacy topic: nothing to wait for there.
    partners = {name: (f"http://127.0.0.1:9/{name}", 1) for name in ("criteo", "bing")}
    config_path = write_config(tmp_path, partners)
    options = PartnerSinkSettings(
        config=config_path, group_id=sink_kit.group, poll_timeout_seconds=0.2
    )
    config = load_config(config_path, {})

    process = PartnerSinkProcess(settings, options, config, metrics_port=0)
    with pytest.raises(LegacyBacklogError, match=rf"{legacy} \(3\)"):
        process.run()
    assert all(not r.ready.is_set() for r in process.runners.values())

    # The previous sink drains the topic: its group commits the end of every partition.
    ends: dict[int, int] = {}
    for where in landed:
        ends[where.partition] = max(ends.get(where.partition, 0), where.offset + 1)
    drained = Consumer(settings.consumer_config(f"{sink_kit.group}.criteo"))
    try:
        drained.commit(
            offsets=[TopicPartition(legacy, p, o) for p, o in ends.items()], asynchronous=False
        )
    finally:
        drained.close()

    process = PartnerSinkProcess(settings, options, config, metrics_port=0)
    with running_in_thread(process, name="partner-process", ready=lambda: process.wait_ready(60)):
        assert {r.topic for r in process.runners.values()} == {topics.instructions(FAMILY)}
