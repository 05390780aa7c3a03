"""Resuming the input partitions after a rebalance without losing what was fetched.

Faust resumes the streams when a rebalance completes (its tables recovered), and two
things it does there drop events; :func:`rewinder` makes a receiver for the signal it
sends just before, ``app.on_rebalance_complete``, that takes over that resumption.

* While the tables' changelogs are read the input partitions are paused, and once the
  reading is done no partition is active. A fetch still waiting in the consumer's
  thread holds Faust's set of active partitions, now empty, which aiokafka reads as
  "every partition": it hands over the input partitions' records, moving its positions
  past them, and Faust drops them as not active. Faust's seek to the committed offsets
  repairs partitions that have one, but aiokafka's ``seek_to_committed`` skips offsets
  that are 0 or missing, so a partition nobody had committed yet lost them (a worker
  killed before its first commit). Hence every input partition is sought here to its
  committed offset, or to its beginning when it has none, and resumed at once: from
  then on the active set holds it, and what is fetched for it is delivered, not dropped.
* Faust resumes flow control only after resuming and seeking the partitions, and
  resuming flow control clears the agents' queues: what was delivered in between was
  thrown away, with the consumer past it (a worker restarted with a withdrawal waiting
  looked ready and did nothing). Hence flow control is suspended here: Faust's
  conductor waits with those events until Faust resumes it, after the clearing.

Faust's own seek that follows goes where this one went, so an event held back is
followed by nothing older than itself, which Faust would drop as read already (at most
the last one fetched is delivered twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from faust.types import TP

from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger("streams")


def committed_positions(
    kafka: KafkaSettings, group_id: str, partitions: Collection[TP], timeout: float = 30.0
) -> dict[TP, int]:
    """Where ``group_id`` resumes each of ``partitions``: its committed offset, or 0
    (the beginning) when it has none."""
    if not partitions:
        return {}
    admin = AdminClient(kafka.admin_config())
    request = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    found = (
        admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id, request)], request_timeout=timeout
        )[group_id]
        .result(timeout)
        .topic_partitions
    )
    return {TP(tp.topic, tp.partition): max(tp.offset, 0) for tp in found or ()}


def rewinder(
    kafka: KafkaSettings, group_id: str, topics: Collection[str], app: Any
) -> Callable[..., Awaitable[None]]:
    """A receiver for ``app.on_rebalance_complete`` (``app`` a Faust app) that seeks and
    resumes this worker's partitions of ``topics`` and holds flow control until Faust
    resumes it."""

    async def rewind(*_args: Any, **_kwargs: Any) -> None:
        consumer = app.consumer
        mine = [tp for tp in consumer.assignment() if tp.topic in topics]
        if not mine:
            return
        try:
            positions = await asyncio.to_thread(committed_positions, kafka, group_id, mine)
        except KafkaException as exc:
            log.warning("cannot read committed offsets of %s: %s", group_id, exc)
            return
        app.flow_control.suspend()
        log.info(
            "resuming %d input partitions at their committed offsets (%d from the beginning)",
            len(positions),
            sum(1 for offset in positions.values() if offset == 0),
        )
        await consumer.seek_wait(positions)
        # No await between the seek and this: a fetch that was waiting is handled
        # after it, and finds the partitions active.
        consumer.resume_partitions(set(positions))

    return rewind
