"""Offsets move only past durable work: applied or dead-lettered, receipts acknowledged.

A message is marked done once its effect is durable; a checkpoint flushes the receipts
and dead letters, remembers what they answered, then stores the finished offsets:
librdkafka commits them within ``commit_interval_seconds``, or at once for a revocation,
a stop, or an interval of 0. Never past a message that is neither applied nor
dead-lettered: an unfinished one stops its partition's offset before it.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from consumers.pipeline.answering import Answering
from consumers.pipeline.progress import Progress, coordinates, partition_of

log = logging.getLogger(__name__)


class Checkpoints:
    """Marks done, stores and commits the offsets of the group's consumer."""

    def __init__(self, progress: Progress, answering: Answering, *, in_background: bool) -> None:
        self._progress = progress
        self._answering = answering
        self.in_background = in_background
        """Whether librdkafka commits the stored offsets (an interval above 0)."""
        self._stored = False
        """Offsets stored since the last commit this runner asked for."""

    def mark_done(self, message: Message) -> None:
        """``message``'s effect is durable: its offset may be committed after a flush."""
        progress = self._progress
        progress.finished.add(coordinates(message))
        key = partition_of(message)
        if key in progress.assigned:
            progress.done[key] = (message.offset() or 0) + 1

    def checkpoint(self, *, commit: bool = False) -> None:
        """Flush, remember what was answered, store the finished offsets (and commit
        them now when ``commit`` is set or nothing commits in the background)."""
        self._answering.flush()
        self._answering.remember_answered()
        progress = self._progress
        consumer = progress.consumer
        done = {k: v for k, v in progress.done.items() if k in progress.assigned}
        progress.done.clear()
        if consumer is None:
            return
        try:
            if done:
                consumer.store_offsets(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()]
                )
                self._stored = True
            if self._stored and (commit or not self.in_background):
                self._stored = False
                consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # librdkafka committed them in the background already
            # Uncommitted work is redelivered and applied again idempotently.
            log.warning("commit failed, will be redelivered: %s", exc)
