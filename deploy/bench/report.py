"""The benchmark's output: ``bench.json``, ``bench.md`` and ``latency.png`` in one directory.

The markdown holds the summary per phase, the latency per destination and per sink
family, CPU and peak memory per process, CPU and Kafka records per consent event,
consumer lag at the end, the baseline ratio and issue 14's targets; the same text is
printed at the end of a run. The plot shows, per phase, each destination's
latency distribution (event time → applied, and → fully propagated) on a log scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.bench.analysis import FULLY
from deploy.bench.costs import RELAY_TOTAL


def _ms(value: Any, unfinished: bool = False) -> str:
    if value is None:
        return "not reached" if unfinished else "-"
    return f"{value:,.0f}"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(result: Mapping[str, Any]) -> str:
    """The human-readable report."""
    phases: list[dict[str, Any]] = result["phases"]
    out = [
        f"# Propagation benchmark {result['run']}",
        "",
        f"{result['machine']['cpus']} CPUs, load average before the run "
        f"{result['machine']['load_before']}, after {result['machine'].get('load_after', '-')}"
        f"; relay code {result['relay_code']['revision'][:10]} "
        f"({result['relay_code']['from']}); broker {result['stack']['bootstrap']} "
        f"({'reused' if result['stack']['reused'] else 'started for the run'}); "
        f"{result['config']['partitions']} partitions; {result['config']['workers']} stream "
        f"worker(s); warm-up {result['config']['warmup']:g} s, measured "
        f"{result['config']['duration']:g} s per fixed-rate phase.",
        "",
        "## Phases (latencies: withdrawal event time → FullyPropagated, ms)",
        "",
    ]
    rows = []
    for phase in phases:
        rec = phase["reconciliation"]
        full = rec["latency_ms"].get(FULLY, {})
        waiting = bool(full.get("unfinished"))
        lost = str(rec["lost"]) if rec["lost"] is not None else _unknown_loss(rec)
        rows.append(
            [
                phase["name"],
                _rate(phase["achieved_rate"]),
                _rate(phase["stream_events_per_second"]),
                f"{rec['withdrawals_sent']:,} ({rec['withdrawals_measured']:,})",
                f"{rec['expected_receipts']:,}",
                lost,
                _ms(full.get("p50"), waiting),
                _ms(full.get("p90"), waiting),
                _ms(full.get("p99"), waiting),
                _ms(full.get("max"), waiting),
                _growth(phase.get("backlog_growth")),
                f"{phase['drain_seconds']:.1f}" + ("" if phase["drained"] else " (gave up)"),
            ]
        )
    out += _table(
        [
            "phase",
            "offered ev/s",
            "stream ev/s",
            "withdrawals sent (measured)",
            "expected receipts",
            "lost",
            "p50",
            "p90",
            "p99",
            "max",
            "backlog growth",
            "catch-up s",
        ],
        rows,
    )
    out += ["", "## Per destination: event time → receipt applied_at, p50 / p99 ms", ""]
    labels = sorted({label for p in phases for label in p["reconciliation"]["latency_ms"]})
    labels = [label for label in labels if label != FULLY] + [FULLY]
    dest_rows = []
    for label in labels:
        row = [label]
        for phase in phases:
            stats = phase["reconciliation"]["latency_ms"].get(label, {})
            waiting = stats.get("unfinished", 0)
            row.append(
                f"{_ms(stats.get('p50'), bool(waiting))} / {_ms(stats.get('p99'), bool(waiting))}"
                f" (n={stats.get('count', 0)}" + (f", {waiting} waiting)" if waiting else ")")
            )
        dest_rows.append(row)
    out += _table(["destination", *[p["name"] for p in phases]], dest_rows)
    out += [
        "",
        "## Per family: event time → the family's last receipt (all its destinations applied),"
        " p50 / p99 ms",
        "",
    ]
    out += _table(["family", *[p["name"] for p in phases]], _family_rows(phases))
    out += [
        "",
        "## CPU: % of one core over the phase (warm-up to caught up), CPU seconds, peak memory",
        "",
    ]
    names = list(result["processes"])
    cpu_rows = []
    for name in names:
        row = [name]
        for phase in phases:
            cpu = phase["cpu_percent"].get(name)
            used = phase.get("cpu_seconds", {}).get(name)
            row.append("-" if cpu is None else f"{cpu:.0f}% ({used:.1f} s)")
        peak = result["processes"][name].get("peak_rss_mb")
        row.append("-" if peak is None else f"{peak:.0f}")
        cpu_rows.append(row)
    out += _table(["process", *[p["name"] for p in phases], "peak RSS MB"], cpu_rows)
    if any(phase.get("cpu_wait_percent") for phase in phases):
        out += [
            "",
            "## Waiting for a CPU: % of the phase the process's most-waiting thread was "
            "ready to run but waited for a core",
            "",
            "The broker, the registry, the relay and the load generator share the machine's "
            "cores; what a process waits here is latency that none of them computes (the "
            "stream worker's most-waiting thread is its event loop's).",
            "",
        ]
        out += _table(["process", *[p["name"] for p in phases]], _wait_rows(phases, names))
    out += [
        "",
        "## CPU per consent event: ms of CPU over the phase ÷ consent events published in it",
        "",
        f"*{RELAY_TOTAL}*: every relay process, the broker and the registry (not the partner "
        "receiver or the load generator).",
        "",
    ]
    out += _table(["process", *[p["name"] for p in phases]], _cpu_per_event_rows(phases, names))
    out += [
        "",
        "## Kafka records written per consent event (end offsets before the warm-up and "
        "after catching up)",
        "",
    ]
    out += _table(["topic", *[p["name"] for p in phases]], _record_rows(phases))
    gate = result.get("gate") or {}
    out += ["", "## Consent gate", ""]
    if gate.get("ran"):
        delay = gate["delay_ms"]
        out.append(
            f"{gate['offered_rate']:,} data events/s offered for {gate['seconds']:g} s: gate "
            f"delay (data event time → allowed message written) p50 {_ms(delay.get('p50'))} ms, "
            f"p99 {_ms(delay.get('p99'))} ms, max {_ms(delay.get('max'))} ms; "
            f"{gate['allowed']:,} of {gate['sent']:,} allowed. Backlog of "
            f"{gate['backlog']:,}: {_rate(gate['events_per_second'])} data events/s "
            f"(from the {gate.get('events_per_second_from', 'data-event counter')}; the "
            f"load generator published it at {_rate(gate.get('backlog_published_per_second'))}"
            "/s)."
        )
    else:
        out.append(f"not run: {gate.get('reason', 'disabled')}")
    base = result.get("baseline") or {}
    out += ["", "## Baseline (bare consume → decode → route → produce loop)", ""]
    if base.get("events_per_second"):
        out.append(
            f"{base['events']:,} events in {base['seconds']:g} s = "
            f"{_rate(base['events_per_second'])} events/s "
            f"({base['cpu_us_per_event']} µs CPU per event) over the {base['backlog']}; "
            + (
                f"relay stream worker / baseline = {result['ratio']}."
                if result["ratio"] is not None
                else "no max phase, so no ratio."
            )
        )
    else:
        out.append(f"not run: {base.get('reason', 'disabled')}")
    out += ["", "## Consumer lag when each phase ended", ""]
    lag_rows = []
    for phase in phases:
        lags = {g: sum(t.values()) for g, t in phase["final_lag"].items()}
        behind = {g: n for g, n in lags.items() if n}
        text = (
            ", ".join(f"{g}: {n:,}" for g, n in sorted(behind.items()))
            if behind
            else f"0 in all {len(lags)} groups"
        )
        lag_rows.append([phase["name"], text])
    out += _table(["phase", "lag (committed vs. high watermark)"], lag_rows)
    profiled = [(p["name"], k, v) for p in phases for k, v in (p.get("profile") or {}).items()]
    if profiled:
        out += ["", "## Hot spots (py-spy --gil: share of samples holding the GIL, self time)", ""]
        for phase_name, key, summary in profiled:
            top = ", ".join(f"{e['share']:.0%} `{e['function']}`" for e in summary["self"][:4])
            out.append(f"- {phase_name}, {key.split('-', 1)[1]} ({summary['samples']}): {top}")
    out += ["", "## Targets (reported, not asserted)", ""]
    out += _table(
        ["target", "measured", "met"],
        [[t["target"], t["measured"], t["met"]] for t in result["targets"]],
    )
    lost = result["lost_total"]
    out += [
        "",
        "Lost instructions over the run: "
        + (f"**{lost}**." if lost is not None else "**unknown** (a phase did not catch up)."),
        "",
    ]
    return "\n".join(out)


def _unknown_loss(rec: Mapping[str, Any]) -> str:
    # Instructions the stream had not issued yet are not expected, so "0 pending" alone
    # would read as nothing missing: say the relay had not caught up.
    pending = f", {rec['pending']:,} receipts pending" if rec["pending"] else ""
    return f"? (not caught up{pending})"


def _growth(value: Any) -> str:
    return "-" if value is None else f"{value:+,}"


def _family_rows(phases: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    families = sorted({f for p in phases for f in p["reconciliation"].get("family_latency_ms", {})})
    rows = []
    for family in families:
        row = [family]
        for phase in phases:
            stats = phase["reconciliation"].get("family_latency_ms", {}).get(family, {})
            waiting = stats.get("unfinished", 0)
            row.append(
                f"{_ms(stats.get('p50'), bool(waiting))} / {_ms(stats.get('p99'), bool(waiting))}"
                f" (n={stats.get('count', 0)}" + (f", {waiting} waiting)" if waiting else ")")
            )
        rows.append(row)
    reached = ["families reached (routed withdrawals)"]
    for phase in phases:
        counts = phase["reconciliation"].get("families_reached", {})
        reached.append(", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "-")
    return [*rows, reached]


def _wait_rows(phases: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[list[str]]:
    rows = []
    for name in names:
        row = [name]
        for phase in phases:
            waited = phase.get("cpu_wait_percent", {}).get(name)
            row.append("-" if waited is None else f"{waited:.0f}%")
        rows.append(row)
    return rows


def _cpu_per_event_rows(
    phases: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> list[list[str]]:
    rows = []
    for name in [*names, RELAY_TOTAL]:
        row = [f"**{name}**" if name == RELAY_TOTAL else name]
        for phase in phases:
            value = (phase.get("cpu_ms_per_event") or {}).get(name)
            row.append("-" if value is None else f"{value:.3f}")
        rows.append(row)
    return rows


def _record_rows(phases: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    summaries = [phase.get("records_written") or {} for phase in phases]
    topics = sorted({t for s in summaries for t in s.get("by_topic", {})})
    inputs = sorted({t for s in summaries for t in s.get("inputs", {})})
    rows = []
    for phase_topics, key in ((topics, "by_topic"), (inputs, "inputs")):
        for topic in phase_topics:
            row = [topic if key == "by_topic" else f"{topic} (input, not counted)"]
            for phase, summary in zip(phases, summaries, strict=True):
                n = summary.get(key, {}).get(topic)
                row.append("-" if n is None else _per_event(n, phase["sent"]))
            rows.append(row)
    total = ["**relay total**"]
    for phase, summary in zip(phases, summaries, strict=True):
        n = summary.get("total")
        total.append("-" if n is None else f"**{_per_event(n, phase['sent'])}**")
    return [*rows, total]


def _per_event(records: int, events: int) -> str:
    if not events:
        return f"{records:,}"
    return f"{records / events:.2f} ({records:,})"


def plot(
    result: Mapping[str, Any], latencies: Mapping[str, Mapping[str, list[int]]], path: Path
) -> None:
    """Box plots of each destination's latencies, one panel per phase (log scale)."""
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    phases = [p for p in latencies if any(latencies[p].values())]
    if not phases:
        return
    labels = [*sorted({label for p in phases for label in latencies[p]} - {FULLY}), FULLY]
    fig, axes = plt.subplots(
        1, len(phases), figsize=(5 * len(phases) + 3, 0.32 * len(labels) + 2), sharey=True
    )
    axes_list = list(axes) if len(phases) > 1 else [axes]
    for ax, phase in zip(axes_list, phases, strict=True):
        data: list[list[float]] = [
            [float(max(v, 1)) for v in latencies[phase].get(label, [])] or [float("nan")]
            for label in labels
        ]
        ax.boxplot(data, vert=False, whis=(1, 99), showfliers=False)
        ax.set_xscale("log")
        ax.set_title(f"{phase}")
        ax.set_xlabel("ms from event time (box: p25-p75, whiskers: p1-p99)")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes_list[0].set_yticks(range(1, len(labels) + 1), labels, fontsize=8)
    fig.suptitle(f"Withdrawal latency per destination — {result['run']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    directory: Path,
    result: Mapping[str, Any],
    latencies: Mapping[str, Mapping[str, list[int]]],
) -> str:
    """Write the three files; returns the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.json").write_text(json.dumps(result, indent=2, default=str))
    text = markdown(result)
    (directory / "bench.md").write_text(text)
    plot(result, latencies, directory / "latency.png")
    return text
