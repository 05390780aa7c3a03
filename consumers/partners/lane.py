"""One partner's pipeline, fed by the process's one consumer instead of a consumer of its own.

A :class:`LaneRunner` is the :class:`~consumers.runner.SinkRunner` every sink runs (the
same decoding, dedupe of answered ids, batched webhooks, retries with backoff, receipts,
dead letters and metrics), with three of its parts (:mod:`consumers.pipeline`) replaced:
its input, its offsets and its retry wait. It takes its chunks
from its lane (:class:`~consumers.partners.lanes.Lanes`), which the dispatcher
(:mod:`consumers.partners.fanout`) fills, and reports what it made durable back to the
lane instead of committing; the dispatcher commits for every partner. While its lane is
detached (its partner was down long enough to fill it) it reads on by itself, from its
own position, with a reader that is assigned its partitions and joins no group, until it
has caught up and the lane is attached again. A retry wait is abandoned when the
process loses the chunk's partitions (:class:`LaneWait`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Final, cast

from confluent_kafka import Consumer, Message, TopicPartition
from typing_extensions import override

from consumers.instruction_records import SharedInstructions
from consumers.metrics import SinkMetrics
from consumers.partners.fanout import usable
from consumers.partners.lanes import TP, Lanes, tp_of
from consumers.pipeline.answering import Answering
from consumers.pipeline.applying import Applier
from consumers.pipeline.checkpoints import Checkpoints
from consumers.pipeline.progress import Progress, coordinates
from consumers.pipeline.retrying import AbandonedError, Waits
from consumers.protocol import Sink
from consumers.publisher import DeliveryError
from consumers.runner import SinkRunner
from consumers.settings import RunnerSettings
from consumers.shared_decodes import SharedDecodes
from consumers.shared_producer import SharedProducer
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily

log = logging.getLogger(__name__)

WAIT_SLICE_SECONDS: Final = 0.2
"""How often a retry wait checks that its chunk's partitions are still assigned."""


class LaneApplier(Applier):
    """Applies the chunks of a lane: the records the lanes hand it are its own."""

    lanes: Lanes
    _owned: AbstractSet[TP] = frozenset()
    """The partitions assigned when the chunk in hand was taken up (:meth:`process`)."""

    @override
    def process(self, chunk: list[Message]) -> None:
        # Which partitions are still the process's, asked once per chunk, not once per
        # record: the lanes' lock is shared with every pipeline and the dispatcher.
        self._owned = self.lanes.assigned()
        super().process(chunk)

    @override
    def accept(self, message: Message) -> bool:
        return tp_of(message) in self._owned

    @override
    def addressed_elsewhere(self, message: Message) -> bool:
        """Never: the lanes hand a pipeline only the records whose destination header
        names it or that have none (:meth:`Lanes.dispatch`, :meth:`Lanes.read`)."""
        return False


class LaneCheckpoints(Checkpoints):
    """Reports what is durable to the lane instead of committing (the dispatcher commits)."""

    def __init__(self, progress: Progress, answering: Answering, lanes: Lanes, lane: str) -> None:
        super().__init__(progress, answering, in_background=False)
        self._lanes = lanes
        self._lane = lane

    @override
    def mark_done(self, message: Message) -> None:
        self._progress.finished.add(coordinates(message))
        self._progress.done[tp_of(message)] = (message.offset() or 0) + 1

    @override
    def checkpoint(self, *, commit: bool = False) -> None:
        """Flush receipts and dead letters, remember what they answered, then tell the
        lane what is durable (the dispatcher commits it)."""
        self._answering.flush()
        self._answering.remember_answered()
        done, self._progress.done = self._progress.done, {}
        if done:
            self._lanes.finished(self._lane, done)


class LaneWait:
    """A retry wait of a lane: abandoned on stop or when the chunk's partitions go."""

    def __init__(self, lanes: Lanes, stop: threading.Event) -> None:
        self._lanes = lanes
        self._stop = stop

    def wait(self, delay: float, chunk: Sequence[Message]) -> None:
        """Sleep ``delay`` seconds; abandon on stop or when the chunk's partitions go."""
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(remaining, WAIT_SLICE_SECONDS)):
                raise AbandonedError
            if any(not self._lanes.owns(tp_of(m)) for m in chunk):
                raise AbandonedError


class LaneRunner(SinkRunner):
    """A partner's pipeline over its lane; see the module doc."""

    _applier_type = LaneApplier
    _reader: Consumer | None = None
    _reader_epoch = -1

    def __init__(
        self,
        sink: Sink,
        settings: KafkaSettings,
        *,
        lanes: Lanes,
        group_id: str | None = None,
        family: SinkFamily | None = None,
        options: RunnerSettings | None = None,
        serve_http: bool = True,
        producer: SharedProducer | None = None,
        decodes: SharedDecodes[SharedInstructions] | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        """A :class:`SinkRunner` (same arguments) fed from ``lanes``, its lane being its
        sink's destination."""
        self.lanes = lanes
        super().__init__(
            sink,
            settings,
            group_id=group_id,
            family=family,
            options=options,
            serve_http=serve_http,
            producer=producer,
            decodes=decodes,
            metrics=metrics,
        )

    @property
    def lane(self) -> str:
        """The lane's name: the partner's."""
        return self.sink.destination

    @override
    def _waits(self) -> Waits:
        return LaneWait(self.lanes, self._stop)

    @override
    def _checkpoints(self) -> Checkpoints:
        return LaneCheckpoints(self.progress, self.answering, self.lanes, self.lane)

    @override
    def _applier(self, decodes: SharedDecodes[SharedInstructions] | None) -> Applier:
        applier = cast(LaneApplier, super()._applier(decodes))
        applier.lanes = self.lanes
        return applier

    @override
    def _consume(self) -> None:
        self.ready.set()
        log.info("partner %s: taking its instructions from the shared consumer", self.lane)
        undelivered = 0
        try:
            while not self._stop.is_set():
                chunk = self._next_chunk()
                if not chunk:
                    continue
                self.progress.finished.clear()
                try:
                    self.step_over(chunk)
                    undelivered = 0
                except DeliveryError as exc:
                    # A receipt or dead letter the broker did not take: nothing past it was
                    # reported, so read again from this partner's position, as after a crash.
                    self.answering.answered.clear()  # their receipts were not acknowledged
                    self.progress.done.clear()
                    self.lanes.rewind(self.lane)
                    undelivered += 1
                    delay = self.backoff.delay(undelivered)
                    log.warning("%s; partner %s reads again in %.1fs", exc, self.lane, delay)
                    if self._stop.wait(delay):
                        raise AbandonedError from exc
                finally:
                    self.lanes.settle(self.lane)
        finally:
            self.lanes.settle(self.lane)
            self._close_reader()

    def step_over(self, chunk: list[Message]) -> None:
        """Process a chunk and report what is durable."""
        try:
            self.applier.process(chunk)
        except AbandonedError:
            # Unfinished ones of partitions still ours go back, ahead of the rest.
            unfinished = [m for m in chunk if coordinates(m) not in self.progress.finished]
            self.lanes.put_back(self.lane, unfinished)
        self.checkpoints.checkpoint()

    def _next_chunk(self) -> list[Message]:
        limit = self.options.batch_size
        if self.lanes.attached(self.lane):
            self._close_reader()
            return self.lanes.take(self.lane, limit, self.options.poll_timeout_seconds)
        buffered = self.lanes.take(self.lane, limit, 0)
        if buffered:
            return buffered
        start = self.lanes.reader_start(self.lane)
        if start is None:
            return []
        epoch, positions = start
        reader = self._reader_at(epoch, positions)
        # The first record waited for, then whatever else is fetched already (as the
        # runner's own fetch): a reader near the end is not held for a full chunk.
        first = reader.poll(self.options.poll_timeout_seconds)
        if first is None:
            fetched = []
        else:
            fetched = [first, *reader.consume(limit - 1, 0)] if limit > 1 else [first]
        messages = [m for m in fetched if usable(m)]
        chunk = self.lanes.read(self.lane, epoch, messages)
        if self.lanes.try_attach(self.lane, epoch):
            log.info("partner %s caught up: back on the shared consumer", self.lane)
            self._close_reader()
        return chunk

    def _reader_at(self, epoch: int, positions: dict[tuple[str, int], int]) -> Consumer:
        if self._reader is not None and self._reader_epoch == epoch:
            return self._reader
        self._close_reader()
        log.info("partner %s is behind: reading on by itself", self.lane)
        config = self.settings.consumer_config(
            f"{self.group_id}.catch-up",
            **{"queued.max.messages.kbytes": self.options.prefetch_kbytes},
        )
        reader = Consumer(config)
        reader.assign([TopicPartition(t, p, o) for (t, p), o in positions.items()])
        self._reader, self._reader_epoch = reader, epoch
        return reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._reader_epoch = -1
