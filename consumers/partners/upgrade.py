"""Upgrading from a consumer group per partner to the sink's one group: start each
partner where its own group had got to.

Until the sink fetched each record once (:mod:`consumers.partners.fanout`), every
partner's pipeline read the partners' topic in a group of its own (``<group>.<partner>``).
The first time the one group (``<group>``) starts and finds no offsets of its own on the
topic, :func:`adopt_partner_groups` reads the old groups' committed offsets and commits,
per partition, the lowest of them, with every partner's own offset as the commit's
metadata (:func:`~consumers.partners.lanes.encode_positions`): each partner resumes
exactly where its old group was, so nothing a partner had not finished is skipped and
nothing it had is handed to it again. A partner without an old offset on a partition
(added since) starts at the partition's beginning, as its own group would have. A
partition no old group has read is left to the reset policy (the beginning). Once the
group has offsets, the old groups are never read again; they can be deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumers.committed import held, held_by
from consumers.partners.lanes import Committed, encode_positions
from schemas.errors import ConsentRelayError
from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger(__name__)


def adopt_partner_groups(
    kafka: KafkaSettings,
    group: str,
    partner_groups: Mapping[str, str],
    topic: str,
    timeout: float = 30.0,
) -> dict[int, Committed]:
    """On the group's first start, commit the old per-partner groups' offsets on ``topic``
    for it (partner name → old group); what was committed, per partition (nothing when
    the group has offsets already or no old group has any)."""
    # Offsets are read by consumers that never subscribe (so never join a group), not by
    # the admin client: librdkafka's ListConsumerGroupOffsets crashes the process
    # (SIGSEGV) when the coordinator answers NOT_COORDINATOR, as on a broker just
    # started (librdkafka#5040).
    consumer = Consumer(kafka.consumer_config(group))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        if not partitions or held(consumer, partitions, timeout):
            return {}
        old = {
            p: _offsets(held_by(kafka, g, partitions, timeout)) for p, g in partner_groups.items()
        }
        if not any(old.values()):
            return {}
        seeds = _seeds(consumer, topic=topic, partitions=partitions, old=old, timeout=timeout)
    except KafkaException as exc:
        raise ConsentRelayError(f"cannot read the partner groups' offsets: {exc}") from exc
    finally:
        consumer.close()
    log.info(
        "first start of group %s: each partner resumes from its own group's offsets (%s)",
        group,
        ", ".join(sorted(set(partner_groups.values()))),
    )
    return seeds


def _seeds(
    consumer: Consumer,
    *,
    topic: str,
    partitions: list[TopicPartition],
    old: Mapping[str, Mapping[int, int]],
    timeout: float,
) -> dict[int, Committed]:
    # The consumer never subscribes, so it never joins the group: a commit to a group
    # another process has joined meanwhile is refused (that process started from the
    # same offsets).
    seeds: dict[int, Committed] = {}
    for tp in partitions:
        if not any(tp.partition in offsets for offsets in old.values()):
            continue
        low, _high = consumer.get_watermark_offsets(tp, timeout)
        positions = {name: offsets.get(tp.partition, low) for name, offsets in old.items()}
        offset = min(positions.values())
        seeds[tp.partition] = Committed(offset, {n: p for n, p in positions.items() if p > offset})
    if not seeds:
        return seeds
    consumer.commit(
        offsets=[
            TopicPartition(topic, p, seed.offset, encode_positions(seed.positions))
            for p, seed in seeds.items()
        ],
        asynchronous=False,
    )
    return seeds


def _offsets(committed: list[TopicPartition]) -> dict[int, int]:
    return {tp.partition: tp.offset for tp in committed}
