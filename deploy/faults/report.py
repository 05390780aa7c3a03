"""The one table, and ``faults.json`` / ``faults.md`` beside it.

The table says, for the whole run: valid events sent, cells lost and misapplied across
every destination, duplicated effects, dead letters (and the share of malformed records
among them, matched by source coordinates), unexpected exits and the recovery seconds
of every fault, each with its target. ``faults.md`` adds the detail behind each line:
per destination, per malformed kind, per fault and destination.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

RECOVERY_TARGET_S: Final = 10.0


def _row(measure: str, value: str, target: str, met: bool | None) -> tuple[str, str, str, str]:
    return measure, value, target, "" if met is None else ("yes" if met else "NO")


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table's rows: measure, value, target, met."""
    sent = result["sent"]
    totals = result["totals"]
    dead = result["dead_letters"]
    out = [
        _row(
            "events sent (valid)",
            f"{sent['valid']:,} ({sent['duplicates']:,} duplicates, {sent['probes']} probes)",
            "",
            None,
        ),
        _row(
            "lost",
            f"{totals['lost']:,} ({totals['lost_withdrawals']:,} withdrawals)",
            "0",
            totals["lost"] == 0,
        ),
        _row("misapplied", f"{totals['misapplied']:,}", "0", totals["misapplied"] == 0),
        _row("duplicated effects", f"{totals['duplicated_effects']:,}", "", None),
        _row(
            "malformed dead-lettered",
            f"{dead['malformed_dead_lettered']:,} / {dead['malformed_sent']:,} "
            f"({dead['malformed_percent']:.2f}%) of {dead['kinds']} kinds",
            "100%",
            dead["malformed_dead_lettered"] == dead["malformed_sent"],
        ),
        _row("dead letters in all", f"{dead['total']:,}", "", None),
        _row(
            "valid events dead-lettered",
            f"{dead['valid_dead_lettered']:,}",
            "0",
            dead["valid_dead_lettered"] == 0,
        ),
        _row(
            "caught up before the stores were read",
            "yes" if result["caught_up"] else f"no (within {result['drain_timeout']:.0f} s)",
            "yes",
            bool(result["caught_up"]),
        ),
        _row(
            "unexpected exits",
            f"{len(result['unexpected_exits'])}",
            "0",
            not result["unexpected_exits"],
        ),
    ]
    for recovery in result["recoveries"]:
        seconds = recovery["seconds"]
        value = f"not within {recovery['timeout']:.0f} s" if seconds is None else f"{seconds:.1f} s"
        met = seconds is not None and seconds <= RECOVERY_TARGET_S
        out.append(
            _row(f"recovery: {recovery['fault']}", value, f"<= {RECOVERY_TARGET_S:.0f} s", met)
        )
    return out


def table(result: dict[str, Any]) -> str:
    """The table as Markdown (also readable as plain text)."""
    lines = ["| measure | value | target | met |", "|---|---|---|---|"]
    lines += [f"| {m} | {v} | {t} | {ok} |" for m, v, t, ok in rows(result)]
    return "\n".join(lines)


def _detail(result: dict[str, Any]) -> list[str]:
    lines = ["", "## Per destination", ""]
    lines += [
        "| destination | cells | ok | lost (withdrawals) | misapplied | duplicated |",
        "|---|---|---|---|---|---|",
    ]
    for label, t in result["destinations"].items():
        lines.append(
            f"| {label} | {t['cells']:,} | {t['ok']:,} | {t['lost']:,} ({t['lost_withdrawals']:,})"
            f" | {t['misapplied']:,} | {t['duplicated_effects']:,} |"
        )
    lines += ["", "## Malformed records", "", "| kind | sent | dead-lettered | reasons |"]
    lines.append("|---|---|---|---|")
    for kind, k in result["dead_letters"]["by_kind"].items():
        reasons = ", ".join(f"{r} ({n})" for r, n in k["reasons"].items()) or "none"
        lines.append(f"| {kind} | {k['sent']:,} | {k['dead_lettered']:,} | {reasons} |")
    lines += ["", "## Recovery per destination (seconds)", ""]
    for recovery in result["recoveries"]:
        parts = ", ".join(
            f"{label} {'-' if s is None else s}" for label, s in recovery["by_label"].items()
        )
        lines.append(f"- {recovery['fault']}: {parts}")
    if result["unexpected_exits"]:
        lines += ["", "## Unexpected exits", ""]
        for gone in result["unexpected_exits"]:
            lines.append(f"- {gone['name']} exited with {gone['code']} at {gone['at']}")
    return lines


def write(out_dir: Path, result: dict[str, Any]) -> str:
    """Write ``faults.json`` and ``faults.md``; the table to print."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "faults.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = table(result)
    head = [
        f"# Consent Relay under faults: run {result['run']} ({result['mode']})",
        "",
        f"Exit code {result['exit_code']}: {result['verdict']}",
        "",
        text,
    ]
    (out_dir / "faults.md").write_text("\n".join(head + _detail(result)) + "\n")
    return text
