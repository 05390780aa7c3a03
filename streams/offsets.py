"""Rewinding taken-over partitions whose committed offset is 0 or missing.

After a rebalance Faust seeks every partition to its committed offset, through
aiokafka's ``seek_to_committed``, which skips offsets that are 0 or missing. A partition
taken over from a worker that died before its first commit therefore keeps whatever
position the fetcher had reached while the records it fetched were discarded for
belonging to the previous generation: those events would never be processed (seen here
as withdrawals that never reached their sinks). So when a rebalance completes, before
Faust resumes the streams, the worker asks the broker for the group's committed offsets
and seeks every input partition with none (or 0) back to its beginning itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from faust.types import TP

from schemas.kafka import KafkaSettings
from streams.agents.context import log

Seek = Callable[[dict[TP, int]], Awaitable[None]]


def uncommitted(
    kafka: KafkaSettings, group_id: str, partitions: Collection[TP], timeout: float = 30.0
) -> list[TP]:
    """Those of ``partitions`` for which ``group_id`` has no committed offset above 0."""
    if not partitions:
        return []
    admin = AdminClient(kafka.admin_config())
    request = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    found = (
        admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id, request)], request_timeout=timeout
        )[group_id]
        .result(timeout)
        .topic_partitions
    )
    return [TP(tp.topic, tp.partition) for tp in found or () if tp.offset <= 0]


def rewinder(
    kafka: KafkaSettings, group_id: str, topics: Collection[str], assignment: Any, seek: Seek
) -> Callable[..., Awaitable[None]]:
    """A receiver for Faust's ``on_rebalance_complete`` signal."""

    async def rewind(*_args: Any, **_kwargs: Any) -> None:
        mine = [tp for tp in assignment() if tp.topic in topics]
        try:
            fresh = await asyncio.to_thread(uncommitted, kafka, group_id, mine)
        except KafkaException as exc:
            log.warning("cannot read committed offsets of %s: %s", group_id, exc)
            return
        if fresh:
            log.info("rewinding %d partitions with no committed offset", len(fresh))
            await seek(dict.fromkeys(fresh, 0))

    return rewind
