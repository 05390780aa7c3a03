"""The per-hop breakdown of kept phases, without Kafka: trails in, hops out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

from deploy.bench import hops as hops_module
from deploy.bench.hops import Trail, _records, hops
from schemas.runtime.kafka import KafkaSettings

FULL = "= event → completed_at (the bench's figure)"


def trail(at: int) -> Trail:
    t = Trail(occurred=at, published=at + 1)
    t.issued = {"MARKETING": (at + 10, at + 12), "PARTNER_SHARING": (at + 10, at + 13)}
    t.receipts = {
        "MARKETING": [(at + 20, at + 22)],
        "PARTNER_SHARING": [(at + 25, at + 31), (at + 30, at + 30)],
    }
    t.completed = (at + 40, at + 41)
    return t


def test_hops_add_up_to_the_bench_figure_along_the_last_family() -> None:
    unfinished = Trail(occurred=5, published=6)
    measured = hops({"a": trail(0), "b": trail(1000), "c": unfinished}, skip=1)
    assert measured[FULL] == [40]  # the warm-up's first left out, the unfinished too
    assert measured["1 event → consent record"] == [1]
    assert measured["2 → intake batch begins"] == [9]
    assert measured["3 → last instruction record"] == [3]
    assert measured["4 PARTNER_SHARING: instruction → last applied"] == [17]
    assert measured["5 PARTNER_SHARING: applied → last receipt record"] == [1]
    assert measured["4 MARKETING: instruction → last applied"] == [8]
    assert measured["6 last receipt record → completed_at"] == [9]
    assert measured["7 completed_at → FullyPropagated record"] == [1]


class FakeMessage:
    def __init__(self, partition: int, value: bytes = b"", error: KafkaError | None = None):
        self._partition, self._value, self._error = partition, value, error

    def error(self) -> KafkaError | None:
        return self._error

    def partition(self) -> int:
        return self._partition

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1234)


class FakeConsumer:
    """Hands out ``batches`` one per consume, then nothing."""

    batches: ClassVar[list[list[FakeMessage]]] = []

    def __init__(self, _config: dict[str, Any]) -> None:
        self._left = list(FakeConsumer.batches)

    def assign(self, _partitions: list[Any]) -> None:
        pass

    def consume(self, _n: int, _timeout: float) -> list[FakeMessage]:
        return self._left.pop(0) if self._left else []

    def close(self) -> None:
        pass


class FakeAdmin:
    def __init__(self, _config: dict[str, Any]) -> None:
        pass

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(
            topics={topic: SimpleNamespace(error=None, partitions={0: None, 1: None})}
        )


class FakeDecoder:
    def __init__(self, _registry: Any) -> None:
        pass

    def decode_dict(self, value: bytes, *, epoch_ms: bool) -> tuple[Any, dict[str, Any]]:
        return None, {"value": value}


def test_only_a_partitions_end_ends_its_reading_and_an_error_stops_the_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A phase's hops from part of its records would look like whole figures."""
    monkeypatch.setattr(hops_module, "Consumer", FakeConsumer)
    monkeypatch.setattr(hops_module, "AdminClient", FakeAdmin)
    monkeypatch.setattr(hops_module, "EventDecoder", FakeDecoder)
    monkeypatch.setattr(KafkaSettings, "registry_client", lambda _self: None)
    settings = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")
    eof = KafkaError(KafkaError._PARTITION_EOF)
    FakeConsumer.batches = [
        [FakeMessage(0, b"a"), FakeMessage(0, error=eof)],
        [FakeMessage(1, b"b")],
        [FakeMessage(1, error=eof)],
    ]
    assert [r["value"] for r, _ in _records(settings, "t")] == [b"a", b"b"]
    FakeConsumer.batches = [
        [FakeMessage(0, error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))],
        [FakeMessage(0, b"a"), FakeMessage(0, error=eof), FakeMessage(1, error=eof)],
    ]
    with pytest.raises(KafkaException):
        list(_records(settings, "t"))
