"""Sinks' default groups carry the deployment's topic prefix, and an existing deployment
keeps its place on upgrade: the first start under the prefixed name resumes from the
old, unprefixed group's offsets (and their metadata), on the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from consumers.committed import NOT_NOW, RETRY_SECONDS
from consumers.groups import adopt_legacy_group, default_group, legacy_group
from consumers.partners.config import load_config
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily
from tests.integration.consumers.test_partners_fanout import (
    NAMES,
    config_file,
    event,
    partners,  # noqa: F401  (a fixture)
)
from tests.support.threads import running_in_thread


def _commit(settings: KafkaSettings, group: str, offsets: list[TopicPartition]) -> None:
    """Commit as an earlier version did, asking again while a broker just started loads
    its groups (COORDINATOR_LOAD_IN_PROGRESS, as :mod:`consumers.committed` reads)."""
    consumer = Consumer(settings.consumer_config(group))
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                if exc.args[0].code() not in NOT_NOW or time.monotonic() > deadline:
                    raise
                time.sleep(RETRY_SECONDS)
    finally:
        consumer.close()


def _committed(settings: KafkaSettings, group: str, topic: str) -> dict[int, tuple[int, str]]:
    consumer = Consumer(settings.consumer_config(group))
    try:
        asked = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return {
            tp.partition: (tp.offset, tp.metadata or "")
            for tp in consumer.committed(asked, 30)
            if tp.offset >= 0
        }
    finally:
        consumer.close()


def test_the_first_start_under_the_prefix_takes_the_old_groups_offsets(
    relay_settings: KafkaSettings,
) -> None:
    settings = relay_settings
    topic = settings.topics.instructions(SinkFamily.MARKETING)
    producer = Producer(settings.producer_config())
    for n in range(9):
        producer.produce(topic, value=b"x", partition=n % 3)
    assert producer.flush(30) == 0
    group = default_group(SinkFamily.MARKETING, settings.topic_prefix)
    legacy = legacy_group(SinkFamily.MARKETING)
    assert group == f"{settings.topic_prefix}consent-relay.sink.marketing" != legacy
    _commit(settings, legacy, [TopicPartition(topic, 0, 2, "a"), TopicPartition(topic, 2, 3)])

    assert adopt_legacy_group(settings, group, legacy, topic) == {0: 2, 2: 3}
    assert _committed(settings, group, topic) == {0: (2, "a"), 2: (3, "")}
    # Once the group has offsets of its own, the old group is never read again.
    _commit(settings, legacy, [TopicPartition(topic, 1, 3)])
    assert adopt_legacy_group(settings, group, legacy, topic) == {}
    assert _committed(settings, group, topic) == {0: (2, "a"), 2: (3, "")}


def test_nothing_to_adopt_leaves_the_group_to_its_reset_policy(
    relay_settings: KafkaSettings,
) -> None:
    settings = relay_settings
    topic = settings.topics.instructions(SinkFamily.ANALYTICS)
    group = default_group(SinkFamily.ANALYTICS, settings.topic_prefix)
    assert adopt_legacy_group(settings, group, legacy_group(SinkFamily.ANALYTICS), topic) == {}
    assert adopt_legacy_group(settings, group, group, topic) == {}  # not renamed
    missing = settings.topics.instructions(SinkFamily.ANALYTICS) + ".absent"
    assert adopt_legacy_group(settings, group, legacy_group(SinkFamily.ANALYTICS), missing) == {}
    assert _committed(settings, group, topic) == {}


def test_an_upgraded_partner_sink_resumes_where_its_unprefixed_group_was(
    tmp_path: Path,
    partners: dict[str, Any],  # noqa: F811
    sink_kit: Any,
    until: Callable[..., Any],
) -> None:
    # One subject: every record on one partition, in publishing order.
    published = [event(sink_kit, "acct-prefix-upgrade") for _ in range(10)]
    landed = sink_kit.publish_routed([i for e in published for i in e])
    topic, partition = landed[0].topic, landed[0].partition
    at = [landed[3 * n].offset for n in range(10)]
    # The previous version's one group, without the prefix, had done 6 events.
    _commit(
        sink_kit.settings,
        legacy_group(SinkFamily.PARTNER_SHARING),
        [TopicPartition(topic, partition, at[6])],
    )

    path = config_file(tmp_path, partners)
    settings = PartnerSinkSettings(config=path, poll_timeout_seconds=0.2)  # the default group
    process = PartnerSinkProcess(sink_kit.settings, settings, load_config(path, {}), metrics_port=0)
    assert process.group_id.startswith(sink_kit.settings.topic_prefix)
    with running_in_thread(process, name="partners", ready=lambda: process.wait_ready(60)):
        for name in NAMES:
            until(lambda name=name: len(partners[name].applied) == 4, timeout=60)
        time.sleep(1.0)
    for name in NAMES:
        expected = [e[NAMES.index(name)].instruction_id for e in published[6:]]
        assert partners[name].applied_keys() == expected, name
    assert sink_kit.committed(topic, process.group_id) >= at[-1] + 1
