"""Receipts of the runners that share a producer, joined into one record per partition.

The partner sink runs a pipeline per partner, and each answers the same instruction
records. Sent by each pipeline, a withdrawal's receipts left as one InstructionsAnswered
per pipeline and receipts partition: at 1,000 events/s 84% of the receipts topic's
records came from the partner sink, 1.5 receipts per record (``deploy.bench --rates
1000 --keep-topics``), and each record is a message the stream's receipts agent takes
through Faust's per-message machinery.

Joined here, what the pipelines hand over for one partition leaves together. At most
one round of records per partition is in flight; receipts handed over meanwhile wait
for its acknowledgement and leave together in the next round, the way a producer fills
its next request while one is in flight. There is no timer: a lone withdrawal's first
receipts leave at once, the other pipelines' one round trip later, together. Each
pipeline is told the outcome of the records that carry its receipts, so its flush still
waits for, and fails with, its own receipts only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from schemas.errors import ConsentRelayError
from schemas.events import PropagationReceipt
from schemas.runtime import delivery

Settled = Callable[[str | None], None]
"""Told once per hand-over: None once every record carrying it was acknowledged with an
offset, else why one was not."""

Encode = Callable[[list[PropagationReceipt]], bytes]
"""The wire bytes of one InstructionsAnswered carrying the receipts given."""

RECEIPTS_PER_RECORD: Final = 500
"""Most receipts in one InstructionsAnswered (about 100 KB); a hand-over of more is split."""


class Produces(Protocol):
    """The part of a producer the joined receipts are written through."""

    def produce(self, topic: str, *, value: bytes, partition: int, on_delivery: Any) -> None:
        """Queue one message for ``partition`` of ``topic``."""
        ...


@dataclass(slots=True, eq=False)
class _Share:
    """One hand-over: its receipts, whom to tell, and its records not yet settled."""

    receipts: list[PropagationReceipt]
    settled: Settled
    encode: Encode
    records: int = 0
    failure: str | None = None


@dataclass(slots=True, eq=False)
class _Round:
    """The records sent together for one partition, and how many are not yet settled."""

    partition: int
    records: int


class JoinedReceipts:
    """Receipts for one topic, joined across the runners that hand them over."""

    def __init__(
        self,
        producer: Callable[[], Produces],
        topic: str,
        per_record: int = RECEIPTS_PER_RECORD,
    ) -> None:
        """``producer``: the shared producer (asked at each round, so a replaced client
        is used); its delivery reports may come on any thread."""
        self._producer = producer
        self._topic = topic
        self._per_record = per_record
        self._lock = threading.Lock()
        self._waiting: dict[int, list[_Share]] = {}
        self._busy: set[int] = set()

    def send(
        self,
        partition: int,
        receipts: list[PropagationReceipt],
        settled: Settled,
        encode: Encode,
    ) -> None:
        """Send ``receipts`` on ``partition``, now or with the next round; ``settled`` is
        called once (maybe on another thread, maybe before this returns)."""
        if not receipts:
            settled(None)
            return
        with self._lock:
            self._waiting.setdefault(partition, []).append(_Share(receipts, settled, encode))
            if partition in self._busy:
                return
            self._busy.add(partition)
        self._send_round(partition)

    def _send_round(self, partition: int) -> None:
        """Send what waits for ``partition`` as one round, or mark it idle if nothing does."""
        with self._lock:
            shares = self._waiting.pop(partition, None)
            if not shares:
                self._busy.discard(partition)
                return
            records = _records(shares, self._per_record)
            current = _Round(partition, len(records))
            for _, carried in records:
                for share in carried:
                    share.records += 1
        for receipts, carried in records:
            try:
                value = carried[0].encode(receipts)
                self._producer().produce(
                    self._topic,
                    value=value,
                    partition=partition,
                    on_delivery=partial(self._delivered, current, carried),
                )
            except (BufferError, KafkaException, ConsentRelayError) as exc:
                # Told as a failed delivery: each runner reads its chunk again.
                self._settle(current, carried, f"receipts not sent: {exc}")

    def _delivered(
        self, current: _Round, carried: list[_Share], error: KafkaError | None, message: Message
    ) -> None:
        self._settle(current, carried, delivery.failure(error, message))

    def _settle(self, current: _Round, carried: list[_Share], failure: str | None) -> None:
        done: list[_Share] = []
        with self._lock:
            for share in carried:
                share.records -= 1
                if failure is not None and share.failure is None:
                    share.failure = failure
                if share.records == 0:
                    done.append(share)
            current.records -= 1
            finished = current.records == 0
        for share in done:
            share.settled(share.failure)
        if finished:
            self._send_round(current.partition)


def _records(
    shares: Sequence[_Share], per_record: int
) -> list[tuple[list[PropagationReceipt], list[_Share]]]:
    """The records of one round: shares in order, each record holding at most
    ``per_record`` receipts, a share split only when it alone holds more."""
    records: list[tuple[list[PropagationReceipt], list[_Share]]] = []
    receipts: list[PropagationReceipt] = []
    carried: list[_Share] = []
    for share in shares:
        if receipts and len(receipts) + len(share.receipts) > per_record:
            records.append((receipts, carried))
            receipts, carried = [], []
        for start in range(0, len(share.receipts), per_record):
            piece = share.receipts[start : start + per_record]
            if receipts and len(receipts) + len(piece) > per_record:
                records.append((receipts, carried))
                receipts, carried = [], []
            receipts.extend(piece)
            if not carried or carried[-1] is not share:
                carried.append(share)
    if receipts:
        records.append((receipts, carried))
    return records
