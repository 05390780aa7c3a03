"""After a rebalance: flow control held, every input partition sought to where the group
resumes it and resumed, and an event fetched while Faust resumes the streams kept for
the agent."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from confluent_kafka import KafkaException
from faust.types import TP
from faust.types.tuples import Message

from schemas.runtime.kafka import KafkaSettings
from streams.engine import offsets

KAFKA = KafkaSettings(bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1")


class FakeConsumer:
    """The part of Faust's consumer the receiver uses, recording every call."""

    def __init__(self, assigned: set[TP], calls: list[Any]) -> None:
        self.assigned = assigned
        self.calls = calls

    def assignment(self) -> set[TP]:
        return self.assigned

    async def seek_wait(self, positions: dict[TP, int]) -> None:
        self.calls.append(("seek", positions))

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append(("resume", set(tps)))


class FakeFlowControl:
    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def suspend(self) -> None:
        self.calls.append("suspend")


def _app(assigned: set[TP], calls: list[Any], flow_control: Any = None) -> Any:
    return SimpleNamespace(
        consumer=FakeConsumer(assigned, calls), flow_control=flow_control or FakeFlowControl(calls)
    )


def test_holds_flow_then_seeks_and_resumes_every_input_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[TP]] = []

    def fake_positions(_kafka: Any, group: str, partitions: list[TP]) -> dict[TP, int]:
        assert group == "g"
        asked.append(sorted(partitions))
        return {tp: 5 * tp.partition for tp in partitions}

    monkeypatch.setattr(offsets, "committed_positions", fake_positions)
    calls: list[Any] = []
    app = _app({TP("in", 0), TP("in", 1), TP("app-table-changelog", 1)}, calls)
    asyncio.run(offsets.rewinder(KAFKA, "g", {"in"}, app)(app))
    assert asked == [[TP("in", 0), TP("in", 1)]]
    positions = {TP("in", 0): 0, TP("in", 1): 5}
    assert calls == ["suspend", ("seek", positions), ("resume", set(positions))]


def test_no_input_partitions_means_nothing_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offsets, "committed_positions", lambda *_a: pytest.fail("asked"))
    calls: list[Any] = []
    asyncio.run(offsets.rewinder(KAFKA, "g", {"in"}, _app({TP("other", 0)}, calls))())
    assert calls == []


def test_unreadable_offsets_leave_the_streams_to_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(*_args: Any) -> dict[TP, int]:
        raise KafkaException("coordinator not available")

    monkeypatch.setattr(offsets, "committed_positions", unreadable)
    calls: list[Any] = []
    asyncio.run(offsets.rewinder(KAFKA, "g", {"in"}, _app({TP("in", 0)}, calls))())
    assert calls == []


def test_no_partitions_asks_nothing() -> None:
    assert offsets.committed_positions(KAFKA, "g", []) == {}


def test_an_event_fetched_while_faust_resumes_the_streams_reaches_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's order when a rebalance completes (``Recovery.on_recovery_completed``):
    the signal; the input partitions resumed, its running fetcher delivering what it
    fetches through flow control into the agents' queues; flow control resumed, which
    clears those queues. What the fetcher delivered in between must reach the agent."""
    monkeypatch.setattr(offsets, "committed_positions", lambda _k, _g, tps: dict.fromkeys(tps, 0))

    async def scenario() -> int:
        real = faust.App("offsets-test", store="memory://", autodiscover=False)
        real.flow_control.resume()  # flowing: the tables' changelogs were read
        stream = real.stream(real.channel())
        app = _app({TP("in", 0)}, [], real.flow_control)
        real.on_rebalance_complete.connect(offsets.rewinder(KAFKA, "g", {"in"}, app))
        await real.on_rebalance_complete.send()
        message = Message("in", 0, 0, time.time(), None, None, b"k", b"v", None)
        message.incref()
        delivered = asyncio.ensure_future(stream.channel.deliver(message))
        await asyncio.sleep(0.05)  # the fetcher delivers while Faust seeks
        real.flow_control.resume()
        await asyncio.wait_for(delivered, 1)
        return stream.channel.queue.qsize()

    queued = asyncio.run(scenario())
    with warnings.catch_warnings():  # the app's unstarted consumer thread's loop
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert queued == 1
