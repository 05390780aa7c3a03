"""Which partner has finished what: the bookkeeping between the partner sink's one
consumer and its partners' pipelines (a *lane* per partner).

The process fetches each record of the partners' topic once (:mod:`consumers.partners.fanout`)
and hands it to the lanes its destination header names (:meth:`Lanes.dispatch`); each
lane's pipeline takes its records in order (:meth:`Lanes.take`) and reports them finished
once their receipts and dead letters are acknowledged (:meth:`Lanes.finished`). Nothing
here touches the network, so the rules below are unit-tested on their own.

**Positions.** A lane's position in a partition is the first offset it has not finished:
its oldest record handed over and not finished, else how far it has looked (the
dispatcher's position for an attached lane, never below its floor). The group commits,
per partition, the lowest position over every lane and the dispatcher
(:meth:`Lanes.commits`), so a restart or a rebalance never skips a record some partner
has not made durable; the commit's metadata keeps every lane's position above it
(``{"partner": offset}``), so on the next assignment each lane starts from its own
position (its *floor*) and a partner that had already answered a replayed record is not
handed it again (no second call, no second receipt). Metadata that would exceed the
broker's limit loses its entries, which is safe: a lane then replays from the commit and
its answered ids (:mod:`consumers.partners.answers`) drop what it had done.

**A lane that falls behind.** Each lane buffers at most ``bound`` records. A full lane
is *detached* (:meth:`Lanes.detach_full`) when it has taken nothing for
:data:`STALL_SECONDS` (its partner is down: the pipeline retries with backoff, the
breaker is open, a call hangs) or has stayed full for :data:`FULL_SECONDS` (a partner
slower than the rest), as long as another attached lane still has room: the dispatcher
stops handing it records and goes on for the others (it pauses while any attached lane
is full, so the others wait at most that long, and not at all for a partner already down
when its buffer fills); the lane finishes its buffer, then reads on from its own
position with a reader of its own (``assign()``, no group: :meth:`Lanes.read`), and is
attached again once that reader has caught up with the dispatcher
(:meth:`Lanes.try_attach`). So one partner that is down never holds the others, memory
stays bounded however long it is down, and the commit stays at its position until it
catches up. When every attached lane is full (everything slow, or a single partner), the
dispatcher stays paused (:meth:`Lanes.blocked`): back-pressure, not more memory. A lane
found more than ``bound`` records behind the others when a partition is assigned (a
restart while a partner was down) starts detached, so the others do not wait for it to
re-read its gap.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, cast

from confluent_kafka import Message

from schemas.topics import DESTINATION_HEADER

TP = tuple[str, int]
"""Topic and partition."""

METADATA_LIMIT: Final = 4000
"""Bytes of commit metadata written at most (the broker's ``offset.metadata.max.bytes``
is 4,096 by default)."""
STALL_SECONDS: Final = 1.0
"""A full lane that has taken nothing for this long is detached: its partner is down
(a pipeline that keeps up takes a chunk every few milliseconds)."""
FULL_SECONDS: Final = 3.0
"""A lane full for this long is detached even though it still takes records: a partner
slower than the others then holds up no one. Only when every busy lane is that slow
(the process itself overloaded) do they all read on their own, the cost of a consumer
per partner, as the sink had before it fetched once."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A partition's committed offset and the lanes' positions above it."""

    offset: int
    positions: Mapping[str, int] = field(default_factory=dict)


def encode_positions(positions: Mapping[str, int]) -> str:
    """The commit metadata for ``positions`` (empty when too long, see the module doc)."""
    if not positions:
        return ""
    text = json.dumps(dict(sorted(positions.items())), separators=(",", ":"))
    return text if len(text.encode()) <= METADATA_LIMIT else ""


def decode_positions(metadata: str | None) -> dict[str, int]:
    """The lanes' positions in commit metadata; none when it is not ours."""
    if not metadata:
        return {}
    try:
        loaded = json.loads(metadata)
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if isinstance(k, str) and type(v) is int}


def tp_of(message: Message) -> TP:
    """The topic and partition of ``message``."""
    return message.topic() or "", message.partition() or 0


def named(message: Message) -> frozenset[bytes] | None:
    """The destinations the header names, or None without a header (every lane's)."""
    headers = cast(list[tuple[str, bytes | None]], message.headers() or [])
    for name, value in headers:
        if name == DESTINATION_HEADER and value is not None:
            return frozenset(value.split(b","))
    return None


@dataclass(slots=True)
class _Lane:
    name: str
    attached: bool = True
    inbox: deque[Message] = field(default_factory=deque)
    pending: dict[TP, deque[int]] = field(default_factory=dict)
    """Offsets handed to the lane and not finished, oldest first, per partition."""
    floor: dict[TP, int] = field(default_factory=dict)
    """Below this the lane needs nothing (finished earlier, or read by its reader)."""
    through: dict[TP, int] = field(default_factory=dict)
    """Detached: how far its own reader has read (the next offset to read)."""
    epoch: int = 0
    """Changes whenever the lane's reader must start over (detached, rebalanced)."""
    took_at: float = 0.0
    """When the lane last took records from its buffer (or was attached)."""
    full_since: float | None = None
    """Since when its buffer has been full, if it is."""
    arrived: threading.Condition | None = None
    """Notified when the dispatcher hands it records (shares the lanes' lock)."""
    busy: set[TP] = field(default_factory=set)
    """The partitions of the chunk it is working on (taken, not yet settled)."""


class Lanes:
    """Every lane's records and positions, safe across the dispatcher's and the lanes'
    threads (one lock; each call is short)."""

    def __init__(
        self, names: Iterable[str], bound: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if bound < 1:
            raise ValueError("a lane's bound must be at least 1")
        self.bound = bound
        self._clock = clock
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        """Notified when a lane takes records (room for more), or on a revocation."""
        # A condition per lane: a record wakes only the lanes it names.
        self._lanes = {
            name: _Lane(name, took_at=clock(), arrived=threading.Condition(self._lock))
            for name in names
        }
        self._by_header = {name.encode(): lane for name, lane in self._lanes.items()}
        self._at: dict[TP, int | None] = {}
        """The dispatcher's position per assigned partition (None: nothing fetched yet
        from a partition without a committed offset)."""
        self._leaving: dict[TP, int | None] = {}
        """Released partitions (:meth:`release`): still committed, no longer handed out."""

    @property
    def names(self) -> list[str]:
        """The lanes, in configuration order."""
        return list(self._lanes)

    # -- the dispatcher's side -----------------------------------------------------

    def assign(self, committed: Mapping[TP, Committed | None]) -> dict[TP, int | None]:
        """Take on partitions: each lane's floor from the commit, lanes far behind start
        detached; the offset the consumer starts each at (None: the reset policy)."""
        starts: dict[TP, int | None] = {}
        with self._lock:
            for tp, commit in committed.items():
                if commit is None:
                    for lane in self._lanes.values():
                        lane.floor[tp] = lane.through[tp] = 0
                        self._restart_reader(lane)
                    self._at[tp] = starts[tp] = None
                    continue
                floors = {
                    n: max(commit.offset, commit.positions.get(n, commit.offset))
                    for n in self._lanes
                }
                ahead = max(floors.values())
                for name, lane in self._lanes.items():
                    lane.floor[tp] = lane.through[tp] = floors[name]
                    if lane.attached and ahead - floors[name] > self.bound:
                        self._detach(lane)
                    self._restart_reader(lane)
                attached = [floors[n] for n, lane in self._lanes.items() if lane.attached]
                self._at[tp] = starts[tp] = min(attached, default=ahead)
        return starts

    def release(self, tps: Collection[TP]) -> None:
        """Hand no more records of partitions being revoked to any lane (their buffered
        ones stay unfinished, so the commit stays at them); a lane's retry wait on them is
        abandoned (:meth:`owns`). Then :meth:`wait_settled`, commit, :meth:`revoke`."""
        gone = set(tps)
        with self._lock:
            for tp in gone:
                if tp in self._at:
                    self._leaving[tp] = self._at.pop(tp)
            for lane in self._lanes.values():
                lane.inbox = deque(m for m in lane.inbox if tp_of(m) not in gone)

    def wait_settled(self, tps: Collection[TP], timeout: float) -> bool:
        """Wait until no lane is working on a chunk with records of ``tps`` (its effects
        made durable and reported, or abandoned); False if ``timeout`` ran out first."""
        gone = set(tps)
        with self._room:
            return self._room.wait_for(
                lambda: not any(lane.busy & gone for lane in self._lanes.values()), timeout
            )

    def revoke(self, tps: Collection[TP]) -> None:
        """Forget partitions (commit them first: :meth:`commits`); a lane's work on them
        in flight is abandoned (:meth:`owns`)."""
        gone = set(tps)
        with self._lock:
            for tp in gone:
                self._at.pop(tp, None)
                self._leaving.pop(tp, None)
            for lane in self._lanes.values():
                for tp in gone:
                    lane.pending.pop(tp, None)
                    lane.floor.pop(tp, None)
                    lane.through.pop(tp, None)
                lane.inbox = deque(m for m in lane.inbox if tp_of(m) not in gone)
                self._restart_reader(lane)
            self._room.notify_all()

    def dispatch(self, messages: Iterable[Message]) -> None:
        """Hand each message to every attached lane it names (all, without a header),
        from that lane's floor on."""
        woken: set[str] = set()
        with self._lock:
            for message in messages:
                tp = tp_of(message)
                if tp not in self._at:
                    continue  # revoked meanwhile
                offset = message.offset() or 0
                self._at[tp] = offset + 1
                names = named(message)
                lanes = (
                    self._lanes.values()
                    if names is None
                    else [lane for n in names if (lane := self._by_header.get(n)) is not None]
                )
                for lane in lanes:
                    if lane.attached and offset >= lane.floor.get(tp, 0):
                        lane.inbox.append(message)
                        pending = lane.pending.get(tp)
                        if pending is None:
                            # Not setdefault: that builds a deque for every record.
                            pending = lane.pending[tp] = deque()
                        pending.append(offset)
                        woken.add(lane.name)
            for name in woken:
                self._arrived(self._lanes[name]).notify()

    def detach_full(self) -> list[str]:
        """Detach the full lanes that stall or have been full too long, if some attached
        lane still has room; their names."""
        now = self._clock()
        with self._lock:
            attached = [lane for lane in self._lanes.values() if lane.attached]
            full = []
            for lane in attached:
                if len(lane.inbox) < self.bound:
                    lane.full_since = None
                    continue
                if lane.full_since is None:
                    lane.full_since = now
                if now - lane.took_at >= STALL_SECONDS or now - lane.full_since >= FULL_SECONDS:
                    full.append(lane)
            if not full or all(len(lane.inbox) >= self.bound for lane in attached):
                return []
            for lane in full:
                self._detach(lane)
            return [lane.name for lane in full]

    def blocked(self) -> bool:
        """Whether an attached lane is full: fetch nothing more for now (until it takes
        some, or :meth:`detach_full` detaches it)."""
        with self._lock:
            return any(
                lane.attached and len(lane.inbox) >= self.bound for lane in self._lanes.values()
            )

    def wait_for_room(self, timeout: float) -> None:
        """Wait until a lane takes records (or ``timeout``)."""
        with self._room:
            self._room.wait(timeout)

    def commits(self) -> dict[TP, tuple[int, str]]:
        """Per assigned partition with a known position: the offset to commit (the lowest
        position of the dispatcher and every lane) and the metadata of lanes above it."""
        out: dict[TP, tuple[int, str]] = {}
        with self._lock:
            for tp, at in [*self._at.items(), *self._leaving.items()]:
                if at is None:
                    continue
                positions = {n: self._position(lane, tp, at) for n, lane in self._lanes.items()}
                offset = min(at, *positions.values())
                above = {n: p for n, p in positions.items() if p > offset}
                out[tp] = (offset, encode_positions(above))
        return out

    # -- a lane's side -------------------------------------------------------------

    def assigned(self) -> set[TP]:
        """The partitions assigned to this process."""
        with self._lock:
            return set(self._at)

    def owns(self, tp: TP) -> bool:
        """Whether the partition is (still) assigned to this process."""
        with self._lock:
            return tp in self._at

    def attached(self, name: str) -> bool:
        """Whether the dispatcher hands ``name`` its records."""
        with self._lock:
            return self._lanes[name].attached

    def take(self, name: str, limit: int, timeout: float) -> list[Message]:
        """Up to ``limit`` of the lane's buffered records, oldest first, waiting up to
        ``timeout`` for the first while it is attached."""
        with self._lock:
            lane = self._lanes[name]
            if not lane.inbox and lane.attached and timeout > 0:
                self._arrived(lane).wait(timeout)
            taken = [lane.inbox.popleft() for _ in range(min(limit, len(lane.inbox)))]
            if taken:
                lane.took_at = self._clock()
                lane.busy.update(tp_of(m) for m in taken)
                self._room.notify_all()
            return taken

    def settle(self, name: str) -> None:
        """The lane is done with its chunk: what it finished is reported
        (:meth:`finished`), the rest abandoned (:meth:`put_back`)."""
        with self._lock:
            self._lanes[name].busy.clear()
            self._room.notify_all()

    def put_back(self, name: str, messages: list[Message]) -> None:
        """Return unfinished records (an abandoned chunk) ahead of the buffer, those of
        partitions still assigned."""
        with self._lock:
            lane = self._lanes[name]
            kept = [m for m in messages if tp_of(m) in self._at]
            lane.inbox.extendleft(reversed(kept))

    def finished(self, name: str, done: Mapping[TP, int]) -> None:
        """The lane made everything below ``done[tp]`` durable (receipts acknowledged)."""
        with self._lock:
            lane = self._lanes[name]
            for tp, through in done.items():
                pending = lane.pending.get(tp)
                while pending and pending[0] < through:
                    pending.popleft()

    def rewind(self, name: str) -> None:
        """Everything the lane took and has not reported finished is void (its receipts
        were not delivered): it is detached and reads again, by itself, from its position
        (its first unfinished record) in each partition."""
        with self._lock:
            lane = self._lanes[name]
            for tp, at in self._at.items():
                lane.through[tp] = self._position(
                    lane, tp, lane.floor.get(tp, 0) if at is None else at
                )
            lane.inbox.clear()
            lane.pending.clear()
            lane.attached = False
            lane.full_since = None
            lane.epoch += 1
            self._room.notify_all()

    def reader_start(self, name: str) -> tuple[int, dict[TP, int]] | None:
        """For a detached lane whose buffer is empty: its reader's epoch and the offsets
        to read each assigned partition from; None otherwise."""
        with self._lock:
            lane = self._lanes[name]
            if lane.attached or lane.inbox:
                return None
            return lane.epoch, dict(lane.through)

    def read(self, name: str, epoch: int, messages: Iterable[Message]) -> list[Message]:
        """What a detached lane's reader read: the records it must apply (named, above its
        floor, partitions still ours); [] if the reader is out of date (``epoch``)."""
        taken: list[Message] = []
        with self._lock:
            lane = self._lanes[name]
            if lane.epoch != epoch or lane.attached:
                return []
            header = name.encode()
            for message in messages:
                tp = tp_of(message)
                offset = message.offset() or 0
                if tp not in self._at or tp not in lane.through or offset < lane.through[tp]:
                    continue
                lane.through[tp] = offset + 1
                names = named(message)
                if (names is None or header in names) and offset >= lane.floor.get(tp, 0):
                    lane.pending.setdefault(tp, deque()).append(offset)
                    lane.busy.add(tp)
                    taken.append(message)
        return taken

    def try_attach(self, name: str, epoch: int) -> bool:
        """Attach a detached lane whose reader has caught up with the dispatcher in every
        partition; the dispatcher hands it records from there on."""
        with self._lock:
            lane = self._lanes[name]
            if lane.attached or lane.epoch != epoch or lane.inbox:
                return False
            for tp, at in self._at.items():
                if at is not None and lane.through.get(tp, 0) < at:
                    return False
            lane.attached = True
            lane.took_at = self._clock()
            for tp, through in lane.through.items():
                lane.floor[tp] = max(lane.floor.get(tp, 0), through)
            lane.epoch += 1
            return True

    # -- internals -----------------------------------------------------------------

    @staticmethod
    def _arrived(lane: _Lane) -> threading.Condition:
        assert lane.arrived is not None
        return lane.arrived

    @staticmethod
    def _restart_reader(lane: _Lane) -> None:
        """A detached lane's reader must take the new assignment from ``through``."""
        if not lane.attached:
            lane.epoch += 1

    def _detach(self, lane: _Lane) -> None:
        lane.attached = False
        lane.full_since = None
        lane.epoch += 1
        for tp, at in self._at.items():
            floor = lane.floor.get(tp, 0)
            lane.through[tp] = floor if at is None else max(floor, at)

    @staticmethod
    def _position(lane: _Lane, tp: TP, at: int) -> int:
        pending = lane.pending.get(tp)
        if pending:
            return pending[0]
        if lane.attached:
            return max(lane.floor.get(tp, 0), at)
        return lane.through.get(tp, at)
