"""The rewind after a rebalance: only input partitions without a committed offset."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from schemas.kafka import KafkaSettings
from streams import offsets

KAFKA = KafkaSettings("127.0.0.1:1", "http://127.0.0.1:1")


def test_rewinds_only_uncommitted_input_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[TP]] = []

    def fake_uncommitted(_kafka: Any, group: str, partitions: list[TP]) -> list[TP]:
        assert group == "g"
        asked.append(sorted(partitions))
        return [tp for tp in partitions if tp.partition == 1]

    monkeypatch.setattr(offsets, "uncommitted", fake_uncommitted)
    sought: list[dict[TP, int]] = []

    async def seek(positions: dict[TP, int]) -> None:
        sought.append(positions)

    assignment = {TP("in", 0), TP("in", 1), TP("app-table-changelog", 1)}
    rewind = offsets.rewinder(KAFKA, "g", {"in"}, lambda: assignment, seek)
    asyncio.run(rewind(object()))
    assert asked == [[TP("in", 0), TP("in", 1)]]
    assert sought == [{TP("in", 1): 0}]


def test_nothing_to_rewind_means_no_seek(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offsets, "uncommitted", lambda *_a: [])

    async def seek(_positions: dict[TP, int]) -> None:
        raise AssertionError("no seek expected")

    asyncio.run(offsets.rewinder(KAFKA, "g", {"in"}, lambda: {TP("in", 0)}, seek)())


def test_no_partitions_asks_nothing() -> None:
    assert offsets.uncommitted(KAFKA, "g", []) == []
