"""A gate whose Kafka clients forgot every broker is replaced by a gate with new ones.

librdkafka can forget every broker during a broker's controlled shutdown and never find
one again (schemas/runtime/broker_loss.py): the gate's run then ends with ``lost_broker`` set,
and the entrypoint starts a new gate (new clients, state read again) instead of exiting
or sitting still. One that ends for a stop is not started again.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

import streams.gate.__main__ as entrypoint

KAFKA = {"KAFKA_BOOTSTRAP": "127.0.0.1:1", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:1"}


class FakeGate:
    built: list[FakeGate] = []
    losses = 1

    def __init__(self, *_args: Any) -> None:
        self.lost_broker = False
        FakeGate.built.append(self)

    def stop(self) -> None:
        pass

    def run(self) -> None:
        if FakeGate.losses:
            FakeGate.losses -= 1
            self.lost_broker = True


def test_a_gate_that_lost_its_brokers_is_followed_by_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {**KAFKA, "GATE_HTTP_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(entrypoint, "Gate", FakeGate)
    FakeGate.built, FakeGate.losses = [], 2
    assert entrypoint.main([]) == 0
    assert [g.lost_broker for g in FakeGate.built] == [True, True, False]
