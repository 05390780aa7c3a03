"""What the batch processors share: policy, topics, codecs, producer, tables, metrics.

One :class:`StreamContext` is built per worker. Intake and receipts both write the
propagation tables, so they process one batch at a time (:attr:`StreamContext.lock`),
each reading the tables as the batch before it leaves them, even while that batch's
output is still on its way to the broker (:attr:`StreamContext.in_flight`,
:func:`streams.engine.batch.submit`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.taxonomy import SinkFamily
from schemas.topics import Topics
from streams.engine.outbox import Sender
from streams.engine.staging import Changelog
from streams.engine.wire import Decoder, Encoder
from streams.intake.resolution import SubjectState
from streams.intake.routing import RoutingPolicy
from streams.metrics import StreamMetrics
from streams.proof.propagation import Propagation, SubjectPropagations


async def _broker_answers() -> None:
    """No broker to wait for (a context without one, as in unit tests)."""


class RawMessage(Protocol):
    """The parts of a Kafka message the processors read (Faust's ``event.message``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class InFlight:
    """The batch whose output the producer has, until it is durable and committed."""

    batch: Any
    """The :class:`streams.engine.batch.Batch`."""
    settled: asyncio.Future[bool]
    """True once committed as processed; False once committed after being processed
    again (its first output failed): whatever read its staged writes must be processed
    again too."""


@dataclass(slots=True)
class StreamContext:
    """Everything a batch processor needs."""

    policy: RoutingPolicy
    topics: Topics
    decoder: Decoder
    encode: Encoder
    sender: Sender
    metrics: StreamMetrics
    state: MutableMapping[bytes, SubjectState]
    pending: MutableMapping[bytes, SubjectPropagations]
    done: MutableMapping[bytes, tuple[Propagation, ...]]
    """The tables' local data (Faust: ``table.data``); batches write them after publishing."""
    copartitioned: frozenset[str] = frozenset()
    """Output topics with as many partitions as the input: the input partition is theirs."""
    completed_per_subject: int = 50
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a batch is processed and handed to the producer."""
    in_flight: InFlight | None = None
    """The batch handed to the producer last, until it has committed."""
    sleep: Any = asyncio.sleep
    broker_ready: Callable[[], Awaitable[None]] = _broker_answers
    """Returns once the broker accepts connections (:mod:`streams.engine.broker`): a batch whose
    output could not be published waits for it before handing it to the producer again."""
    activity: dict[str, str] = field(default_factory=dict)
    """Stage → what it is doing now (logged on SIGUSR2, for diagnosing a stall)."""
    changelogs: dict[str, Changelog] = field(default_factory=dict)
    """Changelog of the "state", "pending" and "done" tables (none in unit tests)."""
    instruction_topics: dict[SinkFamily, str] = field(init=False)
    """Sink family → its instruction topic."""

    def __post_init__(self) -> None:
        self.instruction_topics = {f: self.topics.instructions(f) for f in SinkFamily}

    def partition_for(self, topic: str, source_partition: int) -> int | None:
        """The explicit partition for a subject-keyed output, when known."""
        return source_partition if topic in self.copartitioned else None
