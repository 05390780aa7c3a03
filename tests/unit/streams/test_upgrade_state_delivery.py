"""upgrade-state fails when a state it wrote is acknowledged without an offset (the broker
may not hold it: librdkafka's implicit ack), as it does on a delivery error (fake
producer, reader and encoder: no network)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from schemas.runtime import confirming_producer as confirming_module
from schemas.runtime.kafka import KafkaSettings
from streams.intake import upgrade_state
from streams.intake.upgrade_state import UpgradeError, upgrade

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")


class FakeMessage:
    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


class FakeProducer:
    """Reports every record at flush with the next of ``offsets``."""

    offsets: list[int | None] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self._reports: list[Any] = []

    def produce(self, *_: Any, on_delivery: Any, **__: Any) -> None:
        self._reports.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for report, offset in zip(self._reports, FakeProducer.offsets, strict=False):
            report(None, FakeMessage(offset))
        return 0


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    states = {b"subject-1": (0, None), b"subject-2": (1, None)}
    monkeypatch.setattr(upgrade_state, "_read_newest", lambda *_: states)
    monkeypatch.setattr(confirming_module, "Producer", FakeProducer)
    monkeypatch.setattr(upgrade_state, "RegistryEncoder", lambda _client: lambda *_: b"state")
    monkeypatch.setattr(upgrade_state, "records", SimpleNamespace(consent_state=lambda *_: None))
    monkeypatch.setattr(KafkaSettings, "registry_client", lambda _self: None)


def test_states_acknowledged_with_offsets_are_upgraded() -> None:
    FakeProducer.offsets = [7, 3]
    assert upgrade(KAFKA, "app").subjects == 2


def test_a_state_acknowledged_without_an_offset_fails_the_upgrade() -> None:
    FakeProducer.offsets = [7, None]
    with pytest.raises(UpgradeError, match="without an offset"):
        upgrade(KAFKA, "app")
