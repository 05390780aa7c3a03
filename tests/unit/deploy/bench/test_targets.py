"""Issue 14's targets, judged from a run's figures (reported, never asserted)."""

from __future__ import annotations

from typing import Any

from deploy.bench.costs import RELAY_TOTAL
from deploy.bench.targets import targets


def _phase(name: str, kind: str, p50: int, p99: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "achieved_rate": extra.pop("achieved", 1000.0),
        "stream_events_per_second": extra.pop("stream", 1000.0),
        "backlog_growth": extra.pop("growth", 0),
        "cpu_ms_per_event": {RELAY_TOTAL: extra.pop("cpu", 0.5)},
        "reconciliation": {
            "lost": extra.pop("lost", 0),
            "latency_ms": {"fully propagated": {"count": 10, "p50": p50, "p99": p99}},
        },
    }


def _by_target(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["target"]: r for r in rows}


def test_each_target_is_judged_against_its_own_phase() -> None:
    phases = [
        _phase("idle", "idle", 40, 160, achieved=10.0, stream=10.0, cpu=30.0),
        _phase("1000/s", "rate", 90, 240, cpu=0.9),
        _phase("5000/s", "rate", 900, 3000, achieved=5000.0, stream=4000.0, growth=20000),
        _phase("max", "max", 5000, 9000, stream=6000.0, lost=None),
    ]
    gate = {
        "ran": True,
        "events_per_second": 25000.0,
        "offered_rate": 2000,
        "delay_ms": {"p99": 30},
    }
    rows = _by_target(targets(phases, gate, 0.066, 1))
    assert rows["idle: fully propagated p50 ≤ 50 ms"]["met"] == "yes"
    assert rows["idle: fully propagated p99 ≤ 150 ms"]["met"] == "NO"
    assert rows["1,000/s: fully propagated p99 ≤ 250 ms"]["met"] == "yes"
    assert rows["1,000/s: sustained, no backlog growth"]["met"] == "yes"
    assert rows["5,000/s: the stream keeps up"]["met"] == "NO"
    assert "+20,000" in rows["5,000/s: the stream keeps up"]["measured"]
    assert rows["max: one stream worker ≥ 5,000 consent ev/s (aim 10,000)"]["met"] == "yes"
    assert "0.066" in rows["max: one stream worker ≥ 5,000 consent ev/s (aim 10,000)"]["measured"]
    assert rows["1000/s: whole relay ≤ 0.8 ms CPU per consent event"]["met"] == "NO"
    assert rows["5000/s: whole relay ≤ 0.8 ms CPU per consent event"]["met"] == "yes"
    assert not any(t.startswith("idle: whole relay") for t in rows)
    assert rows["0 lost in every phase"]["met"].startswith("NO")
    assert rows["gate: ≥ 20,000 data ev/s"]["met"] == "yes"
    assert rows["gate: delay p99 ≤ 20 ms at 2,000 data ev/s"]["met"] == "NO"


def test_a_phase_that_did_not_run_is_not_measured() -> None:
    rows = _by_target(targets([], {"ran": False}, None, 1))
    assert {r["met"] for r in rows.values()} == {"n/a"}
