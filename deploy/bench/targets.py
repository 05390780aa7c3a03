"""The figures the team aims for, set against what a run measured. Reported, never asserted."""

from __future__ import annotations

from typing import Any

from deploy.bench.analysis import FULLY


def _row(
    target: str, value: float | None, limit: float, unit: str, *, below: bool = True
) -> dict[str, str]:
    if value is None:
        return {"target": target, "measured": "not measured", "met": "n/a"}
    met = value <= limit if below else value >= limit
    return {"target": target, "measured": f"{value:,.0f} {unit}", "met": "yes" if met else "NO"}


def _latency(
    phases: list[dict[str, Any]], rate: int, key: str, limit: float, label: str
) -> dict[str, str]:
    for phase in phases:
        if phase["offered_rate"] != rate:
            continue
        stats: dict[str, Any] = phase["reconciliation"]["latency_ms"].get(FULLY, {})
        if stats.get(key) is None and stats.get("unfinished"):
            return {
                "target": label,
                "measured": f"not reached: {stats['unfinished']:,} withdrawals unfinished",
                "met": "NO",
            }
        return _row(label, stats.get(key), limit, "ms")
    return _row(label, None, limit, "ms")


def targets(
    phases: list[dict[str, Any]],
    gate: dict[str, Any],
    ratio: float | None,
    workers: int,
    lost: int | None,
) -> list[dict[str, str]]:
    """Each target with what was measured and whether it was met."""
    max_phase = next((p for p in phases if p["offered_rate"] is None), None)
    per_worker = None
    if max_phase and max_phase["stream_events_per_second"]:
        per_worker = max_phase["stream_events_per_second"] / workers
    gate_delay = gate.get("delay_ms", {}).get("p99") if gate.get("ran") else None
    gate_rate = gate.get("events_per_second") if gate.get("ran") else None
    return [
        _latency(phases, 1000, "p50", 50, "1k/s: withdrawal → fully propagated p50 ≤ 50 ms"),
        _latency(phases, 1000, "p99", 250, "1k/s: withdrawal → fully propagated p99 ≤ 250 ms"),
        _latency(phases, 5000, "p99", 1000, "5k/s: withdrawal → fully propagated p99 ≤ 1 s"),
        _row(
            "stream worker ≥ 10k events/s per process", per_worker, 10_000, "events/s", below=False
        ),
        {
            "target": "stream worker ≥ 1/6 of the bare loop",
            "measured": "not measured" if ratio is None else f"{ratio:.3f}",
            "met": "n/a" if ratio is None else ("yes" if ratio >= 1 / 6 else "NO"),
        },
        _row(
            "gate ≥ 20k data events/s per worker",
            None if gate_rate is None else gate_rate / workers,
            20_000,
            "events/s",
            below=False,
        ),
        _row("gate adds ≤ 20 ms p99", gate_delay, 20, "ms"),
        {
            "target": "nothing lost",
            "measured": "unknown (a phase did not catch up)" if lost is None else f"{lost} lost",
            "met": "n/a" if lost is None else ("yes" if lost == 0 else "NO"),
        },
    ]
