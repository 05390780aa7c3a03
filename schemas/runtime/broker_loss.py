"""A librdkafka client that has forgotten every broker, and how its owner tells.

librdkafka (2.10 on) forgets each broker a Metadata response leaves out. A broker in
controlled shutdown can answer Metadata with no broker at all ("0 brokers, 1 topics":
it is fenced, and on a one-broker cluster no other is left to list), so a client whose
metadata request lands in that window forgets every broker it knew, and finds none
again when the broker is back: it keeps asking for a group coordinator with "no broker
available", or holds its messages, forever. Neither ``metadata.recovery.strategy``
helps ("none" never bootstraps again; "rebootstrap", even after 3 s, left 7 of 16
consumers stuck in one of 8 restarts). Upstream: confluentinc/librdkafka#5301 (open;
librdkafka 2.16.0 here). On a private broker, 16 consumers, each in a group of its own,
through 6 s broker restarts: some were still without partitions a minute after the
broker's return in 1 of 2 to 1 of 5 restarts, and every one of those, and only those,
had logged "0 brokers" as the broker stopped.

Such a client's statistics list no broker but logical ones (the group coordinator's
handle): the bootstrap servers ("configured") and every broker it learnt ("learned")
are gone. A client that is merely waiting out an outage still lists the broker it
learnt, down.

A group member can also be left half way: in a fault run a partner sink's consumer
kept the broker it learnt while its JoinGroup request sat in the group coordinator
handle's queue, never sent ("GroupCoordinator: Timed out 0 in-flight, 0 retry-queued,
1 out-queue" every minute for ten minutes, no partitions), which reads like
confluentinc/librdkafka#5511 (a coordinator handle left on a decommissioned broker;
open). So a member that has not been steady in its group (state "up", join state
"steady") for :data:`UNSTEADY_SECONDS` counts as lost too: a healthy join takes a
second or two, and one waiting out an outage loses nothing by being replaced (its
partitions went with its session).

:class:`BrokerWatch` is the statistics callback that notices; the client's owner then
replaces the client (what it had not made durable is done again, idempotently, as
after a crash).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

log = logging.getLogger(__name__)

STATS_INTERVAL_MS: Final = 2000
"""How often a watched client reports its statistics: a client that forgot its
brokers during a broker restart is noticed (and replaced) within this, usually while
the broker is still down."""

UNSTEADY_SECONDS: Final = 15.0
"""How long a group member may go without being steady in its group before it is
replaced (at least; see :func:`unsteady_limit`): past a broker's return, the longest a
stuck member holds its partitions."""

_REAL_SOURCES: Final = frozenset({"configured", "learned"})
"""Broker handles that are a server: the bootstrap list, or learnt from metadata."""


def lost_every_broker(stats: Mapping[str, Any]) -> bool:
    """Whether librdkafka ``stats`` (its statistics JSON, decoded) show a client that
    knows no broker any more, only logical handles."""
    brokers = stats.get("brokers")
    if not isinstance(brokers, Mapping):
        return False
    return not any(
        isinstance(broker, Mapping) and broker.get("source") in _REAL_SOURCES
        for broker in brokers.values()
    )


def unsteady_limit(session_timeout_seconds: float) -> float:
    """How long a member with this session timeout may be unsteady: a join can wait
    for a dead member's session to end, and for the rebalance after it."""
    return max(UNSTEADY_SECONDS, 2 * session_timeout_seconds)


def steady(stats: Mapping[str, Any]) -> bool:
    """Whether a group member's ``stats`` show it steady in its group."""
    group = stats.get("cgrp")
    if not isinstance(group, Mapping):
        return False
    return group.get("state") == "up" and group.get("join_state") == "steady"


class BrokerWatch:
    """A librdkafka ``stats_cb`` that remembers whether its client is lost: it forgot
    every broker or, for a group member (``unsteady_after`` set, see
    :func:`unsteady_limit`), was not steady in its group for that many seconds.

    ``then`` gets each decoded statistics report too (consumer lag, say). One watch
    per client: a replacement client gets a new one.
    """

    def __init__(
        self,
        name: str,
        then: Callable[[Mapping[str, Any]], None] | None = None,
        *,
        unsteady_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._then = then
        self._unsteady_after = unsteady_after
        self._clock = clock
        self._unsteady_since: float | None = None
        self.lost = False
        """Set once the client is found lost; never cleared."""

    def close(self, client: Any) -> None:
        """Close the watched ``client``: in line, or, once it is lost, with
        :func:`close_lost` (from a thread of its own, waited for at most 5 s)."""
        if self.lost:
            close_lost(client, self._name)
        else:
            client.close()

    def config(self) -> dict[str, Any]:
        """The librdkafka settings that make the client report to this watch."""
        return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": self}

    def __call__(self, raw: str) -> None:
        stats = json.loads(raw)
        if not self.lost:
            self._judge(stats)
        if self._then is not None:
            self._then(stats)

    def _judge(self, stats: Mapping[str, Any]) -> None:
        if lost_every_broker(stats):
            self.lost = True
            log.warning(
                "%s: the Kafka client has forgotten every broker (a broker's shutdown "
                "answered its metadata with none, librdkafka#5301); replacing it",
                self._name,
            )
            return
        if self._unsteady_after is None:
            return
        now = self._clock()
        if steady(stats):
            self._unsteady_since = None
        elif self._unsteady_since is None:
            self._unsteady_since = now
        elif now - self._unsteady_since >= self._unsteady_after:
            self.lost = True
            group = stats.get("cgrp") or {}
            log.warning(
                "%s: the Kafka consumer has not been steady in its group for %.0f s "
                "(state %s, join state %s); replacing it",
                self._name,
                now - self._unsteady_since,
                group.get("state"),
                group.get("join_state"),
            )


CLOSE_WAIT_SECONDS: Final = 5.0
"""Longest the owner waits for a lost client's close before going on without it."""


def close_lost(client: Any, name: str, timeout: float = CLOSE_WAIT_SECONDS) -> None:
    """Close a lost client (``client.close()``) from a thread of its own, waiting at most
    ``timeout`` seconds.

    A consumer that forgot every broker can block in close() for good: in a fault run a
    sink's replaced consumer, a JoinGroup request queued on a coordinator handle that
    never connects, never returned from it, and the sink never started its new one. One
    that does not close in time is left to its thread (it costs a librdkafka handle and
    a "REQTMOUT" warning a minute); the owner goes on with a new client.
    """

    def close() -> None:
        try:
            client.close()
        except Exception as exc:  # noqa: BLE001 - the client is being thrown away
            log.warning("%s: closing the lost client failed: %s", name, exc)

    closer = threading.Thread(target=close, name=f"close-lost-{name}", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        log.warning(
            "%s: the lost client did not close within %.0f s; going on without it", name, timeout
        )
