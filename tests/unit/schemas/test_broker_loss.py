"""Telling a librdkafka client that forgot every broker from one waiting out an outage.

The statistics below are trimmed from real ones, taken on a private broker restarted
under 16 consumers (schemas/runtime/broker_loss.py says how).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest

from schemas.runtime.broker_loss import (
    STATS_INTERVAL_MS,
    UNSTEADY_SECONDS,
    BrokerWatch,
    close_lost,
    lost_every_broker,
    unsteady_limit,
)

WAITING_OUT_AN_OUTAGE: dict[str, Any] = {
    "name": "c0#consumer-3",
    "brokers": {
        "127.0.0.1:34873/1": {
            "name": "127.0.0.1:34873/1",
            "nodeid": 1,
            "source": "learned",
            "state": "TRY_CONNECT",
        },
        "GroupCoordinator": {
            "name": "GroupCoordinator",
            "nodeid": -1,
            "source": "logical",
            "state": "TRY_CONNECT",
        },
    },
    "cgrp": {"state": "query-coord", "join_state": "steady", "stateage": 3719},
}
FORGOT_EVERY_BROKER: dict[str, Any] = {
    "name": "c15#consumer-18",
    "brokers": {
        "GroupCoordinator": {
            "name": "GroupCoordinator",
            "nodeid": -1,
            "source": "logical",
            "state": "TRY_CONNECT",
        },
    },
    "cgrp": {"state": "query-coord", "join_state": "init", "stateage": 52063},
}
STARTING: dict[str, Any] = {
    "name": "p#producer-1",
    "brokers": {
        "127.0.0.1:34873/bootstrap": {"nodeid": -1, "source": "configured", "state": "INIT"},
    },
}
PRODUCER_UP: dict[str, Any] = {
    "brokers": {"127.0.0.1:34873/1": {"nodeid": 1, "source": "learned", "state": "UP"}},
}


@pytest.mark.parametrize("stats", [WAITING_OUT_AN_OUTAGE, STARTING, PRODUCER_UP, {}])
def test_a_client_that_knows_a_broker_is_not_lost(stats: dict[str, Any]) -> None:
    assert not lost_every_broker(stats)


def test_a_client_left_with_only_logical_handles_is_lost() -> None:
    assert lost_every_broker(FORGOT_EVERY_BROKER)
    assert lost_every_broker({"brokers": {}})


def test_the_watch_remembers_the_loss_says_it_once_and_passes_every_report_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[dict[str, Any]] = []
    watch = BrokerWatch("sink g", seen.append)
    assert watch.config() == {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": watch}
    watch(json.dumps(WAITING_OUT_AN_OUTAGE))
    assert not watch.lost
    with caplog.at_level(logging.WARNING, logger="schemas.runtime.broker_loss"):
        watch(json.dumps(FORGOT_EVERY_BROKER))
        watch(json.dumps(FORGOT_EVERY_BROKER))
    assert watch.lost
    assert len(caplog.records) == 1
    assert "sink g" in caplog.records[0].getMessage()
    assert "librdkafka#5301" in caplog.records[0].getMessage()
    watch(json.dumps(PRODUCER_UP))
    assert watch.lost  # a lost client is replaced, never trusted again
    assert [s.get("name") for s in seen] == [
        "c0#consumer-3",
        "c15#consumer-18",
        "c15#consumer-18",
        None,
    ]


def member(state: str, join_state: str) -> str:
    return json.dumps({**PRODUCER_UP, "cgrp": {"state": state, "join_state": join_state}})


def test_a_group_member_not_steady_for_long_is_lost_and_a_short_rejoin_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    watch = BrokerWatch("sink g", unsteady_after=unsteady_limit(6.0), clock=lambda: now[0])
    for seconds, state, join in [
        (0, "init", "init"),
        (2, "up", "wait-join"),
        (4, "up", "steady"),  # joined in 4 s
        (6, "up", "wait-join"),  # a rebalance
        (6 + UNSTEADY_SECONDS - 1, "up", "steady"),
        (30, "up", "steady"),
    ]:
        now[0] = seconds
        watch(member(state, join))
        assert not watch.lost
    # The partner sink's stuck member: broker up, JoinGroup never sent.
    with caplog.at_level(logging.WARNING, logger="schemas.runtime.broker_loss"):
        for seconds in (32, 40, 32 + UNSTEADY_SECONDS - 0.5):
            now[0] = seconds
            watch(member("up", "wait-join"))
            assert not watch.lost
        now[0] = 32 + UNSTEADY_SECONDS
        watch(member("up", "wait-join"))
    assert watch.lost
    assert "not been steady in its group for 15 s (state up, join state wait-join)" in caplog.text


def test_a_long_session_allows_a_longer_join() -> None:
    assert unsteady_limit(6.0) == UNSTEADY_SECONDS
    assert unsteady_limit(45.0) == 90.0


def test_only_group_members_are_judged_by_their_group() -> None:
    now = [0.0]
    watch = BrokerWatch("gate follower", clock=lambda: now[0])
    for seconds in (0, 100, 1000):
        now[0] = seconds
        watch(member("init", "init"))
    assert not watch.lost


def test_a_lost_client_that_never_closes_is_left_behind(caplog: pytest.LogCaptureFixture) -> None:
    # A replaced sink consumer blocked in close() for good in a fault run.
    release = threading.Event()

    class Stuck:
        closed = False

        def close(self) -> None:
            release.wait(30)
            Stuck.closed = True

    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="schemas.runtime.broker_loss"):
        close_lost(Stuck(), "sink g", timeout=0.2)
    assert time.monotonic() - began < 5
    assert "did not close within" in caplog.text
    release.set()


def test_a_lost_client_that_closes_is_closed() -> None:
    closed: list[bool] = []

    class Quick:
        def close(self) -> None:
            closed.append(True)

    close_lost(Quick(), "sink g")
    assert closed == [True]
