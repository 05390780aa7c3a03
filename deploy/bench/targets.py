"""Issue 14's targets, set against what a run measured. Reported, never asserted.

A target whose phase did not run reads "not measured". Latencies are withdrawal event
time → FullyPropagated. "Keeps up" and "no backlog growth" mean the stream consumed at
least :data:`KEEPS_UP` of what was sent during the measured window (a latency's worth of
events is still in flight when the window closes). CPU per consent event covers every
relay process, the broker and the registry, from the warm-up until the relay caught up.
"""

from __future__ import annotations

from typing import Any, Final

from deploy.bench.analysis import FULLY
from deploy.bench.config import IDLE, MAX
from deploy.bench.costs import RELAY_TOTAL

KEEPS_UP: Final = 0.98
RELAY_CPU_MS: Final = 0.8

Row = dict[str, str]


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def _not_measured(target: str) -> Row:
    return {"target": target, "measured": "not measured", "met": "n/a"}


def _phase(phases: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((p for p in phases if p["name"] == name), None)


def _latency(phases: list[dict[str, Any]], name: str, key: str, limit: float, label: str) -> Row:
    phase = _phase(phases, name)
    if phase is None:
        return _not_measured(label)
    stats: dict[str, Any] = phase["reconciliation"]["latency_ms"].get(FULLY, {})
    value = stats.get(key)
    if value is None:
        waiting = stats.get("unfinished")
        what = f"not reached: {waiting:,} withdrawals unfinished" if waiting else "no withdrawals"
        return {"target": label, "measured": what, "met": "NO"}
    return {"target": label, "measured": f"{value:,.0f} ms", "met": _met(value <= limit)}


def _keeps_up(phases: list[dict[str, Any]], name: str, label: str) -> Row:
    phase = _phase(phases, name)
    if phase is None:
        return _not_measured(label)
    stream, offered = phase["stream_events_per_second"], phase["achieved_rate"]
    if stream is None or not offered:
        return {"target": label, "measured": "stream rate not measured", "met": "n/a"}
    growth = phase.get("backlog_growth")
    text = f"stream {stream:,.0f} of {offered:,.0f} ev/s sent"
    if growth is not None:
        text += f"; backlog {growth:+,} events over the window"
    return {"target": label, "measured": text, "met": _met(stream >= KEEPS_UP * offered)}


def _relay_cpu(phases: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for phase in phases:
        if phase.get("kind") == IDLE:
            continue  # a few events over many seconds: the per-second costs dominate
        label = f"{phase['name']}: whole relay ≤ {RELAY_CPU_MS} ms CPU per consent event"
        value = (phase.get("cpu_ms_per_event") or {}).get(RELAY_TOTAL)
        if value is None:
            rows.append(_not_measured(label))
            continue
        rows.append(
            {"target": label, "measured": f"{value:.2f} ms", "met": _met(value <= RELAY_CPU_MS)}
        )
    return rows


def _lost(phases: list[dict[str, Any]]) -> Row:
    label = "0 lost in every phase"
    if not phases:
        return _not_measured(label)
    each = {p["name"]: p["reconciliation"]["lost"] for p in phases}
    text = ", ".join(f"{n} {'unknown' if v is None else v}" for n, v in each.items())
    if any(v is None for v in each.values()):
        return {"target": label, "measured": text, "met": "NO (a phase did not catch up)"}
    return {"target": label, "measured": text, "met": _met(not any(each.values()))}


def targets(
    phases: list[dict[str, Any]],
    gate: dict[str, Any],
    ratio: float | None,
    workers: int,
    lost: int | None = None,
) -> list[Row]:
    """Each target with what was measured and whether it was met (``lost`` is unused:
    the losses are judged phase by phase)."""
    del lost
    rows = [
        _latency(phases, IDLE, "p50", 50, "idle: fully propagated p50 ≤ 50 ms"),
        _latency(phases, IDLE, "p99", 150, "idle: fully propagated p99 ≤ 150 ms"),
        _latency(phases, "1000/s", "p50", 100, "1,000/s: fully propagated p50 ≤ 100 ms"),
        _latency(phases, "1000/s", "p99", 250, "1,000/s: fully propagated p99 ≤ 250 ms"),
        _keeps_up(phases, "1000/s", "1,000/s: sustained, no backlog growth"),
        _keeps_up(phases, "5000/s", "5,000/s: the stream keeps up"),
        _latency(phases, "5000/s", "p99", 1000, "5,000/s: fully propagated p99 (aim ≤ 1 s)"),
    ]
    max_phase = _phase(phases, MAX)
    label = "max: one stream worker ≥ 5,000 consent ev/s (aim 10,000)"
    if max_phase is None or not max_phase["stream_events_per_second"]:
        rows.append(_not_measured(label))
    else:
        per_worker = max_phase["stream_events_per_second"] / workers
        text = f"{per_worker:,.0f} ev/s per worker; " + (
            f"ratio to the bare loop {ratio:.3f}" if ratio is not None else "no bare-loop ratio"
        )
        rows.append({"target": label, "measured": text, "met": _met(per_worker >= 5000)})
    rows += _relay_cpu(phases)
    rows.append(_lost(phases))
    ran = bool(gate.get("ran"))
    gate_rate = gate.get("events_per_second") if ran else None
    label = "gate: ≥ 20,000 data ev/s"
    rows.append(
        _not_measured(label)
        if gate_rate is None
        else {
            "target": label,
            "measured": f"{gate_rate:,.0f} ev/s",
            "met": _met(gate_rate >= 20_000),
        }
    )
    delay = gate.get("delay_ms", {}).get("p99") if ran else None
    offered = gate.get("offered_rate")
    label = "gate: delay p99 ≤ 20 ms at 2,000 data ev/s"
    if delay is None:
        rows.append(_not_measured(label))
    else:
        at = "" if offered == 2000 else f" (at {offered:,}/s)"
        rows.append({"target": label, "measured": f"{delay:,.0f} ms{at}", "met": _met(delay <= 20)})
    return rows
