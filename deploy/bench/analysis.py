"""From what was sent and what was read back: latency distributions and the reconciliation.

Expected = the tracked instructions (SUPPRESS, ERASE, RESTRICT, LIFT_RESTRICTION) the
stream issued for the withdrawals and rights requests the load generator had
acknowledged; receipted = those answered by an APPLIED or SKIPPED receipt; lost =
expected - receipted. A withdrawal with no tracked instruction at all is *unrouted* and
reported by kind (it may be legitimate: nothing held the purpose) — it is not hidden.
FullyPropagated is cross-checked against the instructions: a completion naming other
destinations than the instructions did is a *mismatch*.

Per family, a withdrawal's latency is that of the family's last honouring receipt (every
destination of the family has applied it), and how many families each routed
withdrawal reached is counted (the idle phase's withdrawals are meant to reach all three).

If the relay had not caught up when the phase ended, missing receipts are *pending*,
not lost (``lost`` is then None: unknown), and in the latency distributions every
withdrawal still waiting counts as slower than any that finished, so a p99 that falls
among them is reported as not reached rather than flattered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.bench.collect import HONOURING, Collected
from deploy.bench.loadgen import SentWithdrawal

FULLY = "fully propagated"


def percentiles(values: Sequence[float], unfinished: int = 0) -> dict[str, float | int | None]:
    """count, p50, p90, p99, max and mean (nearest-rank), in the values' unit.

    ``unfinished`` more samples are known only to be larger than every value; a
    percentile that falls among them is None, and so are max and mean.
    """
    if not values and not unfinished:
        return {"count": 0}
    ordered = sorted(values)
    n = len(ordered) + unfinished

    def rank(q: float) -> float | None:
        index = max(0, math.ceil(q * n) - 1)
        return ordered[index] if index < len(ordered) else None

    out: dict[str, float | int | None] = {
        "count": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1] if ordered and not unfinished else None,
        "mean": round(sum(ordered) / len(ordered), 1) if ordered and not unfinished else None,
    }
    if unfinished:
        out["unfinished"] = unfinished
    return out


@dataclass(slots=True)
class PhaseResult:
    """Reconciliation and latencies of the withdrawals of one phase."""

    withdrawals: int = 0
    measured: int = 0
    routed: int = 0
    unrouted: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    receipted: int = 0
    failed: int = 0
    caught_up: bool = True
    missing: int = 0
    missing_instruction_ids: list[str] = field(default_factory=list)
    fully_propagated: int = 0
    not_fully_propagated: int = 0
    mismatched: int = 0
    latency_ms: dict[str, list[int]] = field(default_factory=dict)
    """destination label (or ``fully propagated``) → measured latencies in ms."""
    unfinished: dict[str, int] = field(default_factory=dict)
    """destination label (or ``fully propagated``) → measured withdrawals still waiting."""
    family_latency_ms: dict[str, list[int]] = field(default_factory=dict)
    """sink family → measured latencies of its last receipt per withdrawal, in ms."""
    family_unfinished: dict[str, int] = field(default_factory=dict)
    """sink family → measured withdrawals it has not fully honoured."""
    families_reached: dict[int, int] = field(default_factory=dict)
    """number of sink families a routed withdrawal reached → withdrawals."""

    @property
    def lost(self) -> int | None:
        """Missing receipts once the relay caught up; None if it never did (unknown)."""
        return self.missing if self.caught_up else None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result, latencies as percentiles."""
        return {
            "withdrawals_sent": self.withdrawals,
            "withdrawals_measured": self.measured,
            "withdrawals_routed": self.routed,
            "unrouted_by_kind": self.unrouted,
            "expected_receipts": self.expected,
            "receipted": self.receipted,
            "failed_receipts": self.failed,
            "caught_up": self.caught_up,
            "lost": self.lost,
            "pending": 0 if self.caught_up else self.missing,
            "missing_instruction_ids": self.missing_instruction_ids[:20],
            "fully_propagated": self.fully_propagated,
            "not_fully_propagated": self.not_fully_propagated,
            "fully_propagated_mismatched": self.mismatched,
            "latency_ms": {
                k: percentiles(self.latency_ms.get(k, []), self.unfinished.get(k, 0))
                for k in sorted(set(self.latency_ms) | set(self.unfinished))
            },
            "family_latency_ms": {
                k: percentiles(self.family_latency_ms.get(k, []), self.family_unfinished.get(k, 0))
                for k in sorted(set(self.family_latency_ms) | set(self.family_unfinished))
            },
            "families_reached": {str(k): v for k, v in sorted(self.families_reached.items())},
        }


def reconcile(
    sent: Mapping[str, SentWithdrawal], got: Collected, *, caught_up: bool = True
) -> PhaseResult:
    """Reconcile one phase's acknowledged withdrawals against what was read back."""
    result = PhaseResult(withdrawals=len(sent), caught_up=caught_up)
    for event_id, withdrawal in sent.items():
        result.measured += withdrawal.measured
        instructions = got.instructions.get(event_id, [])
        if not instructions:
            result.unrouted[withdrawal.kind] = result.unrouted.get(withdrawal.kind, 0) + 1
            continue
        result.routed += 1
        labels = set()
        family_ms: dict[str, list[int]] = {}
        family_waiting: set[str] = set()
        for instruction in instructions:
            labels.add(instruction.label)
            family = instruction.label.partition("/")[0]
            result.expected += 1
            receipt = got.receipts.get(instruction.instruction_id)
            if receipt is None or receipt.outcome not in HONOURING:
                result.missing += 1
                result.failed += receipt is not None
                result.missing_instruction_ids.append(instruction.instruction_id)
                family_ms.setdefault(family, [])
                family_waiting.add(family)
                if withdrawal.measured:
                    _count(result.unfinished, instruction.label)
                continue
            result.receipted += 1
            took = receipt.applied_ms - receipt.occurred_ms
            family_ms.setdefault(family, []).append(took)
            if withdrawal.measured:
                result.latency_ms.setdefault(receipt.label, []).append(took)
        _count(result.families_reached, len(family_ms))
        if withdrawal.measured:
            for family, took_ms in family_ms.items():
                if family in family_waiting:
                    _count(result.family_unfinished, family)
                else:
                    result.family_latency_ms.setdefault(family, []).append(max(took_ms))
        done = got.completions.get(event_id)
        if done is None:
            result.not_fully_propagated += 1
            if withdrawal.measured:
                _count(result.unfinished, FULLY)
            continue
        result.fully_propagated += 1
        result.mismatched += done.labels != labels
        if withdrawal.measured:
            result.latency_ms.setdefault(FULLY, []).append(done.completed_ms - done.occurred_ms)
    return result


def _count(counts: dict[Any, int], key: Any) -> None:
    counts[key] = counts.get(key, 0) + 1
