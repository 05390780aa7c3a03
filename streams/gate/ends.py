"""Where partitions end, asked of the broker now: the gate asks it for every batch.

The gate's rule needs the consent partitions' end offsets asked *after* the batch's data
was read (:mod:`streams.gate.coverage`), one question per batch: about a thousand a
second at 2,000 data events/s. An admin client's question passes through librdkafka's
main thread, then the broker's, and its answer through the background thread into a
Python future, each a thread to be scheduled on a busy machine; in a bench run (load
~2) it took 0.50 ms on average and over 10 ms 14 times in 20 s (at most 39 ms, while
the gate's fetches went on), every data event arriving meanwhile waiting with it.
``Consumer.offsets_for_times`` with the timestamp -1 ("latest") sends the same
ListOffsets request from the caller's thread and waits for the answer there: 0.10-0.15
ms against the admin client's 0.22-0.30 ms (median, 1,000 questions each, interleaved,
idle machine); 0.26 ms on average and 4 times over 10 ms in the next bench run (load
~1).

It takes a consumer of its own that never fetches: the broker handles one request at a
time per connection, so on the data consumer or the state follower the question would
wait behind their long-polling fetch (500 ms when nothing arrives: measured). It reads
uncommitted, as the admin client did: the partitions' high watermarks, every record
written (no relay producer is transactional, so that is also the last stable offset).
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas.errors import ConsentRelayError

LATEST = -1
"""The ListOffsets timestamp that asks for a partition's end."""


class EndUnknownError(ConsentRelayError):
    """The broker did not say where a partition ends; the batch asks again."""


class EndOffsets:
    """Asks the broker where partitions end, with a consumer of its own (``consumer``,
    never subscribed or assigned)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    def ask(self, topic: str, partitions: Iterable[int], timeout: float) -> dict[int, int]:
        """Partition → end offset of ``topic`` now; KafkaException or EndUnknownError if
        the broker does not answer for one of them within ``timeout`` seconds."""
        asked = [TopicPartition(topic, p, LATEST) for p in partitions]
        answered = self.consumer.offsets_for_times(asked, timeout=timeout)
        ends = {}
        for tp in answered:
            if tp.error is not None:
                raise KafkaException(tp.error)
            if tp.offset < 0:
                # Never taken as "nothing there": an end below the data's would let
                # the batch pass before intake had applied what was published.
                raise EndUnknownError(f"no end offset for {topic}[{tp.partition}]")
            ends[tp.partition] = tp.offset
        return ends

    def serve(self) -> None:
        """Serve the client's callbacks (statistics, errors), which queue up until it is
        polled; it never has messages."""
        self.consumer.poll(0)

    def close(self) -> None:
        """Close the client."""
        self.consumer.close()
