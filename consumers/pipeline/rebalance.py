"""Partitions assigned, revoked or lost while the runner consumes.

A revocation first makes the finished work durable and commits it, then forgets what
was fetched of the partitions going; a loss only forgets (the partitions are someone
else's already). An assignment takes the partitions incrementally (the group is
cooperative) with the runner's current pause state.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from consumers.pipeline.checkpoints import Checkpoints
from consumers.pipeline.progress import Progress


class Rebalance:
    """The consumer's rebalance callbacks, for :meth:`Consumer.subscribe`."""

    def __init__(self, progress: Progress, checkpoints: Checkpoints) -> None:
        self._progress = progress
        self._checkpoints = checkpoints

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Hold ``partitions``, paused if the runner is waiting to retry."""
        progress = self._progress
        if consumer is not progress.consumer:
            return  # a consumer being thrown away (start over)
        progress.assigned.update((tp.topic, tp.partition) for tp in partitions)
        if not partitions:
            return
        # librdkafka keeps a partition's pause across its revocation and a later assignment:
        # one paused during a retry wait, taken away, and handed back after the runner
        # resumed what it held would never be fetched again. Take the assignment here (the
        # group is cooperative: incremental) and give it the runner's current pause state.
        consumer.incremental_assign(partitions)
        if progress.paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what is durable of ``partitions``, then let them go."""
        if consumer is not self._progress.consumer:
            return
        self._checkpoints.checkpoint(commit=True)
        self._progress.forget({(tp.topic, tp.partition) for tp in partitions})

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Let ``partitions`` go: another member owns them already."""
        if consumer is not self._progress.consumer:
            return
        self._progress.forget({(tp.topic, tp.partition) for tp in partitions})
