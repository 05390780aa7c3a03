"""The batches the gate has published and not yet seen stored, oldest first. Pure.

The gate does not wait for a batch's acknowledgements before it takes the next batch: it
hands the batch's output to the producer and goes on deciding, and the delivery reports
come back meanwhile. A flush per batch put a round trip to the broker between every two
batches (a third of the loop's time at 2,000 data events/s, 2-3 events a batch) and held
every data event that arrived during a slow acknowledgement until it came.

"Nothing lost" is kept here: a batch *lands* (its data offsets may be stored, its
counts added) only once every record it published was reported stored
(:mod:`schemas.runtime.delivery`: an acknowledgement without an offset is not proof) and every
batch read before it has landed. A batch with a failed delivery, and every batch after
it, stays in :class:`Flights` until the gate has published it again.
"""

from __future__ import annotations

from collections import deque

from confluent_kafka import KafkaError, Message

from schemas.runtime import delivery
from streams.gate.judge import GateBatch


class Flight:
    """One published batch: the data offsets it completes, its counts, and the delivery
    reports of its records (it is the producer's delivery callback for each of them)."""

    __slots__ = ("batch", "failures", "offsets", "sent_at", "unreported")

    def __init__(self, batch: GateBatch, offsets: dict[int, int], sent_at: float) -> None:
        self.batch = batch
        self.offsets = offsets
        """Data partition → the offset to store once the batch has landed."""
        self.sent_at = sent_at
        """When its records were handed to the producer (monotonic seconds)."""
        self.unreported = 0
        """Records handed to the producer whose delivery report has not come."""
        self.failures: list[str] = []
        """Why reported records are not known stored."""

    def sent(self) -> None:
        """One more of its records is with the producer."""
        self.unreported += 1

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        """The delivery report of one of its records."""
        self.unreported -= 1
        failure = delivery.failure(error, message)
        if failure is not None:
            self.failures.append(failure)

    @property
    def stored(self) -> bool:
        """Every record reported, and each stored."""
        return self.unreported == 0 and not self.failures


class Flights:
    """Published batches that have not landed, in the order their data was read."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[Flight] = deque()

    def add(self, flight: Flight) -> None:
        """A batch just published (read after every batch already here)."""
        self._queue.append(flight)

    def landed(self) -> list[Flight]:
        """Take the oldest batches whose records are all stored, up to the first one that
        is not (still waiting for a report, or failed): they have landed."""
        queue = self._queue
        landed = []
        while queue and queue[0].stored:
            landed.append(queue.popleft())
        return landed

    @property
    def first(self) -> Flight | None:
        """The oldest batch that has not landed."""
        return self._queue[0] if self._queue else None

    def take_all(self) -> list[Flight]:
        """Every batch here, oldest first; none is left."""
        taken = list(self._queue)
        self._queue.clear()
        return taken

    def __len__(self) -> int:
        return len(self._queue)
